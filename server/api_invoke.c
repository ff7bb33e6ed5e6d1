/* api_invoke: Invoke and InvokeAsync (see api_invoke.h).
 *
 * DESIGN: the civetweb worker validates the request (invocation type, log
 * type, payload JSON, client context, size limits), resolves the function on
 * the RCU read side and takes a reference to its fn_spec, then hands a
 * struct invocation to the pool and - for RequestResponse - sleeps on its
 * own futex flag until the executor calls on_done. Function
 * failures of every kind answer 200 with X-Amz-Function-Error: Unhandled,
 * never 5xx, because boto3 retries 5xx and would run the function again.
 * The invocation reuses the HTTP request id, so x-amzn-RequestId, the
 * runtime's Lambda-Runtime-Aws-Request-Id and the log lines all agree. */
#include "server/api_invoke.h"

#include <openssl/evp.h>
#include <linux/futex.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <urcu.h>

#include "pool/pool.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "server/api_eventinvoke.h"
#include "server/api_functions.h"
#include "server/eventstream.h"
#include "server/registry.h"
#include "server/validate.h"

#define CLIENT_CONTEXT_MAX 3583
#define LOG_TAIL_BYTES 4096

static size_t g_async_limit = 1048576;

static int64_t g_spin_ns;

void api_invoke_configure(size_t async_payload_limit, int spin_us)
{
    g_async_limit = async_payload_limit;
    g_spin_ns = (int64_t)spin_us * 1000;
}

/* The HTTP worker's wait for its RequestResponse invocation: a one-shot
 * futex flag. The executor pays one FUTEX_WAKE (only when the worker
 * sleeps), the worker one FUTEX_WAIT; a mutex + condition variable adds
 * futex calls whenever the woken worker collides with the signaller still
 * holding the mutex. A wake that lands after the worker has returned hits a
 * dead stack address: a spurious wake-up every futex waiter tolerates. */
enum { WAIT_PENDING = 0, WAIT_DONE = 1, WAIT_SLEEPING = 2 };

struct waiter {
    _Atomic uint32_t state;
};

