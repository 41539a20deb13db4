/* Unit tests for handler.c: one invocation per kind of event, on an outbox of its own, with the
 * deadline so near that no drain starts (nothing goes on the network): a batch made durable
 * answers with no failures; a batch that could not be kept lists every record's
 * itemIdentifier, so that Lambda retries them; malformed and unknown events are errors with
 * their errorType; the status event answers with the outbox's counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "handler.h"
#include "json.h"
#include "log.h"
#include "test_env.h"

#define ARN "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-01-01T00:00:00.000"
#define RECORD(seq, n)                                                                             \
    "{\"eventID\":\"e" seq "\",\"eventName\":\"INSERT\",\"eventVersion\":\"1.1\","                 \
    "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\",\"eventSourceARN\":\"" ARN       \
    "\",\"dynamodb\":{\"ApproximateCreationDateTime\":1700000000,\"Keys\":{\"customer\":{\"S\":"   \
    "\"alice\"},\"n\":{\"N\":\"" n "\"}},\"NewImage\":{\"customer\":{\"S\":\"alice\"},\"n\":{"     \
    "\"N\":\"" n "\"}},\"SequenceNumber\":\"" seq "\",\"SizeBytes\":40,\"StreamViewType\":"        \
    "\"NEW_IMAGE\"}}"

static const char batch[] = "{\"Records\":[" RECORD("111", "1") "," RECORD("222", "2") "]}";

static char dir[] = "/tmp/d2f-handler-XXXXXX";
static char outbox[128];

/* An emulator on a port where nothing listens: a drain, were one to start, would reach
 * nothing. */
static const char *const env[] = {"DDB2FS_OUTBOX",
                                  outbox,
                                  "DDB2FS_KEYS",
                                  "Orders=customer,n",
                                  "FIRESTORE_EMULATOR_HOST",
                                  "127.0.0.1:1",
                                  "GOOGLE_CLOUD_PROJECT",
                                  "demo-project",
                                  NULL};

static struct handler *h;
static struct http *http;
static FILE *logs;

static int setup(void **state)
{
    struct d2f_err err = {0};

    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(outbox, sizeof(outbox), "%s/outbox.db", dir);
    logs = tmpfile();
    log_setup(logs, LOG_INFO);
    test_env = env;
    if (http_new(&http, &err) != 0 || handler_new(&h, get, http, &err) != 0) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[192];

    (void)state;
    handler_free(h);
    http_free(http);
    log_setup(stderr, LOG_INFO);
    fclose(logs);
    for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
        snprintf(path, sizeof(path), "%s%s", outbox, suffixes[k]);
        unlink(path);
    }
    return rmdir(dir);
}

/* Invokes the handler with event and a deadline too near for a drain (it stops 1.5 s before
 * the deadline). Returns its code; *type is the errorType on error. */
static int invoke(const char *event, struct buf *answer, const char **type, struct d2f_err *err)
{
    buf_reset(answer);
    return handler_invoke(h, event, strlen(event), d2f_now_ms() + 1000, answer, type, err);
}

/* The outbox's record count in state, from the status event's answer. */
static double count_of(const char *state_name)
{
    struct buf answer;
    struct d2f_err err = {0};
    const char *type = NULL;
    cJSON *s;
    double n;

    buf_init(&answer, 1 << 20);
    assert_int_equal(invoke("{\"ddb2fs\":\"status\"}", &answer, &type, &err), 0);
    assert_null(type);
    s = json_parse(answer.data, answer.len);
    assert_non_null(s);
    assert_non_null(cJSON_GetObjectItem(s, state_name));
    n = json_number_value(cJSON_GetObjectItem(s, state_name));
    cJSON_Delete(s);
    buf_release(&answer);
    return n;
}

/* A batch that could not be made durable (another connection holds the outbox's write lock
 * past the deadline): every record is a failure, by its SequenceNumber, and nothing was kept;
 * the same batch again once the lock is free is durable and answers with no failures; a
 * third time changes nothing. */
