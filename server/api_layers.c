/* api_layers: the layer operations (see api_layers.h). */
#include "server/admin.h"
#include "server/api_layers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/codestore.h"
#include "server/api_functions.h"
#include "server/layers.h"
#include "server/validate.h"

#define LAYER_NAME_PATTERN                                                                         \
    "(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"
#define LAYER_VERSION_ARN_PATTERN                                                                  \
    "arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\\d{1}:\\d{12}:layer:"         \
    "[a-zA-Z0-9-_]+:[0-9]+"
#define MSG_VERSION_BELOW_1 "Layer Version Cannot be less than 1"

static const char *const g_archs[] = {"x86_64", "arm64", NULL};

/* A layer named by a request: its namespace and bare name. */
struct layer_ref {
    char region[32];
    char account[13];
    char name[LAYERS_NAME_MAX + 1];
};

/* Accounts and regions are walls (as for functions): another region's
 * layer is not found there, another account's needs a layer permission,
 * which lambdad does not evaluate. Returns 0 or -1 with err filled. */
static int layer_wall(struct http_req *req, const char *region, const char *account, const char *action,
                      const char *arn, struct api_error *err)
{
    if (strcmp(region, req->region))
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
    if (strcmp(account, req->account))
        return api_access_denied(err, req->account, action, arn);
    return 0;
}

/* Parses the {LayerName} path parameter (name or layer ARN). */
static int parse_layer_name(struct http_req *req, struct layer_ref *l, struct api_error *err)
{
    const char *s = http_param(req, 0);
    struct vlist v;
    long long version;
    vlist_init(&v);
    if (!s || !*s) {
        vlist_add(&v, s, "layerName", "Member must have length greater than or equal to 1");
    } else if (strlen(s) > 140) {
        vlist_add(&v, s, "layerName", "Member must have length less than or equal to 140");
    } else if (!strncmp(s, "arn:", 4)) {
        if (layers_parse_arn(s, l->region, l->account, l->name, &version) || version)
            vlist_add(&v, s, "layerName", "Member must satisfy regular expression pattern: " LAYER_NAME_PATTERN);
        else if (strcmp(l->region, req->region) || strcmp(l->account, req->account)) {
            if (vlist_finish(&v, err))
                return -1;
            return layer_wall(req, l->region, l->account, NULL, s, err);
        }
    } else if (!layers_name_ok(s)) {
        vlist_add(&v, s, "layerName", strlen(s) > LAYERS_NAME_MAX
                                          ? "Member must have length less than or equal to 64"
                                          : "Member must satisfy regular expression pattern: " LAYER_NAME_PATTERN);
    } else {
        snprintf(l->region, sizeof(l->region), "%s", req->region);
        snprintf(l->account, sizeof(l->account), "%s", req->account);
        snprintf(l->name, sizeof(l->name), "%s", s);
    }
    return vlist_finish(&v, err);
}

/* Parses the {VersionNumber} path parameter. */
static int parse_version(struct http_req *req, long long *version, struct api_error *err)
{
    const char *s = http_param(req, 1);
    char *end;
    errno = 0;
    long long n = s && *s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno) {
        struct vlist v;
        vlist_init(&v);
        vlist_add(&v, s ? s : NULL, "versionNumber", "Member must be a number");
        return vlist_finish(&v, err);
    }
    if (n < 1)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_VERSION_BELOW_1);
    *version = n;
    return 0;
}

int api_layer_version_ref(struct http_req *req, char region[32], char account[13],
                          char name[LAYERS_NAME_MAX + 1], long long *version, struct api_error *err)
{
    struct layer_ref l;
    if (parse_layer_name(req, &l, err) || parse_version(req, version, err))
        return -1;
    memcpy(region, l.region, sizeof(l.region));
    memcpy(account, l.account, sizeof(l.account));
    memcpy(name, l.name, sizeof(l.name));
    return 0;
}

/* --- response shapes --------------------------------------------------- */

static void set_optional(json_t *o, const struct layer_version *v)
{
    if (v->runtimes)
        json_object_set(o, "CompatibleRuntimes", v->runtimes);
    if (v->license_info)
        json_object_set_new(o, "LicenseInfo", json_string(v->license_info));
    if (v->architectures)
        json_object_set(o, "CompatibleArchitectures", v->architectures);
}

