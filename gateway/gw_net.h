/*
 * gw_net.h - the gateway's connection layer: one libevent loop, its
 * listener, and every client connection from the first HTTP byte to the
 * WebSocket close handshake.
 *
 * Design: no bufferevents. A connection owns a struct event, a read buffer
 * only while it holds a partial request or frame (idle connections hold
 * none), and a queue of references to output buffers. Reads go into one
 * per-loop scratch buffer and are parsed in place; broadcast frames are
 * encoded once into a reference-counted struct gw_shared that every
 * recipient's queue points at. Writes are coalesced: sending only queues and
 * marks the connection dirty; one flush per loop iteration writes each dirty
 * connection's queue with a single writev().
 *
 * Lifetime: closing from anywhere (including inside a handler) only marks
 * the connection dead and queues it for the one reap point, which calls the
 * on_closed handler and frees it after the current callbacks have returned.
 *
 * Timers: one sweep timer walks all connections (ping, ping timeout, header
 * and close-handshake deadlines, the application's own per-connection
 * checks), a slice of them every few milliseconds so that their pings
 * leave spread out, so an idle connection carries no timer of its own.
 */
#ifndef HERALD_GW_NET_H
#define HERALD_GW_NET_H

#include "gw_ip.h"
#include "http.h"
#include "memtrim.h"
#include "ws.h"

#include <bsd/sys/cdefs.h>
#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An immutable, reference-counted output buffer (e.g. one encoded frame
 * shared by every recipient of a broadcast). */
struct gw_shared {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
};

/* Returns an uninitialised buffer of len bytes holding one reference (the
 * caller's), or NULL when out of memory or len is over 4 GiB. */
struct gw_shared *gw_shared_new(size_t len);
/* Drops one reference; the last frees s. NULL is a no-op. */
void gw_shared_unref(struct gw_shared *s);
/* A complete server frame (never masked) holding one reference (the
 * caller's), or NULL when out of memory. payload is copied. */
struct gw_shared *gw_ws_frame_new(uint8_t opcode, const void *payload, size_t len);

struct gw_out {
    struct gw_out *next;   /* owned: the rest of the list */
    struct gw_shared *buf; /* one reference owned by this item */
    uint32_t off;          /* bytes of buf already written */
};

/* Appends an item holding a new reference to s at *tail (the list's last
 * next pointer, or &head), and moves *tail on to it. Returns 0, or -1 when
 * out of memory (the list unchanged). */
int gw_out_append(struct gw_out ***tail, struct gw_shared *s);
/* Frees a list of queue items and drops their buffer references (NULL: no-op). */
void gw_out_list_free(struct gw_out *head);

/* Connection flags (c->flags). */
#define GW_CONN_WS 0x0001u         /* upgraded: frames from here on */
#define GW_CONN_DEAD 0x0002u       /* waiting for the reap point */
#define GW_CONN_DIRTY 0x0004u      /* on the flush list */
#define GW_CONN_BUSY 0x0008u       /* an HTTP request awaits an asynchronous answer */
#define GW_CONN_CLOSE_SENT 0x0010u /* our close frame is queued */
#define GW_CONN_CLOSE_RECV 0x0020u /* the peer's close frame arrived */
#define GW_CONN_FINISH 0x0040u     /* after the queue drains: half-close and linger */
#define GW_CONN_LINGER 0x0080u     /* write side shut: discard input until EOF/deadline */
#define GW_CONN_OWN_PING 0x0100u   /* upgraded by a layer with its own heartbeat (gw_eio) */
#define GW_CONN_FULL 0x0200u       /* the socket buffer was full at the last write */
#define GW_CONN_KEEPALIVE 0x0400u  /* the request being answered allows keep-alive */
#define GW_CONN_IN_PROCESS 0x0800u /* its input is being parsed (re-entrancy guard) */
#define GW_CONN_CUT 0x1000u        /* over the output cap: only the close frame may follow */
#define GW_CONN_SERVED 0x2000u     /* at least one request head completed */
#define GW_CONN_BODY_OK 0x4000u    /* the body being read was allowed by on_large_body */
#define GW_CONN_OLD_REG 0x8000u    /* a client of the registration the broker gave up */

/*
 * Every limit whose refusal /metrics counts
 * (herald_gateway_limit_refusals_total{limit="<gw_limit_name()>"}), so an
 * operator sees which one clients run into. Answers in brackets.
 */
