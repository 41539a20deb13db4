/* verify.c: the check of a table against its collection, its rechecks, and its repair. */
#include "verify.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "aws.h"
#include "connect.h"
#include "docid.h"
#include "drain.h"
#include "event.h"
#include "firestore.h"
#include "gauth.h"
#include "http.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "outbox.h"
#include "partition.h"
#include "record.h"
#include "scan.h"

/* Documents named in one batchGet, and batchGets in flight at once. */
#define BATCH_GET_DOCS 300
#define BATCH_GETS_AT_ONCE 8
/* Documents listed per page. */
#define LIST_PAGE 1000
/* GetItem requests in flight at once during rechecks. */
#define RECHECKS_AT_ONCE 32
/* How long one request may take. */
#define CALL_MS 30000
/* Pages read at once at most: each may be 1 MB of items, several MB parsed. */
#define PAGES_AT_ONCE 2
/* How far apart the clocks of the machines writing the outbox may be. */
#define REPAIR_SKEW_MS 5000
/* How often a difference is looked at again while its item keeps changing. */
#define MAX_ROUNDS 5

/* ---- comparing two Firestore value trees ------------------------------------------------ */

struct cmp {
    struct buf path;
    cJSON *out;
    int show;
    long n;
    int oom;
};

/* The type of a Firestore Value: its one member's name ("stringValue"), "absent" for none. */
static const char *value_type(const cJSON *v)
{
    if (!v)
        return "absent";
    if (!cJSON_IsObject(v) || !v->child || !v->child->string)
        return "malformed";
    return v->child->string;
}

static void add_path(struct cmp *c, const char *want_type, const char *got_type, const cJSON *want,
                     const cJSON *got)
{
    cJSON *d;

    if (c->n++ >= VERIFY_MAX_PATHS || c->oom || !c->out)
        return;
    if (!(d = cJSON_CreateObject()) || !cJSON_AddStringToObject(d, "path", buf_str(&c->path)) ||
        !cJSON_AddStringToObject(d, "item", want_type) ||
        !cJSON_AddStringToObject(d, "document", got_type)) {
        cJSON_Delete(d);
        c->oom = 1;
        return;
    }
    if (c->show) {
        if (want)
            cJSON_AddItemToObject(d, "item_value", cJSON_Duplicate(want->child, 1));
        if (got)
            cJSON_AddItemToObject(d, "document_value", cJSON_Duplicate(got->child, 1));
    }
    cJSON_AddItemToArray(c->out, d);
}

/* A doubleValue as a double: a JSON number, or "NaN", "Infinity", "-Infinity". */
static double as_double(const cJSON *v)
{
    if (cJSON_IsString(v))
        return strtod(v->valuestring, NULL);
    return json_number_value(v);
}

/* base64 text compared as the bytes it stands for: padding and the URL alphabet aside. */
static int same_base64(const char *a, const char *b)
{
    for (;;) {
        while (*a == '=')
            a++;
        while (*b == '=')
            b++;
        if (!*a || !*b)
            return !*a && !*b;
        char x = *a == '-' ? '+' : *a == '_' ? '/' : *a;
        char y = *b == '-' ? '+' : *b == '_' ? '/' : *b;
        if (x != y)
            return 0;
        a++;
        b++;
    }
}

static const char *text_of(const cJSON *v)
{
    return cJSON_IsString(v) ? v->valuestring : cJSON_IsRaw(v) ? v->valuestring : "";
}

/* 1 when two scalars of one type hold the same value. */
static int same_scalar(const char *type, const cJSON *a, const cJSON *b)
{
    if (strcmp(type, "integerValue") == 0) {
        char *ea, *eb;
        long long x = strtoll(text_of(a), &ea, 10), y = strtoll(text_of(b), &eb, 10);
        if (cJSON_IsNumber(a))
            x = (long long)json_number_value(a);
        if (cJSON_IsNumber(b))
            y = (long long)json_number_value(b);
        return x == y;
    }
    if (strcmp(type, "doubleValue") == 0) {
        double x = as_double(a), y = as_double(b);
        return (isnan(x) && isnan(y)) || x == y;
    }
    if (strcmp(type, "booleanValue") == 0)
        return cJSON_IsTrue(a) == cJSON_IsTrue(b);
    if (strcmp(type, "nullValue") == 0)
        return 1;
    if (strcmp(type, "bytesValue") == 0)
        return same_base64(text_of(a), text_of(b));
    if (strcmp(type, "geoPointValue") == 0) {
        const char *k[] = {"latitude", "longitude"};
        for (int i = 0; i < 2; i++)
            if (json_number_value(cJSON_GetObjectItemCaseSensitive(a, k[i])) !=
                json_number_value(cJSON_GetObjectItemCaseSensitive(b, k[i])))
                return 0;
        return 1;
    }
    /* stringValue, timestampValue, referenceValue: the text itself (U+0000 included) */
    if (cJSON_IsString(a) && cJSON_IsString(b))
        return strcmp(a->valuestring, b->valuestring) == 0;
    return cJSON_Compare(a, b, 1);
}

static void compare_value(struct cmp *c, const cJSON *want, const cJSON *got);

/* Sets the path to prefix (len bytes) + what follows, for one step down. */
static int step_into(struct cmp *c, size_t len, const char *name, long index)
{
    c->path.len = len;
    c->path.data[len] = '\0';
    if (name) {
        if ((len && buf_addc(&c->path, '.')) || buf_adds(&c->path, name))
            return c->oom = 1;
    } else if (buf_addf(&c->path, "[%ld]", index)) {
        return c->oom = 1;
    }
    return 0;
}

static void compare_fields(struct cmp *c, const cJSON *want, const cJSON *got)
{
    size_t len = c->path.len;
    const cJSON *f;

    cJSON_ArrayForEach(f, want)
    {
        if (step_into(c, len, f->string, 0))
            return;
        compare_value(c, f, cJSON_GetObjectItemCaseSensitive(got, f->string));
    }
    cJSON_ArrayForEach(f, got)
    {
        if (cJSON_GetObjectItemCaseSensitive(want, f->string))
            continue;
        if (step_into(c, len, f->string, 0))
            return;
        compare_value(c, NULL, f);
    }
    c->path.len = len;
    if (c->path.data)
        c->path.data[len] = '\0';
}

static void compare_value(struct cmp *c, const cJSON *want, const cJSON *got)
{
    const char *tw = value_type(want), *tg = value_type(got);
    size_t len = c->path.len;

    if (strcmp(tw, tg) != 0 || !want) {
        add_path(c, tw, tg, want, got);
        return;
    }
    if (strcmp(tw, "mapValue") == 0) {
        compare_fields(c, cJSON_GetObjectItemCaseSensitive(want->child, "fields"),
                       cJSON_GetObjectItemCaseSensitive(got->child, "fields"));
    } else if (strcmp(tw, "arrayValue") == 0) {
        const cJSON *wv = cJSON_GetObjectItemCaseSensitive(want->child, "values");
        const cJSON *gv = cJSON_GetObjectItemCaseSensitive(got->child, "values");
        int nw = cJSON_GetArraySize(wv), ng = cJSON_GetArraySize(gv);
        const cJSON *a = wv ? wv->child : NULL, *b = gv ? gv->child : NULL;
        for (long i = 0; i < (nw > ng ? nw : ng) && !c->oom; i++) {
            if (step_into(c, len, NULL, i))
                return;
            compare_value(c, a, b);
            a = a ? a->next : NULL;
            b = b ? b->next : NULL;
        }
        c->path.len = len;
        c->path.data[len] = '\0';
    } else if (!same_scalar(tw, want->child, got->child)) {
        add_path(c, tw, tg, want, got);
    }
}

long verify_compare(const cJSON *want, const cJSON *got, int show_values, cJSON *out)
{
    struct cmp c = {.out = out, .show = show_values};

    buf_init(&c.path, 64 * 1024);
    if (buf_adds(&c.path, "")) {
        buf_release(&c.path);
        return -1;
    }
    compare_fields(&c, want, got);
    buf_release(&c.path);
    return c.oom ? -1 : c.n;
}

