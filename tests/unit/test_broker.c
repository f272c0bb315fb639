/*
 * test_broker.c - the broker's logic, driven without Redis.
 *
 * Each group builds a struct bk the way main.c does, but with a recording
 * command sink (every command the broker would send to Redis becomes one
 * line of text, its arguments joined by spaces, kept with its reply
 * callback) and a clock the test moves by hand. Entries go in through
 * bk_apply() exactly as the consumer would hand them over, parsed by
 * ev_entry_parse() from field lists. Users live in a temporary SQLite file
 * made with the store API: alice (avatar /a.png) and bob are friends, carol
 * knows nobody.
 *
 * What a group checks is what Redis and the gateways would see: the
 * commands (SADD/SREM online_users, HSET/HDEL of connections and rooms) and
 * the entries XADDed to herald:gw:<id>, matched as text.
 */
#include "bk.h"
#include "bk_load.h"
#include "bk_presence.h"
#include "check.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- the recording sink ---------------------------------------------------- */

struct rec_cmd {
    char *text;          /* owned: argv joined by spaces */
    redisCallbackFn *fn; /* the reply callback, NULL once called */
    void *priv;
};

struct recorder {
    struct rec_cmd *v; /* owned */
    size_t n, cap;
};

static int rec_sink(void *arg, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                    const size_t *argvlen)
{
    struct recorder *r = arg;
    size_t len = 0;
    for (int i = 0; i < argc; i++)
        len += argvlen[i] + 1;
    char *text = malloc(len + 1), *p = text;
    if (!text)
        return -1;
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], argvlen[i]);
        p += argvlen[i];
        *p++ = i + 1 < argc ? ' ' : '\0';
    }
    if (argc == 0)
        *p = '\0';
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct rec_cmd *v = realloc(r->v, cap * sizeof(*v));
        if (!v) {
            free(text);
            return -1;
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (struct rec_cmd){text, fn, priv};
    return 0;
}

/* Commands recorded since mark that contain every one of the strings. */
static int count_since(const struct recorder *r, size_t mark, const char *a, const char *b)
{
    int n = 0;
    for (size_t i = mark; i < r->n; i++)
        if (strstr(r->v[i].text, a) && (!b || strstr(r->v[i].text, b)))
            n++;
    return n;
}

/* The first command since mark containing a (and b), or NULL. */
static const char *find_since(const struct recorder *r, size_t mark, const char *a, const char *b)
{
    for (size_t i = mark; i < r->n; i++)
        if (strstr(r->v[i].text, a) && (!b || strstr(r->v[i].text, b)))
            return r->v[i].text;
    return NULL;
}

/* Answers every callback not answered yet with NULL, as hiredis does when
 * the connection goes (the callbacks free what they own). */
static void rec_drop_replies(struct recorder *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].fn) {
            redisCallbackFn *fn = r->v[i].fn;
            r->v[i].fn = NULL;
            fn(NULL, NULL, r->v[i].priv);
        }
}

static void rec_free(struct recorder *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].text);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

/* Prints what was recorded since mark (for a failing check). */
static void rec_dump(const struct recorder *r, size_t mark)
{
    for (size_t i = mark; i < r->n; i++)
        fprintf(stderr, "    [%zu] %s\n", i, r->v[i].text);
}

/* ---- the fixture ------------------------------------------------------------- */

struct fixture {
    struct bk b;
    struct recorder rec;
    int64_t now; /* the broker's clock, ms */
    char dir[64], db[96];
    int64_t alice, bob, carol;
};

static struct fixture F;

static int64_t fake_now(void *arg)
{
    return *(int64_t *)arg;
}

/* A fresh broker: grace period in ms, at most max_rooms rooms a connection. */
/* The presence options the next setup() uses (then reset). */
static const char *setup_scope;
static long setup_flush_ms;

static void setup(long grace_ms, long max_rooms)
{
    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "/tmp/herald-test-broker-XXXXXX");
    CHECK(mkdtemp(F.dir) != NULL);
    snprintf(F.db, sizeof(F.db), "%s/herald.db", F.dir);
    struct bk *b = &F.b;
    CHECK_INT(bk_store_open(&b->store, F.db, true), 0);
    F.alice = bk_store_user_add(&b->store, "alice", "/a.png");
    F.bob = bk_store_user_add(&b->store, "bob", NULL);
    F.carol = bk_store_user_add(&b->store, "carol", NULL);
    CHECK_INT(bk_store_friend_add(&b->store, "alice", "bob"), 0);
    /* The ids the tables below spell out. */
    CHECK(F.alice == 1 && F.bob == 2 && F.carol == 3);
    b->cfg.consumer = "broker-test";
    b->cfg.presence_grace_ms = grace_ms;
    b->cfg.gateway_lease_ms = 10000;
    b->cfg.gw_stream_maxlen = 100000;
    b->cfg.max_rooms = max_rooms;
    b->cfg.chat_max_length = 50;
    b->cfg.chat_burst = 3;
    b->cfg.chat_rate = 0.5;
    b->cfg.chat_history_size = 100;
    b->cfg.dm_retention_days = 30;
    b->cfg.dm_store = 1;
    b->cfg.hooks_maxlen = 1000;
    b->cfg.public_fields = "userID,userId,id,username,avatar,wins,losses,ratio";
    b->cfg.presence_scope = setup_scope ? setup_scope : "all";
    b->cfg.presence_flush_ms = setup_flush_ms;
    b->cfg.max_presence_watch = 3;
    setup_scope = NULL;
    setup_flush_ms = 0;
    b->sink = (struct bk_sink){rec_sink, &F.rec};
    F.now = 1000000;
    b->clock = (struct bk_clock){fake_now, &F.now};
    CHECK_INT(bk_init(b), 0);
}

static void teardown(void)
{
    rec_drop_replies(&F.rec);
    bk_stop(&F.b);
    bk_store_close(&F.b.store);
    rec_free(&F.rec);
    char side[128];
    unlink(F.db);
    snprintf(side, sizeof(side), "%s-wal", F.db);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", F.db);
    unlink(side);
    rmdir(F.dir);
}

/* Applies one entry given as "name value name value ..." (values without
 * spaces; JSON as the gateways write it). */
static void apply(const char *fields)
{
    char buf[1024];
    const char *argv[2 * EV_MAX_FIELDS];
    size_t lens[2 * EV_MAX_FIELDS], n = 0;
    snprintf(buf, sizeof(buf), "%s", fields);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok && n < 2 * EV_MAX_FIELDS;
         tok = strtok_r(NULL, " ", &save)) {
        argv[n] = tok;
        lens[n++] = strlen(tok);
    }
    struct ev_entry e;
    CHECK_INT(ev_entry_parse(&e, argv, lens, n), 0);
    bk_apply(&F.b, &e);
}

static void applyf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    apply(buf);
}

/* Moves the clock and runs the tick's presence part. */
static void wait_ms(int64_t ms)
{
    F.now += ms;
    bk_presence_tick(&F.b, F.now);
}

static size_t nconns(void)
{
    size_t n = 0;
    struct bk_conn *c;
    RB_FOREACH(c, bk_conn_tree, &F.b.conns)
    n++;
    return n;
}

/* The user id of a name in the steps below: alice 1, bob 2, carol 3,
 * guest 0, ghost 99 (no such user). */
static int64_t uid(const char *name)
{
    static const struct {
        const char *name;
        int64_t id;
    } ids[] = {{"alice", 1}, {"bob", 2}, {"carol", 3}, {"guest", 0}, {"ghost", 99}};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (strcmp(name, ids[i].name) == 0)
            return ids[i].id;
    CHECK(!"unknown name in a step");
    return 0;
}

/*
 * One step of a scenario: "open GW CONN USER [ws|sio]", "close GW CONN",
 * "hello GW", "wait MS".
 */
static void step(const char *s)
{
    char gw[16], user[16], kind[8] = "ws";
    unsigned long long conn;
    long long ms;
    if (sscanf(s, "open %15s %llu %15s %7s", gw, &conn, user, kind) >= 3)
        applyf("t open gw %s c %llu u %lld k %s", gw, conn, (long long)uid(user), kind);
    else if (sscanf(s, "close %15s %llu", gw, &conn) == 2)
        applyf("t close gw %s c %llu", gw, conn);
    else if (sscanf(s, "hello %15s", gw) == 1)
        applyf("t hello gw %s", gw);
    else if (sscanf(s, "wait %lld", &ms) == 1)
        wait_ms(ms);
    else
        CHECK(!"bad step");
}

/* ---- presence: transitions, grace, tabs ---------------------------------------- */

#define MAX_STEPS 8

