/*
 * bk_store.c - see bk_store.h.
 *
 * Expected sizes: up to millions of users; the dominant operation is a
 * lookup by primary key when a connection opens (one per connect, cached per
 * online user by the broker), then by username (case-insensitive unique
 * index) for HTTP lookups and prefix search, and friend lists for presence
 * fan-out. Those statements are prepared once (the hot[] table below);
 * administration writes are rare and prepare their statement per call.
 *
 * Ids are never reused: the broker, tokens and the application's caches name
 * users by id, so a new user must not inherit a deleted user's id and with it
 * their friends' presence or a token still in flight. users.id has no
 * AUTOINCREMENT (migration 1 shipped that way), so SQLite would hand out
 * max(id) + 1 again after the highest user is deleted; deleted_users
 * (migration 2) remembers deleted ids and bk_store_user_add() picks an id
 * above both tables. Users the application inserts itself bypass this.
 */
#include "bk_store.h"

#include "bk_checkpoint.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
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
    /* 2: ids of deleted users, so that new users never get one (see the top
     * of this file). Ids deleted before this migration are not known. */
    "CREATE TABLE deleted_users ("
    "  id INTEGER PRIMARY KEY,"
    "  deleted_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));",
    /* 3: stored direct messages, read marks, the live chat history. Ids
     * only grow (AUTOINCREMENT); lo/hi are the pair's smaller and larger
     * id, so one index serves a conversation in both directions. A user's
     * messages go with the user (cascade). */
    "CREATE TABLE dms ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  from_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  to_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  lo INTEGER NOT NULL,"
    "  hi INTEGER NOT NULL,"
    "  message TEXT NOT NULL,"
    "  ts INTEGER NOT NULL);"
    "CREATE INDEX dms_conversation ON dms(lo, hi, id);"
    "CREATE INDEX dms_inbox ON dms(to_id, from_id, id);"
    "CREATE INDEX dms_from ON dms(from_id);"
    "CREATE INDEX dms_ts ON dms(ts);"
    "CREATE TABLE dm_reads ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  other_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  up_to INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, other_id)) WITHOUT ROWID;"
    "CREATE INDEX dm_reads_other ON dm_reads(other_id);"
    "CREATE TABLE livechat ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  message TEXT NOT NULL,"
    "  ts INTEGER NOT NULL);"
    "CREATE INDEX livechat_user ON livechat(user_id);",
};

/*
 * The hot statements: prepared by bk_store_open(), finalized by
 * bk_store_close(), from one table so that neither can miss one.
 */
