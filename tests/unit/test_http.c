/* Unit tests for http.c: which URLs are loopback, which protocols a call may use, response
 * headers, and calls to a server on 127.0.0.1 run in this process between the client's steps
 * (the exact request that arrived, the answer, the cap on a body, a deadline already past). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "http.h"

/* A one-connection HTTP server on 127.0.0.1 that the test steps by hand: it takes one
 * request whole, records it, then sends reply (or nothing, when reply is NULL) and closes. */
struct server {
    int listen_fd, fd;
    char url[64];       /* http://127.0.0.1:PORT */
    struct buf request; /* what arrived */
    int request_done;   /* the head and Content-Length bytes of body have arrived */
    const char *reply;  /* what to answer, or NULL: never answer */
    size_t sent;
    int closed;
};

static void server_start(struct server *s, const char *reply)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->reply = reply;
    buf_init(&s->request, 4 * 1024 * 1024);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(s->listen_fd >= 0);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->listen_fd, 4), 0);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &len), 0);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", ntohs(a.sin_port));
}

static void server_stop(struct server *s)
{
    if (s->fd >= 0)
        close(s->fd);
    close(s->listen_fd);
    buf_release(&s->request);
}

/* 1 when the request holds its head and as many body bytes as its Content-Length says. */
static int request_complete(const struct server *s)
{
    const char *head = buf_str(&s->request), *end = strstr(head, "\r\n\r\n"), *cl;

    if (!end)
        return 0;
    cl = strstr(head, "\r\nContent-Length: ");
    if (!cl || cl > end)
        return 1;
    return s->request.len >= (size_t)(end + 4 - head) + strtoul(cl + 18, NULL, 10);
}

/* Does what can be done now without waiting: accept, read, answer. */
static void server_step(struct server *s)
{
    char chunk[65536];
    ssize_t n;

    if (s->fd < 0 && !s->closed) {
        s->fd = accept(s->listen_fd, NULL, NULL);
        if (s->fd >= 0)
            assert_int_equal(fcntl(s->fd, F_SETFL, O_NONBLOCK), 0);
    }
    if (s->fd < 0)
        return;
    while (!s->request_done && (n = recv(s->fd, chunk, sizeof(chunk), 0)) > 0) {
        assert_int_equal(buf_add(&s->request, chunk, (size_t)n), 0);
        s->request_done = request_complete(s);
    }
    if (!s->request_done || !s->reply)
        return;
    while (s->sent < strlen(s->reply) &&
           (n = send(s->fd, s->reply + s->sent, strlen(s->reply) - s->sent, MSG_NOSIGNAL)) > 0)
        s->sent += (size_t)n;
    if (s->sent == strlen(s->reply)) {
        close(s->fd);
        s->fd = -1;
        s->closed = 1;
    }
}

/* Runs the calls against s until they end (the wait in each step is curl's own, bounded). */
static void run(struct http *h, struct http_call **calls, size_t n, int64_t deadline_ms,
                struct server *s)
{
    struct d2f_err err = {0};

    assert_int_equal(http_start(h, calls, n, deadline_ms, &err), 0);
    for (int i = 0; i < 2000; i++) {
        int running = http_wait(h, 5);
        if (s)
            server_step(s);
        if (!running)
            break;
    }
    http_collect(h, calls, n);
}

