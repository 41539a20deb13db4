/* retry.c: the retry policy. */
#include "retry.h"

#include <string.h>

static const char *const names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

enum retry_status retry_status_from_name(const char *text)
{
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(text, names[i]) == 0)
            return (enum retry_status)i;
    return RETRY_UNKNOWN;
}

enum retry_status retry_status_from_http(long code)
{
    switch (code) {
    case 200:
        return RETRY_OK;
    case 400:
        return RETRY_INVALID_ARGUMENT;
    case 401:
        return RETRY_UNAUTHENTICATED;
    case 403:
        return RETRY_PERMISSION_DENIED;
    case 404:
        return RETRY_NOT_FOUND;
    case 409:
        return RETRY_ABORTED;
    case 429:
        return RETRY_RESOURCE_EXHAUSTED;
    case 499:
        return RETRY_CANCELLED;
    case 500:
        return RETRY_INTERNAL;
    case 501:
        return RETRY_UNIMPLEMENTED;
    case 502:
    case 503:
        return RETRY_UNAVAILABLE;
    case 504:
        return RETRY_DEADLINE_EXCEEDED;
    }
    return RETRY_UNKNOWN;
}

const char *retry_status_name(enum retry_status s)
{
    if (s == RETRY_NETWORK)
        return "NETWORK";
    if ((unsigned)s < sizeof(names) / sizeof(names[0]))
        return names[s];
    return "UNKNOWN";
}

int retry_transient(enum retry_status s)
{
    switch (s) {
    case RETRY_RESOURCE_EXHAUSTED:
    case RETRY_UNAVAILABLE:
    case RETRY_ABORTED:
    case RETRY_DEADLINE_EXCEEDED:
    case RETRY_INTERNAL:
    case RETRY_NETWORK:
        return 1;
    default:
        return 0;
    }
}

int64_t retry_backoff_ms(unsigned attempt, uint32_t rnd)
{
    int64_t ceiling = RETRY_BASE_MS;

    for (unsigned i = 1; i < attempt && ceiling < RETRY_CAP_MS; i++)
        ceiling *= 2;
    if (ceiling > RETRY_CAP_MS)
        ceiling = RETRY_CAP_MS;
    /* full jitter, but never nothing: at least a tenth of the ceiling */
    return ceiling / 10 + (int64_t)((uint64_t)rnd % (uint64_t)(ceiling - ceiling / 10 + 1));
}

int retry_aws_transient(long http_status, const char *type)
{
    static const char *const types[] = {"ProvisionedThroughputExceededException",
                                        "ThrottlingException", "RequestLimitExceeded",
                                        "InternalServerError", "ServiceUnavailable"};

    if (http_status == 0 || http_status >= 500)
        return 1; /* no answer, or the service's own failure */
    for (size_t i = 0; type && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(type, types[i]) == 0)
            return 1;
    return 0;
}
