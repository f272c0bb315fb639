/*
 * bk_webhook.h - the webhook sender: herald:hooks POSTed to the backend's
 * URL as signed JSON batches (docs/API.md "Webhooks").
 *
 * Why it exists: a backend that cannot read a Redis stream (a serverless
 * function, a service in another network) still hears of presence
 * transitions, messages and account deletions. Why it looks like this:
 * the queue is the stream itself, read as the consumer group
 * herald-webhook, so the broker holds at most one batch in memory however
 * slow, failing or hung the endpoint is, and delivery to clients never
 * waits for it (one request in flight, all of it on the broker's libevent
 * loop, its own Redis connection for the blocking XREADGROUP). A batch is
 * acknowledged (XACK) only after a 2xx answer; anything else is retried
 * with exponential backoff until its events are older than webhook_retry_s,
 * then they are dropped and counted. Only the active broker sends; when it
 * starts leading it first claims the group's pending entries (a killed
 * broker's batch in flight is sent again): delivery is at least once, in
 * stream order, and receivers dedupe by the event id.
 *
 * The pure parts (URL parser, body encoding, signature, backoff) are
 * exported for tests/unit/test_webhook.c and tests/fuzz/fuzz_webhook.c.
 */
#ifndef HERALD_BK_WEBHOOK_H
#define HERALD_BK_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bk;

#define BK_WEBHOOK_GROUP "herald-webhook"

/* A URL longer than this is a mistake, not an endpoint (and every byte of
 * it goes into each request line). */
#define BK_WEBHOOK_URL_MAX 2048
/* Most events a batch may hold (--webhook-batch's upper bound). */
#define BK_WEBHOOK_BATCH_MAX 1000
/* Backoff between attempts: starts here, doubles, capped (then ±25 %). */
#define BK_WEBHOOK_BACKOFF_MIN_MS 500
#define BK_WEBHOOK_BACKOFF_MAX_MS 30000
/* "sha256=" + 64 hex digits + NUL. */
#define BK_WEBHOOK_SIG_SIZE 72

/* A parsed http://host[:port]/path[?query]. */
struct bk_webhook_url {
    char host[256];                    /* without brackets for an IPv6 literal */
    bool ipv6;                         /* host was [..]: brackets needed in Host */
    int port;                          /* 1..65535, 80 when absent */
    char path[BK_WEBHOOK_URL_MAX + 1]; /* "/..." with the query, "/" when absent */
};

/*
 * Parses url (NUL-terminated). Accepts only "http://host[:port][/path]
 * [?query]": no userinfo, no fragment, no byte outside printable ASCII
 * (so no CR, LF, space or control byte can reach the request line), at
 * most BK_WEBHOOK_URL_MAX bytes. Returns 0 with out filled, or -1 with
 * *why (static text) saying what is wrong; out is then undefined.
 */
int bk_webhook_parse_url(const char *url, struct bk_webhook_url *out, const char **why);

/*
 * One event as the body carries it: {"id":"<id>","t":"<t>","ts":<ts>,"d":<d>}.
 * d (dlen bytes) is copied as is: the caller checked it is a JSON object;
 * id and t are escaped as JSON strings. Returns a NUL-terminated buffer
 * (caller frees with free()) with its length in *len, or NULL (out of
 * memory).
 */
char *bk_webhook_encode_event(const char *id, const char *t, int64_t ts, const char *d, size_t dlen,
                              size_t *len);

/*
 * The body {"events":[e0,e1,...]} from n encoded events (ev[i], evlen[i],
 * borrowed). Returns a buffer the caller frees with free(), its length in
 * *len, or NULL (out of memory).
 */
char *bk_webhook_encode_body(char *const *ev, const size_t *evlen, size_t n, size_t *len);

/* out = "sha256=" + lowercase hex HMAC-SHA256(key, body). */
void bk_webhook_sign(const void *key, size_t key_len, const void *body, size_t body_len,
                     char out[BK_WEBHOOK_SIG_SIZE]);

/* The wait before retry number attempt (1: after the first failure):
 * min(500 ms << (attempt - 1), 30 s), scaled by 0.75 + 0.5 * rnd / 2^32
 * (±25 % jitter, so brokers restarted together do not retry in step). */
long bk_webhook_backoff_ms(int attempt, uint32_t rnd);

/* ---- the sender (the active broker only) ---------------------------------- */

/*
 * Called by bk_lead.c when this broker starts leading. With a URL: starts
 * the sender (own Redis connection, group created, pending entries
 * claimed, then reading and posting). Without: destroys the group
 * herald-webhook, so one left from an earlier configuration cannot hold
 * herald:hooks. The URL was checked at start-up (bk_webhook_check).
 * Returns 0, or -1 (out of memory) with a log line.
 */
int bk_webhook_start(struct bk *b);

/* Called by bk_lead.c on its blocking connection when it takes the lock:
 * without a URL, XGROUP DESTROY herald:hooks herald-webhook. */
struct redisContext;
void bk_webhook_takeover(struct bk *b, struct redisContext *rc);

/* Cancels the request in flight and frees everything: the unacknowledged
 * batch stays pending in Redis for the next active broker. Safe when never
 * started. */
void bk_webhook_stop(struct bk *b);

/* Start-up check of the options (main.c): a URL must parse and come with a
 * secret. Reads --webhook-secret-file into b->webhook's own copy. Returns
 * 0, or -1 after a log line saying what to fix. */
int bk_webhook_check(struct bk *b);

#endif
