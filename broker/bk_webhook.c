/*
 * bk_webhook.c - see bk_webhook.h.
 *
 * The sender is a small state machine on the broker's loop, driven by
 * kick() after every change:
 *
 *   setup    XGROUP CREATE herald:hooks herald-webhook $ MKSTREAM, then
 *            XAUTOCLAIM of the group's pending entries (a dead broker's)
 *   pending  XREADGROUP ... 0: our own pending entries, each batch of them
 *            posted at once (they were read before: retries)
 *   live     XREADGROUP ... BLOCK >: new entries, until the batch is full
 *            or webhook_flush_ms after its first event was read
 *
 * One POST at a time (w->req); a 2xx XACKs the batch, anything else arms
 * retry_ev with the backoff and posts the same batch again. After every
 * reconnect of its Redis connection the sender goes back to setup (Redis
 * may have restarted empty), once the batch in hand is settled.
 */
#include "bk_webhook.h"

#include "bk.h"
#include "bk_presence.h"

#include "config.h"
#include "event.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WH_STREAM "herald:hooks"
/* A blocking read with nothing in hand wakes this often (a dead TCP
 * connection is noticed at the next command). */
#define WH_IDLE_BLOCK_MS 5000
/* After an unexpected Redis answer (the group vanished, a script error),
 * the setup is tried again this much later. */
#define WH_SETUP_RETRY_MS 1000
/* An endpoint's answer is read for its status only: a bigger one is an
 * error, never memory we hold. */
#define WH_MAX_RESPONSE_BODY 65536
#define WH_MAX_RESPONSE_HEADERS 16384
/* An event name is one of ours (bk_feed.h); anything longer did not come
 * from a broker. */
#define WH_EVENT_NAME_MAX 64

enum { WH_SETUP, WH_PENDING, WH_LIVE };

struct bk_webhook_event {
    char id[48]; /* "<ms>-<seq>" */
    int64_t ts;  /* ms since the epoch */
    char *json;  /* owned: bk_webhook_encode_event() */
    size_t len;
};

/* ---- the pure parts ------------------------------------------------------- */

static bool url_byte_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f; /* printable ASCII, no space */
}

int bk_webhook_parse_url(const char *url, struct bk_webhook_url *out, const char **why)
{
    static const char scheme[] = "http://";
    size_t len = url ? strnlen(url, BK_WEBHOOK_URL_MAX + 1) : 0;
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        *why = "empty";
        return -1;
    }
    if (len > BK_WEBHOOK_URL_MAX) {
        *why = "longer than 2048 bytes";
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if (!url_byte_ok((unsigned char)url[i])) {
            *why = "holds a space, a control byte or a byte outside ASCII";
            return -1;
        }
    if (strncasecmp(url, "https://", 8) == 0) {
        *why = "https is not supported: send it through a local TLS proxy (docs/OPERATIONS.md)";
        return -1;
    }
    if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0) {
        *why = "must start with http://";
        return -1;
    }
    const char *auth = url + sizeof(scheme) - 1;
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;
    if (*rest == '#' || strchr(rest, '#')) {
        *why = "has a fragment (#)";
        return -1;
    }
    if (memchr(auth, '@', alen)) {
        *why = "has userinfo (user@host): not supported";
        return -1;
    }
    const char *host = auth, *port = NULL;
    size_t hlen;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close) {
            *why = "has an unclosed [ in the host";
            return -1;
        }
        host = auth + 1;
        hlen = (size_t)(close - host);
        const char *after = close + 1;
        if (after < auth + alen) {
            if (*after != ':') {
                *why = "has bytes after the ] of the host";
                return -1;
            }
            port = after + 1;
        }
        char tmp[64];
        struct in6_addr a6;
        if (hlen == 0 || hlen >= sizeof(tmp)) {
            *why = "has a bad IPv6 literal";
            return -1;
        }
        memcpy(tmp, host, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1) {
            *why = "has a bad IPv6 literal";
            return -1;
        }
        out->ipv6 = true;
    } else {
        const char *colon = memchr(auth, ':', alen);
        hlen = colon ? (size_t)(colon - auth) : alen;
        if (colon)
            port = colon + 1;
        for (size_t i = 0; i < hlen; i++) {
            char c = host[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_')) {
                *why = "has a host with bytes a host name cannot hold";
                return -1;
            }
        }
    }
    if (hlen == 0) {
        *why = "has no host";
        return -1;
    }
    if (hlen >= sizeof(out->host)) {
        *why = "has a host longer than 255 bytes";
        return -1;
    }
    out->port = 80;
    if (port) {
        const char *pend = auth + alen;
        long v = 0;
        if (port == pend) {
            *why = "has an empty port";
            return -1;
        }
        for (const char *p = port; p < pend; p++) {
            if (*p < '0' || *p > '9' || p - port >= 5) {
                *why = "has a bad port (1-65535)";
                return -1;
            }
            v = v * 10 + (*p - '0');
        }
        if (v < 1 || v > 65535) {
            *why = "has a bad port (1-65535)";
            return -1;
        }
        out->port = (int)v;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    if (*rest == '?')
        snprintf(out->path, sizeof(out->path), "/%s", rest);
    else if (*rest == '/')
        snprintf(out->path, sizeof(out->path), "%s", rest);
    else
        snprintf(out->path, sizeof(out->path), "/");
    return 0;
}

