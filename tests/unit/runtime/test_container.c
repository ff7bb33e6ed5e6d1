/* Tests for runtime/container.c against the REAL Docker engine and the test
 * image lambdad-test/base:bookworm (tools/build-test-image.sh). Skips (exit
 * 77, one line) when the engine is unreachable or the image is missing.
 *
 * The test serves a minimal blocking Runtime API on 127.0.0.1 (or the
 * bridge gateway): the first GET /next gets one event, the POST /response
 * is recorded, the next GET /next is held until the container dies. The
 * handler reports its memory limit, /tmp size and which paths are
 * writable. Prints the create->STARTED and STARTED->first GET /next
 * latencies. Every container carries lambdad.instance=<per-run id>, and
 * the test checks by that label that none is left. */
#include "runtime/container.h"
#include "runtime/docker.h"
#include "runtime/lambda_env.h"
#include "runtime/log.h"
#include "testing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IMAGE "lambdad-test/base:bookworm"
#define MISSING_IMAGE "lambdad-test/does-not-exist:1"

static char instance[64], inst_label[96], code_dir[128];
static struct docker *d; /* a second client, to look at what container.c did */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void abs_deadline(struct timespec *ts, double ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    long long ns = ts->tv_nsec + (long long)(ms * 1e6);
    ts->tv_sec += ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

/* ------------------------------------------------ minimal Runtime API */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int lfd, stop[2], port;
    pthread_t thr;
    int n_next;         /* GET /next requests seen */
    double t_first_next;
    char *response;     /* body of the POST /response */
} api = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static const char EVENT[] = "{\"x\":42}";

static void api_reset(void)
{
    pthread_mutex_lock(&api.mu);
    api.n_next = 0;
    api.t_first_next = 0;
    free(api.response);
    api.response = NULL;
    pthread_mutex_unlock(&api.mu);
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more into buf; returns bytes read, 0 on EOF/stop. */
static ssize_t conn_read(int fd, char *buf, size_t room)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = api.stop[0], .events = POLLIN}};
    if (poll(p, 2, -1) <= 0 || (p[1].revents & POLLIN))
        return 0;
    ssize_t n = read(fd, buf, room);
    return n < 0 ? 0 : n;
}

static void serve_conn(int fd)
{
    char buf[65536];
    size_t len = 0;
    for (;;) {
        char *eoh;
        while (!(eoh = memmem(buf, len, "\r\n\r\n", 4))) {
            ssize_t n = conn_read(fd, buf + len, sizeof buf - 1 - len);
            if (n <= 0)
                return;
            len += (size_t)n;
        }
        size_t hlen = (size_t)(eoh - buf) + 4, clen = 0;
        buf[len] = '\0';
        for (char *h = strstr(buf, "\r\n"); h && h < eoh; h = strstr(h + 2, "\r\n"))
            if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
                clen = strtoul(h + 17, NULL, 10);
        while (len < hlen + clen) {
            ssize_t n = conn_read(fd, buf + len, sizeof buf - 1 - len);
            if (n <= 0)
                return;
            len += (size_t)n;
        }
        bool is_next = strncmp(buf, "GET ", 4) == 0 && strstr(buf, "/invocation/next") &&
                       strstr(buf, "/invocation/next") < eoh;
        bool is_resp = strncmp(buf, "POST ", 5) == 0 && strstr(buf, "/response") &&
                       strstr(buf, "/response") < eoh;
        if (is_next) {
            pthread_mutex_lock(&api.mu);
            int n = ++api.n_next;
            if (n == 1)
                api.t_first_next = now_ms();
            pthread_cond_broadcast(&api.cv);
            pthread_mutex_unlock(&api.mu);
            if (n > 1) { /* hold it: the environment is now idle */
                char dummy[256];
                while (conn_read(fd, dummy, sizeof dummy) > 0)
                    ;
                return;
            }
            char out[1024];
            long long deadline = (long long)time(NULL) * 1000 + 60000;
            int m = snprintf(out, sizeof out,
                             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Lambda-Runtime-Aws-Request-Id: req-1\r\n"
                             "Lambda-Runtime-Deadline-Ms: %lld\r\n"
                             "Lambda-Runtime-Invoked-Function-Arn: "
                             "arn:aws:lambda:us-east-1:000000000000:function:ctr\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             deadline, strlen(EVENT), EVENT);
            if (send_all(fd, out, (size_t)m) < 0)
                return;
        } else {
            if (is_resp) {
                pthread_mutex_lock(&api.mu);
                free(api.response);
                api.response = strndup(buf + hlen, clen);
                pthread_cond_broadcast(&api.cv);
                pthread_mutex_unlock(&api.mu);
            }
            static const char ok[] = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                                     "Content-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";
            if (send_all(fd, ok, sizeof ok - 1) < 0)
                return;
        }
        memmove(buf, buf + hlen + clen, len - hlen - clen);
        len -= hlen + clen;
    }
}

static void *api_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = api.lfd, .events = POLLIN},
                              {.fd = api.stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) <= 0 || (p[1].revents & POLLIN))
            return NULL;
        int fd = accept(api.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_conn(fd);
        close(fd);
    }
}

