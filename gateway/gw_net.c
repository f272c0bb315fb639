/*
 * gw_net.c - see gw_net.h for the design.
 *
 * Expected sizes: tens of thousands of mostly idle connections per process;
 * the hot operations are "read a small frame and hand it up" and "queue one
 * shared frame to many connections". Everything here is single-threaded.
 */
#include "gw_net.h"

#include "log.h"

#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* One read(2) takes at most this much; a bigger frame is assembled in the
 * connection's own buffer over several reads. 64 KiB matches the default
 * socket receive buffer, so a read rarely leaves data behind. */
#define GW_SCRATCH_SIZE (64 * 1024)
/* How often on_sweep returns free heap pages to the system. malloc_trim
 * walks the free lists: 0.1 to 2 ms for a gateway holding 15 000
 * connections (measured with a uprobe), at most 0.2 % of a core. */
#define GW_TRIM_INTERVAL_MS 1000

/* writev() takes at most this many queue items at once (IOV_MAX is 1024;
 * 64 already amortises the syscall). */
#define GW_WRITEV_MAX 64
/* Connections accepted per listener wake-up, so a connect storm cannot
 * starve the connections already open. */
#define GW_ACCEPT_BATCH 64

static int conn_cmp(const struct gw_conn *a, const struct gw_conn *b)
{
    return a->id < b->id ? -1 : a->id > b->id;
}
RB_GENERATE_INTERNAL(gw_conn_tree, gw_conn, node, conn_cmp, static __attribute__((unused)))

const char *gw_limit_name(enum gw_limit l)
{
    static const char *const names[GW_LIMIT_COUNT] = {
        [GW_LIMIT_REQUEST_LINE] = "request_line",
        [GW_LIMIT_HEADER_BYTES] = "header_bytes",
        [GW_LIMIT_HEADER_COUNT] = "header_count",
        [GW_LIMIT_HEADER_TIMEOUT] = "header_timeout",
        [GW_LIMIT_BODY] = "body",
        [GW_LIMIT_BODY_UNAUTH] = "body_unauth",
        [GW_LIMIT_MESSAGE] = "message",
        [GW_LIMIT_PAYLOAD] = "payload",
        [GW_LIMIT_PAYLOAD_UNAUTH] = "payload_unauth",
        [GW_LIMIT_CONNS_PER_IP] = "conns_per_ip",
        [GW_LIMIT_CONN_RATE_PER_IP] = "conn_rate_per_ip",
        [GW_LIMIT_CHAT_RATE_PER_IP] = "chat_rate_per_ip",
        [GW_LIMIT_ORIGIN] = "origin",
        [GW_LIMIT_OUTPUT_CAP] = "output_cap",
    };
    return (unsigned)l < GW_LIMIT_COUNT && names[l] ? names[l] : "unknown";
}

int64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- shared buffers ---------------------------------------------------- */

struct gw_shared *gw_shared_new(size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    struct gw_shared *s = malloc(sizeof(*s) + len);
    if (!s)
        return NULL;
    s->refs = 1;
    s->len = (uint32_t)len;
    return s;
}

void gw_shared_unref(struct gw_shared *s)
{
    if (!s)
        return;
    /* A reference dropped twice would free a frame other queues still
     * point at. */
    HERALD_ASSERT(s->refs > 0);
    if (--s->refs == 0)
        free(s);
}

struct gw_shared *gw_ws_frame_new(uint8_t opcode, const void *payload, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_frame_header(hdr, opcode, true, len, NULL);
    struct gw_shared *s = gw_shared_new(hl + len);
    if (!s)
        return NULL;
    memcpy(s->data, hdr, hl);
    if (len)
        memcpy(s->data + hl, payload, len);
    return s;
}

/* ---- event interest ---------------------------------------------------- */

static void conn_on_io(evutil_socket_t fd, short what, void *arg);
static void resume_pending(struct gw_conn *c);

/* Registers exactly the events the connection needs now: read unless it is
 * dead or waiting on an asynchronous answer, write while output is queued. */
static void conn_update_events(struct gw_conn *c)
{
    short want = 0;
    if (!(c->flags & GW_CONN_DEAD)) {
        if (!(c->flags & GW_CONN_BUSY))
            want |= EV_READ;
        if (c->out_head)
            want |= EV_WRITE;
    }
    if (want == c->ev_flags)
        return;
    if (c->ev_flags)
        event_del(&c->ev);
    c->ev_flags = want;
    if (want) {
        event_assign(&c->ev, c->net->base, c->fd, want | EV_PERSIST, conn_on_io, c);
        event_add(&c->ev, NULL);
    }
}

