/* logs_store: CloudWatch Logs storage (see logs_store.h for the design). */
#include "server/logs_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <urcu/wfcqueue.h>
#include <zlib.h>

#include "pool/queue.h"
#include "runtime/fnspec.h"
#include "runtime/fsutil.h"
#include "runtime/log.h"
#include "server/persist.h"

#define REC_MAGIC 0x4c44474cu /* "LGDL" */
#define REC_STREAM 1u
#define REC_EVENT 2u
#define FLUSH_MS 200
/* Function output queued but not yet taken into the store. Beyond it new
 * output is dropped (counted, warned about): a function printing faster
 * than the store takes it in must not grow lambdad without bound. */
#define QUEUE_MAX_BYTES (32u << 20)
#define EXPIRE_EVERY_MS 10000
/* What an event costs in memory besides its message: its logs_event slot
 * (the stream's array grows by doubling) and the message's malloc header.
 * The size cap counts it, so --logs-max-bytes bounds the store's memory,
 * not only its message bytes (invocation lines are short: START/END lines
 * are ~60 bytes, so the overhead is about as large as the text). */
#define EVENT_MEM 64u

struct rec_hdr {
    uint32_t magic;
    uint32_t len;   /* payload bytes */
    uint32_t crc;   /* crc32 of the header (crc = 0) and the payload */
    uint32_t kind;
    int64_t ts;     /* REC_STREAM: creation time */
    int64_t ingest;
    uint64_t seq;
};

/* One queued sink record: the struct and its strings in one allocation. */
struct sink_item {
    struct cds_wfcq_node node;
    bool raw;             /* function output (split into lines here) */
    bool start;           /* a START line (releases held END/REPORT lines) */
    bool hold;            /* END/REPORT of an environment whose output lags */
    bool json;            /* LogFormat JSON: filter application lines */
    int app_level;        /* minimum level of JSON application lines */
    uint64_t env_id;
    int64_t ts;
    char region[32], account[13];
    char *group, *stream, *data;
    size_t len;
};

/* Function output not yet ended by a newline, per environment. */
struct partial {
    uint64_t env_id;
    char *buf;
    size_t len;
    int64_t ts;
    struct partial *next;
};

/* END/REPORT lines of a container environment, held for HOLD_MS so output
 * that the Engine's log stream delivers after the result still goes before
 * them (with the docker executor only). */
#define HOLD_MS 30
struct held {
    struct sink_item *it;
    int64_t release_ms;   /* wall clock */
    struct held *next;    /* FIFO per store */
};

static struct {
    pthread_mutex_t mu;    /* store lock */
    pthread_mutex_t io_mu; /* I/O lock (taken before mu) */
    struct logs_group **g;
    size_t n, cap;
    uint64_t seq;
    uint64_t bytes, max_bytes;
    struct persist *docs;  /* NULL: memory only */
    char dir[4096];        /* <data-dir>/logs */
    struct queue q;        /* sink records (pool/queue.h: MPSC, wake on empty) */
    _Atomic size_t queued_bytes;   /* raw output in q */
    _Atomic uint64_t dropped_bytes; /* raw output refused since the last drain */
    pthread_t thread;
    bool running;
    _Atomic bool stop;
    struct partial *partials;
    struct held *held, **held_tail;
    int64_t env_last_ts;   /* newest output timestamp of the env being drained */
    char **trash;          /* group directories / stream files to remove (I/O lock) */
    size_t ntrash, captrash;
    char **undoc;          /* group documents to remove */
    size_t nundoc, capundoc;
    int64_t last_expire;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .io_mu = PTHREAD_MUTEX_INITIALIZER, .q = {.efd = -1}};

