/*
 * fuzz_sio.c - libFuzzer target for the Socket.IO codec.
 *
 * The whole input is used three ways; there is no layout:
 *  - as a packet: sio_parse() on the input itself (read-only, against the
 *    replay driver's guard page);
 *  - as a JSON text: wrapped as the ack "30[" + input + "]" and given to
 *    sio_parse(), and given to sio_event_split() as is;
 *  - as the seed of a header for sio_encode_header().
 *
 * Oracles beyond the sanitizers:
 *  - structural: fields point inside the input, the payload runs to its
 *    end, limits hold, each type carries exactly what sio.h promises, an
 *    accepted packet holds no NUL and no 0x1e (it can go into a polling
 *    payload as is);
 *  - round trip: an accepted packet's header re-encoded by
 *    sio_encode_header(), plus its payload, parses to the same fields;
 *  - json-c agreement: every payload we accept parses with
 *    json_tokener_new_ex(SIO_MAX_JSON_DEPTH), whole, as the same kind of
 *    value; for events, element 0 is a string json-c decodes to a name that
 *    is not reserved (the converse is not checked: json-c in its default
 *    mode also reads things that are not JSON, like "[1,]");
 *  - sio_event_split() agrees with itself on the array rebuilt from its
 *    answer.
 * A failed oracle calls abort(): it is a real bug, not a peer error.
 */
#include "sio.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static char *alloc_exact(size_t n)
{
    char *d = malloc(n ? n : 1);
    if (!d)
        abort();
    return d;
}

/* json-c's reading of s[0..len), whole (trailing blanks allowed), or NULL.
 * Caller puts the result. */
