/* Unit test: a Runtime API host under a connection flood.
 *  - at most RAPI_MAX_CONNS connections are kept per host; the rest are
 *    closed as soon as accepted;
 *  - when lambdad is out of descriptors (EMFILE), pending connections are
 *    shed and the listener stops firing: the loop does not spin.
 * A child process makes the connections (its own descriptor table); the
 * parent runs the host's epoll loop like an executor. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/evloop.h"
#include "runtime/rapi.h"
#include "rapi_stubs.h"
#include "testing.h"

static const struct rapi_ops ops = {stub_next, stub_result, stub_init_error, stub_closed, NULL, NULL};

/* Child: n connections to port, held until killed. */
static pid_t flood(int port, int n)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            break;
    }
    pause();
    _exit(0);
}

/* Runs the loop for ms; returns how many epoll_wait calls returned events. */
static int run_loop(int epfd, int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int busy = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return busy;
        struct epoll_event evs[16];
        int n = epoll_wait(epfd, evs, 16, (int)left);
        if (n > 0)
            busy++;
        dispatch_events(evs, n);
        rapi_reap();
    }
}

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

int main(void)
{
    int epfd, port;
    struct rapi_host *h = open_test_host(&epfd, &port, &ops);

    /* 1. The cap: 200 connections, at most RAPI_MAX_CONNS kept. */
    int before = count_fds();
    pid_t child = flood(port, 200);
    run_loop(epfd, 1500);
    int kept = count_fds() - before;
    CHECK(kept <= RAPI_MAX_CONNS);
    CHECK(kept > 0);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    run_loop(epfd, 300); /* the peers' closes */
    CHECK(count_fds() == before);

    /* 2. EMFILE: no descriptor left for accept4; the loop must go idle
     * (before the fix it spun: the listener stayed readable). */
    struct rlimit rl, saved;
    getrlimit(RLIMIT_NOFILE, &saved);
    rl = saved;
    int hi = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            hi = fd;
    /* Fill the holes below the highest open descriptor (inherited ones
     * may sit anywhere), then forbid anything above it. */
    static int filler[1024];
    int nfill = 0;
    for (int fd; (fd = dup(0)) >= 0 && fd < hi;)
        filler[nfill++] = fd;
    for (int fd = hi + 1; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0 && fd != hi)
            close(fd); /* the dup that landed above hi */
    rl.rlim_cur = (rlim_t)hi + 1;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    child = flood(port, 40);
    usleep(300000); /* let the connections queue up */
    int busy = run_loop(epfd, 1000);
    printf("loop passes with events during 1 s of EMFILE: %d\n", busy);
    CHECK(busy < 100);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    setrlimit(RLIMIT_NOFILE, &saved);
    for (int i = 0; i < nfill; i++)
        close(filler[i]);
    run_loop(epfd, 200);
    rapi_host_close(h);
    rapi_reap();
    close(epfd);
    return TEST_DONE();
}
