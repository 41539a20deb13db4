/* firestore.c: the Firestore REST v1 client. */
#include "firestore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "log.h"

struct firestore {
    struct http *http;
    struct gauth *auth; /* NULL with the emulator */
    int emulator;       /* 1: FIRESTORE_EMULATOR_HOST, plain HTTP to any host */
    char *commit_url;
    char *batch_get_url;
    char *begin_url;
    char *rollback_url;
    char *docs_prefix;
    char *target;   /* base URL and documents' prefix: whose fences */
    char *docs_url; /* base + docs_prefix: where a collection is listed */
    /* transactions begun ahead, with the commits in flight, so that a wave of commits with
     * creates does not wait a round trip for its transactions */
    char *pool[FIRESTORE_POOL];
    int64_t pool_began[FIRESTORE_POOL];
    size_t npool;
    size_t pool_want;                       /* how many to keep ready: the largest ask */
    struct http_call ahead[FIRESTORE_POOL]; /* beginTransaction calls in flight */
    size_t nahead;
    int64_t ahead_began;
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
    fs->emulator = cfg->emulator != NULL;
    if (cfg->emulator) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "emulator", cfg->emulator);
        log_write(LOG_WARN,
                  "writing to a Firestore emulator (FIRESTORE_EMULATOR_HOST): plain HTTP, no "
                  "credentials, nothing reaches Google's Firestore",
                  f);
    }
    /* "projects/P/databases/D/documents" + ":commit" and ":batchGet" */
    fs->commit_url = joined(base, fs->docs_prefix, ":commit");
    fs->batch_get_url = joined(base, fs->docs_prefix, ":batchGet");
    fs->begin_url = joined(base, fs->docs_prefix, ":beginTransaction");
    fs->rollback_url = joined(base, fs->docs_prefix, ":rollback");
    fs->target = joined(base, fs->docs_prefix, "");
    fs->docs_url = joined(base, fs->docs_prefix, "");
    if (!fs->commit_url || !fs->batch_get_url || !fs->begin_url || !fs->rollback_url ||
        !fs->target || !fs->docs_url) {
        firestore_free(fs);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    *out = fs;
    return 0;
}

int firestore_names(struct firestore **out, const char *project, const char *database,
                    struct d2f_err *err)
{
    char db[1024];
    struct firestore *fs = calloc(1, sizeof(*fs));

