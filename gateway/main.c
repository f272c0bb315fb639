/*
 * main.c - herald-gateway: configuration, start-up, signals, shutdown, and
 * the wiring of the modules: which handler each layer calls (gw_net ->
 * gw_routes / gw_ws / gw_eio, gw_eio -> gw_sio, gw_bus -> gw_deliver /
 * gw_ws / gw_sio / gw_auth). The layers below know none of the modules
 * above them; this file is where they meet.
 *
 * SIGTERM/SIGINT: stop accepting, close every WebSocket with 1001 (clients
 * reconnect elsewhere), tell the broker, exit when the connections are gone
 * or after the drain deadline. SIGHUP reopens the --log-file.
 */
#include "gw.h"
#include "gw_deliver.h"
#include "gw_recover.h"
#include "gw_routes.h"
#include "gw_sio.h"
#include "gw_ws.h"

#include "config.h"
#include "log.h"

#include <event2/event.h>
#include <json-c/json.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a draining gateway waits for its clients to finish the close
 * handshake before it exits anyway. */
#define GW_DRAIN_MS 3000

#define OPT(name, type, field, def, min, max, flags, help)                                         \
    {                                                                                              \
        name, type, offsetof(struct gw_config, field), def, min, max, flags, help                  \
    }

static const struct cfg_opt gw_opts[] = {
    OPT("listen", CFG_STR, listen, "0.0.0.0:8080", 0, 0, 0, "address to listen on, host:port"),
    OPT("redis-url", CFG_STR, redis_url, "redis://127.0.0.1:6379", 0, 0, 0,
        "Redis, redis://host:port[/db]"),
    OPT("gateway-id", CFG_STR, gateway_id, NULL, 0, 0, 0,
        "unique id of this gateway (default: hostname-pid)"),
    OPT("jwt-secret", CFG_STR, jwt_secret, NULL, 0, 0, CFG_SECRET, "HS256 secret"),
    OPT("jwt-secret-file", CFG_STR, jwt_secret_file, NULL, 0, 0, 0,
        "file holding the HS256 secret"),
    OPT("jwt-alg", CFG_STR, jwt_alg, "HS256", 0, 0, 0, "token algorithm: HS256, RS256 or ES256"),
    OPT("jwt-public-key-file", CFG_STR, jwt_public_key_file, NULL, 0, 0, 0,
        "PEM public key for RS256/ES256"),
    OPT("jwt-issuer", CFG_STR, jwt_issuer, NULL, 0, 0, 0, "required iss claim (optional)"),
    OPT("jwt-audience", CFG_STR, jwt_audience, NULL, 0, 0, 0, "required aud claim (optional)"),
    OPT("cookie-name", CFG_STR, cookie_name, "accessToken", 0, 0, 0, "cookie holding the token"),
    OPT("allowed-origins", CFG_STR, allowed_origins, NULL, 0, 0, 0,
        "comma list of origins allowed for cookie-authenticated upgrades (same origin always)"),
    OPT("web-root", CFG_STR, web_root, "web", 0, 0, 0, "directory of the web client"),
    OPT("api-key", CFG_STR, api_key, NULL, 0, 0, CFG_SECRET, "key for /api/notify/*"),
    OPT("log-level", CFG_STR, log_level, "info", 0, 0, 0, "debug, info, warn or error"),
    OPT("log-file", CFG_STR, log_file, NULL, 0, 0, 0,
        "append logs to this file instead of stderr (SIGHUP reopens it)"),
    OPT("ping-interval-ms", CFG_INT, ping_interval_ms, "25000", 50, 3600000, 0,
        "server ping period"),
    OPT("ping-timeout-ms", CFG_INT, ping_timeout_ms, "35000", 100, 3600000, 0,
        "drop a connection silent for this long"),
    OPT("token-recheck-ms", CFG_INT, token_recheck_ms, "30000", 10, 3600000, 0,
        "how often a connection's token expiry is checked"),
    OPT("gateway-lease-ms", CFG_INT, gateway_lease_ms, "10000", 300, 600000, 0,
        "liveness lease; the broker reaps us when it lapses"),
    /* Socket.IO's own default (maxDisconnectionDuration); must equal the
     * broker's. What we read stays in our stream this long, so that a
     * session that comes back (here or elsewhere) finds what it missed. */
    OPT("recovery-window-ms", CFG_INT, recovery_window_ms, "120000", 0, 86400000, 0,
        "how long a closed session may come back with what it missed (0: off)"),
    /* 20 000 entries: the whole window at 160 events/s per gateway; under
     * heavier traffic the window is shorter, never our stream longer. Keep
     * it well under the broker's --gw-stream-maxlen. */
    OPT("recovery-log-max", CFG_INT, recovery_log_max, "20000", 100, 10000000, 0,
        "entries of our stream kept for sessions that come back"),
    OPT("recovery-max-events", CFG_INT, recovery_max_events, "1000", 1, 1000000, 0,
        "events one session may have missed and still be recovered (else a fresh session)"),
    /* 8 KB of head is what most servers allow; browsers send ~1-2 KB. */
    OPT("max-header-bytes", CFG_INT, max_header_bytes, "8192", 512, 1048576, 0,
        "request line + headers cap (431 above)"),
    OPT("max-headers", CFG_INT, max_headers, "48", 4, HTTP_MAX_HEADERS, 0,
        "header count cap (431 above)"),
    OPT("max-body", CFG_INT, max_body, "65536", 0, 16777216, 0, "request body cap (413 above)"),
    /* Limits are tighter before authentication (as in Redis): no route a
     * client may use without credentials takes more than a username (a
     * dev-login body is ~40 bytes), so a peer without a valid token or API
     * key cannot make us buffer --max-body per connection. */
    OPT("max-body-unauth", CFG_INT, max_body_unauth, "4096", 0, 16777216, 0,
        "request body cap without valid credentials (413 above; at most --max-body)"),
    /* Chat messages and events are small; 64 KB leaves room for profiles. */
    OPT("max-message", CFG_INT, max_message, "65536", 125, 268435456, 0,
        "WebSocket message cap (close 1009 above)"),
    OPT("output-cap", CFG_INT, output_cap, "1048576", 4096, 1073741824, 0,
        "per-connection output queue cap; slow consumers over it are closed"),
    /* Write coalescing for every broadcast: at low rates each delivery
     * would otherwise be one send() per connection. */
    OPT("write-delay-us", CFG_INT, write_delay_us, "0", 0, 100000, 0,
        "write a connection's output this long after its first queued event, so that events "
        "of the next instants share the write (0: at the end of the loop iteration)"),
    OPT("header-timeout-ms", CFG_INT, header_timeout_ms, "10000", 100, 600000, 0,
        "a request head must arrive within this (slowloris)"),
    OPT("request-timeout-ms", CFG_INT, request_timeout_ms, "5000", 100, 600000, 0,
        "how long an HTTP request waits for the broker (503 after)"),
    /* At 12 k events/s a million entries is over a minute of broker
     * outage; past it clients hear "unavailable" instead of the stream
     * growing without bound. Never trimmed unread (the broker trims what it
     * acknowledged). */
    OPT("stream-maxlen", CFG_INT, stream_maxlen, "1000000", 10, 1000000000, 0,
        "cap on herald:events: client events and requests are refused (unavailable) above it"),
    /* Engine.IO's own default: 1 MB per polling payload or message. */
    OPT("max-payload", CFG_INT, max_payload, "1000000", 1024, 268435456, 0,
        "Engine.IO maxPayload (polling payload and message cap)"),
    /* A CONNECT carrying the largest token we accept (8 KB) fits twice;
     * everything a guest may send (watch-profile, ping) is under 200 bytes.
     * A session gets --max-payload once a user's CONNECT is accepted. */
    OPT("max-message-unauth", CFG_INT, max_message_unauth, "16384", 1024, 268435456, 0,
        "Socket.IO message and polling payload cap before a user's CONNECT, and for guests "
        "(close 1009 / 413 above; at most --max-payload)"),
    OPT("sio-connect-timeout-ms", CFG_INT, sio_connect_timeout_ms, "45000", 100, 600000, 0,
        "a Socket.IO session must CONNECT within this"),
    OPT("dev-login", CFG_BOOL, dev_login, "false", 0, 0, 0,
        "enable POST /auth/dev-login (demo only)"),
    OPT("presence-scope", CFG_STR, presence_scope, "all", 0, 0, 0,
        "all or related: give the broker the same (only related makes the full online list "
        "the broker's to answer)"),
    OPT("jit-users", CFG_BOOL, jit_users, "off", 0, 0, 0,
        "send valid tokens' profile claims to the broker, which creates unknown users from "
        "them (the broker needs it too)"),
    /* Generous for one browser or an office behind NAT, tight for one
     * script opening thousands; behind a load balancer every client has its
     * address: raise both or set 0 (no limit). */
    OPT("conns-per-ip", CFG_INT, conns_per_ip, "1024", 0, 10000000, 0,
        "open connections one client address may hold (0: no limit; 429 above)"),
    OPT("conn-rate-per-ip", CFG_REAL, conn_rate_per_ip, "200", 0, 10000000, 0,
        "new connections per second one client address may open (0: no limit; 429 above)"),
    /* The broker allows one user 10 at once, then 2 per second; an address
     * gets four users' burst and ten users' rate: people behind one NAT
     * never notice, a script rotating through many accounts from one
     * address is held to it. Behind a load balancer every client has its
     * address: set 0 there. */
    OPT("chat-rate-per-ip", CFG_REAL, chat_rate_per_ip, "20", 0, 10000000, 0,
        "chat messages and DMs per second one client address may send, whatever the users "
        "(0: no limit; rate-limited / 429 above)"),
    OPT("chat-burst-per-ip", CFG_INT, chat_burst_per_ip, "40", 1, 10000000, 0,
        "chat messages and DMs one client address may send at once"),
    OPT("metrics-allow", CFG_STR, metrics_allow, NULL, 0, 0, 0,
        "comma list of client addresses (besides loopback) that may read /metrics; * for all"),
};

