/* Unit test: the private channel's pipe upgrade (rapi.h, "Pipes") and
 * connections closed while an event of theirs is still due in the same
 * epoll batch.
 *  - GET RAPI_PIPES_PATH on the abstract AF_UNIX socket: 200 with two
 *    descriptors, the socket closed, GET /next and POST /response over the
 *    pipes, an event bigger than the pipe delivered whole (EPOLLOUT on the
 *    events pipe); a second connection upgraded beside the first;
 *  - the runtime closing both pipes while an event waits for room: the
 *    read side's HUP and the events pipe's ERR arrive in one batch, in
 *    either order; the conn is closed once and nothing touches freed
 *    memory (the ASan build checks that);
 *  - a socket conn closed by rapi_send_next (EPIPE) while its HUP is due
 *    in the same batch.
 * The test plays the executor: it runs the epoll loop and calls rapi_reap
 * between batches. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/evloop.h"
#include "runtime/rapi.h"
#include "rapi_stubs.h"
#include "testing.h"

static struct rapi_conn *g_parked; /* the conn of the last GET /next */
static int g_closed;               /* conn_closed calls */
static int g_results;              /* /response calls */
static size_t g_result_len;

static int op_next(void *u, struct rapi_conn *c)
{
    (void)u;
    g_parked = c;
    return 0;
}
static int op_result(void *u, enum rapi_op op, const char *id, const struct http_req *r)
{
    (void)u;
    (void)op;
    (void)id;
    g_results++;
    g_result_len = r->body_len;
    return 202;
}
static void op_closed(void *u, struct rapi_conn *c)
{
    (void)u;
    if (c == g_parked)
        g_parked = NULL;
    g_closed++;
}
static const struct rapi_ops ops = {op_next, op_result, stub_init_error, op_closed, NULL, NULL};

/* One loop pass: a batch (waiting up to ms), then rapi_reap. */
static int pass(int epfd, int ms)
{
    struct epoll_event evs[16];
    int n = epoll_wait(epfd, evs, 16, ms);
    if (n > 0)
        dispatch_events(evs, n);
    rapi_reap();
    return n;
}

/* Loop passes until cond holds (at most ~2 s). */
#define PASS_UNTIL(epfd, cond)                                                                     \
    do {                                                                                           \
        for (int i_ = 0; i_ < 200 && !(cond); i_++)                                                \
            pass(epfd, 10);                                                                        \
    } while (0)

static bool readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

static int unix_connect(int port)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, RAPI_UNIX_PREFIX "127.0.0.1:%d", port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0)
        return -1;
    return fd;
}

/* Sends the upgrade (asking for marshal events when marshal), runs the
 * loop, receives the answer (its head when head is not NULL) and the fds. */
static int upgrade_ex(int epfd, int s, int fds[2], char *line, size_t cap, bool marshal, char *head,
                      size_t head_cap)
{
    static const char plain[] = "GET " RAPI_PIPES_PATH " HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char with_marshal[] = "GET " RAPI_PIPES_PATH " HTTP/1.1\r\nHost: x\r\n" RAPI_EVENTS_HEADER
                                       ": " RAPI_EVENTS_MARSHAL "\r\n\r\n";
    const char *req = marshal ? with_marshal : plain;
    size_t len = marshal ? sizeof(with_marshal) - 1 : sizeof(plain) - 1;
    if (write(s, req, len) != (ssize_t)len)
        return -1;
    PASS_UNTIL(epfd, readable(s));
    char buf[512];
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(2 * sizeof(int))];
    } cm;
    struct iovec iov = {buf, sizeof(buf) - 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
    ssize_t r = recvmsg(s, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (r <= 0)
        return -1;
    buf[r] = 0;
    snprintf(line, cap, "%.*s", (int)strcspn(buf, "\r"), buf);
    if (head)
        snprintf(head, head_cap, "%.*s", (int)(head_cap - 1), buf);
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds, CMSG_DATA(c), (size_t)got * sizeof(int));
        }
    return got;
}

