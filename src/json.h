/*
 * json.h: JSON text read and printed exactly, around cJSON.
 *
 * DESIGN
 * cJSON keeps a string as a NUL-terminated C string with no length, so a "\u0000" inside a
 * JSON string cuts it short. DynamoDB strings, field names and keys may hold U+0000, and
 * Firestore stores it, so ddb2fs must carry it. cJSON stays the JSON library; the extra work is
 * the smallest that makes it exact:
 *
 *   - reading: when the text holds a "\u0000" escape, each one becomes the two bytes C0 80
 *     before cJSON parses it (the "Modified UTF-8" form of U+0000: an overlong sequence that
 *     well-formed UTF-8 never holds, and that holds no zero byte). A raw C0 byte, which UTF-8
 *     never holds either, becomes FF, so that an ill-formed string stays ill-formed and C0 80
 *     always means U+0000;
 *   - in the tree, strings are "JSON text": UTF-8 in which C0 80 is U+0000. json_text_*
 *     measure, validate and order such strings as the UTF-8 they stand for;
 *   - printing: cJSON prints bytes above 0x7F as they are, so after cJSON's printer every C0 80
 *     becomes the escape \u0000 again.
 *
 * Numbers: cJSON prints a double with 15 significant digits whenever they come within an
 * epsilon of it, which loses the last bits. json_number makes an item whose text is the
 * fewest significant digits that read back as exactly the same double.
 *
 * Text without "\u0000" and without a C0 byte takes cJSON's path unchanged, at no extra cost
 * but a scan.
 */
#ifndef JSON_H
#define JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "d2f.h"

/* Room json_double_text needs: "-", 17 digits, ".", "e-324" and the NUL. */
#define JSON_DOUBLE_TEXT 32

/* Parses the len bytes at text as one JSON value, with nothing but white space after it.
 * Returns a new tree (cJSON_Delete it), or NULL when the text is not JSON (or memory ran
 * out). */
cJSON *json_parse(const char *text, size_t len);

/* Parses one JSON value at the start of the len bytes at text; *end is set past it. The rest
 * of the text is not looked at. Returns a new tree, or NULL (then *end is unchanged). */
cJSON *json_parse_prefix(const char *text, size_t len, const char **end);

/* The two above, telling why they failed: 0 with *out a new tree, D2F_ENOMEM when memory ran
 * out (cJSON allocating through json_malloc), D2F_EINPUT when the text is not JSON; *out is
 * NULL then. end NULL: the value must fill the text (json_parse); else as json_parse_prefix. */
int json_parse_status(const char *text, size_t len, const char **end, cJSON **out) D2F_WUR;

/* malloc, for cJSON's hooks (main.c): a failure is noted, so that a parse that fails for want
 * of memory is not taken for malformed text. */
void *json_malloc(size_t n);

/* Prints item without formatting, each U+0000 as \u0000. Returns text to release with
 * cJSON_free, or NULL when memory ran out. */
char *json_print(const cJSON *item);

/* The shortest text of d (finite) that reads back as d: the fewest significant digits, the
 * nearest of them to d, written as ECMAScript's Number::toString writes them (so exactly as
 * JavaScript's JSON.stringify prints d): "0.1", "1e-7", "1e+21", "9223372036854776000",
 * "5e-324". Returns its length. */
size_t json_double_text(double d, char out[JSON_DOUBLE_TEXT]);

/* A number item printed as json_double_text(d) (a cJSON raw item). NULL when out of memory,
 * or when d is not finite (JSON has no text for it). */
cJSON *json_number(double d);

/* Adds json_number(d) to obj as name. Returns the item, or NULL (nothing added). */
cJSON *json_add_number(cJSON *obj, const char *name, double d);

/* The value of a number item, cJSON's or json_number's; 0 for any other item. */
double json_number_value(const cJSON *item);

/* The length in UTF-8 bytes of the n bytes of JSON text at s (C0 80 counts one). */
size_t json_text_len(const char *s, size_t n);

/* 1 when the n bytes of JSON text at s are well-formed UTF-8 (C0 80 being U+0000). */
int json_text_valid(const char *s, size_t n);

/* Orders two JSON text strings by the UTF-8 bytes they stand for (U+0000 below all). */
int json_text_cmp(const char *a, const char *b);

/* Writes the UTF-8 bytes that the n bytes of JSON text at s stand for into out (room for n
 * bytes; no NUL is added). Returns how many were written. */
size_t json_text_utf8(const char *s, size_t n, unsigned char *out);

/* Copies the JSON text string s into out (cap bytes, NUL-terminated, cut to fit) with each
 * U+0000 (C0 80) written as the six characters \u0000, so that a message holding it is valid
 * UTF-8. Returns the length written. */
size_t json_text_message(const char *s, char *out, size_t cap);

#endif
