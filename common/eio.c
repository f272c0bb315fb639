/*
 * eio.c - Engine.IO v4 packet codec, see eio.h.
 *
 * How it is used: every Socket.IO message crosses this file twice, once as
 * an Engine.IO packet in and once out. Over WebSocket one text frame is one
 * packet, so parsing is a type check and a pointer. Over long-polling a POST
 * body holds a handful of packets separated by 0x1e (engine.io-protocol,
 * "Packet encoding / HTTP long-polling"), and binary messages travel as 'b'
 * + base64. Bodies are capped by maxPayload (1 MB by default) before they
 * reach us, so a single linear pass with no state between calls is enough.
 *
 * Strictness, and how it differs from the reference (engine.io-parser):
 *  - The reference decodes base64 with Node's Buffer.from(s, "base64"),
 *    which skips characters outside the alphabet, accepts the URL-safe
 *    alphabet and missing padding. We accept only canonical RFC 4648 §4
 *    text (what every client's encoder produces) and refuse the rest, so a
 *    binary message has exactly one spelling: re-encoding what we decoded
 *    gives back the bytes we were sent.
 *  - The reference turns an empty string into an error packet but splits
 *    "4a\x1e" into "4a" and "" and only then fails; we report the empty
 *    packet as EIO_ERR_EMPTY just the same, at the call that reaches it.
 *
 * Nothing here allocates; base64 is decoded in place (3 bytes out for every
 * 4 in, written behind the read position).
 */
#include "eio.h"
#include "log.h"

#include <string.h>

const char *eio_status_str(enum eio_status st)
{
    switch (st) {
    case EIO_OK:
        return "ok";
    case EIO_ERR_EMPTY:
        return "empty packet";
    case EIO_ERR_TYPE:
        return "unknown packet type";
    case EIO_ERR_BASE64:
        return "bad base64 in binary packet";
    }
    return "unknown status";
}

/* ---- base64 (RFC 4648 §4, standard alphabet, padded) -------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of an alphabet character, or -1 ('=' included). */
static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * Decodes buf[0..len) in place. Returns the decoded length, or -1 when the
 * text is not canonical base64: length not a multiple of 4, a character
 * outside the alphabet, '=' anywhere but the last one or two positions, or
 * non-zero bits in the padding (§3.5: such text has a second spelling).
 * Output byte k is written after input bytes 0..4k/3 have been read, so
 * decoding in place never overwrites unread input.
 */
static long b64_decode_inplace(uint8_t *buf, size_t len)
{
    if (len % 4 != 0)
        return -1;
    size_t out = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int a = b64_value(buf[i]), b = b64_value(buf[i + 1]);
        int c = b64_value(buf[i + 2]), d = b64_value(buf[i + 3]);
        if (a < 0 || b < 0)
            return -1;
        if (last && buf[i + 2] == '=' && buf[i + 3] == '=') {
            if (b & 0x0F)
                return -1;
            buf[out++] = (uint8_t)(a << 2 | b >> 4);
            break;
        }
        if (c < 0)
            return -1;
        if (last && buf[i + 3] == '=') {
            if (c & 0x03)
                return -1;
            buf[out++] = (uint8_t)(a << 2 | b >> 4);
            buf[out++] = (uint8_t)((b & 0x0F) << 4 | c >> 2);
            break;
        }
        if (d < 0)
            return -1;
        buf[out++] = (uint8_t)(a << 2 | b >> 4);
        buf[out++] = (uint8_t)((b & 0x0F) << 4 | c >> 2);
        buf[out++] = (uint8_t)((c & 0x03) << 6 | d);
    }
    return (long)out;
}

size_t eio_b64_size(size_t len)
{
    size_t groups = len / 3 + (len % 3 != 0);
    if (groups > (SIZE_MAX - 1) / 4)
        return SIZE_MAX; /* no buffer is that big: the encoder will refuse */
    return 1 + 4 * groups;
}

size_t eio_encode_b64(char *out, size_t cap, const uint8_t *data, size_t len)
{
    size_t need = eio_b64_size(len);
    if (need == SIZE_MAX || cap < need)
        return 0;
    size_t o = 0;
    out[o++] = 'b';
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 0x3F];
        out[o++] = b64_alphabet[(v >> 6) & 0x3F];
        out[o++] = b64_alphabet[v & 0x3F];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 0x3F];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 0x3F];
        out[o++] = b64_alphabet[(v >> 6) & 0x3F];
        out[o++] = '=';
    }
    HERALD_ASSERT(o == need);
    return o;
}