static const struct {
    size_t offset; /* of the struct sqlite3_stmt * field in struct bk_store */
    const char *sql;
} hot[] = {
    {offsetof(struct bk_store, by_id), "SELECT id, username, avatar FROM users WHERE id = ?"},
    {offsetof(struct bk_store, by_name),
     "SELECT id, username, avatar FROM users WHERE username = ?"},
    /* The friendships primary key (user_id, friend_id) yields the rows in
     * friend_id order: no sort step. */
    {offsetof(struct bk_store, friends),
     "SELECT f.friend_id, u.username FROM friendships f JOIN users u ON u.id = f.friend_id"
     " WHERE f.user_id = ? ORDER BY f.friend_id"},
    {offsetof(struct bk_store, are_friends),
     "SELECT 1 FROM friendships WHERE user_id = ? AND friend_id = ?"},
    /* LEFT JOIN: a user without a game_stats row (inserted by the
     * application) has played no games, which is not "no such user". */
    {offsetof(struct bk_store, stats_get),
     "SELECT coalesce(g.wins, 0), coalesce(g.losses, 0) FROM users u"
     " LEFT JOIN game_stats g ON g.user_id = u.id WHERE u.id = ?"},
    /*
     * EXPLAIN QUERY PLAN (SQLite 3.40) with a bound 'ab\_%' gives "SEARCH
     * users USING INDEX sqlite_autoindex_users_1 (username>? AND
     * username<?)": the LIKE optimization works with ESCAPE (SQLite >=
     * 3.21) because the unique index is COLLATE NOCASE like the
     * case-insensitive LIKE, and an escaped prefix never starts with a
     * wildcard. The same index gives the ORDER BY without a sort; "" scans
     * it in order and stops at the limit. Since the plan depends on the
     * pattern, SQLite re-prepares this statement after each bind, which is
     * cheap next to a table scan.
     */
    {offsetof(struct bk_store, search),
     "SELECT id, username, avatar FROM users WHERE username LIKE ? ESCAPE '\\'"
     " ORDER BY username COLLATE NOCASE LIMIT ? OFFSET ?"},
    /* Direct messages and the chat history (migration 3). */
    {offsetof(struct bk_store, dm_add),
     "INSERT INTO dms(from_id, to_id, lo, hi, message, ts) VALUES (?1, ?2, min(?1, ?2),"
     " max(?1, ?2), ?3, ?4)"},
    /* Newest first from the index (lo, hi, id), reversed by the caller. */
    {offsetof(struct bk_store, dm_history),
     "SELECT id, from_id, to_id, message, ts FROM dms WHERE lo = min(?1, ?2) AND hi = max(?1, ?2)"
     " AND id < ?3 ORDER BY id DESC LIMIT ?4"},
    {offsetof(struct bk_store, dm_unread),
     "SELECT d.from_id, u.username, count(*), max(d.id) FROM dms d"
     " JOIN users u ON u.id = d.from_id"
     " LEFT JOIN dm_reads r ON r.user_id = d.to_id AND r.other_id = d.from_id"
     " WHERE d.to_id = ?1 AND d.id > coalesce(r.up_to, 0) GROUP BY d.from_id ORDER BY d.from_id"},
    {offsetof(struct bk_store, dm_read),
     "INSERT INTO dm_reads(user_id, other_id, up_to) VALUES (?1, ?2, ?3)"
     " ON CONFLICT(user_id, other_id) DO UPDATE SET up_to = max(up_to, excluded.up_to)"},
    {offsetof(struct bk_store, chat_add),
     "INSERT INTO livechat(user_id, message, ts) VALUES (?, ?, ?)"},
    {offsetof(struct bk_store, chat_prune), "DELETE FROM livechat WHERE id <= ?"},
    {offsetof(struct bk_store, chat_history),
     "SELECT l.id, l.user_id, u.username, l.message, l.ts FROM livechat l"
     " JOIN users u ON u.id = l.user_id ORDER BY l.id DESC LIMIT ?"},
};
#define NHOT (sizeof(hot) / sizeof(hot[0]))

static sqlite3_stmt **hot_slot(struct bk_store *s, size_t i)
{
    return (sqlite3_stmt **)((char *)s + hot[i].offset);
}

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

/* An operation's own transaction: BEGIN IMMEDIATE (the write lock up
 * front), or a savepoint inside the broker's batch transaction
 * (bk_store_batch_begin), which has its own commit. */
static int tx_begin(struct bk_store *s)
{
    s->in_savepoint = !sqlite3_get_autocommit(s->db);
    return exec(s, s->in_savepoint ? "SAVEPOINT op" : "BEGIN IMMEDIATE");
}

static int tx_commit(struct bk_store *s)
{
    return exec(s, s->in_savepoint ? "RELEASE op" : "COMMIT");
}

/* Rolls back the operation's transaction (tx_begin), keeping the error
 * that caused it in s->err. Returns -1 so that callers can "return
 * rollback(s);". */
static int rollback(struct bk_store *s)
{
    char saved[sizeof(s->err)];
    snprintf(saved, sizeof(saved), "%s", s->err);
    if (s->in_savepoint) {
        exec(s, "ROLLBACK TO op");
        exec(s, "RELEASE op");
    } else {
        exec(s, "ROLLBACK");
    }
    snprintf(s->err, sizeof(s->err), "%s", saved);
    return -1;
}

