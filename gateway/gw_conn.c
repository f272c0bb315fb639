/*
 * gw_conn.c - the socket side of one client connection: which events it
 * waits for, its output queue and how that queue reaches the socket, and
 * how it ends (close handshake, abort, the mark for the reap point).
 *
 * Why a file of its own: everything else in the connection layer (the
 * parsers in gw_proto.c, the listener and timers in gw_net.c) sends and
 * closes through these functions, and nothing here calls back up into
 * them. Readiness for reading is handed up through net->on_readable, set
 * by gw_net_init(), so the output side never names the input side.
 *
 * Hot path: "queue one shared frame to many connections" is one malloc of a
 * queue item and a reference count; writes are coalesced into one writev()
 * per dirty connection per loop iteration (on_flush).
 */
#include "gw_net_internal.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* writev() takes at most this many queue items at once (IOV_MAX is 1024;
 * 64 already amortises the syscall). */
#define GW_WRITEV_MAX 64

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

static void conn_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    (void)fd;
    if ((what & EV_WRITE) && !(c->flags & GW_CONN_DEAD))
        gw_conn_flush(c);
    if ((what & EV_READ) && !(c->flags & GW_CONN_DEAD))
        c->net->on_readable(c);
}

/* Registers exactly the events the connection needs now: read unless it is
 * dead or waiting on an asynchronous answer, write while output is queued. */
