/*
 * bk_lookup.h - questions answered from the state and the store, changing
 * nothing: who is online (PROTOCOL.md §2: get_online_users, GET
 * /online-status), users by name or id (the demo login, get-users), search
 * (GET /users/search, §6) and whoami (§4).
 *
 * Handlers of the dispatch tables; o and args are borrowed for the call and
 * args may be NULL (unparsable or absent data).
 */
#ifndef HERALD_BK_LOOKUP_H
#define HERALD_BK_LOOKUP_H

#include "bk_answer.h"

struct json_object;

/* msg get_online_users: {"users":[ids]} (raw), the ack [[ids]] (Socket.IO
 * with a callback), nothing for Socket.IO without one. */
void bk_lookup_online_users(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* msg whoami: {"id","username"}, {"id":0} for a guest (callback only). */
void bk_lookup_whoami(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* msg get-users {ids}: [{"id","username","avatar","online"}] of the known
 * ids, at most BK_GET_USERS_MAX (bad-field past it). */
void bk_lookup_get_users(struct bk *b, const struct bk_origin *o, struct json_object *args);

/* req search {q, limit?, offset?}: 200 [{"id","username","avatar","online"}]. */
void bk_lookup_search(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* req online-status {username}: 200 {"online":bool}, 404 unknown-user,
 * 400 bad-field, 503 unavailable (answered directly: not counted as
 * refusals). */
/* POST /api/online-status {"ids":[...]} (at most 1000): 200 {"online":
 * [ids of those online, in the order asked]}, from memory. */
void bk_lookup_online_ids(struct bk *b, const struct bk_origin *o, struct json_object *args);
void bk_lookup_online_status(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* req user {username}: 200 {"id","username"} (the gateways' demo login),
 * else 404 unknown-user (not counted). */
void bk_lookup_user(struct bk *b, const struct bk_origin *o, struct json_object *args);

#endif
