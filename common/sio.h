/*
 * sio.h - I/O-free Socket.IO v5 packet codec.
 *
 * A Socket.IO packet travels as the data of one Engine.IO message
 * (https://socket.io/docs/v4/socket-io-protocol/):
 *
 *   <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
 *
 *   type: 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR,
 *         5 BINARY_EVENT, 6 BINARY_ACK
 *   attachments: only for 5 and 6: the number of binary messages that
 *         follow, each replacing a {"_placeholder":true,"num":N} in the JSON
 *   namespace: present when not "/" (it starts with '/')
 *   ack id: decimal digits right before the payload
 *
 * The parser checks the framing and the payload's outer shape (EVENT needs a
 * non-empty JSON array whose first element is a string, ACK an array,
 * CONNECT an object or nothing, CONNECT_ERROR an object) without building a
 * JSON tree; the caller parses the payload when it needs the values.
 */
#ifndef HERALD_SIO_H
#define HERALD_SIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sio_type {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
};

enum sio_status {
    SIO_OK = 0,
    SIO_ERR_EMPTY,       /* no type digit */
    SIO_ERR_TYPE,        /* type digit out of range */
    SIO_ERR_ATTACHMENTS, /* missing/overlong attachment count, or '-' missing, or count on a
                            non-binary type */
    SIO_ERR_NAMESPACE,   /* namespace without ',' terminator, or too long, or control characters */
    SIO_ERR_ACK_ID,      /* ack id overflows, or present where not allowed, or missing on an ACK */
    SIO_ERR_PAYLOAD,     /* payload missing where required or of the wrong shape, or not JSON */
};

const char *sio_status_str(enum sio_status st);

/* Limits: a namespace is a short path (bytes, the leading '/' included);
 * attachments are counted per packet (the reference's default is 10). */
#define SIO_MAX_NAMESPACE 256
#define SIO_MAX_ATTACHMENTS 64
/* Ack ids are counters; past 2^53-1 a JavaScript peer cannot represent them. */
#define SIO_MAX_ACK_ID INT64_C(9007199254740991)
/* Payload nesting, json-c's JSON_TOKENER_DEFAULT_DEPTH: a value inside 32
 * or more arrays/objects is refused, so every accepted payload also parses
 * with json_tokener_new_ex(32). */
#define SIO_MAX_JSON_DEPTH 32

struct sio_packet {
    uint8_t type;         /* enum sio_type */
    unsigned attachments; /* binary types: 1..SIO_MAX_ATTACHMENTS; others: 0 */
    const char *nsp;      /* borrowed; "/" when absent */
    size_t nsp_len;
    int64_t ack_id;   /* -1 when absent */
    const char *data; /* borrowed: the JSON payload, NULL when absent */
    size_t data_len;
};

/*
 * Parses one packet (the data of one Engine.IO text message) in buf[0..len).
 * Returns SIO_OK with *p filled in, pointing into buf, or an error; on error
 * *p holds what was read before it (for logs only).
 *
 * Exact rules, per type (the payload is the rest of the packet after the
 * header, and must start with '[' or '{' right there; it is strict JSON
 * with optional trailing whitespace):
 *   CONNECT        payload optional, an object; no ack id
 *   DISCONNECT     no payload; no ack id
 *   EVENT          payload required: a non-empty array whose first element
 *                  is a string other than the reserved "connect",
 *                  "connect_error", "disconnect", "disconnecting",
 *                  "newListener", "removeListener"; ack id optional
 *   ACK            payload required: an array (may be empty); ack id required
 *   CONNECT_ERROR  payload required: an object; no ack id
 *   BINARY_EVENT / BINARY_ACK: as EVENT / ACK, after "<count>-" (1+ digits,
 *                  1 <= count <= SIO_MAX_ATTACHMENTS; placeholders unchecked)
 * A namespace starts with '/' and runs to the next ','; only CONNECT and
 * DISCONNECT may instead end the packet with it ("0/admin" as "0/admin,").
 * An explicit "/," gives nsp "/". Raw control characters are refused in the
 * namespace and in JSON strings, and only tab, LF and CR may appear as JSON
 * whitespace, so an accepted packet holds no NUL and no 0x1e: it can go into
 * a polling payload as is. UTF-8 is not checked here (ws.c checks WebSocket
 * text frames; a polling body needs utf8_valid() by the caller).
 */
enum sio_status sio_parse(const char *buf, size_t len, struct sio_packet *p);

/*
 * Writes a packet header (type, attachments for binary types, namespace when
 * not "/", ack id when >= 0) into out; the caller appends the JSON payload.
 * Returns the header length, or 0 when cap is too small. No NUL is written.
 * nsp may be NULL when nsp_len is 0 (same as "/"); a namespace other than
 * "/" is always followed by ',' ("1/admin,"), as the reference encodes it.
 * Preconditions (asserted): type <= 6, nsp starts with '/' and holds no
 * ',', ack_id <= SIO_MAX_ACK_ID.
 */
size_t sio_encode_header(char *out, size_t cap, uint8_t type, const char *nsp, size_t nsp_len,
                         unsigned attachments, int64_t ack_id);

/*
 * For an EVENT/BINARY_EVENT payload: points *name and *name_len at the event
 * name (the first array element, still JSON-escaped as sent, without the
 * quotes) and *args at the rest of the array ("" when no arguments, else
 * text starting right after the first element's comma up to but excluding
 * the closing ']'). Returns 0, or -1 when the payload is not such an array.
 * The whole payload is validated as sio_parse() does (no leading blanks,
 * trailing blanks allowed); args keeps any blanks around the arguments
 * ("[\"a\", 1 ]" gives args " 1 "). Reserved names are not checked here.
 */
int sio_event_split(const char *data, size_t len, const char **name, size_t *name_len,
                    const char **args, size_t *args_len);

#endif
