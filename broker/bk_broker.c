/*
 * bk_broker.c - presence and routing; see bk.h for the model.
 *
 * Expected sizes: up to ~10^5 connections and users in memory, a handful of
 * gateways. Dominant operations: open/close (a tree lookup, one HSET/HDEL,
 * and on a 0<->1 transition one SADD/SREM plus one XADD per gateway), and
 * relaying replies to one connection. All writes of one batch of entries
 * leave in one pipeline, followed by one XACK for the whole batch.
 */
#include "bk_internal.h"

#include "log.h"

#include <event2/event.h>
#include <json-c/json.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Entries per XREADGROUP (config "batch" overrides). */
#define BK_XREAD_BLOCK_MS 2000
/* Tick of the broker's timer: grace expiries are this precise. */
#define BK_TICK_MS 20
/* Heartbeat period and TTL of herald:broker:alive. */
#define BK_HEARTBEAT_MS 1000
/* How often free heap pages go back to the system (malloc_trim). */
#define BK_TRIM_INTERVAL_MS 1000
#define BK_HEARTBEAT_TTL_MS 5000

static int gw_cmp(const struct bk_gw *a, const struct bk_gw *b)
{
    return strcmp(a->id, b->id);
}
static int user_cmp(const struct bk_user *a, const struct bk_user *b)
{
    return a->id < b->id ? -1 : a->id > b->id;
}
static int conn_cmp(const struct bk_conn *a, const struct bk_conn *b)
{
    if (a->gw != b->gw)
        return a->gw < b->gw ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}
RB_GENERATE(bk_gw_tree, bk_gw, node, gw_cmp)
RB_GENERATE(bk_user_tree, bk_user, node, user_cmp)
RB_GENERATE(bk_conn_tree, bk_conn, node, conn_cmp)

/* ---- presence ------------------------------------------------------------ */

static void announce(struct bk *b, struct bk_user *u, bool online)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "userId", json_object_new_int64(u->id));
    json_object_object_add(o, "username", json_object_new_string(u->username));
    json_object_object_add(o, "status", json_object_new_string(online ? "online" : "offline"));
    size_t jl;
    const char *js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &jl);
    bk_broadcast(b, "all", "status", js, jl);
    json_object_put(o);
    b->n_transitions++;
    log_info("user %lld (%s) is %s", (long long)u->id, u->username, online ? "online" : "offline");
}

static void set_online(struct bk *b, struct bk_user *u)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "SADD");
    ev_args_adds(&a, EV_ONLINE_SET);
    ev_args_add_i64(&a, u->id);
    bk_cmd(b, &a);
    u->online = true;
    b->nonline++;
    announce(b, u, true);
}

void bk_user_release(struct bk *b, struct bk_user *u)
{
    if (u->nconns == 0 && !u->online && !u->in_grace && !u->queued && LIST_EMPTY(&u->conns)) {
        RB_REMOVE(bk_user_tree, &b->users, u);
        free(u);
    }
}

static void set_offline(struct bk *b, struct bk_user *u)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "SREM");
    ev_args_adds(&a, EV_ONLINE_SET);
    ev_args_add_i64(&a, u->id);
    bk_cmd(b, &a);
    if (u->online)
        b->nonline--;
    u->online = false;
    announce(b, u, false);
}

static void grace_cancel(struct bk *b, struct bk_user *u)
{
    if (u->in_grace) {
        TAILQ_REMOVE(&b->grace, u, grace);
        u->in_grace = false;
    }
}

/* The user's last connection went away: offline now, or after the grace
 * period unless they come back (a page reload must not flicker). */
static void last_conn_gone(struct bk *b, struct bk_user *u)
{
    if (!u->online) {
        bk_user_release(b, u);
        return;
    }
    if (b->cfg.presence_grace_ms <= 0 || u->deleted) {
        set_offline(b, u);
        bk_user_release(b, u);
        return;
    }
    u->in_grace = true;
    u->grace_until_ms = bk_now_ms() + b->cfg.presence_grace_ms;
    /* Every user waits the same period, so appending keeps the list sorted. */
    TAILQ_INSERT_TAIL(&b->grace, u, grace);
}

static void grace_expire(struct bk *b, int64_t now)
{
    struct bk_user *u;
    while ((u = TAILQ_FIRST(&b->grace)) != NULL && u->grace_until_ms <= now) {
        grace_cancel(b, u);
        if (u->nconns == 0 && u->online)
            set_offline(b, u);
        bk_user_release(b, u);
    }
}

