/* lambda_env: environment variables of an execution environment (see
 * lambda_env.h and lambda-reference.md section 5.1). */
#include "runtime/lambda_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct envb {
    char **v;
    size_t n, cap;
    bool oom;
};

static void envb_add(struct envb *b, const char *key, const char *value)
{
    if (b->oom || !value)
        return;
    /* Later values override earlier ones with the same key. */
    size_t klen = strlen(key);
    char *s = malloc(klen + strlen(value) + 2);
    if (!s) {
        b->oom = true;
        return;
    }
    sprintf(s, "%s=%s", key, value);
    for (size_t i = 0; i < b->n; i++) {
        if (strncmp(b->v[i], key, klen) == 0 && b->v[i][klen] == '=') {
            free(b->v[i]);
            b->v[i] = s;
            return;
        }
    }
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        char **nv = realloc(b->v, cap * sizeof(*nv));
        if (!nv) {
            free(s);
            b->oom = true;
            return;
        }
        b->v = nv;
        b->cap = cap;
    }
    b->v[b->n++] = s;
    b->v[b->n] = NULL;
}

bool lambda_env_is_custom_runtime(const char *runtime)
{
    return runtime && strncmp(runtime, "provided", 8) == 0;
}

/* Rewrites http(s)://localhost|127.0.0.1 URLs so a container reaches the
 * host. Returns a malloc'd string or NULL when unchanged. */
static char *rewrite_localhost(const char *value, const char *host)
{
    static const char *const needles[] = {"://localhost", "://127.0.0.1"};
    if (!host)
        return NULL;
    char *cur = NULL;
    for (size_t k = 0; k < 2; k++) {
        const char *src = cur ? cur : value;
        const char *hit = strstr(src, needles[k]);
        if (!hit)
            continue;
        size_t nlen = strlen(needles[k]);
        size_t count = 0;
        for (const char *p = hit; p; p = strstr(p + nlen, needles[k]))
            count++;
        size_t hlen = strlen(host) + 3;
        char *out = malloc(strlen(src) + count * hlen + 1);
        if (!out)
            break;
        char *o = out;
        const char *p = src;
        for (const char *q = hit; q; q = strstr(p, needles[k])) {
            memcpy(o, p, (size_t)(q - p));
            o += q - p;
            o += sprintf(o, "://%s", host);
            p = q + nlen;
        }
        strcpy(o, p);
        free(cur);
        cur = out;
    }
    return cur;
}

