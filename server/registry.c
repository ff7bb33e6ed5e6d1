/* registry: RCU hash of immutable function records (see registry.h).
 *
 * Versions and aliases live inside the function's record (and document):
 * a publish, an alias change or a version deletion is one more copy-edit-
 * swap of the whole record under the writer mutex, persisted in the same
 * atomic write as everything else about the function. */
#include "server/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "pool/deploy.h"
#include "pool/pool.h"
#include "runtime/codestore.h"
#include "runtime/log.h"
#include "server/coderefs.h"
#include "server/layers.h"
#include "server/persist.h"

static struct cds_lfht *g_ht;
static struct codestore *g_cs;
static struct persist *g_persist;
static pthread_mutex_t g_write_lock = PTHREAD_MUTEX_INITIALIZER; /* serialises writers */
static atomic_size_t g_count;
static bool g_loading; /* registry_load running: tolerate missing layer blobs */

static unsigned long hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (unsigned long)(h ^ (h >> 29));
}

static int match_key(struct cds_lfht_node *node, const void *key)
{
    const struct fn_record *r = caa_container_of(node, struct fn_record, node);
    return strcmp(r->key, key) == 0;
}

static void make_key(char *out, size_t len, const char *region, const char *account, const char *name)
{
    snprintf(out, len, "%s/%s/%s", region, account, name);
}

/* --- records ----------------------------------------------------------- */

static void record_free(struct fn_record *r)
{
    for (size_t i = 0; i < r->n_versions; i++) {
        struct fn_version *v = &r->versions[i];
        free(v->version);
        free(v->config_json);
        free(v->code_hex);
        free(v->image_uri);
        fnspec_unref(v->spec);
    }
    free(r->versions);
    for (size_t i = 0; i < r->n_aliases; i++) {
        struct fn_alias *a = &r->aliases[i];
        free(a->name);
        free(a->version);
        free(a->extra_version);
        free(a->json);
    }
    free(r->aliases);
    free(r->key);
    free(r->region);
    free(r->account);
    free(r->name);
    free(r->arn);
    free(r->config_json);
    free(r->tags_json);
    free(r->code_hex);
    free(r->image_uri);
    free(r->revision_id);
    free(r->latest_q_json);
    free(r->extras_json);
    fnspec_unref(r->spec);
    json_decref(r->doc);
    free(r);
}

struct fn_record *registry_record_ref(struct fn_record *r)
{
    if (r)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void registry_record_unref(struct fn_record *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        record_free(r);
}

static void record_free_rcu(struct rcu_head *head)
{
    registry_record_unref(caa_container_of(head, struct fn_record, rcu));
}

struct fn_spec *registry_spec_ref(const struct fn_record *rec)
{
    return fnspec_ref(rec->spec);
}

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static char **strv_from_json(json_t *arr, size_t *n)
{
    size_t i;
    json_t *v;
    *n = 0;
    if (!json_is_array(arr))
        return NULL;
    char **out = calloc(json_array_size(arr) + 1, sizeof(char *));
    if (!out)
        return NULL;
    json_array_foreach(arr, i, v) out[(*n)++] = fnspec_strdup(json_is_string(v) ? json_string_value(v) : "");
    return out;
}

/* The attached layers of a document: doc "layers" [{"arn","code_hex",
 * "code_sha256","code_size"}] as api_functions resolved them when they were
 * attached (the function's own copy: it outlives a deleted layer version).
 * A document without it (written before layers existed) is resolved from
 * configuration.Layers against the layer store. Returns a new reference. */
static json_t *doc_layers(json_t *doc)
{
    json_t *have = json_object_get(doc, "layers");
    if (json_is_array(have))
        return json_incref(have);
    json_t *out = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(json_object_get(doc, "configuration"), "Layers"), i, l) {
        const char *arn = jstr(l, "Arn");
        struct layer_version *v = layers_find_arn(arn);
        json_array_append_new(out, v ? json_pack("{s:s,s:s,s:s,s:I}", "arn", v->arn, "code_hex", v->code_hex,
                                                 "code_sha256", v->code_sha256, "code_size",
                                                 (json_int_t)v->code_size)
                                     : json_pack("{s:s?}", "arn", arn));
        layers_unref(v);
    }
    return out;
}

/* Fills spec->layer_dirs/layer_shas in attach order. A blob missing from the
 * code store fails (the layer version was deleted and its blob removed
 * meanwhile) except while loading, where it is logged and skipped. */
