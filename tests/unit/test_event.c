/* Unit tests for event.c: reading a stream event record by record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"

#define ARN "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-01-01T00:00:00.000"

static const char good_record[] =
    "{\"eventID\":\"e1\",\"eventName\":\"INSERT\",\"eventVersion\":\"1.1\","
    "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\",\"eventSourceARN\":\"" ARN "\","
    "\"dynamodb\":{\"ApproximateCreationDateTime\":1700000000,\"Keys\":{\"pk\":{\"S\":\"a\"}},"
    "\"NewImage\":{\"pk\":{\"S\":\"a\"}},\"SequenceNumber\":\"100000000000000000001\","
    "\"SizeBytes\":12,\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}";

/* Reads every record of text; fills msgs with each record's error or "ok". Returns the final
 * code of the reader. */
static int read_all(const char *text, char msgs[][400], size_t max, size_t *n, struct d2f_err *err)
{
    struct event_reader r;
    struct event_record rec;
    int rc = event_reader_init(&r, text, strlen(text), err);

    *n = 0;
    if (rc)
        return rc;
    while ((rc = event_reader_next(&r, &rec, err)) == EVENT_RECORD) {
        if (*n < max)
            snprintf(msgs[*n], 400, "%s", rec.error ? rec.error : "ok");
        (*n)++;
        event_record_release(&rec);
    }
    return rc;
}

static void test_fields(void **state)
{
    char text[2048];
    struct event_reader r;
    struct event_record rec;
    struct d2f_err err;

    (void)state;
    snprintf(text, sizeof(text), "{\"Records\":[ %s ]}", good_record);
    assert_int_equal(event_reader_init(&r, text, strlen(text), &err), 0);
    assert_int_equal(event_reader_next(&r, &rec, &err), EVENT_RECORD);
    assert_null(rec.error);
    assert_string_equal(rec.event_id, "e1");
    assert_int_equal(rec.name, EVENT_INSERT);
    assert_string_equal(rec.event_version, "1.1");
    assert_string_equal(rec.event_source, "aws:dynamodb");
    assert_string_equal(rec.aws_region, "us-east-1");
    assert_string_equal(rec.source_arn, ARN);
    assert_string_equal(rec.table, "Orders");
    assert_true(rec.created == 1700000000.0);
    assert_string_equal(rec.seq, "100000000000000000001");
    assert_string_equal(rec.seq_key, "0000000000000000000100000000000000000001");
    assert_true(rec.size_bytes == 12);
    assert_string_equal(rec.view_type, "NEW_AND_OLD_IMAGES");
    assert_non_null(rec.keys);
    assert_non_null(rec.new_image);
    assert_null(rec.old_image);
    assert_int_equal(rec.ttl_expiry, 0);
    /* the raw text is exactly the record's bytes */
    assert_int_equal(rec.raw_len, strlen(good_record));
    assert_memory_equal(rec.raw, good_record, rec.raw_len);
    event_record_release(&rec);
    assert_int_equal(event_reader_next(&r, &rec, &err), 0);
}

static void test_ttl_identity(void **state)
{
    const char *text =
        "{\"Records\":[{\"eventID\":\"x\",\"eventName\":\"REMOVE\",\"eventSourceARN\":\"" ARN "\","
        "\"userIdentity\":{\"type\":\"Service\",\"principalId\":\"dynamodb.amazonaws.com\"},"
        "\"dynamodb\":{\"Keys\":{\"pk\":{\"S\":\"a\"}},\"SequenceNumber\":\"5\"}}]}";
    struct event_reader r;
    struct event_record rec;

    (void)state;
    assert_int_equal(event_reader_init(&r, text, strlen(text), NULL), 0);
    assert_int_equal(event_reader_next(&r, &rec, NULL), EVENT_RECORD);
    assert_null(rec.error);
    assert_int_equal(rec.ttl_expiry, 1);
    assert_string_equal(rec.identity_type, "Service");
    event_record_release(&rec);
}

