/* docker_api: the Docker Engine API front end (see docker_api.h). */
#include "server/docker_api.h"
#include "server/docker_frames.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#include "pool/pool.h"
#include "runtime/container.h"
#include "runtime/docker.h"
#include "runtime/log.h"
#include "server/api_functions.h"
#include "server/http.h"
#include "server/logs_store.h"
#include "server/registry.h"
#include "server/validate.h"

#define API_VERSION "1.45"
#define API_MIN_VERSION "1.24"
#define RUNNER_PATH CONTAINER_BOOTSTRAP_DIR "/cmdrunner/cmdrunner.py"
#define LOG_CAP (2u << 20)        /* output kept per container */
#define BODY_CAP (1u << 20)       /* request bodies */
#define MAX_UNIX 8
#define THREADS "64"
#define CONFIG_PORTS_MAX 16

/* ------------------------------------------------------------- records */

enum ctr_state { ST_CREATED, ST_RUNNING, ST_EXITED };

struct line {
    int64_t ts_ns; /* CLOCK_REALTIME */
    uint8_t stream; /* 1 stdout, 2 stderr */
    uint32_t len;
    char data[];
};

struct ctr {
    struct ctr *next;            /* g.ctrs, under g.mu */
    int refs;                    /* under g.mu */
    char id[65];
    char name[256];              /* without the leading '/' */
    char fn[VALIDATE_NAME_MAX + 1]; /* function name */
    char fn_key[200];            /* spec key: region/account/name */
    char image[512];
    json_t *config;              /* the create request's body (Config + HostConfig) */
    json_t *argv;                /* resolved ENTRYPOINT + CMD */
    bool tty, auto_remove;
    int64_t memory_bytes;
    /* Mutable, under g.mu. */
    enum ctr_state state;
    bool removing, removed;
    bool killed;                 /* SIGKILL sent: the environment died, exit 137 */
    int exit_code;
    char error[512];
    int64_t created_ns, started_ns, finished_ns;
    unsigned runs;               /* completed runs */
    char token[33];              /* output token of the current run */
    struct fn_spec *spec;        /* the current run's (log group, format), or NULL */
    uint64_t serial;             /* for the log sink's per-source line assembly */
    struct line **lines;         /* output, oldest first: lines[l_start .. l_start+l_count) */
    size_t l_start, l_count, l_cap, l_bytes;
    uint64_t l_first_seq;        /* seq of lines[l_start] */
};

struct image_rec {
    struct image_rec *next;
    char name[512];
    char id[72];                 /* "sha256:<hex>" */
    int64_t created, size;
    json_t *config;              /* Config (Entrypoint, Cmd, Env, WorkingDir) or NULL */
};

struct exec_rec {                /* exec instances created through this API */
    struct exec_rec *next;
    char id[65];                 /* the engine's exec id */
    char ctr[65];                /* our container id */
    json_t *argv;
    bool tty;
};
#define EXEC_KEEP 256            /* newest exec records kept */

struct named_rec {               /* networks and volumes */
    struct named_rec *next;
    char name[256];
    char id[65];
    int64_t created;
    json_t *labels;
};

static struct {
    struct docker_api_options o;
    struct mg_context *api, *ingest;
    atomic_int internal_port;    /* loopback port the unix relays connect to */
    atomic_int ingest_port;      /* set after the API threads started: atomic */
    char ingest_ip[64];
    pthread_mutex_t mu;          /* everything below */
    pthread_cond_t cv;           /* any record changed */
    struct ctr *ctrs;
    struct image_rec *images;
    struct named_rec *networks, *volumes;
    struct exec_rec *execs;      /* newest first */
    atomic_bool stopping;
    /* unix listeners */
    int n_unix;
    int unix_fd[MAX_UNIX];
    char unix_path[MAX_UNIX][108];
    pthread_t unix_thr[MAX_UNIX];
    atomic_int relays;           /* relay threads alive */
    _Atomic uint64_t relay_ports[1024]; /* bitmap of loopback source ports of relays */
    pthread_t reaper;
    bool reaper_started;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void rand_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[64];
    if (nbytes > sizeof b)
        nbytes = sizeof b;
    if (getrandom(b, nbytes, 0) != (ssize_t)nbytes) {
        for (size_t i = 0; i < nbytes; i++)
            b[i] = (unsigned char)(now_ns() >> (i % 8)) ^ (unsigned char)rand();
    }
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * nbytes] = 0;
}

/* RFC 3339 with nanoseconds, Docker's zero time for 0. */
static void fmt_time(int64_t ns, char out[48])
{
    if (ns <= 0) {
        snprintf(out, 48, "0001-01-01T00:00:00Z");
        return;
    }
    time_t s = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ns % 1000000000));
}

static void ctr_unref_locked(struct ctr *c)
{
    if (--c->refs > 0)
        return;
    for (size_t i = 0; i < c->l_count; i++)
        free(c->lines[c->l_start + i]);
    free(c->lines);
    json_decref(c->config);
    json_decref(c->argv);
    fnspec_unref(c->spec);
    free(c);
}

static void ctr_unref(struct ctr *c)
{
    pthread_mutex_lock(&g.mu);
    ctr_unref_locked(c);
    pthread_mutex_unlock(&g.mu);
}

/* Finds a live container by full id, unique id prefix or name. Caller
 * holds g.mu. *ambiguous is set for a prefix matching several. */
static struct ctr *ctr_find_locked(const char *ref, bool *ambiguous)
{
    struct ctr *hit = NULL;
    size_t rl = strlen(ref);
    const char *nm = ref[0] == '/' ? ref + 1 : ref;
    *ambiguous = false;
    if (!rl)
        return NULL;
    for (struct ctr *c = g.ctrs; c; c = c->next)
        if (!strcmp(c->id, ref) || !strcmp(c->name, nm))
            return c;
    for (struct ctr *c = g.ctrs; c; c = c->next) {
        if (!strncmp(c->id, ref, rl)) {
            if (hit) {
                *ambiguous = true;
                return NULL;
            }
            hit = c;
        }
    }
    return hit;
}

/* Appends output (split into lines) to c's buffer, dropping the oldest
 * lines past LOG_CAP. Caller holds g.mu. */
static void ctr_append_locked(struct ctr *c, int stream, const char *data, size_t len)
{
    int64_t ts = now_ns();
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) + 1 : len;
        if (n > LOG_CAP)
            n = LOG_CAP;
        struct line *l = malloc(sizeof *l + n);
        if (!l)
            return;
        l->ts_ns = ts;
        l->stream = (uint8_t)stream;
        l->len = (uint32_t)n;
        memcpy(l->data, data, n);
        if (c->l_start + c->l_count == c->l_cap) {
            if (c->l_start > c->l_cap / 2) {
                memmove(c->lines, c->lines + c->l_start, c->l_count * sizeof *c->lines);
                c->l_start = 0;
            } else {
                size_t ncap = c->l_cap ? c->l_cap * 2 : 64;
                struct line **nl2 = realloc(c->lines, ncap * sizeof *nl2);
                if (!nl2) {
                    free(l);
                    return;
                }
                c->lines = nl2;
                c->l_cap = ncap;
            }
        }
        c->lines[c->l_start + c->l_count++] = l;
        c->l_bytes += n;
        while (c->l_bytes > LOG_CAP && c->l_count > 1) {
            struct line *old = c->lines[c->l_start++];
            c->l_count--;
            c->l_first_seq++;
            c->l_bytes -= old->len;
            free(old);
        }
        data += n;
        len -= n;
    }
}

/* ---------------------------------------------------------- responses */

struct dreq {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    const char *method;
    const char *path;            /* without the /vX.Y prefix */
    char *body;
    size_t body_len;
    int status;
    struct http_req hq;          /* for http_query */
};

static const char *reason(int status)
{
    switch (status) {
    case 101: return "UPGRADED";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 413: return "Request Entity Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static const char COMMON_HEADERS[] = "Api-Version: " API_VERSION "\r\nDocker-Experimental: false\r\n"
                                     "Ostype: linux\r\nServer: lambdad/" LAMBDAD_VERSION "\r\n";

static void send_raw(struct dreq *r, int status, const char *ctype, const char *extra,
                     const void *body, size_t len)
{
    char head[1024];
    if (r->status)
        return;
    r->status = status;
    int h = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n%s%s%s%s\r\n",
                     status, reason(status), COMMON_HEADERS, len, ctype ? "Content-Type: " : "",
                     ctype ? ctype : "", ctype ? "\r\n" : "", extra ? extra : "");
    mg_write(r->conn, head, (size_t)h);
    if (len && strcmp(r->method, "HEAD") != 0)
        mg_write(r->conn, body, len);
}

static void send_json(struct dreq *r, int status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        send_raw(r, 500, "application/json", NULL, "{\"message\":\"out of memory\"}", 27);
        return;
    }
    size_t n = strlen(text);
    text = realloc(text, n + 2) ?: text;
    text[n] = '\n'; /* the engine ends JSON answers with a newline */
    send_raw(r, status, "application/json", NULL, text, n + 1);
    free(text);
}

static void send_err(struct dreq *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void send_err(struct dreq *r, int status, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *m = json_string(msg);
    send_json(r, status, json_pack("{s:o}", "message", m ? m : json_string("(invalid UTF-8)")));
}

static void send_empty(struct dreq *r, int status)
{
    send_raw(r, status, NULL, NULL, "", 0);
}

/* Starts a response whose body runs until the connection closes. */
static void stream_begin(struct dreq *r, int status, const char *ctype, const char *extra)
{
    char head[1024];
    r->status = status;
    mg_disable_keep_alive(r->conn);
    int h = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\n%sConnection: %s\r\n\r\n",
                     status, reason(status), COMMON_HEADERS, ctype, extra ? extra : "",
                     status == 101 ? "Upgrade" : "close");
    mg_write(r->conn, head, (size_t)h);
}

static int query(struct dreq *r, const char *name, char *buf, size_t len)
{
    return http_query(&r->hq, name, buf, len);
}

static bool query_bool(struct dreq *r, const char *name)
{
    char v[16];
    if (query(r, name, v, sizeof v) < 0)
        return false;
    return !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes");
}

