/* config: flags + environment variables (see config.h).
 *
 * DESIGN: one table lists every option once (flag, variable, help); the
 * environment pass and the argv pass both feed config_set(), so a value is
 * validated the same way whichever way it came in. */
#include "server/config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef LAMBDAD_SOURCE_DIR
#define LAMBDAD_SOURCE_DIR "."
#endif

enum opt_id {
    OPT_HOST = 1, OPT_PORT, OPT_DATA_DIR, OPT_EPHEMERAL, OPT_HTTP_THREADS, OPT_ACCOUNT,
    OPT_LOG_LEVEL, OPT_EXECUTORS, OPT_EXECUTOR, OPT_TTL, OPT_MAX_CONTAINERS, OPT_NETWORK,
    OPT_IMAGE, OPT_DOCKER_HOST, OPT_ASYNC_LIMIT, OPT_RETRY_DELAYS, OPT_BOOTSTRAP, OPT_PYTHON_ZYGOTE,
    OPT_DOCKER_API, OPT_DOCKER_API_MEMORY, OPT_DOCKER_API_TIMEOUT, OPT_DOCKER_API_PREFIX,
    OPT_VALIDATE_ROLES, OPT_STATE_MS, OPT_HTTP_KEEPALIVE, OPT_LOGS_MAX_BYTES,
    OPT_INVOKE_SPIN,
    OPT_HELP,
};

struct opt_desc {
    const char *flag;
    int has_arg;
    enum opt_id id;
    const char *env;
    const char *help;
};

static const struct opt_desc g_opts[] = {
    {"host", 1, OPT_HOST, "LAMBDAD_HOST", "address to listen on (default 127.0.0.1)"},
    {"port", 1, OPT_PORT, "LAMBDAD_PORT", "TCP port (default 4566)"},
    {"data-dir", 1, OPT_DATA_DIR, "LAMBDAD_DATA_DIR",
     "state directory (default $XDG_DATA_HOME/lambdad or ~/.local/share/lambdad)"},
    {"ephemeral", 0, OPT_EPHEMERAL, "LAMBDAD_EPHEMERAL",
     "keep nothing: no state written, code in a temp dir removed at exit (env: 1)"},
    {"http-threads", 1, OPT_HTTP_THREADS, "LAMBDAD_HTTP_THREADS",
     "HTTP threads, one per open connection: connections served at once (default 2048)"},
    {"http-keepalive-timeout", 1, OPT_HTTP_KEEPALIVE, "LAMBDAD_HTTP_KEEPALIVE_TIMEOUT",
     "seconds an idle keep-alive connection stays open; 0 closes after each response (default 60)"},
    {"account-id", 1, OPT_ACCOUNT, "LAMBDAD_ACCOUNT_ID", "12-digit account id (default 000000000000)"},
    {"log-level", 1, OPT_LOG_LEVEL, "LAMBDAD_LOG_LEVEL", "error|warn|info|debug (default info)"},
    {"executors", 1, OPT_EXECUTORS, "LAMBDAD_EXECUTORS", "executor threads (default CPU count)"},
    {"lambda-executor", 1, OPT_EXECUTOR, "LAMBDAD_LAMBDA_EXECUTOR",
     "subprocess|docker|auto (default subprocess)"},
    {"lambda-container-ttl", 1, OPT_TTL, "LAMBDAD_LAMBDA_CONTAINER_TTL",
     "idle seconds before an environment stops (default 300)"},
    {"lambda-max-containers", 1, OPT_MAX_CONTAINERS, "LAMBDAD_LAMBDA_MAX_CONTAINERS",
     "live environments cap (default 32; 10 with the docker executor)"},
    {"lambda-network", 1, OPT_NETWORK, "LAMBDAD_LAMBDA_NETWORK", "docker network (default host)"},
    {"lambda-image", 1, OPT_IMAGE, "LAMBDAD_LAMBDA_IMAGES",
     "RUNTIME=IMAGE, repeatable (env: comma-separated list)"},
    {"docker-host", 1, OPT_DOCKER_HOST, "DOCKER_HOST", "docker engine (default unix:///var/run/docker.sock)"},
    {"async-payload-limit", 1, OPT_ASYNC_LIMIT, "LAMBDAD_ASYNC_PAYLOAD_LIMIT",
     "Event payload limit in bytes (default 1048576)"},
    {"event-retry-delays", 1, OPT_RETRY_DELAYS, "LAMBDAD_EVENT_RETRY_DELAYS",
     "Event retry delays \"ms,ms\" (default 60000,120000)"},
    {"bootstrap-dir", 1, OPT_BOOTSTRAP, "LAMBDAD_BOOTSTRAP_DIR",
     "bundled bootstraps (default " LAMBDAD_SOURCE_DIR "/runtime/bootstrap)"},
    {"python-zygote", 1, OPT_PYTHON_ZYGOTE, "LAMBDAD_PYTHON_ZYGOTE",
     "on|off: fork python environments from a pre-initialised interpreter (default on)"},
    {"docker-api", 1, OPT_DOCKER_API, "LAMBDAD_DOCKER_API",
     "serve the Docker Engine API on unix:///PATH or tcp://HOST:PORT, repeatable or comma "
     "list (default off)"},
    {"docker-api-memory", 1, OPT_DOCKER_API_MEMORY, "LAMBDAD_DOCKER_API_MEMORY",
     "MemorySize (MB) of a container without HostConfig.Memory (default 1024)"},
    {"docker-api-timeout", 1, OPT_DOCKER_API_TIMEOUT, "LAMBDAD_DOCKER_API_TIMEOUT",
     "Timeout (s) of a container's function (default 900)"},
    {"docker-api-prefix", 1, OPT_DOCKER_API_PREFIX, "LAMBDAD_DOCKER_API_PREFIX",
     "function name prefix of containers: PREFIX-<id12> (default docker)"},
    {"validate-roles", 0, OPT_VALIDATE_ROLES, "LAMBDAD_VALIDATE_ROLES",
     "CreateFunction/UpdateFunctionConfiguration refuse a Role that does not exist in lambdad's IAM (env: 1)"},
    {"state-transition-ms", 1, OPT_STATE_MS, "LAMBDAD_STATE_TRANSITION_MS",
     "how long a created function stays Pending and an update InProgress (default 0)"},
    {"logs-max-bytes", 1, OPT_LOGS_MAX_BYTES, "LAMBDAD_LOGS_MAX_BYTES",
     "cap on the CloudWatch Logs events kept (message bytes + 64 per event, in memory and on "
     "disk), oldest dropped first; 0: no cap (default 67108864)"},
    {"invoke-spin-us", 1, OPT_INVOKE_SPIN, "LAMBDAD_INVOKE_SPIN_US",
     "microseconds an HTTP thread waiting alone for its invoke's result polls before it sleeps, "
     "and an executor that finished the only running invocation polls for the next "
     "(0-10000, 0: always sleep; default 200)"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
};
#define N_OPTS (sizeof(g_opts) / sizeof(g_opts[0]))

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = fnspec_strdup(v);
}

