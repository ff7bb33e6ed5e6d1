/* container: execution environments as Docker containers (see container.h).
 *
 * DESIGN: each container has two threads of its own, so that nothing an
 * executor thread calls ever waits on the engine:
 *
 *   helper  resolves the image (a small cache of image facts, pulling when
 *           the image is missing), creates the container, uploads code when
 *           the engine is remote, starts it once the io thread's attach
 *           stream is up, reports STARTED, then sleeps on its condition
 *           variable until either the container stopped (io thread) or
 *           container_kill asked for a kill, which it then performs itself.
 *           Finally it removes the container, closes the log fd and reports
 *           the one final event (FAILED or EXITED) as its very last action,
 *           so container_release's join returns at once.
 *   io      attaches to the container's output before start (so no byte is
 *           lost and no log file is written: log driver "none"), copies it
 *           into the caller's log fd until the container stops, then
 *           collects the exit code with a wait. The engine never ends an
 *           attach to a container that did not start (not even when it is
 *           removed), so the helper cancels it through an eventfd when it
 *           gives up on a created container.
 *
 * The per-container mutex guards only the hand-off flags below; no engine
 * call is made with it held. container_kill just sets a flag and signals,
 * so it is safe from the executor thread at any time. A kill that arrives
 * before the container was created means it is never created; one that
 * arrives between create and start removes it unstarted; both end with
 * FAILED "killed before start". After start a kill is SIGKILL and the final
 * event is EXITED 137.
 *
 * Cleanup: every container carries lambdad=1, lambdad.instance=<id> and
 * lambdad.owner=<hostname>/<boot id>/<pid>. container_init removes the
 * lambdad=1 containers whose owner process is gone (or that have stopped),
 * never those of another lambdad running on the same engine right now;
 * container_shutdown kills this process's containers through their
 * helpers, then removes whatever still carries its instance label.
 *
 * Module state (the engine handle, configuration copies, the image cache
 * and the list of live containers) is set up by container_init and torn
 * down by container_shutdown on the main thread; in between only the image
 * cache and the live list change, under g.mu. Lock order: g.mu before a
 * container's mu. Image-cache entries are immutable once inserted and live
 * until shutdown, so readers use them without holding the lock. */
#include "runtime/container.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/docker.h"
#include "runtime/log.h"
#include "runtime/subprocess.h"

#define HELPER_STACK_SIZE (512u << 10) /* curl + jansson + a 64 KB tar chunk */
#define SHUTDOWN_WAIT_S 20             /* for helpers to kill and remove theirs */
#define MSG_MAX (DOCKER_ERR_MAX + 256)
#define OWNER_LABEL "lambdad.owner"

/* What the helper needs to know about an image; immutable once cached. */
struct image_facts {
    struct image_facts *next;
    char *image;
    bool lambda_base; /* ENTRYPOINT ["/lambda-entrypoint.sh"]: takes the handler */
    char **entrypoint;
    char **cmd;       /* kept when ImageConfig overrides only the entry point */
};

struct container {
    /* Set by container_start, read-only afterwards. */
    struct fn_spec *spec;
    char **envp;
    char *opt_dir;
    char *name;
    int log_fd; /* owned by the helper, closed before the final event */
    container_event_cb cb;
    void *user;
    pthread_t thr, io_thr;
    struct container *next_live, *prev_live; /* g.live list, under g.mu */

    /* Written by the helper before id_ready is set, never after. */
    char id[DOCKER_ID_MAX];
    atomic_bool id_ready;
    /* The engine's id as soon as it exists (helper and io threads only). */
    char cid[DOCKER_ID_MAX];

    /* Hand-off between the owner, the helper and the io thread; guarded by
     * mu, waited for on cv. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool kill_req; /* owner or shutdown: stop it */
    bool attached; /* io: output stream established (or attach gave up) */
    bool go;       /* helper: started, io may wait for the exit */
    bool abandon;  /* helper: will never start, io must not wait */
    bool io_done;  /* io: finished; exit_code valid if have_exit */
    bool have_exit;
    int exit_code;
    char io_err[DOCKER_ERR_MAX];
    int cancel_fd; /* eventfd: ends the io thread's attach (abandon) */
};

static struct {
    struct docker *d;
    atomic_bool available;
    atomic_bool shutting_down;
    bool host_net;
    bool local; /* unix socket: bind mounts work */
    char *network;
    char **overrides;
    char *instance_id;
    char *bootstrap_dir;
    char bind_ip[64];
    char host_for_container[64];
    char owner[256]; /* "<hostname>/<boot id>/<pid>": the owner label's value */
    pthread_mutex_t mu;     /* guards images, live, n_live */
    pthread_cond_t idle_cv; /* n_live dropped to 0 */
    struct image_facts *images;
    struct container *live;
    int n_live;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .idle_cv = PTHREAD_COND_INITIALIZER,
       .bind_ip = "127.0.0.1",
       .host_for_container = "127.0.0.1"};

/* ------------------------------------------------------------ utilities */

