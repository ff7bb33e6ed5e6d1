/*
 * loadgen.c — closed-loop HTTP/1.1 load generator for lambdad's benchmarks.
 *
 * Why our own: wrk cannot easily report p99.9 of POST bodies, and the bench
 * suite wants one machine-readable JSON line per run.
 *
 * Design
 * ------
 * N keep-alive connections to one loopback host:port, split round-robin over
 * T threads. Each thread owns an epoll instance and its connections; nothing
 * is shared between threads while running except a few atomics (the request
 * ticket counter for -n mode). Each connection is closed-loop: it sends the
 * next request only when the previous response has been fully received.
 *
 * Timeline (one clock, CLOCK_MONOTONIC, read by every thread):
 *
 *     t0 ── warm-up (-w s, not recorded) ── measure (-d s, or until -n
 *           recorded requests) ── stop
 *
 * A response is recorded when its request was sent at or after the end of
 * the warm-up and it completed before the end of the measurement window.
 * Requests still in flight at the end are abandoned (not errors).
 *
 * Responses are parsed properly: status line, headers, Content-Length,
 * Transfer-Encoding: chunked (with trailers), 1xx interim responses,
 * bodiless statuses (204/304), Connection: close and read-until-EOF bodies.
 * Anything malformed, a reset, a refused connect or a response that takes
 * longer than -T seconds counts as an error; the connection is closed and
 * re-opened after a short back-off so a dead server cannot make us spin.
 *
 * Latencies go into a log-linear histogram (HdrHistogram-like): exact 1 µs
 * buckets below 2^20 µs (~1.05 s), then 1024 linear sub-buckets per power of
 * two above (relative error < 0.1 %), up to 2^40 µs. Each thread has its own;
 * they are merged after the threads are joined.
 *
 * Safety: only loopback targets (127.0.0.0/8, ::1) are accepted, and every
 * run is bounded in time (-d, and -n runs are capped at -d when given or at
 * 300 s otherwise).
 *
 * Output: one JSON object on stdout, schema documented in bench/README.md:
 * {"connections","threads","duration_s","requests","errors","non2xx","rps",
 *  "latency_us":{"p50","p90","p99","p999","max","mean"}, ...}
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- histogram */

#define HIST_LINEAR_BITS 20 /* exact 1 µs buckets below 2^20 µs */
#define HIST_SUB_BITS 10    /* 1024 sub-buckets per power of two above */
#define HIST_MAX_BITS 40    /* values are clamped to 2^40 - 1 µs */
#define HIST_LINEAR (1u << HIST_LINEAR_BITS)
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_LINEAR + (HIST_MAX_BITS - HIST_LINEAR_BITS) * HIST_SUB)

/* A latency histogram. Owned by one thread while recording; merged later. */
struct hist {
    uint64_t *counts; /* HIST_BUCKETS entries */
    uint64_t total;
    uint64_t max_ns;
    long double sum_ns;
};

static int hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->counts = calloc(HIST_BUCKETS, sizeof(uint64_t));
    return h->counts ? 0 : -ENOMEM;
}

static unsigned hist_index(uint64_t us)
{
    if (us < HIST_LINEAR)
        return (unsigned)us;
    if (us >= (1ull << HIST_MAX_BITS))
        us = (1ull << HIST_MAX_BITS) - 1;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us); /* >= HIST_LINEAR_BITS */
    unsigned sub = (unsigned)(us >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return HIST_LINEAR + (msb - HIST_LINEAR_BITS) * HIST_SUB + sub;
}

/* Highest value (µs) that maps to bucket i: percentiles report the bucket's
 * upper edge, so they never under-state a latency. */
static uint64_t hist_value(unsigned i)
{
    if (i < HIST_LINEAR)
        return i;
    unsigned k = (i - HIST_LINEAR) / HIST_SUB, sub = (i - HIST_LINEAR) % HIST_SUB;
    unsigned msb = HIST_LINEAR_BITS + k, shift = msb - HIST_SUB_BITS;
    uint64_t lo = (1ull << msb) | ((uint64_t)sub << shift);
    return lo + (1ull << shift) - 1;
}

