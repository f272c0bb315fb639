/*
 * gw_routes.c - the gateway's HTTP routes: one table from path and method
 * to handler, and the requests relayed to the broker.
 *
 * Why a file of its own: every URL the gateway answers is listed in
 * gw_routes[] below, in the order they are matched, so "what does GET /x
 * do" has one place to look. What the gateway answers by itself: the
 * upgrades (/ws, /socket.io/), /metrics, /healthz, dev login and logout,
 * static files. Everything about other users (lookups, search, chat sent
 * over HTTP, the backend's notifications) is the broker's: those requests
 * are relayed on the bus and the connection is parked (GW_CONN_BUSY) until
 * the "reply" entry (gw_routes_on_reply()) or the request timeout
 * (gw_routes_on_tick()).
 */
#include "gw_routes.h"
#include "gw_bodies.h"
#include "gw_metrics.h"
#include "gw_ws.h"

#include "log.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Static files above this are not served from memory (the web client is a
 * few tens of KB). */
#define GW_STATIC_MAX (4 * 1024 * 1024)
/* Usernames are short; this bounds what we relay for a lookup. */
#define GW_USERNAME_MAX 64
/* A demo login lasts a day. */
#define GW_DEV_LOGIN_TTL_S (24 * 3600)
/* /api/dm/history pages: the broker's own default and cap for a page of a
 * conversation (get-dm-history, PROTOCOL.md §3). */
#define GW_DM_PAGE 50
#define GW_DM_PAGE_MAX 100

/* One request as its route sees it; everything borrowed for the call. */
struct gw_route_req {
    const struct gw_route *route; /* the table entry that matched */
    const struct http_request *http;
    const uint8_t *body;
    size_t body_len;
};
typedef void gw_route_fn(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq);

/* How a route's path is matched. */
enum gw_route_match {
    GW_ROUTE_EXACT,  /* the path itself */
    GW_ROUTE_PREFIX, /* the path and anything under it */
    GW_ROUTE_NAMED,  /* the path followed by a name of at least one byte */
};

struct gw_route {
    const char *path;   /* borrowed (static) */
    uint8_t match;      /* enum gw_route_match */
    const char *method; /* borrowed (static): the one allowed (405 otherwise); NULL: the
                         * handler decides */
    gw_route_fn *fn;
    const char *op; /* borrowed (static): the broker's name for what it relays, or NULL */
};

/* ---- requests relayed to the broker -------------------------------------------- */

/* How a relayed request's answer is finished. */
enum { GW_REQ_PASS = 0, GW_REQ_DEV_LOGIN = 1 };

/* c->app of an HTTP connection parked on the broker's answer: one small
 * allocation per relayed request, none for the others. */
struct gw_pending {
    uint64_t req_id; /* what the "reply" entry must carry */
    uint8_t op;      /* GW_REQ_* */
};

static void pending_free(struct gw_conn *c)
{
    free(c->app);
    c->app = NULL;
}

/* Relays a request to the broker and parks the connection until the answer
 * (or the request timeout); answers 503 when the bus is down. */
static void relay_request(struct gw *g, struct gw_conn *c, const char *op, int64_t user_id,
                          struct json_object *args, uint8_t finish)
{
    struct gw_pending *p = calloc(1, sizeof(*p));
    if (!p) {
        gw_http_error(c, 503, "unavailable", "out of memory");
        return;
    }
    size_t jl;
    const char *js = json_object_to_json_string_length(args, JSON_C_TO_STRING_PLAIN, &jl);
    uint64_t rid = gw_bus_request(&g->bus, c->id, op, user_id, js, jl);
    if (!rid) {
        free(p);
        gw_http_error(c, 503, "unavailable", "the broker cannot be reached");
        return;
    }
    p->req_id = rid;
    p->op = finish;
    c->app = p;
    c->flags |= GW_CONN_BUSY;
    c->deadline_ms = gw_now_ms() + g->cfg.request_timeout_ms;
}

/* ---- routes relayed to the broker ---------------------------------------------- */