static int api_start(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof a;
    inet_pton(AF_INET, ip, &a.sin_addr);
    api.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(api.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(api.lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(api.lfd, 16) < 0 ||
        getsockname(api.lfd, (struct sockaddr *)&a, &al) < 0 || pipe(api.stop) < 0) {
        perror("runtime api listener");
        return -1;
    }
    api.port = ntohs(a.sin_port);
    return pthread_create(&api.thr, NULL, api_main, NULL) == 0 ? 0 : -1;
}

static void api_stop(void)
{
    if (write(api.stop[1], "x", 1) != 1)
        abort();
    pthread_join(api.thr, NULL);
    close(api.lfd);
    close(api.stop[0]);
    close(api.stop[1]);
    api_reset();
}

/* Waits until pred holds (under api.mu); false on timeout. */
static bool api_wait_next(double timeout_ms)
{
    struct timespec ts;
    abs_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&api.mu);
    int rc = 0;
    while (api.n_next == 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&api.cv, &api.mu, &ts);
    bool ok = api.n_next > 0;
    pthread_mutex_unlock(&api.mu);
    return ok;
}

static char *api_wait_response(double timeout_ms)
{
    struct timespec ts;
    abs_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&api.mu);
    int rc = 0;
    while (!api.response && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&api.cv, &api.mu, &ts);
    char *r = api.response ? strdup(api.response) : NULL;
    pthread_mutex_unlock(&api.mu);
    return r;
}

/* ------------------------------- tcp -> unix proxy: a "remote" engine */

static struct {
    int lfd, port;
    pthread_t thr;
} proxy;

static void *relay_main(void *arg)
{
    int a = (int)(intptr_t)arg;
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    snprintf(u.sun_path, sizeof u.sun_path, "/var/run/docker.sock");
    int b = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (b >= 0 && connect(b, (struct sockaddr *)&u, sizeof u) == 0) {
        char buf[65536];
        struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        for (;;) {
            if (poll(p, 2, -1) <= 0)
                break;
            int from = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
            ssize_t n = read(p[from].fd, buf, sizeof buf);
            if (n <= 0 || send_all(p[1 - from].fd, buf, (size_t)n) < 0)
                break;
        }
    }
    if (b >= 0)
        close(b);
    close(a);
    return NULL;
}

