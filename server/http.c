/* http: civetweb setup, routing table, AWS response/error encoding (see
 * http.h for the design). */
#include "server/http.h"

#include <civetweb.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <urcu.h>
#include <openssl/evp.h>

#include "runtime/clock.h"
#include "runtime/log.h"
#include "server/admin.h"
#include "server/connguard.h"
#include "server/api_capacity.h"
#include "server/api_csc.h"
#include "server/api_durable.h"
#include "server/api_esm.h"
#include "server/api_eventinvoke.h"
#include "server/api_functions.h"
#include "server/api_invoke.h"
#include "server/api_layers.h"
#include "server/api_policy.h"
#include "server/api_provisioned.h"
#include "server/api_urls.h"
#include "server/api_versions.h"
#include "server/services.h"

/* The most of an unread request body drained after the answer (bytes), so
 * the client reads the answer; past it the connection is closed instead. */
#define HTTP_DRAIN_CAP (1ll << 20)
#define HTTP_DRAIN_CAP_TOO_LARGE (256ll << 20)

/* civetweb sizing (see http_start). */
#define HTTP_REQUEST_TIMEOUT_MS "10000"
#define HTTP_LISTEN_BACKLOG "4096"
#define HTTP_CONNECTION_QUEUE "1024"

#define CAP_CODE HTTP_BODY_CAP_CODE
#define CAP_INV HTTP_BODY_CAP_INVOKE
#define CAP_DEF HTTP_BODY_CAP_DEFAULT
#define FN "/2015-03-31/functions/{}"