struct bk_user *bk_user_get(struct bk *b, int64_t id, bool create)
{
    struct bk_user key;
    key.id = id;
    struct bk_user *u = RB_FIND(bk_user_tree, &b->users, &key);
    if (u || !create)
        return u;
    u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->id = id;
    LIST_INIT(&u->conns);
    RB_INSERT(bk_user_tree, &b->users, u);
    return u;
}

static struct bk_gw *gw_get(struct bk *b, const char *id, size_t len, bool create)
{
    char name[129];
    if (len == 0 || len >= sizeof(name))
        return NULL;
    memcpy(name, id, len);
    name[len] = '\0';
    struct bk_gw key;
    key.id = name;
    struct bk_gw *gw = RB_FIND(bk_gw_tree, &b->gws, &key);
    if (gw || !create)
        return gw;
    gw = calloc(1, sizeof(*gw));
    if (!gw || !(gw->id = strdup(name))) {
        free(gw);
        return NULL;
    }
    LIST_INIT(&gw->conns);
    gw->seen_ms = bk_now_ms();
    RB_INSERT(bk_gw_tree, &b->gws, gw);
    if (b->cmd.up) { /* while loading, the set already holds it */
        struct ev_args a;
        ev_args_init(&a);
        ev_args_adds(&a, "SADD");
        ev_args_adds(&a, BK_GATEWAYS_KEY);
        ev_args_adds(&a, gw->id);
        bk_cmd(b, &a);
    }
    log_info("gateway %s registered", gw->id);
    return gw;
}

struct bk_conn *bk_conn_find(struct bk *b, struct bk_gw *gw, uint64_t id)
{
    struct bk_conn key;
    key.gw = gw;
    key.id = id;
    return RB_FIND(bk_conn_tree, &b->conns, &key);
}

/* Adds a connection to memory; persist: also to Redis (false while loading
 * what Redis already has). Returns the connection, or NULL if known already. */
static struct bk_conn *conn_add(struct bk *b, struct bk_gw *gw, uint64_t id, struct bk_user *u,
                                char kind, bool persist)
{
    if (bk_conn_find(b, gw, id))
        return NULL; /* replayed entry: already applied */
    struct bk_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->gw = gw;
    c->id = id;
    c->user = u;
    c->kind = kind;
    LIST_INIT(&c->rooms);
    RB_INSERT(bk_conn_tree, &b->conns, c);
    LIST_INSERT_HEAD(&gw->conns, c, gw_link);
    gw->nconns++;
    if (persist) {
        char key[256], val[64];
        snprintf(key, sizeof(key), "%s%s", BK_CONNS_PREFIX, gw->id);
        snprintf(val, sizeof(val), "%lld:%c", (long long)(u ? u->id : 0), kind);
        struct ev_args a;
        ev_args_init(&a);
        ev_args_adds(&a, "HSET");
        ev_args_adds(&a, key);
        ev_args_add_u64(&a, id);
        ev_args_adds(&a, val);
        bk_cmd(b, &a);
    }
    if (u) {
        LIST_INSERT_HEAD(&u->conns, c, user_link);
        u->nconns++;
        if (u->nconns == 1) {
            if (u->in_grace)
                grace_cancel(b, u); /* back within the grace period: no event */
            else if (!u->online && persist)
                set_online(b, u);
        }
    }
    return c;
}

void bk_conn_remove(struct bk *b, struct bk_conn *c, bool persist)
{
    struct bk_gw *gw = c->gw;
    struct bk_user *u = c->user;
    if (persist) {
        char key[256];
        snprintf(key, sizeof(key), "%s%s", BK_CONNS_PREFIX, gw->id);
        struct ev_args a;
        ev_args_init(&a);
        ev_args_adds(&a, "HDEL");
        ev_args_adds(&a, key);
        ev_args_add_u64(&a, c->id);
        bk_cmd(b, &a);
    }
    bk_rooms_leave_all(b, c, persist);
    RB_REMOVE(bk_conn_tree, &b->conns, c);
    LIST_REMOVE(c, gw_link);
    /* The counts decide presence: one that went below zero would keep a
     * user online (or offline) for ever. */
    HERALD_ASSERT(gw->nconns > 0);
    gw->nconns--;
    if (u) {
        LIST_REMOVE(c, user_link);
        HERALD_ASSERT(u->nconns > 0);
        u->nconns--;
    }
    free(c);
    if (u && u->nconns == 0) {
        bk_queue_remove(b, u); /* a player without a tab cannot play */
        last_conn_gone(b, u);
    }
}

