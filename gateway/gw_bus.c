/*
 * gw_bus.c - the gateway's Redis side; see gw_bus.h for the two
 * connections and why the bus takes handlers.
 *
 * Ordering: the broker must see "hello" before any "open" of this gateway,
 * and our stream must be positioned before the broker can answer anything,
 * so nothing is published until `sub` has found where our stream ends.
 */
#include "gw_bus.h"
#include "gw_net.h"

#include "log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Entries taken per XREAD: large enough to amortise the round trip under a
 * broadcast burst, small enough to keep one loop iteration short. */
#define GW_XREAD_COUNT 512
/* While client events are held, the broker's read position is asked this
 * often (ms), and at once past GW_HELD_ASK of them. An event the broker
 * read less than this before Redis restarted may be answered unavailable
 * although it took effect; the other way round (silence) never happens. */
#define GW_HELD_POLL_MS 100
#define GW_HELD_ASK 4096
/* How long one XREAD blocks before it is reissued (ms). Short enough that a
 * dead connection is noticed, long enough to cost nothing when idle. */
#define GW_XREAD_BLOCK_MS 5000
/* The broker refreshes this key every second with a 5 s TTL. */
#define GW_BROKER_ALIVE_KEY "herald:broker:alive"

static void issue_xread(struct gw_bus *b);
static void publish_all_open(struct gw_bus *b);
static void on_last_entry(redisAsyncContext *ac, void *reply, void *priv);
static void announce_all(struct gw_bus *b);

static bool stream_ready(const struct gw_bus *b)
{
    return b->last_id[0] != '\0';
}

static void xadd(struct gw_bus *b, struct ev_args *a)
{
    if (rds_cmd_argv(&b->pub, NULL, NULL, a->argc, a->argv, a->argvlen) == 0)
        b->n_published++;
}

/* Starts an XADD on herald:events; the entry's fields follow (ev_enc_*).
 * No MAXLEN: an approximate trim drops entries the broker has not read
 * (Redis trims by length, whatever a consumer group still needs). The
 * broker trims what it has acknowledged (XTRIM MINID); the cap is kept by
 * refusing new client events while the stream is full. */
static void xadd_start(struct gw_bus *b, struct ev_args *a)
{
    (void)b;
    ev_args_xadd(a, EV_STREAM_IN, strlen(EV_STREAM_IN), 0);
}

/* Whether a client event or request may be published now. Opens, closes
 * and hello are always published: they keep presence true and are few. */
static bool may_publish(struct gw_bus *b)
{
    /* Between measurements the length is estimated from our own publishes,
     * so a stopped broker's stream stops at the cap, not a renewal period's
     * worth of events past it (other gateways' publishes are seen at the
     * next measurement). */
    if (b->cfg.stream_maxlen > 0 && !b->events_full &&
        b->events_len + (long long)(b->n_published - b->events_len_at) >= b->cfg.stream_maxlen) {
        b->events_full = true;
        log_warn("herald:events at its cap (%ld entries): client events refused as unavailable",
                 b->cfg.stream_maxlen);
    }
    if (stream_ready(b) && b->pub.up && !b->events_full && !b->fence_pending)
        return true;
    b->n_refused++;
    return false;
}

/* Adds id to the list the next "sync" entry carries. A failed allocation
 * ends the list early: the sync is then skipped (syncing cleared), never
 * sent short, which would drop live connections. */
static void sync_add(struct gw_bus *b, uint64_t id)
{
    if (b->sync_cap - b->sync_len < 22) {
        size_t cap = b->sync_cap ? b->sync_cap * 2 : 4096;
        char *v = realloc(b->sync_ids, cap);
        if (!v) {
            log_error("out of memory: connection list not sent to the broker");
            b->syncing = false;
            return;
        }
        b->sync_ids = v;
        b->sync_cap = cap;
    }
    int n = snprintf(b->sync_ids + b->sync_len, b->sync_cap - b->sync_len, "%s%llu",
                     b->sync_len ? "," : "", (unsigned long long)id);
    b->sync_len += (size_t)n;
}

