/* buf.c: growable byte buffer with a hard cap. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* Up to this size a growing buffer is copied and the old block wiped, rather than realloc'd. */
#define WIPE_COPY_MAX (4 * 1024 * 1024)

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->high = 0;
}

void buf_release(struct buf *b)
{
    /* a buffer may have held a token, a JWT or key text: none is left in freed memory */
    if (b->data)
        sodium_memzero(b->data, b->high + 1);
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->high = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int grow(struct buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > b->max - b->len)
        return D2F_ELIMIT;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    if (b->cap >= WIPE_COPY_MAX) {
        /* large: records, never a secret (what holds a token, a JWT or key text is capped far
         * below); realloc moves such a block without copying it (mremap) */
        p = realloc(b->data, cap);
        if (!p)
            return D2F_ENOMEM;
    } else {
        /* not realloc: the old block is wiped before it goes back to the allocator */
        p = malloc(cap);
        if (!p)
            return D2F_ENOMEM;
        if (b->data) {
            memcpy(p, b->data, b->len + 1);
            sodium_memzero(b->data, b->high + 1);
            free(b->data);
        }
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_add(struct buf *b, const void *p, size_t n)
{
    int rc = grow(b, n);

    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    if (b->len > b->high)
        b->high = b->len;
    return 0;
}

int buf_adds(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int buf_addc(struct buf *b, char c)
{
    return buf_add(b, &c, 1);
}

int buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return D2F_ENOMEM;
    rc = grow(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    if (b->len > b->high)
        b->high = b->len;
    return 0;
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p;

    if (!b->data) {
        if (grow(b, 0))
            return NULL;
        b->data[0] = '\0'; /* grow does not write the new block: "" needs its NUL */
    }
    p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->high = 0;
    return p;
}

const char *buf_str(const struct buf *b)
{
    return b->data ? b->data : "";
}