/* ---- packets ------------------------------------------------------------ */

static bool eio_type_valid(uint8_t c)
{
    return c >= EIO_OPEN && c <= EIO_NOOP;
}

enum eio_status eio_parse_text(const uint8_t *buf, size_t len, struct eio_packet *p)
{
    if (len == 0)
        return EIO_ERR_EMPTY;
    if (!eio_type_valid(buf[0]))
        return EIO_ERR_TYPE;
    p->type = buf[0];
    p->binary = false;
    p->data = buf + 1;
    p->len = len - 1;
    return EIO_OK;
}

enum eio_status eio_parse_packet(uint8_t *buf, size_t len, struct eio_packet *p)
{
    if (len == 0 || buf[0] != 'b')
        return eio_parse_text(buf, len, p);
    long n = b64_decode_inplace(buf + 1, len - 1);
    if (n < 0)
        return EIO_ERR_BASE64;
    p->type = EIO_MESSAGE;
    p->binary = true;
    p->data = buf + 1;
    p->len = (size_t)n;
    return EIO_OK;
}

/*
 * Whether *off == len means "no more packets" or "an empty packet after a
 * trailing separator" is told by the last byte: in-place decoding never
 * writes it (a packet's decoded bytes end before its last base64 character),
 * so buf[len - 1] is still what the peer sent.
 */
enum eio_status eio_payload_next(uint8_t *buf, size_t len, size_t *off, struct eio_packet *p,
                                 bool *done)
{
    size_t start = *off;
    HERALD_ASSERT(start <= len);
    *done = false;
    if (start == len) {
        if (len > 0 && buf[len - 1] != EIO_SEPARATOR) {
            *done = true;
            return EIO_OK;
        }
        return EIO_ERR_EMPTY; /* empty payload, or a trailing separator */
    }
    const uint8_t *sep = memchr(buf + start, EIO_SEPARATOR, len - start);
    size_t end = sep ? (size_t)(sep - buf) : len;
    enum eio_status st = eio_parse_packet(buf + start, end - start, p);
    if (st != EIO_OK)
        return st;
    *off = sep ? end + 1 : len;
    return EIO_OK;
}

/* ---- encoders ----------------------------------------------------------- */

size_t eio_encode_text(char *out, size_t cap, uint8_t type, const char *data, size_t len)
{
    HERALD_ASSERT(eio_type_valid(type));
    if (len > SIZE_MAX - 1 || cap < len + 1)
        return 0;
    out[0] = (char)type;
    if (len)
        memcpy(out + 1, data, len);
    return len + 1;
}

/* A bounded appender: once something does not fit, everything after it is
 * dropped and the result is 0. */
struct eio_out {
    char *buf;
    size_t cap, len;
    bool full;
};

static void out_mem(struct eio_out *o, const char *s, size_t n)
{
    if (o->full || o->cap - o->len < n) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void out_str(struct eio_out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

static void out_long(struct eio_out *o, long v)
{
    char tmp[24];
    size_t n = sizeof(tmp);
    /* Work on the magnitude as unsigned so LONG_MIN does not overflow. */
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
    do {
        tmp[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--n] = '-';
    out_mem(o, tmp + n, sizeof(tmp) - n);
}

static bool eio_sid_safe(const char *sid)
{
    for (const char *c = sid; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    return true;
}

size_t eio_encode_open(char *out, size_t cap, const char *sid, bool upgrade_ws,
                       long ping_interval_ms, long ping_timeout_ms, long max_payload)
{
    /* Precondition: the sid is ours (random URL-safe characters, as the
     * reference's base64id), so it needs no JSON escaping. */
    HERALD_ASSERT(sid && eio_sid_safe(sid));
    struct eio_out o = {out, cap, 0, false};
    out_str(&o, "0{\"sid\":\"");
    out_str(&o, sid);
    out_str(&o, upgrade_ws ? "\",\"upgrades\":[\"websocket\"]" : "\",\"upgrades\":[]");
    out_str(&o, ",\"pingInterval\":");
    out_long(&o, ping_interval_ms);
    out_str(&o, ",\"pingTimeout\":");
    out_long(&o, ping_timeout_ms);
    out_str(&o, ",\"maxPayload\":");
    out_long(&o, max_payload);
    out_str(&o, "}");
    return o.full ? 0 : o.len;
}
