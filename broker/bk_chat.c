/*
 * bk_chat.c - live chat, direct messages, the chat rate; see bk_chat.h.
 *
 * The rate is a token bucket per user (cfg.chat_burst messages, refilled at
 * cfg.chat_rate per second), shared by chat and DMs on every endpoint and
 * gateway since the broker sees them all. Buckets are kept on an LRU list
 * and forgotten once full again, so memory follows the users who chat now,
 * not everyone who ever did.
 */
#include "bk_chat.h"

#include "bk_feed.h"
#include "bk_out.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* A chat bucket idle this long is forgotten even if not full (rate 0). */
#define BK_RATE_IDLE_MS (10 * 60 * 1000)
/* Stored DMs past their retention are deleted this often. */
#define BK_DM_PRUNE_EVERY_MS (60 * 60 * 1000)
/* A history page: default and most rows. */
#define BK_DM_PAGE 50
#define BK_DM_PAGE_MAX 100

/* Wall-clock ms since the epoch: the "ts" of stored messages. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rate_cmp(const struct bk_rate *a, const struct bk_rate *b)
{
    return a->user < b->user ? -1 : a->user > b->user;
}
RB_GENERATE_INTERNAL(bk_rate_tree, bk_rate, node, rate_cmp, static __attribute__((unused)))

/* Who is speaking: the connection's user, or for HTTP the token's user.
 * Returns true with *id and name set, false after answering auth-required
 * or unknown-user. */
static bool sender_of(struct bk *b, const struct bk_origin *o, int64_t *id, char *name, size_t size)
{
    const struct bk_user *u;
    if (o->c) {
        u = o->c->user;
        HERALD_ASSERT(u != NULL); /* the msg table refuses guests first */
    } else {
        u = o->e->user > 0 ? bk_user_find(b, o->e->user) : NULL;
        if (!u || !u->username[0]) {
            struct bk_user_row row;
            if (o->e->user <= 0) {
                bk_answer_error(b, o, 401, "auth-required", "log in first");
                return false;
            }
            if (bk_store_user_by_id(&b->store, o->e->user, &row) != 1) {
                /* A valid token whose user we do not know: the same word
                 * as at connection time, so the developer sees why. */
                bk_answer_error(b, o, 401, "unknown-user", "unknown user");
                return false;
            }
            *id = row.id;
            snprintf(name, size, "%s", row.username);
            return true;
        }
    }
    *id = u->id;
    snprintf(name, size, "%s", u->username);
    return true;
}

/* The chat message of args, checked. Returns NULL after answering. */
static const char *chat_message(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct json_object *v;
    if (!args || !json_object_object_get_ex(args, "message", &v) ||
        !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
        bk_answer_error(b, o, 400, "bad-field", "message must be a non-empty string");
        return NULL;
    }
    const char *m = json_object_get_string(v);
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)m; *p; p++)
        chars += (*p & 0xC0) != 0x80; /* count code points, not bytes */
    if (chars > b->cfg.chat_max_length) {
        bk_answer_error(b, o, 413, "message-too-long", "the message is too long");
        return NULL;
    }
    return m;
}

/* Takes one message from the user's bucket. Returns false after answering
 * rate-limited. */
static bool rate_take(struct bk *b, const struct bk_origin *o, int64_t user)
{
    int64_t now = bk_now(b);
    struct bk_rate key = {.user = user};
    struct bk_rate *r = RB_FIND(bk_rate_tree, &b->chat.rates, &key);
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return true; /* fail open: memory is the bigger problem */
        r->user = user;
        r->tokens = (double)b->cfg.chat_burst;
        r->last_ms = now;
        RB_INSERT(bk_rate_tree, &b->chat.rates, r);
    } else {
        TAILQ_REMOVE(&b->chat.lru, r, lru);
        r->tokens += (double)(now - r->last_ms) * b->cfg.chat_rate / 1000.0;
        if (r->tokens > (double)b->cfg.chat_burst)
            r->tokens = (double)b->cfg.chat_burst;
        r->last_ms = now;
    }
    TAILQ_INSERT_TAIL(&b->chat.lru, r, lru);
    if (r->tokens < 1.0) {
        b->counters.rate_limited++;
        log_info("user %lld is over the chat rate", (long long)user);
        bk_answer_error(b, o, 429, "rate-limited", "too many messages: slow down");
        return false;
    }
    r->tokens -= 1.0;
    return true;
}

