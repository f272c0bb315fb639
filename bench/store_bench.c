/*
 * store_bench.c - herald-store-bench: how many direct messages per second
 * the broker's SQLite store takes, through the broker's own calls.
 *
 * Why: a stored DM is a row and four index entries in one WAL commit per
 * batch of entries the broker consumes (bk_consumer.c), and the target of
 * the issue is >= 20 000 stored DMs/s on the benchmark machine. The DM
 * scenario of bench/bench.mjs offers 1 000 DMs/s through the whole stack,
 * far below what the store alone takes, so this measures the store alone:
 * bk_store_batch_begin(), bk_store_dm_add() per DM, bk_store_batch_commit(),
 * on a fresh database file with the broker's settings (WAL, synchronous
 * NORMAL) and its background checkpointer (bk_checkpoint.c), in batches of
 * the sizes the broker sees: 1 when DMs trickle in, up to its XREADGROUP
 * COUNT (512 by default) under a backlog.
 *
 * Besides DMs/s it reports how long each batch held the caller (p50, p99,
 * max): for the broker that is time its event loop is blocked, which is what
 * a checkpoint inside a commit shows up as. Output: one line per batch size,
 * or one JSON object (--json) for bench/bench.mjs.
 */
#include "bk_checkpoint.h"
#include "bk_store.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Users the DMs go between: enough that the conversations index is not one
 * hot leaf, as on a real site. */
#define SB_USERS_DEFAULT 1000
#define SB_COUNT_DEFAULT 100000
#define SB_MESSAGE_DEFAULT 64
#define SB_BATCHES_DEFAULT "1,16,64,256"
#define SB_MAX_BATCHES 16

static const char usage[] =
    "usage: herald-store-bench [options]\n"
    "Inserts direct messages into a fresh SQLite store through the broker's own\n"
    "calls (bk_store_batch_begin, bk_store_dm_add, bk_store_batch_commit) and\n"
    "prints the DMs/s and the time each batch took, per batch size.\n"
    "\n"
    "  --count N           DMs per batch size [100000]\n"
    "  --batches LIST      DMs per transaction, comma-separated [1,16,64,256]\n"
    "  --db PATH           database file to create (must not exist) [a temporary file]\n"
    "  --keep              keep the database file afterwards\n"
    "  --users N           users the DMs go between [1000]\n"
    "  --message-bytes N   length of each DM's text [64]\n"
    "  --checkpoint MODE   thread: WAL checkpoints on a thread, as the broker does;\n"
    "                      commit: SQLite's own, inside the commits [thread]\n"
    "  --json              one JSON object on stdout instead of the table\n"
    "  -h, --help          this text\n";

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile (0..1) of the sorted xs[0..n). */
static double pct(const double *xs, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return xs[i < n ? i : n - 1];
}

