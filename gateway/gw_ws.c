/*
 * gw_ws.c - the raw /ws endpoint; see gw_ws.h.
 *
 * A /ws client costs its connection (gw_net) plus one small struct here:
 * this endpoint holds tens of thousands of idle users per process, so
 * nothing else is kept per client (no buffers, no timers: the net layer's
 * sweep calls gw_ws_on_tick()).
 */
#include "gw_ws.h"
#include "gw_bodies.h"
#include "gw_recover.h"

#include "log.h"
#include "utf8.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* c->app of a /ws connection. */
/* One per /ws client: 24 bytes, a 32-byte glibc chunk (GW_WS_CLIENT_MAX_SIZE). */
struct gw_ws_client {
    struct gw_token_life life; /* who, and until when */
    uint32_t token;            /* its recovery token (gw_recover.h), 0: none */
    bool open_sent : 1;        /* the broker was told about it */
    bool goodbye : 1;          /* closed by us on purpose: it will not come back */
};
#define GW_WS_CLIENT_MAX_SIZE 24
_Static_assert(sizeof(void *) != 8 || sizeof(struct gw_ws_client) <= GW_WS_CLIENT_MAX_SIZE,
               "struct gw_ws_client grew past its glibc chunk: see GW_WS_CLIENT_MAX_SIZE");

bool gw_ws_is_client(const struct gw_conn *c)
{
    return (c->flags & GW_CONN_WS) && c->app;
}

static void announce(struct gw *g, struct gw_conn *c)
{
    struct gw_ws_client *cl = c->app;
    if (gw_bus_open(&g->bus, c->id, cl->life.user_id, GW_CLIENT_WS, cl->token, NULL))
        cl->open_sent = true;
}

/* {"type":"session","id":<pid>,"offset":<start>}: the first frame of a
 * session that may come back (PROTOCOL.md §4a). */
static void send_session(struct gw_conn *c, const char *pid, const char *offset)
{
    char buf[GW_PID_MAX + EV_OFFSET_MAX + 64];
    int n = snprintf(buf, sizeof(buf), "{\"type\":\"session\",\"id\":\"%s\",\"offset\":\"%s\"}",
                     pid, offset);
    gw_ws_send_text(c, buf, (size_t)n);
}

/* A ?resume=<pid>:<offset> asked for at the upgrade (percent-encoded or
 * not), copied out of the request before it is gone. */
struct resume_ask {
    char pid[GW_PID_MAX + 1];
    char offset[EV_OFFSET_MAX + 1];
};

static bool resume_parse(const struct http_request *req, struct resume_ask *ask)
{
    const char *v;
    size_t vl;
    char buf[GW_PID_MAX + EV_OFFSET_MAX + 8];
    if (!req->query || !http_query_param(req->query, req->query_len, "resume", &v, &vl))
        return false;
    if (http_percent_decode(v, vl, buf, sizeof(buf)) < 0)
        return false;
    char *sep = strrchr(buf, ':');
    if (!sep)
        return false;
    *sep = '\0';
    const char *offset = sep + 1;
    if (strlen(buf) > GW_PID_MAX || !ev_offset_valid(offset, strlen(offset)))
        return false;
    snprintf(ask->pid, sizeof(ask->pid), "%s", buf);
    snprintf(ask->offset, sizeof(ask->offset), "%s", offset);
    return true;
}

/* The connection takes over the pid's id and the broker is asked. False:
 * a fresh session (a bad pid, the id taken here, or no bus). */
static bool try_resume(struct gw *g, struct gw_conn *c, const struct resume_ask *ask)
{
    struct gw_ws_client *cl = c->app;
    uint64_t id;
    uint32_t token;
    char start[EV_OFFSET_MAX + 1];
    if (!gw_recover_pid_parse(ask->pid, strlen(ask->pid), &id, &token, start))
        return false;
    if (id != c->id && (gw_eio_find(&g->eio, id) || !gw_net_take_id(&g->net, c, id)))
        return false;
    cl->token = token;
    if (!gw_recover_begin(g, c->id, false, cl->life.user_id, token, ask->pid, ask->offset))
        return false;
    cl->open_sent = true;
    log_debug("conn %llu: coming back from %s", (unsigned long long)c->id, ask->offset);
    return true;
}

