/*
 * gw_eio.c - Engine.IO v4 sessions; see gw_eio.h.
 *
 * Error answers follow the reference server: HTTP 400 with
 * {"code":N,"message":"..."} where 0 Transport unknown, 1 Session ID unknown,
 * 2 Bad handshake method, 3 Bad request, 5 Unsupported protocol version.
 */
#include "gw_eio.h"
#include "gw_bodies.h"

#include "b64.h"
#include "eio.h"
#include "log.h"
#include "utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The sweep timer's period; each event visits a slice of the sessions. */
#define GW_EIO_SLICE_MS 20

static int sid_cmp(const struct gw_sess *a, const struct gw_sess *b)
{
    return strcmp(a->sid, b->sid);
}
static int id_cmp(const struct gw_sess *a, const struct gw_sess *b)
{
    return a->id < b->id ? -1 : a->id > b->id;
}
RB_GENERATE_INTERNAL(gw_sess_sid_tree, gw_sess, u.by_sid, sid_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(gw_sess_id_tree, gw_sess, by_id, id_cmp, static __attribute__((unused)))

enum { EIO_E_TRANSPORT = 0, EIO_E_SID = 1, EIO_E_METHOD = 2, EIO_E_BAD = 3, EIO_E_VERSION = 5 };

static void eio_error(struct gw_conn *c, int code)
{
    static const char *const msgs[] = {
        "Transport unknown", "Session ID unknown", "Bad handshake method",
        "Bad request",       "Forbidden",          "Unsupported protocol version"};
    char body[96];
    int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, msgs[code]);
    gw_http_respond(c, 400, "application/json", NULL, body, (size_t)n, false);
}

/* ---- sending ------------------------------------------------------------- */

/* Queues a packet (already typed: "2", "4hello", "b<base64>") for polling. */
static void queue_packet(struct gw_sess *s, struct gw_shared *pkt)
{
    /* A WebSocket-only session has no polling queue: without its
     * WebSocket (closing) there is nothing to send on. */
    if (s->pl && gw_out_append(&s->pl->q_tail, pkt) == 0)
        s->pl->q_bytes += pkt->len;
}

/* Answers the parked GET (s->pl->poll, not NULL). */
static void respond_poll(struct gw_sess *s, const char *body, size_t len)
{
    struct gw_conn *c = s->pl->poll;
    s->pl->poll = NULL;
    c->sess = NULL;
    gw_http_respond(c, 200, "text/plain; charset=UTF-8", NULL, body, len, true);
}

/* Answers a parked GET with everything queued, packets joined by 0x1e. */
static void flush_poll(struct gw_sess *s)
{
    struct gw_sess_poll *pl = s->pl;
    if (!pl || !pl->poll)
        return;
    if (s->flags & GW_SESS_UPGRADING) {
        /* The client moves to WebSocket: end this poll cleanly. */
        respond_poll(s, "6", 1);
        return;
    }
    if (!pl->q_head)
        return;
    size_t total = 0, n = 0;
    for (struct gw_out *o = pl->q_head; o; o = o->next, n++)
        total += o->buf->len;
    char *body = malloc(total + n);
    if (!body)
        return;
    size_t pos = 0;
    struct gw_out *o = pl->q_head;
    while (o) {
        struct gw_out *next = o->next;
        if (pos)
            body[pos++] = EIO_SEPARATOR;
        memcpy(body + pos, o->buf->data, o->buf->len);
        pos += o->buf->len;
        gw_shared_unref(o->buf);
        free(o);
        o = next;
    }
    pl->q_head = NULL;
    pl->q_tail = &pl->q_head;
    pl->q_bytes = 0;
    respond_poll(s, body, pos);
    free(body);
}

/* Sends a typed text packet ("2", "4...", "6") on the session's transport. */
static void send_packet(struct gw_sess *s, const char *pkt, size_t len)
{
    if (s->flags & GW_SESS_CLOSED)
        return;
    if (s->ws) {
        gw_ws_send_text(s->ws, pkt, len);
        return;
    }
    struct gw_shared *sh = gw_shared_new(len);
    if (!sh)
        return;
    memcpy(sh->data, pkt, len);
    queue_packet(s, sh);
    gw_shared_unref(sh);
    flush_poll(s);
}

