/*
 * test_store.c - the SQLite store on real temporary database files.
 *
 * Each group opens a fresh database so that its expectations are exact.
 * Iterating functions (friends, search) are checked against a transcript:
 * the rows their callback saw, joined as "id:name," or "name,", compared as
 * one string, so a failure prints what came back next to what was expected.
 */
#include "bk_checkpoint.h"
#include "bk_store.h"
#include "check.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- temporary databases ------------------------------------------------ */

/* Fills path (at least 32 bytes) with a fresh name that does not exist. */
static void tmp_path(char *path, size_t size)
{
    snprintf(path, size, "/tmp/herald-test-store-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    unlink(path);
}

/* Removes the database and its WAL side files. */
static void tmp_remove(const char *path)
{
    char side[256];
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}

/* Runs SQL on the store's connection (test setup only). */
static void sql(struct bk_store *s, const char *text)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, text, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "setup SQL failed: %s: %s\n", text, msg ? msg : "?");
    CHECK_INT(rc, SQLITE_OK);
    sqlite3_free(msg);
}

/* The integer in the first column of the first row of text, or -1. */
static long long sql_int(sqlite3 *db, const char *text)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db, text, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- transcripts -------------------------------------------------------- */

struct transcript {
    char text[1024];
    struct bk_store *store; /* borrowed; for the re-entrancy checks */
    int reenter_result;     /* what the nested call returned */
};

static void append(struct transcript *t, const char *piece)
{
    size_t n = strlen(t->text);
    snprintf(t->text + n, sizeof(t->text) - n, "%s", piece);
}

static void on_friend(void *arg, int64_t friend_id, const char *username)
{
    char piece[128];
    snprintf(piece, sizeof(piece), "%lld:%s,", (long long)friend_id, username);
    append(arg, piece);
}

static void on_row(void *arg, const struct bk_user_row *row)
{
    append(arg, row->username);
    append(arg, ",");
}

static void on_friend_reenter(void *arg, int64_t friend_id, const char *username)
{
    struct transcript *t = arg;
    struct transcript inner = {.text = ""};
    t->reenter_result = bk_store_friends_each(t->store, friend_id, on_friend, &inner);
    /* Other lookups are fine from inside the callback. */
    struct bk_user_row row;
    CHECK_INT(bk_store_user_by_id(t->store, friend_id, &row), 1);
    on_friend(arg, friend_id, username);
}

static void on_row_reenter(void *arg, const struct bk_user_row *row)
{
    struct transcript *t = arg;
    struct transcript inner = {.text = ""};
    t->reenter_result = bk_store_search(t->store, "", 10, 0, on_row, &inner);
    on_row(arg, row);
}

/* ---- groups ------------------------------------------------------------- */

/* Open, add, look up, friend, stats and delete by name: the admin path. */
static void test_basics(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    /* Without create, a missing database is an error. */
    CHECK_INT(bk_store_open(&s, path, false), -1);
    bk_store_close(&s);

    CHECK_INT(bk_store_open(&s, path, true), 0);
    CHECK_INT(sql_int(s.db, "PRAGMA user_version"), bk_store_schema_version());
    int64_t alice = bk_store_user_add(&s, "alice", "/a.png");
    int64_t bob = bk_store_user_add(&s, "Bob", NULL);
    CHECK(alice > 0);
    CHECK(bob > alice);
    /* Usernames are unique case-insensitively; bad names refused. */
    CHECK_INT(bk_store_user_add(&s, "ALICE", NULL), -1);
    CHECK(strstr(s.err, "taken") != NULL);
    CHECK_INT(bk_store_user_add(&s, "", NULL), -1);
    CHECK_INT(bk_store_user_add(&s, "a b", NULL), -1);
    CHECK_INT(bk_store_user_add(&s, "x'; DROP TABLE users; --", NULL), -1);
    CHECK(
        !bk_username_valid("0123456789012345678901234567890123456789012345678901234567890123456"));
    CHECK(bk_username_valid("a.b-c_d"));
    /* A refused add leaves no half-written user or stats row behind. */
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM users"), 2);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM game_stats"), 2);

    struct bk_user_row row;
    CHECK_INT(bk_store_user_by_name(&s, "bob", &row), 1);
    CHECK_INT(row.id, bob);
    CHECK_STR(row.username, "Bob");
    CHECK(!row.has_avatar);
    CHECK_INT(bk_store_user_by_id(&s, alice, &row), 1);
    CHECK_STR(row.avatar, "/a.png");
    CHECK(row.has_avatar);
    CHECK_INT(bk_store_user_by_id(&s, 999, &row), 0);
    CHECK_INT(bk_store_user_by_name(&s, "nobody", &row), 0);
    /* A lookup with SQL in it is just a name that does not exist. */
    CHECK_INT(bk_store_user_by_name(&s, "' OR 1=1 --", &row), 0);

    CHECK_INT(bk_store_friend_add(&s, "alice", "bob"), 0);
    CHECK_INT(bk_store_friend_add(&s, "alice", "bob"), 0); /* idempotent */
    CHECK_INT(bk_store_friend_add(&s, "alice", "alice"), -1);
    CHECK_INT(bk_store_friend_add(&s, "alice", "ghost"), -1);
    CHECK_INT(bk_store_stats_set(&s, "alice", 3, 4), 0);
    CHECK_INT(bk_store_stats_set(&s, "alice", -1, 4), -1);
    CHECK_INT(bk_store_stats_set(&s, "ghost", 1, 1), -1);
    CHECK(strstr(s.err, "no such user") != NULL);

    /* Deleting a user removes their friendships and stats (cascade) and
     * records the id, like bk_store_user_delete_id(). */
    CHECK_INT(bk_store_user_del(&s, "BOB"), 1);
    CHECK_INT(bk_store_user_del(&s, "bob"), 0);
    CHECK_INT(bk_store_is_deleted(&s, bob), 1);
    CHECK_INT(bk_store_is_deleted(&s, alice), 0);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM friendships"), 0);
    bk_store_close(&s);

    /* Reopening keeps data and does not re-run migrations. */
    CHECK_INT(bk_store_open(&s, path, false), 0);
    CHECK_INT(bk_store_user_by_name(&s, "alice", &row), 1);
    /* Nor does it forget deleted ids: bob's id stays retired. */
    CHECK(bk_store_user_add(&s, "carol", NULL) > bob);
    /* A database from a newer Herald is refused, not damaged. */
    sql(&s, "PRAGMA user_version = 99");
    bk_store_close(&s);
    CHECK_INT(bk_store_open(&s, path, false), -1);
    CHECK(strstr(s.err, "newer") != NULL);
    bk_store_close(&s);
    tmp_remove(path);
}

