/* Tests for runtime/docker.c against the REAL Docker engine (DOCKER_HOST or
 * the default socket). Skips (exit 77) when the engine is unreachable or
 * the test image (tools/build-test-image.sh) is missing. Every container
 * carries a per-run label and is removed at the end, also on failure.
 *
 * Besides assertions it prints measurements: create+start latency, output
 * latency of logs_follow vs attach, pull failure time. */
#include "runtime/docker.h"
#include "testing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAGE "lambdad-test/base:bookworm"

static struct docker *d;
static char label[96];  /* "org.lambdad.unit=test-docker-<pid>" */
static char err[DOCKER_ERR_MAX];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void count_line(const char *line, void *user)
{
    (void)line;
    (*(int *)user)++;
}

/* Creates a labelled container running argv; returns 0 and fills id. */
static int create(const char *const *cmd, struct docker_create_opts *extra, char id[DOCKER_ID_MAX])
{
    struct docker_create_opts o = {0};
    if (extra)
        o = *extra;
    const char *labels[] = {label, NULL};
    o.image = IMAGE;
    o.cmd = cmd;
    o.labels = labels;
    int rc = docker_container_create(d, &o, id, err);
    if (rc < 0)
        fprintf(stderr, "create: %s\n", err);
    return rc;
}

/* Runs a logs_follow (or attach) into a pipe on a helper thread; the main
 * thread collects the text and the arrival time of each line. */
struct reader {
    const char *id;
    bool attach;
    int pipe[2];
    int rc;
    char errbuf[DOCKER_ERR_MAX];
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool attached;
};

static int on_attached(void *user)
{
    struct reader *r = user;
    pthread_mutex_lock(&r->mu);
    r->attached = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    if (r->attach)
        r->rc = docker_container_attach(d, r->id, r->pipe[1], on_attached, r, r->errbuf);
    else
        r->rc = docker_container_logs_follow(d, r->id, r->pipe[1], r->errbuf);
    close(r->pipe[1]);
    if (r->attach && !r->attached)
        on_attached(r); /* failed: do not leave the starter waiting */
    return NULL;
}

static void reader_start(struct reader *r, const char *id, bool attach)
{
    memset(r, 0, sizeof *r);
    r->id = id;
    r->attach = attach;
    if (pipe(r->pipe) < 0)
        abort();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_create(&r->thr, NULL, reader_main, r);
    if (attach) { /* start the container only once the stream is up */
        pthread_mutex_lock(&r->mu);
        while (!r->attached)
            pthread_cond_wait(&r->cv, &r->mu);
        pthread_mutex_unlock(&r->mu);
    }
}

/* Reads everything (bounded by timeout_ms) into out; for each line that is
 * a wall-clock timestamp in ns (from `date +%s%N` inside the container),
 * accumulates its delivery latency. Returns after EOF. */
