/*
 * fuzz_event.c: libFuzzer target over event parsing and mapping.
 *
 * Each input is taken as a Lambda stream event: every record is read, checked and planned
 * into its Firestore Write (numbers both ways), the batchItemFailures answer is built, and
 * every document id that was built is decoded back. Sanitizers report the rest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "docid.h"
#include "event.h"
#include "ingest.h"
#include "log.h"
#include "record.h"

static struct config_keys keys[] = {
    {"Orders", "customer", "order"},
    {"ExampleTableWithStream", "Id", NULL},
    {"Catalog", "sku", "rev"},
};

static void plan_all(const uint8_t *data, size_t size, struct config *cfg)
{
    struct event_reader r;
    struct event_record rec;

    if (event_reader_init(&r, (const char *)data, size, NULL) != 0)
        return;
    while (event_reader_next(&r, &rec, NULL) == EVENT_RECORD) {
        const char *pk, *sk;
        struct record_plan plan;

        if (ingest_keys(NULL, cfg, &rec, &pk, &sk, NULL) != 0)
            abort(); /* without an outbox nothing can fail */
        record_plan_init(&plan);
        if (record_plan(&rec, cfg, pk, sk, "projects/p/databases/(default)/documents", &plan) ==
                0 &&
            plan.document.len) {
            const char *id = strchr(plan.document.data, '/');
            struct buf a, b;
            buf_init(&a, 1 << 20);
            buf_init(&b, 1 << 20);
            if (id)
                (void)docid_decode(id + 1, sk ? cfg->separator : NULL, &a, &b);
            buf_release(&a);
            buf_release(&b);
            if (plan.write) {
                char *text = cJSON_PrintUnformatted(plan.write);
                free(text);
            }
        }
        record_plan_release(&plan);
        event_record_release(&rec);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct config cfg = {0};
    struct buf answer;

    if (!ready) {
        if (sodium_init() < 0)
            abort();
        log_setup(stderr, LOG_ERROR);
        ready = 1;
    }
    cfg.separator = "#";
    cfg.database = "(default)";
    cfg.keys = keys;
    cfg.nkeys = sizeof(keys) / sizeof(keys[0]);
    cfg.numbers = CONFIG_NUMBERS_AUTO;
    plan_all(data, size, &cfg);
    cfg.numbers = CONFIG_NUMBERS_STRING;
    cfg.ttl = CONFIG_TTL_IGNORE;
    plan_all(data, size, &cfg);
    buf_init(&answer, EVENT_MAX_BYTES);
    (void)ingest_answer((const char *)data, size, 1, &answer);
    buf_release(&answer);
    return 0;
}
