/*
 * gw_ip.h - per-client-address limits, checked when a TCP connection is
 * accepted, before a single byte of it is parsed: how many connections one
 * address may hold, and how fast it may open new ones (a token bucket).
 * Internal to gw_net.
 */
#ifndef HERALD_GW_IP_H
#define HERALD_GW_IP_H

#include <bsd/sys/cdefs.h>
#include <bsd/sys/tree.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr_storage;

/* One client address: its open connections and its connection bucket. */
struct gw_ip {
    RB_ENTRY(gw_ip) node;
    uint8_t addr[16]; /* IPv4 in the first 4 bytes */
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint32_t nconns;
    double tokens;
    int64_t last_ms;
};
RB_HEAD(gw_ip_tree, gw_ip);

struct gw_ip_table {
    struct gw_ip_tree tree;
    size_t n;
    long max_conns; /* per address; 0: no limit */
    double rate;    /* new connections per second per address; 0: no limit */
    double burst;   /* bucket size */
    int64_t last_prune_ms;
};

void gw_ip_init(struct gw_ip_table *t, long max_conns, double rate);
void gw_ip_free(struct gw_ip_table *t);
/*
 * Admits a new connection from ss at time now: returns its address entry
 * (count taken), or NULL when the address is over a limit (*why says
 * which) or out of memory (*why NULL).
 */
struct gw_ip *gw_ip_admit(struct gw_ip_table *t, const struct sockaddr_storage *ss, int64_t now,
                          const char **why);
/* The connection holding ip is gone. */
void gw_ip_release(struct gw_ip_table *t, struct gw_ip *ip);
/* Forgets idle addresses whose bucket is full again (call every second
 * or so). */
void gw_ip_prune(struct gw_ip_table *t, int64_t now);

#endif
