/* docker: Docker Engine API client (see docker.h for the contract).
 *
 * DESIGN: one function, docker_call(), performs every HTTP exchange: it
 * builds a fresh CURL easy handle (unix socket or tcp base URL), applies
 * the connect/overall timeouts, sends an optional body (memory or a file
 * streamed from disk), and delivers the response either into a bounded
 * memory buffer or to a streaming sink (progress lines, multiplexed
 * container output). It maps transport failures and HTTP statuses to
 * negative errnos and composes the one-line error message from the
 * operation's description and the engine's {"message": ...} text.
 * Per-call handles keep the client trivially thread-safe; connecting to a
 * local unix socket costs tens of microseconds, negligible next to
 * container start-up. */
#include "runtime/docker.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DOCKER_MAX_RESPONSE (16u << 20) /* buffered bodies (inspect, lists) */

struct docker {
    char *host;      /* as given: unix:///path or tcp://h:p */
    char *sock_path; /* unix socket path, NULL for tcp */
    char *base_url;  /* "http://localhost/v1.41" or "http://h:p/v1.41" */
    long timeout_ms; /* ordinary calls; set before the handle is shared */
};

/* ---- small helpers ---------------------------------------------------- */

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, DOCKER_ERR_MAX, fmt, ap);
    va_end(ap);
}

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_append(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void docker_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* Escapes s for a query value (everything but unreserved characters). */
static char *qesc(const char *s)
{
    return curl_easy_escape(NULL, s, 0);
}

/* Escapes an object name for a path segment, keeping '/' and ':' (image
 * references "registry:5000/repo:tag" are routed by the engine with their
 * slashes). */
static char *pesc(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/:@", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    *o = '\0';
    return out;
}

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- the one HTTP exchange ---------------------------------------------- */

struct call {
    const char *what;         /* "create container lambdad-x": message prefix */
    const char *method;       /* "GET", "POST", "PUT", "DELETE" */
    const char *path;         /* after the version prefix, with query */
    const void *body;         /* memory body, or */
    size_t body_len;
    int body_fd;              /* file body when >= 0 (streamed) */
    off_t body_fd_len;
    const char *content_type; /* of the body */
    long timeout_ms;          /* 0 = none */
    /* Streaming sink: when set, the body goes here instead of into resp. */
    size_t (*sink)(char *data, size_t n, void *user);
    void *sink_user;
    /* Called once when a 2xx response's headers are complete. */
    docker_attached_cb on_headers;
    void *on_headers_user;
    bool headers_done;
    int cancel_fd; /* >= 0: abort with -ECANCELED once it is readable */
    char *stat_out;  /* receives X-Docker-Container-Path-Stat when set */
    size_t stat_len;
    /* Out. */
    long status;
    struct buf resp;
    char curl_err[CURL_ERROR_SIZE];
    int sink_errno; /* set by a sink that aborted the transfer */
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    struct call *c = user;
    size_t n = size * nmemb;
    if (c->sink && c->status >= 200 && c->status < 300)
        return c->sink(data, n, c->sink_user);
    if (c->resp.len + n > DOCKER_MAX_RESPONSE || buf_append(&c->resp, data, n) < 0)
        return 0;
    return n;
}

/* Records the status as soon as the headers arrive, so on_body knows
 * whether to stream (2xx) or buffer an error body. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *user)
{
    struct call *c = user;
    size_t n = size * nmemb;
    int code;
    if (n > 9 && memcmp(data, "HTTP/", 5) == 0 && sscanf(data, "HTTP/%*s %d", &code) == 1)
        c->status = code;
    static const char stat_name[] = "X-Docker-Container-Path-Stat:";
    if (c->stat_out && n > sizeof stat_name && strncasecmp(data, stat_name, sizeof stat_name - 1) == 0) {
        const char *v = data + sizeof stat_name - 1;
        size_t vl = n - (sizeof stat_name - 1);
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl < c->stat_len) {
            memcpy(c->stat_out, v, vl);
            c->stat_out[vl] = 0;
        }
    }
    if (n <= 2 && (data[0] == '\r' || data[0] == '\n') && c->status >= 200 && c->status < 300 &&
        !c->headers_done) {
        c->headers_done = true;
        if (c->on_headers && c->on_headers(c->on_headers_user) != 0) {
            c->sink_errno = -ECANCELED;
            return 0;
        }
    }
    return n;
}

static size_t on_read_fd(char *dst, size_t size, size_t nmemb, void *user)
{
    struct call *c = user;
    for (;;) {
        ssize_t r = read(c->body_fd, dst, size * nmemb);
        if (r >= 0)
            return (size_t)r;
        if (errno != EINTR)
            return CURL_READFUNC_ABORT;
    }
}

/* Extracts the engine's {"message": "..."} or falls back to the raw body. */
static void engine_message(const struct buf *b, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!b->p || !b->len)
        return;
    json_t *j = json_loadb(b->p, b->len, 0, NULL);
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    snprintf(out, outlen, "%s", m ? m : b->p);
    size_t l = strlen(out);
    while (l && (out[l - 1] == '\n' || out[l - 1] == '\r'))
        out[--l] = '\0';
    json_decref(j);
}

static int status_errno(long status)
{
    switch (status) {
    case 400: return -EINVAL;
    case 401:
    case 403: return -EACCES;
    case 404: return -ENOENT;
    case 409: return -EEXIST;
    case 500: return -EIO;
    default: return -EPROTO;
    }
}

/* curl_easy_perform that also watches cancel_fd: the transfer runs on a
 * private multi handle whose wait includes the fd, so a cancel wakes it at
 * once (no periodic polling). Sets *cancelled when that happened. */
static CURLcode perform_cancellable(CURL *h, int cancel_fd, bool *cancelled)
{
    CURLM *m = curl_multi_init();
    CURLcode cc = CURLE_OK;
    int running = 1;
    if (!m)
        return CURLE_OUT_OF_MEMORY;
    if (curl_multi_add_handle(m, h) != CURLM_OK) {
        curl_multi_cleanup(m);
        return CURLE_OUT_OF_MEMORY;
    }
    for (;;) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            cc = CURLE_RECV_ERROR;
            break;
        }
        if (!running)
            break;
        struct curl_waitfd w = {.fd = cancel_fd, .events = CURL_WAIT_POLLIN};
        if (curl_multi_wait(m, &w, 1, 60000, NULL) != CURLM_OK) {
            cc = CURLE_RECV_ERROR;
            break;
        }
        if (w.revents & CURL_WAIT_POLLIN) {
            *cancelled = true;
            cc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
    }
    if (!running) {
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE)
                cc = msg->data.result;
    }
    curl_multi_remove_handle(m, h);
    curl_multi_cleanup(m);
    return cc;
}

/* Performs the exchange. Returns 0 for a 2xx status (c->status, c->resp set),
 * else a negative errno with the message in err. Statuses the caller wants
 * to treat as success (e.g. 304) arrive as -EPROTO with c->status set. */