static int read_body(struct dreq *r)
{
    long long cl = r->ri->content_length;
    if (cl > (long long)BODY_CAP) {
        send_err(r, 413, "request body larger than %u bytes", BODY_CAP);
        return -1;
    }
    size_t cap = cl >= 0 ? (size_t)cl : 65536, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        send_err(r, 500, "out of memory");
        return -1;
    }
    for (;;) {
        if (cl >= 0 && len == (size_t)cl)
            break;
        if (len == cap) {
            if (cap >= BODY_CAP) {
                free(buf);
                send_err(r, 413, "request body larger than %u bytes", BODY_CAP);
                return -1;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                send_err(r, 500, "out of memory");
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        int n = mg_read(r->conn, buf + len, cap - len);
        if (n < 0 || (n == 0 && cl >= 0)) {
            free(buf);
            send_err(r, 400, "incomplete request body");
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    r->body = buf;
    r->body_len = len;
    return 0;
}

/* The JSON object body, or NULL after answering 400 like the engine. An
 * empty body is {} when allow_empty. */
static json_t *json_body(struct dreq *r, bool allow_empty)
{
    json_error_t je;
    if (read_body(r) < 0)
        return NULL;
    if (r->body_len == 0 && allow_empty)
        return json_object();
    if (r->body_len == 0) {
        send_err(r, 400, "bad parameter: request body is empty");
        return NULL;
    }
    if (http_json_too_deep(r->body, r->body_len, 64)) {
        send_err(r, 400, "invalid JSON: nesting deeper than 64 levels");
        return NULL;
    }
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (!j) {
        send_err(r, 400, "invalid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        send_err(r, 400, "invalid JSON: the body must be an object");
        return NULL;
    }
    return j;
}

/* The container named by ref with a reference, or NULL after answering
 * 404 like the engine. */
static struct ctr *ctr_get(struct dreq *r, const char *ref)
{
    bool amb;
    pthread_mutex_lock(&g.mu);
    struct ctr *c = ctr_find_locked(ref, &amb);
    if (c)
        c->refs++;
    pthread_mutex_unlock(&g.mu);
    if (!c) {
        if (amb)
            send_err(r, 400, "multiple IDs found with provided prefix: %s", ref);
        else
            send_err(r, 404, "No such container: %s", ref);
    }
    return c;
}

/* --------------------------------------------------------------- system */

static void h_ping(struct dreq *r, const char **p)
{
    (void)p;
    send_raw(r, 200, "text/plain; charset=utf-8",
             "Builder-Version: 1\r\nCache-Control: no-cache, no-store, must-revalidate\r\nPragma: no-cache\r\n",
             "OK", 2);
}

static void h_version(struct dreq *r, const char **p)
{
    (void)p;
    json_t *comp = json_pack("[{s:s,s:s,s:{s:s,s:s}}]", "Name", "Engine", "Version", LAMBDAD_VERSION,
                             "Details", "ApiVersion", API_VERSION, "MinAPIVersion", API_MIN_VERSION);
    send_json(r, 200,
              json_pack("{s:{s:s},s:o,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "Platform", "Name",
                        "lambdad (AWS Lambda functions)", "Components", comp, "Version", LAMBDAD_VERSION,
                        "ApiVersion", API_VERSION, "MinAPIVersion", API_MIN_VERSION, "GitCommit",
                        "lambdad", "GoVersion", "c11", "Os", "linux", "Arch", "amd64", "KernelVersion",
                        "lambda", "BuildTime", "1970-01-01T00:00:00.000000000+00:00"));
}

static void h_info(struct dreq *r, const char **p)
{
    (void)p;
    int running = 0, stopped = 0, total = 0, images = 0;
    pthread_mutex_lock(&g.mu);
    for (struct ctr *c = g.ctrs; c; c = c->next) {
        total++;
        if (c->state == ST_RUNNING)
            running++;
        else if (c->state == ST_EXITED)
            stopped++;
    }
    for (struct image_rec *i = g.images; i; i = i->next)
        images++;
    pthread_mutex_unlock(&g.mu);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    char host[256] = "lambdad";
    gethostname(host, sizeof host - 1);
    json_t *j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:s,s:s,s:s,s:b,s:b}",
                          "ID", "lambdad", "Containers", total, "ContainersRunning", running,
                          "ContainersPaused", 0, "ContainersStopped", stopped, "Images", images,
                          "Driver", "lambda", "OperatingSystem", "lambdad (AWS Lambda functions)",
                          "OSType", "linux", "Architecture", "x86_64", "KernelVersion", "lambda",
                          "Name", host, "NCPU", (int)(ncpu > 0 ? ncpu : 1), "MemTotal",
                          (json_int_t)(pages > 0 && psz > 0 ? pages * psz : 0), "ServerVersion",
                          LAMBDAD_VERSION, "CgroupDriver", "none", "LoggingDriver", "lambdad",
                          "Debug", 0, "ExperimentalBuild", 0);
    json_object_set_new(j, "Plugins", json_pack("{s:[],s:[s],s:[s]}", "Volume", "Network", "bridge",
                                                "Log", "lambdad"));
    json_object_set_new(j, "Labels", json_array());
    json_object_set_new(j, "Warnings", json_array());
    json_object_set_new(j, "SecurityOptions", json_array());
    send_json(r, 200, j);
}

/* --------------------------------------------------------------- images */

/* "name" -> "name:latest" unless it has a tag or digest. */
static void image_norm(const char *in, char *out, size_t outlen)
{
    const char *slash = strrchr(in, '/');
    const char *last = slash ? slash + 1 : in;
    bool tagged = strchr(last, ':') || strchr(in, '@');
    int n = snprintf(out, outlen, "%s%s", in, tagged ? "" : ":latest");
    if (n < 0 || (size_t)n >= outlen)
        out[0] = 0; /* too long to be a reference: matches nothing */
}

static struct image_rec *image_find_locked(const char *name)
{
    char norm[512];
    image_norm(name, norm, sizeof norm);
    for (struct image_rec *i = g.images; i; i = i->next)
        if (!strcmp(i->name, norm) || !strcmp(i->id, name) ||
            (strlen(name) >= 12 && !strncmp(i->id + 7, name, strlen(name))))
            return i;
    return NULL;
}

static json_t *strv_json(char **v)
{
    if (!v)
        return json_null();
    json_t *a = json_array();
    for (size_t i = 0; v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* Resolves image: the engine's config when the docker executor has an
 * engine (pulling it when pull is set), else the synthetic record a
 * previous pull made. Returns 0 and records the image, -ENOENT (msg says
 * why), or another negative errno. */
static int image_resolve(const char *image, bool pull, char *msg, size_t msglen)
{
    char norm[512], err[DOCKER_ERR_MAX];
    image_norm(image, norm, sizeof norm);
    struct docker_image_config cfg = {0};
    json_t *config = NULL;
    int64_t size = 0;
    if (g.o.engine) {
        int rc = container_image_inspect(norm, &cfg, err);
        if (rc == -ENOENT && pull) {
            rc = container_image_pull(norm, err);
            if (rc < 0) {
                snprintf(msg, msglen, "%s", err);
                return rc == -EIO ? -ENOENT : rc;
            }
            rc = container_image_inspect(norm, &cfg, err);
        }
        if (rc == -ENOENT) {
            snprintf(msg, msglen, "No such image: %s", norm);
            return -ENOENT;
        }
        if (rc < 0) {
            snprintf(msg, msglen, "%s", err);
            return rc;
        }
        config = json_pack("{s:o,s:o,s:o,s:s?}", "Entrypoint", strv_json(cfg.entrypoint), "Cmd",
                           strv_json(cfg.cmd), "Env", strv_json(cfg.env), "WorkingDir",
                           cfg.working_dir);
        size = cfg.size;
        docker_image_config_free(&cfg);
    } else {
        pthread_mutex_lock(&g.mu);
        bool known = image_find_locked(norm) != NULL;
        pthread_mutex_unlock(&g.mu);
        if (known)
            return 0;
        if (!pull) {
            snprintf(msg, msglen, "No such image: %s", norm);
            return -ENOENT;
        }
    }
    struct image_rec *rec = calloc(1, sizeof *rec);
    if (!rec) {
        json_decref(config);
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    snprintf(rec->name, sizeof rec->name, "%s", norm);
    /* Synthetic id: a hash of the reference (the engine's id is not in
     * docker_image_config). */
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(norm, strlen(norm), md, &mdlen, EVP_sha256(), NULL);
    memcpy(rec->id, "sha256:", 7);
    for (unsigned k = 0; k < 32; k++)
        snprintf(rec->id + 7 + 2 * k, 3, "%02x", md[k]);
    rec->created = now_ns() / 1000000000;
    rec->size = size;
    rec->config = config;
    pthread_mutex_lock(&g.mu);
    struct image_rec *old = image_find_locked(norm);
    if (old) {
        json_decref(old->config);
        old->config = rec->config;
        old->size = rec->size;
        free(rec);
    } else {
        rec->next = g.images;
        g.images = rec;
    }
    pthread_mutex_unlock(&g.mu);
    return 0;
}

static void h_image_create(struct dreq *r, const char **p)
{
    (void)p;
    char from[512] = "", tag[128] = "", ref[700], msg[DOCKER_ERR_MAX + 64];
    if (query(r, "fromSrc", from, sizeof from) >= 0) {
        send_err(r, 501, "importing images (fromSrc) is not supported by lambdad's Docker API: "
                         "functions run images of the local engine");
        return;
    }
    if (query(r, "fromImage", from, sizeof from) <= 0) {
        send_err(r, 400, "fromImage is required");
        return;
    }
    query(r, "tag", tag, sizeof tag);
    if (tag[0] && !strchr(from, '@'))
        snprintf(ref, sizeof ref, "%s%s%s", from, strchr(tag, ':') ? "@" : ":", tag);
    else
        snprintf(ref, sizeof ref, "%s", from);
    int rc = image_resolve(ref, true, msg, sizeof msg);
    if (rc == -ENOENT) {
        send_err(r, 404, "%s", msg);
        return;
    }
    if (rc < 0) {
        send_err(r, 500, "%s", msg);
        return;
    }
    char norm[512], line[1200];
    image_norm(ref, norm, sizeof norm);
    int n = snprintf(line, sizeof line,
                     "{\"status\":\"Pulling from %s\"}\r\n{\"status\":\"Status: Image is up to date for %s\"}\r\n",
                     from, norm);
    send_raw(r, 200, "application/json", NULL, line, (size_t)n);
}

static json_t *image_summary(const struct image_rec *i)
{
    return json_pack("{s:s,s:s,s:[s],s:[],s:I,s:I,s:I,s:I,s:{},s:i}", "Id", i->id, "ParentId", "",
                     "RepoTags", i->name, "RepoDigests", "Created", (json_int_t)i->created, "Size",
                     (json_int_t)i->size, "VirtualSize", (json_int_t)i->size, "SharedSize",
                     (json_int_t)-1, "Labels", "Containers", -1);
}

static void h_images_list(struct dreq *r, const char **p)
{
    (void)p;
    json_t *a = json_array();
    pthread_mutex_lock(&g.mu);
    for (struct image_rec *i = g.images; i; i = i->next)
        json_array_append_new(a, image_summary(i));
    pthread_mutex_unlock(&g.mu);
    send_json(r, 200, a);
}

static void h_image_inspect(struct dreq *r, const char **p)
{
    char msg[DOCKER_ERR_MAX + 64];
    int rc = image_resolve(p[0], false, msg, sizeof msg);
    if (rc < 0) {
        send_err(r, rc == -ENOENT ? 404 : 500, "%s", msg);
        return;
    }
    pthread_mutex_lock(&g.mu);
    struct image_rec *i = image_find_locked(p[0]);
    json_t *j = NULL;
    if (i) {
        char created[48];
        fmt_time(i->created * 1000000000, created);
        j = json_pack("{s:s,s:[s],s:[],s:s,s:s,s:s,s:s,s:I,s:I,s:o,s:{s:s,s:[]}}", "Id", i->id,
                      "RepoTags", i->name, "RepoDigests", "Created", created, "Os", "linux",
                      "Architecture", "amd64", "DockerVersion", "", "Size", (json_int_t)i->size,
                      "VirtualSize", (json_int_t)i->size, "Config",
                      i->config ? json_incref(i->config) : json_object(), "RootFS", "Type", "layers", "Layers");
    }
    pthread_mutex_unlock(&g.mu);
    if (!j)
        send_err(r, 404, "No such image: %s", p[0]);
    else
        send_json(r, 200, j);
}

static void h_image_delete(struct dreq *r, const char **p)
{
    pthread_mutex_lock(&g.mu);
    struct image_rec **pp = &g.images, *hit = image_find_locked(p[0]);
    while (*pp && *pp != hit)
        pp = &(*pp)->next;
    if (hit)
        *pp = hit->next;
    pthread_mutex_unlock(&g.mu);
    if (!hit) {
        send_err(r, 404, "No such image: %s", p[0]);
        return;
    }
    /* Only lambdad's record goes; the engine's image stays (other
     * functions may run it). */
    json_t *a = json_pack("[{s:s}]", "Untagged", hit->name);
    json_decref(hit->config);
    free(hit);
    send_json(r, 200, a);
}

/* ----------------------------------------------------------- containers */

/* A string or an array of strings as a JSON array of strings (Docker
 * accepts both for Cmd and Entrypoint); NULL for null/absent; *bad for
 * anything else. */
static json_t *argv_of(json_t *v, bool *bad)
{
    if (!v || json_is_null(v))
        return NULL;
    if (json_is_string(v))
        return json_pack("[s]", json_string_value(v));
    if (!json_is_array(v)) {
        *bad = true;
        return NULL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (!json_is_string(e))
    {
        *bad = true;
        return NULL;
    }
    return json_deep_copy(v);
}

static bool valid_name(const char *n)
{
    if (n[0] == '/')
        n++;
    size_t len = strlen(n);
    if (len < 2 || len > 200)
        return false;
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", n[0]))
        return false;
    return strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == len;
}

/* Refuses what a Lambda function cannot do. Returns 0 or -1 after 400. */
static int check_host_config(struct dreq *r, json_t *hc)
{
    json_t *binds = json_object_get(hc, "Binds");
    if (json_is_array(binds) && json_array_size(binds)) {
        send_err(r, 400, "bind mounts are not supported: containers of lambdad's Docker API are "
                         "Lambda functions, which have no host filesystem (refused: %s)",
                 json_string_value(json_array_get(binds, 0)) ?: "?");
        return -1;
    }
    json_t *mounts = json_object_get(hc, "Mounts");
    if (json_is_array(mounts) && json_array_size(mounts)) {
        const char *type = json_string_value(json_object_get(json_array_get(mounts, 0), "Type"));
        send_err(r, 400, "%s mounts are not supported: containers of lambdad's Docker API are "
                         "Lambda functions (only /tmp is writable)",
                 type ? type : "these");
        return -1;
    }
    json_t *vf = json_object_get(hc, "VolumesFrom");
    if (json_is_array(vf) && json_array_size(vf)) {
        send_err(r, 400, "VolumesFrom is not supported: Lambda functions share no volumes");
        return -1;
    }
    json_t *pb = json_object_get(hc, "PortBindings");
    if (json_is_object(pb) && json_object_size(pb)) {
        send_err(r, 400, "port bindings are not supported: a Lambda function accepts no inbound "
                         "connections");
        return -1;
    }
    if (json_is_true(json_object_get(hc, "Privileged"))) {
        send_err(r, 400, "privileged containers are not supported by Lambda functions");
        return -1;
    }
    return 0;
}

static int err_status(const struct api_error *e)
{
    return e->type ? e->type->status : 500;
}

static void h_ctr_create(struct dreq *r, const char **p)
{
    (void)p;
    char name[256] = "", msg[DOCKER_ERR_MAX + 64], fname[VALIDATE_NAME_MAX + 1];
    bool bad = false;
    int q = query(r, "name", name, sizeof name);
    if (q == -2 || (q > 0 && !valid_name(name))) {
        send_err(r, 400, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name);
        return;
    }
    json_t *body = json_body(r, false);
    if (!body)
        return;
    json_t *hc = json_object_get(body, "HostConfig");
    const char *image = json_string_value(json_object_get(body, "Image"));
    json_t *ep = argv_of(json_object_get(body, "Entrypoint"), &bad);
    json_t *cmd = argv_of(json_object_get(body, "Cmd"), &bad);
    json_t *env = json_object_get(body, "Env");
    json_t *labels = json_object_get(body, "Labels");
    json_t *argv = NULL;
    struct ctr *c = NULL;
    if (bad || (env && !json_is_null(env) && !json_is_array(env)) ||
        (labels && !json_is_null(labels) && !json_is_object(labels)) ||
        (hc && !json_is_null(hc) && !json_is_object(hc))) {
        send_err(r, 400, "invalid container config: Cmd/Entrypoint must be strings or arrays of "
                         "strings, Env an array, Labels an object, HostConfig an object");
        goto out;
    }
    if (!image || !*image) {
        send_err(r, 400, "Config cannot be empty in order to create a container (no Image)");
        goto out;
    }
    if (json_is_object(hc) && check_host_config(r, hc))
        goto out;
    if (name[0]) {
        bool amb;
        pthread_mutex_lock(&g.mu);
        struct ctr *other = NULL;
        for (struct ctr *o = g.ctrs; o; o = o->next)
            if (!strcmp(o->name, name[0] == '/' ? name + 1 : name))
                other = o;
        (void)amb;
        char oid[65] = "";
        if (other)
            snprintf(oid, sizeof oid, "%s", other->id);
        pthread_mutex_unlock(&g.mu);
        if (oid[0]) {
            send_err(r, 409,
                     "Conflict. The container name \"/%s\" is already in use by container \"%s\". You "
                     "have to remove (or rename) that container to be able to reuse that name.",
                     name[0] == '/' ? name + 1 : name, oid);
            goto out;
        }
    }
    int rc = image_resolve(image, false, msg, sizeof msg);
    if (rc < 0) {
        send_err(r, rc == -ENOENT ? 404 : 500, "%s", msg);
        goto out;
    }
    /* Docker's rule: an Entrypoint given in the request drops the
     * image's CMD; otherwise image values fill what the request left out. */
    char norm[512];
    image_norm(image, norm, sizeof norm);
    pthread_mutex_lock(&g.mu);
    struct image_rec *ir = image_find_locked(norm);
    json_t *icfg = ir && ir->config ? json_deep_copy(ir->config) : NULL;
    pthread_mutex_unlock(&g.mu);
    argv = json_array();
    json_t *use_ep = ep ? ep : json_object_get(icfg, "Entrypoint");
    json_t *use_cmd = cmd && json_array_size(cmd) ? cmd : (ep ? NULL : json_object_get(icfg, "Cmd"));
    if (json_is_array(use_ep))
        json_array_extend(argv, use_ep);
    if (json_is_array(use_cmd))
        json_array_extend(argv, use_cmd);
    char workdir[1024];
    const char *wd = json_string_value(json_object_get(body, "WorkingDir"));
    if (!wd || !*wd)
        wd = json_string_value(json_object_get(icfg, "WorkingDir"));
    snprintf(workdir, sizeof workdir, "%s", wd ? wd : "");
    json_decref(icfg);
    if (json_array_size(argv) == 0) {
        send_err(r, 400, "no command specified");
        goto out;
    }

    c = calloc(1, sizeof *c);
    if (!c) {
        send_err(r, 500, "out of memory");
        goto out;
    }
    static atomic_ullong serials;
    c->refs = 1;
    c->serial = atomic_fetch_add(&serials, 1);
    rand_hex(c->id, 32);
    if (name[0])
        snprintf(c->name, sizeof c->name, "%s", name[0] == '/' ? name + 1 : name);
    else
        snprintf(c->name, sizeof c->name, "%s-%.12s", g.o.prefix, c->id);
    snprintf(fname, sizeof fname, "%s-%.12s", g.o.prefix, c->id);
    snprintf(c->fn, sizeof c->fn, "%s", fname);
    snprintf(c->fn_key, sizeof c->fn_key, "%s/%s/%s", g.o.region, g.o.account, fname);
    snprintf(c->image, sizeof c->image, "%s", image);
    c->tty = json_is_true(json_object_get(body, "Tty"));
    c->auto_remove = json_is_true(json_object_get(hc, "AutoRemove"));
    json_int_t mem = json_integer_value(json_object_get(hc, "Memory"));
    c->memory_bytes = mem;
    c->argv = argv;
    argv = NULL;
    c->created_ns = now_ns();
    c->state = ST_CREATED;

    /* The function: same validation and registry as CreateFunction. */
    int mem_mb = mem > 0 ? (int)((mem + (1 << 20) - 1) >> 20) : g.o.memory_mb;
    char role[128];
    snprintf(role, sizeof role, "arn:aws:iam::%s:role/lambdad-docker-api", g.o.account);
    json_t *vars = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(env, i, e)
    {
        const char *kv = json_string_value(e);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq || eq == kv)
            continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv < 255 ? eq - kv : 255), kv);
        json_object_set_new(vars, key, json_string(eq + 1));
    }
    json_t *iconf = json_pack("{s:[s,s],s:O}", "EntryPoint", "python3", RUNNER_PATH, "Command", c->argv);
    if (workdir[0])
        json_object_set_new(iconf, "WorkingDirectory", json_string(workdir));
    char desc[300];
    snprintf(desc, sizeof desc, "Docker container /%s (lambdad Docker API)", c->name);
    json_t *fbody = json_pack("{s:s,s:s,s:{s:s},s:s,s:i,s:i,s:o,s:s,s:{s:s,s:s}}", "FunctionName", fname,
                              "PackageType", "Image", "Code", "ImageUri", image, "Role", role,
                              "MemorySize", mem_mb, "Timeout", g.o.timeout_s, "ImageConfig", iconf,
                              "Description", desc, "Tags", "lambdad:docker-container", c->id,
                              "lambdad:docker-name", c->name);
    if (json_object_size(vars))
        json_object_set_new(fbody, "Environment", json_pack("{s:o}", "Variables", vars));
    else
        json_decref(vars);
    struct api_error aerr;
    char ver[24];
    rc = fbody ? api_create_function_doc(fbody, g.o.region, g.o.account, NULL, ver, &aerr) : -1;
    json_decref(fbody);
    if (rc) {
        if (!fbody)
            send_err(r, 500, "out of memory");
        else
            send_err(r, err_status(&aerr) == 500 ? 500 : 400, "CreateFunction %s: %s", fname, aerr.msg);
        ctr_unref(c);
        c = NULL;
        goto out;
    }
    c->config = json_incref(body);
    pthread_mutex_lock(&g.mu);
    /* A concurrent create may have taken the name meanwhile. */
    bool taken = false;
    for (struct ctr *o = g.ctrs; o; o = o->next)
        if (!strcmp(o->name, c->name))
            taken = true;
    if (!taken) {
        c->next = g.ctrs;
        g.ctrs = c;
        c->refs++;
    }
    pthread_mutex_unlock(&g.mu);
    if (taken) {
        struct fn_name n = {0};
        snprintf(n.region, sizeof n.region, "%s", g.o.region);
        snprintf(n.account, sizeof n.account, "%s", g.o.account);
        snprintf(n.name, sizeof n.name, "%s", fname);
        registry_delete(&n, &aerr);
        send_err(r, 409, "Conflict. The container name \"/%s\" is already in use.", c->name);
        goto out;
    }
    LOG_INFO("docker api: container %.12s created as function %s", c->id, fname);
    send_json(r, 201, json_pack("{s:s,s:[]}", "Id", c->id, "Warnings"));
out:
    if (c)
        ctr_unref(c);
    json_decref(argv);
    json_decref(ep);
    json_decref(cmd);
    json_decref(body);
}

static const char *state_name(const struct ctr *c)
{
    if (c->removing)
        return "removing";
    switch (c->state) {
    case ST_CREATED: return "created";
    case ST_RUNNING: return "running";
    default: return "exited";
    }
}

static void human_duration(int64_t ns, char *out, size_t len)
{
    int64_t s = ns / 1000000000;
    if (s < 1)
        snprintf(out, len, "Less than a second");
    else if (s < 60)
        snprintf(out, len, "%" PRId64 " second%s", s, s == 1 ? "" : "s");
    else if (s < 3600)
        snprintf(out, len, "%" PRId64 " minute%s", s / 60, s / 60 == 1 ? "" : "s");
    else
        snprintf(out, len, "%" PRId64 " hour%s", s / 3600, s / 3600 == 1 ? "" : "s");
}

static void status_text(const struct ctr *c, char *out, size_t len)
{
    char d[64];
    int64_t now = now_ns();
    if (c->state == ST_RUNNING) {
        human_duration(now - c->started_ns, d, sizeof d);
        snprintf(out, len, "Up %s", d);
    } else if (c->state == ST_EXITED) {
        human_duration(now - c->finished_ns, d, sizeof d);
        snprintf(out, len, "Exited (%d) %s ago", c->exit_code, d);
    } else {
        snprintf(out, len, "Created");
    }
}

static char *command_text(const struct ctr *c)
{
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(c->argv, i, e) n += strlen(json_string_value(e)) + 1;
    char *s = malloc(n + 1), *o = s;
    if (!s)
        return NULL;
    *s = 0;
    json_array_foreach(c->argv, i, e)
    {
        o += sprintf(o, "%s%s", i ? " " : "", json_string_value(e));
    }
    return s;
}

static json_t *labels_of(const struct ctr *c)
{
    json_t *l = json_object_get(c->config, "Labels");
    return json_is_object(l) ? json_deep_copy(l) : json_object();
}

/* Caller holds g.mu. */
static json_t *ctr_summary(const struct ctr *c)
{
    char st[128], nm[260];
    char *cmd = command_text(c);
    status_text(c, st, sizeof st);
    snprintf(nm, sizeof nm, "/%s", c->name);
    json_t *j = json_pack("{s:s,s:[s],s:s,s:s,s:s,s:I,s:[],s:o,s:s,s:s,s:{s:s},s:{s:{}},s:[]}",
                          "Id", c->id, "Names", nm, "Image", c->image, "ImageID", "", "Command",
                          cmd ? cmd : "", "Created", (json_int_t)(c->created_ns / 1000000000),
                          "Ports", "Labels", labels_of(c), "State", state_name(c), "Status", st,
                          "HostConfig", "NetworkMode", "default", "NetworkSettings", "Networks",
                          "Mounts");
    free(cmd);
    return j;
}

/* Docker filters: {"k":["v",...]} or the older {"k":{"v":true}}. Calls
 * match for each value of key k; true when k is absent or any matched. */
static bool filter_any(json_t *filters, const char *k, bool (*match)(const struct ctr *, const char *),
                       const struct ctr *c)
{
    json_t *v = json_object_get(filters, k);
    if (!v)
        return true;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        if (!json_array_size(v))
            return true;
        json_array_foreach(v, i, e) if (json_is_string(e) && match(c, json_string_value(e))) return true;
        return false;
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *e;
        if (!json_object_size(v))
            return true;
        json_object_foreach(v, key, e) if (match(c, key)) return true;
    }
    return false;
}

static bool m_label(const struct ctr *c, const char *want)
{
    json_t *l = json_object_get(c->config, "Labels");
    const char *eq = strchr(want, '=');
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq ? eq - want : (long)strlen(want)), want);
    json_t *v = json_object_get(l, key);
    if (!json_is_string(v))
        return false;
    return !eq || !strcmp(json_string_value(v), eq + 1);
}