/* Names u1..u6; ids[i] is the id of u(i+1). */
static void add_users(struct bk_store *s, int64_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "u%d", i + 1);
        ids[i] = bk_store_user_add(s, name, NULL);
        CHECK(ids[i] > 0);
    }
}

static void test_friends(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t id[6];
    add_users(&s, id, 6);
    /* Added out of id order: the listing must sort by id all the same. */
    static const char *const pairs[][2] = {
        {"u1", "u5"}, {"u1", "u3"}, {"u2", "u1"}, {"u4", "u3"}, {"u1", "u6"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        CHECK_INT(bk_store_friend_add(&s, pairs[i][0], pairs[i][1]), 0);

    /* Fresh databases number users from 1, so ids are predictable. */
    CHECK_INT(id[0], 1);
    static const struct {
        int64_t user;
        int count;
        const char *transcript;
    } lists[] = {
        {1, 4, "2:u2,3:u3,5:u5,6:u6,"},
        {2, 1, "1:u1,"},
        {3, 2, "1:u1,4:u4,"},
        {4, 1, "3:u3,"},
        {5, 1, "1:u1,"},
        {6, 1, "1:u1,"},
        {999, 0, ""}, /* unknown user: no friends, not an error */
        {-1, 0, ""},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct transcript t = {.text = ""};
        CHECK_INT(bk_store_friends_each(&s, lists[i].user, on_friend, &t), lists[i].count);
        CHECK_STR(t.text, lists[i].transcript);
    }
    /* The listing reads names at call time: it follows renames. */
    CHECK_INT(bk_store_user_update(&s, 3, "Three", NULL), 1);
    {
        struct transcript t = {.text = ""};
        CHECK_INT(bk_store_friends_each(&s, 4, on_friend, &t), 1);
        CHECK_STR(t.text, "3:Three,");
    }

    /* Re-entering from the callback is refused; the outer listing goes on. */
    {
        struct transcript t = {.text = "", .store = &s, .reenter_result = 0};
        CHECK_INT(bk_store_friends_each(&s, 1, on_friend_reenter, &t), 4);
        CHECK_STR(t.text, "2:u2,3:Three,5:u5,6:u6,");
        CHECK_INT(t.reenter_result, -1);
        CHECK(strstr(s.err, "re-entered") != NULL);
        /* And the statement is usable again afterwards. */
        struct transcript again = {.text = ""};
        CHECK_INT(bk_store_friends_each(&s, 3, on_friend, &again), 2);
    }

    static const struct {
        int64_t a, b;
        int expect;
    } pairs_q[] = {
        {1, 2, 1},   {2, 1, 1}, /* both directions */
        {1, 5, 1},   {5, 1, 1},   {3, 4, 1},
        {4, 3, 1},   {2, 3, 0},   {3, 2, 0}, /* friends of friends are not friends */
        {5, 6, 0},   {1, 1, 0},              /* nor is anyone their own friend */
        {1, 999, 0}, {999, 1, 0}, {999, 998, 0},
    };
    for (size_t i = 0; i < sizeof(pairs_q) / sizeof(pairs_q[0]); i++)
        CHECK_INT(bk_store_are_friends(&s, pairs_q[i].a, pairs_q[i].b), pairs_q[i].expect);

    bk_store_close(&s);
    tmp_remove(path);
}

static void test_stats(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t id[2];
    add_users(&s, id, 2);
    /* u2 as the application might insert it: no game_stats row. */
    sql(&s, "DELETE FROM game_stats WHERE user_id = 2");
    CHECK_INT(id[1], 2);

    /* Steps in order: op 's' sets (wins, losses), 'g' gets; after a get
     * returning 1 the outputs must equal (want_w, want_l), otherwise they
     * must be left untouched (-7 sentinel). */
    static const struct {
        char op;
        int64_t user;
        long wins, losses;
        int expect;
        long want_w, want_l;
    } steps[] = {
        {'g', 1, 0, 0, 1, 0, 0}, /* new user: 0/0 */
        {'g', 2, 0, 0, 1, 0, 0}, /* no stats row: still found, 0/0 */
        {'s', 1, 3, 4, 1, 0, 0}, /* insert-or-update */
        {'g', 1, 0, 0, 1, 3, 4},
        {'s', 1, 10, 0, 1, 0, 0}, /* update */
        {'g', 1, 0, 0, 1, 10, 0},
        {'s', 2, 1, 2, 1, 0, 0}, /* creates the missing row */
        {'g', 2, 0, 0, 1, 1, 2},
        {'s', 1, -1, 0, -1, 0, 0}, /* negatives refused... */
        {'s', 1, 0, -5, -1, 0, 0},
        {'s', 999, -1, -1, -1, 0, 0}, /* ...before the user is looked up */
        {'g', 1, 0, 0, 1, 10, 0},     /* ...and change nothing */
        {'s', 999, 1, 1, 0, 0, 0},    /* unknown user */
        {'g', 999, 0, 0, 0, -7, -7},
        {'s', 1, 2000000000, 7, 1, 0, 0}, /* large values round-trip */
        {'g', 1, 0, 0, 1, 2000000000, 7},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].op == 's') {
            int r = bk_store_stats_set_id(&s, steps[i].user, steps[i].wins, steps[i].losses);
            CHECK_INT(r, steps[i].expect);
            if (r < 0)
                CHECK(strstr(s.err, ">= 0") != NULL);
        } else {
            long w = -7, l = -7;
            CHECK_INT(bk_store_stats_get(&s, steps[i].user, &w, &l), steps[i].expect);
            CHECK_INT(w, steps[i].want_w);
            CHECK_INT(l, steps[i].want_l);
        }
    }
    /* An unknown id inserted no orphan stats row. */
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM game_stats"), 2);
    bk_store_close(&s);
    tmp_remove(path);
}

