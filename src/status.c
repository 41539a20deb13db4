/* status.c: the state of the outbox in one screen. */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backfill.h"
#include "json.h"

static int query_err(struct outbox *ob, struct d2f_err *err)
{
    return d2f_errf(err, D2F_EDB, "cannot read the status of outbox '%s': %s", outbox_path(ob),
                    sqlite3_errmsg(outbox_db(ob)));
}

/* Adds column i of st to obj under name, as JSON null, number or string. */
static void add_column(cJSON *obj, const char *name, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        cJSON_AddNullToObject(obj, name);
        break;
    case SQLITE_INTEGER:
    case SQLITE_FLOAT:
        json_add_number(obj, name, sqlite3_column_double(st, i));
        break;
    default:
        cJSON_AddStringToObject(obj, name, (const char *)sqlite3_column_text(st, i));
    }
}

/* Runs sql and adds each row as an object with the query's column names; one row to obj
 * itself when list is NULL. */
static int rows(struct outbox *ob, const char *sql, cJSON *obj, cJSON *list, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(outbox_db(ob), sql, -1, &st, NULL) != SQLITE_OK)
        return query_err(ob, err);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *row = list ? cJSON_CreateObject() : obj;
        for (int i = 0; i < sqlite3_column_count(st); i++)
            add_column(row, sqlite3_column_name(st, i), st, i);
        if (list)
            cJSON_AddItemToArray(list, row);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : query_err(ob, err);
}

int status_collect(struct outbox *ob, cJSON **out, struct d2f_err *err)
{
    cJSON *s = cJSON_CreateObject(), *tables, *lease, *reasons, *minutes, *settings;
    struct stat st;
    int rc;

    *out = NULL;
    if (!s)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    cJSON_AddStringToObject(s, "outbox", outbox_path(ob));
    cJSON_AddStringToObject(s, "journal", outbox_journal(ob));
    if (stat(outbox_path(ob), &st) == 0)
        json_add_number(s, "bytes", (double)st.st_size);
    rc = rows(ob,
              "SELECT (SELECT user_version FROM pragma_user_version) AS schema_version, "
              "coalesce(sum(state = 'pending'), 0) AS pending, "
              "coalesce(sum(state = 'dead'), 0) AS dead, "
              "coalesce(sum(state = 'committed'), 0) AS committed, "
              "strftime('%Y-%m-%dT%H:%M:%SZ', min(CASE WHEN state = 'pending' THEN arrived_at "
              "END) / 1000, 'unixepoch') AS oldest_pending_arrived, "
              "CAST((strftime('%s', 'now') * 1000 - min(CASE WHEN state = 'pending' THEN "
              "arrived_at END)) / 1000 AS INTEGER) AS oldest_pending_age_s, "
              "(SELECT max(lag_s) FROM lag) AS lag_s FROM records",
              s, NULL, err);
    lease = cJSON_AddArrayToObject(s, "lease");
    tables = cJSON_AddArrayToObject(s, "tables");
    reasons = cJSON_AddArrayToObject(s, "dead_reasons");
    minutes = cJSON_AddArrayToObject(s, "throughput");
    settings = cJSON_AddArrayToObject(s, "settings");
    if (!rc)
        rc = rows(ob,
                  "SELECT owner, strftime('%Y-%m-%dT%H:%M:%SZ', expires_at / 1000, 'unixepoch') "
                  "AS expires, expires_at > strftime('%s', 'now') * 1000 AS live "
                  "FROM lease WHERE name = 'drain'",
                  NULL, lease, err);
    if (!rc)
        rc = rows(ob,
                  "SELECT coalesce(p.table_name, k.table_name) AS table_name, "
                  "k.partition_key, k.sort_key, k.source AS key_source, "
                  "coalesce(p.pending, 0) AS pending, coalesce(p.dead, 0) AS dead, "
                  "coalesce(p.committed, 0) AS committed, p.oldest_pending_age_s "
                  "FROM pending_summary p LEFT JOIN key_schema k USING (table_name) "
                  "UNION ALL "
                  "SELECT k.table_name, k.partition_key, k.sort_key, k.source, 0, 0, 0, NULL "
                  "FROM key_schema k WHERE k.table_name NOT IN "
                  "(SELECT table_name FROM records WHERE table_name IS NOT NULL) "
                  "ORDER BY 1",
                  NULL, tables, err);
    if (!rc)
        rc = rows(ob, "SELECT table_name, last_error, records FROM dead_reasons LIMIT 5", NULL,
                  reasons, err);
    if (!rc)
        rc = rows(ob,
                  "SELECT minute, ingested, committed FROM throughput WHERE minute >= "
                  "strftime('%Y-%m-%dT%H:%M', 'now', '-4 minutes')",
                  NULL, minutes, err);
    if (!rc)
        rc = rows(ob,
                  "SELECT name, value, strftime('%Y-%m-%dT%H:%M:%SZ', recorded_at / 1000, "
                  "'unixepoch') AS since FROM settings ORDER BY name",
                  NULL, settings, err);
    if (!rc)
        rc = backfill_status(ob, s, err);
    if (rc) {
        cJSON_Delete(s);
        return rc;
    }
    *out = s;
    return 0;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return json_number_value(v);
}

