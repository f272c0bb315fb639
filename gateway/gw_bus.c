/*
 * gw_bus.c - the gateway's Redis side.
 *
 * Two connections: `pub` carries everything we write (XADD to herald:events,
 * the liveness lease, the broker-health probe) and is pipelined by hiredis;
 * `sub` does nothing but XREAD BLOCK on our own stream herald:gw:<id>, so a
 * blocked read never delays a publish.
 *
 * Ordering: the broker must see "hello" before any "open" of this gateway,
 * and our stream must be positioned before the broker can answer anything,
 * so nothing is published until `sub` has found where our stream ends.
 */
#include "gw.h"

#include "log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Entries taken per XREAD: large enough to amortise the round trip under a
 * broadcast burst, small enough to keep one loop iteration short. */
#define GW_XREAD_COUNT 512
/* How long one XREAD blocks before it is reissued (ms). Short enough that a
 * dead connection is noticed, long enough to cost nothing when idle. */
#define GW_XREAD_BLOCK_MS 5000
/* The broker refreshes this key every second with a 5 s TTL. */
#define GW_BROKER_ALIVE_KEY "herald:broker:alive"

static void issue_xread(struct gw *g);
static void publish_all_open(struct gw *g);

static bool stream_ready(const struct gw *g)
{
    return g->last_id[0] != '\0';
}

static void xadd(struct gw *g, struct ev_args *a)
{
    if (rds_cmd_argv(&g->pub, NULL, NULL, a->argc, a->argv, a->argvlen) == 0)
        g->n_published++;
}

static void args_start(struct gw *g, struct ev_args *a, const char *type)
{
    ev_args_xadd(a, EV_STREAM_IN, strlen(EV_STREAM_IN), g->cfg.stream_maxlen);
    ev_args_adds(a, "t");
    ev_args_adds(a, type);
    ev_args_adds(a, "gw");
    ev_args_adds(a, g->id);
}

bool gw_bus_open(struct gw *g, uint64_t id, int64_t user_id, uint8_t kind)
{
    struct ev_args a;
    if (!stream_ready(g) || !g->pub.up)
        return false; /* publish_all_open() sends it once we are ready */
    args_start(g, &a, "open");
    ev_args_adds(&a, "c");
    ev_args_add_u64(&a, id);
    ev_args_adds(&a, "u");
    ev_args_add_i64(&a, user_id);
    ev_args_adds(&a, "k");
    ev_args_adds(&a, kind == GW_KIND_SIO ? "sio" : "ws");
    xadd(g, &a);
    return true;
}

void gw_bus_close(struct gw *g, uint64_t id)
{
    struct ev_args a;
    args_start(g, &a, "close");
    ev_args_adds(&a, "c");
    ev_args_add_u64(&a, id);
    xadd(g, &a);
}

void gw_bus_msg(struct gw *g, uint64_t id, int64_t user_id, const char *type, const char *json,
                size_t len, int64_t ack_id)
{
    struct ev_args a;
    args_start(g, &a, "msg");
    ev_args_adds(&a, "c");
    ev_args_add_u64(&a, id);
    ev_args_adds(&a, "u");
    ev_args_add_i64(&a, user_id);
    ev_args_adds(&a, "e");
    ev_args_adds(&a, type);
    ev_args_adds(&a, "d");
    ev_args_add(&a, json, len);
    if (ack_id >= 0) {
        ev_args_adds(&a, "r");
        ev_args_add_i64(&a, ack_id);
        ev_args_adds(&a, "m");
        ev_args_add_i64(&a, gw_now_ms());
    }
    xadd(g, &a);
}

uint64_t gw_bus_request(struct gw *g, struct gw_conn *c, const char *op, int64_t user_id,
                        const char *json, size_t len)
{
    struct ev_args a;
    if (!stream_ready(g) || !g->pub.up)
        return 0;
    uint64_t rid = ++g->next_req;
    args_start(g, &a, "req");
    ev_args_adds(&a, "c");
    ev_args_add_u64(&a, c->id);
    ev_args_adds(&a, "r");
    ev_args_add_u64(&a, rid);
    if (user_id > 0) {
        ev_args_adds(&a, "u");
        ev_args_add_i64(&a, user_id);
    }
    ev_args_adds(&a, "e");
    ev_args_adds(&a, op);
    ev_args_adds(&a, "d");
    ev_args_add(&a, json, len);
    ev_args_adds(&a, "m");
    ev_args_add_i64(&a, gw_now_ms());
    xadd(g, &a);
    return rid;
}

bool gw_bus_healthy(const struct gw *g)
{
    return g->pub.up && g->sub.up && g->broker_alive;
}

/* ---- lease and health ------------------------------------------------- */

static void on_broker_alive(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw *g = priv;
    redisReply *r = reply;
    bool alive = r && r->type == REDIS_REPLY_STRING;
    if (alive != g->broker_alive)
        log_info("broker is %s", alive ? "up" : "not answering");
    g->broker_alive = alive;
}

/* Renews our lease: the broker treats a gateway whose key expired as dead
 * and takes its users offline. */
static void on_lease_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw *g = arg;
    (void)fd;
    (void)what;
    if (!g->pub.up) {
        g->broker_alive = false;
        return;
    }
    rds_cmd(&g->pub, NULL, NULL, "SET %s %d PX %ld", g->lease_key, (int)getpid(),
            EV_LEASE_TTL(g->cfg.gateway_lease_ms));
    rds_cmd(&g->pub, on_broker_alive, g, "GET %s", GW_BROKER_ALIVE_KEY);
}

