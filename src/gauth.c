/* gauth.c: Google service-account credentials and bearer tokens. */
#include "gauth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "wif.h"

/* Cap on what we read of a token endpoint's answer. */
#define TOKEN_ANSWER_MAX (64 * 1024)
#define BEARER_MAX 8192
/* The token endpoint a key may name (or a loopback stand-in, for tests). */
#define GOOGLE_TOKEN_URI "https://oauth2.googleapis.com/token"

struct gauth {
    enum gauth_mode mode;
    unsigned char *key_der; /* the private key, DER, sodium_malloc'd: parsed only to sign */
    size_t key_der_len;
    char *email, *key_id, *token_uri, *project, *audience;
    struct http *http;
    char *bearer;       /* "Bearer …", sodium_malloc'd, BEARER_MAX bytes */
    int64_t expires_ms; /* when the cached token stops being valid; 0 when none */
    int64_t lifetime_ms;
    unsigned renewals;
    struct wif *wif; /* an external account: every call goes there */
};

int gauth_from_wif(struct gauth **out, struct wif *w, struct d2f_err *err)
{
    if (!(*out = calloc(1, sizeof(**out)))) {
        wif_free(w);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    (*out)->wif = w;
    return 0;
}

static char *dup_member(const cJSON *key, const char *name, int required, struct d2f_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(key, name);
    char *s;

    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        if (required)
            d2f_errf(err, D2F_ECONFIG,
                     "the service-account key has no '%s': use a key file from the Google "
                     "Cloud console (IAM > Service accounts > Keys)",
                     name);
        return NULL;
    }
    s = strdup(v->valuestring);
    if (!s)
        d2f_errf(err, D2F_ENOMEM, "out of memory");
    return s;
}

/* A service account's address: name@host, printable ASCII without quotes, spaces or '\\'. */
static int email_ok(const char *s)
{
    const char *at = strchr(s, '@');

    if (!at || at == s || !at[1] || strchr(at + 1, '@') || strlen(s) > 254)
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7F || *s == '"' || *s == '\\')
            return 0;
    return 1;
}

