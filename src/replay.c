/* replay.c: Firestore rebuilt or re-sent from the outbox, and dead records retried. */
#include "replay.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connect.h"
#include "event.h"
#include "firestore.h"
#include "gauth.h"
#include "json.h"
#include "lease.h"
#include "log.h"
#include "ramp.h"
#include "record.h"

/* One end of the range: a sequence number or a time. */
struct bound {
    int set;
    int is_seq;
    char seq_key[EVENT_SEQ_MAX_DIGITS + 1];
    int64_t ms;
};

/* "2026-11-24T10:00:00Z", "2026-11-24T10:00:00.250Z" or "2026-11-24" (UTC) into epoch ms. */
static int parse_time(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    long frac = 0;
    const char *end;

    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return -1;
    end = s + n;
    if (*end == 'T') {
        if (sscanf(end + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8)
            return -1;
        end += 1 + n;
        if (*end == '.') {
            int digits = 0;
            for (end++; isdigit((unsigned char)*end); end++, digits++)
                if (digits < 3)
                    frac = frac * 10 + (*end - '0');
            for (; digits < 3; digits++)
                frac *= 10;
        }
        if (*end++ != 'Z')
            return -1;
    }
    if (*end || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return 0;
}

static int parse_bound(const char *name, const char *s, struct bound *b, struct d2f_err *err)
{
    memset(b, 0, sizeof(*b));
    if (!s)
        return 0;
    b->set = 1;
    if (strspn(s, "0123456789") == strlen(s) && *s) {
        b->is_seq = 1;
        if (event_seq_key(s, b->seq_key) == 0)
            return 0;
    } else if (parse_time(s, &b->ms) == 0) {
        return 0;
    }
    return d2f_errf(err, D2F_EUSAGE,
                    "%s: '%.64s' is neither a sequence number (digits) nor a time "
                    "(2026-11-24T10:00:00Z or 2026-11-24, UTC)",
                    name, s);
}

/* The conditions the options put on records (alias i, joined with s), as SQL with named
 * parameters. */
static void filters(const struct replay_opts *o, const struct bound *since,
                    const struct bound *until, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s%s", o->table ? " AND i.table_name = :table" : "",
             o->doc ? " AND i.document = :doc" : "",
             !since->set     ? ""
             : since->is_seq ? " AND i.seq_key >= :since"
                             : " AND coalesce(i.created_at, i.arrived_at) >= :since",
             !until->set     ? ""
             : until->is_seq ? " AND i.seq_key <= :until"
                             : " AND coalesce(i.created_at, i.arrived_at) <= :until");
}

static void bind_filters(sqlite3_stmt *st, const struct replay_opts *o, const struct bound *since,
                         const struct bound *until)
{
    const struct bound *b[2] = {since, until};
    const char *names[2] = {":since", ":until"};
    int i;

    if ((i = sqlite3_bind_parameter_index(st, ":table")) > 0)
        sqlite3_bind_text(st, i, o->table, -1, SQLITE_STATIC);
    if ((i = sqlite3_bind_parameter_index(st, ":doc")) > 0)
        sqlite3_bind_text(st, i, o->doc, -1, SQLITE_STATIC);
    for (int k = 0; k < 2; k++) {
        if ((i = sqlite3_bind_parameter_index(st, names[k])) <= 0)
            continue;
        if (b[k]->is_seq)
            sqlite3_bind_text(st, i, b[k]->seq_key, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st, i, b[k]->ms);
    }
}

/* What a replay selects. */
enum pick {
    PICK_SEND,       /* the rows to send */
    PICK_UNPLANNED,  /* dead rows kept without an operation: planned again first */
    PICK_SUPERSEDED, /* dead rows with a newer live row of their document */
    PICK_WAITING,    /* dead rows behind a pending row of their document */
};

/* The SQL selecting rows (id, document, table_name) in id order after :after, up to :limit;
 * where: the filters' conditions on i. */
static void selection(const struct replay_opts *o, int live, enum pick what, const char *where,
                      char *sql, size_t cap)
{
    static const char newer_live[] =
        "EXISTS (SELECT 1 FROM record_info j JOIN record_state t USING (id) "
        "WHERE j.document = i.document AND j.id > i.id AND t.state <> 'dead' "
        "AND j.op IN ('update', 'delete'))";
    static const char older_pending[] =
        "EXISTS (SELECT 1 FROM record_info j JOIN record_state t USING (id) "
        "WHERE j.document = i.document AND j.id < i.id AND t.state = 'pending')";
    static const char dead[] = "SELECT i.id, i.document, i.table_name "
                               "FROM record_info i JOIN record_state s USING (id) "
                               "WHERE s.state = 'dead'";
    static const char tail[] = " AND i.id > :after ORDER BY i.id LIMIT :limit";

    if (o->mode == REPLAY_DEAD) {
        if (what == PICK_UNPLANNED)
            snprintf(sql, cap, "%s AND i.op IS NULL%s%s", dead, where, tail);
        else if (what == PICK_WAITING)
            snprintf(sql, cap, "%s AND i.op IN ('update', 'delete')%s AND %s%s", dead, where,
                     older_pending, tail);
        else
            snprintf(sql, cap, "%s AND i.op IN ('update', 'delete')%s AND NOT %s AND %s%s%s", dead,
                     where, older_pending, what == PICK_SEND ? "NOT " : "", newer_live, tail);
        return;
    }
    /* rebuild, resend: per document its last chosen row that is not dead; against the live
     * target its newest such row, whatever the range, so that nothing moves back */
    /* a snapshot stands once it was sent; a row a backfill superseded never does */
    snprintf(sql, cap,
             "WITH chosen AS (SELECT i.id, i.document FROM record_info i "
             "JOIN record_state s USING (id) WHERE i.document IS NOT NULL AND s.state <> 'dead' "
             "AND i.op IN ('update', 'delete') AND coalesce(s.last_error, '') NOT LIKE "
             "'superseded: %%' AND (i.kind = 'stream' OR (SELECT outcome FROM snapshot p "
             "WHERE p.id = i.id) = 'sent')%s), "
             "latest AS (%s) "
             "SELECT i.id, i.document, i.table_name FROM record_info i "
             "WHERE i.id IN (SELECT id FROM latest)%s%s",
             where,
             live ? "SELECT max(j.id) AS id FROM record_info j JOIN record_state t USING (id) "
                    "WHERE t.state <> 'dead' AND j.op IN ('update', 'delete') "
                    "AND coalesce(t.last_error, '') NOT LIKE 'superseded: %' "
                    "AND (j.kind = 'stream' OR (SELECT outcome FROM snapshot p "
                    "WHERE p.id = j.id) = 'sent') "
                    "AND j.document IN (SELECT document FROM chosen) GROUP BY j.document"
                  : "SELECT max(id) AS id FROM chosen GROUP BY document",
             o->mode == REPLAY_REBUILD ? " AND i.op = 'update'" : "", tail);
}

struct replay {
    const struct replay_opts *o;
    const struct config *cfg;
    struct outbox *ob;
    struct firestore *fs;
    struct replay_result *res;
    struct bound since, until;
    char where[512];
    int64_t deadline;
    int64_t ramp_from;
    char owner[320];    /* the drain lease's owner name, "" when not held */
    int64_t lease_left; /* when the lease runs out (ms) */
    FILE *out;
    /* progress */
    FILE *progress;
    int tty;
    size_t total, base;
    int64_t start, shown;
};

/* Prepares a selection (count: its number of rows instead) after id after, up to limit rows. */
static int prepare(struct replay *rp, enum pick what, int count, int64_t after, size_t limit,
                   sqlite3_stmt **st, struct d2f_err *err)
{
    char sql[4096], counted[4200];

    selection(rp->o, rp->res->live, what, rp->where, sql, sizeof(sql));
    if (count)
        snprintf(counted, sizeof(counted), "SELECT count(*) FROM (%s)", sql);
    if (sqlite3_prepare_v2(outbox_db(rp->ob), count ? counted : sql, -1, st, NULL) != SQLITE_OK)
        return d2f_errf(err, D2F_EDB, "cannot read outbox '%s': %s", outbox_path(rp->ob),
                        sqlite3_errmsg(outbox_db(rp->ob)));
    bind_filters(*st, rp->o, &rp->since, &rp->until);
    sqlite3_bind_int64(*st, sqlite3_bind_parameter_index(*st, ":after"), after);
    sqlite3_bind_int64(*st, sqlite3_bind_parameter_index(*st, ":limit"), (sqlite3_int64)limit);
    return 0;
}

/* Reads up to limit rows of a selection after id after. */
static int select_rows(struct replay *rp, enum pick what, int64_t after, size_t limit,
                       struct outbox_pending **rows, size_t *n, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(rp, what, 0, after, limit, &st, err);

    if (!rc)
        rc = outbox_select_rows(rp->ob, st, limit, rows, n, err);
    sqlite3_finalize(st);
    return rc;
}

/* How many rows a selection has, in one query. */
static int count_rows(struct replay *rp, enum pick what, size_t *count, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(rp, what, 1, 0, (size_t)-1 >> 1, &st, err);

    *count = 0;
    if (!rc && sqlite3_step(st) == SQLITE_ROW)
        *count = (size_t)sqlite3_column_int64(st, 0);
    else if (!rc)
        rc = d2f_errf(err, D2F_EDB, "cannot count in outbox '%s': %s", outbox_path(rp->ob),
                      sqlite3_errmsg(outbox_db(rp->ob)));
    sqlite3_finalize(st);
    return rc;
}

/* ---- progress ------------------------------------------------------------------------- */

/* The lease is held a few minutes at a time and renewed as the replay goes on, so that a replay
 * that dies on another host holds the drain back for minutes, not for its whole budget. */
static void renew_lease(struct replay *rp, int64_t now)
{
    struct d2f_err err = {0};

    if (!rp->owner[0] || rp->lease_left - now > LEASE_REPLAY_SPAN_MS - LEASE_MARGIN_MS)
        return;
    if (lease_renew(rp->ob, rp->owner, now + LEASE_REPLAY_SPAN_MS, &err) == 0)
        rp->lease_left = now + LEASE_REPLAY_SPAN_MS;
    else
        log_write(LOG_ERROR, err.msg, NULL);
}

/* Shows how far the replay is: a bar on a terminal, a line every 5 s otherwise. */
static void show(struct replay *rp, const struct drain_stats *st, int64_t now)
{
    int64_t took = now - rp->start;
    size_t done = rp->base + st->writes + st->rows_dead;
    double rate = took > 0 ? (double)done * 1000.0 / (double)took : 0;
    long eta;
    int pct;

    if (!rp->progress || now - rp->shown < (rp->tty ? 100 : 5000))
        return;
    rp->shown = now;
    if (done > rp->total)
        done = rp->total;
    eta = rate > 0 ? (long)((double)(rp->total - done) / rate) : 0;
    pct = rp->total ? (int)(done * 100 / rp->total) : 100;
    if (rp->tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(30 - fill));
        bar[30] = '\0';
        fprintf(rp->progress, "\rreplay [%s] %3d%% %zu/%zu documents  %.0f/s  ETA %lds   ", bar,
                pct, done, rp->total, rate, eta);
    } else {
        fprintf(rp->progress, "replay: %zu/%zu documents (%d%%), %.0f/s, ETA %ld s\n", done,
                rp->total, pct, rate, eta);
    }
    fflush(rp->progress);
}

