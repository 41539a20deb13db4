/*
 * handler.h: one Lambda invocation.
 *
 * A DynamoDB stream batch is ingested in one transaction, then drained while time remains
 * (stopping a safety margin before the deadline), then answered in the ReportBatchItemFailures
 * format: only records that could not be made durable are listed. A scheduled (EventBridge)
 * event drains only. Anything else is an error with a clear errorType.
 *
 * Calling sequence
 *   handler_new(&h, getenv, http, &err);            at init, once per process
 *   handler_invoke(h, event, len, deadline_ms, &answer, &type, &err);   per invocation
 *   handler_free(h);
 */
#ifndef HANDLER_H
#define HANDLER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "d2f.h"
#include "http.h"

/* How long before the deadline the drain stops, so that the answer still gets out. */
#define HANDLER_MARGIN_MS 1500
/* Time kept at the end of an invocation to post its answer: nothing waits for a lock past it. */
#define HANDLER_ANSWER_MS 500
/* The backfill's share of a stream batch's invocation at most, so that the batch's answer (and
 * the shard's next batch) does not wait for it; scheduled invocations give it all they have. */
#define HANDLER_BACKFILL_STREAM_MS 5000
/* Events smaller than this are looked at whole to tell their kind; larger ones are batches. */
#define HANDLER_SNIFF_MAX (64 * 1024)

struct handler;

/* Init: reads and checks the configuration through get, opens the outbox (once for the
 * process), and sets up Firestore and its credentials. */
int handler_new(struct handler **out, const char *(*get)(const char *), struct http *http,
                struct d2f_err *err) D2F_WUR;

/* Frees everything; accepts NULL. */
void handler_free(struct handler *h);

/*
 * Handles one event. Returns 0 with the JSON answer appended to answer, or a D2F_E* code with
 * *error_type (static, e.g. "ddb2fs.MalformedEvent") and err's message for the invocation's
 * error.
 */
int handler_invoke(struct handler *h, const char *event, size_t len, int64_t deadline_ms,
                   struct buf *answer, const char **error_type, struct d2f_err *err) D2F_WUR;

/* The errorType that names a D2F_E* code at init or in an invocation. */
const char *handler_error_type(int code);

#endif
