/*
 * ws.c - RFC 6455 WebSocket codec, see ws.h.
 *
 * How it is used: the gateway appends what read(2) returned to the
 * connection's input buffer and calls ws_parse() until it answers
 * WS_NEED_MORE, dropping the consumed bytes after each frame. Frames are
 * small (chat and presence JSON, well under 1 KiB) and a read usually holds
 * one to a few of them, so the common path is: read a 2..14 byte header,
 * unmask the payload once, check UTF-8 once.
 *
 * Every call reads the header again from the front of the buffer (at most
 * 14 bytes); the payload is unmasked in place only once the whole frame is
 * there. That costs nothing worth measuring and buys the property the tests
 * rely on: a byte stream parses identically however it is cut into reads.
 * struct ws_parser holds message-level state (an open fragmented message,
 * its size, its UTF-8 state), plus one thing about a half-received frame:
 * how much of a text payload has already been checked for UTF-8 (peek_len,
 * peek_state), so that checking a payload as it trickles in stays linear.
 *
 * Errors are reported as soon as the bytes at hand prove them: a bad first
 * byte fails with 1 byte buffered, a bad mask bit or control length with 2,
 * a message over the cap as soon as the length field is complete, so a peer
 * cannot make us wait for (or buffer) a payload we will refuse anyway.
 * Invalid UTF-8 in a text message is found as soon as the byte that proves
 * it has arrived, even in the middle of a frame (§8.1 "fail fast"; Autobahn
 * 6.4.3/6.4.4), so a fragmented or slowly sent text message fails at its
 * first bad byte, not at the end of its frame or message.
 *
 * Deliberately accepted: lengths not encoded in the minimal number of bytes
 * (§5.2 makes minimal encoding the sender's duty; rejecting it protects
 * nothing, the cap still applies). Not supported: extensions (so any RSV
 * bit fails, §5.2) and subprotocol negotiation (the gateway's business).
 */
#include "ws.h"

#include "b64.h"
#include "http.h"
#include "utf8.h"

#include <openssl/sha.h>
#include <string.h>

/* §1.3: the GUID the server appends to Sec-WebSocket-Key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* §5.5: "All control frames MUST have a payload length of 125 bytes or
 * less"; a close payload is a 2-byte code plus at most 123 bytes of reason. */
#define WS_MAX_CONTROL 125
#define WS_MAX_CLOSE_REASON (WS_MAX_CONTROL - 2)

/* §4.1: the client key is base64 of 16 random bytes: 22 significant chars
 * plus "==". Anything longer is not a key; the bound also sizes the buffer
 * that ws_accept_key() hashes. */
#define WS_KEY_LEN 24
#define WS_MAX_KEY 64

/* First header byte (§5.2). */
#define WS_FIN 0x80u
#define WS_RSV_MASK 0x70u
#define WS_OPCODE_MASK 0x0Fu
/* Second header byte. */
#define WS_MASK_BIT 0x80u
#define WS_LEN7_MASK 0x7Fu
#define WS_LEN7_16BIT 126 /* a 16-bit length follows */
#define WS_LEN7_64BIT 127 /* a 64-bit length follows */

/* §5.2: opcodes 0x8..0xF are control frames. */
static bool ws_is_control(unsigned op)
{
    return (op & 0x8u) != 0;
}

static bool ws_opcode_known(unsigned op)
{
    switch (op) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY:
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        return true;
    default:
        return false;
    }
}

uint16_t ws_status_close_code(enum ws_status st)
{
    switch (st) {
    case WS_OK:
    case WS_NEED_MORE:
        return 1000; /* not errors: a normal closure, should a caller ask */
    case WS_ERR_TOO_BIG:
        return 1009; /* §7.4.1 "message too big to process" */
    case WS_ERR_UTF8:
        return 1007; /* §7.4.1 "data ... not consistent with the type of the message" */
    default:
        return 1002; /* §7.4.1 protocol error: everything else breaks framing rules */
    }
}

