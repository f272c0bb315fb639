/*
 * bk_admin.c - the broker's admin port: GET /metrics (Prometheus text) and
 * GET /healthz, on --admin-listen (off when unset).
 *
 * The broker has no client traffic of its own, so this small, rarely
 * scraped endpoint uses libevent's evhttp rather than the gateway's
 * connection layer. Bind it to loopback or a private interface: it is not
 * meant for the internet. Stream figures (length, pending, lag of the
 * consumer group) come from XINFO, refreshed by the broker's tick.
 */
#include "bk_admin.h"

#include "bk_out.h"

#include "config.h"
#include "log.h"
#include "metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct bk *b = arg;
    struct evbuffer *o = evbuffer_new();
    if (!o) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    size_t conns = 0, gws = 0;
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    {
        gws++;
        conns += gw->nconns;
    }
    metrics_put(o, "herald_broker_entries_total", "counter", "Entries of herald:events applied.",
                (long long)b->counters.entries);
    metrics_put(o, "herald_broker_presence_transitions_total", "counter",
                "Online/offline transitions announced.", (long long)b->counters.transitions);
    metrics_put(o, "herald_broker_gateways_reaped_total", "counter",
                "Gateways dropped after their lease lapsed.", (long long)b->counters.reaped);
    metrics_put(o, "herald_broker_livechat_total", "counter", "Live chat messages broadcast.",
                (long long)b->counters.chat);
    metrics_put(o, "herald_broker_direct_messages_total", "counter", "Direct messages routed.",
                (long long)b->counters.dm);
    metrics_put(o, "herald_broker_rate_limited_total", "counter",
                "Chat messages and DMs refused by the rate limit.",
                (long long)b->counters.rate_limited);
    unsigned long long refused[BK_REFUSAL_COUNT];
    for (size_t i = 0; i < BK_REFUSAL_COUNT; i++)
        refused[i] = b->counters.refused[i];
    metrics_put_labelled(o, "herald_broker_refusals_total", "counter",
                         "Client events and requests refused, by the error word answered.", "code",
                         bk_refusal_words, refused, BK_REFUSAL_COUNT);
    metrics_put(o, "herald_broker_matches_total", "counter", "Matchmaking pairs made.",
                (long long)b->counters.matches);
    metrics_put(o, "herald_broker_notifications_total", "counter", "Backend notifications applied.",
                (long long)b->counters.notifications);
    metrics_put(o, "herald_broker_provisioned_total", "counter",
                "Users and friendships created or changed by the backend or from token claims.",
                (long long)b->counters.provisioned);
    metrics_put(o, "herald_broker_hooks_total", "counter", "Events appended to herald:hooks.",
                (long long)b->feed.added);
    metrics_put(o, "herald_broker_hooks_dropped_total", "counter",
                "Events not appended to herald:hooks: it was full with a consumer group behind.",
                (long long)b->feed.dropped);
    metrics_put(o, "herald_broker_hooks_length", "gauge",
                "Entries in herald:hooks (as last measured, plus those added since).",
                (long long)b->feed.len);
    metrics_put(o, "herald_broker_webhook_events_total", "counter",
                "Events delivered to the webhook (2xx).", (long long)b->webhook.delivered);
    metrics_put(o, "herald_broker_webhook_batches_total", "counter",
                "Webhook batches delivered (2xx).", (long long)b->webhook.batches);
    metrics_put(o, "herald_broker_webhook_failures_total", "counter",
                "Webhook attempts that failed (not 2xx, refused, reset, timed out).",
                (long long)b->webhook.failures);
    metrics_put(o, "herald_broker_webhook_dropped_total", "counter",
                "Webhook events dropped: older than --webhook-retry-s, or not a hook.",
                (long long)b->webhook.dropped);
    metrics_put(o, "herald_broker_webhook_inflight", "gauge",
                "Webhook events read and not yet acknowledged (the batch in memory).",
                (long long)b->webhook.n);
    metrics_put(o, "herald_broker_sessions_recovered_total", "counter",
                "Sessions that came back within the recovery window (no presence transition).",
                (long long)b->counters.recovered);
    metrics_put(o, "herald_broker_sessions_fresh_total", "counter",
                "Sessions that asked to recover and got a fresh session (unknown, another user, "
                "or past the window).",
                (long long)b->counters.recovery_fresh);
    metrics_put(o, "herald_broker_sessions_expired_total", "counter",
                "Detached sessions dropped at the end of the recovery window.",
                (long long)b->counters.detached_expired);
    metrics_put(o, "herald_broker_sessions_detached", "gauge",
                "Closed sessions that may still come back.", (long long)b->ndetached);
    metrics_put(o, "herald_broker_online_users", "gauge", "Users online.", (long long)b->nonline);
    metrics_put(o, "herald_broker_connections", "gauge", "Connections known, all gateways.",
                (long long)conns);
    metrics_put(o, "herald_broker_gateways", "gauge", "Gateways with a stream.", (long long)gws);
    metrics_put(o, "herald_broker_rooms", "gauge", "Profile rooms with members.",
                (long long)b->rooms.n);
    metrics_put(o, "herald_broker_matchmaking_queued", "gauge", "Users waiting for a match.",
                (long long)b->match.n);
    metrics_put(o, "herald_broker_stream_length", "gauge", "Entries in herald:events.",
                b->counters.stream_len);
    metrics_put(o, "herald_broker_stream_pending", "gauge",
                "Entries delivered to the group but not acknowledged.", b->counters.stream_pending);
    metrics_put(o, "herald_broker_stream_lag", "gauge", "Entries not yet delivered to the group.",
                b->counters.stream_lag);
    metrics_put(o, "herald_broker_redis_up", "gauge", "1 when both Redis connections are up.",
                b->cmd.up && b->rd.up);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", METRICS_CONTENT_TYPE);
    evhttp_send_reply(req, 200, "OK", o);
    evbuffer_free(o);
}