/* The account was deleted: the user leaves the queue, every connection is
 * forgotten and they go offline now (no grace period). u is freed. */
void bk_user_delete(struct bk *b, struct bk_user *u)
{
    u->deleted = true;
    bk_queue_remove(b, u);
    if (LIST_EMPTY(&u->conns)) {
        grace_cancel(b, u);
        if (u->online)
            set_offline(b, u);
        bk_user_release(b, u);
        return;
    }
    /* Removing the last connection takes the user offline and frees u. */
    struct bk_conn *c = LIST_FIRST(&u->conns);
    while (c) {
        struct bk_conn *next = LIST_NEXT(c, user_link);
        bk_conn_remove(b, c, true);
        c = next;
    }
}

/* Forgets every connection of a gateway (it restarted or died). */
static void gw_clear(struct bk *b, struct bk_gw *gw)
{
    char key[256];
    char wkey[256];
    snprintf(key, sizeof(key), "%s%s", BK_CONNS_PREFIX, gw->id);
    snprintf(wkey, sizeof(wkey), "%s%s", BK_WATCH_PREFIX, gw->id);
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "DEL");
    ev_args_adds(&a, key);
    ev_args_adds(&a, wkey);
    bk_cmd(b, &a);
    struct bk_conn *c;
    while ((c = LIST_FIRST(&gw->conns)) != NULL)
        bk_conn_remove(b, c, false);
}

static void gw_reap(struct bk *b, struct bk_gw *gw)
{
    log_warn("gateway %s missed its lease: dropping its %zu connections", gw->id, gw->nconns);
    gw_clear(b, gw);
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "SREM");
    ev_args_adds(&a, BK_GATEWAYS_KEY);
    ev_args_adds(&a, gw->id);
    bk_cmd(b, &a);
    RB_REMOVE(bk_gw_tree, &b->gws, gw);
    free(gw->id);
    free(gw);
    b->n_reaped++;
}

/* ---- entries ------------------------------------------------------------- */

static void on_open(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    char kind = ev_is(e->kind, e->kind_len, "sio") ? 's' : 'w';
    struct bk_user *u = NULL;
    if (bk_conn_find(b, gw, e->conn))
        return;
    if (e->user > 0) {
        u = bk_user_get(b, e->user, false);
        if (!u) {
            struct bk_user_row row;
            int f = bk_store_user_by_id(&b->store, e->user, &row);
            if (f <= 0) {
                char id[24];
                int il = snprintf(id, sizeof(id), "%llu", (unsigned long long)e->conn);
                if (f < 0) {
                    /* Not acknowledging would retry forever on a broken
                     * database; refuse the connection and say why. */
                    log_error("conn %llu on %s: user lookup %lld: %s: closing with 1011",
                              (unsigned long long)e->conn, gw->id, (long long)e->user,
                              b->store.err);
                    bk_kick(b, gw, id, (size_t)il, 1011, "internal");
                } else {
                    /* A valid token for an id Herald does not know: the
                     * application forgot to provision the user. The word
                     * tells its developer so (close reason, CONNECT_ERROR
                     * code), rather than a bare "closed by the server". */
                    log_info("conn %llu on %s: token for unknown user %lld: unknown-user, 4003",
                             (unsigned long long)e->conn, gw->id, (long long)e->user);
                    bk_kick(b, gw, id, (size_t)il, 4003, "unknown-user");
                    bk_refusal_count(b, "unknown-user");
                }
                return;
            }
            u = bk_user_get(b, e->user, true);
            if (!u)
                return;
            snprintf(u->username, sizeof(u->username), "%s", row.username);
        }
    }
    conn_add(b, gw, e->conn, u, kind, true);
}

