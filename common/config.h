/*
 * config.h - one table per program: every option is a flag and a HERALD_*
 * environment variable, the flag wins, defaults and bounds live beside the
 * option, and the effective configuration is logged once at start-up.
 *
 * A program describes its options as an array of struct cfg_opt pointing at
 * fields of its own config struct (by offset). Strings are borrowed from
 * argv, the environment or the static default: never freed.
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum cfg_type {
    CFG_STR,  /* field: const char * (NULL when unset and no default) */
    CFG_INT,  /* field: long, checked against [min, max] */
    CFG_BOOL, /* field: int, accepts 1/0, true/false, yes/no, on/off */
    CFG_REAL, /* field: double, checked against [min, max] (rates) */
};

#define CFG_SECRET 0x1u /* never printed: the log says "(set)" */

struct cfg_opt {
    const char *name; /* flag "--name"; variable HERALD_NAME with '-' -> '_' */
    enum cfg_type type;
    size_t offset;   /* of the field in the program's config struct */
    const char *def; /* default as text, NULL for none */
    long min, max;   /* CFG_INT bounds */
    unsigned flags;
    const char *help;
};

#define CFG_LOAD_HELP (-2)

/*
 * Fills dst from defaults, then HERALD_* variables, then flags
 * ("--name value", "--name=value", bare "--name" for booleans), stopping at
 * the first argument that is not an option (or after "--").
 * Returns the index in argv of the first positional argument; CFG_LOAD_HELP
 * after printing usage for --help/-h; -1 after printing an error to stderr.
 */
int cfg_load(const struct cfg_opt *opts, size_t n, void *dst, int argc, char **argv,
             const char *usage);

/* Prints usage, the options with their variables and defaults. */
void cfg_usage(FILE *out, const struct cfg_opt *opts, size_t n, const char *usage);

/* Logs the effective configuration on one line (secrets masked). */
void cfg_log(const struct cfg_opt *opts, size_t n, const void *src);

/*
 * Reads a secret or key file (at most 64 KiB), without the trailing newline
 * an editor adds. Returns a NUL-terminated buffer the caller frees with
 * free(), its length in *len; NULL when unreadable.
 */
unsigned char *cfg_read_secret_file(const char *path, size_t *len);

/*
 * Keeps the secrets this process holds (the JWT secret or key, the API key,
 * tokens in flight) out of reach: no core dump (RLIMIT_CORE 0, soft and
 * hard), and not dumpable (PR_SET_DUMPABLE 0). The second matters most: a
 * core_pattern that pipes to a handler (systemd-coredump, apport, a
 * container runtime's) ignores RLIMIT_CORE 0, but no core is written at all
 * for a non-dumpable process; it also stops other processes of the same
 * user from attaching with ptrace or reading /proc/<pid>/mem and environ
 * (only root can debug us now). Call first thing in main(). Returns 0, or
 * -1 (errno) when either call failed (the process should refuse to start).
 */
int cfg_protect_secrets(void);

/*
 * The start every long-running Herald program shares: cfg_protect_secrets(),
 * cfg_load() into dst, no stray positional argument, then the log level and
 * log file from the loaded options (*log_level and *log_file point into dst;
 * *log_file may be NULL: stderr). Each failure is printed to stderr.
 * Returns -1 to go on (the caller then sets its log ident and calls
 * cfg_log()), or the exit status main() should return now: 0 after --help,
 * 2 on any error.
 */
int cfg_start(const struct cfg_opt *opts, size_t n, void *dst, int argc, char **argv,
              const char *usage, const char *const *log_level, const char *const *log_file);

/* Parses "host:port" into host (NUL-terminated, brackets removed for IPv6)
 * and port. Returns 0, or -1 when malformed. */
int cfg_parse_hostport(const char *s, char *host, size_t host_size, int *port);

#endif