static void route_online_status(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    const struct gw_route *r = rq->route;
    const struct http_request *req = rq->http;
    char name[GW_USERNAME_MAX + 1];
    const char *raw = req->path + strlen(r->path);
    size_t raw_len = req->path_len - strlen(r->path);
    long nl = http_percent_decode(raw, raw_len, name, sizeof(name));
    if (nl < 1 || memchr(name, '/', (size_t)nl)) {
        gw_http_error(c, 404, "unknown-user", "no such user");
        return;
    }
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "username", json_object_new_string_len(name, (int)nl));
    relay_request(g, c, r->op, 0, args, GW_REQ_PASS);
    json_object_put(args);
}

/* The body of a POST as a JSON object (caller frees with json_object_put()),
 * or NULL after answering 400. */
static struct json_object *body_object(struct gw_conn *c, const uint8_t *body, size_t len)
{
    struct json_object *o = ev_json_parse((const char *)body, len, json_type_object);
    if (!o)
        gw_http_error(c, 400, "bad-json", "the body must be a JSON object");
    return o;
}

/* POST /live_chat_message, POST /direct_chat_message: the same events as
 * on the sockets, from the token's user. */
static void route_chat(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    const struct gw_route *r = rq->route;
    const struct http_request *req = rq->http;
    const uint8_t *body = rq->body;
    size_t body_len = rq->body_len;
    int64_t exp, uid = gw_auth_http(&g->auth, c, req, &exp);
    if (!uid)
        return;
    struct json_object *args = body_object(c, body, body_len);
    if (!args)
        return;
    if (gw_auth_chat_allowed(&g->auth, c))
        relay_request(g, c, r->op, uid, args, GW_REQ_PASS);
    else
        gw_http_error(c, 429, "rate-limited", "too many messages from this address: slow down");
    json_object_put(args);
}

/* Parses a query parameter of decimal digits; absent: def. Returns -1 when
 * malformed. */
static long query_number(const struct http_request *req, const char *name, long def)
{
    const char *v;
    size_t vl;
    if (!req->query || !http_query_param(req->query, req->query_len, name, &v, &vl))
        return def;
    if (vl == 0 || vl > 9)
        return -1;
    long x = 0;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* GET /users/search?q=&limit=&offset= (docs/API.md). */
static void route_search(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    const struct gw_route *r = rq->route;
    const struct http_request *req = rq->http;
    char q[GW_USERNAME_MAX + 1] = "";
    const char *v;
    size_t vl;
    if (req->query && http_query_param(req->query, req->query_len, "q", &v, &vl) && vl &&
        http_percent_decode(v, vl, q, sizeof(q)) < 0) {
        gw_http_error(c, 400, "bad-field", "q must be a prefix of at most 64 characters");
        return;
    }
    long limit = query_number(req, "limit", 20), offset = query_number(req, "offset", 0);
    if (limit < 1 || limit > 50 || offset < 0) {
        gw_http_error(c, 400, "bad-field", "limit must be 1..50 and offset >= 0");
        return;
    }
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "q", json_object_new_string(q));
    json_object_object_add(args, "limit", json_object_new_int64(limit));
    json_object_object_add(args, "offset", json_object_new_int64(offset));
    relay_request(g, c, r->op, 0, args, GW_REQ_PASS);
    json_object_put(args);
}

/*
 * POST /auth/dev-login {"username"} (HERALD_DEV_LOGIN=1 only): looks the
 * user up through the broker, then sets the accessToken cookie to a token
 * signed with our own secret, so the demo page logs in without an
 * application backend. Anyone may log in as anyone: never enable it in
 * production.
 */