static const char gw_usage[] =
    "usage: herald-gateway [options]\n"
    "Terminates client connections (/ws, HTTP routes, static files) and relays\n"
    "them to the broker over Redis Streams.";

static struct gw g_gw;
static int64_t drain_deadline;
static struct event *drain_ev;

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct gw *g = arg;
    (void)fd;
    (void)what;
    if (g->net.nconns == 0 || gw_now_ms() >= drain_deadline)
        event_base_loopexit(g->base, NULL);
}

/* SIGHUP: logrotate moved the log file; write to a fresh one. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    log_reopen_on_signal();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct gw *g = arg;
    (void)what;
    if (g->net.draining) {
        log_warn("second signal: exiting now");
        event_base_loopbreak(g->base);
        return;
    }
    log_info("signal %d: draining %zu connections (close 1001)", (int)sig, g->net.nconns);
    struct gw_sess *s, *tmp;
    TAILQ_FOREACH_SAFE(s, &g->eio.all, link, tmp)
    gw_eio_close(s, 1001, "server going away");
    gw_net_drain(&g->net, 1001, "server going away");
    drain_deadline = gw_now_ms() + GW_DRAIN_MS;
    drain_ev = event_new(g->base, -1, EV_PERSIST, on_drain_check, g);
    struct timeval tv = {0, 20000};
    event_add(drain_ev, &tv);
}

static int setup_jwt(struct gw *g)
{
    char err[256];
    unsigned char *key = NULL;
    size_t kl = 0;
    bool hs = strcasecmp(g->cfg.jwt_alg, "HS256") == 0;
    if (hs) {
        if (g->cfg.jwt_secret && *g->cfg.jwt_secret) {
            kl = strlen(g->cfg.jwt_secret);
            key = (unsigned char *)strdup(g->cfg.jwt_secret);
        } else if (g->cfg.jwt_secret_file) {
            key = cfg_read_secret_file(g->cfg.jwt_secret_file, &kl);
            if (!key) {
                log_error("cannot read --jwt-secret-file %s", g->cfg.jwt_secret_file);
                return -1;
            }
        }
        if (!key || kl == 0) {
            free(key);
            log_error("no JWT secret: set HERALD_JWT_SECRET or HERALD_JWT_SECRET_FILE");
            return -1;
        }
    } else {
        if (!g->cfg.jwt_public_key_file ||
            !(key = cfg_read_secret_file(g->cfg.jwt_public_key_file, &kl))) {
            log_error("%s needs a readable --jwt-public-key-file", g->cfg.jwt_alg);
            return -1;
        }
    }
    int rc = jwt_auth_init(&g->auth.jwt, g->cfg.jwt_alg, key, kl, g->cfg.jwt_issuer,
                           g->cfg.jwt_audience, err, sizeof(err));
    free(key);
    if (rc != 0)
        log_error("JWT setup: %s", err);
    return rc;
}

/* Caps that hold before authentication may not exceed the ones after:
 * lowering --max-body or --max-payload lowers both. */
