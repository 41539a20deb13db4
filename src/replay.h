/*
 * replay.h: Firestore rebuilt or re-sent from the outbox, and dead records retried.
 *
 * DESIGN
 * The records a replay considers are chosen by filters (table, document, a range of sequence
 * numbers or change times). Then, with the drain's machinery (one write per document, commits
 * in flight at once, retries, bisection, ramp-up):
 *   rebuild  writes each chosen document's latest state (its last record that is not dead);
 *            documents whose latest state is a deletion stay absent: one write per live
 *            document, for a wiped or new database;
 *   resend   the same, deletions included, to repair documents changed in a range;
 *   dead     retries dead records after a fix: a document's dead records newer than anything
 *            else of it are written (then committed, or dead again with the new reason); dead
 *            records with a newer live record are superseded (committed, nothing sent); those
 *            behind a pending record of their document wait for the drain.
 * Against the drain's own target (the configured endpoint, project and database) a replay holds
 * the drain lease, so no drain writes meanwhile, and never writes a document an older state
 * than its newest record: with --until, that newest state is written instead. Another target
 * (--project, --database, --emulator) gets exactly the chosen range, without the lease, while
 * the live drain goes on. Rebuild and resend leave the records' states alone.
 */
#ifndef REPLAY_H
#define REPLAY_H

#include <stdio.h>

#include "config.h"
#include "d2f.h"
#include "drain.h"
#include "http.h"
#include "outbox.h"

enum replay_mode { REPLAY_REBUILD, REPLAY_RESEND, REPLAY_DEAD };

struct replay_opts {
    enum replay_mode mode;
    const char *table;    /* only this table's records, or NULL */
    const char *doc;      /* only this document ("collection/id"), or NULL */
    const char *since;    /* from this sequence number (digits) or time (ISO 8601), or NULL */
    const char *until;    /* up to (inclusive), the same forms, or NULL */
    const char *project;  /* another target project, or NULL */
    const char *database; /* another target database, or NULL */
    const char *emulator; /* an emulator's host:port as the target, or NULL */
    int dry_run;          /* 1: print the writes as JSON lines on out; touch and send nothing */
    long seconds;         /* time budget */
};

struct replay_result {
    size_t documents;      /* documents chosen */
    size_t written;        /* writes landed (or printed) */
    size_t failed;         /* writes refused for good */
    size_t superseded;     /* dead records with a newer live record: marked committed */
    size_t waiting;        /* dead records behind a pending record of their document */
    size_t still_dead;     /* dead records that still cannot be planned */
    int live;              /* 1 when the target is the drain's own */
    struct drain_stats st; /* commits, retries, … summed over the run */
};

/*
 * Runs a replay of the outbox ob (opened read-only for a dry run) with cfg's settings.
 * Progress goes to progress (a bar on a terminal, periodic lines otherwise); dry-run writes to
 * out. Returns 0 when everything chosen was written; D2F_EUSAGE for options that contradict;
 * otherwise why it stopped.
 */
int replay_run(const struct replay_opts *o, const struct config *cfg, struct outbox *ob,
               struct http *http, FILE *out, FILE *progress, struct replay_result *res,
               struct d2f_err *err) D2F_WUR;

/* replay_run over the n files of a partitioned outbox, one after the other; res sums them. */
int replay_run_set(const struct replay_opts *o, const struct config *cfg, struct outbox *const *obs,
                   size_t n, struct http *http, FILE *out, FILE *progress,
                   struct replay_result *res, struct d2f_err *err) D2F_WUR;

/* Logs a replay's figures as one line. */
void replay_log(const struct replay_opts *o, const struct replay_result *res, const char *stopped);

#endif
