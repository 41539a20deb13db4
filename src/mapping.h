/*
 * mapping.h: DynamoDB items (attribute name → AttributeValue) as Firestore REST "fields".
 *
 *   S → stringValue          N → integerValue / doubleValue (or stringValue, exact)
 *   B → bytesValue (base64)   BOOL → booleanValue       NULL → nullValue
 *   M → mapValue              L → arrayValue; a list directly inside a list becomes
 *                                 {"mapValue":{"fields":{"values":{"arrayValue":…}}}}
 *   SS / NS / BS → arrayValue of the members, sorted (bytes, numerically, bytes)
 *
 * Firestore's limits are checked on the way: nesting depth, field names, and the storage size
 * the caller needs for the 1 MiB document limit (https://firebase.google.com/docs/firestore/
 * storage-size). A top-level field is at depth 1; each map or array adds one level.
 *
 * Strings and names are JSON text (json.h): U+0000 is carried as C0 80, counted, checked and
 * sorted as the one byte it stands for, and printed by json_print as \u0000. A doubleValue is
 * the nearest double, printed as the shortest text that reads back as it.
 */
#ifndef MAPPING_H
#define MAPPING_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "d2f.h"

#define MAPPING_MAX_DEPTH 20
#define MAPPING_MAX_FIELDS 20000
#define MAPPING_MAX_NAME_BYTES 1500
/* A field's path from the top (map keys joined with '.') and one string or bytes value. */
#define MAPPING_MAX_PATH_BYTES 1500
#define MAPPING_MAX_VALUE_BYTES 1048487

struct mapping_opts {
    int numbers_as_strings; /* 1: every N as stringValue in DynamoDB's own text */
    int escape_reserved;    /* 1: a field name matching __.+__ or starting with '%' has its first
                               character percent-encoded ("%5F", "%25"); 0: such an item fails */
};

struct mapping_result {
    size_t size;             /* Firestore storage size of the fields */
    size_t fields;           /* fields, those inside maps included */
    size_t rounded;          /* numbers written as the nearest double, not exactly */
    char rounded_field[256]; /* the path of the first of them, e.g. "items[2].price" */
};

/* Maps item, an object of AttributeValues, to Firestore fields. With out NULL it only checks;
 * otherwise *out is a new cJSON object (the caller frees it). res is filled either way. On a
 * malformed value or a limit, fills err with the attribute's path and the reason. */
int mapping_item(const cJSON *item, const struct mapping_opts *opts, cJSON **out,
                 struct mapping_result *res, struct d2f_err *err) D2F_WUR;

/* Firestore's rules for a field name (n bytes of JSON text): NULL when fine, else a static
 * reason. */
const char *mapping_field_name_problem(const char *name, size_t n);

/* 1 when DDB2FS_RESERVED_NAMES=escape changes the field name: it matches __.+__ or starts
 * with '%'. */
int mapping_name_needs_escape(const char *name, size_t n);

#endif
