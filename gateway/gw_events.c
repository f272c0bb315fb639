/*
 * gw_events.c - the gateway's client-event table; see gw_events.h.
 *
 * Nine relayed events and two answered here: a linear scan of short
 * strings is cheaper than anything cleverer at this size.
 */
#include "gw_events.h"

#include "event.h"

static const struct gw_event gw_events[] = {
    /* Answered by the gateway itself. */
    {"ping", "ping", NULL, GW_EVENT_PING, 0},
    {"refresh-token", "refresh-token", NULL, GW_EVENT_REFRESH_TOKEN, 0},
    /* Relayed to the broker; /ws uses the broker's names. */
    {"get_online_users", "get-online-users", "get_online_users", GW_EVENT_RELAY, 0},
    {"livechat", "livechat", "livechat", GW_EVENT_RELAY, GW_EVENT_CHAT},
    {"direct_message", "direct_message", "direct_message", GW_EVENT_RELAY, GW_EVENT_CHAT},
    {"watch-profile", "watch-profile", "watch-profile", GW_EVENT_RELAY, 0},
    {"unwatch-profile", "unwatch-profile", "unwatch-profile", GW_EVENT_RELAY, 0},
    {"join-matchmaking", "join-matchmaking", "join-matchmaking", GW_EVENT_RELAY, 0},
    {"leave-matchmaking", "leave-matchmaking", "leave-matchmaking", GW_EVENT_RELAY, 0},
    /* Socket.IO only, as they have always been: /ws answers unknown-type. */
    {NULL, "whoami", "whoami", GW_EVENT_RELAY, 0},
    {NULL, "get-users", "get-users", GW_EVENT_RELAY, 0},
};

static bool name_is(const char *name, size_t len, const char *want)
{
    return want && ev_is(name, len, want);
}

const struct gw_event *gw_event_raw(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(gw_events) / sizeof(gw_events[0]); i++)
        if (name_is(name, len, gw_events[i].raw))
            return &gw_events[i];
    return NULL;
}

const struct gw_event *gw_event_sio(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(gw_events) / sizeof(gw_events[0]); i++)
        if (name_is(name, len, gw_events[i].sio))
            return &gw_events[i];
    return NULL;
}