/* ---- the names seen: an open-addressing set of document names -------------------------- */

struct names {
    char **slot;
    size_t cap, n;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int names_has(const struct names *ns, const char *s)
{
    if (!ns->cap)
        return 0;
    for (size_t i = name_hash(s) & (ns->cap - 1);; i = (i + 1) & (ns->cap - 1)) {
        if (!ns->slot[i])
            return 0;
        if (strcmp(ns->slot[i], s) == 0)
            return 1;
    }
}

static int names_add(struct names *ns, const char *s)
{
    if (2 * (ns->n + 1) > ns->cap) {
        size_t cap = ns->cap ? 2 * ns->cap : 1024;
        char **slot = calloc(cap, sizeof(*slot));
        if (!slot)
            return D2F_ENOMEM;
        for (size_t i = 0; i < ns->cap; i++) {
            if (!ns->slot[i])
                continue;
            size_t j = name_hash(ns->slot[i]) & (cap - 1);
            while (slot[j])
                j = (j + 1) & (cap - 1);
            slot[j] = ns->slot[i];
        }
        free(ns->slot);
        ns->slot = slot;
        ns->cap = cap;
    }
    size_t i = name_hash(s) & (ns->cap - 1);
    for (; ns->slot[i]; i = (i + 1) & (ns->cap - 1))
        if (strcmp(ns->slot[i], s) == 0)
            return 0;
    if (!(ns->slot[i] = strdup(s)))
        return D2F_ENOMEM;
    ns->n++;
    return 0;
}

static void names_release(struct names *ns)
{
    for (size_t i = 0; i < ns->cap; i++)
        free(ns->slot[i]);
    free(ns->slot);
    memset(ns, 0, sizeof(*ns));
}

/* ---- a run ------------------------------------------------------------------------------ */

enum kind { MISSING, DIFFERENT, EXTRA };
enum state { OPEN, CLEARED, CONFIRMED, CHANGING };

/* A difference not yet reported: it may be a change on its way. */
struct suspect {
    char *document; /* "collection/id" */
    cJSON *key;     /* the item's key (AttributeValues); NULL when unknown */
    cJSON *want;    /* the item's fields when last read; NULL: there was no item */
    cJSON *image;   /* the item as last read (for a repair); NULL: none */
    size_t file;    /* the outbox file its repair went to */
    cJSON *paths;   /* the paths that differed when last compared */
    enum kind kind;
    enum state state;
    int rounds;                   /* looks taken since it was found */
    int repaired;                 /* 1: a repair row was written for it */
    int64_t first, due;           /* ms: found; looked at again not before */
    int64_t read_start, read_end; /* ms: the last GetItem's window */
};

struct run {
    const struct config *cfg;
    struct config c2; /* cfg with the collection chosen */
    struct config_collection coll;
    struct verify_opts o;
    struct verify_report *r;
    struct http *http;
    struct gauth *auth;
    struct firestore *fs;
    struct outbox *const *obs; /* the outbox's files (partition.h); none when unreachable */
    size_t nob;
    struct partitions *set; /* opened here, closed here; NULL: the caller's */
    struct ingest **ings;   /* with --repair, one per file */
    char pk[256], sk[256];  /* sk "" when none */
    char pk_type[4], sk_type[4];
    char arn[700];
    size_t prefix_len; /* of "projects/P/databases/D/documents" */
    struct names seen;
    struct suspect *sus;
    size_t nsus, capsus;
    struct aws_request get_req;
    struct aws_signed get_sig;
    int get_ready;
    int64_t started;
};

static int64_t call_deadline(const struct run *run)
{
    int64_t d = d2f_now_ms() + CALL_MS;
    return run->o.deadline_ms && run->o.deadline_ms < d ? run->o.deadline_ms : d;
}

static int oom(struct d2f_err *err)
{
    return d2f_errf(err, D2F_ENOMEM, "out of memory");
}

/* DescribeTable: the key attributes, their types, the stream, the item count. */
static int describe(struct run *run, struct d2f_err *err)
{
    char what[320];
    struct aws_request req = {.service = "dynamodb",
                              .endpoint = run->cfg->dynamodb_endpoint,
                              .target = "DynamoDB_20120810.DescribeTable",
                              .content_type = "application/x-amz-json-1.0",
                              .key = "TableName",
                              .value = run->o.table,
                              .what = what};
    cJSON *a = NULL;
    const cJSON *t, *k, *d;
    int rc;

    snprintf(what, sizeof(what), "DescribeTable '%s'", run->o.table);
    if ((rc = aws_json_call(run->cfg, &req, &a, err)) != 0)
        return rc;
    t = cJSON_GetObjectItemCaseSensitive(a, "Table");
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(t, "KeySchema"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(k, "AttributeName");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(k, "KeyType");
        if (!cJSON_IsString(name) || !cJSON_IsString(type))
            continue;
        snprintf(strcmp(type->valuestring, "HASH") == 0 ? run->pk : run->sk, sizeof(run->pk), "%s",
                 name->valuestring);
    }
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(t, "AttributeDefinitions"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "AttributeName");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(d, "AttributeType");
        if (!cJSON_IsString(name) || !cJSON_IsString(type))
            continue;
        if (strcmp(name->valuestring, run->pk) == 0)
            snprintf(run->pk_type, sizeof(run->pk_type), "%s", type->valuestring);
        else if (run->sk[0] && strcmp(name->valuestring, run->sk) == 0)
            snprintf(run->sk_type, sizeof(run->sk_type), "%s", type->valuestring);
    }
    d = cJSON_GetObjectItemCaseSensitive(t, "LatestStreamArn");
    if (cJSON_IsString(d))
        snprintf(run->arn, sizeof(run->arn), "%s", d->valuestring);
    else
        snprintf(run->arn, sizeof(run->arn), "arn:aws:dynamodb:%s:000000000000:table/%s/stream/-",
                 run->cfg->aws_region ? run->cfg->aws_region : "-", run->o.table);
    run->r->item_count = json_number_value(cJSON_GetObjectItemCaseSensitive(t, "ItemCount"));
    cJSON_Delete(a);
    if (!run->pk[0])
        return d2f_errf(err, D2F_EREMOTE, "DescribeTable '%s': the answer has no partition key",
                        run->o.table);
    return 0;
}

/* A stream record standing for item (NULL: its removal, keys given): the drain's planning
 * and the outbox take it as they take a record of the table's stream. */
static cJSON *as_record(const struct run *run, const cJSON *item, const cJSON *keys,
                        int64_t created_ms)
{
    cJSON *r = cJSON_CreateObject(), *d, *k;
    const cJSON *pk = item ? cJSON_GetObjectItemCaseSensitive(item, run->pk) : NULL;
    const cJSON *sk = item && run->sk[0] ? cJSON_GetObjectItemCaseSensitive(item, run->sk) : NULL;

    if (!r || !cJSON_AddStringToObject(r, "eventID", "verify") ||
        !cJSON_AddStringToObject(r, "eventName", item ? "INSERT" : "REMOVE") ||
        !cJSON_AddStringToObject(r, "eventSource", "aws:dynamodb") ||
        !cJSON_AddStringToObject(r, "eventSourceARN", run->arn) ||
        !(d = cJSON_AddObjectToObject(r, "dynamodb")) ||
        !cJSON_AddNumberToObject(d, "ApproximateCreationDateTime", (double)(created_ms / 1000)))
        goto fail;
    if (keys) {
        if (!(k = cJSON_Duplicate(keys, 1)) || !cJSON_AddItemToObject(d, "Keys", k))
            goto fail;
    } else if (!(k = cJSON_AddObjectToObject(d, "Keys")) ||
               (pk && !cJSON_AddItemToObject(k, run->pk, cJSON_Duplicate(pk, 1))) ||
               (sk && !cJSON_AddItemToObject(k, run->sk, cJSON_Duplicate(sk, 1)))) {
        goto fail;
    }
    /* the image by reference: the record is planned and printed, never kept */
    if (item && !cJSON_AddItemReferenceToObject(d, "NewImage", (cJSON *)item))
        goto fail;
    if (!cJSON_AddStringToObject(d, "SequenceNumber", "0") ||
        !cJSON_AddStringToObject(d, "StreamViewType", "NEW_IMAGE"))
        goto fail;
    return r;
fail:
    cJSON_Delete(r);
    return NULL;
}

