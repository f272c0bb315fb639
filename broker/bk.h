/*
 * bk.h - the Herald broker: owns presence, answers lookups, routes events.
 *
 * Input: the consumer group "brokers" on herald:events (gateways and
 * application backends write there). Output: one stream per gateway,
 * herald:gw:<id>. Every state change is written to Redis in the same
 * pipeline as its deliveries and before the entry is acknowledged, so a
 * restarted broker (or a standby taking over) reloads exactly what the
 * previous one had done, and a replayed entry changes nothing twice.
 *
 * Redis keys (PROTOCOL.md §7):
 *   online_users            set of online user ids
 *   herald:gateways         set of gateway ids we hold connections for
 *   herald:conns:<gw>       hash conn id -> "<user id>:<kind>" of that gateway
 *   herald:gw:<gw>:lease    the gateway's liveness lease (the gateway sets it)
 *   herald:broker:alive     our heartbeat, for the gateways' /healthz
 *   herald:broker:lock      the active broker's name (SET NX PX, renewed
 *                           every second): standbys wait for it to lapse,
 *                           then claim the pending entries (XAUTOCLAIM),
 *                           reload the state and carry on
 *   herald:watch:<gw>       hash "<conn id>:<watched user id>" -> 1: the
 *                           profile rooms of that gateway's connections
 *   herald:matchmaking      list of queued user ids, oldest first
 *   herald:deleted_users    set of deleted accounts' ids (gateways refuse
 *                           their tokens)
 *
 * Files: bk_broker.c (consuming, presence, state), bk_out.c (what goes to
 * the gateways), bk_social.c (rooms, notifications, chat, DMs,
 * matchmaking, search); bk_internal.h is what they share.
 */
#ifndef HERALD_BK_H
#define HERALD_BK_H

#include "bk_store.h"
#include "event.h"
#include "rds.h"

#include <bsd/sys/cdefs.h>
#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>
#include <stdbool.h>
#include <stdint.h>

#define BK_GATEWAYS_KEY "herald:gateways"
#define BK_CONNS_PREFIX "herald:conns:"
#define BK_ALIVE_KEY "herald:broker:alive"
#define BK_LOCK_KEY "herald:broker:lock"
#define BK_WATCH_PREFIX "herald:watch:"
#define BK_QUEUE_KEY "herald:matchmaking"
#define BK_DELETED_KEY EV_DELETED_SET

struct bk_config {
    const char *redis_url;
    const char *db_path;
    const char *consumer;
    const char *log_level;
    const char *log_file;
    long presence_grace_ms;
    long gateway_lease_ms;
    long stream_maxlen;
    long gw_stream_maxlen;
    long batch;
    long max_rooms;       /* profile rooms per connection */
    long chat_max_length; /* characters per chat message or DM */
    long chat_burst;      /* chat bucket size, messages */
    double chat_rate;     /* chat bucket refill, messages per second */
    const char *public_fields;
    const char *admin_listen; /* host:port of /metrics, NULL: off */
    long lock_ttl_ms;         /* the active broker's lock; standby takeover delay */
};

struct bk_conn;
struct bk_member;
struct evhttp;

struct bk_gw {
    RB_ENTRY(bk_gw) node;
    char *id; /* owned */
    LIST_HEAD(, bk_conn) conns;
    size_t nconns;
    int64_t seen_ms; /* last entry, registration or Redis reconnect (lease grace) */
};

struct bk_user {
    RB_ENTRY(bk_user) node;
    int64_t id;
    int nconns;    /* authenticated connections, all gateways */
    bool online;   /* in online_users, announced */
    bool in_grace; /* on the grace list, offline pending */
    int64_t grace_until_ms;
    TAILQ_ENTRY(bk_user) grace;
    LIST_HEAD(, bk_conn) conns;
    bool queued;  /* in the matchmaking queue */
    bool deleted; /* account deleted: going offline without grace */
    TAILQ_ENTRY(bk_user) queue;
    char username[BK_USERNAME_MAX + 1];
};

