/*
 * gw_recover.c - sessions that come back; see gw_recover.h.
 *
 * One record per session being recovered, keyed by its connection id. Its
 * steps: WAIT (the open is published; entries for it are dropped, the old
 * stream has them), CHECK (the broker moved it here: is its offset still in
 * the old stream?), REPLAY (pages of the old stream read back), then the
 * held entries, and the record goes. Replies of Redis come back to the
 * record itself; a session that closes meanwhile only marks it cancelled,
 * and the last reply frees it.
 */
#include "gw_recover.h"

#include "log.h"

#include <bsd/sys/tree.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "b64.h"

/* Entries asked per XRANGE page of the old stream. */
#define GW_REPLAY_PAGE 1024

enum rec_step { REC_WAIT, REC_CHECK, REC_REPLAY };

/* An entry of our stream held for a session (its strings copied). */
struct held {
    struct held *next;
    struct ev_entry e; /* points into buf */
    char buf[];
};

struct rec {
    RB_ENTRY(rec) node;
    struct gw *g; /* borrowed */
    uint64_t id;
    bool sio;
    bool cancelled;   /* the session closed: nothing more is sent to it */
    bool outstanding; /* a Redis reply is due to this record */
    bool in_reply;    /* that reply is being handled (frees wait for its end) */
    enum rec_step step;
    uint32_t token;
    char pid[GW_PID_MAX + 1];
    char offset[EV_OFFSET_MAX + 1]; /* where the client is */
    char answer[EV_OFFSET_MAX + 1]; /* the resume entry's id in our stream */
    char stream[256];               /* the stream it lived on */
    size_t replayed;
    struct held *held, **held_tail;
};

static int rec_cmp(const struct rec *a, const struct rec *b)
{
    return a->id < b->id ? -1 : a->id > b->id;
}
RB_HEAD(rec_tree, rec);
RB_GENERATE_INTERNAL(rec_tree, rec, node, rec_cmp, static __attribute__((unused)))

struct gw_recover {
    struct rec_tree recs;
    struct gw_recover_handlers h;
    struct gw_recover_stats stats;
};

/* ---- pids ------------------------------------------------------------------ */

void gw_recover_pid(char out[GW_PID_MAX + 1], uint64_t id, uint32_t token, const char *start)
{
    snprintf(out, GW_PID_MAX + 1, "%" PRIu64 ".%" PRIu32 ".%s", id, token, start);
}

/* Canonical decimal (no sign, no leading zero) up to max: one spelling
 * per pid. */
static bool parse_dec(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (max - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

bool gw_recover_pid_parse(const char *pid, size_t len, uint64_t *id, uint32_t *token,
                          char start[EV_OFFSET_MAX + 1])
{
    if (!pid || len > GW_PID_MAX)
        return false;
    const char *d1 = memchr(pid, '.', len);
    if (!d1)
        return false;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - pid));
    if (!d2)
        return false;
    uint64_t cid, tok;
    const char *st = d2 + 1;
    size_t sl = len - (size_t)(st - pid);
    if (!parse_dec(pid, (size_t)(d1 - pid), INT64_MAX, &cid) || cid == 0 ||
        !parse_dec(d1 + 1, (size_t)(d2 - d1 - 1), UINT32_MAX, &tok) || tok == 0 ||
        !ev_offset_valid(st, sl))
        return false;
    *id = cid;
    *token = (uint32_t)tok;
    memcpy(start, st, sl);
    start[sl] = '\0';
    return true;
}

void gw_recover_sio_id(const char *pid, char out[GW_SIO_ID_LEN + 1])
{
    /* Fetched once: OpenSSL 3 looks an implicit EVP_sha256() up again on
     * every call, a lock and a search per CONNECT. Kept for the process. */
    static EVP_MD *sha256;
    if (!sha256)
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    HERALD_ASSERT(sha256 != NULL);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    /* 15 bytes encode to exactly 20 characters. */
    HERALD_ASSERT(EVP_Digest(pid, strlen(pid), md, &ml, sha256, NULL) == 1 && ml >= 15);
    size_t n = b64_encode(out, GW_SIO_ID_LEN + 1, md, 15, B64_URL, false);
    HERALD_ASSERT(n == GW_SIO_ID_LEN);
    out[n] = '\0';
}