static void on_request(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    struct json_object *args = ev_json_parse(e->data, e->data_len, json_type_object), *v;
    if (ev_is(e->event, e->event_len, "user")) {
        /* {"id","username"} of a username (the gateways' demo login). */
        struct bk_user_row row;
        int f = -1;
        if (args && json_object_object_get_ex(args, "username", &v) &&
            json_object_is_type(v, json_type_string))
            f = bk_store_user_by_name(&b->store, json_object_get_string(v), &row);
        if (f == 1) {
            char out[160];
            int n = snprintf(out, sizeof(out), "{\"id\":%lld,\"username\":\"%s\"}",
                             (long long)row.id, row.username);
            bk_reply(b, gw, e, 200, out, (size_t)n);
        } else {
            BK_REPLY_LIT(b, gw, e, 404,
                         "{\"error\":\"unknown-user\",\"message\":\"no such user\"}");
        }
    } else if (ev_is(e->event, e->event_len, "online-status")) {
        if (!args || !json_object_object_get_ex(args, "username", &v) ||
            !json_object_is_type(v, json_type_string)) {
            BK_REPLY_LIT(b, gw, e, 400,
                         "{\"error\":\"bad-field\",\"message\":\"username required\"}");
        } else {
            struct bk_user_row row;
            int f = bk_store_user_by_name(&b->store, json_object_get_string(v), &row);
            if (f < 0) {
                log_error("lookup by name: %s", b->store.err);
                BK_REPLY_LIT(b, gw, e, 503,
                             "{\"error\":\"unavailable\",\"message\":\"database error\"}");
            } else if (f == 0) {
                BK_REPLY_LIT(b, gw, e, 404,
                             "{\"error\":\"unknown-user\",\"message\":\"no such user\"}");
            } else {
                struct bk_user *u = bk_user_get(b, row.id, false);
                if (u && u->online)
                    BK_REPLY_LIT(b, gw, e, 200, "{\"online\":true}");
                else
                    BK_REPLY_LIT(b, gw, e, 200, "{\"online\":false}");
            }
        }
    } else if (!bk_social_request(b, gw, e)) {
        BK_REPLY_LIT(b, gw, e, 404, "{\"error\":\"not-found\",\"message\":\"unknown request\"}");
    }
    json_object_put(args);
}

static void send_online_users(struct bk *b, const struct bk_conn *c, const struct ev_entry *e)
{
    /* "users":[ ids ] built directly: ids are integers, nothing to escape. */
    size_t cap = 32 + b->nonline * 21, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return;
    len += (size_t)snprintf(buf, cap, "{\"users\":[");
    struct bk_user *u;
    bool first = true;
    RB_FOREACH(u, bk_user_tree, &b->users)
    {
        if (!u->online || len + 24 > cap)
            continue;
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", first ? "" : ",", (long long)u->id);
        first = false;
    }
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    if (c->kind == 's') {
        /* Socket.IO: callback(number[]) -> ack arguments [[ids]]. */
        if (e->has_req) {
            /* {"users":[...]} -> [[...]]: ':' at 8 and the final '}'. */
            buf[8] = '[';
            buf[len - 1] = ']';
            bk_to_ack(b, c, e, buf + 8, len - 8);
        }
    } else {
        bk_to_conn(b, c, "online_users", buf, len);
    }
    free(buf);
}

static void on_msg(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    struct bk_conn *c = bk_conn_find(b, gw, e->conn);
    if (!c)
        return; /* closed meanwhile */
    if (ev_is(e->event, e->event_len, "get_online_users")) {
        send_online_users(b, c, e);
        return;
    }
    if (bk_social_msg(b, c, e))
        return;
    static const char err[] =
        "{\"code\":\"unknown-type\",\"message\":\"this event is not handled\"}";
    bk_to_conn(b, c, "error", err, sizeof(err) - 1);
}

void bk_apply(struct bk *b, const struct ev_entry *e)
{
    b->n_entries++;
    struct bk_gw *gw = NULL;
    if (e->gw)
        gw = gw_get(b, e->gw, e->gw_len, !ev_is(e->type, e->type_len, "close"));
    if (gw)
        gw->seen_ms = bk_now_ms();
    if (ev_is(e->type, e->type_len, "hello")) {
        if (gw && gw->nconns) {
            log_info("gateway %s restarted: dropping its %zu old connections", gw->id, gw->nconns);
            gw_clear(b, gw);
        }
    } else if (ev_is(e->type, e->type_len, "open")) {
        if (gw)
            on_open(b, gw, e);
    } else if (ev_is(e->type, e->type_len, "close")) {
        struct bk_conn *c = gw ? bk_conn_find(b, gw, e->conn) : NULL;
        if (c)
            bk_conn_remove(b, c, true);
    } else if (ev_is(e->type, e->type_len, "msg")) {
        if (gw)
            on_msg(b, gw, e);
    } else if (ev_is(e->type, e->type_len, "req")) {
        if (gw)
            on_request(b, gw, e);
    } else if (ev_is(e->type, e->type_len, "notify")) {
        bk_social_notify(b, e);
    } else {
        log_warn_rl(5, "ignoring entry of unknown type \"%.*s\"", (int)e->type_len, e->type);
    }
}

/* ---- consuming herald:events --------------------------------------------- */

