/*
 * gw_routes.h - the gateway's HTTP routes (one table in gw_routes.c) and
 * the requests it relays to the broker.
 *
 * State: an HTTP connection parked on the broker's answer has its pending
 * request in c->app (allocated when relayed, freed when answered, timed
 * out or closed); no other HTTP connection allocates anything here.
 */
#ifndef HERALD_GW_ROUTES_H
#define HERALD_GW_ROUTES_H

#include "gw.h"

/* A complete request on c (gw_net_handlers.on_request): answers it, upgrades
 * c (/ws, /socket.io/), or parks it (GW_CONN_BUSY) until the broker
 * answers. req and body are borrowed for the call. */
void gw_routes_on_request(struct gw *g, struct gw_conn *c, const struct http_request *req,
                          const uint8_t *body, size_t body_len);
/*
 * A request head announces a body over --max-body-unauth
 * (gw_net_handlers.on_large_body): returns true when its credentials (a
 * token, the API key, or a trusted Socket.IO session) allow that much;
 * false after answering 413 (counted and logged).
 */
bool gw_routes_on_large_body(struct gw *g, struct gw_conn *c, const struct http_request *req);

/* A "reply" entry (borrowed for the call): answers the parked request it
 * names; ignored when that connection is gone or was answered already. */
void gw_routes_on_reply(struct gw *g, const struct ev_entry *e);
/* The sweep's call for an HTTP connection with a pending request (c->app
 * set): 503 once --request-timeout-ms has passed. */
void gw_routes_on_tick(struct gw *g, struct gw_conn *c, int64_t now_ms);
/* An HTTP connection with a pending request is being freed: frees it. */
void gw_routes_on_closed(struct gw *g, struct gw_conn *c);

#endif
