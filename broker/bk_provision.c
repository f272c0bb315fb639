/*
 * bk_provision.c - see bk_provision.h. The store decides (created, changed,
 * the same, taken); this file checks the fields, keeps the in-memory name
 * of an online user current and tells the watchers.
 */
#include "bk_provision.h"

#include "bk_presence.h"
#include "bk_rooms.h"
#include "jwt_auth.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* The optional avatar of args: absent (false), null or a string of at most
 * BK_AVATAR_MAX bytes (true, *avatar NULL for null). -1: anything else. */
static int avatar_field(struct json_object *args, const char **avatar)
{
    struct json_object *v;
    *avatar = NULL;
    if (!json_object_object_get_ex(args, "avatar", &v))
        return 0;
    if (!v)
        return 1;
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > BK_AVATAR_MAX)
        return -1;
    *avatar = json_object_get_string(v);
    return 1;
}

/* The store changed user id's name or avatar: the in-memory name (presence
 * events carry it) and every watcher follow. */
static void user_changed(struct bk *b, int64_t id, const char *username)
{
    struct bk_user *u = bk_user_find(b, id);
    if (u)
        snprintf(u->username, sizeof(u->username), "%s", username);
    size_t n = bk_rooms_profile_changed(b, id);
    log_info("user %lld is now %s: %zu connections told", (long long)id, username, n);
}

static void answer_ok(struct bk *b, const struct bk_origin *o, int status, const char *key,
                      bool value)
{
    struct json_object *r = json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(1));
    json_object_object_add(r, key, json_object_new_boolean(value));
    bk_answer_http(b, o, status, r);
    json_object_put(r);
}

void bk_provision_user_put(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    int64_t id;
    struct json_object *v;
    const char *avatar;
    if (!args) {
        bk_answer_error(b, o, 400, "bad-json", "the body must be a JSON object");
        return;
    }
    if (!bk_id_field(args, "userId", &id) || id > JWT_AUTH_MAX_USER_ID) {
        bk_answer_error(b, o, 400, "bad-field", "userId must be a user id (1..2^53-1)");
        return;
    }
    if (!json_object_object_get_ex(args, "username", &v) ||
        !json_object_is_type(v, json_type_string) ||
        !bk_username_valid(json_object_get_string(v))) {
        bk_answer_error(b, o, 400, "bad-field", "username must be 1-64 of A-Z a-z 0-9 _ . -");
        return;
    }
    const char *name = json_object_get_string(v);
    int has_avatar = avatar_field(args, &avatar);
    if (has_avatar < 0) {
        bk_answer_error(b, o, 400, "bad-field", "avatar must be null or a string (<= 512 bytes)");
        return;
    }
    int r = bk_store_user_put(&b->store, id, name, has_avatar, avatar, NULL);
    switch (r) {
    case BK_PUT_TAKEN:
        bk_answer_error(b, o, 409, "username-taken", "another user has this username");
        return;
    case BK_PUT_DELETED:
        bk_answer_error(b, o, 409, "deleted-user",
                        "this id belonged to a deleted account: ids are never reused");
        return;
    case BK_PUT_ERROR:
        log_error("provisioning user %lld: %s", (long long)id, b->store.err);
        bk_answer_error(b, o, 503, "unavailable", "database error");
        return;
    case BK_PUT_CREATED:
        b->counters.provisioned++;
        log_info("user %lld (%s) provisioned", (long long)id, name);
        answer_ok(b, o, 201, "created", true);
        return;
    case BK_PUT_CHANGED:
        b->counters.provisioned++;
        user_changed(b, id, name);
        break;
    default:
        break;
    }
    answer_ok(b, o, 200, "created", false);
}