static int add_image(struct lambdad_config *c, const char *v, char *err, size_t errlen)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1])
        return fail(err, errlen, "invalid --lambda-image '%s' (expected RUNTIME=IMAGE)", v);
    if (c->n_images >= CONFIG_MAX_IMAGES)
        return fail(err, errlen, "too many --lambda-image values (max %d)", CONFIG_MAX_IMAGES);
    c->images[c->n_images++] = fnspec_strdup(v);
    c->images[c->n_images] = NULL;
    return 0;
}

static int config_set(struct lambdad_config *c, enum opt_id id, const char *name, const char *v,
                      bool from_env, bool *max_set, char *err, size_t errlen)
{
    long n;
    switch (id) {
    case OPT_HOST:
        if (!*v)
            return fail(err, errlen, "invalid %s: empty", name);
        set_str(&c->host, v);
        return 0;
    case OPT_PORT:
        if (parse_int(v, 1, 65535, &n))
            return fail(err, errlen, "invalid %s '%s' (expected 1-65535)", name, v);
        c->port = (int)n;
        return 0;
    case OPT_DATA_DIR:
        if (!*v)
            return fail(err, errlen, "invalid %s: empty", name);
        set_str(&c->data_dir, v);
        return 0;
    case OPT_EPHEMERAL:
        if (!from_env || !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
            c->ephemeral = true;
        else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !*v)
            c->ephemeral = false;
        else
            return fail(err, errlen, "invalid %s '%s' (expected 1 or 0)", name, v);
        return 0;
    case OPT_VALIDATE_ROLES:
        if (!from_env || !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
            c->validate_roles = true;
        else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !*v)
            c->validate_roles = false;
        else
            return fail(err, errlen, "invalid %s '%s' (expected 1 or 0)", name, v);
        return 0;
    case OPT_HTTP_THREADS:
        if (parse_int(v, 1, CONFIG_MAX_HTTP_THREADS, &n))
            return fail(err, errlen, "invalid %s '%s' (expected 1-%d)", name, v, CONFIG_MAX_HTTP_THREADS);
        c->http_threads = (int)n;
        return 0;
    case OPT_HTTP_KEEPALIVE:
        if (parse_int(v, 0, 3600, &n))
            return fail(err, errlen, "invalid %s '%s' (expected seconds 0-3600)", name, v);
        c->http_keepalive_s = (int)n;
        return 0;
    case OPT_ACCOUNT:
        if (strlen(v) != 12 || strspn(v, "0123456789") != 12)
            return fail(err, errlen, "invalid %s '%s' (expected 12 digits)", name, v);
        memcpy(c->account_id, v, 13);
        return 0;
    case OPT_LOG_LEVEL:
        if (log_parse_level(v, &c->log_level))
            return fail(err, errlen, "invalid %s '%s' (expected error|warn|info|debug)", name, v);
        return 0;
    case OPT_EXECUTORS:
        if (parse_int(v, 1, 1024, &n))
            return fail(err, errlen, "invalid %s '%s' (expected 1-1024)", name, v);
        c->executors = (int)n;
        return 0;
    case OPT_EXECUTOR:
        if (!strcmp(v, "subprocess"))
            c->executor = POOL_EXEC_SUBPROCESS;
        else if (!strcmp(v, "docker"))
            c->executor = POOL_EXEC_DOCKER;
        else if (!strcmp(v, "auto"))
            c->executor = POOL_EXEC_AUTO;
        else
            return fail(err, errlen, "invalid %s '%s' (expected subprocess|docker|auto)", name, v);
        return 0;
    case OPT_PYTHON_ZYGOTE:
        if (!strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "true"))
            c->python_zygote = true;
        else if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "false"))
            c->python_zygote = false;
        else
            return fail(err, errlen, "invalid %s '%s' (expected on|off)", name, v);
        return 0;
    case OPT_STATE_MS:
        if (parse_int(v, 0, 600000, &n))
            return fail(err, errlen, "invalid %s '%s' (expected milliseconds 0-600000)", name, v);
        c->state_transition_ms = (int)n;
        return 0;
    case OPT_TTL:
        if (parse_int(v, 0, 86400 * 365, &n))
            return fail(err, errlen, "invalid %s '%s' (expected seconds >= 0)", name, v);
        c->container_ttl_s = (int)n;
        return 0;
    case OPT_MAX_CONTAINERS:
        if (parse_int(v, 1, 100000, &n))
            return fail(err, errlen, "invalid %s '%s' (expected 1-100000)", name, v);
        c->max_containers = (int)n;
        *max_set = true;
        return 0;
    case OPT_NETWORK:
        if (!*v)
            return fail(err, errlen, "invalid %s: empty", name);
        set_str(&c->network, v);
        return 0;
    case OPT_IMAGE:
        if (!from_env)
            return add_image(c, v, err, errlen);
        for (const char *p = v; *p;) {
            size_t len = strcspn(p, ",");
            if (len) {
                char item[1024];
                if (len >= sizeof(item))
                    return fail(err, errlen, "invalid %s: item too long", name);
                memcpy(item, p, len);
                item[len] = 0;
                if (add_image(c, item, err, errlen))
                    return -1;
            }
            p += len + (p[len] == ',');
        }
        return 0;
    case OPT_DOCKER_HOST:
        if (*v)
            set_str(&c->docker_host, v);
        return 0;
    case OPT_ASYNC_LIMIT:
        if (parse_int(v, 1, 6291456L * 16, &n))
            return fail(err, errlen, "invalid %s '%s' (expected bytes > 0)", name, v);
        c->async_payload_limit = (size_t)n;
        return 0;
    case OPT_RETRY_DELAYS: {
        long a, b;
        char buf[64];
        const char *comma = strchr(v, ',');
        if (!comma || (size_t)(comma - v) >= sizeof(buf))
            return fail(err, errlen, "invalid %s '%s' (expected ms,ms)", name, v);
        memcpy(buf, v, (size_t)(comma - v));
        buf[comma - v] = 0;
        if (parse_int(buf, 0, INT_MAX, &a) || parse_int(comma + 1, 0, INT_MAX, &b))
            return fail(err, errlen, "invalid %s '%s' (expected ms,ms)", name, v);
        c->retry_delay_ms[0] = (int)a;
        c->retry_delay_ms[1] = (int)b;
        return 0;
    }
    case OPT_LOGS_MAX_BYTES: {
        char *end;
        errno = 0;
        unsigned long long b = strtoull(v, &end, 10);
        if (!*v || *end || errno || *v == '-')
            return fail(err, errlen, "invalid %s '%s' (expected bytes, 0 for no cap)", name, v);
        c->logs_max_bytes = b;
        return 0;
    }
    case OPT_INVOKE_SPIN:
        if (parse_int(v, 0, 10000, &n))
            return fail(err, errlen, "invalid %s '%s' (expected microseconds, 0-10000)", name, v);
        c->invoke_spin_us = (int)n;
        return 0;
    case OPT_BOOTSTRAP:
        if (!*v)
            return fail(err, errlen, "invalid %s: empty", name);
        set_str(&c->bootstrap_dir, v);
        return 0;
    case OPT_DOCKER_API:
        for (const char *p = v; *p;) {
            size_t len = strcspn(p, ",");
            if (len) {
                if (c->n_docker_api >= CONFIG_MAX_DOCKER_API)
                    return fail(err, errlen, "too many %s addresses (max %d)", name,
                                CONFIG_MAX_DOCKER_API);
                char *item = strndup(p, len);
                if (!item)
                    return fail(err, errlen, "out of memory");
                bool unix_ok = !strncmp(item, "unix:///", 8) && item[8];
                bool tcp_ok = !strncmp(item, "tcp://", 6) && strrchr(item + 6, ':') &&
                              strrchr(item + 6, ':') > item + 6;
                if (tcp_ok) {
                    long port;
                    tcp_ok = !parse_int(strrchr(item, ':') + 1, 0, 65535, &port);
                }
                if (!unix_ok && !tcp_ok) {
                    fail(err, errlen, "invalid %s '%s' (expected unix:///PATH or tcp://HOST:PORT)",
                         name, item);
                    free(item);
                    return -1;
                }
                c->docker_api[c->n_docker_api++] = item;
                c->docker_api[c->n_docker_api] = NULL;
            }
            p += len + (p[len] == ',');
        }
        return 0;
    case OPT_DOCKER_API_MEMORY:
        if (parse_int(v, 128, 10240, &n))
            return fail(err, errlen, "invalid %s '%s' (expected 128-10240)", name, v);
        c->docker_api_memory_mb = (int)n;
        return 0;
    case OPT_DOCKER_API_TIMEOUT:
        if (parse_int(v, 1, 900, &n))
            return fail(err, errlen, "invalid %s '%s' (expected 1-900)", name, v);
        c->docker_api_timeout_s = (int)n;
        return 0;
    case OPT_DOCKER_API_PREFIX: {
        size_t len = strlen(v);
        if (!len || len > 50 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != len)
            return fail(err, errlen, "invalid %s '%s' (1-50 of [A-Za-z0-9_-])", name, v);
        set_str(&c->docker_api_prefix, v);
        return 0;
    }
    case OPT_HELP:
        return 0;
    }
    return fail(err, errlen, "unknown option");
}

