/*
 * fuzz_ws.c - libFuzzer target for the WebSocket codec and UTF-8 validator.
 *
 * Input layout: byte 0 picks the parser side (bit 0: server) and a message
 * cap from a small table (bits 1-3), so the fuzzer reaches TOO_BIG and the
 * fragment-sum paths without building megabytes; byte 1 picks where the
 * stream is cut for the second run; the rest is the byte stream.
 *
 * Three oracles beyond the sanitizers:
 *  - structural: consumed never exceeds what was given, payloads and close
 *    reasons lie inside the frame, NEED_MORE asks for more than is there,
 *    errors are sticky;
 *  - split invariance: the stream parsed whole and parsed in two "reads"
 *    (with the connection-buffer shuffle the gateway does) must produce the
 *    same frames and the same final status;
 *  - UTF-8: utf8_feed over the input split anywhere equals utf8_feed over
 *    the whole, and both agree with a slow reference decoder;
 *  - round trips: ws_frame_header() + ws_mask() parse back to the input,
 *    ws_close_payload() always yields a valid close body.
 * A failed oracle calls abort(): it is a real bug, not a peer error.
 */
#include "utf8.h"
#include "../utf8_ref.h"
#include "ws.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Caps chosen around the length-encoding edges (125/126, 65535/65536). */
static const size_t fuzz_caps[8] = {0, 1, 5, 125, 126, 1000, 65535, 65536};

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* Running digest of everything the parser reported, frame by frame. */
struct digest {
    uint64_t h;
    size_t frames;
};

static void digest_add(struct digest *d, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        d->h = (d->h ^ b[i]) * UINT64_C(1099511628211);
}

static void digest_frame(struct digest *d, const struct ws_frame *f)
{
    uint8_t meta[6] = {f->opcode,
                       f->fin,
                       f->msg_opcode,
                       f->msg_end,
                       (uint8_t)(f->close_code >> 8),
                       (uint8_t)f->close_code};
    digest_add(d, meta, sizeof(meta));
    digest_add(d, &f->len, sizeof(f->len));
    digest_add(d, f->payload, f->len); /* touches every payload byte */
    digest_add(d, &f->close_reason_len, sizeof(f->close_reason_len));
    d->frames++;
}

/* Structural checks on one ws_parse() result over buf[0..len). */
static void check_result(struct ws_parser *p, enum ws_status st, uint8_t *buf, size_t len,
                         size_t consumed, size_t need, const struct ws_frame *f)
{
    if (st == WS_OK) {
        FUZZ_CHECK(consumed >= 2 && consumed <= len);
        FUZZ_CHECK(f->payload >= buf && f->len <= consumed &&
                   f->payload + f->len == buf + consumed);
        if (f->opcode == WS_OP_CLOSE && f->len >= 2) {
            FUZZ_CHECK(ws_close_code_valid(f->close_code));
            FUZZ_CHECK(f->close_reason == f->payload + 2 && f->close_reason_len == f->len - 2);
            FUZZ_CHECK(utf8_valid(f->close_reason, f->close_reason_len));
        }
        if (f->opcode & 0x8)
            FUZZ_CHECK(f->fin && f->len <= 125);
        else
            FUZZ_CHECK(f->msg_end == f->fin && f->len <= p->max_msg);
        if (f->opcode < 0x8 && f->msg_opcode == WS_OP_TEXT && f->msg_end)
            FUZZ_CHECK(p->utf8_state == UTF8_ACCEPT);
        return;
    }
    FUZZ_CHECK(consumed == 0);
    if (st == WS_NEED_MORE) {
        FUZZ_CHECK(need > len);
        return;
    }
    FUZZ_CHECK(p->err == st);
    size_t c2 = 1, n2 = 1;
    struct ws_frame f2;
    FUZZ_CHECK(ws_parse(p, buf, len, &c2, &n2, &f2) == st && c2 == 0);
    FUZZ_CHECK(ws_status_close_code(st) >= 1002 && ws_status_str(st)[0] != '\0');
}

/* Run 1: the whole stream in one buffer, frame after frame. Data frames are
 * also reassembled into msg (len bytes) to check each complete message
 * against the cap and, for text, against the reference UTF-8 decoder. */
static enum ws_status run_whole(bool server, size_t cap, uint8_t *buf, size_t len, uint8_t *msg,
                                struct digest *d)
{
    struct ws_parser p;
    size_t off = 0, msg_len = 0;
    ws_parser_init(&p, server, cap);
    for (;;) {
        size_t consumed = 0, need = 0;
        struct ws_frame f;
        enum ws_status st = ws_parse(&p, buf + off, len - off, &consumed, &need, &f);
        check_result(&p, st, buf + off, len - off, consumed, need, &f);
        if (st != WS_OK)
            return st;
        digest_frame(d, &f);
        if (!(f.opcode & 0x8)) {
            FUZZ_CHECK(msg_len + f.len <= len);
            if (f.len)
                memcpy(msg + msg_len, f.payload, f.len);
            msg_len += f.len;
            FUZZ_CHECK(msg_len <= cap);
            if (f.msg_end) {
                if (f.msg_opcode == WS_OP_TEXT)
                    FUZZ_CHECK(utf8_ref_valid(msg, msg_len));
                msg_len = 0;
            }
        }
        off += consumed;
    }
}

