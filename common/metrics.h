/*
 * metrics.h - writing the Prometheus text format (version 0.0.4), shared by
 * the gateway's /metrics and the broker's admin port.
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stddef.h>

struct evbuffer;

/* Appends "# HELP", "# TYPE" and the sample line of one unlabelled metric.
 * type is "counter" or "gauge". */
void metrics_put(struct evbuffer *out, const char *name, const char *type, const char *help,
                 long long value);

/* Appends "# HELP", "# TYPE" and one sample per value of one label:
 * name{label="values[i]"} counts[i], for i < n. values are our own names
 * (not escaped). */
void metrics_put_labelled(struct evbuffer *out, const char *name, const char *type,
                          const char *help, const char *label, const char *const *values,
                          const unsigned long long *counts, size_t n);

/* Content-Type of the format. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