int64_t logs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sha256_hex(const char *s, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(s, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
    out[64] = 0;
}

static int push_str(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        char **nv = realloc(*v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    char *d = strdup(s);
    if (!d)
        return -ENOMEM;
    (*v)[(*n)++] = d;
    return 0;
}

/* ------------------------------------------------------------ records */

static int wbuf_reserve(struct logs_stream *s, size_t more)
{
    if (s->wlen + more <= s->wcap)
        return 0;
    size_t nc = s->wcap ? s->wcap : 4096;
    while (nc < s->wlen + more)
        nc *= 2;
    char *nb = realloc(s->wbuf, nc);
    if (!nb)
        return -ENOMEM;
    s->wbuf = nb;
    s->wcap = nc;
    return 0;
}

static void rec_fill(struct rec_hdr *h, uint32_t kind, int64_t ts, int64_t ingest, uint64_t seq,
                     const char *payload, size_t len)
{
    memset(h, 0, sizeof(*h));
    h->magic = REC_MAGIC;
    h->len = (uint32_t)len;
    h->kind = kind;
    h->ts = ts;
    h->ingest = ingest;
    h->seq = seq;
    uLong c = crc32(0L, (const Bytef *)h, sizeof(*h));
    c = crc32(c, (const Bytef *)payload, (uInt)len);
    h->crc = (uint32_t)c;
}

/* Appends one record to the stream's write buffer (persistent stores only). */
static void wbuf_record(struct logs_stream *s, uint32_t kind, int64_t ts, int64_t ingest,
                        uint64_t seq, const char *payload, size_t len)
{
    if (!S.docs || s->rewrite || wbuf_reserve(s, sizeof(struct rec_hdr) + len) < 0)
        return; /* a pending rewrite writes every event anyway */
    struct rec_hdr h;
    rec_fill(&h, kind, ts, ingest, seq, payload, len);
    memcpy(s->wbuf + s->wlen, &h, sizeof(h));
    memcpy(s->wbuf + s->wlen + sizeof(h), payload, len);
    s->wlen += sizeof(h) + len;
    s->dirty = true;
}

/* --------------------------------------------------------- groups/streams */

static int group_cmp(const struct logs_group *g, const char *region, const char *account,
                     const char *name)
{
    int c = strcmp(g->region, region);
    if (!c)
        c = strcmp(g->account, account);
    if (!c)
        c = strcmp(g->name, name);
    return c;
}

/* Index of the first group >= (region, account, name). */
static size_t group_lb(const char *region, const char *account, const char *name)
{
    size_t lo = 0, hi = S.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (group_cmp(S.g[mid], region, account, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct logs_group **logs_groups(size_t *n)
{
    *n = S.n;
    return S.g;
}

struct logs_group *logs_group_find(const char *region, const char *account, const char *name)
{
    size_t i = group_lb(region, account, name);
    return i < S.n && !group_cmp(S.g[i], region, account, name) ? S.g[i] : NULL;
}

static void stream_free(struct logs_stream *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ev[i].msg);
    free(s->ev);
    free(s->wbuf);
    free(s->name);
    free(s);
}

static void group_free(struct logs_group *g)
{
    for (size_t i = 0; i < g->n; i++)
        stream_free(g->st[i]);
    free(g->st);
    json_decref(g->tags);
    free(g->region);
    free(g->account);
    free(g->name);
    free(g);
}

static struct logs_group *group_insert(const char *region, const char *account, const char *name,
                                       int64_t creation, const char *id)
{
    if (S.n == S.cap) {
        size_t nc = S.cap ? S.cap * 2 : 16;
        struct logs_group **ng = realloc(S.g, nc * sizeof(*ng));
        if (!ng)
            return NULL;
        S.g = ng;
        S.cap = nc;
    }
    struct logs_group *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->region = strdup(region);
    g->account = strdup(account);
    g->name = strdup(name);
    g->tags = json_object();
    g->creation = creation;
    if (!g->region || !g->account || !g->name || !g->tags) {
        group_free(g);
        return NULL;
    }
    if (id) {
        snprintf(g->id, sizeof(g->id), "%s", id);
    } else {
        /* Unique per creation, so a deleted group's files never meet a new
         * group of the same name. */
        char key[700], hex[65];
        int kn = snprintf(key, sizeof(key), "%s/%s/%s", region, account, name);
        sha256_hex(key, (size_t)kn, hex);
        snprintf(g->id, sizeof(g->id), "%.40s-%" PRIx64 "-%" PRIx64, hex, (uint64_t)creation, ++S.seq);
    }
    size_t i = group_lb(region, account, name);
    memmove(S.g + i + 1, S.g + i, (S.n - i) * sizeof(*S.g));
    S.g[i] = g;
    S.n++;
    return g;
}

struct logs_group *logs_group_create(const char *region, const char *account, const char *name,
                                     int64_t now)
{
    struct logs_group *g = group_insert(region, account, name, now, NULL);
    if (g)
        g->doc_dirty = true;
    return g;
}

void logs_group_mark_dirty(struct logs_group *g)
{
    g->doc_dirty = true;
}

void logs_group_delete(struct logs_group *g)
{
    size_t i = group_lb(g->region, g->account, g->name);
    if (i >= S.n || S.g[i] != g)
        return;
    memmove(S.g + i, S.g + i + 1, (S.n - i - 1) * sizeof(*S.g));
    S.n--;
    for (size_t j = 0; j < g->n; j++)
        S.bytes -= g->st[j]->bytes + g->st[j]->n * EVENT_MEM;
    if (S.docs) {
        char path[4300];
        snprintf(path, sizeof(path), "%s/%s", S.dir, g->id);
        push_str(&S.trash, &S.ntrash, &S.captrash, path);
        push_str(&S.undoc, &S.nundoc, &S.capundoc, g->id);
    }
    group_free(g);
}

static size_t stream_lb(const struct logs_group *g, const char *name)
{
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(g->st[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct logs_stream *logs_stream_find(struct logs_group *g, const char *name)
{
    size_t i = stream_lb(g, name);
    return i < g->n && !strcmp(g->st[i]->name, name) ? g->st[i] : NULL;
}

static struct logs_stream *stream_insert(struct logs_group *g, const char *name, int64_t creation)
{
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 8;
        struct logs_stream **ns = realloc(g->st, nc * sizeof(*ns));
        if (!ns)
            return NULL;
        g->st = ns;
        g->cap = nc;
    }
    struct logs_stream *s = calloc(1, sizeof(*s));
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return NULL;
    }
    s->creation = creation;
    s->g = g;
    char hex[65];
    sha256_hex(name, strlen(name), hex);
    snprintf(s->file, sizeof(s->file), "%s.log", hex);
    size_t i = stream_lb(g, name);
    memmove(g->st + i + 1, g->st + i, (g->n - i) * sizeof(*g->st));
    g->st[i] = s;
    g->n++;
    return s;
}

struct logs_stream *logs_stream_create(struct logs_group *g, const char *name, int64_t now)
{
    struct logs_stream *s = stream_insert(g, name, now);
    if (s)
        wbuf_record(s, REC_STREAM, now, now, 0, name, strlen(name));
    return s;
}

void logs_stream_delete(struct logs_stream *s)
{
    struct logs_group *g = s->g;
    size_t i = stream_lb(g, s->name);
    if (i >= g->n || g->st[i] != s)
        return;
    memmove(g->st + i, g->st + i + 1, (g->n - i - 1) * sizeof(*g->st));
    g->n--;
    g->bytes -= s->bytes;
    S.bytes -= s->bytes + s->n * EVENT_MEM;
    if (S.docs) {
        char path[4400];
        snprintf(path, sizeof(path), "%s/%s/%s", S.dir, g->id, s->file);
        push_str(&S.trash, &S.ntrash, &S.captrash, path);
    }
    stream_free(s);
}

uint64_t logs_store_last_seq(void)
{
    return S.seq;
}

size_t logs_stream_lower_bound(const struct logs_stream *s, int64_t ts, uint64_t seq)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct logs_event *e = &s->ev[mid];
        if (e->ts < ts || (e->ts == ts && e->seq < seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Inserts an event with a given sequence (restore and add). */
static int stream_put(struct logs_stream *s, int64_t ts, int64_t ingest, uint64_t seq,
                      const char *msg, size_t len)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4;
        struct logs_event *ne = realloc(s->ev, nc * sizeof(*ne));
        if (!ne)
            return -ENOMEM;
        s->ev = ne;
        s->cap = nc;
    }
    char *m = malloc(len + 1);
    if (!m)
        return -ENOMEM;
    memcpy(m, msg, len);
    m[len] = 0;
    size_t i = s->n;
    if (i && (s->ev[i - 1].ts > ts || (s->ev[i - 1].ts == ts && s->ev[i - 1].seq > seq))) {
        i = logs_stream_lower_bound(s, ts, seq);
        memmove(s->ev + i + 1, s->ev + i, (s->n - i) * sizeof(*s->ev));
    }
    s->ev[i] = (struct logs_event){.ts = ts, .ingest = ingest, .seq = seq, .len = (uint32_t)len, .msg = m};
    s->n++;
    s->bytes += len;
    s->g->bytes += len;
    S.bytes += len + EVENT_MEM;
    if (ingest > s->last_ingest)
        s->last_ingest = ingest;
    if (seq > S.seq)
        S.seq = seq;
    return 0;
}

static void enforce_cap(void);

int logs_stream_add(struct logs_stream *s, int64_t ts, int64_t ingest, const char *msg, size_t len)
{
    uint64_t seq = ++S.seq;
    int rc = stream_put(s, ts, ingest, seq, msg, len);
    if (rc == 0) {
        wbuf_record(s, REC_EVENT, ts, ingest, seq, msg, len);
        if (S.max_bytes && S.bytes > S.max_bytes)
            enforce_cap();
    }
    return rc;
}

/* Drops the first k events of s. */
static void stream_drop_head(struct logs_stream *s, size_t k)
{
    uint64_t b = 0;
    for (size_t i = 0; i < k; i++) {
        b += s->ev[i].len;
        free(s->ev[i].msg);
    }
    memmove(s->ev, s->ev + k, (s->n - k) * sizeof(*s->ev));
    s->n -= k;
    if (s->n == 0 || s->n < s->cap / 4) {
        /* Give the array back: most streams (one per environment) end with
         * a handful of events, and stay listed after the cap or retention
         * dropped them. */
        size_t nc = s->n ? s->cap / 2 : 0;
        struct logs_event *ne = nc ? realloc(s->ev, nc * sizeof(*ne)) : NULL;
        if (!nc) {
            free(s->ev);
            s->ev = NULL;
            s->cap = 0;
        } else if (ne) {
            s->ev = ne;
            s->cap = nc;
        }
    }
    s->bytes -= b;
    s->g->bytes -= b;
    S.bytes -= b + k * EVENT_MEM;
    if (k) {
        /* The whole file is rewritten from memory: pending appends go. */
        s->rewrite = true;
        free(s->wbuf);
        s->wbuf = NULL;
        s->wlen = s->wcap = 0;
    }
}

/* A stream and how many of its oldest events enforce_cap drops. */
struct cap_head {
    struct logs_stream *s;
    size_t k;
};

static bool cap_before(const struct cap_head *a, const struct cap_head *b)
{
    const struct logs_event *x = &a->s->ev[a->k], *y = &b->s->ev[b->k];
    return x->ts < y->ts || (x->ts == y->ts && x->seq < y->seq);
}

static void cap_swap(struct cap_head *a, struct cap_head *b)
{
    struct cap_head t = *a;
    *a = *b;
    *b = t;
}

static void cap_sift(struct cap_head *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && cap_before(&h[l], &h[m]))
            m = l;
        if (l + 1 < n && cap_before(&h[l + 1], &h[m]))
            m = l + 1;
        if (m == i)
            return;
        cap_swap(&h[i], &h[m]);
        i = m;
    }
}

/* The size cap: drops the oldest events (by timestamp, then ingestion)
 * of the whole store until it holds at most 90% of the cap. A min-heap of
 * the streams' first kept events picks each victim, O(log streams); a
 * stream whose events all go leaves the heap for the array's tail. Every
 * stream then loses its dropped prefix with one stream_drop_head (one
 * memmove), not one per run of events. */
static void enforce_cap(void)
{
    uint64_t target = S.max_bytes / 10 * 9, bytes = S.bytes;
    size_t ns = 0, hn = 0;
    for (size_t i = 0; i < S.n; i++)
        ns += S.g[i]->n;
    struct cap_head *h = malloc(ns * sizeof(*h) + 1);
    if (!h) {
        LOG_WARN("logs: out of memory enforcing --logs-max-bytes; retried at the next event");
        return;
    }
    for (size_t i = 0; i < S.n; i++)
        for (size_t j = 0; j < S.g[i]->n; j++)
            if (S.g[i]->st[j]->n)
                h[hn++] = (struct cap_head){.s = S.g[i]->st[j]};
    size_t nall = hn;
    for (size_t i = hn / 2; i-- > 0;)
        cap_sift(h, hn, i);
    while (bytes > target && hn) {
        bytes -= h[0].s->ev[h[0].k].len + EVENT_MEM;
        if (++h[0].k == h[0].s->n) {
            hn--;
            cap_swap(&h[0], &h[hn]);
        }
        cap_sift(h, hn, 0);
    }
    for (size_t i = 0; i < nall; i++)
        if (h[i].k)
            stream_drop_head(h[i].s, h[i].k);
    free(h);
}

size_t logs_store_expire(struct logs_group *only, int64_t now)
{
    size_t dropped = 0;
    for (size_t i = 0; i < S.n; i++) {
        struct logs_group *g = S.g[i];
        if ((only && g != only) || g->retention_days <= 0)
            continue;
        int64_t cutoff = now - (int64_t)g->retention_days * 86400000;
        for (size_t j = 0; j < g->n; j++) {
            struct logs_stream *s = g->st[j];
            size_t k = logs_stream_lower_bound(s, cutoff, 0);
            if (k) {
                stream_drop_head(s, k);
                dropped += k;
            }
        }
    }
    return dropped;
}

/* ------------------------------------------------------------- the sink */

static const char *const LEVELS[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

/* Rank of a level name (TRACE 0 .. FATAL 5); WARNING/CRITICAL as Python
 * names them. Unknown: -1. */
static int level_rank(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < 6; i++)
        if (!strcasecmp(s, LEVELS[i]))
            return i;
    if (!strcasecmp(s, "WARNING"))
        return 3;
    if (!strcasecmp(s, "CRITICAL"))
        return 5;
    return -1;
}

static void iso_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000) % 1000);
}

