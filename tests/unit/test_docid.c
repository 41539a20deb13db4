/* Unit tests for docid.c: document ids, escaping, reversibility, collisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "docid.h"

/* Builds the id of a Keys map given as JSON. Returns the code; the id in out. */
static int id_of(const char *keys_json, const char *pk, const char *sk, const char *sep,
                 struct buf *out, struct d2f_err *err)
{
    cJSON *keys = cJSON_Parse(keys_json);
    int rc;

    assert_non_null(keys);
    buf_init(out, 1 << 20);
    rc = docid_from_keys(keys, pk, sk, sep, out, err);
    cJSON_Delete(keys);
    return rc;
}

struct id_case {
    const char *keys;
    const char *pk, *sk;
    const char *id;
};

static const struct id_case id_cases[] = {
    {"{\"Id\":{\"N\":\"101\"}}", "Id", NULL, "101"},
    {"{\"Id\":{\"N\":\"1E+3\"}}", "Id", NULL, "1000"},
    {"{\"Id\":{\"N\":\"-0\"}}", "Id", NULL, "0"},
    {"{\"Id\":{\"N\":\"1.50\"}}", "Id", NULL, "1.5"},
    {"{\"Id\":{\"S\":\"plain\"}}", "Id", NULL, "plain"},
    {"{\"Id\":{\"S\":\"a/b\"}}", "Id", NULL, "a%2Fb"},
    {"{\"Id\":{\"S\":\"100%\"}}", "Id", NULL, "100%25"},
    {"{\"Id\":{\"S\":\".\"}}", "Id", NULL, "%2E"},
    {"{\"Id\":{\"S\":\"..\"}}", "Id", NULL, "%2E%2E"},
    {"{\"Id\":{\"S\":\"...\"}}", "Id", NULL, "..."},
    {"{\"Id\":{\"S\":\"__x__\"}}", "Id", NULL, "%5F_x__"},
    {"{\"Id\":{\"S\":\"__\"}}", "Id", NULL, "__"},
    {"{\"Id\":{\"S\":\"a#b\"}}", "Id", NULL, "a#b"}, /* one key: the separator is plain */
    {"{\"Id\":{\"S\":\"héllo wörld\"}}", "Id", NULL, "héllo wörld"},
    {"{\"Id\":{\"B\":\"+/8=\"}}", "Id", NULL, "-_8"}, /* base64url, no padding */
    {"{\"pk\":{\"S\":\"ab\"},\"sk\":{\"S\":\"c\"}}", "pk", "sk", "ab#c"},
    {"{\"sk\":{\"S\":\"c\"},\"pk\":{\"S\":\"ab\"}}", "pk", "sk", "ab#c"}, /* Keys has no order */
    {"{\"pk\":{\"S\":\"a#b\"},\"sk\":{\"S\":\"c\"}}", "pk", "sk", "a%23b#c"},
    {"{\"pk\":{\"S\":\"u\"},\"sk\":{\"N\":\"42\"}}", "pk", "sk", "u#42"},
    {"{\"pk\":{\"S\":\"__a\"},\"sk\":{\"S\":\"b__\"}}", "pk", "sk", "%5F_a#b__"},
};

static void test_ids(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++) {
        struct buf id;
        struct d2f_err err = {0};
        assert_int_equal(id_of(id_cases[i].keys, id_cases[i].pk, id_cases[i].sk, "#", &id, &err),
                         0);
        assert_string_equal(id.data, id_cases[i].id);
        assert_null(docid_segment_problem(id.data, id.len));
        buf_release(&id);
    }
}

static void test_no_collisions(void **state)
{
    struct buf a, b;
    struct d2f_err err;

    (void)state;
    assert_int_equal(id_of("{\"p\":{\"S\":\"ab\"},\"s\":{\"S\":\"c\"}}", "p", "s", "#", &a, &err),
                     0);
    assert_int_equal(id_of("{\"p\":{\"S\":\"a\"},\"s\":{\"S\":\"bc\"}}", "p", "s", "#", &b, &err),
                     0);
    assert_string_not_equal(a.data, b.data);
    buf_release(&a);
    buf_release(&b);
    /* the separator inside a key cannot fake a split */
    assert_int_equal(id_of("{\"p\":{\"S\":\"a#b\"},\"s\":{\"S\":\"c\"}}", "p", "s", "#", &a, &err),
                     0);
    assert_int_equal(id_of("{\"p\":{\"S\":\"a\"},\"s\":{\"S\":\"b#c\"}}", "p", "s", "#", &b, &err),
                     0);
    assert_string_not_equal(a.data, b.data);
    buf_release(&a);
    buf_release(&b);
    /* an escaped-looking key is not its unescaped twin */
    assert_int_equal(id_of("{\"p\":{\"S\":\"a%2Fb\"}}", "p", NULL, "#", &a, &err), 0);
    assert_int_equal(id_of("{\"p\":{\"S\":\"a/b\"}}", "p", NULL, "#", &b, &err), 0);
    assert_string_not_equal(a.data, b.data);
    buf_release(&a);
    buf_release(&b);
}

