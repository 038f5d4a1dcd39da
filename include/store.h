/*
 * store — small JSON documents under the state directory, written
 * atomically (temporary file, fsync, rename, fsync of the directory), so a
 * power cut leaves either the old or the new document, never half of one.
 */
#ifndef STORE_H
#define STORE_H

#include <jansson.h>

/* 0 or -errno. */
int store_save(const char *dir, const char *name, const json_t *doc);

/* The document, or NULL (missing, unreadable or not JSON: *err says which
 * when err is given; a missing file leaves *err empty). */
json_t *store_load(const char *dir, const char *name, char *err, size_t errlen);

#endif
