/*
 * secret.h: the service-account key sealed with libsodium, and opened at start-up with its data
 * key from AWS Secrets Manager.
 *
 * DESIGN
 * A sealed key file is, byte by byte:
 *   0..5    "D2FKEY" (ASCII magic)
 *   6       version, 1
 *   7       algorithm, 1 = XChaCha20-Poly1305 (IETF) AEAD
 *   8..31   a random 24-byte nonce
 *   32..    crypto_aead_xchacha20poly1305_ietf_encrypt(key file, ad = bytes 0..7, nonce, data
 *           key): the key file's bytes followed by the 16-byte tag
 * The data key is 32 random bytes; it is written and stored as standard base64 with padding
 * (44 characters), the value of the Secrets Manager secret (SecretString).
 *
 * The plain key file exists only in libsodium guarded memory, inaccessible whenever it is not
 * being read, and is wiped with the data key as soon as the signing key is built.
 */
#ifndef SECRET_H
#define SECRET_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "d2f.h"
#include "gauth.h"
#include "http.h"

#define SECRET_MAGIC "D2FKEY"
#define SECRET_VERSION 1
#define SECRET_ALG_XCHACHA20POLY1305 1
#define SECRET_HEADER_LEN 8
#define SECRET_NONCE_LEN 24
#define SECRET_TAG_LEN 16
#define SECRET_KEY_LEN 32
#define SECRET_PLAIN_MAX (64 * 1024)

/* What seal-key does. */
struct secret_seal_opts {
    const char *key_file;      /* the service-account key file to seal */
    const char *sealed_file;   /* where the sealed file goes */
    const char *data_key_file; /* where the data key goes (0600), or NULL: printed on out */
    int force;                 /* 1: replace files that exist */
};

/*
 * Validates the key file (as gauth does), seals it under a new data key, writes the sealed file
 * (and the data key file) with mode 0600, and prints the data key's base64 line on out unless
 * data_key_file is set. An existing file is refused unless force; files are written whole
 * (temporary file, then rename) or not at all.
 */
int secret_seal(const struct secret_seal_opts *o, FILE *out, struct d2f_err *err) D2F_WUR;

/*
 * Seals plain (n bytes) with key into *sealed (malloc'd, *sealed_len bytes; not secret).
 * The building block of secret_seal, for tests.
 */
int secret_seal_bytes(const unsigned char *plain, size_t n, const unsigned char *key,
                      unsigned char **sealed, size_t *sealed_len, struct d2f_err *err) D2F_WUR;

/*
 * Opens a sealed file's bytes with key into *plain: guarded memory (sodium_malloc, readable,
 * *plain_len bytes then a NUL), sodium_free'd by the caller. name names the file in errors.
 */
int secret_open_bytes(const unsigned char *sealed, size_t n, const unsigned char *key,
                      const char *name, char **plain, size_t *plain_len,
                      struct d2f_err *err) D2F_WUR;

/*
 * The credentials cfg names, into *out (NULL when it names none): the sealed key of
 * DDB2FS_KEY_SEALED opened with the data key in the secret DDB2FS_KEY_SECRET, or the plain key
 * file of GOOGLE_APPLICATION_CREDENTIALS. The key is read into guarded memory and every
 * plaintext copy wiped once the signing key is built (gauth_from_json). A secret holding the
 * base64 key file itself (the older setup) is used as it is, with a log line recommending
 * sealing. Errors are D2F_ECONFIG (file, format, authentication), D2F_EAUTH (Secrets Manager
 * refused the signature), D2F_EREMOTE, D2F_EIO; none holds key material.
 */
int secret_credentials(const struct config *cfg, enum gauth_mode mode, const char *audience,
                       struct http *http, struct gauth **out, struct d2f_err *err) D2F_WUR;

#endif
