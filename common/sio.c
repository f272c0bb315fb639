/*
 * sio.c - Socket.IO v5 packet codec, see sio.h.
 *
 * How it is used: the gateway hands every Engine.IO text message to
 * sio_parse(), then dispatches on the type and namespace; for events it
 * splits off the name with sio_event_split() and passes the arguments on
 * without building a JSON tree. Packets are chat and presence messages, a
 * few hundred bytes, so one linear pass over the header and one over the
 * JSON is the whole cost.
 *
 * Decoding follows socket.io-parser's Decoder.decodeString() field by field
 * (type digit, "<n>-" for binary types, "/nsp," when the next byte is '/',
 * ack id digits, JSON), with these deliberate differences, all of which
 * reject input the reference would have read some other, surprising way:
 *  - the attachment count must be 1+ decimal digits: the reference compares
 *    with JS loose equality, so "5-" (empty), " 1-" or "0x1-" pass there;
 *    it must be at least 1 (as in the released parser; upstream main has
 *    started to accept 0) and at most SIO_MAX_ATTACHMENTS (the reference's
 *    default limit is 10);
 *  - the payload must start right after the header with '[' or '{': the
 *    reference's digit test is also loose (" " == 0 in JS), so "2 [...]"
 *    becomes ack id 0 there;
 *  - an ack id must fit in 2^53-1 (beyond that JS numbers lose digits), and
 *    is only allowed on EVENT/ACK types; ACK types must carry one;
 *  - a namespace runs to ',' as in the reference, but running to the end of
 *    the packet ("0/admin", sent by real clients) is accepted only for
 *    CONNECT/DISCONNECT, whose payload is optional; it may not hold control
 *    characters (so no 0x1e can reach a polling payload through it);
 *  - payloads are strict RFC 8259 JSON up to SIO_MAX_JSON_DEPTH; the
 *    reference uses JSON.parse() with no depth limit;
 *  - EVENT needs a payload and its first element must be a string: the
 *    reference lets "2" through with no data and also accepts a number as
 *    the event name (used by its client for a feature we do not serve);
 *  - CONNECT_ERROR must carry an object (v5); the reference still accepts a
 *    plain string from v4 peers.
 * Matched on purpose: the reserved event names the reference refuses
 * ("connect", "disconnect", ... see sio_reserved[]) are refused here too,
 * compared after JSON unescaping as JSON.parse() would.
 *
 * The JSON check is a recursive-descent validator that allocates nothing.
 * Its depth rule is json-c's (JSON_TOKENER_DEFAULT_DEPTH = 32: a value
 * nested in 32 or more containers is refused, an empty container there is
 * not), so whatever passes here also parses with json_tokener_new_ex(32)
 * when the gateway later needs the values.
 */
#include "sio.h"
#include "log.h"

#include <string.h>

const char *sio_status_str(enum sio_status st)
{
    switch (st) {
    case SIO_OK:
        return "ok";
    case SIO_ERR_EMPTY:
        return "empty packet";
    case SIO_ERR_TYPE:
        return "unknown packet type";
    case SIO_ERR_ATTACHMENTS:
        return "bad attachment count";
    case SIO_ERR_NAMESPACE:
        return "bad namespace";
    case SIO_ERR_ACK_ID:
        return "bad ack id";
    case SIO_ERR_PAYLOAD:
        return "bad payload";
    }
    return "unknown status";
}

/* ---- JSON validation (RFC 8259) ---------------------------------------- */

#define JSON_BAD ((size_t)-1)

static bool json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && json_ws(s[i]))
        i++;
    return i;
}

/* s[i] is '"'. Returns the index after the closing quote, or JSON_BAD.
 * §7: control characters must be escaped; escapes are the eight single
 * characters and \uXXXX. Bytes >= 0x80 pass unchecked (UTF-8 validity is
 * the transport's job: ws.c checks text frames). */
static size_t json_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return JSON_BAD;
        if (c != '\\')
            continue;
        if (++i >= len)
            return JSON_BAD;
        switch (s[i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;
        case 'u':
            if (len - i <= 4)
                return JSON_BAD;
            for (int k = 1; k <= 4; k++)
                if (hex_value(s[i + k]) < 0)
                    return JSON_BAD;
            i += 4;
            break;
        default:
            return JSON_BAD;
        }
    }
    return JSON_BAD;
}

