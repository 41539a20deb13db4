/* Unit tests for aws.c: what a signed call is made of (URL, SigV4 scope, target, token,
 * credentials), the call aws_json_call hands to the HTTP layer, and answers written by hand:
 * a 200 object, AWS's error JSON ({"__type", "message"}) as refusals of credentials or of the
 * request, and no answer. The HTTP layer is replaced here: nothing goes on the network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "http.h"

/* What aws_json_call sent, and what the stand-in for the HTTP layer answers. */
static struct {
    int calls;
    char method[8], url[256], content_type[64], sigv4[128], userpwd[128];
    char headers[2][4200];
    char body[256];
    int64_t deadline_ms;
    long status;        /* the answer's status */
    const char *answer; /* its body */
    int failed;         /* 1: no answer */
} net;

static int fake_http_perform(struct http *h, struct http_call **calls, size_t n,
                             int64_t deadline_ms, struct d2f_err *err)
{
    struct http_call *c = calls[0];

    (void)h;
    (void)err;
    assert_int_equal(n, 1);
    net.calls++;
    snprintf(net.method, sizeof(net.method), "%s", c->method);
    snprintf(net.url, sizeof(net.url), "%s", c->url);
    snprintf(net.content_type, sizeof(net.content_type), "%s", c->content_type);
    snprintf(net.sigv4, sizeof(net.sigv4), "%s", c->aws_sigv4);
    snprintf(net.userpwd, sizeof(net.userpwd), "%s", c->userpwd);
    for (size_t i = 0; i < 2; i++)
        snprintf(net.headers[i], sizeof(net.headers[i]), "%s",
                 c->extra_headers[i] ? c->extra_headers[i] : "(none)");
    assert_null(c->extra_headers[2]);
    snprintf(net.body, sizeof(net.body), "%.*s", (int)c->body_len, c->body);
    net.deadline_ms = deadline_ms;
    c->failed = net.failed;
    c->status = net.failed ? 0 : net.status;
    if (net.failed)
        snprintf(c->error, sizeof(c->error), "Couldn't connect to server");
    else
        assert_int_equal(buf_adds(&c->response, net.answer), 0);
    return 0;
}

#define http_perform fake_http_perform
#include "../../src/aws.c"
#undef http_perform

static const struct aws_request describe = {.service = "dynamodb",
                                            .target = "DynamoDB_20120810.DescribeTable",
                                            .content_type = "application/x-amz-json-1.0",
                                            .key = "TableName",
                                            .value = "Orders",
                                            .what = "DescribeTable 'Orders'"};

/* The settings that matter here: region and credentials. */
static struct config aws_config(const char *region, const char *key_id, const char *secret,
                                const char *token)
{
    struct config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.aws_region = region;
    cfg.aws_key_id = key_id;
    cfg.aws_secret = secret;
    cfg.aws_token = token;
    return cfg;
}

/* The signer: AWS's host for the service and region or the endpoint given, SigV4's scope, the
 * target and token headers, "key:secret" for libcurl; released, the credentials are wiped. */
static void test_signed_call(void **state)
{
    struct config cfg = aws_config("eu-west-1", "AKIDEXAMPLE", "wJalrXUtnFEMI", "FwoGZXIvYXdzE");
    struct aws_request req = describe;
    struct aws_signed s;
    struct http_call c;
    struct d2f_err err = {0};
    static const char zeros[sizeof(s.token)];

    (void)state;
    assert_int_equal(aws_signed_init(&s, &cfg, &req, &err), 0);
    assert_string_equal(s.url, "https://dynamodb.eu-west-1.amazonaws.com/");
    assert_string_equal(s.sigv4, "aws:amz:eu-west-1:dynamodb");
    assert_string_equal(s.target, "X-Amz-Target: DynamoDB_20120810.DescribeTable");
    assert_string_equal(s.token, "X-Amz-Security-Token: FwoGZXIvYXdzE");
    assert_string_equal(s.userpwd, "AKIDEXAMPLE:wJalrXUtnFEMI");

    http_call_init(&c, 1024);
    aws_signed_set(&s, &c, "{\"TableName\":\"Orders\"}", 22);
    assert_string_equal(c.method, "POST");
    assert_ptr_equal(c.url, s.url);
    assert_string_equal(c.content_type, "application/x-amz-json-1.0");
    assert_ptr_equal(c.aws_sigv4, s.sigv4);
    assert_ptr_equal(c.userpwd, s.userpwd);
    assert_ptr_equal(c.extra_headers[0], s.target);
    assert_ptr_equal(c.extra_headers[1], s.token);
    assert_null(c.extra_headers[2]);
    assert_int_equal(c.body_len, 22);
    http_call_release(&c);
    aws_signed_release(&s);
    assert_null(s.userpwd);
    assert_memory_equal(s.token, zeros, sizeof(zeros));

    /* an endpoint of its own (a local DynamoDB), and no session token: no token header */
    cfg = aws_config("us-east-1", "AKID", "S", NULL);
    req.endpoint = "http://127.0.0.1:8000";
    assert_int_equal(aws_signed_init(&s, &cfg, &req, &err), 0);
    assert_string_equal(s.url, "http://127.0.0.1:8000/");
    assert_string_equal(s.sigv4, "aws:amz:us-east-1:dynamodb");
    http_call_init(&c, 1024);
    aws_signed_set(&s, &c, "{}", 2);
    assert_null(c.extra_headers[1]);
    http_call_release(&c);
    aws_signed_release(&s);
}

