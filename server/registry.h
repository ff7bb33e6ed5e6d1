/* registry: the functions, in memory, as immutable RCU-published records.
 *
 * RCU FLAVOUR: liburcu 0.13 "memb" flavour, i.e. `#include <urcu.h>` with no
 * RCU_* macro defined (pkg-config liburcu -> -lurcu; the hash table comes
 * from liburcu-cds, <urcu/rculfhash.h>). Every thread that calls
 * rcu_read_lock must have called rcu_register_thread (civetweb workers are
 * registered by http.c). pool/ uses the same flavour.
 *
 * DESIGN: one cds_lfht maps "<region>/<account>/<name>" to a struct
 * fn_record. A record is never modified after it is published: an update
 * builds a complete new record (configuration JSON text, tags, concurrency,
 * a new fn_spec with its deploy ID) and swaps it in with cds_lfht_replace;
 * the old one is released with call_rcu after a grace period. Writers
 * (create, update, delete) serialise on one mutex and persist the new state
 * (persist.h) before publishing it and before the API answers. Readers take
 * no lock at all: resolve inside rcu_read_lock, copy out what they need or
 * take a reference, leave the read-side section.
 *
 * Code blobs: each published record holds a reference (server/coderefs.h)
 * on every blob it uses -- $LATEST's code and attached layers, each
 * version's code and layers -- taken when it is published or loaded and
 * dropped once the change that unpublished it is durable. Writer sections
 * hold coderefs' reference lock inside the writer mutex, so no blob is
 * removed between building a record against it and publishing it.
 *
 * Synchronization table:
 *   registry_lookup/resolve      registered reader, inside rcu_read_lock
 *   registry_record_ref/unref,   any thread (ref inside the read-side
 *   registry_spec_ref            section, use and unref anywhere)
 *   registry_list/count          any registered thread, outside read-side
 *   registry_create/update/      any registered thread, outside read-side;
 *   registry_delete              serialised internally, do disk I/O
 *   registry_init/load/shutdown  main thread only */
#ifndef LAMBDAD_SERVER_REGISTRY_H
#define LAMBDAD_SERVER_REGISTRY_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "runtime/fnspec.h"
#include "server/errors.h"
#include "server/validate.h"

struct codestore;
struct persist;

/* A published version of a function (immutable, like its record). Its
 * spec's key is "<region>/<account>/<name>:<N>" so that its environments
 * are pooled apart from $LATEST's and never drained by $LATEST updates. */
struct fn_version {
    char *version;             /* "1", "2", ... */
    long number;
    char *config_json;         /* the version's FunctionConfiguration */
    size_t config_len;
    char *code_hex;            /* Zip: code store key; NULL for Image */
    char *image_uri;           /* Image: Code.ImageUri; NULL for Zip */
    struct fn_spec *spec;      /* version = "N", deploy_id filled */
};

/* An alias: AliasConfiguration as the API returns it, plus what Invoke
 * needs to route (at most one additional version, as in AWS). */
struct fn_alias {
    char *name;
    char *version;             /* FunctionVersion: "N" or "$LATEST" */
    char *extra_version;       /* RoutingConfig additional version, or NULL */
    double extra_weight;       /* its probability in [0, 1] */
    char *json;                /* AliasConfiguration, compact JSON text */
    size_t json_len;
};

/* One function ($LATEST plus its published versions and aliases). All
 * fields are read-only once published. The document keeps "versions"
 * ([{"version","configuration","code_hex"?,"image_uri"?,"layers"?,
 * "latest_description"?}], ascending),
 * "last_version" (the never-reused counter) and "aliases" (array of
 * AliasConfiguration objects). */
struct fn_record {
    struct cds_lfht_node node; /* registry-private */
    struct rcu_head rcu;       /* registry-private */
    atomic_int refs;
    char *key;                 /* "<region>/<account>/<name>" (= spec->key) */
    char *region, *account, *name;
    char *arn;                 /* unqualified function ARN */
    char *config_json;         /* FunctionConfiguration, compact JSON text */
    size_t config_len;
    char *tags_json;           /* {"k":"v",...} or NULL when the function has no tags */
    int reserved_concurrency;  /* -1 when unset */
    char *code_hex;            /* Zip: code store key; NULL for Image */
    char *image_uri;           /* Image: Code.ImageUri; NULL for Zip */
    char *revision_id;
    struct fn_spec *spec;      /* what the pool needs; deploy_id filled */
    json_t *doc;               /* the persisted document; writers only */
    struct fn_version *versions; /* ascending by number */
    size_t n_versions;
    struct fn_alias *aliases;  /* sorted by name */
    size_t n_aliases;
    char *latest_q_json;       /* config_json with FunctionArn ":$LATEST" (version lists) */
    size_t latest_q_len;
    long long busy_until_ms;   /* wall-clock ms: Pending/InProgress until then (doc "busy_until") */
    bool busy_creating;        /* the busy window is the creation's (State Pending) */
    char *extras_json;         /* doc "extras" (policies, URL configs, ...), compact text, or NULL */
};

/* The published version "N" of r, or NULL. */
const struct fn_version *registry_version(const struct fn_record *r, const char *version);

/* The alias named name of r, or NULL. */
const struct fn_alias *registry_alias(const struct fn_record *r, const char *name);

/* Takes a reference on the spec a qualifier selects: "" or "$LATEST" ->
 * $LATEST, "N" -> that version, an alias -> its version, or (with a
 * RoutingConfig) its additional version with the configured probability.
 * NULL when the qualifier names nothing. Same thread rules as
 * registry_spec_ref. */
