/*
 * log.h - readable, leveled logging to stderr or a file.
 *
 * One line per event: "2026-11-21T20:01:02.123Z INFO  gateway gw-1: text".
 * The level is checked before the arguments are evaluated, so a debug line
 * on a hot path costs one comparison when debug is off. Everything a peer
 * could have put into the formatted text is escaped (log_escape()), so it can
 * neither start a forged line nor drive the terminal or log viewer that shows
 * it. Per-connection lines carry the connection id by convention
 * ("conn 42: ...").
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

extern int log_min_level;

/* Writes to the file at path (appending) instead of stderr; path is
 * borrowed and kept for log_reopen(). Returns 0, or -1 (errno) leaving the
 * output as it was. */
int log_open(const char *path);
/* Reopens the log file (after logrotate moved it: SIGHUP). No-op on
 * stderr. Returns 0 or -1. */
int log_reopen(void);
/* SIGHUP's work for both programs: log_reopen(), and a line saying how it
 * went (in the new file). */
void log_reopen_on_signal(void);
/* Sets the process name shown on every line (borrowed; keep it alive). */
void log_set_ident(const char *ident);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int log_parse_level(const char *name);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The escaping every log line goes through, exposed for its unit test.
 * Copies src[0..len) into dst so that it stays one harmless line:
 *   - "\\" for a backslash, so an escape in the output is always ours;
 *   - "\xNN" for C0 controls (newline, carriage return, escape, tab...),
 *     DEL, and every byte that is not part of valid UTF-8;
 *   - "\uNNNN" for the valid UTF-8 encodings of C1 controls (U+0080..U+009F:
 *     U+009B is a one-character CSI for some terminals), the line and
 *     paragraph separators U+2028/U+2029 (line breaks to some viewers) and
 *     the bidirectional overrides U+202A..U+202E, U+2066..U+2069 (which can
 *     make a line read as something else);
 *   - everything else (printable ASCII, other UTF-8) unchanged.
 * Stops before an escape or a UTF-8 sequence that would not fit, so the
 * output never ends in half of one. dst is NUL-terminated when size > 0.
 * Returns the number of bytes written, without the NUL.
 */
size_t log_escape(char *dst, size_t size, const char *src, size_t len);

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= log_min_level)                                                                \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)

/*
 * Rate-limited warning for things peers can trigger at will (protocol
 * errors): at most `per_sec` lines per second per call site, then one line
 * saying how many were suppressed.
 */
#define log_warn_rl(per_sec, ...)                                                                  \
    do {                                                                                           \
        static long log_rl_sec_;                                                                   \
        static int log_rl_n_, log_rl_dropped_;                                                     \
        if (LOG_WARN >= log_min_level &&                                                           \
            log_ratelimit(&log_rl_sec_, &log_rl_n_, &log_rl_dropped_, (per_sec)))                  \
            log_write(LOG_WARN, __VA_ARGS__);                                                      \
    } while (0)

/* Helper for log_warn_rl: returns 1 when this line may be written. */
int log_ratelimit(long *sec, int *n, int *dropped, int per_sec);

/*
 * Always-on invariant check, in every build type (NDEBUG does not remove
 * it, unlike assert()): when cond is false, writes one ERROR line naming the
 * expression, file, line and function, then abort()s. For our own
 * invariants only, never for what a peer sent (that gets an error answer).
 * A broken invariant left running corrupts state other users see; a core
 * dump is refused by cfg_protect_secrets(), so the log line is the record.
 */
#define HERALD_ASSERT(cond)                                                                        \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            log_assert_fail(#cond, __FILE__, __LINE__, __func__);                                  \
    } while (0)

/* HERALD_ASSERT's failure path: logs (whatever the level) and aborts. */
_Noreturn void log_assert_fail(const char *expr, const char *file, int line, const char *func);

#endif