static bool m_name(const struct ctr *c, const char *want)
{
    return strstr(c->name, want[0] == '/' ? want + 1 : want) != NULL;
}

static bool m_status(const struct ctr *c, const char *want)
{
    return !strcmp(state_name(c), want);
}

static bool m_id(const struct ctr *c, const char *want)
{
    return !strncmp(c->id, want, strlen(want));
}

static bool m_exited(const struct ctr *c, const char *want)
{
    return c->state == ST_EXITED && atoi(want) == c->exit_code;
}

static bool m_ancestor(const struct ctr *c, const char *want)
{
    char a[512], b[512];
    image_norm(c->image, a, sizeof a);
    image_norm(want, b, sizeof b);
    return !strcmp(a, b);
}

static void h_ctr_list(struct dreq *r, const char **p)
{
    (void)p;
    char fbuf[4096], lim[16];
    bool all = query_bool(r, "all");
    int limit = query(r, "limit", lim, sizeof lim) > 0 ? atoi(lim) : -1;
    json_t *filters = NULL;
    int fl = query(r, "filters", fbuf, sizeof fbuf);
    if (fl == -2) {
        send_err(r, 400, "filters too long");
        return;
    }
    if (fl > 0) {
        filters = json_loads(fbuf, 0, NULL);
        if (!json_is_object(filters)) {
            json_decref(filters);
            send_err(r, 400, "invalid filter: %s", fbuf);
            return;
        }
        static const char *const known[] = {"label", "name", "status", "id", "exited", "ancestor", NULL};
        const char *k;
        json_t *v;
        json_object_foreach(filters, k, v)
        {
            bool ok = false;
            for (int i = 0; known[i]; i++)
                ok |= !strcmp(k, known[i]);
            if (!ok) {
                send_err(r, 400, "invalid filter '%s'", k);
                json_decref(filters);
                return;
            }
        }
        if (json_object_get(filters, "status") || json_object_get(filters, "exited"))
            all = true;
    }
    json_t *a = json_array();
    pthread_mutex_lock(&g.mu);
    for (struct ctr *c = g.ctrs; c; c = c->next) {
        if (!all && c->state != ST_RUNNING)
            continue;
        if (!filter_any(filters, "label", m_label, c) || !filter_any(filters, "name", m_name, c) ||
            !filter_any(filters, "status", m_status, c) || !filter_any(filters, "id", m_id, c) ||
            !filter_any(filters, "exited", m_exited, c) ||
            !filter_any(filters, "ancestor", m_ancestor, c))
            continue;
        if (limit >= 0 && (int)json_array_size(a) >= limit)
            break;
        json_array_append_new(a, ctr_summary(c));
    }
    pthread_mutex_unlock(&g.mu);
    json_decref(filters);
    send_json(r, 200, a);
}

static void h_ctr_inspect(struct dreq *r, const char **p)
{
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    char created[48], started[48], finished[48], nm[260], arn[300];
    json_t *env = json_object_get(c->config, "Env");
    json_t *hc = json_object_get(c->config, "HostConfig");
    snprintf(arn, sizeof arn, "arn:aws:lambda:%s:%s:function:%s", g.o.region, g.o.account, c->fn);
    pthread_mutex_lock(&g.mu);
    fmt_time(c->created_ns, created);
    fmt_time(c->started_ns, started);
    fmt_time(c->finished_ns, finished);
    snprintf(nm, sizeof nm, "/%s", c->name);
    json_t *args = json_deep_copy(c->argv);
    json_t *path = json_incref(json_array_get(args, 0));
    json_array_remove(args, 0);
    json_t *state = json_pack("{s:s,s:b,s:b,s:b,s:b,s:b,s:b,s:i,s:i,s:s,s:s,s:s}", "Status",
                              state_name(c), "Running", c->state == ST_RUNNING, "Paused", 0,
                              "Restarting", 0, "OOMKilled", 0, "Dead", 0, "Removing", c->removing,
                              "Pid", 0, "ExitCode", c->exit_code, "Error", c->error, "StartedAt",
                              started, "FinishedAt", finished);
    char hostname[13];
    snprintf(hostname, sizeof hostname, "%.12s", c->id);
    json_t *cmdj = json_object_get(c->config, "Cmd"), *epj = json_object_get(c->config, "Entrypoint");
    json_t *cfg = json_pack("{s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:b,s:b,s:o,s:o,s:s,s:o,s:o,s:s,s:o,s:s}",
                            "Hostname", hostname, "Domainname", "", "User", "", "AttachStdin", 0,
                            "AttachStdout", 1, "AttachStderr", 1, "Tty", c->tty, "OpenStdin", 0,
                            "StdinOnce", 0, "Env",
                            json_is_array(env) ? json_incref(env) : json_array(), "Cmd",
                            json_incref(cmdj ? cmdj : json_null()), "Image", c->image, "Entrypoint",
                            json_incref(epj ? epj : json_null()), "Labels", labels_of(c), "WorkingDir",
                            json_string_value(json_object_get(c->config, "WorkingDir")) ?: "",
                            "Lambda", json_pack("{s:s,s:s}", "FunctionName", c->fn, "FunctionArn", arn),
                            "StopSignal", "SIGTERM");
    json_t *hcj = json_pack("{s:I,s:b,s:s,s:[],s:{s:s},s:{s:s,s:i}}", "Memory",
                            (json_int_t)c->memory_bytes, "AutoRemove", c->auto_remove, "NetworkMode",
                            json_string_value(json_object_get(hc, "NetworkMode")) ?: "default",
                            /* json-file: clients (docker-py's run) read logs only from
                             * the drivers they know; ours serve the same API. */
                            "Binds", "LogConfig", "Type", "json-file", "RestartPolicy", "Name", "no",
                            "MaximumRetryCount", 0);
    json_t *j = json_pack("{s:s,s:s,s:o,s:o,s:o,s:s,s:s,s:i,s:s,s:s,s:o,s:o,s:[],s:{s:{},s:{}}}",
                          "Id", c->id, "Created", created, "Path", path ?: json_string(""), "Args",
                          args, "State", state, "Image", c->image, "Name", nm, "RestartCount",
                          c->runs > 0 ? (int)c->runs - 1 : 0, "Driver", "lambda", "Platform",
                          "linux", "Config", cfg, "HostConfig", hcj, "Mounts", "NetworkSettings",
                          "Networks", "Ports");
    pthread_mutex_unlock(&g.mu);
    ctr_unref(c);
    send_json(r, 200, j);
}

