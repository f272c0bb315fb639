/*
 * loadgen.c - herald-loadgen: the load generator behind scripts/bench.
 *
 * Why it exists: the benchmarks compare Herald with a Node Socket.IO server
 * side by side, so the client side must be cheap enough never to be the
 * bottleneck and must speak both of Herald's WebSocket dialects: the raw
 * /ws JSON endpoint and Socket.IO v5 over Engine.IO v4 over WebSocket.
 *
 * Shape: the parent process forks --procs workers (a process may hold at most
 * 20 000 descriptors here), each one libevent loop holding a contiguous slice
 * of the connections. Workers write their counters and latency histogram
 * into one shared anonymous mapping; the parent only reads it: it prints a
 * progress line every second, moves everyone through the phases (ramp,
 * settle, measure, drain) by writing the phase word, samples the CPU time
 * and RSS of the server processes named with --pid at each phase boundary,
 * and writes a JSON summary at the end.
 *
 * Latency is end to end on CLOCK_MONOTONIC, which all processes of one host
 * share: chat and DMs carry their send time in the message text
 * ("lg:<ns>:<worker>:..."); presence changes are timed from the moment a
 * churning user's connection started (connect(): online, so the handshake is
 * part of it and no event can precede its change) or was closed
 * (offline), which the churning worker writes into the shared mapping, to
 * the moment a watcher sees the matching status event. Histograms are
 * HdrHistogram-style log-linear buckets in microseconds (64 sub-buckets per
 * power of two: under 1.6 % relative error), merged by adding counts.
 *
 * The codecs are Herald's own (common/ws.c parses every server frame and
 * rejects what RFC 6455 forbids; tokens are minted by jwt_auth_sign), so a
 * protocol slip on either server shows up as a counted error.
 */
#include "lg_shared.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const mode_names[LG_MODES] = {"idle", "presence", "broadcast", "dm", "scale"};

/* ---- histogram ---------------------------------------------------------------- */

static double hist_value(unsigned idx)
{
    if (idx < 2 * LG_SUB)
        return idx;
    unsigned shift = (idx - 2 * LG_SUB) / LG_SUB + 1;
    uint64_t sub = (idx - 2 * LG_SUB) % LG_SUB + LG_SUB;
    return ((double)(sub << shift) + (double)((sub + 1) << shift)) / 2.0;
}

static double hist_percentile(const uint64_t *h, uint64_t total, double p)
{
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)total), seen = 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < LG_BUCKETS; i++) {
        seen += h[i];
        if (seen >= want)
            return hist_value(i);
    }
    return hist_value(LG_BUCKETS - 1);
}

/* ---- parent: measurement of the server processes -------------------------------- */

struct proc_sample {
    double cpu_s;
    long rss_kb;
};

static bool proc_sample(pid_t pid, struct proc_sample *s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    if (!p)
        return false;
    unsigned long ut = 0, st = 0;
    /* Fields after the command: state is 3; utime 14, stime 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return false;
    s->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    s->rss_kb = 0;
    if ((f = fopen(path, "r"))) {
        while (fgets(buf, sizeof(buf), f))
            if (sscanf(buf, "VmRSS: %ld", &s->rss_kb) == 1)
                break;
        fclose(f);
    }
    return true;
}

/* Kernel memory held by sockets, in KiB: the TCP buffers the kernel
 * accounts in /proc/net/sockstat ("mem", in pages) plus the slab objects
 * every connection costs (struct tcp_sock, socket inode, file, epoll item)
 * from /proc/slabinfo when it is readable (root). Both ends of loopback
 * connections are in it. */
static long sockstat_kb(void)
{
    static const char *const slabs[] = {"TCP ",           "sock_inode_cache ", "filp ",
                                        "eventpoll_epi ", "tcp_bind_bucket ",  "request_sock_TCP "};
    char line[512];
    long pages = 0;
    double slab = 0;
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            const char *m = strstr(line, " mem ");
            if (strncmp(line, "TCP:", 4) == 0 && m)
                pages = atol(m + 5);
        }
        fclose(f);
    }
    if ((f = fopen("/proc/slabinfo", "r"))) {
        while (fgets(line, sizeof(line), f))
            for (size_t i = 0; i < sizeof(slabs) / sizeof(slabs[0]); i++)
                if (strncmp(line, slabs[i], strlen(slabs[i])) == 0) {
                    long active, num, objsize;
                    if (sscanf(line + strlen(slabs[i]), "%ld %ld %ld", &active, &num, &objsize) ==
                        3)
                        slab += (double)active * (double)objsize / 1024.0;
                }
        fclose(f);
    }
    return pages * (sysconf(_SC_PAGESIZE) / 1024) + (long)slab;
}

