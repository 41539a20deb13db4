/* drain.c: pending outbox rows become Firestore documents, in order, exactly once in effect. */
#include "drain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "backfill.h"
#include "event.h"
#include "fence.h"
#include "ingest.h"
#include "json.h"
#include "lease.h"
#include "log.h"
#include "ramp.h"
#include "record.h"

/* Bytes of a commit body besides its writes: {"writes":[…]} and the commas. */
#define BODY_OVERHEAD 16
/* How long after its deadline a drainer's lease lasts: requests it sent may still land. */

/* One write: a document's last pending row in the window, standing for the rows before it. */
struct item {
    int64_t *ids; /* the rows, in arrival order; the last one is written */
    size_t nids;
    const char *doc; /* its document; owned by the window's rows */
    char *write;     /* the Write's JSON, without its precondition */
    size_t len;
    int del;                    /* the write is a deletion */
    char fence[FENCE_TIME_MAX]; /* the document's updateTime as last known; "": absent */
};

/* A commit to send. */
struct batch {
    struct item **items;
    size_t n;
    unsigned attempts;
    unsigned refreshes; /* times its preconditions were read anew */
    int64_t not_before; /* ms; retries wait for their backoff */
    char *txn;          /* the transaction its creates travel in, or NULL */
    int64_t txn_began;  /* when txn began (ms) */
};

struct run {
    struct outbox *ob;
    const struct config *cfg;
    struct firestore *fs;
    struct drain_stats *st;
    int64_t deadline;     /* calls end by then */
    int64_t stop_at;      /* no new wave starts after this */
    struct ramp ramp;     /* its pacing, when on */
    int reauthed;         /* the token was renewed after a 401 and nothing landed since */
    int mark;             /* 1: rows become committed or dead; 0 (replay): their states stay */
    int64_t deletes_wait; /* no deletion is sent before then (ms): a create may still land */
    size_t held;          /* deletions left pending for that reason */
    const char *owner;    /* the drain lease to renew as commits land, or NULL */
    int64_t renewed;      /* when it was last renewed (ms) */
    struct fence_reader *fences; /* the target's fences, once a write was built */
    FILE *dry_run;               /* not NULL: writes are printed there, nothing is sent */
    void (*progress)(void *ctx, const struct drain_stats *st);
    void *ctx;
};

/* ---- one window: rows to items -------------------------------------------------------- */

/* Reads a kept row back into a record (rec->json NULL when it is not JSON); *op and *raw
 * belong to the caller, who releases rec first. Memory that runs out is an error, never a
 * record that is not JSON: the row would be buried for it. */
static int load_row(struct outbox *ob, int64_t id, struct event_record *rec, char **op, char **raw,
                    struct d2f_err *err)
{
    size_t len = 0;
    int rc = outbox_record(ob, id, op, raw, &len, err);

    memset(rec, 0, sizeof(*rec));
    if (rc)
        return rc;
    rec->raw = *raw;
    rec->raw_len = len;
    if (json_parse_status(*raw, len, NULL, &rec->json) == D2F_ENOMEM) {
        free(*op);
        free(*raw);
        *op = *raw = NULL;
        return d2f_errf(err, D2F_ENOMEM, "out of memory reading row %lld", (long long)id);
    }
    if (rec->json)
        event_record_check(rec);
    return 0;
}

int drain_plan_row(struct outbox *ob, const struct config *cfg, int64_t id, int may_record,
                   const char *docs_prefix, struct record_plan *plan, int *parsed,
                   struct d2f_err *err)
{
    struct event_record rec;
    const char *pk, *sk;
    char *op = NULL, *raw = NULL;
    int rc;

    *parsed = 0;
    if ((rc = load_row(ob, id, &rec, &op, &raw, err)) != 0)
        return rc;
    if (rec.json) {
        *parsed = 1;
        if ((rc = ingest_keys(may_record ? ob : NULL, cfg, &rec, &pk, &sk, err)) == 0)
            rc = record_plan(&rec, cfg, pk, sk, docs_prefix, plan);
    }
    event_record_release(&rec);
    free(op);
    free(raw);
    return rc;
}

/* Gives a row whose key schema was unknown at ingest its document, if the schema is known now.
 * Returns 0 (row->document set or still NULL) or an outbox error. */
