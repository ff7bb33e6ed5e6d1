/* executor: executor threads, their environments and the invocation state
 * machine (see executor.h for the design).
 *
 * Environment states:
 *   STARTING  spawned, init running; becomes READY at its first GET /next
 *   READY     init done; serves one invocation at a time (env->cur)
 *   DEAD      stopped or failed; destroyed at the end of the loop pass
 * An invocation is "assigned" when env->cur is set and "delivered" once the
 * runtime received it through GET /next; its timeout clock starts then.
 * Idle READY environments sit on their fnpool's LIFO stack so the most
 * recently used (hottest) one is reused first. */
#include "pool/executor.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#include "pool/envmap.h"
#include "runtime/container.h"
#include "runtime/evloop.h"
#include "runtime/fsutil.h"
#include "runtime/layers.h"
#include "runtime/lambda_env.h"
#include "runtime/log.h"
#include "runtime/rapi.h"
#include "runtime/subprocess.h"

#define LOG_KEEP (64 * 1024)  /* bytes of function output kept per invocation */
#define LOG_TAIL 4096

struct pool_shared g_pool;

static pool_log_sink_fn g_log_sink;
static void *g_log_sink_user;

void pool_set_log_sink(pool_log_sink_fn fn, void *user)
{
    g_log_sink = fn;
    g_log_sink_user = user;
}

enum env_state { ENV_STARTING, ENV_READY, ENV_DEAD };

struct logbuf {
    char *data;
    size_t len, cap;
    size_t dropped;
};

struct fnpool;

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
    struct invocation *cur;
    bool delivered;
    bool in_idle;
    bool retire;               /* stop once the current invocation is done */
    bool init_failed;
    int64_t spawn_ns, ready_ns, deliver_ns, idle_since_ns, deadline_ns;
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
    struct env *next_idle;
    struct env *prev, *next;   /* executor's list of all envs */
    struct env *next_dead;
};

struct fnpool {
    struct envmap_node mapnode;
    struct executor *owner;
    char *key;
    char deploy_id[48];
    struct fn_spec *spec;
    struct env *idle;          /* LIFO stack */
    int n_envs, n_starting;
    struct invocation *pend_head, *pend_tail;
    int n_pending;
    bool draining;             /* stop environments, start none */
    bool superseded;           /* draining because a newer deploy ID arrived */
    bool mapped;               /* present in the warm map */
    struct fnpool *prev, *next; /* executor's list */
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
    struct invocation *retry_head; /* Event retries, unsorted */
    bool stopping;
    struct fnpool *starving_fp; /* waits for room under the global cap */
    uint64_t next_env_id;
    uint64_t rng;
    int64_t last_reap_ns;
};

/* ---------------------------------------------------------------- helpers */