/* ---------------------------------------------------------------- runs */

/* Invocation finished (executor thread: must not block). */
static void on_run_done(struct invocation *inv)
{
    struct ctr *c = inv->user;
    int code = -1;
    char error[512] = "";
    if (inv->outcome == INV_OK && inv->result) {
        json_t *j = json_loadb(inv->result, inv->result_len, 0, NULL);
        json_t *sc = json_object_get(j, "StatusCode");
        if (json_is_integer(sc))
            code = (int)json_integer_value(sc);
        else
            snprintf(error, sizeof error, "the command runner answered without a StatusCode");
        json_decref(j);
    } else if (inv->outcome == INV_FUNCTION_ERROR) {
        json_t *j = inv->result ? json_loadb(inv->result, inv->result_len, 0, NULL) : NULL;
        const char *m = json_string_value(json_object_get(j, "errorMessage"));
        snprintf(error, sizeof error, "%s%s%s", inv->error_type[0] ? inv->error_type : "error",
                 m ? ": " : "", m ? m : "");
        json_decref(j);
    } else {
        snprintf(error, sizeof error, "%s",
                 inv->error_message ? inv->error_message : "the invocation failed");
    }
    pthread_mutex_lock(&g.mu);
    if (c->killed)
        code = 137;
    else if (code < 0)
        /* Timed out (the environment was killed), or the runner crashed or
         * never started: 137 when killed, 125 like the engine when the
         * container could not run. */
        code = !strncmp(error, "Sandbox.Timedout", 16) ? 137 : (inv->outcome == INV_SERVICE_ERROR ? 125 : 1);
    c->exit_code = code;
    snprintf(c->error, sizeof c->error, "%s", error);
    c->state = ST_EXITED;
    c->finished_ns = now_ns();
    c->runs++;
    c->token[0] = 0;
    struct fn_spec *spec = c->spec;
    c->spec = NULL;
    char id[13];
    snprintf(id, sizeof id, "%.12s", c->id);
    pthread_cond_broadcast(&g.cv);
    ctr_unref_locked(c); /* c may be gone from here on */
    pthread_mutex_unlock(&g.mu);
    LOG_INFO("docker api: container %s exited with %d%s%s%s", id, code,
             error[0] ? " (" : "", error, error[0] ? ")" : "");
    fnspec_unref(spec);
    invocation_free(inv);
}

/* Starts a run of c. Returns 0, 1 when already running, or -1 with msg. */
static int run_start(struct ctr *c, char *msg, size_t msglen)
{
    char token[33], path[160];
    rand_hex(token, 16);
    pthread_mutex_lock(&g.mu);
    if (c->state == ST_RUNNING || c->removing || c->removed) {
        int rc = c->state == ST_RUNNING ? 1 : -1;
        if (rc < 0)
            snprintf(msg, msglen, "container %s is being removed", c->id);
        pthread_mutex_unlock(&g.mu);
        return rc;
    }
    c->state = ST_RUNNING;
    c->started_ns = now_ns();
    c->finished_ns = 0;
    c->exit_code = 0;
    c->error[0] = 0;
    c->killed = false;
    memcpy(c->token, token, sizeof token);
    c->refs++; /* the invocation's */
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);

    rcu_read_lock();
    struct fn_record *rec = registry_lookup(g.o.region, g.o.account, c->fn);
    struct fn_spec *spec = rec ? registry_spec_ref(rec) : NULL;
    rcu_read_unlock();
    struct invocation *inv = spec ? invocation_new(spec) : NULL;
    pthread_mutex_lock(&g.mu);
    fnspec_unref(c->spec);
    c->spec = inv ? spec : NULL; /* our reference: the run's log group */
    pthread_mutex_unlock(&g.mu);
    if (!inv)
        fnspec_unref(spec);
    json_t *ev = NULL;
    if (inv) {
        snprintf(path, sizeof path, "/output/%s/%s", c->id, token);
        ev = json_pack("{s:b,s:{s:i,s:s}}", "tty", c->tty, "output", "port", atomic_load(&g.ingest_port), "path", path);
        inv->payload = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        json_decref(ev);
    }
    if (!inv || !inv->payload) {
        snprintf(msg, msglen, rec ? "out of memory" : "the function %s of this container no longer exists",
                 c->fn);
        invocation_free(inv);
        pthread_mutex_lock(&g.mu);
        c->state = ST_EXITED;
        c->exit_code = 125;
        snprintf(c->error, sizeof c->error, "%s", msg);
        c->finished_ns = now_ns();
        c->runs++;
        pthread_cond_broadcast(&g.cv);
        ctr_unref_locked(c);
        pthread_mutex_unlock(&g.mu);
        return -1;
    }
    inv->payload_len = strlen(inv->payload);
    inv->on_done = on_run_done;
    inv->user = c;
    pool_submit(inv);
    return 0;
}

static void h_ctr_start(struct dreq *r, const char **p)
{
    char msg[512];
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    int rc = run_start(c, msg, sizeof msg);
    if (rc == 1)
        send_empty(r, 304);
    else if (rc < 0)
        send_err(r, 500, "%s", msg);
    else
        send_empty(r, 204);
    ctr_unref(c);
}

/* Waits on g.cv until the deadline (0: none) or shutdown. Caller holds g.mu. */
static bool cv_wait_until(int64_t deadline_ns)
{
    struct timespec ts;
    int64_t until = deadline_ns ? deadline_ns : now_ns() + 1000000000;
    if (!deadline_ns || until > now_ns() + 1000000000)
        until = now_ns() + 1000000000; /* wake up to notice shutdown */
    ts.tv_sec = (time_t)(until / 1000000000);
    ts.tv_nsec = (long)(until % 1000000000);
    pthread_cond_timedwait(&g.cv, &g.mu, &ts);
    return !atomic_load(&g.stopping) && (!deadline_ns || now_ns() < deadline_ns);
}

static void h_ctr_wait(struct dreq *r, const char **p)
{
    char cond[32] = "not-running";
    query(r, "condition", cond, sizeof cond);
    if (strcmp(cond, "not-running") && strcmp(cond, "next-exit") && strcmp(cond, "removed")) {
        send_err(r, 400, "invalid condition: \"%s\"", cond);
        return;
    }
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    /* The engine answers the headers at once and the body at the exit:
     * the CLI starts the container only after wait's headers arrived. */
    stream_begin(r, 200, "application/json", NULL);
    pthread_mutex_lock(&g.mu);
    unsigned runs0 = c->runs;
    for (;;) {
        bool done = !strcmp(cond, "removed")     ? c->removed
                    : !strcmp(cond, "next-exit") ? c->runs > runs0
                                                 : c->state != ST_RUNNING;
        if (done || !cv_wait_until(0))
            break;
    }
    int code = c->exit_code;
    bool stopping = atomic_load(&g.stopping);
    ctr_unref_locked(c);
    pthread_mutex_unlock(&g.mu);
    /* Error is for a failed wait (the CLI exits 125 on it), not for how
     * the run ended: that is in inspect's State.Error. */
    json_t *j = json_pack("{s:i}", "StatusCode", stopping ? 137 : code);
    json_object_set_new(j, "Error", stopping ? json_pack("{s:s}", "Message", "lambdad is shutting down")
                                             : json_null());
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text) {
        mg_write(r->conn, text, strlen(text));
        mg_write(r->conn, "\n", 1);
        free(text);
    }
}

/* Output selection of logs/attach. */
struct outsel {
    bool out, err, ts, raw;
    int64_t since_ns, until_ns;
};

/* Writes lines [*seq, end) of c that pass sel to the connection; advances
 * *seq. Copies under the lock, writes outside. Returns -1 when the client
 * went away. */
static int pump_lines(struct dreq *r, struct ctr *c, uint64_t *seq, const struct outsel *sel)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    pthread_mutex_lock(&g.mu);
    if (*seq < c->l_first_seq)
        *seq = c->l_first_seq; /* dropped past the cap */
    uint64_t end = c->l_first_seq + c->l_count;
    for (; *seq < end && len < (1u << 20); (*seq)++) {
        const struct line *l = c->lines[c->l_start + (*seq - c->l_first_seq)];
        if ((l->stream == 1 && !sel->out) || (l->stream == 2 && !sel->err))
            continue;
        if ((sel->since_ns && l->ts_ns < sel->since_ns) || (sel->until_ns && l->ts_ns > sel->until_ns))
            continue;
        char tsb[48] = "";
        size_t tl = 0;
        if (sel->ts) {
            fmt_time(l->ts_ns, tsb);
            tl = strlen(tsb);
            tsb[tl++] = ' ';
        }
        size_t need = len + 8 + tl + l->len;
        if (need > cap) {
            size_t ncap = need * 2 > 65536 ? need * 2 : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb)
                break;
            buf = nb;
            cap = ncap;
        }
        if (!sel->raw) {
            uint32_t n = htonl((uint32_t)(tl + l->len));
            buf[len] = (char)l->stream;
            buf[len + 1] = buf[len + 2] = buf[len + 3] = 0;
            memcpy(buf + len + 4, &n, 4);
            len += 8;
        }
        memcpy(buf + len, tsb, tl);
        memcpy(buf + len + tl, l->data, l->len);
        len += tl + l->len;
    }
    pthread_mutex_unlock(&g.mu);
    int rc = 0;
    if (len && mg_write(r->conn, buf, len) <= 0)
        rc = -1;
    free(buf);
    return rc;
}

static int64_t parse_ts(const char *s)
{
    char *end;
    if (!*s)
        return 0;
    double v = strtod(s, &end);
    if (end == s || v <= 0)
        return 0;
    return (int64_t)(v * 1e9);
}

static void h_ctr_logs(struct dreq *r, const char **p)
{
    char v[64];
    struct outsel sel = {.out = query_bool(r, "stdout"), .err = query_bool(r, "stderr"),
                         .ts = query_bool(r, "timestamps")};
    bool follow = query_bool(r, "follow");
    long tail = -1;
    if (query(r, "since", v, sizeof v) > 0)
        sel.since_ns = parse_ts(v);
    if (query(r, "until", v, sizeof v) > 0)
        sel.until_ns = parse_ts(v);
    if (query(r, "tail", v, sizeof v) > 0 && strcmp(v, "all") != 0) {
        char *end;
        tail = strtol(v, &end, 10);
        if (*end || tail < 0)
            tail = -1;
    }
    if (!sel.out && !sel.err) {
        send_err(r, 400, "Bad parameters: you must choose at least one stream");
        return;
    }
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    sel.raw = c->tty;
    uint64_t seq;
    pthread_mutex_lock(&g.mu);
    seq = c->l_first_seq;
    if (tail >= 0) {
        /* The last `tail` lines of the selected streams. */
        uint64_t end = c->l_first_seq + c->l_count, s = end;
        long n = 0;
        while (s > c->l_first_seq && n < tail) {
            const struct line *l = c->lines[c->l_start + (s - 1 - c->l_first_seq)];
            if ((l->stream == 1 && sel.out) || (l->stream == 2 && sel.err))
                n++;
            s--;
        }
        seq = s;
    }
    pthread_mutex_unlock(&g.mu);
    stream_begin(r, 200,
                 c->tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream",
                 NULL);
    for (;;) {
        if (pump_lines(r, c, &seq, &sel) < 0)
            break;
        if (!follow)
            break;
        pthread_mutex_lock(&g.mu);
        bool more = seq < c->l_first_seq + c->l_count;
        bool live = c->state == ST_RUNNING && !c->removed;
        if (!more && live)
            cv_wait_until(0);
        more = seq < c->l_first_seq + c->l_count;
        live = c->state == ST_RUNNING && !c->removed;
        pthread_mutex_unlock(&g.mu);
        if ((!more && !live) || atomic_load(&g.stopping)) {
            pump_lines(r, c, &seq, &sel);
            break;
        }
    }
    ctr_unref(c);
}

static void h_ctr_attach(struct dreq *r, const char **p)
{
    struct outsel sel = {.out = query_bool(r, "stdout"), .err = query_bool(r, "stderr")};
    bool logs = query_bool(r, "logs"), stream = query_bool(r, "stream");
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    sel.raw = c->tty;
    pthread_mutex_lock(&g.mu);
    uint64_t seq = logs ? c->l_first_seq : c->l_first_seq + c->l_count;
    /* Running: until this run ends; created or exited: until the next
     * run (docker start -a attaches before it starts) ends. */
    unsigned runs0 = c->runs;
    pthread_mutex_unlock(&g.mu);
    const char *up = mg_get_header(r->conn, "Upgrade");
    stream_begin(r, up ? 101 : 200,
                 c->tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream",
                 up ? "Upgrade: tcp\r\n" : NULL);
    for (;;) {
        if (pump_lines(r, c, &seq, &sel) < 0 || !stream)
            break;
        pthread_mutex_lock(&g.mu);
        bool more = seq < c->l_first_seq + c->l_count;
        /* Ends when the run that was going (or the next one) is over. */
        bool over = c->removed || c->runs > runs0;
        if (!more && !over)
            cv_wait_until(0);
        more = seq < c->l_first_seq + c->l_count;
        over = c->removed || c->runs > runs0;
        pthread_mutex_unlock(&g.mu);
        if ((!more && over) || atomic_load(&g.stopping)) {
            pump_lines(r, c, &seq, &sel);
            break;
        }
    }
    ctr_unref(c);
}