/* Run 2: like a connection: two reads, consumed bytes shifted out. */
static void conn_read(struct ws_parser *p, uint8_t *buf, size_t *used, const uint8_t *data,
                      size_t n, enum ws_status *st, struct digest *d)
{
    if (*st != WS_NEED_MORE)
        return;
    memcpy(buf + *used, data, n);
    *used += n;
    for (;;) {
        size_t consumed = 0, need = 0;
        struct ws_frame f;
        *st = ws_parse(p, buf, *used, &consumed, &need, &f);
        check_result(p, *st, buf, *used, consumed, need, &f);
        if (*st != WS_OK)
            return;
        digest_frame(d, &f);
        memmove(buf, buf + consumed, *used - consumed);
        *used -= consumed;
    }
}

static void fuzz_utf8(const uint8_t *data, size_t size, size_t cut)
{
    uint32_t whole = utf8_feed(UTF8_ACCEPT, data, size);
    uint32_t split = utf8_feed(utf8_feed(UTF8_ACCEPT, data, cut), data + cut, size - cut);
    FUZZ_CHECK(whole == split);
    FUZZ_CHECK((whole == UTF8_ACCEPT) == utf8_ref_valid(data, size));
    FUZZ_CHECK(utf8_feed(UTF8_REJECT, data, size) == UTF8_REJECT);
}

/* ws_close_payload() must always yield something our own parser accepts. */
static void fuzz_close_payload(const uint8_t *data, size_t size)
{
    char reason[200];
    uint8_t out[125];
    size_t n = size < sizeof(reason) - 1 ? size : sizeof(reason) - 1;
    memcpy(reason, data, n);
    reason[n] = '\0';
    size_t len = ws_close_payload(out, 1000, reason);
    FUZZ_CHECK(len >= 2 && len <= 125);
    FUZZ_CHECK(utf8_valid(out + 2, len - 2));
}

/* Encoder round trip: a masked binary frame built with ws_frame_header()
 * and ws_mask() (in two pieces, at the cut) parses back to the same bytes
 * with a server-side parser. */
static void fuzz_encode(const uint8_t *data, size_t size, size_t cut, uint8_t selector)
{
    uint8_t key[4] = {selector, (uint8_t)(selector * 3), (uint8_t)(size * 7), (uint8_t)cut};
    uint8_t *frame = malloc(WS_MAX_HEADER + size + 1);
    if (!frame)
        abort();
    size_t h = ws_frame_header(frame, WS_OP_BINARY, true, size, key);
    FUZZ_CHECK(h == (size <= 125 ? 6 : size <= 65535 ? 8 : 14));
    if (size)
        memcpy(frame + h, data, size);
    ws_mask(frame + h, cut, key, 0);
    ws_mask(frame + h + cut, size - cut, key, cut);

    struct ws_parser p;
    struct ws_frame f;
    size_t consumed = 0, need = 0;
    ws_parser_init(&p, true, size);
    FUZZ_CHECK(ws_parse(&p, frame, h + size, &consumed, &need, &f) == WS_OK);
    FUZZ_CHECK(consumed == h + size && f.len == size);
    FUZZ_CHECK(size == 0 || memcmp(f.payload, data, size) == 0);
    free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    bool server = data[0] & 1;
    size_t cap = fuzz_caps[(data[0] >> 1) & 7];
    const uint8_t *stream = data + 2;
    size_t len = size - 2;
    size_t cut = len ? data[1] * len / 255 : 0;

    /* parse mutates (unmasking in place): each run gets its own copy,
     * exactly len bytes so ASan sees any read past the end. */
    uint8_t *a = malloc(len ? len : 1);
    uint8_t *b = malloc(len ? len : 1);
    uint8_t *msg = malloc(len ? len : 1);
    if (!a || !b || !msg)
        abort();
    if (len)
        memcpy(a, stream, len);

    struct digest d1 = {UINT64_C(14695981039346656037), 0};
    enum ws_status st1 = run_whole(server, cap, a, len, msg, &d1);

    struct digest d2 = {UINT64_C(14695981039346656037), 0};
    struct ws_parser p;
    size_t used = 0;
    enum ws_status st2 = WS_NEED_MORE;
    ws_parser_init(&p, server, cap);
    conn_read(&p, b, &used, stream, cut, &st2, &d2);
    conn_read(&p, b, &used, stream + cut, len - cut, &st2, &d2);

    FUZZ_CHECK(st1 == st2);
    FUZZ_CHECK(d1.h == d2.h && d1.frames == d2.frames);
    free(a);
    free(b);
    free(msg);

    fuzz_utf8(stream, len, cut);
    fuzz_close_payload(stream, len);
    fuzz_encode(stream, len, cut, data[0]);
    return 0;
}