static void hist_record(struct hist *h, uint64_t ns)
{
    h->counts[hist_index(ns / 1000)]++;
    h->total++;
    h->sum_ns += (long double)ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

static void hist_merge(struct hist *into, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total += from->total;
    into->sum_ns += from->sum_ns;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
}

/* Value at percentile p (0..100]: the smallest bucket whose cumulative count
 * reaches ceil(p/100 * total). */
static uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i), max_us = h->max_ns / 1000;
            return v > max_us ? max_us : v;
        }
    }
    return h->max_ns / 1000;
}

/* ------------------------------------------------------------------ options */

struct options {
    char host[256];
    char port[16];
    char path[2048];
    const char *method;
    char *body; /* owned */
    size_t body_len;
    char headers[4096]; /* extra "Name: value\r\n" lines */
    int connections;
    int threads;
    double duration_s;
    double warmup_s;
    double timeout_s;
    uint64_t count; /* 0 = duration mode */
    bool duration_given;
};

static struct options opt = {
    .host = "127.0.0.1", .port = "8080", .path = "/", .method = "GET",
    .connections = 1, .threads = 1, .duration_s = 10, .warmup_s = 0, .timeout_s = 10,
};

static struct sockaddr_storage target;
static socklen_t target_len;
static char *request;      /* the fixed request bytes, shared read-only */
static size_t request_len;
/* With "{c}" in the path: one request per connection (the index in
 * place of "{c}"), e.g. a writer per function. NULL otherwise. */
static char **conn_request;
static size_t *conn_request_len;
/* With "{n}" in the body: each occurrence became SEQ_DIGITS zeros at
 * these offsets of the body, and every request writes the next number of
 * one counter shared by all connections there (zero-padded, so the
 * Content-Length stays fixed): unique bodies, e.g. CreateFunction names.
 * Each connection then sends its own copy of the request. */
#define SEQ_DIGITS 8
#define SEQ_MAX_MARKS 8
static size_t seq_marks[SEQ_MAX_MARKS];
static int n_seq_marks;
static atomic_uint_fast64_t seq_next;

/* ------------------------------------------------------------ global timing */

static uint64_t t_start_ns, t_warm_end_ns, t_measure_end_ns;
static atomic_uint_fast64_t tickets;       /* -n mode: measured requests claimed */
static atomic_uint_fast64_t completed_measured;
static atomic_bool stop_all;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- connections */

enum conn_state {
    CONN_IDLE,       /* not connected; reconnect at retry_at_ns */
    CONN_CONNECTING, /* non-blocking connect in progress */
    CONN_WRITING,    /* request partially written */
    CONN_READING,    /* waiting for / parsing the response */
};

enum parse_state {
    P_HEADERS,
    P_BODY_LENGTH,
    P_BODY_EOF,
    P_CHUNK_SIZE,
    P_CHUNK_DATA,
    P_CHUNK_CRLF,
    P_TRAILERS,
};

#define SCAN_NS (5 * 1000000ull) /* longest gap between passes over the connections */
#define RBUF_SIZE 65536 /* headers must fit; bodies are streamed through */

struct conn {
    int fd;
    enum conn_state state;
    enum parse_state pstate;
    size_t written;
    char *rbuf;
    size_t rlen;       /* bytes in rbuf */
    uint64_t remaining; /* body or chunk bytes still to skip */
    int status;
    bool close_after;
    char *req;         /* the request bytes this connection sends */
    size_t req_len;
    bool measured;     /* this request counts (sent after warm-up / ticketed) */
    bool done;         /* finished for good (window over or -n reached) */
    uint64_t sent_ns;  /* request sent, or connect started */
    uint64_t retry_at_ns;
    uint32_t want;     /* the events registered with epoll (0: not registered) */
};

struct worker {
    pthread_t tid;
    int index;
    int epfd;
    struct conn *conns;
    int nconns;
    struct hist hist;
    uint64_t requests, errors, non2xx, timeouts, connect_errors;
    uint64_t last_done_ns;
    uint64_t scan_at_ns; /* next pass over every connection (opens, timeouts) */
};

/* The next pass over the connections runs no later than t. */
static void scan_by(struct worker *w, uint64_t t)
{
    if (t < w->scan_at_ns)
        w->scan_at_ns = t;
}

