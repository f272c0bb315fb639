/*
 * bk_social.c - everything the broker does beyond presence (PROTOCOL.md
 * §3-§6, docs/API.md): profile rooms and the privacy rule, notifications
 * from the application backend, live chat, direct messages, the chat rate
 * limit, matchmaking and user search.
 *
 * One implementation serves every way in: a client event ("msg" entry from
 * a /ws connection or a Socket.IO session), an HTTP request a gateway
 * relayed ("req"), or a "notify" entry an application XADDed itself. The
 * differences are only in how the sender is answered (struct origin).
 *
 * Expected sizes: rooms are small (a profile is watched by a handful of
 * viewers) but a popular one may hold thousands; a connection is in at most
 * cfg.max_rooms rooms; friends lists are tens to hundreds. Every delivery
 * to several connections is grouped by gateway (bk_targets), so a gateway
 * gets one entry per event whatever the number of its recipients.
 *
 * Idempotence on replay (a restarted broker replays what it had not
 * acknowledged): joins and leaves check membership first, stored values are
 * set, not incremented, and a deletion of a deleted account is accepted
 * without effect. Chat and DMs are not deduplicated: a replayed message is
 * delivered twice rather than lost.
 */
#include "bk_internal.h"

#include "log.h"

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest search prefix: a username is at most 64 characters. */
#define BK_SEARCH_MAX_Q BK_USERNAME_MAX
/* A chat bucket idle this long is forgotten even if not full (rate 0). */
#define BK_RATE_IDLE_MS (10 * 60 * 1000)

static int room_cmp(const struct bk_room *a, const struct bk_room *b)
{
    return a->target < b->target ? -1 : a->target > b->target;
}
static int rate_cmp(const struct bk_rate *a, const struct bk_rate *b)
{
    return a->user < b->user ? -1 : a->user > b->user;
}
RB_GENERATE_INTERNAL(bk_room_tree, bk_room, node, room_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(bk_rate_tree, bk_rate, node, rate_cmp, static __attribute__((unused)))

/* ---- answering the sender --------------------------------------------------- */

/* Where an event came from, and so how to answer it. */
struct origin {
    struct bk_gw *gw;         /* gateway of a "req"; NULL for notify entries */
    const struct ev_entry *e; /* the entry */
    struct bk_conn *c;        /* sender connection of a "msg"; NULL otherwise */
};

/* Fails the event with a stable word (docs/API.md). word and message are
 * our own constants: nothing to escape. */
const char *const bk_refusal_words[BK_REFUSAL_COUNT] = {
    "bad-field",    "bad-json",       "auth-required",    "unknown-user",
    "rate-limited", "too-many-rooms", "message-too-long", "unavailable",
};

void bk_refusal_count(struct bk *b, const char *word)
{
    for (size_t i = 0; i < BK_REFUSAL_COUNT; i++)
        if (strcmp(word, bk_refusal_words[i]) == 0)
            b->n_refused[i]++;
}

static void answer_error(struct bk *b, const struct origin *o, int status, const char *word,
                         const char *message)
{
    char buf[384];
    int n;
    bk_refusal_count(b, word);
    if (o->c) {
        if (o->c->kind == 's' && o->e->has_req) {
            n = snprintf(buf, sizeof(buf), "[{\"ok\":false,\"error\":\"%s\",\"message\":\"%s\"}]",
                         word, message);
            bk_to_ack(b, o->c, o->e, buf, (size_t)n);
        } else {
            n = snprintf(buf, sizeof(buf), "{\"code\":\"%s\",\"message\":\"%s\"}", word, message);
            bk_to_conn(b, o->c, "error", buf, (size_t)n);
        }
    } else if (o->gw) {
        n = snprintf(buf, sizeof(buf), "{\"error\":\"%s\",\"message\":\"%s\"}", word, message);
        bk_reply(b, o->gw, o->e, status, buf, (size_t)n);
    } else {
        log_warn_rl(5, "notify %.*s refused: %s (%s)", (int)o->e->event_len, o->e->event, word,
                    message);
    }
}

/* Success: a Socket.IO callback gets ack (one JSON value), an HTTP request
 * 202, a raw client nothing (it sees the effect). */
static void answer_ok(struct bk *b, const struct origin *o, const char *ack, size_t al)
{
    if (o->c) {
        if (o->c->kind == 's' && o->e->has_req) {
            char *buf = malloc(al + 2);
            if (!buf)
                return;
            buf[0] = '[';
            memcpy(buf + 1, ack, al);
            buf[al + 1] = ']';
            bk_to_ack(b, o->c, o->e, buf, al + 2);
            free(buf);
        }
    } else if (o->gw) {
        BK_REPLY_LIT(b, o->gw, o->e, 202, "{\"status\":\"accepted\"}");
    }
}
#define ANSWER_OK_LIT(b, o, lit) answer_ok(b, o, lit, sizeof(lit) - 1)

static void answer_ok_json(struct bk *b, const struct origin *o, struct json_object *v)
{
    size_t jl;
    const char *js = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &jl);
    answer_ok(b, o, js, jl);
}

/* ---- reading fields ---------------------------------------------------------- */

/* A user id: a positive integer, or a string of digits (JavaScript clients
 * send either). Returns true with *id set. */