/* snprintf(dst, cap, "%s", src) without the format machinery (per record
 * on the executor). */
static void copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void enqueue(const struct pool_log_rec *rec, bool raw, const char *data, size_t len)
{
    if (raw && atomic_load_explicit(&S.queued_bytes, memory_order_relaxed) + len > QUEUE_MAX_BYTES) {
        atomic_fetch_add_explicit(&S.dropped_bytes, len, memory_order_relaxed);
        return;
    }
    bool start = rec->kind == POOL_LOG_START;
    bool hold = rec->kind == POOL_LOG_REPORT && rec->output_lags;
    const struct fn_spec *fn = rec->fn;
    const char *group = fn->log_group ? fn->log_group : "";
    size_t gl = strlen(group), sl = strlen(rec->stream);
    struct sink_item *it = malloc(sizeof(*it) + gl + sl + len + 3);
    if (!it)
        return;
    it->raw = raw;
    it->start = start;
    it->hold = hold;
    it->json = fn->log_format && !strcmp(fn->log_format, "JSON");
    it->app_level = it->json ? level_rank(fn->app_log_level ? fn->app_log_level : "INFO") : -1;
    it->env_id = rec->env_id;
    it->ts = rec->time_ms;
    copy_trunc(it->region, sizeof(it->region), fn->region ? fn->region : "us-east-1");
    copy_trunc(it->account, sizeof(it->account), fn->account ? fn->account : "000000000000");
    it->group = (char *)(it + 1);
    memcpy(it->group, group, gl + 1);
    it->stream = it->group + gl + 1;
    memcpy(it->stream, rec->stream, sl + 1);
    it->data = it->stream + sl + 1;
    memcpy(it->data, data, len);
    it->data[len] = 0;
    it->len = len;
    if (raw)
        atomic_fetch_add_explicit(&S.queued_bytes, len, memory_order_relaxed);
    queue_push(&S.q, &it->node); /* wakes the flusher when it was empty */
}