struct bk_conn {
    RB_ENTRY(bk_conn) node;
    struct bk_gw *gw; /* borrowed */
    uint64_t id;
    struct bk_user *user; /* borrowed; NULL for a guest */
    LIST_ENTRY(bk_conn) gw_link;
    LIST_ENTRY(bk_conn) user_link;
    LIST_HEAD(, bk_member) rooms; /* profile rooms this connection is in */
    int nrooms;
    char kind; /* 'w' raw, 's' Socket.IO */
};

/* Room watching-user-<target>: the connections watching that profile. */
struct bk_room {
    RB_ENTRY(bk_room) node;
    int64_t target;
    LIST_HEAD(, bk_member) members;
};

/* One connection in one room (on both lists). */
struct bk_member {
    struct bk_room *room; /* borrowed */
    struct bk_conn *conn; /* borrowed */
    LIST_ENTRY(bk_member) in_room;
    LIST_ENTRY(bk_member) in_conn;
};

/* A user's chat token bucket; kept until it is full again. */
struct bk_rate {
    RB_ENTRY(bk_rate) node;
    int64_t user;
    double tokens;
    int64_t last_ms;
    TAILQ_ENTRY(bk_rate) lru; /* least recently used first */
};

RB_HEAD(bk_gw_tree, bk_gw);
RB_HEAD(bk_user_tree, bk_user);
RB_HEAD(bk_conn_tree, bk_conn);
TAILQ_HEAD(bk_grace_list, bk_user);
/* Generated in bk_broker.c, walked by every broker file. */
RB_PROTOTYPE(bk_gw_tree, bk_gw, node, bk_gw_cmp)
RB_PROTOTYPE(bk_user_tree, bk_user, node, bk_user_cmp)
RB_PROTOTYPE(bk_conn_tree, bk_conn, node, bk_conn_cmp)
RB_HEAD(bk_room_tree, bk_room);
RB_HEAD(bk_rate_tree, bk_rate);
TAILQ_HEAD(bk_queue, bk_user);
TAILQ_HEAD(bk_rate_list, bk_rate);

/* Every error word the broker answers a client or a relayed request with
 * (docs/API.md), counted by word for /metrics: each limit and bad input the
 * broker enforces (rooms, chat rate and length, JSON) shows up there. */
#define BK_REFUSAL_COUNT 8
extern const char *const bk_refusal_words[BK_REFUSAL_COUNT];

struct bk {
    struct bk_config cfg;
    struct event_base *base; /* owned */
    struct bk_store store;
    struct rds cmd; /* writes, acks */
    struct rds rd;  /* XREADGROUP BLOCK */
    struct bk_gw_tree gws;
    struct bk_user_tree users;
    struct bk_conn_tree conns;
    struct bk_grace_list grace;
    struct bk_room_tree rooms;
    struct bk_rate_tree rates;
    struct bk_rate_list rates_lru;
    struct bk_queue queue; /* matchmaking, oldest first */
    size_t nqueued;
    size_t nrooms;        /* rooms with members */
    char **public_fields; /* owned: parsed cfg.public_fields, NULL-terminated */
    uint64_t next_match;
    size_t nonline;
    bool reading;
    bool pending_done; /* our own pending entries were replayed */
    char pending_cursor[64];
    bool stopping;
    bool reconciled;          /* start-up reconciliation done */
    struct event *tick_ev;    /* owned: grace expiry, heartbeat, leases */
    struct evhttp *admin;     /* owned: the admin port, or NULL */
    struct event *standby_ev; /* owned: tries for the lock while standing by */
    bool leading;             /* we hold the lock and consume */
    bool lost_lock;           /* another broker took over: exiting */
    bool standby_logged;
    long long stream_len, stream_pending, stream_lag; /* from XINFO, for /metrics */
    int64_t last_info_ms;
    int64_t last_heartbeat_ms, last_lease_check_ms, last_trim_ms;
    /* Counters. */
    uint64_t n_entries, n_transitions, n_reaped, n_chat, n_dm, n_rate_limited, n_matches,
        n_notifications;
    uint64_t n_refused[BK_REFUSAL_COUNT]; /* by bk_refusal_words[] */
};

/* Loads state from Redis (blocking, at start-up) and starts consuming.
 * Returns 0 or -1 with a log line. */
int bk_start(struct bk *b);
void bk_stop(struct bk *b);

/* Applies one entry of herald:events. Exposed for tests. */
void bk_apply(struct bk *b, const struct ev_entry *e);

#endif
