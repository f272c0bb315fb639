/*
 * bk_checkpoint.c - see bk_checkpoint.h.
 *
 * Two threads touch a struct bk_checkpoint: the writer (the broker's event
 * loop: the WAL hook, the gate, kicks) and the checkpointer. Everything
 * they share is under mx, except the gate, which is a mutex of its own so
 * that the writer never waits for mx while the thread checkpoints. The
 * thread's connection is used by the thread alone; hook_base by the writer
 * alone (SQLite calls the WAL hook on the committing thread).
 *
 * Expected costs, measured with herald-store-bench on a 2-core VM: a
 * PASSIVE pass over 1000 frames takes 5-15 ms (two fdatasyncs), all of it
 * off the writer's thread; an idle pass a few microseconds; a RESTART
 * after PASSIVE passes caught up holds the write lock for about a
 * millisecond.
 */
#include "bk_checkpoint.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* SQLite's default wal_autocheckpoint (SQLITE_DEFAULT_WAL_AUTOCHECKPOINT,
 * which sqlite3.h does not export): what the writer gets back at stop. */
#define BK_CHECKPOINT_SQLITE_DEFAULT 1000
/* PASSIVE passes a restart may take to catch up with a busy writer before
 * it takes the gate anyway: each copies what the writer added during the
 * one before, a fraction of it. */
#define BK_CHECKPOINT_CATCH_UP 3

struct bk_checkpoint {
    struct sqlite3 *writer; /* borrowed: the writer's connection */
    struct sqlite3 *db;     /* owned: the thread's connection */
    struct bk_checkpoint_opts opts;
    pthread_t thread;
    pthread_mutex_t gate; /* around the writer's batches and TRUNCATE */
    pthread_mutex_t mx;   /* everything below */
    pthread_cond_t wake;  /* the thread: kicked or stopping */
    pthread_cond_t done;  /* waiters: a pass completed */
    bool stop;
    uint64_t kicks;   /* kicks so far (tickets) */
    uint64_t started; /* kicks seen when the current/last pass started */
    uint64_t passed;  /* started of the last completed pass */
    struct bk_checkpoint_stats stats;
    /* The thread's own: WAL length and frames copied after its last
     * checkpoint, to count what each copied; writer_frames at the last
     * timer tick and at the last TRUNCATE, to tell an idle writer. */
    int last_log, last_ckpt;
    int tick_frames, truncated_at;
    /* The writer's own: WAL length when the hook last woke the thread. */
    int hook_base;
    /* The WAL's length after the writer's last commit (the hook's), read
     * by the thread to tell how far behind it is. */
    atomic_int writer_frames;
};

/* Absolute CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait
 * (the condition variables are made with that clock: a wall-clock step
 * must not stretch or cut a wait). */
static struct timespec deadline_in(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* With mx held. */
static uint64_t kick_locked(struct bk_checkpoint *c)
{
    uint64_t ticket = ++c->kicks;
    pthread_cond_signal(&c->wake);
    return ticket;
}

uint64_t bk_checkpoint_kick(struct bk_checkpoint *c)
{
    pthread_mutex_lock(&c->mx);
    uint64_t ticket = kick_locked(c);
    pthread_mutex_unlock(&c->mx);
    return ticket;
}

/*
 * SQLite's WAL hook on the writer's connection, called after each commit
 * with the frames now in the WAL. Returns SQLITE_OK (anything else would be
 * reported as the commit's error although the commit happened). Installing
 * it is what turns the writer's own automatic checkpoints off.
 */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct bk_checkpoint *c = arg;
    (void)db;
    (void)name;
    /* Fewer frames than last time: the WAL was rewound meanwhile. */
    atomic_store_explicit(&c->writer_frames, frames, memory_order_relaxed);
    if (frames < c->hook_base)
        c->hook_base = 0;
    if (frames - c->hook_base >= c->opts.wal_pages) {
        c->hook_base = frames;
        bk_checkpoint_kick(c);
    }
    return SQLITE_OK;
}

/* Logs the failures of the thread's checkpoints: the 1st, 2nd, 4th, 8th...
 * so that a database that keeps failing does not flood the log. */
static void note_error(struct bk_checkpoint *c, const char *mode, int rc, uint64_t n)
{
    if ((n & (n - 1)) == 0)
        log_warn("WAL checkpoint (%s) failed: %s (%d); %llu failure(s) so far", mode,
                 sqlite3_errmsg(c->db), rc, (unsigned long long)n);
}

/* One checkpoint of mode on the thread's connection; *log, *ckpt as
 * sqlite3_wal_checkpoint_v2() sets them, and the frames it copied added to
 * *copied. No busy handler on this connection: a reader still on the WAL
 * or another writer makes RESTART and TRUNCATE return SQLITE_BUSY at once
 * (after a PASSIVE's worth of copying) instead of holding the write lock
 * while the broker waits behind the gate. */