/* Leaves the checkpointer's gate if the batch holds it. */
static void gate_leave(struct bk_store *s)
{
    if (s->gated) {
        s->gated = false;
        bk_checkpoint_gate_leave(s->ckpt);
    }
}

int bk_store_batch_begin(struct bk_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        return 0;
    if (s->ckpt && !s->gated) {
        bk_checkpoint_gate_enter(s->ckpt);
        s->gated = true;
    }
    if (exec(s, "BEGIN") == 0)
        return 0;
    gate_leave(s);
    return -1;
}

int bk_store_batch_commit(struct bk_store *s)
{
    int r = 0;
    if (!sqlite3_get_autocommit(s->db) && exec(s, "COMMIT") != 0) {
        char saved[sizeof(s->err)];
        snprintf(saved, sizeof(saved), "%s", s->err);
        exec(s, "ROLLBACK");
        snprintf(s->err, sizeof(s->err), "%s", saved);
        r = -1;
    }
    /* Also when SQLite already rolled the batch back by itself (an I/O
     * error, a full disk): the gate is the batch's either way. */
    gate_leave(s);
    return r;
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
    /* synchronous NORMAL with WAL: a commit survives any crash of the
     * process (kill -9 included), only a power cut may lose the last ones;
     * and a stored DM costs no fsync. */
    if (exec(s, "PRAGMA journal_mode = WAL") != 0 || exec(s, "PRAGMA foreign_keys = ON") != 0 ||
        exec(s, "PRAGMA synchronous = NORMAL") != 0)
        return -1;
    if (migrate(s) != 0)
        return -1;
    for (size_t i = 0; i < NHOT; i++)
        if (sqlite3_prepare_v2(s->db, hot[i].sql, -1, hot_slot(s, i), NULL) != SQLITE_OK)
            return fail(s, "prepare");
    return 0;
}

int bk_store_checkpoint_start(struct bk_store *s, const struct bk_checkpoint_opts *opts)
{
    if (s->ckpt) {
        snprintf(s->err, sizeof(s->err), "the checkpointer is already running");
        return -1;
    }
    s->ckpt = bk_checkpoint_start(s->db, opts, s->err, sizeof(s->err));
    return s->ckpt ? 0 : -1;
}

void bk_store_close(struct bk_store *s)
{
    /* The thread first, while the writer's connection is still open; a
     * batch left open gives up the gate or the thread could wait on it. */
    gate_leave(s);
    bk_checkpoint_stop(s->ckpt);
    s->ckpt = NULL;
    /* Every statement first: sqlite3_close() refuses while one is left. */
    for (size_t i = 0; i < NHOT; i++) {
        sqlite3_finalize(*hot_slot(s, i));
        *hot_slot(s, i) = NULL;
    }
    if (s->db)
        sqlite3_close(s->db);
    s->db = NULL;
}

/* Copies the current (id, username, avatar) row of st into row. */
static void fill_row(sqlite3_stmt *st, struct bk_user_row *row)
{
    row->id = sqlite3_column_int64(st, 0);
    const unsigned char *name = sqlite3_column_text(st, 1);
    const unsigned char *avatar = sqlite3_column_text(st, 2);
    snprintf(row->username, sizeof(row->username), "%s", name ? (const char *)name : "");
    row->has_avatar = avatar != NULL;
    snprintf(row->avatar, sizeof(row->avatar), "%s", avatar ? (const char *)avatar : "");
}

static int read_row(struct bk_store *s, sqlite3_stmt *st, struct bk_user_row *row)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(s, "lookup");
    if (r == 1)
        fill_row(st, row);
    sqlite3_reset(st);
    return r;
}

/* Steps a bound statement once: 1 a row, 0 none, -1 error (s->err). Leaves
 * st reset. */
static int step_exists(struct bk_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(s, what);
    sqlite3_reset(st);
    return r;
}

/* A callback that re-enters the iterating function would reset the very
 * statement its caller is stepping; refuse instead. */