struct snapshot {
    uint64_t t_ns;
    struct proc_sample srv[LG_MAX_PIDS];
    struct proc_sample gen[LG_MAX_WORKERS];
    uint64_t sent, received, handshakes, status_seen;
    long sock_kb;
};

static pid_t workers[LG_MAX_WORKERS];

static void snap(struct snapshot *s)
{
    memset(s, 0, sizeof(*s));
    s->t_ns = lg_now_ns();
    for (int i = 0; i < lg_opt.npids; i++)
        proc_sample(lg_opt.pids[i].pid, &s->srv[i]);
    for (int i = 0; i < lg_opt.procs; i++) {
        proc_sample(workers[i], &s->gen[i]);
        s->sent += lg_shm->w[i].sent;
        s->received += lg_shm->w[i].received;
        s->handshakes += lg_shm->w[i].handshakes;
        s->status_seen += lg_shm->w[i].status_seen;
    }
    s->sock_kb = sockstat_kb();
}

static void totals(uint64_t *hist, uint64_t *count, struct lg_stats *sum)
{
    memset(sum, 0, sizeof(*sum));
    memset(hist, 0, sizeof(uint64_t) * LG_BUCKETS);
    *count = 0;
    for (int i = 0; i < lg_opt.procs; i++) {
        struct lg_stats *w = &lg_shm->w[i];
        sum->held += w->held;
        sum->handshakes += w->handshakes;
        sum->churn_handshakes += w->churn_handshakes;
        sum->err_connect += w->err_connect;
        sum->err_handshake += w->err_handshake;
        sum->err_closed += w->err_closed;
        sum->err_protocol += w->err_protocol;
        sum->err_server += w->err_server;
        sum->sent += w->sent;
        sum->received += w->received;
        sum->lat_negative += w->lat_negative;
        sum->dm_sent += w->dm_sent;
        sum->dm_received += w->dm_received;
        sum->watch_sent += w->watch_sent;
        sum->sessions_ended += w->sessions_ended;
        sum->sessions_begun += w->sessions_begun;
        for (unsigned b = 0; b < LG_BUCKETS; b++) {
            sum->hist_dm[b] += w->hist_dm[b];
            sum->hist_last[b] += w->hist_last[b];
            sum->hist_online[b] += w->hist_online[b];
            hist[b] += w->hist[b];
            *count += w->hist[b];
        }
        if (w->last_error[0])
            memcpy(sum->last_error, w->last_error, sizeof(sum->last_error));
    }
}

static uint64_t hist_total[LG_BUCKETS];

