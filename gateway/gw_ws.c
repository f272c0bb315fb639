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

#include "log.h"
#include "utf8.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* c->app of a /ws connection. */
struct gw_ws_client {
    struct gw_token_life life; /* who, and until when */
    bool open_sent;            /* the broker was told about it */
};

bool gw_ws_is_client(const struct gw_conn *c)
{
    return (c->flags & GW_CONN_WS) && c->app;
}

static void announce(struct gw *g, struct gw_conn *c)
{
    struct gw_ws_client *cl = c->app;
    if (gw_bus_open(&g->bus, c->id, cl->life.user_id, GW_CLIENT_WS))
        cl->open_sent = true;
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
    announce(g, c);
}

void gw_ws_announce_all(struct gw *g)
{
    struct gw_conn *c;
    TAILQ_FOREACH(c, &g->net.conns, link)
    {
        /* One that is closing is not announced: its close follows. */
        if (gw_ws_is_client(c) && !(c->flags & (GW_CONN_DEAD | GW_CONN_CLOSE_SENT)) &&
            !(g->fence_below && c->id <= g->fence_below))
            announce(g, c);
    }
}

size_t gw_ws_close_upto(struct gw *g, uint64_t max_id, uint16_t code, const char *reason)
{
    size_t n = 0;
    struct gw_conn *c;
    TAILQ_FOREACH(c, &g->net.conns, link)
    {
        if (gw_ws_is_client(c) && c->id <= max_id && !(c->flags & GW_CONN_CLOSE_SENT)) {
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
        gw_conn_close(c, 4001, "token refused");
        return;
    case GW_TOKEN_DELETED:
        log_info("conn %llu: refresh-token of deleted account %lld: 4003",
                 (unsigned long long)c->id, (long long)uid);
        gw_conn_close(c, 4003, "account deleted");
        return;
    case GW_TOKEN_OTHER_USER:
        log_warn_rl(5, "conn %llu: refresh-token for another user (%lld, not %lld)",
                    (unsigned long long)c->id, (long long)uid, (long long)cl->life.user_id);
        gw_conn_close(c, 4003, "token belongs to another user");
        return;
    }
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
        gw_conn_close(c, 4001, "token expired");
    }
}

void gw_ws_on_closed(struct gw *g, struct gw_conn *c)
{
    struct gw_ws_client *cl = c->app;
    if (cl->open_sent)
        gw_bus_close(&g->bus, c->id);
    free(cl);
    c->app = NULL;
}

/* ---- delivery of broker entries ------------------------------------------------- */

/*
 * Renders a broker event for /ws connections: {"type":"<raw name>", ...d}.
 * d must be a JSON object; its members are inlined after "type". Returns a
 * complete text frame with one reference, or NULL.
 */
static struct gw_shared *render_raw(const struct ev_entry *e)
{
    const struct ev_name *nm = ev_name_find(e->event, e->event_len);
    const char *d = e->data ? e->data : "{}";
    size_t dl = e->data ? e->data_len : 2;
    if (!nm || dl < 2 || d[0] != '{' || d[dl - 1] != '}')
        return NULL;
    size_t tl = strlen(nm->raw);
    bool empty = dl == 2;
    /* {"type":" + name + " + (, + inner... } | }) */
    size_t plen = 9 + tl + 1 + (empty ? 1 : dl);
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
    struct gw_shared *raw = render_raw(e);
    if (!raw) {
        log_warn_rl(5, "cannot render event %.*s", (int)e->event_len, e->event);
        return 0;
    }
    size_t n = 0;
    struct gw_conn *c;
    /* Encoded once above; every recipient queues a reference. */
    TAILQ_FOREACH(c, &g->net.conns, link)
    {
        if (!gw_ws_is_client(c) || (c->flags & GW_CONN_DEAD))
            continue;
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
        kick(c, e);
        return false;
    }
    if (ev_is(e->type, e->type_len, "ack"))
        return false; /* acks answer Socket.IO callbacks: /ws has none */
    if (!r->tried) {
        r->frame = render_raw(e);
        r->tried = true;
    }
    if (!r->frame)
        return false;
    gw_conn_send_shared(c, r->frame);
    return true;
}