void gw_conn_update_events(struct gw_conn *c)
{
    short want = 0;
    if (!(c->flags & GW_CONN_DEAD)) {
        if (!(c->flags & GW_CONN_BUSY))
            want |= EV_READ;
        if (c->out_last)
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

void gw_conn_mark_dead(struct gw_conn *c)
{
    if (c->flags & GW_CONN_DEAD)
        return;
    c->flags |= GW_CONN_DEAD;
    gw_conn_update_events(c);
    /* Off the flush list first: the link is the same field (struct
     * gw_conn), and a dead connection is never flushed. */
    if (c->flags & GW_CONN_DIRTY) {
        struct gw_conn **pp = &c->net->dirty;
        while (*pp && *pp != c)
            pp = &(*pp)->u.next_dirty;
        HERALD_ASSERT(*pp == c); /* every DIRTY connection is on the list */
        *pp = c->u.next_dirty;
        c->flags &= ~(unsigned)GW_CONN_DIRTY;
    }
    c->u.next_dead = c->net->dead;
    c->net->dead = c;
    event_active(c->net->reap_ev, EV_TIMEOUT, 0);
}

void gw_conn_abort(struct gw_conn *c, const char *why)
{
    if (!(c->flags & GW_CONN_DEAD))
        log_debug("conn %llu: dropped: %s", (unsigned long long)c->id, why);
    gw_conn_mark_dead(c);
}

/* ---- output ------------------------------------------------------------ */

void gw_conn_mark_dirty(struct gw_conn *c)
{
    if (c->flags & (GW_CONN_DIRTY | GW_CONN_DEAD))
        return;
    c->flags |= GW_CONN_DIRTY;
    c->u.next_dirty = c->net->dirty;
    c->net->dirty = c;
    struct gw_net *n = c->net;
    if (n->flush_armed)
        return; /* the flush already due takes this one too */
    n->flush_armed = true;
    if (n->lim.write_delay_us > 0) {
        /* Bounded from the first dirty connection: never pushed back. */
        struct timeval tv = {n->lim.write_delay_us / 1000000, n->lim.write_delay_us % 1000000};
        event_add(n->flush_ev, &tv);
    } else {
        event_active(n->flush_ev, EV_TIMEOUT, 0);
    }
}

/* A slow consumer is cut: what it has not been sent yet is dropped, so
 * that our close frame goes out right behind the frame being written (a
 * frame cut in the middle would break the stream). The consumer that reads
 * again gets 1013 after the bytes the kernel already holds, not after the
 * megabytes of our own queue. */
static void drop_unsent(struct gw_conn *c)
{
    struct gw_out *keep = gw_conn_out_first(c);
    if (!keep)
        return;
    if (keep->off == 0) {
        gw_conn_free_queue(c);
        return;
    }
    if (keep != c->out_last) {
        struct gw_out *rest = keep->next;
        c->out_last->next = NULL; /* open the circle behind the rest */
        gw_out_list_free(rest);
    }
    keep->next = keep;
    c->out_last = keep;
    c->out_bytes = keep->buf->len - keep->off;
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
         * everyone else's fan-out goes on. A WebSocket gets close 1013 in
         * place of what was still queued (one that reads again learns why),
         * and is dropped when it has not drained within the close timeout. */
        c->net->n_slow_cut++;
        c->net->n_limit[GW_LIMIT_OUTPUT_CAP]++;
        c->flags |= GW_CONN_CUT;
        log_warn_rl(5, "conn %llu: output queue over %zu bytes, closing slow consumer",
                    (unsigned long long)c->id, c->net->lim.out_cap);
        if (!(c->flags & GW_CONN_WS) || (c->flags & GW_CONN_CLOSE_SENT)) {
            gw_conn_mark_dead(c);
            return;
        }
        drop_unsent(c);
        gw_conn_close(c, 1013, "too slow: output queue full");
        c->deadline_ms = gw_now_ms() + c->net->lim.close_timeout_ms;
        return;
    }
    struct gw_out *o = malloc(sizeof(*o));
    if (!o) {
        gw_conn_mark_dead(c);
        return;
    }
    s->refs++;
    o->buf = s;
    o->off = 0;
    if (c->out_last) {
        o->next = c->out_last->next;
        c->out_last->next = o;
    } else {
        o->next = o;
    }
    c->out_last = o;
    c->out_bytes += s->len;
    c->net->n_frames_out++;
    gw_conn_mark_dirty(c);
}

void gw_conn_send(struct gw_conn *c, const void *data, size_t len)
{
    struct gw_shared *s = gw_shared_new(len);
    if (!s) {
        gw_conn_mark_dead(c);
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

int gw_out_append(struct gw_out ***tail, struct gw_shared *s)
{
    struct gw_out *o = malloc(sizeof(*o));
    if (!o)
        return -1;
    s->refs++;
    o->buf = s;
    o->off = 0;
    o->next = NULL;
    **tail = o;
    *tail = &o->next;
    return 0;
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

void gw_conn_free_queue(struct gw_conn *c)
{
    if (c->out_last) {
        struct gw_out *first = c->out_last->next;
        c->out_last->next = NULL; /* open the circle */
        gw_out_list_free(first);
    }
    c->out_last = NULL;
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
    gw_conn_update_events(c);
}

/* Writes as much of the queue as the socket takes. */
void gw_conn_flush(struct gw_conn *c)
{
    while (c->out_last && !(c->flags & GW_CONN_DEAD)) {
        struct iovec iov[GW_WRITEV_MAX];
        int n = 0;
        for (struct gw_out *o = c->out_last->next; n < GW_WRITEV_MAX; o = o->next) {
            iov[n].iov_base = o->buf->data + o->off;
            iov[n].iov_len = o->buf->len - o->off;
            n++;
            if (o == c->out_last)
                break;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w > 0) {
            c->net->n_writes++;
            /* Room in a buffer that was full means the peer has been
             * reading: a client working through a backlog is alive, though
             * its pong still waits behind that backlog. One that stops
             * reading stops making room, and its silence counts again. */
            if (c->flags & GW_CONN_FULL) {
                c->flags &= ~(unsigned)GW_CONN_FULL;
                c->last_seen_ms = (uint32_t)gw_now_ms();
            }
        }
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->flags |= GW_CONN_FULL;
                break;
            }
            if (errno == EINTR)
                continue;
            gw_conn_abort(c, strerror(errno));
            return;
        }
        size_t left = (size_t)w;
        c->out_bytes -= (uint32_t)w;
        while (left > 0 && c->out_last) {
            struct gw_out *o = c->out_last->next;
            size_t rem = o->buf->len - o->off;
            if (left < rem) {
                o->off += (uint32_t)left;
                break;
            }
            left -= rem;
            if (o == c->out_last)
                c->out_last = NULL;
            else
                c->out_last->next = o->next;
            gw_shared_unref(o->buf);
            free(o);
        }
        if ((size_t)w < iov[0].iov_len && c->out_last) {
            c->flags |= GW_CONN_FULL;
            break; /* short write: the socket buffer is full */
        }
    }
    if (!c->out_last && (c->flags & GW_CONN_FINISH) && !(c->flags & GW_CONN_LINGER))
        start_linger(c);
    gw_conn_update_events(c);
}

void gw_net_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct gw_net *n = arg;
    (void)fd;
    (void)what;
    /* One at a time off the list, so that every GW_CONN_DIRTY connection
     * is always on it (gw_conn_mark_dead() unlinks from it). A connection
     * is not made dirty again by its own flush. */
    n->flush_armed = false;
    struct gw_conn *c;
    while ((c = n->dirty) != NULL) {
        n->dirty = c->u.next_dirty;
        c->flags &= ~(unsigned)GW_CONN_DIRTY;
        if (!(c->flags & GW_CONN_DEAD)) /* cannot be: dead ones leave the list */
            gw_conn_flush(c);
    }
}

/* ---- closing ----------------------------------------------------------- */

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
        if (c->out_last) {
            c->flags |= GW_CONN_FINISH;
            gw_conn_mark_dirty(c);
        } else {
            gw_conn_mark_dead(c);
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
    gw_conn_mark_dirty(c);
}
