/*
 * bk_out.h - everything the broker writes: commands through the sink and
 * entries on the gateways' streams (the entry fields are in event.h).
 *
 * Nothing here waits for an answer, and nothing fails loudly: a command
 * that cannot be sent (Redis down) is logged, rate-limited, and dropped;
 * the state is rewritten as a whole when Redis comes back (bk_load.c).
 * Pointers passed in are borrowed for the call only.
 */
#ifndef HERALD_BK_OUT_H
#define HERALD_BK_OUT_H

#include "bk.h"

#include <stddef.h>

/* ---- commands ------------------------------------------------------------ */

/* The production sink (struct bk_sink): arg is the struct rds to issue on. */
int bk_redis_sink(void *arg, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                  const size_t *argvlen);

/* Issues one command through b->sink; fn (may be NULL) gets the reply.
 * Returns 0 queued, -1 not sent (fn not called; nothing logged). */
int bk_send(struct bk *b, redisCallbackFn *fn, void *priv, int argc, const char **argv,
            const size_t *argvlen);
/* Issues a command whose reply nobody reads; logged (rate-limited) and
 * dropped when it cannot be sent. */
void bk_cmd(struct bk *b, struct ev_args *a);
void bk_cmd_argv(struct bk *b, int argc, const char **argv, const size_t *argvlen);
/* The same with argc NUL-terminated strings (at most EV_ARGS_MAX). */
void bk_cmd_strs(struct bk *b, int argc, const char *const *argv);

/* ---- entries for the gateways -------------------------------------------- */

/*
 * A presence transition of user (PROTOCOL.md §2): a "status" entry to
 * every gateway, which keeps its online list by it. t NULL: the event is
 * for every connection (scope all); else only for the connections in t
 * (scope related; t is emptied), and a gateway with none of them gets the
 * entry with c "0". Returns the connections named.
 */
struct bk_targets;
size_t bk_status(struct bk *b, int64_t user, bool online, const char *json, size_t jl,
                 struct bk_targets *t);
/* The whole online list as "online" entries (event.h) to gateway gw, or to
 * every gateway when gw is NULL: after a gateway's hello, and after the
 * broker loaded or rewrote its state, so every gateway's list starts from
 * the broker's. */
void bk_online_list(struct bk *b, const struct bk_gw *gw);
/* Event to every gateway (t = "all" or "auth"). */
void bk_broadcast(struct bk *b, const char *t, const char *event, const char *json, size_t jl);
/* Event to one connection. */
void bk_to_conn(struct bk *b, const struct bk_conn *c, const char *event, const char *json,
                size_t jl);
/* Close connections ids (one id or a comma list) of gw with a close code and
 * a reason word (a C string, e.g. "unknown-user"; the raw close reason, and
 * for "unknown-user" the Socket.IO CONNECT_ERROR code). */
/* The answer to a gateway's "hello": everything it published before the
 * hello has been answered ahead of this entry in its stream. */
void bk_welcome(struct bk *b, const struct bk_gw *gw);
/* Recovery (PROTOCOL.md §4a): "moved" ends connection id's entries in
 * gw's stream; "resume" answers a gateway's open with an offset: ok, with
 * the stream (gateway from) and offset to replay from, or a fresh session. */
void bk_moved(struct bk *b, const struct bk_gw *gw, uint64_t id);
void bk_resume(struct bk *b, const struct bk_gw *gw, uint64_t id, bool ok, const char *from,
               const char *offset, size_t offset_len);
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
/* Event to every tab of user u; returns the number of tabs. */
size_t bk_to_user(struct bk *b, const struct bk_user *u, const char *event, const char *json,
                  size_t jl);
/* The same with a JSON value (borrowed), serialized once. */
struct json_object;
size_t bk_to_user_json(struct bk *b, const struct bk_user *u, const char *event,
                       struct json_object *v);
/* Closes every tab of user u with code and reason word (as bk_kick). */
void bk_kick_user(struct bk *b, const struct bk_user *u, int code, const char *word);
/* Account id was deleted: every gateway refuses its tokens from now on
 * (SADD herald:deleted_users, then a "deleted" entry to every gateway). */
void bk_announce_deleted(struct bk *b, int64_t id);

/* ---- target sets --------------------------------------------------------- */

/*
 * A set of recipient connections, possibly on several gateways, possibly
 * named twice (a tab of the user who is also in the room). bk_targets_send()
 * writes one "conn" entry per gateway with the comma list of its ids, so a
 * gateway gets the event once and renders it once for all its recipients.
 * Start from {0}; an allocation failure drops a recipient with a log line.
 */
struct bk_targets {
    struct bk_conn **v; /* owned array of borrowed connections */
    size_t n, cap;
};
void bk_targets_add(struct bk_targets *t, struct bk_conn *c);
/* Adds every connection (tab) of user u. */
void bk_targets_add_user(struct bk_targets *t, const struct bk_user *u);
/* Sends event to every target (each once) and empties the set. t may be
 * filled and sent again; free with bk_targets_free(). Returns the number of
 * distinct connections reached. */
size_t bk_targets_send(struct bk *b, struct bk_targets *t, const char *event, const char *json,
                       size_t jl);
/* The same with a JSON value (borrowed), serialized once. */
size_t bk_targets_send_json(struct bk *b, struct bk_targets *t, const char *event,
                            struct json_object *v);
/* Closes every target with code and reason word (bk_kick; one kick entry
 * per gateway), empties t. */
void bk_targets_kick(struct bk *b, struct bk_targets *t, int code, const char *word);
/* Frees the array; t is {0} again. */
void bk_targets_free(struct bk_targets *t);

#endif
