/*
 * gw_sio.c - Herald's Socket.IO v5 endpoint on the Engine.IO sessions; see
 * gw_sio.h.
 *
 * The stock socket.io-client connects unchanged (PROTOCOL.md §4): the main
 * namespace "/" is Herald's, any other gets CONNECT_ERROR. Identity comes
 * from the CONNECT auth payload's "token", else from the token sources of
 * the request that opened the session (Bearer, cookie, ?token=; gw_routes
 * refuses a cookie from a foreign origin with 403 before a session opens);
 * no token at all makes a guest, a bad one a CONNECT_ERROR the client shows
 * as connect_error. Until a user's CONNECT is accepted the session keeps
 * the tighter message cap (gw_eio_trust()); guests keep it for good, since
 * nothing a guest may send is large.
 *
 * Client events go to the broker through the same path as /ws events (the
 * broker answers both endpoints with one implementation); the broker's
 * answers to acknowledged events come back as "ack" entries.
 */
#include "gw_sio.h"
#include "gw_recover.h"

#include "log.h"
#include "sio.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-session state (s->app). */
/* One per Socket.IO client beside its struct gw_sess, so packed into a
 * 64-byte glibc chunk (GW_SIO_MAX_SIZE): 64-bit fields first, flags as
 * bits. */
struct gw_sio {
    struct gw_token_life life;   /* who (0: guest), and until when */
    int64_t connect_deadline_ms; /* until CONNECT to "/" arrives (0: connected) */
    /* The token found on the request that opened the session, checked then. */
    int64_t hs_uid, hs_exp;
    uint32_t token;        /* its recovery token (gw_recover.h), 0: none */
    uint8_t hs_status;     /* enum jwt_auth_status: JWT_AUTH_OK or why it was refused */
    bool connected : 1;    /* CONNECT to "/" accepted */
    bool open_sent : 1;    /* the broker knows this session */
    bool goodbye : 1;      /* closed on purpose: it will not come back */
    bool hs_token : 1;     /* the opening request carried a token */
    bool hs_forbidden : 1; /* cookie token from a foreign origin */
};
#define GW_SIO_MAX_SIZE 56
_Static_assert(sizeof(void *) != 8 || sizeof(struct gw_sio) <= GW_SIO_MAX_SIZE,
               "struct gw_sio grew past its glibc chunk: see GW_SIO_MAX_SIZE");

static struct gw *sio_gw(struct gw_eio *e)
{
    return e->h.arg;
}

/* Sends header + payload as one Socket.IO packet on the main namespace. */
static void send_sio(struct gw_sess *s, uint8_t type, int64_t ack, const char *json, size_t jl)
{
    char hdr[64];
    size_t hl = sio_encode_header(hdr, sizeof(hdr), type, "/", 1, 0, ack);
    char *buf = malloc(hl + jl);
    if (!buf)
        return;
    memcpy(buf, hdr, hl);
    if (jl)
        memcpy(buf + hl, json, jl);
    gw_eio_send_text(s, buf, hl + jl);
    free(buf);
}

/* send_sio() for a payload that is a string literal, its length from the
 * literal. */
#define SEND_SIO_LIT(s, type, ack, lit) send_sio((s), (type), (ack), "" lit, sizeof("" lit) - 1)

static void send_event0(struct gw_sess *s, const char *name)
{
    char buf[96];
    int n = snprintf(buf, sizeof(buf), "[\"%s\"]", name);
    send_sio(s, SIO_EVENT, -1, buf, (size_t)n);
}

/* CONNECT_ERROR with a message the client shows and a stable code. */
static void connect_error(struct gw_sess *s, const char *nsp, size_t nsp_len, const char *word,
                          const char *message)
{
    char hdr[SIO_MAX_NAMESPACE + 16], body[256];
    size_t hl = sio_encode_header(hdr, sizeof(hdr), SIO_CONNECT_ERROR, nsp, nsp_len, 0, -1);
    int bl = word ? snprintf(body, sizeof(body), "{\"message\":\"%s\",\"data\":{\"code\":\"%s\"}}",
                             message, word)
                  : snprintf(body, sizeof(body), "{\"message\":\"%s\"}", message);
    char out[sizeof(hdr) + sizeof(body)];
    memcpy(out, hdr, hl);
    memcpy(out + hl, body, (size_t)bl);
    gw_eio_send_text(s, out, hl + (size_t)bl);
}

