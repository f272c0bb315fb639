/*
 * bk_presence.c - presence: who is connected where, who is online; see
 * bk_presence.h for the contract and bk.h for the Redis keys.
 *
 * Expected sizes: up to ~10^5 connections and users in memory, a handful of
 * gateways. Dominant operations: open/close (a tree lookup, one HSET/HDEL,
 * and on a 0<->1 transition one SADD/SREM plus one XADD per gateway), and
 * looking a user up for the features. The counts decide presence: a user is
 * online while nconns > 0, or while the grace period after their last
 * connection runs; only those transitions write online_users and announce.
 *
 * Idempotence on replay (a restarted broker replays what it had not
 * acknowledged): an open of a known connection and a close of an unknown
 * one do nothing, so the same entries applied twice change nothing.
 */
#include "bk_presence.h"

#include "bk_answer.h"
#include "bk_feed.h"
#include "bk_out.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
static int detached_cmp(const struct bk_detached *a, const struct bk_detached *b)
{
    return a->c < b->c ? -1 : a->c > b->c;
}
RB_GENERATE(bk_gw_tree, bk_gw, node, gw_cmp)
RB_GENERATE(bk_detached_tree, bk_detached, node, detached_cmp)
RB_GENERATE(bk_user_tree, bk_user, node, user_cmp)
RB_GENERATE(bk_conn_tree, bk_conn, node, conn_cmp)

static void detached_expire(struct bk *b, int64_t now);

/* ---- hooks and clock ------------------------------------------------------ */

int bk_hooks_add(struct bk *b, const struct bk_hooks *h)
{
    if (b->nhooks == BK_HOOKS_MAX)
        return -1;
    b->hooks[b->nhooks++] = h;
    return 0;
}

/* Calls member(...) of every hook table that has one, in registration
 * order (the first argument is b). */
#define HOOKS_EACH(b, member, ...)                                                                 \
    for (size_t hook_i_ = 0; hook_i_ < (b)->nhooks; hook_i_++)                                     \
        if ((b)->hooks[hook_i_]->member)                                                           \
    (b)->hooks[hook_i_]->member(__VA_ARGS__)

int bk_hooks_init(struct bk *b)
{
    for (size_t i = 0; i < b->nhooks; i++)
        if (b->hooks[i]->init && b->hooks[i]->init(b) != 0) {
            log_error("%s: cannot start", b->hooks[i]->name);
            return -1;
        }
    return 0;
}

void bk_hooks_gw_loaded(struct bk *b, struct bk_gw *gw, redisContext *rc)
{
    HOOKS_EACH(b, gw_loaded, b, gw, rc);
}

void bk_hooks_loaded(struct bk *b, redisContext *rc)
{
    HOOKS_EACH(b, loaded, b, rc);
}

void bk_hooks_resync(struct bk *b)
{
    HOOKS_EACH(b, resync, b);
}

void bk_hooks_tick(struct bk *b, int64_t now)
{
    HOOKS_EACH(b, tick, b, now);
}

void bk_hooks_free(struct bk *b)
{
    HOOKS_EACH(b, free, b);
}

static void hooks_conn_closing(struct bk *b, struct bk_conn *c, bool persist)
{
    HOOKS_EACH(b, conn_closing, b, c, persist);
}

static void hooks_conn_opened(struct bk *b, struct bk_conn *c)
{
    HOOKS_EACH(b, conn_opened, b, c);
}

static void hooks_conn_persist(struct bk *b, struct bk_conn *c, bool keep)
{
    HOOKS_EACH(b, conn_persist, b, c, keep);
}

static void hooks_user_idle(struct bk *b, struct bk_user *u)
{
    HOOKS_EACH(b, user_idle, b, u);
}