static int key_id_ok(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= 128 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* Keeps the key as DER in guarded memory (locked, left out of core dumps): the parsed key, with
 * its numbers and Montgomery copies in plain heap, lives only while a JWT is signed. */
static int keep_der(struct gauth *g, EVP_PKEY *pkey, struct d2f_err *err)
{
    unsigned char *p;
    int n = i2d_PrivateKey(pkey, NULL);

    if (n <= 0)
        return d2f_errf(err, D2F_ECONFIG, "the key's 'private_key' cannot be encoded");
    if (!(g->key_der = p = sodium_malloc((size_t)n)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if (i2d_PrivateKey(pkey, &p) != n)
        return d2f_errf(err, D2F_ECONFIG, "the key's 'private_key' cannot be encoded");
    g->key_der_len = (size_t)n;
    sodium_mprotect_noaccess(g->key_der); /* readable only while a JWT is signed */
    return 0;
}

int gauth_from_json(struct gauth **out, const char *json, size_t len, enum gauth_mode mode,
                    const char *audience, struct http *http, struct d2f_err *err)
{
    cJSON *key = cJSON_ParseWithLength(json, len);
    const cJSON *type, *pem;
    struct gauth *g = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    int rc = D2F_ECONFIG;

    *out = NULL;
    if (!cJSON_IsObject(key)) {
        d2f_errf(err, D2F_ECONFIG, "the service-account key is not a JSON object");
        goto out;
    }
    type = cJSON_GetObjectItemCaseSensitive(key, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "service_account") != 0) {
        d2f_errf(err, D2F_ECONFIG, "the key's 'type' is not 'service_account'");
        goto out;
    }
    g = calloc(1, sizeof(*g));
    if (!g) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    g->mode = mode;
    g->http = http;
    g->lifetime_ms = (int64_t)GAUTH_LIFETIME_S * 1000;
    if (!(g->email = dup_member(key, "client_email", 1, err)) ||
        !(g->key_id = dup_member(key, "private_key_id", 1, err)) ||
        !(g->token_uri = dup_member(key, "token_uri", 1, err)) ||
        !(g->project = dup_member(key, "project_id", 1, err)) ||
        !(g->audience = strdup(audience ? audience : "https://firestore.googleapis.com/"))) {
        rc = D2F_ECONFIG; /* dup_member said which field */
        goto out;
    }
    if (!email_ok(g->email)) {
        d2f_errf(err, D2F_ECONFIG,
                 "the key's 'client_email' is not a service account's address (name@host, "
                 "without quotes, spaces or control characters)");
        goto out;
    }
    if (!key_id_ok(g->key_id)) {
        d2f_errf(err, D2F_ECONFIG,
                 "the key's 'private_key_id' is not a key id (1 to 128 of A-Z a-z 0-9 _ -)");
        goto out;
    }
    if (strcmp(g->token_uri, GOOGLE_TOKEN_URI) != 0 &&
        !((strncmp(g->token_uri, "http://", 7) == 0 || strncmp(g->token_uri, "https://", 8) == 0) &&
          http_url_loopback(g->token_uri))) {
        d2f_errf(err, D2F_ECONFIG,
                 "the key's 'token_uri' is '%.80s', not Google's token endpoint " GOOGLE_TOKEN_URI
                 ": the key file may have been altered; use the file the Google Cloud console "
                 "gave",
                 g->token_uri);
        goto out;
    }
    pem = cJSON_GetObjectItemCaseSensitive(key, "private_key");
    if (!cJSON_IsString(pem)) {
        d2f_errf(err, D2F_ECONFIG, "the service-account key has no 'private_key'");
        goto out;
    }
    bio = BIO_new_mem_buf(pem->valuestring, -1);
    if (!bio || !(pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) ||
        EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        d2f_errf(err, D2F_ECONFIG, "the key's 'private_key' is not a PEM RSA private key");
        goto out;
    }
    if ((rc = keep_der(g, pkey, err)) != 0)
        goto out;
    rc = D2F_ECONFIG;
    g->bearer = sodium_malloc(BEARER_MAX);
    if (!g->bearer) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    g->bearer[0] = '\0';
    *out = g;
    g = NULL;
    rc = 0;
out:
    BIO_free(bio);
    EVP_PKEY_free(pkey); /* OpenSSL clears the private numbers it frees */
    if (key) {
        /* the parsed copy of the PEM is wiped before it is freed */
        pem = cJSON_GetObjectItemCaseSensitive(key, "private_key");
        if (cJSON_IsString(pem))
            sodium_memzero(pem->valuestring, strlen(pem->valuestring));
        cJSON_Delete(key);
    }
    gauth_free(g);
    return rc;
}

void gauth_free(struct gauth *g)
{
    if (!g)
        return;
    wif_free(g->wif);
    sodium_free(g->key_der); /* wipes */
    free(g->email);
    free(g->key_id);
    free(g->token_uri);
    free(g->project);
    free(g->audience);
    sodium_free(g->bearer); /* wipes */
    free(g);
}

const char *gauth_project(const struct gauth *g)
{
    return g->project;
}

unsigned gauth_renewals(const struct gauth *g)
{
    return g->wif ? wif_renewals(g->wif) : g->renewals;
}

void gauth_invalidate(struct gauth *g)
{
    if (g->wif) {
        wif_invalidate(g->wif);
        return;
    }
    g->expires_ms = 0;
    sodium_memzero(g->bearer, BEARER_MAX);
}

/* Appends the base64url (no padding) of n bytes at p. */
static int add_b64url(struct buf *out, const void *p, size_t n)
{
    size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *enc = malloc(len);
    int rc;

    if (!enc)
        return D2F_ENOMEM;
    sodium_bin2base64(enc, len, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    rc = buf_adds(out, enc);
    sodium_memzero(enc, len); /* a piece of a JWT */
    free(enc);
    return rc;
}

/* Appends the base64url of a JSON object's text; the object is freed. */
static int add_b64url_json(struct buf *out, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    int rc = text ? add_b64url(out, text, strlen(text)) : D2F_ENOMEM;

    if (text) {
        sodium_memzero(text, strlen(text));
        cJSON_free(text);
    }
    cJSON_Delete(obj);
    return rc;
}

/* Appends header.claims.signature, signed RS256 with the key; claims is taken. */
static int sign_jwt(struct gauth *g, cJSON *claims, struct buf *out, struct d2f_err *err)
{
    cJSON *header = cJSON_CreateObject();
    const unsigned char *der = g->key_der;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0, signed_len;
    int rc = D2F_ENOMEM;

    if (!cJSON_AddStringToObject(header, "alg", "RS256") ||
        !cJSON_AddStringToObject(header, "typ", "JWT") ||
        !cJSON_AddStringToObject(header, "kid", g->key_id)) {
        cJSON_Delete(header);
        cJSON_Delete(claims);
        goto out;
    }
    if (add_b64url_json(out, header) || buf_addc(out, '.')) {
        cJSON_Delete(claims);
        goto out;
    }
    if (add_b64url_json(out, claims))
        goto out;
    signed_len = out->len;
    md = EVP_MD_CTX_new();
    sodium_mprotect_readonly(g->key_der);
    key = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &der, (long)g->key_der_len);
    sodium_mprotect_noaccess(g->key_der);
    if (!md || !key || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)out->data, signed_len) != 1 ||
        !(sig = malloc(siglen)) ||
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out->data, signed_len) != 1) {
        rc = d2f_errf(err, D2F_EAUTH, "cannot sign a JWT with the service-account key");
        goto out;
    }
    if (buf_addc(out, '.') || add_b64url(out, sig, siglen))
        goto out;
    rc = 0;
out:
    if (rc == D2F_ENOMEM)
        d2f_errf(err, rc, "out of memory while signing a JWT");
    free(sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return rc;
}