static void route_dev_login(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    const struct gw_route *r = rq->route;
    const uint8_t *body = rq->body;
    size_t body_len = rq->body_len;
    if (!g->cfg.dev_login) {
        gw_http_error(c, 404, "not-found", "dev login is not enabled (HERALD_DEV_LOGIN=1)");
        return;
    }
    if (strcasecmp(g->cfg.jwt_alg, "HS256") != 0) {
        gw_http_error(c, 501, "not-implemented", "dev login needs HS256 (the gateway signs)");
        return;
    }
    struct json_object *args = body_object(c, body, body_len), *v;
    if (!args)
        return;
    if (!json_object_object_get_ex(args, "username", &v) ||
        !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) < 1 ||
        json_object_get_string_len(v) > GW_USERNAME_MAX) {
        gw_http_error(c, 400, "bad-field", "username must be a string");
    } else {
        relay_request(g, c, r->op, 0, args, GW_REQ_DEV_LOGIN);
    }
    json_object_put(args);
}

/* The broker found the user: sign, set the cookie, answer {id, username}. */
static void finish_dev_login(struct gw *g, struct gw_conn *c, const struct ev_entry *e)
{
    struct json_object *o = NULL, *id = NULL, *name = NULL;
    if (e->status == 200)
        o = ev_json_parse(e->data, e->data_len, json_type_object);
    if (!o || !json_object_object_get_ex(o, "id", &id) ||
        !json_object_object_get_ex(o, "username", &name)) {
        int status = e->status >= 400 && e->status <= 599 ? e->status : 502;
        gw_http_respond(c, status, "application/json", NULL, e->data ? e->data : "{}",
                        e->data ? e->data_len : 2, true);
        json_object_put(o);
        return;
    }
    char *tok = jwt_auth_sign("HS256", g->auth.jwt.key, g->auth.jwt.key_len,
                              json_object_get_int64(id), (int64_t)time(NULL) + GW_DEV_LOGIN_TTL_S,
                              0, g->auth.jwt.iss, g->auth.jwt.aud);
    if (!tok) {
        gw_http_error(c, 500, "internal", "cannot sign a token");
        json_object_put(o);
        return;
    }
    char hdr[JWT_AUTH_MAX_TOKEN + 256];
    snprintf(hdr, sizeof(hdr), "Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d\r\n",
             g->cfg.cookie_name, tok, GW_DEV_LOGIN_TTL_S);
    free(tok);
    size_t jl;
    const char *js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &jl);
    log_info("conn %llu: dev login as user %lld", (unsigned long long)c->id,
             (long long)json_object_get_int64(id));
    gw_http_respond(c, 200, "application/json", hdr, js, jl, true);
    json_object_put(o);
}

/* POST /auth/logout: forgets the cookie (the page closes its socket). */
static void route_logout(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    (void)rq;
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "Set-Cookie: %s=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0\r\n",
             g->cfg.cookie_name);
    GW_HTTP_RESPOND_LIT(c, 200, "application/json", hdr, GW_BODY_LOGGED_OUT, true);
}

/* The application backend's routes (/api/...): true when req carries the
 * API key, else false after answering 403 (no key configured here) or 401
 * (logged with what, the route's name). */
static bool api_key_ok(struct gw *g, struct gw_conn *c, const struct http_request *req,
                       const char *what)
{
    if (!g->cfg.api_key || !*g->cfg.api_key) {
        gw_http_error(c, 403, "forbidden", "no API key is configured on this gateway");
        return false;
    }
    if (!gw_auth_api_key_valid(&g->auth, req)) {
        log_warn_rl(5, "conn %llu: %s with a missing or wrong API key: 401",
                    (unsigned long long)c->id, what);
        gw_http_error(c, 401, "bad-api-key", "a valid API key is required");
        return false;
    }
    return true;
}

