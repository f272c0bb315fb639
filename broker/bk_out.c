/*
 * bk_out.c - everything the broker writes: commands through the sink and
 * entries on the gateways' streams. It is the one place that writes to a
 * gateway, so the entry shapes of event.h live here and nowhere else.
 *
 * All of it is pipelined on one hiredis connection and leaves in the order
 * it was queued, before the XACK of the batch that caused it; nothing here
 * waits for an answer. An event for many connections becomes one entry per
 * gateway that has recipients (never one per recipient), and the gateway
 * renders it once for all of them.
 */
#include "bk_out.h"

#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- commands ------------------------------------------------------------ */

int bk_redis_sink(void *arg, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                  const size_t *argvlen)
{
    return rds_cmd_argv(arg, fn, priv, argc, argv, argvlen);
}

int bk_send(struct bk *b, redisCallbackFn *fn, void *priv, int argc, const char **argv,
            const size_t *argvlen)
{
    /* bk_init() installs a sink before anything can be written. */
    HERALD_ASSERT(b->sink.cmd != NULL);
    return b->sink.cmd(b->sink.arg, fn, priv, argc, argv, argvlen);
}

void bk_cmd_argv(struct bk *b, int argc, const char **argv, const size_t *argvlen)
{
    if (bk_send(b, NULL, NULL, argc, argv, argvlen) != 0)
        log_warn_rl(1, "redis down: a write was not sent");
}

void bk_cmd_strs(struct bk *b, int argc, const char *const *argv)
{
    struct ev_args a;
    ev_args_init(&a);
    for (int i = 0; i < argc; i++)
        ev_args_adds(&a, argv[i]);
    bk_cmd(b, &a);
}

void bk_cmd(struct bk *b, struct ev_args *a)
{
    bk_cmd_argv(b, a->argc, a->argv, a->argvlen);
}

/* XADDs the fields in a (t, c, e, d, ...) to the gateway's stream. */
static void xadd_gw(struct bk *b, const struct bk_gw *gw, struct ev_args *a)
{
    char key[256];
    int kl = snprintf(key, sizeof(key), "%s%s", EV_GW_STREAM_PREFIX, gw->id);
    /* The key is formatted into our stack buffer: copy the argv into a new
     * builder that starts with the XADD prefix. */
    struct ev_args x;
    /* No MAXLEN: Redis would trim entries the gateway has not read. The
     * gateway trims what it has read; a backlog past gw_stream_maxlen gets
     * it fenced (bk_presence_check_leases). */
    ev_args_xadd(&x, key, (size_t)kl, 0);
    for (int i = 0; i < a->argc; i++)
        ev_args_add(&x, a->argv[i], a->argvlen[i]);
    bk_cmd(b, &x);
}

static void xadd_all(struct bk *b, struct ev_args *a)
{
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    xadd_gw(b, gw, a);
}

/* ---- entries for the gateways -------------------------------------------- */

void bk_broadcast(struct bk *b, const char *t, const char *event, const char *json, size_t jl)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_enc_all(&a, t, event, json, jl);
    xadd_all(b, &a);
}

/* One "conn" entry: event to the connections ids (comma list) of gw. */
static void to_ids(struct bk *b, const struct bk_gw *gw, const char *ids, size_t il,
                   const char *event, const char *json, size_t jl)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_enc_conn(&a, ids, il, event, json, jl);
    xadd_gw(b, gw, &a);
}

void bk_to_conn(struct bk *b, const struct bk_conn *c, const char *event, const char *json,
                size_t jl)
{
    char id[24];
    int il = snprintf(id, sizeof(id), "%llu", (unsigned long long)c->id);
    to_ids(b, c->gw, id, (size_t)il, event, json, jl);
}

void bk_kick(struct bk *b, const struct bk_gw *gw, const char *ids, size_t len, int code,
             const char *word)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_enc_kick(&a, ids, len, code, word);
    xadd_gw(b, gw, &a);
}

void bk_reply(struct bk *b, const struct bk_gw *gw, const struct ev_entry *e, int status,
              const char *json, size_t jl)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_enc_reply(&a, e->conn, e->req, status, json, jl, e->ms);
    xadd_gw(b, gw, &a);
}

void bk_to_ack(struct bk *b, const struct bk_conn *c, const struct ev_entry *e, const char *args,
               size_t al)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_enc_ack(&a, c->id, e->req, args, al, e->ms);
    xadd_gw(b, c->gw, &a);
}

void bk_moved(struct bk *b, const struct bk_gw *gw, uint64_t id)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "t");
    ev_args_adds(&a, "moved");
    ev_args_adds(&a, "c");
    ev_args_add_u64(&a, id);
    xadd_gw(b, gw, &a);
}

