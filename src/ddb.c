/* ddb.c: a table's key schema from DynamoDB's DescribeTable. */
#include "ddb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "aws.h"

int ddb_key_schema(const struct config *cfg, const char *table, struct buf *pk, struct buf *sk,
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
    cJSON *answer = NULL;
    const cJSON *schema, *k;
    int rc = 0;

    snprintf(what, sizeof(what), "DescribeTable '%s'", table);
    if ((rc = aws_json_call(cfg, &req, &answer, err)) != 0) {
        if (rc == D2F_ECONFIG)
            d2f_errf(err, rc,
                     "cannot ask DynamoDB for the key schema of '%s': AWS_REGION, "
                     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not all set (or set "
                     "DDB2FS_KEYS)",
                     table);
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
    return rc;
}
