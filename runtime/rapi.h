/* rapi: the Lambda Runtime API (2018-06-01) host of one execution
 * environment.
 *
 * DESIGN: every environment gets its own TCP listener; its "ip:port" goes
 * into AWS_LAMBDA_RUNTIME_API, so the listener itself identifies the
 * environment and no request needs routing by id. The listener and its
 * connections are non-blocking and registered in the epoll set of the
 * executor thread that owns the environment: a runtime waiting in
 * GET /invocation/next costs a parked connection, never a thread. Requests
 * are parsed incrementally (runtime/httpparse.h: chunked bodies, trailers,
 * 1 MiB header lines) and handed to the owner's callbacks; replies are
 * written with one writev, the remainder buffered until EPOLLOUT. Each
 * host holds at most RAPI_MAX_CONNS connections; on EMFILE the pending
 * connection is shed through a reserve descriptor so the loop never spins.
 *
 * Private channel: a loopback listener also opens an abstract AF_UNIX
 * listener named "\0lambdad-rapi/<ip>:<port>" (RAPI_UNIX_PREFIX + the
 * AWS_LAMBDA_RUNTIME_API value) serving the very same HTTP protocol. The
 * bundled bootstraps try it first and fall back to TCP; every other client
 * keeps using TCP unchanged. Local stream sockets skip the TCP/IP stack and
 * netfilter on both sides of every invocation.
 *
 * Pipes: on that AF_UNIX connection (only there), GET RAPI_PIPES_PATH is
 * answered "200" with two descriptors attached (SCM_RIGHTS): the read end
 * of an events pipe and the write end of a requests pipe. The connection
 * then continues, same HTTP, over the pipes, and the socket is closed. A
 * pipe write copies into a page the pipe keeps; an AF_UNIX write allocates
 * and memcg-charges a socket buffer that the reader frees, and wakes
 * through the socket's wait queue: measured on a 2-vCPU VM, a 400-byte
 * ping-pong between processes on different CPUs cost ~7.8 us of CPU per
 * side per round trip over AF_UNIX and ~4.8 us over pipes (23 against 15
 * us round trip). lambdad's pipe ends are non-blocking and both in epoll
 * from the upgrade on (the events pipe asks for EPOLLOUT only while output
 * waits for room: an event bigger than the pipe); a 500 (pipes or epoll
 * refused) leaves the connection on the socket. Over TCP the path is 404.
 *
 * Marshal events: an upgrade request carrying "Lambdad-Events: marshal" is
 * answered with that header too, and from then on each event (the answer
 * to GET /next) goes out as one frame instead of an HTTP response: a zero
 * byte, the length of the rest (4 bytes, little-endian), then a Python
 * marshal (format 4) 9-tuple (request id, deadline ms, invoked function
 * ARN, trace id or None, client context or None, Cognito identity or None,
 * tenant id (None), content type ("application/json"), payload bytes); the
 * strings are the header values' bytes read as Latin-1, as a client
 * reading the HTTP form gets them. Every other answer stays
 * HTTP (a status line starts with "H", never a zero byte). The bundled
 * Python bootstrap reads an event with one marshal.loads instead of parsing
 * header lines: a third of its CPU per warm invoke was that parse.
 *
 * Batching: the requests of one read are answered in one write at the end
 * of the batch. When a runtime pipelines GET /next behind its /response (the
 * bundled bootstraps do), the 202 is held until the next event (or a status)
 * is sent on that connection, so both go out in one writev and the runtime
 * wakes once per invocation. A steady-state reply allocates nothing: the
 * connection's output buffer keeps its capacity.
 *
 * Streamed responses (Lambda-Runtime-Function-Response-Mode: streaming):
 * the owner may claim the body of such a /response when its headers
 * arrive and then receives the chunk data as it is read (see
 * stream_begin). Backpressure: when the owner's consumer is full, the
 * connection stops being read (no EPOLLIN interest; the runtime blocks in
 * its write once the socket buffers fill) until the owner calls
 * rapi_conn_resume. A peer that hangs up while paused is drained anyway.
 *
 * Thread rules: everything here runs on the owning executor thread, whose
 * loop calls rapi_reap after each epoll batch: a connection closed during
 * a batch is freed only then, as an event of it may still be due in the
 * same batch (it is ignored). The host itself is not deferred: close it
 * between batches only (lambdad's environments are destroyed after the
 * batch that killed them). */
