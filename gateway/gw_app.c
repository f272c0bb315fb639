/*
 * gw_app.c - Herald's routes and client events on top of gw_net.
 *
 * What the gateway decides by itself: who a connection is (token sources,
 * origin rule, JWT), liveness (ping/pong, token expiry), static files.
 * Everything about other users (presence, lookups) is the broker's: client
 * events and some HTTP requests are relayed to it, and its answers come
 * back through gw_app_on_entry().
 */
#include "gw.h"
#include "gw_bodies.h"

#include "log.h"
#include "utf8.h"

#include <errno.h>
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

/* How a relayed request's answer is finished (c->req_op). */
enum { GW_REQ_PASS = 0, GW_REQ_DEV_LOGIN = 1 };

static struct gw *app_gw(struct gw_net *n)
{
    return n->h.arg;
}

/* ---- identity -------------------------------------------------------------- */

enum gw_token_source gw_find_token(struct gw *g, const struct http_request *req, char *buf,
                                   size_t size, const char **tok, size_t *len)
{
    const struct http_header *h = http_header_find(req, "authorization");
    if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
        *tok = h->value + 7;
        *len = h->value_len - 7;
        while (*len && **tok == ' ') {
            (*tok)++;
            (*len)--;
        }
        return GW_TOKEN_BEARER;
    }
    h = http_header_find(req, "cookie");
    if (h && http_cookie_find(h->value, h->value_len, g->cfg.cookie_name, tok, len) && *len)
        return GW_TOKEN_COOKIE;
    const char *q;
    size_t ql;
    if (req->query && http_query_param(req->query, req->query_len, "token", &q, &ql) && ql) {
        long dl = http_percent_decode(q, ql, buf, size);
        if (dl > 0) {
            *tok = buf;
            *len = (size_t)dl;
            return GW_TOKEN_QUERY;
        }
    }
    return GW_TOKEN_NONE;
}

/* Cross-site WebSocket hijacking defence: a browser attaches cookies to a
 * WebSocket upgrade from any page, so a cookie-authenticated upgrade must
 * come from our own origin or one on the allowed list. */
bool gw_origin_allowed(struct gw *g, const struct http_request *req)
{
    const struct http_header *o = http_header_find(req, "origin");
    if (!o)
        return true; /* not a browser: it cannot have borrowed a cookie */
    const char *v = o->value;
    size_t vl = o->value_len;
    const char *list = g->cfg.allowed_origins;
    while (list && *list) {
        const char *end = strchr(list, ',');
        size_t l = end ? (size_t)(end - list) : strlen(list);
        while (l && *list == ' ') {
            list++;
            l--;
        }
        while (l && list[l - 1] == ' ')
            l--;
        if ((l == 1 && *list == '*') || (l == vl && strncasecmp(list, v, l) == 0))
            return true;
        list = end ? end + 1 : NULL;
    }
    /* Same origin: scheme://host[:port] with host[:port] equal to Host. */
    const char *sep = memmem(v, vl, "://", 3);
    const struct http_header *host = http_header_find(req, "host");
    if (!sep || !host)
        return false;
    const char *oh = sep + 3;
    size_t ohl = vl - (size_t)(oh - v);
    return ohl == host->value_len && strncasecmp(oh, host->value, ohl) == 0;
}

/* ---- deleted accounts ------------------------------------------------------ */

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

bool gw_user_deleted(const struct gw *g, int64_t user_id)
{
    return g->ndeleted &&
           bsearch(&user_id, g->deleted, g->ndeleted, sizeof(user_id), id_cmp) != NULL;
}

void gw_user_deleted_add(struct gw *g, int64_t user_id)
{
    if (user_id <= 0 || gw_user_deleted(g, user_id))
        return;
    if (g->ndeleted == g->deleted_cap) {
        size_t cap = g->deleted_cap ? g->deleted_cap * 2 : 64;
        int64_t *v = realloc(g->deleted, cap * sizeof(*v));
        if (!v)
            return;
        g->deleted = v;
        g->deleted_cap = cap;
    }
    /* Deletions are rare: keep the array sorted by insertion. */
    size_t i = g->ndeleted;
    while (i > 0 && g->deleted[i - 1] > user_id) {
        g->deleted[i] = g->deleted[i - 1];
        i--;
    }
    g->deleted[i] = user_id;
    g->ndeleted++;
}