const char *ws_status_str(enum ws_status st)
{
    switch (st) {
    case WS_OK:
        return "ok";
    case WS_NEED_MORE:
        return "need more bytes";
    case WS_ERR_RSV:
        return "reserved bit set";
    case WS_ERR_OPCODE:
        return "reserved opcode";
    case WS_ERR_UNMASKED:
        return "unmasked client frame";
    case WS_ERR_MASKED:
        return "masked server frame";
    case WS_ERR_CONTROL_TOO_BIG:
        return "control frame over 125 bytes";
    case WS_ERR_CONTROL_FRAGMENTED:
        return "fragmented control frame";
    case WS_ERR_LENGTH:
        return "64-bit length with top bit set";
    case WS_ERR_UNEXPECTED_CONT:
        return "continuation without a message";
    case WS_ERR_EXPECTED_CONT:
        return "new message inside a fragmented one";
    case WS_ERR_TOO_BIG:
        return "message too big";
    case WS_ERR_UTF8:
        return "invalid UTF-8";
    case WS_ERR_CLOSE_PAYLOAD:
        return "close payload of 1 byte";
    case WS_ERR_CLOSE_CODE:
        return "invalid close code";
    }
    return "unknown status";
}

void ws_parser_init(struct ws_parser *p, bool server, size_t max_msg)
{
    memset(p, 0, sizeof(*p));
    p->server = server;
    p->max_msg = max_msg > WS_MAX_MSG_CAP ? WS_MAX_MSG_CAP : (uint32_t)max_msg;
    p->utf8_state = UTF8_ACCEPT;
    p->err = WS_OK;
}

/* Records a stream error; every later ws_parse() returns it again. */
static enum ws_status ws_fail(struct ws_parser *p, enum ws_status st)
{
    p->err = (uint8_t)st;
    return st;
}

/*
 * Rules that depend only on the first byte, so they fail with one byte
 * buffered. RSV first: with an extension, the other bits could mean
 * something else, so "no extension negotiated" is the primary complaint.
 */
static enum ws_status ws_check_first_byte(const struct ws_parser *p, uint8_t b0)
{
    unsigned op = b0 & WS_OPCODE_MASK;

    if (b0 & WS_RSV_MASK) /* §5.2: MUST be 0 unless an extension defines them */
        return WS_ERR_RSV;
    if (!ws_opcode_known(op)) /* §5.2: 0x3-0x7 and 0xB-0xF are reserved */
        return WS_ERR_OPCODE;
    if (ws_is_control(op)) {
        /* §5.5: "Control frames themselves MUST NOT be fragmented." They may
         * sit between the fragments of a data message (§5.4), so they are
         * checked against nothing else. */
        if (!(b0 & WS_FIN))
            return WS_ERR_CONTROL_FRAGMENTED;
        return WS_OK;
    }
    /* §5.4: a fragmented message is a first frame (TEXT/BINARY, FIN clear),
     * zero or more continuations, and a continuation with FIN set; data
     * frames of different messages never interleave. */
    if (op == WS_OP_CONT && p->msg_opcode == 0)
        return WS_ERR_UNEXPECTED_CONT;
    if (op != WS_OP_CONT && p->msg_opcode != 0)
        return WS_ERR_EXPECTED_CONT;
    return WS_OK;
}

/* Reads n (2 or 8) bytes of network-order length. */
static uint64_t ws_read_be(const uint8_t *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | b[i];
    return v;
}

/*
 * §5.5.1: a close body, if any, starts with a 2-byte code, and the rest is
 * UTF-8 text. An empty body means "no status" and is reported as 1005
 * (§7.1.5), which may never appear on the wire itself.
 */
static enum ws_status ws_parse_close(struct ws_frame *f)
{
    if (f->len == 0) {
        f->close_code = 1005;
        return WS_OK;
    }
    if (f->len == 1) /* checked from the header already; kept for clarity */
        return WS_ERR_CLOSE_PAYLOAD;
    f->close_code = (uint16_t)((f->payload[0] << 8) | f->payload[1]);
    if (!ws_close_code_valid(f->close_code))
        return WS_ERR_CLOSE_CODE;
    f->close_reason = f->payload + 2;
    f->close_reason_len = f->len - 2;
    if (!utf8_valid(f->close_reason, f->close_reason_len))
        return WS_ERR_UTF8;
    return WS_OK;
}

/*
 * §8.1 fail fast inside a frame: feeds the text payload bytes that arrived
 * since the last call (payload[peek_len..have)) to the validator, unmasking
 * a copy (the buffer is unmasked in place only once the frame is complete).
 * Returns WS_ERR_UTF8 as soon as they cannot be valid UTF-8.
 */