static void clamp_unauth(long *unauth, long cap, const char *name, const char *cap_name)
{
    if (*unauth > cap) {
        log_warn("%s (%ld) is above %s (%ld): using %ld", name, *unauth, cap_name, cap, cap);
        *unauth = cap;
    }
}

/* ---- wiring: the connection layer's handlers ------------------------------------ */

/* Each connection event goes to the module that owns the connection: a /ws
 * client (gw_ws), an Engine.IO transport (gw_eio), or an HTTP request
 * (gw_routes). */

static void net_on_request(struct gw_net *n, struct gw_conn *c, const struct http_request *req,
                           const uint8_t *body, size_t body_len)
{
    gw_routes_on_request(n->h.arg, c, req, body, body_len);
}

static bool net_on_large_body(struct gw_net *n, struct gw_conn *c, const struct http_request *req)
{
    return gw_routes_on_large_body(n->h.arg, c, req);
}

static void net_on_ws_message(struct gw_net *n, struct gw_conn *c, uint8_t opcode, uint8_t *data,
                              size_t len)
{
    struct gw *g = n->h.arg;
    if (gw_ws_is_client(c))
        gw_ws_on_message(g, c, opcode, data, len);
    else
        gw_eio_ws_message(&g->eio, c, opcode, data, len);
}

