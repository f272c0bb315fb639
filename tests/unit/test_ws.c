/*
 * test_ws.c - the WebSocket codec (common/ws.c).
 *
 * Frame vectors are byte streams with the transcript of frames they must
 * produce and the final status. Each vector is run four ways, and all four
 * must agree: fed whole; as every truncation (NEED_MORE, unless the header
 * alone already proves the error, in which case the error appears at exactly
 * err_at bytes); split in two at every offset; and byte by byte. The last two
 * go through sim_feed(), which behaves like the gateway's input buffer:
 * append what "read" returned, call ws_parse() until NEED_MORE, drop what was
 * consumed. Vectors marked BOTH are written unmasked for a client-side parser
 * and are also masked frame by frame (a different key per frame) and run
 * through a server-side parser.
 *
 * Truncated inputs are copied into buffers of exactly their length, so
 * AddressSanitizer catches any read past what the parser was given.
 */
#include "check.h"
#include "http.h"
#include "utf8.h"
#include "ws.h"

#include <stdbool.h>
#include <stdlib.h>

/* ---- transcript of parsed frames ---------------------------------------- */

#define LOG_MAX 4096
/* Payloads longer than this are logged as "<len>#<fnv1a>" instead of bytes. */
#define LOG_INLINE 40

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void log_append(char *log, size_t *log_len, const char *s)
{
    size_t n = strlen(s);
    if (*log_len + n >= LOG_MAX)
        n = LOG_MAX - 1 - *log_len;
    memcpy(log + *log_len, s, n);
    *log_len += n;
    log[*log_len] = '\0';
}

static void log_bytes(char *log, size_t *log_len, const uint8_t *p, size_t n)
{
    char tmp[8];
    if (n > LOG_INLINE) {
        char big[64];
        snprintf(big, sizeof(big), "%zu#%08x", n, fnv1a(p, n));
        log_append(log, log_len, big);
        return;
    }
    log_append(log, log_len, "\"");
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] > 0x7E || p[i] == '"' || p[i] == '\\')
            snprintf(tmp, sizeof(tmp), "\\x%02x", p[i]);
        else
            snprintf(tmp, sizeof(tmp), "%c", p[i]);
        log_append(log, log_len, tmp);
    }
    log_append(log, log_len, "\"");
}

/* "text+ "Hel";", "cont(text) "lo";", "ping "";", "close 1000 "bye";" */
static void log_frame(char *log, size_t *log_len, const struct ws_frame *f)
{
    char tmp[64];
    switch (f->opcode) {
    case WS_OP_CLOSE:
        snprintf(tmp, sizeof(tmp), "close %u ", f->close_code);
        log_append(log, log_len, tmp);
        log_bytes(log, log_len, f->close_reason, f->close_reason_len);
        log_append(log, log_len, ";");
        return;
    case WS_OP_PING:
        log_append(log, log_len, "ping ");
        break;
    case WS_OP_PONG:
        log_append(log, log_len, "pong ");
        break;
    default:
        snprintf(tmp, sizeof(tmp), "%s%s%s%s ", f->opcode == WS_OP_CONT ? "cont(" : "",
                 f->msg_opcode == WS_OP_TEXT ? "text" : "bin", f->opcode == WS_OP_CONT ? ")" : "",
                 f->fin ? "" : "+");
        log_append(log, log_len, tmp);
        break;
    }
    log_bytes(log, log_len, f->payload, f->len);
    log_append(log, log_len, ";");
}

/* ---- connection simulator ----------------------------------------------- */

struct sim {
    struct ws_parser p;
    uint8_t *buf; /* owned; exactly cap bytes so ASan sees over-reads at cap */
    size_t cap, used;
    char log[LOG_MAX];
    size_t log_len;
    enum ws_status st;
    size_t need;  /* from the last NEED_MORE */
    int bad;      /* broken invariants, reported once per run */
    bool stopped; /* an error closed the "connection" */
};

static void sim_init(struct sim *s, bool server, size_t max_msg, size_t cap)
{
    memset(s, 0, sizeof(*s));
    ws_parser_init(&s->p, server, max_msg);
    s->cap = cap;
    s->buf = malloc(cap ? cap : 1);
    s->st = WS_NEED_MORE;
}

static void sim_free(struct sim *s)
{
    free(s->buf);
    s->buf = NULL;
}

static void sim_bad(struct sim *s, const char *what)
{
    if (s->bad++ == 0)
        fprintf(stderr, "  invariant broken: %s\n", what);
}

/* One "read": append n bytes, then parse frames until NEED_MORE or error. */
static void sim_feed(struct sim *s, const uint8_t *data, size_t n)
{
    if (s->stopped)
        return;
    if (n)
        memcpy(s->buf + s->used, data, n);
    s->used += n;
    for (;;) {
        size_t consumed = 12345, need = 12345;
        struct ws_frame f;
        enum ws_status st = ws_parse(&s->p, s->buf, s->used, &consumed, &need, &f);
        s->st = st;
        if (st == WS_OK) {
            if (consumed == 0 || consumed > s->used)
                sim_bad(s, "consumed out of range");
            if (f.payload < s->buf || f.payload + f.len > s->buf + consumed)
                sim_bad(s, "payload outside the frame");
            if (f.opcode >= WS_OP_CLOSE && (!f.fin || f.len > 125 || f.msg_opcode))
                sim_bad(s, "control frame fields");
            if (f.opcode < WS_OP_CLOSE && (f.msg_end != f.fin || (f.msg_opcode != WS_OP_TEXT &&
                                                                  f.msg_opcode != WS_OP_BINARY)))
                sim_bad(s, "data frame fields");
            if (f.opcode == WS_OP_CLOSE && f.len == 0 && f.close_code != 1005)
                sim_bad(s, "empty close is not 1005");
            if (f.opcode == WS_OP_CLOSE && f.len >= 2 &&
                (f.close_reason != f.payload + 2 || f.close_reason_len != f.len - 2))
                sim_bad(s, "close reason fields");
            log_frame(s->log, &s->log_len, &f);
            memmove(s->buf, s->buf + consumed, s->used - consumed);
            s->used -= consumed;
            continue;
        }
        if (consumed != 0)
            sim_bad(s, "consumed set without a frame");
        if (st == WS_NEED_MORE) {
            if (need <= s->used)
                sim_bad(s, "need does not exceed what is buffered");
            s->need = need;
        } else {
            if (s->p.err != st)
                sim_bad(s, "error not recorded in p->err");
            if (ws_parse(&s->p, s->buf, s->used, &consumed, &need, &f) != st)
                sim_bad(s, "error not sticky");
            s->stopped = true;
        }
        return;
    }
}