static const char *str(const cJSON *o, const char *name, const char *none)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : none;
}

/* A duration for people: "42 s", "7 min", "5 h", "962 d". */
static const char *human(double seconds, char *buf, size_t cap)
{
    if (seconds < 120)
        snprintf(buf, cap, "%.0f s", seconds);
    else if (seconds < 7200)
        snprintf(buf, cap, "%.0f min", seconds / 60);
    else if (seconds < 172800)
        snprintf(buf, cap, "%.0f h", seconds / 3600);
    else
        snprintf(buf, cap, "%.0f d", seconds / 86400);
    return buf;
}

void status_print(const cJSON *s, FILE *out)
{
    const cJSON *t, *lease = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "lease"), 0);

    fprintf(out, "outbox     %s (schema %.0f, journal %s, %.0f bytes)\n", str(s, "outbox", "?"),
            num(s, "schema_version"), str(s, "journal", "?"), num(s, "bytes"));
    fprintf(out, "records    %.0f pending, %.0f dead, %.0f committed\n", num(s, "pending"),
            num(s, "dead"), num(s, "committed"));
    if (num(s, "pending") > 0) {
        char age[32], lag[32];
        fprintf(out,
                "oldest     pending since %s (%s ago); its change was made in DynamoDB %s "
                "ago\n",
                str(s, "oldest_pending_arrived", "?"),
                human(num(s, "oldest_pending_age_s"), age, sizeof(age)),
                human(num(s, "lag_s"), lag, sizeof(lag)));
    }
    if (cJSON_GetObjectItemCaseSensitive(s, "partitions")) {
        fprintf(out, "partitions %.0f files\n", num(s, "partitions"));
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(s, "files"))
            fprintf(out, "  %-40s %.0f pending, %.0f dead, %.0f committed, %.0f bytes\n",
                    str(t, "path", "?"), num(t, "pending"), num(t, "dead"), num(t, "committed"),
                    num(t, "bytes"));
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(s, "lease"))
            fprintf(out, "lease      partition %.0f: %s, %s %s\n", num(t, "partition"),
                    str(t, "owner", "?"), num(t, "live") != 0 ? "held until" : "expired at",
                    str(t, "expires", "?"));
    } else if (lease) {
        fprintf(out, "lease      %s, %s %s\n", str(lease, "owner", "?"),
                num(lease, "live") != 0 ? "held until" : "expired at", str(lease, "expires", "?"));
    } else {
        fprintf(out, "lease      none (no drain running)\n");
    }
    fprintf(out, "tables\n");
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(s, "tables"))
    {
        const char *sk = str(t, "sort_key", NULL);
        if (!str(t, "table_name", NULL)) {
            fprintf(out, "  %-24s %.0f dead: records with no readable eventSourceARN\n",
                    "(no table)", num(t, "dead"));
            continue;
        }
        fprintf(out, "  %-24s %.0f pending, %.0f dead, %.0f committed; key (%s%s%s) from %s\n",
                str(t, "table_name", "(unknown)"), num(t, "pending"), num(t, "dead"),
                num(t, "committed"), str(t, "partition_key", "unknown"), sk ? ", " : "",
                sk ? sk : "", str(t, "key_source", "nowhere yet: set DDB2FS_KEYS"));
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "throughput")) > 0) {
        fprintf(out, "last minutes (UTC)\n");
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(s, "throughput"))
            fprintf(out, "  %s  %.0f ingested, %.0f committed\n", str(t, "minute", "?"),
                    num(t, "ingested"), num(t, "committed"));
    }
    if (num(s, "dead") > 0) {
        fprintf(out, "dead, most frequent reasons\n");
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(s, "dead_reasons"))
            fprintf(out, "  %6.0f  %s: %s\n", num(t, "records"), str(t, "table_name", "(no table)"),
                    str(t, "last_error", "?"));
        if (cJSON_GetObjectItemCaseSensitive(s, "partitions"))
            fprintf(out,
                    "  every dead row: for f in %s/part-*.db; do sqlite3 \"$f\" 'select * from "
                    "dead'; done; retry: ddb2fs replay --dead\n",
                    str(s, "outbox", "?"));
        else
            fprintf(out,
                    "  every dead row: sqlite3 %s 'select * from dead'; retry: ddb2fs replay "
                    "--dead\n",
                    str(s, "outbox", "?"));
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "backfills")) > 0) {
        fprintf(out, "backfills\n");
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(s, "backfills"))
        {
            char eta[32] = "-";
            if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(t, "eta_s")))
                human(num(t, "eta_s"), eta, sizeof(eta));
            fprintf(out,
                    "  job %.0f %-18s %s: %.0f/%.0f segments done, %.0f items, %.0f read units "
                    "(%.1f/s, limit %.1f), ETA %s; snapshots %.0f waiting, %.0f superseded, "
                    "%.0f sent\n",
                    num(t, "job"), str(t, "table", "?"), str(t, "state", "?"),
                    num(t, "segments_done"), num(t, "segments"), num(t, "items"),
                    num(t, "read_units"), num(t, "read_units_per_s"), num(t, "rate_limit"), eta,
                    num(t, "snapshots_waiting"), num(t, "superseded"), num(t, "sent"));
        }
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "settings")) > 0) {
        fprintf(out, "settings   (as the relay last ran)\n");
        cJSON_ArrayForEach(
            t, cJSON_GetObjectItemCaseSensitive(s, "settings")) if (str(t, "value", NULL))
            fprintf(out, "  %-31s %s\n", str(t, "name", "?"), str(t, "value", ""));
    }
}