bool gw_bus_open(struct gw_bus *b, uint64_t id, int64_t user_id, enum gw_client_kind kind,
                 uint32_t token, const char *offset)
{
    struct ev_args a;
    if (!stream_ready(b) || !b->pub.up)
        return false; /* publish_all_open() sends it once we are ready */
    xadd_start(b, &a);
    ev_enc_open(&a, b->cfg.id, id, user_id, kind == GW_CLIENT_SIO ? "sio" : "ws", token, offset);
    xadd(b, &a);
    if (b->syncing)
        sync_add(b, id);
    return true;
}

bool gw_bus_notify(struct gw_bus *b, const char *event, const char *json, size_t len)
{
    struct ev_args a;
    if (!stream_ready(b) || !b->pub.up)
        return false;
    xadd_start(b, &a);
    ev_enc_notify(&a, event, json, len);
    xadd(b, &a);
    return true;
}

void gw_bus_close(struct gw_bus *b, uint64_t id, bool recoverable)
{
    struct ev_args a;
    xadd_start(b, &a);
    ev_enc_close(&a, b->cfg.id, id, recoverable);
    xadd(b, &a);
}

/* ---- client events until the broker has them ---------------------------------- */

/*
 * Each client event is held in a ring from its XADD until the broker has
 * read it (the group's last-delivered-id reached its entry id), because
 * until then it can vanish without anyone answering its sender:
 *  - the connection to Redis drops with the XADD in flight (hiredis calls
 *    the callback with no reply), or Redis refuses it: maybe not taken;
 *  - Redis acknowledged it and then restarted without it (no persistence,
 *    or the last second of an AOF): checked at every reconnect, entry by
 *    entry (XRANGE id id), while it is still held.
 * Either way its sender is answered unavailable (on_lost). Replies come in
 * order, so the entry an XADD reply belongs to is the first one not yet
 * answered (at inflight_stored from the head). The ring is bounded by what
 * the broker has not read: herald:events' cap.
 */
enum { GW_IF_SENT, GW_IF_STORED, GW_IF_DONE };

static struct gw_inflight *inflight_at(struct gw_bus *b, size_t i)
{
    return &b->inflight[(b->inflight_head + i) % b->inflight_cap];
}

static bool inflight_push(struct gw_bus *b, uint64_t conn, int64_t ack_id)
{
    if (b->inflight_n == b->inflight_cap) {
        size_t cap = b->inflight_cap ? b->inflight_cap * 2 : 256;
        struct gw_inflight *v = malloc(cap * sizeof(*v));
        if (!v)
            return false;
        for (size_t i = 0; i < b->inflight_n; i++)
            v[i] = *inflight_at(b, i);
        free(b->inflight);
        b->inflight = v;
        b->inflight_cap = cap;
        b->inflight_head = 0;
    }
    *inflight_at(b, b->inflight_n) = (struct gw_inflight){.conn = conn, .ack_id = ack_id};
    b->inflight_n++;
    return true;
}

static bool id_le(uint64_t ms, uint64_t seq, uint64_t wms, uint64_t wseq)
{
    return ms < wms || (ms == wms && seq <= wseq);
}

static void inflight_lost(struct gw_bus *b, struct gw_inflight *f)
{
    f->state = GW_IF_DONE;
    b->n_lost++;
    if (b->h.on_lost && !b->stopping)
        b->h.on_lost(b->h.arg, f->conn, f->ack_id);
}

/* Drops from the head what is settled: answered as lost, or read by the
 * broker (at or below the watermark). */
static void inflight_pop(struct gw_bus *b)
{
    while (b->inflight_n > 0) {
        struct gw_inflight *f = inflight_at(b, 0);
        if (f->state == GW_IF_SENT ||
            (f->state == GW_IF_STORED && !id_le(f->ms, f->seq, b->read_ms, b->read_seq)))
            return;
        b->inflight_head = (b->inflight_head + 1) % b->inflight_cap;
        b->inflight_n--;
        HERALD_ASSERT(b->inflight_stored > 0);
        b->inflight_stored--;
    }
}