static int spec_layers(struct fn_spec *s, json_t *layers, struct api_error *err)
{
    size_t n = json_array_size(layers), i;
    json_t *l;
    if (!n)
        return 0;
    s->layer_dirs = calloc(n + 1, sizeof(char *));
    s->layer_shas = calloc(n + 1, sizeof(char *));
    if (!s->layer_dirs || !s->layer_shas)
        return api_fail(err, &AWS_SERVICE, "out of memory");
    json_array_foreach(layers, i, l) {
        const char *hex = jstr(l, "code_hex"), *sha = jstr(l, "code_sha256");
        char *dir = hex && sha && g_cs ? codestore_dir_path(g_cs, hex) : NULL;
        if (!dir && g_cs) {
            if (!g_loading)
                return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Layer version %s does not exist.",
                                jstr(l, "arn") ? jstr(l, "arn") : "?");
            LOG_WARN("layer %s of function %s is missing from the code store; not attached",
                     jstr(l, "arn") ? jstr(l, "arn") : "?", s->key);
            continue;
        }
        s->layer_dirs[s->n_layers] = dir ? dir : fnspec_strdup("");
        s->layer_shas[s->n_layers] = fnspec_strdup(sha ? sha : "");
        s->n_layers++;
    }
    return 0;
}

/* Builds the fn_spec of a document; code_dir already resolved. */
static struct fn_spec *spec_build(const struct fn_record *r, const char *key, const char *version,
                                  const char *arn, const char *image_uri, json_t *cfg, json_t *tags,
                                  const char *code_dir, json_t *layers, struct api_error *err)
{
    struct fn_spec *s = fnspec_new();
    if (!s) {
        api_fail(err, &AWS_SERVICE, "out of memory building function record");
        return NULL;
    }
    s->key = fnspec_strdup(key);
    s->name = fnspec_strdup(r->name);
    s->version = fnspec_strdup(version);
    s->arn = fnspec_strdup(arn);
    s->region = fnspec_strdup(r->region);
    s->account = fnspec_strdup(r->account);
    s->package_type = fnspec_strdup(jstr(cfg, "PackageType") ? jstr(cfg, "PackageType") : "Zip");
    bool image = !strcmp(s->package_type, "Image");
    s->runtime = image ? NULL : fnspec_strdup(jstr(cfg, "Runtime"));
    s->handler = image ? NULL : fnspec_strdup(jstr(cfg, "Handler"));
    s->code_dir = fnspec_strdup(code_dir);
    s->code_sha256 = fnspec_strdup(jstr(cfg, "CodeSha256"));
    if (spec_layers(s, layers, err)) {
        fnspec_unref(s);
        return NULL;
    }
    json_t *vars = json_object_get(json_object_get(cfg, "Environment"), "Variables");
    if (json_is_object(vars) && json_object_size(vars)) {
        const char *k;
        json_t *v;
        s->env = calloc(json_object_size(vars), sizeof(*s->env));
        if (!s->env) {
            fnspec_unref(s);
            api_fail(err, &AWS_SERVICE, "out of memory building function record");
            return NULL;
        }
        json_object_foreach(vars, k, v) {
            s->env[s->n_env].key = fnspec_strdup(k);
            s->env[s->n_env].value = fnspec_strdup(json_is_string(v) ? json_string_value(v) : "");
            s->n_env++;
        }
    }
    s->memory_mb = (int)json_integer_value(json_object_get(cfg, "MemorySize"));
    s->timeout_s = (int)json_integer_value(json_object_get(cfg, "Timeout"));
    s->ephemeral_mb = (int)json_integer_value(json_object_get(json_object_get(cfg, "EphemeralStorage"), "Size"));
    s->image_uri = fnspec_strdup(image_uri);
    json_t *ic = json_object_get(json_object_get(cfg, "ImageConfigResponse"), "ImageConfig");
    s->image_entrypoint = strv_from_json(json_object_get(ic, "EntryPoint"), &s->n_entrypoint);
    s->image_command = strv_from_json(json_object_get(ic, "Command"), &s->n_command);
    s->image_workdir = fnspec_strdup(jstr(ic, "WorkingDirectory"));
    json_t *lc = json_object_get(cfg, "LoggingConfig");
    char group[600];
    snprintf(group, sizeof(group), "/aws/lambda/%s", r->name);
    s->log_group = fnspec_strdup(jstr(lc, "LogGroup") ? jstr(lc, "LogGroup") : group);
    s->log_format = fnspec_strdup(jstr(lc, "LogFormat") ? jstr(lc, "LogFormat") : "Text");
    s->app_log_level = fnspec_strdup(jstr(lc, "ApplicationLogLevel"));
    s->system_log_level = fnspec_strdup(jstr(lc, "SystemLogLevel"));
    const char *ex = jstr(tags, "lambdad:executor");
    s->force_docker = ex && !strcmp(ex, "docker");
    s->reserved_concurrency = r->reserved_concurrency;
    if (deploy_id_compute(s)) {
        fnspec_unref(s);
        api_fail(err, &AWS_SERVICE, "out of memory building function record");
        return NULL;
    }
    fnspec_pin_dirs(s); /* environments outlive records: see codestore_pin */
    return s;
}

