/*
 * gw_eio.h - Engine.IO v4 sessions on top of gw_net: the /socket.io/ (and,
 * in the conformance target, /engine.io/) endpoint.
 *
 * A session outlives the HTTP requests that carry it: with long-polling,
 * each GET is parked until the session has packets for it and each POST
 * delivers a payload; with WebSocket, one connection carries it. A session
 * may start on polling and upgrade to WebSocket (probe "2probe"/"3probe",
 * noop to the parked GET, then "5"). Sessions have ids from the same
 * counter as connections, so the broker addresses both alike.
 *
 * Heartbeat timers are kept as exact deadlines and evaluated whenever the
 * session is touched (a request, a frame) and by a fine sweep, so a request
 * arriving right after a deadline sees the session already closed, as the
 * reference server's timers would have made it.
 *
 * Lifetime: gw_eio_close() marks the session and detaches its connections;
 * it is freed at the session reap point after the current callbacks.
 */
#ifndef HERALD_GW_EIO_H
#define HERALD_GW_EIO_H

#include "gw_net.h"

struct gw_eio;

/* Length of a random id from gw_eio_random_id(), without its NUL. */
#define GW_EIO_ID_LEN 20

#define GW_SESS_CLOSED 0x01u    /* waiting for the reap point */
#define GW_SESS_UPGRADING 0x02u /* probe answered: GETs get a noop */
#define GW_SESS_PROBED 0x04u
#define GW_SESS_TRUSTED 0x08u  /* gw_eio_trust(): messages up to max_payload */
#define GW_SESS_OLD_REG 0x10u  /* a client of the registration the broker gave up */
#define GW_SESS_PING_OUT 0x20u /* a ping is outstanding: hb_ms is its pong deadline */

/* What only a session that polls needs: one that started on long-polling
 * has it from its handshake to its end; a WebSocket-only session (the
 * common case) never has one. */
struct gw_sess_poll {
    struct gw_conn *probe;  /* borrowed: WebSocket being upgraded to */
    struct gw_conn *poll;   /* borrowed: the parked GET, or NULL */
    struct gw_out *q_head;  /* owned: packets waiting for a GET */
    struct gw_out **q_tail; /* borrowed: the last item's next (or &q_head) */
    uint32_t q_bytes;
};

/*
 * One per Socket.IO client, so kept small (GW_SESS_MAX_SIZE, checked at
 * compile time): the polling state is a side struct, the two heartbeat
 * deadlines share one field (only one is ever pending), and a closed
 * session's reap-list link reuses its sid-tree entry.
 */
struct gw_sess {
    union {
        RB_ENTRY(gw_sess) by_sid;  /* live: in eio->sids */
        struct gw_sess *next_dead; /* closed (out of eio->sids): next on the reap list */
    } u;
    RB_ENTRY(gw_sess) by_id;
    TAILQ_ENTRY(gw_sess) link;
    struct gw_eio *eio; /* borrowed */
    uint64_t id;
    struct gw_conn *ws;      /* borrowed: WebSocket transport, NULL while polling */
    struct gw_sess_poll *pl; /* owned: polling state, NULL for a WebSocket-only session */
    /* GW_SESS_PING_OUT clear: when the next ping is due; set: when the
     * outstanding ping must have been answered. */
    int64_t hb_ms;
    /* Application state (Socket.IO layer). */
    void *app;                   /* owned by the application; freed in on_close */
    char sid[GW_EIO_ID_LEN + 1]; /* random, unguessable: the polling credential */
    uint8_t flags;               /* GW_SESS_* */
};
#define GW_SESS_MAX_SIZE 152 /* a 160-byte glibc chunk on x86-64 */
_Static_assert(sizeof(void *) != 8 || sizeof(struct gw_sess) <= GW_SESS_MAX_SIZE,
               "struct gw_sess grew past its glibc chunk: see GW_SESS_MAX_SIZE");

struct gw_eio_config {
    long ping_interval_ms;
    long ping_timeout_ms;
    long max_payload; /* bytes of one polling payload or message */
    /* The same cap until the application trusts the session
     * (gw_eio_trust()); 0: max_payload from the start. Advertised is always
     * max_payload, what a trusted session gets. */
    long max_payload_unauth;
};

struct gw_eio_handlers {
    /* A new session. req is the request that opened it (borrowed, for the
     * application's token sources). */
    void (*on_open)(struct gw_eio *e, struct gw_sess *s, const struct http_request *req);
    /* One Engine.IO message (data borrowed for the call) that arrived on
     * connection via (borrowed for the call: the WebSocket, or the polling
     * POST that carried it). */
    void (*on_message)(struct gw_eio *e, struct gw_sess *s, struct gw_conn *via, bool binary,
                       const uint8_t *data, size_t len);
    /* The session is closing: the application releases s->app. */
    void (*on_close)(struct gw_eio *e, struct gw_sess *s, const char *reason);
    /* Called by the sweep for every live session. May be NULL. */
    void (*on_tick)(struct gw_eio *e, struct gw_sess *s, int64_t now_ms);
    void *arg; /* borrowed: the application's context (e->h.arg) */
};

RB_HEAD(gw_sess_sid_tree, gw_sess);
RB_HEAD(gw_sess_id_tree, gw_sess);
TAILQ_HEAD(gw_sess_list, gw_sess);

