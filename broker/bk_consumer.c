/*
 * bk_consumer.c - see bk_consumer.h.
 *
 * Entries are applied in stream order, one batch at a time; nothing of a
 * batch waits for Redis, so the XACK of the batch follows its writes in
 * the same pipeline. An entry that does not parse is logged and
 * acknowledged (it would fail the same way on every replay).
 */
#include "bk_consumer.h"

#include "bk_out.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long one XREADGROUP blocks waiting for new entries. */
#define BK_XREAD_BLOCK_MS 2000

/* A three-word command whose reply fn reads (b is its priv). */
static void send_with_reply(struct bk *b, redisCallbackFn *fn, const char *const argv[3])
{
    size_t lens[3] = {strlen(argv[0]), strlen(argv[1]), strlen(argv[2])};
    bk_send(b, fn, b, 3, (const char **)argv, lens);
}

/* XTRIM MINID id: removes the entries older than id. */
static void trim_below(struct bk *b, const char *id)
{
    if (strcmp(id, "0-0") != 0)
        bk_cmd_strs(b, 4, (const char *[]){"XTRIM", EV_STREAM_IN, "MINID", id});
}

/* XPENDING herald:events brokers: trim below the oldest pending entry. */
static void on_pending_summary(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    const char *oldest = ev_pending_oldest(reply);
    if (oldest)
        trim_below(priv, oldest);
}

/* XINFO GROUPS herald:events: with nothing pending, trim below the last
 * delivered entry; else ask for the oldest pending one. */
static void on_groups(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    const char *last;
    long long pending;
    if (!ev_group_progress(reply, &last, &pending))
        return;
    if (pending == 0)
        trim_below(b, last);
    else
        send_with_reply(b, on_pending_summary,
                        (const char *[]){"XPENDING", EV_STREAM_IN, EV_GROUP});
}

void bk_consumer_trim(struct bk *b)
{
    send_with_reply(b, on_groups, (const char *[]){"XINFO", "GROUPS", EV_STREAM_IN});
}

void bk_consumer_group_create(struct bk *b)
{
    bk_cmd_strs(b, 6,
                (const char *[]){"XGROUP", "CREATE", EV_STREAM_IN, EV_GROUP, "0", "MKSTREAM"});
}

/* Parses one entry [id, [field, value, ...]] of a reply and applies it.
 * Returns its id (borrowed from the reply), or NULL when it has none. */
static const char *apply_entry(struct bk *b, const redisReply *en)
{
    struct ev_entry e;
    const char *id;
    int st = ev_entry_from_reply(&e, en, &id);
    if (st == 0)
        bk_apply(b, &e);
    else if (id)
        log_warn_rl(5, "skipping malformed entry %s", id);
    return id;
}

/* Applies a batch of entries in one SQLite transaction (one commit for
 * all the DMs it stores) and acknowledges it once that committed. Returns
 * the number of entries with an id. */
static size_t apply_batch(struct bk *b, const redisReply *entries)
{
    size_t got = 0;
    const char **ids = malloc((entries->elements ? entries->elements : 1) * sizeof(*ids));
    bool tx = bk_store_batch_begin(&b->store) == 0;
    if (!tx)
        log_error("cannot start the batch transaction: %s", b->store.err);
    for (size_t i = 0; i < entries->elements; i++) {
        const char *id = apply_entry(b, entries->element[i]);
        if (!id)
            continue;
        if (ids)
            ids[got] = id;
        got++;
        if (!b->consumer.pending_done)
            snprintf(b->consumer.pending_cursor, sizeof(b->consumer.pending_cursor), "%s", id);
    }
    if (tx && bk_store_batch_commit(&b->store) != 0) {
        /* Nothing of it is acknowledged: it stays pending and is applied
         * again after the next reconnect or by the next broker. */
        log_error("batch of %zu entries not committed (%s): left unacknowledged", got,
                  b->store.err);
        free(ids);
        return got;
    }
    /* Acknowledged after its effects were queued on the same connection:
     * Redis applies them first. XACK takes many ids; EV_ARGS_MAX - 3 a
     * command. */
    struct ev_args ack;
    ev_args_init(&ack);
    for (size_t i = 0; ids && i < got; i++) {
        if (ack.argc == 0) {
            ev_args_adds(&ack, "XACK");
            ev_args_adds(&ack, EV_STREAM_IN);
            ev_args_adds(&ack, EV_GROUP);
        }
        ev_args_adds(&ack, ids[i]);
        if (ack.argc == EV_ARGS_MAX) {
            bk_cmd(b, &ack);
            ev_args_init(&ack);
        }
    }
    if (ack.argc > 0)
        bk_cmd(b, &ack);
    if (!ids)
        log_error("out of memory: a batch of %zu entries left unacknowledged", got);
    free(ids);
    return got;
}

static void on_read(redisAsyncContext *ac, void *reply_, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    redisReply *r = reply_;
    b->consumer.reading = false;
    if (!r || b->stopping)
        return; /* disconnected (reading resumes on reconnect), or stopping:
                   nothing more is applied, it is replayed by the next broker */
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("XREADGROUP: %s", r->str);
        if (strncmp(r->str, "NOGROUP", 7) == 0)
            bk_consumer_group_create(b);
        bk_consumer_resume(b);
        return;
    }
    size_t got = 0;
    const redisReply *entries = ev_reply_entries(r);
    if (entries)
        got = apply_batch(b, entries);
    if (!b->consumer.pending_done && got == 0) {
        b->consumer.pending_done = true;
        log_info("replayed pending entries; consuming new ones");
    }
    bk_consumer_resume(b);
}

void bk_consumer_resume(struct bk *b)
{
    /* Effects go through cmd: reading while it is down would apply entries
     * whose writes cannot be made, and before the lock is renewed on it,
     * writes that may no longer be ours to make. */
    if (b->consumer.reading || !b->rd.up || !b->cmd.up || !b->lead.confirmed || b->stopping)
        return;
    int rc;
    if (!b->consumer.pending_done)
        rc = rds_cmd(&b->rd, on_read, b, "XREADGROUP GROUP %s %s COUNT %ld STREAMS %s %s", EV_GROUP,
                     b->cfg.consumer, b->cfg.batch, EV_STREAM_IN, b->consumer.pending_cursor);
    else
        rc = rds_cmd(&b->rd, on_read, b, "XREADGROUP GROUP %s %s COUNT %ld BLOCK %d STREAMS %s >",
                     EV_GROUP, b->cfg.consumer, b->cfg.batch, BK_XREAD_BLOCK_MS, EV_STREAM_IN);
    if (rc == 0)
        b->consumer.reading = true;
}

static void on_rd_state(struct rds *r, bool up, void *arg)
{
    struct bk *b = arg;
    (void)r;
    b->consumer.reading = false;
    if (up) {
        /* After a reconnect, entries delivered but not acknowledged are ours
         * to replay first. */
        b->consumer.pending_done = false;
        snprintf(b->consumer.pending_cursor, sizeof(b->consumer.pending_cursor), "0");
        bk_consumer_resume(b);
    }
}

int bk_consumer_start(struct bk *b)
{
    return rds_init(&b->rd, b->base, b->cfg.redis_url, "read", on_rd_state, b);
}
