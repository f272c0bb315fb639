/*
 * bk_dispatch.c - bk_apply(): from an entry of herald:events to the module
 * that implements it, by table, in four steps: the entry type (event.h),
 * then for "msg" the client event, for "req" the relayed HTTP request, for
 * "notify" the backend's notification. A handler is found by name in one
 * table and called with the origin (how to answer) and the parsed "d"
 * object; no handler knows how it was found.
 *
 * Unknown names are answered (a client's unknown-type error, an HTTP 404)
 * or logged (entry types, notifications): a newer writer never stalls the
 * broker. Every entry is acknowledged by the consumer whatever happens.
 */
#include "bk.h"

#include "bk_answer.h"
#include "bk_chat.h"
#include "bk_lookup.h"
#include "bk_match.h"
#include "bk_notify.h"
#include "bk_out.h"
#include "bk_presence.h"
#include "bk_provision.h"
#include "bk_rooms.h"
#include "log.h"

#include <json-c/json.h>
#include <string.h>

/* One row of the msg, req and notify tables. */
struct route {
    const char *name;
    /* msg only: NULL when guests may send it, else the message of the
     * auth-required answer they get instead. */
    const char *guests_refused;
    void (*fn)(struct bk *b, const struct bk_origin *o, struct json_object *args);
};

#define GUESTS_MAY_NOT "guests may not do this: log in first"
#define GUESTS_MAY_NOT_PLAY "guests may not play: log in first"

/* Client events (msg entries), by their /ws type: PROTOCOL.md §3 and §4
 * (the gateway renames Socket.IO's get-online-users). ping and
 * refresh-token are the gateway's own. */
static const struct route msg_routes[] = {
    {"get_online_users", NULL, bk_lookup_online_users},
    {"livechat", GUESTS_MAY_NOT, bk_chat_livechat},
    {"direct_message", GUESTS_MAY_NOT, bk_chat_direct},
    {"watch-profile", NULL, bk_rooms_watch},
    {"unwatch-profile", NULL, bk_rooms_unwatch},
    {"watch-presence", NULL, bk_rooms_watch_presence},
    {"unwatch-presence", NULL, bk_rooms_unwatch_presence},
    {"join-matchmaking", GUESTS_MAY_NOT_PLAY, bk_match_join},
    {"leave-matchmaking", GUESTS_MAY_NOT_PLAY, bk_match_leave},
    {"whoami", NULL, bk_lookup_whoami},
    {"get-users", NULL, bk_lookup_get_users},
    {"get_dm_history", GUESTS_MAY_NOT, bk_chat_dm_history},
    {"dm_read", GUESTS_MAY_NOT, bk_chat_dm_read},
    {"get_unread", GUESTS_MAY_NOT, bk_chat_unread},
    {"get_chat_history", GUESTS_MAY_NOT, bk_chat_history},
};

/* HTTP requests a gateway relays (req entries): PROTOCOL.md §6. The gateway
 * checks the token or API key; the chat routes carry the token's user. */
static const struct route req_routes[] = {
    {"online-status", NULL, bk_lookup_online_status}, /* GET /online-status/:username */
    {"search", NULL, bk_lookup_search},               /* GET /users/search */
    {"user", NULL, bk_lookup_user},                   /* POST /auth/dev-login */
    {"livechat", NULL, bk_chat_livechat},             /* POST /live_chat_message */
    {"direct_message", NULL, bk_chat_direct},         /* POST /direct_chat_message */
    {"profile-update", NULL, bk_notify_profile},      /* POST /api/notify/... */
    {"game-stats-update", NULL, bk_notify_stats},
    {"account-deleted", NULL, bk_notify_deleted},
    {"dm-history", NULL, bk_chat_dm_history_api},      /* GET /api/dm/history */
    {"user-put", NULL, bk_provision_user_put},         /* PUT /api/users/:id */
    {"user-delete", NULL, bk_notify_deleted},          /* DELETE /api/users/:id */
    {"friendship-put", NULL, bk_provision_friend_put}, /* PUT /api/friendships */
    {"friendship-delete", NULL, bk_provision_friend_delete},
    {"online-ids", NULL, bk_lookup_online_ids}, /* POST /api/online-status */
};

