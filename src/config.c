/* config.c: settings from the environment, validated. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docid.h"
#include "http.h"

#define DEFAULT_OUTBOX_LAMBDA "/mnt/outbox/ddb2fs.db"
#define DEFAULT_OUTBOX_LOCAL "./ddb2fs.db"
#define DEFAULT_ENDPOINT "https://firestore.googleapis.com"

/* Storage for every string we keep: the variables' values, cut in place. */
struct arena {
    char *data;
    size_t len, cap;
};

static char *keep(struct arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p;

    if (a->len + n > a->cap)
        return NULL;
    p = a->data + a->len;
    memcpy(p, s, n);
    a->len += n;
    return p;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

static int table_name_ok(const char *t)
{
    return d2f_table_name_ok(t, strlen(t));
}

static int key_name_ok(const char *k)
{
    size_t n = strlen(k);

    return n >= 1 && n <= 255 && d2f_utf8_valid(k, n);
}

static int collection_ok(const char *path, const char **why)
{
    size_t segments = 0;
    const char *p = path;

    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        *why = docid_segment_problem(p, n);
        if (*why)
            return 0;
        segments++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (segments % 2 == 0) {
        *why = "has an even number of segments; a collection path is collection[/doc/collection]";
        return 0;
    }
    return 1;
}

/* Counts entries in a ;-separated list, ignoring empty ones. */
static size_t count_entries(const char *s)
{
    size_t n = 1;

    for (; *s; s++)
        n += *s == ';';
    return n;
}

/* Walks a "Table=value;…" list in place, skipping empty entries. Returns 1 with the next
 * entry's trimmed table and value, 0 at the end, or a D2F_ECONFIG error naming the variable,
 * the entry and the form it accepts. */
static int next_entry(char *s, char **save, size_t *index, const char *var, const char *form,
                      char **table, char **value, struct d2f_err *err)
{
    for (char *e = strtok_r(*save ? NULL : s, ";", save); e; e = strtok_r(NULL, ";", save)) {
        char *eq = strchr(e, '=');

        ++*index;
        e = trim(e);
        if (!*e)
            continue;
        if (!eq)
            return d2f_errf(err, D2F_ECONFIG, "%s: entry %zu has no '=': expected %s", var, *index,
                            form);
        *eq = '\0';
        *table = trim(e);
        *value = trim(eq + 1);
        if (!table_name_ok(*table))
            return d2f_errf(err, D2F_ECONFIG,
                            "%s: entry %zu: '%.64s' is not a DynamoDB table name "
                            "(3 to 255 of a-z A-Z 0-9 _ . -)",
                            var, *index, *table);
        return 1;
    }
    return 0;
}

static int parse_keys(struct config *cfg, char *s, struct d2f_err *err)
{
    const char *form = "Table=partitionKey[,sortKey];…";
    size_t index = 0;
    char *save = NULL, *table, *value;
    int rc;

    cfg->keys = calloc(count_entries(s), sizeof(*cfg->keys));
    if (!cfg->keys)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    while ((rc = next_entry(s, &save, &index, "DDB2FS_KEYS", form, &table, &value, err)) == 1) {
        struct config_keys *k = &cfg->keys[cfg->nkeys];
        char *comma = strchr(value, ',');

        k->table = table;
        if (comma) {
            *comma = '\0';
            k->sort = trim(comma + 1);
        }
        k->partition = trim(value);
        if (!key_name_ok(k->partition) || (k->sort && !key_name_ok(k->sort)) ||
            (k->sort && strchr(k->sort, ',')))
            return d2f_errf(err, D2F_ECONFIG,
                            "DDB2FS_KEYS: entry %zu (%s): expected one or two key attribute "
                            "names of 1 to 255 bytes, as %s",
                            index, k->table, form);
        if (k->sort && strcmp(k->sort, k->partition) == 0)
            return d2f_errf(err, D2F_ECONFIG,
                            "DDB2FS_KEYS: entry %zu (%s): the partition and sort key are the same",
                            index, k->table);
        if (config_keys_for(cfg, k->table))
            return d2f_errf(err, D2F_ECONFIG, "DDB2FS_KEYS: table '%s' is named twice", k->table);
        cfg->nkeys++;
    }
    return rc;
}

static int parse_collections(struct config *cfg, char *s, struct d2f_err *err)
{
    size_t index = 0;
    char *save = NULL, *table, *value;
    const char *why;
    int rc;

    cfg->collections = calloc(count_entries(s), sizeof(*cfg->collections));
    if (!cfg->collections)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    while ((rc = next_entry(s, &save, &index, "DDB2FS_COLLECTIONS", "Table=collection;…", &table,
                            &value, err)) == 1) {
        struct config_collection *c = &cfg->collections[cfg->ncollections];

        c->table = table;
        c->collection = value;
        if (!collection_ok(c->collection, &why))
            return d2f_errf(err, D2F_ECONFIG,
                            "DDB2FS_COLLECTIONS: entry %zu (%s): the collection '%.64s' %s", index,
                            c->table, c->collection, why);
        if (config_collection_for(cfg, c->table))
            return d2f_errf(err, D2F_ECONFIG, "DDB2FS_COLLECTIONS: table '%s' is named twice",
                            c->table);
        cfg->ncollections++;
    }
    return rc;
}

/* Matches value against a list of words; returns its index or -1. */
static int choose(const char *value, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(value, words[i]) == 0)
            return i;
    return -1;
}