/* ---- frame vectors ------------------------------------------------------ */

enum vec_mode {
    CLIENT, /* parsed by a client-side parser, as written */
    SERVER, /* parsed by a server-side parser, as written */
    BOTH,   /* as CLIENT, and masked frame by frame for a server-side parser */
};

struct vec {
    const char *name;
    enum vec_mode mode;
    size_t max_msg;
    const uint8_t *bytes;
    size_t len;
    enum ws_status want; /* final status; NEED_MORE: everything parsed */
    /* Errors only: the shortest prefix that already reports the error;
     * 0 means only the whole input does. */
    size_t err_at;
    const char *frames; /* expected transcript */
};

#define B(lit) (const uint8_t *)(lit), sizeof(lit) - 1
#define CAP 65536
#define NM WS_NEED_MORE

static const struct vec vecs[] = {
    /* RFC 6455 §5.7 examples. */
    {"rfc 5.7 single-frame unmasked text", BOTH, CAP, B("\x81\x05Hello"), NM, 0, "text \"Hello\";"},
    {"rfc 5.7 single-frame masked text", SERVER, CAP,
     B("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"), NM, 0, "text \"Hello\";"},
    {"rfc 5.7 fragmented unmasked text", BOTH, CAP, B("\x01\x03Hel\x80\x02lo"), NM, 0,
     "text+ \"Hel\";cont(text) \"lo\";"},
    {"rfc 5.7 unmasked ping", BOTH, CAP, B("\x89\x05Hello"), NM, 0, "ping \"Hello\";"},
    {"rfc 5.7 masked pong", SERVER, CAP, B("\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"), NM, 0,
     "pong \"Hello\";"},

    /* Well-formed streams. */
    {"empty text", BOTH, CAP, B("\x81\x00"), NM, 0, "text \"\";"},
    {"empty binary", BOTH, CAP, B("\x82\x00"), NM, 0, "bin \"\";"},
    {"binary bytes", BOTH, CAP, B("\x82\x04\x00\xff\x80\xc0"), NM, 0,
     "bin \"\\x00\\xff\\x80\\xc0\";"},
    {"two messages in one read", BOTH, CAP, B("\x81\x02hi\x82\x01!"), NM, 0,
     "text \"hi\";bin \"!\";"},
    {"three binary fragments", BOTH, CAP, B("\x02\x01x\x00\x01y\x80\x01z"), NM, 0,
     "bin+ \"x\";cont(bin)+ \"y\";cont(bin) \"z\";"},
    {"empty fragments", BOTH, CAP, B("\x01\x00\x00\x00\x80\x00"), NM, 0,
     "text+ \"\";cont(text)+ \"\";cont(text) \"\";"},
    {"fragmented text with ping interleaved", BOTH, CAP, B("\x01\x03Hel\x89\x02hi\x80\x02lo"), NM,
     0, "text+ \"Hel\";ping \"hi\";cont(text) \"lo\";"},
    {"fragmented binary with pong and close interleaved", BOTH, CAP,
     B("\x02\x01x\x8a\x00\x00\x01y\x88\x02\x03\xe8\x80\x01z"), NM, 0,
     "bin+ \"x\";pong \"\";cont(bin)+ \"y\";close 1000 \"\";cont(bin) \"z\";"},
    {"message after a fragmented one", BOTH, CAP, B("\x01\x01x\x80\x01y\x82\x01z"), NM, 0,
     "text+ \"x\";cont(text) \"y\";bin \"z\";"},
    {"utf-8 split inside a code point across fragments", BOTH, CAP,
     B("\x01\x01\xe2\x00\x01\x82\x80\x01\xac"), NM, 0,
     "text+ \"\\xe2\";cont(text)+ \"\\x82\";cont(text) \"\\xac\";"},
    {"4-byte code point split 2+2 with ping between", BOTH, CAP,
     B("\x01\x02\xf0\x9f\x89\x00\x80\x02\x98\x80"), NM, 0,
     "text+ \"\\xf0\\x9f\";ping \"\";cont(text) \"\\x98\\x80\";"},
    {"binary is not utf-8 checked", BOTH, CAP, B("\x82\x02\xc0\x80"), NM, 0, "bin \"\\xc0\\x80\";"},
    {"close without body is 1005", BOTH, CAP, B("\x88\x00"), NM, 0, "close 1005 \"\";"},
    {"close 1000 with reason", BOTH, CAP, B("\x88\x04\x03\xe8ok"), NM, 0, "close 1000 \"ok\";"},
    {"close 4999 with utf-8 reason", BOTH, CAP, B("\x88\x04\x13\x87\xc3\xa9"), NM, 0,
     "close 4999 \"\\xc3\\xa9\";"},
    {"message exactly at the cap", BOTH, 5, B("\x01\x03Hel\x80\x02lo"), NM, 0,
     "text+ \"Hel\";cont(text) \"lo\";"},
    {"control frames do not count toward the cap", BOTH, 3, B("\x01\x03Hel\x89\x05Hello\x80\x00"),
     NM, 0, "text+ \"Hel\";ping \"Hello\";cont(text) \"\";"},
    {"cap 0 allows empty messages", BOTH, 0, B("\x81\x00\x02\x00\x80\x00"), NM, 0,
     "text \"\";bin+ \"\";cont(bin) \"\";"},
    {"non-minimal 16-bit length accepted", BOTH, CAP, B("\x81\x7e\x00\x02hi"), NM, 0,
     "text \"hi\";"},
    {"non-minimal 64-bit length accepted", BOTH, CAP, B("\x82\x7f\0\0\0\0\0\0\0\x01x"), NM, 0,
     "bin \"x\";"},

    /* §5.2 RSV bits and opcodes: the first byte proves it. */
    {"rsv1", BOTH, CAP, B("\xc1\x05Hello"), WS_ERR_RSV, 1, ""},
    {"rsv2", BOTH, CAP, B("\xa1\x00"), WS_ERR_RSV, 1, ""},
    {"rsv3 on a continuation", BOTH, CAP, B("\x01\x01x\x90\x01y"), WS_ERR_RSV, 4, "text+ \"x\";"},
    {"rsv on ping", BOTH, CAP, B("\xc9\x00"), WS_ERR_RSV, 1, ""},
    {"opcode 3", BOTH, CAP, B("\x83\x00"), WS_ERR_OPCODE, 1, ""},
    {"opcode 7", BOTH, CAP, B("\x87\x00"), WS_ERR_OPCODE, 1, ""},
    {"opcode 0xB", BOTH, CAP, B("\x8b\x00"), WS_ERR_OPCODE, 1, ""},
    {"opcode 0xF", BOTH, CAP, B("\x8f\x00"), WS_ERR_OPCODE, 1, ""},
    {"opcode 4 without fin inside a message", BOTH, CAP, B("\x01\x01x\x04\x00"), WS_ERR_OPCODE, 4,
     "text+ \"x\";"},

    /* §5.1 masking. */
    {"unmasked client frame", SERVER, CAP, B("\x81\x05Hello"), WS_ERR_UNMASKED, 2, ""},
    {"unmasked frame after a masked one", SERVER, CAP, B("\x81\x80\x01\x02\x03\x04\x82\x00"),
     WS_ERR_UNMASKED, 8, "text \"\";"},
    {"unmasked close", SERVER, CAP, B("\x88\x00"), WS_ERR_UNMASKED, 2, ""},
    {"masked server frame", CLIENT, CAP, B("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
     WS_ERR_MASKED, 2, ""},

    /* §5.5 control frames. */
    {"ping of 126 bytes", BOTH, CAP, B("\x89\x7e\x00\x7e"), WS_ERR_CONTROL_TOO_BIG, 2, ""},
    {"close with a 64-bit length", BOTH, CAP, B("\x88\x7f\0\0\0\0\0\0\0\x02"),
     WS_ERR_CONTROL_TOO_BIG, 2, ""},
    {"pong with non-minimal 16-bit length", BOTH, CAP, B("\x8a\x7e\x00\x05Hello"),
     WS_ERR_CONTROL_TOO_BIG, 2, ""},
    {"ping without fin", BOTH, CAP, B("\x09\x00"), WS_ERR_CONTROL_FRAGMENTED, 1, ""},
    {"close without fin inside a message", BOTH, CAP, B("\x01\x01x\x08\x00"),
     WS_ERR_CONTROL_FRAGMENTED, 4, "text+ \"x\";"},

    /* §5.2 64-bit length. */
    {"64-bit length with top bit", BOTH, CAP, B("\x82\x7f\x80\0\0\0\0\0\0\0"), WS_ERR_LENGTH, 3,
     ""},
    {"64-bit length all ones", BOTH, CAP, B("\x82\x7f\xff\xff\xff\xff\xff\xff\xff\xff"),
     WS_ERR_LENGTH, 3, ""},

    /* §5.4 fragmentation. */
    {"continuation without a message", BOTH, CAP, B("\x80\x02lo"), WS_ERR_UNEXPECTED_CONT, 1, ""},
    {"non-final continuation without a message", BOTH, CAP, B("\x00\x00"), WS_ERR_UNEXPECTED_CONT,
     1, ""},
    {"continuation after a finished message", BOTH, CAP, B("\x81\x02hi\x80\x00"),
     WS_ERR_UNEXPECTED_CONT, 5, "text \"hi\";"},
    {"text while a message is open", BOTH, CAP, B("\x01\x03Hel\x81\x02lo"), WS_ERR_EXPECTED_CONT, 6,
     "text+ \"Hel\";"},
    {"binary while text is open, after a ping", BOTH, CAP, B("\x01\x01x\x89\x00\x02\x01y"),
     WS_ERR_EXPECTED_CONT, 6, "text+ \"x\";ping \"\";"},

    /* 1009: the cap applies as soon as the length is known. */
    {"single frame over the cap", BOTH, 4, B("\x81\x05Hello"), WS_ERR_TOO_BIG, 2, ""},
    {"16-bit length over the cap, header only", BOTH, 200, B("\x82\x7e\x01\x00"), WS_ERR_TOO_BIG, 4,
     ""},
    {"64-bit length over the cap, header only", BOTH, 65535, B("\x82\x7f\0\0\0\0\0\x01\0\0"),
     WS_ERR_TOO_BIG, 10, ""},
    {"huge legal 64-bit length", BOTH, CAP, B("\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff"),
     WS_ERR_TOO_BIG, 10, ""},
    {"fragments summing over the cap", BOTH, 5, B("\x01\x03Hel\x80\x03lo!"), WS_ERR_TOO_BIG, 7,
     "text+ \"Hel\";"},
    {"fragments over the cap with ping between", BOTH, 5,
     B("\x01\x03Hel\x89\x00\x00\x02lo\x80\x01!"), WS_ERR_TOO_BIG, 13,
     "text+ \"Hel\";ping \"\";cont(text)+ \"lo\";"},
    {"cap 0 refuses one byte", BOTH, 0, B("\x81\x01x"), WS_ERR_TOO_BIG, 2, ""},

    /* §8.1 UTF-8: found at the byte that proves it, even mid-frame (fail
     * fast; Autobahn 6.4.3/6.4.4); an unfinished code point only at the end
     * of the message. */
    {"utf-8 overlong C0 80", BOTH, CAP, B("\x81\x02\xc0\x80"), WS_ERR_UTF8, 3, ""},
    {"utf-8 overlong E0 80 80", BOTH, CAP, B("\x81\x03\xe0\x80\x80"), WS_ERR_UTF8, 4, ""},
    {"utf-8 surrogate ED A0 80", BOTH, CAP, B("\x81\x03\xed\xa0\x80"), WS_ERR_UTF8, 4, ""},
    {"utf-8 above U+10FFFF F4 90 80 80", BOTH, CAP, B("\x81\x04\xf4\x90\x80\x80"), WS_ERR_UTF8, 4,
     ""},
    {"utf-8 fails mid-frame (autobahn 6.4.3)", BOTH, CAP,
     B("\x81\x15\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
       "edited"),
     WS_ERR_UTF8, 15, ""},
    {"utf-8 fails mid-continuation (autobahn 6.4.4)", BOTH, CAP,
     B("\x01\x02\xce\xba\x80\x03\xf4\x90\x80"), WS_ERR_UTF8, 8, "text+ \"\\xce\\xba\";"},
    {"utf-8 F5", BOTH, CAP, B("\x81\x01\xf5"), WS_ERR_UTF8, 0, ""},
    {"utf-8 lone continuation", BOTH, CAP, B("\x81\x03xy\x80"), WS_ERR_UTF8, 0, ""},
    {"utf-8 truncated at message end", BOTH, CAP, B("\x81\x02\xe2\x82"), WS_ERR_UTF8, 0, ""},
    {"utf-8 truncated at end of fragmented message", BOTH, CAP, B("\x01\x02\xe2\x82\x80\x00"),
     WS_ERR_UTF8, 0, "text+ \"\\xe2\\x82\";"},
    {"utf-8 surrogate split across fragments", BOTH, CAP, B("\x01\x01\xed\x80\x02\xa0\x80"),
     WS_ERR_UTF8, 6, "text+ \"\\xed\";"},
    {"utf-8 bad first fragment fails before the rest", BOTH, CAP, B("\x01\x02\xc0\x80\x80\x01x"),
     WS_ERR_UTF8, 3, ""},
    {"close reason not utf-8", BOTH, CAP, B("\x88\x04\x03\xe8\xc0\x80"), WS_ERR_UTF8, 0, ""},
    {"close reason truncated code point", BOTH, CAP, B("\x88\x03\x03\xe8\xe2"), WS_ERR_UTF8, 0, ""},

    /* §5.5.1, §7.4 close frames. */
    {"close payload of 1 byte", BOTH, CAP, B("\x88\x01\x03"), WS_ERR_CLOSE_PAYLOAD, 2, ""},
    {"close code 0", BOTH, CAP, B("\x88\x02\x00\x00"), WS_ERR_CLOSE_CODE, 0, ""},
    {"close code 1005 on the wire", BOTH, CAP, B("\x88\x02\x03\xed"), WS_ERR_CLOSE_CODE, 0, ""},
    {"close code 5000 with reason", BOTH, CAP, B("\x88\x04\x13\x88ok"), WS_ERR_CLOSE_CODE, 0, ""},
};

/* Masks a client-side vector for a server-side parser: sets the mask bit,
 * inserts a key per frame and masks the payload. Frames cut short keep what
 * they have. Returns the new length; *err_at is moved with the bytes. */
static size_t mask_stream(const uint8_t *in, size_t n, uint8_t *out, size_t *err_at)
{
    size_t i = 0, o = 0, frame = 0, new_err_at = *err_at;
    while (i < n) {
        size_t start = i;
        if (n - i < 2) {
            out[o++] = in[i++];
            break;
        }
        size_t len7 = in[i + 1] & 0x7F;
        size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        if (n - i < 2 + ext) {
            out[o++] = in[i++];
            out[o++] = (uint8_t)(in[i++] | 0x80);
            while (i < n)
                out[o++] = in[i++];
            break;
        }
        uint64_t plen = len7;
        if (ext) {
            plen = 0;
            for (size_t j = 0; j < ext; j++)
                plen = (plen << 8) | in[i + 2 + j];
        }
        uint8_t key[4] = {(uint8_t)(0x37 + frame * 29), (uint8_t)(0xfa - frame * 7),
                          (uint8_t)(0x21 + frame), (uint8_t)(0x3d ^ frame)};
        out[o++] = in[i];
        out[o++] = (uint8_t)(in[i + 1] | 0x80);
        memcpy(out + o, in + i + 2, ext);
        o += ext;
        i += 2 + ext;
        memcpy(out + o, key, 4);
        o += 4;
        /* An error first visible in this frame's payload moves with it. */
        if (*err_at > i && *err_at <= i + plen)
            new_err_at = *err_at + 4 * (frame + 1);
        else if (*err_at > start && *err_at <= i)
            new_err_at = *err_at + 4 * frame;
        size_t take = plen < n - i ? (size_t)plen : n - i;
        for (size_t j = 0; j < take; j++)
            out[o++] = in[i + j] ^ key[j & 3];
        i += take;
        frame++;
    }
    *err_at = new_err_at;
    return o;
}

/* Big vectors are sampled: every offset near both ends, a stride between. */
static bool sample(size_t len, size_t k)
{
    return len <= 2048 || k < 48 || k + 48 > len || k % 509 == 0;
}

static void report_ctx(const struct vec *v, bool server, const char *how, size_t at)
{
    fprintf(stderr, "  vector \"%s\" (%s parser), %s %zu\n", v->name, server ? "server" : "client",
            how, at);
}

static void check_run(const struct vec *v, bool server, const char *how, size_t at,
                      const struct sim *s, enum ws_status want, const char *frames)
{
    bool ok = s->st == want && strcmp(s->log, frames) == 0 && s->bad == 0;
    if (!ok) {
        report_ctx(v, server, how, at);
        fprintf(stderr, "    got %s / %s\n    want %s / %s\n", ws_status_str(s->st), s->log,
                ws_status_str(want), frames);
    }
    CHECK_INT(s->st, want);
    CHECK_STR(s->log, frames);
    CHECK_INT(s->bad, 0);
}

static void run_stream(const struct vec *v, bool server, const uint8_t *bytes, size_t len,
                       size_t err_at)
{
    struct sim s;
    if (err_at == 0)
        err_at = len;

    /* Whole. */
    sim_init(&s, server, v->max_msg, len);
    sim_feed(&s, bytes, len);
    check_run(v, server, "whole", len, &s, v->want, v->frames);
    if (v->want == WS_NEED_MORE)
        CHECK_INT(s.used, 0); /* the vector holds complete frames only */
    sim_free(&s);

    /* Every truncation: NEED_MORE until err_at, then the error. */
    for (size_t k = 0; k < len; k++) {
        if (!sample(len, k))
            continue;
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, bytes, k);
        sim_init(&s, server, v->max_msg, k);
        sim_feed(&s, copy, k);
        free(copy);
        if (v->want != WS_NEED_MORE && k >= err_at) {
            check_run(v, server, "truncated at", k, &s, v->want, v->frames);
        } else {
            bool prefix = strncmp(s.log, v->frames, s.log_len) == 0;
            /* The frame we wait for is in the whole input: need fits in it. */
            bool need_ok = v->want != WS_NEED_MORE || s.need <= s.used + (len - k);
            if (s.st != WS_NEED_MORE || !prefix || !need_ok || s.bad) {
                report_ctx(v, server, "truncated at", k);
                fprintf(stderr, "    got %s / %s need %zu\n", ws_status_str(s.st), s.log, s.need);
            }
            CHECK_INT(s.st, WS_NEED_MORE);
            CHECK(prefix);
            CHECK(need_ok);
            CHECK_INT(s.bad, 0);
        }
        sim_free(&s);
    }

    /* Split in two at every offset. */
    for (size_t cut = 1; cut < len; cut++) {
        if (!sample(len, cut))
            continue;
        sim_init(&s, server, v->max_msg, len);
        sim_feed(&s, bytes, cut);
        sim_feed(&s, bytes + cut, len - cut);
        check_run(v, server, "split at", cut, &s, v->want, v->frames);
        sim_free(&s);
    }

    /* Byte by byte. */
    sim_init(&s, server, v->max_msg, len);
    for (size_t i = 0; i < len; i++)
        sim_feed(&s, bytes + i, 1);
    check_run(v, server, "byte by byte", len, &s, v->want, v->frames);
    sim_free(&s);
}

