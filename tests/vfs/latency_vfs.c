/*
 * latency_vfs.c: a test-only SQLite VFS that makes a local disk answer like Amazon EFS.
 *
 * A shim over the default unix VFS: every call goes to it, and the calls that cost an NFS
 * round trip on EFS sleep first. It is built into ddb2fs only with -DDDB2FS_LATENCY_VFS=ON
 * (tools/test does, for the tests and benchmarks), and registered as the default VFS only when
 * DDB2FS_TEST_LATENCY is set, so the relay's code paths are the production ones: only the file
 * system underneath is slower.
 *
 * DDB2FS_TEST_LATENCY is "efs" (the defaults below) or a list "sync=2700,lock=1000,…" of
 * microseconds for: open, delete, access, lock, unlock, check (xCheckReservedLock), write,
 * read, sync. The defaults model EFS General Purpose as AWS describes it ("about 1 ms read
 * and 2.7 ms write latency" for General Purpose, in the EFS performance documentation), on
 * NFSv4.1 as Lambda mounts it:
 *   sync 2700    a COMMIT round trip, paid at write latency
 *   write 0      NFS writes go out asynchronously from the client's page cache; their cost
 *                is paid at the next sync
 *   read 0       reads of pages SQLite has just used hit the client's cache
 *   lock 1000    a byte-range LOCK round trip (SHARED, RESERVED, PENDING, EXCLUSIVE each)
 *   unlock 1000  a LOCKU round trip
 *   check 1000   xCheckReservedLock: a LOCKT round trip
 *   open 1000    OPEN (close-to-open consistency: a GETATTR as well, counted in it)
 *   delete 1000  REMOVE, for a rollback journal at each commit
 *   access 1000  ACCESS/GETATTR, asked before opening a hot journal
 * These are of the order reports of SQLite on EFS show (15 to 40 ms a commit, several round
 * trips each); the benchmark prints the numbers it ran with.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "latency_vfs.h"

struct delays {
    long open, del, access, lock, unlock, check, write, read, sync; /* microseconds */
};

static struct delays delays = {1000, 1000, 1000, 1000, 1000, 1000, 0, 0, 2700};
static sqlite3_vfs *real;
static sqlite3_vfs shim;

struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
};

static void pause_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    if (us > 0)
        nanosleep(&ts, NULL);
}

#define REAL(f) (((struct shim_file *)(f))->real)

static int x_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int x_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    pause_us(delays.read);
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

static int x_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    pause_us(delays.write);
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int x_sync(sqlite3_file *f, int flags)
{
    pause_us(delays.sync);
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int x_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int x_lock(sqlite3_file *f, int level)
{
    pause_us(delays.lock);
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int x_unlock(sqlite3_file *f, int level)
{
    pause_us(delays.unlock);
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int x_check(sqlite3_file *f, int *out)
{
    pause_us(delays.check);
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int x_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int x_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int x_caps(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int x_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, p);
}

static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int x_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, p);
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods methods = {
    3,          x_close,       x_read,      x_write,   x_truncate, x_sync, x_size,
    x_lock,     x_unlock,      x_check,     x_control, x_sector,   x_caps, x_shm_map,
    x_shm_lock, x_shm_barrier, x_shm_unmap, x_fetch,   x_unfetch,
};

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    struct shim_file *s = (struct shim_file *)f;
    int rc;

    (void)vfs;
    pause_us(delays.open);
    s->real = (sqlite3_file *)(s + 1);
    memset(s->real, 0, (size_t)real->szOsFile);
    rc = real->xOpen(real, name, s->real, flags, out);
    /* the unix VFS's methods are version 3; a file it could not open has none */
    s->base.pMethods = s->real->pMethods ? &methods : NULL;
    return rc;
}

static int x_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    pause_us(delays.del);
    return real->xDelete(real, name, sync_dir);
}

static int x_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    pause_us(delays.access);
    return real->xAccess(real, name, flags, out);
}

static int x_full(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real->xFullPathname(real, name, n, out);
}

static int x_random(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real->xRandomness(real, n, out);
}

static int x_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return real->xSleep(real, us);
}

static int x_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return real->xCurrentTime(real, out);
}

static int x_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real->xGetLastError(real, n, out);
}

static int x_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return real->xCurrentTimeInt64(real, out);
}

/* Reads "name=us,…" into delays; 0, or -1 for a malformed list. */
static int parse(const char *spec)
{
    static const struct {
        const char *name;
        long *at;
    } keys[] = {{"open", &delays.open},   {"delete", &delays.del},    {"access", &delays.access},
                {"lock", &delays.lock},   {"unlock", &delays.unlock}, {"check", &delays.check},
                {"write", &delays.write}, {"read", &delays.read},     {"sync", &delays.sync}};

    if (strcmp(spec, "efs") == 0)
        return 0;
    while (*spec) {
        size_t n = strcspn(spec, "="), i;
        char *end;
        long v;
        for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (strlen(keys[i].name) == n && strncmp(spec, keys[i].name, n) == 0)
                break;
        if (i == sizeof(keys) / sizeof(keys[0]) || spec[n] != '=')
            return -1;
        v = strtol(spec + n + 1, &end, 10);
        if (end == spec + n + 1 || v < 0 || v > 10000000 || (*end && *end != ','))
            return -1;
        *keys[i].at = v;
        spec = *end ? end + 1 : end;
    }
    return 0;
}

int latency_vfs_register(const char *spec)
{
    if (!spec || !*spec)
        return 0;
    if (parse(spec) != 0 || !(real = sqlite3_vfs_find(NULL)))
        return -1;
    shim = *real;
    shim.iVersion = 3;
    shim.szOsFile = (int)sizeof(struct shim_file) + real->szOsFile;
    shim.zName = "ddb2fs-latency";
    shim.pAppData = NULL;
    shim.xOpen = x_open;
    shim.xDelete = x_delete;
    shim.xAccess = x_access;
    shim.xFullPathname = x_full;
    shim.xRandomness = x_random;
    shim.xSleep = x_sleep;
    shim.xCurrentTime = x_time;
    shim.xGetLastError = x_last_error;
    shim.xCurrentTimeInt64 = x_time64;
    shim.xSetSystemCall = NULL;
    shim.xGetSystemCall = NULL;
    shim.xNextSystemCall = NULL;
    return sqlite3_vfs_register(&shim, 1) == SQLITE_OK ? 1 : -1;
}