/* POST /api/notify/<event>: the application backend's notifications. */
static void route_notify(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    const struct gw_route *r = rq->route;
    const struct http_request *req = rq->http;
    const uint8_t *body = rq->body;
    size_t body_len = rq->body_len;
    static const char *const events[] = {"profile-update", "game-stats-update", "account-deleted"};
    const char *name = req->path + strlen(r->path);
    size_t nl = req->path_len - strlen(r->path), i;
    for (i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        if (ev_is(name, nl, events[i]))
            break;
    if (i == sizeof(events) / sizeof(events[0])) {
        gw_http_error(c, 404, "not-found", "no such notification");
        return;
    }
    if (!ev_is(req->method, req->method_len, "POST")) {
        gw_http_error(c, 405, "method-not-allowed", "use POST");
        return;
    }
    if (!api_key_ok(g, c, req, "notify"))
        return;
    struct json_object *args = body_object(c, body, body_len);
    if (!args)
        return;
    relay_request(g, c, events[i], 0, args, GW_REQ_PASS);
    json_object_put(args);
}

/* Parses the query parameter name as an id (1 to 18 digits: 63 bits cannot
 * overflow). 1 with *out set, 0 absent, -1 malformed (empty, a sign, not
 * digits, zero, too long). */
static int query_id(const struct http_request *req, const char *name, int64_t *out)
{
    const char *v;
    size_t vl;
    if (!req->query || !http_query_param(req->query, req->query_len, name, &v, &vl))
        return 0;
    if (vl == 0 || vl > 18)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    if (x <= 0)
        return -1;
    *out = x;
    return 1;
}

/*
 * GET /api/dm/history?user=&with=&before=&limit= (docs/API.md): the stored
 * conversation of two users, for the application's own pages. The query is
 * checked here, so a mistake is named before anything is relayed (400
 * bad-field); whether the users exist is the broker's to say (404).
 */
static void route_dm_history(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    const struct http_request *req = rq->http;
    if (!api_key_ok(g, c, req, "dm history"))
        return;
    int64_t user = 0, with = 0, before = 0;
    if (query_id(req, "user", &user) != 1) {
        gw_http_error(c, 400, "bad-field", "user must be a user id (a positive integer)");
        return;
    }
    if (query_id(req, "with", &with) != 1) {
        gw_http_error(c, 400, "bad-field", "with must be a user id (a positive integer)");
        return;
    }
    if (query_id(req, "before", &before) < 0) {
        gw_http_error(c, 400, "bad-field", "before must be a message id (a positive integer)");
        return;
    }
    long limit = query_number(req, "limit", GW_DM_PAGE);
    if (limit < 1 || limit > GW_DM_PAGE_MAX) {
        gw_http_error(c, 400, "bad-field", "limit must be 1..100");
        return;
    }
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "user", json_object_new_int64(user));
    json_object_object_add(args, "with", json_object_new_int64(with));
    if (before)
        json_object_object_add(args, "before", json_object_new_int64(before));
    json_object_object_add(args, "limit", json_object_new_int64(limit));
    relay_request(g, c, rq->route->op, 0, args, GW_REQ_PASS);
    json_object_put(args);
}

/* Parses an id of 1 to 16 digits (at most 2^53 - 1, as tokens carry) from
 * s/len; 0 when it is not one. */
static int64_t path_id(const char *s, size_t len)
{
    if (len == 0 || len > 16)
        return 0;
    int64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        x = x * 10 + (s[i] - '0');
    }
    return x <= JWT_AUTH_MAX_USER_ID ? x : 0;
}

/*
 * PUT /api/users/:id {"username","avatar"?}: create or update (201/200);
 * DELETE /api/users/:id: the account is deleted, as account-deleted
 * (PROTOCOL.md §6a). The id comes from the path; one in the body is
 * replaced by it.
 */
/* The provisioning routes' common start: PUT (*put true) or DELETE, with
 * the API key. false after answering 405 or the key's refusal. */
static bool provisioning_ok(struct gw *g, struct gw_conn *c, const struct http_request *req,
                            bool *put)
{
    *put = ev_is(req->method, req->method_len, "PUT");
    if (!*put && !ev_is(req->method, req->method_len, "DELETE")) {
        gw_http_error(c, 405, "method-not-allowed", "use PUT or DELETE");
        return false;
    }
    return api_key_ok(g, c, req, "provisioning");
}

