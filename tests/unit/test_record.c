/* Unit tests for record.c: the Firestore Write a stream record becomes (compared with Writes
 * written out by hand from Firestore's REST reference), the document it names, its storage
 * size, and the reasons a record is dead or unresolved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "record.h"
#include "test_env.h"

#define ARN "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-01-01T00:00:00.000"
#define DOCS "projects/p/databases/(default)/documents"

static const char *const keys_env[] = {"DDB2FS_KEYS", "Orders=customer,n", NULL};

/* The key of alice's 7th order, as a stream record's Keys. */
#define ALICE_7_KEYS "{\"customer\":{\"S\":\"alice\"},\"n\":{\"N\":\"7\"}}"

/* One record read from an event of its own; text stays valid while rec is. */
struct one {
    char text[8192];
    struct event_reader r;
    struct event_record rec;
};

/* Reads a record named name ("INSERT", …) with keys and, unless NULL, a NewImage; extra is
 * more members of the record ("" or ",\"userIdentity\":…"). */
static void read_one(struct one *o, const char *name, const char *keys, const char *image,
                     const char *extra)
{
    struct d2f_err err = {0};
    char image_member[4096] = "";

    if (image)
        snprintf(image_member, sizeof(image_member), ",\"NewImage\":%s", image);
    snprintf(o->text, sizeof(o->text),
             "{\"Records\":[{\"eventID\":\"e1\",\"eventName\":\"%s\",\"eventVersion\":\"1.1\","
             "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\","
             "\"eventSourceARN\":\"" ARN "\"%s,\"dynamodb\":{\"ApproximateCreationDateTime\":"
             "1700000000,\"Keys\":%s%s,\"SequenceNumber\":\"101\",\"SizeBytes\":40,"
             "\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}]}",
             name, extra, keys, image_member);
    assert_int_equal(event_reader_init(&o->r, o->text, strlen(o->text), &err), 0);
    assert_int_equal(event_reader_next(&o->r, &o->rec, &err), EVENT_RECORD);
}

/* Plans o's record with the settings in env and the key schema pk, sk. */
static void plan_one(struct one *o, const char *const *env, const char *pk, const char *sk,
                     const char *docs, struct record_plan *plan)
{
    struct config cfg;
    struct d2f_err err = {0};

    test_env = env;
    assert_int_equal(config_load(&cfg, get, &err), 0);
    record_plan_init(plan);
    assert_int_equal(record_plan(&o->rec, &cfg, pk, sk, docs, plan), 0);
    config_release(&cfg);
}

/* got (a tree, or JSON text when got_text is set) says the same as the JSON text expected:
 * objects compared member by member, arrays in order. */
static void assert_same_json(const cJSON *got, const char *got_text, const char *expected)
{
    char *printed = got_text ? NULL : json_print(got);
    const char *text = got_text ? got_text : printed;
    cJSON *a = text ? json_parse(text, strlen(text)) : NULL;
    cJSON *b = json_parse(expected, strlen(expected));

    assert_non_null(b);
    if (!a || !cJSON_Compare(a, b, 1))
        fail_msg("got      %s\nexpected %s", text ? text : "(nothing)", expected);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_free(printed);
}

/* INSERT and MODIFY write the whole NewImage under the document of the Keys; each type as
 * Firestore's Value has it: a map is a mapValue, a string set an arrayValue sorted by bytes, a
 * number set sorted by value, a list in a list wrapped in a map. */
static void test_insert_and_modify(void **state)
{
    static const char image[] =
        "{\"customer\":{\"S\":\"alice\"},\"n\":{\"N\":\"7\"},\"price\":{\"N\":\"12.5\"},"
        "\"paid\":{\"BOOL\":true},\"note\":{\"NULL\":true},\"raw\":{\"B\":\"AQID\"},"
        "\"tags\":{\"SS\":[\"red\",\"Blue\",\"green\"]},\"sizes\":{\"NS\":[\"10\",\"9\",\"-1.5\"]},"
        "\"addr\":{\"M\":{\"city\":{\"S\":\"Oslo\"},\"floor\":{\"N\":\"3\"}}},"
        "\"steps\":{\"L\":[{\"S\":\"a\"},{\"L\":[{\"N\":\"1\"}]}]}}";
    static const char expected[] =
        "{\"update\":{\"name\":\"" DOCS "/Orders/alice#7\",\"fields\":{"
        "\"customer\":{\"stringValue\":\"alice\"},\"n\":{\"integerValue\":\"7\"},"
        "\"price\":{\"doubleValue\":12.5},\"paid\":{\"booleanValue\":true},"
        "\"note\":{\"nullValue\":null},\"raw\":{\"bytesValue\":\"AQID\"},"
        "\"tags\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"Blue\"},"
        "{\"stringValue\":\"green\"},{\"stringValue\":\"red\"}]}},"
        "\"sizes\":{\"arrayValue\":{\"values\":[{\"doubleValue\":-1.5},"
        "{\"integerValue\":\"9\"},{\"integerValue\":\"10\"}]}},"
        "\"addr\":{\"mapValue\":{\"fields\":{\"city\":{\"stringValue\":\"Oslo\"},"
        "\"floor\":{\"integerValue\":\"3\"}}}},"
        "\"steps\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\"},{\"mapValue\":{"
        "\"fields\":{\"values\":{\"arrayValue\":{\"values\":[{\"integerValue\":\"1\"}]}}}}}]}}"
        "}}}";
    static const char *const names[] = {"INSERT", "MODIFY"};

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        struct one o;
        struct record_plan plan;
        read_one(&o, names[i], ALICE_7_KEYS, image, "");
        plan_one(&o, keys_env, "customer", "n", DOCS, &plan);
        assert_int_equal(plan.op, RECORD_UPDATE);
        assert_int_equal(plan.unresolved, 0);
        assert_null(plan.error);
        assert_string_equal(plan.document.data, "Orders/alice#7");
        assert_same_json(plan.write, NULL, expected);
        record_plan_release(&plan);
        event_record_release(&o.rec);
    }
}

