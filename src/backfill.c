/* backfill.c: jobs, their segments' progress, and the rules that keep snapshots behind the
 * stream. */
#include "backfill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddb.h"
#include "drain.h"
#include "event.h"
#include "http.h"
#include "ingest.h"
#include "json.h"
#include "lease.h"
#include "log.h"
#include "scan.h"

/* Pages read at once (one per segment) and kept in memory at most. */
#define PARALLEL_PAGES 4
/* A runner's claim on a job lasts this long past its last page, unless its process is gone. */
#define CLAIM_MS 30000

static int db_err(struct outbox *ob, struct d2f_err *err, const char *what)
{
    return d2f_errf(err, D2F_EDB, "cannot %s in outbox '%s': %s", what, outbox_path(ob),
                    sqlite3_errmsg(outbox_db(ob)));
}

/* Prepares sql; 0 or the outbox error naming what. */
static int prepare(struct outbox *ob, const char *sql, sqlite3_stmt **st, const char *what,
                   struct d2f_err *err)
{
    if (sqlite3_prepare_v2(outbox_db(ob), sql, -1, st, NULL) != SQLITE_OK)
        return db_err(ob, err, what);
    return 0;
}

/* Steps st to its end; 0 or the outbox error. st is finalized. */
static int run_stmt(struct outbox *ob, sqlite3_stmt *st, const char *what, struct d2f_err *err)
{
    int step;

    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : db_err(ob, err, what);
}

/* One integer from sql with ?1 bound to text (when not NULL); *value stays when no row. */
static int one_int(struct outbox *ob, const char *sql, const char *text, int64_t *value,
                   struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(ob, sql, &st, "read the backfill", err), step;

    if (rc)
        return rc;
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : db_err(ob, err, "read the backfill");
}

/* ---- starting, cancelling ---------------------------------------------------------------- */

int backfill_start(struct outbox *ob, const struct config *cfg, const struct backfill_opts *o,
                   int64_t *job, struct d2f_err *err)
{
    struct ddb_table t;
    sqlite3_stmt *st = NULL;
    const char *rpk, *rsk;
    int64_t seen = 0, running = 0;
    int rc;

    *job = 0;
    buf_init(&t.pk, 256);
    buf_init(&t.sk, 256);
    if (o->segments < 1 || o->segments > SCAN_SEGMENTS_MAX) {
        rc = d2f_errf(err, D2F_EUSAGE, "--segments: %d is not 1 to %d", o->segments,
                      SCAN_SEGMENTS_MAX);
        goto out;
    }
    if (!(o->rate > 0) || !isfinite(o->rate)) {
        rc = d2f_errf(err, D2F_EUSAGE,
                      "--rate: give the read capacity units per second the backfill may use "
                      "(on-demand tables too)");
        goto out;
    }
    if ((rc = ddb_describe(cfg, o->table, &t, err)) != 0)
        goto out;
    if (!t.stream_enabled || !t.stream_arn[0]) {
        rc = d2f_errf(err, D2F_EUSAGE,
                      "table '%s' has no stream: enable one with NEW_IMAGE or NEW_AND_OLD_IMAGES "
                      "and map it to ddb2fs first, or the changes made during the backfill are "
                      "lost",
                      o->table);
        goto out;
    }
    if (strcmp(t.view_type, "NEW_IMAGE") != 0 && strcmp(t.view_type, "NEW_AND_OLD_IMAGES") != 0) {
        rc = d2f_errf(err, D2F_EUSAGE,
                      "the stream of table '%s' is %s: it must carry new images (NEW_IMAGE or "
                      "NEW_AND_OLD_IMAGES)",
                      o->table, t.view_type[0] ? t.view_type : "of no view type");
        goto out;
    }
    if ((rc = one_int(ob,
                      "SELECT 1 FROM record_info WHERE stream_arn = ?1 AND seq_key IS NOT NULL "
                      "LIMIT 1",
                      t.stream_arn, &seen, err)) != 0)
        goto out;
    if (!seen && !o->stream_is_mapped) {
        rc = d2f_errf(err, D2F_EUSAGE,
                      "the outbox has received no record of stream '%s': map the stream to "
                      "ddb2fs first (a change made during the backfill would be lost), or, if "
                      "it is mapped and the table is quiet, say so with --stream-is-mapped",
                      t.stream_arn);
        goto out;
    }
    if ((rc = outbox_begin(ob, err)) != 0)
        goto out;
    if ((rc =
             one_int(ob, "SELECT id FROM backfill_job WHERE table_name = ?1 AND state = 'scanning'",
                     o->table, &running, err)) != 0)
        goto fail;
    if (running) {
        rc = d2f_errf(err, D2F_EUSAGE,
                      "a backfill of table '%s' is already scanning (job %lld): see 'ddb2fs "
                      "backfill --status', or '--cancel' it",
                      o->table, (long long)running);
        goto fail;
    }
    if ((rc = outbox_keys_put(ob, o->table, t.pk.data, t.sk.len ? t.sk.data : NULL, "DescribeTable",
                              &rpk, &rsk, err)) != 0)
        goto fail;
    if ((rc = prepare(ob,
                      "INSERT INTO backfill_job (table_name, stream_arn, partition_key, sort_key, "
                      "segments, rate, consistent, item_count, state, created_at, page_limit) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'scanning', ?9, ?10)",
                      &st, "record the backfill", err)) != 0)
        goto fail;
    sqlite3_bind_text(st, 1, o->table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t.stream_arn, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, rpk, -1, SQLITE_STATIC);
    if (rsk)
        sqlite3_bind_text(st, 4, rsk, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, o->segments);
    sqlite3_bind_double(st, 6, o->rate);
    sqlite3_bind_int(st, 7, o->consistent ? 1 : 0);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)t.item_count);
    sqlite3_bind_int64(st, 9, d2f_now_ms());
    sqlite3_bind_int64(st, 10, o->limit);
    if ((rc = run_stmt(ob, st, "record the backfill", err)) != 0)
        goto fail;
    *job = sqlite3_last_insert_rowid(outbox_db(ob));
    if ((rc = prepare(ob,
                      "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
                      "WHERE i + 1 < ?2) "
                      "INSERT INTO backfill_segment (job_id, segment) SELECT ?1, i FROM n",
                      &st, "record the backfill's segments", err)) != 0)
        goto fail;
    sqlite3_bind_int64(st, 1, *job);
    sqlite3_bind_int(st, 2, o->segments);
    if ((rc = run_stmt(ob, st, "record the backfill's segments", err)) != 0 ||
        (rc = outbox_commit(ob, err)) != 0)
        goto fail;
    goto out;
