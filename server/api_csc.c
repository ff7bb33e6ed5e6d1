/* api_csc: code signing configurations (see api_csc.h). */
#include "server/api_csc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "server/api_functions.h"
#include "server/registry.h"
#include "server/resstore.h"
#include "server/validate.h"

#define FN_NAMESPACED_MAX 256
#define PAT_CSC_ARN                                                                                \
    "arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\\d{1}:\\d{12}:code-signing-config:csc-[a-z0-9]{17}"
#define PAT_PROFILE "arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)"

static const struct aws_error AWS_CSC_NOT_FOUND = {"CodeSigningConfigNotFoundException", 404, true, false};

static struct resstore *g_store;

int api_csc_init(const struct persist *parent)
{
    return resstore_open(&g_store, parent, "code-signing-configs");
}

void api_csc_shutdown(void)
{
    resstore_close(g_store);
    g_store = NULL;
}

/* "<region>.<account>.<csc-id>" of a configuration ARN in the request's
 * namespace; -1 when it is not a CSC ARN of this region/account. */
static int id_of(struct http_req *req, const char *arn, char *out, size_t len)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "arn:aws:lambda:%s:%s:code-signing-config:", req->region, req->account);
    if (!arn || strncmp(arn, prefix, strlen(prefix)) || !validate_match(arn, PAT_CSC_ARN))
        return -1;
    snprintf(out, len, "%s.%s.%s", req->region, req->account, arn + strlen(prefix));
    return 0;
}

static int check_body(json_t *body, bool create, struct api_error *err)
{
    struct vlist v;
    vlist_init(&v);
    json_t *ap = json_object_get(body, "AllowedPublishers");
    if (!ap || json_is_null(ap)) {
        if (create)
            vlist_add(&v, NULL, "allowedPublishers", "Member must not be null");
    } else {
        json_t *arns = json_object_get(ap, "SigningProfileVersionArns"), *e;
        size_t i;
        if (!json_is_array(arns))
            vlist_add(&v, NULL, "allowedPublishers.signingProfileVersionArns", "Member must not be null");
        else if (json_array_size(arns) < 1 || json_array_size(arns) > 20)
            vlist_add(&v, NULL, "allowedPublishers.signingProfileVersionArns",
                      json_array_size(arns) < 1 ? "Member must have length greater than or equal to 1"
                                                : "Member must have length less than or equal to 20");
        json_array_foreach(arns, i, e) {
            if (!json_is_string(e) || !validate_match(json_string_value(e), PAT_PROFILE)) {
                vlist_add(&v, json_string_value(e), "allowedPublishers.signingProfileVersionArns",
                          "Member must satisfy constraint: [Member must satisfy regular expression pattern: "
                          PAT_PROFILE "]");
                break;
            }
        }
    }
    json_t *pol = json_object_get(json_object_get(body, "CodeSigningPolicies"), "UntrustedArtifactOnDeployment");
    if (pol && !json_is_null(pol) &&
        (!json_is_string(pol) || (strcmp(json_string_value(pol), "Warn") && strcmp(json_string_value(pol), "Enforce"))))
        vlist_add(&v, json_string_value(pol), "codeSigningPolicies.untrustedArtifactOnDeployment",
                  "Member must satisfy enum value set: [Enforce, Warn]");
    const char *d = api_jstr(body, "Description");
    if (d && strlen(d) > 256)
        vlist_add(&v, d, "description", "Member must have length less than or equal to 256");
    return vlist_finish(&v, err);
}

static void apply(json_t *c, json_t *body)
{
    json_t *ap = json_object_get(body, "AllowedPublishers");
    if (json_is_object(ap))
        json_object_set_new(c, "AllowedPublishers", json_pack("{s:O}", "SigningProfileVersionArns",
                                                              json_object_get(ap, "SigningProfileVersionArns")));
    const char *pol = api_jstr(json_object_get(body, "CodeSigningPolicies"), "UntrustedArtifactOnDeployment");
    if (pol)
        json_object_set_new(c, "CodeSigningPolicies", json_pack("{s:s}", "UntrustedArtifactOnDeployment", pol));
    if (api_jstr(body, "Description"))
        json_object_set_new(c, "Description", json_string(api_jstr(body, "Description")));
    char ts[40];
    api_now_iso(ts, 6, "Z");
    json_object_set_new(c, "LastModified", json_string(ts));
}

