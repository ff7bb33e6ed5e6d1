/* persist: durable state under the data directory, one JSON document per
 * function.
 *
 * DESIGN: <data-dir>/functions/<id>.json holds one function (id =
 * "<region>.<account>.<name>"; '.' cannot occur in any of the three, so ids
 * are unambiguous). persist_open_sub opens further document directories
 * (<data-dir>/layers, see layers.h) with the same discipline under the
 * same lock. A write goes to a temp file ".<id>.json.tmp.XXXXXX" in
 * the same directory, is fsync'd, renamed over the target, and the directory
 * is fsync'd, all before the caller acknowledges the change; a removal is
 * unlink + fsync(dir). A crash therefore leaves either the old or the new
 * file, plus possibly a torn temp file, which persist_open deletes. Files
 * that do not parse (which atomic renames should make impossible) are moved
 * aside to "<id>.json.corrupt" and reported, never fatal. <data-dir>/lock is
 * flock'ed so two lambdads cannot share a data directory.
 *
 * Thread rules: calls do disk I/O; the registry serialises writers on its
 * mutex. Never call inside an RCU read-side section. */
#ifndef LAMBDAD_SERVER_PERSIST_H
#define LAMBDAD_SERVER_PERSIST_H

#include <jansson.h>
#include <stddef.h>

struct persist;

/* Opens the data directory (creating it and functions/ as needed), takes the
 * lock, removes torn temp files. Returns 0 or -errno (-EBUSY: another
 * lambdad holds the lock). */
int persist_open(struct persist **out, const char *data_dir);

/* Opens a second document directory, <data-dir>/<subdir> (e.g. "layers"),
 * with the same write/remove/load discipline, under the lock parent holds.
 * Close it before parent. Returns 0 or -errno. */
int persist_open_sub(struct persist **out, const struct persist *parent, const char *subdir);

/* Releases the lock (if p holds it) and frees p. NULL-safe. */
void persist_close(struct persist *p);

/* Atomically replaces the document of id with data[0..len). Durable on
 * return 0; -errno otherwise (the previous document is intact). */
int persist_write(struct persist *p, const char *id, const char *data, size_t len);

/* Removes the document of id, durably. Returns 0 or -errno (0 if absent). */
int persist_remove(struct persist *p, const char *id);

/* Calls fn for every stored document (parsed; fn borrows doc). Unparsable
 * files are moved aside and skipped. Stops at and returns fn's first
 * non-zero result; else returns the number of documents loaded, or -errno. */
int persist_load(struct persist *p, int (*fn)(void *ud, const char *id, json_t *doc), void *ud);

/* Builds the id "<region>.<account>.<name>" into out. */
void persist_id(const char *region, const char *account, const char *name, char *out, size_t len);

#endif