/* Appends s as a JSON string (quotes included) to dst at *off; dst holds
 * at least 6 * strlen(s) + 2 bytes more. */
static void json_str(char *dst, size_t *off, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = *off;
    dst[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)*p;
        } else if (*p < 0x20) {
            memcpy(dst + o, "\\u00", 4);
            dst[o + 4] = hex[*p >> 4];
            dst[o + 5] = hex[*p & 15];
            o += 6;
        } else {
            dst[o++] = (char)*p;
        }
    }
    dst[o++] = '"';
    *off = o;
}

char *bk_webhook_encode_event(const char *id, const char *t, int64_t ts, const char *d, size_t dlen,
                              size_t *len)
{
    size_t cap = 64 + 6 * (strlen(id) + strlen(t)) + dlen;
    char *o = malloc(cap);
    if (!o)
        return NULL;
    size_t n = 0;
    memcpy(o, "{\"id\":", 6);
    n = 6;
    json_str(o, &n, id);
    memcpy(o + n, ",\"t\":", 5);
    n += 5;
    json_str(o, &n, t);
    n += (size_t)snprintf(o + n, cap - n, ",\"ts\":%lld,\"d\":", (long long)ts);
    memcpy(o + n, d, dlen);
    n += dlen;
    o[n++] = '}';
    o[n] = '\0';
    HERALD_ASSERT(n < cap);
    *len = n;
    return o;
}

char *bk_webhook_encode_body(char *const *ev, const size_t *evlen, size_t n, size_t *len)
{
    static const char head[] = "{\"events\":[", tail[] = "]}";
    size_t cap = sizeof(head) + sizeof(tail) + n;
    for (size_t i = 0; i < n; i++)
        cap += evlen[i];
    char *o = malloc(cap);
    if (!o)
        return NULL;
    size_t off = sizeof(head) - 1;
    memcpy(o, head, off);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            o[off++] = ',';
        memcpy(o + off, ev[i], evlen[i]);
        off += evlen[i];
    }
    memcpy(o + off, tail, sizeof(tail));
    *len = off + sizeof(tail) - 1;
    return o;
}

void bk_webhook_sign(const void *key, size_t key_len, const void *body, size_t body_len,
                     char out[BK_WEBHOOK_SIG_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    /* HMAC() only fails without memory; an empty MAC then fails every
     * receiver's check, which is what a wrong signature should do. */
    if (!HMAC(EVP_sha256(), key, (int)key_len, body, body_len, mac, &mlen))
        mlen = 0;
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < mlen && i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[7 + 2 * (mlen < 32 ? mlen : 32)] = '\0';
}

long bk_webhook_backoff_ms(int attempt, uint32_t rnd)
{
    long base = BK_WEBHOOK_BACKOFF_MIN_MS;
    for (int i = 1; i < attempt && base < BK_WEBHOOK_BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > BK_WEBHOOK_BACKOFF_MAX_MS)
        base = BK_WEBHOOK_BACKOFF_MAX_MS;
    /* 0.75 + 0.5 * rnd / 2^32, in integers. */
    return base * 3 / 4 + (long)(((uint64_t)base * rnd) >> 33);
}

/* ---- the batch ------------------------------------------------------------ */

static void batch_clear(struct bk_webhook *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->ev[i].json);
    w->n = 0;
    w->attempts = 0;
}