    *out = NULL;
    if (firestore_docs_path(db, sizeof(db), project, database) != 0) {
        free(fs);
        return d2f_errf(err, D2F_ECONFIG, "the project '%.64s' or database '%.64s' is too long",
                        project, database);
    }
    if (!fs || !(fs->docs_prefix = strdup(db))) {
        free(fs);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    *out = fs;
    return 0;
}

int firestore_docs_path(char *out, size_t cap, const char *project, const char *database)
{
    int n = snprintf(out, cap, "projects/%s/databases/%s/documents", project, database);

    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void firestore_free(struct firestore *fs)
{
    if (!fs)
        return;
    free(fs->commit_url);
    free(fs->batch_get_url);
    free(fs->begin_url);
    free(fs->rollback_url);
    free(fs->docs_prefix);
    free(fs->target);
    free(fs->docs_url);
    for (size_t i = 0; i < fs->npool; i++)
        free(fs->pool[i]);
    for (size_t i = 0; i < fs->nahead; i++)
        http_call_release(&fs->ahead[i]);
    free(fs);
}

const char *firestore_docs_prefix(const struct firestore *fs)
{
    return fs->docs_prefix;
}

const char *firestore_target(const struct firestore *fs)
{
    return fs->target ? fs->target : fs->docs_prefix;
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
    cJSON *body = NULL;
    const cJSON *e, *s, *m;

    if (json_parse_status(buf_str(&call->response), call->response.len, NULL, &body) ==
        D2F_ENOMEM) {
        /* unread, the answer says nothing: its HTTP status alone would take a refused
         * precondition (400) for a write refused for good; it is tried again */
        *status = RETRY_NETWORK;
        snprintf(message, cap, "HTTP %ld: out of memory reading the answer", call->status);
        return;
    }
    e = cJSON_IsArray(body) ? cJSON_GetArrayItem(body, 0) : body;
    e = cJSON_GetObjectItemCaseSensitive(e, "error");
    s = cJSON_GetObjectItemCaseSensitive(e, "status");
    m = cJSON_GetObjectItemCaseSensitive(e, "message");
    *status = cJSON_IsString(s) ? retry_status_from_name(s->valuestring)
                                : retry_status_from_http(call->status);
    if (*status == RETRY_OK)
        *status = RETRY_UNKNOWN;
    int k = snprintf(message, cap, "HTTP %ld %s: ", call->status, retry_status_name(*status));
    if (k >= 0 && (size_t)k < cap) /* the server's text may quote a U+0000 of a name */
        json_text_message(cJSON_IsString(m) ? m->valuestring : "(no message)", message + k,
                          cap - (size_t)k);
    cJSON_Delete(body);
}

static int txn_of(const struct http_call *call, char **txn, struct d2f_err *err);

static const char begin_body[] = "{\"options\":{\"readWrite\":{}}}";

int firestore_commit_start(struct firestore *fs, struct firestore_commit **c, size_t n,
                           int64_t deadline_ms, struct d2f_err *err)
{
    struct http_call **calls = calloc(n + FIRESTORE_POOL, sizeof(*calls));
    const char *auth = NULL;
    size_t ahead = 0;
    int rc;

    if (!calls)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    if ((rc = authorization(fs, deadline_ms, &auth, err)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct http_call *call = &c[i]->call;
        call->method = "POST";
        call->plain_http = fs->emulator;
        call->url = fs->commit_url;
        call->content_type = "application/json";
        call->authorization = auth;
        call->body = c[i]->body.data;
        call->body_len = c[i]->body.len;
        calls[i] = call;
    }
    while (!fs->nahead && fs->npool + ahead < fs->pool_want) {
        struct http_call *call = &fs->ahead[ahead];
        http_call_init(call, 64 * 1024);
        call->method = "POST";
        call->url = fs->begin_url;
        call->content_type = "application/json";
        call->authorization = auth;
        call->body = begin_body;
        call->body_len = strlen(begin_body);
        calls[n + ahead++] = call;
    }
    fs->nahead = ahead;
    fs->ahead_began = d2f_now_ms();
    rc = http_start(fs->http, calls, n + ahead, deadline_ms, err);
    for (size_t i = 0; i < n; i++)
        c[i]->call.authorization = NULL; /* curl has its copy */
    for (size_t i = 0; i < ahead; i++)
        fs->ahead[i].authorization = NULL;
    if (rc) {
        for (size_t i = 0; i < ahead; i++)
            http_call_release(&fs->ahead[i]);
        fs->nahead = 0;
    }
out:
    free(calls);
    return rc;
}

/* A call that got no answer: a TLS failure says so (no retry helps), anything else is no answer. */
static int no_answer(const char *what, const struct http_call *call, struct d2f_err *err)
{
    if (call->tls_failed)
        return d2f_errf(err, D2F_EUNREACHABLE,
                        "%s: TLS failed, not retried: %s (check DDB2FS_FIRESTORE_ENDPOINT and the "
                        "CA certificates)",
                        what, call->error);
    return d2f_errf(err, D2F_EUNREACHABLE, "%s: no answer from Firestore: %s", what, call->error);
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
        if (call->tls_failed) {
            c[i]->status = RETRY_TLS;
            snprintf(c[i]->message, sizeof(c[i]->message),
                     "TLS failed, not retried: %s (check DDB2FS_FIRESTORE_ENDPOINT and the CA "
                     "certificates)",
                     call->error);
        } else if (call->failed) {
            c[i]->status = RETRY_NETWORK;
            snprintf(c[i]->message, sizeof(c[i]->message), "no answer: %s", call->error);
        } else if (call->status == 200) {
            c[i]->status = RETRY_OK;
            c[i]->message[0] = '\0';
        } else {
            read_status(call, &c[i]->status, c[i]->message, sizeof(c[i]->message));
        }
    }
    for (size_t i = 0; i < fs->nahead; i++) {
        struct http_call *call = &fs->ahead[i], *one[1] = {call};
        char *txn = NULL;
        struct d2f_err ahead_err = {0};

        http_collect(fs->http, one, 1);
        /* one that failed is simply not in the pool: the next wave asks for it again */
        if (txn_of(call, &txn, &ahead_err) == 0 && fs->npool < FIRESTORE_POOL) {
            fs->pool_began[fs->npool] = fs->ahead_began;
            fs->pool[fs->npool++] = txn;
        } else {
            free(txn);
        }
        http_call_release(call);
    }
    fs->nahead = 0;
}

/* k batchGets at once (see firestore_batch_get_many); with no_fields, a mask with no field
 * paths: names and update times only. */
static int batch_get(struct firestore *fs, const char *const *const *names, const size_t *counts,
                     size_t k, int no_fields, int64_t deadline_ms, cJSON **out, struct d2f_err *err)
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
        if (list && no_fields) {
            cJSON *mask = cJSON_AddObjectToObject(req, "mask");
            if (!mask || !cJSON_AddArrayToObject(mask, "fieldPaths"))
                list = NULL;
        }
        bodies[j] = list ? json_print(req) : NULL;
        cJSON_Delete(req);
        http_call_init(&calls[j], FIRESTORE_MAX_RESPONSE);
        ptrs[j] = &calls[j];
        if (!bodies[j]) {
            d2f_errf(err, rc, "out of memory");
            goto out;
        }
        calls[j].method = "POST";
        calls[j].plain_http = fs->emulator;
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
            rc = no_answer("batchGet", call, err);
        } else if (call->status != 200) {
            enum retry_status st;
            char msg[512];
            read_status(call, &st, msg, sizeof(msg));
            rc = d2f_errf(err, D2F_EREMOTE, "batchGet refused: %s", msg);
        } else if (json_parse_status(buf_str(&call->response), call->response.len, NULL, &out[j]) ==
                   D2F_ENOMEM) {
            rc = d2f_errf(err, D2F_ENOMEM, "batchGet: out of memory reading the answer");
        } else if (!cJSON_IsArray(out[j])) {
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
    call.plain_http = fs->emulator;
    call.url = buf_str(&url);
    if ((rc = authorization(fs, deadline_ms, &call.authorization, err)) != 0 ||
        (rc = http_perform(fs->http, calls, 1, deadline_ms, err)) != 0)
        goto out;
    if (call.failed) {
        rc = no_answer("listing a collection", &call, err);
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

int firestore_batch_get_many(struct firestore *fs, const char *const *const *names,
                             const size_t *counts, size_t k, int64_t deadline_ms, cJSON **out,
                             struct d2f_err *err)
{
    return batch_get(fs, names, counts, k, 0, deadline_ms, out, err);
}

int firestore_batch_get(struct firestore *fs, const char *const *names, size_t n,
                        int64_t deadline_ms, void **out, struct d2f_err *err)
{
    cJSON *answer = NULL;
    int rc = batch_get(fs, &names, &n, 1, 0, deadline_ms, &answer, err);

    *out = answer;
    return rc;
}

/* Whether a server's timestamp or transaction id may go into a request as it is: RFC 3339 and
 * base64 characters only, and not empty. */
static int plain(const char *s, size_t cap)
{
    size_t n = strlen(s);

    return n && n < cap &&
           strspn(s, "0123456789:.-+TZ_/=ABCDEFGHIJKLMNOPQRSUVWXYabcdefghijklmnopqrstuvwxyz") == n;
}

int firestore_commit_times(const struct firestore_commit *c, char **dst, size_t n, size_t cap,
                           struct d2f_err *err)
{
    cJSON *body = NULL;
    const cJSON *results, *r;
    size_t i = 0;
    int rc = json_parse_status(buf_str(&c->call.response), c->call.response.len, NULL, &body);

    results = cJSON_GetObjectItemCaseSensitive(body, "writeResults");
    if (rc == D2F_ENOMEM) {
        rc = d2f_errf(err, rc, "commit: out of memory reading the answer");
        goto out;
    }
    rc = 0;
    if (!cJSON_IsArray(results) || (size_t)cJSON_GetArraySize(results) != n) {
        rc = d2f_errf(err, D2F_EREMOTE, "commit: the answer does not hold %zu writeResults", n);
        goto out;
    }
    cJSON_ArrayForEach(r, results)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "updateTime");
        if (cJSON_IsString(t) && !plain(t->valuestring, cap)) {
            rc = d2f_errf(err, D2F_EREMOTE, "commit: writeResults[%zu] has a bad updateTime", i);
            goto out;
        }
        snprintf(dst[i++], cap, "%s", cJSON_IsString(t) ? t->valuestring : "");
    }
out:
    cJSON_Delete(body);
    return rc;
}

/* Sets up a POST of body to url with the client's authorization. */
static int post_call(struct firestore *fs, struct http_call *call, const char *url,
                     const char *body, int64_t deadline_ms, struct d2f_err *err)
{
    call->method = "POST";
    call->url = url;
    call->content_type = "application/json";
    call->body = body;
    call->body_len = strlen(body);
    return authorization(fs, deadline_ms, &call->authorization, err);
}

/* The transaction a beginTransaction call got into *txn (the caller frees it). */
static int txn_of(const struct http_call *call, char **txn, struct d2f_err *err)
{
    cJSON *answer;
    const cJSON *t;
    int rc = 0;

    *txn = NULL;
    if (call->failed)
        return no_answer("beginTransaction", call, err);
    if (call->status != 200) {
        enum retry_status s;
        char msg[512];
        read_status(call, &s, msg, sizeof(msg));
        return d2f_errf(err, D2F_EREMOTE, "beginTransaction refused: %s", msg);
    }
    if (json_parse_status(buf_str(&call->response), call->response.len, NULL, &answer) ==
        D2F_ENOMEM)
        return d2f_errf(err, D2F_ENOMEM, "beginTransaction: out of memory reading the answer");
    t = cJSON_GetObjectItemCaseSensitive(answer, "transaction");
    if (!cJSON_IsString(t) || !plain(t->valuestring, 4096))
        rc = d2f_errf(err, D2F_EREMOTE, "beginTransaction: the answer has no transaction");
    else if (!(*txn = strdup(t->valuestring)))
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
    cJSON_Delete(answer);
    return rc;
}

int firestore_begin(struct firestore *fs, char **txns, int64_t *began, size_t n,
                    int64_t deadline_ms, struct d2f_err *err)
{
    struct http_call *calls = NULL;
    struct http_call **pc = NULL;
    int64_t now = d2f_now_ms();
    size_t have = 0, need;
    int rc = 0;

    if (n > fs->pool_want)
        fs->pool_want = n < FIRESTORE_POOL ? n : FIRESTORE_POOL;
    /* the pool first, newest last; those begun long ago may be closed for idleness */
    while (have < n && fs->npool) {
        size_t j = --fs->npool;
        if (now - fs->pool_began[j] > FIRESTORE_POOL_MAX_AGE_MS) {
            free(fs->pool[j]);
            continue;
        }
        txns[have] = fs->pool[j];
        began[have++] = fs->pool_began[j];
    }
    need = n - have;
    if (!need)
        return 0;
    calls = calloc(need, sizeof(*calls));
    pc = calloc(need, sizeof(*pc));
    if (!calls || !pc) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < need; i++) {
        http_call_init(&calls[i], 64 * 1024);
        pc[i] = &calls[i];
        if (!rc)
            rc = post_call(fs, &calls[i], fs->begin_url, begin_body, deadline_ms, err);
    }
    if (!rc)
        rc = http_perform(fs->http, pc, need, deadline_ms, err);
    for (size_t i = 0; i < need && !rc; i++) {
        if ((rc = txn_of(&calls[i], &txns[have], err)) == 0)
            began[have++] = now;
    }
out:
    for (size_t i = 0; calls && i < need; i++) {
        calls[i].authorization = NULL;
        http_call_release(&calls[i]);
    }
    if (rc) {
        for (size_t i = 0; i < have; i++) {
            free(txns[i]);
            txns[i] = NULL;
        }
    }
    free(calls);
    free(pc);
    return rc;
}

