/* wif.c: Workload Identity Federation from the function's AWS role (see wif.h). */
#include "wif.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "gauth.h"
#include "sigv4.h"

#define ANSWER_MAX (64 * 1024)
#define BEARER_MAX 8192
#define SUBJECT_TOKEN_MAX (32 * 1024)
#define FORM_MAX (128 * 1024)
#define LIFETIME_DEFAULT_S 3600
#define LIFETIME_MIN_S 600
#define LIFETIME_MAX_S 43200
#define DEFAULT_TOKEN_URL "https://sts.googleapis.com/v1/token"

struct wif {
    char *audience;          /* the workload identity pool provider */
    char *token_url;         /* Google's STS */
    char *impersonation_url; /* …:generateAccessToken, or NULL */
    char *verification_url;  /* GetCallerIdentity, {region} replaced */
    long lifetime_s;         /* of an impersonated token */
    const struct config *cfg;
    struct http *http;
    char *bearer; /* "Bearer …", sodium_malloc'd, BEARER_MAX bytes */
    int64_t expires_ms, lifetime_ms;
    unsigned renewals;
};

int wif_is_external_account(const char *json, size_t len)
{
    cJSON *c = cJSON_ParseWithLength(json, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
    int yes = cJSON_IsString(type) && strcmp(type->valuestring, "external_account") == 0;

    cJSON_Delete(c);
    return yes;
}

/* https://…googleapis.com/…, or a loopback URL (tests); NULL when fine, else why. */
static const char *google_url_problem(const char *url)
{
    char host[256];
    size_t n;

    if (sigv4_url_host(url, host, sizeof(host)) != 0)
        return "is not a URL";
    if ((strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) &&
        http_url_loopback(url))
        return NULL;
    if (strncmp(url, "https://", 8) != 0)
        return "is not an https:// URL";
    n = strlen(host);
    if (strcmp(host, "googleapis.com") == 0 ||
        (n > 15 && strcmp(host + n - 15, ".googleapis.com") == 0))
        return NULL;
    return "is not a Google API endpoint (https://….googleapis.com)";
}

static char *member(const cJSON *obj, const char *name, int required, const char *where,
                    struct d2f_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    char *s;

    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        if (required || v)
            d2f_errf(err, D2F_ECONFIG,
                     "GOOGLE_APPLICATION_CREDENTIALS: the external_account configuration has no "
                     "'%s%s' string",
                     where, name);
        return NULL;
    }
    if (!(s = strdup(v->valuestring)))
        d2f_errf(err, D2F_ENOMEM, "out of memory");
    return s;
}

/* url with its one "{region}" replaced by region, in a new string. */
static char *with_region(const char *url, const char *region)
{
    const char *at = strstr(url, "{region}");
    size_t n = strlen(url) + strlen(region) + 1;
    char *s = malloc(n);

    if (!s)
        return NULL;
    if (at)
        snprintf(s, n, "%.*s%s%s", (int)(at - url), url, region, at + 8);
    else
        snprintf(s, n, "%s", url);
    return s;
}