static bool id_value(struct json_object *v, int64_t *id)
{
    if (json_object_is_type(v, json_type_int)) {
        *id = json_object_get_int64(v);
        return *id > 0;
    }
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v);
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
    return false;
}

static bool id_field(struct json_object *o, const char *key, int64_t *id)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && id_value(v, id);
}

static struct json_object *obj_field(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_object))
        return v;
    return NULL;
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
    if (id_value(to, &id))
        return bk_store_user_by_id(&b->store, id, row);
    return 0;
}

/* ---- privacy ------------------------------------------------------------------ */

int bk_social_init(struct bk *b)
{
    const char *list = b->cfg.public_fields ? b->cfg.public_fields : "";
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    b->public_fields = calloc(n + 1, sizeof(char *));
    if (!b->public_fields)
        return -1;
    size_t i = 0;
    while (*list) {
        const char *end = strchr(list, ',');
        size_t l = end ? (size_t)(end - list) : strlen(list);
        const char *s = list;
        while (l && *s == ' ') {
            s++;
            l--;
        }
        while (l && s[l - 1] == ' ')
            l--;
        if (l && !(b->public_fields[i++] = strndup(s, l)))
            return -1;
        if (!end)
            break;
        list = end + 1;
    }
    return 0;
}

static bool is_public(const struct bk *b, const char *key)
{
    for (char **f = b->public_fields; f && *f; f++)
        if (strcmp(*f, key) == 0)
            return true;
    return false;
}

/* A new object with only the public keys of o (values shared). */
static struct json_object *public_copy(const struct bk *b, struct json_object *o)
{
    struct json_object *out = json_object_new_object();
    json_object_object_foreach(o, k, v)
    {
        if (is_public(b, k))
            json_object_object_add(out, k, json_object_get(v));
    }
    return out;
}

/* The friends of a user as a sorted id array, for membership tests. */
struct id_list {
    int64_t *v;
    size_t n, cap;
};

static void id_list_add(void *arg, int64_t id, const char *username)
{
    struct id_list *l = arg;
    (void)username;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        int64_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
}

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static bool sees_full(const struct id_list *friends, int64_t target, const struct bk_conn *c)
{
    if (!c->user)
        return false; /* guests see public fields only */
    int64_t v = c->user->id;
    return v == target || (friends->n && bsearch(&v, friends->v, friends->n, sizeof(v), id_cmp));
}

/*
 * Delivers an event about user target to the room watching-user-<target>
 * and to every tab of the user: `full` to the user and their friends,
 * `pub` to everyone else. Returns the number of connections reached.
 */
static size_t deliver_about(struct bk *b, int64_t target, const char *event,
                            struct json_object *full, struct json_object *pub)
{
    struct id_list friends = {0};
    if (bk_store_friends_each(&b->store, target, id_list_add, &friends) < 0)
        log_error("friends of %lld: %s (sending public fields only)", (long long)target,
                  b->store.err);
    struct bk_targets tf = {0}, tp = {0};
    struct bk_user *u = bk_user_get(b, target, false);
    if (u)
        bk_targets_add_user(&tf, u);
    struct bk_room key = {.target = target};
    struct bk_room *room = RB_FIND(bk_room_tree, &b->rooms, &key);
    struct bk_member *m;
    if (room)
        LIST_FOREACH(m, &room->members, in_room)
    bk_targets_add(sees_full(&friends, target, m->conn) ? &tf : &tp, m->conn);
    size_t jl, reached = 0;
    const char *js = json_object_to_json_string_length(full, JSON_C_TO_STRING_PLAIN, &jl);
    reached += bk_targets_send(b, &tf, event, js, jl);
    js = json_object_to_json_string_length(pub, JSON_C_TO_STRING_PLAIN, &jl);
    reached += bk_targets_send(b, &tp, event, js, jl);
    bk_targets_free(&tf);
    bk_targets_free(&tp);
    free(friends.v);
    return reached;
}

/* ---- rooms -------------------------------------------------------------------- */

static void watch_field(char *buf, size_t size, const struct bk_conn *c, int64_t target)
{
    snprintf(buf, size, "%llu:%lld", (unsigned long long)c->id, (long long)target);
}

static void watch_key(char *buf, size_t size, const struct bk_gw *gw)
{
    snprintf(buf, size, "%s%s", BK_WATCH_PREFIX, gw->id);
}

static struct bk_member *member_find(struct bk_conn *c, int64_t target)
{
    struct bk_member *m;
    LIST_FOREACH(m, &c->rooms, in_conn)
    if (m->room->target == target)
        return m;
    return NULL;
}

/* Puts c in watching-user-<target>. Returns 1 joined, 0 already there, -1
 * at the room limit (or out of memory). persist: HSET the membership. */