static void mark_dead(struct gw_conn *c)
{
    if (c->flags & GW_CONN_DEAD)
        return;
    c->flags |= GW_CONN_DEAD;
    conn_update_events(c);
    c->next_dead = c->net->dead;
    c->net->dead = c;
    event_active(c->net->reap_ev, EV_TIMEOUT, 0);
}

void gw_conn_abort(struct gw_conn *c, const char *why)
{
    if (!(c->flags & GW_CONN_DEAD))
        log_debug("conn %llu: dropped: %s", (unsigned long long)c->id, why);
    mark_dead(c);
}

/* ---- output ------------------------------------------------------------ */

static void mark_dirty(struct gw_conn *c)
{
    if (c->flags & (GW_CONN_DIRTY | GW_CONN_DEAD))
        return;
    c->flags |= GW_CONN_DIRTY;
    c->next_dirty = c->net->dirty;
    c->net->dirty = c;
    event_active(c->net->flush_ev, EV_TIMEOUT, 0);
}

void gw_conn_send_shared(struct gw_conn *c, struct gw_shared *s)
{
    if (!s || (c->flags & (GW_CONN_DEAD | GW_CONN_LINGER)))
        return;
    /* Nothing may follow our close frame (RFC 6455 §5.5.1). */
    if ((c->flags & GW_CONN_CLOSE_SENT) && (c->flags & GW_CONN_WS))
        return;
    if ((size_t)c->out_bytes + s->len > c->net->lim.out_cap && !(c->flags & GW_CONN_CUT)) {
        /* A consumer that does not read cannot make us grow without bound;
         * everyone else's fan-out goes on. A WebSocket gets close 1013 past
         * the cap (a few bytes: one that catches up learns why), and is
         * dropped when it has not drained within the close timeout. */
        c->net->n_slow_cut++;
        c->net->n_limit[GW_LIMIT_OUTPUT_CAP]++;
        c->flags |= GW_CONN_CUT;
        log_warn_rl(5, "conn %llu: output queue over %zu bytes, closing slow consumer",
                    (unsigned long long)c->id, c->net->lim.out_cap);
        if (!(c->flags & GW_CONN_WS) || (c->flags & GW_CONN_CLOSE_SENT)) {
            mark_dead(c);
            return;
        }
        gw_conn_close(c, 1013, "too slow: output queue full");
        c->deadline_ms = gw_now_ms() + c->net->lim.close_timeout_ms;
        return;
    }
    struct gw_out *o = malloc(sizeof(*o));
    if (!o) {
        mark_dead(c);
        return;
    }
    s->refs++;
    o->buf = s;
    o->off = 0;
    o->next = NULL;
    *c->out_tail = o;
    c->out_tail = &o->next;
    c->out_bytes += s->len;
    c->net->n_frames_out++;
    mark_dirty(c);
}

void gw_conn_send(struct gw_conn *c, const void *data, size_t len)
{
    struct gw_shared *s = gw_shared_new(len);
    if (!s) {
        mark_dead(c);
        return;
    }
    memcpy(s->data, data, len);
    gw_conn_send_shared(c, s);
    gw_shared_unref(s);
}

void gw_ws_send_text(struct gw_conn *c, const char *text, size_t len)
{
    struct gw_shared *s = gw_ws_frame_new(WS_OP_TEXT, text, len);
    gw_conn_send_shared(c, s);
    gw_shared_unref(s);
}

void gw_out_list_free(struct gw_out *o)
{
    while (o) {
        struct gw_out *next = o->next;
        gw_shared_unref(o->buf);
        free(o);
        o = next;
    }
}

static void free_queue(struct gw_conn *c)
{
    gw_out_list_free(c->out_head);
    c->out_head = NULL;
    c->out_tail = &c->out_head;
    c->out_bytes = 0;
}

/* The queue drained after a final answer: half-close our side and wait
 * (briefly) for the peer to close, so that unread input does not make the
 * kernel reset the connection before our last bytes arrive. */
static void start_linger(struct gw_conn *c)
{
    c->flags |= GW_CONN_LINGER;
    c->flags &= ~(unsigned)GW_CONN_BUSY;
    shutdown(c->fd, SHUT_WR);
    c->deadline_ms = gw_now_ms() + c->net->lim.close_timeout_ms;
    conn_update_events(c);
}