static int parse(struct wif *w, const cJSON *c, struct d2f_err *err)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "subject_token_type");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(c, "credential_source");
    const cJSON *imp = cJSON_GetObjectItemCaseSensitive(c, "service_account_impersonation");
    const cJSON *life = cJSON_GetObjectItemCaseSensitive(imp, "token_lifetime_seconds");
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(src, "environment_id");
    const char *why;
    char *url = NULL;

    if (!cJSON_IsString(type) || strcmp(type->valuestring, WIF_SUBJECT_TOKEN_TYPE) != 0)
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_APPLICATION_CREDENTIALS: 'subject_token_type' is not '%s': "
                        "ddb2fs federates an AWS role only",
                        WIF_SUBJECT_TOKEN_TYPE);
    if (!cJSON_IsString(env) || strcmp(env->valuestring, "aws1") != 0)
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_APPLICATION_CREDENTIALS: 'credential_source.environment_id' is "
                        "not 'aws1'");
    if (!(w->audience = member(c, "audience", 1, "", err)))
        return err->code;
    if (strncmp(w->audience, "//iam.googleapis.com/", 21) != 0)
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_APPLICATION_CREDENTIALS: 'audience' is not "
                        "//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/"
                        "P/providers/V");
    w->token_url = member(c, "token_url", 0, "", err);
    if (!w->token_url && err->code)
        return err->code;
    if (!w->token_url && !(w->token_url = strdup(DEFAULT_TOKEN_URL)))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if ((why = google_url_problem(w->token_url)) != NULL)
        return d2f_errf(err, D2F_ECONFIG, "GOOGLE_APPLICATION_CREDENTIALS: 'token_url' %s", why);
    w->impersonation_url = member(c, "service_account_impersonation_url", 0, "", err);
    if (!w->impersonation_url && err->code)
        return err->code;
    if (w->impersonation_url && (why = google_url_problem(w->impersonation_url)) != NULL)
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_APPLICATION_CREDENTIALS: 'service_account_impersonation_url' %s",
                        why);
    if (w->impersonation_url && !strstr(w->impersonation_url, ":generateAccessToken"))
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_APPLICATION_CREDENTIALS: 'service_account_impersonation_url' "
                        "is not …/serviceAccounts/EMAIL:generateAccessToken");
    w->lifetime_s = LIFETIME_DEFAULT_S;
    if (life) {
        if (!cJSON_IsNumber(life) || life->valuedouble < (double)LIFETIME_MIN_S ||
            life->valuedouble > (double)LIFETIME_MAX_S ||
            life->valuedouble != (double)(long)life->valuedouble)
            return d2f_errf(err, D2F_ECONFIG,
                            "GOOGLE_APPLICATION_CREDENTIALS: "
                            "'service_account_impersonation.token_lifetime_seconds' is not a "
                            "whole number from %d to %d",
                            LIFETIME_MIN_S, LIFETIME_MAX_S);
        w->lifetime_s = (long)life->valuedouble;
    }
    if (!(url = member(src, "regional_cred_verification_url", 1, "credential_source.", err)))
        return err->code;
    if (strncmp(url, "https://", 8) != 0) {
        free(url);
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_APPLICATION_CREDENTIALS: "
                        "'credential_source.regional_cred_verification_url' is not an https:// "
                        "URL");
    }
    w->verification_url = with_region(url, w->cfg->aws_region);
    free(url);
    if (!w->verification_url)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    return 0;
}

int wif_from_json(struct wif **out, const char *json, size_t len, const struct config *cfg,
                  struct http *http, struct d2f_err *err)
{
    cJSON *c = cJSON_ParseWithLength(json, len);
    struct wif *w = NULL;
    int rc;

    *out = NULL;
    if (!cJSON_IsObject(c)) {
        rc = d2f_errf(err, D2F_ECONFIG, "GOOGLE_APPLICATION_CREDENTIALS: not a JSON object");
        goto out;
    }
    if (!cfg->aws_region || !cfg->aws_key_id || !cfg->aws_secret) {
        rc = d2f_errf(err, D2F_ECONFIG,
                      "GOOGLE_APPLICATION_CREDENTIALS: an external_account configuration signs "
                      "with the function's AWS role: AWS_REGION, AWS_ACCESS_KEY_ID and "
                      "AWS_SECRET_ACCESS_KEY are not all set");
        goto out;
    }
    if (!(w = calloc(1, sizeof(*w))) || !(w->bearer = sodium_malloc(BEARER_MAX))) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    w->bearer[0] = '\0';
    w->cfg = cfg;
    w->http = http;
    w->lifetime_ms = (int64_t)LIFETIME_DEFAULT_S * 1000;
    if ((rc = parse(w, c, err)) != 0)
        goto out;
    *out = w;
    w = NULL;
out:
    cJSON_Delete(c);
    wif_free(w);
    return rc;
}

