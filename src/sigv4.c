/* sigv4.c: AWS Signature Version 4 of a request ddb2fs does not send (see sigv4.h). */
#include "sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>

#include "buf.h"

/* The canonical request of one small request is a few kilobytes. */
#define CANONICAL_MAX (64 * 1024)
#define QUERY_PARAMS_MAX 64

int sigv4_url_host(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://"), *end;
    size_t n;

    if (!p)
        return -1;
    p += 3;
    end = p + strcspn(p, "/?#");
    n = (size_t)(end - p);
    if (n == 0 || n >= cap || memchr(p, '@', n))
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    sodium_bin2hex(out, n * 2 + 1, p, n);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Appends the n bytes at s, percent-decoded ('+' is a space in a query), then encoded as AWS
 * canonicalises: every byte but A-Z a-z 0-9 - _ . ~ as %XX. */
static int add_canonical_part(struct buf *out, const char *s, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    int rc = 0;

    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (unsigned char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            rc = buf_addc(out, (char)c);
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            rc = buf_add(out, e, 3);
        }
    }
    return rc;
}

struct param {
    struct buf name, value; /* canonical */
};

static int cmp_params(const void *a, const void *b)
{
    const struct param *x = a, *y = b;
    int c = strcmp(buf_str(&x->name), buf_str(&y->name));

    return c ? c : strcmp(buf_str(&x->value), buf_str(&y->value));
}

static int canonical_query(const char *query, struct buf *out)
{
    struct param params[QUERY_PARAMS_MAX];
    size_t n = 0;
    int rc = 0;

    for (const char *p = query; *p && !rc;) {
        size_t len = strcspn(p, "&"), k = strcspn(p, "=");
        if (len == 0) {
            p++;
            continue;
        }
        if (n == QUERY_PARAMS_MAX) {
            rc = D2F_EINPUT;
            break;
        }
        buf_init(&params[n].name, CANONICAL_MAX);
        buf_init(&params[n].value, CANONICAL_MAX);
        if (k > len)
            k = len;
        rc = add_canonical_part(&params[n].name, p, k);
        if (!rc && k < len)
            rc = add_canonical_part(&params[n].value, p + k + 1, len - k - 1);
        n++;
        p += len + (p[len] == '&');
    }
    if (!rc)
        qsort(params, n, sizeof(params[0]), cmp_params);
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = buf_addf(out, "%s%s=%s", i ? "&" : "", buf_str(&params[i].name),
                          buf_str(&params[i].value));
        buf_release(&params[i].name);
        buf_release(&params[i].value);
    }
    return rc;
}

struct canon_header {
    char name[128];
    const char *value;
};

static int cmp_headers(const void *a, const void *b)
{
    return strcmp(((const struct canon_header *)a)->name, ((const struct canon_header *)b)->name);
}

/* Appends a header value trimmed, with inner runs of white space folded to one space. */
static int add_trimmed(struct buf *out, const char *v)
{
    int rc = 0, space = 0;

    while (*v == ' ' || *v == '\t')
        v++;
    for (; *v && !rc; v++) {
        if (*v == ' ' || *v == '\t') {
            space = 1;
            continue;
        }
        if (space)
            rc = buf_addc(out, ' ');
        space = 0;
        if (!rc)
            rc = buf_addc(out, *v);
    }
    return rc;
}

/* method \n URI \n query \n headers \n signed \n body hash; *signed_names the names joined. */
static int canonical_request(const struct sigv4_request *req, struct buf *out,
                             struct buf *signed_names, struct d2f_err *err)
{
    struct canon_header h[SIGV4_MAX_HEADERS];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char digest_hex[SHA256_DIGEST_LENGTH * 2 + 1];
    const char *p = strstr(req->url, "://"), *path, *query;
    size_t path_len;
    int rc;

    if (!p || req->nheaders > SIGV4_MAX_HEADERS)
        return d2f_errf(err, D2F_EINPUT, "cannot sign '%.100s': not a URL, or too many headers",
                        req->url);
    path = p + 3 + strcspn(p + 3, "/?#");
    path_len = strcspn(path, "?#");
    query = path[path_len] == '?' ? path + path_len + 1 : "";
    for (size_t i = 0; i < req->nheaders; i++) {
        size_t n = strlen(req->headers[i].name);
        if (n == 0 || n >= sizeof(h[i].name))
            return d2f_errf(err, D2F_EINPUT, "cannot sign a header name of %zu bytes", n);
        for (size_t k = 0; k <= n; k++)
            h[i].name[k] = (char)tolower((unsigned char)req->headers[i].name[k]);
        h[i].value = req->headers[i].value;
    }
    qsort(h, req->nheaders, sizeof(h[0]), cmp_headers);
    for (size_t i = 1; i < req->nheaders; i++)
        if (strcmp(h[i - 1].name, h[i].name) == 0)
            return d2f_errf(err, D2F_EINPUT, "cannot sign header '%s' twice", h[i].name);

