/*
 * eio.h - I/O-free Engine.IO v4 packet codec.
 *
 * Engine.IO (https://socket.io/docs/v4/engine-io-protocol/) frames the
 * Socket.IO protocol over WebSocket or HTTP long-polling:
 *   - a packet is one type character followed by data:
 *     '0' open, '1' close, '2' ping, '3' pong, '4' message, '5' upgrade, '6' noop;
 *   - over WebSocket, one text frame is one packet; a binary frame is one
 *     binary message (no type prefix in v4);
 *   - over polling, a payload holds several packets separated by the record
 *     separator 0x1e; a binary message in a payload is 'b' + base64(data).
 *
 * Parsing points into the caller's buffer. Base64 is decoded in place (the
 * decoded bytes are never longer than the text), so payload buffers must be
 * writable. Nothing is allocated.
 */
#ifndef HERALD_EIO_H
#define HERALD_EIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum eio_type {
    EIO_OPEN = '0',
    EIO_CLOSE = '1',
    EIO_PING = '2',
    EIO_PONG = '3',
    EIO_MESSAGE = '4',
    EIO_UPGRADE = '5',
    EIO_NOOP = '6',
};

enum eio_status {
    EIO_OK = 0,
    EIO_ERR_EMPTY,  /* a packet with no type character */
    EIO_ERR_TYPE,   /* unknown packet type */
    EIO_ERR_BASE64, /* 'b' packet whose base64 does not decode */
};

const char *eio_status_str(enum eio_status st);

struct eio_packet {
    uint8_t type;        /* enum eio_type */
    bool binary;         /* message data is binary (binary frame, or 'b' in a payload) */
    const uint8_t *data; /* borrowed: into the caller's buffer */
    size_t len;
};

/*
 * One WebSocket text frame = one packet: type character '0'..'6', then data
 * (possibly empty: "4" is an empty message). A 'b' frame is EIO_ERR_TYPE
 * here, since buf is read-only; see eio_parse_packet(). On error *p is
 * unspecified.
 */
enum eio_status eio_parse_text(const uint8_t *buf, size_t len, struct eio_packet *p);

/*
 * Like eio_parse_text(), but also accepts 'b' + base64: a binary message
 * (EIO_MESSAGE, binary true), decoded in place so that p->data points into
 * buf. The reference parser accepts 'b' in WebSocket text frames too (a
 * client with forceBase64 sends them), and this is also what
 * eio_payload_next() uses for each packet. Base64 is strict RFC 4648 §4:
 * standard alphabet, length a multiple of 4, '=' only as final padding,
 * zero pad bits; anything else is EIO_ERR_BASE64. "b" alone is an empty
 * binary message. On error buf may have been partly overwritten.
 */
enum eio_status eio_parse_packet(uint8_t *buf, size_t len, struct eio_packet *p);

/*
 * Iterates the packets of a polling payload (HTTP POST body) in buf[0..len).
 * *off starts at 0; each call parses the packet at *off and advances it past
 * the following separator. Returns EIO_OK with *p set, or an error. *done is
 * set when *off reached len (no packet was parsed). 'b' packets are decoded
 * in place, which is why buf is writable.
 *
 * Exact behaviour: an empty payload, a separator at the start or the end, or
 * two separators in a row is EIO_ERR_EMPTY (at the call that reaches the
 * empty packet). On error *off and *done are left unchanged, and the payload
 * should be refused as a whole (HTTP 400). Packets returned before the error
 * stay valid: each points into its own span of buf, which later calls never
 * touch. Iterate a buffer once only: in-place decoding changes the bytes, so
 * a second pass over the same buffer reads garbage. To validate a whole
 * payload before acting on any of it, collect the packets first.
 */
enum eio_status eio_payload_next(uint8_t *buf, size_t len, size_t *off, struct eio_packet *p,
                                 bool *done);

/*
 * Encoders write into out (capacity cap) and return the length written, or
 * 0 when cap is too small (out may then hold a partial write). They never
 * write a terminating NUL.
 */
/* The open packet: 0{"sid":"...","upgrades":[...],"pingInterval":N,"pingTimeout":N,"maxPayload":N}
 * byte for byte what the reference server sends (key order included).
 * upgrade_ws: whether "websocket" is offered in upgrades (["websocket"] or []).
 * sid is copied without JSON escaping: the caller guarantees it is made of
 * [A-Za-z0-9_-] only (HERALD_ASSERT, in every build). */
size_t eio_encode_open(char *out, size_t cap, const char *sid, bool upgrade_ws,
                       long ping_interval_ms, long ping_timeout_ms, long max_payload);
/* A text packet: type (an enum eio_type) + data. */
size_t eio_encode_text(char *out, size_t cap, uint8_t type, const char *data, size_t len);
/* A binary message inside a polling payload: 'b' + base64(data). */
size_t eio_encode_b64(char *out, size_t cap, const uint8_t *data, size_t len);
/* Bytes eio_encode_b64 needs for len bytes of data. */
size_t eio_b64_size(size_t len);

#define EIO_SEPARATOR 0x1e

#endif
