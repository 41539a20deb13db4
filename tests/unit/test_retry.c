/* Unit tests for retry.c: statuses, what is transient, backoff bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "retry.h"

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(retry_status_from_name("UNAVAILABLE"), RETRY_UNAVAILABLE);
    assert_int_equal(retry_status_from_name("ALREADY_EXISTS"), RETRY_ALREADY_EXISTS);
    assert_int_equal(retry_status_from_name("ABORTED"), RETRY_ABORTED);
    assert_int_equal(retry_status_from_name("NO_SUCH"), RETRY_UNKNOWN);
    assert_string_equal(retry_status_name(RETRY_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
    assert_string_equal(retry_status_name(RETRY_NETWORK), "NETWORK");
}

static void test_http_codes(void **state)
{
    (void)state;
    assert_int_equal(retry_status_from_http(429), RETRY_RESOURCE_EXHAUSTED);
    assert_int_equal(retry_status_from_http(503), RETRY_UNAVAILABLE);
    assert_int_equal(retry_status_from_http(401), RETRY_UNAUTHENTICATED);
    assert_int_equal(retry_status_from_http(403), RETRY_PERMISSION_DENIED);
    assert_int_equal(retry_status_from_http(504), RETRY_DEADLINE_EXCEEDED);
    assert_int_equal(retry_status_from_http(418), RETRY_UNKNOWN);
}

static void test_transient(void **state)
{
    static const enum retry_status again[] = {
        RETRY_RESOURCE_EXHAUSTED, RETRY_UNAVAILABLE, RETRY_ABORTED,
        RETRY_DEADLINE_EXCEEDED,  RETRY_INTERNAL,    RETRY_NETWORK};
    static const enum retry_status never[] = {
        RETRY_INVALID_ARGUMENT,    RETRY_PERMISSION_DENIED, RETRY_NOT_FOUND, RETRY_ALREADY_EXISTS,
        RETRY_FAILED_PRECONDITION, RETRY_UNAUTHENTICATED,   RETRY_UNKNOWN};

    (void)state;
    for (size_t i = 0; i < sizeof(again) / sizeof(again[0]); i++)
        assert_true(retry_transient(again[i]));
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        assert_false(retry_transient(never[i]));
}

static void test_backoff(void **state)
{
    (void)state;
    for (unsigned attempt = 1; attempt < 40; attempt++) {
        int64_t ceiling = RETRY_BASE_MS;
        for (unsigned i = 1; i < attempt && ceiling < RETRY_CAP_MS; i++)
            ceiling *= 2;
        if (ceiling > RETRY_CAP_MS)
            ceiling = RETRY_CAP_MS;
        /* every random draw stays within [ceiling/10, ceiling] */
        for (uint32_t rnd = 0; rnd < 100000; rnd += 997) {
            int64_t ms = retry_backoff_ms(attempt, rnd * 2654435761u);
            assert_true(ms >= ceiling / 10);
            assert_true(ms <= ceiling);
        }
    }
    /* it grows: the cap is reached, the first retry is short */
    assert_true(retry_backoff_ms(1, 0xFFFFFFFFu) <= 100);
    assert_true(retry_backoff_ms(20, 0) >= RETRY_CAP_MS / 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_http_codes),
        cmocka_unit_test(test_transient),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