static void run_vec(const struct vec *v)
{
    if (v->mode != SERVER)
        run_stream(v, false, v->bytes, v->len, v->err_at);
    if (v->mode == SERVER)
        run_stream(v, true, v->bytes, v->len, v->err_at);
    if (v->mode == BOTH) {
        /* At most 4 key bytes per frame, and a frame has at least 2 bytes. */
        uint8_t *masked = malloc(v->len * 3 + 16);
        size_t err_at = v->err_at;
        size_t n = mask_stream(v->bytes, v->len, masked, &err_at);
        run_stream(v, true, masked, n, err_at);
        free(masked);
    }
}

static void test_vectors(void)
{
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++)
        run_vec(&vecs[i]);
}

/* RFC 6455 §5.7: 256 bytes with a 16-bit length, 64 KiB with a 64-bit one;
 * also a 125-byte ping (the largest control frame). */
static void test_big_vectors(void)
{
    static const struct {
        const char *name;
        const char *hdr;
        size_t hdr_len, plen;
        const char *kind;
    } big[] = {
        {"rfc 5.7 256-byte binary, 16-bit length", "\x82\x7e\x01\x00", 4, 256, "bin"},
        {"rfc 5.7 64KiB binary, 64-bit length", "\x82\x7f\0\0\0\0\0\x01\0\0", 10, 65536, "bin"},
        {"125-byte ping", "\x89\x7d", 2, 125, "ping"},
        {"126-byte text, 16-bit length", "\x81\x7e\x00\x7e", 4, 126, "text"},
        {"65535-byte text, 16-bit length", "\x81\x7e\xff\xff", 4, 65535, "text"},
    };
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        size_t len = big[i].hdr_len + big[i].plen;
        uint8_t *bytes = malloc(len);
        memcpy(bytes, big[i].hdr, big[i].hdr_len);
        for (size_t j = 0; j < big[i].plen; j++) {
            uint8_t b = (uint8_t)(j * 7 + (j >> 8));
            bytes[big[i].hdr_len + j] = strcmp(big[i].kind, "text") ? b : (uint8_t)('a' + b % 26);
        }
        char frames[128];
        snprintf(frames, sizeof(frames), "%s %zu#%08x;", big[i].kind, big[i].plen,
                 fnv1a(bytes + big[i].hdr_len, big[i].plen));
        struct vec v = {big[i].name, BOTH, CAP, bytes, len, WS_NEED_MORE, 0, frames};
        run_vec(&v);
        /* One byte under the cap fails from the header alone. */
        struct vec small = {big[i].name, BOTH,           big[i].plen - 1, bytes,
                            len,         WS_ERR_TOO_BIG, big[i].hdr_len,  ""};
        if (strcmp(big[i].kind, "ping") != 0)
            run_vec(&small);
        free(bytes);
    }
}