static int room_join(struct bk *b, struct bk_conn *c, int64_t target, bool persist)
{
    if (member_find(c, target))
        return 0;
    if (c->nrooms >= b->cfg.max_rooms)
        return -1;
    struct bk_room key = {.target = target};
    struct bk_room *room = RB_FIND(bk_room_tree, &b->rooms, &key);
    if (!room) {
        room = calloc(1, sizeof(*room));
        if (!room)
            return -1;
        room->target = target;
        LIST_INIT(&room->members);
        RB_INSERT(bk_room_tree, &b->rooms, room);
        b->nrooms++;
    }
    struct bk_member *m = calloc(1, sizeof(*m));
    if (!m) {
        if (LIST_EMPTY(&room->members)) {
            RB_REMOVE(bk_room_tree, &b->rooms, room);
            free(room);
            b->nrooms--;
        }
        return -1;
    }
    m->room = room;
    m->conn = c;
    LIST_INSERT_HEAD(&room->members, m, in_room);
    LIST_INSERT_HEAD(&c->rooms, m, in_conn);
    c->nrooms++;
    if (persist) {
        char key_s[256], field[48];
        watch_key(key_s, sizeof(key_s), c->gw);
        watch_field(field, sizeof(field), c, target);
        rds_cmd(&b->cmd, NULL, NULL, "HSET %s %s 1", key_s, field);
    }
    return 1;
}

static void member_free(struct bk *b, struct bk_member *m)
{
    struct bk_room *room = m->room;
    LIST_REMOVE(m, in_room);
    LIST_REMOVE(m, in_conn);
    m->conn->nrooms--;
    free(m);
    if (LIST_EMPTY(&room->members)) {
        RB_REMOVE(bk_room_tree, &b->rooms, room);
        free(room);
        b->nrooms--;
    }
}

void bk_rooms_leave_all(struct bk *b, struct bk_conn *c, bool persist)
{
    if (c->nrooms == 0)
        return;
    if (persist) {
        /* One HDEL with every field of this connection. */
        size_t n = (size_t)c->nrooms + 2;
        const char **argv = calloc(n, sizeof(*argv));
        size_t *lens = calloc(n, sizeof(*lens));
        char *fields = malloc((size_t)c->nrooms * 48);
        char key[256];
        if (argv && lens && fields) {
            watch_key(key, sizeof(key), c->gw);
            argv[0] = "HDEL";
            argv[1] = key;
            size_t i = 2;
            struct bk_member *m;
            LIST_FOREACH(m, &c->rooms, in_conn)
            {
                char *f = fields + (i - 2) * 48;
                watch_field(f, 48, c, m->room->target);
                argv[i++] = f;
            }
            for (size_t j = 0; j < n; j++)
                lens[j] = strlen(argv[j]);
            if (rds_cmd_argv(&b->cmd, NULL, NULL, (int)n, argv, lens) != 0)
                log_warn_rl(1, "redis down: a write was not sent");
        }
        free(argv);
        free(lens);
        free(fields);
    }
    struct bk_member *m;
    while ((m = LIST_FIRST(&c->rooms)) != NULL)
        member_free(b, m);
}

/* The profile snapshot {user, stats, online} of row; full: with friends. */
struct friends_json {
    struct json_object *arr;
};

static void friends_json_add(void *arg, int64_t id, const char *username)
{
    struct friends_json *f = arg;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(id));
    json_object_object_add(o, "username", json_object_new_string(username));
    json_object_array_add(f->arr, o);
}

static struct json_object *stats_json(int64_t id, long wins, long losses)
{
    struct json_object *s = json_object_new_object();
    json_object_object_add(s, "userId", json_object_new_int64(id));
    json_object_object_add(s, "wins", json_object_new_int64(wins));
    json_object_object_add(s, "losses", json_object_new_int64(losses));
    double ratio =
        wins + losses > 0 ? round(1000.0 * (double)wins / (double)(wins + losses)) / 1000 : 0;
    json_object_object_add(s, "ratio", json_object_new_double(ratio));
    return s;
}

static struct json_object *snapshot(struct bk *b, const struct bk_user_row *row, bool full)
{
    struct json_object *user = json_object_new_object();
    json_object_object_add(user, "userID", json_object_new_int64(row->id));
    json_object_object_add(user, "userId", json_object_new_int64(row->id));
    json_object_object_add(user, "id", json_object_new_int64(row->id));
    json_object_object_add(user, "username", json_object_new_string(row->username));
    json_object_object_add(user, "avatar",
                           row->has_avatar ? json_object_new_string(row->avatar) : NULL);
    if (full) {
        struct friends_json f = {json_object_new_array()};
        if (bk_store_friends_each(&b->store, row->id, friends_json_add, &f) < 0)
            log_error("friends of %lld: %s", (long long)row->id, b->store.err);
        json_object_object_add(user, "friends", f.arr);
    }
    long wins = 0, losses = 0;
    if (bk_store_stats_get(&b->store, row->id, &wins, &losses) < 0)
        log_error("stats of %lld: %s", (long long)row->id, b->store.err);
    struct json_object *stats = stats_json(row->id, wins, losses);
    if (!full) {
        struct json_object *pu = public_copy(b, user), *ps = public_copy(b, stats);
        json_object_put(user);
        json_object_put(stats);
        user = pu;
        stats = ps;
    }
    struct bk_user *u = bk_user_get(b, row->id, false);
    struct json_object *snap = json_object_new_object();
    json_object_object_add(snap, "user", user);
    json_object_object_add(snap, "stats", stats);
    json_object_object_add(snap, "online", json_object_new_boolean(u && u->online));
    return snap;
}

