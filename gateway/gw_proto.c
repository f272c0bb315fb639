/*
 * gw_proto.c - HTTP/1.1 and WebSocket on a connection: reads its socket,
 * parses the input in place into requests and frames and hands them to the
 * application (gw_net_handlers), answers requests, upgrades to WebSocket.
 *
 * Why a file of its own: this is everything a peer's bytes go through before
 * the application sees them, with the limits that apply on the way (head
 * and body caps, credentials before a large body, the message cap), so a
 * reviewer finds every rule about input in one place. It sends through
 * gw_conn.c and never reaches the listener or the timers (gw_net.c).
 *
 * Input is parsed from the per-loop scratch buffer when a read holds whole
 * requests or frames, and copied into the connection's own buffer only for
 * the partial rest (idle connections hold no buffer).
 */
#include "gw_net_internal.h"

#include "event.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void resume_pending(struct gw_conn *c);

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
        gw_conn_mark_dead(c);
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
    gw_conn_update_events(c);
    /* An asynchronous answer (from a Redis callback, never from inside
     * process()): requests pipelined behind it are parsed now. */
    if (was_busy && keep)
        resume_pending(c);
}

void gw_http_error(struct gw_conn *c, int status, const char *word, const char *message)
{
    char body[512];
    /* ev_refusal() drops what would need escaping, though both are our own
     * strings: a parser's reason text must never be able to break the JSON.
     * A message too long for the body is left out rather than cut. */
    size_t n = ev_refusal(body, sizeof(body), EV_REFUSAL_HTTP, word, message);
    if (n == 0)
        n = ev_refusal(body, sizeof(body), EV_REFUSAL_HTTP, word, "");
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
    c->last_seen_ms = c->last_ping_ms = (uint32_t)gw_now_ms();
    /* The first ping after between half the interval and all of it, by a
     * hash of the id: connections opened in a storm (a gateway's clients
     * coming back after a restart, a benchmark's ramp) ping spread over
     * the interval rather than at the storm's rate, and stay spread. */
    uint32_t half = (uint32_t)c->net->lim.ping_interval_ms / 2;
    if (half)
        c->last_ping_ms -= (uint32_t)((c->id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) % half;
    ws_parser_init(&c->wsp, true, c->net->lim.max_msg);
    c->msg_limit = GW_LIMIT_MESSAGE;
    gw_conn_update_events(c);
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

/* Hands a complete message to the application. */
static void deliver(struct gw_conn *c, uint8_t opcode, uint8_t *data, size_t len)
{
    c->net->n_msgs_in++;
    c->net->h.on_ws_message(c->net, c, opcode, data, len);
}

/* Appends a fragment to the open message; returns 0 or -1 (out of memory). */
static int msg_append(struct gw_conn *c, const uint8_t *p, size_t len)
{
    size_t have = c->msg ? c->msg->len : 0, old_cap = c->msg ? c->msg->cap : 0;
    size_t want = have + len;
    /* The parser refused anything over the message cap, a 32-bit value
     * (struct ws_parser), so the open message always fits a 32-bit length. */
    HERALD_ASSERT(want <= UINT32_MAX);
    if (want > old_cap || !c->msg) {
        size_t cap = old_cap ? old_cap : 256;
        while (cap < want)
            cap *= 2;
        if (cap > UINT32_MAX)
            cap = want;
        struct gw_buf *m = realloc(c->msg, sizeof(*m) + cap);
        if (!m)
            return -1;
        m->len = (uint32_t)have;
        m->cap = (uint32_t)cap;
        c->msg = m;
    }
    if (len)
        memcpy(c->msg->data + have, p, len);
    c->msg->len = (uint32_t)want;
    return 0;
}

static void msg_reset(struct gw_conn *c)
{
    free(c->msg);
    c->msg = NULL;
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
                gw_conn_mark_dead(c);
            else
                gw_conn_close(c, code, ws_status_str(st));
            return len;
        }
        off += used;
        switch (f.opcode) {
        case WS_OP_CLOSE:
            c->flags |= GW_CONN_CLOSE_RECV;
            if ((c->flags & GW_CONN_CLOSE_SENT) && !c->out_last) {
                /* Our close was answered: the handshake is complete. */
                gw_conn_mark_dead(c);
            } else if (c->flags & GW_CONN_CLOSE_SENT) {
                /* Both closes crossed in one read (a client that sends its
                 * last message and its close together): ours is still
                 * queued. Flush it, then half-close and linger. */
                c->flags |= GW_CONN_FINISH;
                gw_conn_mark_dirty(c);
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
                deliver(c, f.msg_opcode, c->msg->data, c->msg->len);
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
        return 0;
    }
    if (c->rbuf && buf == c->rbuf->data) {
        memmove(c->rbuf->data, c->rbuf->data + off, rest);
        c->rbuf->len = (uint32_t)rest;
        return 0;
    }
    /* Size the buffer for the whole frame when its length is known (bounded
     * by the message cap the parser already enforced, and the head limit:
     * both far below 4 GiB). */
    size_t cap = need > rest ? need : rest;
    if (cap < 256)
        cap = 256;
    HERALD_ASSERT(cap <= UINT32_MAX);
    struct gw_buf *b = malloc(sizeof(*b) + cap);
    if (!b)
        return -1;
    memcpy(b->data, buf + off, rest);
    b->len = (uint32_t)rest;
    b->cap = (uint32_t)cap;
    c->rbuf = b;
    return 0;
}

void gw_conn_read(struct gw_conn *c)
{
    struct gw_net *n = c->net;
    uint8_t *buf;
    size_t room;
    if (c->rbuf) {
        if (c->rbuf->len == c->rbuf->cap) {
            /* Limits (head size, message cap) bound this growth: the parsers
             * fail before a peer can make it large. */
            size_t cap = (size_t)c->rbuf->cap * 2;
            HERALD_ASSERT(cap <= UINT32_MAX);
            struct gw_buf *nb = realloc(c->rbuf, sizeof(*nb) + cap);
            if (!nb) {
                gw_conn_abort(c, "out of memory");
                return;
            }
            nb->cap = (uint32_t)cap;
            c->rbuf = nb;
        }
        buf = c->rbuf->data + c->rbuf->len;
        room = c->rbuf->cap - c->rbuf->len;
    } else {
        buf = n->scratch;
        room = GW_SCRATCH_SIZE;
    }
    ssize_t r = read(c->fd, buf, room);
    if (r == 0) {
        if ((c->flags & GW_CONN_WS) && !(c->flags & (GW_CONN_CLOSE_RECV | GW_CONN_CLOSE_SENT)))
            log_debug("conn %llu: peer closed without a close frame", (unsigned long long)c->id);
        gw_conn_mark_dead(c);
        return;
    }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            gw_conn_abort(c, strerror(errno));
        return;
    }
    int64_t now = gw_now_ms();
    c->last_seen_ms = (uint32_t)now;
    size_t len = (size_t)r, need = 0;
    uint8_t *base = buf;
    if (c->rbuf) {
        c->rbuf->len += (uint32_t)r;
        base = c->rbuf->data;
        len = c->rbuf->len;
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
        c->deadline_ms = now + n->lim.header_timeout_ms;
}

/* Called when the application answered an asynchronous request: input that
 * arrived meanwhile (pipelined requests) is processed now. */
static void resume_pending(struct gw_conn *c)
{
    if (!c->rbuf || (c->flags & (GW_CONN_BUSY | GW_CONN_DEAD | GW_CONN_IN_PROCESS)))
        return;
    size_t need = 0;
    size_t used = process(c, c->rbuf->data, c->rbuf->len, &need);
    if (!(c->flags & GW_CONN_DEAD) && keep_rest(c, c->rbuf->data, used, c->rbuf->len, need) != 0)
        gw_conn_abort(c, "out of memory");
}