static int resolve(struct run *r, struct outbox_pending *row, struct d2f_err *err)
{
    struct record_plan plan;
    int parsed, rc;

    record_plan_init(&plan);
    rc = drain_plan_row(r->ob, r->cfg, row->id, 1, NULL, &plan, &parsed, err);
    if (!rc && plan.document.len) {
        rc = outbox_set_document(r->ob, row->id, plan.document.data, err);
        if (!rc && !(row->document = strdup(plan.document.data)))
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    record_plan_release(&plan);
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

    if (!r->mark) {
        /* replay: the row keeps its state; the write is reported */
        cJSON *f = cJSON_CreateObject();
        if (f) {
            json_add_number(f, "row", (double)it->ids[it->nids - 1]);
            cJSON_AddStringToObject(f, "document", it->doc);
        }
        log_write(LOG_WARN, why, f);
        if (r->dry_run) {
            cJSON *line = cJSON_CreateObject();
            char *text = NULL;
            if (line && cJSON_AddStringToObject(line, "error", why) && (text = json_print(line)))
                fprintf(r->dry_run, "%s\n", text);
            cJSON_free(text);
            cJSON_Delete(line);
        }
        r->st->rows_dead += it->nids;
        return 0;
    }
    log_write(LOG_WARN, why, NULL);
    rc = outbox_mark(r->ob, &it->ids[it->nids - 1], 1, OUTBOX_DEAD, why, err);
    if (!rc && it->nids > 1) {
        snprintf(superseded, sizeof(superseded), "superseded by row %lld, which is dead: %s",
                 (long long)it->ids[it->nids - 1], why);
        rc = outbox_mark(r->ob, it->ids, it->nids - 1, OUTBOX_DEAD, superseded, err);
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
    int rc, op_is_delete;

    *keep = 0;
    if ((rc = load_row(r->ob, it->ids[it->nids - 1], &rec, &op, &raw, err)) != 0)
        return rc;
    op_is_delete = op && strcmp(op, "delete") == 0;
    if (!rec.json) {
        d2f_errf(&why, D2F_EINPUT, "row %lld: the kept record is not JSON",
                 (long long)it->ids[it->nids - 1]);
        rc = D2F_EINPUT;
    } else {
        rc = record_write(&rec, r->cfg, firestore_docs_prefix(r->fs), it->doc, op_is_delete,
                          &it->write, &it->len, &why);
    }
    event_record_release(&rec);
    free(op);
    free(raw);
    if (rc == D2F_ENOMEM)
        return d2f_errf(err, rc, "out of memory");
    if (rc)
        return bury(r, it, why.msg, err);
    it->del = op_is_delete;
    if (it->del && d2f_now_ms() < r->deletes_wait) {
        /* a create of this document may still land after it: the rows stay pending */
        free(it->write);
        it->write = NULL;
        r->held += it->nids;
        return 0;
    }
    if (!r->fences && (rc = fence_reader_new(&r->fences, r->ob, firestore_target(r->fs), err)) != 0)
        return rc;
    if ((rc = fence_get(r->fences, it->doc, it->fence, sizeof(it->fence), err)) != 0)
        return rc;
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
        free(b->txn);
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

/* Whether a batch holds a create: a write on a document known absent or never written. */
static int has_create(const struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (!b->items[i]->fence[0] && !b->items[i]->del)
            return 1;
    return 0;
}

/* The commit's body: each write with its precondition (the document's last known updateTime,
 * or exists=false), in the batch's transaction when it has one. */
static int body_of(const struct batch *b, struct buf *body)
{
    int rc = buf_adds(body, "{\"writes\":[");

    for (size_t i = 0; i < b->n && !rc; i++) {
        const struct item *it = b->items[i];

        if (i)
            rc = buf_addc(body, ',');
        /* the Write is a JSON object: its closing brace makes way for the precondition */
        if (!rc)
            rc = buf_add(body, it->write, it->len - 1);
        if (!rc && it->fence[0])
            rc = buf_addf(body, ",\"currentDocument\":{\"updateTime\":\"%s\"}}", it->fence);
        else if (!rc)
            rc = buf_adds(body, ",\"currentDocument\":{\"exists\":false}}");
    }
    if (!rc && b->txn)
        rc = buf_addf(body, "],\"transaction\":\"%s\"}", b->txn);
    else if (!rc)
        rc = buf_adds(body, "]}");
    return rc;
}

/* Waits until the ramp-up allows n writes; 0 when the time is up first. */
static int ramp_wait(struct run *r, size_t n)
{
    for (;;) {
        int64_t now = d2f_now_ms(), wait = ramp_take(&r->ramp, n, now);

        if (!wait)
            return 1;
        if (now + wait > r->stop_at)
            return 0;
        d2f_sleep_ms(wait);
    }
}

/* What to do with a batch after an answer. */
enum verdict { LANDED, AGAIN, FENCED, SPLIT, BURY, STOP };

static enum verdict judge(struct run *r, const struct firestore_commit *c, const struct batch *b)
{
    if (c->status == RETRY_OK)
        return LANDED;
    if (c->status == RETRY_UNAUTHENTICATED && !r->reauthed)
        return AGAIN;
    if (retry_transient(c->status))
        return AGAIN;
    /* a precondition refused: another write landed first (a late one, or another drainer's);
     * at most a few rounds in a row, so that a document written by someone else all along
     * does not keep the drain busy */
    if (c->status == RETRY_FAILED_PRECONDITION || c->status == RETRY_ALREADY_EXISTS)
        return b->refreshes < 20 ? FENCED : STOP;
    /* a transaction refused as closed: an earlier copy of the same request may have committed
     * it (libcurl sends a request again on a fresh connection when a reused one closed
     * without an answer), so the documents are read first; only then is a write to blame */
    if (c->status == RETRY_INVALID_ARGUMENT && b->txn && b->refreshes < 3)
        return FENCED;
    if (c->status == RETRY_INVALID_ARGUMENT)
        return b->n > 1 ? SPLIT : BURY;
    return STOP;
}

/* The sending side of a window: batches being filled, waiting, and in flight. While a wave of
 * commits is in flight the next writes are built and landed rows marked, so that the relay's
 * own work overlaps Firestore's. */
struct sender {
    struct run *r;
    struct batch **q; /* built batches waiting to go (retries among them) */
    size_t nq, qcap;
    struct batch *filling; /* the batch being filled */
    size_t filling_bytes;
    struct batch **wave; /* in flight */
    size_t nwave, wave_cap;
    struct firestore_commit *commits;
    struct firestore_commit **pc;
    int64_t *landed; /* rows of landed commits, not marked yet */
    size_t nlanded, landed_cap;
    struct item **fenced; /* items of landed commits whose fences are not recorded yet */
    size_t nfenced, fenced_cap;
    char **txns; /* transactions of landed commits, not forgotten yet */
    size_t ntxns, txns_cap;
    char last_error[512];
    int stop; /* why the drain stops, once it must */
};

static int sender_init(struct sender *s, struct run *r, struct d2f_err *err)
{
    memset(s, 0, sizeof(*s));
    s->r = r;
    s->wave_cap = (size_t)r->cfg->concurrency;
    s->qcap = 64;
    s->q = malloc(s->qcap * sizeof(*s->q));
    s->wave = calloc(s->wave_cap, sizeof(*s->wave));
    s->commits = calloc(s->wave_cap, sizeof(*s->commits));
    s->pc = calloc(s->wave_cap, sizeof(*s->pc));
    if (!s->q || !s->wave || !s->commits || !s->pc)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->wave_cap; i++) {
        firestore_commit_init(&s->commits[i]);
        s->pc[i] = &s->commits[i];
    }
    return 0;
}

static void sender_release(struct sender *s)
{
    for (size_t i = 0; s->q && i < s->nq; i++)
        free_batch(s->q[i]);
    for (size_t i = 0; s->wave && i < s->nwave; i++)
        free_batch(s->wave[i]);
    free_batch(s->filling);
    for (size_t i = 0; s->commits && i < s->wave_cap; i++)
        firestore_commit_release(&s->commits[i]);
    free(s->q);
    free(s->wave);
    free(s->commits);
    free(s->pc);
    free(s->landed);
    free(s->fenced);
    for (size_t i = 0; i < s->ntxns; i++)
        free(s->txns[i]);
    free(s->txns);
}

static int enqueue(struct sender *s, struct batch *b)
{
    if (s->nq == s->qcap) {
        struct batch **q = realloc(s->q, s->qcap * 2 * sizeof(*q));
        if (!q)
            return D2F_ENOMEM;
        s->q = q;
        s->qcap *= 2;
    }
    s->q[s->nq++] = b;
    return 0;
}

/* Queues the batch being filled, if any. */
static int flush(struct sender *s, struct d2f_err *err)
{
    if (!s->filling)
        return 0;
    if (enqueue(s, s->filling) != 0)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    s->filling = NULL;
    return 0;
}

/* Adds a built write to the batch being filled; a full batch (write count or byte size) is
 * queued first. */
static int add_write(struct sender *s, struct item *it, struct d2f_err *err)
{
    const struct config *cfg = s->r->cfg;
    int rc;

    if (s->filling &&
        ((long)s->filling->n >= cfg->commit_writes ||
         (long)(s->filling_bytes + it->len + 1) > cfg->commit_bytes) &&
        (rc = flush(s, err)) != 0)
        return rc;
    if (!s->filling) {
        s->filling = calloc(1, sizeof(*s->filling));
        if (!s->filling ||
            !(s->filling->items = malloc((size_t)cfg->commit_writes * sizeof(struct item *)))) {
            free(s->filling);
            s->filling = NULL;
            return d2f_errf(err, D2F_ENOMEM, "out of memory");
        }
        s->filling_bytes = BODY_OVERHEAD;
    }
    s->filling->items[s->filling->n++] = it;
    s->filling_bytes += it->len + 1;
    return 0;
}

/* Batches whose backoff is over, in the queue. */
static size_t ready(const struct sender *s, int64_t now, int64_t *soonest)
{
    size_t n = 0;

    *soonest = INT64_MAX;
    for (size_t i = 0; i < s->nq; i++) {
        if (s->q[i]->not_before <= now)
            n++;
        else if (s->q[i]->not_before < *soonest)
            *soonest = s->q[i]->not_before;
    }
    return n;
}

/* Gives each batch of the wave that holds a create a transaction of its own, recorded in the
 * outbox before its commit leaves: a commit whose outcome stays unknown can then be rolled
 * back, by this drain or a later one, before the document is deleted. */
static int begin_transactions(struct sender *s, struct d2f_err *err)
{
    struct run *r = s->r;
    struct batch *need[64];
    char *txns[64];
    int64_t began[64];
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < s->nwave && n < 64; i++)
        if (!s->wave[i]->txn && has_create(s->wave[i]))
            need[n++] = s->wave[i];
    if (!n)
        return 0;
    if ((rc = firestore_begin(r->fs, txns, began, n, r->deadline, err)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        need[i]->txn = txns[i];
        need[i]->txn_began = began[i];
    }
    return fence_transactions_add(r->ob, firestore_target(r->fs), (const char *const *)txns, began,
                                  n, err);
}

/* Starts a wave with the ready batches, up to the concurrency. Returns 0 (a wave may or may
 * not have started) or why the drain stops. */
static int launch(struct sender *s, struct d2f_err *err)
{
    struct run *r = s->r;
    int64_t now = d2f_now_ms();
    size_t writes = 0;
    int rc;

    if (now >= r->stop_at) {
        s->stop =
            d2f_errf(err, D2F_ETIME, "the time budget ran out with %zu commits unsent", s->nq);
        return s->stop;
    }
    for (size_t i = 0; i < s->nq && s->nwave < s->wave_cap;) {
        if (s->q[i]->not_before <= now) {
            writes += s->q[i]->n;
            s->wave[s->nwave++] = s->q[i];
            s->q[i] = s->q[--s->nq];
        } else {
            i++;
        }
    }
    if (!s->nwave)
        return 0;
    if (r->cfg->ramp && !ramp_wait(r, writes)) {
        s->stop = d2f_errf(err, D2F_ETIME,
                           "the time budget ran out (ramp-up pacing at %.0f "
                           "writes/s)",
                           ramp_rate(&r->ramp, d2f_now_ms()));
        return s->stop;
    }
    if ((rc = begin_transactions(s, err)) != 0)
        return rc;
    for (size_t i = 0; i < s->nwave; i++) {
        buf_reset(&s->commits[i].body);
        if (body_of(s->wave[i], &s->commits[i].body) != 0)
            return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    rc = firestore_commit_start(r->fs, s->pc, s->nwave, r->deadline, err);
    if (rc)
        return rc; /* no token: the wave's batches stay pending */
    r->st->commits += s->nwave;
    return 0;
}

/* Marks the rows of the landed commits not marked yet, in one transaction. */
static int mark_landed(struct sender *s, struct d2f_err *err)
{
    struct run *r = s->r;
    struct fence *f;
    int64_t now;
    int rc;

    if (!s->nlanded && !s->nfenced && !s->ntxns)
        return 0;
    if (!(f = calloc(s->nfenced ? s->nfenced : 1, sizeof(*f))))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->nfenced; i++) {
        f[i].document = s->fenced[i]->doc;
        f[i].update_time = s->fenced[i]->fence;
    }
    /* the rows, their documents' new fences and the finished transactions, at once */
    rc = fence_put(r->ob, firestore_target(r->fs), f, s->nfenced, s->landed,
                   r->mark ? s->nlanded : 0, (const char *const *)s->txns, s->ntxns, err);
    free(f);
    if (!rc)
        r->st->rows_committed += s->nlanded;
    s->nlanded = s->nfenced = 0;
    for (size_t i = 0; i < s->ntxns; i++)
        free(s->txns[i]);
    s->ntxns = 0;
    now = d2f_now_ms();
    if (!rc && r->owner && now - r->renewed >= r->cfg->lease_s * 1000 / 3) {
        /* the lease lives as long as commits land */
        rc = lease_renew(r->ob, r->owner, now + r->cfg->lease_s * 1000, err);
        if (!rc)
            r->renewed = now;
    }
    return rc;
}

/* Appends p to a growing array of pointers. */
static int append_ptr(void ***list, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t want = *cap ? *cap * 2 : 64;
        void **q = realloc(*list, want * sizeof(*q));
        if (!q)
            return D2F_ENOMEM;
        *list = q;
        *cap = want;
    }
    (*list)[(*n)++] = p;
    return 0;
}

/* A commit that did not land: its transaction, if any, is rolled back, so that it cannot land
 * later. When that cannot be done, deletions wait until the transaction has expired. */
static void settle(struct run *r, struct batch *b)
{
    struct d2f_err rb_err = {0};

    if (!b->txn)
        return;
    if (firestore_rollback(r->fs, b->txn, r->deadline, &rb_err) == 0) {
        const char *one[1] = {b->txn};
        if (fence_put(r->ob, firestore_target(r->fs), NULL, 0, NULL, 0, one, 1, &rb_err) != 0)
            log_write(LOG_WARN, rb_err.msg, NULL);
    } else {
        int64_t until = b->txn_began + r->cfg->transaction_s * 1000;
        log_write(LOG_WARN, rb_err.msg, NULL);
        if (until > r->deletes_wait)
            r->deletes_wait = until;
    }
    free(b->txn);
    b->txn = NULL;
}

/* A commit refused on a precondition: reads its documents' updateTimes anew (batchGet), then
 * looks in the outbox for newer rows. A document's newer row wins: the item is dropped, and
 * its rows count as superseded. The rest goes again with the new preconditions. */
static int refresh(struct sender *s, struct batch *b, int *changed, struct d2f_err *err)
{
    struct run *r = s->r;
    const char *prefix = firestore_docs_prefix(r->fs);
    char **names = calloc(b->n, sizeof(*names)), **dst = calloc(b->n, sizeof(*dst));
    size_t keep = 0, n = b->n;
    char(*was)[FENCE_TIME_MAX] = calloc(b->n, sizeof(*was));
    int rc = 0;

    *changed = 0;
    if (!names || !dst || !was) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->n; i++) {
        size_t len = strlen(prefix) + strlen(b->items[i]->doc) + 2;
        if (!(names[i] = malloc(len))) {
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(names[i], len, "%s/%s", prefix, b->items[i]->doc);
        dst[i] = b->items[i]->fence;
        memcpy(was[i], b->items[i]->fence, sizeof(was[i]));
    }
    /* the documents first, the outbox second: a state seen in Firestore came from a row
     * that is in the outbox by then */
    if ((rc = firestore_update_times(r->fs, (const char *const *)names, b->n, r->deadline, dst,
                                     FENCE_TIME_MAX, err)) != 0)
        goto out;
    for (size_t i = 0; i < b->n && !rc; i++) {
        struct item *it = b->items[i];
        int newer;

        if ((rc = fence_superseded(r->ob, it->doc, it->ids[it->nids - 1], &newer, err)) != 0)
            break;
        if (newer || strcmp(was[i], it->fence) != 0)
            *changed = 1;
        if (!newer) {
            b->items[keep++] = it;
        } else if (append_ids(&s->landed, &s->nlanded, &s->landed_cap, it->ids, it->nids) != 0) {
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        } else {
            free(it->write);
            it->write = NULL;
        }
    }
    b->n = keep;
    b->refreshes++;
    r->st->refreshes++;
out:
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(dst);
    free(was);
    return rc;
}

/* Takes in what a landed commit says of its documents: their new updateTimes (a deletion's
 * none), to be recorded with its rows, and its transaction, to be forgotten. */
static int record_times(struct sender *s, struct batch *b, const struct firestore_commit *c,
                        struct d2f_err *err)
{
    char **dst = calloc(b->n ? b->n : 1, sizeof(*dst));
    struct d2f_err times_err = {0};

    if (!dst)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    for (size_t k = 0; k < b->n; k++)
        dst[k] = b->items[k]->fence;
    if (firestore_commit_times(c, dst, b->n, FENCE_TIME_MAX, &times_err) != 0) {
        /* unknown: the next write of these documents goes as a create, is refused if they
         * exist, and reads their updateTime then */
        log_write(LOG_WARN, times_err.msg, NULL);
        for (size_t k = 0; k < b->n; k++)
            b->items[k]->fence[0] = '\0';
    }
    free(dst);
    for (size_t k = 0; k < b->n; k++)
        if (append_ptr((void ***)&s->fenced, &s->nfenced, &s->fenced_cap, b->items[k]) != 0)
            return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if (b->txn) {
        if (append_ptr((void ***)&s->txns, &s->ntxns, &s->txns_cap, b->txn) != 0)
            return d2f_errf(err, D2F_ENOMEM, "out of memory");
        b->txn = NULL;
    }
    return 0;
}

/* Takes in the answers of the wave in flight: landed rows to mark, retries, halves, the dead;
 * every answer is taken in, even after one says stop. */
static int take_answers(struct sender *s, struct d2f_err *err)
{
    struct run *r = s->r;
    int rc = 0;

    firestore_commit_finish(r->fs, s->pc, s->nwave);
    for (size_t i = 0; i < s->nwave; i++) {
        struct batch *b = s->wave[i];
        struct firestore_commit *c = &s->commits[i];
        int64_t *ids;
        size_t nids = 0;

        enum verdict v = rc ? AGAIN : judge(r, c, b);

        if (v != LANDED)
            settle(r, b);
        if (v == FENCED) {
            int changed;
            rc = refresh(s, b, &changed, err);
            /* a transaction refused, and nothing had landed: a write is to blame */
            if (!rc && c->status == RETRY_INVALID_ARGUMENT && !changed)
                v = b->n > 1 ? SPLIT : BURY;
        }
        switch (v) {
        case LANDED:
            ids = batch_ids(b, &nids);
            if (!ids || append_ids(&s->landed, &s->nlanded, &s->landed_cap, ids, nids) != 0) {
                free(ids);
                rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
                break;
            }
            free(ids);
            if (record_times(s, b, c, err) != 0) {
                rc = err->code;
                break;
            }
            r->st->writes += b->n;
            r->reauthed = 0;
            for (size_t k = 0; k < b->n; k++) {
                free(b->items[k]->write);
                b->items[k]->write = NULL;
            }
            free_batch(b);
            b = NULL;
            break;
        case AGAIN:
            if (!rc && c->status == RETRY_UNAUTHENTICATED) {
                firestore_reauthenticate(r->fs);
                r->reauthed = 1;
            } else if (!rc) {
                b->attempts++;
                b->not_before = d2f_now_ms() + retry_backoff_ms(b->attempts, randombytes_random());
                r->st->retries++;
                snprintf(s->last_error, sizeof(s->last_error), "%s", c->message);
            }
            break;
        case FENCED:
            if (!rc && !b->n) {
                free_batch(b);
                b = NULL;
            }
            break;
        case SPLIT: {
            size_t half = b->n / 2;
            struct batch *left = new_batch(b->items, half);
            struct batch *right = new_batch(b->items + half, b->n - half);
            if (!left || !right || enqueue(s, left) != 0) {
                free_batch(left);
                free_batch(right);
                rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
                break;
            }
            if (enqueue(s, right) != 0) {
                free_batch(right);
                rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
                break;
            }
            r->st->bisections++;
            free_batch(b);
            b = NULL;
            break;
        }
        case BURY:
            rc = bury(r, b->items[0], c->message, err);
            if (!rc) {
                free_batch(b);
                b = NULL;
            }
            break;
        case STOP:
            b->attempts++;
            snprintf(s->last_error, sizeof(s->last_error), "%s", c->message);
            if (!s->stop)
                s->stop =
                    c->status == RETRY_TLS
                        ? d2f_errf(err, D2F_EUNREACHABLE, "cannot reach Firestore: %s", c->message)
                        : d2f_errf(err, D2F_EREMOTE, "Firestore refused a commit: %s", c->message);
            break;
        }
        if (b && enqueue(s, b) != 0) {
            free_batch(b);
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        }
    }
    s->nwave = 0;
    return rc;
}

/* The rows of batches that were tried and did not land say why; they stay pending. */
static void note_unsent(struct sender *s)
{
    if (!s->r->mark)
        return;
    for (size_t i = 0; i < s->nq; i++) {
        struct d2f_err note_err = {0};
        size_t nids = 0;
        int64_t *ids;

        if (!s->q[i]->attempts)
            continue;
        ids = batch_ids(s->q[i], &nids);
        if (ids && outbox_note_failure(s->r->ob, ids, nids, s->last_error, &note_err) != 0)
            log_write(LOG_WARN, note_err.msg, NULL);
        free(ids);
    }
}

/* Builds the write of items[*next] into the batch being filled, and moves on; after the last
 * item the batch is queued. */
/* Builds the next item's write. Builds in a row share one read lock of the outbox (released
 * before anything waits or writes), so that reading each row and fence costs no lock round
 * trip of its own. */
static int build_next(struct sender *s, struct item **items, size_t nitems, size_t *next,
                      struct d2f_err *err)
{
    int keep, rc = outbox_read_hold(s->r->ob, err);

    if (rc)
        return rc;
    rc = build_item(s->r, items[*next], &keep, err);

    if (!rc && keep)
        rc = add_write(s, items[*next], err);
    ++*next;
    if (!rc && *next == nitems)
        rc = flush(s, err);
    return rc;
}

/* Sends the items of a window: builds their writes as the sending goes, keeps a wave of
 * commits in flight, and marks what landed. Returns 0 when every write landed or was buried;
 * otherwise why the drain stops, with rows left pending. */
static int send_items(struct run *r, struct item **items, size_t nitems, struct d2f_err *err)
{
    struct sender s;
    size_t next = 0;
    int rc = sender_init(&s, r, err);

    while (!rc && !s.stop) {
        int64_t now = d2f_now_ms(), soonest;
        size_t nready = ready(&s, now, &soonest);

        if (s.nwave) {
            /* a wave is in flight: build ahead, or wait for it */
            if (next < nitems && nready + (s.filling ? 1 : 0) < s.wave_cap) {
                rc = build_next(&s, items, nitems, &next, err);
                if (!rc)
                    firestore_commit_wait(r->fs, 0);
                continue;
            }
            outbox_read_release(r->ob);
            if (firestore_commit_wait(r->fs, 50) > 0)
                continue;
            rc = take_answers(&s, err);
            if (r->progress)
                r->progress(r->ctx, r->st);
            /* the next wave goes out before the last one's rows are marked */
            if (!rc && !s.stop && ready(&s, d2f_now_ms(), &soonest))
                rc = launch(&s, err);
            if (!rc)
                rc = mark_landed(&s, err);
            continue;
        }
        if (!nready) {
            if (next < nitems) {
                /* nothing to send yet: fill a batch */
                while (!rc && next < nitems && !s.nq)
                    rc = build_next(&s, items, nitems, &next, err);
                continue;
            }
            if (s.filling) {
                rc = flush(&s, err);
                continue;
            }
            if (!s.nq)
                break; /* all sent */
            if (soonest > r->stop_at) {
                s.stop = d2f_errf(err, D2F_ETIME,
                                  "the time budget ran out while commits waited to be retried");
                break;
            }
            outbox_read_release(r->ob);
            d2f_sleep_ms(soonest - now);
            continue;
        }
        outbox_read_release(r->ob);
        rc = launch(&s, err);
    }
    outbox_read_release(r->ob);
    if (s.nwave) {
        /* stopping with a wave out: take its answers in, so that what landed is marked */
        while (firestore_commit_wait(r->fs, 50) > 0)
            ;
        if (!rc) {
            rc = take_answers(&s, err);
        } else {
            firestore_commit_finish(r->fs, s.pc, s.nwave);
            for (size_t i = 0; i < s.nwave; i++)
                if (enqueue(&s, s.wave[i]) != 0)
                    free_batch(s.wave[i]);
            s.nwave = 0;
        }
    }
    if (!rc)
        rc = mark_landed(&s, err);
    if (!rc)
        rc = s.stop;
    if (rc)
        note_unsent(&s);
    sender_release(&s);
    return rc;
}

/* One window: read, collapse to one write per document, send. *more is 0 when there was
 * nothing left to read. */
static int one_window(struct run *r, int64_t *after, int *more, struct d2f_err *err)
{
    struct outbox_pending *rows = NULL;
    struct item **items = NULL;
    size_t n = 0, nitems = 0;
    int rc;

    *more = 0;
    if ((rc = outbox_pending_window(r->ob, *after, DRAIN_WINDOW, &rows, &n, err)) != 0 || !n)
        goto out;
    *more = 1;
    *after = rows[n - 1].id;
    r->st->windows++;
    if ((rc = make_items(r, rows, n, &items, &nitems, err)) == 0)
        rc = send_items(r, items, nitems, err);
out:
    free_items(items, nitems);
    outbox_pending_free(rows, n);
    return rc;
}

/* Before anything is sent: the transactions of creates whose commits were not seen to end (a
 * drainer killed, a deadline passed) are rolled back; those that cannot be, until they
 * expire, hold deletions back. */
static int settle_transactions(struct run *r, struct d2f_err *err)
{
    const char *prefix = firestore_target(r->fs);
    int64_t *began = NULL, now = d2f_now_ms();
    char **txns = NULL;
    size_t n = 0;
    int rc = fence_transactions(r->ob, prefix, &txns, &began, &n, err);

    for (size_t i = 0; i < n && !rc; i++) {
        struct d2f_err rb_err = {0};
        int64_t until = began[i] + r->cfg->transaction_s * 1000;

        if (until <= now || firestore_rollback(r->fs, txns[i], r->deadline, &rb_err) == 0) {
            const char *one[1] = {txns[i]};
            rc = fence_put(r->ob, prefix, NULL, 0, NULL, 0, one, 1, err);
        } else {
            log_write(LOG_WARN, rb_err.msg, NULL);
            if (until > r->deletes_wait)
                r->deletes_wait = until;
        }
    }
    fence_transactions_free(txns, began, n);
    return rc;
}

/* Sets up a run's clock and, when cfg->ramp, its pacing from ramp_from (ms). */
static void run_start(struct run *r, int64_t start, int64_t ramp_from)
{
    int64_t span = r->deadline - start;

    r->stop_at = r->deadline - (span / 10 < 2000 ? span / 10 : 2000);
    if (r->cfg->ramp)
        ramp_init(&r->ramp, ramp_from, (unsigned)r->cfg->partitions, start);
}

/* The ramp-up's start for this outbox's database: recorded at the first drain. */
static int ramp_start(struct outbox *ob, int64_t now, int64_t *from, struct d2f_err *err)
{
    int found, rc = outbox_meta_get(ob, RAMP_META_KEY, from, &found, err);

    if (!rc && !found) {
        *from = now;
        rc = outbox_meta_set(ob, RAMP_META_KEY, now, err);
    }
    return rc;
}

/* Prints the writes of items, as convert does, instead of sending them. */
static int print_items(struct run *r, struct item **items, size_t n, struct d2f_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int keep, rc = build_item(r, items[i], &keep, err);
        if (rc)
            return rc;
        if (keep) {
            fwrite(items[i]->write, 1, items[i]->len, r->dry_run);
            fputc('\n', r->dry_run);
            r->st->writes++;
            r->st->rows_committed += items[i]->nids;
            free(items[i]->write);
            items[i]->write = NULL;
        }
        if (r->progress && (i % 1000 == 999 || i + 1 == n))
            r->progress(r->ctx, r->st);
    }
    return 0;
}

