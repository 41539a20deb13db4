/* Unit tests for status.c: the report on a small outbox made here through the outbox API
 * (counts by state and table, the oldest pending record, the lease, dead reasons), the text
 * for people with the data's control characters escaped, and two files merged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "json.h"
#include "status.h"

#define ARN(t) "arn:aws:dynamodb:us-east-1:123456789012:table/" t "/stream/2024-01-01T00:00:00.000"
/* 2023-11-14T22:13:20Z */
#define T0 1700000000000
/* A dead reason with a newline, an escape sequence and a quote, as data can make one; and one
 * with U+0000 (C0 80, json.h). */
#define BAD_VALUE "Records[3]: bad \"value\"\n\x1b[31m red"
#define NUL_KEY "Records[4]: key \xC0\x80 held"

static char dir[] = "/tmp/d2f-status-XXXXXX";
static int serial;

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes the outboxes made, each with the journal files SQLite may leave beside it. */
static int teardown(void **state)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[256];

    (void)state;
    for (int i = 0; i < serial; i++) {
        for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
            snprintf(path, sizeof(path), "%s/o%d.db%s", dir, i, suffixes[k]);
            unlink(path);
        }
    }
    return rmdir(dir);
}

/* One row of an outbox made by a test. */
struct row {
    const char *table, *state, *error;
    int64_t arrived_at, created_at; /* 0: now */
};

/* A new outbox holding rows, with the key schemas Orders (customer, n) and Users (id). */
static struct outbox *make(const struct row *rows, size_t n)
{
    struct outbox *ob = NULL;
    struct d2f_err err = {0};
    const char *pk, *sk;
    char path[256];

    snprintf(path, sizeof(path), "%s/o%d.db", dir, serial++);
    assert_int_equal(outbox_open(&ob, path, CONFIG_JOURNAL_AUTO, OUTBOX_CREATE, &err), 0);
    assert_int_equal(outbox_begin(ob, &err), 0);
    assert_int_equal(outbox_keys_put(ob, "Orders", "customer", "n", "DDB2FS_KEYS", &pk, &sk, &err),
                     0);
    assert_int_equal(outbox_keys_put(ob, "Users", "id", NULL, "DDB2FS_KEYS", &pk, &sk, &err), 0);
    for (size_t i = 0; i < n; i++) {
        char seq[32], seq_key[41], arn[160];
        int64_t now = d2f_now_ms();
        struct outbox_row r = {
            .stream_arn = arn,
            .seq = seq,
            .seq_key = seq_key,
            .event_id = "e",
            .event_name = "INSERT",
            .table = rows[i].table,
            .document = "x/1",
            .op = strcmp(rows[i].state, "dead") == 0 ? NULL : "update",
            .created_at = rows[i].created_at ? rows[i].created_at : now,
            .arrived_at = rows[i].arrived_at ? rows[i].arrived_at : now,
            .state = rows[i].state,
            .last_error = rows[i].error,
            .raw = "{}",
            .raw_len = 2,
        };
        int inserted = 0;
        snprintf(arn, sizeof(arn), ARN("%s"), rows[i].table);
        snprintf(seq, sizeof(seq), "%zu", 100 + i);
        snprintf(seq_key, sizeof(seq_key), "%040zu", 100 + i);
        assert_int_equal(outbox_insert(ob, &r, &inserted, &err), 0);
        assert_int_equal(inserted, 1);
    }
    assert_int_equal(outbox_commit(ob, &err), 0);
    return ob;
}

static const struct row orders_rows[] = {
    {"Orders", "pending", NULL, T0, T0 - 10000}, {"Orders", "pending", NULL, 0, 0},
    {"Orders", "dead", BAD_VALUE, T0, 0},        {"Orders", "dead", BAD_VALUE, T0, 0},
    {"Invoices", "dead", NUL_KEY, T0, 0},        {"Orders", "committed", NULL, 0, 0},
};

static double number(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    assert_true(cJSON_IsNumber(v) || cJSON_IsRaw(v));
    return json_number_value(v);
}

