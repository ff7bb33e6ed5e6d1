/* pool: public face of the dispatch path (see pool.h): invocation objects,
 * executor start/stop, sharding by function identity, introspection. */
#include "pool/pool.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#include "pool/envmap.h"
#include "pool/executor.h"
#include "pool/report.h"
#include "runtime/bio.h"
#include "runtime/container.h"
#include "runtime/log.h"
#include "runtime/subprocess.h"

static struct pool_config g_cfg;
/* g_running gates every entry from other threads; g_inside counts callers
 * between that check and the hand-off to an executor, so pool_stop can
 * wait for them before it stops the executors: nothing is posted to a
 * queue nobody will read again. */
static atomic_int g_running;
static atomic_int g_inside;

static bool pool_enter(void)
{
    atomic_fetch_add(&g_inside, 1);
    if (atomic_load(&g_running))
        return true;
    atomic_fetch_sub(&g_inside, 1);
    return false;
}

static void pool_leave(void)
{
    atomic_fetch_sub(&g_inside, 1);
}
static int g_docker; /* container_init succeeded */


/* Per-thread xorshift seeded from getrandom: request ids must be unique,
 * and this is on every invoke. */
static uint64_t rand64(void)
{
    static __thread uint64_t s;
    if (!s) {
        if (getrandom(&s, sizeof(s), 0) != sizeof(s) || !s)
            s = (uint64_t)executor_now_ns() | 1;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
}

void pool_request_id(char out[40])
{
    uint64_t a = rand64(), b = rand64();
    /* UUID v4 layout. */
    snprintf(out, 40, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
             (unsigned)a & 0xfff, (unsigned)((b >> 48) & 0x3fff) | 0x8000,
             (unsigned long long)(b & 0xffffffffffffull));
}

struct invocation *invocation_new(struct fn_spec *fn)
{
    struct invocation *inv = calloc(1, sizeof(*inv));
    if (!inv)
        return NULL;
    inv->fn = fnspec_ref(fn);
    inv->msg_kind = POOL_MSG_INVOKE;
    inv->max_retries = 2;
    inv->max_event_age_s = 21600;
    pool_request_id(inv->request_id);
    return inv;
}

void invocation_free(struct invocation *inv)
{
    if (!inv)
        return;
    fnspec_unref(inv->fn);
    free(inv->invoked_arn);
    free(inv->payload);
    free(inv->client_context);
    free(inv->cognito_identity);
    free(inv->trace_id);
    free(inv->result);
    free(inv->error_message);
    free(inv->log);
    invstream_free(inv->stream);
    free(inv);
}

static unsigned long key_hash(const char *key)
{
    unsigned long h = 1469598103934665603ul;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ul;
    return h;
}

static struct executor *owner_of(const char *key)
{
    return g_pool.all[key_hash(key) % (unsigned long)g_pool.n];
}

/* Every environment costs lambdad a few descriptors (Runtime API listener
 * and connections, log pipe, pidfd, cgroup dirs): raise the soft limit to
 * the hard one, as servers do. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            LOG_INFO("open files limit raised from %llu to %llu", (unsigned long long)was,
                     (unsigned long long)rl.rlim_max);
    }
}

int pool_start(const struct pool_config *cfg, const char **err)
{
    g_cfg = *cfg;
    raise_nofile();
    if (g_cfg.executors <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        g_cfg.executors = n > 0 ? (int)n : 1;
    }
    if (g_cfg.max_envs <= 0)
        g_cfg.max_envs = 32;
    if (g_cfg.ttl_s <= 0)
        g_cfg.ttl_s = 300;
    if (!g_cfg.bootstrap_dir)
        g_cfg.bootstrap_dir = LAMBDAD_SOURCE_DIR "/runtime/bootstrap";
    if (!g_cfg.endpoint_url)
        g_cfg.endpoint_url = "http://127.0.0.1:4566";
    static char workdir[256];
    if (!g_cfg.work_dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(workdir, sizeof(workdir), "%s/lambdad-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        g_cfg.work_dir = workdir;
    }
    if (mkdir(g_cfg.work_dir, 0700) < 0 && errno != EEXIST) {
        *err = "cannot create the environments' work directory";
        return -errno;
    }
    static char instance[24];
    if (!g_cfg.instance_id) {
        snprintf(instance, sizeof(instance), "%08x%04x", (unsigned)rand64(), (unsigned)getpid() & 0xffff);
        g_cfg.instance_id = instance;
    }
    if (g_cfg.kind != POOL_EXEC_SUBPROCESS) {
        static char derr[512];
        struct container_config cc = {
            .docker_host = g_cfg.docker_host,
            .network = g_cfg.docker_network ? g_cfg.docker_network : "host",
            .image_overrides = g_cfg.image_overrides,
            .instance_id = g_cfg.instance_id,
            .bootstrap_dir = g_cfg.bootstrap_dir,
        };
        int rc = container_init(&cc, derr);
        if (rc < 0 && g_cfg.kind == POOL_EXEC_DOCKER) {
            *err = derr;
            return rc;
        }
        if (rc < 0)
            LOG_WARN("%s; functions that need docker will fail until lambdad restarts", derr);
        else
            LOG_INFO("docker executor: engine reachable, network %s, instance %s", cc.network,
                     g_cfg.instance_id);
        g_docker = rc == 0;
    }
    const char *mem = subprocess_init(g_cfg.python, g_cfg.node);
    LOG_INFO("subprocess executor: memory limits %s", mem);
    if (g_cfg.kind != POOL_EXEC_DOCKER)
        subprocess_set_zygote(g_cfg.python_zygote, g_cfg.bootstrap_dir);
    if (envmap_init() < 0) {
        *err = "out of memory";
        return -ENOMEM;
    }
    int brc = bio_start();
    if (brc < 0) {
        *err = "cannot start the background job threads";
        return brc;
    }
    g_pool.cfg = &g_cfg;
    g_pool.n = g_cfg.executors;
    g_pool.all = calloc((size_t)g_pool.n, sizeof(*g_pool.all));
    g_pool.starving = calloc((size_t)g_pool.n, sizeof(*g_pool.starving));
    if (!g_pool.all || !g_pool.starving) {
        *err = "out of memory";
        return -ENOMEM;
    }
    for (int i = 0; i < g_pool.n; i++) {
        int rc = executor_start(&g_pool.all[i], i, &g_cfg);
        if (rc < 0) {
            *err = "cannot start executor threads";
            g_pool.n = i;
            pool_stop();
            return rc;
        }
    }
    atomic_store(&g_running, 1);
    LOG_INFO("pool: %d executor threads, at most %d environments, idle ttl %d s", g_pool.n,
             g_cfg.max_envs, g_cfg.ttl_s);
    return 0;
}

void pool_stop(void)
{
    atomic_store(&g_running, 0);
    while (atomic_load(&g_inside) > 0)
        sched_yield();
    for (int i = 0; i < g_pool.n; i++) {
        struct pool_ctl c = {.msg_kind = POOL_MSG_STOP};
        executor_call(g_pool.all[i], &c);
    }
    for (int i = 0; i < g_pool.n; i++)
        executor_join(g_pool.all[i]);
    /* After the executor threads (their last clean-ups are queued) and
     * before the executors are freed: spawn jobs and container helpers
     * post their reports into executor queues until they are stopped. */
    bio_stop();
    if (g_docker)
        container_shutdown();
    for (int i = 0; i < g_pool.n; i++)
        executor_free(g_pool.all[i]);
    if (g_pool.all) {
        rcu_barrier(); /* fnpools freed with call_rcu */
        envmap_fini();
    }
    subprocess_shutdown();
    g_docker = 0;
    free(g_pool.all);
    free(g_pool.starving);
    g_pool.all = NULL;
    g_pool.starving = NULL;
    g_pool.n = 0;
}

