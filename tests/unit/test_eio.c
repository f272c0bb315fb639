/*
 * test_eio.c - the Engine.IO v4 codec (common/eio.c).
 *
 * Packet vectors (one WebSocket text frame each) are checked whole and at
 * every truncation: a packet cut anywhere after its type character is the
 * same packet with shorter data, cut to nothing it is EIO_ERR_EMPTY. Payload
 * vectors (polling bodies) carry the transcript of packets they must yield
 * and the final status; each is also run cut at every separator (the
 * packets before the cut, then done) and at every byte (invariants only:
 * offsets grow, pointers stay inside the buffer, the loop ends). Every
 * input is copied into a heap buffer of exactly its length so that
 * AddressSanitizer sees any read past the end.
 *
 * Sources: every example in the Engine.IO v4 protocol document and its
 * test suite, engine.io-parser's own tests, RFC 4648 §10 for base64.
 */
#include "check.h"
#include "eio.h"

#include <stdbool.h>
#include <stdlib.h>

#define B(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (n)
        memcpy(d, p, n);
    return d;
}

/* ---- single packets (WebSocket text frames) ---------------------------- */

struct pkt_vec {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    enum eio_status want;        /* eio_parse_text() */
    enum eio_status want_packet; /* eio_parse_packet() */
    uint8_t type;
    bool binary;
    const char *data; /* eio_parse_packet() result; NUL-free in these vectors */
    size_t data_len;
};

#define OK_TEXT(name, lit, type, data)                                                             \
    {                                                                                              \
        name, B(lit), EIO_OK, EIO_OK, type, false, data, sizeof(data) - 1                          \
    }
#define OK_BIN(name, lit, data)                                                                    \
    {                                                                                              \
        name, B(lit), EIO_ERR_TYPE, EIO_OK, EIO_MESSAGE, true, data, sizeof(data) - 1              \
    }
#define BAD(name, lit, st, st2)                                                                    \
    {                                                                                              \
        name, B(lit), st, st2, 0, false, "", 0                                                     \
    }

static const struct pkt_vec pkt_vecs[] = {
    /* engine-io-protocol: packet types table, heartbeat, upgrade, message. */
    OK_TEXT("open",
            "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],"
            "\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}",
            EIO_OPEN,
            "{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],"
            "\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}"),
    OK_TEXT("close", "1", EIO_CLOSE, ""),
    OK_TEXT("ping", "2", EIO_PING, ""),
    OK_TEXT("pong", "3", EIO_PONG, ""),
    OK_TEXT("ping probe", "2probe", EIO_PING, "probe"),
    OK_TEXT("pong probe", "3probe", EIO_PONG, "probe"),
    OK_TEXT("message hello", "4hello", EIO_MESSAGE, "hello"),
    OK_TEXT("upgrade", "5", EIO_UPGRADE, ""),
    OK_TEXT("noop", "6", EIO_NOOP, ""),
    /* engine.io-parser tests: "4test", "1€" (UTF-8 passes through). */
    OK_TEXT("message test", "4test", EIO_MESSAGE, "test"),
    OK_TEXT("message utf-8", "41\xe2\x82\xac", EIO_MESSAGE, "1\xe2\x82\xac"),
    /* socket-io-protocol sample session. */
    OK_TEXT("sio connect", "40", EIO_MESSAGE, "0"),
    OK_TEXT("sio event", "42[\"hey\",\"Jude\"]", EIO_MESSAGE, "2[\"hey\",\"Jude\"]"),
    OK_TEXT("sio binary ack", "461-/admin,1[{\"_placeholder\":true,\"num\":0}]", EIO_MESSAGE,
            "61-/admin,1[{\"_placeholder\":true,\"num\":0}]"),
    /* Edges. */
    OK_TEXT("empty message is valid", "4", EIO_MESSAGE, ""),
    OK_TEXT("separator inside a frame is data",
            "4a\x1e"
            "b",
            EIO_MESSAGE,
            "a\x1e"
            "b"),
    OK_TEXT("ping with any data", "2\xff\x01", EIO_PING, "\xff\x01"),
    /* 'b' is binary only through eio_parse_packet() (forceBase64 clients). */
    OK_BIN("b64 in a text frame", "bAQIDBA==", "\x01\x02\x03\x04"),
    OK_BIN("b alone: empty binary message", "b", ""),
    BAD("empty frame", "", EIO_ERR_EMPTY, EIO_ERR_EMPTY),
    BAD("type 7", "7", EIO_ERR_TYPE, EIO_ERR_TYPE),
    BAD("type 9 with data", "9hello", EIO_ERR_TYPE, EIO_ERR_TYPE),
    BAD("letter type (parser test a123)", "a123", EIO_ERR_TYPE, EIO_ERR_TYPE),
    BAD("protocol test suite abc", "abc", EIO_ERR_TYPE, EIO_ERR_TYPE),
    BAD("json instead of a packet", "{}", EIO_ERR_TYPE, EIO_ERR_TYPE),
    BAD("separator as type", "\x1e", EIO_ERR_TYPE, EIO_ERR_TYPE),
    BAD("NUL as type",
        "\0"
        "4",
        EIO_ERR_TYPE, EIO_ERR_TYPE),
    BAD("uppercase B", "BAQID", EIO_ERR_TYPE, EIO_ERR_TYPE),
    BAD("b with bad base64", "b!!!!", EIO_ERR_TYPE, EIO_ERR_BASE64),
    /* A v3 length prefix reads as a noop with data, as in the reference. */
    OK_TEXT("v3 length prefix is a noop", "6:4hello", EIO_NOOP, ":4hello"),
};

