/*
 * ws.h - I/O-free RFC 6455 WebSocket codec.
 *
 * Shape: the caller keeps the bytes it has read; ws_parse() looks at the
 * front of that buffer and either returns one complete frame (payload
 * unmasked in place, pointing into the caller's buffer), or says how many
 * bytes it needs, or returns a specific error that maps to a close code.
 * Message-level rules (fragmentation, interleaved control frames, UTF-8 of
 * text messages across fragments, the message-size cap) are tracked in a
 * small struct ws_parser that lives in the connection. Nothing is allocated.
 * Invalid UTF-8 fails as soon as it has arrived, even mid-frame; for that,
 * after WS_NEED_MORE the caller must call again with the same bytes at the
 * front of the buffer (plus whatever arrived), as a read buffer does.
 *
 * Rejections (each a distinct status): RSV bits set without an extension
 * (§5.2), reserved opcodes (§5.2), unmasked client frames / masked server
 * frames (§5.1), control frames over 125 bytes or fragmented (§5.5), a 64-bit
 * length with the top bit set (§5.2), a continuation with no message open or
 * a new data frame while one is open (§5.4), invalid UTF-8 in text (§8.1),
 * a bad close frame (§5.5.1, §7.4), a message over the cap (1009).
 */
#ifndef HERALD_WS_H
#define HERALD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;

/* Opcodes (RFC 6455 §5.2). Kept apart from enum ws_status on purpose. */
enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_status {
    WS_OK = 0,                 /* one frame parsed */
    WS_NEED_MORE,              /* buffer holds no complete frame yet */
    WS_ERR_RSV,                /* RSV1-3 set, no extension negotiated: 1002 */
    WS_ERR_OPCODE,             /* reserved opcode: 1002 */
    WS_ERR_UNMASKED,           /* client frame without mask: 1002 */
    WS_ERR_MASKED,             /* server frame with mask (client-side parsing): 1002 */
    WS_ERR_CONTROL_TOO_BIG,    /* control payload > 125: 1002 */
    WS_ERR_CONTROL_FRAGMENTED, /* control frame without FIN: 1002 */
    WS_ERR_LENGTH,             /* 64-bit length with the most significant bit set: 1002 */
    WS_ERR_UNEXPECTED_CONT,    /* continuation with no message in progress: 1002 */
    WS_ERR_EXPECTED_CONT,      /* text/binary while a fragmented message is open: 1002 */
    WS_ERR_TOO_BIG,            /* message (sum of fragments) over the cap: 1009 */
    WS_ERR_UTF8,               /* text message or close reason not valid UTF-8: 1007 */
    WS_ERR_CLOSE_PAYLOAD,      /* close payload of exactly 1 byte: 1002 */
    WS_ERR_CLOSE_CODE,         /* close code not allowed on the wire: 1002 */
};

/* The close code a status maps to (1002, 1007 or 1009); 1000 for WS_OK. */
uint16_t ws_status_close_code(enum ws_status st);
/* Short static description for logs, e.g. "unmasked client frame". */
const char *ws_status_str(enum ws_status st);

struct ws_frame {
    uint8_t opcode; /* enum ws_opcode as on the wire (CONT for continuations) */
    bool fin;
    uint8_t *payload; /* borrowed: into the caller's buffer, already unmasked */
    size_t len;
    /* Data frames only: the message this frame belongs to (TEXT or BINARY)
     * and whether it completes that message. */
    uint8_t msg_opcode;
    bool msg_end;
    /* Close frames only: the code (1005 when the payload is empty) and the
     * reason (borrowed, validated UTF-8). */
    uint16_t close_code;
    const uint8_t *close_reason;
    size_t close_reason_len;
};

/*
 * One per connection, so packed (20 bytes): lengths are 32-bit because a
 * message cap is at most 4 GiB - 1 (ws_parser_init() clamps a larger one; a
 * message that big could not be buffered anyway), and the UTF-8 validator's
 * states fit a byte (utf8.h: (remaining << 4) | range).
 */
struct ws_parser {
    uint32_t max_msg;   /* cap on a whole message, bytes; frames over it fail early */
    uint32_t msg_len;   /* bytes of the open message so far (<= max_msg) */
    uint32_t peek_len;  /* payload bytes of a half-received text frame already UTF-8 checked */
    uint8_t utf8_state; /* utf8_feed() state of the open text message */
    uint8_t peek_state; /* utf8_feed() state after those peek_len bytes */
    uint8_t err;        /* enum ws_status; sticky: once in error, ws_parse returns it again */
    uint8_t msg_opcode; /* TEXT/BINARY while a fragmented message is open, else 0 */
    bool server;        /* true: peer is a client, frames must be masked */
};

/* The largest message cap a parser holds (caps above it are clamped). */
#define WS_MAX_MSG_CAP UINT32_MAX

/* server: true when parsing what a client sent. max_msg: message cap
 * (clamped to WS_MAX_MSG_CAP). */
void ws_parser_init(struct ws_parser *p, bool server, size_t max_msg);

/*
 * Parses at most one frame from the front of buf[0..len).
 * WS_OK: *f describes the frame and *consumed is its total size on the wire;
 *   the payload bytes in buf were unmasked in place.
 * WS_NEED_MORE: *consumed is 0 and *need is the total number of bytes the
 *   frame needs once its header is known (else the bytes to read the header).
 * Any error: sticky in p->err; map it with ws_status_close_code().
 * A frame header announcing more than max_msg fails with WS_ERR_TOO_BIG
 * before its payload arrives.
 */
enum ws_status ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, size_t *consumed,
                        size_t *need, struct ws_frame *f);

/* Longest frame header: 2 + 8 (length) + 4 (mask). */
#define WS_MAX_HEADER 14

/*
 * Writes a frame header for a payload of len bytes into out (>= WS_MAX_HEADER
 * bytes). mask: NULL for server frames (never masked), else the 4-byte key a
 * client uses (the caller then masks the payload with ws_mask()).
 * Returns the header length.
 */
size_t ws_frame_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len, const uint8_t *mask);

/* XORs buf with the 4-byte key, starting at key position offset % 4. */
void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], size_t offset);

/* True for codes a peer may send in a close frame (RFC 6455 §7.4):
 * 1000-1003, 1007-1011, 3000-4999. */
bool ws_close_code_valid(uint16_t code);

/*
 * Builds a close payload (code, then reason truncated to fit 125 bytes at a
 * UTF-8 boundary) into out (>= 125 bytes). Returns its length.
 */
size_t ws_close_payload(uint8_t *out, uint16_t code, const char *reason);

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)), 28 chars
 * plus NUL into out. Returns 0, or -1 on failure. */
int ws_accept_key(const char *key, size_t key_len, char out[29]);

/*
 * Checks an HTTP request is a valid WebSocket opening handshake (RFC 6455
 * §4.2.1): GET, HTTP/1.1, "Upgrade: websocket", Connection with the upgrade
 * token, Sec-WebSocket-Version 13, a Sec-WebSocket-Key that is base64 of 16
 * bytes. Returns 0 and points *key and *key_len at the key; otherwise the HTTP
 * status to answer (400, or 426 for a wrong version: answer with
 * "Sec-WebSocket-Version: 13") with *reason set for the log.
 */
int ws_handshake_check(const struct http_request *req, const char **key, size_t *key_len,
                       const char **reason);

#endif
