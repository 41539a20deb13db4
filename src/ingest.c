/* ingest.c: a stream event made durable in the outbox, in one transaction. */
#include "ingest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ddb.h"
#include "event.h"
#include "json.h"
#include "log.h"
#include "partition.h"
#include "record.h"

/* Rounded numbers are logged once per table and field; past this many pairs, no more. */
#define ROUNDED_SEEN_MAX 1024

struct seen {
    char *key; /* "table\tfield" */
    struct seen *next;
};

struct ingest {
    struct outbox *ob; /* the file being written */
    struct outbox *obs[CONFIG_PARTITIONS_MAX];
    size_t nobs;
    const struct config *cfg;
    struct seen *rounded;
    size_t nrounded;
};

struct ingest *ingest_new(struct outbox *ob, const struct config *cfg)
{
    return ingest_new_set(&ob, 1, cfg);
}

struct ingest *ingest_new_set(struct outbox *const *obs, size_t n, const struct config *cfg)
{
    struct ingest *ing = n && n <= CONFIG_PARTITIONS_MAX ? calloc(1, sizeof(*ing)) : NULL;

    if (ing) {
        memcpy(ing->obs, obs, n * sizeof(obs[0]));
        ing->nobs = n;
        ing->ob = obs[0];
        ing->cfg = cfg;
    }
    return ing;
}

void ingest_free(struct ingest *ing)
{
    if (!ing)
        return;
    while (ing->rounded) {
        struct seen *s = ing->rounded;
        ing->rounded = s->next;
        free(s->key);
        free(s);
    }
    free(ing);
}

/* Logs a number rounded to a double, once per table and field. */
static void note_rounded(struct ingest *ing, const char *table, const char *field)
{
    struct buf key;
    struct seen *s;
    cJSON *f;

    buf_init(&key, 1024);
    if (buf_adds(&key, table) || buf_addc(&key, '\t') || buf_adds(&key, field))
        goto out;
    for (s = ing->rounded; s; s = s->next)
        if (strcmp(s->key, key.data) == 0)
            goto out;
    if (ing->nrounded >= ROUNDED_SEEN_MAX || !(s = calloc(1, sizeof(*s))))
        goto out;
    s->key = buf_detach(&key, NULL);
    s->next = ing->rounded;
    ing->rounded = s;
    ing->nrounded++;
    f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "table", table);
    cJSON_AddStringToObject(f, "field", field);
    log_write(LOG_WARN,
              "a number is not exactly a double and will be written as the nearest one; set "
              "DDB2FS_NUMBERS=string to keep every digit",
              f);
out:
    buf_release(&key);
}

/* Asks DynamoDB for a table's key schema and records it; a failure is logged and leaves the
 * schema unknown (the records wait, pending), and is not asked again for a minute. */
static int describe(struct outbox *ob, const struct config *cfg, const char *table, const char **pk,
                    const char **sk, struct d2f_err *err)
{
    struct buf p, s;
    struct d2f_err why = {0};
    int rc = 0;

    if (!cfg->aws_region || !cfg->aws_key_id || !outbox_keys_may_ask(ob, table))
        return 0;
    buf_init(&p, 1024);
    buf_init(&s, 1024);
    if (ddb_key_schema(cfg, table, &p, &s, &why) == 0) {
        rc =
            outbox_keys_put(ob, table, p.data, s.len ? s.data : NULL, "DescribeTable", pk, sk, err);
    } else {
        log_write(LOG_WARN, why.msg, NULL);
        outbox_keys_asked(ob, table);
    }
    buf_release(&p);
    buf_release(&s);
    return rc;
}

int ingest_keys(struct outbox *ob, const struct config *cfg, const struct event_record *rec,
                const char **pk, const char **sk, struct d2f_err *err)
{
    const struct config_keys *k;
    const char *single;
    int found, rc;

    *pk = *sk = NULL;
    if (!rec->table[0] || !config_serves(cfg, rec->table, rec->source_arn))
        return 0; /* dead, or not ours: no schema is recorded or asked for */
    if (ob && ((rc = outbox_keys_get(ob, rec->table, pk, sk, &found, err)) != 0 || found))
        return rc;
    k = config_keys_for(cfg, rec->table);
    if (rec->error) {
        /* dead anyway: named from a schema already known, never recorded or asked for */
        *pk = k ? k->partition : NULL;
        *sk = k ? k->sort : NULL;
        return 0;
    }
    single =
        rec->keys && rec->keys->child && !rec->keys->child->next ? rec->keys->child->string : NULL;
    if (!ob) {
        *pk = k ? k->partition : single;
        *sk = k ? k->sort : NULL;
        return 0;
    }
    if (k) {
        rc = outbox_keys_put(ob, rec->table, k->partition, k->sort, "DDB2FS_KEYS", pk, sk, err);
        if (!rc && (strcmp(*pk, k->partition) != 0 || (*sk == NULL) != (k->sort == NULL) ||
                    (*sk && strcmp(*sk, k->sort) != 0)))
            rc = d2f_errf(err, D2F_ESCHEMA,
                          "DDB2FS_KEYS: table '%s' contradicts the key schema another process "
                          "recorded in the outbox",
                          rec->table);
        return rc;
    }
    if (single)
        return outbox_keys_put(ob, rec->table, single, NULL,
                               "a stream record's Keys (one attribute)", pk, sk, err);
    return describe(ob, cfg, rec->table, pk, sk, err);
}