static const struct presence_case {
    const char *name;
    long grace_ms;
    const char *steps[MAX_STEPS];
    size_t online;  /* users online at the end */
    size_t conns;   /* connections known at the end */
    int sadd, srem; /* SADD / SREM online_users written */
    int up, down;   /* status online / offline events seen by gateway g1 */
} presence_cases[] = {
    {"first tab: online, announced once", 0, {"open g1 1 alice"}, 1, 1, 1, 0, 1, 0},
    {"two tabs: one online event", 0, {"open g1 1 alice", "open g1 2 alice sio"}, 1, 2, 1, 0, 1, 0},
    {"two tabs on two gateways: one online event",
     0,
     {"open g1 1 alice", "open g2 1 alice"},
     1,
     2,
     1,
     0,
     1,
     0},
    {"one of two tabs closes: still online",
     0,
     {"open g1 1 alice", "open g1 2 alice", "close g1 1"},
     1,
     1,
     1,
     0,
     1,
     0},
    {"last tab closes, no grace: offline at once",
     0,
     {"open g1 1 alice", "open g1 2 alice", "close g1 1", "close g1 2"},
     0,
     0,
     1,
     1,
     1,
     1},
    {"grace: offline held for the whole period",
     1500,
     {"open g1 1 alice", "close g1 1", "wait 1499"},
     1,
     0,
     1,
     0,
     1,
     0},
    {"grace: offline when it ends",
     1500,
     {"open g1 1 alice", "close g1 1", "wait 1499", "wait 1"},
     0,
     0,
     1,
     1,
     1,
     1},
    {"grace: a reconnect inside it announces nothing",
     1500,
     {"open g1 1 alice", "close g1 1", "wait 1000", "open g1 2 alice", "wait 5000"},
     1,
     1,
     1,
     0,
     1,
     0},
    {"grace: a reconnect on another gateway too",
     1500,
     {"open g1 1 alice", "close g1 1", "open g2 7 alice sio", "wait 5000"},
     1,
     1,
     1,
     0,
     1,
     0},
    {"grace: leaving again after the reconnect starts a new period",
     1500,
     {"open g1 1 alice", "close g1 1", "wait 1000", "open g1 2 alice", "close g1 2", "wait 1499"},
     1,
     0,
     1,
     0,
     1,
     0},
    {"guests never make anybody online",
     0,
     {"open g1 1 guest sio", "open g1 2 guest sio", "close g1 1"},
     0,
     1,
     0,
     0,
     0,
     0},
    {"two users: two transitions", 0, {"open g1 1 alice", "open g1 2 bob"}, 2, 2, 2, 0, 2, 0},
    {"hello: a restarted gateway's users go offline",
     0,
     {"open g1 1 alice", "open g1 2 bob", "hello g1"},
     0,
     0,
     2,
     2,
     2,
     2},
    {"hello: a user with a tab elsewhere stays online",
     0,
     {"open g1 1 alice", "open g2 2 alice", "hello g1"},
     1,
     1,
     1,
     0,
     1,
     0},
    {"a close of an unknown connection does nothing",
     0,
     {"open g1 1 alice", "close g1 9"},
     1,
     1,
     1,
     0,
     1,
     0},
};

static void test_presence_table(void)
{
    for (size_t i = 0; i < sizeof(presence_cases) / sizeof(presence_cases[0]); i++) {
        const struct presence_case *pc = &presence_cases[i];
        setup(pc->grace_ms, 4);
        int failed = check_failed;
        for (size_t s = 0; s < MAX_STEPS && pc->steps[s]; s++)
            step(pc->steps[s]);
        CHECK_INT(F.b.nonline, pc->online);
        CHECK_INT(nconns(), pc->conns);
        CHECK_INT(count_since(&F.rec, 0, "SADD online_users ", NULL), pc->sadd);
        CHECK_INT(count_since(&F.rec, 0, "SREM online_users ", NULL), pc->srem);
        CHECK_INT(count_since(&F.rec, 0, "XADD herald:gw:g1 ", "\"status\":\"online\""), pc->up);
        CHECK_INT(count_since(&F.rec, 0, "XADD herald:gw:g1 ", "\"status\":\"offline\""), pc->down);
        CHECK_INT(F.b.counters.transitions, pc->sadd + pc->srem);
        if (check_failed != failed) {
            fprintf(stderr, "  in presence case \"%s\"; recorded:\n", pc->name);
            rec_dump(&F.rec, 0);
        }
        teardown();
    }
}

/* The exact commands of one transition, in order: the connection, the set,
 * the event to every gateway. */
static void test_presence_commands(void)
{
    setup(0, 4);
    step("open g2 7 bob");
    step("open g1 9 guest sio"); /* g1 registered before the transition */
    size_t mark = F.rec.n;
    step("open g1 1 alice");
    CHECK_INT(F.rec.n - mark, 6);
    char want[256];
    if (F.rec.n - mark == 6) {
        CHECK_STR(F.rec.v[mark].text, "HSET herald:conns:g1 1 1:w:0");
        CHECK_STR(F.rec.v[mark + 1].text, "SADD online_users 1");
        snprintf(want, sizeof(want), "HSET herald:online_since 1 %lld", (long long)F.now);
        CHECK_STR(F.rec.v[mark + 2].text, want);
        /* Gateways in id order: g1, g2. */
        CHECK_STR(F.rec.v[mark + 3].text, "XADD herald:gw:g1 * t status u 1 s 1 e status d "
                                          "{\"userId\":1,\"username\":\"alice\",\"status\":"
                                          "\"online\"}");
        CHECK(strncmp(F.rec.v[mark + 4].text, "XADD herald:gw:g2 ", 18) == 0);
        /* The backend's feed (bk_feed.h) last. */
        snprintf(want, sizeof(want),
                 "XADD herald:hooks * t user-online d {\"userId\":1,\"username\":\"alice\"} "
                 "ts %lld",
                 (long long)F.now);
        CHECK_STR(F.rec.v[mark + 5].text, want);
    }
    int64_t since = F.now;
    F.now += 5000;
    mark = F.rec.n;
    step("close g1 1");
    CHECK_STR(F.rec.v[mark].text, "HDEL herald:conns:g1 1");
    CHECK_STR(F.rec.v[mark + 1].text, "SREM online_users 1");
    CHECK_STR(F.rec.v[mark + 2].text, "HDEL herald:online_since 1");
    CHECK(strstr(F.rec.v[mark + 3].text, "\"status\":\"offline\"") != NULL);
    snprintf(want, sizeof(want),
             "XADD herald:hooks * t user-offline d {\"userId\":1,\"username\":\"alice\","
             "\"onlineSince\":%lld} ts %lld",
             (long long)since, (long long)F.now);
    CHECK_STR(F.rec.v[F.rec.n - 1].text, want);
    /* A gateway registers itself once, with its first entry. */
    CHECK_INT(count_since(&F.rec, 0, "SADD herald:gateways g1", NULL), 1);
    CHECK_INT(count_since(&F.rec, 0, "SADD herald:gateways g2", NULL), 1);
    /* A close from a gateway we do not know does not register it. */
    step("close g9 1");
    CHECK(bk_gw_find(&F.b, "g9", 2) == NULL);
    CHECK_INT(count_since(&F.rec, 0, "herald:gateways g9", NULL), 0);
    teardown();
}

/* ---- replay -------------------------------------------------------------------- */

/* Entries that each must change nothing when applied a second time. */
static const char *const replay_entries[] = {
    "t open gw g1 c 1 u 1 k ws",
    "t open gw g1 c 2 u 2 k sio",
    "t open gw g2 c 3 u 1 k ws",
    "t close gw g1 c 1",
    "t open gw g1 c 4 u 0 k sio",
    "t close gw g1 c 2",
    "t hello gw g2",
    "t close gw g2 c 3",
};

static void test_replay(void)
{
    setup(0, 4);
    for (size_t i = 0; i < sizeof(replay_entries) / sizeof(replay_entries[0]); i++) {
        const char *e = replay_entries[i];
        apply(e);
        size_t mark = F.rec.n, online = F.b.nonline, conns = nconns();
        apply(e);
        /* A hello is answered every time (welcome and the online list),
         * and changes nothing. */
        if (strncmp(e, "t hello ", 8) == 0 && F.rec.n == mark + 2 &&
            strstr(F.rec.v[mark].text, " t welcome") &&
            strstr(F.rec.v[mark + 1].text, " t online s 3 c "))
            mark += 2;
        if (F.rec.n != mark) {
            fprintf(stderr, "  replaying \"%s\" wrote:\n", e);
            rec_dump(&F.rec, mark);
        }
        CHECK_INT(F.rec.n, mark);
        CHECK_INT(F.b.nonline, online);
        CHECK_INT(nconns(), conns);
    }
    teardown();

    /* A whole sequence with every entry doubled writes exactly what the
     * sequence written once does, in the same order. */
    static const char *const seq[] = {
        "open g1 1 alice", "open g1 2 alice", "close g1 1", "open g2 3 bob", "close g1 2",
    };
    struct recorder once;
    setup(0, 4);
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
        step(seq[i]);
    once = F.rec;
    F.rec = (struct recorder){0};
    teardown();
    setup(0, 4);
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        step(seq[i]);
        step(seq[i]);
    }
    CHECK_INT(F.rec.n, once.n);
    for (size_t i = 0; i < once.n && i < F.rec.n; i++)
        CHECK_STR(F.rec.v[i].text, once.v[i].text);
    teardown();
    rec_free(&once);
}

/* ---- leases ------------------------------------------------------------------------ */

/* Answers the GET of gateway gw's lease (recorded since mark) with value
 * (NULL: no key). */
