/* http.c: a thin libcurl layer. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

struct http {
    CURLM *multi;
};

int http_new(struct http **out, struct d2f_err *err)
{
    struct http *h = calloc(1, sizeof(*h));

    *out = NULL;
    if (!h || !(h->multi = curl_multi_init())) {
        free(h);
        return d2f_errf(err, D2F_ENOMEM, "cannot set up libcurl");
    }
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    *out = h;
    return 0;
}

void http_free(struct http *h)
{
    if (!h)
        return;
    curl_multi_cleanup(h->multi);
    free(h);
}

void http_call_init(struct http_call *c, size_t max_response)
{
    memset(c, 0, sizeof(*c));
    buf_init(&c->response, max_response);
    buf_init(&c->headers, 64 * 1024);
}

int http_url_loopback(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int yes = 0;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        yes = strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
              (strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") == strlen(host));
    curl_free(host);
    curl_url_cleanup(u);
    return yes;
}

/* Which protocols a call may use, for itself and its redirects. */
static void restrict_protocols(CURL *e, const struct http_call *c)
{
    int plain = c->plain_http || http_url_loopback(c->url);

#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, plain ? "http,https" : "https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, plain ? "http,https" : "https");
#else
    long p = plain ? CURLPROTO_HTTP | CURLPROTO_HTTPS : CURLPROTO_HTTPS;
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, p);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, p);
#endif
}

/* Errors of TLS itself (a certificate that does not verify, no common cipher, a bad CA file):
 * trying again changes nothing. */
static int tls_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return 1;
    default:
        return 0;
    }
}

static void finish_easy(struct http *h, struct http_call *c)
{
    if (c->easy) {
        if (h)
            curl_multi_remove_handle(h->multi, c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    curl_slist_free_all(c->request_headers);
    c->request_headers = NULL;
}

void http_call_release(struct http_call *c)
{
    if (!c)
        return;
    finish_easy(NULL, c);
    buf_release(&c->response);
    buf_release(&c->headers);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct http_call *c = arg;

    if (buf_add(&c->response, p, size * n) != 0)
        return 0; /* over the cap: curl fails the transfer */
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct http_call *c = arg;

    /* a new response (after a redirect or 100) starts the headers over */
    if (size * n > 5 && memcmp(p, "HTTP/", 5) == 0)
        buf_reset(&c->headers);
    if (buf_add(&c->headers, p, size * n) != 0)
        return 0;
    return size * n;
}

int http_header(const struct http_call *c, const char *name, char *out, size_t cap)
{
    const char *p = buf_str(&c->headers);
    size_t n = strlen(name);

    while (*p) {
        const char *end = strstr(p, "\r\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && p[n] == ':' && strncasecmp(p, name, n) == 0) {
            const char *v = p + n + 1;
            size_t vlen = len - n - 1;
            while (vlen && (*v == ' ' || *v == '\t'))
                v++, vlen--;
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 0;
        }
        if (!end)
            break;
        p = end + 2;
    }
    return -1;
}

static int start(struct http *h, struct http_call *c, int64_t deadline_ms)
{
    char header[8192];
    int64_t left = deadline_ms ? deadline_ms - d2f_now_ms() : 0;
    CURL *e = curl_easy_init();

    if (!e)
        return D2F_ENOMEM;
    c->easy = e;
    c->status = 0;
    c->failed = 0;
    c->tls_failed = 0;
    c->error[0] = '\0';
    buf_reset(&c->response);
    buf_reset(&c->headers);
    if (deadline_ms && left < 1)
        left = 1;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    if (deadline_ms) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(left < 10000 ? left : 10000));
    } else {
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    }
    restrict_protocols(e, c);
    if (c->aws_sigv4) {
        curl_easy_setopt(e, CURLOPT_AWS_SIGV4, c->aws_sigv4);
        curl_easy_setopt(e, CURLOPT_USERPWD, c->userpwd);
    }
    if (c->keep_headers) {
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (c->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    } else if (strcmp(c->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    }
    if (strcmp(c->method, "GET") != 0 && strcmp(c->method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    if (c->content_type) {
        snprintf(header, sizeof(header), "Content-Type: %s", c->content_type);
        c->request_headers = curl_slist_append(c->request_headers, header);
    }
    if (c->authorization) {
        int n = snprintf(header, sizeof(header), "Authorization: %s", c->authorization);
        struct curl_slist *l = n > 0 && (size_t)n < sizeof(header)
                                   ? curl_slist_append(c->request_headers, header)
                                   : NULL;
        memset(header, 0, sizeof(header)); /* the token does not linger on the stack */
        if (!l)
            return D2F_ENOMEM;
        c->request_headers = l;
    }
    for (size_t i = 0; i < 4 && c->extra_headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(c->request_headers, c->extra_headers[i]);
        if (!l)
            return D2F_ENOMEM;
        c->request_headers = l;
    }
    if (c->aws_sigv4) {
        /* libcurl before 8.3 signs every header of the list, an "Expect:" that removes a header
         * too (curl #11664): a signed request carries no such entry; should libcurl add an
         * Expect of its own (bodies over 1 MiB), the body follows without waiting */
        curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    } else {
        struct curl_slist *l = curl_slist_append(c->request_headers, "Expect:");
        if (!l) /* no 100-continue round trip */
            return D2F_ENOMEM;
        c->request_headers = l;
    }
    if (c->request_headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->request_headers);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        return D2F_ENOMEM;
    return 0;
}

int http_start(struct http *h, struct http_call **calls, size_t n, int64_t deadline_ms,
               struct d2f_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (start(h, calls[i], deadline_ms) != 0) {
            http_collect(h, calls, i + 1);
            return d2f_errf(err, D2F_ENOMEM, "cannot start an HTTP request: out of memory");
        }
    }
    return 0;
}

/* Takes in the answers of the transfers that are done. */
static void harvest(struct http *h)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct http_call *c = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (msg->data.result == CURLE_OK) {
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &c->status);
        } else {
            c->failed = 1;
            c->tls_failed = tls_error(msg->data.result);
            c->status = 0;
            snprintf(c->error, sizeof(c->error), "%s", curl_easy_strerror(msg->data.result));
        }
    }
}

int http_wait(struct http *h, int timeout_ms)
{
    int running = 0;

    if (curl_multi_perform(h->multi, &running) != CURLM_OK)
        return 0;
    harvest(h);
    if (running && timeout_ms > 0) {
        if (curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL) != CURLM_OK ||
            curl_multi_perform(h->multi, &running) != CURLM_OK)
            return 0;
        harvest(h);
    }
    return running;
}

void http_collect(struct http *h, struct http_call **calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct http_call *c = calls[i];
        if (!c->easy)
            continue;
        if (!c->failed && c->status == 0) {
            c->failed = 1;
            snprintf(c->error, sizeof(c->error), "no answer by the deadline");
        }
        finish_easy(h, c);
    }
}

int http_perform(struct http *h, struct http_call **calls, size_t n, int64_t deadline_ms,
                 struct d2f_err *err)
{
    int rc = http_start(h, calls, n, deadline_ms, err);

    if (rc)
        return rc;
    while (http_wait(h, 100) > 0)
        ;
    http_collect(h, calls, n);
    return 0;
}