int firestore_rollback(struct firestore *fs, const char *txn, int64_t deadline_ms,
                       struct d2f_err *err)
{
    struct http_call call, *calls[1] = {&call};
    cJSON *req = cJSON_CreateObject();
    char *body = NULL;
    int rc;

    http_call_init(&call, 64 * 1024);
    if (!req || !cJSON_AddStringToObject(req, "transaction", txn) || !(body = json_print(req))) {
        rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = post_call(fs, &call, fs->rollback_url, body, deadline_ms, err)) != 0 ||
        (rc = http_perform(fs->http, calls, 1, deadline_ms, err)) != 0)
        goto out;
    if (call.failed) {
        rc = no_answer("rollback", &call, err);
    } else if (call.status != 200) {
        enum retry_status s;
        char msg[512];
        read_status(&call, &s, msg, sizeof(msg));
        /* an unknown, closed or expired transaction: it cannot commit either */
        if (s != RETRY_INVALID_ARGUMENT)
            rc = d2f_errf(err, D2F_EREMOTE, "rollback refused: %s", msg);
    }
out:
    call.authorization = NULL;
    http_call_release(&call);
    cJSON_free(body);
    cJSON_Delete(req);
    return rc;
}

int firestore_update_times(struct firestore *fs, const char *const *names, size_t n,
                           int64_t deadline_ms, char **dst, size_t cap, struct d2f_err *err)
{
    cJSON *answer = NULL;
    const cJSON *a;
    size_t seen = 0;
    int rc = batch_get(fs, &names, &n, 1, 1, deadline_ms, &answer, err);

    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        dst[i][0] = '\0';
    cJSON_ArrayForEach(a, answer)
    {
        const cJSON *found = cJSON_GetObjectItemCaseSensitive(a, "found");
        const cJSON *missing = cJSON_GetObjectItemCaseSensitive(a, "missing");
        const cJSON *name = found ? cJSON_GetObjectItemCaseSensitive(found, "name") : missing;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(found, "updateTime");

        if (!cJSON_IsString(name) || (found && (!cJSON_IsString(t) || !plain(t->valuestring, cap))))
            continue;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(names[i], name->valuestring) == 0) {
                snprintf(dst[i], cap, "%s", found ? t->valuestring : "");
                seen++;
                break;
            }
        }
    }
    cJSON_Delete(answer);
    if (seen != n)
        return d2f_errf(err, D2F_EREMOTE, "batchGet: %zu of %zu documents in the answer", seen, n);
    return 0;
}