static int upgrade(int epfd, int s, int fds[2], char *line, size_t cap)
{
    return upgrade_ex(epfd, s, fds, line, cap, false, NULL, 0);
}

/* The body of the reply in buf[0..have) when its head and body bytes of
 * body have arrived, else NULL. */
static const char *reply_body(const char *buf, size_t have, size_t body)
{
    const char *end = memmem(buf, have, "\r\n\r\n", 4);
    return end && have >= (size_t)(end + 4 - buf) + body ? end + 4 : NULL;
}

/* Reads from fd (blocking) until the end of an HTTP head plus body bytes
 * after it; returns the total read. */
static size_t read_reply(int fd, char *buf, size_t cap, size_t body)
{
    size_t have = 0;
    for (;;) {
        if (reply_body(buf, have, body))
            return have;
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t r = poll(&p, 1, 2000) == 1 ? read(fd, buf + have, cap - have) : -1;
        if (r <= 0)
            return have; /* EOF, error or 2 s without a byte: the caller's check fails */
        have += (size_t)r;
    }
}

/* Reads from fd until a whole marshal events frame (rapi.h: a zero byte,
 * a 4-byte little-endian length, that many bytes) has arrived; returns the
 * total read (less when 2 s pass without a byte: the caller's check fails). */
static size_t read_frame(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    for (;;) {
        if (have >= 5) {
            const unsigned char *u = (const unsigned char *)buf;
            size_t len = (size_t)u[1] | (size_t)u[2] << 8 | (size_t)u[3] << 16 | (size_t)u[4] << 24;
            if (have >= 5 + len)
                return have;
        }
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t r = poll(&p, 1, 2000) == 1 ? read(fd, buf + have, cap - have) : -1;
        if (r <= 0)
            return have;
        have += (size_t)r;
    }
}

static const char next_req[] = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";

static struct rapi_event event_of(const char *payload, size_t len)
{
    return (struct rapi_event){.request_id = "r1", .deadline_ms = 1, .function_arn = "arn:aws:lambda:x",
                               .payload = payload, .payload_len = len};
}

