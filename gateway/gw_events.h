/*
 * gw_events.h - the client events the gateway knows, in one table: their
 * name on /ws, their name on Socket.IO, the name the broker knows them by,
 * and what the gateway does with them.
 *
 * Why one table: the two endpoints each had their own list, and the lists
 * drifted ("whoami" and "get-users" are relayed on Socket.IO only). The
 * table keeps that behaviour, visibly, instead of by accident.
 * (common/ is getting a client-event table shared with the broker; this
 * one moves there once it lands.)
 */
#ifndef HERALD_GW_EVENTS_H
#define HERALD_GW_EVENTS_H

#include <stddef.h>
#include <stdint.h>

/* What the gateway does with an event. */
enum gw_event_action {
    GW_EVENT_RELAY,         /* on to the broker under event->broker */
    GW_EVENT_PING,          /* answered here: pong (PROTOCOL.md §2) */
    GW_EVENT_REFRESH_TOKEN, /* answered here: gw_token_life_refresh() */
};

#define GW_EVENT_CHAT 0x01u /* takes from the per-address chat bucket (gw_auth) */

struct gw_event {
    const char *raw;    /* borrowed (static): name on /ws, NULL: not accepted there */
    const char *sio;    /* borrowed (static): name on Socket.IO, NULL: not accepted there */
    const char *broker; /* borrowed (static): name in the "msg" entry, NULL: not relayed */
    uint8_t action;     /* enum gw_event_action */
    uint8_t flags;      /* GW_EVENT_* */
};

/* The event a /ws client calls name (len bytes, borrowed), or NULL when
 * /ws does not accept it. The result is static. */
const struct gw_event *gw_event_raw(const char *name, size_t len);
/* The same for a Socket.IO event name. */
const struct gw_event *gw_event_sio(const char *name, size_t len);

#endif
