/* Unit tests for runtime.c: the Runtime API's paths, headers and bodies as the 2018-06-01 API
 * reference gives them, the invocation read from invocation/next's headers, the error JSON,
 * and which answers to a post are tried again (with the pause between tries counted, not
 * slept). The HTTP layer is replaced here by a script of answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "http.h"

/* One answer of the script, and the request it answered. */
struct exchange {
    /* the answer */
    int failed;
    long status;
    const char *headers, *body;
    size_t body_len; /* 0: strlen(body) */
    /* the request */
    char method[8], url[256], content_type[64], error_type[128], body_sent[512];
    int plain_http, keep_headers;
    int64_t deadline_ms;
};

static struct exchange script[8];
static size_t nscript, used;
static int pauses;
static int64_t pause_ms;

static int fake_http_perform(struct http *h, struct http_call **calls, size_t n,
                             int64_t deadline_ms, struct d2f_err *err)
{
    struct http_call *c = calls[0];
    struct exchange *x;

    (void)h;
    (void)err;
    assert_int_equal(n, 1);
    assert_true(used < nscript);
    x = &script[used++];
    snprintf(x->method, sizeof(x->method), "%s", c->method);
    snprintf(x->url, sizeof(x->url), "%s", c->url);
    snprintf(x->content_type, sizeof(x->content_type), "%s",
             c->content_type ? c->content_type : "(none)");
    snprintf(x->error_type, sizeof(x->error_type), "%s",
             c->extra_headers[0] ? c->extra_headers[0] : "(none)");
    snprintf(x->body_sent, sizeof(x->body_sent), "%.*s", (int)c->body_len, c->body ? c->body : "");
    x->plain_http = c->plain_http;
    x->keep_headers = c->keep_headers;
    x->deadline_ms = deadline_ms;
    c->failed = x->failed;
    c->status = x->failed ? 0 : x->status;
    if (x->failed) {
        snprintf(c->error, sizeof(c->error), "Couldn't connect to server");
        return 0;
    }
    if (x->headers && c->keep_headers)
        assert_int_equal(buf_adds(&c->headers, x->headers), 0);
    if (x->body &&
        buf_add(&c->response, x->body, x->body_len ? x->body_len : strlen(x->body)) != 0) {
        c->failed = 1; /* over the cap, as libcurl fails it */
        c->status = 0;
    }
    return 0;
}

/* The pause between tries, counted instead of slept (d2f_clock_set). */
static void fake_sleep(int64_t ms)
{
    pauses++;
    pause_ms = ms;
}

#define http_perform fake_http_perform
#include "../../src/runtime.c"
#undef http_perform

#define BASE "http://127.0.0.1:9001/2018-06-01/runtime"
#define RID "8476a536-e9f4-11e8-9739-2dfe598c3fcd"

/* Sets the answers the next calls get. */
static void answers(const struct exchange *xs, size_t n)
{
    memset(script, 0, sizeof(script));
    memcpy(script, xs, n * sizeof(*xs));
    nscript = n;
    used = 0;
    pauses = 0;
    pause_ms = 0;
    d2f_clock_set(NULL, fake_sleep);
}

static struct runtime *open_runtime(void)
{
    struct runtime *rt = NULL;
    struct d2f_err err = {0};

    assert_int_equal(runtime_open(&rt, "127.0.0.1:9001", NULL, &err), 0);
    return rt;
}

/* AWS_LAMBDA_RUNTIME_API is host:port; anything else is refused, naming the variable. */
static void test_open(void **state)
{
    static const char *const bad[] = {"", "127.0.0.1:9001/x", "host port", "http://host:1"};
    struct runtime *rt = NULL;
    struct d2f_err err = {0};
    char expected[256];

    (void)state;
    assert_int_equal(runtime_open(&rt, NULL, NULL, &err), D2F_ECONFIG);
    assert_null(rt);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(runtime_open(&rt, bad[i], NULL, &err), D2F_ECONFIG);
        assert_null(rt);
        snprintf(expected, sizeof(expected),
                 "AWS_LAMBDA_RUNTIME_API: '%s' is not host:port (run 'ddb2fs lambda' inside "
                 "Lambda, or point it at a Runtime API server)",
                 bad[i]);
        assert_string_equal(err.msg, expected);
    }
    rt = open_runtime();
    assert_string_equal(rt->base, BASE);
    runtime_close(rt);
    runtime_close(NULL);
}

