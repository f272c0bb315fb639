/*
 * http.c - see http.h. The gateway's first line of defence: every byte a
 * peer sends before the WebSocket upgrade or an HTTP route passes through
 * here, so the parser is strict (RFC 9112 rejections, not repairs) and bounded
 * (the caller's limits are enforced even on a head that is still arriving).
 *
 * Design: one left-to-right pass, a small state machine, one byte at a time.
 * Every decision at byte i depends only on bytes [0, i], and the pass stops
 * at the first byte that proves an error. That is what makes the parser
 * stateless yet split-safe: a prefix of a request either needs more bytes or
 * fails with exactly the status the complete request fails with, and never
 * succeeds differently. The cost is a rescan from byte 0 on every call, which
 * is bounded by max_head (a few KB), as in picohttpparser.
 *
 * Rejections (RFC 9112 unless noted), in the order the pass can meet them:
 *   400  method not a token (§3.1), request-target not origin-form or "*"
 *        (§3.2), malformed HTTP-version (§2.3), CR without LF or bare LF
 *        (§2.2), obs-fold (§5.2), whitespace before the colon (§5.1), a field
 *        name that is not a token or a value with control characters
 *        (RFC 9110 §5.5), bad or conflicting Content-Length (§6.3), no Host
 *        in HTTP/1.1 or more than one Host (§3.2)
 *   411  any Transfer-Encoding (§6.1: we decode no chunked bodies)
 *   413  Content-Length above max_body
 *   414  request line above max_request_line
 *   431  head above max_head, or more fields than max_headers (RFC 6585 §5)
 *   505  a well-formed version other than HTTP/1.0 and HTTP/1.1
 */
#include "http.h"
#include "log.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* Where the pass is. The request-line states are contiguous so that the
 * 414 check can test a range. */
enum http_state {
    HTTP_ST_LEAD,        /* before the request line: empty lines allowed */
    HTTP_ST_LEAD_LF,     /* saw CR of a leading empty line, LF must follow */
    HTTP_ST_METHOD,      /* request line: method token */
    HTTP_ST_TARGET0,     /* first byte of the request-target */
    HTTP_ST_TARGET,      /* origin-form target, after the '/' */
    HTTP_ST_TARGET_STAR, /* asterisk-form: only SP may follow the '*' */
    HTTP_ST_VERSION,     /* "HTTP/x.y" then CR */
    HTTP_ST_LINE_LF,     /* saw CR ending the request line */
    HTTP_ST_FIELD0,      /* first byte of a field line, or CR of the blank line */
    HTTP_ST_NAME,        /* field name */
    HTTP_ST_OWS,         /* whitespace after the colon */
    HTTP_ST_VALUE,       /* field value */
    HTTP_ST_FIELD_LF,    /* saw CR ending a field line */
    HTTP_ST_END_LF,      /* saw CR of the blank line ending the head */
};

/* What the pass remembers about fields whose meaning spans several lines. */
struct http_fields {
    bool have_length; /* a Content-Length was seen; req->content_length holds it */
    int hosts;        /* Host field lines so far */
};

/* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. Methods and field
 * names are tokens. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 9110 §5.5: field-value bytes are VCHAR, SP, HTAB and obs-text
 * (0x80-0xFF, kept for old clients). Everything else is a control character;
 * a NUL or a lone CR/LF in a value is a classic smuggling vector. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Origin-form bytes (RFC 3986 via RFC 9112 §3.2): visible ASCII only.
 * Browsers percent-encode everything else; a raw space, control character
 * or non-ASCII byte means a broken or hostile client. */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Case-insensitive equality of a (pointer, length) with a C string, ASCII
 * only: field names and tokens are ASCII, and the locale must not matter. */
static bool ascii_ieq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)s[i]) != ascii_lower((unsigned char)lit[i]))
            return false;
    return true;
}

/*
 * Content-Length = 1*DIGIT (RFC 9110 §8.6). No sign, no spaces inside, no
 * list: a comma list of equal values is allowed to be repaired, but strict
 * rejection is also allowed and is what makes request smuggling impossible.
 * Returns 0 with *out set, or -1 on a non-digit, empty value or size_t
 * overflow.
 */