/* Server-side disconnect: the client's "disconnect" fires with reason "io
 * server disconnect" and it does not reconnect by itself. */
static void server_disconnect(struct gw_sess *s, const char *why)
{
    struct gw_sio *st = s->app;
    if (st)
        st->goodbye = true;
    send_sio(s, SIO_DISCONNECT, -1, NULL, 0);
    gw_eio_close(s, 1000, why);
}

/* ---- session hooks --------------------------------------------------------- */

static void sio_open(struct gw_eio *e, struct gw_sess *s, const struct http_request *req)
{
    struct gw *g = sio_gw(e);
    struct gw_sio *st = calloc(1, sizeof(*st));
    s->app = st;
    if (!st)
        return;
    st->connect_deadline_ms = gw_now_ms() + g->cfg.sio_connect_timeout_ms;
    /* A deleted account is refused at CONNECT, which checks every token it
     * takes (this one or the auth payload's) against the set as it is then. */
    enum jwt_auth_status jst = JWT_AUTH_OK;
    enum gw_identity id = gw_auth_identify(&g->auth, req, &st->hs_uid, &st->hs_exp, &jst);
    st->hs_status = (uint8_t)jst;
    switch (id) {
    case GW_ID_NONE:
        return;
    case GW_ID_FOREIGN_ORIGIN:
        /* gw_routes answers such a request 403 before a session exists;
         * checked again here so the rule holds whatever opens sessions. */
        st->hs_token = st->hs_forbidden = true;
        return;
    case GW_ID_REFUSED:
        st->hs_token = true;
        return;
    case GW_ID_OK:
    case GW_ID_DELETED:
        st->hs_token = true;
        st->hs_status = JWT_AUTH_OK;
        return;
    }
}

static void sio_close(struct gw_eio *e, struct gw_sess *s, const char *reason)
{
    struct gw *g = sio_gw(e);
    struct gw_sio *st = s->app;
    (void)reason;
    gw_recover_cancel(g, s->id);
    if (st && st->open_sent)
        gw_bus_close(&g->bus, s->id, !st->goodbye && st->token);
    free(st);
    s->app = NULL;
}

static void sio_tick(struct gw_eio *e, struct gw_sess *s, int64_t now)
{
    struct gw *g = sio_gw(e);
    struct gw_sio *st = s->app;
    if (!st)
        return;
    if (!st->connected) {
        if (now >= st->connect_deadline_ms)
            gw_eio_close(s, 1000, "no CONNECT in time");
        return;
    }
    if (gw_token_life_check(&g->auth, &st->life, now) == GW_TOKEN_EXPIRED) {
        log_info("session %llu: token of user %lld expired: token-expired, disconnect",
                 (unsigned long long)s->id, (long long)st->life.user_id);
        send_event0(s, "token-expired");
        server_disconnect(s, "token expired");
    }
}

/* The CONNECT reply: {"sid"} (and "pid" when the session may come back;
 * its socket.id is then derived from the pid, so a recovered session
 * keeps it; else random_id). socket.id is never the Engine.IO sid: the
 * sid is a polling credential (whoever holds it can post packets as this
 * client), while applications show socket.id to other users. */
static void connect_reply(struct gw_sess *s, const char *pid, const char *random_id)
{
    char sio_id[GW_SIO_ID_LEN + 1], ok[GW_PID_MAX + 64];
    int n;
    if (pid) {
        gw_recover_sio_id(pid, sio_id);
        n = snprintf(ok, sizeof(ok), "{\"sid\":\"%s\",\"pid\":\"%s\"}", sio_id, pid);
    } else {
        n = snprintf(ok, sizeof(ok), "{\"sid\":\"%s\"}", random_id);
    }
    send_sio(s, SIO_CONNECT, -1, ok, (size_t)n);
}

