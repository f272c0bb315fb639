/*
 * bk_presence.h - the broker's shared state: gateways, their connections,
 * the users behind them, who is online, the grace period and the gateways'
 * leases (PROTOCOL.md §2); and the hooks through which features hear about
 * changes to it.
 *
 * Features call this module; it never calls a feature by name. What a
 * feature must do when a connection goes, a user has no tab left, the state
 * is loaded or rewritten, or the timer ticks, it registers at start as a
 * struct bk_hooks (bk_init() does, in a fixed order: rooms, chat,
 * matchmaking), and this module and bk_load.c call those in that order.
 *
 * Every change is persisted through the sink (bk_out.h) unless the caller
 * says it is loading what Redis already holds (persist false).
 */
#ifndef HERALD_BK_PRESENCE_H
#define HERALD_BK_PRESENCE_H

#include "bk.h"

struct bk_targets;

/*
 * What a feature does when the shared state changes under it. A static
 * table per feature; every member may be NULL. Called in registration
 * order, always from the event loop (or start-up), never re-entered.
 */
struct bk_hooks {
    const char *name; /* for logs */
    /* bk_init(): set up the feature's part of struct bk. 0, or -1 (out of
     * memory, bad configuration): start-up fails, bk_stop() still runs. */
    int (*init)(struct bk *b);
    /* Connection c is being removed (closed, its gateway reaped or
     * restarted, its account deleted); it is still linked everywhere.
     * persist: delete what Redis holds for c (false when the caller deletes
     * the gateway's keys as a whole). */
    void (*conn_closing)(struct bk *b, struct bk_conn *c, bool persist);
    /* Connection c (of a known user) has just opened: not on a load or a
     * replay. */
    void (*conn_opened)(struct bk *b, struct bk_conn *c);
    /* Connection c was detached (keep false: delete what Redis holds for
     * it, keep the memory) or recovered on c->gw (keep true: write it
     * again under its new gateway). */
    void (*conn_persist)(struct bk *b, struct bk_conn *c, bool keep);
    /* User u has no connection left, or its account is being deleted:
     * anything that needs a live tab ends. u is still valid. */
    void (*user_idle)(struct bk *b, struct bk_user *u);
    /* Start-up (blocking): gateway gw's connections were loaded; read the
     * feature's own keys of gw from rc (borrowed). */
    void (*gw_loaded)(struct bk *b, struct bk_gw *gw, redisContext *rc);
    /* Start-up (blocking): every connection and user is loaded. */
    void (*loaded)(struct bk *b, redisContext *rc);
    /* Redis came back, maybe empty: write the feature's keys again, through
     * the sink, inside the caller's MULTI. */
    void (*resync)(struct bk *b);
    /* Scope related: add to t the connections that hear user's presence
     * because of this feature (rooms: profile and presence watchers). */
    void (*watchers)(struct bk *b, int64_t user, struct bk_targets *t);
    /* Every tick of the timer (about 20 ms), now from bk_now(). */
    void (*tick)(struct bk *b, int64_t now);
    /* bk_stop(): free the feature's part; connections and users still
     * exist and are freed afterwards. */
    void (*free)(struct bk *b);
};

/* Adds h (borrowed: a static table) to the hooks. Returns 0, or -1 when
 * BK_HOOKS_MAX are registered already. */
int bk_hooks_add(struct bk *b, const struct bk_hooks *h);
/* Calls every registered init; stops at the first that fails. 0 or -1. */
int bk_hooks_init(struct bk *b);
/* Calls the hooks of that name, in registration order. */
void bk_hooks_gw_loaded(struct bk *b, struct bk_gw *gw, redisContext *rc);
void bk_hooks_loaded(struct bk *b, redisContext *rc);
void bk_hooks_resync(struct bk *b);
void bk_hooks_tick(struct bk *b, int64_t now);
void bk_hooks_free(struct bk *b);

/* The broker's clock (b->clock, else CLOCK_MONOTONIC), in ms. */
int64_t bk_now(const struct bk *b);
/* The time of day in ms since the epoch, for what users and backends see
 * (hooks, onlineSince); a test's clock stands in for it too. */
int64_t bk_wall_ms(const struct bk *b);

/* Empty trees; no I/O. */
void bk_presence_init(struct bk *b);
/* Frees every connection, user and gateway (after bk_hooks_free()). */
void bk_presence_free(struct bk *b);

/* ---- users ----------------------------------------------------------------- */

/* The user with this id, or NULL when none is in memory (no connection, not
 * online, not in grace, not queued): NULL is not "no such account". */
struct bk_user *bk_user_find(struct bk *b, int64_t id);
/* The user with this id, added (offline, no name, no connection) when not
 * in memory. NULL only when out of memory. */
struct bk_user *bk_user_add(struct bk *b, int64_t id);
/* Start-up: u is in online_users already (no write, no announcement). */
void bk_user_loaded_online(struct bk *b, struct bk_user *u);
/* The account was deleted: user_idle hooks, every connection removed and
 * offline at once (no grace). Frees u: the caller's pointer is dangling. */
void bk_user_delete(struct bk *b, struct bk_user *u);

/* ---- gateways and connections ---------------------------------------------- */