int64_t executor_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng_next(struct executor *ex)
{
    /* xorshift64*: trace ids and log stream names need uniqueness, not secrecy. */
    uint64_t x = ex->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ex->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void logbuf_append(struct logbuf *b, const char *data, size_t len)
{
    if (len > LOG_KEEP) {
        b->dropped += len - LOG_KEEP;
        data += len - LOG_KEEP;
        len = LOG_KEEP;
    }
    if (b->len + len > LOG_KEEP) {
        /* Keep the newest bytes: the tail is what callers ask for. */
        size_t keep = LOG_KEEP - len;
        if (keep > b->len)
            keep = b->len;
        memmove(b->data, b->data + (b->len - keep), keep);
        b->dropped += b->len - keep;
        b->len = keep;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + len)
            cap *= 2;
        char *nd = realloc(b->data, cap);
        if (!nd)
            return;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void logbuf_reset(struct logbuf *b)
{
    b->len = 0;
    b->dropped = 0;
}

static void logbuf_free(struct logbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static void rm_tree(const char *dir)
{
    if (dir[0])
        fsutil_rm_rf(dir);
}

/* Hands one record to the registered log sink (CloudWatch Logs). */
static void log_sink_emit(struct env *e, struct pool_log_rec *rec)
{
    if (!g_log_sink)
        return;
    rec->fn = e->spec;
    rec->stream = e->log_stream;
    rec->env_id = e->id;
    rec->time_ms = wall_ms();
    g_log_sink(rec, g_log_sink_user);
}

/* Function output: kept for the log tail and handed to the sink. */
static void env_log_output(struct env *e, const char *data, size_t len)
{
    bool inv = e->cur && e->delivered;
    logbuf_append(inv ? &e->out : &e->initlog, data, len);
    struct pool_log_rec rec = {.kind = POOL_LOG_OUTPUT, .data = data, .len = len,
                               .request_id = inv ? e->cur->request_id : NULL};
    log_sink_emit(e, &rec);
}

static void log_sink_start(struct env *e, struct invocation *inv)
{
    struct pool_log_rec rec = {.kind = POOL_LOG_START, .request_id = inv->request_id};
    log_sink_emit(e, &rec);
}

static long long billed_ms(double dur_ms)
{
    long long billed = (long long)dur_ms + ((double)(long long)dur_ms < dur_ms ? 1 : 0);
    return billed < 1 ? 1 : billed;
}

static void log_sink_report(struct env *e, struct invocation *inv, double dur_ms, const char *status)
{
    struct pool_log_rec rec = {
        .kind = POOL_LOG_REPORT, .request_id = inv->request_id, .duration_ms = dur_ms,
        .billed_ms = billed_ms(dur_ms), .memory_mb = e->spec->memory_mb, .max_memory_mb = e->peak_mb,
        .init_ms = e->report_init ? e->init_ms : 0, .status = status,
    };
    log_sink_emit(e, &rec);
}

/* ------------------------------------------------------------ completion */

static void env_retire(struct env *e);
static void env_kill_now(struct env *e);
static void fnpool_dispatch(struct fnpool *fp);
static void fnpool_maybe_start(struct fnpool *fp);

/* Drains whatever the runtime wrote to stdout/stderr so far. */
static void env_drain_log(struct env *e)
{
    char buf[16384];
    if (e->sp.log_fd < 0)
        return;
    for (;;) {
        ssize_t r = read(e->sp.log_fd, buf, sizeof(buf));
        if (r <= 0) {
            if (r == 0) {
                /* EOF: every writer is gone; stop polling the pipe. */
                epoll_ctl(e->ex->epfd, EPOLL_CTL_DEL, e->sp.log_fd, NULL);
                close(e->sp.log_fd);
                e->sp.log_fd = -1;
            }
            return;
        }
        if (log_enabled(LOG_LEVEL_DEBUG))
            LOG_DEBUG("function %s env %" PRIu64 ": %.*s", e->spec->name, e->id, (int)r, buf);
        env_log_output(e, buf, (size_t)r);
    }
}

static void set_result(struct invocation *inv, enum inv_outcome outcome, const char *body,
                       size_t len, const char *ctype, const char *etype)
{
    inv->outcome = outcome;
    free(inv->result);
    inv->result = malloc(len + 1);
    if (inv->result) {
        memcpy(inv->result, body, len);
        inv->result[len] = 0;
        inv->result_len = len;
    } else {
        inv->result_len = 0;
    }
    snprintf(inv->content_type, sizeof(inv->content_type), "%s", ctype ? ctype : "application/json");
    snprintf(inv->error_type, sizeof(inv->error_type), "%s", etype ? etype : "");
}

/* Platform error body: {"errorType": T, "errorMessage": "RequestId: id Error: msg"}. */
static void set_platform_error(struct invocation *inv, const char *etype, const char *msg)
{
    json_t *o = json_object();
    char text[1024];
    snprintf(text, sizeof(text), "RequestId: %s Error: %s", inv->request_id, msg);
    json_object_set_new(o, "errorType", json_string(etype));
    json_object_set_new(o, "errorMessage", json_string(text));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    set_result(inv, INV_FUNCTION_ERROR, s ? s : "{}", s ? strlen(s) : 2, "application/json", etype);
    free(s);
}

static void schedule_retry(struct executor *ex, struct invocation *inv)
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

/* Hands a finished invocation back (or re-queues an Event retry). */
static void inv_finish(struct executor *ex, struct invocation *inv)
{
    atomic_fetch_add(&g_pool.invocations, 1);
    if (inv->is_event && inv->outcome == INV_FUNCTION_ERROR && inv->attempt < 2 && !ex->stopping) {
        schedule_retry(ex, inv);
        return;
    }
    if (inv->is_event)
        LOG_INFO("async invocation %s of %s finished: %s", inv->request_id, inv->fn->name,
                 inv->outcome == INV_OK ? "success" : "error");
    inv->on_done(inv);
}

/* Fails an invocation that never reached an environment. */
static void inv_fail_service(struct executor *ex, struct invocation *inv, const char *msg)
{
    inv->outcome = INV_SERVICE_ERROR;
    free(inv->error_message);
    inv->error_message = strdup(msg);
    inv_finish(ex, inv);
}

static void build_log(struct env *e, struct invocation *inv, double dur_ms, const char *status)
{
    const char *ver = e->spec->version ? e->spec->version : "$LATEST";
    char head[256], tail[768];
    int hn = snprintf(head, sizeof(head), "START RequestId: %s Version: %s\n", inv->request_id, ver);
    long long billed = billed_ms(dur_ms);
    int tn = snprintf(tail, sizeof(tail),
                      "END RequestId: %s\nREPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: "
                      "%lld ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t",
                      inv->request_id, inv->request_id, dur_ms, billed, e->spec->memory_mb,
                      e->peak_mb);
    if (e->report_init)
        tn += snprintf(tail + tn, sizeof(tail) - (size_t)tn, "Init Duration: %.2f ms\t", e->init_ms);
    if (status)
        tn += snprintf(tail + tn, sizeof(tail) - (size_t)tn, "Status: %s\t", status);
    tn += snprintf(tail + tn, sizeof(tail) - (size_t)tn, "\n");
    size_t pre = inv->cold ? e->initlog.len : 0;
    size_t total = pre + (size_t)hn + e->out.len + (size_t)tn;
    free(inv->log);
    inv->log = malloc(total + 1);
    if (!inv->log)
        return;
    char *p = inv->log;
    if (pre) {
        memcpy(p, e->initlog.data, pre);
        p += pre;
    }
    memcpy(p, head, (size_t)hn);
    p += hn;
    if (e->out.len) {
        memcpy(p, e->out.data, e->out.len);
        p += e->out.len;
    }
    memcpy(p, tail, (size_t)tn);
    p += tn;
    *p = 0;
    inv->log_len = (size_t)(p - inv->log);
}

static bool other_function_starves(const struct fnpool *fp)
{
    for (int i = 0; i < g_pool.n; i++) {
        uintptr_t v = atomic_load_explicit(&g_pool.starving[i], memory_order_relaxed);
        if (v && v != (uintptr_t)fp)
            return true;
    }
    return false;
}

static void set_starving(struct executor *ex, struct fnpool *fp)
{
    ex->starving_fp = fp;
    atomic_store_explicit(&g_pool.starving[ex->idx], (uintptr_t)fp, memory_order_relaxed);
}

/* Completes env->cur (result fields already set) and frees the env for the
 * next invocation unless it must stop. */
static void env_complete(struct env *e, const char *status)
{
    struct invocation *inv = e->cur;
    struct executor *ex = e->ex;
    int64_t t = executor_now_ns();
    double dur_ms = (double)((e->result_ns ? e->result_ns : t) - e->deliver_ns) / 1e6;
    e->result_ns = 0;
    inv->duration_ms = dur_ms;
    if (inv->cold || t - e->peak_read_ns > 1000000000) {
        int mb = subprocess_peak_mb(&e->sp);
        if (mb > 0)
            e->peak_mb = mb;
        e->peak_read_ns = t;
    }
    if (inv->want_log)
        build_log(e, inv, dur_ms, status);
    log_sink_report(e, inv, dur_ms, status);
    if (log_enabled(LOG_LEVEL_DEBUG))
        LOG_DEBUG("REPORT %s %s Duration: %.2f ms%s", e->spec->name, inv->request_id, dur_ms,
                  inv->cold ? " (cold)" : "");
    e->report_init = false;
    if (inv->cold)
        logbuf_reset(&e->initlog);
    logbuf_reset(&e->out);
    e->cur = NULL;
    e->delivered = false;
    e->served++;
    atomic_fetch_sub(&g_pool.busy_envs, 1);
    inv_finish(ex, inv);
    if (e->state != ENV_READY || e->retire || e->fp->draining) {
        env_retire(e);
        return;
    }
    e->idle_since_ns = t;
    /* Reuse at once for a waiting invocation, else park on the LIFO. */
    e->next_idle = e->fp->idle;
    e->fp->idle = e;
    e->in_idle = true;
    fnpool_dispatch(e->fp);
    /* Another function waits for room under the global cap: give this one
     * up (an environment of the waiting function itself is reused above). */
    if (e->in_idle && other_function_starves(e->fp))
        env_kill_now(e);
}

/* ------------------------------------------------------------ delivery */

static void env_deliver(struct env *e)
{
    struct invocation *inv = e->cur;
    char trace[96];
    uint64_t r1 = rng_next(e->ex), r2 = rng_next(e->ex), r3 = rng_next(e->ex);
    if (inv->trace_id)
        snprintf(trace, sizeof(trace), "%s", inv->trace_id);
    else
        snprintf(trace, sizeof(trace), "Root=1-%08llx-%012llx%012llx;Parent=%016llx;Sampled=0",
                 (unsigned long long)(wall_ms() / 1000), (unsigned long long)(r1 & 0xffffffffffffull),
                 (unsigned long long)(r2 & 0xffffffffffffull), (unsigned long long)r3);
    int64_t t = executor_now_ns();
    e->deliver_ns = t;
    e->deadline_ns = t + (int64_t)e->spec->timeout_s * 1000000000;
    struct rapi_event ev = {
        .request_id = inv->request_id,
        .deadline_ms = wall_ms() + (int64_t)e->spec->timeout_s * 1000,
        .function_arn = inv->invoked_arn ? inv->invoked_arn : e->spec->arn,
        .trace_id = trace,
        .client_context = inv->client_context,
        .cognito_identity = inv->cognito_identity,
        .payload = inv->payload,
        .payload_len = inv->payload_len,
    };
    struct rapi_conn *c = e->parked;
    e->parked = NULL;
    e->delivered = true;
    log_sink_start(e, inv);
    rapi_send_next(c, &ev); /* a failed write closes the conn; the runtime then dies or retries */
}

static void env_assign(struct env *e, struct invocation *inv)
{
    e->cur = inv;
    e->delivered = false;
    /* The clock runs from assignment: a runtime that never asks for its next
     * event still times out. Delivery restarts it (usually microseconds
     * later). */
    e->deadline_ns = executor_now_ns() + (int64_t)e->spec->timeout_s * 1000000000;
    inv->cold = e->served == 0;
    if (inv->cold)
        atomic_fetch_add(&g_pool.cold_starts, 1);
    atomic_fetch_add(&g_pool.busy_envs, 1);
    if (e->parked)
        env_deliver(e);
}

static struct invocation *fnpool_pop_pending(struct fnpool *fp)
{
    struct invocation *inv = fp->pend_head;
    if (inv) {
        fp->pend_head = inv->next;
        if (!fp->pend_head)
            fp->pend_tail = NULL;
        fp->n_pending--;
        atomic_fetch_sub(&g_pool.queued, 1);
        inv->next = NULL;
    }
    return inv;
}

/* Matches pending invocations with idle environments. */
static void fnpool_dispatch(struct fnpool *fp)
{
    while (fp->pend_head && fp->idle) {
        struct env *e = fp->idle;
        fp->idle = e->next_idle;
        e->in_idle = false;
        env_assign(e, fnpool_pop_pending(fp));
    }
    if (fp->pend_head)
        fnpool_maybe_start(fp);
}

/* ------------------------------------------------------- Runtime API ops */

#define DOCKER_LOG_GRACE_NS 25000000 /* 25 ms */

/* A container's output reaches lambdad through the Engine's log stream,
 * which lags the Runtime API by about a millisecond. When the caller asked
 * for the log tail, wait briefly so the handler's last lines make it in;
 * host processes write into our pipe directly and need no wait. */
static void env_complete_or_grace(struct env *e, const char *status)
{
    if (e->docker && e->cur->want_log) {
        e->in_grace = true;
        e->grace_status = status;
        e->result_ns = executor_now_ns();
        e->grace_ns = e->result_ns + DOCKER_LOG_GRACE_NS;
        return;
    }
    env_complete(e, status);
}

static int op_next(void *user, struct rapi_conn *conn)
{
    struct env *e = user;
    if (e->state == ENV_DEAD)
        return 403;
    if (e->cur && e->delivered && !e->in_grace)
        return 403; /* /next again without answering the current event */
    if (e->parked && e->parked != conn)
        return 403;
    e->parked = conn;
    if (e->state == ENV_STARTING) {
        int64_t t = executor_now_ns();
        e->state = ENV_READY;
        e->ready_ns = t;
        e->init_ms = (double)(t - e->spawn_ns) / 1e6;
        e->report_init = true;
        e->fp->n_starting--;
        e->idle_since_ns = t;
        env_drain_log(e);
        LOG_DEBUG("env %" PRIu64 " of %s ready after %.2f ms", e->id, e->spec->name, e->init_ms);
        e->next_idle = e->fp->idle;
        e->fp->idle = e;
        e->in_idle = true;
        fnpool_dispatch(e->fp);
        return 0;
    }
    if (e->cur && !e->delivered)
        env_deliver(e);
    return 0;
}

static int op_result(void *user, enum rapi_op op, const char *request_id, const struct http_req *req)
{
    struct env *e = user;
    if (e->state == ENV_DEAD)
        return 403;
    if (!e->cur || !e->delivered || strcmp(e->cur->request_id, request_id) != 0)
        return 400;
    env_drain_log(e);
    struct invocation *inv = e->cur;
    if (req->body_too_large) {
        static const char too_large[] =
            "{\"errorMessage\":\"Response payload size exceeded maximum allowed payload size "
            "(6291556 bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}";
        set_result(inv, INV_FUNCTION_ERROR, too_large, sizeof(too_large) - 1, "application/json",
                   "Function.ResponseSizeTooLarge");
        e->retire = true;
        env_complete(e, "error");
        return 413;
    }
    const char *ctype = http_req_header(req, "Content-Type");
    if (op == RAPI_RESPONSE) {
        set_result(inv, INV_OK, req->body, req->body_len, ctype ? ctype : "application/json", NULL);
        env_complete_or_grace(e, NULL);
        return 202;
    }
    const char *etype = http_req_header(req, "Lambda-Runtime-Function-Error-Type");
    if (req->body_len) {
        set_result(inv, INV_FUNCTION_ERROR, req->body, req->body_len, "application/json",
                   etype ? etype : "Unhandled");
    } else {
        set_platform_error(inv, etype ? etype : "Runtime.Unknown", "Unknown application error occurred");
    }
    env_complete_or_grace(e, "error");
    return 202;
}

static int op_init_error(void *user, const struct http_req *req)
{
    struct env *e = user;
    if (e->state != ENV_STARTING)
        return 403;
    env_drain_log(e);
    free(e->init_error);
    e->init_error = malloc(req->body_len + 1);
    if (e->init_error) {
        memcpy(e->init_error, req->body, req->body_len + 1);
        e->init_error_len = req->body_len;
    }
    const char *etype = http_req_header(req, "Lambda-Runtime-Function-Error-Type");
    snprintf(e->init_error_type, sizeof(e->init_error_type), "%s", etype ? etype : "Runtime.Unknown");
    e->init_failed = true;
    return 202;
}

static void op_conn_closed(void *user, struct rapi_conn *conn)
{
    struct env *e = user;
    if (e->parked == conn)
        e->parked = NULL;
}

static const struct rapi_ops g_rapi_ops = {
    .next = op_next,
    .result = op_result,
    .init_error = op_init_error,
    .conn_closed = op_conn_closed,
};

/* ---------------------------------------------------------- env lifecycle */

static void env_kill_now(struct env *e)
{
    if (e->state == ENV_DEAD)
        return;
    if (e->state == ENV_STARTING)
        e->fp->n_starting--;
    e->state = ENV_DEAD;
    if (e->docker) {
        if (e->ct && !e->ct_final)
            container_kill(e->ct);
    } else {
        subprocess_signal(&e->sp, SIGKILL);
    }
    if (e->in_idle) {
        struct env **pp = &e->fp->idle;
        while (*pp && *pp != e)
            pp = &(*pp)->next_idle;
        if (*pp)
            *pp = e->next_idle;
        e->in_idle = false;
    }
    e->next_dead = e->ex->dead;
    e->ex->dead = e;
}

/* Stops an env that has no invocation (now), or marks it to stop after. */
static void env_retire(struct env *e)
{
    if (e->cur) {
        e->retire = true;
        return;
    }
    env_kill_now(e);
}

/* Fails the invocation an env was serving, or the one its failed init was
 * started for, with a platform error. */
static void env_fail(struct env *e, const char *etype, const char *msg, const char *status)
{
    if (e->in_grace) {
        /* The result was already in: deliver it, then stop. */
        e->in_grace = false;
        e->retire = true;
        env_complete(e, e->grace_status);
    }
    if (e->cur) {
        if (!e->delivered) {
            /* Never reached the runtime: let another environment take it. */
            struct invocation *inv = e->cur;
            e->cur = NULL;
            atomic_fetch_sub(&g_pool.busy_envs, 1);
            inv->next = e->fp->pend_head;
            e->fp->pend_head = inv;
            if (!e->fp->pend_tail)
                e->fp->pend_tail = inv;
            e->fp->n_pending++;
            atomic_fetch_add(&g_pool.queued, 1);
        } else {
            set_platform_error(e->cur, etype, msg);
            e->retire = true;
            env_complete(e, status);
        }
    } else if (e->state == ENV_STARTING && e->fp->pend_head) {
        /* Init failed: the invocation that caused the cold start gets it. */
        struct invocation *inv = fnpool_pop_pending(e->fp);
        if (e->init_failed && e->init_error_len)
            set_result(inv, INV_FUNCTION_ERROR, e->init_error, e->init_error_len, "application/json",
                       e->init_error_type);
        else
            set_platform_error(inv, etype, msg);
        inv->cold = true;
        if (g_log_sink) {
            env_drain_log(e);
            log_sink_start(e, inv);
            log_sink_report(e, inv, (double)(executor_now_ns() - e->spawn_ns) / 1e6, status);
        }
        if (inv->want_log) {
            env_drain_log(e);
            int mb = subprocess_peak_mb(&e->sp);
            if (mb > 0)
                e->peak_mb = mb;
            e->cur = inv;
            e->deliver_ns = e->spawn_ns;
            e->report_init = false;
            build_log(e, inv, (double)(executor_now_ns() - e->spawn_ns) / 1e6, status);
            e->cur = NULL;
        }
        inv_finish(e->ex, inv);
    }
    env_kill_now(e);
}

static void env_pid_event(struct ev_handler *h, uint32_t events)
{
    (void)events;
    struct env *e = EV_CONTAINER_OF(h, struct env, pid_ev);
    int status = subprocess_reap(&e->sp);
    epoll_ctl(e->ex->epfd, EPOLL_CTL_DEL, e->sp.pidfd, NULL);
    if (e->state == ENV_DEAD)
        return;
    env_drain_log(e);
    char msg[128];
    if (status >= 0 && WIFSIGNALED(status)) {
        /* Go's signal names, as the Lambda platform prints them. */
        char name[64];
        snprintf(name, sizeof(name), "%s", WTERMSIG(status) == SIGKILL ? "killed" : strsignal(WTERMSIG(status)));
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        snprintf(msg, sizeof(msg), "Runtime exited with error: signal: %s", name);
    }
    else if (status >= 0 && WEXITSTATUS(status) != 0)
        snprintf(msg, sizeof(msg), "Runtime exited with error: exit status %d", WEXITSTATUS(status));
    else
        snprintf(msg, sizeof(msg), "Runtime exited without providing a reason");
    LOG_INFO("function %s env %" PRIu64 " (pid %d): %s", e->spec->name, e->id,
             e->sp.pid < 0 ? -e->sp.pid : e->sp.pid, msg);
    env_fail(e, "Runtime.ExitError", msg, "error");
    fnpool_dispatch(e->fp);
}

static void env_log_event(struct ev_handler *h, uint32_t events)
{
    (void)events;
    struct env *e = EV_CONTAINER_OF(h, struct env, log_ev);
    env_drain_log(e);
}

static void env_destroy(struct env *e)
{
    struct executor *ex = e->ex;
    struct fnpool *fp = e->fp;
    rapi_host_close(e->rapi);
    if (e->sp.pidfd >= 0)
        epoll_ctl(ex->epfd, EPOLL_CTL_DEL, e->sp.pidfd, NULL);
    if (e->sp.log_fd >= 0)
        epoll_ctl(ex->epfd, EPOLL_CTL_DEL, e->sp.log_fd, NULL);
    if (e->ct)
        container_release(e->ct);
    subprocess_stop(&e->sp);
    rm_tree(e->tmpdir);
    if (e->prev)
        e->prev->next = e->next;
    else
        ex->envs = e->next;
    if (e->next)
        e->next->prev = e->prev;
    fp->n_envs--;
    atomic_fetch_sub(&g_pool.live_envs, 1);
    logbuf_free(&e->initlog);
    logbuf_free(&e->out);
    free(e->init_error);
    fnspec_unref(e->spec);
    free(e);
}

/* Fails the head pending invocation of fp: a function error (bad runtime,
 * missing bootstrap) or, with service set, a lambdad-side problem (docker
 * engine or image unavailable). */
static void fail_head(struct fnpool *fp, bool service, const char *etype, const char *msg)
{
    struct invocation *inv = fnpool_pop_pending(fp);
    if (!inv)
        return;
    if (service) {
        inv_fail_service(fp->owner, inv, msg);
        return;
    }
    set_platform_error(inv, etype, msg);
    inv_finish(fp->owner, inv);
}

struct ct_ticket {
    struct executor *ex;
    uint64_t env_id;
};

/* Container helper thread -> executor: post the event as a message. */
static void container_event(void *user, enum container_event ev, int status, const char *msg)
{
    struct ct_ticket *t = user;
    struct pool_ctl *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->msg_kind = POOL_MSG_ENV;
    c->env_id = t->env_id;
    c->env_event = (int)ev;
    c->status = status;
    c->text = msg ? strdup(msg) : NULL;
    struct executor *ex = t->ex;
    if (ev != CONTAINER_STARTED)
        free(t); /* final event: the helper never calls again */
    executor_post(ex, &c->qnode);
}

/* The merged /opt of spec's layers, built once per deploy ID. */
static int layers_dir(struct executor *ex, const struct fn_spec *s, char *out, size_t outlen)
{
    if (!s->n_layers)
        return 0;
    snprintf(out, outlen, "%s/layers-%s", ex->cfg->work_dir, s->deploy_id);
    int rc = layers_merge(s->layer_dirs, s->n_layers, out);
    if (rc < 0)
        LOG_ERROR("merging the layers of %s into %s: %s", s->name, out, strerror(-rc));
    return rc;
}

/* Starts the process (subprocess executor). */
static int env_start_process(struct env *e, const char *api, const char *opt, const char **err)
{
    const struct pool_config *cfg = e->ex->cfg;
    const struct fn_spec *s = e->spec;
    char **argv = subprocess_argv(s, cfg->bootstrap_dir, opt, err);
    if (!argv)
        return -EINVAL;
    struct lambda_env_opts lo = {
        .runtime_api = api,
        .task_root = s->code_dir ? s->code_dir : ".",
        .opt_dir = opt,
        .endpoint_url = cfg->endpoint_url,
        .tmp_dir = e->tmpdir,
        .log_stream = e->log_stream,
        .runtime_dir = cfg->bootstrap_dir,
    };
    char **envp = lambda_env_build(s, &lo);
    char cgname[64];
    snprintf(cgname, sizeof(cgname), "env-%d-%" PRIu64, (int)getpid(), e->id);
    int rc = envp ? subprocess_start(&e->sp, argv, envp, s->code_dir, cgname, s->memory_mb) : -ENOMEM;
    if (rc < 0) {
        static __thread char msg[512];
        snprintf(msg, sizeof(msg), "cannot start %s: %s", argv[0], strerror(-rc));
        *err = msg;
    }
    lambda_env_free(envp);
    subprocess_free_argv(argv);
    if (rc < 0)
        return rc;
    struct epoll_event pe = {.events = EPOLLIN, .data.ptr = &e->pid_ev};
    epoll_ctl(e->ex->epfd, EPOLL_CTL_ADD, e->sp.pidfd, &pe);
    return 0;
}

/* Starts the container (docker executor); readiness still arrives as the
 * runtime's first GET /next. */
static int env_start_container(struct env *e, int port, const char *opt, const char **err)
{
    const struct pool_config *cfg = e->ex->cfg;
    const struct fn_spec *s = e->spec;
    const char *host = container_host_for_container();
    char api[128], endpoint[256], name[96];
    snprintf(api, sizeof(api), "%s:%d", host, port);
    const char *colon = strrchr(cfg->endpoint_url, ':');
    snprintf(endpoint, sizeof(endpoint), "http://%s:%s", host, colon ? colon + 1 : "4566");
    struct lambda_env_opts lo = {
        .runtime_api = api,
        .task_root = "/var/task",
        .opt_dir = opt ? "/opt" : NULL,
        .endpoint_url = endpoint,
        .log_stream = e->log_stream,
        .runtime_dir = "/var/runtime",
        .container = true,
        .container_host = host,
    };
    char **envp = lambda_env_build(s, &lo);
    int pipefd[2];
    if (!envp || pipe2(pipefd, O_CLOEXEC) < 0) {
        lambda_env_free(envp);
        *err = "out of resources starting a container";
        return -ENOMEM;
    }
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    e->sp.log_fd = pipefd[0];
    struct ct_ticket *t = malloc(sizeof(*t));
    snprintf(name, sizeof(name), "lambdad-%s-%d-%" PRIu64, cfg->instance_id ? cfg->instance_id : "x",
             (int)getpid(), e->id);
    struct container_start_opts co = {
        .spec = s, .envp = envp, .opt_dir = opt, .log_fd = pipefd[1], .name = name,
        .cb = container_event, .user = t,
    };
    int rc = t ? 0 : -ENOMEM;
    if (t) {
        t->ex = e->ex;
        t->env_id = e->id;
        rc = container_start(&e->ct, &co);
        if (rc < 0)
            free(t);
    } else {
        close(pipefd[1]);
    }
    lambda_env_free(envp);
    if (rc < 0) {
        *err = "cannot start the container helper thread";
        return rc;
    }
    return 0;
}

/* Starts one environment for fp. Returns 0, or -1 after failing the head
 * pending invocation with the reason (bad runtime, missing bootstrap,
 * docker engine or image unavailable). */
static int env_spawn(struct fnpool *fp)
{
    struct executor *ex = fp->owner;
    struct fn_spec *s = fp->spec;
    const bool docker = pool_uses_docker(s);
    const char *err = NULL;
    char opt[768];
    if (docker && !container_available()) {
        fail_head(fp, true, NULL,
                  "this function needs the docker executor, but the Docker engine was not "
                  "reachable when lambdad started (see its log)");
        atomic_fetch_sub(&g_pool.live_envs, 1);
        return -1;
    }
    if (layers_dir(ex, s, opt, sizeof(opt)) < 0) {
        fail_head(fp, true, NULL, "cannot prepare the function's layers");
        atomic_fetch_sub(&g_pool.live_envs, 1);
        return -1;
    }
    struct env *e = calloc(1, sizeof(*e));
    if (!e) {
        atomic_fetch_sub(&g_pool.live_envs, 1);
        return -1;
    }
    e->ex = ex;
    e->fp = fp;
    e->spec = fnspec_ref(s);
    e->docker = docker;
    e->id = ++ex->next_env_id * 64 + (uint64_t)ex->idx;
    e->sp.pid = -1;
    e->sp.pidfd = e->sp.log_fd = -1;
    e->pid_ev.fn = env_pid_event;
    e->log_ev.fn = env_log_event;
    int rc = rapi_host_open(&e->rapi, ex->epfd, docker ? container_bind_ip() : "127.0.0.1",
                            &g_rapi_ops, e);
    if (rc < 0) {
        LOG_ERROR("runtime api listener: %s", strerror(-rc));
        fail_head(fp, true, NULL, "cannot open a Runtime API listener");
        goto fail;
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(e->log_stream, sizeof(e->log_stream), "%04d/%02d/%02d/[%s]%016llx%016llx",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, s->version ? s->version : "$LATEST",
             (unsigned long long)rng_next(ex), (unsigned long long)rng_next(ex));
    if (!docker) {
        snprintf(e->tmpdir, sizeof(e->tmpdir), "%s/env-%d-%" PRIu64, ex->cfg->work_dir,
                 (int)getpid(), e->id);
        if (mkdir(e->tmpdir, 0700) < 0) {
            LOG_ERROR("cannot create %s: %s", e->tmpdir, strerror(errno));
            e->tmpdir[0] = 0;
            fail_head(fp, true, NULL, "cannot create the environment's temp directory");
            goto fail;
        }
    }
    e->spawn_ns = executor_now_ns();
    char api[64];
    snprintf(api, sizeof(api), "127.0.0.1:%d", rapi_host_port(e->rapi));
    const char *optp = s->n_layers ? opt : NULL;
    rc = docker ? env_start_container(e, rapi_host_port(e->rapi), optp, &err)
                : env_start_process(e, api, optp, &err);
    if (rc < 0) {
        LOG_INFO("function %s: %s", s->name, err);
        fail_head(fp, false, "Runtime.InvalidEntrypoint", err);
        goto fail;
    }
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = &e->log_ev};
    epoll_ctl(ex->epfd, EPOLL_CTL_ADD, e->sp.log_fd, &le);
    e->state = ENV_STARTING;
    /* Init may take up to 10 s (or the function timeout if longer); a
     * container also has to be created and started first. */
    int init_s = (s->timeout_s > 10 ? s->timeout_s : 10) + (docker ? 60 : 0);
    e->deadline_ns = e->spawn_ns + (int64_t)init_s * 1000000000;
    e->next = ex->envs;
    if (ex->envs)
        ex->envs->prev = e;
    ex->envs = e;
    fp->n_envs++;
    fp->n_starting++;
    LOG_DEBUG("env %" PRIu64 " of %s starting (%s)", e->id, s->name, docker ? "container" : "process");
    return 0;
fail:
    if (e->sp.log_fd >= 0)
        close(e->sp.log_fd);
    rapi_host_close(e->rapi);
    if (e->tmpdir[0])
        rm_tree(e->tmpdir);
    fnspec_unref(e->spec);
    free(e);
    atomic_fetch_sub(&g_pool.live_envs, 1);
    return -1;
}

/* Kills the longest-idle environment of this executor (not of skip). */
static bool executor_drop_idle(struct executor *ex, struct fnpool *skip)
{
    struct env *victim = NULL;
    for (struct env *e = ex->envs; e; e = e->next)
        if (e->in_idle && e->fp != skip && (!victim || e->idle_since_ns < victim->idle_since_ns))
            victim = e;
    if (!victim)
        return false;
    LOG_DEBUG("dropping idle env %" PRIu64 " of %s to make room", victim->id, victim->spec->name);
    env_kill_now(victim);
    return true;
}

/* Starts environments while invocations wait for one and caps allow. */
static void fnpool_maybe_start(struct fnpool *fp)
{
    struct executor *ex = fp->owner;
    int cap = fp->spec->reserved_concurrency > 0 ? fp->spec->reserved_concurrency : INT32_MAX;
    while (fp->n_pending > fp->n_starting && fp->n_envs < cap && !fp->draining) {
        int live = atomic_fetch_add(&g_pool.live_envs, 1);
        if (live >= ex->cfg->max_envs) {
            atomic_fetch_sub(&g_pool.live_envs, 1);
            /* Make room: first our own idle environments of other functions,
             * then ask the other executors to drop one. */
            if (executor_drop_idle(ex, fp))
                return; /* room appears when the victim is destroyed at the end of the pass */
            if (ex->starving_fp != fp) {
                set_starving(ex, fp);
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
            return;
        }
        if (env_spawn(fp) < 0 && !fp->pend_head)
            return;
    }
}

/* ------------------------------------------------------------- fnpools */

/* Takes fp out of service: unmapped (a new fnpool may take its key),
 * idle environments stopped now, busy ones after their invocation. */
static void fnpool_drain(struct fnpool *fp)
{
    struct executor *ex = fp->owner;
    fp->draining = true;
    if (fp->mapped) {
        rcu_read_lock();
        envmap_del(&fp->mapnode);
        rcu_read_unlock();
        fp->mapped = false;
    }
    for (struct env *e = ex->envs; e; e = e->next)
        if (e->fp == fp)
            env_retire(e);
}

static struct fnpool *fnpool_current(struct executor *ex, const char *key)
{
    for (struct fnpool *o = ex->pools; o; o = o->next)
        if (!o->draining && strcmp(o->key, key) == 0)
            return o;
    return NULL;
}

static struct fnpool *fnpool_get(struct executor *ex, struct fn_spec *spec)
{
    rcu_read_lock();
    struct envmap_node *n = envmap_lookup(spec->key, spec->deploy_id);
    rcu_read_unlock();
    if (n)
        return caa_container_of(n, struct fnpool, mapnode);
    /* A straggler resolved before an update but queued after it runs on the
     * current deploy rather than resurrecting the superseded one. */
    for (struct fnpool *o = ex->pools; o; o = o->next) {
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
    }
    fp->next = ex->pools;
    if (ex->pools)
        ex->pools->prev = fp;
    ex->pools = fp;
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

/* Drops fnpools that have no environments and nothing waiting. */
static void executor_gc_pools(struct executor *ex)
{
    struct fnpool *fp = ex->pools;
    while (fp) {
        struct fnpool *next = fp->next;
        if (fp->n_envs == 0 && fp->n_pending == 0) {
            if (ex->starving_fp == fp)
                set_starving(ex, NULL);
            if (fp->prev)
                fp->prev->next = fp->next;
            else
                ex->pools = fp->next;
            if (fp->next)
                fp->next->prev = fp->prev;
            if (fp->mapped) {
                rcu_read_lock();
                envmap_del(&fp->mapnode);
                rcu_read_unlock();
            }
            call_rcu(&fp->mapnode.rcu, fnpool_free_rcu);
        }
        fp = next;
    }
}

/* ------------------------------------------------------------ messages */

static void handle_invoke(struct executor *ex, struct invocation *inv)
{
    if (ex->stopping) {
        inv_fail_service(ex, inv, "lambdad is shutting down");
        return;
    }
    if (inv->fn->reserved_concurrency == 0) {
        inv->outcome = INV_THROTTLED;
        free(inv->error_message);
        inv->error_message = strdup("Rate Exceeded.");
        inv_finish(ex, inv);
        return;
    }
    struct fnpool *fp = fnpool_get(ex, inv->fn);
    if (!fp) {
        inv_fail_service(ex, inv, "out of memory");
        return;
    }
    inv->next = NULL;
    if (fp->pend_tail)
        fp->pend_tail->next = inv;
    else
        fp->pend_head = inv;
    fp->pend_tail = inv;
    fp->n_pending++;
    atomic_fetch_add(&g_pool.queued, 1);
    fnpool_dispatch(fp);
}

static void ctl_done(struct pool_ctl *c);

/* A container's helper thread reported (see container_event). */
static void handle_env_event(struct executor *ex, struct pool_ctl *c)
{
    struct env *e = ex->envs;
    while (e && e->id != c->env_id)
        e = e->next;
    if (!e)
        return;
    if (c->env_event == CONTAINER_STARTED) {
        LOG_DEBUG("env %" PRIu64 " of %s: container %s started", e->id, e->spec->name,
                  container_id(e->ct));
        return;
    }
    e->ct_final = true;
    if (e->state == ENV_DEAD) {
        /* Killed earlier: now it can go. */
        e->next_dead = ex->dead;
        ex->dead = e;
        return;
    }
    env_drain_log(e);
    char msg[640];
    if (c->env_event == CONTAINER_FAILED) {
        LOG_WARN("function %s: container failed: %s", e->spec->name, c->text ? c->text : "?");
        snprintf(msg, sizeof(msg), "%s", c->text ? c->text : "the container could not be started");
        if (e->state == ENV_STARTING && e->fp->pend_head)
            fail_head(e->fp, true, NULL, msg);
        env_kill_now(e);
    } else {
        if (c->status == 137)
            snprintf(msg, sizeof(msg), "Runtime exited with error: signal: killed");
        else if (c->status != 0)
            snprintf(msg, sizeof(msg), "Runtime exited with error: exit status %d", c->status);
        else
            snprintf(msg, sizeof(msg), "Runtime exited without providing a reason");
        LOG_INFO("function %s env %" PRIu64 " (container %s): %s", e->spec->name, e->id,
                 container_id(e->ct), msg);
        env_fail(e, "Runtime.ExitError", msg, "error");
    }
    fnpool_dispatch(e->fp);
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
    for (struct env *e = ex->envs; e; e = e->next) {
        if (e->state == ENV_DEAD)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "function", json_string(e->spec->name));
        json_object_set_new(o, "function_key", json_string(e->spec->key));
        json_object_set_new(o, "deploy_id", json_string(e->fp->deploy_id));
        json_object_set_new(o, "executor", json_string(e->docker ? "docker" : "subprocess"));
        if (e->ct)
            json_object_set_new(o, "container", json_string(container_id(e->ct)));
        json_object_set_new(o, "state", json_string(e->state == ENV_STARTING ? "starting"
                                                    : e->cur                 ? "busy"
                                                                             : "idle"));
        json_object_set_new(o, "pid", json_integer(e->sp.pid > 0 ? e->sp.pid : -e->sp.pid));
        if (!e->docker)
            json_object_set_new(o, "spawn", json_string(e->sp.zygote ? "zygote" : "spawn"));
        json_object_set_new(o, "idle_seconds",
                            json_real(e->cur || e->state != ENV_READY
                                          ? 0.0
                                          : (double)(t - e->idle_since_ns) / 1e9));
        json_object_set_new(o, "invocations", json_integer((json_int_t)e->served));
        json_object_set_new(o, "init_ms", json_real(e->init_ms));
        json_object_set_new(o, "executor_thread", json_integer(ex->idx));
        json_object_set_new(o, "draining", json_boolean(e->fp->draining || e->retire));
        json_array_append_new(c->list, o);
    }
    ctl_done(c);
}

static void handle_evict(struct executor *ex, struct pool_ctl *c)
{
    for (struct fnpool *fp = ex->pools; fp; fp = fp->next) {
        if (strcmp(fp->key, c->key) != 0 || fp->draining)
            continue;
        fnpool_drain(fp);
        struct invocation *inv = fp->pend_head;
        fp->pend_head = fp->pend_tail = NULL;
        atomic_fetch_sub(&g_pool.queued, fp->n_pending);
        fp->n_pending = 0;
        while (inv) {
            struct invocation *next = inv->next;
            handle_invoke(ex, inv);
            inv = next;
        }
    }
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
            set_platform_error(e->cur, "Runtime.ExitError", "lambdad is shutting down");
            e->retire = true;
            env_complete(e, "error");
        }
        if (e->cur && !e->delivered) {
            struct invocation *inv = e->cur;
            e->cur = NULL;
            inv_fail_service(ex, inv, "lambdad is shutting down");
        }
        env_kill_now(e);
    }
    for (struct fnpool *fp = ex->pools; fp; fp = fp->next) {
        struct invocation *inv;
        while ((inv = fnpool_pop_pending(fp)))
            inv_fail_service(ex, inv, "lambdad is shutting down");
    }
    while (ex->retry_head) {
        struct invocation *inv = ex->retry_head;
        ex->retry_head = inv->next;
        inv_fail_service(ex, inv, "lambdad is shutting down");
    }
}

static void drain_queue(struct executor *ex)
{
    queue_ack_wake(&ex->q);
    struct cds_wfcq_node *n;
    while ((n = queue_pop(&ex->q))) {
        /* struct invocation and struct pool_ctl both start with qnode, msg_kind. */
        int kind = ((struct pool_ctl *)(void *)n)->msg_kind;
        switch (kind) {
        case POOL_MSG_INVOKE:
            handle_invoke(ex, (struct invocation *)(void *)n);
            break;
        case POOL_MSG_LIST:
            handle_list(ex, (struct pool_ctl *)(void *)n);
            break;
        case POOL_MSG_EVICT:
            handle_evict(ex, (struct pool_ctl *)(void *)n);
            break;
        case POOL_MSG_SHRINK:
            executor_drop_idle(ex, NULL);
            free(n);
            break;
        case POOL_MSG_ENV: {
            struct pool_ctl *c = (struct pool_ctl *)(void *)n;
            handle_env_event(ex, c);
            free(c->text);
            free(c);
            break;
        }
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

/* ----------------------------------------------------------------- loop */

static void check_deadlines(struct executor *ex, int64_t t)
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
            env_log_output(e, line, (size_t)n);
            LOG_INFO("function %s request %s timed out after %d s", e->spec->name,
                     e->cur->request_id, e->spec->timeout_s);
            env_fail(e, "Sandbox.Timedout", msg, "timeout");
        }
    }
}

static void run_retries(struct executor *ex, int64_t t)
{
    struct invocation **pp = &ex->retry_head;
    while (*pp) {
        struct invocation *inv = *pp;
        if (inv->due_ns <= t) {
            *pp = inv->next;
            handle_invoke(ex, inv);
        } else {
            pp = &inv->next;
        }
    }
}

static void reap_idle(struct executor *ex, int64_t t)
{
    int64_t ttl = (int64_t)ex->cfg->ttl_s * 1000000000;
    for (struct env *e = ex->envs; e; e = e->next)
        if (e->in_idle && t - e->idle_since_ns >= ttl) {
            LOG_DEBUG("env %" PRIu64 " of %s idle for %d s: stopping", e->id, e->spec->name,
                      ex->cfg->ttl_s);
            env_kill_now(e);
        }
}

static int next_timeout_ms(struct executor *ex, int64_t t)
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

static void destroy_dead(struct executor *ex)
{
    bool freed = false;
    while (ex->dead) {
        struct env *e = ex->dead;
        ex->dead = e->next_dead;
        if (e->ct && !e->ct_final)
            continue; /* destroyed when the container's final event arrives */
        env_destroy(e);
        freed = true;
    }
    if (freed) {
        executor_gc_pools(ex);
        /* Capacity came back: retry our own waiting functions, and wake any
         * executor that starved for room. */
        for (struct fnpool *fp = ex->pools; fp; fp = fp->next)
            if (fp->pend_head)
                fnpool_dispatch(fp);
        for (int i = 0; i < g_pool.n; i++) {
            if (g_pool.all[i] != ex && atomic_load_explicit(&g_pool.starving[i], memory_order_relaxed)) {
                uint64_t one = 1;
                ssize_t w = write(g_pool.all[i]->q.efd, &one, sizeof(one));
                (void)w;
            }
        }
    }
}

static void *executor_main(void *arg)
{
    struct executor *ex = arg;
    char name[16];
    snprintf(name, sizeof(name), "executor-%d", ex->idx);
    pthread_setname_np(pthread_self(), name);
    rcu_register_thread();
    struct epoll_event evs[64];
    while (!(ex->stopping && !ex->envs)) {
        int64_t t = executor_now_ns();
        int n = epoll_wait(ex->epfd, evs, 64, ex->stopping ? 10 : next_timeout_ms(ex, t));
        for (int i = 0; i < n; i++) {
            struct ev_handler *h = evs[i].data.ptr;
            h->fn(h, evs[i].events);
        }
        t = executor_now_ns();
        check_deadlines(ex, t);
        if (ex->retry_head)
            run_retries(ex, t);
        if (t - ex->last_reap_ns > 1000000000) {
            ex->last_reap_ns = t;
            reap_idle(ex, t);
        }
        destroy_dead(ex);
        if (ex->starving_fp) {
            /* Still waiting for room? Retry (quietly: no new SHRINK). */
            struct fnpool *sf = ex->starving_fp;
            if (!sf->pend_head || sf->draining)
                set_starving(ex, NULL);
            else
                fnpool_dispatch(sf);
        }
    }
    executor_gc_pools(ex);
    rcu_unregister_thread();
    return NULL;
}

/* ---------------------------------------------------------------- API */

int executor_start(struct executor **out, int idx, const struct pool_config *cfg)
{
    struct executor *ex = calloc(1, sizeof(*ex));
    if (!ex)
        return -ENOMEM;
    ex->idx = idx;
    ex->cfg = cfg;
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
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &ex->q_ev};
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
    /* Messages that raced with the stop. */
    struct cds_wfcq_node *n;
    while ((n = queue_pop(&ex->q))) {
        int kind = ((struct pool_ctl *)(void *)n)->msg_kind;
        if (kind == POOL_MSG_INVOKE)
            inv_fail_service(ex, (struct invocation *)(void *)n, "lambdad is shutting down");
        else if (kind == POOL_MSG_SHRINK)
            free(n);
        else if (kind == POOL_MSG_ENV) {
            free(((struct pool_ctl *)(void *)n)->text);
            free(n);
        } else
            ctl_done((struct pool_ctl *)(void *)n);
    }
    close(ex->epfd);
    queue_fini(&ex->q);
    free(ex);
}
