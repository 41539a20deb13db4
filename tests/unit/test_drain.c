/* Unit tests for drain.c's pure parts: cutting writes into commits and what each answer means. The
 * drain as a whole runs against the local Firestore server (tests/integration/test_drain.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/drain.c"

static struct item *item_of(size_t len)
{
    struct item *it = calloc(1, sizeof(*it));

    it->len = len;
    return it;
}

static void test_batches_bounded(void **state)
{
    struct config cfg = {.commit_writes = 3, .commit_bytes = 100, .concurrency = 2};
    struct run r = {.cfg = &cfg};
    struct sender s;
    size_t lens[] = {10, 10, 10, 10, 60, 10, 90, 200, 5};
    size_t n = sizeof(lens) / sizeof(lens[0]), seen = 0;
    struct item *items[9];

    (void)state;
    assert_int_equal(sender_init(&s, &r, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        items[i] = item_of(lens[i]);
        assert_int_equal(add_write(&s, items[i], NULL), 0);
    }
    assert_int_equal(flush(&s, NULL), 0);
    for (size_t i = 0; i < s.nq; i++) {
        struct batch *b = s.q[i];
        size_t bytes = BODY_OVERHEAD;
        assert_true(b->n >= 1);
        assert_true(b->n <= 3);
        for (size_t k = 0; k < b->n; k++) {
            assert_ptr_equal(b->items[k], items[seen + k]); /* order kept */
            bytes += b->items[k]->len + 1;
        }
        /* over the byte bound only when a single write is bigger than it */
        assert_true(bytes <= 100 || b->n == 1);
        seen += b->n;
    }
    assert_int_equal(seen, n);
    assert_int_equal(s.nq, 5); /* [10 10 10] [10 60 10] (99 bytes) [90] [200] [5] */
    sender_release(&s);
    for (size_t i = 0; i < n; i++)
        free_item(items[i]);
}

static void test_verdicts(void **state)
{
    struct run r = {0};
    struct firestore_commit c = {0};
    struct batch one = {.n = 1}, many = {.n = 7};

    (void)state;
    c.status = RETRY_OK;
    assert_int_equal(judge(&r, &c, &many), LANDED);
    c.status = RETRY_UNAVAILABLE;
    assert_int_equal(judge(&r, &c, &many), AGAIN);
    c.status = RETRY_NETWORK;
    assert_int_equal(judge(&r, &c, &one), AGAIN);
    c.status = RETRY_INVALID_ARGUMENT;
    assert_int_equal(judge(&r, &c, &many), SPLIT);
    assert_int_equal(judge(&r, &c, &one), BURY);
    c.status = RETRY_PERMISSION_DENIED;
    assert_int_equal(judge(&r, &c, &many), STOP);
    /* a refused precondition: read the documents anew, a few times at most */
    c.status = RETRY_ALREADY_EXISTS;
    assert_int_equal(judge(&r, &c, &many), FENCED);
    c.status = RETRY_FAILED_PRECONDITION;
    assert_int_equal(judge(&r, &c, &one), FENCED);
    one.refreshes = 20;
    assert_int_equal(judge(&r, &c, &one), STOP);
    /* INVALID_ARGUMENT on a commit in a transaction: first the documents are read */
    c.status = RETRY_INVALID_ARGUMENT;
    one.refreshes = 0;
    one.txn = "EQwAAAAAAAAA";
    assert_int_equal(judge(&r, &c, &one), FENCED);
    one.refreshes = 3;
    assert_int_equal(judge(&r, &c, &one), BURY);
    one.txn = NULL;
    c.status = RETRY_NOT_FOUND;
    assert_int_equal(judge(&r, &c, &many), STOP);
    c.status = RETRY_UNAUTHENTICATED;
    assert_int_equal(judge(&r, &c, &many), AGAIN); /* renew the token once */
    r.reauthed = 1;
    assert_int_equal(judge(&r, &c, &many), STOP);
}

static void test_preconditions(void **state)
{
    struct item a = {.write = "{\"update\":{\"name\":\"n/a\"}}"},
                d = {.write = "{\"delete\":\"n/d\"}"};
    struct item *items[2] = {&a, &d};
    struct batch b = {.items = items, .n = 2};
    struct buf body;

    (void)state;
    a.len = strlen(a.write);
    d.len = strlen(d.write);
    snprintf(d.fence, sizeof(d.fence), "2026-12-02T14:01:08.671669Z");
    d.del = 1;
    buf_init(&body, 4096);
    assert_int_equal(has_create(&b), 1);
    assert_int_equal(body_of(&b, &body), 0);
    assert_string_equal(
        buf_str(&body),
        "{\"writes\":[{\"update\":{\"name\":\"n/a\"},\"currentDocument\":{\"exists\":false}},"
        "{\"delete\":\"n/d\",\"currentDocument\":{\"updateTime\":\"2026-12-02T14:01:08."
        "671669Z\"}}]}");
    b.txn = "EQwAAAAAAAAA";
    buf_reset(&body);
    assert_int_equal(body_of(&b, &body), 0);
    assert_non_null(strstr(buf_str(&body), "}}],\"transaction\":\"EQwAAAAAAAAA\"}"));
    b.txn = NULL;
    snprintf(a.fence, sizeof(a.fence), "2026-12-02T14:01:09Z");
    assert_int_equal(has_create(&b), 0); /* an update of a known version and a deletion */
    buf_release(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_bounded),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_preconditions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
