/* Unit tests for mapping.c: every DynamoDB type, Firestore's limits, sizes and rounding.
 * The golden files under tests/fixtures/golden/ cover whole records through 'convert'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "mapping.h"

/* Maps item_json; returns the code, the printed fields in *out (free it) on success. */
static int map(const char *item_json, int as_strings, char **out, struct mapping_result *res,
               struct d2f_err *err)
{
    struct mapping_opts opts = {.numbers_as_strings = as_strings};
    cJSON *item = cJSON_Parse(item_json), *fields = NULL;
    struct mapping_result check;
    int rc, rc_check;

    assert_non_null(item);
    rc = mapping_item(item, &opts, &fields, res, err);
    /* checking alone must agree with mapping */
    rc_check = mapping_item(item, &opts, NULL, &check, NULL);
    assert_int_equal(rc, rc_check);
    if (!rc) {
        assert_int_equal(check.size, res->size);
        assert_int_equal(check.rounded, res->rounded);
        *out = cJSON_PrintUnformatted(fields);
    }
    cJSON_Delete(fields);
    cJSON_Delete(item);
    return rc;
}

static void expect(const char *item, int as_strings, const char *fields)
{
    struct mapping_result res;
    struct d2f_err err = {0};
    char *out = NULL;

    if (map(item, as_strings, &out, &res, &err) != 0)
        fail_msg("mapping %s failed: %s", item, err.msg);
    assert_string_equal(out, fields);
    free(out);
}

static void expect_error(const char *item, int code, const char *msg)
{
    struct mapping_result res;
    struct d2f_err err = {0};
    char *out = NULL;

    assert_int_equal(map(item, 0, &out, &res, &err), code);
    if (!strstr(err.msg, msg))
        fail_msg("expected '%s' in '%s'", msg, err.msg);
}

static void test_scalars(void **state)
{
    (void)state;
    expect("{\"s\":{\"S\":\"x\"}}", 0, "{\"s\":{\"stringValue\":\"x\"}}");
    expect("{\"s\":{\"S\":\"\"}}", 0, "{\"s\":{\"stringValue\":\"\"}}");
    expect("{\"b\":{\"BOOL\":false}}", 0, "{\"b\":{\"booleanValue\":false}}");
    expect("{\"n\":{\"NULL\":true}}", 0, "{\"n\":{\"nullValue\":null}}");
    expect("{\"b\":{\"B\":\"AAEC\"}}", 0, "{\"b\":{\"bytesValue\":\"AAEC\"}}");
    expect("{\"b\":{\"B\":\"\"}}", 0, "{\"b\":{\"bytesValue\":\"\"}}");
}

static void test_numbers(void **state)
{
    (void)state;
    expect("{\"n\":{\"N\":\"42\"}}", 0, "{\"n\":{\"integerValue\":\"42\"}}");
    expect("{\"n\":{\"N\":\"-0\"}}", 0, "{\"n\":{\"integerValue\":\"0\"}}");
    expect("{\"n\":{\"N\":\"1E+3\"}}", 0, "{\"n\":{\"integerValue\":\"1000\"}}");
    expect("{\"n\":{\"N\":\"9223372036854775807\"}}", 0,
           "{\"n\":{\"integerValue\":\"9223372036854775807\"}}");
    expect("{\"n\":{\"N\":\"-9223372036854775808\"}}", 0,
           "{\"n\":{\"integerValue\":\"-9223372036854775808\"}}");
    expect("{\"n\":{\"N\":\"9223372036854775808\"}}", 0,
           "{\"n\":{\"doubleValue\":9223372036854776000}}");
    expect("{\"n\":{\"N\":\"1.5\"}}", 0, "{\"n\":{\"doubleValue\":1.5}}");
    expect("{\"n\":{\"N\":\"0.1\"}}", 0, "{\"n\":{\"doubleValue\":0.1}}");
    expect("{\"n\":{\"N\":\"1.50\"}}", 1, "{\"n\":{\"stringValue\":\"1.50\"}}");
    expect("{\"n\":{\"N\":\"12345678901234567890123456789012345678\"}}", 1,
           "{\"n\":{\"stringValue\":\"12345678901234567890123456789012345678\"}}");
}

static void test_rounding_counted(void **state)
{
    struct mapping_result res;
    struct d2f_err err;
    char *out = NULL;

    (void)state;
    assert_int_equal(map("{\"a\":{\"N\":\"1.5\"},\"m\":{\"M\":{\"l\":{\"L\":[{\"N\":\"1\"},"
                         "{\"N\":\"0.1\"}]}}},\"z\":{\"N\":\"0.2\"}}",
                         0, &out, &res, &err),
                     0);
    assert_int_equal(res.rounded, 2);
    assert_string_equal(res.rounded_field, "m.l[1]");
    free(out);
    assert_int_equal(map("{\"a\":{\"N\":\"0.1\"}}", 1, &out, &res, &err), 0);
    assert_int_equal(res.rounded, 0);
    free(out);
}

