/* main.c: process-wide initialisation, then the command line. */
#include <stdio.h>

#include <sodium.h>

#include "cli.h"
#include "log.h"

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fputs("ddb2fs: cannot initialise libsodium\n", stderr);
        return 1;
    }
    log_setup(stderr, LOG_INFO);
    return cli_main(argc, argv);
}
