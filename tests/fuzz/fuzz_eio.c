/*
 * fuzz_eio.c - libFuzzer target for the Engine.IO codec.
 *
 * The whole input is used four ways; there is no layout:
 *  - as one WebSocket text frame: eio_parse_text() on the input itself
 *    (read-only, against the replay driver's guard page) and
 *    eio_parse_packet() on an exact-size writable copy;
 *  - as a polling payload, iterated with eio_payload_next() on an
 *    exact-size copy;
 *  - as raw bytes for eio_encode_b64();
 *  - as the seed of an open packet.
 *
 * Oracles beyond the sanitizers:
 *  - structural: off only grows and stays <= len, every packet lies inside
 *    the span it was cut from, errors leave off alone, done comes only at
 *    the end;
 *  - split agreement: the payload iterated in place yields, packet by
 *    packet, what each 0x1e-separated record parsed alone in its own buffer
 *    yields, and stops with the same error;
 *  - round trips: a payload that parsed whole re-encodes (eio_encode_text /
 *    eio_encode_b64, joined with 0x1e) to exactly the input, since the
 *    decoder accepts canonical base64 only; any bytes survive
 *    eio_encode_b64() + eio_parse_packet(); eio_encode_open() is JSON that
 *    json-c reads back to the same fields.
 * A failed oracle calls abort(): it is a real bug, not a peer error.
 */
#include "eio.h"

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

/* Exactly n bytes, so ASan sees a read or write past them. */
static uint8_t *alloc_exact(size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (!d)
        abort();
    return d;
}

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *d = alloc_exact(n);
    if (n)
        memcpy(d, p, n);
    return d;
}

/* Re-encodes one packet as it would appear in a payload. */
static size_t encode_packet(const struct eio_packet *p, uint8_t *out, size_t cap)
{
    if (p->binary)
        return eio_encode_b64((char *)out, cap, p->data, p->len);
    return eio_encode_text((char *)out, cap, p->type, (const char *)p->data, p->len);
}

static void fuzz_single(const uint8_t *data, size_t size)
{
    struct eio_packet p;
    enum eio_status st = eio_parse_text(data, size, &p);
    if (size == 0) {
        FUZZ_CHECK(st == EIO_ERR_EMPTY);
    } else if (data[0] >= '0' && data[0] <= '6') {
        FUZZ_CHECK(st == EIO_OK && p.type == data[0] && !p.binary);
        FUZZ_CHECK(p.data == data + 1 && p.len == size - 1);
    } else {
        FUZZ_CHECK(st == EIO_ERR_TYPE);
    }
    FUZZ_CHECK(eio_status_str(st)[0] != '\0');

    uint8_t *buf = dup_exact(data, size);
    enum eio_status st2 = eio_parse_packet(buf, size, &p);
    if (size == 0 || data[0] != 'b') {
        FUZZ_CHECK(st2 == st);
    } else if (st2 == EIO_OK) {
        FUZZ_CHECK(p.binary && p.type == EIO_MESSAGE && p.data == buf + 1);
        FUZZ_CHECK(p.len <= (size - 1) / 4 * 3);
        /* Canonical base64 only: encoding the bytes gives the input back. */
        size_t need = eio_b64_size(p.len);
        FUZZ_CHECK(need == size);
        uint8_t *again = alloc_exact(need);
        FUZZ_CHECK(eio_encode_b64((char *)again, need, p.data, p.len) == size);
        FUZZ_CHECK(memcmp(again, data, size) == 0);
        free(again);
    } else {
        FUZZ_CHECK(st2 == EIO_ERR_BASE64);
    }
    free(buf);
}

/* Parses one record alone, in its own exact-size buffer. */
static enum eio_status parse_record(const uint8_t *rec, size_t n, uint8_t **copy,
                                    struct eio_packet *p)
{
    *copy = dup_exact(rec, n);
    if (n == 0)
        return EIO_ERR_EMPTY;
    return eio_parse_packet(*copy, n, p);
}

