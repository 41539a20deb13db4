/*
 * retry.h: the retry policy, pure: which Firestore statuses are worth another try, and how
 * long to wait before it (exponential backoff with full jitter, never past a deadline).
 */
#ifndef RETRY_H
#define RETRY_H

#include <stdint.h>

/* google.rpc.Code, as Firestore's REST errors name them in "status"; RETRY_NETWORK stands for
 * "no answer" (connection refused or dropped, timeout). */
enum retry_status {
    RETRY_OK = 0,
    RETRY_CANCELLED = 1,
    RETRY_UNKNOWN = 2,
    RETRY_INVALID_ARGUMENT = 3,
    RETRY_DEADLINE_EXCEEDED = 4,
    RETRY_NOT_FOUND = 5,
    RETRY_ALREADY_EXISTS = 6,
    RETRY_PERMISSION_DENIED = 7,
    RETRY_RESOURCE_EXHAUSTED = 8,
    RETRY_FAILED_PRECONDITION = 9,
    RETRY_ABORTED = 10,
    RETRY_OUT_OF_RANGE = 11,
    RETRY_UNIMPLEMENTED = 12,
    RETRY_INTERNAL = 13,
    RETRY_UNAVAILABLE = 14,
    RETRY_DATA_LOSS = 15,
    RETRY_UNAUTHENTICATED = 16,
    RETRY_NETWORK = 100,
};

/* The status named by text ("UNAVAILABLE"…); RETRY_UNKNOWN for a name we do not know. */
enum retry_status retry_status_from_name(const char *text);

/* The status an HTTP code means when the body says nothing (409 is taken as ABORTED). */
enum retry_status retry_status_from_http(long code);

/* Static name of a status. */
const char *retry_status_name(enum retry_status s);

/* 1 for statuses that may succeed when tried again unchanged. */
int retry_transient(enum retry_status s);

/* Milliseconds to wait before attempt number attempt (1 for the first retry): a random share,
 * from rnd, of min(cap, base · 2^(attempt-1)). */
int64_t retry_backoff_ms(unsigned attempt, uint32_t rnd);

/* 1 when an AWS call that got http_status (0: no answer) and error type (may be NULL or "")
 * may succeed when tried again: throttling (ProvisionedThroughputExceededException,
 * ThrottlingException, RequestLimitExceeded), 5xx and no answer. */
int retry_aws_transient(long http_status, const char *type);

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 10000

#endif