static void check_pkt(const struct pkt_vec *v, const char *how, size_t at, enum eio_status st,
                      enum eio_status want, const struct eio_packet *p, const uint8_t *buf,
                      size_t len, const char *data, size_t data_len, bool binary)
{
    bool ok = st == want;
    if (ok && st == EIO_OK)
        ok = p->type == v->type && p->binary == binary && p->len == data_len &&
             (data_len == 0 || memcmp(p->data, data, data_len) == 0) && p->data >= buf &&
             p->data + p->len <= buf + len;
    if (!ok)
        fprintf(stderr, "  vector \"%s\", %s %zu: got %s, want %s\n", v->name, how, at,
                eio_status_str(st), eio_status_str(want));
    CHECK(ok);
}

static void test_packets(void)
{
    for (size_t i = 0; i < sizeof(pkt_vecs) / sizeof(pkt_vecs[0]); i++) {
        const struct pkt_vec *v = &pkt_vecs[i];
        struct eio_packet p;
        /* Every length from 0 to the whole: text parse on a read-only copy. */
        for (size_t k = 0; k <= v->len; k++) {
            uint8_t *buf = dup_exact(v->bytes, k);
            enum eio_status want = v->want;
            if (k == 0)
                want = EIO_ERR_EMPTY;
            size_t dl = k ? k - 1 : 0;
            memset(&p, 0xA5, sizeof(p));
            enum eio_status st = eio_parse_text(buf, k, &p);
            if (v->want == EIO_OK)
                check_pkt(v, "text, truncated to", k, st, want, &p, buf, k, v->data, dl, false);
            else if (k == v->len || k == 0)
                check_pkt(v, "text, length", k, st, want, &p, buf, k, "", 0, false);
            free(buf);
        }
        /* Mutable parse, whole; text vectors also at every truncation. */
        for (size_t k = v->want_packet == EIO_OK && !v->binary ? 0 : v->len; k <= v->len; k++) {
            uint8_t *buf = dup_exact(v->bytes, k);
            enum eio_status want = k == 0 ? EIO_ERR_EMPTY : v->want_packet;
            size_t dl = k == v->len ? v->data_len : k - 1;
            enum eio_status st = eio_parse_packet(buf, k, &p);
            check_pkt(v, "packet, length", k, st, want, &p, buf, k, v->data, dl, v->binary);
            free(buf);
        }
    }
}

