/*
 * event.c - see event.h. Parsing is on the hot path of both processes (every
 * entry of every batch), so it works on the borrowed hiredis strings and
 * allocates nothing.
 */
#include "event.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

bool ev_is(const char *p, size_t len, const char *s)
{
    size_t n = strlen(s);
    return p && len == n && memcmp(p, s, n) == 0;
}

/* Decimal digits only, no sign, fits in 63 bits. Returns 0 or -1. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *out = v;
    return 0;
}

bool ev_ids_next(const char **p, const char *end, uint64_t *id)
{
    const char *s = *p;
    if (!s || s >= end)
        return false;
    const char *comma = memchr(s, ',', (size_t)(end - s));
    const char *stop = comma ? comma : end;
    if (parse_u64(s, (size_t)(stop - s), id) != 0) {
        *p = end;
        return false;
    }
    *p = comma ? comma + 1 : end;
    return true;
}

int ev_entry_parse(struct ev_entry *e, const char *const *fields, const size_t *lens,
                   size_t nfields)
{
    memset(e, 0, sizeof(*e));
    if (nfields % 2 != 0 || nfields > 2 * EV_MAX_FIELDS)
        return -1;
    for (size_t i = 0; i < nfields; i += 2) {
        const char *name = fields[i], *v = fields[i + 1];
        size_t nlen = lens[i], vlen = lens[i + 1];
        uint64_t num;
        if (nlen != 1)
            continue; /* unknown, longer names: ignored */
        switch (name[0]) {
        case 't':
            e->type = v;
            e->type_len = vlen;
            break;
        case 'g':
            break;
        case 'c':
            e->conns = v;
            e->conns_len = vlen;
            e->conn = 0;
            if (memchr(v, ',', vlen) == NULL) {
                if (parse_u64(v, vlen, &num) != 0)
                    return -1;
                e->conn = num;
            }
            break;
        case 'u':
            if (parse_u64(v, vlen, &num) != 0)
                return -1;
            e->user = (int64_t)num;
            break;
        case 'k':
            e->kind = v;
            e->kind_len = vlen;
            break;
        case 'e':
            e->event = v;
            e->event_len = vlen;
            break;
        case 'd':
            e->data = v;
            e->data_len = vlen;
            break;
        case 'r':
            if (parse_u64(v, vlen, &num) != 0)
                return -1;
            e->req = num;
            e->has_req = true;
            break;
        case 's':
            if (parse_u64(v, vlen, &num) != 0 || num > 9999)
                return -1;
            e->status = (int)num;
            break;
        case 'm':
            if (parse_u64(v, vlen, &num) != 0)
                return -1;
            e->ms = (int64_t)num;
            break;
        default:
            break;
        }
    }
    /* "gw" is the one two-letter field. */
    for (size_t i = 0; i < nfields; i += 2)
        if (ev_is(fields[i], lens[i], "gw")) {
            e->gw = fields[i + 1];
            e->gw_len = lens[i + 1];
        }
    return e->type ? 0 : -1;
}

void ev_args_init(struct ev_args *a)
{
    a->argc = 0;
    a->nnums = 0;
}

void ev_args_add(struct ev_args *a, const char *s, size_t len)
{
    /* Builders are filled by our own code with a fixed shape; overflowing
     * is a programming error, not something a peer can cause. Dropping the
     * argument would send a malformed entry (a field without its value). */
    HERALD_ASSERT(a->argc < EV_ARGS_MAX);
    a->argv[a->argc] = s;
    a->argvlen[a->argc] = len;
    a->argc++;
}

void ev_args_adds(struct ev_args *a, const char *s)
{
    ev_args_add(a, s, strlen(s));
}

void ev_args_add_i64(struct ev_args *a, int64_t v)
{
    HERALD_ASSERT(a->nnums < (int)(sizeof(a->nums) / sizeof(a->nums[0])));
    char *buf = a->nums[a->nnums++];
    int n = snprintf(buf, sizeof(a->nums[0]), "%lld", (long long)v);
    ev_args_add(a, buf, (size_t)n);
}

void ev_args_add_u64(struct ev_args *a, uint64_t v)
{
    HERALD_ASSERT(a->nnums < (int)(sizeof(a->nums) / sizeof(a->nums[0])));
    char *buf = a->nums[a->nnums++];
    int n = snprintf(buf, sizeof(a->nums[0]), "%llu", (unsigned long long)v);
    ev_args_add(a, buf, (size_t)n);
}

void ev_args_xadd(struct ev_args *a, const char *key, size_t key_len, long maxlen)
{
    ev_args_init(a);
    ev_args_adds(a, "XADD");
    ev_args_add(a, key, key_len);
    if (maxlen > 0) {
        ev_args_adds(a, "MAXLEN");
        ev_args_adds(a, "~");
        ev_args_add_i64(a, maxlen);
    }
    ev_args_adds(a, "*");
}

static const struct ev_name ev_names[] = {
    {"status", "status_update", "user-status-change"},
    {"online_users", "online_users", "get-online-users"},
    {"livechat", "livechat", "livechat"},
    {"direct_message", "direct_message", "direct_message"},
    {"profile-update", "profile-update", "profile-update"},
    {"game-stats-update", "game-stats-update", "game-stats-update"},
    {"account-deleted", "account-deleted", "account-deleted"},
    {"match-found", "match-found", "match-found"},
    {"token-expired", "token-expired", "token-expired"},
    {"error", "error", "error"},
};

const struct ev_name *ev_name_find(const char *logical, size_t len)
{
    for (size_t i = 0; i < sizeof(ev_names) / sizeof(ev_names[0]); i++)
        if (ev_is(logical, len, ev_names[i].logical))
            return &ev_names[i];
    return NULL;
}

struct json_object *ev_json_parse(const char *json, size_t len, int want)
{
    if (!json || len == 0 || len > INT32_MAX)
        return NULL;
    struct json_tokener *tok = json_tokener_new_ex(EV_JSON_MAX_DEPTH);
    if (!tok)
        return NULL;
    struct json_object *obj = json_tokener_parse_ex(tok, json, (int)len);
    /* The whole input must be one JSON value: trailing bytes are an error. */
    bool ok = obj && json_tokener_get_error(tok) == json_tokener_success &&
              json_tokener_get_parse_end(tok) == len &&
              (want < 0 || json_object_is_type(obj, (enum json_type)want));
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

struct json_object *ev_client_parse(const char *json, size_t len, const char **type,
                                    const char **err)
{
    struct json_object *obj = ev_json_parse(json, len, -1);
    if (!obj) {
        *err = "bad-json";
        return NULL;
    }
    struct json_object *t;
    if (!json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, "type", &t) || !json_object_is_type(t, json_type_string)) {
        json_object_put(obj);
        *err = "bad-type";
        return NULL;
    }
    *type = json_object_get_string(t);
    return obj;
}