void api_create_csc(struct http_req *req)
{
    struct api_error err;
    char cid[32], arn[200], id[200], a[37], b[37];
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    if (check_body(body, true, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    http_uuid4(a);
    http_uuid4(b);
    size_t o = 0;
    memcpy(cid, "csc-", 4);
    o = 4;
    for (const char *p = a; *p && o < 21; p++)
        if (*p != '-')
            cid[o++] = *p;
    for (const char *p = b; *p && o < 21; p++)
        if (*p != '-')
            cid[o++] = *p;
    cid[o] = 0;
    snprintf(arn, sizeof(arn), "arn:aws:lambda:%s:%s:code-signing-config:%s", req->region, req->account, cid);
    json_t *c = json_pack("{s:s,s:s,s:s,s:{s:s}}", "CodeSigningConfigId", cid, "CodeSigningConfigArn", arn,
                          "Description", "", "CodeSigningPolicies", "UntrustedArtifactOnDeployment", "Warn");
    apply(c, body);
    snprintf(id, sizeof(id), "%s.%s.%s", req->region, req->account, cid);
    if (resstore_put(g_store, id, c))
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "cannot store the code signing configuration");
    else
        http_send_jsont(req, 201, json_pack("{s:O}", "CodeSigningConfig", c));
    json_decref(c);
out:
    json_decref(body);
}

/* The stored configuration of path parameter 0, or NULL after answering. */
static json_t *lookup(struct http_req *req, char *id, size_t len)
{
    const char *arn = http_param(req, 0);
    json_t *c = id_of(req, arn, id, len) == 0 ? resstore_get(g_store, id) : NULL;
    if (!c)
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, "The Lambda code signing configuration %s can not be found.",
                        arn ? arn : "");
    return c;
}

void api_get_csc(struct http_req *req)
{
    char id[200];
    json_t *c = lookup(req, id, sizeof(id));
    if (c)
        http_send_jsont(req, 200, json_pack("{s:o}", "CodeSigningConfig", c));
}

void api_update_csc(struct http_req *req)
{
    struct api_error err;
    char id[200];
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    json_t *c = lookup(req, id, sizeof(id));
    if (!c)
        goto out;
    if (check_body(body, false, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    apply(c, body);
    if (resstore_put(g_store, id, c))
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "cannot store the code signing configuration");
    else
        http_send_jsont(req, 200, json_pack("{s:O}", "CodeSigningConfig", c));
out:
    json_decref(c);
    json_decref(body);
}

/* Function ARNs attached to csc_arn, in the request's namespace. */
static json_t *functions_using(struct http_req *req, const char *csc_arn)
{
    json_t *out = json_array();
    struct fn_record **v;
    size_t n;
    if (registry_all(&v, &n))
        return out;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(v[i]->region, req->region) && !strcmp(v[i]->account, req->account) && v[i]->extras_json &&
            strstr(v[i]->extras_json, csc_arn)) {
            json_t *extras = json_loads(v[i]->extras_json, 0, NULL);
            const char *a = api_jstr(extras, "csc");
            if (a && !strcmp(a, csc_arn))
                json_array_append_new(out, json_string(v[i]->arn));
            json_decref(extras);
        }
        registry_record_unref(v[i]);
    }
    free(v);
    return out;
}

void api_delete_csc(struct http_req *req)
{
    char id[200];
    json_t *c = lookup(req, id, sizeof(id));
    if (!c)
        return;
    json_t *users = functions_using(req, api_jstr(c, "CodeSigningConfigArn"));
    if (json_array_size(users)) {
        char *list = json_dumps(users, JSON_COMPACT);
        http_send_error(req, &AWS_RESOURCE_CONFLICT, "The code signing configuration cannot be deleted because it "
                        "is used by the following functions: %s", list ? list : "");
        free(list);
    } else if (resstore_remove(g_store, id)) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, "The Lambda code signing configuration %s can not be found.",
                        http_param(req, 0));
    } else {
        http_send_empty(req, 204);
    }
    json_decref(users);
    json_decref(c);
}

