/* json.c: JSON text read and printed exactly, around cJSON (see json.h). */
#include "json.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUL_ESCAPE "\\u0000"
#define NUL_ESCAPE_LEN 6
#define NUL_LEAD 0xC0 /* U+0000 in the tree: C0 80 */
#define NUL_TRAIL 0x80
#define RAW_C0_MARK 0xFF /* a raw C0 byte of the input, kept ill-formed */

/* cJSON's allocations that failed, on this thread. cJSON answers NULL alike for text that is not
 * JSON and for memory that ran out; only its allocator can tell the two apart, and a record
 * must never be refused as malformed because memory ran out. */
static _Thread_local unsigned long nomem;

void *json_malloc(size_t n)
{
    void *p = malloc(n);

    if (!p)
        nomem++;
    return p;
}

/* 1 when the text needs the extra step: a "\u0000" escape, or a raw C0 byte. */
static int needs_rewrite(const char *text, size_t len)
{
    const char *p = text, *end = text + len;

    if (memchr(text, NUL_LEAD, len))
        return 1;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if ((size_t)(end - p) >= NUL_ESCAPE_LEN && memcmp(p, NUL_ESCAPE, NUL_ESCAPE_LEN) == 0)
            return 1;
        p += 2; /* a backslash and the byte it escapes */
        if (p >= end)
            break;
    }
    return 0;
}

/*
 * The text with each \u0000 escape as C0 80 and each raw C0 byte as FF, in a new buffer (free
 * it), NUL-terminated; *out_len its length. Escapes are read in pairs, so that "\\u0000" (a
 * backslash, then "u0000") stays as it is. Both replacements are bytes above 0x7F, which JSON
 * only ever holds inside strings, so the text parses where it parsed before.
 */
static char *rewrite(const char *text, size_t len, size_t *out_len)
{
    char *out = json_malloc(len + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\\' && len - i >= NUL_ESCAPE_LEN &&
            memcmp(text + i, NUL_ESCAPE, NUL_ESCAPE_LEN) == 0) {
            out[o++] = (char)NUL_LEAD;
            out[o++] = (char)NUL_TRAIL;
            i += NUL_ESCAPE_LEN;
        } else if (c == '\\' && len - i >= 2) {
            out[o++] = text[i++];
            out[o++] = text[i++];
        } else {
            out[o++] = c == NUL_LEAD ? (char)RAW_C0_MARK : (char)c;
            i++;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

static cJSON *parse_rewritten(const char *text, size_t len)
{
    size_t n = 0;
    char *copy = rewrite(text, len, &n);
    cJSON *v;

    if (!copy)
        return NULL;
    v = cJSON_ParseWithLength(copy, n);
    free(copy);
    return v;
}

int json_parse_status(const char *text, size_t len, const char **end, cJSON **out)
{
    unsigned long before = nomem;
    const char *e = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &e, 0);

    *out = NULL;
    /* cJSON finds where the value ends; only a value that needs it is parsed again */
    if (v && needs_rewrite(text, (size_t)(e - text))) {
        cJSON_Delete(v);
        v = parse_rewritten(text, (size_t)(e - text));
    }
    while (v && !end && e < text + len && (*e == ' ' || *e == '\t' || *e == '\n' || *e == '\r'))
        e++;
    if (v && !end && e != text + len) {
        cJSON_Delete(v);
        return D2F_EINPUT;
    }
    if (!v)
        return nomem != before ? D2F_ENOMEM : D2F_EINPUT;
    if (end)
        *end = e;
    *out = v;
    return 0;
}

cJSON *json_parse_prefix(const char *text, size_t len, const char **end)
{
    cJSON *v;

    return json_parse_status(text, len, end, &v) == 0 ? v : NULL;
}

cJSON *json_parse(const char *text, size_t len)
{
    cJSON *v;

    return json_parse_status(text, len, NULL, &v) == 0 ? v : NULL;
}

char *json_print(const cJSON *item)
{
    char *text = cJSON_PrintUnformatted(item), *out;
    size_t len, pairs = 0, o = 0;

    if (!text || !strchr(text, (char)NUL_LEAD))
        return text;
    len = strlen(text);
    for (size_t i = 0; i + 1 < len; i++)
        pairs += (unsigned char)text[i] == NUL_LEAD && (unsigned char)text[i + 1] == NUL_TRAIL;
    out = cJSON_malloc(len + pairs * (NUL_ESCAPE_LEN - 2) + 1);
    if (!out) {
        cJSON_free(text);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)text[i] == NUL_LEAD && i + 1 < len &&
            (unsigned char)text[i + 1] == NUL_TRAIL) {
            memcpy(out + o, NUL_ESCAPE, NUL_ESCAPE_LEN);
            o += NUL_ESCAPE_LEN;
            i++;
        } else {
            out[o++] = text[i];
        }
    }
    out[o] = '\0';
    cJSON_free(text);
    return out;
}

