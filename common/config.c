/*
 * config.c - see config.h. Parsing happens once at start-up; nothing here is
 * on a hot path, so clarity wins over speed.
 */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static void env_name(const char *name, char *out, size_t size)
{
    size_t i = 0;
    const char *prefix = "HERALD_";
    while (*prefix && i + 1 < size)
        out[i++] = *prefix++;
    for (; *name && i + 1 < size; name++)
        out[i++] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    out[i] = '\0';
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Stores text value v into the field of opt. Returns 0 or -1 (message printed). */
static int set_value(const struct cfg_opt *opt, void *dst, const char *v, const char *source)
{
    char *field = (char *)dst + opt->offset;
    switch (opt->type) {
    case CFG_STR:
        memcpy(field, &v, sizeof(v));
        return 0;
    case CFG_INT: {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < opt->min || x > opt->max) {
            fprintf(stderr, "%s: %s=\"%s\" is not a whole number in [%ld, %ld]\n", source,
                    opt->name, v, opt->min, opt->max);
            return -1;
        }
        memcpy(field, &x, sizeof(x));
        return 0;
    }
    case CFG_REAL: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !(x >= (double)opt->min && x <= (double)opt->max)) {
            fprintf(stderr, "%s: %s=\"%s\" is not a number in [%ld, %ld]\n", source, opt->name, v,
                    opt->min, opt->max);
            return -1;
        }
        memcpy(field, &x, sizeof(x));
        return 0;
    }
    case CFG_BOOL: {
        int b;
        if (parse_bool(v, &b) != 0) {
            fprintf(stderr, "%s: %s=\"%s\" is not a boolean (true/false)\n", source, opt->name, v);
            return -1;
        }
        memcpy(field, &b, sizeof(b));
        return 0;
    }
    }
    return -1;
}

static const struct cfg_opt *find_opt(const struct cfg_opt *opts, size_t n, const char *name,
                                      size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

int cfg_load(const struct cfg_opt *opts, size_t n, void *dst, int argc, char **argv,
             const char *usage)
{
    char env[128];
    for (size_t i = 0; i < n; i++) {
        /* An option with no default starts unset (NULL / 0), whatever the
         * caller's struct held. */
        char *field = (char *)dst + opts[i].offset;
        size_t size = opts[i].type == CFG_STR    ? sizeof(const char *)
                      : opts[i].type == CFG_INT  ? sizeof(long)
                      : opts[i].type == CFG_REAL ? sizeof(double)
                                                 : sizeof(int);
        memset(field, 0, size);
        if (opts[i].def && set_value(&opts[i], dst, opts[i].def, "default") != 0)
            return -1;
        env_name(opts[i].name, env, sizeof(env));
        const char *v = getenv(env);
        if (v && set_value(&opts[i], dst, v, env) != 0)
            return -1;
    }
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            return i + 1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cfg_usage(stdout, opts, n, usage);
            return CFG_LOAD_HELP;
        }
        if (strncmp(a, "--", 2) != 0)
            break;
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct cfg_opt *opt = find_opt(opts, n, name, len);
        if (!opt) {
            fprintf(stderr, "unknown option --%.*s (see --help)\n", (int)len, name);
            return -1;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (opt->type == CFG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "-", 1) == 0 ||
                                             parse_bool(argv[i + 1], &(int){0}) != 0)) {
            v = "true";
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "option --%s needs a value\n", opt->name);
            return -1;
        }
        if (set_value(opt, dst, v, "flag") != 0)
            return -1;
    }
    return i;
}

void cfg_usage(FILE *out, const struct cfg_opt *opts, size_t n, const char *usage)
{
    char env[128];
    fprintf(out,
            "%s\nOptions (each also read from the environment variable shown; "
            "a flag wins):\n",
            usage);
    for (size_t i = 0; i < n; i++) {
        env_name(opts[i].name, env, sizeof(env));
        fprintf(out, "  --%-24s %s\n  %-26s   [%s; default: %s]\n", opts[i].name, opts[i].help, "",
                env, opts[i].def ? opts[i].def : "none");
    }
    fprintf(out, "  --%-24s this text\n", "help");
}

/* Formats one option as " name=value" (secrets masked) into buf. */
static void format_opt(const struct cfg_opt *opt, const void *src, char *buf, size_t size)
{
    const char *field = (const char *)src + opt->offset;
    switch (opt->type) {
    case CFG_STR: {
        const char *v;
        memcpy(&v, field, sizeof(v));
        if (opt->flags & CFG_SECRET)
            v = v ? "(set)" : "(unset)";
        snprintf(buf, size, " %s=%.300s", opt->name, v ? v : "(unset)");
        return;
    }
    case CFG_INT: {
        long v;
        memcpy(&v, field, sizeof(v));
        snprintf(buf, size, " %s=%ld", opt->name, v);
        return;
    }
    case CFG_REAL: {
        double v;
        memcpy(&v, field, sizeof(v));
        snprintf(buf, size, " %s=%g", opt->name, v);
        return;
    }
    case CFG_BOOL: {
        int v;
        memcpy(&v, field, sizeof(v));
        snprintf(buf, size, " %s=%s", opt->name, v ? "true" : "false");
        return;
    }
    }
}

void cfg_log(const struct cfg_opt *opts, size_t n, const void *src)
{
    /* Log lines are capped near 1 KB: long configurations continue on a
     * second line rather than being cut. */
    char line[800], one[400];
    size_t pos = 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        format_opt(&opts[i], src, one, sizeof(one));
        size_t l = strlen(one);
        if (pos + l >= sizeof(line)) {
            log_info("config%s:%s", first ? "" : " (cont.)", line);
            first = false;
            pos = 0;
        }
        memcpy(line + pos, one, l + 1);
        pos += l;
    }
    if (pos)
        log_info("config%s:%s", first ? "" : " (cont.)", line);
}

int cfg_start(const struct cfg_opt *opts, size_t n, void *dst, int argc, char **argv,
              const char *usage, const char *const *log_level, const char *const *log_file)
{
    if (cfg_protect_secrets() != 0) {
        fprintf(stderr, "cannot disable core dumps: %s\n", strerror(errno));
        return 2;
    }
    int argi = cfg_load(opts, n, dst, argc, argv, usage);
    if (argi == CFG_LOAD_HELP)
        return 0;
    if (argi < 0)
        return 2;
    if (argi < argc) {
        fprintf(stderr, "unexpected argument \"%s\" (see --help)\n", argv[argi]);
        return 2;
    }
    int lvl = log_parse_level(*log_level);
    if (lvl < 0) {
        fprintf(stderr, "bad --log-level \"%s\"\n", *log_level);
        return 2;
    }
    log_min_level = lvl;
    if (*log_file && log_open(*log_file) != 0) {
        fprintf(stderr, "cannot open --log-file %s: %s\n", *log_file, strerror(errno));
        return 2;
    }
    return -1;
}

int cfg_protect_secrets(void)
{
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0)
        return -1;
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : -1;
}

unsigned char *cfg_read_secret_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    /* 64 KiB holds any HMAC secret or PEM public key. */
    unsigned char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *len = n;
    return buf;
}

int cfg_parse_hostport(const char *s, char *host, size_t host_size, int *port)
{
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        hl = (size_t)(rb - s - 1);
        s++;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl + 1 > host_size)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}