void gw_eio_send_text(struct gw_sess *s, const char *data, size_t len)
{
    struct gw_eio_msg m = {.text = data, .len = len};
    gw_eio_send_msg(s, &m);
    gw_eio_msg_release(&m);
}

void gw_eio_send_binary(struct gw_sess *s, const uint8_t *data, size_t len)
{
    if (s->flags & GW_SESS_CLOSED)
        return;
    if (s->ws) {
        struct gw_shared *f = gw_ws_frame_new(WS_OP_BINARY, data, len);
        gw_conn_send_shared(s->ws, f);
        gw_shared_unref(f);
        return;
    }
    struct gw_shared *sh = gw_shared_new(eio_b64_size(len));
    if (!sh)
        return;
    sh->len = (uint32_t)eio_encode_b64((char *)sh->data, sh->len, data, len);
    queue_packet(s, sh);
    gw_shared_unref(sh);
    flush_poll(s);
}

void gw_eio_send_msg(struct gw_sess *s, struct gw_eio_msg *m)
{
    if (s->flags & GW_SESS_CLOSED)
        return;
    if (s->ws) {
        if (!m->frame) {
            uint8_t hdr[WS_MAX_HEADER];
            size_t hl = ws_frame_header(hdr, WS_OP_TEXT, true, m->len + 1, NULL);
            m->frame = gw_shared_new(hl + 1 + m->len);
            if (!m->frame)
                return;
            memcpy(m->frame->data, hdr, hl);
            m->frame->data[hl] = EIO_MESSAGE;
            memcpy(m->frame->data + hl + 1, m->text, m->len);
        }
        gw_conn_send_shared(s->ws, m->frame);
        return;
    }
    if (!m->pkt) {
        m->pkt = gw_shared_new(m->len + 1);
        if (!m->pkt)
            return;
        m->pkt->data[0] = EIO_MESSAGE;
        memcpy(m->pkt->data + 1, m->text, m->len);
    }
    queue_packet(s, m->pkt);
    flush_poll(s);
}

void gw_eio_msg_release(struct gw_eio_msg *m)
{
    gw_shared_unref(m->frame);
    gw_shared_unref(m->pkt);
    m->frame = m->pkt = NULL;
}

/* ---- session life ---------------------------------------------------------- */

/* Frees the polling state and what it still queues (none: no-op). */
static void free_poll_state(struct gw_sess *s)
{
    if (!s->pl)
        return;
    gw_out_list_free(s->pl->q_head);
    free(s->pl);
    s->pl = NULL;
}

/* poll_reply: what a parked GET gets ("1" close, or "6" noop when the client
 * itself asked to close). */
static void sess_close(struct gw_sess *s, uint16_t code, const char *reason, const char *poll_reply)
{
    struct gw_eio *e = s->eio;
    if (s->flags & GW_SESS_CLOSED)
        return;
    s->flags |= GW_SESS_CLOSED;
    /* Never the sid: it is the polling credential of a live session. */
    log_debug("session %llu: closed: %s", (unsigned long long)s->id, reason);
    if (e->h.on_close)
        e->h.on_close(e, s, reason);
    if (s->pl && s->pl->poll)
        respond_poll(s, poll_reply, strlen(poll_reply));
    if (s->ws) {
        struct gw_conn *c = s->ws;
        s->ws = NULL;
        c->sess = NULL;
        gw_conn_close(c, code, reason);
    }
    if (s->pl && s->pl->probe) {
        struct gw_conn *c = s->pl->probe;
        s->pl->probe = NULL;
        c->sess = NULL;
        gw_conn_close(c, code, reason);
    }
    /* Unlinked now, so a request right after the close gets "unknown sid". */
    RB_REMOVE(gw_sess_sid_tree, &e->sids, s);
    RB_REMOVE(gw_sess_id_tree, &e->ids, s);
    if (e->sweep_next == s)
        e->sweep_next = TAILQ_NEXT(s, link);
    TAILQ_REMOVE(&e->all, s, link);
    e->nsess--;
    s->u.next_dead = e->dead; /* the sid-tree entry is free from here on */
    e->dead = s;
    event_active(e->reap_ev, EV_TIMEOUT, 0);
}

void gw_eio_close(struct gw_sess *s, uint16_t code, const char *reason)
{
    sess_close(s, code, reason, "1");
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct gw_eio *e = arg;
    (void)fd;
    (void)what;
    while (e->dead) {
        struct gw_sess *s = e->dead;
        e->dead = s->u.next_dead;
        free_poll_state(s);
        free(s);
    }
}

