/*
 * gw_auth.h - who a client is, and for how long: the one place where the
 * gateway decides identity, for every endpoint.
 *
 * Why a module of its own: the raw /ws endpoint, the Socket.IO endpoint and
 * the HTTP routes all take tokens from the same sources (PROTOCOL.md §1),
 * apply the same origin rule to the session cookie, refuse the same deleted
 * accounts (§5) and take from the same per-address chat bucket. The token
 * lifecycle (periodic expiry check, refresh-token) used to be written once
 * per endpoint; it is written here once, with one status enum that each
 * endpoint maps to its own answer (raw: close 4001/4003; Socket.IO:
 * "token-expired" and a server disconnect).
 *
 * Nothing here sends on a socket except gw_auth_http() and
 * gw_auth_refuse_foreign_origin(), which answer an HTTP request that is
 * refused.
 */
#ifndef HERALD_GW_AUTH_H
#define HERALD_GW_AUTH_H

#include "gw_net.h"
#include "i64v.h"
#include "jwt_auth.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_auth_config {
    const char *cookie_name;     /* borrowed: the session cookie */
    const char *allowed_origins; /* borrowed: comma list for cookie use, or NULL */
    const char *api_key;         /* borrowed: key of the /api/notify/ routes, NULL or "" for none */
    long token_recheck_ms;       /* how often a connection's token expiry is checked */
    double chat_rate_per_ip;     /* --chat-rate-per-ip, for the refusal's log line */
    int jit_users;               /* pass valid tokens' profile claims on (PROTOCOL.md §6a) */
};

/* With jit_users: called with the profile claims of every valid token of a
 * live account the gateway accepts, before the caller acts on it (main.c
 * publishes them, so they reach the broker ahead of the connection's open
 * or the request). */
struct gw_auth_handlers {
    void (*on_claims)(void *arg, int64_t user_id, const struct jwt_auth_profile *p);
    void *arg;
};

struct gw_auth {
    struct gw_auth_config cfg;
    struct jwt_auth jwt; /* owned: set up by the caller with jwt_auth_init() */
    struct gw_net *net;  /* borrowed: per-address chat buckets and limit counters */
    /* Deleted accounts whose tokens may still be unexpired: sorted ids,
     * loaded from herald:deleted_users and kept current by the broker.
     * Deletions are rare: a sorted array, searched by bisection. */
    struct i64v deleted; /* sorted ids of accounts deleted while we run */
    struct gw_auth_handlers h;
};

/* Zeroes a and keeps cfg (its strings borrowed for a's lifetime) and net
 * (borrowed; it need not be initialised yet). Cannot fail. */
void gw_auth_init(struct gw_auth *a, const struct gw_auth_config *cfg, struct gw_net *net);
/* Frees the deleted set and the JWT keys; a zeroed a is a no-op. */
void gw_auth_free(struct gw_auth *a);

/* ---- identity of an HTTP request ------------------------------------------ */

/* What gw_auth_identify() found. */
enum gw_identity {
    GW_ID_OK,             /* a valid token of a live account: *uid, *exp set */
    GW_ID_NONE,           /* no token in any source */
    GW_ID_FOREIGN_ORIGIN, /* the session cookie from a page of a foreign origin */
    GW_ID_REFUSED,        /* the token failed a JWT check: *st says which */
    GW_ID_DELETED,        /* a valid token of a deleted account: *uid, *exp set */
};

/*
 * Who sent req, without answering or logging: the token sources of
 * PROTOCOL.md §1 (Authorization Bearer, then the cookie, then ?token=), the
 * origin rule for the cookie, the JWT checks, deleted accounts. req and the
 * out-pointers are borrowed for the call; none may be NULL.
 */
enum gw_identity gw_auth_identify(struct gw_auth *a, const struct http_request *req, int64_t *uid,
                                  int64_t *exp, enum jwt_auth_status *st);
/* True when req would be authenticated by the session cookie, from a page
 * of an origin that may not use it (cross-site request forgery or
 * WebSocket hijacking). */
bool gw_auth_foreign_cookie(struct gw_auth *a, const struct http_request *req);
/* Answers c 403 origin-forbidden for req (gw_auth_foreign_cookie() was
 * true), counted under the "origin" limit and logged. */
void gw_auth_refuse_foreign_origin(struct gw_auth *a, struct gw_conn *c,
                                   const struct http_request *req);
