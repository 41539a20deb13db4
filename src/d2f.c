/* d2f.c: error reports. */
#include "d2f.h"

#include <stdarg.h>
#include <stdio.h>

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