static void test_update(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t alice = bk_store_user_add(&s, "alice", "/a.png");
    int64_t bob = bk_store_user_add(&s, "bob", NULL);
    CHECK(alice > 0 && bob > 0);
    char long_avatar[BK_AVATAR_MAX + 2];
    memset(long_avatar, 'x', sizeof(long_avatar) - 1);
    long_avatar[sizeof(long_avatar) - 1] = '\0';
    char max_avatar[BK_AVATAR_MAX + 1];
    memset(max_avatar, 'y', sizeof(max_avatar) - 1);
    max_avatar[sizeof(max_avatar) - 1] = '\0';

    /* Steps in order; after each, alice's row must read (name, avatar). */
    static const struct {
        const char *username, *avatar;
        int expect;
        const char *err; /* substring of s->err when expect is -1 */
        const char *name_after, *avatar_after;
    } steps[] = {
        {"alice2", NULL, 1, NULL, "alice2", "/a.png"},      /* rename, avatar kept */
        {NULL, "/b.png", 1, NULL, "alice2", "/b.png"},      /* avatar only */
        {"ALICE2", NULL, 1, NULL, "ALICE2", "/b.png"},      /* own name, other case */
        {NULL, NULL, 1, NULL, "ALICE2", "/b.png"},          /* nothing to change */
        {"bob", NULL, -1, "taken", "ALICE2", "/b.png"},     /* duplicate */
        {"BOB", "/c.png", -1, "taken", "ALICE2", "/b.png"}, /* all or nothing */
        {"a b", NULL, -1, "bad username", "ALICE2", "/b.png"},
        {"", NULL, -1, "bad username", "ALICE2", "/b.png"},
        {"x'--", "/d.png", -1, "bad username", "ALICE2", "/b.png"},
        {NULL, "", 1, NULL, "ALICE2", ""},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        CHECK_INT(bk_store_user_update(&s, alice, steps[i].username, steps[i].avatar),
                  steps[i].expect);
        if (steps[i].err)
            CHECK(strstr(s.err, steps[i].err) != NULL);
        struct bk_user_row row;
        CHECK_INT(bk_store_user_by_id(&s, alice, &row), 1);
        CHECK_STR(row.username, steps[i].name_after);
        CHECK_STR(row.avatar, steps[i].avatar_after);
    }
    /* Avatar length: BK_AVATAR_MAX bytes fit, one more does not. */
    CHECK_INT(bk_store_user_update(&s, alice, NULL, long_avatar), -1);
    CHECK(strstr(s.err, "avatar") != NULL);
    CHECK_INT(bk_store_user_update(&s, alice, NULL, max_avatar), 1);
    struct bk_user_row row;
    CHECK_INT(bk_store_user_by_id(&s, alice, &row), 1);
    CHECK_STR(row.avatar, max_avatar);
    /* The old name is free again; bob untouched. */
    CHECK_INT(bk_store_user_by_name(&s, "alice", &row), 0);
    CHECK_INT(bk_store_user_by_name(&s, "bob", &row), 1);
    CHECK(!row.has_avatar);
    /* Unknown user: 0, even with nothing to change. */
    CHECK_INT(bk_store_user_update(&s, 999, "zed", NULL), 0);
    CHECK_INT(bk_store_user_update(&s, 999, NULL, NULL), 0);
    CHECK_INT(bk_store_user_by_name(&s, "zed", &row), 0);
    bk_store_close(&s);
    tmp_remove(path);
}

/* Provisioning (bk_store_user_put, bk_store_friend_set): the backend's
 * ids, idempotent, all or nothing. */
