/* internal: the three structures every part of an executor touches (the
 * executor, the per-deploy fnpool, the environment) and the invariant
 * checks of their state machine.
 *
 * DESIGN: an executor thread owns everything reachable from its struct
 * executor; no field below is read or written by another thread except
 * where marked. The parts live in their own files:
 *   executor.c  the loop, the inbound queue and its messages
 *   fnpool.c    the per-deploy pool: pending invocations, warm-map entry
 *   env.c       the environment state machine, Runtime API callbacks,
 *               start and stop of processes and containers
 *   report.c    results, function logs and REPORT lines
 *   timers.c    deadlines, Docker log grace, Event retries, idle reaper
 *   cap.c       the global cap on live environments across executors
 *
 * Environment states:
 *   STARTING  spawned, init running; becomes READY at its first GET /next
 *   READY     init done; serves one invocation at a time (env->cur)
 *   DEAD      stopped or failed; destroyed at the end of the loop pass
 * An invocation is "assigned" when env->cur is set and "delivered" once the
 * runtime received it through GET /next; its timeout clock starts then.
 * Idle READY environments sit on their fnpool's LIFO stack so the most
 * recently used (hottest) one is reused first.
 *
 * Thread rules: executor thread only (see executor.h). */
#ifndef LAMBDAD_POOL_INTERNAL_H
#define LAMBDAD_POOL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool/envmap.h"
#include "pool/executor.h"
#include "runtime/container.h"
#include "runtime/evloop.h"
#include "runtime/log.h"
#include "runtime/rapi.h"
#include "runtime/subprocess.h"

/* An invariant of the state machine. Stays on in release builds (NDEBUG
 * does not remove it): a broken invariant would otherwise turn into a lost
 * invocation or a use-after-free far from its cause. */
#define POOL_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0)) {                                                        \
            LOG_ERROR("pool invariant broken at %s:%d: %s", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum env_state { ENV_STARTING, ENV_READY, ENV_DEAD };

/* POOL_MSG_ENV event of a finished spawn job (container events use the
 * enum container_event values). */
#define POOL_ENV_SPAWNED 100

/* A deadline in the executor's timer heap (pool/timers.h). */
struct ptimer {
    int64_t due;
    int idx; /* position in the heap, -1 when not armed */
    void (*fn)(struct executor *ex, struct ptimer *t);
};

#define EX_ENV_BUCKETS 256  /* environments by id */
#define EX_POOL_BUCKETS 256 /* fnpools by function key */

/* Function output kept for one invocation (or for init). */
struct logbuf {
    char *data;
    size_t len, cap;
    size_t dropped;
};

struct fnpool;
struct executor;
struct spawn_job;

struct env {
    struct executor *ex;
    struct fnpool *fp;
    struct fn_spec *spec;
    uint64_t id;
    enum env_state state;
    struct subprocess sp;
    struct ev_handler pid_ev, log_ev;
    struct rapi_host *rapi;
    struct rapi_conn *parked;
    struct rapi_conn *stream_conn; /* carries cur's streamed /response body */
    size_t stream_bytes;       /* of that body so far */
    bool stream_overflow;      /* it exceeded RAPI_MAX_STREAMED_RESPONSE */
    struct invocation *cur;
    bool delivered;
    bool in_idle;
    bool retire;               /* stop once the current invocation is done */
    bool provisioned;          /* started for the provisioned-concurrency target */
    bool init_failed;
    int64_t spawn_ns, ready_ns, deliver_ns, idle_since_ns, deadline_ns;
    struct ptimer deadline_tm; /* init or invocation deadline (deadline_ns) */
    struct ptimer grace_tm;    /* end of the Docker log grace */
    struct ptimer idle_tm;     /* idle TTL */
    bool spawning;             /* a spawn job (BIO_SPAWN) still owns its start */
    struct spawn_job *job;     /* that job, while spawning */
    double init_ms;
    bool report_init;          /* next REPORT carries Init Duration */
    uint64_t served;
    struct logbuf initlog;     /* output before the first invocation */
    struct logbuf out;         /* output of the current invocation */
    char *init_error;          /* body POSTed to /runtime/init/error */
    size_t init_error_len;
    char init_error_type[64];
    int peak_mb;
    int64_t peak_read_ns;
    char log_stream[96];
    char tmpdir[512];
    bool docker;               /* a container, not a host process */
    bool in_grace;             /* result in, waiting for the container's log */
    const char *grace_status;
    int64_t grace_ns;
    int64_t result_ns;         /* when the grace began: the invocation's end */
    struct container *ct;
    bool ct_final;             /* the container's final event arrived */
    struct env *next_idle, *prev_idle; /* fnpool's idle stack */
    struct env *lru_prev, *lru_next;   /* executor's idle list, oldest first */
    struct env *prev, *next;   /* executor's list of all envs */
    struct env *fp_prev, *fp_next; /* fnpool's list of its envs */
    struct env *id_next;       /* executor's id hash chain */
    struct env *next_dead;
    bool on_dead_list;
};

struct fnpool {
    struct envmap_node mapnode;
    struct executor *owner;
    char *key;
    char deploy_id[48];
    struct fn_spec *spec;
    struct env *idle;          /* LIFO stack */
    struct env *envs;          /* all environments of this fnpool */
    int n_envs, n_starting;
    struct invocation *pend_head, *pend_tail;
    int n_pending;
    bool draining;             /* stop environments, start none */
    bool superseded;           /* draining because a newer deploy ID arrived */
    bool mapped;               /* present in the warm map */
    bool blocked;              /* on the executor's blocked list */
    bool gc_queued;            /* on the executor's gc list */
    int provisioned;           /* environments kept initialised (provisioned concurrency) */
    struct fnpool *prev, *next; /* executor's list */
    struct fnpool *key_next;   /* executor's by-key hash chain */
    struct fnpool *blocked_next; /* waits for capacity (cap, reserved concurrency) */
    struct fnpool *gc_next;    /* may have become empty */
};

struct executor {
    int idx;
    pthread_t thread;
    int epfd;
    struct queue q;
    struct ev_handler q_ev;
    const struct pool_config *cfg;
    struct fnpool *pools;
    struct env *envs;
    struct env *dead;
    bool stopping;
    struct fnpool *starving_fp; /* waits for room under the global cap */
    uint64_t next_env_id;
    uint64_t rng;
    struct ptimer **heap;       /* timer min-heap on due (pool/timers.h) */
    int heap_n, heap_cap;
    struct env *by_id[EX_ENV_BUCKETS];
    struct fnpool *by_key[EX_POOL_BUCKETS];
    struct env *lru_head, *lru_tail; /* idle environments, longest idle first */
    struct fnpool *blocked;     /* fnpools to re-dispatch when an env is freed, */
    struct fnpool *blocked_tail; /* oldest first (FIFO: the first to wait asks first) */
    struct fnpool *gc;          /* fnpools to check for emptiness */
    int busy;                   /* our environments running an invocation */
    int64_t lone_done_ns;       /* when the last lone invocation finished (0: never) */
    bool poll_next;             /* the last one after a lone invocation came within the poll */
};

#endif
