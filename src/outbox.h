/*
 * outbox.h: the SQLite outbox, where every stream record is made durable before anything is
 * sent.
 *
 * DESIGN
 * One database file holds every record as received, with the columns the relay needs (see
 * sql/). The schema is the embedded sql/NNNN_*.sql files, applied in order and counted in
 * PRAGMA user_version. On a network file system (NFS, as EFS is) the rollback journal is used
 * with synchronous=FULL: WAL needs shared memory that NFS cannot give. WAL is used where the
 * file is on a local disk. Writers take the lock up front (BEGIN IMMEDIATE) and wait through
 * a busy timeout, so several processes may ingest at once. A process opens the file once:
 * closing a second descriptor of it would drop the process's POSIX locks.
 *
 * Calling sequence
 *   outbox_open(&ob, path, journal, OUTBOX_CREATE, &err);
 *   outbox_begin(ob, &err); outbox_insert(ob, &row, &inserted, &err) …; outbox_commit(ob, &err);
 *   outbox_close(ob);
 *
 * Error handling
 * Every call returns 0 or D2F_EDB / D2F_ESCHEMA / D2F_ENOMEM with err naming the file and
 * SQLite's message. After a failed insert or commit the caller rolls back: nothing of the
 * transaction is kept.
 */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "config.h"
#include "d2f.h"

/* How long a writer waits for another's lock before failing. */
#define OUTBOX_BUSY_TIMEOUT_MS 60000

struct outbox;

enum outbox_open_mode {
    OUTBOX_CREATE,   /* create the file when it does not exist */
    OUTBOX_EXISTING, /* fail when it does not exist */
    OUTBOX_READONLY, /* an existing file, opened read-only: nothing of it changes */
};

/* One record to keep. Strings may be NULL where the column allows it. */
struct outbox_row {
    const char *stream_arn;
    const char *seq;
    const char *seq_key; /* NULL when seq is not valid: then raw_sha256 dedupes */
    const char *raw_sha256;
    const char *event_id;
    const char *event_name;
    const char *table;
    const char *document; /* NULL while the key schema is unknown */
    const char *op;       /* "update", "delete", "skip" or NULL (dead) */
    int64_t created_at;   /* ms; 0 when unknown (stored as NULL) */
    int64_t arrived_at;   /* ms */
    const char *state;    /* "pending", "committed" or "dead" */
    const char *last_error;
    const char *raw; /* the record's JSON as received */
    size_t raw_len;
    const char *kind; /* "stream" (NULL means it too) or "snapshot" (a backfill's read) */
};

/* Opens (and creates, or migrates forward) the outbox at path. *out is freed with
 * outbox_close. */
int outbox_open(struct outbox **out, const char *path, enum config_journal journal,
                enum outbox_open_mode mode, struct d2f_err *err) D2F_WUR;

/* How long the health check may take (outbox_check): the cold start waits for it. */
#define OUTBOX_CHECK_MS 2000

/* Checks the file's health: PRAGMA quick_check, then integrity_check (which also finds an index
 * that misses a row), both within budget_ms (a progress handler stops them then: a check that
 * could not finish counts as passed, *complete is 0). D2F_EDAMAGE with err saying what is
 * wrong and what to do (restore the backup, then replay); D2F_EDB when it could not run. */
int outbox_check(struct outbox *ob, int64_t budget_ms, int *complete, struct d2f_err *err) D2F_WUR;

/* Closes the database; accepts NULL. */
void outbox_close(struct outbox *ob);

/* "wal" or "delete": the journal mode in force. Static string. */
const char *outbox_journal(const struct outbox *ob);

/* The file's path. Valid while ob is open. */
const char *outbox_path(const struct outbox *ob);

/* The SQLite handle, for read-only queries (status). Owned by ob. */
sqlite3 *outbox_db(struct outbox *ob);

/* From now on, waits for another's lock no later than until_ms (d2f_now_ms' clock): an
 * invocation must not wait past its deadline. 0 restores the busy timeout,
 * OUTBOX_BUSY_TIMEOUT_MS. */
void outbox_wait_until(struct outbox *ob, int64_t until_ms);

/* Milliseconds spent waiting for others' locks since the outbox was opened. */
int64_t outbox_lock_waited_ms(const struct outbox *ob);

