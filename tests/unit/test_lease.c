/* Unit tests for lease.c: holders' names, and which holders are known dead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/lease.c"

/* This process's "boot_id/pidns", read here from /proc as the kernel documents it. */
static void this_space(char *out, size_t cap)
{
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);

    assert_non_null(f);
    assert_non_null(fgets(boot, sizeof(boot), f));
    fclose(f);
    boot[strcspn(boot, "\n")] = '\0';
    assert_true(n > 0 && strlen(boot) == 36);
    ns[n] = '\0';
    assert_true(strncmp(ns, "pid:[", 5) == 0);
    snprintf(out, cap, "%s/%s", boot, ns);
}

static void test_stale_lease(void **state)
{
    char host[256] = "host", holder[400], space[160], owner[400];

    (void)state;
    gethostname(host, sizeof(host) - 1);
    this_space(space, sizeof(space));
    lease_owner_name(owner, sizeof(owner));
    lease_owner_name(holder, sizeof(holder));
    assert_string_equal(owner, holder); /* one token per process */
    snprintf(holder, sizeof(holder), "%s %ld feed %s", host, (long)getpid(), space);
    assert_int_equal(lease_holder_gone(holder),
                     1); /* this pid, another token: the holder is gone */
    snprintf(holder, sizeof(holder), "%s 1 feed %s", host, space);
    assert_int_equal(lease_holder_gone(holder), 0); /* init runs */
    snprintf(holder, sizeof(holder), "%s 99999999 feed %s", host, space);
    assert_int_equal(lease_holder_gone(holder), 1); /* no such process here */
    /* the same host name and pid, another PID namespace or another boot: nothing is known */
    snprintf(holder, sizeof(holder), "%s 99999999 feed %s", host,
             "00000000-0000-0000-0000-000000000000/pid:[4026531836]");
    assert_int_equal(lease_holder_gone(holder), 0);
    snprintf(holder, sizeof(holder), "%s 99999999 feed %s0", host, space);
    assert_int_equal(lease_holder_gone(holder), 0);
    snprintf(holder, sizeof(holder), "%s 99999999 feed -", host);
    assert_int_equal(lease_holder_gone(holder), 0);
    /* the format of earlier versions: host:pid:random */
    snprintf(holder, sizeof(holder), "%s:99999999:abcd", host);
    assert_int_equal(lease_holder_gone(holder), 0);
    assert_int_equal(lease_holder_gone("garbage"), 0);
}

/* A name is "host pid token space": the token 32 hex digits, the space this process's. */
static void test_owner_name(void **state)
{
    char owner[400], host[256] = "host", name[256], token[64], space[160], mine[160];
    long pid;

    (void)state;
    gethostname(host, sizeof(host) - 1);
    this_space(mine, sizeof(mine));
    lease_owner_name(owner, sizeof(owner));
    assert_int_equal(sscanf(owner, "%255s %ld %63s %159s", name, &pid, token, space), 4);
    assert_string_equal(name, host);
    assert_int_equal(pid, (long)getpid());
    assert_int_equal(strlen(token), 32);
    assert_int_equal(strspn(token, "0123456789abcdef"), 32);
    assert_string_equal(space, mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_lease),
        cmocka_unit_test(test_owner_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
