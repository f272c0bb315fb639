/*
 * bk_rooms.h - profile rooms and the privacy rule (PROTOCOL.md §5,
 * docs/API.md "Profiles and privacy").
 *
 * A connection watching user T is in the room watching-user-<T>; events
 * about T reach the room and T's own tabs, in full to T and T's friends and
 * with the public fields only to everyone else. Rooms are persisted per
 * gateway (herald:watch:<gw>) and restored at start-up.
 */
#ifndef HERALD_BK_ROOMS_H
#define HERALD_BK_ROOMS_H

#include "bk_answer.h"
#include "bk_presence.h"

struct json_object;

/* Registered by bk_init(): init (public fields), conn_closing (leave every
 * room), gw_loaded (restore), resync, free. */
extern const struct bk_hooks bk_rooms_hooks;

/* Client events (the msg table). watch-profile {userId}: join the room;
 * a Socket.IO callback gets the snapshot {user, stats, online}, full or
 * public by the privacy rule. unwatch-profile {userId}: leave it (ok also
 * when not in it). args may be NULL (bad-field). */
void bk_rooms_watch(struct bk *b, const struct bk_origin *o, struct json_object *args);
void bk_rooms_unwatch(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* watch-presence {userIds} (at most max_presence_watch in the list, all or
 * nothing: 429 too-many-rooms past it): the connection hears those users'
 * transitions in scope related; answered {ok, online: [those online]}.
 * unwatch-presence {userIds}: forgets them (ok also for ids not listed). */
void bk_rooms_watch_presence(struct bk *b, const struct bk_origin *o, struct json_object *args);
void bk_rooms_unwatch_presence(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* Adds every connection watching user target (its profile or its
 * presence) to t: who hears target's transitions in scope related besides
 * target's own tabs and friends. */
struct bk_targets;
void bk_rooms_add_watchers(struct bk *b, int64_t target, struct bk_targets *t);

/*
 * Sends event about user target to the room watching-user-<target> and to
 * every tab of the user: full (borrowed) to the user and their friends, pub
 * (borrowed) to everyone else, guests included. Returns the number of
 * connections reached. A failed friends lookup is logged and everyone gets
 * pub.
 */
size_t bk_rooms_deliver_about(struct bk *b, int64_t target, const char *event,
                              struct json_object *full, struct json_object *pub);
/* The profile of user id changed in the store (provisioning: a rename, a
 * new avatar, a friendship made or ended): profile-update {user} with the
 * stored user object (and its friends) through bk_rooms_deliver_about(),
 * so every watcher's view takes the new shape at once. Returns the number
 * of connections reached (0 also for an unknown user). */
size_t bk_rooms_profile_changed(struct bk *b, int64_t id);
/* A new object (caller puts it) with only the public keys of o; the values
 * are shared with o. */
struct json_object *bk_rooms_public_copy(const struct bk *b, struct json_object *o);
/* A new stats object {userId, wins, losses, ratio} (caller puts it); ratio
 * is wins / games rounded to 3 places, 0 without games. */
struct json_object *bk_stats_json(int64_t id, long wins, long losses);

#endif