static const char *string(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static int is_null(const cJSON *o, const char *name)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* The counts, the oldest pending record and the lag, each table (those with a key schema and
 * no record too), the dead reasons most frequent first with their text unchanged, the lease,
 * this minute's throughput. */
static void test_collect(void **state)
{
    struct outbox *ob = make(orders_rows, sizeof(orders_rows) / sizeof(orders_rows[0]));
    struct d2f_err err = {0};
    cJSON *s = NULL, *t, *e;
    char holder[128];
    int taken = 0;
    double ingested = 0, committed = 0;

    (void)state;
    assert_int_equal(
        outbox_lease_take(ob, "host-a:4242", 4102444800000, NULL, &taken, holder, 128, &err), 0);
    assert_int_equal(taken, 1);
    assert_int_equal(status_collect(ob, &s, &err), 0);
    assert_string_equal(string(s, "outbox"), outbox_path(ob));
    assert_string_equal(string(s, "journal"), outbox_journal(ob));
    assert_true(number(s, "bytes") > 0);
    assert_true(number(s, "schema_version") >= 8);
    assert_true(number(s, "pending") == 2);
    assert_true(number(s, "dead") == 3);
    assert_true(number(s, "committed") == 1);
    assert_string_equal(string(s, "oldest_pending_arrived"), "2023-11-14T22:13:20Z");
    assert_true(number(s, "oldest_pending_age_s") >= (double)(d2f_now_ms() - T0) / 1000 - 2);
    /* the same 'now' in one statement: the change was made 10 s before it arrived */
    assert_true(number(s, "lag_s") - number(s, "oldest_pending_age_s") == 10);

    t = cJSON_GetObjectItemCaseSensitive(s, "tables");
    assert_int_equal(cJSON_GetArraySize(t), 3);
    e = cJSON_GetArrayItem(t, 0);
    assert_string_equal(string(e, "table_name"), "Invoices");
    assert_true(is_null(e, "partition_key") && is_null(e, "key_source"));
    assert_true(number(e, "pending") == 0 && number(e, "dead") == 1 && number(e, "committed") == 0);
    e = cJSON_GetArrayItem(t, 1);
    assert_string_equal(string(e, "table_name"), "Orders");
    assert_string_equal(string(e, "partition_key"), "customer");
    assert_string_equal(string(e, "sort_key"), "n");
    assert_string_equal(string(e, "key_source"), "DDB2FS_KEYS");
    assert_true(number(e, "pending") == 2 && number(e, "dead") == 2 && number(e, "committed") == 1);
    assert_true(number(e, "oldest_pending_age_s") == number(s, "oldest_pending_age_s"));
    e = cJSON_GetArrayItem(t, 2);
    assert_string_equal(string(e, "table_name"), "Users");
    assert_true(is_null(e, "sort_key") && is_null(e, "oldest_pending_age_s"));
    assert_true(number(e, "pending") == 0 && number(e, "dead") == 0 && number(e, "committed") == 0);

    t = cJSON_GetObjectItemCaseSensitive(s, "dead_reasons");
    assert_int_equal(cJSON_GetArraySize(t), 2);
    assert_string_equal(string(cJSON_GetArrayItem(t, 0), "table_name"), "Orders");
    assert_string_equal(string(cJSON_GetArrayItem(t, 0), "last_error"), BAD_VALUE);
    assert_true(number(cJSON_GetArrayItem(t, 0), "records") == 2);
    assert_string_equal(string(cJSON_GetArrayItem(t, 1), "last_error"), NUL_KEY);
    assert_true(number(cJSON_GetArrayItem(t, 1), "records") == 1);

    t = cJSON_GetObjectItemCaseSensitive(s, "lease");
    assert_int_equal(cJSON_GetArraySize(t), 1);
    assert_string_equal(string(cJSON_GetArrayItem(t, 0), "owner"), "host-a:4242");
    assert_string_equal(string(cJSON_GetArrayItem(t, 0), "expires"), "2100-01-01T00:00:00Z");
    assert_true(number(cJSON_GetArrayItem(t, 0), "live") == 1);

    /* two rows arrived now, one was committed now (one minute, or two at a minute's turn) */
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(s, "throughput"))
    {
        ingested += number(e, "ingested");
        committed += number(e, "committed");
    }
    assert_true(ingested == 2 && committed == 1);
    cJSON_Delete(s);
    outbox_close(ob);
}

/* The text for people: counts, each table's line, the dead reasons with a newline, an escape
 * sequence and U+0000 written as \xNN and \u0000 (a dead reason comes from data and must not
 * drive the terminal), quotes and the rest as they are. */