static void reader_collect(struct reader *r, char *out, size_t outlen, double timeout_ms,
                           double *lat_sum, int *lat_n)
{
    size_t len = 0;
    double end = now_ms() + timeout_ms;
    out[0] = '\0';
    for (;;) {
        struct pollfd p = {.fd = r->pipe[0], .events = POLLIN};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(r->pipe[0], out + len, outlen - 1 - len);
        if (n <= 0)
            break;
        double t = wall_ms();
        out[len + (size_t)n] = '\0';
        if (lat_sum) {
            /* Lines completed by this read. */
            char *line = out + len;
            while (line > out && line[-1] != '\n')
                line--;
            for (char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
                long long ns = strtoll(line, NULL, 10);
                if (ns > 1000000000000000000LL) {
                    *lat_sum += t - ns / 1e6;
                    (*lat_n)++;
                }
            }
        }
        len += (size_t)n;
        if (len + 1 >= outlen)
            break;
    }
    pthread_join(r->thr, NULL);
    close(r->pipe[0]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void test_image(void)
{
    struct docker_image_config c;
    CHECK(docker_image_config(d, IMAGE, &c, err) == 0);
    CHECK(c.cmd && c.cmd[0] && strcmp(c.cmd[0], "/bin/sh") == 0);
    CHECK(c.entrypoint == NULL);
    CHECK_STR(c.working_dir, "/var/task");
    CHECK(!docker_image_is_lambda_base(&c));
    bool has_path = false;
    for (char **e = c.env; e && *e; e++)
        has_path |= strncmp(*e, "PATH=", 5) == 0;
    CHECK(has_path);
    CHECK(c.size > 10 << 20);
    printf("# image %s: %lld MB\n", IMAGE, (long long)(c.size >> 20));
    docker_image_config_free(&c);

    struct docker_image_config aws = {0};
    char *ep[] = {"/lambda-entrypoint.sh", NULL};
    aws.entrypoint = ep;
    CHECK(docker_image_is_lambda_base(&aws));

    CHECK(docker_image_exists(d, "lambdad-test/no-such-image:x", err) == 0);
    CHECK(docker_image_config(d, "lambdad-test/no-such-image:x", &c, err) == -ENOENT);
    CHECK(strstr(err, "lambdad-test/no-such-image:x") != NULL);
}

/* echo to stdout and stderr, exit 3: logs, wait, inspect. */
static void test_run_logs_wait(void)
{
    const char *cmd[] = {"sh", "-c", "echo hello; echo err >&2; exit 3", NULL};
    char id[DOCKER_ID_MAX], out[4096];
    double t0 = now_ms();
    CHECK(create(cmd, NULL, id) == 0);
    CHECK(strlen(id) == 64);
    double t1 = now_ms();
    CHECK(docker_container_start(d, id, err) == 0);
    double t2 = now_ms();
    printf("# create %.1f ms, start %.1f ms\n", t1 - t0, t2 - t1);
    struct reader r;
    reader_start(&r, id, false);
    reader_collect(&r, out, sizeof out, 20000, NULL, NULL);
    CHECK(r.rc == 0);
    CHECK(strstr(out, "hello\n") != NULL);
    CHECK(strstr(out, "err\n") != NULL);
    CHECK(strlen(out) == strlen("hello\nerr\n")); /* headers stripped */
    int code = -1;
    CHECK(docker_container_wait(d, id, 20000, &code, err) == 0);
    CHECK(code == 3);
    bool running = true, oom = true;
    code = -1;
    CHECK(docker_container_inspect_state(d, id, &running, &code, &oom, err) == 0);
    CHECK(!running);
    CHECK(code == 3);
    CHECK(!oom);
    CHECK(docker_container_remove(d, id, true, err) == 0);
    CHECK(docker_container_inspect_state(d, id, NULL, NULL, NULL, err) == -ENOENT);
    CHECK(docker_container_remove(d, id, true, err) == -ENOENT);

    /* Name conflicts and missing images are reported as such. */
    char name[64], id2[DOCKER_ID_MAX];
    snprintf(name, sizeof name, "lambdad-unit-%d", (int)getpid());
    struct docker_create_opts o = {.name = name};
    CHECK(create(cmd, &o, id) == 0);
    CHECK(docker_container_create(d, &(struct docker_create_opts){.name = name, .image = IMAGE},
                                  id2, err) == -EEXIST);
    CHECK(strstr(err, name) != NULL);
    CHECK(docker_container_create(d, &(struct docker_create_opts){.image = "lambdad-test/nope:0"},
                                  id2, err) == -ENOENT);
    CHECK(strstr(err, "lambdad-test/nope:0") != NULL);
    CHECK(docker_container_remove(d, id, false, err) == 0);
}

/* Memory limit and tmpfs size are visible inside the container. */
static void test_limits(void)
{
    const char *cmd[] = {"sh", "-c",
                         "cat /sys/fs/cgroup/memory.max 2>/dev/null ||"
                         " cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
                         " df -m /tmp | tail -1; echo x > /tmp/w && echo tmp-writable;"
                         /* The group's 2>/dev/null also silences the shell's own
                          * "cannot create" message, which would otherwise race
                          * the stdout lines parsed below (separate streams). */
                         " { echo y > /root-ro; } 2>/dev/null || echo rootfs-ro",
                         NULL};
    const char *tmpfs[] = {"/tmp:rw,exec,size=64m", NULL};
    struct docker_create_opts o = {.memory_bytes = 256ll << 20, .tmpfs = tmpfs,
                                   .readonly_rootfs = true, .nano_cpus = 500000000};
    char id[DOCKER_ID_MAX], out[4096];
    CHECK(create(cmd, &o, id) == 0);
    CHECK(docker_container_start(d, id, err) == 0);
    struct reader r;
    reader_start(&r, id, false);
    reader_collect(&r, out, sizeof out, 20000, NULL, NULL);
    CHECK(r.rc == 0);
    long long mem = strtoll(out, NULL, 10);
    CHECK(mem == 256ll << 20);
    /* "tmpfs  64  0  64  0% /tmp" */
    char fs[64] = "", mnt[64] = "";
    long long blocks = 0;
    const char *l2 = strchr(out, '\n');
    CHECK(l2 && sscanf(l2 + 1, "%63s %lld %*d %*d %*s %63s", fs, &blocks, mnt) == 3);
    CHECK_STR(fs, "tmpfs");
    CHECK(blocks == 64);
    CHECK_STR(mnt, "/tmp");
    CHECK(strstr(out, "tmp-writable\n") != NULL);
    CHECK(strstr(out, "rootfs-ro\n") != NULL);
    if (mem != 256ll << 20 || blocks != 64)
        fprintf(stderr, "limits output: %s\n", out);
    CHECK(docker_container_remove(d, id, true, err) == 0);
}

/* A long-running container: running state, kill, exit 137, remove. */
static void test_kill(void)
{
    const char *cmd[] = {"sleep", "60", NULL};
    char id[DOCKER_ID_MAX];
    CHECK(create(cmd, NULL, id) == 0);
    CHECK(docker_container_start(d, id, err) == 0);
    bool running = false;
    CHECK(docker_container_inspect_state(d, id, &running, NULL, NULL, err) == 0);
    CHECK(running);
    double t0 = now_ms();
    CHECK(docker_container_kill(d, id, "SIGKILL", err) == 0);
    int code = -1;
    CHECK(docker_container_wait(d, id, 20000, &code, err) == 0);
    CHECK(code == 137);
    printf("# kill+wait %.1f ms\n", now_ms() - t0);
    CHECK(docker_container_kill(d, id, NULL, err) == -EEXIST); /* not running */
    CHECK(strstr(err, id) != NULL);
    CHECK(docker_container_kill(d, id, "BAD;SIG", err) == -EINVAL);
    CHECK(docker_container_remove(d, id, false, err) == 0);
}

/* Output latency of logs_follow vs attach: the container prints its wall
 * clock in ns every 100 ms; we time each line's arrival. */
static void test_stream_latency(void)
{
    const char *cmd[] = {"sh", "-c",
                         "for i in 1 2 3 4 5 6 7 8 9 10; do date +%s%N; sleep 0.1; done;"
                         " echo done >&2",
                         NULL};
    for (int attach = 0; attach <= 1; attach++) {
        char id[DOCKER_ID_MAX], out[8192];
        /* attach works without a log file: no disk writes per line */
        struct docker_create_opts o = {.log_driver = attach ? "none" : NULL};
        CHECK(create(cmd, &o, id) == 0);
        struct reader r;
        if (attach) {
            reader_start(&r, id, true);
            CHECK(docker_container_start(d, id, err) == 0);
        } else {
            CHECK(docker_container_start(d, id, err) == 0);
            reader_start(&r, id, false);
        }
        double sum = 0;
        int n = 0;
        reader_collect(&r, out, sizeof out, 30000, &sum, &n);
        CHECK(r.rc == 0);
        if (r.rc != 0)
            fprintf(stderr, "stream: %s\n", r.errbuf);
        CHECK(n == 10);
        CHECK(strstr(out, "done\n") != NULL);
        if (n)
            printf("# %s: mean line latency %.2f ms over %d lines\n",
                   attach ? "attach" : "logs_follow", sum / n, n);
        CHECK(n == 0 || sum / n < 1000);
        CHECK(docker_container_remove(d, id, true, err) == 0);
    }
}

/* Repeated create+start+remove to get a representative cold-start cost. */
static void test_create_start_latency(void)
{
    const char *cmd[] = {"true", NULL};
    double best = 1e9, total = 0;
    int n = 5;
    for (int i = 0; i < n; i++) {
        char id[DOCKER_ID_MAX];
        double t0 = now_ms();
        CHECK(create(cmd, NULL, id) == 0);
        CHECK(docker_container_start(d, id, err) == 0);
        double t = now_ms() - t0;
        total += t;
        best = t < best ? t : best;
        int code = -1;
        CHECK(docker_container_wait(d, id, 20000, &code, err) == 0);
        CHECK(code == 0);
        CHECK(docker_container_remove(d, id, true, err) == 0);
    }
    printf("# create+start: mean %.1f ms, best %.1f ms (%d runs)\n", total / n, best, n);
}

/* A listener on the host's 127.0.0.1 reached from --network host. */
static void test_host_network(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(s, 4) == 0);
    CHECK(getsockname(s, (struct sockaddr *)&a, &al) == 0);
    char script[256];
    snprintf(script, sizeof script,
             "import socket;c=socket.create_connection(('127.0.0.1',%d),5);c.sendall(b'ping-host')",
             ntohs(a.sin_port));
    const char *cmd[] = {"python3", "-c", script, NULL};
    struct docker_create_opts o = {.network_mode = "host"};
    char id[DOCKER_ID_MAX], got[32] = "";
    CHECK(create(cmd, &o, id) == 0);
    CHECK(docker_container_start(d, id, err) == 0);
    struct pollfd p = {.fd = s, .events = POLLIN};
    if (poll(&p, 1, 15000) == 1) {
        int c = accept(s, NULL, NULL);
        struct pollfd pc = {.fd = c, .events = POLLIN};
        if (c >= 0 && poll(&pc, 1, 5000) == 1 && read(c, got, sizeof got - 1) < 0)
            got[0] = '\0';
        if (c >= 0)
            close(c);
    }
    CHECK_STR(got, "ping-host");
    int code = -1;
    CHECK(docker_container_wait(d, id, 20000, &code, err) == 0);
    CHECK(code == 0);
    CHECK(docker_container_remove(d, id, true, err) == 0);
    close(s);
}

/* put_archive of a small tree (before start), read back via cat. */
static void test_archive(void)
{
    char dir[] = "/tmp/lambdad-test-docker-XXXXXX", path[1024];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/hello.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("archive-content\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/run.sh", dir);
    f = fopen(path, "w");
    fputs("#!/bin/sh\necho from-script\n", f);
    fclose(f);
    chmod(path, 0755);
    snprintf(path, sizeof path, "%s/link", dir);
    CHECK(symlink("hello.txt", path) == 0);
    /* A long path exercising the ustar prefix field. */
    char longdir[512];
    snprintf(longdir, sizeof longdir, "%s/%s", dir,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    mkdir(longdir, 0755);
    snprintf(path, sizeof path, "%s/%s", longdir,
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.txt");
    f = fopen(path, "w");
    fputs("long-ok\n", f);
    fclose(f);

    char *tar = NULL;
    size_t len = 0;
    CHECK(docker_tar_dir(dir, &tar, &len) == 0);
    CHECK(len > 0 && len % 512 == 0);

    const char *cmd[] = {"sh", "-c",
                         "cat /var/task/hello.txt /var/task/link; /var/task/sub/run.sh;"
                         " cat /var/task/aaaa*/bbbb*.txt",
                         NULL};
    char id[DOCKER_ID_MAX], out[4096];
    CHECK(create(cmd, NULL, id) == 0);
    CHECK(docker_put_archive(d, id, "/var/task", tar, len, err) == 0);
    CHECK(docker_put_archive(d, id, "/no/such/dir", tar, len, err) < 0);
    CHECK(strstr(err, "/no/such/dir") != NULL);
    CHECK(docker_container_start(d, id, err) == 0);
    struct reader r;
    reader_start(&r, id, false);
    reader_collect(&r, out, sizeof out, 20000, NULL, NULL);
    CHECK_STR(out, "archive-content\narchive-content\nfrom-script\nlong-ok\n");
    CHECK(docker_container_remove(d, id, true, err) == 0);
    free(tar);
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    CHECK(system(rm) == 0);
}

static void test_remove_by_label(void)
{
    const char *cmd[] = {"sleep", "30", NULL};
    char id[DOCKER_ID_MAX];
    CHECK(create(cmd, NULL, id) == 0);
    CHECK(create(cmd, NULL, id) == 0);
    CHECK(docker_container_start(d, id, err) == 0); /* one running, one created */
    char **ids = NULL;
    int n = docker_containers_list_by_label(d, label, &ids, err);
    CHECK(n >= 2);
    bool found = false;
    for (int i = 0; ids && ids[i]; i++)
        found |= strcmp(ids[i], id) == 0;
    CHECK(found);
    docker_strv_free(ids);
    CHECK(docker_containers_remove_by_label(d, label, err) == n);
    CHECK(docker_containers_list_by_label(d, label, NULL, err) == 0);
}

static void test_pull_fails(void)
{
    const char *img = "lambdad-test/does-not-exist:nope";
    double t0 = now_ms();
    int rc = docker_image_pull(d, img, NULL, NULL, err);
    double t = now_ms() - t0;
    CHECK(rc < 0);
    CHECK(strstr(err, img) != NULL);
    CHECK(t < 30000);
    printf("# pull of %s failed in %.0f ms: %s\n", img, t, err);
}

static void test_unreachable(void)
{
    const char *hosts[] = {"unix:///nonexistent.sock", "tcp://127.0.0.1:1"};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        struct docker *u = NULL;
        CHECK(docker_open(&u, hosts[i], err) == 0);
        double t0 = now_ms();
        int rc = docker_ping(u, err);
        double t = now_ms() - t0;
        CHECK(rc == -ECONNREFUSED || rc == -ETIMEDOUT);
        CHECK(t < 3000);
        CHECK(strstr(err, hosts[i]) != NULL);
        printf("# %s: %.0f ms: %s\n", hosts[i], t, err);
        char id[DOCKER_ID_MAX];
        rc = docker_container_create(u, &(struct docker_create_opts){.image = IMAGE}, id, err);
        CHECK(rc == -ECONNREFUSED || rc == -ETIMEDOUT);
        docker_close(u);
    }
    /* An "engine" that accepts the connection and never answers: the
     * overall timeout fires. */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 8) == 0);
    CHECK(getsockname(s, (struct sockaddr *)&a, &al) == 0);
    char host[64];
    snprintf(host, sizeof host, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    struct docker *u = NULL;
    CHECK(docker_open(&u, host, err) == 0);
    CHECK(!docker_is_local(u));
    docker_set_timeout(u, 500);
    double t0 = now_ms();
    CHECK(docker_ping(u, err) == -ETIMEDOUT);
    double t = now_ms() - t0;
    CHECK(t >= 400 && t < 3000);
    CHECK(strstr(err, host) != NULL);
    printf("# silent engine %s: %.0f ms: %s\n", host, t, err);
    docker_close(u);
    close(s);

    CHECK(docker_open(&u, "ssh://x", err) == -EINVAL);
    CHECK(u == NULL);
    CHECK(strstr(err, "ssh://x") != NULL);
}

/* Import a tiny rootfs with changes, tag it, read its config, remove it. */
static void test_import(void)
{
    char dir[] = "/tmp/lambdad-test-import-XXXXXX", path[256], tarpath[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/marker", dir);
    FILE *f = fopen(path, "w");
    fputs("x\n", f);
    fclose(f);
    char *tar = NULL;
    size_t len = 0;
    CHECK(docker_tar_dir(dir, &tar, &len) == 0);
    snprintf(tarpath, sizeof tarpath, "%s.tar", dir);
    f = fopen(tarpath, "w");
    CHECK(f && fwrite(tar, 1, len, f) == len);
    fclose(f);
    free(tar);

    char tag[32], ref[96], ref2[96];
    snprintf(tag, sizeof tag, "t%d", (int)getpid());
    snprintf(ref, sizeof ref, "lambdad-test/unit-import:%s", tag);
    snprintf(ref2, sizeof ref2, "lambdad-test/unit-import2:%s", tag);
    const char *changes[] = {"ENV FOO=bar", "WORKDIR /w", "CMD [\"/x\", \"y\"]", NULL};
    int lines = 0;
    CHECK(docker_image_import(d, tarpath, "lambdad-test/unit-import", tag, changes,
                              count_line,
                              &lines, err) == 0);
    CHECK(lines >= 1);
    CHECK(docker_image_exists(d, ref, err) == 1);
    struct docker_image_config c;
    CHECK(docker_image_config(d, ref, &c, err) == 0);
    CHECK_STR(c.working_dir, "/w");
    CHECK(c.cmd && c.cmd[0] && c.cmd[1] && !strcmp(c.cmd[0], "/x") && !strcmp(c.cmd[1], "y"));
    bool foo = false;
    for (char **e = c.env; e && *e; e++)
        foo |= strcmp(*e, "FOO=bar") == 0;
    CHECK(foo);
    docker_image_config_free(&c);
    CHECK(docker_image_tag(d, ref, "lambdad-test/unit-import2", tag, err) == 0);
    CHECK(docker_image_exists(d, ref2, err) == 1);
    CHECK(docker_image_remove(d, ref2, false, err) == 0);
    CHECK(docker_image_remove(d, ref, false, err) == 0);
    CHECK(docker_image_exists(d, ref, err) == 0);
    CHECK(docker_image_remove(d, ref, false, err) == -ENOENT);
    CHECK(docker_image_import(d, "/nonexistent.tar", "lambdad-test/x", "y", NULL, NULL, NULL,
                              err) == -ENOENT);
    CHECK(strstr(err, "/nonexistent.tar") != NULL);
    /* Not a tar: the engine refuses it; the message names the file. */
    CHECK(docker_image_import(d, path, "lambdad-test/x", "y", NULL, NULL, NULL, err) < 0);
    CHECK(strstr(err, path) && strstr(err, "tar"));
    unlink(tarpath);
    unlink(path);
    rmdir(dir);
}

/* A fake engine on a tcp port: answers one request with a canned
 * response and records the request line. */
struct fake {
    int lsock;
    const char *response;
    char request[1024];
    pthread_t thr;
};

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    int c = accept(f->lsock, NULL, NULL);
    if (c < 0)
        return NULL;
    size_t len = 0;
    struct pollfd p = {.fd = c, .events = POLLIN};
    while (len < sizeof f->request - 1 && poll(&p, 1, 5000) == 1) {
        ssize_t n = read(c, f->request + len, sizeof f->request - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        f->request[len] = '\0';
        if (strstr(f->request, "\r\n\r\n"))
            break;
    }
    if (write(c, f->response, strlen(f->response)) < 0)
        perror("fake engine write");
    close(c);
    return NULL;
}

static void fake_start(struct fake *f, const char *response, char host[64])
{
    memset(f, 0, sizeof *f);
    f->response = response;
    f->lsock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(f->lsock, (struct sockaddr *)&a, sizeof a) < 0 || listen(f->lsock, 4) < 0 ||
        getsockname(f->lsock, (struct sockaddr *)&a, &al) < 0)
        abort();
    snprintf(host, 64, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    pthread_create(&f->thr, NULL, fake_main, f);
}

static void fake_stop(struct fake *f)
{
    pthread_join(f->thr, NULL);
    close(f->lsock);
}

/* A pull whose failure arrives mid-stream (HTTP 200, then an error line),
 * as engines report registry errors after the pull began; no tag means
 * "latest", never all tags. */
static void test_pull_stream_error(void)
{
    struct fake f;
    char host[64];
    fake_start(&f, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                   "{\"status\":\"Pulling from lambdad/x\",\"id\":\"latest\"}\n"
                   "{\"status\":\"Downloading\",\"progress\":\"[=>   ] 1MB/9MB\",\"id\":\"abc\"}\n"
                   "{\"errorDetail\":{\"message\":\"manifest unknown\"},"
                   "\"error\":\"manifest unknown\"}\n",
               host);
    struct docker *u = NULL;
    CHECK(docker_open(&u, host, err) == 0);
    int lines = 0;
    int rc = docker_image_pull(u, "lambdad/x", count_line, &lines, err);
    CHECK(rc == -EIO);
    CHECK(strstr(err, "lambdad/x") && strstr(err, "manifest unknown"));
    CHECK(lines == 3);
    CHECK(strstr(f.request, "POST /v1.41/images/create?fromImage=lambdad%2Fx&tag=latest ") != NULL);
    fake_stop(&f);
    docker_close(u);

    /* And a 200 with only progress lines is success. */
    fake_start(&f, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                   "{\"status\":\"Status: Downloaded newer image for reg:5000/a/b:1\"}\n", host);
    CHECK(docker_open(&u, host, err) == 0);
    CHECK(docker_image_pull(u, "reg:5000/a/b:1", NULL, NULL, err) == 0);
    CHECK(strstr(f.request, "fromImage=reg%3A5000%2Fa%2Fb&tag=1 ") != NULL);
    fake_stop(&f);
    docker_close(u);
}

/* One handle shared by several threads (the documented thread rule). */
static void *shared_main(void *arg)
{
    int *ok = arg;
    char e[DOCKER_ERR_MAX];
    for (int i = 0; i < 25; i++)
        *ok += docker_ping(d, e) == 0 && docker_image_exists(d, IMAGE, e) == 1;
    return NULL;
}

static void test_shared_handle(void)
{
    pthread_t t[4];
    int ok[4] = {0};
    double t0 = now_ms();
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, shared_main, &ok[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        CHECK(ok[i] == 25);
    printf("# 4 threads x 25 (ping + image inspect): %.1f ms\n", now_ms() - t0);
}

static void test_tar_errors(void)
{
    char *b = NULL;
    size_t l = 1;
    CHECK(docker_tar_dir("/nonexistent-dir-lambdad", &b, &l) == -ENOENT);
    CHECK(b == NULL && l == 0);
}

int main(void)
{
    if (docker_open(&d, NULL, err) < 0) {
        fprintf(stderr, "skip: %s\n", err);
        return TEST_SKIP();
    }
    if (docker_ping(d, err) < 0) {
        fprintf(stderr, "skip: Docker engine unreachable: %s\n", err);
        docker_close(d);
        return TEST_SKIP();
    }
    int have = docker_image_exists(d, IMAGE, err);
    if (have != 1) {
        fprintf(stderr,
                "skip: test image %s missing; build it with tools/build-test-image.sh%s%s\n",
                IMAGE, have < 0 ? ": " : "", have < 0 ? err : "");
        docker_close(d);
        return TEST_SKIP();
    }
    snprintf(label, sizeof label, "org.lambdad.unit=test-docker-%d", (int)getpid());
    test_tar_errors();
    test_pull_stream_error();
    test_shared_handle();
    test_unreachable();
    test_image();
    test_pull_fails();
    test_import();
    test_run_logs_wait();
    test_limits();
    test_kill();
    test_archive();
    test_stream_latency();
    test_create_start_latency();
    test_host_network();
    test_remove_by_label();
    /* Whatever a failed check left behind. */
    docker_containers_remove_by_label(d, label, err);
    docker_close(d);
    return TEST_DONE();
}
