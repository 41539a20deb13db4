/* test_json.c: U+0000 through cJSON, the shortest text of a double, JSON text strings. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/json.c"

/* Parses text, prints it back: U+0000 survives wherever a string can be. */
static void test_nul_round_trip(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{\"a\":\"x\\u0000y\"}", "{\"a\":\"x\\u0000y\"}"},
        {"{\"\\u0000k\\u0000\":\"\\u0000\"}", "{\"\\u0000k\\u0000\":\"\\u0000\"}"},
        {"[\"\\u0000\\u0000\",\"a\\u0000\",\"\"]", "[\"\\u0000\\u0000\",\"a\\u0000\",\"\"]"},
        /* an escaped backslash, then the letters u0000: no U+0000 at all */
        {"[\"\\\\u0000\"]", "[\"\\\\u0000\"]"},
        {"[\"\\\\\\u0000\"]", "[\"\\\\\\u0000\"]"},
        /* other escapes untouched */
        {"[\"\\u0001\\n\\u00e9\\ud83d\\ude00\"]", "[\"\\u0001\\n\xc3\xa9\xf0\x9f\x98\x80\"]"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *v = json_parse(cases[i].in, strlen(cases[i].in));
        char *text;
        assert_non_null(v);
        text = json_print(v);
        assert_string_equal(text, cases[i].out);
        cJSON_free(text);
        cJSON_Delete(v);
    }
}

static void test_nul_in_the_tree(void **state)
{
    const char *in = "{\"s\":\"a\\u0000b\"}";
    cJSON *v = json_parse(in, strlen(in));
    const char *s;

    (void)state;
    s = cJSON_GetObjectItemCaseSensitive(v, "s")->valuestring;
    assert_int_equal(strlen(s), 4); /* a C0 80 b */
    assert_int_equal(json_text_len(s, strlen(s)), 3);
    assert_true(json_text_valid(s, strlen(s)));
    {
        unsigned char out[8];
        assert_int_equal(json_text_utf8(s, strlen(s), out), 3);
        assert_memory_equal(out, "a\0b", 3);
    }
    cJSON_Delete(v);
}

/* A raw C0 byte is never taken for U+0000: it stays ill-formed. */
static void test_raw_c0_stays_invalid(void **state)
{
    const char in[] = "{\"s\":\"a\xc0\x80\"}";
    cJSON *v = json_parse(in, sizeof(in) - 1);
    const char *s;
    char *text;

    (void)state;
    assert_non_null(v);
    s = cJSON_GetObjectItemCaseSensitive(v, "s")->valuestring;
    assert_false(json_text_valid(s, strlen(s)));
    text = json_print(v);
    assert_null(strstr(text, "\\u0000"));
    cJSON_free(text);
    cJSON_Delete(v);
}

static void test_parse_refuses_what_cjson_refuses(void **state)
{
    static const char *const bad[] = {
        "", "{", "{\"a\":\"\\u0000}", "[1] x", "[\"\\u0000\"] ]", "\"\\uD800\\u0000\""};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(json_parse(bad[i], strlen(bad[i])));
    {
        cJSON *v = json_parse("[1] \n", 5);
        assert_non_null(v);
        cJSON_Delete(v);
    }
}

static void test_parse_prefix_stops_after_the_value(void **state)
{
    const char *in = "{\"a\":\"\\u0000\"},{\"b\":1}";
    const char *end = NULL;
    cJSON *v = json_parse_prefix(in, strlen(in), &end);
    char *text;

    (void)state;
    assert_non_null(v);
    assert_ptr_equal(end, in + 14);
    text = json_print(v);
    assert_string_equal(text, "{\"a\":\"\\u0000\"}");
    cJSON_free(text);
    cJSON_Delete(v);
}

/* A message quoting a U+0000 (C0 80 in the tree) writes it \u0000, and is cut to fit. */
static void test_text_message(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(json_text_message("a\xc0\x80"
                                       "b",
                                       out, sizeof(out)),
                     8);
    assert_string_equal(out, "a\\u0000b");
    assert_int_equal(json_text_message("0123456789\xc0\x80", out, 16), 10);
    assert_string_equal(out, "0123456789"); /* no half escape */
    assert_int_equal(json_text_message("plain", out, 3), 2);
    assert_string_equal(out, "pl");
}

