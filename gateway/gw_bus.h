/*
 * gw_bus.h - the gateway's Redis side: what it publishes to the broker on
 * herald:events, what it reads back from its own stream herald:gw:<id>, and
 * the liveness lease the broker watches.
 *
 * Why handlers: the bus knows no endpoint. It hands every entry it reads
 * to on_entry, asks on_ready to re-announce the open clients when our
 * stream is positioned and after every reconnect, and passes the deleted
 * accounts it loads to on_deleted; main.c wires them to gw_deliver, gw_ws,
 * gw_sio and gw_auth. The endpoints call down into the publish functions
 * below; nothing here calls up.
 *
 * Two connections: `pub` carries everything we write (XADD, the lease, the
 * broker-health probe) and is pipelined by hiredis; `sub` does nothing but
 * XREAD BLOCK on our own stream, so a blocked read never delays a publish.
 */
#ifndef HERALD_GW_BUS_H
#define HERALD_GW_BUS_H

#include "event.h"
#include "rds.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

/* Which endpoint a client is on, as the "open" entry's k field says it. */
enum gw_client_kind { GW_CLIENT_WS, GW_CLIENT_SIO };

struct gw_bus_config {
    const char *redis_url; /* borrowed: redis://host:port[/db] */
    const char *id;        /* borrowed: this gateway's id (names our stream and lease) */
    /* Cap on herald:events: past it, client events and requests are refused
     * (unavailable) until the broker has consumed and trimmed; nothing is
     * ever trimmed unread. Checked at every lease renewal (lease/5). */
    long stream_maxlen;
    long lease_ms; /* --gateway-lease-ms */
    /* What we read stays in our stream this long (ms; 0: trimmed at once)
     * and at most retain_max entries: where recovered sessions find what
     * they missed (PROTOCOL.md §4a). */
    long retain_ms;
    long retain_max;
};

/* A chunk of entries we read and keep (gw_bus.c retain()). */
struct gw_kept {
    char last_id[64];
    int64_t ms;
    size_t count;
};
#define GW_KEPT_BATCHES 2048

struct gw_bus_handlers {
    /* One entry read from our stream; e is borrowed for the call (it points
     * into the hiredis reply). */
    void (*on_entry)(void *arg, const struct ev_entry *e);
    /* Our stream is positioned and `pub` is up: when the stream is first
     * positioned, and at every reconnect of `pub` after that (Redis may
     * have restarted and forgotten us). Announce every open client again
     * with gw_bus_open() ("open" is idempotent in the broker); "hello" and
     * the lease have been published just before. */
    void (*on_ready)(void *arg);
    /* A deleted account from herald:deleted_users, loaded at every connect
     * of `pub` (the broker records deletions made while we were away). */
    void (*on_deleted)(void *arg, int64_t user_id);
    /* The broker gave this gateway up (EV_LEASE_REAPED in our lease): the
     * clients open now belong to the old registration. The bus registers
     * again at once (they are not announced: skip them in on_ready), and
     * calls on_welcome when the broker has answered what they sent: close
     * them then, with 1012. */
    void (*on_fenced)(void *arg);
    void (*on_welcome)(void *arg);
    /* A client event of connection conn (ack_id: its Socket.IO ack id, -1
     * none) may never reach the broker: the connection to Redis dropped
     * with it in flight, Redis refused it, or Redis restarted without it
     * before the broker read it. Tell its sender unavailable. */
    void (*on_lost)(void *arg, uint64_t conn, int64_t ack_id);
    void *arg; /* borrowed: passed to every handler */
};

/* A client event handed to Redis and not yet read by the broker. */
struct gw_inflight {
    uint64_t conn;
    int64_t ack_id;   /* Socket.IO ack id, -1: none */
    uint64_t ms, seq; /* its entry id, once Redis answered the XADD */
    int state;        /* gw_bus.c: sent, stored, done */
};

