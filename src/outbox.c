/* outbox.c: the SQLite outbox. */
#include "outbox.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sqlfiles.h"

/* Tables whose key schema we have read, so that each record does not ask SQLite again. */
struct keys_entry {
    char *table, *pk, *sk;
    struct keys_entry *next;
};

/* A table whose key schema DynamoDB could not give, and when it was asked. */
struct asked {
    char *table;
    int64_t at;
    struct asked *next;
};

struct outbox {
    sqlite3 *db;
    char *path;
    const char *journal;
    sqlite3_stmt *insert;
    sqlite3_stmt *insert_raw;
    sqlite3_stmt *insert_state;
    sqlite3_stmt *keys_get;
    sqlite3_stmt *keys_put;
    sqlite3_stmt *record_get;
    sqlite3_stmt *moved_get; /* the mark 'ddb2fs repartition' leaves in a file it moved */
    sqlite3_stmt *hold;      /* stepped once and not reset while a read hold lasts */
    struct keys_entry *keys;
    struct asked *asked; /* tables whose schema could not be had, and when */
    int in_tx;
    int moved;          /* 1 once a transaction found the file moved by 'ddb2fs repartition' */
    int64_t busy_since; /* when the current wait for another's lock began (ms) */
    int64_t wait_until; /* give up waiting for a lock then (ms); 0: the busy timeout */
    int64_t waited_ms;  /* time spent waiting for others' locks, all told */
    int64_t last_id;    /* the id of the last row outbox_insert added */
};

/* Waits for another connection's lock, polling often: a writer that releases its lock and
 * takes it again a moment later (pruning, in small transactions) must not starve the one that
 * waits, as SQLite's own handler, sleeping up to 100 ms between tries, lets it. Polls every
 * millisecond for the first 100 tries, then every 5 ms, until the busy timeout. */
static int busy_wait(void *arg, int count)
{
    struct outbox *ob = arg;
    int64_t now = d2f_now_ms();

    if (count == 0)
        ob->busy_since = now;
    if (now - ob->busy_since >= OUTBOX_BUSY_TIMEOUT_MS || (ob->wait_until && now >= ob->wait_until))
        return 0;
    d2f_sleep_ms(count < 100 ? 1 : 5);
    ob->waited_ms += count < 100 ? 1 : 5;
    return 1;
}

void outbox_wait_until(struct outbox *ob, int64_t until_ms)
{
    ob->wait_until = until_ms;
}

int64_t outbox_last_id(const struct outbox *ob)
{
    return ob->last_id;
}

int64_t outbox_lock_waited_ms(const struct outbox *ob)
{
    return ob->waited_ms;
}

static const char insert_sql[] =
    "INSERT INTO record_info (stream_arn, seq, seq_key, raw_sha256, event_id, event_name, "
    "table_name, document, op, created_at, arrived_at, kind) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, coalesce(?12, 'stream')) "
    "ON CONFLICT DO NOTHING";
static const char insert_state_sql[] =
    "INSERT INTO record_state (id, state, last_error, committed_at) VALUES (?1, ?2, ?3, ?4)";
static const char record_get_sql[] =
    "SELECT i.op, x.raw FROM record_info i JOIN record_raw x USING (id) WHERE id = ?1";
static const char insert_raw_sql[] = "INSERT INTO record_raw (id, raw) VALUES (?1, ?2)";
static const char moved_sql[] = "SELECT 1 FROM meta WHERE key = '" OUTBOX_MOVED_KEY "'";
static const char keys_get_sql[] =
    "SELECT partition_key, sort_key FROM key_schema WHERE table_name = ?1";
static const char keys_put_sql[] =
    "INSERT INTO key_schema (table_name, partition_key, sort_key, source, recorded_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING";

static int db_err(struct outbox *ob, struct d2f_err *err, const char *what)
{
    return d2f_errf(err, D2F_EDB, "cannot %s in outbox '%s': %s", what, ob->path,
                    sqlite3_errmsg(ob->db));
}

/* File systems where SQLite's WAL cannot work: no shared memory across hosts. */
static int network_fs(long type)
{
    switch ((unsigned long)type & 0xFFFFFFFFUL) {
    case 0x6969UL:     /* NFS (EFS) */
    case 0x517BUL:     /* SMB */
    case 0xFF534D42UL: /* CIFS */
    case 0xFE534D42UL: /* SMB2 */
    case 0x65735546UL: /* FUSE */
    case 0x00C36400UL: /* Ceph */
    case 0x01021997UL: /* 9P */
    case 0x5346414FUL: /* AFS */
    case 0x01161970UL: /* GFS2 */
    case 0x7461636FUL: /* OCFS2 */
    case 0x0BD00BD0UL: /* Lustre */
        return 1;
    }
    return 0;
}

/* "wal" on a local disk, "delete" (the rollback journal) elsewhere or when unsure. */
static const char *choose_journal(const char *path, enum config_journal journal)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct statfs st;

    if (journal == CONFIG_JOURNAL_WAL)
        return "wal";
    if (journal == CONFIG_JOURNAL_DELETE)
        return "delete";
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (statfs(dir, &st) != 0 || network_fs((long)st.f_type))
        return "delete";
    return "wal";
}

