/*
 * ingest.h: a stream event made durable in the outbox, in one transaction.
 *
 * Each record is parsed, checked and planned (document, operation, Firestore's limits), then
 * kept with its raw JSON: pending, dead with the reason, or committed at once when there is
 * nothing to send. Records already present (same stream ARN and sequence number) are left
 * alone, so a retried batch changes nothing. Either the whole event is durable or none of it;
 * in a partitioned outbox, either each file's share is durable or none of it, and an event that
 * failed is retried whole.
 *
 * Calling sequence
 *   ing = ingest_new(ob, cfg);                 once per process
 *   rc = ingest_event(ing, text, len, &res, &err);
 *   ingest_answer(text, len, rc != 0, &answer);  {"batchItemFailures":[…]}
 *   ingest_free(ing);
 */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "d2f.h"
#include "outbox.h"

struct ingest;

struct ingest_result {
    size_t records;       /* records in the event */
    size_t inserted;      /* rows added */
    size_t duplicates;    /* records already in the outbox */
    size_t dead;          /* rows added as dead */
    size_t unresolved;    /* rows added pending, waiting for their table's key schema */
    size_t rounded;       /* numbers that will be written as the nearest double */
    int64_t lock_wait_ms; /* time spent waiting for other processes' locks */
};

/* A handle for ingesting into ob with cfg (both must outlive it). NULL when out of memory. */
struct ingest *ingest_new(struct outbox *ob, const struct config *cfg);

/* The same for a partitioned outbox: its n files (partition.h), each record into the one its
 * table and Keys choose; an event becomes at most n transactions. */
struct ingest *ingest_new_set(struct outbox *const *obs, size_t n, const struct config *cfg);

/* Frees the handle; accepts NULL. */
void ingest_free(struct ingest *ing);

/* Ingests one Lambda DynamoDB stream event (len bytes of JSON) in one transaction. Returns 0
 * when it is durable; otherwise nothing was kept: D2F_EINPUT / D2F_ELIMIT for a malformed
 * event, D2F_EDB / D2F_ESCHEMA / D2F_ENOMEM for a failure to keep it. */
int ingest_event(struct ingest *ing, const char *text, size_t len, struct ingest_result *res,
                 struct d2f_err *err) D2F_WUR;

/* Keeps rec, a snapshot of an item read by a Scan that began at read_start (ms; not 0), as
 * kind 'snapshot', planned as a stream record is. In the caller's transaction. *id is the new
 * row's id. */
struct event_record;
int ingest_snapshot(struct ingest *ing, const struct event_record *rec, int64_t read_start,
                    int64_t *id, struct ingest_result *res, struct d2f_err *err) D2F_WUR;

/* Logs what an ingest did, as one line with msg. */
void ingest_log(const struct ingest_result *res, const char *msg);

/* Appends the ReportBatchItemFailures answer: empty when the event is durable (failed 0),
 * else every record's SequenceNumber. Returns 0, D2F_EINPUT when failed and the event cannot
 * be read (then the whole invocation must fail), or D2F_ENOMEM. */
int ingest_answer(const char *text, size_t len, int failed, struct buf *out) D2F_WUR;

/* The key schema of rec's table: recorded in ob, or set in DDB2FS_KEYS (then recorded), or
 * inferred from a one-attribute Keys map (then recorded). *pk stays NULL when it cannot be
 * known yet; *pk / *sk stay valid while ob, cfg and rec are. With ob NULL nothing is read or
 * recorded (convert). Call in a transaction when recording must go with the rows. */
struct event_record;
int ingest_keys(struct outbox *ob, const struct config *cfg, const struct event_record *rec,
                const char **pk, const char **sk, struct d2f_err *err) D2F_WUR;

#endif