static void answer_lease_value(size_t mark, const char *gw, const char *value)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "GET herald:gw:%s:lease", gw);
    for (size_t i = mark; i < F.rec.n; i++)
        if (strcmp(F.rec.v[i].text, cmd) == 0 && F.rec.v[i].fn) {
            redisReply r = {.type = value ? REDIS_REPLY_STRING : REDIS_REPLY_NIL,
                            .str = (char *)value,
                            .len = value ? strlen(value) : 0};
            redisCallbackFn *fn = F.rec.v[i].fn;
            F.rec.v[i].fn = NULL;
            fn(NULL, &r, F.rec.v[i].priv);
            return;
        }
    CHECK(!"no lease check recorded");
}

/* n 1: the gateway's lease is there (its pid); 0: gone. */
static void answer_lease(size_t mark, const char *gw, long long n)
{
    answer_lease_value(mark, gw, n ? "4242" : NULL);
}

static void test_reap(void)
{
    setup(1500, 4);
    step("open g1 1 alice");
    step("open g1 2 bob");
    step("open g2 3 bob");
    /* A lease gone but a gateway seen recently: not yet (Redis may have
     * lost the key; the gateway renews it within 3/5 of the lease). */
    size_t mark = F.rec.n;
    bk_presence_check_leases(&F.b);
    CHECK_INT(count_since(&F.rec, mark, "GET herald:gw:", NULL), 2);
    answer_lease(mark, "g1", 0);
    CHECK(bk_gw_find(&F.b, "g1", 2) != NULL);
    CHECK_INT(F.b.counters.reaped, 0);

    /* Silent for 3/5 of the lease with the key gone: reaped. */
    F.now += EV_LEASE_TTL(F.b.cfg.gateway_lease_ms);
    mark = F.rec.n;
    bk_presence_check_leases(&F.b);
    answer_lease(mark, "g2", 1); /* g2's lease is there: kept */
    answer_lease(mark, "g1", 0);
    CHECK(bk_gw_find(&F.b, "g1", 2) == NULL);
    CHECK(bk_gw_find(&F.b, "g2", 2) != NULL);
    CHECK_INT(F.b.counters.reaped, 1);
    CHECK(find_since(&F.rec, mark, "DEL herald:conns:g1 herald:watch:g1", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "SREM herald:gateways g1", NULL) != NULL);
    CHECK_INT(nconns(), 1);
    /* alice had no other tab: offline after the grace period; bob has one
     * on g2: never offline. */
    CHECK_INT(F.b.nonline, 2);
    CHECK_INT(count_since(&F.rec, mark, "SREM online_users", NULL), 0);
    wait_ms(1500);
    CHECK_INT(F.b.nonline, 1);
    CHECK_INT(count_since(&F.rec, mark, "SREM online_users 1", NULL), 1);
    CHECK_INT(count_since(&F.rec, mark, "SREM online_users 2", NULL), 0);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:g2 ", "\"status\":\"offline\""), 1);
    /* A late answer for a gateway that is gone does nothing. */
    mark = F.rec.n;
    bk_presence_check_leases(&F.b);
    step("close g2 3");
    answer_lease(mark, "g2", 0);
    CHECK_INT(F.b.counters.reaped, 1);
    teardown();
}

/* A reaped gateway is fenced until its next "hello": "reaped" goes into its
 * lease key (its next renewal finds it and it closes its clients with
 * 1012), its opens and syncs are ignored (they would count clients about
 * to be closed), its client events are answered unavailable, and nothing
 * is broadcast to it. */
static void test_fencing(void)
{
    setup(0, 4);
    step("open g1 1 alice");
    step("open g2 2 bob");
    F.now += EV_LEASE_TTL(F.b.cfg.gateway_lease_ms);
    size_t mark = F.rec.n;
    bk_presence_check_leases(&F.b);
    answer_lease(mark, "g2", 1);
    answer_lease(mark, "g1", 0);
    CHECK_INT(F.b.counters.reaped, 1);
    CHECK(find_since(&F.rec, mark, "SET herald:gw:g1:lease reaped PX 86400000", NULL) != NULL);
    CHECK(bk_gw_fenced(&F.b, "g1", 2));
    CHECK(!bk_gw_fenced(&F.b, "g2", 2));
    CHECK_INT(F.b.nonline, 1);

    /* The paused gateway resumes and publishes before its renewal tells it:
     * an open (ignored; "reaped" written again, at most once a second), a
     * sync (ignored), client events (answered unavailable). */
    F.now += 1000;
    mark = F.rec.n;
    step("open g1 3 carol");
    CHECK_INT(nconns(), 1);
    CHECK(bk_gw_find(&F.b, "g1", 2) == NULL);
    CHECK_INT(count_since(&F.rec, mark, "SET herald:gw:g1:lease reaped", NULL), 1);
    CHECK_INT(count_since(&F.rec, mark, "SADD online_users", NULL), 0);
    step("open g1 4 carol");
    CHECK_INT(count_since(&F.rec, mark, "SET herald:gw:g1:lease reaped", NULL), 1);
    apply("t sync gw g1 c 1,3");
    CHECK_INT(nconns(), 1);
    mark = F.rec.n;
    applyf("t msg gw g1 c 1 u %lld e livechat d {\"message\":\"hi\"}", (long long)uid("alice"));
    applyf("t msg gw g1 c 1 u %lld e direct_message d {\"to\":2,\"message\":\"hi\"} r 7",
           (long long)uid("alice"));
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 ", "\"code\":\"unavailable\"") != NULL);
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 ", "\"error\":\"unavailable\"") != NULL);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:g2 ", NULL), 0); /* nothing delivered */
    CHECK_INT(F.b.counters.chat, 0);

    /* A broadcast meanwhile reaches g2 only. */
    mark = F.rec.n;
    step("open g2 5 carol");
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:g2 ", "\"status\":\"online\""), 1);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:g1 ", NULL), 0);
    step("close g2 5");

    /* Registered again: welcomed (after the answers above, so they reach
     * the clients before their 1012), then counted as any gateway. */
    mark = F.rec.n;
    step("hello g1");
    CHECK(!bk_gw_fenced(&F.b, "g1", 2));
    CHECK_STR(find_since(&F.rec, mark, "XADD herald:gw:g1 ", NULL),
              "XADD herald:gw:g1 * t welcome");
    mark = F.rec.n;
    step("open g1 6 alice");
    CHECK_INT(nconns(), 2);
    CHECK(find_since(&F.rec, mark, "SADD online_users 1", NULL) != NULL);

    /* A gateway that falls gw_stream_maxlen entries behind on its stream
     * (it trims what it has read) is given up the same way: nothing is
     * ever trimmed unread. Its stream is written without MAXLEN. */
    F.now += 1000;
    mark = F.rec.n;
    bk_presence_check_leases(&F.b);
    CHECK(find_since(&F.rec, mark, "XLEN herald:gw:g2", NULL) != NULL);
    for (size_t i = mark; i < F.rec.n; i++)
        if (strcmp(F.rec.v[i].text, "XLEN herald:gw:g2") == 0 && F.rec.v[i].fn) {
            redisReply r = {.type = REDIS_REPLY_INTEGER, .integer = F.b.cfg.gw_stream_maxlen};
            redisCallbackFn *fn = F.rec.v[i].fn;
            F.rec.v[i].fn = NULL;
            fn(NULL, &r, F.rec.v[i].priv);
        }
    CHECK(bk_gw_fenced(&F.b, "g2", 2));
    CHECK(find_since(&F.rec, mark, "SET herald:gw:g2:lease reaped PX 86400000", NULL) != NULL);
    CHECK_INT(count_since(&F.rec, 0, "XADD herald:gw:", "MAXLEN"), 0);
    step("hello g2");

    /* "reaped" left in a lease by another broker is no lease. */
    F.now += EV_LEASE_TTL(F.b.cfg.gateway_lease_ms);
    mark = F.rec.n;
    bk_presence_check_leases(&F.b);
    answer_lease(mark, "g2", 1);
    answer_lease_value(mark, "g1", "reaped");
    CHECK_INT(F.b.counters.reaped, 3);
    CHECK(bk_gw_fenced(&F.b, "g1", 2));
    /* Once its mark has expired in Redis, a fenced name is forgotten. */
    F.now += EV_FENCE_TTL_MS;
    mark = F.rec.n;
    bk_presence_check_leases(&F.b);
    CHECK(!bk_gw_fenced(&F.b, "g1", 2));
    CHECK_INT(F.b.nfenced, 0);
    teardown();
}

/* A client event from a connection the broker does not hold (closed
 * meanwhile, or refused) is answered, never dropped in silence. */
static void test_unregistered_sender(void)
{
    setup(0, 4);
    step("open g1 1 alice");
    size_t mark = F.rec.n;
    applyf("t msg gw g1 c 9 u %lld e livechat d {\"message\":\"hi\"}", (long long)uid("alice"));
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 ", "\"code\":\"unavailable\"") != NULL);
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 ", " c 9 ") != NULL);
    CHECK_INT(F.b.counters.chat, 0);
    teardown();
}

/* ---- refusals at the door ----------------------------------------------------------- */

