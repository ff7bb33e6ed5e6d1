/* rapi: per-environment Lambda Runtime API host (see rapi.h).
 *
 * Connection life: accept -> read/parse -> route -> reply (or park on
 * GET /next) -> keep-alive. Replies go out with writev; what the socket
 * does not take is copied to conn->out and flushed on EPOLLOUT. Callbacks
 * must not close the host: environments are destroyed by their owner after
 * the event that killed them has been handled. */
#include "runtime/rapi.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/evloop.h"
#include "runtime/fsutil.h"
#include "runtime/log.h"

#define RAPI_MAX_HEADERS (2u * 1024 * 1024)
#define RAPI_PREFIX "/2018-06-01"

/* File descriptor kept in reserve per executor thread: when accept4 fails
 * with EMFILE/ENFILE the pending connection would keep the listener
 * readable and the loop spinning; closing the reserve lets us accept it
 * and close it at once (the libev/nginx trick), then re-open the reserve. */
static __thread int t_reserve_fd = -1;
static __thread time_t t_emfile_logged;
/* Connections closed on this thread, freed by rapi_reap (rapi.h). */
static __thread struct rapi_conn *t_limbo;

struct rapi_conn {
    struct ev_handler ev;     /* fd's events */
    struct ev_handler wev;    /* a pipe conn's wfd events (pipe_wevent) */
    int fd;                   /* what is read (and registered in epoll) */
    int wfd;                  /* what is written: fd, or the events pipe */
    struct rapi_host *host;
    struct http_parser *parser;
    char *out;                /* pending output; capacity kept across replies */
    size_t out_len, out_off, out_cap;
    bool parked;
    bool close_after_write;
    bool want_out;
    bool corked;              /* inside conn_read: replies are only appended */
    bool held;                /* out holds the reply to a /response or /error
                                 that was pipelined before a parked GET /next */
    bool streaming;           /* the request being parsed has a claimed body */
    bool pause_wanted;        /* stream_data asked to stop reading */
    bool rd_paused;           /* not reading (no EPOLLIN) until rapi_conn_resume */
    bool is_unix;             /* accepted on the private AF_UNIX listener */
    bool marshal_events;      /* events go out as marshal frames (rapi.h) */
    bool dead;                /* closed: in t_limbo until rapi_reap */
    struct rapi_conn *prev, *next;
};

struct rapi_host {
    struct ev_handler ev;
    struct ev_handler uev; /* the private AF_UNIX listener (see rapi.h) */
    int fd;
    int ufd;               /* -1: none */
    int epfd;
    int port;
    const struct rapi_ops *ops;
    void *user;
    struct rapi_conn *conns;
    int n_conns;
};

static void conn_free(struct rapi_conn *c, bool notify)
{
    if (c->dead)
        return;
    /* An event of c may still be due in the current epoll batch (a pipe
     * conn has two descriptors; a socket conn can be closed by another
     * handler of the batch, e.g. a failed rapi_send_next): c stays
     * allocated, marked dead, until the loop calls rapi_reap. Dead first:
     * a conn_closed callback cannot close it twice. */
    c->dead = true;
    struct rapi_host *h = c->host;
    if (notify && h->ops->conn_closed)
        h->ops->conn_closed(h->user, c);
    if (c->held && c->out_off < c->out_len) {
        /* Best effort: the runtime should still see its 202 before EOF. */
        ssize_t w = write(c->wfd, c->out + c->out_off, c->out_len - c->out_off);
        (void)w;
    }
    epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->wfd != c->fd) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->wfd, NULL);
        close(c->wfd);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->n_conns--;
    httpparse_free(c->parser);
    c->parser = NULL;
    free(c->out);
    c->out = NULL;
    c->next = t_limbo;
    t_limbo = c;
}

void rapi_reap(void)
{
    while (t_limbo) {
        struct rapi_conn *c = t_limbo;
        t_limbo = c->next;
        free(c);
    }
}

