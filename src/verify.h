/*
 * verify.h: is Firestore an exact copy of the table? Every item, read by the Scan module, is
 * compared with its document by value, and the collection is listed for documents no item has.
 *
 * DESIGN
 * The table is read with the parallel, paced Scan of the backfill (src/scan.c). Each item is
 * planned exactly as the drain plans an INSERT of it (record_plan: the document's name and its
 * fields under the configured mapping), the documents of a page are read with batchGet, and the
 * two Firestore value trees are compared: types strict (an integerValue is not a doubleValue),
 * every field path that differs reported with the two types, the values only when asked. Then
 * the collection is listed (pageSize, pageToken) and a document whose name no item gave is
 * extra. Only the names seen are kept in memory, not the items.
 *
 * A difference may be a change still on its way, so none is reported at once: after
 * recheck_after, the item is read again (GetItem, ConsistentRead) and its document again; a
 * difference that is gone is forgotten, and one whose item changed meanwhile, or whose
 * document the outbox (when reachable) still has pending rows for, is looked at again later;
 * one still moving at the end is "still changing", never a difference.
 *
 * Repair goes through the outbox, never straight to Firestore: each difference that persists
 * becomes a snapshot row of the item's image read by the recheck (an extra document: a
 * deletion), in one transaction that first makes sure the stream has nothing to say about the
 * document (no pending row, no stream record arrived since the read began). Stream records
 * that arrive later are sent after it, except those of changes made before the read
 * (created before it minus DDB2FS_BACKFILL_MARGIN: the backfill's rule), which it contains;
 * so a repair never writes an older state than one the stream delivers. The drain sends the rows;
 * the repaired documents are then checked again.
 *
 * Calling sequence
 *   verify_run(cfg, &opts, &report, &err);     0: the check ran (report says what it found)
 *   verify_report_json(&report) / verify_print_text(&report, out); verify_log(&report);
 *   verify_report_release(&report);
 */
#ifndef VERIFY_H
#define VERIFY_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "d2f.h"

/* Differences kept in the report, at most (the counts go on). */
#define VERIFY_MAX_LISTED 1000
/* Field paths listed per document, at most. */
#define VERIFY_MAX_PATHS 100

struct verify_report;
struct outbox;

struct verify_opts {
    const char *table;        /* the table */
    const char *collection;   /* its collection; NULL: DDB2FS_COLLECTIONS, else the table's name */
    int segments;             /* Scan's TotalSegments (default 8) */
    double rate;              /* read capacity units per second; 0: as fast as DynamoDB answers */
    double sample;            /* percent of the segments to check, over 0 and at most 100 */
    int64_t recheck_after_ms; /* how long a difference may be a change on its way (60 s) */
    int repair;               /* 1: repair through the outbox */
    int show_values;          /* 1: the report shows the two values of a field that differs */
    int64_t deadline_ms;      /* epoch ms by which the run ends (a shorter sample); 0: none */
    struct outbox *const *outboxes; /* the caller's open outbox (its files), left open; */
    size_t noutboxes;               /* NULL: DDB2FS_OUTBOX's, opened and closed by the run */
    void (*progress)(void *ctx, const struct verify_report *r); /* after each page, or NULL */
    void *ctx;
};

/* What a run found. */
struct verify_report {
    char table[256];
    char collection[1600];
    int64_t items;        /* items read */
    int64_t documents;    /* documents read (batchGet found, and extras listed) */
    int64_t equal;        /* items whose document is equal */
    int64_t missing;      /* items without a document */
    int64_t different;    /* items whose document differs */
    int64_t extra;        /* documents no item has */
    int64_t changing;     /* differences still moving when the run ended: not reported as such */
    int64_t cleared;      /* differences a recheck cleared (changes that were on their way) */
    int64_t unmapped;     /* items the mapping refuses (their records are dead, see status) */
    int64_t repaired;     /* differences repaired through the outbox and found equal after */
    int64_t not_repaired; /* differences --repair could not fix (still differing after it) */
    double read_units;    /* Scan's read capacity units */
    double item_count;    /* DescribeTable's ItemCount (approximate), for the progress */
    int segments;         /* TotalSegments */
    int segments_read;    /* segments checked (all of them, or a sample) */
    int complete;         /* 1: every chosen segment was read and the collection listed */
    int extras_checked;   /* 1: the collection was listed (not in a sample) */
    int outbox;           /* 1: the outbox was reachable and consulted */
    int64_t elapsed_ms;
    cJSON *listed; /* the differences: [{document, kind, fields:[{path,item,document}]}] */
};

/* Runs the check of opts->table. Returns 0 when it ran to its end (or opts->deadline_ms):
 * the report tells what it found. D2F_EUSAGE / D2F_ECONFIG for a bad option or setting,
 * D2F_EREMOTE / D2F_EAUTH when DynamoDB or Firestore refuses (a table that does not exist),
 * D2F_EUNREACHABLE when one does not answer; nothing was written then. The caller releases r. */
int verify_run(const struct config *cfg, const struct verify_opts *opts, struct verify_report *r,
               struct d2f_err *err) D2F_WUR;

/* Frees what a report holds; accepts a zeroed one. */
void verify_report_release(struct verify_report *r);

/* Differences in the report: missing, different and extra (still changing is not one). */
int64_t verify_differences(const struct verify_report *r);

/* The report as a new JSON object (the caller frees it); NULL when out of memory. */
cJSON *verify_report_json(const struct verify_report *r);

/* The report as text, for a person. */
void verify_print_text(const struct verify_report *r, FILE *out);

/* One log line for a run, and its VerifyDifferences metric (CloudWatch's embedded metric
 * format, dimensions FunctionName and Table) on metrics; function names the Lambda function (may be
 * NULL). */
void verify_log(const struct verify_report *r, const char *function, FILE *metrics);

/*
 * Compares two Firestore "fields" maps (want: the item's, got: the document's; either may be
 * NULL, meaning none) by value, types strict. Appends one {"path","item","document"} object
 * per field path that differs to out (when not NULL; at most VERIFY_MAX_PATHS; "item" and
 * "document" are the value types, "absent" where a side has none; with show_values, "item_value"
 * and "document_value" too). Returns the number of paths that differ, or -1 when out of memory.
 */
long verify_compare(const cJSON *want, const cJSON *got, int show_values, cJSON *out);

/* Reads the function's request {"ddb2fs":"verify","table":T,"segments":N,"sample":P,
 * "rate":R,"recheck_after":S,"collection":C} into opts (pointing into json). D2F_EINPUT
 * naming the member when one is wrong. */
int verify_opts_from_json(const cJSON *json, struct verify_opts *opts, struct d2f_err *err) D2F_WUR;

#endif
