/*
 * bk_consumer.h - reading herald:events as the consumer group "brokers":
 * XREADGROUP in batches of cfg.batch, each entry parsed and applied
 * (bk_apply), the batch acknowledged with XACK after the writes it caused,
 * on the same write connection, so Redis applies them first.
 *
 * After every (re)connect our own pending entries (read but not
 * acknowledged before) are replayed first; then new ones, blocking.
 */
#ifndef HERALD_BK_CONSUMER_H
#define HERALD_BK_CONSUMER_H

#include "bk.h"

/* Connects the read connection (b->rd): reading starts once it and the
 * write connection are up. Returns 0, or -1 on a bad Redis URL. */
int bk_consumer_start(struct bk *b);
/* Issues the next read unless one is outstanding, a connection is down or
 * the broker is stopping: call it when the write connection comes back. */
void bk_consumer_resume(struct bk *b);
/* XGROUP CREATE herald:events brokers 0 MKSTREAM through the sink (Redis
 * may have lost the group; an existing one answers BUSYGROUP, ignored). */
void bk_consumer_group_create(struct bk *b);
/*
 * Trims herald:events below what the group no longer needs: the oldest
 * entry still pending (read, not acknowledged), else the last one
 * delivered (XINFO GROUPS, then XPENDING, then XTRIM MINID, each through
 * the sink). Entries nobody has read or acknowledged are never removed;
 * gateways keep the stream's length under their cap by refusing new
 * client events while it is full. Called once a second by the active
 * broker.
 */
void bk_consumer_trim(struct bk *b);

#endif
