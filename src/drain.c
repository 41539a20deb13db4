/* drain.c: pending outbox rows become Firestore documents, in order, exactly once in effect. */
#include "drain.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "event.h"
#include "ingest.h"
#include "log.h"
#include "record.h"

/* Bytes of a commit body besides its writes: {"writes":[…]} and the commas. */
#define BODY_OVERHEAD 16
/* How long after its deadline a drainer's lease lasts: requests it sent may still land. */
#define LEASE_MARGIN_MS 60000

/* One write: a document's last pending row in the window, standing for the rows before it. */
struct item {
    int64_t *ids; /* the rows, in arrival order; the last one is written */
    size_t nids;
    const char *doc; /* its document; owned by the window's rows */
    char *write;     /* the Write's JSON */
    size_t len;
};

/* A commit to send. */
struct batch {
    struct item **items;
    size_t n;
    unsigned attempts;
    int64_t not_before; /* ms; retries wait for their backoff */
};

struct run {
    struct outbox *ob;
    const struct config *cfg;
    struct firestore *fs;
    struct drain_stats *st;
    int64_t deadline;  /* calls end by then */
    int64_t stop_at;   /* no new wave starts after this */
    int64_t ramp_from; /* when the ramp-up began, ms; 0 when it is off */
    double allowance;  /* writes the ramp-up allows now */
    int64_t refilled;  /* when allowance was last topped up */
    int reauthed;      /* the token was renewed after a 401 and nothing landed since */
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    if (ms > 0)
        nanosleep(&ts, NULL);
}

/* ---- one window: rows to items -------------------------------------------------------- */

/* Reads a kept row back into a record (rec->json NULL when it is not JSON); *op and *raw
 * belong to the caller, who releases rec first. */
static int load_row(struct run *r, int64_t id, struct event_record *rec, char **op, char **raw,
                    struct d2f_err *err)
{
    size_t len = 0;
    int rc = outbox_record(r->ob, id, op, raw, &len, err);

    memset(rec, 0, sizeof(*rec));
    if (rc)
        return rc;
    rec->raw = *raw;
    rec->raw_len = len;
    rec->json = cJSON_ParseWithLength(*raw, len);
    if (rec->json)
        event_record_check(rec);
    return 0;
}

/* Gives a row whose key schema was unknown at ingest its document, if the schema is known now.
 * Returns 0 (row->document set or still NULL) or an outbox error. */
