/*
 * test_memtrim.c - when a process trims its heap (common/memtrim.c): never
 * in a steady state or while it grows, once when a growth spurt ends, and
 * the RSS it reads from /proc is that of a live process.
 */
#include "check.h"
#include "memtrim.h"

#include <stdlib.h>
#include <string.h>

#define MB ((size_t)1 << 20)

int main(void)
{
    struct memtrim t;
    memtrim_init(&t);
    CHECK(t.open);
    size_t rss = memtrim_rss(&t);
    CHECK(rss > MB); /* a live process */
    CHECK(t.last_rss > 0);

    /* Steady, and small wobbles: never. */
    t.last_rss = 100 * MB;
    t.grew = false;
    for (int i = 0; i < 10; i++)
        CHECK(!memtrim_decide(&t, 100 * MB + (size_t)(i % 2) * (MB / 2)));
    /* Growing: not while it grows... */
    CHECK(!memtrim_decide(&t, 110 * MB));
    CHECK(!memtrim_decide(&t, 130 * MB));
    CHECK(!memtrim_decide(&t, 150 * MB));
    /* ...once when it stops (even if it shrank), then not again. */
    CHECK(memtrim_decide(&t, 150 * MB));
    memtrim_trimmed(&t, 120 * MB);
    CHECK_INT((long)t.trims, 1);
    CHECK(!memtrim_decide(&t, 120 * MB));
    CHECK(!memtrim_decide(&t, 119 * MB));
    CHECK(!memtrim_decide(&t, 120 * MB + MB)); /* exactly the threshold: not growth */
    /* A second burst: one more. */
    CHECK(!memtrim_decide(&t, 140 * MB));
    CHECK(memtrim_decide(&t, 139 * MB));
    memtrim_trimmed(&t, 125 * MB);
    CHECK_INT((long)t.trims, 2);

    /* The tick: the check is due at most once per MEMTRIM_CHECK_MS, and a
     * real burst (pages touched, then freed) is trimmed once it ends. */
    struct memtrim u;
    memtrim_init(&u);
    int64_t now = 1000000;
    CHECK(!memtrim_tick(&u, now)); /* first check: no growth yet */
    size_t big = 64 * MB;
    char *p = malloc(big);
    CHECK(p != NULL);
    memset(p, 1, big);
    CHECK(!memtrim_tick(&u, now + 10));               /* not due */
    CHECK(!memtrim_tick(&u, now + MEMTRIM_CHECK_MS)); /* grew */
    free(p);
    CHECK(memtrim_tick(&u, now + 2 * MEMTRIM_CHECK_MS)); /* stopped growing: trims */
    CHECK_INT((long)u.trims, 1);
    CHECK(!memtrim_tick(&u, now + 3 * MEMTRIM_CHECK_MS));
    memtrim_free(&u);
    memtrim_free(&t);
    CHECK(!t.open);
    memtrim_free(&t); /* twice: a no-op */
    return check_report("memtrim");
}
