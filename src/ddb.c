/* ddb.c: a table's key schema from DynamoDB's DescribeTable. */
#include "ddb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http.h"

/* DescribeTable answers are small; this is generous. */
#define ANSWER_MAX (1024 * 1024)
#define CALL_TIMEOUT_MS 10000

int ddb_key_schema(const struct config *cfg, const char *table, struct buf *pk, struct buf *sk,
                   struct d2f_err *err)
{
    struct http *http = NULL;
    struct http_call call, *calls[1] = {&call};
    char url[2048], sigv4[128], token[4096], *userpwd = NULL, *body = NULL;
    cJSON *req = NULL, *answer = NULL;
    const cJSON *schema, *k;
    size_t n;
    int rc;

    http_call_init(&call, ANSWER_MAX);
    if (!cfg->aws_region || !cfg->aws_key_id || !cfg->aws_secret) {
        rc = d2f_errf(err, D2F_ECONFIG,
                      "cannot ask DynamoDB for the key schema of '%s': AWS_REGION, "
                      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not all set (or set "
                      "DDB2FS_KEYS)",
                      table);
        goto out;
    }
    if (cfg->dynamodb_endpoint)
        snprintf(url, sizeof(url), "%s/", cfg->dynamodb_endpoint);
    else
        snprintf(url, sizeof(url), "https://dynamodb.%s.amazonaws.com/", cfg->aws_region);
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:dynamodb", cfg->aws_region);
    n = strlen(cfg->aws_key_id) + strlen(cfg->aws_secret) + 2;
    userpwd = malloc(n);
    req = cJSON_CreateObject();
    if (!userpwd || !req || !cJSON_AddStringToObject(req, "TableName", table) ||
        !(body = cJSON_PrintUnformatted(req)) || (rc = http_new(&http, err)) != 0) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(userpwd, n, "%s:%s", cfg->aws_key_id, cfg->aws_secret);
    call.method = "POST";
    call.url = url;
    call.content_type = "application/x-amz-json-1.0";
    call.body = body;
    call.body_len = strlen(body);
    call.aws_sigv4 = sigv4;
    call.userpwd = userpwd;
    call.extra_headers[0] = "X-Amz-Target: DynamoDB_20120810.DescribeTable";
    if (cfg->aws_token) {
        snprintf(token, sizeof(token), "X-Amz-Security-Token: %s", cfg->aws_token);
        call.extra_headers[1] = token;
    }
    if ((rc = http_perform(http, calls, 1, http_now_ms() + CALL_TIMEOUT_MS, err)) != 0)
        goto out;
    if (call.failed) {
        rc = d2f_errf(err, D2F_EIO, "DescribeTable '%s': no answer from DynamoDB: %s", table,
                      call.error);
        goto out;
    }
    answer = cJSON_ParseWithLength(buf_str(&call.response), call.response.len);
    if (call.status != 200) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(answer, "__type");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(answer, "message");
        if (!msg)
            msg = cJSON_GetObjectItemCaseSensitive(answer, "Message");
        rc = d2f_errf(err, D2F_EREMOTE, "DescribeTable '%s' refused: HTTP %ld %s: %s", table,
                      call.status, cJSON_IsString(type) ? type->valuestring : "",
                      cJSON_IsString(msg) ? msg->valuestring : "(no message)");
        goto out;
    }
    schema = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(answer, "Table"),
                                              "KeySchema");
    buf_reset(pk);
    buf_reset(sk);
    cJSON_ArrayForEach(k, schema)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(k, "AttributeName");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(k, "KeyType");
        if (!cJSON_IsString(name) || !cJSON_IsString(type))
            continue;
        if (strcmp(type->valuestring, "HASH") == 0 && buf_adds(pk, name->valuestring) != 0)
            rc = D2F_ENOMEM;
        if (strcmp(type->valuestring, "RANGE") == 0 && buf_adds(sk, name->valuestring) != 0)
            rc = D2F_ENOMEM;
    }
    if (rc || !pk->len)
        rc = d2f_errf(err, rc ? rc : D2F_EREMOTE,
                      "DescribeTable '%s': the answer has no HASH key in Table.KeySchema", table);
out:
    cJSON_Delete(answer);
    cJSON_Delete(req);
    cJSON_free(body);
    if (userpwd) {
        memset(userpwd, 0, strlen(userpwd));
        free(userpwd);
    }
    memset(token, 0, sizeof(token));
    http_call_release(&call);
    http_free(http);
    return rc;
}