/* ---- base64 ------------------------------------------------------------- */

struct b64_vec {
    const char *raw;
    size_t raw_len;
    const char *text; /* without the 'b' */
};

static const struct b64_vec b64_vecs[] = {
    /* RFC 4648 §10. */
    {"", 0, ""},
    {"f", 1, "Zg=="},
    {"fo", 2, "Zm8="},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg=="},
    {"fooba", 5, "Zm9vYmE="},
    {"foobar", 6, "Zm9vYmFy"},
    /* engine-io-protocol: <01 02 03 04>; engine.io-parser: <01 02 03>. */
    {"\x01\x02\x03\x04", 4, "AQIDBA=="},
    {"\x01\x02\x03", 3, "AQID"},
    /* Both ends of the alphabet. */
    {"\xfb\xff\xbf", 3, "+/+/"},
    {"\x00\x00\x00", 3, "AAAA"},
    {"\xff", 1, "/w=="},
};

/* Text after the 'b' that must be refused. */
static const struct {
    const uint8_t *text;
    size_t len;
} b64_bad[] = {
    {B("A")},
    {B("AA")},
    {B("AAA")},
    {B("AAAAA")},
    {B("A===")},
    {B("====")},
    {B("AA=A")},
    {B("=AAA")},
    {B("AA==AAAA")},
    {B("AAA=AAAA")},
    {B("AQ=")},
    {B("AQ")},
    {B("Zg=")},
    {B("Zg")},
    {B("Zh==")},
    {B("Zm9=")},
    {B("AQIDBA=")},
    {B("AQIDBA")},
    {B("-_-_")},
    {B("AQ\nID")},
    {B("AQ ID")},
    {B("AQID\r\n")},
    {B("AQ\0D")},
    {B("\x80QID")},
    {B("AQIDBA=x")},
    {B("Zm9vYg==\x01")},
    {B("Zm9vYg=\x00")},
    {B("A\x1e"
       "AA")},
};

