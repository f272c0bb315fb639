/*
 * bk_lead.c - the broker's life: start, stop, the tick, and leadership.
 *
 * One broker is active and any number stand by. The active one holds
 * herald:broker:lock (SET NX PX lock_ttl_ms, renewed every second by
 * compare-and-expire); a standby tries for it every 250 ms (at most
 * lock_ttl_ms / 4) and,
 * once it is free, claims what the previous broker had read but not
 * acknowledged (XAUTOCLAIM), loads the state (bk_load.c) and consumes
 * (bk_consumer.c). A broker that finds another one holding its lock stops
 * at once (exit status 3): two must never consume together.
 *
 * This is also where the features are put together: bk_init() registers
 * their hooks, in the order the state changes reach them.
 */
#include "bk_admin.h"
#include "bk_chat.h"
#include "bk_consumer.h"
#include "bk_feed.h"
#include "bk_load.h"
#include "bk_match.h"
#include "bk_out.h"
#include "bk_presence.h"
#include "bk_rooms.h"
#include "bk_webhook.h"
#include "log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Tick of the broker's timer: grace expiries are this precise. */
#define BK_TICK_MS 20
/* Heartbeat period and TTL of herald:broker:alive. */
#define BK_HEARTBEAT_MS 1000
#define BK_HEARTBEAT_TTL_MS 5000
/* Most time between two tries of a standby for the lock. */
#define BK_STANDBY_POLL_MS 250
/* A bound on the XAUTOCLAIM loop, far above any backlog: rounds of 1000
 * entries. */
#define BK_CLAIM_ROUNDS 100000

/* The features, in the order their hooks run: rooms before matchmaking on
 * a resync (as the keys were always written), chat buckets on the tick. */
static const struct bk_hooks *const bk_features[] = {
    &bk_rooms_hooks,
    &bk_chat_hooks,
    &bk_match_hooks,
};

/* ---- the lock -------------------------------------------------------------- */

/* Renews the lock only while it is still ours (compare and expire); takes
 * it again when nobody holds it (Redis restarted empty, or our renewals
 * stalled past the TTL and no standby took over). 0: another broker has it. */
static const char lock_renew_lua[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end "
    "return 0";
/* Releases it only while it is still ours (compare and delete). */
static const char lock_release_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                       "return redis.call('DEL', KEYS[1]) else return 0 end";

/* Another broker holds the lock: it took over while we could not renew (a
 * stall, a partition). Two brokers must never consume at once, and we must
 * write nothing more: stop reading, drop what is queued for Redis, exit,
 * and let the supervisor restart us as a standby. */
static void lock_lost(struct bk *b)
{
    log_error("lost the broker lock to another broker: stopping without writing anything more");
    b->lead.lost_lock = true;
    b->stopping = true;
    event_base_loopexit(b->base, NULL);
}

static void on_lock_renewed(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && !b->stopping)
        lock_lost(b);
}

static void renew_lock_cb(struct bk *b, redisCallbackFn *fn)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", b->cfg.lock_ttl_ms);
    const char *argv[] = {"EVAL", lock_renew_lua, "1", BK_LOCK_KEY, b->cfg.consumer, ttl};
    const size_t lens[] = {
        4,          sizeof(lock_renew_lua) - 1, 1, sizeof(BK_LOCK_KEY) - 1, strlen(b->cfg.consumer),
        strlen(ttl)};
    bk_send(b, fn, b, 6, argv, lens);
}

static void renew_lock(struct bk *b)
{
    renew_lock_cb(b, on_lock_renewed);
}

/* SET herald:broker:alive "<consumer> <term>" PX 5000: the gateways'
 * /healthz, and how they see that another broker (or this one restarted)
 * took over: the term is new each time a broker starts leading, and a
 * gateway that sees it change lists its connections again (gw_bus.c). */
static void heartbeat(struct bk *b)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%d", BK_HEARTBEAT_TTL_MS);
    bk_cmd_strs(b, 5, (const char *[]){"SET", BK_ALIVE_KEY, b->lead.term, "PX", ttl});
}

static void confirm_lock(struct bk *b);

/* ---- the tick --------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bk *b = arg;
    (void)fd;
    (void)what;
    int64_t now = bk_now(b);
    bk_presence_tick(b, now);
    bk_hooks_tick(b, now);
    /* As the gateways do: free pages back to the system after a burst. */
    memtrim_tick(&b->lead.trim, now);
    if (now - b->lead.last_info_ms >= BK_HEARTBEAT_MS) {
        b->lead.last_info_ms = now;
        bk_admin_refresh(b);
    }
    /* After a reconnect, nothing of the below until the lock is ours again
     * (on_lock_confirmed): a lease check then would find Redis's empty
     * state and reap every gateway. A confirmation that failed (Redis
     * still loading its data, say) is asked again here. */
    if (b->cmd.up && !b->lead.confirmed) {
        if (!b->lead.confirming)
            confirm_lock(b);
        return;
    }
    if (now - b->lead.last_heartbeat_ms >= BK_HEARTBEAT_MS && b->cmd.up) {
        b->lead.last_heartbeat_ms = now;
        heartbeat(b);
        renew_lock(b);
        bk_consumer_trim(b);
        bk_feed_trim(b);
    }
    /* See EV_LEASE_TTL: a dead gateway is reaped within 4/5 of the lease. */
    if (now - b->lead.last_lease_check_ms >= EV_LEASE_RENEW(b->cfg.gateway_lease_ms) && b->cmd.up) {
        b->lead.last_lease_check_ms = now;
        bk_presence_check_leases(b);
    }
}