static void issue_read(struct bk *b);

static void on_read(redisAsyncContext *ac, void *reply_, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    redisReply *r = reply_;
    b->reading = false;
    if (!r)
        return; /* disconnected; reading resumes on reconnect */
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("XREADGROUP: %s", r->str);
        if (strncmp(r->str, "NOGROUP", 7) == 0)
            rds_cmd(&b->cmd, NULL, NULL, "XGROUP CREATE %s %s 0 MKSTREAM", EV_STREAM_IN, EV_GROUP);
        issue_read(b);
        return;
    }
    size_t got = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        redisReply *entries = r->element[0]->element[1];
        struct ev_args ack;
        /* XACK takes many ids; flush every EV_ARGS_MAX - 3. */
        ev_args_init(&ack);
        for (size_t i = 0; i < entries->elements; i++) {
            redisReply *en = entries->element[i];
            if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
                en->element[0]->type != REDIS_REPLY_STRING)
                continue;
            got++;
            const char *id = en->element[0]->str;
            if (!b->pending_done)
                snprintf(b->pending_cursor, sizeof(b->pending_cursor), "%s", id);
            redisReply *fv = en->element[1];
            struct ev_entry e;
            int ok = -1;
            if (fv->type == REDIS_REPLY_ARRAY && fv->elements <= 2 * EV_MAX_FIELDS) {
                const char *fields[2 * EV_MAX_FIELDS];
                size_t lens[2 * EV_MAX_FIELDS], nf = 0;
                for (size_t j = 0; j < fv->elements; j++) {
                    if (fv->element[j]->type != REDIS_REPLY_STRING)
                        break;
                    fields[nf] = fv->element[j]->str;
                    lens[nf++] = fv->element[j]->len;
                }
                ok = ev_entry_parse(&e, fields, lens, nf);
            }
            if (ok == 0)
                bk_apply(b, &e);
            else
                log_warn_rl(5, "skipping malformed entry %s", id);
            /* Acknowledged after its effects were queued on the same
             * connection: Redis applies them first. */
            if (ack.argc == 0) {
                ev_args_adds(&ack, "XACK");
                ev_args_adds(&ack, EV_STREAM_IN);
                ev_args_adds(&ack, EV_GROUP);
            }
            ev_args_adds(&ack, id);
            if (ack.argc == EV_ARGS_MAX) {
                bk_cmd(b, &ack);
                ev_args_init(&ack);
            }
        }
        if (ack.argc > 0)
            bk_cmd(b, &ack);
    }
    if (!b->pending_done && got == 0) {
        b->pending_done = true;
        log_info("replayed pending entries; consuming new ones");
    }
    issue_read(b);
}

static void issue_read(struct bk *b)
{
    /* Effects go through cmd: reading while it is down would apply entries
     * whose writes cannot be made. */
    if (b->reading || !b->rd.up || !b->cmd.up || b->stopping)
        return;
    int rc;
    if (!b->pending_done)
        rc = rds_cmd(&b->rd, on_read, b, "XREADGROUP GROUP %s %s COUNT %ld STREAMS %s %s", EV_GROUP,
                     b->cfg.consumer, b->cfg.batch, EV_STREAM_IN, b->pending_cursor);
    else
        rc = rds_cmd(&b->rd, on_read, b, "XREADGROUP GROUP %s %s COUNT %ld BLOCK %d STREAMS %s >",
                     EV_GROUP, b->cfg.consumer, b->cfg.batch, BK_XREAD_BLOCK_MS, EV_STREAM_IN);
    if (rc == 0)
        b->reading = true;
}

static void on_rd_state(struct rds *r, bool up, void *arg)
{
    struct bk *b = arg;
    (void)r;
    b->reading = false;
    if (up) {
        /* After a reconnect, entries delivered but not acknowledged are ours
         * to replay first. */
        b->pending_done = false;
        snprintf(b->pending_cursor, sizeof(b->pending_cursor), "0");
        issue_read(b);
    }
}

static void reconcile(struct bk *b);
static void resync(struct bk *b);

static void on_cmd_state(struct rds *r, bool up, void *arg)
{
    struct bk *b = arg;
    (void)r;
    if (!up)
        return;
    rds_cmd(&b->cmd, NULL, NULL, "SET %s %s PX %d", BK_ALIVE_KEY, b->cfg.consumer,
            BK_HEARTBEAT_TTL_MS);
    if (!b->reconciled) {
        b->reconciled = true;
        reconcile(b);
    } else {
        resync(b);
    }
    issue_read(b);
}