static int setup(void **state)
{
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

/* Loopback is the host itself, never a name or a query that only looks like it. */
static void test_url_loopback(void **state)
{
    static const struct {
        const char *url;
        int loopback;
    } cases[] = {
        {"http://localhost:8080/x", 1},
        {"http://LocalHost/", 1},
        {"http://127.0.0.1:9001/2018-06-01/runtime", 1},
        {"https://127.5.6.7/", 1},
        {"http://[::1]:9/", 1},
        {"http://127.0.0.1.example.com/", 0},
        {"http://localhost.example.com/", 0},
        {"http://127.0.0.1@example.com/", 0},
        {"http://example.com/?host=127.0.0.1", 0},
        {"http://example.com/localhost", 0},
        {"http://10.0.0.1/", 0},
        {"http://[::2]/", 0},
        {"https://firestore.googleapis.com/v1/", 0},
        {"not a url", 0},
        {"", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (http_url_loopback(cases[i].url) != cases[i].loopback)
            fail_msg("'%s': loopback %d, expected %d", cases[i].url, !cases[i].loopback,
                     cases[i].loopback);
}

/* A response header by name: any case, the value trimmed, cut to fit, a name that is only a
 * prefix of another never matching it; the headers of a response after a 100 only. */
static void test_response_headers(void **state)
{
    struct http_call c;
    char v[16];

    (void)state;
    http_call_init(&c, 1024);
    assert_int_equal(buf_adds(&c.headers, "HTTP/1.1 200 OK\r\n"
                                          "Content-Type: application/json\r\n"
                                          "X-Padded: \t  some value \t\r\n"
                                          "lambda-runtime-aws-request-id: 8f5e-2b1c\r\n"
                                          "X-Empty:\r\n"
                                          "X-Long: 0123456789abcdefghij\r\n"
                                          "\r\n"),
                     0);
    assert_int_equal(http_header(&c, "content-type", v, sizeof(v)), 0);
    assert_string_equal(v, "application/jso"); /* 15 bytes and the NUL */
    assert_int_equal(http_header(&c, "X-PADDED", v, sizeof(v)), 0);
    assert_string_equal(v, "some value");
    assert_int_equal(http_header(&c, "Lambda-Runtime-Aws-Request-Id", v, sizeof(v)), 0);
    assert_string_equal(v, "8f5e-2b1c");
    assert_int_equal(http_header(&c, "X-Empty", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    assert_int_equal(http_header(&c, "X-Long", v, sizeof(v)), 0);
    assert_string_equal(v, "0123456789abcde");
    assert_int_equal(http_header(&c, "Content", v, sizeof(v)), -1);
    assert_int_equal(http_header(&c, "X-Missing", v, sizeof(v)), -1);
    http_call_release(&c);
}

/* One POST to the server: the request as it arrived (method, path, each header the call set,
 * the body's bytes exactly, NULs among them, with no Expect: libcurl would add one to a body
 * over 1 MiB and wait for a 100 first), the answer's status, body and headers. */
static void test_request_and_answer(void **state)
{
    static const char reply[] = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Answer:  yes \r\n"
                                "Connection: close\r\n\r\nhello";
    enum { BODY = 1536 * 1024 };
    struct http *h = NULL;
    struct http_call c, *calls[1] = {&c};
    struct server s;
    struct d2f_err err = {0};
    char url[128], v[32], *body = malloc(BODY);
    const char *request, *sent_body;

    (void)state;
    assert_non_null(body);
    for (size_t i = 0; i < BODY; i++)
        body[i] = (char)(i * 7 % 251);
    server_start(&s, reply);
    snprintf(url, sizeof(url), "%s/v1/things:commit", s.url);
    assert_int_equal(http_new(&h, &err), 0);
    http_call_init(&c, 1024);
    c.method = "POST";
    c.url = url;
    c.content_type = "application/json";
    c.authorization = "Bearer t0k3n";
    c.extra_headers[0] = "X-Goog-Request-Params: database=d";
    c.body = body;
    c.body_len = BODY;
    c.keep_headers = 1;
    run(h, calls, 1, d2f_now_ms() + 10000, &s);

    assert_true(s.request_done);
    request = s.request.data;
    assert_memory_equal(request, "POST /v1/things:commit HTTP/1.1\r\n", 33);
    assert_non_null(strstr(request, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(request, "\r\nAuthorization: Bearer t0k3n\r\n"));
    assert_non_null(strstr(request, "\r\nX-Goog-Request-Params: database=d\r\n"));
    assert_non_null(strstr(request, "\r\nContent-Length: 1572864\r\n"));
    assert_null(strstr(request, "Expect:"));
    sent_body = strstr(request, "\r\n\r\n") + 4;
    assert_int_equal(s.request.len - (size_t)(sent_body - request), BODY);
    assert_memory_equal(sent_body, body, BODY);

    assert_int_equal(c.failed, 0);
    assert_int_equal(c.status, 201);
    assert_int_equal(c.response.len, 5);
    assert_string_equal(c.response.data, "hello");
    assert_int_equal(http_header(&c, "x-answer", v, sizeof(v)), 0);
    assert_string_equal(v, "yes");
    http_call_release(&c);
    http_free(h);
    server_stop(&s);
    free(body);
}

/* One call each, to a server of its own: a GET sends no body and another method is sent as
 * itself; calls that get no answer to use fail, with no status and not as TLS failures: a body
 * over the call's cap (no partial answer taken as one), and a server that never answers when
 * the deadline is already past (the call still gets its 1 ms, then times out). */
static void test_one_call_each(void **state)
{
    static const char not_found[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                    "Connection: close\r\n\r\n";
    static const char over_cap[] = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close"
                                   "\r\n\r\n0123456789abcdefghij";
    static const struct {
        const char *method, *reply;
        size_t max_response;
        int64_t deadline_in_ms;
        long status;
        const char *error; /* NULL: answered */
        const char *line;  /* the request line that arrived */
    } cases[] = {
        {"GET", not_found, 1024, 10000, 404, NULL, "GET /x HTTP/1.1\r\n"},
        {"DELETE", not_found, 1024, 10000, 404, NULL, "DELETE /x HTTP/1.1\r\n"},
        {"GET", over_cap, 10, 10000, 0, "Failed writing received data to disk/application",
         "GET /x HTTP/1.1\r\n"},
        {"GET", NULL, 1024, -60000, 0, "Timeout was reached", NULL},
    };
    struct http *h = NULL;
    struct d2f_err err = {0};

    (void)state;
    assert_int_equal(http_new(&h, &err), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_call c, *calls[1] = {&c};
        struct server s;
        char url[128];
        int64_t start = d2f_now_ms();
        server_start(&s, cases[i].reply);
        snprintf(url, sizeof(url), "%s/x", s.url);
        http_call_init(&c, cases[i].max_response);
        c.method = cases[i].method;
        c.url = url;
        run(h, calls, 1, start + cases[i].deadline_in_ms, &s);
        if (cases[i].line) {
            assert_memory_equal(s.request.data, cases[i].line, strlen(cases[i].line));
            assert_null(strstr(s.request.data, "Content-Length"));
        }
        assert_int_equal(c.failed, cases[i].error != NULL);
        assert_int_equal(c.tls_failed, 0);
        assert_int_equal(c.status, cases[i].status);
        assert_string_equal(c.error, cases[i].error ? cases[i].error : "");
        if (!cases[i].error)
            assert_int_equal(c.response.len, 0);
        assert_true(d2f_now_ms() - start < 5000);
        http_call_release(&c);
        server_stop(&s);
    }
    http_free(h);
}

/* Plain http only to a loopback host (or with plain_http): to any other host the call fails
 * before a connection, as a failure no retry mends. */
static void test_https_only(void **state)
{
    struct http *h = NULL;
    struct http_call c, *calls[1] = {&c};
    struct d2f_err err = {0};

    (void)state;
    assert_int_equal(http_new(&h, &err), 0);
    http_call_init(&c, 1024);
    c.method = "POST";
    c.url = "http://firestore.googleapis.com/v1/projects/p/databases/(default)/documents:commit";
    c.body = "{}";
    c.body_len = 2;
    run(h, calls, 1, d2f_now_ms() + 10000, NULL);
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.tls_failed, 1);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.error, "Unsupported protocol");
    http_call_release(&c);
    http_free(h);
}

/* A call collected before it ends fails as unanswered by the deadline. */
static void test_collected_unanswered(void **state)
{
    struct http *h = NULL;
    struct http_call c, *calls[1] = {&c};
    struct server s;
    struct d2f_err err = {0};

    (void)state;
    server_start(&s, NULL);
    assert_int_equal(http_new(&h, &err), 0);
    http_call_init(&c, 1024);
    c.method = "GET";
    c.url = s.url;
    assert_int_equal(http_start(h, calls, 1, d2f_now_ms() + 60000, &err), 0);
    http_collect(h, calls, 1);
    assert_int_equal(c.failed, 1);
    assert_string_equal(c.error, "no answer by the deadline");
    assert_null(c.easy);
    http_call_release(&c);
    http_free(h);
    server_stop(&s);
}

/* The clock is the epoch's, in ms. */
static void test_now(void **state)
{
    int64_t before = (int64_t)time(NULL) * 1000, now = d2f_now_ms();

    (void)state;
    assert_true(now >= before && now < before + 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_loopback),
        cmocka_unit_test(test_response_headers),
        cmocka_unit_test(test_request_and_answer),
        cmocka_unit_test(test_one_call_each),
        cmocka_unit_test(test_https_only),
        cmocka_unit_test(test_collected_unanswered),
        cmocka_unit_test(test_now),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
