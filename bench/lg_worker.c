/*
 * lg_worker.c - one herald-loadgen worker: a libevent loop holding a slice of
 * the connections (see loadgen.c for the whole picture).
 *
 * A connection goes CONNECTING -> UPGRADING (HTTP upgrade sent; the 101 and
 * its Sec-WebSocket-Accept are checked) -> READY for raw /ws, or through
 * EIO_OPEN (Engine.IO open packet) and SIO_CONNECT (CONNECT with the token
 * sent, waiting for the acknowledgement) for Socket.IO. Every server frame
 * goes through Herald's RFC 6455 parser; anything unexpected is counted as
 * an error with its text in last_error. In the measure phase a 1 ms timer
 * sends what is due at the configured rate: chat messages, DMs or presence
 * changes (closing or opening a churning user's connection).
 */
#include "lg_shared.h"

#include "b64.h"
#include "jwt_auth.h"
#include "log.h"
#include "ws.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

unsigned lg_hist_index(uint64_t us)
{
    if (us < 2 * LG_SUB)
        return (unsigned)us;
    unsigned msb = 63 - (unsigned)__builtin_clzll(us); /* >= 7 */
    unsigned shift = msb - 6;                          /* keeps 7 significant bits */
    unsigned idx = 2 * LG_SUB + (shift - 1) * LG_SUB + (unsigned)((us >> shift) - LG_SUB);
    return idx < LG_BUCKETS ? idx : LG_BUCKETS - 1;
}

/* The middle of bucket idx, in microseconds. */

/* ---- worker: connections ------------------------------------------------------- */

enum conn_state { CS_NONE, CS_CONNECTING, CS_UPGRADING, CS_EIO_OPEN, CS_SIO_CONNECT, CS_READY };

struct conn {
    struct bufferevent *bev; /* owned; NULL when not connected */
    struct ws_parser parser;
    long gidx;        /* global index: main connections 0..conns-1, churners after */
    int64_t user;     /* user id of this connection */
    uint8_t state;    /* enum conn_state */
    bool churn;       /* presence: a user that comes and goes */
    int64_t watching; /* scale: the user whose profile this one watches, 0 none */
    char key[25];     /* Sec-WebSocket-Key sent */
};

struct worker {
    int id;
    struct event_base *base;
    struct lg_stats *st;
    struct conn *conns; /* owned: main slice, then churn slice */
    long n_main, n_churn;
    long churn_lo; /* churn user index of conns[n_main] */
    long next_connect;
    long inflight;
    uint64_t ramp_start_ns;
    /* Sending (measure phase). */
    uint64_t send_start_ns;
    uint64_t due_done; /* actions done since send_start */
    long rr;           /* round robin position */
    uint64_t probe_seen;
    struct event *tick;
    unsigned char *secret;
    size_t secret_len;
    char *pad; /* message padding */
    uint32_t mask_state;
    /* Scale: this worker's users [ulo, ulo + nusers) (indexes from 0), which
     * are away (a byte each), the away ones in the order they come back
     * (a ring of nusers), and the DMs and watch changes done. */
    long ulo, nusers;
    uint8_t *away; /* owned */
    struct away_entry {
        long u;
        uint64_t back_ns;
    } * back; /* owned */
    long back_head, back_len;
    uint64_t dm_done, watch_done;
    uint64_t rng;
};

static struct worker W;

static void conn_fail(struct conn *c, uint64_t *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_drop(struct conn *c)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->state == CS_READY && !c->churn)
        W.st->held--;
    if (c->state != CS_READY && c->state != CS_NONE)
        W.inflight--;
    c->state = CS_NONE;
}

static void conn_fail(struct conn *c, uint64_t *counter, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(W.st->last_error, sizeof(W.st->last_error), fmt, ap);
    va_end(ap);
    (*counter)++;
    conn_drop(c);
}