/* ---- leases and the tick ---------------------------------------------------- */

struct lease_check {
    struct bk *b;
    char id[129];
};

static void on_lease_reply(redisAsyncContext *ac, void *reply_, void *priv)
{
    (void)ac;
    struct lease_check *lc = priv;
    struct bk *b = lc->b;
    redisReply *r = reply_;
    struct bk_gw *gw = gw_get(b, lc->id, strlen(lc->id), false);
    if (r && r->type == REDIS_REPLY_INTEGER && gw) {
        int64_t now = bk_now_ms();
        /* A present key says nothing newer than its last renewal, so only
         * entries, registration and Redis reconnects refresh seen_ms: the
         * grace it gives covers a gateway whose key Redis lost. */
        if (r->integer == 0 && now - gw->seen_ms >= EV_LEASE_TTL(b->cfg.gateway_lease_ms))
            gw_reap(b, gw);
    }
    free(lc);
}

static void check_leases(struct bk *b)
{
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    {
        struct lease_check *lc = malloc(sizeof(*lc));
        if (!lc)
            return;
        lc->b = b;
        snprintf(lc->id, sizeof(lc->id), "%s", gw->id);
        if (rds_cmd(&b->cmd, on_lease_reply, lc, "EXISTS %s%s:lease", EV_GW_STREAM_PREFIX,
                    gw->id) != 0)
            free(lc);
    }
}

static void renew_lock(struct bk *b);

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bk *b = arg;
    (void)fd;
    (void)what;
    int64_t now = bk_now_ms();
    grace_expire(b, now);
    bk_social_tick(b, now);
    /* As the gateways do: free pages back to the system after a burst. */
    if (now - b->last_trim_ms >= BK_TRIM_INTERVAL_MS) {
        b->last_trim_ms = now;
        malloc_trim(0);
    }
    if (now - b->last_info_ms >= BK_HEARTBEAT_MS) {
        b->last_info_ms = now;
        bk_admin_refresh(b);
    }
    if (now - b->last_heartbeat_ms >= BK_HEARTBEAT_MS && b->cmd.up) {
        b->last_heartbeat_ms = now;
        rds_cmd(&b->cmd, NULL, NULL, "SET %s %s PX %d", BK_ALIVE_KEY, b->cfg.consumer,
                BK_HEARTBEAT_TTL_MS);
        renew_lock(b);
    }
    /* See EV_LEASE_TTL: a dead gateway is reaped within 4/5 of the lease. */
    if (now - b->last_lease_check_ms >= EV_LEASE_RENEW(b->cfg.gateway_lease_ms) && b->cmd.up) {
        b->last_lease_check_ms = now;
        check_leases(b);
    }
}

/* ---- start-up: rebuild from Redis ------------------------------------------- */

static int load_state(struct bk *b, redisContext *rc)
{
    redisReply *r = redisCommand(rc, "XGROUP CREATE %s %s 0 MKSTREAM", EV_STREAM_IN, EV_GROUP);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        log_error("XGROUP CREATE: %s", r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);

    r = redisCommand(rc, "SMEMBERS %s", BK_GATEWAYS_KEY);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    size_t nconns = 0;
    for (size_t i = 0; i < r->elements; i++) {
        struct bk_gw *gw = gw_get(b, r->element[i]->str, r->element[i]->len, true);
        if (!gw)
            continue;
        redisReply *h = redisCommand(rc, "HGETALL %s%s", BK_CONNS_PREFIX, gw->id);
        for (size_t j = 0; h && h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements; j += 2) {
            uint64_t cid = strtoull(h->element[j]->str, NULL, 10);
            char *colon;
            long long uid = strtoll(h->element[j + 1]->str, &colon, 10);
            char kind = *colon == ':' ? colon[1] : 'w';
            struct bk_user *u = NULL;
            if (uid > 0) {
                u = bk_user_get(b, uid, true);
                struct bk_user_row row;
                if (u && !u->username[0] && bk_store_user_by_id(&b->store, uid, &row) == 1)
                    snprintf(u->username, sizeof(u->username), "%s", row.username);
            }
            if (conn_add(b, gw, cid, u, kind, false))
                nconns++;
        }
        freeReplyObject(h);
        bk_social_load_gw(b, gw, rc);
    }
    freeReplyObject(r);

    r = redisCommand(rc, "SMEMBERS %s", EV_ONLINE_SET);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        struct bk_user *u = bk_user_get(b, strtoll(r->element[i]->str, NULL, 10), true);
        if (!u)
            continue;
        u->online = true;
        b->nonline++;
        struct bk_user_row row;
        if (!u->username[0] && bk_store_user_by_id(&b->store, u->id, &row) == 1)
            snprintf(u->username, sizeof(u->username), "%s", row.username);
    }
    freeReplyObject(r);
    bk_social_load_queue(b, rc);
    log_info("state loaded from redis: %zu connections, %zu users online, %zu queued", nconns,
             b->nonline, b->nqueued);
    return 0;
}

