/* Shared by the rapi unit tests: no-op rapi_ops callbacks and the epoll
 * batch dispatch an executor does (runtime/evloop.h). */
#ifndef LAMBDAD_TEST_RAPI_STUBS_H
#define LAMBDAD_TEST_RAPI_STUBS_H
#include <signal.h>
#include <sys/epoll.h>

#include "runtime/evloop.h"
#include "runtime/rapi.h"
#include "testing.h"

static inline int stub_next(void *u, struct rapi_conn *c)
{
    (void)u;
    (void)c;
    return 0;
}
static inline int stub_result(void *u, enum rapi_op op, const char *id, const struct http_req *r)
{
    (void)u;
    (void)op;
    (void)id;
    (void)r;
    return 202;
}
static inline int stub_init_error(void *u, const struct http_req *r)
{
    (void)u;
    (void)r;
    return 202;
}
static inline void stub_closed(void *u, struct rapi_conn *c)
{
    (void)u;
    (void)c;
}

/* Calls the handler of each event, as the executor loop does. */
static inline void dispatch_events(struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        struct ev_handler *h = evs[i].data.ptr;
        h->fn(h, evs[i].events);
    }
}

/* An epoll set (*epfd) and a Runtime API host on 127.0.0.1 registered in
 * it (its port in *port), SIGPIPE ignored as in lambdad. When the host
 * cannot open, that is a failed check and the test ends there. */
static inline struct rapi_host *open_test_host(int *epfd, int *port, const struct rapi_ops *ops)
{
    signal(SIGPIPE, SIG_IGN);
    *epfd = epoll_create1(EPOLL_CLOEXEC);
    struct rapi_host *h = NULL;
    int rc = rapi_host_open(&h, *epfd, "127.0.0.1", ops, NULL);
    CHECK(rc == 0 && h != NULL);
    if (rc || !h)
        exit(TEST_DONE());
    *port = rapi_host_port(h);
    return h;
}
#endif
