/*
 * fuzz_http.c - libFuzzer target for the HTTP request parser and helpers.
 *
 * Besides looking for crashes and over-reads, it checks the parser's
 * contract on every input: results stay inside the buffer and the limits,
 * every pointer it returns can be read (the bytes are summed), and the parse
 * is split-safe - a prefix needs more bytes or fails with the same status as
 * the whole input, and never succeeds differently. Limits are small so that
 * short inputs reach every limit. The helpers run both on parsed fields and
 * on the raw input, since most fuzz inputs are not valid requests.
 */
#include "http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken invariant is a bug in http.c, not peer misbehaviour: abort so
 * that libFuzzer (or the replay driver under CTest) reports it. */
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const struct http_limits fuzz_limits = {
    .max_request_line = 128,
    .max_head = 512,
    .max_headers = 8,
    .max_body = 4096,
};

/* Keeps the byte sums alive so the reads are not optimised away. */
static volatile unsigned fuzz_sink;

/* Reads every byte of p[0..n) after checking it lies in [base, base+size]. */
static void touch(const char *base, size_t size, const char *p, size_t n)
{
    unsigned sum = 0;
    if (n == 0)
        return;
    FUZZ_ASSERT(p != NULL);
    FUZZ_ASSERT(p >= base && p <= base + size && n <= (size_t)(base + size - p));
    for (size_t i = 0; i < n; i++)
        sum += (unsigned char)p[i];
    fuzz_sink += sum;
}

/* A decoded string holds exactly rc bytes and no NUL before the end. */
static void decode(const char *src, size_t len, size_t dst_size)
{
    char dst[64];
    long rc;
    if (dst_size > sizeof(dst))
        dst_size = sizeof(dst);
    rc = http_percent_decode(src, len, dst, dst_size);
    FUZZ_ASSERT(rc >= -1);
    if (rc >= 0) {
        FUZZ_ASSERT((size_t)rc < dst_size && (size_t)rc <= len);
        FUZZ_ASSERT(strlen(dst) == (size_t)rc);
    } else if (dst_size > 0) {
        FUZZ_ASSERT(dst[0] == '\0');
    }
}

static void helpers_on(const char *base, size_t size, const char *s, size_t n)
{
    const char *val;
    size_t val_len;
    if (http_query_param(s, n, "token", &val, &val_len)) {
        touch(s, n, val, val_len);
        decode(val, val_len, 64);
        decode(val, val_len, 4);
    }
    if (http_cookie_find(s, n, "accessToken", &val, &val_len))
        touch(s, n, val, val_len);
    if (http_cookie_find(s, n, "a", &val, &val_len))
        touch(s, n, val, val_len);
    (void)http_value_has_token(s, n, "upgrade");
    touch(base, size, s, n);
}