static void on_done_sync(struct invocation *inv)
{
    struct waiter *w = inv->user;
    if (atomic_exchange_explicit(&w->state, WAIT_DONE, memory_order_acq_rel) == WAIT_SLEEPING)
        syscall(SYS_futex, &w->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* RequestResponse invocations whose HTTP thread is waiting (run_sync). */
static atomic_int g_waiting;

/* A lone waiter polls for its result for up to g_spin_ns (yielding the
 * CPU to anything runnable) before it sleeps. Measured on 2-vCPU VMs: a
 * FUTEX_WAKE of a thread sleeping on an idle vCPU costs the executor an
 * IPI (a VM exit), 10+ us of its CPU per invoke, and the sleeper's wake-up
 * latency; a polling waiter needs no wake at all. Only the lone waiter
 * polls: with more invocations in flight the CPUs are busy with them, the
 * executor rarely sleeps, and polling would take CPU from the runtimes. */
static void spin_for_done(struct waiter *w)
{
    if (g_spin_ns <= 0 || atomic_load_explicit(&g_waiting, memory_order_relaxed) != 1)
        return;
    int64_t until = clock_mono_ns() + g_spin_ns;
    while (atomic_load_explicit(&w->state, memory_order_acquire) == WAIT_PENDING && clock_mono_ns() < until)
        sched_yield();
}

static void wait_done(struct waiter *w)
{
    spin_for_done(w);
    uint32_t s = WAIT_PENDING;
    if (!atomic_compare_exchange_strong_explicit(&w->state, &s, WAIT_SLEEPING, memory_order_acq_rel,
                                                 memory_order_acquire))
        return; /* already done */
    while (atomic_load_explicit(&w->state, memory_order_acquire) == WAIT_SLEEPING)
        syscall(SYS_futex, &w->state, FUTEX_WAIT_PRIVATE, WAIT_SLEEPING, NULL, NULL, 0);
}

/* Submits inv and sleeps until the executor finished it. */
static void run_sync(struct invocation *inv)
{
    struct waiter w = {.state = WAIT_PENDING};
    inv->user = &w;
    inv->on_done = on_done_sync;
    atomic_fetch_add_explicit(&g_waiting, 1, memory_order_relaxed);
    pool_submit(inv);
    wait_done(&w);
    atomic_fetch_sub_explicit(&g_waiting, 1, memory_order_relaxed);
}

static void on_done_event(struct invocation *inv)
{
    api_event_deliver(inv); /* OnSuccess / OnFailure destinations */
    invocation_free(inv);
}

/* Client context: padded base64 of a JSON object, at most 3583 bytes.
 * Returns the decoded text (malloc'd) or NULL. */
static char *client_context_decode(const char *in, size_t *outlen)
{
    size_t n = strlen(in);
    unsigned char *out = NULL;
    if (n == 0 || n % 4 != 0 || n > CLIENT_CONTEXT_MAX || http_base64_decode(in, n, &out, outlen) < 0)
        return NULL;
    return (char *)out;
}

static char *b64_encode(const char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
    return out;
}

/* Validates the payload as JSON the way Lambda does (any JSON value). */
static int check_payload(struct http_req *req)
{
    if (req->body_len == 0)
        return 0;
    json_error_t jerr;
    /* jansson recurses per nesting level: refuse absurd depth before it can
     * exhaust a worker's stack (Lambda's own parser has a limit too). */
    if (http_json_too_deep(req->body, req->body_len, 512)) {
        http_send_error(req, &AWS_INVALID_REQUEST_CONTENT,
                        "Could not parse request body into json: Could not parse payload into json: "
                        "nesting depth exceeds 512");
        return -1;
    }
    json_t *j = json_loadb(req->body, req->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        http_send_error(req, &AWS_INVALID_REQUEST_CONTENT,
                        "Could not parse request body into json: Could not parse payload into json: "
                        "%s: at line %d column %d",
                        jerr.text, jerr.line, jerr.column);
        return -1;
    }
    json_decref(j);
    return 0;
}

enum inv_kind { KIND_SYNC, KIND_EVENT, KIND_DRYRUN };

/* Everything both entry points share: body, resolution, invocation. */
static struct invocation *prepare(struct http_req *req, enum inv_kind kind, bool tail)
{
    char qualifier[130];
    int ql = http_query(req, "Qualifier", qualifier, sizeof(qualifier));
    if (ql == -2) {
        http_send_error(req, &AWS_VALIDATION,
                        "1 validation error detected: Value at 'qualifier' failed to satisfy "
                        "constraint: Member must have length less than or equal to 128");
        return NULL;
    }
    if (http_read_body(req) < 0)
        return NULL;
    struct fn_name name;
    struct api_error err;
    rcu_read_lock();
    struct fn_record *rec = registry_resolve(http_param(req, 0), ql >= 0 ? qualifier : NULL, 170,
                                             req->region, req->account, &name, &err);
    /* $LATEST, a version, or an alias (its RoutingConfig picks the version
     * here); spec->version is what X-Amz-Executed-Version reports. */
    struct fn_spec *spec = rec ? registry_spec_for(rec, name.qualifier) : NULL;
    if (rec && !spec)
        registry_not_found(&name, &err);
    if (spec && rec->busy_creating && api_check_not_busy(rec, &err)) { /* still Pending */
        fnspec_unref(spec);
        spec = NULL;
    }
    /* Event invokes: the qualifier's asynchronous invocation config. */
    char *eic = spec && kind == KIND_EVENT ? api_event_config_text(rec, name.qualifier) : NULL;
    rcu_read_unlock();
    if (!spec) {
        http_send_api_error(req, &err);
        return NULL;
    }
    if (kind == KIND_EVENT && req->body_len > g_async_limit) {
        http_send_error(req, &AWS_REQUEST_ENTITY_TOO_LARGE,
                        "%zu byte payload is too large for the Event invocation type (limit %zu "
                        "bytes)",
                        req->body_len, g_async_limit);
        goto fail;
    }
    if (check_payload(req) < 0)
        goto fail;
    char *client_context = NULL;
    const char *cc = http_header(req, "X-Amz-Client-Context");
    if (cc && *cc) {
        size_t cclen = 0;
        json_t *j = NULL;
        if ((client_context = client_context_decode(cc, &cclen)) &&
            !http_json_too_deep(client_context, cclen, 64))
            j = json_loadb(client_context, cclen, 0, NULL);
        if (!j) {
            free(client_context);
            http_send_error(req, &AWS_INVALID_REQUEST_CONTENT,
                            "Client context must be a valid Base64-encoded JSON object.");
            goto fail;
        }
        json_decref(j);
    }
    if (kind == KIND_DRYRUN) {
        free(client_context);
        free(eic);
        fnspec_unref(spec);
        http_send_empty(req, 204);
        return NULL;
    }
    struct invocation *inv = invocation_new(spec);
    fnspec_unref(spec);
    if (!inv) {
        free(client_context);
        free(eic);
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "out of memory");
        return NULL;
    }
    snprintf(inv->request_id, sizeof(inv->request_id), "%s", req->request_id);
    char arn[512];
    validate_function_arn(&name, name.qualifier[0] != 0, arn, sizeof(arn));
    inv->invoked_arn = strdup(arn);
    if (req->body_len) {
        inv->payload = req->body; /* take the body: no copy on the hot path */
        inv->payload_len = req->body_len;
        req->body = NULL;
        req->body_len = 0; /* body_read stays true: nothing left to drain */
    } else {
        inv->payload = strdup("{}");
        inv->payload_len = 2;
    }
    inv->client_context = client_context;
    const char *trace = http_header(req, "X-Amzn-Trace-Id");
    if (trace && *trace)
        inv->trace_id = strdup(trace);
    inv->is_event = kind == KIND_EVENT;
    api_event_configure(inv, eic); /* NULL unless an Event with a config */
    inv->want_log = tail && kind == KIND_SYNC;
    return inv;
fail:
    free(eic);
    fnspec_unref(spec);
    return NULL;
}

static void respond(struct http_req *req, struct invocation *inv)
{
    char headers[8192];
    size_t hn = 0;
    const char *ver = inv->fn->version ? inv->fn->version : "$LATEST";
    switch (inv->outcome) {
    case INV_THROTTLED:
        http_send_error_ex(req, &AWS_TOO_MANY_REQUESTS, "Retry-After: 1\r\n",
                           "\"Reason\":\"ReservedFunctionConcurrentInvocationLimitExceeded\"",
                           inv->error_message ? inv->error_message : "Rate Exceeded.");
        return;
    case INV_SERVICE_ERROR:
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL,
                        inv->error_message ? inv->error_message : "invocation failed");
        return;
    case INV_FUNCTION_ERROR:
        hn += (size_t)snprintf(headers + hn, sizeof(headers) - hn, "X-Amz-Function-Error: Unhandled\r\n");
        break;
    case INV_OK:
        break;
    }
    hn += (size_t)snprintf(headers + hn, sizeof(headers) - hn, "X-Amz-Executed-Version: %s\r\n", ver);
    if (inv->want_log && inv->log) {
        size_t off = inv->log_len > LOG_TAIL_BYTES ? inv->log_len - LOG_TAIL_BYTES : 0;
        char *b64 = b64_encode(inv->log + off, inv->log_len - off);
        if (b64) {
            hn += (size_t)snprintf(headers + hn, sizeof(headers) - hn, "X-Amz-Log-Result: %s\r\n", b64);
            free(b64);
        }
    }
    http_send(req, 200, inv->content_type[0] ? inv->content_type : "application/json", headers,
              inv->result ? inv->result : "", inv->result_len);
}

