/*
 * gw_ip.h - per-client-address limits. Two are checked when a TCP
 * connection is accepted, before a single byte of it is parsed: how many
 * connections one address may hold, and how fast it may open new ones (a
 * token bucket). A third bucket bounds the chat messages and direct
 * messages one address may send, whatever the accounts it uses: the
 * broker's per-user bucket cannot see a script that spreads a flood over
 * many accounts (gw_auth_chat_allowed() takes from it for gw_ws, gw_sio
 * and gw_routes).
 */
#ifndef HERALD_GW_IP_H
#define HERALD_GW_IP_H

#include <bsd/sys/cdefs.h>
#include <bsd/sys/tree.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr_storage;

/* One client address: its open connections and its two buckets. */
struct gw_ip {
    RB_ENTRY(gw_ip) node;
    uint8_t addr[16]; /* IPv4 in the first 4 bytes */
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint32_t nconns;
    double tokens; /* new connections */
    int64_t last_ms;
    double chat_tokens; /* chat messages and DMs */
    int64_t chat_last_ms;
};
RB_HEAD(gw_ip_tree, gw_ip);

struct gw_ip_table {
    struct gw_ip_tree tree; /* owns every entry */
    size_t n;
    long max_conns;    /* per address; 0: no limit */
    double rate;       /* new connections per second per address; 0: no limit */
    double burst;      /* bucket size */
    double chat_rate;  /* chat messages per second per address; 0: no limit */
    double chat_burst; /* chat bucket size */
    int64_t last_prune_ms;
};

/* What gw_ip_admit() decided. */
enum gw_ip_verdict {
    GW_IP_ADMITTED,
    GW_IP_NO_MEMORY,
    GW_IP_TOO_MANY, /* max_conns open already */
    GW_IP_TOO_FAST, /* connection bucket empty */
};

/* An empty table: max_conns per address (0: no limit), rate new connections
 * per second per address (0: no limit). Cannot fail (entries are
 * allocated by gw_ip_admit()). */
void gw_ip_init(struct gw_ip_table *t, long max_conns, double rate);
/* Sets the chat bucket: rate per second (0: no limit) and burst. */
void gw_ip_set_chat(struct gw_ip_table *t, double rate, long burst);
/* Frees every entry; pointers gw_ip_admit() returned are invalid after. */
void gw_ip_free(struct gw_ip_table *t);
/*
 * Admits a new connection from ss at time now: returns its address entry
 * (count taken; borrowed from t, valid until gw_ip_release() and the next
 * gw_ip_prune() or gw_ip_free()), or NULL with *v saying why (over a
 * limit, out of memory); the table is unchanged then.
 */
struct gw_ip *gw_ip_admit(struct gw_ip_table *t, const struct sockaddr_storage *ss, int64_t now,
                          enum gw_ip_verdict *v);
/* The log text of a refusal (static). */
const char *gw_ip_verdict_str(enum gw_ip_verdict v);
/* Takes one chat message or DM from ip's chat bucket at time now. Returns
 * false when it is empty (the message must be refused); true when taken, or
 * when there is no limit or no entry (NULL ip: a connection without an
 * address, e.g. the conformance target's). */
bool gw_ip_chat_take(struct gw_ip_table *t, struct gw_ip *ip, int64_t now);
/* The connection holding ip is gone: gives its count back (NULL: no-op).
 * The entry stays until gw_ip_prune() finds its buckets full. */
void gw_ip_release(struct gw_ip_table *t, struct gw_ip *ip);
/* Forgets idle addresses whose buckets are full again (call every second
 * or so). */
void gw_ip_prune(struct gw_ip_table *t, int64_t now);

#endif