/* Without a region or either credential there is nothing to sign with; a session token too
 * long for its header is refused, not cut. */
static void test_signer_settings(void **state)
{
    char long_token[4096];
    static const struct {
        const char *region, *key_id, *secret;
    } missing[] = {{NULL, "AKID", "S"}, {"us-east-1", NULL, "S"}, {"us-east-1", "AKID", NULL}};
    struct aws_signed s;
    struct d2f_err err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        struct config cfg =
            aws_config(missing[i].region, missing[i].key_id, missing[i].secret, NULL);
        assert_int_equal(aws_signed_init(&s, &cfg, &describe, &err), D2F_ECONFIG);
        assert_string_equal(err.msg, "DescribeTable 'Orders': AWS_REGION, AWS_ACCESS_KEY_ID and "
                                     "AWS_SECRET_ACCESS_KEY are not all set");
        aws_signed_release(&s);
    }
    memset(long_token, 'T', sizeof(long_token) - 1);
    long_token[sizeof(long_token) - 1] = '\0';
    {
        struct config cfg = aws_config("us-east-1", "AKID", "S", long_token);
        assert_int_equal(aws_signed_init(&s, &cfg, &describe, &err), D2F_ECONFIG);
        assert_string_equal(err.msg, "AWS_SESSION_TOKEN: over 4064 bytes");
        aws_signed_release(&s);
    }
}