/* ---- taking over -------------------------------------------------------------- */

/* The lock renewal that follows every (re)connect of the write connection:
 * only a broker that still holds the lock writes its state back (the
 * first time settled against what was loaded, after an outage rewritten as
 * a whole) and reads on. After a Redis restart the lock is gone and the
 * renewal takes it again (a standby waits a full lock TTL after its own
 * reconnect before trying, so this broker wins); after a stall past the
 * TTL a standby may hold it, and we stop. */
static void on_lock_confirmed(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    redisReply *r = reply;
    b->lead.confirming = false;
    if (!r || b->stopping)
        return; /* disconnected again: the next connect asks again */
    if (r->type != REDIS_REPLY_INTEGER) {
        log_warn_rl(5, "lock renewal: %s (asking again)",
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    if (r->integer == 0) {
        lock_lost(b);
        return;
    }
    b->lead.confirmed = true;
    heartbeat(b);
    if (!b->lead.reconciled) {
        b->lead.reconciled = true;
        bk_presence_reconcile(b);
    } else {
        bk_load_resync(b);
    }
    /* Every gateway's online list starts again from ours (a new broker,
     * or Redis back, maybe empty): what it heard before may be stale. */
    bk_online_list(b, NULL);
    bk_consumer_resume(b);
}

static void confirm_lock(struct bk *b)
{
    b->lead.confirming = true;
    renew_lock_cb(b, on_lock_confirmed);
}

static void on_cmd_state(struct rds *r, bool up, void *arg)
{
    struct bk *b = arg;
    (void)r;
    b->lead.confirmed = false;
    b->lead.confirming = false;
    if (up)
        confirm_lock(b);
}

/* Moves every pending entry of the group to us: the previous broker is
 * gone (we hold the lock), and what it had read but not acknowledged must
 * still take effect. Returns the number claimed. */
static long claim_pending(struct bk *b, redisContext *rc)
{
    char cursor[64] = "0-0";
    long claimed = 0;
    for (int rounds = 0; rounds < BK_CLAIM_ROUNDS; rounds++) {
        redisReply *r = redisCommand(rc, "XAUTOCLAIM %s %s %s 0 %s COUNT 1000", EV_STREAM_IN,
                                     EV_GROUP, b->cfg.consumer, cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        if (r->element[1]->type == REDIS_REPLY_ARRAY)
            claimed += (long)r->element[1]->elements;
        freeReplyObject(r);
        if (strcmp(cursor, "0-0") == 0)
            break;
    }
    return claimed;
}

/* SET NX of the lock, or our own name already in it (we were restarted
 * before it expired). Returns true when we hold it. */
static bool take_lock(struct bk *b, redisContext *rc)
{
    bool lead = false;
    if (bk_now(b) < b->lead.holdoff_until_ms)
        return false;
    redisReply *r =
        redisCommand(rc, "SET %s %s NX PX %ld", BK_LOCK_KEY, b->cfg.consumer, b->cfg.lock_ttl_ms);
    if (r && r->type == REDIS_REPLY_STATUS)
        lead = true;
    freeReplyObject(r);
    if (lead)
        return true;
    r = redisCommand(rc, "GET %s", BK_LOCK_KEY);
    if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, b->cfg.consumer) == 0)
        lead = true;
    else if (!b->lead.standby_logged)
        log_info("standby: broker %s is active; taking over when its lock lapses",
                 r && r->type == REDIS_REPLY_STRING ? r->str : "?");
    b->lead.standby_logged = true;
    freeReplyObject(r);
    return lead;
}

/* The standby's connection, kept between tries. A connection that broke
 * means Redis may have restarted and lost the lock with everything else:
 * the active broker is then given a full lock TTL to reconnect and take it
 * again before we try, so that a Redis restart never hands leadership to
 * us (our state would be Redis's empty one: every user announced again). */
static redisContext *standby_conn(struct bk *b)
{
    redisContext *rc = b->lead.rc;
    if (rc && !rc->err)
        return rc;
    if (rc) {
        redisFree(rc);
        b->lead.rc = NULL;
    }
    char err[256];
    if (!(rc = rds_connect_sync(b->cfg.redis_url, err, sizeof(err)))) {
        log_warn_rl(10, "%s (retrying)", err);
        return NULL;
    }
    if (b->lead.connected_once) {
        b->lead.holdoff_until_ms = bk_now(b) + b->cfg.lock_ttl_ms;
        log_info("standby: reconnected to Redis; giving the active broker %ld ms to renew its "
                 "lock before trying for it",
                 b->cfg.lock_ttl_ms);
    }
    b->lead.connected_once = true;
    b->lead.rc = rc;
    return rc;
}

/* Tries to become the active broker. Returns 1 (we lead: the lock is ours,
 * pending entries claimed, state loaded), 0 (another broker leads, Redis
 * is unreachable, or we hold off after a reconnect: try again later), -1
 * (fatal). */
static int try_lead(struct bk *b)
{
    redisContext *rc = standby_conn(b);
    if (!rc)
        return 0;
    if (!take_lock(b, rc)) {
        if (rc->err) /* the connection broke during the try: next time */
            standby_conn(b);
        return 0;
    }
    int64_t t0 = bk_now(b);
    int lr = bk_load_state(b, rc);
    long claimed = lr == 0 ? claim_pending(b, rc) : 0;
    if (lr == 0)
        bk_webhook_takeover(b, rc);
    redisFree(rc);
    b->lead.rc = NULL;
    if (lr != 0) {
        log_error("cannot load state from Redis");
        return -1;
    }
    log_info("active broker: lock taken, %ld pending entries claimed, state loaded in %lld ms",
             claimed, (long long)(bk_now(b) - t0));
    return 1;
}

static int become_leader(struct bk *b)
{
    b->lead.leading = true;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(b->lead.term, sizeof(b->lead.term), "%s %d.%lld", b->cfg.consumer, (int)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    if (rds_init(&b->cmd, b->base, b->cfg.redis_url, "cmd", on_cmd_state, b) != 0 ||
        bk_consumer_start(b) != 0 || bk_webhook_start(b) != 0)
        return -1;
    memtrim_init(&b->lead.trim);
    b->lead.tick_ev = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    struct timeval tv = {0, BK_TICK_MS * 1000};
    event_add(b->lead.tick_ev, &tv);
    b->lead.last_lease_check_ms = bk_now(b);
    return 0;
}

/* Standby: tries for the lock a few times per lock period. */
static void on_standby(evutil_socket_t fd, short what, void *arg)
{
    struct bk *b = arg;
    (void)fd;
    (void)what;
    int t = try_lead(b);
    if (t == 0)
        return;
    event_free(b->lead.standby_ev);
    b->lead.standby_ev = NULL;
    if (t < 0 || become_leader(b) != 0)
        event_base_loopexit(b->base, NULL);
}

/* ---- start and stop ------------------------------------------------------------- */

int bk_init(struct bk *b)
{
    if (!b->sink.cmd) {
        b->sink.cmd = bk_redis_sink;
        b->sink.arg = &b->cmd;
    }
    bk_presence_init(b);
    if (!ev_presence_scope(b->cfg.presence_scope, &b->cfg.scope_related)) {
        log_error("bad --presence-scope \"%s\": all or related", b->cfg.presence_scope);
        return -1;
    }
    if (b->cfg.max_presence_watch <= 0)
        b->cfg.max_presence_watch = 1000;
    for (size_t i = 0; i < sizeof(bk_features) / sizeof(bk_features[0]); i++)
        if (bk_hooks_add(b, bk_features[i]) != 0)
            return -1;
    return bk_hooks_init(b);
}

int bk_start(struct bk *b)
{
    if (bk_webhook_check(b) != 0 || bk_init(b) != 0 || bk_admin_start(b) != 0)
        return -1;
    int t = try_lead(b);
    if (t < 0)
        return -1;
    if (t > 0)
        return become_leader(b);
    b->lead.standby_ev = event_new(b->base, -1, EV_PERSIST, on_standby, b);
    /* From a dead broker's last renewal to our takeover: its TTL, then at
     * most one period (the connection is kept, so a try is one round
     * trip). */
    long every =
        b->cfg.lock_ttl_ms / 4 < BK_STANDBY_POLL_MS ? b->cfg.lock_ttl_ms / 4 : BK_STANDBY_POLL_MS;
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    return b->lead.standby_ev ? event_add(b->lead.standby_ev, &tv) : -1;
}

void bk_stop(struct bk *b)
{
    b->stopping = true;
    bk_admin_stop(b);
    if (b->lead.standby_ev)
        event_free(b->lead.standby_ev);
    b->lead.standby_ev = NULL;
    if (b->lead.rc)
        redisFree(b->lead.rc);
    b->lead.rc = NULL;
    if (b->lead.tick_ev)
        event_free(b->lead.tick_ev);
    b->lead.tick_ev = NULL;
    memtrim_free(&b->lead.trim);
    bk_webhook_stop(b);
    rds_free(&b->rd);
    if (b->cmd.up && b->lead.leading && !b->lead.lost_lock) {
        /* A standby takes over at once instead of waiting for the TTL. */
        bk_cmd_strs(b, 2, (const char *[]){"DEL", BK_ALIVE_KEY});
        bk_cmd_strs(b, 5,
                    (const char *[]){"EVAL", lock_release_lua, "1", BK_LOCK_KEY, b->cfg.consumer});
    }
    /* A broker that lost its lock drops what it had queued: the new one
     * owns Redis now. */
    if (!b->lead.lost_lock)
        rds_drain(&b->cmd, 1000);
    rds_free(&b->cmd);
    bk_hooks_free(b);
    bk_presence_free(b);
}
