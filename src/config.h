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
enum config_reserved { CONFIG_RESERVED_DEAD, CONFIG_RESERVED_ESCAPE };
enum config_journal { CONFIG_JOURNAL_AUTO, CONFIG_JOURNAL_WAL, CONFIG_JOURNAL_DELETE };
enum config_token { CONFIG_TOKEN_OAUTH, CONFIG_TOKEN_SELF_SIGNED };

/* DDB2FS_PARTITIONS at most. */
#define CONFIG_PARTITIONS_MAX 64

/* DDB2FS_RETENTION's default: a week. */
#define CONFIG_RETENTION_DEFAULT (7L * 86400)

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
    enum config_reserved reserved;         /* DDB2FS_RESERVED_NAMES */
    enum config_journal journal;           /* DDB2FS_JOURNAL */
    const char *emulator; /* FIRESTORE_EMULATOR_HOST (host:port), NULL when unset */
    const char *endpoint; /* DDB2FS_FIRESTORE_ENDPOINT, default https://firestore.googleapis.com */
    const char *credentials; /* GOOGLE_APPLICATION_CREDENTIALS, NULL when unset */
    enum config_token token; /* DDB2FS_TOKEN: oauth or self-signed */
    long commit_writes;      /* DDB2FS_COMMIT_WRITES: writes per commit, default 500 */
    long commit_bytes;       /* DDB2FS_COMMIT_BYTES: request bytes per commit, default 4 MiB */
    long concurrency;        /* DDB2FS_CONCURRENCY: commits in flight at once, default 8 */
    int ramp;                /* DDB2FS_RAMP: 1 to follow Firestore's 500/50/5 rule (default) */
    long drain_seconds;      /* DDB2FS_DRAIN_SECONDS: time budget of 'ddb2fs drain', default 300 */
    long retention_s;        /* DDB2FS_RETENTION: committed rows kept this long (s); 0: forever */
    long partitions; /* DDB2FS_PARTITIONS: outbox files, 1 to 64; 0 when unset (the outbox's own) */
    long backfill_settle_s;        /* DDB2FS_BACKFILL_SETTLE: a snapshot waits for the stream (s) */
    long backfill_margin_s;        /* DDB2FS_BACKFILL_MARGIN: creation-time rounding and skew (s) */
    const char *aws_region;        /* AWS_REGION */
    const char *aws_key_id;        /* AWS_ACCESS_KEY_ID */
    const char *aws_secret;        /* AWS_SECRET_ACCESS_KEY; never logged */
    const char *aws_token;         /* AWS_SESSION_TOKEN; never logged */
    const char *dynamodb_endpoint; /* AWS_ENDPOINT_URL_DYNAMODB, else AWS_ENDPOINT_URL */
    const char *secrets_endpoint;  /* AWS_ENDPOINT_URL_SECRETS_MANAGER, else AWS_ENDPOINT_URL */
    const char *key_sealed;        /* DDB2FS_KEY_SEALED: the sealed key file, NULL when unset */
    const char *key_secret;        /* DDB2FS_KEY_SECRET: its data key's secret id, or NULL */
    char *storage;                 /* owns the strings above */
};

/* Reads every setting through get (getenv, or a table in tests) into cfg. On error cfg is
 * released and err names the variable. */
int config_load(struct config *cfg, const char *(*get)(const char *name),
                struct d2f_err *err) D2F_WUR;

/* The settings in force, as name and value texts (no secrets), for the outbox's settings
 * table. */
#define CONFIG_DESCRIBED 20
struct config_description {
    const char *pairs[2 * CONFIG_DESCRIBED]; /* name, value (NULL when unset), … */
    size_t n;                                /* pairs */
    char text[4096];                         /* storage for values built here */
};
void config_describe(const struct config *cfg, struct config_description *d);

/* Frees what config_load allocated; accepts a zeroed or released cfg. */
void config_release(struct config *cfg);

/* The DDB2FS_KEYS entry for table, or NULL. Valid while cfg is. */
const struct config_keys *config_keys_for(const struct config *cfg, const char *table);

/* The DDB2FS_COLLECTIONS collection for table, or NULL. Valid while cfg is. */
const char *config_collection_for(const struct config *cfg, const char *table);

#endif
