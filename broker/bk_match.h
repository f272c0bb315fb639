/*
 * bk_match.h - matchmaking (PROTOCOL.md §5, docs/API.md "Matchmaking"): a
 * first-come-first-paired queue of users, persisted as herald:matchmaking.
 * Guests may not play (the msg table refuses them before these run).
 */
#ifndef HERALD_BK_MATCH_H
#define HERALD_BK_MATCH_H

#include "bk_answer.h"
#include "bk_presence.h"

struct json_object;

/* Registered by bk_init(): init, user_idle (out of the queue), loaded
 * (restore the queue), resync, free. */
extern const struct bk_hooks bk_match_hooks;

/* join-matchmaking: queued (once however many tabs), or paired with the
 * user waiting longest (match-found to every tab of both). args unused. */
void bk_match_join(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* leave-matchmaking: out of the queue (ok also when not in it). */
void bk_match_leave(struct bk *b, const struct bk_origin *o, struct json_object *args);

#endif
