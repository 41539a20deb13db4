/* sqlfiles.h: the files of sql/, embedded at build time (see cmake/embed_sql.cmake). */
#ifndef SQLFILES_H
#define SQLFILES_H

#include <stddef.h>

struct sqlfile {
    const char *name; /* file name, e.g. "0001_init.sql"; its number is the schema version */
    const char *text; /* the file's contents, NUL-terminated */
};

/* Sorted by name. */
extern const struct sqlfile sqlfiles[];
extern const size_t sqlfiles_count;

#endif
