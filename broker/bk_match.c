/*
 * bk_match.c - matchmaking; see bk_match.h.
 *
 * The queue is a list of users threaded through struct bk_user (a user is
 * queued at most once), mirrored in Redis with RPUSH / LREM. A user whose
 * last tab closes, or whose account is deleted, leaves it (the user_idle
 * hook): a player without a tab cannot play. Match ids are unique across
 * broker restarts: the wall clock plus a counter.
 */
#include "bk_match.h"

#include "bk_out.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* RPUSH or LREM user u in herald:matchmaking. */
static void queue_write(struct bk *b, bool push, const struct bk_user *u)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, push ? "RPUSH" : "LREM");
    ev_args_adds(&a, BK_QUEUE_KEY);
    if (!push)
        ev_args_adds(&a, "0");
    ev_args_add_i64(&a, u->id);
    bk_cmd(b, &a);
}

/* Hook user_idle, and leave-matchmaking: out of the queue. */
static void queue_remove(struct bk *b, struct bk_user *u)
{
    if (!u->queued)
        return;
    TAILQ_REMOVE(&b->match.queue, u, queue);
    u->queued = false;
    b->match.n--;
    queue_write(b, false, u);
}

static void queue_push(struct bk *b, struct bk_user *u, bool persist)
{
    TAILQ_INSERT_TAIL(&b->match.queue, u, queue);
    u->queued = true;
    b->match.n++;
    if (persist)
        queue_write(b, true, u);
}

/* match-found {matchId, opponent} to every tab of to. */
static void send_match(struct bk *b, const char *match_id, struct bk_user *to,
                       const struct bk_user *opponent)
{
    struct json_object *ev = json_object_new_object(), *op = json_object_new_object();
    json_object_object_add(op, "userId", json_object_new_int64(opponent->id));
    json_object_object_add(op, "username", json_object_new_string(opponent->username));
    json_object_object_add(ev, "matchId", json_object_new_string(match_id));
    json_object_object_add(ev, "opponent", op);
    bk_to_user_json(b, to, "match-found", ev);
    json_object_put(ev);
}

void bk_match_join(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    (void)args;
    struct bk_user *u = o->c->user;
    if (u->queued) {
        BK_ANSWER_OK_LIT(b, o, "{\"ok\":true,\"status\":\"queued\"}");
        return;
    }
    struct bk_user *other = TAILQ_FIRST(&b->match.queue);
    if (!other) {
        queue_push(b, u, true);
        BK_ANSWER_OK_LIT(b, o, "{\"ok\":true,\"status\":\"queued\"}");
        return;
    }
    queue_remove(b, other);
    /* Unique across broker restarts: wall clock plus a counter. */
    char match_id[48];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(match_id, sizeof(match_id), "m%llx-%llx",
             (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000,
             (unsigned long long)++b->match.next_id);
    send_match(b, match_id, other, u);
    send_match(b, match_id, u, other);
    b->counters.matches++;
    log_info("match %s: user %lld vs user %lld", match_id, (long long)other->id, (long long)u->id);
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true,\"status\":\"matched\"}");
}

void bk_match_leave(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    (void)args;
    queue_remove(b, o->c->user);
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true,\"status\":\"left\"}");
}

/* ---- hooks ------------------------------------------------------------------ */

static int match_init(struct bk *b)
{
    TAILQ_INIT(&b->match.queue);
    return 0;
}

/* Start-up: the queue from Redis, without whoever left while no broker ran
 * (no connection any more), written back as it now is. */
static void match_loaded(struct bk *b, redisContext *rc)
{
    redisReply *r = redisCommand(rc, "LRANGE %s 0 -1", BK_QUEUE_KEY);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        struct bk_user *u = bk_user_find(b, strtoll(r->element[i]->str, NULL, 10));
        if (u && u->nconns > 0 && !u->queued)
            queue_push(b, u, false);
    }
    freeReplyObject(r);
    freeReplyObject(redisCommand(rc, "DEL %s", BK_QUEUE_KEY));
    struct bk_user *u;
    TAILQ_FOREACH(u, &b->match.queue, queue)
    freeReplyObject(redisCommand(rc, "RPUSH %s %lld", BK_QUEUE_KEY, (long long)u->id));
}

static void match_resync(struct bk *b)
{
    bk_cmd_strs(b, 2, (const char *[]){"DEL", BK_QUEUE_KEY});
    struct bk_user *u;
    TAILQ_FOREACH(u, &b->match.queue, queue)
    queue_write(b, true, u);
}

static void match_free(struct bk *b)
{
    /* The users are presence's: only unlink them. */
    while (TAILQ_FIRST(&b->match.queue))
        TAILQ_REMOVE(&b->match.queue, TAILQ_FIRST(&b->match.queue), queue);
}

const struct bk_hooks bk_match_hooks = {
    .name = "matchmaking",
    .init = match_init,
    .user_idle = queue_remove,
    .loaded = match_loaded,
    .resync = match_resync,
    .free = match_free,
};
