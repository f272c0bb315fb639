/*
 * admin_main.c - herald-admin: the operator's tool for the user database
 * and for minting demo tokens (PROTOCOL.md §8).
 *
 *   herald-admin [--db F] init
 *   herald-admin user add NAME [--avatar URL]     prints the new id
 *   herald-admin user bulk PREFIX COUNT           COUNT users PREFIX<id>, prints the first id
 *   herald-admin user del NAME
 *   herald-admin friend add NAME NAME
 *   herald-admin friend bulk FIRST COUNT K        ring of COUNT users from id FIRST, ~K friends
 * each herald-admin stats set NAME WINS LOSSES herald-admin token NAME [--ttl S]             prints
 * a signed token herald-admin demo                             demo users and friendships
 *   herald-admin [--redis-url U] status           the live picture from Redis
 */
#include "bk.h"
#include "bk_feed.h"
#include "bk_store.h"

#include "config.h"
#include "jwt_auth.h"
#include "rds.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct admin_config {
    const char *db_path;
    const char *jwt_secret;
    const char *jwt_secret_file;
    const char *redis_url;
};

#define OPT(name, type, field, def, min, max, flags, help)                                         \
    {                                                                                              \
        name, type, offsetof(struct admin_config, field), def, min, max, flags, help               \
    }

static const struct cfg_opt admin_opts[] = {
    OPT("db", CFG_STR, db_path, "herald.db", 0, 0, 0, "SQLite user database"),
    OPT("jwt-secret", CFG_STR, jwt_secret, NULL, 0, 0, CFG_SECRET, "HS256 secret (for token)"),
    OPT("jwt-secret-file", CFG_STR, jwt_secret_file, NULL, 0, 0, 0,
        "file holding the HS256 secret"),
    OPT("redis-url", CFG_STR, redis_url, "redis://127.0.0.1:6379", 0, 0, 0, "Redis, for status"),
};

static const char admin_usage[] =
    "usage: herald-admin [options] COMMAND\n"
    "Commands:\n"
    "  init                          create or migrate the database schema\n"
    "  user add NAME [--avatar URL]  add a user, print its id\n"
    "  user bulk PREFIX COUNT        add COUNT users named PREFIX<id> at once (benchmarks),\n"
    "                                print the first id (the others follow it)\n"
    "  user del NAME                 delete a user (friendships and stats go too)\n"
    "  friend add NAME NAME          make two users friends\n"
    "  friend bulk FIRST COUNT K     users FIRST..FIRST+COUNT-1 on a ring, each befriended\n"
    "                                with its K/2 neighbours either side (benchmarks);\n"
    "                                prints the pairs added\n"
    "  stats set NAME WINS LOSSES    set a user's game stats\n"
    "  token NAME [--ttl SECONDS]    print an access token (default ttl 3600)\n"
    "  demo                          add demo users (alice, bob, carol, dave, erin)\n"
    "  status                        gateways, leases, online users, stream lag (from Redis)";

static int die(const char *what, const char *detail)
{
    fprintf(stderr, "herald-admin: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static char *load_secret(const struct admin_config *cfg, size_t *len)
{
    if (cfg->jwt_secret && *cfg->jwt_secret) {
        *len = strlen(cfg->jwt_secret);
        return strdup(cfg->jwt_secret);
    }
    if (!cfg->jwt_secret_file)
        return NULL;
    return (char *)cfg_read_secret_file(cfg->jwt_secret_file, len);
}

static int cmd_token(struct bk_store *s, const struct admin_config *cfg, int argc, char **argv)
{
    if (argc < 1)
        return die("usage", "token NAME [--ttl SECONDS]");
    long ttl = 3600;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc) {
            char *end;
            ttl = strtol(argv[++i], &end, 10);
            if (*end || ttl < 1 || ttl > 365L * 86400)
                return die("bad --ttl", argv[i]);
        } else {
            return die("unexpected argument", argv[i]);
        }
    }
    struct bk_user_row row;
    int f = bk_store_user_by_name(s, argv[0], &row);
    if (f <= 0)
        return die(f == 0 ? "no such user" : s->err, argv[0]);
    size_t kl = 0;
    char *key = load_secret(cfg, &kl);
    if (!key || !kl) {
        free(key);
        return die("no JWT secret", "set HERALD_JWT_SECRET or --jwt-secret-file");
    }
    char *tok = jwt_auth_sign("HS256", (const unsigned char *)key, kl, row.id,
                              (int64_t)time(NULL) + ttl, 0, NULL, NULL);
    free(key);
    if (!tok)
        return die("signing failed", NULL);
    printf("%s\n", tok);
    free(tok);
    return 0;
}