static void send_frame(struct conn *c, uint8_t opcode, const char *data, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    uint8_t mask[4];
    W.mask_state = W.mask_state * 1664525u + 1013904223u;
    memcpy(mask, &W.mask_state, 4);
    size_t h = ws_frame_header(hdr, opcode, true, len, mask);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, h + len, &v, 1) < 1)
        return;
    uint8_t *p = v.iov_base;
    memcpy(p, hdr, h);
    memcpy(p + h, data, len);
    ws_mask(p + h, len, mask, 0);
    v.iov_len = h + len;
    evbuffer_commit_space(out, &v, 1);
}

static void send_text(struct conn *c, const char *data, size_t len)
{
    send_frame(c, WS_OP_TEXT, data, len);
}

static void on_ready(struct conn *c)
{
    W.inflight--;
    c->state = CS_READY;
    if (lg_opt.mode == LG_SCALE && lg_shm->phase >= PH_MEASURE) {
        W.st->churn_handshakes++; /* a session beginning again, not the ramp */
        W.st->held++;
    } else if (c->churn) {
        W.st->churn_handshakes++;
    } else {
        W.st->handshakes++;
        W.st->held++;
    }
}

static void record_latency(uint64_t sent_ns)
{
    uint64_t now = lg_now_ns();
    if (sent_ns > now) {
        W.st->lat_negative++;
        return;
    }
    W.st->hist[lg_hist_index((now - sent_ns) / 1000)]++;
}

/* Finds `"key":` in s[0..len) and parses the integer after it. */
static bool json_int_after(const char *s, size_t len, const char *key, int64_t *out)
{
    const char *p = memmem(s, len, key, strlen(key));
    if (!p)
        return false;
    p += strlen(key);
    const char *end = s + len;
    while (p < end && (*p == ' ' || *p == '"'))
        p++;
    int64_t v = 0;
    bool any = false;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        any = true;
    }
    *out = v;
    return any;
}

static void try_send(void);

/* A chat message or DM arrived: "lg:<ns>:<worker>:". */
static void on_message(struct conn *c, const char *s, size_t len)
{
    const char *p = memmem(s, len, "\"lg:", 4);
    if (!p)
        return;
    W.st->received++;
    p += 4;
    const char *end = s + len;
    uint64_t ns = 0;
    while (p < end && *p >= '0' && *p <= '9')
        ns = ns * 10 + (uint64_t)(*p++ - '0');
    long from = -1;
    if (p < end && *p == ':') {
        from = 0;
        for (p++; p < end && *p >= '0' && *p <= '9'; p++)
            from = from * 10 + (*p - '0');
    }
    if (lg_opt.mode == LG_SCALE) {
        /* Scale: only DMs carry the mark; they have their own histogram. */
        W.st->received--;
        W.st->dm_received++;
        uint64_t now = lg_now_ns();
        if (lg_shm->phase >= PH_MEASURE && ns <= now)
            W.st->hist_dm[lg_hist_index((now - ns) / 1000)]++;
        return;
    }
    if (lg_shm->phase >= PH_MEASURE)
        record_latency(ns);
    /* Saturation: a worker's probe connection paces that worker's senders. */
    if (from == W.id && lg_opt.mode == LG_BROADCAST && lg_opt.rate <= 0 &&
        c == &W.conns[W.n_main - 1]) {
        W.probe_seen++;
        try_send();
    }
}

