/* main: lambdad's entry point: configuration, start-up order, signals and
 * orderly shutdown.
 *
 * DESIGN: SIGINT/SIGTERM are blocked before any thread starts and the main
 * thread waits for them with sigwait, so no handler runs in a random thread.
 * Start-up order: config -> data dir (lock) -> code store -> layers (load)
 * -> registry (load) -> log store -> pool -> HTTP. Shutdown runs it backwards: mg_stop lets in-flight
 * requests finish, then the pool stops its environments, then the registry
 * drains its RCU callbacks; an ephemeral run removes its temp directory. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <urcu.h>

#include "pool/pool.h"
#include "runtime/container.h"
#include "runtime/codestore.h"
#include "runtime/log.h"
#include "server/admin.h"
#include "server/api_capacity.h"
#include "server/api_csc.h"
#include "server/api_esm.h"
#include "server/api_functions.h"
#include "server/api_provisioned.h"
#include "server/api_invoke.h"
#include "server/coderefs.h"
#include "server/config.h"
#include "server/docker_api.h"
#include "server/http.h"
#include "runtime/fsutil.h"
#include "server/layers.h"
#include "server/logs_store.h"
#include "server/persist.h"
#include "server/registry.h"
#include "server/s3store.h"
#include "server/svc_iam.h"

#ifndef PR_FUTEX_HASH /* Linux 6.16's uapi; Debian 12's headers predate it */
#define PR_FUTEX_HASH 78
#define PR_FUTEX_HASH_SET_SLOTS 1
#define PR_FUTEX_HASH_GET_SLOTS 2
#endif

/* Since Linux 6.16 a threaded process gets a private futex hash sized to
 * the online CPUs: 16 slots on 2 CPUs. Every idle HTTP worker (civetweb's,
 * up to --http-threads) sleeps on one condition variable, so one slot holds
 * ~2,000 waiters, and any other futex that hashes to that slot (an Invoke's
 * waiter, a mutex, a condition variable) has the kernel walk that whole list
 * on each wake: the executor's FUTEX_WAKE became tens of microseconds, and
 * invokes/s at 8 connections fell by a third whenever one of the 8 waiters'
 * futexes landed there (1 - (15/16)^8: 40% of runs). The hash is sized to
 * the threads instead (4 slots per thread, a power of two, at least 1,024,
 * at most 65,536: 64 bytes of kernel memory each), before any thread
 * starts. Older kernels refuse the option and keep their global hash. */
static void size_futex_hash(int http_threads)
{
    unsigned long want = 1024, threads = (unsigned long)http_threads + 64;
    while (want < 4 * threads && want < 65536)
        want <<= 1;
    if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, want, 0, 0) == 0)
        LOG_INFO("futex hash: %d slots", prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0));
    else
        LOG_INFO("futex hash: the kernel's (PR_FUTEX_HASH: %s)", strerror(errno));
}