static void net_on_closed(struct gw_net *n, struct gw_conn *c)
{
    struct gw *g = n->h.arg;
    if (c->sess)
        gw_eio_conn_closed(&g->eio, c);
    if (gw_ws_is_client(c))
        gw_ws_on_closed(g, c);
    else if (c->app)
        gw_routes_on_closed(g, c);
}

static void net_on_tick(struct gw_net *n, struct gw_conn *c, int64_t now_ms)
{
    struct gw *g = n->h.arg;
    if (gw_ws_is_client(c))
        gw_ws_on_tick(g, c, now_ms);
    else if (c->app)
        gw_routes_on_tick(g, c, now_ms);
}

/* ---- wiring: the bus's handlers -------------------------------------------------- */

/* gw_recover's handlers: a recovered or fresh session goes on at its
 * endpoint. */
static void recover_ready(struct gw *g, uint64_t id, bool sio, const char *pid, const char *offset)
{
    if (sio)
        gw_sio_session_ready(g, id, pid);
    else
        gw_ws_session_ready(g, id, pid, offset);
}

static void recover_resumed(struct gw *g, uint64_t id, bool sio, const char *offset)
{
    if (!sio)
        gw_ws_session_resumed(g, id, offset);
}

static void recover_drop(struct gw *g, uint64_t id, bool sio, bool recoverable)
{
    if (sio)
        gw_sio_session_drop(g, id, recoverable);
    else
        gw_ws_session_drop(g, id, recoverable);
}

