/* test_event.c - stream entry parsing, argv building, client JSON events. */
#include "check.h"
#include "event.h"
#include "rds.h"

#include <hiredis/hiredis.h>
#include <json-c/json.h>

static int parse(struct ev_entry *e, const char *const *f, size_t n)
{
    size_t lens[64];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(f[i]);
    return ev_entry_parse(e, f, lens, n);
}

/* The argv of a builder as one space-separated string, for comparison. */
static const char *joined(const struct ev_args *a)
{
    static char buf[1024];
    size_t n = 0;
    for (int i = 0; i < a->argc && n + a->argvlen[i] + 2 < sizeof(buf); i++) {
        if (i)
            buf[n++] = ' ';
        memcpy(buf + n, a->argv[i], a->argvlen[i]);
        n += a->argvlen[i];
    }
    buf[n] = '\0';
    return buf;
}

/* Each encoder writes the fields event.h's table gives, in one order. */
static void test_encoders(void)
{
    static const struct {
        int kind;
        const char *want;
    } cases[] = {
        {0, "t hello gw gw-1"},
        {1, "t open gw gw-1 c 42 u 7 k sio"},
        {2, "t close gw gw-1 c 42"},
        {3, "t msg gw gw-1 c 42 u 0 e livechat d {\"m\":1}"},
        {4, "t msg gw gw-1 c 42 u 7 e whoami d {} r 0 m 1234"},
        {5, "t req gw gw-1 c 42 r 9 e search d {\"q\":\"a\"} m 1234"},
        {6, "t req gw gw-1 c 42 r 9 u 7 e livechat d {} m 1234"},
        {7, "t auth e livechat d {}"},
        {8, "t conn c 1,2,3 e status d {}"},
        {9, "t reply c 42 r 9 s 202 d {} m 1234"},
        {10, "t reply c 42 r 9 s 404 d {}"},
        {11, "t kick c 1,2 s 4003 e unknown-user"},
        {12, "t ack c 42 r 0 d [1] m 1234"},
        {13, "t deleted u 7"},
        {14, "t sync gw gw-1 c 1,2,3"},
        {15, "t sync gw gw-1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ev_args a;
        ev_args_init(&a);
        switch (cases[i].kind) {
        case 0:
            ev_enc_hello(&a, "gw-1");
            break;
        case 1:
            ev_enc_open(&a, "gw-1", 42, 7, "sio", 0, NULL);
            break;
        case 2:
            ev_enc_close(&a, "gw-1", 42, false);
            break;
        case 3:
            ev_enc_msg(&a, "gw-1", 42, 0, "livechat", "{\"m\":1}", 7, -1, 1234);
            break;
        case 4:
            ev_enc_msg(&a, "gw-1", 42, 7, "whoami", "{}", 2, 0, 1234);
            break;
        case 5:
            ev_enc_req(&a, "gw-1", 42, 9, 0, "search", "{\"q\":\"a\"}", 9, 1234);
            break;
        case 6:
            ev_enc_req(&a, "gw-1", 42, 9, 7, "livechat", "{}", 2, 1234);
            break;
        case 7:
            ev_enc_all(&a, "auth", "livechat", "{}", 2);
            break;
        case 8:
            ev_enc_conn(&a, "1,2,3", 5, "status", "{}", 2);
            break;
        case 9:
            ev_enc_reply(&a, 42, 9, 202, "{}", 2, 1234);
            break;
        case 10:
            ev_enc_reply(&a, 42, 9, 404, "{}", 2, 0);
            break;
        case 11:
            ev_enc_kick(&a, "1,2", 3, 4003, "unknown-user");
            break;
        case 12:
            ev_enc_ack(&a, 42, 0, "[1]", 3, 1234);
            break;
        case 13:
            ev_enc_deleted(&a, 7);
            break;
        case 14:
            ev_enc_sync(&a, "gw-1", "1,2,3", 5);
            break;
        case 15:
            ev_enc_sync(&a, "gw-1", "", 0);
            break;
        }
        CHECK_STR(joined(&a), cases[i].want);
        /* What an encoder writes, the parser reads back. */
        struct ev_entry e;
        CHECK_INT(ev_entry_parse(&e, a.argv, a.argvlen, (size_t)a.argc), 0);
    }
}

/* Hand-built hiredis replies: the XREAD shape, a malformed entry with an id
 * (skipped, still acknowledged), something that is no entry, nil. */
static void test_from_reply(void)
{
    redisReply f[6] = {
        {.type = REDIS_REPLY_STRING, .str = "t", .len = 1},
        {.type = REDIS_REPLY_STRING, .str = "close", .len = 5},
        {.type = REDIS_REPLY_STRING, .str = "gw", .len = 2},
        {.type = REDIS_REPLY_STRING, .str = "gw-1", .len = 4},
        {.type = REDIS_REPLY_STRING, .str = "c", .len = 1},
        {.type = REDIS_REPLY_STRING, .str = "x9", .len = 2},
    };
    redisReply *fp[6] = {&f[0], &f[1], &f[2], &f[3], &f[4], &f[5]};
    redisReply good_fv = {.type = REDIS_REPLY_ARRAY, .elements = 4, .element = fp};
    redisReply bad_fv = {.type = REDIS_REPLY_ARRAY, .elements = 6, .element = fp};
    redisReply id1 = {.type = REDIS_REPLY_STRING, .str = "1-1", .len = 3};
    redisReply id2 = {.type = REDIS_REPLY_STRING, .str = "1-2", .len = 3};
    redisReply *en1p[2] = {&id1, &good_fv}, *en2p[2] = {&id2, &bad_fv};
    redisReply en1 = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = en1p};
    redisReply en2 = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = en2p};
    redisReply junk = {.type = REDIS_REPLY_INTEGER, .integer = 3};
    redisReply *ep[3] = {&en1, &en2, &junk};
    redisReply entries = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = ep};
    redisReply name = {.type = REDIS_REPLY_STRING, .str = "herald:gw:gw-1", .len = 14};
    redisReply *sp[2] = {&name, &entries};
    redisReply stream = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = sp};
    redisReply *rp[1] = {&stream};
    redisReply r = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = rp};
    redisReply nil = {.type = REDIS_REPLY_NIL};

    const struct redisReply *got = ev_reply_entries(&r);
    CHECK(got == &entries);
    CHECK(ev_reply_entries(&nil) == NULL);
    CHECK(ev_reply_entries(NULL) == NULL);
    CHECK(ev_reply_entries(&junk) == NULL);
    struct ev_entry e;
    const char *id = NULL;
    CHECK_INT(ev_entry_from_reply(&e, &en1, &id), 0);
    CHECK_STR(id, "1-1");
    CHECK_MEM(e.type, e.type_len, "close");
    CHECK_MEM(e.gw, e.gw_len, "gw-1");
    CHECK_INT(ev_entry_from_reply(&e, &en2, &id), 1); /* c is not a number */
    CHECK_STR(id, "1-2");
    CHECK_INT(ev_entry_from_reply(&e, &junk, &id), -1);
    CHECK(id == NULL);
}

