/*
 * aws.h: one call to an AWS JSON-protocol API (DynamoDB, Secrets Manager), signed with
 * libcurl's own SigV4; credentials, session token and region from the standard variables.
 *
 * The answer's bytes are wiped before they are freed: a Secrets Manager answer holds a secret.
 * AWS's error bodies ({"__type":…,"message":…}) become errors naming the operation.
 */
#ifndef AWS_H
#define AWS_H

#include <cjson/cJSON.h>

#include "config.h"
#include "d2f.h"
#include "http.h"

struct aws_request {
    const char *service;      /* signing name and host prefix: "dynamodb", "secretsmanager" */
    const char *endpoint;     /* base URL override (AWS_ENDPOINT_URL_…), or NULL for AWS's */
    const char *target;       /* X-Amz-Target, "DynamoDB_20120810.DescribeTable" */
    const char *content_type; /* "application/x-amz-json-1.0" or "…-1.1" */
    const char *key;          /* the request's one member, {"key": "value"}: "TableName" */
    const char *value;        /* its value */
    const char *what;         /* names the call in errors: "DescribeTable 'Orders'" */
};

/*
 * Sends the request and parses a 200 answer into *answer (the caller wipes any secret in it
 * and frees it with cJSON_Delete). Returns 0; D2F_ECONFIG when AWS_REGION or the credentials
 * are not set; D2F_EAUTH when AWS refuses the signature or the credentials; D2F_EREMOTE with
 * AWS's error type and message for any other refusal; D2F_EUNREACHABLE when no answer came.
 */
int aws_json_call(const struct config *cfg, const struct aws_request *req, cJSON **answer,
                  struct d2f_err *err) D2F_WUR;

/* What signs calls of one kind (req's service, endpoint and target), for a caller that runs
 * its own calls (several at once: Scan's segments). Released with aws_signed_release, which
 * wipes the credentials. */
struct aws_signed {
    char url[2048];
    char sigv4[128];
    char target[256];
    char token[4096]; /* "X-Amz-Security-Token: …" or "" */
    const char *content_type;
    char *userpwd;
    size_t userpwd_len;
};

/* Sets s up for req's calls. D2F_ECONFIG when AWS_REGION or the credentials are not set. */
int aws_signed_init(struct aws_signed *s, const struct config *cfg, const struct aws_request *req,
                    struct d2f_err *err) D2F_WUR;

/* Makes call a signed POST of body (len bytes; it and s must outlive the call). */
void aws_signed_set(const struct aws_signed *s, struct http_call *call, const char *body,
                    size_t len);

/* Wipes and frees what s holds. */
void aws_signed_release(struct aws_signed *s);

/* Reads a finished call's answer as aws_json_call does; on a refusal type (type_cap bytes, may
 * be NULL) receives AWS's error type ("ProvisionedThroughputExceededException"). */
int aws_answer(const struct aws_request *req, const struct http_call *call, cJSON **answer,
               char *type, size_t type_cap, struct d2f_err *err) D2F_WUR;

#endif
