/*
 * http.h - I/O-free HTTP/1.1 request parser (RFC 9112).
 *
 * The gateway feeds the bytes it has read so far; the parser either finds a
 * complete request head and describes it with pointers into the caller's
 * buffer (zero copy, nothing allocated), or says it needs more bytes, or
 * rejects the request with the HTTP status the peer should get. The parser
 * keeps no state between calls: after "need more" the caller calls again
 * with the same buffer grown, so a request split at any byte parses the same.
 *
 * Limits are the caller's (struct http_limits) because they are tighter
 * before authentication and come from the config table.
 */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Hard cap on headers kept per request; the configurable limit is <= this.
 * 64 is far more than browsers send (~20) and keeps struct http_request on
 * the stack at ~2 KB. */
#define HTTP_MAX_HEADERS 64

struct http_header {
    const char *name; /* borrowed from the caller's buffer, not NUL-terminated */
    size_t name_len;
    const char *value; /* leading/trailing spaces and tabs trimmed */
    size_t value_len;
};

struct http_limits {
    size_t max_request_line; /* request line longer than this: 414 */
    size_t max_head;         /* whole head (line + headers) longer: 431 */
    size_t max_headers;      /* more header fields than this: 431 (<= HTTP_MAX_HEADERS) */
    size_t max_body;         /* Content-Length above this: 413 */
};

struct http_request {
    const char *method; /* all pointers borrowed from the caller's buffer */
    size_t method_len;
    const char *target; /* request-target as sent: path plus optional ?query */
    size_t target_len;
    const char *path; /* target up to '?' */
    size_t path_len;
    const char *query; /* after '?', NULL when there is no '?' */
    size_t query_len;
    int minor_version; /* HTTP/1.<minor>: 0 or 1 */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t num_headers;
    size_t content_length; /* 0 when absent */
    bool keep_alive;       /* HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive */
    bool upgrade;          /* Connection header lists the "upgrade" token */
};

/*
 * Parses one request head from buf[0..len).
 * Returns the length of the head (request line + headers + blank line, > 0)
 * when complete; 0 when more bytes are needed (and no limit is exceeded yet);
 * -1 on a bad request, with *status set to the HTTP status to answer
 * (400 malformed, 411 chunked/other Transfer-Encoding (we take no chunked
 * bodies), 413 body too large, 414 request line too long, 431 head too large
 * or too many headers, 505 version not HTTP/1.0 or 1.1) and *reason to a
 * static string for the log. On -1 *req is unspecified.
 * The body (content_length bytes) follows the head; waiting for it is the
 * caller's job.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_request *req, int *status, const char **reason);

/* The *reason of the 431 for "more than max_headers fields" (the other 431
 * is "head too large"), so that a caller can count the two apart by
 * comparing pointers. */
extern const char http_reason_too_many_headers[];

/* Returns the first header named name (case-insensitive), or NULL. */
const struct http_header *http_header_find(const struct http_request *req, const char *name);

/* True when the comma-separated header value lists token (case-insensitive,
 * surrounding whitespace ignored), e.g. "keep-alive, Upgrade" has "upgrade". */
bool http_value_has_token(const char *value, size_t value_len, const char *token);

/*
 * Finds name=value in a query string ("a=1&token=xyz"). On success returns
 * true and points *val and *val_len at the raw (still percent-encoded) value.
 */
bool http_query_param(const char *query, size_t query_len, const char *name, const char **val,
                      size_t *val_len);

/*
 * Finds a cookie in a Cookie header value ("a=1; accessToken=xyz").
 * Returns true and points *val and *val_len at its value (quotes stripped).
 */
bool http_cookie_find(const char *cookie, size_t cookie_len, const char *name, const char **val,
                      size_t *val_len);

/*
 * Percent-decodes src into dst (at most dst_size-1 bytes, NUL-terminated).
 * '+' is left as is (paths and tokens do not use form encoding).
 * Returns the decoded length, or -1 on a bad escape, an encoded NUL, or when
 * dst is too small.
 */
long http_percent_decode(const char *src, size_t src_len, char *dst, size_t dst_size);

/* Reason phrase for a status code ("Not Found"); "Unknown" when unknown. */
const char *http_status_text(int status);

#endif
