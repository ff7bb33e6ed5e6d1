/* api_functions: Lambda control-plane handlers (see api_functions.h).
 *
 * DESIGN: the persisted document of a function (registry.h) carries the
 * FunctionConfiguration exactly as the API returns it. Create builds it from
 * the request; updates edit a copy inside registry_update's mutate callback
 * (where the RevisionId precondition is checked against the current record);
 * reads send the record's pre-serialised text. */
#include "server/admin.h"
#include "server/api_functions.h"

#include <civetweb.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "runtime/codestore.h"
#include "runtime/log.h"
#include "server/api_capacity.h"
#include "server/config.h"
#include "server/layers.h"
#include "server/registry.h"
#include "server/s3store.h"
#include "server/svc_iam.h"
#include "server/validate.h"

#define FN_NAME_MAX 140
#define FN_NAMESPACED_MAX 256
#define LIST_PAGE_MAX 50

/* AWS's tag limit per resource and its answer past it. */
#define MAX_TAGS 50
#define MSG_TOO_MANY_TAGS "Number of tags exceeds resource tag limit."

static struct codestore *g_cs;

void api_functions_init(struct codestore *cs)
{
    g_cs = cs;
}

/* --- helpers ----------------------------------------------------------- */

static void now_lastmodified(char out[40])
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03d+0000", (int)(tv.tv_usec / 1000) % 1000);
}

/* New LastModified and RevisionId: every mutation of the configuration. */
static void touch(json_t *cfg)
{
    char ts[40], rev[37];
    now_lastmodified(ts);
    http_uuid4(rev);
    json_object_set_new(cfg, "LastModified", json_string(ts));
    json_object_set_new(cfg, "RevisionId", json_string(rev));
    json_object_set_new(cfg, "LastUpdateStatus", json_string("Successful"));
}

/* --- state transitions ------------------------------------------------ */

long long api_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

bool api_function_busy(const struct fn_record *r)
{
    return r->busy_until_ms && api_now_ms() < r->busy_until_ms;
}

/* Starts the Pending (create) or InProgress (update) window in a writer's
 * document copy. */
static void busy_start(json_t *doc, bool creating)
{
    const struct lambdad_config *c = config_current();
    long long ms = c ? c->state_transition_ms : 0;
    json_object_set_new(doc, "busy_until", json_integer(api_now_ms() + ms));
    json_object_set_new(doc, "busy_creating", json_boolean(creating));
}

/* The configuration text as AWS shows it while the function is being
 * created (State Pending) or updated (LastUpdateStatus InProgress).
 * Returns malloc'd text, or NULL when out of memory. */
static char *busy_view(const char *text, size_t len, bool creating)
{
    json_t *cfg = json_loadb(text, len, 0, NULL);
    if (!cfg)
        return NULL;
    if (creating) {
        json_object_set_new(cfg, "State", json_string("Pending"));
        json_object_set_new(cfg, "StateReason", json_string("The function is being created."));
        json_object_set_new(cfg, "StateReasonCode", json_string("Creating"));
        json_object_del(cfg, "LastUpdateStatus");
    } else {
        json_object_set_new(cfg, "LastUpdateStatus", json_string("InProgress"));
        json_object_set_new(cfg, "LastUpdateStatusReason", json_string("The function is being created."));
        json_object_set_new(cfg, "LastUpdateStatusReasonCode", json_string("Creating"));
    }
    char *out = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    return out;
}

int api_check_not_busy(const struct fn_record *r, struct api_error *err)
{
    if (!api_function_busy(r))
        return 0;
    if (r->busy_creating)
        return api_fail(err, &AWS_RESOURCE_CONFLICT, "The operation cannot be performed at this time. "
                        "The function is currently in the following state: Pending");
    return api_fail(err, &AWS_RESOURCE_CONFLICT, "The operation cannot be performed at this time. "
                    "An update is in progress for resource: %s", r->arn);
}

/* Sends a configuration text as the create/update response shows it. */
static void send_busy(struct http_req *req, int status, const char *text, size_t len, bool creating)
{
    char *t = busy_view(text, len, creating);
    if (t)
        http_send_json(req, status, t, strlen(t));
    else
        http_send_error(req, &AWS_SERVICE, "out of memory");
    free(t);
}

/* Whether two configurations describe the same function, ignoring what
 * differs between $LATEST and a version snapshot of it. */
static bool same_config(json_t *a, json_t *b)
{
    static const char *const volatile_keys[] = {"FunctionArn", "Version", "LastModified", "RevisionId",
                                                "Description", "LastUpdateStatus", "State", NULL};
    json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
    for (size_t i = 0; volatile_keys[i]; i++) {
        json_object_del(x, volatile_keys[i]);
        json_object_del(y, volatile_keys[i]);
    }
    bool eq = json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return eq;
}

void api_forget_qualifier(json_t *doc, const char *qualifier)
{
    static const char *const kinds[] = {"policy", "urls", "eic", "pc", "runtime", NULL};
    json_t *extras = json_object_get(doc, "extras");
    for (size_t i = 0; extras && kinds[i]; i++)
        json_object_del(json_object_get(extras, kinds[i]), qualifier);
}

int api_publish_doc(json_t *doc, const char *description, char ver[24])
{
    json_t *cfg = json_object_get(doc, "configuration");
    json_t *versions = json_object_get(doc, "versions");
    if (!json_is_array(versions)) {
        versions = json_array();
        json_object_set_new(doc, "versions", versions);
    }
    size_t nv = json_array_size(versions);
    json_t *last = nv ? json_array_get(versions, nv - 1) : NULL;
    /* The version's Description may come from the publish request: compare
     * $LATEST's with the one $LATEST had when that version was taken. */
    json_t *was = json_object_get(last, "latest_description");
    if (last && same_config(json_object_get(last, "configuration"), cfg) &&
        (!was || json_equal(was, json_object_get(cfg, "Description")))) {
        snprintf(ver, 24, "%s", json_string_value(json_object_get(last, "version")));
        return 0;
    }
    json_int_t n = json_integer_value(json_object_get(doc, "last_version")) + 1;
    json_object_set_new(doc, "last_version", json_integer(n));
    snprintf(ver, 24, "%" JSON_INTEGER_FORMAT, n);
    json_t *vcfg = json_deep_copy(cfg);
    char arn[600];
    snprintf(arn, sizeof(arn), "%s:%s", json_string_value(json_object_get(cfg, "FunctionArn")), ver);
    json_object_set_new(vcfg, "FunctionArn", json_string(arn));
    json_object_set_new(vcfg, "Version", json_string(ver));
    if (description)
        json_object_set_new(vcfg, "Description", json_string(description));
    touch(vcfg);
    json_t *e = json_pack("{s:s,s:o}", "version", ver, "configuration", vcfg);
    if (json_object_get(cfg, "Description"))
        json_object_set(e, "latest_description", json_object_get(cfg, "Description"));
    static const char *const copy[] = {"code_hex", "image_uri", "layers", NULL};
    for (size_t i = 0; copy[i]; i++)
        if (json_object_get(doc, copy[i]))
            json_object_set(e, copy[i], json_object_get(doc, copy[i]));
    json_array_append_new(versions, e);
    return 0;
}

