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
struct bk_checkpoint;
struct bk_checkpoint_opts;

#define BK_USERNAME_MAX 64
#define BK_AVATAR_MAX 512

struct bk_user_row {
    int64_t id;
    char username[BK_USERNAME_MAX + 1];
    char avatar[BK_AVATAR_MAX + 1]; /* "" when null */
    bool has_avatar;
};

/*
 * Statements on the hot paths (a connection opening, presence fan-out to
 * friends, HTTP search) are prepared once in bk_store_open() and finalized
 * in bk_store_close(); administration statements are prepared per call.
 */
struct bk_store {
    struct sqlite3 *db;                /* owned */
    struct sqlite3_stmt *by_id;        /* owned */
    struct sqlite3_stmt *by_name;      /* owned */
    struct sqlite3_stmt *friends;      /* owned */
    struct sqlite3_stmt *are_friends;  /* owned */
    struct sqlite3_stmt *stats_get;    /* owned */
    struct sqlite3_stmt *search;       /* owned */
    struct sqlite3_stmt *dm_add;       /* owned */
    struct sqlite3_stmt *dm_history;   /* owned */
    struct sqlite3_stmt *dm_unread;    /* owned */
    struct sqlite3_stmt *dm_read;      /* owned */
    struct sqlite3_stmt *chat_add;     /* owned */
    struct sqlite3_stmt *chat_prune;   /* owned */
    struct sqlite3_stmt *chat_history; /* owned */
    struct bk_checkpoint *ckpt;        /* owned: WAL checkpoints off this thread, or NULL */
    char err[256];                     /* last error, for the caller's log */
    bool in_savepoint;                 /* the current operation nests in a batch */
    bool gated;                        /* the batch holds the checkpointer's gate */
};

/* Current schema version (the number of migrations). */
int bk_store_schema_version(void);

/*
 * Opens (creating when create is true) the database at path and migrates it
 * to the current schema. Returns 0, or -1 with s->err set. Close with
 * bk_store_close() either way.
 */
int bk_store_open(struct bk_store *s, const char *path, bool create);
/* Stops the checkpointer (if started), finalizes, closes. Safe after a
 * failed bk_store_open() and twice. */
void bk_store_close(struct bk_store *s);

/*
 * Moves WAL checkpoints off the calling thread (bk_checkpoint.h): SQLite no
 * longer checkpoints inside this connection's commits, a thread with its
 * own connection does. For a long-running writer on an event loop (the
 * broker); herald-admin does without. opts NULL: the defaults. Returns 0,
 * or -1 with s->err (the store then checkpoints as before). Once only.
 */
int bk_store_checkpoint_start(struct bk_store *s, const struct bk_checkpoint_opts *opts);

/* Lookups: 1 found (row filled), 0 not found, -1 error (s->err). */
int bk_store_user_by_id(struct bk_store *s, int64_t id, struct bk_user_row *row);
int bk_store_user_by_name(struct bk_store *s, const char *name, struct bk_user_row *row);

/*
 * Calls cb once per friend of user id, in ascending id order. username is
 * borrowed: valid only until cb returns. Returns the number of friends (0
 * for an unknown user too), or -1 (s->err), possibly after some calls.
 * cb may use the other lookups but not re-enter bk_store_friends_each(),
 * whose statement is in use (refused with -1), nor close the store.
 */
int bk_store_friends_each(struct bk_store *s, int64_t id,
                          void (*cb)(void *arg, int64_t friend_id, const char *username),
                          void *arg);
/* 1 when b is a friend of a, 0 not, -1 error (s->err). Friendships are
 * stored in both directions (bk_store_friend_add), so the order of a and b
 * does not matter for rows Herald wrote. */
int bk_store_are_friends(struct bk_store *s, int64_t a, int64_t b);
/* Game stats of user id: 1 found (*wins, *losses set; a user without a
 * game_stats row is found with 0/0), 0 no such user, -1 error (s->err).
 * The outputs are left untouched unless 1 is returned. */