/* The read side's epoll interest (and EPOLLOUT, for a socket conn). */
static void conn_update_events(struct rapi_conn *c)
{
    struct epoll_event ee = {.events = (c->rd_paused ? 0 : EPOLLIN | EPOLLRDHUP) |
                                       (c->want_out && c->wfd == c->fd ? EPOLLOUT : 0),
                             .data.ptr = &c->ev};
    epoll_ctl(c->host->epfd, EPOLL_CTL_MOD, c->fd, &ee);
}

static void conn_set_out_interest(struct rapi_conn *c, bool want)
{
    if (c->want_out == want)
        return;
    c->want_out = want;
    if (c->wfd == c->fd) {
        conn_update_events(c);
        return;
    }
    /* A pipe conn: EPOLLOUT is the events pipe's, in epoll since the
     * upgrade with no events (EPOLLERR is reported all the same). */
    struct epoll_event we = {.events = want ? EPOLLOUT : 0, .data.ptr = &c->wev};
    epoll_ctl(c->host->epfd, EPOLL_CTL_MOD, c->wfd, &we);
}

void rapi_conn_resume(struct rapi_conn *c)
{
    c->pause_wanted = false;
    if (!c->rd_paused)
        return;
    c->rd_paused = false;
    conn_update_events(c); /* level-triggered: bytes already waiting are reported */
    LOG_DEBUG("runtime api port %d: streamed response resumed", c->host->port);
}

/* Appends iov[] (skipping its first skip bytes) to c->out. The buffer keeps
 * its capacity (up to 64 KiB) so steady-state replies allocate nothing. */
static int conn_append(struct rapi_conn *c, const struct iovec *iov, int n, size_t skip)
{
    size_t add = 0;
    for (int i = 0; i < n; i++)
        add += iov[i].iov_len;
    add -= skip;
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + add > c->out_cap) {
        size_t pending = c->out_len - c->out_off;
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < pending + add)
            cap *= 2;
        char *buf = malloc(cap);
        if (!buf)
            return -ENOMEM;
        if (pending)
            memcpy(buf, c->out + c->out_off, pending);
        free(c->out);
        c->out = buf;
        c->out_cap = cap;
        c->out_len = pending;
        c->out_off = 0;
    }
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(c->out + c->out_len, (char *)iov[i].iov_base + skip, len - skip);
        c->out_len += len - skip;
        skip = 0;
    }
    return 0;
}

/* Drops a large idle out buffer; small ones are kept for the next reply. */
static void conn_out_reset(struct rapi_conn *c)
{
    c->out_len = c->out_off = 0;
    if (c->out_cap > 65536) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
}

/* Writes what is pending in c->out followed by iov in one writev, buffers
 * what the socket does not take and asks for EPOLLOUT. Inside conn_read
 * (corked) it only appends: the batch is written once at its end. Returns 0
 * or -errno (conn still alive; caller decides). */
static int conn_writev(struct rapi_conn *c, struct iovec *iov, int n)
{
    if (c->corked || c->want_out)
        return conn_append(c, iov, n, 0);
    struct iovec v[4];
    int k = 0;
    size_t pending = c->out_len - c->out_off, total = pending;
    if (pending)
        v[k++] = (struct iovec){c->out + c->out_off, pending};
    for (int i = 0; i < n && k < 4; i++) {
        v[k++] = iov[i];
        total += iov[i].iov_len;
    }
    c->held = false;
    ssize_t w;
    do
        w = writev(c->wfd, v, k);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        w = 0;
    }
    if ((size_t)w == total) {
        conn_out_reset(c);
        return 0;
    }
    if ((size_t)w >= pending) {
        conn_out_reset(c);
        if (conn_append(c, iov, n, (size_t)w - pending) < 0)
            return -ENOMEM;
    } else {
        c->out_off += (size_t)w;
        if (conn_append(c, iov, n, 0) < 0)
            return -ENOMEM;
    }
    conn_set_out_interest(c, true);
    return 0;
}

/* Writes c->out. Returns false when c was freed (write error, or
 * Connection: close after the last byte). */