/* ---- numbers ------------------------------------------------------------------------- */

/* A decimal: digits[0..k) × 10^(x - k + 1), that is d.ddd × 10^x. */
struct decimal {
    char digits[24];
    int k;
    int x;
};

/* Reads C's "%.*e" text (no sign) into dec, without trailing zeros. */
static void read_sci(const char *s, struct decimal *dec)
{
    dec->k = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9')
            dec->digits[dec->k++] = *s;
    dec->x = *s == 'e' ? atoi(s + 1) : 0;
    while (dec->k > 1 && dec->digits[dec->k - 1] == '0')
        dec->k--;
    dec->digits[dec->k] = '\0';
}

static double value_of(const struct decimal *dec)
{
    char text[48];

    snprintf(text, sizeof(text), "%c.%se%d", dec->digits[0], dec->digits + 1, dec->x);
    return strtod(text, NULL);
}

/* dec moved by one unit in its p-th digit, up or down (dec has at most p digits). */
static void step(struct decimal *dec, int p, int up)
{
    int i;

    while (dec->k < p)
        dec->digits[dec->k++] = '0';
    for (i = p - 1; i >= 0; i--) {
        if (up && dec->digits[i] == '9') {
            dec->digits[i] = '0';
        } else if (!up && dec->digits[i] == '0') {
            dec->digits[i] = '9';
        } else {
            dec->digits[i] = (char)(dec->digits[i] + (up ? 1 : -1));
            break;
        }
    }
    if (i < 0) { /* 99…9 + 1: 10…0, one place up */
        memmove(dec->digits + 1, dec->digits, (size_t)p);
        dec->digits[0] = '1';
        dec->x++;
        dec->k = p + 1;
    } else if (dec->digits[0] == '0') { /* 10…0 - 1: 9…9, one place down */
        memmove(dec->digits, dec->digits + 1, (size_t)p - 1);
        dec->x--;
        dec->k = p - 1;
    }
    while (dec->k > 1 && dec->digits[dec->k - 1] == '0')
        dec->k--;
    dec->digits[dec->k] = '\0';
}

/*
 * The nearest p-digit decimal to the magnitude a, or when that does not read back as a, the
 * p-digit decimal on a's other side (at a power of two the gap below is half the gap above,
 * so the nearest can fall outside while its neighbour is inside). 1 when one reads back.
 */
static int digits_for(double a, int p, struct decimal *dec)
{
    char sci[48];
    double v;

    snprintf(sci, sizeof(sci), "%.*e", p - 1, a);
    read_sci(sci, dec);
    v = value_of(dec);
    if (v == a)
        return 1;
    step(dec, p, v < a);
    return value_of(dec) == a;
}

/* dec as ECMAScript's Number::toString writes it. */
static size_t format_decimal(const struct decimal *dec, int negative, char *out)
{
    int n = dec->x + 1, k = dec->k, o = 0;

    if (negative)
        out[o++] = '-';
    if (k <= n && n <= 21) {
        memcpy(out + o, dec->digits, (size_t)k);
        o += k;
        for (int i = k; i < n; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, dec->digits, (size_t)n);
        o += n;
        out[o++] = '.';
        memcpy(out + o, dec->digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        memcpy(out + o, dec->digits, (size_t)k);
        o += k;
    } else {
        out[o++] = dec->digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, dec->digits + 1, (size_t)k - 1);
            o += k - 1;
        }
        o += snprintf(out + o, 8, "e%+d", n - 1);
    }
    out[o] = '\0';
    return (size_t)o;
}