/* Plans item as the drain plans an INSERT of it: *document ("collection/id", malloc'd) and
 * *fields (new); both NULL when the mapping refuses the item (*dead then 1). */
static int plan_item(struct run *run, const cJSON *item, char **document, cJSON **fields, int *dead,
                     struct d2f_err *err)
{
    struct event_record rec;
    struct record_plan plan;
    int rc = 0;

    *document = NULL;
    *fields = NULL;
    *dead = 0;
    memset(&rec, 0, sizeof(rec));
    record_plan_init(&plan);
    if (!(rec.json = as_record(run, item, NULL, 0)))
        return oom(err);
    event_record_check(&rec);
    if ((rc = record_plan(&rec, &run->c2, run->pk, run->sk[0] ? run->sk : NULL,
                          firestore_docs_prefix(run->fs), &plan)) != 0) {
        rc = oom(err);
    } else if (plan.op != RECORD_UPDATE || !plan.write) {
        *dead = 1;
        if (plan.document.len && !(*document = strdup(plan.document.data)))
            rc = oom(err);
    } else {
        cJSON *u = cJSON_GetObjectItemCaseSensitive(plan.write, "update");
        *fields = cJSON_DetachItemFromObjectCaseSensitive(u, "fields");
        if (!*fields)
            *fields = cJSON_CreateObject();
        if (!*fields || !(*document = strdup(plan.document.data))) {
            cJSON_Delete(*fields);
            *fields = NULL;
            rc = oom(err);
        }
    }
    record_plan_release(&plan);
    event_record_release(&rec);
    return rc;
}

/* The item's key attributes, as GetItem takes them. */
static cJSON *key_of(const struct run *run, const cJSON *item)
{
    cJSON *k = cJSON_CreateObject();
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(item, run->pk);
    const cJSON *sk = run->sk[0] ? cJSON_GetObjectItemCaseSensitive(item, run->sk) : NULL;

    if (!k || !pk || !cJSON_AddItemToObject(k, run->pk, cJSON_Duplicate(pk, 1)) ||
        (sk && !cJSON_AddItemToObject(k, run->sk, cJSON_Duplicate(sk, 1)))) {
        cJSON_Delete(k);
        return NULL;
    }
    return k;
}

/* One key attribute from the text an id holds: S as it is, N as the number's text, B from
 * unpadded base64url back to base64. */
static int add_key_value(cJSON *k, const char *name, const char *type, const char *text)
{
    cJSON *v = cJSON_CreateObject();
    char *b64 = NULL;
    int ok;

    if (!v)
        return -1;
    if (strcmp(type, "B") == 0) {
        size_t n = strlen(text), cap = n + 4;
        if (!(b64 = malloc(cap + 1))) {
            cJSON_Delete(v);
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            b64[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
        while (n % 4)
            b64[n++] = '=';
        b64[n] = '\0';
        text = b64;
    }
    ok =
        cJSON_AddStringToObject(v, type[0] ? type : "S", text) && cJSON_AddItemToObject(k, name, v);
    free(b64);
    if (!ok)
        cJSON_Delete(v);
    return ok ? 0 : -1;
}

/* The key an extra document's id stands for; NULL when the id does not tell (hashed). */
static cJSON *key_from_document(const struct run *run, const char *document)
{
    const char *id = document + strlen(run->r->collection) + 1;
    struct buf pk, sk;
    cJSON *k = NULL;

    buf_init(&pk, 4096);
    buf_init(&sk, 4096);
    if (docid_decode(id, run->sk[0] ? run->cfg->separator : NULL, &pk, &sk) == 0 &&
        (k = cJSON_CreateObject()) &&
        (add_key_value(k, run->pk, run->pk_type, buf_str(&pk)) ||
         (run->sk[0] && add_key_value(k, run->sk, run->sk_type, buf_str(&sk))))) {
        cJSON_Delete(k);
        k = NULL;
    }
    buf_release(&pk);
    buf_release(&sk);
    return k;
}

static int add_suspect(struct run *run, enum kind kind, char *document, cJSON *key, cJSON *want,
                       cJSON *image, cJSON *paths, struct d2f_err *err)
{
    struct suspect *s;

    if (run->nsus == run->capsus) {
        size_t cap = run->capsus ? 2 * run->capsus : 64;
        struct suspect *n = realloc(run->sus, cap * sizeof(*n));
        if (!n) {
            free(document);
            cJSON_Delete(key);
            cJSON_Delete(want);
            cJSON_Delete(image);
            cJSON_Delete(paths);
            return oom(err);
        }
        run->sus = n;
        run->capsus = cap;
    }
    s = &run->sus[run->nsus++];
    memset(s, 0, sizeof(*s));
    s->document = document;
    s->key = key;
    s->want = want;
    s->image = image;
    s->paths = paths;
    s->kind = kind;
    s->first = d2f_now_ms();
    s->due = s->first + run->o.recheck_after_ms;
    return 0;
}

static void suspect_release(struct suspect *s)
{
    free(s->document);
    cJSON_Delete(s->key);
    cJSON_Delete(s->want);
    cJSON_Delete(s->image);
    cJSON_Delete(s->paths);
}

/* ---- reading documents ----------------------------------------------------------------- */

struct found {
    const char *name; /* the full name */
    const cJSON *doc; /* the document, NULL when missing */
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct found *)a)->name, ((const struct found *)b)->name);
}

/* batchGet of n documents ("collection/id"), in requests of BATCH_GET_DOCS, BATCH_GETS_AT_ONCE
 * of them in flight: *answer holds the server's answers, *index them sorted by name (*nindex
 * entries, at most n). */
static int get_documents(struct run *run, char *const *docs, size_t n, cJSON **answer,
                         struct found **index, size_t *nindex, struct d2f_err *err)
{
    const char *prefix = firestore_docs_prefix(run->fs);
    char **names = calloc(n ? n : 1, sizeof(*names));
    const char *const *sets[BATCH_GETS_AT_ONCE];
    size_t counts[BATCH_GETS_AT_ONCE], k = 0;
    cJSON *got[BATCH_GETS_AT_ONCE];
    const cJSON *a;
    int rc = 0;

    *index = NULL;
    *nindex = 0;
    if (!names || !(*answer = cJSON_CreateArray())) {
        free(names);
        return oom(err);
    }
    for (size_t i = 0; i < n && !rc; i++) {
        size_t len = strlen(prefix) + 1 + strlen(docs[i]) + 1;
        if (!(names[i] = malloc(len)))
            rc = oom(err);
        else
            snprintf(names[i], len, "%s/%s", prefix, docs[i]);
    }
    for (size_t at = 0; at < n && !rc;) {
        size_t m = 0;
        for (; m < BATCH_GETS_AT_ONCE && at < n; m++, at += counts[m - 1]) {
            sets[m] = (const char *const *)names + at;
            counts[m] = n - at < BATCH_GET_DOCS ? n - at : BATCH_GET_DOCS;
        }
        if ((rc = firestore_batch_get_many(run->fs, sets, counts, m, call_deadline(run), got,
                                           err)) != 0)
            break;
        for (size_t j = 0; j < m; j++) {
            while (got[j]->child)
                cJSON_AddItemToArray(*answer, cJSON_DetachItemViaPointer(got[j], got[j]->child));
            cJSON_Delete(got[j]);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc)
        return rc;
    if (!(*index = calloc(n ? n : 1, sizeof(**index))))
        return oom(err);
    cJSON_ArrayForEach(a, *answer)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(a, "found");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(a, "missing");
        const cJSON *name = f ? cJSON_GetObjectItemCaseSensitive(f, "name") : m;
        if (!cJSON_IsString(name) || k == n)
            continue;
        (*index)[k].name = name->valuestring;
        (*index)[k++].doc = f;
    }
    qsort(*index, k, sizeof(**index), by_name);
    *nindex = k;
    return 0;
}

