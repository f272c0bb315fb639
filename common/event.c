/*
 * event.c - see event.h. Parsing is on the hot path of both processes (every
 * entry of every batch), so it works on the borrowed hiredis strings and
 * allocates nothing.
 */
#include "event.h"
#include "log.h"

#include <hiredis/hiredis.h>
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
        case 'p':
            if (parse_u64(v, vlen, &num) != 0)
                return -1;
            e->token = num;
            break;
        case 'o':
            if (!ev_offset_valid(v, vlen))
                return -1;
            e->offset = v;
            e->offset_len = vlen;
            break;
        case 'v':
            e->recoverable = vlen == 1 && v[0] == '1';
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

/* ---- entries from a hiredis reply ------------------------------------------ */

bool ev_group_progress(const struct redisReply *r, const char **last, long long *pending)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        const char *name = NULL, *l = NULL;
        long long p = -1;
        /* Each group: a flat list of name, value pairs. */
        for (size_t j = 0; g->type == REDIS_REPLY_ARRAY && j + 1 < g->elements; j += 2) {
            const redisReply *k = g->element[j], *v = g->element[j + 1];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                name = v->str;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                p = v->integer;
            else if (strcmp(k->str, "last-delivered-id") == 0 && v->type == REDIS_REPLY_STRING)
                l = v->str;
        }
        if (name && strcmp(name, EV_GROUP) == 0 && l && p >= 0) {
            *last = l;
            *pending = p;
            return true;
        }
    }
    return false;
}

const char *ev_pending_oldest(const struct redisReply *r)
{
    /* [count, smallest id, greatest id, [[consumer, count], ...]] */
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer > 0 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        return r->element[1]->str;
    return NULL;
}

const struct redisReply *ev_reply_entries(const struct redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return NULL;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
        s->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    return s->element[1];
}

int ev_entry_from_reply(struct ev_entry *e, const struct redisReply *en, const char **id)
{
    *id = NULL;
    if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
        en->element[0]->type != REDIS_REPLY_STRING)
        return -1;
    *id = en->element[0]->str;
    const redisReply *fv = en->element[1];
    if (fv->type != REDIS_REPLY_ARRAY || fv->elements > 2 * EV_MAX_FIELDS)
        return 1;
    int rc;
    const char *fields[2 * EV_MAX_FIELDS];
    size_t lens[2 * EV_MAX_FIELDS], nf = 0;
    for (size_t j = 0; j < fv->elements; j++) {
        if (fv->element[j]->type != REDIS_REPLY_STRING)
            break;
        fields[nf] = fv->element[j]->str;
        lens[nf++] = fv->element[j]->len;
    }
    rc = ev_entry_parse(e, fields, lens, nf) == 0 ? 0 : 1;
    e->id = *id;
    e->id_len = en->element[0]->len;
    return rc;
}

bool ev_id_split(const char *s, size_t len, uint64_t *ms, uint64_t *seq)
{
    if (!s || len == 0 || len > EV_OFFSET_MAX)
        return false;
    const char *dash = memchr(s, '-', len);
    return dash && parse_u64(s, (size_t)(dash - s), ms) == 0 &&
           parse_u64(dash + 1, len - (size_t)(dash - s) - 1, seq) == 0;
}

bool ev_presence_scope(const char *word, bool *related)
{
    if (!word || strcmp(word, "all") == 0)
        *related = false;
    else if (strcmp(word, "related") == 0)
        *related = true;
    else
        return false;
    return true;
}

bool ev_offset_valid(const char *s, size_t len)
{
    uint64_t ms, seq;
    return ev_id_split(s, len, &ms, &seq);
}

/* ---- entry encoders --------------------------------------------------------- */

/* "t" <type> "gw" <gw>: how every gateway -> broker entry starts. */
static void enc_from_gw(struct ev_args *a, const char *type, const char *gw)
{
    ev_args_adds(a, "t");
    ev_args_adds(a, type);
    ev_args_adds(a, "gw");
    ev_args_adds(a, gw);
}

static void enc_field_u64(struct ev_args *a, const char *name, uint64_t v)
{
    ev_args_adds(a, name);
    ev_args_add_u64(a, v);
}

static void enc_field_i64(struct ev_args *a, const char *name, int64_t v)
{
    ev_args_adds(a, name);
    ev_args_add_i64(a, v);
}

static void enc_field(struct ev_args *a, const char *name, const char *v, size_t len)
{
    ev_args_adds(a, name);
    ev_args_add(a, v, len);
}

void ev_enc_hello(struct ev_args *a, const char *gw)
{
    enc_from_gw(a, "hello", gw);
}

void ev_enc_sync(struct ev_args *a, const char *gw, const char *ids, size_t ids_len)
{
    enc_from_gw(a, "sync", gw);
    if (ids_len > 0)
        enc_field(a, "c", ids, ids_len);
}