static void on_acked(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)reply;
    struct bk_webhook *w = priv;
    w->acking--;
}

/* XACKs ids[0..n) (borrowed). Not connected: they stay pending and are
 * posted again after the reconnect (at least once). */
static void ack_ids(struct bk_webhook *w, const char *const *ids, size_t n)
{
    if (n == 0)
        return;
    const char **argv = malloc((n + 3) * sizeof(*argv));
    size_t *lens = malloc((n + 3) * sizeof(*lens));
    if (argv && lens) {
        argv[0] = "XACK";
        argv[1] = WH_STREAM;
        argv[2] = BK_WEBHOOK_GROUP;
        for (size_t i = 0; i < n; i++)
            argv[3 + i] = ids[i];
        for (size_t i = 0; i < n + 3; i++)
            lens[i] = strlen(argv[i]);
        if (rds_cmd_argv(&w->rd, on_acked, w, (int)(n + 3), argv, lens) == 0)
            w->acking++;
    }
    free(argv);
    free(lens);
}

static void ack_one(struct bk_webhook *w, const char *id)
{
    ack_ids(w, &id, 1);
}

/* Removes (and acknowledges) the events older than the retry window.
 * Returns how many. */
static size_t drop_expired(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    int64_t oldest = bk_wall_ms(b) - (int64_t)b->cfg.webhook_retry_s * 1000;
    const char *ids[BK_WEBHOOK_BATCH_MAX];
    size_t k = 0, j = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->ev[i].ts < oldest)
            ids[k++] = w->ev[i].id;
    if (k == 0)
        return 0;
    ack_ids(w, ids, k);
    for (size_t i = 0; i < w->n; i++) {
        if (w->ev[i].ts < oldest)
            free(w->ev[i].json);
        else
            w->ev[j++] = w->ev[i];
    }
    w->n = j;
    w->dropped += k;
    log_warn("webhook: %zu events dropped: still not delivered %lds after they happened "
             "(--webhook-retry-s); %llu dropped so far",
             k, b->cfg.webhook_retry_s, (unsigned long long)w->dropped);
    return k;
}

/* ---- posting -------------------------------------------------------------- */

static void kick(struct bk *b);

static void wait_ms(struct bk_webhook *w, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    w->waiting = true;
    evtimer_add(w->retry_ev, &tv);
}

static void delivered(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    const char *ids[BK_WEBHOOK_BATCH_MAX];
    for (size_t i = 0; i < w->n; i++)
        ids[i] = w->ev[i].id;
    ack_ids(w, ids, w->n);
    w->delivered += w->n;
    w->batches++;
    if (w->streak > 0)
        log_info("webhook: delivering again: a batch of %zu events delivered after %d failed "
                 "attempts",
                 w->n, w->streak);
    w->streak = 0;
    batch_clear(w);
    kick(b);
}

static void failed(struct bk *b, const char *why, int status)
{
    struct bk_webhook *w = &b->webhook;
    w->failures++;
    w->attempts++;
    w->streak++;
    long ms = bk_webhook_backoff_ms(w->attempts, (uint32_t)rand() ^ ((uint32_t)rand() << 16));
    if (status > 0)
        log_warn_rl(1, "webhook: POST to %s:%d%s answered %d; %zu events, retry %d in %ld ms",
                    w->url->host, w->url->port, w->url->path, status, w->n, w->attempts, ms);
    else
        log_warn_rl(1, "webhook: POST to %s:%d%s failed: %s; %zu events, retry %d in %ld ms",
                    w->url->host, w->url->port, w->url->path, why, w->n, w->attempts, ms);
    wait_ms(w, ms);
}

static void on_http_error(enum evhttp_request_error err, void *arg)
{
    struct bk_webhook *w = &((struct bk *)arg)->webhook;
    switch (err) {
    case EVREQ_HTTP_TIMEOUT:
        w->err = "timed out";
        break;
    case EVREQ_HTTP_EOF:
        w->err = "connection closed before the answer";
        break;
    case EVREQ_HTTP_INVALID_HEADER:
        w->err = "invalid answer";
        break;
    case EVREQ_HTTP_BUFFER_ERROR:
        w->err = "connection error";
        break;
    case EVREQ_HTTP_DATA_TOO_LONG:
        w->err = "answer too long";
        break;
    default: /* EVREQ_HTTP_REQUEST_CANCEL: ours, on_deadline says why */
        break;
    }
}

