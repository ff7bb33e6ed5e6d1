/* env: one execution environment: its state machine, its Runtime API
 * callbacks and its start and stop (see env.h). */
#include "pool/env.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pool/cap.h"
#include "pool/fnpool.h"
#include "pool/report.h"
#include "pool/timers.h"
#include "runtime/bio.h"
#include "runtime/fsutil.h"
#include "runtime/lambda_env.h"
#include "runtime/layers.h"
#include "runtime/log.h"

#define DOCKER_LOG_GRACE_NS 25000000 /* 25 ms */

static void spawn_job_cancel(struct spawn_job *j);

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

static void rm_tree(const char *dir)
{
    if (dir[0])
        fsutil_rm_rf(dir);
}

/* Puts a DEAD env on the executor's dead list (once). */
static void env_bury(struct env *e)
{
    POOL_ASSERT(e->state == ENV_DEAD);
    if (e->on_dead_list)
        return;
    e->on_dead_list = true;
    e->next_dead = e->ex->dead;
    e->ex->dead = e;
}

static void env_set_deadline(struct env *e, int64_t ns)
{
    e->deadline_ns = ns;
    timer_arm(e->ex, &e->deadline_tm, ns);
}

/* Parks an idle READY environment: top of its fnpool's LIFO, end of the
 * executor's idle list, TTL timer armed (lazily). */
static void env_idle_push(struct env *e, int64_t now)
{
    struct executor *ex = e->ex;
    struct fnpool *fp = e->fp;
    POOL_ASSERT(!e->in_idle && !e->cur && e->state == ENV_READY);
    e->idle_since_ns = now;
    e->prev_idle = NULL;
    e->next_idle = fp->idle;
    if (fp->idle)
        fp->idle->prev_idle = e;
    fp->idle = e;
    e->lru_next = NULL;
    e->lru_prev = ex->lru_tail;
    if (ex->lru_tail)
        ex->lru_tail->lru_next = e;
    else
        ex->lru_head = e;
    ex->lru_tail = e;
    e->in_idle = true;
    /* Lazy TTL: a timer still armed from an earlier idle spell stays (it is
     * due sooner); when it fires, timers_env_idle re-arms it for
     * idle_since_ns + TTL. No heap operation per invocation. */
    if (e->idle_tm.idx < 0)
        timer_arm(ex, &e->idle_tm, now + (int64_t)ex->cfg->ttl_s * 1000000000);
}

void env_idle_remove(struct env *e)
{
    struct executor *ex = e->ex;
    struct fnpool *fp = e->fp;
    POOL_ASSERT(e->in_idle);
    if (e->prev_idle)
        e->prev_idle->next_idle = e->next_idle;
    else
        fp->idle = e->next_idle;
    if (e->next_idle)
        e->next_idle->prev_idle = e->prev_idle;
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        ex->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        ex->lru_tail = e->lru_prev;
    e->next_idle = e->prev_idle = e->lru_prev = e->lru_next = NULL;
    e->in_idle = false; /* the TTL timer stays armed: see env_idle_push */
}

struct env *env_find(struct executor *ex, uint64_t id)
{
    struct env *e = ex->by_id[id % EX_ENV_BUCKETS];
    while (e && e->id != id)
        e = e->id_next;
    return e;
}

/* Drains whatever the runtime wrote to stdout/stderr so far. */
void env_drain_log(struct env *e)
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
        report_output(e, buf, (size_t)r);
    }
}

/* Forgets the connection that carried cur's streamed response. If it is
 * still mid-body (cur finished another way: timeout, /error on another
 * connection), what follows is read and dropped, so it must not stay
 * paused. */
static void env_stream_end(struct env *e)
{
    if (e->stream_conn)
        rapi_conn_resume(e->stream_conn);
    e->stream_conn = NULL;
    e->stream_bytes = 0;
    e->stream_overflow = false;
}

void env_stream_resume(struct executor *ex, uint64_t env_id)
{
    struct env *e = env_find(ex, env_id);
    if (e && e->stream_conn)
        rapi_conn_resume(e->stream_conn);
}

/* Refreshes the environment's peak memory (Max Memory Used). */
static void env_read_peak(struct env *e, int64_t t)
{
    int mb = subprocess_peak_mb(&e->sp);
    if (mb > 0)
        e->peak_mb = mb;
    e->peak_read_ns = t;
}

/* The REPORT record for the logs store, Max Memory Used refreshed first
 * when peak_due. */