static int parse_content_length(const char *s, size_t len, size_t *out)
{
    size_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '0' || c > '9')
            return -1;
        if (v > (SIZE_MAX - (size_t)(c - '0')) / 10)
            return -1;
        v = v * 10 + (size_t)(c - '0');
    }
    *out = v;
    return 0;
}

/*
 * Applies the meaning of one completed field line (the last one in
 * req->headers, already counted). Returns 0, or -1 with *status and *reason set.
 */
static int field_done(struct http_request *req, struct http_fields *f,
                      const struct http_limits *lim, int *status, const char **reason)
{
    const struct http_header *h = &req->headers[req->num_headers - 1];

    if (ascii_ieq(h->name, h->name_len, "Content-Length")) {
        size_t v;
        if (parse_content_length(h->value, h->value_len, &v) != 0) {
            *status = 400;
            *reason = "invalid Content-Length";
            return -1;
        }
        /* RFC 9112 §6.3 rule 5: differing lengths make the framing
         * ambiguous; the same value twice is harmless. */
        if (f->have_length && v != req->content_length) {
            *status = 400;
            *reason = "conflicting Content-Length";
            return -1;
        }
        if (v > lim->max_body) {
            *status = 413;
            *reason = "Content-Length above the body limit";
            return -1;
        }
        f->have_length = true;
        req->content_length = v;
    } else if (ascii_ieq(h->name, h->name_len, "Transfer-Encoding")) {
        /* We read no chunked bodies (or any other coding). RFC 9112 §6.3
         * lets a server demand a length with 411 Length Required; clients
         * such as curl then resend with Content-Length. Rejecting every
         * Transfer-Encoding also rules out the TE + CL smuggling of §6.1. */
        *status = 411;
        *reason = "Transfer-Encoding not supported";
        return -1;
    } else if (ascii_ieq(h->name, h->name_len, "Host")) {
        /* RFC 9112 §3.2: more than one Host is a MUST-400; a proxy and we
         * could otherwise disagree on the origin (Origin checks use it). */
        if (++f->hosts > 1) {
            *status = 400;
            *reason = "more than one Host";
            return -1;
        }
    }
    return 0;
}

/* Sets keep_alive and upgrade from every Connection field (RFC 9112 §9.3:
 * 1.1 persists unless "close"; 1.0 only with "keep-alive"). */
static void connection_options(struct http_request *req)
{
    bool has_close = false, keep = false, upgrade = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (!ascii_ieq(h->name, h->name_len, "Connection"))
            continue;
        has_close |= http_value_has_token(h->value, h->value_len, "close");
        keep |= http_value_has_token(h->value, h->value_len, "keep-alive");
        upgrade |= http_value_has_token(h->value, h->value_len, "upgrade");
    }
    req->keep_alive = !has_close && (req->minor_version == 1 || keep);
    req->upgrade = upgrade;
}

const char http_reason_too_many_headers[] = "too many header fields";

/* Fails the parse: sets the status and the log reason, returns -1. */
#define HTTP_FAIL(code, why)                                                                       \
    do {                                                                                           \
        *status = (code);                                                                          \
        *reason = (why);                                                                           \
        return -1;                                                                                 \
    } while (0)

