/*
 * gw_ws.h - the raw /ws endpoint: Herald's own WebSocket protocol (JSON
 * text frames {"type": ...}, PROTOCOL.md §2-3) for authenticated users.
 *
 * Why a module of its own: the upgrade (a token is required), the client
 * events (ping and refresh-token answered here, the rest relayed), the
 * token's expiry (close 4001/4003) and how broker events look on /ws all
 * belong to this one endpoint. Socket.IO clients have gw_sio; the HTTP
 * routes that lead here are in gw_routes; delivery of broker entries is
 * dispatched by gw_deliver to the functions at the end of this header.
 *
 * State: each /ws connection's c->app is its client state (user, token
 * lifecycle, whether the broker knows it), allocated at the upgrade and
 * freed by gw_ws_on_closed(). A /ws connection is recognised by that
 * pointer together with GW_CONN_WS (gw_ws_is_client()).
 */
#ifndef HERALD_GW_WS_H
#define HERALD_GW_WS_H

#include "gw.h"

/* GET /ws: authenticates the request (401/403 otherwise), checks the
 * handshake (400/426), upgrades and tells the broker. On refusal the
 * request is answered and c stays HTTP. req is borrowed for the call. */
void gw_ws_upgrade(struct gw *g, struct gw_conn *c, const struct http_request *req);
/* True when c is an upgraded /ws client. */
bool gw_ws_is_client(const struct gw_conn *c);

/* One complete message from the client c (data borrowed for the call). */
void gw_ws_on_message(struct gw *g, struct gw_conn *c, uint8_t opcode, const uint8_t *data,
                      size_t len);
/* The sweep's per-connection call: closes with 4001 once the token has
 * expired (checked every --token-recheck-ms). */
void gw_ws_on_tick(struct gw *g, struct gw_conn *c, int64_t now_ms);
/* c is being freed: tells the broker (when it knew c) and frees c->app. */
void gw_ws_on_closed(struct gw *g, struct gw_conn *c);
/* Announces every open /ws client to the broker again (gw_bus on_ready),
 * except the old registration's after a fence (GW_CONN_OLD_REG). */
void gw_ws_announce_all(struct gw *g);
/* The bus was fenced: every /ws client open now is the old registration's
 * (GW_CONN_OLD_REG); gw_ws_close_old() closes them with code and reason
 * once the broker has answered what they sent. Returns how many. */
void gw_ws_mark_old(struct gw *g);
size_t gw_ws_close_old(struct gw *g, uint16_t code, const char *reason);

/* ---- delivery of broker entries (called by gw_deliver) ------------------- */

/* An event rendered for /ws once per entry and shared by its recipients.
 * Zero it before the first use; release with gw_ws_render_release(). */
struct gw_ws_render {
    struct gw_shared *frame; /* owned reference, NULL until rendered */
    bool tried;              /* rendering attempted (it may have failed) */
};
void gw_ws_render_release(struct gw_ws_render *r);

/* A broadcast entry (all/auth) to every /ws client (auth_only: users
 * only). Returns the number of clients reached; logs an event it cannot
 * render, and reaches none then. */
size_t gw_ws_broadcast(struct gw *g, const struct ev_entry *e, bool auth_only);
/* A conn/ack/kick entry for connection id: a kick closes it with the
 * entry's status (1000 when none) and reason word; conn and ack entries
 * queue the event rendered once into r. Returns true when an event was
 * queued; false when there is no such /ws client, for a kick, or when the
 * event cannot be rendered. */
bool gw_ws_deliver_id(struct gw *g, uint64_t id, const struct ev_entry *e, struct gw_ws_render *r);
/* A broadcast entry (all/auth) to client id alone (a resumed session's
 * missed or held events). False when id is no /ws client. */
bool gw_ws_send_one(struct gw *g, uint64_t id, const struct ev_entry *e, bool auth_only);
/* A "moved" entry: client id was resumed elsewhere; a stale copy here is
 * closed without telling the broker. False when id is no /ws client. */
bool gw_ws_moved(struct gw *g, uint64_t id);

/* ---- resume (called by gw_recover) ------------------------------------------ */

/* A fresh session after all: {"type":"session","id":pid,"offset"}. */
void gw_ws_session_ready(struct gw *g, uint64_t id, const char *pid, const char *offset);
/* Everything missed was sent: {"type":"resumed","offset"}. */
void gw_ws_session_resumed(struct gw *g, uint64_t id, const char *offset);
/* Resuming failed after frames were sent: closed (recoverable: it may try
 * again; else it gets a fresh session next time). */
void gw_ws_session_drop(struct gw *g, uint64_t id, bool recoverable);

#endif