int main(int argc, char **argv)
{
    struct lambdad_config cfg;
    char err[512], tmp_root[PATH_MAX] = "", code_root[PATH_MAX], work_dir[PATH_MAX + 8];
    char endpoint[300], instance[37];
    struct persist *persist = NULL, *layers_persist = NULL, *iam_persist = NULL;
    struct codestore *cs = NULL;
    const char *perr = NULL;
    int rc, exit_code = 1;

    switch (config_parse(&cfg, argc, argv, err, sizeof(err))) {
    case CONFIG_HELP:
        config_free(&cfg);
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "lambdad: %s\n", err);
        config_free(&cfg);
        return 2;
    default:
        break;
    }
    log_set_level(cfg.log_level);
    pthread_setname_np(pthread_self(), "lambdad-main");
    size_futex_hash(cfg.http_threads);
    rcu_register_thread();

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg.ephemeral) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp_root, sizeof(tmp_root), "%s/lambdad-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmp_root)) {
            fprintf(stderr, "lambdad: cannot create a temp directory: %s\n", strerror(errno));
            tmp_root[0] = 0;
            goto out;
        }
        snprintf(code_root, sizeof(code_root), "%s", tmp_root);
    } else {
        rc = persist_open(&persist, cfg.data_dir);
        if (rc) {
            fprintf(stderr, "lambdad: data dir %s: %s\n", cfg.data_dir,
                    rc == -EBUSY ? "in use by another lambdad" : strerror(-rc));
            goto out;
        }
        rc = persist_open_sub(&layers_persist, persist, "layers");
        if (rc) {
            fprintf(stderr, "lambdad: data dir %s/layers: %s\n", cfg.data_dir, strerror(-rc));
            goto out;
        }
        rc = persist_open_sub(&iam_persist, persist, "iam");
        if (rc) {
            fprintf(stderr, "lambdad: data dir %s/iam: %s\n", cfg.data_dir, strerror(-rc));
            goto out;
        }
        snprintf(code_root, sizeof(code_root), "%s", cfg.data_dir);
    }
    snprintf(work_dir, sizeof(work_dir), "%s/work", code_root);
    mkdir(work_dir, 0755);

    rc = codestore_open(&cs, code_root);
    if (rc) {
        fprintf(stderr, "lambdad: code store under %s: %s\n", code_root, strerror(-rc));
        goto out;
    }
    coderefs_init(cs); /* before the loads: they take blob references */
    layers_init(cs, layers_persist);
    rc = layers_load();
    if (rc < 0) {
        fprintf(stderr, "lambdad: cannot load %s/layers: %s\n", cfg.data_dir, strerror(-rc));
        goto out;
    }
    if (registry_init(cs, persist)) {
        fprintf(stderr, "lambdad: out of memory\n");
        goto out;
    }
    rc = registry_load();
    if (rc < 0) {
        fprintf(stderr, "lambdad: cannot load %s: %s\n", cfg.data_dir, strerror(-rc));
        goto out_registry;
    }
    rc = s3store_open(code_root);
    if (rc) {
        fprintf(stderr, "lambdad: cannot open the S3 store under %s: %s\n", code_root, strerror(-rc));
        goto out_registry;
    }
    rc = iam_init(iam_persist);
    if (rc < 0) {
        fprintf(stderr, "lambdad: cannot load %s/iam: %s\n", cfg.data_dir, strerror(-rc));
        goto out_registry;
    }
    api_functions_init(cs);
    rc = api_csc_init(persist);
    if (rc < 0) {
        fprintf(stderr, "lambdad: cannot load %s/code-signing-configs: %s\n", cfg.data_dir, strerror(-rc));
        goto out_registry;
    }
    rc = api_capacity_init(persist);
    if (rc < 0) {
        fprintf(stderr, "lambdad: cannot load %s/capacity-providers: %s\n", cfg.data_dir, strerror(-rc));
        goto out_registry;
    }
    rc = api_esm_init(persist);
    if (rc < 0) {
        fprintf(stderr, "lambdad: cannot load %s/event-source-mappings: %s\n", cfg.data_dir, strerror(-rc));
        goto out_registry;
    }
    api_invoke_configure(cfg.async_payload_limit, cfg.invoke_spin_us);
    admin_init(cs, config_executor_name(cfg.executor));
    rc = logs_store_init(persist, cfg.data_dir, cfg.logs_max_bytes);
    if (rc < 0) {
        fprintf(stderr, "lambdad: cannot load %s/logs: %s\n", cfg.data_dir, strerror(-rc));
        goto out_registry;
    }
    pool_set_log_sink(logs_store_sink, NULL);

    const char *host = cfg.host;
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
        host = "127.0.0.1";
    snprintf(endpoint, sizeof(endpoint), strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d", host, cfg.port);
    http_uuid4(instance);
    struct pool_config pc = {
        .executors = cfg.executors,
        .max_envs = cfg.max_containers,
        .ttl_s = cfg.container_ttl_s,
        .kind = cfg.executor,
        .bootstrap_dir = cfg.bootstrap_dir,
        .endpoint_url = endpoint,
        .work_dir = work_dir,
        .docker_host = cfg.docker_host,
        .docker_network = cfg.network,
        .image_overrides = cfg.images,
        .instance_id = instance,
        .retry_delay_ms = {cfg.retry_delay_ms[0], cfg.retry_delay_ms[1]},
        .python_zygote = cfg.python_zygote,
        .spin_us = cfg.invoke_spin_us,
    };
    if (pool_start(&pc, &perr)) {
        fprintf(stderr, "lambdad: %s\n", perr ? perr : "cannot start the executor pool");
        goto out_registry;
    }
    api_provisioned_restore(); /* warm the stored provisioned concurrency again */
    /* Before the Lambda API: its readiness covers the Docker API too. */
    if (cfg.n_docker_api) {
        if (cfg.executor == POOL_EXEC_SUBPROCESS)
            LOG_WARN("--docker-api with --lambda-executor subprocess: containers are functions of "
                     "PackageType Image, which need --lambda-executor docker or auto");
        struct docker_api_options dao = {
            .listen = cfg.docker_api,
            .account = cfg.account_id,
            .region = "us-east-1",
            .prefix = cfg.docker_api_prefix,
            .memory_mb = cfg.docker_api_memory_mb,
            .timeout_s = cfg.docker_api_timeout_s,
            .engine = cfg.executor != POOL_EXEC_SUBPROCESS && container_available(),
        };
        if (docker_api_start(&dao, &perr)) {
            fprintf(stderr, "lambdad: %s\n", perr);
            pool_stop();
            goto out_registry;
        }
    }
    struct http_options ho = {cfg.host, cfg.port, cfg.http_threads, cfg.account_id, cfg.http_keepalive_s};
    if (http_start(&ho, &perr)) {
        fprintf(stderr, "lambdad: %s\n", perr);
        docker_api_stop();
        pool_stop();
        goto out_registry;
    }
    LOG_INFO("lambdad %s listening on %s (data dir %s, executor %s, %zu functions)", LAMBDAD_VERSION,
             endpoint, cfg.ephemeral ? tmp_root : cfg.data_dir, config_executor_name(cfg.executor),
             registry_count());

    int sig = 0;
    sigwait(&sigs, &sig);
    LOG_INFO("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* Let in-flight requests (a synchronous invoke may run for minutes)
     * finish while new ones get 503; a second signal stops at once. */
    http_drain_begin();
    if (http_inflight() > 0)
        LOG_INFO("waiting for %d in-flight request(s); send the signal again to stop now",
                 http_inflight());
    while (http_inflight() > 0) {
        struct timespec tick = {0, 10000000};
        if (sigtimedwait(&sigs, NULL, &tick) > 0) {
            LOG_WARN("second signal: stopping without waiting for in-flight requests");
            break;
        }
    }
    /* The pool stops first: after a forced stop it answers what is still in
     * flight (ServiceException), so the HTTP workers can finish and
     * civetweb's stop, which joins them, returns. */
    docker_api_stop();
    pool_stop();
    LOG_DEBUG("executor pool stopped");
    http_stop();
    LOG_DEBUG("http front stopped");
    exit_code = 0;
out_registry:
    logs_store_shutdown(); /* after the pool: no sink calls any more */
    LOG_DEBUG("log store flushed");
    registry_shutdown();
    api_esm_shutdown();
    api_csc_shutdown();
    api_capacity_shutdown();
    LOG_DEBUG("registry released");
out:
    iam_shutdown();
    s3store_close();
    layers_shutdown();
    coderefs_shutdown();
    codestore_close(cs);
    persist_close(iam_persist);
    persist_close(layers_persist);
    persist_close(persist);
    if (tmp_root[0])
        fsutil_rm_rf(tmp_root);
    LOG_DEBUG("state closed");
    rcu_unregister_thread();
    config_free(&cfg);
    return exit_code;
}
