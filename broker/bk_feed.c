/*
 * bk_feed.c - see bk_feed.h. Appends go through the sink with the rest of
 * the broker's writes (pipelined, in the order the events happened); the
 * trim is one script a second.
 */
#include "bk_feed.h"

#include "bk_out.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * Trims herald:hooks below the oldest entry some group has not
 * acknowledged (its oldest pending entry, else its last delivered one),
 * or, without groups, to about maxlen entries. Returns {length, the group
 * that holds the trim back ("" none), number of groups}.
 */
static const char feed_trim_lua[] =
    "local key, maxlen = KEYS[1], tonumber(ARGV[1]) "
    "if redis.call('EXISTS', key) == 0 then return {0, '', 0} end "
    "local groups = redis.call('XINFO', 'GROUPS', key) "
    "if #groups == 0 then "
    "  redis.call('XTRIM', key, 'MAXLEN', '~', maxlen) "
    "  return {redis.call('XLEN', key), '', 0} "
    "end "
    "local best, bms, bseq, who = nil, 0, 0, '' "
    "for _, g in ipairs(groups) do "
    "  local f = {} "
    "  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end "
    "  local id = f['last-delivered-id'] "
    "  if f['pending'] > 0 then id = redis.call('XPENDING', key, f['name'])[2] end "
    "  local ms, seq = string.match(id, '^(%d+)-(%d+)$') "
    "  ms, seq = tonumber(ms), tonumber(seq) "
    "  if not best or ms < bms or (ms == bms and seq < bseq) then "
    "    best, bms, bseq, who = id, ms, seq, f['name'] "
    "  end "
    "end "
    "redis.call('XTRIM', key, 'MINID', best) "
    "return {redis.call('XLEN', key), who, #groups}";

void bk_feed_add(struct bk *b, const char *event, const char *js, size_t jl, int64_t ts)
{
    struct bk_feed *f = &b->feed;
    if (b->cfg.hooks_maxlen <= 0)
        return;
    if (f->groups > 0 && f->len >= b->cfg.hooks_maxlen) {
        if (!f->full)
            log_warn("%s is full (%lld entries): group \"%s\" has not acknowledged its entries; "
                     "new hooks are dropped until it does",
                     BK_HOOKS_STREAM, f->len, f->lagging);
        f->full = true;
        f->dropped++;
        return;
    }
    struct ev_args a;
    ev_args_xadd(&a, BK_HOOKS_STREAM, sizeof(BK_HOOKS_STREAM) - 1, 0);
    ev_args_adds(&a, "t");
    ev_args_adds(&a, event);
    ev_args_adds(&a, "d");
    ev_args_add(&a, js, jl);
    ev_args_adds(&a, "ts");
    ev_args_add_i64(&a, ts);
    bk_cmd(b, &a);
    f->len++;
    f->added++;
}

void bk_feed_presence(struct bk *b, int64_t id, const char *username, bool online, int64_t since_ms,
                      int64_t ts)
{
    if (b->cfg.hooks_maxlen <= 0)
        return;
    char js[192];
    int n;
    if (online)
        n = snprintf(js, sizeof(js), "{\"userId\":%lld,\"username\":\"%s\"}", (long long)id,
                     username);
    else if (since_ms > 0)
        n = snprintf(js, sizeof(js), "{\"userId\":%lld,\"username\":\"%s\",\"onlineSince\":%lld}",
                     (long long)id, username, (long long)since_ms);
    else
        n = snprintf(js, sizeof(js), "{\"userId\":%lld,\"username\":\"%s\",\"onlineSince\":null}",
                     (long long)id, username);
    /* Usernames are [A-Za-z0-9_.-]{1,64} (bk_username_valid): nothing to
     * escape, and the line always fits. */
    HERALD_ASSERT(n > 0 && (size_t)n < sizeof(js));
    bk_feed_add(b, online ? "user-online" : "user-offline", js, (size_t)n, ts);
}

static void on_trimmed(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bk *b = priv;
    struct bk_feed *f = &b->feed;
    const redisReply *r = reply;
    f->trimming = false;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[2]->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            log_warn_rl(60, "trimming %s: %s", BK_HOOKS_STREAM, r->str);
        return;
    }
    /* Appends issued after the script are not in its count. */
    f->len = r->element[0]->integer + (long long)(f->added - f->added_at_trim);
    f->groups = (int)r->element[2]->integer;
    if (r->element[1]->type == REDIS_REPLY_STRING)
        snprintf(f->lagging, sizeof(f->lagging), "%s", r->element[1]->str);
    if (f->full && (f->groups == 0 || f->len < b->cfg.hooks_maxlen)) {
        log_info("%s has room again: hooks are added again (%llu dropped so far)", BK_HOOKS_STREAM,
                 (unsigned long long)f->dropped);
        f->full = false;
    }
}

void bk_feed_trim(struct bk *b)
{
    struct bk_feed *f = &b->feed;
    if (b->cfg.hooks_maxlen <= 0 || f->trimming)
        return;
    char max[24];
    snprintf(max, sizeof(max), "%ld", b->cfg.hooks_maxlen);
    const char *argv[] = {"EVAL", feed_trim_lua, "1", BK_HOOKS_STREAM, max};
    const size_t lens[] = {4, sizeof(feed_trim_lua) - 1, 1, sizeof(BK_HOOKS_STREAM) - 1,
                           strlen(max)};
    f->added_at_trim = f->added;
    if (bk_send(b, on_trimmed, b, 5, argv, lens) == 0)
        f->trimming = true;
}