static char *code_dir_of(const char *hex, const char *key)
{
    char *dir = hex && g_cs ? codestore_dir_path(g_cs, hex) : NULL;
    if (hex && g_cs && !dir)
        LOG_WARN("code %s of function %s is missing from the code store", hex, key);
    return dir;
}

/* Builds r->versions from doc "versions" (ascending, as stored). */
static int versions_build(struct fn_record *r, json_t *doc, json_t *tags, struct api_error *err)
{
    json_t *arr = json_object_get(doc, "versions"), *e;
    size_t i;
    if (!json_array_size(arr))
        return 0;
    r->versions = calloc(json_array_size(arr), sizeof(*r->versions));
    if (!r->versions)
        return api_fail(err, &AWS_SERVICE, "out of memory");
    json_array_foreach(arr, i, e) {
        json_t *cfg = json_object_get(e, "configuration");
        const char *ver = jstr(e, "version");
        if (!ver || !json_is_object(cfg) || strspn(ver, "0123456789") != strlen(ver) || !*ver ||
            strlen(ver) > 18)
            return api_fail(err, &AWS_SERVICE, "malformed version in function document");
        struct fn_version *v = &r->versions[r->n_versions++];
        char key[240];
        snprintf(key, sizeof(key), "%s:%s", r->key, ver);
        v->version = fnspec_strdup(ver);
        v->number = strtol(ver, NULL, 10);
        v->config_json = json_dumps(cfg, JSON_COMPACT);
        v->code_hex = fnspec_strdup(jstr(e, "code_hex"));
        v->image_uri = fnspec_strdup(jstr(e, "image_uri"));
        if (!v->version || !v->config_json)
            return api_fail(err, &AWS_SERVICE, "out of memory");
        v->config_len = strlen(v->config_json);
        char *dir = code_dir_of(v->code_hex, key);
        json_t *layers = doc_layers(e);
        const char *arn = jstr(cfg, "FunctionArn");
        v->spec = spec_build(r, key, ver, arn ? arn : r->arn, v->image_uri, cfg, tags, dir, layers, err);
        json_decref(layers);
        free(dir);
        if (!v->spec)
            return -1;
    }
    return 0;
}

static int cmp_alias(const void *a, const void *b)
{
    return strcmp(((const struct fn_alias *)a)->name, ((const struct fn_alias *)b)->name);
}

/* Builds r->aliases from doc "aliases" (AliasConfiguration objects). */
static int aliases_build(struct fn_record *r, json_t *doc, struct api_error *err)
{
    json_t *arr = json_object_get(doc, "aliases"), *e;
    size_t i;
    if (!json_array_size(arr))
        return 0;
    r->aliases = calloc(json_array_size(arr), sizeof(*r->aliases));
    if (!r->aliases)
        return api_fail(err, &AWS_SERVICE, "out of memory");
    json_array_foreach(arr, i, e) {
        const char *name = jstr(e, "Name"), *ver = jstr(e, "FunctionVersion");
        if (!name || !ver)
            return api_fail(err, &AWS_SERVICE, "malformed alias in function document");
        struct fn_alias *a = &r->aliases[r->n_aliases++];
        a->name = fnspec_strdup(name);
        a->version = fnspec_strdup(ver);
        a->json = json_dumps(e, JSON_COMPACT);
        if (!a->name || !a->version || !a->json)
            return api_fail(err, &AWS_SERVICE, "out of memory");
        a->json_len = strlen(a->json);
        const char *k;
        json_t *w;
        json_object_foreach(json_object_get(json_object_get(e, "RoutingConfig"), "AdditionalVersionWeights"), k, w) {
            if (a->extra_version)
                break;
            a->extra_version = fnspec_strdup(k);
            a->extra_weight = json_number_value(w);
        }
    }
    qsort(r->aliases, r->n_aliases, sizeof(*r->aliases), cmp_alias);
    return 0;
}

