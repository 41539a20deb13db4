/* event.c: a Lambda DynamoDB stream event, read one record at a time. */
#include "event.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

enum { IN_OBJECT, IN_RECORDS, AT_END };

static void skip_ws(struct event_reader *r)
{
    while (r->pos < r->len) {
        char c = r->text[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        r->pos++;
    }
}

int event_reader_init(struct event_reader *r, const char *text, size_t len, struct d2f_err *err)
{
    memset(r, 0, sizeof(*r));
    r->text = text;
    r->len = len;
    if (len > EVENT_MAX_BYTES)
        return d2f_errf(err, D2F_ELIMIT,
                        "the event is %zu bytes, over Lambda's limit of %d bytes (6 MB)", len,
                        EVENT_MAX_BYTES);
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        r->pos = 3;
    skip_ws(r);
    if (r->pos >= len)
        return d2f_errf(err, D2F_EINPUT, "the event is empty");
    if (text[r->pos] != '{')
        return d2f_errf(err, D2F_EINPUT,
                        "the event is not a JSON object: it starts with '%c' at byte %zu",
                        text[r->pos], r->pos);
    r->pos++;
    r->state = IN_OBJECT;
    return 0;
}

/* Parses one JSON value at the reader's position (json.h: U+0000 kept) into *v; moves past it.
 * Returns 0, D2F_EINPUT (not JSON) or D2F_ENOMEM. */
static int parse_here(struct event_reader *r, cJSON **v)
{
    const char *end = NULL;
    int rc = json_parse_status(r->text + r->pos, r->len - r->pos, &end, v);

    if (!rc)
        r->pos = (size_t)(end - r->text);
    return rc;
}

static int nomem(struct event_reader *r, struct d2f_err *err)
{
    return d2f_errf(err, D2F_ENOMEM, "out of memory reading the event near byte %zu", r->pos);
}

static int expect_comma(struct event_reader *r, int first, char close, const char *where,
                        struct d2f_err *err)
{
    skip_ws(r);
    if (r->pos < r->len && r->text[r->pos] == close)
        return 0;
    if (first)
        return 0;
    if (r->pos >= r->len)
        return d2f_errf(err, D2F_EINPUT, "the event is not valid JSON: it ends inside %s", where);
    if (r->text[r->pos] != ',')
        return d2f_errf(err, D2F_EINPUT,
                        "the event is not valid JSON: expected ',' or '%c' at byte %zu in %s",
                        close, r->pos, where);
    r->pos++;
    skip_ws(r);
    if (r->pos < r->len && r->text[r->pos] == close)
        return d2f_errf(err, D2F_EINPUT, "the event is not valid JSON: ',' before '%c' at byte %zu",
                        close, r->pos);
    return 0;
}

static int next_record(struct event_reader *r, struct event_record *rec, struct d2f_err *err)
{
    int rc = expect_comma(r, r->index == 0, ']', "'Records'", err);
    size_t start;

    if (rc)
        return rc;
    if (r->pos >= r->len)
        return d2f_errf(err, D2F_EINPUT, "the event is not valid JSON: it ends inside 'Records'");
    if (r->text[r->pos] == ']') {
        r->pos++;
        r->state = IN_OBJECT;
        return 0;
    }
    if (r->index >= EVENT_MAX_RECORDS)
        return d2f_errf(err, D2F_ELIMIT, "the event has more than %d records, Lambda's limit",
                        EVENT_MAX_RECORDS);
    start = r->pos;
    memset(rec, 0, sizeof(*rec));
    rec->index = r->index;
    if ((rc = parse_here(r, &rec->json)) == D2F_ENOMEM)
        return nomem(r, err);
    if (rc)
        return d2f_errf(err, D2F_EINPUT,
                        "the event is not valid JSON: Records[%zu] is malformed near byte %zu",
                        r->index, start);
    rec->raw = r->text + start;
    rec->raw_len = r->pos - start;
    r->index++;
    event_record_check(rec);
    return EVENT_RECORD;
}

/* Reads one member of the top-level object, or its closing brace. */
static int object_member(struct event_reader *r, struct d2f_err *err)
{
    cJSON *key = NULL, *value;
    int is_records, rc = D2F_EINPUT;

    skip_ws(r);
    if (r->pos >= r->len)
        return d2f_errf(err, D2F_EINPUT, "the event is not valid JSON: it ends too early");
    if (r->text[r->pos] == '}') {
        r->pos++;
        r->state = AT_END;
        return 0;
    }
    if (r->members > 0) {
        if (r->pos >= r->len || r->text[r->pos] != ',')
            return d2f_errf(err, D2F_EINPUT,
                            "the event is not valid JSON: expected ',' or '}' at byte %zu", r->pos);
        r->pos++;
        skip_ws(r);
    }
    if (r->pos < r->len && r->text[r->pos] == '"' && (rc = parse_here(r, &key)) == D2F_ENOMEM)
        return nomem(r, err);
    if (rc || !cJSON_IsString(key)) {
        cJSON_Delete(key);
        return d2f_errf(err, D2F_EINPUT,
                        "the event is not valid JSON: expected a member name at byte %zu", r->pos);
    }
    is_records = strcmp(key->valuestring, "Records") == 0;
    cJSON_Delete(key);
    r->members++;
    skip_ws(r);
    if (r->pos >= r->len || r->text[r->pos] != ':')
        return d2f_errf(err, D2F_EINPUT, "the event is not valid JSON: expected ':' at byte %zu",
                        r->pos);
    r->pos++;
    skip_ws(r);
    if (!is_records) {
        if ((rc = parse_here(r, &value)) == D2F_ENOMEM)
            return nomem(r, err);
        if (rc)
            return d2f_errf(err, D2F_EINPUT,
                            "the event is not valid JSON: malformed value near byte %zu", r->pos);
        cJSON_Delete(value);
        return 0;
    }
    if (r->seen_records)
        return d2f_errf(err, D2F_EINPUT, "the event has 'Records' twice");
    r->seen_records = 1;
    if (r->pos >= r->len || r->text[r->pos] != '[')
        return d2f_errf(err, D2F_EINPUT, "the event's 'Records' is not an array");
    r->pos++;
    r->state = IN_RECORDS;
    return 0;
}

int event_reader_next(struct event_reader *r, struct event_record *rec, struct d2f_err *err)
{
    int rc;

    for (;;) {
        if (r->state == IN_RECORDS) {
            rc = next_record(r, rec, err);
            if (rc != 0)
                return rc;
            continue;
        }
        if (r->state == AT_END) {
            skip_ws(r);
            if (r->pos != r->len)
                return d2f_errf(err, D2F_EINPUT,
                                "the event is not valid JSON: unexpected text at byte %zu", r->pos);
            if (!r->seen_records)
                return d2f_errf(err, D2F_EINPUT, "the event has no 'Records' array");
            return 0;
        }
        /* IN_OBJECT: the members of the top-level object */
        rc = object_member(r, err);
        if (rc)
            return rc;
    }
}

void event_record_release(struct event_record *rec)
{
    if (!rec)
        return;
    cJSON_Delete(rec->json);
    rec->json = NULL;
}

int event_seq_key(const char *seq, char out[EVENT_SEQ_MAX_DIGITS + 1])
{
    size_t n = strlen(seq);

    if (n == 0 || n > EVENT_SEQ_MAX_DIGITS)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (seq[i] < '0' || seq[i] > '9')
            return -1;
    memset(out, '0', EVENT_SEQ_MAX_DIGITS - n);
    memcpy(out + EVENT_SEQ_MAX_DIGITS - n, seq, n + 1);
    return 0;
}

/* Records the first problem found; later ones are not reported. */
static void fail(struct event_record *rec, const char *fmt, ...) D2F_PRINTF(2, 3);
static void fail(struct event_record *rec, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (rec->error)
        return;
    n = snprintf(rec->error_buf, sizeof(rec->error_buf), "Records[%zu]: ", rec->index);
    va_start(ap, fmt);
    vsnprintf(rec->error_buf + n, sizeof(rec->error_buf) - (size_t)n, fmt, ap);
    va_end(ap);
    rec->error = rec->error_buf;
}

static const char *json_type(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}

/* The member name of obj when it has the type is() checks; NULL when absent (an error when
 * required) or of another type (an error naming what it is). */
static const cJSON *get_typed(struct event_record *rec, const cJSON *obj, const char *prefix,
                              const char *name, int required, cJSON_bool (*is)(const cJSON *),
                              const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!v) {
        if (required)
            fail(rec, "'%s%s' is missing", prefix, name);
        return NULL;
    }
    if (!is(v)) {
        fail(rec, "'%s%s' is %s, not %s", prefix, name, json_type(v), want);
        return NULL;
    }
    return v;
}