json_t *api_read_json_body(struct http_req *req)
{
    json_error_t jerr;
    if (http_read_body(req))
        return NULL;
    if (req->body_len == 0)
        return json_object();
    if (http_json_too_deep(req->body, req->body_len, 64)) {
        http_send_error(req, &AWS_INVALID_REQUEST_CONTENT, MSG_BAD_JSON, "nesting too deep");
        return NULL;
    }
    /* A key given twice is refused, not resolved by "last wins": which value
     * a client meant is unknown. */
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        http_send_error(req, &AWS_INVALID_REQUEST_CONTENT, MSG_BAD_JSON,
                        j ? "the body must be a JSON object" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

#define read_json_body api_read_json_body
#define resolve_ref api_resolve_ref

struct fn_record *api_resolve_ref(struct http_req *req, size_t max_len, bool with_qualifier,
                                  struct fn_name *n)
{
    char q[160];
    const char *qp = NULL;
    if (with_qualifier) {
        int ql = http_query(req, "Qualifier", q, sizeof(q));
        if (ql == -2) {
            http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value at 'qualifier' "
                                                  "failed to satisfy constraint: Member must have length "
                                                  "less than or equal to 128");
            return NULL;
        }
        if (ql >= 0)
            qp = q;
    }
    return api_resolve_name(req, http_param(req, 0), qp, max_len, n);
}

struct fn_record *api_resolve_name(struct http_req *req, const char *name, const char *qualifier,
                                   size_t max_len, struct fn_name *n)
{
    struct api_error err;
    rcu_read_lock();
    struct fn_record *r = registry_resolve(name, qualifier, max_len, req->region, req->account, n, &err);
    registry_record_ref(r);
    rcu_read_unlock();
    if (!r)
        http_send_api_error(req, &err);
    return r;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static json_t *strv_copy(json_t *arr)
{
    size_t i;
    json_t *v, *out = json_array();
    json_array_foreach(arr, i, v) if (json_is_string(v)) json_array_append(out, v);
    return out;
}

/* Applies the configuration members present in body onto cfg (shared by
 * CreateFunction and UpdateFunctionConfiguration; body already validated). */
static void apply_config(json_t *cfg, json_t *body)
{
    static const char *const plain[] = {"Role", "Handler", "Runtime", "Description", "Timeout",
                                        "MemorySize", "KMSKeyArn", "FileSystemConfigs",
                                        "DeadLetterConfig", NULL};
    for (size_t i = 0; plain[i]; i++) {
        json_t *v = json_object_get(body, plain[i]);
        if (v && !json_is_null(v))
            json_object_set(cfg, plain[i], v);
    }
    json_t *env = json_object_get(body, "Environment");
    if (env && !json_is_null(env)) {
        json_t *vars = json_object_get(env, "Variables");
        if (json_is_object(vars) && json_object_size(vars))
            json_object_set_new(cfg, "Environment", json_pack("{s:O}", "Variables", vars));
        else
            json_object_del(cfg, "Environment");
    }
    json_t *tc = json_object_get(body, "TracingConfig");
    if (json_is_string(json_object_get(tc, "Mode")))
        json_object_set_new(cfg, "TracingConfig", json_pack("{s:O}", "Mode", json_object_get(tc, "Mode")));
    json_t *eph = json_object_get(body, "EphemeralStorage");
    if (json_is_integer(json_object_get(eph, "Size")))
        json_object_set_new(cfg, "EphemeralStorage", json_pack("{s:O}", "Size", json_object_get(eph, "Size")));
    json_t *ic = json_object_get(body, "ImageConfig");
    if (json_is_object(ic)) {
        json_t *o = json_object();
        if (json_is_array(json_object_get(ic, "EntryPoint")))
            json_object_set_new(o, "EntryPoint", strv_copy(json_object_get(ic, "EntryPoint")));
        if (json_is_array(json_object_get(ic, "Command")))
            json_object_set_new(o, "Command", strv_copy(json_object_get(ic, "Command")));
        if (json_is_string(json_object_get(ic, "WorkingDirectory")))
            json_object_set(o, "WorkingDirectory", json_object_get(ic, "WorkingDirectory"));
        if (json_object_size(o))
            json_object_set_new(cfg, "ImageConfigResponse", json_pack("{s:o}", "ImageConfig", o));
        else {
            json_decref(o);
            json_object_del(cfg, "ImageConfigResponse");
        }
    }
    json_t *lc = json_object_get(body, "LoggingConfig");
    if (json_is_object(lc)) {
        json_t *cur = json_object_get(cfg, "LoggingConfig");
        json_t *merged = json_is_object(cur) ? json_deep_copy(cur) : json_object();
        static const char *const keys[] = {"LogFormat", "ApplicationLogLevel", "SystemLogLevel", "LogGroup", NULL};
        for (size_t i = 0; keys[i]; i++)
            if (json_is_string(json_object_get(lc, keys[i])))
                json_object_set(merged, keys[i], json_object_get(lc, keys[i]));
        json_object_set_new(cfg, "LoggingConfig", merged);
    }
    json_t *vpc = json_object_get(body, "VpcConfig");
    if (json_is_object(vpc)) {
        json_t *sn = json_object_get(vpc, "SubnetIds"), *sg = json_object_get(vpc, "SecurityGroupIds");
        json_object_set_new(cfg, "VpcConfig",
                            json_pack("{s:o,s:o,s:s,s:b}", "SubnetIds", strv_copy(sn), "SecurityGroupIds",
                                      strv_copy(sg), "VpcId", "", "Ipv6AllowedForDualStack", 0));
    }
    json_t *ss = json_object_get(body, "SnapStart");
    if (json_is_string(json_object_get(ss, "ApplyOn")))
        json_object_set_new(cfg, "SnapStart", json_pack("{s:O,s:s}", "ApplyOn", json_object_get(ss, "ApplyOn"),
                                                        "OptimizationStatus", "Off"));
    json_t *ar = json_object_get(body, "Architectures");
    if (json_is_array(ar) && json_array_size(ar) == 1)
        json_object_set(cfg, "Architectures", ar);
    json_t *cpc = api_capacity_function_config(body);
    if (cpc)
        json_object_set_new(cfg, "CapacityProviderConfig", cpc);
}

/* Checks Runtime/Handler against the package type (after shape checks). */
static int check_package_rules(json_t *body, const char *package, bool create, struct api_error *err)
{
    bool has_rt = json_is_string(json_object_get(body, "Runtime"));
    bool has_h = json_is_string(json_object_get(body, "Handler"));
    json_t *layers = json_object_get(body, "Layers");
    if (!strcmp(package, "Image")) {
        if (has_rt || has_h || (json_is_array(layers) && json_array_size(layers)))
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE,
                            "Please don't provide Handler or Runtime or Layer when the intended function "
                            "PackageType is Image.");
    } else if (create && (!has_rt || !has_h)) {
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_RUNTIME_HANDLER_MANDATORY);
    }
    return 0;
}