/* The $LATEST configuration as version lists show it: FunctionArn
 * qualified with ":$LATEST". */
static int latest_qualified(struct fn_record *r, json_t *cfg)
{
    json_t *c = json_copy(cfg);
    char arn[600];
    snprintf(arn, sizeof(arn), "%s:$LATEST", r->arn);
    if (!c || json_object_set_new(c, "FunctionArn", json_string(arn)) ||
        !(r->latest_q_json = json_dumps(c, JSON_COMPACT))) {
        json_decref(c);
        return -1;
    }
    json_decref(c);
    r->latest_q_len = strlen(r->latest_q_json);
    return 0;
}

int registry_record_build(json_t *doc, const void *zip, size_t zip_len, struct fn_record **out,
                          struct api_error *err)
{
    const char *region = jstr(doc, "region"), *account = jstr(doc, "account"), *name = jstr(doc, "name");
    json_t *cfg = json_object_get(doc, "configuration");
    json_t *tags = json_object_get(doc, "tags");
    json_t *rc_j = json_object_get(doc, "reserved_concurrency");
    char key[200], *code_dir = NULL;
    if (!region || !account || !name || !json_is_object(cfg) || strlen(region) > 31 ||
        strlen(account) != 12 || strlen(name) > VALIDATE_NAME_MAX)
        return api_fail(err, &AWS_SERVICE, "malformed function document");
    struct fn_record *r = calloc(1, sizeof(*r));
    if (!r)
        return api_fail(err, &AWS_SERVICE, "out of memory");
    atomic_init(&r->refs, 1);
    make_key(key, sizeof(key), region, account, name);
    r->key = fnspec_strdup(key);
    r->region = fnspec_strdup(region);
    r->account = fnspec_strdup(account);
    r->name = fnspec_strdup(name);
    r->arn = fnspec_strdup(jstr(cfg, "FunctionArn"));
    r->code_hex = fnspec_strdup(jstr(doc, "code_hex"));
    r->image_uri = fnspec_strdup(jstr(doc, "image_uri"));
    r->revision_id = fnspec_strdup(jstr(cfg, "RevisionId"));
    r->reserved_concurrency = json_is_integer(rc_j) ? (int)json_integer_value(rc_j) : -1;
    r->config_json = json_dumps(cfg, JSON_COMPACT);
    r->tags_json = json_is_object(tags) && json_object_size(tags) ? json_dumps(tags, JSON_COMPACT) : NULL;
    if (!r->arn || !r->config_json)
        goto fail;
    r->config_len = strlen(r->config_json);
    if (latest_qualified(r, cfg))
        goto fail;
    json_t *busy = json_object_get(doc, "busy_until");
    r->busy_until_ms = json_is_integer(busy) ? (long long)json_integer_value(busy) : 0;
    r->busy_creating = json_is_true(json_object_get(doc, "busy_creating"));
    json_t *extras = json_object_get(doc, "extras");
    if (json_is_object(extras) && json_object_size(extras) &&
        !(r->extras_json = json_dumps(extras, JSON_COMPACT)))
        goto fail;
    if (r->code_hex && g_cs) {
        code_dir = codestore_dir_path(g_cs, r->code_hex);
        if (!code_dir && zip) {
            struct code_info info;
            const char *cerr = NULL;
            if (codestore_put(g_cs, zip, zip_len, &info, &cerr) == 0)
                code_dir = codestore_dir_path(g_cs, r->code_hex);
        }
        if (!code_dir)
            LOG_WARN("code %s of function %s is missing from the code store", r->code_hex, r->key);
    }
    json_t *layers = doc_layers(doc);
    r->spec = spec_build(r, r->key, "$LATEST", r->arn, r->image_uri, cfg, tags, code_dir, layers, err);
    json_decref(layers);
    free(code_dir);
    if (!r->spec || versions_build(r, doc, tags, err) || aliases_build(r, doc, err)) {
        record_free(r);
        return -1;
    }
    r->doc = json_incref(doc);
    *out = r;
    return 0;
fail:
    record_free(r);
    return api_fail(err, &AWS_SERVICE, "out of memory building function record");
}

/* --- reads ------------------------------------------------------------- */

struct fn_record *registry_lookup(const char *region, const char *account, const char *name)
{
    char key[200];
    struct cds_lfht_iter iter;
    make_key(key, sizeof(key), region, account, name);
    cds_lfht_lookup(g_ht, hash_key(key), match_key, key, &iter);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&iter);
    return node ? caa_container_of(node, struct fn_record, node) : NULL;
}

