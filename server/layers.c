/* layers: the layer-version store (see layers.h for the design). */
#include "server/layers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "runtime/codestore.h"
#include "runtime/log.h"
#include "server/coderefs.h"
#include "server/persist.h"

/* One layer name in one namespace. versions[] ascending by number. */
struct layer {
    char *region, *account, *name;
    long long next_version;
    struct layer_version **versions;
    size_t n, cap;
};

static struct codestore *g_cs;
static struct persist *g_persist;
static pthread_mutex_t g_write_lock = PTHREAD_MUTEX_INITIALIZER; /* serialises writers (disk I/O) */
static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;     /* guards g_layers (memory only) */
static struct layer **g_layers;
static size_t g_n, g_cap;

static const char NAME_CHARS[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/* --- versions ---------------------------------------------------------- */

struct layer_version *layers_ref(struct layer_version *v)
{
    if (v)
        atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void layers_unref(struct layer_version *v)
{
    if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(v->region);
    free(v->account);
    free(v->name);
    free(v->layer_arn);
    free(v->arn);
    free(v->code_hex);
    free(v->code_sha256);
    free(v->description);
    free(v->created_date);
    free(v->license_info);
    json_decref(v->runtimes);
    json_decref(v->architectures);
    free(v->policy);
    free(v->revision_id);
    free(v);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static json_t *strv_or_null(json_t *a)
{
    return json_is_array(a) ? json_deep_copy(a) : NULL;
}

/* Builds a version record; NULL on allocation failure or missing fields. */
static struct layer_version *version_new(const char *region, const char *account, const char *name,
                                         long long version, const char *code_hex,
                                         const char *code_sha256, long long code_size,
                                         const char *description, const char *created,
                                         const char *license, json_t *runtimes, json_t *archs)
{
    struct layer_version *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    atomic_init(&v->refs, 1);
    v->version = version;
    v->code_size = code_size;
    v->region = dup_or_null(region);
    v->account = dup_or_null(account);
    v->name = dup_or_null(name);
    v->code_hex = dup_or_null(code_hex);
    v->code_sha256 = dup_or_null(code_sha256);
    v->description = strdup(description ? description : "");
    v->created_date = dup_or_null(created);
    v->license_info = dup_or_null(license);
    v->runtimes = strv_or_null(runtimes);
    v->architectures = strv_or_null(archs);
    if (asprintf(&v->layer_arn, "arn:aws:lambda:%s:%s:layer:%s", region, account, name) < 0)
        v->layer_arn = NULL;
    if (!v->layer_arn || asprintf(&v->arn, "%s:%lld", v->layer_arn, version) < 0)
        v->arn = NULL;
    if (!v->region || !v->account || !v->name || !v->code_hex || !v->code_sha256 ||
        !v->description || !v->created_date || !v->layer_arn || !v->arn) {
        layers_unref(v);
        return NULL;
    }
    return v;
}

static json_t *version_doc(const struct layer_version *v)
{
    json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:s,s:s}", "kind", "layer_version", "region",
                          v->region, "account", v->account, "name", v->name, "version",
                          (json_int_t)v->version, "code_hex", v->code_hex, "code_sha256", v->code_sha256,
                          "code_size", (json_int_t)v->code_size, "description", v->description,
                          "created_date", v->created_date);
    if (d && v->license_info)
        json_object_set_new(d, "license_info", json_string(v->license_info));
    if (d && v->runtimes)
        json_object_set(d, "compatible_runtimes", v->runtimes);
    if (d && v->architectures)
        json_object_set(d, "compatible_architectures", v->architectures);
    if (d && v->policy)
        json_object_set_new(d, "policy", json_loads(v->policy, 0, NULL));
    if (d && v->revision_id)
        json_object_set_new(d, "revision_id", json_string(v->revision_id));
    return d;
}

static void now_created(char out[40])
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03d+0000", (int)(tv.tv_usec / 1000) % 1000);
}

/* --- names and ARNs ---------------------------------------------------- */

bool layers_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= LAYERS_NAME_MAX && strspn(name, NAME_CHARS) == n;
}

/* Copies the ':'-terminated field at *s into out (at most cap-1 bytes) and
 * advances *s past the ':'. Returns the field length or -1. */
static int take_field(const char **s, char *out, size_t cap, bool last)
{
    const char *end = last ? *s + strlen(*s) : strchr(*s, ':');
    if (!end || (size_t)(end - *s) >= cap)
        return -1;
    size_t n = (size_t)(end - *s);
    memcpy(out, *s, n);
    out[n] = 0;
    *s = last ? end : end + 1;
    return (int)n;
}

