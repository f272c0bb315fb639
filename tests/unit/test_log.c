/*
 * test_log.c - forged log lines (docs/SECURITY.md, "Injection"): whatever a
 * peer puts into a logged value (a path, a header, an event name) must come
 * out as one line, with no control character, no terminal escape sequence
 * and nothing a log viewer would take for a line break or a reordering.
 *
 * log_escape() is checked against a table, then cut at every output size;
 * log_write() is checked end to end on a real file: one call, one line.
 */
#include "check.h"
#include "log.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct vec {
    const char *name;
    const char *in;
    size_t in_len; /* 0: strlen(in) */
    const char *want;
};

static const struct vec vecs[] = {
    {"plain ASCII", "conn 42: GET /ws 401", 0, "conn 42: GET /ws 401"},
    {"empty", "", 0, ""},
    {"LF starts no line", "x\nDATE INFO  gateway gw-a: forged", 0,
     "x\\x0aDATE INFO  gateway gw-a: forged"},
    {"CRLF", "a\r\nb", 0, "a\\x0d\\x0ab"},
    {"lone CR (overwrites the line on a terminal)", "ok\rFAKE", 0, "ok\\x0dFAKE"},
    {"ANSI colour and erase line", "\x1b[31mred\x1b[0m\x1b[2K", 0, "\\x1b[31mred\\x1b[0m\\x1b[2K"},
    {"OSC title sequence with BEL", "\x1b]0;pwned\x07", 0, "\\x1b]0;pwned\\x07"},
    {"tab, vertical tab, form feed, backspace", "\t\v\f\b", 0, "\\x09\\x0b\\x0c\\x08"},
    {"DEL", "a\x7f", 0, "a\\x7f"},
    {"NUL inside the value", "a\0b", 3, "a\\x00b"},
    {"backslash is doubled, so a literal \\x0a is not ours", "path\\x0a", 0, "path\\\\x0a"},
    {"UTF-8 text passes", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0,
     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
    {"C1 CSI encoded as UTF-8 (U+009B)",
     "\xc2\x9b"
     "31m",
     0, "\\u009b31m"},
    {"C1 NEL (U+0085)",
     "a\xc2\x85"
     "b",
     0, "a\\u0085b"},
    {"raw 0x9b byte (CSI in 8-bit terminals)",
     "\x9b"
     "31m",
     0, "\\x9b31m"},
    {"line separator U+2028",
     "a\xe2\x80\xa8"
     "b",
     0, "a\\u2028b"},
    {"paragraph separator U+2029", "a\xe2\x80\xa9", 0, "a\\u2029"},
    {"right-to-left override U+202E",
     "user \xe2\x80\xae"
     "nimda",
     0, "user \\u202enimda"},
    {"isolate U+2066..U+2069", "\xe2\x81\xa6x\xe2\x81\xa9", 0, "\\u2066x\\u2069"},
    {"overlong slash", "\xc0\xaf", 0, "\\xc0\\xaf"},
    {"overlong newline (C0 8A)", "\xc0\x8a", 0, "\\xc0\\x8a"},
    {"surrogate", "\xed\xa0\x80", 0, "\\xed\\xa0\\x80"},
    {"above U+10FFFF", "\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80"},
    {"truncated sequence at the end", "ok\xe2\x82", 0, "ok\\xe2\\x82"},
    {"lone continuation byte", "\x80x", 0, "\\x80x"},
    {"latin-1 byte", "caf\xe9", 0, "caf\\xe9"},
};

/* Runs log_escape() with a fresh buffer of size bytes; returns it (caller
 * frees). */
static char *escape(const char *in, size_t len, size_t size, size_t *outlen)
{
    char *buf = malloc(size ? size : 1);
    *outlen = log_escape(buf, size, in, len);
    return buf;
}

static void test_table(void)
{
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const struct vec *v = &vecs[i];
        size_t len = v->in_len ? v->in_len : strlen(v->in), ol;
        char *out = escape(v->in, len, 256, &ol);
        if (strcmp(out, v->want) != 0)
            fprintf(stderr, "vector \"%s\": got \"%s\"\n", v->name, out);
        CHECK_STR(out, v->want);
        CHECK_INT(ol, strlen(v->want));
        free(out);
    }
}

/* Every output size: the result is NUL-terminated, shorter than the
 * buffer, and exactly the escaping of some prefix of the input (never half
 * an escape or half a UTF-8 sequence). */