static void test_unknown_user(void)
{
    setup(0, 4);
    size_t mark = F.rec.n;
    step("open g1 5 ghost");
    CHECK_STR(find_since(&F.rec, mark, "XADD herald:gw:g1 ", " kick "),
              "XADD herald:gw:g1 * t kick c 5 s 4003 e unknown-user");
    CHECK_INT(count_since(&F.rec, mark, "HSET herald:conns:", NULL), 0);
    CHECK_INT(F.b.nonline, 0);
    CHECK_INT(nconns(), 0);
    CHECK(bk_user_find(&F.b, 99) == NULL);
    CHECK_INT(F.b.counters.refused[3], 1); /* bk_refusal_words[3] */
    CHECK_STR(bk_refusal_words[3], "unknown-user");
    /* Its events are not served (the connection does not exist), only
     * answered unavailable. */
    mark = F.rec.n;
    apply("t msg gw g1 c 5 e whoami d {}");
    CHECK_INT(F.rec.n, mark + 1);
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 ", "\"code\":\"unavailable\"") != NULL);
    teardown();
}

/* ---- dispatch: every table, one row each ------------------------------------------ */

/*
 * Applied in order on one broker where g1 holds conn 1 (alice, raw), conn
 * 2 (a Socket.IO guest) and conn 3 (bob, Socket.IO). want: a command
 * written by that entry contains it; NULL: the entry writes nothing.
 */
static const struct dispatch_case {
    const char *entry;
    const char *want;
} dispatch_cases[] = {
    /* msg: the client event table. */
    {"t msg gw g1 c 1 e nope d {}",
     "t conn c 1 e error d {\"code\":\"unknown-type\",\"message\":\"this event is not handled\"}"},
    {"t msg gw g1 c 1 e get_online_users", "t conn c 1 e online_users d {\"users\":[1,2]}"},
    {"t msg gw g1 c 3 e get_online_users r 4 m 77", "t ack c 3 r 4 d [[1,2]] m 77"},
    {"t msg gw g1 c 3 e get_online_users", NULL}, /* Socket.IO without a callback */
    {"t msg gw g1 c 2 e livechat d {\"message\":\"hi\"} r 9",
     "t ack c 2 r 9 d [{\"ok\":false,\"error\":\"auth-required\",\"message\":\"guests may not do "
     "this: log in first\"}]"},
    {"t msg gw g1 c 2 e join-matchmaking",
     "t conn c 2 e error d {\"code\":\"auth-required\",\"message\":\"guests may not play: log in "
     "first\"}"},
    {"t msg gw g1 c 2 e whoami r 1", "t ack c 2 r 1 d [{\"id\":0}]"},
    {"t msg gw g1 c 3 e whoami r 2", "t ack c 3 r 2 d [{\"id\":2,\"username\":\"bob\"}]"},
    {"t msg gw g1 c 3 e get-users d {\"ids\":[1,\"3\",99]} r 3",
     "t ack c 3 r 3 d [[{\"id\":1,\"username\":\"alice\",\"avatar\":\"\\/a.png\",\"online\":true},"
     "{\"id\":3,\"username\":\"carol\",\"avatar\":null,\"online\":false}]]"},
    {"t msg gw g1 c 1 e livechat d {\"message\":\"hello\"}",
     "t auth e livechat d {\"user\":\"alice\",\"userId\":1,\"message\":\"hello\",\"id\":1,\"ts\":"},
    {"t msg gw g1 c 1 e livechat d {\"message\":\"\"}",
     "t conn c 1 e error d {\"code\":\"bad-field\",\"message\":\"message must be a non-empty "
     "string\"}"},
    {"t msg gw g1 c 3 e direct_message d {\"to\":\"ALICE\",\"message\":\"psst\"} r 5",
     "t conn c 1 e direct_message d "
     "{\"user\":\"bob\",\"userId\":2,\"message\":\"psst\",\"id\":1,\"ts\":"},
    {"t msg gw g1 c 3 e direct_message d {\"to\":\"nobody\",\"message\":\"x\"} r 6",
     "t ack c 3 r 6 d [{\"ok\":false,\"error\":\"unknown-user\",\"message\":\"no such "
     "recipient\"}]"},
    /* closed meanwhile: answered, not served */
    {"t msg gw g1 c 9 e whoami r 1", "t ack c 9 r 1 d [{\"ok\":false,\"error\":\"unavailable\""},
    /* req: the HTTP route table. */
    {"t req gw g1 c 40 r 7 e frobnicate d {}",
     "t reply c 40 r 7 s 404 d {\"error\":\"not-found\",\"message\":\"unknown request\"}"},
    {"t req gw g1 c 40 r 8 e online-status d {\"username\":\"Alice\"} m 5",
     "t reply c 40 r 8 s 200 d {\"online\":true} m 5"},
    {"t req gw g1 c 40 r 9 e online-status d {\"username\":\"carol\"}",
     "t reply c 40 r 9 s 200 d {\"online\":false}"},
    {"t req gw g1 c 40 r 10 e online-status d {\"username\":\"zed\"}",
     "t reply c 40 r 10 s 404 d {\"error\":\"unknown-user\",\"message\":\"no such user\"}"},
    {"t req gw g1 c 40 r 11 e online-status d {}",
     "t reply c 40 r 11 s 400 d {\"error\":\"bad-field\",\"message\":\"username required\"}"},
    {"t req gw g1 c 40 r 12 e user d {\"username\":\"bob\"}",
     "t reply c 40 r 12 s 200 d {\"id\":2,\"username\":\"bob\"}"},
    {"t req gw g1 c 40 r 13 e search d {\"q\":\"C\"}",
     "t reply c 40 r 13 s 200 d [{\"id\":3,\"username\":\"carol\",\"avatar\":null,\"online\":"
     "false}]"},
    {"t req gw g1 c 40 r 14 e search d {\"q\":\"a\",\"limit\":0}",
     "t reply c 40 r 14 s 400 d {\"error\":\"bad-field\",\"message\":\"limit must be 1..50 and "
     "offset >= 0\"}"},
    {"t req gw g1 c 40 r 15 e livechat u 3 d {\"message\":\"from-http\"}",
     "t auth e livechat d "
     "{\"user\":\"carol\",\"userId\":3,\"message\":\"from-http\",\"id\":2,\"ts\":"},
    {"t req gw g1 c 40 r 16 e livechat d {\"message\":\"x\"}",
     "t reply c 40 r 16 s 401 d {\"error\":\"auth-required\",\"message\":\"log in first\"}"},
    {"t req gw g1 c 40 r 17 e livechat u 99 d {\"message\":\"x\"}",
     "t reply c 40 r 17 s 401 d {\"error\":\"unknown-user\",\"message\":\"unknown user\"}"},
    {"t req gw g1 c 40 r 18 e profile-update d {\"userId\":3}",
     "t reply c 40 r 18 s 400 d {\"error\":\"bad-field\",\"message\":\"user must be an object\"}"},
    {"t req gw g1 c 40 r 19 e game-stats-update d [1]",
     "t reply c 40 r 19 s 400 d {\"error\":\"bad-json\",\"message\":\"the body must be a JSON "
     "object\"}"},
    {"t req gw g1 c 40 r 20 e account-deleted d {\"userId\":99}",
     "t reply c 40 r 20 s 404 d {\"error\":\"unknown-user\",\"message\":\"no such user\"}"},
    {"t req gw g1 c 40 r 21 e game-stats-update d {\"userId\":3,\"stats\":{\"wins\":1}}",
     "t reply c 40 r 21 s 202 d {\"status\":\"accepted\"}"},
    /* notify: the backend's table (no answer). */
    {"t notify e nope d {\"userId\":1}", NULL},
    {"t notify e game-stats-update d {\"userId\":99,\"stats\":{}}", NULL},
    /* entry types. */
    {"t bogus gw g3", "SADD herald:gateways g3"},
    {"t hello gw g1x", "SADD herald:gateways g1x"},
};

static void test_dispatch(void)
{
    setup(0, 4);
    step("open g1 1 alice");
    step("open g1 2 guest sio");
    step("open g1 3 bob sio");
    for (size_t i = 0; i < sizeof(dispatch_cases) / sizeof(dispatch_cases[0]); i++) {
        const struct dispatch_case *dc = &dispatch_cases[i];
        size_t mark = F.rec.n;
        int failed = check_failed;
        apply(dc->entry);
        if (dc->want)
            CHECK(find_since(&F.rec, mark, dc->want, NULL) != NULL);
        else
            CHECK_INT(F.rec.n, mark);
        if (check_failed != failed) {
            fprintf(stderr, "  entry \"%s\" wrote:\n", dc->entry);
            rec_dump(&F.rec, mark);
        }
    }
    /* Every client event the gateways relay (common/event.c's table) has a
     * handler here: none is answered unknown-type. */
    size_t nce;
    const struct ev_client_event *ce = ev_client_events(&nce);
    for (size_t i = 0; i < nce; i++) {
        if (!ce[i].broker)
            continue;
        size_t mark = F.rec.n;
        applyf("t msg gw g1 c 1 u %lld e %s d {}", (long long)uid("alice"), ce[i].broker);
        if (find_since(&F.rec, mark, "unknown-type", NULL))
            fprintf(stderr, "  the broker does not handle \"%s\"\n", ce[i].broker);
        CHECK(find_since(&F.rec, mark, "unknown-type", NULL) == NULL);
    }
    /* Refusals are counted by word, answered ones only. */
    CHECK_INT(F.b.counters.refused[2], 3); /* auth-required: 2 guests, 1 tokenless request */
    CHECK_INT(F.b.counters.chat, 2);
    CHECK_INT(F.b.counters.dm, 1);
    teardown();
}

