/*
 * latency_vfs.h: a test-only SQLite VFS with EFS-like latency (see latency_vfs.c). Built into
 * ddb2fs with -DDDB2FS_LATENCY_VFS=ON only.
 */
#ifndef LATENCY_VFS_H
#define LATENCY_VFS_H

/* Registers the shim as SQLite's default VFS with the delays of spec ("efs", or
 * "sync=2700,lock=1000,…" in microseconds). Returns 1 when registered, 0 when spec is NULL or
 * empty (nothing done), -1 when spec is malformed. Call before any database is opened. */
int latency_vfs_register(const char *spec);

#endif