void logs_store_sink(const struct pool_log_rec *rec, void *user)
{
    (void)user;
    const struct fn_spec *fn = rec->fn;
    if (rec->kind == POOL_LOG_OUTPUT) {
        enqueue(rec, true, rec->data, rec->len);
        return;
    }
    bool json = fn->log_format && !strcmp(fn->log_format, "JSON");
    /* System lines are INFO: SystemLogLevel WARN drops them (JSON only). */
    if (json && fn->system_log_level && level_rank(fn->system_log_level) > 2)
        return;
    char line[1024], t[32] = "";
    const char *ver = fn->version ? fn->version : "$LATEST";
    if (json) /* the text lines carry no time of their own */
        iso_time(rec->time_ms, t);
    if (rec->kind == POOL_LOG_START) {
        int n = json ? snprintf(line, sizeof(line),
                                "{\"time\":\"%s\",\"type\":\"platform.start\",\"record\":"
                                "{\"requestId\":\"%s\",\"version\":\"%s\"}}",
                                t, rec->request_id, ver)
                     : snprintf(line, sizeof(line), "START RequestId: %s Version: %s\n",
                                rec->request_id, ver);
        enqueue(rec, false, line, (size_t)n);
        return;
    }
    if (json) {
        int n = snprintf(line, sizeof(line),
                         "{\"time\":\"%s\",\"type\":\"platform.report\",\"record\":{\"requestId\":"
                         "\"%s\",\"metrics\":{\"durationMs\":%.3f,\"billedDurationMs\":%lld,"
                         "\"memorySizeMB\":%d,\"maxMemoryUsedMB\":%d",
                         t, rec->request_id, rec->duration_ms, rec->billed_ms, rec->memory_mb,
                         rec->max_memory_mb);
        if (rec->init_ms > 0)
            n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"initDurationMs\":%.3f", rec->init_ms);
        n += snprintf(line + n, sizeof(line) - (size_t)n, "},\"status\":\"%s\"}}",
                      rec->status ? rec->status : "success");
        enqueue(rec, false, line, (size_t)n);
        return;
    }
    int n = snprintf(line, sizeof(line), "END RequestId: %s\n", rec->request_id);
    enqueue(rec, false, line, (size_t)n);
    n = snprintf(line, sizeof(line),
                 "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %lld ms\tMemory Size: "
                 "%d MB\tMax Memory Used: %d MB\t",
                 rec->request_id, rec->duration_ms, rec->billed_ms, rec->memory_mb, rec->max_memory_mb);
    if (rec->init_ms > 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "Init Duration: %.2f ms\t", rec->init_ms);
    if (rec->status)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "Status: %s\t", rec->status);
    n += snprintf(line + n, sizeof(line) - (size_t)n, "\n");
    enqueue(rec, false, line, (size_t)n);
}

