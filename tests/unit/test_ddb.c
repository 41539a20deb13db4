/* Unit tests for ddb.c: the DescribeTable request it describes, and DescribeTable answers
 * written by hand as DynamoDB's API reference lays them out: the key schema in either order, a
 * partition key alone, no HASH key, the stream and item count for the backfill; errors passed
 * on, and a clear one without credentials. The signed call (aws.c, tested in test_aws) is
 * replaced here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aws.h"
#include "json.h"

/* What the stand-in for the signed call answers, and the table it was asked about. */
static const char *answer_text; /* a 200 answer's JSON */
static int answer_code;         /* else: the call fails with this */
static char asked[300], asked_what[320];
static const char *asked_endpoint;

static int fake_aws_json_call(const struct config *cfg, const struct aws_request *req,
                              cJSON **answer, struct d2f_err *err)
{
    (void)cfg;
    /* DynamoDB's JSON 1.0 protocol and its DescribeTable target */
    assert_string_equal(req->service, "dynamodb");
    assert_string_equal(req->target, "DynamoDB_20120810.DescribeTable");
    assert_string_equal(req->content_type, "application/x-amz-json-1.0");
    assert_string_equal(req->key, "TableName");
    snprintf(asked, sizeof(asked), "%s", req->value);
    snprintf(asked_what, sizeof(asked_what), "%s", req->what);
    asked_endpoint = req->endpoint;
    *answer = answer_code ? NULL : json_parse(answer_text, strlen(answer_text));
    return answer_code ? d2f_errf(err, answer_code, "%s refused: as aws.c says", req->what) : 0;
}

#define aws_json_call fake_aws_json_call
#include "../../src/ddb.c"
#undef aws_json_call

static const struct config dynamodb_local = {.dynamodb_endpoint = "http://127.0.0.1:8000"};

/* A DescribeTable answer of table Orders with the KeySchema given and more members of Table. */
static const char *describe_answer(char *out, size_t cap, const char *key_schema, const char *more)
{
    snprintf(out, cap,
             "{\"Table\":{\"AttributeDefinitions\":[{\"AttributeName\":\"customer\","
             "\"AttributeType\":\"S\"},{\"AttributeName\":\"n\",\"AttributeType\":\"N\"}],"
             "\"TableName\":\"Orders\",\"KeySchema\":%s,\"TableStatus\":\"ACTIVE\","
             "\"CreationDateTime\":1.7e9%s}}",
             key_schema, more);
    return out;
}

/* The key schema: HASH and RANGE in either order, a HASH alone, buffers that held another
 * table's names; an answer with no HASH key is refused. */
static void test_key_schema(void **state)
{
    static const struct {
        const char *key_schema;
        int code;
        const char *pk, *sk;
    } cases[] = {
        {"[{\"AttributeName\":\"customer\",\"KeyType\":\"HASH\"},"
         "{\"AttributeName\":\"n\",\"KeyType\":\"RANGE\"}]",
         0, "customer", "n"},
        {"[{\"AttributeName\":\"n\",\"KeyType\":\"RANGE\"},"
         "{\"AttributeName\":\"customer\",\"KeyType\":\"HASH\"}]",
         0, "customer", "n"},
        {"[{\"AttributeName\":\"customer\",\"KeyType\":\"HASH\"}]", 0, "customer", ""},
        {"[{\"AttributeName\":\"n\",\"KeyType\":\"RANGE\"}]", D2F_EREMOTE, "", ""},
        {"[]", D2F_EREMOTE, "", ""},
        {"[{\"AttributeName\":7,\"KeyType\":\"HASH\"}]", D2F_EREMOTE, "", ""},
    };
    struct buf pk, sk;
    char text[1024];

    (void)state;
    buf_init(&pk, 1024);
    buf_init(&sk, 1024);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct d2f_err err = {0};
        assert_int_equal(buf_adds(&pk, "stale"), 0);
        assert_int_equal(buf_adds(&sk, "stale"), 0);
        answer_code = 0;
        answer_text = describe_answer(text, sizeof(text), cases[i].key_schema, "");
        assert_int_equal(ddb_key_schema(&dynamodb_local, "Orders", &pk, &sk, &err), cases[i].code);
        assert_string_equal(asked, "Orders");
        assert_string_equal(asked_what, "DescribeTable 'Orders'");
        assert_string_equal(asked_endpoint, "http://127.0.0.1:8000");
        if (cases[i].code) {
            assert_string_equal(err.msg, "DescribeTable 'Orders': the answer has no HASH key in "
                                         "Table.KeySchema");
            continue;
        }
        assert_string_equal(buf_str(&pk), cases[i].pk);
        assert_string_equal(buf_str(&sk), cases[i].sk);
    }
    buf_release(&pk);
    buf_release(&sk);
}