static int resolve(struct run *r, struct outbox_pending *row, struct d2f_err *err)
{
    struct event_record rec;
    struct record_plan plan;
    const char *pk, *sk;
    char *op = NULL, *raw = NULL;
    int rc;

    if ((rc = load_row(r, row->id, &rec, &op, &raw, err)) != 0)
        return rc;
    record_plan_init(&plan);
    if (rec.json && (rc = ingest_keys(r->ob, r->cfg, &rec, &pk, &sk, err)) == 0 && pk &&
        (rc = record_plan(&rec, r->cfg, pk, sk, NULL, &plan)) == 0 && plan.document.len) {
        rc = outbox_set_document(r->ob, row->id, plan.document.data, err);
        if (!rc && !(row->document = strdup(plan.document.data)))
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    record_plan_release(&plan);
    event_record_release(&rec);
    free(op);
    free(raw);
    return rc;
}

static const struct outbox_pending *sort_rows;

static int by_document(const void *a, const void *b)
{
    const struct outbox_pending *x = &sort_rows[*(const size_t *)a];
    const struct outbox_pending *y = &sort_rows[*(const size_t *)b];
    int c = strcmp(x->document, y->document);

    return c ? c : (x->id > y->id) - (x->id < y->id);
}

static int by_last_id(const void *a, const void *b)
{
    const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
    int64_t i = x->ids[x->nids - 1], j = y->ids[y->nids - 1];

    return (i > j) - (i < j);
}

static void free_item(struct item *it)
{
    if (it) {
        free(it->ids);
        free(it->write);
        free(it);
    }
}

static void free_items(struct item **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free_item(items[i]);
    free(items);
}

/* Marks an item's rows dead: the written row with why, the rows it stood for as superseded. */
static int bury(struct run *r, struct item *it, const char *why, struct d2f_err *err)
{
    char superseded[D2F_ERR_MSG + 64];
    int rc;

    log_write(LOG_WARN, why, NULL);
    rc = outbox_mark(r->ob, &it->ids[it->nids - 1], 1, "dead", why, err);
    if (!rc && it->nids > 1) {
        snprintf(superseded, sizeof(superseded), "superseded by row %lld, which is dead: %s",
                 (long long)it->ids[it->nids - 1], why);
        rc = outbox_mark(r->ob, it->ids, it->nids - 1, "dead", superseded, err);
    }
    if (!rc)
        r->st->rows_dead += it->nids;
    return rc;
}

/* Builds the write of an item from its last row. A row that cannot be written is buried and
 * *keep is 0. */
static int build_item(struct run *r, struct item *it, int *keep, struct d2f_err *err)
{
    struct event_record rec;
    struct d2f_err why = {0};
    char *op = NULL, *raw = NULL;
    int rc;

    *keep = 0;
    if ((rc = load_row(r, it->ids[it->nids - 1], &rec, &op, &raw, err)) != 0)
        return rc;
    if (!rec.json) {
        d2f_errf(&why, D2F_EINPUT, "row %lld: the kept record is not JSON",
                 (long long)it->ids[it->nids - 1]);
        rc = D2F_EINPUT;
    } else {
        rc = record_write(&rec, r->cfg, firestore_docs_prefix(r->fs), it->doc,
                          op && strcmp(op, "delete") == 0, &it->write, &it->len, &why);
    }
    event_record_release(&rec);
    free(op);
    free(raw);
    if (rc == D2F_ENOMEM)
        return d2f_errf(err, rc, "out of memory");
    if (rc)
        return bury(r, it, why.msg, err);
    *keep = 1;
    return 0;
}

/* Collapses a window to one item per document (its rows, the last one to be written), in
 * arrival order of their last rows. Rows whose key schema is still unknown are left out. */
static int make_items(struct run *r, struct outbox_pending *rows, size_t n, struct item ***out,
                      size_t *nout, struct d2f_err *err)
{
    size_t *order = calloc(n ? n : 1, sizeof(*order)), m = 0, nitems = 0;
    struct item **items = calloc(n ? n : 1, sizeof(*items));
    int rc = 0;

    *out = NULL;
    *nout = 0;
    if (!order || !items) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (!rows[i].document)
            rc = resolve(r, &rows[i], err);
        if (!rc && rows[i].document)
            order[m++] = i;
    }
    if (rc)
        goto out;
    sort_rows = rows;
    qsort(order, m, sizeof(*order), by_document);
    for (size_t i = 0; i < m;) {
        size_t j = i;
        struct item *it;

        while (j < m && strcmp(rows[order[j]].document, rows[order[i]].document) == 0)
            j++;
        it = calloc(1, sizeof(*it));
        if (!it || !(it->ids = calloc(j - i, sizeof(*it->ids)))) {
            free(it);
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t k = i; k < j; k++)
            it->ids[it->nids++] = rows[order[k]].id;
        it->doc = rows[order[j - 1]].document;
        items[nitems++] = it;
        i = j;
    }
    qsort(items, nitems, sizeof(*items), by_last_id);
    *out = items;
    *nout = nitems;
    items = NULL;
out:
    free(order);
    if (items)
        free_items(items, nitems);
    return rc;
}

/* ---- sending ---------------------------------------------------------------------------- */

static struct batch *new_batch(struct item **items, size_t n)
{
    struct batch *b = calloc(1, sizeof(*b));

    if (b && !(b->items = malloc((n ? n : 1) * sizeof(*b->items)))) {
        free(b);
        return NULL;
    }
    if (b) {
        memcpy(b->items, items, n * sizeof(*items));
        b->n = n;
    }
    return b;
}

