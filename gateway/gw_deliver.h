/*
 * gw_deliver.h - what happens to an entry the broker wrote to our stream:
 * events fanned out to /ws and Socket.IO clients, kicks, acks, answers to
 * relayed HTTP requests, deleted accounts.
 *
 * Why a module of its own: it is the one place that knows both endpoints
 * exist, so neither endpoint nor the bus has to. Each endpoint renders an
 * event once per entry and shares it among its recipients.
 */
#ifndef HERALD_GW_DELIVER_H
#define HERALD_GW_DELIVER_H

#include "gw.h"

/* Applies one entry (gw_bus on_entry; e borrowed for the call). Unknown
 * entry types are logged and skipped. */
void gw_deliver_entry(struct gw *g, const struct ev_entry *e);
/* Applies one entry to session id alone, whatever else it names: a
 * recovered session's missed events (read back from another stream) and
 * those held for it meanwhile (gw_recover). */
void gw_deliver_one(struct gw *g, uint64_t id, const struct ev_entry *e);

#endif
