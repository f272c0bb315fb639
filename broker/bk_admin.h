/*
 * bk_admin.h - the broker's admin port (--admin-listen): GET /metrics and
 * GET /healthz, for operators (docs/OPERATIONS.md). It reads the state and
 * the counters; it changes nothing.
 */
#ifndef HERALD_BK_ADMIN_H
#define HERALD_BK_ADMIN_H

#include "bk.h"

/* Listens on cfg.admin_listen (nothing when unset). Returns 0, or -1 with
 * a log line (bad address, port taken). */
int bk_admin_start(struct bk *b);
/* Closes the port; safe when it never opened. */
void bk_admin_stop(struct bk *b);
/* Asks Redis (XINFO, XLEN, through the sink) for the stream figures
 * /metrics shows; nothing when the port is off or Redis is down. */
void bk_admin_refresh(struct bk *b);

#endif