static void on_status(struct conn *c, const char *s, size_t len)
{
    int64_t user;
    W.st->status_seen++;
    if (c->churn)
        return; /* only the watchers are timed */
    if ((lg_opt.mode != LG_PRESENCE && lg_opt.mode != LG_SCALE) ||
        !json_int_after(s, len, "\"userId\":", &user))
        return;
    long i;
    if (lg_opt.mode == LG_SCALE) {
        /* Every user may come and go; only the changes a worker made during
         * the run are in the table (the ramp's are not timed). */
        i = (long)(user - lg_opt.first_user);
        if (i < 0 || i >= lg_opt.conns / 2)
            return;
    } else {
        long base = (long)(lg_opt.first_user + (lg_opt.conns + lg_opt.tabs - 1) / lg_opt.tabs);
        i = (long)user - base;
        if (i < 0 || i >= lg_opt.churn_users)
            return;
    }
    bool online = memmem(s, len, "\"online\"", 8) != NULL;
    uint64_t t = __atomic_load_n(&lg_shm->change[i], __ATOMIC_ACQUIRE);
    if (t == 0 || online != (bool)(t & 1))
        return; /* an event about an older change */
    W.st->received++;
    if (lg_shm->phase >= PH_MEASURE) {
        record_latency(t);
        uint64_t now = lg_now_ns();
        if (lg_opt.mode == LG_SCALE && online && now >= t)
            W.st->hist_online[lg_hist_index((now - t) / 1000)]++;
    }
    if (lg_opt.mode == LG_PRESENCE) {
        uint64_t now = lg_now_ns(),
                 seen = __atomic_load_n(&lg_shm->last_arrival[i], __ATOMIC_RELAXED);
        while (seen < now && !__atomic_compare_exchange_n(&lg_shm->last_arrival[i], &seen, now,
                                                          true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;
    }
}

static void on_error_event(struct conn *c, const char *s, size_t len)
{
    W.st->err_server++;
    snprintf(W.st->last_error, sizeof(W.st->last_error), "user %" PRId64 ": %.*s", c->user,
             (int)(len > 120 ? 120 : len), s);
}

/* An application message: a raw JSON object or a Socket.IO event array. */
static void on_app(struct conn *c, const char *s, size_t len)
{
    size_t head = len < 40 ? len : 40;
    if (memmem(s, head, "status_update", 13) || memmem(s, head, "user-status-change", 18))
        on_status(c, s, len);
    else if (memmem(s, head, "livechat", 8) || memmem(s, head, "direct_message", 14))
        on_message(c, s, len);
    else if (memmem(s, head, "\"error\"", 7) || memmem(s, head, "rate-limited", 12))
        on_error_event(c, s, len);
}

static void sio_send_connect(struct conn *c)
{
    char buf[1200];
    char *tok =
        jwt_auth_sign("HS256", W.secret, W.secret_len, c->user, time(NULL) + 86400, 0, NULL, NULL);
    if (!tok) {
        conn_fail(c, &W.st->err_handshake, "cannot mint a token");
        return;
    }
    int n = snprintf(buf, sizeof(buf), "40{\"token\":\"%s\"}", tok);
    free(tok);
    send_text(c, buf, (size_t)n);
    c->state = CS_SIO_CONNECT;
}

/* One complete text frame from the server. */
static void on_text(struct conn *c, const char *s, size_t len)
{
    if (lg_opt.proto == LG_RAW) {
        on_app(c, s, len);
        return;
    }
    if (len == 0)
        goto bad;
    switch (s[0]) {
    case '0': /* Engine.IO open */
        if (c->state == CS_EIO_OPEN)
            sio_send_connect(c);
        return;
    case '2': /* ping: answer pong with the same data */
        send_text(c, len > 1 ? "3probe" : "3", len > 1 ? 6 : 1);
        return;
    case '4':
        if (len < 2)
            goto bad;
        if (s[1] == '0') { /* Socket.IO CONNECT ack */
            if (c->state == CS_SIO_CONNECT)
                on_ready(c);
            return;
        }
        if (s[1] == '4') {
            conn_fail(c, &W.st->err_handshake, "CONNECT_ERROR %.*s", (int)(len > 100 ? 100 : len),
                      s);
            return;
        }
        if (s[1] == '1') {
            conn_fail(c, &W.st->err_closed, "server DISCONNECT");
            return;
        }
        if (s[1] == '2' || s[1] == '3')
            on_app(c, s + 2, len - 2);
        return;
    case '1':
        conn_fail(c, &W.st->err_closed, "Engine.IO close");
        return;
    default:
        return; /* noop (6), etc. */
    }
bad:
    conn_fail(c, &W.st->err_protocol, "unexpected Engine.IO packet %.*s",
              (int)(len > 40 ? 40 : len), s);
}

static bool handle_head(struct conn *c, struct evbuffer *in)
{
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > 16384)
            conn_fail(c, &W.st->err_handshake, "response head too large");
        return false;
    }
    size_t hl = (size_t)end.pos + 4;
    char *head = (char *)evbuffer_pullup(in, (ev_ssize_t)hl);
    if (hl < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0) {
        const char *eol = memchr(head, '\r', hl);
        conn_fail(c, &W.st->err_handshake, "upgrade refused: %.*s", (int)(eol ? eol - head : 40),
                  head);
        return false;
    }
    char accept[29];
    if (ws_accept_key(c->key, strlen(c->key), accept) != 0 || !memmem(head, hl, accept, 28)) {
        conn_fail(c, &W.st->err_handshake, "bad Sec-WebSocket-Accept");
        return false;
    }
    evbuffer_drain(in, hl);
    ws_parser_init(&c->parser, false, 16u << 20);
    if (lg_opt.proto == LG_RAW) {
        on_ready(c);
    } else {
        c->state = CS_EIO_OPEN;
    }
    return true;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->state == CS_UPGRADING && !handle_head(c, in))
        return;
    for (;;) {
        if (!c->bev) /* closed by what the last frame said; in is gone */
            return;
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return;
        /* Look at the header first, then pull the whole frame together. */
        size_t want = len < WS_MAX_HEADER ? len : WS_MAX_HEADER;
        uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)want);
        size_t consumed = 0, need = 0;
        struct ws_frame f;
        struct ws_parser saved = c->parser;
        enum ws_status st = ws_parse(&c->parser, buf, want, &consumed, &need, &f);
        if (st == WS_NEED_MORE && need > want) {
            if (need > len)
                return;
            c->parser = saved;
            buf = evbuffer_pullup(in, (ev_ssize_t)need);
            st = ws_parse(&c->parser, buf, need, &consumed, &need, &f);
        }
        if (st == WS_NEED_MORE)
            return;
        if (st != WS_OK) {
            conn_fail(c, &W.st->err_protocol, "bad frame from server (status %d)", (int)st);
            return;
        }
        switch (f.opcode) {
        case WS_OP_TEXT:
            if (!f.fin) {
                conn_fail(c, &W.st->err_protocol, "fragmented message (unsupported)");
                return;
            }
            on_text(c, (const char *)f.payload, f.len);
            break;
        case WS_OP_PING:
            send_frame(c, WS_OP_PONG, (const char *)f.payload, f.len);
            break;
        case WS_OP_CLOSE: {
            unsigned code = f.len >= 2 ? (unsigned)(f.payload[0] << 8 | f.payload[1]) : 1005;
            if (lg_shm->phase == PH_STOP) {
                conn_drop(c);
            } else {
                conn_fail(c, &W.st->err_closed, "server closed with %u %.*s", code,
                          (int)(f.len > 2 ? f.len - 2 : 0), (const char *)f.payload + 2);
            }
            return;
        }
        default:
            break;
        }
        if (c->bev)
            evbuffer_drain(in, consumed);
    }
}

