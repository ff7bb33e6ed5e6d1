/* timers: everything an executor does because time passed: invocation
 * timeouts, init timeouts, the Docker log grace period, Event retries and
 * stopping environments idle for longer than the TTL.
 *
 * DESIGN: one binary min-heap of struct ptimer per executor, ordered on the
 * due time; each timer knows its heap position, so arming, re-arming and
 * disarming are O(log n) and finding the next deadline is O(1). A timer
 * fires at most once per arming; its callback re-checks the state it is
 * about (a stale firing does nothing). Environments embed their timers;
 * Event retries get a small allocated one.
 *
 * Thread rules: the owning executor thread. */
#ifndef LAMBDAD_POOL_TIMERS_H
#define LAMBDAD_POOL_TIMERS_H

#include "pool/internal.h"

/* Prepares t (not armed) with its callback. */
void timer_init(struct ptimer *t, void (*fn)(struct executor *ex, struct ptimer *t));

/* Arms t for due (monotonic ns), moving it if it was armed. */
void timer_arm(struct executor *ex, struct ptimer *t, int64_t due);

/* Disarms t if armed. */
void timer_disarm(struct executor *ex, struct ptimer *t);

/* Fires every timer due at now (in due order). */
void timers_run(struct executor *ex, int64_t now);

/* Milliseconds until the nearest timer, at most 1000 (the loop re-checks
 * the global-cap protocol at least once a second). */
int timers_next_ms(struct executor *ex, int64_t now);

/* Queues an Event invocation for another attempt after the configured
 * back-off (its result and log are dropped). */
void timers_add_retry(struct executor *ex, struct invocation *inv);

/* Shut-down: fails every queued Event retry. */
void timers_fail_retries(struct executor *ex, const char *msg);

/* Frees the heap (the executor is going away; no timer is armed). */
void timers_fini(struct executor *ex);

/* Environment timer callbacks (env->deadline_tm, grace_tm, idle_tm). */
void timers_env_deadline(struct executor *ex, struct ptimer *t);
void timers_env_grace(struct executor *ex, struct ptimer *t);
void timers_env_idle(struct executor *ex, struct ptimer *t);

#endif