struct gw_eio {
    struct gw_net *net; /* borrowed */
    struct gw_eio_config cfg;
    struct gw_eio_handlers h;
    struct gw_sess_sid_tree sids;
    struct gw_sess_id_tree ids;
    struct gw_sess_list all;
    size_t nsess;
    long tick_slices;           /* the sweep visits every session once per tick, */
    struct gw_sess *sweep_next; /* ... a slice per timer event: where the next starts */
    struct gw_sess *dead;       /* borrowed: head of the reap list (each freed there) */
    struct event *reap_ev;      /* owned */
    struct event *tick_ev;      /* owned */
    uint64_t n_opened;
};

/* Sets up e on net (borrowed for e's lifetime; cfg and h are copied).
 * Returns 0, or -1 when its timers cannot be created (then free e with
 * gw_eio_free()). */
int gw_eio_init(struct gw_eio *e, struct gw_net *net, const struct gw_eio_config *cfg,
                const struct gw_eio_handlers *h);
/* Closes every session (on_close runs for each, so the application frees
 * its state) and frees everything; before gw_net_free(). */
void gw_eio_free(struct gw_eio *e);

/* A request on the Engine.IO path announces a body over the net layer's
 * max_body_unauth (gw_net_handlers.on_large_body): true when the session it
 * names may send that much (max_payload once trusted, max_payload_unauth
 * before); otherwise answers 413, closes the session and returns false. */
bool gw_eio_body_allowed(struct gw_eio *e, struct gw_conn *c, const struct http_request *req);

/* The application vouches for the session (its user is authenticated):
 * from now on its messages and payloads may be up to max_payload (the
 * cap of its WebSocket, if any, is raised at once). */
void gw_eio_trust(struct gw_sess *s);

/* Handles an HTTP request on the Engine.IO path (handshake, poll, post,
 * WebSocket upgrade): answers it, parks it (a poll with nothing queued:
 * GW_CONN_BUSY, c->sess set) or upgrades c (gw_eio_owns() true after).
 * req and body are borrowed for the call. */
void gw_eio_request(struct gw_eio *e, struct gw_conn *c, const struct http_request *req,
                    const uint8_t *body, size_t body_len);
/* True when c is a WebSocket that gw_eio_request() took (its messages go
 * to gw_eio_ws_message(), even after its session closed). */
bool gw_eio_owns(const struct gw_conn *c);
/* A WebSocket message on a connection gw_eio owns (data borrowed for the
 * call; decoded in place). Ignored once the session is gone. */
void gw_eio_ws_message(struct gw_eio *e, struct gw_conn *c, uint8_t opcode, uint8_t *data,
                       size_t len);
/* A connection that carries a session (c->sess: its WebSocket, the one
 * being probed, or a parked GET) is being freed: detaches it, and closes
 * the session when it was its WebSocket. No-op when c->sess is NULL. */
void gw_eio_conn_closed(struct gw_eio *e, struct gw_conn *c);

/* The live session with the connection-wide id (not the sid), borrowed
 * until the session reap point; NULL when there is none (closed sessions
 * are unlinked at once). */
struct gw_sess *gw_eio_find(struct gw_eio *e, uint64_t id);
/* Session s takes over connection id (a recovered session keeps the id the
 * broker knows it by). False when id is taken here, by a session or a
 * connection. */
bool gw_eio_take_id(struct gw_eio *e, struct gw_sess *s, uint64_t id);

/*
 * Writes GW_EIO_ID_LEN random URL-safe characters ([A-Za-z0-9_-], 120 bits
 * from getrandom(2)) and a NUL into out. Used for the Engine.IO sid (a
 * polling credential) and the Socket.IO session id. Returns true, or false
 * when the kernel gives no random bytes: the caller must then refuse what
 * it was creating, never fall back to a guessable id.
 */
bool gw_eio_random_id(char out[GW_EIO_ID_LEN + 1]);

/* Sends one Engine.IO message (text; data copied) / binary message (base64
 * over polling). Nothing happens on a closed session; out of memory drops
 * the message. */
void gw_eio_send_text(struct gw_sess *s, const char *data, size_t len);
void gw_eio_send_binary(struct gw_sess *s, const uint8_t *data, size_t len);

/*
 * A message encoded once for many sessions: the text, and lazily its
 * WebSocket frame and its polling packet, each shared by every recipient.
 * Release with gw_eio_msg_release().
 */
struct gw_eio_msg {
    /* borrowed: the Engine.IO message data ("42[...]"); whoever set it
     * keeps ownership and frees it after gw_eio_msg_release(), which never
     * touches it */
    const char *text;
    size_t len;
    struct gw_shared *frame; /* owned reference, NULL until needed */
    struct gw_shared *pkt;   /* owned reference, NULL until needed */
};
/* Sends m on s's transport, encoding the frame or packet on first use (an
 * encoding that fails for lack of memory is skipped for this session). */
void gw_eio_send_msg(struct gw_sess *s, struct gw_eio_msg *m);
/* Drops m's frame and packet references (not m->text). */
void gw_eio_msg_release(struct gw_eio_msg *m);

/* Closes the session: on_close runs now, the WebSocket gets a close frame
 * with code (polling: a parked GET gets the close packet), the session is
 * unlinked at once and freed at the session reap point, after the current
 * callbacks; s stays valid until then. A second call is a no-op. */
void gw_eio_close(struct gw_sess *s, uint16_t code, const char *reason);

#endif