fail:
    outbox_rollback(ob);
    *job = 0;
out:
    buf_release(&t.pk);
    buf_release(&t.sk);
    return rc;
}

int backfill_cancel(struct outbox *ob, const char *table, int64_t *job, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *job = 0;
    if ((rc =
             one_int(ob, "SELECT id FROM backfill_job WHERE table_name = ?1 AND state = 'scanning'",
                     table, job, err)) != 0)
        return rc;
    if (!*job)
        return d2f_errf(err, D2F_EUSAGE, "no backfill of table '%s' is scanning", table);
    if ((rc = prepare(ob,
                      "UPDATE backfill_job SET state = 'cancelled', finished_at = ?2 "
                      "WHERE id = ?1 AND state = 'scanning'",
                      &st, "cancel the backfill", err)) != 0)
        return rc;
    sqlite3_bind_int64(st, 1, *job);
    sqlite3_bind_int64(st, 2, d2f_now_ms());
    return run_stmt(ob, st, "cancel the backfill", err);
}

/* ---- scanning ------------------------------------------------------------------------------ */

/* A job being run. */
struct job {
    int64_t id;
    char table[256];
    char stream_arn[600];
    char pk[256], sk[256]; /* sk "" when none */
    struct scan_opts opts;
    struct ingest *ing;
    struct backfill_stats *st;
};