static int set_bearer(struct gauth *g, const char *token, size_t n, int64_t lifetime_ms,
                      struct d2f_err *err)
{
    if (n + sizeof("Bearer ") > BEARER_MAX)
        return d2f_errf(err, D2F_EAUTH, "the access token is over %d bytes", BEARER_MAX);
    memcpy(g->bearer, "Bearer ", 7);
    memcpy(g->bearer + 7, token, n);
    g->bearer[7 + n] = '\0';
    g->lifetime_ms = lifetime_ms;
    g->expires_ms = d2f_now_ms() + lifetime_ms;
    g->renewals++;
    return 0;
}

static int exchange(struct gauth *g, const char *jwt, int64_t deadline_ms, struct d2f_err *err)
{
    static const char grant[] = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-"
                                "bearer&assertion=";
    struct http_call call, *calls[1] = {&call};
    struct buf body;
    cJSON *answer = NULL;
    const cJSON *token, *expires, *e, *desc;
    int rc;

    buf_init(&body, 64 * 1024);
    http_call_init(&call, TOKEN_ANSWER_MAX);
    if ((rc = buf_adds(&body, grant)) != 0 || (rc = buf_adds(&body, jwt)) != 0) {
        rc = d2f_errf(err, rc, "out of memory");
        goto out;
    }
    call.method = "POST";
    call.url = g->token_uri;
    call.content_type = "application/x-www-form-urlencoded";
    call.body = body.data;
    call.body_len = body.len;
    if ((rc = http_perform(g->http, calls, 1, deadline_ms, err)) != 0)
        goto out;
    if (call.failed) {
        rc = d2f_errf(err, D2F_EUNREACHABLE, "cannot get an access token from '%s': %s",
                      g->token_uri, call.error);
        goto out;
    }
    answer = cJSON_ParseWithLength(buf_str(&call.response), call.response.len);
    token = cJSON_GetObjectItemCaseSensitive(answer, "access_token");
    expires = cJSON_GetObjectItemCaseSensitive(answer, "expires_in");
    if (call.status != 200 || !cJSON_IsString(token)) {
        e = cJSON_GetObjectItemCaseSensitive(answer, "error");
        desc = cJSON_GetObjectItemCaseSensitive(answer, "error_description");
        rc = d2f_errf(err, D2F_EAUTH, "'%s' refused the service-account key: HTTP %ld %s%s%.200s",
                      g->token_uri, call.status, cJSON_IsString(e) ? e->valuestring : "",
                      cJSON_IsString(desc) ? ": " : "",
                      cJSON_IsString(desc) ? desc->valuestring : "");
        goto out;
    }
    rc = set_bearer(g, token->valuestring, strlen(token->valuestring),
                    cJSON_IsNumber(expires) && expires->valuedouble > 0
                        ? (int64_t)(expires->valuedouble * 1000)
                        : (int64_t)GAUTH_LIFETIME_S * 1000,
                    err);
    sodium_memzero(token->valuestring, strlen(token->valuestring));
out:
    cJSON_Delete(answer);
    http_call_release(&call); /* wipes the answer */
    buf_release(&body);       /* wipes the assertion */
    return rc;
}

int gauth_token(struct gauth *g, int64_t deadline_ms, const char **bearer, struct d2f_err *err)
{
    int64_t now = d2f_now_ms(), margin;
    cJSON *claims;
    struct buf jwt;
    int rc;

    if (g->wif)
        return wif_token(g->wif, deadline_ms, bearer, err);
    /* renew ahead of expiry: five minutes, or a quarter of a short lifetime */
    margin = g->lifetime_ms / 4 < 300000 ? g->lifetime_ms / 4 : 300000;
    if (g->expires_ms && now < g->expires_ms - margin) {
        *bearer = g->bearer;
        return 0;
    }
    gauth_invalidate(g);
    claims = cJSON_CreateObject();
    if (!cJSON_AddStringToObject(claims, "iss", g->email) ||
        (g->mode == GAUTH_OAUTH ? !cJSON_AddStringToObject(claims, "scope", GAUTH_SCOPE)
                                : !cJSON_AddStringToObject(claims, "sub", g->email)) ||
        !cJSON_AddStringToObject(claims, "aud",
                                 g->mode == GAUTH_OAUTH ? g->token_uri : g->audience) ||
        !cJSON_AddNumberToObject(claims, "iat", (double)(now / 1000)) ||
        !cJSON_AddNumberToObject(claims, "exp", (double)(now / 1000 + GAUTH_LIFETIME_S))) {
        cJSON_Delete(claims);
        return d2f_errf(err, D2F_ENOMEM, "out of memory while signing a JWT");
    }
    buf_init(&jwt, 64 * 1024);
    rc = sign_jwt(g, claims, &jwt, err);
    if (!rc)
        rc = g->mode == GAUTH_OAUTH
                 ? exchange(g, jwt.data, deadline_ms, err)
                 : set_bearer(g, jwt.data, jwt.len, (int64_t)GAUTH_LIFETIME_S * 1000, err);
    if (jwt.data)
        sodium_memzero(jwt.data, jwt.len);
    buf_release(&jwt);
    if (!rc)
        *bearer = g->bearer;
    return rc;
}
