/* timers: invocation and init deadlines, Docker log grace periods, Event
 * retries and the idle reaper of one executor (see timers.h). */
#include "pool/timers.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "pool/env.h"
#include "pool/report.h"
#include "runtime/log.h"

void timers_add_retry(struct executor *ex, struct invocation *inv)
{
    int delay = ex->cfg->retry_delay_ms[inv->attempt < 2 ? inv->attempt : 1];
    inv->attempt++;
    inv->due_ns = executor_now_ns() + (int64_t)delay * 1000000;
    free(inv->result);
    inv->result = NULL;
    inv->result_len = 0;
    free(inv->log);
    inv->log = NULL;
    inv->log_len = 0;
    inv->next = ex->retry_head;
    ex->retry_head = inv;
    LOG_INFO("async invocation %s of %s failed (attempt %d); retrying in %d ms", inv->request_id,
             inv->fn->name, inv->attempt, delay);
}

void timers_check(struct executor *ex, int64_t t)
{
    char msg[128];
    for (struct env *e = ex->envs; e; e = e->next) {
        if (e->in_grace) {
            if (t >= e->grace_ns) {
                e->in_grace = false;
                env_drain_log(e);
                env_complete(e, e->grace_status);
            }
            continue;
        }
        if (e->state == ENV_DEAD || t < e->deadline_ns)
            continue;
        if (e->state == ENV_STARTING) {
            /* Init gets up to 10 s, then the invoke's own timeout applies:
             * the message names the function's timeout, as AWS's does. */
            snprintf(msg, sizeof(msg), "Task timed out after %d.00 seconds", e->spec->timeout_s);
            LOG_INFO("function %s env %" PRIu64 ": init timed out", e->spec->name, e->id);
            env_fail(e, "Sandbox.Timedout", msg, "timeout");
        } else if (e->cur) {
            if (!e->delivered) {
                e->deliver_ns = e->deadline_ns - (int64_t)e->spec->timeout_s * 1000000000;
                e->delivered = true; /* report it as this invocation's timeout */
            }
            snprintf(msg, sizeof(msg), "Task timed out after %d.00 seconds", e->spec->timeout_s);
            env_drain_log(e);
            /* The platform's own line, as in the function's log. */
            char line[256];
            time_t now = time(NULL);
            struct tm tm;
            gmtime_r(&now, &tm);
            int n = snprintf(line, sizeof(line),
                             "%04d-%02d-%02dT%02d:%02d:%02d.000Z %s Task timed out after %d.00 seconds\n",
                             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                             tm.tm_sec, e->cur->request_id, e->spec->timeout_s);
            report_output(e, line, (size_t)n);
            LOG_INFO("function %s request %s timed out after %d s", e->spec->name,
                     e->cur->request_id, e->spec->timeout_s);
            env_fail(e, "Sandbox.Timedout", msg, "timeout");
        }
    }
}

void timers_run_retries(struct executor *ex, int64_t t)
{
    struct invocation **pp = &ex->retry_head;
    while (*pp) {
        struct invocation *inv = *pp;
        if (inv->due_ns <= t) {
            *pp = inv->next;
            executor_invoke(ex, inv);
        } else {
            pp = &inv->next;
        }
    }
}

void timers_reap_idle(struct executor *ex, int64_t t)
{
    int64_t ttl = (int64_t)ex->cfg->ttl_s * 1000000000;
    for (struct env *e = ex->envs; e; e = e->next)
        if (e->in_idle && t - e->idle_since_ns >= ttl &&
            !(e->fp && !e->fp->draining && e->fp->n_envs <= e->fp->provisioned)) {
            LOG_DEBUG("env %" PRIu64 " of %s idle for %d s: stopping", e->id, e->spec->name,
                      ex->cfg->ttl_s);
            env_kill_now(e);
        }
}

int timers_next_ms(struct executor *ex, int64_t t)
{
    int64_t next = t + 1000000000; /* reaper tick */
    for (struct env *e = ex->envs; e; e = e->next)
        if (e->in_grace && e->grace_ns < next)
            next = e->grace_ns;
    for (struct env *e = ex->envs; e; e = e->next)
        if (e->state != ENV_DEAD && (e->state == ENV_STARTING || e->cur) &&
            e->deadline_ns < next)
            next = e->deadline_ns;
    for (struct invocation *inv = ex->retry_head; inv; inv = inv->next)
        if (inv->due_ns < next)
            next = inv->due_ns;
    int64_t ms = (next - t + 999999) / 1000000;
    return ms < 0 ? 0 : (int)ms;
}
