/*
 * test_i64v.c - the growable id array (common/i64v.c): appends past several
 * growths, sorted inserts from any order with duplicates, lookups of every
 * present and absent neighbour, and free.
 */
#include "check.h"
#include "i64v.h"

int main(void)
{
    struct i64v a = {0};
    CHECK(!i64v_has_sorted(&a, 1)); /* empty */
    for (int64_t i = 0; i < 1000; i++)
        CHECK_INT(i64v_push(&a, i * 3), 0);
    CHECK_INT(a.n, 1000);
    CHECK(a.cap >= 1000);
    for (int64_t i = 0; i < 3000; i++)
        CHECK(i64v_has_sorted(&a, i) == (i % 3 == 0));
    CHECK(!i64v_has_sorted(&a, -3) && !i64v_has_sorted(&a, 3000));
    i64v_free(&a);
    CHECK(a.v == NULL && a.n == 0 && a.cap == 0);
    i64v_free(&a); /* twice: a no-op */

    static const int64_t in[] = {50, 10, 40, 10, 30, 20, 50, 60, 5, 40};
    int inserted = 0;
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        inserted += i64v_insert_sorted(&a, in[i]);
    CHECK_INT(inserted, 7);
    CHECK_INT(a.n, 7);
    for (size_t i = 1; i < a.n; i++)
        CHECK(a.v[i - 1] < a.v[i]);
    CHECK(i64v_has_sorted(&a, 5) && i64v_has_sorted(&a, 60) && !i64v_has_sorted(&a, 25));
    i64v_free(&a);
    return check_report("i64v");
}