/* §6: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static size_t json_number(const char *s, size_t len, size_t i)
{
    if (i < len && s[i] == '-')
        i++;
    if (i >= len || !is_digit(s[i]))
        return JSON_BAD;
    if (s[i] == '0')
        i++;
    else
        while (i < len && is_digit(s[i]))
            i++;
    if (i < len && s[i] == '.') {
        if (++i >= len || !is_digit(s[i]))
            return JSON_BAD;
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !is_digit(s[i]))
            return JSON_BAD;
        while (i < len && is_digit(s[i]))
            i++;
    }
    return i;
}

static size_t json_literal(const char *s, size_t len, size_t i, const char *lit)
{
    size_t n = strlen(lit);
    if (len - i < n || memcmp(s + i, lit, n) != 0)
        return JSON_BAD;
    return i + n;
}

/*
 * One value starting exactly at s[i] (no leading whitespace), nested in
 * depth containers. Returns the index after it, or JSON_BAD. Recursion is
 * bounded by SIO_MAX_JSON_DEPTH.
 */
static size_t json_value(const char *s, size_t len, size_t i, unsigned depth)
{
    if (depth >= SIO_MAX_JSON_DEPTH || i >= len)
        return JSON_BAD;
    switch (s[i]) {
    case '[':
        i = skip_ws(s, len, i + 1);
        if (i < len && s[i] == ']')
            return i + 1;
        for (;;) {
            i = json_value(s, len, i, depth + 1);
            if (i == JSON_BAD)
                return JSON_BAD;
            i = skip_ws(s, len, i);
            if (i >= len)
                return JSON_BAD;
            if (s[i] == ']')
                return i + 1;
            if (s[i] != ',')
                return JSON_BAD;
            i = skip_ws(s, len, i + 1);
        }
    case '{':
        i = skip_ws(s, len, i + 1);
        if (i < len && s[i] == '}')
            return i + 1;
        for (;;) {
            if (i >= len || s[i] != '"')
                return JSON_BAD;
            i = json_string(s, len, i);
            if (i == JSON_BAD)
                return JSON_BAD;
            i = skip_ws(s, len, i);
            if (i >= len || s[i] != ':')
                return JSON_BAD;
            i = json_value(s, len, skip_ws(s, len, i + 1), depth + 1);
            if (i == JSON_BAD)
                return JSON_BAD;
            i = skip_ws(s, len, i);
            if (i >= len)
                return JSON_BAD;
            if (s[i] == '}')
                return i + 1;
            if (s[i] != ',')
                return JSON_BAD;
            i = skip_ws(s, len, i + 1);
        }
    case '"':
        return json_string(s, len, i);
    case 't':
        return json_literal(s, len, i, "true");
    case 'f':
        return json_literal(s, len, i, "false");
    case 'n':
        return json_literal(s, len, i, "null");
    default:
        return json_number(s, len, i);
    }
}

/* The whole of s[0..len) is one JSON value, optionally followed (never
 * preceded) by whitespace. */
static bool json_valid_text(const char *s, size_t len)
{
    size_t end = json_value(s, len, 0, 0);
    return end != JSON_BAD && skip_ws(s, len, end) == len;
}

/* ---- event names -------------------------------------------------------- */

/* socket.io-parser's RESERVED_EVENTS: names with a meaning of their own on
 * one side or the other, refused as event names on the wire. */
static const char *const sio_reserved[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

/* Longest reserved name, plus one so a longer name never matches. */
#define SIO_RESERVED_MAX 16

/*
 * Whether the JSON string body name[0..len) (escapes included, quotes not)
 * decodes to a reserved name. Only ASCII is decoded: every reserved name is
 * ASCII, so anything else cannot match.
 */
static bool sio_name_reserved(const char *name, size_t len)
{
    char dec[SIO_RESERVED_MAX];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (n == sizeof(dec))
            return false;
        if (c == '\\') {
            /* The string was validated, so the escape is complete. Reserved
             * names are letters and '_': only \uXXXX can spell one. */
            if (name[++i] != 'u')
                return false;
            int v = 0;
            for (int k = 1; k <= 4; k++)
                v = v * 16 + hex_value(name[i + k]);
            i += 4;
            if (v == 0 || v >= 0x80)
                return false;
            c = (char)v;
        }
        dec[n++] = c;
    }
    for (size_t k = 0; k < sizeof(sio_reserved) / sizeof(sio_reserved[0]); k++)
        if (strlen(sio_reserved[k]) == n && memcmp(sio_reserved[k], dec, n) == 0)
            return true;
    return false;
}