uint32_t gw_recover_token(void)
{
    uint32_t t = 0;
    for (int i = 0; i < 4 && t == 0; i++)
        if (getrandom(&t, sizeof(t), 0) != (ssize_t)sizeof(t))
            t = 0;
    return t;
}

const char *gw_recover_start(const struct gw *g)
{
    return g->bus.last_id[0] ? g->bus.last_id : "0-0";
}

bool gw_recover_enabled(const struct gw *g)
{
    return g->cfg.recovery_window_ms > 0;
}

/* ---- records ----------------------------------------------------------------- */

int gw_recover_init(struct gw *g, const struct gw_recover_handlers *h)
{
    g->recover = calloc(1, sizeof(*g->recover));
    if (!g->recover)
        return -1;
    RB_INIT(&g->recover->recs);
    g->recover->h = *h;
    return 0;
}

static struct rec *rec_find(struct gw *g, uint64_t id)
{
    if (!g->recover)
        return NULL;
    struct rec key;
    key.id = id;
    return RB_FIND(rec_tree, &g->recover->recs, &key);
}

static void rec_free(struct rec *r)
{
    struct held *h = r->held, *next;
    for (; h; h = next) {
        next = h->next;
        free(h);
    }
    free(r);
}

/* Frees r unless a reply is due to it or being handled. */
static void rec_release(struct rec *r)
{
    if (!r->outstanding && !r->in_reply)
        rec_free(r);
}

/* The record leaves the table (its session is done with it); freed now,
 * or at the end of its reply. */
static void rec_end(struct gw *g, struct rec *r)
{
    if (!r->cancelled)
        RB_REMOVE(rec_tree, &g->recover->recs, r);
    r->cancelled = true;
    rec_release(r);
}

/* The start of a reply to r: false when r was cancelled (then freed). */
static bool reply_begin(struct rec *r)
{
    r->outstanding = false;
    if (r->cancelled) {
        rec_release(r);
        return false;
    }
    r->in_reply = true;
    return true;
}

static void reply_end(struct rec *r)
{
    r->in_reply = false;
    if (r->cancelled)
        rec_release(r);
}

bool gw_recover_busy(struct gw *g, uint64_t id)
{
    return g->recover && !RB_EMPTY(&g->recover->recs) && rec_find(g, id) != NULL;
}

/* Copies e (its strings) for later. */
static struct held *held_new(const struct ev_entry *e)
{
    size_t n = e->type_len + e->conns_len + e->event_len + e->data_len + e->id_len + 5;
    struct held *h = malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->next = NULL;
    h->e = *e;
    char *p = h->buf;
#define HELD_COPY(field, len)                                                                      \
    if (e->field) {                                                                                \
        memcpy(p, e->field, e->len);                                                               \
        p[e->len] = '\0';                                                                          \
        h->e.field = p;                                                                            \
        p += e->len + 1;                                                                           \
    }
    HELD_COPY(type, type_len)
    HELD_COPY(conns, conns_len)
    HELD_COPY(event, event_len)
    HELD_COPY(data, data_len)
    HELD_COPY(id, id_len)
#undef HELD_COPY
    h->e.gw = NULL;
    h->e.kind = NULL;
    h->e.offset = NULL;
    return h;
}

void gw_recover_hold(struct gw *g, uint64_t id, const struct ev_entry *e)
{
    struct rec *r = rec_find(g, id);
    if (!r || r->step == REC_WAIT)
        return; /* before the answer: the old stream has it */
    struct held *h = held_new(e);
    if (!h) {
        log_error("session %llu: out of memory holding an event during its recovery",
                  (unsigned long long)id);
        return;
    }
    *r->held_tail = h;
    r->held_tail = &h->next;
}