static void bus_on_entry(void *arg, const struct ev_entry *e)
{
    gw_deliver_entry(arg, e);
}

/* Raw /ws clients first, then Socket.IO sessions, as always. */
static void bus_on_ready(void *arg)
{
    gw_ws_announce_all(arg);
    gw_sio_announce_all(arg);
}

/* The broker gave us up: the clients open now are the old registration's
 * (see gw_bus.h). */
static void bus_on_fenced(void *arg)
{
    struct gw *g = arg;
    struct gw_sess *s;
    TAILQ_FOREACH(s, &g->eio.all, link)
    s->flags |= GW_SESS_OLD_REG;
    gw_ws_mark_old(g);
}

/* ... and they go now, with 1012 ("service restart": clients take it as
 * "come back") and get the state afresh wherever they reconnect. */
static void bus_on_welcome(void *arg)
{
    struct gw *g = arg;
    size_t n = 0;
    struct gw_sess *s, *tmp;
    TAILQ_FOREACH_SAFE(s, &g->eio.all, link, tmp)
    {
        if (s->flags & GW_SESS_OLD_REG) {
            gw_eio_close(s, 1012, "service restart");
            n++;
        }
    }
    n += gw_ws_close_old(g, 1012, "service restart");
    log_warn("registered again: %zu client(s) of the old registration closed with 1012", n);
}

/* A client event Redis never answered: its sender hears unavailable, as if
 * the broker had refused it (the same entry the broker would write). */
static void bus_on_lost(void *arg, uint64_t conn, int64_t ack_id)
{
    static const char msg[] = "the connection to Redis dropped with this event in flight: it may "
                              "not have been taken";
    char d[384], ids[24];
    struct ev_entry e = {0};
    size_t n = ev_refusal(d, sizeof(d), ack_id >= 0 ? EV_REFUSAL_ACK : EV_REFUSAL_EVENT,
                          "unavailable", msg);
    HERALD_ASSERT(n > 0);
    int il = snprintf(ids, sizeof(ids), "%llu", (unsigned long long)conn);
    e.conns = ids;
    e.conns_len = (size_t)il;
    e.conn = conn;
    e.data = d;
    e.data_len = n;
    if (ack_id >= 0) {
        e.type = "ack";
        e.req = (uint64_t)ack_id;
        e.has_req = true;
    } else {
        e.type = "conn";
        e.event = "error";
        e.event_len = 5;
    }
    e.type_len = strlen(e.type);
    gw_deliver_entry(arg, &e);
}

static void bus_on_deleted(void *arg, int64_t user_id)
{
    struct gw *g = arg;
    gw_auth_user_deleted_add(&g->auth, user_id);
}

/* ---- start-up ---------------------------------------------------------------------- */

/*
 * Loads and checks the configuration, opens the log, names this gateway.
 * Returns -1 to go on, or the exit status (0 after --help, 2 for a bad
 * configuration, said on stderr or in the log).
 */
/* gw_auth: a valid token's profile claims, for the broker's just-in-time
 * users (PROTOCOL.md §6a), published ahead of what the token is for. */
static void auth_on_claims(void *arg, int64_t user_id, const struct jwt_auth_profile *p)
{
    struct gw *g = arg;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "userId", json_object_new_int64(user_id));
    if (p->username[0])
        json_object_object_add(o, "username", json_object_new_string(p->username));
    if (p->has_avatar)
        json_object_object_add(o, "avatar", json_object_new_string(p->avatar));
    size_t jl;
    const char *js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &jl);
    gw_bus_notify(&g->bus, "jit-user", js, jl);
    json_object_put(o);
}