/* {user, userId, message}: a livechat or direct_message payload. */
static struct json_object *chat_json(int64_t id, const char *name, const char *message)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "user", json_object_new_string(name));
    json_object_object_add(o, "userId", json_object_new_int64(id));
    json_object_object_add(o, "message", json_object_new_string(message));
    return o;
}

void bk_chat_livechat(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    int64_t id;
    char name[BK_USERNAME_MAX + 1];
    const char *message;
    if (!sender_of(b, o, &id, name, sizeof(name)) || !(message = chat_message(b, o, args)) ||
        !rate_take(b, o, id))
        return;
    int64_t ts = wall_ms();
    int64_t mid = bk_store_chat_add(&b->store, id, message, ts, b->cfg.chat_history_size);
    if (mid < 0) {
        log_error("livechat from %lld not stored: %s", (long long)id, b->store.err);
        bk_answer_error(b, o, 503, "unavailable", "the message could not be stored");
        return;
    }
    struct json_object *ev = chat_json(id, name, message);
    json_object_object_add(ev, "id", json_object_new_int64(mid));
    json_object_object_add(ev, "ts", json_object_new_int64(ts));
    size_t jl;
    const char *js = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN, &jl);
    bk_broadcast(b, "auth", "livechat", js, jl);
    bk_feed_add(b, "livechat", js, jl, ts);
    json_object_put(ev);
    b->counters.chat++;
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

/* Finds a user by username (case-insensitive), else by numeric id: a DM's
 * "to". 1 found, 0 not, -1 database error. */
static int resolve_user(struct bk *b, struct json_object *to, struct bk_user_row *row)
{
    int64_t id;
    if (json_object_is_type(to, json_type_string)) {
        const char *name = json_object_get_string(to);
        if (json_object_get_string_len(to) > 0 &&
            json_object_get_string_len(to) <= BK_USERNAME_MAX) {
            int f = bk_store_user_by_name(&b->store, name, row);
            if (f != 0)
                return f;
        }
    }
    if (bk_id_value(to, &id))
        return bk_store_user_by_id(&b->store, id, row);
    return 0;
}

void bk_chat_direct(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    int64_t id;
    char name[BK_USERNAME_MAX + 1];
    const char *message;
    struct json_object *to;
    if (!sender_of(b, o, &id, name, sizeof(name)))
        return;
    if (!args || !json_object_object_get_ex(args, "to", &to)) {
        bk_answer_error(b, o, 400, "bad-field", "to must be a username or a user id");
        return;
    }
    if (!(message = chat_message(b, o, args)))
        return;
    struct bk_user_row row;
    int f = resolve_user(b, to, &row);
    if (f <= 0) {
        if (f < 0)
            log_error("recipient lookup: %s", b->store.err);
        bk_answer_error(b, o, 404, "unknown-user", "no such recipient");
        return;
    }
    if (!rate_take(b, o, id))
        return;
    /* Stored first: what is acknowledged is in the history, whoever is
     * online (PROTOCOL.md §4a). */
    int64_t ts = wall_ms();
    /* dm-store off (benchmarks only): numbered by the DMs sent since start. */
    int64_t mid = b->cfg.dm_store ? bk_store_dm_add(&b->store, id, row.id, message, ts)
                                  : (int64_t)b->counters.dm + 1;
    if (mid < 0) {
        log_error("DM from %lld to %lld not stored: %s", (long long)id, (long long)row.id,
                  b->store.err);
        bk_answer_error(b, o, 503, "unavailable", "the message could not be stored");
        return;
    }
    struct json_object *ev = chat_json(id, name, message);
    json_object_object_add(ev, "id", json_object_new_int64(mid));
    json_object_object_add(ev, "ts", json_object_new_int64(ts));
    json_object_object_add(ev, "to", json_object_new_int64(row.id));
    /* The recipient's tabs, and the sender's others (not the one it came
     * from): every tab of both shows the conversation. */
    struct bk_targets t = {0};
    struct bk_user *ru = bk_user_find(b, row.id), *su = bk_user_find(b, id);
    if (ru)
        bk_targets_add_user(&t, ru);
    if (su && su != ru) {
        struct bk_conn *c;
        LIST_FOREACH(c, &su->conns, user_link)
        if (c != o->c)
            bk_targets_add(&t, c);
    }
    /* The DM itself tells the recipient's tabs that a count moved (no
     * dm-unread here: that would query every unread DM of the pair on each
     * message). */
    size_t jl;
    const char *js = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN, &jl);
    size_t tabs = bk_targets_send(b, &t, "direct_message", js, jl);
    bk_feed_add(b, "direct-message", js, jl, ts);
    bk_targets_free(&t);
    json_object_put(ev);
    log_debug("DM %lld from %lld to %lld: %zu tabs", (long long)mid, (long long)id,
              (long long)row.id, tabs);
    b->counters.dm++;
    char ack[96];
    int al = snprintf(ack, sizeof(ack), "{\"ok\":true,\"id\":%lld,\"ts\":%lld}", (long long)mid,
                      (long long)ts);
    bk_answer_ok(b, o, ack, (size_t)al);
}