/* The document named "collection/id" in an index; *answered 0 when the answer left it out. */
static const cJSON *lookup(const struct run *run, const struct found *index, size_t n,
                           const char *document, int *answered)
{
    const char *prefix = firestore_docs_prefix(run->fs);
    struct found key, *hit;
    size_t len = strlen(prefix) + 1 + strlen(document) + 1;
    char *name = malloc(len);

    *answered = 0;
    if (!name)
        return NULL;
    snprintf(name, len, "%s/%s", prefix, document);
    key.name = name;
    hit = bsearch(&key, index, n, sizeof(*index), by_name);
    free(name);
    *answered = hit != NULL;
    return hit ? hit->doc : NULL;
}

/* ---- the first pass: pages of items against their documents ---------------------------- */

/* An item planned, waiting for its document. */
struct pending_item {
    char *document;
    cJSON *fields;
    const cJSON *item;
};

static int check_chunk(struct run *run, struct pending_item *p, size_t n, struct d2f_err *err)
{
    char **docs = calloc(n ? n : 1, sizeof(*docs));
    struct found *index = NULL;
    cJSON *answer = NULL;
    size_t nindex = 0;
    int rc;

    if (!docs)
        return oom(err);
    for (size_t i = 0; i < n; i++)
        docs[i] = p[i].document;
    rc = get_documents(run, docs, n, &answer, &index, &nindex, err);
    free(docs);
    for (size_t i = 0; i < n && !rc; i++) {
        int answered;
        const cJSON *doc = lookup(run, index, nindex, p[i].document, &answered);
        cJSON *paths = NULL;
        long diff = 0;

        if (!answered) {
            rc = d2f_errf(err, D2F_EREMOTE, "batchGet: the answer does not name document '%s'",
                          p[i].document);
            break;
        }
        if (doc) {
            run->r->documents++;
            if (!(paths = cJSON_CreateArray()) ||
                (diff = verify_compare(p[i].fields, cJSON_GetObjectItemCaseSensitive(doc, "fields"),
                                       run->o.show_values, paths)) < 0) {
                cJSON_Delete(paths);
                rc = oom(err);
                break;
            }
            if (!diff) {
                run->r->equal++;
                cJSON_Delete(paths);
                continue;
            }
        }
        {
            cJSON *key = key_of(run, p[i].item), *image = cJSON_Duplicate(p[i].item, 1);
            rc = add_suspect(run, doc ? DIFFERENT : MISSING, p[i].document, key, p[i].fields, image,
                             paths, err);
            p[i].document = NULL;
            p[i].fields = NULL;
        }
    }
    free(index);
    cJSON_Delete(answer);
    return rc;
}

static int check_page(struct run *run, const struct scan_page *page, struct d2f_err *err)
{
    size_t n = (size_t)cJSON_GetArraySize(page->items), k = 0;
    struct pending_item *p = calloc(n ? n : 1, sizeof(*p));
    const cJSON *item;
    int rc = 0;

    if (!p)
        return oom(err);
    run->r->read_units += page->read_units;
    cJSON_ArrayForEach(item, page->items)
    {
        int dead;
        run->r->items++;
        if ((rc = plan_item(run, item, &p[k].document, &p[k].fields, &dead, err)) != 0)
            break;
        if (p[k].document && (rc = names_add(&run->seen, p[k].document)) != 0) {
            rc = oom(err);
            break;
        }
        if (dead) {
            run->r->unmapped++;
            free(p[k].document);
            p[k].document = NULL;
            continue;
        }
        p[k++].item = item;
        /* a slice of the page at a time: its fields and documents are what memory holds */
        if (k == BATCH_GET_DOCS * BATCH_GETS_AT_ONCE) {
            rc = check_chunk(run, p, k, err);
            for (size_t i = 0; i < k; i++) {
                free(p[i].document);
                cJSON_Delete(p[i].fields);
            }
            memset(p, 0, k * sizeof(*p));
            k = 0;
            if (rc)
                break;
        }
    }
    if (k && !rc)
        rc = check_chunk(run, p, k, err);
    for (size_t i = 0; i < n; i++) {
        free(p[i].document);
        cJSON_Delete(p[i].fields);
    }
    free(p);
    return rc;
}

/* Chooses the sample's segments: the others are marked done. */
static int choose_sample(struct run *run, struct scan *s, struct d2f_err *err)
{
    int total = run->r->segments, take = total;
    uint32_t first;
    int rc = 0;

    if (run->o.sample < 100) {
        take = (int)lround((double)total * run->o.sample / 100.0);
        take = take < 1 ? 1 : take;
    }
    run->r->segments_read = take;
    if (take == total)
        return 0;
    first = randombytes_uniform((uint32_t)total);
    for (int i = 0; i < total && !rc; i++) {
        int chosen = ((i - (int)first + total) % total) < take;
        if (!chosen)
            rc = scan_resume(s, i, NULL, 1, err);
    }
    return rc;
}

static int first_pass(struct run *run, struct d2f_err *err)
{
    struct scan_opts so = {.table = run->o.table,
                           .segments = run->r->segments,
                           .rate = run->o.rate,
                           .consistent = 0,
                           .limit = 0,
                           .parallel =
                               run->r->segments < PAGES_AT_ONCE ? run->r->segments : PAGES_AT_ONCE};
    struct scan_page pages[PAGES_AT_ONCE];
    struct scan *s = NULL;
    int64_t deadline = INT64_MAX / 2;
    size_t n = 0;
    int rc;

    /* a bounded run keeps time for its rechecks */
    if (run->o.deadline_ms)
        deadline = run->o.deadline_ms - run->o.recheck_after_ms - 5000;
    memset(pages, 0, sizeof(pages));
    if ((rc = scan_new(&s, run->cfg, &so, err)) != 0 || (rc = choose_sample(run, s, err)) != 0)
        goto out;
    while ((rc = scan_next(s, deadline, pages, (size_t)so.parallel, &n, err)) == 0 && n) {
        for (size_t i = 0; i < n; i++) {
            if (!rc)
                rc = check_page(run, &pages[i], err);
            scan_page_release(&pages[i]);
        }
        if (rc)
            break;
        if (run->o.progress)
            run->o.progress(run->o.ctx, run->r);
    }
    if (rc == D2F_ETIME && run->o.deadline_ms && d2f_now_ms() >= deadline) {
        rc = 0; /* the sample ends here: what was read is checked */
        run->r->complete = -1;
    }
out:
    scan_free(s);
    return rc;
}

/* The collection's documents that no item named. */
static int find_extras(struct run *run, struct d2f_err *err)
{
    char *token = NULL;
    int rc = 0;

    do {
        cJSON *page = NULL;
        const cJSON *d, *next;
        if ((rc = firestore_list(run->fs, run->r->collection, LIST_PAGE, token, 1,
                                 call_deadline(run), &page, err)) != 0)
            break;
        free(token);
        token = NULL;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(page, "documents"))
        {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
            const char *rel;
            char *document;
            if (!cJSON_IsString(name) || strlen(name->valuestring) <= run->prefix_len)
                continue;
            rel = name->valuestring + run->prefix_len + 1;
            if (names_has(&run->seen, rel))
                continue;
            run->r->documents++;
            if (!(document = strdup(rel)) ||
                (rc = add_suspect(run, EXTRA, document, key_from_document(run, rel), NULL, NULL,
                                  NULL, err)) != 0) {
                rc = rc ? rc : oom(err);
                break;
            }
        }
        next = cJSON_GetObjectItemCaseSensitive(page, "nextPageToken");
        if (!rc && cJSON_IsString(next) && next->valuestring[0] &&
            !(token = strdup(next->valuestring)))
            rc = oom(err);
        cJSON_Delete(page);
    } while (!rc && token);
    free(token);
    if (!rc)
        run->r->extras_checked = 1;
    return rc;
}