static void conn_close(struct worker *w, struct conn *c, uint64_t retry_delay_ns)
{
    if (c->fd >= 0) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->want = 0;
    c->state = CONN_IDLE;
    c->rlen = 0;
    c->retry_at_ns = now_ns() + retry_delay_ns;
    scan_by(w, c->retry_at_ns);
}

static void conn_error(struct worker *w, struct conn *c)
{
    w->errors++;
    conn_close(w, c, 10 * 1000000ull); /* 10 ms back-off */
}

static int conn_open(struct worker *w, struct conn *c)
{
    int fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->sent_ns = now_ns();
    int rc = connect(fd, (struct sockaddr *)&target, target_len);
    if (rc < 0 && errno != EINPROGRESS) {
        rc = -errno;
        close(fd);
        c->fd = -1;
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        rc = -errno;
        close(fd);
        c->fd = -1;
        return rc;
    }
    c->want = ev.events;
    c->state = rc == 0 ? CONN_WRITING : CONN_CONNECTING;
    return 0;
}

/* Registers the events c waits for; no system call when they are the ones
 * already registered (a kept-alive connection waits for EPOLLIN request
 * after request). */
static void conn_want(struct worker *w, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events | EPOLLRDHUP, .data.ptr = c};
    if (ev.events == c->want)
        return;
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want = ev.events;
}

/* Whether to start another request now; sets c->measured. */
static bool may_send(struct conn *c, uint64_t now)
{
    if (atomic_load_explicit(&stop_all, memory_order_relaxed) || now >= t_measure_end_ns)
        return false;
    if (now < t_warm_end_ns) {
        c->measured = false;
        return true;
    }
    if (opt.count) {
        uint64_t t = atomic_fetch_add(&tickets, 1);
        if (t >= opt.count)
            return false;
    }
    c->measured = true;
    return true;
}

/* Write as much of the request as the socket takes. Returns 0 or -errno. */
static int conn_write(struct worker *w, struct conn *c)
{
    while (c->written < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->written, c->req_len - c->written, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_want(w, c, EPOLLOUT | EPOLLIN);
                c->state = CONN_WRITING;
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c->written += (size_t)n;
    }
    c->state = CONN_READING;
    c->pstate = P_HEADERS;
    c->status = 0;
    c->close_after = false;
    conn_want(w, c, EPOLLIN);
    return 0;
}

static void conn_start_request(struct worker *w, struct conn *c, uint64_t now)
{
    if (!may_send(c, now)) {
        conn_close(w, c, 0);
        c->done = true;
        return;
    }
    c->written = 0;
    if (n_seq_marks) {
        uint64_t v = atomic_fetch_add_explicit(&seq_next, 1, memory_order_relaxed);
        char digits[SEQ_DIGITS + 1];
        snprintf(digits, sizeof(digits), "%0*llu", SEQ_DIGITS,
                 (unsigned long long)(v % 100000000ull));
        char *body = c->req + c->req_len - opt.body_len;
        for (int i = 0; i < n_seq_marks; i++)
            memcpy(body + seq_marks[i], digits, SEQ_DIGITS);
    }
    c->sent_ns = now_ns();
    if (conn_write(w, c) < 0)
        conn_error(w, c);
}

/* Find a header value in [p, end) (one header block, lines end in CRLF). */
static const char *header_value(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

static bool token_in(const char *v, size_t vlen, const char *tok)
{
    size_t tlen = strlen(tok);
    for (size_t i = 0; i + tlen <= vlen; i++)
        if (strncasecmp(v + i, tok, tlen) == 0)
            return true;
    return false;
}

/* Parse the header block at rbuf[0..hdr_end). Returns 0, or -EPROTO. Sets
 * the body state. hdr_end points just past the blank line. */
static int parse_headers(struct conn *c, size_t hdr_end)
{
    const char *b = c->rbuf, *end = c->rbuf + hdr_end - 2;
    if (hdr_end < 14 || strncmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ')
        return -EPROTO;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (b[i] < '0' || b[i] > '9')
            return -EPROTO;
        status = status * 10 + (b[i] - '0');
    }
    c->status = status;
    bool http10 = b[7] == '0';
    const char *first = memmem(b, hdr_end, "\r\n", 2);
    const char *hp = first + 2;
    size_t vlen;
    const char *v = header_value(hp, end, "Connection", &vlen);
    c->close_after = http10 ? !(v && token_in(v, vlen, "keep-alive")) : (v && token_in(v, vlen, "close"));
    if (status >= 100 && status < 200)
        return 0; /* interim: caller discards and keeps reading headers */
    if (status == 204 || status == 304) {
        c->remaining = 0;
        c->pstate = P_BODY_LENGTH;
        return 0;
    }
    v = header_value(hp, end, "Transfer-Encoding", &vlen);
    if (v && token_in(v, vlen, "chunked")) {
        c->pstate = P_CHUNK_SIZE;
        return 0;
    }
    v = header_value(hp, end, "Content-Length", &vlen);
    if (v) {
        uint64_t n = 0;
        if (vlen == 0 || vlen > 18)
            return -EPROTO;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -EPROTO;
            n = n * 10 + (uint64_t)(v[i] - '0');
        }
        c->remaining = n;
        c->pstate = P_BODY_LENGTH;
        return 0;
    }
    c->pstate = P_BODY_EOF;
    c->close_after = true;
    return 0;
}

