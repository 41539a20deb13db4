/* Unit tests for buf.c: growth, every kind of append, the cap, allocation failures, and the
 * wiping of memory given back (a buffer may have held a token or key text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

/* buf.c's allocations go through these: a test can make the next one fail, and see each block
 * as it is given back. */
static int fail_next;         /* 1: the next malloc or realloc fails */
static const char *watched;   /* a block whose bytes are checked when it is freed */
static size_t watched_len;    /* how many of its bytes must then be zero */
static int watched_was_wiped; /* -1: not freed yet; else 1 when they were all zero */

static void *test_buf_malloc(size_t n)
{
    if (fail_next) {
        fail_next = 0;
        return NULL;
    }
    return malloc(n);
}

static void *test_buf_realloc(void *p, size_t n)
{
    if (fail_next) {
        fail_next = 0;
        return NULL;
    }
    return realloc(p, n);
}

static void test_buf_free(void *p)
{
    if (p && p == watched) {
        watched_was_wiped = 1;
        for (size_t i = 0; i < watched_len; i++)
            if (watched[i] != 0)
                watched_was_wiped = 0;
        watched = NULL;
    }
    free(p);
}

#define malloc test_buf_malloc
#define realloc test_buf_realloc
#define free test_buf_free
#include "../../src/buf.c"
#undef malloc
#undef realloc
#undef free

static void watch(const char *p, size_t n)
{
    watched = p;
    watched_len = n;
    watched_was_wiped = -1;
}

/* Bytes added one at a time across several growths are all there, in order, NUL-terminated. */
static void test_growth_keeps_every_byte(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 100000);
    assert_null(b.data);
    assert_string_equal(buf_str(&b), "");
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(buf_addc(&b, (char)('a' + i % 26)), 0);
    assert_int_equal(b.len, 5000);
    assert_true(b.cap > b.len);
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    assert_int_equal(b.data[5000], '\0');
    buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* a released buffer takes appends again, under the same cap */
    assert_int_equal(buf_adds(&b, "again"), 0);
    assert_string_equal(buf_str(&b), "again");
    buf_release(&b);
    buf_release(&b); /* twice is harmless */
}

/* Each kind of append, one after the other, gives exactly the bytes written out by hand. */
static void test_appends_of_every_kind(void **state)
{
    static const char expected[] = "key=\0v\0|x|n=-42 s='ab' hex=ff|0007|%";
    struct buf b;
    char long_text[300];

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(buf_adds(&b, "key="), 0);
    assert_int_equal(buf_add(&b, "\0v\0", 3), 0);
    assert_int_equal(buf_addc(&b, '|'), 0);
    assert_int_equal(buf_add(&b, "xyz", 1), 0);
    assert_int_equal(buf_addc(&b, '|'), 0);
    assert_int_equal(buf_addf(&b, "n=%d s='%s' hex=%x|%04u|%%", -42, "ab", 255u, 7u), 0);
    assert_int_equal(b.len, sizeof(expected) - 1);
    assert_memory_equal(b.data, expected, sizeof(expected));
    /* nothing added by an empty append */
    assert_int_equal(buf_add(&b, NULL, 0), 0);
    assert_int_equal(buf_adds(&b, ""), 0);
    assert_int_equal(buf_addf(&b, "%s", ""), 0);
    assert_int_equal(b.len, sizeof(expected) - 1);

    /* a formatted append that needs the buffer to grow several times at once */
    buf_reset(&b);
    assert_int_equal(buf_addf(&b, "[%0298d]", 5), 0);
    memset(long_text, '0', sizeof(long_text));
    long_text[0] = '[';
    long_text[298] = '5';
    long_text[299] = ']';
    assert_int_equal(b.len, 300);
    assert_memory_equal(b.data, long_text, 300);
    assert_int_equal(b.data[300], '\0');
    buf_release(&b);
}

/* NUL bytes are data: len counts them, buf_str stops at the first, detach hands all of them. */
static void test_nul_bytes_kept(void **state)
{
    struct buf b;
    size_t n = 0;
    char *p;

    (void)state;
    buf_init(&b, 64);
    assert_int_equal(buf_add(&b, "a\0b", 3), 0);
    assert_int_equal(buf_addc(&b, '\0'), 0);
    assert_int_equal(buf_addf(&b, "%c%s", 0, "c"), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "a\0b\0\0c", 7);
    assert_string_equal(buf_str(&b), "a");
    p = buf_detach(&b, &n);
    assert_int_equal(n, 6);
    assert_memory_equal(p, "a\0b\0\0c", 7);
    free(p);
    buf_release(&b);
}

/* The cap is on len: up to max bytes fit, one more is D2F_ELIMIT with nothing changed, for
 * every kind of append; the buffer takes what still fits afterwards. */