static void test_provisioning(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t alice = bk_store_user_add(&s, "alice", "/a.png");
    CHECK(alice == 1);
    struct bk_user_row row, before;

    /* Steps in order; after each, user 500's row reads (name, avatar). */
    static const struct {
        const char *username;
        bool avatar_set;
        const char *avatar;
        int expect;
        const char *err; /* substring of s.err for the negative ones */
        const char *name_after, *avatar_after;
        bool has_avatar_after;
    } steps[] = {
        {"zoe", false, NULL, BK_PUT_CREATED, NULL, "zoe", "", false},
        {"zoe", false, NULL, BK_PUT_SAME, NULL, "zoe", "", false},
        {"zoe", true, NULL, BK_PUT_SAME, NULL, "zoe", "", false}, /* null on null */
        {"zoe", true, "/z.png", BK_PUT_CHANGED, NULL, "zoe", "/z.png", true},
        {"zoe", true, "/z.png", BK_PUT_SAME, NULL, "zoe", "/z.png", true},
        {"zoe2", false, NULL, BK_PUT_CHANGED, NULL, "zoe2", "/z.png", true}, /* avatar kept */
        {"ZOE2", false, NULL, BK_PUT_CHANGED, NULL, "ZOE2", "/z.png", true}, /* case only */
        {"zoe2", true, NULL, BK_PUT_CHANGED, NULL, "zoe2", "", false},       /* cleared */
        {"ALICE", false, NULL, BK_PUT_TAKEN, "taken", "zoe2", "", false},
        {"a b", false, NULL, BK_PUT_ERROR, "bad username", "zoe2", "", false},
        {NULL, false, NULL, BK_PUT_ERROR, "required", "zoe2", "", false},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        CHECK_INT(bk_store_user_put(&s, 500, steps[i].username, steps[i].avatar_set,
                                    steps[i].avatar, NULL),
                  steps[i].expect);
        if (steps[i].err)
            CHECK(strstr(s.err, steps[i].err) != NULL);
        CHECK_INT(bk_store_user_by_id(&s, 500, &row), 1);
        CHECK_STR(row.username, steps[i].name_after);
        CHECK_STR(row.avatar, steps[i].avatar_after);
        CHECK_INT(row.has_avatar, steps[i].has_avatar_after);
    }
    /* before: the row as it was. */
    CHECK_INT(bk_store_user_put(&s, 500, "zed", false, NULL, &before), BK_PUT_CHANGED);
    CHECK_STR(before.username, "zoe2");
    /* A created user has a stats row, like herald-admin's. */
    long w = -1, l = -1;
    CHECK_INT(bk_store_stats_get(&s, 500, &w, &l), 1);
    CHECK(w == 0 && l == 0);
    /* Bad ids; a created user's name taken by someone: nothing made. */
    CHECK_INT(bk_store_user_put(&s, 0, "x", false, NULL, NULL), BK_PUT_ERROR);
    CHECK_INT(bk_store_user_put(&s, -5, "x", false, NULL, NULL), BK_PUT_ERROR);
    CHECK_INT(bk_store_user_put(&s, 501, "zed", false, NULL, NULL), BK_PUT_TAKEN);
    CHECK_INT(bk_store_user_by_id(&s, 501, &row), 0);

    /* Friendships by id, both directions, idempotent. */
    CHECK_INT(bk_store_friend_set(&s, alice, 500, true), 1);
    CHECK_INT(bk_store_friend_set(&s, 500, alice, true), 0);
    CHECK_INT(bk_store_are_friends(&s, 500, alice), 1);
    CHECK_INT(bk_store_are_friends(&s, alice, 500), 1);
    CHECK_INT(bk_store_friend_set(&s, alice, alice, true), BK_PUT_ERROR);
    CHECK_INT(bk_store_friend_set(&s, alice, 777, true), BK_FRIEND_UNKNOWN);
    CHECK(strstr(s.err, "777") != NULL);
    CHECK_INT(bk_store_friend_set(&s, 500, alice, false), 1);
    CHECK_INT(bk_store_friend_set(&s, alice, 500, false), 0);
    CHECK_INT(bk_store_are_friends(&s, alice, 500), 0);

    /* A deleted id is never created again; ids chosen by herald-admin
     * stay above it. */
    CHECK_INT(bk_store_user_delete_id(&s, 500), 1);
    CHECK_INT(bk_store_user_put(&s, 500, "zoe", false, NULL, NULL), BK_PUT_DELETED);
    CHECK(strstr(s.err, "deleted") != NULL);
    CHECK_INT(bk_store_user_by_id(&s, 500, &row), 0);
    CHECK(bk_store_user_add(&s, "next", NULL) == 501);
    bk_store_close(&s);
    tmp_remove(path);
}

static void test_delete(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t id[4];
    add_users(&s, id, 4);
    CHECK_INT(bk_store_friend_add(&s, "u1", "u2"), 0);
    CHECK_INT(bk_store_friend_add(&s, "u1", "u3"), 0);
    CHECK_INT(bk_store_friend_add(&s, "u2", "u3"), 0);
    CHECK_INT(bk_store_stats_set_id(&s, id[1], 5, 5), 1);

    CHECK_INT(bk_store_user_delete_id(&s, id[1]), 1);
    /* Friendships in both directions and the stats row went with u2. */
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM friendships WHERE user_id = 2 OR friend_id = 2"),
              0);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM game_stats WHERE user_id = 2"), 0);
    CHECK_INT(bk_store_are_friends(&s, id[0], id[1]), 0);
    CHECK_INT(bk_store_are_friends(&s, id[0], id[2]), 1); /* others kept */
    struct transcript t = {.text = ""};
    CHECK_INT(bk_store_friends_each(&s, id[0], on_friend, &t), 1);
    CHECK_STR(t.text, "3:u3,");
    long w = -7, l = -7;
    CHECK_INT(bk_store_stats_get(&s, id[1], &w, &l), 0);
    struct bk_user_row row;
    CHECK_INT(bk_store_user_by_id(&s, id[1], &row), 0);

    static const struct {
        int64_t id;
        int deleted;
    } marks[] = {{1, 0}, {2, 1}, {3, 0}, {4, 0}, {999, 0}, {0, 0}};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        CHECK_INT(bk_store_is_deleted(&s, marks[i].id), marks[i].deleted);

    /* Deleting again, or someone who never existed, records nothing. */
    CHECK_INT(bk_store_user_delete_id(&s, id[1]), 0);
    CHECK_INT(bk_store_user_delete_id(&s, 999), 0);
    CHECK_INT(bk_store_is_deleted(&s, 999), 0);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM deleted_users"), 1);

    /* The highest id deleted: SQLite alone would hand 4 out again. */
    CHECK_INT(bk_store_user_delete_id(&s, id[3]), 1);
    int64_t u5 = bk_store_user_add(&s, "u5", NULL);
    CHECK_INT(u5, 5);
    /* Deleted by name too; then everyone but u1 is gone and the next id is
     * still above every id ever used. */
    CHECK_INT(bk_store_user_del(&s, "U5"), 1);
    CHECK_INT(bk_store_is_deleted(&s, u5), 1);
    CHECK_INT(bk_store_user_delete_id(&s, id[2]), 1);
    CHECK_INT(bk_store_user_add(&s, "u6", NULL), 6);
    /* Even with no user left at all. */
    CHECK_INT(bk_store_user_delete_id(&s, id[0]), 1);
    CHECK_INT(bk_store_user_delete_id(&s, 6), 1);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM users"), 0);
    CHECK_INT(bk_store_user_add(&s, "u7", NULL), 7);
    /* A name freed by deletion can be taken again, under a new id. */
    CHECK_INT(bk_store_user_add(&s, "u2", NULL), 8);
    bk_store_close(&s);
    tmp_remove(path);
}