static void try_connect(void);

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        char req[1400];
        char *tok = NULL;
        if (lg_opt.proto == LG_RAW) {
            tok = jwt_auth_sign("HS256", W.secret, W.secret_len, c->user, time(NULL) + 86400, 0,
                                NULL, NULL);
            if (!tok) {
                conn_fail(c, &W.st->err_handshake, "cannot mint a token");
                return;
            }
        }
        int port = lg_opt.ports[c->gidx % lg_opt.nports];
        int n = snprintf(req, sizeof(req),
                         "GET %s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         lg_opt.proto == LG_RAW ? "/ws?token="
                                                : "/socket.io/?EIO=4&transport=websocket",
                         tok ? tok : "", lg_opt.host, port, c->key);
        free(tok);
        bufferevent_write(c->bev, req, (size_t)n);
        c->state = CS_UPGRADING;
        return;
    }
    if (lg_shm->phase == PH_STOP) {
        conn_drop(c);
        return;
    }
    if (c->state == CS_CONNECTING)
        conn_fail(c, &W.st->err_connect, "connect: %s", strerror(errno ? errno : ECONNREFUSED));
    else if (c->state == CS_READY)
        conn_fail(c, &W.st->err_closed, "connection lost (%s)",
                  (what & BEV_EVENT_EOF) ? "EOF" : strerror(errno));
    else
        conn_fail(c, &W.st->err_handshake, "closed during the handshake (%s)",
                  (what & BEV_EVENT_EOF) ? "EOF" : strerror(errno));
}

