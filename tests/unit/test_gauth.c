/* Unit tests for gauth.c: the key file's checks, and the JWTs it signs (verified here with the
 * key's public half). The token exchange itself is tested against the local token server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include <math.h>

#include "../../src/gauth.c"

static EVP_PKEY *key;
static char *pem;

static char *key_json(const char *type, const char *private_key, const char *email)
{
    cJSON *k = cJSON_CreateObject();
    char *s;

    cJSON_AddStringToObject(k, "type", type);
    cJSON_AddStringToObject(k, "project_id", "demo-project");
    cJSON_AddStringToObject(k, "private_key_id", "kid-123");
    if (private_key)
        cJSON_AddStringToObject(k, "private_key", private_key);
    if (email)
        cJSON_AddStringToObject(k, "client_email", email);
    cJSON_AddStringToObject(k, "token_uri", "http://127.0.0.1:9/token");
    s = cJSON_PrintUnformatted(k);
    cJSON_Delete(k);
    return s;
}

static int setup(void **state)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
    BIO *bio = BIO_new(BIO_s_mem());
    BUF_MEM *mem;

    (void)state;
    if (sodium_init() < 0 || !ctx || EVP_PKEY_keygen_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) != 1 || EVP_PKEY_keygen(ctx, &key) != 1 ||
        PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
        return -1;
    BIO_get_mem_ptr(bio, &mem);
    pem = strndup(mem->data, mem->length);
    BIO_free(bio);
    EVP_PKEY_CTX_free(ctx);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key);
    free(pem);
    return 0;
}

static void test_bad_keys(void **state)
{
    static const struct {
        const char *type, *email, *msg;
        int with_key;
    } bad[] = {
        {"authorized_user", "a@b", "'type' is not 'service_account'", 1},
        {"service_account", NULL, "no 'client_email'", 1},
        {"service_account", "a@b", "no 'private_key'", 0},
    };
    struct gauth *g = NULL;
    struct d2f_err err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *json = key_json(bad[i].type, bad[i].with_key ? pem : NULL, bad[i].email);
        assert_int_equal(gauth_from_json(&g, json, strlen(json), GAUTH_OAUTH, NULL, NULL, &err),
                         D2F_ECONFIG);
        assert_null(g);
        assert_non_null(strstr(err.msg, bad[i].msg));
        free(json);
    }
    {
        char *json = key_json("service_account", "-----BEGIN PRIVATE KEY-----\nnope\n", "a@b");
        assert_int_equal(gauth_from_json(&g, json, strlen(json), GAUTH_OAUTH, NULL, NULL, &err),
                         D2F_ECONFIG);
        assert_non_null(strstr(err.msg, "not a PEM RSA private key"));
        free(json);
    }
    assert_int_equal(gauth_from_json(&g, "[]", 2, GAUTH_OAUTH, NULL, NULL, &err), D2F_ECONFIG);
}

/* Decodes base64url into out (cap bytes); returns the length. */
static size_t unb64(const char *s, size_t n, unsigned char *out, size_t cap)
{
    size_t len = 0;

    assert_int_equal(sodium_base642bin(out, cap, s, n, NULL, &len, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    return len;
}

static void test_self_signed_jwt_verifies(void **state)
{
    char *json = key_json("service_account", pem, "relay@demo-project.iam.gserviceaccount.com");
    struct gauth *g = NULL;
    struct d2f_err err = {0};
    const char *bearer, *jwt, *dot1, *dot2;
    unsigned char part[4096], sig[1024];
    size_t n, siglen;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    cJSON *header, *claims;
    time_t now = time(NULL);

    (void)state;
    assert_int_equal(gauth_from_json(&g, json, strlen(json), GAUTH_SELF_SIGNED,
                                     "https://firestore.googleapis.com/", NULL, &err),
                     0);
    assert_string_equal(gauth_project(g), "demo-project");
    assert_int_equal(gauth_token(g, 0, &bearer, &err), 0);
    assert_int_equal(strncmp(bearer, "Bearer ", 7), 0);
    jwt = bearer + 7;
    dot1 = strchr(jwt, '.');
    dot2 = strchr(dot1 + 1, '.');
    assert_non_null(dot2);
    n = unb64(jwt, (size_t)(dot1 - jwt), part, sizeof(part));
    header = cJSON_ParseWithLength((const char *)part, n);
    assert_string_equal(cJSON_GetObjectItem(header, "alg")->valuestring, "RS256");
    assert_string_equal(cJSON_GetObjectItem(header, "kid")->valuestring, "kid-123");
    n = unb64(dot1 + 1, (size_t)(dot2 - dot1 - 1), part, sizeof(part));
    claims = cJSON_ParseWithLength((const char *)part, n);
    assert_string_equal(cJSON_GetObjectItem(claims, "iss")->valuestring,
                        "relay@demo-project.iam.gserviceaccount.com");
    assert_string_equal(cJSON_GetObjectItem(claims, "sub")->valuestring,
                        "relay@demo-project.iam.gserviceaccount.com");
    assert_string_equal(cJSON_GetObjectItem(claims, "aud")->valuestring,
                        "https://firestore.googleapis.com/");
    assert_true(fabs(cJSON_GetObjectItem(claims, "iat")->valuedouble - (double)now) < 5);
    assert_true(cJSON_GetObjectItem(claims, "exp")->valuedouble -
                    cJSON_GetObjectItem(claims, "iat")->valuedouble ==
                3600);
    /* the signature verifies with the public key over header.claims */
    siglen = unb64(dot2 + 1, strlen(dot2 + 1), sig, sizeof(sig));
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(
        EVP_DigestVerify(md, sig, siglen, (const unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
    /* and not over anything else */
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_not_equal(
        EVP_DigestVerify(md, sig, siglen, (const unsigned char *)jwt, (size_t)(dot2 - jwt) - 1), 1);
    /* cached: the same token until invalidated */
    {
        const char *again;
        assert_int_equal(gauth_token(g, 0, &again, &err), 0);
        assert_int_equal(gauth_renewals(g), 1);
        gauth_invalidate(g);
        assert_int_equal(gauth_token(g, 0, &again, &err), 0);
        assert_int_equal(gauth_renewals(g), 2);
    }
    cJSON_Delete(header);
    cJSON_Delete(claims);
    EVP_MD_CTX_free(md);
    gauth_free(g);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_self_signed_jwt_verifies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
