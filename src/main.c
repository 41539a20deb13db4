/* main.c: process-wide initialisation, then the command line. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "cli.h"
#include "json.h"
#include "log.h"
#ifdef DDB2FS_LATENCY_VFS
#include "latency_vfs.h"
#endif

/* libcurl's request buffers, OpenSSL's decoding buffers and cJSON's strings may hold a token,
 * a JWT or key text: every block they free is wiped first, whole (what the allocator gave). */
static void wiped_free(void *p)
{
    if (!p)
        return;
    sodium_memzero(p, malloc_usable_size(p));
    free(p);
}

static void *wiped_realloc(void *p, size_t n)
{
    size_t old;
    void *q;

    if (!p)
        return malloc(n);
    old = malloc_usable_size(p);
    if (!(q = malloc(n ? n : 1)))
        return NULL;
    memcpy(q, p, old < n ? old : n);
    wiped_free(p);
    return q;
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return wiped_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    wiped_free(p);
}

/* No core file and no same-user ptrace or /proc/PID/mem: the process holds the key.
 * DDB2FS_TEST_CORE_DUMPS=allow (tests only: a test dumps a running relay and searches the dump
 * for key material) leaves both as they are. */
static void no_dumps(void)
{
    const char *test = getenv("DDB2FS_TEST_CORE_DUMPS");
    struct rlimit none = {0, 0};

    if (test && strcmp(test, "allow") == 0)
        return;
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
    cJSON_Hooks hooks = {json_malloc, wiped_free};
    int rc;

    no_dumps();
    /* before anything allocates through these libraries */
    CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
    cJSON_InitHooks(&hooks);
#ifdef DDB2FS_LATENCY_VFS
    /* a test build: the outbox's file system answers like EFS when asked */
    if (latency_vfs_register(getenv("DDB2FS_TEST_LATENCY")) < 0) {
        fputs("ddb2fs: DDB2FS_TEST_LATENCY: use 'efs' or name=microseconds,… (open, delete, "
              "access, lock, unlock, check, write, read, sync)\n",
              stderr);
        return 2;
    }
#endif
    if (sodium_init() < 0) {
        fputs("ddb2fs: cannot initialise libsodium\n", stderr);
        return 1;
    }
    /* OpenSSL decodes the service-account key in its secure heap (locked pages, left out of
     * core dumps) when it has one; without it (no mlock allowance) it uses plain memory, wiped */
    CRYPTO_secure_malloc_init(64 * 1024, 32);
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wiped_free, wiped_realloc, strdup,
                             calloc) != CURLE_OK) {
        fputs("ddb2fs: cannot initialise libcurl\n", stderr);
        return 1;
    }
    log_setup(stderr, LOG_INFO);
    if (getenv("DDB2FS_TEST_CORE_DUMPS"))
        log_write(LOG_WARN,
                  "DDB2FS_TEST_CORE_DUMPS is set: a test setting; core dumps stay as the system "
                  "allows",
                  NULL);
    rc = cli_main(argc, argv);
    curl_global_cleanup();
    return rc;
}