struct fn_spec *registry_spec_for(const struct fn_record *r, const char *qualifier);

/* Sets the code store and the persistence handle (NULL: ephemeral) and
 * creates the table. Returns 0 or -ENOMEM. */
int registry_init(struct codestore *cs, struct persist *p);

/* Loads every persisted function. Returns the count, or -errno. Documents
 * that are valid JSON but unusable are logged and skipped. */
int registry_load(void);

/* Drops every record (nothing is deleted on disk) and waits for pending
 * RCU callbacks. */
void registry_shutdown(void);

/* Finds the $LATEST record of region/account/name, or NULL. Caller is inside
 * rcu_read_lock; the record stays valid until rcu_read_unlock unless
 * referenced with registry_record_ref. */
struct fn_record *registry_lookup(const char *region, const char *account, const char *name);

/* Resolves a FunctionName in any form (name, name:qualifier, partial ARN,
 * full ARN; an ARN naming another region/account resolves there) plus an
 * optional ?Qualifier= value (NULL if absent) in the request's
 * region/account. Caller is inside rcu_read_lock. Returns the record, or
 * NULL with err filled: ValidationException for a malformed name,
 * InvalidParameterValueException for a qualifier conflict,
 * ResourceNotFoundException "Function not found: <arn>[:qualifier]" for an
 * unknown function or a qualifier that is neither $LATEST, a published
 * version nor an alias (the record returned is the whole function; see
 * registry_spec_for / registry_version / registry_alias for the target). name_out (may be NULL)
 * receives the parsed identity. max_len: 140 (FunctionName) or 256. */
struct fn_record *registry_resolve(const char *function_name, const char *qualifier,
                                   size_t max_len, const char *region, const char *account,
                                   struct fn_name *name_out, struct api_error *err);

/* Fills err with ResourceNotFoundException for n (qualified if it has one). */
int registry_not_found(const struct fn_name *n, struct api_error *err);

/* Takes a reference on rec's fn_spec (release with fnspec_unref), so an
 * invoke can leave the read-side section at once. */
struct fn_spec *registry_spec_ref(const struct fn_record *rec);

/* Takes / drops a reference on a record. ref inside the read-side section;
 * unref anywhere (frees on the last reference). */
struct fn_record *registry_record_ref(struct fn_record *rec);
void registry_record_unref(struct fn_record *rec);

/* A reference to the first function (any namespace) whose extras text
 * contains needle (e.g. a function URL id), or NULL. A linear scan: for
 * rare lookups by an id the caller then checks in the parsed extras.
 * Registered thread, outside a read-side section. */
struct fn_record *registry_find_extra(const char *needle);

/* References to every function of every namespace (unsorted). Release
 * each with registry_record_unref and the array with free. Registered
 * thread, outside a read-side section. Returns 0 or -ENOMEM. */
int registry_all(struct fn_record ***out, size_t *n);

/* Number of functions, all namespaces. */
size_t registry_count(void);

/* Creates a function from a document (see the persistence format in
 * persist.h / the report): {"region","account","name","code_hex"?,
 * "image_uri"?,"configuration":{...},"tags"?,"reserved_concurrency"?,
 * "layers"?:[{"arn","code_hex","code_sha256","code_size"}] (attach order; the
 * function's copy of its layers, see api_functions)}. Takes
 * ownership of doc. zip (may be NULL) re-stores the code if a concurrent
 * delete removed it meanwhile. On success *out (may be NULL) gets a
 * reference to the new record. Errors: ResourceConflictException when it
 * exists, ServiceException on I/O failure. */
int registry_create(json_t *doc, const void *zip, size_t zip_len, struct fn_record **out,
                    struct api_error *err);

/* Edits a copy of the current document: returns 0 to publish it, or -1
 * with err filled to abort. cur is the current record (read-only). */
typedef int (*registry_mutate_fn)(json_t *doc, const struct fn_record *cur, void *ud,
                                  struct api_error *err);

/* Updates the function named by n (region/account/name) under the writer
 * mutex: copies its document, runs fn, rebuilds the record, persists, swaps.
 * zip as in registry_create. Once the new document is durable the old
 * record's blob references are dropped (coderefs.h: a blob nobody else
 * uses is removed); the environments of a version the update removed are
 * evicted. */
int registry_update(const struct fn_name *n, registry_mutate_fn fn, void *ud, const void *zip,
                    size_t zip_len, struct fn_record **out, struct api_error *err);

/* Deletes the function with all its versions and aliases: unlinks its
 * document, unpublishes it, evicts its environments (pool_evict, every
 * version's key too) and drops its blob references (coderefs.h). */
int registry_delete(const struct fn_name *n, struct api_error *err);

/* Collects references to the functions of region/account whose name sorts
 * after marker (NULL: from the start), sorted by name, at most max of them.
 * *more tells whether further functions follow. Release each with
 * registry_record_unref and the array with free. Returns 0 or -ENOMEM. */
int registry_list(const char *region, const char *account, const char *marker, size_t max,
                  struct fn_record ***out, size_t *n, bool *more);

/* Builds the record for a document (used by create/update/load and the unit
 * tests). Does disk I/O (code store lookups). Returns 0 or -1 with err. */
int registry_record_build(json_t *doc, const void *zip, size_t zip_len, struct fn_record **out,
                          struct api_error *err);

#endif
