/*
 * ddb.h: what the relay asks DynamoDB: a table's key schema (DescribeTable), signed with
 * libcurl's SigV4, credentials and region from the standard AWS variables.
 */
#ifndef DDB_H
#define DDB_H

#include "buf.h"
#include "config.h"
#include "d2f.h"

/*
 * The partition and sort key attribute names of table (*sk empty when it has none) into pk and
 * sk. Returns 0; D2F_ECONFIG when no AWS credentials or region are set; D2F_EREMOTE with
 * DynamoDB's error (__type and message) when it refuses; D2F_EUNREACHABLE when it does not answer.
 */
int ddb_key_schema(const struct config *cfg, const char *table, struct buf *pk, struct buf *sk,
                   struct d2f_err *err) D2F_WUR;

/* What the backfill needs to know of a table. */
struct ddb_table {
    struct buf pk, sk;    /* key attribute names (sk empty: none); the caller inits them */
    int stream_enabled;   /* StreamSpecification.StreamEnabled */
    char view_type[32];   /* StreamSpecification.StreamViewType, "" when none */
    char stream_arn[600]; /* LatestStreamArn, "" when none */
    double item_count;    /* ItemCount (DynamoDB updates it every six hours or so) */
};

/* DescribeTable of table into *t (its bufs initialised by the caller). Returns as
 * ddb_key_schema does. */
int ddb_describe(const struct config *cfg, const char *table, struct ddb_table *t,
                 struct d2f_err *err) D2F_WUR;

#endif
