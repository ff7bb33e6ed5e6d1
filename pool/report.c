/* report: results, function logs and START/END/REPORT lines of invocations
 * (see report.h). */
#include "pool/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool/timers.h"
#include "runtime/log.h"

#define LOG_KEEP (64 * 1024) /* bytes of function output kept per invocation */

void logbuf_append(struct logbuf *b, const char *data, size_t len)
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

void logbuf_reset(struct logbuf *b)
{
    b->len = 0;
    b->dropped = 0;
}

void logbuf_free(struct logbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void report_set_result(struct invocation *inv, enum inv_outcome outcome, const char *body,
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
void report_platform_error(struct invocation *inv, const char *etype, const char *msg)
{
    json_t *o = json_object();
    char text[1024];
    snprintf(text, sizeof(text), "RequestId: %s Error: %s", inv->request_id, msg);
    json_object_set_new(o, "errorType", json_string(etype));
    json_object_set_new(o, "errorMessage", json_string(text));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    report_set_result(inv, INV_FUNCTION_ERROR, s ? s : "{}", s ? strlen(s) : 2, "application/json", etype);
    free(s);
}

/* Hands a finished invocation back (or re-queues an Event retry). */
void report_finish(struct executor *ex, struct invocation *inv)
{
    atomic_fetch_add(&g_pool.invocations, 1);
    if (inv->is_event && inv->outcome == INV_FUNCTION_ERROR && inv->attempt < inv->max_retries &&
        inv->attempt < 2 && !ex->stopping) {
        /* MaximumEventAgeInSeconds: no retry that would start too late. */
        int delay = ex->cfg->retry_delay_ms[inv->attempt];
        int64_t age_at_retry = executor_now_ns() + (int64_t)delay * 1000000 - inv->submit_ns;
        if (age_at_retry <= (int64_t)inv->max_event_age_s * 1000000000) {
            timers_add_retry(ex, inv);
            return;
        }
        inv->age_exceeded = true;
    }
    if (inv->is_event)
        LOG_INFO("async invocation %s of %s finished: %s", inv->request_id, inv->fn->name,
                 inv->outcome == INV_OK ? "success" : "error");
    inv->on_done(inv);
}

/* Fails an invocation that never reached an environment. */
void report_fail_service(struct executor *ex, struct invocation *inv, const char *msg)
{
    inv->outcome = INV_SERVICE_ERROR;
    free(inv->error_message);
    inv->error_message = strdup(msg);
    report_finish(ex, inv);
}

static pool_log_sink_fn g_log_sink;
static void *g_log_sink_user;

void report_set_sink(pool_log_sink_fn fn, void *user)
{
    g_log_sink = fn;
    g_log_sink_user = user;
}

bool report_sink_enabled(void)
{
    return g_log_sink != NULL;
}

static long long billed_ms(double dur_ms)
{
    long long billed = (long long)dur_ms + ((double)(long long)dur_ms < dur_ms ? 1 : 0);
    return billed < 1 ? 1 : billed;
}

static void sink_emit(struct env *e, struct pool_log_rec *rec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rec->fn = e->spec;
    rec->stream = e->log_stream;
    rec->env_id = e->id;
    rec->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    rec->output_lags = e->docker;
    g_log_sink(rec, g_log_sink_user);
}

void report_output(struct env *e, const char *data, size_t len)
{
    bool inv = e->cur && e->delivered;
    logbuf_append(inv ? &e->out : &e->initlog, data, len);
    if (!g_log_sink)
        return;
    struct pool_log_rec rec = {.kind = POOL_LOG_OUTPUT, .data = data, .len = len,
                               .request_id = inv ? e->cur->request_id : NULL};
    sink_emit(e, &rec);
}

void report_sink_start(struct env *e, struct invocation *inv)
{
    if (!g_log_sink)
        return;
    struct pool_log_rec rec = {.kind = POOL_LOG_START, .request_id = inv->request_id};
    sink_emit(e, &rec);
}

void report_sink_report(struct env *e, const char *request_id, double dur_ms, const char *status)
{
    if (!g_log_sink)
        return;
    struct pool_log_rec rec = {
        .kind = POOL_LOG_REPORT, .request_id = request_id, .duration_ms = dur_ms,
        .billed_ms = billed_ms(dur_ms), .memory_mb = e->spec->memory_mb, .max_memory_mb = e->peak_mb,
        .init_ms = e->report_init ? e->init_ms : 0, .status = status,
    };
    sink_emit(e, &rec);
}

void report_build_log(struct env *e, struct invocation *inv, double dur_ms, const char *status)
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
