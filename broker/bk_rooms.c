/*
 * bk_rooms.c - profile rooms and the privacy rule; see bk_rooms.h.
 *
 * Expected sizes: rooms are small (a profile is watched by a handful of
 * viewers) but a popular one may hold thousands; a connection is in at most
 * cfg.max_rooms rooms; friends lists are tens to hundreds. Every delivery
 * to several connections is grouped by gateway (bk_targets), so a gateway
 * gets one entry per event whatever the number of its recipients.
 *
 * Idempotence on replay: a join checks membership first and a leave of a
 * room the connection is not in does nothing.
 */
#include "bk_rooms.h"

#include "bk_out.h"
#include "i64v.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<conn id>:[p]<user id>": two 20-digit numbers, a colon, the presence
 * mark, the NUL. */
#define BK_WATCH_FIELD_MAX 48

static int room_cmp(const struct bk_room *a, const struct bk_room *b)
{
    return a->target < b->target ? -1 : a->target > b->target;
}
RB_GENERATE_INTERNAL(bk_room_tree, bk_room, node, room_cmp, static __attribute__((unused)))

/* ---- privacy ------------------------------------------------------------------ */

/* Parses cfg.public_fields ("a, b,c") into b->rooms.public_fields. */
static int parse_public_fields(struct bk *b)
{
    const char *list = b->cfg.public_fields ? b->cfg.public_fields : "";
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    b->rooms.public_fields = calloc(n + 1, sizeof(char *));
    if (!b->rooms.public_fields)
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
        if (l && !(b->rooms.public_fields[i++] = strndup(s, l)))
            return -1;
        if (!end)
            break;
        list = end + 1;
    }
    return 0;
}

static bool is_public(const struct bk *b, const char *key)
{
    for (char **f = b->rooms.public_fields; f && *f; f++)
        if (strcmp(*f, key) == 0)
            return true;
    return false;
}

struct json_object *bk_rooms_public_copy(const struct bk *b, struct json_object *o)
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
/* bk_store_friends_each() callback: collects the ids (the store lists them
 * in ascending order, as i64v_has_sorted() needs). A friend lost to a
 * failed allocation sees public fields only: the safe side. */
static void friend_add(void *arg, int64_t id, const char *username)
{
    (void)username;
    if (i64v_push(arg, id) != 0)
        log_warn_rl(1, "out of memory: a friend list was cut short (public fields sent)");
}

static bool sees_full(const struct i64v *friends, int64_t target, const struct bk_conn *c)
{
    if (!c->user)
        return false; /* guests see public fields only */
    int64_t v = c->user->id;
    return v == target || i64v_has_sorted(friends, v);
}

static struct bk_room *room_find(struct bk *b, int64_t target)
{
    struct bk_room key = {.target = target};
    return RB_FIND(bk_room_tree, &b->rooms.tree, &key);
}

size_t bk_rooms_deliver_about(struct bk *b, int64_t target, const char *event,
                              struct json_object *full, struct json_object *pub)
{
    struct i64v friends = {0};
    if (bk_store_friends_each(&b->store, target, friend_add, &friends) < 0)
        log_error("friends of %lld: %s (sending public fields only)", (long long)target,
                  b->store.err);
    struct bk_targets tf = {0}, tp = {0};
    struct bk_user *u = bk_user_find(b, target);
    if (u)
        bk_targets_add_user(&tf, u);
    struct bk_room *room = room_find(b, target);
    struct bk_member *m;
    if (room)
        LIST_FOREACH(m, &room->members, in_room)
        {
            if (m->kind == BK_WATCH_PROFILE)
                bk_targets_add(sees_full(&friends, target, m->conn) ? &tf : &tp, m->conn);
        }
    size_t reached = bk_targets_send_json(b, &tf, event, full);
    reached += bk_targets_send_json(b, &tp, event, pub);
    bk_targets_free(&tf);
    bk_targets_free(&tp);
    i64v_free(&friends);
    return reached;
}

/* ---- rooms -------------------------------------------------------------------- */

/* A profile watch is "<conn>:<target>", a presence watch "<conn>:p<target>". */
static void watch_field(char *buf, size_t size, const struct bk_conn *c, int64_t target,
                        uint8_t kind)
{
    snprintf(buf, size, "%llu:%s%lld", (unsigned long long)c->id,
             kind == BK_WATCH_PRESENCE ? "p" : "", (long long)target);
}