/* invocation/next: a GET over plain http with no total timeout; the invocation from its
 * headers, the event's bytes exactly; a second invocation replaces the first's event. */
static void test_next(void **state)
{
    static const char event[] = "{\"Records\":[{\"k\":\"a\0b\"}]}";
    const struct exchange xs[] = {
        {.status = 200,
         .headers = "HTTP/1.1 200 OK\r\n"
                    "Content-Type: application/json\r\n"
                    "Lambda-Runtime-Aws-Request-Id: " RID "\r\n"
                    "Lambda-Runtime-Deadline-Ms: 1542409706888\r\n"
                    "Lambda-Runtime-Invoked-Function-Arn: "
                    "arn:aws:lambda:us-east-2:123456789012:function:custom-runtime\r\n"
                    "Lambda-Runtime-Trace-Id: "
                    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
                    "\r\n",
         .body = event,
         .body_len = sizeof(event) - 1},
        {.status = 200,
         .headers = "HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: second\r\n"
                    "lambda-runtime-deadline-ms: 1700000000000\r\n\r\n",
         .body = "{}"},
    };
    struct runtime *rt = open_runtime();
    struct runtime_invocation inv;
    struct d2f_err err = {0};

    (void)state;
    answers(xs, 2);
    runtime_invocation_init(&inv);
    assert_int_equal(runtime_next(rt, &inv, &err), 0);
    assert_string_equal(script[0].method, "GET");
    assert_string_equal(script[0].url, BASE "/invocation/next");
    assert_int_equal(script[0].plain_http, 1);
    assert_int_equal(script[0].keep_headers, 1);
    assert_true(script[0].deadline_ms == 0);
    assert_string_equal(inv.request_id, RID);
    assert_true(inv.deadline_ms == 1542409706888);
    assert_string_equal(inv.function_arn,
                        "arn:aws:lambda:us-east-2:123456789012:function:custom-runtime");
    assert_string_equal(
        inv.trace_id, "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1");
    assert_int_equal(inv.event.len, sizeof(event) - 1);
    assert_memory_equal(inv.event.data, event, sizeof(event));

    /* header names in any case; no ARN or trace id: empty */
    assert_int_equal(runtime_next(rt, &inv, &err), 0);
    assert_string_equal(inv.request_id, "second");
    assert_true(inv.deadline_ms == 1700000000000);
    assert_string_equal(inv.function_arn, "");
    assert_string_equal(inv.trace_id, "");
    assert_string_equal(inv.event.data, "{}");
    runtime_invocation_release(&inv);
    runtime_close(rt);
}

/* invocation/next failing means the Runtime API is gone: each way is an error, with the code
 * d2f.h gives it. */