struct gw_bus {
    struct gw_bus_config cfg;
    struct gw_bus_handlers h;
    struct rds pub;      /* commands: XADD, lease, health */
    struct rds sub;      /* XREAD BLOCK on our own stream */
    char stream[192];    /* herald:gw:<id> */
    char lease_key[192]; /* herald:gw:<id>:lease */
    char last_id[64];    /* last entry read from our stream ("": not positioned yet) */
    bool reading;        /* an XREAD is outstanding */
    bool fence_pending;  /* registered again after being fenced; no welcome yet */
    int64_t fenced_at_ms;
    bool broker_alive; /* from the broker's heartbeat key */
    bool hello_sent;
    char broker_term[160]; /* the active broker's heartbeat value, as last read */
    /* herald:events' length as last measured (XLEN), and our publish count
     * when that XLEN was sent: its length now is at most the first plus
     * what we published since (the broker only shortens it). */
    long long events_len;
    uint64_t events_len_at;
    uint64_t len_asked_at;  /* n_published when the outstanding XLEN was sent */
    bool events_full;       /* the estimate is at the cap: client events refused */
    struct event *lease_ev; /* owned */
    struct event *held_ev;  /* owned: asks the broker's read position */
    uint64_t next_req;      /* last request id handed out */
    /* While on_ready re-announces every connection: their ids, for the
     * "sync" entry that follows (owned; kept for the next time). */
    char *sync_ids;
    size_t sync_len, sync_cap;
    bool syncing;
    /* Client events held until the broker has read them (a ring, owned):
     * see gw_bus.c. inflight_stored: how many from the head Redis has
     * answered. read_ms/read_seq: the broker's read position. */
    struct gw_inflight *inflight;
    size_t inflight_head, inflight_n, inflight_cap, inflight_stored;
    uint64_t read_ms, read_seq;
    uint64_t last_ms, last_seq; /* the last entry id Redis gave a client event */
    bool mark_asked;
    bool stopping;
    /* The batches we keep, oldest first (a ring), and how far to trim. */
    struct gw_kept kept[GW_KEPT_BATCHES];
    size_t kept_head, kept_n, kept_entries;
    char trim_to[64];
    bool trim_pending;
    /* Counters (GET /metrics). */
    uint64_t n_published, n_entries_in;
    uint64_t n_refused; /* client events and requests refused: Redis down or stream full */
    uint64_t n_fenced;  /* times the broker gave us up */
    uint64_t n_lost;    /* client events Redis never answered: senders told unavailable */
};

/*
 * Starts both connections (they connect and reconnect in the background)
 * and the lease timer on base. cfg's strings and base are borrowed for the
 * bus's lifetime; h is copied. Returns 0, or -1 when a connection or the
 * timer could not be set up (b must still be stopped with gw_bus_stop()).
 * b must be zeroed before the first call.
 */
int gw_bus_start(struct gw_bus *b, struct event_base *base, const struct gw_bus_config *cfg,
                 const struct gw_bus_handlers *h);
/* Deletes our lease (when connected), lets hiredis write what is queued
 * (the close entries of a shutdown) for up to a second, and frees
 * everything. Safe on a zeroed or half-started b. */
void gw_bus_stop(struct gw_bus *b);

/* Tells the broker a client (a /ws connection or a Socket.IO session, by
 * id) opened; token: its session's recovery token (0: none); offset: set
 * when the session asks to come back from there (PROTOCOL.md §4a). Returns true when it was
 * published; false when the bus is not ready, in which case on_ready will ask for it again. */
bool gw_bus_open(struct gw_bus *b, uint64_t id, int64_t user_id, enum gw_client_kind kind,
                 uint32_t token, const char *offset);
/* A notify entry (event, JSON body borrowed for the call): a token's
 * claims for a just-in-time user (PROTOCOL.md §6a), published in order
 * with the open that follows. false when the bus is not ready (dropped:
 * the broker then refuses an unknown user's open as unknown-user). */
bool gw_bus_notify(struct gw_bus *b, const char *event, const char *json, size_t len);
/* Tells the broker a client closed (best effort: lost while Redis is down,
 * when the lease does the job); recoverable: it may come back within the
 * recovery window (a network close, not the client's own goodbye). */
void gw_bus_close(struct gw_bus *b, uint64_t id, bool recoverable);
/* A client event for the broker: its broker name, its JSON object (both
 * borrowed for the call), and the Socket.IO ack id (-1: none). Returns
 * true when it was handed to Redis; false when it could not be (Redis
 * down, or our stream not yet positioned): the caller must then tell the
 * sender "unavailable" rather than let the event vanish. */
bool gw_bus_msg(struct gw_bus *b, uint64_t id, int64_t user_id, const char *type, const char *json,
                size_t len, int64_t ack_id);
/* An HTTP request the broker answers, from connection conn_id: op, JSON
 * arguments (borrowed for the call) and the authenticated user (0: none).
 * Returns the request id its "reply" entry will carry, or 0 (nothing
 * published) when the bus is not ready. */
uint64_t gw_bus_request(struct gw_bus *b, uint64_t conn_id, const char *op, int64_t user_id,
                        const char *json, size_t len);
/* True when both Redis connections are up and the broker's heartbeat is
 * fresh. */
bool gw_bus_healthy(const struct gw_bus *b);

#endif