/* The hot routes come first: matching is a linear scan. */
static const struct http_route g_routes[] = {
    {"POST", FN "/invocations", "Invoke", api_invoke, CAP_INV},
    {"POST", "/_lambdad/noop", "Noop", admin_noop, CAP_INV},
    {"POST", "/2014-11-13/functions/{}/invoke-async", "InvokeAsync", api_invoke_async, CAP_INV},
    {"GET", FN, "GetFunction", api_get_function, CAP_DEF},
    {"GET", FN "/configuration", "GetFunctionConfiguration", api_get_function_configuration, CAP_DEF},
    {"GET", "/2015-03-31/functions", "ListFunctions", api_list_functions, CAP_DEF},
    {"POST", "/2015-03-31/functions", "CreateFunction", api_create_function, CAP_CODE},
    {"PUT", FN "/code", "UpdateFunctionCode", api_update_function_code, CAP_CODE},
    {"PUT", FN "/configuration", "UpdateFunctionConfiguration", api_update_function_configuration, CAP_DEF},
    {"DELETE", FN, "DeleteFunction", api_delete_function, CAP_DEF},
    {"POST", "/2017-03-31/tags/{}", "TagResource", api_tag_resource, CAP_DEF},
    {"DELETE", "/2017-03-31/tags/{}", "UntagResource", api_untag_resource, CAP_DEF},
    {"GET", "/2017-03-31/tags/{}", "ListTags", api_list_tags, CAP_DEF},
    {"PUT", "/2017-10-31/functions/{}/concurrency", "PutFunctionConcurrency", api_put_function_concurrency, CAP_DEF},
    {"GET", "/2019-09-30/functions/{}/concurrency", "GetFunctionConcurrency", api_get_function_concurrency, CAP_DEF},
    {"DELETE", "/2017-10-31/functions/{}/concurrency", "DeleteFunctionConcurrency", api_delete_function_concurrency, CAP_DEF},
    {"GET", "/2016-08-19/account-settings", "GetAccountSettings", api_get_account_settings, CAP_DEF},
    {"POST", "/2021-11-15/functions/{}/response-streaming-invocations", "InvokeWithResponseStream", api_invoke_stream, CAP_INV},
    {"POST", FN "/versions", "PublishVersion", api_publish_version, CAP_DEF},
    {"GET", FN "/versions", "ListVersionsByFunction", api_list_versions, CAP_DEF},
    {"POST", FN "/aliases", "CreateAlias", api_create_alias, CAP_DEF},
    {"GET", FN "/aliases", "ListAliases", api_list_aliases, CAP_DEF},
    {"GET", FN "/aliases/{}", "GetAlias", api_get_alias, CAP_DEF},
    {"PUT", FN "/aliases/{}", "UpdateAlias", api_update_alias, CAP_DEF},
    {"DELETE", FN "/aliases/{}", "DeleteAlias", api_delete_alias, CAP_DEF},
    {"POST", FN "/policy", "AddPermission", api_add_permission, CAP_DEF},
    {"GET", FN "/policy", "GetPolicy", api_get_policy, CAP_DEF},
    {"DELETE", FN "/policy/{}", "RemovePermission", api_remove_permission, CAP_DEF},
    {"POST", "/2018-10-31/layers/{}/versions", "PublishLayerVersion", api_publish_layer_version, CAP_CODE},
    {"GET", "/2018-10-31/layers", "ListLayers", api_list_layers, CAP_DEF}, /* + GetLayerVersionByArn */
    {"GET", "/2018-10-31/layers/{}/versions", "ListLayerVersions", api_list_layer_versions, CAP_DEF},
    {"GET", "/2018-10-31/layers/{}/versions/{}", "GetLayerVersion", api_get_layer_version, CAP_DEF},
    {"DELETE", "/2018-10-31/layers/{}/versions/{}", "DeleteLayerVersion", api_delete_layer_version, CAP_DEF},
    {"POST", "/2021-10-31/functions/{}/url", "CreateFunctionUrlConfig", api_create_url_config, CAP_DEF},
    {"GET", "/2021-10-31/functions/{}/url", "GetFunctionUrlConfig", api_get_url_config, CAP_DEF},
    {"PUT", "/2021-10-31/functions/{}/url", "UpdateFunctionUrlConfig", api_update_url_config, CAP_DEF},
    {"DELETE", "/2021-10-31/functions/{}/url", "DeleteFunctionUrlConfig", api_delete_url_config, CAP_DEF},
    {"GET", "/2021-10-31/functions/{}/urls", "ListFunctionUrlConfigs", api_list_url_configs, CAP_DEF},
    {"GET", "/2015-03-31/event-source-mappings", "ListEventSourceMappings", api_list_esms, CAP_DEF},
    {"POST", "/2015-03-31/event-source-mappings", "CreateEventSourceMapping", api_create_esm, CAP_DEF},
    {"GET", "/2015-03-31/event-source-mappings/{}", "GetEventSourceMapping", api_get_esm, CAP_DEF},
    {"PUT", "/2015-03-31/event-source-mappings/{}", "UpdateEventSourceMapping", api_update_esm, CAP_DEF},
    {"DELETE", "/2015-03-31/event-source-mappings/{}", "DeleteEventSourceMapping", api_delete_esm, CAP_DEF},
    {"GET", "/2019-09-25/functions/{}/event-invoke-config", "GetFunctionEventInvokeConfig", api_get_event_invoke_config, CAP_DEF},
    {"PUT", "/2019-09-25/functions/{}/event-invoke-config", "PutFunctionEventInvokeConfig", api_put_event_invoke_config, CAP_DEF},
    {"POST", "/2019-09-25/functions/{}/event-invoke-config", "UpdateFunctionEventInvokeConfig", api_update_event_invoke_config, CAP_DEF},
    {"DELETE", "/2019-09-25/functions/{}/event-invoke-config", "DeleteFunctionEventInvokeConfig", api_delete_event_invoke_config, CAP_DEF},
    {"POST", "/2018-10-31/layers/{}/versions/{}/policy", "AddLayerVersionPermission", api_add_layer_permission, CAP_DEF},
    {"GET", "/2018-10-31/layers/{}/versions/{}/policy", "GetLayerVersionPolicy", api_get_layer_policy, CAP_DEF},
    {"DELETE", "/2018-10-31/layers/{}/versions/{}/policy/{}", "RemoveLayerVersionPermission", api_remove_layer_permission, CAP_DEF},
    {"GET", "/2019-09-25/functions/{}/event-invoke-config/list", "ListFunctionEventInvokeConfigs", api_list_event_invoke_configs, CAP_DEF},
    {"PUT", "/2019-09-30/functions/{}/provisioned-concurrency", "PutProvisionedConcurrencyConfig", api_put_provisioned, CAP_DEF},
    {"GET", "/2019-09-30/functions/{}/provisioned-concurrency", "GetProvisionedConcurrencyConfig", api_get_or_list_provisioned, CAP_DEF},
    {"DELETE", "/2019-09-30/functions/{}/provisioned-concurrency", "DeleteProvisionedConcurrencyConfig", api_delete_provisioned, CAP_DEF},
    {"GET", "/2024-08-31/functions/{}/recursion-config", "GetFunctionRecursionConfig", api_get_recursion_config, CAP_DEF},
    {"PUT", "/2024-08-31/functions/{}/recursion-config", "PutFunctionRecursionConfig", api_put_recursion_config, CAP_DEF},
    {"GET", "/2021-07-20/functions/{}/runtime-management-config", "GetRuntimeManagementConfig", api_get_runtime_management, CAP_DEF},
    {"PUT", "/2021-07-20/functions/{}/runtime-management-config", "PutRuntimeManagementConfig", api_put_runtime_management, CAP_DEF},
    {"POST", "/2020-04-22/code-signing-configs", "CreateCodeSigningConfig", api_create_csc, CAP_DEF},
    {"GET", "/2020-04-22/code-signing-configs", "ListCodeSigningConfigs", api_list_cscs, CAP_DEF},
    {"GET", "/2020-04-22/code-signing-configs/{}", "GetCodeSigningConfig", api_get_csc, CAP_DEF},
    {"PUT", "/2020-04-22/code-signing-configs/{}", "UpdateCodeSigningConfig", api_update_csc, CAP_DEF},
    {"DELETE", "/2020-04-22/code-signing-configs/{}", "DeleteCodeSigningConfig", api_delete_csc, CAP_DEF},
    {"GET", "/2020-04-22/code-signing-configs/{}/functions", "ListFunctionsByCodeSigningConfig", api_list_functions_by_csc, CAP_DEF},
    {"PUT", "/2020-06-30/functions/{}/code-signing-config", "PutFunctionCodeSigningConfig", api_put_function_csc, CAP_DEF},
    {"GET", "/2020-06-30/functions/{}/code-signing-config", "GetFunctionCodeSigningConfig", api_get_function_csc, CAP_DEF},
    {"DELETE", "/2020-06-30/functions/{}/code-signing-config", "DeleteFunctionCodeSigningConfig", api_delete_function_csc, CAP_DEF},
    {"GET", "/2025-11-30/functions/{}/function-scaling-config", "GetFunctionScalingConfig", api_get_function_scaling_config, CAP_DEF},
    {"PUT", "/2025-11-30/functions/{}/function-scaling-config", "PutFunctionScalingConfig", api_put_function_scaling_config, CAP_DEF},
    {"POST", "/2025-11-30/capacity-providers", "CreateCapacityProvider", api_create_capacity_provider, CAP_DEF},
    {"GET", "/2025-11-30/capacity-providers", "ListCapacityProviders", api_list_capacity_providers, CAP_DEF},
    {"GET", "/2025-11-30/capacity-providers/{}", "GetCapacityProvider", api_get_capacity_provider, CAP_DEF},
    {"PUT", "/2025-11-30/capacity-providers/{}", "UpdateCapacityProvider", api_update_capacity_provider, CAP_DEF},
    {"DELETE", "/2025-11-30/capacity-providers/{}", "DeleteCapacityProvider", api_delete_capacity_provider, CAP_DEF},
    {"GET", "/2025-11-30/capacity-providers/{}/function-versions", "ListFunctionVersionsByCapacityProvider", api_list_versions_by_capacity_provider, CAP_DEF},
    {"GET", "/2025-12-01/functions/{}/durable-executions", "ListDurableExecutionsByFunction", api_list_durable_executions, CAP_DEF},
    {"GET", "/2025-12-01/durable-executions/{}", "GetDurableExecution", api_get_durable_execution, CAP_DEF},
    {"GET", "/2025-12-01/durable-executions/{}/history", "GetDurableExecutionHistory", api_get_durable_execution_history, CAP_DEF},
    {"GET", "/2025-12-01/durable-executions/{}/state", "GetDurableExecutionState", api_get_durable_execution_state, CAP_DEF},
    {"POST", "/2025-12-01/durable-executions/{}/checkpoint", "CheckpointDurableExecution", api_checkpoint_durable_execution, CAP_DEF},
    {"POST", "/2025-12-01/durable-executions/{}/stop", "StopDurableExecution", api_stop_durable_execution, CAP_DEF},
    {"DELETE", "/2025-12-01/durable-executions/{}", "DeleteDurableExecution", api_delete_durable_execution, CAP_DEF},
    {"POST", "/2025-12-01/durable-executions/{}/pause", "PauseDurableExecution", api_pause_durable_execution, CAP_DEF},
    {"POST", "/2025-12-01/durable-executions/{}/resume", "ResumeDurableExecution", api_resume_durable_execution, CAP_DEF},
    {"GET", "/2026-07-09/resource-policy/{}", "GetResourcePolicy", api_get_resource_policy, CAP_DEF},
    {"PUT", "/2026-07-09/resource-policy/{}", "PutResourcePolicy", api_put_resource_policy, CAP_DEF},
    {"DELETE", "/2026-07-09/resource-policy/{}", "DeleteResourcePolicy", api_delete_resource_policy, CAP_DEF},
    {"POST", "/2025-12-01/durable-execution-callbacks/{}/fail", "SendDurableExecutionCallbackFailure", api_durable_callback_failure, CAP_DEF},
    {"POST", "/2025-12-01/durable-execution-callbacks/{}/heartbeat", "SendDurableExecutionCallbackHeartbeat", api_durable_callback_heartbeat, CAP_DEF},
    {"POST", "/2025-12-01/durable-execution-callbacks/{}/succeed", "SendDurableExecutionCallbackSuccess", api_durable_callback_success, API_DURABLE_RESULT_MAX},
    {"GET", "/_lambdad/health", "Health", admin_health, CAP_DEF},
    {"GET", "/_lambdad/environments", "ListEnvironments", admin_envs, CAP_DEF},
    {"DELETE", "/_lambdad/environments/{}", "EvictEnvironments", admin_evict, CAP_DEF},
    {"GET", "/_lambdad/code/{}", "GetCode", admin_code, CAP_DEF},
};
#define N_ROUTES (sizeof(g_routes) / sizeof(g_routes[0]))
#define MAX_SEGS 8

