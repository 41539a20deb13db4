/*
 * docid.h: Firestore collection and document names for DynamoDB items.
 *
 * A document id is the partition key's text, or partition + separator + sort for a composite
 * key. Strings are taken as they are, numbers in canonical decimal form, binary as unpadded
 * base64url. Ids are escaped reversibly with %XX (uppercase hex): '%' and '/' always, the
 * separator's characters in composite ids, a whole id of "." or "..", and the first '_' of an
 * id matching __.+__. An id longer than Firestore's 1,500 bytes becomes
 * DOCID_HASH_PREFIX + the SHA-256 (hex) of the escaped id; a plain escaped id never starts
 * that way, since '%' is always followed by two hex digits there.
 *
 * Ids are JSON text (json.h): a U+0000 in a key is kept in the id as it is (Firestore accepts
 * it), carried as C0 80; lengths and the hash count it as the one zero byte it stands for.
 */
#ifndef DOCID_H
#define DOCID_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "d2f.h"

#define DOCID_MAX_BYTES 1500
#define DOCID_HASH_PREFIX "%sha256%"

/* NULL when the n bytes at s are a valid Firestore collection or document id, else a static
 * reason ("contains '/'", …). */
const char *docid_segment_problem(const char *s, size_t n);

/* Appends s (n bytes) escaped: '%', '/', and each character of s that is one of sep's (sep may
 * be NULL), every byte of that character. */
int docid_escape(const char *s, size_t n, const char *sep, struct buf *out) D2F_WUR;

/* Applies the whole-id rules to id in place: "." and "..", __.+__, and the length limit. */
int docid_finish(struct buf *id) D2F_WUR;

/* Builds the document id of an item from its stream Keys map and its key schema (sk NULL for
 * a partition key alone). On error fills err with the reason (no record prefix). */
int docid_from_keys(const cJSON *keys, const char *pk, const char *sk, const char *sep,
                    struct buf *out, struct d2f_err *err) D2F_WUR;

/* The default collection id of a table: its name, escaped like a document id. */
int docid_collection(const char *table, struct buf *out) D2F_WUR;

/* Reverses the escaping of an id built by docid_from_keys: fills pk and, for a composite id
 * (sep not NULL), sk with the key texts. Returns 0, or D2F_EINPUT for a hashed or
 * malformed id. */
int docid_decode(const char *id, const char *sep, struct buf *pk, struct buf *sk) D2F_WUR;

#endif