/* ------------------------------------------------------------- draining */

static struct logs_stream *sink_stream(const struct sink_item *it)
{
    if (!it->group[0] || !it->stream[0])
        return NULL;
    struct logs_group *g = logs_group_find(it->region, it->account, it->group);
    if (!g && !(g = logs_group_create(it->region, it->account, it->group, it->ts)))
        return NULL;
    struct logs_stream *s = logs_stream_find(g, it->stream);
    if (!s)
        s = logs_stream_create(g, it->stream, it->ts);
    return s;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    size_t n;
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return n;
}

/* Adds a message, invalid UTF-8 bytes replaced by U+FFFD as AWS does. */
static void add_utf8(struct logs_stream *s, int64_t ts, const char *p, size_t len)
{
    size_t i = 0, n;
    while (i < len && (n = utf8_seq((const unsigned char *)p + i, len - i)) != 0)
        i += n;
    if (i == len) {
        logs_stream_add(s, ts, logs_now_ms(), p, len);
        return;
    }
    char *out = malloc(len * 3 + 1);
    if (!out)
        return;
    size_t o = 0;
    for (i = 0; i < len;) {
        n = utf8_seq((const unsigned char *)p + i, len - i);
        if (n) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    logs_stream_add(s, ts, logs_now_ms(), out, o);
    free(out);
}

/* One application line; JSON format drops lines under ApplicationLogLevel. */
static void add_line(struct logs_stream *s, const struct sink_item *it, int64_t ts, const char *p,
                     size_t len)
{
    if (it->json && len && p[0] == '{' && p[len - 1] == '\n')
        len--; /* a JSON record is stored without its newline */
    if (it->json && len && p[0] == '{' && it->app_level > 0) {
        json_t *doc = json_loadb(p, len, 0, NULL);
        const char *lvl = json_string_value(json_object_get(doc, "level"));
        int r = level_rank(lvl);
        json_decref(doc);
        if (r >= 0 && r < it->app_level)
            return;
    }
    while (len > LOGS_MAX_EVENT_BYTES) {
        add_utf8(s, ts, p, LOGS_MAX_EVENT_BYTES);
        p += LOGS_MAX_EVENT_BYTES;
        len -= LOGS_MAX_EVENT_BYTES;
    }
    if (len)
        add_utf8(s, ts, p, len);
}

static struct partial **partial_find(uint64_t env_id)
{
    struct partial **pp = &S.partials;
    while (*pp && (*pp)->env_id != env_id)
        pp = &(*pp)->next;
    return pp;
}

static void partial_flush(struct logs_stream *s, const struct sink_item *it)
{
    struct partial **pp = partial_find(it->env_id);
    struct partial *pt = *pp;
    if (!pt)
        return;
    if (s && pt->len)
        add_line(s, it, pt->ts, pt->buf, pt->len);
    *pp = pt->next;
    free(pt->buf);
    free(pt);
}

/* Adds a held END/REPORT line, after everything its environment printed. */
static void release(struct sink_item *it)
{
    struct logs_stream *s = sink_stream(it);
    partial_flush(s, it);
    if (s) {
        int64_t ts = s->n && s->ev[s->n - 1].ts > it->ts ? s->ev[s->n - 1].ts : it->ts;
        logs_stream_add(s, ts, logs_now_ms(), it->data, it->len);
    }
    free(it);
}

/* Releases held lines: of one environment (env_id != 0), or those due by
 * now_ms (now_ms < 0: all). */
static void release_held(uint64_t env_id, int64_t now_ms)
{
    struct held **pp = &S.held;
    while (*pp) {
        struct held *h = *pp;
        bool go = env_id ? h->it->env_id == env_id : now_ms < 0 || h->release_ms <= now_ms;
        if (!env_id && !go)
            break; /* FIFO: release times only grow */
        if (!go) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        release(h->it);
        free(h);
    }
    S.held_tail = pp;
    while (*S.held_tail)
        S.held_tail = &(*S.held_tail)->next;
}

/* Takes one sink record into the store; returns false when it keeps the
 * record (held), true when the caller frees it. */
static bool drain_item(struct sink_item *it)
{
    if (it->hold) {
        struct held *h = malloc(sizeof(*h));
        if (h) {
            h->it = it;
            h->release_ms = logs_now_ms() + HOLD_MS;
            h->next = NULL;
            if (!S.held_tail)
                S.held_tail = &S.held;
            *S.held_tail = h;
            S.held_tail = &h->next;
            return false;
        }
    }
    if (it->start)
        release_held(it->env_id, 0);
    struct logs_stream *s = sink_stream(it);
    if (!it->raw) {
        partial_flush(s, it);
        if (s)
            logs_stream_add(s, it->ts, logs_now_ms(), it->data, it->len);
        return true;
    }
    const char *p = it->data, *end = it->data + it->len;
    struct partial **pp = partial_find(it->env_id);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        size_t n = (size_t)(nl - p) + 1;
        if (*pp) {
            /* Complete the pending partial line. */
            struct partial *pt = *pp;
            char *nb = realloc(pt->buf, pt->len + n);
            if (nb) {
                memcpy(nb + pt->len, p, n);
                pt->buf = nb;
                pt->len += n;
            }
            if (s)
                add_line(s, it, pt->ts, pt->buf, pt->len);
            *pp = pt->next;
            free(pt->buf);
            free(pt);
            pp = partial_find(it->env_id);
        } else if (s) {
            add_line(s, it, it->ts, p, n);
        }
        p = nl + 1;
    }
    if (p < end) {
        size_t n = (size_t)(end - p);
        struct partial *pt = *pp;
        if (!pt && (pt = calloc(1, sizeof(*pt)))) {
            pt->env_id = it->env_id;
            pt->ts = it->ts;
            pt->next = S.partials;
            S.partials = pt;
        }
        char *nb = pt ? realloc(pt->buf, pt->len + n) : NULL;
        if (nb) {
            memcpy(nb + pt->len, p, n);
            pt->buf = nb;
            pt->len += n;
            /* An overlong line goes out in LOGS_MAX_EVENT_BYTES pieces. */
            size_t off = 0;
            while (pt->len - off >= LOGS_MAX_EVENT_BYTES) {
                if (s)
                    add_line(s, it, pt->ts, pt->buf + off, LOGS_MAX_EVENT_BYTES);
                off += LOGS_MAX_EVENT_BYTES;
            }
            if (off) {
                memmove(pt->buf, pt->buf + off, pt->len - off);
                pt->len -= off;
            }
        }
    }
    return true;
}