int drain_send(struct outbox *ob, const struct config *cfg, struct firestore *fs,
               struct outbox_pending *rows, size_t n, const struct drain_how *how,
               int64_t deadline_ms, struct drain_stats *stats, struct d2f_err *err)
{
    struct run r = {.ob = ob,
                    .cfg = cfg,
                    .fs = fs,
                    .st = stats,
                    .deadline = deadline_ms,
                    .mark = how->mark,
                    .dry_run = how->dry_run,
                    .progress = how->progress,
                    .ctx = how->ctx};
    struct item **items = NULL;
    size_t nitems = 0;
    int rc;

    run_start(&r, d2f_now_ms(), how->ramp_from);
    if (!how->dry_run && (rc = settle_transactions(&r, err)) != 0)
        return rc;
    if ((rc = make_items(&r, rows, n, &items, &nitems, err)) == 0)
        rc =
            how->dry_run ? print_items(&r, items, nitems, err) : send_items(&r, items, nitems, err);
    if (!rc && r.held)
        rc = d2f_errf(err, D2F_ETIME,
                      "%zu deletions wait until a transaction that may still create their "
                      "documents has expired (DDB2FS_TRANSACTION_SECONDS)",
                      r.held);
    free_items(items, nitems);
    fence_reader_free(r.fences);
    return rc;
}

