/* Unit tests for config.c: every setting, and errors that name the variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "test_env.h"

#include "config.h"

static void test_defaults(void **state)
{
    static const char *const env[] = {NULL};
    struct config cfg;

    (void)state;
    test_env = env;
    assert_int_equal(config_load(&cfg, get, NULL), 0);
    assert_string_equal(cfg.outbox, "./ddb2fs.db");
    assert_null(cfg.project);
    assert_string_equal(cfg.database, "(default)");
    assert_string_equal(cfg.separator, "#");
    assert_int_equal(cfg.numbers, CONFIG_NUMBERS_AUTO);
    assert_int_equal(cfg.ttl, CONFIG_TTL_DELETE);
    assert_int_equal(cfg.journal, CONFIG_JOURNAL_AUTO);
    assert_int_equal(cfg.nkeys, 0);
    config_release(&cfg);
}

static void test_lambda_default_outbox(void **state)
{
    static const char *const env[] = {"AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001", NULL};
    struct config cfg;

    (void)state;
    test_env = env;
    assert_int_equal(config_load(&cfg, get, NULL), 0);
    assert_string_equal(cfg.outbox, "/mnt/outbox/ddb2fs.db");
    config_release(&cfg);
}

static void test_everything_set(void **state)
{
    static const char *const env[] = {"DDB2FS_OUTBOX",
                                      "/tmp/x.db",
                                      "GOOGLE_CLOUD_PROJECT",
                                      "my-project",
                                      "DDB2FS_DATABASE",
                                      "replica-1",
                                      "DDB2FS_KEYS",
                                      " Orders = customer , orderDate ; Users=userId;",
                                      "DDB2FS_COLLECTIONS",
                                      "Orders=shop/acme/orders;Users=people",
                                      "DDB2FS_KEY_SEPARATOR",
                                      "::",
                                      "DDB2FS_NUMBERS",
                                      "string",
                                      "DDB2FS_TTL_DELETES",
                                      "ignore",
                                      "DDB2FS_JOURNAL",
                                      "delete",
                                      NULL};
    struct config cfg;
    const struct config_keys *k;

    (void)state;
    test_env = env;
    assert_int_equal(config_load(&cfg, get, NULL), 0);
    assert_string_equal(cfg.outbox, "/tmp/x.db");
    assert_string_equal(cfg.project, "my-project");
    assert_string_equal(cfg.database, "replica-1");
    assert_int_equal(cfg.nkeys, 2);
    k = config_keys_for(&cfg, "Orders");
    assert_non_null(k);
    assert_string_equal(k->partition, "customer");
    assert_string_equal(k->sort, "orderDate");
    k = config_keys_for(&cfg, "Users");
    assert_string_equal(k->partition, "userId");
    assert_null(k->sort);
    assert_null(config_keys_for(&cfg, "Other"));
    assert_string_equal(config_collection_for(&cfg, "Orders"), "shop/acme/orders");
    assert_string_equal(config_collection_for(&cfg, "Users"), "people");
    assert_null(config_collection_for(&cfg, "Other"));
    assert_string_equal(cfg.separator, "::");
    assert_int_equal(cfg.numbers, CONFIG_NUMBERS_STRING);
    assert_int_equal(cfg.ttl, CONFIG_TTL_IGNORE);
    assert_int_equal(cfg.journal, CONFIG_JOURNAL_DELETE);
    config_release(&cfg);
}

static void test_bad_values(void **state)
{
    static const char *const bad[][3] = {
        {"DDB2FS_NUMBERS", "exact", "DDB2FS_NUMBERS: 'exact' is not accepted; use auto or string"},
        {"DDB2FS_TTL_DELETES", "keep", "DDB2FS_TTL_DELETES: 'keep' is not accepted"},
        {"DDB2FS_JOURNAL", "wal2", "DDB2FS_JOURNAL"},
        {"DDB2FS_KEYS", "Orders", "DDB2FS_KEYS: entry 1 has no '='"},
        {"DDB2FS_KEYS", "Orders=a;Users", "DDB2FS_KEYS: entry 2 has no '='"},
        {"DDB2FS_KEYS", "Or=a", "not a DynamoDB table name"},
        {"DDB2FS_KEYS", "Orders=", "expected one or two key attribute names"},
        {"DDB2FS_KEYS", "Orders=a,b,c", "expected one or two key attribute names"},
        {"DDB2FS_KEYS", "Orders=a,a", "the partition and sort key are the same"},
        {"DDB2FS_KEYS", "Orders=a;Orders=b", "table 'Orders' is named twice"},
        {"DDB2FS_COLLECTIONS", "Orders=a/b", "even number of segments"},
        {"DDB2FS_COLLECTIONS", "Orders=__x__", "reserved"},
        {"DDB2FS_COLLECTIONS", "Orders=a//b", "is empty"},
        {"DDB2FS_COLLECTIONS", "Orders", "DDB2FS_COLLECTIONS: entry 1 has no '='"},
        {"DDB2FS_KEY_SEPARATOR", "/", "DDB2FS_KEY_SEPARATOR"},
        {"DDB2FS_KEY_SEPARATOR", "%", "DDB2FS_KEY_SEPARATOR"},
        {"DDB2FS_KEY_SEPARATOR", "12345678901234567", "DDB2FS_KEY_SEPARATOR"},
        {"DDB2FS_DATABASE", "Bad_DB", "DDB2FS_DATABASE: 'Bad_DB' is not a database id"},
        {"GOOGLE_CLOUD_PROJECT", "a/b", "GOOGLE_CLOUD_PROJECT"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *env[] = {bad[i][0], bad[i][1], NULL};
        struct config cfg;
        struct d2f_err err = {0};

        test_env = env;
        assert_int_equal(config_load(&cfg, get, &err), D2F_ECONFIG);
        if (!strstr(err.msg, bad[i][2]))
            fail_msg("%s=%s: expected '%s' in '%s'", bad[i][0], bad[i][1], bad[i][2], err.msg);
        assert_null(cfg.storage); /* released on error */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_lambda_default_outbox),
        cmocka_unit_test(test_everything_set),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