/* After loading: users marked online with no connection left (the previous
 * broker died inside their grace period) go through the grace period again;
 * users with connections but not marked online are set online. */
static void reconcile(struct bk *b)
{
    struct bk_user *u, *tmp;
    RB_FOREACH_SAFE(u, bk_user_tree, &b->users, tmp)
    {
        if (u->online && u->nconns == 0)
            last_conn_gone(b, u);
        else if (!u->online && u->nconns > 0)
            set_online(b, u);
    }
}

/* Redis came back after an outage and may have lost everything (a restart
 * without persistence): write our whole state again, atomically. */
static void resync(struct bk *b)
{
    log_warn("redis reconnected: rewriting presence state (%zu online)", b->nonline);
    /* Redis may have lost the lease keys with everything else: every
     * gateway gets a full lease TTL to renew before it counts as dead. */
    int64_t now = bk_now_ms();
    struct bk_gw *g;
    RB_FOREACH(g, bk_gw_tree, &b->gws)
    g->seen_ms = now;
    rds_cmd(&b->cmd, NULL, NULL, "MULTI");
    rds_cmd(&b->cmd, NULL, NULL, "DEL %s", EV_ONLINE_SET);
    struct bk_user *u;
    RB_FOREACH(u, bk_user_tree, &b->users)
    if (u->online)
        rds_cmd(&b->cmd, NULL, NULL, "SADD %s %lld", EV_ONLINE_SET, (long long)u->id);
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    {
        rds_cmd(&b->cmd, NULL, NULL, "SADD %s %s", BK_GATEWAYS_KEY, gw->id);
        rds_cmd(&b->cmd, NULL, NULL, "DEL %s%s", BK_CONNS_PREFIX, gw->id);
        struct bk_conn *c;
        LIST_FOREACH(c, &gw->conns, gw_link)
        rds_cmd(&b->cmd, NULL, NULL, "HSET %s%s %llu %lld:%c", BK_CONNS_PREFIX, gw->id,
                (unsigned long long)c->id, (long long)(c->user ? c->user->id : 0), c->kind);
    }
    bk_social_resync(b);
    rds_cmd(&b->cmd, NULL, NULL, "XGROUP CREATE %s %s 0 MKSTREAM", EV_STREAM_IN, EV_GROUP);
    rds_cmd(&b->cmd, NULL, NULL, "EXEC");
}

/* ---- leadership: one active broker, any number of standbys -------------------- */

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

static void on_lock_renewed(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && !b->stopping) {
        /* Another broker holds the lock: it took over while we could not
         * renew (a stall, a partition). Two brokers must never consume at
         * once; stop, and let the supervisor restart us as a standby. */
        log_error("lost the broker lock to another broker: stopping");
        b->lost_lock = true;
        event_base_loopexit(b->base, NULL);
    }
}

static void renew_lock(struct bk *b)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", b->cfg.lock_ttl_ms);
    rds_cmd(&b->cmd, on_lock_renewed, b, "EVAL %s 1 %s %s %s", lock_renew_lua, BK_LOCK_KEY,
            b->cfg.consumer, ttl);
}

/* Moves every pending entry of the group to us: the previous broker is
 * gone (we hold the lock), and what it had read but not acknowledged must
 * still take effect. Returns the number claimed. */