static void watch_key(char *buf, size_t size, const struct bk_gw *gw)
{
    snprintf(buf, size, "%s%s", BK_WATCH_PREFIX, gw->id);
}

/* HSET (join) or HDEL (leave) the membership of c in room target. */
static void watch_write(struct bk *b, bool join, const struct bk_conn *c, int64_t target,
                        uint8_t kind)
{
    char key[256], field[BK_WATCH_FIELD_MAX];
    watch_key(key, sizeof(key), c->gw);
    watch_field(field, sizeof(field), c, target, kind);
    const char *argv[] = {join ? "HSET" : "HDEL", key, field, "1"};
    bk_cmd_strs(b, join ? 4 : 3, argv);
}

static struct bk_member *member_find(struct bk_conn *c, int64_t target, uint8_t kind)
{
    struct bk_member *m;
    LIST_FOREACH(m, &c->rooms, in_conn)
    if (m->room->target == target && m->kind == kind)
        return m;
    return NULL;
}

/* The number of c's memberships of that kind. */
static unsigned member_count(const struct bk_conn *c, uint8_t kind)
{
    return kind == BK_WATCH_PRESENCE ? c->npresence : c->nrooms;
}

/* Counts one membership of that kind more (delta 1) or less (-1). The
 * config table keeps the limits checked before a join within the
 * bit-fields' widths; a count never goes below zero. */
static void member_count_add(struct bk_conn *c, uint8_t kind, int delta)
{
    if (kind == BK_WATCH_PRESENCE) {
        HERALD_ASSERT(delta > 0 ? c->npresence < BK_CONN_NPRESENCE_MAX : c->npresence > 0);
        c->npresence = (uint32_t)((int)c->npresence + delta) & BK_CONN_NPRESENCE_MAX;
    } else {
        HERALD_ASSERT(delta > 0 ? c->nrooms < BK_CONN_NROOMS_MAX : c->nrooms > 0);
        c->nrooms = (uint32_t)((int)c->nrooms + delta) & BK_CONN_NROOMS_MAX;
    }
}

static void room_free_if_empty(struct bk *b, struct bk_room *room)
{
    if (LIST_EMPTY(&room->members)) {
        RB_REMOVE(bk_room_tree, &b->rooms.tree, room);
        free(room);
        b->rooms.n--;
    }
}

/* Puts c in watching-user-<target> for kind. Returns 1 joined, 0 already
 * there, -1 at the limit of that kind (or out of memory). persist: HSET the
 * membership. */
static int room_join(struct bk *b, struct bk_conn *c, int64_t target, uint8_t kind, bool persist)
{
    if (member_find(c, target, kind))
        return 0;
    if (member_count(c, kind) >=
        (kind == BK_WATCH_PRESENCE ? b->cfg.max_presence_watch : b->cfg.max_rooms))
        return -1;
    struct bk_room *room = room_find(b, target);
    if (!room) {
        room = calloc(1, sizeof(*room));
        if (!room)
            return -1;
        room->target = target;
        LIST_INIT(&room->members);
        RB_INSERT(bk_room_tree, &b->rooms.tree, room);
        b->rooms.n++;
    }
    struct bk_member *m = calloc(1, sizeof(*m));
    if (!m) {
        room_free_if_empty(b, room);
        return -1;
    }
    m->room = room;
    m->conn = c;
    m->kind = kind;
    LIST_INSERT_HEAD(&room->members, m, in_room);
    LIST_INSERT_HEAD(&c->rooms, m, in_conn);
    member_count_add(c, kind, 1);
    if (persist)
        watch_write(b, true, c, target, kind);
    return 1;
}

static void member_free(struct bk *b, struct bk_member *m)
{
    struct bk_room *room = m->room;
    LIST_REMOVE(m, in_room);
    LIST_REMOVE(m, in_conn);
    member_count_add(m->conn, m->kind, -1);
    free(m);
    room_free_if_empty(b, room);
}

