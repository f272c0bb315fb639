/*
 * bk_store.h - the SQLite user store: schema, migrations, lookups.
 *
 * The application owns its users; Herald reads them (by id when a
 * connection opens, by name for /online-status and search) and herald-admin
 * writes them. Every statement is prepared once and bound, never built from
 * strings. The broker keeps the database open for its lifetime in WAL mode
 * so that herald-admin (or the application) can write while it reads.
 *
 * Schema versions live in PRAGMA user_version; bk_store_open() applies the
 * missing migrations in order, each in its own transaction.
 */
#ifndef HERALD_BK_STORE_H
#define HERALD_BK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct sqlite3_stmt;

#define BK_USERNAME_MAX 64
#define BK_AVATAR_MAX 512

struct bk_user_row {
    int64_t id;
    char username[BK_USERNAME_MAX + 1];
    char avatar[BK_AVATAR_MAX + 1]; /* "" when null */
    bool has_avatar;
};

struct bk_store {
    struct sqlite3 *db;         /* owned */
    struct sqlite3_stmt *by_id; /* owned, prepared statements */
    struct sqlite3_stmt *by_name;
    char err[256]; /* last error, for the caller's log */
};

/* Current schema version (the number of migrations). */
int bk_store_schema_version(void);

/*
 * Opens (creating when create is true) the database at path and migrates it
 * to the current schema. Returns 0, or -1 with s->err set. Close with
 * bk_store_close() either way.
 */
int bk_store_open(struct bk_store *s, const char *path, bool create);
void bk_store_close(struct bk_store *s);

/* Lookups: 1 found (row filled), 0 not found, -1 error (s->err). */
int bk_store_user_by_id(struct bk_store *s, int64_t id, struct bk_user_row *row);
int bk_store_user_by_name(struct bk_store *s, const char *name, struct bk_user_row *row);

/* Administration (herald-admin). Return 0 / -1 (s->err), or as stated. */
/* Returns the new id, or -1 (duplicate name, bad name: s->err). */
int64_t bk_store_user_add(struct bk_store *s, const char *name, const char *avatar);
/* Returns 1 deleted, 0 no such user, -1 error. */
int bk_store_user_del(struct bk_store *s, const char *name);
/* Makes a and b friends (both directions). 0, or -1 (unknown user...). */
int bk_store_friend_add(struct bk_store *s, const char *a, const char *b);
int bk_store_stats_set(struct bk_store *s, const char *name, long wins, long losses);
/* True when name is 1..64 of [A-Za-z0-9_.-]. */
bool bk_username_valid(const char *name);

#endif
