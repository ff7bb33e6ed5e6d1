/* executor: the executor threads and their event loops (see executor.h). */
#include "pool/executor.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "pool/cap.h"
#include "pool/env.h"
#include "pool/fnpool.h"
#include "pool/internal.h"
#include "pool/report.h"
#include "pool/timers.h"
#include "runtime/clock.h"
#include "runtime/container.h"
#include "runtime/log.h"
#include "runtime/rapi.h"
#include "runtime/subprocess.h"

struct pool_shared g_pool;

int64_t executor_now_ns(void)
{
    return clock_mono_ns();
}

void executor_invoke(struct executor *ex, struct invocation *inv)
{
    if (ex->stopping) {
        report_fail_service(ex, inv, "lambdad is shutting down");
        return;
    }
    if (inv->fn->reserved_concurrency == 0) {
        inv->outcome = INV_THROTTLED;
        free(inv->error_message);
        inv->error_message = strdup("Rate Exceeded.");
        report_finish(ex, inv);
        return;
    }
    struct fnpool *fp = fnpool_get(ex, inv->fn);
    if (!fp) {
        report_fail_service(ex, inv, "out of memory");
        return;
    }
    fnpool_push_back(fp, inv);
    fnpool_dispatch(fp);
}

static void ctl_done(struct pool_ctl *c)
{
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void handle_list(struct executor *ex, struct pool_ctl *c)
{
    int64_t t = executor_now_ns();
    for (struct env *e = ex->envs; e; e = e->next)
        if (e->state != ENV_DEAD)
            json_array_append_new(c->list, env_describe(e, t));
    ctl_done(c);
}

static void handle_evict(struct executor *ex, struct pool_ctl *c)
{
    struct fnpool *fp = fnpool_current(ex, c->key);
    if (fp) {
        fnpool_drain(fp);
        struct invocation *inv = fp->pend_head;
        fp->pend_head = fp->pend_tail = NULL;
        atomic_fetch_sub(&g_pool.queued, fp->n_pending);
        fp->n_pending = 0;
        fnpool_gc_queue(fp);
        while (inv) {
            struct invocation *next = inv->next;
            executor_invoke(ex, inv);
            inv = next;
        }
    }
    ctl_done(c);
}

/* Provisioned concurrency: sets the fnpool's warm target, starts what is
 * missing, answers how many environments are initialised. */
static void handle_provision(struct executor *ex, struct pool_ctl *c)
{
    struct fnpool *fp = fnpool_get(ex, c->spec);
    int ready = 0;
    if (fp) {
        fp->provisioned = c->count;
        fnpool_maybe_start(fp);
        for (struct env *e = fp->envs; e; e = e->fp_next)
            ready += e->state == ENV_READY;
    }
    c->count = ready;
    ctl_done(c);
}

static void stop_all(struct executor *ex)
{
    ex->stopping = true;
    /* Graceful first: SIGTERM, a short grace period, then SIGKILL. */
    for (struct env *e = ex->envs; e; e = e->next)
        if (!e->docker)
            subprocess_signal(&e->sp, SIGTERM);
    int64_t until = executor_now_ns() + 300000000;
    for (struct env *e = ex->envs; e; e = e->next)
        while (!e->docker && executor_now_ns() < until && subprocess_reap(&e->sp) < 0)
            usleep(2000);
    for (struct env *e = ex->envs; e; e = e->next) {
        if (e->cur && e->delivered) {
            report_platform_error(e->cur, "Runtime.ExitError", "lambdad is shutting down");
            e->retire = true;
            env_complete(e, "error");
        }
        if (e->cur && !e->delivered) {
            struct invocation *inv = e->cur;
            e->cur = NULL;
            report_fail_service(ex, inv, "lambdad is shutting down");
        }
        env_kill_now(e);
    }
    for (struct fnpool *fp = ex->pools; fp; fp = fp->next) {
        struct invocation *inv;
        while ((inv = fnpool_pop_pending(fp)))
            report_fail_service(ex, inv, "lambdad is shutting down");
    }
    timers_fail_retries(ex, "lambdad is shutting down");
}

static void drain_queue(struct executor *ex)
{
    /* No queue_ack_wake: the eventfd is registered edge-triggered, and every
     * eventfd write is a new edge, so a producer that finds the queue empty
     * after the loop below wakes us again. Saves one read per wake-up; the
     * counter is never reset (2^64 writes are out of reach). */
    struct cds_wfcq_node *n;
    while ((n = queue_pop(&ex->q))) {
        /* struct invocation and struct pool_ctl both start with qnode, msg_kind. */
        int kind = ((struct pool_ctl *)(void *)n)->msg_kind;
        switch (kind) {
        case POOL_MSG_INVOKE:
            executor_invoke(ex, (struct invocation *)(void *)n);
            break;
        case POOL_MSG_LIST:
            handle_list(ex, (struct pool_ctl *)(void *)n);
            break;
        case POOL_MSG_EVICT:
            handle_evict(ex, (struct pool_ctl *)(void *)n);
            break;
        case POOL_MSG_SHRINK:
            cap_drop_idle(ex, NULL);
            free(n);
            break;
        case POOL_MSG_ENV: {
            struct pool_ctl *c = (struct pool_ctl *)(void *)n;
            env_container_event(ex, c);
            free(c->text);
            free(c);
            break;
        }
        case POOL_MSG_PROVISION:
            handle_provision(ex, (struct pool_ctl *)(void *)n);
            break;
        case POOL_MSG_RESUME:
            env_stream_resume(ex, ((struct pool_ctl *)(void *)n)->env_id);
            free(n);
            break;
        case POOL_MSG_STOP:
            stop_all(ex);
            ctl_done((struct pool_ctl *)(void *)n);
            break;
        default:
            free(n);
            break;
        }
    }
}

static void queue_event(struct ev_handler *h, uint32_t events)
{
    (void)events;
    struct executor *ex = EV_CONTAINER_OF(h, struct executor, q_ev);
    drain_queue(ex);
}

static void destroy_dead(struct executor *ex)
{
    bool freed = false;
    while (ex->dead) {
        struct env *e = ex->dead;
        ex->dead = e->next_dead;
        e->on_dead_list = false;
        if (e->ct && !e->ct_final)
            continue; /* destroyed when the container's final event arrives */
        if (e->spawning)
            continue; /* destroyed when its spawn job reports */
        struct fnpool *fp = e->fp;
        env_destroy(e);
        if (fp->pend_head)
            fnpool_block(fp); /* e.g. its failed init: what waits needs a new env */
        freed = true;
    }
    if (freed) {
        /* Capacity came back: retry our own waiting functions, and wake any
         * executor that starved for room. */
        fnpool_unblock(ex);
        cap_wake_starving(ex);
    }
    fnpool_gc(ex, false);
}

/* After a lone invocation (the only one running anywhere) finished, its
 * caller is likely to send the next at once (one client invoking in a
 * loop): the executor polls its events, yielding the CPU, until `until`
 * or the next timer, instead of sleeping in epoll_wait and being woken
 * through the queue's eventfd. On a 2-vCPU VM that wake-up (an IPI, the
 * executor's scheduling latency) was ~40% of an invoke at 1 connection.
 * Only after a lone invocation: with more in flight the executor rarely
 * sleeps and the CPUs are needed by the runtimes. Only while it pays: when
 * the last invocation that followed a lone one came later than a poll
 * lasts (a caller invoking now and then), the executor sleeps at once
 * (env_assign sets poll_next). Polling while the lone invocation runs was
 * measured too: no gain, the poller competes with the runtime and the
 * caller's own poll for the 2 CPUs. Returns the events found (0: none). */
static int poll_for_next(struct executor *ex, struct epoll_event *evs, int64_t t, int64_t until)
{
    int n;
    while ((n = epoll_wait(ex->epfd, evs, 64, 0)) == 0 && t < until && timers_next_ms(ex, t) > 0) {
        sched_yield();
        t = executor_now_ns();
    }
    return n;
}

static void *executor_main(void *arg)
{
    struct executor *ex = arg;
    char name[16];
    snprintf(name, sizeof(name), "executor-%d", ex->idx);
    pthread_setname_np(pthread_self(), name);
    rcu_register_thread();
    struct epoll_event evs[64];
    const int64_t spin_ns = (int64_t)ex->cfg->spin_us * 1000;
    while (!(ex->stopping && !ex->envs)) {
        int64_t t = executor_now_ns();
        int n = 0;
        if (ex->busy == 0 && ex->poll_next && t - ex->lone_done_ns < spin_ns && !ex->stopping)
            n = poll_for_next(ex, evs, t, ex->lone_done_ns + spin_ns);
        if (n == 0)
            n = epoll_wait(ex->epfd, evs, 64, ex->stopping ? 10 : timers_next_ms(ex, t));
        for (int i = 0; i < n; i++) {
            struct ev_handler *h = evs[i].data.ptr;
            h->fn(h, evs[i].events);
        }
        timers_run(ex, executor_now_ns());
        destroy_dead(ex);
        cap_retry(ex);
        rapi_reap(); /* connections closed in this pass (rapi.h) */
    }
    fnpool_gc(ex, true);
    rapi_reap();
    timers_fini(ex);
    rcu_unregister_thread();
    return NULL;
}

int executor_start(struct executor **out, int idx, const struct pool_config *cfg)
{
    struct executor *ex = calloc(1, sizeof(*ex));
    if (!ex)
        return -ENOMEM;
    ex->idx = idx;
    ex->cfg = cfg;
    ex->poll_next = true;
    ex->rng = (uint64_t)executor_now_ns() ^ ((uint64_t)idx << 32) ^ (uint64_t)getpid();
    if (!ex->rng)
        ex->rng = 88172645463325252ull;
    int rc = queue_init(&ex->q);
    if (rc < 0) {
        free(ex);
        return rc;
    }
    ex->epfd = epoll_create1(EPOLL_CLOEXEC);
    ex->q_ev.fn = queue_event;
    struct epoll_event ee = {.events = EPOLLIN | EPOLLET, .data.ptr = &ex->q_ev};
    if (ex->epfd < 0 || epoll_ctl(ex->epfd, EPOLL_CTL_ADD, ex->q.efd, &ee) < 0) {
        rc = -errno;
        queue_fini(&ex->q);
        free(ex);
        return rc;
    }
    rc = -pthread_create(&ex->thread, NULL, executor_main, ex);
    if (rc < 0) {
        close(ex->epfd);
        queue_fini(&ex->q);
        free(ex);
        return rc;
    }
    *out = ex;
    return 0;
}

void executor_post(struct executor *ex, struct cds_wfcq_node *node)
{
    queue_push(&ex->q, node);
}

void executor_call(struct executor *ex, struct pool_ctl *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->done = 0;
    executor_post(ex, &c->qnode);
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

void executor_join(struct executor *ex)
{
    pthread_join(ex->thread, NULL);
}

void executor_free(struct executor *ex)
{
    /* Messages that raced with the stop. */
    struct cds_wfcq_node *n;
    while ((n = queue_pop(&ex->q))) {
        int kind = ((struct pool_ctl *)(void *)n)->msg_kind;
        if (kind == POOL_MSG_INVOKE)
            report_fail_service(ex, (struct invocation *)(void *)n, "lambdad is shutting down");
        else if (kind == POOL_MSG_SHRINK || kind == POOL_MSG_RESUME)
            free(n);
        else if (kind == POOL_MSG_ENV)
            env_drop_event((struct pool_ctl *)(void *)n);
        else
            ctl_done((struct pool_ctl *)(void *)n);
    }
    close(ex->epfd);
    queue_fini(&ex->q);
    free(ex);
}

void executor_wake(struct executor *ex)
{
    uint64_t one = 1;
    ssize_t w = write(ex->q.efd, &one, sizeof(one));
    (void)w;
}
