/*
 * gw_net.c - the connection layer's loop side: the listener and what it
 * admits (per-address limits, 429 before parsing), the sweep timer that
 * enforces every per-connection deadline and the heartbeat, the reap point
 * that frees dead connections, and start-up, drain and shutdown. See
 * gw_net.h for the design of the layer as a whole.
 *
 * Expected sizes: tens of thousands of mostly idle connections per process;
 * the hot operations are "read a small frame and hand it up" and "queue one
 * shared frame to many connections" (gw_proto.c, gw_conn.c). The sweep walks
 * every connection once per tick, so an idle connection carries no timer of
 * its own. Everything here is single-threaded.
 */
#include "gw_net_internal.h"

#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Connections accepted per listener wake-up, so a connect storm cannot
 * starve the connections already open. */
#define GW_ACCEPT_BATCH 64
/* The sweep visits every connection once per tick, a slice of them every
 * GW_SWEEP_SLICE_MS. Walking them all at once sent the heartbeat pings of
 * every connection opened in the same tick together: 20 000 pings (and
 * then 20 000 pongs to read) in one burst held the loop long enough to
 * make presence p99 at 100 000 connections 453 ms. Sliced, a tick's pings
 * leave spread over it, and stay spread, since each connection's next
 * ping counts from its own. */
#define GW_SWEEP_SLICE_MS 20

static int conn_cmp(const struct gw_conn *a, const struct gw_conn *b)
{
    return a->id < b->id ? -1 : a->id > b->id;
}
RB_GENERATE_INTERNAL(gw_conn_tree, gw_conn, node, conn_cmp, static __attribute__((unused)))

/* ---- reaping, sweeping, accepting --------------------------------------- */

static void conn_free(struct gw_conn *c)
{
    struct gw_net *n = c->net;
    if (n->h.on_closed)
        n->h.on_closed(n, c);
    if (c->ev_flags)
        event_del(&c->ev);
    RB_REMOVE(gw_conn_tree, &n->by_id, c);
    HERALD_ASSERT(n->nconns > 0);
    n->nconns--;
    gw_ip_release(&n->ips, c->ip);
    gw_conn_free_queue(c);
    free(c->rbuf);
    free(c->msg);
    close(c->fd);
    free(c);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct gw_net *n = arg;
    (void)fd;
    (void)what;
    while (n->dead) {
        struct gw_conn *c = n->dead;
        n->dead = c->u.next_dead;
        /* Never on the flush list too: gw_conn_mark_dead() took it off. */
        HERALD_ASSERT(!(c->flags & GW_CONN_DIRTY));
        conn_free(c);
    }
}

/* The connection with the smallest id >= id, or NULL. */
static struct gw_conn *conn_at_or_after(struct gw_net *n, uint64_t id)
{
    struct gw_conn key;
    key.id = id;
    return RB_NFIND(gw_conn_tree, &n->by_id, &key);
}

/* One connection's deadlines and heartbeat as of now. */
static void sweep_conn(struct gw_net *n, struct gw_conn *c, int64_t now);

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct gw_net *n = arg;
    (void)fd;
    (void)what;
    int64_t now = gw_now_ms();
    gw_ip_prune(&n->ips, now);
    /* Hand the pages freed after a burst (fan-out queues, a ramp of
     * handshakes) back to the system once it is over (memtrim.h).
     * Measured: a tenth of a gateway's RSS after a ramp of 5 000
     * connections with presence fan-out. */
    memtrim_tick(&n->trim, now);
    /* This slice's share of the connections, from where the last one
     * stopped; the end of the tree ends the round. Ids only grow while a
     * round runs (gw_net_take_id() aside, which can at worst make one
     * connection wait a round), so a round visits each one at most once. */
    size_t quota = n->nconns / (size_t)n->sweep_slices + 1;
    struct gw_conn *c = conn_at_or_after(n, n->sweep_next);
    for (size_t i = 0; i < quota && c; i++) {
        struct gw_conn *next = gw_net_next(c);
        sweep_conn(n, c, now);
        c = next;
    }
    n->sweep_next = c ? c->id : 0;
}