/* ---- rechecks ---------------------------------------------------------------------------- */

/* Pending rows the outbox holds for document (0 without an outbox), over all its files: the
 * file a document's rows are in follows from its item's keys, which a hashed id does not tell. */
static int64_t pending_rows(struct run *run, const char *document)
{
    int64_t n = 0;

    for (size_t f = 0; f < run->nob; f++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(outbox_db(run->obs[f]),
                               "SELECT count(*) FROM record_info i JOIN record_state s "
                               "USING (id) WHERE i.document = ?1 AND s.state = 'pending'",
                               -1, &st, NULL) != SQLITE_OK)
            continue;
        sqlite3_bind_text(st, 1, document, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n += sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

static int retriable(const struct http_call *c, const char *type)
{
    return c->failed || c->status >= 500 || strstr(type, "Throughput") || strstr(type, "Throttl") ||
           strstr(type, "RequestLimit");
}

/* GetItem (ConsistentRead) of each suspect that has a key: items[i] the item, NULL when none;
 * read windows noted. */
static int get_items(struct run *run, struct suspect **ss, size_t n, cJSON **items,
                     struct d2f_err *err)
{
    struct http_call calls[RECHECKS_AT_ONCE], *ptrs[RECHECKS_AT_ONCE];
    char *bodies[RECHECKS_AT_ONCE];
    size_t m = 0;
    int rc = 0;

    if (!run->get_ready) {
        if ((rc = aws_signed_init(&run->get_sig, run->cfg, &run->get_req, err)) != 0)
            return rc;
        run->get_ready = 1;
    }
    memset(bodies, 0, sizeof(bodies));
    for (size_t i = 0; i < n; i++) {
        cJSON *b;
        items[i] = NULL;
        if (!ss[i]->key)
            continue;
        b = cJSON_CreateObject();
        if (!b || !cJSON_AddStringToObject(b, "TableName", run->o.table) ||
            !cJSON_AddItemToObject(b, "Key", cJSON_Duplicate(ss[i]->key, 1)) ||
            !cJSON_AddBoolToObject(b, "ConsistentRead", 1) || !(bodies[i] = json_print(b))) {
            cJSON_Delete(b);
            rc = oom(err);
            goto out;
        }
        cJSON_Delete(b);
    }
    for (unsigned attempt = 0;; attempt++) {
        int again = 0;
        m = 0;
        for (size_t i = 0; i < n; i++) {
            if (!bodies[i])
                continue;
            http_call_init(&calls[i], SCAN_ANSWER_MAX);
            aws_signed_set(&run->get_sig, &calls[i], bodies[i], strlen(bodies[i]));
            ptrs[m++] = &calls[i];
        }
        for (size_t i = 0; i < n; i++)
            if (bodies[i])
                ss[i]->read_start = d2f_now_ms();
        rc = http_perform(run->http, ptrs, m, call_deadline(run), err);
        for (size_t i = 0; i < n && !rc; i++) {
            char type[128];
            cJSON *a = NULL;
            if (!bodies[i])
                continue;
            ss[i]->read_end = d2f_now_ms();
            if (!calls[i].failed && calls[i].status == 200) {
                /* json_parse: an item's strings may hold U+0000 */
                a = json_parse(buf_str(&calls[i].response), calls[i].response.len);
                if (!cJSON_IsObject(a)) {
                    cJSON_Delete(a);
                    rc = d2f_errf(err, D2F_EREMOTE, "GetItem '%s': the answer is not JSON",
                                  run->o.table);
                    break;
                }
                items[i] = cJSON_DetachItemFromObjectCaseSensitive(a, "Item");
                cJSON_Delete(a);
                free(bodies[i]);
                bodies[i] = NULL;
                continue;
            }
            {
                struct d2f_err why = {0};
                int arc = aws_answer(&run->get_req, &calls[i], &a, type, sizeof(type), &why);
                cJSON_Delete(a);
                if (attempt < 6 && retriable(&calls[i], type)) {
                    again = 1;
                } else {
                    rc = arc ? arc : D2F_EREMOTE;
                    *err = why;
                }
            }
        }
        for (size_t i = 0; i < m; i++)
            http_call_release(ptrs[i]);
        if (rc || !again)
            break;
        d2f_sleep_ms((int64_t)(100u << attempt) + randombytes_uniform(100));
    }
out:
    for (size_t i = 0; i < n; i++)
        free(bodies[i]);
    if (rc)
        for (size_t i = 0; i < n; i++) {
            cJSON_Delete(items[i]);
            items[i] = NULL;
        }
    return rc;
}

/* Looks at suspects again: the item (GetItem), the document, the outbox. */
static int look_again(struct run *run, struct suspect **ss, size_t n, struct d2f_err *err)
{
    cJSON *items[RECHECKS_AT_ONCE] = {0};
    char *docs[RECHECKS_AT_ONCE];
    struct found *index = NULL;
    cJSON *answer = NULL;
    size_t nindex = 0;
    int64_t now = d2f_now_ms();
    int64_t give_up = 5 * run->o.recheck_after_ms + 30000;
    int rc;

    for (size_t i = 0; i < n; i++) {
        docs[i] = ss[i]->document;
        ss[i]->read_start = ss[i]->read_end = now; /* GetItem's window, when it has a key */
    }
    if ((rc = get_items(run, ss, n, items, err)) != 0 ||
        (rc = get_documents(run, docs, n, &answer, &index, &nindex, err)) != 0)
        goto out;
    for (size_t i = 0; i < n && !rc; i++) {
        struct suspect *s = ss[i];
        int answered, dead = 0, changed;
        const cJSON *doc = lookup(run, index, nindex, s->document, &answered);
        char *document = NULL;
        cJSON *want = NULL, *paths = cJSON_CreateArray();
        long diff = 0;
        int64_t waiting = pending_rows(run, s->document);

        if (!paths) {
            rc = oom(err);
            break;
        }
        if (items[i] && (rc = plan_item(run, items[i], &document, &want, &dead, err)) != 0) {
            cJSON_Delete(paths);
            break;
        }
        free(document);
        if (dead) {
            /* the item became one the mapping refuses: its record is dead, not a copy's fault */
            s->state = CLEARED;
            cJSON_Delete(paths);
            continue;
        }
        if (doc && want)
            diff = verify_compare(want, cJSON_GetObjectItemCaseSensitive(doc, "fields"),
                                  run->o.show_values, paths);
        if (diff < 0) {
            cJSON_Delete(want);
            cJSON_Delete(paths);
            rc = oom(err);
            break;
        }
        /* the item changed since it was last read: its change may be on its way */
        changed =
            !want != !s->want || (want && s->want && verify_compare(want, s->want, 0, NULL) != 0);
        cJSON_Delete(s->want);
        s->want = want;
        cJSON_Delete(s->image);
        s->image = items[i];
        items[i] = NULL;
        cJSON_Delete(s->paths);
        s->paths = paths;
        s->rounds++;
        if ((!doc && !want) || (doc && want && !diff)) {
            s->state = CLEARED;
            continue;
        }
        s->kind = !want ? EXTRA : !doc ? MISSING : DIFFERENT;
        if (waiting || changed) {
            /* pending rows go out soon; a changed item waits as long as a new difference */
            s->due =
                now + (waiting ? (run->o.recheck_after_ms < 1000 ? run->o.recheck_after_ms : 1000)
                               : run->o.recheck_after_ms);
            s->state = now - s->first > give_up || s->rounds >= MAX_ROUNDS + (waiting ? 50 : 0)
                           ? CHANGING
                           : OPEN;
            continue;
        }
        s->state = CONFIRMED;
    }
out:
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(items[i]);
    free(index);
    cJSON_Delete(answer);
    return rc;
}

/* Looks at every open suspect again once it is due, until none is open. */
static int recheck_all(struct run *run, struct d2f_err *err)
{
    for (;;) {
        struct suspect *due[RECHECKS_AT_ONCE];
        int64_t now = d2f_now_ms(), soonest = INT64_MAX;
        size_t n = 0;
        int open = 0, rc;

        for (size_t i = 0; i < run->nsus; i++) {
            struct suspect *s = &run->sus[i];
            if (s->state != OPEN)
                continue;
            open = 1;
            if (run->o.deadline_ms && now >= run->o.deadline_ms - CALL_MS) {
                s->state = CHANGING; /* no time left to look again */
                continue;
            }
            if (s->due <= now && n < RECHECKS_AT_ONCE)
                due[n++] = s;
            else if (s->due < soonest)
                soonest = s->due;
        }
        if (!open)
            return 0;
        if (!n) {
            if (soonest != INT64_MAX)
                d2f_sleep_ms(soonest - now);
            continue;
        }
        if ((rc = look_again(run, due, n, err)) != 0)
            return rc;
    }
}

/* ---- repair ------------------------------------------------------------------------------ */

/* 1 when the stream has something to say about document: a pending row, or a stream record
 * that arrived since the read began at read_start (a record never arrives before its change,
 * so one that arrived earlier is in the image read; REPAIR_SKEW_MS covers the clocks of the
 * machines that write the outbox). */
static int stream_has(struct run *run, const char *document, int64_t read_start)
{
    int has = 0;

    for (size_t f = 0; f < run->nob && !has; f++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(outbox_db(run->obs[f]),
                               "SELECT EXISTS (SELECT 1 FROM record_info i JOIN record_state s "
                               "USING (id) WHERE i.document = ?1 AND (s.state = 'pending' OR "
                               "(i.kind = 'stream' AND i.arrived_at >= ?2)))",
                               -1, &st, NULL) != SQLITE_OK)
            return 1; /* when in doubt, leave it to the stream */
        sqlite3_bind_text(st, 1, document, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, read_start - REPAIR_SKEW_MS);
        has = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 1;
        sqlite3_finalize(st);
    }
    return has;
}

/* The file a document's repair row goes to: the one its stream records are in, so that the
 * drain's rule (the stream wins) sees both. That is the file the record's Keys choose; for a
 * deletion whose hashed id tells no key, the file that holds rows of the document (there is
 * at most one), else the first. */
static size_t file_of(struct run *run, const struct suspect *s, const cJSON *record)
{
    const cJSON *ddb = cJSON_GetObjectItemCaseSensitive(record, "dynamodb");

    if (run->nob < 2)
        return 0;
    if (s->image || s->key)
        return partition_of(run->o.table, cJSON_GetObjectItemCaseSensitive(ddb, "Keys"), run->nob);
    for (size_t f = 0; f < run->nob; f++) {
        sqlite3_stmt *st = NULL;
        int found = 0;
        if (sqlite3_prepare_v2(outbox_db(run->obs[f]),
                               "SELECT 1 FROM record_info WHERE document = ?1 LIMIT 1", -1, &st,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, s->document, -1, SQLITE_STATIC);
            found = sqlite3_step(st) == SQLITE_ROW;
        }
        sqlite3_finalize(st);
        if (found)
            return f;
    }
    return 0;
}

/* One repair row: the item's image as a snapshot (or, for an extra document, its deletion),
 * and its read window, as sent already so that the backfill's rules leave it alone but for
 * containing the stream records of older changes. */
static int repair_row(struct run *run, struct suspect *s, struct d2f_err *err)
{
    struct outbox *ob;
    struct event_record rec;
    struct ingest_result res = {0};
    cJSON *keys = s->image ? NULL : s->key;
    cJSON *placeholder = NULL;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    char *raw = NULL;
    int rc;

    if (!s->image && !keys) {
        /* a hashed id tells no key: the deletion names its document, which is all it needs */
        if (!(placeholder = cJSON_CreateObject()) ||
            add_key_value(placeholder, run->pk, "S", s->document))
            goto nomem;
        keys = placeholder;
    }
    memset(&rec, 0, sizeof(rec));
    if (!(rec.json = as_record(run, s->image, keys, s->read_start)) ||
        !(raw = json_print(rec.json)))
        goto nomem;
    rec.raw = raw;
    rec.raw_len = strlen(raw);
    event_record_check(&rec);
    s->file = file_of(run, s, rec.json);
    ob = run->obs[s->file];
    if (s->image) {
        rc = ingest_snapshot(run->ings[s->file], &rec, s->read_start, &id, &res, err);
    } else {
        struct outbox_row row = {.stream_arn = run->arn,
                                 .event_id = "verify",
                                 .event_name = "REMOVE",
                                 .table = run->o.table,
                                 .document = s->document,
                                 .op = "delete",
                                 .created_at = s->read_start,
                                 .arrived_at = d2f_now_ms(),
                                 .state = "pending",
                                 .raw = raw,
                                 .raw_len = rec.raw_len,
                                 .kind = "snapshot"};
        int inserted = 0;
        rc = outbox_insert(ob, &row, &inserted, err);
        id = !rc && inserted ? outbox_last_id(ob) : 0;
    }
    event_record_release(&rec);
    if (!rc && id) {
        if (sqlite3_prepare_v2(outbox_db(ob),
                               "INSERT INTO snapshot (id, job_id, segment, page, read_start, "
                               "read_end, ready, outcome) VALUES (?1, 0, 0, 0, ?2, ?3, 1, 'sent')",
                               -1, &st, NULL) != SQLITE_OK ||
            (sqlite3_bind_int64(st, 1, id), sqlite3_bind_int64(st, 2, s->read_start),
             sqlite3_bind_int64(st, 3, s->read_end), sqlite3_step(st)) != SQLITE_DONE)
            rc = d2f_errf(err, D2F_EDB, "cannot keep a repair in outbox '%s': %s", outbox_path(ob),
                          sqlite3_errmsg(outbox_db(ob)));
        sqlite3_finalize(st);
    }
    s->repaired = !rc && id;
    cJSON_free(raw);
    cJSON_Delete(placeholder);
    return rc;
nomem:
    cJSON_free(raw);
    cJSON_Delete(placeholder);
    cJSON_Delete(rec.json);
    return oom(err);
}

static int repair(struct run *run, struct d2f_err *err)
{
    struct drain_stats ds;
    struct d2f_err derr = {0};
    size_t n = 0, begun = 0, committed = 0;
    int rc = 0;

    /* one transaction per file; each file's repairs are kept, or none of them */
    while (begun < run->nob && !rc)
        if ((rc = outbox_begin(run->obs[begun], err)) == 0)
            begun++;
    for (size_t i = 0; i < run->nsus && !rc; i++) {
        struct suspect *s = &run->sus[i];
        if (s->state != CONFIRMED)
            continue;
        if (stream_has(run, s->document, s->read_start)) {
            s->state = CHANGING; /* the stream is delivering this document: it wins */
            continue;
        }
        if (!(rc = repair_row(run, s, err)) && s->repaired)
            n++;
    }
    while (!rc && committed < begun)
        if ((rc = outbox_commit(run->obs[committed], err)) == 0)
            committed++;
    for (size_t f = committed; f < begun; f++)
        outbox_rollback(run->obs[f]);
    for (size_t i = 0; i < run->nsus; i++)
        if (run->sus[i].repaired && run->sus[i].file >= committed) {
            run->sus[i].repaired = 0; /* its file's transaction was rolled back */
            n--;
        }
    if (rc || !n)
        return rc; /* what a file kept is pending there: the relay's drain sends it */
    /* send them now; when another drain holds a file's lease, it sends that file's */
    if (drain_run_set(run->obs, run->nob, 0, run->cfg, run->fs, d2f_now_ms() + 120000, &ds,
                      &derr) != 0)
        log_write(LOG_WARN, derr.msg, NULL);
    /* and check those documents again, at once */
    for (size_t i = 0; i < run->nsus; i++) {
        struct suspect *s = &run->sus[i];
        if (!s->repaired)
            continue;
        s->state = OPEN;
        s->rounds = 0;
        s->first = s->due = d2f_now_ms();
    }
    if ((rc = recheck_all(run, err)) != 0)
        return rc;
    for (size_t i = 0; i < run->nsus; i++) {
        struct suspect *s = &run->sus[i];
        if (!s->repaired)
            continue;
        if (s->state == CLEARED)
            run->r->repaired++;
        else
            run->r->not_repaired++;
    }
    return 0;
}

/* ---- the report -------------------------------------------------------------------------- */

static const char *kind_name(enum kind k)
{
    return k == MISSING ? "missing" : k == DIFFERENT ? "different" : "extra";
}

static int tally(struct run *run)
{
    struct verify_report *r = run->r;

    for (size_t i = 0; i < run->nsus; i++) {
        struct suspect *s = &run->sus[i];
        cJSON *d;
        if (s->state == CLEARED) {
            r->cleared++;
            r->equal += s->kind != EXTRA;
            continue;
        }
        if (s->state == CHANGING && !s->repaired) {
            r->changing++;
            continue;
        }
        *(s->kind == MISSING ? &r->missing : s->kind == DIFFERENT ? &r->different : &r->extra) += 1;
        if (cJSON_GetArraySize(r->listed) >= VERIFY_MAX_LISTED)
            continue;
        if (!(d = cJSON_CreateObject()) || !cJSON_AddStringToObject(d, "document", s->document) ||
            !cJSON_AddStringToObject(d, "kind", kind_name(s->kind))) {
            cJSON_Delete(d);
            return D2F_ENOMEM;
        }
        if (s->kind == DIFFERENT && s->paths) {
            cJSON_AddItemToObject(d, "fields", s->paths);
            s->paths = NULL;
        }
        if (run->o.repair)
            cJSON_AddBoolToObject(d, "repaired", s->repaired && s->state == CLEARED);
        cJSON_AddItemToArray(r->listed, d);
    }
    return 0;
}

/* The outbox, when one is reachable: DDB2FS_OUTBOX's file, or a partitioned outbox's files
 * (--repair needs it). */
static int open_outbox(struct run *run, struct d2f_err *err)
{
    struct d2f_err why = {0};

    if (run->o.outboxes) {
        /* one process opens a file once: its locks are per process */
        run->obs = run->o.outboxes;
        run->nob = run->o.noutboxes;
    } else if (access(run->cfg->outbox, F_OK) != 0) {
        if (run->o.repair)
            return d2f_errf(err, D2F_ECONFIG,
                            "DDB2FS_OUTBOX: '%s' does not exist: --repair writes through the "
                            "outbox the relay drains",
                            run->cfg->outbox);
        return 0;
    } else if (partitions_open(&run->set, run->cfg,
                               run->o.repair ? OUTBOX_EXISTING : OUTBOX_READONLY, &why) != 0) {
        if (run->o.repair || why.code == D2F_ECONFIG) { /* DDB2FS_PARTITIONS is not the outbox's */
            *err = why;
            return why.code ? why.code : D2F_EDB;
        }
        run->set = NULL; /* verify works without it */
        return 0;
    } else {
        run->obs = partitions_all(run->set);
        run->nob = partitions_count(run->set);
    }
    run->r->outbox = run->nob > 0;
    if (run->o.repair && run->nob) {
        if (!(run->ings = calloc(run->nob, sizeof(*run->ings))))
            return oom(err);
        for (size_t f = 0; f < run->nob; f++)
            if (!(run->ings[f] = ingest_new(run->obs[f], &run->c2)))
                return oom(err);
    }
    return 0;
}

static int collection_of(struct run *run, struct d2f_err *err)
{
    struct buf c;
    const char *set =
        run->o.collection ? run->o.collection : config_collection_for(run->cfg, run->o.table);
    int rc;

    if (set) {
        snprintf(run->r->collection, sizeof(run->r->collection), "%s", set);
    } else {
        buf_init(&c, sizeof(run->r->collection) - 1);
        if ((rc = docid_collection(run->o.table, &c)) != 0) {
            buf_release(&c);
            return d2f_errf(err, rc == D2F_ENOMEM ? rc : D2F_EUSAGE,
                            "table '%s' has no collection name", run->o.table);
        }
        snprintf(run->r->collection, sizeof(run->r->collection), "%s", buf_str(&c));
        buf_release(&c);
    }
    /* the planning names documents in the collection chosen */
    run->c2 = *run->cfg;
    run->coll.table = run->o.table;
    run->coll.collection = run->r->collection;
    run->c2.collections = &run->coll;
    run->c2.ncollections = 1;
    return 0;
}

int verify_run(const struct config *cfg, const struct verify_opts *opts, struct verify_report *r,
               struct d2f_err *err)
{
    struct run run;
    cJSON *probe = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    memset(&run, 0, sizeof(run));
    run.cfg = cfg;
    run.o = *opts;
    run.r = r;
    run.started = d2f_now_ms();
    run.get_req = (struct aws_request){.service = "dynamodb",
                                       .endpoint = cfg->dynamodb_endpoint,
                                       .target = "DynamoDB_20120810.GetItem",
                                       .content_type = "application/x-amz-json-1.0",
                                       .what = r->table};
    if (!opts->table || !opts->table[0])
        return d2f_errf(err, D2F_EUSAGE, "--table is required");
    if (opts->segments < 1 || opts->segments > SCAN_SEGMENTS_MAX)
        return d2f_errf(err, D2F_EUSAGE, "--segments: %d is not 1 to %d", opts->segments,
                        SCAN_SEGMENTS_MAX);
    if (!(opts->sample > 0 && opts->sample <= 100))
        return d2f_errf(err, D2F_EUSAGE, "--sample: give a percentage over 0, at most 100");
    if (opts->recheck_after_ms < 0)
        return d2f_errf(err, D2F_EUSAGE, "--recheck-after: give seconds, 0 or more");
    snprintf(r->table, sizeof(r->table), "%s", opts->table);
    if (!(r->listed = cJSON_CreateArray()))
        return oom(err);
    r->segments = opts->segments;
    /* a sample of P% needs at least 100/P segments to choose from */
    if (opts->sample < 100 && (double)r->segments < ceil(100.0 / opts->sample))
        r->segments = (int)fmin(ceil(100.0 / opts->sample), SCAN_SEGMENTS_MAX);
    if ((rc = collection_of(&run, err)) != 0 || (rc = open_outbox(&run, err)) != 0 ||
        (rc = describe(&run, err)) != 0 || (rc = http_new(&run.http, err)) != 0 ||
        (rc = connect_firestore(cfg, run.http, &run.auth, &run.fs, err)) != 0)
        goto out;
    run.prefix_len = strlen(firestore_docs_prefix(run.fs));
    /* Firestore must answer before the table is read */
    if ((rc = firestore_list(run.fs, r->collection, 1, NULL, 1, call_deadline(&run), &probe,
                             err)) != 0)
        goto out;
    r->complete = 1;
    if ((rc = first_pass(&run, err)) != 0)
        goto out;
    if (r->complete == 1 && r->segments_read == r->segments && (rc = find_extras(&run, err)) != 0)
        goto out;
    if (r->complete != 1 || r->segments_read != r->segments)
        r->complete = 0;
    if ((rc = recheck_all(&run, err)) != 0)
        goto out;
    if (opts->repair && (rc = repair(&run, err)) != 0)
        goto out;
    if (tally(&run) != 0)
        rc = oom(err);
out:
    r->elapsed_ms = d2f_now_ms() - run.started;
    cJSON_Delete(probe);
    for (size_t i = 0; i < run.nsus; i++)
        suspect_release(&run.sus[i]);
    free(run.sus);
    names_release(&run.seen);
    if (run.get_ready)
        aws_signed_release(&run.get_sig);
    for (size_t f = 0; run.ings && f < run.nob; f++)
        ingest_free(run.ings[f]);
    free(run.ings);
    partitions_close(run.set);
    firestore_free(run.fs);
    gauth_free(run.auth);
    http_free(run.http);
    return rc;
}

void verify_report_release(struct verify_report *r)
{
    cJSON_Delete(r->listed);
    r->listed = NULL;
}

int64_t verify_differences(const struct verify_report *r)
{
    return r->missing + r->different + r->extra;
}

cJSON *verify_report_json(const struct verify_report *r)
{
    cJSON *o = cJSON_CreateObject();
    double secs = (double)r->elapsed_ms / 1000.0;

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "table", r->table);
    cJSON_AddStringToObject(o, "collection", r->collection);
    cJSON_AddBoolToObject(o, "exact", verify_differences(r) == 0 && r->complete);
    json_add_number(o, "items", (double)r->items);
    json_add_number(o, "documents", (double)r->documents);
    json_add_number(o, "equal", (double)r->equal);
    json_add_number(o, "missing", (double)r->missing);
    json_add_number(o, "different", (double)r->different);
    json_add_number(o, "extra", (double)r->extra);
    json_add_number(o, "still_changing", (double)r->changing);
    json_add_number(o, "cleared_by_recheck", (double)r->cleared);
    json_add_number(o, "unmapped", (double)r->unmapped);
    json_add_number(o, "repaired", (double)r->repaired);
    json_add_number(o, "not_repaired", (double)r->not_repaired);
    json_add_number(o, "segments", r->segments);
    json_add_number(o, "segments_checked", r->segments_read);
    cJSON_AddBoolToObject(o, "complete", r->complete == 1);
    cJSON_AddBoolToObject(o, "extras_checked", r->extras_checked);
    cJSON_AddBoolToObject(o, "outbox", r->outbox);
    json_add_number(o, "read_units", r->read_units);
    json_add_number(o, "seconds", secs);
    json_add_number(o, "items_per_s", secs > 0 ? (double)r->items / secs : 0);
    cJSON_AddItemToObject(o, "differences",
                          r->listed ? cJSON_Duplicate(r->listed, 1) : cJSON_CreateArray());
    return o;
}