int layers_parse_arn(const char *arn, char region[32], char account[13],
                     char name[LAYERS_NAME_MAX + 1], long long *version)
{
    char part[64], svc[16], kind[8], num[24];
    const char *s = arn;
    *version = 0;
    if (!s || strncmp(s, "arn:", 4))
        return -1;
    s += 4;
    if (take_field(&s, part, sizeof(part), false) < 1 || strspn(part, NAME_CHARS) != strlen(part) ||
        take_field(&s, svc, sizeof(svc), false) < 0 || strcmp(svc, "lambda") ||
        take_field(&s, region, 32, false) < 1 || strspn(region, NAME_CHARS) != strlen(region) ||
        take_field(&s, account, 13, false) != 12 || strspn(account, "0123456789") != 12 ||
        take_field(&s, kind, sizeof(kind), false) < 0 || strcmp(kind, "layer"))
        return -1;
    bool has_version = strchr(s, ':') != NULL;
    if (take_field(&s, name, LAYERS_NAME_MAX + 1, !has_version) < 0 || !layers_name_ok(name))
        return -1;
    if (has_version) {
        int n = take_field(&s, num, sizeof(num), true);
        if (n < 1 || n > 18 || strspn(num, "0123456789") != (size_t)n)
            return -1;
        *version = strtoll(num, NULL, 10);
        if (*version < 1)
            return -1;
    }
    return 0;
}

/* --- the table (callers hold g_lock) ----------------------------------- */

static struct layer *find_layer(const char *region, const char *account, const char *name)
{
    for (size_t i = 0; i < g_n; i++) {
        struct layer *l = g_layers[i];
        if (!strcmp(l->name, name) && !strcmp(l->account, account) && !strcmp(l->region, region))
            return l;
    }
    return NULL;
}

static struct layer *add_layer(const char *region, const char *account, const char *name)
{
    if (g_n == g_cap) {
        size_t cap = g_cap ? g_cap * 2 : 16;
        struct layer **nl = realloc(g_layers, cap * sizeof(*nl));
        if (!nl)
            return NULL;
        g_layers = nl;
        g_cap = cap;
    }
    struct layer *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->region = strdup(region);
    l->account = strdup(account);
    l->name = strdup(name);
    l->next_version = 1;
    if (!l->region || !l->account || !l->name) {
        free(l->region);
        free(l->account);
        free(l->name);
        free(l);
        return NULL;
    }
    g_layers[g_n++] = l;
    return l;
}

static int find_index(const struct layer *l, long long version)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->versions[i]->version == version)
            return (int)i;
    return -1;
}

/* Inserts v (its reference moves to the table) keeping ascending order. */
static int insert_version(struct layer *l, struct layer_version *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        struct layer_version **nv = realloc(l->versions, cap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        l->versions = nv;
        l->cap = cap;
    }
    size_t i = l->n;
    while (i > 0 && l->versions[i - 1]->version > v->version) {
        l->versions[i] = l->versions[i - 1];
        i--;
    }
    l->versions[i] = v;
    l->n++;
    if (v->version >= l->next_version)
        l->next_version = v->version + 1;
    return 0;
}

/* --- persistence ------------------------------------------------------- */

static int write_doc(const char *id, json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(1));
    if (!text)
        return -ENOMEM;
    int rc = persist_write(g_persist, id, text, strlen(text));
    free(text);
    return rc;
}

static void layer_id(const char *region, const char *account, const char *name, char *out, size_t len)
{
    persist_id(region, account, name, out, len);
}

static void version_id(const struct layer_version *v, char *out, size_t len)
{
    char base[200];
    persist_id(v->region, v->account, v->name, base, sizeof(base));
    snprintf(out, len, "%s.%lld", base, v->version);
}

/* --- writes ------------------------------------------------------------ */

