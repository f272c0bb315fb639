/*
 * bk_internal.h - what the broker's own files share (bk_broker.c,
 * bk_out.c, bk_social.c). Not for use outside broker/.
 */
#ifndef HERALD_BK_INTERNAL_H
#define HERALD_BK_INTERNAL_H

#include "bk.h"

#include <stddef.h>

int64_t bk_now_ms(void);

/* ---- bk_out.c: writes and deliveries ------------------------------------ */

/* Queues one command on the write connection (pipelined; the batch's XACK
 * follows it). Logged and dropped while Redis is down. */
void bk_cmd(struct bk *b, struct ev_args *a);
/* XADDs the fields in a (t, c, e, d, ...) to the gateway's stream. */
void bk_xadd_gw(struct bk *b, const struct bk_gw *gw, struct ev_args *a);
/* Event to every gateway (t = "all" or "auth"). */
void bk_broadcast(struct bk *b, const char *t, const char *event, const char *json, size_t jl);
/* Event to one connection. */
void bk_to_conn(struct bk *b, const struct bk_conn *c, const char *event, const char *json,
                size_t jl);
/* Close connections ids (one id or a comma list) of gw with a close code and
 * a reason word (borrowed C string, e.g. "unknown-user"; the raw close
 * reason, and for "unknown-user" the Socket.IO CONNECT_ERROR code). */
void bk_kick(struct bk *b, const struct bk_gw *gw, const char *ids, size_t len, int code,
             const char *word);
/* HTTP answer to the request entry e of gateway gw. */
void bk_reply(struct bk *b, const struct bk_gw *gw, const struct ev_entry *e, int status,
              const char *json, size_t jl);
#define BK_REPLY_LIT(b, gw, e, status, lit) bk_reply(b, gw, e, status, lit, sizeof(lit) - 1)
/* Socket.IO acknowledgement of the msg entry e (its ack id and timestamp)
 * to connection c; args is a JSON array. */
void bk_to_ack(struct bk *b, const struct bk_conn *c, const struct ev_entry *e, const char *args,
               size_t al);

/*
 * A set of recipient connections, possibly on several gateways, possibly
 * named twice (a tab of the user who is also in the room). bk_targets_send()
 * writes one "conn" entry per gateway with the comma list of its ids, so a
 * gateway gets the event once and renders it once for all its recipients.
 */
struct bk_targets {
    struct bk_conn **v; /* owned array of borrowed connections */
    size_t n, cap;
};
void bk_targets_add(struct bk_targets *t, struct bk_conn *c);
/* Adds every connection (tab) of user u. */
void bk_targets_add_user(struct bk_targets *t, const struct bk_user *u);
/* Sends event to every target (each once) and empties the set. t may be
 * sent again; free with bk_targets_free(). Returns the number reached. */
size_t bk_targets_send(struct bk *b, struct bk_targets *t, const char *event, const char *json,
                       size_t jl);
/* Closes every target with code and reason word (bk_kick; one kick entry
 * per gateway), empties t. */
void bk_targets_kick(struct bk *b, struct bk_targets *t, int code, const char *word);
void bk_targets_free(struct bk_targets *t);

/* ---- bk_broker.c: presence ----------------------------------------------- */

struct bk_user *bk_user_get(struct bk *b, int64_t id, bool create);
struct bk_conn *bk_conn_find(struct bk *b, struct bk_gw *gw, uint64_t id);
/* Removes a connection; persist: HDEL it (false when the whole hash goes). */
void bk_conn_remove(struct bk *b, struct bk_conn *c, bool persist);
/* Account deleted: out of the queue, connections forgotten, offline at
 * once. Frees u. */
void bk_user_delete(struct bk *b, struct bk_user *u);
/* Frees u when nothing refers to it any more. */
void bk_user_release(struct bk *b, struct bk_user *u);

/* ---- bk_admin.c: the admin port ---------------------------------------- */

/* Listens on cfg.admin_listen (nothing when unset). Returns 0 or -1. */
int bk_admin_start(struct bk *b);
void bk_admin_stop(struct bk *b);
/* Asks Redis for the stream figures /metrics shows. */
void bk_admin_refresh(struct bk *b);

/* ---- bk_social.c: rooms, notifications, chat, matchmaking, search --------- */

/* Parses cfg.public_fields. Returns 0 or -1. */
int bk_social_init(struct bk *b);
/* Frees rooms, queue, buckets. */
void bk_social_free(struct bk *b);
/* Counts one refusal with word (one of bk_refusal_words; others are not
 * counted) for /metrics. */
void bk_refusal_count(struct bk *b, const char *word);
/* A client event other than get_online_users (c is the sender). Returns
 * false when the event is not one of these. */
bool bk_social_msg(struct bk *b, struct bk_conn *c, const struct ev_entry *e);
/* An HTTP request relayed by gateway gw. Returns false when unknown. */
bool bk_social_request(struct bk *b, struct bk_gw *gw, const struct ev_entry *e);
/* A "notify" entry written by an application backend. */
void bk_social_notify(struct bk *b, const struct ev_entry *e);
/* The connection is going away: leave its rooms (persist: HDEL them). */
void bk_rooms_leave_all(struct bk *b, struct bk_conn *c, bool persist);
/* The user has no connection left: out of the matchmaking queue. */
void bk_queue_remove(struct bk *b, struct bk_user *u);
/* Start-up: rebuild rooms of gw and the queue from Redis (sync context). */
void bk_social_load_gw(struct bk *b, struct bk_gw *gw, void *redis_context);
void bk_social_load_queue(struct bk *b, void *redis_context);
/* After a Redis outage: rewrite rooms (inside the caller's MULTI). */
void bk_social_resync(struct bk *b);
/* Periodic: forget chat buckets that are full again. */
void bk_social_tick(struct bk *b, int64_t now);

#endif