/* The client asks to come back as pid from offset: the session takes over
 * the pid's connection id and the broker is asked. False: go on as a
 * fresh session (no pid, a bad one, the id taken here, or no bus). */
static bool try_recover(struct gw *g, struct gw_sess *s, struct gw_sio *st, const char *pid,
                        const char *offset)
{
    uint64_t id;
    uint32_t token;
    char start[EV_OFFSET_MAX + 1];
    if (!pid || !gw_recover_pid_parse(pid, strlen(pid), &id, &token, start))
        return false;
    if (offset && !ev_offset_valid(offset, strlen(offset)))
        offset = NULL;
    if (id != s->id && !gw_eio_take_id(&g->eio, s, id))
        return false;
    st->token = token;
    if (!gw_recover_begin(g, s->id, true, st->life.user_id, token, pid, offset ? offset : start))
        return false;
    st->open_sent = true;
    log_debug("session %llu: coming back from %s", (unsigned long long)s->id,
              offset ? offset : start);
    return true;
}

/* CONNECT to the main namespace: decides who the client is. */
static void on_connect(struct gw *g, struct gw_sess *s, struct gw_sio *st,
                       const struct sio_packet *p)
{
    if (st->connected)
        return; /* a second CONNECT to "/" changes nothing */
    struct json_object *auth = NULL, *t = NULL;
    int64_t uid = 0, exp = 0;
    auth = ev_json_parse(p->data, p->data_len, json_type_object);
    if (auth && json_object_object_get_ex(auth, "token", &t) &&
        json_object_is_type(t, json_type_string)) {
        enum jwt_auth_status vs = gw_auth_verify(&g->auth, json_object_get_string(t),
                                                 (size_t)json_object_get_string_len(t), &uid, &exp);
        if (vs != JWT_AUTH_OK) {
            log_info("session %llu: CONNECT token refused: %s", (unsigned long long)s->id,
                     jwt_auth_status_str(vs));
            connect_error(s, "/", 1, jwt_auth_status_str(vs), "invalid token");
            json_object_put(auth);
            return;
        }
    } else if (st->hs_token) {
        if (st->hs_forbidden) {
            log_info("session %llu: CONNECT with the session cookie from a foreign origin",
                     (unsigned long long)s->id);
            connect_error(s, "/", 1, "origin-forbidden",
                          "this origin may not use the session cookie");
            json_object_put(auth);
            return;
        }
        if (st->hs_status != JWT_AUTH_OK) {
            log_info("session %llu: CONNECT with a refused handshake token: %s",
                     (unsigned long long)s->id, jwt_auth_status_str(st->hs_status));
            connect_error(s, "/", 1, jwt_auth_status_str(st->hs_status), "invalid token");
            json_object_put(auth);
            return;
        }
        uid = st->hs_uid;
        exp = st->hs_exp;
    }
    if (uid && gw_auth_user_deleted(&g->auth, uid)) {
        log_info("session %llu: token of deleted account %lld refused", (unsigned long long)s->id,
                 (long long)uid);
        connect_error(s, "/", 1, "account-deleted", "account deleted");
        json_object_put(auth);
        return;
    }
    /* A session coming back (connection state recovery): the stock
     * client adds pid and offset to its auth payload. */
    struct json_object *jp = NULL, *jo = NULL;
    const char *auth_pid = NULL, *auth_offset = NULL;
    if (auth && json_object_object_get_ex(auth, "pid", &jp) &&
        json_object_is_type(jp, json_type_string)) {
        auth_pid = json_object_get_string(jp);
        if (json_object_object_get_ex(auth, "offset", &jo) &&
            json_object_is_type(jo, json_type_string))
            auth_offset = json_object_get_string(jo);
    }
    /* Random bytes for the session (its recovery token, or its socket.id
     * when it cannot come back): none means no session, never a weak id. */
    uint32_t token = gw_recover_enabled(g) ? gw_recover_token() : 0;
    char sio_id[GW_EIO_ID_LEN + 1];
    if (gw_recover_enabled(g) ? token == 0 : !gw_eio_random_id(sio_id)) {
        log_error("session %llu: no random bytes for a Socket.IO id: CONNECT refused",
                  (unsigned long long)s->id);
        connect_error(s, "/", 1, "internal", "no random bytes for a session id");
        json_object_put(auth);
        return;
    }
    st->connected = true;
    st->connect_deadline_ms = 0;
    gw_token_life_start(&g->auth, &st->life, uid, exp, gw_now_ms());
    if (uid)
        gw_eio_trust(s);
    if (gw_recover_enabled(g) && try_recover(g, s, st, auth_pid, auth_offset)) {
        json_object_put(auth);
        return; /* the CONNECT reply waits for the broker's answer */
    }
    json_object_put(auth);
    st->token = token;
    char pid[GW_PID_MAX + 1];
    if (st->token)
        gw_recover_pid(pid, s->id, st->token, gw_recover_start(g));
    connect_reply(s, st->token ? pid : NULL, sio_id);
    log_debug("session %llu: connected as %s %lld", (unsigned long long)s->id,
              uid ? "user" : "guest", (long long)uid);
    st->open_sent =
        gw_bus_open(&g->bus, s->id, uid, GW_CLIENT_SIO, st->token, NULL) || st->open_sent;
}

