/*
 * buf.h: a growable byte buffer with a hard cap, always NUL-terminated.
 *
 * Every buffer names the limit it enforces: buf_init(&b, LIMIT). Appending past the cap
 * fails with D2F_ELIMIT and leaves the buffer as it was.
 */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>

#include "d2f.h"

struct buf {
    char *data;  /* the bytes, NUL-terminated when data != NULL; owned */
    size_t len;  /* bytes in use, not counting the NUL */
    size_t cap;  /* bytes allocated */
    size_t max;  /* hard cap on len */
    size_t high; /* the most bytes ever in use: what release wipes */
};

/* Sets up an empty buffer that may grow to max bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);

/* Frees the bytes; the buffer is empty again and may be reused. */
void buf_release(struct buf *b);

/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);

/* Appends n bytes. Returns 0, D2F_ENOMEM or D2F_ELIMIT. */
int buf_add(struct buf *b, const void *p, size_t n) D2F_WUR;

/* Appends a NUL-terminated string. */
int buf_adds(struct buf *b, const char *s) D2F_WUR;

/* Appends one byte. */
int buf_addc(struct buf *b, char c) D2F_WUR;

/* Appends formatted text. */
int buf_addf(struct buf *b, const char *fmt, ...) D2F_PRINTF(2, 3) D2F_WUR;

/* Hands the bytes to the caller (free() them) and leaves the buffer empty. Never NULL
 * unless allocation fails. */
char *buf_detach(struct buf *b, size_t *len);

/* The contents as a C string; "" for an empty buffer. Valid until the next change. */
const char *buf_str(const struct buf *b);

#endif