static int parse_headers(struct http_req *req, enum inv_kind *kind, bool *tail)
{
    const char *t = http_header(req, "X-Amz-Invocation-Type");
    if (!t || strcmp(t, "RequestResponse") == 0)
        *kind = KIND_SYNC;
    else if (strcmp(t, "Event") == 0)
        *kind = KIND_EVENT;
    else if (strcmp(t, "DryRun") == 0)
        *kind = KIND_DRYRUN;
    else {
        http_send_error(req, &AWS_VALIDATION,
                        "1 validation error detected: Value '%.64s' at 'invocationType' failed to "
                        "satisfy constraint: Member must satisfy enum value set: [Event, "
                        "RequestResponse, DryRun]",
                        t);
        return -1;
    }
    const char *l = http_header(req, "X-Amz-Log-Type");
    if (l && strcmp(l, "None") != 0 && strcmp(l, "Tail") != 0) {
        http_send_error(req, &AWS_VALIDATION,
                        "1 validation error detected: Value '%.64s' at 'logType' failed to satisfy "
                        "constraint: Member must satisfy enum value set: [Tail, None]",
                        l);
        return -1;
    }
    *tail = l && strcmp(l, "Tail") == 0;
    return 0;
}

static void submit_event(struct http_req *req, struct invocation *inv, bool legacy)
{
    inv->on_done = on_done_event;
    pool_submit(inv);
    if (legacy)
        http_send_json(req, 202, "{\"Status\":202}", 14);
    else
        http_send_empty(req, 202);
}