static void test_event_errors(void **state)
{
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "empty"},
        {"[]", "not a JSON object"},
        {"{}", "no 'Records'"},
        {"{\"Records\":{}}", "'Records' is not an array"},
        {"{\"Records\":[],\"Records\":[]}", "'Records' twice"},
        {"{\"Records\":[{\"a\":1}", "ends inside 'Records'"},
        {"{\"Records\":[{\"a\":", "Records[0] is malformed"},
        {"{\"Records\":[{},]}", "',' before ']'"},
        {"{\"Records\":[{} {}]}", "expected ',' or ']'"},
        {"{\"Records\":[]} x", "unexpected text"},
        {"{\"Records\":[]", "ends too early"},
        {"{\"x\":tru,\"Records\":[]}", "malformed value"},
        {"{\"Records\":[],}", "expected a member name"},
        {"not json", "not a JSON object"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char msgs[4][400];
        size_t n;
        struct d2f_err err = {0};
        int rc = read_all(bad[i].text, msgs, 4, &n, &err);
        assert_true(rc == D2F_EINPUT);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("event %zu: expected '%s' in '%s'", i, bad[i].msg, err.msg);
    }
}

static void test_other_members_ignored(void **state)
{
    char text[2048], msgs[4][400];
    size_t n;

    (void)state;
    snprintf(text, sizeof(text), "{\"x\":{\"y\":[1,2]},\"Records\":[%s],\"z\":null}", good_record);
    assert_int_equal(read_all(text, msgs, 4, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(msgs[0], "ok");
}

static void test_record_errors(void **state)
{
    static const struct {
        const char *record, *msg;
    } bad[] = {
        {"42", "Records[1]: the record is a number, not an object"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"dynamodb\":{}}",
         "Records[1]: 'eventSourceARN' is missing"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":7,\"dynamodb\":{}}",
         "'eventSourceARN' is a number, not a string"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"arn:aws:s3:::b\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{}}}",
         "not a DynamoDB stream ARN"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\"}",
         "'dynamodb' is missing"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":[]}",
         "'dynamodb' is an array, not an object"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{}}}",
         "'dynamodb.SequenceNumber' is missing"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"12a\",\"Keys\":{\"k\":{\"S\":\"a\"}},"
         "\"NewImage\":{}}}",
         "not 1 to 40 decimal digits"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"12345678901234567890123456789012345678901\","
         "\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{}}}",
         "not 1 to 40 decimal digits"},
        {"{\"eventID\":\"e\",\"eventName\":\"UPSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{\"k\":{\"S\":\"a\"}}}}",
         "'eventName' is 'UPSERT'; expected INSERT, MODIFY or REMOVE"},
        {"{\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{}}}",
         "'eventID' is missing"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"NewImage\":{}}}",
         "'dynamodb.Keys' is missing"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{},\"NewImage\":{}}}",
         "'dynamodb.Keys' is empty"},
        {"{\"eventID\":\"e\",\"eventName\":\"MODIFY\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{\"k\":{\"S\":\"a\"}},"
         "\"StreamViewType\":\"KEYS_ONLY\"}}",
         "a MODIFY needs the item's new image (stream view type KEYS_ONLY"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{\"k\":{\"S\":\"a\"}},"
         "\"NewImage\":\"x\"}}",
         "'dynamodb.NewImage' is a string, not an object"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"eventSource\":\"aws:kinesis\",\"dynamodb\":{\"SequenceNumber\":\"1\","
         "\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{}}}",
         "'eventSource' is 'aws:kinesis', not aws:dynamodb"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{},"
         "\"ApproximateCreationDateTime\":\"yesterday\"}}",
         "'dynamodb.ApproximateCreationDateTime' is a string, not a number"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{},"
         "\"ApproximateCreationDateTime\":1e999999}}",
         "'dynamodb.ApproximateCreationDateTime' is not a finite epoch time"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"dynamodb\":{\"SequenceNumber\":\"1\",\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{},"
         "\"StreamViewType\":\"ALL\"}}",
         "'dynamodb.StreamViewType' is 'ALL'"},
        {"{\"eventID\":\"e\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN "\","
         "\"userIdentity\":\"me\",\"dynamodb\":{\"SequenceNumber\":\"1\","
         "\"Keys\":{\"k\":{\"S\":\"a\"}},\"NewImage\":{}}}",
         "'userIdentity' is a string, not an object"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[4096], msgs[4][400];
        size_t n;
        struct d2f_err err = {0};

        /* the bad record sits between two good ones, which stay good */
        snprintf(text, sizeof(text), "{\"Records\":[%s,%s,%s]}", good_record, bad[i].record,
                 good_record);
        assert_int_equal(read_all(text, msgs, 4, &n, &err), 0);
        assert_int_equal(n, 3);
        assert_string_equal(msgs[0], "ok");
        assert_string_equal(msgs[2], "ok");
        if (!strstr(msgs[1], bad[i].msg))
            fail_msg("record %zu: expected '%s' in '%s'", i, bad[i].msg, msgs[1]);
        assert_non_null(strstr(msgs[1], "Records[1]: "));
    }
}

static void test_limits(void **state)
{
    size_t rec_len = strlen(good_record), cap = (rec_len + 1) * 10001 + 64, n = 0;
    char *text = malloc(cap), msgs[1][400];
    struct d2f_err err = {0};
    size_t count;
    int rc;

    (void)state;
    n += (size_t)snprintf(text, cap, "{\"Records\":[");
    for (int i = 0; i < 10000; i++) {
        memcpy(text + n, good_record, rec_len);
        n += rec_len;
        text[n++] = ',';
    }
    memcpy(text + n - 1, "]}", 3);
    assert_true(n < EVENT_MAX_BYTES);
    assert_int_equal(read_all(text, msgs, 1, &count, &err), 0);
    assert_int_equal(count, 10000);
    /* one more is over Lambda's limit */
    memcpy(text + n - 1, ",", 1);
    memcpy(text + n, good_record, rec_len);
    memcpy(text + n + rec_len, "]}", 3);
    rc = read_all(text, msgs, 1, &count, &err);
    assert_int_equal(rc, D2F_ELIMIT);
    assert_non_null(strstr(err.msg, "more than 10000 records"));
    free(text);

    text = malloc(EVENT_MAX_BYTES + 2);
    memset(text, ' ', EVENT_MAX_BYTES + 1);
    text[EVENT_MAX_BYTES + 1] = '\0';
    text[0] = '{';
    {
        struct event_reader r;
        assert_int_equal(event_reader_init(&r, text, EVENT_MAX_BYTES + 1, &err), D2F_ELIMIT);
        assert_non_null(strstr(err.msg, "over Lambda's limit"));
    }
    free(text);
}

static void test_seq_key(void **state)
{
    char key[EVENT_SEQ_MAX_DIGITS + 1];

    (void)state;
    assert_int_equal(event_seq_key("9", key), 0);
    assert_string_equal(key, "0000000000000000000000000000000000000009");
    assert_int_equal(event_seq_key("1234567890123456789012345678901234567890", key), 0);
    assert_int_equal(event_seq_key("", key), -1);
    assert_int_equal(event_seq_key("-1", key), -1);
    /* numeric order is text order of the keys, whatever the lengths */
    {
        char a[41], b[41];
        assert_int_equal(event_seq_key("99999999999999999999", a), 0);
        assert_int_equal(event_seq_key("100000000000000000000", b), 0);
        assert_true(strcmp(a, b) < 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),        cmocka_unit_test(test_ttl_identity),
        cmocka_unit_test(test_event_errors),  cmocka_unit_test(test_other_members_ignored),
        cmocka_unit_test(test_record_errors), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_seq_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
