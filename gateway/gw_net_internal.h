/*
 * gw_net_internal.h - what the three files of the connection layer share and
 * nobody else may call: gw_conn.c (socket, output queue, closing),
 * gw_proto.c (input parsing, HTTP answers, upgrade) and gw_net.c (listener,
 * sweep, reap point). They call each other in one direction only:
 * gw_net.c -> gw_proto.c -> gw_conn.c; readiness to read goes up from
 * gw_conn.c through net->on_readable.
 */
#ifndef HERALD_GW_NET_INTERNAL_H
#define HERALD_GW_NET_INTERNAL_H

#include "gw_net.h"

/* One read(2) takes at most this much; a bigger frame is assembled in the
 * connection's own buffer over several reads. 64 KiB matches the default
 * socket receive buffer, so a read rarely leaves data behind. */
#define GW_SCRATCH_SIZE (64 * 1024)

/* gw_conn.c */

/* Registers exactly the events c needs now: read unless it is dead or
 * waiting on an asynchronous answer, write while output is queued. */
void gw_conn_update_events(struct gw_conn *c);
/* Marks c dead and queues it for the reap point (net->reap_ev), which frees
 * it after the current callbacks; a second call is a no-op. c stays valid
 * until then. */
void gw_conn_mark_dead(struct gw_conn *c);
/* Puts c on the flush list (no-op when it is there already or dead). */
void gw_conn_mark_dirty(struct gw_conn *c);
/* Writes as much of c's queue as the socket takes now; may mark c dead (a
 * write error) or start the linger after a final answer. */
void gw_conn_flush(struct gw_conn *c);
/* Drops c's whole output queue (the buffer references with it). */
void gw_conn_free_queue(struct gw_conn *c);
/* The flush event's callback (arg: the struct gw_net): flushes every
 * connection on the dirty list. */
void gw_net_on_flush(evutil_socket_t fd, short what, void *arg);

/* gw_proto.c */

/* Reads what c's socket holds and processes it (net->on_readable). May
 * mark c dead; never frees it. */
void gw_conn_read(struct gw_conn *c);

#endif
