/*
 * bk_notify.h - the application backend's notifications (PROTOCOL.md §6a,
 * docs/API.md "Notifications from the application backend"): a profile or
 * game-stats update announced to the user's room and tabs under the privacy
 * rule, and an account deleted everywhere.
 *
 * Each handler serves both ways in: a "notify" entry the backend XADDed
 * (no answer; a refusal is logged) and POST /api/notify/<event> relayed as
 * a "req" entry (202, or the refusal). The body is {userId, user|stats}.
 */
#ifndef HERALD_BK_NOTIFY_H
#define HERALD_BK_NOTIFY_H

#include "bk_answer.h"

struct json_object;

/* profile-update {userId, user}: stores username/avatar when given, then
 * profile-update {user} about the user. args may be NULL (bad-json). */
void bk_notify_profile(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* game-stats-update {userId, stats}: stores wins/losses when given, then
 * game-stats-update {stats} about the user. */
void bk_notify_stats(struct bk *b, const struct bk_origin *o, struct json_object *args);
/* account-deleted {userId}: account-deleted to every tab, then kicked 4003;
 * offline at once, out of the queue, deleted from the store, refused by
 * every gateway. Deleting a deleted account is accepted without effect. */
void bk_notify_deleted(struct bk *b, const struct bk_origin *o, struct json_object *args);

#endif
