/* main.c: process-wide initialisation, then the command line. */
#include <stdio.h>

#include <curl/curl.h>
#include <sodium.h>

#include "cli.h"
#include "log.h"

int main(int argc, char **argv)
{
    int rc;

    if (sodium_init() < 0) {
        fputs("ddb2fs: cannot initialise libsodium\n", stderr);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("ddb2fs: cannot initialise libcurl\n", stderr);
        return 1;
    }
    log_setup(stderr, LOG_INFO);
    rc = cli_main(argc, argv);
    curl_global_cleanup();
    return rc;
}
