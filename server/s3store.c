/* s3store: buckets, versions, multipart uploads and blobs on disk (see
 * s3store.h for the design). */
#include "server/s3store.h"

#include <dirent.h>
#include <stdarg.h>
#include <sys/types.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "runtime/fsutil.h"
#include "runtime/log.h"

struct ver {
    char vid[40];
    bool dm;
    char sha[65];
    uint64_t size;
    char etag[80];
    int64_t mtime_ms;
    json_t *headers;
};

struct obj {
    char *key;
    size_t nv;
    struct ver *v; /* oldest first; the latest is v[nv - 1] */
};

struct bucket {
    struct s3_bucket_info info;
    struct obj **objs; /* sorted by key (bytewise) */
    size_t n, cap;
};

struct upload {
    char id[65];
    char bucket[64];
    char *key;
    json_t *headers;
    int64_t initiated_ms;
    struct s3_part *parts; /* sorted by number */
    size_t n_parts;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_root; /* <root>/s3 */
static struct bucket **g_buckets;
static size_t g_n_buckets;
static struct upload **g_uploads;
static size_t g_n_uploads;
static json_t *g_refs; /* blob sha -> reference count */
static atomic_uint g_tmp_seq;

/* --- helpers ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = h[p[i] >> 4];
        out[2 * i + 1] = h[p[i] & 15];
    }
    out[2 * n] = 0;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex(md, 32, out);
}

static void random_token(char *out, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    unsigned char r[128];
    if (n > sizeof(r))
        n = sizeof(r);
    if (getrandom(r, n, 0) != (ssize_t)n)
        for (size_t i = 0; i < n; i++)
            r[i] = (unsigned char)rand();
    for (size_t i = 0; i < n; i++)
        out[i] = a[r[i] & 63];
    out[n] = 0;
}

static char *path_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *path_of(const char *fmt, ...)
{
    char *p = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&p, fmt, ap) < 0)
        p = NULL;
    va_end(ap);
    return p;
}

static int fsync_path(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Durably replaces dir/name with text: temp + fsync + rename + fsync(dir). */
static int write_doc(const char *dir, const char *name, const char *text)
{
    char *tmp = path_of("%s/.%s.tmp.%u", dir, name, atomic_fetch_add(&g_tmp_seq, 1));
    char *final = path_of("%s/%s", dir, name);
    int rc = 0, fd = -1;
    if (!tmp || !final) {
        rc = -ENOMEM;
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = write_all(fd, text, strlen(text))) || (fsync(fd) && (rc = -errno)))
        goto out;
    close(fd);
    fd = -1;
    if (rename(tmp, final)) {
        rc = -errno;
        goto out;
    }
    rc = fsync_path(dir);
out:
    if (fd >= 0)
        close(fd);
    if (rc && tmp)
        unlink(tmp);
    free(tmp);
    free(final);
    return rc;
}

static int remove_doc(const char *dir, const char *name)
{
    char *p = path_of("%s/%s", dir, name);
    if (!p)
        return -ENOMEM;
    int rc = unlink(p) && errno != ENOENT ? -errno : 0;
    free(p);
    return rc ? rc : fsync_path(dir);
}

static json_t *read_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        LOG_WARN("s3: %s does not parse (%s); ignored", path, e.text);
    return j;
}

/* --- blob reference counts (under g_mu) ---------------------------------------- */

static void ref_blob(const char *sha)
{
    json_t *c = json_object_get(g_refs, sha);
    json_object_set_new(g_refs, sha, json_integer(c ? json_integer_value(c) + 1 : 1));
}

static void unref_blob(const char *sha)
{
    json_t *c = json_object_get(g_refs, sha);
    if (c && json_integer_value(c) > 1) {
        json_object_set_new(g_refs, sha, json_integer(json_integer_value(c) - 1));
        return;
    }
    json_object_del(g_refs, sha);
    char *p = path_of("%s/blobs/%s", g_root, sha);
    if (p && unlink(p) && errno != ENOENT)
        LOG_WARN("s3: cannot remove blob %s: %s", sha, strerror(errno));
    free(p);
}

/* --- index (under g_mu) ---------------------------------------------------------- */

static struct bucket *find_bucket(const char *name)
{
    for (size_t i = 0; i < g_n_buckets; i++)
        if (!strcmp(g_buckets[i]->info.name, name))
            return g_buckets[i];
    return NULL;
}

/* Index of the first key >= key. */
static size_t lower_bound(const struct bucket *b, const char *key)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(b->objs[mid]->key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct obj *find_obj(const struct bucket *b, const char *key)
{
    size_t i = lower_bound(b, key);
    return i < b->n && !strcmp(b->objs[i]->key, key) ? b->objs[i] : NULL;
}

static struct obj *insert_obj(struct bucket *b, const char *key)
{
    size_t i = lower_bound(b, key);
    if (i < b->n && !strcmp(b->objs[i]->key, key))
        return b->objs[i];
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        struct obj **no = realloc(b->objs, ncap * sizeof(*no));
        if (!no)
            return NULL;
        b->objs = no;
        b->cap = ncap;
    }
    struct obj *o = calloc(1, sizeof(*o));
    if (!o || !(o->key = strdup(key))) {
        free(o);
        return NULL;
    }
    memmove(b->objs + i + 1, b->objs + i, (b->n - i) * sizeof(*b->objs));
    b->objs[i] = o;
    b->n++;
    return o;
}

static void free_obj(struct obj *o)
{
    for (size_t i = 0; i < o->nv; i++)
        json_decref(o->v[i].headers);
    free(o->v);
    free(o->key);
    free(o);
}