static int busy(struct bk_store *s, sqlite3_stmt *st, const char *what)
{
    if (!sqlite3_stmt_busy(st))
        return 0;
    snprintf(s->err, sizeof(s->err), "%s re-entered from its own callback", what);
    return -1;
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

int bk_store_friends_each(struct bk_store *s, int64_t id,
                          void (*cb)(void *arg, int64_t friend_id, const char *username), void *arg)
{
    sqlite3_stmt *st = s->friends;
    if (busy(s, st, "bk_store_friends_each") != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 1);
        cb(arg, sqlite3_column_int64(st, 0), name ? (const char *)name : "");
        n++;
    }
    if (rc != SQLITE_DONE)
        n = fail(s, "friends");
    sqlite3_reset(st);
    return n;
}

int bk_store_are_friends(struct bk_store *s, int64_t a, int64_t b)
{
    sqlite3_bind_int64(s->are_friends, 1, a);
    sqlite3_bind_int64(s->are_friends, 2, b);
    return step_exists(s, s->are_friends, "are_friends");
}

int bk_store_stats_get(struct bk_store *s, int64_t id, long *wins, long *losses)
{
    sqlite3_stmt *st = s->stats_get;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(s, "stats");
    if (r == 1) {
        *wins = (long)sqlite3_column_int64(st, 0);
        *losses = (long)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return r;
}

int bk_store_search(struct bk_store *s, const char *prefix, int limit, int offset,
                    void (*cb)(void *arg, const struct bk_user_row *row), void *arg)
{
    if (limit < 0 || offset < 0) {
        snprintf(s->err, sizeof(s->err), "search: negative limit or offset");
        return -1;
    }
    size_t len = strlen(prefix);
    /* No username Herald accepts is longer, and the bound keeps the escaped
     * pattern on the stack. */
    if (len > BK_USERNAME_MAX)
        return 0;
    sqlite3_stmt *st = s->search;
    if (busy(s, st, "bk_store_search") != 0)
        return -1;
    /* Every byte may need its escape, then the '%' and the NUL. */
    char pattern[2 * BK_USERNAME_MAX + 2];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (prefix[i] == '%' || prefix[i] == '_' || prefix[i] == '\\')
            pattern[n++] = '\\';
        pattern[n++] = prefix[i];
    }
    pattern[n++] = '%';
    pattern[n] = '\0';
    sqlite3_bind_text(st, 1, pattern, (int)n, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, limit);
    sqlite3_bind_int(st, 3, offset);
    int rows = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bk_user_row row;
        fill_row(st, &row);
        cb(arg, &row);
        rows++;
    }
    if (rc != SQLITE_DONE)
        rows = fail(s, "search");
    sqlite3_reset(st);
    return rows;
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

/* Checks what bk_store_user_add() and bk_store_user_update() would write;
 * NULL is not checked. Returns 0, or -1 with s->err. */
static int check_user_fields(struct bk_store *s, const char *name, const char *avatar)
{
    if (name && !bk_username_valid(name)) {
        snprintf(s->err, sizeof(s->err), "bad username \"%.64s\": 1-64 of A-Z a-z 0-9 _ . -", name);
        return -1;
    }
    if (avatar && strlen(avatar) > BK_AVATAR_MAX) {
        snprintf(s->err, sizeof(s->err), "avatar longer than %d bytes", BK_AVATAR_MAX);
        return -1;
    }
    return 0;
}

/* After a failed write of username name: the only UNIQUE constraint on
 * users is the username, so say so in words. */
static void explain_taken(struct bk_store *s, const char *name)
{
    if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
        snprintf(s->err, sizeof(s->err), "username \"%s\" is taken", name);
}

/* Runs a one-off statement with text/int64 parameters described by types
 * ('t' text, NULL for a null pointer; 'i' int64_t). Returns
 * sqlite3_changes() or -1 (s->err; sqlite3_extended_errcode() still tells
 * the cause). */
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
    int n = rc == SQLITE_DONE ? sqlite3_changes(s->db) : fail(s, "write");
    sqlite3_finalize(st);
    return n;
}