/* One HDEL with every room field of connection c. */
static void watch_delete_all(struct bk *b, struct bk_conn *c)
{
    size_t nm = (size_t)c->nrooms + c->npresence, n = nm + 2;
    const char **argv = calloc(n, sizeof(*argv));
    size_t *lens = calloc(n, sizeof(*lens));
    char *fields = malloc(nm * BK_WATCH_FIELD_MAX);
    char key[256];
    if (argv && lens && fields) {
        watch_key(key, sizeof(key), c->gw);
        argv[0] = "HDEL";
        argv[1] = key;
        size_t i = 2;
        struct bk_member *m;
        LIST_FOREACH(m, &c->rooms, in_conn)
        {
            char *f = fields + (i - 2) * BK_WATCH_FIELD_MAX;
            watch_field(f, BK_WATCH_FIELD_MAX, c, m->room->target, m->kind);
            argv[i++] = f;
        }
        for (size_t j = 0; j < n; j++)
            lens[j] = strlen(argv[j]);
        bk_cmd_argv(b, (int)n, argv, lens);
    }
    free(argv);
    free(lens);
    free(fields);
}

/* Hook conn_closing: the connection leaves every room. */
static void rooms_conn_closing(struct bk *b, struct bk_conn *c, bool persist)
{
    if (LIST_EMPTY(&c->rooms))
        return;
    if (persist)
        watch_delete_all(b, c);
    struct bk_member *m;
    while ((m = LIST_FIRST(&c->rooms)) != NULL)
        member_free(b, m);
}

/* Hook conn_persist: a detached connection's rooms leave Redis (they stay
 * in memory, so its events are still written); a recovered one's are
 * written again under its new gateway. */
static void rooms_conn_persist(struct bk *b, struct bk_conn *c, bool keep)
{
    if (LIST_EMPTY(&c->rooms))
        return;
    if (!keep) {
        watch_delete_all(b, c);
        return;
    }
    struct bk_member *m;
    LIST_FOREACH(m, &c->rooms, in_conn)
    watch_write(b, true, c, m->room->target, m->kind);
}

/* ---- the snapshot ---------------------------------------------------------------- */

struct friends_json {
    struct json_object *arr; /* borrowed */
};

static void friends_json_add(void *arg, int64_t id, const char *username)
{
    struct friends_json *f = arg;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(id));
    json_object_object_add(o, "username", json_object_new_string(username));
    json_object_array_add(f->arr, o);
}

struct json_object *bk_stats_json(int64_t id, long wins, long losses)
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

/* The user object of row as the store has it, with every field and the
 * friends list. Caller puts it. */
static struct json_object *user_full(struct bk *b, const struct bk_user_row *row)
{
    struct json_object *user = json_object_new_object();
    json_object_object_add(user, "userID", json_object_new_int64(row->id));
    json_object_object_add(user, "userId", json_object_new_int64(row->id));
    json_object_object_add(user, "id", json_object_new_int64(row->id));
    json_object_object_add(user, "username", json_object_new_string(row->username));
    json_object_object_add(user, "avatar",
                           row->has_avatar ? json_object_new_string(row->avatar) : NULL);
    struct friends_json f = {json_object_new_array()};
    if (bk_store_friends_each(&b->store, row->id, friends_json_add, &f) < 0)
        log_error("friends of %lld: %s", (long long)row->id, b->store.err);
    json_object_object_add(user, "friends", f.arr);
    return user;
}

size_t bk_rooms_profile_changed(struct bk *b, int64_t id)
{
    struct bk_user_row row;
    int f = bk_store_user_by_id(&b->store, id, &row);
    if (f <= 0) {
        if (f < 0)
            log_error("user %lld: %s", (long long)id, b->store.err);
        return 0;
    }
    struct json_object *user = user_full(b, &row);
    struct json_object *full = json_object_new_object(), *pub = json_object_new_object();
    json_object_object_add(pub, "user", bk_rooms_public_copy(b, user));
    json_object_object_add(full, "user", user);
    size_t n = bk_rooms_deliver_about(b, id, "profile-update", full, pub);
    json_object_put(full);
    json_object_put(pub);
    return n;
}

/* The profile snapshot {user, stats, online} of row; full: with friends and
 * every field, else the public fields only. Caller puts it. */