/* refresh-token {token}: the lifecycle's verdict as Socket.IO answers it
 * (every refusal looks like an expiry to the client). */
static void refresh_token(struct gw *g, struct gw_sess *s, struct gw_sio *st,
                          struct json_object *arg, int64_t ack)
{
    struct json_object *t;
    const char *tok = NULL;
    size_t tl = 0;
    int64_t uid;
    enum jwt_auth_status vs;
    if (arg && json_object_object_get_ex(arg, "token", &t) &&
        json_object_is_type(t, json_type_string)) {
        tok = json_object_get_string(t);
        tl = (size_t)json_object_get_string_len(t);
    }
    if (gw_token_life_refresh(&g->auth, &st->life, tok, tl, &uid, &vs) != GW_TOKEN_OK) {
        /* "another user" also for a guest and a deleted account, as this
         * line always said. */
        log_info("session %llu: refresh-token refused (%s)", (unsigned long long)s->id,
                 vs != JWT_AUTH_OK ? jwt_auth_status_str(vs) : "another user");
        send_event0(s, "token-expired");
        server_disconnect(s, "token refused");
        return;
    }
    if (ack >= 0)
        SEND_SIO_LIT(s, SIO_ACK, ack, "[{\"ok\":true}]");
}

/* A refusal made here, answered as the broker answers its own: the
 * callback gets {ok:false, error, message}, else an "error" event. */
static void answer_error(struct gw_sess *s, int64_t ack, const char *word, const char *message)
{
    char buf[256];
    size_t n;
    if (ack >= 0) {
        n = ev_refusal(buf, sizeof(buf), EV_REFUSAL_ACK, word, message);
    } else {
        /* The error event's arguments: ["error", {"code", "message"}]. */
        static const char head[] = "[\"error\",";
        memcpy(buf, head, sizeof(head) - 1);
        n = ev_refusal(buf + sizeof(head) - 1, sizeof(buf) - sizeof(head), EV_REFUSAL_EVENT, word,
                       message);
        if (n) {
            n += sizeof(head) - 1;
            buf[n++] = ']';
        }
    }
    HERALD_ASSERT(n > 0); /* our own short constants */
    send_sio(s, ack >= 0 ? SIO_ACK : SIO_EVENT, ack, buf, n);
}

/*
 * get-online-users (every form) and get-online-count from the gateway's
 * own list (gw_online.h): true when answered here (or refused), false when
 * the broker must answer (the whole list in scope related: the user's
 * related users are the broker's to know; or our list is not known yet).
 */