/* Moves queued sink records into the store. Store lock held. */
static void drain_queue(void)
{
    struct cds_wfcq_node *node;
    /* Single consumer: the store lock is held. */
    while ((node = queue_pop(&S.q)) != NULL) {
        struct sink_item *it = caa_container_of(node, struct sink_item, node);
        if (it->raw)
            atomic_fetch_sub_explicit(&S.queued_bytes, it->len, memory_order_relaxed);
        if (drain_item(it))
            free(it);
    }
    uint64_t dropped = atomic_exchange_explicit(&S.dropped_bytes, 0, memory_order_relaxed);
    if (dropped)
        LOG_WARN("logs: dropped %" PRIu64 " bytes of function output: more than %u MB were "
                 "waiting to be stored", dropped, QUEUE_MAX_BYTES >> 20);
    if (S.held)
        release_held(0, S.stop ? -1 : logs_now_ms());
}

void logs_store_lock(void)
{
    pthread_mutex_lock(&S.mu);
    drain_queue();
}

void logs_store_unlock(void)
{
    pthread_mutex_unlock(&S.mu);
}

/* -------------------------------------------------------------- flushing */

struct pending_write {
    char path[4400];
    char *data;
    size_t len;
    bool replace; /* write a new file and rename it over path */
};

struct pending_doc {
    char id[96];
    char *json;
};

struct flush_batch {
    struct pending_write *w;
    size_t nw, capw;
    struct pending_doc *d;
    size_t nd, capd;
    char **trash, **undoc;
    size_t ntrash, nundoc;
};

static json_t *group_doc(const struct logs_group *g)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:i,s:O}", "region", g->region, "account", g->account,
                     "logGroupName", g->name, "creationTime", (json_int_t)g->creation,
                     "retentionInDays", g->retention_days, "tags", g->tags);
}

/* Serialises a whole stream (header + events) for a rewrite. */
static char *stream_image(const struct logs_stream *s, size_t *len)
{
    size_t total = sizeof(struct rec_hdr) + strlen(s->name);
    for (size_t i = 0; i < s->n; i++)
        total += sizeof(struct rec_hdr) + s->ev[i].len;
    char *buf = malloc(total ? total : 1), *p = buf;
    if (!buf)
        return NULL;
    struct rec_hdr h;
    size_t nl = strlen(s->name);
    rec_fill(&h, REC_STREAM, s->creation, s->creation, 0, s->name, nl);
    memcpy(p, &h, sizeof(h));
    memcpy(p + sizeof(h), s->name, nl);
    p += sizeof(h) + nl;
    for (size_t i = 0; i < s->n; i++) {
        const struct logs_event *e = &s->ev[i];
        rec_fill(&h, REC_EVENT, e->ts, e->ingest, e->seq, e->msg, e->len);
        memcpy(p, &h, sizeof(h));
        memcpy(p + sizeof(h), e->msg, e->len);
        p += sizeof(h) + e->len;
    }
    *len = total;
    return buf;
}