static enum ws_status ws_peek_text(struct ws_parser *p, const uint8_t *payload, size_t have,
                                   const uint8_t *key)
{
    uint8_t chunk[256];
    size_t i = p->peek_len;
    uint32_t st = p->peek_state;

    while (i < have && st != UTF8_REJECT) {
        size_t n = have - i < sizeof(chunk) ? have - i : sizeof(chunk);
        if (key) {
            memcpy(chunk, payload + i, n);
            ws_mask(chunk, n, key, i);
            st = utf8_feed(st, chunk, n);
        } else {
            st = utf8_feed(st, payload + i, n);
        }
        i += n;
    }
    /* i <= have <= the frame's payload <= max_msg: fits 32 bits; a state
     * fits a byte (utf8.h). */
    p->peek_len = (uint32_t)i;
    p->peek_state = (uint8_t)st;
    return st == UTF8_REJECT ? WS_ERR_UTF8 : WS_OK;
}

enum ws_status ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, size_t *consumed,
                        size_t *need, struct ws_frame *f)
{
    *consumed = 0;
    *need = 0;
    if (p->err != WS_OK)
        return (enum ws_status)p->err;

    /* Header, byte by byte as far as it has arrived (§5.2). */
    if (len < 1) {
        *need = 2;
        return WS_NEED_MORE;
    }
    uint8_t b0 = buf[0];
    enum ws_status st = ws_check_first_byte(p, b0);
    if (st != WS_OK)
        return ws_fail(p, st);
    if (len < 2) {
        *need = 2;
        return WS_NEED_MORE;
    }

    unsigned op = b0 & WS_OPCODE_MASK;
    bool fin = (b0 & WS_FIN) != 0;
    bool control = ws_is_control(op);
    uint8_t b1 = buf[1];
    bool masked = (b1 & WS_MASK_BIT) != 0;
    unsigned len7 = b1 & WS_LEN7_MASK;

    /* §5.1: a client masks every frame, a server none; either side MUST
     * close when the rule is broken. Masking keeps a script from steering
     * the bytes that proxies see (§10.3). */
    if (p->server && !masked)
        return ws_fail(p, WS_ERR_UNMASKED);
    if (!p->server && masked)
        return ws_fail(p, WS_ERR_MASKED);
    /* §5.5: control payloads fit the 7-bit length; 126/127 mean longer (or a
     * non-minimal encoding, which a 125-byte frame never needs). */
    if (control && len7 > WS_MAX_CONTROL)
        return ws_fail(p, WS_ERR_CONTROL_TOO_BIG);
    /* §5.5.1: a close body is empty or holds at least the 2-byte code. */
    if (op == WS_OP_CLOSE && len7 == 1)
        return ws_fail(p, WS_ERR_CLOSE_PAYLOAD);

    size_t ext = len7 == WS_LEN7_16BIT ? 2 : len7 == WS_LEN7_64BIT ? 8 : 0;
    size_t hdr = 2 + ext + (masked ? 4 : 0);

    /* §5.2: "the most significant bit MUST be 0" in a 64-bit length; it is
     * in the first length byte, so fail as soon as that byte is here. */
    if (ext == 8 && len >= 3 && (buf[2] & 0x80))
        return ws_fail(p, WS_ERR_LENGTH);
    if (len < 2 + ext) {
        *need = hdr;
        return WS_NEED_MORE;
    }
    uint64_t plen = ext ? ws_read_be(buf + 2, ext) : len7;

    /* The message cap (close code 1009) counts what the open message holds
     * plus this frame, and is enforced now, before the payload arrives: a
     * peer announcing 2^62 bytes is refused with 10 bytes buffered. Control
     * frames are not part of a message and are already capped at 125. */
    if (!control) {
        size_t base = op == WS_OP_CONT ? p->msg_len : 0;
        if (base > p->max_msg || plen > p->max_msg - base)
            return ws_fail(p, WS_ERR_TOO_BIG);
    }
    /* Only reachable with max_msg near SIZE_MAX: the frame cannot be
     * addressed at all. */
    if (plen > SIZE_MAX - hdr)
        return ws_fail(p, WS_ERR_TOO_BIG);
    size_t total = hdr + (size_t)plen;
    uint8_t msg_op = op == WS_OP_CONT ? p->msg_opcode : (uint8_t)op;
    if (len < total) {
        /* Part of a text payload is here: check it now (§8.1 fail fast).
         * The caller presents the same bytes again plus more, so only what
         * is new since the last call is read. */
        if (!control && msg_op == WS_OP_TEXT && len > hdr) {
            if (p->peek_len == 0 || p->peek_len > len - hdr) {
                p->peek_len = 0;
                p->peek_state = op == WS_OP_CONT ? p->utf8_state : UTF8_ACCEPT;
            }
            st = ws_peek_text(p, buf + hdr, len - hdr, masked ? buf + 2 + ext : NULL);
            if (st != WS_OK)
                return ws_fail(p, st);
        }
        *need = total;
        return WS_NEED_MORE;
    }

    /* Whole frame present: from here on, the payload is touched once. */
    memset(f, 0, sizeof(*f));
    f->opcode = (uint8_t)op;
    f->fin = fin;
    f->payload = buf + hdr;
    f->len = (size_t)plen;
    if (masked)
        ws_mask(f->payload, f->len, buf + 2 + ext, 0);

    if (control) {
        if (op == WS_OP_CLOSE) {
            st = ws_parse_close(f);
            if (st != WS_OK)
                return ws_fail(p, st);
        }
        *consumed = total;
        return WS_OK;
    }

    /* Data frame: the message it belongs to, then UTF-8 for text (§5.6:
     * text is UTF-8 as a whole message; a fragment may end mid code point,
     * so the validator state carries over to the next fragment, §8.1). */
    uint32_t u8 = op == WS_OP_CONT ? p->utf8_state : UTF8_ACCEPT;
    if (msg_op == WS_OP_TEXT) {
        /* Resume after the bytes already checked while the frame arrived. */
        size_t done = p->peek_len <= f->len ? p->peek_len : 0;
        if (done)
            u8 = p->peek_state;
        p->peek_len = 0;
        u8 = utf8_feed(u8, f->payload + done, f->len - done);
        if (u8 == UTF8_REJECT || (fin && u8 != UTF8_ACCEPT))
            return ws_fail(p, WS_ERR_UTF8);
    }
    f->msg_opcode = msg_op;
    f->msg_end = fin;
    if (fin) {
        p->msg_opcode = 0;
        p->msg_len = 0;
        p->utf8_state = UTF8_ACCEPT;
    } else {
        p->msg_opcode = msg_op;
        /* Checked against max_msg above, so it fits 32 bits. */
        p->msg_len = (uint32_t)((op == WS_OP_CONT ? p->msg_len : 0) + f->len);
        p->utf8_state = (uint8_t)u8;
    }
    *consumed = total;
    return WS_OK;
}

