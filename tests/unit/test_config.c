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
        {"DDB2FS_RETENTION", "12h", "DDB2FS_RETENTION: '12h' is not accepted"},
        {"DDB2FS_RETENTION", "7", "DDB2FS_RETENTION"},
        {"DDB2FS_RETENTION", "-1d", "DDB2FS_RETENTION"},
        {"DDB2FS_RETENTION", "7w", "DDB2FS_RETENTION"},
        {"DDB2FS_RETENTION", "d", "DDB2FS_RETENTION"},
        {"DDB2FS_RETENTION", "99999d", "DDB2FS_RETENTION"},
        {"DDB2FS_KEY_SEALED", "k.sealed", "DDB2FS_KEY_SECRET: not set"},
        {"AWS_ENDPOINT_URL_SECRETS_MANAGER", "localhost:1", "AWS_ENDPOINT_URL_SECRETS_MANAGER"},
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

static void test_retention(void **state)
{
    static const struct {
        const char *text;
        long seconds;
    } ok[] = {{NULL, 7 * 86400},  {"0", 0},         {"1d", 86400},
              {"36h", 36 * 3600}, {"1440m", 86400}, {"90000s", 90000}};

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *env[] = {"DDB2FS_RETENTION", ok[i].text, NULL};
        struct config cfg;
        struct d2f_err err = {0};

        test_env = ok[i].text ? env : NULL;
        assert_int_equal(config_load(&cfg, get, &err), 0);
        assert_int_equal(cfg.retention_s, ok[i].seconds);
        config_release(&cfg);
    }
}

static void test_sealed_key_settings(void **state)
{
    const char *env[] = {"DDB2FS_KEY_SEALED",
                         "/mnt/outbox/sa.sealed",
                         "DDB2FS_KEY_SECRET",
                         "ddb2fs/data-key",
                         "AWS_ENDPOINT_URL",
                         "http://127.0.0.1:4566",
                         NULL};
    const char *both[] = {"DDB2FS_KEY_SECRET", "s", "GOOGLE_APPLICATION_CREDENTIALS", "k.json",
                          NULL};
    struct config cfg;
    struct d2f_err err = {0};

    (void)state;
    test_env = env;
    assert_int_equal(config_load(&cfg, get, &err), 0);
    assert_string_equal(cfg.key_sealed, "/mnt/outbox/sa.sealed");
    assert_string_equal(cfg.key_secret, "ddb2fs/data-key");
    assert_string_equal(cfg.secrets_endpoint, "http://127.0.0.1:4566");
    config_release(&cfg);
    test_env = both;
    assert_int_equal(config_load(&cfg, get, &err), D2F_ECONFIG);
    assert_non_null(strstr(err.msg, "not both"));
}

static void test_describe_names_no_secret(void **state)
{
    const char *env[] = {"DDB2FS_COLLECTIONS",
                         "Orders=orders;Users=people",
                         "AWS_SECRET_ACCESS_KEY",
                         "never-recorded",
                         "DDB2FS_RETENTION",
                         "2d",
                         NULL};
    struct config_description d;
    struct config cfg;
    struct d2f_err err = {0};
    int seen = 0;

    (void)state;
    test_env = env;
    assert_int_equal(config_load(&cfg, get, &err), 0);
    config_describe(&cfg, &d);
    assert_true(d.n <= CONFIG_DESCRIBED);
    for (size_t i = 0; i < d.n; i++) {
        const char *v = d.pairs[2 * i + 1];
        assert_null(v && strstr(v, "never-recorded") ? v : NULL);
        if (strcmp(d.pairs[2 * i], "DDB2FS_COLLECTIONS") == 0) {
            assert_string_equal(v, "Orders=orders;Users=people");
            seen++;
        }
        if (strcmp(d.pairs[2 * i], "DDB2FS_RETENTION") == 0) {
            assert_string_equal(v, "172800");
            seen++;
        }
        if (strcmp(d.pairs[2 * i], "DDB2FS_COMMIT_WRITES") == 0) {
            assert_string_equal(v, "500");
            seen++;
        }
    }
    assert_int_equal(seen, 3);
    config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_lambda_default_outbox),
        cmocka_unit_test(test_everything_set),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_sealed_key_settings),
        cmocka_unit_test(test_describe_names_no_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
