/*
 * main.c - herald-broker: configuration, start-up, signals.
 *
 * SIGTERM/SIGINT: stop reading new entries, let the writes already queued
 * reach Redis, exit. Entries read but not acknowledged are replayed by the
 * next broker with the same consumer name. SIGHUP reopens the --log-file.
 */
#include "bk.h"
#include "bk_checkpoint.h"

#include "config.h"
#include "log.h"

#include <event2/event.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OPT(name, type, field, def, min, max, flags, help)                                         \
    {                                                                                              \
        name, type, offsetof(struct bk_config, field), def, min, max, flags, help                  \
    }

static const struct cfg_opt bk_opts[] = {
    OPT("redis-url", CFG_STR, redis_url, "redis://127.0.0.1:6379", 0, 0, 0,
        "Redis, redis://host:port[/db]"),
    OPT("db", CFG_STR, db_path, "herald.db", 0, 0, 0, "SQLite user database"),
    OPT("consumer", CFG_STR, consumer, "broker-1", 0, 0, 0,
        "consumer name in the group (a restarted broker reuses it to replay its pending entries)"),
    OPT("log-level", CFG_STR, log_level, "info", 0, 0, 0, "debug, info, warn or error"),
    OPT("log-file", CFG_STR, log_file, NULL, 0, 0, 0,
        "append logs to this file instead of stderr (SIGHUP reopens it)"),
    OPT("presence-grace-ms", CFG_INT, presence_grace_ms, "1500", 0, 600000, 0,
        "offline debounce: a reconnect within this announces nothing"),
    /* all: the seeds' rule, every connection hears every transition. related:
     * a connection hears its own user, its user's friends, the profiles it
     * watches and its watch-presence list: O(friends) per transition. */
    OPT("presence-scope", CFG_STR, presence_scope, "all", 0, 0, 0,
        "who hears a presence transition: all (every connection) or related (own user, "
        "friends, watched profiles, watch-presence list); give the gateways the same"),
    OPT("max-presence-watch", CFG_INT, max_presence_watch, "1000", 1, 100000, 0,
        "users one connection may keep in its watch-presence list"),
    OPT("presence-flush-ms", CFG_INT, presence_flush_ms, "0", 0, 60000, 0,
        "hold presence transitions this long and write them together; a user back to what "
        "was announced inside it writes nothing (0: at once)"),
    OPT("gateway-lease-ms", CFG_INT, gateway_lease_ms, "10000", 300, 600000, 0,
        "a gateway whose lease lapsed this long is dead: its users go offline"),
    /* The cap on herald:events is the gateways' (they refuse new client
     * events at it); the broker only trims what it has acknowledged. The
     * option stays so one HERALD_STREAM_MAXLEN can configure every process. */
    OPT("stream-maxlen", CFG_INT, stream_maxlen, "1000000", 10, 1000000000, 0,
        "cap on herald:events, enforced by the gateways (the broker trims only what it "
        "acknowledged)"),
    /* A gateway reads its stream continuously and trims what it has read;
     * 100k unread entries is minutes of backlog at full load, enough for a
     * Redis hiccup. Past it the gateway is given up (fenced, as for a
     * missed lease): nothing is ever trimmed unread. */
    OPT("gw-stream-maxlen", CFG_INT, gw_stream_maxlen, "100000", 100, 1000000000, 0,
        "unread entries a gateway may fall behind before it is given up (its clients "
        "reconnect)"),
    OPT("batch", CFG_INT, batch, "512", 1, 100000, 0, "entries per XREADGROUP"),
    /* A profile page and a few friends' cards; enough for any real page,
     * small enough that one connection cannot pin much broker memory. */
    OPT("max-rooms", CFG_INT, max_rooms, "64", 1, 4096, 0,
        "profiles one connection may watch at once"),
    OPT("chat-max-length", CFG_INT, chat_max_length, "1000", 1, 100000, 0,
        "characters per chat message or direct message"),
    /* Ten quick lines, then two per second: a person typing never notices,
     * a script flooding the room is cut to a trickle. */
    OPT("chat-burst", CFG_INT, chat_burst, "10", 1, 100000, 0,
        "chat messages and DMs a user may send at once"),
    OPT("chat-rate", CFG_REAL, chat_rate, "2", 0, 100000, 0,
        "chat messages and DMs per second a user regains (fractions allowed)"),
    OPT("dm-retention-days", CFG_INT, dm_retention_days, "30", 1, 36500, 0,
        "days a stored direct message is kept"),
    /* Only to measure what storing costs (bench/bench.mjs runs the DM
     * scenario both ways): a DM is then delivered but never stored, so the
     * history, unread counts and offline delivery lose it. */
    OPT("dm-store", CFG_BOOL, dm_store, "on", 0, 0, 0,
        "store direct messages (off: BENCHMARK COMPARISON ONLY, DMs are delivered but lost "
        "for history, unread counts and offline users)"),
    /* SQLite's own default; its checkpoint (copy and two fsyncs, 10-15 ms)
     * would otherwise run inside a commit on the event loop. */
    OPT("db-checkpoint-pages", CFG_INT, db_checkpoint_pages, "1000", 0, 1000000, 0,
        "WAL pages written before a background thread checkpoints them (0: SQLite checkpoints "
        "inside the broker's commits, on its event loop)"),
    OPT("chat-history-size", CFG_INT, chat_history_size, "100", 1, 10000, 0,
        "live chat messages kept for get-chat-history"),
    OPT("public-fields", CFG_STR, public_fields,
        "userID,userId,id,username,avatar,wins,losses,ratio", 0, 0, 0,
        "profile and stats keys everyone may see (the rest only the user and friends)"),
    /* A killed broker's standby takes over within about this long; a
     * shorter lock costs a renewal per second either way. */
    OPT("lock-ttl-ms", CFG_INT, lock_ttl_ms, "5000", 500, 600000, 0,
        "the active broker's lock; a standby takes over this long after it dies"),
    /* Socket.IO's own default (maxDisconnectionDuration): a reload, a
     * network blip or a gateway restart is well inside it. */
    OPT("recovery-window-ms", CFG_INT, recovery_window_ms, "120000", 0, 86400000, 0,
        "how long a closed session may come back with what it missed (0: off)"),
    /* Off by default: with it, any valid token creates a user, so the
     * token issuer alone decides who exists. */
    OPT("jit-users", CFG_BOOL, jit_users, "off", 0, 0, 0,
        "create a user from a valid token's claims when its id is unknown (the gateways "
        "need it too)"),
    /* A minute of hooks at 1,600 events a second; a backend's consumer
     * group (or the webhook sender) that falls further behind makes new
     * hooks be dropped and counted, never Redis grow without bound. */
    OPT("hooks-maxlen", CFG_INT, hooks_maxlen, "100000", 0, 1000000000, 0,
        "cap on herald:hooks, the backend's feed (0: no hooks)"),
    /* The webhook sender (bk_webhook.h, docs/API.md "Webhooks"). */
    OPT("webhook-url", CFG_STR, webhook_url, NULL, 0, 0, 0,
        "POST herald:hooks as signed JSON batches to this http://host[:port]/path (https: "
        "through a local TLS proxy); off when unset"),
    OPT("webhook-secret", CFG_STR, webhook_secret, NULL, 0, 0, CFG_SECRET,
        "HMAC-SHA256 key of X-Herald-Signature (required with --webhook-url)"),
    OPT("webhook-secret-file", CFG_STR, webhook_secret_file, NULL, 0, 0, 0,
        "file holding the webhook secret"),
    /* 100 small events are a body of about 15 KB: one request a second
     * carries a busy site's presence and chat. */
    OPT("webhook-batch", CFG_INT, webhook_batch, "100", 1, 1000, 0, "events per webhook POST"),
    OPT("webhook-flush-ms", CFG_INT, webhook_flush_ms, "1000", 0, 600000, 0,
        "a webhook batch is posted this long after its first event was read, if not full before"),
    /* Five minutes covers a deploy or a restart of the receiver; an event
     * older than that is news nobody acts on. */
    OPT("webhook-retry-s", CFG_INT, webhook_retry_s, "300", 1, 604800, 0,
        "a failed webhook batch is retried until its events are this old, then they are dropped"),
    OPT("webhook-timeout-ms", CFG_INT, webhook_timeout_ms, "10000", 100, 600000, 0,
        "one webhook attempt, connect to answer; longer is a failure"),
    OPT("admin-listen", CFG_STR, admin_listen, NULL, 0, 0, 0,
        "host:port for GET /metrics and /healthz (keep it private; off when unset)"),
};

