/*
 * i64v.h - a growable array of int64_t (user ids), optionally kept sorted.
 *
 * Both processes hold small id sets: the gateway the accounts deleted while
 * their tokens may still be valid (a few, looked up on every connection),
 * the broker a user's friends while it shapes one profile event (tens to
 * hundreds). One grow rule for both: double from 32, never shrink until
 * freed. A zeroed struct is an empty array.
 */
#ifndef HERALD_I64V_H
#define HERALD_I64V_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct i64v {
    int64_t *v; /* owned; NULL while empty */
    size_t n, cap;
};

/* Appends x. Returns 0, or -1 when out of memory (a unchanged). */
int i64v_push(struct i64v *a, int64_t x);
/* Inserts x at its place in a sorted array, unless present. Returns 1 when
 * inserted, 0 when already there, -1 when out of memory (a unchanged).
 * Linear in n (one memmove): for sets read more often than changed. */
int i64v_insert_sorted(struct i64v *a, int64_t x);
/* The first index of a sorted array whose value is >= x (n when none). */
size_t i64v_lower_bound(const struct i64v *a, int64_t x);
/* Removes x from a sorted array; false when it was not there. */
bool i64v_remove_sorted(struct i64v *a, int64_t x);
/* Whether x is in a sorted array (binary search). */
bool i64v_has_sorted(const struct i64v *a, int64_t x);
/* Frees the storage and empties a; a zeroed a is a no-op. */
void i64v_free(struct i64v *a);

#endif
