/*
 * faults.c: a test-only fault injector linked into ddb2fs by -DDDB2FS_FAULTS=ON.
 *
 * DESIGN
 * Every allocation ddb2fs makes comes through one counter, and so does every SQLite statement
 * it runs; a setting picks the point that fails:
 *
 *   DDB2FS_FAULT_ALLOC=N   the Nth allocation returns NULL, and only that one (the ones after
 *                          it succeed, so that the code's way out of the failure, which
 *                          allocates too, is walked as well)
 *   DDB2FS_FAULT_STEP=N    the Nth call of sqlite3_step or sqlite3_exec returns SQLITE_IOERR
 *                          without running the statement
 *   DDB2FS_FAULT_REPORT=F  at exit, "allocs=K steps=M init=I" goes to the file F: the
 *                          points the run went through, so that a walk knows when N is past
 *                          the last one
 *
 * The allocations counted: ddb2fs's own malloc, calloc, realloc, strdup and sodium_malloc
 * (the link wraps them: -Wl,--wrap=...), what cJSON, libcurl and OpenSSL allocate (main.c
 * hands them malloc, or json_malloc which calls it), and SQLite's (its allocator is set here,
 * through SQLITE_CONFIG_MALLOC, before anything initialises SQLite). What the C library
 * allocates for itself (fopen's buffer) is not counted. sqlite3_step and sqlite3_exec are
 * wrapped the same way: ddb2fs calls them through the PLT.
 *
 * Not failed: the allocations of the process-wide set-up main() does before it reads anything,
 * inside CRYPTO_secure_malloc_init and curl_global_init_mem (which loads OpenSSL's
 * configuration): OpenSSL 3.0 asserts when its secure heap's bookkeeping cannot be allocated
 * (crypto/mem_sec.c, sh_init) and keeps blocks of a configuration it failed to load, and
 * neither is ddb2fs's to change. They are counted apart, as "init" in the report.
 *
 * A user's build never has this file: the option is off by default.
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

/* The linker's names for a wrapped function: __real_NAME is the function, __wrap_NAME takes
 * every call of it. */
#define WRAPPED(type, name, params)                                                                \
    type __real_##name params;                                                                     \
    type __wrap_##name params

typedef int (*exec_callback)(void *, int, char **, char **);

WRAPPED(void *, malloc, (size_t n));
WRAPPED(void *, calloc, (size_t n, size_t size));
WRAPPED(void *, realloc, (void *p, size_t n));
WRAPPED(char *, strdup, (const char *s));
WRAPPED(void *, sodium_malloc, (size_t n));
WRAPPED(int, sqlite3_step, (sqlite3_stmt * st));
WRAPPED(int, sqlite3_exec,
        (sqlite3 * db, const char *sql, exec_callback cb, void *arg, char **errmsg));
WRAPPED(int, CRYPTO_secure_malloc_init, (size_t size, size_t minsize));
WRAPPED(CURLcode, curl_global_init_mem,
        (long flags, curl_malloc_callback m, curl_free_callback f, curl_realloc_callback r,
         curl_strdup_callback s, curl_calloc_callback c));

/* libcurl may allocate on its resolver's thread: the counters are atomic */
static atomic_ulong allocs, steps, init;
static atomic_int in_init; /* inside the libraries' set-up: allocations are counted apart */
static unsigned long fail_alloc, fail_step; /* 0: none; set before main, read only after */
static const char *report;

/* 1 when this allocation is the one to fail. */
static int alloc_fails(void)
{
    unsigned long k;

    if (atomic_load(&in_init)) {
        atomic_fetch_add(&init, 1);
        return 0;
    }
    k = atomic_fetch_add(&allocs, 1) + 1;

    return fail_alloc && k == fail_alloc;
}

static int step_fails(void)
{
    unsigned long k = atomic_fetch_add(&steps, 1) + 1;

    return fail_step && k == fail_step;
}

void *__wrap_malloc(size_t n)
{
    return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return alloc_fails() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return alloc_fails() ? NULL : __real_strdup(s);
}

void *__wrap_sodium_malloc(size_t n)
{
    return alloc_fails() ? NULL : __real_sodium_malloc(n);
}

int __wrap_sqlite3_step(sqlite3_stmt *st)
{
    return step_fails() ? SQLITE_IOERR : __real_sqlite3_step(st);
}

int __wrap_sqlite3_exec(sqlite3 *db, const char *sql, exec_callback cb, void *arg, char **errmsg)
{
    if (!step_fails())
        return __real_sqlite3_exec(db, sql, cb, arg, errmsg);
    if (errmsg)
        *errmsg = sqlite3_mprintf("disk I/O error (injected)");
    return SQLITE_IOERR;
}

int __wrap_CRYPTO_secure_malloc_init(size_t size, size_t minsize)
{
    int rc;

    atomic_fetch_add(&in_init, 1);
    rc = __real_CRYPTO_secure_malloc_init(size, minsize);
    atomic_fetch_sub(&in_init, 1);
    return rc;
}

CURLcode __wrap_curl_global_init_mem(long flags, curl_malloc_callback m, curl_free_callback f,
                                     curl_realloc_callback r, curl_strdup_callback s,
                                     curl_calloc_callback c)
{
    CURLcode rc;

    atomic_fetch_add(&in_init, 1);
    rc = __real_curl_global_init_mem(flags, m, f, r, s, c);
    atomic_fetch_sub(&in_init, 1);
    return rc;
}

/* SQLite's allocator: the C library's, each block counted as an allocation of ddb2fs's. */
static void *sq_malloc(int n)
{
    return alloc_fails() ? NULL : __real_malloc((size_t)n);
}

static void sq_free(void *p)
{
    free(p);
}

static void *sq_realloc(void *p, int n)
{
    return alloc_fails() ? NULL : __real_realloc(p, (size_t)n);
}

static int sq_size(void *p)
{
    return p ? (int)malloc_usable_size(p) : 0;
}

static int sq_roundup(int n)
{
    return (n + 7) & ~7;
}

static int sq_init(void *arg)
{
    (void)arg;
    return SQLITE_OK;
}

static void sq_shutdown(void *arg)
{
    (void)arg;
}

static unsigned long setting(const char *name)
{
    const char *v = getenv(name);

    return v ? strtoul(v, NULL, 10) : 0;
}

static void write_report(void)
{
    char line[96];
    int fd, n;

    if (!report)
        return;
    /* no stdio: nothing allocates while the process ends */
    n = snprintf(line, sizeof(line), "allocs=%lu steps=%lu init=%lu\n", atomic_load(&allocs),
                 atomic_load(&steps), atomic_load(&init));
    fd = open(report, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) != n)
            fputs("faults: cannot write DDB2FS_FAULT_REPORT\n", stderr);
        close(fd);
    }
}

__attribute__((constructor)) static void faults_setup(void)
{
    static sqlite3_mem_methods methods = {sq_malloc,  sq_free, sq_realloc,  sq_size,
                                          sq_roundup, sq_init, sq_shutdown, NULL};

    fail_alloc = setting("DDB2FS_FAULT_ALLOC");
    fail_step = setting("DDB2FS_FAULT_STEP");
    report = getenv("DDB2FS_FAULT_REPORT");
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) != SQLITE_OK) {
        fputs("faults: SQLite was initialised before the fault injector could set its "
              "allocator\n",
              stderr);
        abort();
    }
    atexit(write_report);
}