int layers_publish(const struct layer_publish *in, struct layer_version **out, struct api_error *err)
{
    char created[40], id[240];
    struct layer_version *v = NULL;
    int rc = -1;
    now_created(created);
    pthread_mutex_lock(&g_write_lock);
    pthread_rwlock_rdlock(&g_lock);
    struct layer *l = find_layer(in->region, in->account, in->name);
    long long next = l ? l->next_version : 1;
    pthread_rwlock_unlock(&g_lock);
    v = version_new(in->region, in->account, in->name, next, in->code_hex, in->code_sha256,
                    in->code_size, in->description, created, in->license_info, in->runtimes,
                    in->architectures);
    if (!v) {
        api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "out of memory");
        goto out;
    }
    if (g_persist) {
        /* Counter first: a crash before the version document burns a number. */
        json_t *ldoc = json_pack("{s:s,s:s,s:s,s:s,s:I}", "kind", "layer", "region", in->region, "account",
                                 in->account, "name", in->name, "next_version", (json_int_t)(next + 1));
        json_t *vdoc = version_doc(v);
        layer_id(in->region, in->account, in->name, id, sizeof(id));
        int prc = ldoc && vdoc ? write_doc(id, ldoc) : -ENOMEM;
        if (!prc) {
            version_id(v, id, sizeof(id));
            prc = write_doc(id, vdoc);
        }
        json_decref(ldoc);
        json_decref(vdoc);
        if (prc) {
            LOG_ERROR("cannot persist layer version %s: %s", v->arn, strerror(-prc));
            api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot write the layer version to the data directory");
            goto out;
        }
    }
    pthread_rwlock_wrlock(&g_lock);
    l = find_layer(in->region, in->account, in->name);
    if (!l)
        l = add_layer(in->region, in->account, in->name);
    int irc = l ? insert_version(l, layers_ref(v)) : -ENOMEM;
    pthread_rwlock_unlock(&g_lock);
    if (irc) {
        layers_unref(v); /* the reference meant for the table */
        api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "out of memory");
        goto out;
    }
    /* Published: the version's blob reference, taken before a delete can
     * find it; the zip is stored again if a removal raced with us before. */
    coderefs_acquire(v->code_hex, in->zip, in->zip_len);
    rc = 0;
out:
    pthread_mutex_unlock(&g_write_lock);
    if (rc == 0 && out)
        *out = layers_ref(v);
    layers_unref(v);
    return rc;
}

int layers_update_policy(const char *region, const char *account, const char *name, long long version,
                         layers_policy_fn fn, void *ud, const char *new_rev, struct api_error *err)
{
    char id[240];
    int rc = -1;
    json_t *stmts = NULL;
    struct layer_version *cur = NULL, *nv = NULL;
    pthread_mutex_lock(&g_write_lock);
    cur = layers_get(region, account, name, version);
    if (!cur) {
        api_fail(err, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
        goto out;
    }
    stmts = cur->policy ? json_loads(cur->policy, 0, NULL) : json_array();
    if (!stmts) {
        api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "out of memory");
        goto out;
    }
    if (fn(stmts, cur->revision_id ? cur->revision_id : "", ud, err))
        goto out;
    nv = version_new(cur->region, cur->account, cur->name, cur->version, cur->code_hex, cur->code_sha256,
                     cur->code_size, cur->description, cur->created_date, cur->license_info,
                     cur->runtimes, cur->architectures);
    if (nv) {
        nv->policy = json_array_size(stmts) ? json_dumps(stmts, JSON_COMPACT) : NULL;
        nv->revision_id = strdup(new_rev);
    }
    if (!nv || !nv->revision_id || (json_array_size(stmts) && !nv->policy)) {
        api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "out of memory");
        goto out;
    }
    if (g_persist) {
        json_t *vdoc = version_doc(nv);
        version_id(nv, id, sizeof(id));
        int prc = vdoc ? write_doc(id, vdoc) : -ENOMEM;
        json_decref(vdoc);
        if (prc) {
            LOG_ERROR("cannot persist the policy of layer version %s: %s", nv->arn, strerror(-prc));
            api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot write the layer version to the data directory");
            goto out;
        }
    }
    pthread_rwlock_wrlock(&g_lock);
    struct layer *l = find_layer(region, account, name);
    int i = l ? find_index(l, version) : -1;
    struct layer_version *old = NULL;
    if (i >= 0) {
        old = l->versions[i];
        l->versions[i] = nv;
        nv = NULL;
    }
    pthread_rwlock_unlock(&g_lock);
    layers_unref(old);
    rc = 0;
out:
    pthread_mutex_unlock(&g_write_lock);
    json_decref(stmts);
    layers_unref(nv);
    layers_unref(cur);
    return rc;
}

