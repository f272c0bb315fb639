/* test_config.c - the config table: defaults, environment, flags, bounds. */
#include "check.h"
#include "config.h"

#include <stdlib.h>

struct tcfg {
    const char *name;
    long num;
    int flag;
    const char *secret;
    double rate;
};

static const struct cfg_opt opts[] = {
    {"name", CFG_STR, offsetof(struct tcfg, name), "dflt", 0, 0, 0, "a string"},
    {"num-ms", CFG_INT, offsetof(struct tcfg, num), "25", 1, 100, 0, "a number"},
    {"flag", CFG_BOOL, offsetof(struct tcfg, flag), "false", 0, 0, 0, "a boolean"},
    {"secret", CFG_STR, offsetof(struct tcfg, secret), NULL, 0, 0, CFG_SECRET, "hidden"},
    {"rate", CFG_REAL, offsetof(struct tcfg, rate), "2", 0, 1000, 0, "a rate"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int load(struct tcfg *c, int argc, char **argv)
{
    return cfg_load(opts, NOPTS, c, argc, argv, "usage: test");
}

int main(void)
{
    struct tcfg c;
    /* A caller's struct may hold garbage: options without a default must
     * come out unset, not keep it (herald-admin once signed tokens with a
     * stack-garbage "secret" this way). */
    memset(&c, 0xA5, sizeof(c));
    unsetenv("HERALD_SECRET");
    unsetenv("HERALD_NAME");
    unsetenv("HERALD_NUM_MS");
    {
        char *argv[] = {"prog", NULL};
        CHECK_INT(load(&c, 1, argv), 1);
        CHECK_STR(c.name, "dflt");
        CHECK_INT(c.num, 25);
        CHECK_INT(c.flag, 0);
        CHECK(c.secret == NULL);
    }
    /* Environment over defaults, flags over environment. */
    setenv("HERALD_NAME", "fromenv", 1);
    setenv("HERALD_NUM_MS", "50", 1);
    {
        char *argv[] = {"prog", NULL};
        CHECK_INT(load(&c, 1, argv), 1);
        CHECK_STR(c.name, "fromenv");
        CHECK_INT(c.num, 50);
    }
    {
        char *argv[] = {"prog", "--name", "fromflag", "--num-ms=70", "--flag", "rest", NULL};
        CHECK_INT(load(&c, 6, argv), 5);
        CHECK_STR(c.name, "fromflag");
        CHECK_INT(c.num, 70);
        CHECK_INT(c.flag, 1);
    }
    {
        char *argv[] = {"prog", "--flag", "false", NULL};
        CHECK_INT(load(&c, 3, argv), 3);
        CHECK_INT(c.flag, 0);
    }
    /* Reals: fractions, bounds, garbage ("nan" is not in any range). */
    {
        char *argv[] = {"prog", "--rate", "0.5", NULL};
        CHECK_INT(load(&c, 3, argv), 3);
        CHECK(c.rate == 0.5);
    }
    {
        char *bad[] = {"-1", "1001", "nan", "2x", ""};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            char *argv[] = {"prog", "--rate", bad[i], NULL};
            CHECK_INT(load(&c, 3, argv), -1);
        }
    }
    /* Out of bounds, not a number, unknown flag, missing value: errors. */
    {
        char *argv[] = {"prog", "--num-ms", "101", NULL};
        CHECK_INT(load(&c, 3, argv), -1);
    }
    {
        char *argv[] = {"prog", "--num-ms", "12abc", NULL};
        CHECK_INT(load(&c, 3, argv), -1);
    }
    {
        char *argv[] = {"prog", "--nope", NULL};
        CHECK_INT(load(&c, 2, argv), -1);
    }
    {
        char *argv[] = {"prog", "--name", NULL};
        CHECK_INT(load(&c, 2, argv), -1);
    }
    setenv("HERALD_NUM_MS", "0", 1);
    {
        char *argv[] = {"prog", NULL};
        CHECK_INT(load(&c, 1, argv), -1);
    }
    unsetenv("HERALD_NUM_MS");
    {
        char *argv[] = {"prog", "--", "--name", NULL};
        CHECK_INT(load(&c, 3, argv), 2);
    }
    /* host:port parsing. */
    char host[64];
    int port = 0;
    CHECK_INT(cfg_parse_hostport("127.0.0.1:8080", host, sizeof(host), &port), 0);
    CHECK_STR(host, "127.0.0.1");
    CHECK_INT(port, 8080);
    CHECK_INT(cfg_parse_hostport("[::1]:0", host, sizeof(host), &port), 0);
    CHECK_STR(host, "::1");
    CHECK_INT(port, 0);
    CHECK_INT(cfg_parse_hostport("nohost", host, sizeof(host), &port), -1);
    CHECK_INT(cfg_parse_hostport("h:99999", host, sizeof(host), &port), -1);
    CHECK_INT(cfg_parse_hostport("h:", host, sizeof(host), &port), -1);
    return check_report("test_config");
}
