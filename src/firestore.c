/* firestore.c: the Firestore REST v1 client. */
#include "firestore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "secret.h"

struct firestore {
    struct http *http;
    struct gauth *auth; /* NULL with the emulator */
    char *commit_url;
    char *batch_get_url;
    char *docs_prefix;
    char *docs_url; /* base + docs_prefix: where a collection is listed */
};

static char *joined(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

int firestore_new(struct firestore **out, const struct config *cfg, struct http *http,
                  struct gauth *auth, struct d2f_err *err)
{
    struct firestore *fs;
    const char *project = cfg->project ? cfg->project : auth ? gauth_project(auth) : NULL;
    char base[2048];
    size_t n;
    int rc;

    *out = NULL;
    if (!cfg->emulator && !auth)
        return d2f_errf(
            err, D2F_ECONFIG,
            "GOOGLE_APPLICATION_CREDENTIALS: not set; Firestore needs a service-account "
            "key (DDB2FS_KEY_SEALED and DDB2FS_KEY_SECRET, or a key file; or "
            "FIRESTORE_EMULATOR_HOST for an emulator)");
    if (!project)
        return d2f_errf(err, D2F_ECONFIG,
                        "GOOGLE_CLOUD_PROJECT: not set, and no service-account key to take "
                        "project_id from");
    if (cfg->emulator)
        snprintf(base, sizeof(base), "http://%s", cfg->emulator);
    else
        snprintf(base, sizeof(base), "%s", cfg->endpoint);
    n = strlen(base);
    while (n && base[n - 1] == '/')
        base[--n] = '\0';
    strncat(base, "/v1/", sizeof(base) - n - 1);
    if ((rc = firestore_names(&fs, project, cfg->database, err)) != 0)
        return rc;
    fs->http = http;
    fs->auth = cfg->emulator ? NULL : auth;
    /* "projects/P/databases/D/documents" + ":commit" and ":batchGet" */
    fs->commit_url = joined(base, fs->docs_prefix, ":commit");
    fs->batch_get_url = joined(base, fs->docs_prefix, ":batchGet");
    fs->docs_url = joined(base, fs->docs_prefix, "");
    if (!fs->commit_url || !fs->batch_get_url || !fs->docs_url) {
        firestore_free(fs);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    *out = fs;
    return 0;
}

int firestore_connect(const struct config *cfg, struct http *http, struct gauth **auth,
                      struct firestore **out, struct d2f_err *err)
{
    enum gauth_mode mode = cfg->token == CONFIG_TOKEN_SELF_SIGNED ? GAUTH_SELF_SIGNED : GAUTH_OAUTH;
    char audience[2100];
    int rc;

    *auth = NULL;
    snprintf(audience, sizeof(audience), "%s/", cfg->endpoint);
    if (!cfg->emulator && (rc = secret_credentials(cfg, mode, audience, http, auth, err)) != 0)
        return rc;
    return firestore_new(out, cfg, http, *auth, err);
}

int firestore_names(struct firestore **out, const char *project, const char *database,
                    struct d2f_err *err)
{
    char db[1024];
    struct firestore *fs = calloc(1, sizeof(*fs));

    *out = NULL;
    snprintf(db, sizeof(db), "projects/%s/databases/%s", project, database);
    if (!fs || !(fs->docs_prefix = joined(db, "/documents", ""))) {
        free(fs);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    *out = fs;
    return 0;
}

void firestore_free(struct firestore *fs)
{
    if (!fs)
        return;
    free(fs->commit_url);
    free(fs->batch_get_url);
    free(fs->docs_prefix);
    free(fs->docs_url);
    free(fs);
}

const char *firestore_docs_prefix(const struct firestore *fs)
{
    return fs->docs_prefix;
}

void firestore_reauthenticate(struct firestore *fs)
{
    if (fs->auth)
        gauth_invalidate(fs->auth);
}

void firestore_commit_init(struct firestore_commit *c)
{
    memset(c, 0, sizeof(*c));
    buf_init(&c->body, FIRESTORE_MAX_REQUEST);
    http_call_init(&c->call, 1024 * 1024);
}

void firestore_commit_release(struct firestore_commit *c)
{
    if (!c)
        return;
    buf_release(&c->body);
    http_call_release(&c->call);
}

/* The Authorization value: the emulator's "owner", or a service-account token. */
static int authorization(struct firestore *fs, int64_t deadline_ms, const char **value,
                         struct d2f_err *err)
{
    if (!fs->auth) {
        *value = "Bearer owner";
        return 0;
    }
    return gauth_token(fs->auth, deadline_ms, value, err);
}

/* Reads a google.rpc.Status ({"error":{"code","message","status"}}, or a list of them). */
static void read_status(const struct http_call *call, enum retry_status *status, char *message,
                        size_t cap)
{
    cJSON *body = json_parse(buf_str(&call->response), call->response.len);
    const cJSON *e = cJSON_IsArray(body) ? cJSON_GetArrayItem(body, 0) : body;
    const cJSON *s, *m;

    e = cJSON_GetObjectItemCaseSensitive(e, "error");
    s = cJSON_GetObjectItemCaseSensitive(e, "status");
    m = cJSON_GetObjectItemCaseSensitive(e, "message");
    *status = cJSON_IsString(s) ? retry_status_from_name(s->valuestring)
                                : retry_status_from_http(call->status);
    if (*status == RETRY_OK)
        *status = RETRY_UNKNOWN;
    snprintf(message, cap, "HTTP %ld %s: %s", call->status, retry_status_name(*status),
             cJSON_IsString(m) ? m->valuestring : "(no message)");
    cJSON_Delete(body);
}

int firestore_commit_start(struct firestore *fs, struct firestore_commit **c, size_t n,
                           int64_t deadline_ms, struct d2f_err *err)
{
    struct http_call **calls = calloc(n ? n : 1, sizeof(*calls));
    const char *auth = NULL;
    int rc;

    if (!calls)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if ((rc = authorization(fs, deadline_ms, &auth, err)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct http_call *call = &c[i]->call;
        call->method = "POST";
        call->url = fs->commit_url;
        call->content_type = "application/json";
        call->authorization = auth;
        call->body = c[i]->body.data;
        call->body_len = c[i]->body.len;
        calls[i] = call;
    }
    rc = http_start(fs->http, calls, n, deadline_ms, err);
    for (size_t i = 0; i < n; i++)
        c[i]->call.authorization = NULL; /* curl has its copy */
out:
    free(calls);
    return rc;
}

int firestore_commit_wait(struct firestore *fs, int timeout_ms)
{
    return http_wait(fs->http, timeout_ms);
}

void firestore_commit_finish(struct firestore *fs, struct firestore_commit **c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct http_call *call = &c[i]->call, *one[1] = {call};

        http_collect(fs->http, one, 1);
        if (call->failed) {
            c[i]->status = RETRY_NETWORK;
            snprintf(c[i]->message, sizeof(c[i]->message), "no answer: %s", call->error);
        } else if (call->status == 200) {
            c[i]->status = RETRY_OK;
            c[i]->message[0] = '\0';
        } else {
            read_status(call, &c[i]->status, c[i]->message, sizeof(c[i]->message));
        }
    }
}

int firestore_batch_get(struct firestore *fs, const char *const *names, size_t n,
                        int64_t deadline_ms, void **out, struct d2f_err *err)
{
    cJSON *answer = NULL;
    int rc = firestore_batch_get_many(fs, &names, &n, 1, deadline_ms, &answer, err);

    *out = answer;
    return rc;
}

int firestore_batch_get_many(struct firestore *fs, const char *const *const *names,
                             const size_t *counts, size_t k, int64_t deadline_ms, cJSON **out,
                             struct d2f_err *err)
{
    struct http_call *calls = calloc(k ? k : 1, sizeof(*calls));
    struct http_call **ptrs = calloc(k ? k : 1, sizeof(*ptrs));
    char **bodies = calloc(k ? k : 1, sizeof(*bodies));
    const char *auth = NULL;
    int rc = D2F_ENOMEM;

    for (size_t j = 0; j < k; j++)
        out[j] = NULL;
    if (!calls || !ptrs || !bodies) {
        free(calls);
        free(ptrs);
        free(bodies);
        return d2f_errf(err, rc, "out of memory");
    }
    for (size_t j = 0; j < k; j++) {
        cJSON *req = cJSON_CreateObject();
        cJSON *list = req ? cJSON_AddArrayToObject(req, "documents") : NULL;
        for (size_t i = 0; list && i < counts[j]; i++)
            cJSON_AddItemToArray(list, cJSON_CreateString(names[j][i]));
        bodies[j] = list ? json_print(req) : NULL;
        cJSON_Delete(req);
        http_call_init(&calls[j], FIRESTORE_MAX_RESPONSE);
        ptrs[j] = &calls[j];
        if (!bodies[j]) {
            d2f_errf(err, rc, "out of memory");
            goto out;
        }
        calls[j].method = "POST";
        calls[j].url = fs->batch_get_url;
        calls[j].content_type = "application/json";
        calls[j].body = bodies[j];
        calls[j].body_len = strlen(bodies[j]);
    }
    if ((rc = authorization(fs, deadline_ms, &auth, err)) != 0)
        goto out;
    for (size_t j = 0; j < k; j++)
        calls[j].authorization = auth;
    if ((rc = http_perform(fs->http, ptrs, k, deadline_ms, err)) != 0)
        goto out;
    for (size_t j = 0; j < k && !rc; j++) {
        struct http_call *call = &calls[j];
        if (call->failed) {
            rc = d2f_errf(err, D2F_EIO, "batchGet: no answer from Firestore: %s", call->error);
        } else if (call->status != 200) {
            enum retry_status st;
            char msg[512];
            read_status(call, &st, msg, sizeof(msg));
            rc = d2f_errf(err, D2F_EREMOTE, "batchGet refused: %s", msg);
        } else {
            out[j] = json_parse(buf_str(&call->response), call->response.len);
            if (!cJSON_IsArray(out[j]))
                rc = d2f_errf(err, D2F_EREMOTE, "batchGet: the answer is not a JSON array");
        }
    }
out:
    for (size_t j = 0; j < k; j++) {
        calls[j].authorization = NULL;
        http_call_release(&calls[j]);
        cJSON_free(bodies[j]);
        if (rc) {
            cJSON_Delete(out[j]);
            out[j] = NULL;
        }
    }
    free(calls);
    free(ptrs);
    free(bodies);
    return rc;
}

/* Appends s to out with every byte but RFC 3986's unreserved ones percent-encoded: an id may
 * hold '%', '#', '?' or any other byte, which a URL path or query must not carry as it is. */
static int url_escaped(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;

    for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            rc = buf_addc(out, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = buf_add(out, e, 3);
        }
    }
    return rc;
}

int firestore_list(struct firestore *fs, const char *collection, long page_size,
                   const char *page_token, int names_only, int64_t deadline_ms, cJSON **out,
                   struct d2f_err *err)
{
    struct http_call call, *calls[1] = {&call};
    struct buf url;
    cJSON *answer = NULL;
    int rc = 0;

    *out = NULL;
    buf_init(&url, 16384);
    http_call_init(&call, FIRESTORE_MAX_RESPONSE);
    rc = buf_adds(&url, fs->docs_url);
    /* each segment of the collection's path escaped, the slashes between them kept */
    for (const char *seg = collection; !rc && seg;) {
        const char *slash = strchr(seg, '/');
        char part[2048];
        snprintf(part, sizeof(part), "%.*s", slash ? (int)(slash - seg) : (int)strlen(seg), seg);
        if (!(rc = buf_addc(&url, '/')))
            rc = url_escaped(&url, part);
        seg = slash ? slash + 1 : NULL;
    }
    /* names only: a mask of the document's name alone leaves the fields out */
    if (!rc)
        rc = buf_addf(&url, "?pageSize=%ld%s", page_size,
                      names_only ? "&mask.fieldPaths=__name__" : "");
    if (!rc && page_token && page_token[0] && !(rc = buf_adds(&url, "&pageToken=")))
        rc = url_escaped(&url, page_token);
    if (rc) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    call.method = "GET";
    call.url = buf_str(&url);
    if ((rc = authorization(fs, deadline_ms, &call.authorization, err)) != 0 ||
        (rc = http_perform(fs->http, calls, 1, deadline_ms, err)) != 0)
        goto out;
    if (call.failed) {
        rc = d2f_errf(err, D2F_EIO, "listing collection '%s': no answer from Firestore: %s",
                      collection, call.error);
        goto out;
    }
    if (call.status != 200) {
        enum retry_status s;
        char msg[512];
        read_status(&call, &s, msg, sizeof(msg));
        rc = d2f_errf(err,
                      s == RETRY_UNAUTHENTICATED || s == RETRY_PERMISSION_DENIED ? D2F_EAUTH
                                                                                 : D2F_EREMOTE,
                      "listing collection '%s' refused: %s", collection, msg);
        goto out;
    }
    answer = json_parse(buf_str(&call.response), call.response.len);
    if (!cJSON_IsObject(answer)) {
        cJSON_Delete(answer);
        rc = d2f_errf(err, D2F_EREMOTE, "listing collection '%s': the answer is not a JSON object",
                      collection);
        goto out;
    }
    *out = answer;
out:
    call.authorization = NULL;
    http_call_release(&call);
    buf_release(&url);
    return rc;
}
