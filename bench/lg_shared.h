/*
 * lg_shared.h - what herald-loadgen's parent (loadgen.c: options, phases,
 * measurement of the servers, the JSON summary) and its workers
 * (lg_worker.c: the connections) share; the shared variables and the clock
 * live in lg_shared.c, so the parent calls into the workers and both into
 * lg_shared.c, never the workers back into the parent.
 *
 * The parent maps struct lg_shared before forking; each worker writes only
 * its own struct lg_stats and the presence change table, the parent only
 * reads them, except the phase word, which only the parent writes.
 */
#ifndef HERALD_LG_SHARED_H
#define HERALD_LG_SHARED_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A worker keeps some descriptors for itself (epoll, pipes, stdio): the
 * hard limit here is 20 000 per process. */
#define LG_CONNS_PER_WORKER 19000
#define LG_MAX_WORKERS 64
#define LG_MAX_PORTS 16
#define LG_MAX_PIDS 16
/* Log-linear histogram: values below 128 us exact, then 64 buckets per
 * power of two up to 2^38 us (three days): 128 + 32 * 64. */
#define LG_SUB 64
#define LG_BUCKETS (2 * LG_SUB + 32 * LG_SUB)

enum lg_mode { LG_IDLE, LG_PRESENCE, LG_BROADCAST, LG_DM, LG_SCALE, LG_MODES };
enum lg_proto { LG_RAW, LG_SIO };
enum lg_phase { PH_RAMP, PH_SETTLE, PH_MEASURE, PH_DRAIN, PH_STOP };

struct lg_opts {
    enum lg_mode mode;
    enum lg_proto proto;
    const char *host;
    int ports[LG_MAX_PORTS];
    int nports;
    int sources;
    int procs;
    const char *secret;
    int64_t first_user;
    long conns;
    long tabs;
    double ramp_rate;
    long ramp_inflight;
    double settle;
    double duration;
    double drain;
    double rate;
    long burst;
    long churn_users;
    long senders;
    long window;
    long msg_size;
    /* Scale: DMs/s and watch-profile changes/s in all, seconds a user whose
     * session ended stays away before it comes back. */
    double dm_rate;
    double watch_rate;
    double offline;
    const char *json_path;
    const char *label;
    struct {
        char name[32];
        pid_t pid;
    } pids[LG_MAX_PIDS];
    int npids;
    bool quiet;
};

/* One worker's counters; written only by that worker. */
struct lg_stats {
    uint64_t held;       /* main connections ready now */
    uint64_t handshakes; /* main connections that completed a handshake */
    uint64_t churn_handshakes;
    uint64_t err_connect, err_handshake, err_closed, err_protocol, err_server;
    uint64_t sent;     /* chat messages / DMs sent */
    uint64_t received; /* chat messages / DMs / status events received */
    uint64_t status_seen;
    uint64_t lat_negative;
    /* Scale: DMs sent and received (with their own histogram: hist is the
     * presence deliveries'), watch-profile changes sent, and sessions that
     * ended and began again (each is two transitions). */
    uint64_t dm_sent, dm_received, watch_sent, sessions_ended, sessions_begun;
    uint64_t hist_dm[LG_BUCKETS];
    /* Presence: per offline transition of a churning user, the time to
     * its last delivery to any watcher (written when the user's next
     * change replaces it). */
    uint64_t hist_last[LG_BUCKETS];
    /* Scale: the deliveries of online transitions alone (hist has both
     * directions): an online one includes the returning tab's handshake. */
    uint64_t hist_online[LG_BUCKETS];
    int ramp_done; /* every main connection attempted and settled */
    /* The phase this worker last acted on: written at the end of each tick,
     * so once it says PH_DRAIN the worker sends nothing more. */
    volatile int phase_seen;
    char last_error[160];
    uint64_t hist[LG_BUCKETS];
};

struct lg_shared {
    volatile int phase;
    /* Presence: per churning user (scale: per user), its last change in one word, so that a
     * reader never pairs one change's time with another's direction: the
     * CLOCK_MONOTONIC time in ns with the lowest bit replaced by 1 for
     * online, 0 for offline (0 altogether: no change yet). */
    uint64_t *change;
    /* Presence: per churning user, the latest arrival (CLOCK_MONOTONIC ns)
     * at any watcher of an event about its current change (atomic max). */
    uint64_t *last_arrival;
    struct lg_stats w[LG_MAX_WORKERS];
};

/* The options (set before the fork, read-only afterwards) and the shared
 * mapping. */
extern struct lg_opts lg_opt;
extern struct lg_shared *lg_shm;

/* CLOCK_MONOTONIC in nanoseconds: the same clock in every process. */
uint64_t lg_now_ns(void);

/* The histogram bucket of a latency in microseconds. */
unsigned lg_hist_index(uint64_t us);

/* Scale mode's users: blocks of 6 connections hold 3 users with 1, 2 and 3
 * tabs (2 on average), so conns must be a multiple of 6 and users are
 * conns/2. The user index (from 0) of connection g, and the first
 * connection and tab count of user index u. */
long lg_scale_user_of(long g);
long lg_scale_first_conn(long u);
int lg_scale_tabs(long u);

/* A worker's life: holds main connections [lo, hi) and churning users
 * [clo, chi) until the phase is PH_STOP. Returns the exit status. */
int lg_worker_main(int id, long lo, long hi, long clo, long chi);

#endif