static void *proxy_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept4(proxy.lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return NULL; /* listener shut down */
        pthread_t t;
        if (pthread_create(&t, NULL, relay_main, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static int proxy_start(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    proxy.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(proxy.lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(proxy.lfd, 64) < 0 ||
        getsockname(proxy.lfd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    proxy.port = ntohs(a.sin_port);
    return pthread_create(&proxy.thr, NULL, proxy_main, NULL) == 0 ? 0 : -1;
}

static void proxy_stop(void)
{
    shutdown(proxy.lfd, SHUT_RDWR);
    pthread_join(proxy.thr, NULL);
    close(proxy.lfd);
}

/* ------------------------------------------------------------- events */

struct events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_started, n_final, n_after_final;
    enum container_event final;
    int status;
    char msg[1024];
    double t_started, t_final;
};

static void on_event(void *user, enum container_event ev, int status, const char *msg)
{
    struct events *e = user;
    pthread_mutex_lock(&e->mu);
    if (e->n_final)
        e->n_after_final++;
    if (ev == CONTAINER_STARTED) {
        e->n_started++;
        e->t_started = now_ms();
    } else {
        e->n_final++;
        e->final = ev;
        e->status = status;
        snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "(null)");
        e->t_final = now_ms();
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void events_init(struct events *e)
{
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
}

/* Waits for STARTED (want_final false) or the final event. */
static bool events_wait(struct events *e, bool want_final, double timeout_ms)
{
    struct timespec ts;
    abs_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    while (!(want_final ? e->n_final : e->n_started || e->n_final) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&e->cv, &e->mu, &ts);
    bool ok = want_final ? e->n_final > 0 : e->n_started > 0;
    pthread_mutex_unlock(&e->mu);
    return ok;
}

/* ------------------------------------------------------------ helpers */

static struct fn_spec *make_spec(const char *name, const char *runtime)
{
    struct fn_spec *s = fnspec_new();
    s->key = fnspec_strdup("us-east-1/000000000000/ctr");
    s->name = fnspec_strdup(name);
    s->version = fnspec_strdup("$LATEST");
    s->arn = fnspec_strdup("arn:aws:lambda:us-east-1:000000000000:function:ctr");
    s->region = fnspec_strdup("us-east-1");
    s->account = fnspec_strdup("000000000000");
    s->runtime = fnspec_strdup(runtime);
    s->handler = fnspec_strdup("app.handler");
    s->package_type = fnspec_strdup("Zip");
    s->code_dir = fnspec_strdup(code_dir);
    s->memory_mb = 256;
    s->timeout_s = 30;
    s->ephemeral_mb = 600;
    s->log_group = fnspec_strdup("/aws/lambda/ctr");
    s->log_format = fnspec_strdup("Text");
    snprintf(s->deploy_id, sizeof s->deploy_id, "deploy-test");
    return s;
}

static char **make_env(const struct fn_spec *s)
{
    char rapi[96];
    snprintf(rapi, sizeof rapi, "%s:%d", container_host_for_container(), api.port);
    struct lambda_env_opts o = {
        .runtime_api = rapi,
        .task_root = "/var/task",
        .endpoint_url = "http://127.0.0.1:9",
        .log_stream = "2025/01/01/[$LATEST]00000000000000000000000000000000",
        .runtime_dir = "/var/runtime",
        .container = true,
        .container_host = container_host_for_container(),
    };
    return lambda_env_build(s, &o);
}

static int count_instance(void)
{
    char err[DOCKER_ERR_MAX];
    int n = docker_containers_list_by_label(d, inst_label, NULL, err);
    if (n < 0)
        fprintf(stderr, "list: %s\n", err);
    return n;
}

/* Reads what is left in the log pipe (the helper closed its end). */
static void read_log(int fd, char *out, size_t outlen)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t n = read(fd, out + len, outlen - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
}

static int start(struct container **c, struct fn_spec *s, const char *name, struct events *ev,
                 int *log_rd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    char **envp = make_env(s);
    struct container_start_opts o = {
        .spec = s, .envp = envp, .log_fd = p[1], .name = name, .cb = on_event, .user = ev};
    int rc = container_start(c, &o);
    lambda_env_free(envp);
    *log_rd = p[0];
    return rc;
}

static void write_code(void)
{
    char path[256];
    snprintf(code_dir, sizeof code_dir, "/tmp/lambdad-test-ctr-XXXXXX");
    if (!mkdtemp(code_dir))
        abort();
    chmod(code_dir, 0755);
    snprintf(path, sizeof path, "%s/app.py", code_dir);
    FILE *f = fopen(path, "w");
    fputs("import os\n"
          "def writable(p):\n"
          "    try:\n"
          "        open(p, 'w').close(); os.unlink(p); return True\n"
          "    except OSError:\n"
          "        return False\n"
          "def handler(event, context):\n"
          "    print('hello from handler', event.get('x'), flush=True)\n"
          "    mem = None\n"
          "    for p in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):\n"
          "        try:\n"
          "            mem = open(p).read().strip(); break\n"
          "        except OSError:\n"
          "            pass\n"
          "    st = os.statvfs('/tmp')\n"
          "    return {'x': event.get('x'), 'mem': mem,\n"
          "            'tmp_mb': st.f_blocks * st.f_frsize // 1048576,\n"
          "            'cwd': os.getcwd(), 'fn': context.function_name,\n"
          "            'tmp_w': writable('/tmp/probe'), 'task_w': writable('/var/task/probe'),\n"
          "            'root_w': writable('/probe')}\n",
          f);
    fclose(f);
    chmod(path, 0644);
}

static void rm_code(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/app.py", code_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/__pycache__", code_dir);
    rmdir(path);
    rmdir(code_dir);
}

/* -------------------------------------------------------------- tests */

static void test_image_map(void)
{
    const char *e;
    struct fn_spec *s = make_spec("map", "python3.9");
    char *img = container_image_for(s, &e);
    CHECK_STR(img, "public.ecr.aws/lambda/python:3.9");
    free(img);
    const char *cases[][2] = {
        {"python3.14", "public.ecr.aws/lambda/python:3.14"},
        {"nodejs20.x", "public.ecr.aws/lambda/nodejs:20"},
        {"nodejs24.x", "public.ecr.aws/lambda/nodejs:24"},
        {"ruby3.4", "public.ecr.aws/lambda/ruby:3.4"},
        {"java8.al2", "public.ecr.aws/lambda/java:8.al2"},
        {"java21", "public.ecr.aws/lambda/java:21"},
        {"dotnet8", "public.ecr.aws/lambda/dotnet:8"},
        {"provided.al2", IMAGE}, /* overridden */
        {"provided.al2023", "public.ecr.aws/lambda/provided:al2023"},
        {"python3.12", IMAGE}, /* override wins */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        free(s->runtime);
        s->runtime = fnspec_strdup(cases[i][0]);
        img = container_image_for(s, &e);
        CHECK_STR(img, cases[i][1]);
        free(img);
    }
    free(s->runtime);
    s->runtime = fnspec_strdup("python2.7");
    e = NULL;
    img = container_image_for(s, &e);
    CHECK(img == NULL && e != NULL);
    free(s->runtime);
    s->runtime = NULL;
    free(s->package_type);
    s->package_type = fnspec_strdup("Image");
    s->image_uri = fnspec_strdup("123456789012.dkr.ecr.us-east-1.amazonaws.com/fn:v1");
    img = container_image_for(s, &e);
    CHECK_STR(img, "123456789012.dkr.ecr.us-east-1.amazonaws.com/fn:v1");
    free(img);
    fnspec_unref(s);
}

/* One full cold start, invoke, kill. Returns 0 when everything held. */
static void run_python(int round, const char *net, bool remote)
{
    struct events ev;
    events_init(&ev);
    api_reset();
    struct fn_spec *s = make_spec("ctr-py", "python3.12");
    char name[96], log[8192];
    snprintf(name, sizeof name, "lambdad-test-%s-py-%d", instance, round);
    struct container *c = NULL;
    int log_rd = -1;
    double t0 = now_ms();
    int rc = start(&c, s, name, &ev, &log_rd);
    CHECK(rc == 0);
    if (rc != 0) {
        fnspec_unref(s);
        return;
    }
    CHECK_STR(container_id(c), ""); /* an engine round trip away from STARTED */
    bool started = events_wait(&ev, false, 60000);
    CHECK(started);
    if (!started)
        fprintf(stderr, "no STARTED: final=%d msg=%s\n", ev.n_final, ev.msg);
    bool nexted = started && api_wait_next(30000);
    CHECK(nexted);
    char *resp = nexted ? api_wait_response(30000) : NULL;
    CHECK(resp != NULL);
    CHECK(strlen(container_id(c)) == 64);
    CHECK(count_instance() == 1);
    if (resp) {
        json_t *j = json_loads(resp, 0, NULL);
        CHECK(j != NULL);
        CHECK(json_integer_value(json_object_get(j, "x")) == 42);
        CHECK_STR(json_string_value(json_object_get(j, "mem")), "268435456");
        CHECK(json_integer_value(json_object_get(j, "tmp_mb")) == 600);
        CHECK_STR(json_string_value(json_object_get(j, "cwd")), "/var/task");
        CHECK_STR(json_string_value(json_object_get(j, "fn")), "ctr-py");
        CHECK(json_is_true(json_object_get(j, "tmp_w")));
        /* Bind-mounted read-only and a read-only root locally; a remote
         * engine gets uploaded (writable) copies. */
        CHECK(json_is_boolean(json_object_get(j, "task_w")) &&
              json_is_true(json_object_get(j, "task_w")) == remote);
        CHECK(json_is_boolean(json_object_get(j, "root_w")) &&
              json_is_true(json_object_get(j, "root_w")) == remote);
        if (round == 0)
            printf("handler saw: %s\n", resp);
        json_decref(j);
    }
    /* The bootstrap's second GET /next is now held: the environment is idle. */
    double t_kill = now_ms();
    container_kill(c);
    container_kill(c); /* twice is fine */
    bool fin = events_wait(&ev, true, 30000);
    CHECK(fin);
    CHECK(ev.final == CONTAINER_EXITED);
    CHECK(ev.status == 137);
    read_log(log_rd, log, sizeof log);
    CHECK(strstr(log, "hello from handler 42") != NULL);
    if (!nexted)
        fprintf(stderr, "no GET /next; final event %d status %d, output:\n%s\n", ev.final,
                ev.status, log);
    container_release(c);
    CHECK(ev.n_started == 1 && ev.n_final == 1 && ev.n_after_final == 0);
    CHECK(count_instance() == 0);
    printf("[%s] round %d: create->STARTED %.1f ms, STARTED->first GET /next %.1f ms, "
           "kill->EXITED %.1f ms\n",
           net, round, ev.t_started - t0, api.t_first_next - ev.t_started, ev.t_final - t_kill);
    free(resp);
    close(log_rd);
    fnspec_unref(s);
}

static void test_missing_image(void)
{
    struct events ev;
    events_init(&ev);
    struct fn_spec *s = make_spec("ctr-missing", "python3.11");
    char name[96], log[256];
    snprintf(name, sizeof name, "lambdad-test-%s-missing", instance);
    struct container *c = NULL;
    int log_rd = -1;
    double t0 = now_ms();
    CHECK(start(&c, s, name, &ev, &log_rd) == 0);
    CHECK(events_wait(&ev, true, 10000));
    double dt = ev.t_final - t0;
    CHECK(ev.final == CONTAINER_FAILED);
    CHECK(strstr(ev.msg, MISSING_IMAGE) != NULL);
    CHECK(strstr(ev.msg, "not available") != NULL);
    CHECK(dt < 3000);
    read_log(log_rd, log, sizeof log); /* EOF: the helper closed its end */
    CHECK(log[0] == '\0');
    container_release(c);
    CHECK(ev.n_started == 0 && ev.n_final == 1 && ev.n_after_final == 0);
    CHECK(count_instance() == 0);
    printf("missing image: FAILED after %.1f ms: %s\n", dt, ev.msg);
    close(log_rd);
    fnspec_unref(s);
}

/* Kills at different moments of the start-up: whatever the moment, one
 * final event, nothing left behind. */
static void test_kill_early(void)
{
    const int delays_us[] = {0, 0, 2000, 10000, 30000, 60000, 120000, 250000};
    for (size_t i = 0; i < sizeof delays_us / sizeof delays_us[0]; i++) {
        struct events ev;
        events_init(&ev);
        api_reset();
        struct fn_spec *s = make_spec("ctr-kill", "python3.12");
        char name[96];
        snprintf(name, sizeof name, "lambdad-test-%s-kill-%zu", instance, i);
        struct container *c = NULL;
        int log_rd = -1;
        CHECK(start(&c, s, name, &ev, &log_rd) == 0);
        if (delays_us[i]) {
            struct timespec ts = {0, delays_us[i] * 1000L};
            nanosleep(&ts, NULL);
        }
        container_kill(c);
        CHECK(events_wait(&ev, true, 30000));
        container_release(c); /* joins: no event can follow */
        CHECK(ev.n_final == 1 && ev.n_after_final == 0);
        CHECK((ev.final == CONTAINER_FAILED && strcmp(ev.msg, "killed before start") == 0 &&
               ev.n_started == 0) ||
              (ev.final == CONTAINER_EXITED && ev.status == 137));
        CHECK(count_instance() == 0);
        printf("kill after %3d ms: %s %d \"%s\" (STARTED %d)\n", delays_us[i] / 1000,
               ev.final == CONTAINER_FAILED ? "FAILED" : "EXITED", ev.status, ev.msg,
               ev.n_started);
        close(log_rd);
        fnspec_unref(s);
    }
}

/* A custom runtime (provided.*): /var/task/bootstrap runs in /var/task;
 * one that exits by itself yields EXITED with its status and its output. */
static void test_provided_exits(void)
{
    struct events ev;
    events_init(&ev);
    char dir[] = "/tmp/lambdad-test-ctr-prov-XXXXXX", path[128], log[1024];
    CHECK(mkdtemp(dir) != NULL);
    chmod(dir, 0755);
    snprintf(path, sizeof path, "%s/bootstrap", dir);
    FILE *f = fopen(path, "w");
    fputs("#!/bin/sh\necho \"custom bootstrap in $(pwd) handler=$_HANDLER\"\nexit 3\n", f);
    fclose(f);
    chmod(path, 0755);
    struct fn_spec *s = make_spec("ctr-prov", "provided.al2");
    free(s->code_dir);
    s->code_dir = fnspec_strdup(dir);
    char name[96];
    snprintf(name, sizeof name, "lambdad-test-%s-provided", instance);
    struct container *c = NULL;
    int log_rd = -1;
    CHECK(start(&c, s, name, &ev, &log_rd) == 0);
    CHECK(events_wait(&ev, true, 30000));
    read_log(log_rd, log, sizeof log);
    container_release(c);
    CHECK(ev.n_final == 1 && ev.n_after_final == 0);
    CHECK(ev.final == CONTAINER_EXITED && ev.status == 3);
    CHECK(strstr(log, "custom bootstrap in /var/task handler=app.handler") != NULL);
    CHECK(count_instance() == 0);
    printf("provided: %s %d, output: %s", ev.final == CONTAINER_EXITED ? "EXITED" : "FAILED",
           ev.status, log);
    close(log_rd);

    /* Not executable: the engine refuses the start. The helper must let go
     * of its attach to the never-started container and report FAILED. */
    events_init(&ev);
    chmod(path, 0644);
    snprintf(name, sizeof name, "lambdad-test-%s-provided-noexec", instance);
    double t0 = now_ms();
    CHECK(start(&c, s, name, &ev, &log_rd) == 0);
    CHECK(events_wait(&ev, true, 30000));
    container_release(c);
    CHECK(ev.n_final == 1 && ev.n_started == 0);
    CHECK(ev.final == CONTAINER_FAILED && strstr(ev.msg, "cannot start the container") != NULL);
    CHECK(count_instance() == 0);
    printf("provided, bootstrap not executable: FAILED after %.1f ms: %s\n", now_ms() - t0,
           ev.msg);
    close(log_rd);
    unlink(path);
    rmdir(dir);
    fnspec_unref(s);
}

/* container_shutdown with a running container: it gets killed (EXITED,
 * one final event) and nothing of the instance is left. */
static void test_shutdown(void)
{
    struct events ev;
    events_init(&ev);
    api_reset();
    struct fn_spec *s = make_spec("ctr-shut", "python3.12");
    char name[96], log[4096];
    snprintf(name, sizeof name, "lambdad-test-%s-shutdown", instance);
    struct container *c = NULL;
    int log_rd = -1;
    CHECK(start(&c, s, name, &ev, &log_rd) == 0);
    CHECK(events_wait(&ev, false, 60000));
    CHECK(api_wait_next(30000));
    CHECK(count_instance() == 1);
    container_shutdown();
    pthread_mutex_lock(&ev.mu); /* delivered before shutdown returned */
    CHECK(ev.n_final == 1);
    CHECK(ev.final == CONTAINER_EXITED && ev.status == 137);
    pthread_mutex_unlock(&ev.mu);
    read_log(log_rd, log, sizeof log);
    container_release(c);
    CHECK(count_instance() == 0);
    CHECK(!container_available());
    close(log_rd);
    fnspec_unref(s);
}

/* Creates (does not start) a labelled container; owner NULL = no owner
 * label. Returns 0 and fills id. */
static int create_labelled(const char *owner, char id[DOCKER_ID_MAX])
{
    char err[DOCKER_ERR_MAX], own[300];
    const char *cmd[] = {"true", NULL};
    snprintf(own, sizeof own, "lambdad.owner=%s", owner ? owner : "");
    const char *labels[] = {"lambdad=1", inst_label, owner ? own : NULL, NULL};
    struct docker_create_opts o = {.image = IMAGE, .cmd = cmd, .labels = labels};
    int rc = docker_container_create(d, &o, id, err);
    if (rc < 0)
        fprintf(stderr, "create: %s\n", err);
    return rc;
}

static bool exists(const char *id)
{
    bool running;
    return docker_container_inspect_state(d, id, &running, NULL, NULL, NULL) == 0;
}

static int init_with(const char *network, const char **overrides, const char *host);

/* container_init removes leftovers of dead lambdad processes, never the
 * containers of a lambdad that is still running. */
static void test_leftovers(void)
{
    char host[128] = "?", boot[64] = "?", live[300], dead[300];
    gethostname(host, sizeof host - 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (fgets(boot, sizeof boot, f))
            boot[strcspn(boot, "\n")] = '\0';
        fclose(f);
    }
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    snprintf(live, sizeof live, "%s/%s/%d", host, boot, (int)getppid()); /* our shell: alive */
    snprintf(dead, sizeof dead, "%s/%s/%d", host, boot, (int)child);
    char id_live[DOCKER_ID_MAX], id_dead[DOCKER_ID_MAX], id_none[DOCKER_ID_MAX],
        id_other[DOCKER_ID_MAX];
    CHECK(create_labelled(live, id_live) == 0);
    CHECK(create_labelled(dead, id_dead) == 0);
    CHECK(create_labelled(NULL, id_none) == 0);
    CHECK(create_labelled("another-host/some-boot/1", id_other) == 0);
    CHECK(init_with("host", NULL, NULL) == 0);
    CHECK(exists(id_live));
    CHECK(!exists(id_dead));
    CHECK(!exists(id_none));
    CHECK(exists(id_other));
    container_shutdown(); /* removes this instance's: the two survivors too */
    CHECK(!exists(id_live) && !exists(id_other));
}

static int init_with(const char *network, const char **overrides, const char *host)
{
    struct container_config cfg = {
        .docker_host = host,
        .network = network,
        .image_overrides = overrides,
        .instance_id = instance,
        .bootstrap_dir = LAMBDAD_SOURCE_DIR "/runtime/bootstrap",
    };
    char err[512];
    int rc = container_init(&cfg, err);
    if (rc < 0)
        fprintf(stderr, "container_init: %s\n", err);
    return rc;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("LAMBDAD_TEST_DEBUG")) /* shows create/attach/start times */
        log_set_level(LOG_LEVEL_DEBUG);
    char err[DOCKER_ERR_MAX];
    if (docker_open(&d, NULL, err) < 0 || docker_ping(d, err) < 0) {
        printf("SKIP: Docker engine unreachable: %s\n", err);
        return TEST_SKIP();
    }
    if (docker_image_exists(d, IMAGE, err) != 1) {
        printf("SKIP: image %s missing (run tools/build-test-image.sh)\n", IMAGE);
        docker_close(d);
        return TEST_SKIP();
    }
    snprintf(instance, sizeof instance, "unit-%d", (int)getpid());
    snprintf(inst_label, sizeof inst_label, "lambdad.instance=%s", instance);
    write_code();
    const char *overrides[] = {"python3.12=" IMAGE, "python3.11=" MISSING_IMAGE,
                               "provided.al2=" IMAGE, NULL};

    test_leftovers();

    /* Host networking (the Linux default). */
    CHECK(init_with("host", overrides, NULL) == 0);
    CHECK(container_available());
    CHECK_STR(container_bind_ip(), "127.0.0.1");
    CHECK_STR(container_host_for_container(), "127.0.0.1");
    test_image_map();
    if (api_start(container_bind_ip()) == 0) {
        for (int i = 0; i < 3; i++)
            run_python(i, "host", false);
        test_missing_image();
        test_kill_early();
        test_provided_exits();
        test_shutdown();
        api_stop();
    } else {
        CHECK(!"runtime api listener");
    }

    /* Bridge networking: the listener on the bridge gateway, containers
     * reach it as host.docker.internal. */
    CHECK(init_with("bridge", overrides, NULL) == 0);
    char gw[64];
    CHECK(docker_network_gateway(d, "bridge", gw, err) == 0);
    CHECK_STR(container_bind_ip(), gw);
    CHECK_STR(container_host_for_container(), "host.docker.internal");
    if (api_start(container_bind_ip()) == 0) {
        run_python(0, "bridge", false);
        api_stop();
    } else {
        CHECK(!"runtime api listener on the bridge gateway");
    }
    container_shutdown();
    CHECK(count_instance() == 0);

    /* A "remote" engine (tcp://, through a relay to the local socket): no
     * bind mounts, the code and the bootstraps are uploaded. */
    char tcp[64];
    CHECK(proxy_start() == 0);
    snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", proxy.port);
    CHECK(init_with("host", overrides, tcp) == 0);
    if (api_start(container_bind_ip()) == 0) {
        run_python(0, "remote", true);
        api_stop();
    }
    container_shutdown();
    proxy_stop();
    CHECK(count_instance() == 0);

    /* An unreachable engine: a clear error naming the address. */
    char e2[512];
    struct container_config bad = {.docker_host = "unix:///nonexistent/docker.sock",
                                   .instance_id = instance};
    CHECK(container_init(&bad, e2) < 0);
    CHECK(strstr(e2, "cannot reach the Docker engine at unix:///nonexistent/docker.sock") != NULL);
    CHECK(!container_available());
    printf("unreachable engine: %s\n", e2);

    rm_code();
    docker_close(d);
    return TEST_DONE();
}