static void print_help(void)
{
    printf("usage: lambdad [options]\n\nA local AWS Lambda service.\n\nOptions (flag wins over "
           "environment variable):\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s", g_opts[i].flag, g_opts[i].has_arg ? " VALUE" : "");
        printf("  %-30s %s%s%s%s\n", left, g_opts[i].help, g_opts[i].env ? " [env " : "",
               g_opts[i].env ? g_opts[i].env : "", g_opts[i].env ? "]" : "");
    }
}

static void set_defaults(struct lambdad_config *c)
{
    memset(c, 0, sizeof(*c));
    c->host = fnspec_strdup("127.0.0.1");
    c->port = 4566;
    c->http_threads = 2048;
    c->http_keepalive_s = CONFIG_DEFAULT_HTTP_KEEPALIVE_S;
    memcpy(c->account_id, "000000000000", 13);
    c->log_level = LOG_LEVEL_INFO;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    c->executors = ncpu > 0 ? (int)ncpu : 1;
    c->executor = POOL_EXEC_SUBPROCESS;
    c->container_ttl_s = 300;
    c->python_zygote = true;
    c->network = fnspec_strdup("host");
    c->async_payload_limit = 1048576;
    c->invoke_spin_us = 200;
    c->logs_max_bytes = 67108864ull;
    c->retry_delay_ms[0] = 60000;
    c->retry_delay_ms[1] = 120000;
    c->bootstrap_dir = fnspec_strdup(LAMBDAD_SOURCE_DIR "/runtime/bootstrap");
    c->docker_api_memory_mb = 1024;
    c->docker_api_timeout_s = 900;
    c->docker_api_prefix = fnspec_strdup("docker");
}