enum gw_limit {
    GW_LIMIT_REQUEST_LINE,     /* request line over --max-header-bytes (414) */
    GW_LIMIT_HEADER_BYTES,     /* request head over --max-header-bytes (431) */
    GW_LIMIT_HEADER_COUNT,     /* more header fields than --max-headers (431) */
    GW_LIMIT_HEADER_TIMEOUT,   /* head not complete within --header-timeout-ms (dropped) */
    GW_LIMIT_BODY,             /* body over --max-body (413) */
    GW_LIMIT_BODY_UNAUTH,      /* body over --max-body-unauth without valid credentials (413) */
    GW_LIMIT_MESSAGE,          /* /ws message over --max-message (1009) */
    GW_LIMIT_PAYLOAD,          /* Engine.IO message or payload over --max-payload (1009/413) */
    GW_LIMIT_PAYLOAD_UNAUTH,   /* the same before CONNECT as a user, --max-message-unauth */
    GW_LIMIT_CONNS_PER_IP,     /* --conns-per-ip (429 before parsing) */
    GW_LIMIT_CONN_RATE_PER_IP, /* --conn-rate-per-ip (429 before parsing) */
    GW_LIMIT_CHAT_RATE_PER_IP, /* --chat-rate-per-ip (rate-limited / 429) */
    GW_LIMIT_ORIGIN,           /* session cookie from a foreign Origin (403) */
    GW_LIMIT_OUTPUT_CAP,       /* output queue over --output-cap (1013, dropped) */
    GW_LIMIT_COUNT
};
/* The label value of a limit ("header_bytes"; static, "unknown" for a
 * value out of range). */
const char *gw_limit_name(enum gw_limit l);

struct gw_net;
struct gw_sess;

/* A connection's partial input or open WebSocket message: length and
 * capacity in front of the bytes, one allocation, NULL while there is none
 * (an idle connection holds neither). */
struct gw_buf {
    uint32_t len, cap;
    uint8_t data[];
};

/*
 * One per client connection, so kept small (GW_CONN_MAX_SIZE, checked at
 * compile time): pointers and 64-bit times first, then the narrow fields
 * packed together; buffers that only a connection with partial input needs
 * live behind one pointer each (struct gw_buf). Every connection is in
 * net->by_id, which is also how they are walked (GW_NET_FOREACH): no second
 * list.
 */
struct gw_conn {
    RB_ENTRY(gw_conn) node; /* in net->by_id */
    struct gw_net *net;     /* borrowed */
    /* borrowed: the next on the flush list (GW_CONN_DIRTY) or the reap list
     * (GW_CONN_DEAD). Never both: marking a connection dead takes it off
     * the flush list, and a dead one is never put back on it. */
    union {
        struct gw_conn *next_dirty;
        struct gw_conn *next_dead;
    } u;
    struct event ev;
    uint64_t id;         /* unique in this gateway's lifetime and across restarts */
    struct gw_buf *rbuf; /* owned; NULL when no partial input is held */
    struct gw_buf *msg;  /* owned; fragments of an open WebSocket message, or NULL */
    /* owned: the output queue as a circular list, by its last item (whose
     * next is the first; gw_conn_out_first()), NULL when empty: one pointer
     * where a head and a tail pointer took two. */
    struct gw_out *out_last;
    struct gw_sess *sess; /* borrowed: Engine.IO session this carries, or NULL */
    struct gw_ip *ip;     /* borrowed: its client address's entry (gw_ip) */
    /* The application's state for this connection, by one pointer, NULL on
     * most: this layer never reads it. Owned by the application, which
     * frees it in on_closed at the latest. The gateway keeps a /ws client
     * here once upgraded (gw_ws) and, on an HTTP connection, the request
     * waiting for the broker's answer (gw_routes). */
    void *app;
    int64_t deadline_ms; /* HTTP/linger: killed when passed (0: none) */
    struct ws_parser wsp;
    int fd;
    uint32_t out_bytes;
    /* The low 32 bits of gw_now_ms() at the last sign of life (a byte
     * received, or room in a socket buffer that was full: the peer read)
     * / the last ping frame sent: only ever compared as time elapsed since
     * (mod 2^32, gw_conn_elapsed_ms()), and the sweep drops a connection
     * silent for --ping-timeout-ms long before 49 days could wrap it. */
    uint32_t last_seen_ms;
    uint32_t last_ping_ms;
    uint16_t flags;    /* GW_CONN_* (all fit 16 bits) */
    uint8_t ev_flags;  /* EV_READ/EV_WRITE currently registered */
    uint8_t msg_limit; /* enum gw_limit that wsp.max_msg is, for /metrics */
};
/* 280 bytes is a 288-byte glibc chunk on x86-64; issue 18's memory target
 * counts every byte of an idle connection, so growing this is a decision. */
#define GW_CONN_MAX_SIZE 280
_Static_assert(sizeof(void *) != 8 || sizeof(struct gw_conn) <= GW_CONN_MAX_SIZE,
               "struct gw_conn grew past its glibc chunk: see GW_CONN_MAX_SIZE");