void bk_resume(struct bk *b, const struct bk_gw *gw, uint64_t id, bool ok, const char *from,
               const char *offset, size_t offset_len)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "t");
    ev_args_adds(&a, "resume");
    ev_args_adds(&a, "c");
    ev_args_add_u64(&a, id);
    ev_args_adds(&a, "s");
    ev_args_adds(&a, ok ? "1" : "0");
    if (ok) {
        ev_args_adds(&a, "e");
        ev_args_adds(&a, from);
        ev_args_adds(&a, "o");
        ev_args_add(&a, offset, offset_len);
    }
    xadd_gw(b, gw, &a);
}

void bk_welcome(struct bk *b, const struct bk_gw *gw)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "t");
    ev_args_adds(&a, "welcome");
    xadd_gw(b, gw, &a);
}

void bk_announce_deleted(struct bk *b, int64_t id)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "SADD");
    ev_args_adds(&a, BK_DELETED_KEY);
    ev_args_add_i64(&a, id);
    bk_cmd(b, &a);
    ev_args_init(&a);
    ev_enc_deleted(&a, id);
    xadd_all(b, &a);
}

static size_t
targets_walk(struct bk_targets *t,
             void (*fn)(const struct bk_gw *gw, const char *ids, size_t il, void *arg), void *arg);

/* The fields of a status entry (event.h) up to c. */
static void status_fields(struct ev_args *a, int64_t user, bool online, const char *json, size_t jl)
{
    ev_args_init(a);
    ev_args_adds(a, "t");
    ev_args_adds(a, "status");
    ev_args_adds(a, "u");
    ev_args_add_i64(a, user);
    ev_args_adds(a, "s");
    ev_args_adds(a, online ? "1" : "0");
    ev_args_adds(a, "e");
    ev_args_adds(a, "status");
    ev_args_adds(a, "d");
    ev_args_add(a, json, jl);
}

struct status_ctx {
    struct bk *b;
    struct ev_args *a;
    int argc;                  /* the fields before c */
    const struct bk_gw **sent; /* the gateways written to */
    size_t nsent;
};

static void status_fn(const struct bk_gw *gw, const char *ids, size_t il, void *arg)
{
    struct status_ctx *s = arg;
    s->a->argc = s->argc;
    ev_args_adds(s->a, "c");
    ev_args_add(s->a, ids, il);
    xadd_gw(s->b, gw, s->a);
    s->sent[s->nsent++] = gw;
}

size_t bk_status(struct bk *b, int64_t user, bool online, const char *json, size_t jl,
                 struct bk_targets *t)
{
    struct ev_args a;
    status_fields(&a, user, online, json, jl);
    if (!t) {
        xadd_all(b, &a);
        return 0;
    }
    /* Every gateway hears the transition (its online list follows it);
     * only the named connections get the event. */
    size_t ngw = 0, reached;
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    ngw++;
    const struct bk_gw **sent = calloc(ngw ? ngw : 1, sizeof(*sent));
    struct status_ctx s = {.b = b, .a = &a, .argc = a.argc, .sent = sent};
    reached = sent ? targets_walk(t, status_fn, &s) : 0;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    {
        bool done = false;
        for (size_t i = 0; i < s.nsent && !done; i++)
            done = s.sent[i] == gw;
        if (done)
            continue;
        a.argc = s.argc;
        ev_args_adds(&a, "c");
        ev_args_adds(&a, "0"); /* no connection here: the list only */
        xadd_gw(b, gw, &a);
    }
    free(sent);
    return reached;
}

/* The online list in chunks of BK_ONLINE_CHUNK ids: "online" entries, s
 * a bit set: 1 the first (start afresh), 2 the last (the list is whole). */
#define BK_ONLINE_CHUNK 4096

static void online_chunk(struct bk *b, const struct bk_gw *gw, const char *ids, size_t il,
                         bool first, bool last)
{
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "t");
    ev_args_adds(&a, "online");
    ev_args_adds(&a, "s");
    ev_args_add_i64(&a, (first ? 1 : 0) | (last ? 2 : 0));
    ev_args_adds(&a, "c");
    if (il)
        ev_args_add(&a, ids, il);
    else
        ev_args_adds(&a, "0");
    if (gw)
        xadd_gw(b, gw, &a);
    else
        xadd_all(b, &a);
}

