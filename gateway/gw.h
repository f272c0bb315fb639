/*
 * gw.h - the Herald gateway process: terminates client connections, checks
 * tokens, keeps heartbeats, publishes what clients do to the broker over
 * Redis Streams and fans out what the broker sends back.
 *
 * This header holds only the process's configuration (one field per
 * option of main.c's table) and struct gw, the state every module of the
 * process hangs off. Each module has its own header; docs/ARCHITECTURE.md
 * (gateway part) lists them and who may call whom. One gateway is one
 * event loop; run several processes, each with its own id.
 */
#ifndef HERALD_GW_H
#define HERALD_GW_H

#include "gw_auth.h"
#include "gw_bus.h"
#include "gw_eio.h"
#include "gw_net.h"
#include "gw_online.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

/* The effective configuration (main.c's option table; strings borrowed
 * from argv, the environment or static defaults, for the process's
 * lifetime). */
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
    long recovery_window_ms;
    long recovery_log_max;
    long recovery_max_events;
    long max_header_bytes;
    long max_headers;
    long max_body;
    long max_body_unauth;
    long max_message;
    long max_message_unauth;
    long output_cap;
    long write_delay_us;
    long header_timeout_ms;
    long request_timeout_ms;
    long stream_maxlen;
    long max_payload;
    long sio_connect_timeout_ms;
    int dev_login;
    int jit_users;
    const char *presence_scope; /* "all" or "related" (the broker's too) */
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
    struct event_base *base;    /* owned */
    struct gw_net net;          /* connections */
    struct gw_eio eio;          /* /socket.io/ sessions */
    struct gw_auth auth;        /* identity, deleted accounts, token lifecycle */
    struct gw_bus bus;          /* Redis */
    struct gw_recover *recover; /* owned: sessions coming back (gw_recover.c) */
    struct gw_online online;    /* who is online, from our stream (gw_online.c) */
    bool scope_related;         /* cfg.presence_scope is "related" (main.c, at start) */
    char id[128];               /* this gateway's id (--gateway-id or host-pid) */
    int port;                   /* the port actually bound */
    int64_t started_ms;
    /* Counters (GET /metrics). */
    uint64_t n_deliveries; /* events queued to client connections */
    struct gw_hist rtt;    /* gateway -> broker -> gateway */
};

#endif