/* LayerVersionsListItem. */
static json_t *list_item(const struct layer_version *v)
{
    json_t *o = json_pack("{s:s,s:I,s:s,s:s}", "LayerVersionArn", v->arn, "Version", (json_int_t)v->version,
                          "Description", v->description, "CreatedDate", v->created_date);
    if (o)
        set_optional(o, v);
    return o;
}

/* Get/PublishLayerVersionResponse. */
static json_t *version_json(struct http_req *req, const struct layer_version *v)
{
    char loc[1200];
    admin_code_location(req, v->code_hex, loc, sizeof(loc));
    json_t *o = json_pack("{s:{s:s,s:s,s:I},s:s,s:s,s:s,s:s,s:I}", "Content", "Location", loc, "CodeSha256",
                          v->code_sha256, "CodeSize", (json_int_t)v->code_size, "LayerArn", v->layer_arn,
                          "LayerVersionArn", v->arn, "Description", v->description, "CreatedDate",
                          v->created_date, "Version", (json_int_t)v->version);
    if (o)
        set_optional(o, v);
    return o;
}

static void send_version(struct http_req *req, int status, const struct layer_version *v)
{
    json_t *o = version_json(req, v);
    if (o)
        http_send_jsont(req, status, o);
    else
        http_send_error(req, &AWS_SERVICE, "out of memory");
}

/* --- PublishLayerVersion ----------------------------------------------- */

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; s && list[i]; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

/* "[a, b]" rendering of a string list, for messages. */
static void list_text(json_t *arr, char *out, size_t len)
{
    size_t i, o = 0;
    json_t *e;
    o += (size_t)snprintf(out, len, "[");
    json_array_foreach(arr, i, e) {
        if (o + 2 >= len)
            break;
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ", " : "",
                              json_is_string(e) ? json_string_value(e) : "null");
    }
    if (o + 2 < len)
        snprintf(out + o, len - o, "]");
}

/* Shape checks of the PublishLayerVersion body (into v). */
static void check_publish_body(json_t *body, struct vlist *v)
{
    char buf[600];
    size_t i;
    json_t *e;
    json_t *content = json_object_get(body, "Content");
    if (!json_is_object(content))
        vlist_add(v, NULL, "content", "Member must not be null");
    json_t *d = json_object_get(body, "Description");
    if (d && !json_is_null(d) && (!json_is_string(d) || json_string_length(d) > 256))
        vlist_add(v, json_string_value(d), "description", "Member must have length less than or equal to 256");
    json_t *li = json_object_get(body, "LicenseInfo");
    if (li && !json_is_null(li) && (!json_is_string(li) || json_string_length(li) > 512))
        vlist_add(v, json_string_value(li), "licenseInfo", "Member must have length less than or equal to 512");
    json_t *rt = json_object_get(body, "CompatibleRuntimes");
    if (rt && !json_is_null(rt)) {
        bool bad = !json_is_array(rt);
        json_array_foreach(rt, i, e) bad |= !json_is_string(e) || !validate_runtime_known(json_string_value(e));
        list_text(rt, buf, sizeof(buf));
        if (json_array_size(rt) > 15)
            vlist_add(v, buf, "compatibleRuntimes", "Member must have length less than or equal to 15");
        else if (bad)
            vlist_add(v, buf, "compatibleRuntimes",
                      "Member must satisfy constraint: [Member must satisfy enum value set: the Runtime enum "
                      "of the Lambda API (e.g. python3.12, nodejs20.x, provided.al2023)]");
    }
    json_t *ar = json_object_get(body, "CompatibleArchitectures");
    if (ar && !json_is_null(ar)) {
        bool bad = !json_is_array(ar);
        json_array_foreach(ar, i, e) bad |= !json_is_string(e) || !in_list(g_archs, json_string_value(e));
        list_text(ar, buf, sizeof(buf));
        if (json_array_size(ar) > 2)
            vlist_add(v, buf, "compatibleArchitectures", "Member must have length less than or equal to 2");
        else if (bad)
            vlist_add(v, buf, "compatibleArchitectures",
                      "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]");
    }
}