struct seg {
    const char *s; /* NULL: capture */
    size_t len;
};

struct compiled_route {
    int nseg;
    struct seg segs[MAX_SEGS];
};

static struct compiled_route g_compiled[N_ROUTES];
static pthread_once_t g_compile_once = PTHREAD_ONCE_INIT;

/* Splits "/a/b/c" into segments; a single trailing '/' is ignored. Returns
 * the count, or -1 for too many or empty segments. */
static int split_path(const char *path, size_t len, struct seg *out)
{
    int n = 0;
    if (len == 0 || path[0] != '/')
        return -1;
    if (len > 1 && path[len - 1] == '/')
        len--;
    size_t i = 1;
    if (len == 1)
        return 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (j == i || n == MAX_SEGS)
            return -1;
        out[n].s = path + i;
        out[n].len = j - i;
        n++;
        i = j + 1;
    }
    return n;
}

static void compile_routes(void)
{
    for (size_t r = 0; r < N_ROUTES; r++) {
        struct compiled_route *c = &g_compiled[r];
        c->nseg = split_path(g_routes[r].pattern, strlen(g_routes[r].pattern), c->segs);
        if (c->nseg < 0) {
            fprintf(stderr, "lambdad: bad route pattern %s\n", g_routes[r].pattern);
            abort();
        }
        for (int i = 0; i < c->nseg; i++)
            if (c->segs[i].len == 2 && !memcmp(c->segs[i].s, "{}", 2))
                c->segs[i].s = NULL;
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int http_pct_decode(const char *src, size_t len, char *dst, size_t dstlen, bool form)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(src[i + 1])) < 0 || (lo = hexval(src[i + 2])) < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        if (o + 1 >= dstlen)
            return -1;
        dst[o++] = c;
    }
    if (o >= dstlen)
        return -1;
    dst[o] = 0;
    return (int)o;
}

