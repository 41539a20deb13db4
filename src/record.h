/*
 * record.h: what one stream record means: its document, its operation, and the Firestore
 * Write it becomes, or why it cannot be replicated (the record is then "dead").
 *
 * Shared by ingest (columns and checks, no Write built), convert (the Write printed) and the
 * drain (the Write sent).
 */
#ifndef RECORD_H
#define RECORD_H

#include <cjson/cJSON.h>

#include "buf.h"
#include "config.h"
#include "event.h"
#include "mapping.h"

/* Firestore's limit on a document's storage size. */
#define RECORD_MAX_DOC_BYTES 1048576

enum record_op {
    RECORD_DEAD,   /* cannot be replicated: see error */
    RECORD_UPDATE, /* write the whole NewImage */
    RECORD_DELETE, /* delete the document */
    RECORD_SKIP,   /* nothing to do (a TTL expiry with DDB2FS_TTL_DELETES=ignore) */
};

struct record_plan {
    enum record_op op;
    int unresolved;            /* 1: the table's key schema is unknown, document is empty */
    struct buf document;       /* "collection/id", relative to the database's documents */
    struct mapping_result map; /* sizes and rounding of the NewImage */
    size_t doc_size;           /* Firestore storage size of the document (updates) */
    const char *error;         /* why op is RECORD_DEAD, or why unresolved; NULL otherwise */
    char error_buf[D2F_ERR_MSG];
    cJSON *write; /* the Firestore Write when asked for; owned */
};

/* Sets up an empty plan. */
void record_plan_init(struct record_plan *plan);

/* Frees what a plan holds; it may be used again after record_plan_init. */
void record_plan_release(struct record_plan *plan);

/*
 * Plans rec with the table's key schema (pk NULL when unknown: the plan is then unresolved;
 * sk NULL for a partition key alone). With docs_prefix not NULL ("projects/P/databases/D/
 * documents") the Write is built into plan->write. A record that cannot be replicated gets
 * op RECORD_DEAD and a reason naming the record and field. Returns 0, or D2F_ENOMEM.
 */
int record_plan(const struct event_record *rec, const struct config *cfg, const char *pk,
                const char *sk, const char *docs_prefix, struct record_plan *plan) D2F_WUR;

/*
 * The Write for a kept row, as the drain sends it: op "update" maps rec's NewImage, "delete"
 * deletes; the name is docs_prefix + "/" + document, the document fixed at ingest. On a record
 * that cannot be written, returns D2F_EINPUT / D2F_ELIMIT with the reason in err. *write is
 * the Write's JSON text (free() it).
 */
int record_write(const struct event_record *rec, const struct config *cfg, const char *docs_prefix,
                 const char *document, int is_delete, char **write, size_t *len,
                 struct d2f_err *err) D2F_WUR;

#endif
