/* timers: the executor's timer heap and what its timers do (see timers.h). */
#include "pool/timers.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pool/env.h"
#include "pool/report.h"
#include "runtime/log.h"

/* ------------------------------------------------------------- the heap */

static void heap_set(struct executor *ex, int i, struct ptimer *t)
{
    ex->heap[i] = t;
    t->idx = i;
}

static void sift_up(struct executor *ex, int i)
{
    struct ptimer *t = ex->heap[i];
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (ex->heap[parent]->due <= t->due)
            break;
        heap_set(ex, i, ex->heap[parent]);
        i = parent;
    }
    heap_set(ex, i, t);
}

static void sift_down(struct executor *ex, int i)
{
    struct ptimer *t = ex->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= ex->heap_n)
            break;
        if (c + 1 < ex->heap_n && ex->heap[c + 1]->due < ex->heap[c]->due)
            c++;
        if (t->due <= ex->heap[c]->due)
            break;
        heap_set(ex, i, ex->heap[c]);
        i = c;
    }
    heap_set(ex, i, t);
}

void timer_init(struct ptimer *t, void (*fn)(struct executor *ex, struct ptimer *t))
{
    t->due = 0;
    t->idx = -1;
    t->fn = fn;
}

void timer_disarm(struct executor *ex, struct ptimer *t)
{
    int i = t->idx;
    if (i < 0)
        return;
    POOL_ASSERT(i < ex->heap_n && ex->heap[i] == t);
    t->idx = -1;
    struct ptimer *last = ex->heap[--ex->heap_n];
    if (last == t)
        return;
    heap_set(ex, i, last);
    sift_up(ex, i);
    sift_down(ex, last->idx);
}

void timer_arm(struct executor *ex, struct ptimer *t, int64_t due)
{
    timer_disarm(ex, t);
    if (ex->heap_n == ex->heap_cap) {
        int cap = ex->heap_cap ? ex->heap_cap * 2 : 64;
        struct ptimer **h = realloc(ex->heap, (size_t)cap * sizeof(*h));
        POOL_ASSERT(h != NULL); /* a lost deadline would hang an invocation */
        ex->heap = h;
        ex->heap_cap = cap;
    }
    t->due = due;
    heap_set(ex, ex->heap_n++, t);
    sift_up(ex, t->idx);
}

void timers_run(struct executor *ex, int64_t now)
{
    while (ex->heap_n > 0 && ex->heap[0]->due <= now) {
        struct ptimer *t = ex->heap[0];
        timer_disarm(ex, t);
        t->fn(ex, t);
    }
}

int timers_next_ms(struct executor *ex, int64_t t)
{
    int64_t next = t + 1000000000;
    if (ex->heap_n > 0 && ex->heap[0]->due < next)
        next = ex->heap[0]->due;
    int64_t ms = (next - t + 999999) / 1000000;
    return ms < 0 ? 0 : (int)ms;
}

void timers_fini(struct executor *ex)
{
    free(ex->heap);
    ex->heap = NULL;
    ex->heap_n = ex->heap_cap = 0;
}

/* ------------------------------------------------------- Event retries */

struct retry {
    struct ptimer tm; /* first: the heap entry */
    struct invocation *inv;
};

static void retry_fire(struct executor *ex, struct ptimer *t)
{
    struct retry *r = (struct retry *)t;
    struct invocation *inv = r->inv;
    free(r);
    executor_invoke(ex, inv);
}

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
    struct retry *r = malloc(sizeof(*r));
    if (!r) {
        report_fail_service(ex, inv, "out of memory scheduling a retry");
        return;
    }
    r->inv = inv;
    timer_init(&r->tm, retry_fire);
    timer_arm(ex, &r->tm, inv->due_ns);
    LOG_INFO("async invocation %s of %s failed (attempt %d); retrying in %d ms", inv->request_id,
             inv->fn->name, inv->attempt, delay);
}

void timers_fail_retries(struct executor *ex, const char *msg)
{
    for (int i = 0; i < ex->heap_n;) {
        struct ptimer *t = ex->heap[i];
        if (t->fn != retry_fire) {
            i++;
            continue;
        }
        timer_disarm(ex, t); /* moves another timer to i: look at i again */
        struct retry *r = (struct retry *)t;
        struct invocation *inv = r->inv;
        free(r);
        report_fail_service(ex, inv, msg);
    }
}

/* ------------------------------------------------------ environment timers */

void timers_env_grace(struct executor *ex, struct ptimer *t)
{
    (void)ex;
    struct env *e = EV_CONTAINER_OF(t, struct env, grace_tm);
    if (!e->in_grace)
        return;
    e->in_grace = false;
    env_drain_log(e);
    env_complete(e, e->grace_status);
}

void timers_env_idle(struct executor *ex, struct ptimer *t)
{
    struct env *e = EV_CONTAINER_OF(t, struct env, idle_tm);
    if (!e->in_idle)
        return; /* busy: env_idle_push arms it again */
    /* Armed lazily (env_idle_push): the environment may have been busy and
     * idle again since, so the TTL runs from its latest idle_since_ns. */
    int64_t due = e->idle_since_ns + (int64_t)ex->cfg->ttl_s * 1000000000;
    if (due > executor_now_ns()) {
        timer_arm(ex, t, due);
        return;
    }
    struct fnpool *fp = e->fp;
    if (!fp->draining && fp->n_envs <= fp->provisioned) {
        /* Provisioned concurrency: kept initialised, never reaped. */
        timer_arm(ex, t, executor_now_ns() + (int64_t)ex->cfg->ttl_s * 1000000000);
        return;
    }
    LOG_DEBUG("env %" PRIu64 " of %s idle for %d s: stopping", e->id, e->spec->name, ex->cfg->ttl_s);
    env_kill_now(e);
}

void timers_env_deadline(struct executor *ex, struct ptimer *t)
{
    (void)ex;
    struct env *e = EV_CONTAINER_OF(t, struct env, deadline_tm);
    char msg[128];
    if (e->in_grace || e->state == ENV_DEAD)
        return;
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
        LOG_INFO("function %s request %s timed out after %d s", e->spec->name, e->cur->request_id,
                 e->spec->timeout_s);
        env_fail(e, "Sandbox.Timedout", msg, "timeout");
    }
}