static struct json_object *snapshot(struct bk *b, const struct bk_user_row *row, bool full)
{
    struct json_object *user = user_full(b, row);
    long wins = 0, losses = 0;
    if (bk_store_stats_get(&b->store, row->id, &wins, &losses) < 0)
        log_error("stats of %lld: %s", (long long)row->id, b->store.err);
    struct json_object *stats = bk_stats_json(row->id, wins, losses);
    if (!full) {
        struct json_object *pu = bk_rooms_public_copy(b, user),
                           *ps = bk_rooms_public_copy(b, stats);
        json_object_put(user);
        json_object_put(stats);
        user = pu;
        stats = ps;
    }
    struct bk_user *u = bk_user_find(b, row->id);
    struct json_object *snap = json_object_new_object();
    json_object_object_add(snap, "user", user);
    json_object_object_add(snap, "stats", stats);
    json_object_object_add(snap, "online", json_object_new_boolean(u && u->online));
    return snap;
}

/* ---- client events --------------------------------------------------------------- */

/* The watched user's id of args. false after answering bad-field. */
static bool target_of(struct bk *b, const struct bk_origin *o, struct json_object *args,
                      int64_t *target)
{
    if (bk_id_field(args, "userId", target))
        return true;
    bk_answer_error(b, o, 400, "bad-field", "userId must be a user id");
    return false;
}

void bk_rooms_watch(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    int64_t target;
    if (!target_of(b, o, args, &target))
        return;
    struct bk_user_row row;
    int f = bk_store_user_by_id(&b->store, target, &row);
    if (f <= 0) {
        if (f < 0)
            log_error("user %lld: %s", (long long)target, b->store.err);
        bk_answer_error(b, o, 404, "unknown-user", "no such user");
        return;
    }
    if (room_join(b, o->c, target, BK_WATCH_PROFILE, true) < 0) {
        bk_answer_error(b, o, 429, "too-many-rooms", "this connection watches too many profiles");
        return;
    }
    /* Only a Socket.IO callback gets the snapshot: skip building it else. */
    if (o->c->sio && o->e->has_req) {
        const struct bk_user *viewer = o->c->user;
        bool full = viewer && (viewer->id == target ||
                               bk_store_are_friends(&b->store, viewer->id, target) == 1);
        struct json_object *snap = snapshot(b, &row, full);
        bk_answer_json(b, o, snap);
        json_object_put(snap);
    }
}

