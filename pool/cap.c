/* cap: the global cap on live environments, shared by all executors (see
 * cap.h). */
#include "pool/cap.h"

#include <inttypes.h>
#include <stdlib.h>

#include "pool/env.h"
#include "pool/fnpool.h"
#include "runtime/log.h"

bool cap_other_starves(const struct fnpool *fp)
{
    for (int i = 0; i < g_pool.n; i++) {
        uintptr_t v = atomic_load_explicit(&g_pool.starving[i], memory_order_relaxed);
        if (v && v != (uintptr_t)fp)
            return true;
    }
    return false;
}

void cap_set_starving(struct executor *ex, struct fnpool *fp)
{
    ex->starving_fp = fp;
    atomic_store_explicit(&g_pool.starving[ex->idx], (uintptr_t)fp, memory_order_relaxed);
}

/* Kills the longest-idle environment of this executor (not of skip). */
bool cap_drop_idle(struct executor *ex, struct fnpool *skip)
{
    struct env *victim = ex->lru_head; /* longest idle first */
    while (victim && victim->fp == skip)
        victim = victim->lru_next;
    if (!victim)
        return false;
    LOG_DEBUG("dropping idle env %" PRIu64 " of %s to make room", victim->id, victim->spec->name);
    env_kill_now(victim);
    return true;
}

/* Whether fp still waits for an environment the global cap refuses. */
static bool wants_room(const struct fnpool *fp)
{
    return fp->pend_head && !fp->draining && fp->n_pending > fp->n_starting;
}

void cap_request_room(struct executor *ex, struct fnpool *fp)
{
    if (ex->starving_fp == fp)
        return;
    /* One request per executor at a time: an earlier waiter keeps it, and
     * fp (on the blocked list) asks when that one is served (cap_retry). */
    if (ex->starving_fp && wants_room(ex->starving_fp))
        return;
    cap_set_starving(ex, fp);
    for (int i = 0; i < g_pool.n; i++) {
        if (g_pool.all[i] == ex)
            continue;
        struct pool_ctl *c = calloc(1, sizeof(*c));
        if (c) {
            c->msg_kind = POOL_MSG_SHRINK;
            executor_post(g_pool.all[i], &c->qnode);
        }
    }
}

void cap_wake_starving(struct executor *ex)
{
    for (int i = 0; i < g_pool.n; i++) {
        if (g_pool.all[i] != ex && atomic_load_explicit(&g_pool.starving[i], memory_order_relaxed))
            executor_wake(g_pool.all[i]);
    }
}

void cap_retry(struct executor *ex)
{
    /* Still waiting for room? Retry (quietly: no new SHRINK). */
    struct fnpool *sf = ex->starving_fp;
    if (sf && (!sf->pend_head || sf->draining)) {
        cap_set_starving(ex, NULL);
        sf = NULL;
    }
    if (sf) {
        fnpool_dispatch(sf);
        return;
    }
    /* The waiter we asked room for is served: the next one blocked on this
     * executor (oldest first) starts if there is room now, else asks. Without
     * this a waiter whose request was superseded waited for an idle timeout. */
    for (struct fnpool *fp = ex->blocked; fp && !ex->starving_fp; fp = fp->blocked_next) {
        int cap = fp->spec->reserved_concurrency > 0 ? fp->spec->reserved_concurrency : INT32_MAX;
        if (wants_room(fp) && fp->n_envs < cap)
            fnpool_dispatch(fp);
    }
}