static void route_users(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    const struct http_request *req = rq->http;
    const char *raw = req->path + strlen(rq->route->path);
    int64_t id = path_id(raw, req->path_len - strlen(rq->route->path));
    bool put;
    if (!provisioning_ok(g, c, req, &put))
        return;
    if (!id) {
        gw_http_error(c, 400, "bad-field", "the path must end in a user id (1..2^53-1)");
        return;
    }
    struct json_object *args =
        put ? body_object(c, rq->body, rq->body_len) : json_object_new_object();
    if (!args)
        return;
    json_object_object_add(args, "userId", json_object_new_int64(id));
    relay_request(g, c, put ? "user-put" : "user-delete", 0, args, GW_REQ_PASS);
    json_object_put(args);
}

/* PUT / DELETE /api/friendships {"userId","friendId"}. */
static void route_friendships(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    bool put;
    if (!provisioning_ok(g, c, rq->http, &put))
        return;
    struct json_object *args = body_object(c, rq->body, rq->body_len);
    if (!args)
        return;
    relay_request(g, c, put ? "friendship-put" : "friendship-delete", 0, args, GW_REQ_PASS);
    json_object_put(args);
}

/* POST /api/online-status {"ids":[...]} (at most 1000) -> {"online":[...]}:
 * from this gateway's online list (gw_online.h); relayed to the broker,
 * which answers from memory, only while the list is loading. */
static void route_online_ids(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    if (!api_key_ok(g, c, rq->http, "online-status"))
        return;
    struct json_object *args = body_object(c, rq->body, rq->body_len);
    if (!args)
        return;
    if (!g->online.known) {
        relay_request(g, c, rq->route->op, 0, args, GW_REQ_PASS);
        json_object_put(args);
        return;
    }
    if (!gw_online_ids_valid(args)) {
        json_object_put(args);
        gw_http_error(c, 400, "bad-field", "ids must be an array of at most 1000 user ids");
        return;
    }
    int64_t next;
    size_t len;
    char *v = gw_online_answer(&g->online, GW_ONLINE_IDS, args, 0, 0, 0, &next, &len);
    json_object_put(args);
    char *out = v ? malloc(len + 16) : NULL;
    if (!out) {
        free(v);
        gw_http_error(c, 503, "unavailable", "out of memory");
        return;
    }
    int n = snprintf(out, len + 16, "{\"online\":%s}", v);
    gw_http_respond(c, 200, "application/json", NULL, out, (size_t)n, true);
    free(out);
    free(v);
}

/* ---- the routes the gateway answers itself ------------------------------------- */

/* /socket.io/: the origin rule before a session exists: a foreign page's
 * handshake or upgrade with the victim's cookie never gets one (403, as on
 * /ws), whatever it would send in CONNECT later. */
static void route_socketio(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    if (gw_auth_foreign_cookie(&g->auth, rq->http)) {
        gw_auth_refuse_foreign_origin(&g->auth, c, rq->http);
        return;
    }
    gw_eio_request(&g->eio, c, rq->http, rq->body, rq->body_len);
}

static void route_ws(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    gw_ws_upgrade(g, c, rq->http);
}

static void route_metrics(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    (void)rq;
    gw_metrics_respond(g, c);
}

/* Answers any method, as it always has (method NULL in the table). */
static void route_healthz(struct gw *g, struct gw_conn *c, const struct gw_route_req *rq)
{
    (void)rq;
    bool ok = gw_bus_healthy(&g->bus);
    char b[128];
    int bl = snprintf(b, sizeof(b), "{\"status\":\"%s\",\"redis\":%s,\"broker\":%s}",
                      ok ? "ok" : "unavailable", g->bus.pub.up ? "true" : "false",
                      g->bus.broker_alive ? "true" : "false");
    gw_http_respond(c, ok ? 200 : 503, "application/json", NULL, b, (size_t)bl, true);
}

/* ---- static files ------------------------------------------------------------- */