void pool_stream_resume(void *ctx, uint64_t env_id)
{
    if (!pool_enter())
        return; /* stopping: every environment goes anyway */
    struct pool_ctl *c = calloc(1, sizeof(*c));
    if (c) {
        c->msg_kind = POOL_MSG_RESUME;
        c->env_id = env_id;
        executor_post(ctx, &c->qnode);
    } else {
        LOG_ERROR("out of memory resuming a streamed response");
    }
    pool_leave();
}

void pool_submit(struct invocation *inv)
{
    inv->msg_kind = POOL_MSG_INVOKE;
    inv->submit_ns = executor_now_ns();
    if (!pool_enter()) {
        inv->outcome = INV_SERVICE_ERROR;
        inv->error_message = strdup("lambdad is shutting down");
        inv->on_done(inv);
        return;
    }
    executor_post(owner_of(inv->fn->key), &inv->qnode);
    pool_leave();
}

void pool_evict(const char *fn_key)
{
    if (!pool_enter())
        return;
    struct pool_ctl c = {.msg_kind = POOL_MSG_EVICT, .key = (char *)fn_key};
    executor_call(owner_of(fn_key), &c);
    pool_leave();
}

int pool_provision(struct fn_spec *spec, int n)
{
    if (!pool_enter())
        return 0;
    struct pool_ctl c = {.msg_kind = POOL_MSG_PROVISION, .spec = spec, .count = n};
    executor_call(owner_of(spec->key), &c);
    pool_leave();
    return c.count;
}

json_t *pool_envs_json(void)
{
    json_t *arr = json_array();
    if (!pool_enter())
        return arr;
    for (int i = 0; i < g_pool.n; i++) {
        struct pool_ctl c = {.msg_kind = POOL_MSG_LIST, .list = arr};
        executor_call(g_pool.all[i], &c);
    }
    pool_leave();
    return arr;
}

void pool_stats(struct pool_stats *out)
{
    out->invocations = atomic_load(&g_pool.invocations);
    out->cold_starts = atomic_load(&g_pool.cold_starts);
    out->envs_live = atomic_load(&g_pool.live_envs);
    out->envs_busy = atomic_load(&g_pool.busy_envs);
    out->queued = atomic_load(&g_pool.queued);
}

void pool_set_log_sink(pool_log_sink_fn fn, void *user)
{
    report_set_sink(fn, user);
}