/* What the backfill reads: the stream's state, view type and ARN, the item count; a table
 * with no stream has none of them. */
static void test_describe(void **state)
{
    static const char schema[] = "[{\"AttributeName\":\"customer\",\"KeyType\":\"HASH\"},"
                                 "{\"AttributeName\":\"n\",\"KeyType\":\"RANGE\"}]";
    struct ddb_table t;
    struct d2f_err err = {0};
    char text[2048];

    (void)state;
    buf_init(&t.pk, 1024);
    buf_init(&t.sk, 1024);
    answer_code = 0;
    answer_text = describe_answer(
        text, sizeof(text), schema,
        ",\"ItemCount\":123456,\"StreamSpecification\":{\"StreamEnabled\":true,"
        "\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"},\"LatestStreamLabel\":"
        "\"2024-01-01T00:00:00.000\",\"LatestStreamArn\":\"arn:aws:dynamodb:eu-west-1:"
        "123456789012:table/Orders/stream/2024-01-01T00:00:00.000\"");
    assert_int_equal(ddb_describe(&dynamodb_local, "Orders", &t, &err), 0);
    assert_string_equal(buf_str(&t.pk), "customer");
    assert_string_equal(buf_str(&t.sk), "n");
    assert_int_equal(t.stream_enabled, 1);
    assert_string_equal(t.view_type, "NEW_AND_OLD_IMAGES");
    assert_string_equal(t.stream_arn, "arn:aws:dynamodb:eu-west-1:123456789012:table/Orders/"
                                      "stream/2024-01-01T00:00:00.000");
    assert_true(t.item_count == 123456);

    answer_text = describe_answer(text, sizeof(text), schema, "");
    assert_int_equal(ddb_describe(&dynamodb_local, "Orders", &t, &err), 0);
    assert_int_equal(t.stream_enabled, 0);
    assert_string_equal(t.view_type, "");
    assert_string_equal(t.stream_arn, "");
    assert_true(t.item_count == 0);

    answer_text = describe_answer(text, sizeof(text), schema,
                                  ",\"StreamSpecification\":{\"StreamEnabled\":false}");
    assert_int_equal(ddb_describe(&dynamodb_local, "Orders", &t, &err), 0);
    assert_int_equal(t.stream_enabled, 0);
    assert_string_equal(t.view_type, "");

    answer_text = describe_answer(text, sizeof(text), "[]", "");
    assert_int_equal(ddb_describe(&dynamodb_local, "Orders", &t, &err), D2F_EREMOTE);
    buf_release(&t.pk);
    buf_release(&t.sk);
}

/* A refusal or no answer is passed on as the call reported it; without credentials or a
 * region the error says what to set, DDB2FS_KEYS among it. */
static void test_errors(void **state)
{
    static const int passed_on[] = {D2F_EREMOTE, D2F_EAUTH, D2F_EUNREACHABLE};
    struct buf pk, sk;
    struct ddb_table t;
    struct d2f_err err = {0};

    (void)state;
    buf_init(&pk, 1024);
    buf_init(&sk, 1024);
    buf_init(&t.pk, 1024);
    buf_init(&t.sk, 1024);
    for (size_t i = 0; i < sizeof(passed_on) / sizeof(passed_on[0]); i++) {
        answer_code = passed_on[i];
        assert_int_equal(ddb_key_schema(&dynamodb_local, "Orders", &pk, &sk, &err), passed_on[i]);
        assert_string_equal(err.msg, "DescribeTable 'Orders' refused: as aws.c says");
        assert_int_equal(ddb_describe(&dynamodb_local, "Orders", &t, &err), passed_on[i]);
        assert_int_equal(t.stream_enabled, 0);
    }
    answer_code = D2F_ECONFIG;
    assert_int_equal(ddb_key_schema(&dynamodb_local, "Orders", &pk, &sk, &err), D2F_ECONFIG);
    assert_string_equal(err.msg, "cannot ask DynamoDB for the key schema of 'Orders': AWS_REGION, "
                                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not all set "
                                 "(or set DDB2FS_KEYS)");
    answer_code = 0;
    buf_release(&pk);
    buf_release(&sk);
    buf_release(&t.pk);
    buf_release(&t.sk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_schema),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