static void sweep_conn(struct gw_net *n, struct gw_conn *c, int64_t now)
{
    if (c->flags & GW_CONN_DEAD)
        return;
    if (c->deadline_ms && now >= c->deadline_ms && !(c->flags & GW_CONN_BUSY) &&
        (!(c->flags & GW_CONN_WS) || (c->flags & (GW_CONN_LINGER | GW_CONN_CUT)))) {
        /* Slowloris, idle keep-alive, or a peer that never finished the
         * close handshake. Only the first is a limit hit: a head that
         * was started (or never sent) and not completed in time. */
        if (!(c->flags & (GW_CONN_WS | GW_CONN_LINGER | GW_CONN_FINISH)) &&
            (c->rbuf || !(c->flags & GW_CONN_SERVED))) {
            n->n_limit[GW_LIMIT_HEADER_TIMEOUT]++;
            log_warn_rl(5, "conn %llu: request head not complete within %ld ms, dropping",
                        (unsigned long long)c->id, n->lim.header_timeout_ms);
        }
        gw_conn_abort(c, "deadline passed");
        return;
    }
    /* Engine.IO connections have their own heartbeat (gw_eio). */
    if ((c->flags & (GW_CONN_WS | GW_CONN_LINGER | GW_CONN_OWN_PING)) == GW_CONN_WS) {
        uint32_t silent = gw_conn_elapsed_ms(now, c->last_seen_ms);
        if (silent >= n->lim.ping_timeout_ms) {
            log_info("conn %llu: no sign of life for %ld ms, dropping", (unsigned long long)c->id,
                     (long)silent);
            gw_conn_abort(c, "ping timeout");
            return;
        }
        if (gw_conn_elapsed_ms(now, c->last_ping_ms) >= n->lim.ping_interval_ms &&
            !(c->flags & GW_CONN_CLOSE_SENT)) {
            static const uint8_t ping[2] = {0x89, 0x00};
            gw_conn_send(c, ping, sizeof(ping));
            c->last_ping_ms = (uint32_t)now;
        }
    }
    if (n->h.on_tick)
        n->h.on_tick(n, c, now);
}

/* Refuses a connection before reading it: one best-effort write of a 429
 * (the socket buffer of a new connection always takes it), then close. */
static void refuse_429(struct gw_net *n, int fd, enum gw_ip_verdict v)
{
    const char *why = gw_ip_verdict_str(v);
    char resp[320], body[160];
    int bl = snprintf(body, sizeof(body), "{\"error\":\"rate-limited\",\"message\":\"%s\"}", why);
    int rl = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
                      bl, body);
    ssize_t w = send(fd, resp, (size_t)rl, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    n->n_ip_refused++;
    n->n_limit[v == GW_IP_TOO_MANY ? GW_LIMIT_CONNS_PER_IP : GW_LIMIT_CONN_RATE_PER_IP]++;
    log_warn_rl(5, "refused a connection: %s", why);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct gw_net *n = arg;
    (void)what;
    for (int i = 0; i < GW_ACCEPT_BATCH && !n->draining; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_warn_rl(1, "accept: %s", strerror(errno));
            return;
        }
        enum gw_ip_verdict v;
        struct gw_ip *ip = gw_ip_admit(&n->ips, &ss, gw_now_ms(), &v);
        if (!ip) {
            if (v != GW_IP_NO_MEMORY)
                refuse_429(n, fd, v);
            close(fd);
            continue;
        }
        struct gw_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            gw_ip_release(&n->ips, ip);
            close(fd);
            return;
        }
        c->ip = ip;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->net = n;
        c->fd = fd;
        c->id = ++n->next_id;
        int64_t now = gw_now_ms();
        c->last_seen_ms = (uint32_t)now;
        c->deadline_ms = now + n->lim.header_timeout_ms;
        RB_INSERT(gw_conn_tree, &n->by_id, c);
        n->nconns++;
        n->n_accepted++;
        gw_conn_update_events(c);
    }
}

struct gw_conn *gw_conn_find(struct gw_net *n, uint64_t id)
{
    struct gw_conn key;
    key.id = id;
    struct gw_conn *c = RB_FIND(gw_conn_tree, &n->by_id, &key);
    return c && !(c->flags & GW_CONN_DEAD) ? c : NULL;
}

struct gw_conn *gw_net_first(struct gw_net *n)
{
    return RB_MIN(gw_conn_tree, &n->by_id);
}

struct gw_conn *gw_net_next(struct gw_conn *c)
{
    return RB_NEXT(gw_conn_tree, &c->net->by_id, c);
}

bool gw_net_id_used(struct gw_net *n, uint64_t id)
{
    struct gw_conn key;
    key.id = id;
    return RB_FIND(gw_conn_tree, &n->by_id, &key) != NULL;
}

