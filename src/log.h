/*
 * log.h: JSON-lines logs. One object per line: {"level":…,"msg":…, extra fields…}.
 *
 * The CLI logs to stderr (stdout carries command output); the Lambda runtime logs to stdout.
 * Never pass a payload, a token or a key to these functions.
 */
#ifndef LOG_H
#define LOG_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "d2f.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Process-wide: where lines go and the lowest level written. Call once at start-up. */
void log_setup(FILE *out, enum log_level min);

/* The request id every line carries from now on (the runtime loop's invocation); NULL: none. */
void log_set_request(const char *request_id);

/* Writes one line with msg and the members of fields (taken: freed here; may be NULL). */
void log_write(enum log_level level, const char *msg, cJSON *fields);

/* The namespace of every metric. */
#define LOG_METRICS_NAMESPACE "ddb2fs"

/* One metric of an Embedded Metric Format line. */
struct log_metric {
    const char *name, *unit;
    double value;
};

/* One CloudWatch Embedded Metric Format line on out, stamped now_ms: the n metrics, under the
 * dimensions named in dims, whose values are members of dimension_values (taken: it becomes the
 * line; may be NULL). */
void log_metrics(FILE *out, int64_t now_ms, const char *const *dims, size_t ndims,
                 cJSON *dimension_values, const struct log_metric *metrics, size_t n);

#endif