void api_publish_layer_version(struct http_req *req)
{
    struct api_error err;
    struct layer_ref l;
    struct vlist v;
    struct code_info info;
    struct layer_version *out = NULL;
    unsigned char *zip = NULL;
    size_t zip_len = 0;
    json_t *body = NULL;
    json_error_t jerr;
    if (parse_layer_name(req, &l, &err))
        goto fail;
    if (http_read_body(req))
        return;
    if (http_json_too_deep(req->body, req->body_len, 64) ||
        !(body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr)) || !json_is_object(body)) {
        api_fail(&err, &AWS_INVALID_REQUEST_CONTENT, MSG_BAD_JSON,
                 body ? "the body must be a JSON object" : req->body_len ? jerr.text : "empty body");
        goto fail;
    }
    vlist_init(&v);
    check_publish_body(body, &v);
    if (vlist_finish(&v, &err))
        goto fail;
    json_t *content = json_object_get(body, "Content");
    json_t *zf = json_object_get(content, "ZipFile");
    bool s3 = json_object_get(content, "S3Bucket") || json_object_get(content, "S3Key");
    if (!json_is_string(zf) && !s3) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "Please provide a source for the layer content (Content.ZipFile).");
        goto fail;
    }
    if (json_is_string(zf) ? api_store_zip(zf, "Content.ZipFile", &zip, &zip_len, &info, &err)
                           : api_store_s3(content, l.region, &info, &err))
        goto fail;
    json_t *rt = json_object_get(body, "CompatibleRuntimes"), *ar = json_object_get(body, "CompatibleArchitectures");
    struct layer_publish in = {
        .region = l.region,
        .account = l.account,
        .name = l.name,
        .code_hex = info.sha256_hex,
        .code_sha256 = info.sha256_b64,
        .code_size = (long long)info.size,
        .description = json_string_value(json_object_get(body, "Description")),
        .license_info = json_string_value(json_object_get(body, "LicenseInfo")),
        .runtimes = json_is_array(rt) && json_array_size(rt) ? rt : NULL,
        .architectures = json_is_array(ar) && json_array_size(ar) ? ar : NULL,
        .zip = zip,
        .zip_len = zip_len,
    };
    if (layers_publish(&in, &out, &err))
        goto fail;
    send_version(req, 201, out);
    layers_unref(out);
    goto done;
fail:
    http_send_api_error(req, &err);
done:
    free(zip);
    json_decref(body);
}

/* --- reads ------------------------------------------------------------- */

