/*
 * gw_sio.h - the Socket.IO v5 endpoint on the Engine.IO sessions (gw_eio):
 * what a stock socket.io-client sees (PROTOCOL.md §4).
 *
 * Why a module of its own: CONNECT (who the client is), the client events,
 * the token's expiry ("token-expired", then a server disconnect) and how
 * broker events look as Socket.IO packets belong to this one endpoint. The
 * identity rules themselves are gw_auth's; delivery of broker entries is
 * dispatched by gw_deliver to the functions below.
 *
 * State: each session's s->app is its Socket.IO state, allocated in
 * on_open and freed in on_close (gw_eio calls both).
 */
#ifndef HERALD_GW_SIO_H
#define HERALD_GW_SIO_H

#include "gw.h"

/* The session hooks gw_eio calls; main.c copies them and sets .arg to the
 * struct gw. */
extern const struct gw_eio_handlers gw_sio_handlers;

/* Announces every connected Socket.IO client to the broker again (gw_bus
 * on_ready). */
void gw_sio_announce_all(struct gw *g);

/* ---- delivery of broker entries (called by gw_deliver) ------------------- */

/* An event rendered once per entry for many sessions: the Socket.IO text
 * and, through m, its shared frame and packet. Zero it before the first
 * use; release with gw_sio_render_release(). */
struct gw_sio_render {
    char *text;          /* owned: "2[...]", NULL until rendered */
    struct gw_eio_msg m; /* m.text borrows text */
};
void gw_sio_render_release(struct gw_sio_render *r);

/* A broadcast entry (all/auth) to every connected session (auth: users
 * only). Returns the number of sessions reached. */
size_t gw_sio_broadcast(struct gw *g, const struct ev_entry *e);
/* A conn/ack/kick entry for id: when id is a Socket.IO session, applies it
 * (rendering conn events once into r) and returns true, whether or not the
 * session was connected; false when id is no session. */
bool gw_sio_deliver_id(struct gw *g, uint64_t id, const struct ev_entry *e,
                       struct gw_sio_render *r);
/* A broadcast entry (all/auth) to session id alone (a recovered session's
 * missed or held events). False when id is no session. */
bool gw_sio_send_one(struct gw *g, uint64_t id, const struct ev_entry *e, bool auth_only);
/* A "moved" entry: session id was recovered elsewhere; a stale copy of it
 * here is closed without telling the broker. False when id is no session. */
bool gw_sio_moved(struct gw *g, uint64_t id);

/* ---- recovery (called by gw_recover) --------------------------------------- */

/* Session id may go on: the CONNECT reply with pid (recovered: the old
 * pid; fresh: a new one). */
void gw_sio_session_ready(struct gw *g, uint64_t id, const char *pid);
/* Its recovery failed after the reply: closed (recoverable: the client
 * may try again; else it gets a fresh session next time). */
void gw_sio_session_drop(struct gw *g, uint64_t id, bool recoverable);

#endif