static void test_cap(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_adds(&b, "hello"), 0);
    assert_int_equal(buf_add(&b, "wxyz", 4), D2F_ELIMIT);
    assert_int_equal(buf_adds(&b, "wxyz"), D2F_ELIMIT);
    assert_int_equal(buf_addf(&b, "%d", 1234), D2F_ELIMIT);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "hello");
    assert_int_equal(buf_adds(&b, "abc"), 0);
    assert_string_equal(b.data, "helloabc");
    assert_int_equal(buf_addc(&b, '!'), D2F_ELIMIT);
    assert_int_equal(buf_add(&b, "", 0), 0);
    assert_string_equal(b.data, "helloabc");
    /* a reset gives the room back */
    buf_reset(&b);
    assert_int_equal(buf_addf(&b, "%08d", 1), 0);
    assert_string_equal(b.data, "00000001");
    buf_release(&b);

    /* a cap of 0 takes nothing but empty appends */
    buf_init(&b, 0);
    assert_int_equal(buf_addc(&b, 'x'), D2F_ELIMIT);
    assert_int_equal(buf_adds(&b, ""), 0);
    assert_string_equal(buf_str(&b), "");
    buf_release(&b);
}

/* A failed allocation is D2F_ENOMEM and leaves the bytes as they were, on the copying path of
 * small buffers and the realloc path of large ones; the next append works. */
static void test_allocation_failure_leaves_it_usable(void **state)
{
    struct buf b;
    char *big = malloc(WIPE_COPY_MAX);

    (void)state;
    assert_non_null(big);
    buf_init(&b, 4 * (size_t)WIPE_COPY_MAX);
    fail_next = 1;
    assert_int_equal(buf_adds(&b, "first"), D2F_ENOMEM);
    assert_null(b.data);
    assert_int_equal(buf_adds(&b, "first"), 0);
    fail_next = 1;
    assert_int_equal(buf_addf(&b, "%0100d", 0), D2F_ENOMEM);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "first");
    assert_int_equal(buf_addf(&b, "-%d", 2), 0);
    assert_string_equal(b.data, "first-2");

    /* past WIPE_COPY_MAX the buffer grows by realloc: its failure keeps the old block */
    memset(big, 'q', WIPE_COPY_MAX);
    assert_int_equal(buf_add(&b, big, WIPE_COPY_MAX), 0);
    assert_true(b.cap >= WIPE_COPY_MAX);
    fail_next = 1;
    assert_int_equal(buf_add(&b, big, WIPE_COPY_MAX), D2F_ENOMEM);
    assert_int_equal(b.len, 7 + (size_t)WIPE_COPY_MAX);
    assert_memory_equal(b.data, "first-2qqq", 10);
    assert_int_equal(b.data[b.len - 1], 'q');
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(buf_add(&b, big, WIPE_COPY_MAX), 0);
    assert_int_equal(b.len, 7 + 2 * (size_t)WIPE_COPY_MAX);
    assert_int_equal(b.data[b.len - 1], 'q');
    buf_release(&b);

    /* detach with nothing allocated allocates "": its failure is NULL, the buffer stays empty */
    buf_init(&b, 16);
    fail_next = 1;
    assert_null(buf_detach(&b, NULL));
    assert_null(b.data);
    assert_int_equal(buf_adds(&b, "ok"), 0);
    assert_string_equal(b.data, "ok");
    buf_release(&b);
    free(big);
}

/* Memory given back holds none of what the buffer held: at release, and when growing moves
 * the bytes, including text a reset left behind the current end. */
static void test_wiped_when_given_back(void **state)
{
    static const char secret[] = "ya29.a-token-that-must-not-linger";
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(buf_adds(&b, secret), 0);
    watch(b.data, sizeof(secret));
    buf_release(&b);
    assert_int_equal(watched_was_wiped, 1);

    /* a reset, then a short text: the secret's tail is still in the block when it grows */
    assert_int_equal(buf_adds(&b, secret), 0);
    buf_reset(&b);
    assert_int_equal(buf_adds(&b, "ab"), 0);
    watch(b.data, sizeof(secret));
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(buf_addc(&b, 'z'), 0);
    assert_int_equal(watched_was_wiped, 1);
    assert_memory_equal(b.data, "abzzz", 5);
    assert_int_equal(b.len, 102);
    buf_release(&b);
}

/* reset keeps the memory, detach hands it over and leaves an empty buffer that still works. */
static void test_reset_and_detach(void **state)
{
    struct buf b;
    const char *before;
    size_t n = 99;
    char *p;

    (void)state;
    buf_init(&b, 256);
    assert_int_equal(buf_adds(&b, "some text"), 0);
    before = b.data;
    buf_reset(&b);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_adds(&b, "kept"), 0);
    assert_ptr_equal(b.data, before);

    p = buf_detach(&b, &n);
    assert_ptr_equal(p, before);
    assert_int_equal(n, 4);
    assert_string_equal(p, "kept");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    free(p);

    /* an empty buffer detaches as "", never NULL */
    p = buf_detach(&b, &n);
    assert_non_null(p);
    assert_int_equal(n, 0);
    assert_string_equal(p, "");
    free(p);
    assert_int_equal(buf_adds(&b, "after"), 0);
    assert_string_equal(buf_str(&b), "after");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth_keeps_every_byte),
        cmocka_unit_test(test_appends_of_every_kind),
        cmocka_unit_test(test_nul_bytes_kept),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_allocation_failure_leaves_it_usable),
        cmocka_unit_test(test_wiped_when_given_back),
        cmocka_unit_test(test_reset_and_detach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