/* The answer, or the failure (req NULL or status 0). evhttp frees req
 * after this returns. May run inside evhttp_make_request(). */
static void on_http_done(struct evhttp_request *req, void *arg)
{
    struct bk *b = arg;
    struct bk_webhook *w = &b->webhook;
    if (!w->req)
        return;
    w->req = NULL;
    evtimer_del(w->deadline_ev);
    int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status >= 200 && status <= 299)
        delivered(b);
    else
        failed(b, w->err ? w->err : "connection refused or closed", status);
}

/* The attempt's overall timeout (evhttp's own is per read or write: an
 * endpoint that trickles bytes would never hit it). */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct bk *b = arg;
    struct bk_webhook *w = &b->webhook;
    (void)fd;
    (void)what;
    struct evhttp_request *req = w->req;
    if (!req)
        return;
    w->req = NULL;
    evhttp_cancel_request(req); /* frees it; on_http_done is not called */
    char why[64];
    snprintf(why, sizeof(why), "no answer within %ld ms", b->cfg.webhook_timeout_ms);
    failed(b, why, 0);
}

/*
 * TCP_NODELAY on the connection's socket (a new one after each reconnect;
 * a name still resolving has none yet, and gets it at the next attempt).
 * libevent writes at most 16 KiB per call: without it, the rest of a
 * bigger request waits for the receiver's delayed ACK, about 40 ms a
 * request (the bench's ms per request showed it at batches over ~100).
 */
static void no_delay(struct bk_webhook *w)
{
    struct bufferevent *bev = w->conn ? evhttp_connection_get_bufferevent(w->conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        log_warn_rl(60, "webhook: TCP_NODELAY: %s", strerror(errno));
}

static void attempt(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    drop_expired(b);
    if (w->n == 0) {
        batch_clear(w);
        kick(b);
        return;
    }
    char *ev[BK_WEBHOOK_BATCH_MAX];
    size_t evlen[BK_WEBHOOK_BATCH_MAX];
    for (size_t i = 0; i < w->n; i++) {
        ev[i] = w->ev[i].json;
        evlen[i] = w->ev[i].len;
    }
    size_t blen;
    char *body = bk_webhook_encode_body(ev, evlen, w->n, &blen);
    struct evhttp_request *req = body ? evhttp_request_new(on_http_done, b) : NULL;
    if (!req) {
        free(body);
        failed(b, "out of memory", 0);
        return;
    }
    evhttp_request_set_error_cb(req, on_http_error);
    char sig[BK_WEBHOOK_SIG_SIZE], host[300];
    bk_webhook_sign(w->secret, w->secret_len, body, blen, sig);
    if (w->url->port == 80)
        snprintf(host, sizeof(host), w->url->ipv6 ? "[%s]" : "%s", w->url->host);
    else
        snprintf(host, sizeof(host), w->url->ipv6 ? "[%s]:%d" : "%s:%d", w->url->host,
                 w->url->port);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    int bad = evhttp_add_header(h, "Host", host) |
              evhttp_add_header(h, "Content-Type", "application/json") |
              evhttp_add_header(h, "User-Agent", "herald-broker") |
              evhttp_add_header(h, "X-Herald-Signature", sig) |
              evhttp_add_header(h, "X-Herald-Delivery", w->ev[0].id) |
              evbuffer_add(evhttp_request_get_output_buffer(req), body, blen);
    free(body);
    if (bad) {
        evhttp_request_free(req);
        failed(b, "out of memory", 0);
        return;
    }
    w->err = NULL;
    w->req = req;
    struct timeval tv = {b->cfg.webhook_timeout_ms / 1000,
                         (b->cfg.webhook_timeout_ms % 1000) * 1000};
    evtimer_add(w->deadline_ev, &tv);
    if (evhttp_make_request(w->conn, req, EVHTTP_REQ_POST, w->url->path) != 0 && w->req == req) {
        /* Not queued (out of memory): libevent leaves req to us only in
         * paths we cannot tell apart, so it is not freed here. */
        w->req = NULL;
        evtimer_del(w->deadline_ev);
        failed(b, "cannot start the request", 0);
        return;
    }
    no_delay(w);
}

/* ---- reading -------------------------------------------------------------- */

/* Our event names (bk_feed.h) are lowercase words with dashes; anything
 * else was not written by a broker. */
static bool event_name_ok(const char *t, size_t len)
{
    if (len == 0 || len > WH_EVENT_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '-' ||
              t[i] == '_'))
            return false;
    return true;
}

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    return NULL;
}

