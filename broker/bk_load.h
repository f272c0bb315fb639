/*
 * bk_load.h - the state between Redis and memory in bulk: loaded at
 * start-up (blocking, before consuming), written again as a whole after a
 * Redis outage (Redis may have restarted empty).
 *
 * Presence's keys are handled here; each feature's keys through its hooks
 * (gw_loaded, loaded, resync: bk_presence.h).
 */
#ifndef HERALD_BK_LOAD_H
#define HERALD_BK_LOAD_H

#include "bk.h"

/*
 * Start-up, on the blocking connection rc (borrowed): creates the consumer
 * group when missing, then loads the gateways, their connections, each
 * gateway's feature keys, online_users, and the rest of the features' keys.
 * Writes nothing back except through the features' loaded hooks (the
 * queue). Returns 0, or -1 (a Redis error; the state is partly loaded and
 * the caller gives up).
 */
int bk_load_state(struct bk *b, redisContext *rc);

/* Redis came back after an outage and may have lost everything: every
 * gateway gets a full lease again, and the whole state is rewritten in one
 * MULTI/EXEC through the sink (the features' keys through resync hooks). */
void bk_load_resync(struct bk *b);

#endif
