/*
 * bk_chat.h - live chat, direct messages and the per-user chat rate
 * (PROTOCOL.md §3-§4, §4a; docs/API.md "Chat and direct messages").
 *
 * Both events come from a connection (msg: the connection's user speaks;
 * the msg table lets no guest through) or over HTTP (req: the token's user,
 * e->u, speaks). Chat and DMs are not deduplicated: a replayed message is
 * delivered twice rather than lost.
 */
#ifndef HERALD_BK_CHAT_H
#define HERALD_BK_CHAT_H

#include "bk_answer.h"
#include "bk_presence.h"

struct json_object;

/* Registered by bk_init(): init, tick (forget full buckets), free. */
extern const struct bk_hooks bk_chat_hooks;

/* livechat {message}: to every authenticated connection, the author's too.
 * args may be NULL (bad-field). */
void bk_chat_livechat(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* direct_message {to, message}: stored (id, ts), then to every tab of the
 * recipient (a username, else an id) and the sender's other tabs. An
 * unknown recipient costs the sender nothing from the bucket. */
void bk_chat_direct(struct bk *b, const struct bk_origin *o, struct json_object *args);

/* The stored DMs and the chat history (connections of known users only:
 * the msg table refuses guests). A raw client is answered with an event
 * holding an object, a Socket.IO callback with its array:
 * get_dm_history {with, before?, limit?} -> dm_history {with, messages};
 * get_unread -> dm-unread {conversations}; get_chat_history {limit?} ->
 * chat_history {messages}. dm_read {with, upTo} moves the read mark and
 * sends every tab of the user its counts (dm-unread). */
void bk_chat_dm_history(struct bk *b, const struct bk_origin *o, struct json_object *args);
void bk_chat_dm_read(struct bk *b, const struct bk_origin *o, struct json_object *args);
void bk_chat_unread(struct bk *b, const struct bk_origin *o, struct json_object *args);
void bk_chat_history(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* GET /api/dm/history (req, the application's API key checked by the
 * gateway): {user, with, before?, limit?} -> 200 {messages} of the stored
 * conversation, newest last; 404 unknown-user naming the parameter. */
void bk_chat_dm_history_api(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* dm-unread {conversations} to every tab of u (none: nothing asked). */
void bk_chat_push_unread(struct bk *b, struct bk_user *u);

#endif