static void test_search(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    static const char *const names[] = {"alpha", "Alpine", "alps", "al_x", "alz",
                                        "beta",  "ALBERT", "b",    "alb"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        CHECK(bk_store_user_add(&s, names[i], NULL) > 0);
    /* Names bk_username_valid() refuses but the application may write:
     * the wildcard characters themselves. */
    sql(&s, "INSERT INTO users(username) VALUES ('al%y'), ('a\\b'), ('%x'), ('alxyz')");

    static const struct {
        const char *prefix;
        int limit, offset;
        int count;
        const char *transcript;
    } cases[] = {
        {"al", 20, 0, 9, "al%y,al_x,alb,ALBERT,alpha,Alpine,alps,alxyz,alz,"},
        {"AL", 20, 0, 9, "al%y,al_x,alb,ALBERT,alpha,Alpine,alps,alxyz,alz,"},
        {"aLp", 20, 0, 3, "alpha,Alpine,alps,"},
        {"alpine", 20, 0, 1, "Alpine,"},
        {"alpines", 20, 0, 0, ""},
        /* Wildcards are literal: '_' is not "any one byte"... */
        {"al_", 20, 0, 1, "al_x,"},
        /* ...'%' is not "anything"... */
        {"al%", 20, 0, 1, "al%y,"},
        {"%", 20, 0, 1, "%x,"},
        {"_", 20, 0, 0, ""},
        /* ...and '\' is not an escape. */
        {"a\\", 20, 0, 1, "a\\b,"},
        {"a\\b", 20, 0, 1, "a\\b,"},
        /* Paging through "al" three at a time. */
        {"al", 3, 0, 3, "al%y,al_x,alb,"},
        {"al", 3, 3, 3, "ALBERT,alpha,Alpine,"},
        {"al", 3, 6, 3, "alps,alxyz,alz,"},
        {"al", 3, 9, 0, ""},
        {"al", 0, 0, 0, ""},
        /* "" matches everyone (13 users). */
        {"", 100, 0, 13, "%x,a\\b,al%y,al_x,alb,ALBERT,alpha,Alpine,alps,alxyz,alz,b,beta,"},
        {"", 2, 11, 2, "b,beta,"},
        {"b", 20, 0, 2, "b,beta,"},
        {"zzz", 20, 0, 0, ""},
        {"' OR 1=1 --", 20, 0, 0, ""},
        /* Longer than any username: nobody. */
        {"alpha0123456789012345678901234567890123456789012345678901234567890", 20, 0, 0, ""},
        /* Negative limit or offset: refused, not "no limit". */
        {"al", -1, 0, -1, ""},
        {"al", 5, -1, -1, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct transcript t = {.text = ""};
        int r = bk_store_search(&s, cases[i].prefix, cases[i].limit, cases[i].offset, on_row, &t);
        if (r != cases[i].count)
            fprintf(stderr, "search case %zu (\"%s\")\n", i, cases[i].prefix);
        CHECK_INT(r, cases[i].count);
        CHECK_STR(t.text, cases[i].transcript);
    }

    /* Re-entering from the callback is refused; the outer search goes on. */
    {
        struct transcript t = {.text = "", .store = &s, .reenter_result = 0};
        CHECK_INT(bk_store_search(&s, "alp", 10, 0, on_row_reenter, &t), 3);
        CHECK_STR(t.text, "alpha,Alpine,alps,");
        CHECK_INT(t.reenter_result, -1);
        CHECK(strstr(s.err, "re-entered") != NULL);
    }

    /* The prefix search is a range on the username index, not a scan: the
     * plan of the store's own statement with a bound escaped prefix. */
    {
        char eqp[512];
        snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", sqlite3_sql(s.search));
        sqlite3_stmt *st;
        CHECK_INT(sqlite3_prepare_v2(s.db, eqp, -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_text(st, 1, "al\\_%", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, 10);
        sqlite3_bind_int(st, 3, 0);
        char plan[512] = "";
        while (sqlite3_step(st) == SQLITE_ROW) {
            size_t n = strlen(plan);
            snprintf(plan + n, sizeof(plan) - n, "%s;", (const char *)sqlite3_column_text(st, 3));
        }
        sqlite3_finalize(st);
        if (!strstr(plan, "USING INDEX sqlite_autoindex_users_1 (username>? AND username<?)"))
            fprintf(stderr, "search plan: %s\n", plan);
        CHECK(strstr(plan, "USING INDEX sqlite_autoindex_users_1 (username>? AND username<?)") !=
              NULL);
        CHECK(strstr(plan, "TEMP B-TREE") == NULL); /* ORDER BY from the index */
    }
    bk_store_close(&s);
    tmp_remove(path);
}

/* Migration 1 exactly as it shipped, to build a version-1 database. */
static const char v1_schema[] =
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  username TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  avatar TEXT,"
    "  created_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));"
    "CREATE TABLE friendships ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  friend_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  created_at INTEGER NOT NULL DEFAULT (strftime('%s','now')),"
    "  PRIMARY KEY (user_id, friend_id),"
    "  CHECK (user_id <> friend_id)) WITHOUT ROWID;"
    "CREATE TABLE game_stats ("
    "  user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
    "  wins INTEGER NOT NULL DEFAULT 0 CHECK (wins >= 0),"
    "  losses INTEGER NOT NULL DEFAULT 0 CHECK (losses >= 0),"
    "  updated_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));";

static void test_migration_v1(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    sqlite3 *db;
    CHECK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
              SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, v1_schema, NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db,
                           "INSERT INTO users(id, username, avatar) VALUES"
                           " (1, 'old1', '/1.png'), (2, 'old2', NULL);"
                           "INSERT INTO friendships(user_id, friend_id) VALUES (1, 2), (2, 1);"
                           "INSERT INTO game_stats(user_id, wins, losses) VALUES (1, 4, 2);"
                           "PRAGMA user_version = 1;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);

    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, false), 0);
    CHECK_INT(sql_int(s.db, "PRAGMA user_version"), 3);
    CHECK_INT(bk_store_schema_version(), 3);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM sqlite_master WHERE name = 'deleted_users'"), 1);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM sqlite_master WHERE name IN ('dms', 'dm_reads',"
                            " 'livechat')"),
              3);
    /* Version-1 data survives and works with the new calls. */
    struct bk_user_row row;
    CHECK_INT(bk_store_user_by_id(&s, 1, &row), 1);
    CHECK_STR(row.username, "old1");
    CHECK_INT(bk_store_are_friends(&s, 2, 1), 1);
    long w = 0, l = 0;
    CHECK_INT(bk_store_stats_get(&s, 1, &w, &l), 1);
    CHECK_INT(w, 4);
    CHECK_INT(l, 2);
    CHECK_INT(bk_store_stats_get(&s, 2, &w, &l), 1); /* no stats row in v1 data */
    CHECK_INT(w, 0);
    CHECK_INT(l, 0);
    CHECK_INT(bk_store_is_deleted(&s, 1), 0);
    CHECK_INT(bk_store_user_delete_id(&s, 2), 1);
    CHECK_INT(bk_store_user_add(&s, "new", NULL), 3);
    bk_store_close(&s);

    /* Opening again applies nothing more. */
    CHECK_INT(bk_store_open(&s, path, false), 0);
    CHECK_INT(sql_int(s.db, "PRAGMA user_version"), 3);
    CHECK_INT(bk_store_is_deleted(&s, 2), 1);
    bk_store_close(&s);
    tmp_remove(path);
}