static void on_msg_written(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    redisReply *r = reply;
    HERALD_ASSERT(b->inflight_stored < b->inflight_n);
    struct gw_inflight *f = inflight_at(b, b->inflight_stored++);
    if (r && r->type == REDIS_REPLY_STRING && ev_id_split(r->str, r->len, &f->ms, &f->seq)) {
        f->state = GW_IF_STORED;
        b->last_ms = f->ms;
        b->last_seq = f->seq;
        return;
    }
    /* Not stored: it takes the last id seen, so ids stay sorted along the
     * ring (held_find() searches them). */
    f->ms = b->last_ms;
    f->seq = b->last_seq;
    if (r)
        log_warn_rl(5, "XADD %s refused: %s", EV_STREAM_IN,
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    inflight_lost(b, f);
    inflight_pop(b);
}

/* Entries below ms-seq (exclusive) are the broker's: the watermark is the
 * last one at or below which everything is settled. */
static void set_mark_below(struct gw_bus *b, uint64_t ms, uint64_t seq)
{
    if (seq > 0) {
        b->read_ms = ms;
        b->read_seq = seq - 1;
    } else if (ms > 0) {
        b->read_ms = ms - 1;
        b->read_seq = UINT64_MAX;
    } else {
        b->read_ms = b->read_seq = 0;
    }
    inflight_pop(b);
}

/* XPENDING herald:events brokers: everything below the oldest pending
 * entry is acknowledged. */
static void on_read_pending(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    b->mark_asked = false;
    const char *oldest = ev_pending_oldest(reply);
    uint64_t ms, seq;
    if (oldest && ev_id_split(oldest, strlen(oldest), &ms, &seq))
        set_mark_below(b, ms, seq);
}

/*
 * XINFO GROUPS herald:events: what the broker group has acknowledged is the
 * broker's (applied: its writes went before the XACK). Delivered is not
 * enough: a stopped broker's blocked read is still served by Redis. With
 * nothing pending that is everything up to last-delivered-id, else what is
 * below the oldest pending entry (XPENDING).
 */
static void on_read_mark(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    b->mark_asked = false;
    const char *last;
    long long pending;
    uint64_t ms, seq;
    if (!ev_group_progress(reply, &last, &pending) || !ev_id_split(last, strlen(last), &ms, &seq))
        return;
    if (pending == 0) {
        b->read_ms = ms;
        b->read_seq = seq;
        inflight_pop(b);
    } else if (rds_cmd(&b->pub, on_read_pending, b, "XPENDING %s %s", EV_STREAM_IN, EV_GROUP) ==
               0) {
        b->mark_asked = true;
    }
}

static void ask_read_mark(struct gw_bus *b)
{
    if (b->inflight_n == 0 || b->mark_asked || !b->pub.up)
        return;
    if (rds_cmd(&b->pub, on_read_mark, b, "XINFO GROUPS %s", EV_STREAM_IN) == 0)
        b->mark_asked = true;
}

static void on_held_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ask_read_mark(arg);
}

/* The stored entry with id ms-seq, or NULL. Ids grow along the ring (a
 * stream's ids only grow, and a restarted Redis's are later ones), so this
 * is a binary search over the answered prefix. */
static struct gw_inflight *held_find(struct gw_bus *b, uint64_t ms, uint64_t seq)
{
    size_t lo = 0, hi = b->inflight_stored;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct gw_inflight *f = inflight_at(b, mid);
        if (id_le(ms, seq, f->ms, f->seq))
            hi = mid;
        else
            lo = mid + 1;
    }
    for (; lo < b->inflight_stored; lo++) {
        struct gw_inflight *f = inflight_at(b, lo);
        if (f->ms != ms || f->seq != seq)
            return NULL;
        if (f->state == GW_IF_STORED)
            return f;
    }
    return NULL;
}

/* One held entry checked after a reconnect: still in the stream? */
struct held_check {
    struct gw_bus *b;
    uint64_t ms, seq;
};

static void on_held_check(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct held_check *hc = priv;
    struct gw_bus *b = hc->b;
    redisReply *r = reply;
    /* An empty answer: Redis restarted without it. No answer (dropped
     * again): the next reconnect asks again. */
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 0 && !b->stopping) {
        struct gw_inflight *f = held_find(b, hc->ms, hc->seq);
        if (f)
            inflight_lost(b, f);
        inflight_pop(b);
    }
    free(hc);
}

/* After a reconnect: every held entry the broker has not read may have
 * gone with a Redis restart. Asked before any watermark, so that a new
 * stream's ids (past ours) never settle an entry that is gone. */