void wif_free(struct wif *w)
{
    if (!w)
        return;
    free(w->audience);
    free(w->token_url);
    free(w->impersonation_url);
    free(w->verification_url);
    sodium_free(w->bearer);
    free(w);
}

void wif_invalidate(struct wif *w)
{
    w->expires_ms = 0;
    sodium_memzero(w->bearer, BEARER_MAX);
}

unsigned wif_renewals(const struct wif *w)
{
    return w->renewals;
}

/* Appends s percent-encoded: every byte but A-Z a-z 0-9 - _ . ~ as %XX. */
static int add_encoded(struct buf *out, const char *s, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    int rc = 0;

    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            rc = buf_addc(out, (char)c);
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            rc = buf_add(out, e, 3);
        }
    }
    return rc;
}

static int add_header(cJSON *list, const char *key, const char *value)
{
    cJSON *h = cJSON_CreateObject();

    if (!h || !cJSON_AddStringToObject(h, "key", key) ||
        !cJSON_AddStringToObject(h, "value", value) || !cJSON_AddItemToArray(list, h)) {
        cJSON_Delete(h);
        return D2F_ENOMEM;
    }
    return 0;
}

/* Wipes and frees a cJSON tree's strings' bytes (a tree holding a credential). */
static void wipe_tree(cJSON *t)
{
    for (cJSON *c = t ? t->child : NULL; c; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring)
            sodium_memzero(c->valuestring, strlen(c->valuestring));
        wipe_tree(c);
    }
}

int wif_subject_token(const struct wif *w, const char *amz_date, struct buf *out,
                      struct d2f_err *err)
{
    const struct config *cfg = w->cfg;
    struct sigv4_request req = {.method = "POST", .url = w->verification_url};
    struct sigv4_key key = {cfg->aws_key_id, cfg->aws_secret};
    char host[256], auth[SIGV4_AUTH_MAX];
    cJSON *token = NULL, *headers;
    char *text = NULL;
    int rc;

    if (sigv4_url_host(w->verification_url, host, sizeof(host)) != 0)
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_APPLICATION_CREDENTIALS: "
                        "'credential_source.regional_cred_verification_url' has no host");
    req.headers[req.nheaders++] = (struct sigv4_header){"host", host};
    req.headers[req.nheaders++] = (struct sigv4_header){"x-amz-date", amz_date};
    req.headers[req.nheaders++] =
        (struct sigv4_header){"x-goog-cloud-target-resource", w->audience};
    if (cfg->aws_token)
        req.headers[req.nheaders++] = (struct sigv4_header){"x-amz-security-token", cfg->aws_token};
    if ((rc = sigv4_sign(&req, cfg->aws_region, "sts", amz_date, &key, auth, err)) != 0)
        return rc;
    rc = D2F_ENOMEM;
    if (!(token = cJSON_CreateObject()) || !(headers = cJSON_AddArrayToObject(token, "headers")) ||
        add_header(headers, "Authorization", auth))
        goto out;
    for (size_t i = 0; i < req.nheaders; i++)
        if (add_header(headers, req.headers[i].name, req.headers[i].value))
            goto out;
    if (!cJSON_AddStringToObject(token, "method", "POST") ||
        !cJSON_AddStringToObject(token, "url", w->verification_url) ||
        !(text = cJSON_PrintUnformatted(token)))
        goto out;
    rc = add_encoded(out, text, strlen(text));
out:
    if (rc)
        d2f_errf(err, rc, "cannot build the subject token: %s", d2f_strerror(rc));
    if (text) {
        sodium_memzero(text, strlen(text));
        cJSON_free(text);
    }
    wipe_tree(token);
    cJSON_Delete(token);
    sodium_memzero(auth, sizeof(auth));
    return rc;
}

