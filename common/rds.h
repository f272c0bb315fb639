/*
 * rds.h - one asynchronous Redis connection on a libevent loop, that comes
 * back by itself.
 *
 * Wraps a hiredis redisAsyncContext with what every Herald process needs:
 * parsing HERALD_REDIS_URL, SELECT of the database, reconnecting with
 * exponential backoff and jitter after a failure, and a callback on each
 * (re)connect so the owner can re-register what Redis may have lost.
 * Commands are pipelined by hiredis: everything issued during one loop
 * iteration leaves in one write.
 *
 * Replies are borrowed inside callbacks (hiredis frees them afterwards); a
 * callback gets reply == NULL when the connection dropped before the answer.
 */
#ifndef HERALD_RDS_H
#define HERALD_RDS_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>

struct event_base;
struct event;
struct rds;

typedef void (*rds_state_fn)(struct rds *r, bool up, void *arg);

struct rds {
    redisAsyncContext *ac;   /* owned by hiredis once connected; NULL while down */
    struct event_base *base; /* borrowed */
    struct event *retry;     /* owned: reconnect timer */
    char host[256];
    int port;
    int db;
    const char *name; /* borrowed, for logs */
    bool up;          /* connected and SELECTed */
    bool closing;     /* rds_free() in progress: no reconnect */
    int backoff_ms;
    rds_state_fn on_state; /* called on every up/down transition */
    void *arg;
};

/* Parses "redis://host:port[/db]" (also "host:port"). Returns 0 or -1. */
int rds_parse_url(const char *url, char *host, size_t host_size, int *port, int *db);

/*
 * Starts connecting (asynchronously). on_state(r, true, arg) fires once the
 * connection is usable, on_state(r, false, arg) when it drops (a reconnect
 * is then already scheduled). Returns 0, or -1 on a bad URL.
 */
int rds_init(struct rds *r, struct event_base *base, const char *url, const char *name,
             rds_state_fn on_state, void *arg);

/* Disconnects (pending callbacks get reply NULL) and frees the timer.
 * Safe on a zeroed struct. */
void rds_free(struct rds *r);

/* Sends what is queued, waits up to timeout_ms for the replies (running the
 * event loop), then disconnects. For clean exits. */
void rds_drain(struct rds *r, int timeout_ms);

/* Issues a command; fn may be NULL. Returns 0, or -1 when not connected
 * (fn is then not called). */
int rds_cmd_argv(struct rds *r, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                 const size_t *argvlen);
/* The same with a hiredis format string (%s, %d, %ld, %b...; hiredis
 * knows no %c). Returns 0, or -1 when not connected or when hiredis
 * refuses the format (logged as an error: that is a bug of ours); fn is
 * then not called. */
int rds_cmd(struct rds *r, redisCallbackFn *fn, void *priv, const char *fmt, ...);

/* Opens a blocking connection for start-up work (state loading) and tools.
 * Returns NULL on failure with a message in err. Free with redisFree(). */
redisContext *rds_connect_sync(const char *url, char *err, size_t err_len);

#endif