/* Code of a CreateFunction / UpdateFunctionCode request. */
struct code_src {
    unsigned char *zip;
    size_t zip_len;
    struct code_info info;
    const char *image_uri;
    char image_sha[65];
};

/* Decodes and stores the code members of obj (CreateFunction's Code or the
 * UpdateFunctionCode body). Slow (unzips): no lock held. */
static int take_code(json_t *obj, const char *package, bool create, const char *region, struct code_src *c,
                     struct api_error *err)
{
    json_t *zip = json_object_get(obj, "ZipFile");
    const char *image = json_string_value(json_object_get(obj, "ImageUri"));
    bool s3 = json_object_get(obj, "S3Bucket") || json_object_get(obj, "S3Key");
    memset(c, 0, sizeof(*c));
    if (!strcmp(package, "Image")) {
        if (json_is_string(zip) || s3 || !image || !*image)
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE,
                            create ? "Please provide ImageUri when the intended function PackageType is Image."
                                   : "Please provide ImageUri when updating a function with packageType Image.");
        c->image_uri = image;
        sha256_hex(image, c->image_sha);
        return 0;
    }
    if (image)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE,
                        create ? "Please don't provide ImageUri when the intended function PackageType is Zip."
                               : "Please don't provide ImageUri when updating a function with packageType Zip.");
    if (s3 && !json_is_string(zip))
        return api_store_s3(obj, region, &c->info, err);
    if (!json_is_string(zip))
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE,
                        "Please provide a source for function code (Code.ZipFile).");
    return api_store_zip(zip, "Code.ZipFile", &c->zip, &c->zip_len, &c->info, err);
}

int api_store_s3(json_t *obj, const char *region, struct code_info *info, struct api_error *err)
{
#define S3_GET_ERROR "Error occurred while GetObject. S3 Error Code: %s. S3 Error Message: %s"
    const char *bucket = json_string_value(json_object_get(obj, "S3Bucket"));
    const char *key = json_string_value(json_object_get(obj, "S3Key"));
    json_t *ver_j = json_object_get(obj, "S3ObjectVersion");
    const char *ver = json_string_value(ver_j);
    if (!bucket || !key || (ver_j && !json_is_null(ver_j) && !ver))
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE,
                        "Please provide both S3Bucket and S3Key to take the code from Amazon S3.");
    struct s3_bucket_info bi;
    if (s3store_bucket(bucket, &bi))
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, S3_GET_ERROR, "NoSuchBucket",
                        "The specified bucket does not exist");
    if (strcmp(bi.region, region)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "The bucket is in this region: %s. Please use this region to retry the request",
                 bi.region);
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, S3_GET_ERROR, "PermanentRedirect", msg);
    }
    struct s3_version v;
    char *path = NULL;
    int rc = s3store_get_file(bucket, key, ver, &v, &path);
    s3_version_release(&v); /* filled for a delete marker even on failure */
    if (rc == S3_ENOKEY)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, S3_GET_ERROR, "NoSuchKey", "The specified key does not exist.");
    if (rc == S3_ENOVERSION || rc == S3_EMARKER)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, S3_GET_ERROR, "NoSuchVersion",
                        "The specified version does not exist.");
    if (rc)
        return api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot read the object from lambdad's S3");
    const char *cerr = NULL;
    rc = g_cs ? codestore_put_file(g_cs, path, info, &cerr) : -EIO;
    unlink(path);
    free(path);
    if (rc == -EINVAL)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "%s", cerr ? cerr : CODESTORE_ERR_UNZIP);
    if (rc) {
        LOG_ERROR("code store: %s (%s)", cerr ? cerr : "?", strerror(-rc));
        return api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot store the deployment package");
    }
    return 0;
#undef S3_GET_ERROR
}

int api_store_zip(json_t *zipfile, const char *what, unsigned char **zip, size_t *len,
                  struct code_info *info, struct api_error *err)
{
    *zip = NULL;
    *len = 0;
    if (http_base64_decode(json_string_value(zipfile), json_string_length(zipfile), zip, len))
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "%s is not valid base64.", what);
    if (!g_cs)
        return api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "no code store");
    const char *cerr = NULL;
    int rc = codestore_put(g_cs, *zip, *len, info, &cerr);
    if (rc == -EINVAL)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "%s", cerr ? cerr : CODESTORE_ERR_UNZIP);
    if (rc) {
        LOG_ERROR("code store: %s (%s)", cerr ? cerr : "?", strerror(-rc));
        return api_fail(err, &AWS_SERVICE, MSG_INTERNAL, "cannot store the deployment package");
    }
    return 0;
}

/* Resolves a request's Layers (already shape-checked, at most 5) against
 * the layer store, like the service: same region as the function, one
 * version per layer, every version existing. *out gets the function's copy
 * ([{"arn","code_hex","code_sha256","code_size"}], attach order), or NULL
 * when the request has no Layers member. */
static int resolve_layers(json_t *body, const char *region, const char *account, json_t **out,
                          struct api_error *err)
{
    json_t *layers = json_object_get(body, "Layers"), *l;
    size_t i;
    *out = NULL;
    if (!json_is_array(layers))
        return 0;
    json_t *res = json_array();
    json_array_foreach(layers, i, l) {
        const char *arn = json_string_value(l);
        char r[32], a[13], name[LAYERS_NAME_MAX + 1];
        long long version;
        if (layers_parse_arn(arn, r, a, name, &version) || version < 1) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Layer version %s does not exist.", arn ? arn : "");
            goto fail;
        }
        if (strcmp(r, region)) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Layers are not in the same region as the function. "
                     "Layers are expected to be in region %s.", region);
            goto fail;
        }
        if (strcmp(a, account)) {
            /* Another account's layer needs its permission, which lambdad
             * does not evaluate. */
            api_access_denied(err, account, "GetLayerVersion", arn);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            const char *prev = json_string_value(json_array_get(layers, j));
            size_t base = (size_t)(strrchr(arn, ':') - arn);
            if (prev && !strncmp(prev, arn, base + 1) && strspn(prev + base + 1, "0123456789") == strlen(prev + base + 1)) {
                api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Two different versions of the same layer are not "
                         "allowed to be referenced in the same function. %s and %s are versions of the same "
                         "layer.", prev, arn);
                goto fail;
            }
        }
        struct layer_version *v = layers_get(r, a, name, version);
        if (!v) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Layer version %s does not exist.", arn);
            goto fail;
        }
        json_array_append_new(res, json_pack("{s:s,s:s,s:s,s:I}", "arn", v->arn, "code_hex", v->code_hex,
                                             "code_sha256", v->code_sha256, "code_size",
                                             (json_int_t)v->code_size));
        layers_unref(v);
    }
    *out = res;
    return 0;