static int cmd_demo(struct bk_store *s)
{
    static const struct {
        const char *name;
        long wins, losses;
    } users[] = {{"alice", 12, 3}, {"bob", 7, 7}, {"carol", 2, 9}, {"dave", 20, 1}, {"erin", 0, 0}};
    static const char *const friends[][2] = {{"alice", "bob"}, {"bob", "carol"}, {"alice", "dave"}};
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        struct bk_user_row row;
        if (bk_store_user_by_name(s, users[i].name, &row) == 1)
            continue; /* demo is idempotent */
        char avatar[64];
        snprintf(avatar, sizeof(avatar), "/avatars/%s.svg", users[i].name);
        int64_t id = bk_store_user_add(s, users[i].name, avatar);
        if (id < 0 || bk_store_stats_set(s, users[i].name, users[i].wins, users[i].losses) != 0)
            return die(s->err, users[i].name);
        printf("user %s id %lld\n", users[i].name, (long long)id);
    }
    for (size_t i = 0; i < sizeof(friends) / sizeof(friends[0]); i++)
        if (bk_store_friend_add(s, friends[i][0], friends[i][1]) != 0)
            return die(s->err, NULL);
    printf("demo users ready\n");
    return 0;
}

static long long int_reply(redisContext *rc, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* The live picture, read from Redis only (the broker's state is there). */
static int cmd_status(const struct admin_config *cfg)
{
    char err[256];
    redisContext *rc = rds_connect_sync(cfg->redis_url, err, sizeof(err));
    if (!rc)
        return die(err, NULL);
    redisReply *r = redisCommand(rc, "GET %s", BK_ALIVE_KEY);
    /* "<consumer> <term>": the name is what an operator knows. */
    printf("broker:        %.*s\n",
           r && r->type == REDIS_REPLY_STRING ? (int)strcspn(r->str, " ") : 11,
           r && r->type == REDIS_REPLY_STRING ? r->str : "NOT RUNNING");
    freeReplyObject(r);
    printf("online users:  %lld\n", int_reply(rc, "SCARD %s", EV_ONLINE_SET));
    printf("matchmaking:   %lld queued\n", int_reply(rc, "LLEN %s", BK_QUEUE_KEY));
    printf("events stream: %lld entries", int_reply(rc, "XLEN %s", EV_STREAM_IN));
    r = redisCommand(rc, "XINFO GROUPS %s", EV_STREAM_IN);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        for (size_t j = 0; g->type == REDIS_REPLY_ARRAY && j + 1 < g->elements; j += 2)
            if (g->element[j + 1]->type == REDIS_REPLY_INTEGER &&
                (strcmp(g->element[j]->str, "pending") == 0 ||
                 strcmp(g->element[j]->str, "lag") == 0))
                printf(", %s %lld", g->element[j]->str, g->element[j + 1]->integer);
    }
    freeReplyObject(r);
    /* The backend's feed: each consumer group with what it has not
     * acknowledged yet (a group that never does holds the stream). */
    printf("\nhooks stream:  %lld entries", int_reply(rc, "XLEN %s", BK_HOOKS_STREAM));
    r = redisCommand(rc, "XINFO GROUPS %s", BK_HOOKS_STREAM);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        for (size_t j = 0; g->type == REDIS_REPLY_ARRAY && j + 1 < g->elements; j += 2) {
            const redisReply *k = g->element[j], *v = g->element[j + 1];
            if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                printf("%s group %s", i ? ";" : ",", v->str);
            else if (v->type == REDIS_REPLY_INTEGER &&
                     (strcmp(k->str, "pending") == 0 || strcmp(k->str, "lag") == 0))
                printf(" %s %lld", k->str, v->integer);
        }
    }
    freeReplyObject(r);
    printf("\ngateways:\n");
    r = redisCommand(rc, "SMEMBERS %s", BK_GATEWAYS_KEY);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *id = r->element[i]->str;
        char key[300];
        snprintf(key, sizeof(key), "%s%s:lease", EV_GW_STREAM_PREFIX, id);
        long long ttl = int_reply(rc, "PTTL %s", key);
        snprintf(key, sizeof(key), "%s%s", BK_CONNS_PREFIX, id);
        long long conns = int_reply(rc, "HLEN %s", key);
        printf("  %-24s %6lld connections  lease %s", id, conns, ttl > 0 ? "ok" : "LAPSED");
        if (ttl > 0)
            printf(" (%lld ms left)", ttl);
        printf("\n");
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        printf("  (none)\n");
    freeReplyObject(r);
    redisFree(rc);
    return 0;
}

