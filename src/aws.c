/* aws.c: a SigV4-signed call to an AWS JSON-protocol API. */
#include "aws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

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
                   char *type, size_t type_cap, struct d2f_err *err)
{
    const cJSON *jtype = cJSON_GetObjectItemCaseSensitive(answer, "__type");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(answer, "message");
    const char *t = cJSON_IsString(jtype) ? jtype->valuestring : "";
    const char *hash = strrchr(t, '#');

    if (!msg)
        msg = cJSON_GetObjectItemCaseSensitive(answer, "Message");
    if (hash) /* "com.amazonaws.secretsmanager#ResourceNotFoundException" */
        t = hash + 1;
    if (type && type_cap)
        snprintf(type, type_cap, "%s", t);
    return d2f_errf(err, auth_refusal(t) ? D2F_EAUTH : D2F_EREMOTE, "%s refused: HTTP %ld %s: %s",
                    req->what, call->status, *t ? t : "(no error type)",
                    cJSON_IsString(msg) ? msg->valuestring : "(no message)");
}

int aws_signed_init(struct aws_signed *s, const struct config *cfg, const struct aws_request *req,
                    struct d2f_err *err)
{
    memset(s, 0, sizeof(*s));
    if (!cfg->aws_region || !cfg->aws_key_id || !cfg->aws_secret)
        return d2f_errf(err, D2F_ECONFIG,
                        "%s: AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not "
                        "all set",
                        req->what);
    if (cfg->aws_token && strlen(cfg->aws_token) > sizeof(s->token) - 32)
        return d2f_errf(err, D2F_ECONFIG, "AWS_SESSION_TOKEN: over %zu bytes",
                        sizeof(s->token) - 32);
    if (req->endpoint)
        snprintf(s->url, sizeof(s->url), "%s/", req->endpoint);
    else
        snprintf(s->url, sizeof(s->url), "https://%s.%s.amazonaws.com/", req->service,
                 cfg->aws_region);
    snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:%s", cfg->aws_region, req->service);
    snprintf(s->target, sizeof(s->target), "X-Amz-Target: %s", req->target);
    s->userpwd_len = strlen(cfg->aws_key_id) + strlen(cfg->aws_secret) + 2;
    if (!(s->userpwd = malloc(s->userpwd_len)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    snprintf(s->userpwd, s->userpwd_len, "%s:%s", cfg->aws_key_id, cfg->aws_secret);
    if (cfg->aws_token)
        snprintf(s->token, sizeof(s->token), "X-Amz-Security-Token: %s", cfg->aws_token);
    s->content_type = req->content_type;
    return 0;
}

void aws_signed_set(const struct aws_signed *s, struct http_call *call, const char *body,
                    size_t len)
{
    call->method = "POST";
    call->url = s->url;
    call->content_type = s->content_type;
    call->body = body;
    call->body_len = len;
    call->aws_sigv4 = s->sigv4;
    call->userpwd = s->userpwd;
    call->extra_headers[0] = s->target;
    call->extra_headers[1] = s->token[0] ? s->token : NULL;
}

void aws_signed_release(struct aws_signed *s)
{
    if (s->userpwd) {
        sodium_memzero(s->userpwd, s->userpwd_len);
        free(s->userpwd);
    }
    sodium_memzero(s->token, sizeof(s->token));
    s->userpwd = NULL;
}

int aws_answer(const struct aws_request *req, const struct http_call *call, cJSON **answer,
               char *type, size_t type_cap, struct d2f_err *err)
{
    int rc = 0;

    *answer = NULL;
    if (type && type_cap)
        type[0] = '\0';
    if (call->failed)
        return d2f_errf(err, D2F_EUNREACHABLE, "%s: no answer from %s: %s", req->what, call->url,
                        call->error);
    *answer = json_parse(buf_str(&call->response), call->response.len);
    if (call->status != 200) {
        rc = refused(req, call, *answer, type, type_cap, err);
        cJSON_Delete(*answer);
        *answer = NULL;
    } else if (!cJSON_IsObject(*answer)) {
        rc = d2f_errf(err, D2F_EREMOTE, "%s: the answer is not a JSON object", req->what);
        cJSON_Delete(*answer);
        *answer = NULL;
    }
    return rc;
}

int aws_json_call(const struct config *cfg, const struct aws_request *req, cJSON **answer,
                  struct d2f_err *err)
{
    struct http *http = NULL;
    struct http_call call, *calls[1] = {&call};
    static const char room[ANSWER_ROOM];
    struct aws_signed sig;
    char *body = NULL;
    cJSON *request = NULL;
    int rc;

    *answer = NULL;
    if ((rc = aws_signed_init(&sig, cfg, req, err)) != 0)
        return rc;
    http_call_init(&call, ANSWER_MAX);
    if (buf_add(&call.response, room, sizeof(room)) != 0 || !(request = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(request, req->key, req->value) || !(body = json_print(request)) ||
        (rc = http_new(&http, err)) != 0) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    buf_reset(&call.response);
    aws_signed_set(&sig, &call, body, strlen(body));
    if ((rc = http_perform(http, calls, 1, d2f_now_ms() + CALL_TIMEOUT_MS, err)) != 0)
        goto out;
    rc = aws_answer(req, &call, answer, NULL, 0, err);
out:
    cJSON_free(body);
    cJSON_Delete(request);
    aws_signed_release(&sig);
    if (call.response.data)
        sodium_memzero(call.response.data, call.response.len);
    http_call_release(&call);
    http_free(http);
    return rc;
}
