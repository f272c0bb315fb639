/*
 * memtrim.c - one trim per burst (memtrim.h).
 */
#include "memtrim.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void memtrim_init(struct memtrim *t)
{
    *t = (struct memtrim){.fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)};
    t->open = t->fd >= 0;
    t->last_rss = memtrim_rss(t);
}

void memtrim_free(struct memtrim *t)
{
    if (t->open)
        close(t->fd);
    t->open = false;
}

size_t memtrim_rss(const struct memtrim *t)
{
    char buf[128];
    if (!t->open)
        return 0;
    ssize_t n = pread(t->fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

bool memtrim_decide(struct memtrim *t, size_t rss)
{
    bool growing = rss > t->last_rss + MEMTRIM_GROWTH;
    t->last_rss = rss;
    if (growing) {
        t->grew = true;
        return false;
    }
    if (!t->grew)
        return false;
    t->grew = false;
    return true;
}

void memtrim_trimmed(struct memtrim *t, size_t rss_after)
{
    t->last_rss = rss_after;
    t->trims++;
}

bool memtrim_tick(struct memtrim *t, int64_t now_ms)
{
    if (now_ms - t->last_check_ms < MEMTRIM_CHECK_MS)
        return false;
    t->last_check_ms = now_ms;
    size_t rss = memtrim_rss(t);
    if (!rss || !memtrim_decide(t, rss))
        return false;
    malloc_trim(0);
    memtrim_trimmed(t, memtrim_rss(t));
    return true;
}