/* Consume what is in rbuf. Returns 1 when the response is complete, 0 when
 * more bytes are needed, -EPROTO on a malformed response. */
static int parse_response(struct conn *c)
{
    size_t pos = 0;
    int rc = 0;
    for (;;) {
        switch (c->pstate) {
        case P_HEADERS: {
            char *e = memmem(c->rbuf + pos, c->rlen - pos, "\r\n\r\n", 4);
            if (!e) {
                if (c->rlen - pos >= RBUF_SIZE - 1) {
                    rc = -EPROTO;
                    goto out;
                }
                goto out;
            }
            size_t hdr_end = (size_t)(e - c->rbuf) + 4;
            /* parse_headers expects the block at rbuf[0] */
            if (pos) {
                memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
                c->rlen -= pos;
                hdr_end -= pos;
                pos = 0;
            }
            if (parse_headers(c, hdr_end) < 0) {
                rc = -EPROTO;
                goto out;
            }
            pos = hdr_end;
            if (c->status >= 100 && c->status < 200)
                continue; /* stay in P_HEADERS */
            break;
        }
        case P_BODY_LENGTH: {
            uint64_t avail = c->rlen - pos, take = avail < c->remaining ? avail : c->remaining;
            pos += (size_t)take;
            c->remaining -= take;
            if (c->remaining)
                goto out;
            if (pos != c->rlen) {
                rc = -EPROTO; /* bytes after the response: we never pipeline */
                goto out;
            }
            rc = 1;
            goto out;
        }
        case P_BODY_EOF:
            pos = c->rlen; /* completes on EOF (handled by the caller) */
            goto out;
        case P_CHUNK_SIZE:
        case P_TRAILERS: {
            char *eol = memmem(c->rbuf + pos, c->rlen - pos, "\r\n", 2);
            if (!eol) {
                if (c->rlen - pos >= 4096)
                    rc = -EPROTO;
                goto out;
            }
            if (c->pstate == P_TRAILERS) {
                bool blank = eol == c->rbuf + pos;
                pos = (size_t)(eol - c->rbuf) + 2;
                if (blank) {
                    rc = pos == c->rlen ? 1 : -EPROTO;
                    goto out;
                }
                break;
            }
            uint64_t n = 0;
            const char *p = c->rbuf + pos;
            int digits = 0;
            for (; p < eol; p++, digits++) {
                int d;
                if (*p >= '0' && *p <= '9')
                    d = *p - '0';
                else if (*p >= 'a' && *p <= 'f')
                    d = *p - 'a' + 10;
                else if (*p >= 'A' && *p <= 'F')
                    d = *p - 'A' + 10;
                else
                    break; /* ';' extension or whitespace */
                if (digits >= 15) {
                    rc = -EPROTO;
                    goto out;
                }
                n = n * 16 + (uint64_t)d;
            }
            if (digits == 0) {
                rc = -EPROTO;
                goto out;
            }
            pos = (size_t)(eol - c->rbuf) + 2;
            if (n == 0) {
                c->pstate = P_TRAILERS;
            } else {
                c->remaining = n;
                c->pstate = P_CHUNK_DATA;
            }
            break;
        }
        case P_CHUNK_DATA: {
            uint64_t avail = c->rlen - pos, take = avail < c->remaining ? avail : c->remaining;
            pos += (size_t)take;
            c->remaining -= take;
            if (c->remaining)
                goto out;
            c->remaining = 2;
            c->pstate = P_CHUNK_CRLF;
            break;
        }
        case P_CHUNK_CRLF:
            while (c->remaining && pos < c->rlen) {
                if (c->rbuf[pos] != (c->remaining == 2 ? '\r' : '\n')) {
                    rc = -EPROTO;
                    goto out;
                }
                pos++;
                c->remaining--;
            }
            if (c->remaining)
                goto out;
            c->pstate = P_CHUNK_SIZE;
            break;
        }
    }
out:
    if (rc == 0 && pos) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    return rc;
}