static void env_sink_report(struct env *e, const char *request_id, double dur_ms, const char *status,
                            bool peak_due, int64_t t)
{
    if (peak_due)
        env_read_peak(e, t);
    report_sink_report(e, request_id, dur_ms, status);
}

/* Completes env->cur (result fields already set) and frees the env for the
 * next invocation unless it must stop. */
void env_complete(struct env *e, const char *status)
{
    struct invocation *inv = e->cur;
    POOL_ASSERT(inv && !e->in_idle && !e->in_grace);
    struct executor *ex = e->ex;
    int64_t t = executor_now_ns();
    double dur_ms = (double)((e->result_ns ? e->result_ns : t) - e->deliver_ns) / 1e6;
    e->result_ns = 0;
    inv->duration_ms = dur_ms;
    env_stream_end(e);
    bool peak_due = inv->cold || t - e->peak_read_ns > 1000000000;
    /* The REPORT goes to the logs store, which is asynchronous anyway: unless
     * the caller waits for the log tail (or this is the cold start), the
     * caller gets its reply first and the peak-memory read (two procfs/cgroup
     * reads, ~15 us) and the REPORT record follow. */
    bool report_now = inv->want_log || inv->cold;
    if (report_now) {
        env_sink_report(e, inv->request_id, dur_ms, status, peak_due, t);
        if (inv->want_log)
            report_build_log(e, inv, dur_ms, status);
    }
    char request_id[sizeof(inv->request_id)];
    memcpy(request_id, inv->request_id, sizeof(request_id));
    if (log_enabled(LOG_LEVEL_DEBUG))
        LOG_DEBUG("REPORT %s %s Duration: %.2f ms%s", e->spec->name, request_id, dur_ms,
                  inv->cold ? " (cold)" : "");
    if (inv->cold)
        logbuf_reset(&e->initlog);
    logbuf_reset(&e->out);
    e->cur = NULL;
    e->delivered = false;
    e->served++;
    if (atomic_fetch_sub(&g_pool.busy_envs, 1) == 1) /* it ran alone (ours, so ex->busy was 1) */
        ex->lone_done_ns = t;
    ex->busy--;
    report_finish(ex, inv); /* inv is gone from here on */
    if (!report_now)
        env_sink_report(e, request_id, dur_ms, status, peak_due, t);
    e->report_init = false;
    if (e->state != ENV_READY || e->retire || e->fp->draining) {
        env_retire(e);
        return;
    }
    /* Reuse at once for a waiting invocation, else park on the LIFO. */
    env_idle_push(e, t);
    fnpool_dispatch(e->fp);
    /* Another function waits for room under the global cap: give this one
     * up (an environment of the waiting function itself is reused above). */
    if (e->in_idle && cap_other_starves(e->fp))
        env_kill_now(e);
}

static void env_deliver(struct env *e)
{
    struct invocation *inv = e->cur;
    POOL_ASSERT(inv && e->parked && !e->delivered && e->state == ENV_READY);
    /* The client's X-Amzn-Trace-Id whole (a Lineage part can take it past
     * any fixed size), or a new root. */
    char trace[96];
    const char *trace_id = inv->trace_id;
    if (!trace_id) {
        uint64_t r1 = rng_next(e->ex), r2 = rng_next(e->ex), r3 = rng_next(e->ex);
        trace_id = trace;
        snprintf(trace, sizeof(trace), "Root=1-%08llx-%012llx%012llx;Parent=%016llx;Sampled=0",
                 (unsigned long long)(wall_ms() / 1000), (unsigned long long)(r1 & 0xffffffffffffull),
                 (unsigned long long)(r2 & 0xffffffffffffull), (unsigned long long)r3);
    }
    int64_t t = executor_now_ns();
    e->deliver_ns = t;
    env_set_deadline(e, t + (int64_t)e->spec->timeout_s * 1000000000);
    struct rapi_event ev = {
        .request_id = inv->request_id,
        .deadline_ms = wall_ms() + (int64_t)e->spec->timeout_s * 1000,
        .function_arn = inv->invoked_arn ? inv->invoked_arn : e->spec->arn,
        .trace_id = trace_id,
        .client_context = inv->client_context,
        .cognito_identity = inv->cognito_identity,
        .payload = inv->payload,
        .payload_len = inv->payload_len,
    };
    struct rapi_conn *c = e->parked;
    e->parked = NULL;
    e->delivered = true;
    report_sink_start(e, inv);
    rapi_send_next(c, &ev); /* a failed write closes the conn; the runtime then dies or retries */
}

