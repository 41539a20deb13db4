/* Unit tests for awssm.c: the GetSecretValue request it describes, and answers written by hand
 * as Secrets Manager sends them: SecretString, SecretBinary (base64), neither, over the 64 KiB a
 * secret may hold, refusals passed on. The signed call itself (aws.c, tested in test_aws) is
 * replaced here; every copy of the secret in its answer must be wiped before it is freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "aws.h"
#include "json.h"

/* The request awssm described, and the answer the stand-in gives. */
static struct {
    struct aws_request req;
    char value[1100], what[1100];
    int calls;
    const char *answer; /* JSON text of a 200 answer, used when code is 0 */
    int code;           /* else: the call's error */
    const char *secret; /* the secret's text in the answer, at its place in the tree */
    size_t secret_len;
    int wiped; /* -1 until the answer is freed; then 1 when the secret's bytes were zero */
} sm;

static int fake_aws_json_call(const struct config *cfg, const struct aws_request *req,
                              cJSON **answer, struct d2f_err *err)
{
    const cJSON *s;

    (void)cfg;
    sm.calls++;
    sm.req = *req;
    snprintf(sm.value, sizeof(sm.value), "%s", req->value);
    snprintf(sm.what, sizeof(sm.what), "%s", req->what);
    *answer = NULL;
    if (sm.code)
        return d2f_errf(err, sm.code,
                        "%s refused: HTTP 400 ResourceNotFoundException: "
                        "Secrets Manager can't find the specified secret.",
                        req->what);
    *answer = json_parse(sm.answer, strlen(sm.answer));
    assert_non_null(*answer);
    s = cJSON_GetObjectItem(*answer, "SecretString");
    if (!cJSON_IsString(s))
        s = cJSON_GetObjectItem(*answer, "SecretBinary");
    sm.secret = cJSON_IsString(s) ? s->valuestring : NULL;
    sm.secret_len = sm.secret ? strlen(sm.secret) : 0;
    sm.wiped = -1;
    return 0;
}

/* cJSON_Delete for awssm.c: notes whether the secret's bytes were wiped first. */
static void checked_delete(cJSON *item)
{
    if (item && sm.secret) {
        sm.wiped = 1;
        for (size_t i = 0; i < sm.secret_len; i++)
            if (sm.secret[i])
                sm.wiped = 0;
        sm.secret = NULL;
    }
    cJSON_Delete(item);
}

#define aws_json_call fake_aws_json_call
#define cJSON_Delete checked_delete
#include "../../src/awssm.c"
#undef aws_json_call
#undef cJSON_Delete

#define ID "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ddb2fs-key-AbCdEf"

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* Gets ID with the answer given; on success the value is made readable for the test. */
static int get(const char *answer, char **value, size_t *len, int *binary, struct d2f_err *err)
{
    struct config cfg;
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    cfg.secrets_endpoint = "http://127.0.0.1:4566";
    sm.answer = answer;
    rc = awssm_get_secret(&cfg, ID, value, len, binary, err);
    if (rc == 0)
        assert_int_equal(sodium_mprotect_readonly(*value), 0);
    return rc;
}

/* The request: Secrets Manager's JSON 1.1 target with {"SecretId": id}, at the endpoint the
 * settings give, named in errors by the secret's id. */
static void test_request(void **state)
{
    char *value = NULL;
    size_t len = 0;
    int binary = 0;
    struct d2f_err err = {0};

    (void)state;
    memset(&sm, 0, sizeof(sm));
    assert_int_equal(get("{\"SecretString\":\"x\"}", &value, &len, &binary, &err), 0);
    sodium_free(value);
    assert_int_equal(sm.calls, 1);
    assert_string_equal(sm.req.service, "secretsmanager");
    assert_string_equal(sm.req.endpoint, "http://127.0.0.1:4566");
    assert_string_equal(sm.req.target, "secretsmanager.GetSecretValue");
    assert_string_equal(sm.req.content_type, "application/x-amz-json-1.1");
    assert_string_equal(sm.req.key, "SecretId");
    assert_string_equal(sm.value, ID);
    assert_string_equal(sm.what, "GetSecretValue '" ID "'");
}

/* A SecretString as it is, a SecretBinary decoded from base64 (its bytes, a NUL after them),
 * SecretString first when both are there; each time the answer's copy is wiped. */
static void test_values(void **state)
{
    static const struct {
        const char *answer, *value;
        size_t len;
        int binary;
    } cases[] = {
        {"{\"ARN\":\"" ID "\",\"Name\":\"ddb2fs-key\",\"SecretString\":\"0123abcd\\u00e9\","
         "\"VersionId\":\"v1\"}",
         "0123abcd\xC3\xA9", 10, 0},
        {"{\"SecretBinary\":\"AAEC/w==\"}", "\x00\x01\x02\xff", 4, 1},
        {"{\"SecretString\":\"text\",\"SecretBinary\":\"AAEC/w==\"}", "text", 4, 0},
        {"{\"SecretString\":\"\"}", "", 0, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *value = NULL;
        size_t len = 99;
        int binary = -1;
        struct d2f_err err = {0};
        assert_int_equal(get(cases[i].answer, &value, &len, &binary, &err), 0);
        assert_non_null(value);
        assert_int_equal(len, cases[i].len);
        assert_memory_equal(value, cases[i].value, len);
        assert_int_equal(value[len], '\0');
        assert_int_equal(binary, cases[i].binary);
        assert_int_equal(sm.wiped, 1);
        sodium_free(value);
    }
}

/* An answer with no value to use, or one over Secrets Manager's 64 KiB, is refused naming the
 * secret; a refusal of the call is passed on. Nothing is returned either way, and what the
 * answer held is wiped. */
static void test_refused(void **state)
{
    static char big[SECRET_MAX + 64], exact[SECRET_MAX + 64];
    static const char no_value[] = "GetSecretValue '" ID "': the answer has no SecretString or "
                                   "SecretBinary (of at most 65536 bytes)";
    const char *answers[] = {"{\"Name\":\"ddb2fs-key\"}", "{\"SecretString\":17}",
                             "{\"SecretBinary\":\"not*base64\"}", big};
    char *value = NULL;
    size_t len = 0;
    int binary = 0;
    struct d2f_err err = {0};

    (void)state;
    snprintf(big, sizeof(big), "{\"SecretString\":\"%0*d\"}", SECRET_MAX + 1, 0);
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        value = (char *)"unchanged";
        assert_int_equal(get(answers[i], &value, &len, &binary, &err), D2F_EREMOTE);
        assert_null(value);
        assert_int_equal(len, 0);
        assert_string_equal(err.msg, no_value);
        if (i >= 2)
            assert_int_equal(sm.wiped, 1);
    }
    /* 64 KiB exactly is a secret Secrets Manager may hold */
    snprintf(exact, sizeof(exact), "{\"SecretString\":\"%0*d\"}", SECRET_MAX, 0);
    assert_int_equal(get(exact, &value, &len, &binary, &err), 0);
    assert_int_equal(len, SECRET_MAX);
    sodium_free(value);

    sm.code = D2F_EREMOTE;
    assert_int_equal(get(NULL, &value, &len, &binary, &err), D2F_EREMOTE);
    assert_null(value);
    assert_string_equal(err.msg, "GetSecretValue '" ID "' refused: HTTP 400 "
                                 "ResourceNotFoundException: Secrets Manager can't find the "
                                 "specified secret.");
    sm.code = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