/* ---- rooms and privacy --------------------------------------------------------------- */

/* Viewers of alice's profile: whether each sees the full object. */
static const struct privacy_case {
    const char *viewer; /* a step opening the viewer's connection on g1 */
    unsigned long long conn;
    bool full;
} privacy_cases[] = {
    {"open g1 10 bob sio", 10, true},    /* a friend */
    {"open g1 11 carol sio", 11, false}, /* not a friend */
    {"open g1 12 guest sio", 12, false}, /* a guest */
    {"open g1 13 alice sio", 13, true},  /* herself */
};
#define NPRIVACY (sizeof(privacy_cases) / sizeof(privacy_cases[0]))

static void test_rooms_privacy(void)
{
    setup(0, 4);
    step("open g2 20 alice");
    for (size_t i = 0; i < NPRIVACY; i++) {
        const struct privacy_case *pc = &privacy_cases[i];
        step(pc->viewer);
        size_t mark = F.rec.n;
        applyf("t msg gw g1 c %llu e watch-profile d {\"userId\":1} r 1", pc->conn);
        char field[48];
        snprintf(field, sizeof(field), "HSET herald:watch:g1 %llu:1 1", pc->conn);
        CHECK(find_since(&F.rec, mark, field, NULL) != NULL);
        /* The snapshot: friends only in the full shape. */
        const char *ack = find_since(&F.rec, mark, " t ack ", NULL);
        CHECK(ack != NULL);
        if (ack) {
            CHECK(strstr(ack, "\"username\":\"alice\"") != NULL);
            CHECK_INT(strstr(ack, "\"friends\":[{\"id\":2,\"username\":\"bob\"}]") != NULL,
                      pc->full);
            CHECK(strstr(ack, "\"online\":true") != NULL);
        }
    }
    CHECK_INT(F.b.rooms.n, 1);

    /* A profile update reaches the room: in full to alice's own tabs and
     * her friend, public fields only to everyone else. */
    size_t mark = F.rec.n;
    apply("t notify e profile-update "
          "d {\"userId\":1,\"user\":{\"avatar\":\"/b.png\",\"bio\":\"secret\"}}");
    /* (json-c writes '/' as "\/", as it always has on this wire.) */
    const char *full = find_since(&F.rec, mark, "XADD herald:gw:g1 ", "\"bio\":\"secret\"");
    const char *pub = find_since(&F.rec, mark, "XADD herald:gw:g1 ", " c 11,12 ");
    CHECK_STR(full, "XADD herald:gw:g1 * t conn c 10,13 e profile-update d "
                    "{\"user\":{\"avatar\":\"\\/b.png\",\"bio\":\"secret\",\"userID\":1,"
                    "\"username\":\"alice\"}}");
    CHECK_STR(pub, "XADD herald:gw:g1 * t conn c 11,12 e profile-update d "
                   "{\"user\":{\"avatar\":\"\\/b.png\",\"userID\":1,\"username\":\"alice\"}}");
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g2 ", "t conn c 20 e profile-update") != NULL);
    CHECK_INT(F.b.counters.notifications, 1);

    /* Unwatching stops it; so does closing the connection. */
    mark = F.rec.n;
    apply("t msg gw g1 c 10 e unwatch-profile d {\"userId\":\"1\"}");
    CHECK(find_since(&F.rec, mark, "HDEL herald:watch:g1 10:1", NULL) != NULL);
    step("close g1 11");
    CHECK(find_since(&F.rec, mark, "HDEL herald:watch:g1 11:1", NULL) != NULL);
    mark = F.rec.n;
    apply("t notify e game-stats-update d {\"userId\":1,\"stats\":{\"wins\":2,\"losses\":2}}");
    CHECK_STR(find_since(&F.rec, mark, "XADD herald:gw:g1 ", NULL),
              "XADD herald:gw:g1 * t conn c 13 e game-stats-update d "
              "{\"stats\":{\"userId\":1,\"wins\":2,\"losses\":2,\"ratio\":0.5}}");
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:g1 ", NULL), 2); /* 13 full, 12 public */
    teardown();
}

static void test_room_limit(void)
{
    setup(0, 2);
    step("open g1 1 carol");
    apply("t msg gw g1 c 1 e watch-profile d {\"userId\":1}");
    apply("t msg gw g1 c 1 e watch-profile d {\"userId\":2}");
    apply("t msg gw g1 c 1 e watch-profile d {\"userId\":2}"); /* already in: no change */
    size_t mark = F.rec.n;
    apply("t msg gw g1 c 1 e watch-profile d {\"userId\":3}");
    CHECK(find_since(&F.rec, mark, "\"code\":\"too-many-rooms\"", NULL) != NULL);
    CHECK_INT(count_since(&F.rec, 0, "HSET herald:watch:g1", NULL), 2);
    apply("t msg gw g1 c 1 e watch-profile d {\"userId\":99}");
    CHECK(find_since(&F.rec, mark, "\"code\":\"unknown-user\"", NULL) != NULL);
    /* One HDEL with every room of the closing connection. */
    mark = F.rec.n;
    step("close g1 1");
    const char *hdel = find_since(&F.rec, mark, "HDEL herald:watch:g1 ", NULL);
    CHECK(hdel && strstr(hdel, "1:1") && strstr(hdel, "1:2"));
    CHECK_INT(F.b.rooms.n, 0);
    teardown();
}

/* ---- matchmaking and account deletion -------------------------------------------------- */

static void test_match_and_delete(void)
{
    setup(1500, 4);
    step("open g1 1 alice");
    step("open g1 2 alice sio");
    step("open g2 3 bob");
    apply("t msg gw g1 c 1 e join-matchmaking");
    apply("t msg gw g1 c 2 e join-matchmaking r 4");
    CHECK_INT(F.b.match.n, 1);
    CHECK_INT(count_since(&F.rec, 0, "RPUSH herald:matchmaking 1", NULL), 1);
    size_t mark = F.rec.n;
    apply("t msg gw g2 c 3 e join-matchmaking");
    CHECK_INT(F.b.match.n, 0);
    CHECK(find_since(&F.rec, mark, "LREM herald:matchmaking 0 1", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "t conn c 1,2 e match-found", "\"username\":\"bob\"") != NULL);
    CHECK(find_since(&F.rec, mark, "t conn c 3 e match-found", "\"username\":\"alice\"") != NULL);
    CHECK_INT(F.b.counters.matches, 1);

    /* The last tab closing takes a player out of the queue. */
    apply("t msg gw g2 c 3 e join-matchmaking");
    mark = F.rec.n;
    step("close g2 3");
    CHECK(find_since(&F.rec, mark, "LREM herald:matchmaking 0 2", NULL) != NULL);
    CHECK_INT(F.b.match.n, 0);

    /* A deleted account: told, then closed, offline at once (no grace),
     * refused by every gateway. */
    apply("t msg gw g1 c 1 e join-matchmaking");
    mark = F.rec.n;
    apply("t notify e account-deleted d {\"userId\":1}");
    CHECK(find_since(&F.rec, mark, "t conn c 1,2 e account-deleted d {}", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "t kick c 1,2 s 4003 e account-deleted", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "LREM herald:matchmaking 0 1", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "SREM online_users 1", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "SADD herald:deleted_users 1", NULL) != NULL);
    CHECK_INT(count_since(&F.rec, mark, " * t deleted u 1", NULL), 2); /* g1 and g2 */
    CHECK(bk_user_find(&F.b, 1) == NULL);
    CHECK_INT(nconns(), 0);
    /* Replayed: accepted, nothing happens again. */
    mark = F.rec.n;
    apply("t notify e account-deleted d {\"userId\":1}");
    CHECK_INT(F.rec.n, mark);
    teardown();
}

/* Provisioning entries (bk_provision.c): created, changed, replayed
 * without effect, and a change reaches the profile's watchers in the shape
 * the privacy rule gives them; just-in-time users only when configured. */