/* §7.4: which close codes a peer may send. */
static void test_close_codes(void)
{
    static const struct {
        uint16_t code;
        bool valid;
    } codes[] = {
        {0, false},    {999, false},  {1000, true},   {1001, true},  {1002, true},  {1003, true},
        {1004, false}, {1005, false}, {1006, false},  {1007, true},  {1008, true},  {1009, true},
        {1010, true},  {1011, true},  {1012, false},  {1013, false}, {1014, false}, {1015, false},
        {1016, false}, {2000, false}, {2999, false},  {3000, true},  {3999, true},  {4000, true},
        {4999, true},  {5000, false}, {65535, false},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        uint16_t c = codes[i].code;
        CHECK_INT(ws_close_code_valid(c), codes[i].valid);
        /* And through the parser, as a close frame with a reason. */
        uint8_t frame[] = {0x88, 0x04, (uint8_t)(c >> 8), (uint8_t)c, 'o', 'k'};
        char frames[64] = "";
        if (codes[i].valid)
            snprintf(frames, sizeof(frames), "close %u \"ok\";", c);
        struct vec v = {"close code table",
                        BOTH,
                        CAP,
                        frame,
                        sizeof(frame),
                        codes[i].valid ? WS_NEED_MORE : WS_ERR_CLOSE_CODE,
                        0,
                        frames};
        run_vec(&v);
    }
}

