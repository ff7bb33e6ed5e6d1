/* fnspec: the immutable description of one function version that an
 * execution environment needs in order to start and serve invocations.
 *
 * DESIGN: the server builds a fn_spec whenever a function's code or
 * configuration changes and keeps it in its (immutable, RCU-replaced)
 * function record. The pool and the environments only read it. A spec is
 * reference counted (atomic), so an invocation or a running environment
 * keeps the spec it started with alive after the function was updated or
 * deleted. All strings are owned by the spec and freed with it.
 *
 * Thread rules: fnspec_ref/fnspec_unref from any thread; fields are never
 * written after the spec has been handed to another thread. */
#ifndef LAMBDAD_RUNTIME_FNSPEC_H
#define LAMBDAD_RUNTIME_FNSPEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct fn_kv {
    char *key;
    char *value;
};

struct fn_spec {
    atomic_int refs;
    char *key;          /* function identity "<region>/<account>/<name>" */
    char *name;         /* bare function name */
    char *version;      /* "$LATEST" or "1", "2", ... */
    char *arn;          /* unqualified function ARN */
    char *region;
    char *account;
    char *runtime;      /* "python3.12", "nodejs20.x", "provided.al2023"; NULL for Image */
    char *handler;      /* NULL for Image */
    char *package_type; /* "Zip" or "Image" */
    char *code_dir;     /* extracted code directory (Zip); NULL for Image */
    char *code_sha256;  /* base64 SHA-256 of the zip (or image digest) */
    char **layer_dirs;  /* extracted layer directories, attach order */
    char **layer_shas;  /* base64 SHA-256 of each layer zip, attach order */
    size_t n_layers;
    struct fn_kv *env;  /* the function's own Environment.Variables */
    size_t n_env;
    int memory_mb;
    int timeout_s;
    int ephemeral_mb;
    char *image_uri;          /* PackageType=Image */
    char **image_entrypoint;  /* ImageConfig.EntryPoint, may be NULL */
    size_t n_entrypoint;
    char **image_command;     /* ImageConfig.Command, may be NULL */
    size_t n_command;
    char *image_workdir;      /* ImageConfig.WorkingDirectory, may be NULL */
    char *log_group;          /* "/aws/lambda/<name>" unless LoggingConfig says otherwise */
    char *log_format;         /* "Text" or "JSON" */
    char *app_log_level;      /* LoggingConfig.ApplicationLogLevel, or NULL */
    char *system_log_level;   /* LoggingConfig.SystemLogLevel, or NULL */
    bool force_docker;        /* tag lambdad:executor=docker */
    int reserved_concurrency; /* -1 when unset; 0 throttles every invoke */
    char deploy_id[48];       /* see pool/deploy.h; filled by the builder */
    bool dirs_pinned;         /* code_dir and layer_dirs pinned in the code store */
};

/* Allocates a zeroed spec with one reference, reserved_concurrency -1.
 * Returns NULL on allocation failure. */
struct fn_spec *fnspec_new(void);

/* Takes another reference; returns spec for chaining. NULL-safe. */
struct fn_spec *fnspec_ref(struct fn_spec *spec);

/* Drops a reference; frees the spec and every string it owns on the last
 * one. NULL-safe. */
void fnspec_unref(struct fn_spec *spec);

/* Pins code_dir and every layer dir in the code store (codestore_pin)
 * until the spec is freed, so that an environment still starting or
 * running with this spec keeps its files after an update or delete. Call
 * once, by the builder, after setting the directories. */
void fnspec_pin_dirs(struct fn_spec *spec);

/* Convenience: strdup that aborts on allocation failure (NULL stays NULL). */
char *fnspec_strdup(const char *s);

#endif