size_t json_double_text(double d, char out[JSON_DOUBLE_TEXT])
{
    struct decimal dec;
    double a = fabs(d);
    int p;

    if (a == 0) {
        memcpy(out, signbit(d) ? "-0" : "0", signbit(d) ? 3 : 2);
        return signbit(d) ? 2 : 1;
    }
    /*
     * A normal double holds 53 bits, so when its shortest decimal has 15 digits or fewer,
     * rounding it to 15 digits gives that decimal (with zeros after it): start there. A
     * subnormal holds fewer bits, and its shortest decimal may be much shorter.
     */
    p = a >= DBL_MIN ? 15 : 1;
    while (p < 17 && !digits_for(a, p, &dec))
        p++;
    if (p == 17)
        digits_for(a, 17, &dec); /* 17 digits always read back */
    return format_decimal(&dec, d < 0, out);
}

cJSON *json_number(double d)
{
    char text[JSON_DOUBLE_TEXT];

    if (!isfinite(d))
        return NULL;
    json_double_text(d, text);
    return cJSON_CreateRaw(text);
}

cJSON *json_add_number(cJSON *obj, const char *name, double d)
{
    cJSON *n = json_number(d);

    if (!n || !cJSON_AddItemToObject(obj, name, n)) {
        cJSON_Delete(n);
        return NULL;
    }
    return n;
}

double json_number_value(const cJSON *item)
{
    if (cJSON_IsNumber(item))
        return item->valuedouble;
    if (cJSON_IsRaw(item) && item->valuestring)
        return strtod(item->valuestring, NULL);
    return 0;
}

/* ---- strings in the tree ------------------------------------------------------------- */

static int is_nul_pair(const char *s, size_t i, size_t n)
{
    return i + 1 < n && (unsigned char)s[i] == NUL_LEAD && (unsigned char)s[i + 1] == NUL_TRAIL;
}

size_t json_text_len(const char *s, size_t n)
{
    size_t len = n;
    const char *p = s, *end = s + n;

    while ((p = memchr(p, NUL_LEAD, (size_t)(end - p))) != NULL) {
        if (is_nul_pair(s, (size_t)(p - s), n)) {
            len--;
            p += 2;
        } else {
            p++;
        }
    }
    return len;
}

int json_text_valid(const char *s, size_t n)
{
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        if (is_nul_pair(s, i, n)) {
            if (!d2f_utf8_valid(s + start, i - start))
                return 0;
            start = i + 2;
            i++;
        }
    }
    return d2f_utf8_valid(s + start, n - start);
}

/* The next byte of the UTF-8 a JSON text string stands for: 0 for C0 80, -1 at its end. */
static int next_byte(const unsigned char **p)
{
    const unsigned char *s = *p;

    if (!*s)
        return -1;
    if (*s == NUL_LEAD && s[1] == NUL_TRAIL) {
        *p += 2;
        return 0;
    }
    *p += 1;
    return *s;
}

int json_text_cmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

    for (;;) {
        int cx = next_byte(&x), cy = next_byte(&y);
        if (cx != cy)
            return cx < cy ? -1 : 1;
        if (cx < 0)
            return 0;
    }
}

size_t json_text_utf8(const char *s, size_t n, unsigned char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (is_nul_pair(s, i, n)) {
            out[o++] = 0;
            i++;
        } else {
            out[o++] = (unsigned char)s[i];
        }
    }
    return o;
}

size_t json_text_message(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s), o = 0;

    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (is_nul_pair(s, i, n)) {
            if (o + 7 > cap)
                break;
            memcpy(out + o, "\\u0000", 6);
            o += 6;
            i++;
        } else {
            out[o++] = s[i];
        }
    }
    if (cap)
        out[o] = '\0';
    return o;
}