int64_t bk_store_user_add(struct bk_store *s, const char *name, const char *avatar)
{
    if (check_user_fields(s, name, avatar) != 0)
        return -1;
    /* IMMEDIATE: the id is computed and used under one write lock, and the
     * user never exists without its stats row. */
    if (tx_begin(s) != 0)
        return -1;
    /* The max() subqueries are answered from the end of each rowid b-tree
     * (EXPLAIN QUERY PLAN: SEARCH, not SCAN). */
    if (run(s,
            "INSERT INTO users(id, username, avatar) SELECT 1 + max("
            "coalesce((SELECT max(id) FROM users), 0),"
            " coalesce((SELECT max(id) FROM deleted_users), 0)), ?, ?",
            "tt", name, avatar) < 0) {
        explain_taken(s, name);
        return rollback(s);
    }
    int64_t id = sqlite3_last_insert_rowid(s->db);
    if (run(s, "INSERT INTO game_stats(user_id) VALUES (?)", "i", id) < 0 || tx_commit(s) != 0)
        return rollback(s);
    return id;
}

int64_t bk_store_users_add_bulk(struct bk_store *s, const char *prefix, int64_t count)
{
    /* Names are prefix + id, so they stay unique across calls and a caller
     * can tell every name from the first id alone. */
    char probe[BK_USERNAME_MAX + 24];
    snprintf(probe, sizeof(probe), "%s%lld", prefix, (long long)INT64_C(1) << 53);
    if (count < 1 || count > 10000000 || check_user_fields(s, probe, NULL) != 0) {
        if (count < 1 || count > 10000000)
            snprintf(s->err, sizeof(s->err), "count must be 1..10000000");
        return -1;
    }
    if (tx_begin(s) != 0)
        return -1;
    /* One statement per table for the whole batch: a benchmark's 60 000
     * users take a fraction of a second instead of 60 000 transactions. */
    if (run(s,
            "WITH RECURSIVE base(b) AS (SELECT 1 + max("
            "coalesce((SELECT max(id) FROM users), 0),"
            " coalesce((SELECT max(id) FROM deleted_users), 0))),"
            " seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < ?)"
            " INSERT INTO users(id, username, avatar)"
            " SELECT b + n, ? || (b + n), NULL FROM base, seq",
            "it", count, prefix) != count) {
        return rollback(s);
    }
    int64_t last = sqlite3_last_insert_rowid(s->db);
    if (run(s, "INSERT INTO game_stats(user_id) SELECT id FROM users WHERE id > ?", "i",
            last - count) != count ||
        tx_commit(s) != 0)
        return rollback(s);
    return last - count + 1;
}

int bk_store_user_update(struct bk_store *s, int64_t id, const char *username, const char *avatar)
{
    if (check_user_fields(s, username, avatar) != 0)
        return -1;
    /* A row whose values do not change still counts in sqlite3_changes(),
     * so 0 means no such user even when both are NULL. */
    int n = run(s,
                "UPDATE users SET username = coalesce(?, username), avatar = coalesce(?, avatar)"
                " WHERE id = ?",
                "tti", username, avatar, id);
    if (n < 0) {
        if (username)
            explain_taken(s, username);
        return -1;
    }
    return n > 0;
}

int bk_store_user_delete_id(struct bk_store *s, int64_t id)
{
    if (tx_begin(s) != 0)
        return -1;
    /* sqlite3_changes() leaves out the cascaded friendships and stats. */
    int n = run(s, "DELETE FROM users WHERE id = ?", "i", id);
    if (n < 0)
        return rollback(s);
    if (n > 0 && run(s, "INSERT OR REPLACE INTO deleted_users(id) VALUES (?)", "i", id) < 0)
        return rollback(s);
    if (tx_commit(s) != 0)
        return rollback(s);
    return n > 0;
}