/* Writes as much of the queue as the socket takes. */
static void conn_flush(struct gw_conn *c)
{
    while (c->out_head && !(c->flags & GW_CONN_DEAD)) {
        struct iovec iov[GW_WRITEV_MAX];
        int n = 0;
        for (struct gw_out *o = c->out_head; o && n < GW_WRITEV_MAX; o = o->next, n++) {
            iov[n].iov_base = o->buf->data + o->off;
            iov[n].iov_len = o->buf->len - o->off;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            gw_conn_abort(c, strerror(errno));
            return;
        }
        size_t left = (size_t)w;
        c->out_bytes -= (uint32_t)w;
        while (left > 0 && c->out_head) {
            struct gw_out *o = c->out_head;
            size_t rem = o->buf->len - o->off;
            if (left < rem) {
                o->off += (uint32_t)left;
                break;
            }
            left -= rem;
            c->out_head = o->next;
            gw_shared_unref(o->buf);
            free(o);
        }
        if (!c->out_head)
            c->out_tail = &c->out_head;
        if ((size_t)w < iov[0].iov_len && c->out_head)
            break; /* short write: the socket buffer is full */
    }
    if (!c->out_head && (c->flags & GW_CONN_FINISH) && !(c->flags & GW_CONN_LINGER))
        start_linger(c);
    conn_update_events(c);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct gw_net *n = arg;
    (void)fd;
    (void)what;
    struct gw_conn *c = n->dirty;
    n->dirty = NULL;
    while (c) {
        struct gw_conn *next = c->next_dirty;
        c->flags &= ~(unsigned)GW_CONN_DIRTY;
        if (!(c->flags & GW_CONN_DEAD))
            conn_flush(c);
        c = next;
    }
}

/* ---- HTTP -------------------------------------------------------------- */

void gw_http_respond(struct gw_conn *c, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len, bool keep)
{
    char head[1024];
    if (c->flags & (GW_CONN_DEAD | GW_CONN_WS))
        return;
    bool was_busy = (c->flags & GW_CONN_BUSY) != 0;
    keep = keep && (c->flags & GW_CONN_KEEPALIVE);
    int hl =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%sConnection: %s\r\n\r\n", status,
                 http_status_text(status), body_len, content_type ? "Content-Type: " : "",
                 content_type ? content_type : "", content_type ? "\r\n" : "",
                 extra_headers ? extra_headers : "", keep ? "keep-alive" : "close");
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        gw_conn_abort(c, "response head too long");
        return;
    }
    struct gw_shared *s = gw_shared_new((size_t)hl + body_len);
    if (!s) {
        mark_dead(c);
        return;
    }
    memcpy(s->data, head, (size_t)hl);
    if (body_len)
        memcpy(s->data + hl, body, body_len);
    gw_conn_send_shared(c, s);
    gw_shared_unref(s);
    c->flags &= ~(unsigned)GW_CONN_BUSY;
    if (!keep) {
        c->flags |= GW_CONN_FINISH;
    } else {
        c->deadline_ms = gw_now_ms() + c->net->lim.keepalive_ms;
    }
    conn_update_events(c);
    /* An asynchronous answer (from a Redis callback, never from inside
     * process()): requests pipelined behind it are parsed now. */
    if (was_busy && keep)
        resume_pending(c);
}

void gw_http_error(struct gw_conn *c, int status, const char *word, const char *message)
{
    char body[512];
    size_t n = 0;
    /* Escaped, though both are our own strings: a parser's reason text must
     * never be able to break the JSON. */
    n += (size_t)snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"", word);
    for (const char *p = message; *p && n < sizeof(body) - 4; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            body[n++] = *p;
    body[n++] = '"';
    body[n++] = '}';
    /* After an error the rest of the input cannot be trusted to be framed
     * correctly: close. */
    gw_http_respond(c, status, "application/json", NULL, body, n, false);
}

void gw_ws_accept(struct gw_conn *c, const char *key, size_t key_len, const char *extra_headers)
{
    char accept[29], head[512];
    if (ws_accept_key(key, key_len, accept) != 0) {
        gw_http_error(c, 500, "internal", "handshake failed");
        return;
    }
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                      accept, extra_headers ? extra_headers : "");
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        gw_conn_abort(c, "handshake head too long");
        return;
    }
    gw_conn_send(c, head, (size_t)hl);
    c->flags |= GW_CONN_WS;
    c->flags &= ~(unsigned)GW_CONN_BUSY;
    c->deadline_ms = 0;
    c->last_seen_ms = c->last_ping_ms = gw_now_ms();
    ws_parser_init(&c->wsp, true, c->net->lim.max_msg);
    c->msg_limit = GW_LIMIT_MESSAGE;
    conn_update_events(c);
}