int bk_store_stats_get(struct bk_store *s, int64_t id, long *wins, long *losses);

/*
 * Case-insensitive search for usernames starting with prefix, which is
 * matched literally ('%', '_' and '\' are not wildcards); "" matches
 * everyone. Rows come ordered by username (case-insensitively), skipping
 * offset rows and returning at most limit. row is borrowed: valid only until
 * cb returns. A prefix longer than BK_USERNAME_MAX matches nobody. Returns
 * the number of rows passed to cb, or -1 (s->err: negative limit or offset,
 * or a database error, possibly after some calls). cb may use the other
 * lookups but not re-enter bk_store_search() nor close the store.
 */
int bk_store_search(struct bk_store *s, const char *prefix, int limit, int offset,
                    void (*cb)(void *arg, const struct bk_user_row *row), void *arg);

/* Administration (herald-admin). Return 0 / -1 (s->err), or as stated. */
/* Returns the new id, or -1 (duplicate name, bad name: s->err). Ids are
 * never reused: a new id is above every current and deleted id. */
int64_t bk_store_user_add(struct bk_store *s, const char *name, const char *avatar);
/* Adds count users named prefix<id> (no avatar) in one transaction, for
 * benchmarks and load tests. Returns the first new id (the rest follow it
 * without gaps), -1 with s->err set (nothing added). */
int64_t bk_store_users_add_bulk(struct bk_store *s, const char *prefix, int64_t count);
/* Deletes by name through bk_store_user_delete_id(): same returns. */
int bk_store_user_del(struct bk_store *s, const char *name);
/* Deletes user id, its friendships and stats (cascade), and records id in
 * deleted_users, in one transaction. 1 deleted, 0 no such user (nothing
 * recorded), -1 error (s->err; nothing changed). */
int bk_store_user_delete_id(struct bk_store *s, int64_t id);
/* 1 when id belonged to a deleted user, 0 not, -1 error (s->err). */
int bk_store_is_deleted(struct bk_store *s, int64_t id);
/* Changes the username and/or avatar of user id; NULL keeps the current
 * value. username must pass bk_username_valid(), avatar be at most
 * BK_AVATAR_MAX bytes. 1 updated (also when both are NULL and the user
 * exists), 0 no such user, -1 error (bad name, avatar too long, name taken
 * by another user, database error: s->err says which). */
int bk_store_user_update(struct bk_store *s, int64_t id, const char *username, const char *avatar);
/* Makes a and b friends (both directions). 0, or -1 (unknown user...). */
int bk_store_friend_add(struct bk_store *s, const char *a, const char *b);
/*
 * Benchmarks' social graph, in one transaction: users first..first+count-1
 * (which must all exist) on a ring, each befriended with its k/2 nearest
 * neighbours on either side, so each has 2*(k/2) friends (k rounded down to
 * even; fewer only when count <= k). Friendships already there are kept.
 * Returns the number of friendship pairs added (each stored in both
 * directions), or -1 with s->err set (nothing added: a missing user, k < 2,
 * count < 3 or past 10 000 000).
 */
int64_t bk_store_friends_add_ring(struct bk_store *s, int64_t first, int64_t count, int k);
/*
 * Provisioning by the application backend (PROTOCOL.md §6a): creates user
 * id, or sets its username and avatar. avatar_set false keeps the avatar
 * (a new user has none); true sets it to avatar, NULL clearing it. before
 * (may be NULL) receives the row as it was, when there was one. Returns a
 * BK_PUT_* value; s->err says why on the negative ones.
 */
enum {
    BK_PUT_ERROR = -1,   /* bad field or database error */
    BK_PUT_TAKEN = -2,   /* another user has this username */
    BK_PUT_DELETED = -3, /* the id was a deleted account's: ids are never reused */
    BK_PUT_SAME = 0,     /* existed with these values already */
    BK_PUT_CHANGED = 1,  /* existed; username or avatar changed */
    BK_PUT_CREATED = 2,
};
int bk_store_user_put(struct bk_store *s, int64_t id, const char *username, bool avatar_set,
                      const char *avatar, struct bk_user_row *before);
