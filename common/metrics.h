/*
 * metrics.h - writing the Prometheus text format (version 0.0.4), shared by
 * the gateway's /metrics and the broker's admin port.
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

struct evbuffer;

/* Appends "# HELP", "# TYPE" and the sample line of one unlabelled metric.
 * type is "counter" or "gauge". */
void metrics_put(struct evbuffer *out, const char *name, const char *type, const char *help,
                 long long value);

/* Content-Type of the format. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
