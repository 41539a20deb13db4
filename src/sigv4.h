/*
 * sigv4.h: an AWS Signature Version 4 for a request ddb2fs does not send itself.
 *
 * libcurl signs the requests it sends (CURLOPT_AWS_SIGV4), and every AWS call of ddb2fs goes
 * that way. Workload Identity Federation needs one signature more: a GetCallerIdentity request
 * that Google's STS, not ddb2fs, sends to AWS. libcurl cannot sign a request without sending it,
 * so this is computed here, with OpenSSL's HMAC-SHA256 and SHA-256, as AWS documents it:
 *
 *   canonical request = method \n canonical URI \n canonical query \n
 *                       name:value \n for each signed header (lowercase, sorted, values trimmed
 *                       and inner runs of spaces folded) \n signed names joined by ';' \n
 *                       hex SHA-256 of the body
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz_date \n date/region/service/aws4_request \n
 *                       hex SHA-256 of the canonical request
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service),
 *                       "aws4_request")
 *
 * Every header given is signed, and only those: the caller sends exactly what it signs.
 * The path is used as given (already URI-encoded, without "." or ".." segments); the query's
 * parameters are sorted by name, then value.
 */
#ifndef SIGV4_H
#define SIGV4_H

#include <stddef.h>

#include "d2f.h"

#define SIGV4_MAX_HEADERS 16
/* "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…" fits in this with a key id
 * of up to 128 bytes and the headers' names. */
#define SIGV4_AUTH_MAX 1024

struct sigv4_header {
    const char *name;  /* as sent; signed in lowercase */
    const char *value; /* as sent; signed trimmed */
};

struct sigv4_request {
    const char *method;                             /* "POST" */
    const char *url;                                /* "https://host/path?query" */
    struct sigv4_header headers[SIGV4_MAX_HEADERS]; /* host and x-amz-date included */
    size_t nheaders;                                /* entries in headers */
    const unsigned char *body;                      /* may be NULL when body_len is 0 */
    size_t body_len;                                /* bytes at body */
};

struct sigv4_key {
    const char *key_id; /* AWS_ACCESS_KEY_ID */
    const char *secret; /* AWS_SECRET_ACCESS_KEY; never copied out of this call but wiped */
};

/*
 * Signs req for region and service at amz_date ("20200811T065522Z"): the Authorization header's
 * value into auth (SIGV4_AUTH_MAX bytes). Returns 0, or D2F_EINPUT (a malformed URL, date or
 * header, too many headers) / D2F_ENOMEM with err saying what. The secret and the keys derived
 * from it are wiped before it returns.
 */
int sigv4_sign(const struct sigv4_request *req, const char *region, const char *service,
               const char *amz_date, const struct sigv4_key *key, char auth[SIGV4_AUTH_MAX],
               struct d2f_err *err) D2F_WUR;

/* The host of url ("https://host:port/…" → "host:port") into out (cap bytes). -1 when url has
 * no scheme or host, or it does not fit. */
int sigv4_url_host(const char *url, char *out, size_t cap);

#endif