bool gw_recover_begin(struct gw *g, uint64_t id, bool sio, int64_t user_id, uint32_t token,
                      const char *pid, const char *offset)
{
    struct gw_recover *st = g->recover;
    struct rec *r = st ? calloc(1, sizeof(*r)) : NULL;
    if (!r)
        return false;
    r->g = g;
    r->id = id;
    r->sio = sio;
    r->token = token;
    r->step = REC_WAIT;
    r->held_tail = &r->held;
    snprintf(r->pid, sizeof(r->pid), "%s", pid);
    snprintf(r->offset, sizeof(r->offset), "%s", offset);
    if (!gw_bus_open(&g->bus, id, user_id, sio ? GW_CLIENT_SIO : GW_CLIENT_WS, token, offset)) {
        free(r);
        return false;
    }
    RB_INSERT(rec_tree, &st->recs, r);
    return true;
}

void gw_recover_cancel(struct gw *g, uint64_t id)
{
    struct rec *r = rec_find(g, id);
    if (r)
        rec_end(g, r);
}

/* ---- the steps ------------------------------------------------------------------ */

/* The session goes on as a fresh one (new pid: the client sees
 * recovered === false): told so, then what was held for it. */
static void go_fresh(struct gw *g, struct rec *r)
{
    char pid[GW_PID_MAX + 1];
    gw_recover_pid(pid, r->id, r->token, r->answer);
    g->recover->h.ready(g, r->id, r->sio, pid, r->answer);
    g->recover->stats.fresh++;
}

/* Delivers what was held, tells the endpoint the session is live, ends. */
static void finish(struct gw *g, struct rec *r, bool recovered)
{
    if (recovered) {
        g->recover->stats.recovered++;
        g->recover->h.resumed(g, r->id, r->sio, r->answer);
    }
    struct held *h = r->held;
    r->held = NULL;
    r->held_tail = &r->held;
    RB_REMOVE(rec_tree, &g->recover->recs, r);
    r->cancelled = true; /* out of the table: busy() is false from here */
    for (; h;) {
        struct held *next = h->next;
        g->recover->h.deliver(g, r->id, &h->e);
        free(h);
        h = next;
    }
    rec_release(r);
}

/* Something went wrong after the client was told it recovered: it is
 * closed, and comes back (recoverable) or starts afresh. */
static void fail(struct gw *g, struct rec *r, bool recoverable, const char *why)
{
    log_warn_rl(5, "session %llu: recovery failed: %s", (unsigned long long)r->id, why);
    uint64_t id = r->id;
    bool sio = r->sio;
    rec_end(g, r);
    g->recover->h.drop(g, id, sio, recoverable);
}

static void replay_page(struct gw *g, struct rec *r);

/* Whether e (from the old stream) is for this session. */
static bool entry_for(const struct rec *r, const struct ev_entry *e)
{
    bool status = ev_is(e->type, e->type_len, "status");
    if (ev_is(e->type, e->type_len, "all") || ev_is(e->type, e->type_len, "auth") ||
        (status && !e->conns))
        return true; /* to everyone there (a status without c: scope all) */
    if (status || ev_is(e->type, e->type_len, "conn") || ev_is(e->type, e->type_len, "ack") ||
        ev_is(e->type, e->type_len, "kick")) {
        const char *p = e->conns, *end = e->conns + e->conns_len;
        uint64_t id;
        while (ev_ids_next(&p, end, &id))
            if (id == r->id)
                return true;
    }
    return false;
}