const struct http_route *http_route_match(struct http_req *req, const char *method,
                                          const char *path, bool *bad_escape)
{
    struct seg segs[MAX_SEGS];
    pthread_once(&g_compile_once, compile_routes);
    *bad_escape = false;
    int n = split_path(path, strlen(path), segs);
    if (n < 0)
        return NULL;
    for (size_t r = 0; r < N_ROUTES; r++) {
        const struct compiled_route *c = &g_compiled[r];
        if (c->nseg != n || strcmp(g_routes[r].method, method) != 0)
            continue;
        int i;
        for (i = 0; i < n; i++)
            if (c->segs[i].s && (c->segs[i].len != segs[i].len ||
                                 memcmp(c->segs[i].s, segs[i].s, segs[i].len) != 0))
                break;
        if (i < n)
            continue;
        /* Matched: decode the captured segments. */
        size_t used = 0;
        req->n_params = 0;
        for (i = 0; i < n; i++) {
            if (c->segs[i].s)
                continue;
            if (req->n_params == HTTP_MAX_PARAMS)
                return NULL;
            int len = http_pct_decode(segs[i].s, segs[i].len, req->pbuf + used,
                                      sizeof(req->pbuf) - used, false);
            if (len < 0) {
                *bad_escape = true;
                return NULL;
            }
            req->params[req->n_params++] = req->pbuf + used;
            used += (size_t)len + 1;
        }
        req->op = g_routes[r].op;
        req->body_cap = g_routes[r].body_cap;
        return &g_routes[r];
    }
    return NULL;
}

void http_parse_identity(struct http_req *req, const char *auth, const char *default_account)
{
    memcpy(req->region, "us-east-1", 10);
    memcpy(req->account, default_account, 13);
    const char *cred = auth ? strstr(auth, "Credential=") : NULL;
    if (!cred)
        return;
    const char *akid = cred + 11;
    const char *slash = strchr(akid, '/');
    if (!slash)
        return;
    if (slash - akid == 12 && strspn(akid, "0123456789") >= 12) {
        memcpy(req->account, akid, 12);
        req->account[12] = 0;
    }
    const char *date_end = strchr(slash + 1, '/');
    if (!date_end)
        return;
    const char *region = date_end + 1;
    size_t len = strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-");
    if (len == 0 || len >= sizeof(req->region) || region[len] != '/')
        return;
    memcpy(req->region, region, len);
    req->region[len] = 0;
}

/* --- request ids ------------------------------------------------------- */

static _Thread_local uint64_t t_rng[2];

static uint64_t rng_next(void)
{
    /* xorshift128+, seeded per thread from getrandom. */
    if (!t_rng[0] && !t_rng[1]) {
        if (getrandom(t_rng, sizeof(t_rng), 0) != sizeof(t_rng)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            t_rng[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)&ts << 17);
            t_rng[1] = (uint64_t)ts.tv_sec * 0x9E3779B97F4A7C15ull;
        }
        t_rng[0] |= 1;
    }
    uint64_t s1 = t_rng[0];
    const uint64_t s0 = t_rng[1];
    t_rng[0] = s0;
    s1 ^= s1 << 23;
    t_rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return t_rng[1] + s0;
}

void http_uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(), b = rng_next();
    unsigned char bytes[16];
    memcpy(bytes, &a, 8);
    memcpy(bytes + 8, &b, 8);
    bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x40);
    bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80);
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[bytes[i] >> 4];
        out[o++] = hex[bytes[i] & 15];
    }
    out[o] = 0;
}

/* --- request accessors ------------------------------------------------- */

const char *http_param(const struct http_req *req, int i)
{
    return i >= 0 && i < req->n_params ? req->params[i] : NULL;
}

const char *http_header(const struct http_req *req, const char *name)
{
    return mg_get_header(req->conn, name);
}

/* Walks "a=1&b=2": calls fn for each value of name. */
static int query_walk(const char *qs, const char *name,
                      int (*fn)(void *ud, const char *raw, size_t len), void *ud)
{
    size_t nlen = strlen(name);
    for (const char *p = qs; p && *p;) {
        size_t plen = strcspn(p, "&");
        if (plen > nlen && p[nlen] == '=' && !memcmp(p, name, nlen)) {
            int rc = fn(ud, p + nlen + 1, plen - nlen - 1);
            if (rc)
                return rc;
        } else if (plen == nlen && !memcmp(p, name, nlen)) {
            int rc = fn(ud, p + nlen, 0);
            if (rc)
                return rc;
        }
        p += plen + (p[plen] == '&');
    }
    return 0;
}

struct query_one {
    char *buf;
    size_t buflen;
    int result;
};

static int query_one_cb(void *ud, const char *raw, size_t len)
{
    struct query_one *q = ud;
    int n = http_pct_decode(raw, len, q->buf, q->buflen, true);
    q->result = n < 0 ? -2 : n;
    return 1;
}

int http_query(const struct http_req *req, const char *name, char *buf, size_t buflen)
{
    struct query_one q = {buf, buflen, -1};
    if (!req->ri || !req->ri->query_string)
        return -1;
    query_walk(req->ri->query_string, name, query_one_cb, &q);
    return q.result;
}

struct query_each {
    int (*fn)(void *ud, const char *value);
    void *ud;
};

static int query_each_cb(void *ud, const char *raw, size_t len)
{
    struct query_each *q = ud;
    char buf[1024];
    if (http_pct_decode(raw, len, buf, sizeof(buf), true) < 0)
        return -2;
    return q->fn(q->ud, buf);
}

