/*
 * test_webhook.c - the webhook sender's pure parts (broker/bk_webhook.h):
 * the URL parser with hostile inputs, the body encoding, the signature
 * (RFC 4231 test case 2, then a fixed body) and the backoff bounds.
 */
#include "bk_webhook.h"

#include "check.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

struct url_case {
    const char *url;
    const char *host; /* NULL: refused */
    int port;
    const char *path;
};

static const struct url_case url_cases[] = {
    {"http://example.com/hooks", "example.com", 80, "/hooks"},
    {"http://127.0.0.1:8080/h?x=1&y=2", "127.0.0.1", 8080, "/h?x=1&y=2"},
    {"HTTP://Example.com", "Example.com", 80, "/"},
    {"http://host", "host", 80, "/"},
    {"http://host:65535", "host", 65535, "/"},
    {"http://host:1/", "host", 1, "/"},
    {"http://host?q=1", "host", 80, "/?q=1"},
    {"http://[::1]:8080/x", "::1", 8080, "/x"},
    {"http://[::1]/", "::1", 80, "/"},
    {"http://my_host.internal-1:9/a/b/../c", "my_host.internal-1", 9, "/a/b/../c"},
    /* refused */
    {"", NULL, 0, NULL},
    {"example.com/hooks", NULL, 0, NULL},
    {"//example.com/", NULL, 0, NULL},
    {"https://example.com/", NULL, 0, NULL},
    {"ftp://example.com/", NULL, 0, NULL},
    {"http:/example.com/", NULL, 0, NULL},
    {"http://", NULL, 0, NULL},
    {"http:///path", NULL, 0, NULL},
    {"http://:80/", NULL, 0, NULL},
    {"http://user:pass@example.com/", NULL, 0, NULL},
    {"http://evil.com@example.com/", NULL, 0, NULL},
    {"http://host:/", NULL, 0, NULL},
    {"http://host:0/", NULL, 0, NULL},
    {"http://host:65536/", NULL, 0, NULL},
    {"http://host:99999999999999999999/", NULL, 0, NULL},
    {"http://host:-1/", NULL, 0, NULL},
    {"http://host:8a/", NULL, 0, NULL},
    {"http://host:80:80/", NULL, 0, NULL},
    {"http://host/a b", NULL, 0, NULL},
    {"http://host/a\r\nX-Evil: 1", NULL, 0, NULL},
    {"http://host/\n", NULL, 0, NULL},
    {"http://host/\t", NULL, 0, NULL},
    {"http://host/\x7f", NULL, 0, NULL},
    {"http://host/\xc3\xa9", NULL, 0, NULL},
    {"http://ho%73t/", NULL, 0, NULL},
    {"http://host/#frag", NULL, 0, NULL},
    {"http://[::1/", NULL, 0, NULL},
    {"http://[::1]x/", NULL, 0, NULL},
    {"http://[]/", NULL, 0, NULL},
    {"http://[not-v6]/", NULL, 0, NULL},
    {"http://[::1]:0/", NULL, 0, NULL},
};

static void test_url(void)
{
    struct bk_webhook_url u;
    const char *why;
    for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
        const struct url_case *c = &url_cases[i];
        why = NULL;
        int rc = bk_webhook_parse_url(c->url, &u, &why);
        if (c->host) {
            CHECK_INT(rc, 0);
            if (rc == 0) {
                CHECK_STR(u.host, c->host);
                CHECK_INT(u.port, c->port);
                CHECK_STR(u.path, c->path);
            } else {
                fprintf(stderr, "  url \"%s\": %s\n", c->url, why);
            }
        } else {
            CHECK_INT(rc, -1);
            CHECK(why != NULL && *why);
            if (rc == 0)
                fprintf(stderr, "  url \"%s\" accepted\n", c->url);
        }
    }
    /* NULL, the IPv6 flag, https says what to do, and the length limit. */
    CHECK_INT(bk_webhook_parse_url(NULL, &u, &why), -1);
    CHECK_INT(bk_webhook_parse_url("http://[::1]:8080/", &u, &why), 0);
    CHECK(u.ipv6);
    CHECK_INT(bk_webhook_parse_url("http://h/", &u, &why), 0);
    CHECK(!u.ipv6);
    CHECK_INT(bk_webhook_parse_url("https://h/", &u, &why), -1);
    CHECK(strstr(why, "proxy") != NULL);
    /* Refused for the right reason, not by luck of a later check. */
    CHECK_INT(bk_webhook_parse_url("http://evil.com@example.com/", &u, &why), -1);
    CHECK(strstr(why, "userinfo") != NULL);
    CHECK_INT(bk_webhook_parse_url("http://u:p@example.com/", &u, &why), -1);
    CHECK(strstr(why, "userinfo") != NULL);
    CHECK_INT(bk_webhook_parse_url("http://h:0/", &u, &why), -1);
    CHECK(strstr(why, "port") != NULL);
    CHECK_INT(bk_webhook_parse_url("http://h/a b", &u, &why), -1);
    CHECK(strstr(why, "space") != NULL);
    CHECK_INT(bk_webhook_parse_url("example.com/", &u, &why), -1);
    CHECK(strstr(why, "http://") != NULL);
    char *big = malloc(BK_WEBHOOK_URL_MAX + 2);
    memcpy(big, "http://h/", 9);
    memset(big + 9, 'a', BK_WEBHOOK_URL_MAX - 9);
    big[BK_WEBHOOK_URL_MAX] = '\0';
    CHECK_INT(bk_webhook_parse_url(big, &u, &why), 0); /* exactly the limit */
    CHECK_INT(strlen(u.path), BK_WEBHOOK_URL_MAX - 8);
    big[BK_WEBHOOK_URL_MAX] = 'a';
    big[BK_WEBHOOK_URL_MAX + 1] = '\0';
    CHECK_INT(bk_webhook_parse_url(big, &u, &why), -1);
    free(big);
    char host[300] = "http://";
    memset(host + 7, 'h', 256);
    host[263] = '\0';
    CHECK_INT(bk_webhook_parse_url(host, &u, &why), -1); /* host over 255 bytes */
}