void verify_print_text(const struct verify_report *r, FILE *out)
{
    const cJSON *d, *f;

    fprintf(out,
            "verify '%s' against collection '%s': %s\n"
            "  items %lld, documents %lld, equal %lld\n"
            "  missing %lld, different %lld, extra %lld, still changing %lld (cleared by a "
            "recheck: %lld; items the mapping refuses: %lld)\n",
            r->table, r->collection,
            verify_differences(r) ? "DIFFERENCES"
            : r->complete == 1    ? "exact"
                                  : "no difference in what was checked",
            (long long)r->items, (long long)r->documents, (long long)r->equal,
            (long long)r->missing, (long long)r->different, (long long)r->extra,
            (long long)r->changing, (long long)r->cleared, (long long)r->unmapped);
    fprintf(out, "  %d of %d segments%s; %.1f read units; %.1f s\n", r->segments_read, r->segments,
            r->extras_checked ? ", the collection listed for extra documents" : "", r->read_units,
            (double)r->elapsed_ms / 1000.0);
    if (r->repaired || r->not_repaired)
        fprintf(out, "  repaired through the outbox: %lld; not repaired: %lld\n",
                (long long)r->repaired, (long long)r->not_repaired);
    cJSON_ArrayForEach(d, r->listed)
    {
        char *name = json_print(cJSON_GetObjectItemCaseSensitive(d, "document"));
        fprintf(out, "%-9s %s\n", cJSON_GetObjectItemCaseSensitive(d, "kind")->valuestring,
                name ? name : "?");
        cJSON_free(name);
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(d, "fields"))
        {
            char *path = json_print(cJSON_GetObjectItemCaseSensitive(f, "path"));
            char *iv = json_print(cJSON_GetObjectItemCaseSensitive(f, "item_value"));
            char *dv = json_print(cJSON_GetObjectItemCaseSensitive(f, "document_value"));
            fprintf(out, "          %s: item %s%s%s, document %s%s%s\n", path ? path : "?",
                    cJSON_GetObjectItemCaseSensitive(f, "item")->valuestring, iv ? " " : "",
                    iv ? iv : "", cJSON_GetObjectItemCaseSensitive(f, "document")->valuestring,
                    dv ? " " : "", dv ? dv : "");
            cJSON_free(path);
            cJSON_free(iv);
            cJSON_free(dv);
        }
    }
}