/* What identify() found. */
enum gw_identity { GW_ID_OK, GW_ID_NONE, GW_ID_FOREIGN_ORIGIN, GW_ID_REFUSED, GW_ID_DELETED };

/*
 * Who sent an HTTP request, without answering or logging: the token sources
 * of PROTOCOL.md §1, the origin rule for cookies, the JWT checks, deleted
 * accounts. GW_ID_OK sets *uid and *exp; GW_ID_REFUSED sets *st.
 */
static enum gw_identity identify(struct gw *g, const struct http_request *req, int64_t *uid,
                                 int64_t *exp, enum jwt_auth_status *st)
{
    char qbuf[JWT_AUTH_MAX_TOKEN + 1];
    const char *tok = NULL;
    size_t tl = 0;
    enum gw_token_source src = gw_find_token(g, req, qbuf, sizeof(qbuf), &tok, &tl);
    if (src == GW_TOKEN_NONE)
        return GW_ID_NONE;
    if (src == GW_TOKEN_COOKIE && !gw_origin_allowed(g, req))
        return GW_ID_FOREIGN_ORIGIN;
    *st = jwt_auth_verify(&g->jwt, tok, tl, time(NULL), uid, exp);
    if (*st != JWT_AUTH_OK)
        return GW_ID_REFUSED;
    return gw_user_deleted(g, *uid) ? GW_ID_DELETED : GW_ID_OK;
}

/* True when req would be authenticated by the session cookie, from a page
 * of an origin that may not use it. */
static bool foreign_cookie(struct gw *g, const struct http_request *req)
{
    char qbuf[JWT_AUTH_MAX_TOKEN + 1];
    const char *tok;
    size_t tl;
    return gw_find_token(g, req, qbuf, sizeof(qbuf), &tok, &tl) == GW_TOKEN_COOKIE &&
           !gw_origin_allowed(g, req);
}

/* Answers 403 to a cookie sent from a foreign origin (cross-site request
 * forgery or WebSocket hijacking), counted and logged. */
static void refuse_foreign_origin(struct gw *g, struct gw_conn *c, const struct http_request *req)
{
    const struct http_header *o = http_header_find(req, "origin");
    g->net.n_limit[GW_LIMIT_ORIGIN]++;
    log_warn_rl(5, "conn %llu: %.*s with the session cookie from foreign origin %.*s: 403",
                (unsigned long long)c->id, (int)(req->path_len > 64 ? 64 : req->path_len),
                req->path, o ? (int)(o->value_len > 100 ? 100 : o->value_len) : 0,
                o ? o->value : "");
    gw_http_error(c, 403, "origin-forbidden", "this origin may not use the session cookie");
}

/*
 * Who sent an HTTP request that needs a token (/ws, the chat routes).
 * Returns the user id (and *exp), or 0 after answering 401/403; every
 * refusal is logged with its reason.
 */
static int64_t authenticate(struct gw *g, struct gw_conn *c, const struct http_request *req,
                            int64_t *exp)
{
    int64_t uid = 0;
    enum jwt_auth_status st = JWT_AUTH_OK;
    switch (identify(g, req, &uid, exp, &st)) {
    case GW_ID_OK:
        return uid;
    case GW_ID_NONE:
        log_info("conn %llu: %.*s without a token: 401", (unsigned long long)c->id,
                 (int)req->path_len, req->path);
        gw_http_error(c, 401, "auth-required", "an access token is required");
        return 0;
    case GW_ID_FOREIGN_ORIGIN:
        refuse_foreign_origin(g, c, req);
        return 0;
    case GW_ID_REFUSED:
        log_info("conn %llu: token refused: %s: 401", (unsigned long long)c->id,
                 jwt_auth_status_str(st));
        gw_http_error(c, 401, jwt_auth_status_str(st), "the access token was refused");
        return 0;
    case GW_ID_DELETED:
        log_info("conn %llu: token of deleted account %lld: 401", (unsigned long long)c->id,
                 (long long)uid);
        gw_http_error(c, 401, "account-deleted", "this account was deleted");
        return 0;
    }
    return 0;
}

