/*
 * gw_metrics.c - GET /metrics: the gateway's counters in the Prometheus
 * text format (PROTOCOL.md §6), and the latency histogram of the
 * gateway -> broker -> gateway path.
 *
 * The route is "bind-restricted": it answers only peers on the loopback
 * interface or listed in --metrics-allow, because connection counts and
 * latencies tell an outsider more than they should. Everything here is read
 * from counters the other modules keep anyway; a scrape walks the
 * connection list and the session list once (to count connections by kind
 * and parked polls), which is fine at a scrape every few seconds.
 */
#include "gw_metrics.h"
#include "gw_recover.h"
#include "gw_ws.h"

#include "log.h"
#include "metrics.h"

#include <event2/buffer.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Upper bounds of the latency buckets, ms: the path is ~1 ms on one host;
 * the tail up to a second shows Redis or broker stalls. */
static const int64_t gw_hist_bounds_ms[GW_HIST_BUCKETS] = {1,  2,   5,   10,  20,
                                                           50, 100, 250, 500, 1000};

void gw_metrics_observe(struct gw *g, int64_t ms)
{
    struct gw_hist *h = &g->rtt;
    if (ms < 0)
        ms = 0;
    for (int i = 0; i < GW_HIST_BUCKETS; i++)
        if (ms <= gw_hist_bounds_ms[i])
            h->counts[i]++;
    h->count++;
    h->sum_ms += ms;
}

/* True when the peer may read /metrics: loopback, or an exact address in
 * the comma list allow ("*" allows everyone). */
static bool peer_allowed(const struct gw *g, const struct gw_conn *c)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "";
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        if ((ntohl(in->sin_addr.s_addr) >> 24) == 127)
            return true;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
            (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127))
            return true; /* ::1, or 127.x.x.x on a dual-stack socket */
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    }
    const char *list = g->cfg.metrics_allow;
    size_t il = strlen(ip);
    while (list && *list) {
        const char *end = strchr(list, ',');
        size_t l = end ? (size_t)(end - list) : strlen(list);
        if ((l == 1 && *list == '*') || (il && l == il && memcmp(list, ip, l) == 0))
            return true;
        list = end ? end + 1 : NULL;
    }
    return false;
}

