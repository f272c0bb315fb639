/*
 * gw.h - the Herald gateway process: terminates client connections, checks
 * tokens, keeps heartbeats, publishes what clients do to the broker over
 * Redis Streams and fans out what the broker sends back.
 *
 * Modules: gw_net (connections, HTTP, WebSocket framing), gw_app (Herald's
 * routes and events on top of it), gw_bus (the Redis side). One gateway is
 * one event loop; run several processes, each with its own id.
 */
#ifndef HERALD_GW_H
#define HERALD_GW_H

#include "event.h"
#include "gw_eio.h"
#include "gw_net.h"
#include "jwt_auth.h"
#include "rds.h"

#include <stdbool.h>

struct gw_config {
    const char *listen;
    const char *redis_url;
    const char *gateway_id;
    const char *jwt_secret;
    const char *jwt_secret_file;
    const char *jwt_alg;
    const char *jwt_public_key_file;
    const char *jwt_issuer;
    const char *jwt_audience;
    const char *cookie_name;
    const char *allowed_origins;
    const char *web_root;
    const char *api_key;
    const char *log_level;
    const char *log_file;
    long ping_interval_ms;
    long ping_timeout_ms;
    long token_recheck_ms;
    long gateway_lease_ms;
    long max_header_bytes;
    long max_headers;
    long max_body;
    long max_body_unauth;
    long max_message;
    long max_message_unauth;
    long output_cap;
    long header_timeout_ms;
    long request_timeout_ms;
    long stream_maxlen;
    long max_payload;
    long sio_connect_timeout_ms;
    int dev_login;
    const char *metrics_allow;
    long conns_per_ip;
    double conn_rate_per_ip;
    double chat_rate_per_ip;
    long chat_burst_per_ip;
};

/* A latency histogram with fixed buckets (Prometheus "le" semantics). */
#define GW_HIST_BUCKETS 10
struct gw_hist {
    uint64_t counts[GW_HIST_BUCKETS]; /* cumulative: observations <= bound i */
    uint64_t count;
    int64_t sum_ms;
};

struct gw {
    struct gw_config cfg;
    struct event_base *base; /* owned */
    struct gw_net net;
    struct gw_eio eio; /* /socket.io/ sessions */
    struct jwt_auth jwt;
    struct rds pub; /* commands: XADD, lease, health */
    struct rds sub; /* XREAD BLOCK on our own stream */
    char id[128];
    char stream[192];    /* herald:gw:<id> */
    char lease_key[192]; /* herald:gw:<id>:lease */
    char last_id[64];    /* last entry read from our stream */
    bool reading;        /* an XREAD is outstanding */
    bool broker_alive;   /* from the broker's heartbeat key */
    bool hello_sent;
    struct event *lease_ev; /* owned */
    int port;
    uint64_t next_req;
    int64_t started_ms;
    /* Deleted accounts whose tokens may still be unexpired: sorted ids,
     * loaded from herald:deleted_users and kept current by the broker. */
    int64_t *deleted; /* owned */
    size_t ndeleted, deleted_cap;
    /* Counters (GET /metrics). */
    uint64_t n_published, n_entries_in, n_deliveries;
    struct gw_hist rtt; /* gateway -> broker -> gateway */
};

/* gw_app.c: Herald's behaviour on top of gw_net. */
extern const struct gw_net_handlers gw_app_handlers;
/* Applies one entry read from our stream (broker -> gateway). */
void gw_app_on_entry(struct gw *g, const struct ev_entry *e);

/* Where a connection's token came from (PROTOCOL.md §1). */
enum gw_token_source { GW_TOKEN_NONE, GW_TOKEN_BEARER, GW_TOKEN_COOKIE, GW_TOKEN_QUERY };
/* Finds the token of an HTTP request: Authorization Bearer, then the cookie,
 * then ?token= (percent-decoded into buf). *tok borrows from req or buf. */
enum gw_token_source gw_find_token(struct gw *g, const struct http_request *req, char *buf,
                                   size_t size, const char **tok, size_t *len);
/* Cross-site WebSocket hijacking rule for cookie-authenticated upgrades. */
bool gw_origin_allowed(struct gw *g, const struct http_request *req);

/* The per-address chat bucket (--chat-rate-per-ip) for a chat message or
 * DM that arrived on via: true when it may go on to the broker; false when
 * the address is over its rate (counted and logged; the caller answers
 * rate-limited as the broker's per-user bucket does). */
bool gw_chat_allowed(struct gw *g, const struct gw_conn *via);
/* True for the client events the per-address chat bucket applies to
 * (their broker names: livechat, direct_message). */
bool gw_is_chat(const char *type);

/* Deleted accounts (PROTOCOL.md §5): their tokens are refused. */
bool gw_user_deleted(const struct gw *g, int64_t user_id);
void gw_user_deleted_add(struct gw *g, int64_t user_id);

/* gw_sio.c: the Socket.IO v5 layer on the Engine.IO sessions. */
extern const struct gw_eio_handlers gw_sio_handlers;
/* Announces every connected Socket.IO client to the broker (after a Redis
 * reconnect). */
void gw_sio_publish_all_open(struct gw *g);
/* Delivers a broadcast entry (all/auth) to every matching Socket.IO
 * session. Returns the number of sessions reached. */
size_t gw_sio_broadcast(struct gw *g, const struct ev_entry *e);
/* A conn/ack/kick entry for id: when id is a Socket.IO session, applies it
 * and returns true. m caches the rendered event across the ids of one entry
 * (zero it first, release with gw_eio_msg_release() and free(m->text)). */
bool gw_sio_deliver_id(struct gw *g, uint64_t id, const struct ev_entry *e, struct gw_eio_msg *m);

/* gw_metrics.c: GET /metrics (loopback or --metrics-allow only). */
void gw_metrics_respond(struct gw *g, struct gw_conn *c);
/* Records one gateway -> broker -> gateway round trip. */
void gw_metrics_observe(struct gw *g, int64_t ms);

/* gw_bus.c: the Redis side. */
int gw_bus_start(struct gw *g);
void gw_bus_stop(struct gw *g);
/* Tell the broker a client (a /ws connection or a Socket.IO session, by id)
 * opened / closed. Returns true when the open was published. */
bool gw_bus_open(struct gw *g, uint64_t id, int64_t user_id, uint8_t kind);
void gw_bus_close(struct gw *g, uint64_t id);
/* A client event for the broker: its name, its JSON object, and the
 * Socket.IO ack id (-1: none). */
void gw_bus_msg(struct gw *g, uint64_t id, int64_t user_id, const char *type, const char *json,
                size_t len, int64_t ack_id);
/* An HTTP request the broker answers: op, JSON arguments and the
 * authenticated user (0: none). Returns the request id, 0 when Redis is
 * down. */
uint64_t gw_bus_request(struct gw *g, struct gw_conn *c, const char *op, int64_t user_id,
                        const char *json, size_t len);
/* True when Redis is connected and the broker's heartbeat is fresh. */
bool gw_bus_healthy(const struct gw *g);

#endif