/* One POST of the flow; *answer is the parsed answer of any status (NULL if none parsed). */
static int post(struct wif *w, const char *url, const char *content_type, const char *bearer,
                const struct buf *body, int64_t deadline_ms, long *status, cJSON **answer,
                const char *step, struct d2f_err *err)
{
    struct http_call call, *calls[1] = {&call};
    int rc;

    *answer = NULL;
    http_call_init(&call, ANSWER_MAX);
    call.method = "POST";
    call.url = url;
    call.content_type = content_type;
    call.authorization = bearer;
    call.body = body->data;
    call.body_len = body->len;
    rc = http_perform(w->http, calls, 1, deadline_ms, err);
    if (!rc && call.failed)
        rc = d2f_errf(err, D2F_EUNREACHABLE, "%s: no answer from '%s': %s", step, url, call.error);
    if (!rc) {
        *status = call.status;
        *answer = cJSON_ParseWithLength(buf_str(&call.response), call.response.len);
    }
    if (call.response.data)
        sodium_memzero(call.response.data, call.response.len);
    http_call_release(&call);
    return rc;
}

static int add_field(struct buf *form, const char *name, const char *value)
{
    int rc = buf_addf(form, "%s%s=", form->len ? "&" : "", name);

    return rc ? rc : add_encoded(form, value, strlen(value));
}

static int set_bearer(struct wif *w, const char *token, int64_t lifetime_ms, struct d2f_err *err)
{
    size_t n = strlen(token);

    if (n + sizeof("Bearer ") > BEARER_MAX)
        return d2f_errf(err, D2F_EAUTH, "the access token is over %d bytes", BEARER_MAX);
    memcpy(w->bearer, "Bearer ", 7);
    memcpy(w->bearer + 7, token, n + 1);
    w->lifetime_ms = lifetime_ms;
    w->expires_ms = d2f_now_ms() + lifetime_ms;
    return 0;
}

/* Step 2: the subject token for a federated token, into w->bearer. */
static int exchange(struct wif *w, const char *subject, int64_t deadline_ms, struct d2f_err *err)
{
    struct buf form;
    cJSON *answer = NULL;
    const cJSON *token, *expires;
    long status = 0;
    int rc;

    buf_init(&form, FORM_MAX);
    if ((rc = add_field(&form, "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")) ||
        (rc = add_field(&form, "audience", w->audience)) ||
        (rc = add_field(&form, "requested_token_type",
                        "urn:ietf:params:oauth:token-type:access_token")) ||
        (rc = add_field(&form, "scope", w->impersonation_url ? WIF_STS_SCOPE : GAUTH_SCOPE)) ||
        (rc = add_field(&form, "subject_token_type", WIF_SUBJECT_TOKEN_TYPE)) ||
        (rc = add_field(&form, "subject_token", subject))) {
        rc = d2f_errf(err, rc, "the STS token exchange: %s", d2f_strerror(rc));
        goto out;
    }
    if ((rc = post(w, w->token_url, "application/x-www-form-urlencoded", NULL, &form, deadline_ms,
                   &status, &answer, "the STS token exchange", err)) != 0)
        goto out;
    token = cJSON_GetObjectItemCaseSensitive(answer, "access_token");
    expires = cJSON_GetObjectItemCaseSensitive(answer, "expires_in");
    if (status != 200 || !cJSON_IsString(token)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(answer, "error");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(answer, "error_description");
        rc = d2f_errf(err, D2F_EAUTH,
                      "Google's STS ('%s') refused the subject token of the AWS role: HTTP %ld "
                      "%s%s%.200s",
                      w->token_url, status, cJSON_IsString(e) ? e->valuestring : "(no error)",
                      cJSON_IsString(d) ? ": " : "", cJSON_IsString(d) ? d->valuestring : "");
        goto out;
    }
    rc = set_bearer(w, token->valuestring,
                    cJSON_IsNumber(expires) && expires->valuedouble > 0
                        ? (int64_t)(expires->valuedouble * 1000)
                        : (int64_t)LIFETIME_DEFAULT_S * 1000,
                    err);
out:
    wipe_tree(answer);
    cJSON_Delete(answer);
    if (form.data)
        sodium_memzero(form.data, form.len);
    buf_release(&form);
    return rc;
}