static void free_batch(struct batch *b)
{
    if (b) {
        free(b->items);
        free(b);
    }
}

/* All the row ids of a batch's items. */
static int64_t *batch_ids(const struct batch *b, size_t *n)
{
    size_t total = 0, k = 0;
    int64_t *ids;

    for (size_t i = 0; i < b->n; i++)
        total += b->items[i]->nids;
    ids = malloc((total ? total : 1) * sizeof(*ids));
    if (!ids)
        return NULL;
    for (size_t i = 0; i < b->n; i++) {
        memcpy(ids + k, b->items[i]->ids, b->items[i]->nids * sizeof(*ids));
        k += b->items[i]->nids;
    }
    *n = total;
    return ids;
}

/* Appends n ids to a growing array. */
static int append_ids(int64_t **list, size_t *n, size_t *cap, const int64_t *ids, size_t k)
{
    if (*n + k > *cap) {
        size_t want = (*n + k) * 2;
        int64_t *p = realloc(*list, want * sizeof(*p));
        if (!p)
            return D2F_ENOMEM;
        *list = p;
        *cap = want;
    }
    memcpy(*list + *n, ids, k * sizeof(*ids));
    *n += k;
    return 0;
}

static int body_of(const struct batch *b, struct buf *body)
{
    int rc = buf_adds(body, "{\"writes\":[");

    for (size_t i = 0; i < b->n && !rc; i++) {
        if (i)
            rc = buf_addc(body, ',');
        if (!rc)
            rc = buf_add(body, b->items[i]->write, b->items[i]->len);
    }
    return rc ? rc : buf_adds(body, "]}");
}

/* Writes per second the ramp-up allows now. */
static double ramp_rate(const struct run *r, int64_t now)
{
    double steps = (double)((now - r->ramp_from) / DRAIN_RAMP_STEP_MS);

    return DRAIN_RAMP_START * pow(1.5, steps < 60 ? steps : 60);
}

/* Waits until the ramp-up allows n writes; 0 when the time is up first. */
static int ramp_wait(struct run *r, size_t n)
{
    for (;;) {
        int64_t now = http_now_ms();
        double rate = ramp_rate(r, now), need = (double)n < rate ? (double)n : rate;

        r->allowance += rate * (double)(now - r->refilled) / 1000.0;
        if (r->allowance > rate)
            r->allowance = rate;
        r->refilled = now;
        if (r->allowance >= need) {
            r->allowance -= (double)n;
            return 1;
        }
        if (now + (int64_t)((need - r->allowance) * 1000.0 / rate) > r->stop_at)
            return 0;
        sleep_ms((int64_t)((need - r->allowance) * 1000.0 / rate) + 1);
    }
}

/* What to do with a batch after an answer. */
enum verdict { LANDED, AGAIN, SPLIT, BURY, STOP };

static enum verdict judge(struct run *r, const struct firestore_commit *c, const struct batch *b)
{
    if (c->status == RETRY_OK)
        return LANDED;
    if (c->status == RETRY_UNAUTHENTICATED && !r->reauthed)
        return AGAIN;
    if (retry_transient(c->status))
        return AGAIN;
    if (c->status == RETRY_INVALID_ARGUMENT)
        return b->n > 1 ? SPLIT : BURY;
    return STOP;
}

/* Sends every batch of a window. Returns 0 when all landed (or were buried); otherwise the
 * reason the drain stops, with rows left pending. */