int bk_store_user_del(struct bk_store *s, const char *name)
{
    /* By id from here on: a rename in between still deletes this user, and
     * a user created under the name since is a different id, left alone. */
    struct bk_user_row row;
    int f = bk_store_user_by_name(s, name, &row);
    if (f <= 0)
        return f;
    return bk_store_user_delete_id(s, row.id);
}

int bk_store_is_deleted(struct bk_store *s, int64_t id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM deleted_users WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return fail(s, "prepare");
    sqlite3_bind_int64(st, 1, id);
    int r = step_exists(s, st, "is_deleted");
    sqlite3_finalize(st);
    return r;
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
    if (tx_begin(s) != 0)
        return -1;
    if (run(s, "INSERT OR IGNORE INTO friendships(user_id, friend_id) VALUES (?, ?), (?, ?)",
            "iiii", ra.id, rb.id, rb.id, ra.id) < 0)
        return rollback(s);
    return tx_commit(s) != 0 ? rollback(s) : 0;
}

int64_t bk_store_friends_add_ring(struct bk_store *s, int64_t first, int64_t count, int k)
{
    if (count < 3 || count > 10000000 || k < 2 || first < 1) {
        snprintf(s->err, sizeof(s->err), "need first >= 1, count 3..10000000 and k >= 2");
        return -1;
    }
    int half = k / 2;
    if (half > (count - 1) / 2)
        half = (int)((count - 1) / 2); /* past that the ring would wrap onto itself */
    if (tx_begin(s) != 0)
        return -1;
    int64_t present = -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM users WHERE id >= ? AND id < ?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, first);
        sqlite3_bind_int64(st, 2, first + count);
        if (sqlite3_step(st) == SQLITE_ROW)
            present = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if (present != count) {
        if (present >= 0)
            snprintf(s->err, sizeof(s->err), "users %lld..%lld: only %lld exist", (long long)first,
                     (long long)(first + count - 1), (long long)present);
        else
            fail(s, "count users");
        return rollback(s);
    }
    /* One statement for the whole graph: user i and i+d (mod count) for
     * d = 1..half, stored both ways; 100 000 users with 50 friends each
     * (5 million rows) take seconds instead of 2.5 million transactions.
     * The changes count only the rows inserted, both directions. */
    int added = run(s,
                    "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq"
                    " WHERE n + 1 < ?),"
                    " dist(d) AS (SELECT 1 UNION ALL SELECT d + 1 FROM dist WHERE d + 1 <= ?),"
                    " pairs(a, b) AS (SELECT ? + n, ? + (n + d) % ? FROM seq, dist)"
                    " INSERT OR IGNORE INTO friendships(user_id, friend_id)"
                    " SELECT a, b FROM pairs UNION ALL SELECT b, a FROM pairs",
                    "iiiii", count, (int64_t)half, first, first, count);
    if (added < 0 || tx_commit(s) != 0)
        return rollback(s);
    return added / 2;
}

