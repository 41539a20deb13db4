/*
 * fence.h: what ddb2fs knows of each document in Firestore, so that every write carries a
 * precondition on it.
 *
 * DESIGN
 * A lease cannot bound when a request already sent will land; Firestore's own version can.
 * Per target (endpoint and database) and document the outbox keeps the updateTime of the last write
 * known to have landed (from the commit's writeResults), or that the document is absent. A write is
 * sent with currentDocument.updateTime = that time, or currentDocument.exists = false when the
 * document is absent or was never written: a late request then fails its precondition instead
 * of writing an older state over a newer one.
 *
 * One late write is not fenced that way: a create (exists=false) that lands after a deletion of
 * the same document. Creates therefore travel in a transaction, recorded here before its commit
 * is sent; a transaction whose commit was not seen to land or fail is rolled back (a rolled
 * back transaction can no longer commit), and until that succeeds or the transaction has
 * expired (DDB2FS_TRANSACTION_SECONDS, Firestore's 270 s) no deletion is sent.
 *
 * Calling sequence
 *   fence_reader_new(&rd, ob, target, &err);
 *   fence_get(rd, document, time, sizeof(time), &err);            before a write is built
 *   fence_transactions_add(ob, target, txns, began, n, &err);     before commits with creates
 *   fence_put(ob, target, fences, n, ids, nids, txns, ntx, &err); after commits landed
 */
#ifndef FENCE_H
#define FENCE_H

#include <stddef.h>
#include <stdint.h>

#include "d2f.h"
#include "outbox.h"

/* The longest updateTime text kept ("2026-12-02T14:01:08.671669123Z" and room). */
#define FENCE_TIME_MAX 64

/* What a write learnt of one document. */
struct fence {
    const char *document;    /* "collection/id" */
    const char *update_time; /* its updateTime; NULL or "": absent */
};

/* A reader of target's fences in ob (both must outlive it), with its query prepared once. */
struct fence_reader;

/* Sets up a reader into *out; freed with fence_reader_free. */
int fence_reader_new(struct fence_reader **out, struct outbox *ob, const char *target,
                     struct d2f_err *err) D2F_WUR;

/* Frees a reader; accepts NULL. */
void fence_reader_free(struct fence_reader *rd);

/* Reads document's fence into time (cap bytes): its updateTime, or "" when it is absent or was
 * never written. */
int fence_get(struct fence_reader *rd, const char *document, char *time, size_t cap,
              struct d2f_err *err) D2F_WUR;

/*
 * In one outbox transaction: records n fences of target, marks nids rows committed (ids may be
 * NULL) and forgets ntx transactions of target (txns may be NULL). Returns 0 or an outbox
 * error; on error nothing of it is kept.
 */
int fence_put(struct outbox *ob, const char *target, const struct fence *f, size_t n,
              const int64_t *ids, size_t nids, const char *const *txns, size_t ntx,
              struct d2f_err *err) D2F_WUR;

/* *newer is 1 when the outbox holds a row of document after row id that is not dead: a newer
 * state, which wins over row id's. */
int fence_superseded(struct outbox *ob, const char *document, int64_t id, int *newer,
                     struct d2f_err *err) D2F_WUR;

/* Records, in one outbox transaction, that commits in transactions txns (began[i], ms) are
 * about to be sent to target. */
int fence_transactions_add(struct outbox *ob, const char *target, const char *const *txns,
                           const int64_t *began, size_t n, struct d2f_err *err) D2F_WUR;

/* The recorded transactions of target, oldest first: *txns (n strings) and *began (ms), both
 * freed by the caller with fence_transactions_free. */
int fence_transactions(struct outbox *ob, const char *target, char ***txns, int64_t **began,
                       size_t *n, struct d2f_err *err) D2F_WUR;

/* Frees what fence_transactions returned; accepts NULL. */
void fence_transactions_free(char **txns, int64_t *began, size_t n);

#endif
