/* Unit tests for ingest.c: one transaction per event, dedupe, dead and skipped records, key
 * schemas, and the batchItemFailures answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_env.h"
#include <sodium.h>

#include "ingest.h"
#include "log.h"

#define ARN "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-01-01T00:00:00.000"

static char dir[] = "/tmp/d2f-ingest-XXXXXX";
static int serial;

struct fixture {
    struct config cfg;
    struct outbox *ob;
    struct ingest *ing;
    char path[256];
};

static void open_fixture(struct fixture *f, const char *const *env)
{
    struct d2f_err err = {0};

    test_env = env;
    assert_int_equal(config_load(&f->cfg, get, &err), 0);
    snprintf(f->path, sizeof(f->path), "%s/o%d.db", dir, serial++);
    assert_int_equal(outbox_open(&f->ob, f->path, CONFIG_JOURNAL_AUTO, OUTBOX_CREATE, &err), 0);
    f->ing = ingest_new(f->ob, &f->cfg);
    assert_non_null(f->ing);
}

static void close_fixture(struct fixture *f)
{
    ingest_free(f->ing);
    outbox_close(f->ob);
    config_release(&f->cfg);
}

static int64_t count(struct fixture *f, const char *sql)
{
    sqlite3_stmt *st;
    int64_t n = -1;

    assert_int_equal(sqlite3_prepare_v2(outbox_db(f->ob), sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static char *text_of(struct fixture *f, const char *sql)
{
    sqlite3_stmt *st;
    char *s = NULL;

    assert_int_equal(sqlite3_prepare_v2(outbox_db(f->ob), sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        s = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return s;
}

/* A record of table Orders with a composite key (customer, n). */
static char *record(const char *name, const char *seq, const char *customer, int n,
                    const char *image_extra)
{
    char *s = malloc(2048);

    snprintf(s, 2048,
             "{\"eventID\":\"id-%s\",\"eventName\":\"%s\",\"eventVersion\":\"1.1\","
             "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\","
             "\"eventSourceARN\":\"" ARN "\",\"dynamodb\":{\"ApproximateCreationDateTime\":"
             "1700000000.5,\"Keys\":{\"n\":{\"N\":\"%d\"},\"customer\":{\"S\":\"%s\"}},"
             "\"NewImage\":{\"customer\":{\"S\":\"%s\"},\"n\":{\"N\":\"%d\"}%s},"
             "\"SequenceNumber\":\"%s\",\"SizeBytes\":50,\"StreamViewType\":\"NEW_IMAGE\"}}",
             seq, name, n, customer, customer, n, image_extra, seq);
    return s;
}

static const char *const keys_env[] = {"DDB2FS_KEYS", "Orders=customer,n", NULL};

static void test_ingest_twice(void **state)
{
    struct fixture f;
    struct ingest_result res;
    struct d2f_err err = {0};
    char *a = record("INSERT", "100000000000000000001", "alice", 1, "");
    char *b = record("MODIFY", "100000000000000000002", "alice", 1, ",\"x\":{\"S\":\"y\"}");
    char event[8192];
    char *raw;

    (void)state;
    snprintf(event, sizeof(event), "{\"Records\":[%s,\n  %s]}", a, b);
    open_fixture(&f, keys_env);
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    assert_int_equal(res.records, 2);
    assert_int_equal(res.inserted, 2);
    assert_int_equal(res.duplicates, 0);
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    assert_int_equal(res.inserted, 0);
    assert_int_equal(res.duplicates, 2);
    assert_int_equal(count(&f, "SELECT count(*) FROM records"), 2);
    assert_int_equal(count(&f, "SELECT count(*) FROM records WHERE state = 'pending' AND "
                               "document = 'Orders/alice#1' AND op = 'update'"),
                     2);
    assert_int_equal(count(&f, "SELECT created_at FROM records WHERE id = 1"), 1700000000500);
    raw = text_of(&f, "SELECT raw FROM record_raw WHERE id = 2");
    assert_string_equal(raw, b); /* kept exactly as received */
    free(raw);
    raw = text_of(&f, "SELECT source FROM key_schema WHERE table_name = 'Orders'");
    assert_string_equal(raw, "DDB2FS_KEYS");
    free(raw);
    close_fixture(&f);
    free(a);
    free(b);
}