int drain_run(struct outbox *ob, const struct config *cfg, struct firestore *fs,
              int64_t deadline_ms, struct drain_stats *stats, struct d2f_err *err)
{
    struct run r = {
        .ob = ob, .cfg = cfg, .fs = fs, .st = stats, .deadline = deadline_ms, .mark = 1};
    int64_t start = d2f_now_ms(), after = 0, unresolved = 0, ramp_from = 0, waiting = 0;
    char owner[320];
    int more = 1, rc;

    memset(stats, 0, sizeof(*stats));
    if ((rc = lease_take(ob, start + cfg->lease_s * 1000, owner, sizeof(owner), err)) != 0) {
        if (outbox_pending_count(ob, &stats->pending_left, NULL) != 0)
            stats->pending_left = -1;
        return rc;
    }
    r.owner = owner;
    r.renewed = start;
    if (cfg->ramp)
        rc = ramp_start(ob, start, &ramp_from, err);
    run_start(&r, start, ramp_from);
    if (!rc)
        rc = settle_transactions(&r, err);
    for (;;) {
        /* snapshots are decided before each pass; one that became ready may lie behind */
        if (!rc)
            rc = backfill_gate(ob, cfg, &waiting, err);
        after = 0;
        while (!rc && more)
            rc = one_window(&r, &after, &more, err);
        if (rc || (rc = outbox_pending_count(ob, &stats->pending_left, err)) != 0 ||
            (rc = outbox_unresolved_count(ob, &unresolved, err)) != 0 ||
            (rc = backfill_waiting(ob, &waiting, err)) != 0)
            break;
        if (stats->pending_left <= unresolved + waiting || r.held || d2f_now_ms() >= r.stop_at)
            break;
        more = 1; /* records arrived while the drain ran: go on with them */
    }
    if (!rc) /* what became of the snapshots sent, for status */
        rc = backfill_gate(ob, cfg, &waiting, err);
    stats->snapshots_waiting = waiting;
    fence_reader_free(r.fences);
    lease_release(ob, owner);
    if (rc && outbox_pending_count(ob, &stats->pending_left, NULL) != 0)
        stats->pending_left = -1;
    stats->elapsed_ms = d2f_now_ms() - start;
    if (!rc && r.held)
        rc = d2f_errf(err, D2F_ETIME,
                      "%zu deletions wait until a transaction that may still create their "
                      "documents has expired (in %lld s; DDB2FS_TRANSACTION_SECONDS)",
                      r.held, (long long)((r.deletes_wait - d2f_now_ms()) / 1000 + 1));
    else if (!rc && stats->pending_left > unresolved + waiting)
        rc = d2f_errf(err, D2F_ETIME, "the time budget ran out with %lld records pending",
                      (long long)stats->pending_left);
    else if (!rc && stats->pending_left > waiting)
        rc = d2f_errf(err, D2F_ESCHEMA,
                      "%lld records wait for their table's key schema: set DDB2FS_KEYS "
                      "(see 'ddb2fs status')",
                      (long long)stats->pending_left);
    return rc;
}