fail:
    json_decref(res);
    return -1;
}

/* Sets configuration.Layers ([{"Arn","CodeSize"}]) and the document's copy
 * from resolved (see resolve_layers); NULL leaves both as they are. */
static void set_layers(json_t *doc, json_t *cfg, json_t *resolved)
{
    size_t i;
    json_t *l;
    if (!resolved)
        return;
    if (!json_array_size(resolved)) {
        json_object_del(cfg, "Layers");
        json_object_del(doc, "layers");
        return;
    }
    json_t *out = json_array();
    json_array_foreach(resolved, i, l)
        json_array_append_new(out, json_pack("{s:O,s:O}", "Arn", json_object_get(l, "arn"), "CodeSize",
                                             json_object_get(l, "code_size")));
    json_object_set_new(cfg, "Layers", out);
    json_object_set(doc, "layers", resolved);
}

static void code_src_free(struct code_src *c)
{
    free(c->zip);
}

/* Writes the code fields into cfg and the document. */
static void set_code(json_t *doc, json_t *cfg, const struct code_src *c)
{
    if (c->image_uri) {
        json_object_set_new(cfg, "CodeSha256", json_string(c->image_sha));
        json_object_set_new(cfg, "CodeSize", json_integer(0));
        json_object_set_new(doc, "image_uri", json_string(c->image_uri));
        json_object_del(doc, "code_hex");
    } else {
        json_object_set_new(cfg, "CodeSha256", json_string(c->info.sha256_b64));
        json_object_set_new(cfg, "CodeSize", json_integer((json_int_t)c->info.size));
        json_object_set_new(doc, "code_hex", json_string(c->info.sha256_hex));
        json_object_del(doc, "image_uri");
    }
}

static void send_record_config(struct http_req *req, int status, const struct fn_record *r)
{
    http_send_json(req, status, r->config_json, r->config_len);
}

/* Sends version ver's configuration ("" or missing: $LATEST's). */
static void send_version_config(struct http_req *req, int status, const struct fn_record *r, const char *ver)
{
    const struct fn_version *v = ver[0] ? registry_version(r, ver) : NULL;
    if (v)
        http_send_json(req, status, v->config_json, v->config_len);
    else
        send_record_config(req, status, r);
}

/* --- CreateFunction ---------------------------------------------------- */

/* --validate-roles: the Role must name a role of lambdad's IAM, as AWS
 * checks that Lambda can assume it. */
static int check_role(json_t *body, const char *account, struct api_error *err)
{
    const struct lambdad_config *cfg = config_current();
    const char *role = json_string_value(json_object_get(body, "Role"));
    /* arn:aws:iam::<account>:role/...: Lambda may only be passed a role of
     * the caller's own account. */
    const char *acct = role && !strncmp(role, "arn:", 4) ? strstr(role, ":iam::") : NULL;
    if (acct && strncmp(acct + 6, account, 12) != 0)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_CROSS_ACCOUNT_PASS_ROLE);
    if (!cfg || !cfg->validate_roles || !role || iam_role_exists(role))
        return 0;
    return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "The role defined for the function cannot be assumed by Lambda.");
}

int api_create_function_doc(json_t *body, const char *region, const char *account,
                            struct fn_record **out, char ver[24], struct api_error *errp)
{
    struct api_error err;
    struct code_src code = {0};
    struct fn_name n;
    struct vlist v;
    struct fn_record *rec = NULL;
    json_t *layers = NULL;
    char arn[400], group[600];
    int rc = -1;
    ver[0] = 0;
    vlist_init(&v);
    json_t *fname = json_object_get(body, "FunctionName");
    validate_function_name(json_is_string(fname) ? json_string_value(fname) : NULL, FN_NAME_MAX, &n, &v);
    json_t *code_j = json_object_get(body, "Code");
    if (!json_is_object(code_j))
        vlist_add(&v, NULL, "code", "Member must not be null");
    if (vlist_finish(&v, &err) || validate_function_config(body, true, &err) ||
        validate_same_namespace(&n, region, account, &err) || check_role(body, account, &err) ||
        api_capacity_check_function_config(body, region, account, &err))
        goto fail;
    if (n.qualifier[0]) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "Unsupported function name: a qualifier cannot be "
                                                     "given when creating a function.");
        goto fail;
    }
    if (!n.region[0])
        snprintf(n.region, sizeof(n.region), "%s", region);
    if (!n.account[0])
        snprintf(n.account, sizeof(n.account), "%s", account);
    const char *package = json_string_value(json_object_get(body, "PackageType"));
    if (!package)
        package = "Zip";
    if (check_package_rules(body, package, true, &err) || resolve_layers(body, n.region, n.account, &layers, &err))
        goto fail;
    json_t *tags = json_object_get(body, "Tags");
    if (json_is_object(tags) && json_object_size(tags) > MAX_TAGS) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, MSG_TOO_MANY_TAGS);
        goto fail;
    }
    if (tags && !json_is_null(tags) && !json_is_object(tags)) {
        api_fail(&err, &AWS_VALIDATION, "1 validation error detected: Value at 'tags' failed to satisfy "
                                        "constraint: Member must be a map");
        goto fail;
    }
    /* Cheap duplicate check before the slow unzip (registry_create re-checks). */
    rcu_read_lock();
    bool exists = registry_lookup(n.region, n.account, n.name) != NULL;
    rcu_read_unlock();
    if (exists) {
        api_fail(&err, &AWS_RESOURCE_CONFLICT, MSG_FUNCTION_EXISTS, n.name);
        goto fail;
    }
    if (take_code(code_j, package, true, n.region, &code, &err))
        goto fail;

    validate_function_arn(&n, false, arn, sizeof(arn));
    snprintf(group, sizeof(group), "/aws/lambda/%s", n.name);
    json_t *cfg = json_object();
    json_object_set_new(cfg, "FunctionName", json_string(n.name));
    json_object_set_new(cfg, "FunctionArn", json_string(arn));
    if (strcmp(package, "Image")) {
        json_object_set(cfg, "Runtime", json_object_get(body, "Runtime"));
        json_object_set(cfg, "Role", json_object_get(body, "Role"));
        json_object_set(cfg, "Handler", json_object_get(body, "Handler"));
    } else {
        json_object_set(cfg, "Role", json_object_get(body, "Role"));
    }
    json_object_set_new(cfg, "CodeSize", json_integer(0));
    json_object_set_new(cfg, "Description", json_string(""));
    json_object_set_new(cfg, "Timeout", json_integer(3));
    json_object_set_new(cfg, "MemorySize", json_integer(128));
    json_object_set_new(cfg, "LastModified", json_string(""));
    json_object_set_new(cfg, "CodeSha256", json_string(""));
    json_object_set_new(cfg, "Version", json_string("$LATEST"));
    json_object_set_new(cfg, "TracingConfig", json_pack("{s:s}", "Mode", "PassThrough"));
    json_object_set_new(cfg, "RevisionId", json_string(""));
    json_object_set_new(cfg, "State", json_string("Active"));
    json_object_set_new(cfg, "LastUpdateStatus", json_string("Successful"));
    json_object_set_new(cfg, "PackageType", json_string(package));
    json_object_set_new(cfg, "Architectures", json_pack("[s]", "x86_64"));
    json_object_set_new(cfg, "EphemeralStorage", json_pack("{s:i}", "Size", 512));
    json_object_set_new(cfg, "SnapStart", json_pack("{s:s,s:s}", "ApplyOn", "None", "OptimizationStatus", "Off"));
    json_object_set_new(cfg, "LoggingConfig", json_pack("{s:s,s:s}", "LogFormat", "Text", "LogGroup", group));
    apply_config(cfg, body);
    touch(cfg);

    json_t *doc = json_pack("{s:i,s:s,s:s,s:s}", "lambdad_format", 1, "region", n.region, "account",
                            n.account, "name", n.name);
    set_code(doc, cfg, &code);
    set_layers(doc, cfg, layers);
    json_object_set_new(doc, "configuration", cfg);
    if (json_is_object(tags) && json_object_size(tags))
        json_object_set(doc, "tags", tags);
    if (json_is_true(json_object_get(body, "Publish")))
        api_publish_doc(doc, NULL, ver);
    busy_start(doc, true);
    if (registry_create(doc, code.zip, code.zip_len, &rec, &err))
        goto fail;
    if (out)
        *out = rec;
    else
        registry_record_unref(rec);
    rc = 0;
    goto done;
