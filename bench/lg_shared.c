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
