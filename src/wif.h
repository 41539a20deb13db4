/*
 * wif.h: keyless credentials: Workload Identity Federation from the function's AWS role
 * (Google's AIP-4117, as its client libraries implement it). No Google key exists.
 *
 * DESIGN
 * GOOGLE_APPLICATION_CREDENTIALS names a credential configuration of "type":
 * "external_account", subject_token_type "urn:ietf:params:aws:token-type:aws4_request". A
 * bearer token is had in two or three steps:
 *   1. the subject token: a GetCallerIdentity POST to the configuration's
 *      regional_cred_verification_url ({region} = AWS_REGION), signed with the AWS credentials
 *      of the environment (sigv4.h: ddb2fs signs it, Google's STS sends it), the headers host,
 *      x-amz-date, x-goog-cloud-target-resource (= the audience) and x-amz-security-token all
 *      signed; serialised as {"headers":[{"key","value"},…],"method","url"} and URL-encoded;
 *   2. Google's STS (token_url): the OAuth token exchange of that subject token for a federated
 *      access token;
 *   3. with service_account_impersonation_url: IAM Credentials' generateAccessToken for the
 *      service account, with the federated token as the bearer; without it the federated token
 *      is the bearer token.
 * The token is cached and renewed ahead of its expiry, as gauth's; a 401 from Firestore
 * invalidates it. The AWS secret, the subject token and every token are wiped after use and
 * never logged.
 *
 * Calling sequence
 *   wif_from_json(&w, json, len, cfg, http, &err);   cfg and http outlive w
 *   wif_token(w, deadline_ms, &bearer, &err);        "Bearer …", valid until the next call
 *   wif_invalidate(w) after a 401; wif_free(w).
 *
 * Error handling
 * A configuration that is not usable is D2F_ECONFIG naming its field; a refusal is D2F_EAUTH
 * naming the step (the STS exchange, the impersonation) with the server's own message; no
 * answer is D2F_EUNREACHABLE.
 */
#ifndef WIF_H
#define WIF_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "d2f.h"
#include "http.h"

#define WIF_SUBJECT_TOKEN_TYPE "urn:ietf:params:aws:token-type:aws4_request"
#define WIF_STS_SCOPE "https://www.googleapis.com/auth/cloud-platform"

struct wif;

/* 1 when the JSON text (len bytes) is a credential configuration of type external_account. */
int wif_is_external_account(const char *json, size_t len);

/* Reads the credential configuration (len bytes of JSON) with the AWS credentials and region
 * of cfg. */
int wif_from_json(struct wif **out, const char *json, size_t len, const struct config *cfg,
                  struct http *http, struct d2f_err *err) D2F_WUR;

/* Frees w, wiping its token; accepts NULL. */
void wif_free(struct wif *w);

/* A valid "Bearer …" value in *bearer (owned by w, valid until the next call). */
int wif_token(struct wif *w, int64_t deadline_ms, const char **bearer, struct d2f_err *err) D2F_WUR;

/* Drops the cached token. */
void wif_invalidate(struct wif *w);

/* Tokens obtained so far. */
unsigned wif_renewals(const struct wif *w);

/* The subject token as signed at amz_date ("20200811T065522Z"), URL-encoded, into out (the
 * caller wipes it). For wif_token, and for tests. */
int wif_subject_token(const struct wif *w, const char *amz_date, struct buf *out,
                      struct d2f_err *err) D2F_WUR;

#endif