static int send_all(struct run *r, struct batch **queue, size_t nqueue, struct d2f_err *err)
{
    size_t cap = nqueue * 2 + 8, wave_cap = (size_t)r->cfg->concurrency;
    struct firestore_commit *commits = calloc(wave_cap, sizeof(*commits));
    struct firestore_commit **pc = calloc(wave_cap, sizeof(*pc));
    struct batch **wave = calloc(wave_cap, sizeof(*wave));
    struct batch **q = malloc(cap * sizeof(*q));
    char last_error[512] = "";
    int64_t *landed = NULL;
    size_t nlanded = 0, landed_cap = 0;
    int rc = 0, stop = 0;

    if (!commits || !pc || !wave || !q) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(q, queue, nqueue * sizeof(*q));
    for (size_t i = 0; i < wave_cap; i++) {
        firestore_commit_init(&commits[i]);
        pc[i] = &commits[i];
    }
    while (nqueue && !rc && !stop) {
        int64_t now = http_now_ms(), soonest = INT64_MAX;
        size_t n = 0, writes = 0;

        if (now >= r->stop_at) {
            stop =
                d2f_errf(err, D2F_EIO, "the time budget ran out with %zu commits unsent", nqueue);
            break;
        }
        /* a wave: the batches whose backoff is over, up to the concurrency */
        for (size_t i = 0; i < nqueue && n < wave_cap;) {
            if (q[i]->not_before <= now) {
                wave[n++] = q[i];
                writes += q[i]->n;
                q[i] = q[--nqueue];
            } else {
                soonest = q[i]->not_before < soonest ? q[i]->not_before : soonest;
                i++;
            }
        }
        if (n == 0) {
            if (soonest > r->stop_at) {
                stop = d2f_errf(err, D2F_EIO,
                                "the time budget ran out while commits waited to be retried");
                break;
            }
            sleep_ms(soonest - now);
            continue;
        }
        if (r->ramp_from && !ramp_wait(r, writes)) {
            for (size_t i = 0; i < n; i++)
                q[nqueue++] = wave[i];
            stop =
                d2f_errf(err, D2F_EIO, "the time budget ran out (ramp-up pacing at %.0f writes/s)",
                         ramp_rate(r, http_now_ms()));
            break;
        }
        for (size_t i = 0; i < n && !rc; i++) {
            buf_reset(&commits[i].body);
            if (body_of(wave[i], &commits[i].body) != 0)
                rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        }
        if (!rc)
            rc = firestore_commit_all(r->fs, pc, n, r->deadline, err);
        if (rc) {
            for (size_t i = 0; i < n; i++)
                q[nqueue++] = wave[i];
            break;
        }
        r->st->commits += n;
        /* every answer of the wave is taken in, even after one says stop */
        for (size_t i = 0; i < n; i++) {
            struct batch *b = wave[i];
            int64_t *ids;
            size_t nids = 0;

            switch (rc ? AGAIN : judge(r, &commits[i], b)) {
            case LANDED:
                ids = batch_ids(b, &nids);
                if (!ids || append_ids(&landed, &nlanded, &landed_cap, ids, nids) != 0) {
                    free(ids);
                    q[nqueue++] = b;
                    rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
                    break;
                }
                free(ids);
                r->st->writes += b->n;
                r->reauthed = 0;
                free_batch(b);
                break;
            case AGAIN:
                if (!rc && commits[i].status == RETRY_UNAUTHENTICATED) {
                    firestore_reauthenticate(r->fs);
                    r->reauthed = 1;
                } else if (!rc) {
                    b->attempts++;
                    b->not_before =
                        http_now_ms() + retry_backoff_ms(b->attempts, randombytes_random());
                    r->st->retries++;
                    snprintf(last_error, sizeof(last_error), "%s", commits[i].message);
                }
                q[nqueue++] = b;
                break;
            case SPLIT: {
                size_t half = b->n / 2;
                struct batch *left = new_batch(b->items, half);
                struct batch *right = new_batch(b->items + half, b->n - half);
                if (!left || !right || nqueue + 2 > cap) {
                    free_batch(left);
                    free_batch(right);
                    q[nqueue++] = b;
                    rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
                    break;
                }
                q[nqueue++] = left;
                q[nqueue++] = right;
                r->st->bisections++;
                free_batch(b);
                break;
            }
            case BURY:
                rc = bury(r, b->items[0], commits[i].message, err);
                if (rc)
                    q[nqueue++] = b;
                else
                    free_batch(b);
                break;
            case STOP:
                q[nqueue++] = b;
                b->attempts++;
                snprintf(last_error, sizeof(last_error), "%s", commits[i].message);
                if (!stop)
                    stop = d2f_errf(err, D2F_EREMOTE, "Firestore refused a commit: %s",
                                    commits[i].message);
                break;
            }
        }
        /* the wave's landed commits are marked together: one SQLite transaction, so that
         * each commit's rows become committed at once */
        if (nlanded) {
            int mrc = outbox_mark(r->ob, landed, nlanded, "committed", NULL, err);
            if (!mrc)
                r->st->rows_committed += nlanded;
            else if (!rc)
                rc = mrc;
            nlanded = 0;
        }
    }
    if (!rc)
        rc = stop;
    if (rc) {
        /* what did not land stays pending; the rows that were tried say why */
        for (size_t i = 0; i < nqueue; i++) {
            if (q[i]->attempts) {
                size_t nids = 0;
                int64_t *ids = batch_ids(q[i], &nids);
                struct d2f_err note_err = {0};
                if (ids && outbox_note_failure(r->ob, ids, nids, last_error, &note_err) != 0)
                    log_write(LOG_WARN, note_err.msg, NULL);
                free(ids);
            }
        }
    }
out:
    free(landed);
    for (size_t i = 0; q && i < nqueue; i++)
        free_batch(q[i]);
    for (size_t i = 0; commits && i < wave_cap; i++)
        firestore_commit_release(&commits[i]);
    free(commits);
    free(pc);
    free(wave);
    free(q);
    return rc;
}

