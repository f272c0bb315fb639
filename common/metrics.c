/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <event2/buffer.h>

void metrics_put(struct evbuffer *out, const char *name, const char *type, const char *help,
                 long long value)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name,
                        value);
}