static void conn_start(struct conn *c)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int port = lg_opt.ports[c->gidx % lg_opt.nports];
    /* Source addresses 127.0.0.2.., so the 4-tuples never run out. */
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(c->gidx % lg_opt.sources));
    dst.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, lg_opt.host, &dst.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail(c, &W.st->err_connect, "socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
        close(fd);
        conn_fail(c, &W.st->err_connect, "bind: %s", strerror(errno));
        return;
    }
    c->bev = bufferevent_socket_new(W.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        conn_fail(c, &W.st->err_connect, "bufferevent: out of memory");
        return;
    }
    /* A fresh random-looking key per connection (16 bytes, base64). */
    uint8_t raw[16];
    for (size_t i = 0; i < sizeof(raw); i++) {
        W.mask_state = W.mask_state * 1664525u + 1013904223u;
        raw[i] = (uint8_t)(W.mask_state >> 24);
    }
    size_t kl = b64_encode(c->key, sizeof(c->key) - 1, raw, sizeof(raw), B64_STD, true);
    HERALD_ASSERT(kl == 24);
    c->key[kl] = '\0';
    c->state = CS_CONNECTING;
    W.inflight++;
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&dst, sizeof(dst)) != 0)
        conn_fail(c, &W.st->err_connect, "connect: %s", strerror(errno));
}

/* Ramp: start main connections at the configured rate, with a bounded
 * number of handshakes in flight so the listen backlog never overflows. */
static void try_connect(void)
{
    if (W.next_connect >= W.n_main)
        return;
    double rate = lg_opt.ramp_rate > 0 ? lg_opt.ramp_rate / lg_opt.procs : 0;
    uint64_t elapsed = lg_now_ns() - W.ramp_start_ns;
    long due = rate > 0 ? (long)(rate * (double)elapsed / 1e9) + 1 : W.n_main;
    long cap = lg_opt.ramp_inflight / lg_opt.procs + 1;
    while (W.next_connect < W.n_main && W.next_connect < due && W.inflight < cap) {
        struct conn *c = &W.conns[W.next_connect++];
        conn_start(c);
    }
}

/* ---- worker: what the measure phase sends -------------------------------------- */

