/*
 * partition.h: the outbox as N SQLite files, so that N writers and N drains work at once.
 *
 * DESIGN
 * One file takes one writer at a time, and on EFS each commit costs several synchronous round
 * trips: one file tops out at a few hundred commits a second, shared by every Lambda instance
 * and the drain. With DDB2FS_PARTITIONS=N (N > 1) DDB2FS_OUTBOX names a directory holding
 * manifest.json and part-00.db … part-(N-1).db, each a whole outbox of its own (schema, key
 * schemas, lease, settings). A record goes to the file that a stable hash of its table and its
 * Keys map chooses, so the same record always lands in the same file (dedupe is unchanged) and
 * every record of one document lands in one file (order per document holds), without knowing
 * the key schema. N is fixed when the outbox is made: the manifest records it and a different
 * DDB2FS_PARTITIONS is refused; 'ddb2fs repartition' moves an outbox to another N.
 *
 * The hash: SHA-256 over the table name, then for each attribute of Keys in byte order of its
 * name: the name, its type letter and its value, each as a 4-byte big-endian length and its
 * bytes (strings as UTF-8, U+0000 a zero byte; numbers in their canonical plain decimal form,
 * "7" for "007" and "1000" for "1e3"; binary values as their decoded bytes). The first 8 bytes
 * of the digest, big-endian, modulo N, are the partition. A record without a table or a Keys
 * map of S/N/B values goes to partition 0.
 *
 * Calling sequence
 *   partitions_open(&set, cfg, OUTBOX_CREATE, &err);
 *   for (i = 0; i < partitions_count(set); i++) … partitions_outbox(set, i) …
 *   partitions_close(set);
 */
#ifndef PARTITION_H
#define PARTITION_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "d2f.h"
#include "outbox.h"

struct partitions;

/* Opens the outbox at cfg->outbox: one file, or the directory of a partitioned outbox (made,
 * with its manifest, when mode is OUTBOX_CREATE and cfg->partitions > 1). D2F_ECONFIG when
 * cfg->partitions differs from what the outbox has. */
int partitions_open(struct partitions **out, const struct config *cfg, enum outbox_open_mode mode,
                    struct d2f_err *err) D2F_WUR;

/* Closes every file; accepts NULL. */
void partitions_close(struct partitions *set);

/* How many files: 1 for an outbox of one file. */
size_t partitions_count(const struct partitions *set);

/* The i-th file (i < partitions_count). Owned by set. */
struct outbox *partitions_outbox(struct partitions *set, size_t i);

/* Every file, partitions_count of them. Owned by set. */
struct outbox *const *partitions_all(struct partitions *set);

/* 1 when the outbox at path is partitioned (a directory with a manifest). */
int partitions_is_dir(const char *path);

/* The partition (below n) of a record of table with Keys map keys (either may be NULL). */
size_t partition_of(const char *table, const cJSON *keys, size_t n);

/* What partitions_repartition did. */
struct partitions_moved {
    size_t from, to; /* files before and after */
    int64_t records; /* records moved */
    char kept[4200]; /* where the outbox as it was is kept ("" when nothing moved) */
};

/* Moves the outbox at cfg->outbox to n files (1: one file): refused while any record is
 * pending or a drain holds a lease. Every file of the old outbox is marked moved first, so that
 * no writer adds to it (they are refused, their batches retried, and open the new outbox); the
 * new one is built beside it and put in its place; the old one is kept under moved->kept. */
int partitions_repartition(const struct config *cfg, size_t n, struct partitions_moved *moved,
                           struct d2f_err *err) D2F_WUR;

#endif