/* Applies the heartbeat deadlines as of now. Returns false when the session
 * closed. */
static bool sess_advance(struct gw_sess *s, int64_t now)
{
    if (s->flags & GW_SESS_CLOSED)
        return false;
    if ((s->flags & GW_SESS_PING_OUT) && now >= s->hb_ms) {
        sess_close(s, 1000, "ping timeout", "1");
        return false;
    }
    if (!(s->flags & GW_SESS_PING_OUT) && now >= s->hb_ms) {
        /* The deadline counts from when the ping was due, as a timer would
         * have sent it, not from when this sweep noticed. */
        s->hb_ms += s->eio->cfg.ping_timeout_ms;
        s->flags |= GW_SESS_PING_OUT;
        send_packet(s, "2", 1);
        if (now >= s->hb_ms) {
            sess_close(s, 1000, "ping timeout", "1");
            return false;
        }
    }
    return true;
}

static void on_pong(struct gw_sess *s, int64_t now)
{
    if (s->flags & GW_SESS_PING_OUT) {
        s->flags &= ~(unsigned)GW_SESS_PING_OUT;
        s->hb_ms = now + s->eio->cfg.ping_interval_ms;
    }
}

/* Every session is swept once per tick, a slice of them per timer event
 * (as gw_net does with connections): the pings due in one tick leave
 * spread over it instead of in one burst. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_eio *e = arg;
    (void)fd;
    (void)what;
    int64_t now = gw_now_ms();
    size_t quota = e->nsess / (size_t)e->tick_slices + 1;
    struct gw_sess *s = e->sweep_next ? e->sweep_next : TAILQ_FIRST(&e->all);
    for (size_t i = 0; i < quota && s; i++) {
        /* A close (this one's or another's) moves sweep_next on past it. */
        e->sweep_next = TAILQ_NEXT(s, link);
        if (sess_advance(s, now) && e->h.on_tick)
            e->h.on_tick(e, s, now);
        s = e->sweep_next;
    }
    e->sweep_next = s;
}

bool gw_eio_random_id(char out[GW_EIO_ID_LEN + 1])
{
    /* 15 bytes spell as exactly 20 URL-safe base64 characters: 120 bits. */
    uint8_t rnd[GW_EIO_ID_LEN / 4 * 3];
    ssize_t got;
    /* Requests of up to 256 bytes are not cut short once the pool is
     * initialised, but a signal may interrupt them. Anything else (ENOSYS
     * in an old sandbox, a seccomp filter) is a refusal: an id someone can
     * guess would let them post packets as the session (the sid) or
     * address it (the Socket.IO id). */
    do
        got = getrandom(rnd, sizeof(rnd), 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof(rnd))
        return false;
    size_t n = b64_encode(out, GW_EIO_ID_LEN, rnd, sizeof(rnd), B64_URL, false);
    HERALD_ASSERT(n == GW_EIO_ID_LEN);
    out[GW_EIO_ID_LEN] = '\0';
    return true;
}

/* Answers a request whose session could not get a random id: 500, and a
 * line that says why (the request itself was fine). */
static void refuse_no_random(struct gw_conn *c)
{
    log_error("conn %llu: no random bytes for a session id (getrandom: %s): refused with 500",
              (unsigned long long)c->id, strerror(errno));
    gw_http_error(c, 500, "internal", "no random bytes for a session id");
}

/* A new session with the random sid (gw_eio_random_id()), or NULL when out
 * of memory. */
static struct gw_sess *sess_new(struct gw_eio *e, const struct http_request *req,
                                const char sid[GW_EIO_ID_LEN + 1], bool polling)
{
    struct gw_sess *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (polling) {
        s->pl = calloc(1, sizeof(*s->pl));
        if (!s->pl) {
            free(s);
            return NULL;
        }
        s->pl->q_tail = &s->pl->q_head;
    }
    s->eio = e;
    s->id = ++e->net->next_id;
    memcpy(s->sid, sid, GW_EIO_ID_LEN + 1);
    s->hb_ms = gw_now_ms() + e->cfg.ping_interval_ms;
    RB_INSERT(gw_sess_sid_tree, &e->sids, s);
    RB_INSERT(gw_sess_id_tree, &e->ids, s);
    TAILQ_INSERT_TAIL(&e->all, s, link);
    e->nsess++;
    e->n_opened++;
    if (e->h.on_open)
        e->h.on_open(e, s, req);
    return s;
}