int layers_delete(const char *region, const char *account, const char *name, long long version,
                  struct api_error *err)
{
    char id[240];
    struct layer_version *v = NULL;
    int rc = -1;
    pthread_mutex_lock(&g_write_lock);
    pthread_rwlock_rdlock(&g_lock);
    struct layer *l = find_layer(region, account, name);
    int i = l ? find_index(l, version) : -1;
    if (i >= 0)
        v = layers_ref(l->versions[i]);
    pthread_rwlock_unlock(&g_lock);
    if (!v) {
        rc = 0;
        goto out;
    }
    if (g_persist) {
        version_id(v, id, sizeof(id));
        int prc = persist_remove(g_persist, id);
        if (prc) {
            LOG_ERROR("cannot remove layer version %s from the data directory: %s", v->arn, strerror(-prc));
            api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot update the data directory");
            goto out;
        }
    }
    pthread_rwlock_wrlock(&g_lock);
    i = find_index(l, version); /* l stays: layers are never freed before shutdown */
    if (i >= 0) {
        layers_unref(l->versions[i]);
        memmove(l->versions + i, l->versions + i + 1, (l->n - (size_t)i - 1) * sizeof(*l->versions));
        l->n--;
    }
    pthread_rwlock_unlock(&g_lock);
    if (i >= 0)
        coderefs_release(v->code_hex); /* the table's reference, once the removal is on disk */
    rc = 0;
out:
    pthread_mutex_unlock(&g_write_lock);
    layers_unref(v);
    return rc;
}

/* --- reads ------------------------------------------------------------- */

struct layer_version *layers_get(const char *region, const char *account, const char *name,
                                 long long version)
{
    struct layer_version *v = NULL;
    pthread_rwlock_rdlock(&g_lock);
    struct layer *l = find_layer(region, account, name);
    int i = l ? find_index(l, version) : -1;
    if (i >= 0)
        v = layers_ref(l->versions[i]);
    pthread_rwlock_unlock(&g_lock);
    return v;
}

struct layer_version *layers_find_arn(const char *arn)
{
    char region[32], account[13], name[LAYERS_NAME_MAX + 1];
    long long version;
    if (layers_parse_arn(arn, region, account, name, &version) || version < 1)
        return NULL;
    return layers_get(region, account, name, version);
}

static bool strv_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) if (json_is_string(e) && !strcmp(json_string_value(e), s)) return true;
    return false;
}

bool layers_match(const struct layer_version *v, const struct layers_filter *f)
{
    if (f && f->runtime && !strv_has(v->runtimes, f->runtime))
        return false;
    if (f && f->architecture && !strv_has(v->architectures, f->architecture))
        return false;
    return true;
}

static int cmp_by_name(const void *a, const void *b)
{
    const struct layer_version *x = *(struct layer_version *const *)a, *y = *(struct layer_version *const *)b;
    return strcmp(x->name, y->name);
}

/* Appends a reference to v to a growing array. */
static int push(struct layer_version ***v, size_t *len, size_t *cap, struct layer_version *x)
{
    if (*len == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct layer_version **nv = realloc(*v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*len)++] = layers_ref(x);
    return 0;
}

/* Keeps the first max of v[0..len), tells whether there were more. */
static void cut(struct layer_version **v, size_t len, size_t max, size_t *n, bool *more)
{
    *more = len > max;
    for (size_t i = max; i < len; i++)
        layers_unref(v[i]);
    *n = len > max ? max : len;
}

int layers_list_latest(const char *region, const char *account, const struct layers_filter *f,
                       const char *marker, size_t max, struct layer_version ***out, size_t *n,
                       bool *more)
{
    struct layer_version **v = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    pthread_rwlock_rdlock(&g_lock);
    for (size_t i = 0; i < g_n && !rc; i++) {
        struct layer *l = g_layers[i];
        if (strcmp(l->region, region) || strcmp(l->account, account) || (marker && strcmp(l->name, marker) <= 0))
            continue;
        for (size_t j = l->n; j > 0; j--) {
            if (layers_match(l->versions[j - 1], f)) {
                rc = push(&v, &len, &cap, l->versions[j - 1]);
                break;
            }
        }
    }
    pthread_rwlock_unlock(&g_lock);
    if (rc) {
        cut(v, len, 0, n, more);
        free(v);
        return rc;
    }
    if (len)
        qsort(v, len, sizeof(*v), cmp_by_name);
    cut(v, len, max, n, more);
    *out = v;
    return 0;
}

