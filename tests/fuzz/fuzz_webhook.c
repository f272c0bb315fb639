/*
 * fuzz_webhook.c - libFuzzer target for the webhook sender's URL parser
 * and event encoding (broker/bk_webhook.c).
 *
 * The URL comes from configuration, not from peers, but it is pasted into
 * every request line and Host header: a CR, LF or space that got through
 * would let it add headers. Byte 0 picks the check:
 *   even: the rest is a URL for bk_webhook_parse_url(). An accepted URL has
 *         a host of host-name bytes (or a valid IPv6 literal), a port in
 *         1..65535, a path starting with '/' that holds only printable
 *         ASCII (no space), and parses again, rebuilt from its parts, to
 *         the same parts.
 *   odd:  the rest, split at the first NUL, is an event name and an id for
 *         bk_webhook_encode_event(): the result is JSON that json-c reads
 *         back to the same strings.
 * Seeds: tests/fuzz/corpus/webhook/.
 */
#include "bk_webhook.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_url(const char *s)
{
    struct bk_webhook_url u, again;
    const char *why = NULL;
    if (bk_webhook_parse_url(s, &u, &why) != 0) {
        if (!why || !*why)
            abort();
        return;
    }
    size_t hl = strlen(u.host), pl = strlen(u.path);
    if (hl == 0 || u.port < 1 || u.port > 65535 || u.path[0] != '/' || pl > BK_WEBHOOK_URL_MAX)
        abort();
    for (size_t i = 0; i < pl; i++)
        if ((unsigned char)u.path[i] <= 0x20 || (unsigned char)u.path[i] >= 0x7f ||
            u.path[i] == '#')
            abort();
    for (size_t i = 0; i < hl; i++)
        if (!u.ipv6 &&
            !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._", u.host[i]))
            abort();
    char *rebuilt = malloc(hl + pl + 32);
    if (!rebuilt)
        abort();
    sprintf(rebuilt, u.ipv6 ? "http://[%s]:%d%s" : "http://%s:%d%s", u.host, u.port, u.path);
    /* The rebuilt URL may only be longer (an explicit port) than the limit. */
    if (strlen(rebuilt) <= BK_WEBHOOK_URL_MAX) {
        if (bk_webhook_parse_url(rebuilt, &again, &why) != 0 || strcmp(again.host, u.host) != 0 ||
            again.port != u.port || strcmp(again.path, u.path) != 0 || again.ipv6 != u.ipv6)
            abort();
    }
    free(rebuilt);
}

static void check_event(const char *t, const char *id)
{
    size_t len;
    char *e = bk_webhook_encode_event(id, t, 42, "{\"a\":[1,{}]}", 12, &len);
    if (!e)
        abort();
    if (strlen(e) != len)
        abort();
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = tok ? json_tokener_parse_ex(tok, e, (int)len) : NULL;
    struct json_object *v;
    /* json-c stops a string at an embedded NUL; ours never has one. */
    if (!o || json_tokener_get_parse_end(tok) != len || !json_object_object_get_ex(o, "t", &v) ||
        strcmp(json_object_get_string(v), t) != 0 || !json_object_object_get_ex(o, "id", &v) ||
        strcmp(json_object_get_string(v), id) != 0 || !json_object_object_get_ex(o, "ts", &v) ||
        json_object_get_int64(v) != 42)
        abort();
    json_object_put(o);
    json_tokener_free(tok);
    free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *s = malloc(size);
    if (!s)
        abort();
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if ((data[0] & 1) == 0) {
        check_url(s);
    } else {
        size_t tl = strlen(s);
        check_event(s, tl + 1 < size - 1 ? s + tl + 1 : "");
    }
    free(s);
    return 0;
}