static struct json_object *jsonc_parse(const char *s, size_t len)
{
    struct json_tokener *tok = json_tokener_new_ex(SIO_MAX_JSON_DEPTH);
    if (!tok)
        abort();
    struct json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
    size_t end = json_tokener_get_parse_end(tok);
    while (end < len && (s[end] == ' ' || s[end] == '\t' || s[end] == '\n' || s[end] == '\r'))
        end++;
    if (json_tokener_get_error(tok) != json_tokener_success || end != len) {
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    return obj;
}

static const char *const reserved[] = {"connect",       "connect_error", "disconnect",
                                       "disconnecting", "newListener",   "removeListener"};

static bool same_fields(const struct sio_packet *a, const struct sio_packet *b)
{
    return a->type == b->type && a->attachments == b->attachments && a->nsp_len == b->nsp_len &&
           memcmp(a->nsp, b->nsp, a->nsp_len) == 0 && a->ack_id == b->ack_id &&
           (a->data == NULL) == (b->data == NULL) && a->data_len == b->data_len &&
           (a->data == NULL || memcmp(a->data, b->data, a->data_len) == 0);
}

/* Checks everything sio.h promises about an accepted packet buf[0..len). */
static void check_accepted(const char *buf, size_t len, const struct sio_packet *p)
{
    bool binary = p->type == SIO_BINARY_EVENT || p->type == SIO_BINARY_ACK;
    bool event = p->type == SIO_EVENT || p->type == SIO_BINARY_EVENT;
    bool ack = p->type == SIO_ACK || p->type == SIO_BINARY_ACK;
    FUZZ_CHECK(len > 0 && p->type <= SIO_BINARY_ACK && buf[0] == '0' + p->type);
    FUZZ_CHECK(p->attachments <= SIO_MAX_ATTACHMENTS && (binary == (p->attachments > 0)));
    FUZZ_CHECK(p->nsp_len >= 1 && p->nsp_len <= SIO_MAX_NAMESPACE && p->nsp[0] == '/');
    FUZZ_CHECK((p->nsp_len == 1) || (p->nsp > buf && p->nsp + p->nsp_len <= buf + len));
    FUZZ_CHECK(!memchr(p->nsp, ',', p->nsp_len));
    FUZZ_CHECK(p->ack_id >= -1 && p->ack_id <= SIO_MAX_ACK_ID);
    FUZZ_CHECK(ack ? p->ack_id >= 0 : (event || p->ack_id == -1));
    FUZZ_CHECK(!memchr(buf, 0, len) && !memchr(buf, 0x1e, len));
    if (p->data) {
        FUZZ_CHECK(p->data > buf && p->data + p->data_len == buf + len && p->data_len >= 2);
        FUZZ_CHECK(p->type != SIO_DISCONNECT);
    } else {
        FUZZ_CHECK(p->type == SIO_CONNECT || p->type == SIO_DISCONNECT);
    }

    /* Round trip through the header encoder. */
    size_t cap = 1 + 12 + p->nsp_len + 1 + 20 + p->data_len;
    char *out = alloc_exact(cap);
    size_t h = sio_encode_header(out, cap, p->type, p->nsp, p->nsp_len, p->attachments, p->ack_id);
    FUZZ_CHECK(h > 0 && h + p->data_len <= cap);
    FUZZ_CHECK(
        sio_encode_header(out, h - 1, p->type, p->nsp, p->nsp_len, p->attachments, p->ack_id) == 0);
    h = sio_encode_header(out, cap, p->type, p->nsp, p->nsp_len, p->attachments, p->ack_id);
    if (p->data_len)
        memcpy(out + h, p->data, p->data_len);
    struct sio_packet q;
    FUZZ_CHECK(sio_parse(out, h + p->data_len, &q) == SIO_OK);
    FUZZ_CHECK(same_fields(p, &q));
    free(out);

    if (!p->data)
        return;
    /* json-c reads what we accepted, as the same kind of value. */
    struct json_object *o = jsonc_parse(p->data, p->data_len);
    FUZZ_CHECK(o != NULL);
    if (p->type == SIO_CONNECT || p->type == SIO_CONNECT_ERROR) {
        FUZZ_CHECK(json_object_is_type(o, json_type_object));
    } else {
        FUZZ_CHECK(json_object_is_type(o, json_type_array));
    }
    if (event) {
        FUZZ_CHECK(json_object_array_length(o) >= 1);
        struct json_object *name = json_object_array_get_idx(o, 0);
        FUZZ_CHECK(json_object_is_type(name, json_type_string));
        const char *s = json_object_get_string(name);
        size_t sl = (size_t)json_object_get_string_len(name);
        for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
            FUZZ_CHECK(sl != strlen(reserved[k]) || memcmp(s, reserved[k], sl) != 0);
        const char *n, *a;
        size_t nl, al;
        FUZZ_CHECK(sio_event_split(p->data, p->data_len, &n, &nl, &a, &al) == 0);
        FUZZ_CHECK(n > p->data && n + nl < p->data + p->data_len);
        FUZZ_CHECK(a >= n + nl && a + al < p->data + p->data_len);
        FUZZ_CHECK((al == 0) == (json_object_array_length(o) == 1));
    }
    json_object_put(o);
}

/* sio_event_split() on "[" "\"" name "\"" ("," args) "]" answers the same. */
static void fuzz_split(const char *data, size_t size)
{
    const char *n, *a;
    size_t nl, al;
    if (sio_event_split(data, size, &n, &nl, &a, &al) != 0)
        return;
    FUZZ_CHECK(n > data && n + nl < data + size && a >= n + nl && a + al < data + size);
    size_t len = 1 + 1 + nl + 1 + (al ? 1 + al : 0) + 1;
    char *s = alloc_exact(len);
    size_t o = 0;
    s[o++] = '[';
    s[o++] = '"';
    memcpy(s + o, n, nl);
    o += nl;
    s[o++] = '"';
    if (al) {
        s[o++] = ',';
        memcpy(s + o, a, al);
        o += al;
    }
    s[o++] = ']';
    FUZZ_CHECK(o == len);
    const char *n2, *a2;
    size_t nl2, al2;
    FUZZ_CHECK(sio_event_split(s, len, &n2, &nl2, &a2, &al2) == 0);
    FUZZ_CHECK(nl2 == nl && memcmp(n2, n, nl) == 0 && al2 == al && memcmp(a2, a, al) == 0);
    free(s);
}

/* The input as the elements of an ACK's array. */
static void fuzz_json(const char *data, size_t size)
{
    size_t len = size + 4;
    char *s = alloc_exact(len);
    memcpy(s, "30[", 3);
    memcpy(s + 3, data, size);
    s[len - 1] = ']';
    struct sio_packet p;
    if (sio_parse(s, len, &p) == SIO_OK) {
        FUZZ_CHECK(p.type == SIO_ACK && p.ack_id == 0 && p.data == s + 2);
        check_accepted(s, len, &p);
    }
    free(s);
}

/* A header from input bytes, with a payload each type accepts. */
static void fuzz_encode(const char *data, size_t size)
{
    if (size < 4)
        return;
    uint8_t type = (uint8_t)((unsigned char)data[0] % 7);
    unsigned att = 1 + (unsigned char)data[1] % SIO_MAX_ATTACHMENTS;
    int64_t ack = -1;
    if (type == SIO_ACK || type == SIO_BINARY_ACK ||
        (data[2] & 1 && type != SIO_CONNECT && type != SIO_DISCONNECT &&
         type != SIO_CONNECT_ERROR)) {
        uint64_t v = 0;
        for (size_t i = 0; i < 8 && i < size; i++)
            v = v << 8 | (unsigned char)data[i];
        ack = (int64_t)(v % ((uint64_t)SIO_MAX_ACK_ID + 1));
    }
    /* Namespace: '/' then input bytes, minus what sio_parse() refuses. */
    char nsp[SIO_MAX_NAMESPACE];
    size_t nl = 0;
    nsp[nl++] = '/';
    for (size_t i = 3; i < size && nl < (size_t)(unsigned char)data[3] % SIO_MAX_NAMESPACE + 1;
         i++) {
        unsigned char c = (unsigned char)data[i];
        if (c >= 0x20 && c != 0x7f && c != ',')
            nsp[nl++] = (char)c;
    }
    const char *payload = type == SIO_CONNECT || type == SIO_CONNECT_ERROR ? "{\"a\":[1]}"
                          : type == SIO_DISCONNECT                         ? ""
                                                                           : "[\"e\",{}]";
    size_t pl = strlen(payload);
    char out[1 + 12 + SIO_MAX_NAMESPACE + 1 + 20 + 16];
    size_t h = sio_encode_header(out, sizeof(out), type, nsp, nl, att, ack);
    FUZZ_CHECK(h > 0);
    memcpy(out + h, payload, pl);
    struct sio_packet p;
    FUZZ_CHECK(sio_parse(out, h + pl, &p) == SIO_OK);
    FUZZ_CHECK(p.type == type && p.ack_id == ack && p.nsp_len == nl && memcmp(p.nsp, nsp, nl) == 0);
    FUZZ_CHECK(p.attachments == (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK ? att : 0));
    check_accepted(out, h + pl, &p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct sio_packet p;
    enum sio_status st = sio_parse(s, size, &p);
    FUZZ_CHECK(st <= SIO_ERR_PAYLOAD && sio_status_str(st)[0] != '\0');
    if (st == SIO_OK)
        check_accepted(s, size, &p);
    else if (size == 0)
        FUZZ_CHECK(st == SIO_ERR_EMPTY);
    fuzz_json(s, size);
    fuzz_split(s, size);
    fuzz_encode(s, size);
    return 0;
}