static int configure(struct gw *g, int argc, char **argv)
{
    int done = cfg_start(gw_opts, sizeof(gw_opts) / sizeof(gw_opts[0]), &g->cfg, argc, argv,
                         gw_usage, &g->cfg.log_level, &g->cfg.log_file);
    if (done >= 0)
        return done;
    if (g->cfg.gateway_id && *g->cfg.gateway_id) {
        snprintf(g->id, sizeof(g->id), "%s", g->cfg.gateway_id);
    } else {
        char host[64] = "gw";
        gethostname(host, sizeof(host) - 1);
        snprintf(g->id, sizeof(g->id), "%s-%d", host, (int)getpid());
    }
    static char ident[160];
    snprintf(ident, sizeof(ident), "gateway %.120s", g->id);
    log_set_ident(ident);
    if (g->cfg.ping_timeout_ms <= g->cfg.ping_interval_ms)
        log_warn("ping-timeout-ms (%ld) <= ping-interval-ms (%ld): healthy clients may be dropped",
                 g->cfg.ping_timeout_ms, g->cfg.ping_interval_ms);
    clamp_unauth(&g->cfg.max_body_unauth, g->cfg.max_body, "max-body-unauth", "max-body");
    clamp_unauth(&g->cfg.max_message_unauth, g->cfg.max_payload, "max-message-unauth",
                 "max-payload");
    cfg_log(gw_opts, sizeof(gw_opts) / sizeof(gw_opts[0]), &g->cfg);
    return -1;
}

/* Starts the connection layer, the Engine.IO sessions and the bus on
 * g->base. Returns 0, or -1 (logged); whatever started is freed by the
 * caller's cleanup either way. */
static int start(struct gw *g, const char *host, int port)
{
    struct gw_limits lim = {
        .http = {.max_request_line = (size_t)g->cfg.max_header_bytes,
                 .max_head = (size_t)g->cfg.max_header_bytes,
                 .max_headers = (size_t)g->cfg.max_headers,
                 .max_body = (size_t)(g->cfg.max_body > g->cfg.max_payload ? g->cfg.max_body
                                                                           : g->cfg.max_payload)},
        .max_body_unauth = (size_t)g->cfg.max_body_unauth,
        .header_timeout_ms = g->cfg.header_timeout_ms,
        .keepalive_ms = 60000,
        .max_msg = (size_t)g->cfg.max_message,
        .out_cap = (size_t)g->cfg.output_cap,
        .ping_interval_ms = g->cfg.ping_interval_ms,
        .ping_timeout_ms = g->cfg.ping_timeout_ms,
        .close_timeout_ms = 2000,
        .conns_per_ip = g->cfg.conns_per_ip,
        .conn_rate_per_ip = g->cfg.conn_rate_per_ip,
        .chat_rate_per_ip = g->cfg.chat_rate_per_ip,
        .chat_burst_per_ip = g->cfg.chat_burst_per_ip,
        .write_delay_us = g->cfg.write_delay_us,
    };
    struct gw_net_handlers h = {
        .on_request = net_on_request,
        .on_large_body = net_on_large_body,
        .on_ws_message = net_on_ws_message,
        .on_closed = net_on_closed,
        .on_tick = net_on_tick,
        .arg = g,
    };
    if (gw_net_init(&g->net, g->base, &lim, &h, host, port, &g->port) != 0)
        return -1;
    /* Engine.IO's pingTimeout is the wait for a pong after a ping; ours is
     * counted from the last sign of life, a ping interval earlier. */
    struct gw_eio_config ecfg = {
        .ping_interval_ms = g->cfg.ping_interval_ms,
        .ping_timeout_ms = g->cfg.ping_timeout_ms > g->cfg.ping_interval_ms
                               ? g->cfg.ping_timeout_ms - g->cfg.ping_interval_ms
                               : g->cfg.ping_timeout_ms,
        .max_payload = g->cfg.max_payload,
        .max_payload_unauth = g->cfg.max_message_unauth,
    };
    struct gw_eio_handlers eh = gw_sio_handlers;
    eh.arg = g;
    if (gw_eio_init(&g->eio, &g->net, &ecfg, &eh) != 0)
        return -1;
    static const struct gw_recover_handlers rh = {
        .ready = recover_ready,
        .resumed = recover_resumed,
        .drop = recover_drop,
        .deliver = gw_deliver_one,
    };
    if (gw_recover_init(g, &rh) != 0)
        return -1;
    struct gw_bus_config bcfg = {
        .redis_url = g->cfg.redis_url,
        .id = g->id,
        .stream_maxlen = g->cfg.stream_maxlen,
        .lease_ms = g->cfg.gateway_lease_ms,
        .retain_ms = g->cfg.recovery_window_ms,
        .retain_max = g->cfg.recovery_log_max,
    };
    struct gw_bus_handlers bh = {
        .on_entry = bus_on_entry,
        .on_ready = bus_on_ready,
        .on_deleted = bus_on_deleted,
        .on_fenced = bus_on_fenced,
        .on_welcome = bus_on_welcome,
        .on_lost = bus_on_lost,
        .arg = g,
    };
    return gw_bus_start(&g->bus, g->base, &bcfg, &bh);
}