/* sio_event_split() on text already known to be valid JSON starting with
 * '[': after the first element comes ',' or ']', and the last non-blank
 * byte is the array's ']'. */
static int event_split_valid(const char *data, size_t len, const char **name, size_t *name_len,
                             const char **args, size_t *args_len)
{
    size_t i = skip_ws(data, len, 1);
    if (data[i] != '"')
        return -1; /* empty array, or a first element that is not a string */
    size_t end = json_string(data, len, i);
    *name = data + i + 1;
    *name_len = end - i - 2;
    i = skip_ws(data, len, end);
    size_t close = len - 1;
    while (json_ws(data[close]))
        close--;
    if (data[i] == ']') {
        *args = data + i;
        *args_len = 0;
    } else {
        *args = data + i + 1;
        *args_len = close - (i + 1);
    }
    return 0;
}

int sio_event_split(const char *data, size_t len, const char **name, size_t *name_len,
                    const char **args, size_t *args_len)
{
    if (!data || !json_valid_text(data, len) || data[0] != '[')
        return -1;
    return event_split_valid(data, len, name, name_len, args, args_len);
}

/* ---- packets ------------------------------------------------------------ */

static bool sio_binary_type(uint8_t type)
{
    return type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK;
}

static bool sio_ack_type(uint8_t type)
{
    return type == SIO_ACK || type == SIO_BINARY_ACK;
}

static bool sio_event_type(uint8_t type)
{
    return type == SIO_EVENT || type == SIO_BINARY_EVENT;
}

/* The outer shape each type's payload must have (data non-NULL). */
static enum sio_status sio_check_payload(uint8_t type, const char *data, size_t len)
{
    /* The reference would read leading blanks as an ack id (see the top of
     * the file): only '[' or '{' may follow the header. */
    if (data[0] != '[' && data[0] != '{')
        return SIO_ERR_PAYLOAD;
    if (!json_valid_text(data, len))
        return SIO_ERR_PAYLOAD;
    switch (type) {
    case SIO_CONNECT:
    case SIO_CONNECT_ERROR:
        return data[0] == '{' ? SIO_OK : SIO_ERR_PAYLOAD;
    case SIO_ACK:
    case SIO_BINARY_ACK:
        return data[0] == '[' ? SIO_OK : SIO_ERR_PAYLOAD;
    case SIO_EVENT:
    case SIO_BINARY_EVENT: {
        const char *name, *args;
        size_t name_len, args_len;
        if (data[0] != '[' || event_split_valid(data, len, &name, &name_len, &args, &args_len) != 0)
            return SIO_ERR_PAYLOAD;
        return sio_name_reserved(name, name_len) ? SIO_ERR_PAYLOAD : SIO_OK;
    }
    default: /* DISCONNECT carries nothing */
        return SIO_ERR_PAYLOAD;
    }
}

enum sio_status sio_parse(const char *buf, size_t len, struct sio_packet *p)
{
    p->type = 0;
    p->attachments = 0;
    p->nsp = "/";
    p->nsp_len = 1;
    p->ack_id = -1;
    p->data = NULL;
    p->data_len = 0;
    if (len == 0)
        return SIO_ERR_EMPTY;
    if (buf[0] < '0' || buf[0] > '6')
        return SIO_ERR_TYPE;
    p->type = (uint8_t)(buf[0] - '0');
    size_t i = 1;

