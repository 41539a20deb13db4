/* Unit tests for secret.c: the sealed key format byte by byte, every flipped byte and every
 * truncation refused, and seal-key's files. Secrets Manager is tested against its local server
 * through the binary (tests/integration/test_secret.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../src/secret.c"

static const char plain_text[] =
    "{\"type\":\"service_account\",\"private_key\":\"not a real key\"}";

static void seal(unsigned char key[SECRET_KEY_LEN], unsigned char **sealed, size_t *n)
{
    struct d2f_err err = {0};

    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    assert_int_equal(secret_seal_bytes((const unsigned char *)plain_text, strlen(plain_text), key,
                                       sealed, n, &err),
                     0);
}

static void test_layout_and_round_trip(void **state)
{
    unsigned char key[SECRET_KEY_LEN], *sealed, *again;
    size_t n = 0, n2 = 0, plain_len = 0;
    char *plain;
    struct d2f_err err = {0};
    unsigned long long mlen;
    unsigned char direct[sizeof(plain_text)];

    (void)state;
    seal(key, &sealed, &n);
    assert_int_equal(n, 8 + 24 + strlen(plain_text) + 16);
    assert_memory_equal(sealed, "D2FKEY\x01\x01", 8);
    /* the layout the README gives: libsodium's own call over those bytes opens it */
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(direct, &mlen, NULL, sealed + 32,
                                                                n - 32, sealed, 8, sealed + 8, key),
                     0);
    assert_int_equal(mlen, strlen(plain_text));
    assert_memory_equal(direct, plain_text, mlen);
    assert_int_equal(secret_open_bytes(sealed, n, key, "k.sealed", &plain, &plain_len, &err), 0);
    assert_int_equal(plain_len, strlen(plain_text));
    assert_string_equal(plain, plain_text);
    sodium_free(plain);
    /* a fresh nonce each time */
    assert_int_equal(secret_seal_bytes((const unsigned char *)plain_text, strlen(plain_text), key,
                                       &again, &n2, &err),
                     0);
    assert_memory_not_equal(sealed + 8, again + 8, 24);
    free(again);
    free(sealed);
}

static void test_every_flipped_byte_is_refused(void **state)
{
    unsigned char key[SECRET_KEY_LEN], *sealed;
    size_t n = 0, plain_len = 0;
    char *plain;
    struct d2f_err err = {0};

    (void)state;
    seal(key, &sealed, &n);
    for (size_t i = 0; i < n; i++) {
        for (unsigned bit = 0; bit < 8; bit += 7) {
            sealed[i] ^= (unsigned char)(1u << bit);
            memset(&err, 0, sizeof(err));
            plain = (char *)1;
            assert_int_equal(
                secret_open_bytes(sealed, n, key, "k.sealed", &plain, &plain_len, &err),
                D2F_ECONFIG);
            assert_null(plain);
            assert_non_null(strstr(err.msg, "'k.sealed'"));
            if (i < 6)
                assert_non_null(strstr(err.msg, "is not a sealed key file"));
            else if (i == 6)
                assert_non_null(strstr(err.msg, "reads version 1"));
            else if (i == 7)
                assert_non_null(strstr(err.msg, "XChaCha20-Poly1305"));
            else
                assert_non_null(strstr(err.msg, "does not open with the data key"));
            sealed[i] ^= (unsigned char)(1u << bit);
        }
    }
    free(sealed);
}

static void test_every_truncation_and_wrong_key_is_refused(void **state)
{
    unsigned char key[SECRET_KEY_LEN], other[SECRET_KEY_LEN], *sealed;
    size_t n = 0, plain_len = 0;
    char *plain;
    struct d2f_err err = {0};

    (void)state;
    seal(key, &sealed, &n);
    for (size_t len = 0; len < n; len++) {
        assert_int_equal(secret_open_bytes(sealed, len, key, "k", &plain, &plain_len, &err),
                         D2F_ECONFIG);
        assert_null(plain);
        if (len >= 8 && len < 49)
            assert_non_null(strstr(err.msg, "truncated"));
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(other);
    assert_int_equal(secret_open_bytes(sealed, n, other, "k", &plain, &plain_len, &err),
                     D2F_ECONFIG);
    assert_non_null(strstr(err.msg, "does not open with the data key"));
    free(sealed);
}

static void test_trimmed(void **state)
{
    const char *s;
    size_t n = 0;

    (void)state;
    trimmed(" \tabc\r\n", 7, &s, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "abc", 3);
    trimmed("\n\n", 2, &s, &n);
    assert_int_equal(n, 0);
}

static void test_key_file_that_cannot_be_read(void **state)
{
    struct config cfg = {.credentials = "/no/such/key.json"};
    struct gauth *g = NULL;
    struct d2f_err err = {0};

    (void)state;
    assert_int_equal(secret_credentials(&cfg, GAUTH_OAUTH, NULL, NULL, &g, &err), D2F_ECONFIG);
    assert_null(g);
    assert_non_null(strstr(err.msg, "GOOGLE_APPLICATION_CREDENTIALS: cannot open"));
    cfg.credentials = NULL; /* nothing named: no credentials, no error */
    assert_int_equal(secret_credentials(&cfg, GAUTH_OAUTH, NULL, NULL, &g, &err), 0);
    assert_null(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_round_trip),
        cmocka_unit_test(test_every_flipped_byte_is_refused),
        cmocka_unit_test(test_every_truncation_and_wrong_key_is_refused),
        cmocka_unit_test(test_trimmed),
        cmocka_unit_test(test_key_file_that_cannot_be_read),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