/*
 * On 0 and on success *status is 0 and *reason NULL. req is written as the
 * pass goes; only a positive return makes it meaningful.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_request *req, int *status, const char **reason)
{
    static const char version_prefix[] = "HTTP/";
    const unsigned char *p = (const unsigned char *)buf;
    /* The return value is an int: a head can never be longer than INT_MAX. */
    size_t max_head = lim->max_head < (size_t)INT_MAX ? lim->max_head : (size_t)INT_MAX;
    size_t max_headers = lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers : HTTP_MAX_HEADERS;
    enum http_state st = HTTP_ST_LEAD;
    struct http_fields fields = {false, 0};
    struct http_header *h = NULL; /* field line being read */
    size_t line = 0;              /* offset where the request line starts */
    size_t mark = 0;              /* start of the token being read */
    size_t value_end = 0;         /* end of the value without trailing OWS */
    size_t qmark = 0;             /* offset of the first '?' in the target, 0: none */
    size_t vpos = 0;              /* bytes of "HTTP/x.y" seen */
    int major = 0;

    HERALD_ASSERT(buf != NULL || len == 0);
    HERALD_ASSERT(lim && req && status && reason);
    *status = 0;
    *reason = NULL;
    req->query = NULL;
    req->query_len = 0;
    req->num_headers = 0;
    req->content_length = 0;
    req->keep_alive = false;
    req->upgrade = false;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];

        /* RFC 9112 §2.2: a server SHOULD ignore at least one empty line
         * before the request line (old clients add CRLF after a body). They
         * still count against max_head, so an endless stream of them ends
         * in 431. */
        if (st == HTTP_ST_LEAD && c != '\r') {
            st = HTTP_ST_METHOD;
            line = i;
        }
        /* Limits are checked per byte so that a peer that never sends CRLF
         * is stopped as soon as it passes the limit, not when the buffer
         * fills. The request line's CR does not count towards its length. */
        if (st >= HTTP_ST_METHOD && st <= HTTP_ST_VERSION && c != '\r' &&
            i - line >= lim->max_request_line)
            HTTP_FAIL(414, "request line too long");
        if (i >= max_head)
            HTTP_FAIL(431, "request head too large");
        /* §2.2 lets a recipient accept a bare LF as a line end; we require
         * CRLF everywhere, because a proxy in front of us that does not
         * would see a different set of lines than we do. Every state but
         * the four "saw CR" ones would reject an LF anyway; this check only
         * gives the log a precise reason. */
        if (c == '\n' && st != HTTP_ST_LEAD_LF && st != HTTP_ST_LINE_LF && st != HTTP_ST_FIELD_LF &&
            st != HTTP_ST_END_LF)
            HTTP_FAIL(400, "bare LF");

        switch (st) {
        case HTTP_ST_LEAD:
            st = HTTP_ST_LEAD_LF;
            break;
        case HTTP_ST_LEAD_LF:
            if (c != '\n')
                HTTP_FAIL(400, "CR without LF");
            st = HTTP_ST_LEAD;
            break;

        /* ---- request-line = method SP request-target SP HTTP-version (§3) */
        case HTTP_ST_METHOD:
            if (is_tchar(c))
                break;
            /* Exactly one SP between the parts: §3 allows lenient parsing
             * of other whitespace, but every lenient step is a place where
             * we and a proxy in front of us could split differently. */
            if (c != ' ' || i == line)
                HTTP_FAIL(400, "invalid method");
            req->method = buf + line;
            req->method_len = i - line;
            st = HTTP_ST_TARGET0;
            break;
        case HTTP_ST_TARGET0:
            /* §3.2: origin-form starts with '/', asterisk-form is "*".
             * absolute-form is for proxies and authority-form for CONNECT;
             * we are an origin server behind at most a reverse proxy, so
             * both are refused rather than half supported. */
            mark = i;
            if (c == '/')
                st = HTTP_ST_TARGET;
            else if (c == '*')
                st = HTTP_ST_TARGET_STAR;
            else
                HTTP_FAIL(400, "invalid request-target");
            break;
        case HTTP_ST_TARGET:
        case HTTP_ST_TARGET_STAR:
            if (c == ' ') {
                req->target = buf + mark;
                req->target_len = i - mark;
                req->path = req->target;
                req->path_len = req->target_len;
                if (qmark) {
                    req->path_len = qmark - mark;
                    req->query = buf + qmark + 1;
                    req->query_len = i - qmark - 1;
                }
                vpos = 0;
                st = HTTP_ST_VERSION;
                break;
            }
            if (st == HTTP_ST_TARGET_STAR || !is_target_char(c))
                HTTP_FAIL(400, "invalid request-target");
            if (c == '?' && !qmark)
                qmark = i;
            break;
        case HTTP_ST_VERSION:
            /* §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, and HTTP-name
             * is case-sensitive. Anything else is not HTTP at all (400);
             * a well-formed other version is 505 once the line is whole. */
            if (vpos < 5) {
                if (c != (unsigned char)version_prefix[vpos])
                    HTTP_FAIL(400, "malformed HTTP version");
            } else if (vpos == 5 || vpos == 7) {
                if (c < '0' || c > '9')
                    HTTP_FAIL(400, "malformed HTTP version");
                if (vpos == 5)
                    major = c - '0';
                else
                    req->minor_version = c - '0';
            } else if (vpos == 6) {
                if (c != '.')
                    HTTP_FAIL(400, "malformed HTTP version");
            } else {
                if (c != '\r')
                    HTTP_FAIL(400, "malformed HTTP version");
                st = HTTP_ST_LINE_LF;
            }
            vpos++;
            break;
        case HTTP_ST_LINE_LF:
            if (c != '\n')
                HTTP_FAIL(400, "CR without LF");
            /* §2.3 suggests serving a higher 1.x minor as 1.1; no client
             * sends one, so only 1.0 and 1.1 exist for us. */
            if (major != 1 || req->minor_version > 1)
                HTTP_FAIL(505, "HTTP version not supported");
            st = HTTP_ST_FIELD0;
            break;

        /* ---- field-line = field-name ":" OWS field-value OWS (§5) ---- */
        case HTTP_ST_FIELD0:
            if (c == '\r') {
                st = HTTP_ST_END_LF;
                break;
            }
            /* §5.2: obs-fold (a line starting with SP/HTAB) MUST be either
             * rejected or replaced; §2.2 says the same of whitespace right
             * after the request line. Rejecting covers both. */
            if (is_ows(c))
                HTTP_FAIL(400, "obsolete line folding");
            if (c == ':')
                HTTP_FAIL(400, "empty field name");
            if (!is_tchar(c))
                HTTP_FAIL(400, "invalid field name");
            if (req->num_headers >= max_headers)
                HTTP_FAIL(431, http_reason_too_many_headers);
            h = &req->headers[req->num_headers];
            h->name = buf + i;
            st = HTTP_ST_NAME;
            break;
        case HTTP_ST_NAME:
            if (is_tchar(c))
                break;
            if (c == ':') {
                h->name_len = (size_t)(buf + i - h->name);
                st = HTTP_ST_OWS;
                break;
            }
            /* §5.1: whitespace between name and colon MUST be answered with
             * 400 ("Host : x" is read as a different field by some proxies). */
            if (is_ows(c))
                HTTP_FAIL(400, "whitespace before colon");
            if (c == '\r')
                HTTP_FAIL(400, "field line without colon");
            HTTP_FAIL(400, "invalid field name");
        case HTTP_ST_OWS:
            if (is_ows(c))
                break;
            mark = i;
            value_end = i;
            if (c == '\r') {
                st = HTTP_ST_FIELD_LF;
                break;
            }
            if (!is_value_char(c))
                HTTP_FAIL(400, "control character in field value");
            value_end = i + 1;
            st = HTTP_ST_VALUE;
            break;
        case HTTP_ST_VALUE:
            if (c == '\r') {
                st = HTTP_ST_FIELD_LF;
                break;
            }
            if (!is_value_char(c))
                HTTP_FAIL(400, "control character in field value");
            /* §5.5: leading and trailing OWS are not part of the value. */
            if (!is_ows(c))
                value_end = i + 1;
            break;
        case HTTP_ST_FIELD_LF:
            if (c != '\n')
                HTTP_FAIL(400, "CR without LF");
            h->value = buf + mark;
            h->value_len = value_end - mark;
            req->num_headers++;
            if (field_done(req, &fields, lim, status, reason) != 0)
                return -1;
            st = HTTP_ST_FIELD0;
            break;
        case HTTP_ST_END_LF:
            if (c != '\n')
                HTTP_FAIL(400, "CR without LF");
            /* §3.2: an HTTP/1.1 request without Host MUST get 400. */
            if (req->minor_version == 1 && fields.hosts == 0)
                HTTP_FAIL(400, "missing Host");
            connection_options(req);
            return (int)(i + 1);
        }
    }
    return 0;
}

