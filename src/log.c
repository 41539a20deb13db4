/* log.c: JSON-lines logs. */
#include "log.h"

#include <stdlib.h>

#include "json.h"

static FILE *log_out;
static enum log_level log_min = LOG_INFO;
static char log_request[128];

void log_set_request(const char *request_id)
{
    snprintf(log_request, sizeof(log_request), "%s", request_id ? request_id : "");
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(FILE *out, enum log_level min)
{
    log_out = out;
    log_min = min;
}

void log_write(enum log_level level, const char *msg, cJSON *fields)
{
    cJSON *line = NULL;
    char *text = NULL;
    FILE *out = log_out ? log_out : stderr;

    if (level < log_min)
        goto out;
    line = cJSON_CreateObject();
    if (!line || !cJSON_AddStringToObject(line, "level", level_names[level]) ||
        !cJSON_AddStringToObject(line, "msg", msg) ||
        (log_request[0] && !cJSON_AddStringToObject(line, "request_id", log_request)))
        goto out;
    if (fields) {
        cJSON *f;
        while ((f = fields->child) != NULL) {
            cJSON_DetachItemViaPointer(fields, f);
            if (!cJSON_AddItemToObject(line, f->string, f))
                cJSON_Delete(f); /* no memory for its name: the line goes without it */
        }
    }
    text = json_print(line);
    if (text) {
        fputs(text, out);
        fputc('\n', out);
        fflush(out);
    }
out:
    free(text);
    cJSON_Delete(line);
    cJSON_Delete(fields);
}

void log_metrics(FILE *out, int64_t now_ms, const char *const *dims, size_t ndims,
                 cJSON *dimension_values, const struct log_metric *metrics, size_t n)
{
    cJSON *line = dimension_values ? dimension_values : cJSON_CreateObject();
    cJSON *aws = cJSON_AddObjectToObject(line, "_aws");
    cJSON *cwm = cJSON_AddArrayToObject(aws, "CloudWatchMetrics");
    cJSON *m = cJSON_CreateObject(), *list;
    char *text;

    cJSON_AddItemToArray(cwm, m);
    json_add_number(aws, "Timestamp", (double)now_ms);
    cJSON_AddStringToObject(m, "Namespace", LOG_METRICS_NAMESPACE);
    list = cJSON_AddArrayToObject(m, "Dimensions");
    for (size_t i = 0; i < ndims; i++) {
        cJSON *one = cJSON_CreateArray();
        cJSON_AddItemToArray(one, cJSON_CreateString(dims[i]));
        cJSON_AddItemToArray(list, one);
    }
    list = cJSON_AddArrayToObject(m, "Metrics");
    for (size_t i = 0; i < n; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "Name", metrics[i].name);
        cJSON_AddStringToObject(d, "Unit", metrics[i].unit);
        cJSON_AddItemToArray(list, d);
        json_add_number(line, metrics[i].name, metrics[i].value);
    }
    if ((text = json_print(line))) {
        fprintf(out, "%s\n", text);
        fflush(out);
        cJSON_free(text);
    }
    cJSON_Delete(line);
}
