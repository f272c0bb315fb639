/*
 * bk_answer.h - a request's origin, its fields, and the answer to its
 * sender: the part every feature shares, whichever way the request came in.
 *
 * One handler serves every way in: a client event ("msg" entry from a /ws
 * connection or a Socket.IO session), an HTTP request a gateway relayed
 * ("req"), or a "notify" entry an application XADDed itself. The only
 * difference is how the sender is answered, which struct bk_origin says.
 */
#ifndef HERALD_BK_ANSWER_H
#define HERALD_BK_ANSWER_H

#include "bk.h"

struct json_object;

/* Where a request came from, and so how to answer it. All borrowed for the
 * handler's call. */
struct bk_origin {
    struct bk_gw *gw;         /* gateway of a "msg" or "req"; NULL for notify entries */
    const struct ev_entry *e; /* the entry */
    struct bk_conn *c;        /* sender connection of a "msg"; NULL otherwise */
};

/* Counts one refusal with word (one of bk_refusal_words; others are not
 * counted) for /metrics. */
void bk_refusal_count(struct bk *b, const char *word);

/*
 * Fails the request with a stable word (docs/API.md) and counts it: a
 * Socket.IO callback gets [{"ok":false,"error","message"}], a client event
 * without one the "error" event, an HTTP request status and
 * {"error","message"}, a notify entry a log line. word and message are our
 * own constants: nothing is escaped.
 */
void bk_answer_error(struct bk *b, const struct bk_origin *o, int status, const char *word,
                     const char *message);
/* Success: a Socket.IO callback gets [ack] (ack: one JSON value), an HTTP
 * request 202 {"status":"accepted"}, a raw client or a notify entry
 * nothing. Out of memory, the callback's answer is dropped. */
void bk_answer_ok(struct bk *b, const struct bk_origin *o, const char *ack, size_t al);
#define BK_ANSWER_OK_LIT(b, o, lit) bk_answer_ok(b, o, lit, sizeof(lit) - 1)
/* The same with a JSON value (borrowed). */
void bk_answer_json(struct bk *b, const struct bk_origin *o, struct json_object *v);
/* The backend's requests (provisioning, online queries) that answer with
 * a status and a body of their own: a relayed HTTP request gets them, a
 * notify entry nothing (it has no one to answer). v is borrowed. */
void bk_answer_http(struct bk *b, const struct bk_origin *o, int status, struct json_object *v);

/* A user id: a positive integer, or a string of at most 18 digits
 * (JavaScript clients send either). true with *id set, false otherwise. */
bool bk_id_value(struct json_object *v, int64_t *id);
/* bk_id_value() of o[key]; o may be NULL (false). */
bool bk_id_field(struct json_object *o, const char *key, int64_t *id);
/* o[key] when it is an object (borrowed from o), else NULL; o may be NULL. */
struct json_object *bk_obj_field(struct json_object *o, const char *key);

#endif