static bool conn_flush(struct rapi_conn *c)
{
    c->held = false;
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->wfd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_set_out_interest(c, true);
                return true;
            }
            conn_free(c, true);
            return false;
        }
        c->out_off += (size_t)w;
    }
    conn_out_reset(c);
    conn_set_out_interest(c, false);
    if (c->close_after_write) {
        conn_free(c, true);
        return false;
    }
    return true;
}

/* End of one read's batch of requests: writes the replies in one go.
 * When the batch ended in a parked GET /next (the bundled bootstraps
 * pipeline it behind /response), the reply to /response is held and goes
 * out in the same writev as the next event: one wake-up and one read less
 * for the runtime per invocation. Returns false when c was freed. */
static bool conn_batch_end(struct rapi_conn *c)
{
    if (c->out_off == c->out_len || c->want_out)
        return true;
    if (c->parked && !c->close_after_write) {
        c->held = true;
        return true;
    }
    return conn_flush(c);
}

static const char *status_body(int status, const char **reason)
{
    switch (status) {
    case 200:
        *reason = "OK";
        return "{}";
    case 202:
        *reason = "Accepted";
        return "{\"status\":\"OK\"}";
    case 400:
        *reason = "Bad Request";
        return "{\"errorMessage\":\"Invalid request ID\",\"errorType\":\"InvalidRequestID\"}";
    case 403:
        *reason = "Forbidden";
        return "{\"errorMessage\":\"State transition failed for runtime: the environment is not "
               "in a state that allows this call\",\"errorType\":\"InvalidStateTransition\"}";
    case 404:
        *reason = "Not Found";
        return "{\"errorMessage\":\"Unknown Runtime API path\",\"errorType\":\"NotFound\"}";
    case 413:
        *reason = "Payload Too Large";
        return "{\"errorMessage\":\"Exceeded maximum allowed payload size (6291556 "
               "bytes).\",\"errorType\":\"RequestEntityTooLarge\"}";
    case 500:
        *reason = "Internal Server Error";
        return "{\"errorMessage\":\"Internal error\",\"errorType\":\"ServiceException\"}";
    case 431:
        *reason = "Request Header Fields Too Large";
        return "{\"errorMessage\":\"Request headers too large\",\"errorType\":\"BadRequest\"}";
    default:
        *reason = "Bad Request";
        return "{\"errorMessage\":\"Malformed request\",\"errorType\":\"BadRequest\"}";
    }
}

void rapi_send_status(struct rapi_conn *c, int status)
{
    const char *reason;
    const char *body = status_body(status, &reason);
    char head[256];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                     status, reason, blen, c->close_after_write ? "Connection: close\r\n" : "");
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, blen}};
    c->parked = false;
    if (conn_writev(c, iov, 2) < 0 || (c->close_after_write && c->out_len == c->out_off))
        conn_free(c, true);
}

/* Python marshal writers (format version 4, CPython 3.4 and later) for
 * the marshal events frame (rapi.h, "Marshal events"). */
static char *m_u32(char *p, uint32_t v)
{
    p[0] = (char)(v & 0xFF);
    p[1] = (char)((v >> 8) & 0xFF);
    p[2] = (char)((v >> 16) & 0xFF);
    p[3] = (char)(v >> 24);
    return p + 4;
}

/* NULL as None; else a str of s's bytes read as Latin-1 (what the HTTP
 * form's header values are to a client decoding them as Latin-1), written
 * as UTF-8: at most 5 + 2 * strlen(s) bytes. */
static char *m_str(char *p, const char *s)
{
    if (!s) {
        *p++ = 'N';
        return p;
    }
    *p++ = 'u';
    char *len_at = p;
    p += 4;
    char *start = p;
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q < 0x80) {
            *p++ = (char)*q;
        } else {
            *p++ = (char)(0xC0 | (*q >> 6));
            *p++ = (char)(0x80 | (*q & 0x3F));
        }
    }
    m_u32(len_at, (uint32_t)(p - start));
    return p;
}

