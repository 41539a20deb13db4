/* Unit tests for number.c: DynamoDB numbers as exact decimals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "number.h"

struct case_ {
    const char *text;      /* DynamoDB's text */
    const char *canonical; /* plain decimal; NULL when the text is refused */
    int fits_int64;        /* 1 when integral and within int64 */
    int64_t i;             /* the value when it fits */
    int exact_double;      /* 1 when the nearest double equals it */
};

static const struct case_ cases[] = {
    {"0", "0", 1, 0, 1},
    {"-0", "0", 1, 0, 1},
    {"0.000", "0", 1, 0, 1},
    {"00042", "42", 1, 42, 1},
    {"1E+3", "1000", 1, 1000, 1},
    {"1e3", "1000", 1, 1000, 1},
    {"1.50", "1.5", 0, 0, 1},
    {"-2.25", "-2.25", 0, 0, 1},
    {"0.1", "0.1", 0, 0, 0},
    {"0.0000000000000000000000000000000000001", "0.0000000000000000000000000000000000001", 0, 0, 0},
    {"1E-130", NULL, 0, 0, 0}, /* canonical checked separately: 130 digits */
    {"9223372036854775807", "9223372036854775807", 1, INT64_MAX, 0},
    {"-9223372036854775808", "-9223372036854775808", 1, INT64_MIN, 1},
    {"9223372036854775808", "9223372036854775808", 0, 0, 1},
    {"-9223372036854775809", "-9223372036854775809", 0, 0, 0},
    {"9007199254740993", "9007199254740993", 1, 9007199254740993LL, 0},
    {"9007199254740992", "9007199254740992", 1, 9007199254740992LL, 1},
    {"12345678901234567890123456789012345678", "12345678901234567890123456789012345678", 0, 0, 0},
    {"1E+20", "100000000000000000000", 0, 0, 1},
    {"1.5E+1", "15", 1, 15, 1},
    {"123.456E-2", "1.23456", 0, 0, 0},
    {"-1E-1", "-0.1", 0, 0, 0},
};

static const char *const refused[] = {
    "",       "-",      "abc",
    "1.2.3",  "1e",     "1e+",
    "--1",    "1 ",     " 1",
    "0x10",   "NaN",    "Infinity",
    "1E+126", "1E-131", "123456789012345678901234567890123456789", /* 39 significant digits */
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct case_ *c = &cases[i];
        struct number n;
        struct buf b;
        const char *why = NULL;
        int64_t v = 0;
        int exact = -1;

        assert_int_equal(number_parse(c->text, &n, &why), 0);
        buf_init(&b, 1024);
        assert_int_equal(number_canonical(&n, &b), 0);
        if (c->canonical)
            assert_string_equal(buf_str(&b), c->canonical);
        buf_release(&b);
        assert_int_equal(number_to_int64(&n, &v), c->fits_int64);
        if (c->fits_int64)
            assert_true(v == c->i);
        (void)number_to_double(&n, &exact);
        assert_int_equal(exact, c->exact_double);
    }
}

static void test_extremes(void **state)
{
    struct number n;
    struct buf b;
    const char *why;
    int exact;

    (void)state;
    buf_init(&b, 1024);
    assert_int_equal(number_parse("1E-130", &n, &why), 0);
    assert_int_equal(number_canonical(&n, &b), 0);
    assert_int_equal(b.len, 132); /* "0." + 129 zeros + "1" */
    assert_string_equal(b.data + 131, "1");
    buf_reset(&b);
    assert_int_equal(number_parse("9.9999999999999999999999999999999999999E+125", &n, &why), 0);
    assert_int_equal(number_canonical(&n, &b), 0);
    assert_int_equal(b.len, 126);
    assert_true(number_to_double(&n, &exact) > 9.99e125);
    assert_int_equal(exact, 0);
    buf_release(&b);
}

static void test_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct number n;
        const char *why = NULL;
        assert_int_equal(number_parse(refused[i], &n, &why), -1);
        assert_non_null(why);
    }
}

static void test_double_values(void **state)
{
    struct number n;
    const char *why;
    int exact;

    (void)state;
    assert_int_equal(number_parse("0.1", &n, &why), 0);
    assert_true(number_to_double(&n, &exact) == 0.1);
    assert_int_equal(number_parse("-2.5E-3", &n, &why), 0);
    assert_true(number_to_double(&n, &exact) == -0.0025);
    assert_int_equal(number_parse("9223372036854775808", &n, &why), 0);
    assert_true(number_to_double(&n, &exact) == 9223372036854775808.0);
    assert_int_equal(exact, 1);
}

static int sign(int c)
{
    return (c > 0) - (c < 0);
}

static void test_order(void **state)
{
    /* ascending */
    static const char *const sorted[] = {"-1E+10", "-100",   "-99.5", "-1",  "-0.001",
                                         "0",      "0.0001", "0.5",   "1",   "1.5",
                                         "2",      "10",     "99",    "100", "1E+10"};
    size_t n = sizeof(sorted) / sizeof(sorted[0]);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            struct number a, b;
            const char *why;
            assert_int_equal(number_parse(sorted[i], &a, &why), 0);
            assert_int_equal(number_parse(sorted[j], &b, &why), 0);
            assert_int_equal(sign(number_cmp(&a, &b)), i < j ? -1 : i > j ? 1 : 0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),   cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_refused), cmocka_unit_test(test_double_values),
        cmocka_unit_test(test_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
