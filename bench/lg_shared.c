/*
 * lg_shared.c - the state herald-loadgen's parent and workers share (see
 * lg_shared.h): the options, set before the fork and read-only after it,
 * the shared mapping, and the one clock every process reads.
 */
#include "lg_shared.h"

#include <time.h>

struct lg_opts lg_opt;
struct lg_shared *lg_shm;

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long lg_scale_user_of(long g)
{
    static const int r[6] = {0, 1, 1, 2, 2, 2};
    return 3 * (g / 6) + r[g % 6];
}

long lg_scale_first_conn(long u)
{
    static const int off[3] = {0, 1, 3};
    return 6 * (u / 3) + off[u % 3];
}

int lg_scale_tabs(long u)
{
    return (int)(u % 3) + 1;
}