/* ---- direct messages and the chat history ------------------------------ */

static void dm_row(void *arg, const struct bk_dm_row *row)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%lld:%lld>%lld:%s@%lld,", (long long)row->id, (long long)row->from,
             (long long)row->to, row->message, (long long)row->ts);
}

static void unread_row(void *arg, const struct bk_unread_row *row)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%lld:%s:%lld:%lld,", (long long)row->user, row->username,
             (long long)row->count, (long long)row->last_id);
}

static void chat_row(void *arg, const struct bk_chat_row *row)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%lld:%s:%s,", (long long)row->id, row->username, row->message);
}

static void test_dms(void)
{
    char path[64], out[512];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t a = bk_store_user_add(&s, "ann", NULL), b = bk_store_user_add(&s, "ben", NULL),
            c = bk_store_user_add(&s, "cid", NULL);
    /* Ids grow; a conversation is the same in both directions. */
    CHECK_INT(bk_store_dm_add(&s, a, b, "hi ben", 1000), 1);
    CHECK_INT(bk_store_dm_add(&s, b, a, "hi ann", 1001), 2);
    CHECK_INT(bk_store_dm_add(&s, c, b, "from cid", 1002), 3);
    CHECK_INT(bk_store_dm_add(&s, a, b, "again", 1003), 4);
    out[0] = '\0';
    CHECK_INT(bk_store_dm_history(&s, b, a, 0, 10, dm_row, out), 3);
    CHECK_STR(out, "4:1>2:again@1003,2:2>1:hi ann@1001,1:1>2:hi ben@1000,");
    out[0] = '\0'; /* paging: below id 4, one row */
    CHECK_INT(bk_store_dm_history(&s, a, b, 4, 1, dm_row, out), 1);
    CHECK_STR(out, "2:2>1:hi ann@1001,");
    /* An unknown recipient is refused (foreign key), nothing stored. */
    CHECK_INT(bk_store_dm_add(&s, a, 99, "nobody", 1004), -1);
    /* Unread for ben: ann's two, cid's one; read marks only move forward. */
    out[0] = '\0';
    CHECK_INT(bk_store_dm_unread_each(&s, b, unread_row, out), 2);
    CHECK_STR(out, "1:ann:2:4,3:cid:1:3,");
    CHECK_INT(bk_store_dm_read(&s, b, a, 1), 0);
    out[0] = '\0';
    CHECK_INT(bk_store_dm_unread_each(&s, b, unread_row, out), 2);
    CHECK_STR(out, "1:ann:1:4,3:cid:1:3,");
    CHECK_INT(bk_store_dm_read(&s, b, a, 4), 0);
    CHECK_INT(bk_store_dm_read(&s, b, a, 2), 0); /* backwards: no effect */
    out[0] = '\0';
    CHECK_INT(bk_store_dm_unread_each(&s, b, unread_row, out), 1);
    CHECK_STR(out, "3:cid:1:3,");
    CHECK_INT(bk_store_dm_read(&s, b, 99, 4), -1);
    /* Retention, then account deletion takes the user's messages. */
    CHECK_INT(bk_store_dm_prune(&s, 1001), 1);
    CHECK_INT(bk_store_user_delete_id(&s, c), 1);
    out[0] = '\0';
    CHECK_INT(bk_store_dm_unread_each(&s, b, unread_row, out), 0);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM dms"), 2);
    /* Chat history: the newest kept, newest first. */
    for (int i = 1; i <= 5; i++) {
        char m[8];
        snprintf(m, sizeof(m), "m%d", i);
        CHECK_INT(bk_store_chat_add(&s, i % 2 ? a : b, m, 2000 + i, 3), i);
    }
    out[0] = '\0';
    CHECK_INT(bk_store_chat_history(&s, 10, chat_row, out), 3);
    CHECK_STR(out, "5:ann:m5,4:ben:m4,3:ann:m3,");
    out[0] = '\0';
    CHECK_INT(bk_store_chat_history(&s, 2, chat_row, out), 2);
    CHECK_STR(out, "5:ann:m5,4:ben:m4,");
    bk_store_close(&s);
    tmp_remove(path);
}

/* The benchmarks' bulk insert: ids follow the highest ever used, names are
 * prefix<id>, each user has a stats row, and a bad batch adds nothing. */
