/* ramp.c: Firestore's 500/50/5 ramp-up as a bucket of writes. */
#include "ramp.h"

#include <math.h>

void ramp_init(struct ramp *r, int64_t from, unsigned files, int64_t now)
{
    r->from = from;
    r->share = files > 1 ? 1.0 / (double)files : 1.0;
    r->allowance = ramp_rate(r, now);
    r->refilled = now;
}

double ramp_rate(const struct ramp *r, int64_t now)
{
    double steps = (double)((now - r->from) / RAMP_STEP_MS);

    return r->share * RAMP_START * pow(1.5, steps < 60 ? steps : 60);
}

int64_t ramp_take(struct ramp *r, size_t n, int64_t now)
{
    double rate = ramp_rate(r, now), need = (double)n < rate ? (double)n : rate;

    r->allowance += rate * (double)(now - r->refilled) / 1000.0;
    if (r->allowance > rate)
        r->allowance = rate;
    r->refilled = now;
    if (r->allowance >= need) {
        r->allowance -= (double)n;
        return 0;
    }
    return (int64_t)((need - r->allowance) * 1000.0 / rate) + 1;
}
