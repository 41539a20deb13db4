/*
 * firestore.h: the Firestore REST v1 client: documents:commit and documents:batchGet, errors
 * read from the google.rpc.Status body, the emulator (FIRESTORE_EMULATOR_HOST: plain HTTP,
 * no OAuth, as Google's client libraries treat it) and DDB2FS_FIRESTORE_ENDPOINT.
 */
#ifndef FIRESTORE_H
#define FIRESTORE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "config.h"
#include "d2f.h"
#include "gauth.h"
#include "http.h"
#include "retry.h"

/* Firestore refuses requests over 10 MiB; we never send more. */
#define FIRESTORE_MAX_REQUEST (10 * 1024 * 1024)
/* The largest answer we read: batchGet of many documents. */
#define FIRESTORE_MAX_RESPONSE (64 * 1024 * 1024)

struct firestore;

/* One documents:commit request and its outcome. */
struct firestore_commit {
    struct buf body;          /* {"writes":[…]}, built by the caller */
    struct http_call call;    /* private */
    enum retry_status status; /* RETRY_OK, or what the server or network said */
    char message[512];        /* the server's message (or the network error) */
};

/*
 * A client for cfg's project and database over http. auth may be NULL only with the emulator.
 * project: GOOGLE_CLOUD_PROJECT, else the key's project_id.
 */
int firestore_new(struct firestore **out, const struct config *cfg, struct http *http,
                  struct gauth *auth, struct d2f_err *err) D2F_WUR;

/* A client that only names documents of project and database (dry runs): it sends nothing. */
int firestore_names(struct firestore **out, const char *project, const char *database,
                    struct d2f_err *err) D2F_WUR;

/* Frees the client; accepts NULL. */
void firestore_free(struct firestore *fs);

/* "projects/P/databases/D/documents": what document names start with. */
const char *firestore_docs_prefix(const struct firestore *fs);

/* Writes "projects/P/databases/D/documents" into out (cap bytes): the one place that name is
 * built. Returns 0, or -1 when it does not fit (out then holds a cut name). */
int firestore_docs_path(char *out, size_t cap, const char *project, const char *database);

/* What the client writes to, as fences are kept per target: the endpoint and the documents'
 * prefix ("http://host:port/v1/projects/P/databases/D/documents"; the prefix alone for a client
 * that sends nothing). */
const char *firestore_target(const struct firestore *fs);

/* Sets up a commit; its body is filled by the caller. */
void firestore_commit_init(struct firestore_commit *c);

/* Frees what a commit holds. */
void firestore_commit_release(struct firestore_commit *c);

/* Sends n commits at once, in steps so that the caller can work while they are in flight:
 * start them (D2F_EAUTH / D2F_EUNREACHABLE when no token could be had), drive them (returns how
 * many still run), finish them (fills each one's status and message, whatever the answers). Only
 * one set of commits may be started at a time. */
int firestore_commit_start(struct firestore *fs, struct firestore_commit **c, size_t n,
                           int64_t deadline_ms, struct d2f_err *err) D2F_WUR;
int firestore_commit_wait(struct firestore *fs, int timeout_ms);
void firestore_commit_finish(struct firestore *fs, struct firestore_commit **c, size_t n);

/* Drops the cached token, after an UNAUTHENTICATED answer. */
void firestore_reauthenticate(struct firestore *fs);

/*
 * batchGet: the documents named (full names) into *out, a new cJSON array of the server's
 * answers ({"found":…} / {"missing":…}). The caller frees it.
 */
int firestore_batch_get(struct firestore *fs, const char *const *names, size_t n,
                        int64_t deadline_ms, void **out, struct d2f_err *err) D2F_WUR;

/* The updateTime of each of the n writes of a landed commit, from its writeResults, into dst[i]
 * (cap bytes each; "" for a deletion, which leaves no updateTime). D2F_EREMOTE when the answer
 * does not hold n results. */
int firestore_commit_times(const struct firestore_commit *c, char **dst, size_t n, size_t cap,
                           struct d2f_err *err) D2F_WUR;

/* batchGet of n documents (full names): each one's updateTime into dst[i] (cap bytes), "" when
 * it is missing. */
int firestore_update_times(struct firestore *fs, const char *const *names, size_t n,
                           int64_t deadline_ms, char **dst, size_t cap,
                           struct d2f_err *err) D2F_WUR;

/* Transactions begun ahead of need, at most, and how old one may be when used. */
#define FIRESTORE_POOL 64
#define FIRESTORE_POOL_MAX_AGE_MS 20000

/* n read-write transactions: each txns[i] is the id Firestore gave (a string the caller frees)
 * and began[i] when it began (ms). Taken from those begun ahead with the last commits when it
 * can be (firestore_commit_start begins as many as the largest n asked for so far); the rest
 * are begun now, at once. On error none is left to free. */
int firestore_begin(struct firestore *fs, char **txns, int64_t *began, size_t n,
                    int64_t deadline_ms, struct d2f_err *err) D2F_WUR;

/* Rolls transaction txn back. 0 when it can no longer commit (rolled back now, or already
 * closed or expired: Firestore then says INVALID_ARGUMENT); D2F_EUNREACHABLE or D2F_EREMOTE when
 * that is not known. */
int firestore_rollback(struct firestore *fs, const char *txn, int64_t deadline_ms,
                       struct d2f_err *err) D2F_WUR;

/* k batchGets at once: names[j] (counts[j] full names) into out[j], a new cJSON array each
 * (the caller frees them; all NULL on failure). */
int firestore_batch_get_many(struct firestore *fs, const char *const *const *names,
                             const size_t *counts, size_t k, int64_t deadline_ms, cJSON **out,
                             struct d2f_err *err) D2F_WUR;

/*
 * One page of a collection's documents (collection: its path relative to the documents, e.g.
 * "Orders"; page_token: the previous page's nextPageToken, NULL for the first; names_only: the
 * documents without their fields): *out is a new cJSON object ({"documents":[…],
 * "nextPageToken":…}; the caller frees it). Returns 0; D2F_EUNREACHABLE when Firestore does not
 * answer; D2F_EAUTH / D2F_EREMOTE when it refuses.
 */
int firestore_list(struct firestore *fs, const char *collection, long page_size,
                   const char *page_token, int names_only, int64_t deadline_ms, cJSON **out,
                   struct d2f_err *err) D2F_WUR;

#endif
