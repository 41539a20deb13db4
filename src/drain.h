/*
 * drain.h: pending outbox rows become Firestore documents, in order, exactly once in effect.
 *
 * DESIGN
 * One drainer at a time holds the outbox's lease, until its deadline and a margin, so commits
 * leave in order. It reads pending rows in arrival order, a window at a time. Within a window
 * only the last row of each document matters (every write is a whole image), so the window
 * collapses to one write per document, and the rows it supersedes are marked with it. The
 * writes go out in commits bounded by a write count and a byte size; a window's commits touch
 * disjoint documents, so several are in flight at once, while the next writes are built.
 * The rows of a wave's landed commits are marked committed in one SQLite transaction, while
 * the next wave is in flight: a commit's rows are never marked apart, and a crash before the
 * mark only sends the same images again.
 *
 * Errors are told apart by the google.rpc.Status in the answer, not the HTTP code alone:
 * RESOURCE_EXHAUSTED, UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED, INTERNAL and no answer at all
 * are retried with exponential backoff and jitter, never past the deadline; UNAUTHENTICATED
 * renews the token once; INVALID_ARGUMENT on a commit of several writes is bisected until the
 * one bad write is found, which becomes dead with the server's message while the rest go
 * through; anything else (PERMISSION_DENIED, NOT_FOUND, …) stops the drain with rows pending.
 *
 * A window whose commits did not all land is the last one of the run: a later window could
 * otherwise write a document's newer state before an older one is re-sent. A crash at any
 * point loses nothing: an unmarked commit is sent again with the same whole images, which
 * leaves Firestore where the outbox says. Firestore's 500/50/5 ramp-up (500 writes/s, +50%
 * every 5 minutes, counted from the first drain of the outbox) paces the writes unless
 * switched off.
 *
 * Calling sequence
 *   drain_run(ob, cfg, fs, deadline_ms, &stats, &err);   0: nothing pending is left
 */
#ifndef DRAIN_H
#define DRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "d2f.h"
#include "firestore.h"
#include "outbox.h"
#include "record.h"

/* Pending rows read (id and document only) and coalesced at a time. */
#define DRAIN_WINDOW 250000

struct drain_stats {
    size_t rows_committed;     /* rows marked committed (written or superseded) */
    size_t rows_dead;          /* rows marked dead */
    size_t writes;             /* writes that Firestore accepted */
    size_t commits;            /* commit requests sent, retries and halves included */
    size_t retries;            /* commits sent again after a transient error */
    size_t bisections;         /* commits split to find a refused write */
    size_t refreshes;          /* commits refused on a precondition, sent again after a batchGet */
    size_t windows;            /* windows read */
    int64_t pending_left;      /* rows still pending at the end */
    int64_t snapshots_waiting; /* pending snapshots, and rows of documents a late record holds
                                  (backfill.h), waiting for the stream to catch up */
    int64_t elapsed_ms;        /* how long the run took */
};

/*
 * Drains ob into fs until nothing is pending or deadline_ms (epoch ms) is near. Returns 0 when
 * no row is left pending; otherwise a D2F_E* code with err saying why the drain stopped (the
 * lease is held by another drainer, Firestore refused, time ran out, …). stats is filled
 * either way.
 */
int drain_run(struct outbox *ob, const struct config *cfg, struct firestore *fs,
              int64_t deadline_ms, struct drain_stats *stats, struct d2f_err *err) D2F_WUR;

/*
 * drain_run over the n files of a partitioned outbox (partition.h): each file has its own
 * lease, so drains at once share the files; one run gives each file with rows pending an even
 * slice of the time, then goes back to those with rows left; with most > 0 it drains no more
 * than most files (a stream batch's invocation drains one, starting from a file its pid
 * chooses, so that invocations at once drain apart). Firestore's ramp-up is shared among the
 * files. Returns 0 when no row is left pending in the files it looked at; err names the
 * partition that stopped.
 */
int drain_run_set(struct outbox *const *obs, size_t n, size_t most, const struct config *cfg,
                  struct firestore *fs, int64_t deadline_ms, struct drain_stats *stats,
                  struct d2f_err *err) D2F_WUR;

/* Adds one's counts (rows, writes, commits, retries, …) to sum's. */
void drain_stats_add(struct drain_stats *sum, const struct drain_stats *one);

/* drain_prune over each file of a partitioned outbox. */
void drain_prune_set(struct outbox *const *obs, size_t n, const struct config *cfg,
                     int64_t deadline_ms);

/*
 * Plans kept row id again, with today's settings and the table's key schema (recorded in the
 * outbox; asked for and recorded only when may_record), into plan as record_plan does, with
 * the Write when docs_prefix is given. *parsed is 0 when the kept record is not JSON (plan is
 * then untouched). Returns 0, or an outbox error or D2F_ENOMEM.
 */
int drain_plan_row(struct outbox *ob, const struct config *cfg, int64_t id, int may_record,
                   const char *docs_prefix, struct record_plan *plan, int *parsed,
                   struct d2f_err *err) D2F_WUR;

/* How drain_send treats the rows it is given. */
struct drain_how {
    int mark;          /* 1: rows become committed or dead, as in the drain; 0: states stay */
    int64_t ramp_from; /* when Firestore's ramp-up began (ms), when cfg->ramp */
    FILE *dry_run;     /* not NULL: print each write there as a JSON line; send nothing */
    void (*progress)(void *ctx, const struct drain_stats *st); /* as writes land, or NULL */
    void *ctx;
};

/*
 * Sends rows chosen by the caller (replay) with the drain's machinery: one write per document
 * (its last row given), commits in flight at once, retries, bisection, pacing. The caller
 * holds the lease when the target is the drain's own. Returns 0 when every write landed (or
 * was refused for good: counted in rows_dead, and marked dead only when how->mark).
 */
int drain_send(struct outbox *ob, const struct config *cfg, struct firestore *fs,
               struct outbox_pending *rows, size_t n, const struct drain_how *how,
               int64_t deadline_ms, struct drain_stats *stats, struct d2f_err *err) D2F_WUR;

/* Prunes committed rows older than DDB2FS_RETENTION (keeping each document's latest state)
 * until done or deadline_ms, and logs it; a failure is logged, and the next run goes on. */
void drain_prune(struct outbox *ob, const struct config *cfg, int64_t deadline_ms);

/* Logs a run's figures as one line: "drained", or "drain stopped with records pending" and
 * why (stopped, when not NULL). */
void drain_log(const struct drain_stats *stats, const char *stopped);

#endif