/* Exact need values: the header size until the length is known, then the
 * whole frame's size. */
static void test_need(void)
{
    static const struct {
        bool server;
        const char *bytes;
        size_t len;
        size_t need;
    } cases[] = {
        {true, "", 0, 2},
        {true, "\x81", 1, 2},
        {true, "\x81\x85", 2, 11},
        {true, "\x81\x85\x37\xfa\x21\x3d", 6, 11},
        {true, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51", 10, 11},
        {true, "\x82\xfe", 2, 8},
        {true, "\x82\xfe\x01", 3, 8},
        {true, "\x82\xfe\x01\x00", 4, 8 + 256},
        {false, "\x82\x7e\x01\x00", 4, 4 + 256},
        {false, "\x82\x7f", 2, 10},
        {false, "\x82\x7f\0\0\0\0\0\x01\0", 9, 10},
        {false, "\x82\x7f\0\0\0\0\0\x01\0\0", 10, 10 + 65536},
        {true, "\x82\xff\0\0\0\0\0\x01\0\0", 10, 14 + 65536},
        {false, "\x89\x05He", 4, 7},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ws_parser p;
        struct ws_frame f;
        size_t consumed = 99, need = 0;
        uint8_t buf[16];
        memcpy(buf, cases[i].bytes, cases[i].len);
        ws_parser_init(&p, cases[i].server, 1 << 20);
        CHECK_INT(ws_parse(&p, buf, cases[i].len, &consumed, &need, &f), WS_NEED_MORE);
        CHECK_INT(consumed, 0);
        CHECK_INT(need, cases[i].need);
        CHECK_INT(p.err, WS_OK);
    }
}

/* Field-level checks on the RFC examples, beyond the transcript. */
static void test_frame_fields(void)
{
    struct ws_parser p;
    struct ws_frame f;
    size_t consumed, need;
    uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};

    ws_parser_init(&p, true, 1024);
    CHECK_INT(ws_parse(&p, masked, sizeof(masked), &consumed, &need, &f), WS_OK);
    CHECK_INT(consumed, sizeof(masked));
    CHECK_INT(f.opcode, WS_OP_TEXT);
    CHECK(f.fin);
    CHECK_INT(f.msg_opcode, WS_OP_TEXT);
    CHECK(f.msg_end);
    CHECK(f.payload == masked + 6); /* unmasked in place */
    CHECK_MEM(f.payload, f.len, "Hello");
    CHECK_INT(p.msg_opcode, 0);

    uint8_t frag[] = {0x01, 0x03, 'H', 'e', 'l', 0x80, 0x02, 'l', 'o'};
    ws_parser_init(&p, false, 1024);
    CHECK_INT(ws_parse(&p, frag, sizeof(frag), &consumed, &need, &f), WS_OK);
    CHECK_INT(consumed, 5);
    CHECK(!f.fin && !f.msg_end);
    CHECK_INT(p.msg_opcode, WS_OP_TEXT);
    CHECK_INT(p.msg_len, 3);
    CHECK_INT(ws_parse(&p, frag + 5, 4, &consumed, &need, &f), WS_OK);
    CHECK_INT(f.opcode, WS_OP_CONT);
    CHECK_INT(f.msg_opcode, WS_OP_TEXT);
    CHECK(f.fin && f.msg_end);
    CHECK_MEM(f.payload, f.len, "lo");
    CHECK_INT(p.msg_opcode, 0);
    CHECK_INT(p.msg_len, 0);

    uint8_t close[] = {0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e'};
    CHECK_INT(ws_parse(&p, close, sizeof(close), &consumed, &need, &f), WS_OK);
    CHECK_INT(f.close_code, 1000);
    CHECK_MEM(f.close_reason, f.close_reason_len, "bye");
    CHECK_INT(f.msg_opcode, 0);
    CHECK(!f.msg_end);

    /* Errors are sticky: a valid frame afterwards still gets the error. */
    uint8_t bad[] = {0x83, 0x00};
    CHECK_INT(ws_parse(&p, bad, sizeof(bad), &consumed, &need, &f), WS_ERR_OPCODE);
    CHECK_INT(ws_parse(&p, frag, sizeof(frag), &consumed, &need, &f), WS_ERR_OPCODE);
    CHECK_INT(ws_parse(&p, frag, 0, &consumed, &need, &f), WS_ERR_OPCODE);
    CHECK_INT(p.err, WS_ERR_OPCODE);
    ws_parser_init(&p, false, 1024);
    CHECK_INT(ws_parse(&p, frag, 5, &consumed, &need, &f), WS_OK);
}

static void test_status_maps(void)
{
    static const struct {
        enum ws_status st;
        uint16_t code;
    } map[] = {
        {WS_OK, 1000},
        {WS_ERR_RSV, 1002},
        {WS_ERR_OPCODE, 1002},
        {WS_ERR_UNMASKED, 1002},
        {WS_ERR_MASKED, 1002},
        {WS_ERR_CONTROL_TOO_BIG, 1002},
        {WS_ERR_CONTROL_FRAGMENTED, 1002},
        {WS_ERR_LENGTH, 1002},
        {WS_ERR_UNEXPECTED_CONT, 1002},
        {WS_ERR_EXPECTED_CONT, 1002},
        {WS_ERR_TOO_BIG, 1009},
        {WS_ERR_UTF8, 1007},
        {WS_ERR_CLOSE_PAYLOAD, 1002},
        {WS_ERR_CLOSE_CODE, 1002},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        CHECK_INT(ws_status_close_code(map[i].st), map[i].code);
        const char *s = ws_status_str(map[i].st);
        CHECK(s && *s && strcmp(s, "unknown status") != 0);
    }
    CHECK_STR(ws_status_str(WS_ERR_UNMASKED), "unmasked client frame");
    CHECK_STR(ws_status_str((enum ws_status)99), "unknown status");
}

/* ---- encoder ------------------------------------------------------------ */

static void test_frame_header(void)
{
    static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    static const struct {
        uint64_t len;
        bool masked;
        const char *hdr;
        size_t hdr_len;
    } cases[] = {
        {0, false, "\x82\x00", 2},
        {125, false, "\x82\x7d", 2},
        {126, false, "\x82\x7e\x00\x7e", 4},
        {65535, false, "\x82\x7e\xff\xff", 4},
        {65536, false, "\x82\x7f\0\0\0\0\0\x01\0\0", 10},
        {UINT64_C(0x123456789a), false, "\x82\x7f\0\0\0\x12\x34\x56\x78\x9a", 10},
        {0, true, "\x82\x80\x11\x22\x33\x44", 6},
        {125, true, "\x82\xfd\x11\x22\x33\x44", 6},
        {126, true, "\x82\xfe\x00\x7e\x11\x22\x33\x44", 8},
        {65535, true, "\x82\xfe\xff\xff\x11\x22\x33\x44", 8},
        {65536, true, "\x82\xff\0\0\0\0\0\x01\0\0\x11\x22\x33\x44", 14},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t out[WS_MAX_HEADER];
        size_t n =
            ws_frame_header(out, WS_OP_BINARY, true, cases[i].len, cases[i].masked ? key : NULL);
        CHECK_INT(n, cases[i].hdr_len);
        CHECK(n == cases[i].hdr_len && memcmp(out, cases[i].hdr, n) == 0);
    }
    uint8_t out[WS_MAX_HEADER];
    CHECK_INT(ws_frame_header(out, WS_OP_TEXT, false, 3, NULL), 2);
    CHECK_INT(out[0], 0x01);
    CHECK_INT(ws_frame_header(out, WS_OP_PING, true, 0, NULL), 2);
    CHECK_INT(out[0], 0x89);
}

/* Encode, then parse back: server frames with a client parser, masked
 * client frames with a server parser. */
static void test_round_trip(void)
{
    static const size_t lens[] = {0, 1, 7, 125, 126, 127, 1000, 65535, 65536, 70001};
    static const uint8_t key[4] = {0xa5, 0x01, 0xff, 0x5a};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int masked = 0; masked <= 1; masked++) {
            size_t n = lens[i];
            uint8_t *payload = malloc(n + 1);
            uint8_t *frame = malloc(WS_MAX_HEADER + n);
            for (size_t j = 0; j < n; j++)
                payload[j] = (uint8_t)(j * 31 + 7);
            size_t h = ws_frame_header(frame, WS_OP_BINARY, true, n, masked ? key : NULL);
            memcpy(frame + h, payload, n);
            if (masked)
                ws_mask(frame + h, n, key, 0);
            if (masked && n >= 4)
                CHECK(memcmp(frame + h, payload, n) != 0);

            struct ws_parser p;
            struct ws_frame f;
            size_t consumed, need;
            ws_parser_init(&p, masked, 1 << 20);
            CHECK_INT(ws_parse(&p, frame, h + n, &consumed, &need, &f), WS_OK);
            CHECK_INT(consumed, h + n);
            CHECK_INT(f.len, n);
            CHECK(f.len == n && (n == 0 || memcmp(f.payload, payload, n) == 0));
            free(payload);
            free(frame);
        }
    }
}

