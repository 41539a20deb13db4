/* Unit tests for outbox.c: journal choice, migrations, dedupe, transactions, key schemas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/outbox.c"
#include "fence.h"

static char dir[] = "/tmp/d2f-outbox-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static int64_t count(struct outbox *ob, const char *sql)
{
    sqlite3_stmt *st;
    int64_t n = -1;

    assert_int_equal(sqlite3_prepare_v2(outbox_db(ob), sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* How many of the program's steps for sql are the opcode op (EXPLAIN). */
static int64_t opcodes(struct outbox *ob, const char *sql, const char *op)
{
    sqlite3_stmt *st;
    char explain[512];
    int64_t n = 0;

    snprintf(explain, sizeof(explain), "EXPLAIN %s", sql);
    assert_int_equal(sqlite3_prepare_v2(outbox_db(ob), explain, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        n += strcmp((const char *)sqlite3_column_text(st, 1), op) == 0;
    sqlite3_finalize(st);
    return n;
}

/* The rules on a column's allowed values hold as written in sql/0001 and sql/0005: each allowed
 * value (and NULL where the column may be NULL) is taken, anything else refused; and since
 * version 8 no table's check builds a temporary b-tree for a list of values (EXPLAIN shows no
 * OpenEphemeral for a record's insert or its mark). Run in a savepoint, undone after. */
static void checks_hold(struct outbox *ob)
{
    static const struct {
        const char *sql;
        int ok;
    } cases[] = {
        {"INSERT INTO record_info (id, arrived_at, op) VALUES (900001, 0, 'update')", 1},
        {"INSERT INTO record_info (id, arrived_at, op) VALUES (900002, 0, 'delete')", 1},
        {"INSERT INTO record_info (id, arrived_at, op) VALUES (900003, 0, 'skip')", 1},
        {"INSERT INTO record_info (id, arrived_at, op) VALUES (900004, 0, NULL)", 1},
        {"INSERT INTO record_info (id, arrived_at, op) VALUES (900005, 0, 'Update')", 0},
        {"INSERT INTO record_info (id, arrived_at, op, kind) VALUES (900006, 0, 'skip', 'x')", 0},
        {"INSERT INTO record_state (id, state) VALUES (900001, 'pending')", 1},
        {"INSERT INTO record_state (id, state) VALUES (900002, 'committed')", 1},
        {"INSERT INTO record_state (id, state) VALUES (900003, 'dead')", 1},
        {"INSERT INTO record_state (id, state) VALUES (900004, 'done')", 0},
        {"INSERT INTO record_state (id, state) VALUES (900005, NULL)", 0},
        {"UPDATE record_state SET state = 'pending ' WHERE id = 900001", 0},
        {"INSERT INTO snapshot (id, job_id, segment, page, read_start, read_end, outcome) "
         "VALUES (900001, 1, 0, 0, 0, 0, 'superseded')",
         1},
        {"INSERT INTO snapshot (id, job_id, segment, page, read_start, read_end, outcome) "
         "VALUES (900002, 1, 0, 0, 0, 0, 'lost')",
         0},
        {"INSERT INTO backfill_job (id, table_name, stream_arn, partition_key, segments, rate, "
         "consistent, state, created_at) VALUES (900001, 't', 's', 'k', 1, 1, 0, 'cancelled', 0)",
         1},
        {"INSERT INTO backfill_job (id, table_name, stream_arn, partition_key, segments, rate, "
         "consistent, state, created_at) VALUES (900002, 't', 's', 'k', 1, 1, 0, 'paused', 0)",
         0},
    };
    sqlite3 *db = outbox_db(ob);

    assert_int_equal(count(ob, "SELECT count(*) FROM pragma_integrity_check "
                               "WHERE integrity_check <> 'ok'"),
                     0);
    assert_int_equal(opcodes(ob,
                             "INSERT INTO record_info (id, arrived_at, op) VALUES (1, 0, "
                             "'update')",
                             "OpenEphemeral"),
                     0);
    assert_int_equal(
        opcodes(ob, "UPDATE record_state SET state = 'committed' WHERE id = 1", "OpenEphemeral"),
        0);
    assert_int_equal(sqlite3_exec(db, "SAVEPOINT checks", NULL, NULL, NULL), SQLITE_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = sqlite3_exec(db, cases[i].sql, NULL, NULL, NULL);
        if ((rc == SQLITE_OK) != cases[i].ok)
            fail_msg("%s: %s", cases[i].sql, sqlite3_errmsg(db));
        if (!cases[i].ok)
            assert_int_equal(rc & 0xFF, SQLITE_CONSTRAINT);
    }
    assert_int_equal(sqlite3_exec(db, "ROLLBACK TO checks; RELEASE checks", NULL, NULL, NULL),
                     SQLITE_OK);
}

static void test_network_fs(void **state)
{
    (void)state;
    assert_int_equal(network_fs(0x6969), 1);           /* NFS, as EFS is */
    assert_int_equal(network_fs((long)0xFF534D42), 1); /* CIFS */
    assert_int_equal(network_fs(0xEF53), 0);           /* ext4 */
    assert_int_equal(network_fs(0x58465342), 0);       /* XFS */
    assert_int_equal(network_fs(0x01021994), 0);       /* tmpfs */
    assert_int_equal(network_fs(0x794C7630), 0);       /* overlayfs */
}

static void test_journal_choice(void **state)
{
    char p[256];

    (void)state;
    path_of(p, sizeof(p), "x.db");
    assert_string_equal(choose_journal(p, CONFIG_JOURNAL_AUTO), "wal"); /* a local disk */
    assert_string_equal(choose_journal(p, CONFIG_JOURNAL_DELETE), "delete");
    assert_string_equal(choose_journal("/no/such/dir/x.db", CONFIG_JOURNAL_AUTO), "delete");
    assert_string_equal(choose_journal(p, CONFIG_JOURNAL_WAL), "wal");
}

static void test_open_migrate(void **state)
{
    char p[256];
    struct outbox *ob = NULL;
    struct d2f_err err = {0};

    (void)state;
    path_of(p, sizeof(p), "m.db");
    assert_int_equal(outbox_open(&ob, p, CONFIG_JOURNAL_AUTO, OUTBOX_EXISTING, &err), D2F_EIO);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_int_equal(outbox_open(&ob, p, CONFIG_JOURNAL_AUTO, OUTBOX_CREATE, &err), 0);
    assert_string_equal(outbox_journal(ob), "wal");
    assert_int_equal(count(ob, "PRAGMA user_version"),
                     (int64_t)atoi(sqlfiles[sqlfiles_count - 1].name));
    assert_int_equal(count(ob, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(count(ob, "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND "
                               "name IN ('pending_summary', 'dead', 'lag', 'doc_history')"),
                     4);
    checks_hold(ob);
    /* a schema newer than this build knows is refused */
    assert_int_equal(sqlite3_exec(outbox_db(ob), "PRAGMA user_version = 99", NULL, NULL, NULL),
                     SQLITE_OK);
    outbox_close(ob);
    assert_int_equal(outbox_open(&ob, p, CONFIG_JOURNAL_AUTO, OUTBOX_EXISTING, &err), D2F_ESCHEMA);
    assert_non_null(strstr(err.msg, "schema version 99"));
    assert_null(ob);
}

/* An outbox of schema version 5 keeps its fences through version 6's compact table: each by
 * its target's number, read back through a fence reader; version 7 drops the settings row an
 * earlier version wrote under a name no variable has, and keeps the others. */
static void test_fences_migrated(void **state)
{
    static const char *const a = "http://a/v1/projects/p/databases/(default)/documents";
    static const char *const b = "https://b/v1/projects/q/databases/d/documents";
    char p[256], time[FENCE_TIME_MAX];
    sqlite3 *db = NULL;
    struct outbox *ob = NULL;
    struct fence_reader *rd = NULL;
    struct d2f_err err = {0};
    char sql[512];

    (void)state;
    path_of(p, sizeof(p), "v5.db");
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    for (size_t v = 0; v < sqlfiles_count && atoi(sqlfiles[v].name) <= 5; v++)
        assert_int_equal(sqlite3_exec(db, sqlfiles[v].text, NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "PRAGMA user_version = 5; INSERT INTO fence (target, document, update_time) VALUES "
             "('%s', 'Orders/1', '2026-12-03T08:00:00.000001Z'), ('%s', 'Orders/2', NULL), "
             "('%s', 'Orders/1', '2026-12-03T09:00:00Z'); INSERT INTO settings (name, value, "
             "recorded_at) VALUES ('DDB2FS_RETENTION_SECONDS', '604800', 0), "
             "('DDB2FS_NUMBERS', 'auto', 0)",
             a, a, b);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(outbox_open(&ob, p, CONFIG_JOURNAL_AUTO, OUTBOX_EXISTING, &err), 0);
    assert_int_equal(count(ob, "PRAGMA user_version"),
                     (int64_t)atoi(sqlfiles[sqlfiles_count - 1].name));
    assert_int_equal(count(ob, "SELECT count(*) FROM settings WHERE name = "
                               "'DDB2FS_RETENTION_SECONDS'"),
                     0);
    assert_int_equal(count(ob, "SELECT count(*) FROM settings WHERE name = 'DDB2FS_NUMBERS'"), 1);
    checks_hold(ob);
    assert_int_equal(count(ob, "SELECT count(*) FROM fence_target"), 2);
    assert_int_equal(count(ob, "SELECT count(*) FROM fence"), 3);
    assert_int_equal(fence_reader_new(&rd, ob, a, &err), 0);
    assert_int_equal(fence_get(rd, "Orders/1", time, sizeof(time), &err), 0);
    assert_string_equal(time, "2026-12-03T08:00:00.000001Z");
    assert_int_equal(fence_get(rd, "Orders/2", time, sizeof(time), &err), 0);
    assert_string_equal(time, ""); /* absent */
    assert_int_equal(fence_get(rd, "Orders/3", time, sizeof(time), &err), 0);
    assert_string_equal(time, ""); /* never written */
    fence_reader_free(rd);
    assert_int_equal(fence_reader_new(&rd, ob, b, &err), 0);
    assert_int_equal(fence_get(rd, "Orders/1", time, sizeof(time), &err), 0);
    assert_string_equal(time, "2026-12-03T09:00:00Z");
    fence_reader_free(rd);
    /* a target not named yet: nothing, then what a landed write recorded */
    assert_int_equal(fence_reader_new(&rd, ob, "http://c/v1/x", &err), 0);
    assert_int_equal(fence_get(rd, "Orders/1", time, sizeof(time), &err), 0);
    assert_string_equal(time, "");
    {
        struct fence f = {.document = "Orders/1", .update_time = "2026-12-03T10:00:00Z"};
        assert_int_equal(fence_put(ob, "http://c/v1/x", &f, 1, NULL, 0, NULL, 0, &err), 0);
    }
    assert_int_equal(fence_get(rd, "Orders/1", time, sizeof(time), &err), 0);
    assert_string_equal(time, "2026-12-03T10:00:00Z");
    fence_reader_free(rd);
    outbox_close(ob);
}

static void test_rollback_journal(void **state)
{
    char p[256];
    struct outbox *ob = NULL;
    struct d2f_err err = {0};

    (void)state;
    path_of(p, sizeof(p), "r.db");
    assert_int_equal(outbox_open(&ob, p, CONFIG_JOURNAL_DELETE, OUTBOX_CREATE, &err), 0);
    assert_string_equal(outbox_journal(ob), "delete");
    outbox_close(ob);
}

/* A read hold keeps the file's read lock between statements (with the rollback journal, as on
 * EFS, another connection's commit waits for it), a release or this connection's next write
 * ends it, and holding twice is holding once. */
static void test_read_hold(void **state)
{
    char p[256];
    struct outbox *ob = NULL;
    struct d2f_err err = {0};
    sqlite3 *other = NULL;
    static const char *const write =
        "BEGIN IMMEDIATE; INSERT INTO meta (key, value) VALUES ('x', 1) ON CONFLICT (key) DO "
        "UPDATE SET value = value + 1; COMMIT";

    (void)state;
    path_of(p, sizeof(p), "h.db");
    assert_int_equal(outbox_open(&ob, p, CONFIG_JOURNAL_DELETE, OUTBOX_CREATE, &err), 0);
    assert_int_equal(sqlite3_open(p, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, write, NULL, NULL, NULL), SQLITE_OK);

    assert_int_equal(outbox_read_hold(ob, &err), 0);
    assert_int_equal(outbox_read_hold(ob, &err), 0);
    assert_int_equal(count(ob, "SELECT value FROM meta WHERE key = 'x'"), 1);
    assert_int_equal(sqlite3_exec(other, write, NULL, NULL, NULL) & 0xFF, SQLITE_BUSY);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    assert_int_equal(count(ob, "SELECT value FROM meta WHERE key = 'x'"), 1);
    outbox_read_release(ob);
    assert_int_equal(sqlite3_exec(other, write, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(count(ob, "SELECT value FROM meta WHERE key = 'x'"), 2);

    /* this connection's write ends the hold, and others write after it */
    assert_int_equal(outbox_read_hold(ob, &err), 0);
    assert_int_equal(outbox_begin(ob, &err), 0);
    assert_int_equal(
        sqlite3_exec(outbox_db(ob), "UPDATE meta SET value = 10 WHERE key = 'x'", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(outbox_commit(ob, &err), 0);
    assert_int_equal(sqlite3_exec(other, write, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(count(ob, "SELECT value FROM meta WHERE key = 'x'"), 11);
    sqlite3_close(other);
    outbox_close(ob);
}

static struct outbox_row row(const char *seq, const char *raw)
{
    static char key[41];
    struct outbox_row r = {0};

    snprintf(key, sizeof(key), "%040d", atoi(seq));
    r.stream_arn = "arn:aws:dynamodb:r:1:table/T/stream/s";
    r.seq = seq;
    r.seq_key = key;
    r.table = "T";
    r.document = "T/1";
    r.op = "update";
    r.arrived_at = 1;
    r.state = "pending";
    r.raw = raw;
    r.raw_len = strlen(raw);
    return r;
}

static void test_dedupe_and_rollback(void **state)
{
    char p[256];
    struct outbox *ob = NULL;
    struct d2f_err err = {0};
    struct outbox_row r;
    int inserted;

    (void)state;
    path_of(p, sizeof(p), "d.db");
    assert_int_equal(outbox_open(&ob, p, CONFIG_JOURNAL_AUTO, OUTBOX_CREATE, &err), 0);
    assert_int_equal(outbox_begin(ob, &err), 0);
    r = row("1", "{\"a\":1}");
    assert_int_equal(outbox_insert(ob, &r, &inserted, &err), 0);
    assert_int_equal(inserted, 1);
    r = row("1", "{\"a\":\"other\"}");
    assert_int_equal(outbox_insert(ob, &r, &inserted, &err), 0);
    assert_int_equal(inserted, 0);
    r = row("2", "{\"a\":2}");
    r.stream_arn = "arn:aws:dynamodb:r:1:table/T/stream/new-label"; /* a re-enabled stream */
    r.seq = "1";
    assert_int_equal(outbox_insert(ob, &r, &inserted, &err), 0);
    assert_int_equal(inserted, 1);
    /* records with no valid sequence dedupe on their raw hash */
    r = row("3", "{\"bad\":true}");
    r.seq_key = NULL;
    r.raw_sha256 = "ab";
    r.state = "dead";
    assert_int_equal(outbox_insert(ob, &r, &inserted, &err), 0);
    assert_int_equal(inserted, 1);
    assert_int_equal(outbox_insert(ob, &r, &inserted, &err), 0);
    assert_int_equal(inserted, 0);
    assert_int_equal(outbox_commit(ob, &err), 0);
    assert_int_equal(count(ob, "SELECT count(*) FROM records"), 3);
    assert_int_equal(count(ob, "SELECT count(*) FROM record_raw WHERE raw = '{\"a\":1}'"), 1);

    assert_int_equal(outbox_begin(ob, &err), 0);
    r = row("4", "{\"a\":4}");
    assert_int_equal(outbox_insert(ob, &r, &inserted, &err), 0);
    outbox_rollback(ob);
    assert_int_equal(count(ob, "SELECT count(*) FROM records"), 3);
    /* a state the schema does not know is refused, not silently dropped */
    assert_int_equal(outbox_begin(ob, &err), 0);
    r = row("5", "{}");
    r.state = "lost";
    assert_int_equal(outbox_insert(ob, &r, &inserted, &err), D2F_EDB);
    assert_non_null(strstr(err.msg, "CHECK constraint"));
    outbox_rollback(ob);
    outbox_close(ob);
}

static void test_key_schema(void **state)
{
    char p[256];
    struct outbox *ob = NULL;
    struct d2f_err err = {0};
    const char *pk, *sk;
    int found;
    struct config cfg = {0};
    struct config_keys k = {"Orders", "customer", "date"};

    (void)state;
    path_of(p, sizeof(p), "k.db");
    assert_int_equal(outbox_open(&ob, p, CONFIG_JOURNAL_AUTO, OUTBOX_CREATE, &err), 0);
    assert_int_equal(outbox_keys_get(ob, "Orders", &pk, &sk, &found, &err), 0);
    assert_int_equal(found, 0);
    /* recorded in a transaction that rolls back: forgotten */
    assert_int_equal(outbox_begin(ob, &err), 0);
    assert_int_equal(outbox_keys_put(ob, "Orders", "x", NULL, "test", &pk, &sk, &err), 0);
    outbox_rollback(ob);
    assert_int_equal(outbox_keys_get(ob, "Orders", &pk, &sk, &found, &err), 0);
    assert_int_equal(found, 0);

    assert_int_equal(outbox_begin(ob, &err), 0);
    assert_int_equal(outbox_keys_put(ob, "Orders", "customer", "date", "test", &pk, &sk, &err), 0);
    /* the first one recorded wins */
    assert_int_equal(outbox_keys_put(ob, "Orders", "other", NULL, "test", &pk, &sk, &err), 0);
    assert_string_equal(pk, "customer");
    assert_string_equal(sk, "date");
    assert_int_equal(outbox_commit(ob, &err), 0);

    cfg.keys = &k;
    cfg.nkeys = 1;
    assert_int_equal(outbox_check_keys(ob, &cfg, &err), 0);
    k.sort = NULL;
    assert_int_equal(outbox_check_keys(ob, &cfg, &err), D2F_ESCHEMA);
    assert_non_null(strstr(err.msg, "DDB2FS_KEYS: table 'Orders' is set to (customer)"));
    assert_non_null(strstr(err.msg, "recorded its key schema as (customer, date)"));
    outbox_close(ob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_network_fs),          cmocka_unit_test(test_journal_choice),
        cmocka_unit_test(test_open_migrate),        cmocka_unit_test(test_rollback_journal),
        cmocka_unit_test(test_dedupe_and_rollback), cmocka_unit_test(test_key_schema),
        cmocka_unit_test(test_fences_migrated),     cmocka_unit_test(test_read_hold),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
