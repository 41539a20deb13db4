/* scan.c: a parallel, paced, resumable DynamoDB Scan. */
#include "scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "aws.h"
#include "http.h"
#include "json.h"
#include "retry.h"

/* Idle time (retries' backoff) the pacing makes up for at most. */
#define PACE_CREDIT_MS 1000
/* How long one Scan request may take. */
#define CALL_TIMEOUT_MS 30000

struct segment {
    char *start_key; /* ExclusiveStartKey (JSON), NULL at the start */
    int done;
    unsigned attempts;  /* tries of the current page that failed */
    int64_t not_before; /* ms: its retry waits for its backoff */
};

struct scan {
    const struct config *cfg;
    struct scan_opts o;
    char *table;
    char what[320];
    struct aws_request req;
    struct aws_signed sig;
    struct http *http;
    struct segment *seg;
    double next_at; /* ms: the pacing lets the next requests leave then */
    unsigned long retries;
};

int scan_new(struct scan **out, const struct config *cfg, const struct scan_opts *opts,
             struct d2f_err *err)
{
    struct scan *s;
    int rc;

    *out = NULL;
    if (opts->segments < 1 || opts->segments > SCAN_SEGMENTS_MAX)
        return d2f_errf(err, D2F_EUSAGE, "segments: %d is not 1 to %d", opts->segments,
                        SCAN_SEGMENTS_MAX);
    if (!(s = calloc(1, sizeof(*s))) || !(s->table = strdup(opts->table)) ||
        !(s->seg = calloc((size_t)opts->segments, sizeof(*s->seg)))) {
        if (s)
            free(s->table);
        free(s);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    s->cfg = cfg;
    s->next_at = (double)d2f_now_ms(); /* no credit before the start */
    s->o = *opts;
    s->o.table = s->table;
    if (s->o.parallel < 1)
        s->o.parallel = 1;
    snprintf(s->what, sizeof(s->what), "Scan '%s'", s->table);
    s->req = (struct aws_request){.service = "dynamodb",
                                  .endpoint = cfg->dynamodb_endpoint,
                                  .target = "DynamoDB_20120810.Scan",
                                  .content_type = "application/x-amz-json-1.0",
                                  .what = s->what};
    if ((rc = aws_signed_init(&s->sig, cfg, &s->req, err)) != 0 ||
        (rc = http_new(&s->http, err)) != 0) {
        scan_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void scan_free(struct scan *s)
{
    if (!s)
        return;
    for (int i = 0; s->seg && i < s->o.segments; i++)
        free(s->seg[i].start_key);
    free(s->seg);
    aws_signed_release(&s->sig);
    http_free(s->http);
    free(s->table);
    free(s);
}

int scan_resume(struct scan *s, int segment, const char *last_key, int done, struct d2f_err *err)
{
    cJSON *k = NULL;
    struct segment *g;

    if (segment < 0 || segment >= s->o.segments)
        return d2f_errf(err, D2F_EINPUT, "segment %d is not one of %d", segment, s->o.segments);
    g = &s->seg[segment];
    free(g->start_key);
    g->start_key = NULL;
    g->done = done;
    if (done || !last_key)
        return 0;
    if (!(k = json_parse(last_key, strlen(last_key))) || !cJSON_IsObject(k)) {
        cJSON_Delete(k);
        return d2f_errf(err, D2F_EINPUT, "segment %d: the kept LastEvaluatedKey is not an object",
                        segment);
    }
    cJSON_Delete(k);
    if (!(g->start_key = strdup(last_key)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    return 0;
}

unsigned long scan_retries(const struct scan *s)
{
    return s->retries;
}

void scan_page_release(struct scan_page *p)
{
    cJSON_Delete(p->answer);
    memset(p, 0, sizeof(*p));
}

/* The request body of segment i's next page. */
static char *body_of(const struct scan *s, int i)
{
    cJSON *b = cJSON_CreateObject(), *k = NULL;
    char *text = NULL;

    if (!b || !cJSON_AddStringToObject(b, "TableName", s->table) ||
        !json_add_number(b, "Segment", i) || !json_add_number(b, "TotalSegments", s->o.segments) ||
        !cJSON_AddStringToObject(b, "ReturnConsumedCapacity", "TOTAL") ||
        !cJSON_AddBoolToObject(b, "ConsistentRead", s->o.consistent) ||
        (s->o.limit && !json_add_number(b, "Limit", (double)s->o.limit)))
        goto out;
    if (s->seg[i].start_key) {
        if (!(k = json_parse(s->seg[i].start_key, strlen(s->seg[i].start_key))))
            goto out;
        cJSON_AddItemToObject(b, "ExclusiveStartKey", k);
    }
    text = json_print(b);
out:
    cJSON_Delete(b);
    return text;
}

/* Takes a page from an answer; the segment moves on to its LastEvaluatedKey. */
static int take_page(struct scan *s, int i, cJSON *answer, struct scan_page *p, struct d2f_err *err)
{
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(answer, "ConsumedCapacity");
    const cJSON *lek = cJSON_GetObjectItemCaseSensitive(answer, "LastEvaluatedKey");
    struct segment *g = &s->seg[i];

    p->segment = i;
    p->answer = answer;
    p->items = cJSON_GetObjectItemCaseSensitive(answer, "Items");
    if (!cJSON_IsArray(p->items))
        return d2f_errf(err, D2F_EREMOTE, "%s segment %d: the answer has no Items array", s->what,
                        i);
    p->read_units = json_number_value(cJSON_GetObjectItemCaseSensitive(cap, "CapacityUnits"));
    if (!(p->read_units >= 0))
        p->read_units = 0;
    p->last_key = cJSON_IsObject(lek) && lek->child ? lek : NULL;
    p->retries = g->attempts;
    free(g->start_key);
    g->start_key = NULL;
    g->attempts = 0;
    g->not_before = 0;
    if (!p->last_key) {
        g->done = 1;
        return 0;
    }
    if (!(g->start_key = json_print(p->last_key)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    return 0;
}

/* Segments whose next request may leave now, up to cap, into which[]; *soonest: when the
 * next of the others may; *open: segments not finished. */
static size_t choose(const struct scan *s, int64_t now, size_t cap, int *which, int64_t *soonest,
                     size_t *open)
{
    size_t n = 0;

    *soonest = INT64_MAX;
    *open = 0;
    for (int i = 0; i < s->o.segments; i++) {
        const struct segment *g = &s->seg[i];
        if (g->done)
            continue;
        ++*open;
        if (g->not_before <= now && n < cap)
            which[n++] = i;
        else if (g->not_before > now && g->not_before < *soonest)
            *soonest = g->not_before;
    }
    return n;
}

int scan_next(struct scan *s, int64_t deadline_ms, struct scan_page *pages, size_t cap, size_t *n,
              struct d2f_err *err)
{
    size_t want = cap < (size_t)s->o.parallel ? cap : (size_t)s->o.parallel;
    struct http_call *calls = calloc(want ? want : 1, sizeof(*calls));
    struct http_call **pc = calloc(want ? want : 1, sizeof(*pc));
    char **bodies = calloc(want ? want : 1, sizeof(*bodies));
    int *which = calloc(want ? want : 1, sizeof(*which));
    size_t k = 0, open = 0;
    int rc = 0;

    *n = 0;
    if (!calls || !pc || !bodies || !which) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    while (!rc && !*n) {
        int64_t now = d2f_now_ms(), soonest, start, end;
        double used = 0;

        k = choose(s, now, want, which, &soonest, &open);
        if (!open)
            break; /* every segment is finished */
        if (!k || now < (int64_t)s->next_at) {
            int64_t at = k ? (int64_t)s->next_at : soonest;
            if (at >= deadline_ms) {
                rc = d2f_errf(err, D2F_ETIME, "%s: the time budget ran out", s->what);
                break;
            }
            d2f_sleep_ms(at - now);
            continue;
        }
        for (size_t j = 0; j < k; j++) {
            http_call_init(&calls[j], SCAN_ANSWER_MAX);
            pc[j] = &calls[j];
            if (!(bodies[j] = body_of(s, which[j]))) {
                rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
                break;
            }
            aws_signed_set(&s->sig, &calls[j], bodies[j], strlen(bodies[j]));
        }
        start = d2f_now_ms();
        if (!rc)
            rc = http_perform(
                s->http, pc, k,
                deadline_ms < start + CALL_TIMEOUT_MS ? deadline_ms : start + CALL_TIMEOUT_MS, err);
        end = d2f_now_ms();
        for (size_t j = 0; j < k && !rc; j++) {
            struct segment *g = &s->seg[which[j]];
            char type[128];
            cJSON *answer = NULL;
            struct d2f_err why = {0};
            int arc = aws_answer(&s->req, &calls[j], &answer, type, sizeof(type), &why);

            if (!arc) {
                rc = take_page(s, which[j], answer, &pages[*n], err);
                pages[*n].read_start = start;
                pages[*n].read_end = end;
                used += pages[*n].read_units;
                ++*n;
                if (rc) {
                    scan_page_release(&pages[--*n]);
                }
            } else if (retry_aws_transient(calls[j].failed ? 0 : calls[j].status, type)) {
                g->attempts++;
                s->retries++;
                g->not_before = d2f_now_ms() + retry_backoff_ms(g->attempts, randombytes_random());
            } else {
                rc = arc;
                *err = why;
            }
        }
        for (size_t j = 0; j < k; j++) {
            free(bodies[j]);
            bodies[j] = NULL;
            http_call_release(&calls[j]);
        }
        if (s->o.rate > 0) {
            /* the units used spread at the rate: the next requests wait for their share; time
             * lost to retries' backoff is made up for, a second of it at most */
            double floor_at = (double)start - PACE_CREDIT_MS;
            double from = s->next_at > floor_at ? s->next_at : floor_at;
            s->next_at = from + used * 1000.0 / s->o.rate;
        }
    }
    if (rc) {
        for (size_t j = 0; j < *n; j++)
            scan_page_release(&pages[j]);
        *n = 0;
    }
out:
    free(calls);
    free(pc);
    free(bodies);
    free(which);
    return rc;
}
