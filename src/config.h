/*
 * config.h: the settings, read from the environment and validated once at start-up.
 *
 * A bad value stops start-up with a message naming the variable and what it accepts.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>

#include "d2f.h"

enum config_numbers { CONFIG_NUMBERS_AUTO, CONFIG_NUMBERS_STRING };
enum config_ttl { CONFIG_TTL_DELETE, CONFIG_TTL_IGNORE };
enum config_journal { CONFIG_JOURNAL_AUTO, CONFIG_JOURNAL_WAL, CONFIG_JOURNAL_DELETE };

/* One table's key schema. */
struct config_keys {
    const char *table;     /* DynamoDB table name */
    const char *partition; /* partition (hash) key attribute */
    const char *sort;      /* sort (range) key attribute, NULL when the table has none */
};

/* One table's collection. */
struct config_collection {
    const char *table;      /* DynamoDB table name */
    const char *collection; /* Firestore collection path (odd number of segments) */
};

struct config {
    const char *outbox;                    /* DDB2FS_OUTBOX, or the default for where we run */
    const char *project;                   /* GOOGLE_CLOUD_PROJECT, NULL when unset */
    const char *database;                  /* DDB2FS_DATABASE, default "(default)" */
    struct config_keys *keys;              /* DDB2FS_KEYS entries */
    size_t nkeys;                          /* entries in keys */
    struct config_collection *collections; /* DDB2FS_COLLECTIONS entries */
    size_t ncollections;                   /* entries in collections */
    const char *separator;                 /* DDB2FS_KEY_SEPARATOR, default "#" */
    enum config_numbers numbers;           /* DDB2FS_NUMBERS */
    enum config_ttl ttl;                   /* DDB2FS_TTL_DELETES */
    enum config_journal journal;           /* DDB2FS_JOURNAL */
    char *storage;                         /* owns the strings above */
};

/* Reads every setting through get (getenv, or a table in tests) into cfg. On error cfg is
 * released and err names the variable. */
int config_load(struct config *cfg, const char *(*get)(const char *name),
                struct d2f_err *err) D2F_WUR;

/* Frees what config_load allocated; accepts a zeroed or released cfg. */
void config_release(struct config *cfg);

/* The DDB2FS_KEYS entry for table, or NULL. Valid while cfg is. */
const struct config_keys *config_keys_for(const struct config *cfg, const char *table);

/* The DDB2FS_COLLECTIONS collection for table, or NULL. Valid while cfg is. */
const char *config_collection_for(const struct config *cfg, const char *table);

#endif