/* An int: 'i' (32-bit) or 'l' (15-bit digits, least significant first,
 * the count negative for a negative value): at most 5 + 2 * 5 bytes. */
static char *m_int(char *p, int64_t v)
{
    if (v >= INT32_MIN && v <= INT32_MAX) {
        *p++ = 'i';
        return m_u32(p, (uint32_t)(int32_t)v);
    }
    uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    *p++ = 'l';
    char *n_at = p;
    p += 4;
    int32_t n = 0;
    for (; a; a >>= 15, n++) {
        *p++ = (char)(a & 0xFF);
        *p++ = (char)((a >> 8) & 0x7F);
    }
    m_u32(n_at, (uint32_t)(v < 0 ? -n : n));
    return p;
}

static size_t str_cap(const char *s)
{
    return s ? 5 + 2 * strlen(s) : 1;
}

#define JSON_TYPE "application/json"

/* A buffer of cap bytes for an event's head: stackbuf when it fits.
 * NULL (and c closed) when malloc fails. */
static char *event_head(struct rapi_conn *c, size_t cap, char *stackbuf, size_t stack_cap)
{
    char *head = cap <= stack_cap ? stackbuf : malloc(cap);
    if (!head)
        conn_free(c, true);
    return head;
}

/* Writes an event: its head (len bytes, from event_head) and the payload;
 * frees the head. A failed write closes c. */
static int send_event(struct rapi_conn *c, char *head, size_t len, const char *stackbuf,
                      const struct rapi_event *ev)
{
    struct iovec iov[2] = {{head, len}, {(void *)ev->payload, ev->payload_len}};
    c->parked = false;
    int rc = conn_writev(c, iov, 2);
    if (head != stackbuf)
        free(head);
    if (rc < 0)
        conn_free(c, true);
    return rc;
}

/* The marshal events frame of ev (rapi.h): head in a buffer, the payload
 * as the second part. */
static int send_marshal_event(struct rapi_conn *c, const struct rapi_event *ev)
{
    size_t cap = 5 + 2 + str_cap(ev->request_id) + 15 + str_cap(ev->function_arn) +
                 str_cap(ev->trace_id) + str_cap(ev->client_context) +
                 str_cap(ev->cognito_identity) + 1 + sizeof(JSON_TYPE) + 4 + 5;
    char stackbuf[1024];
    char *head = event_head(c, cap, stackbuf, sizeof(stackbuf));
    if (!head)
        return -ENOMEM;
    char *p = head + 5;
    *p++ = ')'; /* a tuple of fewer than 256 items */
    *p++ = 9;
    p = m_str(p, ev->request_id);
    p = m_int(p, ev->deadline_ms);
    p = m_str(p, ev->function_arn);
    p = m_str(p, ev->trace_id);
    p = m_str(p, ev->client_context);
    p = m_str(p, ev->cognito_identity);
    *p++ = 'N'; /* tenant id: none */
    p = m_str(p, JSON_TYPE);
    *p++ = 's';
    p = m_u32(p, (uint32_t)ev->payload_len);
    head[0] = 0;
    m_u32(head + 1, (uint32_t)((size_t)(p - head) - 5 + ev->payload_len));
    return send_event(c, head, (size_t)(p - head), stackbuf, ev);
}

