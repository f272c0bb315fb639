/*
 * test_gw_recover.c - the session names of recovery (PROTOCOL.md §4a): pids
 * as a client sends them back (hostile ones included), the socket.id
 * derived from them, and the offsets they carry.
 */
#include "check.h"
#include "gw_recover.h"

#include <stdio.h>
#include <string.h>

static void test_pid_round_trip(void)
{
    char pid[GW_PID_MAX + 1], start[EV_OFFSET_MAX + 1];
    gw_recover_pid(pid, 4503599627370497ULL, 4294967295U, "1796640000001-12");
    CHECK_STR(pid, "4503599627370497.4294967295.1796640000001-12");
    uint64_t id = 0;
    uint32_t token = 0;
    CHECK(gw_recover_pid_parse(pid, strlen(pid), &id, &token, start));
    CHECK(id == 4503599627370497ULL);
    CHECK(token == 4294967295U);
    CHECK_STR(start, "1796640000001-12");
    /* The longest pid fits. */
    gw_recover_pid(pid, 9223372036854775807ULL, 4294967295U,
                   "18446744073709551615-18446744073709551615");
    CHECK(strlen(pid) <= GW_PID_MAX);
}

static void test_pid_hostile(void)
{
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "1.2",
        "1.2.",
        "1.2.3",                     /* no "-" in the offset */
        "0.2.1-0",                   /* no connection 0 */
        "1.0.1-0",                   /* no token 0 */
        "1.4294967296.1-0",          /* token over 32 bits */
        "9223372036854775808.1.1-0", /* id over 63 bits */
        "-1.2.1-0",
        "+1.2.1-0",
        " 1.2.1-0",
        "1 .2.1-0",
        "1.2.1-0 ",
        "1.2.1-0.5",
        "1.2.-1",
        "1.2.1-",
        "a.b.c-d",
        "1.2.1-0\n",
        "1.2.99999999999999999999999-0",
        "01.2.3-4", /* one spelling per pid (found by fuzz_recover) */
        "1.02.3-4",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t id;
        uint32_t token;
        char start[EV_OFFSET_MAX + 1];
        if (gw_recover_pid_parse(bad[i], strlen(bad[i]), &id, &token, start)) {
            fprintf(stderr, "accepted bad pid \"%s\"\n", bad[i]);
            CHECK(!"a bad pid was accepted");
        }
    }
    /* Too long for any pid: refused before looking. */
    char big[GW_PID_MAX + 8];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    uint64_t id;
    uint32_t token;
    char start[EV_OFFSET_MAX + 1];
    CHECK(!gw_recover_pid_parse(big, strlen(big), &id, &token, start));
    /* A pid with an embedded NUL: the length counts, not the string. */
    CHECK(!gw_recover_pid_parse("1.2.3-4\0x", 9, &id, &token, start));
}

static void test_sio_id(void)
{
    char a[GW_SIO_ID_LEN + 1], b[GW_SIO_ID_LEN + 1], c[GW_SIO_ID_LEN + 1];
    gw_recover_sio_id("4503599627370497.17.1-0", a);
    gw_recover_sio_id("4503599627370497.17.1-0", b);
    gw_recover_sio_id("4503599627370497.18.1-0", c);
    CHECK_INT(strlen(a), GW_SIO_ID_LEN);
    CHECK_STR(a, b); /* the same session keeps its socket.id */
    CHECK(strcmp(a, c) != 0);
    CHECK(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          GW_SIO_ID_LEN);
}

static void test_offsets(void)
{
    CHECK(ev_offset_valid("0-0", 3));
    CHECK(ev_offset_valid("1796640000001-12", 16));
    CHECK(!ev_offset_valid("", 0));
    CHECK(!ev_offset_valid("12", 2));
    CHECK(!ev_offset_valid("-1", 2));
    CHECK(!ev_offset_valid("1-", 2));
    CHECK(!ev_offset_valid("1--2", 4));
    CHECK(!ev_offset_valid("1-2-3", 5));
    CHECK(!ev_offset_valid("x-1", 3));
    CHECK(!ev_offset_valid("99999999999999999999-1", 22));
    uint64_t ms = 0, seq = 0;
    CHECK(ev_id_split("1796640000001-12", 16, &ms, &seq));
    CHECK(ms == 1796640000001ULL && seq == 12);
    CHECK(!ev_id_split("5-", 2, &ms, &seq));
    CHECK(ev_id_split("1-0x", 3, &ms, &seq) && ms == 1 && seq == 0); /* the length counts */
}

int main(void)
{
    test_pid_round_trip();
    test_pid_hostile();
    test_sio_id();
    test_offsets();
    return check_report("test_gw_recover");
}
