/*
 * i64v.c - see i64v.h.
 */
#include "i64v.h"

#include <stdlib.h>
#include <string.h>

/* Room for one more element. Returns 0 or -1 (a unchanged). */
static int grow(struct i64v *a)
{
    if (a->n < a->cap)
        return 0;
    size_t cap = a->cap ? a->cap * 2 : 32;
    if (cap > SIZE_MAX / sizeof(*a->v))
        return -1;
    int64_t *v = realloc(a->v, cap * sizeof(*v));
    if (!v)
        return -1;
    a->v = v;
    a->cap = cap;
    return 0;
}

int i64v_push(struct i64v *a, int64_t x)
{
    if (grow(a) != 0)
        return -1;
    a->v[a->n++] = x;
    return 0;
}

size_t i64v_lower_bound(const struct i64v *a, int64_t x)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int i64v_insert_sorted(struct i64v *a, int64_t x)
{
    size_t i = i64v_lower_bound(a, x);
    if (i < a->n && a->v[i] == x)
        return 0;
    if (grow(a) != 0)
        return -1;
    memmove(a->v + i + 1, a->v + i, (a->n - i) * sizeof(*a->v));
    a->v[i] = x;
    a->n++;
    return 1;
}

bool i64v_remove_sorted(struct i64v *a, int64_t x)
{
    size_t i = i64v_lower_bound(a, x);
    if (i == a->n || a->v[i] != x)
        return false;
    memmove(a->v + i, a->v + i + 1, (a->n - i - 1) * sizeof(*a->v));
    a->n--;
    return true;
}

bool i64v_has_sorted(const struct i64v *a, int64_t x)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->v[mid] == x)
            return true;
        if (a->v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

void i64v_free(struct i64v *a)
{
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}
