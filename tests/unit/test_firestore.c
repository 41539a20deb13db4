/* Tests of firestore.c against the local Firestore server (tests/servers/firestore_server.py,
 * started here): commits and their statuses, batchGet, and the emulator's plain HTTP. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "firestore.h"

static pid_t server;
static char host[64];
static const char *env_emulator;

/* Sends commits and waits for their answers. */
static int commit_all(struct firestore *fs, struct firestore_commit **c, size_t n,
                      struct d2f_err *err)
{
    int rc = firestore_commit_start(fs, c, n, d2f_now_ms() + 10000, err);

    if (rc)
        return rc;
    while (firestore_commit_wait(fs, 100) > 0)
        ;
    firestore_commit_finish(fs, c, n);
    return 0;
}

static const char *get(const char *name)
{
    if (strcmp(name, "FIRESTORE_EMULATOR_HOST") == 0)
        return env_emulator;
    if (strcmp(name, "GOOGLE_CLOUD_PROJECT") == 0)
        return "demo-project";
    return NULL;
}

static int setup(void **state)
{
    int fds[2];
    char line[64] = "";
    FILE *f;

    (void)state;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || pipe(fds) != 0)
        return -1;
    server = fork();
    if (server == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execlp(PYTHON, PYTHON, SERVERS "/firestore_server.py", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof(line), f) || strncmp(line, "port ", 5) != 0)
        return -1;
    snprintf(host, sizeof(host), "127.0.0.1:%d", atoi(line + 5));
    fclose(f);
    env_emulator = host;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    curl_global_cleanup();
    return 0;
}

static void test_commit_and_batch_get(void **state)
{
    struct config cfg;
    struct http *http = NULL;
    struct firestore *fs = NULL;
    struct firestore_commit good, bad, *both[2] = {&good, &bad};
    struct d2f_err err = {0};
    const char *prefix;
    char body[1024];
    cJSON *answers = NULL;
    const char *names[2];
    char n1[256], n2[256];
    void *out = NULL;

    (void)state;
    assert_int_equal(config_load(&cfg, get, &err), 0);
    assert_int_equal(http_new(&http, &err), 0);
    assert_int_equal(firestore_new(&fs, &cfg, http, NULL, &err), 0);
    prefix = firestore_docs_prefix(fs);
    assert_string_equal(prefix, "projects/demo-project/databases/(default)/documents");
    firestore_commit_init(&good);
    firestore_commit_init(&bad);
    snprintf(body, sizeof(body),
             "{\"writes\":[{\"update\":{\"name\":\"%s/T/a\",\"fields\":{\"n\":{\"integerValue\":"
             "\"7\"}}}}]}",
             prefix);
    assert_int_equal(buf_adds(&good.body, body), 0);
    snprintf(body, sizeof(body),
             "{\"writes\":[{\"update\":{\"name\":\"%s/T/b\",\"fields\":{\"l\":{\"arrayValue\":{"
             "\"values\":[{\"arrayValue\":{}}]}}}}}]}",
             prefix);
    assert_int_equal(buf_adds(&bad.body, body), 0);
    assert_int_equal(commit_all(fs, both, 2, &err), 0);
    assert_int_equal(good.status, RETRY_OK);
    assert_int_equal(bad.status, RETRY_INVALID_ARGUMENT);
    assert_non_null(strstr(bad.message, "HTTP 400 INVALID_ARGUMENT"));
    assert_non_null(strstr(bad.message, "array value in an array value"));

    snprintf(n1, sizeof(n1), "%s/T/a", prefix);
    snprintf(n2, sizeof(n2), "%s/T/b", prefix);
    names[0] = n1;
    names[1] = n2;
    assert_int_equal(firestore_batch_get(fs, names, 2, d2f_now_ms() + 10000, &out, &err), 0);
    answers = out;
    assert_int_equal(cJSON_GetArraySize(answers), 2);
    assert_string_equal(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(answers, 0), "found"),
                                    "fields"),
                "n"),
            "integerValue")
            ->valuestring,
        "7");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(answers, 1), "missing")->valuestring,
                        n2);
    cJSON_Delete(answers);
    firestore_commit_release(&good);
    firestore_commit_release(&bad);
    firestore_free(fs);
    http_free(http);
    config_release(&cfg);
}

static void test_no_answer(void **state)
{
    struct config cfg;
    struct http *http = NULL;
    struct firestore *fs = NULL;
    struct firestore_commit c, *one[1] = {&c};
    struct d2f_err err = {0};

    (void)state;
    env_emulator = "127.0.0.1:9"; /* nothing listens there */
    assert_int_equal(config_load(&cfg, get, &err), 0);
    assert_int_equal(http_new(&http, &err), 0);
    assert_int_equal(firestore_new(&fs, &cfg, http, NULL, &err), 0);
    firestore_commit_init(&c);
    assert_int_equal(buf_adds(&c.body, "{\"writes\":[]}"), 0);
    assert_int_equal(commit_all(fs, one, 1, &err), 0);
    assert_int_equal(c.status, RETRY_NETWORK);
    assert_true(retry_transient(c.status));
    firestore_commit_release(&c);
    firestore_free(fs);
    http_free(http);
    config_release(&cfg);
    env_emulator = host;
}

