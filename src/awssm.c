/* awssm.c: Secrets Manager GetSecretValue. */
#include "awssm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "aws.h"

/* Secrets Manager's own cap on a secret value. */
#define SECRET_MAX (64 * 1024)

static void wipe_string(cJSON *v)
{
    if (cJSON_IsString(v))
        sodium_memzero(v->valuestring, strlen(v->valuestring));
}

int awssm_get_secret(const struct config *cfg, const char *id, char **value, size_t *len,
                     int *binary, struct d2f_err *err)
{
    char what[1100];
    struct aws_request req = {.service = "secretsmanager",
                              .endpoint = cfg->secrets_endpoint,
                              .target = "secretsmanager.GetSecretValue",
                              .content_type = "application/x-amz-json-1.1",
                              .key = "SecretId",
                              .value = id,
                              .what = what};
    cJSON *answer = NULL, *str, *bin;
    char *v = NULL;
    size_t n = 0;
    int rc;

    *value = NULL;
    *len = 0;
    *binary = 0;
    snprintf(what, sizeof(what), "GetSecretValue '%.1024s'", id);
    if ((rc = aws_json_call(cfg, &req, &answer, err)) != 0)
        goto out;
    str = cJSON_GetObjectItemCaseSensitive(answer, "SecretString");
    bin = cJSON_GetObjectItemCaseSensitive(answer, "SecretBinary");
    if (!(v = sodium_malloc(SECRET_MAX + 1))) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    if (cJSON_IsString(str) && (n = strlen(str->valuestring)) <= SECRET_MAX) {
        memcpy(v, str->valuestring, n);
    } else if (cJSON_IsString(bin) &&
               sodium_base642bin((unsigned char *)v, SECRET_MAX, bin->valuestring,
                                 strlen(bin->valuestring), NULL, &n, NULL,
                                 sodium_base64_VARIANT_ORIGINAL) == 0) {
        *binary = 1;
    } else {
        rc = d2f_errf(err, D2F_EREMOTE,
                      "%s: the answer has no SecretString or SecretBinary (of at most %d bytes)",
                      what, SECRET_MAX);
        goto out;
    }
    v[n] = '\0';
    sodium_mprotect_noaccess(v);
    *value = v;
    *len = n;
    v = NULL;
out:
    if (answer) {
        wipe_string(cJSON_GetObjectItemCaseSensitive(answer, "SecretString"));
        wipe_string(cJSON_GetObjectItemCaseSensitive(answer, "SecretBinary"));
        cJSON_Delete(answer);
    }
    sodium_free(v);
    return rc;
}