static void remove_obj(struct bucket *b, struct obj *o)
{
    size_t i = lower_bound(b, o->key);
    if (i < b->n && b->objs[i] == o) {
        memmove(b->objs + i, b->objs + i + 1, (b->n - i - 1) * sizeof(*b->objs));
        b->n--;
    }
    free_obj(o);
}

static void ver_out(const struct ver *v, bool latest, struct s3_version *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->vid, sizeof(out->vid), "%s", v->vid);
    out->delete_marker = v->dm;
    out->latest = latest;
    snprintf(out->sha, sizeof(out->sha), "%s", v->sha);
    out->size = v->size;
    snprintf(out->etag, sizeof(out->etag), "%s", v->etag);
    out->mtime_ms = v->mtime_ms;
    out->headers = json_incref(v->headers);
}

void s3_version_release(struct s3_version *v)
{
    json_decref(v->headers);
    v->headers = NULL;
}

static json_t *ver_json(const struct ver *v)
{
    return json_pack("{s:s,s:b,s:s,s:I,s:s,s:I,s:O}", "vid", v->vid, "dm", v->dm, "sha", v->sha, "size",
                     (json_int_t)v->size, "etag", v->etag, "mtime", (json_int_t)v->mtime_ms, "headers",
                     v->headers ? v->headers : json_null());
}

static int ver_from_json(json_t *j, struct ver *v)
{
    const char *vid = json_string_value(json_object_get(j, "vid"));
    const char *sha = json_string_value(json_object_get(j, "sha"));
    const char *etag = json_string_value(json_object_get(j, "etag"));
    if (!vid || !sha || !etag)
        return -1;
    memset(v, 0, sizeof(*v));
    snprintf(v->vid, sizeof(v->vid), "%s", vid);
    v->dm = json_is_true(json_object_get(j, "dm"));
    snprintf(v->sha, sizeof(v->sha), "%s", sha);
    v->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
    snprintf(v->etag, sizeof(v->etag), "%s", etag);
    v->mtime_ms = json_integer_value(json_object_get(j, "mtime"));
    json_t *h = json_object_get(j, "headers");
    v->headers = json_is_object(h) ? json_incref(h) : json_object();
    return 0;
}

/* Writes (or, with no versions left, removes) the key's document. */
static int save_obj(const struct bucket *b, const struct obj *o)
{
    char name[80], sha[65];
    char *dir = path_of("%s/meta/%s", g_root, b->info.name);
    if (!dir)
        return -ENOMEM;
    sha256_hex(o->key, strlen(o->key), sha);
    snprintf(name, sizeof(name), "%s.json", sha);
    int rc;
    if (!o->nv) {
        rc = remove_doc(dir, name);
    } else {
        json_t *vs = json_array();
        for (size_t i = 0; i < o->nv; i++)
            json_array_append_new(vs, ver_json(&o->v[i]));
        json_t *doc = json_pack("{s:s,s:o}", "key", o->key, "versions", vs);
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        rc = text ? write_doc(dir, name, text) : -ENOMEM;
        free(text);
    }
    free(dir);
    return rc;
}

static int save_bucket(const struct bucket *b)
{
    char name[80];
    char *dir = path_of("%s/buckets", g_root);
    if (!dir)
        return -ENOMEM;
    snprintf(name, sizeof(name), "%s.json", b->info.name);
    json_t *doc = json_pack("{s:s,s:s,s:s,s:I,s:i}", "name", b->info.name, "account", b->info.account, "region",
                            b->info.region, "created", (json_int_t)b->info.created_ms, "versioning",
                            (int)b->info.versioning);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    int rc = text ? write_doc(dir, name, text) : -ENOMEM;
    free(text);
    free(dir);
    return rc;
}

/* --- loading ---------------------------------------------------------------------------- */

static int cmp_obj(const void *a, const void *b)
{
    return strcmp((*(struct obj *const *)a)->key, (*(struct obj *const *)b)->key);
}

static void load_objects(struct bucket *b)
{
    char *dir = path_of("%s/meta/%s", g_root, b->info.name);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') {
            if (strstr(e->d_name, ".tmp.")) {
                char *p = path_of("%s/%s", dir, e->d_name);
                if (p)
                    unlink(p);
                free(p);
            }
            continue;
        }
        char *p = path_of("%s/%s", dir, e->d_name);
        json_t *doc = p ? read_json(p) : NULL;
        free(p);
        const char *key = json_string_value(json_object_get(doc, "key"));
        json_t *vs = json_object_get(doc, "versions");
        if (key && json_array_size(vs)) {
            struct obj *o = calloc(1, sizeof(*o));
            if (b->n == b->cap) {
                size_t ncap = b->cap ? b->cap * 2 : 64;
                struct obj **no = realloc(b->objs, ncap * sizeof(*no));
                if (no) {
                    b->objs = no;
                    b->cap = ncap;
                }
            }
            if (o && b->n < b->cap && (o->key = strdup(key)) &&
                (o->v = calloc(json_array_size(vs), sizeof(*o->v)))) {
                size_t i;
                json_t *jv;
                json_array_foreach(vs, i, jv) {
                    if (!ver_from_json(jv, &o->v[o->nv])) {
                        if (!o->v[o->nv].dm)
                            ref_blob(o->v[o->nv].sha);
                        o->nv++;
                    }
                }
                b->objs[b->n++] = o;
            } else if (o) {
                free(o->key);
                free(o);
            }
        }
        json_decref(doc);
    }
    if (d)
        closedir(d);
    free(dir);
    if (b->n)
        qsort(b->objs, b->n, sizeof(*b->objs), cmp_obj);
}