static char **strv_dup(char *const *v, size_t n_max)
{
    size_t n = 0;
    while (v && n < n_max && v[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = strdup(v[i]))) {
            docker_strv_free(out);
            return NULL;
        }
    return out;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool has_prefix(const char *s, const char *p)
{
    return s && strncmp(s, p, strlen(p)) == 0;
}

static bool is_file(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    if (!dir)
        return false;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ------------------------------------------------------------ image map */

struct image_map {
    const char *runtime;
    const char *image;
};

static const struct image_map IMAGE_MAP[] = {
    {"python3.9", "public.ecr.aws/lambda/python:3.9"},
    {"python3.10", "public.ecr.aws/lambda/python:3.10"},
    {"python3.11", "public.ecr.aws/lambda/python:3.11"},
    {"python3.12", "public.ecr.aws/lambda/python:3.12"},
    {"python3.13", "public.ecr.aws/lambda/python:3.13"},
    {"python3.14", "public.ecr.aws/lambda/python:3.14"},
    {"nodejs18.x", "public.ecr.aws/lambda/nodejs:18"},
    {"nodejs20.x", "public.ecr.aws/lambda/nodejs:20"},
    {"nodejs22.x", "public.ecr.aws/lambda/nodejs:22"},
    {"nodejs24.x", "public.ecr.aws/lambda/nodejs:24"},
    {"ruby3.2", "public.ecr.aws/lambda/ruby:3.2"},
    {"ruby3.3", "public.ecr.aws/lambda/ruby:3.3"},
    {"ruby3.4", "public.ecr.aws/lambda/ruby:3.4"},
    {"java8.al2", "public.ecr.aws/lambda/java:8.al2"},
    {"java11", "public.ecr.aws/lambda/java:11"},
    {"java17", "public.ecr.aws/lambda/java:17"},
    {"java21", "public.ecr.aws/lambda/java:21"},
    {"java25", "public.ecr.aws/lambda/java:25"},
    {"dotnet6", "public.ecr.aws/lambda/dotnet:6"},
    {"dotnet8", "public.ecr.aws/lambda/dotnet:8"},
    {"dotnet10", "public.ecr.aws/lambda/dotnet:10"},
    {"provided.al2", "public.ecr.aws/lambda/provided:al2"},
    {"provided.al2023", "public.ecr.aws/lambda/provided:al2023"},
};

static const char ERR_NO_IMAGE[] = "the runtime has no container image (map one with "
                                   "--lambda-image <runtime>=<image>)";
static const char ERR_NO_IMAGE_URI[] = "PackageType Image without an ImageUri";

char *container_image_for(const struct fn_spec *spec, const char **err)
{
    *err = NULL;
    if (spec->package_type && strcmp(spec->package_type, "Image") == 0) {
        if (!spec->image_uri || !*spec->image_uri) {
            *err = ERR_NO_IMAGE_URI;
            return NULL;
        }
        return fnspec_strdup(spec->image_uri);
    }
    const char *rt = spec->runtime;
    if (!rt || !*rt) {
        *err = ERR_NO_IMAGE;
        return NULL;
    }
    size_t rl = strlen(rt);
    for (char **o = g.overrides; o && *o; o++)
        if (strncmp(*o, rt, rl) == 0 && (*o)[rl] == '=' && (*o)[rl + 1])
            return fnspec_strdup(*o + rl + 1);
    for (size_t i = 0; i < sizeof IMAGE_MAP / sizeof IMAGE_MAP[0]; i++)
        if (strcmp(IMAGE_MAP[i].runtime, rt) == 0)
            return fnspec_strdup(IMAGE_MAP[i].image);
    *err = ERR_NO_IMAGE;
    return NULL;
}

/* ---------------------------------------------------------- image cache */

static const struct image_facts *image_cached(const char *image)
{
    pthread_mutex_lock(&g.mu);
    struct image_facts *f = g.images;
    while (f && strcmp(f->image, image) != 0)
        f = f->next;
    pthread_mutex_unlock(&g.mu);
    return f;
}

static void image_facts_free(struct image_facts *f)
{
    free(f->image);
    docker_strv_free(f->entrypoint);
    docker_strv_free(f->cmd);
    free(f);
}

static void pull_progress(const char *line, void *user)
{
    LOG_INFO("pulling %s: %s", (const char *)user, line);
}

/* The engine's error without the "pull <image>: " prefix we already say. */
static const char *strip_op(const char *err, const char *op, const char *image)
{
    size_t ol = strlen(op), il = strlen(image);
    if (strncmp(err, op, ol) == 0 && strncmp(err + ol, image, il) == 0 &&
        strncmp(err + ol + il, ": ", 2) == 0)
        return err + ol + il + 2;
    return err;
}

/* Returns the cached facts of image, inspecting (and pulling if missing)
 * on first use. NULL with msg set when the image cannot be had. */
static const struct image_facts *image_ensure(const char *image, char *msg)
{
    const struct image_facts *f = image_cached(image);
    if (f)
        return f;
    char err[DOCKER_ERR_MAX];
    struct docker_image_config cfg = {0};
    int rc = docker_image_config(g.d, image, &cfg, err);
    if (rc == -ENOENT) {
        LOG_INFO("image %s is not present locally: pulling it", image);
        rc = docker_image_pull(g.d, image, pull_progress, (void *)image, err);
        if (rc < 0) {
            snprintf(msg, MSG_MAX, "image %s is not available: %s", image,
                     strip_op(err, "pull ", image));
            LOG_WARN("%s", msg);
            return NULL;
        }
        rc = docker_image_config(g.d, image, &cfg, err);
    }
    if (rc < 0) {
        snprintf(msg, MSG_MAX, "image %s is not available: %s", image, err);
        LOG_WARN("%s", msg);
        return NULL;
    }
    struct image_facts *nf = calloc(1, sizeof *nf);
    if (!nf || !(nf->image = strdup(image))) {
        free(nf);
        docker_image_config_free(&cfg);
        snprintf(msg, MSG_MAX, "out of memory");
        return NULL;
    }
    nf->lambda_base = docker_image_is_lambda_base(&cfg);
    nf->entrypoint = cfg.entrypoint;
    nf->cmd = cfg.cmd;
    cfg.entrypoint = cfg.cmd = NULL;
    docker_image_config_free(&cfg);

    pthread_mutex_lock(&g.mu);
    struct image_facts *old = g.images;
    while (old && strcmp(old->image, image) != 0)
        old = old->next;
    if (!old) {
        nf->next = g.images;
        g.images = nf;
    }
    pthread_mutex_unlock(&g.mu);
    if (old) { /* another helper raced us: keep the first */
        image_facts_free(nf);
        return old;
    }
    LOG_INFO("image %s: %s", image,
             nf->lambda_base ? "AWS Lambda base image (its own entrypoint)"
                             : "plain image (lambdad's bootstrap)");
    return nf;
}

/* ------------------------------------------------------- create options */

/* The create request and the strings it points to. */
struct plan {
    struct docker_create_opts o;
    const char *entry[4], *cmd[2], *binds[4], *tmpfs[2], *labels[6], *hosts[2];
    char *owned[12];
    size_t n_owned;
};

static const char *plan_fmt(struct plan *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *plan_fmt(struct plan *p, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0 || p->n_owned == sizeof p->owned / sizeof p->owned[0]) {
        if (n >= 0)
            free(s);
        return NULL;
    }
    p->owned[p->n_owned++] = s;
    return s;
}

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n_owned; i++)
        free(p->owned[i]);
}

