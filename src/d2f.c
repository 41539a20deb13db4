/* d2f.c: error reports. */
#include "d2f.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int d2f_errf(struct d2f_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

const char *d2f_strerror(int code)
{
    switch (code) {
    case D2F_OK:
        return "ok";
    case D2F_ENOMEM:
        return "out of memory";
    case D2F_EINPUT:
        return "malformed input";
    case D2F_ECONFIG:
        return "invalid configuration";
    case D2F_EUSAGE:
        return "usage error";
    case D2F_EIO:
        return "i/o error";
    case D2F_EDB:
        return "outbox database error";
    case D2F_ELIMIT:
        return "limit exceeded";
    case D2F_ESCHEMA:
        return "schema conflict";
    case D2F_EAUTH:
        return "authentication refused";
    case D2F_EREMOTE:
        return "refused by the remote service";
    case D2F_EDAMAGE:
        return "outbox corrupt";
    case D2F_ETIME:
        return "time budget spent";
    case D2F_ELEASE:
        return "lease held elsewhere";
    case D2F_EUNREACHABLE:
        return "no answer from the server";
    }
    return "unknown error";
}

int d2f_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;

    while (p < end) {
        unsigned c = *p;
        size_t len;
        unsigned cp, min;

        if (c < 0x80) {
            p++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - p) < len)
            return 0;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += len;
    }
    return 1;
}

int d2f_table_name_ok(const char *t, size_t n)
{
    if (n < 3 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

char *d2f_escape_controls(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out, *o;

    /* at most four bytes out for one in ("\\x1b") */
    if (!(out = o = malloc(strlen(s) * 4 + 1)))
        return NULL;
    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7F) {
            o += sprintf(o, "\\x%02x", *p);
        } else if (*p == '\\') {
            *o++ = '\\';
            *o++ = '\\';
        } else if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
            /* a C1 control (U+0080 to U+009F): terminals act on these too */
            o += sprintf(o, "\\u%04x", p[1]);
            p++;
        } else if (p[0] == 0xC0 && p[1] == 0x80) {
            o += sprintf(o, "\\u0000"); /* how ddb2fs carries U+0000 through cJSON */
            p++;
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

static int64_t real_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t (*clock_now)(void) = real_now_ms;
static void (*clock_sleep)(int64_t ms) = real_sleep_ms;

int64_t d2f_now_ms(void)
{
    return clock_now();
}

void d2f_sleep_ms(int64_t ms)
{
    if (ms > 0)
        clock_sleep(ms);
}

void d2f_clock_set(int64_t (*now)(void), void (*sleep)(int64_t ms))
{
    clock_now = now ? now : real_now_ms;
    clock_sleep = sleep ? sleep : real_sleep_ms;
}
