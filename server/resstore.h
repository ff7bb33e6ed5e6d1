/* resstore: a small persisted collection of account-level resources that
 * belong to no function (event source mappings, code signing configs), as
 * JSON documents keyed by id.
 *
 * DESIGN: the documents live in memory in one JSON object guarded by a
 * mutex, and on disk under <data-dir>/<subdir>/<id>.json with persist.h's
 * discipline (atomic replace, fsync) when the store has a parent persist
 * handle; without one (--ephemeral) only in memory. Writes persist before
 * they change the memory copy, so an acknowledged write survives a crash.
 * Every read returns a deep copy the caller owns. These are control-plane
 * resources touched rarely: the mutex is held across the disk write.
 *
 * Thread rules: any thread; never inside an RCU read-side section. */
#ifndef LAMBDAD_SERVER_RESSTORE_H
#define LAMBDAD_SERVER_RESSTORE_H

#include <jansson.h>

struct persist;
struct resstore;

/* Opens the collection in <data-dir>/<subdir> (parent NULL: memory only)
 * and loads its documents. Returns 0 or -errno. Main thread. */
int resstore_open(struct resstore **out, const struct persist *parent, const char *subdir);

/* Frees the collection (nothing is removed on disk). NULL-safe. */
void resstore_close(struct resstore *rs);

/* A deep copy of document id, or NULL. */
json_t *resstore_get(struct resstore *rs, const char *id);

/* Stores a copy of doc as id (create or replace), durably. Returns 0 or
 * -errno (the previous state is intact). id: [A-Za-z0-9._-]+. */
int resstore_put(struct resstore *rs, const char *id, json_t *doc);

/* Removes id durably. Returns 0, -ENOENT when absent, or -errno. */
int resstore_remove(struct resstore *rs, const char *id);

/* A deep copy of every document, as an array sorted by id. */
json_t *resstore_all(struct resstore *rs);

#endif
