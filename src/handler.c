/* handler.c: one Lambda invocation. */
#include "handler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backfill.h"
#include "config.h"
#include "connect.h"
#include "drain.h"
#include "firestore.h"
#include "gauth.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "outbox.h"
#include "partition.h"
#include "status.h"
#include "verify.h"

struct handler {
    char function[256]; /* AWS_LAMBDA_FUNCTION_NAME, the metrics' dimension */
    struct config cfg;
    struct partitions *set; /* the outbox: one file, or a partitioned outbox's files */
    struct ingest *ing;
    struct gauth *auth;
    struct firestore *fs;
};

const char *handler_error_type(int code)
{
    switch (code) {
    case D2F_ECONFIG:
        return "ddb2fs.ConfigError";
    case D2F_EINPUT:
    case D2F_ELIMIT:
        return "ddb2fs.MalformedEvent";
    case D2F_EDB:
    case D2F_EIO:
        return "ddb2fs.OutboxError";
    case D2F_EAUTH:
        return "ddb2fs.AuthError";
    case D2F_ESCHEMA:
        return "ddb2fs.SchemaError";
    case D2F_ENOMEM:
        return "ddb2fs.OutOfMemory";
    case D2F_EDAMAGE:
        return "ddb2fs.OutboxCorrupt";
    case D2F_ETIME:
        return "ddb2fs.TimeBudgetSpent";
    case D2F_ELEASE:
        return "ddb2fs.LeaseHeld";
    case D2F_EUNREACHABLE:
        return "ddb2fs.Unreachable";
    }
    return "ddb2fs.Error";
}

/* A corrupt outbox, said three ways: the error (the caller's), a log line saying what to do,
 * and a metric to alarm on. */
static void corrupt_report(const struct handler *h, const struct d2f_err *err)
{
    static const char *const dims[] = {"FunctionName"};
    static const struct log_metric m[] = {{"OutboxCorrupt", "Count", 1}};
    cJSON *line = cJSON_CreateObject();

    log_write(LOG_ERROR, err->msg, NULL);
    cJSON_AddStringToObject(line, "FunctionName", h->function);
    log_metrics(stdout, d2f_now_ms(), dims, 1, line, m, 1);
}

/* The outbox's health check, every file's, within budget_ms in all: D2F_EDAMAGE (reported)
 * when one is damaged. */
static int health(struct handler *h, int64_t budget_ms, struct d2f_err *err)
{
    size_t n = partitions_count(h->set);
    int complete = 1, rc = 0;

    for (size_t i = 0; i < n && !rc; i++) {
        int done;
        rc = outbox_check(partitions_outbox(h->set, i), budget_ms / (int64_t)n, &done, err);
        complete &= done;
    }
    if (rc == D2F_EDAMAGE)
        corrupt_report(h, err);
    else if (!rc && !complete)
        log_write(LOG_WARN, "the outbox's health check did not finish in its time", NULL);
    return rc;
}

int handler_new(struct handler **out, const char *(*get)(const char *), struct http *http,
                struct d2f_err *err)
{
    struct handler *h = calloc(1, sizeof(*h));
    int rc;

    *out = NULL;
    if (!h)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    snprintf(h->function, sizeof(h->function), "%s",
             get("AWS_LAMBDA_FUNCTION_NAME") ? get("AWS_LAMBDA_FUNCTION_NAME") : "ddb2fs");
    if ((rc = config_load(&h->cfg, get, err)) != 0 ||
        (rc = connect_firestore(&h->cfg, http, &h->auth, &h->fs, err)) != 0 ||
        (rc = partitions_open(&h->set, &h->cfg, OUTBOX_CREATE, err)) != 0 ||
        (rc = health(h, OUTBOX_CHECK_MS, err)) != 0)
        goto fail;
    for (size_t i = 0; i < partitions_count(h->set); i++)
        if ((rc = outbox_check_keys(partitions_outbox(h->set, i), &h->cfg, err)) != 0 ||
            (rc = outbox_settings(partitions_outbox(h->set, i), &h->cfg, err)) != 0)
            goto fail;
    if (!(h->ing = ingest_new_set(partitions_all(h->set), partitions_count(h->set), &h->cfg))) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto fail;
    }
    *out = h;
    return 0;