static bool online_question(struct gw *g, struct gw_sess *s, const struct ev_client_event *ev,
                            struct json_object *arg, int64_t ack, int64_t self)
{
    struct gw_online_reply r;
    switch (
        gw_online_ask(&g->online, arg, ev->flags & EV_CLIENT_COUNT, g->scope_related, self, &r)) {
    case GW_ONLINE_RELAY:
        return false;
    case GW_ONLINE_REFUSED:
        answer_error(s, ack, r.word, r.why);
        return true;
    case GW_ONLINE_ANSWERED:
        break;
    }
    char *out = ack >= 0 ? malloc(r.len + 64) : NULL; /* no callback: no one to answer */
    if (out) {
        int n;
        if (r.form == GW_ONLINE_PAGE && r.next)
            n = snprintf(out, r.len + 64, "[{\"users\":%s,\"next\":%lld}]", r.value,
                         (long long)r.next);
        else if (r.form == GW_ONLINE_PAGE)
            n = snprintf(out, r.len + 64, "[{\"users\":%s,\"next\":null}]", r.value);
        else
            n = snprintf(out, r.len + 64, "[%s]", r.value);
        send_sio(s, SIO_ACK, ack, out, (size_t)n);
    }
    free(out);
    free(r.value);
    return true;
}

static void on_event(struct gw *g, struct gw_sess *s, struct gw_conn *via, struct gw_sio *st,
                     const struct sio_packet *p)
{
    const char *name, *args;
    size_t nl, al;
    if (sio_event_split(p->data, p->data_len, &name, &nl, &args, &al) != 0)
        return;
    /* The first argument, when it is an object, carries the fields. */
    struct json_object *arr = ev_json_parse(p->data, p->data_len, json_type_array), *arg = NULL;
    if (arr && json_object_array_length(arr) > 1) {
        arg = json_object_array_get_idx(arr, 1);
        if (!json_object_is_type(arg, json_type_object))
            arg = NULL;
    }
    const struct ev_client_event *ev = ev_client_event_sio(name, nl);
    if (!ev) {
        log_debug("session %llu: unknown event %.*s", (unsigned long long)s->id, (int)nl, name);
        static const char err[] =
            "[\"error\",{\"code\":\"unknown-type\",\"message\":\"unknown event\"}]";
        send_sio(s, SIO_EVENT, -1, err, sizeof(err) - 1);
    } else if (ev->answer == EV_ANSWER_REFRESH_TOKEN) {
        refresh_token(g, s, st, arg, p->ack_id);
    } else if (ev->answer == EV_ANSWER_ONLINE &&
               online_question(g, s, ev, arg, p->ack_id, st->life.user_id)) {
        /* answered from our own list */
    } else if (ev->answer == EV_ANSWER_PING) {
        /* The application-level ping of PROTOCOL.md §2, answered here: it
         * proves the path browser-gateway is alive, faster than Engine.IO's
         * 25 s heartbeat would. */
        if (p->ack_id >= 0)
            SEND_SIO_LIT(s, SIO_ACK, p->ack_id, "[\"pong\"]");
        else
            send_event0(s, "pong");
    } else if (st->life.user_id && (ev->flags & EV_CLIENT_CHAT) &&
               !gw_auth_chat_allowed(&g->auth, via)) {
        /* Guests' chat goes on to be refused by the broker (auth-required):
         * only a user's takes from the address's bucket. */
        answer_error(s, p->ack_id, "rate-limited",
                     "too many messages from this address: slow down");
    } else {
        size_t jl = 2;
        const char *js =
            arg ? json_object_to_json_string_length(arg, JSON_C_TO_STRING_PLAIN, &jl) : "{}";
        if (!gw_bus_msg(&g->bus, s->id, st->life.user_id, ev->broker, js, jl, p->ack_id))
            answer_error(s, p->ack_id, "unavailable",
                         "the service cannot take events now: try again");
    }
    json_object_put(arr);
}