int bk_store_user_put(struct bk_store *s, int64_t id, const char *username, bool avatar_set,
                      const char *avatar, struct bk_user_row *before)
{
    struct bk_user_row row;
    if (id < 1 || check_user_fields(s, username, avatar) != 0) {
        if (id < 1)
            snprintf(s->err, sizeof(s->err), "bad user id %lld", (long long)id);
        return BK_PUT_ERROR;
    }
    if (!username) {
        snprintf(s->err, sizeof(s->err), "a username is required");
        return BK_PUT_ERROR;
    }
    int f = bk_store_user_by_id(s, id, &row);
    if (f < 0)
        return BK_PUT_ERROR;
    if (f == 0) {
        int d = bk_store_is_deleted(s, id);
        if (d != 0) {
            if (d > 0)
                snprintf(s->err, sizeof(s->err),
                         "id %lld belonged to a deleted account: ids are never reused",
                         (long long)id);
            return d > 0 ? BK_PUT_DELETED : BK_PUT_ERROR;
        }
        if (tx_begin(s) != 0)
            return BK_PUT_ERROR;
        if (run(s, "INSERT INTO users(id, username, avatar) VALUES (?, ?, ?)", "itt", id, username,
                avatar_set ? avatar : NULL) < 0) {
            bool taken = sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE;
            explain_taken(s, username);
            rollback(s);
            return taken ? BK_PUT_TAKEN : BK_PUT_ERROR;
        }
        if (run(s, "INSERT INTO game_stats(user_id) VALUES (?)", "i", id) < 0 || tx_commit(s) != 0)
            return rollback(s);
        return BK_PUT_CREATED;
    }
    if (before)
        *before = row;
    bool same_avatar = !avatar_set || (avatar ? row.has_avatar && strcmp(avatar, row.avatar) == 0
                                              : !row.has_avatar);
    if (strcmp(username, row.username) == 0 && same_avatar)
        return BK_PUT_SAME;
    if (run(s,
            "UPDATE users SET username = ?, avatar = CASE WHEN ? THEN ? ELSE avatar END"
            " WHERE id = ?",
            "titi", username, (int64_t)avatar_set, avatar, id) < 0) {
        bool taken = sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE;
        explain_taken(s, username);
        return taken ? BK_PUT_TAKEN : BK_PUT_ERROR;
    }
    return BK_PUT_CHANGED;
}

int bk_store_friend_set(struct bk_store *s, int64_t a, int64_t b, bool on)
{
    struct bk_user_row r;
    if (a == b) {
        snprintf(s->err, sizeof(s->err), "a user cannot befriend themself");
        return BK_PUT_ERROR;
    }
    for (int i = 0; i < 2; i++) {
        int64_t id = i ? b : a;
        int f = bk_store_user_by_id(s, id, &r);
        if (f < 0)
            return BK_PUT_ERROR;
        if (f == 0) {
            snprintf(s->err, sizeof(s->err), "no user has the id %lld", (long long)id);
            return BK_FRIEND_UNKNOWN;
        }
    }
    if (tx_begin(s) != 0)
        return BK_PUT_ERROR;
    int n =
        on ? run(s, "INSERT OR IGNORE INTO friendships(user_id, friend_id) VALUES (?, ?), (?, ?)",
                 "iiii", a, b, b, a)
           : run(s,
                 "DELETE FROM friendships WHERE (user_id = ? AND friend_id = ?)"
                 " OR (user_id = ? AND friend_id = ?)",
                 "iiii", a, b, b, a);
    if (n < 0 || tx_commit(s) != 0)
        return rollback(s);
    return n > 0;
}

int bk_store_stats_set_id(struct bk_store *s, int64_t id, long wins, long losses)
{
    /* The CHECK constraints would refuse them too, with a worse message. */
    if (wins < 0 || losses < 0) {
        snprintf(s->err, sizeof(s->err), "wins and losses must be >= 0");
        return -1;
    }
    /* INSERT ... SELECT inserts nothing for an unknown id (0 changes); its
     * WHERE is also what lets SQLite parse the ON CONFLICT clause. */
    int n = run(s,
                "INSERT INTO game_stats(user_id, wins, losses) SELECT id, ?, ? FROM users"
                " WHERE id = ? ON CONFLICT(user_id) DO UPDATE SET wins = excluded.wins,"
                " losses = excluded.losses, updated_at = strftime('%s','now')",
                "iii", (int64_t)wins, (int64_t)losses, id);
    return n < 0 ? -1 : n > 0;
}

int bk_store_stats_set(struct bk_store *s, const char *name, long wins, long losses)
{
    struct bk_user_row r;
    int f = bk_store_user_by_name(s, name, &r);
    if (f > 0)
        f = bk_store_stats_set_id(s, r.id, wins, losses);
    if (f == 0)
        snprintf(s->err, sizeof(s->err), "no such user: %s", name);
    return f > 0 ? 0 : -1;
}

