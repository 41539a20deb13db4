/* test_env.h: a made-up environment for config_load in unit tests. */
#ifndef TEST_ENV_H
#define TEST_ENV_H

#include <string.h>

/* The environment of a test: NULL-terminated name, value pairs. */
static const char *const *test_env;

/* config_load's getenv over test_env. */
static const char *get(const char *name)
{
    for (const char *const *e = test_env; e && e[0]; e += 2)
        if (strcmp(e[0], name) == 0)
            return e[1];
    return NULL;
}

#endif
