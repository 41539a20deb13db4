/*
 * scan.h: a parallel, paced, resumable DynamoDB Scan (the backfill's and verify's reader).
 *
 * DESIGN
 * The table is read in TotalSegments segments, one page (at most 1 MB, DynamoDB's own limit,
 * or Limit items) of every unfinished segment at a time, the requests in flight at once over
 * one libcurl multi handle, each signed with libcurl's SigV4 (AWS_ENDPOINT_URL_DYNAMODB
 * honoured). Each answer's ConsumedCapacity feeds the pacing: the next requests leave when
 * the read units used so far, spread at --rate units per second, allow it. Throttling
 * (ProvisionedThroughputExceededException, ThrottlingException, RequestLimitExceeded), 5xx
 * and no answer are retried with backoff and jitter (src/retry.c); other refusals stop the
 * scan. A segment goes on from the LastEvaluatedKey its caller kept: the caller makes a page
 * durable with its segment's position, and a new scan resumes from there.
 *
 * Calling sequence
 *   scan_new(&s, cfg, &opts, &err);
 *   scan_resume(s, segment, last_key_json, done, &err);    for each segment already begun
 *   while ((rc = scan_next(s, deadline, pages, cap, &n, &err)) == 0 && n) {
 *       keep pages[0..n); scan_page_release(&pages[i]);
 *   }
 *   scan_free(s);
 */
#ifndef SCAN_H
#define SCAN_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "d2f.h"

/* An answer's cap: a page is at most 1 MB of items, which their JSON may well double. */
#define SCAN_ANSWER_MAX (16 * 1024 * 1024)
/* Segments a Scan may have (DynamoDB's limit is 1,000,000; ours is what makes sense). */
#define SCAN_SEGMENTS_MAX 1000

struct scan_opts {
    const char *table; /* the table */
    int segments;      /* TotalSegments, 1 to SCAN_SEGMENTS_MAX */
    double rate;       /* read capacity units per second; 0: as fast as DynamoDB answers */
    int consistent;    /* 1: ConsistentRead */
    long limit;        /* items per page at most (Limit); 0: DynamoDB's 1 MB pages */
    int parallel;      /* requests in flight at once, at least 1 */
};

/* One page read. */
struct scan_page {
    int segment;
    cJSON *answer;         /* the whole answer; owned, freed by scan_page_release */
    const cJSON *items;    /* answer's Items (an array) */
    const cJSON *last_key; /* LastEvaluatedKey, NULL when the segment is finished */
    double read_units;     /* ConsumedCapacity.CapacityUnits */
    int64_t read_start;    /* ms: the clock just before the request that answered */
    int64_t read_end;      /* ms: the clock just after its answer */
    unsigned retries;      /* throttled or failed tries before it */
};

struct scan;

/* A scan of opts->table (copied). Free with scan_free. */
int scan_new(struct scan **out, const struct config *cfg, const struct scan_opts *opts,
             struct d2f_err *err) D2F_WUR;

/* Frees the scan; accepts NULL. */
void scan_free(struct scan *s);

/* Sets where segment goes on: after last_key (JSON of a LastEvaluatedKey, NULL from the
 * start), or nowhere when done. D2F_EINPUT when last_key is not a JSON object. */
int scan_resume(struct scan *s, int segment, const char *last_key, int done,
                struct d2f_err *err) D2F_WUR;

/*
 * Reads the next page of up to cap unfinished segments, at once, paced and retried, into
 * pages[0..*n). *n is 0 when every segment is finished. Returns 0; D2F_ETIME when deadline_ms
 * (epoch ms) came first (no page is lost: nothing was returned for it); D2F_EREMOTE /
 * D2F_EAUTH / D2F_ECONFIG when DynamoDB refused for good.
 */
int scan_next(struct scan *s, int64_t deadline_ms, struct scan_page *pages, size_t cap, size_t *n,
              struct d2f_err *err) D2F_WUR;

/* Frees a page's answer. */
void scan_page_release(struct scan_page *p);

/* Throttled or failed requests retried so far. */
unsigned long scan_retries(const struct scan *s);

#endif