/* Seconds since the epoch of an RFC 3339 UTC time ("2014-10-02T15:01:23.045123456Z"); -1. */
static int64_t rfc3339_seconds(const char *s)
{
    struct tm tm = {0};
    int n = 0;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    s += n;
    if (*s == '.')
        s += 1 + strspn(s + 1, "0123456789");
    if (strcmp(s, "Z") != 0)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* Step 3: the federated token (in w->bearer) for the service account's. */
static int impersonate(struct wif *w, int64_t deadline_ms, struct d2f_err *err)
{
    struct buf body;
    cJSON *answer = NULL;
    const cJSON *token, *expire;
    long status = 0;
    int64_t until;
    int rc;

    buf_init(&body, FORM_MAX);
    if ((rc = buf_addf(&body, "{\"scope\":[\"%s\"],\"lifetime\":\"%lds\"}", GAUTH_SCOPE,
                       w->lifetime_s)) != 0) {
        rc = d2f_errf(err, rc, "out of memory");
        goto out;
    }
    rc = post(w, w->impersonation_url, "application/json", w->bearer, &body, deadline_ms, &status,
              &answer, "the impersonation of the service account", err);
    wif_invalidate(w); /* the federated token is not needed any more */
    if (rc)
        goto out;
    token = cJSON_GetObjectItemCaseSensitive(answer, "accessToken");
    expire = cJSON_GetObjectItemCaseSensitive(answer, "expireTime");
    if (status != 200 || !cJSON_IsString(token)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(answer, "error");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        rc = d2f_errf(err, D2F_EAUTH,
                      "IAM Credentials ('%s') refused to impersonate the service account: HTTP "
                      "%ld %s%s%.200s",
                      w->impersonation_url, status,
                      cJSON_IsString(st) ? st->valuestring : "(no status)",
                      cJSON_IsString(m) ? ": " : "", cJSON_IsString(m) ? m->valuestring : "");
        goto out;
    }
    until = cJSON_IsString(expire) ? rfc3339_seconds(expire->valuestring) : -1;
    rc = set_bearer(w, token->valuestring,
                    until > 0 ? (until - (int64_t)time(NULL)) * 1000 : w->lifetime_s * 1000, err);
out:
    wipe_tree(answer);
    cJSON_Delete(answer);
    buf_release(&body);
    return rc;
}

int wif_token(struct wif *w, int64_t deadline_ms, const char **bearer, struct d2f_err *err)
{
    int64_t now = d2f_now_ms(), margin = w->lifetime_ms / 4 < 300000 ? w->lifetime_ms / 4 : 300000;
    time_t t = time(NULL);
    struct tm tm;
    char amz_date[32];
    struct buf subject;
    int rc;

    if (w->expires_ms && now < w->expires_ms - margin) {
        *bearer = w->bearer;
        return 0;
    }
    wif_invalidate(w);
    gmtime_r(&t, &tm);
    strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
    buf_init(&subject, SUBJECT_TOKEN_MAX);
    rc = wif_subject_token(w, amz_date, &subject, err);
    if (!rc)
        rc = exchange(w, buf_str(&subject), deadline_ms, err);
    if (subject.data)
        sodium_memzero(subject.data, subject.len);
    buf_release(&subject);
    if (!rc && w->impersonation_url)
        rc = impersonate(w, deadline_ms, err);
    if (rc) {
        wif_invalidate(w);
        return rc;
    }
    w->renewals++;
    *bearer = w->bearer;
    return 0;
}
