/* record.c: what one stream record means for Firestore. */
#include "record.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docid.h"
#include "json.h"

#define DOCUMENT_PATH_MAX (64 * 1024)

void record_plan_init(struct record_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    buf_init(&plan->document, DOCUMENT_PATH_MAX);
}

void record_plan_release(struct record_plan *plan)
{
    if (!plan)
        return;
    buf_release(&plan->document);
    cJSON_Delete(plan->write);
    plan->write = NULL;
}

static void dead(struct record_plan *plan, const struct event_record *rec, const char *fmt, ...)
    D2F_PRINTF(3, 4);
static void dead(struct record_plan *plan, const struct event_record *rec, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(plan->error_buf, sizeof(plan->error_buf), "Records[%zu]: ", rec->index);

    va_start(ap, fmt);
    vsnprintf(plan->error_buf + n, sizeof(plan->error_buf) - (size_t)n, fmt, ap);
    va_end(ap);
    plan->error = plan->error_buf;
    plan->op = RECORD_DEAD;
}

/* Firestore's document name size: each segment's string size, plus 16. */
static size_t name_size(const char *path)
{
    size_t size = 16;

    for (const char *p = path;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        size += json_text_len(p, n) + 1;
        if (!slash)
            break;
        p = slash + 1;
    }
    return size;
}

static int build_write(struct record_plan *plan, const char *docs_prefix, cJSON *fields)
{
    cJSON *w = cJSON_CreateObject(), *doc;
    char *name = NULL;
    size_t n = strlen(docs_prefix) + 1 + plan->document.len + 1;

    if (!w || !(name = malloc(n)))
        goto fail;
    snprintf(name, n, "%s/%s", docs_prefix, plan->document.data);
    if (plan->op == RECORD_DELETE) {
        if (!cJSON_AddStringToObject(w, "delete", name))
            goto fail;
    } else {
        doc = cJSON_AddObjectToObject(w, "update");
        if (!doc || !cJSON_AddStringToObject(doc, "name", name) ||
            !cJSON_AddItemToObject(doc, "fields", fields))
            goto fail; /* a document written without its fields would be emptied */
        fields = NULL;
    }
    free(name);
    plan->write = w;
    return 0;
fail:
    free(name);
    cJSON_Delete(fields);
    cJSON_Delete(w);
    return D2F_ENOMEM;
}

/*
 * Maps rec's NewImage (into *fields unless fields is NULL) and, when the document is known,
 * checks the document's size. Returns 0, D2F_ENOMEM, or D2F_EINPUT / D2F_ELIMIT with err
 * saying why the record cannot be written.
 */
static int map_image(const struct event_record *rec, const struct config *cfg, const char *document,
                     cJSON **fields, struct record_plan *plan, struct d2f_err *err)
{
    struct mapping_opts mopts = {.numbers_as_strings = cfg->numbers == CONFIG_NUMBERS_STRING,
                                 .escape_reserved = cfg->reserved == CONFIG_RESERVED_ESCAPE};
    struct d2f_err why = {0};
    int rc = mapping_item(rec->new_image, &mopts, fields, &plan->map, &why);

    if (rc)
        return rc == D2F_ENOMEM ? d2f_errf(err, rc, "out of memory")
                                : d2f_errf(err, rc, "'dynamodb.NewImage' %s", why.msg);
    if (!document)
        return 0;
    plan->doc_size = name_size(document) + plan->map.size + 32;
    if (plan->doc_size <= RECORD_MAX_DOC_BYTES)
        return 0;
    if (fields) {
        cJSON_Delete(*fields);
        *fields = NULL;
    }
    return d2f_errf(err, D2F_ELIMIT,
                    "the document would be %zu bytes, over Firestore's limit of 1 MiB "
                    "(1,048,576 bytes) for a document",
                    plan->doc_size);
}

/* The record's document, "collection/id", into plan->document from its Keys. Returns 0, or
 * D2F_ENOMEM, or another code with err saying what is wrong with the Keys. */
