/* mapping.c: DynamoDB AttributeValues as Firestore REST Values. */
#include "mapping.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "json.h"
#include "number.h"

/* One step of the path to the value being mapped, for messages. */
struct step {
    const char *name; /* a map member's name, or NULL for an array index */
    size_t index;     /* the index when name is NULL */
};

struct walk {
    const struct mapping_opts *opts;
    struct mapping_result *res;
    struct d2f_err *err;
    struct step path[MAPPING_MAX_DEPTH + 4];
    int depth;         /* steps in path */
    size_t path_bytes; /* the field path of the map being walked: its keys joined with '.' */
};

/* The path to the value, for messages: a U+0000 in a name (C0 80 in the tree) is written
 * "\\u0000", so that a message is always valid UTF-8. */
static void path_text(const struct walk *w, char *out, size_t cap)
{
    size_t n = 0;

    out[0] = '\0';
    for (int i = 0; i < w->depth && n + 8 < cap; i++) {
        const struct step *s = &w->path[i];
        if (!s->name) {
            int k = snprintf(out + n, cap - n, "[%zu]", s->index);
            n += k > 0 ? (size_t)k : 0;
            continue;
        }
        if (i)
            out[n++] = '.';
        for (const char *p = s->name; *p && n + 7 < cap; p++) {
            if ((unsigned char)p[0] == 0xC0 && (unsigned char)p[1] == 0x80) {
                memcpy(out + n, "\\u0000", 6);
                n += 6;
                p++;
            } else {
                out[n++] = *p;
            }
        }
        out[n] = '\0';
    }
    if (n >= cap)
        n = cap - 1;
    out[n] = '\0';
}

#define TOO_LONG "is over Firestore's limit of 1,048,487 bytes for one field value"

static int failf(struct walk *w, int code, const char *what)
{
    char path[200];

    path_text(w, path, sizeof(path));
    return d2f_errf(w->err, code, "attribute '%s' %s", path, what);
}

static int is_reserved(const char *name, size_t n)
{
    /* __.+__: Firestore's emulator takes "____" and refuses "_____" and "__x__" */
    return n >= 5 && name[0] == '_' && name[1] == '_' && name[n - 2] == '_' && name[n - 1] == '_';
}

const char *mapping_field_name_problem(const char *name, size_t n)
{
    if (n == 0)
        return "has an empty name, which Firestore refuses";
    if (json_text_len(name, n) > MAPPING_MAX_NAME_BYTES)
        return "has a name over Firestore's 1,500-byte limit for field names";
    if (is_reserved(name, n))
        return "has a name matching __.+__, which Firestore reserves (DDB2FS_RESERVED_NAMES=escape "
               "writes it escaped)";
    if (!json_text_valid(name, n))
        return "has a name that is not valid UTF-8";
    return NULL;
}

int mapping_name_needs_escape(const char *name, size_t n)
{
    return is_reserved(name, n) || (n > 0 && name[0] == '%');
}

/* name with its first character percent-encoded ('_' or '%'), in a new string (free it). */
static char *escape_name(const char *name, size_t n)
{
    char *e = malloc(n + 3);

    if (!e)
        return NULL;
    memcpy(e, name[0] == '_' ? "%5F" : "%25", 3);
    memcpy(e + 3, name + 1, n); /* the rest and its NUL */
    return e;
}

static int value(struct walk *w, const cJSON *av, int depth, int in_array, cJSON **out,
                 size_t *size);

/* Wraps v in {"key": v}; takes v. NULL when out of memory. */
static cJSON *wrap(const char *key, cJSON *v)
{
    cJSON *o = cJSON_CreateObject();

    /* adding copies the key: it can fail too, and the value would be lost without a word */
    if (!o || !v || !cJSON_AddItemToObject(o, key, v)) {
        cJSON_Delete(o);
        cJSON_Delete(v);
        return NULL;
    }
    return o;
}