/* ---- stored DMs: history, unread, read marks; the chat history ------------------ */

static void unread_add(void *arg, const struct bk_unread_row *row)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "userId", json_object_new_int64(row->user));
    json_object_object_add(o, "username", json_object_new_string(row->username));
    json_object_object_add(o, "count", json_object_new_int64(row->count));
    json_object_object_add(o, "lastId", json_object_new_int64(row->last_id));
    json_object_array_add(arg, o);
}

/* {"conversations":[{userId,username,count,lastId}]} of user id, or NULL
 * (logged) when the store failed. */
static struct json_object *unread_json(struct bk *b, int64_t id)
{
    struct json_object *arr = json_object_new_array();
    if (bk_store_dm_unread_each(&b->store, id, unread_add, arr) < 0) {
        log_error("unread DMs of %lld: %s", (long long)id, b->store.err);
        json_object_put(arr);
        return NULL;
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "conversations", arr);
    return o;
}

void bk_chat_push_unread(struct bk *b, struct bk_user *u)
{
    if (LIST_EMPTY(&u->conns))
        return;
    struct json_object *o = unread_json(b, u->id);
    if (o)
        bk_to_user_json(b, u, "dm-unread", o);
    json_object_put(o);
}

/* An answer holding a list: a raw client gets event with the object obj, a
 * Socket.IO callback the array obj[member]. Takes obj. */
static void answer_list(struct bk *b, const struct bk_origin *o, const char *event,
                        struct json_object *obj, const char *member)
{
    if (o->c && o->c->sio) {
        struct json_object *arr;
        if (json_object_object_get_ex(obj, member, &arr))
            bk_answer_json(b, o, arr);
    } else if (o->c) {
        size_t jl;
        const char *js = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &jl);
        bk_to_conn(b, o->c, event, js, jl);
    }
    json_object_put(obj);
}

/* args[key] as a positive integer (absent: def), capped at max; false after
 * answering bad-field. */
static bool int_field(struct bk *b, const struct bk_origin *o, struct json_object *args,
                      const char *key, int64_t def, int64_t max, int64_t *out)
{
    struct json_object *v;
    *out = def;
    if (!args || !json_object_object_get_ex(args, key, &v) ||
        json_object_is_type(v, json_type_null))
        return true;
    if (!bk_id_value(v, out)) {
        bk_answer_error(b, o, 400, "bad-field", "a count or id must be a positive integer");
        return false;
    }
    if (max > 0 && *out > max)
        *out = max;
    return true;
}

/* The other user of a conversation (args.with: username or id). false
 * after answering. */
static bool conversation_with(struct bk *b, const struct bk_origin *o, struct json_object *args,
                              struct bk_user_row *row)
{
    struct json_object *with;
    if (!args || !json_object_object_get_ex(args, "with", &with)) {
        bk_answer_error(b, o, 400, "bad-field", "with must be a username or a user id");
        return false;
    }
    int f = resolve_user(b, with, row);
    if (f <= 0) {
        if (f < 0)
            log_error("user lookup: %s", b->store.err);
        bk_answer_error(b, o, 404, "unknown-user", "no such user");
        return false;
    }
    return true;
}