static void watch_profile(struct bk *b, const struct origin *o, struct json_object *args,
                          bool watch)
{
    int64_t target;
    if (!id_field(args, "userId", &target)) {
        answer_error(b, o, 400, "bad-field", "userId must be a user id");
        return;
    }
    if (!watch) {
        struct bk_member *m = member_find(o->c, target);
        if (m) {
            char key[256], field[48];
            watch_key(key, sizeof(key), o->c->gw);
            watch_field(field, sizeof(field), o->c, target);
            rds_cmd(&b->cmd, NULL, NULL, "HDEL %s %s", key, field);
            member_free(b, m);
        }
        ANSWER_OK_LIT(b, o, "{\"ok\":true}");
        return;
    }
    struct bk_user_row row;
    int f = bk_store_user_by_id(&b->store, target, &row);
    if (f <= 0) {
        if (f < 0)
            log_error("user %lld: %s", (long long)target, b->store.err);
        answer_error(b, o, 404, "unknown-user", "no such user");
        return;
    }
    if (room_join(b, o->c, target, true) < 0) {
        answer_error(b, o, 429, "too-many-rooms", "this connection watches too many profiles");
        return;
    }
    if (o->c->kind == 's' && o->e->has_req) {
        const struct bk_user *viewer = o->c->user;
        bool full = viewer && (viewer->id == target ||
                               bk_store_are_friends(&b->store, viewer->id, target) == 1);
        struct json_object *snap = snapshot(b, &row, full);
        answer_ok_json(b, o, snap);
        json_object_put(snap);
    }
}

/* ---- notifications from the application -------------------------------------- */

/* Sends event {key: obj} about user target through deliver_about() (full
 * object to the user and friends, public fields to the rest), then answers
 * the notifier. Takes ownership of obj. */
static void announce_about(struct bk *b, const struct origin *o, int64_t target, const char *event,
                           const char *key, struct json_object *obj)
{
    struct json_object *full = json_object_new_object(), *pub = json_object_new_object();
    json_object_object_add(pub, key, public_copy(b, obj));
    json_object_object_add(full, key, obj);
    size_t n = deliver_about(b, target, event, full, pub);
    log_info("%s of user %lld reached %zu connections", event, (long long)target, n);
    json_object_put(full);
    json_object_put(pub);
    ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

static void notify_profile(struct bk *b, const struct origin *o, const struct bk_user_row *row,
                           struct json_object *given)
{
    struct json_object *v;
    const char *name = NULL, *avatar = NULL;
    if (json_object_object_get_ex(given, "username", &v) &&
        json_object_is_type(v, json_type_string))
        name = json_object_get_string(v);
    if (json_object_object_get_ex(given, "avatar", &v) && json_object_is_type(v, json_type_string))
        avatar = json_object_get_string(v);
    if (name && !bk_username_valid(name)) {
        answer_error(b, o, 400, "bad-field", "username must be 1-64 of A-Z a-z 0-9 _ . -");
        return;
    }
    if ((name && strcmp(name, row->username) != 0) || avatar) {
        /* Keep our copy current so snapshots and presence events agree
         * with what was just announced. */
        if (bk_store_user_update(&b->store, row->id, name, avatar) < 0)
            log_warn("profile of user %lld not stored: %s", (long long)row->id, b->store.err);
        struct bk_user *u = bk_user_get(b, row->id, false);
        if (u && name)
            snprintf(u->username, sizeof(u->username), "%s", name);
    }
    /* The backend's object, with the id under the contract's name, and the
     * username filled in when it sent none. */
    struct json_object *user = json_object_new_object();
    json_object_object_foreach(given, k, val) json_object_object_add(user, k, json_object_get(val));
    json_object_object_add(user, "userID", json_object_new_int64(row->id));
    if (!name)
        json_object_object_add(user, "username", json_object_new_string(row->username));
    announce_about(b, o, row->id, "profile-update", "user", user);
}

static bool count_field(struct json_object *o, const char *key, long *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return false;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
        json_object_get_int64(v) > 1000000000)
        return false;
    *out = (long)json_object_get_int64(v);
    return true;
}

static void notify_stats(struct bk *b, const struct origin *o, const struct bk_user_row *row,
                         struct json_object *given)
{
    long wins = 0, losses = 0;
    if (bk_store_stats_get(&b->store, row->id, &wins, &losses) < 0)
        log_error("stats of %lld: %s", (long long)row->id, b->store.err);
    bool w = count_field(given, "wins", &wins), l = count_field(given, "losses", &losses);
    if (w || l) {
        if (bk_store_stats_set_id(&b->store, row->id, wins, losses) < 0)
            log_warn("stats of user %lld not stored: %s", (long long)row->id, b->store.err);
    }
    /* The stored numbers (with ratio) under the backend's own fields. */
    struct json_object *stats = stats_json(row->id, wins, losses), *v;
    json_object_object_foreach(given, k, val)
    {
        if (strcmp(k, "wins") && strcmp(k, "losses") && strcmp(k, "userId"))
            json_object_object_add(stats, k, json_object_get(val));
    }
    if (json_object_object_get_ex(given, "ratio", &v))
        json_object_object_add(stats, "ratio", json_object_get(v));
    announce_about(b, o, row->id, "game-stats-update", "stats", stats);
}

/* Tells every gateway to refuse this account's tokens from now on. */
static void announce_deleted(struct bk *b, int64_t id)
{
    rds_cmd(&b->cmd, NULL, NULL, "SADD %s %lld", BK_DELETED_KEY, (long long)id);
    struct ev_args a;
    ev_args_init(&a);
    ev_args_adds(&a, "t");
    ev_args_adds(&a, "deleted");
    ev_args_adds(&a, "u");
    ev_args_add_i64(&a, id);
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    bk_xadd_gw(b, gw, &a);
}