    /* "<n>-": the number of binary messages that follow this one. */
    if (sio_binary_type(p->type)) {
        size_t start = i;
        unsigned n = 0;
        while (i < len && is_digit(buf[i])) {
            n = n * 10 + (unsigned)(buf[i] - '0');
            if (n > SIO_MAX_ATTACHMENTS)
                return SIO_ERR_ATTACHMENTS;
            i++;
        }
        /* 0 is refused as by the released socket.io-parser (4.2.7, "n < 1"):
         * its encoder never labels a packet binary without binary data. */
        if (i == start || n == 0 || i >= len || buf[i] != '-')
            return SIO_ERR_ATTACHMENTS;
        p->attachments = n;
        i++;
    } else {
        size_t j = i;
        while (j < len && is_digit(buf[j]))
            j++;
        if (j > i && j < len && buf[j] == '-')
            return SIO_ERR_ATTACHMENTS; /* "21-[...]": a count on a non-binary type */
    }

    /* "/nsp,": present when the next byte is '/'. */
    if (i < len && buf[i] == '/') {
        size_t start = i;
        while (i < len && buf[i] != ',') {
            unsigned char c = (unsigned char)buf[i];
            if (c < 0x20 || c == 0x7F || i - start >= SIO_MAX_NAMESPACE)
                return SIO_ERR_NAMESPACE;
            i++;
        }
        p->nsp = buf + start;
        p->nsp_len = i - start;
        if (i == len) {
            /* "0/admin": the reference reads the namespace to the end of the
             * packet; only types without a required payload can end here. */
            if (p->type != SIO_CONNECT && p->type != SIO_DISCONNECT)
                return SIO_ERR_NAMESPACE;
            return SIO_OK;
        }
        i++; /* the ',' */
    }

    /* Ack id: digits right before the payload. */
    if (i < len && is_digit(buf[i])) {
        if (!sio_event_type(p->type) && !sio_ack_type(p->type))
            return SIO_ERR_ACK_ID;
        uint64_t id = 0;
        while (i < len && is_digit(buf[i])) {
            id = id * 10 + (uint64_t)(buf[i] - '0');
            if (id > SIO_MAX_ACK_ID)
                return SIO_ERR_ACK_ID;
            i++;
        }
        p->ack_id = (int64_t)id;
    } else if (sio_ack_type(p->type)) {
        return SIO_ERR_ACK_ID; /* an ACK answers an id */
    }

    if (i == len) {
        if (p->type == SIO_CONNECT || p->type == SIO_DISCONNECT)
            return SIO_OK;
        return SIO_ERR_PAYLOAD;
    }
    enum sio_status st = sio_check_payload(p->type, buf + i, len - i);
    if (st != SIO_OK)
        return st;
    p->data = buf + i;
    p->data_len = len - i;
    return SIO_OK;
}

/* ---- encoder ------------------------------------------------------------ */

static size_t put_u64(char *out, size_t cap, size_t o, uint64_t v)
{
    char tmp[24];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (o == 0 || cap - o < sizeof(tmp) - n)
        return 0;
    memcpy(out + o, tmp + n, sizeof(tmp) - n);
    return o + sizeof(tmp) - n;
}

size_t sio_encode_header(char *out, size_t cap, uint8_t type, const char *nsp, size_t nsp_len,
                         unsigned attachments, int64_t ack_id)
{
    /* Preconditions: our own values, never a peer's unchecked bytes. A
     * namespace from sio_parse() satisfies them. */
    HERALD_ASSERT(type <= SIO_BINARY_ACK);
    HERALD_ASSERT(nsp_len == 0 || (nsp && nsp[0] == '/' && !memchr(nsp, ',', nsp_len)));
    HERALD_ASSERT(ack_id <= SIO_MAX_ACK_ID);
    size_t o = 0;
    if (cap < 1)
        return 0;
    out[o++] = (char)('0' + type);
    if (sio_binary_type(type)) {
        o = put_u64(out, cap, o, attachments);
        if (o == 0 || cap - o < 1)
            return 0;
        out[o++] = '-';
    }
    if (nsp_len > 0 && !(nsp_len == 1 && nsp[0] == '/')) {
        if (cap - o < nsp_len + 1)
            return 0;
        memcpy(out + o, nsp, nsp_len);
        o += nsp_len;
        out[o++] = ',';
    }
    if (ack_id >= 0)
        o = put_u64(out, cap, o, (uint64_t)ack_id);
    return o;
}
