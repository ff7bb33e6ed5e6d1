/* fnpool: the environments and pending invocations of one deploy of one
 * function (see fnpool.h). */
#include "pool/fnpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/cap.h"
#include "pool/env.h"
#include "pool/report.h"

struct invocation *fnpool_pop_pending(struct fnpool *fp)
{
    struct invocation *inv = fp->pend_head;
    if (inv) {
        POOL_ASSERT(fp->n_pending > 0);
        fp->pend_head = inv->next;
        if (!fp->pend_head)
            fp->pend_tail = NULL;
        fp->n_pending--;
        atomic_fetch_sub(&g_pool.queued, 1);
        inv->next = NULL;
        if (!fp->n_pending && !fp->n_envs)
            fnpool_gc_queue(fp);
    }
    return inv;
}

/* Matches pending invocations with idle environments. */
void fnpool_dispatch(struct fnpool *fp)
{
    while (fp->pend_head && fp->idle) {
        struct env *e = fp->idle;
        POOL_ASSERT(e->in_idle && e->state == ENV_READY && e->fp == fp);
        env_idle_remove(e);
        env_assign(e, fnpool_pop_pending(fp));
    }
    if (fp->pend_head)
        fnpool_maybe_start(fp);
}

/* Starts environments while invocations wait for one and caps allow. */
void fnpool_maybe_start(struct fnpool *fp)
{
    struct executor *ex = fp->owner;
    int cap = fp->spec->reserved_concurrency > 0 ? fp->spec->reserved_concurrency : INT32_MAX;
    while ((fp->n_pending > fp->n_starting || fp->n_envs < fp->provisioned) && !fp->draining) {
        if (fp->n_envs >= cap) {
            if (fp->n_pending > fp->n_starting)
                fnpool_block(fp); /* reserved concurrency: wait for one of ours */
            return;
        }
        int live = atomic_fetch_add(&g_pool.live_envs, 1);
        if (live >= ex->cfg->max_envs) {
            atomic_fetch_sub(&g_pool.live_envs, 1);
            fnpool_block(fp);
            /* Make room: first our own idle environments of other functions,
             * then ask the other executors to drop one. */
            if (cap_drop_idle(ex, fp))
                return; /* room appears when the victim is destroyed at the end of the pass */
            cap_request_room(ex, fp);
            return;
        }
        if (env_spawn(fp) < 0 && !fp->pend_head)
            return;
    }
}

/* Takes fp out of service: unmapped (a new fnpool may take its key),
 * idle environments stopped now, busy ones after their invocation. */
void fnpool_drain(struct fnpool *fp)
{
    fp->draining = true;
    if (fp->mapped) {
        rcu_read_lock();
        envmap_del(&fp->mapnode);
        rcu_read_unlock();
        fp->mapped = false;
    }
    for (struct env *e = fp->envs; e; e = e->fp_next)
        env_retire(e);
}

static unsigned long key_bucket(const char *key)
{
    unsigned long h = 1469598103934665603ul;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ul;
    return h % EX_POOL_BUCKETS;
}

struct fnpool *fnpool_current(struct executor *ex, const char *key)
{
    for (struct fnpool *o = ex->by_key[key_bucket(key)]; o; o = o->key_next)
        if (!o->draining && strcmp(o->key, key) == 0)
            return o;
    return NULL;
}

struct fnpool *fnpool_get(struct executor *ex, struct fn_spec *spec)
{
    rcu_read_lock();
    struct envmap_node *n = envmap_lookup(spec->key, spec->deploy_id);
    rcu_read_unlock();
    if (n)
        return caa_container_of(n, struct fnpool, mapnode);
    /* A straggler resolved before an update but queued after it runs on the
     * current deploy rather than resurrecting the superseded one. */
    for (struct fnpool *o = ex->by_key[key_bucket(spec->key)]; o; o = o->key_next) {
        if (o->superseded && strcmp(o->key, spec->key) == 0 &&
            strcmp(o->deploy_id, spec->deploy_id) == 0) {
            struct fnpool *cur = fnpool_current(ex, spec->key);
            if (cur)
                return cur;
        }
    }
    struct fnpool *fp = calloc(1, sizeof(*fp));
    if (!fp)
        return NULL;
    fp->owner = ex;
    fp->key = strdup(spec->key);
    snprintf(fp->deploy_id, sizeof(fp->deploy_id), "%s", spec->deploy_id);
    fp->spec = fnspec_ref(spec);
    fp->mapnode.key = fp->key;
    fp->mapnode.deploy_id = fp->deploy_id;
    fp->mapnode.hash = envmap_hash(fp->key, fp->deploy_id);
    /* A new deploy ID supersedes every older one of the same function; what
     * waited for the old one runs on the new one. */
    struct fnpool *old = fnpool_current(ex, fp->key);
    if (old) {
        old->superseded = true;
        fnpool_drain(old);
        fp->pend_head = old->pend_head;
        fp->pend_tail = old->pend_tail;
        fp->n_pending = old->n_pending;
        old->pend_head = old->pend_tail = NULL;
        old->n_pending = 0;
        fnpool_gc_queue(old);
    }
    fp->next = ex->pools;
    if (ex->pools)
        ex->pools->prev = fp;
    ex->pools = fp;
    unsigned long b = key_bucket(fp->key);
    fp->key_next = ex->by_key[b];
    ex->by_key[b] = fp;
    fnpool_gc_queue(fp); /* freed again if nothing comes of it */
    rcu_read_lock();
    envmap_add(&fp->mapnode);
    rcu_read_unlock();
    fp->mapped = true;
    return fp;
}