fail:
    if (rc == D2F_EDAMAGE && !h->set)
        corrupt_report(h, err); /* found while opening */
    handler_free(h);
    return rc;
}

void handler_free(struct handler *h)
{
    if (!h)
        return;
    ingest_free(h->ing);
    partitions_close(h->set);
    firestore_free(h->fs);
    gauth_free(h->auth);
    config_release(&h->cfg);
    free(h);
}

/* One CloudWatch Embedded Metric Format line for the invocation, on the log's stream. */
static void metrics(struct handler *h, const struct ingest_result *res,
                    const struct drain_stats *st)
{
    static const char *const dims[] = {"FunctionName"};
    int64_t age = 0;
    cJSON *line = cJSON_CreateObject();

    for (size_t i = 0; i < partitions_count(h->set); i++) {
        int64_t one = 0;
        if (outbox_oldest_pending_age(partitions_outbox(h->set, i), &one, NULL) == 0 && one > age)
            age = one;
    }
    {
        const struct log_metric m[] = {{"RecordsIngested", "Count", (double)res->inserted},
                                       {"Duplicates", "Count", (double)res->duplicates},
                                       {"Committed", "Count", (double)st->rows_committed},
                                       {"Dead", "Count", (double)(res->dead + st->rows_dead)},
                                       {"Pending", "Count", (double)st->pending_left},
                                       {"OldestPendingAge", "Seconds", (double)age / 1000.0},
                                       {"DrainTime", "Milliseconds", (double)st->elapsed_ms},
                                       {"Commits", "Count", (double)st->commits},
                                       {"Retries", "Count", (double)st->retries}};
        cJSON_AddStringToObject(line, "FunctionName", h->function);
        log_metrics(stdout, d2f_now_ms(), dims, 1, line, m, sizeof(m) / sizeof(m[0]));
    }
}

enum kind { STREAM, SCHEDULED, STATUS, REPARTITION, BACKFILL, VERIFY, UNKNOWN };

/* What an event is: a stream batch has Records; a scheduled event comes from aws.events; an
 * operator's {"ddb2fs":"status"} asks for the outbox's status. */
static enum kind kind_of(const char *event, size_t len)
{
    cJSON *e;
    const cJSON *source, *ask;
    enum kind k = STREAM;

    if (len >= HANDLER_SNIFF_MAX)
        return STREAM;
    e = json_parse(event, len);
    if (!cJSON_IsObject(e)) {
        cJSON_Delete(e);
        return STREAM; /* ingest says what is wrong with it */
    }
    source = cJSON_GetObjectItemCaseSensitive(e, "source");
    ask = cJSON_GetObjectItemCaseSensitive(e, "ddb2fs");
    if (!cJSON_GetObjectItemCaseSensitive(e, "Records"))
        k = cJSON_IsString(source) && strcmp(source->valuestring, "aws.events") == 0 ? SCHEDULED
            : cJSON_IsString(ask) && strcmp(ask->valuestring, "status") == 0         ? STATUS
            : cJSON_IsString(ask) && strcmp(ask->valuestring, "repartition") == 0    ? REPARTITION
            : cJSON_IsString(ask) && strcmp(ask->valuestring, "backfill") == 0       ? BACKFILL
            : cJSON_IsString(ask) && strcmp(ask->valuestring, "verify") == 0         ? VERIFY
                                                                                     : UNKNOWN;
    cJSON_Delete(e);
    return k;
}

/* {"ddb2fs":"repartition","partitions":N}: a drain, then 'ddb2fs repartition N' where the outbox
 * is mounted; this process then opens the new outbox (others do when their next batch is
 * refused). */
static int repartition(struct handler *h, const char *event, size_t len, struct buf *answer,
                       const char **error_type, struct d2f_err *err);

/* 1 when a file of the outbox was found moved by 'ddb2fs repartition'. */
static int moved(struct handler *h)
{
    for (size_t i = 0; i < partitions_count(h->set); i++)
        if (outbox_moved(partitions_outbox(h->set, i)))
            return 1;
    return 0;
}