/* A gateway id longer than this is refused (it names Redis keys). */
#define BK_GW_ID_MAX 128

/* The gateway named id/len (not NUL-terminated), or NULL when unknown or
 * when the name is empty or longer than 128 bytes. */
struct bk_gw *bk_gw_find(struct bk *b, const char *id, size_t len);
/* The same, registered when unknown (persist: SADD herald:gateways; false
 * while loading what the set already holds). NULL: bad name, or out of
 * memory. */
struct bk_gw *bk_gw_get(struct bk *b, const char *id, size_t len, bool persist);

/*
 * Fencing (event.h, EV_LEASE_REAPED). bk_gw_fenced(): gateway id/len was
 * reaped and has not said "hello" since; its connections are not ours to
 * count until it does. bk_gw_fence_mark(): writes "reaped" into its lease
 * key again (Redis may have lost it) so that the gateway learns at its
 * next renewal, at most once a second per gateway.
 */
bool bk_gw_fenced(const struct bk *b, const char *id, size_t len);
void bk_gw_fence_mark(struct bk *b, const char *id, size_t len);

/* Connection id of gw, or NULL when unknown (never opened, closed, or
 * refused at the door). */
struct bk_conn *bk_conn_find(struct bk *b, struct bk_gw *gw, uint64_t id);
/*
 * Adds connection id of gw for user u (borrowed; NULL: a guest) of kind
 * 'w' or 's'. persist: HSET it, and the user's first connection makes them
 * online (SADD, announced) unless a grace period was pending (cancelled,
 * nothing announced); false while loading, where bk_presence_reconcile()
 * settles who is online afterwards. Returns the connection (owned by b),
 * or NULL when it is known already (a replayed entry) or out of memory.
 */
struct bk_conn *bk_conn_add(struct bk *b, struct bk_gw *gw, uint64_t id, struct bk_user *u,
                            char kind, uint32_t token, bool persist);
/*
 * Removes c (conn_closing hooks first; persist: HDEL it too). Its user's
 * last connection ends their queued state (user_idle hooks) and starts the
 * grace period, or takes them offline now when there is none. c is freed;
 * its user may be too (bk_user_find() tells).
 */
void bk_conn_remove(struct bk *b, struct bk_conn *c, bool persist);
/*
 * c closed but may come back within recovery_window_ms (PROTOCOL.md §4a):
 * it leaves presence as bk_conn_remove() would (user_idle, grace) and
 * Redis (persist: HDEL), but stays in its user's and rooms' lists, so
 * what it would have been sent still goes to its gateway's stream, where
 * the session finds it when it comes back (bk_presence_open). Expires
 * after the window (bk_presence_tick). Without a window or a session
 * token it is simply removed.
 */
void bk_conn_detach(struct bk *b, struct bk_conn *c, bool persist);
/* HSET herald:conns:<gw> <id> "<user>:<kind>" of c (its persisted form). */
void bk_conn_persist(struct bk *b, const struct bk_conn *c);

/* ---- entries (the dispatch table's "hello", "open", "close") --------------- */

/* A gateway (re)started, or registers again after it was fenced: it holds
 * none of the connections we knew of. */
void bk_presence_hello(struct bk *b, struct bk_gw *gw, const struct ev_entry *e);
/* A connection is ready: known user (store lookup on first sight), guest
 * (u 0), or refused with a kick: 4003 unknown-user for an id the store
 * does not have, 1011 internal when the store failed. Replays do nothing. */
void bk_presence_open(struct bk *b, struct bk_gw *gw, const struct ev_entry *e);
/* A connection is gone (unknown ones, replays included, do nothing); with
 * v=1 it is detached (bk_conn_detach), not removed. An open with o and p
 * recovers the session (PROTOCOL.md §4a) and is answered "resume". */
void bk_presence_close(struct bk *b, struct bk_gw *gw, const struct ev_entry *e);
/* The gateway's complete list of open connections (e->conns, absent when
 * none): each connection of gw not listed is removed as if closed, with
 * the transitions that implies. The gateway sends it right after
 * re-announcing every connection, so stream order makes it exact. */
void bk_presence_sync(struct bk *b, struct bk_gw *gw, const struct ev_entry *e);

/* Scope related: user to has just come to relate to user about (a
 * friendship made): to's tabs get about's status now, if online as
 * announced, since they heard none of its transitions before. */
void bk_presence_tell(struct bk *b, const struct bk_user *about, const struct bk_user *to);

/* ---- time ------------------------------------------------------------------ */

/* Grace periods that ended by now take their users offline. */
void bk_presence_tick(struct bk *b, int64_t now);
/*
 * Asks Redis (EXISTS, through the sink) for each gateway's lease; a gateway
 * whose lease is gone and that has not been seen for 3/5 of the lease is
 * reaped when the answer comes: its connections are removed, and its users
 * without another connection go offline after the grace period
 * (PROTOCOL.md §2).
 */
void bk_presence_check_leases(struct bk *b);
/*
 * After loading: users marked online with no connection left (the previous
 * broker died inside their grace period) go through the grace period
 * again; users with connections but not marked online are set online.
 */
void bk_presence_reconcile(struct bk *b);

#endif