static void check_held(struct gw_bus *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->inflight_n; i++) {
        struct gw_inflight *f = inflight_at(b, i);
        if (f->state != GW_IF_STORED)
            continue;
        struct held_check *hc = malloc(sizeof(*hc));
        if (!hc)
            break;
        *hc = (struct held_check){b, f->ms, f->seq};
        char id[48];
        snprintf(id, sizeof(id), "%llu-%llu", (unsigned long long)f->ms,
                 (unsigned long long)f->seq);
        if (rds_cmd(&b->pub, on_held_check, hc, "XRANGE %s %s %s", EV_STREAM_IN, id, id) != 0) {
            free(hc);
            break;
        }
        n++;
    }
    if (n)
        log_info("redis reconnected: checking that %zu event(s) not yet read by the broker are "
                 "still there",
                 n);
}

bool gw_bus_msg(struct gw_bus *b, uint64_t id, int64_t user_id, const char *type, const char *json,
                size_t len, int64_t ack_id)
{
    struct ev_args a;
    if (!may_publish(b) || !inflight_push(b, id, ack_id))
        return false;
    xadd_start(b, &a);
    ev_enc_msg(&a, b->cfg.id, id, user_id, type, json, len, ack_id, gw_now_ms());
    if (rds_cmd_argv(&b->pub, on_msg_written, b, a.argc, a.argv, a.argvlen) != 0) {
        b->inflight_n--; /* the one just pushed: no callback will pop it */
        return false;
    }
    b->n_published++;
    /* Many held: ask how far the broker has read without waiting for the
     * next renewal, which keeps the ring short under load (one question
     * at a time). */
    if (b->inflight_n >= GW_HELD_ASK)
        ask_read_mark(b);
    return true;
}

uint64_t gw_bus_request(struct gw_bus *b, uint64_t conn_id, const char *op, int64_t user_id,
                        const char *json, size_t len)
{
    struct ev_args a;
    if (!may_publish(b))
        return 0;
    uint64_t rid = ++b->next_req;
    xadd_start(b, &a);
    ev_enc_req(&a, b->cfg.id, conn_id, rid, user_id, op, json, len, gw_now_ms());
    xadd(b, &a);
    return rid;
}

bool gw_bus_healthy(const struct gw_bus *b)
{
    return b->pub.up && b->sub.up && b->broker_alive;
}

/* ---- lease and health ------------------------------------------------- */

static void on_broker_alive(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    redisReply *r = reply;
    bool alive = r && r->type == REDIS_REPLY_STRING;
    if (alive != b->broker_alive)
        log_info("broker is %s", alive ? "up" : "not answering");
    b->broker_alive = alive;
    if (!alive)
        return;
    /* The heartbeat names the broker's term: a new one means another
     * broker (or a restarted one) took over with the state it loaded from
     * Redis. Our connections are the truth: list them again, so that what
     * it missed (a close it never read) is settled. */
    if (b->broker_term[0] && strncmp(b->broker_term, r->str, sizeof(b->broker_term) - 1) != 0) {
        log_info("a new broker leads (%s): listing our connections again", r->str);
        announce_all(b);
    }
    snprintf(b->broker_term, sizeof(b->broker_term), "%s", r->str);
}

/* Renews our lease: the broker treats a gateway whose key expired as dead
 * and takes its users offline. */
/* XLEN herald:events: full while at the cap (the broker trims what it has
 * acknowledged, so it empties as soon as the broker catches up). */
static void on_events_len(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return;
    b->events_len = r->integer;
    b->events_len_at = b->len_asked_at;
    bool full =
        b->events_len + (long long)(b->n_published - b->events_len_at) >= b->cfg.stream_maxlen;
    if (full != b->events_full)
        log_warn("herald:events %s its cap (%lld of %ld entries): client events %s",
                 full ? "at" : "below", (long long)r->integer, b->cfg.stream_maxlen,
                 full ? "refused as unavailable" : "accepted again");
    b->events_full = full;
}

/* Renews the lease unless the broker wrote EV_LEASE_REAPED into it: 1
 * renewed, 0 given up. */
static const char lease_renew_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end "
                                      "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";

/* Finds where our stream ends and reads on from there; publish_all_open()
 * follows (hello first when it is due). */
static void position_stream(struct gw_bus *b)
{
    rds_cmd(&b->sub, on_last_entry, b, "XREVRANGE %s + - COUNT 1", b->stream);
}