/* The fields of a successful parse: in range, in the limits, consistent. */
static void check_request(const char *buf, size_t size, int rc, const struct http_request *req)
{
    size_t head = (size_t)rc;
    const struct http_header *h;

    FUZZ_ASSERT(head <= size && head <= fuzz_limits.max_head);
    FUZZ_ASSERT(req->method_len > 0 && req->target_len > 0);
    FUZZ_ASSERT(req->method_len + 1 + req->target_len + 9 <= fuzz_limits.max_request_line);
    touch(buf, head, req->method, req->method_len);
    touch(buf, head, req->target, req->target_len);
    touch(buf, head, req->path, req->path_len);
    FUZZ_ASSERT(req->path == req->target);
    FUZZ_ASSERT(req->target[0] == '/' || (req->target[0] == '*' && req->target_len == 1));
    if (req->query) {
        touch(buf, head, req->query, req->query_len);
        FUZZ_ASSERT(req->query == req->path + req->path_len + 1);
        FUZZ_ASSERT(req->path_len + 1 + req->query_len == req->target_len);
        FUZZ_ASSERT(req->query[-1] == '?');
    } else {
        FUZZ_ASSERT(req->path_len == req->target_len && req->query_len == 0);
    }
    FUZZ_ASSERT(memchr(req->path, '?', req->path_len) == NULL);
    FUZZ_ASSERT(req->minor_version == 0 || req->minor_version == 1);
    FUZZ_ASSERT(req->num_headers <= fuzz_limits.max_headers);
    FUZZ_ASSERT(req->content_length <= fuzz_limits.max_body);
    if (req->minor_version == 0)
        FUZZ_ASSERT(!req->keep_alive || http_header_find(req, "connection") != NULL);
    for (size_t i = 0; i < req->num_headers; i++) {
        h = &req->headers[i];
        FUZZ_ASSERT(h->name_len > 0);
        touch(buf, head, h->name, h->name_len);
        touch(buf, head, h->value, h->value_len);
        FUZZ_ASSERT(h->name[h->name_len] == ':');
        FUZZ_ASSERT(memchr(h->value, '\r', h->value_len) == NULL);
        FUZZ_ASSERT(memchr(h->value, '\0', h->value_len) == NULL);
        if (h->value_len) {
            FUZZ_ASSERT(h->value[0] != ' ' && h->value[0] != '\t');
            FUZZ_ASSERT(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
        }
    }
    if (req->minor_version == 1)
        FUZZ_ASSERT(http_header_find(req, "host") != NULL);
    FUZZ_ASSERT(http_header_find(req, "transfer-encoding") == NULL);
    if (req->content_length)
        FUZZ_ASSERT(http_header_find(req, "content-length") != NULL);

    /* What the gateway does next. */
    if (req->query)
        helpers_on(buf, size, req->query, req->query_len);
    h = http_header_find(req, "cookie");
    if (h)
        helpers_on(buf, size, h->value, h->value_len);
    decode(req->path, req->path_len, 64);
    decode(req->path, req->path_len, 8);
}

/* Split-safety: parse data[0..k) from an exact-size heap copy (so that an
 * over-read of the prefix is caught too) and compare with the whole. */
static void check_prefix(const char *data, size_t size, size_t k, int rc, int status)
{
    static struct http_request req;
    char *copy = malloc(k ? k : 1);
    int prc, pstatus;
    const char *preason;

    if (!copy)
        return;
    if (k)
        memcpy(copy, data, k);
    prc = http_parse_request(copy, k, &fuzz_limits, &req, &pstatus, &preason);
    free(copy);
    if (prc == -1) {
        /* A prefix only fails with the error the whole input has. */
        FUZZ_ASSERT(rc == -1 && pstatus == status);
    } else if (prc > 0) {
        FUZZ_ASSERT(rc == prc);
    } else {
        FUZZ_ASSERT(prc == 0);
        FUZZ_ASSERT(rc <= 0 || (size_t)rc > k);
    }
    (void)size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_request req;
    const char *buf = (const char *)data;
    const char *reason = NULL;
    int status = -2;
    int rc = http_parse_request(buf, size, &fuzz_limits, &req, &status, &reason);

    FUZZ_ASSERT(rc >= -1);
    if (rc == -1) {
        FUZZ_ASSERT(reason != NULL && reason[0] != '\0');
        FUZZ_ASSERT(status == 400 || status == 411 || status == 413 || status == 414 ||
                    status == 431 || status == 505);
        FUZZ_ASSERT(strcmp(http_status_text(status), "Unknown") != 0);
    } else {
        FUZZ_ASSERT(status == 0 && reason == NULL);
        /* Without a verdict, the input is within the limits seen so far. */
        if (rc == 0)
            FUZZ_ASSERT(size <= fuzz_limits.max_head);
        else
            check_request(buf, size, rc, &req);
    }

    if (size > 0) {
        check_prefix(buf, size, size - 1, rc, status);
        check_prefix(buf, size, size / 2, rc, status);
        check_prefix(buf, size, data[0] % size, rc, status);
    }

    /* The helpers on raw bytes: hostile strings that never parse. */
    helpers_on(buf, size, buf, size);
    decode(buf, size, 64);
    decode(buf, size, 1);
    return 0;
}