/* Signal names and numbers Docker accepts ("SIGTERM", "TERM", "15"). */
static int signal_parse(const char *s, char out[16])
{
    static const struct {
        const char *name;
        int num;
    } sigs[] = {{"HUP", 1},  {"INT", 2},   {"QUIT", 3},  {"ILL", 4},   {"TRAP", 5},  {"ABRT", 6},
                {"BUS", 7},  {"FPE", 8},   {"KILL", 9},  {"USR1", 10}, {"SEGV", 11}, {"USR2", 12},
                {"PIPE", 13}, {"ALRM", 14}, {"TERM", 15}, {"CHLD", 17}, {"CONT", 18}, {"STOP", 19},
                {"TSTP", 20}, {"WINCH", 28}};
    const char *n = !strncasecmp(s, "SIG", 3) ? s + 3 : s;
    char *end;
    long num = strtol(s, &end, 10);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if ((*end == 0 && *s && num == sigs[i].num) || !strcasecmp(n, sigs[i].name)) {
            snprintf(out, 16, "SIG%s", sigs[i].name);
            return sigs[i].num;
        }
    return -1;
}

/* Sends sig to c's environment; SIGKILL marks the run as killed (137). */
static int ctr_signal(struct ctr *c, const char *sig, int num, char *msg)
{
    if (num == 9) {
        pthread_mutex_lock(&g.mu);
        if (c->state == ST_RUNNING)
            c->killed = true;
        pthread_mutex_unlock(&g.mu);
    }
    int rc = container_signal_function(c->fn_key, sig, msg);
    return rc < 0 ? rc : 0;
}

/* Waits until c is not running, at most timeout_ms. Returns whether it
 * stopped. */
static bool wait_stopped(struct ctr *c, int64_t timeout_ms)
{
    int64_t deadline = now_ns() + timeout_ms * 1000000;
    pthread_mutex_lock(&g.mu);
    while (c->state == ST_RUNNING && cv_wait_until(deadline))
        ;
    bool stopped = c->state != ST_RUNNING;
    pthread_mutex_unlock(&g.mu);
    return stopped;
}

/* Docker's stop: the stop signal, then SIGKILL after the grace period. */
static int ctr_stop(struct ctr *c, int grace_s, const char *stopsig, char *msg)
{
    char sig[16] = "SIGTERM";
    int num = stopsig ? signal_parse(stopsig, sig) : 15;
    if (num < 0)
        num = 15, snprintf(sig, sizeof sig, "SIGTERM");
    int rc = ctr_signal(c, sig, num, msg);
    if (rc < 0)
        return rc;
    if (grace_s > 0 && wait_stopped(c, (int64_t)grace_s * 1000))
        return 0;
    rc = ctr_signal(c, "SIGKILL", 9, msg);
    if (rc < 0)
        return rc;
    if (!wait_stopped(c, 60000)) {
        snprintf(msg, DOCKER_ERR_MAX, "container %.12s did not stop within 60 s of SIGKILL", c->id);
        return -ETIMEDOUT;
    }
    return 0;
}

static void h_ctr_stop(struct dreq *r, const char **p)
{
    char v[32], sigq[32], msg[DOCKER_ERR_MAX];
    int grace = 10;
    if (query(r, "t", v, sizeof v) > 0 || query(r, "timeout", v, sizeof v) > 0)
        grace = atoi(v);
    if (grace < 0)
        grace = 0;
    bool has_sig = query(r, "signal", sigq, sizeof sigq) > 0;
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    pthread_mutex_lock(&g.mu);
    bool running = c->state == ST_RUNNING;
    pthread_mutex_unlock(&g.mu);
    if (!running) {
        send_empty(r, 304);
    } else if (ctr_stop(c, grace, has_sig ? sigq : NULL, msg) < 0) {
        send_err(r, 500, "cannot stop container: %s: %s", p[0], msg);
    } else {
        send_empty(r, 204);
    }
    ctr_unref(c);
}

static void h_ctr_kill(struct dreq *r, const char **p)
{
    char v[32] = "SIGKILL", sig[16], msg[DOCKER_ERR_MAX];
    query(r, "signal", v, sizeof v);
    int num = signal_parse(v, sig);
    if (num < 0) {
        send_err(r, 400, "Invalid signal: %s", v);
        return;
    }
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    pthread_mutex_lock(&g.mu);
    bool running = c->state == ST_RUNNING;
    pthread_mutex_unlock(&g.mu);
    if (!running)
        send_err(r, 409, "Cannot kill container: %s: Container %s is not running", p[0], c->id);
    else if (ctr_signal(c, sig, num, msg) < 0)
        send_err(r, 500, "Cannot kill container: %s: %s", p[0], msg);
    else
        send_empty(r, 204);
    ctr_unref(c);
}

/* Deletes c's function and forgets c. Any RCU-registered thread. */
static int ctr_remove(struct ctr *c, char *msg, size_t msglen)
{
    struct fn_name n = {0};
    struct api_error aerr;
    snprintf(n.region, sizeof n.region, "%s", g.o.region);
    snprintf(n.account, sizeof n.account, "%s", g.o.account);
    snprintf(n.name, sizeof n.name, "%s", c->fn);
    int rc = registry_delete(&n, &aerr);
    if (rc && err_status(&aerr) != 404) {
        snprintf(msg, msglen, "DeleteFunction %s: %.400s", c->fn, aerr.msg);
        pthread_mutex_lock(&g.mu);
        c->removing = false;
        pthread_mutex_unlock(&g.mu);
        return -1;
    }
    pthread_mutex_lock(&g.mu);
    struct ctr **pp = &g.ctrs;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = c->next;
        ctr_unref_locked(c); /* the list's reference */
    }
    c->removed = true;
    c->removing = false;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    LOG_INFO("docker api: container %.12s removed (function %s deleted)", c->id, c->fn);
    return 0;
}

static void h_ctr_delete(struct dreq *r, const char **p)
{
    char msg[DOCKER_ERR_MAX + 128];
    bool force = query_bool(r, "force");
    if (query_bool(r, "link")) {
        send_err(r, 400, "links are not supported");
        return;
    }
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    pthread_mutex_lock(&g.mu);
    bool running = c->state == ST_RUNNING, busy = c->removing || c->removed;
    if (!busy && (!running || force))
        c->removing = true;
    pthread_mutex_unlock(&g.mu);
    if (busy) {
        send_err(r, 409, "removal of container %s is already in progress", p[0]);
    } else if (running && !force) {
        send_err(r, 409,
                 "You cannot remove a running container %s. Stop the container before attempting "
                 "removal or force remove",
                 c->id);
    } else if (running && ctr_stop(c, 0, "SIGKILL", msg) < 0) {
        pthread_mutex_lock(&g.mu);
        c->removing = false;
        pthread_mutex_unlock(&g.mu);
        send_err(r, 500, "Could not kill running container %s, cannot remove - %s", c->id, msg);
    } else if (ctr_remove(c, msg, sizeof msg) < 0) {
        send_err(r, 500, "%s", msg);
    } else {
        send_empty(r, 204);
    }
    ctr_unref(c);
}

static void h_ctr_restart(struct dreq *r, const char **p)
{
    char v[32], msg[DOCKER_ERR_MAX];
    int grace = query(r, "t", v, sizeof v) > 0 ? atoi(v) : 10;
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    pthread_mutex_lock(&g.mu);
    bool running = c->state == ST_RUNNING;
    pthread_mutex_unlock(&g.mu);
    if (running && ctr_stop(c, grace < 0 ? 0 : grace, NULL, msg) < 0)
        send_err(r, 500, "Cannot restart container %s: %s", p[0], msg);
    else if (run_start(c, msg, sizeof msg) < 0)
        send_err(r, 500, "Cannot restart container %s: %s", p[0], msg);
    else
        send_empty(r, 204);
    ctr_unref(c);
}

/* Keeps the function's lambdad:docker-name tag in step (a restart
 * restores the name from it). */
static int mutate_name_tag(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    (void)err;
    json_t *tags = json_object_get(doc, "tags");
    if (!json_is_object(tags)) {
        tags = json_object();
        json_object_set_new(doc, "tags", tags);
    }
    json_object_set_new(tags, "lambdad:docker-name", json_string(ud));
    return 0;
}

static void h_ctr_rename(struct dreq *r, const char **p)
{
    char name[256];
    if (query(r, "name", name, sizeof name) <= 0 || !valid_name(name)) {
        send_err(r, 400, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name);
        return;
    }
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    const char *nm = name[0] == '/' ? name + 1 : name;
    pthread_mutex_lock(&g.mu);
    bool taken = false;
    for (struct ctr *o = g.ctrs; o; o = o->next)
        taken |= o != c && !strcmp(o->name, nm);
    if (!taken)
        snprintf(c->name, sizeof c->name, "%s", nm);
    pthread_mutex_unlock(&g.mu);
    if (taken) {
        send_err(r, 409, "Conflict. The container name \"/%s\" is already in use.", nm);
    } else {
        struct fn_name n = {0};
        struct api_error aerr;
        snprintf(n.region, sizeof n.region, "%s", g.o.region);
        snprintf(n.account, sizeof n.account, "%s", g.o.account);
        snprintf(n.name, sizeof n.name, "%s", c->fn);
        if (registry_update(&n, mutate_name_tag, (void *)nm, NULL, 0, NULL, &aerr))
            LOG_WARN("docker api: rename of %.12s: tag of %s not updated: %s", c->id, c->fn, aerr.msg);
        send_empty(r, 204);
    }
    ctr_unref(c);
}

static void h_ctr_resize(struct dreq *r, const char **p)
{
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    ctr_unref(c);
    send_empty(r, 200); /* the command has no terminal to resize */
}

static void h_ctr_top(struct dreq *r, const char **p)
{
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    pthread_mutex_lock(&g.mu);
    bool running = c->state == ST_RUNNING;
    char *cmd = running ? command_text(c) : NULL;
    pthread_mutex_unlock(&g.mu);
    if (!running)
        send_err(r, 409, "Container %s is not running", c->id);
    else
        send_json(r, 200, json_pack("{s:[s,s],s:[[s,s]]}", "Titles", "FUNCTION", "CMD", "Processes",
                                    c->fn, cmd ? cmd : ""));
    free(cmd);
    ctr_unref(c);
}

static void h_ctr_stats(struct dreq *r, const char **p)
{
    struct ctr *c = ctr_get(r, p[0]);
    if (!c)
        return;
    char read[48], name[256];
    fmt_time(now_ns(), read);
    pthread_mutex_lock(&g.mu); /* rename may change it */
    snprintf(name, sizeof name, "%s", c->name);
    pthread_mutex_unlock(&g.mu);
    json_t *j = json_pack("{s:s,s:s,s:s,s:{s:I,s:I},s:{s:{s:I},s:I,s:I},s:{s:{s:I},s:I,s:I},s:{s:I}}",
                          "read", read, "id", c->id, "name", name, "memory_stats", "usage",
                          (json_int_t)0, "limit", (json_int_t)c->memory_bytes, "cpu_stats",
                          "cpu_usage", "total_usage", (json_int_t)0, "system_cpu_usage",
                          (json_int_t)0, "online_cpus", (json_int_t)1, "precpu_stats", "cpu_usage",
                          "total_usage", (json_int_t)0, "system_cpu_usage", (json_int_t)0,
                          "online_cpus", (json_int_t)1, "pids_stats", "current", (json_int_t)0);
    ctr_unref(c);
    send_json(r, 200, j); /* one sample even with stream=1: no cgroup numbers are kept */
}

static void h_ctr_prune(struct dreq *r, const char **p)
{
    (void)p;
    char msg[DOCKER_ERR_MAX + 128];
    json_t *deleted = json_array();
    for (;;) {
        struct ctr *victim = NULL;
        pthread_mutex_lock(&g.mu);
        for (struct ctr *c = g.ctrs; c && !victim; c = c->next)
            if (c->state == ST_EXITED && !c->removing) {
                victim = c;
                c->removing = true;
                c->refs++;
            }
        pthread_mutex_unlock(&g.mu);
        if (!victim)
            break;
        if (ctr_remove(victim, msg, sizeof msg) == 0)
            json_array_append_new(deleted, json_string(victim->id));
        ctr_unref(victim);
    }
    send_json(r, 200, json_pack("{s:o,s:i}", "ContainersDeleted", deleted, "SpaceReclaimed", 0));
}

static void h_ping_resize(struct dreq *r, const char **p)
{
    (void)p;
    send_empty(r, 200); /* exec has no terminal to resize */
}

static void h_refused(struct dreq *r, const char **p)
{
    (void)p;
    send_err(r, 501, "%s %s is not supported by lambdad's Docker API: containers are Lambda "
                     "functions (see README, Docker Engine API front end)",
             r->method, r->path);
}


/* ----------------------------------------------------------------- exec */

/* exec runs in the container of the function's running environment, through
 * the engine's own exec (the command shares its filesystem, /tmp included,
 * and its environment variables). */
