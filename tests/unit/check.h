/*
 * check.h - the smallest test harness that does the job.
 *
 * Each unit test is one plain C executable run by CTest. CHECK* macros count
 * assertions and failures; check_report() prints a summary line and returns
 * the process exit status (0 only when nothing failed and something ran).
 */
#ifndef HERALD_CHECK_H
#define HERALD_CHECK_H

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int check_total;
static int check_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_total++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        check_total++;                                                                             \
        if (check_a_ != check_b_) {                                                                \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK_INT failed: %s == %lld, expected %s == %lld\n",          \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_);                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        check_total++;                                                                             \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                           \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s == \"%s\", expected \"%s\"\n", __FILE__,  \
                    __LINE__, #a, check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)"); \
        }                                                                                          \
    } while (0)

/* Compares a (pointer, length) pair with a C string. */
#define CHECK_MEM(p, n, s)                                                                         \
    do {                                                                                           \
        const char *check_p_ = (const char *)(p);                                                  \
        size_t check_n_ = (n);                                                                     \
        const char *check_s_ = (s);                                                                \
        check_total++;                                                                             \
        if (!check_p_ || check_n_ != strlen(check_s_) ||                                           \
            memcmp(check_p_, check_s_, check_n_) != 0) {                                           \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK_MEM failed: %s is \"%.*s\", expected \"%s\"\n",          \
                    __FILE__, __LINE__, #p, check_p_ ? (int)check_n_ : 6,                          \
                    check_p_ ? check_p_ : "(null)", check_s_);                                     \
        }                                                                                          \
    } while (0)

/* Runs stmt in a forked child (stderr to /dev/null) and checks that it
 * aborts (SIGABRT): how an always-on HERALD_ASSERT is shown to fire. */
#define CHECK_ABORTS(stmt)                                                                         \
    do {                                                                                           \
        fflush(NULL);                                                                              \
        pid_t check_pid_ = fork();                                                                 \
        if (check_pid_ == 0) {                                                                     \
            int check_fd_ = open("/dev/null", O_WRONLY);                                           \
            if (check_fd_ >= 0)                                                                    \
                dup2(check_fd_, 2);                                                                \
            stmt;                                                                                  \
            _exit(0);                                                                              \
        }                                                                                          \
        int check_st_ = 0;                                                                         \
        check_total++;                                                                             \
        if (check_pid_ < 0 || waitpid(check_pid_, &check_st_, 0) != check_pid_ ||                  \
            !WIFSIGNALED(check_st_) || WTERMSIG(check_st_) != SIGABRT) {                           \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK_ABORTS failed: %s did not abort\n", __FILE__, __LINE__,  \
                    #stmt);                                                                        \
        }                                                                                          \
    } while (0)

/* Prints "<name>: N checks, M failed" and returns the exit status. */
static inline int check_report(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_total, check_failed);
    if (check_total == 0) {
        fprintf(stderr, "%s: no check ran\n", name);
        return 1;
    }
    return check_failed ? 1 : 0;
}

#endif