/* The backend's notifications (notify entries): PROTOCOL.md §6a. */
static const struct route notify_routes[] = {
    {"profile-update", NULL, bk_notify_profile},
    {"game-stats-update", NULL, bk_notify_stats},
    {"account-deleted", NULL, bk_notify_deleted},
    {"user-put", NULL, bk_provision_user_put},
    {"user-delete", NULL, bk_notify_deleted},
    {"friendship-put", NULL, bk_provision_friend_put},
    {"friendship-delete", NULL, bk_provision_friend_delete},
    {"jit-user", NULL, bk_provision_jit}, /* a gateway: a token's claims, ahead of its open */
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct route *route_find(const struct route *t, size_t n, const struct ev_entry *e)
{
    for (size_t i = 0; i < n; i++)
        if (ev_is(e->event, e->event_len, t[i].name))
            return &t[i];
    return NULL;
}

/* Calls r's handler with the entry's "d" parsed (NULL when it is not a
 * JSON object). */
static void route_call(struct bk *b, const struct route *r, const struct bk_origin *o)
{
    struct json_object *args = ev_json_parse(o->e->data, o->e->data_len, json_type_object);
    r->fn(b, o, args);
    json_object_put(args);
}

/* A client event from a connection we do not hold: it closed meanwhile
 * (the gateway drops the answer), or its gateway was fenced (the answer
 * may still reach the client before its 1012). Either way it is answered,
 * never dropped in silence. */
static void on_msg_unregistered(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    struct bk_conn c = {.gw = gw, .id = e->conn, .sio = e->has_req};
    struct bk_origin o = {.gw = gw, .e = e, .c = &c};
    bk_answer_error(b, &o, 503, "unavailable",
                    "this connection is not registered with the broker: reconnect");
}

static void on_msg(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    struct bk_conn *c = bk_conn_find(b, gw, e->conn);
    if (!c) {
        on_msg_unregistered(b, gw, e);
        return;
    }
    const struct route *r = route_find(msg_routes, COUNT(msg_routes), e);
    if (!r) {
        static const char err[] =
            "{\"code\":\"unknown-type\",\"message\":\"this event is not handled\"}";
        bk_to_conn(b, c, "error", err, sizeof(err) - 1);
        return;
    }
    struct bk_origin o = {.gw = gw, .e = e, .c = c};
    if (r->guests_refused && !c->user) {
        bk_answer_error(b, &o, 401, "auth-required", r->guests_refused);
        return;
    }
    route_call(b, r, &o);
}

static void on_req(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    const struct route *r = route_find(req_routes, COUNT(req_routes), e);
    if (!r) {
        BK_REPLY_LIT(b, gw, e, 404, "{\"error\":\"not-found\",\"message\":\"unknown request\"}");
        return;
    }
    struct bk_origin o = {.gw = gw, .e = e};
    route_call(b, r, &o);
}

static void on_notify(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    (void)gw;
    const struct route *r = route_find(notify_routes, COUNT(notify_routes), e);
    if (!r) {
        log_warn_rl(5, "notify entry with unknown event \"%.*s\"", (int)e->event_len, e->event);
        return;
    }
    struct bk_origin o = {.e = e};
    route_call(b, r, &o);
}

/* Entry types of herald:events (event.h). */
#define ENTRY_NEEDS_GW 1u /* skipped without a (valid) gw field */
#define ENTRY_FINDS_GW 2u /* looks the gateway up: never registers it */

static const struct {
    const char *type;
    unsigned flags;
    void (*fn)(struct bk *b, struct bk_gw *gw, const struct ev_entry *e);
} entry_routes[] = {
    {"hello", ENTRY_NEEDS_GW, bk_presence_hello},
    {"sync", ENTRY_NEEDS_GW, bk_presence_sync},
    {"open", ENTRY_NEEDS_GW, bk_presence_open},
    /* A close may name a gateway we reaped: it must not come back. */
    {"close", ENTRY_NEEDS_GW | ENTRY_FINDS_GW, bk_presence_close},
    {"msg", ENTRY_NEEDS_GW, on_msg},
    {"req", ENTRY_NEEDS_GW, on_req},
    {"notify", 0, on_notify},
};

/*
 * An entry from a gateway we fenced (reaped, no "hello" since): it was
 * paused or cut off and does not know yet. Its opens and syncs would count
 * clients it is about to close (1012), so they are ignored, and its lease
 * key is told "reaped" again; client events are answered unavailable, HTTP
 * requests served as usual (they hold no state). The gateway's record
 * stays out of the table: nothing is broadcast to it.
 */
static void apply_fenced(struct bk *b, const struct ev_entry *e)
{
    char name[BK_GW_ID_MAX + 1];
    memcpy(name, e->gw, e->gw_len);
    name[e->gw_len] = '\0';
    struct bk_gw gw = {.id = name};
    if (ev_is(e->type, e->type_len, "msg"))
        on_msg_unregistered(b, &gw, e);
    else if (ev_is(e->type, e->type_len, "req"))
        on_req(b, &gw, e);
    else if (ev_is(e->type, e->type_len, "open") || ev_is(e->type, e->type_len, "sync"))
        bk_gw_fence_mark(b, e->gw, e->gw_len);
}

void bk_apply(struct bk *b, const struct ev_entry *e)
{
    b->counters.entries++;
    size_t i = 0;
    while (i < COUNT(entry_routes) && !ev_is(e->type, e->type_len, entry_routes[i].type))
        i++;
    if (e->gw && b->nfenced && !ev_is(e->type, e->type_len, "hello") &&
        bk_gw_fenced(b, e->gw, e->gw_len)) {
        apply_fenced(b, e);
        return;
    }
    unsigned flags = i < COUNT(entry_routes) ? entry_routes[i].flags : 0;
    /* Any entry with a gw field registers its gateway (a close only looks
     * it up) and counts as a sign of life for the lease. */
    struct bk_gw *gw = NULL;
    if (e->gw)
        gw = flags & ENTRY_FINDS_GW ? bk_gw_find(b, e->gw, e->gw_len)
                                    : bk_gw_get(b, e->gw, e->gw_len, true);
    if (gw)
        gw->seen_ms = bk_now(b);
    if (i == COUNT(entry_routes)) {
        log_warn_rl(5, "ignoring entry of unknown type \"%.*s\"", (int)e->type_len, e->type);
        return;
    }
    if (!gw && (flags & ENTRY_NEEDS_GW))
        return;
    entry_routes[i].fn(b, gw, e);
}