/* A finished call's answer, each written by hand as AWS sends it. */
static void test_answers(void **state)
{
    static const struct {
        long status;
        const char *body;
        int code;
        const char *type, *msg;
    } cases[] = {
        {200, "{\"Table\":{\"TableName\":\"Orders\"}}", 0, "", ""},
        {400,
         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException\","
         "\"message\":\"Requested resource not found: Table: Orders not found\"}",
         D2F_EREMOTE, "ResourceNotFoundException",
         "DescribeTable 'Orders' refused: HTTP 400 ResourceNotFoundException: Requested resource "
         "not found: Table: Orders not found"},
        {400,
         "{\"__type\":\"com.amazon.coral.service#UnrecognizedClientException\","
         "\"message\":\"The security token included in the request is invalid.\"}",
         D2F_EAUTH, "UnrecognizedClientException",
         "DescribeTable 'Orders' refused: HTTP 400 UnrecognizedClientException: The security "
         "token included in the request is invalid."},
        {403,
         "{\"__type\":\"InvalidSignatureException\",\"Message\":\"The request signature we "
         "calculated does not match the signature you provided.\"}",
         D2F_EAUTH, "InvalidSignatureException",
         "DescribeTable 'Orders' refused: HTTP 403 InvalidSignatureException: The request "
         "signature we calculated does not match the signature you provided."},
        {400,
         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException\","
         "\"message\":\"Rate exceeded\"}",
         D2F_EREMOTE, "ProvisionedThroughputExceededException",
         "DescribeTable 'Orders' refused: HTTP 400 ProvisionedThroughputExceededException: Rate "
         "exceeded"},
        {502, "<html>Bad Gateway</html>", D2F_EREMOTE, "",
         "DescribeTable 'Orders' refused: HTTP 502 (no error type): (no message)"},
        {200, "[1, 2]", D2F_EREMOTE, "", "DescribeTable 'Orders': the answer is not a JSON object"},
        {200, "{\"cut\":", D2F_EREMOTE, "",
         "DescribeTable 'Orders': the answer is not a JSON object"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_call c;
        struct d2f_err err = {0};
        cJSON *answer = NULL;
        char type[64] = "untouched";
        http_call_init(&c, 1024);
        c.url = "https://dynamodb.us-east-1.amazonaws.com/";
        c.status = cases[i].status;
        assert_int_equal(buf_adds(&c.response, cases[i].body), 0);
        assert_int_equal(aws_answer(&describe, &c, &answer, type, sizeof(type), &err),
                         cases[i].code);
        assert_string_equal(type, cases[i].type);
        if (cases[i].code) {
            assert_null(answer);
            assert_int_equal(err.code, cases[i].code);
            assert_string_equal(err.msg, cases[i].msg);
        } else {
            assert_string_equal(
                cJSON_GetObjectItem(cJSON_GetObjectItem(answer, "Table"), "TableName")->valuestring,
                "Orders");
        }
        cJSON_Delete(answer);
        http_call_release(&c);
    }
}

/* No answer at all: unreachable, naming the call and the URL; an error type cut to fit. */
static void test_no_answer_and_short_type(void **state)
{
    struct http_call c;
    struct d2f_err err = {0};
    cJSON *answer = NULL;
    char type[8];

    (void)state;
    http_call_init(&c, 1024);
    c.url = "https://dynamodb.us-east-1.amazonaws.com/";
    c.failed = 1;
    snprintf(c.error, sizeof(c.error), "Timeout was reached");
    assert_int_equal(aws_answer(&describe, &c, &answer, NULL, 0, &err), D2F_EUNREACHABLE);
    assert_null(answer);
    assert_string_equal(err.msg, "DescribeTable 'Orders': no answer from "
                                 "https://dynamodb.us-east-1.amazonaws.com/: Timeout was reached");

    c.failed = 0;
    c.status = 400;
    assert_int_equal(buf_adds(&c.response, "{\"__type\":\"ValidationException\"}"), 0);
    assert_int_equal(aws_answer(&describe, &c, &answer, type, sizeof(type), &err), D2F_EREMOTE);
    assert_string_equal(type, "Validat");
    assert_string_equal(
        err.msg, "DescribeTable 'Orders' refused: HTTP 400 ValidationException: (no message)");
    http_call_release(&c);
}

/* aws_json_call: one signed POST of {"key":"value"} within its 10 s, the answer parsed; a
 * refusal and no answer become errors; without credentials nothing is sent. */
static void test_json_call(void **state)
{
    struct config cfg = aws_config("eu-west-1", "AKIDEXAMPLE", "wJalrXUtnFEMI", "FwoGZXIvYXdzE");
    struct aws_request req = describe;
    struct d2f_err err = {0};
    cJSON *answer = NULL;
    int64_t before = d2f_now_ms();

    (void)state;
    req.value = "Or\"ders\\";
    memset(&net, 0, sizeof(net));
    net.status = 200;
    net.answer = "{\"Table\":{\"TableName\":\"Orders\"}}";
    assert_int_equal(aws_json_call(&cfg, &req, &answer, &err), 0);
    assert_int_equal(net.calls, 1);
    assert_string_equal(net.method, "POST");
    assert_string_equal(net.url, "https://dynamodb.eu-west-1.amazonaws.com/");
    assert_string_equal(net.content_type, "application/x-amz-json-1.0");
    assert_string_equal(net.sigv4, "aws:amz:eu-west-1:dynamodb");
    assert_string_equal(net.userpwd, "AKIDEXAMPLE:wJalrXUtnFEMI");
    assert_string_equal(net.headers[0], "X-Amz-Target: DynamoDB_20120810.DescribeTable");
    assert_string_equal(net.headers[1], "X-Amz-Security-Token: FwoGZXIvYXdzE");
    assert_string_equal(net.body, "{\"TableName\":\"Or\\\"ders\\\\\"}");
    assert_true(net.deadline_ms >= before + 10000 && net.deadline_ms <= d2f_now_ms() + 10000);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(answer, "Table")));
    cJSON_Delete(answer);

    net.status = 400;
    net.answer = "{\"__type\":\"com.amazon.coral.service#ExpiredTokenException\","
                 "\"message\":\"The security token included in the request is expired\"}";
    assert_int_equal(aws_json_call(&cfg, &describe, &answer, &err), D2F_EAUTH);
    assert_null(answer);
    assert_string_equal(err.msg, "DescribeTable 'Orders' refused: HTTP 400 ExpiredTokenException: "
                                 "The security token included in the request is expired");

    net.failed = 1;
    assert_int_equal(aws_json_call(&cfg, &describe, &answer, &err), D2F_EUNREACHABLE);
    assert_null(answer);

    cfg.aws_secret = NULL;
    assert_int_equal(aws_json_call(&cfg, &describe, &answer, &err), D2F_ECONFIG);
    assert_int_equal(net.calls, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_call), cmocka_unit_test(test_signer_settings),
        cmocka_unit_test(test_answers),     cmocka_unit_test(test_no_answer_and_short_type),
        cmocka_unit_test(test_json_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