/* Announces us and every connection we hold. Run when our stream is
 * positioned and on every reconnect to Redis (which may have restarted and
 * forgotten everything); "open" is idempotent in the broker. */
static void publish_all_open(struct gw *g)
{
    struct ev_args a;
    if (!stream_ready(g) || !g->pub.up)
        return;
    if (!g->hello_sent) {
        args_start(g, &a, "hello");
        xadd(g, &a);
        g->hello_sent = true;
        log_info("gateway %s announced to the broker", g->id);
    }
    on_lease_timer(-1, 0, g);
    struct gw_conn *c;
    TAILQ_FOREACH(c, &g->net.conns, link)
    {
        if ((c->flags & GW_CONN_WS) && !(c->flags & GW_CONN_DEAD) && c->kind == GW_KIND_RAW &&
            gw_bus_open(g, c->id, c->user_id, c->kind))
            c->flags |= GW_CONN_OPEN_SENT;
    }
    gw_sio_publish_all_open(g);
}

/* ---- reading our stream ------------------------------------------------- */

/* Applies the entries of one XREAD reply: [[stream, [[id, [f, v, ...]], ...]]]. */
static void apply_entries(struct gw *g, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return;
    redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
        s->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    redisReply *entries = s->element[1];
    for (size_t i = 0; i < entries->elements; i++) {
        redisReply *en = entries->element[i];
        if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
            en->element[0]->type != REDIS_REPLY_STRING)
            continue;
        snprintf(g->last_id, sizeof(g->last_id), "%s", en->element[0]->str);
        redisReply *fv = en->element[1];
        if (fv->type != REDIS_REPLY_ARRAY || fv->elements > 2 * EV_MAX_FIELDS)
            continue;
        const char *fields[2 * EV_MAX_FIELDS];
        size_t lens[2 * EV_MAX_FIELDS];
        size_t nf = 0;
        for (size_t j = 0; j < fv->elements; j++) {
            if (fv->element[j]->type != REDIS_REPLY_STRING)
                break;
            fields[nf] = fv->element[j]->str;
            lens[nf++] = fv->element[j]->len;
        }
        struct ev_entry e;
        if (ev_entry_parse(&e, fields, lens, nf) != 0) {
            log_warn_rl(5, "skipping malformed entry %s on %s", g->last_id, g->stream);
            continue;
        }
        g->n_entries_in++;
        gw_app_on_entry(g, &e);
    }
}

static void on_xread(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw *g = priv;
    redisReply *r = reply;
    g->reading = false;
    if (!r)
        return; /* disconnected: on_sub_state restarts reading */
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("XREAD %s: %s", g->stream, r->str);
    } else if (r->type == REDIS_REPLY_ARRAY) {
        apply_entries(g, r);
    }
    issue_xread(g);
}

static void issue_xread(struct gw *g)
{
    if (g->reading || !g->sub.up || !stream_ready(g))
        return;
    if (rds_cmd(&g->sub, on_xread, g, "XREAD COUNT %d BLOCK %d STREAMS %s %s", GW_XREAD_COUNT,
                GW_XREAD_BLOCK_MS, g->stream, g->last_id) == 0)
        g->reading = true;
}

/* First connection: our stream may hold entries for a previous life of this
 * gateway id; start after the newest one. */
static void on_last_entry(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw *g = priv;
    redisReply *r = reply;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(g->last_id, sizeof(g->last_id), "%s", r->element[0]->element[0]->str);
    else
        snprintf(g->last_id, sizeof(g->last_id), "0-0");
    issue_xread(g);
    publish_all_open(g);
}

static void on_sub_state(struct rds *r, bool up, void *arg)
{
    struct gw *g = arg;
    (void)r;
    g->reading = false;
    if (!up)
        return;
    if (!stream_ready(g))
        rds_cmd(&g->sub, on_last_entry, g, "XREVRANGE %s + - COUNT 1", g->stream);
    else
        issue_xread(g);
}

/* The deleted accounts the broker recorded while we were away. */
static void on_deleted_users(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct gw *g = priv;
    redisReply *r = reply;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            gw_user_deleted_add(g, strtoll(r->element[i]->str, NULL, 10));
}

static void on_pub_state(struct rds *r, bool up, void *arg)
{
    struct gw *g = arg;
    (void)r;
    if (up) {
        rds_cmd(&g->pub, on_deleted_users, g, "SMEMBERS %s", EV_DELETED_SET);
        publish_all_open(g);
    } else
        g->broker_alive = false;
}

int gw_bus_start(struct gw *g)
{
    snprintf(g->stream, sizeof(g->stream), "%s%s", EV_GW_STREAM_PREFIX, g->id);
    snprintf(g->lease_key, sizeof(g->lease_key), "%s%s:lease", EV_GW_STREAM_PREFIX, g->id);
    if (rds_init(&g->pub, g->base, g->cfg.redis_url, "pub", on_pub_state, g) != 0)
        return -1;
    if (rds_init(&g->sub, g->base, g->cfg.redis_url, "sub", on_sub_state, g) != 0)
        return -1;
    /* Three renewals per lease TTL: two lost ones do not make us look dead
     * (see EV_LEASE_TTL). */
    long every = EV_LEASE_RENEW(g->cfg.gateway_lease_ms);
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    g->lease_ev = event_new(g->base, -1, EV_PERSIST, on_lease_timer, g);
    if (!g->lease_ev)
        return -1;
    event_add(g->lease_ev, &tv);
    return 0;
}

void gw_bus_stop(struct gw *g)
{
    if (g->lease_ev) {
        event_free(g->lease_ev);
        g->lease_ev = NULL;
    }
    rds_free(&g->sub);
    rds_free(&g->pub);
}