_Static_assert(GW_CONN_OLD_REG <= UINT16_MAX, "GW_CONN_* flags must fit gw_conn.flags");

struct gw_limits {
    struct http_limits http; /* max_body: the largest body any route takes */
    /* A request announcing a bigger body than this goes through
     * on_large_body before a byte of the body is read (0: always). */
    size_t max_body_unauth;
    long header_timeout_ms; /* a request head must complete within this (slowloris) */
    long keepalive_ms;      /* idle HTTP keep-alive connections are closed after this */
    size_t max_msg;         /* WebSocket message cap (1009 above) */
    size_t out_cap;         /* per-connection output queue cap (slow consumers are cut) */
    long ping_interval_ms;
    long ping_timeout_ms;
    long close_timeout_ms;   /* how long to wait for the peer after our close/response */
    long conns_per_ip;       /* open connections per client address (0: no limit) */
    double conn_rate_per_ip; /* new connections per second per address (0: no limit) */
    double chat_rate_per_ip; /* chat messages per second per address (0: no limit) */
    long chat_burst_per_ip;  /* ... at once */
    /* Output is written this long after the first event that made a
     * connection dirty, so that the events of the next instants share its
     * write (0: at the end of the loop iteration that queued it). */
    long write_delay_us;
};

struct gw_net_handlers {
    /* A complete request (head and Content-Length body) on an HTTP
     * connection. The handler must answer (gw_http_respond), upgrade
     * (gw_ws_accept), or set GW_CONN_BUSY and answer later. req and body are
     * borrowed for the duration of the call. */
    void (*on_request)(struct gw_net *n, struct gw_conn *c, const struct http_request *req,
                       const uint8_t *body, size_t body_len);
    /* A request head announces a body over lim.max_body_unauth (the body
     * may not have arrived yet; called once per request). Returns true when
     * the body may be read; false after answering (413), and the rest of the
     * input is discarded. This is where credentials are checked before a
     * peer may make us buffer a large body. May be NULL (every body up to
     * lim.http.max_body is read). req is borrowed for the call. */
    bool (*on_large_body)(struct gw_net *n, struct gw_conn *c, const struct http_request *req);
    /* A complete WebSocket message (text already UTF-8 checked). data is
     * borrowed for the call, and writable. */
    void (*on_ws_message)(struct gw_net *n, struct gw_conn *c, uint8_t opcode, uint8_t *data,
                          size_t len);
    /* The connection is being freed (reap point, or gw_net_free()): the
     * application releases c->app here. May be NULL. */
    void (*on_closed)(struct gw_net *n, struct gw_conn *c);
    /* Called by the sweep for every live connection. May be NULL. */
    void (*on_tick)(struct gw_net *n, struct gw_conn *c, int64_t now_ms);
    void *arg; /* borrowed: the application's context (n->h.arg) */
};

RB_HEAD(gw_conn_tree, gw_conn);

struct gw_net {
    struct event_base *base; /* borrowed */
    struct gw_limits lim;
    struct gw_net_handlers h;
    int listen_fd;
    struct event *listen_ev;   /* owned */
    struct event *flush_ev;    /* owned */
    struct event *reap_ev;     /* owned */
    struct event *sweep_ev;    /* owned */
    long tick_ms;              /* every connection is swept once per tick */
    long sweep_slices;         /* ... a slice of them per timer event */
    uint64_t sweep_next;       /* the id the next slice starts at (0: the first) */
    struct memtrim trim;       /* heap trims after bursts (on_sweep) */
    struct gw_conn_tree by_id; /* owns every connection, by id */
    struct gw_conn *dirty;     /* borrowed: head of the flush list */
    bool flush_armed;          /* flush_ev is active or its delay runs */
    struct gw_conn *dead;      /* borrowed: head of the reap list (each freed there) */
    uint64_t next_id;
    size_t nconns;
    bool draining;    /* shutting down: no new connections */
    uint8_t *scratch; /* owned: the shared read buffer */
    /* Internal: gw_proto.c's reader, set by gw_net_init(); gw_conn.c calls
     * it when a socket is readable, so the output side never names the
     * input side (gw_net_internal.h). */
    void (*on_readable)(struct gw_conn *c);
    /* Counters for /metrics and logs. */
    uint64_t n_accepted, n_msgs_in, n_frames_out, n_slow_cut, n_ip_refused;
    uint64_t n_writes;                /* writev() calls that wrote something */
    uint64_t n_limit[GW_LIMIT_COUNT]; /* refusals by limit */
    struct gw_ip_table ips;           /* per-address limits */
};

