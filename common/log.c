/*
 * log.c - see log.h. Lines are assembled in a stack buffer and written with
 * one write(2), so lines from several processes sharing a terminal or a
 * journal do not interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_min_level = LOG_INFO;
static const char *log_ident = "herald";

void log_set_ident(const char *ident)
{
    log_ident = ident;
}

int log_parse_level(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return LOG_WARN;
    return -1;
}

int log_ratelimit(long *sec, int *n, int *dropped, int per_sec)
{
    long now = (long)time(NULL);
    if (now != *sec) {
        if (*dropped > 0)
            log_write(LOG_WARN, "(%d similar lines suppressed)", *dropped);
        *sec = now;
        *n = 0;
        *dropped = 0;
    }
    if (*n < per_sec) {
        (*n)++;
        return 1;
    }
    (*dropped)++;
    return 0;
}

static int log_fd = STDERR_FILENO;
static const char *log_path;

int log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    log_path = path;
    return 0;
}

int log_reopen(void)
{
    return log_path ? log_open(log_path) : 0;
}

void log_reopen_on_signal(void)
{
    if (log_reopen() != 0)
        log_error("cannot reopen the log file %s: %s", log_path, strerror(errno));
    else if (log_path)
        log_info("SIGHUP: log file reopened");
}

/* Length of the valid UTF-8 sequence at p[0..n) (2..4) with its code point
 * in *cp, or 0 when p does not start one (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static size_t utf8_sequence(const unsigned char *p, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c, min;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2, c = p[0] & 0x1Fu, min = 0x80;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3, c = p[0] & 0x0Fu, min = 0x800;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4, c = p[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* Code points that are valid text but steer what a reader sees. */
static bool unsafe_code_point(uint32_t c)
{
    return (c >= 0x80 && c <= 0x9F) || c == 0x2028 || c == 0x2029 || (c >= 0x202A && c <= 0x202E) ||
           (c >= 0x2066 && c <= 0x2069);
}

size_t log_escape(char *dst, size_t size, const char *src, size_t len)
{
    const unsigned char *p = (const unsigned char *)src, *end = p + len;
    size_t pos = 0;
    if (size == 0)
        return 0;
    while (p < end) {
        char esc[12];
        const char *out = esc;
        size_t ol, used = 1;
        uint32_t cp;
        if (*p == '\\') {
            out = "\\\\", ol = 2;
        } else if (*p >= 0x20 && *p < 0x7f) {
            out = (const char *)p, ol = 1;
        } else if (*p >= 0x80 && (used = utf8_sequence(p, (size_t)(end - p), &cp)) > 0) {
            if (unsafe_code_point(cp))
                ol = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
            else
                out = (const char *)p, ol = used;
        } else {
            used = 1;
            ol = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p);
        }
        if (pos + ol >= size)
            break;
        memcpy(dst + pos, out, ol);
        pos += ol;
        p += used;
    }
    dst[pos] = '\0';
    return pos;
}

void log_write(int level, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    /* line: the prefix (~60 bytes plus the ident) and msg escaped, which may
     * grow it fourfold; what does not fit is cut, never half an escape. */
    char msg[1024], line[4400];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    int ml = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ml < 0)
        return;
    if ((size_t)ml >= sizeof(msg))
        ml = (int)sizeof(msg) - 1;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), tags[level & 3], log_ident);
    if (n < 0 || (size_t)n >= sizeof(line) - 1)
        return;
    size_t pos = (size_t)n;
    /* Text that came from a peer must not be able to start a fake log line:
     * escaped, with room kept for the newline. */
    pos += log_escape(line + pos, sizeof(line) - pos - 1, msg, (size_t)ml);
    line[pos++] = '\n';
    ssize_t w = write(log_fd, line, pos);
    (void)w;
}

_Noreturn void log_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    /* Written at ERROR whatever log_min_level says: the line is the only
     * trace of why the process stopped. */
    log_write(LOG_ERROR, "assertion failed: %s (%s:%d, %s)", expr, file, line, func);
    abort();
}
