/*
 * gw_ip.c - see gw_ip.h.
 *
 * Expected sizes: one entry per distinct client address with a connection
 * open or a bucket not yet full again; behind a load balancer that is one
 * address per balancer (raise the limits there, or disable them with 0).
 * Dominant operations: one tree lookup per accept and per close; a prune
 * walks the tree once a second. A chat message costs no lookup: the
 * connection it arrived on holds its entry.
 */
#include "gw_ip.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int ip_cmp(const struct gw_ip *a, const struct gw_ip *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->addr, b->addr, sizeof(a->addr));
}
RB_GENERATE_INTERNAL(gw_ip_tree, gw_ip, node, ip_cmp, static __attribute__((unused)))

void gw_ip_init(struct gw_ip_table *t, long max_conns, double rate)
{
    memset(t, 0, sizeof(*t));
    RB_INIT(&t->tree);
    t->max_conns = max_conns;
    t->rate = rate;
    /* A page load opens a few connections at once; one second's worth of
     * the rate is the burst. */
    t->burst = rate > 1 ? rate : 1;
}

void gw_ip_set_chat(struct gw_ip_table *t, double rate, long burst)
{
    t->chat_rate = rate;
    t->chat_burst = burst > 1 ? (double)burst : 1;
}

void gw_ip_free(struct gw_ip_table *t)
{
    struct gw_ip *ip, *tmp;
    RB_FOREACH_SAFE(ip, gw_ip_tree, &t->tree, tmp)
    {
        RB_REMOVE(gw_ip_tree, &t->tree, ip);
        free(ip);
    }
    t->n = 0;
}

/* The key of ss: IPv4-mapped IPv6 addresses count as their IPv4 address. */
static void key_of(const struct sockaddr_storage *ss, struct gw_ip *k)
{
    memset(k, 0, sizeof(*k));
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            k->family = AF_INET;
            memcpy(k->addr, a->s6_addr + 12, 4);
        } else {
            k->family = AF_INET6;
            memcpy(k->addr, a->s6_addr, 16);
        }
    } else if (ss->ss_family == AF_INET) {
        k->family = AF_INET;
        memcpy(k->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else {
        k->family = (uint8_t)ss->ss_family; /* unix sockets: one shared entry */
    }
}

/* Adds what rate per second earned since *last (up to burst) to *tokens. */
static void bucket_refill(double *tokens, int64_t *last, double rate, double burst, int64_t now)
{
    *tokens += (double)(now - *last) * rate / 1000.0;
    if (*tokens > burst)
        *tokens = burst;
    *last = now;
}

static void refill(const struct gw_ip_table *t, struct gw_ip *ip, int64_t now)
{
    bucket_refill(&ip->tokens, &ip->last_ms, t->rate, t->burst, now);
    bucket_refill(&ip->chat_tokens, &ip->chat_last_ms, t->chat_rate, t->chat_burst, now);
}

const char *gw_ip_verdict_str(enum gw_ip_verdict v)
{
    switch (v) {
    case GW_IP_ADMITTED:
        return "admitted";
    case GW_IP_NO_MEMORY:
        return "out of memory";
    case GW_IP_TOO_MANY:
        return "too many connections from this address";
    case GW_IP_TOO_FAST:
        return "connecting too fast from this address";
    }
    return "refused";
}

struct gw_ip *gw_ip_admit(struct gw_ip_table *t, const struct sockaddr_storage *ss, int64_t now,
                          enum gw_ip_verdict *v)
{
    struct gw_ip key;
    key_of(ss, &key);
    struct gw_ip *ip = RB_FIND(gw_ip_tree, &t->tree, &key);
    if (!ip) {
        ip = malloc(sizeof(*ip));
        if (!ip) {
            *v = GW_IP_NO_MEMORY;
            return NULL;
        }
        *ip = key;
        ip->tokens = t->burst;
        ip->chat_tokens = t->chat_burst;
        ip->last_ms = ip->chat_last_ms = now;
        RB_INSERT(gw_ip_tree, &t->tree, ip);
        t->n++;
    } else {
        refill(t, ip, now);
    }
    if (t->max_conns > 0 && ip->nconns >= (uint32_t)t->max_conns) {
        *v = GW_IP_TOO_MANY;
        return NULL;
    }
    if (t->rate > 0) {
        if (ip->tokens < 1.0) {
            *v = GW_IP_TOO_FAST;
            return NULL;
        }
        ip->tokens -= 1.0;
    }
    ip->nconns++;
    *v = GW_IP_ADMITTED;
    return ip;
}

bool gw_ip_chat_take(struct gw_ip_table *t, struct gw_ip *ip, int64_t now)
{
    if (!ip || t->chat_rate <= 0)
        return true;
    bucket_refill(&ip->chat_tokens, &ip->chat_last_ms, t->chat_rate, t->chat_burst, now);
    if (ip->chat_tokens < 1.0)
        return false;
    ip->chat_tokens -= 1.0;
    return true;
}

void gw_ip_release(struct gw_ip_table *t, struct gw_ip *ip)
{
    (void)t;
    if (ip && ip->nconns > 0)
        ip->nconns--;
    /* Kept until gw_ip_prune() finds its buckets full: forgetting it at once
     * would let a client reset them by closing everything. */
}

void gw_ip_prune(struct gw_ip_table *t, int64_t now)
{
    if (now - t->last_prune_ms < 1000)
        return;
    t->last_prune_ms = now;
    struct gw_ip *ip, *tmp;
    RB_FOREACH_SAFE(ip, gw_ip_tree, &t->tree, tmp)
    {
        if (ip->nconns)
            continue;
        refill(t, ip, now);
        if ((t->rate <= 0 || ip->tokens >= t->burst) &&
            (t->chat_rate <= 0 || ip->chat_tokens >= t->chat_burst)) {
            RB_REMOVE(gw_ip_tree, &t->tree, ip);
            free(ip);
            t->n--;
        }
    }
}
