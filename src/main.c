/* main.c: process-wide initialisation, then the command line. */
#include <stdio.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "cli.h"
#include "log.h"
#ifdef DDB2FS_LATENCY_VFS
#include <stdlib.h>

#include "latency_vfs.h"
#endif

int main(int argc, char **argv)
{
    int rc;

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
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("ddb2fs: cannot initialise libcurl\n", stderr);
        return 1;
    }
    /* OpenSSL decodes the service-account key's PEM in its secure heap (locked, guarded
     * pages) when it has one; without it (no mlock allowance) it uses plain memory, wiped. */
    CRYPTO_secure_malloc_init(64 * 1024, 32);
    log_setup(stderr, LOG_INFO);
    rc = cli_main(argc, argv);
    curl_global_cleanup();
    return rc;
}