static int parse_choice(const char *(*get)(const char *), const char *name,
                        const char *const *words, const char *accepts, int *out,
                        struct d2f_err *err)
{
    const char *v = get(name);
    int i;

    if (!v || !*v)
        return 0;
    i = choose(v, words);
    if (i < 0)
        return d2f_errf(err, D2F_ECONFIG, "%s: '%.64s' is not accepted; use %s", name, v, accepts);
    *out = i;
    return 0;
}

static int database_ok(const char *d)
{
    size_t n = strlen(d);

    if (strcmp(d, "(default)") == 0)
        return 1;
    if (n < 4 || n > 63 || !(d[0] >= 'a' && d[0] <= 'z') || d[n - 1] == '-')
        return 0;
    for (; *d; d++)
        if (!((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') || *d == '-'))
            return 0;
    return 1;
}

/* A whole number in [min, max] from variable name, or dflt when unset. */
static int parse_long(const char *(*get)(const char *), const char *name, long min, long max,
                      long dflt, long *out, struct d2f_err *err)
{
    const char *v = get(name);
    char *end;
    long n;

    *out = dflt;
    if (!v || !*v)
        return 0;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max)
        return d2f_errf(err, D2F_ECONFIG,
                        "%s: '%.32s' is not accepted; use a whole number from "
                        "%ld to %ld",
                        name, v, min, max);
    *out = n;
    return 0;
}

/* DDB2FS_RETENTION: "0" (keep forever) or N followed by d, h, m or s, at least a day. */
static int parse_retention(const char *(*get)(const char *), long *out, struct d2f_err *err)
{
    const char *v = get("DDB2FS_RETENTION");
    char *end;
    long n, unit;

    *out = CONFIG_RETENTION_DEFAULT;
    if (!v || !*v)
        return 0;
    errno = 0;
    n = strtol(v, &end, 10);
    unit = strcmp(end, "d") == 0   ? 86400
           : strcmp(end, "h") == 0 ? 3600
           : strcmp(end, "m") == 0 ? 60
           : strcmp(end, "s") == 0 ? 1
           : !*end && n == 0       ? 1
                                   : 0;
    if (errno || end == v || n < 0 || !unit || n > 3650L * 86400 / unit || (n && n * unit < 86400))
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_RETENTION: '%.32s' is not accepted; use 0 (keep forever) or a "
                        "duration of at least a day such as 7d, 36h (a stream keeps records for "
                        "24 hours, and a retried batch must still find its records)",
                        v);
    *out = n * unit;
    return 0;
}

/* An endpoint that receives credentials: https://, or http:// to a loopback host (tests). */
static int url_ok(const char *u)
{
    return (strncmp(u, "https://", 8) == 0 && u[8]) ||
           (strncmp(u, "http://", 7) == 0 && u[7] && http_url_loopback(u));
}

/* DDB2FS_TABLES: names and ARNs separated by ',' (or ';'), each a table name, a table ARN or a
 * stream ARN. */
static int parse_tables(struct config *cfg, char *s, struct d2f_err *err)
{
    size_t index = 0;
    char *save = NULL;

    cfg->tables = calloc(strlen(s) / 2 + 1, sizeof(*cfg->tables));
    if (!cfg->tables)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    for (char *e = strtok_r(s, ",;", &save); e; e = strtok_r(NULL, ",;", &save)) {
        ++index;
        e = trim(e);
        if (!*e)
            continue;
        if (strncmp(e, "arn:", 4) == 0
                ? !strstr(e, ":dynamodb:") || !strstr(e, ":table/") || strpbrk(e, " \t")
                : !table_name_ok(e))
            return d2f_errf(err, D2F_ECONFIG,
                            "DDB2FS_TABLES: entry %zu: '%.64s' is neither a DynamoDB table name "
                            "(3 to 255 of a-z A-Z 0-9 _ . -) nor a table or stream ARN "
                            "(arn:aws:dynamodb:REGION:ACCOUNT:table/NAME[/stream/LABEL])",
                            index, e);
        cfg->tables[cfg->ntables++] = e;
    }
    if (!cfg->ntables)
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_TABLES: names no table; list the table names or stream ARNs the "
                        "relay serves, separated by ','");
    return 0;
}