static void notify_deleted(struct bk *b, const struct origin *o, const struct bk_user_row *row)
{
    struct bk_user *u = bk_user_get(b, row->id, false);
    size_t tabs = 0;
    if (u) {
        /* The event first, then the close: each gateway's stream keeps
         * this order, so every tab sees why it is being closed. */
        struct bk_targets t = {0};
        bk_targets_add_user(&t, u);
        tabs = bk_targets_send(b, &t, "account-deleted", "{}", 2);
        bk_targets_add_user(&t, u);
        bk_targets_kick(b, &t, 4003, "account-deleted");
        bk_targets_free(&t);
        bk_user_delete(b, u); /* offline now, out of the queue; u is gone */
    }
    if (bk_store_user_delete_id(&b->store, row->id) < 0)
        log_error("deleting user %lld: %s", (long long)row->id, b->store.err);
    announce_deleted(b, row->id);
    log_info("account of user %lld (%s) deleted: %zu tabs closed", (long long)row->id,
             row->username, tabs);
    ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

static void notify(struct bk *b, const struct origin *o, struct json_object *args)
{
    const struct ev_entry *e = o->e;
    int64_t id;
    if (!args) {
        answer_error(b, o, 400, "bad-json", "the body must be a JSON object");
        return;
    }
    if (!id_field(args, "userId", &id)) {
        answer_error(b, o, 400, "bad-field", "userId must be a user id");
        return;
    }
    bool profile = ev_is(e->event, e->event_len, "profile-update");
    bool stats = ev_is(e->event, e->event_len, "game-stats-update");
    struct json_object *given = profile ? obj_field(args, "user") : obj_field(args, "stats");
    if ((profile || stats) && !given) {
        answer_error(b, o, 400, "bad-field",
                     profile ? "user must be an object" : "stats must be an object");
        return;
    }
    struct bk_user_row row;
    int f = bk_store_user_by_id(&b->store, id, &row);
    if (f < 0) {
        log_error("user %lld: %s", (long long)id, b->store.err);
        answer_error(b, o, 503, "unavailable", "database error");
        return;
    }
    if (f == 0) {
        /* A replayed deletion finds the user gone: it already took effect. */
        if (!profile && !stats && bk_store_is_deleted(&b->store, id) == 1) {
            ANSWER_OK_LIT(b, o, "{\"ok\":true}");
            return;
        }
        answer_error(b, o, 404, "unknown-user", "no such user");
        return;
    }
    b->n_notifications++;
    if (profile)
        notify_profile(b, o, &row, given);
    else if (stats)
        notify_stats(b, o, &row, given);
    else
        notify_deleted(b, o, &row);
}

static bool is_notify_event(const struct ev_entry *e)
{
    return ev_is(e->event, e->event_len, "profile-update") ||
           ev_is(e->event, e->event_len, "game-stats-update") ||
           ev_is(e->event, e->event_len, "account-deleted");
}

void bk_social_notify(struct bk *b, const struct ev_entry *e)
{
    struct origin o = {.e = e};
    if (!is_notify_event(e)) {
        log_warn_rl(5, "notify entry with unknown event \"%.*s\"", (int)e->event_len, e->event);
        return;
    }
    struct json_object *args = ev_json_parse(e->data, e->data_len, json_type_object);
    notify(b, &o, args);
    json_object_put(args);
}

/* ---- chat and direct messages ------------------------------------------------- */

/* Who is speaking: the connection's user, or for HTTP the token's user.
 * Returns false after answering auth-required or unknown-user. */
static bool sender_of(struct bk *b, const struct origin *o, int64_t *id, char *name, size_t size)
{
    const struct bk_user *u = o->c ? o->c->user : NULL;
    if (o->c && !u) {
        answer_error(b, o, 401, "auth-required", "guests may not do this: log in first");
        return false;
    }
    if (!o->c) {
        u = o->e->user > 0 ? bk_user_get(b, o->e->user, false) : NULL;
        if (!u || !u->username[0]) {
            struct bk_user_row row;
            if (o->e->user <= 0) {
                answer_error(b, o, 401, "auth-required", "log in first");
                return false;
            }
            if (bk_store_user_by_id(&b->store, o->e->user, &row) != 1) {
                /* A valid token whose user we do not know: the same word
                 * as at connection time, so the developer sees why. */
                answer_error(b, o, 401, "unknown-user", "unknown user");
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
static const char *chat_message(struct bk *b, const struct origin *o, struct json_object *args)
{
    struct json_object *v;
    if (!args || !json_object_object_get_ex(args, "message", &v) ||
        !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
        answer_error(b, o, 400, "bad-field", "message must be a non-empty string");
        return NULL;
    }
    const char *m = json_object_get_string(v);
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)m; *p; p++)
        chars += (*p & 0xC0) != 0x80; /* count code points, not bytes */
    if (chars > b->cfg.chat_max_length) {
        answer_error(b, o, 413, "message-too-long", "the message is too long");
        return NULL;
    }
    return m;
}

/* Takes one message from the user's bucket. Returns false after answering
 * rate-limited. */
static bool rate_take(struct bk *b, const struct origin *o, int64_t user)
{
    int64_t now = bk_now_ms();
    struct bk_rate key = {.user = user};
    struct bk_rate *r = RB_FIND(bk_rate_tree, &b->rates, &key);
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return true; /* fail open: memory is the bigger problem */
        r->user = user;
        r->tokens = (double)b->cfg.chat_burst;
        r->last_ms = now;
        RB_INSERT(bk_rate_tree, &b->rates, r);
    } else {
        TAILQ_REMOVE(&b->rates_lru, r, lru);
        r->tokens += (double)(now - r->last_ms) * b->cfg.chat_rate / 1000.0;
        if (r->tokens > (double)b->cfg.chat_burst)
            r->tokens = (double)b->cfg.chat_burst;
        r->last_ms = now;
    }
    TAILQ_INSERT_TAIL(&b->rates_lru, r, lru);
    if (r->tokens < 1.0) {
        b->n_rate_limited++;
        log_info("user %lld is over the chat rate", (long long)user);
        answer_error(b, o, 429, "rate-limited", "too many messages: slow down");
        return false;
    }
    r->tokens -= 1.0;
    return true;
}

static struct json_object *chat_json(int64_t id, const char *name, const char *message)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "user", json_object_new_string(name));
    json_object_object_add(o, "userId", json_object_new_int64(id));
    json_object_object_add(o, "message", json_object_new_string(message));
    return o;
}