/* The limit behind a parse failure, or GW_LIMIT_COUNT when it is no limit
 * (a malformed request). */
static enum gw_limit parse_limit(int status, const char *reason)
{
    switch (status) {
    case 414:
        return GW_LIMIT_REQUEST_LINE;
    case 431:
        return reason == http_reason_too_many_headers ? GW_LIMIT_HEADER_COUNT
                                                      : GW_LIMIT_HEADER_BYTES;
    case 413:
        return GW_LIMIT_BODY;
    default:
        return GW_LIMIT_COUNT;
    }
}

/* Parses HTTP requests from buf. Returns bytes consumed; stops early when the
 * connection upgraded (the rest are frames), went busy or died. */
static size_t process_http(struct gw_conn *c, uint8_t *buf, size_t len, size_t *need)
{
    size_t off = 0;
    while (off < len && !(c->flags & (GW_CONN_WS | GW_CONN_BUSY | GW_CONN_DEAD | GW_CONN_FINISH |
                                      GW_CONN_LINGER))) {
        struct http_request req;
        int status = 0;
        const char *reason = NULL;
        int hl = http_parse_request((const char *)buf + off, len - off, &c->net->lim.http, &req,
                                    &status, &reason);
        if (hl == 0) {
            *need = len - off + 1;
            break;
        }
        if (hl < 0) {
            log_warn_rl(5, "conn %llu: bad HTTP request: %d %s", (unsigned long long)c->id, status,
                        reason ? reason : "");
            enum gw_limit l = parse_limit(status, reason);
            if (l != GW_LIMIT_COUNT)
                c->net->n_limit[l]++;
            const char *word = status == 431 || status == 414 || status == 413 ? "too-large"
                               : status == 411                                 ? "length-required"
                                                                               : "bad-request";
            gw_http_error(c, status, word, reason ? reason : http_status_text(status));
            return len; /* discard the rest */
        }
        /* Credentials first, then the body: a peer without them cannot
         * make us buffer more than max_body_unauth (the buffer for the whole
         * request is allocated as soon as its size is known). */
        if (req.content_length > c->net->lim.max_body_unauth && c->net->h.on_large_body &&
            !(c->flags & GW_CONN_BODY_OK)) {
            if (!c->net->h.on_large_body(c->net, c, &req))
                return len; /* answered; discard the rest */
            c->flags |= GW_CONN_BODY_OK;
        }
        size_t total = (size_t)hl + req.content_length;
        if (len - off < total) {
            *need = total;
            break;
        }
        c->flags = (c->flags & ~(unsigned)GW_CONN_BODY_OK) | GW_CONN_SERVED;
        c->deadline_ms = gw_now_ms() + c->net->lim.keepalive_ms;
        if (req.keep_alive)
            c->flags |= GW_CONN_KEEPALIVE;
        else
            c->flags &= ~(unsigned)GW_CONN_KEEPALIVE;
        c->net->h.on_request(c->net, c, &req, buf + off + hl, req.content_length);
        off += total;
    }
    return off;
}

/* ---- WebSocket --------------------------------------------------------- */

static void send_close_frame(struct gw_conn *c, uint16_t code, const char *reason)
{
    uint8_t payload[125];
    size_t pl = 0;
    /* 1005 means "no code": answer with an empty close payload (§7.1.5). */
    if (code != 1005)
        pl = ws_close_payload(payload, code, reason);
    struct gw_shared *s = gw_ws_frame_new(WS_OP_CLOSE, payload, pl);
    gw_conn_send_shared(c, s);
    gw_shared_unref(s);
    c->flags |= GW_CONN_CLOSE_SENT;
}

void gw_conn_close(struct gw_conn *c, uint16_t code, const char *reason)
{
    if (c->flags & (GW_CONN_DEAD | GW_CONN_LINGER))
        return;
    if (!(c->flags & GW_CONN_WS)) {
        if (c->out_head) {
            c->flags |= GW_CONN_FINISH;
            mark_dirty(c);
        } else {
            mark_dead(c);
        }
        return;
    }
    if (!(c->flags & GW_CONN_CLOSE_SENT)) {
        log_debug("conn %llu: closing with %u %s", (unsigned long long)c->id, code,
                  reason ? reason : "");
        send_close_frame(c, code, reason);
    }
    /* RFC 6455 §7.1.1: the server closes TCP first, once the close frame is
     * out; we then wait briefly for the peer's FIN. */
    c->flags |= GW_CONN_FINISH;
    mark_dirty(c);
}