/* Marker/MaxItems paging of an array into {key: [...], NextMarker}. */
static void send_page(struct http_req *req, json_t *all, const char *key)
{
    char marker[32];
    long max, start = 0;
    if (!api_max_items(req, 50, 10000, &max)) {
        json_decref(all);
        return;
    }
    if (http_query(req, "Marker", marker, sizeof(marker)) > 0)
        start = strtol(marker, NULL, 10);
    if (start < 0)
        start = 0;
    json_t *page = json_array();
    for (long i = start; i < (long)json_array_size(all) && i < start + max; i++)
        json_array_append(page, json_array_get(all, (size_t)i));
    json_t *resp = json_pack("{s:o}", key, page);
    if (start + max < (long)json_array_size(all)) {
        char next[32];
        snprintf(next, sizeof(next), "%ld", start + max);
        json_object_set_new(resp, "NextMarker", json_string(next));
    }
    json_decref(all);
    http_send_jsont(req, 200, resp);
}

void api_list_cscs(struct http_req *req)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "arn:aws:lambda:%s:%s:", req->region, req->account);
    json_t *all = resstore_all(g_store), *mine = json_array(), *e;
    size_t i;
    json_array_foreach(all, i, e) {
        const char *a = api_jstr(e, "CodeSigningConfigArn");
        if (a && !strncmp(a, prefix, strlen(prefix)))
            json_array_append(mine, e);
    }
    json_decref(all);
    send_page(req, mine, "CodeSigningConfigs");
}

void api_list_functions_by_csc(struct http_req *req)
{
    char id[200];
    json_t *c = lookup(req, id, sizeof(id));
    if (!c)
        return;
    send_page(req, functions_using(req, api_jstr(c, "CodeSigningConfigArn")), "FunctionArns");
    json_decref(c);
}

/* --- attachments ------------------------------------------------------- */

static int mutate_attach(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    const char *arn = ud;
    json_t *extras = json_object_get(doc, "extras");
    if (!arn) {
        if (!api_jstr(extras, "csc"))
            return api_fail(err, &AWS_CSC_NOT_FOUND, "The function %s does not have a code signing configuration.",
                            api_jstr(json_object_get(doc, "configuration"), "FunctionArn"));
        json_object_del(extras, "csc");
        return 0;
    }
    if (!extras) {
        extras = json_object();
        json_object_set_new(doc, "extras", extras);
    }
    json_object_set_new(extras, "csc", json_string(arn));
    return 0;
}

static struct fn_record *unqualified(struct http_req *req, struct fn_name *n)
{
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, false, n);
    if (r && n->qualifier[0]) {
        http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Code signing configurations apply to the unqualified "
                        "function only.");
        registry_record_unref(r);
        return NULL;
    }
    return r;
}

void api_put_function_csc(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    char id[200];
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *r = unqualified(req, &n);
    if (!r)
        goto out;
    registry_record_unref(r);
    const char *arn = api_jstr(body, "CodeSigningConfigArn");
    if (!arn || !validate_match(arn, PAT_CSC_ARN)) {
        struct vlist v;
        vlist_init(&v);
        vlist_add(&v, arn, "codeSigningConfigArn", arn ? "Member must satisfy regular expression pattern: " PAT_CSC_ARN
                                                       : "Member must not be null");
        vlist_finish(&v, &err);
        http_send_api_error(req, &err);
        goto out;
    }
    json_t *c = id_of(req, arn, id, sizeof(id)) == 0 ? resstore_get(g_store, id) : NULL;
    if (!c) {
        http_send_error(req, &AWS_CSC_NOT_FOUND, "The code signing configuration cannot be found. Check that the "
                        "provided configuration is not deleted: %s.", arn);
        goto out;
    }
    json_decref(c);
    if (registry_update(&n, mutate_attach, (void *)arn, NULL, 0, NULL, &err))
        http_send_api_error(req, &err);
    else
        http_send_jsont(req, 200, json_pack("{s:s,s:s}", "CodeSigningConfigArn", arn, "FunctionName", n.name));
out:
    json_decref(body);
}

void api_get_function_csc(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = unqualified(req, &n);
    if (!r)
        return;
    json_t *extras = r->extras_json ? json_loads(r->extras_json, 0, NULL) : NULL;
    const char *arn = api_jstr(extras, "csc");
    http_send_jsont(req, 200, json_pack("{s:s,s:s}", "CodeSigningConfigArn", arn ? arn : "", "FunctionName", n.name));
    json_decref(extras);
    registry_record_unref(r);
}

void api_delete_function_csc(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    struct fn_record *r = unqualified(req, &n);
    if (!r)
        return;
    registry_record_unref(r);
    if (registry_update(&n, mutate_attach, NULL, NULL, 0, NULL, &err))
        http_send_api_error(req, &err);
    else
        http_send_empty(req, 204);
}