static int checkpoint(struct bk_checkpoint *c, int mode, int *log, int *ckpt, int64_t *copied)
{
    *log = *ckpt = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, mode, log, ckpt);
    if (rc != SQLITE_OK || *log < 0)
        return rc;
    /* Fewer frames than last time: the WAL was rewound in between. */
    bool same_wal = *log >= c->last_log && *ckpt >= c->last_ckpt;
    *copied += same_wal ? *ckpt - c->last_ckpt : *ckpt;
    c->last_log = *log;
    c->last_ckpt = *ckpt;
    return rc;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* checkpoint() under the gate; *held_ms: the longest the gate was held. */
static int checkpoint_gated(struct bk_checkpoint *c, int mode, int *log, int *ckpt, int64_t *copied,
                            double *held_ms)
{
    pthread_mutex_lock(&c->gate);
    double t0 = now_ms();
    int rc = checkpoint(c, mode, log, ckpt, copied);
    double held = now_ms() - t0;
    pthread_mutex_unlock(&c->gate);
    if (held > *held_ms)
        *held_ms = held;
    return rc;
}

/*
 * One pass (see bk_checkpoint.h), on the thread without mx. kicked: the
 * writer's hook (or a test) asked for it; else the timer woke the thread.
 *   - PASSIVE copies what the WAL holds while the writer carries on;
 *   - when the WAL holds restart_pages frames: PASSIVE again until what the
 *     writer added meanwhile is small (at most BK_CHECKPOINT_CATCH_UP more
 *     passes; a later pass if it does not), then RESTART under the gate, which copies that
 * remainder with the write lock held and makes the next commit start the WAL from its beginning:
 * the file stops growing, the writer waited for about a millisecond;
 *   - woken by the timer, after the writer stayed idle for a whole interval
 *     with a WAL of wal_pages frames or more: PASSIVE, and once that had
 *     nothing left to copy, TRUNCATE, which empties the file (its space
 *     back while idle; ftruncate of a long file takes milliseconds, so
 *     never while the writer is busy).
 * The timer leaves a short WAL alone: checkpointing it would let the next
 * commit rewind the WAL, and each rewind costs the writer an fsync of the
 * WAL header on its own thread. Updates the counters under mx; returns false
 * when it did nothing.
 */
static bool checkpoint_pass(struct bk_checkpoint *c, bool kicked)
{
    int frames = atomic_load_explicit(&c->writer_frames, memory_order_relaxed);
    if (!kicked) {
        bool idle = frames == c->tick_frames;
        c->tick_frames = frames;
        if (!idle || frames < c->opts.wal_pages || frames == c->truncated_at)
            return false;
    }
    int log, ckpt;
    int64_t copied = 0;
    uint64_t restarted = 0, truncated = 0, busy = 0, failed = 0;
    double held_ms = 0, trunc_ms = 0;
    const char *mode = "passive";
    int rc = checkpoint(c, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt, &copied);
    if (rc == SQLITE_OK && log >= c->opts.restart_pages && copied > 0) {
        bool close = false;
        for (int i = 0; i <= BK_CHECKPOINT_CATCH_UP && rc == SQLITE_OK; i++) {
            int behind = atomic_load_explicit(&c->writer_frames, memory_order_relaxed) - ckpt;
            if ((close = behind <= c->opts.wal_pages / 4) || i == BK_CHECKPOINT_CATCH_UP)
                break;
            rc = checkpoint(c, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt, &copied);
        }
        /* A writer faster than the catch-up would make RESTART copy (and
         * sync) much under the gate: left to a later pass, unless the WAL
         * has reached four times its bound. */
        if (rc == SQLITE_OK && (close || log >= 4 * c->opts.restart_pages)) {
            mode = "restart";
            rc = checkpoint_gated(c, SQLITE_CHECKPOINT_RESTART, &log, &ckpt, &copied, &held_ms);
            restarted += rc == SQLITE_OK;
        }
    } else if (rc == SQLITE_OK && !kicked && log >= c->opts.wal_pages && ckpt == log &&
               copied == 0) {
        mode = "truncate";
        rc = checkpoint_gated(c, SQLITE_CHECKPOINT_TRUNCATE, &log, &ckpt, &copied, &trunc_ms);
        if (rc == SQLITE_OK) {
            truncated++;
            c->truncated_at = frames;
        }
    }
    /* SQLITE_BUSY: another connection is checkpointing (herald-admin's own
     * automatic checkpoint), or a reader kept RESTART or TRUNCATE from
     * finishing; the next pass tries again. */
    if (rc == SQLITE_BUSY)
        busy++;
    else if (rc != SQLITE_OK)
        failed++;
    pthread_mutex_lock(&c->mx);
    c->stats.runs++;
    c->stats.restarts += restarted;
    c->stats.truncates += truncated;
    c->stats.busy += busy;
    c->stats.errors += failed;
    c->stats.frames += copied;
    c->stats.wal_frames = log > 0 ? log : 0;
    if (held_ms > c->stats.restart_max_ms)
        c->stats.restart_max_ms = held_ms;
    if (trunc_ms > c->stats.truncate_max_ms)
        c->stats.truncate_max_ms = trunc_ms;
    uint64_t errors = c->stats.errors;
    pthread_mutex_unlock(&c->mx);
    if (failed)
        note_error(c, mode, rc, errors);
    return true;
}