size_t ws_frame_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len, const uint8_t *mask)
{
    size_t n = 0;
    uint8_t mask_bit = mask ? WS_MASK_BIT : 0;

    out[n++] = (uint8_t)((fin ? WS_FIN : 0) | (opcode & WS_OPCODE_MASK));
    /* §5.2: the minimal number of bytes MUST be used to encode the length. */
    if (len <= WS_MAX_CONTROL) {
        out[n++] = (uint8_t)(mask_bit | len);
    } else if (len <= 0xFFFF) {
        out[n++] = (uint8_t)(mask_bit | WS_LEN7_16BIT);
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = (uint8_t)(mask_bit | WS_LEN7_64BIT);
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(len >> shift);
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/*
 * §5.3: octet i of the payload is XORed with key octet i % 4. offset lets a
 * caller mask a payload in pieces. The bulk runs eight bytes at a time: the
 * key repeated to eight bytes, starting at the right phase, lines up with
 * every eight-byte step because 8 is a multiple of 4. memcpy makes the
 * unaligned loads and stores well-defined; compilers turn it into plain
 * moves.
 */
void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], size_t offset)
{
    uint8_t key[8];
    uint64_t k, w;
    size_t i = 0;

    for (size_t j = 0; j < sizeof(key); j++)
        key[j] = mask[(offset + j) & 3];
    memcpy(&k, key, sizeof(k));
    for (; len - i >= 8; i += 8) {
        memcpy(&w, buf + i, sizeof(w));
        w ^= k;
        memcpy(buf + i, &w, sizeof(w));
    }
    for (; i < len; i++)
        buf[i] ^= key[i & 7];
}

/*
 * §7.4.1 defines 1000-1011 but reserves 1004 and forbids 1005/1006 on the
 * wire (they describe the absence of a frame); §7.4.2 leaves 0-999 unused,
 * 1012-2999 to future protocol revisions and extensions (not negotiated
 * here), 3000-4999 to libraries, frameworks and applications.
 */
bool ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