static int docker_call(struct docker *d, struct call *c, char *err)
{
    int rc = 0;
    char *url = NULL;
    struct curl_slist *hdrs = NULL;
    CURL *h = curl_easy_init();
    if (!h || asprintf(&url, "%s%s", d->base_url, c->path) < 0) {
        url = NULL;
        rc = -ENOMEM;
        set_err(err, "%s: out of memory", c->what);
        goto out;
    }
    c->status = 0;
    c->curl_err[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (d->sock_path)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->sock_path);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, DOCKER_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    /* Disable "Expect: 100-continue": the engine answers fine without it
     * and it would add a round trip (or a 1 s stall) to every upload. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (c->content_type) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", c->content_type);
        hdrs = curl_slist_append(hdrs, ct);
    }
    if (c->body_fd >= 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read_fd);
        curl_easy_setopt(h, CURLOPT_READDATA, c);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->body_fd_len);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    } else if (c->body || strcmp(c->method, "POST") == 0 || strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? (const char *)c->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    bool cancelled = false;
    CURLcode cc = c->cancel_fd >= 0 ? perform_cancellable(h, c->cancel_fd, &cancelled)
                                    : curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (cancelled) {
            rc = -ECANCELED;
            set_err(err, "%s: cancelled", c->what);
        } else if (c->sink_errno) {
            rc = c->sink_errno;
            set_err(err, "%s: %s", c->what, strerror(-rc));
        } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
            /* curl's text names "localhost port 80" for unix sockets: the
             * OS error is the useful part. */
            long os_errno = 0;
            curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
            rc = -ECONNREFUSED;
            set_err(err, "%s: cannot connect to the Docker engine at %s: %s", c->what, d->host,
                    os_errno ? strerror((int)os_errno)
                             : (c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc)));
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            rc = -ETIMEDOUT;
            set_err(err, "%s: the Docker engine at %s did not answer in time: %s", c->what,
                    d->host, c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc));
        } else if (cc == CURLE_WRITE_ERROR && c->resp.len + 1 >= DOCKER_MAX_RESPONSE) {
            rc = -E2BIG;
            set_err(err, "%s: response larger than %u bytes", c->what, DOCKER_MAX_RESPONSE);
        } else {
            rc = cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EPROTO;
            set_err(err, "%s: Docker engine at %s: %s", c->what, d->host,
                    c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc));
        }
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->status < 200 || c->status >= 300) {
        char msg[DOCKER_ERR_MAX];
        engine_message(&c->resp, msg, sizeof msg);
        rc = status_errno(c->status);
        set_err(err, "%s: %s (HTTP %ld from %s)", c->what, msg[0] ? msg : "no message", c->status,
                d->host);
    }
out:
    curl_slist_free_all(hdrs);
    free(url);
    if (h)
        curl_easy_cleanup(h);
    return rc;
}

#define CALL_INIT(d_, what_, method_, path_)                                                    \
    {                                                                                              \
        .what = (what_), .method = (method_), .path = (path_), .body_fd = -1, .cancel_fd = -1,    \
        .timeout_ms = (d_)->timeout_ms                                                             \
    }

