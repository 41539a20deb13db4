/*
 * backfill.h: the items a table held before its stream was mapped reach Firestore through the
 * outbox, without ever racing the stream.
 *
 * DESIGN
 * A job (one table) is read by the Scan module, in segments; each page becomes snapshot rows
 * (kind 'snapshot', the item as a whole image, the page's read window) in ONE transaction with
 * its segment's position, so that a kill at any moment loses no page and repeats none. The
 * stream always wins: a snapshot of a document is sent only when the outbox holds no stream
 * record of that document (any operation, any state), and only once the stream has caught up
 * past its read: for the settle time (DDB2FS_BACKFILL_SETTLE), every stream record of the table
 * that arrived was created at or after the end of the page's read window plus a margin
 * (DDB2FS_BACKFILL_MARGIN), or none arrived. After a snapshot is sent, a stream record created
 * before the page's read began (minus the margin) is contained in it, and is never sent. Of
 * several snapshots of one document, the latest read wins. A stream record that arrives after a
 * sent snapshot, of a change made within the margin of its read, is held while it is its
 * document's latest and younger than the settle time: a record of a later change, on its way
 * in stream order, supersedes it (so a late stream never takes a document back), and one of a
 * change after the read is sent once it is old enough. backfill_gate applies these rules
 * (SQL, all in one place in backfill.c) before the drain reads its window.
 *
 * Calling sequence
 *   backfill_start(ob, cfg, &opts, &job, &err);        DescribeTable, refusals, the job
 *   backfill_run(ob, cfg, job, deadline, progress, ctx, &st, &err);   0: every segment done
 *   drain: backfill_gate(ob, cfg, &waiting, &err) before each pass
 */
#ifndef BACKFILL_H
#define BACKFILL_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "d2f.h"
#include "outbox.h"

struct backfill_opts {
    const char *table;    /* the table to load */
    int segments;         /* Scan's TotalSegments (default 4) */
    double rate;          /* read capacity units per second, required: more than 0 */
    int consistent;       /* 1: ConsistentRead */
    int stream_is_mapped; /* 1: the operator confirms that the stream is mapped to ddb2fs */
    long limit;           /* items per page at most; 0: 1 MB pages */
};

/* A run's figures, and its job's totals. */
struct backfill_stats {
    int64_t job;           /* the job run (the last one, when several were) */
    int64_t items;         /* items kept by this run */
    int64_t pages;         /* pages kept by this run */
    double read_units;     /* read units this run's pages used */
    unsigned long retries; /* throttled or failed requests retried */
    int64_t elapsed_ms;    /* how long the run scanned */
    int64_t total_items;   /* the job's items, every run */
    int64_t total_pages;
    double total_units;
    int segments, segments_done;
    double item_count; /* DescribeTable's ItemCount at the job's start */
    int done;          /* 1: every segment of the job is finished */
    int busy;          /* 1: another runner scans the job now; this one left it alone */
};

/*
 * Records a backfill job for opts->table, after DescribeTable: refuses (D2F_EUSAGE, nothing
 * written) a table without a stream, a stream that does not carry new images, an outbox that
 * has received no record of the stream (unless opts->stream_is_mapped), or a table with a job
 * already scanning. *job receives its id.
 */
int backfill_start(struct outbox *ob, const struct config *cfg, const struct backfill_opts *opts,
                   int64_t *job, struct d2f_err *err) D2F_WUR;

/*
 * Scans job (0: every job still scanning, oldest first) into the outbox until every segment is
 * done or deadline_ms (epoch ms). Returns 0 when the job(s) finished; D2F_EIO when the time ran
 * out (it goes on at the next run); another code when DynamoDB or the outbox failed. progress,
 * when not NULL, is called after every page.
 */
int backfill_run(struct outbox *ob, const struct config *cfg, int64_t job, int64_t deadline_ms,
                 void (*progress)(void *ctx, const struct backfill_stats *st), void *ctx,
                 struct backfill_stats *st, struct d2f_err *err) D2F_WUR;

/* Cancels the job of table still scanning; its snapshots already kept stay and follow the
 * rules. D2F_EUSAGE when there is none. */
int backfill_cancel(struct outbox *ob, const char *table, int64_t *job,
                    struct d2f_err *err) D2F_WUR;

/* Decides the snapshots before the drain reads its window (in one transaction): superseded,
 * sent, ready; stream records a sent snapshot contains are superseded; documents whose latest
 * record cannot yet be ordered against a sent snapshot's read are held (temp.held, which the
 * drain's window leaves out). *waiting counts the pending snapshots that still wait for the
 * stream and the pending rows of held documents. */
int backfill_gate(struct outbox *ob, const struct config *cfg, int64_t *waiting,
                  struct d2f_err *err) D2F_WUR;

/* Pending snapshots that wait for the stream and pending rows of held documents (the gate's
 * count, read again: pages kept since the last gate wait too). */
int backfill_waiting(struct outbox *ob, int64_t *waiting, struct d2f_err *err) D2F_WUR;

/* 1 when pruning must wait: a job is scanning, or snapshots are undecided. */
int backfill_holds_prune(struct outbox *ob);

/* Adds "backfills", one object per job, to status s. */
int backfill_status(struct outbox *ob, cJSON *s, struct d2f_err *err) D2F_WUR;

/* Reads the handler's backfill request {"ddb2fs":"backfill","table":"T","segments":N,
 * "rate":R,"consistent":bool,"stream_is_mapped":bool} into opts (pointing into json).
 * D2F_EINPUT naming the member when one is wrong. */
int backfill_opts_from_json(const cJSON *json, struct backfill_opts *opts,
                            struct d2f_err *err) D2F_WUR;

#endif