void env_assign(struct env *e, struct invocation *inv)
{
    POOL_ASSERT(inv && e->state == ENV_READY && !e->cur && !e->in_idle && !e->retire);
    e->cur = inv;
    e->delivered = false;
    inv->cold = e->served == 0;
    if (inv->cold)
        atomic_fetch_add(&g_pool.cold_starts, 1);
    atomic_fetch_add(&g_pool.busy_envs, 1);
    struct executor *ex = e->ex;
    if (ex->busy++ == 0 && ex->lone_done_ns)
        /* Poll after the next lone invocation only if this one came soon
         * enough after the last to be caught (executor_main). */
        ex->poll_next = executor_now_ns() - ex->lone_done_ns < (int64_t)ex->cfg->spin_us * 1000;
    if (e->parked)
        env_deliver(e); /* arms the deadline */
    else /* The clock runs from assignment: a runtime that never asks for its
          * next event still times out. Delivery restarts it. */
        env_set_deadline(e, executor_now_ns() + (int64_t)e->spec->timeout_s * 1000000000);
}

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
        timer_arm(e->ex, &e->grace_tm, e->grace_ns);
        return;
    }
    env_complete(e, status);
}

/* STARTING -> READY at the runtime's first GET /next (parked). */
static void env_ready(struct env *e)
{
    int64_t t = executor_now_ns();
    e->state = ENV_READY;
    e->ready_ns = t;
    e->init_ms = (double)(t - e->spawn_ns) / 1e6;
    e->report_init = true;
    POOL_ASSERT(e->fp->n_starting > 0 && !e->cur && !e->in_idle && !e->spawning);
    e->fp->n_starting--;
    env_drain_log(e);
    LOG_DEBUG("env %" PRIu64 " of %s ready after %.2f ms", e->id, e->spec->name, e->init_ms);
    env_idle_push(e, t);
    fnpool_dispatch(e->fp);
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
        /* A runtime can ask before its spawn job reported (the process
         * runs before the report is handled): READY once it did. */
        if (!e->spawning)
            env_ready(e);
        return 0;
    }
    if (e->cur && !e->delivered)
        env_deliver(e);
    return 0;
}

/* A streamed /response for request_id began on conn: forward its body
 * through cur's stream if the caller streams (InvokeWithResponseStream,
 * RESPONSE_STREAM URL); otherwise the host collects it into one body. */
static bool op_stream_begin(void *user, struct rapi_conn *conn, const char *request_id,
                            const struct http_req *req)
{
    struct env *e = user;
    struct invocation *inv = e->cur;
    if (e->state != ENV_READY || !inv || !inv->stream || !e->delivered || e->in_grace || e->stream_conn ||
        strcmp(inv->request_id, request_id) != 0)
        return false;
    e->stream_conn = conn;
    e->stream_bytes = 0;
    e->stream_overflow = false;
    invstream_begin(inv->stream, http_req_header(req, "Content-Type"), pool_stream_resume, e->ex, e->id);
    return true;
}

static int op_stream_data(void *user, struct rapi_conn *conn, const char *data, size_t len)
{
    struct env *e = user;
    if (conn != e->stream_conn || !e->cur || e->stream_overflow)
        return 0; /* cur already finished (timeout, error): dropped */
    e->stream_bytes += len;
    if (e->stream_bytes > RAPI_MAX_STREAMED_RESPONSE) {
        e->stream_overflow = true; /* the rest is dropped; the end answers 413 */
        return 0;
    }
    return invstream_push(e->cur->stream, data, len) == INVSTREAM_FULL ? RAPI_STREAM_PAUSE : 0;
}

