/*
 * memtrim.h - hands the heap pages a burst freed back to the system, once
 * the burst is over, and otherwise leaves the heap alone.
 *
 * glibc returns only the top of the heap by itself, so after a ramp of
 * handshakes or a fan-out backlog a process would keep its peak RSS. But
 * malloc_trim() walks every free chunk and madvise()s each one again, even
 * the ones it released last time: measured at 100 000 connections, 3.6 ms
 * on average and up to 49 ms per call in a gateway, once a second, which
 * was most of the presence p99. So a process checks its RSS once a second
 * (/proc/self/statm, one pread) and trims only when it stops growing after
 * having grown: one trim per burst, none in a steady state.
 */
#ifndef HERALD_MEMTRIM_H
#define HERALD_MEMTRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How often the RSS is read, and the growth between two reads that counts
 * as a burst. */
#define MEMTRIM_CHECK_MS 1000
#define MEMTRIM_GROWTH ((size_t)1 << 20)

struct memtrim {
    int fd;          /* /proc/self/statm while open is set */
    bool open;       /* false in a zeroed struct: nothing to close */
    size_t last_rss; /* bytes, at the last check (after the trim if one ran) */
    bool grew;       /* it grew since the last trim */
    int64_t last_check_ms;
    uint64_t trims; /* malloc_trim() calls so far */
};

/* A zeroed struct is a valid closed one: memtrim_free() does nothing. */
void memtrim_init(struct memtrim *t);
void memtrim_free(struct memtrim *t);
/* Called often (each timer tick); does the check when it is due and trims
 * when the check says so. Returns whether it trimmed. */
bool memtrim_tick(struct memtrim *t, int64_t now_ms);
/* The decision alone, for a check that read rss bytes: true when the
 * caller should trim now (then it reports the RSS after with
 * memtrim_trimmed()). */
bool memtrim_decide(struct memtrim *t, size_t rss);
void memtrim_trimmed(struct memtrim *t, size_t rss_after);
/* The resident set in bytes, 0 when it cannot be read. */
size_t memtrim_rss(const struct memtrim *t);

#endif