static void h_exec_create(struct dreq *r, const char **p)
{
    char cid[65], err[DOCKER_ERR_MAX], eid[DOCKER_ID_MAX];
    bool bad = false;
    json_t *body = json_body(r, false);
    if (!body)
        return;
    json_t *argv = argv_of(json_object_get(body, "Cmd"), &bad);
    json_t *env = json_object_get(body, "Env");
    const char *wd = json_string_value(json_object_get(body, "WorkingDir"));
    bool tty = json_is_true(json_object_get(body, "Tty"));
    struct ctr *c = NULL;
    const char **av = NULL, **ev = NULL;
    if (bad || !argv || !json_array_size(argv) || (env && !json_is_null(env) && !json_is_array(env))) {
        send_err(r, 400, "No exec command specified");
        goto out;
    }
    if (json_is_true(json_object_get(body, "AttachStdin"))) {
        send_err(r, 400, "exec with stdin (-i) is not supported by lambdad's Docker API");
        goto out;
    }
    if (!(c = ctr_get(r, p[0])))
        goto out;
    pthread_mutex_lock(&g.mu);
    bool running = c->state == ST_RUNNING;
    pthread_mutex_unlock(&g.mu);
    struct docker *d = container_engine();
    if (!running || !d || container_of_function(c->fn_key, cid) < 0) {
        send_err(r, 409, "Container %s is not running", c->id);
        goto out;
    }
    size_t na = json_array_size(argv), ne = json_is_array(env) ? json_array_size(env) : 0;
    av = calloc(na + 1, sizeof *av);
    ev = calloc(ne + 1, sizeof *ev);
    if (!av || !ev) {
        send_err(r, 500, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < na; i++)
        av[i] = json_string_value(json_array_get(argv, i));
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (json_string_value(json_array_get(env, i)))
            ev[k++] = json_string_value(json_array_get(env, i));
    int rc = docker_exec_create(d, cid, av, ev, wd, tty, eid, err);
    if (rc < 0) {
        send_err(r, rc == -EEXIST ? 409 : 500, "%s", err);
        goto out;
    }
    struct exec_rec *x = calloc(1, sizeof *x);
    if (!x) {
        send_err(r, 500, "out of memory");
        goto out;
    }
    snprintf(x->id, sizeof x->id, "%s", eid);
    snprintf(x->ctr, sizeof x->ctr, "%s", c->id);
    x->argv = json_incref(argv);
    x->tty = tty;
    pthread_mutex_lock(&g.mu);
    x->next = g.execs;
    g.execs = x;
    int n = 0;
    for (struct exec_rec **pp = &g.execs; *pp; ) {
        if (++n > EXEC_KEEP) {
            struct exec_rec *old = *pp;
            *pp = old->next;
            json_decref(old->argv);
            free(old);
        } else {
            pp = &(*pp)->next;
        }
    }
    pthread_mutex_unlock(&g.mu);
    send_json(r, 201, json_pack("{s:s}", "Id", eid));
out:
    free(av);
    free(ev);
    if (c)
        ctr_unref(c);
    json_decref(argv);
    json_decref(body);
}

/* Copies the exec record id (NULL when unknown). Caller holds g.mu. */
static struct exec_rec *exec_find_locked(const char *id)
{
    for (struct exec_rec *x = g.execs; x; x = x->next)
        if (!strcmp(x->id, id))
            return x;
    return NULL;
}

static int exec_to_client(void *user, const char *data, size_t len)
{
    struct dreq *r = user;
    return mg_write(r->conn, data, len) > 0 ? 0 : -EPIPE;
}

static void h_exec_start(struct dreq *r, const char **p)
{
    char err[DOCKER_ERR_MAX];
    json_t *body = json_body(r, true);
    if (!body)
        return;
    bool detach = json_is_true(json_object_get(body, "Detach"));
    json_decref(body);
    pthread_mutex_lock(&g.mu);
    struct exec_rec *x = exec_find_locked(p[0]);
    bool tty = x && x->tty;
    pthread_mutex_unlock(&g.mu);
    struct docker *d = container_engine();
    if (!x) {
        send_err(r, 404, "No such exec instance: %s", p[0]);
        return;
    }
    if (!d) {
        send_err(r, 500, "the docker engine is not available");
        return;
    }
    if (detach) {
        send_err(r, 501, "detached exec is not supported by lambdad's Docker API");
        return;
    }
    const char *up = mg_get_header(r->conn, "Upgrade");
    stream_begin(r, up ? 101 : 200,
                 tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream",
                 up ? "Upgrade: tcp\r\n" : NULL);
    /* The engine's stream is already in the client's format: pass it on. */
    int rc = docker_exec_start(d, p[0], tty, exec_to_client, r, err);
    if (rc < 0 && rc != -EPIPE)
        LOG_WARN("docker api: exec %.12s: %s", p[0], err);
}

static void h_exec_inspect(struct dreq *r, const char **p)
{
    char err[DOCKER_ERR_MAX], ctr[65] = "";
    bool running = false, tty = false;
    int code = -1;
    json_t *argv = NULL;
    pthread_mutex_lock(&g.mu);
    struct exec_rec *x = exec_find_locked(p[0]);
    if (x) {
        snprintf(ctr, sizeof ctr, "%s", x->ctr);
        argv = json_deep_copy(x->argv);
        tty = x->tty;
    }
    pthread_mutex_unlock(&g.mu);
    struct docker *d = container_engine();
    if (!x) {
        send_err(r, 404, "No such exec instance: %s", p[0]);
        return;
    }
    int rc = d ? docker_exec_inspect(d, p[0], &running, &code, err) : -ENOTCONN;
    if (rc < 0) {
        json_decref(argv);
        send_err(r, rc == -ENOENT ? 404 : 500, "%s", d ? err : "the docker engine is not available");
        return;
    }
    json_t *ep = json_incref(json_array_get(argv, 0));
    json_array_remove(argv, 0);
    send_json(r, 200, json_pack("{s:s,s:s,s:b,s:o,s:b,s:b,s:b,s:i,s:{s:o,s:o,s:b,s:s}}", "ID", p[0],
                                "ContainerID", ctr, "Running", running, "ExitCode",
                                running ? json_null() : json_integer(code), "OpenStdin", 0,
                                "OpenStdout", 1, "OpenStderr", 1, "Pid", 0, "ProcessConfig",
                                "entrypoint", ep ? ep : json_string(""), "arguments", argv, "tty", tty,
                                "user", ""));
}


/* -------------------------------------------------------------- archive */

/* cp works on the function's running environment (a finished run's
 * environment may already be gone or serve the next run). */
static int archive_target(struct dreq *r, const char *ref, char cid[65], char path[1024])
{
    if (query(r, "path", path, 1024) <= 0) {
        send_err(r, 400, "bad parameter: path cannot be empty");
        return -1;
    }
    struct ctr *c = ctr_get(r, ref);
    if (!c)
        return -1;
    pthread_mutex_lock(&g.mu);
    bool running = c->state == ST_RUNNING;
    pthread_mutex_unlock(&g.mu);
    int rc = 0;
    if (!running || !container_engine() || container_of_function(c->fn_key, cid) < 0) {
        send_err(r, 409, "Container %s is not running: lambdad's Docker API copies files only "
                         "while the container's command runs (its environment)",
                 c->id);
        rc = -1;
    }
    ctr_unref(c);
    return rc;
}

struct archive_out {
    struct dreq *r;
    char stat[2048];
    bool head;
};

static int archive_headers(void *user)
{
    struct archive_out *a = user;
    char extra[2200];
    snprintf(extra, sizeof extra, "X-Docker-Container-Path-Stat: %s\r\n", a->stat);
    if (a->head) {
        send_raw(a->r, 200, "application/x-tar", extra, "", 0);
        return 1; /* a stat only: stop the download */
    }
    stream_begin(a->r, 200, "application/x-tar", extra);
    return 0;
}

static int archive_body(void *user, const char *data, size_t len)
{
    struct archive_out *a = user;
    return mg_write(a->r->conn, data, len) > 0 ? 0 : -EPIPE;
}

static void h_archive_get(struct dreq *r, const char **p)
{
    char cid[65], path[1024], err[DOCKER_ERR_MAX];
    if (archive_target(r, p[0], cid, path) < 0)
        return;
    struct archive_out a = {.r = r, .head = !strcmp(r->method, "HEAD")};
    int rc = docker_get_archive(container_engine(), cid, path, a.stat, sizeof a.stat, archive_headers,
                                archive_body, &a, err);
    if (rc < 0 && !r->status)
        send_err(r, rc == -ENOENT ? 404 : rc == -EINVAL ? 400 : 500, "%s", err);
}

#define ARCHIVE_CAP (64u << 20)

static void h_archive_put(struct dreq *r, const char **p)
{
    char cid[65], path[1024], err[DOCKER_ERR_MAX];
    if (r->ri->content_length > (long long)ARCHIVE_CAP) {
        send_err(r, 413, "archive larger than %u bytes", ARCHIVE_CAP);
        return;
    }
    if (archive_target(r, p[0], cid, path) < 0)
        return;
    long long cl = r->ri->content_length;
    size_t cap = cl >= 0 ? (size_t)cl : 1u << 20, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (cl >= 0 && len == (size_t)cl)
            break;
        if (len == cap) {
            char *nb = cap < ARCHIVE_CAP ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        int n = mg_read(r->conn, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (!buf) {
        send_err(r, 413, "archive larger than %u bytes", ARCHIVE_CAP);
        return;
    }
    r->body = buf; /* freed by on_request */
    int rc = docker_put_archive(container_engine(), cid, path, buf, len, err);
    if (rc < 0)
        send_err(r, rc == -ENOENT ? 404 : rc == -EINVAL ? 400 : rc == -EACCES ? 403 : 500, "%s", err);
    else
        send_empty(r, 200);
}

/* ----------------------------------------------------- networks, volumes */

static struct named_rec *named_find_locked(struct named_rec *list, const char *ref)
{
    for (struct named_rec *n = list; n; n = n->next)
        if (!strcmp(n->name, ref) || !strcmp(n->id, ref) ||
            (strlen(ref) >= 6 && !strncmp(n->id, ref, strlen(ref))))
            return n;
    return NULL;
}

static json_t *network_json(const struct named_rec *n)
{
    char created[48];
    fmt_time(n->created * 1000000000, created);
    const char *driver = !strcmp(n->name, "host") ? "host" : !strcmp(n->name, "none") ? "null" : "bridge";
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:{},s:o,s:{},s:{s:s,s:[]}}", "Name", n->name,
                     "Id", n->id, "Created", created, "Scope", "local", "Driver", driver,
                     "Internal", 0, "Attachable", 1, "Containers", "Labels",
                     n->labels ? json_incref(n->labels) : json_object(), "Options", "IPAM", "Driver", "default",
                     "Config");
}

static json_t *volume_json(const struct named_rec *n)
{
    char created[48];
    fmt_time(n->created * 1000000000, created);
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:{}}", "Name", n->name, "Driver", "local",
                     "Mountpoint", "", "CreatedAt", created, "Labels",
                     n->labels ? json_incref(n->labels) : json_object(), "Scope", "local", "Options");
}

static void named_seed(void)
{
    static const char *const builtin[] = {"bridge", "host", "none"};
    for (int i = 2; i >= 0; i--) {
        struct named_rec *n = calloc(1, sizeof *n);
        if (!n)
            return;
        snprintf(n->name, sizeof n->name, "%s", builtin[i]);
        rand_hex(n->id, 32);
        n->created = now_ns() / 1000000000;
        n->next = g.networks;
        g.networks = n;
    }
}

static void h_named_list(struct dreq *r, bool vol)
{
    json_t *a = json_array();
    pthread_mutex_lock(&g.mu);
    for (struct named_rec *n = vol ? g.volumes : g.networks; n; n = n->next)
        json_array_append_new(a, vol ? volume_json(n) : network_json(n));
    pthread_mutex_unlock(&g.mu);
    send_json(r, 200, vol ? json_pack("{s:o,s:[]}", "Volumes", a, "Warnings") : a);
}

static void h_networks(struct dreq *r, const char **p)
{
    (void)p;
    h_named_list(r, false);
}

static void h_volumes(struct dreq *r, const char **p)
{
    (void)p;
    h_named_list(r, true);
}

static void h_named_create(struct dreq *r, bool vol)
{
    json_t *body = json_body(r, vol);
    if (!body)
        return;
    const char *name = json_string_value(json_object_get(body, "Name"));
    json_t *labels = json_object_get(body, "Labels");
    const char *driver = json_string_value(json_object_get(body, "Driver"));
    struct named_rec *n = calloc(1, sizeof *n);
    if (!n) {
        json_decref(body);
        send_err(r, 500, "out of memory");
        return;
    }
    rand_hex(n->id, 32);
    if ((!name || !*name) && !vol) {
        send_err(r, 400, "network name must not be empty");
        goto fail;
    }
    snprintf(n->name, sizeof n->name, "%s", name && *name ? name : n->id);
    if (!valid_name(n->name)) {
        send_err(r, 400, "invalid name %s: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", n->name);
        goto fail;
    }
    if (driver && *driver && strcmp(driver, vol ? "local" : "bridge")) {
        send_err(r, 400, "driver %s is not supported: lambdad keeps %s as records only", driver,
                 vol ? "volumes" : "networks");
        goto fail;
    }
    n->labels = json_is_object(labels) ? json_deep_copy(labels) : NULL;
    n->created = now_ns() / 1000000000;
    pthread_mutex_lock(&g.mu);
    struct named_rec **list = vol ? &g.volumes : &g.networks;
    struct named_rec *old = named_find_locked(*list, n->name);
    if (old && vol) {
        json_t *j = volume_json(old);
        pthread_mutex_unlock(&g.mu);
        send_json(r, 201, j); /* the engine answers an existing volume */
        json_decref(n->labels);
        goto fail;
    }
    if (!old) {
        n->next = *list;
        *list = n;
    }
    json_t *j = vol ? volume_json(n) : json_pack("{s:s,s:s}", "Id", n->id, "Warning", "");
    pthread_mutex_unlock(&g.mu);
    if (old) {
        send_err(r, 409, "network with name %s already exists", n->name);
        json_decref(j);
        json_decref(n->labels);
        goto fail;
    }
    send_json(r, 201, j);
    json_decref(body);
    return;
fail:
    free(n);
    json_decref(body);
}

static void h_network_create(struct dreq *r, const char **p)
{
    (void)p;
    h_named_create(r, false);
}

static void h_volume_create(struct dreq *r, const char **p)
{
    (void)p;
    h_named_create(r, true);
}

static void h_named_get(struct dreq *r, const char *ref, bool vol)
{
    pthread_mutex_lock(&g.mu);
    struct named_rec *n = named_find_locked(vol ? g.volumes : g.networks, ref);
    json_t *j = n ? (vol ? volume_json(n) : network_json(n)) : NULL;
    pthread_mutex_unlock(&g.mu);
    if (!j)
        send_err(r, 404, vol ? "get %s: no such volume" : "network %s not found", ref);
    else
        send_json(r, 200, j);
}

static void h_network_get(struct dreq *r, const char **p)
{
    h_named_get(r, p[0], false);
}

static void h_volume_get(struct dreq *r, const char **p)
{
    h_named_get(r, p[0], true);
}

