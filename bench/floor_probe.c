/*
 * floor_probe.c - herald-floor-probe: what the kernel alone charges to send
 * one small message to each of N loopback TCP connections, the floor under
 * any fan-out Herald does (scripts/bench --only floor puts the two side by
 * side).
 *
 * Shape: the parent listens on 127.0.0.1, forks a receiver that opens N
 * connections to it (so each process holds N descriptors: N = 10 000 fits
 * the 20 000 limit of one process), and accepts them. Then, --rounds
 * times: the receiver says it is waiting (a byte on a pipe), the parent
 * takes the time and its own thread CPU time, send()s a 16-byte message on
 * every accepted socket in a loop (what a gateway does when it writes one
 * frame to N connections, without the framing), and takes both again; the
 * receiver reads every socket through epoll and answers with the
 * CLOCK_MONOTONIC time at which the N-th message arrived. On loopback the
 * sender's send() also runs the receiving side's TCP processing (softirq
 * in the sender's context), so the CPU per send is the whole kernel path.
 *
 * Output: one JSON object per N on stdout: the medians over the rounds of
 * the CPU-microseconds per send, of the time of the send loop and of the
 * time from the first send to the last arrival, plus the receiver's CPU per
 * message read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* At most this many rounds: the medians need a handful, not more. */
#define FP_MAX_ROUNDS 64
/* A status event on the wire is ~60 bytes; a small send is a small send. */
#define FP_MSG 16

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

static int die(const char *what)
{
    fprintf(stderr, "herald-floor-probe: %s: %s\n", what, strerror(errno));
    return 1;
}

static int read_full(int fd, void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* The receiver: n connections to port, then rounds of "ready" (to the
 * parent on `up`) and "the last of n arrived at T" (8 bytes, then its CPU
 * ns for the round). Exits 0 after the last round. */
static int receiver(int port, long n, int rounds, int up)
{
    int *fds = calloc((size_t)n, sizeof(int));
    int ep = epoll_create1(0);
    if (!fds || ep < 0)
        return 1;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (long i = 0; i < n; i++) {
        /* Source addresses 127.0.0.2..: ports never run out. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % 200));
        int one = 1;
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0)
            return die("socket");
        setsockopt(fds[i], IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (bind(fds[i], (struct sockaddr *)&src, sizeof(src)) != 0 ||
            connect(fds[i], (struct sockaddr *)&dst, sizeof(dst)) != 0)
            return die("connect");
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0)
            return die("epoll_ctl");
    }
    struct epoll_event evs[256];
    char buf[256];
    for (int r = 0; r < rounds; r++) {
        uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        if (write(up, "r", 1) != 1)
            return 1;
        long seen = 0;
        uint64_t last = 0;
        while (seen < n) {
            int k = epoll_wait(ep, evs, 256, 10000);
            if (k <= 0)
                return die("epoll_wait (a message never came)");
            for (int j = 0; j < k; j++) {
                ssize_t got = read(fds[evs[j].data.u64], buf, sizeof(buf));
                if (got <= 0)
                    return die("read");
                seen += got / FP_MSG;
            }
            last = now_ns(CLOCK_MONOTONIC);
        }
        uint64_t out[2] = {last, now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0};
        if (write(up, out, sizeof(out)) != (ssize_t)sizeof(out))
            return 1;
    }
    return 0;
}

/* One N: prints its JSON object. 0, or 1 with the reason on stderr. */
static int probe(long n, int rounds)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 4096) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) != 0)
        return die("listen");
    int up[2];
    if (pipe(up) != 0)
        return die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        return die("fork");
    if (pid == 0) {
        close(ls);
        close(up[0]);
        _exit(receiver(ntohs(a.sin_port), n, rounds, up[1]));
    }
    close(up[1]);
    int rc = 1;
    int *fds = calloc((size_t)n, sizeof(int));
    long accepted = 0;
    for (; fds && accepted < n; accepted++) {
        fds[accepted] = accept(ls, NULL, NULL);
        if (fds[accepted] < 0) {
            die("accept");
            goto cleanup;
        }
        setsockopt(fds[accepted], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    uint64_t cpu[FP_MAX_ROUNDS], loop[FP_MAX_ROUNDS], last[FP_MAX_ROUNDS], rcpu[FP_MAX_ROUNDS];
    char msg[FP_MSG];
    memset(msg, 'x', sizeof(msg));
    for (int r = 0; r < rounds; r++) {
        char ready;
        uint64_t back[2];
        if (read_full(up[0], &ready, 1) != 0)
            goto cleanup;
        uint64_t t0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        for (long i = 0; i < n; i++)
            if (send(fds[i], msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg)) {
                die("send");
                goto cleanup;
            }
        uint64_t c1 = now_ns(CLOCK_THREAD_CPUTIME_ID), t1 = now_ns(CLOCK_MONOTONIC);
        if (read_full(up[0], back, sizeof(back)) != 0)
            goto cleanup;
        cpu[r] = c1 - c0;
        loop[r] = t1 - t0;
        last[r] = back[0] - t0;
        rcpu[r] = back[1];
    }
    printf("{\"conns\": %ld, \"rounds\": %d, \"msg_bytes\": %d, \"send_cpu_us\": %.3f,"
           " \"send_loop_ms\": %.3f, \"last_ms\": %.3f, \"recv_cpu_us\": %.3f}\n",
           n, rounds, FP_MSG, (double)median(cpu, rounds) / 1e3 / (double)n,
           (double)median(loop, rounds) / 1e6, (double)median(last, rounds) / 1e6,
           (double)median(rcpu, rounds) / 1e3 / (double)n);
    fflush(stdout);
    rc = 0;
cleanup:
    for (long i = 0; fds && i < accepted; i++)
        close(fds[i]);
    free(fds);
    close(ls);
    close(up[0]);
    int status;
    if (rc != 0)
        kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return rc;
}

int main(int argc, char **argv)
{
    int rounds = 9;
    long ns[16];
    int nn = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc) {
            for (char *s = argv[++i], *tok; (tok = strsep(&s, ",")) && nn < 16;)
                ns[nn++] = atol(tok);
        } else {
            fprintf(stderr,
                    "usage: herald-floor-probe --conns N[,N...] [--rounds R]\n"
                    "One JSON line per N: CPU-us per send() of %d bytes to each of N\n"
                    "loopback TCP connections, and the time to the last arrival.\n",
                    FP_MSG);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (nn == 0 || rounds < 1 || rounds > FP_MAX_ROUNDS) {
        fprintf(stderr, "herald-floor-probe: --conns is required; --rounds 1..%d\n", FP_MAX_ROUNDS);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < nn; i++) {
        if (ns[i] < 1 || ns[i] > 19000) {
            fprintf(stderr, "herald-floor-probe: N must be 1..19000 (one process's descriptors)\n");
            return 2;
        }
        if (probe(ns[i], rounds) != 0)
            return 1;
    }
    return 0;
}