static void progress(double t, const char *phase, struct snapshot *prev)
{
    struct snapshot now;
    struct lg_stats sum;
    uint64_t count;
    snap(&now);
    totals(hist_total, &count, &sum);
    double dt = (double)(now.t_ns - prev->t_ns) / 1e9;
    if (dt <= 0)
        dt = 1;
    if (!lg_opt.quiet)
        fprintf(stderr,
                "[%s %s] %5.1fs %-7s conns %" PRIu64 "/%ld  hs/s %.0f  sent/s %.0f  recv/s %.0f"
                "  p50 %.2fms p99 %.2fms p999 %.2fms  err %" PRIu64 "\n",
                lg_opt.label, mode_names[lg_opt.mode], t, phase, sum.held, lg_opt.conns,
                (double)(now.handshakes - prev->handshakes) / dt,
                (double)(now.sent - prev->sent) / dt, (double)(now.received - prev->received) / dt,
                hist_percentile(hist_total, count, 50) / 1000,
                hist_percentile(hist_total, count, 99) / 1000,
                hist_percentile(hist_total, count, 99.9) / 1000,
                sum.err_connect + sum.err_handshake + sum.err_closed + sum.err_protocol +
                    sum.err_server);
    *prev = now;
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Sleeps up to secs, printing progress each second; stops early when done()
 * says so. */
static void wait_phase(const char *phase, double secs, bool (*done)(void), uint64_t t0,
                       struct snapshot *prev)
{
    uint64_t start = lg_now_ns(), next = start + 1000000000u;
    for (;;) {
        uint64_t now = lg_now_ns();
        if (interrupted || (secs >= 0 && (double)(now - start) / 1e9 >= secs) || (done && done()))
            return;
        if (now >= next) {
            progress((double)(now - t0) / 1e9, phase, prev);
            next += 1000000000u;
        }
        usleep(20000);
    }
}

static bool workers_drained(void)
{
    for (int i = 0; i < lg_opt.procs; i++)
        if (__atomic_load_n(&lg_shm->w[i].phase_seen, __ATOMIC_ACQUIRE) != PH_DRAIN)
            return false;
    return true;
}

static bool ramp_finished(void)
{
    for (int i = 0; i < lg_opt.procs; i++)
        if (!lg_shm->w[i].ramp_done)
            return false;
    return true;
}

/* Scale: the ramp's announcements (in scope all, every user's first tab to
 * every connection: O(conns^2)) may still be arriving after the settle
 * period; the measurement starts once a whole second passes without a
 * status event, or after SETTLE_QUIET_MAX_S more at most (then the backlog
 * shows in the latencies). */
#define SETTLE_QUIET_MAX_S 600
static double settle_extra_s;

static uint64_t status_total(void)
{
    uint64_t n = 0;
    for (int i = 0; i < lg_opt.procs; i++)
        n += __atomic_load_n(&lg_shm->w[i].status_seen, __ATOMIC_RELAXED);
    return n;
}

static void settle_quiet(uint64_t t0, struct snapshot *prev)
{
    uint64_t start = lg_now_ns(), mark = start, seen = status_total();
    uint64_t next = start + 1000000000u;
    while (!interrupted) {
        uint64_t now = lg_now_ns(), n = status_total();
        if (n != seen) {
            seen = n;
            mark = now;
        } else if (now - mark >= 1000000000u) {
            break;
        }
        if (now - start >= (uint64_t)SETTLE_QUIET_MAX_S * 1000000000u)
            break;
        if (now >= next) {
            progress((double)(now - t0) / 1e9, "quiet?", prev);
            next += 1000000000u;
        }
        usleep(20000);
    }
    settle_extra_s = (double)(lg_now_ns() - start) / 1e9;
}

static void json_proc_block(FILE *f, const char *key, const struct snapshot *a,
                            const struct snapshot *b)
{
    fprintf(f, "  \"%s\": {", key);
    for (int i = 0; i < lg_opt.npids; i++)
        fprintf(f, "%s\"%s\": %.3f", i ? ", " : "", lg_opt.pids[i].name,
                b->srv[i].cpu_s - a->srv[i].cpu_s);
    fprintf(f, "},\n");
}

static double sum_cpu(const struct proc_sample *a, const struct proc_sample *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += b[i].cpu_s - a[i].cpu_s;
    return s;
}

static double max_util(const struct snapshot *a, const struct snapshot *b)
{
    double wall = (double)(b->t_ns - a->t_ns) / 1e9, m = 0;
    for (int i = 0; i < lg_opt.procs && wall > 0; i++) {
        double u = (b->gen[i].cpu_s - a->gen[i].cpu_s) / wall;
        m = u > m ? u : m;
    }
    return m;
}

static void write_json(const struct snapshot *s0, const struct snapshot *s_ramp,
                       const struct snapshot *s_meas, const struct snapshot *s_end,
                       const struct snapshot *s_drain)
{
    struct lg_stats sum;
    uint64_t count;
    totals(hist_total, &count, &sum);
    FILE *f = lg_opt.json_path && strcmp(lg_opt.json_path, "-") != 0 ? fopen(lg_opt.json_path, "w")
                                                                     : stdout;
    if (!f) {
        perror(lg_opt.json_path);
        return;
    }
    double ramp_s = (double)(s_ramp->t_ns - s0->t_ns) / 1e9;
    double meas_s = (double)(s_end->t_ns - s_meas->t_ns) / 1e9;
    long users = (lg_opt.conns + lg_opt.tabs - 1) / lg_opt.tabs;
    fprintf(f, "{\n  \"label\": \"%s\", \"mode\": \"%s\", \"proto\": \"%s\",\n", lg_opt.label,
            mode_names[lg_opt.mode], lg_opt.proto == LG_RAW ? "ws" : "sio");
    fprintf(f,
            "  \"conns\": %ld, \"tabs\": %ld, \"users\": %ld, \"workers\": %d, \"sources\": %d,"
            " \"rate\": %g, \"burst\": %ld, \"churn_users\": %ld, \"senders\": %ld,"
            " \"msg_size\": %ld,\n",
            lg_opt.conns, lg_opt.tabs, users, lg_opt.procs, lg_opt.sources, lg_opt.rate,
            lg_opt.burst, lg_opt.churn_users, lg_opt.senders, lg_opt.msg_size);
    fprintf(f,
            "  \"held\": %" PRIu64 ", \"handshakes\": %" PRIu64 ", \"ramp_s\": %.3f,"
            " \"handshake_rate\": %.1f,\n",
            sum.held, s_ramp->handshakes - s0->handshakes, ramp_s,
            ramp_s > 0 ? (double)(s_ramp->handshakes - s0->handshakes) / ramp_s : 0);
    fprintf(f,
            "  \"measure_s\": %.3f, \"sent\": %" PRIu64 ", \"received\": %" PRIu64
            ", \"received_after_drain\": %" PRIu64 ",\n",
            meas_s, s_end->sent - s_meas->sent, s_end->received - s_meas->received,
            s_drain->received - s_meas->received);
    fprintf(f,
            "  \"sent_rate\": %.1f, \"recv_rate\": %.1f, \"status_events\": %" PRIu64
            ", \"churn_handshakes\": %" PRIu64 ",\n",
            meas_s > 0 ? (double)(s_end->sent - s_meas->sent) / meas_s : 0,
            meas_s > 0 ? (double)(s_end->received - s_meas->received) / meas_s : 0,
            s_drain->status_seen - s0->status_seen, sum.churn_handshakes);
    fprintf(f,
            "  \"latency_us\": {\"count\": %" PRIu64
            ", \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f,"
            " \"negative\": %" PRIu64 "},\n",
            count, hist_percentile(hist_total, count, 50), hist_percentile(hist_total, count, 90),
            hist_percentile(hist_total, count, 99), hist_percentile(hist_total, count, 99.9),
            hist_percentile(hist_total, count, 100), sum.lat_negative);
    json_proc_block(f, "cpu_ramp_s", s0, s_ramp);
    json_proc_block(f, "cpu_measure_s", s_meas, s_end);
    fprintf(f, "  \"server_cpu_ramp_s\": %.3f, \"server_cpu_measure_s\": %.3f,\n",
            sum_cpu(s0->srv, s_ramp->srv, lg_opt.npids),
            sum_cpu(s_meas->srv, s_end->srv, lg_opt.npids));
    fprintf(f,
            "  \"loadgen_cpu_measure_s\": %.3f, \"loadgen_max_util_ramp\": %.3f,"
            " \"loadgen_max_util_measure\": %.3f,\n",
            sum_cpu(s_meas->gen, s_end->gen, lg_opt.procs), max_util(s0, s_ramp),
            max_util(s_meas, s_end));
    if (lg_opt.mode == LG_PRESENCE) {
        uint64_t n = 0;
        for (unsigned b = 0; b < LG_BUCKETS; b++)
            n += sum.hist_last[b];
        fprintf(f,
                "  \"offline_last_us\": {\"count\": %" PRIu64
                ", \"p50\": %.1f, \"p90\": %.1f, \"max\": %.1f},\n",
                n, hist_percentile(sum.hist_last, n, 50), hist_percentile(sum.hist_last, n, 90),
                hist_percentile(sum.hist_last, n, 100));
    }
    if (lg_opt.mode == LG_SCALE) {
        uint64_t dm_count = 0, on_count = 0;
        for (unsigned b = 0; b < LG_BUCKETS; b++) {
            dm_count += sum.hist_dm[b];
            on_count += sum.hist_online[b];
        }
        fprintf(f,
                "  \"online_latency_us\": {\"count\": %" PRIu64 ", \"p50\": %.1f, \"p99\": %.1f,"
                " \"p999\": %.1f},\n",
                on_count, hist_percentile(sum.hist_online, on_count, 50),
                hist_percentile(sum.hist_online, on_count, 99),
                hist_percentile(sum.hist_online, on_count, 99.9));
        fprintf(f,
                "  \"scale\": {\"users\": %ld, \"settle_extra_s\": %.2f, \"offline_s\": %g, "
                "\"dm_rate\": %g,"
                " \"watch_rate\": %g, \"sessions_ended\": %" PRIu64 ", \"sessions_begun\": %" PRIu64
                ", \"dm_sent\": %" PRIu64 ", \"dm_received\": %" PRIu64 ", \"watch_sent\": %" PRIu64
                ",\n    \"dm_latency_us\": {\"count\": %" PRIu64
                ", \"p50\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f}},\n",
                lg_opt.conns / 2, settle_extra_s, lg_opt.offline, lg_opt.dm_rate, lg_opt.watch_rate,
                sum.sessions_ended, sum.sessions_begun, sum.dm_sent, sum.dm_received,
                sum.watch_sent, dm_count, hist_percentile(sum.hist_dm, dm_count, 50),
                hist_percentile(sum.hist_dm, dm_count, 99),
                hist_percentile(sum.hist_dm, dm_count, 99.9),
                hist_percentile(sum.hist_dm, dm_count, 100));
    }
    fprintf(f, "  \"rss_kb_before\": {");
    for (int i = 0; i < lg_opt.npids; i++)
        fprintf(f, "%s\"%s\": %ld", i ? ", " : "", lg_opt.pids[i].name, s0->srv[i].rss_kb);
    fprintf(f, "},\n  \"rss_kb_held\": {");
    for (int i = 0; i < lg_opt.npids; i++)
        fprintf(f, "%s\"%s\": %ld", i ? ", " : "", lg_opt.pids[i].name, s_meas->srv[i].rss_kb);
    fprintf(f, "},\n  \"sock_kb_before\": %ld, \"sock_kb_held\": %ld,\n", s0->sock_kb,
            s_meas->sock_kb);
    fprintf(f,
            "  \"errors\": {\"connect\": %" PRIu64 ", \"handshake\": %" PRIu64
            ", \"closed\": %" PRIu64 ", \"protocol\": %" PRIu64 ", \"server\": %" PRIu64 "},\n",
            sum.err_connect, sum.err_handshake, sum.err_closed, sum.err_protocol, sum.err_server);
    fprintf(f, "  \"last_error\": \"");
    for (const char *p = sum.last_error; *p; p++)
        fprintf(f, (*p == '"' || *p == '\\') ? "\\%c" : ((unsigned char)*p < 32 ? "?" : "%c"), *p);
    fprintf(f, "\",\n  \"histogram_us\": [");
    bool first = true;
    for (unsigned b = 0; b < LG_BUCKETS; b++)
        if (hist_total[b]) {
            fprintf(f, "%s[%.1f, %" PRIu64 "]", first ? "" : ", ", hist_value(b), hist_total[b]);
            first = false;
        }
    fprintf(f, "]\n}\n");
    if (f != stdout)
        fclose(f);
}

/* ---- options --------------------------------------------------------------------- */

static const char usage[] =
    "usage: herald-loadgen [options]\n"
    "Opens many WebSocket connections to Herald gateways (raw /ws or Socket.IO) or to\n"
    "any Socket.IO v4 server, drives one scenario and reports progress each second\n"
    "on stderr and a JSON summary at the end.\n"
    "Scenarios (--mode):\n"
    "  idle       ramp to --conns authenticated connections and hold them\n"
    "  presence   --conns watchers; --churn-users users connect/disconnect at --rate\n"
    "             changes/s; latency from each change to the watchers' status event\n"
    "  broadcast  --senders connections send live chat to all at --rate messages/s\n"
    "             (0: saturation, --window messages in flight per worker);\n"
    "             --burst N sends N messages back to back\n"
    "  dm         --conns/2 pairs of users (neighbours: different gateways) exchange\n"
    "             direct messages at --rate messages/s in all; latency and loss\n"
    "  scale      --conns (a multiple of 6) connections of conns/2 users with 1, 2 or 3\n"
    "             tabs (ids from --first-user, the friendship ring of `herald-admin\n"
    "             friend bulk`); --rate sessions/s end (all of a user's tabs close)\n"
    "             and begin again --offline s later; --dm-rate DMs/s to the next\n"
    "             user on the ring, --watch-rate watch-profile changes/s; latency\n"
    "             from each transition to every tab that hears it\n"
    "Options:\n"
    "  --mode M            idle|presence|broadcast|dm|scale (default idle)\n"
    "  --proto P           ws (raw /ws JSON) or sio (Socket.IO over WebSocket; default ws)\n"
    "  --host A            server address (default 127.0.0.1)\n"
    "  --ports P,P,...     server ports; connections are spread round robin (required)\n"
    "  --secret S          HS256 secret for tokens (or env HERALD_JWT_SECRET)\n"
    "  --first-user N      first user id (default 1)\n"
    "  --conns N           main connections (default 1000)\n"
    "  --tabs N            connections per user (default 1): users = conns/tabs\n"
    "  --churn-users M     presence: users that come and go, ids after the main users\n"
    "  --procs N           worker processes (default: enough for 19000 each, at least 1)\n"
    "  --sources N         source addresses 127.0.0.2.. (default 32)\n"
    "  --ramp-rate R       new connections per second while ramping (0: as fast as possible)\n"
    "  --ramp-inflight N   handshakes in flight at once, all workers (default 512)\n"
    "  --settle S          seconds between the ramp and the measurement (default 2)\n"
    "  --duration S        seconds of measurement (default 10)\n"
    "  --drain S           seconds to wait for late deliveries (default 2)\n"
    "  --rate R            presence changes/s, broadcast or DM messages/s (see above)\n"
    "  --burst N           messages per burst (default 1)\n"
    "  --senders N         broadcast senders per worker (default 4)\n"
    "  --window N          saturation: messages in flight per worker (default 32)\n"
    "  --msg-size N        bytes of chat text (default 64)\n"
    "  --dm-rate R         scale: DMs/s in all (default 0)\n"
    "  --watch-rate R      scale: watch-profile changes/s in all (default 0)\n"
    "  --offline S         scale: seconds a user stays away (default 1)\n"
    "  --pid NAME=PID      a server process to measure (CPU time, RSS); repeatable\n"
    "  --label L           name in the progress lines and the JSON (default herald)\n"
    "  --json FILE         write the summary there (default: stdout)\n"
    "  --quiet             no progress lines\n"
    "  --help              this text\n";

static long parse_long(const char *name, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max) {
        fprintf(stderr, "herald-loadgen: --%s must be an integer in %ld..%ld\n", name, min, max);
        exit(2);
    }
    return n;
}