static void response_done(struct worker *w, struct conn *c, uint64_t now)
{
    if (c->measured && now <= t_measure_end_ns) {
        hist_record(&w->hist, now - c->sent_ns);
        w->requests++;
        if (c->status < 200 || c->status > 299)
            w->non2xx++;
        w->last_done_ns = now;
        if (opt.count && atomic_fetch_add(&completed_measured, 1) + 1 >= opt.count)
            atomic_store(&stop_all, true);
    }
    c->rlen = 0;
    if (c->close_after) {
        conn_close(w, c, 0);
        return;
    }
    conn_start_request(w, c, now);
}

static void conn_readable(struct worker *w, struct conn *c)
{
    for (;;) {
        if (c->rlen >= RBUF_SIZE) {
            conn_error(w, c);
            return;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            conn_error(w, c);
            return;
        }
        if (n == 0) {
            if (c->state == CONN_READING && c->pstate == P_BODY_EOF) {
                c->close_after = true;
                response_done(w, c, now_ns());
            } else if (c->state == CONN_READING) {
                conn_error(w, c); /* closed mid-response */
            } else {
                conn_close(w, c, 0); /* idle keep-alive closed by server */
            }
            return;
        }
        if (c->state != CONN_READING) {
            conn_error(w, c); /* bytes we did not ask for */
            return;
        }
        c->rlen += (size_t)n;
        int rc = parse_response(c);
        if (rc < 0) {
            conn_error(w, c);
            return;
        }
        if (rc == 1) {
            response_done(w, c, now_ns());
            return;
        }
    }
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            w->connect_errors++;
            conn_error(w, c);
            return;
        }
        conn_start_request(w, c, now_ns());
        return;
    }
    if (c->state == CONN_WRITING && (events & EPOLLOUT)) {
        if (conn_write(w, c) < 0) {
            conn_error(w, c);
            return;
        }
    }
    if (c->fd >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        conn_readable(w, c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "loadgen-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    uint64_t timeout_ns = (uint64_t)(opt.timeout_s * 1e9);
    struct epoll_event evs[256];
    for (;;) {
        uint64_t now = now_ns();
        if (now >= t_measure_end_ns || atomic_load_explicit(&stop_all, memory_order_relaxed))
            break;
        /* The pass over every connection (open, reconnect, time out) runs
         * when a connection closed or every SCAN_NS, not per wake-up: at
         * 1,000 connections it is most of a wake-up's work. */
        if (now >= w->scan_at_ns) {
            w->scan_at_ns = now + SCAN_NS;
            bool any_active = false;
            for (int i = 0; i < w->nconns; i++) {
                struct conn *c = &w->conns[i];
                if (c->done)
                    continue;
                any_active = true;
                if (c->state == CONN_IDLE) {
                    if (now < c->retry_at_ns) {
                        scan_by(w, c->retry_at_ns);
                        continue;
                    }
                    if (conn_open(w, c) < 0) {
                        w->connect_errors++;
                        w->errors++;
                        c->retry_at_ns = now + 10 * 1000000ull;
                        scan_by(w, c->retry_at_ns);
                        continue;
                    }
                    if (c->state == CONN_WRITING)
                        conn_start_request(w, c, now);
                } else if (now > c->sent_ns && now - c->sent_ns > timeout_ns) {
                    w->timeouts++;
                    if (c->state == CONN_CONNECTING)
                        w->connect_errors++;
                    conn_error(w, c);
                }
            }
            if (!any_active)
                break; /* every connection finished (-n mode) */
            now = now_ns();
        }
        int wait_ms = w->scan_at_ns <= now ? 0 : (int)((w->scan_at_ns - now + 999999) / 1000000);
        int n = epoll_wait(w->epfd, evs, 256, wait_ms);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            conn_event(w, c, evs[i].events);
        }
    }
    for (int i = 0; i < w->nconns; i++)
        if (w->conns[i].fd >= 0)
            close(w->conns[i].fd);
    return NULL;
}

