/* runtime.c: the Lambda Runtime API, as a custom runtime speaks it. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "json.h"

/* Tries at posting a result, and the pause between them. */
#define POST_TRIES 5
#define POST_PAUSE_MS 200
/* Time for one post. */
#define POST_TIMEOUT_MS 10000

struct runtime {
    struct http *http;
    char base[512]; /* http://host:port/2018-06-01/runtime */
};

int runtime_open(struct runtime **out, const char *api, struct http *http, struct d2f_err *err)
{
    struct runtime *rt;

    *out = NULL;
    if (!api || !*api || strpbrk(api, "/ "))
        return d2f_errf(err, D2F_ECONFIG,
                        "AWS_LAMBDA_RUNTIME_API: '%.64s' is not host:port (run 'ddb2fs lambda' "
                        "inside Lambda, or point it at a Runtime API server)",
                        api ? api : "");
    rt = calloc(1, sizeof(*rt));
    if (!rt)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    rt->http = http;
    snprintf(rt->base, sizeof(rt->base), "http://%s/2018-06-01/runtime", api);
    *out = rt;
    return 0;
}

void runtime_close(struct runtime *rt)
{
    free(rt);
}

void runtime_invocation_init(struct runtime_invocation *inv)
{
    memset(inv, 0, sizeof(*inv));
    buf_init(&inv->event, RUNTIME_MAX_PAYLOAD);
}

void runtime_invocation_release(struct runtime_invocation *inv)
{
    if (inv)
        buf_release(&inv->event);
}

int runtime_next(struct runtime *rt, struct runtime_invocation *inv, struct d2f_err *err)
{
    struct http_call call, *calls[1] = {&call};
    char url[600], deadline[32];
    int rc;

    http_call_init(&call, RUNTIME_MAX_PAYLOAD + 1);
    snprintf(url, sizeof(url), "%s/invocation/next", rt->base);
    call.method = "GET";
    call.url = url;
    call.plain_http = 1; /* the Runtime API is plain HTTP by design, and carries no credential */
    call.keep_headers = 1;
    if ((rc = http_perform(rt->http, calls, 1, 0, err)) != 0)
        goto out;
    if (call.failed || call.status != 200) {
        rc = d2f_errf(err, call.failed ? D2F_EUNREACHABLE : D2F_EREMOTE,
                      "the Runtime API's invocation/next failed: %s",
                      call.failed ? call.error : "an HTTP status other than 200");
        goto out;
    }
    if (http_header(&call, "Lambda-Runtime-Aws-Request-Id", inv->request_id,
                    sizeof(inv->request_id)) != 0 ||
        http_header(&call, "Lambda-Runtime-Deadline-Ms", deadline, sizeof(deadline)) != 0) {
        rc = d2f_errf(err, D2F_EREMOTE,
                      "the Runtime API's invocation/next has no request id or "
                      "deadline");
        goto out;
    }
    inv->deadline_ms = strtoll(deadline, NULL, 10);
    if (http_header(&call, "Lambda-Runtime-Invoked-Function-Arn", inv->function_arn,
                    sizeof(inv->function_arn)) != 0)
        inv->function_arn[0] = '\0';
    if (http_header(&call, "Lambda-Runtime-Trace-Id", inv->trace_id, sizeof(inv->trace_id)) != 0)
        inv->trace_id[0] = '\0';
    buf_reset(&inv->event);
    if ((rc = buf_add(&inv->event, call.response.data ? call.response.data : "",
                      call.response.len)) != 0)
        rc = d2f_errf(err, rc, "the event is over Lambda's limit of %d bytes", RUNTIME_MAX_PAYLOAD);
out:
    http_call_release(&call);
    return rc;
}

/* Posts body to url, retrying what may pass on a second try. Returns the final HTTP status in
 * *status (0: no answer). */
static int post(struct runtime *rt, const char *url, const char *error_type, const char *body,
                size_t len, long *status, struct d2f_err *err)
{
    char header[256];
    int rc = 0;

    *status = 0;
    if (error_type)
        snprintf(header, sizeof(header), "Lambda-Runtime-Function-Error-Type: %s", error_type);
    for (int attempt = 0; attempt < POST_TRIES; attempt++) {
        struct http_call call, *calls[1] = {&call};

        http_call_init(&call, 64 * 1024);
        call.method = "POST";
        call.url = url;
        call.plain_http = 1;
        call.content_type = "application/json";
        call.body = body;
        call.body_len = len;
        call.extra_headers[0] = error_type ? header : NULL;
        rc = http_perform(rt->http, calls, 1, d2f_now_ms() + POST_TIMEOUT_MS, err);
        *status = call.failed ? 0 : call.status;
        http_call_release(&call);
        if (rc)
            return rc;
        /* no answer, or a 5xx other than 500 (Lambda's own container error): try again */
        if (*status != 0 && *status <= 500)
            return 0;
        if (attempt + 1 < POST_TRIES)
            d2f_sleep_ms(POST_PAUSE_MS);
    }
    return d2f_errf(err, *status ? D2F_EREMOTE : D2F_EUNREACHABLE,
                    "cannot post to the Runtime API at '%s' (%s)", url,
                    *status ? "server error" : "no answer");
}

int runtime_respond(struct runtime *rt, const struct runtime_invocation *inv, const char *body,
                    size_t len, struct d2f_err *err)
{
    char url[800];
    long status;
    int rc;

    snprintf(url, sizeof(url), "%s/invocation/%s/response", rt->base, inv->request_id);
    if ((rc = post(rt, url, NULL, body, len, &status, err)) != 0)
        return rc;
    if (status == 413)
        return runtime_fail(rt, inv, "ddb2fs.ResponseTooLarge",
                            "the answer is over Lambda's 6 MB limit", err);
    if (status != 202)
        return d2f_errf(err, D2F_EREMOTE, "the Runtime API refused the answer to %s: HTTP %ld",
                        inv->request_id, status);
    return 0;
}

static int post_error(struct runtime *rt, const char *url, const char *type, const char *message,
                      struct d2f_err *err)
{
    cJSON *body = cJSON_CreateObject();
    char *text = NULL;
    long status;
    int rc = D2F_ENOMEM;

    if (body && cJSON_AddStringToObject(body, "errorMessage", message) &&
        cJSON_AddStringToObject(body, "errorType", type) &&
        cJSON_AddArrayToObject(body, "stackTrace") && (text = json_print(body))) {
        rc = post(rt, url, type, text, strlen(text), &status, err);
        if (!rc && status != 202)
            rc = d2f_errf(err, D2F_EREMOTE, "the Runtime API refused an error report: HTTP %ld",
                          status);
    } else {
        d2f_errf(err, rc, "out of memory");
    }
    free(text);
    cJSON_Delete(body);
    return rc;
}

int runtime_fail(struct runtime *rt, const struct runtime_invocation *inv, const char *type,
                 const char *message, struct d2f_err *err)
{
    char url[800];

    snprintf(url, sizeof(url), "%s/invocation/%s/error", rt->base, inv->request_id);
    return post_error(rt, url, type, message, err);
}

int runtime_init_error(struct runtime *rt, const char *type, const char *message,
                       struct d2f_err *err)
{
    char url[600];

    snprintf(url, sizeof(url), "%s/init/error", rt->base);
    return post_error(rt, url, type, message, err);
}