/* b's test clock when it has one, else the system clock id, in ms. */
static int64_t clock_ms(const struct bk *b, clockid_t id)
{
    if (b->clock.now_ms)
        return b->clock.now_ms(b->clock.arg);
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bk_now(const struct bk *b)
{
    return clock_ms(b, CLOCK_MONOTONIC);
}

int64_t bk_wall_ms(const struct bk *b)
{
    return clock_ms(b, CLOCK_REALTIME);
}

/* ---- transitions ---------------------------------------------------------- */

/* bk_store_friends_each() callback: the friend's tabs hear the user. */
struct related_ctx {
    struct bk *b;
    struct bk_targets *t;
};

static void related_friend(void *arg, int64_t id, const char *username)
{
    (void)username;
    struct related_ctx *r = arg;
    const struct bk_user *f = bk_user_find(r->b, id);
    if (f)
        bk_targets_add_user(r->t, f);
}

/* Scope related (PROTOCOL.md §2): u's own tabs, its friends' tabs, and
 * whoever watches it (the features' watchers hooks). O(friends + watchers),
 * never O(connections). */
static void related_targets(struct bk *b, struct bk_user *u, struct bk_targets *t)
{
    bk_targets_add_user(t, u);
    struct related_ctx r = {b, t};
    if (bk_store_friends_each(&b->store, u->id, related_friend, &r) < 0)
        log_error("friends of %lld: %s (their tabs miss this transition)", (long long)u->id,
                  b->store.err);
    HOOKS_EACH(b, watchers, b, u->id, t);
}

/* Writes u's transition: the status event (to every connection in scope
 * all, to the related ones in scope related; every gateway's online list
 * follows it), and the hook. */
/* The status event's data {userId, username, status} of u into js (192
 * bytes); returns its length. Usernames are [A-Za-z0-9_.-]{1,64}
 * (bk_username_valid): nothing to escape, and it always fits. */
static size_t status_json(char *js, size_t size, const struct bk_user *u, bool online)
{
    int n = snprintf(js, size, "{\"userId\":%lld,\"username\":\"%s\",\"status\":\"%s\"}",
                     (long long)u->id, u->username, online ? "online" : "offline");
    HERALD_ASSERT(n > 0 && (size_t)n < size);
    return (size_t)n;
}

static void emit(struct bk *b, struct bk_user *u, bool online)
{
    char js[192];
    size_t jl = status_json(js, sizeof(js), u, online);
    if (b->cfg.scope_related) {
        struct bk_targets t = {0};
        related_targets(b, u, &t);
        bk_status(b, u->id, online, js, jl, &t);
        bk_targets_free(&t);
    } else {
        bk_status(b, u->id, online, js, jl, NULL);
    }
    u->announced = online;
    /* An online hook happened when the user went online (the offline
     * hook's onlineSince is the same instant), even if a flush held it. */
    bk_feed_presence(b, u->id, u->username, online, u->online_since_ms,
                     online && u->online_since_ms ? u->online_since_ms : bk_wall_ms(b));
    b->counters.transitions++;
    log_info("user %lld (%s) is %s", (long long)u->id, u->username, online ? "online" : "offline");
}

void bk_presence_tell(struct bk *b, const struct bk_user *about, const struct bk_user *to)
{
    if (!about->announced || LIST_EMPTY(&to->conns))
        return;
    char js[192];
    bk_to_user(b, to, "status", js, status_json(js, sizeof(js), about, true));
}

/* A transition of u: written at once, or with presence_flush_ms held until
 * the next flush, where only a user whose state differs from what clients
 * last heard is written (a flap inside the window writes nothing). */
static void announce(struct bk *b, struct bk_user *u, bool online)
{
    if (b->cfg.presence_flush_ms <= 0) {
        emit(b, u, online);
        return;
    }
    if (!u->pending) {
        u->pending = true;
        TAILQ_INSERT_TAIL(&b->presence_pending, u, pend);
    }
    if (!b->presence_flush_at_ms)
        b->presence_flush_at_ms = bk_now(b) + b->cfg.presence_flush_ms;
}

static void user_release(struct bk *b, struct bk_user *u);

/* Writes every held transition whose user's state changed since clients
 * last heard it, in the order the users first changed. */
static void presence_flush(struct bk *b)
{
    struct bk_user *u;
    size_t flaps = 0;
    b->presence_flush_at_ms = 0;
    while ((u = TAILQ_FIRST(&b->presence_pending)) != NULL) {
        TAILQ_REMOVE(&b->presence_pending, u, pend);
        u->pending = false;
        if (u->online != u->announced)
            emit(b, u, u->online);
        else
            flaps++;
        user_release(b, u);
    }
    if (flaps)
        log_debug("presence flush: %zu users came back to what was announced: nothing written",
                  flaps);
}

/* SADD or SREM u in online_users. */
static void online_set_write(struct bk *b, const char *op, const struct bk_user *u)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, op);
    ev_args_adds(&a, EV_ONLINE_SET);
    ev_args_add_i64(&a, u->id);
    bk_cmd(b, &a);
}

/* HSET or HDEL u in herald:online_since (the user-offline hook's
 * onlineSince survives a broker restart). */
static void online_since_write(struct bk *b, const struct bk_user *u, bool set)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, set ? "HSET" : "HDEL");
    ev_args_adds(&a, BK_ONLINE_SINCE_KEY);
    ev_args_add_i64(&a, u->id);
    if (set)
        ev_args_add_i64(&a, u->online_since_ms);
    bk_cmd(b, &a);
}

static void set_online(struct bk *b, struct bk_user *u)
{
    online_set_write(b, "SADD", u);
    u->online = true;
    u->online_since_ms = bk_wall_ms(b);
    online_since_write(b, u, true);
    b->nonline++;
    announce(b, u, true);
}

static void set_offline(struct bk *b, struct bk_user *u)
{
    online_set_write(b, "SREM", u);
    online_since_write(b, u, false);
    if (u->online)
        b->nonline--;
    u->online = false;
    /* online_since_ms stays until the transition is written (it may be
     * held: coalescing); the next set_online replaces it. */
    announce(b, u, false);
}

