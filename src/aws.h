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
 * AWS's error type and message for any other refusal; D2F_EIO when no answer came.
 */
int aws_json_call(const struct config *cfg, const struct aws_request *req, cJSON **answer,
                  struct d2f_err *err) D2F_WUR;

#endif