int rapi_send_next(struct rapi_conn *c, const struct rapi_event *ev)
{
    if (c->marshal_events)
        return send_marshal_event(c, ev);
    /* Headers: the C++ client (awslambdaric, Node's native client) needs the
     * request id and deadline; Content-Type must be exactly
     * application/json or awslambdaric hands the handler raw bytes. */
    size_t cap = 512 + strlen(ev->function_arn) + (ev->trace_id ? strlen(ev->trace_id) : 0) +
                 (ev->client_context ? strlen(ev->client_context) : 0) +
                 (ev->cognito_identity ? strlen(ev->cognito_identity) : 0);
    char stackbuf[1024];
    char *head = event_head(c, cap, stackbuf, sizeof(stackbuf));
    if (!head)
        return -ENOMEM;
    int n = snprintf(head, cap,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Lambda-Runtime-Aws-Request-Id: %s\r\n"
                     "Lambda-Runtime-Deadline-Ms: %lld\r\n"
                     "Lambda-Runtime-Invoked-Function-Arn: %s\r\n",
                     ev->request_id, (long long)ev->deadline_ms, ev->function_arn);
    if (ev->trace_id)
        n += snprintf(head + n, cap - (size_t)n, "Lambda-Runtime-Trace-Id: %s\r\n", ev->trace_id);
    if (ev->client_context)
        n += snprintf(head + n, cap - (size_t)n, "Lambda-Runtime-Client-Context: %s\r\n",
                      ev->client_context);
    if (ev->cognito_identity)
        n += snprintf(head + n, cap - (size_t)n, "Lambda-Runtime-Cognito-Identity: %s\r\n",
                      ev->cognito_identity);
    n += snprintf(head + n, cap - (size_t)n, "Content-Length: %zu\r\n\r\n", ev->payload_len);
    return send_event(c, head, (size_t)n, stackbuf, ev);
}

/* Closes those of a and b that are open (>= 0). */
static void close_open(int a, int b)
{
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
}

/* GET RAPI_PIPES_PATH on the private AF_UNIX channel (rapi.h): the reply
 * carries two pipe ends (SCM_RIGHTS) and the connection continues on the
 * pipes, the socket closed. Everything that can fail is done before the
 * reply, which then is the last step: a runtime that got the pipes can
 * use them. Returns false when the conn was freed. */
static bool conn_upgrade(struct rapi_conn *c, const struct http_req *req)
{
    struct rapi_host *h = c->host;
    if (c->close_after_write || c->out_off != c->out_len) {
        rapi_send_status(c, 400); /* nothing may be queued before the switch */
        return true;
    }
    int ev[2] = {-1, -1}, rq[2] = {-1, -1}; /* events: lambdad -> runtime; requests: runtime -> lambdad */
    struct epoll_event re = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->ev};
    struct epoll_event we = {.events = 0, .data.ptr = &c->wev};
    bool r_added = false, w_added = false;
    bool ok = pipe2(ev, O_CLOEXEC) == 0 && pipe2(rq, O_CLOEXEC) == 0 &&
              fcntl(ev[1], F_SETFL, O_NONBLOCK) == 0 && fcntl(rq[0], F_SETFL, O_NONBLOCK) == 0 &&
              (r_added = epoll_ctl(h->epfd, EPOLL_CTL_ADD, rq[0], &re) == 0) &&
              (w_added = epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev[1], &we) == 0);
    ssize_t w = -1;
    const char *events = http_req_header(req, RAPI_EVENTS_HEADER);
    bool marshal = events && strcmp(events, RAPI_EVENTS_MARSHAL) == 0;
    static const char plain[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    static const char with_marshal[] = "HTTP/1.1 200 OK\r\n" RAPI_EVENTS_HEADER ": " RAPI_EVENTS_MARSHAL
                                       "\r\nContent-Length: 0\r\n\r\n";
    const char *reply = marshal ? with_marshal : plain;
    size_t reply_len = marshal ? sizeof(with_marshal) - 1 : sizeof(plain) - 1;
    if (ok) {
        int give[2] = {ev[0], rq[1]};
        w = fsutil_send_fds(c->fd, reply, reply_len, give, 2, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    close_open(ev[0], rq[1]); /* the runtime's ends are its own now (or nobody's) */
    if (w == (ssize_t)reply_len) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = rq[0]; /* conn_read sees the change */
        c->wfd = ev[1];
        c->marshal_events = marshal;
        return true;
    }
    if (r_added)
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, rq[0], NULL);
    if (w_added)
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, ev[1], NULL);
    close_open(rq[0], ev[1]);
    if (!ok) {
        rapi_send_status(c, 500); /* the runtime stays on the socket */
        return true;
    }
    /* The socket took nothing or part of the reply: this conn is over. */
    conn_free(c, true);
    return false;
}

