/* Unit tests for verify.c: two Firestore value trees compared by value, types strict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "verify.h"

struct cmp_case {
    const char *want, *got; /* "fields" maps, JSON ("" for none) */
    const char *paths;      /* the expected [{"path","item","document"}] list, JSON */
};

static const struct cmp_case cmp_cases[] = {
    /* equal, whatever the member order and the number's text */
    {"{\"a\":{\"integerValue\":\"7\"},\"b\":{\"stringValue\":\"x\"}}",
     "{\"b\":{\"stringValue\":\"x\"},\"a\":{\"integerValue\":\"7\"}}", "[]"},
    {"{\"d\":{\"doubleValue\":0.1}}", "{\"d\":{\"doubleValue\":1e-1}}", "[]"},
    {"{\"d\":{\"doubleValue\":\"NaN\"}}", "{\"d\":{\"doubleValue\":\"NaN\"}}", "[]"},
    {"{\"b\":{\"bytesValue\":\"AAE=\"}}", "{\"b\":{\"bytesValue\":\"AAE\"}}", "[]"},
    {"{}", "", "[]"},
    /* types strict */
    {"{\"v\":{\"integerValue\":\"5\"}}", "{\"v\":{\"doubleValue\":5}}",
     "[{\"path\":\"v\",\"item\":\"integerValue\",\"document\":\"doubleValue\"}]"},
    {"{\"v\":{\"stringValue\":\"5\"}}", "{\"v\":{\"integerValue\":\"5\"}}",
     "[{\"path\":\"v\",\"item\":\"stringValue\",\"document\":\"integerValue\"}]"},
    /* a string cut at its U+0000 */
    {"{\"s\":{\"stringValue\":\"ab\\u0000cd\"}}", "{\"s\":{\"stringValue\":\"ab\"}}",
     "[{\"path\":\"s\",\"item\":\"stringValue\",\"document\":\"stringValue\"}]"},
    /* a field on one side only */
    {"{\"a\":{\"nullValue\":null}}", "{}",
     "[{\"path\":\"a\",\"item\":\"nullValue\",\"document\":\"absent\"}]"},
    {"{}", "{\"z\":{\"booleanValue\":true}}",
     "[{\"path\":\"z\",\"item\":\"absent\",\"document\":\"booleanValue\"}]"},
    /* deep paths: maps by name, arrays by index, a longer array */
    {"{\"m\":{\"mapValue\":{\"fields\":{\"deep\":{\"mapValue\":{\"fields\":{\"n\":"
     "{\"integerValue\":\"1\"}}}}}}}}",
     "{\"m\":{\"mapValue\":{\"fields\":{\"deep\":{\"mapValue\":{\"fields\":{\"n\":"
     "{\"integerValue\":\"2\"}}}}}}}}",
     "[{\"path\":\"m.deep.n\",\"item\":\"integerValue\",\"document\":\"integerValue\"}]"},
    {"{\"l\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\"},{\"booleanValue\":false}]}}}",
     "{\"l\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\"},{\"booleanValue\":true},"
     "{\"nullValue\":null}]}}}",
     "[{\"path\":\"l[1]\",\"item\":\"booleanValue\",\"document\":\"booleanValue\"},"
     "{\"path\":\"l[2]\",\"item\":\"absent\",\"document\":\"nullValue\"}]"},
    {"{\"l\":{\"arrayValue\":{}}}", "{\"l\":{\"arrayValue\":{\"values\":[]}}}", "[]"},
    {"{\"m\":{\"mapValue\":{}}}", "{\"m\":{\"mapValue\":{\"fields\":{}}}}", "[]"},
};

static cJSON *parse(const char *text)
{
    cJSON *j;

    if (!text[0])
        return NULL;
    j = json_parse(text, strlen(text));
    assert_non_null(j);
    return j;
}