fail:
    *errp = err;
done:
    code_src_free(&code);
    json_decref(layers);
    return rc;
}

void api_create_function(struct http_req *req)
{
    struct api_error err;
    struct fn_record *rec = NULL;
    char ver[24];
    json_t *body = read_json_body(req);
    if (!body)
        return;
    if (api_create_function_doc(body, req->region, req->account, &rec, ver, &err)) {
        http_send_api_error(req, &err);
    } else if (ver[0]) {
        /* Publish=true: AWS answers the unqualified ARN with Version "N". */
        json_t *c = json_loadb(rec->config_json, rec->config_len, 0, NULL);
        json_object_set_new(c, "Version", json_string(ver));
        char *t = c ? json_dumps(c, JSON_COMPACT) : NULL;
        json_decref(c);
        if (t)
            send_busy(req, 201, t, strlen(t), true);
        else
            http_send_error(req, &AWS_SERVICE, "out of memory");
        free(t);
    } else {
        send_busy(req, 201, rec->config_json, rec->config_len, true);
    }
    registry_record_unref(rec);
    json_decref(body);
}

/* --- reads ------------------------------------------------------------- */

/* The FunctionConfiguration a (possibly qualified) request answers with,
 * as malloc'd text: $LATEST's, a version's, or an alias's version with the
 * FunctionArn qualified by the alias. code_hex/image_uri (may be NULL)
 * receive the target's code (borrowed from r). */
static char *target_config(const struct fn_record *r, const struct fn_name *n, const char **code_hex,
                           const char **image_uri)
{
    const char *q = n->qualifier, *hex = r->code_hex, *img = r->image_uri, *text = r->config_json;
    const struct fn_alias *a = NULL;
    const struct fn_version *v = NULL;
    if (q[0] && strcmp(q, "$LATEST")) {
        v = registry_version(r, q);
        if (!v && (a = registry_alias(r, q)))
            v = registry_version(r, a->version); /* NULL: the alias points at $LATEST */
        if (v) {
            hex = v->code_hex;
            img = v->image_uri;
            text = v->config_json;
        }
    }
    if (code_hex)
        *code_hex = hex;
    if (image_uri)
        *image_uri = img;
    if (!v && api_function_busy(r))
        return busy_view(text, strlen(text), r->busy_creating);
    if (!a)
        return strdup(text);
    json_t *cfg = json_loads(text, 0, NULL);
    char arn[600];
    validate_function_arn(n, true, arn, sizeof(arn));
    json_object_set_new(cfg, "FunctionArn", json_string(arn));
    char *out = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    return out;
}

void api_get_function_configuration(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        return;
    char *text = target_config(r, &n, NULL, NULL);
    if (text)
        http_send_json(req, 200, text, strlen(text));
    else
        http_send_error(req, &AWS_SERVICE, "out of memory");
    free(text);
    registry_record_unref(r);
}

void api_get_function(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        return;
    json_t *code;
    const char *code_hex, *image_uri;
    char *config = target_config(r, &n, &code_hex, &image_uri);
    if (image_uri) {
        code = json_pack("{s:s,s:s,s:s}", "RepositoryType", "ECR", "ImageUri", image_uri,
                         "ResolvedImageUri", image_uri);
    } else {
        char loc[1200];
        admin_code_location(req, code_hex, loc, sizeof(loc));
        code = json_pack("{s:s,s:s}", "RepositoryType", "S3", "Location", loc);
    }
    char *code_text = json_dumps(code, JSON_COMPACT);
    json_decref(code);
    size_t cap = (config ? strlen(config) : 0) + (code_text ? strlen(code_text) : 0) +
                 (r->tags_json ? strlen(r->tags_json) : 0) + 128;
    char *out = malloc(cap);
    if (!out || !code_text || !config) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
    } else {
        int len = snprintf(out, cap, "{\"Configuration\":%s,\"Code\":%s", config, code_text);
        if (r->tags_json)
            len += snprintf(out + len, cap - (size_t)len, ",\"Tags\":%s", r->tags_json);
        if (r->reserved_concurrency >= 0)
            len += snprintf(out + len, cap - (size_t)len, ",\"Concurrency\":{\"ReservedConcurrentExecutions\":%d}",
                            r->reserved_concurrency);
        len += snprintf(out + len, cap - (size_t)len, "}");
        http_send_json(req, 200, out, (size_t)len);
    }
    free(out);
    free(code_text);
    free(config);
    registry_record_unref(r);
}