static void history_add(void *arg, const struct bk_dm_row *row)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(row->id));
    json_object_object_add(o, "from", json_object_new_int64(row->from));
    json_object_object_add(o, "to", json_object_new_int64(row->to));
    json_object_object_add(o, "message", json_object_new_string(row->message));
    json_object_object_add(o, "ts", json_object_new_int64(row->ts));
    json_object_array_add(arg, o);
}

/* Reverses arr in place: the store reads newest first, pages are shown
 * newest last. */
static void reverse(struct json_object *arr)
{
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n / 2; i++) {
        struct json_object *a = json_object_get(json_object_array_get_idx(arr, i));
        struct json_object *z = json_object_get(json_object_array_get_idx(arr, n - 1 - i));
        json_object_array_put_idx(arr, i, z);
        json_object_array_put_idx(arr, n - 1 - i, a);
    }
}

void bk_chat_dm_history(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct bk_user_row row;
    int64_t before, limit;
    if (!conversation_with(b, o, args, &row) || !int_field(b, o, args, "before", 0, 0, &before) ||
        !int_field(b, o, args, "limit", BK_DM_PAGE, BK_DM_PAGE_MAX, &limit))
        return;
    struct json_object *arr = json_object_new_array();
    if (bk_store_dm_history(&b->store, o->c->user->id, row.id, before, (int)limit, history_add,
                            arr) < 0) {
        log_error("DM history: %s", b->store.err);
        json_object_put(arr);
        bk_answer_error(b, o, 503, "unavailable", "the history could not be read");
        return;
    }
    reverse(arr);
    struct json_object *obj = json_object_new_object();
    json_object_object_add(obj, "with", json_object_new_int64(row.id));
    json_object_object_add(obj, "messages", arr);
    answer_list(b, o, "dm_history", obj, "messages");
}

/* user (1: found) of an /api/dm/history request, else 0 after answering
 * 404, or -1 after answering 503. which names the query parameter. */
static int api_user(struct bk *b, const struct bk_origin *o, int64_t id, const char *which)
{
    struct bk_user_row row;
    int f = bk_store_user_by_id(&b->store, id, &row);
    if (f < 0) {
        log_error("DM history user lookup: %s", b->store.err);
        BK_REPLY_LIT(b, o->gw, o->e, 503,
                     "{\"error\":\"unavailable\",\"message\":\"database error\"}");
    } else if (f == 0) {
        char out[96];
        int n = snprintf(out, sizeof(out),
                         "{\"error\":\"unknown-user\",\"message\":\"no user has the id in %s\"}",
                         which);
        bk_refusal_count(b, "unknown-user");
        bk_reply(b, o->gw, o->e, 404, out, (size_t)n);
    }
    return f;
}

void bk_chat_dm_history_api(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    int64_t user, with, before, limit;
    /* The gateway checked the query; this guards the stream's other
     * writers. */
    if (!bk_id_field(args, "user", &user) || !bk_id_field(args, "with", &with)) {
        BK_REPLY_LIT(b, o->gw, o->e, 400,
                     "{\"error\":\"bad-request\",\"message\":\"user and with must be user ids\"}");
        return;
    }
    if (!int_field(b, o, args, "before", 0, 0, &before) ||
        !int_field(b, o, args, "limit", BK_DM_PAGE, BK_DM_PAGE_MAX, &limit))
        return;
    if (api_user(b, o, user, "user") != 1 || api_user(b, o, with, "with") != 1)
        return;
    struct json_object *arr = json_object_new_array();
    if (bk_store_dm_history(&b->store, user, with, before, (int)limit, history_add, arr) < 0) {
        log_error("DM history: %s", b->store.err);
        json_object_put(arr);
        BK_REPLY_LIT(b, o->gw, o->e, 503,
                     "{\"error\":\"unavailable\",\"message\":\"the history could not be read\"}");
        return;
    }
    reverse(arr);
    struct json_object *obj = json_object_new_object();
    json_object_object_add(obj, "messages", arr);
    size_t jl;
    const char *js = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &jl);
    bk_reply(b, o->gw, o->e, 200, js, jl);
    json_object_put(obj);
}