static void test_containers(void **state)
{
    (void)state;
    expect("{\"m\":{\"M\":{}}}", 0, "{\"m\":{\"mapValue\":{\"fields\":{}}}}");
    expect("{\"l\":{\"L\":[]}}", 0, "{\"l\":{\"arrayValue\":{\"values\":[]}}}");
    expect("{\"m\":{\"M\":{\"k\":{\"S\":\"v\"}}}}", 0,
           "{\"m\":{\"mapValue\":{\"fields\":{\"k\":{\"stringValue\":\"v\"}}}}}");
    /* a list inside a list becomes {"values": [...]} */
    expect("{\"l\":{\"L\":[{\"L\":[{\"N\":\"1\"}]},{\"S\":\"x\"}]}}", 0,
           "{\"l\":{\"arrayValue\":{\"values\":[{\"mapValue\":{\"fields\":{\"values\":"
           "{\"arrayValue\":{\"values\":[{\"integerValue\":\"1\"}]}}}}},{\"stringValue\":\"x\"}]}}"
           "}");
    /* so does a set inside a list */
    expect(
        "{\"l\":{\"L\":[{\"SS\":[\"b\",\"a\"]}]}}", 0,
        "{\"l\":{\"arrayValue\":{\"values\":[{\"mapValue\":{\"fields\":{\"values\":"
        "{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\"},{\"stringValue\":\"b\"}]}}}}}]}}}");
}

static void test_sets_sorted(void **state)
{
    (void)state;
    expect("{\"s\":{\"SS\":[\"b\",\"B\",\"a\",\"é\"]}}", 0,
           "{\"s\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"B\"},{\"stringValue\":\"a\"},"
           "{\"stringValue\":\"b\"},{\"stringValue\":\"é\"}]}}}");
    expect("{\"s\":{\"NS\":[\"10\",\"-1\",\"2.5\",\"1E+1\",\"3\"]}}", 0,
           "{\"s\":{\"arrayValue\":{\"values\":[{\"integerValue\":\"-1\"},{\"doubleValue\":2.5},"
           "{\"integerValue\":\"3\"},{\"integerValue\":\"10\"},{\"integerValue\":\"10\"}]}}}");
    expect("{\"s\":{\"NS\":[]}}", 0, "{\"s\":{\"arrayValue\":{\"values\":[]}}}");
    expect("{\"s\":{\"SS\":[]}}", 0, "{\"s\":{\"arrayValue\":{\"values\":[]}}}");
    expect("{\"s\":{\"BS\":[]}}", 0, "{\"s\":{\"arrayValue\":{\"values\":[]}}}");
    expect("{\"s\":{\"NS\":[\"10\",\"9\"]}}", 1,
           "{\"s\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"9\"},{\"stringValue\":\"10\"}"
           "]}}}");
    /* bytes order, not base64 text order: 0x00 < 0x01 < 0xFF ("AA==" "AQ==" "/w==") */
    expect("{\"s\":{\"BS\":[\"/w==\",\"AQ==\",\"AA==\",\"AAA=\"]}}", 0,
           "{\"s\":{\"arrayValue\":{\"values\":[{\"bytesValue\":\"AA==\"},{\"bytesValue\":"
           "\"AAA=\"},{\"bytesValue\":\"AQ==\"},{\"bytesValue\":\"/w==\"}]}}}");
}

/* {"a":{"M":{"a":{"M":…{"S":"x"}…}}}} with levels maps */
static char *nested(int levels, const char *leaf)
{
    size_t cap = (size_t)levels * 32 + 64;
    char *s = malloc(cap);
    size_t n = 0;

    n += (size_t)snprintf(s + n, cap - n, "{");
    for (int i = 0; i < levels; i++)
        n += (size_t)snprintf(s + n, cap - n, "\"a\":{\"M\":{");
    n += (size_t)snprintf(s + n, cap - n, "\"leaf\":%s", leaf);
    for (int i = 0; i < levels; i++)
        n += (size_t)snprintf(s + n, cap - n, "}}");
    snprintf(s + n, cap - n, "}");
    return s;
}

/* Firestore's depth as Google's emulator counts it (each map and each non-empty array is a
 * level, 20 at most): these cases were sent to the emulator, which took the first of each pair
 * and refused the second. */