static void test_base64(void)
{
    char out[64];
    for (size_t i = 0; i < sizeof(b64_vecs) / sizeof(b64_vecs[0]); i++) {
        const struct b64_vec *v = &b64_vecs[i];
        size_t tl = strlen(v->text);
        CHECK_INT(eio_b64_size(v->raw_len), tl + 1);
        size_t n = eio_encode_b64(out, sizeof(out), (const uint8_t *)v->raw, v->raw_len);
        CHECK_INT(n, tl + 1);
        CHECK(n > 0 && out[0] == 'b' && memcmp(out + 1, v->text, tl) == 0);
        /* Every capacity below the size is refused. */
        for (size_t cap = 0; cap < tl + 1; cap++)
            CHECK_INT(eio_encode_b64(out, cap, (const uint8_t *)v->raw, v->raw_len), 0);
        /* And back, in place. */
        uint8_t *buf = dup_exact((const uint8_t *)out, n);
        struct eio_packet p;
        CHECK_INT(eio_parse_packet(buf, n, &p), EIO_OK);
        CHECK(p.binary && p.type == EIO_MESSAGE && p.len == v->raw_len && p.data == buf + 1);
        CHECK(v->raw_len == 0 || memcmp(p.data, v->raw, v->raw_len) == 0);
        free(buf);
    }
    for (size_t i = 0; i < sizeof(b64_bad) / sizeof(b64_bad[0]); i++) {
        size_t tl = b64_bad[i].len;
        uint8_t *buf = malloc(tl + 1);
        buf[0] = 'b';
        memcpy(buf + 1, b64_bad[i].text, tl);
        struct eio_packet p;
        enum eio_status st = eio_parse_packet(buf, tl + 1, &p);
        if (st != EIO_ERR_BASE64)
            fprintf(stderr, "  base64 vector %zu accepted\n", i);
        CHECK_INT(st, EIO_ERR_BASE64);
        free(buf);
    }
    /* Every length 0..100, every byte value, through encoder and decoder. */
    uint8_t raw[256], enc[400];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(i * 167 + 13);
    for (size_t len = 0; len <= 100; len++) {
        size_t n = eio_encode_b64((char *)enc, sizeof(enc), raw, len);
        CHECK_INT(n, eio_b64_size(len));
        uint8_t *buf = dup_exact(enc, n);
        struct eio_packet p;
        CHECK_INT(eio_parse_packet(buf, n, &p), EIO_OK);
        CHECK(p.len == len && (len == 0 || memcmp(p.data, raw, len) == 0));
        free(buf);
    }
    uint8_t all[256];
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (uint8_t)i;
    char big[400];
    size_t n = eio_encode_b64(big, sizeof(big), all, sizeof(all));
    CHECK_INT(n, 1 + 4 * 86);
    uint8_t *buf = dup_exact((const uint8_t *)big, n);
    struct eio_packet p;
    CHECK_INT(eio_parse_packet(buf, n, &p), EIO_OK);
    CHECK(p.len == 256 && memcmp(p.data, all, 256) == 0);
    free(buf);
    /* Non-zero pad bits: every "XY==" with Y's low 4 bits set is refused,
     * every canonical one accepted. */
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int accepted = 0;
    for (int y = 0; y < 64; y++) {
        uint8_t t[5] = {'b', 'Q', (uint8_t)alpha[y], '=', '='};
        enum eio_status st = eio_parse_packet(t, 5, &p);
        CHECK_INT(st, (y & 0x0F) ? EIO_ERR_BASE64 : EIO_OK);
        accepted += st == EIO_OK;
    }
    CHECK_INT(accepted, 4);
    CHECK(eio_b64_size(SIZE_MAX) == SIZE_MAX);
}

/* ---- polling payloads --------------------------------------------------- */

#define LOG_MAX 1024

static void log_append(char *log, size_t *log_len, const char *s, size_t n)
{
    if (*log_len + n >= LOG_MAX)
        n = LOG_MAX - 1 - *log_len;
    memcpy(log + *log_len, s, n);
    *log_len += n;
    log[*log_len] = '\0';
}

/* "4:hello;" for text, "b:\x01\x02;" (hex escapes) for binary. */
static void log_packet(char *log, size_t *log_len, const struct eio_packet *p)
{
    char tmp[8];
    snprintf(tmp, sizeof(tmp), "%c:", p->binary ? 'b' : p->type);
    log_append(log, log_len, tmp, strlen(tmp));
    for (size_t i = 0; i < p->len; i++) {
        uint8_t c = p->data[i];
        if (c < 0x20 || c > 0x7E || c == ';' || c == '\\')
            snprintf(tmp, sizeof(tmp), "\\x%02x", c);
        else
            snprintf(tmp, sizeof(tmp), "%c", c);
        log_append(log, log_len, tmp, strlen(tmp));
    }
    log_append(log, log_len, ";", 1);
}

struct run {
    char log[LOG_MAX];
    size_t log_len;
    size_t packets;
    enum eio_status st; /* EIO_OK: ended with done */
    int bad;            /* broken invariants */
};

static void run_bad(struct run *r, const char *what)
{
    if (r->bad++ == 0)
        fprintf(stderr, "  invariant broken: %s\n", what);
}