char **lambda_env_build(const struct fn_spec *s, const struct lambda_env_opts *o)
{
    struct envb b = {0};
    char buf[4096];
    const bool custom = lambda_env_is_custom_runtime(s->runtime);
    const char *opt = o->opt_dir;

    /* Unreserved defaults first: the user's variables may override them. */
    envb_add(&b, "LANG", "en_US.UTF-8");
    envb_add(&b, "TZ", ":UTC");
    if (o->container) {
        envb_add(&b, "PATH", "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin");
        envb_add(&b, "LD_LIBRARY_PATH", "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:"
                                        "/var/runtime/lib:/var/task:/var/task/lib:/opt/lib");
    } else {
        const char *path = getenv("PATH");
        snprintf(buf, sizeof(buf), "%s%s%s%s%s", opt ? opt : "", opt ? "/bin:" : "",
                 o->extra_path ? o->extra_path : "", o->extra_path ? ":" : "",
                 path ? path : "/usr/local/bin:/usr/bin:/bin");
        envb_add(&b, "PATH", buf);
        if (opt) {
            snprintf(buf, sizeof(buf), "%s/lib:%s/lib", o->task_root, opt);
            envb_add(&b, "LD_LIBRARY_PATH", buf);
        }
        const char *home = getenv("HOME");
        envb_add(&b, "HOME", home ? home : "/tmp");
    }
    if (o->tmp_dir)
        envb_add(&b, "TMPDIR", o->tmp_dir);
    /* Language search paths as AWS sets them: task root, then the layer
     * directories of the runtime's language version (python3.X site-packages
     * before /opt/python; nodejs/nodeNN/node_modules before
     * nodejs/node_modules). */
    const char *rt = s->runtime ? s->runtime : "";
    if (opt && !strncmp(rt, "python", 6))
        snprintf(buf, sizeof(buf), "%s:%s/python/lib/%s/site-packages:%s/python", o->task_root, opt,
                 rt, opt);
    else if (opt)
        snprintf(buf, sizeof(buf), "%s:%s/python", o->task_root, opt);
    else
        snprintf(buf, sizeof(buf), "%s", o->task_root);
    envb_add(&b, "PYTHONPATH", buf);
    envb_add(&b, "PYTHONUNBUFFERED", "1");
    envb_add(&b, "PYTHONDONTWRITEBYTECODE", "1");
    int node_major = 0;
    if (!strncmp(rt, "nodejs", 6))
        node_major = atoi(rt + 6);
    if (opt && node_major > 0)
        snprintf(buf, sizeof(buf), "%s/nodejs/node%d/node_modules:%s/nodejs/node_modules:%s:%s/node_modules",
                 opt, node_major, opt, o->task_root, o->task_root);
    else if (opt)
        snprintf(buf, sizeof(buf), "%s/nodejs/node_modules:%s:%s/node_modules", opt, o->task_root,
                 o->task_root);
    else
        snprintf(buf, sizeof(buf), "%s:%s/node_modules", o->task_root, o->task_root);
    envb_add(&b, "NODE_PATH", buf);

    /* Reserved variables. */
    envb_add(&b, "_HANDLER", s->handler);
    envb_add(&b, "LAMBDA_TASK_ROOT", o->task_root);
    envb_add(&b, "LAMBDA_RUNTIME_DIR", o->runtime_dir ? o->runtime_dir : "/var/runtime");
    envb_add(&b, "AWS_REGION", s->region);
    envb_add(&b, "AWS_DEFAULT_REGION", s->region);
    if (!custom && s->runtime) {
        snprintf(buf, sizeof(buf), "AWS_Lambda_%s", s->runtime);
        envb_add(&b, "AWS_EXECUTION_ENV", buf);
    }
    envb_add(&b, "AWS_LAMBDA_FUNCTION_NAME", s->name);
    snprintf(buf, sizeof(buf), "%d", s->memory_mb);
    envb_add(&b, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", buf);
    envb_add(&b, "AWS_LAMBDA_FUNCTION_VERSION", s->version);
    envb_add(&b, "AWS_LAMBDA_INITIALIZATION_TYPE", o->init_type ? o->init_type : "on-demand");
    envb_add(&b, "AWS_LAMBDA_LOG_GROUP_NAME", s->log_group);
    envb_add(&b, "AWS_LAMBDA_LOG_STREAM_NAME", o->log_stream);
    if (s->log_format && strcmp(s->log_format, "JSON") == 0)
        envb_add(&b, "AWS_LAMBDA_LOG_FORMAT", "JSON");
    envb_add(&b, "AWS_LAMBDA_RUNTIME_API", o->runtime_api);
    if (s->log_format && strcmp(s->log_format, "JSON") == 0 && s->app_log_level)
        envb_add(&b, "AWS_LAMBDA_LOG_LEVEL", s->app_log_level);
    /* Dummy credentials whose key id is the function's account, so calls
     * from the handler land in the same account of lambdad. */
    envb_add(&b, "AWS_ACCESS_KEY_ID", s->account && strlen(s->account) == 12 ? s->account : "test");
    envb_add(&b, "AWS_SECRET_ACCESS_KEY", "test");
    envb_add(&b, "AWS_SESSION_TOKEN", "test");
    envb_add(&b, "AWS_ENDPOINT_URL", o->endpoint_url);
    /* The per-service variants (botocore: AWS_ENDPOINT_URL_<service id>)
     * beat the general one, so they are left out when the function points
     * AWS_ENDPOINT_URL elsewhere itself. */
    bool own_endpoint = false;
    for (size_t i = 0; i < s->n_env; i++)
        own_endpoint |= !strcmp(s->env[i].key, "AWS_ENDPOINT_URL");
    if (!own_endpoint) {
        static const char *const services[] = {"S3", "LAMBDA", "IAM", "STS", "CLOUDWATCH_LOGS", "LOGS"};
        for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
            snprintf(buf, sizeof(buf), "AWS_ENDPOINT_URL_%s", services[i]);
            envb_add(&b, buf, o->endpoint_url);
        }
    }
    envb_add(&b, "AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR");

    /* The function's own variables, localhost rewritten for containers. */
    for (size_t i = 0; i < s->n_env; i++) {
        char *rw = o->container ? rewrite_localhost(s->env[i].value, o->container_host) : NULL;
        envb_add(&b, s->env[i].key, rw ? rw : s->env[i].value);
        free(rw);
    }
    if (b.oom || !b.v) {
        lambda_env_free(b.v);
        return NULL;
    }
    return b.v;
}

void lambda_env_free(char **envp)
{
    for (size_t i = 0; envp && envp[i]; i++)
        free(envp[i]);
    free(envp);
}