int http_query_each(const struct http_req *req, const char *name,
                    int (*fn)(void *ud, const char *value), void *ud)
{
    struct query_each q = {fn, ud};
    if (!req->ri || !req->ri->query_string)
        return 0;
    return query_walk(req->ri->query_string, name, query_each_cb, &q);
}

/* Linear scan, strings skipped (see http.h). */
bool http_json_too_deep(const char *s, size_t len, int max)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                return true;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return false;
}

/* --- responses --------------------------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static const char *connection_header(const struct http_req *req)
{
    const char *c = req->conn ? mg_get_header(req->conn, "Connection") : NULL;
    if (req->close_after || (c && strcasestr(c, "close")))
        return "Connection: close\r\n";
    if (req->ri && req->ri->http_version && !strcmp(req->ri->http_version, "1.0"))
        return c && strcasestr(c, "keep-alive") ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    return "";
}

void http_send(struct http_req *req, int status, const char *content_type,
               const char *extra_headers, const void *body, size_t len)
{
    char stackbuf[8192];
    char *buf = stackbuf;
    size_t extra = extra_headers ? strlen(extra_headers) : 0;
    size_t cap = sizeof(stackbuf);
    if (req->status) {
        LOG_WARN("second response for %s %s ignored", req->method, req->op ? req->op : "?");
        return;
    }
    req->status = status;
    /* A HEAD response announces the length a GET would have but carries no
     * body: a client reads none, and bytes after the headers would be taken
     * for the next response on the connection. */
    const void *payload = body;
    size_t announced = len;
    if (req->method && !strcmp(req->method, "HEAD"))
        len = 0;
    if (extra + len + 512 > cap) {
        cap = extra + 512 + (len <= (1u << 20) ? len : 0);
        buf = malloc(cap);
        if (!buf)
            return;
    }
    int h = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nx-amzn-RequestId: %s\r\n"
                     "%s%s%s%s%s\r\n",
                     status, status_text(status), announced, req->request_id,
                     content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "", extra_headers ? extra_headers : "",
                     connection_header(req));
    if (h < 0 || (size_t)h >= cap)
        goto out;
    if ((size_t)h + len <= cap) {
        if (len)
            memcpy(buf + h, payload, len);
        mg_write(req->conn, buf, (size_t)h + len);
    } else {
        mg_write(req->conn, buf, (size_t)h);
        mg_write(req->conn, payload, len);
    }
out:
    if (buf != stackbuf)
        free(buf);
}

int http_begin_stream(struct http_req *req, int status, const char *content_type,
                      const char *extra_headers)
{
    if (req->status) {
        LOG_WARN("second response for %s %s ignored", req->method, req->op ? req->op : "?");
        return -1;
    }
    req->status = status;
    req->chunked = !(req->ri && req->ri->http_version && !strcmp(req->ri->http_version, "1.0"));
    if (!req->chunked) {
        mg_disable_keep_alive(req->conn); /* the end of the body is the end of the connection */
        req->close_after = true;
    }
    size_t extra = extra_headers ? strlen(extra_headers) : 0;
    size_t cap = extra + 512 + (content_type ? strlen(content_type) : 0);
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    int h = snprintf(buf, cap, "HTTP/1.1 %d %s\r\n%sx-amzn-RequestId: %s\r\n%s%s%s%s%s\r\n", status,
                     status_text(status), req->chunked ? "Transfer-Encoding: chunked\r\n" : "",
                     req->request_id, content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "", extra_headers ? extra_headers : "", connection_header(req));
    int rc = h > 0 && (size_t)h < cap && mg_write(req->conn, buf, (size_t)h) == h ? 0 : -1;
    free(buf);
    return rc;
}

int http_stream_write(struct http_req *req, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (!req->chunked)
        return mg_write(req->conn, data, len) == (int)len ? 0 : -1;
    char small[4096 + 32];
    int h = snprintf(small, 32, "%zx\r\n", len);
    if (len <= sizeof(small) - 32) {
        /* One write (one segment) for the common small piece. */
        memcpy(small + h, data, len);
        memcpy(small + h + len, "\r\n", 2);
        size_t n = (size_t)h + len + 2;
        return mg_write(req->conn, small, n) == (int)n ? 0 : -1;
    }
    if (mg_write(req->conn, small, (size_t)h) != h || mg_write(req->conn, data, len) != (int)len ||
        mg_write(req->conn, "\r\n", 2) != 2)
        return -1;
    return 0;
}

int http_end_stream(struct http_req *req)
{
    if (!req->chunked)
        return 0;
    return mg_write(req->conn, "0\r\n\r\n", 5) == 5 ? 0 : -1;
}

void http_send_json(struct http_req *req, int status, const char *json, size_t len)
{
    http_send(req, status, "application/json", NULL, json, len);
}

void http_send_jsont(struct http_req *req, int status, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
        return;
    }
    http_send_json(req, status, text, strlen(text));
    free(text);
}

void http_send_empty(struct http_req *req, int status)
{
    http_send(req, status, NULL, NULL, "", 0);
}