void api_invoke(struct http_req *req)
{
    enum inv_kind kind;
    bool tail;
    if (parse_headers(req, &kind, &tail) < 0)
        return;
    struct invocation *inv = prepare(req, kind, tail);
    if (!inv)
        return;
    if (kind == KIND_EVENT) {
        submit_event(req, inv, false);
        return;
    }
    run_sync(inv);
    respond(req, inv);
    invocation_free(inv);
}

void api_invoke_async(struct http_req *req)
{
    struct invocation *inv = prepare(req, KIND_EVENT, false);
    if (inv)
        submit_event(req, inv, true);
}

/* --- InvokeWithResponseStream ------------------------------------------ */

#define STREAM_CHUNK (1u << 20)

/* Writes one event message as the next piece of the streamed response;
 * -1 when the client is gone (or out of memory). */
static int stream_event(struct http_req *req, const char *type, const char *ct, const void *data,
                        size_t dlen)
{
    unsigned char *m;
    size_t mlen;
    if (eventstream_encode(type, ct, data, dlen, &m, &mlen))
        return -1;
    int rc = http_stream_write(req, m, mlen);
    free(m);
    return rc;
}

/* PayloadChunk events for len bytes, at most 1 MB each. */
static int stream_payload(struct http_req *req, const char *data, size_t len)
{
    for (size_t off = 0; off < len; off += STREAM_CHUNK) {
        size_t n = len - off < STREAM_CHUNK ? len - off : STREAM_CHUNK;
        if (stream_event(req, "PayloadChunk", "application/octet-stream", data + off, n) < 0)
            return -1;
    }
    return 0;
}

/* The InvokeComplete payload of a finished invocation: {} on success,
 * ErrorCode/ErrorDetails for a failure, LogResult for LogType Tail. */
static char *invoke_complete_json(const struct invocation *inv)
{
    json_t *done = json_object();
    if (inv->outcome == INV_FUNCTION_ERROR) {
        json_object_set_new(done, "ErrorCode", json_string("Unhandled"));
        json_object_set_new(done, "ErrorDetails", json_stringn(inv->result ? inv->result : "", inv->result_len));
    } else if (inv->outcome != INV_OK) { /* a lambdad fault after the stream began */
        json_object_set_new(done, "ErrorCode", json_string("ServiceException"));
        json_object_set_new(done, "ErrorDetails",
                            json_string(inv->error_message ? inv->error_message : "invocation failed"));
    }
    if (inv->want_log && inv->log) {
        size_t off = inv->log_len > LOG_TAIL_BYTES ? inv->log_len - LOG_TAIL_BYTES : 0;
        char *b64 = b64_encode(inv->log + off, inv->log_len - off);
        if (b64)
            json_object_set_new(done, "LogResult", json_string(b64));
        free(b64);
    }
    char *text = json_dumps(done, JSON_COMPACT);
    json_decref(done);
    return text;
}

static void stream_headers(const struct invocation *inv, char *out, size_t outlen)
{
    snprintf(out, outlen, "X-Amz-Executed-Version: %s\r\n", inv->fn->version ? inv->fn->version : "$LATEST");
}