void api_list_functions(struct http_req *req)
{
    char marker[160], maxs[32], fv[16] = "";
    size_t max = LIST_PAGE_MAX;
    int ml = http_query(req, "Marker", marker, sizeof(marker));
    bool all = false;
    if (http_query(req, "FunctionVersion", fv, sizeof(fv)) != -1) {
        if (strcmp(fv, "ALL")) {
            http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value '%s' at "
                            "'functionVersion' failed to satisfy constraint: Member must satisfy enum "
                            "value set: [ALL]", fv);
            return;
        }
        all = true;
    }
    if (http_query(req, "MaxItems", maxs, sizeof(maxs)) >= 0) {
        char *end;
        long m = strtol(maxs, &end, 10);
        if (!maxs[0] || *end || m < 1 || m > 10000) {
            http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value '%s' at 'maxItems' "
                            "failed to satisfy constraint: Member must have value %s", maxs,
                            m < 1 ? "greater than or equal to 1" : "less than or equal to 10000");
            return;
        }
        if ((size_t)m < max)
            max = (size_t)m;
    }
    struct fn_record **v;
    size_t n;
    bool more;
    if (registry_list(req->region, req->account, ml > 0 ? marker : NULL, max, &v, &n, &more)) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
        return;
    }
    size_t cap = 64;
    for (size_t i = 0; i < n; i++) {
        cap += (all ? v[i]->latest_q_len : v[i]->config_len) + 1;
        for (size_t j = 0; all && j < v[i]->n_versions; j++)
            cap += v[i]->versions[j].config_len + 1;
    }
    if (more)
        cap += strlen(v[n - 1]->name) + 32;
    char *out = malloc(cap);
    if (out) {
        size_t len = (size_t)snprintf(out, cap, "{\"Functions\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                out[len++] = ',';
            /* With FunctionVersion=ALL the $LATEST entry is qualified, as in AWS. */
            memcpy(out + len, all ? v[i]->latest_q_json : v[i]->config_json,
                   all ? v[i]->latest_q_len : v[i]->config_len);
            len += all ? v[i]->latest_q_len : v[i]->config_len;
            for (size_t j = 0; all && j < v[i]->n_versions; j++) {
                out[len++] = ',';
                memcpy(out + len, v[i]->versions[j].config_json, v[i]->versions[j].config_len);
                len += v[i]->versions[j].config_len;
            }
        }
        len += (size_t)snprintf(out + len, cap - len, "]");
        if (more && n)
            len += (size_t)snprintf(out + len, cap - len, ",\"NextMarker\":\"%s\"", v[n - 1]->name);
        len += (size_t)snprintf(out + len, cap - len, "}");
        http_send_json(req, 200, out, len);
        free(out);
    } else {
        http_send_error(req, &AWS_SERVICE, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        registry_record_unref(v[i]);
    free(v);
}

/* --- updates ----------------------------------------------------------- */

static int check_revision(json_t *body, const struct fn_record *cur, struct api_error *err)
{
    const char *want = json_string_value(json_object_get(body, "RevisionId"));
    if (want && (!cur->revision_id || strcmp(want, cur->revision_id)))
        return api_fail(err, &AWS_PRECONDITION_FAILED, MSG_REVISION_MISMATCH);
    return 0;
}

struct code_update {
    json_t *body;
    struct code_src code;
    char ver[24]; /* the version Publish=true published, else "" */
};

static int mutate_code(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    struct code_update *u = ud;
    json_t *cfg = json_object_get(doc, "configuration");
    if (api_check_not_busy(cur, err) || check_revision(u->body, cur, err))
        return -1;
    busy_start(doc, false);
    set_code(doc, cfg, &u->code);
    json_t *ar = json_object_get(u->body, "Architectures");
    if (json_is_array(ar) && json_array_size(ar) == 1)
        json_object_set(cfg, "Architectures", ar);
    touch(cfg);
    if (json_is_true(json_object_get(u->body, "Publish")))
        api_publish_doc(doc, NULL, u->ver);
    return 0;
}

/* Package type and resolved name of a function, read under RCU. */
static struct fn_record *update_target(struct http_req *req, struct fn_name *n)
{
    struct fn_record *r = resolve_ref(req, FN_NAME_MAX, false, n);
    if (r && n->qualifier[0] && strcmp(n->qualifier, "$LATEST")) {
        struct api_error err;
        registry_not_found(n, &err);
        http_send_api_error(req, &err);
        registry_record_unref(r);
        return NULL;
    }
    return r;
}

void api_update_function_code(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    struct code_update u = {0};
    struct fn_record *out = NULL;
    if (http_read_body(req))
        return;
    struct fn_record *cur = update_target(req, &n);
    if (!cur)
        return;
    char package[8];
    snprintf(package, sizeof(package), "%s", cur->spec->package_type);
    registry_record_unref(cur);
    json_t *body = read_json_body(req);
    if (!body)
        return;
    u.body = body;
    json_t *ar = json_object_get(body, "Architectures");
    if (ar && !json_is_null(ar)) {
        json_t *probe = json_pack("{s:O}", "Architectures", ar);
        int rc = validate_function_config(probe, false, &err);
        json_decref(probe);
        if (rc)
            goto fail;
    }
    if (take_code(body, package, false, n.region, &u.code, &err))
        goto fail;
    if (json_is_true(json_object_get(body, "DryRun"))) {
        rcu_read_lock();
        struct fn_record *r = registry_record_ref(registry_lookup(n.region, n.account, n.name));
        rcu_read_unlock();
        if (!r) {
            registry_not_found(&n, &err);
            goto fail;
        }
        send_record_config(req, 200, r);
        registry_record_unref(r);
        goto out;
    }
    if (registry_update(&n, mutate_code, &u, u.code.zip, u.code.zip_len, &out, &err))
        goto fail;
    if (u.ver[0])
        send_version_config(req, 200, out, u.ver);
    else
        send_busy(req, 200, out->config_json, out->config_len, false);
    registry_record_unref(out);
    goto out;
fail:
    http_send_api_error(req, &err);
out:
    code_src_free(&u.code);
    json_decref(body);
}

struct config_update {
    json_t *body;
    json_t *layers; /* resolve_layers' result, NULL when Layers is absent */
};

static int mutate_config(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    struct config_update *u = ud;
    json_t *cfg = json_object_get(doc, "configuration");
    if (api_check_not_busy(cur, err) || check_revision(u->body, cur, err) ||
        check_package_rules(u->body, cur->spec->package_type, false, err))
        return -1;
    apply_config(cfg, u->body);
    set_layers(doc, cfg, u->layers);
    touch(cfg);
    busy_start(doc, false);
    return 0;
}

void api_update_function_configuration(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    struct fn_record *out = NULL;
    json_t *body = read_json_body(req);
    if (!body)
        return;
    struct fn_record *cur = update_target(req, &n);
    if (!cur)
        goto out;
    registry_record_unref(cur);
    struct config_update u = {body, NULL};
    if (validate_function_config(body, false, &err) || check_role(body, req->account, &err) ||
        api_capacity_check_function_config(body, n.region, n.account, &err) ||
        resolve_layers(body, n.region, n.account, &u.layers, &err) || registry_update(&n, mutate_config, &u, NULL, 0, &out, &err)) {
        http_send_api_error(req, &err);
        json_decref(u.layers);
        goto out;
    }
    json_decref(u.layers);
    send_busy(req, 200, out->config_json, out->config_len, false);
    registry_record_unref(out);
out:
    json_decref(body);
}

/* Removes the published version ud from a document; refuses while an
 * alias routes to it. */
static int mutate_delete_version(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    const char *ver = ud;
    json_t *versions = json_object_get(doc, "versions"), *e;
    size_t i;
    if (!registry_version(cur, ver)) {
        char arn[600];
        snprintf(arn, sizeof(arn), "%s:%s", cur->arn, ver);
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, MSG_FUNCTION_NOT_FOUND, arn);
    }
    for (i = 0; i < cur->n_aliases; i++) {
        const struct fn_alias *a = &cur->aliases[i];
        if (!strcmp(a->version, ver) || (a->extra_version && !strcmp(a->extra_version, ver)))
            return api_fail(err, &AWS_RESOURCE_CONFLICT, "Unable to delete version because the following "
                            "aliases reference it: [%s]", a->name);
    }
    json_array_foreach(versions, i, e) {
        const char *v = json_string_value(json_object_get(e, "version"));
        if (v && !strcmp(v, ver)) {
            json_array_remove(versions, i);
            break;
        }
    }
    api_forget_qualifier(doc, ver);
    return 0;
}