/* Chooses what runs: the image's own entry point, ImageConfig, or the
 * bundled bootstrap. Returns 0 or -1 with msg set. */
static int plan_entry(struct plan *p, const struct container *c, const struct image_facts *f,
                      char *msg)
{
    const struct fn_spec *s = c->spec;
    struct docker_create_opts *o = &p->o;
    if (s->package_type && strcmp(s->package_type, "Image") == 0) {
        /* The image's ENTRYPOINT/CMD unless ImageConfig overrides them. The
         * engine drops the image's CMD when the entry point is replaced;
         * Lambda keeps it, so pass it explicitly then. */
        if (s->image_entrypoint && s->n_entrypoint) {
            o->entrypoint = (const char *const *)s->image_entrypoint;
            o->cmd = (const char *const *)(s->image_command && s->n_command ? s->image_command
                                                                            : f->cmd);
        } else if (s->image_command && s->n_command) {
            o->cmd = (const char *const *)s->image_command;
        }
        o->working_dir = s->image_workdir && *s->image_workdir ? s->image_workdir : NULL;
        return 0;
    }
    o->working_dir = "/var/task";
    p->cmd[0] = s->handler;
    if (f->lambda_base) { /* /lambda-entrypoint.sh <handler> */
        o->cmd = s->handler ? p->cmd : NULL;
        return 0;
    }
    const char *rt = s->runtime ? s->runtime : "";
    /* AWS_LAMBDA_EXEC_WRAPPER runs with the runtime command as arguments
     * (AWS base images honour it themselves, above). */
    const char *wrapper = subprocess_exec_wrapper(s);
    int w = wrapper ? 1 : 0;
    if (wrapper)
        p->entry[0] = wrapper;
    if (has_prefix(rt, "python")) {
        p->entry[w] = "python3";
        p->entry[w + 1] = CONTAINER_BOOTSTRAP_DIR "/python/bootstrap.py";
    } else if (has_prefix(rt, "nodejs")) {
        p->entry[w] = "node";
        p->entry[w + 1] = CONTAINER_BOOTSTRAP_DIR "/node/bootstrap.js";
    } else if (has_prefix(rt, "provided")) {
        /* RIE's search order: the code, then the layers. */
        if (!is_file(s->code_dir, "bootstrap") && is_file(c->opt_dir, "bootstrap"))
            p->entry[0] = "/opt/bootstrap";
        else if (is_file(s->code_dir, "bootstrap"))
            p->entry[0] = "/var/task/bootstrap";
        else {
            snprintf(msg, MSG_MAX,
                     "custom runtime %s: no bootstrap file in the function code or its layers",
                     rt);
            return -1;
        }
        p->cmd[0] = NULL;
    } else {
        snprintf(msg, MSG_MAX,
                 "runtime %s needs an AWS Lambda base image, but %s has no "
                 "/lambda-entrypoint.sh and lambdad bundles no %s bootstrap",
                 rt, f->image, rt);
        return -1;
    }
    o->entrypoint = p->entry;
    o->cmd = p->cmd[0] ? p->cmd : NULL;
    return 0;
}