static const char *op_text(enum record_op op)
{
    switch (op) {
    case RECORD_UPDATE:
        return "update";
    case RECORD_DELETE:
        return "delete";
    case RECORD_SKIP:
        return "skip";
    case RECORD_DEAD:
        break;
    }
    return NULL;
}

/* Keeps one record; a snapshot (created_at not 0: its read began then) has no dedupe key: its
 * page and its segment's progress go in one transaction, which is what keeps it single. */
static int keep_record(struct ingest *ing, const struct event_record *rec, int64_t now,
                       int64_t snapshot_at, struct ingest_result *res, struct d2f_err *err)
{
    struct record_plan plan;
    struct outbox_row row = {0};
    char sha_hex[crypto_hash_sha256_BYTES * 2 + 1];
    const char *pk, *sk;
    int inserted = 0, rc;

    record_plan_init(&plan);
    if ((rc = ingest_keys(ing->ob, ing->cfg, rec, &pk, &sk, err)) != 0)
        goto out;
    if ((rc = record_plan(rec, ing->cfg, pk, sk, NULL, &plan)) != 0) {
        d2f_errf(err, rc, "cannot plan Records[%zu]: %s", rec->index, d2f_strerror(rc));
        goto out;
    }
    row.stream_arn = rec->source_arn;
    row.seq = snapshot_at ? NULL : rec->seq;
    if (snapshot_at) {
        row.kind = "snapshot";
    } else if (rec->source_arn && rec->seq_key[0]) {
        row.seq_key = rec->seq_key;
    } else {
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const unsigned char *)rec->raw, rec->raw_len);
        sodium_bin2hex(sha_hex, sizeof(sha_hex), h, sizeof(h));
        row.raw_sha256 = sha_hex;
    }
    row.event_id = rec->event_id;
    row.event_name = rec->event_name_text;
    row.table = rec->table[0] ? rec->table : NULL;
    row.document = plan.document.len ? plan.document.data : NULL;
    row.op = op_text(plan.op);
    if (rec->created > 0 && isfinite(rec->created) && rec->created < 1e12)
        row.created_at = (int64_t)llround(rec->created * 1000.0);
    if (snapshot_at)
        row.created_at = snapshot_at;
    row.arrived_at = now;
    row.state = plan.op == RECORD_DEAD ? "dead" : plan.op == RECORD_SKIP ? "committed" : "pending";
    row.last_error = plan.error;
    row.raw = rec->raw;
    row.raw_len = rec->raw_len;
    if ((rc = outbox_insert(ing->ob, &row, &inserted, err)) != 0)
        goto out;
    if (!inserted) {
        res->duplicates++;
        goto out;
    }
    res->inserted++;
    if (plan.op == RECORD_DEAD) {
        cJSON *f = cJSON_CreateObject();
        res->dead++;
        if (rec->seq)
            cJSON_AddStringToObject(f, "seq", rec->seq);
        log_write(LOG_WARN, plan.error, f);
    } else if (plan.unresolved) {
        res->unresolved++;
    }
    if (plan.map.rounded) {
        res->rounded += plan.map.rounded;
        note_rounded(ing, rec->table, plan.map.rounded_field);
    }
out:
    record_plan_release(&plan);
    return rc;
}

/* Keeps the records of the event that belong to partition part (all when only is 0), in one
 * transaction of ing->ob. */
static int keep_part(struct ingest *ing, const char *text, size_t len, const unsigned char *parts,
                     int only, unsigned char part, int64_t now, struct ingest_result *res,
                     struct d2f_err *err)
{
    struct event_reader r;
    struct event_record rec;
    int rc;

    if ((rc = event_reader_init(&r, text, len, err)) != 0)
        return rc;
    if ((rc = outbox_begin(ing->ob, err)) != 0)
        return rc;
    while ((rc = event_reader_next(&r, &rec, err)) == EVENT_RECORD) {
        if (!only || parts[rec.index] == part) {
            res->records++;
            rc = keep_record(ing, &rec, now, 0, res, err);
        } else {
            rc = 0;
        }
        event_record_release(&rec);
        if (rc)
            break;
    }
    if (rc == 0)
        rc = outbox_commit(ing->ob, err);
    if (rc)
        outbox_rollback(ing->ob);
    return rc;
}

