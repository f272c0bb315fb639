/* test_store.c - the SQLite store on a real temporary database file. */
#include "bk_store.h"
#include "check.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    char path[] = "/tmp/herald-test-store-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);

    struct bk_store s;
    /* Without create, a missing database is an error. */
    CHECK_INT(bk_store_open(&s, path, false), -1);
    bk_store_close(&s);

    CHECK_INT(bk_store_open(&s, path, true), 0);
    int64_t alice = bk_store_user_add(&s, "alice", "/a.png");
    int64_t bob = bk_store_user_add(&s, "Bob", NULL);
    CHECK(alice > 0);
    CHECK(bob > alice);
    /* Usernames are unique case-insensitively; bad names refused. */
    CHECK_INT(bk_store_user_add(&s, "ALICE", NULL), -1);
    CHECK_INT(bk_store_user_add(&s, "", NULL), -1);
    CHECK_INT(bk_store_user_add(&s, "a b", NULL), -1);
    CHECK_INT(bk_store_user_add(&s, "x'; DROP TABLE users; --", NULL), -1);
    CHECK(
        !bk_username_valid("0123456789012345678901234567890123456789012345678901234567890123456"));
    CHECK(bk_username_valid("a.b-c_d"));

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

    /* Deleting a user removes their friendships and stats (cascade). */
    CHECK_INT(bk_store_user_del(&s, "BOB"), 1);
    CHECK_INT(bk_store_user_del(&s, "bob"), 0);
    sqlite3_stmt *st;
    CHECK_INT(sqlite3_prepare_v2(s.db, "SELECT count(*) FROM friendships", -1, &st, NULL),
              SQLITE_OK);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    bk_store_close(&s);

    /* Reopening keeps data and does not re-run migrations. */
    CHECK_INT(bk_store_open(&s, path, false), 0);
    CHECK_INT(bk_store_user_by_name(&s, "alice", &row), 1);
    /* A database from a newer Herald is refused, not damaged. */
    CHECK_INT(sqlite3_exec(s.db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    bk_store_close(&s);
    CHECK_INT(bk_store_open(&s, path, false), -1);
    CHECK(strstr(s.err, "newer") != NULL);
    bk_store_close(&s);

    unlink(path);
    char side[256];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    return check_report("test_store");
}