/* ---- per-address chat bucket ------------------------------------------------ */

bool gw_is_chat(const char *type)
{
    return strcmp(type, "livechat") == 0 || strcmp(type, "direct_message") == 0;
}

bool gw_chat_allowed(struct gw *g, const struct gw_conn *via)
{
    if (gw_ip_chat_take(&g->net.ips, via ? via->ip : NULL, gw_now_ms()))
        return true;
    g->net.n_limit[GW_LIMIT_CHAT_RATE_PER_IP]++;
    log_warn_rl(5, "conn %llu: its address is over the chat rate (%g/s): rate-limited",
                via ? (unsigned long long)via->id : 0ULL, g->cfg.chat_rate_per_ip);
    return false;
}

static void upgrade_ws(struct gw *g, struct gw_conn *c, const struct http_request *req)
{
    int64_t exp = 0, uid = authenticate(g, c, req, &exp);
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
    gw_ws_accept(c, key, kl, NULL);
    c->kind = GW_KIND_RAW;
    c->user_id = uid;
    c->token_exp = exp;
    c->flags |= GW_CONN_AUTH;
    c->next_check_ms = gw_now_ms() + g->cfg.token_recheck_ms;
    log_debug("conn %llu: user %lld connected on /ws", (unsigned long long)c->id, (long long)uid);
    if (gw_bus_open(g, c->id, c->user_id, c->kind))
        c->flags |= GW_CONN_OPEN_SENT;
}

/* ---- HTTP routes -------------------------------------------------------- */

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

/* Relays a request to the broker and parks the connection until the answer
 * (or the request timeout). */
static void relay_request(struct gw *g, struct gw_conn *c, const char *op, int64_t user_id,
                          struct json_object *args)
{
    size_t jl;
    const char *js = json_object_to_json_string_length(args, JSON_C_TO_STRING_PLAIN, &jl);
    uint64_t rid = gw_bus_request(g, c, op, user_id, js, jl);
    if (!rid) {
        gw_http_error(c, 503, "unavailable", "the broker cannot be reached");
        return;
    }
    c->req_id = rid;
    c->req_op = GW_REQ_PASS;
    c->flags |= GW_CONN_BUSY;
    c->deadline_ms = gw_now_ms() + g->cfg.request_timeout_ms;
}