/* After each wave of commits: keep the lease, show the progress. */
static void after_wave(void *ctx, const struct drain_stats *st)
{
    struct replay *rp = ctx;
    int64_t now = d2f_now_ms();

    renew_lease(rp, now);
    show(rp, st, now);
}

/* ---- the steps ---------------------------------------------------------------------------- */

/* Prints what a dead row planned again would be: its Write, or why it stays dead. */
static void print_plan(FILE *out, const struct record_plan *plan)
{
    cJSON *line = plan->write ? NULL : cJSON_CreateObject();
    char *text;

    if (line)
        cJSON_AddStringToObject(line, "error", plan->error ? plan->error : "not planned");
    text = json_print(plan->write ? plan->write : line);
    if (text)
        fprintf(out, "%s\n", text);
    cJSON_free(text);
    cJSON_Delete(line);
}

/* Plans one dead row kept without an operation again. */
static int replan_row(struct replay *rp, int64_t id, struct d2f_err *err)
{
    const char *prefix = rp->o->dry_run ? firestore_docs_prefix(rp->fs) : NULL;
    struct record_plan plan;
    int parsed, ok, rc;

    record_plan_init(&plan);
    rc = drain_plan_row(rp->ob, rp->cfg, id, !rp->o->dry_run, prefix, &plan, &parsed, err);
    ok = plan.op == RECORD_UPDATE || plan.op == RECORD_DELETE;
    if (rc || !parsed || plan.unresolved) {
        rp->res->still_dead += !rc;
    } else {
        rp->res->still_dead += !ok;
        if (rp->o->dry_run)
            print_plan(rp->out, &plan);
        else if (ok)
            rc = outbox_replan(rp->ob, id, plan.op == RECORD_UPDATE ? "update" : "delete",
                               plan.document.data, "planned again by replay --dead", err);
        else
            rc = outbox_replan(rp->ob, id, NULL, plan.document.len ? plan.document.data : NULL,
                               plan.error, err);
    }
    record_plan_release(&plan);
    return rc;
}