static double parse_real(const char *name, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || end == v || d < 0 || !isfinite(d)) {
        fprintf(stderr, "herald-loadgen: --%s must be a number >= 0\n", name);
        exit(2);
    }
    return d;
}

/* Numeric options, one row each: where the value goes in lg_opt, its type
 * ('l' long, 'i' int, 'I' int64_t, 'd' double: no bounds) and its bounds. */
struct lg_num_opt {
    const char *name;
    size_t off;
    char type;
    long min, max;
};
#define LG_NUM(name, field, type, min, max)                                                        \
    {                                                                                              \
        name, offsetof(struct lg_opts, field), type, min, max                                      \
    }
static const struct lg_num_opt lg_num_opts[] = {
    LG_NUM("first-user", first_user, 'I', 1, 1L << 50),
    LG_NUM("conns", conns, 'l', 0, LG_CONNS_PER_WORKER *LG_MAX_WORKERS),
    LG_NUM("tabs", tabs, 'l', 1, 1000000),
    LG_NUM("churn-users", churn_users, 'l', 0, 100000),
    LG_NUM("procs", procs, 'i', 1, LG_MAX_WORKERS),
    LG_NUM("sources", sources, 'i', 1, 250),
    LG_NUM("ramp-rate", ramp_rate, 'd', 0, 0),
    LG_NUM("ramp-inflight", ramp_inflight, 'l', 1, 1000000),
    LG_NUM("settle", settle, 'd', 0, 0),
    LG_NUM("duration", duration, 'd', 0, 0),
    LG_NUM("drain", drain, 'd', 0, 0),
    LG_NUM("rate", rate, 'd', 0, 0),
    LG_NUM("burst", burst, 'l', 1, 100000),
    LG_NUM("senders", senders, 'l', 1, 1000000),
    LG_NUM("window", window, 'l', 1, 1000000),
    LG_NUM("msg-size", msg_size, 'l', 0, 1000),
    LG_NUM("dm-rate", dm_rate, 'd', 0, 0),
    LG_NUM("watch-rate", watch_rate, 'd', 0, 0),
    LG_NUM("offline", offline, 'd', 0, 0),
};
#define LG_NUM_COUNT (sizeof(lg_num_opts) / sizeof(lg_num_opts[0]))
/* getopt_long's value for row i of lg_num_opts (past every single char). */
#define LG_NUM_VAL(i) (256 + (int)(i))