static int exec(struct outbox *ob, const char *sql, const char *what, struct d2f_err *err)
{
    if (sqlite3_exec(ob->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_err(ob, err, what);
    return 0;
}

static int user_version(struct outbox *ob, int *version, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(ob->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_err(ob, err, "read the schema version");
    rc = sqlite3_step(st);
    *version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_err(ob, err, "read the schema version");
}

/* The schema version this ddb2fs knows: the number of its last sql/ file. */
static int latest_version(void)
{
    return sqlfiles_count ? atoi(sqlfiles[sqlfiles_count - 1].name) : 0;
}

static int scalar(struct outbox *ob, const char *sql, const char *text, int64_t *value, int *found,
                  struct d2f_err *err);

/* Applies the sql/ files numbered above the outbox's version, in order. Numbers rise but may
 * skip (a version another change brings is applied when it comes, before any higher one). */
static int migrate(struct outbox *ob, struct d2f_err *err)
{
    int version, latest = latest_version(), rc, found;
    int64_t cookie = 0;
    char sql[96];

    if ((rc = user_version(ob, &version, err)) != 0)
        return rc;
    if (version == latest)
        return 0;
    if (version > latest)
        return d2f_errf(err, D2F_ESCHEMA,
                        "outbox '%s' has schema version %d; this ddb2fs knows up to %d: upgrade "
                        "ddb2fs",
                        ob->path, version, latest);
    if ((rc = exec(ob, "BEGIN IMMEDIATE", "start the schema migration", err)) != 0)
        return rc;
    /* another process may have migrated while we waited for the lock */
    if ((rc = user_version(ob, &version, err)) != 0)
        goto fail;
    for (size_t v = 0, prev = 0; v < sqlfiles_count; v++) {
        int number = atoi(sqlfiles[v].name);
        if (number <= (int)prev) {
            rc = d2f_errf(err, D2F_ESCHEMA, "sql/%s is out of sequence: expected a version over %d",
                          sqlfiles[v].name, (int)prev);
            goto fail;
        }
        prev = (size_t)number;
        if (number <= version)
            continue;
        if (sqlite3_exec(ob->db, sqlfiles[v].text, NULL, NULL, NULL) != SQLITE_OK) {
            rc = d2f_errf(err, D2F_EDB, "cannot apply sql/%s to outbox '%s': %s", sqlfiles[v].name,
                          ob->path, sqlite3_errmsg(ob->db));
            goto fail;
        }
    }
    /* a migration may change a table's CREATE text in place (sql/0008): raising schema_version
     * makes every connection, this one included, read the schema anew */
    if ((rc = scalar(ob, "PRAGMA schema_version", NULL, &cookie, &found, err)) != 0)
        goto fail;
    snprintf(sql, sizeof(sql), "PRAGMA schema_version = %lld; PRAGMA user_version = %d",
             (long long)cookie + 1, latest);
    if ((rc = exec(ob, sql, "set the schema version", err)) != 0)
        goto fail;
    return exec(ob, "COMMIT", "commit the schema migration", err);
fail:
    sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Sets the journal mode; switching needs the database to itself, so wait for others. */
static int set_journal(struct outbox *ob, const char *mode, struct d2f_err *err)
{
    char sql[64];
    int64_t give_up = d2f_now_ms() + OUTBOX_BUSY_TIMEOUT_MS;

    snprintf(sql, sizeof(sql), "PRAGMA journal_mode = %s", mode);
    for (;;) {
        int rc = sqlite3_exec(ob->db, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            break;
        if ((rc & 0xFF) != SQLITE_BUSY || d2f_now_ms() > give_up)
            return db_err(ob, err, "set the journal mode");
        d2f_sleep_ms(10);
    }
    ob->journal = strcmp(mode, "wal") == 0 ? "wal" : "delete";
    return 0;
}

static void forget_keys(struct outbox *ob);
static int corrupt(struct outbox *ob, const char *why, struct d2f_err *err);

/* Checks a file opened read-only: its schema must be this ddb2fs's (nothing is migrated). */
static int read_only(struct outbox *ob, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int version, rc;

    if ((rc = user_version(ob, &version, err)) != 0)
        return rc;
    if (version != latest_version())
        return d2f_errf(err, D2F_ESCHEMA,
                        "outbox '%s' has schema version %d and this ddb2fs %d: run a command "
                        "that writes (status, drain) to migrate it first",
                        ob->path, version, latest_version());
    ob->journal = "wal";
    if (sqlite3_prepare_v2(ob->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        ob->journal = "delete";
    sqlite3_finalize(st);
    if (sqlite3_prepare_v3(ob->db, record_get_sql, -1, SQLITE_PREPARE_PERSISTENT, &ob->record_get,
                           NULL) != SQLITE_OK)
        return db_err(ob, err, "prepare statements");
    return 0;
}

/* The outbox holds whole item images: its file is the owner's alone (0600), made so before
 * SQLite opens it, whatever the umask; SQLite gives the -wal, -shm and -journal files the
 * database file's mode. A file an older version left group- or world-readable is tightened. */
static void owner_only(const char *path)
{
    struct stat st;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd >= 0) {
        if (fchmod(fd, 0600) != 0)
            log_write(LOG_WARN, "cannot make the new outbox file mode 0600", NULL);
        close(fd);
    } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) &&
               st.st_uid == geteuid() && chmod(path, 0600) != 0) {
        log_write(LOG_WARN, "cannot make the outbox file mode 0600", NULL);
    }
}

int outbox_open(struct outbox **out, const char *path, enum config_journal journal,
                enum outbox_open_mode mode, struct d2f_err *err)
{
    struct outbox *ob;
    int64_t pages = 0;
    int found;
    int flags = mode == OUTBOX_READONLY
                    ? SQLITE_OPEN_READONLY
                    : SQLITE_OPEN_READWRITE | (mode == OUTBOX_CREATE ? SQLITE_OPEN_CREATE : 0);
    int rc;

    *out = NULL;
    if (mode != OUTBOX_CREATE && access(path, F_OK) != 0)
        return d2f_errf(err, D2F_EIO, "outbox '%s' does not exist (set DDB2FS_OUTBOX)", path);
    ob = calloc(1, sizeof(*ob));
    if (!ob || !(ob->path = strdup(path))) {
        free(ob);
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    }
    if (mode != OUTBOX_READONLY)
        owner_only(path);
    if (sqlite3_open_v2(path, &ob->db, flags, NULL) != SQLITE_OK) {
        rc = d2f_errf(err, D2F_EDB, "cannot open outbox '%s': %s", path,
                      ob->db ? sqlite3_errmsg(ob->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(ob->db, 1);
    sqlite3_busy_handler(ob->db, busy_wait, ob);
    if (mode == OUTBOX_READONLY) {
        if ((rc = read_only(ob, err)) != 0)
            goto fail;
        *out = ob;
        return 0;
    }
    /* a new file frees the pages of pruned rows back to the file system; setting it on a file
     * that exists would rewrite its header at every start */
    if ((rc = scalar(ob, "PRAGMA page_count", NULL, &pages, &found, err)) != 0 ||
        (pages == 0 &&
         (rc = exec(ob, "PRAGMA auto_vacuum = INCREMENTAL", "set auto_vacuum", err)) != 0) ||
        (rc = set_journal(ob, choose_journal(path, journal), err)) != 0 ||
        (rc = exec(ob, "PRAGMA synchronous = FULL", "set synchronous", err)) != 0 ||
        (rc = exec(ob, "PRAGMA cache_size = -16384", "set the cache size", err)) != 0 ||
        (rc = exec(ob, "PRAGMA wal_autocheckpoint = 16384", "set the checkpoint size", err)) != 0 ||
        (rc = migrate(ob, err)) != 0)
        goto fail;
    if (sqlite3_prepare_v3(ob->db, insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &ob->insert, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(ob->db, insert_raw_sql, -1, SQLITE_PREPARE_PERSISTENT, &ob->insert_raw,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(ob->db, insert_state_sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &ob->insert_state, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(ob->db, keys_get_sql, -1, SQLITE_PREPARE_PERSISTENT, &ob->keys_get,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(ob->db, keys_put_sql, -1, SQLITE_PREPARE_PERSISTENT, &ob->keys_put,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(ob->db, record_get_sql, -1, SQLITE_PREPARE_PERSISTENT, &ob->record_get,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(ob->db, moved_sql, -1, SQLITE_PREPARE_PERSISTENT, &ob->moved_get,
                           NULL) != SQLITE_OK) {
        rc = db_err(ob, err, "prepare statements");
        goto fail;
    }
    *out = ob;
    return 0;
fail:
    if (rc == D2F_EDB && ob->db &&
        ((sqlite3_errcode(ob->db) & 0xFF) == SQLITE_CORRUPT ||
         (sqlite3_errcode(ob->db) & 0xFF) == SQLITE_NOTADB))
        rc = corrupt(ob, sqlite3_errmsg(ob->db), err);
    outbox_close(ob);
    return rc;
}

/* Stops a check at its deadline. */
static int check_progress(void *arg)
{
    return d2f_now_ms() >= *(const int64_t *)arg;
}

static int corrupt(struct outbox *ob, const char *why, struct d2f_err *err)
{
    return d2f_errf(err, D2F_EDAMAGE,
                    "outbox '%s' is corrupt (%s): nothing is acknowledged into it; restore the "
                    "file from its EFS backup, then run 'ddb2fs replay' to bring Firestore to "
                    "what it holds",
                    ob->path, why);
}

int outbox_check(struct outbox *ob, int64_t budget_ms, int *complete, struct d2f_err *err)
{
    static const char *const checks[] = {"PRAGMA quick_check(1)", "PRAGMA integrity_check(1)"};
    int64_t until = d2f_now_ms() + budget_ms;
    int rc = 0;

    *complete = 1;
    sqlite3_progress_handler(ob->db, 1000, check_progress, &until);
    for (size_t i = 0; i < 2 && !rc && *complete; i++) {
        sqlite3_stmt *st = NULL;
        int s = sqlite3_prepare_v2(ob->db, checks[i], -1, &st, NULL);

        if (s == SQLITE_OK)
            s = sqlite3_step(st);
        if (s == SQLITE_ROW) {
            const char *v = (const char *)sqlite3_column_text(st, 0);
            if (!v || strcmp(v, "ok") != 0)
                rc = corrupt(ob, v ? v : "no verdict", err);
        } else if ((s & 0xFF) == SQLITE_INTERRUPT) {
            *complete = 0;
        } else if ((s & 0xFF) == SQLITE_CORRUPT || (s & 0xFF) == SQLITE_NOTADB) {
            rc = corrupt(ob, sqlite3_errmsg(ob->db), err);
        } else {
            rc = db_err(ob, err, "check the outbox's health");
        }
        sqlite3_finalize(st);
    }
    sqlite3_progress_handler(ob->db, 0, NULL, NULL);
    return rc;
}

void outbox_close(struct outbox *ob)
{
    if (!ob)
        return;
    if (ob->in_tx)
        outbox_rollback(ob);
    sqlite3_finalize(ob->insert);
    sqlite3_finalize(ob->insert_raw);
    sqlite3_finalize(ob->insert_state);
    sqlite3_finalize(ob->keys_get);
    sqlite3_finalize(ob->keys_put);
    sqlite3_finalize(ob->record_get);
    sqlite3_finalize(ob->moved_get);
    sqlite3_finalize(ob->hold);
    sqlite3_close(ob->db);
    forget_keys(ob);
    while (ob->asked) {
        struct asked *a = ob->asked;
        ob->asked = a->next;
        free(a->table);
        free(a);
    }
    free(ob->path);
    free(ob);
}

const char *outbox_journal(const struct outbox *ob)
{
    return ob->journal;
}

const char *outbox_path(const struct outbox *ob)
{
    return ob->path;
}

sqlite3 *outbox_db(struct outbox *ob)
{
    return ob->db;
}

int outbox_read_hold(struct outbox *ob, struct d2f_err *err)
{
    /* in autocommit mode a read transaction lasts while a statement is between its first row
     * and its reset; sqlite_schema always has a row */
    if (ob->hold && sqlite3_stmt_busy(ob->hold))
        return 0;
    if (!ob->hold && sqlite3_prepare_v2(ob->db, "SELECT 1 FROM sqlite_schema LIMIT 1", -1,
                                        &ob->hold, NULL) != SQLITE_OK)
        return db_err(ob, err, "read the outbox");
    if (sqlite3_step(ob->hold) != SQLITE_ROW) {
        sqlite3_reset(ob->hold);
        return db_err(ob, err, "read the outbox");
    }
    return 0;
}

void outbox_read_release(struct outbox *ob)
{
    if (ob && ob->hold)
        sqlite3_reset(ob->hold);
}

int outbox_begin(struct outbox *ob, struct d2f_err *err)
{
    int rc, step = SQLITE_DONE;

    outbox_read_release(ob);
    rc = exec(ob, "BEGIN IMMEDIATE", "start a transaction", err);

    ob->in_tx = rc == 0;
    /* a file that 'ddb2fs repartition' moved takes nothing more: its rows are elsewhere now
     * (every writer comes through here; read-only opens prepare no statement) */
    if (!rc && ob->moved_get) {
        step = sqlite3_step(ob->moved_get);
        sqlite3_reset(ob->moved_get);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            rc = db_err(ob, err, "read the outbox's moved mark");
    }
    if (!rc && step == SQLITE_ROW) {
        outbox_rollback(ob);
        ob->moved = 1;
        rc = d2f_errf(err, D2F_EIO,
                      "outbox '%s' was moved by 'ddb2fs repartition': open DDB2FS_OUTBOX again",
                      ob->path);
    } else if (rc && ob->in_tx) {
        outbox_rollback(ob);
    }
    return rc;
}

int outbox_moved(const struct outbox *ob)
{
    return ob->moved;
}

/* Copies every row of the query st (columns in the order of table's) into table of to. */
static int copy_rows(struct outbox *from, sqlite3_stmt *st, struct outbox *to, const char *table,
                     struct d2f_err *err)
{
    int cols = sqlite3_column_count(st), rc = 0;
    char sql[512];
    size_t used;
    sqlite3_stmt *ins = NULL;

    used = (size_t)snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO \"%s\" VALUES (", table);
    for (int i = 0; i < cols && used < sizeof(sql) - 8; i++)
        used += (size_t)snprintf(sql + used, sizeof(sql) - used, "%s?", i ? "," : "");
    snprintf(sql + used, sizeof(sql) - used, ")");
    if (sqlite3_prepare_v2(to->db, sql, -1, &ins, NULL) != SQLITE_OK)
        return db_err(to, err, "prepare a copy");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < cols; i++)
            sqlite3_bind_value(ins, i + 1, sqlite3_column_value(st, i));
        if (sqlite3_step(ins) != SQLITE_DONE) {
            sqlite3_finalize(ins);
            return db_err(to, err, "copy a row");
        }
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    return rc == SQLITE_DONE ? 0 : db_err(from, err, "read the rows to copy");
}

int outbox_copy_into(struct outbox *from, struct outbox *const *to, size_t n,
                     size_t (*part_of)(const char *raw, size_t len, size_t n), int64_t *copied,
                     struct d2f_err *err)
{
    static const char tables_sql[] =
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND "
        "name NOT IN ('record_info', 'record_state', 'record_raw', 'lease')";
    static const char rows_sql[] =
        "SELECT i.stream_arn, i.seq, i.seq_key, i.raw_sha256, i.event_id, i.event_name, "
        "i.table_name, i.document, i.op, i.created_at, i.arrived_at, s.state, s.attempts, "
        "s.last_error, s.committed_at, r.raw FROM record_info i JOIN record_state s USING (id) "
        "JOIN record_raw r USING (id) ORDER BY i.id";
    sqlite3_stmt *st = NULL, *ins[3][CONFIG_PARTITIONS_MAX] = {{NULL}};
    static const char info_sql[] =
        "INSERT INTO record_info (stream_arn, seq, seq_key, raw_sha256, event_id, event_name, "
        "table_name, document, op, created_at, arrived_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
        "?8, ?9, ?10, ?11)";
    static const char state_sql[] =
        "INSERT INTO record_state (id, state, attempts, last_error, committed_at) VALUES (?1, ?2, "
        "?3, ?4, ?5)";
    static const char raw_sql[] = "INSERT INTO record_raw (id, raw) VALUES (?1, ?2)";
    static const char *const ins_sql[3] = {info_sql, state_sql, raw_sql};
    int rc = 0, step;

    *copied = 0;
    /* the small tables (key schemas, settings, meta, and the like) go to every file whole */
    if (sqlite3_prepare_v2(from->db, tables_sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(from, err, "list the tables");
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        char sql[300];
        const char *name = (const char *)sqlite3_column_text(st, 0);
        for (size_t k = 0; k < n && !rc; k++) {
            sqlite3_stmt *rows = NULL;
            snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\"", name);
            if (sqlite3_prepare_v2(from->db, sql, -1, &rows, NULL) != SQLITE_OK)
                rc = db_err(from, err, "read a table to copy");
            else
                rc = copy_rows(from, rows, to[k], name, err);
            sqlite3_finalize(rows);
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    for (size_t k = 0; k < n && !rc; k++) {
        if (sqlite3_exec(to[k]->db, "DELETE FROM meta WHERE key = '" OUTBOX_MOVED_KEY "'", NULL,
                         NULL, NULL) != SQLITE_OK)
            rc = db_err(to[k], err, "clear the moved mark");
        for (int q = 0; q < 3 && !rc; q++)
            if (sqlite3_prepare_v2(to[k]->db, ins_sql[q], -1, &ins[q][k], NULL) != SQLITE_OK)
                rc = db_err(to[k], err, "prepare a copy");
    }
    /* the records, in arrival order, each into the file its own table and Keys choose */
    if (!rc && sqlite3_prepare_v2(from->db, rows_sql, -1, &st, NULL) != SQLITE_OK)
        rc = db_err(from, err, "read the records to copy");
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *raw = (const char *)sqlite3_column_text(st, 15);
        size_t k = part_of(raw ? raw : "", (size_t)sqlite3_column_bytes(st, 15), n);
        sqlite3_int64 id;
        for (int i = 0; i < 11; i++)
            sqlite3_bind_value(ins[0][k], i + 1, sqlite3_column_value(st, i));
        if (sqlite3_step(ins[0][k]) != SQLITE_DONE) {
            rc = db_err(to[k], err, "copy a record");
            break;
        }
        id = sqlite3_last_insert_rowid(to[k]->db);
        sqlite3_bind_int64(ins[1][k], 1, id);
        for (int i = 0; i < 4; i++)
            sqlite3_bind_value(ins[1][k], i + 2, sqlite3_column_value(st, 11 + i));
        sqlite3_bind_int64(ins[2][k], 1, id);
        sqlite3_bind_value(ins[2][k], 2, sqlite3_column_value(st, 15));
        if (sqlite3_step(ins[1][k]) != SQLITE_DONE || sqlite3_step(ins[2][k]) != SQLITE_DONE) {
            rc = db_err(to[k], err, "copy a record");
            break;
        }
        for (int q = 0; q < 3; q++)
            sqlite3_reset(ins[q][k]);
        (*copied)++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = db_err(from, err, "read the records to copy");
    sqlite3_finalize(st);
    for (int q = 0; q < 3; q++)
        for (size_t k = 0; k < n; k++)
            sqlite3_finalize(ins[q][k]);
    return rc;
}

int outbox_commit(struct outbox *ob, struct d2f_err *err)
{
    int rc = exec(ob, "COMMIT", "commit", err);

    if (rc == 0)
        ob->in_tx = 0;
    return rc;
}

static void forget_keys(struct outbox *ob)
{
    while (ob->keys) {
        struct keys_entry *k = ob->keys;
        ob->keys = k->next;
        free(k->table);
        free(k->pk);
        free(k->sk);
        free(k);
    }
}

void outbox_rollback(struct outbox *ob)
{
    if (!ob->in_tx)
        return;
    sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
    ob->in_tx = 0;
    /* a key schema read or recorded in the transaction may be gone with it */
    forget_keys(ob);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Steps a prepared insert and resets it; 0 or the outbox error. */
static int step_insert(struct outbox *ob, sqlite3_stmt *st, struct d2f_err *err)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : db_err(ob, err, "insert a record");
}

int outbox_insert(struct outbox *ob, const struct outbox_row *row, int *inserted,
                  struct d2f_err *err)
{
    sqlite3_stmt *st = ob->insert;
    sqlite3_int64 id;
    int rc;

    bind_text(st, 1, row->stream_arn);
    bind_text(st, 2, row->seq);
    bind_text(st, 3, row->seq_key);
    bind_text(st, 4, row->raw_sha256);
    bind_text(st, 5, row->event_id);
    bind_text(st, 6, row->event_name);
    bind_text(st, 7, row->table);
    bind_text(st, 8, row->document);
    bind_text(st, 9, row->op);
    if (row->created_at)
        sqlite3_bind_int64(st, 10, row->created_at);
    else
        sqlite3_bind_null(st, 10);
    sqlite3_bind_int64(st, 11, row->arrived_at);
    bind_text(st, 12, row->kind);
    if ((rc = step_insert(ob, st, err)) != 0)
        return rc;
    *inserted = sqlite3_changes(ob->db) == 1;
    if (!*inserted)
        return 0;
    id = sqlite3_last_insert_rowid(ob->db);
    ob->last_id = id;
    st = ob->insert_state;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, row->state);
    bind_text(st, 3, row->last_error);
    if (strcmp(row->state, "committed") == 0)
        sqlite3_bind_int64(st, 4, row->arrived_at);
    if ((rc = step_insert(ob, st, err)) != 0)
        return rc;
    st = ob->insert_raw;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text64(st, 2, row->raw, row->raw_len, SQLITE_STATIC, SQLITE_UTF8);
    return step_insert(ob, st, err);
}

static char *dup_or_null(const unsigned char *s)
{
    return s ? strdup((const char *)s) : NULL;
}

int outbox_keys_get(struct outbox *ob, const char *table, const char **pk, const char **sk,
                    int *found, struct d2f_err *err)
{
    struct keys_entry *k;
    sqlite3_stmt *st = ob->keys_get;
    int rc;

    *found = 0;
    for (k = ob->keys; k; k = k->next) {
        if (strcmp(k->table, table) == 0) {
            *pk = k->pk;
            *sk = k->sk;
            *found = 1;
            return 0;
        }
    }
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        k = calloc(1, sizeof(*k));
        if (!k || !(k->table = strdup(table)) ||
            !(k->pk = dup_or_null(sqlite3_column_text(st, 0))) ||
            (sqlite3_column_type(st, 1) != SQLITE_NULL &&
             !(k->sk = dup_or_null(sqlite3_column_text(st, 1))))) {
            sqlite3_reset(st);
            if (k) {
                free(k->table);
                free(k->pk);
                free(k);
            }
            return d2f_errf(err, D2F_ENOMEM, "out of memory");
        }
        k->next = ob->keys;
        ob->keys = k;
        *pk = k->pk;
        *sk = k->sk;
        *found = 1;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(ob, err, "read the key schema");
    return 0;
}

int outbox_keys_put(struct outbox *ob, const char *table, const char *pk, const char *sk,
                    const char *source, const char **rpk, const char **rsk, struct d2f_err *err)
{
    sqlite3_stmt *st = ob->keys_put;
    int rc, found;

    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pk, -1, SQLITE_STATIC);
    bind_text(st, 3, sk);
    sqlite3_bind_text(st, 4, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, d2f_now_ms());
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return db_err(ob, err, "record the key schema");
    if ((rc = outbox_keys_get(ob, table, rpk, rsk, &found, err)) != 0)
        return rc;
    return found ? 0 : db_err(ob, err, "read back the key schema");
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* A failed DescribeTable is not asked again before this. */
#define ASK_AGAIN_MS 60000

int outbox_keys_may_ask(struct outbox *ob, const char *table)
{
    for (struct asked *a = ob->asked; a; a = a->next)
        if (strcmp(a->table, table) == 0)
            return d2f_now_ms() - a->at > ASK_AGAIN_MS;
    return 1;
}

void outbox_keys_asked(struct outbox *ob, const char *table)
{
    struct asked *a;

    for (a = ob->asked; a && strcmp(a->table, table) != 0; a = a->next)
        ;
    if (!a) {
        a = calloc(1, sizeof(*a));
        if (!a || !(a->table = strdup(table))) {
            free(a);
            return; /* not remembered: the next record asks again */
        }
        a->next = ob->asked;
        ob->asked = a;
    }
    a->at = d2f_now_ms();
}

int outbox_check_keys(struct outbox *ob, const struct config *cfg, struct d2f_err *err)
{
    for (size_t i = 0; i < cfg->nkeys; i++) {
        const struct config_keys *k = &cfg->keys[i];
        const char *pk, *sk;
        int found, rc = outbox_keys_get(ob, k->table, &pk, &sk, &found, err);

        if (rc)
            return rc;
        if (found && (!same(pk, k->partition) || !same(sk, k->sort)))
            return d2f_errf(err, D2F_ESCHEMA,
                            "DDB2FS_KEYS: table '%s' is set to (%s%s%s) but outbox '%s' recorded "
                            "its key schema as (%s%s%s); the document ids would change",
                            k->table, k->partition, k->sort ? ", " : "", k->sort ? k->sort : "",
                            ob->path, pk, sk ? ", " : "", sk ? sk : "");
    }
    return 0;
}

static char *column_dup(sqlite3_stmt *st, int i, size_t *len)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    char *s;

    if (!t)
        return NULL;
    s = malloc(n + 1);
    if (s) {
        memcpy(s, t, n);
        s[n] = '\0';
    }
    if (len)
        *len = n;
    return s;
}

void outbox_pending_free(struct outbox_pending *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].document);
        free(rows[i].table);
    }
    free(rows);
}

int outbox_select_rows(struct outbox *ob, sqlite3_stmt *st, size_t limit,
                       struct outbox_pending **rows, size_t *n, struct d2f_err *err)
{
    struct outbox_pending *out = calloc(limit ? limit : 1, sizeof(*out));
    size_t count = 0;
    int rc = SQLITE_DONE;

    *rows = NULL;
    *n = 0;
    if (!out)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    while (count < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct outbox_pending *r = &out[count++];
        r->id = sqlite3_column_int64(st, 0);
        r->document = column_dup(st, 1, NULL);
        r->table = column_dup(st, 2, NULL);
        if ((sqlite3_column_type(st, 1) != SQLITE_NULL && !r->document) ||
            (sqlite3_column_type(st, 2) != SQLITE_NULL && !r->table)) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        outbox_pending_free(out, count);
        return rc == SQLITE_NOMEM ? d2f_errf(err, D2F_ENOMEM, "out of memory")
                                  : db_err(ob, err, "read records");
    }
    *rows = out;
    *n = count;
    return 0;
}

/* The drain's window: pending stream rows and ready snapshots in arrival order; once the
 * backfill's rules have held documents on this connection (temp.held, backfill.h), without
 * theirs. */
#define WINDOW_ROWS                                                                                \
    "SELECT s.id, i.document, i.table_name FROM record_state s JOIN record_info i USING (id) "     \
    "WHERE s.state = 'pending' AND s.id > ?1 AND (i.kind = 'stream' OR "                           \
    "(SELECT p.ready FROM snapshot p WHERE p.id = s.id)) "
static const char window_all[] = WINDOW_ROWS "ORDER BY s.id LIMIT ?2";
static const char window_held[] =
    WINDOW_ROWS "AND i.document NOT IN (SELECT document FROM temp.held) ORDER BY s.id LIMIT ?2";

int outbox_pending_window(struct outbox *ob, int64_t after_id, size_t limit,
                          struct outbox_pending **rows, size_t *n, struct d2f_err *err)
{
    struct d2f_err none = {0};
    sqlite3_stmt *st = NULL;
    int64_t held = 0;
    int found = 0, rc;

    *rows = NULL;
    *n = 0;
    if (scalar(ob, "SELECT 1 FROM temp.sqlite_master WHERE name = 'held'", NULL, &held, &found,
               &none) != 0)
        held = 0;
    if (sqlite3_prepare_v2(ob->db, held ? window_held : window_all, -1, &st, NULL) != SQLITE_OK)
        return db_err(ob, err, "read pending records");
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    rc = outbox_select_rows(ob, st, limit, rows, n, err);
    sqlite3_finalize(st);
    return rc;
}

/* Ends a write transaction: finalizes st, commits when rc is 0, rolls back otherwise. */
static int end_tx(struct outbox *ob, sqlite3_stmt *st, int rc, struct d2f_err *err)
{
    sqlite3_finalize(st);
    if (!rc)
        rc = outbox_commit(ob, err);
    if (rc)
        outbox_rollback(ob);
    return rc;
}

/* Runs sql (binding ?1 = each id, ?2 = text, ?3 = now) for every id, in one transaction. */
static int update_rows(struct outbox *ob, const char *sql, const int64_t *ids, size_t n,
                       const char *text, const char *what, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int64_t now = d2f_now_ms();
    int rc;

    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if (sqlite3_prepare_v2(ob->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_err(ob, err, what);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, ids[i]);
        bind_text(st, 2, text);
        sqlite3_bind_int64(st, 3, now);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_err(ob, err, what);
            goto out;
        }
        sqlite3_reset(st);
    }
out:
    return end_tx(ob, st, rc, err);
}

int outbox_mark(struct outbox *ob, const int64_t *ids, size_t n, enum outbox_mark_as state,
                const char *error, struct d2f_err *err)
{
    if (state == OUTBOX_COMMITTED)
        return update_rows(ob,
                           "UPDATE record_state SET state = 'committed', committed_at = ?3, "
                           "attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                           ids, n, error, "mark records committed", err);
    return update_rows(ob,
                       "UPDATE record_state SET state = 'dead', attempts = attempts + 1, "
                       "last_error = ?2 WHERE id = ?1",
                       ids, n, error, "mark records dead", err);
}

int outbox_note_failure(struct outbox *ob, const int64_t *ids, size_t n, const char *error,
                        struct d2f_err *err)
{
    return update_rows(ob,
                       "UPDATE record_state SET attempts = attempts + 1, last_error = ?2 "
                       "WHERE id = ?1 AND state = 'pending'",
                       ids, n, error, "note a failed attempt", err);
}

int outbox_set_document(struct outbox *ob, int64_t id, const char *document, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL, *clear = NULL;
    int rc;

    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if (sqlite3_prepare_v2(ob->db, "UPDATE record_info SET document = ?2 WHERE id = ?1", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ob->db, "UPDATE record_state SET last_error = NULL WHERE id = ?1", -1,
                           &clear, NULL) != SQLITE_OK) {
        rc = db_err(ob, err, "set a record's document");
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, document, -1, SQLITE_STATIC);
    sqlite3_bind_int64(clear, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE || sqlite3_step(clear) != SQLITE_DONE)
        rc = db_err(ob, err, "set a record's document");
out:
    sqlite3_finalize(clear);
    return end_tx(ob, st, rc, err);
}

/* The first column of the first row of sql (with ?1 bound to text when not NULL). */
static int scalar(struct outbox *ob, const char *sql, const char *text, int64_t *value, int *found,
                  struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(ob->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(ob, err, "read the outbox");
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found)
        *value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(ob, err, "read the outbox");
}

int outbox_pending_count(struct outbox *ob, int64_t *n, struct d2f_err *err)
{
    int found;

    *n = 0;
    return scalar(ob, "SELECT count(*) FROM record_state WHERE state = 'pending'", NULL, n, &found,
                  err);
}

int outbox_unresolved_count(struct outbox *ob, int64_t *n, struct d2f_err *err)
{
    int found;

    *n = 0;
    return scalar(ob,
                  "SELECT count(*) FROM record_state s JOIN record_info i USING (id) "
                  "WHERE s.state = 'pending' AND i.document IS NULL",
                  NULL, n, &found, err);
}

int outbox_oldest_pending_age(struct outbox *ob, int64_t *age_ms, struct d2f_err *err)
{
    int64_t arrived = 0;
    int found, rc;

    *age_ms = 0;
    rc = scalar(ob,
                "SELECT arrived_at FROM record_info WHERE id = "
                "(SELECT min(id) FROM record_state WHERE state = 'pending')",
                NULL, &arrived, &found, err);
    if (!rc && found)
        *age_ms = d2f_now_ms() - arrived;
    return rc;
}

int outbox_meta_get(struct outbox *ob, const char *key, int64_t *value, int *found,
                    struct d2f_err *err)
{
    return scalar(ob, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1", key, value, found,
                  err);
}

int outbox_meta_set(struct outbox *ob, const char *key, int64_t value, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(ob->db,
                           "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(ob, err, "write a setting");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, value);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_err(ob, err, "write a setting");
}

int outbox_lease_take(struct outbox *ob, const char *owner, int64_t until_ms,
                      int (*gone)(const char *holder), int *taken, char *holder, size_t cap,
                      struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int64_t now = d2f_now_ms();
    int rc, claimed = 0, step;

    *taken = 0;
    holder[0] = '\0';
    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if (sqlite3_prepare_v2(ob->db, "SELECT owner, expires_at FROM lease WHERE name = 'drain'", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_err(ob, err, "read the drain lease");
        goto out;
    }
    /* a lease that could not be read is not free: taking it would take it from its holder */
    if ((step = sqlite3_step(st)) != SQLITE_ROW && step != SQLITE_DONE) {
        rc = db_err(ob, err, "read the drain lease");
        goto out;
    }
    if (step == SQLITE_ROW && sqlite3_column_int64(st, 1) > now &&
        strcmp((const char *)sqlite3_column_text(st, 0), owner) != 0 &&
        !(gone && gone((const char *)sqlite3_column_text(st, 0)))) {
        snprintf(holder, cap, "%s until %lld ms", (const char *)sqlite3_column_text(st, 0),
                 (long long)sqlite3_column_int64(st, 1));
        goto out;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(ob->db,
                           "INSERT INTO lease (name, owner, acquired_at, expires_at) "
                           "VALUES ('drain', ?1, ?2, ?3) ON CONFLICT (name) DO UPDATE SET "
                           "owner = excluded.owner, acquired_at = excluded.acquired_at, "
                           "expires_at = excluded.expires_at",
                           -1, &st, NULL) != SQLITE_OK) {
        st = NULL;
        rc = db_err(ob, err, "take the drain lease");
        goto out;
    }
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, until_ms);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_err(ob, err, "take the drain lease");
        goto out;
    }
    claimed = 1;
out:
    rc = end_tx(ob, st, rc, err);
    *taken = !rc && claimed;
    return rc;
}

int outbox_lease_release(struct outbox *ob, const char *owner, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(ob->db, "DELETE FROM lease WHERE name = 'drain' AND owner = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return db_err(ob, err, "give back the drain lease");
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_err(ob, err, "give back the drain lease");
}

int outbox_record(struct outbox *ob, int64_t id, char **op, char **raw, size_t *len,
                  struct d2f_err *err)
{
    sqlite3_stmt *st = ob->record_get;
    int rc;

    *op = *raw = NULL;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *op = column_dup(st, 0, NULL);
        *raw = column_dup(st, 1, len);
        if (!*raw || (sqlite3_column_type(st, 0) != SQLITE_NULL && !*op)) {
            free(*op);
            free(*raw);
            *op = *raw = NULL;
            sqlite3_reset(st);
            return d2f_errf(err, D2F_ENOMEM, "out of memory");
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? d2f_errf(err, D2F_EDB, "row %lld is not in outbox '%s'",
                                            (long long)id, ob->path)
                                 : db_err(ob, err, "read a record");
    return 0;
}

int outbox_replan(struct outbox *ob, int64_t id, const char *op, const char *document,
                  const char *error, struct d2f_err *err)
{
    sqlite3_stmt *info = NULL, *state = NULL;
    int rc;

    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if (sqlite3_prepare_v2(ob->db, "UPDATE record_info SET op = ?2, document = ?3 WHERE id = ?1",
                           -1, &info, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ob->db,
                           "UPDATE record_state SET last_error = ?2, attempts = attempts + 1 "
                           "WHERE id = ?1",
                           -1, &state, NULL) != SQLITE_OK) {
        rc = db_err(ob, err, "plan a record again");
        goto out;
    }
    sqlite3_bind_int64(info, 1, id);
    bind_text(info, 2, op);
    bind_text(info, 3, document);
    sqlite3_bind_int64(state, 1, id);
    bind_text(state, 2, error);
    if (sqlite3_step(info) != SQLITE_DONE || sqlite3_step(state) != SQLITE_DONE)
        rc = db_err(ob, err, "plan a record again");
out:
    sqlite3_finalize(info);
    return end_tx(ob, state, rc, err);
}

/* Rows pruned per transaction: a writer waits at most for this many. */
#define PRUNE_BATCH 500
/* The pause between two of them. */
#define PRUNE_PAUSE_MS 3

int outbox_prune(struct outbox *ob, int64_t cutoff_ms, int64_t deadline_ms, int64_t *pruned,
                 struct d2f_err *err)
{
    static const char *const del[] = {"DELETE FROM record_raw WHERE id = ?1",
                                      "DELETE FROM record_state WHERE id = ?1",
                                      "DELETE FROM record_info WHERE id = ?1"};
    /* committed before the cutoff, and not the latest state of its document: its last
     * record that is neither dead nor a skipped TTL expiry */
    static const char pick[] =
        "SELECT s.id FROM record_state s JOIN record_info i USING (id) "
        "WHERE s.id > ?1 AND s.state = 'committed' AND s.committed_at < ?2 "
        "AND (i.document IS NULL OR i.op IS NOT 'update' AND i.op IS NOT 'delete' OR s.id < "
        "(SELECT max(j.id) FROM record_info j JOIN record_state t USING (id) "
        "WHERE j.document = i.document AND t.state <> 'dead' AND j.op IN ('update', 'delete'))) "
        "ORDER BY s.id LIMIT ?3";
    int64_t ids[PRUNE_BATCH], after = 0;
    sqlite3_stmt *st = NULL, *d[3] = {NULL, NULL, NULL};
    int rc = 0;

    *pruned = 0;
    if (sqlite3_prepare_v2(ob->db, pick, -1, &st, NULL) != SQLITE_OK)
        return db_err(ob, err, "choose records to prune");
    for (int k = 0; k < 3; k++)
        if (sqlite3_prepare_v2(ob->db, del[k], -1, &d[k], NULL) != SQLITE_OK) {
            rc = db_err(ob, err, "prune records");
            goto out;
        }
    while (!rc && d2f_now_ms() < deadline_ms) {
        size_t n = 0;
        int step;

        /* each batch is its own short transaction, so ingest waits for one batch at most */
        if ((rc = outbox_begin(ob, err)) != 0)
            break;
        sqlite3_bind_int64(st, 1, after);
        sqlite3_bind_int64(st, 2, cutoff_ms);
        sqlite3_bind_int64(st, 3, PRUNE_BATCH);
        while ((step = sqlite3_step(st)) == SQLITE_ROW)
            ids[n++] = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (step != SQLITE_DONE)
            rc = db_err(ob, err, "choose records to prune");
        for (size_t i = 0; i < n && !rc; i++)
            for (int k = 0; k < 3 && !rc; k++) {
                sqlite3_bind_int64(d[k], 1, ids[i]);
                if (sqlite3_step(d[k]) != SQLITE_DONE)
                    rc = db_err(ob, err, "prune records");
                sqlite3_reset(d[k]);
            }
        if (!rc && (rc = outbox_commit(ob, err)) == 0)
            *pruned += (int64_t)n;
        if (rc)
            outbox_rollback(ob);
        if (!n)
            break;
        after = ids[n - 1];
        /* a moment without the lock, for a writer that waits (busy_wait polls every ms) */
        d2f_sleep_ms(PRUNE_PAUSE_MS);
    }
    /* give the freed pages back to the file system, a little at a time */
    while (!rc && *pruned && d2f_now_ms() < deadline_ms) {
        int64_t before = 0, left = 0;
        int found;
        if ((rc = scalar(ob, "PRAGMA freelist_count", NULL, &before, &found, err)) != 0 ||
            !before || (rc = exec(ob, "PRAGMA incremental_vacuum(2000)", "shrink the file", err)) ||
            (rc = scalar(ob, "PRAGMA freelist_count", NULL, &left, &found, err)) != 0 ||
            left >= before)
            break; /* nothing freed, or not an incremental-vacuum file */
    }
out:
    sqlite3_finalize(st);
    for (int k = 0; k < 3; k++)
        sqlite3_finalize(d[k]);
    return rc;
}

int outbox_settings(struct outbox *ob, const struct config *cfg, struct d2f_err *err)
{
    struct config_description d;
    sqlite3_stmt *st = NULL;
    int64_t now = d2f_now_ms();
    int rc;

    config_describe(cfg, &d);
    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if (sqlite3_prepare_v2(ob->db,
                           "INSERT INTO settings (name, value, recorded_at) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                           "recorded_at = excluded.recorded_at WHERE value IS NOT excluded.value",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_err(ob, err, "record the settings");
        goto out;
    }
    for (size_t i = 0; i < d.n && !rc; i++) {
        sqlite3_bind_text(st, 1, d.pairs[2 * i], -1, SQLITE_STATIC);
        bind_text(st, 2, d.pairs[2 * i + 1]);
        sqlite3_bind_int64(st, 3, now);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_err(ob, err, "record the settings");
        sqlite3_reset(st);
    }
out:
    return end_tx(ob, st, rc, err);
}
