/*
 * fuzz_recover.c - what a client sends to come back (PROTOCOL.md §4a): a
 * pid (auth.pid, or before the ":" of ?resume=) and an offset. A pid that
 * parses must print back as the same bytes (one spelling per session), and
 * an offset is valid exactly when its two numbers can be read.
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
    uint64_t ms, seq;
    if (ev_offset_valid(s, size) != ev_id_split(s, size, &ms, &seq))
        abort();
    return 0;
}
