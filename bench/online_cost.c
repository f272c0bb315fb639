/*
 * online_cost.c - herald-online-cost: what one presence transition costs a
 * gateway's copy of the online set (gateway/gw_online.c), a sorted array of
 * user ids (common/i64v.c) kept exact by every transition in either scope,
 * at the sizes docs/SCALE.md plans for. Each transition is a binary search
 * and a memmove of the ids above it: half the array on average, so the cost
 * grows with the number of users online, on every gateway.
 *
 * Usage: herald-online-cost [ONLINE...]   (default 50000 500000 1000000)
 * One JSON line per size: microseconds per transition (a random user goes
 * offline and comes back: two transitions), the median of 5 passes.
 */
#include "i64v.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Transitions per pass: enough to average the memmove, few enough that
 * the 1 M size takes a second. */
#define OC_PAIRS 1000
#define OC_PASSES 5

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long dflt[] = {50000, 500000, 1000000};
    int n = argc > 1 ? argc - 1 : 3;
    for (int s = 0; s < n; s++) {
        long online = argc > 1 ? atol(argv[s + 1]) : dflt[s];
        if (online < 1) {
            fprintf(stderr, "usage: herald-online-cost [ONLINE...]\n");
            return 2;
        }
        struct i64v a = {0};
        /* Half of 2 * online users are online: odd ids. */
        for (long i = 0; i < online; i++)
            if (i64v_push(&a, 2 * (int64_t)i + 1) < 0)
                return 1;
        double pass[OC_PASSES];
        uint32_t r = 12345;
        for (int p = 0; p < OC_PASSES; p++) {
            double t0 = now_s();
            for (int k = 0; k < OC_PAIRS; k++) {
                r = r * 1664525u + 1013904223u;
                int64_t id = 2 * (int64_t)(r % (uint32_t)online) + 1;
                i64v_remove_sorted(&a, id);
                i64v_insert_sorted(&a, id);
            }
            pass[p] = (now_s() - t0) / (2.0 * OC_PAIRS) * 1e6;
        }
        qsort(pass, OC_PASSES, sizeof(pass[0]), cmp_d);
        printf("{\"online\": %ld, \"bytes\": %ld, \"us_per_transition\": %.2f}\n", online,
               online * (long)sizeof(int64_t), pass[OC_PASSES / 2]);
        i64v_free(&a);
    }
    return 0;
}
