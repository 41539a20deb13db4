/*
 * d2f.h: project-wide status codes, the error report every fallible call fills, and
 * attribute macros.
 *
 * A fallible function returns 0 or a D2F_E* code and fills a caller-provided struct d2f_err.
 * Each code says one thing, so that a caller can tell what to do: D2F_EIO is a file that could
 * not be read or written, never a server's silence (D2F_EUNREACHABLE), a spent time budget
 * (D2F_ETIME) or a lease held elsewhere (D2F_ELEASE).
 * Reporting an error never allocates. Messages say what failed first, lowercase, name the
 * record, row or variable, and never carry a payload, a token or a key.
 */
#ifndef D2F_H
#define D2F_H

#include <stddef.h>
#include <stdint.h>

#define D2F_WUR __attribute__((warn_unused_result))
#define D2F_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum d2f_code {
    D2F_OK = 0,
    D2F_ENOMEM,       /* an allocation failed */
    D2F_EINPUT,       /* the input (an event, a record, a file) is malformed */
    D2F_ECONFIG,      /* a setting is invalid */
    D2F_EUSAGE,       /* the command line is wrong */
    D2F_EIO,          /* reading or writing a file failed */
    D2F_EDB,          /* the outbox database failed */
    D2F_ELIMIT,       /* a size or count limit was exceeded */
    D2F_ESCHEMA,      /* the outbox or a key schema contradicts what was recorded */
    D2F_EAUTH,        /* credentials were refused */
    D2F_EREMOTE,      /* a remote service refused the request for good */
    D2F_EDAMAGE,      /* the outbox file is corrupt: restore it from a backup */
    D2F_ETIME,        /* the time budget was spent before the work was done: a later run goes on */
    D2F_ELEASE,       /* another process holds the lease on the work: it does it */
    D2F_EUNREACHABLE, /* a server gave no answer to use (no connection, TLS failed, time-out) */
};

#define D2F_ERR_MSG 512

struct d2f_err {
    int code;              /* a D2F_E* code, 0 when nothing failed */
    char msg[D2F_ERR_MSG]; /* what failed, in one line */
};

/* Fills err (when not NULL) with code and a formatted message; returns code. */
int d2f_errf(struct d2f_err *err, int code, const char *fmt, ...) D2F_PRINTF(3, 4);

/* Static text naming a D2F_E* code. */
const char *d2f_strerror(int code);

/* 1 when the n bytes at s are well-formed UTF-8 (no overlongs, no surrogates), else 0. */
int d2f_utf8_valid(const char *s, size_t n);

/* 1 when the n bytes at t are a DynamoDB table name: 3 to 255 of A-Z a-z 0-9 _ . - */
int d2f_table_name_ok(const char *t, size_t n);

/* A copy of s fit for a terminal: control characters (C0, DEL, C1) written as \xNN or \uNNNN,
 * a backslash as two, U+0000 (C0 80) as \u0000. The caller frees it; NULL when out of
 * memory. */
char *d2f_escape_controls(const char *s);

/* The one clock: milliseconds since the epoch (CLOCK_REALTIME, the clock of the outbox's times
 * and of Lambda's deadlines). */
int64_t d2f_now_ms(void);

/* The one pause: sleeps ms milliseconds (nothing when ms <= 0). */
void d2f_sleep_ms(int64_t ms);

/* Replaces the clock and the pause (unit tests: nothing sleeps in real time); NULL restores
 * the real one. */
void d2f_clock_set(int64_t (*now)(void), void (*sleep)(int64_t ms));

#endif
