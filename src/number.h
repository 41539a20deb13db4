/*
 * number.h: DynamoDB numbers (the text of an "N" value) as exact decimals.
 *
 * DynamoDB keeps up to 38 significant digits, with magnitudes from 1E-130 to below 1E+126.
 * A parsed number is digits × 10^exponent, with no leading or trailing zeros in digits.
 */
#ifndef NUMBER_H
#define NUMBER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define NUMBER_MAX_DIGITS 38

struct number {
    int negative;                       /* 1 below zero; never 1 for zero */
    char digits[NUMBER_MAX_DIGITS + 1]; /* significant digits, NUL-terminated; "" for zero */
    int ndigits;                        /* strlen(digits) */
    int exponent;                       /* value = digits × 10^exponent */
};

/* Parses DynamoDB number text, every form DynamoDB accepts: [+-]digits[.digits][(e|E)[+-]digits],
 * ".5", "5.", "+3", "-0". Nothing may follow the number. Returns 0, or -1 with *why set to a
 * static reason. */
int number_parse(const char *text, struct number *n, const char **why) D2F_WUR;

/* Appends the canonical plain decimal form: no exponent, no needless zeros, "0" for zero. */
int number_canonical(const struct number *n, struct buf *out) D2F_WUR;

/* 1 with *out set when n is integral and within int64, else 0. */
int number_to_int64(const struct number *n, int64_t *out);

/* The nearest double to n; *exact is 1 when it equals n exactly. */
double number_to_double(const struct number *n, int *exact);

/* Numeric order: <0, 0 or >0. */
int number_cmp(const struct number *a, const struct number *b);

#endif