static const char *content_type_for(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/*
 * Serves a file under the web root. The decoded path may not contain a ".."
 * or hidden segment, and the resolved file must still lie under the root
 * (symlinks cannot lead out).
 */
static void serve_static(struct gw *g, struct gw_conn *c, const struct http_request *req)
{
    char rel[1024], full[PATH_MAX + 1100], real[PATH_MAX], root[PATH_MAX];
    long rl = http_percent_decode(req->path, req->path_len, rel, sizeof(rel) - 16);
    if (rl < 1 || rel[0] != '/') {
        gw_http_error(c, 400, "bad-path", "bad path");
        return;
    }
    for (const char *s = rel; *s; s++)
        if (*s == '\\') {
            gw_http_error(c, 400, "bad-path", "bad path");
            return;
        }
    for (const char *s = rel; (s = strchr(s, '/')) != NULL; s++)
        if (s[1] == '.') {
            gw_http_error(c, 404, "not-found", "no such file");
            return;
        }
    if (rel[rl - 1] == '/')
        strcat(rel, "index.html");
    if (!g->cfg.web_root || !realpath(g->cfg.web_root, root)) {
        gw_http_error(c, 404, "not-found", "no web root");
        return;
    }
    snprintf(full, sizeof(full), "%s%s", root, rel);
    size_t rootl = strlen(root);
    if (!realpath(full, real) || strncmp(real, root, rootl) != 0 || real[rootl] != '/') {
        gw_http_error(c, 404, "not-found", "no such file");
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > GW_STATIC_MAX) {
        if (fd >= 0)
            close(fd);
        gw_http_error(c, 404, "not-found", "no such file");
        return;
    }
    char *body = malloc((size_t)st.st_size + 1);
    ssize_t got = body ? read(fd, body, (size_t)st.st_size) : -1;
    close(fd);
    if (got != st.st_size) {
        free(body);
        gw_http_error(c, 500, "internal", "read failed");
        return;
    }
    gw_http_respond(c, 200, content_type_for(real), "Cache-Control: no-cache\r\n", body,
                    (size_t)got, true);
    free(body);
}

/* ---- the table ------------------------------------------------------------------ */

/* Matched in this order; a request no route takes is a static file (GET)
 * or 405. */
static const struct gw_route gw_routes[] = {
    {"/socket.io/", GW_ROUTE_PREFIX, NULL, route_socketio, NULL},
    {"/ws", GW_ROUTE_EXACT, "GET", route_ws, NULL},
    {"/metrics", GW_ROUTE_EXACT, "GET", route_metrics, NULL},
    {"/healthz", GW_ROUTE_EXACT, NULL, route_healthz, NULL},
    {"/live_chat_message", GW_ROUTE_EXACT, "POST", route_chat, "livechat"},
    {"/direct_chat_message", GW_ROUTE_EXACT, "POST", route_chat, "direct_message"},
    /* The notification's name decides 404 before the method decides 405. */
    {"/api/notify/", GW_ROUTE_NAMED, NULL, route_notify, NULL},
    {"/api/dm/history", GW_ROUTE_EXACT, "GET", route_dm_history, "dm-history"},
    {"/api/users/", GW_ROUTE_NAMED, NULL, route_users, NULL},
    {"/api/friendships", GW_ROUTE_EXACT, NULL, route_friendships, NULL},
    {"/api/online-status", GW_ROUTE_EXACT, "POST", route_online_ids, "online-ids"},
    {"/auth/dev-login", GW_ROUTE_EXACT, "POST", route_dev_login, "user"},
    {"/auth/logout", GW_ROUTE_EXACT, "POST", route_logout, NULL},
    {"/users/search", GW_ROUTE_EXACT, "GET", route_search, "search"},
    {"/online-status/", GW_ROUTE_NAMED, "GET", route_online_status, "online-status"},
};

static bool path_is(const struct http_request *req, const char *p)
{
    return ev_is(req->path, req->path_len, p);
}

static bool path_starts(const struct http_request *req, const char *prefix)
{
    size_t n = strlen(prefix);
    return req->path_len >= n && memcmp(req->path, prefix, n) == 0;
}

static bool route_matches(const struct gw_route *r, const struct http_request *req)
{
    switch (r->match) {
    case GW_ROUTE_EXACT:
        return path_is(req, r->path);
    case GW_ROUTE_PREFIX:
        return path_starts(req, r->path);
    default:
        return req->path_len > strlen(r->path) && path_starts(req, r->path);
    }
}

void gw_routes_on_request(struct gw *g, struct gw_conn *c, const struct http_request *req,
                          const uint8_t *body, size_t body_len)
{
    for (size_t i = 0; i < sizeof(gw_routes) / sizeof(gw_routes[0]); i++) {
        const struct gw_route *r = &gw_routes[i];
        if (!route_matches(r, req))
            continue;
        if (r->method && !ev_is(req->method, req->method_len, r->method)) {
            char why[32];
            snprintf(why, sizeof(why), "use %s", r->method);
            gw_http_error(c, 405, "method-not-allowed", why);
            return;
        }
        struct gw_route_req rq = {.route = r, .http = req, .body = body, .body_len = body_len};
        r->fn(g, c, &rq);
        return;
    }
    if (!ev_is(req->method, req->method_len, "GET")) {
        gw_http_error(c, 405, "method-not-allowed", "method not allowed here");
        return;
    }
    serve_static(g, c, req);
}

/*
 * Limits tighter before authentication (docs/SECURITY.md): a request head
 * announces a body over --max-body-unauth. Its credentials (token, API key,
 * or an authenticated Socket.IO session) are checked before a byte of the
 * body is buffered: with them the route's own cap applies (--max-body, or
 * --max-payload on /socket.io/), without them --max-body-unauth does.
 */
bool gw_routes_on_large_body(struct gw *g, struct gw_conn *c, const struct http_request *req)
{
    if (path_starts(req, "/socket.io/"))
        return gw_eio_body_allowed(&g->eio, c, req);
    bool authed;
    if (path_starts(req, "/api/")) {
        authed = gw_auth_api_key_valid(&g->auth, req);
    } else {
        int64_t uid = 0, exp = 0;
        enum jwt_auth_status st;
        authed = gw_auth_identify(&g->auth, req, &uid, &exp, &st) == GW_ID_OK;
    }
    size_t cap = (size_t)(authed ? g->cfg.max_body : g->cfg.max_body_unauth);
    if (req->content_length <= cap)
        return true;
    enum gw_limit l = authed ? GW_LIMIT_BODY : GW_LIMIT_BODY_UNAUTH;
    g->net.n_limit[l]++;
    log_warn_rl(5, "conn %llu: %.*s with a %zu-byte body over the %s cap (%zu): 413",
                (unsigned long long)c->id, (int)(req->path_len > 64 ? 64 : req->path_len),
                req->path, req->content_length, gw_limit_name(l), cap);
    gw_http_error(c, 413, "too-large",
                  authed ? "the request body is too large"
                         : "the request body is too large for a request without valid credentials");
    return false;
}

/* ---- the broker's answers ------------------------------------------------------ */

void gw_routes_on_reply(struct gw *g, const struct ev_entry *e)
{
    struct gw_conn *c = gw_conn_find(&g->net, e->conn);
    struct gw_pending *p = c && !(c->flags & GW_CONN_WS) ? c->app : NULL;
    if (!p || !(c->flags & GW_CONN_BUSY) || p->req_id != e->req)
        return; /* gone, or already answered by the timeout */
    uint8_t op = p->op;
    pending_free(c);
    if (op == GW_REQ_DEV_LOGIN) {
        finish_dev_login(g, c, e);
        return;
    }
    int status = e->status >= 100 && e->status <= 599 ? e->status : 500;
    gw_http_respond(c, status, "application/json", NULL, e->data ? e->data : "{}",
                    e->data ? e->data_len : 2, true);
}

void gw_routes_on_tick(struct gw *g, struct gw_conn *c, int64_t now_ms)
{
    if (!(c->flags & GW_CONN_BUSY) || now_ms < c->deadline_ms)
        return;
    log_warn_rl(5, "conn %llu: the broker did not answer in %ld ms", (unsigned long long)c->id,
                g->cfg.request_timeout_ms);
    pending_free(c);
    gw_http_error(c, 503, "unavailable", "the broker did not answer in time");
}

void gw_routes_on_closed(struct gw *g, struct gw_conn *c)
{
    (void)g;
    pending_free(c);
}