void api_delete_function(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    struct fn_record *cur = resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!cur)
        return;
    bool is_version = n.qualifier[0] && registry_version(cur, n.qualifier);
    registry_record_unref(cur);
    if (is_version) {
        char ver[sizeof(n.qualifier)];
        snprintf(ver, sizeof(ver), "%s", n.qualifier);
        if (registry_update(&n, mutate_delete_version, ver, NULL, 0, NULL, &err))
            http_send_api_error(req, &err);
        else
            http_send_empty(req, 204);
        return;
    }
    if (!strcmp(n.qualifier, "$LATEST")) {
        http_send_error(req, &AWS_INVALID_PARAMETER_VALUE,
                        "$LATEST version cannot be deleted without deleting the function.");
        return;
    }
    if (n.qualifier[0]) { /* an alias */
        http_send_error(req, &AWS_INVALID_PARAMETER_VALUE,
                        "Deletion of aliases is not supported by DeleteFunction; use DeleteAlias.");
        return;
    }
    if (registry_delete(&n, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    http_send_empty(req, 204);
}

/* --- tags -------------------------------------------------------------- */

/* Resolves a tag resource ARN (function ARN). */
static struct fn_record *resolve_tag_resource(struct http_req *req, struct fn_name *n)
{
    const char *arn = http_param(req, 0);
    if (!arn || strncmp(arn, "arn:", 4)) {
        http_send_error(req, &AWS_VALIDATION,
                        "1 validation error detected: Value '%s' at 'resource' failed to satisfy "
                        "constraint: Member must satisfy regular expression pattern: "
                        "arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:"
                        "(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|code-signing-config:csc-"
                        "[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                        "[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-zA-Z0-9-_]+)",
                        arn ? arn : "");
        return NULL;
    }
    return api_resolve_name(req, arn, NULL, FN_NAMESPACED_MAX, n);
}

static int mutate_tags_add(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    json_t *tags = json_object_get(doc, "tags");
    /* At most 50 tags per resource, counted after the merge (a key given
     * again replaces its value and does not count twice). */
    size_t total = json_is_object(tags) ? json_object_size(tags) : 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ud, k, v) {
        if (!json_is_object(tags) || !json_object_get(tags, k))
            total++;
    }
    if (total > MAX_TAGS)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_TOO_MANY_TAGS);
    if (!json_is_object(tags)) {
        tags = json_object();
        json_object_set_new(doc, "tags", tags);
    }
    json_object_update(tags, ud);
    return 0;
}

void api_tag_resource(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    if (api_capacity_owns_arn(http_param(req, 0))) {
        api_capacity_tag_resource(req);
        return;
    }
    json_t *body = read_json_body(req);
    if (!body)
        return;
    struct fn_record *cur = resolve_tag_resource(req, &n);
    if (!cur)
        goto out;
    registry_record_unref(cur);
    json_t *tags = json_object_get(body, "Tags");
    if (!json_is_object(tags)) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value null at 'tags' failed "
                                              "to satisfy constraint: Member must not be null");
        goto out;
    }
    if (api_check_tags(tags, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    n.qualifier[0] = 0;
    if (registry_update(&n, mutate_tags_add, tags, NULL, 0, NULL, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    http_send_empty(req, 204);
out:
    json_decref(body);
}

int api_check_tags(json_t *tags, struct api_error *err)
{
    const char *k;
    json_t *val;
    json_object_foreach(tags, k, val) {
        if (!json_is_string(val) || strlen(k) < 1 || strlen(k) > 128 || json_string_length(val) > 256 ||
            !strncmp(k, "aws:", 4))
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Invalid tag '%s': keys are 1-128 characters, "
                            "values at most 256, and the \"aws:\" prefix is reserved.", k);
    }
    if (json_object_size(tags) > MAX_TAGS)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_TOO_MANY_TAGS);
    return 0;
}

int api_collect_query_key(void *ud, const char *value)
{
    json_array_append_new(ud, json_string(value));
    return 0;
}

static int mutate_tags_remove(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    (void)err;
    size_t i;
    json_t *k, *tags = json_object_get(doc, "tags");
    json_array_foreach((json_t *)ud, i, k) json_object_del(tags, json_string_value(k));
    if (json_is_object(tags) && !json_object_size(tags))
        json_object_del(doc, "tags");
    return 0;
}

void api_untag_resource(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    if (api_capacity_owns_arn(http_param(req, 0))) {
        api_capacity_untag_resource(req);
        return;
    }
    struct fn_record *cur = resolve_tag_resource(req, &n);
    if (!cur)
        return;
    registry_record_unref(cur);
    json_t *keys = json_array();
    if (http_query_each(req, "tagKeys", api_collect_query_key, keys) || !json_array_size(keys)) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value null at 'tagKeys' "
                                              "failed to satisfy constraint: Member must not be null");
        json_decref(keys);
        return;
    }
    n.qualifier[0] = 0;
    if (registry_update(&n, mutate_tags_remove, keys, NULL, 0, NULL, &err))
        http_send_api_error(req, &err);
    else
        http_send_empty(req, 204);
    json_decref(keys);
}

