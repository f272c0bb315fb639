/*
 * fuzz_event.c - stream entries (as a backend could XADD them) and client
 * JSON events. The first byte picks the mode; entries are NUL-separated
 * field/value strings.
 */
#include "event.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        const char *type = NULL, *err = NULL;
        struct json_object *o = ev_client_parse(p, n, &type, &err);
        if (o && (!type || err))
            abort();
        if (!o && !err)
            abort();
        json_object_put(o);
        return 0;
    }
    const char *fields[2 * EV_MAX_FIELDS + 2];
    size_t lens[2 * EV_MAX_FIELDS + 2], nf = 0, start = 0;
    for (size_t i = 0; i <= n && nf < 2 * EV_MAX_FIELDS + 2; i++) {
        if (i == n || p[i] == '\0') {
            fields[nf] = p + start;
            lens[nf++] = i - start;
            start = i + 1;
        }
    }
    struct ev_entry e;
    if (ev_entry_parse(&e, fields, lens, nf) == 0) {
        volatile size_t sum = 0;
        if (!e.type)
            abort();
        for (size_t i = 0; i < e.type_len; i++)
            sum += (unsigned char)e.type[i];
        for (size_t i = 0; e.data && i < e.data_len; i++)
            sum += (unsigned char)e.data[i];
        (void)ev_name_find(e.event ? e.event : "", e.event ? e.event_len : 0);
    }
    return 0;
}