void gw_ws_upgrade(struct gw *g, struct gw_conn *c, const struct http_request *req)
{
    int64_t exp = 0, uid = gw_auth_http(&g->auth, c, req, &exp);
    if (!uid)
        return;
    const char *key, *why;
    size_t kl;
    int hs = ws_handshake_check(req, &key, &kl, &why);
    if (hs != 0) {
        log_info("conn %llu: bad WebSocket handshake: %s: %d", (unsigned long long)c->id, why, hs);
        if (hs == 426) {
            GW_HTTP_RESPOND_LIT(c, 426, "application/json", "Sec-WebSocket-Version: 13\r\n",
                                GW_BODY_UPGRADE_REQUIRED, false);
            return;
        }
        gw_http_error(c, hs, "bad-handshake", why);
        return;
    }
    struct resume_ask ask;
    bool resume = gw_recover_enabled(g) && resume_parse(req, &ask);
    /* Allocated before the 101, so that running out of memory is still an
     * HTTP answer. */
    struct gw_ws_client *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        gw_http_error(c, 503, "unavailable", "out of memory");
        return;
    }
    gw_ws_accept(c, key, kl, NULL);
    if (!(c->flags & GW_CONN_WS)) {
        free(cl); /* answered 500 by gw_ws_accept() */
        return;
    }
    c->app = cl;
    gw_token_life_start(&g->auth, &cl->life, uid, exp, gw_now_ms());
    log_debug("conn %llu: user %lld connected on /ws", (unsigned long long)c->id, (long long)uid);
    if (gw_recover_enabled(g)) {
        if (resume && try_resume(g, c, &ask))
            return; /* "resumed" or "session" once the broker has answered */
        cl->token = gw_recover_token();
        if (cl->token) {
            char pid[GW_PID_MAX + 1];
            const char *start = gw_recover_start(g);
            gw_recover_pid(pid, c->id, cl->token, start);
            send_session(c, pid, start);
        }
    }
    announce(g, c);
}

void gw_ws_announce_all(struct gw *g)
{
    struct gw_conn *c;
    GW_NET_FOREACH(c, &g->net)
    {
        /* One that is closing is not announced: its close follows. */
        if (gw_ws_is_client(c) && !(c->flags & (GW_CONN_DEAD | GW_CONN_CLOSE_SENT)) &&
            !(c->flags & GW_CONN_OLD_REG))
            announce(g, c);
    }
}

void gw_ws_mark_old(struct gw *g)
{
    struct gw_conn *c;
    GW_NET_FOREACH(c, &g->net)
    if (gw_ws_is_client(c))
        c->flags |= GW_CONN_OLD_REG;
}

size_t gw_ws_close_old(struct gw *g, uint16_t code, const char *reason)
{
    size_t n = 0;
    struct gw_conn *c;
    GW_NET_FOREACH(c, &g->net)
    {
        if (gw_ws_is_client(c) && (c->flags & GW_CONN_OLD_REG) &&
            !(c->flags & GW_CONN_CLOSE_SENT)) {
            gw_conn_close(c, code, reason);
            n++;
        }
    }
    return n;
}

/* ---- client events ----------------------------------------------------------- */

static void send_raw_error(struct gw_conn *c, const char *code, const char *message)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("error"));
    json_object_object_add(o, "code", json_object_new_string(code));
    json_object_object_add(o, "message", json_object_new_string(message));
    size_t len;
    const char *js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    gw_ws_send_text(c, js, len);
    json_object_put(o);
}