static int name_document(const struct event_record *rec, const struct config *cfg, const char *pk,
                         const char *sk, struct record_plan *plan, struct d2f_err *err)
{
    const char *collection = config_collection_for(cfg, rec->table);
    struct buf id;
    int rc;

    buf_reset(&plan->document);
    rc = collection ? buf_adds(&plan->document, collection)
                    : docid_collection(rec->table, &plan->document);
    if (!rc)
        rc = buf_addc(&plan->document, '/');
    if (rc)
        return rc;
    buf_init(&id, DOCUMENT_PATH_MAX);
    rc = docid_from_keys(rec->keys, pk, sk, cfg->separator, &id, err);
    if (!rc)
        rc = buf_add(&plan->document, id.data, id.len);
    buf_release(&id);
    if (rc)
        buf_reset(&plan->document);
    return rc;
}

int record_plan(const struct event_record *rec, const struct config *cfg, const char *pk,
                const char *sk, const char *docs_prefix, struct record_plan *plan)
{
    struct d2f_err err = {0};
    cJSON *fields = NULL;
    int rc;

    if (rec->error) {
        snprintf(plan->error_buf, sizeof(plan->error_buf), "%s", rec->error);
        plan->error = plan->error_buf;
        plan->op = RECORD_DEAD;
        /* the document it is about, when its Keys tell, so that the document's history shows
         * it */
        if (pk && rec->keys && rec->table[0] &&
            name_document(rec, cfg, pk, sk, plan, &err) == D2F_ENOMEM)
            return D2F_ENOMEM;
        return 0;
    }
    if (!config_serves(cfg, rec->table, rec->source_arn)) {
        dead(plan, rec,
             "table '%s' is not served: DDB2FS_TABLES names neither it nor its stream ARN",
             rec->table);
        return 0;
    }
    plan->op = rec->name == EVENT_REMOVE ? RECORD_DELETE : RECORD_UPDATE;
    if (rec->ttl_expiry && cfg->ttl == CONFIG_TTL_IGNORE)
        plan->op = RECORD_SKIP;

    if (!pk) {
        plan->unresolved = 1;
        snprintf(plan->error_buf, sizeof(plan->error_buf),
                 "Records[%zu]: the key schema of table '%.100s' is unknown: set "
                 "DDB2FS_KEYS=%.100s=partitionKey,sortKey",
                 rec->index, rec->table, rec->table);
        plan->error = plan->error_buf;
    } else if ((rc = name_document(rec, cfg, pk, sk, plan, &err)) != 0) {
        if (rc == D2F_ENOMEM)
            return rc;
        dead(plan, rec, "'dynamodb.Keys': %s", err.msg);
        return 0;
    }

    if (plan->op == RECORD_UPDATE) {
        rc = map_image(rec, cfg, plan->unresolved ? NULL : plan->document.data,
                       docs_prefix && !plan->unresolved ? &fields : NULL, plan, &err);
        if (rc == D2F_ENOMEM)
            return rc;
        if (rc) {
            dead(plan, rec, "%s", err.msg);
            return 0;
        }
    }
    if (docs_prefix && !plan->unresolved && plan->op != RECORD_SKIP)
        return build_write(plan, docs_prefix, fields);
    cJSON_Delete(fields);
    return 0;
}

int record_write(const struct event_record *rec, const struct config *cfg, const char *docs_prefix,
                 const char *document, int is_delete, char **write, size_t *len,
                 struct d2f_err *err)
{
    struct record_plan plan;
    cJSON *fields = NULL;
    int rc;

    *write = NULL;
    if (rec->error)
        return d2f_errf(err, D2F_EINPUT, "%s", rec->error);
    record_plan_init(&plan);
    plan.op = is_delete ? RECORD_DELETE : RECORD_UPDATE;
    if ((rc = buf_adds(&plan.document, document)) != 0) {
        d2f_errf(err, rc, "out of memory");
        goto out;
    }
    if (!is_delete && (rc = map_image(rec, cfg, document, &fields, &plan, err)) != 0)
        goto out;
    if ((rc = build_write(&plan, docs_prefix, fields)) != 0) {
        d2f_errf(err, rc, "out of memory");
        goto out;
    }
    *write = json_print(plan.write);
    if (!*write) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    *len = strlen(*write);
out:
    record_plan_release(&plan);
    return rc;
}