static void sio_message(struct gw_eio *e, struct gw_sess *s, struct gw_conn *via, bool binary,
                        const uint8_t *data, size_t len)
{
    struct gw *g = sio_gw(e);
    struct gw_sio *st = s->app;
    if (!st)
        return;
    if (binary) {
        /* Herald's events carry no binary attachments. */
        log_warn_rl(5, "session %llu: binary message, closing", (unsigned long long)s->id);
        gw_eio_close(s, 1003, "binary messages are not supported");
        return;
    }
    struct sio_packet p;
    enum sio_status rc = sio_parse((const char *)data, len, &p);
    if (rc != SIO_OK) {
        log_warn_rl(5, "session %llu: bad Socket.IO packet: %s, closing", (unsigned long long)s->id,
                    sio_status_str(rc));
        gw_eio_close(s, 1002, "invalid packet");
        return;
    }
    bool main_ns = p.nsp_len == 1 && p.nsp[0] == '/';
    switch (p.type) {
    case SIO_CONNECT:
        if (!main_ns)
            connect_error(s, p.nsp, p.nsp_len, NULL, "Invalid namespace");
        else
            on_connect(g, s, st, &p);
        return;
    case SIO_DISCONNECT:
        if (main_ns) {
            st->goodbye = true; /* said goodbye: it will not come back */
            gw_eio_close(s, 1000, "client disconnect");
        }
        return;
    case SIO_EVENT:
        if (main_ns && st->connected)
            on_event(g, s, via, st, &p);
        return;
    case SIO_BINARY_EVENT:
    case SIO_BINARY_ACK:
        gw_eio_close(s, 1003, "binary events are not supported");
        return;
    default:
        return; /* acks to our (ack-less) events: nothing to do */
    }
}

const struct gw_eio_handlers gw_sio_handlers = {
    .on_open = sio_open,
    .on_message = sio_message,
    .on_close = sio_close,
    .on_tick = sio_tick,
};

void gw_sio_announce_all(struct gw *g)
{
    struct gw_sess *s;
    TAILQ_FOREACH(s, &g->eio.all, link)
    {
        struct gw_sio *st = s->app;
        if (st && st->connected && !(s->flags & GW_SESS_OLD_REG))
            st->open_sent =
                gw_bus_open(&g->bus, s->id, st->life.user_id, GW_CLIENT_SIO, st->token, NULL) ||
                st->open_sent;
    }
}

/* ---- deliveries from the broker ------------------------------------------------- */

/* Builds the Socket.IO EVENT text 2["<name>",<d>] (no namespace: main),
 * or 2["<name>",<d>,"<offset>"] with the entry's id as the offset of
 * connection state recovery (the stock client keeps the last argument
 * that is a string as its offset). */
static char *render_event(const struct ev_entry *e, size_t *len, bool offset)
{
    const struct ev_name *nm = ev_name_find(e->event, e->event_len);
    if (!nm)
        return NULL;
    const char *d = e->data;
    size_t dl = e->data ? e->data_len : 0;
    if (nm->sio_member && dl) {
        /* {"<member>":<value>} -> <value>: the broker writes it so. */
        size_t ml = strlen(nm->sio_member);
        if (dl > ml + 5 && d[0] == '{' && d[1] == '"' && memcmp(d + 2, nm->sio_member, ml) == 0 &&
            d[2 + ml] == '"' && d[3 + ml] == ':' && d[dl - 1] == '}') {
            d += ml + 4;
            dl -= ml + 5;
        }
    }
    size_t nl = strlen(nm->sio);
    size_t ol = offset && e->id ? e->id_len : 0;
    char *buf = malloc(nl + dl + ol + 12);
    if (!buf)
        return NULL;
    size_t n = 0;
    buf[n++] = '0' + SIO_EVENT;
    buf[n++] = '[';
    buf[n++] = '"';
    memcpy(buf + n, nm->sio, nl);
    n += nl;
    buf[n++] = '"';
    if (dl) {
        buf[n++] = ',';
        memcpy(buf + n, d, dl);
        n += dl;
    }
    if (ol) {
        buf[n++] = ',';
        buf[n++] = '"';
        memcpy(buf + n, e->id, ol);
        n += ol;
        buf[n++] = '"';
    }
    buf[n++] = ']';
    *len = n;
    return buf;
}

/* Renders e into r unless it already is (a failed rendering is tried again
 * by the next call). Returns true when r holds the text. */
static bool render(struct gw_sio_render *r, const struct ev_entry *e, bool offset)
{
    if (!r->text) {
        r->text = render_event(e, &r->m.len, offset);
        r->m.text = r->text;
    }
    return r->text != NULL;
}

void gw_sio_render_release(struct gw_sio_render *r)
{
    gw_eio_msg_release(&r->m);
    free(r->text);
    r->text = NULL;
    r->m.text = NULL;
}