static int op_result(void *user, enum rapi_op op, const char *request_id, const struct http_req *req)
{
    struct env *e = user;
    if (e->state == ENV_DEAD)
        return 403;
    if (!e->cur || !e->delivered || strcmp(e->cur->request_id, request_id) != 0)
        return 400;
    if (e->in_grace)
        return 403; /* this invocation's result is already in */
    env_drain_log(e);
    struct invocation *inv = e->cur;
    if (req->body_too_large || (req->body_streamed && e->stream_overflow)) {
        char too_large[192];
        int n = snprintf(too_large, sizeof(too_large),
                         "{\"errorMessage\":\"Response payload size exceeded maximum allowed payload size "
                         "(%llu bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}",
                         req->body_streamed ? (unsigned long long)RAPI_MAX_STREAMED_RESPONSE
                                            : (unsigned long long)RAPI_MAX_RESPONSE);
        report_set_result(inv, INV_FUNCTION_ERROR, too_large, (size_t)n, "application/json",
                          "Function.ResponseSizeTooLarge");
        e->retire = true;
        env_complete(e, "error");
        return 413;
    }
    const char *ctype = http_req_header(req, "Content-Type");
    const char *stream_err = op == RAPI_RESPONSE ? http_req_header(req, "Lambda-Runtime-Function-Error-Type") : NULL;
    if (stream_err) {
        /* A streamed response that failed midway: the error comes in the
         * trailers (type, base64 body). What was streamed before reached a
         * streaming caller already; a buffering caller gets the error only. */
        const char *b64 = http_req_header(req, "Lambda-Runtime-Function-Error-Body");
        size_t blen = b64 ? strlen(b64) : 0;
        unsigned char *body = blen && blen % 4 == 0 && blen < (1u << 20) ? malloc(blen / 4 * 3 + 1) : NULL;
        int n = body ? EVP_DecodeBlock(body, (const unsigned char *)b64, (int)blen) : -1;
        if (n > 0) {
            while (n > 0 && blen && b64[--blen] == '=')
                n--; /* EVP_DecodeBlock counts padding bytes */
            report_set_result(inv, INV_FUNCTION_ERROR, (const char *)body, (size_t)n, "application/json", stream_err);
        } else {
            report_platform_error(inv, stream_err, "Unknown application error occurred");
        }
        free(body);
        env_complete_or_grace(e, "error");
        return 202;
    }
    if (op == RAPI_RESPONSE) {
        /* A streamed body already went to the caller: result stays empty. */
        report_set_result(inv, INV_OK, req->body, req->body_len,
                          ctype ? ctype : req->body_streamed ? "application/octet-stream" : "application/json", NULL);
        env_complete_or_grace(e, NULL);
        return 202;
    }
    const char *etype = http_req_header(req, "Lambda-Runtime-Function-Error-Type");
    if (req->body_len) {
        report_set_result(inv, INV_FUNCTION_ERROR, req->body, req->body_len, "application/json",
                   etype ? etype : "Unhandled");
    } else {
        report_platform_error(inv, etype ? etype : "Runtime.Unknown", "Unknown application error occurred");
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
    if (e->stream_conn != conn)
        return;
    e->stream_conn = NULL;
    if (e->cur && e->delivered && !e->in_grace && e->state == ENV_READY) {
        /* The streamed body broke off (the runtime closed the connection,
         * or sent bad chunk framing): the caller already has part of it;
         * end it with the error now rather than at the timeout. */
        env_drain_log(e);
        report_platform_error(e->cur, "Runtime.TruncatedResponse",
                              "the runtime closed its streamed response before the end");
        env_complete(e, "error");
    }
}

static const struct rapi_ops g_rapi_ops = {
    .next = op_next,
    .result = op_result,
    .init_error = op_init_error,
    .conn_closed = op_conn_closed,
    .stream_begin = op_stream_begin,
    .stream_data = op_stream_data,
};

void env_kill_now(struct env *e)
{
    if (e->state == ENV_DEAD)
        return;
    if (e->state == ENV_STARTING) {
        POOL_ASSERT(e->fp->n_starting > 0);
        e->fp->n_starting--;
    }
    e->state = ENV_DEAD;
    if (e->spawning) {
        /* Its spawn job still runs: it sees the flag and starts nothing;
         * the env is destroyed when the job's report arrives. */
        spawn_job_cancel(e->job);
    } else if (e->docker) {
        if (e->ct && !e->ct_final)
            container_kill(e->ct);
    } else {
        subprocess_kill(&e->sp);
    }
    if (e->in_idle)
        env_idle_remove(e);
    env_bury(e);
}

/* Stops an env that has no invocation (now), or marks it to stop after. */
void env_retire(struct env *e)
{
    if (e->cur) {
        e->retire = true;
        return;
    }
    env_kill_now(e);
}

/* Fails the invocation an env was serving, or the one its failed init was
 * started for, with a platform error. */
void env_fail(struct env *e, const char *etype, const char *msg, const char *status)
{
    if (e->in_grace) {
        /* The result was already in: deliver it, then stop. */
        e->in_grace = false;
        timer_disarm(e->ex, &e->grace_tm);
        e->retire = true;
        env_complete(e, e->grace_status);
    }
    if (e->cur) {
        if (!e->delivered) {
            /* Never reached the runtime: let another environment take it. */
            struct invocation *inv = e->cur;
            e->cur = NULL;
            atomic_fetch_sub(&g_pool.busy_envs, 1);
            e->ex->busy--;
            fnpool_push_front(e->fp, inv);
        } else {
            report_platform_error(e->cur, etype, msg);
            e->retire = true;
            env_complete(e, status);
        }
    } else if (e->state == ENV_STARTING && e->fp->pend_head) {
        /* Init failed: the invocation that caused the cold start gets it. */
        struct invocation *inv = fnpool_pop_pending(e->fp);
        if (e->init_failed && e->init_error_len)
            report_set_result(inv, INV_FUNCTION_ERROR, e->init_error, e->init_error_len, "application/json",
                       e->init_error_type);
        else
            report_platform_error(inv, etype, msg);
        inv->cold = true;
        /* The runtime ran (and may have died): Max Memory Used of both
         * REPORTs below (the memory cgroup keeps its peak after an exit). */
        env_read_peak(e, executor_now_ns());
        if (report_sink_enabled()) {
            env_drain_log(e);
            report_sink_start(e, inv);
            report_sink_report(e, inv->request_id, (double)(executor_now_ns() - e->spawn_ns) / 1e6, status);
        }
        if (inv->want_log) {
            env_drain_log(e);
            e->cur = inv;
            e->deliver_ns = e->spawn_ns;
            e->report_init = false;
            report_build_log(e, inv, (double)(executor_now_ns() - e->spawn_ns) / 1e6, status);
            e->cur = NULL;
        }
        report_finish(e->ex, inv);
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
    /* Killed by the memory cgroup's OOM killer: AWS's Runtime.OutOfMemory
     * (same message as the plain SIGKILL). */
    bool oom = status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
               subprocess_oom_killed(&e->sp);
    LOG_INFO("function %s env %" PRIu64 " (pid %d): %s%s", e->spec->name, e->id,
             e->sp.pid < 0 ? -e->sp.pid : e->sp.pid, msg, oom ? " (out of memory)" : "");
    env_fail(e, oom ? "Runtime.OutOfMemory" : "Runtime.ExitError", msg, "error");
    fnpool_dispatch(e->fp);
}

static void env_log_event(struct ev_handler *h, uint32_t events)
{
    (void)events;
    struct env *e = EV_CONTAINER_OF(h, struct env, log_ev);
    env_drain_log(e);
}

struct reap_job {
    struct subprocess sp;
    char tmpdir[512];
};

/* BIO_FS: wait for the killed process, remove its cgroup and scratch dir. */
static void reap_job_run(void *arg)
{
    struct reap_job *j = arg;
    subprocess_stop(&j->sp);
    rm_tree(j->tmpdir);
    free(j);
}

void env_destroy(struct env *e)
{
    struct executor *ex = e->ex;
    struct fnpool *fp = e->fp;
    POOL_ASSERT(e->state == ENV_DEAD && !e->cur && !e->in_idle && !e->spawning && fp->n_envs > 0);
    rapi_host_close(e->rapi);
    if (e->sp.pidfd >= 0)
        epoll_ctl(ex->epfd, EPOLL_CTL_DEL, e->sp.pidfd, NULL);
    if (e->sp.log_fd >= 0)
        epoll_ctl(ex->epfd, EPOLL_CTL_DEL, e->sp.log_fd, NULL);
    if (e->ct)
        container_release(e->ct);
    timer_disarm(ex, &e->deadline_tm);
    timer_disarm(ex, &e->grace_tm);
    timer_disarm(ex, &e->idle_tm);
    /* Waiting for the process and deleting files is blocking work. */
    struct reap_job *job = malloc(sizeof(*job));
    if (job) {
        job->sp = e->sp;
        memcpy(job->tmpdir, e->tmpdir, sizeof(job->tmpdir));
        bio_submit(BIO_FS, reap_job_run, job);
    } else {
        subprocess_stop(&e->sp);
        rm_tree(e->tmpdir);
    }
    if (e->prev)
        e->prev->next = e->next;
    else
        ex->envs = e->next;
    if (e->next)
        e->next->prev = e->prev;
    if (e->fp_prev)
        e->fp_prev->fp_next = e->fp_next;
    else
        fp->envs = e->fp_next;
    if (e->fp_next)
        e->fp_next->fp_prev = e->fp_prev;
    struct env **pp = &ex->by_id[e->id % EX_ENV_BUCKETS];
    while (*pp != e)
        pp = &(*pp)->id_next;
    *pp = e->id_next;
    fp->n_envs--;
    if (fp->n_envs == 0)
        fnpool_gc_queue(fp);
    atomic_fetch_sub(&g_pool.live_envs, 1);
    logbuf_free(&e->initlog);
    logbuf_free(&e->out);
    free(e->init_error);
    fnspec_unref(e->spec);
    free(e);
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
        .init_type = e->provisioned ? "provisioned-concurrency" : NULL,
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

/* ------------------------------------------------------------ spawning */

/* The blocking part of starting an environment (layer merge, scratch dir,
 * process spawn: possibly through the zygote), run on a BIO_SPAWN thread.
 * The env is not touched by the job except through fields the executor
 * leaves alone while e->spawning (spec, id, tmpdir, log_stream, rapi
 * port); the result travels back as a POOL_MSG_ENV message. */
struct spawn_job {
    struct executor *ex;
    struct env *e;
    atomic_bool cancel;    /* the env was killed meanwhile: start nothing */
    bool docker;
    int port;
    /* results */
    int rc;                /* 0, or -errno */
    bool service;          /* failure is lambdad's (not the function's) */
    char err[512];
    char opt[768];         /* merged layers, "" when none */
    struct subprocess sp;
};

static void spawn_job_cancel(struct spawn_job *j)
{
    if (j)
        atomic_store(&j->cancel, true);
}

/* The merged /opt of spec's layers, built once per deploy ID. */
static int layers_dir(const struct pool_config *cfg, const struct fn_spec *s, char *out, size_t outlen)
{
    if (!s->n_layers)
        return 0;
    snprintf(out, outlen, "%s/layers-%s", cfg->work_dir, s->deploy_id);
    int rc = layers_merge(s->layer_dirs, s->n_layers, out);
    if (rc < 0)
        LOG_ERROR("merging the layers of %s into %s: %s", s->name, out, strerror(-rc));
    return rc;
}

/* Starts the process (subprocess executor). */
static int start_process(struct spawn_job *j, const struct pool_config *cfg)
{
    const struct env *e = j->e;
    const struct fn_spec *s = e->spec;
    const char *opt = j->opt[0] ? j->opt : NULL;
    const char *err = NULL;
    char api[64];
    snprintf(api, sizeof(api), "127.0.0.1:%d", j->port);
    char **argv = subprocess_argv(s, cfg->bootstrap_dir, opt, &err);
    if (!argv) {
        snprintf(j->err, sizeof(j->err), "%s", err ? err : "cannot build the command line");
        return -EINVAL;
    }
    struct lambda_env_opts lo = {
        .runtime_api = api,
        .task_root = s->code_dir ? s->code_dir : ".",
        .opt_dir = opt,
        .endpoint_url = cfg->endpoint_url,
        .tmp_dir = e->tmpdir,
        .log_stream = e->log_stream,
        .runtime_dir = cfg->bootstrap_dir,
        .init_type = e->provisioned ? "provisioned-concurrency" : NULL,
    };
    char **envp = lambda_env_build(s, &lo);
    char cgname[64];
    snprintf(cgname, sizeof(cgname), "env-%d-%" PRIu64, (int)getpid(), e->id);
    int rc = envp ? subprocess_start(&j->sp, argv, envp, s->code_dir, cgname, s->memory_mb) : -ENOMEM;
    if (rc < 0)
        snprintf(j->err, sizeof(j->err), "cannot start %s: %s", argv[0], strerror(-rc));
    lambda_env_free(envp);
    subprocess_free_argv(argv);
    return rc;
}

static void spawn_job_run(void *arg)
{
    struct spawn_job *j = arg;
    const struct pool_config *cfg = j->ex->cfg;
    const struct fn_spec *s = j->e->spec;
    if (atomic_load(&j->cancel)) {
        j->rc = -ECANCELED;
    } else if (layers_dir(cfg, s, j->opt, sizeof(j->opt)) < 0) {
        j->rc = -EIO;
        j->service = true;
        snprintf(j->err, sizeof(j->err), "cannot prepare the function's layers");
    } else if (!j->docker && mkdir(j->e->tmpdir, 0700) < 0) {
        j->rc = -errno;
        j->service = true;
        LOG_ERROR("cannot create %s: %s", j->e->tmpdir, strerror(errno));
        snprintf(j->err, sizeof(j->err), "cannot create the environment's temp directory");
    } else if (!j->docker && !atomic_load(&j->cancel)) {
        j->rc = start_process(j, cfg);
    }
    struct pool_ctl *c = calloc(1, sizeof(*c));
    POOL_ASSERT(c != NULL); /* the env would wait for this report forever */
    c->msg_kind = POOL_MSG_ENV;
    c->env_id = j->e->id;
    c->env_event = POOL_ENV_SPAWNED;
    c->job = j;
    executor_post(j->ex, &c->qnode);
}

/* The spawn job's report, on the executor thread. */
static void env_spawned(struct env *e, struct spawn_job *j)
{
    struct executor *ex = e->ex;
    POOL_ASSERT(e->spawning && e->job == j);
    e->spawning = false;
    e->job = NULL;
    if (!e->docker && j->rc == 0) {
        e->sp = j->sp; /* destroy kills and reaps it if the env died meanwhile */
        j->sp.pid = -1;
    }
    if (e->state == ENV_DEAD) {
        env_bury(e);
        if (!e->docker && e->sp.pid > 0)
            subprocess_kill(&e->sp);
        free(j);
        return;
    }
    const char *err = j->err;
    int rc = j->rc;
    if (rc == 0 && e->docker)
        rc = env_start_container(e, j->port, j->opt[0] ? j->opt : NULL, &err);
    if (rc < 0) {
        if (j->service)
            fnpool_fail_head(e->fp, true, NULL, err);
        else {
            LOG_INFO("function %s: %s", e->spec->name, err);
            fnpool_fail_head(e->fp, false, "Runtime.InvalidEntrypoint", err);
        }
        free(j);
        env_kill_now(e);
        fnpool_dispatch(e->fp);
        return;
    }
    free(j);
    if (!e->docker) {
        struct epoll_event pe = {.events = EPOLLIN, .data.ptr = &e->pid_ev};
        epoll_ctl(ex->epfd, EPOLL_CTL_ADD, e->sp.pidfd, &pe);
    }
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = &e->log_ev};
    epoll_ctl(ex->epfd, EPOLL_CTL_ADD, e->sp.log_fd, &le);
    LOG_DEBUG("env %" PRIu64 " of %s starting (%s)", e->id, e->spec->name,
              e->docker ? "container" : "process");
    if (e->parked && e->state == ENV_STARTING)
        env_ready(e); /* it asked for its first event already */
}

/* Whether a spec runs in docker under the configured executor kind. */
static bool uses_docker(const struct fn_spec *spec)
{
    enum pool_executor_kind kind = g_pool.cfg ? g_pool.cfg->kind : POOL_EXEC_SUBPROCESS;
    if (kind == POOL_EXEC_DOCKER)
        return true;
    if (kind == POOL_EXEC_AUTO)
        return spec->n_layers > 0 || spec->force_docker ||
               (spec->package_type && strcmp(spec->package_type, "Image") == 0);
    return false;
}

/* Starts one environment for fp: the env is STARTING at once (it counts
 * against the caps), its blocking start runs as a spawn job. Returns 0, or
 * -1 after failing the head pending invocation with the reason. */
int env_spawn(struct fnpool *fp)
{
    struct executor *ex = fp->owner;
    struct fn_spec *s = fp->spec;
    const bool docker = uses_docker(s);
    if (docker && !container_available()) {
        fnpool_fail_head(fp, true, NULL,
                         "this function needs the docker executor, but the Docker engine was not "
                         "reachable when lambdad started (see its log)");
        atomic_fetch_sub(&g_pool.live_envs, 1);
        return -1;
    }
    struct env *e = calloc(1, sizeof(*e));
    struct spawn_job *j = calloc(1, sizeof(*j));
    if (!e || !j) {
        free(e);
        free(j);
        atomic_fetch_sub(&g_pool.live_envs, 1);
        return -1;
    }
    e->ex = ex;
    e->fp = fp;
    e->spec = fnspec_ref(s);
    e->docker = docker;
    e->id = ++ex->next_env_id * 64 + (uint64_t)ex->idx;
    e->sp.pid = -1;
    e->sp.pidfd = e->sp.log_fd = e->sp.cg_fd = e->sp.kill_fd = -1;
    e->pid_ev.fn = env_pid_event;
    e->log_ev.fn = env_log_event;
    timer_init(&e->deadline_tm, timers_env_deadline);
    timer_init(&e->grace_tm, timers_env_grace);
    timer_init(&e->idle_tm, timers_env_idle);
    int rc = rapi_host_open(&e->rapi, ex->epfd, docker ? container_bind_ip() : "127.0.0.1",
                            &g_rapi_ops, e);
    if (rc < 0) {
        LOG_ERROR("runtime api listener: %s", strerror(-rc));
        fnpool_fail_head(fp, true, NULL, "cannot open a Runtime API listener");
        fnspec_unref(e->spec);
        free(e);
        free(j);
        atomic_fetch_sub(&g_pool.live_envs, 1);
        return -1;
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(e->log_stream, sizeof(e->log_stream), "%04d/%02d/%02d/[%s]%016llx%016llx",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, s->version ? s->version : "$LATEST",
             (unsigned long long)rng_next(ex), (unsigned long long)rng_next(ex));
    if (!docker)
        snprintf(e->tmpdir, sizeof(e->tmpdir), "%s/env-%d-%" PRIu64, ex->cfg->work_dir,
                 (int)getpid(), e->id);
    e->spawn_ns = executor_now_ns();
    e->state = ENV_STARTING;
    /* Init may take up to 10 s (or the function timeout if longer); a
     * container also has to be created and started first. */
    int init_s = (s->timeout_s > 10 ? s->timeout_s : 10) + (docker ? 60 : 0);
    env_set_deadline(e, e->spawn_ns + (int64_t)init_s * 1000000000);
    e->next = ex->envs;
    if (ex->envs)
        ex->envs->prev = e;
    ex->envs = e;
    e->fp_next = fp->envs;
    if (fp->envs)
        fp->envs->fp_prev = e;
    fp->envs = e;
    e->id_next = ex->by_id[e->id % EX_ENV_BUCKETS];
    ex->by_id[e->id % EX_ENV_BUCKETS] = e;
    /* Started to reach the provisioned-concurrency target rather than for a
     * waiting invocation: the runtime is told so (AWS_LAMBDA_INITIALIZATION_TYPE). */
    e->provisioned = fp->n_envs < fp->provisioned && fp->n_pending <= fp->n_starting;
    fp->n_envs++;
    fp->n_starting++;
    j->ex = ex;
    j->e = e;
    j->docker = docker;
    j->port = rapi_host_port(e->rapi);
    j->sp.pid = -1;
    j->sp.pidfd = j->sp.log_fd = j->sp.cg_fd = j->sp.kill_fd = -1;
    e->spawning = true;
    e->job = j;
    bio_submit(BIO_SPAWN, spawn_job_run, j);
    return 0;
}

/* A container's helper thread reported (see container_event). */
void env_drop_event(struct pool_ctl *c)
{
    if (c->env_event == POOL_ENV_SPAWNED && c->job) {
        struct spawn_job *j = c->job;
        if (!j->docker && j->rc == 0 && j->sp.pid > 0)
            subprocess_kill(&j->sp);
        free(j);
    }
    free(c->text);
    free(c);
}

void env_container_event(struct executor *ex, struct pool_ctl *c)
{
    struct env *e = env_find(ex, c->env_id);
    if (c->env_event == POOL_ENV_SPAWNED) {
        POOL_ASSERT(e != NULL); /* a spawning env is never destroyed */
        env_spawned(e, c->job);
        return;
    }
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
        env_bury(e);
        return;
    }
    env_drain_log(e);
    char msg[640];
    if (c->env_event == CONTAINER_FAILED) {
        LOG_WARN("function %s: container failed: %s", e->spec->name, c->text ? c->text : "?");
        snprintf(msg, sizeof(msg), "%s", c->text ? c->text : "the container could not be started");
        if (e->state == ENV_STARTING && e->fp->pend_head)
            fnpool_fail_head(e->fp, true, NULL, msg);
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

json_t *env_describe(const struct env *e, int64_t t)
{
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
    json_object_set_new(o, "executor_thread", json_integer(e->ex->idx));
    json_object_set_new(o, "draining", json_boolean(e->fp->draining || e->retire));
    return o;
}