void ev_enc_open(struct ev_args *a, const char *gw, uint64_t conn, int64_t user, const char *kind,
                 uint64_t token, const char *offset)
{
    enc_from_gw(a, "open", gw);
    enc_field_u64(a, "c", conn);
    enc_field_i64(a, "u", user);
    enc_field(a, "k", kind, strlen(kind));
    if (token)
        enc_field_u64(a, "p", token);
    if (offset)
        enc_field(a, "o", offset, strlen(offset));
}

void ev_enc_close(struct ev_args *a, const char *gw, uint64_t conn, bool recoverable)
{
    enc_from_gw(a, "close", gw);
    enc_field_u64(a, "c", conn);
    if (recoverable)
        enc_field(a, "v", "1", 1);
}

void ev_enc_msg(struct ev_args *a, const char *gw, uint64_t conn, int64_t user, const char *event,
                const char *data, size_t dlen, int64_t ack, int64_t ms)
{
    enc_from_gw(a, "msg", gw);
    enc_field_u64(a, "c", conn);
    enc_field_i64(a, "u", user);
    enc_field(a, "e", event, strlen(event));
    enc_field(a, "d", data, dlen);
    if (ack >= 0) {
        enc_field_i64(a, "r", ack);
        enc_field_i64(a, "m", ms);
    }
}

void ev_enc_req(struct ev_args *a, const char *gw, uint64_t conn, uint64_t req, int64_t user,
                const char *event, const char *data, size_t dlen, int64_t ms)
{
    enc_from_gw(a, "req", gw);
    enc_field_u64(a, "c", conn);
    enc_field_u64(a, "r", req);
    if (user > 0)
        enc_field_i64(a, "u", user);
    enc_field(a, "e", event, strlen(event));
    enc_field(a, "d", data, dlen);
    enc_field_i64(a, "m", ms);
}

void ev_enc_notify(struct ev_args *a, const char *event, const char *data, size_t dlen)
{
    enc_field(a, "t", "notify", 6);
    enc_field(a, "e", event, strlen(event));
    enc_field(a, "d", data, dlen);
}

void ev_enc_all(struct ev_args *a, const char *t, const char *event, const char *data, size_t dlen)
{
    enc_field(a, "t", t, strlen(t));
    enc_field(a, "e", event, strlen(event));
    enc_field(a, "d", data, dlen);
}

void ev_enc_conn(struct ev_args *a, const char *ids, size_t ids_len, const char *event,
                 const char *data, size_t dlen)
{
    ev_args_adds(a, "t");
    ev_args_adds(a, "conn");
    enc_field(a, "c", ids, ids_len);
    enc_field(a, "e", event, strlen(event));
    enc_field(a, "d", data, dlen);
}

void ev_enc_reply(struct ev_args *a, uint64_t conn, uint64_t req, int status, const char *data,
                  size_t dlen, int64_t ms)
{
    ev_args_adds(a, "t");
    ev_args_adds(a, "reply");
    enc_field_u64(a, "c", conn);
    enc_field_u64(a, "r", req);
    enc_field_i64(a, "s", status);
    enc_field(a, "d", data, dlen);
    if (ms > 0)
        enc_field_i64(a, "m", ms);
}

void ev_enc_kick(struct ev_args *a, const char *ids, size_t ids_len, int code, const char *word)
{
    ev_args_adds(a, "t");
    ev_args_adds(a, "kick");
    enc_field(a, "c", ids, ids_len);
    enc_field_i64(a, "s", code);
    enc_field(a, "e", word, strlen(word));
}

void ev_enc_ack(struct ev_args *a, uint64_t conn, uint64_t req, const char *data, size_t dlen,
                int64_t ms)
{
    ev_args_adds(a, "t");
    ev_args_adds(a, "ack");
    enc_field_u64(a, "c", conn);
    enc_field_u64(a, "r", req);
    enc_field(a, "d", data, dlen);
    if (ms > 0)
        enc_field_i64(a, "m", ms);
}

void ev_enc_deleted(struct ev_args *a, int64_t user)
{
    ev_args_adds(a, "t");
    ev_args_adds(a, "deleted");
    enc_field_i64(a, "u", user);
}

/* ---- client events and refusals ------------------------------------------- */

/* The contract's client events (docs/PROTOCOL.md §3 for /ws, §4 for
 * Socket.IO). whoami and get-users exist on Socket.IO only (the web page
 * uses them); ping and refresh-token are answered by the gateway. */