int main(void)
{
    int epfd, port;
    struct rapi_host *h = open_test_host(&epfd, &port, &ops);
    char line[256];
    int fds[2] = {-1, -1};

    /* 1. The upgrade, then an exchange over the pipes. */
    int s = unix_connect(port);
    CHECK(s >= 0);
    CHECK(upgrade(epfd, s, fds, line, sizeof(line)) == 2);
    CHECK_STR(line, "HTTP/1.1 200 OK");
    char tmp[16];
    CHECK(read(s, tmp, sizeof(tmp)) == 0); /* lambdad closed the socket */
    close(s);
    CHECK(write(fds[1], next_req, sizeof(next_req) - 1) == (ssize_t)sizeof(next_req) - 1);
    PASS_UNTIL(epfd, g_parked != NULL);
    CHECK(g_parked != NULL);
    /* An event of 1 MiB: more than the pipe holds, the rest waits for
     * EPOLLOUT on the events pipe while the runtime reads. */
    size_t big = 1 << 20;
    char *payload = malloc(big);
    memset(payload, 'e', big);
    struct rapi_event ev = event_of(payload, big);
    CHECK(g_parked && rapi_send_next(g_parked, &ev) == 0);
    char *buf = malloc(big + 4096);
    size_t have = 0;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 2000 && !reply_body(buf, have, big); i++) {
        ssize_t r = read(fds[0], buf + have, big + 4096 - have);
        if (r > 0)
            have += (size_t)r;
        else
            pass(epfd, 10);
    }
    const char *body = reply_body(buf, have, big);
    CHECK(body && have - (size_t)(body - buf) == big && body[0] == 'e' && buf[have - 1] == 'e');
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    fcntl(fds[0], F_SETFL, 0);
    static const char resp[] = "POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 2\r\n\r\n{}";
    CHECK(write(fds[1], resp, sizeof(resp) - 1) == (ssize_t)sizeof(resp) - 1);
    PASS_UNTIL(epfd, g_results == 1);
    CHECK(g_results == 1 && g_result_len == 2);
    have = read_reply(fds[0], buf, big, 15);
    CHECK(have > 12 && strncmp(buf, "HTTP/1.1 202 ", 13) == 0);

    /* A second connection upgrades too while this one lives, and serves. */
    int s2 = unix_connect(port);
    int fds2[2] = {-1, -1};
    CHECK(upgrade(epfd, s2, fds2, line, sizeof(line)) == 2);
    CHECK_STR(line, "HTTP/1.1 200 OK");
    close(s2);
    g_parked = NULL;
    CHECK(write(fds2[1], next_req, sizeof(next_req) - 1) == (ssize_t)sizeof(next_req) - 1);
    PASS_UNTIL(epfd, g_parked != NULL);
    struct rapi_event small = event_of("{}", 2);
    CHECK(g_parked && rapi_send_next(g_parked, &small) == 0);
    have = read_reply(fds2[0], buf, big, 2);
    CHECK(have > 17 && strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0 && !memcmp(buf + have - 2, "{}", 2));
    int closed2 = g_closed;
    close(fds2[0]);
    close(fds2[1]);
    PASS_UNTIL(epfd, g_closed > closed2);
    CHECK(g_closed == closed2 + 1);

    /* A connection asking for marshal events: the answer says so, and an
     * event is one frame (rapi.h) whose bytes Python's marshal.loads reads
     * as ('r1', 1764930000000, 'arn:aws:lambda:x', 't\xe9', '{"a":1}',
     * None, None, 'application/json', b'{}'): the trace id's Latin-1 byte
     * becomes U+00E9 in UTF-8,
     * the deadline a 3-digit long. Other answers stay HTTP. */
    s2 = unix_connect(port);
    char head[256];
    CHECK(upgrade_ex(epfd, s2, fds2, line, sizeof(line), true, head, sizeof(head)) == 2);
    CHECK_STR(head, "HTTP/1.1 200 OK\r\n" RAPI_EVENTS_HEADER ": " RAPI_EVENTS_MARSHAL
                    "\r\nContent-Length: 0\r\n\r\n");
    close(s2);
    g_parked = NULL;
    CHECK(write(fds2[1], next_req, sizeof(next_req) - 1) == (ssize_t)sizeof(next_req) - 1);
    PASS_UNTIL(epfd, g_parked != NULL);
    struct rapi_event rich = {.request_id = "r1", .deadline_ms = 1764930000000LL,
                              .function_arn = "arn:aws:lambda:x", .trace_id = "t\xe9",
                              .client_context = "{\"a\":1}", .payload = "{}", .payload_len = 2};
    CHECK(g_parked && rapi_send_next(g_parked, &rich) == 0);
    static const char frame[] =
        "\x00\x5b\x00\x00\x00\x29\x09\x75\x02\x00\x00\x00\x72\x31\x6c\x03\x00\x00\x00\x80"
        "\x14\x0d\x5c\x6b\x06\x75\x10\x00\x00\x00\x61\x72\x6e\x3a\x61\x77\x73\x3a\x6c\x61"
        "\x6d\x62\x64\x61\x3a\x78\x75\x03\x00\x00\x00\x74\xc3\xa9\x75\x07\x00\x00\x00\x7b"
        "\x22\x61\x22\x3a\x31\x7d\x4e\x4e\x75\x10\x00\x00\x00\x61\x70\x70\x6c\x69\x63\x61"
        "\x74\x69\x6f\x6e\x2f\x6a\x73\x6f\x6e\x73\x02\x00\x00\x00\x7b\x7d";
    have = read_frame(fds2[0], buf, big);
    CHECK(have == sizeof(frame) - 1 && memcmp(buf, frame, sizeof(frame) - 1) == 0);
    /* A small deadline is a 32-bit int ('i'); a status is still HTTP. */
    g_parked = NULL;
    CHECK(write(fds2[1], next_req, sizeof(next_req) - 1) == (ssize_t)sizeof(next_req) - 1);
    PASS_UNTIL(epfd, g_parked != NULL);
    CHECK(g_parked && rapi_send_next(g_parked, &small) == 0);
    have = read_frame(fds2[0], buf, big);
    CHECK(have > 19 && buf[0] == 0 && memcmp(buf + 14, "i\x01\x00\x00\x00", 5) == 0 &&
          (size_t)(unsigned char)buf[1] == have - 5 && !memcmp(buf + have - 2, "{}", 2));
    CHECK(write(fds2[1], next_req, sizeof(next_req) - 1) == (ssize_t)sizeof(next_req) - 1);
    PASS_UNTIL(epfd, g_parked != NULL);
    CHECK(g_parked != NULL);
    if (g_parked)
        rapi_send_status(g_parked, 500);
    have = read_reply(fds2[0], buf, big, 0);
    CHECK(have > 13 && strncmp(buf, "HTTP/1.1 500 ", 13) == 0);
    closed2 = g_closed;
    close(fds2[0]);
    close(fds2[1]);
    PASS_UNTIL(epfd, g_closed > closed2);
    CHECK(g_closed == closed2 + 1);

    /* 2. Both pipes closed while an event waits for room, the two events
     * dispatched in the kernel's order, then (3.) in the reverse one. */
    for (int order = 0; order < 2; order++) {
        if (order == 1) {
            s = unix_connect(port);
            CHECK(upgrade(epfd, s, fds, line, sizeof(line)) == 2);
            close(s);
            pass(epfd, 50);
        }
        g_parked = NULL;
        CHECK(write(fds[1], next_req, sizeof(next_req) - 1) == (ssize_t)sizeof(next_req) - 1);
        PASS_UNTIL(epfd, g_parked != NULL);
        CHECK(g_parked != NULL);
        CHECK(g_parked && rapi_send_next(g_parked, &ev) == 0); /* > 64 KiB: EPOLLOUT registered */
        int closed = g_closed;
        close(fds[0]);
        close(fds[1]);
        struct epoll_event evs[16];
        int n = epoll_wait(epfd, evs, 16, 1000);
        usleep(10000);
        if (n == 1) /* the second may become ready a moment later */
            n += epoll_wait(epfd, evs + 1, 15, 100);
        CHECK(n == 2);
        if (order == 1 && n == 2) {
            struct epoll_event t = evs[0];
            evs[0] = evs[1];
            evs[1] = t;
        }
        dispatch_events(evs, n);
        rapi_reap();
        CHECK(g_closed == closed + 1);
        CHECK(g_parked == NULL);
    }

    /* 4. A socket conn (no upgrade) parked in GET /next; the runtime goes
     * away; in the batch that reports its HUP, an earlier handler sends
     * the next event, which fails and closes the conn. */
    s = unix_connect(port);
    g_parked = NULL;
    CHECK(write(s, next_req, sizeof(next_req) - 1) == (ssize_t)sizeof(next_req) - 1);
    PASS_UNTIL(epfd, g_parked != NULL);
    CHECK(g_parked != NULL);
    int closed = g_closed;
    close(s);
    struct epoll_event evs[16];
    int n = epoll_wait(epfd, evs, 16, 1000);
    CHECK(n == 1);
    CHECK(g_parked && rapi_send_next(g_parked, &small) < 0); /* EPIPE: closed here */
    dispatch_events(evs, n); /* the HUP of the closed conn: ignored */
    rapi_reap();
    CHECK(g_closed == closed + 1);

    rapi_host_close(h);
    rapi_reap();
    close(epfd);
    free(payload);
    free(buf);
    return TEST_DONE();
}
