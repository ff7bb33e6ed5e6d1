/* fnpool: the environments and pending invocations of one deploy ID of one
 * function on its owning executor.
 *
 * DESIGN: an fnpool is published in the warm map (pool/envmap.h) under
 * (function key, deploy ID). Invocations wait in its FIFO until an idle
 * environment (LIFO stack: hottest first) takes them; environments are
 * started while more invocations wait than environments are starting,
 * within reserved concurrency and the global cap (pool/cap.h). A newer
 * deploy ID supersedes the current fnpool of the key: the old one drains
 * (its environments stop once idle) and hands its waiting invocations to
 * the new one. Empty fnpools are unmapped and freed after an RCU grace
 * period.
 *
 * Thread rules: the owning executor thread. */
#ifndef LAMBDAD_POOL_FNPOOL_H
#define LAMBDAD_POOL_FNPOOL_H

#include "pool/internal.h"

/* The fnpool for spec's deploy ID (created, superseding older deploys, if
 * needed), or NULL when out of memory. */
struct fnpool *fnpool_get(struct executor *ex, struct fn_spec *spec);

/* Queues inv at the back (new invocations) or the front (an invocation
 * taken back from an environment that died before delivery). */
void fnpool_push_back(struct fnpool *fp, struct invocation *inv);
void fnpool_push_front(struct fnpool *fp, struct invocation *inv);

/* Removes and returns the oldest pending invocation, or NULL. */
struct invocation *fnpool_pop_pending(struct fnpool *fp);

/* Matches pending invocations with idle environments; starts more. */
void fnpool_dispatch(struct fnpool *fp);

/* Starts environments while invocations wait for one and caps allow. */
void fnpool_maybe_start(struct fnpool *fp);

/* Takes fp out of service: unmapped, idle environments stopped now, busy
 * ones after their invocation. */
void fnpool_drain(struct fnpool *fp);

/* Fails the head pending invocation: a platform function error (etype,
 * msg) or, with service set, a lambdad-side problem (INV_SERVICE_ERROR). */
void fnpool_fail_head(struct fnpool *fp, bool service, const char *etype, const char *msg);

/* fp may have become empty (no environment, nothing waiting): fnpool_gc
 * looks at it. */
void fnpool_gc_queue(struct fnpool *fp);

/* fp has invocations waiting for capacity (global cap, reserved
 * concurrency): fnpool_unblock dispatches it when an env is freed. */
void fnpool_block(struct fnpool *fp);

/* An environment was freed on ex: re-dispatch the blocked fnpools. */
void fnpool_unblock(struct executor *ex);

/* Frees the queued fnpools that are empty (all == false), or every empty
 * fnpool of ex (all == true: the executor is leaving). */
void fnpool_gc(struct executor *ex, bool all);

/* The current (not draining) fnpool of a function key on ex, or NULL. */
struct fnpool *fnpool_current(struct executor *ex, const char *key);

#endif