/* Plans dead rows kept without an operation again (a fix may have come since): those that now
 * plan get their operation and document, and are sent with the others; the rest stay dead with
 * today's reason. A dry run prints what they would become. */
static int replan(struct replay *rp, struct d2f_err *err)
{
    int64_t after = 0;
    int rc = 0;

    while (!rc) {
        struct outbox_pending *rows = NULL;
        size_t n = 0;
        if ((rc = select_rows(rp, PICK_UNPLANNED, after, 1000, &rows, &n, err)) == 0 && n)
            after = rows[n - 1].id;
        for (size_t k = 0; k < n && !rc; k++)
            rc = replan_row(rp, rows[k].id, err);
        outbox_pending_free(rows, n);
        if (!n)
            break;
    }
    return rc;
}

/* Dead rows with a newer live row of their document: committed in effect, nothing to send. */
static int supersede(struct replay *rp, struct d2f_err *err)
{
    int64_t after = 0;
    int rc;

    for (;;) {
        struct outbox_pending *rows = NULL;
        int64_t *ids;
        size_t n = 0;
        if ((rc = select_rows(rp, PICK_SUPERSEDED, after, 1000, &rows, &n, err)) != 0 || !n) {
            outbox_pending_free(rows, n);
            return rc;
        }
        after = rows[n - 1].id;
        rp->res->superseded += n;
        ids = malloc(n * sizeof(*ids));
        if (!ids)
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        for (size_t k = 0; ids && k < n; k++)
            ids[k] = rows[k].id;
        if (ids && !rp->o->dry_run)
            rc = outbox_mark(rp->ob, ids, n, OUTBOX_COMMITTED, NULL, err);
        free(ids);
        outbox_pending_free(rows, n);
        if (rc)
            return rc;
    }
}

