/*
 * status.h: the state of the outbox in one screen: counts by state, the oldest pending
 * record, the lease holder, and per table its key schema and counts.
 */
#ifndef STATUS_H
#define STATUS_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "d2f.h"
#include "outbox.h"

/* Reads the outbox's state into *out, a new cJSON object (the caller frees it). */
int status_collect(struct outbox *ob, cJSON **out, struct d2f_err *err) D2F_WUR;

/* The same over the n files of a partitioned outbox (partition.h): the totals, the tables,
 * dead reasons and minutes merged, each file's counts under "files" and each lease with its
 * "partition". For one file, status_collect. */
int status_collect_set(struct outbox *const *obs, size_t n, cJSON **out,
                       struct d2f_err *err) D2F_WUR;

/* Prints a collected status for people. */
void status_print(const cJSON *status, FILE *out);

#endif