/* Fills the create request. Returns 0 or -1 with msg set. */
static int plan_build(struct plan *p, const struct container *c, const char *image,
                      const struct image_facts *f, char *msg)
{
    const struct fn_spec *s = c->spec;
    struct docker_create_opts *o = &p->o;
    memset(p, 0, sizeof *p);
    o->name = c->name;
    o->image = image;
    o->env = (const char *const *)c->envp;
    if (plan_entry(p, c, f, msg) < 0)
        return -1;
    size_t nb = 0;
    if (g.local) {
        if (s->code_dir && !(s->package_type && strcmp(s->package_type, "Image") == 0))
            p->binds[nb++] = plan_fmt(p, "%s:/var/task:ro", s->code_dir);
        if (c->opt_dir)
            p->binds[nb++] = plan_fmt(p, "%s:/opt:ro", c->opt_dir);
        if (g.bootstrap_dir)
            p->binds[nb++] = plan_fmt(p, "%s:%s:ro", g.bootstrap_dir, CONTAINER_BOOTSTRAP_DIR);
        /* Lambda: only /tmp is writable. A remote engine needs a writable
         * root for the archive upload. */
        o->readonly_rootfs = true;
    }
    o->binds = nb ? p->binds : NULL;
    p->tmpfs[0] = plan_fmt(p, "/tmp:rw,exec,size=%dm", s->ephemeral_mb > 0 ? s->ephemeral_mb : 512);
    o->tmpfs = p->tmpfs;
    p->labels[0] = "lambdad=1";
    p->labels[1] = plan_fmt(p, "lambdad.instance=%s", g.instance_id);
    p->labels[2] = plan_fmt(p, "lambdad.function=%s", s->name ? s->name : "");
    p->labels[3] = plan_fmt(p, "lambdad.deploy=%s", s->deploy_id);
    p->labels[4] = plan_fmt(p, "%s=%s", OWNER_LABEL, g.owner);
    o->labels = p->labels;
    o->network_mode = g.network;
    if (!g.host_net) {
        p->hosts[0] = "host.docker.internal:host-gateway";
        o->extra_hosts = p->hosts;
    }
    o->memory_bytes = s->memory_mb > 0 ? (int64_t)s->memory_mb << 20 : 0;
    /* Output goes through the attach stream only: no log file per line. */
    o->log_driver = "none";
    for (size_t i = 0; i < nb; i++)
        if (!p->binds[i])
            goto nomem;
    if (!p->tmpfs[0] || !p->labels[1] || !p->labels[2] || !p->labels[3] || !p->labels[4])
        goto nomem;
    return 0;
nomem:
    snprintf(msg, MSG_MAX, "out of memory");
    return -1;
}

/* Remote engine: copies code, layers and the bootstraps into the created
 * container (bind mounts of this host's paths would not exist there). */