static void test_text_order(void **state)
{
    /* U+0000 sorts first, then by UTF-8 bytes; a prefix sorts before what extends it */
    const char *nul = "\xc0\x80",
               *nul_a = "\xc0\x80"
                        "a",
               *a_nul = "a\xc0\x80";
    (void)state;
    assert_true(json_text_cmp(nul, "") > 0);
    assert_true(json_text_cmp(nul, "\x01") < 0);
    assert_true(json_text_cmp(nul_a, "a") < 0);
    assert_true(json_text_cmp("a", a_nul) < 0);
    assert_true(json_text_cmp(a_nul, "a\x01") < 0);
    assert_true(json_text_cmp("\xc3\xa9", "z") > 0);
    assert_int_equal(json_text_cmp(a_nul, a_nul), 0);
    assert_true(json_text_cmp(nul, "\xc3\xa9") < 0);
}

/* The texts JavaScript's String(x) gives for these doubles (node), but for -0, which String
 * writes "0" and ddb2fs keeps "-0" to read back with its sign. */
static void test_double_text(void **state)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {-0.0, "-0"},
        {0.0, "0"},
        {1.5, "1.5"},
        {84.78415655635598, "84.78415655635598"},
        {9223372036854775808.0, "9223372036854776000"},
        {1e21, "1e+21"},
        {1e20, "100000000000000000000"},
        {1e-7, "1e-7"},
        {1.5e-7, "1.5e-7"},
        {0.000001, "0.000001"},
        {123456.789, "123456.789"},
        {5e-324, "5e-324"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {2.225073858507201e-308, "2.225073858507201e-308"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {4.35e-321, "4.35e-321"},
        {9007199254740993.0, "9007199254740992"},
        {0.30000000000000004, "0.30000000000000004"},
        {1e23, "1e+23"},
        {8.41e21, "8.41e+21"},
        {5.0e-324 * 3, "1.5e-323"},
        {-1.2345678901234568e+37, "-1.2345678901234568e+37"},
        {1e126, "1e+126"},
        {2.0, "2"},
        {1125899906842624.0, "1125899906842624"}, /* 2^50 */
        {4503599627370495.5, "4503599627370495.5"},
        {0.000123, "0.000123"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[JSON_DOUBLE_TEXT];
        size_t n = json_double_text(cases[i].d, text);
        assert_string_equal(text, cases[i].text);
        assert_int_equal(n, strlen(text));
    }
}

/* Every text reads back as the double it was made from, over the whole range. */
static void test_double_text_reads_back(void **state)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;

    (void)state;
    for (int i = 0; i < 200000; i++) {
        double d;
        char text[JSON_DOUBLE_TEXT];
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(&d, &x, sizeof(d));
        if (!isfinite(d))
            continue;
        json_double_text(d, text);
        assert_true(strtod(text, NULL) == d);
        assert_true(signbit(strtod(text, NULL)) == signbit(d));
    }
}

static void test_number_items(void **state)
{
    cJSON *o = cJSON_CreateObject();
    char *text;

    (void)state;
    assert_non_null(json_add_number(o, "a", 0.1));
    assert_non_null(json_add_number(o, "b", 1733000000000.0));
    assert_null(json_add_number(o, "c", INFINITY));
    assert_null(json_number(NAN));
    text = json_print(o);
    assert_string_equal(text, "{\"a\":0.1,\"b\":1733000000000}");
    assert_true(json_number_value(cJSON_GetObjectItemCaseSensitive(o, "a")) == 0.1);
    cJSON_free(text);
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nul_round_trip),
        cmocka_unit_test(test_nul_in_the_tree),
        cmocka_unit_test(test_raw_c0_stays_invalid),
        cmocka_unit_test(test_parse_refuses_what_cjson_refuses),
        cmocka_unit_test(test_parse_prefix_stops_after_the_value),
        cmocka_unit_test(test_text_message),
        cmocka_unit_test(test_text_order),
        cmocka_unit_test(test_double_text),
        cmocka_unit_test(test_double_text_reads_back),
        cmocka_unit_test(test_number_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