bool gw_eio_owns(const struct gw_conn *c)
{
    return (c->flags & GW_CONN_OWN_PING) != 0;
}

bool gw_eio_take_id(struct gw_eio *e, struct gw_sess *s, uint64_t id)
{
    if (id == 0 || gw_eio_find(e, id) || gw_net_id_used(e->net, id))
        return false;
    RB_REMOVE(gw_sess_id_tree, &e->ids, s);
    s->id = id;
    RB_INSERT(gw_sess_id_tree, &e->ids, s);
    return true;
}

struct gw_sess *gw_eio_find(struct gw_eio *e, uint64_t id)
{
    struct gw_sess key;
    key.id = id;
    return RB_FIND(gw_sess_id_tree, &e->ids, &key);
}

static struct gw_sess *find_sid(struct gw_eio *e, const char *sid, size_t len)
{
    struct gw_sess key;
    if (len == 0 || len >= sizeof(key.sid))
        return NULL;
    memcpy(key.sid, sid, len);
    key.sid[len] = '\0';
    return RB_FIND(gw_sess_sid_tree, &e->sids, &key);
}

static void send_open(struct gw_sess *s, bool upgrade_ws, struct gw_conn *http)
{
    char buf[256];
    size_t n = eio_encode_open(buf, sizeof(buf), s->sid, upgrade_ws, s->eio->cfg.ping_interval_ms,
                               s->eio->cfg.ping_timeout_ms, s->eio->cfg.max_payload);
    if (http)
        gw_http_respond(http, 200, "text/plain; charset=UTF-8", NULL, buf, n, true);
    else
        gw_ws_send_text(s->ws, buf, n);
}

/* ---- size caps --------------------------------------------------------------- */

/* What one message or polling payload of s may weigh, and the limit that
 * is for /metrics. Until the application trusts the session (its user
 * authenticated) the tighter cap holds: an anonymous peer gets no more than
 * a CONNECT with a token needs. */
static size_t sess_cap(const struct gw_eio *e, const struct gw_sess *s, uint8_t *limit)
{
    bool small = e->cfg.max_payload_unauth > 0 && e->cfg.max_payload_unauth < e->cfg.max_payload &&
                 !(s && (s->flags & GW_SESS_TRUSTED));
    if (limit)
        *limit = small ? GW_LIMIT_PAYLOAD_UNAUTH : GW_LIMIT_PAYLOAD;
    return (size_t)(small ? e->cfg.max_payload_unauth : e->cfg.max_payload);
}

/* Applies the session's cap to a WebSocket carrying it (close 1009 above). */
static void ws_apply_cap(const struct gw_eio *e, const struct gw_sess *s, struct gw_conn *c)
{
    if (!c)
        return;
    size_t cap = sess_cap(e, s, &c->msg_limit);
    /* --max-payload is bounded far below this by the config table. */
    HERALD_ASSERT(cap <= WS_MAX_MSG_CAP);
    c->wsp.max_msg = (uint32_t)cap;
}

void gw_eio_trust(struct gw_sess *s)
{
    s->flags |= GW_SESS_TRUSTED;
    ws_apply_cap(s->eio, s, s->ws);
    if (s->pl)
        ws_apply_cap(s->eio, s, s->pl->probe);
}

/* ---- incoming packets ------------------------------------------------------ */

/* Applies one packet from the client, which came on via. Returns false when
 * the session closed. */
static bool handle_packet(struct gw_sess *s, struct gw_conn *via, const struct eio_packet *p)
{
    struct gw_eio *e = s->eio;
    bool over_ws = via == s->ws;
    switch (p->type) {
    case EIO_MESSAGE:
        if (e->h.on_message)
            e->h.on_message(e, s, via, p->binary, p->data, p->len);
        break;
    case EIO_PONG:
        on_pong(s, gw_now_ms());
        break;
    case EIO_PING:
        /* Not sent by v4 clients (the server pings), answered anyway. */
        send_packet(s, "3", 1);
        break;
    case EIO_CLOSE:
        sess_close(s, 1000, "client closed", "6");
        return false;
    case EIO_NOOP:
        break;
    default:
        log_warn_rl(5, "session %llu: unexpected packet type %c over %s, closing",
                    (unsigned long long)s->id, p->type, over_ws ? "websocket" : "polling");
        sess_close(s, 1002, "invalid packet", "1");
        return false;
    }
    return !(s->flags & GW_SESS_CLOSED);
}

