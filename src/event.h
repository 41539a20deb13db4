/*
 * event.h: a Lambda DynamoDB stream event, read one record at a time.
 *
 * The event is {"Records":[…]}. The reader walks the top-level object and the Records array
 * itself and hands each element to cJSON, so that every record is parsed on its own (memory
 * stays at one record's tree) and its exact text is known: the outbox keeps the bytes as
 * received. A malformed event (not JSON, no Records, over Lambda's limits) is an error; a
 * malformed record is returned with its reason and the walk goes on.
 *
 * Calling sequence:
 *   event_reader_init(&r, text, len, &err);
 *   while ((rc = event_reader_next(&r, &rec, &err)) == EVENT_RECORD) {
 *       use rec;
 *       event_record_release(&rec);
 *   }
 *   rc == 0: the whole event was read and is well-formed; rc > 0 … error in err.
 */
#ifndef EVENT_H
#define EVENT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "d2f.h"

/* Lambda's limits for a synchronous invocation payload and a stream batch. */
#define EVENT_MAX_BYTES (6 * 1024 * 1024)
#define EVENT_MAX_RECORDS 10000
#define EVENT_SEQ_MAX_DIGITS 40

/* What event_reader_next returns with a record: not 1, which is D2F_ENOMEM. */
#define EVENT_RECORD (-1)

enum event_name { EVENT_UNKNOWN, EVENT_INSERT, EVENT_MODIFY, EVENT_REMOVE };

/* One stream record. Pointers point into json or the event text; valid until release. */
struct event_record {
    size_t index;      /* position in Records[] */
    const char *raw;   /* the record's JSON text exactly as received (not NUL-terminated) */
    size_t raw_len;    /* bytes at raw */
    cJSON *json;       /* the parsed record; owned; NULL when the text is not JSON */
    const char *error; /* NULL, or why the record is malformed (points at error_buf) */
    char error_buf[400];

    /* the fields AWS documents; NULL / 0 when absent */
    const char *event_id;
    const char *event_name_text;
    enum event_name name;
    const char *event_version;
    const char *event_source;
    const char *aws_region;
    const char *source_arn;
    char table[256];                /* the table name from source_arn, "" when unknown */
    const char *identity_type;      /* userIdentity.type */
    const char *identity_principal; /* userIdentity.principalId */
    int ttl_expiry;                 /* 1 when DynamoDB's TTL service removed the item */
    double created;                 /* dynamodb.ApproximateCreationDateTime, seconds; 0 if absent */
    const cJSON *keys;              /* dynamodb.Keys */
    const cJSON *new_image;         /* dynamodb.NewImage */
    const cJSON *old_image;         /* dynamodb.OldImage */
    const char *seq;                /* dynamodb.SequenceNumber as received */
    char seq_key[EVENT_SEQ_MAX_DIGITS + 1]; /* seq zero-padded to 40 digits; "" if invalid */
    double size_bytes;                      /* dynamodb.SizeBytes; 0 if absent */
    const char *view_type;                  /* dynamodb.StreamViewType */
};

struct event_reader {
    const char *text; /* the event */
    size_t len;       /* its length */
    size_t pos;       /* where the walk is */
    size_t index;     /* records returned so far */
    int state;        /* where in the grammar we are */
    int seen_records; /* 1 once "Records" was met */
    size_t members;   /* members of the top-level object read so far */
};

/* Starts reading text (len bytes, which must stay valid). Fails on an event over the size
 * limit or one that does not start as a JSON object. */
int event_reader_init(struct event_reader *r, const char *text, size_t len,
                      struct d2f_err *err) D2F_WUR;

/* Reads the next record into rec. Returns EVENT_RECORD with a record (check rec->error), 0 at
 * the end of a well-formed event, or a D2F_E* code with err filled when the event is malformed
 * (D2F_EINPUT, D2F_ELIMIT) or memory ran out (D2F_ENOMEM). */
int event_reader_next(struct event_reader *r, struct event_record *rec, struct d2f_err *err);

/* Frees what a record holds. Accepts a released record. */
void event_record_release(struct event_record *rec);

/* Fills rec's fields from rec->json and checks them; sets rec->error when malformed.
 * Used by the reader, and by the drain on records read back from the outbox. */
void event_record_check(struct event_record *rec);

/* Normalises a sequence number (1 to 40 decimal digits) to 40 digits, so that text order is
 * numeric order. Returns 0, or -1 when seq is not one. */
int event_seq_key(const char *seq, char out[EVENT_SEQ_MAX_DIGITS + 1]);

#endif
