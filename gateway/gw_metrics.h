/*
 * gw_metrics.h - GET /metrics (loopback or --metrics-allow only) and the
 * latency histogram of the gateway -> broker -> gateway path. It only
 * reads the counters the other modules keep.
 */
#ifndef HERALD_GW_METRICS_H
#define HERALD_GW_METRICS_H

#include "gw.h"

/* Answers c with the Prometheus text, or 403 to a peer not allowed. */
void gw_metrics_respond(struct gw *g, struct gw_conn *c);
/* Records one gateway -> broker -> gateway round trip of ms milliseconds
 * (negative counts as 0). */
void gw_metrics_observe(struct gw *g, int64_t ms);

#endif
