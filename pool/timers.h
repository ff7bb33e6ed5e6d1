/* timers: everything an executor does because time passed: invocation
 * timeouts, init timeouts, the Docker log grace period, Event retries and
 * stopping environments idle for longer than the TTL.
 *
 * Thread rules: the owning executor thread. */
#ifndef LAMBDAD_POOL_TIMERS_H
#define LAMBDAD_POOL_TIMERS_H

#include "pool/internal.h"

/* Queues an Event invocation for another attempt after the configured
 * back-off (its result and log are dropped). */
void timers_add_retry(struct executor *ex, struct invocation *inv);

/* Fails invocations and inits past their deadline; ends grace periods. */
void timers_check(struct executor *ex, int64_t now);

/* Re-submits Event retries that are due. */
void timers_run_retries(struct executor *ex, int64_t now);

/* Stops environments idle for the TTL or longer. */
void timers_reap_idle(struct executor *ex, int64_t now);

/* Milliseconds until the nearest deadline (at most 1000: the reaper tick). */
int timers_next_ms(struct executor *ex, int64_t now);

#endif
