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
#include "b64.h"
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

size_t eio_b64_size(size_t len)
{
    size_t n = b64_encoded_len(len, true);
    return n >= SIZE_MAX - 1 ? SIZE_MAX : 1 + n;
}

size_t eio_encode_b64(char *out, size_t cap, const uint8_t *data, size_t len)
{
    size_t need = eio_b64_size(len);
    if (need == SIZE_MAX || cap < need)
        return 0;
    out[0] = 'b';
    size_t n = b64_encode(out + 1, cap - 1, data, len, B64_STD, true);
    HERALD_ASSERT(n + 1 == need);
    return need;
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
    /* In place: the decoded bytes never overtake the text still to read. */
    long n = b64_decode(buf + 1, len - 1, (const char *)buf + 1, len - 1, B64_STD, true);
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