/* One entry [id, [f, v, ...]] into the batch; entries that cannot be
 * posted (deleted from the stream meanwhile, or not written by a broker)
 * are acknowledged and counted as dropped. */
static void take_entry(struct bk *b, const redisReply *e)
{
    struct bk_webhook *w = &b->webhook;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= sizeof(w->ev[0].id))
        return;
    const char *id = e->element[0]->str;
    snprintf(w->cursor, sizeof(w->cursor), "%s", id);
    const redisReply *f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY) { /* trimmed while pending */
        ack_one(w, id);
        return;
    }
    const redisReply *t = field(f, "t"), *d = field(f, "d"), *ts = field(f, "ts");
    struct json_object *obj = d ? ev_json_parse(d->str, d->len, json_type_object) : NULL;
    char *end = NULL;
    long long tsv = ts ? strtoll(ts->str, &end, 10) : 0;
    char *json = NULL;
    size_t len = 0;
    if (obj && t && event_name_ok(t->str, t->len) && end && *end == '\0' && tsv >= 0)
        json = bk_webhook_encode_event(id, t->str, tsv, d->str, d->len, &len);
    json_object_put(obj);
    if (!json) {
        log_warn_rl(1,
                    "webhook: %s entry %s is not a hook (fields t, d as a JSON object, ts): "
                    "skipped",
                    WH_STREAM, id);
        ack_one(w, id);
        w->dropped++;
        return;
    }
    HERALD_ASSERT(w->n < (size_t)b->cfg.webhook_batch);
    struct bk_webhook_event *ev = &w->ev[w->n++];
    snprintf(ev->id, sizeof(ev->id), "%s", id);
    ev->ts = tsv;
    ev->json = json;
    ev->len = len;
}

static void on_read(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    struct bk_webhook *w = &b->webhook;
    const redisReply *r = reply;
    w->busy = false;
    if (!r || !w->running)
        return; /* disconnected: on_rd_state starts over */
    if (r->type == REDIS_REPLY_ERROR) {
        log_warn_rl(1, "webhook: reading %s: %s (setting up again)", WH_STREAM, r->str);
        w->phase = WH_SETUP;
        wait_ms(w, WH_SETUP_RETRY_MS);
        return;
    }
    size_t before = w->n, got = 0;
    /* [[stream, [[id, fields], ...]]], or nil when BLOCK timed out. */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = r->element[0]->element[1];
        got = entries->elements;
        for (size_t i = 0; i < entries->elements && w->n < (size_t)b->cfg.webhook_batch; i++)
            take_entry(b, entries->element[i]);
    }
    if (before == 0 && w->n > 0)
        w->first_ms = bk_now(b);
    if (w->phase == WH_PENDING && got == 0)
        w->phase = WH_LIVE;
    kick(b);
}

static void read_more(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    char count[24], block[24];
    snprintf(count, sizeof(count), "%zu", (size_t)b->cfg.webhook_batch - w->n);
    int rc;
    if (w->phase == WH_PENDING) {
        rc = rds_cmd(&w->rd, on_read, b, "XREADGROUP GROUP %s %s COUNT %s STREAMS %s %s",
                     BK_WEBHOOK_GROUP, b->cfg.consumer, count, WH_STREAM, w->cursor);
    } else {
        long ms = WH_IDLE_BLOCK_MS;
        if (w->n > 0) {
            ms = (long)(w->first_ms + b->cfg.webhook_flush_ms - bk_now(b));
            if (ms < 1)
                ms = 1;
        }
        snprintf(block, sizeof(block), "%ld", ms);
        rc = rds_cmd(&w->rd, on_read, b, "XREADGROUP GROUP %s %s COUNT %s BLOCK %s STREAMS %s >",
                     BK_WEBHOOK_GROUP, b->cfg.consumer, count, block, WH_STREAM);
    }
    if (rc == 0)
        w->busy = true;
}