/* Frees u when nothing refers to it any more. */
static void user_release(struct bk *b, struct bk_user *u)
{
    if (u->nconns == 0 && !u->online && !u->in_grace && !u->queued && !u->pending &&
        LIST_EMPTY(&u->conns)) {
        RB_REMOVE(bk_user_tree, &b->users, u);
        free(u);
    }
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
        user_release(b, u);
        return;
    }
    if (b->cfg.presence_grace_ms <= 0 || u->deleted) {
        set_offline(b, u);
        user_release(b, u);
        return;
    }
    u->in_grace = true;
    u->grace_until_ms = bk_now(b) + b->cfg.presence_grace_ms;
    /* Every user waits the same period, so appending keeps the list sorted. */
    TAILQ_INSERT_TAIL(&b->grace, u, grace);
}

void bk_presence_tick(struct bk *b, int64_t now)
{
    if (b->presence_flush_at_ms && now >= b->presence_flush_at_ms)
        presence_flush(b);
    detached_expire(b, now);
    struct bk_user *u;
    while ((u = TAILQ_FIRST(&b->grace)) != NULL && u->grace_until_ms <= now) {
        grace_cancel(b, u);
        if (u->nconns == 0 && u->online)
            set_offline(b, u);
        user_release(b, u);
    }
}

void bk_presence_reconcile(struct bk *b)
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

/* ---- users ---------------------------------------------------------------- */

struct bk_user *bk_user_find(struct bk *b, int64_t id)
{
    struct bk_user key;
    key.id = id;
    return RB_FIND(bk_user_tree, &b->users, &key);
}

struct bk_user *bk_user_add(struct bk *b, int64_t id)
{
    struct bk_user *u = bk_user_find(b, id);
    if (u)
        return u;
    u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->id = id;
    LIST_INIT(&u->conns);
    RB_INSERT(bk_user_tree, &b->users, u);
    return u;
}

void bk_user_loaded_online(struct bk *b, struct bk_user *u)
{
    if (u->online)
        return;
    u->online = true;
    u->announced = true; /* the broker before us announced it */
    b->nonline++;
}

void bk_user_delete(struct bk *b, struct bk_user *u)
{
    u->deleted = true;
    hooks_user_idle(b, u);
    if (u->nconns == 0) {
        grace_cancel(b, u);
        if (u->online)
            set_offline(b, u);
        if (LIST_EMPTY(&u->conns)) {
            user_release(b, u);
            return;
        }
    }
    /* Detached sessions first (they never come back; removing them changes
     * no count), then the tabs: removing the last takes the user offline
     * and frees u. */
    struct bk_conn *c = LIST_FIRST(&u->conns), *next;
    bool live = u->nconns > 0;
    for (; c; c = next) {
        next = LIST_NEXT(c, user_link);
        if ((c->flags & BK_CONN_DETACHED) && (live || next))
            bk_conn_remove(b, c, true);
    }
    /* Here either live tabs remain, or one detached session, the last. */
    while ((c = LIST_FIRST(&u->conns)) != NULL) {
        next = LIST_NEXT(c, user_link);
        bk_conn_remove(b, c, true);
        if (!next)
            break; /* u may be freed */
    }
}

/* ---- gateways ---------------------------------------------------------------- */

struct bk_gw *bk_gw_find(struct bk *b, const char *id, size_t len)
{
    char name[BK_GW_ID_MAX + 1];
    if (len == 0 || len >= sizeof(name))
        return NULL;
    memcpy(name, id, len);
    name[len] = '\0';
    struct bk_gw key;
    key.id = name;
    return RB_FIND(bk_gw_tree, &b->gws, &key);
}

struct bk_gw *bk_gw_get(struct bk *b, const char *id, size_t len, bool persist)
{
    struct bk_gw *gw = bk_gw_find(b, id, len);
    if (gw || len == 0 || len > BK_GW_ID_MAX)
        return gw;
    gw = calloc(1, sizeof(*gw));
    if (!gw || !(gw->id = strndup(id, len))) {
        free(gw);
        return NULL;
    }
    gw->seen_ms = bk_now(b);
    RB_INSERT(bk_gw_tree, &b->gws, gw);
    if (persist)
        bk_cmd_strs(b, 3, (const char *[]){"SADD", BK_GATEWAYS_KEY, gw->id});
    log_info("gateway %s registered", gw->id);
    return gw;
}

/* Forgets every connection of a gateway (it restarted or died); with
 * detach, they are detached instead (bk_conn_detach: they may come back).
 * Detached sessions stay either way: their clients may still come back (to
 * this gateway's new life or another), and their events are in its stream. */