/* Cuts items into commits bounded by the write count and the byte size. */
static int plan_batches(struct run *r, struct item **items, size_t n, struct batch ***out,
                        size_t *nout, struct d2f_err *err)
{
    struct batch **list = calloc(n ? n : 1, sizeof(*list));
    size_t nb = 0, start = 0, bytes = BODY_OVERHEAD;

    *out = NULL;
    *nout = 0;
    if (!list)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    for (size_t i = 0; i <= n; i++) {
        int full =
            i == n || (i > start && ((long)(i - start) >= r->cfg->commit_writes ||
                                     (long)(bytes + items[i]->len + 1) > r->cfg->commit_bytes));
        if (full && i > start) {
            if (!(list[nb] = new_batch(items + start, i - start))) {
                for (size_t k = 0; k < nb; k++)
                    free_batch(list[k]);
                free(list);
                return d2f_errf(err, D2F_ENOMEM, "out of memory");
            }
            nb++;
            start = i;
            bytes = BODY_OVERHEAD;
        }
        if (i < n)
            bytes += items[i]->len + 1;
    }
    *out = list;
    *nout = nb;
    return 0;
}

/* One window: read, collapse, then build and send the writes a chunk at a time (the chunks
 * touch disjoint documents). *more is 0 when there was nothing left to read. */
static int one_window(struct run *r, int64_t *after, int *more, struct d2f_err *err)
{
    struct outbox_pending *rows = NULL;
    struct item **items = NULL, **kept = NULL;
    struct batch **batches = NULL;
    size_t n = 0, nitems = 0, nbatches = 0;
    size_t chunk = (size_t)(r->cfg->concurrency * r->cfg->commit_writes);
    int rc;

    *more = 0;
    if ((rc = outbox_pending_window(r->ob, *after, DRAIN_WINDOW, &rows, &n, err)) != 0 || !n)
        goto out;
    *more = 1;
    *after = rows[n - 1].id;
    r->st->windows++;
    if ((rc = make_items(r, rows, n, &items, &nitems, err)) != 0)
        goto out;
    kept = calloc(nitems ? nitems : 1, sizeof(*kept));
    if (!kept) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    if (chunk < 1000)
        chunk = 1000;
    for (size_t from = 0; from < nitems && !rc; from += chunk) {
        size_t to = from + chunk < nitems ? from + chunk : nitems, nkept = 0;

        for (size_t i = from; i < to && !rc; i++) {
            int keep;
            rc = build_item(r, items[i], &keep, err);
            if (keep)
                kept[nkept++] = items[i];
        }
        if (!rc && (rc = plan_batches(r, kept, nkept, &batches, &nbatches, err)) == 0)
            rc = send_all(r, batches, nbatches, err);
        free(batches); /* send_all freed the batches themselves */
        batches = NULL;
        for (size_t i = from; i < to; i++) {
            free(items[i]->write); /* a chunk's writes go once it is sent */
            items[i]->write = NULL;
        }
    }
out:
    free(kept);
    free_items(items, nitems);
    outbox_pending_free(rows, n);
    return rc;
}