static void load_buckets(void)
{
    char *dir = path_of("%s/buckets", g_root);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        char *p = path_of("%s/%s", dir, e->d_name);
        json_t *doc = p ? read_json(p) : NULL;
        free(p);
        const char *name = json_string_value(json_object_get(doc, "name"));
        const char *account = json_string_value(json_object_get(doc, "account"));
        const char *region = json_string_value(json_object_get(doc, "region"));
        struct bucket *b = name && account && region ? calloc(1, sizeof(*b)) : NULL;
        struct bucket **nb = b ? realloc(g_buckets, (g_n_buckets + 1) * sizeof(*nb)) : NULL;
        if (nb) {
            g_buckets = nb;
            snprintf(b->info.name, sizeof(b->info.name), "%s", name);
            snprintf(b->info.account, sizeof(b->info.account), "%s", account);
            snprintf(b->info.region, sizeof(b->info.region), "%s", region);
            b->info.created_ms = json_integer_value(json_object_get(doc, "created"));
            b->info.versioning = (enum s3_versioning)json_integer_value(json_object_get(doc, "versioning"));
            g_buckets[g_n_buckets++] = b;
            load_objects(b);
        } else {
            free(b);
        }
        json_decref(doc);
    }
    if (d)
        closedir(d);
    free(dir);
}

static int cmp_part(const void *a, const void *b)
{
    return ((const struct s3_part *)a)->number - ((const struct s3_part *)b)->number;
}

static void load_uploads(void)
{
    char *dir = path_of("%s/uploads", g_root);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *udir = path_of("%s/%s", dir, e->d_name);
        char *meta = udir ? path_of("%s/upload.json", udir) : NULL;
        json_t *doc = meta ? read_json(meta) : NULL;
        const char *bucket = json_string_value(json_object_get(doc, "bucket"));
        const char *key = json_string_value(json_object_get(doc, "key"));
        struct upload *u = bucket && key && find_bucket(bucket) && strlen(e->d_name) < sizeof(u->id)
                               ? calloc(1, sizeof(*u)) : NULL;
        struct upload **nu = u ? realloc(g_uploads, (g_n_uploads + 1) * sizeof(*nu)) : NULL;
        if (nu && (u->key = strdup(key))) {
            g_uploads = nu;
            memcpy(u->id, e->d_name, strlen(e->d_name) + 1);
            snprintf(u->bucket, sizeof(u->bucket), "%s", bucket);
            json_t *h = json_object_get(doc, "headers");
            u->headers = json_is_object(h) ? json_incref(h) : json_object();
            u->initiated_ms = json_integer_value(json_object_get(doc, "initiated"));
            DIR *pd = opendir(udir);
            struct dirent *pe;
            while (pd && (pe = readdir(pd))) {
                int num;
                char md5[33];
                struct stat st;
                char *pp = path_of("%s/%s", udir, pe->d_name);
                if (pe->d_name[0] == '.' && pp && strstr(pe->d_name, ".tmp"))
                    unlink(pp);
                else if (pp && sscanf(pe->d_name, "%d-%32[0-9a-f]", &num, md5) == 2 && strlen(md5) == 32 &&
                         !stat(pp, &st)) {
                    struct s3_part *np = realloc(u->parts, (u->n_parts + 1) * sizeof(*np));
                    if (np) {
                        u->parts = np;
                        struct s3_part *p = &u->parts[u->n_parts++];
                        p->number = num;
                        p->size = (uint64_t)st.st_size;
                        memcpy(p->md5_hex, md5, 33);
                        p->mtime_ms = (int64_t)st.st_mtime * 1000;
                    }
                }
                free(pp);
            }
            if (pd)
                closedir(pd);
            if (u->n_parts)
                qsort(u->parts, u->n_parts, sizeof(*u->parts), cmp_part);
            g_uploads[g_n_uploads++] = u;
        } else {
            if (u)
                free(u);
            if (udir && !doc) /* a torn create: nothing was acknowledged */
                fsutil_rm_rf(udir);
        }
        json_decref(doc);
        free(meta);
        free(udir);
    }
    if (d)
        closedir(d);
    free(dir);
}

/* Removes blobs no version references (a crash between the blob rename and
 * the document write) and leftovers in tmp/. */
static void collect_garbage(void)
{
    char *dir = path_of("%s/blobs", g_root);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    int removed = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || json_object_get(g_refs, e->d_name))
            continue;
        char *p = path_of("%s/%s", dir, e->d_name);
        if (p && !unlink(p))
            removed++;
        free(p);
    }
    if (d)
        closedir(d);
    free(dir);
    if (removed)
        LOG_INFO("s3: removed %d unreferenced blob(s)", removed);
    char *tmp = path_of("%s/tmp", g_root);
    if (tmp) {
        fsutil_rm_rf(tmp);
        mkdir(tmp, 0755);
    }
    free(tmp);
}

int s3store_open(const char *root)
{
    static const char *const subs[] = {"blobs", "buckets", "meta", "uploads", "tmp"};
    g_root = path_of("%s/s3", root);
    g_refs = json_object();
    if (!g_root || !g_refs)
        return -ENOMEM;
    if (mkdir(g_root, 0755) && errno != EEXIST)
        return -errno;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        char *p = path_of("%s/%s", g_root, subs[i]);
        int rc = !p ? -ENOMEM : mkdir(p, 0755) && errno != EEXIST ? -errno : 0;
        free(p);
        if (rc)
            return rc;
    }
    pthread_mutex_lock(&g_mu);
    load_buckets();
    load_uploads();
    collect_garbage();
    pthread_mutex_unlock(&g_mu);
    return 0;
}

static void free_upload(struct upload *u)
{
    json_decref(u->headers);
    free(u->parts);
    free(u->key);
    free(u);
}