static void test_reversible(void **state)
{
    static const char *const keys[][2] = {
        {"a/b%c", "x#y"}, {".", ".."}, {"__r__", "z"}, {"%2F", "#"}, {"plain", "text"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        cJSON *k = cJSON_CreateObject();
        struct buf id, pk, sk;
        struct d2f_err err;

        cJSON_AddItemToObject(k, "p", cJSON_CreateObject());
        cJSON_AddStringToObject(cJSON_GetObjectItem(k, "p"), "S", keys[i][0]);
        cJSON_AddItemToObject(k, "s", cJSON_CreateObject());
        cJSON_AddStringToObject(cJSON_GetObjectItem(k, "s"), "S", keys[i][1]);
        buf_init(&id, 1 << 16);
        buf_init(&pk, 1 << 16);
        buf_init(&sk, 1 << 16);
        assert_int_equal(docid_from_keys(k, "p", "s", "#", &id, &err), 0);
        assert_null(docid_segment_problem(id.data, id.len));
        assert_int_equal(docid_decode(id.data, "#", &pk, &sk), 0);
        assert_string_equal(buf_str(&pk), keys[i][0]);
        assert_string_equal(buf_str(&sk), keys[i][1]);
        buf_release(&id);
        buf_release(&pk);
        buf_release(&sk);
        cJSON_Delete(k);
    }
}

static void test_long_ids_hashed(void **state)
{
    char big[2001], json[2100];
    struct buf a, b;
    struct d2f_err err;

    (void)state;
    memset(big, 'x', 2000);
    big[2000] = '\0';
    snprintf(json, sizeof(json), "{\"p\":{\"S\":\"%s\"}}", big);
    assert_int_equal(id_of(json, "p", NULL, "#", &a, &err), 0);
    assert_int_equal(strncmp(a.data, DOCID_HASH_PREFIX, strlen(DOCID_HASH_PREFIX)), 0);
    assert_int_equal(a.len, strlen(DOCID_HASH_PREFIX) + 64);
    assert_null(docid_segment_problem(a.data, a.len));
    big[1999] = 'y';
    snprintf(json, sizeof(json), "{\"p\":{\"S\":\"%s\"}}", big);
    assert_int_equal(id_of(json, "p", NULL, "#", &b, &err), 0);
    assert_string_not_equal(a.data, b.data);
    buf_release(&a);
    buf_release(&b);
    /* exactly 1,500 bytes stays as it is */
    big[1500] = '\0';
    snprintf(json, sizeof(json), "{\"p\":{\"S\":\"%s\"}}", big);
    assert_int_equal(id_of(json, "p", NULL, "#", &a, &err), 0);
    assert_int_equal(a.len, 1500);
    buf_release(&a);
}

static void test_bad_keys(void **state)
{
    static const struct {
        const char *keys, *pk, *sk, *msg;
    } bad[] = {
        {"{\"Id\":{\"S\":\"\"}}", "Id", NULL, "empty string"},
        {"{\"Id\":{\"BOOL\":true}}", "Id", NULL, "not a string"},
        {"{\"Id\":{\"L\":[]}}", "Id", NULL, "not a string"},
        {"{\"Id\":{\"SS\":[\"a\"]}}", "Id", NULL, "not a string"},
        {"{\"Id\":{\"X\":\"1\"}}", "Id", NULL, "keys are S, N or B"},
        {"{\"Id\":{\"S\":\"a\",\"N\":\"1\"}}", "Id", NULL, "exactly one type"},
        {"{\"Id\":{\"N\":\"abc\"}}", "Id", NULL, "number is not a number"},
        {"{\"Id\":{\"B\":\"!!\"}}", "Id", NULL, "base64"},
        {"{\"Other\":{\"S\":\"a\"}}", "Id", NULL, "not in the key schema"},
        {"{\"pk\":{\"S\":\"a\"}}", "pk", "sk", "exactly the key schema"},
        {"{\"pk\":{\"S\":\"a\"},\"sk\":{\"S\":\"b\"},\"x\":{\"S\":\"c\"}}", "pk", "sk",
         "not in the key schema"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf id;
        struct d2f_err err = {0};
        assert_int_equal(id_of(bad[i].keys, bad[i].pk, bad[i].sk, "#", &id, &err), D2F_EINPUT);
        assert_non_null(strstr(err.msg, bad[i].msg));
        buf_release(&id);
    }
}

static void test_segments_and_collections(void **state)
{
    struct buf c;

    (void)state;
    assert_non_null(docid_segment_problem("", 0));
    assert_non_null(docid_segment_problem("a/b", 3));
    assert_non_null(docid_segment_problem(".", 1));
    assert_non_null(docid_segment_problem("__x__", 5));
    assert_non_null(docid_segment_problem("\xff", 1));
    assert_null(docid_segment_problem("Orders", 6));
    buf_init(&c, 4096);
    assert_int_equal(docid_collection("__Orders__", &c), 0);
    assert_string_equal(c.data, "%5F_Orders__");
    assert_int_equal(docid_collection("my.table-1", &c), 0);
    assert_string_equal(c.data, "my.table-1");
    buf_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),        cmocka_unit_test(test_no_collisions),
        cmocka_unit_test(test_reversible), cmocka_unit_test(test_long_ids_hashed),
        cmocka_unit_test(test_bad_keys),   cmocka_unit_test(test_segments_and_collections),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
