/*
 * bk_load.c - see bk_load.h.
 *
 * Loading replays Redis into memory without writing anything back
 * (persist false): what is loaded is what Redis holds. Who is online is
 * settled afterwards by bk_presence_reconcile(), once the write connection
 * is up, so that a transition missed by a dead broker is announced then.
 *
 * A resync is one MULTI/EXEC: readers of online_users never see it empty
 * halfway through, and a second outage in the middle leaves the old state.
 */
#include "bk_load.h"

#include "bk_consumer.h"
#include "bk_out.h"
#include "bk_presence.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The name of u from the store when it has none yet (best effort). */
static void fill_username(struct bk *b, struct bk_user *u)
{
    struct bk_user_row row;
    if (!u->username[0] && bk_store_user_by_id(&b->store, u->id, &row) == 1)
        snprintf(u->username, sizeof(u->username), "%s", row.username);
}

/* herald:conns:<gw>: "<conn id>" -> "<user id>:<kind>:<token>". Returns the number
 * of connections added. */
static size_t load_conns(struct bk *b, struct bk_gw *gw, redisContext *rc)
{
    size_t n = 0;
    redisReply *h = redisCommand(rc, "HGETALL %s%s", BK_CONNS_PREFIX, gw->id);
    for (size_t j = 0; h && h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements; j += 2) {
        uint64_t cid = strtoull(h->element[j]->str, NULL, 10);
        char *colon;
        long long uid = strtoll(h->element[j + 1]->str, &colon, 10);
        char kind = *colon == ':' ? colon[1] : 'w';
        /* "<user>:<kind>:<token>" (the token since recovery; older: none). */
        uint32_t token = 0;
        if (*colon == ':' && colon[1] && colon[2] == ':')
            token = (uint32_t)strtoul(colon + 3, NULL, 10);
        struct bk_user *u = NULL;
        if (uid > 0 && (u = bk_user_add(b, uid)) != NULL)
            fill_username(b, u);
        if (bk_conn_add(b, gw, cid, u, kind, token, false))
            n++;
    }
    freeReplyObject(h);
    return n;
}

int bk_load_state(struct bk *b, redisContext *rc)
{
    redisReply *r = redisCommand(rc, "XGROUP CREATE %s %s 0 MKSTREAM", EV_STREAM_IN, EV_GROUP);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        log_error("XGROUP CREATE: %s", r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);

    r = redisCommand(rc, "SMEMBERS %s", BK_GATEWAYS_KEY);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    size_t nconns = 0;
    for (size_t i = 0; i < r->elements; i++) {
        struct bk_gw *gw = bk_gw_get(b, r->element[i]->str, r->element[i]->len, false);
        if (!gw)
            continue;
        nconns += load_conns(b, gw, rc);
        bk_hooks_gw_loaded(b, gw, rc);
    }
    freeReplyObject(r);

    r = redisCommand(rc, "SMEMBERS %s", EV_ONLINE_SET);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        struct bk_user *u = bk_user_add(b, strtoll(r->element[i]->str, NULL, 10));
        if (!u)
            continue;
        bk_user_loaded_online(b, u);
        fill_username(b, u);
    }
    freeReplyObject(r);
    r = redisCommand(rc, "HGETALL %s", BK_ONLINE_SINCE_KEY);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        struct bk_user *u = bk_user_find(b, strtoll(r->element[i]->str, NULL, 10));
        if (u && u->online)
            u->online_since_ms = strtoll(r->element[i + 1]->str, NULL, 10);
    }
    freeReplyObject(r);
    bk_hooks_loaded(b, rc);
    log_info("state loaded from redis: %zu connections, %zu users online, %zu queued", nconns,
             b->nonline, b->match.n);
    return 0;
}

void bk_load_resync(struct bk *b)
{
    log_warn("redis reconnected: rewriting presence state (%zu online)", b->nonline);
    /* Redis may have lost the lease keys with everything else, and the
     * gateways may reconnect after us (each retries at its own pace, up to
     * a second apart): every gateway gets a whole lease more than the TTL
     * to renew before it counts as dead. Reaping a live gateway here would
     * take all its users offline and back (and drop what was sent to them
     * meanwhile). */
    int64_t now = bk_now(b);
    struct bk_gw *gw;
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    gw->seen_ms = now + b->cfg.gateway_lease_ms;
    bk_cmd_strs(b, 1, (const char *[]){"MULTI"});
    bk_cmd_strs(b, 2, (const char *[]){"DEL", EV_ONLINE_SET});
    bk_cmd_strs(b, 2, (const char *[]){"DEL", BK_ONLINE_SINCE_KEY});
    struct bk_user *u;
    RB_FOREACH(u, bk_user_tree, &b->users)
    {
        char id[24], since[24];
        if (!u->online)
            continue;
        snprintf(id, sizeof(id), "%lld", (long long)u->id);
        bk_cmd_strs(b, 3, (const char *[]){"SADD", EV_ONLINE_SET, id});
        if (u->online_since_ms > 0) {
            snprintf(since, sizeof(since), "%lld", (long long)u->online_since_ms);
            bk_cmd_strs(b, 4, (const char *[]){"HSET", BK_ONLINE_SINCE_KEY, id, since});
        }
    }
    RB_FOREACH(gw, bk_gw_tree, &b->gws)
    {
        char key[256];
        snprintf(key, sizeof(key), "%s%s", BK_CONNS_PREFIX, gw->id);
        bk_cmd_strs(b, 3, (const char *[]){"SADD", BK_GATEWAYS_KEY, gw->id});
        /* The hash is rewritten from what we hold: a DEL, then one HSET
         * per connection (Redis may have come back empty, or with an older
         * copy), so a broker that starts later loads exactly these. */
        bk_cmd_strs(b, 2, (const char *[]){"DEL", key});
        struct bk_conn *c;
        RB_FOREACH(c, bk_conn_tree, &b->conns)
        {
            if (c->gw == gw && !(c->flags & BK_CONN_DETACHED))
                bk_conn_persist(b, c);
        }
    }
    bk_hooks_resync(b);
    bk_consumer_group_create(b);
    bk_cmd_strs(b, 1, (const char *[]){"EXEC"});
}