size_t ws_close_payload(uint8_t *out, uint16_t code, const char *reason)
{
    /* §7.4.1: 1005, 1006 and 1015 MUST NOT be sent in a close frame. The
     * best we can do for them is an empty body, which means "no status". */
    if (code == 1005 || code == 1006 || code == 1015)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (!reason)
        return 2;

    /* Keep the longest prefix of the reason that ends between code points
     * and fits in 123 bytes: the peer rejects a close frame whose reason is
     * not valid UTF-8 (1007), which would lose the code we meant to send. */
    const uint8_t *r = (const uint8_t *)reason;
    uint32_t state = UTF8_ACCEPT;
    size_t keep = 0;
    for (size_t i = 0; i < WS_MAX_CLOSE_REASON && r[i] != '\0'; i++) {
        state = utf8_feed(state, r + i, 1);
        if (state == UTF8_REJECT)
            break;
        if (state == UTF8_ACCEPT)
            keep = i + 1;
    }
    memcpy(out + 2, r, keep);
    return 2 + keep;
}

int ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char buf[WS_MAX_KEY + sizeof(ws_guid)];
    unsigned char digest[SHA_DIGEST_LENGTH];

    out[0] = '\0';
    if (!key || key_len > WS_MAX_KEY)
        return -1;
    /* §4.2.2 item 5.4: base64(SHA-1(key ++ GUID)), key taken as sent (the
     * trimmed header value), not decoded. */
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, ws_guid, sizeof(ws_guid) - 1);
    if (!SHA1(buf, key_len + sizeof(ws_guid) - 1, digest))
        return -1;
    /* 20 bytes -> 28 base64 chars; the caller's buffer has room for the NUL. */
    if (b64_encode(out, 28, digest, SHA_DIGEST_LENGTH, B64_STD, true) != 28)
        return -1;
    out[28] = '\0';
    return 0;
}

/* §4.1: "a randomly selected 16-byte value that has been base64-encoded";
 * 16 bytes encode as exactly 22 alphabet chars and "==". The unused low bits
 * of the 22nd char are not checked: any decoder still yields 16 bytes. */
static bool ws_key_valid(const char *key, size_t len)
{
    if (len != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (b64_value((unsigned char)key[i], B64_STD) < 0)
            return false;
    return true;
}

static bool ws_value_is(const struct http_header *h, const char *s)
{
    size_t n = strlen(s);
    return h->value_len == n && memcmp(h->value, s, n) == 0;
}

int ws_handshake_check(const struct http_request *req, const char **key, size_t *key_len,
                       const char **reason)
{
    const struct http_header *h;

    *key = NULL;
    *key_len = 0;
    *reason = NULL;

    /* §4.2.1 item 1: "An HTTP/1.1 or higher GET request". Methods are
     * case-sensitive (RFC 9110 §9.1). */
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
        *reason = "handshake method is not GET";
        return 400;
    }
    if (req->minor_version < 1) {
        *reason = "handshake is not HTTP/1.1";
        return 400;
    }
    /* Item 2: a Host header field. */
    if (!http_header_find(req, "Host")) {
        *reason = "handshake without Host";
        return 400;
    }
    /* Item 3: Upgrade containing "websocket", case-insensitive. */
    h = http_header_find(req, "Upgrade");
    if (!h || !http_value_has_token(h->value, h->value_len, "websocket")) {
        *reason = "handshake without Upgrade: websocket";
        return 400;
    }
    /* Item 4: Connection including the "Upgrade" token. The HTTP parser
     * already looked at every Connection header (req->upgrade); the direct
     * look-up covers a request assembled by hand. */
    h = http_header_find(req, "Connection");
    if (!req->upgrade && !(h && http_value_has_token(h->value, h->value_len, "upgrade"))) {
        *reason = "handshake without Connection: upgrade";
        return 400;
    }
    /* Item 6 before item 5: a client speaking another version (or an old
     * draft without the header) is best told which one we speak (§4.2.2:
     * 426 with Sec-WebSocket-Version: 13), whatever else is wrong. */
    h = http_header_find(req, "Sec-WebSocket-Version");
    if (!h || !ws_value_is(h, "13")) {
        *reason = "unsupported Sec-WebSocket-Version";
        return 426;
    }
    /* Item 5: the key. */
    h = http_header_find(req, "Sec-WebSocket-Key");
    if (!h) {
        *reason = "handshake without Sec-WebSocket-Key";
        return 400;
    }
    if (!ws_key_valid(h->value, h->value_len)) {
        *reason = "Sec-WebSocket-Key is not base64 of 16 bytes";
        return 400;
    }
    *key = h->value;
    *key_len = h->value_len;
    return 0;
}
