/*
 * test_http.c - vectors for the HTTP/1.1 request parser and its helpers.
 *
 * Every request, valid or hostile, is also parsed at every truncation and
 * every split point: a valid head must need more bytes until its last byte
 * and then parse identically however it arrived; a hostile one may need more
 * bytes or fail, but only ever with its own status. Inputs are copied so they
 * end against a guard page, so an over-read faults even without ASan.
 */
#include "http.h"
#include "check.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Small limits keep the limit vectors short. */
static const struct http_limits lim = {
    .max_request_line = 256,
    .max_head = 1024,
    .max_headers = 16,
    .max_body = 65536,
};

/* A configurable header limit above the hard cap is clamped to it. */
static const struct http_limits lim_wide = {
    .max_request_line = 8192,
    .max_head = 65536,
    .max_headers = 1000,
    .max_body = 65536,
};

/* A literal with its length: vectors may contain NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

/* ---- guard page: data is placed so that its last byte ends a page ------ */

#define ARENA_SIZE (64 * 1024)
static char *arena_end;

static void arena_init(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (ARENA_SIZE + page - 1) / page;
    char *map =
        mmap(NULL, (pages + 1) * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    arena_end = map + pages * page;
    if (mprotect(arena_end, page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(1);
    }
}

/* Returns a copy of data[0..len) whose end touches the guard page. */
static const char *guarded(const char *data, size_t len)
{
    if (len > ARENA_SIZE) {
        fprintf(stderr, "vector too long for the arena\n");
        exit(1);
    }
    memcpy(arena_end - len, data, len);
    return arena_end - len;
}

static int parse(const char *data, size_t len, const struct http_limits *l,
                 struct http_request *req, int *status, const char **reason)
{
    return http_parse_request(guarded(data, len), len, l, req, status, reason);
}

/* ---- comparing two parses of the same bytes held in different buffers -- */

/* Offset of p in buf, or -1 for NULL, so that parses of copies compare. */
static long off(const char *p, const char *buf)
{
    return p ? (long)(p - buf) : -1;
}

static bool same_request(const struct http_request *a, const char *abuf,
                         const struct http_request *b, const char *bbuf)
{
    if (off(a->method, abuf) != off(b->method, bbuf) || a->method_len != b->method_len ||
        off(a->target, abuf) != off(b->target, bbuf) || a->target_len != b->target_len ||
        off(a->path, abuf) != off(b->path, bbuf) || a->path_len != b->path_len ||
        off(a->query, abuf) != off(b->query, bbuf) || a->query_len != b->query_len ||
        a->minor_version != b->minor_version || a->num_headers != b->num_headers ||
        a->content_length != b->content_length || a->keep_alive != b->keep_alive ||
        a->upgrade != b->upgrade)
        return false;
    for (size_t i = 0; i < a->num_headers; i++) {
        const struct http_header *x = &a->headers[i], *y = &b->headers[i];
        if (off(x->name, abuf) != off(y->name, bbuf) || x->name_len != y->name_len ||
            off(x->value, abuf) != off(y->value, bbuf) || x->value_len != y->value_len)
            return false;
    }
    return true;
}

/* ---- valid requests ----------------------------------------------------- */

struct valid_vec {
    const char *name;
    const char *data;
    size_t len;
    size_t head_len; /* 0: the whole input is the head */
    const char *method;
    const char *path;
    const char *query; /* NULL: no '?' */
    int minor;
    size_t num_headers;
    size_t content_length;
    bool keep_alive;
    bool upgrade;
    const char *hname; /* a header to look up, or NULL */
    const char *hvalue;
};

static const struct valid_vec valid_vecs[] = {
    {"get with headers",
     S("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\n"
       "Accept: */*\r\n\r\n"),
     0, "GET", "/index.html", NULL, 1, 3, 0, true, false, "user-agent", "test/1.0"},
    {"query split at first ?",
     S("GET /users/search?q=al%20ice&limit=5 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "GET",
     "/users/search", "q=al%20ice&limit=5", 1, 1, 0, true, false, "HOST", "a"},
    {"second ? belongs to the query", S("GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "GET", "/a",
     "b?c", 1, 1, 0, true, false, NULL, NULL},
    {"empty query", S("GET /? HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "GET", "/", "", 1, 1, 0, true,
     false, NULL, NULL},
    {"1.1 close", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 0, "GET", "/", NULL,
     1, 2, 0, false, false, "connection", "close"},
    {"1.1 close among tokens", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE \r\n\r\n"), 0,
     "GET", "/", NULL, 1, 2, 0, false, false, "connection", "foo, CLOSE"},
    {"1.1 close in a second Connection",
     S("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"), 0,
     "GET", "/", NULL, 1, 3, 0, false, false, NULL, NULL},
    {"1.0 default closes", S("GET / HTTP/1.0\r\n\r\n"), 0, "GET", "/", NULL, 0, 0, 0, false, false,
     NULL, NULL},
    {"1.0 keep-alive", S("GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0, "GET", "/x", NULL,
     0, 1, 0, true, false, NULL, NULL},
    {"1.0 keep-alive and close", S("GET /x HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), 0,
     "GET", "/x", NULL, 0, 1, 0, false, false, NULL, NULL},
    {"post with body after the head",
     S("POST /live_chat_message HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
       "Content-Length: 17\r\n\r\n{\"message\":\"hi\"}\n"),
     sizeof("POST /live_chat_message HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            "Content-Length: 17\r\n\r\n") -
         1,
     "POST", "/live_chat_message", NULL, 1, 3, 17, true, false, "content-length", "17"},
    {"content-length with leading zeros",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n"), 0, "POST", "/", NULL, 1, 2, 7,
     true, false, NULL, NULL},
    {"duplicate equal content-length",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello"),
     sizeof("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n") - 1,
     "POST", "/", NULL, 1, 3, 5, true, false, NULL, NULL},
    {"content-length at the body limit",
     S("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n"), 0, "PUT", "/", NULL, 1, 2,
     65536, true, false, NULL, NULL},
    {"chrome websocket upgrade",
     S("GET /ws HTTP/1.1\r\n"
       "Host: localhost:8080\r\n"
       "Connection: Upgrade\r\n"
       "Pragma: no-cache\r\n"
       "Cache-Control: no-cache\r\n"
       "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/120.0.0.0 Safari/537.36\r\n"
       "Upgrade: websocket\r\n"
       "Origin: http://localhost:8080\r\n"
       "Sec-WebSocket-Version: 13\r\n"
       "Accept-Encoding: gzip, deflate, br\r\n"
       "Accept-Language: en-US,en;q=0.9\r\n"
       "Cookie: theme=dark; accessToken=eyJhbGciOiJIUzI1NiJ9.e30.sig\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"),
     0, "GET", "/ws", NULL, 1, 13, 0, true, true, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
    {"firefox websocket upgrade",
     S("GET /ws?token=abc HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, Upgrade\r\n"
       "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
       "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\r\n"),
     0, "GET", "/ws", "token=abc", 1, 5, 0, true, true, "upgrade", "websocket"},
    {"lowercase method is a valid token", S("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "get", "/",
     NULL, 1, 1, 0, true, false, NULL, NULL},
    {"asterisk-form", S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "OPTIONS", "*", NULL, 1, 1, 0,
     true, false, NULL, NULL},
    {"values trimmed", S("GET / HTTP/1.1\r\nHost:a\r\nX-Pad: \t a b \t \r\n\r\n"), 0, "GET", "/",
     NULL, 1, 2, 0, true, false, "x-pad", "a b"},
    {"empty values", S("GET / HTTP/1.1\r\nHost:\r\nX-Empty:   \r\n\r\n"), 0, "GET", "/", NULL, 1, 2,
     0, true, false, "x-empty", ""},
    {"obs-text in a value", S("GET / HTTP/1.1\r\nHost: a\r\nX-Name: J\xc3\xb6rg\r\n\r\n"), 0, "GET",
     "/", NULL, 1, 2, 0, true, false, "x-name", "J\xc3\xb6rg"},
    {"colon in a value", S("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), 0, "GET", "/", NULL,
     1, 1, 0, true, false, "host", "example.com:8080"},
    {"token characters in names", S("GET / HTTP/1.1\r\nHost: a\r\nX!#$%&'*+-.^_`|~9: v\r\n\r\n"), 0,
     "GET", "/", NULL, 1, 2, 0, true, false, "x!#$%&'*+-.^_`|~9", "v"},
    {"empty lines before the request line", S("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0,
     "GET", "/", NULL, 1, 1, 0, true, false, NULL, NULL},
    {"pipelined request left alone",
     S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
     sizeof("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n") - 1, "GET", "/1", NULL, 1, 1, 0, true, false,
     NULL, NULL},
    {"upgrade token but 1.0", S("GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n"), 0, "GET", "/",
     NULL, 0, 1, 0, false, true, NULL, NULL},
};

/*
 * Parses v whole, at every truncation and split in two at every offset.
 * Returns the complete parse in *out (and the buffer it points into).
 */
static void check_valid_bytes(const char *name, const char *data, size_t len, size_t head_len,
                              const struct http_limits *l, struct http_request *out,
                              const char **out_buf)
{
    static struct http_request ref, req;
    int status = -2, rc;
    const char *reason = "unset";
    const char *buf;
    char *grow;

    if (head_len == 0)
        head_len = len;
    rc = parse(data, len, l, &ref, &status, &reason);
    if (rc != (int)head_len)
        fprintf(stderr, "valid vector \"%s\": rc %d status %d (%s)\n", name, rc, status,
                reason ? reason : "");
    CHECK_INT(rc, head_len);
    CHECK_INT(status, 0);
    CHECK(reason == NULL);
    buf = arena_end - len;

    /* Every truncation: need more until the head is whole, then the same. */
    for (size_t k = 0; k < len; k++) {
        rc = parse(data, k, l, &req, &status, &reason);
        if (k < head_len) {
            if (rc != 0)
                fprintf(stderr, "valid vector \"%s\" cut at %zu: rc %d status %d\n", name, k, rc,
                        status);
            CHECK_INT(rc, 0);
        } else {
            CHECK_INT(rc, head_len);
            CHECK(same_request(&req, arena_end - k, &ref, buf));
        }
    }

    /* Every split: the gateway's pattern (parse, read more into the same
     * buffer, parse again) gives the same request as one read. */
    grow = malloc(len ? len : 1);
    if (!grow)
        exit(1);
    for (size_t k = 1; k < len; k++) {
        memset(grow, 0xAA, len);
        memcpy(grow, data, k);
        rc = http_parse_request(grow, k, l, &req, &status, &reason);
        CHECK_INT(rc, k < head_len ? 0 : (int)head_len);
        memcpy(grow + k, data + k, len - k);
        rc = http_parse_request(grow, len, l, &req, &status, &reason);
        CHECK_INT(rc, head_len);
        CHECK(same_request(&req, grow, &ref, buf));
    }
    free(grow);

    /* Re-parse last so that out points into the arena copy of data. */
    parse(data, len, l, out, &status, &reason);
    *out_buf = arena_end - len;
}

static void test_valid_vectors(void)
{
    static struct http_request req;
    const char *buf;

    for (size_t i = 0; i < sizeof(valid_vecs) / sizeof(valid_vecs[0]); i++) {
        const struct valid_vec *v = &valid_vecs[i];
        check_valid_bytes(v->name, v->data, v->len, v->head_len, &lim, &req, &buf);
        CHECK_MEM(req.method, req.method_len, v->method);
        CHECK_MEM(req.path, req.path_len, v->path);
        if (v->query)
            CHECK_MEM(req.query, req.query_len, v->query);
        else
            CHECK(req.query == NULL && req.query_len == 0);
        CHECK_INT(req.target_len, req.path_len + (req.query ? req.query_len + 1 : 0));
        CHECK(req.target == req.path);
        CHECK_INT(req.minor_version, v->minor);
        CHECK_INT(req.num_headers, v->num_headers);
        CHECK_INT(req.content_length, v->content_length);
        CHECK_INT(req.keep_alive, v->keep_alive);
        CHECK_INT(req.upgrade, v->upgrade);
        if (v->hname) {
            const struct http_header *h = http_header_find(&req, v->hname);
            CHECK(h != NULL);
            if (h)
                CHECK_MEM(h->value, h->value_len, v->hvalue);
        }
        if (req.num_headers != v->num_headers || req.keep_alive != v->keep_alive)
            fprintf(stderr, "  in valid vector \"%s\"\n", v->name);
        (void)buf;
    }
}

/* ---- hostile requests --------------------------------------------------- */

struct bad_vec {
    const char *name;
    const char *data;
    size_t len;
    int status;
};

static const struct bad_vec bad_vecs[] = {
    /* request line */
    {"empty method", S(" / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"NUL in method", S("GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"separator in method", S("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"tab after method", S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"two spaces after method", S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"target without leading slash", S("GET index.html HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form target", S("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"authority-form target", S("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"asterisk with more", S("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"space inside target", S("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"NUL in target", S("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"control char in target", S("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"tab in target", S("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"DEL in target", S("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"raw UTF-8 in target", S("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"HTTP/0.9 request", S("GET /\r\n\r\n"), 400},
    {"no version", S("GET / \r\nHost: a\r\n\r\n"), 400},
    {"bad version name", S("GET / HTTX/1.1\r\nHost: a\r\n\r\n"), 400},
    {"lowercase version name", S("GET / http/1.1\r\nHost: a\r\n\r\n"), 400},
    {"version without minor", S("GET / HTTP/1\r\nHost: a\r\n\r\n"), 400},
    {"two-digit minor", S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400},
    {"two-digit major", S("GET / HTTP/11.1\r\nHost: a\r\n\r\n"), 400},
    {"space after version", S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400},
    {"HTTP/2.0", S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/1.2", S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/0.9 version", S("GET / HTTP/0.9\r\n\r\n"), 505},
    {"h2 preface", S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505},
    /* line endings */
    {"CR without LF in request line", S("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400},
    {"CR without LF in a field", S("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400},
    {"CR without LF at the end", S("GET / HTTP/1.1\r\nHost: a\r\n\rX"), 400},
    {"bare LF line endings", S("GET / HTTP/1.1\nHost: a\n\n"), 400},
    {"bare LF before request", S("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CR CR before request", S("\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* field lines */
    {"missing colon", S("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), 400},
    {"space before colon", S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400},
    {"tab before colon", S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400},
    {"empty field name", S("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), 400},
    {"separator in name", S("GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"), 400},
    {"NUL in name", S("GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n"), 400},
    {"NUL in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 400},
    {"NUL leading value", S("GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n"), 400},
    {"control char in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n"), 400},
    {"DEL in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), 400},
    {"bare LF in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\nY: b\r\n\r\n"), 400},
    {"obs-fold", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n"), 400},
    {"obs-fold with tab", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tfolded\r\n\r\n"), 400},
    {"whitespace before first field", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400},
    {"missing Host in 1.1", S("GET / HTTP/1.1\r\nX: a\r\n\r\n"), 400},
    {"two Host fields", S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    /* framing */
    {"content-length overflow",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400},
    {"content-length 2^64",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n"), 400},
    {"content-length too large", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n"),
     413},
    {"content-length 2^64-1",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n"), 413},
    {"conflicting content-length",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400},
    {"negative content-length", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400},
    {"plus sign content-length", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"),
     400},
    {"empty content-length", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"), 400},
    {"content-length list", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), 400},
    {"content-length with space", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"),
     400},
    {"hex content-length", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), 400},
    {"chunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 411},
    {"TE and CL smuggling",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
     411},
    {"empty transfer-encoding", S("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:\r\n\r\n"), 411},
    {"first error wins", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\nX : y\r\n\r\n"),
     413},
};

/* Whole and every truncation: need more, or the vector's own status. */
static void check_bad_bytes(const char *name, const char *data, size_t len,
                            const struct http_limits *l, int want)
{
    static struct http_request req;
    int status = 0, rc;
    const char *reason = NULL;

    rc = parse(data, len, l, &req, &status, &reason);
    if (rc != -1 || status != want)
        fprintf(stderr, "bad vector \"%s\": rc %d status %d, expected %d\n", name, rc, status,
                want);
    CHECK_INT(rc, -1);
    CHECK_INT(status, want);
    CHECK(reason != NULL && reason[0] != '\0');
    CHECK(strcmp(http_status_text(status), "Unknown") != 0);
    for (size_t k = 0; k < len; k++) {
        rc = parse(data, k, l, &req, &status, &reason);
        if (rc != 0 && (rc != -1 || status != want))
            fprintf(stderr, "bad vector \"%s\" cut at %zu: rc %d status %d\n", name, k, rc, status);
        CHECK(rc == 0 || (rc == -1 && status == want));
    }
}

static void test_bad_vectors(void)
{
    for (size_t i = 0; i < sizeof(bad_vecs) / sizeof(bad_vecs[0]); i++)
        check_bad_bytes(bad_vecs[i].name, bad_vecs[i].data, bad_vecs[i].len, &lim,
                        bad_vecs[i].status);
}

/* ---- limits: built vectors around each boundary ------------------------- */

/* Appends s to buf at *n. */
static void put(char *buf, size_t *n, const char *s)
{
    size_t l = strlen(s);
    memcpy(buf + *n, s, l);
    *n += l;
}

static void put_fill(char *buf, size_t *n, char c, size_t count)
{
    memset(buf + *n, c, count);
    *n += count;
}

static void test_limits(void)
{
    static char buf[70000];
    static struct http_request req;
    const char *b;
    size_t n;
    int status;
    const char *reason;

    /* Request line of exactly max_request_line bytes (CRLF not counted). */
    n = 0;
    put(buf, &n, "GET /");
    put_fill(buf, &n, 'a', lim.max_request_line - strlen("GET / HTTP/1.1"));
    put(buf, &n, " HTTP/1.1");
    CHECK_INT(n, lim.max_request_line);
    put(buf, &n, "\r\nHost: a\r\n\r\n");
    check_valid_bytes("request line at the limit", buf, n, 0, &lim, &req, &b);
    CHECK_INT(req.path_len, lim.max_request_line - strlen("GET  HTTP/1.1"));

    /* One byte more: 414, complete or not. */
    n = 0;
    put(buf, &n, "GET /");
    put_fill(buf, &n, 'a', lim.max_request_line + 1 - strlen("GET / HTTP/1.1"));
    put(buf, &n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    check_bad_bytes("request line over the limit", buf, n, &lim, 414);

    /* Incomplete: no CRLF ever arrives; 414 as soon as the line passes the
     * limit, 0 up to it (a CR at the limit may still end a legal line). */
    n = 0;
    put(buf, &n, "GET /");
    put_fill(buf, &n, 'a', 4000);
    CHECK_INT(parse(buf, lim.max_request_line, &lim, &req, &status, &reason), 0);
    CHECK_INT(parse(buf, lim.max_request_line + 1, &lim, &req, &status, &reason), -1);
    CHECK_INT(status, 414);
    check_bad_bytes("request line too long while incomplete", buf, n, &lim, 414);
    memcpy(buf + lim.max_request_line - 9, " HTTP/1.1\r", 10);
    CHECK_INT(parse(buf, lim.max_request_line + 1, &lim, &req, &status, &reason), 0);

    /* max_headers fields are fine, one more is 431. */
    n = 0;
    put(buf, &n, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 1; i < lim.max_headers; i++)
        put(buf, &n, "X: y\r\n");
    put(buf, &n, "\r\n");
    check_valid_bytes("max_headers fields", buf, n, 0, &lim, &req, &b);
    CHECK_INT(req.num_headers, lim.max_headers);
    n -= 2;
    put(buf, &n, "X: y\r\n\r\n");
    check_bad_bytes("too many fields", buf, n, &lim, 431);

    /* The configurable field limit never exceeds HTTP_MAX_HEADERS. */
    n = 0;
    put(buf, &n, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 1; i < HTTP_MAX_HEADERS; i++)
        put(buf, &n, "X: y\r\n");
    put(buf, &n, "\r\n");
    CHECK_INT(parse(buf, n, &lim_wide, &req, &status, &reason), n);
    CHECK_INT(req.num_headers, HTTP_MAX_HEADERS);
    n -= 2;
    put(buf, &n, "X: y\r\n\r\n");
    check_bad_bytes("fields over the hard cap", buf, n, &lim_wide, 431);

    /* A head of exactly max_head bytes parses; one byte more is 431. */
    n = 0;
    put(buf, &n, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    put_fill(buf, &n, 'v', lim.max_head - n - 4);
    put(buf, &n, "\r\n\r\n");
    CHECK_INT(n, lim.max_head);
    check_valid_bytes("head at the limit", buf, n, 0, &lim, &req, &b);
    n = 0;
    put(buf, &n, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    put_fill(buf, &n, 'v', lim.max_head - n - 3);
    put(buf, &n, "\r\n\r\n");
    check_bad_bytes("head over the limit", buf, n, &lim, 431);

    /* Incomplete head that keeps growing: 431 once past max_head. */
    n = 0;
    put(buf, &n, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 12; i++) {
        put(buf, &n, "X-Long: ");
        put_fill(buf, &n, 'z', 100);
        put(buf, &n, "\r\n");
    }
    CHECK(n > lim.max_head);
    CHECK_INT(parse(buf, lim.max_head, &lim, &req, &status, &reason), 0);
    check_bad_bytes("head too large while incomplete", buf, n, &lim, 431);

    /* Empty lines before the request line count towards max_head. */
    n = 0;
    for (size_t i = 0; i < lim.max_head; i += 2)
        put(buf, &n, "\r\n");
    put(buf, &n, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    check_bad_bytes("endless empty lines", buf, n, &lim, 431);

    /* Zero limits reject everything but still need a byte to do so. */
    {
        const struct http_limits zero = {0, 0, 0, 0};
        CHECK_INT(http_parse_request("", 0, &zero, &req, &status, &reason), 0);
        CHECK_INT(parse("G", 1, &zero, &req, &status, &reason), -1);
        CHECK_INT(status, 414);
    }
}

/*
 * Inputs the fuzzer reached new code with (tests/fuzz/corpus/http), kept as
 * ordinary vectors. None of them broke the parser; they pin edge cases the
 * hand-written tables did not have.
 */
static void test_fuzz_inputs(void)
{
    static struct http_request req;
    const char *b, *val;
    size_t val_len;
    const struct http_header *h;

    /* Leading zeros do not count towards overflow; the value still does. */
    check_valid_bytes("content-length with 50 leading zeros",
                      S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:"
                        "0000000000000000000000000000000000000000000000000065536\r\n\r\n"),
                      0, &lim, &req, &b);
    CHECK_INT(req.content_length, 65536);
    check_bad_bytes("leading zeros then a large value",
                    S("ET /1 HTTP/1.1\r\nt: \r\nContent-Length:"
                      "0000000000000000000000000000000000000000000000122978293824714430\r\n"),
                    &lim, 413);
    check_bad_bytes("empty lines then a bare CR", S("\r\n\r\n\r\n\r\n\r\n\r\0\0\0"), &lim, 400);
    check_bad_bytes("asterisk and a version without minor", S("S * HTTP/2\r\n"), &lim, 400);

    /* An empty query value is found, and is empty. */
    check_valid_bytes("empty token in the query", S("G /?token= HTTP/1.1\r\nHost:\r\n\r\n&token="),
                      30, &lim, &req, &b);
    CHECK(http_query_param(req.query, req.query_len, "token", &val, &val_len));
    CHECK_INT(val_len, 0);

    /* A quoted empty cookie between empty pairs. */
    check_valid_bytes("empty quoted cookie",
                      S("GT / HTTP/1.1\r\nHost:\r\nCookie:; a=\"\";\r\n\r\n"), 0, &lim, &req, &b);
    h = http_header_find(&req, "cookie");
    CHECK(h && http_cookie_find(h->value, h->value_len, "a", &val, &val_len));
    CHECK_INT(val_len, 0);

    /* An unbalanced quote hides that cookie only. */
    check_valid_bytes("unbalanced cookie quote",
                      S("GT /w HTTP/1.1\r\nHost:\xcc\r\n"
                        "Cookie: ak; accesTs:ken=; n=\";2=daa; aesccTs:ke%=\r\n\r\n"),
                      0, &lim, &req, &b);
    h = http_header_find(&req, "cookie");
    CHECK(h != NULL);
    if (h) {
        CHECK(!http_cookie_find(h->value, h->value_len, "n", &val, &val_len));
        CHECK(http_cookie_find(h->value, h->value_len, "2", &val, &val_len));
        CHECK_MEM(val, val_len, "daa");
        CHECK(http_cookie_find(h->value, h->value_len, "accesTs:ken", &val, &val_len));
        CHECK_INT(val_len, 0);
    }
}

/* ---- helpers ------------------------------------------------------------ */

static void test_header_find(void)
{
    static struct http_request req;
    int status;
    const char *reason;
    const char *d = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-AB: 3\r\n\r\n";
    const struct http_header *h;

    CHECK_INT(parse(d, strlen(d), &lim, &req, &status, &reason), strlen(d));
    h = http_header_find(&req, "x-A");
    CHECK(h != NULL);
    if (h)
        CHECK_MEM(h->value, h->value_len, "1"); /* the first one */
    CHECK(http_header_find(&req, "X") == NULL);
    CHECK(http_header_find(&req, "X-ABC") == NULL);
    CHECK(http_header_find(&req, "") == NULL);
    h = http_header_find(&req, "x-ab");
    CHECK(h != NULL);
    if (h)
        CHECK_MEM(h->name, h->name_len, "X-AB");
}

static void test_value_has_token(void)
{
    static const struct {
        const char *value;
        const char *token;
        bool want;
    } v[] = {
        {"keep-alive, Upgrade", "upgrade", true},
        {"keep-alive, Upgrade", "keep-alive", true},
        {"Upgrade", "UPGRADE", true},
        {"  upgrade  ", "upgrade", true},
        {"\tupgrade\t,", "upgrade", true},
        {", , close", "close", true},
        {"upgraded", "upgrade", false},
        {"xupgrade", "upgrade", false},
        {"up grade", "upgrade", false},
        {"upgrade;q=1", "upgrade", false},
        {"", "upgrade", false},
        {",,,", "upgrade", false},
        {"close", "", false},
        {",,,", "", false},
        {"", "", false},
        {"a,b,c", "c", true},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].value);
        bool got = http_value_has_token(guarded(v[i].value, n), n, v[i].token);
        if (got != v[i].want)
            fprintf(stderr, "has_token(\"%s\", \"%s\")\n", v[i].value, v[i].token);
        CHECK_INT(got, v[i].want);
    }
    CHECK(!http_value_has_token(NULL, 0, "close"));
    /* Only value_len bytes count. */
    CHECK(!http_value_has_token("clos", 4, "close"));
    CHECK(http_value_has_token("close, x", 5, "close"));
}

static void test_query_param(void)
{
    static const struct {
        const char *query;
        const char *name;
        const char *want; /* NULL: not found */
    } v[] = {
        {"a=1&token=xyz", "token", "xyz"},
        {"token=xyz&a=1", "token", "xyz"},
        {"a=1&token=xyz&b=2", "token", "xyz"},
        {"token=first&token=second", "token", "first"},
        {"tok=1&tokens=2", "token", NULL},
        {"xtoken=1", "token", NULL},
        {"token", "token", ""},
        {"token=", "token", ""},
        {"a=1&&token=x", "token", "x"},
        {"&&&", "token", NULL},
        {"", "token", NULL},
        {"=x", "token", NULL},
        {"=x", "", NULL},
        {"Token=x", "token", NULL},
        {"token=a=b", "token", "a=b"},
        {"q=al%20ice", "q", "al%20ice"},
        {"token=x;y=z", "token", "x;y=z"},
    };
    const char *val;
    size_t val_len;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].query);
        const char *q = guarded(v[i].query, n);
        bool got = http_query_param(q, n, v[i].name, &val, &val_len);
        if (got != (v[i].want != NULL))
            fprintf(stderr, "query_param(\"%s\", \"%s\")\n", v[i].query, v[i].name);
        CHECK_INT(got, v[i].want != NULL);
        if (got && v[i].want) {
            CHECK_MEM(val, val_len, v[i].want);
            CHECK(val >= q && val + val_len <= q + n);
        }
    }
    CHECK(!http_query_param(NULL, 0, "token", &val, &val_len));
    CHECK(!http_query_param("token=1", 3, "token", &val, &val_len));
    CHECK(http_query_param("token=1&x", 7, "token", &val, &val_len));
    CHECK_MEM(val, val_len, "1");
}

static void test_cookie_find(void)
{
    static const struct {
        const char *cookie;
        const char *name;
        const char *want; /* NULL: not found */
    } v[] = {
        {"a=1; accessToken=xyz", "accessToken", "xyz"},
        {"accessToken=xyz; a=1", "accessToken", "xyz"},
        {"a=1;accessToken=xyz", "accessToken", "xyz"},
        {"a=1;   \taccessToken=xyz  ", "accessToken", "xyz"},
        {"accessToken=\"xyz\"", "accessToken", "xyz"},
        {"accessToken=\"\"", "accessToken", ""},
        {"accessToken=", "accessToken", ""},
        {"accessToken=\"xyz", "accessToken", NULL},
        {"accessToken=\"", "accessToken", NULL},
        {"accessToken=xyz\"", "accessToken", "xyz\""},
        {"accesstoken=xyz", "accessToken", NULL},
        {"xaccessToken=1; accessToken2=2", "accessToken", NULL},
        {"accessToken=first; accessToken=second", "accessToken", "first"},
        {"accessToken; a=1", "accessToken", NULL},
        {"noequals; accessToken=x", "accessToken", "x"},
        {";;; ;", "accessToken", NULL},
        {"", "accessToken", NULL},
        {"=x", "", NULL},
        {"a=b=c", "a", "b=c"},
        {"accessToken =x", "accessToken", "x"},
    };
    const char *val;
    size_t val_len;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].cookie);
        const char *c = guarded(v[i].cookie, n);
        bool got = http_cookie_find(c, n, v[i].name, &val, &val_len);
        if (got != (v[i].want != NULL))
            fprintf(stderr, "cookie_find(\"%s\", \"%s\")\n", v[i].cookie, v[i].name);
        CHECK_INT(got, v[i].want != NULL);
        if (got && v[i].want) {
            CHECK_MEM(val, val_len, v[i].want);
            CHECK(val >= c && val + val_len <= c + n);
        }
    }
    CHECK(!http_cookie_find(NULL, 0, "a", &val, &val_len));
    CHECK(http_cookie_find("a=12; b=3", 3, "a", &val, &val_len));
    CHECK_MEM(val, val_len, "1");
}

static void test_percent_decode(void)
{
    static const struct {
        const char *src;
        size_t src_len;
        size_t dst_size;
        long want;
        const char *out; /* expected dst (empty after an error) */
    } v[] = {
        {S("plain"), 16, 5, "plain"},
        {S("al%20ice"), 16, 6, "al ice"},
        {S("%2Fa%2fb"), 16, 4, "/a/b"},
        {S("a+b"), 16, 3, "a+b"},
        {S("%e2%82%AC"), 16, 3, "\xe2\x82\xac"},
        {S(""), 1, 0, ""},
        {S("abc"), 4, 3, "abc"}, /* exact fit */
        {S("abcd"), 4, -1, ""},  /* one byte short */
        {S("a%41"), 2, -1, ""},  /* short after decoding */
        {S("a%41"), 3, 2, "aA"}, /* fits after decoding */
        {S("%"), 16, -1, ""},    /* truncated escape */
        {S("%4"), 16, -1, ""},   /* truncated escape */
        {S("ab%"), 16, -1, ""},  /* escape at the end */
        {S("%G1"), 16, -1, ""},  /* bad hex */
        {S("%1G"), 16, -1, ""},  /* bad hex */
        {S("% 1"), 16, -1, ""},  /* bad hex */
        {S("%-1"), 16, -1, ""},  /* strtol would take a sign */
        {S("%00"), 16, -1, ""},  /* encoded NUL */
        {S("alice%00admin"), 16, -1, ""},
        {S("a\0b"), 16, -1, ""},    /* raw NUL */
        {S("%%41"), 16, -1, ""},    /* no double decoding */
        {S("%2541"), 16, 3, "%41"}, /* decoded once only */
        {S("x"), 0, -1, NULL},      /* no room at all */
    };
    char dst[16];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const char *src = guarded(v[i].src, v[i].src_len);
        long got;
        memset(dst, 'Z', sizeof(dst));
        got = http_percent_decode(src, v[i].src_len, dst, v[i].dst_size);
        if (got != v[i].want)
            fprintf(stderr, "percent_decode vector %zu: got %ld\n", i, got);
        CHECK_INT(got, v[i].want);
        if (v[i].out)
            CHECK_STR(dst, v[i].out);
        else
            CHECK(dst[0] == 'Z'); /* dst_size 0: not written */
    }
}

static void test_status_text(void)
{
    static const struct {
        int status;
        const char *text;
    } v[] = {
        {101, "Switching Protocols"},
        {200, "OK"},
        {202, "Accepted"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {411, "Length Required"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
        {0, "Unknown"},
        {-1, "Unknown"},
        {299, "Unknown"},
        {999, "Unknown"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        CHECK_STR(http_status_text(v[i].status), v[i].text);
}

int main(void)
{
    arena_init();
    test_valid_vectors();
    test_bad_vectors();
    test_limits();
    test_fuzz_inputs();
    test_header_find();
    test_value_has_token();
    test_query_param();
    test_cookie_find();
    test_percent_decode();
    test_status_text();
    return check_report("test_http");
}