    rc = buf_addf(out, "%s\n", req->method);
    if (!rc)
        rc = path_len ? buf_add(out, path, path_len) : buf_addc(out, '/');
    if (!rc)
        rc = buf_addc(out, '\n');
    if (!rc) {
        char q[2048];
        size_t qn = strcspn(query, "#");
        if (qn >= sizeof(q))
            return d2f_errf(err, D2F_EINPUT, "cannot sign a query of %zu bytes", qn);
        memcpy(q, query, qn);
        q[qn] = '\0';
        rc = canonical_query(q, out);
    }
    if (!rc)
        rc = buf_addc(out, '\n');
    for (size_t i = 0; i < req->nheaders && !rc; i++) {
        rc = buf_addf(out, "%s:", h[i].name);
        if (!rc)
            rc = add_trimmed(out, h[i].value);
        if (!rc)
            rc = buf_addc(out, '\n');
        if (!rc && i)
            rc = buf_addc(signed_names, ';');
        if (!rc)
            rc = buf_adds(signed_names, h[i].name);
    }
    if (!rc)
        rc = buf_addf(out, "\n%s\n", buf_str(signed_names));
    SHA256(req->body_len ? req->body : (const unsigned char *)"", req->body_len, digest);
    hex(digest, sizeof(digest), digest_hex);
    if (!rc)
        rc = buf_adds(out, digest_hex);
    if (rc)
        return d2f_errf(err, rc == D2F_ENOMEM ? D2F_ENOMEM : D2F_EINPUT, "cannot sign '%.100s': %s",
                        req->url, d2f_strerror(rc));
    return 0;
}

static int mac(const unsigned char *key, size_t key_len, const char *msg,
               unsigned char out[SHA256_DIGEST_LENGTH])
{
    unsigned int n = 0;

    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out,
                &n) &&
                   n == SHA256_DIGEST_LENGTH
               ? 0
               : -1;
}

int sigv4_sign(const struct sigv4_request *req, const char *region, const char *service,
               const char *amz_date, const struct sigv4_key *key, char auth[SIGV4_AUTH_MAX],
               struct d2f_err *err)
{
    struct buf creq, names, to_sign;
    unsigned char digest[SHA256_DIGEST_LENGTH], k[SHA256_DIGEST_LENGTH];
    char date[9], digest_hex[SHA256_DIGEST_LENGTH * 2 + 1], sig_hex[SHA256_DIGEST_LENGTH * 2 + 1];
    char secret[256];
    size_t secret_len = strlen(key->secret);
    int rc, n;

    auth[0] = '\0';
    if (strlen(amz_date) != 16 || amz_date[8] != 'T' || amz_date[15] != 'Z')
        return d2f_errf(err, D2F_EINPUT, "cannot sign: '%.20s' is not an ISO 8601 basic time",
                        amz_date);
    if (secret_len + 4 >= sizeof(secret))
        return d2f_errf(err, D2F_EINPUT, "cannot sign: the secret access key is too long");
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    buf_init(&creq, CANONICAL_MAX);
    buf_init(&names, SIGV4_AUTH_MAX);
    buf_init(&to_sign, CANONICAL_MAX);
    if ((rc = canonical_request(req, &creq, &names, err)) != 0)
        goto out;
    SHA256((const unsigned char *)creq.data, creq.len, digest);
    hex(digest, sizeof(digest), digest_hex);
    if ((rc = buf_addf(&to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, date,
                       region, service, digest_hex)) != 0) {
        rc = d2f_errf(err, rc, "cannot sign: %s", d2f_strerror(rc));
        goto out;
    }
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, key->secret, secret_len + 1);
    if (mac((const unsigned char *)secret, secret_len + 4, date, k) ||
        mac(k, sizeof(k), region, k) || mac(k, sizeof(k), service, k) ||
        mac(k, sizeof(k), "aws4_request", k) || mac(k, sizeof(k), to_sign.data, digest)) {
        rc = d2f_errf(err, D2F_ENOMEM, "cannot sign: HMAC-SHA256 failed");
        goto out;
    }
    hex(digest, sizeof(digest), sig_hex);
    n = snprintf(auth, SIGV4_AUTH_MAX,
                 "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                 "Signature=%s",
                 key->key_id, date, region, service, buf_str(&names), sig_hex);
    if (n < 0 || n >= SIGV4_AUTH_MAX) {
        auth[0] = '\0';
        rc = d2f_errf(err, D2F_EINPUT, "cannot sign: the Authorization header would be too long");
    }
out:
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(k, sizeof(k));
    buf_release(&creq);
    buf_release(&names);
    buf_release(&to_sign);
    return rc;
}