int layers_list_versions(const char *region, const char *account, const char *name,
                         const struct layers_filter *f, long long before, size_t max,
                         struct layer_version ***out, size_t *n, bool *more)
{
    struct layer_version **v = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    pthread_rwlock_rdlock(&g_lock);
    struct layer *l = find_layer(region, account, name);
    for (size_t j = l ? l->n : 0; j > 0 && !rc; j--) {
        struct layer_version *x = l->versions[j - 1];
        if ((before <= 0 || x->version < before) && layers_match(x, f))
            rc = push(&v, &len, &cap, x);
    }
    pthread_rwlock_unlock(&g_lock);
    if (rc) {
        cut(v, len, 0, n, more);
        free(v);
        return rc;
    }
    cut(v, len, max, n, more);
    *out = v;
    return 0;
}

/* --- life cycle -------------------------------------------------------- */

void layers_init(struct codestore *cs, struct persist *p)
{
    g_cs = cs;
    g_persist = p;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int load_one(void *ud, const char *id, json_t *doc)
{
    int *count = ud;
    const char *kind = jstr(doc, "kind"), *region = jstr(doc, "region"), *account = jstr(doc, "account"),
               *name = jstr(doc, "name");
    if (!kind || !region || !account || !name || strlen(region) > 31 || strlen(account) != 12 ||
        !layers_name_ok(name)) {
        LOG_ERROR("layer document %s lacks kind/region/account/name; skipped", id);
        return 0;
    }
    struct layer *l = find_layer(region, account, name);
    if (!l && !(l = add_layer(region, account, name)))
        return -ENOMEM;
    if (!strcmp(kind, "layer")) {
        long long next = (long long)json_integer_value(json_object_get(doc, "next_version"));
        if (next > l->next_version)
            l->next_version = next;
        return 0;
    }
    long long version = (long long)json_integer_value(json_object_get(doc, "version"));
    struct layer_version *v = version >= 1 && strcmp(kind, "layer_version") == 0
        ? version_new(region, account, name, version, jstr(doc, "code_hex"), jstr(doc, "code_sha256"),
                      (long long)json_integer_value(json_object_get(doc, "code_size")),
                      jstr(doc, "description"), jstr(doc, "created_date"), jstr(doc, "license_info"),
                      json_object_get(doc, "compatible_runtimes"),
                      json_object_get(doc, "compatible_architectures"))
        : NULL;
    json_t *pol = json_object_get(doc, "policy");
    if (v && json_is_array(pol) && json_array_size(pol))
        v->policy = json_dumps(pol, JSON_COMPACT);
    if (v && jstr(doc, "revision_id"))
        v->revision_id = strdup(jstr(doc, "revision_id"));
    if (!v || find_index(l, version) >= 0) {
        LOG_ERROR("layer document %s is unusable or a duplicate; skipped", id);
        layers_unref(v);
        return 0;
    }
    if (g_cs) {
        char *dir = codestore_dir_path(g_cs, v->code_hex);
        if (!dir)
            LOG_WARN("code %s of layer version %s is missing from the code store", v->code_hex, v->arn);
        free(dir);
    }
    if (insert_version(l, v)) {
        layers_unref(v);
        return -ENOMEM;
    }
    (*count)++;
    return 0;
}

int layers_load(void)
{
    int count = 0;
    if (!g_persist)
        return 0;
    pthread_mutex_lock(&g_write_lock);
    pthread_rwlock_wrlock(&g_lock);
    int rc = persist_load(g_persist, load_one, &count);
    pthread_rwlock_unlock(&g_lock);
    /* The blob references of what was loaded (outside the rwlock: lock
     * order; the writer mutex keeps the table still). */
    for (size_t i = 0; i < g_n; i++)
        for (size_t j = 0; j < g_layers[i]->n; j++)
            coderefs_acquire(g_layers[i]->versions[j]->code_hex, NULL, 0);
    pthread_mutex_unlock(&g_write_lock);
    return rc < 0 ? rc : count;
}

void layers_shutdown(void)
{
    pthread_mutex_lock(&g_write_lock);
    pthread_rwlock_wrlock(&g_lock);
    for (size_t i = 0; i < g_n; i++) {
        struct layer *l = g_layers[i];
        for (size_t j = 0; j < l->n; j++)
            layers_unref(l->versions[j]);
        free(l->versions);
        free(l->region);
        free(l->account);
        free(l->name);
        free(l);
    }
    free(g_layers);
    g_layers = NULL;
    g_n = g_cap = 0;
    pthread_rwlock_unlock(&g_lock);
    pthread_mutex_unlock(&g_write_lock);
}