static void test_depth(void **state)
{
    static const struct {
        int maps;
        const char *leaf;
        int ok;
    } cases[] = {
        {20, "{\"S\":\"x\"}", 1},           /* 20 maps holding a value */
        {21, "{\"S\":\"x\"}", 0},           /* 21 maps */
        {19, "{\"M\":{}}", 1},              /* 20 maps, the last empty */
        {20, "{\"M\":{}}", 0},              /* 21 maps, the last empty */
        {20, "{\"L\":[]}", 1},              /* an empty array adds nothing */
        {20, "{\"L\":[{\"S\":\"x\"}]}", 0}, /* a non-empty one does */
        {19, "{\"SS\":[\"x\"]}", 1},        /* a set is an array */
        {20, "{\"SS\":[\"x\"]}", 0},
        {17, "{\"L\":[{\"L\":[{\"S\":\"x\"}]}]}", 1}, /* array, its wrapping map, array */
        {18, "{\"L\":[{\"L\":[{\"S\":\"x\"}]}]}", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mapping_result res;
        struct d2f_err err = {0};
        char *out = NULL, *item = nested(cases[i].maps, cases[i].leaf);
        int rc = map(item, 0, &out, &res, &err);
        if (cases[i].ok && rc != 0)
            fail_msg("case %zu refused: %s", i, err.msg);
        if (!cases[i].ok && (rc != D2F_ELIMIT || !strstr(err.msg, "deeper than Firestore")))
            fail_msg("case %zu: rc %d, '%s'", i, rc, err.msg);
        free(out);
        free(item);
    }
    {
        char *item = nested(19, "{\"L\":[{\"L\":[{\"S\":\"x\"}]}]}");
        expect_error(item, D2F_ELIMIT, "a list in a list takes two");
        free(item);
    }
}

/* Firestore's limits on a field path (1,500 bytes, names joined with '.') and on one value
 * (1,048,487 bytes), one byte either side. */
static void test_path_and_value_limits(void **state)
{
    size_t big = 1048487;
    char *name = malloc(1600), *item = malloc(big * 2);
    struct mapping_result res;
    char *out = NULL;

    (void)state;
    memset(name, 'n', 1498);
    name[1498] = '\0'; /* "m." + 1,498 bytes: 1,500 */
    snprintf(item, big * 2, "{\"m\":{\"M\":{\"%s\":{\"S\":\"x\"}}}}", name);
    assert_int_equal(map(item, 0, &out, &res, NULL), 0);
    free(out);
    memset(name, 'n', 1499);
    name[1499] = '\0';
    snprintf(item, big * 2, "{\"m\":{\"M\":{\"%s\":{\"S\":\"x\"}}}}", name);
    expect_error(item, D2F_ELIMIT, "field path");
    /* through a list, the path is the maps' names */
    snprintf(item, big * 2, "{\"m\":{\"L\":[{\"M\":{\"%s\":{\"S\":\"x\"}}}]}}", name);
    expect_error(item, D2F_ELIMIT, "field path");
    for (size_t extra = 0; extra < 2; extra++) {
        size_t n = (size_t)snprintf(item, 20, "{\"s\":{\"S\":\"");
        memset(item + n, 'v', big + extra);
        snprintf(item + n + big + extra, 10, "\"}}");
        if (extra) {
            expect_error(item, D2F_ELIMIT, "1,048,487 bytes");
        } else {
            assert_int_equal(map(item, 0, &out, &res, NULL), 0);
            free(out);
        }
    }
    {
        unsigned char *bin = calloc(1, big + 1);
        size_t n = (size_t)snprintf(item, 20, "{\"b\":{\"B\":\"");
        sodium_bin2base64(item + n, big * 2 - n - 8, bin, big + 1, sodium_base64_VARIANT_ORIGINAL);
        strcat(item + n, "\"}}");
        expect_error(item, D2F_ELIMIT, "1,048,487 bytes");
        free(bin);
    }
    free(name);
    free(item);
}

static void test_field_names(void **state)
{
    char *name = malloc(1600), *item = malloc(1700);

    (void)state;
    expect_error("{\"__name__\":{\"S\":\"x\"}}", D2F_ELIMIT, "reserves");
    expect_error("{\"_____\":{\"S\":\"x\"}}", D2F_ELIMIT, "reserves");
    {
        /* "____" is no reserved name: the emulator takes it */
        struct mapping_result res;
        char *out = NULL;
        assert_int_equal(map("{\"____\":{\"S\":\"x\"}}", 0, &out, &res, NULL), 0);
        free(out);
    }
    expect_error("{\"m\":{\"M\":{\"__x__\":{\"S\":\"x\"}}}}", D2F_ELIMIT, "attribute 'm.__x__'");
    expect_error("{\"\":{\"S\":\"x\"}}", D2F_ELIMIT, "empty name");
    memset(name, 'n', 1501);
    name[1501] = '\0';
    snprintf(item, 1700, "{\"%s\":{\"S\":\"x\"}}", name);
    expect_error(item, D2F_ELIMIT, "1,500-byte limit");
    name[1500] = '\0';
    snprintf(item, 1700, "{\"%s\":{\"S\":\"x\"}}", name);
    {
        struct mapping_result res;
        char *out = NULL;
        assert_int_equal(map(item, 0, &out, &res, NULL), 0);
        free(out);
    }
    expect("{\"__\":{\"S\":\"x\"},\"_a_\":{\"S\":\"y\"}}", 0,
           "{\"__\":{\"stringValue\":\"x\"},\"_a_\":{\"stringValue\":\"y\"}}");
    free(name);
    free(item);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_error("{\"a\":{\"S\":\"x\",\"N\":\"1\"}}", D2F_EINPUT, "two type tags");
    expect_error("{\"a\":{}}", D2F_EINPUT, "not an AttributeValue");
    expect_error("{\"a\":\"x\"}", D2F_EINPUT, "not an AttributeValue");
    expect_error("{\"a\":{\"S\":1}}", D2F_EINPUT, "not a JSON string");
    expect_error("{\"a\":{\"N\":\"1x\"}}", D2F_EINPUT, "is a number that is not a number");
    expect_error("{\"a\":{\"N\":\"1E+200\"}}", D2F_EINPUT, "outside DynamoDB's range");
    expect_error("{\"a\":{\"B\":\"***\"}}", D2F_EINPUT, "base64");
    expect_error("{\"a\":{\"BOOL\":\"true\"}}", D2F_EINPUT, "not true or false");
    expect_error("{\"a\":{\"NULL\":false}}", D2F_EINPUT, "NULL with false");
    expect_error("{\"a\":{\"M\":[]}}", D2F_EINPUT, "not a JSON object");
    expect_error("{\"a\":{\"L\":{}}}", D2F_EINPUT, "not a JSON array");
    expect_error("{\"a\":{\"SS\":[1]}}", D2F_EINPUT, "not a string");
    expect_error("{\"a\":{\"NS\":[\"x\"]}}", D2F_EINPUT, "attribute 'a[0]'");
    expect_error("{\"a\":{\"BS\":[\"AA==\",\"%%\"]}}", D2F_EINPUT, "attribute 'a[1]'");
    expect_error("{\"a\":{\"Q\":\"x\"}}", D2F_EINPUT, "unknown type tag 'Q'");
    expect_error("{\"a\":{\"S\":\"\xff\"}}", D2F_EINPUT, "not valid UTF-8");
}

static void test_sizes(void **state)
{
    struct mapping_result res;
    char *out = NULL;

    (void)state;
    /* Firestore's own example: type "Personal" 14, done false 6, priority 1 17,
     * description "Learn Cloud Firestore" 34: 71 bytes */
    assert_int_equal(map("{\"type\":{\"S\":\"Personal\"},\"done\":{\"BOOL\":false},"
                         "\"priority\":{\"N\":\"1\"},"
                         "\"description\":{\"S\":\"Learn Cloud Firestore\"}}",
                         0, &out, &res, NULL),
                     0);
    assert_int_equal(res.size, 71);
    assert_int_equal(res.fields, 4);
    free(out);
    /* map: key sizes plus value sizes; bytes: decoded length; list in list: "values" field */
    assert_int_equal(map("{\"m\":{\"M\":{\"k\":{\"B\":\"AAEC\"}}},\"l\":{\"L\":[{\"L\":[{\"NULL\":"
                         "true}]}]}}",
                         0, &out, &res, NULL),
                     0);
    assert_int_equal(res.size, (2 + (2 + 3)) + (2 + (7 + 1)));
    free(out);
}

static void test_field_count(void **state)
{
    size_t cap = 20001 * 24 + 16, n = 0;
    char *item = malloc(cap);
    struct mapping_result res;
    char *out = NULL;

    (void)state;
    n += (size_t)snprintf(item + n, cap - n, "{");
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(item + n, cap - n, "%s\"f%d\":{\"NULL\":true}", i ? "," : "", i);
    snprintf(item + n, cap - n, "}");
    assert_int_equal(map(item, 0, &out, &res, NULL), 0);
    free(out);
    item[n] = '\0';
    snprintf(item + n, cap - n, ",\"extra\":{\"NULL\":true}}");
    expect_error(item, D2F_ELIMIT, "20,000 fields");
    free(item);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),          cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_rounding_counted), cmocka_unit_test(test_containers),
        cmocka_unit_test(test_sets_sorted),      cmocka_unit_test(test_depth),
        cmocka_unit_test(test_field_names),      cmocka_unit_test(test_path_and_value_limits),
        cmocka_unit_test(test_malformed),        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_field_count),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