void verify_log(const struct verify_report *r, const char *function, FILE *metrics)
{
    /* the log line, as every other */
    {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "table", r->table);
        json_add_number(f, "items", (double)r->items);
        json_add_number(f, "differences", (double)verify_differences(r));
        json_add_number(f, "missing", (double)r->missing);
        json_add_number(f, "different", (double)r->different);
        json_add_number(f, "extra", (double)r->extra);
        json_add_number(f, "still_changing", (double)r->changing);
        json_add_number(f, "repaired", (double)r->repaired);
        json_add_number(f, "segments_checked", r->segments_read);
        json_add_number(f, "seconds", (double)r->elapsed_ms / 1000.0);
        log_write(verify_differences(r) ? LOG_WARN : LOG_INFO,
                  verify_differences(r) ? "verify found differences" : "verify found none", f);
    }
    /* the metric: the function's alarm watches it by FunctionName, as its other metrics; per
     * table too */
    {
        static const char *const both[] = {"FunctionName", "Table"};
        const struct log_metric m[] = {
            {"VerifyDifferences", "Count", (double)verify_differences(r)}};
        cJSON *line = cJSON_CreateObject();
        cJSON_AddStringToObject(line, "Table", r->table);
        if (function)
            cJSON_AddStringToObject(line, "FunctionName", function);
        log_metrics(metrics, d2f_now_ms(), function ? both : both + 1, function ? 2 : 1, line, m,
                    1);
    }
}