static void test_body(void)
{
    size_t l0, l1, bl;
    const char d0[] = "{\"userId\":1,\"message\":\"hi\"}";
    char *e0 = bk_webhook_encode_event("1700000000000-0", "livechat", 1700000000000LL, d0,
                                       sizeof(d0) - 1, &l0);
    CHECK_MEM(e0, l0,
              "{\"id\":\"1700000000000-0\",\"t\":\"livechat\",\"ts\":1700000000000,"
              "\"d\":{\"userId\":1,\"message\":\"hi\"}}");
    const char d1[] = "{\"userId\":2,\"username\":\"bob\"}";
    char *e1 = bk_webhook_encode_event("1700000000000-1", "user-online", 1700000000001LL, d1,
                                       sizeof(d1) - 1, &l1);
    char *ev[] = {e0, e1};
    size_t evl[] = {l0, l1};
    char *body = bk_webhook_encode_body(ev, evl, 2, &bl);
    static const char want[] =
        "{\"events\":[{\"id\":\"1700000000000-0\",\"t\":\"livechat\",\"ts\":1700000000000,"
        "\"d\":{\"userId\":1,\"message\":\"hi\"}},{\"id\":\"1700000000000-1\",\"t\":\"user-"
        "online\","
        "\"ts\":1700000000001,\"d\":{\"userId\":2,\"username\":\"bob\"}}]}";
    CHECK_MEM(body, bl, want);
    /* The fixed body's signature, computed independently (Python's hmac). */
    char sig[BK_WEBHOOK_SIG_SIZE];
    bk_webhook_sign("webhook-secret", 14, body, bl, sig);
    CHECK_STR(sig, "sha256=bee4a6b9ded25360ab2c052e4bbb5e6deb56007d7655d6ceae242e53159084cc");
    free(body);
    /* No events: still a valid body. */
    body = bk_webhook_encode_body(NULL, NULL, 0, &bl);
    CHECK_MEM(body, bl, "{\"events\":[]}");
    free(body);
    free(e0);
    free(e1);
    /* Hostile id and event name are escaped: the result stays JSON. */
    char *e2 = bk_webhook_encode_event("1-\"0\\", "x\"\n\x01y", -0, "{}", 2, &l0);
    CHECK_MEM(e2, l0, "{\"id\":\"1-\\\"0\\\\\",\"t\":\"x\\\"\\u000a\\u0001y\",\"ts\":0,\"d\":{}}");
    struct json_object *o = json_tokener_parse(e2);
    CHECK(o != NULL);
    if (o) {
        struct json_object *t;
        CHECK(json_object_object_get_ex(o, "t", &t));
        CHECK_STR(json_object_get_string(t), "x\"\n\x01y");
    }
    json_object_put(o);
    free(e2);
}

static void test_sign(void)
{
    char sig[BK_WEBHOOK_SIG_SIZE];
    /* RFC 4231 §4.3, test case 2. */
    bk_webhook_sign("Jefe", 4, "what do ya want for nothing?", 28, sig);
    CHECK_STR(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK_INT(strlen(sig), 71);
}

static void test_backoff(void)
{
    /* Base 500 ms doubling to the 30 s cap, each within ±25 %. */
    const long base[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    const uint32_t rnds[] = {0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu};
    for (int a = 1; a <= 9; a++)
        for (size_t i = 0; i < sizeof(rnds) / sizeof(rnds[0]); i++) {
            long ms = bk_webhook_backoff_ms(a, rnds[i]);
            CHECK(ms >= base[a - 1] * 3 / 4);
            CHECK(ms <= base[a - 1] * 5 / 4);
        }
    CHECK_INT(bk_webhook_backoff_ms(1, 0), 375);
    CHECK_INT(bk_webhook_backoff_ms(1, 0x80000000u), 500);
    CHECK(bk_webhook_backoff_ms(1, 0xffffffffu) >= 624);
    CHECK_INT(bk_webhook_backoff_ms(7, 0), 22500);
    /* Huge attempt counts neither overflow nor pass the cap. */
    CHECK(bk_webhook_backoff_ms(1000000, 0xffffffffu) <= 37500);
    CHECK(bk_webhook_backoff_ms(0, 0) == 375);
}

int main(void)
{
    test_url();
    test_body();
    test_sign();
    test_backoff();
    return check_report("test_webhook");
}
