/* docid.c: Firestore collection and document names for DynamoDB items. */
#include "docid.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "json.h"
#include "number.h"

static int is_reserved(const char *s, size_t n)
{
    /* __.+__: Firestore's emulator takes the id "____" and refuses "_____" */
    return n >= 5 && s[0] == '_' && s[1] == '_' && s[n - 2] == '_' && s[n - 1] == '_';
}

const char *docid_segment_problem(const char *s, size_t n)
{
    if (n == 0)
        return "is empty";
    if (json_text_len(s, n) > DOCID_MAX_BYTES)
        return "is longer than 1,500 bytes";
    if (memchr(s, '/', n))
        return "contains '/'";
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return "is '.' or '..'";
    if (is_reserved(s, n))
        return "matches the reserved pattern __.+__";
    if (!json_text_valid(s, n))
        return "is not valid UTF-8";
    return NULL;
}

static int add_escaped_byte(struct buf *out, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char e[3] = {'%', hex[c >> 4], hex[c & 15]};

    return buf_add(out, e, 3);
}

/* The bytes of the UTF-8 character at s (at most n); 1 for a byte that starts none. */
static size_t char_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;

    return len < n ? len : n;
}

/* 1 when the character c (len bytes) is one of the characters of sep. */
static int sep_has(const char *sep, const char *c, size_t len)
{
    for (size_t i = 0, n = strlen(sep); i < n;) {
        size_t k = char_len(sep + i, n - i);
        if (k == len && memcmp(sep + i, c, len) == 0)
            return 1;
        i += k;
    }
    return 0;
}

int docid_escape(const char *s, size_t n, const char *sep, struct buf *out)
{
    int rc = 0;
    size_t start = 0;

    for (size_t i = 0; i < n && !rc;) {
        size_t len = char_len(s + i, n - i);
        if (s[i] == '%' || s[i] == '/' || (sep && sep_has(sep, s + i, len))) {
            rc = buf_add(out, s + start, i - start);
            for (size_t k = 0; k < len && !rc; k++)
                rc = add_escaped_byte(out, (unsigned char)s[i + k]);
            start = i + len;
        }
        i += len;
    }
    if (!rc)
        rc = buf_add(out, s + start, n - start);
    return rc;
}

/* The id's whole-id escapes ("." and "..", __.+__) in place. */
static int escape_whole(struct buf *id)
{
    struct buf tmp;
    int rc;

    buf_init(&tmp, id->max);
    if (id->len == 1 && id->data[0] == '.')
        rc = buf_adds(&tmp, "%2E");
    else if (id->len == 2 && id->data[0] == '.' && id->data[1] == '.')
        rc = buf_adds(&tmp, "%2E%2E");
    else if (is_reserved(id->data, id->len))
        rc = buf_adds(&tmp, "%5F") || buf_add(&tmp, id->data + 1, id->len - 1) ? D2F_ENOMEM : 0;
    else
        return 0;
    if (rc) {
        buf_release(&tmp);
        return rc;
    }
    buf_release(id);
    *id = tmp;
    return 0;
}

/* An id over the limit, once escaped, as DOCID_HASH_PREFIX + the SHA-256 of its bytes. */
static int hash_long(struct buf *id)
{
    unsigned char h[crypto_hash_sha256_BYTES], *utf8;
    char hex[crypto_hash_sha256_BYTES * 2 + 1];

    if (json_text_len(id->data, id->len) <= DOCID_MAX_BYTES)
        return 0;
    if (!(utf8 = malloc(id->len)))
        return D2F_ENOMEM;
    /* the hash is of the id's UTF-8 bytes, a U+0000 as the zero byte */
    crypto_hash_sha256(h, utf8, json_text_utf8(id->data, id->len, utf8));
    free(utf8);
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    buf_reset(id);
    return buf_adds(id, DOCID_HASH_PREFIX) || buf_adds(id, hex) ? D2F_ENOMEM : 0;
}

int docid_finish(struct buf *id)
{
    int rc = escape_whole(id);

    return rc ? rc : hash_long(id);
}

/* Appends the text of one key attribute value: S as is, N canonical, B as base64url. */
static int key_text(const cJSON *av, const char *name, const char *sep, struct buf *out,
                    struct d2f_err *err)
{
    const cJSON *v = av && cJSON_IsObject(av) ? av->child : NULL;
    const char *why = NULL;
    int rc;