static void test_preconditions_and_transactions(void **state)
{
    struct config cfg;
    struct http *http = NULL;
    struct firestore *fs = NULL;
    struct firestore_commit c, *one[1] = {&c};
    struct d2f_err err = {0};
    char *txns[2] = {NULL, NULL}, t1[64], t2[64], *dst[1] = {t1}, *got[1] = {t2}, name[256];
    const char *names[1] = {name};
    int64_t began[2];

    (void)state;
    assert_int_equal(config_load(&cfg, get, &err), 0);
    assert_int_equal(http_new(&http, &err), 0);
    assert_int_equal(firestore_new(&fs, &cfg, http, NULL, &err), 0);
    snprintf(name, sizeof(name), "%s/P/x", firestore_docs_prefix(fs));
    assert_int_equal(firestore_begin(fs, txns, began, 2, d2f_now_ms() + 10000, &err), 0);
    assert_non_null(txns[0]);
    assert_non_null(txns[1]);
    assert_true(strcmp(txns[0], txns[1]) != 0);

    /* a create in a transaction: its updateTime comes back, and batchGet says the same */
    firestore_commit_init(&c);
    assert_int_equal(buf_addf(&c.body,
                              "{\"writes\":[{\"update\":{\"name\":\"%s\"},\"currentDocument\":{"
                              "\"exists\":false}}],\"transaction\":\"%s\"}",
                              name, txns[0]),
                     0);
    assert_int_equal(commit_all(fs, one, 1, &err), 0);
    assert_int_equal(c.status, RETRY_OK);
    assert_int_equal(firestore_commit_times(&c, dst, 1, sizeof(t1), &err), 0);
    assert_true(t1[0] != '\0');
    assert_int_equal(
        firestore_update_times(fs, names, 1, d2f_now_ms() + 10000, got, sizeof(t2), &err), 0);
    assert_string_equal(t1, t2);
    /* a transaction used or unknown cannot commit: rolling it back says so */
    assert_int_equal(firestore_rollback(fs, txns[0], d2f_now_ms() + 10000, &err), 0);
    assert_int_equal(firestore_rollback(fs, "AAAA", d2f_now_ms() + 10000, &err), 0);
    assert_int_equal(firestore_commit_times(&c, dst, 2, sizeof(t1), &err), D2F_EREMOTE);

    /* the same create again, and a stale updateTime: both refused on their precondition */
    buf_reset(&c.body);
    assert_int_equal(buf_addf(&c.body,
                              "{\"writes\":[{\"update\":{\"name\":\"%s\"},\"currentDocument\":{"
                              "\"exists\":false}}],\"transaction\":\"%s\"}",
                              name, txns[1]),
                     0);
    assert_int_equal(commit_all(fs, one, 1, &err), 0);
    assert_int_equal(c.status, RETRY_ALREADY_EXISTS);
    buf_reset(&c.body);
    assert_int_equal(buf_addf(&c.body,
                              "{\"writes\":[{\"delete\":\"%s\",\"currentDocument\":{"
                              "\"updateTime\":\"2000-01-01T00:00:00.000000Z\"}}]}",
                              name),
                     0);
    assert_int_equal(commit_all(fs, one, 1, &err), 0);
    assert_int_equal(c.status, RETRY_FAILED_PRECONDITION);
    /* the right one: a deletion leaves no updateTime, and the document is missing */
    buf_reset(&c.body);
    assert_int_equal(buf_addf(&c.body,
                              "{\"writes\":[{\"delete\":\"%s\",\"currentDocument\":{"
                              "\"updateTime\":\"%s\"}}]}",
                              name, t1),
                     0);
    assert_int_equal(commit_all(fs, one, 1, &err), 0);
    assert_int_equal(c.status, RETRY_OK);
    assert_int_equal(firestore_commit_times(&c, dst, 1, sizeof(t1), &err), 0);
    assert_string_equal(t1, "");
    assert_int_equal(
        firestore_update_times(fs, names, 1, d2f_now_ms() + 10000, got, sizeof(t2), &err), 0);
    assert_string_equal(t2, "");
    free(txns[0]);
    free(txns[1]);
    firestore_commit_release(&c);
    firestore_free(fs);
    http_free(http);
    config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_and_batch_get),
        cmocka_unit_test(test_no_answer),
        cmocka_unit_test(test_preconditions_and_transactions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