static void livechat(struct bk *b, const struct origin *o, struct json_object *args)
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
    b->n_chat++;
    ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

static void direct_message(struct bk *b, const struct origin *o, struct json_object *args)
{
    int64_t id;
    char name[BK_USERNAME_MAX + 1];
    const char *message;
    struct json_object *to;
    if (!sender_of(b, o, &id, name, sizeof(name)))
        return;
    if (!args || !json_object_object_get_ex(args, "to", &to)) {
        answer_error(b, o, 400, "bad-field", "to must be a username or a user id");
        return;
    }
    if (!(message = chat_message(b, o, args)))
        return;
    struct bk_user_row row;
    int f = resolve_user(b, to, &row);
    if (f <= 0) {
        if (f < 0)
            log_error("recipient lookup: %s", b->store.err);
        answer_error(b, o, 404, "unknown-user", "no such recipient");
        return;
    }
    if (!rate_take(b, o, id))
        return;
    struct bk_user *u = bk_user_get(b, row.id, false);
    size_t tabs = 0;
    if (u) {
        struct bk_targets t = {0};
        bk_targets_add_user(&t, u);
        struct json_object *ev = chat_json(id, name, message);
        size_t jl;
        const char *js = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN, &jl);
        tabs = bk_targets_send(b, &t, "direct_message", js, jl);
        json_object_put(ev);
        bk_targets_free(&t);
    }
    log_debug("DM from %lld to %lld: %zu tabs", (long long)id, (long long)row.id, tabs);
    b->n_dm++;
    ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

/* ---- matchmaking ---------------------------------------------------------------- */

void bk_queue_remove(struct bk *b, struct bk_user *u)
{
    if (!u->queued)
        return;
    TAILQ_REMOVE(&b->queue, u, queue);
    u->queued = false;
    b->nqueued--;
    rds_cmd(&b->cmd, NULL, NULL, "LREM %s 0 %lld", BK_QUEUE_KEY, (long long)u->id);
}

static void queue_push(struct bk *b, struct bk_user *u, bool persist)
{
    TAILQ_INSERT_TAIL(&b->queue, u, queue);
    u->queued = true;
    b->nqueued++;
    if (persist)
        rds_cmd(&b->cmd, NULL, NULL, "RPUSH %s %lld", BK_QUEUE_KEY, (long long)u->id);
}

static void send_match(struct bk *b, const char *match_id, struct bk_user *to,
                       const struct bk_user *opponent)
{
    struct json_object *ev = json_object_new_object(), *op = json_object_new_object();
    json_object_object_add(op, "userId", json_object_new_int64(opponent->id));
    json_object_object_add(op, "username", json_object_new_string(opponent->username));
    json_object_object_add(ev, "matchId", json_object_new_string(match_id));
    json_object_object_add(ev, "opponent", op);
    struct bk_targets t = {0};
    bk_targets_add_user(&t, to);
    size_t jl;
    const char *js = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN, &jl);
    bk_targets_send(b, &t, "match-found", js, jl);
    bk_targets_free(&t);
    json_object_put(ev);
}