/* Iterates a payload to done or error, checking invariants on the way. */
static void run_payload(const uint8_t *bytes, size_t len, struct run *r)
{
    memset(r, 0, sizeof(*r));
    uint8_t *buf = dup_exact(bytes, len);
    size_t off = 0;
    for (size_t calls = 0;; calls++) {
        if (calls > len + 1) {
            run_bad(r, "loop does not end");
            break;
        }
        struct eio_packet p;
        bool done = true;
        size_t before = off;
        enum eio_status st = eio_payload_next(buf, len, &off, &p, &done);
        if (st != EIO_OK) {
            r->st = st;
            if (off != before || done)
                run_bad(r, "error moved off or set done");
            break;
        }
        if (done) {
            r->st = EIO_OK;
            if (off != len || before != len)
                run_bad(r, "done before the end");
            break;
        }
        if (off <= before || off > len)
            run_bad(r, "off not increasing within len");
        if (p.data < buf + before || p.data + p.len > buf + off)
            run_bad(r, "packet outside its span");
        log_packet(r->log, &r->log_len, &p);
        r->packets++;
    }
    free(buf);
}

struct payload_vec {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    enum eio_status want; /* EIO_OK: all packets, then done */
    const char *packets;  /* transcript up to the error */
};

static const struct payload_vec payload_vecs[] = {
    /* engine-io-protocol "Packet encoding". */
    {"doc: hello ping world",
     B("4hello\x1e"
       "2\x1e"
       "4world"),
     EIO_OK, "4:hello;2:;4:world;"},
    {"doc: text and binary",
     B("4hello\x1e"
       "bAQIDBA=="),
     EIO_OK, "4:hello;b:\\x01\\x02\\x03\\x04;"},
    /* engine-io-protocol test suite. */
    {"suite: three texts",
     B("4test1\x1e"
       "4test2\x1e"
       "4test3"),
     EIO_OK, "4:test1;4:test2;4:test3;"},
    {"suite: pong", B("3"), EIO_OK, "3:;"},
    {"suite: close", B("1"), EIO_OK, "1:;"},
    {"suite: invalid packet abc", B("abc"), EIO_ERR_TYPE, ""},
    /* engine.io-parser tests and docs. */
    {"parser: all types",
     B("0\x1e"
       "1\x1e"
       "2probe\x1e"
       "3probe\x1e"
       "4test"),
     EIO_OK, "0:;1:;2:probe;3:probe;4:test;"},
    {"parser: v4 utf-8",
     B("4hello\x1e"
       "4\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"),
     EIO_OK, "4:hello;4:\\xe2\\x82\\xac\\xe2\\x82\\xac\\xe2\\x82\\xac;"},
    {"parser: hello and AQID",
     B("4hello\x1e"
       "bAQID"),
     EIO_OK, "4:hello;b:\\x01\\x02\\x03;"},
    {"parser docs: probe test close",
     B("2probe\x1e"
       "4test\x1e"
       "1"),
     EIO_OK, "2:probe;4:test;1:;"},
    {"parser docs: open message ping",
     B("0{\"sid\":\"abc123\"}\x1e"
       "4user message\x1e"
       "2"),
     EIO_OK, "0:{\"sid\":\"abc123\"};4:user message;2:;"},
    {"parser: malformed {", B("{"), EIO_ERR_TYPE, ""},
    {"parser: malformed {}", B("{}"), EIO_ERR_TYPE, ""},
    {"parser: malformed array", B("[\"a123\", \"a456\"]"), EIO_ERR_TYPE, ""},
    /* socket-io-protocol sample session, request 5. */
    {"sio: two events",
     B("42[\"hello\"]\x1e"
       "42[\"world\"]"),
     EIO_OK, "4:2[\"hello\"];4:2[\"world\"];"},
    /* Edges that are fine. */
    {"single empty message", B("4"), EIO_OK, "4:;"},
    {"empty messages between separators",
     B("4\x1e"
       "4\x1e"
       "4"),
     EIO_OK, "4:;4:;4:;"},
    {"empty binary message", B("b"), EIO_OK, "b:;"},
    {"empty binary then text",
     B("b\x1e"
       "4x"),
     EIO_OK, "b:;4:x;"},
    {"binary that decodes to 0x1e", B("bHg=="), EIO_OK, "b:\\x1e;"},
    {"binary 0x1e then text",
     B("bHg==\x1e"
       "4x"),
     EIO_OK, "b:\\x1e;4:x;"},
    {"binary 0x1e 0x1e",
     B("bHh4=\x1e"
       "4x"),
     EIO_OK, "b:\\x1e\\x1e;4:x;"},
    {"two binaries",
     B("bAQ==\x1e"
       "bAgM="),
     EIO_OK, "b:\\x01;b:\\x02\\x03;"},
    /* Separators in the wrong places. */
    {"empty payload", B(""), EIO_ERR_EMPTY, ""},
    {"separator alone", B("\x1e"), EIO_ERR_EMPTY, ""},
    {"separator at start",
     B("\x1e"
       "4a"),
     EIO_ERR_EMPTY, ""},
    {"separator at end", B("4a\x1e"), EIO_ERR_EMPTY, "4:a;"},
    {"doubled separator",
     B("4a\x1e\x1e"
       "4b"),
     EIO_ERR_EMPTY, "4:a;"},
    {"two separators alone", B("\x1e\x1e"), EIO_ERR_EMPTY, ""},
    {"separator at end after binary", B("bAQ==\x1e"), EIO_ERR_EMPTY, "b:\\x01;"},
    /* Bad packets after good ones. */
    {"unknown type second",
     B("4a\x1e"
       "x"),
     EIO_ERR_TYPE, "4:a;"},
    {"type 7 third",
     B("2\x1e"
       "3\x1e"
       "7"),
     EIO_ERR_TYPE, "2:;3:;"},
    {"bad padding",
     B("4a\x1e"
       "bAQ="),
     EIO_ERR_BASE64, "4:a;"},
    {"bad pad bits",
     B("bAR==\x1e"
       "4a"),
     EIO_ERR_BASE64, ""},
    {"short base64", B("bAQIDBA="), EIO_ERR_BASE64, ""},
    {"url-safe base64", B("b-_-_"), EIO_ERR_BASE64, ""},
    {"base64 with a space", B("bAQ ID"), EIO_ERR_BASE64, ""},
    {"padding in the middle", B("bAQ==AQID"), EIO_ERR_BASE64, ""},
    {"v3 length-prefixed payload is a noop", B("6:4hello"), EIO_OK, "6::4hello;"},
    {"v3 payload with two packets", B("6:4hello2:4x"), EIO_OK, "6::4hello2:4x;"},
};