static void friend_set(struct bk *b, const struct bk_origin *o, struct json_object *args, bool on)
{
    int64_t a, f;
    if (!args) {
        bk_answer_error(b, o, 400, "bad-json", "the body must be a JSON object");
        return;
    }
    if (!bk_id_field(args, "userId", &a) || !bk_id_field(args, "friendId", &f)) {
        bk_answer_error(b, o, 400, "bad-field", "userId and friendId must be user ids");
        return;
    }
    if (a == f) {
        bk_answer_error(b, o, 400, "bad-field", "a user cannot befriend themself");
        return;
    }
    int r = bk_store_friend_set(&b->store, a, f, on);
    if (r == BK_FRIEND_UNKNOWN) {
        bk_answer_error(b, o, 404, "unknown-user", "no user has one of these ids");
        return;
    }
    if (r < 0) {
        log_error("friendship %lld-%lld: %s", (long long)a, (long long)f, b->store.err);
        bk_answer_error(b, o, 503, "unavailable", "database error");
        return;
    }
    if (r == 1) {
        /* Each side's watchers get its profile in the shape the privacy
         * rule gives now: the new friend the full one, the former friend
         * the public one; both friends lists change. */
        b->counters.provisioned++;
        size_t n = bk_rooms_profile_changed(b, a) + bk_rooms_profile_changed(b, f);
        const struct bk_user *ua = bk_user_find(b, a), *uf = bk_user_find(b, f);
        if (on && b->cfg.scope_related && ua && uf) {
            /* Each now hears the other's transitions: tell them where
             * they stand. */
            bk_presence_tell(b, ua, uf);
            bk_presence_tell(b, uf, ua);
        }
        log_info("users %lld and %lld are %s: %zu connections told", (long long)a, (long long)f,
                 on ? "friends" : "no longer friends", n);
    }
    answer_ok(b, o, 200, "changed", r == 1);
}

void bk_provision_friend_put(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    friend_set(b, o, args, true);
}

void bk_provision_friend_delete(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    friend_set(b, o, args, false);
}

/* ---- just-in-time users ------------------------------------------------------ */

void bk_provision_jit(struct bk *b, const struct bk_origin *o, struct json_object *args)
{
    (void)o;
    int64_t id;
    struct json_object *v;
    const char *avatar;
    if (!b->cfg.jit_users || !bk_id_field(args, "userId", &id) || id > JWT_AUTH_MAX_USER_ID)
        return;
    struct bk_user_row row;
    int known = bk_store_user_by_id(&b->store, id, &row);
    if (known < 0) {
        log_warn_rl(5, "user %lld: not created from its claims: %s", (long long)id, b->store.err);
        return;
    }
    char name[BK_USERNAME_MAX + 1];
    bool claimed = json_object_object_get_ex(args, "username", &v) &&
                   json_object_is_type(v, json_type_string) &&
                   bk_username_valid(json_object_get_string(v));
    if (claimed)
        snprintf(name, sizeof(name), "%s", json_object_get_string(v));
    else if (known)
        snprintf(name, sizeof(name), "%s", row.username);
    else
        snprintf(name, sizeof(name), "user%lld", (long long)id);
    int has_avatar = avatar_field(args, &avatar) == 1;
    int r = bk_store_user_put(&b->store, id, name, has_avatar, avatar, NULL);
    if (r == BK_PUT_TAKEN) {
        /* Someone else has the claimed name: a known user keeps its own, a
         * new one gets its id appended. */
        char alt[BK_USERNAME_MAX + 1], suffix[24];
        int sl = snprintf(suffix, sizeof(suffix), "-%lld", (long long)id);
        if (known)
            snprintf(alt, sizeof(alt), "%s", row.username);
        else
            snprintf(alt, sizeof(alt), "%.*s%s", BK_USERNAME_MAX - sl, name, suffix);
        log_info("user %lld: claimed username %s is taken: %s %s", (long long)id, name,
                 known ? "kept" : "created as", alt);
        snprintf(name, sizeof(name), "%s", alt);
        r = bk_store_user_put(&b->store, id, name, has_avatar, avatar, NULL);
    }
    if (r == BK_PUT_CREATED) {
        b->counters.provisioned++;
        log_info("user %lld (%s) created from its token's claims", (long long)id, name);
    } else if (r == BK_PUT_CHANGED) {
        b->counters.provisioned++;
        user_changed(b, id, name);
    } else if (r == BK_PUT_DELETED) {
        log_info("user %lld: a token of a deleted account: not created again", (long long)id);
    } else if (r < 0) {
        log_warn_rl(5, "user %lld: not created from its claims: %s", (long long)id, b->store.err);
    }
}