void http_send_error_ex(struct http_req *req, const struct aws_error *e, const char *extra_headers,
                        const char *extra_members, const char *msg)
{
    char headers[1024];
    json_t *m = json_string(msg ? msg : "");
    if (!m)
        m = json_string("(message was not valid UTF-8)");
    char *mtext = json_dumps(m, JSON_ENCODE_ANY);
    json_decref(m);
    size_t blen = (mtext ? strlen(mtext) : 2) + (extra_members ? strlen(extra_members) : 0) + 64;
    char *body = malloc(blen);
    if (!body) {
        free(mtext);
        return;
    }
    int n = snprintf(body, blen, "{%s%s%s\"%s\":%s%s%s}", e->typed ? "\"Type\":\"" : "",
                     e->typed ? (e->status >= 500 ? "Service" : "User") : "", e->typed ? "\"," : "",
                     e->capital_msg ? "Message" : "message", mtext ? mtext : "\"\"",
                     extra_members ? "," : "", extra_members ? extra_members : "");
    snprintf(headers, sizeof(headers), "x-amzn-ErrorType: %s\r\n%s", e->code,
             extra_headers ? extra_headers : "");
    http_send(req, e->status, "application/json", headers, body, n > 0 ? (size_t)n : 0);
    free(body);
    free(mtext);
}

void http_send_error(struct http_req *req, const struct aws_error *e, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    http_send_error_ex(req, e, NULL, NULL, msg);
}

void http_send_api_error(struct http_req *req, const struct api_error *err)
{
    http_send_error_ex(req, err->type ? err->type : &AWS_SERVICE, NULL, NULL, err->msg);
}

/* --- bodies ------------------------------------------------------------ */

static uint64_t now_ms(void)
{
    return (uint64_t)clock_mono_ns() / 1000000u;
}

/* Reads and drops what is left of the request body, at most max_bytes and
 * for at most max_ms, so the client reads our answer instead of a reset. A
 * body that is longer (or slower) than that is not waited for: the
 * connection is closed after the response, which frees the worker. */
static void drain_body(struct http_req *req, long long max_bytes, unsigned max_ms)
{
    char buf[16384];
    long long cl = req->ri ? req->ri->content_length : -1;
    if (cl > max_bytes) {
        mg_disable_keep_alive(req->conn);
        return;
    }
    uint64_t deadline = now_ms() + max_ms;
    long long got = 0;
    int n;
    while ((n = mg_read(req->conn, buf, sizeof(buf))) > 0) {
        got += n;
        if (got > max_bytes || now_ms() > deadline) {
            mg_disable_keep_alive(req->conn);
            return;
        }
    }
    if (n < 0)
        mg_disable_keep_alive(req->conn);
}

static int body_too_large(struct http_req *req)
{
    const char *op = req->op && !strcmp(req->op, "Invoke") ? "InvokeFunction" : req->op;
    long long cl = req->ri ? req->ri->content_length : -1;
    http_send_error(req, &AWS_REQUEST_ENTITY_TOO_LARGE, MSG_BODY_TOO_LARGE, req->body_cap,
                    op ? op : "?");
    /* Drain (without storing) so the client reads the 413 instead of a
     * reset; past 256 MB or 30 s just close the connection. */
    if (cl >= 0 && cl <= HTTP_DRAIN_CAP_TOO_LARGE)
        drain_body(req, HTTP_DRAIN_CAP_TOO_LARGE, 30000);
    else
        mg_disable_keep_alive(req->conn);
    return -EFBIG;
}