/* Builds "/<fmt>" into *path; returns 0 or -ENOMEM (message set). */
static int mkpath(char **path, char *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mkpath(char **path, char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(path, fmt, ap);
    va_end(ap);
    if (n < 0) {
        *path = NULL;
        set_err(err, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* ---- handle ------------------------------------------------------------ */

int docker_open(struct docker **out, const char *host, char *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, curl_init_once);
    *out = NULL;
    if (!host || !*host)
        host = getenv("DOCKER_HOST");
    if (!host || !*host)
        host = DOCKER_DEFAULT_HOST;
    struct docker *d = calloc(1, sizeof *d);
    if (!d || !(d->host = strdup(host)))
        goto nomem;
    d->timeout_ms = DOCKER_TIMEOUT_MS;
    if (strncmp(host, "unix://", 7) == 0 && host[7]) {
        if (!(d->sock_path = strdup(host + 7)) ||
            asprintf(&d->base_url, "http://localhost/%s", DOCKER_API_VERSION) < 0)
            goto nomem;
    } else if (strncmp(host, "tcp://", 6) == 0 && host[6]) {
        const char *hp = host + 6;
        size_t n = strcspn(hp, "/");
        if (asprintf(&d->base_url, "http://%.*s/%s", (int)n, hp, DOCKER_API_VERSION) < 0)
            goto nomem;
    } else {
        set_err(err, "unsupported DOCKER_HOST \"%s\" (use unix:///path or tcp://host:port)", host);
        docker_close(d);
        return -EINVAL;
    }
    *out = d;
    return 0;
nomem:
    if (d)
        d->base_url = NULL; /* asprintf leaves it undefined on failure */
    docker_close(d);
    set_err(err, "docker_open: out of memory");
    return -ENOMEM;
}

void docker_close(struct docker *d)
{
    if (!d)
        return;
    free(d->host);
    free(d->sock_path);
    free(d->base_url);
    free(d);
}

const char *docker_host(const struct docker *d)
{
    return d->host;
}

bool docker_is_local(const struct docker *d)
{
    return d->sock_path != NULL;
}

void docker_set_timeout(struct docker *d, long timeout_ms)
{
    d->timeout_ms = timeout_ms > 0 ? timeout_ms : DOCKER_TIMEOUT_MS;
}

int docker_ping(struct docker *d, char *err)
{
    struct call c = CALL_INIT(d, "ping Docker engine", "GET", "/_ping");
    c.timeout_ms = d->timeout_ms < 5000 ? d->timeout_ms : 5000;
    int rc = docker_call(d, &c, err);
    if (rc == 0 && (!c.resp.p || strncmp(c.resp.p, "OK", 2) != 0)) {
        rc = -EPROTO;
        set_err(err, "ping Docker engine at %s: unexpected answer \"%.40s\"", d->host,
                c.resp.p ? c.resp.p : "");
    }
    free(c.resp.p);
    return rc;
}

/* ---- images ------------------------------------------------------------ */

/* GET /images/{image}/json into *root (caller decrefs). */
static int image_inspect(struct docker *d, const char *image, json_t **root, char *err)
{
    char what[256], *path = NULL, *e = pesc(image);
    int rc;
    snprintf(what, sizeof what, "inspect image %s", image);
    if (!e || (rc = mkpath(&path, err, "/images/%s/json", e)) < 0) {
        free(e);
        set_err(err, "%s: out of memory", what);
        return -ENOMEM;
    }
    struct call c = CALL_INIT(d, what, "GET", path);
    rc = docker_call(d, &c, err);
    if (rc == 0 && !(*root = json_loadb(c.resp.p, c.resp.len, 0, NULL))) {
        rc = -EPROTO;
        set_err(err, "%s: invalid JSON from engine", what);
    }
    free(c.resp.p);
    free(path);
    free(e);
    return rc;
}

int docker_image_exists(struct docker *d, const char *image, char *err)
{
    json_t *root = NULL;
    int rc = image_inspect(d, image, &root, err);
    json_decref(root);
    if (rc == -ENOENT)
        return 0;
    return rc < 0 ? rc : 1;
}

/* JSON array of strings -> NULL-terminated strv; NULL for null/absent. */
static int strv_from_json(json_t *a, char ***out)
{
    *out = NULL;
    if (!json_is_array(a))
        return 0;
    size_t n = json_array_size(a), i;
    char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!(v[i] = strdup(s ? s : ""))) {
            docker_strv_free(v);
            return -ENOMEM;
        }
    }
    *out = v;
    return 0;
}

static char *strdup_nonempty(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int docker_image_config(struct docker *d, const char *image, struct docker_image_config *out,
                        char *err)
{
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    int rc = image_inspect(d, image, &root, err);
    if (rc < 0)
        return rc;
    json_t *cfg = json_object_get(root, "Config");
    out->size = json_integer_value(json_object_get(root, "Size"));
    if (strv_from_json(json_object_get(cfg, "Entrypoint"), &out->entrypoint) < 0 ||
        strv_from_json(json_object_get(cfg, "Cmd"), &out->cmd) < 0 ||
        strv_from_json(json_object_get(cfg, "Env"), &out->env) < 0) {
        rc = -ENOMEM;
        set_err(err, "inspect image %s: out of memory", image);
        docker_image_config_free(out);
    } else {
        out->working_dir = strdup_nonempty(json_string_value(json_object_get(cfg, "WorkingDir")));
        out->user = strdup_nonempty(json_string_value(json_object_get(cfg, "User")));
    }
    json_decref(root);
    return rc;
}

void docker_image_config_free(struct docker_image_config *c)
{
    docker_strv_free(c->entrypoint);
    docker_strv_free(c->cmd);
    docker_strv_free(c->env);
    free(c->working_dir);
    free(c->user);
    memset(c, 0, sizeof *c);
}

bool docker_image_is_lambda_base(const struct docker_image_config *c)
{
    return c->entrypoint && c->entrypoint[0] && !c->entrypoint[1] &&
           strcmp(c->entrypoint[0], "/lambda-entrypoint.sh") == 0;
}

/* Streaming JSON-lines sink for pull/import: forwards a summary of each
 * line to the progress callback and remembers the first engine error. */
struct progress {
    docker_progress_cb cb;
    void *user;
    struct buf line;
    char error[DOCKER_ERR_MAX];
    char last_status[160];
};

static void progress_line(struct progress *p, const char *s, size_t n)
{
    json_t *j = json_loadb(s, n, 0, NULL);
    if (!j)
        return;
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e)
        e = json_string_value(json_object_get(json_object_get(j, "errorDetail"), "message"));
    if (e && !p->error[0])
        snprintf(p->error, sizeof p->error, "%s", e);
    const char *st = json_string_value(json_object_get(j, "status"));
    if (st)
        snprintf(p->last_status, sizeof p->last_status, "%s", st);
    if (p->cb) {
        const char *id = json_string_value(json_object_get(j, "id"));
        const char *pr = json_string_value(json_object_get(j, "progress"));
        char line[DOCKER_ERR_MAX];
        snprintf(line, sizeof line, "%s%s%s%s%s%s", id ? id : "", id ? ": " : "",
                 e ? "error: " : "", e ? e : (st ? st : ""), pr && !e ? " " : "",
                 pr && !e ? pr : "");
        p->cb(line, p->user);
    }
    json_decref(j);
}

static size_t progress_sink(char *data, size_t n, void *user)
{
    struct progress *p = user;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            if (p->line.len)
                progress_line(p, p->line.p, p->line.len);
            p->line.len = 0;
        } else if (p->line.len < 1u << 20 && buf_append(&p->line, data + i, 1) < 0) {
            return 0;
        }
    }
    return n;
}

static int progress_finish(struct progress *p, int rc, const char *what, char *err)
{
    if (p->line.len)
        progress_line(p, p->line.p, p->line.len);
    free(p->line.p);
    if (rc == 0 && p->error[0]) {
        rc = strstr(p->error, "not found") || strstr(p->error, "does not exist") ||
                     strstr(p->error, "access denied")
                 ? -ENOENT
                 : -EIO;
        set_err(err, "%s: %s", what, p->error);
    }
    return rc;
}

/* Splits an image reference into repo and tag ("latest" when absent; NULL
 * for digests, which stay in repo). */
static void split_ref(const char *ref, char *repo, size_t rlen, char *tag, size_t tlen)
{
    const char *slash = strrchr(ref, '/');
    const char *colon = strrchr(ref, ':');
    if (strchr(ref, '@')) {
        snprintf(repo, rlen, "%s", ref);
        tag[0] = '\0';
    } else if (colon && (!slash || colon > slash)) {
        snprintf(repo, rlen, "%.*s", (int)(colon - ref), ref);
        snprintf(tag, tlen, "%s", colon + 1);
    } else {
        snprintf(repo, rlen, "%s", ref);
        snprintf(tag, tlen, "latest");
    }
}

int docker_image_pull(struct docker *d, const char *image, docker_progress_cb progress,
                      void *user, char *err)
{
    char what[300], repo[256], tag[128], *path = NULL, *er = NULL, *et = NULL;
    struct progress p = {.cb = progress, .user = user};
    int rc;
    snprintf(what, sizeof what, "pull %s", image);
    split_ref(image, repo, sizeof repo, tag, sizeof tag);
    er = qesc(repo);
    et = qesc(tag);
    if (!er || !et || mkpath(&path, err, "/images/create?fromImage=%s&tag=%s", er, et) < 0) {
        rc = -ENOMEM;
        set_err(err, "%s: out of memory", what);
        goto out;
    }
    struct call c = CALL_INIT(d, what, "POST", path);
    c.timeout_ms = DOCKER_TIMEOUT_LONG_MS;
    c.sink = progress_sink;
    c.sink_user = &p;
    rc = docker_call(d, &c, err);
    free(c.resp.p);
    rc = progress_finish(&p, rc, what, err);
out:
    curl_free(er);
    curl_free(et);
    free(path);
    return rc;
}