/* Keeps the file's read lock from now until outbox_read_release or the next outbox_begin, so
 * that a run of reads (the drain's rows and fences) locks the file once instead of at every
 * statement: on EFS each lock and unlock is a round trip. No-op when already held. Hold it only
 * while reading: other writers cannot commit meanwhile. */
int outbox_read_hold(struct outbox *ob, struct d2f_err *err) D2F_WUR;
void outbox_read_release(struct outbox *ob);

/* Starts a write transaction, waiting for other writers up to the busy timeout; D2F_EIO when
 * the file was moved (OUTBOX_MOVED_KEY). Ends a read hold first: a connection that holds a read
 * lock is refused a write lock at once, without waiting, whenever another process writes. */
int outbox_begin(struct outbox *ob, struct d2f_err *err) D2F_WUR;

/* The meta key 'ddb2fs repartition' sets in a file it moved: from then on outbox_begin refuses
 * it (D2F_EIO) and outbox_moved says so. */
#define OUTBOX_MOVED_KEY "moved_at"

/* 1 once a transaction of ob found its file moved: open DDB2FS_OUTBOX again. */
int outbox_moved(const struct outbox *ob);

/* Copies every row of from into the files to[0..n-1], in transactions the caller holds on
 * them: each record (all its columns, in arrival order, with new ids) into to[part_of(its raw
 * JSON, n)], every other table but the lease into each file whole (existing rows kept). Counts
 * the records in *copied. */
int outbox_copy_into(struct outbox *from, struct outbox *const *to, size_t n,
                     size_t (*part_of)(const char *raw, size_t len, size_t n), int64_t *copied,
                     struct d2f_err *err) D2F_WUR;

/* Commits the transaction: once this returns 0 the rows are durable. */
int outbox_commit(struct outbox *ob, struct d2f_err *err) D2F_WUR;

/* Rolls the transaction back, if one is open. */
void outbox_rollback(struct outbox *ob);

/* The id of the last row outbox_insert added. */
int64_t outbox_last_id(const struct outbox *ob);

/* Inserts row unless its dedupe key is present; *inserted tells which. In a transaction. */
int outbox_insert(struct outbox *ob, const struct outbox_row *row, int *inserted,
                  struct d2f_err *err) D2F_WUR;

/* Looks up the recorded key schema of table. *found is 0 when none; *pk / *sk (sk NULL for
 * a partition key alone) stay valid while ob is open and until the next outbox_rollback, which
 * forgets what the transaction may have read or recorded. */
int outbox_keys_get(struct outbox *ob, const char *table, const char **pk, const char **sk,
                    int *found, struct d2f_err *err) D2F_WUR;

/* Records table's key schema if none is recorded yet; then reads back what is recorded into
 * *pk / *sk (valid while ob is open). In a transaction. */
int outbox_keys_put(struct outbox *ob, const char *table, const char *pk, const char *sk,
                    const char *source, const char **rpk, const char **rsk,
                    struct d2f_err *err) D2F_WUR;

/* Whether the key schema of table may be asked of DynamoDB now: not when an answer failed
 * within the last minute (outbox_keys_asked). */
int outbox_keys_may_ask(struct outbox *ob, const char *table);

/* Notes that asking for table's key schema failed now. */
void outbox_keys_asked(struct outbox *ob, const char *table);

/* Refuses a DDB2FS_KEYS entry that contradicts the key schema recorded for its table. */
int outbox_check_keys(struct outbox *ob, const struct config *cfg, struct d2f_err *err) D2F_WUR;

/* A pending row, for the drain: enough to order and coalesce it. */
struct outbox_pending {
    int64_t id;     /* arrival order */
    char *document; /* "collection/id", NULL while the key schema is unknown */
    char *table;    /* table name, NULL when unknown */
};

/* Reads up to limit pending rows with id > after_id, in arrival order, into *rows (free with
 * outbox_pending_free). */
int outbox_pending_window(struct outbox *ob, int64_t after_id, size_t limit,
                          struct outbox_pending **rows, size_t *n, struct d2f_err *err) D2F_WUR;

