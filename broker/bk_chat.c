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

#include "bk_out.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

/* A chat bucket idle this long is forgotten even if not full (rate 0). */
#define BK_RATE_IDLE_MS (10 * 60 * 1000)

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
    struct json_object *ev = chat_json(id, name, message);
    size_t jl;
    const char *js = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN, &jl);
    bk_broadcast(b, "auth", "livechat", js, jl);
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
    struct bk_user *u = bk_user_find(b, row.id);
    size_t tabs = 0;
    if (u) { /* else offline: accepted, nothing delivered (PROTOCOL.md §4a) */
        struct json_object *ev = chat_json(id, name, message);
        tabs = bk_to_user_json(b, u, "direct_message", ev);
        json_object_put(ev);
    }
    log_debug("DM from %lld to %lld: %zu tabs", (long long)id, (long long)row.id, tabs);
    b->counters.dm++;
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true}");
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

/* Forgets the buckets that are full again (or idle for long). */
static void chat_tick(struct bk *b, int64_t now)
{
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
    .tick = chat_tick,
    .free = chat_free,
};