static void h_named_delete(struct dreq *r, const char *ref, bool vol)
{
    pthread_mutex_lock(&g.mu);
    struct named_rec **pp = vol ? &g.volumes : &g.networks;
    struct named_rec *n = named_find_locked(*pp, ref);
    bool builtin = !vol && n && (!strcmp(n->name, "bridge") || !strcmp(n->name, "host") ||
                                 !strcmp(n->name, "none"));
    if (n && !builtin) {
        while (*pp != n)
            pp = &(*pp)->next;
        *pp = n->next;
    }
    pthread_mutex_unlock(&g.mu);
    if (!n) {
        send_err(r, 404, vol ? "get %s: no such volume" : "network %s not found", ref);
    } else if (builtin) {
        send_err(r, 403, "%s is a pre-defined network and cannot be removed", n->name);
    } else {
        json_decref(n->labels);
        free(n);
        send_empty(r, 204);
    }
}

static void h_network_delete(struct dreq *r, const char **p)
{
    h_named_delete(r, p[0], false);
}

static void h_volume_delete(struct dreq *r, const char **p)
{
    h_named_delete(r, p[0], true);
}

static void h_network_connect(struct dreq *r, const char **p)
{
    pthread_mutex_lock(&g.mu);
    bool ok = named_find_locked(g.networks, p[0]) != NULL;
    pthread_mutex_unlock(&g.mu);
    if (!ok)
        send_err(r, 404, "network %s not found", p[0]);
    else
        send_empty(r, 200); /* a record only: functions are isolated */
}

/* --------------------------------------------------------------- ingest */

struct ingest_ud {
    struct ctr *c;
    struct fn_spec *spec;  /* the run's, for its log group; may be NULL */
    char log_stream[256];  /* the environment's log stream (from the runner) */
};

static void ingest_emit(void *ud, int stream, const char *data, unsigned long len)
{
    struct ingest_ud *u = ud;
    struct ctr *c = u->c;
    if (stream != 1 && stream != 2)
        return;
    pthread_mutex_lock(&g.mu);
    ctr_append_locked(c, stream, data, len);
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    if (u->spec) {
        /* Also the function's CloudWatch Logs stream, as a Lambda
         * function's own output would be. One source id per container and
         * stream, so partial lines of stdout and stderr are not mixed. */
        struct pool_log_rec rec = {
            .kind = POOL_LOG_OUTPUT,
            .fn = u->spec,
            .stream = u->log_stream,
            .env_id = (1ull << 63) | (c->serial << 1) | (stream == 2),
            .time_ms = now_ns() / 1000000,
            .data = data,
            .len = len,
        };
        logs_store_sink(&rec, NULL);
    }
}

static void h_ingest(struct dreq *r, const char **p)
{
    bool amb;
    pthread_mutex_lock(&g.mu);
    struct ctr *c = ctr_find_locked(p[0], &amb);
    bool ok = c && strlen(p[0]) == 64 && c->state == ST_RUNNING && c->token[0] &&
              strlen(p[1]) == 32 && !strcmp(c->token, p[1]);
    struct ingest_ud ud = {c, NULL, ""};
    if (ok) {
        c->refs++;
        ud.spec = fnspec_ref(c->spec);
    }
    pthread_mutex_unlock(&g.mu);
    if (!ok) {
        send_err(r, 403, "no running container with this id and token");
        return;
    }
    const char *ls = mg_get_header(r->conn, "Lambdad-Log-Stream");
    size_t lsl = ls ? strlen(ls) : 0;
    if (lsl > 0 && lsl < sizeof ud.log_stream && strcspn(ls, ":*") == lsl)
        snprintf(ud.log_stream, sizeof ud.log_stream, "%s", ls);
    else
        snprintf(ud.log_stream, sizeof ud.log_stream, "docker/%.12s", c->id);
    struct docker_frame_parser fp = {0};
    char buf[16384];
    int n;
    /* mg_read returns only when it filled the buffer (or the body ended),
     * so ask for exactly what completes the current header or payload:
     * each frame reaches the followers as soon as it arrived. */
    for (;;) {
        unsigned long want = docker_frames_want(&fp);
        if (want > sizeof buf)
            want = sizeof buf;
        n = mg_read(r->conn, buf, want);
        if (n <= 0 || docker_frames_feed(&fp, buf, (unsigned long)n, ingest_emit, &ud) < 0)
            break;
    }
    ctr_unref(c);
    fnspec_unref(ud.spec);
    if (fp.bad)
        send_err(r, 400, "bad stream frame");
    else
        send_empty(r, 204);
}

/* -------------------------------------------------------------- reaper */

/* Removes AutoRemove containers once they exited (on_run_done cannot: it
 * runs on an executor thread and must not block). */
static void *reaper_main(void *arg)
{
    (void)arg;
    char msg[DOCKER_ERR_MAX + 128];
    pthread_setname_np(pthread_self(), "dkapi-reaper");
    rcu_register_thread();
    pthread_mutex_lock(&g.mu);
    while (!atomic_load(&g.stopping)) {
        struct ctr *victim = NULL;
        for (struct ctr *c = g.ctrs; c && !victim; c = c->next)
            if (c->auto_remove && c->state == ST_EXITED && !c->removing && !c->removed)
                victim = c;
        if (!victim) {
            cv_wait_until(0);
            continue;
        }
        victim->removing = true;
        victim->refs++;
        pthread_mutex_unlock(&g.mu);
        if (ctr_remove(victim, msg, sizeof msg) < 0)
            LOG_WARN("docker api: auto-removing %.12s: %s", victim->id, msg);
        pthread_mutex_lock(&g.mu);
        if (!victim->removed)
            victim->auto_remove = false; /* do not spin on a failing removal */
        ctr_unref_locked(victim);
    }
    pthread_mutex_unlock(&g.mu);
    rcu_unregister_thread();
    return NULL;
}

/* -------------------------------------------------------------- routing */

typedef void (*dk_handler)(struct dreq *r, const char **params);

struct dk_route {
    const char *method;
    const char *pattern; /* "{}" one segment, "{*}" one or more (image names) */
    dk_handler fn;
};

#define C "/containers/{}"
static const struct dk_route g_api_routes[] = {
    {"GET", "/_ping", h_ping},
    {"HEAD", "/_ping", h_ping},
    {"GET", "/version", h_version},
    {"GET", "/info", h_info},
    {"POST", "/containers/create", h_ctr_create},
    {"GET", "/containers/json", h_ctr_list},
    {"POST", "/containers/prune", h_ctr_prune},
    {"GET", C "/json", h_ctr_inspect},
    {"POST", C "/start", h_ctr_start},
    {"POST", C "/wait", h_ctr_wait},
    {"POST", C "/attach", h_ctr_attach},
    {"GET", C "/logs", h_ctr_logs},
    {"POST", C "/stop", h_ctr_stop},
    {"POST", C "/kill", h_ctr_kill},
    {"POST", C "/restart", h_ctr_restart},
    {"POST", C "/rename", h_ctr_rename},
    {"POST", C "/resize", h_ctr_resize},
    {"GET", C "/top", h_ctr_top},
    {"GET", C "/stats", h_ctr_stats},
    {"DELETE", C, h_ctr_delete},
    {"POST", C "/exec", h_exec_create},
    {"POST", "/exec/{}/start", h_exec_start},
    {"GET", "/exec/{}/json", h_exec_inspect},
    {"POST", "/exec/{}/resize", h_ping_resize},
    {"GET", C "/archive", h_archive_get},
    {"HEAD", C "/archive", h_archive_get},
    {"PUT", C "/archive", h_archive_put},
    {"POST", C "/pause", h_refused},
    {"POST", C "/unpause", h_refused},
    {"POST", C "/update", h_refused},
    {"GET", C "/export", h_refused},
    {"GET", C "/changes", h_refused},
    {"POST", "/commit", h_refused},
    {"POST", "/build", h_refused},
    {"POST", "/images/load", h_refused},
    {"POST", "/images/create", h_image_create},
    {"GET", "/images/json", h_images_list},
    {"GET", "/images/{*}/json", h_image_inspect},
    {"POST", "/images/{*}/push", h_refused},
    {"POST", "/images/{*}/tag", h_refused},
    {"DELETE", "/images/{*}", h_image_delete},
    {"GET", "/networks", h_networks},
    {"POST", "/networks/create", h_network_create},
    {"GET", "/networks/{}", h_network_get},
    {"DELETE", "/networks/{}", h_network_delete},
    {"POST", "/networks/{}/connect", h_network_connect},
    {"POST", "/networks/{}/disconnect", h_network_connect},
    {"GET", "/volumes", h_volumes},
    {"POST", "/volumes/create", h_volume_create},
    {"GET", "/volumes/{}", h_volume_get},
    {"DELETE", "/volumes/{}", h_volume_delete},
};
#undef C

static const struct dk_route g_ingest_routes[] = {
    {"POST", "/output/{}/{}", h_ingest},
};

#define MAX_SEGS 16

static int split(const char *path, const char **segs, size_t *lens)
{
    int n = 0;
    const char *s = path;
    if (*s != '/')
        return -1;
    while (*s == '/' && s[1]) {
        s++;
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (!len || n == MAX_SEGS)
            return -1;
        segs[n] = s;
        lens[n++] = len;
        s += len;
    }
    return n;
}

/* Matches path against routes; fills params (decoded into buf). Returns the
 * route, NULL for none; *bad for an invalid escape. */
static const struct dk_route *route_match(const struct dk_route *routes, size_t n_routes,
                                          const char *method, const char *path, const char **params,
                                          char *buf, size_t buflen, bool *bad, bool *path_known)
{
    const char *ps[MAX_SEGS], *ts[MAX_SEGS];
    size_t pl[MAX_SEGS], tl[MAX_SEGS];
    int np = split(path, ps, pl);
    *bad = false;
    *path_known = false;
    if (np < 0)
        return NULL;
    for (size_t r = 0; r < n_routes; r++) {
        int nt = split(routes[r].pattern, ts, tl);
        int i = 0, j = 0, k = 0;
        size_t used = 0;
        bool ok = true;
        for (; i < nt && ok; i++) {
            bool one = tl[i] == 2 && !memcmp(ts[i], "{}", 2), many = tl[i] == 3 && !memcmp(ts[i], "{*}", 3);
            int take = many ? np - j - (nt - i - 1) : 1;
            if (take < 1 || j + take > np) {
                ok = false;
                break;
            }
            if (!one && !many) {
                ok = tl[i] == pl[j] && !memcmp(ts[i], ps[j], pl[j]);
                j++;
                continue;
            }
            size_t rawlen = (size_t)(ps[j + take - 1] + pl[j + take - 1] - ps[j]);
            int dl = http_pct_decode(ps[j], rawlen, buf + used, buflen - used, false);
            if (dl < 0) {
                *bad = true;
                return NULL;
            }
            params[k++] = buf + used;
            used += (size_t)dl + 1;
            j += take;
        }
        if (!ok || j != np)
            continue;
        *path_known = true;
        if (strcmp(routes[r].method, method) != 0)
            continue;
        return &routes[r];
    }
    return NULL;
}

static bool relay_port_is(int port)
{
    return port > 0 && port < 65536 &&
           (atomic_load(&g.relay_ports[port / 64]) >> (port % 64) & 1);
}

static void relay_port_set(int port, bool on)
{
    uint64_t bit = 1ull << (port % 64);
    if (on)
        atomic_fetch_or(&g.relay_ports[port / 64], bit);
    else
        atomic_fetch_and(&g.relay_ports[port / 64], ~bit);
}

/* Compares "1.45" style versions. */
static int version_cmp(const char *a, const char *b)
{
    int am = 0, an = 0, bm = 0, bn = 0;
    sscanf(a, "%d.%d", &am, &an);
    sscanf(b, "%d.%d", &bm, &bn);
    return am != bm ? (am > bm ? 1 : -1) : (an > bn) - (an < bn);
}

static int on_request(struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    bool ingest = ri->user_data == (void *)&g.ingest;
    struct dreq r = {.conn = conn, .ri = ri, .method = ri->request_method};
    char pbuf[2048], version[16] = "";
    const char *params[4] = {0};
    r.hq.conn = conn;
    r.hq.ri = ri;
    const char *path = ri->local_uri_raw ? ri->local_uri_raw : ri->request_uri;
    if (!path)
        path = "/";
    /* /v1.45/containers/json -> /containers/json */
    if (!ingest && path[0] == '/' && path[1] == 'v' && path[2] >= '0' && path[2] <= '9') {
        const char *slash = strchr(path + 1, '/');
        size_t vl = slash ? (size_t)(slash - path - 2) : 0;
        if (slash && vl < sizeof version && strspn(path + 2, "0123456789.") == vl) {
            memcpy(version, path + 2, vl);
            version[vl] = 0;
            path = slash;
        }
    }
    r.path = path;
    if (!ingest && ri->server_port == atomic_load(&g.internal_port) && !relay_port_is(ri->remote_port)) {
        send_err(&r, 403, "this port serves lambdad's unix socket relay only");
        goto out;
    }
    if (atomic_load(&g.stopping)) {
        send_err(&r, 503, "lambdad is shutting down");
        goto out;
    }
    if (version[0] && version_cmp(version, API_VERSION) > 0) {
        send_err(&r, 400, "client version %s is too new. Maximum supported API version is %s", version,
                 API_VERSION);
        goto out;
    }
    if (version[0] && version_cmp(version, API_MIN_VERSION) < 0) {
        send_err(&r, 400, "client version %s is too old. Minimum supported API version is %s, please "
                          "upgrade your client to a newer version",
                 version, API_MIN_VERSION);
        goto out;
    }
    bool bad, known;
    const struct dk_route *rt =
        ingest ? route_match(g_ingest_routes, sizeof g_ingest_routes / sizeof g_ingest_routes[0], r.method,
                             path, params, pbuf, sizeof pbuf, &bad, &known)
               : route_match(g_api_routes, sizeof g_api_routes / sizeof g_api_routes[0], r.method, path,
                             params, pbuf, sizeof pbuf, &bad, &known);
    LOG_DEBUG("docker api: %s %s%s%s", r.method, path, ri->query_string ? "?" : "",
              ri->query_string ? ri->query_string : "");
    if (rt)
        rt->fn(&r, params);
    else if (bad)
        send_err(&r, 400, "invalid percent-encoding in the request path");
    else if (known)
        send_err(&r, 405, "method %s not allowed on %s", r.method, path);
    else
        send_err(&r, 404, "page not found");
    if (!r.status)
        send_err(&r, 500, "no response");
out:
    if (!r.body && ri->content_length > 0) {
        char drain[8192];
        while (mg_read(conn, drain, sizeof drain) > 0)
            ;
    }
    free(r.body);
    return r.status ? r.status : 500;
}