static int nomem(struct walk *w)
{
    return d2f_errf(w->err, D2F_ENOMEM, "out of memory while mapping an item");
}

/* The members of an M value, or of the item itself, into a "fields" object. */
static int fields(struct walk *w, const cJSON *item, int depth, cJSON **out, size_t *size)
{
    cJSON *o = NULL;
    int rc = 0;

    if (out && !(o = cJSON_CreateObject()))
        return nomem(w);
    for (const cJSON *m = item->child; m && !rc; m = m->next) {
        size_t n = strlen(m->string), vsize = 0;
        char *escaped = NULL;
        const char *name = m->string, *why;
        cJSON *v = NULL;

        w->path[w->depth++] = (struct step){m->string, 0};
        if (w->opts->escape_reserved && mapping_name_needs_escape(name, n)) {
            if (!(escaped = escape_name(name, n))) {
                cJSON_Delete(o);
                return nomem(w);
            }
            name = escaped;
            n += 2;
        }
        size_t outer = w->path_bytes;
        w->path_bytes += (outer ? 1 : 0) + json_text_len(name, n);
        if ((why = mapping_field_name_problem(name, n)) != NULL)
            rc = failf(w, D2F_ELIMIT, why);
        else if (w->path_bytes > MAPPING_MAX_PATH_BYTES)
            rc = failf(w, D2F_ELIMIT,
                       "has a field path (its names joined with '.') over Firestore's limit of "
                       "1,500 bytes");
        else if (++w->res->fields > MAPPING_MAX_FIELDS)
            rc = failf(w, D2F_ELIMIT, "is past Firestore's limit of 20,000 fields in a document");
        else
            rc = value(w, m, depth, 0, o ? &v : NULL, &vsize);
        w->path_bytes = outer;
        w->depth--;
        if (!rc && o && !cJSON_AddItemToObject(o, name, v)) {
            cJSON_Delete(v); /* no memory for its name: the field must not go missing */
            rc = nomem(w);
        }
        *size += json_text_len(name, n) + 1 + vsize;
        free(escaped);
    }
    if (rc) {
        cJSON_Delete(o);
        return rc;
    }
    if (out)
        *out = o;
    return 0;
}

static int cmp_strings(const void *a, const void *b)
{
    return json_text_cmp((*(const cJSON *const *)a)->valuestring,
                         (*(const cJSON *const *)b)->valuestring);
}

struct num_member {
    struct number n;
    const cJSON *v;
};

static int cmp_numbers(const void *a, const void *b)
{
    return number_cmp(&((const struct num_member *)a)->n, &((const struct num_member *)b)->n);
}

struct bin_member {
    unsigned char *bytes;
    size_t len;
    const cJSON *v;
};

static int cmp_bins(const void *a, const void *b)
{
    const struct bin_member *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->bytes, y->bytes, n) : 0;

    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Decodes standard base64; *bytes is malloc'd (free it) when want_bytes. -1 when malformed. */