/* Sends the chosen rows, a window at a time. */
static int send_all(struct replay *rp, struct d2f_err *err)
{
    struct drain_how how = {.mark = rp->o->mode == REPLAY_DEAD,
                            .ramp_from = rp->ramp_from,
                            .dry_run = rp->o->dry_run ? rp->out : NULL,
                            .progress = after_wave,
                            .ctx = rp};
    int64_t after = 0;
    int rc;

    if ((rc = count_rows(rp, PICK_SEND, &rp->total, err)) != 0)
        return rc;
    rp->res->documents = rp->total;
    for (;;) {
        struct outbox_pending *rows = NULL;
        struct drain_stats st = {0};
        size_t n = 0;

        if ((rc = select_rows(rp, PICK_SEND, after, DRAIN_WINDOW, &rows, &n, err)) != 0 || !n) {
            outbox_pending_free(rows, n);
            break;
        }
        after = rows[n - 1].id;
        rc = drain_send(rp->ob, rp->cfg, rp->fs, rows, n, &how, rp->deadline, &st, err);
        drain_stats_add(&rp->res->st, &st);
        rp->base += st.writes + st.rows_dead;
        outbox_pending_free(rows, n);
        if (rc)
            break;
    }
    rp->res->written = rp->res->st.writes;
    rp->res->failed = rp->res->st.rows_dead;
    rp->shown = 0;
    show(rp, &(struct drain_stats){0}, d2f_now_ms());
    if (rp->tty && rp->progress)
        fputc('\n', rp->progress);
    return rc;
}

int replay_run(const struct replay_opts *o, const struct config *cfg, struct outbox *ob,
               struct http *http, FILE *out, FILE *progress, struct replay_result *res,
               struct d2f_err *err)
{
    struct config target = *cfg;
    struct replay rp = {
        .o = o, .cfg = &target, .ob = ob, .res = res, .out = out, .progress = progress};
    char live[2400];
    struct gauth *auth = NULL;
    int rc;

