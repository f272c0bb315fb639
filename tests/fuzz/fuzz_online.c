/*
 * fuzz_online.c - libFuzzer target for the gateway's online questions
 * (gateway/gw_online.c): a client's get-online-users / get-online-count
 * argument, as untrusted JSON, against a list built from the input too.
 *
 * The first byte picks the question (bit 0: count) and how many of the
 * next bytes (up to 64, in pairs) become online ids; the rest is the
 * argument's JSON text. Invariants checked: a refused argument says why;
 * an answer is a JSON array (or a number for count) that parses, holds
 * only ids of the list (or the asker), in ascending order unless the ids
 * form answered it, at most the page's limit, with a next cursor beyond
 * the page. Everything allocated per input is freed.
 *
 * Seeds: tests/fuzz/corpus/online/.
 */
#include "gw_online.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    bool count = data[0] & 1;
    size_t nid = (data[0] >> 1) % 33;
    data++;
    size--;
    struct gw_online o = {0};
    for (size_t i = 0; i + 1 < size && i / 2 < nid; i += 2)
        gw_online_status(&o, 1 + data[i] * 256 + data[i + 1], data[i] != 0xff);
    size_t skip = nid * 2 < size ? nid * 2 : size;
    data += skip;
    size -= skip;
    o.known = true;
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    struct json_object *arg = size ? json_tokener_parse(text) : NULL;
    free(text);
    enum gw_online_form form;
    int64_t cursor = 0, next = 0;
    long limit = 0;
    const char *why = NULL;
    if (gw_online_parse(arg, count, &form, &cursor, &limit, &why) != 0) {
        if (!why || !*why)
            abort(); /* a refusal names its reason */
    } else {
        size_t len = 0;
        int64_t self = 7;
        char *out = gw_online_answer(&o, form, arg, cursor, limit, self, &next, &len);
        if (!out || strlen(out) != len)
            abort();
        struct json_object *v = json_tokener_parse(out);
        if (!v)
            abort(); /* our answer is JSON */
        if (form == GW_ONLINE_COUNT) {
            if (!json_object_is_type(v, json_type_int))
                abort();
        } else {
            if (!json_object_is_type(v, json_type_array))
                abort();
            size_t n = json_object_array_length(v);
            int64_t prev = 0;
            for (size_t i = 0; i < n; i++) {
                int64_t id = json_object_get_int64(json_object_array_get_idx(v, i));
                if (id != self && !i64v_has_sorted(&o.ids, id))
                    abort(); /* only the online, or the asker */
                if (form != GW_ONLINE_IDS && id <= prev)
                    abort(); /* ascending, each once */
                prev = id;
            }
            if (form == GW_ONLINE_PAGE && (n > (size_t)limit || (next && next <= prev)))
                abort();
        }
        json_object_put(v);
        free(out);
    }
    json_object_put(arg);
    gw_online_free(&o);
    return 0;
}