static int decode_b64(const char *s, unsigned char **bytes, size_t *len)
{
    size_t n = strlen(s), cap = n / 4 * 3 + 3;
    unsigned char *bin = malloc(cap);
    const char *end = NULL;

    if (!bin)
        return -2;
    if (sodium_base642bin(bin, cap, s, n, NULL, len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != s + n) {
        free(bin);
        return -1;
    }
    if (bytes)
        *bytes = bin;
    else
        free(bin);
    return 0;
}

/* An N: integerValue or doubleValue, or stringValue in string mode. */
static int number_value(struct walk *w, const char *text, cJSON **out, size_t *size)
{
    struct number n;
    const char *why = NULL;
    int64_t i;
    int exact;
    double d;

    if (number_parse(text, &n, &why)) {
        char what[160];
        snprintf(what, sizeof(what), "is a number that %s", why);
        return failf(w, D2F_EINPUT, what);
    }
    if (w->opts->numbers_as_strings) {
        *size = strlen(text) + 1;
        if (out && !(*out = wrap("stringValue", cJSON_CreateString(text))))
            return nomem(w);
        return 0;
    }
    *size = 8;
    if (number_to_int64(&n, &i)) {
        char digits[24];
        snprintf(digits, sizeof(digits), "%" PRId64, i);
        if (out && !(*out = wrap("integerValue", cJSON_CreateString(digits))))
            return nomem(w);
        return 0;
    }
    d = number_to_double(&n, &exact);
    if (!exact && w->res->rounded++ == 0)
        path_text(w, w->res->rounded_field, sizeof(w->res->rounded_field));
    if (out && !(*out = wrap("doubleValue", json_number(d))))
        return nomem(w);
    return 0;
}

/* SS, NS or BS: the members sorted into an array of Values. */
static int set_value(struct walk *w, const cJSON *set, char tag, cJSON **out, size_t *size)
{
    size_t n = (size_t)cJSON_GetArraySize(set), i = 0;
    const cJSON *m;
    void *sorted = NULL;
    cJSON *values = NULL;
    int rc = 0;

    cJSON_ArrayForEach(m, set)
    {
        if (!cJSON_IsString(m)) {
            char what[80];
            w->path[w->depth++] = (struct step){NULL, i};
            snprintf(what, sizeof(what), "is a member of a %cS set that is not a string", tag);
            rc = failf(w, D2F_EINPUT, what);
            w->depth--;
            return rc;
        }
        i++;
    }
    if (n && !(sorted = calloc(n, tag == 'N'   ? sizeof(struct num_member)
                                  : tag == 'B' ? sizeof(struct bin_member)
                                               : sizeof(cJSON *))))
        return nomem(w);
    i = 0;
    cJSON_ArrayForEach(m, set)
    {
        size_t msize = 0;
        w->path[w->depth++] = (struct step){NULL, i};
        if (tag == 'S') {
            size_t len = strlen(m->valuestring);
            if (!json_text_valid(m->valuestring, len))
                rc = failf(w, D2F_EINPUT, "is a string that is not valid UTF-8");
            ((const cJSON **)sorted)[i] = m;
            msize = json_text_len(m->valuestring, len) + 1;
            if (!rc && msize - 1 > MAPPING_MAX_VALUE_BYTES)
                rc = failf(w, D2F_ELIMIT, TOO_LONG);
        } else if (tag == 'N') {
            struct num_member *nm = &((struct num_member *)sorted)[i];
            const char *why;
            nm->v = m;
            if (number_parse(m->valuestring, &nm->n, &why)) {
                char what[160];
                snprintf(what, sizeof(what), "is a number that %s", why);
                rc = failf(w, D2F_EINPUT, what);
            }
        } else {
            struct bin_member *bm = &((struct bin_member *)sorted)[i];
            int d = decode_b64(m->valuestring, &bm->bytes, &bm->len);
            bm->v = m;
            if (d == -2)
                rc = nomem(w);
            else if (d)
                rc = failf(w, D2F_EINPUT, "is not valid base64");
            else if (bm->len > MAPPING_MAX_VALUE_BYTES)
                rc = failf(w, D2F_ELIMIT, TOO_LONG);
            msize = bm->len;
        }
        w->depth--;
        *size += msize;
        i++;
        if (rc)
            goto out;
    }
    if (!out || n == 0)
        ; /* checking only, or nothing: the order does not matter */
    else if (tag == 'S')
        qsort(sorted, n, sizeof(cJSON *), cmp_strings);
    else if (tag == 'N')
        qsort(sorted, n, sizeof(struct num_member), cmp_numbers);
    else
        qsort(sorted, n, sizeof(struct bin_member), cmp_bins);
    if (out && !(values = cJSON_CreateArray())) {
        rc = nomem(w);
        goto out;
    }
    for (i = 0; i < n && !rc; i++) {
        cJSON *v = NULL;
        if (tag == 'N') {
            size_t nsize = 0;
            w->path[w->depth++] = (struct step){NULL, i};
            rc = number_value(w, ((struct num_member *)sorted)[i].v->valuestring,
                              values ? &v : NULL, &nsize);
            w->depth--;
            *size += nsize;
        } else if (values) {
            const cJSON *src =
                tag == 'S' ? ((const cJSON **)sorted)[i] : ((struct bin_member *)sorted)[i].v;
            v = wrap(tag == 'S' ? "stringValue" : "bytesValue",
                     cJSON_CreateString(src->valuestring));
            if (!v)
                rc = nomem(w);
        }
        if (v)
            cJSON_AddItemToArray(values, v);
    }
    if (!rc && out) {
        *out = wrap("arrayValue", wrap("values", values));
        values = NULL;
        if (!*out)
            rc = nomem(w);
    }
out:
    if (tag == 'B' && sorted)
        for (i = 0; i < n; i++)
            free(((struct bin_member *)sorted)[i].bytes);
    free(sorted);
    if (rc && values)
        cJSON_Delete(values);
    return rc;
}

static int list_value(struct walk *w, const cJSON *list, int depth, cJSON **out, size_t *size)
{
    cJSON *values = NULL;
    size_t i = 0;
    int rc = 0;

    if (out && !(values = cJSON_CreateArray()))
        return nomem(w);
    for (const cJSON *m = list->child; m && !rc; m = m->next, i++) {
        cJSON *v = NULL;
        size_t vsize = 0;

        w->path[w->depth++] = (struct step){NULL, i};
        rc = value(w, m, depth + 1, 1, values ? &v : NULL, &vsize);
        w->depth--;
        if (!rc && values)
            cJSON_AddItemToArray(values, v);
        *size += vsize;
    }
    if (rc) {
        cJSON_Delete(values);
        return rc;
    }
    if (out && !(*out = wrap("arrayValue", wrap("values", values))))
        return nomem(w);
    return 0;
}

static int value(struct walk *w, const cJSON *av, int depth, int in_array, cJSON **out,
                 size_t *size)
{
    const cJSON *v;
    const char *tag;
    int rc;

    /* depth is 1 + the levels around av; Firestore counts each map and each non-empty array
     * as a level (as its emulator does: 20 maps hold a value, 21 are refused; an empty array
     * adds nothing), so a container may sit at depth 20 at most, a value inside it at 21 */
    if (!cJSON_IsObject(av) || !av->child)
        return failf(w, D2F_EINPUT, "is not an AttributeValue (an object with one type tag)");
    v = av->child;
    tag = v->string;
    if (v->next) {
        char what[160];
        snprintf(what, sizeof(what),
                 "has two type tags ('%.8s' and '%.8s'); an AttributeValue "
                 "holds exactly one",
                 tag, v->next->string);
        return failf(w, D2F_EINPUT, what);
    }
    *size = 0;
    if (strcmp(tag, "S") == 0 || strcmp(tag, "N") == 0 || strcmp(tag, "B") == 0) {
        char what[64];
        if (!cJSON_IsString(v)) {
            snprintf(what, sizeof(what), "has a '%s' value that is not a JSON string", tag);
            return failf(w, D2F_EINPUT, what);
        }
        if (tag[0] == 'N')
            return number_value(w, v->valuestring, out, size);
        if (tag[0] == 'S') {
            size_t n = strlen(v->valuestring);
            if (!json_text_valid(v->valuestring, n))
                return failf(w, D2F_EINPUT, "is a string that is not valid UTF-8");
            *size = json_text_len(v->valuestring, n) + 1;
            if (*size - 1 > MAPPING_MAX_VALUE_BYTES)
                return failf(w, D2F_ELIMIT, TOO_LONG);
        } else {
            int d = decode_b64(v->valuestring, NULL, size);
            if (d == -2)
                return nomem(w);
            if (d)
                return failf(w, D2F_EINPUT, "is not valid base64");
            if (*size > MAPPING_MAX_VALUE_BYTES)
                return failf(w, D2F_ELIMIT, TOO_LONG);
        }
        if (out && !(*out = wrap(tag[0] == 'S' ? "stringValue" : "bytesValue",
                                 cJSON_CreateString(v->valuestring))))
            return nomem(w);
        return 0;
    }
    if (strcmp(tag, "BOOL") == 0 || strcmp(tag, "NULL") == 0) {
        if (!cJSON_IsBool(v))
            return failf(w, D2F_EINPUT, "has a BOOL or NULL value that is not true or false");
        if (tag[0] == 'N' && !cJSON_IsTrue(v))
            return failf(w, D2F_EINPUT, "is NULL with false; DynamoDB writes NULL: true");
        *size = 1;
        if (out && !(*out = tag[0] == 'B' ? wrap("booleanValue", cJSON_CreateBool(cJSON_IsTrue(v)))
                                          : wrap("nullValue", cJSON_CreateNull())))
            return nomem(w);
        return 0;
    }
    if (strcmp(tag, "M") == 0) {
        cJSON *f = NULL;
        if (!cJSON_IsObject(v))
            return failf(w, D2F_EINPUT, "has an 'M' value that is not a JSON object");
        if (depth > MAPPING_MAX_DEPTH)
            return failf(w, D2F_ELIMIT, "is nested deeper than Firestore's limit of 20 levels");
        rc = fields(w, v, depth + 1, out ? &f : NULL, size);
        if (!rc && out && !(*out = wrap("mapValue", wrap("fields", f))))
            return nomem(w);
        return rc;
    }
    if (strcmp(tag, "L") == 0 || strcmp(tag, "SS") == 0 || strcmp(tag, "NS") == 0 ||
        strcmp(tag, "BS") == 0) {
        cJSON *arr = NULL;
        if (!cJSON_IsArray(v)) {
            char what[64];
            snprintf(what, sizeof(what), "has an '%s' value that is not a JSON array", tag);
            return failf(w, D2F_EINPUT, what);
        }
        if (in_array) {
            /* Firestore refuses an array directly inside an array: {"values": [...]}, a map */
            if (depth > MAPPING_MAX_DEPTH)
                return failf(w, D2F_ELIMIT,
                             "is nested deeper than Firestore's limit of 20 levels (a list in a "
                             "list takes two)");
            depth++;
            *size += sizeof("values");
        }
        if (v->child && depth > MAPPING_MAX_DEPTH)
            return failf(w, D2F_ELIMIT, "is nested deeper than Firestore's limit of 20 levels");
        {
            size_t asize = 0;
            rc = tag[0] == 'L' ? list_value(w, v, depth, out ? &arr : NULL, &asize)
                               : set_value(w, v, tag[0], out ? &arr : NULL, &asize);
            *size += asize;
        }
        if (!rc && out)
            *out = in_array ? wrap("mapValue", wrap("fields", wrap("values", arr))) : arr;
        if (!rc && out && !*out)
            return nomem(w);
        return rc;
    }
    {
        char what[80];
        snprintf(what, sizeof(what), "has an unknown type tag '%.16s'", tag);
        return failf(w, D2F_EINPUT, what);
    }
}

int mapping_item(const cJSON *item, const struct mapping_opts *opts, cJSON **out,
                 struct mapping_result *res, struct d2f_err *err)
{
    struct walk w = {.opts = opts, .res = res, .err = err};

    memset(res, 0, sizeof(*res));
    if (out)
        *out = NULL;
    if (!cJSON_IsObject(item))
        return d2f_errf(err, D2F_EINPUT, "the item is not an object of AttributeValues");
    return fields(&w, item, 1, out, &res->size);
}