const struct http_header *http_header_find(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (ascii_ieq(req->headers[i].name, req->headers[i].name_len, name))
            return &req->headers[i];
    return NULL;
}

/* RFC 9110 §5.6.1: #element lists are comma-separated with OWS around the
 * commas, and empty elements must be tolerated (", , close"). */
bool http_value_has_token(const char *value, size_t value_len, const char *token)
{
    size_t i = 0;
    if (!value || !token)
        return false;
    while (i < value_len) {
        size_t start, end;
        while (i < value_len && (is_ows((unsigned char)value[i]) || value[i] == ','))
            i++;
        start = i;
        while (i < value_len && value[i] != ',')
            i++;
        end = i;
        while (end > start && is_ows((unsigned char)value[end - 1]))
            end--;
        if (end > start && ascii_ieq(value + start, end - start, token))
            return true;
    }
    return false;
}

/*
 * Names are compared raw and case-sensitively (as the application sent them;
 * we never look up a name that needs encoding). A bare "name" without '='
 * is found with an empty value. The first match wins, so a client cannot
 * append a second "token=" to override one a proxy inspected.
 */
bool http_query_param(const char *query, size_t query_len, const char *name, const char **val,
                      size_t *val_len)
{
    size_t name_len, i = 0;
    if (!query || !name || (name_len = strlen(name)) == 0)
        return false;
    while (i < query_len) {
        size_t start = i, key_end, end;
        while (i < query_len && query[i] != '&')
            i++;
        end = i++;
        key_end = start;
        while (key_end < end && query[key_end] != '=')
            key_end++;
        if (key_end - start == name_len && memcmp(query + start, name, name_len) == 0) {
            size_t v = key_end < end ? key_end + 1 : end;
            *val = query + v;
            *val_len = end - v;
            return true;
        }
    }
    return false;
}

