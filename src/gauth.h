/*
 * gauth.h: Google service-account credentials: the key file, RS256 JWTs signed with OpenSSL,
 * and the bearer token Firestore wants.
 *
 * DESIGN
 * A service-account key gives two ways to a bearer token, chosen by DDB2FS_TOKEN:
 *   oauth        a JWT (iss = client_email, scope = datastore, aud = the key's token_uri) is
 *                exchanged at token_uri with the JWT-bearer grant for an access token;
 *   self-signed  a JWT (iss = sub = client_email, aud = the Firestore endpoint, kid = the key's
 *                id) is itself the bearer token (Google's AIP-4111): no round trip at start.
 * Either token is cached and renewed ahead of its expiry; a 401 from Firestore invalidates it.
 * An external account (Workload Identity Federation, no key at all) is wif.h's; gauth hands
 * its calls on, so that Firestore's client sees one kind of credentials.
 * After the signing key is built, the key file's text is wiped; tokens and keys are never
 * logged or put in an error message.
 *
 * Calling sequence
 *   gauth_from_json(&g, json, len, mode, audience, http, &err);   (secret.h reads the key)
 *   gauth_token(g, deadline_ms, &bearer, &err);  "Bearer …", valid until the next call
 *   gauth_invalidate(g) after a 401; gauth_free(g).
 *
 * Error handling
 * A malformed key is D2F_ECONFIG naming the field; a refused exchange is D2F_EAUTH with the
 * token endpoint's error and description; no answer is D2F_EUNREACHABLE.
 */
#ifndef GAUTH_H
#define GAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "d2f.h"
#include "http.h"

#define GAUTH_SCOPE "https://www.googleapis.com/auth/datastore"
#define GAUTH_LIFETIME_S 3600

enum gauth_mode { GAUTH_OAUTH, GAUTH_SELF_SIGNED };

struct gauth;

/* Builds credentials from a service-account key file's JSON (len bytes; the caller wipes its
 * copy). audience: the Firestore endpoint, for self-signed tokens ("https://…/"). http must
 * outlive the credentials. */
int gauth_from_json(struct gauth **out, const char *json, size_t len, enum gauth_mode mode,
                    const char *audience, struct http *http, struct d2f_err *err) D2F_WUR;

struct wif;

/* Credentials of an external account (wif.h): g hands its token calls to w, which it takes. */
int gauth_from_wif(struct gauth **out, struct wif *w, struct d2f_err *err) D2F_WUR;

/* Frees the credentials, wiping the key and token; accepts NULL. */
void gauth_free(struct gauth *g);

/* The key's project_id (NULL for an external account). Valid while g is. */
const char *gauth_project(const struct gauth *g);

/* A valid "Bearer …" header value in *bearer (owned by g, valid until the next call), getting
 * or signing a new token when the cached one is near its expiry. */
int gauth_token(struct gauth *g, int64_t deadline_ms, const char **bearer,
                struct d2f_err *err) D2F_WUR;

/* Drops the cached token (after Firestore answered 401). */
void gauth_invalidate(struct gauth *g);

/* Exchanges counted so far (tokens obtained or signed). */
unsigned gauth_renewals(const struct gauth *g);

#endif
