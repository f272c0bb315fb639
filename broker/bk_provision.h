/*
 * bk_provision.h - the application backend tells Herald who exists
 * (PROTOCOL.md §6a): users created, renamed or given a new avatar, and
 * friendships made or ended, by HTTP (PUT/DELETE /api/users/:id,
 * PUT/DELETE /api/friendships, relayed by a gateway) or by an entry XADDed
 * onto herald:events; and users created just in time from a token's
 * claims (HERALD_JIT_USERS=1).
 *
 * Every request is idempotent: repeating it answers 200 and changes
 * nothing; bad input is refused with a word and changes nothing. A change
 * reaches the connections already open at once: watchers of the profile
 * get profile-update in the shape the privacy rule now gives them.
 */
#ifndef HERALD_BK_PROVISION_H
#define HERALD_BK_PROVISION_H

#include "bk_answer.h"

/* user-put {userId, username, avatar?}: create (201) or update (200). An
 * absent avatar keeps the current one, null clears it. 409 username-taken,
 * 409 deleted-user (ids of deleted accounts are never reused). */
void bk_provision_user_put(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* friendship-put / friendship-delete {userId, friendId}: 200 {"ok":true,
 * "changed":bool}; 404 unknown-user; 400 bad-field (a user and themself). */
void bk_provision_friend_put(struct bk *b, const struct bk_origin *o, struct json_object *args);
void bk_provision_friend_delete(struct bk *b, const struct bk_origin *o, struct json_object *args);
/*
 * jit-user {userId, username?, avatar?}: a gateway saw a valid token (with
 * HERALD_JIT_USERS=1) and sends its claims ahead of the connection's open.
 * With cfg.jit_users, an unknown id is created (the claimed name, or
 * user<id>; a name taken by someone else gets -<id> appended) unless it
 * belonged to a deleted account, and a known user's username and avatar
 * follow the claims. Without it, ignored. Never answered.
 */
void bk_provision_jit(struct bk *b, const struct bk_origin *o, struct json_object *args);

#endif