static int on_http_error(struct mg_connection *conn, int status, const char *msg)
{
    if (status < 400 || status > 599)
        return 1;
    struct dreq r = {.conn = conn, .ri = mg_get_request_info(conn), .method = "GET"};
    send_err(&r, status, "%s", msg && *msg ? msg : "bad request");
    return 0;
}

static atomic_int g_thread_seq;

static void *on_thread_start(const struct mg_context *ctx, int thread_type)
{
    char name[16];
    int n = atomic_fetch_add(&g_thread_seq, 1);
    bool ingest = mg_get_user_data(ctx) == (void *)&g.ingest;
    snprintf(name, sizeof name, "%s-%d", ingest ? "dkout" : "dkapi", n);
    (void)thread_type;
    pthread_setname_np(pthread_self(), name);
    rcu_register_thread();
    return NULL;
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
    LOG_DEBUG("civetweb (docker api): %s", message);
    return 1;
}

static struct mg_context *start_ctx(const char *ports, const char *threads, void *ud, char *ebuf,
                                    size_t elen)
{
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.begin_request = on_request;
    cb.init_thread = on_thread_start;
    cb.exit_thread = on_thread_stop;
    cb.log_message = on_log;
    cb.http_error = on_http_error;
    const char *options[] = {"listening_ports", ports, "num_threads", threads,
                             "enable_keep_alive", "yes", "request_timeout_ms", "960000",
                             "tcp_nodelay", "1", "decode_url", "no", NULL};
    struct mg_init_data init = {.callbacks = &cb, .user_data = ud, .configuration_options = options};
    struct mg_error_data ed;
    memset(&ed, 0, sizeof ed);
    ebuf[0] = 0;
    ed.text = ebuf;
    ed.text_buffer_size = elen;
    return mg_start2(&init, &ed);
}

/* ---------------------------------------------------------- unix relay */

static void *relay_main(void *arg)
{
    int ufd = (int)(intptr_t)arg, tfd = -1, lport = 0;
    char buf[65536];
    pthread_setname_np(pthread_self(), "dkapi-relay");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atomic_load(&g.internal_port))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    tfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (tfd < 0)
        goto out;
    /* Bind first so the source port is registered before civetweb can see
     * the connection. */
    struct sockaddr_in la = {.sin_family = AF_INET};
    la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof la;
    if (bind(tfd, (struct sockaddr *)&la, sizeof la) < 0 || getsockname(tfd, (struct sockaddr *)&la, &sl) < 0)
        goto out;
    lport = ntohs(la.sin_port);
    relay_port_set(lport, true);
    if (connect(tfd, (struct sockaddr *)&sa, sizeof sa) < 0)
        goto out;
    bool u_eof = false;
    for (;;) {
        struct pollfd pf[2] = {{.fd = ufd, .events = u_eof ? 0 : POLLIN}, {.fd = tfd, .events = POLLIN}};
        int n = poll(pf, 2, 1000);
        if (n < 0)
            break;
        if (n == 0)
            continue;
        if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = read(tfd, buf, sizeof buf);
            if (k <= 0)
                break; /* the server is done: so is the client's connection */
            for (ssize_t off = 0; off < k;) {
                ssize_t w = send(ufd, buf + off, (size_t)(k - off), MSG_NOSIGNAL);
                if (w <= 0)
                    goto out;
                off += w;
            }
        }
        if (!u_eof && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t k = read(ufd, buf, sizeof buf);
            if (k <= 0) {
                u_eof = true;
                shutdown(tfd, SHUT_WR);
                continue;
            }
            for (ssize_t off = 0; off < k;) {
                ssize_t w = send(tfd, buf + off, (size_t)(k - off), MSG_NOSIGNAL);
                if (w <= 0)
                    goto out;
                off += w;
            }
        }
    }
out:
    if (lport)
        relay_port_set(lport, false);
    if (tfd >= 0)
        close(tfd);
    close(ufd);
    atomic_fetch_sub(&g.relays, 1);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    int idx = (int)(intptr_t)arg;
    pthread_setname_np(pthread_self(), "dkapi-unix");
    while (!atomic_load(&g.stopping)) {
        struct pollfd pf = {.fd = g.unix_fd[idx], .events = POLLIN};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        int fd = accept4(g.unix_fd[idx], NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        atomic_fetch_add(&g.relays, 1);
        if (pthread_create(&t, &at, relay_main, (void *)(intptr_t)fd) != 0) {
            atomic_fetch_sub(&g.relays, 1);
            close(fd);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

static int mkdir_p(const char *dir)
{
    char buf[108];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Binds a unix listener at path (a stale socket file nobody answers on is
 * replaced). Returns the fd or -1 with msg. */
static int unix_listen(const char *path, char *msg, size_t msglen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(msg, msglen, "unix socket path too long: %s", path);
        return -1;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    char dir[108];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (mkdir_p(dir) < 0) {
            snprintf(msg, msglen, "cannot create %s: %s", dir, strerror(errno));
            return -1;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(msg, msglen, "socket: %s", strerror(errno));
        return -1;
    }
    int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    if (b < 0 && errno == EADDRINUSE) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            snprintf(msg, msglen, "%s is in use by another server", path);
            close(fd);
            return -1;
        }
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            goto fail;
    } else if (b < 0) {
        goto fail;
    }
    chmod(path, 0660);
    if (listen(fd, 128) < 0)
        goto fail;
    return fd;
fail:
    snprintf(msg, msglen, "cannot listen on %s: %s", path, strerror(errno));
    close(fd);
    return -1;
}


/* Rebuilds the records of containers whose functions survived a restart
 * (tag lambdad:docker-container): they come back as "created", with their
 * command, image, memory, Env and name; labels and output are not kept.
 * Main thread (RCU-registered), before the listeners start. */
static void restore_containers(void)
{
    char marker[VALIDATE_NAME_MAX + 1] = "";
    size_t plen = strlen(g.o.prefix), restored = 0;
    bool more = true;
    while (more) {
        struct fn_record **recs = NULL;
        size_t n = 0;
        if (registry_list(g.o.region, g.o.account, marker[0] ? marker : NULL, 100, &recs, &n, &more) < 0)
            break;
        for (size_t i = 0; i < n; i++) {
            struct fn_record *rec = recs[i];
            snprintf(marker, sizeof marker, "%s", rec->name);
            json_t *tags = rec->tags_json ? json_loads(rec->tags_json, 0, NULL) : NULL;
            const char *id = json_string_value(json_object_get(tags, "lambdad:docker-container"));
            const char *nm = json_string_value(json_object_get(tags, "lambdad:docker-name"));
            const struct fn_spec *sp = rec->spec;
            struct ctr *c = NULL;
            if (id && strlen(id) == 64 && strspn(id, "0123456789abcdef") == 64 && nm && *nm &&
                strlen(nm) < sizeof c->name && !strncmp(rec->name, g.o.prefix, plen) &&
                rec->name[plen] == '-' && sp && rec->image_uri && sp->n_command &&
                (c = calloc(1, sizeof *c))) {
                static atomic_ullong serials_r = 1ull << 40;
                c->refs = 1;
                c->serial = atomic_fetch_add(&serials_r, 1);
                snprintf(c->id, sizeof c->id, "%s", id);
                snprintf(c->name, sizeof c->name, "%s", nm);
                snprintf(c->fn, sizeof c->fn, "%s", rec->name);
                snprintf(c->fn_key, sizeof c->fn_key, "%s", sp->key);
                snprintf(c->image, sizeof c->image, "%s", rec->image_uri);
                c->argv = json_array();
                for (size_t k = 0; k < sp->n_command; k++)
                    json_array_append_new(c->argv, json_string(sp->image_command[k]));
                json_t *env = json_array();
                for (size_t k = 0; k < sp->n_env; k++) {
                    char *kv = NULL;
                    if (asprintf(&kv, "%s=%s", sp->env[k].key, sp->env[k].value) >= 0) {
                        json_array_append_new(env, json_string(kv));
                        free(kv);
                    }
                }
                c->config = json_pack("{s:s,s:O,s:o,s:{}}", "Image", c->image, "Cmd", c->argv, "Env",
                                      env, "Labels");
                if (sp->image_workdir)
                    json_object_set_new(c->config, "WorkingDir", json_string(sp->image_workdir));
                c->memory_bytes = (int64_t)sp->memory_mb << 20;
                c->created_ns = now_ns();
                c->state = ST_CREATED;
                pthread_mutex_lock(&g.mu);
                c->next = g.ctrs;
                g.ctrs = c;
                pthread_mutex_unlock(&g.mu);
                restored++;
            }
            json_decref(tags);
            registry_record_unref(rec);
        }
        free(recs);
        if (!n)
            break;
    }
    if (restored)
        LOG_INFO("docker api: %zu container(s) restored from their functions (as created)", restored);
}

/* ------------------------------------------------------------ lifecycle */

int docker_api_start(const struct docker_api_options *o, const char **err)
{
    static char msg[700];
    char ports[1024] = "", ebuf[256];
    size_t pl = 0;
    bool any_unix = false;
    g.o = *o;
    atomic_store(&g.stopping, false);
    for (size_t i = 0; o->listen[i]; i++) {
        const char *a = o->listen[i];
        if (!strncmp(a, "tcp://", 6))
            pl += (size_t)snprintf(ports + pl, sizeof ports - pl, "%s%s", pl ? "," : "", a + 6);
        else
            any_unix = true;
        if (pl >= sizeof ports) {
            *err = "too many --docker-api addresses";
            return -1;
        }
    }
    if (any_unix)
        snprintf(ports + pl, sizeof ports - pl, "%s127.0.0.1:0", pl ? "," : "");
    pthread_mutex_lock(&g.mu);
    named_seed();
    pthread_mutex_unlock(&g.mu);
    restore_containers();
    mg_init_library(0);
    g.api = start_ctx(ports, THREADS, &g.api, ebuf, sizeof ebuf);
    if (!g.api) {
        snprintf(msg, sizeof msg, "docker api: cannot listen on %s: %s", ports,
                 ebuf[0] ? ebuf : "civetweb failed to start");
        *err = msg;
        mg_exit_library();
        return -1;
    }
    if (any_unix) {
        struct mg_server_port sp[CONFIG_PORTS_MAX];
        int n = mg_get_server_ports(g.api, CONFIG_PORTS_MAX, sp);
        atomic_store(&g.internal_port, n > 0 ? sp[n - 1].port : 0);
    }
    /* The runners' output listener: where the Runtime API listens. */
    if (o->engine) {
        snprintf(g.ingest_ip, sizeof g.ingest_ip, "%s", container_bind_ip());
        char iports[96];
        snprintf(iports, sizeof iports, "%s:0", g.ingest_ip);
        g.ingest = start_ctx(iports, "16", &g.ingest, ebuf, sizeof ebuf);
        if (!g.ingest) {
            snprintf(msg, sizeof msg, "docker api: cannot listen on %s for command output: %s", iports,
                     ebuf[0] ? ebuf : "civetweb failed to start");
            *err = msg;
            docker_api_stop();
            return -1;
        }
        struct mg_server_port sp[1];
        if (mg_get_server_ports(g.ingest, 1, sp) == 1)
            atomic_store(&g.ingest_port, sp[0].port);
    }
    for (size_t i = 0; o->listen[i]; i++) {
        if (strncmp(o->listen[i], "unix://", 7) != 0)
            continue;
        const char *path = o->listen[i] + 7;
        int fd = unix_listen(path, msg, sizeof msg);
        if (fd < 0) {
            *err = msg;
            docker_api_stop();
            return -1;
        }
        int k = g.n_unix;
        g.unix_fd[k] = fd;
        snprintf(g.unix_path[k], sizeof g.unix_path[k], "%s", path);
        if (pthread_create(&g.unix_thr[k], NULL, acceptor_main, (void *)(intptr_t)k) != 0) {
            close(fd);
            unlink(path);
            *err = "docker api: cannot start the unix socket acceptor";
            docker_api_stop();
            return -1;
        }
        g.n_unix++;
    }
    if (pthread_create(&g.reaper, NULL, reaper_main, NULL) == 0)
        g.reaper_started = true;
    for (size_t i = 0; o->listen[i]; i++)
        LOG_INFO("docker api listening on %s (containers run as functions %s-<id12>)", o->listen[i],
                 o->prefix);
    return 0;
}

void docker_api_stop(void)
{
    if (!g.api && !g.n_unix)
        return;
    atomic_store(&g.stopping, true);
    pthread_mutex_lock(&g.mu);
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < g.n_unix; i++) {
        pthread_join(g.unix_thr[i], NULL);
        close(g.unix_fd[i]);
        unlink(g.unix_path[i]);
    }
    g.n_unix = 0;
    if (g.api)
        mg_stop(g.api);
    if (g.ingest)
        mg_stop(g.ingest);
    for (int i = 0; i < 500 && atomic_load(&g.relays) > 0; i++)
        usleep(10000);
    if (g.reaper_started)
        pthread_join(g.reaper, NULL);
    g.reaper_started = false;
    if (g.api)
        mg_exit_library();
    g.api = g.ingest = NULL;
    pthread_mutex_lock(&g.mu);
    while (g.ctrs) {
        struct ctr *c = g.ctrs;
        g.ctrs = c->next;
        ctr_unref_locked(c);
    }
    while (g.execs) {
        struct exec_rec *x = g.execs;
        g.execs = x->next;
        json_decref(x->argv);
        free(x);
    }
    while (g.images) {
        struct image_rec *i = g.images;
        g.images = i->next;
        json_decref(i->config);
        free(i);
    }
    struct named_rec **lists[2] = {&g.networks, &g.volumes};
    for (int k = 0; k < 2; k++)
        while (*lists[k]) {
            struct named_rec *n = *lists[k];
            *lists[k] = n->next;
            json_decref(n->labels);
            free(n);
        }
    pthread_mutex_unlock(&g.mu);
}