static void test_provisioning(void)
{
    setup(0, 4);
    step("open g1 1 carol");
    struct bk_user_row row;
    apply("t notify e user-put d {\"userId\":50,\"username\":\"zed\"}");
    CHECK_INT(bk_store_user_by_id(&F.b.store, 50, &row), 1);
    CHECK_STR(row.username, "zed");
    CHECK_INT(F.b.counters.provisioned, 1);
    /* Replayed: nothing written, nothing counted. */
    size_t mark = F.rec.n;
    apply("t notify e user-put d {\"userId\":50,\"username\":\"zed\"}");
    CHECK_INT(F.rec.n, mark);
    CHECK_INT(F.b.counters.provisioned, 1);
    /* Refused (taken, bad field): nothing changes. */
    apply("t notify e user-put d {\"userId\":50,\"username\":\"carol\"}");
    apply("t notify e user-put d {\"userId\":50}");
    CHECK_INT(bk_store_user_by_id(&F.b.store, 50, &row), 1);
    CHECK_STR(row.username, "zed");
    CHECK_INT(F.rec.n, mark);

    /* carol watches zed: a rename reaches her, public fields only. */
    apply("t msg gw g1 c 1 e watch-profile d {\"userId\":50}");
    mark = F.rec.n;
    apply("t notify e user-put d {\"userId\":50,\"username\":\"zed2\",\"avatar\":\"/z\"}");
    CHECK_STR(find_since(&F.rec, mark, "XADD herald:gw:g1 ", NULL),
              "XADD herald:gw:g1 * t conn c 1 e profile-update d {\"user\":{\"userID\":50,"
              "\"userId\":50,\"id\":50,\"username\":\"zed2\",\"avatar\":\"\\/z\"}}");
    /* Friends now: the full shape, with the friends list, at once. */
    mark = F.rec.n;
    applyf("t notify e friendship-put d {\"userId\":50,\"friendId\":%lld}",
           (long long)uid("carol"));
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 * t conn c 1 e profile-update",
                     "\"friends\":[{\"id\":3,\"username\":\"carol\"}]") != NULL);
    CHECK_INT(bk_store_are_friends(&F.b.store, 50, uid("carol")), 1);
    mark = F.rec.n;
    applyf("t notify e friendship-put d {\"userId\":%lld,\"friendId\":50}",
           (long long)uid("carol"));
    CHECK_INT(F.rec.n, mark); /* already friends: nothing */
    applyf("t notify e friendship-delete d {\"userId\":50,\"friendId\":%lld}",
           (long long)uid("carol"));
    CHECK_INT(bk_store_are_friends(&F.b.store, 50, uid("carol")), 0);
    const char *pub =
        find_since(&F.rec, mark, "XADD herald:gw:g1 * t conn c 1 e profile-update", NULL);
    CHECK(pub != NULL && strstr(pub, "friends") == NULL);

    /* Just-in-time users: ignored unless configured. */
    apply("t notify e jit-user d {\"userId\":60,\"username\":\"jay\"}");
    CHECK_INT(bk_store_user_by_id(&F.b.store, 60, &row), 0);
    F.b.cfg.jit_users = 1;
    apply("t notify e jit-user d {\"userId\":60,\"username\":\"jay\"}");
    CHECK_INT(bk_store_user_by_id(&F.b.store, 60, &row), 1);
    CHECK_STR(row.username, "jay");
    mark = F.rec.n;
    apply("t notify e jit-user d {\"userId\":60,\"username\":\"jay\"}");
    apply("t notify e jit-user d {\"userId\":60}"); /* no claim: the name stays */
    CHECK_INT(F.rec.n, mark);
    CHECK_INT(bk_store_user_by_id(&F.b.store, 60, &row), 1);
    CHECK_STR(row.username, "jay");
    /* The open that follows its claims is accepted, not kicked. */
    apply("t open gw g1 c 7 u 60 k ws");
    CHECK(find_since(&F.rec, mark, "t kick", NULL) == NULL);
    CHECK(bk_user_find(&F.b, 60) != NULL && bk_user_find(&F.b, 60)->online);
    /* A deleted account is not created again. */
    apply("t notify e user-delete d {\"userId\":60}");
    apply("t notify e jit-user d {\"userId\":60,\"username\":\"jay\"}");
    CHECK_INT(bk_store_user_by_id(&F.b.store, 60, &row), 0);
    CHECK_INT(bk_store_is_deleted(&F.b.store, 60), 1);
    teardown();
}

/* ---- presence scope and coalescing (PROTOCOL.md §2) ------------------------------- */

/* The c list of the last status entry about user on gateway gw since mark,
 * or NULL (none; "all" when the entry names no connection). */
static const char *status_conns(size_t mark, const char *gw, int64_t user, char *buf, size_t size)
{
    char head[64];
    snprintf(head, sizeof(head), "XADD herald:gw:%s * t status u %lld ", gw, (long long)user);
    const char *found = NULL;
    for (size_t i = mark; i < F.rec.n; i++)
        if (strncmp(F.rec.v[i].text, head, strlen(head)) == 0)
            found = F.rec.v[i].text;
    if (!found)
        return NULL;
    const char *c = strstr(found, "} c ");
    if (!c)
        return "all";
    snprintf(buf, size, "%s", c + 4);
    return buf;
}

static void test_scope_related(void)
{
    setup_scope = "related";
    setup(0, 4);
    char buf[128];
    /* bob (a friend of alice), carol (not), a guest; carol's g2 tab keeps
     * alice in its presence list, a guest's watches alice's profile. */
    step("open g1 10 bob");
    step("open g1 11 carol");
    step("open g2 20 carol sio");
    step("open g2 21 guest");
    applyf("t msg gw g2 c 20 e watch-presence d {\"userIds\":[%lld,99]} r 1",
           (long long)uid("alice"));
    CHECK(find_since(&F.rec, 0, "HSET herald:watch:g2 20:p1 1", NULL) != NULL);
    CHECK(find_since(&F.rec, 0, "t ack c 20 r 1 d [{\"ok\":true,\"online\":[]}]", NULL) != NULL);
    size_t mark = F.rec.n;
    step("open g1 1 alice");
    /* Every gateway hears it (its online list); only the related get it. */
    CHECK_STR(status_conns(mark, "g1", uid("alice"), buf, sizeof(buf)), "1,10");
    CHECK_STR(status_conns(mark, "g2", uid("alice"), buf, sizeof(buf)), "20");
    /* The whole list in scope related: the asker's related online users
     * (bob: himself and his friend alice; carol: alice, in her list). */
    mark = F.rec.n;
    apply("t msg gw g1 c 10 e get_online_users");
    apply("t msg gw g2 c 20 e get_online_users r 7");
    CHECK(find_since(&F.rec, mark, "t conn c 10 e online_users d {\"users\":[1,2]}", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "t ack c 20 r 7 d [[1,3]]", NULL) != NULL);
    /* A friendship made: each side is told where the other stands. */
    mark = F.rec.n;
    apply("t notify e friendship-put d {\"userId\":1,\"friendId\":3}");
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 * t conn c 11 e status",
                     "{\"userId\":1,\"username\":\"alice\",\"status\":\"online\"}") != NULL);
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 * t conn c 1 e status",
                     "{\"userId\":3,\"username\":\"carol\",\"status\":\"online\"}") != NULL);
    apply("t notify e friendship-delete d {\"userId\":1,\"friendId\":3}");
    /* carol's transition: only her own tabs (nobody relates to her). */
    mark = F.rec.n;
    step("open g1 12 carol");
    CHECK(status_conns(mark, "g1", uid("carol"), buf, sizeof(buf)) == NULL); /* not new */
    step("close g1 11");
    step("close g1 12");
    step("close g2 20");
    CHECK_STR(status_conns(mark, "g1", uid("carol"), buf, sizeof(buf)), "0");
    CHECK_STR(status_conns(mark, "g2", uid("carol"), buf, sizeof(buf)), "0");
    /* The presence list is bounded (3 here), all or nothing. */
    step("open g2 22 guest sio");
    mark = F.rec.n;
    apply("t msg gw g2 c 22 e watch-presence d {\"userIds\":[1,2,3,4]} r 2");
    CHECK(find_since(&F.rec, mark, "t ack c 22 r 2", "bad-field") != NULL); /* over the bound */
    apply("t msg gw g2 c 22 e watch-presence d {\"userIds\":[2,3]} r 3");
    mark = F.rec.n;
    apply("t msg gw g2 c 22 e watch-presence d {\"userIds\":[3,4,5]} r 4");
    CHECK(find_since(&F.rec, mark, "t ack c 22 r 4", "too-many-rooms") != NULL);
    CHECK(find_since(&F.rec, mark, "HSET herald:watch:g2 22:p", NULL) == NULL);
    apply("t msg gw g2 c 22 e watch-profile d {\"userId\":1}");
    apply("t msg gw g2 c 22 e unwatch-presence d {\"userIds\":[1,2,3]}");
    CHECK_INT(bk_conn_find(&F.b, bk_gw_find(&F.b, "g2", 2), 22)->npresence, 0);
    /* Profile watchers hear the presence too. */
    mark = F.rec.n;
    step("close g1 1");
    CHECK_STR(status_conns(mark, "g1", uid("alice"), buf, sizeof(buf)), "10");
    CHECK_STR(status_conns(mark, "g2", uid("alice"), buf, sizeof(buf)), "22");
    teardown();

    /* Scope all: one status entry per gateway naming no connection. */
    setup(0, 4);
    mark = F.rec.n;
    step("open g1 1 alice");
    CHECK_STR(status_conns(mark, "g1", uid("alice"), buf, sizeof(buf)), "all");
    teardown();
}