static const char *get_string(struct event_record *rec, const cJSON *obj, const char *prefix,
                              const char *name, int required)
{
    const cJSON *v = get_typed(rec, obj, prefix, name, required, cJSON_IsString, "a string");

    return v ? v->valuestring : NULL;
}

static const cJSON *get_object(struct event_record *rec, const cJSON *obj, const char *prefix,
                               const char *name, int required)
{
    return get_typed(rec, obj, prefix, name, required, cJSON_IsObject, "an object");
}

static double get_number(struct event_record *rec, const cJSON *obj, const char *name)
{
    const cJSON *v = get_typed(rec, obj, "dynamodb.", name, 0, cJSON_IsNumber, "a number");

    return v ? v->valuedouble : 0;
}

/* arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL → NAME */
static int table_from_arn(const char *arn, char *table, size_t cap)
{
    const char *t, *s;

    if (strncmp(arn, "arn:", 4) != 0 || !strstr(arn, ":dynamodb:"))
        return -1;
    t = strstr(arn, ":table/");
    if (!t)
        return -1;
    t += strlen(":table/");
    s = strstr(t, "/stream/");
    if (!s || s == t || (size_t)(s - t) >= cap || !s[strlen("/stream/")])
        return -1;
    memcpy(table, t, (size_t)(s - t));
    table[s - t] = '\0';
    return 0;
}

