/*
 * bk_store.c - see bk_store.h.
 *
 * Expected sizes: up to millions of users; the dominant operation is a
 * lookup by primary key when a connection opens (one per connect, cached per
 * online user by the broker), then by username (case-insensitive unique
 * index) for HTTP lookups.
 */
#include "bk_store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Migrations, in order; migration i brings user_version from i to i + 1.
 * Never edit one that has shipped: add a new one. */
static const char *const migrations[] = {
    /* 1: users, friendships, game stats. */
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
    "  updated_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));",
};

int bk_store_schema_version(void)
{
    return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

static int fail(struct bk_store *s, const char *what)
{
    snprintf(s->err, sizeof(s->err), "%s: %s", what, s->db ? sqlite3_errmsg(s->db) : "no database");
    return -1;
}

static int exec(struct bk_store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(s->err, sizeof(s->err), "%s", msg ? msg : "sqlite error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int migrate(struct bk_store *s)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return fail(s, "read schema version");
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (version > bk_store_schema_version()) {
        snprintf(s->err, sizeof(s->err),
                 "database schema version %d is newer than this program's %d", version,
                 bk_store_schema_version());
        return -1;
    }
    for (int v = version; v < bk_store_schema_version(); v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        if (exec(s, "BEGIN IMMEDIATE") != 0)
            return -1;
        if (exec(s, migrations[v]) != 0 || exec(s, bump) != 0) {
            char saved[sizeof(s->err)];
            snprintf(saved, sizeof(saved), "%s", s->err);
            exec(s, "ROLLBACK");
            snprintf(s->err, sizeof(s->err), "migration %d: %.200s", v + 1, saved);
            return -1;
        }
        if (exec(s, "COMMIT") != 0)
            return -1;
    }
    return 0;
}

int bk_store_open(struct bk_store *s, const char *path, bool create)
{
    memset(s, 0, sizeof(*s));
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        fail(s, path);
        return -1;
    }
    /* A writer (herald-admin) may hold the lock briefly. */
    sqlite3_busy_timeout(s->db, 2000);
    if (exec(s, "PRAGMA journal_mode = WAL") != 0 || exec(s, "PRAGMA foreign_keys = ON") != 0)
        return -1;
    if (migrate(s) != 0)
        return -1;
    if (sqlite3_prepare_v2(s->db, "SELECT id, username, avatar FROM users WHERE id = ?", -1,
                           &s->by_id, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT id, username, avatar FROM users WHERE username = ?", -1,
                           &s->by_name, NULL) != SQLITE_OK)
        return fail(s, "prepare");
    return 0;
}

void bk_store_close(struct bk_store *s)
{
    sqlite3_finalize(s->by_id);
    sqlite3_finalize(s->by_name);
    if (s->db)
        sqlite3_close(s->db);
    s->db = NULL;
    s->by_id = s->by_name = NULL;
}

static int read_row(struct bk_store *s, sqlite3_stmt *st, struct bk_user_row *row)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    if (rc != SQLITE_ROW) {
        fail(s, "lookup");
        sqlite3_reset(st);
        return -1;
    }
    row->id = sqlite3_column_int64(st, 0);
    const unsigned char *name = sqlite3_column_text(st, 1);
    const unsigned char *avatar = sqlite3_column_text(st, 2);
    snprintf(row->username, sizeof(row->username), "%s", name ? (const char *)name : "");
    row->has_avatar = avatar != NULL;
    snprintf(row->avatar, sizeof(row->avatar), "%s", avatar ? (const char *)avatar : "");
    sqlite3_reset(st);
    return 1;
}

int bk_store_user_by_id(struct bk_store *s, int64_t id, struct bk_user_row *row)
{
    sqlite3_bind_int64(s->by_id, 1, id);
    return read_row(s, s->by_id, row);
}

int bk_store_user_by_name(struct bk_store *s, const char *name, struct bk_user_row *row)
{
    sqlite3_bind_text(s->by_name, 1, name, -1, SQLITE_TRANSIENT);
    return read_row(s, s->by_name, row);
}

bool bk_username_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > BK_USERNAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Runs a one-off statement with text/int64 parameters described by types
 * ('t' text, 'i' int64). Returns sqlite3_changes() or -1. */
static int run(struct bk_store *s, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(s, "prepare");
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i]; i++) {
        if (types[i] == 't') {
            const char *v = va_arg(ap, const char *);
            if (v)
                sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(st, i + 1);
        } else {
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        }
    }
    va_end(ap);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail(s, "write");
    return sqlite3_changes(s->db);
}

int64_t bk_store_user_add(struct bk_store *s, const char *name, const char *avatar)
{
    if (!bk_username_valid(name)) {
        snprintf(s->err, sizeof(s->err), "bad username \"%s\": 1-64 of A-Z a-z 0-9 _ . -", name);
        return -1;
    }
    if (avatar && strlen(avatar) > BK_AVATAR_MAX) {
        snprintf(s->err, sizeof(s->err), "avatar longer than %d bytes", BK_AVATAR_MAX);
        return -1;
    }
    if (run(s, "INSERT INTO users(username, avatar) VALUES (?, ?)", "tt", name, avatar) < 0)
        return -1;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    if (run(s, "INSERT INTO game_stats(user_id) VALUES (?)", "i", id) < 0)
        return -1;
    return id;
}

int bk_store_user_del(struct bk_store *s, const char *name)
{
    int n = run(s, "DELETE FROM users WHERE username = ?", "t", name);
    return n < 0 ? -1 : n > 0;
}

int bk_store_friend_add(struct bk_store *s, const char *a, const char *b)
{
    struct bk_user_row ra, rb;
    int fa = bk_store_user_by_name(s, a, &ra), fb = bk_store_user_by_name(s, b, &rb);
    if (fa <= 0 || fb <= 0) {
        if (fa == 0 || fb == 0)
            snprintf(s->err, sizeof(s->err), "no such user: %s", fa == 0 ? a : b);
        return -1;
    }
    if (ra.id == rb.id) {
        snprintf(s->err, sizeof(s->err), "a user cannot befriend themself");
        return -1;
    }
    if (exec(s, "BEGIN") != 0)
        return -1;
    if (run(s, "INSERT OR IGNORE INTO friendships(user_id, friend_id) VALUES (?, ?), (?, ?)",
            "iiii", ra.id, rb.id, rb.id, ra.id) < 0) {
        exec(s, "ROLLBACK");
        return -1;
    }
    return exec(s, "COMMIT");
}

int bk_store_stats_set(struct bk_store *s, const char *name, long wins, long losses)
{
    struct bk_user_row r;
    int f = bk_store_user_by_name(s, name, &r);
    if (f <= 0) {
        if (f == 0)
            snprintf(s->err, sizeof(s->err), "no such user: %s", name);
        return -1;
    }
    if (wins < 0 || losses < 0) {
        snprintf(s->err, sizeof(s->err), "wins and losses must be >= 0");
        return -1;
    }
    return run(s,
               "INSERT INTO game_stats(user_id, wins, losses) VALUES (?, ?, ?) "
               "ON CONFLICT(user_id) DO UPDATE SET wins = excluded.wins, losses = "
               "excluded.losses, updated_at = strftime('%s','now')",
               "iii", r.id, (int64_t)wins, (int64_t)losses) < 0
               ? -1
               : 0;
}