static void fuzz_payload(const uint8_t *data, size_t size)
{
    uint8_t *buf = dup_exact(data, size);
    uint8_t *re = alloc_exact(size + 1); /* re-encoding of what parsed */
    size_t re_len = 0;
    size_t off = 0, rec_start = 0;
    enum eio_status final;
    for (size_t calls = 0;; calls++) {
        FUZZ_CHECK(calls <= size + 1);
        struct eio_packet p;
        bool done = true;
        size_t before = off;
        enum eio_status st = eio_payload_next(buf, size, &off, &p, &done);

        /* The reference: the record at rec_start, up to the next 0x1e in
         * the original bytes, parsed on its own. */
        if (st == EIO_OK && done) {
            FUZZ_CHECK(before == size && off == size && rec_start == size && size > 0 &&
                       data[size - 1] != EIO_SEPARATOR);
            final = EIO_OK;
            break;
        }
        const uint8_t *sep =
            rec_start < size ? memchr(data + rec_start, EIO_SEPARATOR, size - rec_start) : NULL;
        size_t rec_end = sep ? (size_t)(sep - data) : size;
        uint8_t *copy;
        struct eio_packet q;
        enum eio_status ref = parse_record(data + rec_start, rec_end - rec_start, &copy, &q);
        FUZZ_CHECK(st == ref);
        if (st != EIO_OK) {
            FUZZ_CHECK(off == before && !done);
            free(copy);
            final = st;
            break;
        }
        FUZZ_CHECK(!done && before == rec_start);
        FUZZ_CHECK(off == (sep ? rec_end + 1 : size) && off > before && off <= size);
        FUZZ_CHECK(p.data >= buf + before && p.data + p.len <= buf + rec_end);
        FUZZ_CHECK(p.type == q.type && p.binary == q.binary && p.len == q.len);
        FUZZ_CHECK(p.len == 0 || memcmp(p.data, q.data, p.len) == 0);
        free(copy);

        if (re_len > 0)
            re[re_len++] = EIO_SEPARATOR;
        size_t w = encode_packet(&p, re + re_len, size + 1 - re_len);
        FUZZ_CHECK(w > 0);
        re_len += w;
        rec_start = off;
    }
    if (final == EIO_OK)
        FUZZ_CHECK(re_len == size && memcmp(re, data, size) == 0);
    free(re);
    free(buf);
}

static void fuzz_b64(const uint8_t *data, size_t size)
{
    size_t need = eio_b64_size(size);
    char *enc = (char *)alloc_exact(need);
    FUZZ_CHECK(eio_encode_b64(enc, need, data, size) == need);
    FUZZ_CHECK(need == 0 || eio_encode_b64(enc, need - 1, data, size) == 0);
    for (size_t i = 1; i < need; i++)
        FUZZ_CHECK(enc[i] != EIO_SEPARATOR);
    struct eio_packet p;
    FUZZ_CHECK(eio_parse_packet((uint8_t *)enc, need, &p) == EIO_OK);
    FUZZ_CHECK(p.binary && p.len == size && (size == 0 || memcmp(p.data, data, size) == 0));
    free(enc);
}

/* An open packet from input bytes: sid characters from the URL-safe
 * alphabet, numbers from the first bytes. json-c must read it back. */
static void fuzz_open(const uint8_t *data, size_t size)
{
    static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char sid[24];
    size_t n = size < sizeof(sid) - 1 ? size : sizeof(sid) - 1;
    for (size_t i = 0; i < n; i++)
        sid[i] = safe[data[i] & 63];
    sid[n] = '\0';
    long v[3] = {0, 0, 0};
    for (size_t i = 0; i < size && i < 24; i++)
        v[i / 8] = (long)((unsigned long)v[i / 8] << 8 | data[i]);
    bool ws = size > 0 && (data[0] & 0x80);
    char out[256];
    size_t len = eio_encode_open(out, sizeof(out), sid, ws, v[0], v[1], v[2]);
    FUZZ_CHECK(len > 0 && out[0] == '0');
    FUZZ_CHECK(eio_encode_open(out, len - 1, sid, ws, v[0], v[1], v[2]) == 0);
    len = eio_encode_open(out, sizeof(out), sid, ws, v[0], v[1], v[2]);

    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, out + 1, (int)(len - 1));
    FUZZ_CHECK(o && json_tokener_get_parse_end(tok) == len - 1);
    struct json_object *f;
    FUZZ_CHECK(json_object_object_get_ex(o, "sid", &f) &&
               strcmp(json_object_get_string(f), sid) == 0);
    FUZZ_CHECK(json_object_object_get_ex(o, "upgrades", &f) &&
               json_object_array_length(f) == (ws ? 1u : 0u));
    FUZZ_CHECK(json_object_object_get_ex(o, "pingInterval", &f) &&
               json_object_get_int64(f) == v[0]);
    FUZZ_CHECK(json_object_object_get_ex(o, "pingTimeout", &f) && json_object_get_int64(f) == v[1]);
    FUZZ_CHECK(json_object_object_get_ex(o, "maxPayload", &f) && json_object_get_int64(f) == v[2]);
    FUZZ_CHECK(json_object_object_length(o) == 5);
    json_object_put(o);
    json_tokener_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_single(data, size);
    fuzz_payload(data, size);
    fuzz_b64(data, size);
    fuzz_open(data, size);
    return 0;
}