static void test_bulk(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    CHECK_INT(bk_store_user_add(&s, "first", NULL), 1);
    CHECK_INT(bk_store_user_add(&s, "second", NULL), 2);
    CHECK_INT(bk_store_user_delete_id(&s, 2), 1);
    CHECK_INT(bk_store_users_add_bulk(&s, "lg", 1000), 3);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM users"), 1001);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM game_stats"), 1001);
    struct bk_user_row row;
    CHECK_INT(bk_store_user_by_name(&s, "LG1002", &row), 1);
    CHECK_INT(row.id, 1002);
    CHECK_INT(bk_store_user_by_id(&s, 3, &row), 1);
    CHECK_STR(row.username, "lg3");
    /* The same prefix again continues after the last id, so no clash. */
    CHECK_INT(bk_store_users_add_bulk(&s, "lg", 2), 1003);
    /* A name that would clash with an existing one rolls the batch back. */
    CHECK_INT(bk_store_user_add(&s, "x1006", NULL), 1005);
    CHECK_INT(bk_store_users_add_bulk(&s, "x", 3), -1);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM users"), 1004);
    CHECK_INT(bk_store_users_add_bulk(&s, "bad prefix", 3), -1);
    CHECK_INT(bk_store_users_add_bulk(&s, "ok", 0), -1);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM users"), 1004);
    bk_store_close(&s);
    tmp_remove(path);
}

/* The benchmarks' friendship ring: each user gets k/2 neighbours either
 * side, both directions, in one go; a range with a missing user adds
 * nothing; running it again adds nothing new. */
static void test_friends_ring(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    CHECK_INT(bk_store_users_add_bulk(&s, "lg", 100), 1);
    CHECK_INT(bk_store_friend_add(&s, "lg1", "lg2"), 0);
    /* 100 users, 10 friends each: 500 pairs, one of them there already. */
    CHECK_INT(bk_store_friends_add_ring(&s, 1, 100, 10), 499);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM friendships"), 1000);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM friendships WHERE user_id = 1"), 10);
    CHECK_INT(sql_int(s.db, "SELECT count(DISTINCT user_id) FROM friendships"), 100);
    /* Neighbours across the wrap: 1 with 96..100 and 2..6. */
    CHECK_INT(bk_store_are_friends(&s, 1, 96), 1);
    CHECK_INT(bk_store_are_friends(&s, 1, 6), 1);
    CHECK_INT(bk_store_are_friends(&s, 1, 7), 0);
    CHECK_INT(bk_store_are_friends(&s, 100, 5), 1);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM friendships WHERE user_id = friend_id"), 0);
    CHECK_INT(bk_store_friends_add_ring(&s, 1, 100, 10), 0);
    /* Odd k rounds down; a tiny ring never pairs a user with itself. */
    CHECK_INT(bk_store_friends_add_ring(&s, 1, 3, 9), 0);
    CHECK_INT(bk_store_friends_add_ring(&s, 1, 100, 1), -1);
    CHECK_INT(bk_store_friends_add_ring(&s, 50, 100, 10), -1);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM friendships"), 1000);
    bk_store_close(&s);
    tmp_remove(path);
}

/* ---- the background checkpointer ------------------------------------------------- */

/* Size of path's -wal file in bytes, -1 when there is none. */
static long long wal_size(const char *path)
{
    char wal[256];
    struct stat st;
    snprintf(wal, sizeof(wal), "%s-wal", path);
    return stat(wal, &st) == 0 ? (long long)st.st_size : -1;
}

/* n DMs between users a and b through the broker's batch calls, per
 * batches of k. Returns how many were stored. */
static int add_dms(struct bk_store *s, int64_t a, int64_t b, int n, int k)
{
    int stored = 0;
    for (int i = 0; i < n; i += k) {
        CHECK_INT(bk_store_batch_begin(s), 0);
        for (int j = i; j < n && j < i + k; j++)
            stored +=
                bk_store_dm_add(s, j % 2 ? a : b, j % 2 ? b : a, "a message of some length", j) > 0;
        CHECK_INT(bk_store_batch_commit(s), 0);
        CHECK(!s->gated);
    }
    return stored;
}

/* A long wait for what must happen (generous for a loaded CI machine), a
 * short one for what must not. */
#define CKPT_MUST_MS 20000
#define CKPT_MUST_NOT_MS 200

/* The writer no longer checkpoints inside its commits; the thread does, and
 * copies every frame. */
static void test_checkpoint_off_the_writer(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK(sqlite3_threadsafe() != 0);
    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t a = bk_store_user_add(&s, "ann", NULL), b = bk_store_user_add(&s, "ben", NULL);
    /* The hook never wakes the thread and its timer is an hour away: only
     * our kicks do. */
    struct bk_checkpoint_opts o = {
        .wal_pages = 100000, .interval_ms = 3600000, .restart_pages = 100000};
    CHECK_INT(bk_store_checkpoint_start(&s, &o), 0);
    CHECK(s.ckpt != NULL);
    CHECK_INT(bk_store_checkpoint_start(&s, &o), -1); /* once only */
    /* Single-DM commits, a handful of frames each: well past SQLite's own
     * 1000-page automatic checkpoint, which would have rewound the WAL. */
    CHECK_INT(add_dms(&s, a, b, 400, 1), 400);
    uint64_t t = bk_checkpoint_kick(s.ckpt);
    CHECK(bk_checkpoint_wait(s.ckpt, t, CKPT_MUST_MS));
    struct bk_checkpoint_stats st;
    bk_checkpoint_stats(s.ckpt, &st);
    CHECK(st.wal_frames > 1000);
    CHECK_INT(st.frames, st.wal_frames); /* all copied, nothing left behind */
    CHECK_INT(st.restarts, 0);
    CHECK_INT(st.truncates, 0);
    CHECK_INT(st.errors, 0);
    CHECK(st.runs >= 1);
    /* The database file itself has them (read past the WAL: a fresh
     * connection that ignores it cannot, so count through ours). */
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM dms"), 400);
    /* A second kick with nothing new copies nothing more. */
    t = bk_checkpoint_kick(s.ckpt);
    CHECK(bk_checkpoint_wait(s.ckpt, t, CKPT_MUST_MS));
    struct bk_checkpoint_stats st2;
    bk_checkpoint_stats(s.ckpt, &st2);
    CHECK_INT(st2.frames, st.frames);
    CHECK(st2.runs > st.runs);
    bk_store_close(&s);
    CHECK(s.ckpt == NULL);
    bk_store_close(&s); /* twice: a no-op */
    /* The last connection's close checkpointed and removed the WAL. */
    CHECK_INT(wal_size(path), -1);
    CHECK_INT(bk_store_open(&s, path, false), 0);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM dms"), 400);
    bk_store_close(&s);
    tmp_remove(path);
}

