/*
 * fuzz_recover.c - what a client sends to come back (PROTOCOL.md §4a): a
 * pid (auth.pid, or before the ":" of ?resume=) and an offset. A pid that
 * parses must print back as the same bytes (one spelling per session), and
 * offsets must compare consistently.
 */
#include "gw_recover.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    uint64_t id;
    uint32_t token;
    char start[EV_OFFSET_MAX + 1];
    if (gw_recover_pid_parse(s, size, &id, &token, start)) {
        char back[GW_PID_MAX + 1];
        gw_recover_pid(back, id, token, start);
        if (id == 0 || token == 0 || strlen(back) != size || memcmp(back, s, size) != 0)
            abort();
    }
    if (ev_offset_valid(s, size)) {
        if (ev_offset_cmp(s, size, s, size) != 0 || ev_offset_cmp(s, size, "0-0", 3) < 0)
            abort();
    }
    return 0;
}
