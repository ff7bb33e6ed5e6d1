/* env: one execution environment (a host process or a container) and its
 * state machine (states: pool/internal.h).
 *
 * DESIGN: an environment is started for an fnpool that has invocations
 * waiting; its Runtime API host (runtime/rapi.h) calls back into the
 * op_* handlers here: the first GET /next makes it READY, POST
 * .../response or .../error completes the current invocation, and the
 * process handle (pidfd) or the container helper reports its death. A
 * killed environment is put on the executor's dead list and destroyed at
 * the end of the loop pass, never inside a callback.
 *
 * Thread rules: the owning executor thread. */
#ifndef LAMBDAD_POOL_ENV_H
#define LAMBDAD_POOL_ENV_H

#include <jansson.h>

#include "pool/internal.h"

/* Starts one environment for fp. Returns 0, or -1 after failing the head
 * pending invocation with the reason. */
int env_spawn(struct fnpool *fp);

/* Takes an idle environment off its fnpool's stack and the executor's
 * idle list (it is about to serve, or to stop). */
void env_idle_remove(struct env *e);

/* The environment with id on ex, or NULL. O(1). */
struct env *env_find(struct executor *ex, uint64_t id);

/* Gives the idle READY environment e the invocation inv. */
void env_assign(struct env *e, struct invocation *inv);

/* Completes e->cur (result fields already set) and makes e idle, or stops
 * it when it must stop. */
void env_complete(struct env *e, const char *status);

/* Reads what the runtime wrote so far into the right log buffer. */
void env_drain_log(struct env *e);

/* Fails the invocation e serves (or the one its failed init was started
 * for) with a platform error and kills e. */
void env_fail(struct env *e, const char *etype, const char *msg, const char *status);

/* Kills e now (SIGKILL / container kill) and puts it on the dead list. */
void env_kill_now(struct env *e);

/* Stops e now when it has no invocation, else after the current one. */
void env_retire(struct env *e);

/* Frees a dead environment and everything it holds. */
void env_destroy(struct env *e);

/* A spawn job's report or a container helper's event (POOL_MSG_ENV) for
 * environment c->env_id. */
void env_container_event(struct executor *ex, struct pool_ctl *c);

/* Frees a POOL_MSG_ENV message nobody will handle (its executor is gone):
 * a spawn job's started process is killed and reaped. */
void env_drop_event(struct pool_ctl *c);

/* The admin description of e (GET /_lambdad/environments). */
/* A streamed response's consumer drained its queue: read the runtime's
 * connection again (no-op when env_id is gone or not streaming). */
void env_stream_resume(struct executor *ex, uint64_t env_id);

json_t *env_describe(const struct env *e, int64_t now);

#endif
