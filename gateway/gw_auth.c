/*
 * gw_auth.c - identity, deleted accounts, the per-address chat bucket and
 * the token lifecycle; see gw_auth.h for why they live together.
 *
 * Sizes: the deleted set holds the accounts deleted while their tokens may
 * still be valid (a token lives a day at most in our deployments): tens to
 * hundreds of ids, searched on every authentication.
 */
#include "gw_auth.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void gw_auth_init(struct gw_auth *a, const struct gw_auth_config *cfg, struct gw_net *net)
{
    memset(a, 0, sizeof(*a));
    a->cfg = *cfg;
    a->net = net;
}

void gw_auth_free(struct gw_auth *a)
{
    i64v_free(&a->deleted);
    jwt_auth_free(&a->jwt);
}

/* ---- token sources and the origin rule ----------------------------------------- */

/* Where a request's token came from (PROTOCOL.md §1). */
enum gw_token_source { GW_TOKEN_NONE, GW_TOKEN_BEARER, GW_TOKEN_COOKIE, GW_TOKEN_QUERY };

/* Finds the token of an HTTP request: Authorization Bearer, then the cookie,
 * then ?token= (percent-decoded into buf). *tok borrows from req or buf. */
static enum gw_token_source find_token(const struct gw_auth *a, const struct http_request *req,
                                       char *buf, size_t size, const char **tok, size_t *len)
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
    if (h && http_cookie_find(h->value, h->value_len, a->cfg.cookie_name, tok, len) && *len)
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
static bool origin_allowed(const struct gw_auth *a, const struct http_request *req)
{
    const struct http_header *o = http_header_find(req, "origin");
    if (!o)
        return true; /* not a browser: it cannot have borrowed a cookie */
    const char *v = o->value;
    size_t vl = o->value_len;
    const char *list = a->cfg.allowed_origins;
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

/* ---- identity of an HTTP request -------------------------------------------- */

/* jwt_auth_verify(); with jit_users, a valid token of a live account has
 * its profile claims passed on (gw_auth_handlers). */
static enum jwt_auth_status verify(struct gw_auth *a, const char *tok, size_t len, int64_t *uid,
                                   int64_t *exp)
{
    if (!a->cfg.jit_users || !a->h.on_claims)
        return jwt_auth_verify(&a->jwt, tok, len, time(NULL), uid, exp);
    struct jwt_auth_profile p;
    enum jwt_auth_status st = jwt_auth_verify_profile(&a->jwt, tok, len, time(NULL), uid, exp, &p);
    if (st == JWT_AUTH_OK && !gw_auth_user_deleted(a, *uid))
        a->h.on_claims(a->h.arg, *uid, &p);
    return st;
}

enum gw_identity gw_auth_identify(struct gw_auth *a, const struct http_request *req, int64_t *uid,
                                  int64_t *exp, enum jwt_auth_status *st)
{
    char qbuf[JWT_AUTH_MAX_TOKEN + 1];
    const char *tok = NULL;
    size_t tl = 0;
    enum gw_token_source src = find_token(a, req, qbuf, sizeof(qbuf), &tok, &tl);
    if (src == GW_TOKEN_NONE)
        return GW_ID_NONE;
    if (src == GW_TOKEN_COOKIE && !origin_allowed(a, req))
        return GW_ID_FOREIGN_ORIGIN;
    *st = verify(a, tok, tl, uid, exp);
    if (*st != JWT_AUTH_OK)
        return GW_ID_REFUSED;
    return gw_auth_user_deleted(a, *uid) ? GW_ID_DELETED : GW_ID_OK;
}

bool gw_auth_foreign_cookie(struct gw_auth *a, const struct http_request *req)
{
    char qbuf[JWT_AUTH_MAX_TOKEN + 1];
    const char *tok;
    size_t tl;
    return find_token(a, req, qbuf, sizeof(qbuf), &tok, &tl) == GW_TOKEN_COOKIE &&
           !origin_allowed(a, req);
}

void gw_auth_refuse_foreign_origin(struct gw_auth *a, struct gw_conn *c,
                                   const struct http_request *req)
{
    const struct http_header *o = http_header_find(req, "origin");
    a->net->n_limit[GW_LIMIT_ORIGIN]++;
    log_warn_rl(5, "conn %llu: %.*s with the session cookie from foreign origin %.*s: 403",
                (unsigned long long)c->id, (int)(req->path_len > 64 ? 64 : req->path_len),
                req->path, o ? (int)(o->value_len > 100 ? 100 : o->value_len) : 0,
                o ? o->value : "");
    gw_http_error(c, 403, "origin-forbidden", "this origin may not use the session cookie");
}

int64_t gw_auth_http(struct gw_auth *a, struct gw_conn *c, const struct http_request *req,
                     int64_t *exp)
{
    int64_t uid = 0;
    enum jwt_auth_status st = JWT_AUTH_OK;
    switch (gw_auth_identify(a, req, &uid, exp, &st)) {
    case GW_ID_OK:
        return uid;
    case GW_ID_NONE:
        log_info("conn %llu: %.*s without a token: 401", (unsigned long long)c->id,
                 (int)req->path_len, req->path);
        gw_http_error(c, 401, "auth-required", "an access token is required");
        return 0;
    case GW_ID_FOREIGN_ORIGIN:
        gw_auth_refuse_foreign_origin(a, c, req);
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

/* Compares without an early exit, so the time taken does not tell an
 * attacker how much of a guessed key was right. */
static bool key_equal(const char *x, size_t xl, const char *y, size_t yl)
{
    unsigned char d = xl != yl;
    for (size_t i = 0; i < xl; i++)
        d |= (unsigned char)(x[i] ^ y[i % (yl ? yl : 1)]);
    return d == 0;
}

bool gw_auth_api_key_valid(const struct gw_auth *a, const struct http_request *req)
{
    const struct http_header *h = http_header_find(req, "authorization");
    return a->cfg.api_key && *a->cfg.api_key && h && h->value_len >= 7 &&
           strncasecmp(h->value, "Bearer ", 7) == 0 &&
           key_equal(h->value + 7, h->value_len - 7, a->cfg.api_key, strlen(a->cfg.api_key));
}

enum jwt_auth_status gw_auth_verify(struct gw_auth *a, const char *tok, size_t len, int64_t *uid,
                                    int64_t *exp)
{
    return verify(a, tok, len, uid, exp);
}

/* ---- deleted accounts ------------------------------------------------------ */

bool gw_auth_user_deleted(const struct gw_auth *a, int64_t user_id)
{
    return i64v_has_sorted(&a->deleted, user_id);
}

void gw_auth_user_deleted_add(struct gw_auth *a, int64_t user_id)
{
    /* Deletions are rare and lookups happen on every connection: a sorted
     * array, binary-searched. */
    if (user_id > 0 && i64v_insert_sorted(&a->deleted, user_id) < 0)
        log_error("out of memory: deleted account %lld not remembered (the broker still "
                  "refuses it at open)",
                  (long long)user_id);
}

/* ---- per-address chat bucket ------------------------------------------------ */

bool gw_auth_chat_allowed(struct gw_auth *a, const struct gw_conn *via)
{
    if (gw_ip_chat_take(&a->net->ips, via ? via->ip : NULL, gw_now_ms()))
        return true;
    a->net->n_limit[GW_LIMIT_CHAT_RATE_PER_IP]++;
    log_warn_rl(5, "conn %llu: its address is over the chat rate (%g/s): rate-limited",
                via ? (unsigned long long)via->id : 0ULL, a->cfg.chat_rate_per_ip);
    return false;
}

/* ---- token lifecycle -------------------------------------------------------- */

/* exp in the 32 bits struct gw_token_life keeps (see there). */
static uint32_t exp32(int64_t exp)
{
    return exp <= 0 ? 0 : exp >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)exp;
}

/* The low 32 bits of the time of the next check after now_ms. */
static uint32_t next_check(const struct gw_auth *a, int64_t now_ms)
{
    /* The wrap-safe comparison in gw_token_life_check() needs the next
     * check well within 2^31 ms (the config table caps it at an hour). */
    HERALD_ASSERT(a->cfg.token_recheck_ms >= 0 && a->cfg.token_recheck_ms < (1L << 30));
    return (uint32_t)(now_ms + a->cfg.token_recheck_ms);
}

void gw_token_life_start(const struct gw_auth *a, struct gw_token_life *l, int64_t user_id,
                         int64_t exp, int64_t now_ms)
{
    l->user_id = user_id;
    l->exp = exp32(exp);
    l->next_check_ms = next_check(a, now_ms);
}

enum gw_token_status gw_token_life_check(const struct gw_auth *a, struct gw_token_life *l,
                                         int64_t now_ms)
{
    /* now_ms < next check, wrap-safe (struct gw_token_life). */
    if (!l->user_id || (int32_t)((uint32_t)now_ms - l->next_check_ms) < 0)
        return GW_TOKEN_OK;
    l->next_check_ms = next_check(a, now_ms);
    return (int64_t)time(NULL) >= (int64_t)l->exp ? GW_TOKEN_EXPIRED : GW_TOKEN_OK;
}

enum gw_token_status gw_token_life_refresh(struct gw_auth *a, struct gw_token_life *l,
                                           const char *tok, size_t len, int64_t *uid,
                                           enum jwt_auth_status *jst)
{
    int64_t exp = 0;
    *uid = 0;
    *jst = tok ? jwt_auth_verify(&a->jwt, tok, len, time(NULL), uid, &exp) : JWT_AUTH_ERR_MALFORMED;
    if (*jst != JWT_AUTH_OK)
        return GW_TOKEN_REFUSED;
    if (gw_auth_user_deleted(a, *uid))
        return GW_TOKEN_DELETED;
    /* A refresh may extend a session, never switch who it belongs to. */
    if (!l->user_id || *uid != l->user_id)
        return GW_TOKEN_OTHER_USER;
    l->exp = exp32(exp);
    return GW_TOKEN_OK;
}