static size_t chat_text(char *buf, size_t cap, int64_t to)
{
    char msg[96];
    int m = snprintf(msg, sizeof(msg), "lg:%" PRIu64 ":%d:", lg_now_ns(), W.id);
    int pad = lg_opt.msg_size > m ? (int)lg_opt.msg_size - m : 0;
    int n;
    const char *ev = to ? "direct_message" : "livechat";
    char tofield[40] = "";
    if (to)
        snprintf(tofield, sizeof(tofield), "\"to\":%" PRId64 ",", to);
    if (lg_opt.proto == LG_RAW)
        n = snprintf(buf, cap, "{\"type\":\"%s\",%s\"message\":\"%s%.*s\"}", ev, tofield, msg, pad,
                     W.pad);
    else
        n = snprintf(buf, cap, "42[\"%s\",{%s\"message\":\"%s%.*s\"}]", ev, tofield, msg, pad,
                     W.pad);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* The conn that sends the k-th message of this worker. */
static struct conn *sender(long k)
{
    long n =
        lg_opt.mode == LG_DM ? W.n_main : (lg_opt.senders < W.n_main ? lg_opt.senders : W.n_main);
    if (n <= 0)
        return NULL;
    struct conn *c = &W.conns[k % n];
    return c->state == CS_READY ? c : NULL;
}

static void send_one(void)
{
    char buf[2048];
    long k = W.rr++;
    struct conn *c = sender(k);
    if (!c)
        return;
    int64_t to = 0;
    if (lg_opt.mode == LG_DM) {
        /* Pairs (2i, 2i+1) of the worker's slice: neighbours in the global
         * order, so on different gateways when there are two. */
        long i = c - W.conns;
        long peer = (i % 2 == 0) ? i + 1 : i - 1;
        if (peer >= W.n_main)
            return;
        to = W.conns[peer].user;
    }
    size_t n = chat_text(buf, sizeof(buf), to);
    if (n == 0)
        return;
    send_text(c, buf, n);
    W.st->sent++;
}

static void churn_one(void)
{
    if (W.n_churn == 0)
        return;
    struct conn *c = &W.conns[W.n_main + (long)(W.rr++ % W.n_churn)];
    long i = W.churn_lo + (c - W.conns - W.n_main);
    /* The change this one replaces: an offline one's time to its last
     * delivery is final now (a late event about it no longer matches). */
    uint64_t prev = __atomic_load_n(&lg_shm->change[i], __ATOMIC_ACQUIRE);
    uint64_t last = __atomic_exchange_n(&lg_shm->last_arrival[i], 0, __ATOMIC_ACQ_REL);
    if (prev && !(prev & 1) && last > prev && lg_shm->phase == PH_MEASURE)
        W.st->hist_last[lg_hist_index((last - prev) / 1000)]++;
    /* Online is timed from connect(): the server may announce the user
     * before the handshake's last packet reaches us, never before that. */
    if (c->state == CS_READY) {
        __atomic_store_n(&lg_shm->change[i], lg_now_ns() & ~(uint64_t)1, __ATOMIC_RELEASE);
        conn_drop(c);
        W.st->sent++;
    } else if (c->state == CS_NONE) {
        __atomic_store_n(&lg_shm->change[i], lg_now_ns() | 1, __ATOMIC_RELEASE);
        conn_start(c);
        W.st->sent++;
    }
}

/* ---- worker: scale (sessions that end and begin, DMs, profile watches) ---------- */

static uint64_t scale_rand(void)
{
    W.rng = W.rng * 6364136223846793005ull + 1442695040888963407ull;
    return W.rng >> 33;
}

/* A random connection of this worker that is ready, or NULL after a few
 * misses (most are ready; the away ones are a small fraction). */
static struct conn *scale_ready_conn(void)
{
    for (int tries = 0; tries < 8 && W.n_main > 0; tries++) {
        struct conn *c = &W.conns[scale_rand() % (uint64_t)W.n_main];
        if (c->state == CS_READY)
            return c;
    }
    return NULL;
}

/* One session ends: a random user of this worker whose tabs are all ready
 * closes them all (one offline transition, timed from here) and is queued
 * to come back --offline seconds later. */
static void scale_end_session(uint64_t now)
{
    for (int tries = 0; tries < 8 && W.nusers > 0 && W.back_len < W.nusers; tries++) {
        long u = W.ulo + (long)(scale_rand() % (uint64_t)W.nusers);
        if (W.away[u - W.ulo])
            continue;
        long first = lg_scale_first_conn(u) - W.conns[0].gidx;
        int tabs = lg_scale_tabs(u);
        bool ready = true;
        for (int t = 0; t < tabs; t++)
            ready = ready && W.conns[first + t].state == CS_READY;
        if (!ready)
            continue;
        __atomic_store_n(&lg_shm->change[u], now & ~(uint64_t)1, __ATOMIC_RELEASE);
        for (int t = 0; t < tabs; t++)
            conn_drop(&W.conns[first + t]);
        W.away[u - W.ulo] = 1;
        W.back[(W.back_head + W.back_len++) % W.nusers] =
            (struct away_entry){u, now + (uint64_t)(lg_opt.offline * 1e9)};
        W.st->sessions_ended++;
        W.st->sent++;
        return;
    }
}

/* The users whose time away is over open all their tabs again (the online
 * transition is timed from the first connect()). */
static void scale_return(uint64_t now)
{
    while (W.back_len > 0 && W.back[W.back_head].back_ns <= now) {
        long u = W.back[W.back_head].u;
        W.back_head = (W.back_head + 1) % W.nusers;
        W.back_len--;
        W.away[u - W.ulo] = 0;
        long first = lg_scale_first_conn(u) - W.conns[0].gidx;
        __atomic_store_n(&lg_shm->change[u], lg_now_ns() | 1, __ATOMIC_RELEASE);
        for (int t = 0; t < lg_scale_tabs(u); t++)
            conn_start(&W.conns[first + t]);
        W.st->sessions_begun++;
        W.st->sent++;
    }
}

/* A DM from a random ready tab to the next user on the ring (a friend). */
static void scale_dm(void)
{
    char buf[512];
    struct conn *c = scale_ready_conn();
    if (!c)
        return;
    long u = (long)(c->user - lg_opt.first_user);
    int64_t to = lg_opt.first_user + (u + 1) % (lg_opt.conns / 2);
    size_t n = chat_text(buf, sizeof(buf), to);
    if (n == 0)
        return;
    send_text(c, buf, n);
    W.st->dm_sent++;
}

/* A random ready tab stops watching the profile it watched and watches a
 * user half the ring away (not a friend): that user's transitions then
 * reach it too, as a watcher's. */
static void scale_watch(void)
{
    char buf[128];
    struct conn *c = scale_ready_conn();
    if (!c)
        return;
    long users = lg_opt.conns / 2;
    if (c->watching) {
        int n = snprintf(buf, sizeof(buf), "{\"type\":\"unwatch-profile\",\"userId\":%" PRId64 "}",
                         c->watching);
        send_text(c, buf, (size_t)n);
    }
    long u = (long)(c->user - lg_opt.first_user);
    c->watching = lg_opt.first_user + (u + users / 2 + (long)(scale_rand() % 64)) % users;
    int n = snprintf(buf, sizeof(buf), "{\"type\":\"watch-profile\",\"userId\":%" PRId64 "}",
                     c->watching);
    send_text(c, buf, (size_t)n);
    W.st->watch_sent++;
}

static void scale_tick(uint64_t now)
{
    double procs = lg_opt.procs, el = (double)(now - W.send_start_ns) / 1e9;
    uint64_t due = (uint64_t)(lg_opt.rate / procs * el);
    while (W.due_done < due) {
        scale_end_session(now);
        W.due_done++;
    }
    scale_return(now);
    due = (uint64_t)(lg_opt.dm_rate / procs * el);
    while (W.dm_done < due) {
        scale_dm();
        W.dm_done++;
    }
    due = (uint64_t)(lg_opt.watch_rate / procs * el);
    while (W.watch_done < due) {
        scale_watch();
        W.watch_done++;
    }
}

/* Saturation broadcast: keep --window of this worker's messages in flight,
 * as seen by the worker's probe connection (its last one). */
static void try_send(void)
{
    if (lg_shm->phase != PH_MEASURE || lg_opt.mode != LG_BROADCAST || lg_opt.rate > 0)
        return;
    while ((long)(W.st->sent - W.probe_seen) < lg_opt.window) {
        uint64_t before = W.st->sent;
        send_one();
        if (W.st->sent == before)
            return;
    }
}

static void tick(int ph);

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int ph = lg_shm->phase;
    tick(ph);
    __atomic_store_n(&W.st->phase_seen, ph, __ATOMIC_RELEASE);
}