/* Collects everything to write. Store lock held. */
static void collect(struct flush_batch *b)
{
    for (size_t i = 0; i < S.n; i++) {
        struct logs_group *g = S.g[i];
        if (g->doc_dirty) {
            json_t *doc = group_doc(g);
            char *js = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
            json_decref(doc);
            if (js && b->nd == b->capd) {
                size_t nc = b->capd ? b->capd * 2 : 8;
                struct pending_doc *nd = realloc(b->d, nc * sizeof(*nd));
                if (nd) {
                    b->d = nd;
                    b->capd = nc;
                }
            }
            if (js && b->nd < b->capd) {
                snprintf(b->d[b->nd].id, sizeof(b->d[b->nd].id), "%s", g->id);
                b->d[b->nd++].json = js;
                g->doc_dirty = false;
            } else {
                free(js);
            }
        }
        for (size_t j = 0; j < g->n; j++) {
            struct logs_stream *s = g->st[j];
            if (!s->dirty && !s->rewrite)
                continue;
            if (b->nw == b->capw) {
                size_t nc = b->capw ? b->capw * 2 : 16;
                struct pending_write *nw = realloc(b->w, nc * sizeof(*nw));
                if (!nw)
                    return;
                b->w = nw;
                b->capw = nc;
            }
            struct pending_write *w = &b->w[b->nw];
            snprintf(w->path, sizeof(w->path), "%s/%s/%s", S.dir, g->id, s->file);
            if (s->rewrite) {
                w->data = stream_image(s, &w->len);
                w->replace = true;
                if (!w->data)
                    continue;
                s->wlen = 0;
            } else {
                w->data = s->wbuf;
                w->len = s->wlen;
                w->replace = false;
                s->wbuf = NULL;
                s->wlen = s->wcap = 0;
            }
            s->dirty = s->rewrite = false;
            b->nw++;
        }
    }
    b->trash = S.trash;
    b->ntrash = S.ntrash;
    b->undoc = S.undoc;
    b->nundoc = S.nundoc;
    S.trash = S.undoc = NULL;
    S.ntrash = S.captrash = S.nundoc = S.capundoc = 0;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes a batch. I/O lock held, store lock not held. */
static void apply(struct flush_batch *b)
{
    for (size_t i = 0; i < b->nundoc; i++) {
        persist_remove(S.docs, b->undoc[i]);
        free(b->undoc[i]);
    }
    for (size_t i = 0; i < b->ntrash; i++) {
        int rc = fsutil_rm_rf(b->trash[i]);
        if (rc < 0 && rc != -ENOENT)
            LOG_WARN("logs: cannot remove %s: %s", b->trash[i], strerror(-rc));
        free(b->trash[i]);
    }
    for (size_t i = 0; i < b->nd; i++) {
        int rc = persist_write(S.docs, b->d[i].id, b->d[i].json, strlen(b->d[i].json));
        if (rc < 0)
            LOG_WARN("logs: cannot write log group %s: %s", b->d[i].id, strerror(-rc));
        char dir[4300];
        snprintf(dir, sizeof(dir), "%s/%s", S.dir, b->d[i].id);
        mkdir(dir, 0755);
        free(b->d[i].json);
    }
    for (size_t i = 0; i < b->nw; i++) {
        struct pending_write *w = &b->w[i];
        char tmp[4500];
        int fd;
        char *slash = strrchr(w->path, '/');
        *slash = 0;
        mkdir(w->path, 0755);
        *slash = '/';
        if (w->replace) {
            snprintf(tmp, sizeof(tmp), "%s.tmp", w->path);
            fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        } else {
            fd = open(w->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        }
        int rc = fd < 0 ? -errno : write_all(fd, w->data, w->len);
        if (fd >= 0)
            close(fd);
        if (rc == 0 && w->replace && rename(tmp, w->path) < 0)
            rc = -errno;
        if (rc < 0)
            LOG_WARN("logs: cannot write %s: %s", w->path, strerror(-rc));
        free(w->data);
    }
    free(b->w);
    free(b->d);
    free(b->trash);
    free(b->undoc);
    memset(b, 0, sizeof(*b));
}

void logs_store_lock_write(void)
{
    pthread_mutex_lock(&S.io_mu);
    logs_store_lock();
}

void logs_store_unlock_write(void)
{
    struct flush_batch b = {0};
    if (S.docs)
        collect(&b);
    pthread_mutex_unlock(&S.mu);
    if (S.docs)
        apply(&b);
    pthread_mutex_unlock(&S.io_mu);
}

static void *flusher_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "logs-flush");
    bool holding = false;
    while (!S.stop) {
        struct pollfd pfd = {.fd = S.q.efd, .events = POLLIN};
        poll(&pfd, 1, holding ? HOLD_MS : EXPIRE_EVERY_MS);
        if (pfd.revents & POLLIN) {
            queue_ack_wake(&S.q);
            /* Batch what arrives in the next moments into one write. */
            struct timespec d = {0, FLUSH_MS * 1000000L};
            nanosleep(&d, NULL);
        }
        logs_store_lock_write();
        holding = S.held != NULL;
        int64_t now = logs_now_ms();
        if (now - S.last_expire >= EXPIRE_EVERY_MS) {
            S.last_expire = now;
            logs_store_expire(NULL, now);
        }
        logs_store_unlock_write();
    }
    return NULL;
}

/* --------------------------------------------------------------- restore */

