/*
 * log.c - see log.h. Lines are assembled in a stack buffer and written with
 * one write(2), so lines from several processes sharing a terminal or a
 * journal do not interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>

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

void log_write(int level, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    char msg[1024], line[2200];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), tags[level & 3], log_ident);
    if (n < 0)
        return;
    size_t pos = (size_t)n;
    /* Escape control characters: text that came from a peer must not be able
     * to start a fake log line. */
    for (const unsigned char *p = (const unsigned char *)msg; *p && pos < sizeof(line) - 6; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\\x%02x", *p);
        } else {
            line[pos++] = (char)*p;
        }
    }
    line[pos++] = '\n';
    ssize_t w = write(log_fd, line, pos);
    (void)w;
}