static void gw_clear(struct bk *b, struct bk_gw *gw, bool detach)
{
    char key[256];
    char wkey[256];
    /* The rooms' hash of this gateway (bk_rooms.c) goes in the same DEL:
     * the hooks below are told not to persist. */
    snprintf(key, sizeof(key), "%s%s", BK_CONNS_PREFIX, gw->id);
    snprintf(wkey, sizeof(wkey), "%s%s", BK_WATCH_PREFIX, gw->id);
    bk_cmd_strs(b, 3, (const char *[]){"DEL", key, wkey});
    struct bk_conn *c, *next;
    RB_FOREACH_SAFE(c, bk_conn_tree, &b->conns, next)
    {
        if (c->gw != gw || (c->flags & BK_CONN_DETACHED))
            continue;
        if (detach)
            bk_conn_detach(b, c, false);
        else
            bk_conn_remove(b, c, false);
    }
}

/* Frees a dead gateway's record once no session of it can come back. Its
 * stream expires by itself (gw_reap set its TTL). */
static void gw_release_if_dead(struct bk *b, struct bk_gw *gw)
{
    if (!gw->dead || gw->nconns || gw->ndetached)
        return;
    RB_REMOVE(bk_gw_tree, &b->gws, gw);
    free(gw->id);
    free(gw);
}

/* ---- fencing ------------------------------------------------------------------ */

static size_t fenced_index(const struct bk *b, const char *id, size_t len)
{
    size_t i = 0;
    while (i < b->nfenced && !(strlen(b->fenced[i]) == len && memcmp(b->fenced[i], id, len) == 0))
        i++;
    return i;
}

bool bk_gw_fenced(const struct bk *b, const char *id, size_t len)
{
    return fenced_index(b, id, len) < b->nfenced;
}

/* SET herald:gw:<id>:lease reaped PX EV_FENCE_TTL_MS. */
static void fence_write(struct bk *b, const char *id)
{
    char key[256], ttl[24];
    snprintf(key, sizeof(key), "%s%s:lease", EV_GW_STREAM_PREFIX, id);
    snprintf(ttl, sizeof(ttl), "%ld", EV_FENCE_TTL_MS);
    bk_cmd_strs(b, 5, (const char *[]){"SET", key, EV_LEASE_REAPED, "PX", ttl});
}

void bk_gw_fence_mark(struct bk *b, const char *id, size_t len)
{
    size_t i = fenced_index(b, id, len);
    if (i == b->nfenced)
        return;
    int64_t now = bk_now(b);
    if (now - b->fenced_marked_ms[i] < 1000)
        return;
    b->fenced_marked_ms[i] = now;
    fence_write(b, b->fenced[i]);
}

/* Remembers id as fenced (already there: nothing). Out of memory, the
 * gateway's entries are taken until it learns it was given up. */
static void fence_add(struct bk *b, const char *id)
{
    if (bk_gw_fenced(b, id, strlen(id)))
        return;
    char **v = realloc(b->fenced, (b->nfenced + 1) * sizeof(*v));
    if (v)
        b->fenced = v;
    int64_t *t = realloc(b->fenced_marked_ms, (b->nfenced + 1) * sizeof(*t));
    if (t)
        b->fenced_marked_ms = t;
    char *name = strdup(id);
    if (!v || !t || !name) {
        free(name);
        log_error("out of memory: gateway %s not fenced", id);
        return;
    }
    b->fenced[b->nfenced] = name;
    b->fenced_marked_ms[b->nfenced] = bk_now(b);
    b->nfenced++;
}

static void fence_remove(struct bk *b, const char *id, size_t len)
{
    size_t i = fenced_index(b, id, len);
    if (i == b->nfenced)
        return;
    free(b->fenced[i]);
    b->nfenced--;
    b->fenced[i] = b->fenced[b->nfenced];
    b->fenced_marked_ms[i] = b->fenced_marked_ms[b->nfenced];
}

/* The gateway missed its lease: its users leave, and it is fenced until it
 * says "hello" again. A gateway that was only paused would otherwise carry
 * on with clients the broker no longer counts (no presence, no delivery,
 * their events dropped): the "reaped" in its lease key tells it at its next
 * renewal, and it closes them (1012) and registers again. */
static void gw_reap(struct bk *b, struct bk_gw *gw)
{
    log_warn("gateway %s missed its lease: dropping its %zu connections and fencing it", gw->id,
             gw->nconns);
    /* With recovery, its sessions may come back elsewhere with what they
     * missed: they are detached (offline after the grace, as before), and
     * the gateway is kept as a dead record that still gets their events,
     * its stream expiring once none of them can return. */
    gw_clear(b, gw, true);
    if (b->cfg.recovery_window_ms > 0) {
        char key[256], ttl[24];
        snprintf(key, sizeof(key), "%s%s", EV_GW_STREAM_PREFIX, gw->id);
        snprintf(ttl, sizeof(ttl), "%ld", 2 * b->cfg.recovery_window_ms);
        bk_cmd_strs(b, 3, (const char *[]){"PEXPIRE", key, ttl});
    }
    bk_cmd_strs(b, 3, (const char *[]){"SREM", BK_GATEWAYS_KEY, gw->id});
    fence_write(b, gw->id);
    fence_add(b, gw->id);
    gw->dead = true;
    b->counters.reaped++;
    gw_release_if_dead(b, gw);
}