static bool sess_connected(struct gw_sess *s, bool auth_only)
{
    struct gw_sio *st = s->app;
    return st && st->connected && !(s->flags & GW_SESS_CLOSED) && (!auth_only || st->life.user_id);
}

size_t gw_sio_broadcast(struct gw *g, const struct ev_entry *e)
{
    size_t n = 0;
    bool auth = ev_is(e->type, e->type_len, "auth");
    if (g->eio.nsess == 0)
        return 0;
    struct gw_sio_render r = {0};
    if (!render(&r, e, gw_recover_enabled(g)))
        return 0;
    /* Encoded once: every WebSocket session shares one frame, every polling
     * session one packet. */
    struct gw_sess *s;
    TAILQ_FOREACH(s, &g->eio.all, link)
    {
        if (gw_recover_busy(g, s->id)) {
            gw_recover_hold(g, s->id, e);
            continue;
        }
        if (sess_connected(s, auth)) {
            gw_eio_send_msg(s, &r.m);
            n++;
        }
    }
    gw_sio_render_release(&r);
    return n;
}

bool gw_sio_deliver_id(struct gw *g, uint64_t id, const struct ev_entry *e, struct gw_sio_render *r)
{
    struct gw_sess *s = gw_eio_find(&g->eio, id);
    if (!s)
        return false;
    if (!sess_connected(s, false))
        return true;
    if (ev_is(e->type, e->type_len, "kick")) {
        if (ev_is(e->event, e->event_len, "unknown-user")) {
            /* The broker refused the CONNECT we already answered: as
             * Socket.IO's own middleware refusals, a CONNECT_ERROR with the
             * word (the stock client destroys the socket and emits
             * connect_error, whatever it was told before). The session
             * stays, unconnected, until the client closes it or the
             * CONNECT deadline passes. */
            struct gw_sio *st = s->app;
            st->connected = false;
            st->life.user_id = 0;
            st->connect_deadline_ms = gw_now_ms() + g->cfg.sio_connect_timeout_ms;
            connect_error(s, "/", 1, "unknown-user", "unknown user");
        } else {
            server_disconnect(s, "closed by the server");
        }
    } else if (ev_is(e->type, e->type_len, "ack")) {
        send_sio(s, SIO_ACK, (int64_t)e->req, e->data ? e->data : "[]", e->data ? e->data_len : 2);
    } else {
        if (render(r, e, gw_recover_enabled(g)))
            gw_eio_send_msg(s, &r->m);
    }
    return true;
}

bool gw_sio_send_one(struct gw *g, uint64_t id, const struct ev_entry *e, bool auth_only)
{
    struct gw_sess *s = gw_eio_find(&g->eio, id);
    if (!s)
        return false;
    if (sess_connected(s, auth_only)) {
        struct gw_sio_render r = {0};
        if (render(&r, e, gw_recover_enabled(g)))
            gw_eio_send_msg(s, &r.m);
        gw_sio_render_release(&r);
    }
    return true;
}

bool gw_sio_moved(struct gw *g, uint64_t id)
{
    struct gw_sess *s = gw_eio_find(&g->eio, id);
    if (!s)
        return false;
    struct gw_sio *st = s->app;
    if (st && !gw_recover_busy(g, id)) {
        /* Recovered elsewhere: this is a stale copy of the session. The
         * broker knows it elsewhere now, so no close is published. */
        st->open_sent = false;
        gw_eio_close(s, 1000, "session moved");
    }
    return true;
}

void gw_sio_session_ready(struct gw *g, uint64_t id, const char *pid)
{
    struct gw_sess *s = gw_eio_find(&g->eio, id);
    if (!s || !s->app)
        return;
    connect_reply(s, pid, NULL);
    log_debug("session %llu: connected (%s)", (unsigned long long)id, pid);
}

void gw_sio_session_drop(struct gw *g, uint64_t id, bool recoverable)
{
    struct gw_sess *s = gw_eio_find(&g->eio, id);
    if (!s || !s->app)
        return;
    struct gw_sio *st = s->app;
    st->goodbye = !recoverable;
    gw_eio_close(s, 1011, "session recovery failed");
}
