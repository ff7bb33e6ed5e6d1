/* executor: one executor thread and the environments it owns (pool
 * internals; the public face is pool/pool.h, which drives them: the
 * executor parts use only the shared records of pool/invocation.h).
 *
 * DESIGN: an executor is a thread running one epoll loop over
 *   - its inbound queue's eventfd (invocations and control messages),
 *   - the Runtime API listener and connections of each of its environments,
 *   - each environment's log pipe and process handle (pidfd),
 * with the epoll timeout set to the nearest invocation deadline, retry time
 * or reaper tick. Functions are sharded over executors by identity, so
 * every environment, pending invocation and per-function counter of a
 * function is touched by exactly one thread: no locks on the invoke path.
 * Per-function state (struct fnpool) is published in the warm map
 * (pool/envmap.h) keyed by function identity + deploy ID.
 *
 * The parts of an executor and its state machine: pool/internal.h.
 *
 * Thread rules: executor_post, executor_call and executor_wake from any
 * thread; everything else on the executor's own thread. */
#ifndef LAMBDAD_POOL_EXECUTOR_H
#define LAMBDAD_POOL_EXECUTOR_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "pool/invocation.h"
#include "pool/queue.h"

enum pool_msg_kind {
    POOL_MSG_INVOKE = 0,
    POOL_MSG_EVICT,   /* stop every environment of a function key */
    POOL_MSG_LIST,    /* append environment descriptions to a JSON array */
    POOL_MSG_SHRINK,  /* another executor is starved: drop one idle env */
    POOL_MSG_STOP,    /* stop everything and leave the loop */
    POOL_MSG_ENV,     /* asynchronous environment event (docker threads) */
    POOL_MSG_PROVISION, /* keep N initialised environments of a spec */
    POOL_MSG_RESUME,  /* a streamed response's consumer drained: read the runtime again */
};

/* A control message; begins like struct invocation (qnode, msg_kind). */
struct pool_ctl {
    struct cds_wfcq_node qnode;
    int msg_kind;
    char *key;           /* EVICT */
    json_t *list;        /* LIST: array to append to */
    pthread_mutex_t mu;  /* LIST/EVICT/STOP: completion */
    pthread_cond_t cv;
    int done;
    uint64_t env_id;     /* ENV: the environment concerned */
    int env_event;       /* ENV: what happened */
    int status;          /* ENV: exit status or error code */
    char *text;          /* ENV: error text */
    void *job;           /* ENV: a finished spawn job (POOL_ENV_SPAWNED) */
    struct fn_spec *spec; /* PROVISION: the spec (borrowed for the call) */
    int count;           /* PROVISION: target; answer: READY environments */
};

struct executor;

/* Creates executor number idx and starts its thread. */
int executor_start(struct executor **out, int idx, const struct pool_config *cfg);

/* Joins the thread (after a STOP message). */
void executor_join(struct executor *ex);

/* Frees a joined executor, failing or dropping what is still queued. Only
 * once nothing can post to it any more: background jobs and container
 * helpers report into executor queues, so pool_stop stops them first. */
void executor_free(struct executor *ex);

/* CLOCK_MONOTONIC in nanoseconds (deadlines, idle times, submit stamps). */
int64_t executor_now_ns(void);

/* Queues an invocation or control message. Any thread. */
void executor_post(struct executor *ex, struct cds_wfcq_node *node);

/* Posts a control message and waits until the executor handled it. */
void executor_call(struct executor *ex, struct pool_ctl *ctl);

/* Wakes ex's loop without a message (it re-runs its loop pass). Any thread. */
void executor_wake(struct executor *ex);

/* Executor thread: routes an invocation (new or an Event retry) to its
 * fnpool, or throttles / fails it. */
void executor_invoke(struct executor *ex, struct invocation *inv);

/* invstream resume hook (any thread): posts POOL_MSG_RESUME for env_id to
 * the executor ctx, unless the pool is stopping. */
void pool_stream_resume(void *ctx, uint64_t env_id);

/* Pool-wide counters shared by all executors. */
struct pool_shared {
    atomic_int live_envs;
    atomic_int busy_envs;
    atomic_int queued;
    atomic_ullong invocations;
    atomic_ullong cold_starts;
    /* Per executor: the fnpool (as an opaque address) that waits for room
     * under the global cap, or 0. Idle environments of OTHER functions are
     * given up while any entry is set. */
    atomic_uintptr_t *starving;
    struct executor **all;
    int n;
    const struct pool_config *cfg;
};
extern struct pool_shared g_pool;

#endif