/* The number member name of o, or -1 when it is null or absent. */
static double maybe(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) || cJSON_IsRaw(v) ? json_number_value(v) : -1;
}

/* Adds what's counts to the entry of list whose member key equals item's (a new one when none
 * does), summing the members named in sum. */
static void merge_into(cJSON *list, const cJSON *item, const char *key1, const char *key2,
                       const char *const *sum)
{
    const cJSON *k1 = cJSON_GetObjectItemCaseSensitive(item, key1);
    const cJSON *k2 = key2 ? cJSON_GetObjectItemCaseSensitive(item, key2) : NULL;
    cJSON *e;

    cJSON_ArrayForEach(e, list)
    {
        if (cJSON_Compare(cJSON_GetObjectItemCaseSensitive(e, key1), k1, 1) &&
            (!key2 || cJSON_Compare(cJSON_GetObjectItemCaseSensitive(e, key2), k2, 1)))
            break;
    }
    if (!e) {
        cJSON_AddItemToArray(list, cJSON_Duplicate(item, 1));
        return;
    }
    for (; *sum; sum++) {
        double a = maybe(e, *sum), b = maybe(item, *sum);
        if (b < 0)
            continue;
        if (strcmp(*sum, "oldest_pending_age_s") == 0)
            b = a > b ? a : b;
        else if (a > 0)
            b += a;
        cJSON_DeleteItemFromObjectCaseSensitive(e, *sum);
        json_add_number(e, *sum, b);
    }
}