#ifndef LAMBDAD_RUNTIME_RAPI_H
#define LAMBDAD_RUNTIME_RAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/httpparse.h"

#define RAPI_MAX_RESPONSE 6291556 /* 6 MiB + 100 bytes, as the RIE */
/* A streamed response forwarded as it arrives (stream_begin): AWS's
 * current limit for response streaming, 200 MB. */
#define RAPI_MAX_STREAMED_RESPONSE (200ull * 1024 * 1024)
/* Open connections per environment: more are closed as soon as accepted
 * (a runtime uses one or two; a handler opening thousands must not exhaust
 * lambdad's descriptors). */
#define RAPI_MAX_CONNS 16
#define RAPI_UNIX_PREFIX "lambdad-rapi/" /* abstract socket name prefix */
#define RAPI_PIPES_PATH "/_lambdad/rapi-pipes" /* the pipe upgrade (above) */
#define RAPI_EVENTS_HEADER "Lambdad-Events"      /* asks for marshal events (above) */
#define RAPI_EVENTS_MARSHAL "marshal"

struct rapi_host;
struct rapi_conn;

enum rapi_op { RAPI_RESPONSE, RAPI_ERROR };

struct rapi_ops {
    /* GET /runtime/invocation/next arrived on conn. The host keeps the
     * connection parked until rapi_send_next, rapi_send_status or close.
     * Return 0, or an HTTP status to answer at once (403). */
    int (*next)(void *user, struct rapi_conn *conn);
    /* POST /runtime/invocation/{id}/response or /error. req->body_too_large
     * is set when the body exceeded RAPI_MAX_RESPONSE. Returns the HTTP
     * status to answer: 202, 400 (unknown id), 403 (state) or 413. */
    int (*result)(void *user, enum rapi_op op, const char *request_id, const struct http_req *req);
    /* POST /runtime/init/error. Returns 202 or 403. */
    int (*init_error)(void *user, const struct http_req *req);
    /* conn is about to be freed (peer closed, error, or host closing). */
    void (*conn_closed)(void *user, struct rapi_conn *conn);
    /* Optional. The headers of POST /runtime/invocation/{id}/response with
     * Lambda-Runtime-Function-Response-Mode: streaming arrived on conn.
     * Return true to receive the body through stream_data as it arrives
     * (not stored, not limited by RAPI_MAX_RESPONSE); result is then called
     * at its end with req->body_streamed set, the trailers in req's
     * headers and an empty body. */
    bool (*stream_begin)(void *user, struct rapi_conn *conn, const char *request_id,
                         const struct http_req *req);
    /* The next len bytes of a claimed body. Returns 0, or RAPI_STREAM_PAUSE
     * when the consumer is full: the bytes are taken, but the host stops
     * reading conn after the current read until rapi_conn_resume. */
    int (*stream_data)(void *user, struct rapi_conn *conn, const char *data, size_t len);
};

#define RAPI_STREAM_PAUSE 1

/* One event handed to a runtime by GET /next. */
struct rapi_event {
    const char *request_id;
    int64_t deadline_ms;      /* Unix epoch milliseconds */
    const char *function_arn; /* as invoked, with qualifier */
    const char *trace_id;     /* may be NULL */
    const char *client_context;   /* decoded JSON text or NULL */
    const char *cognito_identity; /* JSON text or NULL */
    const char *payload;
    size_t payload_len;
};

/* Opens a listener on bind_ip, port chosen by the kernel, registered in
 * epfd. ops/user receive the requests. Returns 0 or -errno. */
int rapi_host_open(struct rapi_host **out, int epfd, const char *bind_ip, const struct rapi_ops *ops,
                   void *user);

/* The listener's port. */
int rapi_host_port(const struct rapi_host *h);

/* Closes the listener and every connection (conn_closed is NOT called). */
void rapi_host_close(struct rapi_host *h);

/* Answers a parked GET /next with an event. Returns 0 or -errno (the
 * connection is closed on error). */
int rapi_send_next(struct rapi_conn *c, const struct rapi_event *ev);

/* Answers a parked request with a status and the Runtime API's canonical
 * JSON body for it. */
void rapi_send_status(struct rapi_conn *c, int status);

/* Frees the connections this thread closed since the last call. Call it
 * between epoll batches, never from a handler. */
void rapi_reap(void);

/* Reads conn again after stream_data asked for a pause. No-op when it is
 * not paused. */
void rapi_conn_resume(struct rapi_conn *c);

#endif
