/* lease.c: who drains a file: leases named by their holder, and holders known dead. */
#include "lease.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"

/* The first line of a file into out (cap bytes), "" when it cannot be read. */
static void first_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");

    out[0] = '\0';
    if (f && fgets(out, (int)cap, f))
        out[strcspn(out, "\n")] = '\0';
    if (f)
        fclose(f);
}

/* Where a pid means something: this boot ("boot_id/pidns"), "" when unknown. */
static void pid_space(char *out, size_t cap)
{
    char boot[64], ns[64] = "";
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);

    first_line("/proc/sys/kernel/random/boot_id", boot, sizeof(boot));
    if (n > 0)
        ns[n] = '\0';
    if (boot[0] && n > 0)
        snprintf(out, cap, "%s/%s", boot, ns);
    else
        out[0] = '\0';
}

/* A lease owner: "host pid token space": a random token drawn once per process (the same
 * process holds the lease again at once, from one invocation to the next), and the boot and
 * PID namespace that give the pid its meaning. */
void lease_owner_name(char *out, size_t cap)
{
    static char token[33]; /* one per process, as its identity */
    char host[256] = "host", space[160];

    if (!token[0]) {
        unsigned char raw[16];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2hex(token, sizeof(token), raw, sizeof(raw));
    }
    gethostname(host, sizeof(host) - 1);
    pid_space(space, sizeof(space));
    snprintf(out, cap, "%s %ld %s %s", host, (long)getpid(), token, space[0] ? space : "-");
}

/* 1 when a lease holder is known dead: a process of this boot and PID namespace whose pid no
 * longer runs (or runs this process, under another token). Anywhere else its lease lasts until
 * it expires: a pid of another namespace says nothing. */
int lease_holder_gone(const char *holder)
{
    char host[256], token[64], space[160], mine[160];
    long pid;

    if (sscanf(holder, "%255s %ld %63s %159s", host, &pid, token, space) != 4 || pid <= 0)
        return 0;
    pid_space(mine, sizeof(mine));
    if (!mine[0] || strcmp(space, mine) != 0)
        return 0;
    return pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

int lease_take_until(struct outbox *ob, int64_t until_ms, char *owner, size_t cap,
                     struct d2f_err *err)
{
    char holder[400];
    int taken, rc;

    lease_owner_name(owner, cap);
    if ((rc = outbox_lease_take(ob, owner, until_ms, lease_holder_gone, &taken, holder,
                                sizeof(holder), err)) != 0)
        return rc;
    if (!taken)
        return d2f_errf(err, D2F_ELEASE, "another drain holds the lease (%s)", holder);
    return 0;
}

int lease_take(struct outbox *ob, int64_t deadline_ms, char *owner, size_t cap, struct d2f_err *err)
{
    return lease_take_until(ob, deadline_ms + LEASE_MARGIN_MS, owner, cap, err);
}

int lease_renew(struct outbox *ob, const char *owner, int64_t until_ms, struct d2f_err *err)
{
    char holder[400];
    int taken,
        rc = outbox_lease_take(ob, owner, until_ms, NULL, &taken, holder, sizeof(holder), err);

    if (!rc && !taken)
        rc = d2f_errf(err, D2F_ELEASE, "the drain lease went to another (%s)", holder);
    return rc;
}

void lease_release(struct outbox *ob, const char *owner)
{
    struct d2f_err lease_err = {0};

    if (outbox_lease_release(ob, owner, &lease_err) != 0)
        log_write(LOG_WARN, lease_err.msg, NULL); /* it expires on its own */
}