/* Hands a complete message to the application. */
static void deliver(struct gw_conn *c, uint8_t opcode, uint8_t *data, size_t len)
{
    c->net->n_msgs_in++;
    c->net->h.on_ws_message(c->net, c, opcode, data, len);
}

/* Appends a fragment to the open message; returns 0 or -1 (out of memory). */
static int msg_append(struct gw_conn *c, const uint8_t *p, size_t len)
{
    size_t want = (size_t)c->msg_len + len;
    if (want > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 256;
        while (cap < want)
            cap *= 2;
        uint8_t *m = realloc(c->msg, cap);
        if (!m)
            return -1;
        c->msg = m;
        c->msg_cap = (uint32_t)cap;
    }
    if (len)
        memcpy(c->msg + c->msg_len, p, len);
    c->msg_len = (uint32_t)want;
    return 0;
}

static void msg_reset(struct gw_conn *c)
{
    free(c->msg);
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
}

/* Parses frames from buf; returns bytes consumed. */
static size_t process_ws(struct gw_conn *c, uint8_t *buf, size_t len, size_t *need)
{
    size_t off = 0;
    while (off < len && !(c->flags & (GW_CONN_DEAD | GW_CONN_LINGER))) {
        struct ws_frame f;
        size_t used = 0, more = 0;
        enum ws_status st = ws_parse(&c->wsp, buf + off, len - off, &used, &more, &f);
        if (st == WS_NEED_MORE) {
            *need = more;
            break;
        }
        if (st != WS_OK) {
            uint16_t code = ws_status_close_code(st);
            log_warn_rl(5, "conn %llu: protocol error: %s, closing with %u",
                        (unsigned long long)c->id, ws_status_str(st), code);
            if (st == WS_ERR_TOO_BIG)
                c->net->n_limit[c->msg_limit]++;
            if (c->flags & GW_CONN_CLOSE_SENT)
                mark_dead(c);
            else
                gw_conn_close(c, code, ws_status_str(st));
            return len;
        }
        off += used;
        switch (f.opcode) {
        case WS_OP_CLOSE:
            c->flags |= GW_CONN_CLOSE_RECV;
            if ((c->flags & GW_CONN_CLOSE_SENT) && !c->out_head) {
                /* Our close was answered: the handshake is complete. */
                mark_dead(c);
            } else if (c->flags & GW_CONN_CLOSE_SENT) {
                /* Both closes crossed in one read (a client that sends its
                 * last message and its close together): ours is still
                 * queued. Flush it, then half-close and linger. */
                c->flags |= GW_CONN_FINISH;
                mark_dirty(c);
            } else {
                /* Echo the peer's code (§5.5.1). */
                gw_conn_close(c, f.close_code, "");
            }
            return len;
        case WS_OP_PING: {
            /* §5.5.3: answer with the same application data. */
            struct gw_shared *s = gw_ws_frame_new(WS_OP_PONG, f.payload, f.len);
            gw_conn_send_shared(c, s);
            gw_shared_unref(s);
            break;
        }
        case WS_OP_PONG:
            break; /* any input already counts as a sign of life */
        default:
            if (c->flags & GW_CONN_CLOSE_SENT)
                break; /* closing: data is discarded (§1.4) */
            if (f.fin && f.opcode != WS_OP_CONT) {
                deliver(c, f.msg_opcode, f.payload, f.len); /* zero copy */
                break;
            }
            if (msg_append(c, f.payload, f.len) != 0) {
                gw_conn_abort(c, "out of memory");
                return len;
            }
            if (f.msg_end) {
                deliver(c, f.msg_opcode, c->msg, c->msg_len);
                msg_reset(c);
            }
            break;
        }
    }
    return off;
}

/* ---- input ------------------------------------------------------------- */

static size_t process(struct gw_conn *c, uint8_t *buf, size_t len, size_t *need)
{
    size_t off = 0;
    *need = 0;
    if (c->flags & GW_CONN_LINGER)
        return len; /* discard */
    /* A handler may answer this very connection synchronously (a poll with
     * packets waiting); the answer must not start a second parse of the
     * buffer we are walking: resume_pending() checks this flag. */
    c->flags |= GW_CONN_IN_PROCESS;
    if (!(c->flags & GW_CONN_WS))
        off = process_http(c, buf, len, need);
    if ((c->flags & GW_CONN_WS) && off < len && !(c->flags & GW_CONN_DEAD))
        off += process_ws(c, buf + off, len - off, need);
    c->flags &= ~(unsigned)GW_CONN_IN_PROCESS;
    return off;
}

/* Keeps buf[off..len) as the connection's pending input. buf is either the
 * scratch buffer or c->rbuf. Returns 0 or -1 (out of memory). */