/* One outstanding GET of a lease: the gateway is named, not pointed to,
 * since it may be reaped or re-registered before the answer comes. */
struct lease_check {
    struct bk *b; /* borrowed */
    char id[BK_GW_ID_MAX + 1];
};

static void on_lease_reply(redisAsyncContext *ac, void *reply_, void *priv)
{
    (void)ac;
    struct lease_check *lc = priv;
    struct bk *b = lc->b;
    redisReply *r = reply_;
    struct bk_gw *gw = bk_gw_find(b, lc->id, strlen(lc->id));
    if (r && (r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_STRING) && gw && !gw->dead) {
        int64_t now = bk_now(b);
        /* Our own "reaped" (written for an earlier life of this name that
         * another broker fenced) is no lease. A present key says nothing
         * newer than its last renewal, so only entries, registration and
         * Redis reconnects refresh seen_ms: the grace it gives covers a
         * gateway whose key Redis lost. */
        bool lapsed = r->type == REDIS_REPLY_NIL || strcmp(r->str, EV_LEASE_REAPED) == 0;
        if (lapsed && now - gw->seen_ms >= EV_LEASE_TTL(b->cfg.gateway_lease_ms))
            gw_reap(b, gw);
    }
    free(lc);
}

/* XLEN of the gateway's stream: what it has not read yet (it trims what it
 * has). A gateway that far behind is stalled or cannot keep up; its
 * clients are missing deliveries either way. It is given up as for a
 * missed lease, so its clients are told (1012) instead of the stream
 * dropping entries nobody read. */
static void on_backlog_reply(redisAsyncContext *ac, void *reply_, void *priv)
{
    (void)ac;
    struct lease_check *lc = priv;
    struct bk *b = lc->b;
    redisReply *r = reply_;
    struct bk_gw *gw = bk_gw_find(b, lc->id, strlen(lc->id));
    if (r && r->type == REDIS_REPLY_INTEGER && gw && !gw->dead &&
        r->integer >= b->cfg.gw_stream_maxlen) {
        log_warn("gateway %s has %lld unread entries (cap %ld): giving it up", gw->id,
                 (long long)r->integer, b->cfg.gw_stream_maxlen);
        gw_reap(b, gw);
    }
    free(lc);
}

/* Sends cmd (GET of the lease, or XLEN of the stream) for gw, answered to
 * fn with a lease_check. */
static void gw_check(struct bk *b, const struct bk_gw *gw, const char *cmd, const char *suffix,
                     redisCallbackFn *fn)
{
    struct lease_check *lc = malloc(sizeof(*lc));
    if (!lc)
        return;
    lc->b = b;
    snprintf(lc->id, sizeof(lc->id), "%s", gw->id);
    char key[256];
    snprintf(key, sizeof(key), "%s%s%s", EV_GW_STREAM_PREFIX, gw->id, suffix);
    const char *argv[] = {cmd, key};
    const size_t lens[] = {strlen(cmd), strlen(key)};
    if (bk_send(b, fn, lc, 2, argv, lens) != 0)
        free(lc);
}

void bk_presence_check_leases(struct bk *b)
{
    /* A fenced name whose "reaped" mark has expired in Redis is forgotten:
     * a gateway that never came back (an id made of host and pid) must
     * not cost every later entry a look-up. */
    int64_t now = bk_now(b);
    for (size_t i = b->nfenced; i-- > 0;)
        if (now - b->fenced_marked_ms[i] >= EV_FENCE_TTL_MS)
            fence_remove(b, b->fenced[i], strlen(b->fenced[i]));
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    {
        if (gw->dead)
            continue;
        gw_check(b, gw, "GET", ":lease", on_lease_reply);
        gw_check(b, gw, "XLEN", "", on_backlog_reply);
    }
}

/* ---- connections -------------------------------------------------------------- */

struct bk_conn *bk_conn_find(struct bk *b, struct bk_gw *gw, uint64_t id)
{
    struct bk_conn key;
    key.gw = gw;
    key.id = id;
    return RB_FIND(bk_conn_tree, &b->conns, &key);
}

void bk_conn_persist(struct bk *b, const struct bk_conn *c)
{
    char key[256], val[64];
    snprintf(key, sizeof(key), "%s%s", BK_CONNS_PREFIX, c->gw->id);
    snprintf(val, sizeof(val), "%lld:%c:%u", (long long)(c->user ? c->user->id : 0),
             bk_conn_kind(c), (unsigned)c->token);
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "HSET");
    ev_args_adds(&a, key);
    ev_args_add_u64(&a, c->id);
    ev_args_adds(&a, val);
    bk_cmd(b, &a);
}

