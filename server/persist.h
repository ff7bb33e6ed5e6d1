/* persist: durable state under the data directory, one JSON document per
 * function.
 *
 * DESIGN: <data-dir>/functions/<id>.json holds one function (id =
 * "<region>.<account>.<name>"; '.' cannot occur in any of the three, so ids
 * are unambiguous). persist_open_sub opens further document directories
 * (<data-dir>/layers, see layers.h) with the same discipline under the
 * same lock. Documents are written only by a checkpoint (below), in place
 * (a removal is an unlink): durability comes from the journal, so the
 * documents may lag the API until the next checkpoint, and a journal is
 * deleted only after the documents it fed are synced, so a document a
 * crash tore is rewritten by the start-up replay. Torn temp files
 * ".<id>.json.tmp.*" of older versions are deleted at open. Files
 * that do not parse (which the replay discipline should make impossible) are moved
 * aside to "<id>.json.corrupt" and reported, never fatal. <data-dir>/lock is
 * flock'ed so two lambdads cannot share a data directory.
 *
 * Group commit: a change is appended to <dir>/journal, a write-ahead log
 * (records "<op> <crc32> <idlen> <len>\n<id><data>\n"). Writers stage their
 * change in order (persist_stage, under the caller's writer mutex) and wait
 * outside it (persist_commit); the first waiter becomes the leader and
 * writes everything staged so far with ONE pwrite + fdatasync, so concurrent
 * writers share one disk flush, and the API answers after that flush. A
 * journal starts as 1.25 MiB of synced zeros that the batches overwrite in
 * place, so a flush writes data only (an append would also wait for a
 * file-system journal commit of the new size); when a batch would pass
 * them the zeros are extended by 1 MiB (one write + sync per step) up to
 * the checkpoint size + 256 KiB; replay treats the zero tail as the clean end.
 * Between checkpoints the journal is the only durable copy. Every 16 MiB
 * (LAMBDAD_TEST_JOURNAL_CHECKPOINT=<bytes> sets less, for the tests) the
 * leader renames the journal to journal.old and opens
 * a fresh, pre-zeroed journal (directory fsync'd before anything in it is
 * acknowledged); a checkpoint thread (one per handle, started at the first
 * rotation, joined by persist_close) then replays journal.old into the
 * document files (each document once, from its last record), syncs them
 * (syncfs + fsync of the directory) and deletes it, while writers go on
 * committing into the new journal. One checkpoint
 * at a time; a failed one leaves journal.old for the next. At a clean close
 * and before persist_load a full checkpoint does both journals and empties
 * the journal. Start-up replays journal.old and then journal the same way,
 * each up to its first torn or corrupt record (that batch was never
 * acknowledged). If the journal cannot be written, the handle turns broken:
 * that and every later change fail with the same error.
 *
 * Thread rules: calls do disk I/O; the registry serialises writers on its
 * mutex. Never call inside an RCU read-side section. */
#ifndef LAMBDAD_SERVER_PERSIST_H
#define LAMBDAD_SERVER_PERSIST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

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

/* Stages a change for the next group commit: data[0..len) replaces the
 * document of id, or data == NULL removes it. Call in the order the changes
 * are made (under the caller's writer lock) and then persist_commit(ticket)
 * outside it. Returns 0 or -errno (nothing staged). */
int persist_stage(struct persist *p, const char *id, const char *data, size_t len, uint64_t *ticket);

/* Waits until the change of ticket (and every one staged before it) is
 * durable, leading the group commit when no other thread does. Returns 0,
 * or -errno when the journal could not be written. */
int persist_commit(struct persist *p, uint64_t ticket);

/* Journal flushes (write + fdatasync) so far: one per group commit. */
unsigned long long persist_flushes(struct persist *p);

/* Atomically replaces the document of id with data[0..len). Durable on
 * return 0 (persist_stage + persist_commit); -errno otherwise. */
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
