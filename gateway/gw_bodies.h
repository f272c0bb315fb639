/*
 * gw_bodies.h - every fixed JSON body the gateway sends, in one place.
 *
 * Why a table: these bodies used to be written inline with a hand-counted
 * length beside them, and two counts were wrong (the 426 body was cut five
 * bytes short, an Engine.IO 400 carried a trailing NUL). Each body is now a
 * string literal sent through GW_HTTP_RESPOND_LIT (length from sizeof), and
 * GW_FIXED_BODIES lets tests/unit/test_gw_bodies.c check that every one of
 * them is one complete JSON value. Bodies built at run time (gw_http_error,
 * the Engine.IO error table) escape what they insert instead.
 */
#ifndef HERALD_GW_BODIES_H
#define HERALD_GW_BODIES_H

/* 426 to a WebSocket handshake of another version (RFC 6455 §4.4). */
#define GW_BODY_UPGRADE_REQUIRED                                                                   \
    "{\"error\":\"upgrade-required\",\"message\":\"WebSocket version 13 only\"}"
/* Engine.IO's "Bad request" (code 3), as the reference server words it. */
#define GW_BODY_EIO_BAD_REQUEST "{\"code\":3,\"message\":\"Bad request\"}"
/* POST /auth/logout. */
#define GW_BODY_LOGGED_OUT "{\"status\":\"logged-out\"}"

/* X(name) for each body above: add a new body here too. */
#define GW_FIXED_BODIES(X)                                                                         \
    X(GW_BODY_UPGRADE_REQUIRED)                                                                    \
    X(GW_BODY_EIO_BAD_REQUEST)                                                                     \
    X(GW_BODY_LOGGED_OUT)

#endif