/* HDEL herald:conns:<gw> <id> of c. */
static void conn_hdel(struct bk *b, const struct bk_conn *c)
{
    char key[256];
    snprintf(key, sizeof(key), "%s%s", BK_CONNS_PREFIX, c->gw->id);
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "HDEL");
    ev_args_adds(&a, key);
    ev_args_add_u64(&a, c->id);
    bk_cmd(b, &a);
}

struct bk_conn *bk_conn_add(struct bk *b, struct bk_gw *gw, uint64_t id, struct bk_user *u,
                            char kind, uint32_t token, bool persist)
{
    if (bk_conn_find(b, gw, id))
        return NULL; /* replayed entry: already applied */
    struct bk_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->gw = gw;
    c->id = id;
    c->user = u;
    c->sio = kind == 's';
    c->token = token;
    LIST_INIT(&c->rooms);
    RB_INSERT(bk_conn_tree, &b->conns, c);
    gw->nconns++;
    if (persist)
        bk_conn_persist(b, c);
    if (u) {
        LIST_INSERT_HEAD(&u->conns, c, user_link);
        u->nconns++;
        if (u->nconns == 1) {
            if (u->in_grace)
                grace_cancel(b, u); /* back within the grace period: no event */
            else if (!u->online && persist)
                set_online(b, u);
        }
        if (persist)
            hooks_conn_opened(b, c);
    }
    return c;
}

static struct bk_detached *detached_find(struct bk *b, struct bk_conn *c)
{
    struct bk_detached key;
    key.c = c;
    return RB_FIND(bk_detached_tree, &b->detached, &key);
}

/* c is no longer detached (recovered or removed): its expiry goes. */
static void detached_forget(struct bk *b, struct bk_conn *c)
{
    struct bk_detached *d = detached_find(b, c);
    HERALD_ASSERT(d != NULL); /* every detached connection has its record */
    RB_REMOVE(bk_detached_tree, &b->detached, d);
    TAILQ_REMOVE(&b->detached_order, d, order);
    free(d);
    b->ndetached--;
    c->flags = 0; /* BK_CONN_DETACHED cleared: its only flag (bk.h) */
}

/* Removes a detached connection for good: it left presence when it was
 * detached, and Redis no longer holds it. */
static void detached_remove(struct bk *b, struct bk_conn *c)
{
    struct bk_gw *gw = c->gw;
    struct bk_user *u = c->user;
    detached_forget(b, c);
    hooks_conn_closing(b, c, false);
    RB_REMOVE(bk_conn_tree, &b->conns, c);
    HERALD_ASSERT(gw->ndetached > 0);
    gw->ndetached--;
    if (u)
        LIST_REMOVE(c, user_link);
    free(c);
    if (u)
        user_release(b, u);
    gw_release_if_dead(b, gw);
}

void bk_conn_remove(struct bk *b, struct bk_conn *c, bool persist)
{
    if (c->flags & BK_CONN_DETACHED) {
        detached_remove(b, c);
        return;
    }
    struct bk_gw *gw = c->gw;
    struct bk_user *u = c->user;
    if (persist)
        conn_hdel(b, c);
    hooks_conn_closing(b, c, persist);
    RB_REMOVE(bk_conn_tree, &b->conns, c);
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
        hooks_user_idle(b, u); /* e.g. a player without a tab cannot play */
        last_conn_gone(b, u);
    }
    gw_release_if_dead(b, gw);
}

/* HDEL c from its gateway's hash; the features drop what they persisted
 * for it (it stays in memory). */
static void conn_unpersist(struct bk *b, struct bk_conn *c, bool persist)
{
    if (persist) {
        conn_hdel(b, c);
        hooks_conn_persist(b, c, false);
    }
}

void bk_conn_detach(struct bk *b, struct bk_conn *c, bool persist)
{
    if (c->flags & BK_CONN_DETACHED)
        return;
    struct bk_detached *d = NULL;
    if (b->cfg.recovery_window_ms <= 0 || !c->token || !(d = calloc(1, sizeof(*d)))) {
        bk_conn_remove(b, c, persist);
        return;
    }
    conn_unpersist(b, c, persist);
    d->c = c;
    d->until_ms = bk_now(b) + b->cfg.recovery_window_ms;
    RB_INSERT(bk_detached_tree, &b->detached, d);
    /* Every session waits the same window: appending keeps the order. */
    TAILQ_INSERT_TAIL(&b->detached_order, d, order);
    b->ndetached++;
    c->flags |= BK_CONN_DETACHED;
    struct bk_gw *gw = c->gw;
    HERALD_ASSERT(gw->nconns > 0);
    gw->nconns--;
    gw->ndetached++;
    struct bk_user *u = c->user;
    if (u) {
        HERALD_ASSERT(u->nconns > 0);
        u->nconns--;
        if (u->nconns == 0) {
            hooks_user_idle(b, u);
            last_conn_gone(b, u);
        }
    }
}