/* Routes one complete request. Returns false when the conn was freed. */
static bool conn_route(struct rapi_conn *c, const struct http_req *req)
{
    struct rapi_host *h = c->host;
    const char *path = req->path;
    c->close_after_write = !req->keep_alive;
    if (strcmp(path, RAPI_PIPES_PATH) == 0 && strcmp(req->method, "GET") == 0 && c->is_unix)
        return conn_upgrade(c, req);
    if (strncmp(path, RAPI_PREFIX, sizeof(RAPI_PREFIX) - 1) != 0) {
        rapi_send_status(c, 404);
        return true;
    }
    path += sizeof(RAPI_PREFIX) - 1;
    bool is_get = strcmp(req->method, "GET") == 0, is_post = strcmp(req->method, "POST") == 0;
    if (is_get && strcmp(path, "/runtime/invocation/next") == 0) {
        c->parked = true;
        int st = h->ops->next(h->user, c);
        if (st)
            rapi_send_status(c, st);
        return true;
    }
    if (is_get && strcmp(path, "/ping") == 0) {
        rapi_send_status(c, 200);
        return true;
    }
    if (is_post && strcmp(path, "/runtime/init/error") == 0) {
        rapi_send_status(c, h->ops->init_error(h->user, req));
        return true;
    }
    static const char inv[] = "/runtime/invocation/";
    if (is_post && strncmp(path, inv, sizeof(inv) - 1) == 0) {
        const char *id = path + sizeof(inv) - 1;
        const char *slash = strchr(id, '/');
        if (slash && slash > id && slash - id < 128) {
            char rid[128];
            memcpy(rid, id, (size_t)(slash - id));
            rid[slash - id] = 0;
            int op = strcmp(slash, "/response") == 0 ? RAPI_RESPONSE
                     : strcmp(slash, "/error") == 0  ? RAPI_ERROR
                                                     : -1;
            if (op >= 0) {
                rapi_send_status(c, h->ops->result(h->user, (enum rapi_op)op, rid, req));
                return true;
            }
        }
    }
    rapi_send_status(c, 404);
    return true;
}

/* Splits "/2018-06-01/runtime/invocation/{id}/response" into rid. */
static bool response_path(const char *path, char rid[128])
{
    static const char pre[] = RAPI_PREFIX "/runtime/invocation/";
    if (strncmp(path, pre, sizeof(pre) - 1) != 0)
        return false;
    const char *id = path + sizeof(pre) - 1, *slash = strchr(id, '/');
    if (!slash || slash == id || slash - id >= 128 || strcmp(slash, "/response") != 0)
        return false;
    memcpy(rid, id, (size_t)(slash - id));
    rid[slash - id] = 0;
    return true;
}

/* Parser head hook: offers a streamed /response body to the owner. */
static bool conn_head_hook(void *user, const struct http_req *req)
{
    struct rapi_conn *c = user;
    struct rapi_host *h = c->host;
    const char *mode = http_req_header(req, "Lambda-Runtime-Function-Response-Mode");
    char rid[128];
    c->streaming = false;
    c->pause_wanted = false;
    if (!h->ops->stream_begin || !mode || strcasecmp(mode, "streaming") != 0 ||
        strcmp(req->method, "POST") != 0 || !response_path(req->path, rid))
        return false;
    c->streaming = h->ops->stream_begin(h->user, c, rid, req);
    return c->streaming;
}

/* Parser body hook: chunk data of a claimed body, straight to the owner. */
static void conn_body_hook(void *user, const char *data, size_t len)
{
    struct rapi_conn *c = user;
    struct rapi_host *h = c->host;
    if (h->ops->stream_data(h->user, c, data, len) == RAPI_STREAM_PAUSE)
        c->pause_wanted = true;
}