static void test_truncation(void)
{
    static const char in[] = "a\n\xe2\x82\xac\x1b[1m\xc2\x9b\\z\xff";
    size_t len = sizeof(in) - 1, full_len;
    char *full = escape(in, len, 512, &full_len);
    for (size_t size = 1; size <= full_len + 1; size++) {
        size_t ol;
        char *out = escape(in, len, size, &ol);
        CHECK(ol < size);
        CHECK_INT(strlen(out), ol);
        CHECK(memcmp(out, full, ol) == 0);
        bool is_prefix_escape = false;
        for (size_t k = 0; k <= len && !is_prefix_escape; k++) {
            size_t pl;
            char *p = escape(in, k, 512, &pl);
            is_prefix_escape = pl == ol && memcmp(p, out, ol) == 0;
            free(p);
        }
        CHECK(is_prefix_escape);
        free(out);
    }
    size_t ol;
    char *zero = escape(in, len, 0, &ol);
    CHECK_INT(ol, 0);
    free(zero);
    free(full);
}

/* Reads the log file at path into text (NUL-terminated, at most size - 1
 * bytes), removes the file, and checks something was written. Returns the
 * length, or <= 0 when nothing could be read. */
static ssize_t slurp_and_unlink(const char *path, char *text, size_t size)
{
    int rfd = open(path, O_RDONLY);
    ssize_t n = rfd >= 0 ? read(rfd, text, size - 1) : -1;
    if (rfd >= 0)
        close(rfd);
    unlink(path);
    CHECK(n > 0);
    if (n > 0)
        text[n] = '\0';
    return n;
}

/* log_write() on a file: every call is exactly one line that starts with
 * the timestamp, whatever the arguments held; a value far over the line
 * buffer is cut, still on one line. */
static void test_lines_on_file(void)
{
    char path[] = "/tmp/herald-test-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    CHECK_INT(log_open(path), 0);
    log_set_ident("gateway test");
    log_min_level = LOG_DEBUG;
    size_t calls = 0;
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++, calls++)
        log_info("conn %zu: value %.*s end", i, (int)(vecs[i].in_len ? vecs[i].in_len : 200),
                 vecs[i].in);
    char big[3000];
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = i % 7 == 0 ? '\n' : (i % 7 == 1 ? '\x1b' : 'F');
    big[sizeof(big) - 1] = '\0';
    log_warn("huge %s", big);
    calls++;
    log_min_level = LOG_WARN;
    log_debug("not written\n%s", "at all");
    log_info("not written either");
    log_min_level = LOG_INFO;

    char text[65536];
    ssize_t n = slurp_and_unlink(path, text, sizeof(text));
    if (n <= 0)
        return;
    size_t lines = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        lines++;
        /* "2026-11-21T20:01:02.123Z INFO  gateway test: " */
        CHECK(nl - line > 40);
        CHECK(line[4] == '-' && line[10] == 'T' && line[23] == 'Z');
        CHECK(memcmp(line + 25, "INFO  gateway test: ", 20) == 0 ||
              memcmp(line + 25, "WARN  gateway test: ", 20) == 0);
        for (char *p = line; p < nl; p++)
            CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    }
    CHECK_INT(lines, calls);
    CHECK(text[n - 1] == '\n');
    CHECK(strstr(text, "not written") == NULL);
    CHECK(strstr(text, "value x\\x0aDATE INFO  gateway gw-a: forged end") != NULL);
}

/* HERALD_ASSERT is on in this build although CMake's RelWithDebInfo defines
 * NDEBUG: a true condition costs nothing, a false one writes one ERROR line
 * (even with the level set above ERROR) and kills the process with SIGABRT. */
static void test_assert(void)
{
    volatile int one = 1;
    HERALD_ASSERT(one == 1);
    CHECK(true); /* still running */

    char path[] = "/tmp/herald-test-assert-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (log_open(path) != 0)
            _exit(2);
        log_set_ident("assert test");
        log_min_level = LOG_ERROR + 1;
        HERALD_ASSERT(one == 2);
        _exit(0); /* not reached when the assert works */
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    char text[4096];
    ssize_t n = slurp_and_unlink(path, text, sizeof(text));
    if (n <= 0)
        return;
    CHECK(strstr(text, "ERROR assert test: assertion failed: one == 2 (") != NULL);
    CHECK(strstr(text, "test_log.c:") != NULL);
    CHECK(strstr(text, ", test_assert)\n") != NULL);
}

int main(void)
{
    test_table();
    test_truncation();
    test_lines_on_file();
    test_assert();
    return check_report("log");
}