/* The partition of each record of the event, into *parts (free it). */
static int partition_records(struct ingest *ing, const char *text, size_t len,
                             unsigned char **parts, size_t *n, struct d2f_err *err)
{
    struct event_reader r;
    struct event_record rec;
    size_t cap = 0;
    int rc;

    *parts = NULL;
    *n = 0;
    if ((rc = event_reader_init(&r, text, len, err)) != 0)
        return rc;
    while ((rc = event_reader_next(&r, &rec, err)) == EVENT_RECORD) {
        if (*n == cap) {
            unsigned char *more = realloc(*parts, cap = cap ? 2 * cap : 256);
            if (!more) {
                event_record_release(&rec);
                return d2f_errf(err, D2F_ENOMEM, "out of memory");
            }
            *parts = more;
        }
        (*parts)[(*n)++] =
            (unsigned char)partition_of(rec.table[0] ? rec.table : NULL, rec.keys, ing->nobs);
        event_record_release(&rec);
    }
    return rc;
}

int ingest_event(struct ingest *ing, const char *text, size_t len, struct ingest_result *res,
                 struct d2f_err *err)
{
    int64_t now = d2f_now_ms(), waited = 0;
    unsigned char *parts = NULL;
    size_t n = 0;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    for (size_t i = 0; i < ing->nobs; i++)
        waited += outbox_lock_waited_ms(ing->obs[i]);
    if (ing->nobs == 1) {
        ing->ob = ing->obs[0];
        rc = keep_part(ing, text, len, NULL, 0, 0, now, res, err);
    } else if ((rc = partition_records(ing, text, len, &parts, &n, err)) == 0) {
        /* one transaction per partition the event touches, in partition order: a crash between
         * two leaves some durable, and the retried batch finds them duplicates */
        for (size_t p = 0; p < ing->nobs && rc == 0; p++) {
            int any = 0;
            for (size_t i = 0; i < n && !any; i++)
                any = parts[i] == p;
            if (!any)
                continue;
            ing->ob = ing->obs[p];
            rc = keep_part(ing, text, len, parts, 1, (unsigned char)p, now, res, err);
        }
    }
    free(parts);
    if (rc)
        memset(res, 0, sizeof(*res));
    for (size_t i = 0; i < ing->nobs; i++)
        res->lock_wait_ms += outbox_lock_waited_ms(ing->obs[i]);
    res->lock_wait_ms -= waited;
    return rc;
}

int ingest_snapshot(struct ingest *ing, const struct event_record *rec, int64_t read_start,
                    int64_t *id, struct ingest_result *res, struct d2f_err *err)
{
    size_t before = res->inserted;
    int rc = keep_record(ing, rec, d2f_now_ms(), read_start, res, err);

    *id = !rc && res->inserted > before ? outbox_last_id(ing->ob) : 0;
    return rc;
}

void ingest_log(const struct ingest_result *res, const char *msg)
{
    cJSON *f = cJSON_CreateObject();

    json_add_number(f, "records", (double)res->records);
    json_add_number(f, "inserted", (double)res->inserted);
    json_add_number(f, "duplicates", (double)res->duplicates);
    json_add_number(f, "dead", (double)res->dead);
    json_add_number(f, "unresolved", (double)res->unresolved);
    json_add_number(f, "rounded", (double)res->rounded);
    json_add_number(f, "lock_wait_ms", (double)res->lock_wait_ms);
    log_write(LOG_INFO, msg, f);
}

int ingest_answer(const char *text, size_t len, int failed, struct buf *out)
{
    struct event_reader r;
    struct event_record rec;
    cJSON *answer = cJSON_CreateObject(), *list;
    char *json = NULL;
    int rc = D2F_ENOMEM;

    if (!answer || !(list = cJSON_AddArrayToObject(answer, "batchItemFailures")))
        goto out;
    if (failed) {
        if (event_reader_init(&r, text, len, NULL) != 0) {
            rc = D2F_EINPUT;
            goto out;
        }
        while ((rc = event_reader_next(&r, &rec, NULL)) == EVENT_RECORD) {
            cJSON *item = NULL;
            /* a record left out of the answer is one Lambda takes for kept: only one with no
             * sequence number, which cannot be named, may be */
            int named = !rec.seq || ((item = cJSON_CreateObject()) &&
                                     cJSON_AddStringToObject(item, "itemIdentifier", rec.seq) &&
                                     cJSON_AddItemToArray(list, item));
            if (!named)
                cJSON_Delete(item);
            event_record_release(&rec);
            if (!named) {
                rc = D2F_ENOMEM;
                goto out;
            }
        }
        if (rc != 0) {
            rc = D2F_EINPUT;
            goto out;
        }
    }
    rc = D2F_ENOMEM;
    json = json_print(answer);
    if (json)
        rc = buf_adds(out, json);
out:
    free(json);
    cJSON_Delete(answer);
    return rc;
}