/* ---- direct messages and the chat history ---------------------------------------- */

int64_t bk_store_dm_add(struct bk_store *s, int64_t from, int64_t to, const char *message,
                        int64_t ts)
{
    sqlite3_stmt *st = s->dm_add;
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, to);
    sqlite3_bind_text(st, 3, message, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, ts);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail(s, "store a direct message");
    return sqlite3_last_insert_rowid(s->db);
}

int bk_store_dm_history(struct bk_store *s, int64_t a, int64_t b, int64_t before, int limit,
                        void (*cb)(void *arg, const struct bk_dm_row *row), void *arg)
{
    sqlite3_stmt *st = s->dm_history;
    if (busy(s, st, "bk_store_dm_history") != 0)
        return -1;
    sqlite3_bind_int64(st, 1, a);
    sqlite3_bind_int64(st, 2, b);
    sqlite3_bind_int64(st, 3, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(st, 4, limit);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bk_dm_row row = {
            .id = sqlite3_column_int64(st, 0),
            .from = sqlite3_column_int64(st, 1),
            .to = sqlite3_column_int64(st, 2),
            .message = (const char *)sqlite3_column_text(st, 3),
            .ts = sqlite3_column_int64(st, 4),
        };
        if (!row.message)
            row.message = "";
        cb(arg, &row);
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : fail(s, "direct message history");
}

int bk_store_dm_unread_each(struct bk_store *s, int64_t user,
                            void (*cb)(void *arg, const struct bk_unread_row *row), void *arg)
{
    sqlite3_stmt *st = s->dm_unread;
    if (busy(s, st, "bk_store_dm_unread_each") != 0)
        return -1;
    sqlite3_bind_int64(st, 1, user);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 1);
        struct bk_unread_row row = {
            .user = sqlite3_column_int64(st, 0),
            .username = name ? (const char *)name : "",
            .count = sqlite3_column_int64(st, 2),
            .last_id = sqlite3_column_int64(st, 3),
        };
        cb(arg, &row);
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : fail(s, "unread direct messages");
}

int bk_store_dm_read(struct bk_store *s, int64_t user, int64_t other, int64_t up_to)
{
    sqlite3_stmt *st = s->dm_read;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int64(st, 2, other);
    sqlite3_bind_int64(st, 3, up_to);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(s, "read mark");
}

int bk_store_dm_prune(struct bk_store *s, int64_t before_ts)
{
    return run(s, "DELETE FROM dms WHERE ts < ?", "i", before_ts);
}

int64_t bk_store_chat_add(struct bk_store *s, int64_t user, const char *message, int64_t ts,
                          long keep)
{
    sqlite3_stmt *st = s->chat_add;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_text(st, 2, message, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, ts);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail(s, "store a chat message");
    int64_t id = sqlite3_last_insert_rowid(s->db);
    /* Ids only grow: everything at or below id - keep is past the history. */
    if (id > keep) {
        sqlite3_bind_int64(s->chat_prune, 1, id - keep);
        rc = sqlite3_step(s->chat_prune);
        sqlite3_reset(s->chat_prune);
        if (rc != SQLITE_DONE)
            return fail(s, "trim the chat history");
    }
    return id;
}

int bk_store_chat_history(struct bk_store *s, int limit,
                          void (*cb)(void *arg, const struct bk_chat_row *row), void *arg)
{
    sqlite3_stmt *st = s->chat_history;
    if (busy(s, st, "bk_store_chat_history") != 0)
        return -1;
    sqlite3_bind_int(st, 1, limit);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 2);
        const unsigned char *msg = sqlite3_column_text(st, 3);
        struct bk_chat_row row = {
            .id = sqlite3_column_int64(st, 0),
            .user = sqlite3_column_int64(st, 1),
            .username = name ? (const char *)name : "",
            .message = msg ? (const char *)msg : "",
            .ts = sqlite3_column_int64(st, 4),
        };
        cb(arg, &row);
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : fail(s, "chat history");
}