/* Opens DDB2FS_OUTBOX again after a repartition moved it. */
static int reopen(struct handler *h, struct d2f_err *err)
{
    struct partitions *set = NULL;
    struct ingest *ing;
    int rc;

    if ((rc = partitions_open(&set, &h->cfg, OUTBOX_CREATE, err)) != 0)
        return rc;
    if (!(ing = ingest_new_set(partitions_all(set), partitions_count(set), &h->cfg))) {
        partitions_close(set);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    ingest_free(h->ing);
    partitions_close(h->set);
    h->ing = ing;
    h->set = set;
    log_write(LOG_INFO, "the outbox was repartitioned: opened it again", NULL);
    return 0;
}

static int repartition(struct handler *h, const char *event, size_t len, struct buf *answer,
                       const char **error_type, struct d2f_err *err)
{
    cJSON *e = json_parse(event, len);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "partitions");
    struct partitions_moved moved;
    double want = cJSON_IsNumber(n) ? n->valuedouble : 0;
    char *text;
    int rc;

    cJSON_Delete(e);
    if (want < 1 || want > CONFIG_PARTITIONS_MAX || want != (double)(long)want) {
        *error_type = "ddb2fs.UnknownEvent";
        return d2f_errf(err, D2F_EINPUT, "repartition: 'partitions' is a whole number from 1 to %d",
                        CONFIG_PARTITIONS_MAX);
    }
    /* this process's handles go first: the move marks the files it has open */
    if ((rc = partitions_repartition(&h->cfg, (size_t)want, &moved, err)) != 0) {
        *error_type = handler_error_type(rc);
        return rc;
    }
    h->cfg.partitions = (long)want;
    if (moved.from != moved.to && (rc = reopen(h, err)) != 0) {
        *error_type = handler_error_type(rc);
        return rc;
    }
    e = cJSON_CreateObject();
    json_add_number(e, "from", (double)moved.from);
    json_add_number(e, "to", (double)moved.to);
    json_add_number(e, "records", (double)moved.records);
    cJSON_AddStringToObject(e, "kept", moved.kept);
    text = json_print(e);
    cJSON_Delete(e);
    rc = text ? buf_adds(answer, text) : D2F_ENOMEM;
    cJSON_free(text);
    return rc ? d2f_errf(err, rc, "out of memory") : 0;
}

/* Waits for the outbox's locks no later than until_ms (0: the busy timeout again). */
static void wait_until(struct handler *h, int64_t until_ms)
{
    for (size_t i = 0; i < partitions_count(h->set); i++)
        outbox_wait_until(partitions_outbox(h->set, i), until_ms);
}

/* Drains until the deadline's margin, no more than most files of a partitioned outbox (0: all);
 * a drain that stops is logged, not an error: the records are durable and the next invocation
 * goes on. */
static void drain_some(struct handler *h, int64_t deadline_ms, size_t most, struct drain_stats *st)
{
    struct d2f_err err = {0};
    int rc;

    memset(st, 0, sizeof(*st));
    if (deadline_ms - HANDLER_MARGIN_MS <= d2f_now_ms() + 100)
        return;
    /* the drain's own writes (marks, the lease) wait for others' locks no longer than the
     * answer allows: rows left unmarked are sent again, fenced, by a later drain */
    wait_until(h, deadline_ms - HANDLER_ANSWER_MS);
    rc = drain_run_set(partitions_all(h->set), partitions_count(h->set), most, &h->cfg, h->fs,
                       deadline_ms - HANDLER_MARGIN_MS, st, &err);
    wait_until(h, 0);
    drain_log(st, rc ? err.msg : NULL);
}

/* Advances the backfill jobs still scanning for the time the invocation has left; running out
 * of time is how a job goes on across invocations, logged, not an error. */