static int cmp_event(const void *a, const void *b)
{
    const struct logs_event *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A NUL-terminated copy of p[0..len) (which may hold NULs itself). */
static char *memdup0(const char *p, size_t len)
{
    char *m = malloc(len + 1);
    if (m) {
        memcpy(m, p, len);
        m[len] = 0;
    }
    return m;
}

/* Loads one stream file; cuts a torn tail. */
static void load_stream(struct logs_group *g, const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) < 0 || !(buf = malloc((size_t)st.st_size + 1))) {
        close(fd);
        return;
    }
    size_t len = 0;
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    size_t off = 0;
    struct logs_stream *s = NULL;
    while (off + sizeof(struct rec_hdr) <= len) {
        struct rec_hdr h;
        memcpy(&h, buf + off, sizeof(h));
        if (h.magic != REC_MAGIC || h.len > len - off - sizeof(h))
            break;
        uint32_t crc = h.crc;
        h.crc = 0;
        uLong c = crc32(0L, (const Bytef *)&h, sizeof(h));
        c = crc32(c, (const Bytef *)buf + off + sizeof(h), h.len);
        if ((uint32_t)c != crc)
            break;
        const char *payload = buf + off + sizeof(h);
        if (h.kind == REC_STREAM && !s) {
            char *name = memdup0(payload, h.len);
            if (name && !logs_stream_find(g, name))
                s = stream_insert(g, name, h.ts);
            free(name);
            if (!s)
                break;
        } else if (h.kind == REC_EVENT && s) {
            /* Appended in ingestion order; sorted once below. */
            if (s->n == s->cap) {
                size_t nc = s->cap ? s->cap * 2 : 4;
                struct logs_event *ne = realloc(s->ev, nc * sizeof(*ne));
                if (!ne)
                    break;
                s->ev = ne;
                s->cap = nc;
            }
            char *m = memdup0(payload, h.len);
            if (!m)
                break;
            s->ev[s->n++] = (struct logs_event){h.ts, h.ingest, h.seq, h.len, m};
            s->bytes += h.len;
            g->bytes += h.len;
            S.bytes += h.len + EVENT_MEM;
            if (h.ingest > s->last_ingest)
                s->last_ingest = h.ingest;
            if (h.seq > S.seq)
                S.seq = h.seq;
        } else {
            break;
        }
        off += sizeof(h) + h.len;
    }
    if (off < len) {
        LOG_WARN("logs: %s: cutting a torn tail of %zu bytes", path, len - off);
        if (ftruncate(fd, (off_t)off) < 0)
            LOG_WARN("logs: cannot truncate %s: %s", path, strerror(errno));
    }
    if (s)
        qsort(s->ev, s->n, sizeof(*s->ev), cmp_event);
    else
        unlink(path);
    close(fd);
    free(buf);
}

static int load_group(void *ud, const char *id, json_t *doc)
{
    (void)ud;
    const char *region = json_string_value(json_object_get(doc, "region"));
    const char *account = json_string_value(json_object_get(doc, "account"));
    const char *name = json_string_value(json_object_get(doc, "logGroupName"));
    if (!region || !account || !name || logs_group_find(region, account, name)) {
        LOG_WARN("logs: ignoring log group document %s", id);
        return 0;
    }
    struct logs_group *g = group_insert(region, account, name,
                                        json_integer_value(json_object_get(doc, "creationTime")), id);
    if (!g)
        return -ENOMEM;
    g->retention_days = (int)json_integer_value(json_object_get(doc, "retentionInDays"));
    json_t *tags = json_object_get(doc, "tags");
    if (json_is_object(tags))
        json_object_update(g->tags, tags);
    char dir[4300];
    snprintf(dir, sizeof(dir), "%s/%s", S.dir, id);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[4600];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp"))
            unlink(path); /* an interrupted rewrite: the old file is intact */
        else if (n > 4 && !strcmp(e->d_name + n - 4, ".log"))
            load_stream(g, path);
    }
    closedir(d);
    return 0;
}

/* Removes stream directories whose group document is gone. */
static void remove_orphans(void)
{
    DIR *d = opendir(S.dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".json"))
            continue;
        bool known = false;
        for (size_t i = 0; i < S.n && !known; i++)
            known = !strcmp(S.g[i]->id, e->d_name);
        if (!known) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/%s", S.dir, e->d_name);
            fsutil_rm_rf(path);
        }
    }
    closedir(d);
}

int logs_store_init(struct persist *parent, const char *data_dir, uint64_t max_bytes)
{
    int rc = queue_init(&S.q);
    if (rc < 0)
        return rc;
    S.max_bytes = max_bytes;
    S.last_expire = logs_now_ms();
    if (parent) {
        snprintf(S.dir, sizeof(S.dir), "%s/logs", data_dir);
        rc = persist_open_sub(&S.docs, parent, "logs");
        if (rc < 0)
            return rc;
        rc = persist_load(S.docs, load_group, NULL);
        if (rc < 0)
            return rc;
        remove_orphans();
        uint64_t events = 0;
        for (size_t i = 0; i < S.n; i++)
            for (size_t j = 0; j < S.g[i]->n; j++)
                events += S.g[i]->st[j]->n;
        if (S.n)
            LOG_INFO("logs: restored %zu log groups, %" PRIu64 " events, %" PRIu64 " bytes", S.n,
                     events, S.bytes);
        logs_store_expire(NULL, logs_now_ms());
        if (S.max_bytes && S.bytes > S.max_bytes)
            enforce_cap();
    }
    /* The flusher also runs memory-only: it drains the queue and expires. */
    if (pthread_create(&S.thread, NULL, flusher_main, NULL) != 0)
        return -EAGAIN;
    S.running = true;
    return 0;
}

void logs_store_shutdown(void)
{
    if (S.running) {
        S.stop = true;
        uint64_t one = 1;
        ssize_t w = write(S.q.efd, &one, sizeof(one));
        (void)w;
        pthread_join(S.thread, NULL);
        S.running = false;
    }
    /* Final flush of whatever arrived since. */
    logs_store_lock_write();
    logs_store_unlock_write();
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.n; i++)
        group_free(S.g[i]);
    free(S.g);
    S.g = NULL;
    S.n = S.cap = 0;
    while (S.partials) {
        struct partial *p = S.partials;
        S.partials = p->next;
        free(p->buf);
        free(p);
    }
    for (size_t i = 0; i < S.ntrash; i++)
        free(S.trash[i]);
    for (size_t i = 0; i < S.nundoc; i++)
        free(S.undoc[i]);
    free(S.trash);
    free(S.undoc);
    S.trash = S.undoc = NULL;
    S.ntrash = S.nundoc = S.captrash = S.capundoc = 0;
    pthread_mutex_unlock(&S.mu);
    persist_close(S.docs);
    S.docs = NULL;
    if (S.q.efd >= 0)
        queue_fini(&S.q);
}