/* refresh-token {"token"}: the lifecycle's verdict as /ws answers it. */
static void refresh_token(struct gw *g, struct gw_conn *c, struct json_object *obj)
{
    struct gw_ws_client *cl = c->app;
    struct json_object *t;
    if (!json_object_object_get_ex(obj, "token", &t) || !json_object_is_type(t, json_type_string)) {
        send_raw_error(c, "bad-field", "refresh-token needs a string token");
        return;
    }
    int64_t uid;
    enum jwt_auth_status st;
    switch (gw_token_life_refresh(&g->auth, &cl->life, json_object_get_string(t),
                                  (size_t)json_object_get_string_len(t), &uid, &st)) {
    case GW_TOKEN_OK: {
        static const char ok[] = "{\"type\":\"token-refreshed\"}";
        gw_ws_send_text(c, ok, sizeof(ok) - 1);
        return;
    }
    case GW_TOKEN_REFUSED:
    case GW_TOKEN_EXPIRED:
        log_info("conn %llu: refresh-token refused: %s", (unsigned long long)c->id,
                 jwt_auth_status_str(st));
        cl->goodbye = true;
        gw_conn_close(c, 4001, "token refused");
        return;
    case GW_TOKEN_DELETED:
        log_info("conn %llu: refresh-token of deleted account %lld: 4003",
                 (unsigned long long)c->id, (long long)uid);
        cl->goodbye = true;
        gw_conn_close(c, 4003, "account deleted");
        return;
    case GW_TOKEN_OTHER_USER:
        log_warn_rl(5, "conn %llu: refresh-token for another user (%lld, not %lld)",
                    (unsigned long long)c->id, (long long)uid, (long long)cl->life.user_id);
        cl->goodbye = true;
        gw_conn_close(c, 4003, "token belongs to another user");
        return;
    }
}

/* get_online_users (every form) and get_online_count from the gateway's
 * own list; false when the broker must answer (see gw_sio.c). */
static bool online_question(struct gw *g, struct gw_conn *c, const struct ev_client_event *ev,
                            struct json_object *arg)
{
    const struct gw_ws_client *cl = c->app;
    struct gw_online_reply r;
    switch (gw_online_ask(&g->online, arg, ev->flags & EV_CLIENT_COUNT, g->scope_related,
                          cl->life.user_id, &r)) {
    case GW_ONLINE_RELAY:
        return false;
    case GW_ONLINE_REFUSED:
        send_raw_error(c, r.word, r.why);
        return true;
    case GW_ONLINE_ANSWERED:
        break;
    }
    char *out = malloc(r.len + 96);
    if (out) {
        int n;
        if (r.form == GW_ONLINE_COUNT)
            n = snprintf(out, r.len + 96, "{\"type\":\"online_count\",\"count\":%s}", r.value);
        else if (r.form == GW_ONLINE_PAGE && r.next)
            n = snprintf(out, r.len + 96, "{\"type\":\"online_users\",\"users\":%s,\"next\":%lld}",
                         r.value, (long long)r.next);
        else if (r.form == GW_ONLINE_PAGE)
            n = snprintf(out, r.len + 96, "{\"type\":\"online_users\",\"users\":%s,\"next\":null}",
                         r.value);
        else
            n = snprintf(out, r.len + 96, "{\"type\":\"online_users\",\"users\":%s}", r.value);
        gw_ws_send_text(c, out, (size_t)n);
    } else {
        send_raw_error(c, "unavailable", "out of memory");
    }
    free(out);
    free(r.value);
    return true;
}

void gw_ws_on_message(struct gw *g, struct gw_conn *c, uint8_t opcode, const uint8_t *data,
                      size_t len)
{
    struct gw_ws_client *cl = c->app;
    if (opcode != WS_OP_TEXT) {
        send_raw_error(c, "bad-message", "messages are JSON text frames");
        return;
    }
    const char *type = NULL, *err = NULL;
    struct json_object *obj = ev_client_parse((const char *)data, len, &type, &err);
    if (!obj) {
        log_warn_rl(5, "conn %llu: unreadable event: %s", (unsigned long long)c->id, err);
        send_raw_error(c, err, "expected a JSON object with a string type field");
        return;
    }
    const struct ev_client_event *ev = ev_client_event_raw(type, strlen(type));
    if (!ev) {
        send_raw_error(c, "unknown-type", "unknown event type");
    } else if (ev->answer == EV_ANSWER_PING) {
        static const char pong[] = "{\"type\":\"pong\"}";
        gw_ws_send_text(c, pong, sizeof(pong) - 1);
    } else if (ev->answer == EV_ANSWER_REFRESH_TOKEN) {
        refresh_token(g, c, obj);
    } else if (ev->answer == EV_ANSWER_ONLINE && online_question(g, c, ev, obj)) {
        /* answered from our own list */
    } else if ((ev->flags & EV_CLIENT_CHAT) && !gw_auth_chat_allowed(&g->auth, c)) {
        send_raw_error(c, "rate-limited", "too many messages from this address: slow down");
    } else {
        if (!gw_bus_msg(&g->bus, c->id, cl->life.user_id, ev->broker, (const char *)data, len, -1))
            send_raw_error(c, "unavailable", "the service cannot take events now: try again");
    }
    json_object_put(obj);
}

