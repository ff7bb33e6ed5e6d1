/* cap: the global cap on live environments (--max-envs), shared by all
 * executors.
 *
 * DESIGN: g_pool.live_envs counts environments over all executors; an
 * executor reserves a slot before it spawns. When the cap is reached and a
 * function has invocations waiting, its executor first drops its own
 * longest-idle environment of another function; failing that it publishes
 * the waiting fnpool in g_pool.starving[idx] and posts SHRINK to every
 * other executor, which drop one idle environment each. While any entry is
 * set, executors also give up environments that become idle (for other
 * functions). Whoever frees a slot wakes the starving executors, which
 * retry their dispatch each loop pass until served or drained.
 *
 * Thread rules: the owning executor thread; g_pool.starving is read by all
 * (relaxed atomics: a stale read only delays or hastens one drop). */
#ifndef LAMBDAD_POOL_CAP_H
#define LAMBDAD_POOL_CAP_H

#include "pool/internal.h"

/* Whether an executor waits for room for a fnpool other than fp. */
bool cap_other_starves(const struct fnpool *fp);

/* Publishes (or clears, fp NULL) the fnpool ex waits room for. */
void cap_set_starving(struct executor *ex, struct fnpool *fp);

/* Kills ex's longest-idle environment not of skip. Returns whether one was. */
bool cap_drop_idle(struct executor *ex, struct fnpool *skip);

/* fp needs room: mark ex starving and ask the other executors to shrink. */
void cap_request_room(struct executor *ex, struct fnpool *fp);

/* A slot was freed on ex: wake executors that wait for room. */
void cap_wake_starving(struct executor *ex);

/* Loop pass: retry the starving fnpool's dispatch, or clear the mark. */
void cap_retry(struct executor *ex);

#endif