/* One table for both endpoints; refusals in the three shapes, escaped,
 * refused rather than cut when they do not fit. */
static void test_client_events_and_refusals(void)
{
    const struct ev_client_event *ce = ev_client_event_raw("get_online_users", 16);
    CHECK(ce && strcmp(ce->sio, "get-online-users") == 0 && !(ce->flags & EV_CLIENT_CHAT));
    ce = ev_client_event_sio("livechat", 8);
    CHECK(ce && strcmp(ce->broker, "livechat") == 0 && (ce->flags & EV_CLIENT_CHAT));
    CHECK(ev_client_event_raw("whoami", 6) == NULL);
    ce = ev_client_event_sio("whoami", 6);
    CHECK(ce && strcmp(ce->broker, "whoami") == 0);
    ce = ev_client_event_raw("ping", 4);
    CHECK(ce && ce->broker == NULL);
    CHECK(ev_client_event_sio("get_online_users", 16) == NULL);
    CHECK(ev_client_event_raw("nope", 4) == NULL);
    CHECK(ev_client_event_sio("get-online-users", 16) ==
          ev_client_event_raw("get_online_users", 16));
    CHECK(ev_client_event_raw("direct_message", 14)->flags & EV_CLIENT_CHAT);
    CHECK(!(ev_client_event_raw("watch-profile", 13)->flags & EV_CLIENT_CHAT));
    CHECK_INT(ev_client_event_raw("ping", 4)->answer, EV_ANSWER_PING);
    CHECK_INT(ev_client_event_sio("refresh-token", 13)->answer, EV_ANSWER_REFRESH_TOKEN);
    CHECK_INT(ev_client_event_sio("livechat", 8)->answer, EV_ANSWER_BROKER);
    CHECK(ev_client_event_raw("get-users", 9) == NULL && ev_client_event_sio("get-users", 9));
    CHECK(ev_client_event_sio("whoam", 5) == NULL && ev_client_event_sio("whoamii", 7) == NULL);

    char buf[128];
    size_t n = ev_refusal(buf, sizeof(buf), EV_REFUSAL_ACK, "rate-limited", "slow down");
    CHECK_MEM(buf, n, "[{\"ok\":false,\"error\":\"rate-limited\",\"message\":\"slow down\"}]");
    n = ev_refusal(buf, sizeof(buf), EV_REFUSAL_EVENT, "bad-field", "say \"hi\"\n\\");
    CHECK_MEM(buf, n, "{\"code\":\"bad-field\",\"message\":\"say hi\"}");
    n = ev_refusal(buf, sizeof(buf), EV_REFUSAL_HTTP, "internal", "");
    CHECK_MEM(buf, n, "{\"error\":\"internal\",\"message\":\"\"}");
    size_t full = ev_refusal(buf, sizeof(buf), EV_REFUSAL_ACK, "w", "message");
    for (size_t cap = 0; cap < full; cap++)
        CHECK_INT(ev_refusal(buf, cap, EV_REFUSAL_ACK, "w", "message"), 0);
    CHECK_INT(ev_refusal(buf, full, EV_REFUSAL_ACK, "w", "message"), full);
}

