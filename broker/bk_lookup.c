/*
 * bk_lookup.c - read-only questions; see bk_lookup.h.
 *
 * Online state comes from memory (struct bk_user.online, exact at the
 * broker), names and avatars from the store. Expected sizes: the online
 * list is built in one buffer (21 bytes an id) for up to ~10^5 users; a
 * search page is at most 50 rows, get-users at most 100 ids.
 */
#include "bk_lookup.h"

#include "bk_out.h"
#include "bk_presence.h"
#include "i64v.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

/* Longest search prefix: a username is at most 64 characters. */
#define BK_SEARCH_MAX_Q BK_USERNAME_MAX
/* The answer's length cap: a page asks for the names on its online list. */
#define BK_GET_USERS_MAX 100

/* bk_store_friends_each() callback: a friend of the asking user. */
static void related_friend_id(void *arg, int64_t id, const char *username)
{
    (void)username;
    if (i64v_push(arg, id) != 0)
        log_warn_rl(1, "out of memory: a friend left out of get-online-users");
}

/* Scope related: the ids the connection relates to (its user, the user's
 * friends, the profiles it watches, its presence list), sorted, each
 * once: O(friends + watches), never O(online users). */
static void related_ids(struct bk *b, const struct bk_conn *c, struct i64v *ids)
{
    if (c->user) {
        i64v_push(ids, c->user->id);
        if (bk_store_friends_each(&b->store, c->user->id, related_friend_id, ids) < 0)
            log_error("friends of %lld: %s", (long long)c->user->id, b->store.err);
    }
    struct bk_member *m;
    LIST_FOREACH(m, &c->rooms, in_conn)
    i64v_push(ids, m->room->target);
    struct i64v sorted = {0};
    for (size_t i = 0; i < ids->n; i++)
        if (i64v_insert_sorted(&sorted, ids->v[i]) < 0)
            break;
    i64v_free(ids);
    *ids = sorted;
}

void bk_lookup_online_users(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    (void)args;
    const struct bk_conn *c = o->c;
    struct i64v related = {0};
    if (b->cfg.scope_related)
        related_ids(b, c, &related);
    /* "users":[ ids ] built directly: ids are integers, nothing to escape.
     * In scope all this is the whole list: the gateways answer it from
     * their own copy (gw_online.h) and ask here only while theirs loads. */
    size_t n = b->cfg.scope_related ? related.n : b->nonline;
    size_t cap = 32 + n * 21, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        i64v_free(&related);
        return;
    }
    len += (size_t)snprintf(buf, cap, "{\"users\":[");
    bool first = true;
    if (b->cfg.scope_related) {
        for (size_t i = 0; i < related.n; i++) {
            const struct bk_user *u = bk_user_find(b, related.v[i]);
            if (!u || !u->online)
                continue;
            len += (size_t)snprintf(buf + len, cap - len, "%s%lld", first ? "" : ",",
                                    (long long)u->id);
            first = false;
        }
    } else {
        struct bk_user *u;
        RB_FOREACH(u, bk_user_tree, &b->users)
        {
            if (!u->online || len + 24 > cap)
                continue;
            len += (size_t)snprintf(buf + len, cap - len, "%s%lld", first ? "" : ",",
                                    (long long)u->id);
            first = false;
        }
    }
    i64v_free(&related);
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    if (c->sio) {
        /* Socket.IO: callback(number[]) -> ack arguments [[ids]]. */
        if (o->e->has_req) {
            /* {"users":[...]} -> [[...]]: ':' at 8 and the final '}'. */
            buf[8] = '[';
            buf[len - 1] = ']';
            bk_to_ack(b, c, o->e, buf + 8, len - 8);
        }
    } else {
        bk_to_conn(b, c, "online_users", buf, len);
    }
    free(buf);
}

/* The most ids one POST /api/online-status may ask about. */
#define BK_ONLINE_IDS_MAX 1000

void bk_lookup_online_ids(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct json_object *ids;
    if (!args) {
        bk_answer_error(b, o, 400, "bad-json", "the body must be a JSON object");
        return;
    }
    if (!json_object_object_get_ex(args, "ids", &ids) ||
        !json_object_is_type(ids, json_type_array) ||
        json_object_array_length(ids) > BK_ONLINE_IDS_MAX) {
        bk_answer_error(b, o, 400, "bad-field", "ids must be an array of at most 1000 user ids");
        return;
    }
    size_t n = json_object_array_length(ids);
    /* Checked whole before answering: a bad id anywhere changes nothing. */
    for (size_t i = 0; i < n; i++) {
        int64_t id;
        if (!bk_id_value(json_object_array_get_idx(ids, i), &id)) {
            bk_answer_error(b, o, 400, "bad-field", "every id must be a user id");
            return;
        }
    }
    /* One tree lookup per id: the cost follows the question, not the
     * number of users online. Ids come back as asked (numbers), in the
     * order asked, those online only. */
    struct json_object *online = json_object_new_array(), *r = json_object_new_object();
    for (size_t i = 0; i < n; i++) {
        int64_t id = 0;
        bk_id_value(json_object_array_get_idx(ids, i), &id);
        struct bk_user *u = bk_user_find(b, id);
        if (u && u->online)
            json_object_array_add(online, json_object_new_int64(id));
    }
    json_object_object_add(r, "online", online);
    bk_answer_http(b, o, 200, r);
    json_object_put(r);
}