/* ---- setup ---------------------------------------------------------------- */

static void claim(struct bk *b);

static void on_claimed(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    struct bk_webhook *w = &b->webhook;
    const redisReply *r = reply;
    w->busy = false;
    if (!r || !w->running)
        return;
    /* [next cursor, [ids], [deleted ids]] */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(w->cursor)) {
        log_warn_rl(1, "webhook: XAUTOCLAIM on %s: %s (trying again)", WH_STREAM,
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        wait_ms(w, WH_SETUP_RETRY_MS);
        return;
    }
    if (r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements > 0)
        log_info("webhook: %zu pending events taken over, sent again first",
                 r->element[1]->elements);
    if (strcmp(r->element[0]->str, "0-0") == 0) {
        w->phase = WH_PENDING;
        snprintf(w->cursor, sizeof(w->cursor), "0");
        kick(b);
        return;
    }
    snprintf(w->cursor, sizeof(w->cursor), "%s", r->element[0]->str);
    claim(b);
}

static void claim(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    if (rds_cmd(&w->rd, on_claimed, b, "XAUTOCLAIM %s %s %s 0 %s COUNT 1000 JUSTID", WH_STREAM,
                BK_WEBHOOK_GROUP, b->cfg.consumer, w->cursor) == 0)
        w->busy = true;
}

static void on_group(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    struct bk_webhook *w = &b->webhook;
    const redisReply *r = reply;
    w->busy = false;
    if (!r || !w->running)
        return;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        log_warn_rl(1, "webhook: XGROUP CREATE %s %s: %s (trying again)", WH_STREAM,
                    BK_WEBHOOK_GROUP, r->str);
        wait_ms(w, WH_SETUP_RETRY_MS);
        return;
    }
    snprintf(w->cursor, sizeof(w->cursor), "0-0");
    claim(b);
}

static void setup(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    if (rds_cmd(&w->rd, on_group, b, "XGROUP CREATE %s %s $ MKSTREAM", WH_STREAM,
                BK_WEBHOOK_GROUP) == 0)
        w->busy = true;
}

/* ---- the loop --------------------------------------------------------------- */

/* What to do next, if nothing is under way: post a batch that is due, set
 * up, or read. */
static void kick(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    if (!w->running || w->req || w->busy || w->waiting)
        return;
    if (w->n > 0) {
        bool due = w->n >= (size_t)b->cfg.webhook_batch || w->attempts > 0 || w->phase != WH_LIVE ||
                   bk_now(b) >= w->first_ms + b->cfg.webhook_flush_ms;
        if (due) {
            attempt(b);
            return;
        }
    }
    if (!w->rd.up)
        return; /* on_rd_state kicks */
    if (w->phase == WH_SETUP)
        setup(b);
    else
        read_more(b);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct bk *b = arg;
    (void)fd;
    (void)what;
    b->webhook.waiting = false;
    kick(b);
}

static void on_rd_state(struct rds *r, bool up, void *arg)
{
    struct bk *b = arg;
    struct bk_webhook *w = &b->webhook;
    (void)r;
    w->phase = WH_SETUP;
    w->cursor[0] = '\0';
    w->busy = false;
    /* A batch still being collected is pending in Redis: it is read
     * again after the setup, so it is not kept twice. One being posted
     * or retried is settled first (kick waits for it). */
    if (!up && !w->req && w->attempts == 0)
        batch_clear(w);
    if (up)
        kick(b);
}

/* ---- start and stop --------------------------------------------------------- */