/* REMOVE deletes the document of its Keys, with no image. The document: the table's name or a
 * collection from DDB2FS_COLLECTIONS, a key escaped (docid.h: '/' and '%' always, the
 * separator's characters in a composite id), a partition key alone. */
static void test_remove_and_document_names(void **state)
{
    static const char *const collections_env[] = {
        "DDB2FS_KEYS", "Orders=customer,n", "DDB2FS_COLLECTIONS", "Orders=shops/s1/orders", NULL};
    static const char *const pk_only_env[] = {"DDB2FS_KEYS", "Orders=customer", NULL};
    static const struct {
        const char *const *env;
        const char *keys, *pk, *sk, *document;
    } cases[] = {
        {keys_env, ALICE_7_KEYS, "customer", "n", "Orders/alice#7"},
        {collections_env, ALICE_7_KEYS, "customer", "n", "shops/s1/orders/alice#7"},
        {keys_env, "{\"customer\":{\"S\":\"a/b%c#d\"},\"n\":{\"N\":\"7\"}}", "customer", "n",
         "Orders/a%2Fb%25c%23d#7"},
        {pk_only_env, "{\"customer\":{\"S\":\"a#b\"}}", "customer", NULL, "Orders/a#b"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct one o;
        struct record_plan plan;
        char expected[512];
        read_one(&o, "REMOVE", cases[i].keys, NULL, "");
        plan_one(&o, cases[i].env, cases[i].pk, cases[i].sk, DOCS, &plan);
        assert_int_equal(plan.op, RECORD_DELETE);
        assert_string_equal(plan.document.data, cases[i].document);
        snprintf(expected, sizeof(expected), "{\"delete\":\"" DOCS "/%s\"}", cases[i].document);
        assert_same_json(plan.write, NULL, expected);
        record_plan_release(&plan);
        event_record_release(&o.rec);
    }
}

/* The storage size by Firestore's rules (firebase.google.com/docs/firestore/storage-size):
 * name: "Orders" 6+1, "alice#7" 7+1, plus 16 = 31; fields: "customer" 8+1 with "alice" 5+1,
 * "n" 1+1 with an integer 8 = 25; a document adds 32: 88. */
static void test_document_size(void **state)
{
    struct one o;
    struct record_plan plan;

    (void)state;
    read_one(&o, "INSERT", ALICE_7_KEYS, ALICE_7_KEYS, "");
    plan_one(&o, keys_env, "customer", "n", NULL, &plan);
    assert_int_equal(plan.op, RECORD_UPDATE);
    assert_int_equal(plan.doc_size, 88);
    assert_null(plan.write); /* no prefix: planned, no Write built */
    record_plan_release(&plan);
    event_record_release(&o.rec);
}

/* Each reason a record cannot be written, named with its record; an unknown key schema leaves
 * it unresolved (pending, no document) rather than dead; a TTL expiry with
 * DDB2FS_TTL_DELETES=ignore is skipped. A dead record still names its document when its Keys
 * tell, so that the document's history shows it. */
static void test_dead_unresolved_skipped(void **state)
{
    static const char *const other_env[] = {"DDB2FS_KEYS", "Orders=customer,n", "DDB2FS_TABLES",
                                            "Invoices", NULL};
    static const char *const ttl_env[] = {"DDB2FS_KEYS", "Orders=customer,n", "DDB2FS_TTL_DELETES",
                                          "ignore", NULL};
    static const char ttl[] =
        ",\"userIdentity\":{\"type\":\"Service\",\"principalId\":\"dynamodb.amazonaws.com\"}";
    static const struct {
        const char *const *env;
        const char *name, *keys, *image, *extra, *pk;
        enum record_op op;
        int unresolved;
        const char *error;    /* the start of the reason */
        const char *document; /* "" when none */
    } cases[] = {
        {keys_env, "INSERT", "{\"customer\":{\"S\":\"alice\"}}", ALICE_7_KEYS, "", "customer",
         RECORD_DEAD, 0, "Records[0]: 'dynamodb.Keys': ", ""},
        {keys_env, "INSERT", ALICE_7_KEYS, "{\"x\":{\"Q\":\"1\"}}", "", "customer", RECORD_DEAD, 0,
         "Records[0]: 'dynamodb.NewImage' ", "Orders/alice#7"},
        {keys_env, "UPSERT", ALICE_7_KEYS, ALICE_7_KEYS, "", "customer", RECORD_DEAD, 0,
         "Records[0]: 'eventName' is 'UPSERT'; expected INSERT, MODIFY or REMOVE",
         "Orders/alice#7"},
        {other_env, "INSERT", ALICE_7_KEYS, ALICE_7_KEYS, "", "customer", RECORD_DEAD, 0,
         "Records[0]: table 'Orders' is not served: DDB2FS_TABLES names neither it nor its "
         "stream ARN",
         ""},
        {keys_env, "INSERT", ALICE_7_KEYS, ALICE_7_KEYS, "", NULL, RECORD_UPDATE, 1,
         "Records[0]: the key schema of table 'Orders' is unknown: set "
         "DDB2FS_KEYS=Orders=partitionKey,sortKey",
         ""},
        {ttl_env, "REMOVE", ALICE_7_KEYS, NULL, ttl, "customer", RECORD_SKIP, 0, NULL,
         "Orders/alice#7"},
        {keys_env, "REMOVE", ALICE_7_KEYS, NULL, ttl, "customer", RECORD_DELETE, 0, NULL,
         "Orders/alice#7"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct one o;
        struct record_plan plan;
        read_one(&o, cases[i].name, cases[i].keys, cases[i].image, cases[i].extra);
        plan_one(&o, cases[i].env, cases[i].pk, cases[i].pk ? "n" : NULL, DOCS, &plan);
        assert_int_equal(plan.op, cases[i].op);
        assert_int_equal(plan.unresolved, cases[i].unresolved);
        if (cases[i].error) {
            assert_non_null(plan.error);
            assert_memory_equal(plan.error, cases[i].error, strlen(cases[i].error));
        } else {
            assert_null(plan.error);
        }
        /* a Write only for what is sent */
        if (cases[i].op == RECORD_DELETE)
            assert_non_null(plan.write);
        else
            assert_null(plan.write);
        assert_string_equal(buf_str(&plan.document), cases[i].document);
        record_plan_release(&plan);
        event_record_release(&o.rec);
    }
}

/* record_write, the drain's path: the document fixed at ingest, update or delete. */
static void test_record_write(void **state)
{
    struct config cfg;
    struct d2f_err err = {0};
    struct one o, bad;
    char *w = NULL;
    size_t n = 0;

    (void)state;
    test_env = keys_env;
    assert_int_equal(config_load(&cfg, get, &err), 0);
    read_one(&o, "MODIFY", ALICE_7_KEYS,
             "{\"customer\":{\"S\":\"alice\"},\"n\":{\"N\":\"7\"},\"qty\":{\"N\":\"2\"}}", "");
    assert_int_equal(record_write(&o.rec, &cfg, DOCS, "Orders/kept-id", 0, &w, &n, &err), 0);
    assert_int_equal(n, strlen(w));
    assert_same_json(NULL, w,
                     "{\"update\":{\"name\":\"" DOCS "/Orders/kept-id\",\"fields\":{"
                     "\"customer\":{\"stringValue\":\"alice\"},\"n\":{\"integerValue\":\"7\"},"
                     "\"qty\":{\"integerValue\":\"2\"}}}}");
    free(w);
    assert_int_equal(record_write(&o.rec, &cfg, DOCS, "Orders/kept-id", 1, &w, &n, &err), 0);
    assert_string_equal(w, "{\"delete\":\"" DOCS "/Orders/kept-id\"}");
    free(w);
    event_record_release(&o.rec);

    /* a record that cannot be written: an error, no Write */
    read_one(&bad, "MODIFY", ALICE_7_KEYS, "{\"x\":{\"N\":\"not a number\"}}", "");
    w = (char *)"unchanged";
    assert_int_equal(record_write(&bad.rec, &cfg, DOCS, "Orders/kept-id", 0, &w, &n, &err),
                     D2F_EINPUT);
    assert_null(w);
    assert_non_null(strstr(err.msg, "'dynamodb.NewImage' "));
    event_record_release(&bad.rec);
    read_one(&bad, "UPSERT", ALICE_7_KEYS, ALICE_7_KEYS, "");
    assert_int_equal(record_write(&bad.rec, &cfg, DOCS, "Orders/kept-id", 0, &w, &n, &err),
                     D2F_EINPUT);
    assert_null(w);
    assert_string_equal(err.msg, bad.rec.error);
    event_record_release(&bad.rec);
    config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_and_modify), cmocka_unit_test(test_remove_and_document_names),
        cmocka_unit_test(test_document_size),     cmocka_unit_test(test_dead_unresolved_skipped),
        cmocka_unit_test(test_record_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