int main(int argc, char **argv)
{
    struct gw *g = &g_gw;
    int rc = 1;
    int done = configure(g, argc, argv);
    if (done >= 0)
        return done;
    char host[256];
    int port;
    if (cfg_parse_hostport(g->cfg.listen, host, sizeof(host), &port) != 0) {
        log_error("bad --listen \"%s\" (want host:port)", g->cfg.listen);
        return 2;
    }
    struct gw_auth_config acfg = {
        .cookie_name = g->cfg.cookie_name,
        .allowed_origins = g->cfg.allowed_origins,
        .api_key = g->cfg.api_key,
        .token_recheck_ms = g->cfg.token_recheck_ms,
        .chat_rate_per_ip = g->cfg.chat_rate_per_ip,
        .jit_users = g->cfg.jit_users,
    };
    gw_auth_init(&g->auth, &acfg, &g->net);
    g->auth.h = (struct gw_auth_handlers){.on_claims = auth_on_claims, .arg = g};
    if (setup_jwt(g) != 0)
        return 2;
    if (!ev_presence_scope(g->cfg.presence_scope, &g->scope_related)) {
        log_error("bad --presence-scope \"%s\": all or related", g->cfg.presence_scope);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    g->base = event_base_new();
    struct event *sigterm = evsignal_new(g->base, SIGTERM, on_signal, g);
    struct event *sigint = evsignal_new(g->base, SIGINT, on_signal, g);
    struct event *sighup = evsignal_new(g->base, SIGHUP, on_sighup, NULL);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_add(sighup, NULL);
    if (start(g, host, port) != 0)
        goto cleanup;
    g->started_ms = gw_now_ms();
    log_info("listening on %s:%d", host, g->port);
    event_base_dispatch(g->base);
    log_info("stopped: %llu connections accepted, %llu messages in, %llu deliveries",
             (unsigned long long)g->net.n_accepted, (unsigned long long)g->net.n_msgs_in,
             (unsigned long long)g->n_deliveries);
    rc = 0;
cleanup:
    /* Sessions and connections still open are closed now; the broker hears
     * of each (gw_bus_stop() lets those entries out before it frees). */
    if (g->eio.net)
        gw_eio_free(&g->eio);
    gw_net_free(&g->net);
    gw_recover_free(g);
    gw_online_free(&g->online);
    gw_bus_stop(&g->bus);
    gw_auth_free(&g->auth);
    if (drain_ev)
        event_free(drain_ev);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    event_base_free(g->base);
    return rc;
}
