/* coderefs: who still uses a blob of the code store, and its removal.
 *
 * DESIGN: a blob is a zip in the code store and its extracted directory
 * (runtime/codestore.h), keyed by its SHA-256 hex. Two stores reference
 * blobs: the registry (every published function record holds its
 * $LATEST code, its attached layers, and each published version's code and
 * layers) and the layer store (each layer version holds its zip). This
 * module is the one owner of those references: a count per blob, taken
 * when a record or a layer version is published (or loaded) and dropped
 * when it is unpublished. The drop that reaches zero removes the blob
 * (codestore_remove); nothing else removes blobs. Environments are the
 * third kind of user: their fn_spec pins its directories in the code store
 * (codestore_pin), which defers that removal to the last unpin, so a
 * running environment never loses its code.
 *
 * The registry and the layer store only call in here; neither calls the
 * other to decide about a blob (server/registry -> server/layers stays a
 * one-way dependency, for resolving layer ARNs).
 *
 * Races with publication: a holder checks that a blob is present (or
 * stores it again) and then publishes its reference. A removal in between
 * would leave it pointing at nothing, so:
 *   - the registry holds the reference lock (coderefs_lock) across each
 *     writer section, from building a record to taking its references;
 *   - the layer store takes its reference with the zip in hand
 *     (coderefs_acquire with zip): when the blob is gone (a removal
 *     decided before the publication), the zip is stored again.
 * A reference is dropped only after the change that dropped it is durable
 * (the caller's business), so a crash never leaves a document pointing at
 * removed code. Counts live in memory: they are rebuilt by loading.
 *
 * If an allocation for a count fails, counting can no longer be trusted:
 * every blob is kept from then on (logged once) rather than one removed
 * while used.
 *
 * Lock order: the registry's writer mutex -> the reference lock -> the
 * layer store's rwlock (a registry writer resolves layer ARNs); the layer
 * store's writer mutex -> the reference lock.
 *
 * Synchronization table:
 *   coderefs_init/shutdown                    main thread, no other call running
 *   coderefs_lock/unlock                      any thread outside RCU read-side
 *   coderefs_acquire/release                  any thread outside RCU read-side,
 *                                             without the reference lock
 *   coderefs_acquire_locked/release_locked    with the reference lock held
 *   coderefs_count                            any thread (tests) */
#ifndef LAMBDAD_SERVER_CODEREFS_H
#define LAMBDAD_SERVER_CODEREFS_H

#include <stddef.h>

struct codestore;

/* Starts counting for the code store cs (NULL: counts only, nothing is
 * ever removed or stored). Forgets any previous counts. */
void coderefs_init(struct codestore *cs);

/* Forgets every count (nothing is removed). Safe without coderefs_init. */
void coderefs_shutdown(void);

/* The reference lock (not recursive). */
void coderefs_lock(void);
void coderefs_unlock(void);

/* Takes one reference on the blob hex (NULL: nothing). With zip (the
 * blob's bytes), stores it again first when the blob is missing from the
 * store. Takes the reference lock. */
void coderefs_acquire(const char *hex, const void *zip, size_t zip_len);

/* Drops one reference; at zero the blob is removed from the code store
 * (deferred by the store while an environment pins it). Takes the
 * reference lock. NULL: nothing. */
void coderefs_release(const char *hex);

/* The same, with the reference lock already held. */
void coderefs_acquire_locked(const char *hex);
void coderefs_release_locked(const char *hex);

/* The number of references on hex (0 when none). For tests. */
int coderefs_count(const char *hex);

#endif
