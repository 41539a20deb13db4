/* secret.c: the sealed service-account key. */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "awssm.h"
#include "log.h"
#include "wif.h"

#define SEALED_MAX (SECRET_HEADER_LEN + SECRET_NONCE_LEN + SECRET_PLAIN_MAX + SECRET_TAG_LEN)
#define KEY_B64_LEN 44

static void header(unsigned char h[SECRET_HEADER_LEN])
{
    memcpy(h, SECRET_MAGIC, 6);
    h[6] = SECRET_VERSION;
    h[7] = SECRET_ALG_XCHACHA20POLY1305;
}

int secret_seal_bytes(const unsigned char *plain, size_t n, const unsigned char *key,
                      unsigned char **sealed, size_t *sealed_len, struct d2f_err *err)
{
    size_t total = SECRET_HEADER_LEN + SECRET_NONCE_LEN + n + SECRET_TAG_LEN;
    unsigned char *s;
    unsigned long long clen;

    *sealed = NULL;
    if (n > SECRET_PLAIN_MAX)
        return d2f_errf(err, D2F_ELIMIT, "the key file is over %d bytes", SECRET_PLAIN_MAX);
    if (!(s = malloc(total)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    header(s);
    randombytes_buf(s + SECRET_HEADER_LEN, SECRET_NONCE_LEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(s + SECRET_HEADER_LEN + SECRET_NONCE_LEN, &clen,
                                               plain, n, s, SECRET_HEADER_LEN, NULL,
                                               s + SECRET_HEADER_LEN, key);
    *sealed = s;
    *sealed_len = SECRET_HEADER_LEN + SECRET_NONCE_LEN + (size_t)clen;
    return 0;
}

int secret_open_bytes(const unsigned char *sealed, size_t n, const unsigned char *key,
                      const char *name, char **plain, size_t *plain_len, struct d2f_err *err)
{
    const size_t overhead = SECRET_HEADER_LEN + SECRET_NONCE_LEN + SECRET_TAG_LEN;
    unsigned long long mlen;
    char *p;

    *plain = NULL;
    *plain_len = 0;
    if (n < SECRET_HEADER_LEN || memcmp(sealed, SECRET_MAGIC, 6) != 0)
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_KEY_SEALED: '%s' is not a sealed key file (it does not start "
                        "with '%s'); make one with 'ddb2fs seal-key'",
                        name, SECRET_MAGIC);
    if (sealed[6] != SECRET_VERSION)
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_KEY_SEALED: '%s' is a version %u sealed key file; this ddb2fs "
                        "reads version %d",
                        name, sealed[6], SECRET_VERSION);
    if (sealed[7] != SECRET_ALG_XCHACHA20POLY1305)
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_KEY_SEALED: '%s' names algorithm %u; this ddb2fs knows %d "
                        "(XChaCha20-Poly1305)",
                        name, sealed[7], SECRET_ALG_XCHACHA20POLY1305);
    if (n < overhead)
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_KEY_SEALED: '%s' is truncated (%zu bytes, a sealed key has at "
                        "least %zu)",
                        name, n, overhead + 1);
    if (n > SEALED_MAX)
        return d2f_errf(err, D2F_ECONFIG, "DDB2FS_KEY_SEALED: '%s' is over %d bytes", name,
                        SEALED_MAX);
    if (!(p = sodium_malloc(n - overhead + 1)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            (unsigned char *)p, &mlen, NULL, sealed + SECRET_HEADER_LEN + SECRET_NONCE_LEN,
            n - SECRET_HEADER_LEN - SECRET_NONCE_LEN, sealed, SECRET_HEADER_LEN,
            sealed + SECRET_HEADER_LEN, key) != 0) {
        sodium_free(p);
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_KEY_SEALED: '%s' does not open with the data key in "
                        "DDB2FS_KEY_SECRET: the file was altered or truncated, or the secret "
                        "holds another file's data key",
                        name);
    }
    p[mlen] = '\0';
    *plain = p;
    *plain_len = (size_t)mlen;
    return 0;
}

/* Reads a whole file of at most max bytes into guarded memory (NUL-terminated). */
static int read_guarded(const char *path, size_t max, const char *what, char **out, size_t *len,
                        struct d2f_err *err)
{
    FILE *f = fopen(path, "rb");
    char *text;
    size_t n;