/* Detached sessions past the window are gone for good. */
static void detached_expire(struct bk *b, int64_t now)
{
    struct bk_detached *d;
    while ((d = TAILQ_FIRST(&b->detached_order)) != NULL && d->until_ms <= now) {
        b->counters.detached_expired++;
        log_debug("session %llu of %s: recovery window over", (unsigned long long)d->c->id,
                  d->c->gw->id);
        detached_remove(b, d->c);
    }
}

/* ---- entries ---------------------------------------------------------------- */

void bk_presence_hello(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    (void)e;
    if (bk_gw_fenced(b, gw->id, strlen(gw->id))) {
        log_info("gateway %s registered again after it was fenced", gw->id);
        fence_remove(b, gw->id, strlen(gw->id));
    }
    if (gw->dead) {
        /* Back from the dead (it was paused): a live gateway again, and
         * its stream must not expire under it. */
        char key[256];
        snprintf(key, sizeof(key), "%s%s", EV_GW_STREAM_PREFIX, gw->id);
        gw->dead = false;
        bk_cmd_strs(b, 3, (const char *[]){"SADD", BK_GATEWAYS_KEY, gw->id});
        bk_cmd_strs(b, 2, (const char *[]){"PERSIST", key});
    }
    if (gw->nconns) {
        log_info("gateway %s restarted: dropping its %zu old connections", gw->id, gw->nconns);
        gw_clear(b, gw, false);
    }
    bk_welcome(b, gw);
    /* Its online list starts from ours; the status entries keep it. */
    bk_online_list(b, gw);
}

/* Closes connection e->conn of gw: the store failed (f < 0) or does not
 * know the token's user (f == 0). */
static void refuse_open(struct bk *b, struct bk_gw *gw, const struct ev_entry *e, int f)
{
    char id[24];
    int il = snprintf(id, sizeof(id), "%llu", (unsigned long long)e->conn);
    if (f < 0) {
        /* Not acknowledging would retry forever on a broken database;
         * refuse the connection and say why. */
        log_error("conn %llu on %s: user lookup %lld: %s: closing with 1011",
                  (unsigned long long)e->conn, gw->id, (long long)e->user, b->store.err);
        bk_kick(b, gw, id, (size_t)il, 1011, "internal");
        return;
    }
    /* A valid token for an id Herald does not know: the application forgot
     * to provision the user. The word tells its developer so (close reason,
     * CONNECT_ERROR code), rather than a bare "closed by the server". */
    log_info("conn %llu on %s: token for unknown user %lld: unknown-user, 4003",
             (unsigned long long)e->conn, gw->id, (long long)e->user);
    bk_kick(b, gw, id, (size_t)il, 4003, "unknown-user");
    bk_refusal_count(b, "unknown-user");
}

/* The connection that session token e->token names: its id is e->conn,
 * on whichever gateway it lives now (a handful), live or detached. */
static struct bk_conn *session_find(struct bk *b, const struct ev_entry *e)
{
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    {
        struct bk_conn *c = bk_conn_find(b, gw, e->conn);
        if (c && c->token && c->token == e->token)
            return c;
    }
    return NULL;
}

/* Moves session c to gateway to as connection id (the same id: the
 * gateway took it over), without a presence transition unless it had
 * gone offline meanwhile. The "moved" entry ends its entries in the old
 * stream; the "resume" answer tells the new gateway where to read them. */
static void session_move(struct bk *b, struct bk_conn *c, struct bk_gw *to,
                         const struct ev_entry *e)
{
    struct bk_gw *from = c->gw;
    bool was_detached = c->flags & BK_CONN_DETACHED;
    bk_moved(b, from, c->id);
    if (was_detached)
        detached_forget(b, c);
    else
        conn_unpersist(b, c, true);
    RB_REMOVE(bk_conn_tree, &b->conns, c);
    if (was_detached) {
        HERALD_ASSERT(from->ndetached > 0);
        from->ndetached--;
    } else {
        HERALD_ASSERT(from->nconns > 0);
        from->nconns--;
    }
    c->gw = to;
    RB_INSERT(bk_conn_tree, &b->conns, c);
    to->nconns++;
    bk_conn_persist(b, c);
    hooks_conn_persist(b, c, true);
    struct bk_user *u = c->user;
    if (was_detached && u && ++u->nconns == 1) {
        if (u->in_grace)
            grace_cancel(b, u); /* back within the grace period: no event */
        else if (!u->online)
            set_online(b, u);
    }
    bk_resume(b, to, c->id, true, from->id, e->offset, e->offset_len);
    b->counters.recovered++;
    log_debug("session %llu recovered from %s on %s", (unsigned long long)c->id, from->id, to->id);
    gw_release_if_dead(b, from);
}