int bk_webhook_check(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    const char *url = b->cfg.webhook_url;
    if (!url || !*url)
        return 0;
    const char *why = NULL;
    if (!(w->url = malloc(sizeof(*w->url)))) {
        log_error("webhook: out of memory");
        return -1;
    }
    if (bk_webhook_parse_url(url, w->url, &why) != 0) {
        log_error("bad --webhook-url: %s (expected http://host[:port]/path)", why);
        return -1;
    }
    if (b->cfg.webhook_secret && *b->cfg.webhook_secret) {
        w->secret_len = strlen(b->cfg.webhook_secret);
        w->secret = (unsigned char *)strdup(b->cfg.webhook_secret);
    } else if (b->cfg.webhook_secret_file && *b->cfg.webhook_secret_file) {
        w->secret = cfg_read_secret_file(b->cfg.webhook_secret_file, &w->secret_len);
        if (!w->secret) {
            log_error("cannot read --webhook-secret-file %s", b->cfg.webhook_secret_file);
            return -1;
        }
    }
    if (!w->secret || w->secret_len == 0) {
        log_error("--webhook-url needs a secret to sign with: set HERALD_WEBHOOK_SECRET or "
                  "HERALD_WEBHOOK_SECRET_FILE");
        return -1;
    }
    return 0;
}

int bk_webhook_start(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    if (!w->url)
        return 0;
    struct in6_addr a;
    bool numeric = inet_pton(AF_INET, w->url->host, &a) == 1 || w->url->ipv6;
    /* A name is resolved on the loop (evdns), never by a blocking
     * getaddrinfo(). */
    if (!numeric && !(w->dns = evdns_base_new(b->base, EVDNS_BASE_INITIALIZE_NAMESERVERS))) {
        log_error("webhook: cannot set up DNS resolution for %s", w->url->host);
        return -1;
    }
    w->ev = calloc((size_t)b->cfg.webhook_batch, sizeof(*w->ev));
    w->conn = evhttp_connection_base_new(b->base, w->dns, w->url->host, (ev_uint16_t)w->url->port);
    w->retry_ev = evtimer_new(b->base, on_retry, b);
    w->deadline_ev = evtimer_new(b->base, on_deadline, b);
    if (!w->ev || !w->conn || !w->retry_ev || !w->deadline_ev) {
        log_error("webhook: out of memory");
        return -1;
    }
    struct timeval tv = {b->cfg.webhook_timeout_ms / 1000,
                         (b->cfg.webhook_timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(w->conn, &tv);
    evhttp_connection_set_retries(w->conn, 0);
    evhttp_connection_set_max_body_size(w->conn, WH_MAX_RESPONSE_BODY);
    evhttp_connection_set_max_headers_size(w->conn, WH_MAX_RESPONSE_HEADERS);
    w->running = true;
    w->phase = WH_SETUP;
    if (rds_init(&w->rd, b->base, b->cfg.redis_url, "webhook", on_rd_state, b) != 0)
        return -1;
    log_info("webhook: posting %s to http://%s%s%s:%d%s, batches of up to %ld events", WH_STREAM,
             w->url->ipv6 ? "[" : "", w->url->host, w->url->ipv6 ? "]" : "", w->url->port,
             w->url->path, b->cfg.webhook_batch);
    return 0;
}

void bk_webhook_takeover(struct bk *b, redisContext *rc)
{
    if (b->webhook.url)
        return;
    redisReply *r = redisCommand(rc, "XGROUP DESTROY %s %s", WH_STREAM, BK_WEBHOOK_GROUP);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        log_info("webhook: no --webhook-url: consumer group %s removed from %s", BK_WEBHOOK_GROUP,
                 WH_STREAM);
    freeReplyObject(r);
}

void bk_webhook_stop(struct bk *b)
{
    struct bk_webhook *w = &b->webhook;
    w->running = false;
    /* Frees the request in flight without calling it back. */
    if (w->conn)
        evhttp_connection_free(w->conn);
    w->conn = NULL;
    w->req = NULL;
    if (w->dns)
        evdns_base_free(w->dns, 0);
    w->dns = NULL;
    if (w->retry_ev)
        event_free(w->retry_ev);
    if (w->deadline_ev)
        event_free(w->deadline_ev);
    w->retry_ev = w->deadline_ev = NULL;
    /* The last batch's XACK, if it is still on its way. */
    if (w->acking > 0)
        rds_drain(&w->rd, 300);
    rds_free(&w->rd);
    batch_clear(w);
    free(w->ev);
    w->ev = NULL;
    if (w->secret) {
        explicit_bzero(w->secret, w->secret_len);
        free(w->secret);
    }
    w->secret = NULL;
    free(w->url);
    w->url = NULL;
}