static int by_records(const void *a, const void *b)
{
    double x = num(*(const cJSON *const *)a, "records"),
           y = num(*(const cJSON *const *)b, "records");
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The five most frequent of the merged dead reasons, moved into a new array. */
static cJSON *top_reasons(cJSON *all)
{
    size_t n = (size_t)cJSON_GetArraySize(all), k = 0;
    const cJSON **items = calloc(n ? n : 1, sizeof(*items));
    cJSON *top = cJSON_CreateArray(), *e;

    if (!items || !top) {
        free(items);
        return top;
    }
    cJSON_ArrayForEach(e, all) items[k++] = e;
    qsort(items, n, sizeof(*items), by_records);
    for (k = 0; k < n && k < 5; k++)
        cJSON_AddItemToArray(top, cJSON_Duplicate(items[k], 1));
    free(items);
    return top;
}

int status_collect_set(struct outbox *const *obs, size_t n, cJSON **out, struct d2f_err *err)
{
    static const char *const counts[] = {"pending", "dead", "committed", "oldest_pending_age_s",
                                         NULL};
    static const char *const records[] = {"records", NULL};
    static const char *const minute[] = {"ingested", "committed", NULL};
    cJSON *s, *files, *lease, *tables, *reasons, *minutes;
    char dir[4096];
    const char *slash;
    double totals[4] = {0, 0, 0, 0}, age = -1, lag = -1;
    int rc = 0;

    if (n == 1)
        return status_collect(obs[0], out, err);
    *out = NULL;
    if (!(s = cJSON_CreateObject()))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    slash = strrchr(outbox_path(obs[0]), '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - outbox_path(obs[0])) : 1,
             slash ? outbox_path(obs[0]) : ".");
    cJSON_AddStringToObject(s, "outbox", dir);
    json_add_number(s, "partitions", (double)n);
    files = cJSON_AddArrayToObject(s, "files");
    lease = cJSON_AddArrayToObject(s, "lease");
    tables = cJSON_AddArrayToObject(s, "tables");
    reasons = cJSON_CreateArray();
    minutes = cJSON_AddArrayToObject(s, "throughput");
    for (size_t i = 0; i < n && !rc; i++) {
        cJSON *one = NULL, *e, *f;
        if ((rc = status_collect(obs[i], &one, err)) != 0)
            break;
        if (i == 0) {
            cJSON_AddStringToObject(s, "journal", str(one, "journal", "?"));
            json_add_number(s, "schema_version", num(one, "schema_version"));
            cJSON_AddItemToObject(
                s, "settings",
                cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(one, "settings"), 1));
        }
        f = cJSON_CreateObject();
        json_add_number(f, "partition", (double)i);
        cJSON_AddStringToObject(f, "path", outbox_path(obs[i]));
        json_add_number(f, "bytes", num(one, "bytes"));
        for (int c = 0; c < 3; c++) {
            json_add_number(f, counts[c], num(one, counts[c]));
            totals[c] += num(one, counts[c]);
        }
        totals[3] += num(one, "bytes");
        cJSON_AddItemToArray(files, f);
        if (maybe(one, "oldest_pending_age_s") > age && str(one, "oldest_pending_arrived", NULL)) {
            age = maybe(one, "oldest_pending_age_s");
            cJSON_DeleteItemFromObjectCaseSensitive(s, "oldest_pending_arrived");
            cJSON_AddStringToObject(s, "oldest_pending_arrived",
                                    str(one, "oldest_pending_arrived", ""));
        }
        if (maybe(one, "lag_s") > lag)
            lag = maybe(one, "lag_s");
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(one, "lease"))
        {
            cJSON *l = cJSON_Duplicate(e, 1);
            json_add_number(l, "partition", (double)i);
            cJSON_AddItemToArray(lease, l);
        }
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(one, "tables"))
            merge_into(tables, e, "table_name", NULL, counts);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(one, "dead_reasons"))
            merge_into(reasons, e, "table_name", "last_error", records);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(one, "throughput"))
            merge_into(minutes, e, "minute", NULL, minute);
        cJSON_Delete(one);
    }
    for (int c = 0; c < 3; c++)
        json_add_number(s, counts[c], totals[c]);
    json_add_number(s, "bytes", totals[3]);
    if (age >= 0)
        json_add_number(s, "oldest_pending_age_s", age);
    if (lag >= 0)
        json_add_number(s, "lag_s", lag);
    cJSON_AddItemToObject(s, "dead_reasons", top_reasons(reasons));
    cJSON_Delete(reasons);
    if (rc) {
        cJSON_Delete(s);
        return rc;
    }
    *out = s;
    return 0;
}