static long claim_pending(struct bk *b, redisContext *rc)
{
    char cursor[64] = "0-0";
    long claimed = 0;
    for (int rounds = 0; rounds < 100000; rounds++) {
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

/* Tries to become the active broker. Returns 1 (we lead: the lock is ours,
 * pending entries claimed, state loaded), 0 (another broker leads, or
 * Redis is unreachable: try again later), -1 (fatal). */
static int try_lead(struct bk *b)
{
    char err[256];
    redisContext *rc = rds_connect_sync(b->cfg.redis_url, err, sizeof(err));
    if (!rc) {
        log_warn_rl(10, "%s (retrying)", err);
        return 0;
    }
    int lead = 0;
    redisReply *r =
        redisCommand(rc, "SET %s %s NX PX %ld", BK_LOCK_KEY, b->cfg.consumer, b->cfg.lock_ttl_ms);
    if (r && r->type == REDIS_REPLY_STATUS)
        lead = 1;
    freeReplyObject(r);
    if (!lead) {
        /* Our own name: we were restarted before our lock expired. */
        r = redisCommand(rc, "GET %s", BK_LOCK_KEY);
        if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, b->cfg.consumer) == 0)
            lead = 1;
        else if (!b->standby_logged)
            log_info("standby: broker %s is active; taking over when its lock lapses",
                     r && r->type == REDIS_REPLY_STRING ? r->str : "?");
        b->standby_logged = true;
        freeReplyObject(r);
    }
    if (!lead) {
        redisFree(rc);
        return 0;
    }
    int64_t t0 = bk_now_ms();
    /* gw_get() persists through the async connection, which is not up yet:
     * the sets it would write already hold these gateways. */
    int lr = load_state(b, rc);
    long claimed = lr == 0 ? claim_pending(b, rc) : 0;
    redisFree(rc);
    if (lr != 0) {
        log_error("cannot load state from Redis");
        return -1;
    }
    log_info("active broker: lock taken, %ld pending entries claimed, state loaded in %lld ms",
             claimed, (long long)(bk_now_ms() - t0));
    return 1;
}

static int become_leader(struct bk *b)
{
    b->leading = true;
    if (rds_init(&b->cmd, b->base, b->cfg.redis_url, "cmd", on_cmd_state, b) != 0 ||
        rds_init(&b->rd, b->base, b->cfg.redis_url, "read", on_rd_state, b) != 0)
        return -1;
    b->tick_ev = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    struct timeval tv = {0, BK_TICK_MS * 1000};
    event_add(b->tick_ev, &tv);
    b->last_lease_check_ms = bk_now_ms();
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
    event_free(b->standby_ev);
    b->standby_ev = NULL;
    if (t < 0 || become_leader(b) != 0)
        event_base_loopexit(b->base, NULL);
}

int bk_start(struct bk *b)
{
    RB_INIT(&b->gws);
    RB_INIT(&b->users);
    RB_INIT(&b->conns);
    TAILQ_INIT(&b->grace);
    RB_INIT(&b->rooms);
    RB_INIT(&b->rates);
    TAILQ_INIT(&b->rates_lru);
    TAILQ_INIT(&b->queue);
    if (bk_social_init(b) != 0 || bk_admin_start(b) != 0)
        return -1;
    int t = try_lead(b);
    if (t < 0)
        return -1;
    if (t > 0)
        return become_leader(b);
    b->standby_ev = event_new(b->base, -1, EV_PERSIST, on_standby, b);
    long every = b->cfg.lock_ttl_ms / 4;
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    return b->standby_ev ? event_add(b->standby_ev, &tv) : -1;
}

void bk_stop(struct bk *b)
{
    b->stopping = true;
    bk_admin_stop(b);
    if (b->standby_ev)
        event_free(b->standby_ev);
    b->standby_ev = NULL;
    if (b->tick_ev)
        event_free(b->tick_ev);
    b->tick_ev = NULL;
    rds_free(&b->rd);
    if (b->cmd.up && b->leading && !b->lost_lock) {
        /* A standby takes over at once instead of waiting for the TTL. */
        rds_cmd(&b->cmd, NULL, NULL, "DEL %s", BK_ALIVE_KEY);
        rds_cmd(&b->cmd, NULL, NULL, "EVAL %s 1 %s %s", lock_release_lua, BK_LOCK_KEY,
                b->cfg.consumer);
    }
    rds_drain(&b->cmd, 1000);
    rds_free(&b->cmd);
    bk_social_free(b);
    struct bk_conn *c, *ct;
    RB_FOREACH_SAFE(c, bk_conn_tree, &b->conns, ct)
    {
        RB_REMOVE(bk_conn_tree, &b->conns, c);
        free(c);
    }
    struct bk_user *u, *ut;
    RB_FOREACH_SAFE(u, bk_user_tree, &b->users, ut)
    {
        RB_REMOVE(bk_user_tree, &b->users, u);
        free(u);
    }
    struct bk_gw *gw, *gt;
    RB_FOREACH_SAFE(gw, bk_gw_tree, &b->gws, gt)
    {
        RB_REMOVE(bk_gw_tree, &b->gws, gw);
        free(gw->id);
        free(gw);
    }
}