/* A lease owner: "host:pid:random". */
static void owner_name(char *out, size_t cap)
{
    char host[256] = "host";

    gethostname(host, sizeof(host) - 1);
    snprintf(out, cap, "%s:%ld:%08x", host, (long)getpid(), randombytes_random());
}

/* 1 when a lease holder is a process of this host that no longer runs, or this very process
 * (an earlier invocation, whose requests all ended by its deadline): its lease is stale. */
static int holder_gone(const char *holder)
{
    char host[256] = "host", *end;
    size_t n;
    long pid;

    gethostname(host, sizeof(host) - 1);
    n = strlen(host);
    if (strncmp(holder, host, n) != 0 || holder[n] != ':')
        return 0;
    pid = strtol(holder + n + 1, &end, 10);
    if (*end != ':' || pid <= 0)
        return 0;
    return pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

int drain_run(struct outbox *ob, const struct config *cfg, struct firestore *fs,
              int64_t deadline_ms, struct drain_stats *stats, struct d2f_err *err)
{
    struct run r = {.ob = ob, .cfg = cfg, .fs = fs, .st = stats, .deadline = deadline_ms};
    int64_t start = http_now_ms(), after = 0, margin;
    char owner[320], holder[400];
    int taken, more = 1, rc, found;

    memset(stats, 0, sizeof(*stats));
    margin = (deadline_ms - start) / 10 < 2000 ? (deadline_ms - start) / 10 : 2000;
    r.stop_at = deadline_ms - margin;
    owner_name(owner, sizeof(owner));
    if ((rc = outbox_lease_take(ob, owner, deadline_ms + LEASE_MARGIN_MS, holder_gone, &taken,
                                holder, sizeof(holder), err)) != 0)
        return rc;
    if (!taken) {
        if (outbox_pending_count(ob, &stats->pending_left, NULL) != 0)
            stats->pending_left = -1;
        return d2f_errf(err, D2F_EIO, "another drain holds the lease (%s)", holder);
    }
    if (cfg->ramp) {
        if ((rc = outbox_meta_get(ob, "ramp_started_at", &r.ramp_from, &found, err)) == 0 &&
            !found) {
            r.ramp_from = start;
            rc = outbox_meta_set(ob, "ramp_started_at", start, err);
        }
        r.allowance = ramp_rate(&r, start);
        r.refilled = start;
    }
    while (!rc && more)
        rc = one_window(&r, &after, &more, err);
    {
        struct d2f_err lease_err = {0};
        if (outbox_lease_release(ob, owner, &lease_err) != 0)
            log_write(LOG_WARN, lease_err.msg, NULL); /* it expires on its own */
    }
    if (outbox_pending_count(ob, &stats->pending_left, rc ? NULL : err) != 0 && !rc)
        rc = D2F_EDB;
    stats->elapsed_ms = http_now_ms() - start;
    if (!rc && stats->pending_left > 0)
        rc = d2f_errf(err, D2F_ESCHEMA,
                      "%lld rows wait for their table's key schema: set DDB2FS_KEYS "
                      "(see 'ddb2fs status')",
                      (long long)stats->pending_left);
    return rc;
}