/*
 * Sets up the layer on base; listens on host:port with SO_REUSEPORT (so
 * several gateway processes may share a port) when port >= 0.
 * h is copied; base is borrowed for n's lifetime. Returns 0 with
 * *bound_port set to the actual port, or -1 (a listen failure is logged);
 * either way n is freed with gw_net_free().
 */
int gw_net_init(struct gw_net *n, struct event_base *base, const struct gw_limits *lim,
                const struct gw_net_handlers *h, const char *host, int port, int *bound_port);
/* Closes every connection at once (no handshake; on_closed runs for each)
 * and frees everything; n is zeroed. Safe after a failed gw_net_init(). */
void gw_net_free(struct gw_net *n);

/* Stops accepting and starts closing every connection with code and reason
 * (HTTP connections waiting for an asynchronous answer are left to finish
 * it). */
void gw_net_drain(struct gw_net *n, uint16_t code, const char *reason);

/* The first item of c's output queue, or NULL when it is empty. */
static inline struct gw_out *gw_conn_out_first(const struct gw_conn *c)
{
    return c->out_last ? c->out_last->next : NULL;
}

/* Milliseconds of the monotonic clock (deadlines, rates; never wall time). */
int64_t gw_now_ms(void);
/* Milliseconds from then (the low 32 bits of an earlier gw_now_ms(), as
 * gw_conn keeps them) to now; right for spans under 49 days. */
static inline uint32_t gw_conn_elapsed_ms(int64_t now, uint32_t then)
{
    return (uint32_t)now - then;
}

/* The live connection with this id, borrowed until the next reap point;
 * NULL when there is none or it is already marked dead. */
struct gw_conn *gw_conn_find(struct gw_net *n, uint64_t id);
/*
 * Walks every connection, closing ones included, in id order. The body may
 * queue, close or abort c (nothing is freed before the reap point) but must
 * not change ids (gw_net_take_id()), which moves c in the order.
 */
struct gw_conn *gw_net_first(struct gw_net *n);
struct gw_conn *gw_net_next(struct gw_conn *c);
#define GW_NET_FOREACH(c, n) for ((c) = gw_net_first(n); (c); (c) = gw_net_next(c))
/* Whether id names a connection here (closing ones included). */
bool gw_net_id_used(struct gw_net *n, uint64_t id);
/* c takes over id (a recovered /ws session keeps the id the broker knows
 * it by); false when a connection here has it (the caller checks the
 * Engine.IO sessions). */
bool gw_net_take_id(struct gw_net *n, struct gw_conn *c, uint64_t id);

/*
 * Queues bytes (copied) / a shared buffer (a reference is taken; s may be
 * NULL, then nothing happens). Never fails to the caller: out of memory
 * marks c dead, and a queue over lim.out_cap starts closing c (1013, or
 * dead for HTTP); nothing is queued on a dead or closing connection.
 */
void gw_conn_send(struct gw_conn *c, const void *data, size_t len);
void gw_conn_send_shared(struct gw_conn *c, struct gw_shared *s);
/* Queues one WebSocket text frame (as gw_conn_send_shared()). */
void gw_ws_send_text(struct gw_conn *c, const char *text, size_t len);

/*
 * Answers an HTTP request. extra_headers: NULL or complete "Name: value\r\n"
 * lines. keep: keep the connection for the next request (ignored when the
 * request asked to close). Clears GW_CONN_BUSY and resumes reading.
 */
void gw_http_respond(struct gw_conn *c, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len, bool keep);
/* gw_http_respond() for a body that is a string literal (the "" makes
 * anything else a compile error): the length comes from the literal, never
 * from a count written beside it. */
#define GW_HTTP_RESPOND_LIT(c, status, content_type, extra_headers, lit, keep)                     \
    gw_http_respond((c), (status), (content_type), (extra_headers), "" lit, sizeof("" lit) - 1,    \
                    (keep))
/* JSON error body {"error": word, "message": text}. */
void gw_http_error(struct gw_conn *c, int status, const char *word, const char *message);

/* Sends the 101 answer for a checked handshake key and switches to frames:
 * GW_CONN_WS is set on success. On failure (a key ws_handshake_check()
 * would refuse) it answers 500 or aborts, and c stays HTTP. */
void gw_ws_accept(struct gw_conn *c, const char *key, size_t key_len, const char *extra_headers);

/* Starts the close handshake with code and reason (WebSocket), or just ends
 * the connection after its queue drains (HTTP). */
void gw_conn_close(struct gw_conn *c, uint16_t code, const char *reason);
/* Drops the connection now, no handshake (dead peer, overflow): marked
 * dead, freed at the reap point after the current callbacks. */
void gw_conn_abort(struct gw_conn *c, const char *why);

#endif