/* XINFO GROUPS and XPENDING replies: our group found among others, and
 * whatever else Redis or a hostile server might send is no progress. */
static void test_group_progress(void)
{
#define S(x) {.type = REDIS_REPLY_STRING, .str = (x), .len = sizeof(x) - 1}
    redisReply other[6] = {
        S("name"), S("hooks"), S("pending"), {.type = REDIS_REPLY_INTEGER}, S("last-delivered-id"),
        S("9-9")};
    redisReply ours[8] = {S("name"),
                          S("brokers"),
                          S("consumers"),
                          {.type = REDIS_REPLY_INTEGER},
                          S("pending"),
                          {.type = REDIS_REPLY_INTEGER, .integer = 2},
                          S("last-delivered-id"),
                          S("5-1")};
    redisReply *op[6], *up[8];
    for (int i = 0; i < 6; i++)
        op[i] = &other[i];
    for (int i = 0; i < 8; i++)
        up[i] = &ours[i];
    redisReply g1 = {.type = REDIS_REPLY_ARRAY, .elements = 6, .element = op};
    redisReply g2 = {.type = REDIS_REPLY_ARRAY, .elements = 8, .element = up};
    redisReply *gp[2] = {&g1, &g2};
    redisReply groups = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = gp};
    const char *last = NULL;
    long long pending = -1;
    CHECK(ev_group_progress(&groups, &last, &pending));
    CHECK_STR(last, "5-1");
    CHECK_INT(pending, 2);
    /* Only the other group, an odd-length list, an error, nothing. */
    groups.elements = 1;
    CHECK(!ev_group_progress(&groups, &last, &pending));
    g2.elements = 7;
    gp[0] = &g2;
    CHECK(!ev_group_progress(&groups, &last, &pending));
    redisReply err = S("NOGROUP");
    err.type = REDIS_REPLY_ERROR;
    CHECK(!ev_group_progress(&err, &last, &pending));
    CHECK(!ev_group_progress(NULL, &last, &pending));

    redisReply xp[3] = {{.type = REDIS_REPLY_INTEGER, .integer = 2}, S("3-0"), S("5-1")};
    redisReply *xpp[3] = {&xp[0], &xp[1], &xp[2]};
    redisReply summary = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = xpp};
    CHECK_STR(ev_pending_oldest(&summary), "3-0");
    xp[0].integer = 0; /* nothing pending: ids are nil in Redis, never used */
    CHECK(ev_pending_oldest(&summary) == NULL);
    xp[0].integer = 1;
    xp[1].type = REDIS_REPLY_NIL;
    CHECK(ev_pending_oldest(&summary) == NULL);
    CHECK(ev_pending_oldest(&err) == NULL);
    CHECK(ev_pending_oldest(NULL) == NULL);