enum var {
    V_OUTBOX,
    V_PROJECT,
    V_DATABASE,
    V_KEYS,
    V_COLLECTIONS,
    V_SEPARATOR,
    V_RUNTIME_API,
    V_EMULATOR,
    V_ENDPOINT,
    V_CREDENTIALS,
    V_REGION,
    V_KEY_ID,
    V_SECRET,
    V_TOKEN,
    V_DDB_ENDPOINT,
    V_AWS_ENDPOINT,
    V_SM_ENDPOINT,
    V_KEY_SEALED,
    V_KEY_SECRET,
    V_TABLES,
    V_ALLOW_EMULATOR,
    V_COUNT
};

static int load(struct config *cfg, const char *(*get)(const char *), struct d2f_err *err)
{
    static const char *const numbers[] = {"auto", "string", NULL};
    static const char *const ttl[] = {"delete", "ignore", NULL};
    static const char *const reserved[] = {"dead", "escape", NULL};
    static const char *const journal[] = {"auto", "wal", "delete", NULL};
    static const char *const tokens[] = {"oauth", "self-signed", NULL};
    static const char *const onoff[] = {"off", "on", NULL};
    /* the variables read as plain strings, in the order of enum var */
    const char *names[] = {"DDB2FS_OUTBOX",
                           "GOOGLE_CLOUD_PROJECT",
                           "DDB2FS_DATABASE",
                           "DDB2FS_KEYS",
                           "DDB2FS_COLLECTIONS",
                           "DDB2FS_KEY_SEPARATOR",
                           "AWS_LAMBDA_RUNTIME_API",
                           "FIRESTORE_EMULATOR_HOST",
                           "DDB2FS_FIRESTORE_ENDPOINT",
                           "GOOGLE_APPLICATION_CREDENTIALS",
                           "AWS_REGION",
                           "AWS_ACCESS_KEY_ID",
                           "AWS_SECRET_ACCESS_KEY",
                           "AWS_SESSION_TOKEN",
                           "AWS_ENDPOINT_URL_DYNAMODB",
                           "AWS_ENDPOINT_URL",
                           "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                           "DDB2FS_KEY_SEALED",
                           "DDB2FS_KEY_SECRET",
                           "DDB2FS_TABLES",
                           "DDB2FS_ALLOW_EMULATOR"};
    const char *v[V_COUNT];
    char *k[V_COUNT];
    struct arena a = {0};
    int choice, rc;

    _Static_assert(sizeof(names) / sizeof(names[0]) == V_COUNT, "names follow enum var");
    for (size_t i = 0; i < V_COUNT; i++) {
        v[i] = get(names[i]);
        if (v[i] && !*v[i])
            v[i] = NULL;
        a.cap += v[i] ? strlen(v[i]) + 1 : 0;
    }
    a.cap += sizeof(DEFAULT_OUTBOX_LAMBDA) + sizeof("(default)") + sizeof("#") +
             sizeof(DEFAULT_ENDPOINT);
    a.data = cfg->storage = malloc(a.cap);
    if (!a.data)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    /* every variable set is kept once; the settings point into it (or at a kept default) */
    for (size_t i = 0; i < V_COUNT; i++)
        k[i] = v[i] ? keep(&a, v[i]) : NULL;

    cfg->outbox = k[V_OUTBOX]        ? k[V_OUTBOX]
                  : k[V_RUNTIME_API] ? keep(&a, DEFAULT_OUTBOX_LAMBDA)
                                     : keep(&a, DEFAULT_OUTBOX_LOCAL);
    cfg->project = k[V_PROJECT];
    cfg->database = k[V_DATABASE] ? k[V_DATABASE] : keep(&a, "(default)");
    cfg->separator = k[V_SEPARATOR] ? k[V_SEPARATOR] : keep(&a, "#");
    cfg->emulator = k[V_EMULATOR];
    cfg->endpoint = k[V_ENDPOINT] ? k[V_ENDPOINT] : keep(&a, DEFAULT_ENDPOINT);
    cfg->credentials = k[V_CREDENTIALS];
    cfg->aws_region = k[V_REGION];
    cfg->aws_key_id = k[V_KEY_ID];
    cfg->aws_secret = k[V_SECRET];
    cfg->aws_token = k[V_TOKEN];
    cfg->dynamodb_endpoint = k[V_DDB_ENDPOINT] ? k[V_DDB_ENDPOINT] : k[V_AWS_ENDPOINT];
    cfg->secrets_endpoint = k[V_SM_ENDPOINT] ? k[V_SM_ENDPOINT] : k[V_AWS_ENDPOINT];
    cfg->key_sealed = k[V_KEY_SEALED];
    cfg->key_secret = k[V_KEY_SECRET];
    if (cfg->aws_region && (strpbrk(cfg->aws_region, "/: ") || strlen(cfg->aws_region) > 32))
        return d2f_errf(err, D2F_ECONFIG, "AWS_REGION: '%.32s' is not a region", cfg->aws_region);
    if (cfg->dynamodb_endpoint && !url_ok(cfg->dynamodb_endpoint))
        return d2f_errf(err, D2F_ECONFIG,
                        "AWS_ENDPOINT_URL_DYNAMODB: '%.64s' is not an https:// URL (http:// only "
                        "to a loopback host)",
                        cfg->dynamodb_endpoint);
    if (cfg->secrets_endpoint && !url_ok(cfg->secrets_endpoint))
        return d2f_errf(err, D2F_ECONFIG,
                        "AWS_ENDPOINT_URL_SECRETS_MANAGER: '%.64s' is not an https:// URL "
                        "(http:// only to a loopback host): it receives credentials",
                        cfg->secrets_endpoint);
    if (cfg->key_sealed && !cfg->key_secret)
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_KEY_SECRET: not set; DDB2FS_KEY_SEALED needs the Secrets Manager "
                        "secret that holds its data key");
    if (cfg->key_secret && cfg->credentials)
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_APPLICATION_CREDENTIALS: set together with DDB2FS_KEY_SECRET; "
                        "set one way to the service-account key, not both");
    if (cfg->emulator && (!strchr(cfg->emulator, ':') || strpbrk(cfg->emulator, "/ ")))
        return d2f_errf(err, D2F_ECONFIG, "FIRESTORE_EMULATOR_HOST: '%.64s' is not host:port",
                        cfg->emulator);
    if (k[V_ALLOW_EMULATOR] && strcmp(k[V_ALLOW_EMULATOR], "1") != 0)
        return d2f_errf(err, D2F_ECONFIG, "DDB2FS_ALLOW_EMULATOR: '%.16s' is not accepted; use 1",
                        k[V_ALLOW_EMULATOR]);
    cfg->allow_emulator = k[V_ALLOW_EMULATOR] != NULL;
    if (cfg->emulator && !cfg->allow_emulator &&
        (cfg->key_sealed || cfg->key_secret || cfg->credentials))
        return d2f_errf(err, D2F_ECONFIG,
                        "FIRESTORE_EMULATOR_HOST: set together with a service-account key (%s); "
                        "the emulator would take the records in plain HTTP with no credentials; "
                        "unset one, or set DDB2FS_ALLOW_EMULATOR=1 if this is a test",
                        cfg->key_sealed   ? "DDB2FS_KEY_SEALED"
                        : cfg->key_secret ? "DDB2FS_KEY_SECRET"
                                          : "GOOGLE_APPLICATION_CREDENTIALS");
    if (cfg->emulator && !cfg->allow_emulator && k[V_RUNTIME_API])
        return d2f_errf(err, D2F_ECONFIG,
                        "FIRESTORE_EMULATOR_HOST: set inside AWS Lambda (AWS_LAMBDA_RUNTIME_API "
                        "is set); the emulator would take the records in plain HTTP with no "
                        "credentials; unset it, or set DDB2FS_ALLOW_EMULATOR=1 if this is a test");
    if (!url_ok(cfg->endpoint))
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_FIRESTORE_ENDPOINT: '%.64s' is not an https:// URL (http:// only "
                        "to a loopback host): it receives the bearer token",
                        cfg->endpoint);
    if (cfg->project && (strpbrk(cfg->project, "/ \t") || strlen(cfg->project) > 128))
        return d2f_errf(err, D2F_ECONFIG, "GOOGLE_CLOUD_PROJECT: '%.64s' is not a project id",
                        cfg->project);
    if (!database_ok(cfg->database))
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_DATABASE: '%.64s' is not a database id; use (default) or 4 to 63 "
                        "of a-z 0-9 -, starting with a letter",
                        cfg->database);
    {
        size_t n = strlen(cfg->separator);
        if (n == 0 || n > 16 || strpbrk(cfg->separator, "/%") || !d2f_utf8_valid(cfg->separator, n))
            return d2f_errf(err, D2F_ECONFIG,
                            "DDB2FS_KEY_SEPARATOR: '%.32s' is not accepted; use 1 to 16 bytes of "
                            "UTF-8 without '/' or '%%'",
                            cfg->separator);
    }
    if (k[V_KEYS] && (rc = parse_keys(cfg, k[V_KEYS], err)) != 0)
        return rc;
    if (k[V_COLLECTIONS] && (rc = parse_collections(cfg, k[V_COLLECTIONS], err)) != 0)
        return rc;
    if (k[V_TABLES] && (rc = parse_tables(cfg, k[V_TABLES], err)) != 0)
        return rc;

    choice = CONFIG_NUMBERS_AUTO;
    if ((rc = parse_choice(get, "DDB2FS_NUMBERS", numbers, "auto or string", &choice, err)))
        return rc;
    cfg->numbers = (enum config_numbers)choice;
    choice = CONFIG_TTL_DELETE;
    if ((rc = parse_choice(get, "DDB2FS_TTL_DELETES", ttl, "delete or ignore", &choice, err)))
        return rc;
    cfg->ttl = (enum config_ttl)choice;
    choice = CONFIG_RESERVED_DEAD;
    if ((rc = parse_choice(get, "DDB2FS_RESERVED_NAMES", reserved, "dead or escape", &choice, err)))
        return rc;
    cfg->reserved = (enum config_reserved)choice;
    choice = CONFIG_JOURNAL_AUTO;
    if ((rc = parse_choice(get, "DDB2FS_JOURNAL", journal, "auto, wal or delete", &choice, err)))
        return rc;
    cfg->journal = (enum config_journal)choice;
    choice = CONFIG_TOKEN_OAUTH;
    if ((rc = parse_choice(get, "DDB2FS_TOKEN", tokens, "oauth or self-signed", &choice, err)))
        return rc;
    cfg->token = (enum config_token)choice;
    choice = 1;
    if ((rc = parse_choice(get, "DDB2FS_RAMP", onoff, "on or off", &choice, err)))
        return rc;
    cfg->ramp = choice;
    if ((rc = parse_long(get, "DDB2FS_COMMIT_WRITES", 1, 10000, 500, &cfg->commit_writes, err)) ||
        (rc = parse_long(get, "DDB2FS_COMMIT_BYTES", 64 * 1024, 9 * 1024 * 1024, 4 * 1024 * 1024,
                         &cfg->commit_bytes, err)) ||
        (rc = parse_long(get, "DDB2FS_CONCURRENCY", 1, 64, 8, &cfg->concurrency, err)) ||
        (rc = parse_long(get, "DDB2FS_DRAIN_SECONDS", 1, 86400, 300, &cfg->drain_seconds, err)) ||
        (rc = parse_long(get, "DDB2FS_PARTITIONS", 1, CONFIG_PARTITIONS_MAX, 0, &cfg->partitions,
                         err)) ||
        (rc = parse_retention(get, &cfg->retention_s, err)) ||
        (rc = parse_long(get, "DDB2FS_LEASE_SECONDS", 1, 3600, 30, &cfg->lease_s, err)) ||
        (rc = parse_long(get, "DDB2FS_TRANSACTION_SECONDS", 1, 3600, 270, &cfg->transaction_s,
                         err)) ||
        (rc = parse_long(get, "DDB2FS_BACKFILL_SETTLE", 0, 86400, 300, &cfg->backfill_settle_s,
                         err)) ||
        (rc = parse_long(get, "DDB2FS_BACKFILL_MARGIN", 0, 86400, 300, &cfg->backfill_margin_s,
                         err)))
        return rc;
    return 0;
}