/* A long WAL is rewound with RESTART, never while the writer holds the gate
 * (a batch in progress); once nothing new comes, TRUNCATE empties it. The
 * writer's own hook wakes the thread. */
static void test_checkpoint_restart_and_gate(void)
{
    char path[64];
    tmp_path(path, sizeof(path));
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t a = bk_store_user_add(&s, "ann", NULL), b = bk_store_user_add(&s, "ben", NULL);
    /* A short timer: the idle TRUNCATE below is the timer's. */
    struct bk_checkpoint_opts o = {.wal_pages = 16, .interval_ms = 20, .restart_pages = 64};
    CHECK_INT(bk_store_checkpoint_start(&s, &o), 0);
    /* Hold the gate as a batch does, and commit a transaction far longer
     * than restart_pages: the hook wakes the thread, whose PASSIVE pass
     * copies everything and whose RESTART then waits for the gate. */
    bk_checkpoint_gate_enter(s.ckpt);
    sql(&s, "BEGIN");
    for (int i = 0; i < 3000; i++)
        bk_store_dm_add(&s, i % 2 ? a : b, i % 2 ? b : a, "a message of some length", i);
    sql(&s, "COMMIT");
    uint64_t t = bk_checkpoint_kick(s.ckpt);
    CHECK(!bk_checkpoint_wait(s.ckpt, t, CKPT_MUST_NOT_MS));
    CHECK(wal_size(path) > 64 * 4096);
    struct bk_checkpoint_stats st;
    bk_checkpoint_stats(s.ckpt, &st);
    CHECK_INT(st.restarts, 0);
    CHECK_INT(st.truncates, 0);
    bk_checkpoint_gate_leave(s.ckpt);
    CHECK(bk_checkpoint_wait(s.ckpt, t, CKPT_MUST_MS));
    bk_checkpoint_stats(s.ckpt, &st);
    CHECK(st.restarts >= 1);
    CHECK_INT(st.errors, 0);
    /* Nothing new since: once the timer saw the writer idle for an
     * interval, it empties the file. A bounded wait on the passes. */
    for (int i = 0; i < CKPT_MUST_MS / 20 && st.truncates == 0; i++) {
        bk_checkpoint_wait(s.ckpt, UINT64_MAX, 20);
        bk_checkpoint_stats(s.ckpt, &st);
    }
    CHECK(st.truncates >= 1);
    CHECK_INT(st.wal_frames, 0);
    CHECK_INT(wal_size(path), 0);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM dms"), 3000);
    /* Batches take and give back the gate; the hook keeps the thread
     * going and the WAL stays bounded (RESTART rewinds it). */
    CHECK_INT(add_dms(&s, a, b, 2000, 4), 2000);
    t = bk_checkpoint_kick(s.ckpt);
    CHECK(bk_checkpoint_wait(s.ckpt, t, CKPT_MUST_MS));
    bk_checkpoint_stats(s.ckpt, &st);
    CHECK(st.restarts >= 2);
    /* How far it grows depends on how fast this writer outruns the
     * passes; once it is idle, the timer empties it again (a WAL of at
     * least wal_pages: one more long transaction makes sure). */
    CHECK_INT(add_dms(&s, a, b, 300, 300), 300);
    bk_checkpoint_stats(s.ckpt, &st);
    uint64_t truncates = st.truncates;
    for (int i = 0; i < CKPT_MUST_MS / 20 && st.truncates == truncates; i++) {
        bk_checkpoint_wait(s.ckpt, UINT64_MAX, 20);
        bk_checkpoint_stats(s.ckpt, &st);
    }
    CHECK(st.truncates > truncates);
    CHECK_INT(wal_size(path), 0);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM dms"), 5300);
    /* Closing in the middle of a batch gives the gate up first (or the
     * thread could wait on it while close joins it); the batch is lost. */
    CHECK_INT(bk_store_batch_begin(&s), 0);
    CHECK(s.gated);
    CHECK(bk_store_dm_add(&s, a, b, "never committed", 1) > 0);
    bk_store_close(&s);
    CHECK_INT(bk_store_open(&s, path, false), 0);
    CHECK_INT(sql_int(s.db, "SELECT count(*) FROM dms"), 5300);
    bk_store_close(&s);
    tmp_remove(path);
}

/* What the checkpointer refuses; the store keeps working without it. */
static void test_checkpoint_refusals(void)
{
    struct bk_store s;
    CHECK_INT(bk_store_open(&s, ":memory:", true), 0);
    CHECK_INT(bk_store_checkpoint_start(&s, NULL), -1);
    CHECK(strstr(s.err, "in-memory") != NULL);
    CHECK(s.ckpt == NULL);
    bk_store_close(&s);
    char path[64];
    tmp_path(path, sizeof(path));
    CHECK_INT(bk_store_open(&s, path, true), 0);
    struct bk_checkpoint_opts bad = {.wal_pages = 100, .interval_ms = 100, .restart_pages = 10};
    CHECK_INT(bk_store_checkpoint_start(&s, &bad), -1);
    CHECK(strstr(s.err, "range") != NULL);
    int64_t a = bk_store_user_add(&s, "ann", NULL), b = bk_store_user_add(&s, "ben", NULL);
    CHECK_INT(add_dms(&s, a, b, 3, 2), 3);
    /* The defaults. */
    CHECK_INT(bk_store_checkpoint_start(&s, NULL), 0);
    CHECK_INT(add_dms(&s, a, b, 3, 2), 3);
    bk_store_close(&s);
    tmp_remove(path);
}

int main(void)
{
    test_basics();
    test_friends();
    test_stats();
    test_update();
    test_provisioning();
    test_delete();
    test_search();
    test_migration_v1();
    test_dms();
    test_bulk();
    test_friends_ring();
    test_checkpoint_off_the_writer();
    test_checkpoint_restart_and_gate();
    test_checkpoint_refusals();
    return check_report("test_store");
}
