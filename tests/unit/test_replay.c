/* Unit tests for replay.c: the range's bounds, and every selection's SQL against a real (empty)
 * outbox, for every mode and target. The replays themselves run against the local Firestore
 * server through the binary (tests/integration/test_replay.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/replay.c"

static void test_times(void **state)
{
    int64_t ms;

    (void)state;
    assert_int_equal(parse_time("2025-01-01T00:00:10Z", &ms), 0);
    assert_int_equal(ms, 1735689610000);
    assert_int_equal(parse_time("2025-01-01T00:00:10.25Z", &ms), 0);
    assert_int_equal(ms, 1735689610250);
    assert_int_equal(parse_time("2025-01-01", &ms), 0);
    assert_int_equal(ms, 1735689600000);
    assert_int_equal(parse_time("2025-01-01T00:00:10", &ms), -1); /* no zone */
    assert_int_equal(parse_time("2025-01-01T00:00:10+02:00", &ms), -1);
    assert_int_equal(parse_time("2025-13-01", &ms), -1);
    assert_int_equal(parse_time("2025-1-1", &ms), -1);
    assert_int_equal(parse_time("yesterday", &ms), -1);
}

static void test_bounds(void **state)
{
    struct bound b;
    struct d2f_err err = {0};

    (void)state;
    assert_int_equal(parse_bound("--since", "100000000000000000999", &b, &err), 0);
    assert_true(b.set && b.is_seq);
    assert_string_equal(b.seq_key, "0000000000000000000100000000000000000999");
    assert_int_equal(parse_bound("--until", "2025-01-01", &b, &err), 0);
    assert_true(b.set && !b.is_seq);
    assert_int_equal(parse_bound("--until", "12345678901234567890123456789012345678901", &b, &err),
                     D2F_EUSAGE);
    assert_int_equal(parse_bound("--since", "soon", &b, &err), D2F_EUSAGE);
    assert_non_null(strstr(err.msg, "--since: 'soon' is neither a sequence number"));
    assert_int_equal(parse_bound("--since", NULL, &b, &err), 0);
    assert_false(b.set);
}

static void test_every_selection_prepares(void **state)
{
    char path[] = "/tmp/d2f-replay-XXXXXX", db[64], sql[4096], where[512];
    struct outbox *ob = NULL;
    struct d2f_err err = {0};
    struct bound since = {0}, until = {0};
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    snprintf(db, sizeof(db), "%s.db", path);
    assert_int_equal(outbox_open(&ob, db, CONFIG_JOURNAL_AUTO, OUTBOX_CREATE, &err), 0);
    assert_int_equal(parse_bound("--since", "1", &since, &err), 0);
    assert_int_equal(parse_bound("--until", "2026-01-01", &until, &err), 0);
    for (int mode = REPLAY_REBUILD; mode <= REPLAY_DEAD; mode++)
        for (int live = 0; live < 2; live++)
            for (int pick = PICK_SEND; pick <= PICK_WAITING; pick++) {
                struct replay_opts o = {.mode = (enum replay_mode)mode, .table = "T", .doc = "d"};
                sqlite3_stmt *st = NULL;
                filters(&o, &since, &until, where, sizeof(where));
                selection(&o, live, (enum pick)pick, where, sql, sizeof(sql));
                if (sqlite3_prepare_v2(outbox_db(ob), sql, -1, &st, NULL) != SQLITE_OK)
                    fail_msg("mode %d live %d pick %d: %s\n%s", mode, live, pick,
                             sqlite3_errmsg(outbox_db(ob)), sql);
                assert_true(sqlite3_bind_parameter_index(st, ":after") > 0);
                assert_true(sqlite3_bind_parameter_index(st, ":limit") > 0);
                assert_true(sqlite3_bind_parameter_index(st, ":since") > 0);
                sqlite3_finalize(st);
            }
    outbox_close(ob);
    unlink(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_every_selection_prepares),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