int http_read_body(struct http_req *req)
{
    if (req->body_read)
        return 0;
    req->body_read = true;
    long long cl = req->ri ? req->ri->content_length : -1;
    if (cl > (long long)req->body_cap)
        return body_too_large(req);
    size_t cap = cl >= 0 ? (size_t)cl : 65536, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        http_send_error(req, &AWS_SERVICE, "out of memory reading the request body");
        return -ENOMEM;
    }
    for (;;) {
        if (cl >= 0 && len == (size_t)cl)
            break;
        if (len == cap) {
            if (cap >= req->body_cap + 1) {
                free(buf);
                return body_too_large(req);
            }
            size_t ncap = cap * 2 > req->body_cap + 1 ? req->body_cap + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                http_send_error(req, &AWS_SERVICE, "out of memory reading the request body");
                return -ENOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        /* At most 1 MB per call: civetweb's request timeout bounds each
         * call, so it then means "no progress for that long". */
        size_t want = cap - len < (1u << 20) ? cap - len : (1u << 20);
        int n = mg_read(req->conn, buf + len, want);
        if (n < 0 || (n == 0 && cl >= 0)) {
            free(buf);
            http_send_error(req, &AWS_INVALID_REQUEST_CONTENT, "incomplete request body");
            return -EIO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > req->body_cap) {
        free(buf);
        return body_too_large(req);
    }
    buf[len] = 0;
    req->body = buf;
    req->body_len = len;
    return 0;
}

/* --- civetweb glue ----------------------------------------------------- */

static struct mg_context *g_ctx;
static char g_account[13] = "000000000000";
static atomic_int g_thread_seq;
static atomic_int g_inflight; /* requests inside on_request */
static atomic_int g_draining; /* shutting down: refuse new requests */

static const struct aws_error AWS_SHUTTING_DOWN = {"ServiceException", 503, true, true};

void http_drain_begin(void)
{
    atomic_store(&g_draining, 1);
}

bool http_draining(void)
{
    return atomic_load(&g_draining) != 0;
}

int http_inflight(void)
{
    return atomic_load(&g_inflight);
}

static int handle_request(struct mg_connection *conn);

/* Request framing civetweb lets through but a proxy in front of AWS would
 * refuse (RFC 9112 6.3: a message whose length cannot be told for sure is
 * an error, and the connection must be closed): two Content-Length
 * headers, a value that is not just digits, or Content-Length together with
 * Transfer-Encoding. Returns the message, or NULL when the framing is
 * sound. */
static const char *bad_framing(const struct mg_request_info *ri)
{
    int n_cl = 0, n_te = 0;
    for (int i = 0; i < ri->num_headers; i++) {
        const char *name = ri->http_headers[i].name, *value = ri->http_headers[i].value;
        if (!name)
            continue;
        if (!strcasecmp(name, "Content-Length")) {
            n_cl++;
            size_t digits = value ? strspn(value, "0123456789") : 0;
            if (!digits || value[digits + strspn(value + digits, " \t")] != 0)
                return "Invalid Content-Length header";
        } else if (!strcasecmp(name, "Transfer-Encoding")) {
            n_te++;
        }
    }
    if (n_cl > 1)
        return "Multiple Content-Length headers";
    if (n_cl && n_te)
        return "Both Content-Length and Transfer-Encoding headers";
    if (n_te > 1)
        return "Multiple Transfer-Encoding headers";
    return NULL;
}

static bool has_body(struct mg_connection *conn, const struct mg_request_info *ri)
{
    return ri->content_length > 0 || (ri->content_length < 0 && mg_get_header(conn, "Transfer-Encoding"));
}

static int on_request(struct mg_connection *conn)
{
    connguard_request_begin(conn);
    atomic_fetch_add(&g_inflight, 1);
    int rc = handle_request(conn);
    atomic_fetch_sub(&g_inflight, 1);
    return rc;
}

static int handle_request(struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct http_req req;
    req.conn = conn;
    req.ri = ri;
    req.method = ri->request_method;
    req.op = NULL;
    req.body_cap = HTTP_BODY_CAP_DEFAULT;
    req.n_params = 0;
    req.body = NULL;
    req.body_len = 0;
    req.body_read = false;
    req.status = 0;
    req.close_after = false;
    req.chunked = false;
    http_uuid4(req.request_id);
    http_parse_identity(&req, mg_get_header(conn, "Authorization"), g_account);

    bool bad_escape = false;
    const char *path = ri->local_uri_raw ? ri->local_uri_raw : ri->request_uri;
    /* HEAD is GET without the body (http_send leaves it out). */
    const char *match_method = strcmp(req.method, "HEAD") ? req.method : "GET";
    const struct http_route *route = path ? http_route_match(&req, match_method, path, &bad_escape) : NULL;
    errors_set_operation(route ? route->op : NULL);
    const char *framing = bad_framing(ri);
    if (framing) {
        /* Where this request ends is unknown: answer and close. */
        mg_disable_keep_alive(conn);
        req.close_after = true;
        req.body_read = true;
        http_send_error(&req, &AWS_INVALID_REQUEST_CONTENT, "%s", framing);
    } else if (atomic_load(&g_draining)) {
        /* In-flight requests finish; new ones are told to come back (boto3
         * retries 503 with back-off). */
        mg_disable_keep_alive(conn);
        req.close_after = true;
        http_send_error(&req, &AWS_SHUTTING_DOWN, "lambdad is shutting down");
    } else if (api_url_dispatch(&req)) {
        /* a function URL (api_urls.h): checked first, its Host is its own */
    } else if (services_dispatch(&req)) {
        /* IAM, STS, S3, Logs, ... (services.h) answered it */
    } else if (route) {
        route->handler(&req);
        if (!req.status)
            http_send_error(&req, &AWS_SERVICE, "the %s handler sent no response", route->op);
    } else if (bad_escape) {
        http_send_error(&req, &AWS_VALIDATION, "Invalid percent-encoding in the request path");
    } else {
        http_send_error(&req, &AWS_UNKNOWN_OPERATION, "Unknown operation: %s %s", req.method,
                        path ? path : "");
    }
    errors_set_operation(NULL);
    if (!req.body_read && has_body(conn, ri))
        drain_body(&req, HTTP_DRAIN_CAP, 2000);
    free(req.body);
    return req.status ? req.status : 500;
}

/* civetweb's own errors (malformed requests, oversized headers, ...) get
 * the AWS encoding and a request id too. */
static int on_http_error(struct mg_connection *conn, int status, const char *msg)
{
    struct http_req req;
    memset(&req, 0, offsetof(struct http_req, pbuf));
    req.conn = conn;
    req.ri = mg_get_request_info(conn);
    req.method = req.ri && req.ri->request_method ? req.ri->request_method : "?";
    http_uuid4(req.request_id);
    struct aws_error e = {status >= 500 ? "ServiceException" : "InvalidRequestContentException", status,
                          true, status >= 500};
    if (status == 404)
        e = AWS_UNKNOWN_OPERATION;
    else if (status == 413)
        e = AWS_REQUEST_ENTITY_TOO_LARGE;
    if (status < 400 || status > 599)
        return 1; /* not an error: let civetweb answer */
    http_send_error(&req, &e, "%s", msg && *msg ? msg : "bad request");
    return 0;
}

static void *on_thread_start(const struct mg_context *ctx, int thread_type)
{
    (void)ctx;
    char name[16];
    int n = atomic_fetch_add(&g_thread_seq, 1);
    snprintf(name, sizeof(name), thread_type == 1 ? "http-%d" : "http-main-%d", n);
    pthread_setname_np(pthread_self(), name);
    rcu_register_thread();
    if (thread_type == 1)
        connguard_thread_init();
    return NULL;
}

static int on_init_connection(const struct mg_connection *conn, void **conn_data)
{
    *conn_data = NULL;
    connguard_conn_open(conn);
    return 0;
}

static void on_end_request(const struct mg_connection *conn, int status)
{
    (void)conn;
    (void)status;
    connguard_request_end();
}

static void on_connection_close(const struct mg_connection *conn)
{
    (void)conn;
    connguard_conn_close();
}

static void on_thread_stop(const struct mg_context *ctx, int thread_type, void *user)
{
    (void)ctx;
    (void)thread_type;
    (void)user;
    rcu_unregister_thread();
}

static int on_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    LOG_DEBUG("civetweb: %s", message);
    return 1;
}