static void test_bad_records_kept_dead(void **state)
{
    struct fixture f;
    struct ingest_result res;
    struct d2f_err err = {0};
    char *good = record("INSERT", "11", "bob", 2, "");
    char *twotags = record("INSERT", "12", "bob", 3, ",\"bad\":{\"S\":\"a\",\"N\":\"1\"}");
    char *good2 = record("REMOVE", "14", "bob", 2, "");
    char event[8192];
    char *why;

    (void)state;
    snprintf(event, sizeof(event), "{\"Records\":[%s,%s,{\"eventName\":\"INSERT\"},\"junk\",%s]}",
             good, twotags, good2);
    open_fixture(&f, keys_env);
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    assert_int_equal(res.records, 5);
    assert_int_equal(res.inserted, 5);
    assert_int_equal(res.dead, 3);
    assert_int_equal(count(&f, "SELECT count(*) FROM records WHERE state = 'pending'"), 2);
    why = text_of(&f, "SELECT last_error FROM records WHERE seq = '12'");
    assert_string_equal(why, "Records[1]: 'dynamodb.NewImage' attribute 'bad' has two type tags "
                             "('S' and 'N'); an AttributeValue holds exactly one");
    free(why);
    why = text_of(
        &f, "SELECT last_error FROM records JOIN record_raw USING (id) WHERE raw = '\"junk\"'");
    assert_string_equal(why, "Records[3]: the record is a string, not an object");
    free(why);
    /* the dead ones dedupe too */
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    assert_int_equal(res.duplicates, 5);
    assert_int_equal(count(&f, "SELECT count(*) FROM records"), 5);
    close_fixture(&f);
    free(good);
    free(twotags);
    free(good2);
}

static void test_malformed_event_keeps_nothing(void **state)
{
    struct fixture f;
    struct ingest_result res;
    struct d2f_err err = {0};
    char *good = record("INSERT", "21", "carol", 1, "");
    char event[8192];
    struct buf answer;

    (void)state;
    snprintf(event, sizeof(event), "{\"Records\":[%s,%s", good, good);
    open_fixture(&f, keys_env);
    assert_int_equal(ingest_event(f.ing, event, strlen(event) - 10, &res, &err), D2F_EINPUT);
    assert_int_equal(count(&f, "SELECT count(*) FROM records"), 0);
    assert_int_equal(count(&f, "SELECT count(*) FROM key_schema"), 0);
    buf_init(&answer, 1 << 20);
    assert_int_equal(ingest_answer(event, strlen(event) - 10, 1, &answer), D2F_EINPUT);
    buf_release(&answer);
    close_fixture(&f);
    free(good);
}

static void test_answer(void **state)
{
    char *a = record("INSERT", "31", "d", 1, ""), *b = record("INSERT", "32", "d", 2, "");
    char event[8192];
    struct buf answer;

    (void)state;
    snprintf(event, sizeof(event), "{\"Records\":[%s,%s]}", a, b);
    buf_init(&answer, 1 << 20);
    assert_int_equal(ingest_answer(event, strlen(event), 0, &answer), 0);
    assert_string_equal(answer.data, "{\"batchItemFailures\":[]}");
    buf_reset(&answer);
    assert_int_equal(ingest_answer(event, strlen(event), 1, &answer), 0);
    assert_string_equal(answer.data, "{\"batchItemFailures\":[{\"itemIdentifier\":\"31\"},"
                                     "{\"itemIdentifier\":\"32\"}]}");
    buf_release(&answer);
    free(a);
    free(b);
}

static void test_unknown_key_schema(void **state)
{
    static const char *const none[] = {NULL};
    struct fixture f;
    struct ingest_result res;
    struct d2f_err err = {0};
    char *a = record("INSERT", "41", "erin", 1, "");
    char event[8192], *why;

    (void)state;
    snprintf(event, sizeof(event), "{\"Records\":[%s]}", a);
    open_fixture(&f, none);
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    assert_int_equal(res.unresolved, 1);
    assert_int_equal(count(&f, "SELECT count(*) FROM records WHERE state = 'pending' AND "
                               "document IS NULL"),
                     1);
    why = text_of(&f, "SELECT last_error FROM records");
    assert_non_null(strstr(why, "key schema of table 'Orders' is unknown"));
    free(why);
    close_fixture(&f);
    free(a);
}