/*
 * For a request that needs a user (/ws, the chat routes): returns the
 * user id and sets *exp, or returns 0 after answering c 401 or 403; every
 * refusal is logged with its reason.
 */
int64_t gw_auth_http(struct gw_auth *a, struct gw_conn *c, const struct http_request *req,
                     int64_t *exp);
/* True when req carries the configured API key as a Bearer token (false
 * when no key is configured). Compared in constant time. */
bool gw_auth_api_key_valid(const struct gw_auth *a, const struct http_request *req);
/* The JWT checks alone, for a token that came in a message (the Socket.IO
 * CONNECT payload): JWT_AUTH_OK sets *uid and *exp. tok is borrowed. */
enum jwt_auth_status gw_auth_verify(struct gw_auth *a, const char *tok, size_t len, int64_t *uid,
                                    int64_t *exp);

/* ---- deleted accounts (PROTOCOL.md §5) --------------------------------------- */

bool gw_auth_user_deleted(const struct gw_auth *a, int64_t user_id);
/* Records a deletion (idempotent; ids <= 0 ignored). Out of memory: the id
 * is not recorded, and the broker still refuses the account's events. */
void gw_auth_user_deleted_add(struct gw_auth *a, int64_t user_id);

/* ---- per-address chat bucket -------------------------------------------------- */

/* The per-address chat bucket (--chat-rate-per-ip) for a chat message or
 * DM that arrived on via (NULL: no address, never limited): true when it
 * may go on to the broker; false when the address is over its rate
 * (counted and logged; the caller answers rate-limited as the broker's
 * per-user bucket does). */
bool gw_auth_chat_allowed(struct gw_auth *a, const struct gw_conn *via);

/* ---- token lifecycle of a connection ------------------------------------------ */

/* How a connection's token stands. Each endpoint maps the statuses to its
 * own answer; none of these functions sends or logs. */
enum gw_token_status {
    GW_TOKEN_OK,
    GW_TOKEN_EXPIRED,    /* the token in use passed its exp claim */
    GW_TOKEN_REFUSED,    /* a refresh token failed a JWT check (or was missing) */
    GW_TOKEN_DELETED,    /* a refresh token of a deleted account */
    GW_TOKEN_OTHER_USER, /* a refresh token of another user, or any for a guest */
};

/* The token a connection is on. Embedded in the endpoint's per-connection
 * state; no pointers. */
/*
 * One per authenticated connection, so 16 bytes: exp is Unix seconds in 32
 * bits (clamped: 0 for a past one, UINT32_MAX for one after 2106, which
 * time() does not reach before then either), and the next check is the low
 * 32 bits of gw_now_ms(), compared wrap-safe: it is never more than
 * --token-recheck-ms (at most an hour) ahead, and the sweep checks every
 * connection far more often than every 24 days.
 */
struct gw_token_life {
    int64_t user_id;        /* 0: guest (never expires, cannot refresh) */
    uint32_t exp;           /* exp claim of the token in use (Unix seconds, clamped) */
    uint32_t next_check_ms; /* next expiry check (gw_now_ms() clock, low 32 bits) */
};

/* Starts the lifecycle for user_id (0: guest) with a token expiring at exp:
 * the first expiry check is one --token-recheck-ms after now_ms. */
void gw_token_life_start(const struct gw_auth *a, struct gw_token_life *l, int64_t user_id,
                         int64_t exp, int64_t now_ms);
/* The periodic check: GW_TOKEN_EXPIRED when a check is due at now_ms and
 * the token has expired, else GW_TOKEN_OK. A due check schedules the next
 * one; guests are never due. */
enum gw_token_status gw_token_life_check(const struct gw_auth *a, struct gw_token_life *l,
                                         int64_t now_ms);
/*
 * refresh-token: checks tok (borrowed; NULL: none was sent, refused as
 * malformed) and, when it is a valid token of the same user and the account
 * is not deleted, extends the lifecycle to its exp and returns GW_TOKEN_OK.
 * Otherwise returns why (REFUSED, DELETED, OTHER_USER, checked in that
 * order) and leaves l as it was. *jst gets the JWT verdict, *uid the
 * token's user (0 unless the JWT checks passed).
 */
enum gw_token_status gw_token_life_refresh(struct gw_auth *a, struct gw_token_life *l,
                                           const char *tok, size_t len, int64_t *uid,
                                           enum jwt_auth_status *jst);

#endif