void gw_metrics_respond(struct gw *g, struct gw_conn *c)
{
    if (!peer_allowed(g, c)) {
        gw_http_error(c, 403, "forbidden", "metrics are for the loopback or --metrics-allow");
        return;
    }
    size_t raw = 0, http = 0;
    unsigned long long queued = 0;
    struct gw_conn *x;
    GW_NET_FOREACH(x, &g->net)
    {
        queued += x->out_bytes;
        if (gw_ws_is_client(x))
            raw++;
        else if (!(x->flags & GW_CONN_WS))
            http++;
    }
    size_t parked = 0;
    struct gw_sess *s;
    TAILQ_FOREACH(s, &g->eio.all, link)
    {
        if (s->pl && s->pl->poll)
            parked++;
    }
    struct evbuffer *o = evbuffer_new();
    if (!o) {
        gw_http_error(c, 500, "internal", "out of memory");
        return;
    }
    evbuffer_add_printf(o, "# HELP herald_gateway_connections Open client connections by kind.\n"
                           "# TYPE herald_gateway_connections gauge\n");
    evbuffer_add_printf(o, "herald_gateway_connections{kind=\"ws\"} %zu\n", raw);
    evbuffer_add_printf(o, "herald_gateway_connections{kind=\"sio\"} %zu\n", g->eio.nsess);
    evbuffer_add_printf(o, "herald_gateway_connections{kind=\"http\"} %zu\n", http);
    metrics_put(o, "herald_gateway_polls_parked", "gauge",
                "Long-polling GETs parked until their Engine.IO session has packets.",
                (unsigned long long)parked);
    metrics_put(o, "herald_gateway_accepted_total", "counter", "TCP connections accepted.",
                (unsigned long long)g->net.n_accepted);
    metrics_put(o, "herald_gateway_messages_in_total", "counter", "WebSocket messages received.",
                (unsigned long long)g->net.n_msgs_in);
    metrics_put(o, "herald_gateway_frames_out_total", "counter", "Frames and responses queued.",
                (unsigned long long)g->net.n_frames_out);
    metrics_put(o, "herald_gateway_published_total", "counter", "Entries written to herald:events.",
                (unsigned long long)g->bus.n_published);
    metrics_put(o, "herald_gateway_entries_in_total", "counter", "Entries read from our stream.",
                (unsigned long long)g->bus.n_entries_in);
    metrics_put(o, "herald_gateway_writes_total", "counter",
                "Writes to client sockets (writev calls); deliveries per write is the coalescing.",
                (unsigned long long)g->net.n_writes);
    metrics_put(o, "herald_gateway_deliveries_total", "counter",
                "Events delivered to client connections.", (unsigned long long)g->n_deliveries);
    metrics_put(o, "herald_gateway_output_queued_bytes", "gauge",
                "Bytes queued for client sockets and not yet written (each connection is "
                "capped by --output-cap).",
                queued);
    metrics_put(o, "herald_gateway_events_refused_total", "counter",
                "Client events and requests answered unavailable: Redis down or herald:events "
                "at its cap.",
                (unsigned long long)g->bus.n_refused);
    metrics_put(o, "herald_gateway_events_lost_in_flight_total", "counter",
                "Client events that never reached the broker (connection to Redis lost with "
                "them in flight, refused, or lost in a Redis restart): their senders were "
                "answered unavailable.",
                (unsigned long long)g->bus.n_lost);
    metrics_put(o, "herald_gateway_events_held", "gauge",
                "Client events handed to Redis and not yet read by the broker (answered "
                "unavailable if Redis loses them).",
                (unsigned long long)g->bus.inflight_n);
    metrics_put(o, "herald_gateway_fenced_total", "counter",
                "Times the broker gave this gateway up (paused or cut off past its lease): "
                "every client closed with 1012, then registered again.",
                (unsigned long long)g->bus.n_fenced);
    struct gw_recover_stats rs;
    gw_recover_stats(g, &rs);
    metrics_put(o, "herald_gateway_sessions_recovered_total", "counter",
                "Sessions that came back here with every event they missed (Socket.IO "
                "recovered, /ws resumed).",
                (unsigned long long)rs.recovered);
    metrics_put(o, "herald_gateway_sessions_recovery_fresh_total", "counter",
                "Sessions that asked to come back and got a fresh session.",
                (unsigned long long)rs.fresh);
    metrics_put(o, "herald_gateway_sessions_recovery_trimmed_total", "counter",
                "Of those: their offset was no longer kept (past the window or "
                "--recovery-log-max).",
                (unsigned long long)rs.trimmed);
    metrics_put(o, "herald_gateway_sessions_recovery_capped_total", "counter",
                "Sessions that missed more than --recovery-max-events: closed, fresh next time.",
                (unsigned long long)rs.capped);
    metrics_put(o, "herald_gateway_events_replayed_total", "counter",
                "Missed events delivered to recovered sessions.", (unsigned long long)rs.replayed);
    metrics_put(o, "herald_gateway_input_stream_full", "gauge",
                "1 while herald:events is at --stream-maxlen (new client events refused).",
                (unsigned long long)g->bus.events_full);
    metrics_put(o, "herald_gateway_slow_consumers_cut_total", "counter",
                "Connections closed for exceeding the output cap.",
                (unsigned long long)g->net.n_slow_cut);
    metrics_put(o, "herald_gateway_ip_refused_total", "counter",
                "Connections refused (429) for the per-address limits.",
                (long long)g->net.n_ip_refused);
    const char *names[GW_LIMIT_COUNT];
    unsigned long long counts[GW_LIMIT_COUNT];
    for (int i = 0; i < GW_LIMIT_COUNT; i++) {
        names[i] = gw_limit_name((enum gw_limit)i);
        counts[i] = (unsigned long long)g->net.n_limit[i];
    }
    metrics_put_labelled(o, "herald_gateway_limit_refusals_total", "counter",
                         "Requests, messages and connections refused for a limit, by limit.",
                         "limit", names, counts, GW_LIMIT_COUNT);
    metrics_put(o, "herald_gateway_redis_up", "gauge", "1 when both Redis connections are up.",
                g->bus.pub.up && g->bus.sub.up);
    metrics_put(o, "herald_gateway_broker_alive", "gauge",
                "1 when the broker's heartbeat is fresh.", g->bus.broker_alive);
    const struct gw_hist *h = &g->rtt;
    evbuffer_add_printf(
        o, "# HELP herald_gateway_broker_rtt_seconds Gateway to broker to gateway round trip "
           "(answered requests and acks).\n"
           "# TYPE herald_gateway_broker_rtt_seconds histogram\n");
    for (int i = 0; i < GW_HIST_BUCKETS; i++)
        evbuffer_add_printf(o, "herald_gateway_broker_rtt_seconds_bucket{le=\"%g\"} %llu\n",
                            (double)gw_hist_bounds_ms[i] / 1000.0,
                            (unsigned long long)h->counts[i]);
    evbuffer_add_printf(o, "herald_gateway_broker_rtt_seconds_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)h->count);
    evbuffer_add_printf(o, "herald_gateway_broker_rtt_seconds_sum %.3f\n",
                        (double)h->sum_ms / 1000.0);
    evbuffer_add_printf(o, "herald_gateway_broker_rtt_seconds_count %llu\n",
                        (unsigned long long)h->count);
    size_t len = evbuffer_get_length(o);
    gw_http_respond(c, 200, METRICS_CONTENT_TYPE, NULL, evbuffer_pullup(o, -1), len, true);
    evbuffer_free(o);
}
