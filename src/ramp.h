/*
 * ramp.h: Firestore's 500/50/5 ramp-up, pure: writes a second start at 500 and grow by 50%
 * every 5 minutes from the first write into a database, shared evenly by the files of a
 * partitioned outbox (they drain into one database at once); a bucket of writes refills at
 * that rate. The clock is the caller's: nothing here reads the time or sleeps.
 */
#ifndef RAMP_H
#define RAMP_H

#include <stddef.h>
#include <stdint.h>

/* Writes per second at first, and the growth step. */
#define RAMP_START 500.0
#define RAMP_STEP_MS (5 * 60 * 1000)
/* The outbox's meta key recording when the ramp-up into its database began (epoch ms). */
#define RAMP_META_KEY "ramp_started_at"

struct ramp {
    int64_t from;     /* when the ramp-up began (ms) */
    double share;     /* this drainer's share of the rate: 1 / the outbox's files */
    double allowance; /* writes allowed now */
    int64_t refilled; /* when allowance was last topped up (ms) */
};

/* A ramp begun at from for one of `files` drainers (0 or 1: alone), its bucket full at now. */
void ramp_init(struct ramp *r, int64_t from, unsigned files, int64_t now);

/* Writes per second allowed at now. */
double ramp_rate(const struct ramp *r, int64_t now);

/* Takes n writes at now when the bucket holds them (or a full second's worth, for n over the
 * rate) and returns 0; else takes nothing and returns the milliseconds to wait first. */
int64_t ramp_take(struct ramp *r, size_t n, int64_t now);

#endif
