/*
 * loadgen.c - herald-loadgen: the load generator behind scripts/bench.
 *
 * Why it exists: the benchmarks compare Herald with a Node Socket.IO server
 * side by side, so the client side must be cheap enough never to be the
 * bottleneck and must speak both of Herald's WebSocket dialects: the raw
 * /ws JSON endpoint and Socket.IO v5 over Engine.IO v4 over WebSocket.
 *
 * Shape: the parent process forks --procs workers (a process may hold at most
 * 20 000 descriptors here), each one libevent loop holding a contiguous slice
 * of the connections. Workers write their counters and latency histogram
 * into one shared anonymous mapping; the parent only reads it: it prints a
 * progress line every second, moves everyone through the phases (ramp,
 * settle, measure, drain) by writing the phase word, samples the CPU time
 * and RSS of the server processes named with --pid at each phase boundary,
 * and writes a JSON summary at the end.
 *
 * Latency is end to end on CLOCK_MONOTONIC, which all processes of one host
 * share: chat and DMs carry their send time in the message text
 * ("lg:<ns>:<worker>:..."); presence changes are timed from the moment a
 * churning user's connection completed its handshake (online) or was closed
 * (offline), which the churning worker writes into the shared mapping, to
 * the moment a watcher sees the matching status event. Histograms are
 * HdrHistogram-style log-linear buckets in microseconds (64 sub-buckets per
 * power of two: under 1.6 % relative error), merged by adding counts.
 *
 * The codecs are Herald's own (common/ws.c parses every server frame and
 * rejects what RFC 6455 forbids; tokens are minted by jwt_auth_sign), so a
 * protocol slip on either server shows up as a counted error.
 */
#include "jwt_auth.h"
#include "ws.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A worker keeps some descriptors for itself (epoll, pipes, stdio): the
 * hard limit here is 20 000 per process. */
#define LG_CONNS_PER_WORKER 19000
#define LG_MAX_WORKERS 64
#define LG_MAX_PORTS 16
#define LG_MAX_PIDS 16
/* Log-linear histogram: values below 128 us exact, then 64 buckets per
 * power of two up to 2^38 us (three days): 128 + 32 * 64. */
#define LG_SUB 64
#define LG_BUCKETS (2 * LG_SUB + 32 * LG_SUB)

enum lg_mode { LG_IDLE, LG_PRESENCE, LG_BROADCAST, LG_DM };
enum lg_proto { LG_RAW, LG_SIO };
enum lg_phase { PH_RAMP, PH_SETTLE, PH_MEASURE, PH_DRAIN, PH_STOP };

static const char *const mode_names[] = {"idle", "presence", "broadcast", "dm"};

struct lg_opts {
    enum lg_mode mode;
    enum lg_proto proto;
    const char *host;
    int ports[LG_MAX_PORTS];
    int nports;
    int sources;
    int procs;
    const char *secret;
    int64_t first_user;
    long conns;
    long tabs;
    double ramp_rate;
    long ramp_inflight;
    double settle;
    double duration;
    double drain;
    double rate;
    long burst;
    long churn_users;
    long senders;
    long window;
    long msg_size;
    const char *json_path;
    const char *label;
    struct {
        char name[32];
        pid_t pid;
    } pids[LG_MAX_PIDS];
    int npids;
    bool quiet;
};

/* One worker's counters; written only by that worker. */
struct lg_stats {
    uint64_t held;       /* main connections ready now */
    uint64_t handshakes; /* main connections that completed a handshake */
    uint64_t churn_handshakes;
    uint64_t attempted;
    uint64_t err_connect, err_handshake, err_closed, err_protocol, err_server;
    uint64_t sent;     /* chat messages / DMs sent */
    uint64_t received; /* chat messages / DMs / status events received */
    uint64_t status_seen;
    uint64_t lat_negative;
    int ramp_done; /* every main connection attempted and settled */
    int exited;
    char last_error[160];
    uint64_t hist[LG_BUCKETS];
};

struct lg_shared {
    volatile int phase;
    uint64_t measure_start_ns;
    /* Presence: per churning user, when it last changed and to what. */
    uint64_t *change_ns;
    uint8_t *change_online;
    struct lg_stats w[LG_MAX_WORKERS];
};

static struct lg_opts opt;
static struct lg_shared *shm;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- histogram ---------------------------------------------------------------- */

static unsigned hist_index(uint64_t us)
{
    if (us < 2 * LG_SUB)
        return (unsigned)us;
    unsigned msb = 63 - (unsigned)__builtin_clzll(us); /* >= 7 */
    unsigned shift = msb - 6;                          /* keeps 7 significant bits */
    unsigned idx = 2 * LG_SUB + (shift - 1) * LG_SUB + (unsigned)((us >> shift) - LG_SUB);
    return idx < LG_BUCKETS ? idx : LG_BUCKETS - 1;
}

