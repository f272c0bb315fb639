/*
 * gw_recover.h - sessions that come back (PROTOCOL.md §4a): Socket.IO
 * connection state recovery as the stock client speaks it, and the raw
 * endpoint's resume.
 *
 * A session is named by its pid, "<conn id>.<token>.<start>": the broker's
 * connection id, a random 32-bit token the broker keeps with it, and the
 * offset in our stream where it started (what it missed is counted from
 * there when it never got an event). Every event a client is sent carries
 * an offset: the id of the stream entry it came from. A client that comes
 * back names its pid and its last offset. The gateway takes over the
 * connection id, asks the broker (an "open" with the token and the offset),
 * and holds the session until the broker answers "resume": recovered (the
 * broker moved the connection here, rooms and all, and ended its entries
 * in the stream it lived on with a "moved" entry) or fresh.
 *
 * Recovered: the entries for the session in the old stream after its
 * offset, up to that "moved" entry, are read back (XRANGE, in pages) and
 * delivered to it, in order; what arrived on our own stream for it
 * meanwhile is held and delivered after them. Nothing is delivered twice:
 * the old stream has everything before the move, ours everything after.
 * When the offset is no longer in the old stream (trimmed: past the window
 * or the log cap), or the session missed more than recovery_max_events,
 * it gets a fresh session instead (counted).
 *
 * Why a module of its own: it is the one thing that reads another
 * gateway's stream. It sits below the endpoints and gw_deliver, which call
 * in here (begin, busy, hold, cancel; gw_deliver hands it the "resume"
 * answers); what it must tell them (the session may go on, it resumed, it
 * failed, deliver this entry to it) goes through handlers main.c wires.
 */
#ifndef HERALD_GW_RECOVER_H
#define HERALD_GW_RECOVER_H

#include "gw.h"

/* "<u64>.<u32>.<ms>-<seq>" */
#define GW_PID_MAX (20 + 1 + 10 + 1 + EV_OFFSET_MAX)
/* socket.id: derived from the pid, so a recovered session keeps it. */
#define GW_SIO_ID_LEN 20

/* What recovery tells the layers above (main.c wires them to gw_sio,
 * gw_ws and gw_deliver); id is the session, sio its endpoint. */
struct gw_recover_handlers {
    /* The session may go on, as pid: Socket.IO sends its CONNECT reply
     * (offset NULL); a fresh /ws session its "session" frame with offset. */
    void (*ready)(struct gw *g, uint64_t id, bool sio, const char *pid, const char *offset);
    /* Everything it missed was delivered (/ws: the "resumed" frame). */
    void (*resumed)(struct gw *g, uint64_t id, bool sio, const char *offset);
    /* Its recovery failed after it was told it recovered: close it. */
    void (*drop)(struct gw *g, uint64_t id, bool sio, bool recoverable);
    /* One entry for this session alone (gw_deliver_one). */
    void (*deliver)(struct gw *g, uint64_t id, const struct ev_entry *e);
};
/* Sets up g->recover with h (copied). 0, or -1 out of memory. */
int gw_recover_init(struct gw *g, const struct gw_recover_handlers *h);

/* Writes the pid of connection id (token, start offset) into out (NUL
 * terminated). */
void gw_recover_pid(char out[GW_PID_MAX + 1], uint64_t id, uint32_t token, const char *start);
/* Parses a pid a client sent; true with the parts set. */
bool gw_recover_pid_parse(const char *pid, size_t len, uint64_t *id, uint32_t *token,
                          char start[EV_OFFSET_MAX + 1]);
/* The socket.id of the session named pid (first 120 bits of its SHA-256,
 * base64url): stable across recoveries, unrelated to the Engine.IO sid. */
void gw_recover_sio_id(const char *pid, char out[GW_SIO_ID_LEN + 1]);
/* A random non-zero token, or 0 when the kernel gives no random bytes. */
uint32_t gw_recover_token(void);
/* Where a session that starts now starts: our stream's read position. */
const char *gw_recover_start(const struct gw *g);
/* True when recovery is on (--recovery-window-ms > 0). */
bool gw_recover_enabled(const struct gw *g);

/*
 * Session id (already taken over by the endpoint) comes back with pid
 * (token, start) from offset (NULL: from start). Publishes the open and
 * holds the session until the broker answers. Returns false when it
 * could not (out of memory, bus not ready): the caller goes on as for a
 * fresh session.
 */
bool gw_recover_begin(struct gw *g, uint64_t id, bool sio, int64_t user_id, uint32_t token,
                      const char *pid, const char *offset);
/* True while session id waits for its answer or its replay. */
bool gw_recover_busy(struct gw *g, uint64_t id);
/* An entry of our stream for session id while it is busy (e borrowed):
 * held until its replay is done, or dropped before the answer (the old
 * stream has it). */
void gw_recover_hold(struct gw *g, uint64_t id, const struct ev_entry *e);
/* The broker's "resume" answer (gw_deliver). */
void gw_recover_on_resume(struct gw *g, const struct ev_entry *e);
/* Session id closed while busy: its recovery ends quietly. */
void gw_recover_cancel(struct gw *g, uint64_t id);
/* Frees every pending recovery (shutdown). */
void gw_recover_free(struct gw *g);

/* Counters for /metrics. */
struct gw_recover_stats {
    uint64_t recovered, fresh, trimmed, capped, replayed;
};
void gw_recover_stats(const struct gw *g, struct gw_recover_stats *out);

#endif