/* ------------------------------------------------------------------- setup */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen [options]\n"
            "  -h HOST     loopback host (127.0.0.0/8 or ::1; default 127.0.0.1)\n"
            "  -p PORT     port (default 8080)\n"
            "  -P PATH     request path (default /); \"{c}\" in it becomes the\n"
            "              connection's index (0..N-1): one target per connection\n"
            "  -m METHOD   GET or POST (default GET, POST when -b/-B given)\n"
            "  -b BODY     request body (string); each \"{n}\" in it becomes the\n"
            "              request's sequence number, 8 digits, unique across connections\n"
            "              (modulo 10^8)\n"
            "  -B FILE     request body (file contents; \"{n}\" as with -b)\n"
            "  -H 'N: V'   extra request header (repeatable)\n"
            "  -c N        connections (default 1)\n"
            "  -t N        threads (default 1; capped at connections)\n"
            "  -d SEC      measured duration (default 10); with -n: time cap\n"
            "  -n COUNT    stop after COUNT measured requests (cap: -d or 300 s)\n"
            "  -w SEC      warm-up before measuring (default 0)\n"
            "  -T SEC      per-request timeout, counted as an error (default 10)\n");
}

static int resolve_loopback(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "loadgen: cannot resolve %s:%s: %s\n", opt.host, opt.port, gai_strerror(rc));
        return -EINVAL;
    }
    rc = -EPERM;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        bool loop = false;
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *s = (const void *)ai->ai_addr;
            loop = (ntohl(s->sin_addr.s_addr) >> 24) == 127;
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *s = (const void *)ai->ai_addr;
            loop = IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
        }
        if (loop) {
            memcpy(&target, ai->ai_addr, ai->ai_addrlen);
            target_len = ai->ai_addrlen;
            rc = 0;
            break;
        }
    }
    freeaddrinfo(res);
    if (rc < 0)
        fprintf(stderr, "loadgen: refusing non-loopback target %s\n", opt.host);
    return rc;
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    int rc = 0;
    struct stat st;
    if (fstat(fileno(f), &st) < 0) {
        rc = -errno;
        goto out;
    }
    *out = malloc((size_t)st.st_size + 1);
    if (!*out) {
        rc = -ENOMEM;
        goto out;
    }
    *len = fread(*out, 1, (size_t)st.st_size, f);
out:
    fclose(f);
    return rc;
}