/* InvokeComplete, then the end of the body. */
static int stream_finish(struct http_req *req, const struct invocation *inv)
{
    char *text = invoke_complete_json(inv);
    int rc = text ? stream_event(req, "InvokeComplete", "application/json", text, strlen(text)) : -1;
    free(text);
    return rc < 0 ? rc : http_end_stream(req);
}

/* The event stream of an invocation whose response was not streamed (a
 * buffered handler, or a failure before any byte): its whole result as
 * PayloadChunk events (1 MB at a time; none for a function error), then
 * InvokeComplete. Errors before the stream starts are plain JSON. */
static void respond_stream(struct http_req *req, struct invocation *inv)
{
    char headers[256];
    if (inv->outcome == INV_THROTTLED || inv->outcome == INV_SERVICE_ERROR) {
        respond(req, inv);
        return;
    }
    stream_headers(inv, headers, sizeof(headers));
    if (http_begin_stream(req, 200, "application/vnd.amazon.eventstream", headers) < 0)
        return;
    if (inv->outcome == INV_OK && stream_payload(req, inv->result, inv->result_len) < 0)
        return;
    stream_finish(req, inv);
}

static void on_done_stream(struct invocation *inv)
{
    invstream_close(inv->stream); /* the last touch: the worker may free inv now */
}

/* Relays a streaming invocation: once the runtime starts a streamed
 * response the 200 goes out, every piece it writes follows as a
 * PayloadChunk event as soon as the worker takes it from the queue, and
 * InvokeComplete (with the error from the trailers or a timeout) ends it.
 * A client that goes away abandons the stream: the function runs on to its
 * end (or timeout) with its output discarded, as its environment is then
 * reused; this worker still waits for that end before it frees inv. */
static void relay_stream(struct http_req *req, struct invocation *inv)
{
    struct invstream *s = inv->stream;
    bool begun = false, gone = false;
    char ctype[96], headers[256], *data;
    size_t len;
    int ev;
    while ((ev = invstream_next(s, &data, &len, ctype, sizeof(ctype))) != INVSTREAM_END) {
        if (ev == INVSTREAM_BEGUN) {
            begun = true;
            stream_headers(inv, headers, sizeof(headers));
            gone = http_begin_stream(req, 200, "application/vnd.amazon.eventstream", headers) < 0;
        } else {
            gone = gone || stream_payload(req, data, len) < 0;
            free(data);
        }
        if (gone)
            invstream_abandon(s); /* idempotent */
    }
    if (!begun)
        respond_stream(req, inv);
    else if (!gone)
        stream_finish(req, inv);
}

void api_invoke_stream(struct http_req *req)
{
    const char *t = http_header(req, "X-Amz-Invocation-Type");
    if (t && strcmp(t, "RequestResponse") && strcmp(t, "DryRun")) {
        http_send_error(req, &AWS_VALIDATION,
                        "1 validation error detected: Value '%.64s' at 'invocationType' failed to "
                        "satisfy constraint: Member must satisfy enum value set: [RequestResponse, DryRun]",
                        t);
        return;
    }
    const char *l = http_header(req, "X-Amz-Log-Type");
    if (l && strcmp(l, "None") && strcmp(l, "Tail")) {
        http_send_error(req, &AWS_VALIDATION,
                        "1 validation error detected: Value '%.64s' at 'logType' failed to satisfy "
                        "constraint: Member must satisfy enum value set: [Tail, None]",
                        l);
        return;
    }
    bool dry = t && !strcmp(t, "DryRun");
    struct invocation *inv = prepare(req, dry ? KIND_DRYRUN : KIND_SYNC, l && !strcmp(l, "Tail"));
    if (!inv)
        return;
    inv->stream = invstream_new();
    if (inv->stream) {
        inv->on_done = on_done_stream;
        pool_submit(inv);
        relay_stream(req, inv);
    } else { /* out of memory: relay it whole at the end */
        run_sync(inv);
        respond_stream(req, inv);
    }
    invocation_free(inv);
}