void bk_rooms_unwatch(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    int64_t target;
    if (!target_of(b, o, args, &target))
        return;
    struct bk_member *m = member_find(o->c, target, BK_WATCH_PROFILE);
    if (m) {
        watch_write(b, false, o->c, target, BK_WATCH_PROFILE);
        member_free(b, m);
    }
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

/* The ids of args.userIds (1..max of them), into ids (caller frees). false
 * after answering bad-field. */
static bool user_ids_of(struct bk *b, const struct bk_origin *o, struct json_object *args,
                        struct i64v *ids)
{
    struct json_object *v;
    size_t n = 0;
    bool ok = args && json_object_object_get_ex(args, "userIds", &v) &&
              json_object_is_type(v, json_type_array) &&
              (n = json_object_array_length(v)) <= (size_t)b->cfg.max_presence_watch;
    for (size_t i = 0; ok && i < n; i++) {
        int64_t id;
        ok = bk_id_value(json_object_array_get_idx(v, i), &id) && i64v_push(ids, id) == 0;
    }
    if (!ok) {
        i64v_free(ids);
        bk_answer_error(b, o, 400, "bad-field", "userIds must be an array of user ids");
    }
    return ok;
}

void bk_rooms_watch_presence(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct i64v ids = {0};
    if (!user_ids_of(b, o, args, &ids))
        return;
    /* All or nothing: count what is new first. */
    size_t fresh = 0;
    for (size_t i = 0; i < ids.n; i++)
        fresh += member_find(o->c, ids.v[i], BK_WATCH_PRESENCE) == NULL;
    if (o->c->npresence + fresh > (size_t)b->cfg.max_presence_watch) {
        i64v_free(&ids);
        bk_answer_error(b, o, 429, "too-many-rooms",
                        "this connection's presence list is full (max_presence_watch)");
        return;
    }
    struct json_object *online = json_object_new_array(), *r = json_object_new_object();
    for (size_t i = 0; i < ids.n; i++) {
        room_join(b, o->c, ids.v[i], BK_WATCH_PRESENCE, true);
        const struct bk_user *u = bk_user_find(b, ids.v[i]);
        if (u && u->online)
            json_object_array_add(online, json_object_new_int64(ids.v[i]));
    }
    /* The answer says who of them is online now: from here on their
     * transitions follow. */
    json_object_object_add(r, "ok", json_object_new_boolean(1));
    json_object_object_add(r, "online", online);
    bk_answer_json(b, o, r);
    json_object_put(r);
    i64v_free(&ids);
}

void bk_rooms_unwatch_presence(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct i64v ids = {0};
    if (!user_ids_of(b, o, args, &ids))
        return;
    for (size_t i = 0; i < ids.n; i++) {
        struct bk_member *m = member_find(o->c, ids.v[i], BK_WATCH_PRESENCE);
        if (m) {
            watch_write(b, false, o->c, ids.v[i], BK_WATCH_PRESENCE);
            member_free(b, m);
        }
    }
    i64v_free(&ids);
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

void bk_rooms_add_watchers(struct bk *b, int64_t target, struct bk_targets *t)
{
    struct bk_room *room = room_find(b, target);
    struct bk_member *m;
    if (room)
        LIST_FOREACH(m, &room->members, in_room)
    bk_targets_add(t, m->conn);
}

/* ---- hooks ----------------------------------------------------------------------- */

static int rooms_init(struct bk *b)
{
    RB_INIT(&b->rooms.tree);
    return parse_public_fields(b);
}

/* Start-up: the rooms of gw's connections, from herald:watch:<gw>. */
static void rooms_gw_loaded(struct bk *b, struct bk_gw *gw, redisContext *rc)
{
    redisReply *h = redisCommand(rc, "HGETALL %s%s", BK_WATCH_PREFIX, gw->id);
    size_t n = 0;
    for (size_t j = 0; h && h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements; j += 2) {
        char *colon;
        uint64_t cid = strtoull(h->element[j]->str, &colon, 10);
        if (*colon != ':')
            continue;
        uint8_t kind = colon[1] == 'p' ? BK_WATCH_PRESENCE : BK_WATCH_PROFILE;
        struct bk_conn *c = bk_conn_find(b, gw, cid);
        if (c && room_join(b, c, strtoll(colon + 1 + kind, NULL, 10), kind, false) == 1)
            n++;
    }
    freeReplyObject(h);
    if (n)
        log_info("gateway %s: %zu profile watches restored", gw->id, n);
}

static void rooms_resync(struct bk *b)
{
    char key[256], field[BK_WATCH_FIELD_MAX];
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    {
        watch_key(key, sizeof(key), gw);
        bk_cmd_strs(b, 2, (const char *[]){"DEL", key});
    }
    struct bk_room *room;
    RB_FOREACH(room, bk_room_tree, &b->rooms.tree)
    {
        struct bk_member *m;
        LIST_FOREACH(m, &room->members, in_room)
        {
            if (m->conn->flags & BK_CONN_DETACHED)
                continue; /* in memory only: Redis never holds it */
            watch_key(key, sizeof(key), m->conn->gw);
            watch_field(field, sizeof(field), m->conn, room->target, m->kind);
            bk_cmd_strs(b, 4, (const char *[]){"HSET", key, field, "1"});
        }
    }
}

static void rooms_free(struct bk *b)
{
    struct bk_room *room, *rt;
    RB_FOREACH_SAFE(room, bk_room_tree, &b->rooms.tree, rt)
    {
        struct bk_member *m;
        while ((m = LIST_FIRST(&room->members)) != NULL) {
            LIST_REMOVE(m, in_room);
            LIST_REMOVE(m, in_conn);
            member_count_add(m->conn, m->kind, -1);
            free(m);
        }
        RB_REMOVE(bk_room_tree, &b->rooms.tree, room);
        free(room);
    }
    b->rooms.n = 0;
    for (char **f = b->rooms.public_fields; f && *f; f++)
        free(*f);
    free(b->rooms.public_fields);
    b->rooms.public_fields = NULL;
}

static void rooms_watchers(struct bk *b, int64_t user, struct bk_targets *t)
{
    bk_rooms_add_watchers(b, user, t);
}

const struct bk_hooks bk_rooms_hooks = {
    .name = "rooms",
    .watchers = rooms_watchers,
    .init = rooms_init,
    .conn_closing = rooms_conn_closing,
    .conn_persist = rooms_conn_persist,
    .gw_loaded = rooms_gw_loaded,
    .resync = rooms_resync,
    .free = rooms_free,
};