void gw_ws_on_tick(struct gw *g, struct gw_conn *c, int64_t now_ms)
{
    struct gw_ws_client *cl = c->app;
    if (c->flags & GW_CONN_CLOSE_SENT)
        return;
    if (gw_token_life_check(&g->auth, &cl->life, now_ms) == GW_TOKEN_EXPIRED) {
        log_info("conn %llu: token of user %lld expired, closing with 4001",
                 (unsigned long long)c->id, (long long)cl->life.user_id);
        cl->goodbye = true;
        gw_conn_close(c, 4001, "token expired");
    }
}

void gw_ws_on_closed(struct gw *g, struct gw_conn *c)
{
    struct gw_ws_client *cl = c->app;
    gw_recover_cancel(g, c->id);
    if (cl->open_sent)
        gw_bus_close(&g->bus, c->id, !cl->goodbye && cl->token);
    free(cl);
    c->app = NULL;
}

/* ---- delivery of broker entries ------------------------------------------------- */

/*
 * Renders a broker event for /ws connections: {"type":"<raw name>", ...d}.
 * d must be a JSON object; its members are inlined after "type". Returns a
 * complete text frame with one reference, or NULL.
 */
static struct gw_shared *render_raw(const struct ev_entry *e, bool offset)
{
    const struct ev_name *nm = ev_name_find(e->event, e->event_len);
    const char *d = e->data ? e->data : "{}";
    size_t dl = e->data ? e->data_len : 2;
    if (!nm || dl < 2 || d[0] != '{' || d[dl - 1] != '}')
        return NULL;
    size_t tl = strlen(nm->raw);
    bool empty = dl == 2;
    size_t ol = offset && e->id ? e->id_len : 0;
    /* {"type":" + name + " + (,"offset":"<id>") + (, + inner... } | }) */
    size_t plen = 9 + tl + 1 + (ol ? ol + 12 : 0) + (empty ? 1 : dl);
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_frame_header(hdr, WS_OP_TEXT, true, plen, NULL);
    struct gw_shared *s = gw_shared_new(hl + plen);
    if (!s)
        return NULL;
    uint8_t *p = s->data;
    memcpy(p, hdr, hl);
    p += hl;
    memcpy(p, "{\"type\":\"", 9);
    p += 9;
    memcpy(p, nm->raw, tl);
    p += tl;
    *p++ = '"';
    if (ol) {
        memcpy(p, ",\"offset\":\"", 11);
        p += 11;
        memcpy(p, e->id, ol);
        p += ol;
        *p++ = '"';
    }
    if (empty) {
        *p++ = '}';
    } else {
        *p++ = ',';
        memcpy(p, d + 1, dl - 1);
    }
    return s;
}

void gw_ws_render_release(struct gw_ws_render *r)
{
    gw_shared_unref(r->frame);
    r->frame = NULL;
    r->tried = false;
}

size_t gw_ws_broadcast(struct gw *g, const struct ev_entry *e, bool auth_only)
{
    struct gw_shared *raw = render_raw(e, gw_recover_enabled(g));
    if (!raw) {
        log_warn_rl(5, "cannot render event %.*s", (int)e->event_len, e->event);
        return 0;
    }
    size_t n = 0;
    struct gw_conn *c;
    /* Encoded once above; every recipient queues a reference. */
    GW_NET_FOREACH(c, &g->net)
    {
        if (!gw_ws_is_client(c) || (c->flags & GW_CONN_DEAD))
            continue;
        if (gw_recover_busy(g, c->id)) {
            gw_recover_hold(g, c->id, e);
            continue;
        }
        if (auth_only && !((struct gw_ws_client *)c->app)->life.user_id)
            continue;
        gw_conn_send_shared(c, raw);
        n++;
    }
    gw_shared_unref(raw);
    return n;
}