void gw_eio_ws_message(struct gw_eio *e, struct gw_conn *c, uint8_t opcode, uint8_t *data,
                       size_t len)
{
    (void)e;
    struct gw_sess *s = c->sess;
    if (!s || !sess_advance(s, gw_now_ms()))
        return;
    if (s->pl && c == s->pl->probe) {
        /* Upgrade: "2probe" -> "3probe", then "5" switches transports. */
        if (opcode == WS_OP_TEXT && len == 6 && memcmp(data, "2probe", 6) == 0) {
            gw_ws_send_text(c, "3probe", 6);
            s->flags |= GW_SESS_UPGRADING | GW_SESS_PROBED;
            flush_poll(s);
        } else if (opcode == WS_OP_TEXT && len == 1 && data[0] == EIO_UPGRADE &&
                   (s->flags & GW_SESS_PROBED)) {
            struct gw_sess_poll *pl = s->pl;
            s->ws = c;
            pl->probe = NULL;
            s->flags &= ~(uint32_t)(GW_SESS_UPGRADING | GW_SESS_PROBED);
            /* What was queued for polling now goes over the WebSocket. */
            struct gw_out *o = pl->q_head;
            pl->q_head = NULL;
            pl->q_tail = &pl->q_head;
            pl->q_bytes = 0;
            while (o) {
                struct gw_out *next = o->next;
                if (o->buf->len && o->buf->data[0] == 'b') {
                    /* Decoded from a private copy: the queued buffer may be
                     * shared. */
                    uint8_t *copy = malloc(o->buf->len);
                    struct eio_packet p;
                    if (copy) {
                        memcpy(copy, o->buf->data, o->buf->len);
                        if (eio_parse_packet(copy, o->buf->len, &p) == EIO_OK)
                            gw_eio_send_binary(s, p.data, p.len);
                        free(copy);
                    }
                } else {
                    gw_ws_send_text(c, (const char *)o->buf->data, o->buf->len);
                }
                gw_shared_unref(o->buf);
                free(o);
                o = next;
            }
            if (pl->poll)
                respond_poll(s, "6", 1);
        }
        return;
    }
    if (c != s->ws)
        return;
    if (opcode == WS_OP_BINARY) {
        if (e->h.on_message)
            e->h.on_message(e, s, c, true, data, len);
        return;
    }
    /* eio_parse_packet also takes "b<base64>" text frames (clients with
     * forceBase64); data is ours to decode in place. */
    struct eio_packet p;
    enum eio_status st = eio_parse_packet(data, len, &p);
    if (st != EIO_OK) {
        log_warn_rl(5, "session %llu: bad packet: %s", (unsigned long long)s->id,
                    eio_status_str(st));
        sess_close(s, 1002, "invalid packet", "1");
        return;
    }
    handle_packet(s, c, &p);
}

void gw_eio_conn_closed(struct gw_eio *e, struct gw_conn *c)
{
    (void)e;
    struct gw_sess *s = c->sess;
    if (!s)
        return;
    c->sess = NULL;
    if (s->ws == c) {
        s->ws = NULL;
        sess_close(s, 1000, "transport close", "1");
    } else if (s->pl && s->pl->probe == c) {
        s->pl->probe = NULL;
        s->flags &= ~(uint32_t)(GW_SESS_UPGRADING | GW_SESS_PROBED);
    } else if (s->pl && s->pl->poll == c) {
        s->pl->poll = NULL;
    }
}

/* ---- requests ------------------------------------------------------------- */

/* Answers 413 for a polling payload over the session's cap (limit: which
 * one) and closes the session, as the reference server does. */
static void refuse_payload(struct gw_sess *s, struct gw_conn *c, size_t len, uint8_t limit)
{
    s->eio->net->n_limit[limit]++;
    log_warn_rl(5, "session %llu: %zu-byte payload over the %s cap: 413", (unsigned long long)s->id,
                len, gw_limit_name((enum gw_limit)limit));
    gw_http_error(c, 413, "too-large", "payload over maxPayload");
    sess_close(s, 1009, "payload too large", "1");
}