int registry_not_found(const struct fn_name *n, struct api_error *err)
{
    char arn[400];
    validate_function_arn(n, true, arn, sizeof(arn));
    return api_fail(err, &AWS_RESOURCE_NOT_FOUND, MSG_FUNCTION_NOT_FOUND, arn);
}

struct fn_record *registry_resolve(const char *function_name, const char *qualifier,
                                   size_t max_len, const char *region, const char *account,
                                   struct fn_name *name_out, struct api_error *err)
{
    struct fn_name local, *n = name_out ? name_out : &local;
    if (validate_function_ref(function_name, qualifier, max_len, region, account, n, err))
        return NULL;
    struct fn_record *r = registry_lookup(n->region, n->account, n->name);
    if (!r || (n->qualifier[0] && strcmp(n->qualifier, "$LATEST") != 0 &&
               !registry_version(r, n->qualifier) && !registry_alias(r, n->qualifier))) {
        registry_not_found(n, err);
        return NULL;
    }
    return r;
}

const struct fn_version *registry_version(const struct fn_record *r, const char *version)
{
    size_t lo = 0, hi = r->n_versions;
    char *end;
    if (!version || !*version || strspn(version, "0123456789") != strlen(version))
        return NULL;
    long want = strtol(version, &end, 10);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->versions[mid].number == want)
            return &r->versions[mid];
        if (r->versions[mid].number < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct fn_alias *registry_alias(const struct fn_record *r, const char *name)
{
    struct fn_alias key = {.name = (char *)name};
    if (!name || !r->n_aliases)
        return NULL;
    return bsearch(&key, r->aliases, r->n_aliases, sizeof(*r->aliases), cmp_alias);
}

/* A uniform double in [0, 1) from a per-thread xorshift64* generator. */
static double route_random(void)
{
    static __thread uint64_t state;
    if (!state) {
        if (getrandom(&state, sizeof(state), 0) != sizeof(state) || !state)
            state = (uint64_t)(uintptr_t)&state ^ 0x9e3779b97f4a7c15ull;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (double)((state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static struct fn_spec *spec_of_version(const struct fn_record *r, const char *version)
{
    if (!strcmp(version, "$LATEST"))
        return fnspec_ref(r->spec);
    const struct fn_version *v = registry_version(r, version);
    return v ? fnspec_ref(v->spec) : NULL;
}

struct fn_spec *registry_spec_for(const struct fn_record *r, const char *qualifier)
{
    if (!qualifier || !*qualifier || !strcmp(qualifier, "$LATEST"))
        return fnspec_ref(r->spec);
    const struct fn_version *v = registry_version(r, qualifier);
    if (v)
        return fnspec_ref(v->spec);
    const struct fn_alias *a = registry_alias(r, qualifier);
    if (!a)
        return NULL;
    if (a->extra_version && a->extra_weight > 0 && route_random() < a->extra_weight) {
        struct fn_spec *s = spec_of_version(r, a->extra_version);
        if (s)
            return s;
    }
    return spec_of_version(r, a->version);
}

struct fn_record *registry_find_extra(const char *needle)
{
    struct cds_lfht_iter iter;
    struct fn_record *r, *found = NULL;
    struct cds_lfht_node *it_node;
    rcu_read_lock();
    cds_lfht_for_each(g_ht, &iter, it_node) {
        /* Not cds_lfht_for_each_entry: container_of on the final NULL is UB. */
        r = caa_container_of(it_node, struct fn_record, node);
        if (r->extras_json && strstr(r->extras_json, needle)) {
            found = registry_record_ref(r);
            break;
        }
    }
    rcu_read_unlock();
    return found;
}

int registry_all(struct fn_record ***out, size_t *n)
{
    struct cds_lfht_iter iter;
    struct fn_record *r, **v = NULL;
    size_t len = 0, cap = 0;
    struct cds_lfht_node *it_node;
    rcu_read_lock();
    cds_lfht_for_each(g_ht, &iter, it_node) {
        /* Not cds_lfht_for_each_entry: container_of on the final NULL is UB. */
        r = caa_container_of(it_node, struct fn_record, node);
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct fn_record **nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                rcu_read_unlock();
                for (size_t i = 0; i < len; i++)
                    registry_record_unref(v[i]);
                free(v);
                return -ENOMEM;
            }
            v = nv;
            cap = nc;
        }
        v[len++] = registry_record_ref(r);
    }
    rcu_read_unlock();
    *out = v;
    *n = len;
    return 0;
}

size_t registry_count(void)
{
    return atomic_load(&g_count);
}

static int cmp_records(const void *a, const void *b)
{
    const struct fn_record *x = *(struct fn_record *const *)a, *y = *(struct fn_record *const *)b;
    return strcmp(x->name, y->name);
}

int registry_list(const char *region, const char *account, const char *marker, size_t max,
                  struct fn_record ***out, size_t *n, bool *more)
{
    struct cds_lfht_iter iter;
    struct fn_record *r;
    size_t cap = 16, len = 0;
    struct fn_record **v = malloc(cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    rcu_read_lock();
    struct cds_lfht_node *it_node;
    cds_lfht_for_each(g_ht, &iter, it_node) {
        /* Not cds_lfht_for_each_entry: it applies container_of to the NULL
         * that ends the walk, which UBSan rightly reports. */
        r = caa_container_of(it_node, struct fn_record, node);
        if (strcmp(r->region, region) || strcmp(r->account, account) ||
            (marker && strcmp(r->name, marker) <= 0))
            continue;
        if (len == cap) {
            struct fn_record **nv = realloc(v, cap * 2 * sizeof(*v));
            if (!nv)
                break;
            v = nv;
            cap *= 2;
        }
        v[len++] = registry_record_ref(r);
    }
    rcu_read_unlock();
    qsort(v, len, sizeof(*v), cmp_records);
    *more = len > max;
    for (size_t i = max; i < len; i++)
        registry_record_unref(v[i]);
    *n = len > max ? max : len;
    *out = v;
    return 0;
}

/* --- writes (writer_lock held) ------------------------------------------ */

/* Stages the record's document for the next group commit (writer mutex
 * held); *ticket stays 0 with --ephemeral. */
static int persist_doc(const struct fn_record *r, uint64_t *ticket, struct api_error *err)
{
    char id[200];
    if (!g_persist)
        return 0;
    char *text = json_dumps(r->doc, JSON_INDENT(1));
    if (!text)
        return api_fail(err, &AWS_SERVICE, "out of memory");
    persist_id(r->region, r->account, r->name, id, sizeof(id));
    int rc = persist_stage(g_persist, id, text, strlen(text), ticket);
    free(text);
    if (rc) {
        LOG_ERROR("cannot persist function %s: %s", r->key, strerror(-rc));
        return api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot write the function to the data directory");
    }
    return 0;
}

/* After the writer mutex is released: waits until the staged change is
 * durable (one fsync shared by every writer of the batch), so the API
 * answers only then. */
static int persist_wait(uint64_t ticket, const char *key, struct api_error *err)
{
    if (!ticket)
        return 0;
    int rc = persist_commit(g_persist, ticket);
    if (rc) {
        LOG_ERROR("cannot persist function %s: %s", key, strerror(-rc));
        return api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot write the function to the data directory");
    }
    return 0;
}

/* Calls fn on every blob r references, as its document lists them:
 * $LATEST's code and attached layers, each version's code and layers
 * (NULL entries included: coderefs ignores them). */
static void record_blobs(const struct fn_record *r, void (*fn)(const char *hex))
{
    size_t i, j;
    json_t *l, *e;
    fn(r->code_hex);
    json_array_foreach(json_object_get(r->doc, "layers"), i, l)
        fn(jstr(l, "code_hex"));
    json_array_foreach(json_object_get(r->doc, "versions"), j, e) {
        fn(jstr(e, "code_hex"));
        json_array_foreach(json_object_get(e, "layers"), i, l)
            fn(jstr(l, "code_hex"));
    }
}

/* strdup'd spec keys of the versions of old missing from new (NULL: all),
 * NULL-terminated, for pool_evict outside the writer mutex. */
static char **gone_keys(const struct fn_record *old, const struct fn_record *new)
{
    char **out = calloc(old->n_versions + 1, sizeof(char *));
    size_t n = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < old->n_versions; i++)
        if (!new || !registry_version(new, old->versions[i].version))
            out[n++] = fnspec_strdup(old->versions[i].spec->key);
    return out;
}

static void evict_keys(char **keys)
{
    for (size_t i = 0; keys && keys[i]; i++) {
        pool_evict(keys[i]);
        free(keys[i]);
    }
    free(keys);
}

/* Drops the references of an unpublished record (coderefs removes a blob
 * nobody else uses). Called after the writer section, once the change that
 * unpublished it is durable, so a crash never leaves a document pointing
 * at removed code. */
static void release_blobs(const struct fn_record *r)
{
    coderefs_lock();
    record_blobs(r, coderefs_release_locked);
    coderefs_unlock();
}

/* Writer sections hold the writer mutex and, inside it, the reference lock
 * (coderefs.h): a record is built against the blobs present (storing its
 * zip again if one was removed meanwhile) and takes its references before
 * any removal can be decided. */
static void writer_lock(void)
{
    pthread_mutex_lock(&g_write_lock);
    coderefs_lock();
}

static void writer_unlock(void)
{
    coderefs_unlock();
    pthread_mutex_unlock(&g_write_lock);
}

int registry_create(json_t *doc, const void *zip, size_t zip_len, struct fn_record **out,
                    struct api_error *err)
{
    struct fn_record *r = NULL, *made = NULL;
    uint64_t ticket = 0;
    int rc = -1;
    writer_lock();
    const char *region = jstr(doc, "region"), *account = jstr(doc, "account"), *name = jstr(doc, "name");
    rcu_read_lock();
    bool exists = region && account && name && registry_lookup(region, account, name);
    rcu_read_unlock();
    if (exists) {
        api_fail(err, &AWS_RESOURCE_CONFLICT, MSG_FUNCTION_EXISTS, name);
        goto out;
    }
    if (registry_record_build(doc, zip, zip_len, &r, err) || persist_doc(r, &ticket, err))
        goto out;
    rcu_read_lock();
    struct cds_lfht_node *prev = cds_lfht_add_unique(g_ht, hash_key(r->key), match_key, r->key, &r->node);
    rcu_read_unlock();
    if (prev != &r->node) { /* cannot happen: writers are serialised */
        api_fail(err, &AWS_RESOURCE_CONFLICT, MSG_FUNCTION_EXISTS, r->name);
        goto out;
    }
    atomic_fetch_add(&g_count, 1);
    record_blobs(r, coderefs_acquire_locked);
    made = registry_record_ref(r);
    r = NULL; /* the table owns the build reference */
    rc = 0;
out:
    writer_unlock();
    if (r)
        registry_record_unref(r);
    if (made && persist_wait(ticket, made->key, err))
        rc = -1;
    if (out && rc == 0)
        *out = made;
    else
        registry_record_unref(made);
    json_decref(doc);
    return rc;
}

/* Writers, under writer_lock: a reference to the current record of n, or
 * NULL with ResourceNotFoundException in err. */
static struct fn_record *writer_lookup(const struct fn_name *n, struct api_error *err)
{
    rcu_read_lock();
    struct fn_record *cur = registry_record_ref(registry_lookup(n->region, n->account, n->name));
    rcu_read_unlock();
    if (!cur)
        registry_not_found(n, err);
    return cur;
}

int registry_update(const struct fn_name *n, registry_mutate_fn fn, void *ud, const void *zip,
                    size_t zip_len, struct fn_record **out, struct api_error *err)
{
    struct fn_record *cur = NULL, *r = NULL, *made = NULL;
    json_t *doc = NULL;
    char **gone = NULL;
    uint64_t ticket = 0;
    int rc = -1;
    writer_lock();
    cur = writer_lookup(n, err);
    if (!cur)
        goto out;
    doc = json_deep_copy(cur->doc);
    if (!doc) {
        api_fail(err, &AWS_SERVICE, "out of memory");
        goto out;
    }
    if (fn(doc, cur, ud, err) || registry_record_build(doc, zip, zip_len, &r, err) ||
        persist_doc(r, &ticket, err))
        goto out;
    rcu_read_lock();
    struct cds_lfht_iter iter;
    cds_lfht_lookup(g_ht, hash_key(r->key), match_key, r->key, &iter);
    struct cds_lfht_node *old = cds_lfht_iter_get_node(&iter);
    int rrc = old ? cds_lfht_replace(g_ht, &iter, hash_key(r->key), match_key, r->key, &r->node) : -ENOENT;
    rcu_read_unlock();
    if (rrc) { /* cannot happen: writers are serialised */
        api_fail(err, &AWS_SERVICE, "function vanished during update");
        goto out;
    }
    call_rcu(&caa_container_of(old, struct fn_record, node)->rcu, record_free_rcu);
    record_blobs(r, coderefs_acquire_locked); /* cur's are dropped once r is durable */
    gone = gone_keys(cur, r);
    made = registry_record_ref(r);
    r = NULL;
    rc = 0;
out:
    writer_unlock();
    if (made && persist_wait(ticket, made->key, err))
        rc = -1;
    if (made)
        release_blobs(cur); /* only once the new document is durable */
    if (out && rc == 0)
        *out = made;
    else
        registry_record_unref(made);
    evict_keys(gone); /* talks to executors: outside the writer mutex */
    json_decref(doc);
    registry_record_unref(r);
    registry_record_unref(cur);
    return rc;
}

int registry_delete(const struct fn_name *n, struct api_error *err)
{
    struct fn_record *cur;
    char **gone = NULL;
    uint64_t ticket = 0;
    int rc = -1;
    writer_lock();
    cur = writer_lookup(n, err);
    if (!cur)
        goto out;
    if (g_persist) {
        char id[200];
        persist_id(cur->region, cur->account, cur->name, id, sizeof(id));
        int prc = persist_stage(g_persist, id, NULL, 0, &ticket);
        if (prc) {
            LOG_ERROR("cannot remove function %s from the data directory: %s", cur->key, strerror(-prc));
            api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot update the data directory");
            goto out;
        }
    }
    rcu_read_lock();
    int drc = cds_lfht_del(g_ht, &cur->node);
    rcu_read_unlock();
    if (!drc) {
        call_rcu(&cur->rcu, record_free_rcu);
        atomic_fetch_sub(&g_count, 1);
    }
    gone = gone_keys(cur, NULL);
    rc = 0;
out:
    writer_unlock();
    bool removed = rc == 0;
    if (removed && persist_wait(ticket, cur->key, err))
        rc = -1;
    if (removed) {
        release_blobs(cur); /* only once the removal is durable */
        pool_evict(cur->key); /* talks to an executor: outside the writer mutex */
        evict_keys(gone);
    }
    registry_record_unref(cur);
    return rc;
}

/* --- life cycle -------------------------------------------------------- */

int registry_init(struct codestore *cs, struct persist *p)
{
    g_cs = cs;
    g_persist = p;
    g_ht = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    return g_ht ? 0 : -ENOMEM;
}

static int load_one(void *ud, const char *id, json_t *doc)
{
    (void)ud;
    struct fn_record *r;
    struct api_error err;
    char expect[200];
    const char *region = jstr(doc, "region"), *account = jstr(doc, "account"), *name = jstr(doc, "name");
    if (!region || !account || !name) {
        LOG_ERROR("function document %s lacks region/account/name; skipped", id);
        return 0;
    }
    persist_id(region, account, name, expect, sizeof(expect));
    if (strcmp(expect, id))
        LOG_WARN("function document %s names %s; loading it anyway", id, expect);
    if (registry_record_build(doc, NULL, 0, &r, &err)) {
        LOG_ERROR("function document %s skipped: %s", id, err.msg);
        return 0;
    }
    rcu_read_lock();
    struct cds_lfht_node *prev = cds_lfht_add_unique(g_ht, hash_key(r->key), match_key, r->key, &r->node);
    rcu_read_unlock();
    if (prev != &r->node) {
        LOG_ERROR("function document %s duplicates %s; skipped", id, r->key);
        registry_record_unref(r);
        return 0;
    }
    atomic_fetch_add(&g_count, 1);
    record_blobs(r, coderefs_acquire_locked);
    return 0;
}

int registry_load(void)
{
    if (!g_persist)
        return 0;
    writer_lock();
    g_loading = true;
    int rc = persist_load(g_persist, load_one, NULL);
    g_loading = false;
    writer_unlock();
    return rc;
}

void registry_shutdown(void)
{
    struct cds_lfht_iter iter;
    struct fn_record *r;
    if (!g_ht)
        return;
    pthread_mutex_lock(&g_write_lock);
    rcu_read_lock();
    struct cds_lfht_node *it_node;
    cds_lfht_for_each(g_ht, &iter, it_node) {
        /* Not cds_lfht_for_each_entry: it applies container_of to the NULL
         * that ends the walk, which UBSan rightly reports. */
        r = caa_container_of(it_node, struct fn_record, node);
        if (!cds_lfht_del(g_ht, &r->node))
            call_rcu(&r->rcu, record_free_rcu);
    }
    rcu_read_unlock();
    atomic_store(&g_count, 0);
    pthread_mutex_unlock(&g_write_lock);
    rcu_barrier();
    cds_lfht_destroy(g_ht, NULL);
    g_ht = NULL;
}
