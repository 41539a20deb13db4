/*
 * http.h: a thin libcurl layer: calls run in parallel over one multi handle, which keeps
 * connections alive between calls (HTTP/2 where the server offers it). TLS verification stays
 * on; a call speaks https only (http to a loopback host, or to an emulator when asked), on
 * redirects too; every call ends by the caller's deadline; every response body is capped.
 *
 * Calling sequence
 *   http_new(&h, &err);
 *   http_call_init(&c, cap); c.method = "POST"; c.url = …; c.body = …;
 *   http_perform(h, calls, n, deadline_ms, &err);   then c.status / c.response / c.failed
 *   http_call_release(&c); http_free(h);
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "d2f.h"

struct http;

struct http_call {
    /* the request, set by the caller; the strings must live until http_perform returns */
    const char *method;           /* "GET" or "POST" */
    const char *url;              /* absolute URL */
    const char *content_type;     /* Content-Type of body, or NULL */
    const char *authorization;    /* the Authorization header's value, or NULL; never logged */
    const char *body;             /* request body, or NULL */
    size_t body_len;              /* bytes at body */
    const char *extra_headers[4]; /* more request headers, "Name: value", NULL after the last */
    const char *aws_sigv4;        /* sign with AWS SigV4 ("aws:amz:REGION:SERVICE"), or NULL */
    const char *userpwd;          /* "access key:secret key" for aws_sigv4; never logged */
    int keep_headers;             /* 1: keep the response's header lines in headers */
    int plain_http;               /* 1: http:// to any host (an emulator); else loopback only */
    /* the answer, filled by http_perform */
    long status;         /* HTTP status; 0 when no answer came */
    struct buf headers;  /* the response's header lines, when keep_headers */
    struct buf response; /* response body, up to the cap given at init */
    int failed;          /* 1 when no complete answer came (network, timeout, cap) */
    int tls_failed;      /* 1 when that was TLS: verification or setup; no retry will help */
    char error[256];     /* why, when failed */
    /* private */
    void *easy;
    void *request_headers;
};

/* A client; one per process. */
int http_new(struct http **out, struct d2f_err *err) D2F_WUR;

/* Frees the client and its connections; accepts NULL. */
void http_free(struct http *h);

/* Sets up a call whose response body may grow to max_response bytes. */
void http_call_init(struct http_call *c, size_t max_response);

/* Frees what a call holds; it may be set up again with http_call_init. */
void http_call_release(struct http_call *c);

/* Runs n calls at once until all are answered or deadline_ms (epoch ms) passes (0: no total
 * timeout, as the Runtime API's invocation/next wants); a call that did not finish has failed
 * set. Returns 0, or D2F_ENOMEM when a call could not start. */
int http_perform(struct http *h, struct http_call **calls, size_t n, int64_t deadline_ms,
                 struct d2f_err *err) D2F_WUR;

/* The same in steps, so that the caller can work while calls are in flight: http_start adds
 * the calls, http_wait drives them for up to timeout_ms and returns how many still run, and
 * http_collect ends them (a call not finished by then has failed set). */
int http_start(struct http *h, struct http_call **calls, size_t n, int64_t deadline_ms,
               struct d2f_err *err) D2F_WUR;
int http_wait(struct http *h, int timeout_ms);
void http_collect(struct http *h, struct http_call **calls, size_t n);

/* The value of response header name (case-insensitive) into out (cap bytes, trimmed);
 * 0 when found, -1 when not. */
int http_header(const struct http_call *c, const char *name, char *out, size_t cap);

/* 1 when url's host is a loopback name or address (localhost, 127.0.0.0/8, ::1). */
int http_url_loopback(const char *url);

#endif
