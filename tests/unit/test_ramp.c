/* Unit tests for ramp.c: Firestore's 500/50/5 ramp-up, on a clock of the test's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ramp.h"

#define T0 1000000
#define MINUTES5 (5 * 60 * 1000)

/* 500 writes a second, +50% every 5 minutes (Google's "500/50/5" rule): 500, 750, 1125 … */
static void test_rate(void **state)
{
    struct ramp r;

    (void)state;
    ramp_init(&r, T0, 1, T0);
    assert_true(ramp_rate(&r, T0) == 500.0);
    assert_true(ramp_rate(&r, T0 + MINUTES5 - 1) == 500.0);
    assert_true(ramp_rate(&r, T0 + MINUTES5) == 750.0);
    assert_true(ramp_rate(&r, T0 + 2 * MINUTES5) == 1125.0);
    assert_true(ramp_rate(&r, T0 + 3 * MINUTES5 + 1) == 1687.5);
    /* the files of a partitioned outbox share it */
    ramp_init(&r, T0, 4, T0);
    assert_true(ramp_rate(&r, T0) == 125.0);
    assert_true(ramp_rate(&r, T0 + MINUTES5) == 187.5);
    ramp_init(&r, T0, 0, T0);
    assert_true(ramp_rate(&r, T0) == 500.0);
}

/* A full bucket holds a second's writes; an empty one refills at the rate. */
static void test_bucket(void **state)
{
    struct ramp r;

    (void)state;
    ramp_init(&r, T0, 1, T0);
    assert_int_equal(ramp_take(&r, 300, T0), 0);
    assert_int_equal(ramp_take(&r, 200, T0), 0);
    /* empty: 50 writes at 500 a second are 100 ms away (and a millisecond, rounding up) */
    assert_int_equal(ramp_take(&r, 50, T0), 101);
    assert_int_equal(ramp_take(&r, 50, T0 + 60), 41); /* 30 refilled, 20 to go */
    assert_int_equal(ramp_take(&r, 50, T0 + 100), 0);
    /* more than a second's worth waits for a full bucket, then goes */
    assert_int_equal(ramp_take(&r, 2000, T0 + 100), 1001);
    assert_int_equal(ramp_take(&r, 2000, T0 + 1100), 0);
    /* a bucket never holds more than a second's worth, however long it waited */
    ramp_init(&r, T0, 1, T0);
    assert_int_equal(ramp_take(&r, 500, T0 + 60000), 0);
    assert_int_equal(ramp_take(&r, 1, T0 + 60000), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
