/*
 * gw_deliver.c - applies the broker's entries; see gw_deliver.h.
 *
 * Entry types (common/event.h): "all"/"auth" broadcast an event to every
 * (authenticated) client of this gateway; "conn", "ack" and "kick" name
 * their clients in the c field, each a /ws connection or a Socket.IO
 * session; "reply" answers a relayed HTTP request; "deleted" records a
 * deleted account. A broadcast is the hot path under load: one rendering
 * per endpoint, shared by every recipient.
 */
#include "gw_deliver.h"
#include "gw_metrics.h"
#include "gw_online.h"
#include "gw_recover.h"
#include "gw_routes.h"
#include "gw_sio.h"
#include "gw_ws.h"

#include "log.h"

/* conn/ack/kick: one pass over the ids, each rendering built at most once
 * per entry. */
static void deliver_to_ids(struct gw *g, const struct ev_entry *e)
{
    struct gw_sio_render sio = {0};
    struct gw_ws_render raw = {0};
    const char *p = e->conns, *end = e->conns + e->conns_len;
    uint64_t id;
    while (ev_ids_next(&p, end, &id)) {
        if (gw_recover_busy(g, id))
            gw_recover_hold(g, id, e); /* in order, after what it missed */
        else if (gw_sio_deliver_id(g, id, e, &sio) || gw_ws_deliver_id(g, id, e, &raw))
            g->n_deliveries++;
    }
    gw_sio_render_release(&sio);
    gw_ws_render_release(&raw);
}

/* A "status" entry names its connections (scope related) or none (to
 * everyone, scope all). */
static bool status_named(const struct ev_entry *e)
{
    return e->conns != NULL;
}

void gw_deliver_entry(struct gw *g, const struct ev_entry *e)
{
    bool auth = ev_is(e->type, e->type_len, "auth");
    if (auth || ev_is(e->type, e->type_len, "all")) {
        g->n_deliveries += gw_sio_broadcast(g, e);
        g->n_deliveries += gw_ws_broadcast(g, e, auth);
        return;
    }
    if (ev_is(e->type, e->type_len, "status")) {
        /* Our online list follows every transition, whoever hears it. */
        gw_online_status(&g->online, e->user, e->status == 1);
        if (status_named(e)) {
            deliver_to_ids(g, e);
        } else {
            g->n_deliveries += gw_sio_broadcast(g, e);
            g->n_deliveries += gw_ws_broadcast(g, e, false);
        }
        return;
    }
    if (ev_is(e->type, e->type_len, "online")) {
        gw_online_list(&g->online, e);
        return;
    }
    if (e->ms > 0)
        gw_metrics_observe(g, gw_now_ms() - e->ms);
    if (ev_is(e->type, e->type_len, "conn") || ev_is(e->type, e->type_len, "ack") ||
        ev_is(e->type, e->type_len, "kick")) {
        deliver_to_ids(g, e);
        return;
    }
    if (ev_is(e->type, e->type_len, "reply")) {
        gw_routes_on_reply(g, e);
        return;
    }
    if (ev_is(e->type, e->type_len, "deleted")) {
        gw_auth_user_deleted_add(&g->auth, e->user);
        return;
    }
    if (ev_is(e->type, e->type_len, "resume")) {
        gw_recover_on_resume(g, e);
        return;
    }
    if (ev_is(e->type, e->type_len, "moved")) {
        if (!gw_sio_moved(g, e->conn))
            gw_ws_moved(g, e->conn);
        return;
    }
    log_warn_rl(5, "unknown entry type %.*s on %s", (int)e->type_len, e->type, g->bus.stream);
}

void gw_deliver_one(struct gw *g, uint64_t id, const struct ev_entry *e)
{
    bool auth = ev_is(e->type, e->type_len, "auth");
    bool status = ev_is(e->type, e->type_len, "status");
    if (auth || ev_is(e->type, e->type_len, "all") || (status && !status_named(e))) {
        if (!gw_sio_send_one(g, id, e, auth))
            gw_ws_send_one(g, id, e, auth);
        g->n_deliveries++;
        return;
    }
    if (!(status || ev_is(e->type, e->type_len, "conn") || ev_is(e->type, e->type_len, "ack") ||
          ev_is(e->type, e->type_len, "kick")))
        return;
    const char *p = e->conns, *end = e->conns + e->conns_len;
    uint64_t each;
    while (ev_ids_next(&p, end, &each)) {
        if (each != id)
            continue;
        struct gw_sio_render sio = {0};
        struct gw_ws_render raw = {0};
        if (gw_sio_deliver_id(g, id, e, &sio) || gw_ws_deliver_id(g, id, e, &raw))
            g->n_deliveries++;
        gw_sio_render_release(&sio);
        gw_ws_render_release(&raw);
        return;
    }
}