static void matchmaking(struct bk *b, const struct origin *o, bool join)
{
    struct bk_user *u = o->c->user;
    if (!u) {
        answer_error(b, o, 401, "auth-required", "guests may not play: log in first");
        return;
    }
    if (!join) {
        bk_queue_remove(b, u);
        ANSWER_OK_LIT(b, o, "{\"ok\":true,\"status\":\"left\"}");
        return;
    }
    if (u->queued) {
        ANSWER_OK_LIT(b, o, "{\"ok\":true,\"status\":\"queued\"}");
        return;
    }
    struct bk_user *other = TAILQ_FIRST(&b->queue);
    if (!other) {
        queue_push(b, u, true);
        ANSWER_OK_LIT(b, o, "{\"ok\":true,\"status\":\"queued\"}");
        return;
    }
    bk_queue_remove(b, other);
    /* Unique across broker restarts: wall clock plus a counter. */
    char match_id[48];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(match_id, sizeof(match_id), "m%llx-%llx",
             (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000,
             (unsigned long long)++b->next_match);
    send_match(b, match_id, other, u);
    send_match(b, match_id, u, other);
    b->n_matches++;
    log_info("match %s: user %lld vs user %lld", match_id, (long long)other->id, (long long)u->id);
    ANSWER_OK_LIT(b, o, "{\"ok\":true,\"status\":\"matched\"}");
}

/* ---- search ----------------------------------------------------------------------- */

struct search_ctx {
    struct bk *b;
    struct json_object *arr;
};

static void search_row(void *arg, const struct bk_user_row *row)
{
    struct search_ctx *s = arg;
    struct bk_user *u = bk_user_get(s->b, row->id, false);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(row->id));
    json_object_object_add(o, "username", json_object_new_string(row->username));
    json_object_object_add(o, "avatar",
                           row->has_avatar ? json_object_new_string(row->avatar) : NULL);
    json_object_object_add(o, "online", json_object_new_boolean(u && u->online));
    json_object_array_add(s->arr, o);
}

static void search(struct bk *b, const struct origin *o, struct json_object *args)
{
    struct json_object *q, *v;
    int64_t limit = 20, offset = 0;
    if (!args || !json_object_object_get_ex(args, "q", &q) ||
        !json_object_is_type(q, json_type_string) ||
        json_object_get_string_len(q) > BK_SEARCH_MAX_Q) {
        answer_error(b, o, 400, "bad-field", "q must be a prefix of at most 64 characters");
        return;
    }
    if (json_object_object_get_ex(args, "limit", &v))
        limit = json_object_get_int64(v);
    if (json_object_object_get_ex(args, "offset", &v))
        offset = json_object_get_int64(v);
    if (limit < 1 || limit > 50 || offset < 0 || offset > 1000000) {
        answer_error(b, o, 400, "bad-field", "limit must be 1..50 and offset >= 0");
        return;
    }
    struct search_ctx s = {b, json_object_new_array()};
    if (bk_store_search(&b->store, json_object_get_string(q), (int)limit, (int)offset, search_row,
                        &s) < 0) {
        log_error("search: %s", b->store.err);
        answer_error(b, o, 503, "unavailable", "database error");
    } else {
        size_t jl;
        const char *js = json_object_to_json_string_length(s.arr, JSON_C_TO_STRING_PLAIN, &jl);
        bk_reply(b, o->gw, o->e, 200, js, jl);
    }
    json_object_put(s.arr);
}

/* ---- who: identity and names for a client ---------------------------------------- */

/* The answer's length cap: a page asks for the names on its online list. */
#define BK_GET_USERS_MAX 100

/* whoami: {"id","username"} of the connection's user, {"id":0} for a guest
 * (the Socket.IO CONNECT answer carries only the session id). */
static void whoami(struct bk *b, const struct origin *o)
{
    char buf[160];
    int n;
    if (o->c->user)
        n = snprintf(buf, sizeof(buf), "{\"id\":%lld,\"username\":\"%s\"}",
                     (long long)o->c->user->id, o->c->user->username);
    else
        n = snprintf(buf, sizeof(buf), "{\"id\":0}");
    answer_ok(b, o, buf, (size_t)n);
}

/* get-users {ids:[...]}: [{"id","username","avatar","online"}] for the
 * known ones (public fields only, like search), at most 100 ids. */
static void get_users(struct bk *b, const struct origin *o, struct json_object *args)
{
    struct json_object *ids;
    if (!args || !json_object_object_get_ex(args, "ids", &ids) ||
        !json_object_is_type(ids, json_type_array) ||
        json_object_array_length(ids) > BK_GET_USERS_MAX) {
        answer_error(b, o, 400, "bad-field", "ids must be an array of at most 100 user ids");
        return;
    }
    struct search_ctx sc = {b, json_object_new_array()};
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        int64_t id;
        struct bk_user_row row;
        if (id_value(json_object_array_get_idx(ids, i), &id) &&
            bk_store_user_by_id(&b->store, id, &row) == 1)
            search_row(&sc, &row);
    }
    answer_ok_json(b, o, sc.arr);
    json_object_put(sc.arr);
}

/* ---- entry points ------------------------------------------------------------------ */

bool bk_social_msg(struct bk *b, struct bk_conn *c, const struct ev_entry *e)
{
    struct origin o = {.gw = c->gw, .e = e, .c = c};
    struct json_object *args = ev_json_parse(e->data, e->data_len, json_type_object);
    bool handled = true;
    if (ev_is(e->event, e->event_len, "livechat"))
        livechat(b, &o, args);
    else if (ev_is(e->event, e->event_len, "direct_message"))
        direct_message(b, &o, args);
    else if (ev_is(e->event, e->event_len, "watch-profile"))
        watch_profile(b, &o, args, true);
    else if (ev_is(e->event, e->event_len, "unwatch-profile"))
        watch_profile(b, &o, args, false);
    else if (ev_is(e->event, e->event_len, "join-matchmaking"))
        matchmaking(b, &o, true);
    else if (ev_is(e->event, e->event_len, "leave-matchmaking"))
        matchmaking(b, &o, false);
    else if (ev_is(e->event, e->event_len, "whoami"))
        whoami(b, &o);
    else if (ev_is(e->event, e->event_len, "get-users"))
        get_users(b, &o, args);
    else
        handled = false;
    json_object_put(args);
    return handled;
}