static void tick(int ph)
{
    if (ph == PH_STOP) {
        event_base_loopbreak(W.base);
        return;
    }
    try_connect();
    if (!W.st->ramp_done && W.next_connect >= W.n_main && W.inflight <= 0)
        W.st->ramp_done = 1;
    if (lg_opt.mode == LG_SCALE && ph >= PH_DRAIN && W.back_len > 0)
        scale_return(lg_now_ns()); /* everyone away comes back before the end */
    if (ph != PH_MEASURE || lg_opt.mode == LG_IDLE) {
        W.send_start_ns = 0;
        return;
    }
    uint64_t now = lg_now_ns();
    if (W.send_start_ns == 0) {
        W.send_start_ns = now;
        W.due_done = 0;
        W.dm_done = 0;
        W.watch_done = 0;
        W.rr = 0;
        if (lg_opt.mode == LG_BROADCAST && lg_opt.rate <= 0) {
            try_send();
            return;
        }
    }
    if (lg_opt.mode == LG_BROADCAST && lg_opt.rate <= 0) {
        try_send(); /* in case the probe lost a message */
        return;
    }
    if (lg_opt.mode == LG_SCALE) {
        scale_tick(now);
        return;
    }
    double rate = lg_opt.rate / lg_opt.procs;
    uint64_t due = (uint64_t)(rate * (double)(now - W.send_start_ns) / 1e9);
    long burst = lg_opt.burst > 1 ? lg_opt.burst : 1;
    /* Bursty: whole bursts only, back to back. */
    due -= due % (uint64_t)burst;
    while (W.due_done < due) {
        if (lg_opt.mode == LG_PRESENCE)
            churn_one();
        else
            send_one();
        W.due_done++;
    }
}