static int keep_rest(struct gw_conn *c, uint8_t *buf, size_t off, size_t len, size_t need)
{
    size_t rest = len - off;
    if (rest == 0) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rlen = c->rcap = 0;
        return 0;
    }
    if (buf == c->rbuf) {
        memmove(c->rbuf, c->rbuf + off, rest);
        c->rlen = (uint32_t)rest;
        return 0;
    }
    /* Size the buffer for the whole frame when its length is known (bounded
     * by the message cap the parser already enforced). */
    size_t cap = need > rest ? need : rest;
    if (cap < 256)
        cap = 256;
    c->rbuf = malloc(cap);
    if (!c->rbuf)
        return -1;
    memcpy(c->rbuf, buf + off, rest);
    c->rlen = (uint32_t)rest;
    c->rcap = (uint32_t)cap;
    return 0;
}

static void conn_read(struct gw_conn *c)
{
    struct gw_net *n = c->net;
    uint8_t *buf;
    size_t room;
    if (c->rbuf) {
        if (c->rlen == c->rcap) {
            /* Limits (head size, message cap) bound this growth: the parsers
             * fail before a peer can make it large. */
            size_t cap = (size_t)c->rcap * 2;
            uint8_t *nb = realloc(c->rbuf, cap);
            if (!nb) {
                gw_conn_abort(c, "out of memory");
                return;
            }
            c->rbuf = nb;
            c->rcap = (uint32_t)cap;
        }
        buf = c->rbuf + c->rlen;
        room = c->rcap - c->rlen;
    } else {
        buf = n->scratch;
        room = GW_SCRATCH_SIZE;
    }
    ssize_t r = read(c->fd, buf, room);
    if (r == 0) {
        if ((c->flags & GW_CONN_WS) && !(c->flags & (GW_CONN_CLOSE_RECV | GW_CONN_CLOSE_SENT)))
            log_debug("conn %llu: peer closed without a close frame", (unsigned long long)c->id);
        mark_dead(c);
        return;
    }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            gw_conn_abort(c, strerror(errno));
        return;
    }
    c->last_seen_ms = gw_now_ms();
    size_t len = (size_t)r, need = 0;
    uint8_t *base = buf;
    if (c->rbuf) {
        c->rlen += (uint32_t)r;
        base = c->rbuf;
        len = c->rlen;
    }
    bool held = c->rbuf != NULL;
    size_t used = process(c, base, len, &need);
    if (c->flags & GW_CONN_DEAD)
        return;
    if (keep_rest(c, base, used, len, need) != 0) {
        gw_conn_abort(c, "out of memory");
        return;
    }
    /* A new request started on a kept-alive connection and is incomplete:
     * it gets the header deadline too, not what is left of the idle one
     * (else one quick request would buy a slowloris a minute). */
    if (!held && c->rbuf && (c->flags & GW_CONN_SERVED) &&
        !(c->flags & (GW_CONN_WS | GW_CONN_BUSY | GW_CONN_FINISH | GW_CONN_LINGER)))
        c->deadline_ms = c->last_seen_ms + n->lim.header_timeout_ms;
}

static void conn_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    (void)fd;
    if ((what & EV_WRITE) && !(c->flags & GW_CONN_DEAD))
        conn_flush(c);
    if ((what & EV_READ) && !(c->flags & GW_CONN_DEAD))
        conn_read(c);
}

/* Called when the application answered an asynchronous request: input that
 * arrived meanwhile (pipelined requests) is processed now. */
static void resume_pending(struct gw_conn *c)
{
    if (!c->rbuf || (c->flags & (GW_CONN_BUSY | GW_CONN_DEAD | GW_CONN_IN_PROCESS)))
        return;
    size_t need = 0;
    size_t used = process(c, c->rbuf, c->rlen, &need);
    if (!(c->flags & GW_CONN_DEAD) && keep_rest(c, c->rbuf, used, c->rlen, need) != 0)
        gw_conn_abort(c, "out of memory");
}

/* ---- reaping, sweeping, accepting --------------------------------------- */