static bool conn_alive(const struct rapi_host *h, const struct rapi_conn *c)
{
    for (const struct rapi_conn *it = h->conns; it; it = it->next)
        if (it == c)
            return true;
    return false;
}

static void conn_read(struct rapi_conn *c)
{
    char buf[65536];
    for (;;) {
        ssize_t r = read(c->fd, buf, sizeof(buf));
        if (r == 0) {
            conn_free(c, true);
            return;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_free(c, true);
            return;
        }
        size_t off = 0;
        bool fatal = false;
        c->corked = true;
        while (off < (size_t)r) {
            if (c->parked) {
                /* A runtime never pipelines behind GET /next. */
                conn_free(c, true);
                return;
            }
            bool done = false;
            long used = httpparse_feed(c->parser, buf + off, (size_t)r - off, &done);
            if (used < 0) {
                struct rapi_host *h = c->host;
                c->close_after_write = true;
                rapi_send_status(c, used == HTTPPARSE_EHEADERS ? 431 : 400);
                if (!conn_alive(h, c))
                    return;
                fatal = true;
                break;
            }
            off += (size_t)used;
            if (!done)
                break;
            struct rapi_conn *self = c;
            struct rapi_host *h = c->host;
            int fd = c->fd;
            c->streaming = c->pause_wanted = false; /* the claimed body (if any) is complete */
            if (!conn_route(self, httpparse_request(self->parser)))
                return;
            /* A callback may have freed c (ENOMEM). */
            if (!conn_alive(h, self))
                return;
            httpparse_reset(self->parser);
            if (self->fd != fd && off < (size_t)r) {
                /* Upgraded to pipes (conn_upgrade): bytes sent on the socket
                 * behind the request would be lost with it, a broken client. */
                conn_free(self, true);
                return;
            }
        }
        c->corked = false;
        if (!conn_batch_end(c) || fatal)
            return;
        if (c->streaming && c->pause_wanted) {
            /* The consumer of the streamed body is full: leave the rest in
             * the socket (the runtime's writes block) until resumed. */
            c->rd_paused = true;
            conn_update_events(c);
            LOG_DEBUG("runtime api port %d: streamed response paused (consumer full)", c->host->port);
            return;
        }
        if ((size_t)r < sizeof(buf))
            return;
    }
}

static void conn_event(struct ev_handler *ev, uint32_t events)
{
    struct rapi_conn *c = EV_CONTAINER_OF(ev, struct rapi_conn, ev);
    if (c->dead)
        return;
    if ((events & EPOLLOUT) && !conn_flush(c))
        return;
    if (c->rd_paused) {
        if (!(events & (EPOLLHUP | EPOLLERR)))
            return;
        /* The runtime hung up while paused: read what it left (bounded by
         * the socket buffer) rather than spin on the level-triggered HUP. */
        c->rd_paused = false;
        conn_update_events(c);
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        conn_read(c);
}

/* The events pipe of a pipe conn: EPOLLOUT while output waits for room,
 * EPOLLERR when the runtime closed its end (the conn is then useless). */
static void pipe_wevent(struct ev_handler *ev, uint32_t events)
{
    struct rapi_conn *c = EV_CONTAINER_OF(ev, struct rapi_conn, wev);
    if (c->dead)
        return;
    if (events & (EPOLLERR | EPOLLHUP))
        conn_free(c, true);
    else if (c->want_out)
        conn_flush(c);
}

static void accept_all(struct rapi_host *h, int lfd, bool tcp)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: shed the connection so the listener
                 * stops firing; the runtime sees it closed. */
                time_t now = time(NULL);
                if (now != t_emfile_logged) {
                    t_emfile_logged = now;
                    LOG_WARN("runtime api: accept: %s; shedding connections", strerror(errno));
                }
                if (t_reserve_fd < 0)
                    return; /* nothing to free: wait for the next event */
                close(t_reserve_fd);
                int shed = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (shed >= 0)
                    close(shed);
                t_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (shed < 0)
                    return;
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                LOG_WARN("runtime api: accept: %s", strerror(errno));
            return;
        }
        if (h->n_conns >= RAPI_MAX_CONNS) {
            /* A runtime needs one or two connections; more is a handler
             * attacking its own environment's API. Refuse them. */
            close(fd);
            continue;
        }
        if (tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        struct rapi_conn *c = calloc(1, sizeof(*c));
        if (c)
            c->parser = httpparse_new(RAPI_MAX_HEADERS, RAPI_MAX_RESPONSE);
        if (!c || !c->parser) {
            if (c)
                free(c);
            close(fd);
            continue;
        }
        c->ev.fn = conn_event;
        c->wev.fn = pipe_wevent;
        c->fd = c->wfd = fd;
        c->is_unix = !tcp;
        c->host = h;
        httpparse_set_hooks(c->parser, conn_head_hook, conn_body_hook, c);
        struct epoll_event ee = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->ev};
        if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
            httpparse_free(c->parser);
            free(c);
            close(fd);
            continue;
        }
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        h->n_conns++;
    }
}