static const struct ev_client_event client_events[] = {
    {"get_online_users", "get-online-users", "get_online_users", EV_ANSWER_ONLINE, 0},
    {"get_online_count", "get-online-count", NULL, EV_ANSWER_ONLINE, EV_CLIENT_COUNT},
    {"watch-presence", "watch-presence", "watch-presence", EV_ANSWER_BROKER, 0},
    {"unwatch-presence", "unwatch-presence", "unwatch-presence", EV_ANSWER_BROKER, 0},
    {"livechat", "livechat", "livechat", EV_ANSWER_BROKER, EV_CLIENT_CHAT},
    {"direct_message", "direct_message", "direct_message", EV_ANSWER_BROKER, EV_CLIENT_CHAT},
    {"watch-profile", "watch-profile", "watch-profile", EV_ANSWER_BROKER, 0},
    {"unwatch-profile", "unwatch-profile", "unwatch-profile", EV_ANSWER_BROKER, 0},
    {"join-matchmaking", "join-matchmaking", "join-matchmaking", EV_ANSWER_BROKER, 0},
    {"leave-matchmaking", "leave-matchmaking", "leave-matchmaking", EV_ANSWER_BROKER, 0},
    /* Socket.IO only, as they have always been: /ws answers unknown-type. */
    {NULL, "whoami", "whoami", EV_ANSWER_BROKER, 0},
    {NULL, "get-users", "get-users", EV_ANSWER_BROKER, 0},
    {"get_dm_history", "get-dm-history", "get_dm_history", EV_ANSWER_BROKER, 0},
    {"dm_read", "dm-read", "dm_read", EV_ANSWER_BROKER, 0},
    {"get_unread", "get-unread", "get_unread", EV_ANSWER_BROKER, 0},
    {"get_chat_history", "get-chat-history", "get_chat_history", EV_ANSWER_BROKER, 0},
    {"ping", "ping", NULL, EV_ANSWER_PING, 0},
    {"refresh-token", "refresh-token", NULL, EV_ANSWER_REFRESH_TOKEN, 0},
};

const struct ev_client_event *ev_client_events(size_t *n)
{
    *n = sizeof(client_events) / sizeof(client_events[0]);
    return client_events;
}

const struct ev_client_event *ev_client_event_raw(const char *type, size_t len)
{
    for (size_t i = 0; i < sizeof(client_events) / sizeof(client_events[0]); i++)
        if (client_events[i].raw && ev_is(type, len, client_events[i].raw))
            return &client_events[i];
    return NULL;
}

const struct ev_client_event *ev_client_event_sio(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(client_events) / sizeof(client_events[0]); i++)
        if (client_events[i].sio && ev_is(name, len, client_events[i].sio))
            return &client_events[i];
    return NULL;
}

size_t ev_refusal(char *out, size_t cap, enum ev_refusal_form form, const char *word,
                  const char *message)
{
    static const char *const heads[] = {"[{\"ok\":false,\"error\":\"", "{\"code\":\"",
                                        "{\"error\":\""};
    static const char *const tails[] = {"\"}]", "\"}", "\"}"};
    size_t n = 0;
    const char *parts[] = {heads[form], word, "\",\"message\":\""};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(parts[i]);
        if (n + l > cap)
            return 0;
        memcpy(out + n, parts[i], l);
        n += l;
    }
    for (const char *p = message; *p; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            continue;
        if (n + 1 > cap)
            return 0;
        out[n++] = *p;
    }
    size_t tl = strlen(tails[form]);
    if (n + tl > cap)
        return 0;
    memcpy(out + n, tails[form], tl);
    return n + tl;
}

static const struct ev_name ev_names[] = {
    {"status", "status_update", "user-status-change", NULL},
    {"online_users", "online_users", "get-online-users", NULL},
    {"livechat", "livechat", "livechat", NULL},
    {"direct_message", "direct_message", "direct_message", NULL},
    {"profile-update", "profile-update", "profile-update", NULL},
    {"game-stats-update", "game-stats-update", "game-stats-update", NULL},
    {"account-deleted", "account-deleted", "account-deleted", NULL},
    {"match-found", "match-found", "match-found", NULL},
    {"token-expired", "token-expired", "token-expired", NULL},
    {"error", "error", "error", NULL},
    /* Raw answers holding a list (a Socket.IO client gets them through
     * its callback); dm-unread is also pushed, to Socket.IO as the list. */
    {"dm_history", "dm_history", "dm_history", NULL},
    {"chat_history", "chat_history", "chat_history", NULL},
    {"dm-unread", "dm-unread", "dm-unread", "conversations"},
};

const struct ev_name *ev_name_find(const char *logical, size_t len)
{
    for (size_t i = 0; i < sizeof(ev_names) / sizeof(ev_names[0]); i++)
        if (ev_is(logical, len, ev_names[i].logical))
            return &ev_names[i];
    return NULL;
}

bool ev_json_id(struct json_object *v, int64_t *id)
{
    if (json_object_is_type(v, json_type_int)) {
        *id = json_object_get_int64(v);
        return *id > 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return false;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    /* 18 digits cannot overflow 63 bits. */
    if (n == 0 || n > 18)
        return false;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *id = x;
    return x > 0;
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