static void conn_free(struct gw_conn *c)
{
    struct gw_net *n = c->net;
    if (n->h.on_closed)
        n->h.on_closed(n, c);
    if (c->ev_flags)
        event_del(&c->ev);
    TAILQ_REMOVE(&n->conns, c, link);
    RB_REMOVE(gw_conn_tree, &n->by_id, c);
    HERALD_ASSERT(n->nconns > 0);
    n->nconns--;
    gw_ip_release(&n->ips, c->ip);
    free_queue(c);
    free(c->rbuf);
    free(c->msg);
    close(c->fd);
    free(c);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct gw_net *n = arg;
    (void)fd;
    (void)what;
    while (n->dead) {
        struct gw_conn *c = n->dead;
        n->dead = c->next_dead;
        /* It may still sit on the flush list: unlink it there first. */
        if (c->flags & GW_CONN_DIRTY) {
            for (struct gw_conn **pp = &n->dirty; *pp; pp = &(*pp)->next_dirty)
                if (*pp == c) {
                    *pp = c->next_dirty;
                    break;
                }
        }
        conn_free(c);
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct gw_net *n = arg;
    (void)fd;
    (void)what;
    int64_t now = gw_now_ms();
    gw_ip_prune(&n->ips, now);
    /* Hand the pages freed after a burst (fan-out queues, a ramp of
     * handshakes) back to the system: glibc trims only the top of the heap
     * by itself. Measured: a tenth of a gateway's RSS after a ramp of
     * 5 000 connections with presence fan-out. */
    if (now - n->last_trim_ms >= GW_TRIM_INTERVAL_MS) {
        n->last_trim_ms = now;
        malloc_trim(0);
    }
    struct gw_conn *c;
    TAILQ_FOREACH(c, &n->conns, link)
    {
        if (c->flags & GW_CONN_DEAD)
            continue;
        if (c->deadline_ms && now >= c->deadline_ms && !(c->flags & GW_CONN_BUSY) &&
            (!(c->flags & GW_CONN_WS) || (c->flags & (GW_CONN_LINGER | GW_CONN_CUT)))) {
            /* Slowloris, idle keep-alive, or a peer that never finished the
             * close handshake. Only the first is a limit hit: a head that
             * was started (or never sent) and not completed in time. */
            if (!(c->flags & (GW_CONN_WS | GW_CONN_LINGER | GW_CONN_FINISH)) &&
                (c->rbuf || !(c->flags & GW_CONN_SERVED))) {
                n->n_limit[GW_LIMIT_HEADER_TIMEOUT]++;
                log_warn_rl(5, "conn %llu: request head not complete within %ld ms, dropping",
                            (unsigned long long)c->id, n->lim.header_timeout_ms);
            }
            gw_conn_abort(c, "deadline passed");
            continue;
        }
        /* Engine.IO connections have their own heartbeat (gw_eio). */
        if ((c->flags & GW_CONN_WS) && !(c->flags & GW_CONN_LINGER) && c->kind != GW_KIND_SIO) {
            if (now - c->last_seen_ms >= n->lim.ping_timeout_ms) {
                log_info("conn %llu: no sign of life for %ld ms, dropping",
                         (unsigned long long)c->id, (long)(now - c->last_seen_ms));
                gw_conn_abort(c, "ping timeout");
                continue;
            }
            if (now - c->last_ping_ms >= n->lim.ping_interval_ms &&
                !(c->flags & GW_CONN_CLOSE_SENT)) {
                static const uint8_t ping[2] = {0x89, 0x00};
                gw_conn_send(c, ping, sizeof(ping));
                c->last_ping_ms = now;
            }
        }
        if (n->h.on_tick)
            n->h.on_tick(n, c, now);
    }
}

/* Refuses a connection before reading it: one best-effort write of a 429
 * (the socket buffer of a new connection always takes it), then close. */
static void refuse_429(struct gw_net *n, int fd, enum gw_ip_verdict v)
{
    const char *why = gw_ip_verdict_str(v);
    char resp[320], body[160];
    int bl = snprintf(body, sizeof(body), "{\"error\":\"rate-limited\",\"message\":\"%s\"}", why);
    int rl = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
                      bl, body);
    ssize_t w = send(fd, resp, (size_t)rl, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    n->n_ip_refused++;
    n->n_limit[v == GW_IP_TOO_MANY ? GW_LIMIT_CONNS_PER_IP : GW_LIMIT_CONN_RATE_PER_IP]++;
    log_warn_rl(5, "refused a connection: %s", why);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct gw_net *n = arg;
    (void)what;
    for (int i = 0; i < GW_ACCEPT_BATCH && !n->draining; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_warn_rl(1, "accept: %s", strerror(errno));
            return;
        }
        enum gw_ip_verdict v;
        struct gw_ip *ip = gw_ip_admit(&n->ips, &ss, gw_now_ms(), &v);
        if (!ip) {
            if (v != GW_IP_NO_MEMORY)
                refuse_429(n, fd, v);
            close(fd);
            continue;
        }
        struct gw_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            gw_ip_release(&n->ips, ip);
            close(fd);
            return;
        }
        c->ip = ip;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->net = n;
        c->fd = fd;
        c->id = ++n->next_id;
        c->out_tail = &c->out_head;
        c->last_seen_ms = gw_now_ms();
        c->deadline_ms = c->last_seen_ms + n->lim.header_timeout_ms;
        TAILQ_INSERT_TAIL(&n->conns, c, link);
        RB_INSERT(gw_conn_tree, &n->by_id, c);
        n->nconns++;
        n->n_accepted++;
        conn_update_events(c);
    }
}

