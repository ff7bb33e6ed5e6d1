/* layers: the Lambda layer versions, in memory and in the data directory.
 *
 * DESIGN: a layer is "<region>/<account>/<name>" plus the counter of the
 * next version number; a layer version is an immutable, reference-counted
 * struct layer_version (metadata + the code store key of its zip). Version
 * numbers start at 1 and are never reused, even after every version was
 * deleted: the counter outlives the versions, in memory and on disk.
 *
 * Persistence (persist.h discipline, directory <data-dir>/layers):
 *   <region>.<account>.<name>.json     {"kind":"layer", region, account,
 *                                       name, "next_version": N}
 *   <region>.<account>.<name>.<N>.json {"kind":"layer_version", ...}
 * Publishing writes the counter first, then the version; a crash in between
 * burns a number, which AWS semantics allow. Loading takes the larger of the
 * stored counter and the highest version + 1.
 *
 * Code blobs: a zip in the code store may be shared by layer versions and
 * functions (their code or their attached layers). Each layer version in
 * the table holds one reference on its blob (server/coderefs.h, the one
 * owner of blob references): taken under the writer mutex when it is
 * published (with the zip, to store it again if a removal raced with the
 * publish) or loaded, dropped when it is deleted. A function that
 * attached the version holds its own reference through the registry, so
 * deleting the version removes the blob only when no function uses it.
 * This store does not know the registry.
 *
 * Synchronization: writers (publish, delete, load) serialise on a writer
 * mutex and do their disk I/O under it; the in-memory table is guarded by a
 * rwlock held only for memory operations, so readers (get, list, find)
 * never wait for disk I/O. Lock order: the registry's writer mutex and
 * coderefs' reference lock may be held when the rwlock is taken (a registry
 * writer resolves layer ARNs), never the reverse; the writer mutex -> the
 * reference lock.
 *   layers_get/find/list               any thread
 *   layers_publish/delete              any thread, outside RCU read-side
 *   layers_init/load/shutdown          main thread only */
#ifndef LAMBDAD_SERVER_LAYERS_H
#define LAMBDAD_SERVER_LAYERS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/errors.h"

#define LAYERS_NAME_MAX 64    /* AWS's layer names: [a-zA-Z0-9-_]+, 1-64 */
#define LAYERS_LIST_MAX 50    /* page size cap of ListLayers/ListLayerVersions */

struct codestore;
struct persist;

/* One published layer version. Read-only once published. */
struct layer_version {
    atomic_int refs;
    char *region, *account, *name;
    long long version;
    char *layer_arn;          /* arn:aws:lambda:R:A:layer:NAME */
    char *arn;                /* LayerVersionArn: layer_arn + ":N" */
    char *code_hex;           /* code store key */
    char *code_sha256;        /* base64, CodeSha256 */
    long long code_size;      /* zip bytes, CodeSize */
    char *description;        /* "" when none */
    char *created_date;       /* "YYYY-MM-DDThh:mm:ss.sss+0000" */
    char *license_info;       /* NULL when none */
    json_t *runtimes;         /* array of strings or NULL (never modified) */
    json_t *architectures;    /* array of strings or NULL (never modified) */
    char *policy;             /* resource policy statements (JSON array text) or NULL */
    char *revision_id;        /* the policy's RevisionId (uuid) */
};

/* What PublishLayerVersion stores (already validated by the caller). */
struct layer_publish {
    const char *region, *account, *name;
    const char *code_hex, *code_sha256;
    long long code_size;
    const char *description;  /* may be NULL */
    const char *license_info; /* may be NULL */
    json_t *runtimes;         /* borrowed; may be NULL */
    json_t *architectures;    /* borrowed; may be NULL */
    const void *zip;          /* the zip bytes, to re-store the blob if a */
    size_t zip_len;           /* concurrent removal raced with the publish */
};

/* Sets the code store and the persistence handle (NULL: ephemeral). */
void layers_init(struct codestore *cs, struct persist *p);

/* Loads every persisted layer and layer version. Returns the number of
 * layer versions, or -errno. Unusable documents are logged and skipped. */
int layers_load(void);

/* Drops everything in memory (nothing on disk). */
void layers_shutdown(void);

/* Publishes the next version of a layer: persists it, then makes it
 * visible. On success *out (may be NULL) gets a reference. Errors:
 * ServiceException on I/O failure. */
int layers_publish(const struct layer_publish *in, struct layer_version **out, struct api_error *err);

/* A reference to version `version` of region/account/name, or NULL. */
struct layer_version *layers_get(const char *region, const char *account, const char *name,
                                 long long version);

/* Parses a layer version ARN (arn:P:lambda:R:A:layer:NAME:N) and returns a
 * reference to that version, or NULL when it is malformed or unknown. */
struct layer_version *layers_find_arn(const char *arn);

/* Parses a layer ARN with or without version into region/account/name and
 * *version (0 when absent). Returns 0, or -1 when it is not one. */
int layers_parse_arn(const char *arn, char region[32], char account[13],
                     char name[LAYERS_NAME_MAX + 1], long long *version);

/* Whether name is a valid layer name (1-64 of [a-zA-Z0-9-_]). */
bool layers_name_ok(const char *name);

/* Deletes a version (absent: nothing to do, returns 0) and drops its blob
 * reference (coderefs_release). Returns 0 or -1 with err on I/O failure. */
int layers_delete(const char *region, const char *account, const char *name, long long version,
                  struct api_error *err);

/* Edits the policy statements of a layer version: stmts is a private copy
 * of the current array (empty when none), rev the current RevisionId.
 * Returns 0 to store the result, or -1 with err to abort. */
typedef int (*layers_policy_fn)(json_t *stmts, const char *rev, void *ud, struct api_error *err);

/* Under the writer mutex: runs fn on version `version`'s statements, and on
 * success persists and publishes a copy of the version with the new
 * statements and the RevisionId new_rev (a fresh uuid the caller made, 36
 * characters). Errors:
 * ResourceNotFoundException for an unknown version, fn's, ServiceException
 * on I/O failure. Any thread outside RCU read-side sections. */
int layers_update_policy(const char *region, const char *account, const char *name, long long version,
                         layers_policy_fn fn, void *ud, const char *new_rev, struct api_error *err);

/* Filters of the list operations (NULL: no filter). */
struct layers_filter {
    const char *runtime;
    const char *architecture;
};

/* Whether v matches the filter. */
bool layers_match(const struct layer_version *v, const struct layers_filter *f);

/* ListLayers: for each layer of region/account whose name sorts after
 * marker (NULL: from the start), by name, the newest version matching f;
 * layers without a match are skipped. At most max entries; *more tells
 * whether more follow. Release each with layers_unref, the array with free.
 * Returns 0 or -ENOMEM. */
int layers_list_latest(const char *region, const char *account, const struct layers_filter *f,
                       const char *marker, size_t max, struct layer_version ***out, size_t *n,
                       bool *more);

/* ListLayerVersions: the versions of one layer matching f, newest first,
 * with a version number below before (0: from the newest). Same contract
 * as layers_list_latest. */
int layers_list_versions(const char *region, const char *account, const char *name,
                         const struct layers_filter *f, long long before, size_t max,
                         struct layer_version ***out, size_t *n, bool *more);

struct layer_version *layers_ref(struct layer_version *v);
void layers_unref(struct layer_version *v);

#endif
