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
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "pool/pool.h"
#include "runtime/codestore.h"
#include "runtime/fsutil.h"
#include "server/registry.h"

#ifndef LAMBDAD_VERSION
#define LAMBDAD_VERSION "0"
#endif

static struct codestore *g_cs;
static const char *g_executor = "subprocess";
static struct timespec g_started;
static unsigned char g_code_key[32]; /* signs code URLs (admin_code_location) */

void admin_init(struct codestore *cs, const char *executor_name)
{
    g_cs = cs;
    if (RAND_bytes(g_code_key, (int)sizeof(g_code_key)) != 1) {
        /* Without a key nobody can guess, code URLs could be forged. */
        fprintf(stderr, "lambdad: no random source for the code URL key\n");
        abort();
    }
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

/* Whether key "<region>/<account>/<name>" belongs to account. */
static bool key_in_account(const char *key, const char *account)
{
    const char *slash = key ? strchr(key, '/') : NULL;
    return slash && !strncmp(slash + 1, account, 12) && slash[13] == '/';
}

void admin_envs(struct http_req *req)
{
    /* The caller's account's environments only. */
    json_t *envs = pool_envs_json(), *e;
    json_t *mine = json_array();
    size_t i;
    json_array_foreach(envs, i, e) {
        if (key_in_account(json_string_value(json_object_get(e, "function_key")), req->account))
            json_array_append(mine, e);
    }
    json_decref(envs);
    http_send_jsont(req, 200, mine);
}

/* hex(HMAC-SHA256(key, "<code hex>\n<expires>")) into out[65]. */
static void code_signature(const char *code_hex, long long expires, char out[65])
{
    char msg[128];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n = snprintf(msg, sizeof(msg), "%s\n%lld", code_hex, expires);
    if (!HMAC(EVP_sha256(), g_code_key, sizeof(g_code_key), (const unsigned char *)msg, (size_t)n, mac, &maclen))
        maclen = 0;
    for (unsigned int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", i < maclen ? mac[i] : 0);
    out[64] = 0;
}

void admin_code_location(const struct http_req *req, const char *code_hex, char *out, size_t outlen)
{
    const char *host = http_header(req, "Host");
    char sig[65];
    long long expires = (long long)time(NULL) + ADMIN_CODE_URL_TTL_S;
    code_signature(code_hex ? code_hex : "", expires, sig);
    snprintf(out, outlen, "http://%s/_lambdad/code/%s.zip?expires=%lld&signature=%s", host ? host : "127.0.0.1",
             code_hex ? code_hex : "", expires, sig);
}

/* Whether the request carries a valid, unexpired signature for code_hex.
 * Fills err otherwise. */
static bool code_url_valid(struct http_req *req, const char *code_hex, struct api_error *err)
{
    char exp_s[32], sig[80], want[65];
    char *end;
    int ne = http_query(req, "expires", exp_s, sizeof(exp_s));
    int ns = http_query(req, "signature", sig, sizeof(sig));
    if (ne <= 0 || ns != 64) {
        api_fail(err, &AWS_ACCESS_DENIED, "Code URLs are signed: use the Location that GetFunction or "
                                          "GetLayerVersion returned.");
        return false;
    }
    long long expires = strtoll(exp_s, &end, 10);
    code_signature(code_hex, expires, want);
    if (*end || CRYPTO_memcmp(want, sig, 64) != 0) {
        api_fail(err, &AWS_ACCESS_DENIED, "The request signature does not match.");
        return false;
    }
    if (expires < (long long)time(NULL)) {
        api_fail(err, &AWS_ACCESS_DENIED, "Request has expired");
        return false;
    }
    return true;
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
    struct api_error err;
    if (!code_url_valid(req, hex, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    char *path = codestore_zip_path(g_cs, hex);
    int fd = path ? FS_RETRY(open(path, O_RDONLY | O_CLOEXEC)) : -1;
    free(path);
    struct stat st;
    if (fd < 0 || FS_RETRY(fstat(fd, &st))) {
        if (fd >= 0)
            close(fd);
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
        return;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
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