static void test_compare(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cmp_cases) / sizeof(cmp_cases[0]); i++) {
        const struct cmp_case *c = &cmp_cases[i];
        cJSON *want = parse(c->want), *got = parse(c->got), *out = cJSON_CreateArray();
        cJSON *expected = parse(c->paths);
        long n = verify_compare(want, got, 0, out);

        if (!cJSON_Compare(out, expected, 1)) {
            char *text = json_print(out);
            fail_msg("case %zu: got %s, expected %s", i, text, c->paths);
        }
        assert_int_equal(n, cJSON_GetArraySize(expected));
        cJSON_Delete(want);
        cJSON_Delete(got);
        cJSON_Delete(out);
        cJSON_Delete(expected);
    }
}

/* --show-values adds both sides' values; without it none is in the report */
static void test_values_only_when_asked(void **state)
{
    cJSON *want = parse("{\"p\":{\"stringValue\":\"secret-a\"}}");
    cJSON *got = parse("{\"p\":{\"stringValue\":\"secret-b\"}}");
    cJSON *quiet = cJSON_CreateArray(), *shown = cJSON_CreateArray();
    char *q, *s;

    (void)state;
    assert_int_equal(verify_compare(want, got, 0, quiet), 1);
    assert_int_equal(verify_compare(want, got, 1, shown), 1);
    q = json_print(quiet);
    s = json_print(shown);
    assert_null(strstr(q, "secret"));
    assert_string_equal(s, "[{\"path\":\"p\",\"item\":\"stringValue\",\"document\":"
                           "\"stringValue\",\"item_value\":\"secret-a\",\"document_value\":"
                           "\"secret-b\"}]");
    cJSON_free(q);
    cJSON_free(s);
    cJSON_Delete(want);
    cJSON_Delete(got);
    cJSON_Delete(quiet);
    cJSON_Delete(shown);
}

/* the paths listed are capped, the count is not; with no list, only the count */
static void test_cap_and_count(void **state)
{
    cJSON *want = cJSON_CreateObject(), *list = cJSON_CreateArray();

    (void)state;
    for (int i = 0; i < VERIFY_MAX_PATHS + 20; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d", i);
        cJSON_AddItemToObject(cJSON_AddObjectToObject(want, name), "booleanValue",
                              cJSON_CreateTrue());
    }
    assert_int_equal(verify_compare(want, NULL, 0, list), VERIFY_MAX_PATHS + 20);
    assert_int_equal(cJSON_GetArraySize(list), VERIFY_MAX_PATHS);
    assert_int_equal(verify_compare(want, want, 0, NULL), 0);
    assert_int_equal(verify_compare(want, NULL, 0, NULL), VERIFY_MAX_PATHS + 20);
    cJSON_Delete(want);
    cJSON_Delete(list);
}

/* the function's request */
static void test_opts_from_json(void **state)
{
    struct verify_opts o;
    struct d2f_err err = {0};
    cJSON *j = parse("{\"ddb2fs\":\"verify\",\"table\":\"T\"}");

    (void)state;
    assert_int_equal(verify_opts_from_json(j, &o, &err), 0);
    assert_string_equal(o.table, "T");
    assert_true(o.sample == 1 && o.segments == 8 && o.recheck_after_ms == 60000 && !o.repair);
    cJSON_Delete(j);
    j = parse("{\"table\":\"T\",\"sample\":100,\"segments\":4,\"recheck_after\":2.5}");
    assert_int_equal(verify_opts_from_json(j, &o, &err), 0);
    assert_true(o.sample == 100 && o.segments == 4 && o.recheck_after_ms == 2500);
    cJSON_Delete(j);
    static const char *const bad[] = {"{}",
                                      "{\"table\":\"\"}",
                                      "{\"table\":\"T\",\"sample\":0}",
                                      "{\"table\":\"T\",\"sample\":101}",
                                      "{\"table\":\"T\",\"segments\":1.5}",
                                      "{\"table\":\"T\",\"rate\":\"fast\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i]);
        assert_int_equal(verify_opts_from_json(j, &o, &err), D2F_EINPUT);
        assert_non_null(strstr(err.msg, "verify: '"));
        cJSON_Delete(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_values_only_when_asked),
        cmocka_unit_test(test_cap_and_count),
        cmocka_unit_test(test_opts_from_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