int verify_opts_from_json(const cJSON *json, struct verify_opts *o, struct d2f_err *err)
{
    static const char *const numbers[] = {"segments", "sample", "rate", "recheck_after"};
    const cJSON *table = cJSON_GetObjectItemCaseSensitive(json, "table");
    const cJSON *coll = cJSON_GetObjectItemCaseSensitive(json, "collection");
    double v[4] = {8, 1, 0, 60};

    memset(o, 0, sizeof(*o));
    if (!cJSON_IsString(table) || !table->valuestring[0])
        return d2f_errf(err, D2F_EINPUT, "verify: 'table' must name the table");
    o->table = table->valuestring;
    if (coll && (!cJSON_IsString(coll) || !coll->valuestring[0]))
        return d2f_errf(err, D2F_EINPUT, "verify: 'collection' must name a collection");
    o->collection = coll ? coll->valuestring : NULL;
    for (int i = 0; i < 4; i++) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(json, numbers[i]);
        if (!n)
            continue;
        if (!cJSON_IsNumber(n) || !(n->valuedouble >= 0) || !isfinite(n->valuedouble))
            return d2f_errf(err, D2F_EINPUT, "verify: '%s' must be a number, 0 or more",
                            numbers[i]);
        v[i] = n->valuedouble;
    }
    if (v[0] < 1 || v[0] > SCAN_SEGMENTS_MAX || v[0] != floor(v[0]))
        return d2f_errf(err, D2F_EINPUT, "verify: 'segments' must be a whole number, 1 to %d",
                        SCAN_SEGMENTS_MAX);
    if (!(v[1] > 0 && v[1] <= 100))
        return d2f_errf(err, D2F_EINPUT,
                        "verify: 'sample' must be a percentage over 0, at most "
                        "100");
    o->segments = (int)v[0];
    o->sample = v[1];
    o->rate = v[2];
    o->recheck_after_ms = (int64_t)(v[3] * 1000);
    return 0;
}