static int upload_trees(const struct container *c, char *msg)
{
    const struct fn_spec *s = c->spec;
    const char *dirs[3][2] = {
        {s->package_type && strcmp(s->package_type, "Image") == 0 ? NULL : s->code_dir, "var/task"},
        {c->opt_dir, "opt"},
        {g.bootstrap_dir, &CONTAINER_BOOTSTRAP_DIR[1]},
    };
    for (int i = 0; i < 3; i++) {
        char *tar = NULL, err[DOCKER_ERR_MAX];
        size_t len = 0;
        if (!dirs[i][0])
            continue;
        int rc = docker_tar_dir_at(dirs[i][0], dirs[i][1], &tar, &len);
        if (rc < 0) {
            snprintf(msg, MSG_MAX, "cannot pack %s for upload: %s", dirs[i][0], strerror(-rc));
            return -1;
        }
        rc = docker_put_archive(g.d, c->cid, "/", tar, len, err);
        free(tar);
        if (rc < 0) {
            snprintf(msg, MSG_MAX, "cannot upload %s into container %s: %s", dirs[i][0], c->name,
                     err);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ io thread */

static bool kill_requested(struct container *c)
{
    pthread_mutex_lock(&c->mu);
    bool k = c->kill_req;
    pthread_mutex_unlock(&c->mu);
    return k || atomic_load(&g.shutting_down);
}

static int on_attached(void *user)
{
    struct container *c = user;
    pthread_mutex_lock(&c->mu);
    c->attached = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void *io_main(void *arg)
{
    struct container *c = arg;
    char err[DOCKER_ERR_MAX];
    pthread_setname_np(pthread_self(), "ctr-io");
    int rc = docker_container_attach_cancellable(g.d, c->cid, c->log_fd, on_attached, c,
                                                 c->cancel_fd, err);
    if (rc < 0 && rc != -ENOENT && rc != -ECANCELED)
        LOG_WARN("container %s: output stream: %s", c->name, err);
    pthread_mutex_lock(&c->mu);
    c->attached = true; /* also when attach failed: do not hold up the start */
    pthread_cond_broadcast(&c->cv);
    while (!c->go && !c->abandon)
        pthread_cond_wait(&c->cv, &c->mu);
    bool started = c->go;
    pthread_mutex_unlock(&c->mu);

    int code = -1;
    if (started) {
        rc = docker_container_wait(g.d, c->cid, 0, &code, err);
        if (rc < 0)
            code = -1;
    }
    pthread_mutex_lock(&c->mu);
    c->io_done = true;
    c->have_exit = started && rc == 0;
    c->exit_code = code;
    if (started && rc < 0)
        snprintf(c->io_err, sizeof c->io_err, "%s", err);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* -------------------------------------------------------- helper thread */

static void remove_container(struct container *c)
{
    char err[DOCKER_ERR_MAX];
    int rc = docker_container_remove(g.d, c->cid, true, err);
    if (rc < 0 && rc != -ENOENT)
        LOG_WARN("container %s: %s", c->name, err);
}

/* Removes a created container that will not run, after releasing the io
 * thread (if started) from its attach. */
static void abandon_created(struct container *c, bool io_running)
{
    pthread_mutex_lock(&c->mu);
    c->abandon = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    /* The engine never ends an attach to a container that did not start,
     * not even when it is removed: cancel it. */
    uint64_t one = 1;
    if (io_running && write(c->cancel_fd, &one, sizeof one) < 0)
        LOG_WARN("container %s: eventfd: %s", c->name, strerror(errno));
    remove_container(c);
    LOG_DEBUG("container %s: removed before it started", c->name);
    if (io_running)
        pthread_join(c->io_thr, NULL);
}

/* Runs a started container to its end: waits for the exit or a kill
 * request, kills if asked, and fills *code and msg. */
static void watch(struct container *c, int *code, char *msg)
{
    char err[DOCKER_ERR_MAX];
    pthread_mutex_lock(&c->mu);
    while (!c->io_done && !c->kill_req && !atomic_load(&g.shutting_down))
        pthread_cond_wait(&c->cv, &c->mu);
    bool killing = !c->io_done;
    pthread_mutex_unlock(&c->mu);
    if (killing) {
        int rc = docker_container_kill(g.d, c->cid, "SIGKILL", err);
        if (rc < 0 && rc != -EEXIST) { /* -EEXIST: it had stopped already */
            LOG_WARN("container %s: %s; removing it", c->name, err);
            remove_container(c);
        }
    }
    pthread_mutex_lock(&c->mu);
    while (!c->io_done)
        pthread_cond_wait(&c->cv, &c->mu);
    *code = c->have_exit ? c->exit_code : (killing ? 137 : -1);
    if (!c->have_exit && !killing)
        snprintf(msg, MSG_MAX, "lost track of the container: %s", c->io_err);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->io_thr, NULL);
    bool oom = false;
    if (*code == 137 && !killing &&
        docker_container_inspect_state(g.d, c->cid, NULL, NULL, &oom, NULL) == 0 && oom)
        snprintf(msg, MSG_MAX, "out of memory (MemorySize %d MB)", c->spec->memory_mb);
}

static const char KILLED_BEFORE_START[] = "killed before start";

/* Everything from image to exit. Returns the final event with *code/msg. */
static enum container_event run(struct container *c, int *code, char *msg)
{
    char err[DOCKER_ERR_MAX];
    const char *e = NULL;
    enum container_event ev = CONTAINER_FAILED;
    struct plan p = {0}; /* plan_free of a zeroed plan is a no-op */
    char *image = container_image_for(c->spec, &e);
    if (!image) {
        snprintf(msg, MSG_MAX, "%s", e);
        goto out;
    }
    const struct image_facts *f = NULL;
    if (kill_requested(c) || !(f = image_ensure(image, msg)) || kill_requested(c))
        goto killed_or_failed;
    if (plan_build(&p, c, image, f, msg) < 0)
        goto out;
    double t_create = now_ms();
    int rc = docker_container_create(g.d, &p.o, c->cid, err);
    if (rc < 0) {
        snprintf(msg, MSG_MAX, "cannot create the container: %s", err);
        goto out;
    }
    if (!g.local && upload_trees(c, msg) < 0) {
        abandon_created(c, false);
        goto out;
    }
    if (kill_requested(c)) {
        abandon_created(c, false);
        goto killed_or_failed;
    }
    double t_io = now_ms();
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, HELPER_STACK_SIZE);
    rc = pthread_create(&c->io_thr, &at, io_main, c);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        snprintf(msg, MSG_MAX, "cannot start the output thread: %s", strerror(rc));
        abandon_created(c, false);
        goto out;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->attached)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    if (kill_requested(c)) {
        abandon_created(c, true);
        goto killed_or_failed;
    }
    double t_attached = now_ms();
    rc = docker_container_start(g.d, c->cid, err);
    LOG_DEBUG("container %s: create+upload %.1f ms, attach %.1f ms, start %.1f ms", c->name,
              t_io - t_create, t_attached - t_io, now_ms() - t_attached);
    if (rc < 0) {
        snprintf(msg, MSG_MAX, "cannot start the container: %s", err);
        abandon_created(c, true);
        goto out;
    }
    memcpy(c->id, c->cid, sizeof c->id);
    atomic_store(&c->id_ready, true);
    pthread_mutex_lock(&c->mu);
    c->go = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (!kill_requested(c))
        c->cb(c->user, CONTAINER_STARTED, 0, "");
    watch(c, code, msg);
    remove_container(c);
    ev = CONTAINER_EXITED;
    goto out;
killed_or_failed:
    if (kill_requested(c))
        snprintf(msg, MSG_MAX, "%s", KILLED_BEFORE_START);
out:
    plan_free(&p);
    free(image);
    return ev;
}

static void live_remove(struct container *c)
{
    pthread_mutex_lock(&g.mu);
    if (c->prev_live)
        c->prev_live->next_live = c->next_live;
    else
        g.live = c->next_live;
    if (c->next_live)
        c->next_live->prev_live = c->prev_live;
    if (--g.n_live == 0)
        pthread_cond_broadcast(&g.idle_cv);
    pthread_mutex_unlock(&g.mu);
}

static void *helper_main(void *arg)
{
    struct container *c = arg;
    char msg[MSG_MAX] = "";
    int code = 0;
    pthread_setname_np(pthread_self(), "ctr-helper");
    enum container_event ev = run(c, &code, msg);
    if (ev == CONTAINER_FAILED)
        LOG_INFO("container %s (function %s): %s", c->name, c->spec->name, msg);
    else
        LOG_DEBUG("container %s (function %s) exited with %d", c->name, c->spec->name, code);
    close(c->log_fd);
    c->log_fd = -1;
    c->cb(c->user, ev, ev == CONTAINER_EXITED ? code : 0, msg);
    /* c stays valid: container_release joins this thread before freeing
     * it. Leaving the live list after the event lets container_shutdown
     * return only once every final event was delivered. */
    live_remove(c);
    return NULL;
}

/* ------------------------------------------------------------- public API */

static void container_free(struct container *c)
{
    fnspec_unref(c->spec);
    docker_strv_free(c->envp);
    free(c->opt_dir);
    free(c->name);
    if (c->cancel_fd >= 0)
        close(c->cancel_fd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

int container_start(struct container **out, const struct container_start_opts *o)
{
    *out = NULL;
    int rc = -ENOMEM;
    struct container *c = calloc(1, sizeof *c);
    if (!c) {
        close(o->log_fd);
        return -ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->log_fd = o->log_fd;
    /* The io thread writes with blocking write(2)s; keep the write end out
     * of processes other executors spawn. */
    int fl = fcntl(c->log_fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        fcntl(c->log_fd, F_SETFL, fl & ~O_NONBLOCK);
    fcntl(c->log_fd, F_SETFD, FD_CLOEXEC);
    if ((c->cancel_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
    }
    c->spec = fnspec_ref((struct fn_spec *)o->spec);
    c->cb = o->cb;
    c->user = o->user;
    if (!(c->envp = strv_dup(o->envp, SIZE_MAX)) || !(c->name = strdup(o->name)) ||
        (o->opt_dir && !(c->opt_dir = strdup(o->opt_dir))))
        goto fail;
    if (!g.d || !atomic_load(&g.available)) {
        rc = -ENOTCONN;
        goto fail;
    }
    pthread_mutex_lock(&g.mu);
    if (atomic_load(&g.shutting_down)) {
        pthread_mutex_unlock(&g.mu);
        rc = -ESHUTDOWN;
        goto fail;
    }
    c->next_live = g.live;
    if (g.live)
        g.live->prev_live = c;
    g.live = c;
    g.n_live++;
    pthread_mutex_unlock(&g.mu);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, HELPER_STACK_SIZE);
    int prc = pthread_create(&c->thr, &at, helper_main, c);
    pthread_attr_destroy(&at);
    if (prc != 0) {
        live_remove(c);
        rc = -prc;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    close(c->log_fd);
    container_free(c);
    return rc;
}

void container_kill(struct container *c)
{
    pthread_mutex_lock(&c->mu);
    c->kill_req = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

const char *container_id(const struct container *c)
{
    return atomic_load(&((struct container *)c)->id_ready) ? c->id : "";
}

void container_release(struct container *c)
{
    if (!c)
        return;
    pthread_join(c->thr, NULL);
    container_free(c);
}

/* ------------------------------------------------------- init, shutdown */

bool container_available(void)
{
    return atomic_load(&g.available);
}

const char *container_bind_ip(void)
{
    return g.bind_ip;
}

const char *container_host_for_container(void)
{
    return g.host_for_container;
}

/* Picks the Runtime API bind address and the host name containers use. */
static void choose_addresses(void)
{
    char gw[64], err[DOCKER_ERR_MAX];
    if (g.host_net) {
        snprintf(g.bind_ip, sizeof g.bind_ip, "127.0.0.1");
        snprintf(g.host_for_container, sizeof g.host_for_container, "127.0.0.1");
        return;
    }
    /* Binding the network's gateway (its bridge interface on this host)
     * exposes the listener to containers only. A remote engine's gateway is
     * not an address of this host: listen everywhere then. */
    if (g.local && docker_network_gateway(g.d, g.network, gw, err) == 0) {
        snprintf(g.bind_ip, sizeof g.bind_ip, "%s", gw);
        /* host-gateway resolves to the default bridge's gateway; on a
         * user-defined network the listener sits on that network's. */
        snprintf(g.host_for_container, sizeof g.host_for_container, "%s",
                 strcmp(g.network, "bridge") == 0 ? "host.docker.internal" : gw);
    } else {
        if (g.local)
            LOG_WARN("network %s: %s; the Runtime API listens on 0.0.0.0", g.network, err);
        snprintf(g.bind_ip, sizeof g.bind_ip, "0.0.0.0");
        snprintf(g.host_for_container, sizeof g.host_for_container, "host.docker.internal");
    }
}

static void owner_init(void)
{
    char host[128] = "?", boot[64] = "?";
    gethostname(host, sizeof host - 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f))
            snprintf(boot, sizeof boot, "?");
        boot[strcspn(boot, "\n")] = '\0';
        fclose(f);
    }
    snprintf(g.owner, sizeof g.owner, "%s/%s/%d", host, boot, (int)getpid());
}

/* Whether the lambdad process that labelled a container with owner is
 * gone. Containers without the label predate it: leftovers. Another
 * host's (or boot's) process cannot be checked: assume it lives. */
static bool owner_gone(const char *owner)
{
    const char *slash = owner ? strrchr(owner, '/') : NULL;
    const char *mine = strrchr(g.owner, '/');
    if (!slash)
        return true;
    if (slash - owner != mine - g.owner || strncmp(owner, g.owner, (size_t)(slash - owner)) != 0)
        return false;
    int pid = atoi(slash + 1);
    if (pid <= 0 || pid == (int)getpid()) /* an earlier init of this process */
        return true;
    return kill(pid, 0) < 0 && errno == ESRCH;
}

/* Removes containers left by lambdad runs that ended without cleaning up
 * (crash, SIGKILL), but never those of another lambdad that is running
 * now on the same engine (tests and several instances share engines):
 * only containers whose owner process is gone, or that have stopped. */
static void remove_leftovers(void)
{
    char derr[DOCKER_ERR_MAX];
    struct docker_container_info *v = NULL;
    int n = docker_containers_list_info(g.d, "lambdad=1", OWNER_LABEL, &v, derr), removed = 0;
    if (n < 0) {
        LOG_WARN("looking for containers of earlier runs: %s", derr);
        return;
    }
    for (int i = 0; i < n; i++) {
        bool stopped = strcmp(v[i].state, "exited") == 0 || strcmp(v[i].state, "dead") == 0;
        if (!stopped && !owner_gone(v[i].label))
            continue;
        int rc = docker_container_remove(g.d, v[i].id, true, derr);
        if (rc == 0)
            removed++;
        else if (rc != -ENOENT)
            LOG_WARN("removing a leftover container: %s", derr);
    }
    if (removed)
        LOG_INFO("removed %d container(s) left by earlier lambdad runs", removed);
    docker_container_infos_free(v, n);
}

/* The reason part of a docker error that already names the engine. */
static const char *engine_reason(const char *derr, const char *host)
{
    const char *p = strstr(derr, host);
    if (p && strncmp(p + strlen(host), ": ", 2) == 0)
        return p + strlen(host) + 2;
    return derr;
}

static void config_free(void)
{
    free(g.network);
    docker_strv_free(g.overrides);
    free(g.instance_id);
    free(g.bootstrap_dir);
    g.network = g.instance_id = g.bootstrap_dir = NULL;
    g.overrides = NULL;
}

int container_init(const struct container_config *cfg, char *err)
{
    char derr[DOCKER_ERR_MAX];
    const char *host = cfg->docker_host ? cfg->docker_host
                       : getenv("DOCKER_HOST") && *getenv("DOCKER_HOST") ? getenv("DOCKER_HOST")
                                                                         : DOCKER_DEFAULT_HOST;
    err[0] = '\0';
    atomic_store(&g.shutting_down, false);
    g.network = strdup(cfg->network && *cfg->network ? cfg->network : "host");
    g.instance_id = strdup(cfg->instance_id ? cfg->instance_id : "0");
    g.bootstrap_dir = cfg->bootstrap_dir ? strdup(cfg->bootstrap_dir) : NULL;
    g.overrides = strv_dup((char *const *)cfg->image_overrides, SIZE_MAX);
    if (!g.network || !g.instance_id || (cfg->bootstrap_dir && !g.bootstrap_dir) ||
        !g.overrides) {
        snprintf(err, 512, "out of memory");
        config_free();
        return -ENOMEM;
    }
    g.host_net = strcmp(g.network, "host") == 0;
    int rc = docker_open(&g.d, cfg->docker_host, derr);
    if (rc == 0 && (rc = docker_ping(g.d, derr)) < 0) {
        docker_close(g.d);
        g.d = NULL;
    }
    if (rc < 0) {
        snprintf(err, 512, "cannot reach the Docker engine at %.200s: %.250s", host,
                 engine_reason(derr, host));
        config_free();
        return rc;
    }
    g.local = docker_is_local(g.d);
    owner_init();
    remove_leftovers();
    choose_addresses();
    atomic_store(&g.available, true);
    LOG_INFO("docker engine at %s (%s), network %s: Runtime API on %s, containers reach "
             "lambdad at %s",
             docker_host(g.d), g.local ? "local" : "remote: code is uploaded", g.network,
             g.bind_ip, g.host_for_container);
    return 0;
}

void container_shutdown(void)
{
    char derr[DOCKER_ERR_MAX], label[300];
    if (!g.d)
        return;
    atomic_store(&g.available, false);
    pthread_mutex_lock(&g.mu);
    atomic_store(&g.shutting_down, true);
    for (struct container *c = g.live; c; c = c->next_live)
        container_kill(c);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SHUTDOWN_WAIT_S;
    int wrc = 0;
    while (g.n_live > 0 && wrc != ETIMEDOUT)
        wrc = pthread_cond_timedwait(&g.idle_cv, &g.mu, &until);
    int left = g.n_live;
    pthread_mutex_unlock(&g.mu);
    snprintf(label, sizeof label, "lambdad.instance=%s", g.instance_id);
    int n = docker_containers_remove_by_label(g.d, label, derr);
    if (n < 0)
        LOG_WARN("removing this instance's containers: %s", derr);
    else if (n > 0)
        LOG_INFO("removed %d container(s) of this instance", n);
    if (left > 0) {
        /* Their threads still use the handle: leak it rather than crash. */
        LOG_WARN("%d container helper(s) still busy after %d s; not closing the engine client",
                 left, SHUTDOWN_WAIT_S);
        return;
    }
    docker_close(g.d);
    g.d = NULL;
    pthread_mutex_lock(&g.mu);
    while (g.images) {
        struct image_facts *f = g.images;
        g.images = f->next;
        image_facts_free(f);
    }
    pthread_mutex_unlock(&g.mu);
    config_free();
}

int container_signal_function(const char *fn_key, const char *signal, char *err)
{
    char ids[16][DOCKER_ID_MAX];
    int n = 0, sent = 0, rc = 0;
    if (!g.d || !atomic_load(&g.available)) {
        snprintf(err, DOCKER_ERR_MAX, "the docker engine is not available");
        return -ENOTCONN;
    }
    /* Collect under the lock, call the engine outside it. */
    pthread_mutex_lock(&g.mu);
    for (struct container *c = g.live; c && n < 16; c = c->next_live)
        if (atomic_load(&c->id_ready) && c->spec->key && strcmp(c->spec->key, fn_key) == 0)
            snprintf(ids[n++], DOCKER_ID_MAX, "%s", c->id);
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < n; i++) {
        char derr[DOCKER_ERR_MAX];
        int r = docker_container_kill(g.d, ids[i], signal, derr);
        if (r == 0)
            sent++;
        else if (r != -EEXIST && r != -ENOENT && rc == 0) {
            rc = r;
            snprintf(err, DOCKER_ERR_MAX, "%s", derr);
        }
    }
    if (rc < 0 && sent == 0)
        return rc;
    return sent;
}

int container_image_inspect(const char *image, struct docker_image_config *out, char *err)
{
    if (!g.d || !atomic_load(&g.available)) {
        snprintf(err, DOCKER_ERR_MAX, "the docker engine is not available");
        return -ENOTCONN;
    }
    return docker_image_config(g.d, image, out, err);
}

int container_image_pull(const char *image, char *err)
{
    if (!g.d || !atomic_load(&g.available)) {
        snprintf(err, DOCKER_ERR_MAX, "the docker engine is not available");
        return -ENOTCONN;
    }
    return docker_image_pull(g.d, image, NULL, NULL, err);
}

int container_of_function(const char *fn_key, char cid_out[DOCKER_ID_MAX])
{
    int rc = -ENOENT;
    pthread_mutex_lock(&g.mu);
    for (struct container *c = g.live; c; c = c->next_live)
        if (atomic_load(&c->id_ready) && c->spec->key && strcmp(c->spec->key, fn_key) == 0) {
            snprintf(cid_out, DOCKER_ID_MAX, "%s", c->id);
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&g.mu);
    return rc;
}

struct docker *container_engine(void)
{
    return g.d && atomic_load(&g.available) ? g.d : NULL;
}