static void test_next_errors(void **state)
{
    static const char ok_head[] = "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r\r\n"
                                  "Lambda-Runtime-Deadline-Ms: 1\r\n\r\n";
    static const struct {
        struct exchange x;
        int code;
        const char *msg;
    } cases[] = {
        {{.failed = 1},
         D2F_EUNREACHABLE,
         "the Runtime API's invocation/next failed: Couldn't connect to server"},
        {{.status = 500, .body = "{}"},
         D2F_EREMOTE,
         "the Runtime API's invocation/next failed: an HTTP status other than 200"},
        {{.status = 200,
          .headers = "HTTP/1.1 200 OK\r\nLambda-Runtime-Deadline-Ms: 1\r\n\r\n",
          .body = "{}"},
         D2F_EREMOTE,
         "the Runtime API's invocation/next has no request id or deadline"},
        {{.status = 200,
          .headers = "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r\r\n\r\n",
          .body = "{}"},
         D2F_EREMOTE,
         "the Runtime API's invocation/next has no request id or deadline"},
    };
    char *big = malloc(RUNTIME_MAX_PAYLOAD + 1);
    const struct exchange over = {
        .status = 200, .headers = ok_head, .body = big, .body_len = RUNTIME_MAX_PAYLOAD + 1};
    struct runtime *rt = open_runtime();
    struct runtime_invocation inv;
    struct d2f_err err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        answers(&cases[i].x, 1);
        runtime_invocation_init(&inv);
        assert_int_equal(runtime_next(rt, &inv, &err), cases[i].code);
        assert_string_equal(err.msg, cases[i].msg);
        runtime_invocation_release(&inv);
    }
    /* one byte over Lambda's 6 MB */
    assert_non_null(big);
    memset(big, ' ', RUNTIME_MAX_PAYLOAD + 1);
    answers(&over, 1);
    runtime_invocation_init(&inv);
    assert_int_equal(runtime_next(rt, &inv, &err), D2F_ELIMIT);
    assert_string_equal(err.msg, "the event is over Lambda's limit of 6291456 bytes");
    runtime_invocation_release(&inv);
    free(big);
    runtime_close(rt);
}

/* The answer: a POST of the body as it is to invocation/ID/response, within 10 s. A 413 (over
 * Lambda's 6 MB) becomes the invocation's error instead. */
static void test_respond(void **state)
{
    static const char body[] = "{\"batchItemFailures\":[]}";
    const struct exchange xs[] = {{.status = 202}, {.status = 413}, {.status = 202}};
    struct runtime *rt = open_runtime();
    struct runtime_invocation inv;
    struct d2f_err err = {0};
    int64_t before = d2f_now_ms();

    (void)state;
    runtime_invocation_init(&inv);
    snprintf(inv.request_id, sizeof(inv.request_id), "%s", RID);
    answers(xs, 3);
    assert_int_equal(runtime_respond(rt, &inv, body, sizeof(body) - 1, &err), 0);
    assert_int_equal(used, 1);
    assert_string_equal(script[0].method, "POST");
    assert_string_equal(script[0].url, BASE "/invocation/" RID "/response");
    assert_string_equal(script[0].content_type, "application/json");
    assert_string_equal(script[0].error_type, "(none)");
    assert_string_equal(script[0].body_sent, body);
    assert_int_equal(script[0].plain_http, 1);
    assert_true(script[0].deadline_ms >= before + 10000 &&
                script[0].deadline_ms <= d2f_now_ms() + 10000);

    assert_int_equal(runtime_respond(rt, &inv, body, sizeof(body) - 1, &err), 0);
    assert_int_equal(used, 3);
    assert_string_equal(script[2].url, BASE "/invocation/" RID "/error");
    assert_string_equal(script[2].error_type,
                        "Lambda-Runtime-Function-Error-Type: ddb2fs.ResponseTooLarge");
    assert_string_equal(script[2].body_sent,
                        "{\"errorMessage\":\"the answer is over Lambda's 6 MB limit\","
                        "\"errorType\":\"ddb2fs.ResponseTooLarge\",\"stackTrace\":[]}");
    assert_int_equal(pauses, 0);
    runtime_invocation_release(&inv);
    runtime_close(rt);
}

/* An error: {"errorMessage", "errorType", "stackTrace"} with the type in its header too, the
 * message's quotes, controls and U+0000 escaped as JSON; at init, to init/error; a refused
 * report is an error. */
