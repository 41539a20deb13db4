/* Unit tests for log.c: each line's fields in order, JSON escaping (quotes, controls, U+0000)
 * that keeps a line one line, levels, the request id, and the Embedded Metric Format line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "json.h"
#include "log.h"

static FILE *out;

/* Points the log at a new file, with min as its lowest level. */
static void capture(enum log_level min)
{
    out = tmpfile();
    assert_non_null(out);
    log_setup(out, min);
}

/* Everything written since capture(), as a string to free; the log goes back to stderr. */
static char *written(void)
{
    long n;
    char *text;

    assert_int_equal(fseek(out, 0, SEEK_END), 0);
    n = ftell(out);
    assert_true(n >= 0);
    rewind(out);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, out), (size_t)n);
    fclose(out);
    out = NULL;
    log_setup(stderr, LOG_INFO);
    return text;
}

static void assert_written(const char *expected)
{
    char *text = written();

    assert_string_equal(text, expected);
    free(text);
}

/* level, msg, the request id when set, then the fields in their order; one line each. */
static void test_line_fields(void **state)
{
    cJSON *f = cJSON_CreateObject();

    (void)state;
    cJSON_AddStringToObject(f, "table", "Orders");
    cJSON_AddNumberToObject(f, "rows", 12);
    cJSON_AddTrueToObject(f, "done");
    capture(LOG_DEBUG);
    log_write(LOG_WARN, "drain stopped", f);
    log_set_request("8f5e2b1c-0d7a-4c3e-9b1f-2a6d4e8c0f13");
    log_write(LOG_ERROR, "commit refused", NULL);
    log_set_request(NULL);
    log_write(LOG_DEBUG, "no request now", NULL);
    assert_written("{\"level\":\"warn\",\"msg\":\"drain stopped\",\"table\":\"Orders\",\"rows\":12,"
                   "\"done\":true}\n"
                   "{\"level\":\"error\",\"msg\":\"commit refused\","
                   "\"request_id\":\"8f5e2b1c-0d7a-4c3e-9b1f-2a6d4e8c0f13\"}\n"
                   "{\"level\":\"debug\",\"msg\":\"no request now\"}\n");
}

/* Quotes, backslashes and control characters are escaped as RFC 8259 says, so that a message
 * or a field can never end its line or its string early; U+0000 (C0 80 in the tree, json.h)
 * comes out as \u0000, never as a raw zero byte. */
static void test_escaping(void **state)
{
    static const char event[] = "{\"k\":\"a\\u0000b\"}";
    cJSON *parsed = json_parse(event, sizeof(event) - 1), *f = cJSON_CreateObject();

    (void)state;
    assert_non_null(parsed);
    cJSON_AddItemToObject(f, "key", cJSON_DetachItemFromObject(parsed, "k"));
    cJSON_AddStringToObject(f, "nul", "\xC0\x80");
    cJSON_Delete(parsed);
    capture(LOG_INFO);
    log_write(LOG_INFO, "say \"hi\"\\ then\nnext\r\t\b\f\x01\x1f end", f);
    log_write(LOG_INFO, "caf\xC3\xA9 \xE2\x82\xAC", NULL);
    assert_written("{\"level\":\"info\",\"msg\":\"say \\\"hi\\\"\\\\ then\\nnext\\r\\t\\b\\f"
                   "\\u0001\\u001f end\",\"key\":\"a\\u0000b\",\"nul\":\"\\u0000\"}\n"
                   "{\"level\":\"info\",\"msg\":\"caf\xC3\xA9 \xE2\x82\xAC\"}\n");
}

/* A line below the lowest level writes nothing, its fields are still freed (the leak checks
 * of the sanitizer build and valgrind see it); each level writes its own name. */