/* A kick's reason word (e->event), as the close reason: it tells the
 * client why ("unknown-user", "account-deleted"). Our broker's words are
 * short ASCII; a word that is too long or not UTF-8, or a code a close frame
 * may not carry (RFC 6455 §7.4), is replaced by the defaults rather than
 * cut into an invalid frame. */
static void kick(struct gw_conn *c, const struct ev_entry *e)
{
    char reason[64] = "closed by the server";
    if (e->event_len > 0 && e->event_len < sizeof(reason) &&
        utf8_valid((const uint8_t *)e->event, e->event_len)) {
        memcpy(reason, e->event, e->event_len);
        reason[e->event_len] = '\0';
    }
    uint16_t code = 1000;
    if (e->status > 0 && e->status <= UINT16_MAX && ws_close_code_valid((uint16_t)e->status))
        code = (uint16_t)e->status;
    gw_conn_close(c, code, reason);
}

bool gw_ws_deliver_id(struct gw *g, uint64_t id, const struct ev_entry *e, struct gw_ws_render *r)
{
    struct gw_conn *c = gw_conn_find(&g->net, id);
    if (!c || !gw_ws_is_client(c))
        return false;
    if (ev_is(e->type, e->type_len, "kick")) {
        ((struct gw_ws_client *)c->app)->goodbye = true;
        kick(c, e);
        return false;
    }
    if (ev_is(e->type, e->type_len, "ack"))
        return false; /* acks answer Socket.IO callbacks: /ws has none */
    if (!r->tried) {
        r->frame = render_raw(e, gw_recover_enabled(g));
        r->tried = true;
    }
    if (!r->frame)
        return false;
    gw_conn_send_shared(c, r->frame);
    return true;
}

bool gw_ws_send_one(struct gw *g, uint64_t id, const struct ev_entry *e, bool auth_only)
{
    struct gw_conn *c = gw_conn_find(&g->net, id);
    if (!c || !gw_ws_is_client(c))
        return false;
    if (auth_only && !((struct gw_ws_client *)c->app)->life.user_id)
        return true;
    struct gw_shared *raw = render_raw(e, gw_recover_enabled(g));
    if (raw) {
        gw_conn_send_shared(c, raw);
        gw_shared_unref(raw);
    }
    return true;
}

bool gw_ws_moved(struct gw *g, uint64_t id)
{
    struct gw_conn *c = gw_conn_find(&g->net, id);
    if (!c || !gw_ws_is_client(c))
        return false;
    if (!gw_recover_busy(g, id)) {
        /* Recovered elsewhere: a stale copy, closed without telling the
         * broker (it knows the session elsewhere now). */
        ((struct gw_ws_client *)c->app)->open_sent = false;
        gw_conn_close(c, 1000, "session moved");
    }
    return true;
}

void gw_ws_session_ready(struct gw *g, uint64_t id, const char *pid, const char *offset)
{
    struct gw_conn *c = gw_conn_find(&g->net, id);
    if (c && gw_ws_is_client(c))
        send_session(c, pid, offset);
}

void gw_ws_session_resumed(struct gw *g, uint64_t id, const char *offset)
{
    struct gw_conn *c = gw_conn_find(&g->net, id);
    if (!c || !gw_ws_is_client(c))
        return;
    char buf[EV_OFFSET_MAX + 48];
    int n = snprintf(buf, sizeof(buf), "{\"type\":\"resumed\",\"offset\":\"%s\"}", offset);
    gw_ws_send_text(c, buf, (size_t)n);
}

void gw_ws_session_drop(struct gw *g, uint64_t id, bool recoverable)
{
    struct gw_conn *c = gw_conn_find(&g->net, id);
    if (!c || !gw_ws_is_client(c))
        return;
    ((struct gw_ws_client *)c->app)->goodbye = !recoverable;
    gw_conn_close(c, 1011, "session recovery failed");
}