static void page_apply(struct gw *g, struct rec *r, const redisReply *rp)
{
    if (!rp || rp->type != REDIS_REPLY_ARRAY) {
        fail(g, r, true, rp ? "XRANGE refused" : "redis went away");
        return;
    }
    for (size_t i = 0; i < rp->elements; i++) {
        struct ev_entry e;
        const char *id;
        int st = ev_entry_from_reply(&e, rp->element[i], &id);
        if (id)
            snprintf(r->offset, sizeof(r->offset), "%s", id);
        if (st != 0)
            continue;
        if (ev_is(e.type, e.type_len, "moved") && e.conn == r->id) {
            finish(g, r, true);
            return;
        }
        if (!entry_for(r, &e))
            continue;
        if (++r->replayed > (size_t)g->cfg.recovery_max_events) {
            g->recover->stats.capped++;
            fail(g, r, false, "more missed events than --recovery-max-events");
            return;
        }
        g->recover->stats.replayed++;
        g->recover->h.deliver(g, r->id, &e);
        if (r->cancelled)
            return; /* a replayed kick closed it */
    }
    if (rp->elements < GW_REPLAY_PAGE) {
        /* The end of the old stream and no "moved": it expired under us
         * (or was deleted). What was there has been delivered. */
        log_warn_rl(5, "session %llu: %s ended before its move", (unsigned long long)r->id,
                    r->stream);
        finish(g, r, true);
        return;
    }
    replay_page(g, r);
}

static void on_page(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct rec *r = priv;
    if (!reply_begin(r))
        return;
    page_apply(r->g, r, reply);
    reply_end(r);
}

static void replay_page(struct gw *g, struct rec *r)
{
    char from[EV_OFFSET_MAX + 2];
    snprintf(from, sizeof(from), "(%s", r->offset);
    if (rds_cmd(&g->bus.pub, on_page, r, "XRANGE %s %s + COUNT %d", r->stream, from,
                GW_REPLAY_PAGE) != 0) {
        fail(g, r, true, "redis down");
        return;
    }
    r->outstanding = true;
}

/* XRANGE old offset offset: is the client's offset still there? */
static void check_apply(struct gw *g, struct rec *r, const redisReply *rp)
{
    if (!rp || rp->type != REDIS_REPLY_ARRAY || rp->elements == 0) {
        /* Trimmed (past the window or the log cap), or Redis lost it:
         * what came after it cannot be known. */
        g->recover->stats.trimmed++;
        go_fresh(g, r);
        finish(g, r, false);
        return;
    }
    if (r->sio)
        g->recover->h.ready(g, r->id, true, r->pid, NULL);
    r->step = REC_REPLAY;
    replay_page(g, r);
}

static void on_check(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct rec *r = priv;
    if (!reply_begin(r))
        return;
    check_apply(r->g, r, reply);
    reply_end(r);
}

void gw_recover_on_resume(struct gw *g, const struct ev_entry *e)
{
    struct rec *r = rec_find(g, e->conn);
    if (!r || r->step != REC_WAIT)
        return;
    snprintf(r->answer, sizeof(r->answer), "%.*s", (int)e->id_len, e->id ? e->id : "0-0");
    if (!ev_offset_valid(r->answer, strlen(r->answer)))
        snprintf(r->answer, sizeof(r->answer), "0-0");
    r->step = REC_CHECK;
    if (e->status != 1 || !e->event || !e->offset) {
        go_fresh(g, r);
        finish(g, r, false);
        return;
    }
    snprintf(r->stream, sizeof(r->stream), "%s%.*s", EV_GW_STREAM_PREFIX, (int)e->event_len,
             e->event);
    snprintf(r->offset, sizeof(r->offset), "%.*s", (int)e->offset_len, e->offset);
    if (rds_cmd(&g->bus.pub, on_check, r, "XRANGE %s %s %s", r->stream, r->offset, r->offset) !=
        0) {
        go_fresh(g, r);
        finish(g, r, false);
        return;
    }
    r->outstanding = true;
}

void gw_recover_free(struct gw *g)
{
    if (!g->recover)
        return;
    struct rec *r, *t;
    RB_FOREACH_SAFE(r, rec_tree, &g->recover->recs, t)
    {
        RB_REMOVE(rec_tree, &g->recover->recs, r);
        r->cancelled = true;
        rec_release(r); /* else freed by its reply, which rds_free() delivers (NULL) */
    }
    free(g->recover);
    g->recover = NULL;
}

void gw_recover_stats(const struct gw *g, struct gw_recover_stats *out)
{
    if (g->recover)
        *out = g->recover->stats;
    else
        memset(out, 0, sizeof(*out));
}