static void *checkpoint_main(void *arg)
{
    struct bk_checkpoint *c = arg;
    pthread_mutex_lock(&c->mx);
    while (!c->stop) {
        struct timespec until = deadline_in(c->opts.interval_ms);
        while (!c->stop && c->kicks == c->started)
            if (pthread_cond_timedwait(&c->wake, &c->mx, &until) == ETIMEDOUT)
                break;
        if (c->stop)
            break;
        bool kicked = c->kicks != c->started;
        c->started = c->kicks;
        pthread_mutex_unlock(&c->mx);
        checkpoint_pass(c, kicked);
        pthread_mutex_lock(&c->mx);
        c->passed = c->started;
        pthread_cond_broadcast(&c->done);
    }
    pthread_mutex_unlock(&c->mx);
    return NULL;
}

/* Frees what bk_checkpoint_start() made before the thread (c->db may be
 * NULL). */
static void destroy(struct bk_checkpoint *c)
{
    sqlite3_close(c->db);
    pthread_cond_destroy(&c->done);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->mx);
    pthread_mutex_destroy(&c->gate);
    free(c);
}

struct bk_checkpoint *bk_checkpoint_start(struct sqlite3 *db, const struct bk_checkpoint_opts *opts,
                                          char *err, size_t errlen)
{
    static const struct bk_checkpoint_opts defaults = {
        .wal_pages = BK_CHECKPOINT_WAL_PAGES,
        .interval_ms = BK_CHECKPOINT_INTERVAL_MS,
        .restart_pages = BK_CHECKPOINT_RESTART_PAGES,
    };
    if (!opts)
        opts = &defaults;
    /* 0: built with SQLITE_THREADSAFE=0, no locking at all; two
     * connections on two threads would corrupt SQLite's shared state. */
    if (sqlite3_threadsafe() == 0) {
        snprintf(err, errlen, "SQLite was built without thread support");
        return NULL;
    }
    const char *path = sqlite3_db_filename(db, "main");
    if (!path || !path[0]) {
        snprintf(err, errlen, "no database file to checkpoint (in-memory database)");
        return NULL;
    }
    if (opts->wal_pages < 1 || opts->wal_pages > 1000000 || opts->interval_ms < 1 ||
        opts->interval_ms > 3600000 || opts->restart_pages < opts->wal_pages ||
        opts->restart_pages > 100000000) {
        snprintf(err, errlen, "checkpoint options out of range");
        return NULL;
    }
    struct bk_checkpoint *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->writer = db;
    c->opts = *opts;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->gate, NULL);
    pthread_mutex_init(&c->mx, NULL);
    pthread_cond_init(&c->wake, &ca);
    pthread_cond_init(&c->done, &ca);
    pthread_condattr_destroy(&ca);
    /* NOMUTEX: this connection is used by one thread at a time (made here,
     * then used by the checkpointer alone). */
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(c->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, c->db ? sqlite3_errmsg(c->db) : "out of memory");
        destroy(c);
        return NULL;
    }
    /* The thread takes no signal: the broker's handlers (libevent's) run on
     * the event loop's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, checkpoint_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the checkpoint thread: %s", strerror(rc));
        destroy(c);
        return NULL;
    }
    /* Replaces the automatic checkpoint, which is itself a WAL hook. */
    sqlite3_wal_hook(db, on_wal_commit, c);
    return c;
}

void bk_checkpoint_stop(struct bk_checkpoint *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mx);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->mx);
    pthread_join(c->thread, NULL);
    /* Also replaces our hook: the writer checkpoints by itself again (its
     * close checkpoints whatever is left). */
    sqlite3_wal_autocheckpoint(c->writer, BK_CHECKPOINT_SQLITE_DEFAULT);
    destroy(c);
}

void bk_checkpoint_gate_enter(struct bk_checkpoint *c)
{
    if (c)
        pthread_mutex_lock(&c->gate);
}

void bk_checkpoint_gate_leave(struct bk_checkpoint *c)
{
    if (c)
        pthread_mutex_unlock(&c->gate);
}

bool bk_checkpoint_wait(struct bk_checkpoint *c, uint64_t ticket, long timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&c->mx);
    while (c->passed < ticket && !c->stop)
        if (pthread_cond_timedwait(&c->done, &c->mx, &until) == ETIMEDOUT)
            break;
    bool ok = c->passed >= ticket;
    pthread_mutex_unlock(&c->mx);
    return ok;
}

void bk_checkpoint_stats(struct bk_checkpoint *c, struct bk_checkpoint_stats *out)
{
    pthread_mutex_lock(&c->mx);
    *out = c->stats;
    pthread_mutex_unlock(&c->mx);
}