int config_load(struct config *cfg, const char *(*get)(const char *name), struct d2f_err *err)
{
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    rc = load(cfg, get, err);
    if (rc)
        config_release(cfg);
    return rc;
}

void config_release(struct config *cfg)
{
    if (!cfg)
        return;
    free(cfg->keys);
    free(cfg->collections);
    free(cfg->tables);
    free(cfg->storage);
    memset(cfg, 0, sizeof(*cfg));
}

const struct config_keys *config_keys_for(const struct config *cfg, const char *table)
{
    for (size_t i = 0; i < cfg->nkeys; i++)
        if (strcmp(cfg->keys[i].table, table) == 0)
            return &cfg->keys[i];
    return NULL;
}

int config_serves(const struct config *cfg, const char *table, const char *stream_arn)
{
    if (!cfg->ntables)
        return 1;
    for (size_t i = 0; i < cfg->ntables; i++) {
        const char *t = cfg->tables[i];
        size_t n = strlen(t);
        if (strncmp(t, "arn:", 4) != 0
                ? strcmp(t, table) == 0
                : stream_arn && strncmp(stream_arn, t, n) == 0 &&
                      (!stream_arn[n] || strncmp(stream_arn + n, "/stream/", 8) == 0))
            return 1;
    }
    return 0;
}