void api_get_layer_version(struct http_req *req)
{
    struct api_error err;
    struct layer_ref l;
    long long version;
    if (parse_layer_name(req, &l, &err) || parse_version(req, &version, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    struct layer_version *v = layers_get(l.region, l.account, l.name, version);
    if (!v) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
        return;
    }
    send_version(req, 200, v);
    layers_unref(v);
}

static void get_by_arn(struct http_req *req)
{
    char arn[1100], region[32], account[13], name[LAYERS_NAME_MAX + 1];
    long long version;
    struct api_error err;
    struct vlist vl;
    int n = http_query(req, "Arn", arn, sizeof(arn));
    vlist_init(&vl);
    if (n < 0)
        vlist_add(&vl, NULL, "arn", "Member must not be null");
    else if (n > 140)
        vlist_add(&vl, arn, "arn", "Member must have length less than or equal to 140");
    else if (layers_parse_arn(arn, region, account, name, &version) || version < 1)
        vlist_add(&vl, arn, "arn", "Member must satisfy regular expression pattern: " LAYER_VERSION_ARN_PATTERN);
    if (vlist_finish(&vl, &err) || layer_wall(req, region, account, "GetLayerVersion", arn, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    struct layer_version *v = layers_get(region, account, name, version);
    if (!v) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
        return;
    }
    send_version(req, 200, v);
    layers_unref(v);
}

/* Reads CompatibleRuntime/CompatibleArchitecture/MaxItems (shape errors into
 * err); bufs back f's strings. */
static int list_params(struct http_req *req, struct layers_filter *f, char rt[64], char arch[64], size_t *max,
                       struct api_error *err)
{
    char maxs[32];
    struct vlist v;
    vlist_init(&v);
    f->runtime = f->architecture = NULL;
    int n = http_query(req, "CompatibleRuntime", rt, 64);
    if (n == -2 || (n >= 0 && !validate_runtime_known(rt)))
        vlist_add(&v, n >= 0 ? rt : "?", "compatibleRuntime",
                  "Member must satisfy enum value set: the Runtime enum of the Lambda API");
    else if (n >= 0)
        f->runtime = rt;
    n = http_query(req, "CompatibleArchitecture", arch, 64);
    if (n == -2 || (n >= 0 && !in_list(g_archs, arch)))
        vlist_add(&v, n >= 0 ? arch : "?", "compatibleArchitecture", "Member must satisfy enum value set: [x86_64, arm64]");
    else if (n >= 0)
        f->architecture = arch;
    *max = LAYERS_LIST_MAX;
    n = http_query(req, "MaxItems", maxs, sizeof(maxs));
    if (n >= 0 || n == -2) {
        char *end;
        long m = n >= 0 ? strtol(maxs, &end, 10) : 0;
        if (n < 1 || *end || m < 1)
            vlist_add(&v, n >= 0 ? maxs : "?", "maxItems", "Member must have value greater than or equal to 1");
        else if (m > LAYERS_LIST_MAX)
            vlist_add(&v, maxs, "maxItems", "Member must have value less than or equal to 50");
        else
            *max = (size_t)m;
    }
    return vlist_finish(&v, err);
}

/* Sends {"<key>":[items],"NextMarker"?} and releases the references. */
static void send_list(struct http_req *req, const char *key, struct layer_version **v, size_t n, bool more,
                      bool latest)
{
    json_t *items = json_array(), *o;
    for (size_t i = 0; i < n; i++) {
        json_t *it = list_item(v[i]);
        if (latest)
            it = json_pack("{s:s,s:s,s:o}", "LayerName", v[i]->name, "LayerArn", v[i]->layer_arn,
                           "LatestMatchingVersion", it);
        json_array_append_new(items, it);
    }
    o = json_pack("{s:o}", key, items);
    if (more && n) {
        char marker[32];
        if (latest)
            json_object_set_new(o, "NextMarker", json_string(v[n - 1]->name));
        else {
            snprintf(marker, sizeof(marker), "%lld", v[n - 1]->version);
            json_object_set_new(o, "NextMarker", json_string(marker));
        }
    }
    for (size_t i = 0; i < n; i++)
        layers_unref(v[i]);
    free(v);
    http_send_jsont(req, 200, o);
}

void api_list_layers(struct http_req *req)
{
    char find[32], rt[64], arch[64], marker[160];
    struct layers_filter f;
    struct api_error err;
    struct layer_version **v = NULL;
    size_t max, n;
    bool more;
    int fl = http_query(req, "find", find, sizeof(find));
    if (fl >= 0 || fl == -2) {
        if (fl >= 0 && !strcmp(find, "LayerVersion"))
            get_by_arn(req);
        else
            http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Unsupported find value: %s",
                            fl >= 0 ? find : "?");
        return;
    }
    if (list_params(req, &f, rt, arch, &max, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    int ml = http_query(req, "Marker", marker, sizeof(marker));
    if (layers_list_latest(req->region, req->account, &f, ml > 0 ? marker : NULL, max, &v, &n, &more)) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
        return;
    }
    send_list(req, "Layers", v, n, more, true);
}

void api_list_layer_versions(struct http_req *req)
{
    char rt[64], arch[64], marker[32];
    struct layers_filter f;
    struct api_error err;
    struct layer_ref l;
    struct layer_version **v = NULL;
    size_t max, n;
    bool more;
    long long before = 0;
    if (parse_layer_name(req, &l, &err) || list_params(req, &f, rt, arch, &max, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    int ml = http_query(req, "Marker", marker, sizeof(marker));
    if (ml > 0) {
        char *end;
        before = strtoll(marker, &end, 10);
        if (*end || before < 1) {
            http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Invalid Marker: %s", marker);
            return;
        }
    } else if (ml == -2) {
        http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Invalid Marker");
        return;
    }
    if (layers_list_versions(l.region, l.account, l.name, &f, before, max, &v, &n, &more)) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
        return;
    }
    send_list(req, "LayerVersions", v, n, more, false);
}

/* --- DeleteLayerVersion ------------------------------------------------ */

void api_delete_layer_version(struct http_req *req)
{
    struct api_error err;
    struct layer_ref l;
    long long version;
    if (parse_layer_name(req, &l, &err) || parse_version(req, &version, &err) ||
        layers_delete(l.region, l.account, l.name, version, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    http_send_empty(req, 204);
}
