/* test_event.c - stream entry parsing, argv building, client JSON events. */
#include "check.h"
#include "event.h"
#include "rds.h"

#include <json-c/json.h>

static int parse(struct ev_entry *e, const char *const *f, size_t n)
{
    size_t lens[64];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(f[i]);
    return ev_entry_parse(e, f, lens, n);
}

int main(void)
{
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