const char *config_collection_for(const struct config *cfg, const char *table)
{
    for (size_t i = 0; i < cfg->ncollections; i++)
        if (strcmp(cfg->collections[i].table, table) == 0)
            return cfg->collections[i].collection;
    return NULL;
}

/* Appends a name and its value (NULL: unset) to d. */
static void describe(struct config_description *d, const char *name, const char *value)
{
    d->pairs[2 * d->n] = name;
    d->pairs[2 * d->n + 1] = value;
    d->n++;
}

/* A number's text, kept in d->text. */
static const char *number_text(struct config_description *d, size_t *used, long v)
{
    char *p = d->text + *used;
    int n = snprintf(p, sizeof(d->text) - *used, "%ld", v);

    *used += (size_t)n + 1;
    return p;
}

void config_describe(const struct config *cfg, struct config_description *d)
{
    static const char *const numbers[] = {"auto", "string"};
    static const char *const ttl[] = {"delete", "ignore"};
    static const char *const reserved[] = {"dead", "escape"};
    static const char *const journal[] = {"auto", "wal", "delete"};
    static const char *const tokens[] = {"oauth", "self-signed"};
    const size_t room = sizeof(d->text) - 256; /* the rest holds the numbers */
    size_t used = 0;

    d->n = 0;
    d->text[0] = '\0';
    for (size_t i = 0; i < cfg->ncollections; i++) {
        int n = snprintf(d->text + used, room - used, "%s%s=%s", i ? ";" : "",
                         cfg->collections[i].table, cfg->collections[i].collection);
        if (n < 0 || (size_t)n >= room - used) {
            used = (size_t)snprintf(d->text, room, "(%zu entries)", cfg->ncollections);
            break;
        }
        used += (size_t)n;
    }
    describe(d, "DDB2FS_COLLECTIONS", cfg->ncollections ? d->text : NULL);
    used++;
    describe(d, "DDB2FS_KEY_SEPARATOR", cfg->separator);
    describe(d, "DDB2FS_NUMBERS", numbers[cfg->numbers]);
    describe(d, "DDB2FS_TTL_DELETES", ttl[cfg->ttl]);
    describe(d, "DDB2FS_RESERVED_NAMES", reserved[cfg->reserved]);
    describe(d, "DDB2FS_JOURNAL", journal[cfg->journal]);
    describe(d, "DDB2FS_RETENTION", number_text(d, &used, cfg->retention_s));
    describe(d, "GOOGLE_CLOUD_PROJECT", cfg->project);
    describe(d, "DDB2FS_DATABASE", cfg->database);
    describe(d, "FIRESTORE_EMULATOR_HOST", cfg->emulator);
    describe(d, "DDB2FS_FIRESTORE_ENDPOINT", cfg->endpoint);
    describe(d, "DDB2FS_KEY_SEALED", cfg->key_sealed);
    describe(d, "DDB2FS_KEY_SECRET", cfg->key_secret);
    describe(d, "GOOGLE_APPLICATION_CREDENTIALS", cfg->credentials);
    describe(d, "DDB2FS_TOKEN", tokens[cfg->token]);
    describe(d, "DDB2FS_COMMIT_WRITES", number_text(d, &used, cfg->commit_writes));
    describe(d, "DDB2FS_COMMIT_BYTES", number_text(d, &used, cfg->commit_bytes));
    describe(d, "DDB2FS_CONCURRENCY", number_text(d, &used, cfg->concurrency));
    describe(d, "DDB2FS_RAMP", cfg->ramp ? "on" : "off");
    describe(d, "DDB2FS_PARTITIONS",
             cfg->partitions ? number_text(d, &used, cfg->partitions) : NULL);
}