/* The transcript's first m packets ("...;" m times). */
static size_t transcript_prefix(const char *t, size_t m)
{
    size_t i = 0;
    for (size_t k = 0; k < m; k++) {
        /* Packets are logged with ';' escaped, so each ends at the next ';'. */
        const char *semi = strchr(t + i, ';');
        if (!semi)
            return (size_t)-1;
        i = (size_t)(semi - t) + 1;
    }
    return i;
}

static void test_payloads(void)
{
    for (size_t i = 0; i < sizeof(payload_vecs) / sizeof(payload_vecs[0]); i++) {
        const struct payload_vec *v = &payload_vecs[i];
        struct run r;
        run_payload(v->bytes, v->len, &r);
        if (r.st != v->want || strcmp(r.log, v->packets) != 0 || r.bad)
            fprintf(stderr, "  payload \"%s\": got %s / %s\n    want %s / %s\n", v->name,
                    eio_status_str(r.st), r.log, eio_status_str(v->want), v->packets);
        CHECK_INT(r.st, v->want);
        CHECK_STR(r.log, v->packets);
        CHECK_INT(r.bad, 0);

        /* Cut at each separator: the packets before it, then done (if
         * those packets were all fine in the whole run). */
        size_t m = 0;
        for (size_t k = 0; k < v->len; k++) {
            if (v->bytes[k] != EIO_SEPARATOR)
                continue;
            m++;
            if (m > r.packets)
                break;
            struct run cut;
            run_payload(v->bytes, k, &cut);
            size_t pl = transcript_prefix(v->packets, m);
            bool ok = cut.st == EIO_OK && cut.packets == m && pl == cut.log_len &&
                      memcmp(cut.log, v->packets, pl) == 0 && cut.bad == 0;
            if (!ok)
                fprintf(stderr, "  payload \"%s\" cut at separator %zu: %s / %s\n", v->name, k,
                        eio_status_str(cut.st), cut.log);
            CHECK(ok);
        }
        /* Cut at every byte: invariants hold, and the packets seen before
         * the cut are never more than the whole run saw plus one. */
        for (size_t k = 0; k <= v->len; k++) {
            struct run cut;
            run_payload(v->bytes, k, &cut);
            CHECK_INT(cut.bad, 0);
            CHECK(k == 0 ? cut.st == EIO_ERR_EMPTY : true);
        }
    }
}