bool bk_social_request(struct bk *b, struct bk_gw *gw, const struct ev_entry *e)
{
    struct origin o = {.gw = gw, .e = e};
    struct json_object *args = ev_json_parse(e->data, e->data_len, json_type_object);
    bool handled = true;
    if (ev_is(e->event, e->event_len, "search"))
        search(b, &o, args);
    else if (ev_is(e->event, e->event_len, "livechat"))
        livechat(b, &o, args);
    else if (ev_is(e->event, e->event_len, "direct_message"))
        direct_message(b, &o, args);
    else if (is_notify_event(e))
        notify(b, &o, args);
    else
        handled = false;
    json_object_put(args);
    return handled;
}

/* ---- state: load, resync, tick, free ------------------------------------------------ */

void bk_social_load_gw(struct bk *b, struct bk_gw *gw, void *redis_context)
{
    redisContext *rc = redis_context;
    redisReply *h = redisCommand(rc, "HGETALL %s%s", BK_WATCH_PREFIX, gw->id);
    size_t n = 0;
    for (size_t j = 0; h && h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements; j += 2) {
        char *colon;
        uint64_t cid = strtoull(h->element[j]->str, &colon, 10);
        if (*colon != ':')
            continue;
        struct bk_conn *c = bk_conn_find(b, gw, cid);
        if (c && room_join(b, c, strtoll(colon + 1, NULL, 10), false) == 1)
            n++;
    }
    freeReplyObject(h);
    if (n)
        log_info("gateway %s: %zu profile watches restored", gw->id, n);
}

void bk_social_load_queue(struct bk *b, void *redis_context)
{
    redisContext *rc = redis_context;
    redisReply *r = redisCommand(rc, "LRANGE %s 0 -1", BK_QUEUE_KEY);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        struct bk_user *u = bk_user_get(b, strtoll(r->element[i]->str, NULL, 10), false);
        if (u && u->nconns > 0 && !u->queued)
            queue_push(b, u, false);
    }
    freeReplyObject(r);
    /* Drop whoever left while no broker was running. */
    freeReplyObject(redisCommand(rc, "DEL %s", BK_QUEUE_KEY));
    struct bk_user *u;
    TAILQ_FOREACH(u, &b->queue, queue)
    freeReplyObject(redisCommand(rc, "RPUSH %s %lld", BK_QUEUE_KEY, (long long)u->id));
}

void bk_social_resync(struct bk *b)
{
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    rds_cmd(&b->cmd, NULL, NULL, "DEL %s%s", BK_WATCH_PREFIX, gw->id);
    struct bk_room *room;
    RB_FOREACH(room, bk_room_tree, &b->rooms)
    {
        struct bk_member *m;
        LIST_FOREACH(m, &room->members, in_room)
        rds_cmd(&b->cmd, NULL, NULL, "HSET %s%s %llu:%lld 1", BK_WATCH_PREFIX, m->conn->gw->id,
                (unsigned long long)m->conn->id, (long long)room->target);
    }
    rds_cmd(&b->cmd, NULL, NULL, "DEL %s", BK_QUEUE_KEY);
    struct bk_user *u;
    TAILQ_FOREACH(u, &b->queue, queue)
    rds_cmd(&b->cmd, NULL, NULL, "RPUSH %s %lld", BK_QUEUE_KEY, (long long)u->id);
}

void bk_social_tick(struct bk *b, int64_t now)
{
    /* Oldest use first: stop at the first bucket that still matters. */
    struct bk_rate *r;
    while ((r = TAILQ_FIRST(&b->rates_lru)) != NULL) {
        double full_at = r->tokens + (double)(now - r->last_ms) * b->cfg.chat_rate / 1000.0;
        if (full_at < (double)b->cfg.chat_burst && now - r->last_ms < BK_RATE_IDLE_MS)
            break;
        TAILQ_REMOVE(&b->rates_lru, r, lru);
        RB_REMOVE(bk_rate_tree, &b->rates, r);
        free(r);
    }
}

void bk_social_free(struct bk *b)
{
    struct bk_room *room, *rt;
    RB_FOREACH_SAFE(room, bk_room_tree, &b->rooms, rt)
    {
        struct bk_member *m;
        while ((m = LIST_FIRST(&room->members)) != NULL) {
            LIST_REMOVE(m, in_room);
            LIST_REMOVE(m, in_conn);
            m->conn->nrooms--;
            free(m);
        }
        RB_REMOVE(bk_room_tree, &b->rooms, room);
        free(room);
    }
    b->nrooms = 0;
    struct bk_rate *r;
    while ((r = TAILQ_FIRST(&b->rates_lru)) != NULL) {
        TAILQ_REMOVE(&b->rates_lru, r, lru);
        RB_REMOVE(bk_rate_tree, &b->rates, r);
        free(r);
    }
    while (TAILQ_FIRST(&b->queue))
        TAILQ_REMOVE(&b->queue, TAILQ_FIRST(&b->queue), queue);
    for (char **f = b->public_fields; f && *f; f++)
        free(*f);
    free(b->public_fields);
    b->public_fields = NULL;
}
