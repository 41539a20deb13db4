/* Unit tests for d2f.c: the status codes' texts and Lambda error types, error reports, UTF-8
 * and table-name checks, control characters escaped for a terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "d2f.h"
#include "handler.h"

/* Every code from D2F_ENOMEM to the last has a text and an error type of its own: a caller,
 * an operator and an alarm can tell them apart. */
static void test_each_code_says_one_thing(void **state)
{
    static const struct {
        int code;
        const char *type;
    } codes[] = {
        {D2F_ENOMEM, "ddb2fs.OutOfMemory"},    {D2F_EINPUT, "ddb2fs.MalformedEvent"},
        {D2F_ECONFIG, "ddb2fs.ConfigError"},   {D2F_EIO, "ddb2fs.OutboxError"},
        {D2F_EDB, "ddb2fs.OutboxError"},       {D2F_ELIMIT, "ddb2fs.MalformedEvent"},
        {D2F_ESCHEMA, "ddb2fs.SchemaError"},   {D2F_EAUTH, "ddb2fs.AuthError"},
        {D2F_EDAMAGE, "ddb2fs.OutboxCorrupt"}, {D2F_ETIME, "ddb2fs.TimeBudgetSpent"},
        {D2F_ELEASE, "ddb2fs.LeaseHeld"},      {D2F_EUNREACHABLE, "ddb2fs.Unreachable"},
        {D2F_EREMOTE, "ddb2fs.Error"},         {D2F_EUSAGE, "ddb2fs.Error"},
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);

    (void)state;
    assert_int_equal(n, D2F_EUNREACHABLE); /* every code is listed */
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(handler_error_type(codes[i].code), codes[i].type);
        assert_string_not_equal(d2f_strerror(codes[i].code), "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(d2f_strerror(codes[i].code), d2f_strerror(codes[j].code));
    }
    assert_string_equal(d2f_strerror(D2F_OK), "ok");
    assert_string_equal(d2f_strerror(D2F_EUNREACHABLE + 1), "unknown error");
}

static void test_errf_fills_and_truncates(void **state)
{
    struct d2f_err err = {0};
    char big[2 * D2F_ERR_MSG];

    (void)state;
    assert_int_equal(d2f_errf(&err, D2F_ETIME, "%d commits unsent", 3), D2F_ETIME);
    assert_int_equal(err.code, D2F_ETIME);
    assert_string_equal(err.msg, "3 commits unsent");
    assert_int_equal(d2f_errf(NULL, D2F_ELEASE, "x"), D2F_ELEASE); /* NULL: the code only */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    d2f_errf(&err, D2F_EIO, "%s", big);
    assert_int_equal(strlen(err.msg), D2F_ERR_MSG - 1);
}

static void test_utf8(void **state)
{
    static const char *const good[] = {"",
                                       "plain",
                                       "\xC3\xA9",
                                       "\xE2\x82\xAC",
                                       "\xF0\x9F\x98\x80",
                                       "\xF4\x8F\xBF\xBF",
                                       "\xED\x9F\xBF"};
    static const char *const bad[] = {
        "\xC0\xAF",         /* overlong '/' */
        "\xE0\x80\xAF",     /* overlong, three bytes */
        "\xED\xA0\x80",     /* a surrogate, U+D800 */
        "\xF4\x90\x80\x80", /* over U+10FFFF */
        "\x80",             /* a continuation alone */
        "\xC3",             /* cut */
        "\xE2\x82",         /* cut */
        "\xFF",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(d2f_utf8_valid(good[i], strlen(good[i])), 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(d2f_utf8_valid(bad[i], strlen(bad[i])), 0);
    /* a zero byte inside is a character like another (n counts it) */
    assert_int_equal(d2f_utf8_valid("a\0b", 3), 1);
}

static void test_table_names(void **state)
{
    char longest[256], over[257];

    (void)state;
    memset(longest, 'T', 255);
    longest[255] = '\0';
    memset(over, 'T', 256);
    over[256] = '\0';
    assert_int_equal(d2f_table_name_ok("Orders", 6), 1);
    assert_int_equal(d2f_table_name_ok("a.b-c_9", 7), 1);
    assert_int_equal(d2f_table_name_ok(longest, 255), 1);
    assert_int_equal(d2f_table_name_ok("ab", 2), 0);
    assert_int_equal(d2f_table_name_ok(over, 256), 0);
    assert_int_equal(d2f_table_name_ok("a b", 3), 0);
    assert_int_equal(d2f_table_name_ok("a/bc", 4), 0);
    assert_int_equal(d2f_table_name_ok("t\xC3\xA9t", 4), 0);
}

static void test_controls_escaped(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"a\tb\nc\x1b[31m", "a\\x09b\\x0ac\\x1b[31m"},
        {"del\x7f", "del\\x7f"},
        {"back\\slash", "back\\\\slash"},
        {"c1 \xC2\x9B", "c1 \\u009b"},
        {"nul \xC0\x80 here", "nul \\u0000 here"},
        {"\xC3\xA9t\xC3\xA9", "\xC3\xA9t\xC3\xA9"}, /* other characters stay */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = d2f_escape_controls(cases[i].in);
        assert_non_null(got);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
}

static int64_t fixed_now(void)
{
    return 1735689600123;
}

static int64_t slept;

static void counted_sleep(int64_t ms)
{
    slept += ms;
}

/* The one clock reads CLOCK_REALTIME in epoch ms; a test's clock and pause replace it, and NULL
 * brings the real ones back. */
static void test_clock(void **state)
{
    struct timespec ts;
    int64_t before, now;

    (void)state;
    clock_gettime(CLOCK_REALTIME, &ts);
    before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    now = d2f_now_ms();
    assert_true(now >= before && now < before + 1000);
    d2f_clock_set(fixed_now, counted_sleep);
    assert_int_equal(d2f_now_ms(), 1735689600123);
    d2f_sleep_ms(200);
    d2f_sleep_ms(0);  /* nothing */
    d2f_sleep_ms(-5); /* nothing */
    assert_int_equal(slept, 200);
    d2f_clock_set(NULL, NULL);
    assert_true(d2f_now_ms() >= now);
    d2f_sleep_ms(1);
    assert_int_equal(slept, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_code_says_one_thing),
        cmocka_unit_test(test_errf_fills_and_truncates),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_table_names),
        cmocka_unit_test(test_controls_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