static int run(struct bk_store *s, const struct admin_config *cfg, int argc, char **argv)
{
    const char *c1 = argv[0], *c2 = argc > 1 ? argv[1] : "";
    if (strcmp(c1, "init") == 0) {
        printf("schema at version %d\n", bk_store_schema_version());
        return 0;
    }
    if (strcmp(c1, "user") == 0 && strcmp(c2, "add") == 0 && argc >= 3) {
        const char *avatar = NULL;
        if (argc == 5 && strcmp(argv[3], "--avatar") == 0)
            avatar = argv[4];
        else if (argc != 3)
            return die("usage", "user add NAME [--avatar URL]");
        int64_t id = bk_store_user_add(s, argv[2], avatar);
        if (id < 0)
            return die(s->err, NULL);
        printf("%lld\n", (long long)id);
        return 0;
    }
    if (strcmp(c1, "user") == 0 && strcmp(c2, "bulk") == 0 && argc == 4) {
        char *end;
        long long n = strtoll(argv[3], &end, 10);
        if (*end || end == argv[3])
            return die("usage", "user bulk PREFIX COUNT");
        int64_t first = bk_store_users_add_bulk(s, argv[2], n);
        if (first < 0)
            return die(s->err, NULL);
        printf("%lld\n", (long long)first);
        return 0;
    }
    if (strcmp(c1, "user") == 0 && strcmp(c2, "del") == 0 && argc == 3) {
        int r = bk_store_user_del(s, argv[2]);
        if (r < 0)
            return die(s->err, NULL);
        if (r == 0)
            return die("no such user", argv[2]);
        printf("deleted %s\n", argv[2]);
        return 0;
    }
    if (strcmp(c1, "friend") == 0 && strcmp(c2, "add") == 0 && argc == 4) {
        if (bk_store_friend_add(s, argv[2], argv[3]) != 0)
            return die(s->err, NULL);
        printf("%s and %s are friends\n", argv[2], argv[3]);
        return 0;
    }
    if (strcmp(c1, "friend") == 0 && strcmp(c2, "bulk") == 0 && argc == 5) {
        char *e1, *e2, *e3;
        long long first = strtoll(argv[2], &e1, 10), n = strtoll(argv[3], &e2, 10);
        long k = strtol(argv[4], &e3, 10);
        if (*e1 || *e2 || *e3 || e1 == argv[2] || e2 == argv[3] || e3 == argv[4] || k > 100000)
            return die("usage", "friend bulk FIRST COUNT K");
        int64_t added = bk_store_friends_add_ring(s, first, n, (int)k);
        if (added < 0)
            return die(s->err, NULL);
        printf("%lld\n", (long long)added);
        return 0;
    }
    if (strcmp(c1, "stats") == 0 && strcmp(c2, "set") == 0 && argc == 5) {
        char *e1, *e2;
        long w = strtol(argv[3], &e1, 10), l = strtol(argv[4], &e2, 10);
        if (*e1 || *e2)
            return die("usage", "stats set NAME WINS LOSSES");
        if (bk_store_stats_set(s, argv[2], w, l) != 0)
            return die(s->err, NULL);
        printf("stats of %s: %ld wins, %ld losses\n", argv[2], w, l);
        return 0;
    }
    if (strcmp(c1, "token") == 0)
        return cmd_token(s, cfg, argc - 1, argv + 1);
    if (strcmp(c1, "demo") == 0)
        return cmd_demo(s);
    fprintf(stderr, "herald-admin: unknown command (see --help)\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct admin_config cfg;
    /* `token` holds the JWT secret: no core dump of it either. */
    if (cfg_protect_secrets() != 0) {
        perror("cannot disable core dumps");
        return 2;
    }
    int argi = cfg_load(admin_opts, sizeof(admin_opts) / sizeof(admin_opts[0]), &cfg, argc, argv,
                        admin_usage);
    if (argi == CFG_LOAD_HELP)
        return 0;
    if (argi < 0)
        return 2;
    if (argi >= argc) {
        cfg_usage(stderr, admin_opts, sizeof(admin_opts) / sizeof(admin_opts[0]), admin_usage);
        return 2;
    }
    if (strcmp(argv[argi], "status") == 0)
        return cmd_status(&cfg);
    struct bk_store s;
    bool create = strcmp(argv[argi], "init") == 0 || strcmp(argv[argi], "demo") == 0;
    if (bk_store_open(&s, cfg.db_path, create) != 0) {
        fprintf(stderr, "herald-admin: %s: %s%s\n", cfg.db_path, s.err,
                create ? "" : " (run herald-admin init first)");
        bk_store_close(&s);
        return 1;
    }
    int rc = run(&s, &cfg, argc - argi, argv + argi);
    bk_store_close(&s);
    return rc;
}