static void test_stream_batch(void **state)
{
    struct buf answer;
    struct d2f_err err = {0};
    const char *type = "untouched";
    sqlite3 *other = NULL;

    (void)state;
    buf_init(&answer, 1 << 20);
    assert_int_equal(sqlite3_open(outbox, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(invoke(batch, &answer, &type, &err), 0);
    assert_null(type);
    assert_string_equal(answer.data, "{\"batchItemFailures\":[{\"itemIdentifier\":\"111\"},"
                                     "{\"itemIdentifier\":\"222\"}]}");
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_true(count_of("pending") == 0);

    assert_int_equal(invoke(batch, &answer, &type, &err), 0);
    assert_null(type);
    assert_string_equal(answer.data, "{\"batchItemFailures\":[]}");
    assert_true(count_of("pending") == 2);
    assert_int_equal(invoke(batch, &answer, &type, &err), 0);
    assert_string_equal(answer.data, "{\"batchItemFailures\":[]}");
    assert_true(count_of("pending") == 2);
    buf_release(&answer);
}

/* Events that are errors of the invocation, each with its errorType, and no answer. */
static void test_error_events(void **state)
{
    static const struct {
        const char *event, *type;
        int code;
        const char *msg; /* the start of it */
    } cases[] = {
        {"{\"Records\":[" RECORD("333", "3"), "ddb2fs.MalformedEvent", D2F_EINPUT, ""},
        {"{\"Records\":{}}", "ddb2fs.MalformedEvent", D2F_EINPUT, ""},
        {"{\"hello\":1}", "ddb2fs.UnknownEvent", D2F_EINPUT,
         "the event is neither a DynamoDB stream batch ('Records'), a scheduled event"},
        {"{\"ddb2fs\":\"nothing\"}", "ddb2fs.UnknownEvent", D2F_EINPUT, "the event is neither"},
        {"{\"ddb2fs\":\"repartition\",\"partitions\":0}", "ddb2fs.UnknownEvent", D2F_EINPUT,
         "repartition: 'partitions' is a whole number from 1 to 64"},
        {"{\"ddb2fs\":\"repartition\",\"partitions\":2.5}", "ddb2fs.UnknownEvent", D2F_EINPUT,
         "repartition: 'partitions' is a whole number from 1 to 64"},
    };
    struct buf answer;

    (void)state;
    buf_init(&answer, 1 << 20);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct d2f_err err = {0};
        const char *type = NULL;
        assert_int_equal(invoke(cases[i].event, &answer, &type, &err), cases[i].code);
        assert_non_null(type);
        assert_string_equal(type, cases[i].type);
        assert_memory_equal(err.msg, cases[i].msg, strlen(cases[i].msg));
        assert_int_equal(answer.len, 0);
    }
    buf_release(&answer);
    /* nothing of the malformed batch was kept */
    assert_true(count_of("pending") == 2);
}

/* The status event answers with the outbox's report; a scheduled event with no time to drain
 * drains nothing and says so. */
static void test_status_and_scheduled(void **state)
{
    struct buf answer;
    struct d2f_err err = {0};
    const char *type = NULL;
    cJSON *s;

    (void)state;
    buf_init(&answer, 1 << 20);
    assert_int_equal(invoke("{\"ddb2fs\":\"status\"}", &answer, &type, &err), 0);
    s = json_parse(answer.data, answer.len);
    assert_non_null(s);
    assert_string_equal(cJSON_GetObjectItem(s, "outbox")->valuestring, outbox);
    assert_true(json_number_value(cJSON_GetObjectItem(s, "pending")) == 2);
    assert_true(json_number_value(cJSON_GetObjectItem(s, "dead")) == 0);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(s, "tables"), 0), "table_name")
            ->valuestring,
        "Orders");
    cJSON_Delete(s);

    assert_int_equal(invoke("{\"source\":\"aws.events\",\"detail-type\":\"Scheduled Event\"}",
                            &answer, &type, &err),
                     0);
    assert_null(type);
    assert_memory_equal(answer.data, "{\"drained\":0,", 13);
    assert_true(count_of("pending") == 2);
    buf_release(&answer);
}

/* A setting that is wrong stops the start with ConfigError's code, and no handler. */
static void test_bad_settings(void **state)
{
    static const char *const bad_env[] = {"DDB2FS_OUTBOX", "/tmp/unused.db", "DDB2FS_KEYS",
                                          "Orders", NULL};
    struct handler *other = NULL;
    struct d2f_err err = {0};

    (void)state;
    test_env = bad_env;
    assert_int_equal(handler_new(&other, get, http, &err), D2F_ECONFIG);
    assert_null(other);
    assert_memory_equal(err.msg, "DDB2FS_KEYS", 11);
    assert_string_equal(handler_error_type(err.code), "ddb2fs.ConfigError");
    test_env = env;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_batch),
        cmocka_unit_test(test_error_events),
        cmocka_unit_test(test_status_and_scheduled),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
