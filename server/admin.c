/* admin: the /_lambdad/ endpoints (see admin.h). */
#include "server/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <civetweb.h>

#include "pool/pool.h"
#include "runtime/codestore.h"
#include "server/registry.h"

#ifndef LAMBDAD_VERSION
#define LAMBDAD_VERSION "0"
#endif

static struct codestore *g_cs;
static const char *g_executor = "subprocess";
static struct timespec g_started;

void admin_init(struct codestore *cs, const char *executor_name)
{
    g_cs = cs;
    g_executor = executor_name;
    clock_gettime(CLOCK_MONOTONIC, &g_started);
}

void admin_noop(struct http_req *req)
{
    http_send(req, 200, "application/json", NULL, "{\"a\":1}", 7);
}

void admin_health(struct http_req *req)
{
    struct pool_stats st;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pool_stats(&st);
    http_send_jsont(req, 200,
                    json_pack("{s:s,s:s,s:I,s:s,s:I,s:{s:I,s:I,s:i,s:i,s:i}}", "status", "ok", "version",
                              LAMBDAD_VERSION, "uptime_s", (json_int_t)(now.tv_sec - g_started.tv_sec),
                              "executor", g_executor, "functions", (json_int_t)registry_count(), "pool",
                              "invocations", (json_int_t)st.invocations, "cold_starts",
                              (json_int_t)st.cold_starts, "envs_live", st.envs_live, "envs_busy",
                              st.envs_busy, "queued", st.queued));
}

void admin_envs(struct http_req *req)
{
    json_t *envs = pool_envs_json();
    http_send_jsont(req, 200, envs ? envs : json_array());
}

void admin_evict(struct http_req *req)
{
    struct fn_name n;
    struct api_error err;
    char key[200];
    /* The key is evicted whether or not the function still exists: its
     * environments may outlive it. */
    if (validate_function_ref(http_param(req, 0), NULL, 256, req->region, req->account, &n, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    snprintf(key, sizeof(key), "%s/%s/%s", n.region, n.account, n.name);
    pool_evict(key);
    http_send_empty(req, 204);
}

void admin_code(struct http_req *req)
{
    const char *file = http_param(req, 0);
    char hex[65];
    size_t n = file ? strlen(file) : 0;
    if (n != 68 || strcmp(file + 64, ".zip") || strspn(file, "0123456789abcdef") != 64 || !g_cs) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
        return;
    }
    memcpy(hex, file, 64);
    hex[64] = 0;
    char *path = codestore_zip_path(g_cs, hex);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    free(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        if (fd >= 0)
            close(fd);
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
        return;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != (size_t)st.st_size)
        http_send_error(req, &AWS_SERVICE, "cannot read the stored code");
    else
        http_send(req, 200, "application/zip", NULL, buf, got);
    free(buf);
}