int docker_image_import(struct docker *d, const char *tar_path, const char *repo, const char *tag,
                        const char *const *changes, docker_progress_cb progress, void *user,
                        char *err)
{
    char what[300];
    struct progress p = {.cb = progress, .user = user};
    struct buf q = {0};
    struct stat st;
    int rc = 0, fd = -1;
    snprintf(what, sizeof what, "import %s as %s:%s", tar_path, repo, tag ? tag : "latest");
    if ((fd = open(tar_path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        set_err(err, "%s: %s", what, strerror(errno));
        goto out;
    }
    char *er = qesc(repo), *et = qesc(tag ? tag : "latest");
    rc = (er && et) ? 0 : -ENOMEM;
    if (rc == 0)
        rc = buf_append(&q, "/images/create?fromSrc=-&repo=", 30);
    if (rc == 0)
        rc = buf_append(&q, er, strlen(er));
    if (rc == 0)
        rc = buf_append(&q, "&tag=", 5);
    if (rc == 0)
        rc = buf_append(&q, et, strlen(et));
    curl_free(er);
    curl_free(et);
    for (size_t i = 0; rc == 0 && changes && changes[i]; i++) {
        char *ec = qesc(changes[i]);
        rc = ec ? buf_append(&q, "&changes=", 9) : -ENOMEM;
        if (rc == 0)
            rc = buf_append(&q, ec, strlen(ec));
        curl_free(ec);
    }
    if (rc < 0) {
        set_err(err, "%s: out of memory", what);
        goto out;
    }
    struct call c = CALL_INIT(d, what, "POST", q.p);
    c.timeout_ms = DOCKER_TIMEOUT_LONG_MS;
    c.body_fd = fd;
    c.body_fd_len = st.st_size;
    c.content_type = "application/x-tar";
    c.sink = progress_sink;
    c.sink_user = &p;
    rc = docker_call(d, &c, err);
    free(c.resp.p);
    rc = progress_finish(&p, rc, what, err);
out:
    if (fd >= 0)
        close(fd);
    free(q.p);
    return rc;
}

int docker_image_remove(struct docker *d, const char *image, bool force, char *err)
{
    char what[300], *path = NULL, *e = pesc(image);
    int rc = -ENOMEM;
    snprintf(what, sizeof what, "remove image %s", image);
    if (e && (rc = mkpath(&path, err, "/images/%s%s", e, force ? "?force=1" : "")) == 0) {
        struct call c = CALL_INIT(d, what, "DELETE", path);
        rc = docker_call(d, &c, err);
        free(c.resp.p);
    } else {
        set_err(err, "%s: out of memory", what);
    }
    free(path);
    free(e);
    return rc;
}

int docker_image_tag(struct docker *d, const char *image, const char *repo, const char *tag,
                     char *err)
{
    char what[300], *path = NULL, *ei = pesc(image), *er = qesc(repo);
    char *et = qesc(tag ? tag : "latest");
    int rc = -ENOMEM;
    snprintf(what, sizeof what, "tag %s as %s:%s", image, repo, tag ? tag : "latest");
    if (ei && er && et &&
        (rc = mkpath(&path, err, "/images/%s/tag?repo=%s&tag=%s", ei, er, et)) == 0) {
        struct call c = CALL_INIT(d, what, "POST", path);
        rc = docker_call(d, &c, err);
        free(c.resp.p);
    } else {
        set_err(err, "%s: out of memory", what);
    }
    free(path);
    free(ei);
    curl_free(er);
    curl_free(et);
    return rc;
}

/* ---- containers -------------------------------------------------------- */

static json_t *json_strv(const char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* "k<sep>v" strings -> JSON object; entries without sep map to "". */
static json_t *json_kv(const char *const *v, char sep)
{
    json_t *o = json_object();
    for (size_t i = 0; v && v[i]; i++) {
        const char *s = strchr(v[i], sep);
        if (s) {
            char *k = strndup(v[i], (size_t)(s - v[i]));
            if (k)
                json_object_set_new(o, k, json_string(s + 1));
            free(k);
        } else {
            json_object_set_new(o, v[i], json_string(""));
        }
    }
    return o;
}

static json_t *create_body(const struct docker_create_opts *o)
{
    json_t *hc = json_object();
    json_t *b = json_object();
    json_object_set_new(b, "Image", json_string(o->image));
    if (o->entrypoint)
        json_object_set_new(b, "Entrypoint", json_strv(o->entrypoint));
    if (o->cmd)
        json_object_set_new(b, "Cmd", json_strv(o->cmd));
    if (o->env)
        json_object_set_new(b, "Env", json_strv(o->env));
    if (o->working_dir)
        json_object_set_new(b, "WorkingDir", json_string(o->working_dir));
    if (o->user)
        json_object_set_new(b, "User", json_string(o->user));
    if (o->labels)
        json_object_set_new(b, "Labels", json_kv(o->labels, '='));
    json_object_set_new(b, "Tty", json_false());
    json_object_set_new(b, "OpenStdin", json_false());
    json_object_set_new(b, "AttachStdin", json_false());
    json_object_set_new(b, "AttachStdout", json_true());
    json_object_set_new(b, "AttachStderr", json_true());
    if (o->binds)
        json_object_set_new(hc, "Binds", json_strv(o->binds));
    if (o->tmpfs)
        json_object_set_new(hc, "Tmpfs", json_kv(o->tmpfs, ':'));
    if (o->extra_hosts)
        json_object_set_new(hc, "ExtraHosts", json_strv(o->extra_hosts));
    if (o->network_mode)
        json_object_set_new(hc, "NetworkMode", json_string(o->network_mode));
    if (o->memory_bytes > 0) {
        json_object_set_new(hc, "Memory", json_integer(o->memory_bytes));
        json_object_set_new(hc, "MemorySwap", json_integer(o->memory_bytes));
    }
    if (o->nano_cpus > 0)
        json_object_set_new(hc, "NanoCpus", json_integer(o->nano_cpus));
    json_object_set_new(hc, "ReadonlyRootfs", json_boolean(o->readonly_rootfs));
    if (o->log_driver)
        json_object_set_new(hc, "LogConfig", json_pack("{s:s}", "Type", o->log_driver));
    json_object_set_new(hc, "AutoRemove", json_false());
    json_object_set_new(hc, "Init", json_false());
    json_object_set_new(b, "HostConfig", hc);
    return b;
}

int docker_container_create(struct docker *d, const struct docker_create_opts *o,
                            char id_out[DOCKER_ID_MAX], char *err)
{
    char what[300], *path = NULL, *en = NULL, *body = NULL;
    json_t *req = NULL, *resp = NULL;
    int rc;
    id_out[0] = '\0';
    snprintf(what, sizeof what, "create container %s from %s", o->name ? o->name : "(unnamed)",
             o->image ? o->image : "(no image)");
    if (!o->image) {
        set_err(err, "%s: no image given", what);
        return -EINVAL;
    }
    if (o->name && !(en = qesc(o->name))) {
        rc = -ENOMEM;
        goto nomem;
    }
    if ((rc = mkpath(&path, err, "/containers/create%s%s", en ? "?name=" : "", en ? en : "")) < 0 ||
        !(req = create_body(o)) || !(body = json_dumps(req, JSON_COMPACT))) {
        rc = -ENOMEM;
        goto nomem;
    }
    struct call c = CALL_INIT(d, what, "POST", path);
    c.body = body;
    c.body_len = strlen(body);
    c.content_type = "application/json";
    rc = docker_call(d, &c, err);
    if (rc == 0) {
        const char *id = NULL;
        if ((resp = json_loadb(c.resp.p, c.resp.len, 0, NULL)))
            id = json_string_value(json_object_get(resp, "Id"));
        if (id && strlen(id) < DOCKER_ID_MAX) {
            memcpy(id_out, id, strlen(id) + 1);
        } else {
            rc = -EPROTO;
            set_err(err, "%s: no container id in the engine's answer", what);
        }
    }
    free(c.resp.p);
    goto out;
nomem:
    set_err(err, "%s: out of memory", what);
out:
    json_decref(resp);
    json_decref(req);
    free(body);
    free(path);
    curl_free(en);
    return rc;
}

/* One call on /containers/{id}<suffix> without a body worth keeping.
 * ok_status: an extra non-2xx status that counts as success (0 = none). */
static int container_simple(struct docker *d, const char *what_verb, const char *id,
                            const char *method, const char *suffix, long ok_status, char *err)
{
    char what[200], *path = NULL, *e = pesc(id);
    int rc;
    snprintf(what, sizeof what, "%s container %.64s", what_verb, id);
    if (!e || mkpath(&path, err, "/containers/%s%s", e, suffix) < 0) {
        free(e);
        set_err(err, "%s: out of memory", what);
        return -ENOMEM;
    }
    struct call c = CALL_INIT(d, what, method, path);
    rc = docker_call(d, &c, err);
    if (rc < 0 && ok_status && c.status == ok_status)
        rc = 0;
    free(c.resp.p);
    free(path);
    free(e);
    return rc;
}

int docker_container_start(struct docker *d, const char *id, char *err)
{
    return container_simple(d, "start", id, "POST", "/start", 304, err);
}

int docker_container_kill(struct docker *d, const char *id, const char *signal, char *err)
{
    char suffix[64];
    snprintf(suffix, sizeof suffix, "/kill?signal=%.32s", signal ? signal : "SIGKILL");
    for (char *p = suffix + 13; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return set_err(err, "kill container %.64s: bad signal name", id), -EINVAL;
    return container_simple(d, "kill", id, "POST", suffix, 0, err);
}

int docker_container_remove(struct docker *d, const char *id, bool force, char *err)
{
    char buf[DOCKER_ERR_MAX];
    int rc = container_simple(d, "remove", id, "DELETE", force ? "?force=1&v=1" : "?v=1", 0, buf);
    /* 409 "removal of container ... is already in progress" is success. */
    if (rc == -EEXIST && strstr(buf, "already in progress"))
        return 0;
    if (rc < 0)
        set_err(err, "%s", buf);
    return rc;
}

int docker_container_wait(struct docker *d, const char *id, long timeout_ms, int *exit_code,
                          char *err)
{
    char what[200], *path = NULL, *e = pesc(id);
    int rc;
    snprintf(what, sizeof what, "wait for container %.64s", id);
    if (!e || mkpath(&path, err, "/containers/%s/wait?condition=not-running", e) < 0) {
        free(e);
        set_err(err, "%s: out of memory", what);
        return -ENOMEM;
    }
    struct call c = CALL_INIT(d, what, "POST", path);
    c.timeout_ms = timeout_ms;
    rc = docker_call(d, &c, err);
    if (rc == 0) {
        json_t *j = json_loadb(c.resp.p, c.resp.len, 0, NULL);
        json_t *sc = json_object_get(j, "StatusCode");
        const char *em = json_string_value(json_object_get(json_object_get(j, "Error"), "Message"));
        if (!json_is_integer(sc)) {
            rc = -EPROTO;
            set_err(err, "%s: no StatusCode in the engine's answer", what);
        } else if (em && *em) {
            rc = -EIO;
            set_err(err, "%s: %s", what, em);
        } else if (exit_code) {
            *exit_code = (int)json_integer_value(sc);
        }
        json_decref(j);
    }
    free(c.resp.p);
    free(path);
    free(e);
    return rc;
}

int docker_container_inspect_state(struct docker *d, const char *id, bool *running,
                                   int *exit_code, bool *oom_killed, char *err)
{
    char what[200], *path = NULL, *e = pesc(id);
    int rc;
    snprintf(what, sizeof what, "inspect container %.64s", id);
    if (!e || mkpath(&path, err, "/containers/%s/json", e) < 0) {
        free(e);
        set_err(err, "%s: out of memory", what);
        return -ENOMEM;
    }
    struct call c = CALL_INIT(d, what, "GET", path);
    rc = docker_call(d, &c, err);
    if (rc == 0) {
        json_t *j = json_loadb(c.resp.p, c.resp.len, 0, NULL);
        json_t *st = json_object_get(j, "State");
        if (!json_is_object(st)) {
            rc = -EPROTO;
            set_err(err, "%s: no State in the engine's answer", what);
        } else {
            if (running)
                *running = json_is_true(json_object_get(st, "Running"));
            if (exit_code)
                *exit_code = (int)json_integer_value(json_object_get(st, "ExitCode"));
            if (oom_killed)
                *oom_killed = json_is_true(json_object_get(st, "OOMKilled"));
        }
        json_decref(j);
    }
    free(c.resp.p);
    free(path);
    free(e);
    return rc;
}

/* ---- multiplexed output streams ---------------------------------------- */

/* Demultiplexer state: frames are [type, 0, 0, 0, size32be] + payload. */
struct demux {
    int fd;
    unsigned char hdr[8];
    size_t hdr_have;
    uint32_t left; /* payload bytes still to copy of the current frame */
    docker_attached_cb on_attached;
    void *user;
    int *sink_errno;
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t demux_sink(char *data, size_t n, void *user)
{
    struct demux *m = user;
    size_t i = 0;
    while (i < n) {
        if (m->left == 0) {
            size_t take = 8 - m->hdr_have < n - i ? 8 - m->hdr_have : n - i;
            memcpy(m->hdr + m->hdr_have, data + i, take);
            m->hdr_have += take;
            i += take;
            if (m->hdr_have == 8) {
                m->left = (uint32_t)m->hdr[4] << 24 | (uint32_t)m->hdr[5] << 16 |
                          (uint32_t)m->hdr[6] << 8 | m->hdr[7];
                m->hdr_have = 0;
            }
            continue;
        }
        size_t take = m->left < n - i ? m->left : n - i;
        int rc = write_all(m->fd, data + i, take);
        if (rc < 0) {
            *m->sink_errno = rc;
            return 0;
        }
        m->left -= (uint32_t)take;
        i += take;
    }
    return n;
}

/* Shared body of logs_follow and attach. */
static int container_stream(struct docker *d, const char *verb, const char *id, const char *method,
                            const char *suffix, struct demux *m, int cancel_fd, char *err)
{
    char what[200], *path = NULL, *e = pesc(id);
    int rc;
    snprintf(what, sizeof what, "%s container %.64s", verb, id);
    if (!e || mkpath(&path, err, "/containers/%s%s", e, suffix) < 0) {
        free(e);
        set_err(err, "%s: out of memory", what);
        return -ENOMEM;
    }
    struct call c = CALL_INIT(d, what, method, path);
    c.timeout_ms = 0;
    c.sink = demux_sink;
    c.sink_user = m;
    c.on_headers = m->on_attached;
    c.on_headers_user = m->user;
    c.cancel_fd = cancel_fd;
    m->sink_errno = &c.sink_errno;
    rc = docker_call(d, &c, err);
    free(c.resp.p);
    free(path);
    free(e);
    return rc;
}

int docker_container_logs_follow(struct docker *d, const char *id, int fd, char *err)
{
    struct demux m = {.fd = fd};
    return container_stream(d, "follow logs of", id, "GET", "/logs?follow=1&stdout=1&stderr=1", &m,
                            -1, err);
}

/* The attach stream is an HTTP response without a length, read until the
 * engine closes it. The engine writes its response headers when it hooks
 * the connection to the container's output, so the end of the headers is
 * the moment the caller may start the container. */
int docker_container_attach(struct docker *d, const char *id, int fd,
                            docker_attached_cb on_attached, void *user, char *err)
{
    return docker_container_attach_cancellable(d, id, fd, on_attached, user, -1, err);
}

int docker_container_attach_cancellable(struct docker *d, const char *id, int fd,
                                        docker_attached_cb on_attached, void *user, int cancel_fd,
                                        char *err)
{
    struct demux m = {.fd = fd, .on_attached = on_attached, .user = user};
    return container_stream(d, "attach to", id, "POST", "/attach?stream=1&stdout=1&stderr=1", &m,
                            cancel_fd, err);
}

/* ---- listing and cleanup ----------------------------------------------- */

/* GET /containers/json?all=1 filtered by label, as a JSON array in *out. */
static int list_json(struct docker *d, const char *label, json_t **out, char *err)
{
    char what[300], *path = NULL, *ef = NULL, *filt = NULL;
    json_t *f = NULL;
    int rc;
    *out = NULL;
    snprintf(what, sizeof what, "list containers labelled %s", label);
    f = json_pack("{s:[s]}", "label", label);
    if (!f || !(filt = json_dumps(f, JSON_COMPACT)) || !(ef = qesc(filt)) ||
        mkpath(&path, err, "/containers/json?all=1&filters=%s", ef) < 0) {
        rc = -ENOMEM;
        set_err(err, "%s: out of memory", what);
        goto out;
    }
    struct call c = CALL_INIT(d, what, "GET", path);
    rc = docker_call(d, &c, err);
    if (rc == 0) {
        *out = json_loadb(c.resp.p, c.resp.len, 0, NULL);
        if (!json_is_array(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = -EPROTO;
            set_err(err, "%s: engine did not answer a list", what);
        }
    }
    free(c.resp.p);
out:
    json_decref(f);
    free(filt);
    curl_free(ef);
    free(path);
    return rc;
}

int docker_containers_list_by_label(struct docker *d, const char *label, char ***ids, char *err)
{
    json_t *j = NULL;
    if (ids)
        *ids = NULL;
    int rc = list_json(d, label, &j, err);
    if (rc < 0)
        return rc;
    size_t n = json_array_size(j);
    char **v = ids ? calloc(n + 1, sizeof *v) : NULL;
    if (ids && !v)
        rc = -ENOMEM;
    for (size_t i = 0; v && i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(j, i), "Id"));
        if (!(v[i] = strdup(id ? id : ""))) {
            docker_strv_free(v);
            v = NULL;
            rc = -ENOMEM;
        }
    }
    json_decref(j);
    if (rc < 0) {
        set_err(err, "list containers labelled %s: out of memory", label);
        return rc;
    }
    if (ids)
        *ids = v;
    return (int)n;
}

int docker_containers_list_info(struct docker *d, const char *label, const char *key,
                                struct docker_container_info **out, char *err)
{
    json_t *j = NULL;
    *out = NULL;
    int rc = list_json(d, label, &j, err);
    if (rc < 0)
        return rc;
    size_t n = json_array_size(j);
    struct docker_container_info *v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        json_t *ci = json_array_get(j, i);
        const char *id = json_string_value(json_object_get(ci, "Id"));
        const char *st = json_string_value(json_object_get(ci, "State"));
        const char *lv = key ? json_string_value(json_object_get(json_object_get(ci, "Labels"), key))
                             : NULL;
        v[i].id = strdup(id ? id : "");
        v[i].state = strdup(st ? st : "");
        v[i].label = lv ? strdup(lv) : NULL;
        if (!v[i].id || !v[i].state || (lv && !v[i].label)) {
            docker_container_infos_free(v, (int)i + 1);
            v = NULL;
        }
    }
    json_decref(j);
    if (!v) {
        set_err(err, "list containers labelled %s: out of memory", label);
        return -ENOMEM;
    }
    *out = v;
    return (int)n;
}

void docker_container_infos_free(struct docker_container_info *v, int n)
{
    for (int i = 0; v && i < n; i++) {
        free(v[i].id);
        free(v[i].state);
        free(v[i].label);
    }
    free(v);
}

int docker_containers_remove_by_label(struct docker *d, const char *label, char *err)
{
    char **ids = NULL, buf[DOCKER_ERR_MAX];
    int n = docker_containers_list_by_label(d, label, &ids, err), removed = 0, first_err = 0;
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        int rc = docker_container_remove(d, ids[i], true, buf);
        if (rc == 0 || rc == -ENOENT) {
            removed += rc == 0;
        } else if (!first_err) {
            first_err = rc;
            set_err(err, "%s", buf);
        }
    }
    docker_strv_free(ids);
    return first_err ? first_err : removed;
}

/* ---- networks ---------------------------------------------------------- */

/* The first IPv4 host address of "a.b.c.d/len" (the engine's default
 * gateway choice), into out. Returns 0 or -EINVAL. */
static int subnet_first_host(const char *cidr, char *out, size_t outlen)
{
    unsigned a, b, c, dd, len;
    if (sscanf(cidr, "%u.%u.%u.%u/%u", &a, &b, &c, &dd, &len) != 5 || a > 255 || b > 255 ||
        c > 255 || dd > 255 || len > 30)
        return -EINVAL;
    uint32_t ip = a << 24 | b << 16 | c << 8 | dd;
    uint32_t mask = len ? 0xffffffffu << (32 - len) : 0;
    ip = (ip & mask) + 1;
    snprintf(out, outlen, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
    return 0;
}

int docker_network_gateway(struct docker *d, const char *network, char ip_out[64], char *err)
{
    char what[200], *path = NULL, *e = pesc(network);
    json_t *j = NULL;
    int rc;
    ip_out[0] = '\0';
    snprintf(what, sizeof what, "inspect network %s", network);
    if (!e || mkpath(&path, err, "/networks/%s", e) < 0) {
        rc = -ENOMEM;
        set_err(err, "%s: out of memory", what);
        goto out;
    }
    struct call c = CALL_INIT(d, what, "GET", path);
    rc = docker_call(d, &c, err);
    if (rc == 0 && !(j = json_loadb(c.resp.p, c.resp.len, 0, NULL)))
        rc = -EPROTO;
    free(c.resp.p);
    if (rc < 0)
        goto out;
    json_t *cfg = json_object_get(json_object_get(j, "IPAM"), "Config");
    /* An explicit IPv4 gateway first, else the first host of an IPv4
     * subnet (the default bridge lists only its subnet). */
    for (int pass = 0; pass < 2 && !ip_out[0]; pass++) {
        for (size_t i = 0; i < json_array_size(cfg) && !ip_out[0]; i++) {
            json_t *ci = json_array_get(cfg, i);
            const char *gw = json_string_value(json_object_get(ci, "Gateway"));
            const char *sn = json_string_value(json_object_get(ci, "Subnet"));
            if (pass == 0 && gw && strchr(gw, '.') && !strchr(gw, ':'))
                snprintf(ip_out, 64, "%s", gw);
            else if (pass == 1 && sn && strchr(sn, '.') && !strchr(sn, ':'))
                subnet_first_host(sn, ip_out, 64);
        }
    }
    if (!ip_out[0]) {
        rc = -ENOENT;
        set_err(err, "%s: no IPv4 gateway or subnet in its IPAM config", what);
    }
out:
    json_decref(j);
    free(path);
    free(e);
    return rc;
}

/* ---- archives ---------------------------------------------------------- */

int docker_put_archive(struct docker *d, const char *id, const char *path, const void *tar,
                       size_t len, char *err)
{
    char what[300], *p = NULL, *e = pesc(id), *ep = qesc(path);
    int rc;
    snprintf(what, sizeof what, "upload archive to %.64s:%s", id, path);
    if (!e || !ep || mkpath(&p, err, "/containers/%s/archive?path=%s", e, ep) < 0) {
        rc = -ENOMEM;
        set_err(err, "%s: out of memory", what);
        goto out;
    }
    struct call c = CALL_INIT(d, what, "PUT", p);
    c.body = tar;
    c.body_len = len;
    c.content_type = "application/x-tar";
    c.timeout_ms = DOCKER_TIMEOUT_LONG_MS;
    rc = docker_call(d, &c, err);
    free(c.resp.p);
out:
    free(p);
    free(e);
    curl_free(ep);
    return rc;
}

/* ustar header for one entry; name is relative ("a/b", dirs end in '/'). */
static int tar_header(struct buf *b, const char *name, const struct stat *st, char type,
                      const char *linkname, uint64_t size)
{
    unsigned char h[512] = {0};
    size_t n = strlen(name);
    if (n <= 100) {
        memcpy(h, name, n);
    } else {
        /* Split at a '/' so that prefix <= 155 and name <= 100. */
        const char *cut = NULL;
        for (const char *s = name; (s = strchr(s, '/')); s++)
            if ((size_t)(s - name) <= 155 && n - (size_t)(s - name) - 1 <= 100 && s[1]) {
                cut = s;
                break;
            }
        if (!cut)
            return -ENAMETOOLONG;
        memcpy(h + 345, name, (size_t)(cut - name));
        memcpy(h, cut + 1, n - (size_t)(cut - name) - 1);
    }
    if (linkname && strlen(linkname) > 100)
        return -ENAMETOOLONG;
    snprintf((char *)h + 100, 8, "%07o", (unsigned)(st->st_mode & 07777));
    snprintf((char *)h + 108, 8, "%07o", 0u);
    snprintf((char *)h + 116, 8, "%07o", 0u);
    const unsigned long long max11 = 077777777777ull; /* 8 GiB - 1: ustar's limit */
    unsigned long long mtime = st->st_mtime > 0 ? (unsigned long long)st->st_mtime : 0;
    if (size > max11)
        return -EFBIG;
    snprintf((char *)h + 124, 12, "%011llo", size & max11);
    snprintf((char *)h + 136, 12, "%011llo", (mtime > max11 ? max11 : mtime) & max11);
    memset(h + 148, ' ', 8);
    h[156] = (unsigned char)type;
    if (linkname)
        memcpy(h + 157, linkname, strlen(linkname));
    memcpy(h + 257, "ustar", 6); /* "ustar\0" */
    memcpy(h + 263, "00", 2);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    return buf_append(b, h, 512);
}

static int tar_pad(struct buf *b)
{
    static const char zero[512];
    size_t r = b->len % 512;
    return r ? buf_append(b, zero, 512 - r) : 0;
}

static int tar_file(struct buf *b, const char *full, const char *rel, const struct stat *st)
{
    int fd = open(full, O_RDONLY | O_CLOEXEC), rc;
    if (fd < 0)
        return -errno;
    if ((rc = tar_header(b, rel, st, '0', NULL, (uint64_t)st->st_size)) < 0)
        goto out;
    off_t left = st->st_size;
    char chunk[65536];
    while (left > 0) {
        ssize_t r = read(fd, chunk, sizeof chunk < (size_t)left ? sizeof chunk : (size_t)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO; /* file shrank under us */
            goto out;
        }
        if ((rc = buf_append(b, chunk, (size_t)r)) < 0)
            goto out;
        left -= r;
    }
    rc = tar_pad(b);
out:
    close(fd);
    return rc;
}

/* Recursively appends dir/rel's entries (rel "" = the root itself), each
 * named prefix + rel in the archive (prefix "" or "a/b/"). */
static int tar_walk(struct buf *b, const char *root, const char *rel, const char *prefix,
                    int depth)
{
    char *full = NULL;
    int rc = 0;
    DIR *dir = NULL;
    if (depth > 64)
        return -ELOOP;
    if (asprintf(&full, "%s%s%s", root, *rel ? "/" : "", rel) < 0)
        return -ENOMEM;
    if (!(dir = opendir(full))) {
        rc = -errno;
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *crel = NULL, *cfull = NULL;
        struct stat st;
        char *cname = NULL;
        if (asprintf(&crel, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0) {
            rc = -ENOMEM;
            goto out;
        }
        if (asprintf(&cfull, "%s/%s", full, de->d_name) < 0) {
            free(crel);
            rc = -ENOMEM;
            goto out;
        }
        if (asprintf(&cname, "%s%s", prefix, crel) < 0) {
            free(cfull);
            free(crel);
            rc = -ENOMEM;
            goto out;
        }
        if (lstat(cfull, &st) < 0) {
            rc = -errno;
        } else if (S_ISDIR(st.st_mode)) {
            char *drel = NULL;
            if (asprintf(&drel, "%s/", cname) < 0)
                rc = -ENOMEM;
            else if ((rc = tar_header(b, drel, &st, '5', NULL, 0)) == 0)
                rc = tar_walk(b, root, crel, prefix, depth + 1);
            free(drel);
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlink(cfull, target, sizeof target - 1);
            if (n < 0) {
                rc = -errno;
            } else {
                target[n] = '\0';
                rc = tar_header(b, cname, &st, '2', target, 0);
            }
        } else if (S_ISREG(st.st_mode)) {
            rc = tar_file(b, cfull, cname, &st);
        } /* sockets, fifos, devices: skipped */
        free(cname);
        free(crel);
        free(cfull);
        if (rc < 0)
            goto out;
    }
out:
    if (dir)
        closedir(dir);
    free(full);
    return rc;
}

int docker_tar_dir(const char *dir, char **buf, size_t *len)
{
    return docker_tar_dir_at(dir, NULL, buf, len);
}

int docker_tar_dir_at(const char *dir, const char *prefix, char **buf, size_t *len)
{
    static const char zero[1024];
    struct buf b = {0};
    char *pfx = NULL;
    while (prefix && *prefix == '/')
        prefix++;
    size_t pl = prefix ? strlen(prefix) : 0;
    while (pl && prefix[pl - 1] == '/')
        pl--;
    if (asprintf(&pfx, "%.*s%s", (int)pl, pl ? prefix : "", pl ? "/" : "") < 0) {
        *buf = NULL;
        *len = 0;
        return -ENOMEM;
    }
    int rc = tar_walk(&b, dir, "", pfx, 0);
    free(pfx);
    if (rc == 0)
        rc = buf_append(&b, zero, sizeof zero);
    if (rc < 0) {
        free(b.p);
        *buf = NULL;
        *len = 0;
        return rc;
    }
    *buf = b.p;
    *len = b.len;
    return 0;
}

/* ---- exec ---------------------------------------------------------------- */

int docker_exec_create(struct docker *d, const char *cid, const char *const *argv,
                       const char *const *env, const char *workdir, bool tty,
                       char id_out[DOCKER_ID_MAX], char *err)
{
    char what[200], *path = NULL, *e = pesc(cid), *body = NULL;
    int rc;
    snprintf(what, sizeof what, "exec in container %.64s", cid);
    json_t *b = json_pack("{s:b,s:b,s:b,s:b,s:o}", "AttachStdin", 0, "AttachStdout", 1,
                          "AttachStderr", 1, "Tty", tty, "Cmd", json_strv(argv));
    if (b && env && env[0])
        json_object_set_new(b, "Env", json_strv(env));
    if (b && workdir && *workdir)
        json_object_set_new(b, "WorkingDir", json_string(workdir));
    body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!e || !body || mkpath(&path, err, "/containers/%s/exec", e) < 0) {
        free(e);
        free(body);
        set_err(err, "%s: out of memory", what);
        return -ENOMEM;
    }
    struct call c = CALL_INIT(d, what, "POST", path);
    c.body = body;
    c.body_len = strlen(body);
    c.content_type = "application/json";
    rc = docker_call(d, &c, err);
    if (rc == 0) {
        json_t *j = json_loadb(c.resp.p, c.resp.len, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "Id"));
        if (!id || strlen(id) >= DOCKER_ID_MAX) {
            rc = -EPROTO;
            set_err(err, "%s: no Id in the engine's answer", what);
        } else {
            snprintf(id_out, DOCKER_ID_MAX, "%s", id);
        }
        json_decref(j);
    }
    free(c.resp.p);
    free(path);
    free(e);
    free(body);
    return rc;
}

struct exec_sink {
    docker_stream_cb cb;
    void *user;
    int *sink_errno;
};

static size_t exec_sink(char *data, size_t n, void *user)
{
    struct exec_sink *s = user;
    int rc = s->cb(s->user, data, n);
    if (rc < 0) {
        *s->sink_errno = rc;
        return 0;
    }
    return n;
}

int docker_exec_start(struct docker *d, const char *exec_id, bool tty, docker_stream_cb cb,
                      void *user, char *err)
{
    char what[200], *path = NULL, *e = pesc(exec_id), body[64];
    int rc;
    snprintf(what, sizeof what, "start exec %.64s", exec_id);
    snprintf(body, sizeof body, "{\"Detach\":false,\"Tty\":%s}", tty ? "true" : "false");
    if (!e || mkpath(&path, err, "/exec/%s/start", e) < 0) {
        free(e);
        set_err(err, "%s: out of memory", what);
        return -ENOMEM;
    }
    struct exec_sink s = {cb, user, NULL};
    struct call c = CALL_INIT(d, what, "POST", path);
    c.body = body;
    c.body_len = strlen(body);
    c.content_type = "application/json";
    c.timeout_ms = 0;
    c.sink = exec_sink;
    c.sink_user = &s;
    s.sink_errno = &c.sink_errno;
    rc = docker_call(d, &c, err);
    free(c.resp.p);
    free(path);
    free(e);
    return rc;
}

int docker_exec_inspect(struct docker *d, const char *exec_id, bool *running, int *exit_code,
                        char *err)
{
    char what[200], *path = NULL, *e = pesc(exec_id);
    int rc;
    snprintf(what, sizeof what, "inspect exec %.64s", exec_id);
    if (!e || mkpath(&path, err, "/exec/%s/json", e) < 0) {
        free(e);
        set_err(err, "%s: out of memory", what);
        return -ENOMEM;
    }
    struct call c = CALL_INIT(d, what, "GET", path);
    rc = docker_call(d, &c, err);
    if (rc == 0) {
        json_t *j = json_loadb(c.resp.p, c.resp.len, 0, NULL);
        if (!json_is_object(j)) {
            rc = -EPROTO;
            set_err(err, "%s: unexpected answer", what);
        } else {
            *running = json_is_true(json_object_get(j, "Running"));
            json_t *ec = json_object_get(j, "ExitCode");
            *exit_code = json_is_integer(ec) ? (int)json_integer_value(ec) : -1;
        }
        json_decref(j);
    }
    free(c.resp.p);
    free(path);
    free(e);
    return rc;
}

int docker_get_archive(struct docker *d, const char *id, const char *path, char *stat_out,
                       size_t stat_len, docker_attached_cb on_headers, docker_stream_cb cb,
                       void *user, char *err)
{
    char what[300], *p = NULL, *e = pesc(id), *ep = qesc(path);
    int rc;
    snprintf(what, sizeof what, "download archive from %.64s:%s", id, path);
    if (stat_len)
        stat_out[0] = 0;
    if (!e || !ep || mkpath(&p, err, "/containers/%s/archive?path=%s", e, ep) < 0) {
        rc = -ENOMEM;
        set_err(err, "%s: out of memory", what);
        goto out;
    }
    struct exec_sink s = {cb, user, NULL};
    struct call c = CALL_INIT(d, what, "GET", p);
    c.timeout_ms = DOCKER_TIMEOUT_LONG_MS;
    c.stat_out = stat_out;
    c.stat_len = stat_len;
    c.on_headers = on_headers;
    c.on_headers_user = user;
    c.sink = exec_sink;
    c.sink_user = &s;
    s.sink_errno = &c.sink_errno;
    rc = docker_call(d, &c, err);
    free(c.resp.p);
out:
    free(p);
    free(e);
    curl_free(ep);
    return rc;
}
