/*
 * runtime.h: the Lambda Runtime API (2018-06-01), as a custom runtime speaks it.
 *
 * DESIGN
 * The loop asks for the next invocation with no total timeout (Lambda may freeze the process
 * between invocations), hands the event to the handler, and posts the handler's answer or
 * error. Posting a result is retried on a transient failure (no answer, 5xx other than
 * Lambda's own container error), never silently dropped; a 413 (answer over Lambda's 6 MB) is
 * reported as the invocation's error instead. A failed start is posted to init/error.
 *
 * Calling sequence
 *   runtime_open(&rt, getenv("AWS_LAMBDA_RUNTIME_API"), &err);
 *   for (;;) { runtime_next(rt, &inv, &err); …; runtime_respond(rt, &inv, body, len, &err)
 *              or runtime_fail(rt, &inv, type, message, &err); }
 *
 * Error handling
 * runtime_next failing means the Runtime API is gone: the process should exit.
 */
#ifndef RUNTIME_H
#define RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "d2f.h"
#include "http.h"

/* Lambda's limit on a synchronous invocation's payload and response. */
#define RUNTIME_MAX_PAYLOAD (6 * 1024 * 1024)

struct runtime;

struct runtime_invocation {
    char request_id[128];   /* Lambda-Runtime-Aws-Request-Id */
    int64_t deadline_ms;    /* Lambda-Runtime-Deadline-Ms, epoch ms */
    char function_arn[512]; /* Lambda-Runtime-Invoked-Function-Arn */
    char trace_id[512];     /* Lambda-Runtime-Trace-Id */
    struct buf event;       /* the event, as received */
};

/* A client of the Runtime API at api ("host:port"), over http (which must outlive it). */
int runtime_open(struct runtime **out, const char *api, struct http *http,
                 struct d2f_err *err) D2F_WUR;

/* Frees the client; accepts NULL. */
void runtime_close(struct runtime *rt);

/* Sets up an invocation to receive into. */
void runtime_invocation_init(struct runtime_invocation *inv);

/* Frees what an invocation holds. */
void runtime_invocation_release(struct runtime_invocation *inv);

/* Waits for the next invocation. */
int runtime_next(struct runtime *rt, struct runtime_invocation *inv, struct d2f_err *err) D2F_WUR;

/* Posts the invocation's answer (JSON). */
int runtime_respond(struct runtime *rt, const struct runtime_invocation *inv, const char *body,
                    size_t len, struct d2f_err *err) D2F_WUR;

/* Posts the invocation's error: {"errorMessage", "errorType"} with
 * Lambda-Runtime-Function-Error-Type. */
int runtime_fail(struct runtime *rt, const struct runtime_invocation *inv, const char *type,
                 const char *message, struct d2f_err *err) D2F_WUR;

/* Posts a failed start to init/error; the process exits after it. */
int runtime_init_error(struct runtime *rt, const char *type, const char *message,
                       struct d2f_err *err) D2F_WUR;

#endif