/* Makes a and b friends (on) or not (both directions), by id: 1 changed,
 * 0 already so, BK_PUT_ERROR (a == b, database: s->err), or -4 when
 * either user does not exist (s->err names which). */
#define BK_FRIEND_UNKNOWN (-4)
int bk_store_friend_set(struct bk_store *s, int64_t a, int64_t b, bool on);
/* By name: 0, or -1 (unknown user, negative numbers: s->err). */
int bk_store_stats_set(struct bk_store *s, const char *name, long wins, long losses);
/* Inserts or replaces the stats of user id: 1 done, 0 no such user, -1
 * error (negative wins or losses refused with s->err). */
int bk_store_stats_set_id(struct bk_store *s, int64_t id, long wins, long losses);
/* True when name is 1..64 of [A-Za-z0-9_.-]. */
bool bk_username_valid(const char *name);

/* ---- the broker's batches ---------------------------------------------- */

/* One transaction around a batch of entries (the broker's consumer): its
 * writes commit together, one WAL commit instead of one per message.
 * Operations that have their own transaction nest in it as savepoints.
 * With a checkpointer, the batch holds its gate from begin to commit (the
 * checkpointer's TRUNCATE then waits for the end of the batch, rather than
 * failing a write in the middle of it).
 * begin: 0 or -1 (s->err); commit: 0, or -1 (s->err) after rolling the
 * whole batch back. Outside a batch every call commits by itself. */
int bk_store_batch_begin(struct bk_store *s);
int bk_store_batch_commit(struct bk_store *s);

/* ---- direct messages and the chat history (the broker's) ----------------- */

/* One stored DM; strings borrowed for the callback. */
struct bk_dm_row {
    int64_t id, from, to, ts; /* ts: ms since the epoch */
    const char *message;
};
/* One conversation with unread DMs for a user: from user (username), how
 * many, the newest id. */
struct bk_unread_row {
    int64_t user, count, last_id;
    const char *username;
};
/* One live chat message. */
struct bk_chat_row {
    int64_t id, user, ts;
    const char *username, *message;
};

/* Stores a DM (both users must exist). Returns its id (ids only grow), or
 * -1 (s->err). */
int64_t bk_store_dm_add(struct bk_store *s, int64_t from, int64_t to, const char *message,
                        int64_t ts);
/* The conversation of a and b, newest first, ids below before (0: from the
 * newest), at most limit rows. Returns the number of rows, or -1 (s->err).
 * cb must not re-enter this function. */
int bk_store_dm_history(struct bk_store *s, int64_t a, int64_t b, int64_t before, int limit,
                        void (*cb)(void *arg, const struct bk_dm_row *row), void *arg);
/* user's conversations with DMs above its read mark, by sender id. Returns
 * the number of rows, or -1 (s->err). */
int bk_store_dm_unread_each(struct bk_store *s, int64_t user,
                            void (*cb)(void *arg, const struct bk_unread_row *row), void *arg);
/* user has read its conversation with other up to id up_to (marks only
 * move forward). 0, or -1 (s->err: e.g. other does not exist). */
int bk_store_dm_read(struct bk_store *s, int64_t user, int64_t other, int64_t up_to);
/* Deletes the DMs older than before_ts (ms). Returns how many, or -1. */
int bk_store_dm_prune(struct bk_store *s, int64_t before_ts);
/* Stores a live chat message and keeps only the newest keep. Returns its
 * id, or -1 (s->err). */
int64_t bk_store_chat_add(struct bk_store *s, int64_t user, const char *message, int64_t ts,
                          long keep);
/* The newest limit chat messages, newest first. Returns how many, or -1. */
int bk_store_chat_history(struct bk_store *s, int limit,
                          void (*cb)(void *arg, const struct bk_chat_row *row), void *arg);

#endif