/* Packets encoded with our encoders, joined with separators, parse back. */
static void test_payload_roundtrip(void)
{
    static const struct {
        uint8_t type;
        bool binary;
        const char *data;
        size_t len;
    } pk[] = {
        {EIO_MESSAGE, false, "2[\"hello\"]", 10},
        {EIO_PING, false, "probe", 5},
        {EIO_MESSAGE, true, "\x1e\x00\xff", 3},
        {EIO_MESSAGE, false, "", 0},
        {EIO_MESSAGE, true, "", 0},
        {EIO_NOOP, false, "", 0},
        {EIO_MESSAGE, true, "\x01\x02\x03\x04\x05", 5},
        {EIO_OPEN, false, "{}", 2},
    };
    size_t n = sizeof(pk) / sizeof(pk[0]);
    /* Every contiguous run of packets, so each begins and ends a payload. */
    for (size_t a = 0; a < n; a++) {
        for (size_t b = a; b < n; b++) {
            char body[256];
            size_t len = 0;
            for (size_t k = a; k <= b; k++) {
                if (k > a)
                    body[len++] = EIO_SEPARATOR;
                size_t w = pk[k].binary ? eio_encode_b64(body + len, sizeof(body) - len,
                                                         (const uint8_t *)pk[k].data, pk[k].len)
                                        : eio_encode_text(body + len, sizeof(body) - len,
                                                          pk[k].type, pk[k].data, pk[k].len);
                CHECK(w > 0);
                len += w;
            }
            uint8_t *buf = dup_exact((const uint8_t *)body, len);
            size_t off = 0, k = a;
            for (;;) {
                struct eio_packet p;
                bool done;
                enum eio_status st = eio_payload_next(buf, len, &off, &p, &done);
                CHECK_INT(st, EIO_OK);
                if (st != EIO_OK || done)
                    break;
                CHECK(k <= b);
                if (k > b)
                    break;
                CHECK(p.type == (pk[k].binary ? EIO_MESSAGE : pk[k].type));
                CHECK(p.binary == pk[k].binary && p.len == pk[k].len);
                CHECK(p.len == 0 || memcmp(p.data, pk[k].data, p.len) == 0);
                k++;
            }
            CHECK_INT(k, b + 1);
            free(buf);
        }
    }
}

/* ---- encoders ----------------------------------------------------------- */