void bk_online_list(struct bk *b, const struct bk_gw *gw)
{
    char *ids = malloc(BK_ONLINE_CHUNK * 21 + 1);
    if (!ids) {
        log_error("out of memory: the online list was not sent");
        return;
    }
    size_t il = 0, n = 0;
    bool first = true;
    struct bk_user *u;
    RB_FOREACH(u, bk_user_tree, &b->users)
    {
        if (!u->online)
            continue;
        il += (size_t)sprintf(ids + il, "%s%lld", il ? "," : "", (long long)u->id);
        if (++n == BK_ONLINE_CHUNK) {
            online_chunk(b, gw, ids, il, first, false);
            first = false;
            il = n = 0;
        }
    }
    online_chunk(b, gw, ids, il, first, true);
    free(ids);
}

/* ---- target sets ------------------------------------------------------------ */

void bk_targets_add(struct bk_targets *t, struct bk_conn *c)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct bk_conn **v = realloc(t->v, cap * sizeof(*v));
        if (!v) {
            log_error("out of memory: a recipient was dropped");
            return;
        }
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = c;
}

void bk_targets_add_user(struct bk_targets *t, const struct bk_user *u)
{
    struct bk_conn *c;
    LIST_FOREACH(c, &u->conns, user_link)
    bk_targets_add(t, c);
}

static int target_cmp(const void *pa, const void *pb)
{
    const struct bk_conn *a = *(struct bk_conn *const *)pa, *b = *(struct bk_conn *const *)pb;
    if (a->gw != b->gw)
        return a->gw < b->gw ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/*
 * Walks t grouped by gateway, each connection once, calling fn with the
 * comma list of each gateway's ids. Empties t. Returns the number of
 * distinct connections.
 */
static size_t
targets_walk(struct bk_targets *t,
             void (*fn)(const struct bk_gw *gw, const char *ids, size_t il, void *arg), void *arg)
{
    size_t reached = 0;
    if (t->n == 0)
        return 0;
    qsort(t->v, t->n, sizeof(t->v[0]), target_cmp);
    /* 20 digits and a comma per id. */
    char *ids = malloc(t->n * 21 + 1);
    if (!ids) {
        log_error("out of memory: an event was dropped");
        t->n = 0;
        return 0;
    }
    size_t i = 0;
    while (i < t->n) {
        const struct bk_gw *gw = t->v[i]->gw;
        size_t il = 0;
        for (; i < t->n && t->v[i]->gw == gw; i++) {
            if (il && t->v[i] == t->v[i - 1])
                continue; /* sorted: duplicates are adjacent */
            il +=
                (size_t)sprintf(ids + il, "%s%llu", il ? "," : "", (unsigned long long)t->v[i]->id);
            reached++;
        }
        fn(gw, ids, il, arg);
    }
    free(ids);
    t->n = 0;
    return reached;
}

/* What targets_walk() hands each gateway's ids to; all borrowed. */
struct send_ctx {
    struct bk *b;
    const char *event, *json; /* event: the event, or the kick's reason word */
    size_t jl;
    int code;
};

static void send_fn(const struct bk_gw *gw, const char *ids, size_t il, void *arg)
{
    struct send_ctx *s = arg;
    to_ids(s->b, gw, ids, il, s->event, s->json, s->jl);
}

static void kick_fn(const struct bk_gw *gw, const char *ids, size_t il, void *arg)
{
    struct send_ctx *s = arg;
    bk_kick(s->b, gw, ids, il, s->code, s->event);
}

size_t bk_targets_send(struct bk *b, struct bk_targets *t, const char *event, const char *json,
                       size_t jl)
{
    struct send_ctx s = {.b = b, .event = event, .json = json, .jl = jl};
    return targets_walk(t, send_fn, &s);
}

size_t bk_targets_send_json(struct bk *b, struct bk_targets *t, const char *event,
                            struct json_object *v)
{
    size_t jl;
    const char *js = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &jl);
    return bk_targets_send(b, t, event, js, jl);
}

void bk_targets_kick(struct bk *b, struct bk_targets *t, int code, const char *word)
{
    struct send_ctx s = {.b = b, .event = word, .code = code};
    targets_walk(t, kick_fn, &s);
}

size_t bk_to_user(struct bk *b, const struct bk_user *u, const char *event, const char *json,
                  size_t jl)
{
    struct bk_targets t = {0};
    bk_targets_add_user(&t, u);
    size_t n = bk_targets_send(b, &t, event, json, jl);
    bk_targets_free(&t);
    return n;
}

size_t bk_to_user_json(struct bk *b, const struct bk_user *u, const char *event,
                       struct json_object *v)
{
    size_t jl;
    const char *js = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &jl);
    return bk_to_user(b, u, event, js, jl);
}

void bk_kick_user(struct bk *b, const struct bk_user *u, int code, const char *word)
{
    struct bk_targets t = {0};
    bk_targets_add_user(&t, u);
    bk_targets_kick(b, &t, code, word);
    bk_targets_free(&t);
}

void bk_targets_free(struct bk_targets *t)
{
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}