static void test_print_escapes(void **state)
{
    struct outbox *ob = make(orders_rows, sizeof(orders_rows) / sizeof(orders_rows[0]));
    struct d2f_err err = {0};
    cJSON *s = NULL;
    FILE *f = tmpfile();
    char text[8192];
    size_t n;
    static const char *const lines[] = {
        "records    2 pending, 3 dead, 1 committed\n",
        "oldest     pending since 2023-11-14T22:13:20Z (",
        "lease      none (no drain running)\n",
        "  Invoices                 0 pending, 1 dead, 0 committed; key (unknown) from nowhere "
        "yet: set DDB2FS_KEYS\n",
        "  Orders                   2 pending, 2 dead, 1 committed; key (customer, n) from "
        "DDB2FS_KEYS\n",
        "  Users                    0 pending, 0 dead, 0 committed; key (id) from DDB2FS_KEYS\n",
        "dead, most frequent reasons\n"
        "       2  Orders: Records[3]: bad \"value\"\\x0a\\x1b[31m red\n"
        "       1  Invoices: Records[4]: key \\u0000 held\n",
    };

    (void)state;
    assert_non_null(f);
    assert_int_equal(status_collect(ob, &s, &err), 0);
    status_print(s, f);
    rewind(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        if (!strstr(text, lines[i]))
            fail_msg("no '%s' in:\n%s", lines[i], text);
    assert_null(strchr(text, '\x1b'));
    /* printing escapes a copy: the collected status keeps the data as it is */
    assert_string_equal(
        string(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "dead_reasons"), 0),
               "last_error"),
        BAD_VALUE);
    cJSON_Delete(s);
    outbox_close(ob);
}

/* Two files of a partitioned outbox: totals summed, each file's counts kept, a table's counts
 * merged across files, the same dead reason counted once with its records summed, the most
 * frequent first, each lease with its partition. */
static void test_collect_set(void **state)
{
    static const struct row a_rows[] = {
        {"Orders", "pending", NULL, T0, T0},
        {"Orders", "dead", BAD_VALUE, T0, 0},
    };
    static const struct row b_rows[] = {
        {"Orders", "dead", BAD_VALUE, T0, 0},
        {"Orders", "dead", BAD_VALUE, T0, 0},
        {"Invoices", "dead", NUL_KEY, T0, 0},
    };
    struct outbox *obs[2] = {make(a_rows, 2), make(b_rows, 3)};
    struct d2f_err err = {0};
    cJSON *s = NULL, *t, *e;
    char holder[128];
    int taken = 0;

    (void)state;
    assert_int_equal(
        outbox_lease_take(obs[1], "host-b:7", 4102444800000, NULL, &taken, holder, 128, &err), 0);
    assert_int_equal(status_collect_set(obs, 2, &s, &err), 0);
    assert_string_equal(string(s, "outbox"), dir);
    assert_true(number(s, "partitions") == 2);
    assert_true(number(s, "pending") == 1 && number(s, "dead") == 4 && number(s, "committed") == 0);
    assert_string_equal(string(s, "oldest_pending_arrived"), "2023-11-14T22:13:20Z");

    t = cJSON_GetObjectItemCaseSensitive(s, "files");
    assert_int_equal(cJSON_GetArraySize(t), 2);
    assert_string_equal(string(cJSON_GetArrayItem(t, 1), "path"), outbox_path(obs[1]));
    assert_true(number(cJSON_GetArrayItem(t, 0), "pending") == 1);
    assert_true(number(cJSON_GetArrayItem(t, 0), "dead") == 1);
    assert_true(number(cJSON_GetArrayItem(t, 1), "dead") == 3);

    t = cJSON_GetObjectItemCaseSensitive(s, "tables");
    assert_int_equal(cJSON_GetArraySize(t), 3); /* Invoices, Orders, Users: each once */
    cJSON_ArrayForEach(e, t)
    {
        if (strcmp(string(e, "table_name"), "Orders") == 0)
            break;
    }
    assert_non_null(e);
    assert_true(number(e, "pending") == 1 && number(e, "dead") == 3);

    t = cJSON_GetObjectItemCaseSensitive(s, "dead_reasons");
    assert_int_equal(cJSON_GetArraySize(t), 2);
    assert_string_equal(string(cJSON_GetArrayItem(t, 0), "last_error"), BAD_VALUE);
    assert_true(number(cJSON_GetArrayItem(t, 0), "records") == 3);
    assert_string_equal(string(cJSON_GetArrayItem(t, 1), "table_name"), "Invoices");
    assert_true(number(cJSON_GetArrayItem(t, 1), "records") == 1);

    t = cJSON_GetObjectItemCaseSensitive(s, "lease");
    assert_int_equal(cJSON_GetArraySize(t), 1);
    assert_string_equal(string(cJSON_GetArrayItem(t, 0), "owner"), "host-b:7");
    assert_true(number(cJSON_GetArrayItem(t, 0), "partition") == 1);
    cJSON_Delete(s);
    outbox_close(obs[0]);
    outbox_close(obs[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collect),
        cmocka_unit_test(test_print_escapes),
        cmocka_unit_test(test_collect_set),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