#undef S
}

/* The scope word both processes parse the same way. */
static void test_presence_scope(void)
{
    bool related = true;
    CHECK(ev_presence_scope(NULL, &related) && !related);
    CHECK(ev_presence_scope("all", &related) && !related);
    CHECK(ev_presence_scope("related", &related) && related);
    related = false;
    CHECK(!ev_presence_scope("Related", &related) && !related);
    CHECK(!ev_presence_scope("", &related));
    CHECK(!ev_presence_scope("all ", &related));
}

int main(void)
{
    test_presence_scope();
    test_encoders();
    test_group_progress();
    test_from_reply();
    test_client_events_and_refusals();
    struct ev_entry e;
    {
        const char *f[] = {"t", "open", "gw", "gw-1", "c", "42", "u", "7", "k", "ws", "x", "y"};
        CHECK_INT(parse(&e, f, 12), 0);
        CHECK_MEM(e.type, e.type_len, "open");
        CHECK_MEM(e.gw, e.gw_len, "gw-1");
        CHECK_INT(e.conn, 42);
        CHECK_INT(e.user, 7);
        CHECK_MEM(e.kind, e.kind_len, "ws");
    }
    {
        const char *f[] = {"t", "conn", "c", "1,2,3", "e", "status", "d", "{}"};
        CHECK_INT(parse(&e, f, 8), 0);
        CHECK_INT(e.conn, 0);
        CHECK_MEM(e.conns, e.conns_len, "1,2,3");
        CHECK_MEM(e.data, e.data_len, "{}");
    }
    /* Hostile entries. */
    {
        const char *f[] = {"gw", "x"}; /* no type */
        CHECK_INT(parse(&e, f, 2), -1);
    }
    {
        const char *f[] = {"t", "open", "c", "-1"};
        CHECK_INT(parse(&e, f, 4), -1);
    }
    {
        const char *f[] = {"t", "open", "u", "99999999999999999999"};
        CHECK_INT(parse(&e, f, 4), -1);
    }
    {
        const char *f[] = {"t", "open", "u", ""};
        CHECK_INT(parse(&e, f, 4), -1);
    }
    {
        const char *f[] = {"t", "reply", "s", "12x"};
        CHECK_INT(parse(&e, f, 4), -1);
    }
    {
        const char *f[] = {"t", "open", "c"}; /* odd count */
        CHECK_INT(parse(&e, f, 3), -1);
    }
    /* Id lists. */
    {
        const char *list = "12,13,9007199254740991", *p = list;
        uint64_t id, got[4];
        int n = 0;
        while (n < 4 && ev_ids_next(&p, list + strlen(list), &id))
            got[n++] = id;
        CHECK_INT(n, 3);
        CHECK_INT(got[0], 12);
        CHECK_INT(got[2], 9007199254740991LL);
        const char *bad[] = {"", ",", "1,,2", "1,x", "-1", "1,"};
        const int want[] = {0, 0, 1, 1, 0, 1};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            p = bad[i];
            n = 0;
            while (n < 4 && ev_ids_next(&p, bad[i] + strlen(bad[i]), &id))
                n++;
            CHECK_INT(n, want[i]);
        }
    }
    /* Builder. */
    struct ev_args a;
    ev_args_xadd(&a, "k", 1, 1000);
    ev_args_adds(&a, "t");
    ev_args_add_u64(&a, 18446744073709551615ull);
    ev_args_add_i64(&a, -5);
    CHECK_INT(a.argc, 9);
    CHECK_MEM(a.argv[0], a.argvlen[0], "XADD");
    CHECK_MEM(a.argv[4], a.argvlen[4], "1000");
    CHECK_MEM(a.argv[5], a.argvlen[5], "*");
    CHECK_MEM(a.argv[7], a.argvlen[7], "18446744073709551615");
    CHECK_MEM(a.argv[8], a.argvlen[8], "-5");
    /* Overflowing a builder is our bug: it must stop the process, not send
     * an entry with a field missing its value. */
    ev_args_init(&a);
    for (int i = 0; i < EV_ARGS_MAX; i++)
        ev_args_adds(&a, "f");
    CHECK_INT(a.argc, EV_ARGS_MAX);
    CHECK_ABORTS(ev_args_adds(&a, "one too many"));
    ev_args_init(&a);
    for (int i = 0; i < 12; i++)
        ev_args_add_i64(&a, i);
    CHECK_ABORTS(ev_args_add_i64(&a, 12));
    /* Names. */
    const struct ev_name *nm = ev_name_find("status", 6);
    CHECK(nm != NULL);
    CHECK_STR(nm->raw, "status_update");
    CHECK_STR(nm->sio, "user-status-change");
    CHECK(ev_name_find("nope", 4) == NULL);
    /* Client JSON. */
    const char *type = NULL, *err = NULL;
    struct json_object *o = ev_client_parse("{\"type\":\"ping\"}", 15, &type, &err);
    CHECK(o != NULL);
    CHECK_STR(type, "ping");
    json_object_put(o);
    static const struct {
        const char *json, *err;
    } bad[] = {
        {"", "bad-json"},
        {"{", "bad-json"},
        {"{\"type\":\"ping\"} x", "bad-json"},
        {"{\"type\":\"ping\"}{}", "bad-json"},
        {"[1,2]", "bad-type"},
        {"\"ping\"", "bad-type"},
        {"{\"type\":1}", "bad-type"},
        {"{\"typ\":\"ping\"}", "bad-type"},
        {"[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", "bad-json"},
        {"{\"type\":\"a\",\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}",
         "bad-json"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        o = ev_client_parse(bad[i].json, strlen(bad[i].json), &type, &err);
        CHECK(o == NULL);
        CHECK_STR(err, bad[i].err);
        json_object_put(o);
    }
    /* Embedded NUL is not JSON. */
    o = ev_client_parse("{\"type\":\"p\0\"}", 13, &type, &err);
    CHECK(o == NULL);
    json_object_put(o);
    /* Redis URLs. */
    char host[64];
    int port, db;
    CHECK_INT(rds_parse_url("redis://127.0.0.1:6390/2", host, sizeof(host), &port, &db), 0);
    CHECK_STR(host, "127.0.0.1");
    CHECK_INT(port, 6390);
    CHECK_INT(db, 2);
    CHECK_INT(rds_parse_url("localhost", host, sizeof(host), &port, &db), 0);
    CHECK_INT(port, 6379);
    CHECK_INT(rds_parse_url("redis://h:0", host, sizeof(host), &port, &db), -1);
    CHECK_INT(rds_parse_url("redis://h:12/x", host, sizeof(host), &port, &db), -1);
    CHECK_INT(rds_parse_url("redis://:12", host, sizeof(host), &port, &db), -1);
    return check_report("test_event");
}