/* Reads job id's definition and its segments' positions into a new scan. */
static int load_job(struct outbox *ob, const struct config *cfg, struct job *j, struct scan **s,
                    struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc, step;

    *s = NULL;
    if ((rc = prepare(
             ob,
             "SELECT table_name, stream_arn, partition_key, coalesce(sort_key, ''), "
             "segments, rate, consistent, coalesce(item_count, 0), page_limit FROM backfill_job "
             "WHERE id = ?1",
             &st, "read the backfill", err)) != 0)
        return rc;
    sqlite3_bind_int64(st, 1, j->id);
    if ((step = sqlite3_step(st)) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return step == SQLITE_DONE
                   ? d2f_errf(err, D2F_EUSAGE, "no backfill job %lld", (long long)j->id)
                   : db_err(ob, err, "read the backfill");
    }
    snprintf(j->table, sizeof(j->table), "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(j->stream_arn, sizeof(j->stream_arn), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(j->pk, sizeof(j->pk), "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(j->sk, sizeof(j->sk), "%s", (const char *)sqlite3_column_text(st, 3));
    j->opts.table = j->table;
    j->opts.segments = sqlite3_column_int(st, 4);
    j->opts.rate = sqlite3_column_double(st, 5);
    j->opts.consistent = sqlite3_column_int(st, 6);
    j->opts.parallel = PARALLEL_PAGES;
    j->st->item_count = sqlite3_column_double(st, 7);
    j->st->segments = j->opts.segments;
    j->opts.limit = (long)sqlite3_column_int64(st, 8);
    sqlite3_finalize(st);
    if ((rc = scan_new(s, cfg, &j->opts, err)) != 0)
        return rc;
    if ((rc = prepare(ob,
                      "SELECT segment, last_key, done FROM backfill_segment WHERE job_id = ?1 "
                      "ORDER BY segment",
                      &st, "read the backfill's segments", err)) != 0)
        return rc;
    sqlite3_bind_int64(st, 1, j->id);
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = scan_resume(*s, sqlite3_column_int(st, 0), (const char *)sqlite3_column_text(st, 1),
                         sqlite3_column_int(st, 2), err);
    sqlite3_finalize(st);
    if (!rc && step != SQLITE_DONE)
        rc = db_err(ob, err, "read the backfill's segments");
    return rc;
}

/* The job's totals, into st. */
static int totals(struct outbox *ob, int64_t job, struct backfill_stats *st, struct d2f_err *err)
{
    sqlite3_stmt *q = NULL;
    int rc = prepare(ob,
                     "SELECT coalesce(sum(items), 0), coalesce(sum(pages), 0), "
                     "coalesce(sum(read_units), 0), coalesce(sum(done), 0), count(*) "
                     "FROM backfill_segment WHERE job_id = ?1",
                     &q, "read the backfill", err);

    if (rc)
        return rc;
    sqlite3_bind_int64(q, 1, job);
    if (sqlite3_step(q) == SQLITE_ROW) {
        st->total_items = sqlite3_column_int64(q, 0);
        st->total_pages = sqlite3_column_int64(q, 1);
        st->total_units = sqlite3_column_double(q, 2);
        st->segments_done = sqlite3_column_int(q, 3);
        st->segments = sqlite3_column_int(q, 4);
    }
    sqlite3_finalize(q);
    return 0;
}

/* The stream record a scanned item stands as: a whole image of its document, so that the
 * drain plans and writes it as it does an INSERT. */
static cJSON *as_record(const struct job *j, const cJSON *item, const struct scan_page *p,
                        size_t index)
{
    cJSON *r = cJSON_CreateObject(), *d, *keys, *image;
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(item, j->pk);
    const cJSON *sk = j->sk[0] ? cJSON_GetObjectItemCaseSensitive(item, j->sk) : NULL;
    char id[128];

    snprintf(id, sizeof(id), "backfill:%lld:%d:%zu", (long long)j->id, p->segment, index);
    if (!r || !cJSON_AddStringToObject(r, "eventID", id) ||
        !cJSON_AddStringToObject(r, "eventName", "INSERT") ||
        !cJSON_AddStringToObject(r, "eventSource", "aws:dynamodb") ||
        !cJSON_AddStringToObject(r, "eventSourceARN", j->stream_arn) ||
        !(d = cJSON_AddObjectToObject(r, "dynamodb")) ||
        /* a whole number of seconds: exact as a cJSON number (the drain reads this tree) */
        !cJSON_AddNumberToObject(d, "ApproximateCreationDateTime",
                                 (double)(p->read_start / 1000)) ||
        !(keys = cJSON_AddObjectToObject(d, "Keys")) ||
        (pk && !cJSON_AddItemToObject(keys, j->pk, cJSON_Duplicate(pk, 1))) ||
        (sk && !cJSON_AddItemToObject(keys, j->sk, cJSON_Duplicate(sk, 1))) ||
        !(image = cJSON_Duplicate(item, 1)) || !cJSON_AddItemToObject(d, "NewImage", image) ||
        !cJSON_AddStringToObject(d, "SequenceNumber", "0") ||
        !cJSON_AddStringToObject(d, "StreamViewType", "NEW_IMAGE")) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

/* Keeps one page: its snapshot rows and its segment's new position, in one transaction. */
static int keep_page(struct outbox *ob, struct job *j, const struct scan_page *p,
                     struct d2f_err *err)
{
    struct ingest_result res = {0};
    sqlite3_stmt *snap = NULL, *seg = NULL;
    char *last_key = NULL;
    const cJSON *item;
    int64_t page = 0, n = 0;
    size_t index = 0;
    int rc;

    if (p->last_key && !(last_key = json_print(p->last_key)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if ((rc = outbox_begin(ob, err)) != 0)
        goto out;
    if ((rc = prepare(ob,
                      "INSERT INTO snapshot (id, job_id, segment, page, read_start, read_end) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                      &snap, "keep a snapshot", err)) != 0)
        goto fail;
    {
        /* the page number: pages kept before it in this segment */
        sqlite3_stmt *q = NULL;
        if ((rc = prepare(ob,
                          "SELECT pages FROM backfill_segment WHERE job_id = ?1 AND segment = ?2",
                          &q, "read the backfill", err)) != 0)
            goto fail;
        sqlite3_bind_int64(q, 1, j->id);
        sqlite3_bind_int(q, 2, p->segment);
        page = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
        sqlite3_finalize(q);
    }
    cJSON_ArrayForEach(item, p->items)
    {
        struct event_record rec;
        char *raw;
        int64_t id = 0;
        cJSON *r = as_record(j, item, p, index);

        if (!r || !(raw = json_print(r))) {
            cJSON_Delete(r);
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
            goto fail;
        }
        memset(&rec, 0, sizeof(rec));
        rec.index = index++;
        rec.json = r;
        rec.raw = raw;
        rec.raw_len = strlen(raw);
        event_record_check(&rec);
        rc = ingest_snapshot(j->ing, &rec, p->read_start, &id, &res, err);
        event_record_release(&rec);
        cJSON_free(raw);
        if (rc)
            goto fail;
        if (!id)
            continue;
        sqlite3_bind_int64(snap, 1, id);
        sqlite3_bind_int64(snap, 2, j->id);
        sqlite3_bind_int(snap, 3, p->segment);
        sqlite3_bind_int64(snap, 4, page);
        sqlite3_bind_int64(snap, 5, p->read_start);
        sqlite3_bind_int64(snap, 6, p->read_end);
        if (sqlite3_step(snap) != SQLITE_DONE) {
            rc = db_err(ob, err, "keep a snapshot");
            goto fail;
        }
        sqlite3_reset(snap);
        n++;
    }
    if ((rc = prepare(ob,
                      "UPDATE backfill_segment SET last_key = ?3, done = ?4, pages = pages + 1, "
                      "items = items + ?5, read_units = read_units + ?6 "
                      "WHERE job_id = ?1 AND segment = ?2",
                      &seg, "keep the segment's position", err)) != 0)
        goto fail;
    sqlite3_bind_int64(seg, 1, j->id);
    sqlite3_bind_int(seg, 2, p->segment);
    if (last_key)
        sqlite3_bind_text(seg, 3, last_key, -1, SQLITE_STATIC);
    sqlite3_bind_int(seg, 4, p->last_key ? 0 : 1);
    sqlite3_bind_int64(seg, 5, n);
    sqlite3_bind_double(seg, 6, p->read_units);
    rc = run_stmt(ob, seg, "keep the segment's position", err);
    seg = NULL;
    if (!rc)
        rc = outbox_commit(ob, err);
    if (!rc) {
        j->st->items += n;
        j->st->pages++;
        j->st->read_units += p->read_units;
        goto out;
    }
fail:
    outbox_rollback(ob);
out:
    sqlite3_finalize(snap);
    sqlite3_finalize(seg);
    cJSON_free(last_key);
    return rc;
}

/* Marks job done once every segment is, unless it was cancelled meanwhile. */
static int finish(struct outbox *ob, struct job *j, int64_t scanned_ms, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(ob,
                     "UPDATE backfill_job SET scan_ms = scan_ms + ?2, "
                     "state = CASE WHEN state = 'scanning' AND NOT EXISTS (SELECT 1 FROM "
                     "backfill_segment g WHERE g.job_id = ?1 AND NOT g.done) THEN 'done' "
                     "ELSE state END, "
                     "finished_at = CASE WHEN state = 'scanning' AND NOT EXISTS (SELECT 1 FROM "
                     "backfill_segment g WHERE g.job_id = ?1 AND NOT g.done) THEN ?3 "
                     "ELSE finished_at END WHERE id = ?1",
                     &st, "finish the backfill", err);

    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, j->id);
    sqlite3_bind_int64(st, 2, scanned_ms);
    sqlite3_bind_int64(st, 3, d2f_now_ms());
    return run_stmt(ob, st, "finish the backfill", err);
}

/* Whether job is still scanning (not cancelled meanwhile). */
static int job_scanning(struct outbox *ob, int64_t job, int64_t *scanning, struct d2f_err *err)
{
    sqlite3_stmt *q = NULL;
    int rc = prepare(ob, "SELECT state = 'scanning' FROM backfill_job WHERE id = ?1", &q,
                     "read the backfill", err);

    if (rc)
        return rc;
    sqlite3_bind_int64(q, 1, job);
    *scanning = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return 0;
}

/* Claims job for owner (one runner at a time) until until_ms, or renews the claim; *claimed
 * is 0 when another live runner holds it. */
static int claim(struct outbox *ob, int64_t job, const char *owner, int64_t until_ms, int *claimed,
                 struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    char holder[400] = "";
    int64_t holder_until = 0;
    int rc;

    *claimed = 0;
    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if ((rc = prepare(ob, "SELECT runner, runner_until FROM backfill_job WHERE id = ?1", &st,
                      "claim the backfill", err)) != 0)
        goto fail;
    sqlite3_bind_int64(st, 1, job);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        snprintf(holder, sizeof(holder), "%s", (const char *)sqlite3_column_text(st, 0));
        holder_until = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (holder[0] && strcmp(holder, owner) != 0 && holder_until > d2f_now_ms() &&
        !lease_holder_gone(holder)) {
        outbox_rollback(ob);
        return 0;
    }
    if ((rc = prepare(ob, "UPDATE backfill_job SET runner = ?2, runner_until = ?3 WHERE id = ?1",
                      &st, "claim the backfill", err)) != 0)
        goto fail;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, until_ms);
    if ((rc = run_stmt(ob, st, "claim the backfill", err)) != 0 ||
        (rc = outbox_commit(ob, err)) != 0)
        goto fail;
    *claimed = 1;
    return 0;
fail:
    outbox_rollback(ob);
    return rc;
}

/* Gives the claim back (a failure leaves it to lapse). */
static void unclaim(struct outbox *ob, int64_t job, const char *owner)
{
    sqlite3_stmt *st = NULL;
    struct d2f_err err = {0};

    if (prepare(ob,
                "UPDATE backfill_job SET runner = NULL, runner_until = NULL "
                "WHERE id = ?1 AND runner = ?2",
                &st, "release the backfill", &err) != 0)
        return;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    if (run_stmt(ob, st, "release the backfill", &err) != 0)
        log_write(LOG_WARN, err.msg, NULL);
}

/* Scans one job until it is done or the deadline. */
static int run_job(struct outbox *ob, const struct config *cfg, struct job *j, int64_t deadline,
                   void (*progress)(void *, const struct backfill_stats *), void *ctx,
                   struct d2f_err *err)
{
    struct scan_page pages[PARALLEL_PAGES];
    struct scan *s = NULL;
    int64_t start = d2f_now_ms(), scanning = 1;
    size_t n = 0;
    char owner[320];
    int claimed = 0, rc;

    lease_owner_name(owner, sizeof(owner));
    memset(pages, 0, sizeof(pages));
    if ((rc = claim(ob, j->id, owner, d2f_now_ms() + CLAIM_MS, &claimed, err)) != 0)
        return rc;
    if (!claimed) {
        j->st->busy = 1;
        return totals(ob, j->id, j->st, err);
    }
    rc = load_job(ob, cfg, j, &s, err);
    if (!rc)
        rc = totals(ob, j->id, j->st, err);
    while (!rc) {
        if ((rc = job_scanning(ob, j->id, &scanning, err)) != 0 || !scanning)
            break;
        if ((rc = claim(ob, j->id, owner, d2f_now_ms() + CLAIM_MS, &claimed, err)) != 0)
            break;
        if (!claimed) {
            j->st->busy = 1; /* another runner took over a lapsed claim */
            break;
        }
        if ((rc = scan_next(s, deadline, pages, PARALLEL_PAGES, &n, err)) != 0 || !n)
            break;
        for (size_t i = 0; i < n; i++) {
            if (!rc)
                rc = keep_page(ob, j, &pages[i], err);
            scan_page_release(&pages[i]);
        }
        if (!rc)
            rc = totals(ob, j->id, j->st, err);
        if (!rc && progress)
            progress(ctx, j->st);
    }
    j->st->retries += s ? scan_retries(s) : 0;
    j->st->elapsed_ms += d2f_now_ms() - start;
    scan_free(s);
    if (s || !rc) {
        struct d2f_err ferr = {0};
        int frc = finish(ob, j, d2f_now_ms() - start, &ferr);
        if (!rc && frc) {
            rc = frc;
            *err = ferr;
        }
    }
    if (!rc)
        rc = totals(ob, j->id, j->st, err);
    unclaim(ob, j->id, owner);
    j->st->done = !rc && j->st->segments_done == j->st->segments;
    return rc;
}

int backfill_run(struct outbox *ob, const struct config *cfg, int64_t job, int64_t deadline_ms,
                 void (*progress)(void *ctx, const struct backfill_stats *st), void *ctx,
                 struct backfill_stats *st, struct d2f_err *err)
{
    struct job j;
    int rc = 0;

    memset(st, 0, sizeof(*st));
    memset(&j, 0, sizeof(j));
    j.st = st;
    if (!(j.ing = ingest_new(ob, cfg)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if (job) {
        j.id = job;
        st->job = job;
        rc = run_job(ob, cfg, &j, deadline_ms, progress, ctx, err);
        goto out;
    }
    for (int64_t after = 0;;) {
        sqlite3_stmt *q = NULL;
        int64_t next = 0;
        if ((rc = prepare(ob,
                          "SELECT min(id) FROM backfill_job WHERE state = 'scanning' AND id > ?1",
                          &q, "read the backfill", err)) != 0)
            break;
        sqlite3_bind_int64(q, 1, after);
        if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
            next = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        if (!next)
            break;
        j.id = st->job = after = next;
        if ((rc = run_job(ob, cfg, &j, deadline_ms, progress, ctx, err)) != 0)
            break;
    }
out:
    ingest_free(j.ing);
    return rc;
}

/* ---- the rules: the stream always wins ---------------------------------------------------- */

/* Snapshots superseded: the outbox holds a stream record of the document (any operation, any
 * state), or a later snapshot of it (the latest read wins). ?1 now. */
static const char gate_superseded[] =
    "UPDATE record_state SET state = 'committed', committed_at = ?1, "
    "last_error = 'superseded: the stream or a later read has this document' "
    "WHERE state = 'pending' AND id IN (SELECT p.id FROM snapshot p JOIN record_info i USING (id) "
    "WHERE p.outcome IS NULL AND EXISTS (SELECT 1 FROM record_info j "
    "WHERE j.document = i.document AND j.id <> i.id AND (j.kind = 'stream' OR j.id > i.id)))";

/* What became of the snapshots that left the pending state. */
static const char gate_outcome[] =
    "UPDATE snapshot SET outcome = (SELECT CASE WHEN s.state = 'dead' THEN 'dead' "
    "WHEN s.last_error LIKE 'superseded%' THEN 'superseded' ELSE 'sent' END "
    "FROM record_state s WHERE s.id = snapshot.id) "
    "WHERE outcome IS NULL AND (SELECT state FROM record_state s WHERE s.id = snapshot.id) "
    "<> 'pending'";

/* Stream records contained in a sent snapshot: created before the page's read began, minus
 * the margin, and arrived after it. ?1 now, ?2 margin (ms). */
static const char gate_contained[] =
    "UPDATE record_state SET state = 'committed', committed_at = ?1, "
    "last_error = 'superseded: a snapshot read after this change was sent' "
    "WHERE state = 'pending' AND id IN (SELECT r.id FROM record_state s JOIN record_info r "
    "USING (id) WHERE s.state = 'pending' AND r.kind = 'stream' AND r.created_at IS NOT NULL "
    "AND EXISTS (SELECT 1 FROM record_info k JOIN snapshot p USING (id) "
    "WHERE k.document = r.document AND k.kind = 'snapshot' AND p.outcome = 'sent' "
    "AND p.id < r.id AND r.created_at < p.read_start - ?2))";

/* Documents held back (temp.held, this connection's): a stream record that arrived after a
 * sent snapshot of its document, of a change made too near the snapshot's read to tell on which
 * side of it the change lies (created within the margin of the read window), waits while it is
 * its document's latest record and the stream has not caught up past that read (the snapshot's
 * own rule: for the settle time, every stream record of the table that arrived was created at
 * or after the read's end plus the margin, or none arrived). A change before the read is in the
 * snapshot already; if the snapshot holds a newer state still, the record of that later change
 * comes before the stream catches up, in stream order, and supersedes this one in the same
 * write, so the document never goes back. A change after the read is sent once the stream has
 * caught up. ?1 now minus the settle time, ?2 margin (ms). */
static const char gate_held[] =
    "WITH low AS (SELECT table_name, min(created_at) AS created FROM record_info "
    "WHERE kind = 'stream' AND arrived_at >= ?1 GROUP BY table_name) "
    "INSERT OR IGNORE INTO temp.held (document) SELECT r.document FROM record_state s "
    "JOIN record_info r USING (id) WHERE s.state = 'pending' AND r.kind = 'stream' "
    "AND r.created_at IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM record_info n WHERE n.document = r.document AND n.id > r.id) "
    "AND EXISTS (SELECT 1 FROM record_info k JOIN snapshot p USING (id) "
    "WHERE k.document = r.document AND k.kind = 'snapshot' AND p.outcome = 'sent' "
    "AND p.id < r.id AND r.created_at >= p.read_start - ?2 AND r.created_at < p.read_end + ?2 "
    "AND (p.read_end > ?1 OR EXISTS (SELECT 1 FROM low WHERE low.table_name = r.table_name "
    "AND low.created < p.read_end + ?2)))";

/* Pending rows of the held documents. */
static const char gate_held_rows[] =
    "SELECT count(*) FROM record_state s JOIN record_info i USING (id) "
    "WHERE s.state = 'pending' AND i.document IN (SELECT document FROM temp.held)";

/* The tables with undecided snapshots. */
static const char gate_tables[] =
    "SELECT DISTINCT j.table_name FROM backfill_job j WHERE EXISTS (SELECT 1 FROM snapshot p "
    "WHERE p.job_id = j.id AND p.outcome IS NULL)";

/* The high watermark's other side: the oldest creation time among the stream records of
 * table ?1 that arrived since ?2 (now minus the settle time). */
static const char gate_low[] =
    "SELECT min(created_at) FROM record_info WHERE kind = 'stream' AND table_name = ?1 "
    "AND arrived_at >= ?2";

/* Ready: read before the settle time began, and every stream record arrived since was created
 * at or after the read's end plus the margin (?3 that oldest creation, NULL: none arrived).
 * ?1 table, ?2 now minus the settle time, ?4 margin (ms). */
static const char gate_ready[] =
    "UPDATE snapshot SET ready = (read_end <= ?2 AND (?3 IS NULL OR read_end + ?4 <= ?3)) "
    "WHERE outcome IS NULL AND job_id IN (SELECT id FROM backfill_job WHERE table_name = ?1)";

static const char gate_waiting[] =
    "SELECT count(*) FROM snapshot WHERE outcome IS NULL AND NOT ready";

/* 1 when this connection has held documents (the gate ran on it). */
static int has_held(struct outbox *ob)
{
    int64_t any = 0;
    struct d2f_err err = {0};

    return one_int(ob, "SELECT 1 FROM temp.sqlite_master WHERE name = 'held'", NULL, &any, &err) ==
               0 &&
           any;
}

static int exec_bound(struct outbox *ob, const char *sql, int64_t a, int64_t b, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(ob, sql, &st, "decide the snapshots", err);

    if (rc)
        return rc;
    if (sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, b);
    return run_stmt(ob, st, "decide the snapshots", err);
}

/* Sets ready on the undecided snapshots of every table that has some. */
static int gate_tables_ready(struct outbox *ob, int64_t now, int64_t settle, int64_t margin,
                             struct d2f_err *err)
{
    sqlite3_stmt *t = NULL, *low = NULL, *up = NULL;
    int rc = prepare(ob, gate_tables, &t, "decide the snapshots", err), step;

    if (!rc)
        rc = prepare(ob, gate_low, &low, "decide the snapshots", err);
    if (!rc)
        rc = prepare(ob, gate_ready, &up, "decide the snapshots", err);
    while (!rc && (step = sqlite3_step(t)) == SQLITE_ROW) {
        const char *table = (const char *)sqlite3_column_text(t, 0);
        sqlite3_bind_text(low, 1, table, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(low, 2, now - settle);
        if (sqlite3_step(low) != SQLITE_ROW) {
            rc = db_err(ob, err, "decide the snapshots");
            break;
        }
        sqlite3_bind_text(up, 1, table, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(up, 2, now - settle);
        if (sqlite3_column_type(low, 0) == SQLITE_NULL)
            sqlite3_bind_null(up, 3);
        else
            sqlite3_bind_int64(up, 3, sqlite3_column_int64(low, 0));
        sqlite3_bind_int64(up, 4, margin);
        if (sqlite3_step(up) != SQLITE_DONE)
            rc = db_err(ob, err, "decide the snapshots");
        sqlite3_reset(low);
        sqlite3_reset(up);
    }
    if (!rc && step != SQLITE_DONE)
        rc = db_err(ob, err, "decide the snapshots");
    sqlite3_finalize(t);
    sqlite3_finalize(low);
    sqlite3_finalize(up);
    return rc;
}

int backfill_gate(struct outbox *ob, const struct config *cfg, int64_t *waiting,
                  struct d2f_err *err)
{
    int64_t now = d2f_now_ms(), any = 0;
    int64_t settle = (int64_t)cfg->backfill_settle_s * 1000;
    int64_t margin = (int64_t)cfg->backfill_margin_s * 1000;
    int rc;

    *waiting = 0;
    if ((rc = one_int(ob, "SELECT 1 FROM snapshot LIMIT 1", NULL, &any, err)) != 0 || !any)
        return rc;
    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if (!(rc = exec_bound(ob, gate_superseded, now, 0, err)) &&
        !(rc = exec_bound(ob, gate_outcome, 0, 0, err)) &&
        !(rc = exec_bound(ob, gate_contained, now, margin, err)) &&
        !(rc = gate_tables_ready(ob, now, settle, margin, err)) &&
        !(rc = exec_bound(ob, "CREATE TEMP TABLE IF NOT EXISTS held (document TEXT PRIMARY KEY)", 0,
                          0, err)) &&
        !(rc = exec_bound(ob, "DELETE FROM temp.held", 0, 0, err)) &&
        !(rc = exec_bound(ob, gate_held, now - settle, margin, err)))
        rc = outbox_commit(ob, err);
    if (rc)
        outbox_rollback(ob);
    return rc ? rc : backfill_waiting(ob, waiting, err);
}

int backfill_waiting(struct outbox *ob, int64_t *waiting, struct d2f_err *err)
{
    int64_t held = 0;
    int rc;

    *waiting = 0;
    if ((rc = one_int(ob, gate_waiting, NULL, waiting, err)) != 0)
        return rc;
    if (has_held(ob) && (rc = one_int(ob, gate_held_rows, NULL, &held, err)) == 0)
        *waiting += held;
    return rc;
}

int backfill_holds_prune(struct outbox *ob)
{
    struct d2f_err err = {0};
    int64_t held = 1;

    if (one_int(ob,
                "SELECT EXISTS (SELECT 1 FROM backfill_job WHERE state = 'scanning') OR "
                "EXISTS (SELECT 1 FROM snapshot WHERE outcome IS NULL)",
                NULL, &held, &err) != 0)
        return 1; /* when in doubt, keep */
    return held != 0;
}

/* ---- status -------------------------------------------------------------------------------- */

int backfill_status(struct outbox *ob, cJSON *s, struct d2f_err *err)
{
    cJSON *list = cJSON_AddArrayToObject(s, "backfills");
    sqlite3_stmt *st = NULL;
    int rc, step;

    if (!list)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if ((rc = prepare(ob,
                      "SELECT id, table_name, state, segments, segments_done, "
                      "coalesce(items, 0), coalesce(pages, 0), coalesce(read_units, 0), rate, "
                      "scan_ms, coalesce(item_count, 0), waiting, superseded, sent "
                      "FROM backfills",
                      &st, "read the backfills", err)) != 0)
        return rc;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        double items = sqlite3_column_double(st, 5), units = sqlite3_column_double(st, 7);
        double secs = sqlite3_column_double(st, 9) / 1000.0, count = sqlite3_column_double(st, 10);
        const char *state = (const char *)sqlite3_column_text(st, 2);

        if (!o)
            break;
        json_add_number(o, "job", sqlite3_column_double(st, 0));
        cJSON_AddStringToObject(o, "table", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddStringToObject(o, "state", state);
        json_add_number(o, "segments", sqlite3_column_double(st, 3));
        json_add_number(o, "segments_done", sqlite3_column_double(st, 4));
        json_add_number(o, "items", items);
        json_add_number(o, "pages", sqlite3_column_double(st, 6));
        json_add_number(o, "read_units", units);
        json_add_number(o, "rate_limit", sqlite3_column_double(st, 8));
        json_add_number(o, "read_units_per_s", secs > 0 ? units / secs : 0);
        json_add_number(o, "items_per_s", secs > 0 ? items / secs : 0);
        if (strcmp(state, "scanning") == 0 && secs > 0 && items > 0 && count > items)
            json_add_number(o, "eta_s", (count - items) / (items / secs));
        else
            cJSON_AddNullToObject(o, "eta_s");
        json_add_number(o, "snapshots_waiting", sqlite3_column_double(st, 11));
        json_add_number(o, "superseded", sqlite3_column_double(st, 12));
        json_add_number(o, "sent", sqlite3_column_double(st, 13));
        cJSON_AddItemToArray(list, o);
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : db_err(ob, err, "read the backfills");
}

/* ---- the handler's request ------------------------------------------------------------------ */

int backfill_opts_from_json(const cJSON *json, struct backfill_opts *o, struct d2f_err *err)
{
    const cJSON *table = cJSON_GetObjectItemCaseSensitive(json, "table");
    const cJSON *segments = cJSON_GetObjectItemCaseSensitive(json, "segments");
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(json, "rate");
    const cJSON *consistent = cJSON_GetObjectItemCaseSensitive(json, "consistent");
    const cJSON *mapped = cJSON_GetObjectItemCaseSensitive(json, "stream_is_mapped");

    memset(o, 0, sizeof(*o));
    o->segments = 4;
    if (!cJSON_IsString(table) || !table->valuestring[0])
        return d2f_errf(err, D2F_EINPUT, "backfill: 'table' must name the table");
    o->table = table->valuestring;
    if (segments && (!cJSON_IsNumber(segments) || segments->valuedouble < 1 ||
                     segments->valuedouble > SCAN_SEGMENTS_MAX ||
                     segments->valuedouble != floor(segments->valuedouble)))
        return d2f_errf(err, D2F_EINPUT, "backfill: 'segments' must be a whole number, 1 to %d",
                        SCAN_SEGMENTS_MAX);
    if (segments)
        o->segments = (int)segments->valuedouble;
    if (!cJSON_IsNumber(rate) || !(rate->valuedouble > 0))
        return d2f_errf(err, D2F_EINPUT,
                        "backfill: 'rate' must give the read capacity units per second");
    o->rate = rate->valuedouble;
    if (consistent && !cJSON_IsBool(consistent))
        return d2f_errf(err, D2F_EINPUT, "backfill: 'consistent' must be true or false");
    o->consistent = cJSON_IsTrue(consistent);
    if (mapped && !cJSON_IsBool(mapped))
        return d2f_errf(err, D2F_EINPUT, "backfill: 'stream_is_mapped' must be true or false");
    o->stream_is_mapped = cJSON_IsTrue(mapped);
    return 0;
}