static void listener_event(struct ev_handler *ev, uint32_t events)
{
    (void)events;
    struct rapi_host *h = EV_CONTAINER_OF(ev, struct rapi_host, ev);
    accept_all(h, h->fd, true);
}

static void unix_listener_event(struct ev_handler *ev, uint32_t events)
{
    (void)events;
    struct rapi_host *h = EV_CONTAINER_OF(ev, struct rapi_host, uev);
    accept_all(h, h->ufd, false);
}

/* The private channel: an abstract AF_UNIX listener named
 * "\0lambdad-rapi/<ip>:<port>" after the TCP listener, for the bundled
 * bootstraps (rapi.h). Best effort: without it they use TCP. */
static void open_unix_listener(struct rapi_host *h, const char *ip)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, RAPI_UNIX_PREFIX "%s:%d", ip, h->port);
    if (n <= 0 || (size_t)n >= sizeof(sa.sun_path) - 1)
        return;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &h->uev};
    if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 64) < 0 ||
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
        LOG_DEBUG("runtime api: no private channel for %s:%d: %s", ip, h->port, strerror(errno));
        close(fd);
        return;
    }
    h->ufd = fd;
}

int rapi_host_open(struct rapi_host **out, int epfd, const char *bind_ip, const struct rapi_ops *ops,
                   void *user)
{
    int rc = 0;
    struct rapi_host *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    if (t_reserve_fd < 0)
        t_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    h->ev.fn = listener_event;
    h->uev.fn = unix_listener_event;
    h->ufd = -1;
    h->epfd = epfd;
    h->ops = ops;
    h->user = user;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->fd < 0) {
        rc = -errno;
        goto out;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, bind_ip ? bind_ip : "127.0.0.1", &sa.sin_addr) != 1) {
        rc = -EINVAL;
        goto out;
    }
    socklen_t sl = sizeof(sa);
    if (bind(h->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(h->fd, 64) < 0 ||
        getsockname(h->fd, (struct sockaddr *)&sa, &sl) < 0) {
        rc = -errno;
        goto out;
    }
    h->port = ntohs(sa.sin_port);
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &h->ev};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, h->fd, &ee) < 0) {
        rc = -errno;
        goto out;
    }
    /* Only a loopback listener serves host processes, which share lambdad's
     * network namespace (abstract socket names live in it). */
    if (ntohl(sa.sin_addr.s_addr) >> 24 == 127) {
        char ip[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip)))
            open_unix_listener(h, ip);
    }
    *out = h;
    return 0;
out:
    if (h->fd >= 0)
        close(h->fd);
    free(h);
    return rc;
}

int rapi_host_port(const struct rapi_host *h)
{
    return h->port;
}

void rapi_host_close(struct rapi_host *h)
{
    if (!h)
        return;
    while (h->conns)
        conn_free(h->conns, false);
    epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->fd, NULL);
    close(h->fd);
    if (h->ufd >= 0) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->ufd, NULL);
        close(h->ufd);
    }
    free(h);
}