static void test_single_key_inferred(void **state)
{
    static const char *const none[] = {NULL};
    static const char event[] =
        "{\"Records\":[{\"eventID\":\"1\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"" ARN
        "\",\"dynamodb\":{\"Keys\":{\"Id\":{\"N\":\"7\"}},\"NewImage\":{\"Id\":{\"N\":\"7\"}},"
        "\"SequenceNumber\":\"51\"}}]}";
    struct fixture f;
    struct ingest_result res;
    struct d2f_err err = {0};
    char *doc;

    (void)state;
    open_fixture(&f, none);
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    doc = text_of(&f, "SELECT document FROM records");
    assert_string_equal(doc, "Orders/7");
    free(doc);
    assert_int_equal(count(&f, "SELECT count(*) FROM key_schema WHERE partition_key = 'Id' "
                               "AND sort_key IS NULL"),
                     1);
    close_fixture(&f);
}

static void test_ttl(void **state)
{
    static const char *const ignore_env[] = {"DDB2FS_KEYS", "Orders=customer,n",
                                             "DDB2FS_TTL_DELETES", "ignore", NULL};
    static const char event[] =
        "{\"Records\":[{\"eventID\":\"1\",\"eventName\":\"REMOVE\",\"eventSourceARN\":\"" ARN
        "\",\"userIdentity\":{\"type\":\"Service\",\"principalId\":\"dynamodb.amazonaws.com\"},"
        "\"dynamodb\":{\"Keys\":{\"customer\":{\"S\":\"f\"},\"n\":{\"N\":\"1\"}},"
        "\"SequenceNumber\":\"61\"}}]}";
    struct fixture f;
    struct ingest_result res;
    struct d2f_err err = {0};

    (void)state;
    open_fixture(&f, keys_env);
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    assert_int_equal(count(&f, "SELECT count(*) FROM records WHERE op = 'delete' AND "
                               "state = 'pending'"),
                     1);
    close_fixture(&f);
    open_fixture(&f, ignore_env);
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    assert_int_equal(count(&f, "SELECT count(*) FROM records WHERE op = 'skip' AND "
                               "state = 'committed'"),
                     1);
    close_fixture(&f);
}

static void test_document_too_large(void **state)
{
    struct fixture f;
    struct ingest_result res;
    struct d2f_err err = {0};
    size_t big = 1100000, half = big / 2;
    char *extra = malloc(big + 64), *rec, *event, *why;

    (void)state;
    /* two strings, each under Firestore's limit for one value, over 1 MiB together */
    {
        static const char a[] = ",\"blob\":{\"S\":\"", b[] = "\"},\"blob2\":{\"S\":\"";
        char *p = extra;
        memcpy(p, a, sizeof(a) - 1);
        p += sizeof(a) - 1;
        memset(p, 'z', half);
        p += half;
        memcpy(p, b, sizeof(b) - 1);
        p += sizeof(b) - 1;
        memset(p, 'z', half);
        memcpy(p + half, "\"}", 3);
    }
    rec = malloc(big + 4096);
    {
        char *head = record("INSERT", "71", "g", 1, "@");
        char *at = strchr(head, '@');
        *at = '\0';
        snprintf(rec, big + 4096, "%s%s%s", head, extra, at + 1);
        free(head);
    }
    event = malloc(big + 8192);
    snprintf(event, big + 8192, "{\"Records\":[%s]}", rec);
    open_fixture(&f, keys_env);
    assert_int_equal(ingest_event(f.ing, event, strlen(event), &res, &err), 0);
    assert_int_equal(res.dead, 1);
    why = text_of(&f, "SELECT last_error FROM records");
    assert_non_null(strstr(why, "over Firestore's limit of 1 MiB"));
    free(why);
    close_fixture(&f);
    free(extra);
    free(rec);
    free(event);
}

static int setup(void **state)
{
    (void)state;
    log_setup(stderr, LOG_ERROR);
    return sodium_init() < 0 || !mkdtemp(dir) ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_twice),
        cmocka_unit_test(test_bad_records_kept_dead),
        cmocka_unit_test(test_malformed_event_keeps_nothing),
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_unknown_key_schema),
        cmocka_unit_test(test_single_key_inferred),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_document_too_large),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
