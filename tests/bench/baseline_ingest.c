/*
 * baseline_ingest.c: the floor ddb2fs ingest is measured against.
 *
 * It only parses the event with cJSON and inserts each record's raw JSON and dedupe key
 * (stream ARN, sequence number) into an equivalent table in one transaction, with the same
 * durability settings as the outbox on a local disk (WAL, synchronous=FULL).
 *
 * usage: baseline_ingest EVENT.json DB
 */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *p;

    if (!f || fseek(f, 0, SEEK_END) != 0 || (*len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        perror(path);
        exit(1);
    }
    p = malloc((size_t)*len + 1);
    if (!p || fread(p, 1, (size_t)*len, f) != (size_t)*len) {
        perror(path);
        exit(1);
    }
    p[*len] = '\0';
    fclose(f);
    return p;
}

int main(int argc, char **argv)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    cJSON *event, *rec;
    long len;
    char *text;
    int n = 0;

    if (argc != 3) {
        fputs("usage: baseline_ingest EVENT.json DB\n", stderr);
        return 2;
    }
    text = slurp(argv[1], &len);
    if (sqlite3_open(argv[2], &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                     "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, arn TEXT, "
                     "seq TEXT, raw TEXT NOT NULL, UNIQUE (arn, seq));",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO records (arn, seq, raw) VALUES (?, ?, ?)", -1,
                           &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    event = cJSON_ParseWithLength(text, (size_t)len);
    if (!event) {
        fputs("not JSON\n", stderr);
        return 1;
    }
    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    cJSON_ArrayForEach(rec, cJSON_GetObjectItem(event, "Records"))
    {
        char *raw = cJSON_PrintUnformatted(rec);
        cJSON *arn = cJSON_GetObjectItem(rec, "eventSourceARN");
        cJSON *seq = cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "dynamodb"), "SequenceNumber");

        sqlite3_bind_text(st, 1, cJSON_GetStringValue(arn), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, cJSON_GetStringValue(seq), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, raw, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        sqlite3_reset(st);
        free(raw);
        n++;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    cJSON_Delete(event);
    free(text);
    printf("%d\n", n);
    return 0;
}