/*
 * The broker gave us up: we were paused or cut off past our lease and it
 * took our users offline. Our clients missed whatever happened meanwhile,
 * so they will be closed with 1012 (they reconnect, here or elsewhere, and
 * get the state afresh). First we register again ("hello"), and the
 * broker answers what they sent before that (unavailable: it no longer
 * held them) ahead of its "welcome" in our stream, so those answers reach
 * them before the close. Until the welcome, client events are refused
 * here.
 */
static void fenced(struct gw_bus *b)
{
    log_warn("the broker gave this gateway up (no lease renewal reached Redis in time): "
             "registering again; its clients will be closed with 1012");
    b->n_fenced++;
    b->fence_pending = true;
    b->fenced_at_ms = gw_now_ms();
    if (b->h.on_fenced)
        b->h.on_fenced(b->h.arg);
    b->hello_sent = false;
    publish_all_open(b);
}

/* The old registration's clients go: the broker answered everything they
 * sent (its welcome), or it did not answer within a lease. */
static void fence_done(struct gw_bus *b)
{
    b->fence_pending = false;
    if (b->h.on_welcome)
        b->h.on_welcome(b->h.arg);
}

static void on_lease_renewed(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && b->hello_sent)
        fenced(b);
}

static void on_lease_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_bus *b = arg;
    (void)fd;
    (void)what;
    if (!b->pub.up) {
        b->broker_alive = false;
        return;
    }
    if (b->hello_sent) {
        char pid[24], ttl[24];
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        snprintf(ttl, sizeof(ttl), "%ld", EV_LEASE_TTL(b->cfg.lease_ms));
        const char *argv[] = {"EVAL", lease_renew_lua, "1", b->lease_key, pid,
                              ttl,    EV_LEASE_REAPED};
        const size_t lens[] = {
            4,           sizeof(lease_renew_lua) - 1, 1, strlen(b->lease_key), strlen(pid),
            strlen(ttl), sizeof(EV_LEASE_REAPED) - 1};
        rds_cmd_argv(&b->pub, on_lease_renewed, b, 7, argv, lens);
    }
    rds_cmd(&b->pub, on_broker_alive, b, "GET %s", GW_BROKER_ALIVE_KEY);
    if (b->fence_pending && gw_now_ms() - b->fenced_at_ms >= b->cfg.lease_ms) {
        log_warn("no welcome from the broker within %ld ms of registering again: closing the "
                 "old clients anyway",
                 b->cfg.lease_ms);
        fence_done(b);
    }
    if (b->cfg.stream_maxlen > 0 &&
        rds_cmd(&b->pub, on_events_len, b, "XLEN %s", EV_STREAM_IN) == 0)
        b->len_asked_at = b->n_published;
}

/* Announces us and every connection we hold. Run when our stream is
 * positioned and on every reconnect to Redis (which may have restarted and
 * forgotten everything); "open" is idempotent in the broker. */
static void publish_all_open(struct gw_bus *b)
{
    struct ev_args a;
    if (!stream_ready(b) || !b->pub.up)
        return;
    if (!b->hello_sent) {
        /* A registration overwrites whatever the lease key holds (a
         * previous life's lease, or the broker's "reaped"), before the
         * hello that makes the broker count us again. */
        rds_cmd(&b->pub, NULL, NULL, "SET %s %d PX %ld", b->lease_key, (int)getpid(),
                EV_LEASE_TTL(b->cfg.lease_ms));
        xadd_start(b, &a);
        ev_enc_hello(&a, b->cfg.id);
        xadd(b, &a);
        b->hello_sent = true;
        log_info("gateway %s announced to the broker", b->cfg.id);
    }
    on_lease_timer(-1, 0, b);
    announce_all(b);
}

/* Every connection we hold, announced again, then the list of them: the
 * broker drops what it still holds for us and is not listed (a close we
 * could not publish while Redis was down, or that a broker which took
 * over never read). */
static void announce_all(struct gw_bus *b)
{
    struct ev_args a;
    if (!stream_ready(b) || !b->pub.up || !b->hello_sent)
        return;
    b->syncing = true;
    b->sync_len = 0;
    if (b->h.on_ready)
        b->h.on_ready(b->h.arg);
    if (b->syncing) {
        xadd_start(b, &a);
        ev_enc_sync(&a, b->cfg.id, b->sync_ids, b->sync_len);
        xadd(b, &a);
    }
    b->syncing = false;
}

/* ---- reading our stream ------------------------------------------------- */