void bk_lookup_whoami(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    (void)args;
    char buf[160];
    int n;
    if (o->c->user)
        n = snprintf(buf, sizeof(buf), "{\"id\":%lld,\"username\":\"%s\"}",
                     (long long)o->c->user->id, o->c->user->username);
    else
        n = snprintf(buf, sizeof(buf), "{\"id\":0}");
    bk_answer_ok(b, o, buf, (size_t)n);
}

/* ---- rows: {"id","username","avatar","online"} ---------------------------------- */

struct rows_ctx {
    struct bk *b;
    struct json_object *arr; /* owned by the caller */
};

static void add_row(void *arg, const struct bk_user_row *row)
{
    struct rows_ctx *s = arg;
    struct bk_user *u = bk_user_find(s->b, row->id);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(row->id));
    json_object_object_add(o, "username", json_object_new_string(row->username));
    json_object_object_add(o, "avatar",
                           row->has_avatar ? json_object_new_string(row->avatar) : NULL);
    json_object_object_add(o, "online", json_object_new_boolean(u && u->online));
    json_object_array_add(s->arr, o);
}

void bk_lookup_get_users(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct json_object *ids;
    if (!args || !json_object_object_get_ex(args, "ids", &ids) ||
        !json_object_is_type(ids, json_type_array) ||
        json_object_array_length(ids) > BK_GET_USERS_MAX) {
        bk_answer_error(b, o, 400, "bad-field", "ids must be an array of at most 100 user ids");
        return;
    }
    struct rows_ctx sc = {b, json_object_new_array()};
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        int64_t id;
        struct bk_user_row row;
        if (bk_id_value(json_object_array_get_idx(ids, i), &id) &&
            bk_store_user_by_id(&b->store, id, &row) == 1)
            add_row(&sc, &row);
    }
    bk_answer_json(b, o, sc.arr);
    json_object_put(sc.arr);
}

void bk_lookup_search(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct json_object *q, *v;
    int64_t limit = 20, offset = 0;
    if (!args || !json_object_object_get_ex(args, "q", &q) ||
        !json_object_is_type(q, json_type_string) ||
        json_object_get_string_len(q) > BK_SEARCH_MAX_Q) {
        bk_answer_error(b, o, 400, "bad-field", "q must be a prefix of at most 64 characters");
        return;
    }
    if (json_object_object_get_ex(args, "limit", &v))
        limit = json_object_get_int64(v);
    if (json_object_object_get_ex(args, "offset", &v))
        offset = json_object_get_int64(v);
    if (limit < 1 || limit > 50 || offset < 0 || offset > 1000000) {
        bk_answer_error(b, o, 400, "bad-field", "limit must be 1..50 and offset >= 0");
        return;
    }
    struct rows_ctx s = {b, json_object_new_array()};
    if (bk_store_search(&b->store, json_object_get_string(q), (int)limit, (int)offset, add_row,
                        &s) < 0) {
        log_error("search: %s", b->store.err);
        bk_answer_error(b, o, 503, "unavailable", "database error");
    } else {
        size_t jl;
        const char *js = json_object_to_json_string_length(s.arr, JSON_C_TO_STRING_PLAIN, &jl);
        bk_reply(b, o->gw, o->e, 200, js, jl);
    }
    json_object_put(s.arr);
}

/* The string args[key], or NULL. */
static const char *string_field(struct json_object *args, const char *key)
{
    struct json_object *v;
    if (args && json_object_object_get_ex(args, key, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

void bk_lookup_online_status(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    const char *name = string_field(args, "username");
    if (!name) {
        BK_REPLY_LIT(b, o->gw, o->e, 400,
                     "{\"error\":\"bad-field\",\"message\":\"username required\"}");
        return;
    }
    struct bk_user_row row;
    int f = bk_store_user_by_name(&b->store, name, &row);
    if (f < 0) {
        log_error("lookup by name: %s", b->store.err);
        BK_REPLY_LIT(b, o->gw, o->e, 503,
                     "{\"error\":\"unavailable\",\"message\":\"database error\"}");
    } else if (f == 0) {
        BK_REPLY_LIT(b, o->gw, o->e, 404,
                     "{\"error\":\"unknown-user\",\"message\":\"no such user\"}");
    } else {
        struct bk_user *u = bk_user_find(b, row.id);
        if (u && u->online)
            BK_REPLY_LIT(b, o->gw, o->e, 200, "{\"online\":true}");
        else
            BK_REPLY_LIT(b, o->gw, o->e, 200, "{\"online\":false}");
    }
}

void bk_lookup_user(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    const char *name = string_field(args, "username");
    struct bk_user_row row;
    if (name && bk_store_user_by_name(&b->store, name, &row) == 1) {
        char out[160];
        int n = snprintf(out, sizeof(out), "{\"id\":%lld,\"username\":\"%s\"}", (long long)row.id,
                         row.username);
        bk_reply(b, o->gw, o->e, 200, out, (size_t)n);
    } else {
        BK_REPLY_LIT(b, o->gw, o->e, 404,
                     "{\"error\":\"unknown-user\",\"message\":\"no such user\"}");
    }
}