/* ws_mask() against the byte-at-a-time definition, at every length,
 * key phase and buffer alignment around the 8-byte steps. */
static void test_mask(void)
{
    static const uint8_t key[4] = {0x12, 0x9a, 0xe7, 0x3c};
    int mismatches = 0;
    for (size_t align = 0; align < 8; align++) {
        for (size_t len = 0; len <= 70; len++) {
            for (size_t off = 0; off < 8; off++) {
                uint8_t a[96], b[96];
                for (size_t i = 0; i < sizeof(a); i++)
                    a[i] = b[i] = (uint8_t)(i * 13 + len);
                ws_mask(a + align, len, key, off);
                for (size_t i = 0; i < len; i++)
                    b[align + i] ^= key[(off + i) % 4];
                if (memcmp(a, b, sizeof(a)) != 0)
                    mismatches++;
            }
        }
    }
    CHECK_INT(mismatches, 0);

    /* Masking in pieces at running offsets equals masking at once. */
    uint8_t whole[100], parts[100];
    for (size_t i = 0; i < sizeof(whole); i++)
        whole[i] = parts[i] = (uint8_t)i;
    ws_mask(whole, sizeof(whole), key, 0);
    ws_mask(parts, 3, key, 0);
    ws_mask(parts + 3, 10, key, 3);
    ws_mask(parts + 13, 87, key, 13);
    CHECK(memcmp(whole, parts, sizeof(whole)) == 0);
    ws_mask(whole, 0, key, 0); /* no-op */
}