void drain_stats_add(struct drain_stats *sum, const struct drain_stats *one)
{
    sum->rows_committed += one->rows_committed;
    sum->rows_dead += one->rows_dead;
    sum->writes += one->writes;
    sum->commits += one->commits;
    sum->retries += one->retries;
    sum->bisections += one->bisections;
    sum->refreshes += one->refreshes;
    sum->windows += one->windows;
}

int drain_run_set(struct outbox *const *obs, size_t n, size_t most, const struct config *cfg,
                  struct firestore *fs, int64_t deadline_ms, struct drain_stats *stats,
                  struct d2f_err *err)
{
    struct config c = *cfg;
    int64_t start = d2f_now_ms(), *left;
    size_t first = (size_t)getpid() % n, drained = 0;
    int rc = 0;

    if (n == 1)
        return drain_run(obs[0], cfg, fs, deadline_ms, stats, err);
    memset(stats, 0, sizeof(*stats));
    if (!(left = calloc(n, sizeof(*left))))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    c.partitions = (long)n;
    /* rounds over the files, starting where this process's pid says (so that drains at once
     * start apart), each file with rows pending given an even slice of the time left (a file
     * with nothing pending costs a read, not the lease's writes); a file whose lease is held
     * is left to its holder */
    for (int round = 0; round < 2; round++) {
        rc = 0;
        for (size_t k = 0; k < n; k++) {
            size_t i = (first + k) % n;
            struct drain_stats one;
            struct d2f_err e = {0};
            int64_t now = d2f_now_ms();
            int r;
            if (round == 0 && outbox_pending_count(obs[i], &left[i], NULL) != 0)
                left[i] = 1; /* unknown: try it */
            if (left[i] == 0 || now >= deadline_ms || (most && drained >= most))
                continue;
            drained++;
            r = drain_run(obs[i], &c, fs,
                          round ? deadline_ms : now + (deadline_ms - now) / (int64_t)(n - k), &one,
                          &e);
            drain_stats_add(stats, &one);
            left[i] = one.pending_left > 0 ? one.pending_left : 0;
            if (r && !rc) {
                rc = r;
                d2f_errf(err, r, "partition %zu: %s", i, e.msg);
            }
        }
        stats->pending_left = 0;
        for (size_t i = 0; i < n; i++)
            stats->pending_left += left[i];
        if (stats->pending_left == 0 || most || d2f_now_ms() >= deadline_ms)
            break;
    }
    free(left);
    stats->elapsed_ms = d2f_now_ms() - start;
    if (stats->pending_left && !rc)
        rc = d2f_errf(err, D2F_ELEASE, "%lld records pending in files left to other drains",
                      (long long)stats->pending_left);
    return stats->pending_left ? rc : 0;
}

