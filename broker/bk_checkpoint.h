/*
 * bk_checkpoint.h - WAL checkpoints on a thread of their own.
 *
 * Why: in WAL mode SQLite checkpoints inside the commit that pushes the WAL
 * past wal_autocheckpoint pages (1000 by default). That commit then copies
 * the WAL back into the database and syncs both files, 10-15 ms on this
 * class of machine, and the broker makes it on its single event loop: at
 * 1000 stored DMs per second that is every 300 ms, and every message
 * arriving meanwhile waits (the DM benchmark's p99 went from 1.5 to 8 ms).
 *
 * How: the writer's connection (the broker's) stops checkpointing itself;
 * its WAL hook, which SQLite calls after each commit with the length of the
 * WAL, wakes a thread once wal_pages more frames were written. The thread
 * has its own connection to the same file and runs PASSIVE checkpoints,
 * which never take the write lock nor wait for anyone: the writer carries
 * on while pages are copied and synced. It also wakes every interval_ms, so
 * writes by other processes (herald-admin) are checkpointed too.
 *
 * A PASSIVE checkpoint racing a writer that never pauses never catches up
 * with the last frames, and SQLite only rewinds the WAL once every frame was
 * copied: alone it would let the WAL grow without bound. So once the WAL
 * holds restart_pages frames, the thread catches up with PASSIVE passes
 * and then checkpoints with RESTART, which takes the write lock, copies the
 * few frames written since and makes the next commit start the WAL from its
 * beginning: the file never grows much past restart_pages. Once the writer
 * has been idle for an interval, it checkpoints with TRUNCATE, which also
 * empties the file (its space back while idle).
 *
 * The write lock must not be taken in the middle of the writer's batch: a
 * deferred transaction that has read and then wants to write gets
 * SQLITE_BUSY at once (SQLite does not call the busy handler there, to
 * avoid deadlocks), which would fail a DM. The writer therefore holds the
 * gate (bk_checkpoint_gate_enter/leave) around each batch transaction and
 * the thread holds it around RESTART and TRUNCATE: the writer waits for one
 * of those at most, never for a PASSIVE pass.
 *
 * Needs a thread-safe SQLite (sqlite3_threadsafe() != 0): each connection is
 * only ever used by one thread (multi-thread mode is enough).
 */
#ifndef HERALD_BK_CHECKPOINT_H
#define HERALD_BK_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct bk_checkpoint;

/* Defaults and their reasons. */
/* SQLite's own wal_autocheckpoint default: the WAL stays a few MB. */
#define BK_CHECKPOINT_WAL_PAGES 1000
/* Writes that bypass the hook (herald-admin, the application) wait at most
 * this long; an idle check costs a few microseconds. */
#define BK_CHECKPOINT_INTERVAL_MS 250
/* 16 MB of 4 KiB pages: a RESTART (which holds the write lock for about a
 * millisecond) every few seconds at full DM load, and a WAL file that never
 * grows much past it. */
#define BK_CHECKPOINT_RESTART_PAGES 4096

struct bk_checkpoint_opts {
    long wal_pages;     /* frames written before the thread is woken */
    long interval_ms;   /* the thread also checkpoints this often */
    long restart_pages; /* a WAL this long is rewound with RESTART */
};

/* What the thread did, for /metrics, logs and tests. */
struct bk_checkpoint_stats {
    uint64_t runs;          /* checkpoint passes */
    uint64_t restarts;      /* RESTART checkpoints: the WAL rewound */
    uint64_t truncates;     /* TRUNCATE checkpoints when idle: the WAL file emptied */
    uint64_t busy;          /* refused: a reader or another checkpoint in the way */
    uint64_t errors;        /* checkpoints that failed otherwise */
    int64_t frames;         /* copied into the database, all passes */
    int wal_frames;         /* frames in the WAL after the last pass */
    double restart_max_ms;  /* the longest a RESTART held the gate */
    double truncate_max_ms; /* the longest a TRUNCATE held the gate */
};

/*
 * Takes checkpoints off db, the writer's connection (borrowed: it must stay
 * open until bk_checkpoint_stop()), and starts the thread, which opens its
 * own connection to db's main file. opts NULL: the defaults above. Returns
 * the checkpointer, or NULL with err filled (SQLite built without threads,
 * an in-memory database, bad options, no memory or thread), db left as it
 * was. Call from the thread that uses db.
 */
struct bk_checkpoint *bk_checkpoint_start(struct sqlite3 *db, const struct bk_checkpoint_opts *opts,
                                          char *err, size_t errlen);

/*
 * Stops and joins the thread, closes its connection and gives db back its
 * own automatic checkpoints (SQLite's default). NULL is a no-op.
 */
void bk_checkpoint_stop(struct bk_checkpoint *c);

/* The writer's side of the gate around a transaction that reads before it
 * writes (see the top of this file). Not re-entrant. NULL is a no-op. */
void bk_checkpoint_gate_enter(struct bk_checkpoint *c);
void bk_checkpoint_gate_leave(struct bk_checkpoint *c);

/*
 * Wakes the thread now, as if wal_pages frames had been written. Returns a
 * ticket for bk_checkpoint_wait(). Any thread.
 */
uint64_t bk_checkpoint_kick(struct bk_checkpoint *c);

/*
 * Waits until a pass that started after the kick that returned ticket has
 * completed, at most timeout_ms. Returns true when it has, false on
 * timeout. For tests and benchmarks.
 */
bool bk_checkpoint_wait(struct bk_checkpoint *c, uint64_t ticket, long timeout_ms);

/* A consistent copy of the counters. Any thread. */
void bk_checkpoint_stats(struct bk_checkpoint *c, struct bk_checkpoint_stats *out);

#endif