/* Parses a positive integer no larger than max; false when it is not one. */
static bool parse_long(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

struct result {
    long batch, dms;
    double seconds, p50_ms, p99_ms, max_ms;
};

/*
 * Inserts count DMs (rounded down to whole batches) in transactions of
 * batch DMs between users first..first+users-1. Fills r; returns 0, or -1
 * after printing the store's error.
 */
static int run_size(struct bk_store *s, long batch, long count, int64_t first, long users,
                    const char *message, struct result *r)
{
    long batches = count / batch;
    if (batches < 1)
        batches = 1;
    double *times = malloc((size_t)batches * sizeof(*times));
    if (!times) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    static long seq;
    double t0 = now_s();
    for (long b = 0; b < batches; b++) {
        double b0 = now_s();
        if (bk_store_batch_begin(s) != 0)
            goto fail;
        for (long i = 0; i < batch; i++, seq++) {
            int64_t from = first + seq % users, to = first + (seq + 1) % users;
            if (bk_store_dm_add(s, from, to, message, (int64_t)(b0 * 1000)) < 0)
                goto fail;
        }
        if (bk_store_batch_commit(s) != 0)
            goto fail;
        times[b] = (now_s() - b0) * 1000;
    }
    r->seconds = now_s() - t0;
    r->batch = batch;
    r->dms = batches * batch;
    qsort(times, (size_t)batches, sizeof(*times), cmp_double);
    r->p50_ms = pct(times, (size_t)batches, 0.50);
    r->p99_ms = pct(times, (size_t)batches, 0.99);
    r->max_ms = times[batches - 1];
    free(times);
    return 0;
fail:
    fprintf(stderr, "store: %s\n", s->err);
    bk_store_batch_commit(s);
    free(times);
    return -1;
}

/* Removes the database and its WAL side files. */
static void remove_db(const char *path)
{
    char side[4200];
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}

int main(int argc, char **argv)
{
    long count = SB_COUNT_DEFAULT, users = SB_USERS_DEFAULT, msg_bytes = SB_MESSAGE_DEFAULT;
    const char *batches_arg = SB_BATCHES_DEFAULT, *db_arg = NULL;
    bool keep = false, json = false, thread = true;
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'n'},
        {"batches", required_argument, NULL, 'b'},
        {"db", required_argument, NULL, 'd'},
        {"keep", no_argument, NULL, 'k'},
        {"users", required_argument, NULL, 'u'},
        {"message-bytes", required_argument, NULL, 'm'},
        {"checkpoint", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, idx = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'n':
            ok = parse_long(optarg, 100000000, &count);
            break;
        case 'b':
            batches_arg = optarg;
            break;
        case 'd':
            db_arg = optarg;
            break;
        case 'k':
            keep = true;
            break;
        case 'u':
            ok = parse_long(optarg, 10000000, &users) && users >= 2;
            break;
        case 'm':
            ok = parse_long(optarg, 100000, &msg_bytes);
            break;
        case 'c':
            ok = strcmp(optarg, "thread") == 0 || strcmp(optarg, "commit") == 0;
            thread = strcmp(optarg, "thread") == 0;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "herald-store-bench: bad value for --%s: %s\n%s", longopts[idx].name,
                    optarg, usage);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "herald-store-bench: unexpected argument %s\n%s", argv[optind], usage);
        return 2;
    }
    long sizes[SB_MAX_BATCHES];
    int nsizes = 0;
    char list[256];
    snprintf(list, sizeof(list), "%s", batches_arg);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (nsizes == SB_MAX_BATCHES || !parse_long(tok, 100000, &sizes[nsizes])) {
            fprintf(stderr, "herald-store-bench: --batches: up to %d sizes of 1..100000\n",
                    SB_MAX_BATCHES);
            return 2;
        }
        nsizes++;
    }

    char path[4096];
    if (db_arg) {
        if (access(db_arg, F_OK) == 0) {
            fprintf(stderr, "herald-store-bench: %s exists; give a new file\n", db_arg);
            return 2;
        }
        snprintf(path, sizeof(path), "%s", db_arg);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/herald-store-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        int fd = mkstemp(path);
        if (fd < 0) {
            perror("herald-store-bench: mkstemp");
            return 1;
        }
        close(fd);
        unlink(path);
    }
    char *message = malloc((size_t)msg_bytes + 1);
    if (!message)
        return 1;
    for (long i = 0; i < msg_bytes; i++)
        message[i] = (char)('a' + i % 26);
    message[msg_bytes] = '\0';

    int rc = 1;
    struct bk_store s;
    struct result results[SB_MAX_BATCHES];
    if (bk_store_open(&s, path, true) != 0) {
        fprintf(stderr, "herald-store-bench: %s: %s\n", path, s.err);
        goto cleanup;
    }
    int64_t first = bk_store_users_add_bulk(&s, "sb", users);
    if (first < 0) {
        fprintf(stderr, "herald-store-bench: users: %s\n", s.err);
        goto cleanup;
    }
    if (thread && bk_store_checkpoint_start(&s, NULL) != 0) {
        fprintf(stderr, "herald-store-bench: checkpointer: %s\n", s.err);
        goto cleanup;
    }
    for (int i = 0; i < nsizes; i++) {
        if (run_size(&s, sizes[i], count, first, users, message, &results[i]) != 0)
            goto cleanup;
        if (!json)
            printf("batch %5ld: %8.0f DMs/s  (%ld DMs in %.2f s; per batch p50 %.3f p99 %.3f "
                   "max %.2f ms)\n",
                   results[i].batch, (double)results[i].dms / results[i].seconds, results[i].dms,
                   results[i].seconds, results[i].p50_ms, results[i].p99_ms, results[i].max_ms);
        fflush(stdout);
    }
    struct bk_checkpoint_stats st = {0};
    if (s.ckpt)
        bk_checkpoint_stats(s.ckpt, &st);
    if (json) {
        printf("{\"checkpoint\":\"%s\",\"users\":%ld,\"message_bytes\":%ld,\"sizes\":[",
               thread ? "thread" : "commit", users, msg_bytes);
        for (int i = 0; i < nsizes; i++)
            printf("%s{\"batch\":%ld,\"dms\":%ld,\"seconds\":%.6f,\"dms_per_s\":%.1f,"
                   "\"batch_ms\":{\"p50\":%.4f,\"p99\":%.4f,\"max\":%.4f}}",
                   i ? "," : "", results[i].batch, results[i].dms, results[i].seconds,
                   (double)results[i].dms / results[i].seconds, results[i].p50_ms,
                   results[i].p99_ms, results[i].max_ms);
        printf("],\"checkpointer\":{\"passes\":%llu,\"restarts\":%llu,\"truncates\":%llu,"
               "\"busy\":%llu,\"errors\":%llu,\"frames\":%lld,\"restart_max_ms\":%.3f,"
               "\"truncate_max_ms\":%.3f}}\n",
               (unsigned long long)st.runs, (unsigned long long)st.restarts,
               (unsigned long long)st.truncates, (unsigned long long)st.busy,
               (unsigned long long)st.errors, (long long)st.frames, st.restart_max_ms,
               st.truncate_max_ms);
    } else if (thread) {
        printf("checkpointer: %llu passes, %llu restarts, %llu truncates, %llu busy, %llu errors, "
               "%lld frames copied; the gate held at most %.2f ms (restart), %.2f ms (truncate)\n",
               (unsigned long long)st.runs, (unsigned long long)st.restarts,
               (unsigned long long)st.truncates, (unsigned long long)st.busy,
               (unsigned long long)st.errors, (long long)st.frames, st.restart_max_ms,
               st.truncate_max_ms);
    }
    rc = 0;
cleanup:
    bk_store_close(&s);
    if (!keep)
        remove_db(path);
    free(message);
    return rc;
}