static void set_num_opt(const struct lg_num_opt *o, const char *v)
{
    char *field = (char *)&lg_opt + o->off;
    switch (o->type) {
    case 'd':
        *(double *)field = parse_real(o->name, v);
        break;
    case 'i':
        *(int *)field = (int)parse_long(o->name, v, o->min, o->max);
        break;
    case 'I':
        *(int64_t *)field = parse_long(o->name, v, o->min, o->max);
        break;
    default:
        *(long *)field = parse_long(o->name, v, o->min, o->max);
    }
}

/* --pid NAME=PID: a server process whose CPU and memory are reported. */
static void add_pid(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || lg_opt.npids == LG_MAX_PIDS || eq - arg >= 32) {
        fprintf(stderr, "herald-loadgen: --pid NAME=PID (at most %d)\n", LG_MAX_PIDS);
        exit(2);
    }
    snprintf(lg_opt.pids[lg_opt.npids].name, sizeof(lg_opt.pids[0].name), "%.*s", (int)(eq - arg),
             arg);
    lg_opt.pids[lg_opt.npids++].pid = (pid_t)parse_long("pid", eq + 1, 1, 1L << 30);
}

/* The options that are not numbers. Returns false for an unknown one. */
static bool set_other_opt(int ch, char *arg)
{
    switch (ch) {
    case 'm':
        for (lg_opt.mode = 0; lg_opt.mode < LG_MODES && strcmp(arg, mode_names[lg_opt.mode]);
             lg_opt.mode++)
            ;
        if (lg_opt.mode == LG_MODES) {
            fprintf(stderr, "herald-loadgen: unknown --mode %s\n", arg);
            exit(2);
        }
        return true;
    case 'P':
        if (strcmp(arg, "ws") && strcmp(arg, "sio")) {
            fprintf(stderr, "herald-loadgen: --proto is ws or sio\n");
            exit(2);
        }
        lg_opt.proto = strcmp(arg, "ws") == 0 ? LG_RAW : LG_SIO;
        return true;
    case 'p':
        for (char *s = arg, *tok; (tok = strsep(&s, ","));)
            if (*tok && lg_opt.nports < LG_MAX_PORTS)
                lg_opt.ports[lg_opt.nports++] = (int)parse_long("ports", tok, 1, 65535);
        return true;
    case 'H':
        lg_opt.host = arg;
        return true;
    case 's':
        lg_opt.secret = arg;
        return true;
    case 'k':
        add_pid(arg);
        return true;
    case 'l':
        lg_opt.label = arg;
        return true;
    case 'o':
        lg_opt.json_path = arg;
        return true;
    case 'q':
        lg_opt.quiet = true;
        return true;
    case 'h':
        fputs(usage, stdout);
        exit(0);
    }
    return false;
}