/*
 * What we have read goes, batch by batch (the broker never trims our
 * stream: it would drop what we have not read, and it counts what is left
 * as our backlog), except the last recovery window of it, at most
 * retain_max entries: a session that comes back, here or on another
 * gateway, finds what it missed there (PROTOCOL.md §4a). The batches read
 * are kept in a ring of chunks of at most GW_KEPT_CHUNK entries (last id,
 * when read, how many) and dropped whole, oldest first, with XTRIM MINID at
 * the last dropped chunk's last id: that one entry stays, so a client whose
 * offset it is can still come back.
 */
/* Entries per kept chunk: trimming drops whole chunks, so the log is kept
 * to --recovery-log-max within this many. */
#define GW_KEPT_CHUNK 64

/* Appends a chunk of n entries ending at id, read at now. */
static void kept_add(struct gw_bus *b, const char *id, size_t n, int64_t now)
{
    if (b->kept_n == GW_KEPT_BATCHES) {
        /* The ring is full: the oldest chunk goes. */
        struct gw_kept *old = &b->kept[b->kept_head];
        snprintf(b->trim_to, sizeof(b->trim_to), "%s", old->last_id);
        b->kept_entries -= old->count;
        b->kept_head = (b->kept_head + 1) % GW_KEPT_BATCHES;
        b->kept_n--;
        b->trim_pending = true;
    }
    struct gw_kept *k = &b->kept[(b->kept_head + b->kept_n) % GW_KEPT_BATCHES];
    snprintf(k->last_id, sizeof(k->last_id), "%s", id);
    k->ms = now;
    k->count = n;
    b->kept_n++;
    b->kept_entries += n;
}

static void retain(struct gw_bus *b, const redisReply *entries)
{
    if (b->cfg.retain_ms <= 0) {
        if (b->pub.up)
            rds_cmd(&b->pub, NULL, NULL, "XTRIM %s MINID %s", b->stream, b->last_id);
        return;
    }
    int64_t now = gw_now_ms();
    size_t n = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *en = entries->element[i];
        n++;
        if ((n == GW_KEPT_CHUNK || i + 1 == entries->elements) && en->type == REDIS_REPLY_ARRAY &&
            en->elements == 2 && en->element[0]->type == REDIS_REPLY_STRING) {
            kept_add(b, en->element[0]->str, n, now);
            n = 0;
        }
    }
    while (b->kept_n > 1) {
        struct gw_kept *old = &b->kept[b->kept_head];
        if (now - old->ms <= b->cfg.retain_ms && b->kept_entries <= (size_t)b->cfg.retain_max)
            break;
        snprintf(b->trim_to, sizeof(b->trim_to), "%s", old->last_id);
        b->kept_entries -= old->count;
        b->kept_head = (b->kept_head + 1) % GW_KEPT_BATCHES;
        b->kept_n--;
        b->trim_pending = true;
    }
    if (b->trim_pending && b->pub.up)
        b->trim_pending =
            rds_cmd(&b->pub, NULL, NULL, "XTRIM %s MINID %s", b->stream, b->trim_to) != 0;
}

/* Applies the entries of one XREAD reply, in order; the last id read is
 * where the next XREAD starts, malformed entries included (skipped). */
static void apply_entries(struct gw_bus *b, const redisReply *r)
{
    const redisReply *entries = ev_reply_entries(r);
    if (!entries)
        return;
    for (size_t i = 0; i < entries->elements; i++) {
        struct ev_entry e;
        const char *id;
        int st = ev_entry_from_reply(&e, entries->element[i], &id);
        if (id)
            snprintf(b->last_id, sizeof(b->last_id), "%s", id);
        if (st != 0) {
            if (id)
                log_warn_rl(5, "skipping malformed entry %s on %s", id, b->stream);
            continue;
        }
        b->n_entries_in++;
        if (ev_is(e.type, e.type_len, "welcome")) {
            if (b->fence_pending)
                fence_done(b);
            continue;
        }
        if (b->h.on_entry)
            b->h.on_entry(b->h.arg, &e);
    }
}

static void on_xread(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    redisReply *r = reply;
    b->reading = false;
    if (!r)
        return; /* disconnected: on_sub_state restarts reading */
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("XREAD %s: %s", b->stream, r->str);
    } else if (r->type == REDIS_REPLY_ARRAY) {
        const redisReply *en = ev_reply_entries(r);
        apply_entries(b, r);
        if (en && en->elements)
            retain(b, en);
    }
    issue_xread(b);
}