bool gw_eio_body_allowed(struct gw_eio *e, struct gw_conn *c, const struct http_request *req)
{
    const char *sid = NULL;
    size_t sid_len = 0;
    struct gw_sess *s = NULL;
    if (req->query && http_query_param(req->query, req->query_len, "sid", &sid, &sid_len))
        s = find_sid(e, sid, sid_len);
    uint8_t limit;
    size_t cap = sess_cap(e, s, &limit);
    if (req->content_length <= cap)
        return true;
    if (s) {
        refuse_payload(s, c, req->content_length, limit);
    } else {
        e->net->n_limit[limit]++;
        gw_http_error(c, 413, "too-large", "payload over maxPayload");
    }
    return false;
}

static void handle_post(struct gw_sess *s, struct gw_conn *c, const uint8_t *body, size_t len)
{
    uint8_t limit;
    if (len > sess_cap(s->eio, s, &limit)) {
        refuse_payload(s, c, len, limit);
        return;
    }
    /* Everything we relay from here ends up in WebSocket text frames of
     * other clients: it must be UTF-8. */
    if (!utf8_valid(body, len)) {
        GW_HTTP_RESPOND_LIT(c, 400, "application/json", NULL, GW_BODY_EIO_BAD_REQUEST, false);
        sess_close(s, 1007, "invalid UTF-8", "1");
        return;
    }
    /* Decoding base64 happens in place: work on a private copy. */
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        gw_http_error(c, 503, "unavailable", "out of memory");
        return;
    }
    memcpy(buf, body, len);
    size_t off = 0;
    bool ok = true;
    for (;;) {
        struct eio_packet p;
        bool done = false;
        enum eio_status st = eio_payload_next(buf, len, &off, &p, &done);
        if (done)
            break;
        if (st != EIO_OK) {
            log_warn_rl(5, "session %llu: bad payload: %s", (unsigned long long)s->id,
                        eio_status_str(st));
            ok = false;
            break;
        }
        if (!handle_packet(s, c, &p))
            break;
    }
    free(buf);
    if (!ok) {
        GW_HTTP_RESPOND_LIT(c, 400, "application/json", NULL, GW_BODY_EIO_BAD_REQUEST, false);
        sess_close(s, 1002, "invalid payload", "1");
        return;
    }
    GW_HTTP_RESPOND_LIT(c, 200, "text/html", NULL, "ok", true);
}

static bool query_is(const struct http_request *req, const char *name, const char *want)
{
    const char *v;
    size_t vl;
    return req->query && http_query_param(req->query, req->query_len, name, &v, &vl) &&
           vl == strlen(want) && memcmp(v, want, vl) == 0;
}

/* transport=websocket: a probe for the polling session s, or (s NULL) a
 * session that starts on a WebSocket. get: the request is a GET. */
static void ws_request(struct gw_eio *e, struct gw_conn *c, const struct http_request *req,
                       struct gw_sess *s, bool get)
{
    const char *key, *why;
    size_t kl;
    if (!get || ws_handshake_check(req, &key, &kl, &why) != 0) {
        eio_error(c, EIO_E_BAD);
        return;
    }
    /* A direct WebSocket session needs its sid before the 101, so that
     * a refusal is still an HTTP answer. */
    char new_sid[GW_EIO_ID_LEN + 1];
    if (!s && !gw_eio_random_id(new_sid)) {
        refuse_no_random(c);
        return;
    }
    gw_ws_accept(c, key, kl, NULL);
    if (s && (s->ws || !s->pl || s->pl->probe)) {
        /* Already upgraded (or upgrading): like the reference server,
         * accept the WebSocket and close it at once. (A live session
         * without polling state always has its WebSocket.) */
        gw_conn_close(c, 1008, "session already has a WebSocket");
        return;
    }
    c->flags |= GW_CONN_OWN_PING;
    /* maxPayload (or the tighter cap of a session not yet trusted)
     * bounds every message of the session (close 1009). */
    ws_apply_cap(e, s, c);
    if (s) {
        s->pl->probe = c;
        c->sess = s;
        return;
    }
    /* Direct WebSocket: the session starts here, open packet first. */
    s = sess_new(e, req, new_sid, false);
    if (!s) {
        gw_conn_close(c, 1011, "out of memory");
        return;
    }
    s->ws = c;
    c->sess = s;
    send_open(s, false, NULL);
}