void drain_prune_set(struct outbox *const *obs, size_t n, const struct config *cfg,
                     int64_t deadline_ms)
{
    for (size_t i = 0; i < n; i++)
        drain_prune(obs[i], cfg, deadline_ms);
}

void drain_log(const struct drain_stats *st, const char *stopped)
{
    cJSON *f = cJSON_CreateObject();

    json_add_number(f, "committed", (double)st->rows_committed);
    json_add_number(f, "dead", (double)st->rows_dead);
    json_add_number(f, "pending", (double)st->pending_left);
    json_add_number(f, "writes", (double)st->writes);
    json_add_number(f, "commits", (double)st->commits);
    json_add_number(f, "retries", (double)st->retries);
    json_add_number(f, "bisections", (double)st->bisections);
    json_add_number(f, "refreshes", (double)st->refreshes);
    json_add_number(f, "seconds", (double)st->elapsed_ms / 1000.0);
    if (st->snapshots_waiting)
        json_add_number(f, "snapshots_waiting", (double)st->snapshots_waiting);
    if (stopped)
        cJSON_AddStringToObject(f, "stopped", stopped);
    log_write(stopped ? LOG_ERROR : LOG_INFO,
              stopped ? "drain stopped with records pending" : "drained", f);
}

void drain_prune(struct outbox *ob, const struct config *cfg, int64_t deadline_ms)
{
    struct d2f_err err = {0};
    int64_t pruned = 0, start = d2f_now_ms();
    cJSON *f;
    int rc;

    if (!cfg->retention_s || deadline_ms <= start || backfill_holds_prune(ob))
        return; /* a backfill needs every document's stream records while it is open */
    rc = outbox_prune(ob, start - (int64_t)cfg->retention_s * 1000, deadline_ms, &pruned, &err);
    if (!rc && !pruned)
        return;
    f = cJSON_CreateObject();
    json_add_number(f, "pruned", (double)pruned);
    json_add_number(f, "retention_s", (double)cfg->retention_s);
    json_add_number(f, "seconds", (double)(d2f_now_ms() - start) / 1000.0);
    if (rc)
        cJSON_AddStringToObject(f, "stopped", err.msg);
    log_write(rc ? LOG_WARN : LOG_INFO, rc ? "pruning stopped" : "pruned", f);
}