static void test_fail_and_init_error(void **state)
{
    const struct exchange xs[] = {{.status = 202}, {.status = 202}, {.status = 400}};
    struct runtime *rt = open_runtime();
    struct runtime_invocation inv;
    struct d2f_err err = {0};

    (void)state;
    runtime_invocation_init(&inv);
    snprintf(inv.request_id, sizeof(inv.request_id), "%s", RID);
    answers(xs, 3);
    assert_int_equal(runtime_fail(rt, &inv, "ddb2fs.MalformedEvent",
                                  "cannot parse record 3 of 5: 'a\"b'\n\t\xC0\x80", &err),
                     0);
    assert_string_equal(script[0].method, "POST");
    assert_string_equal(script[0].url, BASE "/invocation/" RID "/error");
    assert_string_equal(script[0].content_type, "application/json");
    assert_string_equal(script[0].error_type,
                        "Lambda-Runtime-Function-Error-Type: ddb2fs.MalformedEvent");
    assert_string_equal(script[0].body_sent,
                        "{\"errorMessage\":\"cannot parse record 3 of 5: 'a\\\"b'\\n\\t"
                        "\\u0000\",\"errorType\":\"ddb2fs.MalformedEvent\",\"stackTrace\":[]}");

    assert_int_equal(runtime_init_error(rt, "ddb2fs.ConfigError", "DDB2FS_KEYS: entry 1", &err), 0);
    assert_string_equal(script[1].url, BASE "/init/error");
    assert_string_equal(script[1].error_type,
                        "Lambda-Runtime-Function-Error-Type: ddb2fs.ConfigError");
    assert_string_equal(script[1].body_sent,
                        "{\"errorMessage\":\"DDB2FS_KEYS: entry 1\",\"errorType\":"
                        "\"ddb2fs.ConfigError\",\"stackTrace\":[]}");

    /* a report refused is final: an error, not tried again */
    assert_int_equal(runtime_fail(rt, &inv, "ddb2fs.Error", "m", &err), D2F_EREMOTE);
    assert_string_equal(err.msg, "the Runtime API refused an error report: HTTP 400");
    assert_int_equal(used, 3);
    runtime_invocation_release(&inv);
    runtime_close(rt);
}

/* A post is tried again when no answer came or on a 5xx other than 500 (Lambda's own container
 * error), at most 5 times, 200 ms apart; any other refusal is final at once. */
static void test_post_retries(void **state)
{
    static const struct {
        struct exchange xs[5];
        size_t n;
        int code;
        const char *msg;
    } cases[] = {
        {{{.failed = 1}, {.status = 503}, {.status = 202}}, 3, 0, ""},
        {{{.status = 502}, {.status = 504}, {.status = 503}, {.status = 599}, {.failed = 1}},
         5,
         D2F_EUNREACHABLE,
         "cannot post to the Runtime API at '" BASE "/invocation/" RID "/response' (no answer)"},
        {{{.status = 503}, {.status = 503}, {.status = 503}, {.status = 503}, {.status = 503}},
         5,
         D2F_EREMOTE,
         "cannot post to the Runtime API at '" BASE "/invocation/" RID "/response' (server error)"},
        {{{.status = 500}},
         1,
         D2F_EREMOTE,
         "the Runtime API refused the answer to " RID ": HTTP 500"},
        {{{.status = 400}},
         1,
         D2F_EREMOTE,
         "the Runtime API refused the answer to " RID ": HTTP 400"},
    };
    struct runtime *rt = open_runtime();
    struct runtime_invocation inv;

    (void)state;
    runtime_invocation_init(&inv);
    snprintf(inv.request_id, sizeof(inv.request_id), "%s", RID);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct d2f_err err = {0};
        answers(cases[i].xs, cases[i].n);
        assert_int_equal(runtime_respond(rt, &inv, "{}", 2, &err), cases[i].code);
        assert_int_equal(used, cases[i].n);
        if (cases[i].code)
            assert_string_equal(err.msg, cases[i].msg);
        /* 200 ms between tries, none after the last */
        assert_int_equal(pauses, cases[i].n - 1);
        if (pauses)
            assert_int_equal(pause_ms, 200);
        for (size_t k = 0; k < cases[i].n; k++)
            assert_string_equal(script[k].body_sent, "{}");
    }
    runtime_invocation_release(&inv);
    runtime_close(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_next),
        cmocka_unit_test(test_next_errors),
        cmocka_unit_test(test_respond),
        cmocka_unit_test(test_fail_and_init_error),
        cmocka_unit_test(test_post_retries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