static void fnpool_free_rcu(struct rcu_head *head)
{
    struct envmap_node *n = caa_container_of(head, struct envmap_node, rcu);
    struct fnpool *fp = caa_container_of(n, struct fnpool, mapnode);
    fnspec_unref(fp->spec);
    free(fp->key);
    free(fp);
}

void fnpool_gc_queue(struct fnpool *fp)
{
    if (fp->gc_queued)
        return;
    fp->gc_queued = true;
    fp->gc_next = fp->owner->gc;
    fp->owner->gc = fp;
}

void fnpool_block(struct fnpool *fp)
{
    if (fp->blocked)
        return;
    struct executor *ex = fp->owner;
    fp->blocked = true;
    fp->blocked_next = NULL;
    if (ex->blocked_tail)
        ex->blocked_tail->blocked_next = fp;
    else
        ex->blocked = fp;
    ex->blocked_tail = fp;
}

void fnpool_unblock(struct executor *ex)
{
    struct fnpool *fp = ex->blocked;
    ex->blocked = ex->blocked_tail = NULL;
    while (fp) {
        struct fnpool *next = fp->blocked_next;
        fp->blocked = false;
        fp->blocked_next = NULL;
        if (fp->pend_head)
            fnpool_dispatch(fp); /* may block it again */
        else
            fnpool_gc_queue(fp);
        fp = next;
    }
}

/* Unlinks and frees (after a grace period) an empty fnpool. */
static void fnpool_free(struct executor *ex, struct fnpool *fp)
{
    POOL_ASSERT(!fp->idle && !fp->envs && fp->n_starting == 0 && !fp->pend_head && !fp->blocked);
    if (ex->starving_fp == fp)
        cap_set_starving(ex, NULL);
    if (fp->prev)
        fp->prev->next = fp->next;
    else
        ex->pools = fp->next;
    if (fp->next)
        fp->next->prev = fp->prev;
    struct fnpool **pp = &ex->by_key[key_bucket(fp->key)];
    while (*pp != fp)
        pp = &(*pp)->key_next;
    *pp = fp->key_next;
    if (fp->mapped) {
        rcu_read_lock();
        envmap_del(&fp->mapnode);
        rcu_read_unlock();
    }
    call_rcu(&fp->mapnode.rcu, fnpool_free_rcu);
}

void fnpool_gc(struct executor *ex, bool all)
{
    struct fnpool *fp = ex->gc;
    ex->gc = NULL;
    while (fp) {
        struct fnpool *next = fp->gc_next;
        fp->gc_queued = false;
        fp->gc_next = NULL;
        if (!all && fp->n_envs == 0 && fp->n_pending == 0 && !fp->blocked)
            fnpool_free(ex, fp);
        fp = next;
    }
    if (!all)
        return;
    for (fp = ex->pools; fp;) {
        struct fnpool *next = fp->next;
        if (fp->n_envs == 0 && fp->n_pending == 0 && !fp->blocked)
            fnpool_free(ex, fp);
        fp = next;
    }
}

/* Fails the head pending invocation of fp: a function error (bad runtime,
 * missing bootstrap) or, with service set, a lambdad-side problem (docker
 * engine or image unavailable). */
void fnpool_fail_head(struct fnpool *fp, bool service, const char *etype, const char *msg)
{
    struct invocation *inv = fnpool_pop_pending(fp);
    if (!inv)
        return;
    if (service) {
        report_fail_service(fp->owner, inv, msg);
        return;
    }
    report_platform_error(inv, etype, msg);
    report_finish(fp->owner, inv);
}

void fnpool_push_back(struct fnpool *fp, struct invocation *inv)
{
    inv->next = NULL;
    if (fp->pend_tail)
        fp->pend_tail->next = inv;
    else
        fp->pend_head = inv;
    fp->pend_tail = inv;
    fp->n_pending++;
    atomic_fetch_add(&g_pool.queued, 1);
}

void fnpool_push_front(struct fnpool *fp, struct invocation *inv)
{
    inv->next = fp->pend_head;
    fp->pend_head = inv;
    if (!fp->pend_tail)
        fp->pend_tail = inv;
    fp->n_pending++;
    atomic_fetch_add(&g_pool.queued, 1);
}
