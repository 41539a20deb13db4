/*
 * test_sigv4.c: the signer against published vectors, byte for byte: botocore's SigV4 test
 * suite (get-vanilla, get-vanilla-query-order-key-case, get-vanilla-query-order-value, as
 * google-auth-library-python's tests/test_aws.py carries them) and that file's own
 * GetCallerIdentity and DynamoDB vectors (2020-08-11T06:55:22Z, us-east-2,
 * AKIAIOSFODNN7EXAMPLE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/sigv4.c"

#define BOTO_KEY                                                                                   \
    {                                                                                              \
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"                                  \
    }
#define GOOGLE_KEY                                                                                 \
    {                                                                                              \
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"                         \
    }
#define BOTO_DATE "Mon, 09 Sep 2011 23:36:00 GMT"
#define TOKEN                                                                                      \
    "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/"                           \
    "LTo6UDdyJwOOvEVPvLXCrrrUtdn"                                                                  \
    "niCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/"         \
    "AXlzBBko7b15fjrBs2+cTQtpZ3CYWFXG8C5zqx37wnOE49mRl/+OtkIKGO7fAE"
#define STS_URL "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
#define CREATE_TABLE                                                                               \
    "{\"KeySchema\":[{\"KeyType\":\"HASH\",\"AttributeName\":\"Id\"}],\"TableName\":"              \
    "\"TestTable\",\"AttributeDefinitions\":[{\"AttributeName\":\"Id\",\"AttributeType\":\"S\"}]," \
    "\"ProvisionedThroughput\":{\"WriteCapacityUnits\":5,\"ReadCapacityUnits\":5}}"

struct vector {
    const char *name;
    struct sigv4_request req;
    const char *region, *service, *amz_date;
    struct sigv4_key key;
    const char *auth;
};

static void test_published_vectors(void **state)
{
    static const struct vector v[] = {
        {"get-vanilla",
         {"GET",
          "https://host.foo.com",
          {{"date", BOTO_DATE}, {"host", "host.foo.com"}},
          2,
          NULL,
          0},
         "us-east-1",
         "host",
         "20110909T233600Z",
         BOTO_KEY,
         "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, "
         "SignedHeaders=date;host, "
         "Signature=b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470"},
        {"get-vanilla-query-order-key-case",
         {"GET",
          "https://host.foo.com/?foo=Zoo&foo=aha",
          {{"host", "host.foo.com"}, {"Date", BOTO_DATE}},
          2,
          NULL,
          0},
         "us-east-1",
         "host",
         "20110909T233600Z",
         BOTO_KEY,
         "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, "
         "SignedHeaders=date;host, "
         "Signature=be7148d34ebccdc6423b19085378aa0bee970bdc61d144bd1a8c48c33079ab09"},
        {"get-vanilla-query-order-value",
         {"GET",
          "https://host.foo.com/?foo=b&foo=a",
          {{"date", BOTO_DATE}, {"host", "host.foo.com"}},
          2,
          NULL,
          0},
         "us-east-1",
         "host",
         "20110909T233600Z",
         BOTO_KEY,
         "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, "
         "SignedHeaders=date;host, "
         "Signature=feb926e49e382bec75c9d7dcb2a1b6dc8aa50ca43c25d2bc51143768c0875acc"},
        {"GetCallerIdentity with a session token",
         {"POST",
          STS_URL,
          {{"host", "sts.us-east-2.amazonaws.com"},
           {"x-amz-date", "20200811T065522Z"},
           {"x-amz-security-token", TOKEN}},
          3,
          NULL,
          0},
         "us-east-2",
         "sts",
         "20200811T065522Z",
         GOOGLE_KEY,
         "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request, "
         "SignedHeaders=host;x-amz-date;x-amz-security-token, "
         "Signature=596aa990b792d763465d73703e684ca273c45536c6d322c31be01a41d02e5b60"},
        {"GetCallerIdentity",
         {"POST",
          STS_URL,
          {{"x-amz-date", "20200811T065522Z"}, {"host", "sts.us-east-2.amazonaws.com"}},
          2,
          NULL,
          0},
         "us-east-2",
         "sts",
         "20200811T065522Z",
         GOOGLE_KEY,
         "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request, "
         "SignedHeaders=host;x-amz-date, "
         "Signature=9e722e5b7bfa163447e2a14df118b45ebd283c5aea72019bdf921d6e7dc01a9a"},
        {"CreateTable with a body and more headers",
         {"POST",
          "https://dynamodb.us-east-2.amazonaws.com/",
          {{"host", "dynamodb.us-east-2.amazonaws.com"},
           {"x-amz-date", "20200811T065522Z"},
           {"Content-Type", "application/x-amz-json-1.0"},
           {"x-amz-target", "DynamoDB_20120810.CreateTable"},
           {"x-amz-security-token", TOKEN}},
          5,
          (const unsigned char *)CREATE_TABLE,
          sizeof(CREATE_TABLE) - 1},
         "us-east-2",
         "dynamodb",
         "20200811T065522Z",
         GOOGLE_KEY,
         "AWS4-HMAC-SHA256 "
         "Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/dynamodb/aws4_request, "
         "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
         "Signature=eb8bce0e63654bba672d4a8acb07e72d69210c1797d56ce024dbbc31beb2a2c7"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char auth[SIGV4_AUTH_MAX];
        struct d2f_err err = {0};
        if (sigv4_sign(&v[i].req, v[i].region, v[i].service, v[i].amz_date, &v[i].key, auth,
                       &err) != 0)
            fail_msg("%s: %s", v[i].name, err.msg);
        if (strcmp(auth, v[i].auth) != 0)
            fail_msg("%s:\n got  %s\n want %s", v[i].name, auth, v[i].auth);
    }
}

static void test_refusals(void **state)
{
    struct sigv4_request req = {"POST", "no-scheme", {{"host", "h"}}, 1, NULL, 0};
    struct sigv4_key key = GOOGLE_KEY;
    char auth[SIGV4_AUTH_MAX];
    struct d2f_err err = {0};

    (void)state;
    assert_int_equal(sigv4_sign(&req, "us-east-1", "sts", "20200811T065522Z", &key, auth, &err),
                     D2F_EINPUT);
    req.url = "https://h/";
    assert_int_equal(sigv4_sign(&req, "us-east-1", "sts", "2020-08-11", &key, auth, &err),
                     D2F_EINPUT);
    req.headers[1] = (struct sigv4_header){"Host", "h"};
    req.nheaders = 2;
    assert_int_equal(sigv4_sign(&req, "us-east-1", "sts", "20200811T065522Z", &key, auth, &err),
                     D2F_EINPUT);
    assert_non_null(strstr(err.msg, "twice"));
}

static void test_url_host(void **state)
{
    char host[64];

    (void)state;
    assert_int_equal(sigv4_url_host(STS_URL, host, sizeof(host)), 0);
    assert_string_equal(host, "sts.us-east-2.amazonaws.com");
    assert_int_equal(sigv4_url_host("http://127.0.0.1:8080/x", host, sizeof(host)), 0);
    assert_string_equal(host, "127.0.0.1:8080");
    assert_int_equal(sigv4_url_host("sts.amazonaws.com", host, sizeof(host)), -1);
    assert_int_equal(sigv4_url_host("https://", host, sizeof(host)), -1);
    assert_int_equal(sigv4_url_host("https://u@evil/", host, sizeof(host)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_published_vectors),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_url_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