static int parse_args(int argc, char **argv)
{
    int c;
    const char *method = NULL;
    size_t hlen = 0;
    while ((c = getopt(argc, argv, "h:p:P:m:b:B:H:c:t:d:n:w:T:")) != -1) {
        switch (c) {
        case 'h': snprintf(opt.host, sizeof(opt.host), "%s", optarg); break;
        case 'p': snprintf(opt.port, sizeof(opt.port), "%s", optarg); break;
        case 'P': snprintf(opt.path, sizeof(opt.path), "%s", optarg); break;
        case 'm': method = optarg; break;
        case 'b':
            free(opt.body);
            opt.body = strdup(optarg);
            opt.body_len = strlen(optarg);
            break;
        case 'B':
            free(opt.body);
            opt.body = NULL;
            if (read_file(optarg, &opt.body, &opt.body_len) < 0) {
                fprintf(stderr, "loadgen: cannot read %s\n", optarg);
                return -EINVAL;
            }
            break;
        case 'H': {
            int n = snprintf(opt.headers + hlen, sizeof(opt.headers) - hlen, "%s\r\n", optarg);
            if (n < 0 || (size_t)n >= sizeof(opt.headers) - hlen)
                return -EINVAL;
            hlen += (size_t)n;
            break;
        }
        case 'c': opt.connections = atoi(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
        case 'd': opt.duration_s = atof(optarg); opt.duration_given = true; break;
        case 'n': opt.count = strtoull(optarg, NULL, 10); break;
        case 'w': opt.warmup_s = atof(optarg); break;
        case 'T': opt.timeout_s = atof(optarg); break;
        default: usage(stderr); return -EINVAL;
        }
    }
    if (opt.connections < 1 || opt.connections > 100000 || opt.threads < 1 ||
        opt.duration_s <= 0 || opt.warmup_s < 0 || opt.timeout_s <= 0) {
        usage(stderr);
        return -EINVAL;
    }
    if (opt.threads > opt.connections)
        opt.threads = opt.connections;
    if (opt.count && !opt.duration_given)
        opt.duration_s = 300;
    opt.method = method ? method : (opt.body ? "POST" : "GET");
    if (strcmp(opt.method, "GET") != 0 && strcmp(opt.method, "POST") != 0 &&
        strcmp(opt.method, "PUT") != 0) {
        fprintf(stderr, "loadgen: unsupported method %s\n", opt.method);
        return -EINVAL;
    }
    return 0;
}

/* The request bytes for path (opt's method, headers and body). */
static char *format_request(const char *path, size_t *len)
{
    char head[8192];
    bool has_body = strcmp(opt.method, "GET") != 0;
    int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s:%s\r\n%s", opt.method,
                     path, opt.host, opt.port, opt.headers);
    if (n < 0 || (size_t)n >= sizeof(head))
        return NULL;
    if (has_body) {
        int m = snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n", opt.body_len);
        if (m < 0 || (size_t)m >= sizeof(head) - (size_t)n)
            return NULL;
        n += m;
    }
    size_t blen = has_body ? opt.body_len : 0;
    char *r = malloc((size_t)n + 2 + blen);
    if (!r)
        return NULL;
    memcpy(r, head, (size_t)n);
    memcpy(r + n, "\r\n", 2);
    if (blen)
        memcpy(r + n + 2, opt.body, blen);
    *len = (size_t)n + 2 + blen;
    return r;
}

/* Turns every "{n}" of the body into SEQ_DIGITS zeros and notes where
 * (a GET sends no body: nothing to mark). */
static int mark_sequence(void)
{
    if (!opt.body || strcmp(opt.method, "GET") == 0 || !memmem(opt.body, opt.body_len, "{n}", 3))
        return 0;
    char *out = malloc(opt.body_len / 3 * SEQ_DIGITS + opt.body_len + 1);
    if (!out)
        return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < opt.body_len;) {
        if (i + 3 <= opt.body_len && memcmp(opt.body + i, "{n}", 3) == 0) {
            if (n_seq_marks == SEQ_MAX_MARKS) {
                fprintf(stderr, "loadgen: at most %d {n} in the body\n", SEQ_MAX_MARKS);
                free(out);
                return -EINVAL;
            }
            seq_marks[n_seq_marks++] = o;
            memset(out + o, '0', SEQ_DIGITS);
            o += SEQ_DIGITS;
            i += 3;
        } else {
            out[o++] = opt.body[i++];
        }
    }
    out[o] = 0;
    free(opt.body);
    opt.body = out;
    opt.body_len = o;
    return 0;
}