    memset(res, 0, sizeof(*res));
    if ((rc = parse_bound("--since", o->since, &rp.since, err)) != 0 ||
        (rc = parse_bound("--until", o->until, &rp.until, err)) != 0)
        return rc;
    filters(o, &rp.since, &rp.until, rp.where, sizeof(rp.where));
    if (o->project)
        target.project = o->project;
    if (o->database)
        target.database = o->database;
    if (o->emulator)
        target.emulator = o->emulator;
    rp.start = rp.shown = d2f_now_ms();
    rp.deadline = rp.start + o->seconds * 1000;
    rp.tty = progress && isatty(fileno(progress));
    /* the target, and whether it is the drain's own */
    if (o->dry_run)
        rc = firestore_names(&rp.fs, target.project ? target.project : "-", target.database, err);
    else
        rc = connect_firestore(&target, http, &auth, &rp.fs, err);
    if (rc)
        goto out;
    /* the drain's own target: the configured server, project (or the key's) and database */
    (void)firestore_docs_path(live, sizeof(live),
                              cfg->project ? cfg->project
                              : auth       ? gauth_project(auth)
                                           : "-",
                              cfg->database); /* a name cut short is no target's: not live */
    res->live = o->dry_run ? !o->project && !o->database && !o->emulator
                           : strcmp(live, firestore_docs_prefix(rp.fs)) == 0 &&
                                 (cfg->emulator ? target.emulator &&
                                                      strcmp(cfg->emulator, target.emulator) == 0
                                                : !target.emulator);
    if (o->mode == REPLAY_DEAD && !res->live) {
        rc = d2f_errf(err, D2F_EUSAGE,
                      "--dead retries against the drain's own target: drop --project, "
                      "--database and --emulator");
        goto out;
    }
    if (res->live && !o->dry_run) {
        /* lease_take adds its margin to the span */
        if ((rc = lease_take(ob, rp.start + LEASE_REPLAY_SPAN_MS - LEASE_MARGIN_MS, rp.owner,
                             sizeof(rp.owner), err)) != 0) {
            rp.owner[0] = '\0';
            goto out;
        }
        rp.lease_left = rp.start + LEASE_REPLAY_SPAN_MS;
        if (cfg->ramp) {
            int found = 0;
            if ((rc = outbox_meta_get(ob, RAMP_META_KEY, &rp.ramp_from, &found, err)) != 0)
                goto out;
            if (!found)
                rp.ramp_from = rp.start;
        }
    } else {
        rp.ramp_from = rp.start; /* another database: its own ramp-up, from now */
    }
    if (o->mode == REPLAY_DEAD) {
        size_t waiting = 0;
        if ((rc = replan(&rp, err)) != 0 || (rc = supersede(&rp, err)) != 0 ||
            (rc = count_rows(&rp, PICK_WAITING, &waiting, err)) != 0)
            goto out;
        res->waiting = waiting;
    }
    rc = send_all(&rp, err);
    if (!rc && res->failed)
        rc = d2f_errf(err, D2F_EREMOTE, "%zu writes were refused for good (see the log)",
                      res->failed);
out:
    if (rp.owner[0])
        lease_release(ob, rp.owner);
    firestore_free(rp.fs);
    gauth_free(auth);
    return rc;
}

void replay_log(const struct replay_opts *o, const struct replay_result *res, const char *stopped)
{
    static const char *const modes[] = {"rebuild", "resend", "dead"};
    cJSON *f = cJSON_CreateObject();

    cJSON_AddStringToObject(f, "mode", modes[o->mode]);
    cJSON_AddStringToObject(f, "target", res->live ? "live" : "other");
    cJSON_AddBoolToObject(f, "dry_run", o->dry_run);
    json_add_number(f, "documents", (double)res->documents);
    json_add_number(f, "written", (double)res->written);
    json_add_number(f, "failed", (double)res->failed);
    if (o->mode == REPLAY_DEAD) {
        json_add_number(f, "committed", (double)res->st.rows_committed);
        json_add_number(f, "superseded", (double)res->superseded);
        json_add_number(f, "waiting", (double)res->waiting);
        json_add_number(f, "still_dead", (double)res->still_dead);
    }
    json_add_number(f, "commits", (double)res->st.commits);
    json_add_number(f, "retries", (double)res->st.retries);
    if (stopped)
        cJSON_AddStringToObject(f, "stopped", stopped);
    log_write(stopped ? LOG_ERROR : LOG_INFO, stopped ? "replay stopped" : "replayed", f);
}

int replay_run_set(const struct replay_opts *o, const struct config *cfg, struct outbox *const *obs,
                   size_t n, struct http *http, FILE *out, FILE *progress,
                   struct replay_result *res, struct d2f_err *err)
{
    struct replay_opts each = *o;
    int64_t until = d2f_now_ms() + o->seconds * 1000;
    int rc = 0;

    if (n == 1)
        return replay_run(o, cfg, obs[0], http, out, progress, res, err);
    memset(res, 0, sizeof(*res));
    /* a document lives in one file: the files are replayed one after the other, each with its
     * own lease, in the time left */
    for (size_t i = 0; i < n && !rc; i++) {
        struct replay_result one = {0};
        int64_t left = (until - d2f_now_ms()) / 1000;
        if (left < 1)
            return d2f_errf(err, D2F_ETIME, "the time budget ran out before partition %zu", i);
        each.seconds = left;
        rc = replay_run(&each, cfg, obs[i], http, out, progress, &one, err);
        res->documents += one.documents;
        res->written += one.written;
        res->failed += one.failed;
        res->superseded += one.superseded;
        res->waiting += one.waiting;
        res->still_dead += one.still_dead;
        res->live = one.live;
        drain_stats_add(&res->st, &one.st);
    }
    return rc;
}
