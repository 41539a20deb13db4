/*
 * lease.h: one drainer of an outbox file at a time. The drain, replay and a backfill's
 * scanner take a lease (outbox_lease_take: a row in the file, with its holder and until when)
 * under a holder's name unique to the process; a holder in this boot and PID namespace whose
 * process is gone is known dead at once, any other's lease lasts until it expires. With fenced
 * writes the lease is about efficiency, not safety: two drainers at once cannot take a document
 * back. Every lease constant is here.
 */
#ifndef LEASE_H
#define LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "d2f.h"
#include "outbox.h"

/* What a lease lasts beyond its taker's deadline: a drain that overruns it is not overtaken. */
#define LEASE_MARGIN_MS 60000
/* How long replay takes the lease at a time, renewing it as it goes. */
#define LEASE_REPLAY_SPAN_MS (5 * 60 * 1000)

/* Takes the drain lease (one drainer or replay at a time) until deadline_ms and a margin; owner
 * (cap bytes) receives the name to release it with. D2F_EIO naming the holder when it is
 * held. */
int lease_take(struct outbox *ob, int64_t deadline_ms, char *owner, size_t cap,
               struct d2f_err *err) D2F_WUR;

/* Takes the drain lease until until_ms, no margin added (the drain, renewing as it goes). */
int lease_take_until(struct outbox *ob, int64_t until_ms, char *owner, size_t cap,
                     struct d2f_err *err) D2F_WUR;

/* Extends owner's lease to until_ms; D2F_EIO when another holds it now. */
int lease_renew(struct outbox *ob, const char *owner, int64_t until_ms,
                struct d2f_err *err) D2F_WUR;

/* A holder's name for a lease or a claim: "host pid token boot_id/pidns", the token drawn once
 * per process (cap bytes at out). */
void lease_owner_name(char *out, size_t cap);

/* 1 when holder (a lease_owner_name) is known dead: a process of this boot and PID namespace
 * whose pid no longer runs, or this process under another token; anywhere else, 0 (what it
 * holds lasts until it expires). */
int lease_holder_gone(const char *holder);

/* Gives the lease back (a failure is logged: the lease expires on its own). */
void lease_release(struct outbox *ob, const char *owner);

#endif