static void route_online_status(struct gw *g, struct gw_conn *c, const struct http_request *req)
{
    static const char prefix[] = "/online-status/";
    char name[GW_USERNAME_MAX + 1];
    const char *raw = req->path + sizeof(prefix) - 1;
    size_t raw_len = req->path_len - (sizeof(prefix) - 1);
    long nl = http_percent_decode(raw, raw_len, name, sizeof(name));
    if (nl < 1 || memchr(name, '/', (size_t)nl)) {
        gw_http_error(c, 404, "unknown-user", "no such user");
        return;
    }
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "username", json_object_new_string_len(name, (int)nl));
    relay_request(g, c, "online-status", 0, args);
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
static void route_chat(struct gw *g, struct gw_conn *c, const struct http_request *req,
                       const char *op, const uint8_t *body, size_t body_len)
{
    int64_t exp, uid = authenticate(g, c, req, &exp);
    if (!uid)
        return;
    struct json_object *args = body_object(c, body, body_len);
    if (!args)
        return;
    if (gw_chat_allowed(g, c))
        relay_request(g, c, op, uid, args);
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
static void route_search(struct gw *g, struct gw_conn *c, const struct http_request *req)
{
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
    relay_request(g, c, "search", 0, args);
    json_object_put(args);
}

/*
 * POST /auth/dev-login {"username"} (HERALD_DEV_LOGIN=1 only): looks the
 * user up through the broker, then sets the accessToken cookie to a token
 * signed with our own secret, so the demo page logs in without an
 * application backend. Anyone may log in as anyone: never enable it in
 * production.
 */
static void route_dev_login(struct gw *g, struct gw_conn *c, const uint8_t *body, size_t body_len)
{
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
        relay_request(g, c, "user", 0, args);
        if (c->req_id)
            c->req_op = GW_REQ_DEV_LOGIN;
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
    char *tok = jwt_auth_sign("HS256", g->jwt.key, g->jwt.key_len, json_object_get_int64(id),
                              (int64_t)time(NULL) + GW_DEV_LOGIN_TTL_S, 0, g->jwt.iss, g->jwt.aud);
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
static void route_logout(struct gw *g, struct gw_conn *c)
{
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "Set-Cookie: %s=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0\r\n",
             g->cfg.cookie_name);
    GW_HTTP_RESPOND_LIT(c, 200, "application/json", hdr, GW_BODY_LOGGED_OUT, true);
}

/* Compares without an early exit, so the time taken does not tell an
 * attacker how much of a guessed key was right. */
static bool key_equal(const char *a, size_t al, const char *b, size_t bl)
{
    unsigned char d = al != bl;
    for (size_t i = 0; i < al; i++)
        d |= (unsigned char)(a[i] ^ b[i % (bl ? bl : 1)]);
    return d == 0;
}

/* True when req carries the configured API key as a Bearer token. */
static bool api_key_valid(const struct gw *g, const struct http_request *req)
{
    const struct http_header *h = http_header_find(req, "authorization");
    return g->cfg.api_key && *g->cfg.api_key && h && h->value_len >= 7 &&
           strncasecmp(h->value, "Bearer ", 7) == 0 &&
           key_equal(h->value + 7, h->value_len - 7, g->cfg.api_key, strlen(g->cfg.api_key));
}

/* POST /api/notify/<event>: the application backend's notifications. */
static void route_notify(struct gw *g, struct gw_conn *c, const struct http_request *req,
                         const uint8_t *body, size_t body_len)
{
    static const char prefix[] = "/api/notify/";
    static const char *const events[] = {"profile-update", "game-stats-update", "account-deleted"};
    const char *name = req->path + sizeof(prefix) - 1;
    size_t nl = req->path_len - (sizeof(prefix) - 1), i;
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
    if (!g->cfg.api_key || !*g->cfg.api_key) {
        gw_http_error(c, 403, "forbidden", "no API key is configured on this gateway");
        return;
    }
    if (!api_key_valid(g, req)) {
        log_warn_rl(5, "conn %llu: notify with a missing or wrong API key: 401",
                    (unsigned long long)c->id);
        gw_http_error(c, 401, "bad-api-key", "a valid API key is required");
        return;
    }
    struct json_object *args = body_object(c, body, body_len);
    if (!args)
        return;
    relay_request(g, c, events[i], 0, args);
    json_object_put(args);
}

static bool path_is(const struct http_request *req, const char *p)
{
    return ev_is(req->path, req->path_len, p);
}

static bool path_starts(const struct http_request *req, const char *prefix)
{
    size_t n = strlen(prefix);
    return req->path_len >= n && memcmp(req->path, prefix, n) == 0;
}

/*
 * Limits tighter before authentication (docs/SECURITY.md): a request head
 * announces a body over --max-body-unauth. Its credentials (token, API key,
 * or an authenticated Socket.IO session) are checked before a byte of the
 * body is buffered: with them the route's own cap applies (--max-body, or
 * --max-payload on /socket.io/), without them --max-body-unauth does.
 */
static bool app_on_large_body(struct gw_net *n, struct gw_conn *c, const struct http_request *req)
{
    struct gw *g = app_gw(n);
    if (path_starts(req, "/socket.io/"))
        return gw_eio_body_allowed(&g->eio, c, req);
    bool authed;
    if (path_starts(req, "/api/notify/")) {
        authed = api_key_valid(g, req);
    } else {
        int64_t uid = 0, exp = 0;
        enum jwt_auth_status st;
        authed = identify(g, req, &uid, &exp, &st) == GW_ID_OK;
    }
    size_t cap = (size_t)(authed ? g->cfg.max_body : g->cfg.max_body_unauth);
    if (req->content_length <= cap)
        return true;
    enum gw_limit l = authed ? GW_LIMIT_BODY : GW_LIMIT_BODY_UNAUTH;
    n->n_limit[l]++;
    log_warn_rl(5, "conn %llu: %.*s with a %zu-byte body over the %s cap (%zu): 413",
                (unsigned long long)c->id, (int)(req->path_len > 64 ? 64 : req->path_len),
                req->path, req->content_length, gw_limit_name(l), cap);
    gw_http_error(c, 413, "too-large",
                  authed ? "the request body is too large"
                         : "the request body is too large for a request without valid credentials");
    return false;
}

static void app_on_request(struct gw_net *n, struct gw_conn *c, const struct http_request *req,
                           const uint8_t *body, size_t body_len)
{
    struct gw *g = app_gw(n);
    bool get = ev_is(req->method, req->method_len, "GET");
    if (path_starts(req, "/socket.io/")) {
        /* The origin rule before a session exists: a foreign page's
         * handshake or upgrade with the victim's cookie never gets one (403,
         * as on /ws), whatever it would send in CONNECT later. */
        if (foreign_cookie(g, req)) {
            refuse_foreign_origin(g, c, req);
            return;
        }
        gw_eio_request(&g->eio, c, req, body, body_len);
        return;
    }
    if (path_is(req, "/ws")) {
        if (!get) {
            gw_http_error(c, 405, "method-not-allowed", "use GET");
            return;
        }
        upgrade_ws(g, c, req);
        return;
    }
    if (path_is(req, "/metrics")) {
        if (!get) {
            gw_http_error(c, 405, "method-not-allowed", "use GET");
            return;
        }
        gw_metrics_respond(g, c);
        return;
    }
    if (path_is(req, "/healthz")) {
        bool ok = gw_bus_healthy(g);
        char b[128];
        int bl = snprintf(b, sizeof(b), "{\"status\":\"%s\",\"redis\":%s,\"broker\":%s}",
                          ok ? "ok" : "unavailable", g->pub.up ? "true" : "false",
                          g->broker_alive ? "true" : "false");
        gw_http_respond(c, ok ? 200 : 503, "application/json", NULL, b, (size_t)bl, true);
        return;
    }
    if (path_is(req, "/live_chat_message") || path_is(req, "/direct_chat_message")) {
        if (!ev_is(req->method, req->method_len, "POST")) {
            gw_http_error(c, 405, "method-not-allowed", "use POST");
            return;
        }
        route_chat(g, c, req, req->path[1] == 'l' ? "livechat" : "direct_message", body, body_len);
        return;
    }
    if (req->path_len > 12 && path_starts(req, "/api/notify/")) {
        route_notify(g, c, req, body, body_len);
        return;
    }
    if (path_is(req, "/auth/dev-login") || path_is(req, "/auth/logout")) {
        if (!ev_is(req->method, req->method_len, "POST")) {
            gw_http_error(c, 405, "method-not-allowed", "use POST");
            return;
        }
        if (req->path[6] == 'd')
            route_dev_login(g, c, body, body_len);
        else
            route_logout(g, c);
        return;
    }
    if (path_is(req, "/users/search")) {
        if (!get) {
            gw_http_error(c, 405, "method-not-allowed", "use GET");
            return;
        }
        route_search(g, c, req);
        return;
    }
    if (req->path_len > 15 && memcmp(req->path, "/online-status/", 15) == 0) {
        if (!get) {
            gw_http_error(c, 405, "method-not-allowed", "use GET");
            return;
        }
        route_online_status(g, c, req);
        return;
    }
    if (!get) {
        gw_http_error(c, 405, "method-not-allowed", "method not allowed here");
        return;
    }
    serve_static(g, c, req);
}

/* ---- client events on /ws ------------------------------------------------ */

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

static void refresh_token(struct gw *g, struct gw_conn *c, struct json_object *obj)
{
    struct json_object *t;
    int64_t uid = 0, exp = 0;
    if (!json_object_object_get_ex(obj, "token", &t) || !json_object_is_type(t, json_type_string)) {
        send_raw_error(c, "bad-field", "refresh-token needs a string token");
        return;
    }
    const char *tok = json_object_get_string(t);
    enum jwt_auth_status st = jwt_auth_verify(&g->jwt, tok, (size_t)json_object_get_string_len(t),
                                              time(NULL), &uid, &exp);
    if (st != JWT_AUTH_OK) {
        log_info("conn %llu: refresh-token refused: %s", (unsigned long long)c->id,
                 jwt_auth_status_str(st));
        gw_conn_close(c, 4001, "token refused");
        return;
    }
    if (gw_user_deleted(g, uid)) {
        log_info("conn %llu: refresh-token of deleted account %lld: 4003",
                 (unsigned long long)c->id, (long long)uid);
        gw_conn_close(c, 4003, "account deleted");
        return;
    }
    if (uid != c->user_id) {
        /* A refresh may extend a session, never switch who it belongs to. */
        log_warn_rl(5, "conn %llu: refresh-token for another user (%lld, not %lld)",
                    (unsigned long long)c->id, (long long)uid, (long long)c->user_id);
        gw_conn_close(c, 4003, "token belongs to another user");
        return;
    }
    c->token_exp = exp;
    static const char ok[] = "{\"type\":\"token-refreshed\"}";
    gw_ws_send_text(c, ok, sizeof(ok) - 1);
}

/* Client event types the broker handles; anything else is refused here
 * without a round trip. */
static const char *const relayed_types[] = {
    "get_online_users", "livechat",         "direct_message",    "watch-profile",
    "unwatch-profile",  "join-matchmaking", "leave-matchmaking",
};

static void app_on_ws_message(struct gw_net *n, struct gw_conn *c, uint8_t opcode, uint8_t *data,
                              size_t len)
{
    struct gw *g = app_gw(n);
    if (c->kind == GW_KIND_SIO) {
        gw_eio_ws_message(&g->eio, c, opcode, data, len);
        return;
    }
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
    if (strcmp(type, "ping") == 0) {
        static const char pong[] = "{\"type\":\"pong\"}";
        gw_ws_send_text(c, pong, sizeof(pong) - 1);
    } else if (strcmp(type, "refresh-token") == 0) {
        refresh_token(g, c, obj);
    } else {
        size_t i, nt = sizeof(relayed_types) / sizeof(relayed_types[0]);
        for (i = 0; i < nt; i++)
            if (strcmp(type, relayed_types[i]) == 0)
                break;
        if (i < nt && gw_is_chat(type) && !gw_chat_allowed(g, c))
            send_raw_error(c, "rate-limited", "too many messages from this address: slow down");
        else if (i < nt)
            gw_bus_msg(g, c->id, c->user_id, type, (const char *)data, len, -1);
        else
            send_raw_error(c, "unknown-type", "unknown event type");
    }
    json_object_put(obj);
}

static void app_on_closed(struct gw_net *n, struct gw_conn *c)
{
    struct gw *g = app_gw(n);
    if (c->sess)
        gw_eio_conn_closed(&g->eio, c);
    if (c->flags & GW_CONN_OPEN_SENT)
        gw_bus_close(g, c->id);
}

static void app_on_tick(struct gw_net *n, struct gw_conn *c, int64_t now)
{
    struct gw *g = app_gw(n);
    if ((c->flags & GW_CONN_BUSY) && c->req_id && now >= c->deadline_ms) {
        log_warn_rl(5, "conn %llu: the broker did not answer in %ld ms", (unsigned long long)c->id,
                    g->cfg.request_timeout_ms);
        c->req_id = 0;
        gw_http_error(c, 503, "unavailable", "the broker did not answer in time");
        return;
    }
    if ((c->flags & GW_CONN_AUTH) && now >= c->next_check_ms && !(c->flags & GW_CONN_CLOSE_SENT)) {
        c->next_check_ms = now + g->cfg.token_recheck_ms;
        if ((int64_t)time(NULL) >= c->token_exp) {
            log_info("conn %llu: token of user %lld expired, closing with 4001",
                     (unsigned long long)c->id, (long long)c->user_id);
            gw_conn_close(c, 4001, "token expired");
        }
    }
}

const struct gw_net_handlers gw_app_handlers = {
    .on_request = app_on_request,
    .on_large_body = app_on_large_body,
    .on_ws_message = app_on_ws_message,
    .on_closed = app_on_closed,
    .on_tick = app_on_tick,
};

/* ---- entries from the broker --------------------------------------------- */

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

static void deliver_to(struct gw *g, struct gw_conn *c, struct gw_shared *raw)
{
    if (c->kind == GW_KIND_RAW && raw) {
        gw_conn_send_shared(c, raw);
        g->n_deliveries++;
    }
}

void gw_app_on_entry(struct gw *g, const struct ev_entry *e)
{
    if (ev_is(e->type, e->type_len, "all") || ev_is(e->type, e->type_len, "auth")) {
        g->n_deliveries += gw_sio_broadcast(g, e);
        bool auth_only = e->type[0] == 'a' && e->type[1] == 'u';
        struct gw_shared *raw = render_raw(e);
        if (!raw) {
            log_warn_rl(5, "cannot render event %.*s", (int)e->event_len, e->event);
            return;
        }
        struct gw_conn *c;
        /* Encoded once above; every recipient queues a reference. */
        TAILQ_FOREACH(c, &g->net.conns, link)
        {
            if (!(c->flags & GW_CONN_WS) || (c->flags & GW_CONN_DEAD))
                continue;
            if (auth_only && !(c->flags & GW_CONN_AUTH))
                continue;
            deliver_to(g, c, raw);
        }
        gw_shared_unref(raw);
        return;
    }
    if (e->ms > 0)
        gw_metrics_observe(g, gw_now_ms() - e->ms);
    bool kick = ev_is(e->type, e->type_len, "kick");
    if (kick || ev_is(e->type, e->type_len, "conn") || ev_is(e->type, e->type_len, "ack")) {
        /* One pass over the ids: each is a Socket.IO session or a /ws
         * connection; each rendering is built at most once per entry. */
        struct gw_eio_msg m = {0};
        struct gw_shared *raw = NULL;
        bool raw_tried = kick || e->type[0] == 'a';
        /* A kick's reason word (e), as the close reason: it tells the
         * client why ("unknown-user", "account-deleted"). Our own broker's
         * short words; anything longer than a close reason may carry
         * (RFC 6455 §5.5: 123 bytes) is cut. */
        char reason[64] = "closed by the server";
        if (kick && e->event_len > 0 && utf8_valid((const uint8_t *)e->event, e->event_len)) {
            size_t rl = e->event_len < sizeof(reason) - 1 ? e->event_len : sizeof(reason) - 1;
            memcpy(reason, e->event, rl);
            reason[rl] = '\0';
        }
        const char *p = e->conns, *end = e->conns + e->conns_len;
        uint64_t id;
        while (ev_ids_next(&p, end, &id)) {
            if (gw_sio_deliver_id(g, id, e, &m)) {
                g->n_deliveries++;
                continue;
            }
            struct gw_conn *c = gw_conn_find(&g->net, id);
            if (!c || !(c->flags & GW_CONN_WS))
                continue;
            if (kick) {
                gw_conn_close(c, e->status ? (uint16_t)e->status : 1000, reason);
                continue;
            }
            if (!raw_tried) {
                raw = render_raw(e);
                raw_tried = true;
            }
            deliver_to(g, c, raw);
        }
        gw_eio_msg_release(&m);
        free((char *)m.text);
        gw_shared_unref(raw);
        return;
    }
    if (ev_is(e->type, e->type_len, "reply")) {
        struct gw_conn *c = gw_conn_find(&g->net, e->conn);
        if (!c || !(c->flags & GW_CONN_BUSY) || c->req_id != e->req)
            return; /* gone, or already answered by the timeout */
        c->req_id = 0;
        if (c->req_op == GW_REQ_DEV_LOGIN) {
            finish_dev_login(g, c, e);
            return;
        }
        int status = e->status >= 100 && e->status <= 599 ? e->status : 500;
        gw_http_respond(c, status, "application/json", NULL, e->data ? e->data : "{}",
                        e->data ? e->data_len : 2, true);
        return;
    }
    if (ev_is(e->type, e->type_len, "deleted")) {
        gw_user_deleted_add(g, e->user);
        return;
    }
    log_warn_rl(5, "unknown entry type %.*s on %s", (int)e->type_len, e->type, g->stream);
}