static const char bk_usage[] =
    "usage: herald-broker [options]\n"
    "Owns presence, rooms and lookups; consumes herald:events and writes to each\n"
    "gateway's stream.";

/* SIGHUP: logrotate moved the log file; write to a fresh one. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    log_reopen_on_signal();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct bk *b = arg;
    (void)what;
    log_info("signal %d: stopping", (int)sig);
    event_base_loopexit(b->base, NULL);
}

int main(int argc, char **argv)
{
    static struct bk b;
    int rc = 1;
    /* No secret is configured here, but the broker holds what users wrote
     * (direct messages, private profile fields) in memory: cfg_start()
     * keeps it out of core dumps too. */
    int done = cfg_start(bk_opts, sizeof(bk_opts) / sizeof(bk_opts[0]), &b.cfg, argc, argv,
                         bk_usage, &b.cfg.log_level, &b.cfg.log_file);
    if (done >= 0)
        return done;
    char ident[160];
    snprintf(ident, sizeof(ident), "broker %s", b.cfg.consumer);
    log_set_ident(ident);
    cfg_log(bk_opts, sizeof(bk_opts) / sizeof(bk_opts[0]), &b.cfg);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    if (bk_store_open(&b.store, b.cfg.db_path, false) != 0) {
        log_error("database %s: %s (create it with: herald-admin --db %s init)", b.cfg.db_path,
                  b.store.err, b.cfg.db_path);
        bk_store_close(&b.store);
        return 1;
    }
    if (b.cfg.db_checkpoint_pages > 0) {
        struct bk_checkpoint_opts ck = {
            .wal_pages = b.cfg.db_checkpoint_pages,
            .interval_ms = BK_CHECKPOINT_INTERVAL_MS,
            .restart_pages = b.cfg.db_checkpoint_pages > BK_CHECKPOINT_RESTART_PAGES / 4
                                 ? 4 * b.cfg.db_checkpoint_pages
                                 : BK_CHECKPOINT_RESTART_PAGES,
        };
        /* Not fatal: SQLite then checkpoints in the commits, as it does
         * by default (slower, not wrong). */
        if (bk_store_checkpoint_start(&b.store, &ck) != 0)
            log_warn("WAL checkpoints stay on the event loop: %s", b.store.err);
    }
    if (!b.cfg.dm_store)
        log_warn("dm-store is off: direct messages are delivered but NOT stored (benchmarks "
                 "only)");
    b.base = event_base_new();
    struct event *sigterm = evsignal_new(b.base, SIGTERM, on_signal, &b);
    struct event *sigint = evsignal_new(b.base, SIGINT, on_signal, &b);
    struct event *sighup = evsignal_new(b.base, SIGHUP, on_sighup, NULL);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_add(sighup, NULL);
    if (bk_start(&b) != 0)
        goto cleanup;
    log_info("running");
    event_base_dispatch(b.base);
    log_info("stopped: %llu entries applied, %llu presence transitions, %llu gateways reaped",
             (unsigned long long)b.counters.entries, (unsigned long long)b.counters.transitions,
             (unsigned long long)b.counters.reaped);
    rc = b.lead.lost_lock ? 3 : 0;
cleanup:
    bk_stop(&b);
    bk_store_close(&b.store);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    event_base_free(b.base);
    return rc;
}