void s3store_close(void)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_n_buckets; i++) {
        for (size_t j = 0; j < g_buckets[i]->n; j++)
            free_obj(g_buckets[i]->objs[j]);
        free(g_buckets[i]->objs);
        free(g_buckets[i]);
    }
    free(g_buckets);
    g_buckets = NULL;
    g_n_buckets = 0;
    for (size_t i = 0; i < g_n_uploads; i++)
        free_upload(g_uploads[i]);
    free(g_uploads);
    g_uploads = NULL;
    g_n_uploads = 0;
    json_decref(g_refs);
    g_refs = NULL;
    free(g_root);
    g_root = NULL;
    pthread_mutex_unlock(&g_mu);
}

/* --- buckets --------------------------------------------------------------------------------- */

int s3store_create_bucket(const char *name, const char *account, const char *region)
{
    int rc = S3_OK;
    pthread_mutex_lock(&g_mu);
    struct bucket *b = find_bucket(name);
    if (b) {
        rc = strcmp(b->info.account, account) ? S3_EEXISTS : S3_EOWNED;
        goto out;
    }
    struct bucket **nb = realloc(g_buckets, (g_n_buckets + 1) * sizeof(*nb));
    if (!nb || !(b = calloc(1, sizeof(*b)))) {
        if (nb)
            g_buckets = nb;
        rc = S3_ENOMEM;
        goto out;
    }
    g_buckets = nb;
    snprintf(b->info.name, sizeof(b->info.name), "%s", name);
    snprintf(b->info.account, sizeof(b->info.account), "%s", account);
    snprintf(b->info.region, sizeof(b->info.region), "%s", region);
    b->info.created_ms = now_ms();
    char *mdir = path_of("%s/meta/%s", g_root, name);
    if (!mdir || (mkdir(mdir, 0755) && errno != EEXIST) || save_bucket(b)) {
        LOG_ERROR("s3: cannot store bucket %s: %s", name, strerror(errno));
        free(mdir);
        free(b);
        rc = S3_EIO;
        goto out;
    }
    free(mdir);
    g_buckets[g_n_buckets++] = b;
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int s3store_delete_bucket(const char *name)
{
    int rc = S3_OK;
    pthread_mutex_lock(&g_mu);
    struct bucket *b = find_bucket(name);
    if (!b) {
        rc = S3_ENOBUCKET;
        goto out;
    }
    if (b->n) {
        rc = S3_ENOTEMPTY;
        goto out;
    }
    char *dir = path_of("%s/buckets", g_root), name_json[80];
    snprintf(name_json, sizeof(name_json), "%s.json", name);
    if (!dir || remove_doc(dir, name_json)) {
        free(dir);
        rc = S3_EIO;
        goto out;
    }
    free(dir);
    char *mdir = path_of("%s/meta/%s", g_root, name);
    if (mdir)
        fsutil_rm_rf(mdir);
    free(mdir);
    /* Multipart uploads of the bucket go with it. */
    for (size_t i = 0; i < g_n_uploads;) {
        if (!strcmp(g_uploads[i]->bucket, name)) {
            char *udir = path_of("%s/uploads/%s", g_root, g_uploads[i]->id);
            if (udir)
                fsutil_rm_rf(udir);
            free(udir);
            free_upload(g_uploads[i]);
            g_uploads[i] = g_uploads[--g_n_uploads];
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < g_n_buckets; i++)
        if (g_buckets[i] == b) {
            g_buckets[i] = g_buckets[--g_n_buckets];
            break;
        }
    free(b->objs);
    free(b);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int s3store_bucket(const char *name, struct s3_bucket_info *out)
{
    pthread_mutex_lock(&g_mu);
    struct bucket *b = find_bucket(name);
    if (b && out)
        *out = b->info;
    pthread_mutex_unlock(&g_mu);
    return b ? S3_OK : S3_ENOBUCKET;
}

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const struct s3_bucket_info *)a)->name, ((const struct s3_bucket_info *)b)->name);
}

int s3store_list_buckets(const char *account, struct s3_bucket_info **out, size_t *n)
{
    pthread_mutex_lock(&g_mu);
    *out = malloc((g_n_buckets ? g_n_buckets : 1) * sizeof(**out));
    *n = 0;
    for (size_t i = 0; *out && i < g_n_buckets; i++)
        if (!strcmp(g_buckets[i]->info.account, account))
            (*out)[(*n)++] = g_buckets[i]->info;
    pthread_mutex_unlock(&g_mu);
    if (!*out)
        return S3_ENOMEM;
    qsort(*out, *n, sizeof(**out), cmp_info);
    return S3_OK;
}