/* What the options say together: required ones, and sizes that fit. */
static void check_args(int argc)
{
    if (optind < argc || lg_opt.nports == 0 || !lg_opt.secret || !*lg_opt.secret) {
        fprintf(stderr, "herald-loadgen: %s\n",
                optind < argc        ? "unexpected argument"
                : lg_opt.nports == 0 ? "--ports is required"
                                     : "no secret: --secret or HERALD_JWT_SECRET");
        exit(2);
    }
    if (lg_opt.mode == LG_DM && lg_opt.tabs != 1) {
        fprintf(stderr, "herald-loadgen: dm pairs users, so --tabs must be 1\n");
        exit(2);
    }
    if (lg_opt.mode == LG_SCALE && (lg_opt.conns % 6 != 0 || lg_opt.proto != LG_RAW)) {
        fprintf(stderr, "herald-loadgen: scale needs --conns a multiple of 6 and --proto ws\n");
        exit(2);
    }
    if (lg_opt.mode == LG_PRESENCE && lg_opt.churn_users == 0)
        lg_opt.churn_users = 100;
    if (lg_opt.mode != LG_PRESENCE)
        lg_opt.churn_users = 0;
    long need = (lg_opt.conns + lg_opt.churn_users + LG_CONNS_PER_WORKER - 1) / LG_CONNS_PER_WORKER;
    if (lg_opt.procs == 0)
        lg_opt.procs = need > 0 ? (int)need : 1;
    if (lg_opt.procs < need) {
        fprintf(stderr, "herald-loadgen: %ld connections need --procs >= %ld\n",
                lg_opt.conns + lg_opt.churn_users, need);
        exit(2);
    }
}

