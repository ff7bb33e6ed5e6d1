/* invocation: the records the pool's public face (pool/pool.h) and its
 * executors (pool/executor.h) share: the pool configuration, the
 * invocation with its result, and the log record handed to the log sink.
 *
 * DESIGN: types only. They sit apart from pool.h so that the executor
 * parts can use them without depending on the public face, which itself
 * starts and drives the executors: pool -> executor -> invocation, one
 * way. Users of the pool get them through pool.h.
 *
 * Thread rules: see pool.h (who may submit) and executor.h (who writes
 * the results). */
#ifndef LAMBDAD_POOL_INVOCATION_H
#define LAMBDAD_POOL_INVOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <urcu/wfcqueue.h>

#include "pool/invstream.h"
#include "runtime/fnspec.h"

enum pool_executor_kind { POOL_EXEC_SUBPROCESS = 0, POOL_EXEC_DOCKER = 1, POOL_EXEC_AUTO = 2 };

struct pool_config {
    int executors;              /* executor threads (default: CPU count) */
    int max_envs;               /* global cap on live environments */
    int ttl_s;                  /* idle seconds before an environment is stopped */
    enum pool_executor_kind kind;
    const char *bootstrap_dir;  /* directory holding python/ node/ bootstraps */
    const char *endpoint_url;   /* lambdad's own URL, for AWS_ENDPOINT_URL */
    const char *work_dir;       /* per-environment scratch (TMPDIR) parent */
    const char *docker_host;    /* NULL: DOCKER_HOST or /var/run/docker.sock */
    const char *docker_network; /* "host", "bridge" or a network name */
    const char **image_overrides; /* "runtime=image" strings, NULL-terminated */
    const char *instance_id;    /* label value identifying this lambdad run */
    const char *python;         /* interpreter for python runtimes (default python3) */
    const char *node;           /* interpreter for nodejs runtimes (default node) */
    int retry_delay_ms[2];      /* Event retry back-off (AWS: 60000, 120000) */
    bool python_zygote;         /* fork python environments from a zygote */
    int spin_us;                /* after a lone invocation the executor polls this long
                                 * for the next before it sleeps (--invoke-spin-us) */
};

enum inv_outcome {
    INV_OK = 0,          /* result holds the function's response */
    INV_FUNCTION_ERROR,  /* result holds the error JSON; answer 200 + X-Amz-Function-Error */
    INV_THROTTLED,       /* reserved concurrency 0: 429 TooManyRequestsException */
    INV_SERVICE_ERROR,   /* lambdad fault (e.g. docker engine unreachable): error_message */
};

struct invocation {
    struct cds_wfcq_node qnode; /* pool-private */
    int msg_kind;               /* pool-private: queue message discriminator */
    struct invocation *next;    /* pool-private */
    int64_t due_ns;             /* pool-private: retry time */
    struct fn_spec *fn;         /* reference owned by the invocation */
    char request_id[40];
    char *invoked_arn;          /* ARN as the caller named it (with qualifier) */
    char *payload;              /* event bytes (already "{}" for an empty body) */
    size_t payload_len;
    char *client_context;       /* decoded client-context JSON text, or NULL */
    char *cognito_identity;     /* JSON text, or NULL */
    char *trace_id;             /* X-Ray trace header value, or NULL */
    bool is_event;              /* Event invocation (no caller waiting) */
    bool want_log;              /* fill log (X-Amz-Log-Type: Tail, or debug logging) */
    int attempt;                /* 0 for the first attempt */
    int max_retries;            /* Event: retries after a function error (0-2, default 2) */
    int max_event_age_s;        /* Event: no retry once the event is older (default 21600) */
    bool age_exceeded;          /* Event: retries stopped by max_event_age_s */
    struct invstream *stream;   /* owned; set by a caller that streams the response
                                 * (InvokeWithResponseStream, RESPONSE_STREAM URLs): a
                                 * runtime's streamed /response (Response-Mode: streaming)
                                 * is forwarded through it as it arrives, and result stays
                                 * empty; NULL: streamed responses are collected into
                                 * result (6 MB limit) like buffered ones. on_done must
                                 * call invstream_close. */

    /* Results, written by the executor before on_done. */
    enum inv_outcome outcome;
    char *result;               /* response or error body, malloc'd */
    size_t result_len;
    char content_type[96];
    char error_type[64];        /* errorType for function errors when known */
    char *error_message;        /* INV_SERVICE_ERROR / INV_THROTTLED text */
    char *log;                  /* this invocation's log, START..REPORT, malloc'd */
    size_t log_len;
    double duration_ms;
    bool cold;

    void (*on_done)(struct invocation *inv);
    void *user;
    int64_t submit_ns;          /* monotonic time of submit */
};

/* --- log sink: every environment's output and platform lines ---------- */

enum pool_log_kind {
    POOL_LOG_OUTPUT = 0, /* bytes the runtime wrote to stdout/stderr (not line-aligned) */
    POOL_LOG_START,      /* an invocation was delivered to the runtime */
    POOL_LOG_REPORT,     /* an invocation finished (END + REPORT) */
};

/* One record handed to the sink. Pointers are valid only during the call. */
struct pool_log_rec {
    enum pool_log_kind kind;
    const struct fn_spec *fn;  /* the environment's spec (log group, format, version) */
    const char *stream;        /* the environment's log stream name */
    uint64_t env_id;           /* unique per environment for the process's life */
    int64_t time_ms;           /* wall clock (ms since the epoch) */
    const char *request_id;    /* START/REPORT; OUTPUT: the running invocation or NULL */
    const char *data;          /* OUTPUT */
    size_t len;
    double duration_ms;        /* REPORT */
    long long billed_ms;
    int memory_mb, max_memory_mb;
    double init_ms;            /* REPORT: > 0 on the first invocation of an environment */
    const char *status;        /* REPORT: NULL (success), "error", "timeout" */
    bool output_lags;          /* the environment's output may arrive after its
                                * REPORT (a container's log stream lags the
                                * Runtime API by about a millisecond) */
};

/* Called on executor threads; must not block (copy and queue). */
typedef void (*pool_log_sink_fn)(const struct pool_log_rec *rec, void *user);

#endif