static void backfill_some(struct handler *h, int64_t deadline_ms)
{
    struct outbox *ob = partitions_outbox(h->set, 0);
    struct backfill_stats st;
    struct d2f_err err = {0};
    cJSON *f;
    int rc, stopped;

    /* a partitioned outbox has no backfill yet */
    if (partitions_count(h->set) != 1 || deadline_ms - HANDLER_MARGIN_MS <= d2f_now_ms() + 100 ||
        !backfill_holds_prune(ob))
        return;
    outbox_wait_until(ob, deadline_ms - HANDLER_ANSWER_MS);
    rc = backfill_run(ob, &h->cfg, 0, deadline_ms - HANDLER_MARGIN_MS, NULL, NULL, &st, &err);
    outbox_wait_until(ob, 0);
    if (!st.job || (st.busy && !st.pages))
        return; /* nothing to scan, or another runner scans it */
    f = cJSON_CreateObject();
    json_add_number(f, "job", (double)st.job);
    json_add_number(f, "items", (double)st.items);
    json_add_number(f, "pages", (double)st.pages);
    json_add_number(f, "read_units", (double)st.read_units);
    json_add_number(f, "retries", (double)st.retries);
    json_add_number(f, "segments_done", (double)st.segments_done);
    json_add_number(f, "segments", (double)st.segments);
    /* out of time, or DynamoDB silent: the job goes on at the next invocation */
    stopped = rc && rc != D2F_ETIME && rc != D2F_EUNREACHABLE;
    if (stopped)
        cJSON_AddStringToObject(f, "stopped", err.msg);
    log_write(stopped ? LOG_ERROR : LOG_INFO, st.done ? "backfill scanned" : "backfill goes on", f);
}

/* {"ddb2fs":"backfill","table":"T",...}: records the job, and starts it. */
static int backfill_request(struct handler *h, const char *event, size_t len, int64_t deadline_ms,
                            struct buf *answer, const char **error_type, struct d2f_err *err)
{
    struct backfill_opts o;
    cJSON *e = json_parse(event, len);
    int64_t job = 0;
    int rc = backfill_opts_from_json(e, &o, err);

    if (!rc && partitions_count(h->set) != 1)
        rc = d2f_errf(err, D2F_EUSAGE,
                      "backfill: not with a partitioned outbox "
                      "(DDB2FS_PARTITIONS) yet");
    if (!rc)
        rc = backfill_start(partitions_outbox(h->set, 0), &h->cfg, &o, &job, err);
    cJSON_Delete(e);
    if (rc) {
        *error_type = rc == D2F_EUSAGE || rc == D2F_EINPUT ? "ddb2fs.BackfillRefused"
                                                           : handler_error_type(rc);
        return rc;
    }
    backfill_some(h, deadline_ms);
    rc = buf_addf(answer, "{\"backfill\":%lld}", (long long)job);
    return rc ? d2f_errf(err, rc, "out of memory") : 0;
}

/* {"ddb2fs":"verify","table":"T",...}: a sample of the table checked against its collection
 * in the time the invocation has (1% of the segments unless "sample" says otherwise); the
 * answer is the report, the log line and the VerifyDifferences metric go with it. */
static int verify_request(struct handler *h, const char *event, size_t len, int64_t deadline_ms,
                          struct buf *answer, const char **error_type, struct d2f_err *err)
{
    struct verify_opts o;
    struct verify_report r;
    cJSON *e = json_parse(event, len), *j = NULL;
    char *text = NULL;
    int rc = verify_opts_from_json(e, &o, err);

    memset(&r, 0, sizeof(r));
    if (!rc) {
        o.deadline_ms = deadline_ms - HANDLER_MARGIN_MS;
        /* the files this process holds open (it opens no second descriptor of a file) */
        o.outboxes = partitions_all(h->set);
        o.noutboxes = partitions_count(h->set);
        rc = verify_run(&h->cfg, &o, &r, err);
    }
    cJSON_Delete(e);
    if (rc) {
        *error_type =
            rc == D2F_EUSAGE || rc == D2F_EINPUT ? "ddb2fs.VerifyRefused" : handler_error_type(rc);
        verify_report_release(&r);
        return rc;
    }
    verify_log(&r, h->function, stdout);
    if (!(j = verify_report_json(&r)) || !(text = json_print(j)) || buf_adds(answer, text))
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
    cJSON_free(text);
    cJSON_Delete(j);
    verify_report_release(&r);
    return rc;
}