/* Reads one row's operation ("update", "delete" or NULL) and raw JSON (*raw, *len); the caller
 * frees *op and *raw. */
int outbox_record(struct outbox *ob, int64_t id, char **op, char **raw, size_t *len,
                  struct d2f_err *err) D2F_WUR;

/* Steps st (a prepared query whose columns are id, document, table_name) for up to limit rows
 * into *rows (free with outbox_pending_free). st is not finalized. */
int outbox_select_rows(struct outbox *ob, sqlite3_stmt *st, size_t limit,
                       struct outbox_pending **rows, size_t *n, struct d2f_err *err) D2F_WUR;

/* Frees rows read by outbox_pending_window; accepts NULL. */
void outbox_pending_free(struct outbox_pending *rows, size_t n);

/* Where a record stands (record_state.state): a record is made pending, and marked once. */
enum outbox_mark_as { OUTBOX_COMMITTED, OUTBOX_DEAD };

/* Marks rows committed (error NULL) or dead (error says why), with attempts + 1, in one
 * transaction. */
int outbox_mark(struct outbox *ob, const int64_t *ids, size_t n, enum outbox_mark_as state,
                const char *error, struct d2f_err *err) D2F_WUR;

/* Notes a failed attempt on pending rows: attempts + 1 and last_error, in one transaction. */
int outbox_note_failure(struct outbox *ob, const int64_t *ids, size_t n, const char *error,
                        struct d2f_err *err) D2F_WUR;

/* Sets the document of a row whose key schema became known, and clears its last error, in one
 * transaction. */
int outbox_set_document(struct outbox *ob, int64_t id, const char *document,
                        struct d2f_err *err) D2F_WUR;

/* How long ago (ms) the oldest pending row arrived; 0 when nothing is pending. */
int outbox_oldest_pending_age(struct outbox *ob, int64_t *age_ms, struct d2f_err *err) D2F_WUR;

/* Pending rows in the outbox. */
int outbox_pending_count(struct outbox *ob, int64_t *n, struct d2f_err *err) D2F_WUR;

/* Pending rows still waiting for their table's key schema (no document yet). */
int outbox_unresolved_count(struct outbox *ob, int64_t *n, struct d2f_err *err) D2F_WUR;

/* Sets a row's operation ("update", "delete", NULL) and document anew, and its last_error, in
 * one transaction (replay of a dead record planned again). */
int outbox_replan(struct outbox *ob, int64_t id, const char *op, const char *document,
                  const char *error, struct d2f_err *err) D2F_WUR;

/* Deletes committed rows older than cutoff_ms (by committed_at), except the latest state of
 * each document (its last row neither dead nor a skipped TTL expiry), in transactions of a
 * few hundred rows, until done or deadline_ms; then gives freed pages back to the file system
 * (new outboxes use incremental auto-vacuum). *pruned counts the rows deleted. */
int outbox_prune(struct outbox *ob, int64_t cutoff_ms, int64_t deadline_ms, int64_t *pruned,
                 struct d2f_err *err) D2F_WUR;

/* Records cfg's settings in force (config_describe: no secrets) in the settings table, touching
 * only those that changed (nothing is written when none did). */
int outbox_settings(struct outbox *ob, const struct config *cfg, struct d2f_err *err) D2F_WUR;

/* Takes the drain lease for owner until until_ms when it is free, expired, already owner's,
 * or held by an owner that gone(holder) says is gone (may be NULL); *taken says whether it
 * was; when not, holder (cap bytes) names who has it. */
int outbox_lease_take(struct outbox *ob, const char *owner, int64_t until_ms,
                      int (*gone)(const char *holder), int *taken, char *holder, size_t cap,
                      struct d2f_err *err) D2F_WUR;

/* Gives the lease back if owner holds it. */
int outbox_lease_release(struct outbox *ob, const char *owner, struct d2f_err *err) D2F_WUR;

/* A named integer kept in the outbox; *found is 0 when it was never set. */
int outbox_meta_get(struct outbox *ob, const char *key, int64_t *value, int *found,
                    struct d2f_err *err) D2F_WUR;

/* Sets a named integer. */
int outbox_meta_set(struct outbox *ob, const char *key, int64_t value, struct d2f_err *err) D2F_WUR;

#endif