void event_record_check(struct event_record *rec)
{
    const cJSON *r = rec->json, *ddb, *identity;
    static const char *const views[] = {"KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES",
                                        NULL};

    if (!cJSON_IsObject(r)) {
        fail(rec, "the record is %s, not an object", json_type(r));
        return;
    }
    rec->source_arn = get_string(rec, r, "", "eventSourceARN", 1);
    ddb = get_object(rec, r, "", "dynamodb", 1);
    if (ddb)
        rec->seq = get_string(rec, ddb, "dynamodb.", "SequenceNumber", 1);
    if (rec->source_arn && table_from_arn(rec->source_arn, rec->table, sizeof(rec->table)))
        fail(rec, "'eventSourceARN' is not a DynamoDB stream ARN "
                  "(arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL)");
    else if (rec->source_arn && !d2f_table_name_ok(rec->table, strlen(rec->table))) {
        /* the name reaches collection paths, logs and terminals: only what DynamoDB allows */
        rec->table[0] = '\0';
        fail(rec, "the table name in 'eventSourceARN' is not a DynamoDB table name (3 to 255 of "
                  "A-Z a-z 0-9 _ . -)");
    }
    if (rec->seq && event_seq_key(rec->seq, rec->seq_key))
        fail(rec, "'dynamodb.SequenceNumber' is not 1 to 40 decimal digits");
    rec->event_id = get_string(rec, r, "", "eventID", 1);
    rec->event_name_text = get_string(rec, r, "", "eventName", 1);
    if (rec->event_name_text) {
        if (strcmp(rec->event_name_text, "INSERT") == 0)
            rec->name = EVENT_INSERT;
        else if (strcmp(rec->event_name_text, "MODIFY") == 0)
            rec->name = EVENT_MODIFY;
        else if (strcmp(rec->event_name_text, "REMOVE") == 0)
            rec->name = EVENT_REMOVE;
        else
            fail(rec, "'eventName' is '%.40s'; expected INSERT, MODIFY or REMOVE",
                 rec->event_name_text);
    }
    rec->event_version = get_string(rec, r, "", "eventVersion", 0);
    rec->event_source = get_string(rec, r, "", "eventSource", 0);
    if (rec->event_source && strcmp(rec->event_source, "aws:dynamodb") != 0)
        fail(rec, "'eventSource' is '%.40s', not aws:dynamodb", rec->event_source);
    rec->aws_region = get_string(rec, r, "", "awsRegion", 0);
    identity = cJSON_GetObjectItemCaseSensitive(r, "userIdentity");
    if (identity && !cJSON_IsNull(identity)) {
        if (!cJSON_IsObject(identity)) {
            fail(rec, "'userIdentity' is %s, not an object", json_type(identity));
        } else {
            rec->identity_type = get_string(rec, identity, "userIdentity.", "type", 0);
            rec->identity_principal = get_string(rec, identity, "userIdentity.", "principalId", 0);
        }
    }
    rec->ttl_expiry = rec->name == EVENT_REMOVE && rec->identity_type && rec->identity_principal &&
                      strcmp(rec->identity_type, "Service") == 0 &&
                      strcmp(rec->identity_principal, "dynamodb.amazonaws.com") == 0;
    if (!ddb)
        return;
    rec->created = get_number(rec, ddb, "ApproximateCreationDateTime");
    if (!isfinite(rec->created))
        fail(rec, "'dynamodb.ApproximateCreationDateTime' is not a finite epoch time");
    rec->size_bytes = get_number(rec, ddb, "SizeBytes");
    rec->keys = get_object(rec, ddb, "dynamodb.", "Keys", 1);
    if (rec->keys && !rec->keys->child)
        fail(rec, "'dynamodb.Keys' is empty");
    rec->new_image = get_object(rec, ddb, "dynamodb.", "NewImage", 0);
    rec->old_image = get_object(rec, ddb, "dynamodb.", "OldImage", 0);
    rec->view_type = get_string(rec, ddb, "dynamodb.", "StreamViewType", 0);
    if (rec->view_type) {
        int known = 0;
        for (int i = 0; views[i]; i++)
            known |= strcmp(rec->view_type, views[i]) == 0;
        if (!known)
            fail(rec,
                 "'dynamodb.StreamViewType' is '%.40s'; expected KEYS_ONLY, NEW_IMAGE, "
                 "OLD_IMAGE or NEW_AND_OLD_IMAGES",
                 rec->view_type);
    }
    if ((rec->name == EVENT_INSERT || rec->name == EVENT_MODIFY) && !rec->new_image &&
        !cJSON_GetObjectItemCaseSensitive(ddb, "NewImage"))
        fail(rec,
             "'dynamodb.NewImage' is missing: a %s needs the item's new image (stream view "
             "type %s; use NEW_IMAGE or NEW_AND_OLD_IMAGES)",
             rec->event_name_text, rec->view_type ? rec->view_type : "unknown");
}
