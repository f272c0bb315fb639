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
 * This header is what main.c, herald-admin and the tests see: the
 * configuration, the state (one struct bk, grouped by the module that owns
 * each part), and start / stop / apply. Each module has its own header for
 * what the others may call; docs/ARCHITECTURE.md draws the modules,
 * the directions they may call in, and the path of an event through them:
 *
 *   bk_lead.c      start and stop, the tick, the lock (one active broker)
 *   bk_consumer.c  reading herald:events and acknowledging it
 *   bk_load.c      the state rebuilt from Redis, rewritten after an outage
 *   bk_dispatch.c  bk_apply(): one table per entry type and event kind
 *   bk_presence.c  gateways, connections, users, grace, leases; the hooks
 *   bk_rooms.c     profile rooms and the privacy rule
 *   bk_notify.c    the application backend's notifications
 *   bk_provision.c users and friendships from the backend, just-in-time users
 *   bk_chat.c      live chat, direct messages, the chat rate
 *   bk_match.c     matchmaking
 *   bk_lookup.c    who is online, users by name or id, search, whoami
 *   bk_answer.c    a request's fields and the answer to its sender
 *   bk_out.c       the command sink; everything written to the gateways
 *   bk_feed.c      herald:hooks, the application backend's feed
 *   bk_webhook.c   herald:hooks POSTed to the backend's URL
 *   bk_admin.c     /metrics and /healthz
 *   bk_store.c     the SQLite user store
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
 *   herald:online_since     hash user id -> ms since the epoch it went online
 *                           (the user-offline hook's onlineSince)
 *   herald:hooks            the backend's feed (bk_feed.h)
 */
#ifndef HERALD_BK_H
#define HERALD_BK_H

#include "bk_store.h"
#include "event.h"
#include "memtrim.h"
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
#define BK_ONLINE_SINCE_KEY "herald:online_since"

/* The broker's options (main.c's table has their defaults and bounds).
 * Strings are borrowed from the configuration loader, valid for the life
 * of the process. */
struct bk_config {
    const char *redis_url;
    const char *db_path;
    const char *consumer;
    const char *log_level;
    const char *log_file;
    long presence_grace_ms;
    /* PROTOCOL.md §2: who hears a transition ("all", "related": bk_init
     * sets scope_related), the presence list bound, and how long
     * transitions may be held to be written together (0: at once). */
    const char *presence_scope;
    bool scope_related;
    long max_presence_watch;
    long presence_flush_ms;
    long gateway_lease_ms;
    long stream_maxlen;
    long gw_stream_maxlen;
    long batch;
    long max_rooms;         /* profile rooms per connection */
    long chat_max_length;   /* characters per chat message or DM */
    long chat_burst;        /* chat bucket size, messages */
    double chat_rate;       /* chat bucket refill, messages per second */
    long dm_retention_days; /* stored DMs older than this are deleted */
    long chat_history_size; /* live chat messages kept for get-chat-history */
    const char *public_fields;
    const char *admin_listen; /* host:port of /metrics, NULL: off */
    long lock_ttl_ms;         /* the active broker's lock; standby takeover delay */
    long recovery_window_ms;  /* a closed session may come back this long (0: never) */
    /* The store (main.c): DMs not stored when 0, for benchmark comparison
     * only; WAL pages before the background checkpoint, 0: in the commit. */
    int dm_store;
    long db_checkpoint_pages;
    /* The application backend's side (PROTOCOL.md §6a). */
    int jit_users;     /* create unknown users from their token's claims */
    long hooks_maxlen; /* herald:hooks cap (bk_feed.h); 0: no hooks */
    /* The webhook sender (bk_webhook.h); off without a URL. */
    const char *webhook_url;
    const char *webhook_secret;
    const char *webhook_secret_file;
    long webhook_batch;      /* events per POST */
    long webhook_flush_ms;   /* a batch leaves this long after its first event was read */
    long webhook_retry_s;    /* events older than this are dropped instead of retried */
    long webhook_timeout_ms; /* one attempt, connect to answer */
};

struct bk;
struct bk_conn;
struct bk_member;
struct bk_hooks;
struct evhttp;

/* ---- presence (bk_presence.c) ------------------------------------------- */

struct bk_gw {
    RB_ENTRY(bk_gw) node;
    char *id;        /* owned */
    size_t nconns;   /* its connections (in b->conns with gw == this) */
    int64_t seen_ms; /* last entry, registration or Redis reconnect (lease grace) */
    /* Reaped while it had sessions that may come back: kept (fenced, not
     * in herald:gateways) only so that their events still reach its
     * stream, until the last of them is recovered or expires. */
    bool dead;
    size_t ndetached; /* its detached connections (not in nconns) */
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
    bool queued;             /* in the matchmaking queue (bk_match.c) */
    bool deleted;            /* account deleted: going offline without grace */
    int64_t online_since_ms; /* wall clock, while online; 0 unknown */
    /* Coalescing (presence_flush_ms): what clients last heard, and whether
     * a transition waits for the next flush (on b->presence_pending). */
    bool announced;
    bool pending;
    TAILQ_ENTRY(bk_user) pend;
    TAILQ_ENTRY(bk_user) queue;
    char username[BK_USERNAME_MAX + 1];
};

struct bk_conn {
    RB_ENTRY(bk_conn) node;
    struct bk_gw *gw; /* borrowed */
    uint64_t id;
    struct bk_user *user; /* borrowed; NULL for a guest */
    /* No per-gateway list: one connection costs 16 bytes less (issue 18's
     * memory target), and what walks a gateway's connections (its reap,
     * its sync, a Redis reload) is rare enough to walk b->conns. */
    LIST_ENTRY(bk_conn) user_link;
    LIST_HEAD(, bk_member) rooms; /* profile rooms this connection is in (bk_rooms.c) */
    /* The session's recovery token (the gateway's, in its pid); 0: none. */
    uint32_t token;
    /* Counts and flags in one word, so that a connection is 88 bytes, a
     * 96-byte glibc chunk (BK_CONN_MAX_SIZE): the config table bounds both
     * counts below their widths (asserted where they grow, bk_rooms.c). */
    uint32_t nrooms : 13;    /* profile rooms: at most max_rooms (4096) */
    uint32_t npresence : 17; /* presence watches: at most max_presence_watch (100000) */
    uint32_t sio : 1;        /* a Socket.IO client (bk_conn_kind() 's'), else raw /ws ('w') */
    uint32_t flags : 1;      /* BK_CONN_* */
};
#define BK_CONN_MAX_SIZE 88
_Static_assert(sizeof(void *) != 8 || sizeof(struct bk_conn) <= BK_CONN_MAX_SIZE,
               "struct bk_conn grew past its glibc chunk: see BK_CONN_MAX_SIZE");
#define BK_CONN_NROOMS_MAX 8191u /* the widths of nrooms and npresence */
#define BK_CONN_NPRESENCE_MAX 131071u
/* The client kind as events and the herald:conns hash spell it. */
static inline char bk_conn_kind(const struct bk_conn *c)
{
    return c->sio ? 's' : 'w';
}
/* Closed, may come back (PROTOCOL.md §4a): still in its user's and rooms'
 * lists, so what it would have been sent is written to its gateway's
 * stream, but no longer counted (presence) nor in Redis. */
#define BK_CONN_DETACHED 0x01u
_Static_assert(BK_CONN_DETACHED == 1u, "BK_CONN_* flags must fit bk_conn.flags (one bit)");

/* A detached connection's place in the expiry order (bk_presence.c). */
struct bk_detached {
    RB_ENTRY(bk_detached) node; /* by conn */
    TAILQ_ENTRY(bk_detached) order;
    struct bk_conn *c; /* borrowed */
    int64_t until_ms;
};
RB_HEAD(bk_detached_tree, bk_detached);
TAILQ_HEAD(bk_detached_list, bk_detached);

RB_HEAD(bk_gw_tree, bk_gw);
RB_HEAD(bk_user_tree, bk_user);
RB_HEAD(bk_conn_tree, bk_conn);
TAILQ_HEAD(bk_grace_list, bk_user);
/* Generated in bk_presence.c, walked by every broker file. */
RB_PROTOTYPE(bk_gw_tree, bk_gw, node, bk_gw_cmp)
RB_PROTOTYPE(bk_user_tree, bk_user, node, bk_user_cmp)
RB_PROTOTYPE(bk_conn_tree, bk_conn, node, bk_conn_cmp)
RB_PROTOTYPE(bk_detached_tree, bk_detached, node, bk_detached_cmp)

/* ---- rooms (bk_rooms.c) -------------------------------------------------- */

/* Room watching-user-<target>: the connections watching that profile. */
struct bk_room {
    RB_ENTRY(bk_room) node;
    int64_t target;
    LIST_HEAD(, bk_member) members;
};

/* Why a connection is in a room: it watches the profile (watch-profile:
 * profile events and, in scope related, presence) or only the user's
 * presence (watch-presence, PROTOCOL.md §2). */
#define BK_WATCH_PROFILE 0
#define BK_WATCH_PRESENCE 1

/* One connection in one room (on both lists). */
struct bk_member {
    struct bk_room *room; /* borrowed */
    struct bk_conn *conn; /* borrowed */
    uint8_t kind;         /* BK_WATCH_* */
    LIST_ENTRY(bk_member) in_room;
    LIST_ENTRY(bk_member) in_conn;
};

RB_HEAD(bk_room_tree, bk_room);

struct bk_rooms {
    struct bk_room_tree tree; /* owned rooms and members */
    size_t n;                 /* rooms with members */
    char **public_fields;     /* owned: parsed cfg.public_fields, NULL-terminated */
};

/* ---- chat (bk_chat.c) ---------------------------------------------------- */

/* A user's chat token bucket; kept until it is full again. */
struct bk_rate {
    RB_ENTRY(bk_rate) node;
    int64_t user;
    double tokens;
    int64_t last_ms;
    TAILQ_ENTRY(bk_rate) lru; /* least recently used first */
};

RB_HEAD(bk_rate_tree, bk_rate);
TAILQ_HEAD(bk_rate_list, bk_rate);

struct bk_chat {
    struct bk_rate_tree rates; /* owned buckets */
    struct bk_rate_list lru;   /* the same buckets, least recently used first */
    int64_t last_prune_ms;     /* DM retention, applied hourly */
};

/* ---- matchmaking (bk_match.c) -------------------------------------------- */

TAILQ_HEAD(bk_queue, bk_user);

struct bk_match {
    struct bk_queue queue; /* borrowed users, oldest first */
    size_t n;
    uint64_t next_id; /* second half of the next match id */
};

/* ---- the machinery: Redis, reading, leading ------------------------------ */

/*
 * Where every command of the write connection goes: state changes, entries
 * for the gateways, acknowledgements, the heartbeat, the lock, lease checks.
 * cmd issues argv (argv and argvlen borrowed: valid during the call only);
 * fn, when not NULL, is called later with the reply (borrowed; NULL when
 * the connection dropped first) and priv. Returns 0 queued, -1 not sent
 * (Redis down: fn is then never called). bk_init() installs the production
 * sink, bk_redis_sink() on b->cmd (pipelined in the order issued), unless
 * a test installed its own first.
 */
struct bk_sink {
    int (*cmd)(void *arg, redisCallbackFn *fn, void *priv, int argc, const char **argv,
               const size_t *argvlen);
    void *arg; /* borrowed: the sink's own state */
};

/* The broker's time in ms (CLOCK_MONOTONIC when now_ms is NULL); a test
 * sets its own to drive grace periods, leases and chat buckets. */
struct bk_clock {
    int64_t (*now_ms)(void *arg);
    void *arg; /* borrowed */
};

/* Reading herald:events (bk_consumer.c). */
struct bk_consumer {
    bool reading;      /* an XREADGROUP is outstanding */
    bool pending_done; /* our own pending entries were replayed */
    char pending_cursor[64];
};

/* Leading: the lock and the timers (bk_lead.c). */
struct bk_lead {
    struct event *tick_ev;    /* owned: grace expiry, heartbeat, leases */
    struct event *standby_ev; /* owned: tries for the lock while standing by */
    bool leading;             /* we hold the lock and consume */
    bool lost_lock;           /* another broker took over: exiting */
    bool standby_logged;
    bool reconciled; /* start-up reconciliation done */
    bool confirmed;  /* the lock was renewed since cmd last connected: we may write */
    bool confirming; /* that renewal is outstanding */
    /* Standby: its Redis connection (owned), whether it ever connected, and
     * until when it leaves the lock alone after a reconnect. */
    redisContext *rc;
    bool connected_once;
    int64_t holdoff_until_ms;
    char term[160]; /* "<consumer> <pid>.<ms>": herald:broker:alive while leading */
    int64_t last_heartbeat_ms, last_lease_check_ms, last_info_ms;
    struct memtrim trim; /* heap trims after bursts (on_tick) */
};

/* Every error word the broker answers a client or a relayed request with
 * (docs/API.md), counted by word for /metrics: each limit and bad input the
 * broker enforces (rooms, chat rate and length, JSON) shows up there. */
#define BK_REFUSAL_COUNT 10
extern const char *const bk_refusal_words[BK_REFUSAL_COUNT];

/* What /metrics shows (bk_admin.c), counted where it happens. */
struct bk_counters {
    uint64_t entries, transitions, reaped, chat, dm, rate_limited, matches, notifications;
    uint64_t recovered, recovery_fresh, detached_expired;
    uint64_t provisioned; /* users and friendships created or changed (bk_provision.c) */
    uint64_t refused[BK_REFUSAL_COUNT];               /* by bk_refusal_words[] */
    long long stream_len, stream_pending, stream_lag; /* from XINFO */
};

/* herald:hooks, the backend's feed (bk_feed.c). */
struct bk_feed {
    long long len;           /* entries, as last measured plus those added since */
    int groups;              /* consumer groups, as last measured */
    bool full;               /* at the cap with a group behind: new hooks dropped */
    bool trimming;           /* a trim is outstanding */
    uint64_t added, dropped; /* hooks appended / dropped at the cap */
    uint64_t added_at_trim;  /* added when the last trim was sent */
    char lagging[128];       /* the group that held the last trim back */
};

/* The webhook sender (bk_webhook.c): herald:hooks as signed POSTs. */
struct bk_webhook_url;
struct bk_webhook_event;
struct evdns_base;
struct evhttp_connection;
struct evhttp_request;
struct bk_webhook {
    struct bk_webhook_url *url; /* owned: parsed at start-up; NULL: off */
    unsigned char *secret;      /* owned */
    size_t secret_len;
    bool running;                   /* started (leading with a URL) */
    struct rds rd;                  /* its own connection: the blocking XREADGROUP, XACK */
    struct evdns_base *dns;         /* owned; NULL for a numeric host */
    struct evhttp_connection *conn; /* owned: kept alive between batches */
    struct evhttp_request *req;     /* the one in flight (evhttp owns it), or NULL */
    struct event *retry_ev;         /* owned: backoff, or a setup step again */
    struct event *deadline_ev;      /* owned: the attempt's overall timeout */
    /* The batch: at most webhook_batch events, owned, in stream order. */
    struct bk_webhook_event *ev;
    size_t n;
    int64_t first_ms; /* bk_now() when its first event was read */
    int attempts;     /* failed attempts of this batch so far */
    int streak;       /* failed attempts since the last delivery, any batch */
    int phase;        /* setup, own pending entries, new entries (bk_webhook.c) */
    bool busy;        /* a command of the read side is outstanding */
    bool waiting;     /* retry_ev is armed */
    int acking;       /* XACKs not answered yet */
    const char *err;  /* what evhttp said went wrong with the attempt (static) */
    char cursor[64];  /* the last pending entry read */
    uint64_t delivered, batches, failures, dropped; /* /metrics */
};

/* Most feature hook tables bk_hooks_add() accepts. */
#define BK_HOOKS_MAX 8

struct bk {
    struct bk_config cfg;
    struct event_base *base; /* borrowed: main's loop */
    struct bk_store store;   /* opened and closed by the caller */
    struct rds cmd;          /* writes, acks (through sink) */
    struct rds rd;           /* XREADGROUP BLOCK */
    struct bk_sink sink;
    struct bk_clock clock;
    const struct bk_hooks *hooks[BK_HOOKS_MAX]; /* borrowed static tables */
    size_t nhooks;
    /* Presence (bk_presence.c). */
    struct bk_gw_tree gws;
    struct bk_user_tree users;
    struct bk_conn_tree conns;
    struct bk_grace_list grace;
    struct bk_grace_list presence_pending; /* users with a held transition */
    int64_t presence_flush_at_ms;          /* when they are written */
    size_t nonline;
    /* Detached connections (owned records), oldest first. */
    struct bk_detached_tree detached;
    struct bk_detached_list detached_order;
    size_t ndetached;
    /* Gateways reaped and not registered again since (no "hello" yet):
     * their names (owned). Their opens and syncs are ignored. */
    char **fenced;
    int64_t *fenced_marked_ms; /* when "reaped" was last written, per name */
    size_t nfenced;
    /* Features and machinery, each owned by its module. */
    struct bk_rooms rooms;
    struct bk_chat chat;
    struct bk_match match;
    struct bk_consumer consumer;
    struct bk_lead lead;
    struct bk_feed feed;
    struct bk_webhook webhook;
    struct evhttp *admin; /* owned: the admin port, or NULL */
    bool stopping;        /* bk_stop() started: no new reads, no lock renewal */
    struct bk_counters counters;
};

/*
 * Prepares the in-memory state and registers the features' hooks; no I/O.
 * b must be zeroed except cfg, store (open), and optionally sink and clock.
 * Returns 0, or -1 (out of memory): call bk_stop() either way.
 */
int bk_init(struct bk *b);

/*
 * bk_init(), the admin port, then leads (the lock is free: state loaded
 * from Redis, blocking, and consuming) or stands by (tries for the lock
 * every lock_ttl_ms / 4). b->base must be set. Returns 0, or -1 with a log
 * line (call bk_stop() either way).
 */
int bk_start(struct bk *b);

/* Releases the lock, lets queued writes reach Redis (up to 1 s) and frees
 * everything bk_init() and bk_start() made. Also after bk_init() alone. */
void bk_stop(struct bk *b);

/*
 * Applies one entry of herald:events (bk_dispatch.c): its effects are
 * issued through b->sink before this returns; nothing waits for Redis.
 * e is borrowed for the call. The consumer calls it; so do the tests.
 */
void bk_apply(struct bk *b, const struct ev_entry *e);

#endif