int lg_worker_main(int id, long lo, long hi, long clo, long chi)
{
    memset(&W, 0, sizeof(W));
    W.id = id;
    W.st = &lg_shm->w[id];
    W.mask_state = (uint32_t)(getpid() * 2654435761u);
    W.secret = (unsigned char *)lg_opt.secret;
    W.secret_len = strlen(lg_opt.secret);
    W.n_main = hi - lo;
    W.n_churn = chi - clo;
    W.churn_lo = clo;
    W.conns = calloc((size_t)(W.n_main + W.n_churn + 1), sizeof(struct conn));
    W.pad = malloc((size_t)lg_opt.msg_size + 1);
    if (!W.conns || !W.pad)
        return 1;
    memset(W.pad, 'x', (size_t)lg_opt.msg_size);
    W.pad[lg_opt.msg_size] = 0;
    long users = (lg_opt.conns + lg_opt.tabs - 1) / lg_opt.tabs;
    for (long i = 0; i < W.n_main; i++) {
        W.conns[i].gidx = lo + i;
        W.conns[i].user = lg_opt.mode == LG_SCALE ? lg_opt.first_user + lg_scale_user_of(lo + i)
                                                  : lg_opt.first_user + (lo + i) / lg_opt.tabs;
    }
    if (lg_opt.mode == LG_SCALE) {
        /* Slices are whole blocks of 6 (loadgen.c), so whole users. */
        W.ulo = lo / 2;
        W.nusers = (hi - lo) / 2;
        W.away = calloc((size_t)W.nusers + 1, 1);
        W.back = calloc((size_t)W.nusers + 1, sizeof(*W.back));
        W.rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull + (uint64_t)id;
        if (!W.away || !W.back)
            return 1;
    }
    for (long j = 0; j < W.n_churn; j++) {
        struct conn *c = &W.conns[W.n_main + j];
        c->gidx = lg_opt.conns + clo + j;
        c->user = lg_opt.first_user + users + clo + j;
        c->churn = true;
    }
    W.base = event_base_new();
    if (!W.base)
        return 1;
    W.ramp_start_ns = lg_now_ns();
    W.tick = event_new(W.base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval ms = {0, 1000};
    event_add(W.tick, &ms);
    event_base_dispatch(W.base);
    /* Exit without closing each connection: the kernel does it at once. */
    return 0;
}