/* Every open connection holds a civetweb thread and a descriptor: make sure
 * the descriptor limit is not the smaller bound (the soft limit is often
 * 1024). */
static void raise_fd_limit(int threads)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)threads * 2 + 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl))
        LOG_WARN("cannot raise the open-file limit to %llu: %s", (unsigned long long)want, strerror(errno));
    else if (rl.rlim_cur < want)
        LOG_WARN("open-file limit %llu is below the %llu that %d HTTP threads need",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want, threads);
}

int http_start(const struct http_options *o, const char **err)
{
    static char msg[700];
    char ports[300], threads[16], keepalive_ms[24];
    struct mg_callbacks cb;
    snprintf(ports, sizeof(ports), strchr(o->host, ':') ? "[%s]:%d" : "%s:%d", o->host, o->port);
    snprintf(threads, sizeof(threads), "%d", o->threads);
    snprintf(keepalive_ms, sizeof(keepalive_ms), "%d", o->keepalive_s * 1000);
    if (o->account_id)
        snprintf(g_account, sizeof(g_account), "%s", o->account_id);
    raise_fd_limit(o->threads);
    /* civetweb 1.15 serves each connection on one of num_threads threads
     * (100 KB stacks, all created here) from accept to close, so threads
     * are sized for connections, not for requests. request_timeout_ms
     * bounds reading a request's headers (from the connection's start, or
     * from the previous response on a kept-alive one: keep_alive_timeout_ms)
     * and each body read/response write making no progress; it does not
     * bound our handlers, so an Invoke may wait for its function's full
     * timeout. */
    const char *options[] = {"listening_ports", ports,
                             "num_threads", threads,
                             "listen_backlog", HTTP_LISTEN_BACKLOG,
                             "connection_queue", HTTP_CONNECTION_QUEUE,
                             "enable_keep_alive", o->keepalive_s > 0 ? "yes" : "no",
                             "keep_alive_timeout_ms", keepalive_ms,
                             "request_timeout_ms", HTTP_REQUEST_TIMEOUT_MS,
                             "tcp_nodelay", "1",
                             "decode_url", "no",
                             NULL};
    memset(&cb, 0, sizeof(cb));
    cb.begin_request = on_request;
    cb.init_thread = on_thread_start;
    cb.exit_thread = on_thread_stop;
    cb.log_message = on_log;
    cb.http_error = on_http_error;
    cb.init_connection = on_init_connection;
    cb.end_request = on_end_request;
    cb.connection_close = on_connection_close;
    pthread_once(&g_compile_once, compile_routes);
    int grc = connguard_start(o->threads, o->port);
    if (grc) {
        snprintf(msg, sizeof(msg), "cannot start the connection guard: %s", strerror(-grc));
        *err = msg;
        return -1;
    }
    mg_init_library(0);
    struct mg_init_data init = {.callbacks = &cb, .user_data = NULL, .configuration_options = options};
    struct mg_error_data ed;
    char ebuf[256] = "";
    memset(&ed, 0, sizeof(ed));
    ed.text = ebuf;
    ed.text_buffer_size = sizeof(ebuf);
    g_ctx = mg_start2(&init, &ed);
    if (!g_ctx) {
        snprintf(msg, sizeof(msg), "cannot listen on %s: %s", ports, ebuf[0] ? ebuf : "civetweb failed to start");
        *err = msg;
        mg_exit_library();
        connguard_stop();
        return -1;
    }
    return 0;
}

/* civetweb's master thread notices the stop flag only between polls of the
 * listening socket, which time out after 2 s. A connection to ourselves
 * ends that poll at once, so shutdown does not sit idle for 2 s. */
static void *poke_listener(void *arg)
{
    struct mg_server_port *ports = arg;
    usleep(20000);
    for (int i = 0; i < 4 && ports[i].port; i++) {
        int fd = socket(ports[i].protocol == 3 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ports[i].port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (ports[i].protocol != 3)
            (void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
    }
    return NULL;
}

void http_stop(void)
{
    if (!g_ctx)
        return;
    struct mg_server_port ports[4];
    memset(ports, 0, sizeof(ports));
    mg_get_server_ports(g_ctx, 3, ports);
    pthread_t poker;
    int poked = pthread_create(&poker, NULL, poke_listener, ports) == 0;
    mg_stop(g_ctx);
    if (poked)
        pthread_join(poker, NULL);
    g_ctx = NULL;
    connguard_stop();
    mg_exit_library();
}

int http_base64_decode(const char *in, size_t len, unsigned char **out, size_t *outlen)
{
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    unsigned char *buf = malloc(len / 4 * 3 + 4);
    int n1 = 0, n2 = 0;
    if (!ctx || !buf)
        goto fail;
    EVP_DecodeInit(ctx);
    if (len > INT32_MAX || EVP_DecodeUpdate(ctx, buf, &n1, (const unsigned char *)in, (int)len) < 0 ||
        EVP_DecodeFinal(ctx, buf + n1, &n2) < 0)
        goto fail;
    EVP_ENCODE_CTX_free(ctx);
    buf[n1 + n2] = 0;
    *out = buf;
    *outlen = (size_t)(n1 + n2);
    return 0;
fail:
    EVP_ENCODE_CTX_free(ctx);
    free(buf);
    return -1;
}