static void test_presence_flush(void)
{
    setup_flush_ms = 100;
    setup(0, 4);
    step("open g2 9 bob");
    wait_ms(100);
    size_t mark = F.rec.n;
    step("open g1 1 alice");
    /* Online in Redis at once; the event waits for the flush. */
    CHECK(find_since(&F.rec, mark, "SADD online_users 1", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, " t status u 1 ", NULL) == NULL);
    wait_ms(99);
    CHECK(find_since(&F.rec, mark, " t status u 1 ", NULL) == NULL);
    wait_ms(1);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:g1 * t status u 1 s 1 ", NULL), 1);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:hooks * t user-online", NULL), 1);
    /* The hook says when alice went online, not when the flush wrote it:
     * the same instant as the later offline hook's onlineSince. */
    char ts[48];
    snprintf(ts, sizeof(ts), " ts %lld", (long long)(F.now - 100));
    const char *hook = find_since(&F.rec, mark, "XADD herald:hooks * t user-online", NULL);
    CHECK(hook != NULL && strstr(hook, ts) != NULL);
    /* A flap inside one window writes nothing; SREM/SADD still happen. */
    mark = F.rec.n;
    step("close g1 1");
    step("open g1 2 alice");
    wait_ms(100);
    CHECK(find_since(&F.rec, mark, " t status u 1 ", NULL) == NULL);
    CHECK(find_since(&F.rec, mark, "XADD herald:hooks", NULL) == NULL);
    CHECK(find_since(&F.rec, mark, "SREM online_users 1", NULL) != NULL);
    CHECK_INT(F.b.nonline, 2);
    /* Two users in one window: both written, in the order they changed. */
    mark = F.rec.n;
    step("close g2 9");
    step("close g1 2");
    wait_ms(100);
    const char *first = find_since(&F.rec, mark, "XADD herald:gw:g1 * t status", NULL);
    CHECK(first != NULL && strstr(first, " u 2 s 0 ") != NULL);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:g1 * t status u 1 s 0 ", NULL), 1);
    /* Nothing held: the users are gone. */
    CHECK(bk_user_find(&F.b, 1) == NULL && bk_user_find(&F.b, 2) == NULL);
    teardown();
}

/* ---- stored DMs ------------------------------------------------------------------------ */

/* A DM is stored before anything is delivered: one to an offline user is
 * there when the user connects (dm-unread on the new tab), the sender's
 * other tabs get a copy, read marks move every tab's counts, and history
 * pages come newest last in the shape each endpoint expects. */
static void test_stored_dms(void)
{
    setup(0, 4);
    step("open g1 1 alice");
    step("open g1 2 alice sio");
    /* bob is offline: stored, acknowledged with its id, nothing for bob. */
    size_t mark = F.rec.n;
    applyf("t msg gw g1 c 1 u %lld e direct_message d {\"to\":\"bob\",\"message\":\"one\"}",
           (long long)uid("alice"));
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:g1 * t conn c 2 e direct_message",
                          "\"message\":\"one\",\"id\":1,"),
              1);                                                  /* alice's other tab */
    CHECK_INT(count_since(&F.rec, mark, " t conn c 1 ", NULL), 0); /* not the sending tab */
    applyf("t msg gw g1 c 2 u %lld e direct_message d {\"to\":2,\"message\":\"two\"} r 4",
           (long long)uid("alice"));
    CHECK(find_since(&F.rec, mark, "t ack c 2 r 4 d [{\"ok\":true,\"id\":2,\"ts\":", NULL) != NULL);
    /* bob connects: his new tab hears of both. */
    mark = F.rec.n;
    step("open g2 3 bob");
    CHECK(find_since(&F.rec, mark,
                     "XADD herald:gw:g2 * t conn c 3 e dm-unread d {\"conversations\":[{\"userId\":"
                     "1,\"username\":\"alice\",\"count\":2,\"lastId\":2}]}",
                     NULL) != NULL);
    /* A third DM reaches bob's tab (the DM is the news: no count query per
     * message). */
    mark = F.rec.n;
    applyf("t msg gw g1 c 1 u %lld e direct_message d {\"to\":\"bob\",\"message\":\"three\"}",
           (long long)uid("alice"));
    CHECK(find_since(&F.rec, mark, "t conn c 3 e direct_message", "\"id\":3,") != NULL);
    CHECK(find_since(&F.rec, mark, "t conn c 3 e dm-unread", NULL) == NULL);
    /* History: raw as an event with the object, Socket.IO as the array. */
    mark = F.rec.n;
    applyf("t msg gw g2 c 3 u %lld e get_dm_history d {\"with\":\"alice\",\"limit\":2}",
           (long long)uid("bob"));
    CHECK(find_since(&F.rec, mark, "t conn c 3 e dm_history d {\"with\":1,\"messages\":[{\"id\":2,",
                     "{\"id\":3,") != NULL);
    mark = F.rec.n;
    applyf("t msg gw g1 c 2 u %lld e get_dm_history d {\"with\":2,\"before\":2} r 9",
           (long long)uid("alice"));
    CHECK(find_since(&F.rec, mark,
                     "t ack c 2 r 9 d [[{\"id\":1,\"from\":1,\"to\":2,\"message\":"
                     "\"one\"",
                     NULL) != NULL);
    /* Read up to 2: one left; the tab is told (as every tab would be). */
    mark = F.rec.n;
    applyf("t msg gw g2 c 3 u %lld e dm_read d {\"with\":1,\"upTo\":2}", (long long)uid("bob"));
    CHECK(find_since(&F.rec, mark, "t conn c 3 e dm-unread", "\"count\":1,\"lastId\":3") != NULL);
    mark = F.rec.n;
    applyf("t msg gw g2 c 3 u %lld e get_unread d {}", (long long)uid("bob"));
    CHECK(find_since(&F.rec, mark, "t conn c 3 e dm-unread", "\"count\":1,") != NULL);
    /* Bad input is answered, nothing changes. */
    mark = F.rec.n;
    applyf("t msg gw g2 c 3 u %lld e dm_read d {\"with\":1,\"upTo\":\"x\"}", (long long)uid("bob"));
    applyf("t msg gw g2 c 3 u %lld e get_dm_history d {\"with\":\"nobody\"}",
           (long long)uid("bob"));
    CHECK_INT(count_since(&F.rec, mark, "t conn c 3 e error", "bad-field"), 1);
    CHECK_INT(count_since(&F.rec, mark, "t conn c 3 e error", "unknown-user"), 1);
    /* The chat history: the last messages, newest last (bob speaks: alice
     * has used her burst of 3). */
    applyf("t msg gw g2 c 3 u %lld e livechat d {\"message\":\"c1\"}", (long long)uid("bob"));
    applyf("t msg gw g2 c 3 u %lld e livechat d {\"message\":\"c2\"}", (long long)uid("bob"));
    mark = F.rec.n;
    applyf("t msg gw g2 c 3 u %lld e get_chat_history d {\"limit\":1}", (long long)uid("bob"));
    CHECK(find_since(&F.rec, mark, "t conn c 3 e chat_history d {\"messages\":[{\"user\":\"bob\"",
                     "\"message\":\"c2\",\"id\":2,") != NULL);
    teardown();
}

/* ---- the chat rate ------------------------------------------------------------------- */

static void test_chat_rate(void)
{
    setup(0, 4);
    step("open g1 1 bob");
    /* Burst 3, then one every 2 s (rate 0.5). */
    for (int i = 0; i < 3; i++)
        apply("t msg gw g1 c 1 e livechat d {\"message\":\"x\"}");
    size_t mark = F.rec.n;
    apply("t msg gw g1 c 1 e livechat d {\"message\":\"x\"}");
    CHECK(find_since(&F.rec, mark, "\"code\":\"rate-limited\"", NULL) != NULL);
    CHECK_INT(count_since(&F.rec, mark, " t auth e livechat ", NULL), 0);
    F.now += 2000;
    mark = F.rec.n;
    apply("t msg gw g1 c 1 e livechat d {\"message\":\"x\"}");
    CHECK_INT(count_since(&F.rec, mark, " t auth e livechat ", NULL), 1);
    CHECK_INT(F.b.counters.rate_limited, 1);
    /* Long enough and the bucket is full again: forgotten on the tick. */
    F.now += 10000;
    bk_hooks_tick(&F.b, F.now);
    CHECK(RB_EMPTY(&F.b.chat.rates));
    teardown();
}

/* A gateway back on Redis lists every connection it holds ("sync"): the
 * ones the broker still has and the gateway does not (closed while Redis
 * was down, their close never published) go, with the transitions that
 * implies; a replayed sync changes nothing; an empty list empties the
 * gateway. */
static void test_sync(void)
{
    setup(0, 4);
    step("open g1 1 alice");
    step("open g1 2 bob");
    step("open g1 3 carol");
    step("open g2 4 bob");
    size_t mark = F.rec.n;
    apply("t sync gw g1 c 1,3");
    CHECK_INT(nconns(), 3);
    CHECK(find_since(&F.rec, mark, "HDEL herald:conns:g1 2", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "SREM online_users", NULL) == NULL); /* bob is on g2 */
    mark = F.rec.n;
    apply("t sync gw g1 c 1,3");
    CHECK_INT(F.rec.n, mark);
    apply("t sync gw g2");
    CHECK(find_since(&F.rec, mark, "SREM online_users 2", NULL) != NULL);
    CHECK_INT(nconns(), 2);
    CHECK_INT(F.b.nonline, 2);
    teardown();
}

/* Index of the first command since mark that is exactly text, or -1. */
static long index_of(size_t mark, const char *text)
{
    for (size_t i = mark; i < F.rec.n; i++)
        if (strcmp(F.rec.v[i].text, text) == 0)
            return (long)i;
    return -1;
}

/* ---- resync after Redis came back --------------------------------------------- */

/* After a reconnect to Redis (which may have restarted empty) the broker
 * writes its state back in one MULTI: online users, gateways, and each
 * gateway's connections. It deleted herald:conns:<gw> and never wrote the
 * connections back (their HSET used a format hiredis refuses), so a broker
 * started after that loaded none of them and took their users offline
 * while their tabs were open. Each connection must be written back after
 * its gateway's DEL, inside the transaction. */
