/*
 * bk_notify.c - see bk_notify.h. The three notifications share their
 * checks (a JSON object, a user id, the named object, a known user) and
 * differ in what they store and announce.
 *
 * Idempotence on replay: stored values are set, not incremented, and a
 * deletion of a deleted account is accepted without effect. A replayed
 * update is announced twice, which watchers absorb (it is a snapshot).
 */
#include "bk_notify.h"

#include "bk_feed.h"
#include "bk_out.h"
#include "bk_presence.h"
#include "bk_rooms.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * The checks every notification starts with. key: the object the body must
 * carry ("user", "stats"), NULL for none. Returns 1 with *row (and *given,
 * borrowed from args, when key is set) filled; 0 after answering (refused,
 * or a replayed deletion already done).
 */
static int notify_target(struct bk *b, const struct bk_origin *o, struct json_object *args,
                         const char *key, struct bk_user_row *row, struct json_object **given)
{
    int64_t id;
    if (!args) {
        bk_answer_error(b, o, 400, "bad-json", "the body must be a JSON object");
        return 0;
    }
    if (!bk_id_field(args, "userId", &id)) {
        bk_answer_error(b, o, 400, "bad-field", "userId must be a user id");
        return 0;
    }
    if (key && !(*given = bk_obj_field(args, key))) {
        bk_answer_error(b, o, 400, "bad-field",
                        strcmp(key, "user") == 0 ? "user must be an object"
                                                 : "stats must be an object");
        return 0;
    }
    int f = bk_store_user_by_id(&b->store, id, row);
    if (f < 0) {
        log_error("user %lld: %s", (long long)id, b->store.err);
        bk_answer_error(b, o, 503, "unavailable", "database error");
        return 0;
    }
    if (f == 0) {
        /* A replayed deletion finds the user gone: it already took effect. */
        if (!key && bk_store_is_deleted(&b->store, id) == 1) {
            BK_ANSWER_OK_LIT(b, o, "{\"ok\":true}");
            return 0;
        }
        bk_answer_error(b, o, 404, "unknown-user", "no such user");
        return 0;
    }
    b->counters.notifications++;
    return 1;
}

/* Sends event {key: obj} about user target through bk_rooms_deliver_about()
 * (full object to the user and friends, public fields to the rest), then
 * answers the notifier. Takes ownership of obj. */
static void announce_about(struct bk *b, const struct bk_origin *o, int64_t target,
                           const char *event, const char *key, struct json_object *obj)
{
    struct json_object *full = json_object_new_object(), *pub = json_object_new_object();
    json_object_object_add(pub, key, bk_rooms_public_copy(b, obj));
    json_object_object_add(full, key, obj);
    size_t n = bk_rooms_deliver_about(b, target, event, full, pub);
    log_info("%s of user %lld reached %zu connections", event, (long long)target, n);
    json_object_put(full);
    json_object_put(pub);
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}

void bk_notify_profile(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct bk_user_row row;
    struct json_object *given = NULL, *v;
    if (!notify_target(b, o, args, "user", &row, &given))
        return;
    const char *name = NULL, *avatar = NULL;
    if (json_object_object_get_ex(given, "username", &v) &&
        json_object_is_type(v, json_type_string))
        name = json_object_get_string(v);
    if (json_object_object_get_ex(given, "avatar", &v) && json_object_is_type(v, json_type_string))
        avatar = json_object_get_string(v);
    if (name && !bk_username_valid(name)) {
        bk_answer_error(b, o, 400, "bad-field", "username must be 1-64 of A-Z a-z 0-9 _ . -");
        return;
    }
    if ((name && strcmp(name, row.username) != 0) || avatar) {
        /* Keep our copy current so snapshots and presence events agree
         * with what was just announced. */
        if (bk_store_user_update(&b->store, row.id, name, avatar) < 0)
            log_warn("profile of user %lld not stored: %s", (long long)row.id, b->store.err);
        struct bk_user *u = bk_user_find(b, row.id);
        if (u && name)
            snprintf(u->username, sizeof(u->username), "%s", name);
    }
    /* The backend's object, with the id under the contract's name, and the
     * username filled in when it sent none. */
    struct json_object *user = json_object_new_object();
    json_object_object_foreach(given, k, val) json_object_object_add(user, k, json_object_get(val));
    json_object_object_add(user, "userID", json_object_new_int64(row.id));
    if (!name)
        json_object_object_add(user, "username", json_object_new_string(row.username));
    announce_about(b, o, row.id, "profile-update", "user", user);
}

/* A game count of o[key]: an integer 0..10^9. true with *out set. */
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

void bk_notify_stats(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct bk_user_row row;
    struct json_object *given = NULL, *v;
    if (!notify_target(b, o, args, "stats", &row, &given))
        return;
    long wins = 0, losses = 0;
    if (bk_store_stats_get(&b->store, row.id, &wins, &losses) < 0)
        log_error("stats of %lld: %s", (long long)row.id, b->store.err);
    bool w = count_field(given, "wins", &wins), l = count_field(given, "losses", &losses);
    if (w || l) {
        if (bk_store_stats_set_id(&b->store, row.id, wins, losses) < 0)
            log_warn("stats of user %lld not stored: %s", (long long)row.id, b->store.err);
    }
    /* The stored numbers (with ratio) under the backend's own fields. */
    struct json_object *stats = bk_stats_json(row.id, wins, losses);
    json_object_object_foreach(given, k, val)
    {
        if (strcmp(k, "wins") && strcmp(k, "losses") && strcmp(k, "userId"))
            json_object_object_add(stats, k, json_object_get(val));
    }
    if (json_object_object_get_ex(given, "ratio", &v))
        json_object_object_add(stats, "ratio", json_object_get(v));
    announce_about(b, o, row.id, "game-stats-update", "stats", stats);
}

void bk_notify_deleted(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    struct bk_user_row row;
    if (!notify_target(b, o, args, NULL, &row, NULL))
        return;
    struct bk_user *u = bk_user_find(b, row.id);
    size_t tabs = 0;
    if (u) {
        /* The event first, then the close: each gateway's stream keeps
         * this order, so every tab sees why it is being closed. */
        tabs = bk_to_user(b, u, "account-deleted", "{}", 2);
        bk_kick_user(b, u, 4003, "account-deleted");
        bk_user_delete(b, u); /* offline now, out of the queue; u is gone */
    }
    if (bk_store_user_delete_id(&b->store, row.id) < 0)
        log_error("deleting user %lld: %s", (long long)row.id, b->store.err);
    bk_announce_deleted(b, row.id);
    char js[48];
    int jn = snprintf(js, sizeof(js), "{\"userId\":%lld}", (long long)row.id);
    bk_feed_add(b, "account-deleted", js, (size_t)jn, bk_wall_ms(b));
    log_info("account of user %lld (%s) deleted: %zu tabs closed", (long long)row.id, row.username,
             tabs);
    BK_ANSWER_OK_LIT(b, o, "{\"ok\":true}");
}