void bk_chat_dm_read(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct bk_user_row row;
    int64_t up_to;
    if (!conversation_with(b, o, args, &row) || !int_field(b, o, args, "upTo", 0, 0, &up_to))
        return;
    if (up_to <= 0) {
        bk_answer_error(b, o, 400, "bad-field", "upTo must be a message id");
        return;
    }
    if (bk_store_dm_read(&b->store, o->c->user->id, row.id, up_to) < 0) {
        log_error("read mark: %s", b->store.err);
        bk_answer_error(b, o, 503, "unavailable", "the read mark could not be stored");
        return;
    }
    /* Every tab of the user (this one included) sees the new counts. */
    bk_chat_push_unread(b, o->c->user);
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

void bk_chat_unread(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    (void)args;
    struct json_object *obj = unread_json(b, o->c->user->id);
    if (!obj) {
        bk_answer_error(b, o, 503, "unavailable", "the unread counts could not be read");
        return;
    }
    answer_list(b, o, "dm-unread", obj, "conversations");
}

static void chat_row_add(void *arg, const struct bk_chat_row *row)
{
    struct json_object *o = chat_json(row->user, row->username, row->message);
    json_object_object_add(o, "id", json_object_new_int64(row->id));
    json_object_object_add(o, "ts", json_object_new_int64(row->ts));
    json_object_array_add(arg, o);
}

void bk_chat_history(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    int64_t limit;
    if (!int_field(b, o, args, "limit", b->cfg.chat_history_size, b->cfg.chat_history_size, &limit))
        return;
    struct json_object *arr = json_object_new_array();
    if (bk_store_chat_history(&b->store, (int)limit, chat_row_add, arr) < 0) {
        log_error("chat history: %s", b->store.err);
        json_object_put(arr);
        bk_answer_error(b, o, 503, "unavailable", "the history could not be read");
        return;
    }
    reverse(arr);
    struct json_object *obj = json_object_new_object();
    json_object_object_add(obj, "messages", arr);
    answer_list(b, o, "chat_history", obj, "messages");
}

/* ---- hooks ----------------------------------------------------------------- */

static int chat_init(struct bk *b)
{
    RB_INIT(&b->chat.rates);
    TAILQ_INIT(&b->chat.lru);
    return 0;
}

static void rate_forget(struct bk *b, struct bk_rate *r)
{
    TAILQ_REMOVE(&b->chat.lru, r, lru);
    RB_REMOVE(bk_rate_tree, &b->chat.rates, r);
    free(r);
}

/* A new tab of a user with unread DMs is told at once. */
static void chat_conn_opened(struct bk *b, struct bk_conn *c)
{
    struct json_object *o = unread_json(b, c->user->id);
    struct json_object *arr;
    if (o && json_object_object_get_ex(o, "conversations", &arr) &&
        json_object_array_length(arr) > 0) {
        size_t jl;
        const char *js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &jl);
        bk_to_conn(b, c, "dm-unread", js, jl);
    }
    json_object_put(o);
}

/* Forgets the buckets that are full again (or idle for long); deletes the
 * DMs past their retention, hourly. */
static void chat_tick(struct bk *b, int64_t now)
{
    if (!b->chat.last_prune_ms || now - b->chat.last_prune_ms >= BK_DM_PRUNE_EVERY_MS) {
        b->chat.last_prune_ms = now;
        int n = bk_store_dm_prune(&b->store, wall_ms() - b->cfg.dm_retention_days * 86400000LL);
        if (n < 0)
            log_error("DM retention: %s", b->store.err);
        else if (n > 0)
            log_info("DM retention: %d message(s) older than %ld days deleted", n,
                     b->cfg.dm_retention_days);
    }
    /* Oldest use first: stop at the first bucket that still matters. */
    struct bk_rate *r;
    while ((r = TAILQ_FIRST(&b->chat.lru)) != NULL) {
        double full_at = r->tokens + (double)(now - r->last_ms) * b->cfg.chat_rate / 1000.0;
        if (full_at < (double)b->cfg.chat_burst && now - r->last_ms < BK_RATE_IDLE_MS)
            break;
        rate_forget(b, r);
    }
}

static void chat_free(struct bk *b)
{
    struct bk_rate *r;
    while ((r = TAILQ_FIRST(&b->chat.lru)) != NULL)
        rate_forget(b, r);
}

const struct bk_hooks bk_chat_hooks = {
    .name = "chat",
    .init = chat_init,
    .conn_opened = chat_conn_opened,
    .tick = chat_tick,
    .free = chat_free,
};