    if (!v || v->next)
        return d2f_errf(err, D2F_EINPUT, "key attribute '%s' must hold exactly one type", name);
    if (!cJSON_IsString(v))
        return d2f_errf(err, D2F_EINPUT, "key attribute '%s' has a %s value, not a string", name,
                        v->string);
    if (strcmp(v->string, "S") == 0) {
        size_t n = strlen(v->valuestring);
        if (n == 0)
            return d2f_errf(err, D2F_EINPUT, "key attribute '%s' is an empty string", name);
        if (!json_text_valid(v->valuestring, n))
            return d2f_errf(err, D2F_EINPUT, "key attribute '%s' is not valid UTF-8", name);
        rc = docid_escape(v->valuestring, n, sep, out);
    } else if (strcmp(v->string, "N") == 0) {
        struct number num;
        struct buf text;

        if (number_parse(v->valuestring, &num, &why))
            return d2f_errf(err, D2F_EINPUT, "key attribute '%s': number %s", name, why);
        buf_init(&text, 256);
        rc = number_canonical(&num, &text);
        if (!rc)
            rc = docid_escape(text.data, text.len, sep, out);
        buf_release(&text);
    } else if (strcmp(v->string, "B") == 0) {
        size_t b64len = strlen(v->valuestring), binlen = 0;
        unsigned char *bin = malloc(b64len / 4 * 3 + 3);
        const char *end = NULL;

        if (!bin)
            return d2f_errf(err, D2F_ENOMEM, "out of memory");
        if (sodium_base642bin(bin, b64len / 4 * 3 + 3, v->valuestring, b64len, NULL, &binlen, &end,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            end != v->valuestring + b64len || binlen == 0) {
            free(bin);
            return d2f_errf(err, D2F_EINPUT, "key attribute '%s' is not non-empty base64", name);
        }
        size_t enclen = sodium_base64_encoded_len(binlen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        char *enc = malloc(enclen);
        if (!enc) {
            free(bin);
            return d2f_errf(err, D2F_ENOMEM, "out of memory");
        }
        sodium_bin2base64(enc, enclen, bin, binlen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        rc = docid_escape(enc, strlen(enc), sep, out);
        free(enc);
        free(bin);
    } else {
        return d2f_errf(err, D2F_EINPUT, "key attribute '%s' has type '%s'; keys are S, N or B",
                        name, v->string);
    }
    if (rc)
        return d2f_errf(err, rc, "cannot build the document id: %s", d2f_strerror(rc));
    return 0;
}

int docid_from_keys(const cJSON *keys, const char *pk, const char *sk, const char *sep,
                    struct buf *out, struct d2f_err *err)
{
    int want = sk ? 2 : 1, rc;

    if (!cJSON_IsObject(keys))
        return d2f_errf(err, D2F_EINPUT, "'Keys' is not an object");
    for (const cJSON *k = keys->child; k; k = k->next) {
        if (strcmp(k->string, pk) != 0 && (!sk || strcmp(k->string, sk) != 0))
            return d2f_errf(err, D2F_EINPUT,
                            "'Keys' has attribute '%s', which is not in the key schema (%s%s%s)",
                            k->string, pk, sk ? ", " : "", sk ? sk : "");
        want--;
    }
    if (want != 0 || !cJSON_GetObjectItemCaseSensitive(keys, pk) ||
        (sk && !cJSON_GetObjectItemCaseSensitive(keys, sk)))
        return d2f_errf(err, D2F_EINPUT, "'Keys' does not hold exactly the key schema (%s%s%s)", pk,
                        sk ? ", " : "", sk ? sk : "");
    buf_reset(out);
    rc = key_text(cJSON_GetObjectItemCaseSensitive(keys, pk), pk, sk ? sep : NULL, out, err);
    if (!rc && sk) {
        rc = buf_adds(out, sep);
        if (rc)
            return d2f_errf(err, rc, "cannot build the document id: %s", d2f_strerror(rc));
        rc = key_text(cJSON_GetObjectItemCaseSensitive(keys, sk), sk, sep, out, err);
    }
    if (!rc && (rc = docid_finish(out)) != 0)
        return d2f_errf(err, rc, "cannot build the document id: %s", d2f_strerror(rc));
    return rc;
}

int docid_collection(const char *table, struct buf *out)
{
    int rc;

    buf_reset(out);
    rc = docid_escape(table, strlen(table), NULL, out);
    return rc ? rc : docid_finish(out);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int unescape(const char *s, size_t n, struct buf *out)
{
    buf_reset(out);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (n - i < 3)
                return D2F_EINPUT;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return D2F_EINPUT;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (buf_addc(out, c))
            return D2F_ENOMEM;
    }
    return 0;
}

int docid_decode(const char *id, const char *sep, struct buf *pk, struct buf *sk)
{
    size_t n = strlen(id);
    const char *at;

    if (strncmp(id, DOCID_HASH_PREFIX, strlen(DOCID_HASH_PREFIX)) == 0)
        return D2F_EINPUT;
    if (!sep)
        return unescape(id, n, pk);
    at = strstr(id, sep);
    if (!at || strstr(at + strlen(sep), sep))
        return D2F_EINPUT;
    if (unescape(id, (size_t)(at - id), pk))
        return D2F_EINPUT;
    at += strlen(sep);
    return unescape(at, n - (size_t)(at - id), sk);
}