/* ---- close payloads ------------------------------------------------------ */

static void check_close_round_trip(const uint8_t *payload, size_t n, uint16_t code)
{
    uint8_t frame[2 + 125];
    frame[0] = 0x88;
    frame[1] = (uint8_t)n;
    memcpy(frame + 2, payload, n);
    struct ws_parser p;
    struct ws_frame f;
    size_t consumed, need;
    ws_parser_init(&p, false, 1024);
    CHECK_INT(ws_parse(&p, frame, 2 + n, &consumed, &need, &f), WS_OK);
    CHECK_INT(f.close_code, code);
}

static void test_close_payload(void)
{
    uint8_t out[125];
    char reason[512];

    size_t n = ws_close_payload(out, 1000, "ok");
    CHECK_INT(n, 4);
    CHECK(memcmp(out, "\x03\xe8ok", 4) == 0);
    check_close_round_trip(out, n, 1000);

    n = ws_close_payload(out, 1001, NULL);
    CHECK_INT(n, 2);
    CHECK(memcmp(out, "\x03\xe9", 2) == 0);
    n = ws_close_payload(out, 4000, "");
    CHECK_INT(n, 2);
    check_close_round_trip(out, n, 4000);

    /* Codes that mean "no close frame status" never go on the wire. */
    CHECK_INT(ws_close_payload(out, 1005, "x"), 0);
    CHECK_INT(ws_close_payload(out, 1006, "x"), 0);
    CHECK_INT(ws_close_payload(out, 1015, NULL), 0);

    /* ASCII: cut at exactly 123 bytes of reason. */
    memset(reason, 'a', 300);
    reason[300] = '\0';
    n = ws_close_payload(out, 1008, reason);
    CHECK_INT(n, 125);
    check_close_round_trip(out, n, 1008);
    reason[123] = '\0';
    CHECK_INT(ws_close_payload(out, 1008, reason), 125);
    reason[122] = '\0';
    CHECK_INT(ws_close_payload(out, 1008, reason), 124);

    /* Multi-byte text is cut between code points, never inside one. */
    static const struct {
        const char *unit;
        size_t prefix; /* ASCII bytes before the repeated unit */
        size_t want;   /* payload length */
    } cuts[] = {
        {"\xc3\xa9", 0, 2 + 122},         /* é x61 = 122; a 62nd would need 124 */
        {"\xc3\xa9", 1, 2 + 123},         /* 'a' + é x61 = 123 exactly */
        {"\xe2\x82\xac", 0, 2 + 123},     /* € x41 = 123 exactly */
        {"\xe2\x82\xac", 1, 2 + 121},     /* 'a' + € x40 = 121 */
        {"\xe2\x82\xac", 2, 2 + 122},     /* "aa" + € x40 = 122 */
        {"\xf0\x9f\x98\x80", 0, 2 + 120}, /* emoji x30 = 120 */
        {"\xf0\x9f\x98\x80", 3, 2 + 123}, /* "aaa" + emoji x30 = 123 */
    };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        size_t pos = 0, ulen = strlen(cuts[i].unit);
        for (size_t j = 0; j < cuts[i].prefix; j++)
            reason[pos++] = 'a';
        while (pos + ulen < 400) {
            memcpy(reason + pos, cuts[i].unit, ulen);
            pos += ulen;
        }
        reason[pos] = '\0';
        n = ws_close_payload(out, 3000, reason);
        CHECK_INT(n, cuts[i].want);
        CHECK(utf8_valid(out + 2, n - 2));
        check_close_round_trip(out, n, 3000);
    }

    /* An invalid reason keeps only its valid prefix. */
    n = ws_close_payload(out, 1011, "ok\xc0\x80tail");
    CHECK_INT(n, 4);
    CHECK(memcmp(out + 2, "ok", 2) == 0);
    n = ws_close_payload(out, 1011, "ok\xe2\x82");
    CHECK_INT(n, 4);
}

