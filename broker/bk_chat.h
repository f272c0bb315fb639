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
/* direct_message {to, message}: to every tab of the recipient (a username,
 * else an id); an unknown one costs the sender nothing from the bucket. */
void bk_chat_direct(struct bk *b, const struct bk_origin *o, struct json_object *args);

#endif
