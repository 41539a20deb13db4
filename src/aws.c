/* aws.c: a SigV4-signed call to an AWS JSON-protocol API. */
#include "aws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "http.h"
#include "json.h"

/* The answers we ask for are small; this is generous. */
#define ANSWER_MAX (1024 * 1024)
#define CALL_TIMEOUT_MS 10000
/* Room made for the answer up front, so that it is not moved (leaving copies) as it grows. */
#define ANSWER_ROOM (16 * 1024)

/* Error types that mean the signature or the credentials were refused. */
static int auth_refusal(const char *type)
{
    static const char *const types[] = {"InvalidSignatureException",
                                        "UnrecognizedClientException",
                                        "MissingAuthenticationTokenException",
                                        "IncompleteSignatureException",
                                        "ExpiredTokenException",
                                        "InvalidClientTokenId",
                                        "SignatureDoesNotMatch",
                                        "AccessDeniedException"};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(type, types[i]) == 0)
            return 1;
    return 0;
}

static int refused(const struct aws_request *req, const struct http_call *call, const cJSON *answer,
                   struct d2f_err *err)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(answer, "__type");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(answer, "message");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    const char *hash = strrchr(t, '#');

    if (!msg)
        msg = cJSON_GetObjectItemCaseSensitive(answer, "Message");
    if (hash) /* "com.amazonaws.secretsmanager#ResourceNotFoundException" */
        t = hash + 1;
    return d2f_errf(err, auth_refusal(t) ? D2F_EAUTH : D2F_EREMOTE, "%s refused: HTTP %ld %s: %s",
                    req->what, call->status, *t ? t : "(no error type)",
                    cJSON_IsString(msg) ? msg->valuestring : "(no message)");
}

int aws_json_call(const struct config *cfg, const struct aws_request *req, cJSON **answer,
                  struct d2f_err *err)
{
    struct http *http = NULL;
    struct http_call call, *calls[1] = {&call};
    static const char room[ANSWER_ROOM];
    char url[2048], sigv4[128], target[256], token[4096], *userpwd = NULL, *body = NULL;
    cJSON *request = NULL;
    size_t n = 0;
    int rc;

    *answer = NULL;
    if (!cfg->aws_region || !cfg->aws_key_id || !cfg->aws_secret)
        return d2f_errf(err, D2F_ECONFIG,
                        "%s: AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not "
                        "all set",
                        req->what);
    if (cfg->aws_token && strlen(cfg->aws_token) > sizeof(token) - 32)
        return d2f_errf(err, D2F_ECONFIG, "AWS_SESSION_TOKEN: over %zu bytes", sizeof(token) - 32);
    http_call_init(&call, ANSWER_MAX);
    if (req->endpoint)
        snprintf(url, sizeof(url), "%s/", req->endpoint);
    else
        snprintf(url, sizeof(url), "https://%s.%s.amazonaws.com/", req->service, cfg->aws_region);
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", cfg->aws_region, req->service);
    snprintf(target, sizeof(target), "X-Amz-Target: %s", req->target);
    n = strlen(cfg->aws_key_id) + strlen(cfg->aws_secret) + 2;
    if (!(userpwd = malloc(n)) || buf_add(&call.response, room, sizeof(room)) != 0 ||
        !(request = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(request, req->key, req->value) || !(body = json_print(request)) ||
        (rc = http_new(&http, err)) != 0) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(userpwd, n, "%s:%s", cfg->aws_key_id, cfg->aws_secret);
    buf_reset(&call.response);
    call.method = "POST";
    call.url = url;
    call.content_type = req->content_type;
    call.body = body;
    call.body_len = strlen(body);
    call.aws_sigv4 = sigv4;
    call.userpwd = userpwd;
    call.extra_headers[0] = target;
    if (cfg->aws_token) {
        snprintf(token, sizeof(token), "X-Amz-Security-Token: %s", cfg->aws_token);
        call.extra_headers[1] = token;
    }
    if ((rc = http_perform(http, calls, 1, http_now_ms() + CALL_TIMEOUT_MS, err)) != 0)
        goto out;
    if (call.failed) {
        rc = d2f_errf(err, D2F_EIO, "%s: no answer from %s: %s", req->what, url, call.error);
        goto out;
    }
    *answer = cJSON_ParseWithLength(buf_str(&call.response), call.response.len);
    if (call.status != 200) {
        rc = refused(req, &call, *answer, err);
        cJSON_Delete(*answer);
        *answer = NULL;
    } else if (!cJSON_IsObject(*answer)) {
        rc = d2f_errf(err, D2F_EREMOTE, "%s: the answer is not a JSON object", req->what);
        cJSON_Delete(*answer);
        *answer = NULL;
    }
out:
    cJSON_free(body);
    cJSON_Delete(request);
    sodium_memzero(userpwd, n);
    free(userpwd);
    sodium_memzero(token, sizeof(token));
    if (call.response.data)
        sodium_memzero(call.response.data, call.response.len);
    http_call_release(&call);
    http_free(http);
    return rc;
}