static void issue_xread(struct gw_bus *b)
{
    if (b->reading || !b->sub.up || !stream_ready(b))
        return;
    if (rds_cmd(&b->sub, on_xread, b, "XREAD COUNT %d BLOCK %d STREAMS %s %s", GW_XREAD_COUNT,
                GW_XREAD_BLOCK_MS, b->stream, b->last_id) == 0)
        b->reading = true;
}

/* First connection: our stream may hold entries for a previous life of this
 * gateway id; start after the newest one. */
static void on_last_entry(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    redisReply *r = reply;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(b->last_id, sizeof(b->last_id), "%s", r->element[0]->element[0]->str);
    else
        snprintf(b->last_id, sizeof(b->last_id), "0-0");
    issue_xread(b);
    publish_all_open(b);
}

static void on_sub_state(struct rds *r, bool up, void *arg)
{
    struct gw_bus *b = arg;
    (void)r;
    b->reading = false;
    if (!up)
        return;
    if (!stream_ready(b))
        position_stream(b);
    else
        issue_xread(b);
}

/* The deleted accounts the broker recorded while we were away. */
static void on_deleted_users(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw_bus *b = priv;
    redisReply *r = reply;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            if (b->h.on_deleted)
                b->h.on_deleted(b->h.arg, strtoll(r->element[i]->str, NULL, 10));
}

static void on_pub_state(struct rds *r, bool up, void *arg)
{
    struct gw_bus *b = arg;
    (void)r;
    if (up) {
        check_held(b);
        rds_cmd(&b->pub, on_deleted_users, b, "SMEMBERS %s", EV_DELETED_SET);
        publish_all_open(b);
    } else {
        b->broker_alive = false;
        b->mark_asked = false; /* its callback ran with no reply */
    }
}

int gw_bus_start(struct gw_bus *b, struct event_base *base, const struct gw_bus_config *cfg,
                 const struct gw_bus_handlers *h)
{
    b->cfg = *cfg;
    b->h = *h;
    snprintf(b->stream, sizeof(b->stream), "%s%s", EV_GW_STREAM_PREFIX, cfg->id);
    snprintf(b->lease_key, sizeof(b->lease_key), "%s%s:lease", EV_GW_STREAM_PREFIX, cfg->id);
    if (rds_init(&b->pub, base, cfg->redis_url, "pub", on_pub_state, b) != 0)
        return -1;
    if (rds_init(&b->sub, base, cfg->redis_url, "sub", on_sub_state, b) != 0)
        return -1;
    /* Three renewals per lease TTL: two lost ones do not make us look dead
     * (see EV_LEASE_TTL). */
    long every = EV_LEASE_RENEW(cfg->lease_ms);
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    b->lease_ev = event_new(base, -1, EV_PERSIST, on_lease_timer, b);
    if (!b->lease_ev)
        return -1;
    event_add(b->lease_ev, &tv);
    struct timeval hv = {0, GW_HELD_POLL_MS * 1000};
    b->held_ev = event_new(base, -1, EV_PERSIST, on_held_timer, b);
    if (!b->held_ev)
        return -1;
    event_add(b->held_ev, &hv);
    return 0;
}

void gw_bus_stop(struct gw_bus *b)
{
    b->stopping = true; /* callbacks run by the frees below answer nobody */
    /* A clean exit tells the broker at once instead of letting the lease
     * lapse; the close entries of the connections just freed are still in
     * pub's output buffer. */
    if (b->pub.up)
        rds_cmd(&b->pub, NULL, NULL, "DEL %s", b->lease_key);
    rds_free(&b->sub);
    /* Let hiredis write what is queued before exiting. */
    rds_drain(&b->pub, 1000);
    if (b->lease_ev) {
        event_free(b->lease_ev);
        b->lease_ev = NULL;
    }
    if (b->held_ev) {
        event_free(b->held_ev);
        b->held_ev = NULL;
    }
    rds_free(&b->pub);
    free(b->sync_ids);
    b->sync_ids = NULL;
    free(b->inflight);
    b->inflight = NULL;
    b->inflight_n = b->inflight_cap = b->inflight_stored = 0;
    b->sync_len = b->sync_cap = 0;
}