    *out = NULL;
    if (!f)
        return d2f_errf(err, D2F_ECONFIG, "%s: cannot open '%s': %s", what, path, strerror(errno));
    if (!(text = sodium_malloc(max + 1))) {
        fclose(f);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    n = fread(text, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        sodium_free(text);
        return d2f_errf(err, D2F_ECONFIG, "%s: '%s' is over %zu bytes", what, path, max);
    }
    text[n] = '\0';
    *out = text;
    *len = n;
    return 0;
}

/* A 0600 temporary file next to path, holding n bytes; its name in tmp (PATH_MAX bytes). */
static int write_temp(const char *path, const void *p, size_t n, char *tmp, size_t cap,
                      struct d2f_err *err)
{
    int fd;
    ssize_t w = -1;

    snprintf(tmp, cap, "%s.XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0) {
        tmp[0] = '\0';
        return d2f_errf(err, D2F_EIO, "cannot create a file next to '%s': %s", path,
                        strerror(errno));
    }
    if (fchmod(fd, 0600) != 0 || (w = write(fd, p, n)) != (ssize_t)n || fsync(fd) != 0) {
        int e = w >= 0 && w != (ssize_t)n ? ENOSPC : errno;
        close(fd);
        unlink(tmp);
        tmp[0] = '\0';
        return d2f_errf(err, D2F_EIO, "cannot write '%s': %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

/* Puts a temporary file in place: rename over path when force, else link (refused if path
 * exists); the temporary name is removed either way. */
static int put_in_place(const char *tmp, const char *path, int force, struct d2f_err *err)
{
    int rc = force ? rename(tmp, path) : link(tmp, path);
    int e = errno;

    if (!force || rc != 0)
        unlink(tmp);
    if (rc == 0)
        return 0;
    if (e == EEXIST)
        return d2f_errf(err, D2F_EUSAGE, "'%s' exists; not replaced (use --force to replace it)",
                        path);
    return d2f_errf(err, D2F_EIO, "cannot write '%s': %s", path, strerror(e));
}

int secret_seal(const struct secret_seal_opts *o, FILE *out, struct d2f_err *err)
{
    char *plain = NULL, *b64 = NULL, sealed_tmp[4200] = "", key_tmp[4200] = "";
    unsigned char *key = NULL, *sealed = NULL;
    size_t n = 0, sealed_len = 0;
    struct gauth *check = NULL;
    int rc;

    if (!o->force)
        for (int i = 0; i < 2; i++) {
            const char *p = i ? o->data_key_file : o->sealed_file;
            if (p && access(p, F_OK) == 0)
                return d2f_errf(err, D2F_EUSAGE,
                                "'%s' exists; not replaced (use --force to replace it)", p);
        }
    if ((rc = read_guarded(o->key_file, SECRET_PLAIN_MAX, "key file", &plain, &n, err)) != 0)
        return rc;
    if ((rc = gauth_from_json(&check, plain, n, GAUTH_OAUTH, NULL, NULL, err)) != 0) {
        char why[D2F_ERR_MSG];
        snprintf(why, sizeof(why), "%s", err->msg);
        d2f_errf(err, rc, "'%s' is not a service-account key file: %s", o->key_file, why);
        goto out;
    }
    key = sodium_malloc(SECRET_KEY_LEN);
    b64 = sodium_malloc(KEY_B64_LEN + 2);
    if (!key || !b64) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    if ((rc = secret_seal_bytes((unsigned char *)plain, n, key, &sealed, &sealed_len, err)) != 0)
        goto out;
    sodium_bin2base64(b64, KEY_B64_LEN + 1, key, SECRET_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
    b64[KEY_B64_LEN] = '\n';
    b64[KEY_B64_LEN + 1] = '\0';
    if ((rc = write_temp(o->sealed_file, sealed, sealed_len, sealed_tmp, sizeof(sealed_tmp),
                         err)) != 0 ||
        (o->data_key_file && (rc = write_temp(o->data_key_file, b64, KEY_B64_LEN + 1, key_tmp,
                                              sizeof(key_tmp), err)) != 0))
        goto out;
    if ((rc = put_in_place(sealed_tmp, o->sealed_file, o->force, err)) != 0)
        goto out;
    sealed_tmp[0] = '\0';
    if (o->data_key_file) {
        rc = put_in_place(key_tmp, o->data_key_file, o->force, err);
        key_tmp[0] = '\0';
        if (rc) {
            unlink(o->sealed_file); /* a sealed file without its data key is no use */
            goto out;
        }
    } else if (fputs(b64, out) == EOF || fflush(out) != 0) {
        rc = d2f_errf(err, D2F_EIO, "cannot print the data key: %s", strerror(errno));
        unlink(o->sealed_file);
    }
out:
    if (sealed_tmp[0])
        unlink(sealed_tmp);
    if (key_tmp[0])
        unlink(key_tmp);
    gauth_free(check);
    free(sealed);
    sodium_free(b64);
    sodium_free(key);
    sodium_free(plain);
    return rc;
}

/* The secret's text without surrounding white space: [*start, *start + *n). */
static void trimmed(const char *s, size_t len, const char **start, size_t *n)
{
    while (len && strchr(" \t\r\n", s[len - 1]))
        len--;
    while (len && strchr(" \t\r\n", *s)) {
        s++;
        len--;
    }
    *start = s;
    *n = len;
}

/* The plain key file of GOOGLE_APPLICATION_CREDENTIALS (local use). */
static int key_file_credentials(const struct config *cfg, enum gauth_mode mode,
                                const char *audience, struct http *http, struct gauth **out,
                                struct d2f_err *err)
{
    char *text = NULL;
    size_t n = 0;
    int rc = read_guarded(cfg->credentials, SECRET_PLAIN_MAX, "GOOGLE_APPLICATION_CREDENTIALS",
                          &text, &n, err);

    struct wif *w = NULL;

    if (!rc && wif_is_external_account(text, n)) { /* keyless: no key in the file */
        if ((rc = wif_from_json(&w, text, n, cfg, http, err)) == 0)
            rc = gauth_from_wif(out, w, err);
    } else if (!rc) {
        rc = gauth_from_json(out, text, n, mode, audience, http, err);
    }
    sodium_free(text); /* wipes */
    return rc;
}

int secret_credentials(const struct config *cfg, enum gauth_mode mode, const char *audience,
                       struct http *http, struct gauth **out, struct d2f_err *err)
{
    char *value = NULL, *dec = NULL, *plain = NULL;
    unsigned char *sealed = NULL;
    const char *s;
    size_t len = 0, n, declen = 0, plain_len = 0, sealed_len = 0;
    int binary, rc;

    *out = NULL;
    if (!cfg->key_secret)
        return cfg->credentials ? key_file_credentials(cfg, mode, audience, http, out, err) : 0;
    if ((rc = awssm_get_secret(cfg, cfg->key_secret, &value, &len, &binary, err)) != 0) {
        char why[D2F_ERR_MSG];
        snprintf(why, sizeof(why), "%s", err->msg);
        return d2f_errf(err, rc, "DDB2FS_KEY_SECRET: %s", why);
    }
    if (!(dec = sodium_malloc(len + 1))) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    sodium_mprotect_readonly(value);
    trimmed(value, len, &s, &n);
    if (binary) { /* SecretBinary: the data key's bytes, or the key file's */
        memcpy(dec, value, len);
        declen = len;
    } else if (n && s[0] == '{') { /* the key file's JSON itself */
        memcpy(dec, s, n);
        declen = n;
    } else if (sodium_base642bin((unsigned char *)dec, len, s, n, " \t\r\n", &declen, NULL,
                                 sodium_base64_VARIANT_ORIGINAL) != 0) {
        declen = 0;
    }
    dec[declen] = '\0';
    sodium_free(value);
    value = NULL;
    if (declen == SECRET_KEY_LEN) {
        sodium_mprotect_noaccess(dec);
        if (!cfg->key_sealed) {
            rc = d2f_errf(err, D2F_ECONFIG,
                          "DDB2FS_KEY_SEALED: not set; secret '%s' holds a data key, which "
                          "opens a sealed key file",
                          cfg->key_secret);
            goto out;
        }
        if ((rc = read_guarded(cfg->key_sealed, SEALED_MAX, "DDB2FS_KEY_SEALED", (char **)&sealed,
                               &sealed_len, err)) != 0)
            goto out;
        sodium_mprotect_readonly(dec);
        rc = secret_open_bytes(sealed, sealed_len, (unsigned char *)dec, cfg->key_sealed, &plain,
                               &plain_len, err);
        sodium_free(dec);
        dec = NULL;
        if (rc)
            goto out;
    } else if (declen && dec[0] == '{') {
        cJSON *f = cJSON_CreateObject();
        if (f)
            cJSON_AddStringToObject(f, "secret", cfg->key_secret);
        log_write(LOG_WARN,
                  "the secret holds the service-account key itself; seal it with 'ddb2fs "
                  "seal-key' and keep only the data key in Secrets Manager",
                  f);
        plain = dec;
        plain_len = declen;
        dec = NULL;
    } else {
        rc = d2f_errf(err, D2F_ECONFIG,
                      "DDB2FS_KEY_SECRET: secret '%s' holds neither a data key (the base64 of "
                      "32 bytes, from 'ddb2fs seal-key') nor a service-account key file",
                      cfg->key_secret);
        goto out;
    }
    rc = gauth_from_json(out, plain, plain_len, mode, audience, http, err);
out:
    sodium_free(plain);
    sodium_free(sealed);
    sodium_free(dec);
    sodium_free(value);
    return rc;
}