/*
 * RFC 6265 §4.2.1: cookie-pair *( ";" SP cookie-pair ); we also accept no
 * space or several spaces/tabs, as browsers and libraries differ. Names are
 * case-sensitive (§5.4 compares them octet by octet). A value in double
 * quotes is returned without them; an opening quote that is never closed is
 * a malformed cookie and reads as absent, not as a value with a quote in it.
 * The first pair with the name wins (browsers send the most specific first).
 */
bool http_cookie_find(const char *cookie, size_t cookie_len, const char *name, const char **val,
                      size_t *val_len)
{
    size_t name_len, i = 0;
    if (!cookie || !name || (name_len = strlen(name)) == 0)
        return false;
    while (i < cookie_len) {
        size_t start, end, eq, ks, ke, vs, ve;
        while (i < cookie_len && (is_ows((unsigned char)cookie[i]) || cookie[i] == ';'))
            i++;
        start = i;
        while (i < cookie_len && cookie[i] != ';')
            i++;
        end = i;
        eq = start;
        while (eq < end && cookie[eq] != '=')
            eq++;
        if (eq == end)
            continue; /* no '=': a nameless cookie (RFC 6265bis), not ours */
        ks = start;
        ke = eq;
        while (ke > ks && is_ows((unsigned char)cookie[ke - 1]))
            ke--;
        if (ke - ks != name_len || memcmp(cookie + ks, name, name_len) != 0)
            continue;
        vs = eq + 1;
        ve = end;
        while (vs < ve && is_ows((unsigned char)cookie[vs]))
            vs++;
        while (ve > vs && is_ows((unsigned char)cookie[ve - 1]))
            ve--;
        if (vs < ve && cookie[vs] == '"') {
            if (ve - vs < 2 || cookie[ve - 1] != '"')
                return false;
            vs++;
            ve--;
        }
        *val = cookie + vs;
        *val_len = ve - vs;
        return true;
    }
    return false;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = ascii_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * RFC 3986 §2.1. An encoded NUL (and a raw one) is refused because the
 * result is used as a C string: "alice%00admin" must not become "alice".
 * On -1, dst (when dst_size > 0) holds an empty string, so a caller that
 * ignores the error still sees nothing.
 */
long http_percent_decode(const char *src, size_t src_len, char *dst, size_t dst_size)
{
    size_t out = 0, cap;
    if (!dst || dst_size == 0)
        return -1;
    /* The result is a long; no real buffer comes near LONG_MAX anyway. */
    cap = dst_size - 1 < (size_t)LONG_MAX ? dst_size - 1 : (size_t)LONG_MAX;
    dst[0] = '\0';
    for (size_t i = 0; i < src_len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            int hi, lo;
            if (src_len - i < 3)
                goto fail;
            hi = hex_value((unsigned char)src[i + 1]);
            lo = hex_value((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                goto fail;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || out >= cap)
            goto fail;
        dst[out++] = (char)c;
    }
    dst[out] = '\0';
    return (long)out;
fail:
    dst[0] = '\0';
    return -1;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large"; /* RFC 9110 §15.5.14, was "Payload Too Large" */
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Unknown";
}