void gw_eio_request(struct gw_eio *e, struct gw_conn *c, const struct http_request *req,
                    const uint8_t *body, size_t body_len)
{
    bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    bool post = req->method_len == 4 && memcmp(req->method, "POST", 4) == 0;
    if (!query_is(req, "EIO", "4")) {
        eio_error(c, EIO_E_VERSION);
        return;
    }
    bool polling = query_is(req, "transport", "polling");
    bool websocket = query_is(req, "transport", "websocket");
    if (!polling && !websocket) {
        eio_error(c, EIO_E_TRANSPORT);
        return;
    }
    const char *sid = NULL;
    size_t sid_len = 0;
    bool has_sid =
        req->query && http_query_param(req->query, req->query_len, "sid", &sid, &sid_len);
    struct gw_sess *s = has_sid ? find_sid(e, sid, sid_len) : NULL;
    if (s && !sess_advance(s, gw_now_ms()))
        s = NULL; /* its deadline passed just now */
    if (has_sid && !s) {
        eio_error(c, EIO_E_SID);
        return;
    }
    if (websocket) {
        ws_request(e, c, req, s, get);
        return;
    }
    if (!s) {
        if (!get) {
            eio_error(c, EIO_E_METHOD);
            return;
        }
        char new_sid[GW_EIO_ID_LEN + 1];
        if (!gw_eio_random_id(new_sid)) {
            refuse_no_random(c);
            return;
        }
        s = sess_new(e, req, new_sid, true);
        if (!s) {
            gw_http_error(c, 503, "unavailable", "out of memory");
            return;
        }
        send_open(s, true, c);
        return;
    }
    if (s->ws || !s->pl) {
        /* Upgraded (or WebSocket-only): polling requests for it are
         * refused. */
        eio_error(c, EIO_E_BAD);
        return;
    }
    if (post) {
        handle_post(s, c, body, body_len);
        return;
    }
    if (!get) {
        eio_error(c, EIO_E_BAD);
        return;
    }
    if (s->pl->poll) {
        /* Two concurrent GETs: a broken client or a hijack attempt. */
        log_warn_rl(5, "session %llu: overlapping polls, closing", (unsigned long long)s->id);
        eio_error(c, EIO_E_BAD);
        sess_close(s, 1000, "overlapping polls", "1");
        return;
    }
    s->pl->poll = c;
    c->sess = s;
    if (s->pl->q_head || (s->flags & GW_SESS_UPGRADING)) {
        flush_poll(s); /* answered now: never parked */
        return;
    }
    c->flags |= GW_CONN_BUSY;
    c->deadline_ms = 0;
}

int gw_eio_init(struct gw_eio *e, struct gw_net *net, const struct gw_eio_config *cfg,
                const struct gw_eio_handlers *h)
{
    memset(e, 0, sizeof(*e));
    e->net = net;
    e->cfg = *cfg;
    e->h = *h;
    RB_INIT(&e->sids);
    RB_INIT(&e->ids);
    TAILQ_INIT(&e->all);
    e->reap_ev = event_new(net->base, -1, 0, on_reap, e);
    e->tick_ev = event_new(net->base, -1, EV_PERSIST, on_tick, e);
    if (!e->reap_ev || !e->tick_ev)
        return -1;
    /* A tenth of the ping interval between 5 ms and 1 s: the deadlines are
     * exact anyway; the tick only bounds how late a ping leaves. */
    long tick = cfg->ping_interval_ms / 10;
    tick = tick < 5 ? 5 : tick > 1000 ? 1000 : tick;
    long slice = tick < GW_EIO_SLICE_MS ? tick : GW_EIO_SLICE_MS;
    e->tick_slices = tick / slice;
    struct timeval tv = {slice / 1000, (slice % 1000) * 1000};
    event_add(e->tick_ev, &tv);
    return 0;
}

void gw_eio_free(struct gw_eio *e)
{
    struct gw_sess *s, *tmp;
    TAILQ_FOREACH_SAFE(s, &e->all, link, tmp)
    sess_close(s, 1001, "server going away", "1");
    on_reap(-1, 0, e);
    if (e->reap_ev)
        event_free(e->reap_ev);
    if (e->tick_ev)
        event_free(e->tick_ev);
    memset(e, 0, sizeof(*e));
}