int handler_invoke(struct handler *h, const char *event, size_t len, int64_t deadline_ms,
                   struct buf *answer, const char **error_type, struct d2f_err *err)
{
    struct ingest_result res = {0};
    struct drain_stats st = {0};
    int rc;

    *error_type = NULL;
    switch (kind_of(event, len)) {
    case UNKNOWN:
        *error_type = "ddb2fs.UnknownEvent";
        return d2f_errf(err, D2F_EINPUT,
                        "the event is neither a DynamoDB stream batch ('Records'), a "
                        "scheduled event (source aws.events), {\"ddb2fs\":\"status\"}, "
                        "{\"ddb2fs\":\"repartition\",...}, {\"ddb2fs\":\"backfill\",...} nor "
                        "{\"ddb2fs\":\"verify\",...}");
    case BACKFILL:
        return backfill_request(h, event, len, deadline_ms, answer, error_type, err);
    case VERIFY:
        return verify_request(h, event, len, deadline_ms, answer, error_type, err);
    case SCHEDULED: {
        int64_t left = deadline_ms - HANDLER_MARGIN_MS - d2f_now_ms();
        if ((rc = health(h, left < OUTBOX_CHECK_MS ? (left > 0 ? left : 0) : OUTBOX_CHECK_MS,
                         err)) != 0) {
            *error_type = handler_error_type(rc);
            return rc;
        }
    }
        drain_some(h, deadline_ms, 0, &st);
        backfill_some(h, deadline_ms);
        wait_until(h, deadline_ms - HANDLER_ANSWER_MS);
        drain_prune_set(partitions_all(h->set), partitions_count(h->set), &h->cfg,
                        deadline_ms - HANDLER_MARGIN_MS);
        wait_until(h, 0);
        metrics(h, &res, &st);
        rc = buf_addf(answer, "{\"drained\":%zu,\"pending\":%lld}", st.rows_committed,
                      (long long)st.pending_left);
        return rc ? d2f_errf(err, rc, "out of memory") : 0;
    case STATUS: {
        cJSON *status = NULL;
        char *text = NULL;
        if ((rc = status_collect_set(partitions_all(h->set), partitions_count(h->set), &status,
                                     err)) != 0) {
            *error_type = handler_error_type(rc);
            return rc;
        }
        text = json_print(status);
        cJSON_Delete(status);
        rc = text ? buf_adds(answer, text) : D2F_ENOMEM;
        cJSON_free(text);
        return rc ? d2f_errf(err, rc, "out of memory") : 0;
    }
    case REPARTITION:
        drain_some(h, deadline_ms, 0, &st); /* it moves an outbox with nothing pending */
        return repartition(h, event, len, answer, error_type, err);
    case STREAM:
        break;
    }
    /* a lock held elsewhere past the deadline: report the batch, Lambda retries it */
    if (moved(h) && (rc = reopen(h, err)) != 0)
        log_write(LOG_ERROR, err->msg, NULL); /* still the moved one: the batch is reported */
    wait_until(h, deadline_ms - HANDLER_MARGIN_MS);
    rc = ingest_event(h->ing, event, len, &res, err);
    wait_until(h, 0);
    if (rc == D2F_EINPUT || rc == D2F_ELIMIT) {
        *error_type = handler_error_type(rc);
        return rc;
    }
    if (rc) {
        /* nothing was kept: every record is a failure, and Lambda retries them */
        log_write(LOG_ERROR, err->msg, NULL);
    } else {
        ingest_log(&res, "batch durable");
        /* a batch's invocation drains one file of a partitioned outbox: the instances at once
         * drain apart, and the answer does not wait for every file */
        drain_some(h, deadline_ms, 1, &st);
        backfill_some(h, deadline_ms < d2f_now_ms() + HANDLER_BACKFILL_STREAM_MS + HANDLER_MARGIN_MS
                             ? deadline_ms
                             : d2f_now_ms() + HANDLER_BACKFILL_STREAM_MS + HANDLER_MARGIN_MS);
        metrics(h, &res, &st);
    }
    if (ingest_answer(event, len, rc != 0, answer) != 0) {
        *error_type = "ddb2fs.OutOfMemory";
        return d2f_errf(err, D2F_ENOMEM, "cannot build the answer");
    }
    return 0;
}
