/* fence.c: per document, the updateTime of the last write known to have landed. */
#include "fence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

static int db_err(struct outbox *ob, struct d2f_err *err, const char *what)
{
    return d2f_errf(err, D2F_EDB, "cannot %s in outbox '%s': %s", what, outbox_path(ob),
                    sqlite3_errmsg(outbox_db(ob)));
}

struct fence_reader {
    struct outbox *ob;
    sqlite3_stmt *get;
    sqlite3_stmt *name; /* the target's number, asked again while it has none */
    int64_t id;         /* the target's number; 0 until a write to it has landed */
};

static const char target_number[] = "SELECT id FROM fence_target WHERE target = ?1";

/* The number fence_target gives target into *id, made in the caller's transaction when the
 * target has none yet. */
static int target_id(struct outbox *ob, const char *target, int64_t *id, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int s;

    *id = 0;
    if (sqlite3_prepare_v2(outbox_db(ob),
                           "INSERT INTO fence_target (target) VALUES (?1) "
                           "ON CONFLICT (target) DO NOTHING",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        sqlite3_finalize(st);
        return db_err(ob, err, "name a fence target");
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(outbox_db(ob), target_number, -1, &st, NULL) != SQLITE_OK)
        return db_err(ob, err, "read a fence target");
    sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return s == SQLITE_ROW || s == SQLITE_DONE ? 0 : db_err(ob, err, "read a fence target");
}

int fence_reader_new(struct fence_reader **out, struct outbox *ob, const char *target,
                     struct d2f_err *err)
{
    struct fence_reader *rd = calloc(1, sizeof(*rd));

    *out = NULL;
    if (!rd)
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    rd->ob = ob;
    if (sqlite3_prepare_v3(outbox_db(ob),
                           "SELECT update_time FROM fence WHERE target_id = ?1 AND document = ?2",
                           -1, SQLITE_PREPARE_PERSISTENT, &rd->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(outbox_db(ob), target_number, -1, SQLITE_PREPARE_PERSISTENT, &rd->name,
                           NULL) != SQLITE_OK) {
        fence_reader_free(rd);
        return db_err(ob, err, "read documents' fences");
    }
    /* a copy: the reader owns what it binds; the number is asked for at the first read */
    sqlite3_bind_text(rd->name, 1, target, -1, SQLITE_TRANSIENT);
    *out = rd;
    return 0;
}

void fence_reader_free(struct fence_reader *rd)
{
    if (rd) {
        sqlite3_finalize(rd->get);
        sqlite3_finalize(rd->name);
        free(rd);
    }
}

int fence_get(struct fence_reader *rd, const char *document, char *time, size_t cap,
              struct d2f_err *err)
{
    int rc = 0, step;

    time[0] = '\0';
    if (!rd->id) { /* a target is named by its first write that landed: till then, no fence */
        step = sqlite3_step(rd->name);
        if (step == SQLITE_ROW)
            rd->id = sqlite3_column_int64(rd->name, 0);
        sqlite3_reset(rd->name);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return db_err(rd->ob, err, "read a fence target");
        if (!rd->id)
            return 0;
        sqlite3_bind_int64(rd->get, 1, rd->id);
    }
    sqlite3_bind_text(rd->get, 2, document, -1, SQLITE_STATIC);
    step = sqlite3_step(rd->get);
    if (step == SQLITE_ROW && sqlite3_column_text(rd->get, 0))
        snprintf(time, cap, "%s", (const char *)sqlite3_column_text(rd->get, 0));
    else if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_err(rd->ob, err, "read a document's fence");
    sqlite3_reset(rd->get);
    return rc;
}

int fence_superseded(struct outbox *ob, const char *document, int64_t id, int *newer,
                     struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, s;

    *newer = 0;
    if (sqlite3_prepare_v2(outbox_db(ob),
                           "SELECT 1 FROM record_info i JOIN record_state s USING (id) "
                           "WHERE i.document = ?1 AND i.id > ?2 AND i.op IN ('update', 'delete') "
                           "AND s.state <> 'dead' LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(ob, err, "look for a document's newer rows");
    sqlite3_bind_text(st, 1, document, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, id);
    s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *newer = 1;
    else if (s != SQLITE_DONE)
        rc = db_err(ob, err, "look for a document's newer rows");
    sqlite3_finalize(st);
    return rc;
}

/* Steps st once and resets it; 0 or the outbox error. */
static int step(struct outbox *ob, sqlite3_stmt *st, const char *what, struct d2f_err *err)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(ob, err, what);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int fence_put(struct outbox *ob, const char *target, const struct fence *f, size_t n,
              const int64_t *ids, size_t nids, const char *const *txns, size_t ntx,
              struct d2f_err *err)
{
    sqlite3 *db = outbox_db(ob);
    sqlite3_stmt *put = NULL, *mark = NULL, *forget = NULL;
    int64_t now = d2f_now_ms(), id = 0;
    int rc;

    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if (n && (rc = target_id(ob, target, &id, err)) != 0)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO fence (target_id, document, update_time) "
                           "VALUES (?1, ?2, ?3) ON CONFLICT (target_id, document) DO UPDATE SET "
                           "update_time = excluded.update_time",
                           -1, &put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "UPDATE record_state SET state = 'committed', committed_at = ?2, "
                           "attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                           -1, &mark, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM fence_transaction WHERE target = ?1 AND txn = ?2", -1,
                           &forget, NULL) != SQLITE_OK) {
        rc = db_err(ob, err, "record documents' fences");
        goto out;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_bind_int64(put, 1, id);
        sqlite3_bind_text(put, 2, f[i].document, -1, SQLITE_STATIC);
        if (f[i].update_time && f[i].update_time[0])
            sqlite3_bind_text(put, 3, f[i].update_time, -1, SQLITE_STATIC);
        rc = step(ob, put, "record a document's fence", err);
    }
    for (size_t i = 0; i < nids && !rc; i++) {
        sqlite3_bind_int64(mark, 1, ids[i]);
        sqlite3_bind_int64(mark, 2, now);
        rc = step(ob, mark, "mark records committed", err);
    }
    for (size_t i = 0; i < ntx && !rc; i++) {
        sqlite3_bind_text(forget, 1, target, -1, SQLITE_STATIC);
        sqlite3_bind_text(forget, 2, txns[i], -1, SQLITE_STATIC);
        rc = step(ob, forget, "forget a finished transaction", err);
    }
out:
    sqlite3_finalize(put);
    sqlite3_finalize(mark);
    sqlite3_finalize(forget);
    if (!rc)
        rc = outbox_commit(ob, err);
    if (rc)
        outbox_rollback(ob);
    return rc;
}

int fence_transactions_add(struct outbox *ob, const char *target, const char *const *txns,
                           const int64_t *began, size_t n, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = outbox_begin(ob, err)) != 0)
        return rc;
    if (sqlite3_prepare_v2(outbox_db(ob),
                           "INSERT OR REPLACE INTO fence_transaction (target, txn, began_at) "
                           "VALUES (?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK)
        rc = db_err(ob, err, "record a transaction");
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, txns[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, began[i]);
        rc = step(ob, st, "record a transaction", err);
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = outbox_commit(ob, err);
    if (rc)
        outbox_rollback(ob);
    return rc;
}

int fence_transactions(struct outbox *ob, const char *target, char ***txns, int64_t **began,
                       size_t *n, struct d2f_err *err)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0, k = 0;
    char **t = NULL;
    int64_t *b = NULL;
    int rc = 0, s;

    *txns = NULL;
    *began = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(outbox_db(ob),
                           "SELECT txn, began_at FROM fence_transaction WHERE target = ?1 "
                           "ORDER BY began_at",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(ob, err, "read the open transactions");
    sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            size_t want = cap ? cap * 2 : 8;
            char **nt = realloc(t, want * sizeof(*nt));
            int64_t *nb = nt ? realloc(b, want * sizeof(*nb)) : NULL;
            if (nt)
                t = nt;
            if (!nt || !nb) {
                rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
                break;
            }
            b = nb;
            cap = want;
        }
        if (!(t[k] = strdup((const char *)sqlite3_column_text(st, 0)))) {
            rc = d2f_errf(err, D2F_ENOMEM, "out of memory");
            break;
        }
        b[k++] = sqlite3_column_int64(st, 1);
    }
    if (!rc && s != SQLITE_DONE)
        rc = db_err(ob, err, "read the open transactions");
    sqlite3_finalize(st);
    if (rc) {
        fence_transactions_free(t, b, k);
        return rc;
    }
    *txns = t;
    *began = b;
    *n = k;
    return 0;
}

void fence_transactions_free(char **txns, int64_t *began, size_t n)
{
    for (size_t i = 0; txns && i < n; i++)
        free(txns[i]);
    free(txns);
    free(began);
}