static int build_request(void)
{
    if (mark_sequence() < 0)
        return -EINVAL;
    const char *mark = strstr(opt.path, "{c}");
    if (!mark) {
        request = format_request(opt.path, &request_len);
        return request ? 0 : -EINVAL;
    }
    conn_request = calloc((size_t)opt.connections, sizeof(*conn_request));
    conn_request_len = calloc((size_t)opt.connections, sizeof(*conn_request_len));
    if (!conn_request || !conn_request_len)
        return -ENOMEM;
    for (int i = 0; i < opt.connections; i++) {
        char path[sizeof(opt.path) + 16];
        int n = snprintf(path, sizeof(path), "%.*s%d%s", (int)(mark - opt.path), opt.path, i, mark + 3);
        if (n < 0 || (size_t)n >= sizeof(path) ||
            !(conn_request[i] = format_request(path, &conn_request_len[i])))
            return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 1;
    struct worker *workers = NULL;
    struct conn *conns = NULL;
    struct hist total;

    if (parse_args(argc, argv) < 0 || resolve_loopback() < 0 || build_request() < 0)
        return 2;
    if (hist_init(&total) < 0)
        return 1;
    workers = calloc((size_t)opt.threads, sizeof(*workers));
    conns = calloc((size_t)opt.connections, sizeof(*conns));
    if (!workers || !conns)
        goto out;
    for (int i = 0; i < opt.connections; i++) {
        conns[i].fd = -1;
        conns[i].req = conn_request ? conn_request[i] : request;
        conns[i].req_len = conn_request ? conn_request_len[i] : request_len;
        if (n_seq_marks && !conn_request) {
            /* its own copy: the sequence number is written into it */
            if (!(conns[i].req = malloc(request_len)))
                goto out;
            memcpy(conns[i].req, request, request_len);
        }
        conns[i].rbuf = malloc(RBUF_SIZE);
        if (!conns[i].rbuf)
            goto out;
    }
    /* contiguous share of connections per thread */
    for (int t = 0, next = 0; t < opt.threads; t++) {
        struct worker *w = &workers[t];
        w->index = t;
        w->nconns = opt.connections / opt.threads + (t < opt.connections % opt.threads);
        w->conns = &conns[next];
        next += w->nconns;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0 || hist_init(&w->hist) < 0)
            goto out;
    }

    t_start_ns = now_ns();
    t_warm_end_ns = t_start_ns + (uint64_t)(opt.warmup_s * 1e9);
    t_measure_end_ns = t_warm_end_ns + (uint64_t)(opt.duration_s * 1e9);
    for (int t = 0; t < opt.threads; t++)
        if (pthread_create(&workers[t].tid, NULL, worker_main, &workers[t]) != 0)
            goto out;
    uint64_t requests = 0, errors = 0, non2xx = 0, timeouts = 0, connect_errors = 0, last = 0;
    for (int t = 0; t < opt.threads; t++) {
        struct worker *w = &workers[t];
        pthread_join(w->tid, NULL);
        hist_merge(&total, &w->hist);
        requests += w->requests;
        errors += w->errors;
        non2xx += w->non2xx;
        timeouts += w->timeouts;
        connect_errors += w->connect_errors;
        if (w->last_done_ns > last)
            last = w->last_done_ns;
    }
    uint64_t end = now_ns();
    if (end > t_measure_end_ns)
        end = t_measure_end_ns;
    if (opt.count && last)
        end = last; /* -n: the window closes with the last response */
    double dur = end > t_warm_end_ns ? (double)(end - t_warm_end_ns) / 1e9 : 0;
    double mean = total.total ? (double)(total.sum_ns / total.total) / 1000.0 : 0;
    printf("{\"connections\":%d,\"threads\":%d,\"duration_s\":%.3f,\"warmup_s\":%.3f,"
           "\"requests\":%llu,\"errors\":%llu,\"non2xx\":%llu,\"timeouts\":%llu,"
           "\"connect_errors\":%llu,\"rps\":%.1f,"
           "\"latency_us\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,"
           "\"max\":%.1f,\"mean\":%.1f}}\n",
           opt.connections, opt.threads, dur, opt.warmup_s, (unsigned long long)requests,
           (unsigned long long)errors, (unsigned long long)non2xx, (unsigned long long)timeouts,
           (unsigned long long)connect_errors, dur > 0 ? (double)requests / dur : 0.0,
           (unsigned long long)hist_percentile(&total, 50), (unsigned long long)hist_percentile(&total, 90),
           (unsigned long long)hist_percentile(&total, 99), (unsigned long long)hist_percentile(&total, 99.9),
           (double)total.max_ns / 1000.0, mean);
    rc = 0;
out:
    if (conns)
        for (int i = 0; i < opt.connections; i++) {
            free(conns[i].rbuf);
            if (n_seq_marks && !conn_request)
                free(conns[i].req);
        }
    if (workers)
        for (int t = 0; t < opt.threads; t++) {
            free(workers[t].hist.counts);
            if (workers[t].epfd > 0)
                close(workers[t].epfd);
        }
    free(conns);
    free(workers);
    free(total.counts);
    free(request);
    if (conn_request)
        for (int i = 0; i < opt.connections; i++)
            free(conn_request[i]);
    free(conn_request);
    free(conn_request_len);
    free(opt.body);
    return rc;
}
