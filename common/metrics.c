/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <event2/buffer.h>

void metrics_put(struct evbuffer *out, const char *name, const char *type, const char *help,
                 long long value)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name,
                        value);
}

void metrics_put_labelled(struct evbuffer *out, const char *name, const char *type,
                          const char *help, const char *label, const char *const *values,
                          const unsigned long long *counts, size_t n)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(out, "%s{%s=\"%s\"} %llu\n", name, label, values[i], counts[i]);
}
