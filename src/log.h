/*
 * log.h: JSON-lines logs. One object per line: {"level":…,"msg":…, extra fields…}.
 *
 * The CLI logs to stderr (stdout carries command output); the Lambda runtime logs to stdout.
 * Never pass a payload, a token or a key to these functions.
 */
#ifndef LOG_H
#define LOG_H

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

#endif