static int default_data_dir(struct lambdad_config *c, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, sizeof(buf), "%s/lambdad", xdg);
    else if (home && *home)
        snprintf(buf, sizeof(buf), "%s/.local/share/lambdad", home);
    else
        return fail(err, errlen, "no --data-dir given and neither XDG_DATA_HOME nor HOME is set");
    c->data_dir = fnspec_strdup(buf);
    return 0;
}

static const struct lambdad_config *g_current;

const struct lambdad_config *config_current(void)
{
    return g_current;
}

enum config_result config_parse(struct lambdad_config *c, int argc, char **argv, char *err,
                                size_t errlen)
{
    struct option longopts[N_OPTS + 1];
    bool max_set = false, images_from_flags = false, docker_api_from_flags = false;

    set_defaults(c);
    for (size_t i = 0; i < N_OPTS; i++) {
        const char *v = g_opts[i].env ? getenv(g_opts[i].env) : NULL;
        if (v && config_set(c, g_opts[i].id, g_opts[i].env, v, true, &max_set, err, errlen))
            return CONFIG_ERROR;
        longopts[i] = (struct option){g_opts[i].flag, g_opts[i].has_arg ? required_argument : no_argument,
                                      NULL, (int)g_opts[i].id};
    }
    memset(&longopts[N_OPTS], 0, sizeof(longopts[N_OPTS]));

    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (ch == 'h' || ch == OPT_HELP) {
            print_help();
            return CONFIG_HELP;
        }
        if (ch == '?') {
            fail(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
            return CONFIG_ERROR;
        }
        if (ch == ':') {
            fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            return CONFIG_ERROR;
        }
        const struct opt_desc *d = NULL;
        for (size_t i = 0; i < N_OPTS; i++)
            if ((int)g_opts[i].id == ch)
                d = &g_opts[i];
        if (!d)
            return fail(err, errlen, "unknown option"), CONFIG_ERROR;
        if (d->id == OPT_DOCKER_API && !docker_api_from_flags) {
            /* Flags replace the environment's list, as for --lambda-image. */
            for (size_t i = 0; i < c->n_docker_api; i++)
                free((char *)c->docker_api[i]);
            c->n_docker_api = 0;
            c->docker_api[0] = NULL;
            docker_api_from_flags = true;
        }
        if (d->id == OPT_IMAGE && !images_from_flags) {
            /* Flags replace the environment's list rather than extending it. */
            for (size_t i = 0; i < c->n_images; i++)
                free((char *)c->images[i]);
            c->n_images = 0;
            c->images[0] = NULL;
            images_from_flags = true;
        }
        char name[64];
        snprintf(name, sizeof(name), "--%s", d->flag);
        if (config_set(c, d->id, name, optarg ? optarg : "1", false, &max_set, err, errlen))
            return CONFIG_ERROR;
    }
    if (optind < argc) {
        fail(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    if (!max_set)
        c->max_containers = c->executor == POOL_EXEC_DOCKER ? 10 : 32;
    if (!c->data_dir && default_data_dir(c, err, errlen))
        return CONFIG_ERROR;
    g_current = c;
    return CONFIG_OK;
}

const char *config_executor_name(enum pool_executor_kind kind)
{
    switch (kind) {
    case POOL_EXEC_DOCKER:
        return "docker";
    case POOL_EXEC_AUTO:
        return "auto";
    default:
        return "subprocess";
    }
}

void config_free(struct lambdad_config *c)
{
    free(c->host);
    free(c->data_dir);
    free(c->network);
    free(c->docker_host);
    free(c->bootstrap_dir);
    for (size_t i = 0; i < c->n_images; i++)
        free((char *)c->images[i]);
    for (size_t i = 0; i < c->n_docker_api; i++)
        free((char *)c->docker_api[i]);
    free(c->docker_api_prefix);
    if (g_current == c)
        g_current = NULL;
    memset(c, 0, sizeof(*c));
}
