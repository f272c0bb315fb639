/*
 * test_gw_auth.c - the gateway's identity pieces that need no socket: the
 * token lifecycle both endpoints share (one status enum, mapped by each to
 * its own answer), the deleted-accounts set, and the client-event table
 * (whoami and get-users are Socket.IO-only on purpose).
 */
#include "check.h"
#include "gw_auth.h"

#include <stdlib.h>
#include <time.h>

static const unsigned char key[] = "unit-test-secret-0123456789abcdef";

/* A token for uid valid for ttl seconds from now (caller frees). */
static char *token(int64_t uid, int64_t ttl)
{
    return jwt_auth_sign("HS256", key, sizeof(key) - 1, uid, (int64_t)time(NULL) + ttl, 0, NULL,
                         NULL);
}

static void test_lifecycle(struct gw_auth *a)
{
    struct gw_token_life l;
    int64_t now = 1000, uid;
    enum jwt_auth_status jst;
    /* A guest is never due and cannot refresh. */
    gw_token_life_start(a, &l, 0, 0, now);
    CHECK_INT(gw_token_life_check(a, &l, now + 1000000), GW_TOKEN_OK);
    char *t7 = token(7, 3600);
    CHECK_INT(gw_token_life_refresh(a, &l, t7, strlen(t7), &uid, &jst), GW_TOKEN_OTHER_USER);
    /* A user: not due before --token-recheck-ms, expired once due. */
    gw_token_life_start(a, &l, 7, (int64_t)time(NULL) - 1, now);
    CHECK_INT(gw_token_life_check(a, &l, now + 99), GW_TOKEN_OK);
    CHECK_INT(gw_token_life_check(a, &l, now + 100), GW_TOKEN_EXPIRED);
    CHECK_INT(l.next_check_ms, now + 200);
    /* Refresh: missing, bad, another user's, a deleted account's, good. */
    CHECK_INT(gw_token_life_refresh(a, &l, NULL, 0, &uid, &jst), GW_TOKEN_REFUSED);
    CHECK_INT(jst, JWT_AUTH_ERR_MALFORMED);
    CHECK_INT(gw_token_life_refresh(a, &l, "x.y.z", 5, &uid, &jst), GW_TOKEN_REFUSED);
    char *t8 = token(8, 3600);
    CHECK_INT(gw_token_life_refresh(a, &l, t8, strlen(t8), &uid, &jst), GW_TOKEN_OTHER_USER);
    CHECK_INT(uid, 8);
    int64_t old_exp = l.exp;
    gw_auth_user_deleted_add(a, 7);
    CHECK_INT(gw_token_life_refresh(a, &l, t7, strlen(t7), &uid, &jst), GW_TOKEN_DELETED);
    CHECK_INT(l.exp, old_exp);
    a->deleted.n = 0; /* forget 7 again */
    CHECK_INT(gw_token_life_refresh(a, &l, t7, strlen(t7), &uid, &jst), GW_TOKEN_OK);
    CHECK(l.exp > (int64_t)time(NULL));
    CHECK_INT(gw_token_life_check(a, &l, now + 200), GW_TOKEN_OK);
    free(t7);
    free(t8);
}

static void test_deleted(struct gw_auth *a)
{
    static const int64_t ids[] = {50, 3, 70, 3, 0, -4, 20};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        gw_auth_user_deleted_add(a, ids[i]);
    CHECK_INT(a->deleted.n, 4);
    for (size_t i = 1; i < a->deleted.n; i++)
        CHECK(a->deleted.v[i - 1] < a->deleted.v[i]);
    CHECK(gw_auth_user_deleted(a, 20));
    CHECK(!gw_auth_user_deleted(a, 21));
    CHECK(!gw_auth_user_deleted(a, 0));
    /* Past the first allocation. */
    for (int64_t id = 100; id < 300; id++)
        gw_auth_user_deleted_add(a, id);
    CHECK_INT(a->deleted.n, 204);
    CHECK(gw_auth_user_deleted(a, 299) && gw_auth_user_deleted(a, 3));
}

int main(void)
{
    struct gw_auth a;
    struct gw_auth_config cfg = {.cookie_name = "accessToken", .token_recheck_ms = 100};
    gw_auth_init(&a, &cfg, NULL);
    CHECK_INT(jwt_auth_init(&a.jwt, "HS256", key, sizeof(key) - 1, NULL, NULL, NULL, 0), 0);
    test_lifecycle(&a);
    a.deleted.n = 0;
    test_deleted(&a);
    gw_auth_free(&a);
    return check_report("gw_auth");
}