static void test_encode_open(void)
{
    static const char want_ws[] =
        "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
        "\"pingTimeout\":20000,\"maxPayload\":1000000}";
    static const char want_none[] =
        "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[],\"pingInterval\":25000,"
        "\"pingTimeout\":20000,\"maxPayload\":1000000}";
    /* The socket-io-protocol sample session's open packet. */
    static const char want_session[] =
        "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
        "\"pingTimeout\":5000,\"maxPayload\":1000000}";
    /* The test suites' server configuration. */
    static const char want_suite[] = "0{\"sid\":\"-_09azAZ\",\"upgrades\":[],\"pingInterval\":300,"
                                     "\"pingTimeout\":200,\"maxPayload\":1000000}";
    char out[256];
    size_t n =
        eio_encode_open(out, sizeof(out), "lv_VI97HAXpY6yYWAAAC", true, 25000, 20000, 1000000);
    CHECK_MEM(out, n, want_ws);
    n = eio_encode_open(out, sizeof(out), "lv_VI97HAXpY6yYWAAAC", false, 25000, 20000, 1000000);
    CHECK_MEM(out, n, want_none);
    n = eio_encode_open(out, sizeof(out), "lv_VI97HAXpY6yYWAAAC", true, 25000, 5000, 1000000);
    CHECK_MEM(out, n, want_session);
    n = eio_encode_open(out, sizeof(out), "-_09azAZ", false, 300, 200, 1000000);
    CHECK_MEM(out, n, want_suite);
    n = eio_encode_open(out, sizeof(out), "", false, 0, -1, 9223372036854775807L);
    CHECK_MEM(out, n,
              "0{\"sid\":\"\",\"upgrades\":[],\"pingInterval\":0,\"pingTimeout\":-1,"
              "\"maxPayload\":9223372036854775807}");
    n = eio_encode_open(out, sizeof(out), "x", false, -9223372036854775807L - 1, 1, 1);
    CHECK_MEM(out, n,
              "0{\"sid\":\"x\",\"upgrades\":[],\"pingInterval\":-9223372036854775808,"
              "\"pingTimeout\":1,\"maxPayload\":1}");
    /* Exactly the length fits (no NUL); anything less is refused and the
     * byte after cap is never written. */
    size_t len = sizeof(want_ws) - 1;
    for (size_t cap = 0; cap <= len; cap++) {
        memset(out, '#', sizeof(out));
        n = eio_encode_open(out, cap, "lv_VI97HAXpY6yYWAAAC", true, 25000, 20000, 1000000);
        CHECK_INT(n, cap == len ? len : 0);
        CHECK(out[cap] == '#');
    }
    /* The open packet parses as an open packet whose data is the JSON. */
    n = eio_encode_open(out, sizeof(out), "abc", true, 1, 2, 3);
    struct eio_packet p;
    CHECK_INT(eio_parse_text((const uint8_t *)out, n, &p), EIO_OK);
    CHECK_INT(p.type, EIO_OPEN);
    CHECK_MEM(p.data, p.len,
              "{\"sid\":\"abc\",\"upgrades\":[\"websocket\"],\"pingInterval\":1,\"pingTimeout\":2,"
              "\"maxPayload\":3}");
}

static void test_encode_text(void)
{
    char out[16];
    CHECK_MEM(out, eio_encode_text(out, sizeof(out), EIO_MESSAGE, "hello", 5), "4hello");
    CHECK_MEM(out, eio_encode_text(out, sizeof(out), EIO_PONG, "probe", 5), "3probe");
    CHECK_MEM(out, eio_encode_text(out, sizeof(out), EIO_NOOP, NULL, 0), "6");
    CHECK_MEM(out, eio_encode_text(out, 1, EIO_PING, "", 0), "2");
    CHECK_INT(eio_encode_text(out, 0, EIO_PING, "", 0), 0);
    CHECK_INT(eio_encode_text(out, 5, EIO_MESSAGE, "hello", 5), 0);
    CHECK_INT(eio_encode_text(out, 6, EIO_MESSAGE, "hello", 5), 6);
    CHECK_INT(eio_encode_text(out, sizeof(out), EIO_MESSAGE, "x", SIZE_MAX), 0);
}

static void test_status_str(void)
{
    const char *seen[4];
    for (int st = EIO_OK; st <= EIO_ERR_BASE64; st++) {
        const char *s = eio_status_str((enum eio_status)st);
        CHECK(s && s[0] != '\0');
        seen[st] = s;
        for (int k = 0; k < st; k++)
            CHECK(strcmp(seen[k], s) != 0);
    }
}

int main(void)
{
    test_packets();
    test_base64();
    test_payloads();
    test_payload_roundtrip();
    test_encode_open();
    test_encode_text();
    test_status_str();
    return check_report("test_eio");
}
