/*
 * test_gw_online.c - the gateway's copy of who is online (gw_online.h):
 * the broker's entries applied in order, every question form answered,
 * hostile arguments refused with a reason.
 */
#include "check.h"
#include "event.h"
#include "gw_online.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* An "online" chunk with s bits and ids (a comma list). */
static void chunk(struct gw_online *o, int s, const char *ids)
{
    struct ev_entry e = {0};
    e.status = s;
    e.conns = ids;
    e.conns_len = strlen(ids);
    gw_online_list(o, &e);
}

/* The asking connection's user for the next questions. */
static int64_t ask_self;

/* The answer to a question given as JSON text (NULL: none), as text. */
static char *ask(struct gw_online *o, const char *arg_json, bool count, int64_t *next)
{
    struct json_object *arg = arg_json ? json_tokener_parse(arg_json) : NULL;
    enum gw_online_form form;
    int64_t cursor;
    long limit;
    const char *why = NULL;
    char *out = NULL;
    size_t len;
    if (gw_online_parse(arg, count, &form, &cursor, &limit, &why) == 0)
        out = gw_online_answer(o, form, arg, cursor, limit, ask_self, next, &len);
    else
        out = strdup(why ? "refused" : "?");
    json_object_put(arg);
    return out;
}

static void check_answer(struct gw_online *o, const char *arg, bool count, const char *want,
                         int64_t want_next)
{
    int64_t next = -1;
    char *got = ask(o, arg, count, &next);
    CHECK_STR(got, want);
    if (strcmp(want, "refused") != 0)
        CHECK_INT(next, want_next);
    free(got);
}

int main(void)
{
    struct gw_online o = {0};
    CHECK(!o.known);
    /* A list in two chunks: not known until the last. */
    chunk(&o, 1, "2,5,9");
    CHECK(!o.known);
    chunk(&o, 2, "12,40");
    CHECK(o.known);
    CHECK_INT(o.ids.n, 5);
    /* Transitions, in any order, idempotent. */
    gw_online_status(&o, 7, true);
    gw_online_status(&o, 7, true);
    gw_online_status(&o, 5, false);
    gw_online_status(&o, 5, false);
    gw_online_status(&o, 1, true);
    gw_online_status(&o, 0, true); /* guests never count */
    check_answer(&o, NULL, false, "[1,2,7,9,12,40]", 0);
    check_answer(&o, "{}", false, "[1,2,7,9,12,40]", 0);
    check_answer(&o, NULL, true, "6", 0);
    /* Which of these: in the order asked, strings as ids, others just not online. */
    check_answer(&o, "{\"ids\":[40,3,\"7\",-1,\"x\",{},1]}", false, "[40,7,1]", 0);
    check_answer(&o, "{\"ids\":[]}", false, "[]", 0);
    /* Pages: next is the first id of the next page, 0 at the end. */
    check_answer(&o, "{\"limit\":4}", false, "[1,2,7,9]", 12);
    check_answer(&o, "{\"cursor\":12,\"limit\":4}", false, "[12,40]", 0);
    check_answer(&o, "{\"cursor\":8,\"limit\":1}", false, "[9]", 12);
    check_answer(&o, "{\"cursor\":41,\"limit\":10}", false, "[]", 0);
    /* Hostile arguments: refused with a reason. */
    static const char *const bad[] = {
        "{\"ids\":5}",
        "{\"ids\":{}}",
        "{\"limit\":0}",
        "{\"limit\":1001}",
        "{\"limit\":\"3\"}",
        "{\"cursor\":5}",
        "{\"cursor\":-1,\"limit\":3}",
        "{\"cursor\":\"a\",\"limit\":3}",
        "{\"limit\":2.5}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_answer(&o, bad[i], false, "refused", 0);
    /* 1000 ids at most; POST /api/online-status's stricter check. */
    char big[8200] = "{\"ids\":[";
    for (int i = 0; i < 1001; i++)
        strcat(big, i ? ",1" : "1");
    strcat(big, "]}");
    check_answer(&o, big, false, "refused", 0);
    struct json_object *a = json_tokener_parse("{\"ids\":[1,\"2\"]}");
    CHECK(gw_online_ids_valid(a));
    json_object_put(a);
    a = json_tokener_parse("{\"ids\":[1,\"x\"]}");
    CHECK(!gw_online_ids_valid(a));
    json_object_put(a);
    /* The asker is online while it asks, even before its own transition
     * arrived; already listed, it is not counted twice. */
    ask_self = 8;
    check_answer(&o, NULL, false, "[1,2,7,8,9,12,40]", 0);
    check_answer(&o, NULL, true, "7", 0);
    check_answer(&o, "{\"ids\":[8,5]}", false, "[8]", 0);
    ask_self = 50;
    check_answer(&o, NULL, false, "[1,2,7,9,12,40,50]", 0);
    ask_self = 1;
    check_answer(&o, NULL, false, "[1,2,7,9,12,40]", 0);
    check_answer(&o, NULL, true, "6", 0);
    ask_self = 0;
    /* A fresh list starts afresh; an empty one is "0". */
    chunk(&o, 3, "0");
    CHECK(o.known);
    check_answer(&o, NULL, false, "[]", 0);
    chunk(&o, 1, "3");
    check_answer(&o, NULL, true, "1", 0); /* counted while loading: the caller checks known */
    CHECK(!o.known);
    chunk(&o, 2, "1");
    check_answer(&o, NULL, false, "[1,3]", 0);
    gw_online_free(&o);
    return check_report("test_gw_online");
}