/* The middle of bucket idx, in microseconds. */
static double hist_value(unsigned idx)
{
    if (idx < 2 * LG_SUB)
        return idx;
    unsigned shift = (idx - 2 * LG_SUB) / LG_SUB + 1;
    uint64_t sub = (idx - 2 * LG_SUB) % LG_SUB + LG_SUB;
    return ((double)(sub << shift) + (double)((sub + 1) << shift)) / 2.0;
}

static double hist_percentile(const uint64_t *h, uint64_t total, double p)
{
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)total), seen = 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < LG_BUCKETS; i++) {
        seen += h[i];
        if (seen >= want)
            return hist_value(i);
    }
    return hist_value(LG_BUCKETS - 1);
}

/* ---- worker: connections ------------------------------------------------------- */

enum conn_state { CS_NONE, CS_CONNECTING, CS_UPGRADING, CS_EIO_OPEN, CS_SIO_CONNECT, CS_READY };

struct conn {
    struct bufferevent *bev; /* owned; NULL when not connected */
    struct ws_parser parser;
    long gidx;     /* global index: main connections 0..conns-1, churners after */
    int64_t user;  /* user id of this connection */
    uint8_t state; /* enum conn_state */
    bool churn;    /* presence: a user that comes and goes */
    char key[25];  /* Sec-WebSocket-Key sent */
};

struct worker {
    int id;
    struct event_base *base;
    struct lg_stats *st;
    struct conn *conns; /* owned: main slice, then churn slice */
    long n_main, n_churn;
    long main_lo;  /* global index of conns[0] */
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
    if (c->churn) {
        W.st->churn_handshakes++;
        long i = W.churn_lo + (c - W.conns - W.n_main);
        shm->change_online[i] = 1;
        __atomic_store_n(&shm->change_ns[i], now_ns(), __ATOMIC_RELEASE);
    } else {
        W.st->handshakes++;
        W.st->held++;
    }
}

static void record_latency(uint64_t sent_ns)
{
    uint64_t now = now_ns();
    if (sent_ns > now) {
        W.st->lat_negative++;
        return;
    }
    W.st->hist[hist_index((now - sent_ns) / 1000)]++;
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
    if (shm->phase >= PH_MEASURE)
        record_latency(ns);
    /* Saturation: a worker's probe connection paces that worker's senders. */
    if (from == W.id && opt.mode == LG_BROADCAST && opt.rate <= 0 && c == &W.conns[W.n_main - 1]) {
        W.probe_seen++;
        try_send();
    }
}

static void on_status(const char *s, size_t len)
{
    int64_t user;
    W.st->status_seen++;
    if (opt.mode != LG_PRESENCE || !json_int_after(s, len, "\"userId\":", &user))
        return;
    long base = (long)(opt.first_user + (opt.conns + opt.tabs - 1) / opt.tabs);
    long i = (long)user - base;
    if (i < 0 || i >= opt.churn_users)
        return;
    bool online = memmem(s, len, "\"online\"", 8) != NULL;
    uint64_t t = __atomic_load_n(&shm->change_ns[i], __ATOMIC_ACQUIRE);
    if (t == 0 || online != (shm->change_online[i] == 1))
        return; /* an event about an older change */
    W.st->received++;
    if (shm->phase >= PH_MEASURE)
        record_latency(t);
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
        on_status(s, len);
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
    if (opt.proto == LG_RAW) {
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
    if (opt.proto == LG_RAW) {
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
            if (shm->phase == PH_STOP) {
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
        if (opt.proto == LG_RAW) {
            tok = jwt_auth_sign("HS256", W.secret, W.secret_len, c->user, time(NULL) + 86400, 0,
                                NULL, NULL);
            if (!tok) {
                conn_fail(c, &W.st->err_handshake, "cannot mint a token");
                return;
            }
        }
        int port = opt.ports[c->gidx % opt.nports];
        int n =
            snprintf(req, sizeof(req),
                     "GET %s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     opt.proto == LG_RAW ? "/ws?token=" : "/socket.io/?EIO=4&transport=websocket",
                     tok ? tok : "", opt.host, port, c->key);
        free(tok);
        bufferevent_write(c->bev, req, (size_t)n);
        c->state = CS_UPGRADING;
        return;
    }
    if (shm->phase == PH_STOP) {
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
    int port = opt.ports[c->gidx % opt.nports];
    /* Source addresses 127.0.0.2.., so the 4-tuples never run out. */
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(c->gidx % opt.sources));
    dst.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, opt.host, &dst.sin_addr);
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
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 21; i++) {
        W.mask_state = W.mask_state * 1664525u + 1013904223u;
        c->key[i] = b64[(W.mask_state >> 24) & 63];
    }
    c->key[21] = b64[(W.mask_state >> 16) & 48]; /* last char of 16 bytes: 2 bits free */
    memcpy(c->key + 22, "==", 3);
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
    double rate = opt.ramp_rate > 0 ? opt.ramp_rate / opt.procs : 0;
    uint64_t elapsed = now_ns() - W.ramp_start_ns;
    long due = rate > 0 ? (long)(rate * (double)elapsed / 1e9) + 1 : W.n_main;
    long cap = opt.ramp_inflight / opt.procs + 1;
    while (W.next_connect < W.n_main && W.next_connect < due && W.inflight < cap) {
        struct conn *c = &W.conns[W.next_connect++];
        W.st->attempted++;
        conn_start(c);
    }
}

