/* ddb.c: a table's key schema from DynamoDB's DescribeTable. */
#include "ddb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "aws.h"

/* DescribeTable's answer for table into *answer (freed with cJSON_Delete). */
static int describe(const struct config *cfg, const char *table, cJSON **answer,
                    struct d2f_err *err)
{
    char what[320];
    struct aws_request req = {.service = "dynamodb",
                              .endpoint = cfg->dynamodb_endpoint,
                              .target = "DynamoDB_20120810.DescribeTable",
                              .content_type = "application/x-amz-json-1.0",
                              .key = "TableName",
                              .value = table,
                              .what = what};
    int rc;

    snprintf(what, sizeof(what), "DescribeTable '%s'", table);
    if ((rc = aws_json_call(cfg, &req, answer, err)) == D2F_ECONFIG)
        d2f_errf(err, rc,
                 "cannot ask DynamoDB for the key schema of '%s': AWS_REGION, "
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not all set (or set "
                 "DDB2FS_KEYS)",
                 table);
    return rc;
}

/* The key schema in a DescribeTable answer. */
static int key_schema(const cJSON *answer, const char *table, struct buf *pk, struct buf *sk,
                      struct d2f_err *err)
{
    const cJSON *schema, *k;
    int rc = 0;

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
    return rc;
}

int ddb_key_schema(const struct config *cfg, const char *table, struct buf *pk, struct buf *sk,
                   struct d2f_err *err)
{
    cJSON *answer = NULL;
    int rc = describe(cfg, table, &answer, err);

    if (!rc)
        rc = key_schema(answer, table, pk, sk, err);
    cJSON_Delete(answer);
    return rc;
}

/* A string member of o, or "". */
static const char *text_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : "";
}

int ddb_describe(const struct config *cfg, const char *table, struct ddb_table *t,
                 struct d2f_err *err)
{
    cJSON *answer = NULL;
    const cJSON *tab, *spec;
    int rc = describe(cfg, table, &answer, err);

    t->stream_enabled = 0;
    t->stream_arn[0] = t->view_type[0] = '\0';
    if (rc || (rc = key_schema(answer, table, &t->pk, &t->sk, err)) != 0)
        goto out;
    tab = cJSON_GetObjectItemCaseSensitive(answer, "Table");
    spec = cJSON_GetObjectItemCaseSensitive(tab, "StreamSpecification");
    t->stream_enabled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "StreamEnabled"));
    snprintf(t->view_type, sizeof(t->view_type), "%s", text_of(spec, "StreamViewType"));
    snprintf(t->stream_arn, sizeof(t->stream_arn), "%s", text_of(tab, "LatestStreamArn"));
    t->item_count = cJSON_GetObjectItemCaseSensitive(tab, "ItemCount")
                        ? cJSON_GetObjectItemCaseSensitive(tab, "ItemCount")->valuedouble
                        : 0;
out:
    cJSON_Delete(answer);
    return rc;
}