static void parse_args(int argc, char **argv)
{
    static const struct option other[] = {
        {"mode", 1, 0, 'm'},   {"proto", 1, 0, 'P'}, {"host", 1, 0, 'H'},  {"ports", 1, 0, 'p'},
        {"secret", 1, 0, 's'}, {"pid", 1, 0, 'k'},   {"label", 1, 0, 'l'}, {"json", 1, 0, 'o'},
        {"quiet", 0, 0, 'q'},  {"help", 0, 0, 'h'},
    };
    enum { NOTHER = sizeof(other) / sizeof(other[0]) };
    struct option lo[NOTHER + LG_NUM_COUNT + 1];
    memcpy(lo, other, sizeof(other));
    for (size_t i = 0; i < LG_NUM_COUNT; i++)
        lo[NOTHER + i] = (struct option){lg_num_opts[i].name, 1, 0, LG_NUM_VAL(i)};
    lo[NOTHER + LG_NUM_COUNT] = (struct option){0, 0, 0, 0};
    lg_opt = (struct lg_opts){
        .mode = LG_IDLE,
        .proto = LG_RAW,
        .host = "127.0.0.1",
        .sources = 32,
        .first_user = 1,
        .conns = 1000,
        .tabs = 1,
        .ramp_inflight = 512,
        .settle = 2,
        .duration = 10,
        .drain = 2,
        .burst = 1,
        .senders = 4,
        .window = 32,
        .msg_size = 64,
        .offline = 1,
        .label = "herald",
        .secret = getenv("HERALD_JWT_SECRET"),
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch >= LG_NUM_VAL(0) && ch < LG_NUM_VAL(LG_NUM_COUNT))
            set_num_opt(&lg_num_opts[ch - LG_NUM_VAL(0)], optarg);
        else if (!set_other_opt(ch, optarg)) {
            fputs(usage, stderr);
            exit(2);
        }
    }
    check_args(argc);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    long changes = lg_opt.mode == LG_SCALE ? lg_opt.conns / 2 : lg_opt.churn_users;
    size_t size = sizeof(struct lg_shared) + 2 * (size_t)changes * sizeof(uint64_t);
    lg_shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (lg_shm == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    lg_shm->change = (uint64_t *)(lg_shm + 1);
    lg_shm->last_arrival = lg_shm->change + changes;
    lg_shm->phase = PH_RAMP;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* Every descriptor this process may have: 19 000 connections each. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < lg_opt.npids; i++) {
        struct proc_sample ps;
        if (!proc_sample(lg_opt.pids[i].pid, &ps)) {
            fprintf(stderr, "herald-loadgen: no process %s=%d\n", lg_opt.pids[i].name,
                    (int)lg_opt.pids[i].pid);
            return 2;
        }
    }
    struct snapshot s0, s_ramp, s_meas, s_end, s_drain, prev;
    /* Slices: main connections and churning users split evenly; DM pairs
     * stay within one worker (even slice boundaries). */
    for (int i = 0; i < lg_opt.procs; i++) {
        long lo = lg_opt.conns * i / lg_opt.procs, hi = lg_opt.conns * (i + 1) / lg_opt.procs;
        if (lg_opt.mode == LG_DM) {
            lo &= ~1L;
            hi = i == lg_opt.procs - 1 ? lg_opt.conns : hi & ~1L;
        } else if (lg_opt.mode == LG_SCALE) { /* whole blocks of 6: whole users */
            lo = lg_opt.conns / 6 * i / lg_opt.procs * 6;
            hi = lg_opt.conns / 6 * (i + 1) / lg_opt.procs * 6;
        }
        long clo = lg_opt.churn_users * i / lg_opt.procs,
             chi = lg_opt.churn_users * (i + 1) / lg_opt.procs;
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            lg_shm->phase = PH_STOP;
            return 1;
        }
        if (pid == 0) {
            signal(SIGINT, SIG_IGN);
            _exit(lg_worker_main(i, lo, hi, clo, chi));
        }
        workers[i] = pid;
    }
    uint64_t t0 = lg_now_ns();
    snap(&s0);
    prev = s0;
    wait_phase("ramp", -1, ramp_finished, t0, &prev);
    snap(&s_ramp);
    lg_shm->phase = PH_SETTLE;
    wait_phase("settle", lg_opt.settle, NULL, t0, &prev);
    if (lg_opt.mode == LG_SCALE)
        settle_quiet(t0, &prev);
    snap(&s_meas);
    lg_shm->phase = PH_MEASURE;
    wait_phase("measure", lg_opt.duration, NULL, t0, &prev);
    /* Stop the senders first and wait until every worker has acted on it
     * (phase_seen, at the end of its next 1 ms tick), then count: a message
     * sent after the snapshot would be counted as received but not sent. */
    lg_shm->phase = PH_DRAIN;
    wait_phase("measure", 2, workers_drained, t0, &prev);
    snap(&s_end);
    wait_phase("drain", lg_opt.drain, NULL, t0, &prev);
    snap(&s_drain);
    progress((double)(lg_now_ns() - t0) / 1e9, "done", &prev);
    lg_shm->phase = PH_STOP;
    int failed = 0;
    for (int i = 0; i < lg_opt.procs; i++) {
        int status;
        if (waitpid(workers[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    write_json(&s0, &s_ramp, &s_meas, &s_end, &s_drain);
    if (failed)
        fprintf(stderr, "herald-loadgen: %d worker(s) failed\n", failed);
    return failed || interrupted ? 1 : 0;
}