void bk_presence_open(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    char kind = ev_is(e->kind, e->kind_len, "sio") ? 's' : 'w';
    struct bk_user *u = NULL;
    struct bk_conn *c = bk_conn_find(b, gw, e->conn);
    if (c && !(e->offset && (c->flags & BK_CONN_DETACHED)))
        return; /* replayed entry: already applied */
    if (e->offset && e->token && b->cfg.recovery_window_ms > 0) {
        /* A session coming back: the same user and kind, within the window
         * (an expired one not yet swept is removed here). */
        if (!c)
            c = session_find(b, e);
        if (c && (c->flags & BK_CONN_DETACHED) && detached_find(b, c)->until_ms <= bk_now(b)) {
            detached_remove(b, c);
            c = NULL;
        }
        if (c && (c->user ? c->user->id : 0) == e->user && bk_conn_kind(c) == kind) {
            session_move(b, c, gw, e);
            return;
        }
        if (c && c->gw == gw) {
            /* The id taken over here, by another user (a guest's tab that
             * logged in): the old session is given up, this one is new. */
            bk_conn_remove(b, c, true);
        }
    }
    if (e->user > 0 && !(u = bk_user_find(b, e->user))) {
        /* First sight of this user: the store has their name, or says
         * they do not exist. */
        struct bk_user_row row;
        int f = bk_store_user_by_id(&b->store, e->user, &row);
        if (f <= 0) {
            refuse_open(b, gw, e, f);
            return;
        }
        if (!(u = bk_user_add(b, e->user)))
            return;
        snprintf(u->username, sizeof(u->username), "%s", row.username);
    }
    c = bk_conn_add(b, gw, e->conn, u, kind, e->token, true);
    if (e->offset) {
        /* Asked to recover and could not: a fresh session. */
        bk_resume(b, gw, e->conn, false, NULL, NULL, 0);
        b->counters.recovery_fresh++;
    }
}

void bk_presence_close(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    struct bk_conn *c = bk_conn_find(b, gw, e->conn);
    if (!c)
        return;
    if (e->recoverable)
        bk_conn_detach(b, c, true);
    else
        bk_conn_remove(b, c, true);
}

static int u64_cmp(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
    return p < q ? -1 : p > q;
}

void bk_presence_sync(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    /* The listed ids, sorted for lookups: one entry holds at most the
     * gateway's connections (20 000 per process by the fd limit). */
    size_t cap = gw->nconns + 1, n = 0;
    uint64_t *ids = malloc(cap * sizeof(*ids));
    if (!ids) {
        log_error("gateway %s sync: out of memory, not applied", gw->id);
        return;
    }
    const char *p = e->conns, *end = e->conns ? e->conns + e->conns_len : NULL;
    uint64_t id;
    while (p && ev_ids_next(&p, end, &id)) {
        if (n == cap) {
            uint64_t *v = realloc(ids, 2 * cap * sizeof(*ids));
            if (!v) {
                free(ids);
                log_error("gateway %s sync: out of memory, not applied", gw->id);
                return;
            }
            ids = v;
            cap *= 2;
        }
        ids[n++] = id;
    }
    qsort(ids, n, sizeof(*ids), u64_cmp);
    size_t gone = 0;
    struct bk_conn *c, *next;
    RB_FOREACH_SAFE(c, bk_conn_tree, &b->conns, next)
    {
        if (c->gw == gw && !(c->flags & BK_CONN_DETACHED) &&
            !bsearch(&c->id, ids, n, sizeof(*ids), u64_cmp)) {
            /* A close we never read: whether it may come back is unknown,
             * so it may. */
            bk_conn_detach(b, c, true);
            gone++;
        }
    }
    free(ids);
    if (gone)
        log_info("gateway %s sync: %zu connection(s) it no longer holds removed", gw->id, gone);
}

/* ---- lifetime ------------------------------------------------------------------ */

void bk_presence_init(struct bk *b)
{
    RB_INIT(&b->detached);
    TAILQ_INIT(&b->detached_order);
    RB_INIT(&b->gws);
    RB_INIT(&b->users);
    RB_INIT(&b->conns);
    TAILQ_INIT(&b->grace);
    TAILQ_INIT(&b->presence_pending);
}

void bk_presence_free(struct bk *b)
{
    struct bk_detached *d;
    while ((d = TAILQ_FIRST(&b->detached_order)) != NULL) {
        TAILQ_REMOVE(&b->detached_order, d, order);
        RB_REMOVE(bk_detached_tree, &b->detached, d);
        free(d);
    }
    b->ndetached = 0;
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
    for (size_t i = 0; i < b->nfenced; i++)
        free(b->fenced[i]);
    free(b->fenced);
    free(b->fenced_marked_ms);
    b->fenced = NULL;
    b->fenced_marked_ms = NULL;
    b->nfenced = 0;
    struct bk_gw *gw, *gt;
    RB_FOREACH_SAFE(gw, bk_gw_tree, &b->gws, gt)
    {
        RB_REMOVE(bk_gw_tree, &b->gws, gw);
        free(gw->id);
        free(gw);
    }
}