int s3store_set_versioning(const char *name, enum s3_versioning v)
{
    int rc = S3_OK;
    pthread_mutex_lock(&g_mu);
    struct bucket *b = find_bucket(name);
    if (!b) {
        rc = S3_ENOBUCKET;
    } else {
        enum s3_versioning old = b->info.versioning;
        b->info.versioning = v;
        if (save_bucket(b)) {
            b->info.versioning = old;
            rc = S3_EIO;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* --- blobs being received ---------------------------------------------------------------------- */

int s3store_blob_begin(struct s3_blob *b)
{
    char rnd[17];
    memset(b, 0, sizeof(*b));
    b->fd = -1;
    random_token(rnd, 16);
    for (char *p = rnd; *p; p++)
        if (*p == '.')
            *p = '_';
    b->tmp = path_of("%s/tmp/in-%s-%u", g_root, rnd, atomic_fetch_add(&g_tmp_seq, 1));
    b->md5 = EVP_MD_CTX_new();
    b->sha256 = EVP_MD_CTX_new();
    if (!b->tmp || !b->md5 || !b->sha256 || !EVP_DigestInit_ex(b->md5, EVP_md5(), NULL) ||
        !EVP_DigestInit_ex(b->sha256, EVP_sha256(), NULL))
        return -ENOMEM;
    b->fd = open(b->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    return b->fd < 0 ? -errno : 0;
}

int s3store_blob_write(struct s3_blob *b, const void *data, size_t len)
{
    EVP_DigestUpdate(b->md5, data, len);
    EVP_DigestUpdate(b->sha256, data, len);
    b->size += len;
    return write_all(b->fd, data, len);
}

int s3store_blob_seal(struct s3_blob *b)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(b->md5, b->md5_raw, &n);
    hex(b->md5_raw, 16, b->md5_hex);
    EVP_DigestFinal_ex(b->sha256, md, &n);
    hex(md, 32, b->sha_hex);
    if (fsync(b->fd))
        return -errno;
    if (close(b->fd)) {
        b->fd = -1;
        return -errno;
    }
    b->fd = -1;
    b->sealed = true;
    return 0;
}

void s3store_blob_free(struct s3_blob *b)
{
    if (b->fd >= 0)
        close(b->fd);
    if (b->tmp)
        unlink(b->tmp);
    free(b->tmp);
    EVP_MD_CTX_free(b->md5);
    EVP_MD_CTX_free(b->sha256);
    memset(b, 0, sizeof(*b));
    b->fd = -1;
}

/* Moves a sealed blob into blobs/ (or drops it when that content is
 * stored already) and takes a reference. Under g_mu. */
static int commit_blob(struct s3_blob *b)
{
    char *dst = path_of("%s/blobs/%s", g_root, b->sha_hex);
    char *dir = path_of("%s/blobs", g_root);
    int rc = 0;
    if (!dst || !dir) {
        rc = -ENOMEM;
    } else if (json_object_get(g_refs, b->sha_hex)) {
        unlink(b->tmp); /* identical content already stored */
    } else if (rename(b->tmp, dst) || fsync_path(dir)) {
        rc = -errno;
    }
    if (!rc)
        ref_blob(b->sha_hex);
    free(dst);
    free(dir);
    return rc;
}

/* --- objects ------------------------------------------------------------------------------------ */

static void new_vid(const struct bucket *b, char out[40])
{
    if (b->info.versioning == S3_VERSIONING_ENABLED)
        random_token(out, 32);
    else
        snprintf(out, 40, "null");
}

/* The lookup of s3store_get, under g_mu. */
static int get_locked(const char *bucket, const char *key, const char *vid, struct s3_version *out)
{
    struct bucket *b = find_bucket(bucket);
    struct obj *o = b ? find_obj(b, key) : NULL;
    const struct ver *v = NULL;
    if (!b)
        return S3_ENOBUCKET;
    if (!o || !o->nv)
        return vid ? S3_ENOVERSION : S3_ENOKEY;
    if (vid) {
        for (size_t i = 0; i < o->nv && !v; i++)
            if (!strcmp(o->v[i].vid, vid))
                v = &o->v[i];
        if (!v)
            return S3_ENOVERSION;
    } else {
        v = &o->v[o->nv - 1];
    }
    ver_out(v, v == &o->v[o->nv - 1], out);
    if (v->dm)
        return vid ? S3_EMARKER : S3_ENOKEY;
    return S3_OK;
}

int s3store_get(const char *bucket, const char *key, const char *vid, struct s3_version *out, int *fd)
{
    if (fd)
        *fd = -1;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&g_mu);
    int rc = get_locked(bucket, key, vid, out);
    if (!rc && fd) {
        char *p = path_of("%s/blobs/%s", g_root, out->sha);
        *fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
        if (*fd < 0) {
            LOG_ERROR("s3: blob %s of %s/%s: %s", out->sha, bucket, key, strerror(errno));
            rc = S3_EIO;
            s3_version_release(out);
        }
        free(p);
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int s3store_get_file(const char *bucket, const char *key, const char *vid, struct s3_version *out, char **path)
{
    char rnd[17];
    *path = NULL;
    memset(out, 0, sizeof(*out));
    random_token(rnd, 16);
    for (char *p = rnd; *p; p++)
        if (*p == '.')
            *p = '_';
    pthread_mutex_lock(&g_mu);
    int rc = get_locked(bucket, key, vid, out);
    if (!rc) {
        /* under the lock: the blob cannot go away between lookup and link */
        char *tmp = path_of("%s/tmp/out-%s-%u", g_root, rnd, atomic_fetch_add(&g_tmp_seq, 1));
        char *src = path_of("%s/blobs/%s", g_root, out->sha);
        if (tmp && src && !link(src, tmp)) {
            *path = tmp;
            tmp = NULL;
        } else {
            LOG_ERROR("s3: cannot link blob %s: %s", out->sha, strerror(errno));
            s3_version_release(out);
            rc = S3_EIO;
        }
        free(tmp);
        free(src);
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Appends version nv to key (replacing the "null" version when nv is one),
 * persists the key, and on failure puts everything back. Under g_mu. The
 * version's blob reference has been taken by the caller; on success a
 * replaced version's reference is dropped. */
static int add_version(struct bucket *b, const char *key, struct ver *nv)
{
    struct obj *o = insert_obj(b, key);
    if (!o)
        return S3_ENOMEM;
    struct ver *grown = realloc(o->v, (o->nv + 1) * sizeof(*o->v));
    if (!grown) {
        if (!o->nv)
            remove_obj(b, o);
        return S3_ENOMEM;
    }
    o->v = grown;
    /* A "null" version replaces the previous "null" one. */
    ssize_t replaced = -1;
    struct ver old;
    if (!strcmp(nv->vid, "null"))
        for (size_t i = 0; i < o->nv; i++)
            if (!strcmp(o->v[i].vid, "null")) {
                replaced = (ssize_t)i;
                old = o->v[i];
                memmove(&o->v[i], &o->v[i + 1], (o->nv - i - 1) * sizeof(*o->v));
                o->nv--;
                break;
            }
    o->v[o->nv++] = *nv;
    if (save_obj(b, o)) {
        o->nv--;
        if (replaced >= 0) {
            memmove(&o->v[replaced + 1], &o->v[replaced], (o->nv - (size_t)replaced) * sizeof(*o->v));
            o->v[replaced] = old;
            o->nv++;
        }
        if (!o->nv)
            remove_obj(b, o);
        return S3_EIO;
    }
    if (replaced >= 0) {
        if (!old.dm)
            unref_blob(old.sha);
        json_decref(old.headers);
    }
    return S3_OK;
}

int s3store_put(const char *bucket, const char *key, struct s3_blob *b, const struct s3_version *src, json_t *headers,
                struct s3_version *out)
{
    struct ver v;
    memset(&v, 0, sizeof(v));
    pthread_mutex_lock(&g_mu);
    struct bucket *bk = find_bucket(bucket);
    int rc = S3_OK;
    if (!bk) {
        rc = S3_ENOBUCKET;
        goto out;
    }
    if (b) {
        if (commit_blob(b)) {
            rc = S3_EIO;
            goto out;
        }
        snprintf(v.sha, sizeof(v.sha), "%s", b->sha_hex);
        v.size = b->size;
        snprintf(v.etag, sizeof(v.etag), "%s", b->md5_hex);
    } else {
        if (!json_object_get(g_refs, src->sha)) { /* the source went away meanwhile */
            rc = S3_ENOKEY;
            goto out;
        }
        ref_blob(src->sha);
        snprintf(v.sha, sizeof(v.sha), "%s", src->sha);
        v.size = src->size;
        snprintf(v.etag, sizeof(v.etag), "%s", src->etag);
    }
    new_vid(bk, v.vid);
    v.mtime_ms = now_ms();
    v.headers = json_deep_copy(headers ? headers : json_object());
    rc = add_version(bk, key, &v);
    if (rc) {
        unref_blob(v.sha);
        json_decref(v.headers);
        goto out;
    }
    ver_out(&v, true, out);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int s3store_delete(const char *bucket, const char *key, const char *vid, struct s3_version *out, bool *found)
{
    int rc = S3_OK;
    memset(out, 0, sizeof(*out));
    *found = false;
    pthread_mutex_lock(&g_mu);
    struct bucket *b = find_bucket(bucket);
    if (!b) {
        rc = S3_ENOBUCKET;
        goto out;
    }
    struct obj *o = find_obj(b, key);
    if (vid || b->info.versioning == S3_VERSIONING_OFF) {
        /* Remove one version for good ("null" when unversioned). */
        const char *want = vid ? vid : "null";
        size_t i = 0;
        for (; o && i < o->nv; i++)
            if (!strcmp(o->v[i].vid, want))
                break;
        if (!o || i == o->nv)
            goto out; /* deleting what is not there succeeds */
        *found = true;
        struct ver gone = o->v[i];
        memmove(&o->v[i], &o->v[i + 1], (o->nv - i - 1) * sizeof(*o->v));
        o->nv--;
        if (save_obj(b, o)) {
            memmove(&o->v[i + 1], &o->v[i], (o->nv - i) * sizeof(*o->v));
            o->v[i] = gone;
            o->nv++;
            rc = S3_EIO;
            goto out;
        }
        ver_out(&gone, false, out);
        if (!gone.dm)
            unref_blob(gone.sha);
        json_decref(gone.headers);
        if (!o->nv)
            remove_obj(b, o);
        goto out;
    }
    /* Versioned: a delete marker becomes the latest version. */
    struct ver m;
    memset(&m, 0, sizeof(m));
    new_vid(b, m.vid);
    m.dm = true;
    m.mtime_ms = now_ms();
    m.headers = json_object();
    *found = true;
    rc = add_version(b, key, &m);
    if (rc)
        json_decref(m.headers);
    else
        ver_out(&m, true, out);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int s3store_list(const char *bucket, const char *from, const char *prefix, bool all_versions, s3_list_fn fn,
                 void *ud)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    pthread_mutex_lock(&g_mu);
    struct bucket *b = find_bucket(bucket);
    if (!b) {
        pthread_mutex_unlock(&g_mu);
        return S3_ENOBUCKET;
    }
    const char *start = from && (!prefix || strcmp(from, prefix) > 0) ? from : prefix ? prefix : "";
    for (size_t i = lower_bound(b, start); i < b->n; i++) {
        struct obj *o = b->objs[i];
        if (plen && strncmp(o->key, prefix, plen))
            break; /* sorted: no later key has the prefix */
        int stop = 0;
        if (all_versions) {
            for (size_t j = o->nv; j-- > 0 && !stop;) {
                struct s3_version v;
                ver_out(&o->v[j], j == o->nv - 1, &v);
                stop = fn(ud, o->key, &v);
                s3_version_release(&v);
            }
        } else if (o->nv && !o->v[o->nv - 1].dm) {
            struct s3_version v;
            ver_out(&o->v[o->nv - 1], true, &v);
            stop = fn(ud, o->key, &v);
            s3_version_release(&v);
        }
        if (stop)
            break;
    }
    pthread_mutex_unlock(&g_mu);
    return S3_OK;
}

/* --- multipart uploads -------------------------------------------------------------------------- */

static struct upload *find_upload(const char *bucket, const char *key, const char *id)
{
    for (size_t i = 0; i < g_n_uploads; i++)
        if (!strcmp(g_uploads[i]->id, id) && !strcmp(g_uploads[i]->bucket, bucket) && !strcmp(g_uploads[i]->key, key))
            return g_uploads[i];
    return NULL;
}

int s3store_mpu_create(const char *bucket, const char *key, json_t *headers, char upload_id[65])
{
    int rc = S3_OK;
    pthread_mutex_lock(&g_mu);
    struct upload *u = NULL;
    char *udir = NULL, *text = NULL;
    if (!find_bucket(bucket)) {
        rc = S3_ENOBUCKET;
        goto out;
    }
    u = calloc(1, sizeof(*u));
    struct upload **nu = realloc(g_uploads, (g_n_uploads + 1) * sizeof(*nu));
    if (!u || !nu || !(u->key = strdup(key))) {
        if (nu)
            g_uploads = nu;
        rc = S3_ENOMEM;
        goto out;
    }
    g_uploads = nu;
    random_token(u->id, 64);
    for (char *p = u->id; *p; p++)
        if (*p == '.')
            *p = '-';
    snprintf(u->bucket, sizeof(u->bucket), "%s", bucket);
    u->headers = json_deep_copy(headers ? headers : json_object());
    u->initiated_ms = now_ms();
    udir = path_of("%s/uploads/%s", g_root, u->id);
    json_t *doc = json_pack("{s:s,s:s,s:O,s:I}", "bucket", bucket, "key", key, "headers", u->headers, "initiated",
                            (json_int_t)u->initiated_ms);
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    char *parent = path_of("%s/uploads", g_root);
    if (!udir || !text || !parent || mkdir(udir, 0755) || write_doc(udir, "upload.json", text) || fsync_path(parent)) {
        if (udir)
            fsutil_rm_rf(udir);
        free(parent);
        rc = S3_EIO;
        goto out;
    }
    free(parent);
    memcpy(upload_id, u->id, 65);
    g_uploads[g_n_uploads++] = u;
    u = NULL;
out:
    if (u)
        free_upload(u);
    free(udir);
    free(text);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int s3store_mpu_put_part(const char *bucket, const char *key, const char *upload_id, int number, struct s3_blob *b)
{
    int rc = S3_OK;
    pthread_mutex_lock(&g_mu);
    struct upload *u = find_upload(bucket, key, upload_id);
    if (!u) {
        rc = find_bucket(bucket) ? S3_ENOUPLOAD : S3_ENOBUCKET;
        goto out;
    }
    char *udir = path_of("%s/uploads/%s", g_root, u->id);
    char *dst = udir ? path_of("%s/%d-%s", udir, number, b->md5_hex) : NULL;
    if (!dst || rename(b->tmp, dst) || fsync_path(udir)) {
        rc = S3_EIO;
        free(udir);
        free(dst);
        goto out;
    }
    /* Replace an earlier upload of the same part number. */
    size_t i = 0;
    for (; i < u->n_parts && u->parts[i].number < number; i++)
        ;
    if (i < u->n_parts && u->parts[i].number == number) {
        if (strcmp(u->parts[i].md5_hex, b->md5_hex)) {
            char *old = path_of("%s/%d-%s", udir, number, u->parts[i].md5_hex);
            if (old)
                unlink(old);
            free(old);
        }
    } else {
        struct s3_part *np = realloc(u->parts, (u->n_parts + 1) * sizeof(*np));
        if (!np) {
            rc = S3_ENOMEM;
            free(udir);
            free(dst);
            goto out;
        }
        u->parts = np;
        memmove(&u->parts[i + 1], &u->parts[i], (u->n_parts - i) * sizeof(*np));
        u->n_parts++;
    }
    u->parts[i].number = number;
    u->parts[i].size = b->size;
    memcpy(u->parts[i].md5_hex, b->md5_hex, 33);
    u->parts[i].mtime_ms = now_ms();
    free(udir);
    free(dst);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int s3store_mpu_parts(const char *bucket, const char *key, const char *upload_id, struct s3_part **parts, size_t *n,
                      int64_t *initiated_ms)
{
    int rc = S3_OK;
    *parts = NULL;
    *n = 0;
    pthread_mutex_lock(&g_mu);
    struct upload *u = find_upload(bucket, key, upload_id);
    if (!u) {
        rc = find_bucket(bucket) ? S3_ENOUPLOAD : S3_ENOBUCKET;
    } else {
        *parts = malloc((u->n_parts ? u->n_parts : 1) * sizeof(**parts));
        if (!*parts) {
            rc = S3_ENOMEM;
        } else {
            if (u->n_parts)
                memcpy(*parts, u->parts, u->n_parts * sizeof(**parts));
            *n = u->n_parts;
            if (initiated_ms)
                *initiated_ms = u->initiated_ms;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static void drop_upload(struct upload *u)
{
    char *udir = path_of("%s/uploads/%s", g_root, u->id);
    char *parent = path_of("%s/uploads", g_root);
    if (udir)
        fsutil_rm_rf(udir);
    if (parent)
        fsync_path(parent);
    free(udir);
    free(parent);
    for (size_t i = 0; i < g_n_uploads; i++)
        if (g_uploads[i] == u) {
            g_uploads[i] = g_uploads[--g_n_uploads];
            break;
        }
    free_upload(u);
}

int s3store_mpu_abort(const char *bucket, const char *key, const char *upload_id)
{
    int rc = S3_OK;
    pthread_mutex_lock(&g_mu);
    struct upload *u = find_upload(bucket, key, upload_id);
    if (!u)
        rc = find_bucket(bucket) ? S3_ENOUPLOAD : S3_ENOBUCKET;
    else
        drop_upload(u);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static int cmp_upload(const void *a, const void *b)
{
    const struct s3_upload_info *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->initiated_ms < y->initiated_ms ? -1 : x->initiated_ms > y->initiated_ms ? 1 : strcmp(x->id, y->id);
}

int s3store_mpu_list(const char *bucket, const char *prefix, struct s3_upload_info **out, size_t *n)
{
    int rc = S3_OK;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&g_mu);
    if (!find_bucket(bucket)) {
        rc = S3_ENOBUCKET;
        goto out;
    }
    *out = calloc(g_n_uploads ? g_n_uploads : 1, sizeof(**out));
    if (!*out) {
        rc = S3_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < g_n_uploads; i++) {
        struct upload *u = g_uploads[i];
        if (strcmp(u->bucket, bucket) || (prefix && strncmp(u->key, prefix, strlen(prefix))))
            continue;
        struct s3_upload_info *x = &(*out)[*n];
        if (!(x->key = strdup(u->key))) {
            rc = S3_ENOMEM;
            break;
        }
        memcpy(x->id, u->id, sizeof(x->id));
        x->initiated_ms = u->initiated_ms;
        (*n)++;
    }
out:
    pthread_mutex_unlock(&g_mu);
    if (rc) {
        s3store_mpu_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    } else if (*n) {
        qsort(*out, *n, sizeof(**out), cmp_upload);
    }
    return rc;
}

void s3store_mpu_list_free(struct s3_upload_info *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i].key);
    free(list);
}

/* Copies one part file into the blob being assembled. */
static int append_part(struct s3_blob *b, const char *path, char *buf, size_t buflen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, buflen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        /* The multipart ETag is not the MD5 of the data; only SHA-256 (the
         * storage key) is needed, so feed the data past the MD5. */
        EVP_DigestUpdate(b->sha256, buf, (size_t)n);
        b->size += (uint64_t)n;
        if ((rc = write_all(b->fd, buf, (size_t)n)))
            break;
    }
    close(fd);
    return rc;
}

int s3store_mpu_complete(const char *bucket, const char *key, const char *upload_id, const struct s3_part *want,
                         size_t n, struct s3_version *out, size_t *bad)
{
    struct s3_part *have = NULL;
    size_t nh = 0;
    char *buf = NULL, *udir = NULL;
    struct s3_blob b;
    memset(&b, 0, sizeof(b));
    b.fd = -1;
    *bad = 0;
    memset(out, 0, sizeof(out[0]));
    int rc = s3store_mpu_parts(bucket, key, upload_id, &have, &nh, NULL);
    if (rc)
        return rc;
    /* Check the list against the stored parts, in S3's order: ordering,
     * then existence and ETags, then sizes. */
    for (size_t i = 1; i < n; i++) {
        if (want[i].number <= want[i - 1].number) {
            *bad = i;
            rc = S3_EPARTORDER;
            goto out;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            *bad = i;
            size_t j = 0;
            while (j < nh && have[j].number != want[i].number)
                j++;
            if (pass == 0 && (j == nh || strcasecmp(have[j].md5_hex, want[i].md5_hex))) {
                rc = S3_EPART;
                goto out;
            }
            if (pass == 1 && i + 1 < n && have[j].size < S3_MIN_PART_SIZE) {
                rc = S3_ETOOSMALL;
                goto out;
            }
        }
    }
    /* Assemble outside the lock; the multipart ETag is the MD5 of the
     * concatenated binary part MD5s, then "-<count>". */
    buf = malloc(1 << 20);
    udir = path_of("%s/uploads/%s", g_root, upload_id);
    EVP_MD_CTX *etag = EVP_MD_CTX_new();
    if (!buf || !udir || !etag || !EVP_DigestInit_ex(etag, EVP_md5(), NULL) || s3store_blob_begin(&b)) {
        EVP_MD_CTX_free(etag);
        rc = S3_EIO;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char raw[16];
        for (int k = 0; k < 16; k++) {
            unsigned int byte = 0;
            sscanf(want[i].md5_hex + 2 * k, "%2x", &byte);
            raw[k] = (unsigned char)byte;
        }
        EVP_DigestUpdate(etag, raw, 16);
        char *pp = path_of("%s/%d-%s", udir, want[i].number, want[i].md5_hex);
        for (char *c = pp ? strrchr(pp, '-') : NULL; c && *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'F' ? *c + 32 : *c);
        int r = pp ? append_part(&b, pp, buf, 1 << 20) : -ENOMEM;
        free(pp);
        if (r) {
            *bad = i;
            EVP_MD_CTX_free(etag);
            rc = r == -ENOENT ? S3_ENOUPLOAD : S3_EIO; /* aborted meanwhile */
            goto out;
        }
    }
    unsigned char md[16];
    unsigned int mdn = 0;
    EVP_DigestFinal_ex(etag, md, &mdn);
    EVP_MD_CTX_free(etag);
    char etag_hex[33];
    hex(md, 16, etag_hex);
    uint64_t size = b.size;
    if (s3store_blob_seal(&b)) {
        rc = S3_EIO;
        goto out;
    }
    b.size = size;
    pthread_mutex_lock(&g_mu);
    struct upload *u = find_upload(bucket, key, upload_id);
    struct bucket *bk = find_bucket(bucket);
    if (!u || !bk) {
        rc = bk ? S3_ENOUPLOAD : S3_ENOBUCKET;
        pthread_mutex_unlock(&g_mu);
        goto out;
    }
    if (commit_blob(&b)) {
        rc = S3_EIO;
        pthread_mutex_unlock(&g_mu);
        goto out;
    }
    struct ver v;
    memset(&v, 0, sizeof(v));
    snprintf(v.sha, sizeof(v.sha), "%s", b.sha_hex);
    v.size = size;
    snprintf(v.etag, sizeof(v.etag), "%s-%zu", etag_hex, n);
    new_vid(bk, v.vid);
    v.mtime_ms = now_ms();
    v.headers = json_deep_copy(u->headers);
    rc = add_version(bk, key, &v);
    if (rc) {
        unref_blob(v.sha);
        json_decref(v.headers);
    } else {
        ver_out(&v, true, out);
        drop_upload(u);
    }
    pthread_mutex_unlock(&g_mu);
out:
    if (b.tmp || b.fd >= 0)
        s3store_blob_free(&b);
    free(have);
    free(buf);
    free(udir);
    return rc;
}