static void test_resync_writes_connections(void)
{
    setup(0, 4);
    step("open g1 1 alice");
    step("open g1 2 bob");
    step("open g2 3 alice sio");
    step("open g2 4 guest");
    size_t mark = F.rec.n;
    bk_load_resync(&F.b);
    /* Each HSET once, after its gateway's DEL (a DEL after them would undo
     * them) and before the EXEC; the order among a gateway's HSETs is free. */
    static const char *const want[][2] = {
        {"HSET herald:conns:g1 1 1:w:0", "DEL herald:conns:g1"},
        {"HSET herald:conns:g1 2 2:w:0", "DEL herald:conns:g1"},
        {"HSET herald:conns:g2 3 1:s:0", "DEL herald:conns:g2"},
        {"HSET herald:conns:g2 4 0:w:0", "DEL herald:conns:g2"},
    };
    long exec_at = index_of(mark, "EXEC");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        long at = index_of(mark, want[i][0]), del = index_of(mark, want[i][1]);
        if (at < 0)
            rec_dump(&F.rec, mark);
        CHECK(at >= 0 && del >= 0 && del < at && at < exec_at);
        CHECK_INT(count_since(&F.rec, mark, want[i][0], NULL), 1);
    }
    CHECK_STR(F.rec.v[mark].text, "MULTI");
    teardown();
}

/* ---- recovered sessions (PROTOCOL.md §4a) ------------------------------------------ */

static struct bk_conn *conn_of(const char *gw, uint64_t id)
{
    struct bk_gw *g = bk_gw_find(&F.b, gw, strlen(gw));
    return g ? bk_conn_find(&F.b, g, id) : NULL;
}

static void test_recovery(void)
{
    setup(1500, 4);
    F.b.cfg.recovery_window_ms = 60000;
    applyf("t open gw g1 c 10 u 1 k sio p 777");
    applyf("t open gw g2 c 20 u 2 k ws p 888");
    applyf("t msg gw g1 c 10 u 1 e watch-profile d {\"userId\":2}");
    struct bk_conn *c = conn_of("g1", 10);
    CHECK(c != NULL && c->token == 777 && c->nrooms == 1);
    CHECK(find_since(&F.rec, 0, "HSET herald:conns:g1 10 1:s:777", NULL) != NULL);

    /* A network close: detached, not removed. Out of presence (grace) and
     * of Redis, still in its user's and rooms' lists. */
    size_t mark = F.rec.n;
    applyf("t close gw g1 c 10 v 1");
    c = conn_of("g1", 10);
    CHECK(c != NULL && (c->flags & BK_CONN_DETACHED));
    CHECK_INT(F.b.ndetached, 1);
    CHECK_INT(bk_user_find(&F.b, 1)->nconns, 0);
    CHECK(bk_user_find(&F.b, 1)->in_grace);
    CHECK(find_since(&F.rec, mark, "HDEL herald:conns:g1 10", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "HDEL herald:watch:g1", "10:2") != NULL);
    /* What it would have been sent still goes to g1's stream. */
    mark = F.rec.n;
    applyf("t msg gw g2 c 20 u 2 e direct_message d {\"to\":1,\"message\":\"gap\"}");
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 ", "\"gap\"") != NULL);

    /* A wrong token is another session: a fresh one, the old one kept. */
    mark = F.rec.n;
    applyf("t open gw g2 c 10 u 1 k sio p 778 o 5-0");
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g2 ", "t resume c 10 s 0") != NULL);
    CHECK(conn_of("g1", 10) != NULL && conn_of("g2", 10) != NULL);
    applyf("t close gw g2 c 10");
    CHECK(conn_of("g2", 10) == NULL);

    /* Back on g2 within the grace period: moved there, no transition; the
     * old stream gets "moved", the new one "resume" with where to read. */
    mark = F.rec.n;
    applyf("t open gw g2 c 10 u 1 k sio p 777 o 5-0");
    CHECK(conn_of("g1", 10) == NULL);
    c = conn_of("g2", 10);
    CHECK(c != NULL && !(c->flags & BK_CONN_DETACHED) && c->nrooms == 1);
    CHECK_INT(F.b.ndetached, 0);
    CHECK_INT(bk_user_find(&F.b, 1)->nconns, 1);
    CHECK(!bk_user_find(&F.b, 1)->in_grace);
    CHECK_STR(find_since(&F.rec, mark, "XADD herald:gw:g1 ", NULL),
              "XADD herald:gw:g1 * t moved c 10");
    CHECK_STR(find_since(&F.rec, mark, "XADD herald:gw:g2 ", "resume"),
              "XADD herald:gw:g2 * t resume c 10 s 1 e g1 o 5-0");
    CHECK(find_since(&F.rec, mark, "HSET herald:conns:g2 10 1:s:777", NULL) != NULL);
    CHECK(find_since(&F.rec, mark, "HSET herald:watch:g2", "10:2") != NULL);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:", "\"status\""), 0);
    CHECK_INT(F.b.counters.recovered, 1);
    /* Replayed, the open changes nothing. */
    mark = F.rec.n;
    applyf("t open gw g2 c 10 u 1 k sio p 777 o 5-0");
    CHECK_INT(count_since(&F.rec, mark, NULL, NULL), 0);

    /* A live session taken over (its gateway died unnoticed): moved. */
    mark = F.rec.n;
    applyf("t open gw g1 c 20 u 2 k ws p 888 o 6-0");
    CHECK(conn_of("g2", 20) == NULL && conn_of("g1", 20) != NULL);
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g2 ", "t moved c 20") != NULL);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:", "\"status\""), 0);

    /* Past the grace, then back: offline, then online (both true). */
    applyf("t close gw g1 c 20 v 1");
    wait_ms(2000);
    CHECK(!bk_user_find(&F.b, 2)->online);
    mark = F.rec.n;
    applyf("t open gw g1 c 20 u 2 k ws p 888 o 7-0");
    CHECK(bk_user_find(&F.b, 2)->online);
    CHECK_INT(count_since(&F.rec, mark, "XADD herald:gw:", "\"status\":\"online\""), 2);

    /* Past the window: gone for good; coming back is a fresh session. */
    applyf("t close gw g1 c 20 v 1");
    wait_ms(61000);
    CHECK(conn_of("g1", 20) == NULL);
    CHECK_INT(F.b.ndetached, 0);
    CHECK_INT(F.b.counters.detached_expired, 1);
    mark = F.rec.n;
    applyf("t open gw g1 c 20 u 2 k ws p 888 o 8-0");
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 ", "t resume c 20 s 0") != NULL);

    /* A goodbye (no v) removes at once. */
    applyf("t close gw g1 c 20");
    CHECK(conn_of("g1", 20) == NULL);
    CHECK_INT(F.b.ndetached, 0);

    /* A reaped gateway's sessions are detached; the gateway is kept, dead,
     * while one of them may come back, and still gets broadcasts. */
    applyf("t open gw g1 c 30 u 3 k sio p 999");
    F.now += EV_LEASE_TTL(F.b.cfg.gateway_lease_ms);
    mark = F.rec.n;
    bk_presence_check_leases(&F.b);
    answer_lease(mark, "g1", 0);
    struct bk_gw *g1 = bk_gw_find(&F.b, "g1", 2);
    CHECK(g1 != NULL && g1->dead && g1->ndetached == 1);
    CHECK(find_since(&F.rec, mark, "PEXPIRE herald:gw:g1", NULL) != NULL);
    mark = F.rec.n;
    applyf("t msg gw g2 c 10 u 1 e livechat d {\"message\":\"toall\"}");
    CHECK(find_since(&F.rec, mark, "XADD herald:gw:g1 ", "toall") != NULL);
    /* Its last session comes back elsewhere: the dead record goes. */
    applyf("t open gw g2 c 30 u 3 k sio p 999 o 9-0");
    CHECK(bk_gw_find(&F.b, "g1", 2) == NULL);
    CHECK(conn_of("g2", 30) != NULL);

    /* Deleting an account with a detached session frees it. */
    applyf("t close gw g2 c 30 v 1");
    CHECK_INT(F.b.ndetached, 1);
    bk_user_delete(&F.b, bk_user_find(&F.b, 3));
    CHECK_INT(F.b.ndetached, 0);
    CHECK(bk_user_find(&F.b, 3) == NULL);
    teardown();
}

int main(void)
{
    /* The broker logs every transition at info; failures print their own
     * transcript. HERALD_TEST_VERBOSE=1 shows the broker's logs too. */
    if (!getenv("HERALD_TEST_VERBOSE"))
        log_min_level = LOG_ERROR + 1;
    test_presence_table();
    test_presence_commands();
    test_replay();
    test_reap();
    test_fencing();
    test_unregistered_sender();
    test_stored_dms();
    test_unknown_user();
    test_dispatch();
    test_rooms_privacy();
    test_room_limit();
    test_match_and_delete();
    test_provisioning();
    test_scope_related();
    test_presence_flush();
    test_chat_rate();
    test_resync_writes_connections();
    test_sync();
    test_recovery();
    return check_report("test_broker");
}