static void test_levels(void **state)
{
    static const char *const lines[] = {
        "{\"level\":\"debug\",\"msg\":\"m\",\"detail\":\"x\"}\n",
        "{\"level\":\"info\",\"msg\":\"m\",\"detail\":\"x\"}\n",
        "{\"level\":\"warn\",\"msg\":\"m\",\"detail\":\"x\"}\n",
        "{\"level\":\"error\",\"msg\":\"m\",\"detail\":\"x\"}\n",
    };

    (void)state;
    for (int min = LOG_DEBUG; min <= LOG_ERROR; min++) {
        char expected[512] = "";
        capture((enum log_level)min);
        for (int level = LOG_DEBUG; level <= LOG_ERROR; level++) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "detail", "x");
            log_write((enum log_level)level, "m", f);
            if (level >= min)
                strcat(expected, lines[level]);
        }
        assert_written(expected);
    }
}

/* A request id is cut to fit its 127 bytes, never written past. */
static void test_long_request_id(void **state)
{
    char id[300], expected[400];

    (void)state;
    memset(id, 'r', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    log_set_request(id);
    capture(LOG_INFO);
    log_write(LOG_INFO, "m", NULL);
    log_set_request(NULL);
    snprintf(expected, sizeof(expected),
             "{\"level\":\"info\",\"msg\":\"m\",\"request_id\":\"%.127s\"}\n", id);
    assert_written(expected);
}

/* With no file set up, lines go to stderr: stdout carries a command's output (status --json)
 * and never gets a log line. */
static void test_default_is_stderr(void **state)
{
    FILE *o = tmpfile(), *e = tmpfile();
    int saved_out = dup(1), saved_err = dup(2);
    char text[128] = "";

    (void)state;
    assert_non_null(o);
    assert_non_null(e);
    fflush(stdout);
    fflush(stderr);
    assert_int_equal(dup2(fileno(o), 1), 1);
    assert_int_equal(dup2(fileno(e), 2), 2);
    log_setup(NULL, LOG_INFO);
    log_write(LOG_ERROR, "to stderr", NULL);
    fflush(stdout);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    log_setup(stderr, LOG_INFO);
    assert_int_equal(fseek(o, 0, SEEK_END), 0);
    assert_int_equal(ftell(o), 0);
    rewind(e);
    assert_non_null(fgets(text, sizeof(text), e));
    assert_string_equal(text, "{\"level\":\"error\",\"msg\":\"to stderr\"}\n");
    fclose(o);
    fclose(e);
}

/* The Embedded Metric Format line as CloudWatch's specification lays it out: the dimension
 * values and each metric's value at the top, _aws naming the namespace, the dimension sets and
 * each metric with its unit, and the time stamp in ms. */
static void test_metrics_line(void **state)
{
    static const char *const dims[] = {"FunctionName"};
    static const struct log_metric m[] = {{"Committed", "Count", 500},
                                          {"DrainTime", "Milliseconds", 12.5}};
    cJSON *values = cJSON_CreateObject();

    (void)state;
    cJSON_AddStringToObject(values, "FunctionName", "relay");
    out = tmpfile();
    assert_non_null(out);
    log_metrics(out, 1700000000123, dims, 1, values, m, 2);
    log_metrics(out, 5, NULL, 0, NULL, NULL, 0);
    assert_written("{\"FunctionName\":\"relay\",\"_aws\":{\"CloudWatchMetrics\":[{\"Namespace\":"
                   "\"ddb2fs\",\"Dimensions\":[[\"FunctionName\"]],\"Metrics\":[{\"Name\":"
                   "\"Committed\",\"Unit\":\"Count\"},{\"Name\":\"DrainTime\",\"Unit\":"
                   "\"Milliseconds\"}]}],\"Timestamp\":1700000000123},\"Committed\":500,"
                   "\"DrainTime\":12.5}\n"
                   "{\"_aws\":{\"CloudWatchMetrics\":[{\"Namespace\":\"ddb2fs\",\"Dimensions\":"
                   "[],\"Metrics\":[]}],\"Timestamp\":5}}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_fields),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_long_request_id),
        cmocka_unit_test(test_default_is_stderr),
        cmocka_unit_test(test_metrics_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
