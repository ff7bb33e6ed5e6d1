/* pool: the invocation dispatch path between the HTTP front and the
 * execution environments.
 *
 * DESIGN: civetweb threads build a struct invocation and call pool_submit,
 * which pushes it onto the wait-free queue (cds_wfcq) of the executor that
 * owns the function (functions are sharded over executors by identity) and
 * wakes that executor only when its queue was empty. Each executor thread
 * runs one epoll loop that owns its environments: their Runtime API
 * listeners and connections, their log pipes, their process handles and
 * their deadlines. When the invocation finishes (success, function error,
 * crash, timeout, throttle) the executor fills the result fields and calls
 * inv->on_done from the executor thread; on_done must not block.
 * Streamed responses reach their caller before that, chunk by chunk,
 * through inv->stream (pool/invstream.h). The records this face shares
 * with the executors (configuration, invocation, log record) are in
 * pool/invocation.h, so that the executors never depend on this face,
 * which starts and drives them.
 *
 * Thread rules: pool_submit, pool_evict, pool_envs_json and pool_stats may be
 * called from any thread once pool_start returned; pool_stop from the main
 * thread only. */
#ifndef LAMBDAD_POOL_POOL_H
#define LAMBDAD_POOL_POOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool/invocation.h"
#include "runtime/fnspec.h"

/* Allocates an invocation with a fresh request id and a reference to fn.
 * Takes ownership of nothing else. Returns NULL on allocation failure. */
struct invocation *invocation_new(struct fn_spec *fn);

/* Writes a fresh UUID v4 request id. Any thread. */
void pool_request_id(char out[40]);

/* Frees an invocation and everything it owns. NULL-safe. */
void invocation_free(struct invocation *inv);

/* Starts the executor threads. Returns 0 or a negative errno; on failure
 * *err points at a message for the operator. */
int pool_start(const struct pool_config *cfg, const char **err);

/* Stops every environment (SIGTERM, then SIGKILL after a grace period; for
 * containers: kill + remove) and joins the executors. Invocations still
 * queued complete with INV_SERVICE_ERROR. */
void pool_stop(void);

/* Hands inv to its executor. Never blocks. on_done runs exactly once. */
void pool_submit(struct invocation *inv);

/* Stops every environment of the function key (all deploy IDs) once it is
 * idle; invocations in flight finish first. */
void pool_evict(const char *fn_key);

/* Provisioned concurrency: keeps n initialised environments of spec's
 * deploy ID (never reaped as idle; restarted when they die, at the latest
 * on the next call), n = 0 releases them to the idle reaper. Returns how
 * many are initialised (READY) now. Blocks until the executor answered. */
int pool_provision(struct fn_spec *spec, int n);

/* JSON array describing live environments: function, deploy_id, state, pid
 * or container id, idle seconds, invocations served, executor kind. */
json_t *pool_envs_json(void);

struct pool_stats {
    uint64_t invocations;
    uint64_t cold_starts;
    int envs_live;
    int envs_busy;
    int queued;
};
void pool_stats(struct pool_stats *out);

/* Registers the sink (NULL: none; struct pool_log_rec and pool_log_sink_fn
 * are in pool/invocation.h). Main thread, before pool_start. */
void pool_set_log_sink(pool_log_sink_fn fn, void *user);

#endif
