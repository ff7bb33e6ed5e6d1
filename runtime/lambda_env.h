/* lambda_env: the environment variables of an execution environment.
 *
 * DESIGN: host processes and containers receive the same Lambda
 * environment (lambda-reference.md section 5.1): _HANDLER, LAMBDA_TASK_ROOT,
 * AWS_LAMBDA_FUNCTION_NAME/_VERSION/_MEMORY_SIZE, log group/stream, region,
 * AWS_EXECUTION_ENV (not for provided.*), AWS_LAMBDA_RUNTIME_API, TZ,
 * dummy credentials (key id = the function's account), AWS_ENDPOINT_URL
 * and its per-service variants (S3, LAMBDA, IAM, STS, CLOUDWATCH_LOGS),
 * AWS_LAMBDA_LOG_LEVEL for JSON logging, language search paths including the
 * layers, then the function's own variables (localhost URLs in them
 * rewritten for containers). Only the paths differ between the two kinds,
 * so both spawners build their list here.
 *
 * Thread rules: pure function, any thread. */
#ifndef LAMBDAD_RUNTIME_LAMBDA_ENV_H
#define LAMBDAD_RUNTIME_LAMBDA_ENV_H

#include <stdbool.h>

#include "runtime/fnspec.h"

struct lambda_env_opts {
    const char *runtime_api;  /* "host:port" as reachable from the environment */
    const char *task_root;    /* code dir (host) or "/var/task" (container) */
    const char *opt_dir;      /* merged layer dir (host) or "/opt"; NULL if no layers */
    const char *endpoint_url; /* lambdad's URL as reachable from the environment */
    const char *tmp_dir;      /* TMPDIR for the environment (host only), or NULL */
    const char *log_stream;   /* AWS_LAMBDA_LOG_STREAM_NAME value */
    const char *runtime_dir;  /* LAMBDA_RUNTIME_DIR value */
    bool container;           /* true: rewrite localhost URLs in user variables */
    const char *container_host; /* host name/IP that reaches lambdad from a container */
    const char *extra_path;   /* prepended to PATH (host: inherits the rest), or NULL */
    const char *init_type;    /* AWS_LAMBDA_INITIALIZATION_TYPE; NULL: "on-demand" */
};

/* Builds a NULL-terminated malloc'd array of malloc'd "KEY=VALUE" strings.
 * Returns NULL on allocation failure. Free with lambda_env_free. */
char **lambda_env_build(const struct fn_spec *spec, const struct lambda_env_opts *opts);

/* Frees an array returned by lambda_env_build. NULL-safe. */
void lambda_env_free(char **envp);

/* Whether a runtime name is a custom runtime (provided, provided.al2, ...). */
bool lambda_env_is_custom_runtime(const char *runtime);

#endif