struct gw_conn *gw_conn_find(struct gw_net *n, uint64_t id)
{
    struct gw_conn key;
    key.id = id;
    struct gw_conn *c = RB_FIND(gw_conn_tree, &n->by_id, &key);
    return c && !(c->flags & GW_CONN_DEAD) ? c : NULL;
}

static int listen_on(const char *host, int port, int *bound_port)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        log_error("listen %s:%d: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    /* 4096: a connect burst from a load balancer should queue, not fail. */
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        log_error("listen %s:%d: %s", host, port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int gw_net_init(struct gw_net *n, struct event_base *base, const struct gw_limits *lim,
                const struct gw_net_handlers *h, const char *host, int port, int *bound_port)
{
    memset(n, 0, sizeof(*n));
    n->base = base;
    n->lim = *lim;
    n->h = *h;
    n->listen_fd = -1;
    TAILQ_INIT(&n->conns);
    RB_INIT(&n->by_id);
    gw_ip_init(&n->ips, lim->conns_per_ip, lim->conn_rate_per_ip);
    gw_ip_set_chat(&n->ips, lim->chat_rate_per_ip, lim->chat_burst_per_ip);
    /* Ids stay unique across restarts of a gateway under the same id, so a
     * stale entry in Redis can never name a new connection. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    n->next_id = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) * 1000;
    n->scratch = malloc(GW_SCRATCH_SIZE);
    n->flush_ev = event_new(base, -1, 0, on_flush, n);
    n->reap_ev = event_new(base, -1, 0, on_reap, n);
    n->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, n);
    if (!n->scratch || !n->flush_ev || !n->reap_ev || !n->sweep_ev)
        return -1;
    /* The sweep must be fine enough for the shortest timer it serves: a
     * fifth of the ping interval, between 10 ms and 1 s. */
    n->tick_ms = lim->ping_interval_ms / 5;
    if (n->tick_ms < 10)
        n->tick_ms = 10;
    if (n->tick_ms > 1000)
        n->tick_ms = 1000;
    struct timeval tv = {n->tick_ms / 1000, (n->tick_ms % 1000) * 1000};
    event_add(n->sweep_ev, &tv);
    if (port >= 0) {
        n->listen_fd = listen_on(host, port, bound_port);
        if (n->listen_fd < 0)
            return -1;
        n->listen_ev = event_new(base, n->listen_fd, EV_READ | EV_PERSIST, on_accept, n);
        if (!n->listen_ev)
            return -1;
        event_add(n->listen_ev, NULL);
    }
    return 0;
}

void gw_net_drain(struct gw_net *n, uint16_t code, const char *reason)
{
    n->draining = true;
    if (n->listen_ev) {
        event_free(n->listen_ev);
        n->listen_ev = NULL;
    }
    if (n->listen_fd >= 0) {
        close(n->listen_fd);
        n->listen_fd = -1;
    }
    struct gw_conn *c;
    TAILQ_FOREACH(c, &n->conns, link)
    {
        if (c->flags & GW_CONN_WS)
            gw_conn_close(c, code, reason);
        else if (!(c->flags & GW_CONN_BUSY))
            gw_conn_close(c, code, reason);
    }
}

void gw_net_free(struct gw_net *n)
{
    struct gw_conn *c, *tmp;
    TAILQ_FOREACH_SAFE(c, &n->conns, link, tmp)
    {
        c->flags |= GW_CONN_DEAD;
        conn_free(c);
    }
    n->dead = n->dirty = NULL;
    gw_ip_free(&n->ips);
    if (n->listen_ev)
        event_free(n->listen_ev);
    if (n->listen_fd >= 0)
        close(n->listen_fd);
    if (n->flush_ev)
        event_free(n->flush_ev);
    if (n->reap_ev)
        event_free(n->reap_ev);
    if (n->sweep_ev)
        event_free(n->sweep_ev);
    free(n->scratch);
    memset(n, 0, sizeof(*n));
    n->listen_fd = -1;
}