/* ---- handshake ----------------------------------------------------------- */

static void test_accept_key(void)
{
    char out[29];
    /* RFC 6455 §1.3. */
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    CHECK_INT(ws_accept_key(key, strlen(key), out), 0);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* Only the given length is hashed. */
    CHECK_INT(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==junk", 24, out), 0);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* A second published pair (the handshake example in Wikipedia's
     * WebSocket article) guards against a lucky match. */
    CHECK_INT(ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
    CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    char longkey[200];
    memset(longkey, 'A', sizeof(longkey));
    CHECK_INT(ws_accept_key(longkey, sizeof(longkey), out), -1);
}

/* Each case is the RFC 6455 §1.3 request with one header changed
 * (value NULL: header removed) or one request-line field changed. */
struct hs_case {
    const char *what;
    const char *method;
    int minor;
    bool upgrade_flag; /* what the HTTP parser would have set */
    const char *name;  /* header to change, or NULL */
    const char *value;
    int want; /* 0, 400 or 426 */
};

static const struct hs_case hs_cases[] = {
    {"valid", "GET", 1, true, NULL, NULL, 0},
    {"valid without the parser's upgrade flag", "GET", 1, false, NULL, NULL, 0},
    {"Upgrade in another case", "GET", 1, true, "Upgrade", "WebSocket", 0},
    {"Connection token list", "GET", 1, false, "Connection", "keep-alive, Upgrade", 0},
    {"other valid key", "GET", 1, true, "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==", 0},
    {"key with + and /", "GET", 1, true, "Sec-WebSocket-Key", "+/+/+/+/+/+/+/+/+/+/+w==", 0},
    {"POST", "POST", 1, true, NULL, NULL, 400},
    {"lower-case get", "get", 1, true, NULL, NULL, 400},
    {"HTTP/1.0", "GET", 0, true, NULL, NULL, 400},
    {"no Host", "GET", 1, true, "Host", NULL, 400},
    {"no Upgrade", "GET", 1, true, "Upgrade", NULL, 400},
    {"Upgrade: h2c", "GET", 1, true, "Upgrade", "h2c", 400},
    {"no Connection", "GET", 1, false, "Connection", NULL, 400},
    {"Connection without upgrade", "GET", 1, false, "Connection", "keep-alive", 400},
    {"version 8", "GET", 1, true, "Sec-WebSocket-Version", "8", 426},
    {"version 130", "GET", 1, true, "Sec-WebSocket-Version", "130", 426},
    {"version list", "GET", 1, true, "Sec-WebSocket-Version", "13, 8", 426},
    {"no version", "GET", 1, true, "Sec-WebSocket-Version", NULL, 426},
    {"no key", "GET", 1, true, "Sec-WebSocket-Key", NULL, 400},
    {"empty key", "GET", 1, true, "Sec-WebSocket-Key", "", 400},
    {"key of 15 bytes", "GET", 1, true, "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA==", 400},
    {"key of 17 bytes", "GET", 1, true, "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA=", 400},
    {"key without padding", "GET", 1, true, "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAAA", 400},
    {"key with a bad char", "GET", 1, true, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZ*==", 400},
    {"key base64url", "GET", 1, true, "Sec-WebSocket-Key", "-_-_-_-_-_-_-_-_-_-_-w==", 400},
};

static void test_handshake(void)
{
    static const char *const good[][2] = {
        {"Host", "server.example.com"},   {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Origin", "http://example.com"}, {"Sec-WebSocket-Version", "13"},
    };
    static struct http_request req; /* ~2 KB: keep it off the stack */

    for (size_t i = 0; i < sizeof(hs_cases) / sizeof(hs_cases[0]); i++) {
        const struct hs_case *c = &hs_cases[i];
        memset(&req, 0, sizeof(req));
        req.method = c->method;
        req.method_len = strlen(c->method);
        req.target = req.path = "/chat";
        req.target_len = req.path_len = 5;
        req.minor_version = c->minor;
        req.upgrade = c->upgrade_flag;
        for (size_t h = 0; h < sizeof(good) / sizeof(good[0]); h++) {
            const char *name = good[h][0], *value = good[h][1];
            if (c->name && strcmp(c->name, name) == 0) {
                if (!c->value)
                    continue;
                value = c->value;
                /* Header names are case-insensitive: send the changed one
                 * in lower case. */
                static char lower[64];
                size_t n = strlen(name);
                for (size_t j = 0; j <= n; j++)
                    lower[j] = (char)(name[j] >= 'A' && name[j] <= 'Z' ? name[j] + 32 : name[j]);
                name = lower;
            }
            struct http_header *hh = &req.headers[req.num_headers++];
            hh->name = name;
            hh->name_len = strlen(name);
            hh->value = value;
            hh->value_len = strlen(value);
        }
        const char *key = (const char *)1, *reason = (const char *)1;
        size_t key_len = 99;
        int rc = ws_handshake_check(&req, &key, &key_len, &reason);
        if (rc != c->want)
            fprintf(stderr, "  handshake \"%s\": %d (%s), expected %d\n", c->what, rc,
                    reason ? reason : "-", c->want);
        CHECK_INT(rc, c->want);
        if (c->want == 0) {
            CHECK(key != NULL && key_len == 24);
            CHECK(reason == NULL);
        } else {
            CHECK(key == NULL && key_len == 0);
            CHECK(reason != NULL && *reason);
        }
    }
}

int main(void)
{
    test_vectors();
    test_big_vectors();
    test_close_codes();
    test_need();
    test_frame_fields();
    test_status_maps();
    test_frame_header();
    test_round_trip();
    test_mask();
    test_close_payload();
    test_accept_key();
    test_handshake();
    return check_report("test_ws");
}