void api_list_tags(struct http_req *req)
{
    struct fn_name n;
    if (api_capacity_owns_arn(http_param(req, 0))) {
        api_capacity_list_tags(req);
        return;
    }
    struct fn_record *r = resolve_tag_resource(req, &n);
    if (!r)
        return;
    char *out;
    if (asprintf(&out, "{\"Tags\":%s}", r->tags_json ? r->tags_json : "{}") < 0) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
    } else {
        http_send_json(req, 200, out, strlen(out));
        free(out);
    }
    registry_record_unref(r);
}

/* --- concurrency ------------------------------------------------------- */

#define UNRESERVED_MIN 100
#define ACCOUNT_CONCURRENCY 1000

static int mutate_concurrency(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    (void)err;
    int v = *(int *)ud;
    if (v < 0)
        json_object_del(doc, "reserved_concurrency");
    else
        json_object_set_new(doc, "reserved_concurrency", json_integer(v));
    return 0;
}

static int reserved_elsewhere(const char *region, const char *account, const char *except)
{
    struct fn_record **v;
    size_t n;
    bool more;
    int sum = 0;
    if (registry_list(region, account, NULL, SIZE_MAX / 2, &v, &n, &more))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i]->reserved_concurrency > 0 && (!except || strcmp(v[i]->name, except)))
            sum += v[i]->reserved_concurrency;
        registry_record_unref(v[i]);
    }
    free(v);
    return sum;
}

void api_put_function_concurrency(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    json_t *body = read_json_body(req);
    if (!body)
        return;
    struct fn_record *cur = update_target(req, &n);
    if (!cur)
        goto out;
    registry_record_unref(cur);
    json_t *rce = json_object_get(body, "ReservedConcurrentExecutions");
    if (!json_is_integer(rce) || json_integer_value(rce) < 0) {
        if (!rce || json_is_null(rce))
            http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value null at "
                            "'reservedConcurrentExecutions' failed to satisfy constraint: Member must not be null");
        else
            http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value '%" JSON_INTEGER_FORMAT
                            "' at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must "
                            "have value greater than or equal to 0", json_integer_value(rce));
        goto out;
    }
    json_int_t want = json_integer_value(rce);
    if (want + reserved_elsewhere(n.region, n.account, n.name) > ACCOUNT_CONCURRENCY - UNRESERVED_MIN) {
        http_send_error(req, &AWS_INVALID_PARAMETER_VALUE,
                        "Specified ReservedConcurrentExecutions for function decreases account's "
                        "UnreservedConcurrentExecution below its minimum value of [%d].", UNRESERVED_MIN);
        goto out;
    }
    int value = (int)want;
    if (registry_update(&n, mutate_concurrency, &value, NULL, 0, NULL, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    char text[64];
    int len = snprintf(text, sizeof(text), "{\"ReservedConcurrentExecutions\":%d}", value);
    http_send_json(req, 200, text, (size_t)len);
out:
    json_decref(body);
}

void api_get_function_concurrency(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = update_target(req, &n);
    if (!r)
        return;
    char text[64];
    int len = r->reserved_concurrency >= 0
                  ? snprintf(text, sizeof(text), "{\"ReservedConcurrentExecutions\":%d}", r->reserved_concurrency)
                  : snprintf(text, sizeof(text), "{}");
    registry_record_unref(r);
    http_send_json(req, 200, text, (size_t)len);
}

void api_delete_function_concurrency(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    struct fn_record *r = update_target(req, &n);
    if (!r)
        return;
    registry_record_unref(r);
    int value = -1;
    if (registry_update(&n, mutate_concurrency, &value, NULL, 0, NULL, &err))
        http_send_api_error(req, &err);
    else
        http_send_empty(req, 204);
}

/* --- account and the features lambdad does not model yet --------------- */

void api_get_account_settings(struct http_req *req)
{
    struct fn_record **v;
    size_t n;
    bool more;
    long long total = 0;
    int reserved = 0;
    if (registry_list(req->region, req->account, NULL, SIZE_MAX / 2, &v, &n, &more)) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *cfg = json_loadb(v[i]->config_json, v[i]->config_len, 0, NULL);
        total += json_integer_value(json_object_get(cfg, "CodeSize"));
        json_decref(cfg);
        if (v[i]->reserved_concurrency > 0)
            reserved += v[i]->reserved_concurrency;
        registry_record_unref(v[i]);
    }
    free(v);
    http_send_jsont(req, 200,
                    json_pack("{s:{s:I,s:I,s:I,s:i,s:i},s:{s:I,s:I}}", "AccountLimit", "TotalCodeSize",
                              (json_int_t)80530636800LL, "CodeSizeUnzipped", (json_int_t)262144000,
                              "CodeSizeZipped", (json_int_t)52428800, "ConcurrentExecutions",
                              ACCOUNT_CONCURRENCY, "UnreservedConcurrentExecutions",
                              ACCOUNT_CONCURRENCY - reserved, "AccountUsage", "TotalCodeSize",
                              (json_int_t)total, "FunctionCount", (json_int_t)n));
}

bool api_max_items(struct http_req *req, long dflt, long limit, long *max)
{
    char maxs[32];
    int ml = http_query(req, "MaxItems", maxs, sizeof(maxs));
    *max = dflt;
    if (ml == -1)
        return true;
    char *end = maxs;
    *max = ml > 0 ? strtol(maxs, &end, 10) : 0;
    if (ml > 0 && !*end && *max >= 1 && *max <= limit)
        return true;
    char bound[48];
    if (*max < 1)
        snprintf(bound, sizeof(bound), "greater than or equal to 1");
    else
        snprintf(bound, sizeof(bound), "less than or equal to %ld", limit);
    http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value '%s' at 'maxItems' "
                    "failed to satisfy constraint: Member must have value %s", ml > 0 ? maxs : "", bound);
    return false;
}

bool api_offset_marker(struct http_req *req, long *start)
{
    char marker[64];
    *start = 0;
    if (http_query(req, "Marker", marker, sizeof(marker)) <= 0)
        return true;
    char *end;
    *start = strtol(marker, &end, 10);
    if (!*end && *start >= 0)
        return true;
    http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Invalid marker: %s", marker);
    return false;
}

const char *api_jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

void api_now_iso(char out[40], int digits, const char *zone)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    long frac = digits == 6 ? (long)tv.tv_usec : (long)(tv.tv_usec / 1000);
    snprintf(out + n, 40 - n, ".%0*ld%s", digits == 6 ? 6 : 3, frac, zone);
}
