/* number.c: DynamoDB numbers as exact decimals. */
#include "number.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DynamoDB's range: the most significant digit sits between 10^-130 and 10^125. */
#define MSD_MIN (-130)
#define MSD_MAX 125
/* Longest text we look at: 38 digits, padding zeros, sign, point and exponent. */
#define TEXT_MAX 256

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int number_parse(const char *text, struct number *n, const char **why)
{
    const char *p = text;
    char all[TEXT_MAX];
    int nall = 0, point = -1, exp10 = 0, first, last;
    int negative = 0;

    memset(n, 0, sizeof(*n));
    if (strlen(text) >= TEXT_MAX) {
        *why = "is too long to be a DynamoDB number";
        return -1;
    }
    if (*p == '-' || *p == '+') /* DynamoDB reads "+3" and keeps it so in a stream */
        negative = *p++ == '-';
    for (; is_digit(*p) || *p == '.'; p++) {
        if (*p == '.') {
            if (point >= 0) {
                *why = "has two decimal points";
                return -1;
            }
            point = nall;
        } else {
            all[nall++] = *p;
        }
    }
    if (nall == 0) {
        *why = "is not a number";
        return -1;
    }
    if (point < 0)
        point = nall;
    if (*p == 'e' || *p == 'E') {
        int esign = 1, edigits = 0;
        long e = 0;

        p++;
        if (*p == '+' || *p == '-')
            esign = *p++ == '-' ? -1 : 1;
        for (; is_digit(*p); p++, edigits++) {
            if (e < 100000)
                e = e * 10 + (*p - '0');
        }
        if (edigits == 0) {
            *why = "has an exponent with no digits";
            return -1;
        }
        exp10 = (int)(esign * e);
    }
    if (*p) {
        *why = "is not a number";
        return -1;
    }
    for (first = 0; first < nall && all[first] == '0'; first++)
        ;
    if (first == nall)
        return 0; /* zero, whatever its sign or exponent */
    for (last = nall - 1; all[last] == '0'; last--)
        ;
    n->ndigits = last - first + 1;
    if (n->ndigits > NUMBER_MAX_DIGITS) {
        *why = "has more than 38 significant digits";
        return -1;
    }
    memcpy(n->digits, all + first, (size_t)n->ndigits);
    n->digits[n->ndigits] = '\0';
    /* all[] × 10^(exp10 - (nall - point)); drop the trailing zeros into the exponent */
    n->exponent = exp10 - (nall - point) + (nall - 1 - last);
    n->negative = negative;
    if (n->ndigits - 1 + n->exponent > MSD_MAX || n->ndigits - 1 + n->exponent < MSD_MIN) {
        *why = "is outside DynamoDB's range (1E-130 to 9.99E+125)";
        return -1;
    }
    return 0;
}

int number_canonical(const struct number *n, struct buf *out)
{
    int rc = 0;

    if (n->ndigits == 0)
        return buf_addc(out, '0');
    if (n->negative)
        rc = buf_addc(out, '-');
    if (!rc && n->exponent >= 0) {
        rc = buf_add(out, n->digits, (size_t)n->ndigits);
        for (int i = 0; !rc && i < n->exponent; i++)
            rc = buf_addc(out, '0');
    } else if (!rc && n->ndigits + n->exponent > 0) {
        size_t whole = (size_t)(n->ndigits + n->exponent);
        rc = buf_add(out, n->digits, whole);
        if (!rc)
            rc = buf_addc(out, '.');
        if (!rc)
            rc = buf_adds(out, n->digits + whole);
    } else if (!rc) {
        rc = buf_adds(out, "0.");
        for (int i = 0; !rc && i < -(n->ndigits + n->exponent); i++)
            rc = buf_addc(out, '0');
        if (!rc)
            rc = buf_adds(out, n->digits);
    }
    return rc;
}

static unsigned __int128 digits_value(const struct number *n)
{
    unsigned __int128 v = 0;

    for (int i = 0; i < n->ndigits; i++)
        v = v * 10 + (unsigned)(n->digits[i] - '0');
    return v;
}

int number_to_int64(const struct number *n, int64_t *out)
{
    unsigned __int128 v;

    if (n->ndigits == 0) {
        *out = 0;
        return 1;
    }
    if (n->exponent < 0 || n->ndigits + n->exponent > 19)
        return 0;
    v = digits_value(n);
    for (int i = 0; i < n->exponent; i++)
        v *= 10;
    if (n->negative) {
        if (v > (unsigned __int128)INT64_MAX + 1)
            return 0;
        *out = v == (unsigned __int128)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > INT64_MAX)
            return 0;
        *out = (int64_t)v;
    }
    return 1;
}

/*
 * A decimal D × 10^e is a double exactly when it is m × 2^k with m below 2^53. With
 * D < 10^38 this is plain integer arithmetic: for e >= 0, D × 5^e without its factors of
 * two must fit in 53 bits; for e < 0, 5^-e must divide D and the quotient's odd part must.
 */
static int exactly_double(const struct number *n)
{
    const unsigned __int128 limit = (unsigned __int128)1 << 53;
    unsigned __int128 v = digits_value(n);

    if (n->exponent >= 0) {
        for (int i = 0; i < n->exponent; i++) {
            if (v >= limit)
                return 0;
            v *= 5;
        }
    } else {
        for (int i = 0; i < -n->exponent; i++) {
            if (v % 5)
                return 0;
            v /= 5;
        }
    }
    while (v && !(v & 1))
        v >>= 1;
    return v < limit;
}

double number_to_double(const struct number *n, int *exact)
{
    char text[NUMBER_MAX_DIGITS + 16];

    if (n->ndigits == 0) {
        *exact = 1;
        return 0.0;
    }
    snprintf(text, sizeof(text), "%s%se%d", n->negative ? "-" : "", n->digits, n->exponent);
    *exact = exactly_double(n);
    return strtod(text, NULL);
}

int number_cmp(const struct number *a, const struct number *b)
{
    int sa = a->ndigits == 0 ? 0 : a->negative ? -1 : 1;
    int sb = b->ndigits == 0 ? 0 : b->negative ? -1 : 1;
    int ma, mb, c;

    if (sa != sb)
        return sa < sb ? -1 : 1;
    if (sa == 0)
        return 0;
    ma = a->ndigits - 1 + a->exponent;
    mb = b->ndigits - 1 + b->exponent;
    if (ma != mb)
        c = ma < mb ? -1 : 1;
    else {
        /* same magnitude: compare the digit strings, a missing digit being a zero */
        c = strcmp(a->digits, b->digits);
        c = c < 0 ? -1 : c > 0;
    }
    return sa * c;
}