/* ---- worker: what the measure phase sends -------------------------------------- */

static size_t chat_text(char *buf, size_t cap, int64_t to)
{
    char msg[96];
    int m = snprintf(msg, sizeof(msg), "lg:%" PRIu64 ":%d:", now_ns(), W.id);
    int pad = opt.msg_size > m ? (int)opt.msg_size - m : 0;
    int n;
    const char *ev = to ? "direct_message" : "livechat";
    char tofield[40] = "";
    if (to)
        snprintf(tofield, sizeof(tofield), "\"to\":%" PRId64 ",", to);
    if (opt.proto == LG_RAW)
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
    long n = opt.mode == LG_DM ? W.n_main : (opt.senders < W.n_main ? opt.senders : W.n_main);
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
    if (opt.mode == LG_DM) {
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
    if (c->state == CS_READY) {
        shm->change_online[i] = 0;
        __atomic_store_n(&shm->change_ns[i], now_ns(), __ATOMIC_RELEASE);
        conn_drop(c);
        W.st->sent++;
    } else if (c->state == CS_NONE) {
        conn_start(c);
        W.st->sent++;
    }
}

/* Saturation broadcast: keep --window of this worker's messages in flight,
 * as seen by the worker's probe connection (its last one). */
static void try_send(void)
{
    if (shm->phase != PH_MEASURE || opt.mode != LG_BROADCAST || opt.rate > 0)
        return;
    while ((long)(W.st->sent - W.probe_seen) < opt.window) {
        uint64_t before = W.st->sent;
        send_one();
        if (W.st->sent == before)
            return;
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int ph = shm->phase;
    if (ph == PH_STOP) {
        event_base_loopbreak(W.base);
        return;
    }
    try_connect();
    if (!W.st->ramp_done && W.next_connect >= W.n_main && W.inflight <= 0)
        W.st->ramp_done = 1;
    if (ph != PH_MEASURE || opt.mode == LG_IDLE) {
        W.send_start_ns = 0;
        return;
    }
    uint64_t now = now_ns();
    if (W.send_start_ns == 0) {
        W.send_start_ns = now;
        W.due_done = 0;
        W.rr = 0;
        if (opt.mode == LG_BROADCAST && opt.rate <= 0) {
            try_send();
            return;
        }
    }
    if (opt.mode == LG_BROADCAST && opt.rate <= 0) {
        try_send(); /* in case the probe lost a message */
        return;
    }
    double rate = opt.rate / opt.procs;
    uint64_t due = (uint64_t)(rate * (double)(now - W.send_start_ns) / 1e9);
    long burst = opt.burst > 1 ? opt.burst : 1;
    /* Bursty: whole bursts only, back to back. */
    due -= due % (uint64_t)burst;
    while (W.due_done < due) {
        if (opt.mode == LG_PRESENCE)
            churn_one();
        else
            send_one();
        W.due_done++;
    }
}

static int worker_main(int id, long lo, long hi, long clo, long chi)
{
    memset(&W, 0, sizeof(W));
    W.id = id;
    W.st = &shm->w[id];
    W.mask_state = (uint32_t)(getpid() * 2654435761u);
    W.secret = (unsigned char *)opt.secret;
    W.secret_len = strlen(opt.secret);
    W.n_main = hi - lo;
    W.n_churn = chi - clo;
    W.main_lo = lo;
    W.churn_lo = clo;
    W.conns = calloc((size_t)(W.n_main + W.n_churn + 1), sizeof(struct conn));
    W.pad = malloc((size_t)opt.msg_size + 1);
    if (!W.conns || !W.pad)
        return 1;
    memset(W.pad, 'x', (size_t)opt.msg_size);
    W.pad[opt.msg_size] = 0;
    long users = (opt.conns + opt.tabs - 1) / opt.tabs;
    for (long i = 0; i < W.n_main; i++) {
        W.conns[i].gidx = lo + i;
        W.conns[i].user = opt.first_user + (lo + i) / opt.tabs;
    }
    for (long j = 0; j < W.n_churn; j++) {
        struct conn *c = &W.conns[W.n_main + j];
        c->gidx = opt.conns + clo + j;
        c->user = opt.first_user + users + clo + j;
        c->churn = true;
    }
    W.base = event_base_new();
    if (!W.base)
        return 1;
    W.ramp_start_ns = now_ns();
    W.tick = event_new(W.base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval ms = {0, 1000};
    event_add(W.tick, &ms);
    event_base_dispatch(W.base);
    /* Exit without closing each connection: the kernel does it at once. */
    W.st->exited = 1;
    return 0;
}

/* ---- parent: measurement of the server processes -------------------------------- */

struct proc_sample {
    double cpu_s;
    long rss_kb;
};

static bool proc_sample(pid_t pid, struct proc_sample *s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    if (!p)
        return false;
    unsigned long ut = 0, st = 0;
    /* Fields after the command: state is 3; utime 14, stime 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return false;
    s->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    s->rss_kb = 0;
    if ((f = fopen(path, "r"))) {
        while (fgets(buf, sizeof(buf), f))
            if (sscanf(buf, "VmRSS: %ld", &s->rss_kb) == 1)
                break;
        fclose(f);
    }
    return true;
}

/* Kernel memory held by sockets, in KiB: the TCP buffers the kernel
 * accounts in /proc/net/sockstat ("mem", in pages) plus the slab objects
 * every connection costs (struct tcp_sock, socket inode, file, epoll item)
 * from /proc/slabinfo when it is readable (root). Both ends of loopback
 * connections are in it. */
static long sockstat_kb(void)
{
    static const char *const slabs[] = {"TCP ",           "sock_inode_cache ", "filp ",
                                        "eventpoll_epi ", "tcp_bind_bucket ",  "request_sock_TCP "};
    char line[512];
    long pages = 0;
    double slab = 0;
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            const char *m = strstr(line, " mem ");
            if (strncmp(line, "TCP:", 4) == 0 && m)
                pages = atol(m + 5);
        }
        fclose(f);
    }
    if ((f = fopen("/proc/slabinfo", "r"))) {
        while (fgets(line, sizeof(line), f))
            for (size_t i = 0; i < sizeof(slabs) / sizeof(slabs[0]); i++)
                if (strncmp(line, slabs[i], strlen(slabs[i])) == 0) {
                    long active, num, objsize;
                    if (sscanf(line + strlen(slabs[i]), "%ld %ld %ld", &active, &num, &objsize) ==
                        3)
                        slab += (double)active * (double)objsize / 1024.0;
                }
        fclose(f);
    }
    return pages * (sysconf(_SC_PAGESIZE) / 1024) + (long)slab;
}

struct snapshot {
    uint64_t t_ns;
    struct proc_sample srv[LG_MAX_PIDS];
    struct proc_sample gen[LG_MAX_WORKERS];
    uint64_t sent, received, handshakes, status_seen;
    long sock_kb;
};

static pid_t workers[LG_MAX_WORKERS];

static void snap(struct snapshot *s)
{
    memset(s, 0, sizeof(*s));
    s->t_ns = now_ns();
    for (int i = 0; i < opt.npids; i++)
        proc_sample(opt.pids[i].pid, &s->srv[i]);
    for (int i = 0; i < opt.procs; i++) {
        proc_sample(workers[i], &s->gen[i]);
        s->sent += shm->w[i].sent;
        s->received += shm->w[i].received;
        s->handshakes += shm->w[i].handshakes;
        s->status_seen += shm->w[i].status_seen;
    }
    s->sock_kb = sockstat_kb();
}

static void totals(uint64_t *hist, uint64_t *count, struct lg_stats *sum)
{
    memset(sum, 0, sizeof(*sum));
    memset(hist, 0, sizeof(uint64_t) * LG_BUCKETS);
    *count = 0;
    for (int i = 0; i < opt.procs; i++) {
        struct lg_stats *w = &shm->w[i];
        sum->held += w->held;
        sum->handshakes += w->handshakes;
        sum->churn_handshakes += w->churn_handshakes;
        sum->attempted += w->attempted;
        sum->err_connect += w->err_connect;
        sum->err_handshake += w->err_handshake;
        sum->err_closed += w->err_closed;
        sum->err_protocol += w->err_protocol;
        sum->err_server += w->err_server;
        sum->sent += w->sent;
        sum->received += w->received;
        sum->lat_negative += w->lat_negative;
        for (unsigned b = 0; b < LG_BUCKETS; b++) {
            hist[b] += w->hist[b];
            *count += w->hist[b];
        }
        if (w->last_error[0])
            memcpy(sum->last_error, w->last_error, sizeof(sum->last_error));
    }
}

static uint64_t hist_total[LG_BUCKETS];

static void progress(double t, const char *phase, struct snapshot *prev)
{
    struct snapshot now;
    struct lg_stats sum;
    uint64_t count;
    snap(&now);
    totals(hist_total, &count, &sum);
    double dt = (double)(now.t_ns - prev->t_ns) / 1e9;
    if (dt <= 0)
        dt = 1;
    if (!opt.quiet)
        fprintf(stderr,
                "[%s %s] %5.1fs %-7s conns %" PRIu64 "/%ld  hs/s %.0f  sent/s %.0f  recv/s %.0f"
                "  p50 %.2fms p99 %.2fms p999 %.2fms  err %" PRIu64 "\n",
                opt.label, mode_names[opt.mode], t, phase, sum.held, opt.conns,
                (double)(now.handshakes - prev->handshakes) / dt,
                (double)(now.sent - prev->sent) / dt, (double)(now.received - prev->received) / dt,
                hist_percentile(hist_total, count, 50) / 1000,
                hist_percentile(hist_total, count, 99) / 1000,
                hist_percentile(hist_total, count, 99.9) / 1000,
                sum.err_connect + sum.err_handshake + sum.err_closed + sum.err_protocol +
                    sum.err_server);
    *prev = now;
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Sleeps up to secs, printing progress each second; stops early when done()
 * says so. */
static void wait_phase(const char *phase, double secs, bool (*done)(void), uint64_t t0,
                       struct snapshot *prev)
{
    uint64_t start = now_ns(), next = start + 1000000000u;
    for (;;) {
        uint64_t now = now_ns();
        if (interrupted || (secs >= 0 && (double)(now - start) / 1e9 >= secs) || (done && done()))
            return;
        if (now >= next) {
            progress((double)(now - t0) / 1e9, phase, prev);
            next += 1000000000u;
        }
        usleep(20000);
    }
}

static bool ramp_finished(void)
{
    for (int i = 0; i < opt.procs; i++)
        if (!shm->w[i].ramp_done)
            return false;
    return true;
}

static void json_proc_block(FILE *f, const char *key, const struct snapshot *a,
                            const struct snapshot *b)
{
    fprintf(f, "  \"%s\": {", key);
    for (int i = 0; i < opt.npids; i++)
        fprintf(f, "%s\"%s\": %.3f", i ? ", " : "", opt.pids[i].name,
                b->srv[i].cpu_s - a->srv[i].cpu_s);
    fprintf(f, "},\n");
}

static double sum_cpu(const struct proc_sample *a, const struct proc_sample *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += b[i].cpu_s - a[i].cpu_s;
    return s;
}

static double max_util(const struct snapshot *a, const struct snapshot *b)
{
    double wall = (double)(b->t_ns - a->t_ns) / 1e9, m = 0;
    for (int i = 0; i < opt.procs && wall > 0; i++) {
        double u = (b->gen[i].cpu_s - a->gen[i].cpu_s) / wall;
        m = u > m ? u : m;
    }
    return m;
}

static void write_json(const struct snapshot *s0, const struct snapshot *s_ramp,
                       const struct snapshot *s_meas, const struct snapshot *s_end,
                       const struct snapshot *s_drain)
{
    struct lg_stats sum;
    uint64_t count;
    totals(hist_total, &count, &sum);
    FILE *f = opt.json_path && strcmp(opt.json_path, "-") != 0 ? fopen(opt.json_path, "w") : stdout;
    if (!f) {
        perror(opt.json_path);
        return;
    }
    double ramp_s = (double)(s_ramp->t_ns - s0->t_ns) / 1e9;
    double meas_s = (double)(s_end->t_ns - s_meas->t_ns) / 1e9;
    long users = (opt.conns + opt.tabs - 1) / opt.tabs;
    fprintf(f, "{\n  \"label\": \"%s\", \"mode\": \"%s\", \"proto\": \"%s\",\n", opt.label,
            mode_names[opt.mode], opt.proto == LG_RAW ? "ws" : "sio");
    fprintf(f,
            "  \"conns\": %ld, \"tabs\": %ld, \"users\": %ld, \"workers\": %d, \"sources\": %d,"
            " \"rate\": %g, \"burst\": %ld, \"churn_users\": %ld, \"senders\": %ld,"
            " \"msg_size\": %ld,\n",
            opt.conns, opt.tabs, users, opt.procs, opt.sources, opt.rate, opt.burst,
            opt.churn_users, opt.senders, opt.msg_size);
    fprintf(f,
            "  \"held\": %" PRIu64 ", \"handshakes\": %" PRIu64 ", \"ramp_s\": %.3f,"
            " \"handshake_rate\": %.1f,\n",
            sum.held, s_ramp->handshakes - s0->handshakes, ramp_s,
            ramp_s > 0 ? (double)(s_ramp->handshakes - s0->handshakes) / ramp_s : 0);
    fprintf(f,
            "  \"measure_s\": %.3f, \"sent\": %" PRIu64 ", \"received\": %" PRIu64
            ", \"received_after_drain\": %" PRIu64 ",\n",
            meas_s, s_end->sent - s_meas->sent, s_end->received - s_meas->received,
            s_drain->received - s_meas->received);
    fprintf(f,
            "  \"sent_rate\": %.1f, \"recv_rate\": %.1f, \"status_events\": %" PRIu64
            ", \"churn_handshakes\": %" PRIu64 ",\n",
            meas_s > 0 ? (double)(s_end->sent - s_meas->sent) / meas_s : 0,
            meas_s > 0 ? (double)(s_end->received - s_meas->received) / meas_s : 0,
            s_drain->status_seen - s0->status_seen, sum.churn_handshakes);
    fprintf(f,
            "  \"latency_us\": {\"count\": %" PRIu64
            ", \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f,"
            " \"negative\": %" PRIu64 "},\n",
            count, hist_percentile(hist_total, count, 50), hist_percentile(hist_total, count, 90),
            hist_percentile(hist_total, count, 99), hist_percentile(hist_total, count, 99.9),
            hist_percentile(hist_total, count, 100), sum.lat_negative);
    json_proc_block(f, "cpu_ramp_s", s0, s_ramp);
    json_proc_block(f, "cpu_measure_s", s_meas, s_end);
    fprintf(f, "  \"server_cpu_ramp_s\": %.3f, \"server_cpu_measure_s\": %.3f,\n",
            sum_cpu(s0->srv, s_ramp->srv, opt.npids), sum_cpu(s_meas->srv, s_end->srv, opt.npids));
    fprintf(f,
            "  \"loadgen_cpu_measure_s\": %.3f, \"loadgen_max_util_ramp\": %.3f,"
            " \"loadgen_max_util_measure\": %.3f,\n",
            sum_cpu(s_meas->gen, s_end->gen, opt.procs), max_util(s0, s_ramp),
            max_util(s_meas, s_end));
    fprintf(f, "  \"rss_kb_before\": {");
    for (int i = 0; i < opt.npids; i++)
        fprintf(f, "%s\"%s\": %ld", i ? ", " : "", opt.pids[i].name, s0->srv[i].rss_kb);
    fprintf(f, "},\n  \"rss_kb_held\": {");
    for (int i = 0; i < opt.npids; i++)
        fprintf(f, "%s\"%s\": %ld", i ? ", " : "", opt.pids[i].name, s_meas->srv[i].rss_kb);
    fprintf(f, "},\n  \"sock_kb_before\": %ld, \"sock_kb_held\": %ld,\n", s0->sock_kb,
            s_meas->sock_kb);
    fprintf(f,
            "  \"errors\": {\"connect\": %" PRIu64 ", \"handshake\": %" PRIu64
            ", \"closed\": %" PRIu64 ", \"protocol\": %" PRIu64 ", \"server\": %" PRIu64 "},\n",
            sum.err_connect, sum.err_handshake, sum.err_closed, sum.err_protocol, sum.err_server);
    fprintf(f, "  \"last_error\": \"");
    for (const char *p = sum.last_error; *p; p++)
        fprintf(f, (*p == '"' || *p == '\\') ? "\\%c" : ((unsigned char)*p < 32 ? "?" : "%c"), *p);
    fprintf(f, "\",\n  \"histogram_us\": [");
    bool first = true;
    for (unsigned b = 0; b < LG_BUCKETS; b++)
        if (hist_total[b]) {
            fprintf(f, "%s[%.1f, %" PRIu64 "]", first ? "" : ", ", hist_value(b), hist_total[b]);
            first = false;
        }
    fprintf(f, "]\n}\n");
    if (f != stdout)
        fclose(f);
}

/* ---- options --------------------------------------------------------------------- */

static const char usage[] =
    "usage: herald-loadgen [options]\n"
    "Opens many WebSocket connections to Herald gateways (raw /ws or Socket.IO) or to\n"
    "any Socket.IO v4 server, drives one scenario and reports progress each second\n"
    "on stderr and a JSON summary at the end.\n"
    "Scenarios (--mode):\n"
    "  idle       ramp to --conns authenticated connections and hold them\n"
    "  presence   --conns watchers; --churn-users users connect/disconnect at --rate\n"
    "             changes/s; latency from each change to the watchers' status event\n"
    "  broadcast  --senders connections send live chat to all at --rate messages/s\n"
    "             (0: saturation, --window messages in flight per worker);\n"
    "             --burst N sends N messages back to back\n"
    "  dm         --conns/2 pairs of users (neighbours: different gateways) exchange\n"
    "             direct messages at --rate messages/s in all; latency and loss\n"
    "Options:\n"
    "  --mode M            idle|presence|broadcast|dm (default idle)\n"
    "  --proto P           ws (raw /ws JSON) or sio (Socket.IO over WebSocket; default ws)\n"
    "  --host A            server address (default 127.0.0.1)\n"
    "  --ports P,P,...     server ports; connections are spread round robin (required)\n"
    "  --secret S          HS256 secret for tokens (or env HERALD_JWT_SECRET)\n"
    "  --first-user N      first user id (default 1)\n"
    "  --conns N           main connections (default 1000)\n"
    "  --tabs N            connections per user (default 1): users = conns/tabs\n"
    "  --churn-users M     presence: users that come and go, ids after the main users\n"
    "  --procs N           worker processes (default: enough for 19000 each, at least 1)\n"
    "  --sources N         source addresses 127.0.0.2.. (default 32)\n"
    "  --ramp-rate R       new connections per second while ramping (0: as fast as possible)\n"
    "  --ramp-inflight N   handshakes in flight at once, all workers (default 512)\n"
    "  --settle S          seconds between the ramp and the measurement (default 2)\n"
    "  --duration S        seconds of measurement (default 10)\n"
    "  --drain S           seconds to wait for late deliveries (default 2)\n"
    "  --rate R            presence changes/s, broadcast or DM messages/s (see above)\n"
    "  --burst N           messages per burst (default 1)\n"
    "  --senders N         broadcast senders per worker (default 4)\n"
    "  --window N          saturation: messages in flight per worker (default 32)\n"
    "  --msg-size N        bytes of chat text (default 64)\n"
    "  --pid NAME=PID      a server process to measure (CPU time, RSS); repeatable\n"
    "  --label L           name in the progress lines and the JSON (default herald)\n"
    "  --json FILE         write the summary there (default: stdout)\n"
    "  --quiet             no progress lines\n"
    "  --help              this text\n";

static long parse_long(const char *name, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max) {
        fprintf(stderr, "herald-loadgen: --%s must be an integer in %ld..%ld\n", name, min, max);
        exit(2);
    }
    return n;
}

static double parse_real(const char *name, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || end == v || d < 0 || !isfinite(d)) {
        fprintf(stderr, "herald-loadgen: --%s must be a number >= 0\n", name);
        exit(2);
    }
    return d;
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"mode", 1, 0, 'm'},          {"proto", 1, 0, 'P'},   {"host", 1, 0, 'H'},
        {"ports", 1, 0, 'p'},         {"secret", 1, 0, 's'},  {"first-user", 1, 0, 'f'},
        {"conns", 1, 0, 'n'},         {"tabs", 1, 0, 't'},    {"churn-users", 1, 0, 'c'},
        {"procs", 1, 0, 'j'},         {"sources", 1, 0, 'S'}, {"ramp-rate", 1, 0, 'r'},
        {"ramp-inflight", 1, 0, 'i'}, {"settle", 1, 0, 'e'},  {"duration", 1, 0, 'd'},
        {"drain", 1, 0, 'D'},         {"rate", 1, 0, 'R'},    {"burst", 1, 0, 'b'},
        {"senders", 1, 0, 'x'},       {"window", 1, 0, 'w'},  {"msg-size", 1, 0, 'z'},
        {"pid", 1, 0, 'k'},           {"label", 1, 0, 'l'},   {"json", 1, 0, 'o'},
        {"quiet", 0, 0, 'q'},         {"help", 0, 0, 'h'},    {0, 0, 0, 0},
    };
    opt = (struct lg_opts){
        .mode = LG_IDLE,
        .proto = LG_RAW,
        .host = "127.0.0.1",
        .sources = 32,
        .first_user = 1,
        .conns = 1000,
        .tabs = 1,
        .ramp_inflight = 512,
        .settle = 2,
        .duration = 10,
        .drain = 2,
        .burst = 1,
        .senders = 4,
        .window = 32,
        .msg_size = 64,
        .label = "herald",
        .secret = getenv("HERALD_JWT_SECRET"),
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            for (opt.mode = 0; opt.mode < 4 && strcmp(optarg, mode_names[opt.mode]); opt.mode++)
                ;
            if (opt.mode == 4) {
                fprintf(stderr, "herald-loadgen: unknown --mode %s\n", optarg);
                exit(2);
            }
            break;
        case 'P':
            if (strcmp(optarg, "ws") && strcmp(optarg, "sio")) {
                fprintf(stderr, "herald-loadgen: --proto is ws or sio\n");
                exit(2);
            }
            opt.proto = strcmp(optarg, "ws") == 0 ? LG_RAW : LG_SIO;
            break;
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            for (char *s = optarg, *tok; (tok = strsep(&s, ","));)
                if (*tok && opt.nports < LG_MAX_PORTS)
                    opt.ports[opt.nports++] = (int)parse_long("ports", tok, 1, 65535);
            break;
        case 's':
            opt.secret = optarg;
            break;
        case 'f':
            opt.first_user = parse_long("first-user", optarg, 1, 1L << 50);
            break;
        case 'n':
            opt.conns = parse_long("conns", optarg, 0, LG_CONNS_PER_WORKER * LG_MAX_WORKERS);
            break;
        case 't':
            opt.tabs = parse_long("tabs", optarg, 1, 1000000);
            break;
        case 'c':
            opt.churn_users = parse_long("churn-users", optarg, 0, 100000);
            break;
        case 'j':
            opt.procs = (int)parse_long("procs", optarg, 1, LG_MAX_WORKERS);
            break;
        case 'S':
            opt.sources = (int)parse_long("sources", optarg, 1, 250);
            break;
        case 'r':
            opt.ramp_rate = parse_real("ramp-rate", optarg);
            break;
        case 'i':
            opt.ramp_inflight = parse_long("ramp-inflight", optarg, 1, 1000000);
            break;
        case 'e':
            opt.settle = parse_real("settle", optarg);
            break;
        case 'd':
            opt.duration = parse_real("duration", optarg);
            break;
        case 'D':
            opt.drain = parse_real("drain", optarg);
            break;
        case 'R':
            opt.rate = parse_real("rate", optarg);
            break;
        case 'b':
            opt.burst = parse_long("burst", optarg, 1, 100000);
            break;
        case 'x':
            opt.senders = parse_long("senders", optarg, 1, 1000000);
            break;
        case 'w':
            opt.window = parse_long("window", optarg, 1, 1000000);
            break;
        case 'z':
            opt.msg_size = parse_long("msg-size", optarg, 0, 1000);
            break;
        case 'k': {
            char *eq = strchr(optarg, '=');
            if (!eq || opt.npids == LG_MAX_PIDS || eq - optarg >= 32) {
                fprintf(stderr, "herald-loadgen: --pid NAME=PID (at most %d)\n", LG_MAX_PIDS);
                exit(2);
            }
            snprintf(opt.pids[opt.npids].name, sizeof(opt.pids[0].name), "%.*s", (int)(eq - optarg),
                     optarg);
            opt.pids[opt.npids++].pid = (pid_t)parse_long("pid", eq + 1, 1, 1L << 30);
            break;
        }
        case 'l':
            opt.label = optarg;
            break;
        case 'o':
            opt.json_path = optarg;
            break;
        case 'q':
            opt.quiet = true;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            fputs(usage, stderr);
            exit(2);
        }
    }
    if (optind < argc || opt.nports == 0 || !opt.secret || !*opt.secret) {
        fprintf(stderr, "herald-loadgen: %s\n",
                optind < argc     ? "unexpected argument"
                : opt.nports == 0 ? "--ports is required"
                                  : "no secret: --secret or HERALD_JWT_SECRET");
        exit(2);
    }
    if (opt.mode == LG_DM && opt.tabs != 1) {
        fprintf(stderr, "herald-loadgen: dm pairs users, so --tabs must be 1\n");
        exit(2);
    }
    if (opt.mode == LG_PRESENCE && opt.churn_users == 0)
        opt.churn_users = 100;
    if (opt.mode != LG_PRESENCE)
        opt.churn_users = 0;
    long need = (opt.conns + opt.churn_users + LG_CONNS_PER_WORKER - 1) / LG_CONNS_PER_WORKER;
    if (opt.procs == 0)
        opt.procs = need > 0 ? (int)need : 1;
    if (opt.procs < need) {
        fprintf(stderr, "herald-loadgen: %ld connections need --procs >= %ld\n",
                opt.conns + opt.churn_users, need);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    size_t size = sizeof(struct lg_shared) + (size_t)opt.churn_users * (sizeof(uint64_t) + 1) + 64;
    shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    shm->change_ns = (uint64_t *)(shm + 1);
    shm->change_online = (uint8_t *)(shm->change_ns + opt.churn_users);
    shm->phase = PH_RAMP;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* Every descriptor this process may have: 19 000 connections each. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < opt.npids; i++) {
        struct proc_sample ps;
        if (!proc_sample(opt.pids[i].pid, &ps)) {
            fprintf(stderr, "herald-loadgen: no process %s=%d\n", opt.pids[i].name,
                    (int)opt.pids[i].pid);
            return 2;
        }
    }
    struct snapshot s0, s_ramp, s_meas, s_end, s_drain, prev;
    /* Slices: main connections and churning users split evenly; DM pairs
     * stay within one worker (even slice boundaries). */
    for (int i = 0; i < opt.procs; i++) {
        long lo = opt.conns * i / opt.procs, hi = opt.conns * (i + 1) / opt.procs;
        if (opt.mode == LG_DM) {
            lo &= ~1L;
            hi = i == opt.procs - 1 ? opt.conns : hi & ~1L;
        }
        long clo = opt.churn_users * i / opt.procs, chi = opt.churn_users * (i + 1) / opt.procs;
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            shm->phase = PH_STOP;
            return 1;
        }
        if (pid == 0) {
            signal(SIGINT, SIG_IGN);
            _exit(worker_main(i, lo, hi, clo, chi));
        }
        workers[i] = pid;
    }
    uint64_t t0 = now_ns();
    snap(&s0);
    prev = s0;
    wait_phase("ramp", -1, ramp_finished, t0, &prev);
    snap(&s_ramp);
    shm->phase = PH_SETTLE;
    wait_phase("settle", opt.settle, NULL, t0, &prev);
    snap(&s_meas);
    shm->measure_start_ns = s_meas.t_ns;
    shm->phase = PH_MEASURE;
    wait_phase("measure", opt.duration, NULL, t0, &prev);
    snap(&s_end);
    shm->phase = PH_DRAIN;
    wait_phase("drain", opt.drain, NULL, t0, &prev);
    snap(&s_drain);
    progress((double)(now_ns() - t0) / 1e9, "done", &prev);
    shm->phase = PH_STOP;
    int failed = 0;
    for (int i = 0; i < opt.procs; i++) {
        int status;
        if (waitpid(workers[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    write_json(&s0, &s_ramp, &s_meas, &s_end, &s_drain);
    if (failed)
        fprintf(stderr, "herald-loadgen: %d worker(s) failed\n", failed);
    return failed || interrupted ? 1 : 0;
}
