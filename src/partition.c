/* partition.c: the outbox as N SQLite files. */
#include "partition.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "event.h"
#include "json.h"
#include "number.h"

#define MANIFEST "manifest.json"
#define MANIFEST_MAX 4096
#define MANIFEST_VERSION 1

struct partitions {
    size_t n;
    struct outbox *ob[CONFIG_PARTITIONS_MAX];
};

/* The path of file i of a partitioned outbox at dir, into out (cap bytes); 0, or -1 when it
 * does not fit. */
static int partition_path(const char *dir, size_t i, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/part-%02zu.db", dir, i);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int partitions_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Hashes one field as a 4-byte big-endian length and its bytes. */
static void field(crypto_hash_sha256_state *h, const void *p, size_t n)
{
    unsigned char len[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    crypto_hash_sha256_update(h, len, sizeof(len));
    crypto_hash_sha256_update(h, p, n);
}

/* Hashes a JSON text string as the UTF-8 bytes it stands for (U+0000 a zero byte). */
static int text_field(crypto_hash_sha256_state *h, const char *s)
{
    size_t n = strlen(s);
    unsigned char *bytes = malloc(n ? n : 1);

    if (!bytes)
        return -1;
    field(h, bytes, json_text_utf8(s, n, bytes));
    free(bytes);
    return 0;
}

/* Hashes an attribute's value; -1 when it is not an S, N or B value. */
static int value_field(crypto_hash_sha256_state *h, const cJSON *v)
{
    const cJSON *x = v ? v->child : NULL;
    const char *why;

    if (!cJSON_IsObject(v) || !x || x->next || !cJSON_IsString(x) || !x->string[0] || x->string[1])
        return -1;
    field(h, x->string, 1);
    switch (x->string[0]) {
    case 'S':
        return text_field(h, x->valuestring);
    case 'N': {
        struct number num;
        struct buf canon;
        int rc = -1;
        if (number_parse(x->valuestring, &num, &why) != 0)
            return -1;
        buf_init(&canon, 256);
        if (number_canonical(&num, &canon) == 0) {
            field(h, canon.data, canon.len);
            rc = 0;
        }
        buf_release(&canon);
        return rc;
    }
    case 'B': {
        size_t len = strlen(x->valuestring), out = 0;
        unsigned char *bin = malloc(len ? len : 1);
        int rc = -1;
        if (bin && sodium_base642bin(bin, len ? len : 1, x->valuestring, len, NULL, &out, NULL,
                                     sodium_base64_VARIANT_ORIGINAL) == 0) {
            field(h, bin, out);
            rc = 0;
        }
        free(bin);
        return rc;
    }
    }
    return -1;
}

static int by_name(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return json_text_cmp(x->string, y->string);
}

size_t partition_of(const char *table, const cJSON *keys, size_t n)
{
    const cJSON *attrs[64], *a;
    size_t count = 0;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state h;
    uint64_t v = 0;

    if (n <= 1 || !table || !table[0] || !cJSON_IsObject(keys))
        return 0;
    cJSON_ArrayForEach(a, keys)
    {
        if (count == sizeof(attrs) / sizeof(attrs[0]))
            return 0;
        attrs[count++] = a;
    }
    if (count == 0)
        return 0;
    qsort(attrs, count, sizeof(attrs[0]), by_name);
    crypto_hash_sha256_init(&h);
    field(&h, table, strlen(table));
    for (size_t i = 0; i < count; i++)
        if (text_field(&h, attrs[i]->string) != 0 || value_field(&h, attrs[i]) != 0)
            return 0;
    crypto_hash_sha256_final(&h, digest);
    for (int i = 0; i < 8; i++)
        v = v << 8 | digest[i];
    return (size_t)(v % n);
}

/* Reads the partitions a manifest records; 0 with err set when it cannot be read. */
static size_t read_manifest(const char *dir, struct d2f_err *err)
{
    char path[4096], text[MANIFEST_MAX];
    FILE *f;
    size_t len;
    cJSON *m;
    const cJSON *version, *n;
    size_t parts = 0;

    if (snprintf(path, sizeof(path), "%s/" MANIFEST, dir) >= (int)sizeof(path)) {
        d2f_errf(err, D2F_ECONFIG, "DDB2FS_OUTBOX: '%.64s…' is too long", dir);
        return 0;
    }
    if (!(f = fopen(path, "r"))) {
        d2f_errf(err, D2F_EIO,
                 "outbox '%s' is a directory without %s: not a partitioned outbox (%s)", dir,
                 MANIFEST, strerror(errno));
        return 0;
    }
    len = fread(text, 1, sizeof(text), f);
    fclose(f);
    m = json_parse(text, len);
    version = cJSON_GetObjectItemCaseSensitive(m, "version");
    n = cJSON_GetObjectItemCaseSensitive(m, "partitions");
    if (len == sizeof(text) || !cJSON_IsNumber(version) || !cJSON_IsNumber(n) ||
        version->valuedouble != MANIFEST_VERSION || n->valuedouble < 2 ||
        n->valuedouble > CONFIG_PARTITIONS_MAX || n->valuedouble != (double)(int)n->valuedouble)
        d2f_errf(err, D2F_EIO, "outbox '%s': %s is not a manifest this ddb2fs reads", dir,
                 MANIFEST);
    else
        parts = (size_t)n->valuedouble;
    cJSON_Delete(m);
    return parts;
}

/* Writes the manifest of an outbox of n files in dir, unless one is there: then *had is set to
 * the n it records. */
static int partition_manifest(const char *dir, size_t n, size_t *had, struct d2f_err *err)
{
    char tmp[4096], path[4096], text[256];
    int fd, len, rc = 0;

    *had = 0;
    if (snprintf(path, sizeof(path), "%s/" MANIFEST, dir) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.manifest.XXXXXX", dir) >= (int)sizeof(tmp))
        return d2f_errf(err, D2F_ECONFIG, "DDB2FS_OUTBOX: '%.64s…' is too long", dir);
    if (access(path, F_OK) == 0)
        goto read;
    len = snprintf(text, sizeof(text),
                   "{\"ddb2fs\": \"partitioned outbox\", \"version\": %d, \"partitions\": %zu, "
                   "\"files\": \"part-NN.db\", \"hash\": \"sha256 of table and Keys\"}\n",
                   MANIFEST_VERSION, n);
    if ((fd = mkstemp(tmp)) < 0)
        return d2f_errf(err, D2F_EIO, "cannot write %s in '%s': %s", MANIFEST, dir,
                        strerror(errno));
    if (write(fd, text, (size_t)len) != len || fsync(fd) != 0)
        rc = d2f_errf(err, D2F_EIO, "cannot write %s in '%s': %s", MANIFEST, dir, strerror(errno));
    close(fd);
    /* link, not rename: of two processes making the outbox at once, the first manifest stays */
    if (!rc && link(tmp, path) != 0 && errno != EEXIST)
        rc = d2f_errf(err, D2F_EIO, "cannot write %s in '%s': %s", MANIFEST, dir, strerror(errno));
    unlink(tmp);
    if (rc)
        return rc;
read:
    if ((*had = read_manifest(dir, err)) == 0)
        return err->code;
    return 0;
}

/* How many files the outbox at cfg->outbox has, or will have when made. */
static int count_files(const struct config *cfg, enum outbox_open_mode mode, size_t *n, int *dir,
                       struct d2f_err *err)
{
    const char *path = cfg->outbox;
    size_t want = cfg->partitions ? (size_t)cfg->partitions : 0, had = 0;
    int rc;

    *dir = 0;
    *n = 1;
    if (partitions_is_dir(path)) {
        char manifest[4096];
        snprintf(manifest, sizeof(manifest), "%s/" MANIFEST, path);
        if (access(manifest, F_OK) != 0 && mode == OUTBOX_CREATE && want > 1) {
            if ((rc = partition_manifest(path, want, &had, err)) != 0)
                return rc;
        } else if ((had = read_manifest(path, err)) == 0) {
            return err->code;
        }
        *dir = 1;
        *n = had;
    } else if (access(path, F_OK) != 0 && mode == OUTBOX_CREATE && want > 1) {
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return d2f_errf(err, D2F_EIO, "cannot make the outbox directory '%s': %s", path,
                            strerror(errno));
        if ((rc = partition_manifest(path, want, &had, err)) != 0)
            return rc;
        *dir = 1;
        *n = had;
    }
    if (want && want != *n)
        return d2f_errf(err, D2F_ECONFIG,
                        "DDB2FS_PARTITIONS: %zu, but the outbox '%s' has %zu (fixed when it was "
                        "made): set DDB2FS_PARTITIONS=%zu, or move it with 'ddb2fs repartition "
                        "%zu'",
                        want, path, *n, *n, want);
    return 0;
}

int partitions_open(struct partitions **out, const struct config *cfg, enum outbox_open_mode mode,
                    struct d2f_err *err)
{
    struct partitions *set;
    char path[4096];
    int dir, rc;
    size_t n;

    *out = NULL;
    if ((rc = count_files(cfg, mode, &n, &dir, err)) != 0)
        return rc;
    if (!(set = calloc(1, sizeof(*set))))
        return d2f_errf(err, D2F_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (dir && partition_path(cfg->outbox, i, path, sizeof(path)) != 0) {
            rc = d2f_errf(err, D2F_ECONFIG, "DDB2FS_OUTBOX: '%.64s…' is too long", cfg->outbox);
            break;
        }
        if ((rc = outbox_open(&set->ob[i], dir ? path : cfg->outbox, cfg->journal, mode, err)) != 0)
            break;
        set->n = i + 1;
    }
    if (rc) {
        partitions_close(set);
        return rc;
    }
    *out = set;
    return 0;
}

void partitions_close(struct partitions *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        outbox_close(set->ob[i]);
    free(set);
}

size_t partitions_count(const struct partitions *set)
{
    return set->n;
}

struct outbox *partitions_outbox(struct partitions *set, size_t i)
{
    return set->ob[i];
}

struct outbox *const *partitions_all(struct partitions *set)
{
    return set->ob;
}

/* The partition of a kept record (its raw JSON), for outbox_copy_into. */
static size_t raw_partition(const char *raw, size_t len, size_t n)
{
    struct event_record rec;
    size_t part = 0;

    memset(&rec, 0, sizeof(rec));
    rec.raw = raw;
    rec.raw_len = len;
    rec.json = json_parse(raw, len);
    if (rec.json) {
        event_record_check(&rec);
        part = partition_of(rec.table[0] ? rec.table : NULL, rec.keys, n);
    }
    event_record_release(&rec);
    return part;
}

/* Removes an outbox left at path by an earlier attempt: a file and its companions, or a
 * directory of part files and a manifest. */
static void remove_outbox(const char *path)
{
    static const char *const companions[] = {"", "-journal", "-wal", "-shm"};
    char p[4200];

    if (partitions_is_dir(path)) {
        for (size_t i = 0; i < CONFIG_PARTITIONS_MAX; i++) {
            char part[4096];
            if (partition_path(path, i, part, sizeof(part)) == 0)
                for (size_t c = 0; c < 4; c++) {
                    snprintf(p, sizeof(p), "%s%s", part, companions[c]);
                    unlink(p);
                }
        }
        snprintf(p, sizeof(p), "%s/" MANIFEST, path);
        unlink(p);
        rmdir(path);
        return;
    }
    for (size_t c = 0; c < 4; c++) {
        snprintf(p, sizeof(p), "%s%s", path, companions[c]);
        unlink(p);
    }
}

/* Takes each file's drain lease for the move (when owner is given), and checks nothing is
 * pending. */
static int quiet(struct partitions *old, const char *owner, struct d2f_err *err)
{
    for (size_t i = 0; i < old->n; i++) {
        char holder[400];
        int64_t pending = 0;
        int taken = 1, rc;
        if (owner && (rc = outbox_lease_take(old->ob[i], owner, d2f_now_ms() + 3600 * 1000, NULL,
                                             &taken, holder, sizeof(holder), err)) != 0)
            return rc;
        if (!taken)
            return d2f_errf(err, D2F_ELEASE,
                            "a drain holds the lease of '%s' (%s): let it finish, then run "
                            "repartition again",
                            outbox_path(old->ob[i]), holder);
        if ((rc = outbox_pending_count(old->ob[i], &pending, err)) != 0)
            return rc;
        if (pending)
            return d2f_errf(err, D2F_EIO,
                            "%lld records are pending in '%s': drain first ('ddb2fs drain'), "
                            "then repartition",
                            (long long)pending, outbox_path(old->ob[i]));
    }
    return 0;
}

/* Clears the moved mark of every file, and gives owner's leases back (owner NULL: none). */
static void unmark(struct partitions *set, const char *owner)
{
    for (size_t i = 0; i < set->n; i++) {
        struct d2f_err ignored = {0};
        sqlite3_exec(outbox_db(set->ob[i]), "DELETE FROM meta WHERE key = '" OUTBOX_MOVED_KEY "'",
                     NULL, NULL, NULL);
        if (owner && outbox_lease_release(set->ob[i], owner, &ignored) != 0)
            continue; /* it expires on its own */
    }
}

int partitions_repartition(const struct config *cfg, size_t n, struct partitions_moved *moved,
                           struct d2f_err *err)
{
    struct config oc = *cfg, nc = *cfg;
    struct partitions *old = NULL, *fresh = NULL;
    char tmp[4096], owner[64], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    memset(moved, 0, sizeof(*moved));
    if (n < 1 || n > CONFIG_PARTITIONS_MAX)
        return d2f_errf(err, D2F_EUSAGE, "repartition: N is 1 to %d", CONFIG_PARTITIONS_MAX);
    oc.partitions = 0; /* the outbox as it is */
    if ((rc = partitions_open(&old, &oc, OUTBOX_EXISTING, err)) != 0)
        return rc;
    moved->from = old->n;
    moved->to = n;
    /* a mark at DDB2FS_OUTBOX itself is an earlier attempt's that did not finish */
    unmark(old, NULL);
    if (old->n == n)
        goto out;
    snprintf(owner, sizeof(owner), "repartition %ld", (long)getpid());
    if (snprintf(tmp, sizeof(tmp), "%s.repartition", cfg->outbox) >= (int)sizeof(tmp) ||
        snprintf(moved->kept, sizeof(moved->kept), "%s.before-repartition-", cfg->outbox) >=
            (int)sizeof(moved->kept) - 16) {
        rc = d2f_errf(err, D2F_ECONFIG, "DDB2FS_OUTBOX: '%.64s…' is too long", cfg->outbox);
        goto out;
    }
    if ((rc = quiet(old, owner, err)) != 0)
        goto unmark;
    /* from here on no file of the old outbox takes a transaction: writers are refused (their
     * batches are retried) and open the new outbox once it is in place */
    for (size_t i = 0; i < old->n && !rc; i++)
        rc = outbox_meta_set(old->ob[i], OUTBOX_MOVED_KEY, d2f_now_ms(), err);
    if (!rc)
        rc = quiet(old, NULL, err); /* an ingest that committed before the mark */
    if (rc)
        goto unmark;
    remove_outbox(tmp);
    nc.outbox = tmp;
    nc.partitions = (long)n;
    if ((rc = partitions_open(&fresh, &nc, OUTBOX_CREATE, err)) != 0)
        goto unmark;
    for (size_t k = 0; k < n && !rc; k++)
        rc = outbox_begin(fresh->ob[k], err);
    for (size_t i = 0; i < old->n && !rc; i++) {
        int64_t copied = 0;
        rc = outbox_copy_into(old->ob[i], fresh->ob, n, raw_partition, &copied, err);
        moved->records += copied;
    }
    for (size_t k = 0; k < n && !rc; k++)
        rc = outbox_commit(fresh->ob[k], err);
    partitions_close(fresh);
    fresh = NULL;
    if (rc) {
        remove_outbox(tmp);
        goto unmark;
    }
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    strncat(moved->kept, stamp, sizeof(moved->kept) - strlen(moved->kept) - 1);
    {
        /* a name no earlier move of the same second took */
        size_t base = strlen(moved->kept);
        for (int k = 2; access(moved->kept, F_OK) == 0 && k < 1000; k++)
            snprintf(moved->kept + base, sizeof(moved->kept) - base, "-%d", k);
    }
    if (old->n == 1) {
        /* one file: its WAL companions go with it (a process that still has it open keeps
         * using the same files, refused) */
        static const char *const companions[] = {"-wal", "-shm", "-journal"};
        sqlite3_exec(outbox_db(old->ob[0]), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        for (size_t c = 0; c < 3; c++) {
            char from[4200], to[4400];
            snprintf(from, sizeof(from), "%s%s", cfg->outbox, companions[c]);
            snprintf(to, sizeof(to), "%s%s", moved->kept, companions[c]);
            if (rename(from, to) != 0 && errno != ENOENT) {
                rc = d2f_errf(err, D2F_EIO, "cannot move '%s' aside: %s", from, strerror(errno));
                remove_outbox(tmp);
                goto unmark;
            }
        }
    }
    if (rename(cfg->outbox, moved->kept) != 0) {
        rc = d2f_errf(err, D2F_EIO, "cannot move '%s' aside: %s", cfg->outbox, strerror(errno));
        remove_outbox(tmp);
        goto unmark;
    }
    if (rename(tmp, cfg->outbox) != 0) {
        rc = d2f_errf(err, D2F_EIO, "cannot put the new outbox at '%s': %s", cfg->outbox,
                      strerror(errno));
        if (rename(moved->kept, cfg->outbox) == 0)
            goto unmark;
    }
    goto out;
unmark:
    /* the old outbox takes writes again, as before */
    unmark(old, owner);
    moved->kept[0] = '\0';
out:
    partitions_close(old);
    return rc;
}
