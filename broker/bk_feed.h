/*
 * bk_feed.h - what the application backend hears from Herald: the capped
 * stream herald:hooks (PROTOCOL.md §6a, docs/API.md "Hooks").
 *
 * One entry per event, fields t (the event's name), d (its JSON object)
 * and ts (ms since the epoch, when it happened):
 *
 *   user-online      {userId, username}
 *   user-offline     {userId, username, onlineSince}  (ms; null if unknown)
 *   direct-message   {id, userId, user, to, message, ts}
 *   livechat         {id, userId, user, message, ts}
 *   account-deleted  {userId}
 *
 * Backends read it with consumer groups of their own (the webhook sender,
 * bk_webhook.h, is one: herald-webhook). Like every Herald stream it is
 * never trimmed past an entry a group has not acknowledged: once a
 * second the broker trims what every group has acknowledged (a script:
 * one round trip); without groups it keeps the newest hooks_maxlen
 * entries. When a group lags so far that the stream holds hooks_maxlen
 * entries, new events are not added and are counted as dropped
 * (herald_broker_hooks_dropped_total), with the lagging group named in
 * the log: a backend that stopped reading cannot grow Redis without bound.
 */
#ifndef HERALD_BK_FEED_H
#define HERALD_BK_FEED_H

#include "bk.h"

#define BK_HOOKS_STREAM "herald:hooks"

/* Appends event (t) with its JSON object (js/jl, borrowed) happened at ts
 * (ms since the epoch). Dropped and counted when the stream is full;
 * nothing when hooks are off (hooks_maxlen 0). */
void bk_feed_add(struct bk *b, const char *event, const char *js, size_t jl, int64_t ts);
/* A presence transition of user id at ts (ms since the epoch); since_ms:
 * when it went online (offline events; 0 unknown). */
void bk_feed_presence(struct bk *b, int64_t id, const char *username, bool online, int64_t since_ms,
                      int64_t ts);
/* Once a second while leading: trim what every group acknowledged, learn
 * the length (and so whether the stream is full). */
void bk_feed_trim(struct bk *b);

#endif
