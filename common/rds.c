/*
 * rds.c - see rds.h.
 *
 * Reconnection: the first retry comes after 100 ms, doubling up to 1 s, each
 * delay with +-25 % jitter so that many gateways losing the same Redis do
 * not reconnect in lock-step. The cap is short on purpose: an attempt at a
 * dead Redis costs nothing, and after a Redis restart the active broker
 * must be back (and renew its lock) well before a standby would take over
 * (bk_lead.c), and the gateways back before clients give up.
 */
#include "rds.h"

#include "log.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define RDS_BACKOFF_MIN_MS 100
#define RDS_BACKOFF_MAX_MS 1000

int rds_parse_url(const char *url, char *host, size_t host_size, int *port, int *db)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    const char *host_end = colon ? colon : (slash ? slash : p + strlen(p));
    size_t hl = (size_t)(host_end - p);
    if (hl == 0 || hl + 1 > host_size)
        return -1;
    memcpy(host, p, hl);
    host[hl] = '\0';
    *port = 6379;
    *db = 0;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || v <= 0 || v > 65535 || (*end && *end != '/'))
            return -1;
        *port = (int)v;
        slash = *end == '/' ? end : NULL;
    }
    if (slash && slash[1]) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (*end || v < 0 || v > 1000)
            return -1;
        *db = (int)v;
    }
    return 0;
}

static void rds_connect(struct rds *r);

static void schedule_retry(struct rds *r)
{
    if (r->closing)
        return;
    int base = r->backoff_ms ? r->backoff_ms : RDS_BACKOFF_MIN_MS;
    int jitter = base / 4 > 0 ? (rand() % (base / 2 + 1)) - base / 4 : 0;
    struct timeval tv = {(base + jitter) / 1000, ((base + jitter) % 1000) * 1000};
    r->backoff_ms = base * 2 > RDS_BACKOFF_MAX_MS ? RDS_BACKOFF_MAX_MS : base * 2;
    evtimer_add(r->retry, &tv);
}

static void set_up(struct rds *r, bool up)
{
    if (r->up == up)
        return;
    r->up = up;
    if (up) {
        r->backoff_ms = 0;
        log_info("redis %s: connected to %s:%d/%d", r->name, r->host, r->port, r->db);
    } else {
        log_warn("redis %s: connection lost, reconnecting", r->name);
    }
    if (r->on_state)
        r->on_state(r, up, r->arg);
}

static void on_select(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct rds *r = priv;
    redisReply *rep = reply;
    if (!rep)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        log_error("redis %s: SELECT %d failed: %s", r->name, r->db, rep->str);
        redisAsyncDisconnect(r->ac);
        return;
    }
    set_up(r, true);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rds *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees ac after this callback. */
        log_warn_rl(1, "redis %s: cannot connect to %s:%d: %s", r->name, r->host, r->port,
                    ac->errstr);
        r->ac = NULL;
        schedule_retry(r);
        return;
    }
    if (r->db != 0)
        redisAsyncCommand(r->ac, on_select, r, "SELECT %d", r->db);
    else
        set_up(r, true);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rds *r = ac->data;
    (void)status;
    r->ac = NULL;
    if (r->closing)
        return;
    set_up(r, false);
    schedule_retry(r);
}

static void rds_connect(struct rds *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        schedule_retry(r);
        return;
    }
    if (ac->err) {
        log_warn_rl(1, "redis %s: %s", r->name, ac->errstr);
        redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rds_connect(arg);
}

int rds_init(struct rds *r, struct event_base *base, const char *url, const char *name,
             rds_state_fn on_state, void *arg)
{
    memset(r, 0, sizeof(*r));
    if (rds_parse_url(url, r->host, sizeof(r->host), &r->port, &r->db) != 0) {
        log_error("bad redis url \"%s\" (want redis://host:port[/db])", url);
        return -1;
    }
    r->base = base;
    r->name = name;
    r->on_state = on_state;
    r->arg = arg;
    r->retry = evtimer_new(base, on_retry, r);
    if (!r->retry)
        return -1;
    rds_connect(r);
    return 0;
}

void rds_free(struct rds *r)
{
    r->closing = true;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    if (r->retry) {
        event_free(r->retry);
        r->retry = NULL;
    }
}

void rds_drain(struct rds *r, int timeout_ms)
{
    if (!r->ac)
        return;
    r->closing = true;
    if (!(r->ac->c.flags & REDIS_CONNECTED)) {
        /* Still connecting: nothing was sent. hiredis would free the
         * context at once without calling on_disconnect (that is only for
         * connected ones), leaving r->ac dangling for rds_free(). */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
        return;
    }
    /* redisAsyncDisconnect waits for pending replies, then calls
     * on_disconnect, which clears r->ac. */
    redisAsyncDisconnect(r->ac);
    struct timeval start, now;
    gettimeofday(&start, NULL);
    while (r->ac) {
        event_base_loop(r->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        gettimeofday(&now, NULL);
        long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000;
        if (ms >= timeout_ms)
            break;
        if (r->ac)
            usleep(1000);
    }
}

int rds_cmd_argv(struct rds *r, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                 const size_t *argvlen)
{
    if (!r->ac || !r->up)
        return -1;
    return redisAsyncCommandArgv(r->ac, fn, priv, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
}

int rds_cmd(struct rds *r, redisCallbackFn *fn, void *priv, const char *fmt, ...)
{
    if (!r->ac || !r->up)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(r->ac, fn, priv, fmt, ap);
    va_end(ap);
    /* On a live connection hiredis refuses only what it cannot format (a
     * conversion it does not know, such as %c): our bug, not an outage, and
     * it once hid a lost write for good. Say so, loudly. */
    if (rc != REDIS_OK && !(r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
        log_error("redis %s: hiredis refused the command \"%s\" (bad format?)", r->name, fmt);
    return rc == REDIS_OK ? 0 : -1;
}

redisContext *rds_connect_sync(const char *url, char *err, size_t err_len)
{
    char host[256];
    int port, db;
    if (rds_parse_url(url, host, sizeof(host), &port, &db) != 0) {
        snprintf(err, err_len, "bad redis url \"%s\"", url);
        return NULL;
    }
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        snprintf(err, err_len, "cannot connect to redis at %s:%d: %s", host, port,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    if (db != 0) {
        redisReply *rep = redisCommand(c, "SELECT %d", db);
        int bad = !rep || rep->type == REDIS_REPLY_ERROR;
        freeReplyObject(rep);
        if (bad) {
            snprintf(err, err_len, "SELECT %d failed", db);
            redisFree(c);
            return NULL;
        }
    }
    return c;
}