static void on_healthz(struct evhttp_request *req, void *arg)
{
    struct bk *b = arg;
    struct evbuffer *o = evbuffer_new();
    bool ok = b->cmd.up && b->rd.up;
    evbuffer_add_printf(o, "{\"status\":\"%s\",\"redis\":%s,\"online\":%zu}",
                        ok ? "ok" : "unavailable", ok ? "true" : "false", b->nonline);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", o);
    evbuffer_free(o);
}

/* XINFO GROUPS herald:events: [[name, brokers, consumers, n, pending, n,
 * last-delivered-id, id, entries-read, n, lag, n], ...] (Redis 7). */
static void on_xinfo(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    redisReply *r = reply;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        bool ours = false;
        long long pending = 0, lag = 0;
        for (size_t j = 0; g->type == REDIS_REPLY_ARRAY && j + 1 < g->elements; j += 2) {
            const char *k = g->element[j]->str;
            redisReply *v = g->element[j + 1];
            if (!k)
                continue;
            if (strcmp(k, "name") == 0 && v->str && strcmp(v->str, EV_GROUP) == 0)
                ours = true;
            else if (strcmp(k, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(k, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                lag = v->integer;
        }
        if (ours) {
            b->counters.stream_pending = pending;
            b->counters.stream_lag = lag;
        }
    }
}

static void on_xlen(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER)
        b->counters.stream_len = r->integer;
}

void bk_admin_refresh(struct bk *b)
{
    if (!b->admin || !b->cmd.up)
        return;
    const char *info[] = {"XINFO", "GROUPS", EV_STREAM_IN}, *len[] = {"XLEN", EV_STREAM_IN};
    const size_t info_lens[] = {5, 6, sizeof(EV_STREAM_IN) - 1},
                 len_lens[] = {4, sizeof(EV_STREAM_IN) - 1};
    bk_send(b, on_xinfo, b, 3, info, info_lens);
    bk_send(b, on_xlen, b, 2, len, len_lens);
}

int bk_admin_start(struct bk *b)
{
    if (!b->cfg.admin_listen || !*b->cfg.admin_listen)
        return 0;
    char host[256];
    int port;
    if (cfg_parse_hostport(b->cfg.admin_listen, host, sizeof(host), &port) != 0) {
        log_error("bad --admin-listen \"%s\": expected host:port", b->cfg.admin_listen);
        return -1;
    }
    b->admin = evhttp_new(b->base);
    if (!b->admin || evhttp_bind_socket(b->admin, host, (ev_uint16_t)port) != 0) {
        log_error("cannot listen on %s for the admin port", b->cfg.admin_listen);
        return -1;
    }
    evhttp_set_allowed_methods(b->admin, EVHTTP_REQ_GET);
    evhttp_set_cb(b->admin, "/metrics", on_metrics, b);
    evhttp_set_cb(b->admin, "/healthz", on_healthz, b);
    log_info("admin port on %s (/metrics, /healthz)", b->cfg.admin_listen);
    return 0;
}

void bk_admin_stop(struct bk *b)
{
    if (b->admin)
        evhttp_free(b->admin);
    b->admin = NULL;
}