bool gw_net_take_id(struct gw_net *n, struct gw_conn *c, uint64_t id)
{
    if (id == 0 || gw_net_id_used(n, id))
        return false;
    RB_REMOVE(gw_conn_tree, &n->by_id, c);
    c->id = id;
    RB_INSERT(gw_conn_tree, &n->by_id, c);
    return true;
}

static int listen_on(const char *host, int port, int *bound_port)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        log_error("listen %s:%d: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    /* 4096: a connect burst from a load balancer should queue, not fail. */
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        log_error("listen %s:%d: %s", host, port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int gw_net_init(struct gw_net *n, struct event_base *base, const struct gw_limits *lim,
                const struct gw_net_handlers *h, const char *host, int port, int *bound_port)
{
    memset(n, 0, sizeof(*n));
    memtrim_init(&n->trim);
    n->base = base;
    n->lim = *lim;
    n->h = *h;
    n->listen_fd = -1;
    RB_INIT(&n->by_id);
    gw_ip_init(&n->ips, lim->conns_per_ip, lim->conn_rate_per_ip);
    gw_ip_set_chat(&n->ips, lim->chat_rate_per_ip, lim->chat_burst_per_ip);
    /* Ids are unique across gateways and across restarts of one (a stale
     * entry in Redis never names a new connection, and a recovered session
     * keeps its id on another gateway, PROTOCOL.md §4a): each process
     * counts up from a random start in [2^52, 2^53 - 2^32), so two of them
     * meet only if they start within their connection counts of each other
     * (about 1e-9 for a million each), and every id stays exact as a
     * JavaScript number. Time-based if the kernel has no random bytes. */
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) * 1000;
    }
    n->next_id = (UINT64_C(1) << 52) + r % ((UINT64_C(1) << 52) - (UINT64_C(1) << 32));
    n->on_readable = gw_conn_read;
    n->scratch = malloc(GW_SCRATCH_SIZE);
    n->flush_ev = event_new(base, -1, 0, gw_net_on_flush, n);
    n->reap_ev = event_new(base, -1, 0, on_reap, n);
    n->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, n);
    if (!n->scratch || !n->flush_ev || !n->reap_ev || !n->sweep_ev)
        return -1;
    /* The sweep must be fine enough for the shortest timer it serves: a
     * fifth of the ping interval, between 10 ms and 1 s. */
    n->tick_ms = lim->ping_interval_ms / 5;
    if (n->tick_ms < 10)
        n->tick_ms = 10;
    if (n->tick_ms > 1000)
        n->tick_ms = 1000;
    long slice = n->tick_ms < GW_SWEEP_SLICE_MS ? n->tick_ms : GW_SWEEP_SLICE_MS;
    n->sweep_slices = n->tick_ms / slice;
    struct timeval tv = {slice / 1000, (slice % 1000) * 1000};
    event_add(n->sweep_ev, &tv);
    if (port >= 0) {
        n->listen_fd = listen_on(host, port, bound_port);
        if (n->listen_fd < 0)
            return -1;
        n->listen_ev = event_new(base, n->listen_fd, EV_READ | EV_PERSIST, on_accept, n);
        if (!n->listen_ev)
            return -1;
        event_add(n->listen_ev, NULL);
    }
    return 0;
}

void gw_net_drain(struct gw_net *n, uint16_t code, const char *reason)
{
    n->draining = true;
    if (n->listen_ev) {
        event_free(n->listen_ev);
        n->listen_ev = NULL;
    }
    if (n->listen_fd >= 0) {
        close(n->listen_fd);
        n->listen_fd = -1;
    }
    struct gw_conn *c;
    GW_NET_FOREACH(c, n)
    {
        if (c->flags & GW_CONN_WS)
            gw_conn_close(c, code, reason);
        else if (!(c->flags & GW_CONN_BUSY))
            gw_conn_close(c, code, reason);
    }
}

void gw_net_free(struct gw_net *n)
{
    struct gw_conn *c;
    while ((c = RB_MIN(gw_conn_tree, &n->by_id)) != NULL) {
        c->flags |= GW_CONN_DEAD;
        conn_free(c);
    }
    n->dead = n->dirty = NULL;
    gw_ip_free(&n->ips);
    if (n->listen_ev)
        event_free(n->listen_ev);
    if (n->listen_fd >= 0)
        close(n->listen_fd);
    if (n->flush_ev)
        event_free(n->flush_ev);
    if (n->reap_ev)
        event_free(n->reap_ev);
    if (n->sweep_ev)
        event_free(n->sweep_ev);
    free(n->scratch);
    memtrim_free(&n->trim);
    memset(n, 0, sizeof(*n));
    n->listen_fd = -1;
}
