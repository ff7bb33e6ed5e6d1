/* api_capacity: capacity providers and function scaling configurations
 * (see api_capacity.h). */
#include "server/api_capacity.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <urcu.h>

#include "server/api_functions.h"
#include "server/config.h"
#include "server/registry.h"
#include "server/resstore.h"
#include "server/validate.h"

#define CP_NAME_MAX 140
#define FN_NAME_MAX 140
#define LIST_MAX 50
#define PAT_CP_ARN                                                                                 \
    "arn:aws[a-zA-Z-]*:lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:capacity-provider:[a-zA-Z0-9-_]+"
#define PAT_CP_NAME "(" PAT_CP_ARN ")|[a-zA-Z0-9-_]+"
#define PAT_ROLE "arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
#define PAT_KMS "arn:(aws[a-zA-Z-]*)?:[a-z0-9-.]+:.*"
#define PAT_INSTANCE_TYPE "[a-zA-Z0-9\\.\\-]+"
#define PAT_QUALIFIER "(\\$LATEST\\.PUBLISHED|[0-9]+)"
#define PAT_UNQUALIFIED                                                                            \
    "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?" \
    "([a-zA-Z0-9-_]+)"

static struct resstore *g_store;
/* Serialises the read-modify-write of a provider (create, update, delete,
 * tags) so two writers cannot lose each other's change. Held across the
 * resstore write, which is rare control-plane disk I/O (see resstore.h);
 * never taken by the invoke path. */
static pthread_mutex_t g_write_mu = PTHREAD_MUTEX_INITIALIZER;

int api_capacity_init(const struct persist *parent)
{
    return resstore_open(&g_store, parent, "capacity-providers");
}

void api_capacity_shutdown(void)
{
    resstore_close(g_store);
    g_store = NULL;
}

static bool present(json_t *j)
{
    return j && !json_is_null(j);
}

/* --- shape checks (collected into one ValidationException) -------------- */

static void check_str(json_t *j, const char *member, size_t min, size_t max, const char *pattern,
                      struct vlist *v)
{
    char what[600];
    if (!json_is_string(j)) {
        vlist_add(v, NULL, member, "Member must be a string");
        return;
    }
    const char *s = json_string_value(j);
    size_t len = json_string_length(j);
    if (len < min) {
        snprintf(what, sizeof(what), "Member must have length greater than or equal to %zu", min);
        vlist_add(v, s, member, what);
    } else if (max && len > max) {
        snprintf(what, sizeof(what), "Member must have length less than or equal to %zu", max);
        vlist_add(v, s, member, what);
    } else if (pattern && (strlen(s) != len || !validate_match(s, pattern))) {
        snprintf(what, sizeof(what), "Member must satisfy regular expression pattern: %s", pattern);
        vlist_add(v, s, member, what);
    }
}

static void check_enum(json_t *j, const char *member, const char *const *values, const char *set,
                       struct vlist *v)
{
    char what[300];
    const char *s = json_string_value(j);
    for (size_t i = 0; s && values[i]; i++)
        if (!strcmp(s, values[i]))
            return;
    snprintf(what, sizeof(what), "Member must satisfy enum value set: [%s]", set);
    vlist_add(v, s ? s : "?", member, what);
}

/* A list as AWS quotes it in messages ("[a, b]", Java's rendering). */
static void list_repr(json_t *j, char *out, size_t len)
{
    size_t o = 0, i;
    json_t *e;
    o += (size_t)snprintf(out, len, "[");
    json_array_foreach(j, i, e) {
        if (o >= len)
            break;
        const char *s = json_is_string(e) ? json_string_value(e) : json_is_object(e) ? "{...}" : "?";
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ", " : "", s);
    }
    if (o < len)
        snprintf(out + o, len - o, "]");
}

/* A list member: its type and length; returns whether it is a list. */
static bool check_list(json_t *j, const char *member, size_t min, size_t max, struct vlist *v)
{
    char what[100], val[300];
    if (!json_is_array(j)) {
        vlist_add(v, NULL, member, "Member must be a list");
        return false;
    }
    if (json_array_size(j) < min || json_array_size(j) > max) {
        snprintf(what, sizeof(what), "Member must have length %s %zu",
                 json_array_size(j) < min ? "greater than or equal to" : "less than or equal to",
                 json_array_size(j) < min ? min : max);
        list_repr(j, val, sizeof(val));
        vlist_add(v, val, member, what);
    }
    return true;
}

static void check_strs(json_t *j, const char *member, size_t min, size_t max, size_t smin, size_t smax,
                       const char *pattern, struct vlist *v)
{
    size_t i;
    json_t *e;
    if (!check_list(j, member, min, max, v))
        return;
    json_array_foreach(j, i, e) {
        int before = v->n;
        check_str(e, member, smin, smax, pattern, v);
        if (v->n != before)
            return; /* one report per list, like AWS */
    }
}

static void check_number(json_t *j, const char *member, double min, double max, bool integer, struct vlist *v)
{
    char val[48], what[96];
    if (integer ? !json_is_integer(j) : !json_is_number(j)) {
        vlist_add(v, NULL, member, integer ? "Member must be an integer" : "Member must be a number");
        return;
    }
    double x = json_number_value(j);
    if (integer)
        snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(j));
    else
        snprintf(val, sizeof(val), "%g", x);
    if (x < min || x > max || isnan(x)) {
        snprintf(what, sizeof(what), "Member must have value %s %g", x < min ? "greater than or equal to"
                                                                         : "less than or equal to",
                 x < min ? min : max);
        vlist_add(v, val, member, what);
    }
}

static void check_object(json_t *j, const char *member, struct vlist *v)
{
    if (!json_is_object(j))
        vlist_add(v, NULL, member, "Member must be a structure");
}

static void check_scaling(json_t *sc, struct vlist *v)
{
    static const char *const modes[] = {"Auto", "Manual", NULL};
    static const char *const metrics[] = {"LambdaCapacityProviderAverageCPUUtilization", NULL};
    if (!present(sc))
        return;
    if (!json_is_object(sc)) {
        check_object(sc, "capacityProviderScalingConfig", v);
        return;
    }
    json_t *j = json_object_get(sc, "MaxVCpuCount");
    if (present(j))
        check_number(j, "capacityProviderScalingConfig.maxVCpuCount", 2, 15000, true, v);
    if (present(j = json_object_get(sc, "ScalingMode")))
        check_enum(j, "capacityProviderScalingConfig.scalingMode", modes, "Auto, Manual", v);
    json_t *pol = json_object_get(sc, "ScalingPolicies"), *p;
    size_t i;
    if (!present(pol) || !check_list(pol, "capacityProviderScalingConfig.scalingPolicies", 1, 10, v))
        return;
    json_array_foreach(pol, i, p) {
        if (!json_is_object(p)) {
            check_object(p, "capacityProviderScalingConfig.scalingPolicies.member", v);
            return;
        }
        j = json_object_get(p, "PredefinedMetricType");
        if (!present(j))
            vlist_add(v, NULL, "capacityProviderScalingConfig.scalingPolicies.member.predefinedMetricType",
                      "Member must not be null");
        else
            check_enum(j, "capacityProviderScalingConfig.scalingPolicies.member.predefinedMetricType", metrics,
                       "LambdaCapacityProviderAverageCPUUtilization", v);
        j = json_object_get(p, "TargetValue");
        if (!present(j))
            vlist_add(v, NULL, "capacityProviderScalingConfig.scalingPolicies.member.targetValue",
                      "Member must not be null");
        else
            check_number(j, "capacityProviderScalingConfig.scalingPolicies.member.targetValue", 0, 100, false, v);
    }
}

static void check_tags(json_t *tags, struct vlist *v)
{
    const char *k;
    json_t *val;
    if (!present(tags))
        return;
    if (!json_is_object(tags)) {
        vlist_add(v, NULL, "tags", "Member must be a map");
        return;
    }
    json_object_foreach(tags, k, val) {
        if (!json_is_string(val)) {
            vlist_add(v, NULL, "tags", "Map values must be strings");
            return;
        }
    }
}

static void check_create_shape(json_t *body, struct vlist *v)
{
    static const char *const archs[] = {"x86_64", "arm64", NULL};
    json_t *name = json_object_get(body, "CapacityProviderName");
    if (!present(name))
        vlist_add(v, NULL, "capacityProviderName", "Member must not be null");
    else
        check_str(name, "capacityProviderName", 1, CP_NAME_MAX, PAT_CP_NAME, v);
    json_t *vpc = json_object_get(body, "VpcConfig");
    if (!present(vpc)) {
        vlist_add(v, NULL, "vpcConfig", "Member must not be null");
    } else if (!json_is_object(vpc)) {
        check_object(vpc, "vpcConfig", v);
    } else {
        json_t *sn = json_object_get(vpc, "SubnetIds"), *sg = json_object_get(vpc, "SecurityGroupIds");
        if (!present(sn))
            vlist_add(v, NULL, "vpcConfig.subnetIds", "Member must not be null");
        else
            check_strs(sn, "vpcConfig.subnetIds", 1, 16, 0, 0, NULL, v);
        if (!present(sg))
            vlist_add(v, NULL, "vpcConfig.securityGroupIds", "Member must not be null");
        else
            check_strs(sg, "vpcConfig.securityGroupIds", 0, 5, 0, 0, NULL, v);
    }
    json_t *perm = json_object_get(body, "PermissionsConfig");
    if (!present(perm)) {
        vlist_add(v, NULL, "permissionsConfig", "Member must not be null");
    } else if (!json_is_object(perm)) {
        check_object(perm, "permissionsConfig", v);
    } else {
        json_t *role = json_object_get(perm, "CapacityProviderOperatorRoleArn");
        if (!present(role))
            vlist_add(v, NULL, "permissionsConfig.capacityProviderOperatorRoleArn", "Member must not be null");
        else
            check_str(role, "permissionsConfig.capacityProviderOperatorRoleArn", 0, 0, PAT_ROLE, v);
    }
    json_t *ir = json_object_get(body, "InstanceRequirements");
    if (present(ir) && !json_is_object(ir)) {
        check_object(ir, "instanceRequirements", v);
    } else if (present(ir)) {
        json_t *a = json_object_get(ir, "Architectures"), *e;
        size_t i;
        if (present(a) && check_list(a, "instanceRequirements.architectures", 1, 1, v))
            json_array_foreach(a, i, e) check_enum(e, "instanceRequirements.architectures.member", archs,
                                                   "x86_64, arm64", v);
        if (present(a = json_object_get(ir, "AllowedInstanceTypes")))
            check_strs(a, "instanceRequirements.allowedInstanceTypes", 0, 400, 1, 30, PAT_INSTANCE_TYPE, v);
        if (present(a = json_object_get(ir, "ExcludedInstanceTypes")))
            check_strs(a, "instanceRequirements.excludedInstanceTypes", 0, 400, 1, 30, PAT_INSTANCE_TYPE, v);
    }
    check_scaling(json_object_get(body, "CapacityProviderScalingConfig"), v);
    json_t *kms = json_object_get(body, "KmsKeyArn");
    if (present(kms))
        check_str(kms, "kmsKeyArn", 0, 10000, PAT_KMS, v);
    check_tags(json_object_get(body, "Tags"), v);
}

/* The rules between members (InvalidParameterValueException). */
static int check_semantics(json_t *cp, struct api_error *err)
{
    json_t *ir = json_object_get(cp, "InstanceRequirements");
    if (json_array_size(json_object_get(ir, "AllowedInstanceTypes")) &&
        json_array_size(json_object_get(ir, "ExcludedInstanceTypes")))
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "AllowedInstanceTypes and ExcludedInstanceTypes "
                        "cannot both be specified.");
    json_t *sc = json_object_get(cp, "CapacityProviderScalingConfig");
    const char *mode = api_jstr(sc, "ScalingMode");
    bool policies = json_array_size(json_object_get(sc, "ScalingPolicies")) > 0;
    if (mode && !strcmp(mode, "Manual") && !policies)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "ScalingPolicies must be specified when ScalingMode "
                        "is Manual.");
    if (mode && !strcmp(mode, "Auto") && policies)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "ScalingPolicies cannot be specified when ScalingMode "
                        "is Auto.");
    return 0;
}

/* --- store ------------------------------------------------------------- */

/* The provider a CapacityProviderName (name or ARN) names in the request's
 * namespace: fills name and the store id. -1: malformed (ValidationException
 * in err), -2: an ARN of another region or account. */
static int parse_name(const char *in, const char *region, const char *account, char name[CP_NAME_MAX + 1],
                      char *id, size_t idlen, struct api_error *err)
{
    struct vlist v;
    vlist_init(&v);
    json_t *j = in ? json_string(in) : NULL;
    if (!j)
        vlist_add(&v, NULL, "capacityProviderName", "Member must not be null");
    else
        check_str(j, "capacityProviderName", 1, CP_NAME_MAX, PAT_CP_NAME, &v);
    json_decref(j);
    if (vlist_finish(&v, err))
        return -1;
    const char *n = in;
    if (!strncmp(in, "arn:", 4)) {
        char prefix[160];
        snprintf(prefix, sizeof(prefix), "arn:aws:lambda:%s:%s:capacity-provider:", region, account);
        if (strncmp(in, prefix, strlen(prefix)))
            return -2;
        n = in + strlen(prefix);
    }
    snprintf(name, CP_NAME_MAX + 1, "%s", n);
    snprintf(id, idlen, "%s.%s.%s", region, account, name);
    return 0;
}

static void cp_arn(const char *region, const char *account, const char *name, char *out, size_t len)
{
    snprintf(out, len, "arn:aws:lambda:%s:%s:capacity-provider:%s", region, account, name);
}

/* The CapacityProvider as a read shows it (State from the busy window). */
static json_t *view(json_t *doc)
{
    json_t *cp = json_deep_copy(json_object_get(doc, "CapacityProvider"));
    long long busy = (long long)json_integer_value(json_object_get(doc, "busy_until"));
    json_object_set_new(cp, "State", json_string(busy && api_now_ms() < busy ? "Pending" : "Active"));
    return cp;
}

static void send_not_found(struct http_req *req, const char *name)
{
    http_send_error(req, &AWS_RESOURCE_NOT_FOUND, "Capacity provider not found: %s", name);
}

/* The stored document of path parameter 0, or NULL after answering. */
static json_t *lookup(struct http_req *req, char name[CP_NAME_MAX + 1], char *id, size_t idlen)
{
    struct api_error err;
    const char *in = http_param(req, 0);
    int rc = parse_name(in, req->region, req->account, name, id, idlen, &err);
    if (rc == -1) {
        http_send_api_error(req, &err);
        return NULL;
    }
    json_t *doc = rc == 0 ? resstore_get(g_store, id) : NULL;
    if (!doc)
        send_not_found(req, in);
    return doc;
}

void api_create_capacity_provider(struct http_req *req)
{
    struct api_error err;
    struct vlist v;
    char name[CP_NAME_MAX + 1], id[300], arn[300], ts[40];
    json_t *body = api_read_json_body(req), *cp = NULL;
    if (!body)
        return;
    vlist_init(&v);
    check_create_shape(body, &v);
    if (vlist_finish(&v, &err))
        goto fail;
    int rc = parse_name(api_jstr(body, "CapacityProviderName"), req->region, req->account, name, id, sizeof(id), &err);
    if (rc == -2) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "The capacity provider ARN %s is not in this region "
                 "(%s) and account.", api_jstr(body, "CapacityProviderName"), req->region);
        goto fail;
    }
    if (rc)
        goto fail;
    cp_arn(req->region, req->account, name, arn, sizeof(arn));
    json_t *vpc = json_object_get(body, "VpcConfig");
    cp = json_pack("{s:s,s:s,s:{s:O,s:O},s:{s:O}}", "CapacityProviderArn", arn, "State", "Pending", "VpcConfig",
                   "SubnetIds", json_object_get(vpc, "SubnetIds"), "SecurityGroupIds",
                   json_object_get(vpc, "SecurityGroupIds"), "PermissionsConfig", "CapacityProviderOperatorRoleArn",
                   json_object_get(json_object_get(body, "PermissionsConfig"), "CapacityProviderOperatorRoleArn"));
    /* What AWS fills in when the optional members are left out. */
    json_t *ir = json_object_get(body, "InstanceRequirements");
    json_t *irc = json_pack("{s:[s],s:[],s:[]}", "Architectures", "x86_64", "AllowedInstanceTypes",
                            "ExcludedInstanceTypes");
    static const char *const ir_keys[] = {"Architectures", "AllowedInstanceTypes", "ExcludedInstanceTypes", NULL};
    for (size_t i = 0; ir_keys[i]; i++)
        if (present(json_object_get(ir, ir_keys[i])))
            json_object_set(irc, ir_keys[i], json_object_get(ir, ir_keys[i]));
    json_object_set_new(cp, "InstanceRequirements", irc);
    json_object_set_new(cp, "CapacityProviderScalingConfig", json_pack("{s:s}", "ScalingMode", "Auto"));
    json_t *sc = json_object_get(body, "CapacityProviderScalingConfig");
    if (json_is_object(sc)) {
        const char *k;
        json_t *val;
        json_object_foreach(sc, k, val) if (present(val) && (!strcmp(k, "MaxVCpuCount") ||
                                                             !strcmp(k, "ScalingMode") ||
                                                             !strcmp(k, "ScalingPolicies")))
            json_object_set(json_object_get(cp, "CapacityProviderScalingConfig"), k, val);
    }
    if (present(json_object_get(body, "KmsKeyArn")))
        json_object_set(cp, "KmsKeyArn", json_object_get(body, "KmsKeyArn"));
    api_now_iso(ts, 3, "+0000");
    json_object_set_new(cp, "LastModified", json_string(ts));
    json_t *tags = json_object_get(body, "Tags");
    if (check_semantics(cp, &err) || (json_is_object(tags) && api_check_tags(tags, &err)))
        goto fail;
    pthread_mutex_lock(&g_write_mu);
    json_t *old = resstore_get(g_store, id);
    if (old) {
        pthread_mutex_unlock(&g_write_mu);
        json_decref(old);
        api_fail(&err, &AWS_RESOURCE_CONFLICT, "Capacity provider already exists: %s", arn);
        goto fail;
    }
    const struct lambdad_config *c = config_current();
    json_t *doc = json_pack("{s:O,s:I}", "CapacityProvider", cp, "busy_until",
                            (json_int_t)(api_now_ms() + (c ? c->state_transition_ms : 0)));
    if (json_is_object(tags) && json_object_size(tags))
        json_object_set(doc, "Tags", tags);
    rc = resstore_put(g_store, id, doc);
    pthread_mutex_unlock(&g_write_mu);
    json_decref(doc);
    if (rc) {
        api_fail(&err, &AWS_SERVICE, MSG_INTERNAL, "cannot store the capacity provider");
        goto fail;
    }
    http_send_jsont(req, 202, json_pack("{s:o}", "CapacityProvider", cp));
    json_decref(body);
    return;
fail:
    json_decref(cp);
    json_decref(body);
    http_send_api_error(req, &err);
}

void api_get_capacity_provider(struct http_req *req)
{
    char name[CP_NAME_MAX + 1], id[300];
    json_t *doc = lookup(req, name, id, sizeof(id));
    if (!doc)
        return;
    http_send_jsont(req, 200, json_pack("{s:o}", "CapacityProvider", view(doc)));
    json_decref(doc);
}

void api_update_capacity_provider(struct http_req *req)
{
    struct api_error err;
    struct vlist v;
    char name[CP_NAME_MAX + 1], id[300], ts[40];
    bool locked = false;
    json_t *body = api_read_json_body(req), *doc = NULL;
    if (!body)
        return;
    vlist_init(&v);
    check_scaling(json_object_get(body, "CapacityProviderScalingConfig"), &v);
    if (vlist_finish(&v, &err)) {
        /* The path is checked first, as AWS binds it before the body. */
        if (parse_name(http_param(req, 0), req->region, req->account, name, id, sizeof(id), &err) == -1 ||
            vlist_finish(&v, &err))
            http_send_api_error(req, &err);
        goto out;
    }
    pthread_mutex_lock(&g_write_mu);
    locked = true;
    if (!(doc = lookup(req, name, id, sizeof(id))))
        goto out;
    json_t *cp = json_object_get(doc, "CapacityProvider");
    json_t *sc = json_object_get(body, "CapacityProviderScalingConfig");
    if (json_is_object(sc)) {
        json_t *cur = json_object_get(cp, "CapacityProviderScalingConfig");
        const char *k;
        json_t *val;
        json_object_foreach(sc, k, val) if (present(val) && (!strcmp(k, "MaxVCpuCount") ||
                                                             !strcmp(k, "ScalingMode") ||
                                                             !strcmp(k, "ScalingPolicies")))
            json_object_set(cur, k, val);
        /* Back to Auto drops the Manual policies. */
        if (!strcmp(api_jstr(cur, "ScalingMode") ? api_jstr(cur, "ScalingMode") : "", "Auto") &&
            !present(json_object_get(sc, "ScalingPolicies")))
            json_object_del(cur, "ScalingPolicies");
    }
    if (check_semantics(cp, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    api_now_iso(ts, 3, "+0000");
    json_object_set_new(cp, "LastModified", json_string(ts));
    if (resstore_put(g_store, id, doc))
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "cannot store the capacity provider");
    else
        http_send_jsont(req, 202, json_pack("{s:o}", "CapacityProvider", view(doc)));
out:
    if (locked)
        pthread_mutex_unlock(&g_write_mu);
    json_decref(doc);
    json_decref(body);
}

/* --- the functions that use a provider ---------------------------------- */

static const char *provider_of(json_t *cfg)
{
    return api_jstr(json_object_get(json_object_get(cfg, "CapacityProviderConfig"),
                                "LambdaManagedInstancesCapacityProviderConfig"),
                "CapacityProviderArn");
}

/* Appends {FunctionArn, State} for one configuration text using arn. */
static void add_if_uses(json_t *out, const char *text, size_t len, const char *arn, const char *fn_arn,
                        const char *qualifier)
{
    if (!text || !memmem(text, len, arn, strlen(arn)))
        return;
    json_t *cfg = json_loadb(text, len, 0, NULL);
    const char *p = provider_of(cfg);
    if (p && !strcmp(p, arn)) {
        char q[700];
        snprintf(q, sizeof(q), "%s:%s", fn_arn, qualifier);
        json_array_append_new(out, json_pack("{s:s,s:s}", "FunctionArn", q, "State",
                                             api_jstr(cfg, "State") ? api_jstr(cfg, "State") : "Active"));
    }
    json_decref(cfg);
}

/* [{FunctionArn, State}] of every $LATEST and published version whose
 * configuration references the provider arn, in the request's namespace. */
static json_t *versions_using(const char *region, const char *account, const char *arn)
{
    json_t *out = json_array();
    struct fn_record **v;
    size_t n;
    if (registry_all(&v, &n))
        return out;
    for (size_t i = 0; i < n; i++) {
        struct fn_record *r = v[i];
        if (!strcmp(r->region, region) && !strcmp(r->account, account)) {
            add_if_uses(out, r->config_json, r->config_len, arn, r->arn, "$LATEST");
            for (size_t k = 0; k < r->n_versions; k++)
                add_if_uses(out, r->versions[k].config_json, r->versions[k].config_len, arn, r->arn,
                            r->versions[k].version);
        }
        registry_record_unref(r);
    }
    free(v);
    return out;
}

void api_delete_capacity_provider(struct http_req *req)
{
    char name[CP_NAME_MAX + 1], id[300];
    pthread_mutex_lock(&g_write_mu);
    json_t *doc = lookup(req, name, id, sizeof(id));
    if (!doc) {
        pthread_mutex_unlock(&g_write_mu);
        return;
    }
    json_t *cp = view(doc);
    json_t *users = versions_using(req->region, req->account, api_jstr(cp, "CapacityProviderArn"));
    if (json_array_size(users)) {
        http_send_error(req, &AWS_RESOURCE_CONFLICT, "Capacity provider %s is in use by %zu function "
                        "version(s), for example %s. Remove it from their configuration first.",
                        api_jstr(cp, "CapacityProviderArn"), json_array_size(users),
                        api_jstr(json_array_get(users, 0), "FunctionArn"));
        json_decref(cp);
    } else if (resstore_remove(g_store, id)) {
        send_not_found(req, http_param(req, 0));
        json_decref(cp);
    } else {
        json_object_set_new(cp, "State", json_string("Deleting"));
        http_send_jsont(req, 202, json_pack("{s:o}", "CapacityProvider", cp));
    }
    pthread_mutex_unlock(&g_write_mu);
    json_decref(users);
    json_decref(doc);
}

/* Marker/MaxItems (MaxFiftyListItems) paging of all into {key: [...],
 * NextMarker}; answers and drops all. */
static void send_page(struct http_req *req, json_t *all, const char *key, json_t *resp)
{
    char marker[32];
    long max, start = 0;
    if (!api_max_items(req, LIST_MAX, LIST_MAX, &max)) {
        json_decref(all);
        json_decref(resp);
        return;
    }
    int mk = http_query(req, "Marker", marker, sizeof(marker));
    if (mk > 0) {
        char *end;
        start = strtol(marker, &end, 10);
        if (*end || start < 0 || start > (long)json_array_size(all)) {
            http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Invalid pagination token: %s", marker);
            json_decref(all);
            json_decref(resp);
            return;
        }
    } else if (mk == -2) {
        http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Invalid pagination token.");
        json_decref(all);
        json_decref(resp);
        return;
    }
    json_t *page = json_array();
    for (long i = start; i < (long)json_array_size(all) && i < start + max; i++)
        json_array_append(page, json_array_get(all, (size_t)i));
    json_object_set_new(resp, key, page);
    if (start + max < (long)json_array_size(all)) {
        char next[32];
        snprintf(next, sizeof(next), "%ld", start + max);
        json_object_set_new(resp, "NextMarker", json_string(next));
    }
    json_decref(all);
    http_send_jsont(req, 200, resp);
}

void api_list_capacity_providers(struct http_req *req)
{
    static const char *const states[] = {"Pending", "Active", "Failed", "Deleting", NULL};
    char state[32], prefix[160];
    int sl = http_query(req, "State", state, sizeof(state));
    if (sl != -1) {
        json_t *j = sl >= 0 ? json_string(state) : NULL;
        struct vlist v;
        struct api_error err;
        vlist_init(&v);
        check_enum(j, "state", states, "Pending, Active, Failed, Deleting", &v);
        json_decref(j);
        if (vlist_finish(&v, &err)) {
            http_send_api_error(req, &err);
            return;
        }
    }
    snprintf(prefix, sizeof(prefix), "%s.%s.", req->region, req->account);
    json_t *all = resstore_all(g_store), *mine = json_array(), *doc;
    size_t i;
    char arn_prefix[160];
    snprintf(arn_prefix, sizeof(arn_prefix), "arn:aws:lambda:%s:%s:capacity-provider:", req->region, req->account);
    json_array_foreach(all, i, doc) {
        json_t *cp = view(doc);
        const char *a = api_jstr(cp, "CapacityProviderArn");
        if (a && !strncmp(a, arn_prefix, strlen(arn_prefix)) && (sl < 0 || !strcmp(api_jstr(cp, "State"), state)))
            json_array_append(mine, cp);
        json_decref(cp);
    }
    json_decref(all);
    send_page(req, mine, "CapacityProviders", json_object());
}

void api_list_versions_by_capacity_provider(struct http_req *req)
{
    char name[CP_NAME_MAX + 1], id[300];
    json_t *doc = lookup(req, name, id, sizeof(id));
    if (!doc)
        return;
    const char *arn = api_jstr(json_object_get(doc, "CapacityProvider"), "CapacityProviderArn");
    send_page(req, versions_using(req->region, req->account, arn), "FunctionVersions",
              json_pack("{s:s}", "CapacityProviderArn", arn));
    json_decref(doc);
}

/* --- tags ----------------------------------------------------------------- */

bool api_capacity_owns_arn(const char *arn)
{
    return arn && !strncmp(arn, "arn:", 4) && strstr(arn, ":capacity-provider:");
}

/* The stored document a TaggableResource capacity-provider ARN (path
 * parameter 0) names, or NULL after answering. */
static json_t *tag_target(struct http_req *req, char *id, size_t idlen)
{
    char name[CP_NAME_MAX + 1];
    struct vlist v;
    struct api_error err;
    const char *arn = http_param(req, 0);
    vlist_init(&v);
    json_t *j = json_string(arn);
    check_str(j, "resource", 1, 256, PAT_CP_ARN, &v);
    json_decref(j);
    if (vlist_finish(&v, &err)) {
        http_send_api_error(req, &err);
        return NULL;
    }
    json_t *doc = parse_name(arn, req->region, req->account, name, id, idlen, &err) == 0 ? resstore_get(g_store, id)
                                                                                         : NULL;
    if (!doc)
        send_not_found(req, arn);
    return doc;
}

void api_capacity_tag_resource(struct http_req *req)
{
    struct api_error err;
    char id[300];
    json_t *body = api_read_json_body(req), *doc = NULL;
    if (!body)
        return;
    pthread_mutex_lock(&g_write_mu);
    if (!(doc = tag_target(req, id, sizeof(id))))
        goto out;
    json_t *tags = json_object_get(body, "Tags");
    if (!json_is_object(tags)) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value null at 'tags' failed "
                        "to satisfy constraint: Member must not be null");
        goto out;
    }
    json_t *merged = json_is_object(json_object_get(doc, "Tags")) ? json_deep_copy(json_object_get(doc, "Tags"))
                                                                  : json_object();
    json_object_update(merged, tags);
    if (api_check_tags(merged, &err)) {
        json_decref(merged);
        http_send_api_error(req, &err);
        goto out;
    }
    json_object_set_new(doc, "Tags", merged);
    if (resstore_put(g_store, id, doc))
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "cannot store the capacity provider");
    else
        http_send_empty(req, 204);
out:
    pthread_mutex_unlock(&g_write_mu);
    json_decref(doc);
    json_decref(body);
}

void api_capacity_untag_resource(struct http_req *req)
{
    char id[300];
    size_t i;
    json_t *k, *keys = json_array();
    pthread_mutex_lock(&g_write_mu);
    json_t *doc = tag_target(req, id, sizeof(id));
    if (!doc)
        goto out;
    if (http_query_each(req, "tagKeys", api_collect_query_key, keys) || !json_array_size(keys)) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value null at 'tagKeys' "
                        "failed to satisfy constraint: Member must not be null");
        goto out;
    }
    json_t *tags = json_object_get(doc, "Tags");
    json_array_foreach(keys, i, k) json_object_del(tags, json_string_value(k));
    if (json_is_object(tags) && !json_object_size(tags))
        json_object_del(doc, "Tags");
    if (resstore_put(g_store, id, doc))
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "cannot store the capacity provider");
    else
        http_send_empty(req, 204);
out:
    pthread_mutex_unlock(&g_write_mu);
    json_decref(doc);
    json_decref(keys);
}

void api_capacity_list_tags(struct http_req *req)
{
    char id[300];
    json_t *doc = tag_target(req, id, sizeof(id));
    if (!doc)
        return;
    json_t *tags = json_object_get(doc, "Tags");
    http_send_jsont(req, 200, json_pack("{s:o}", "Tags", json_is_object(tags) ? json_incref(tags) : json_object()));
    json_decref(doc);
}

/* --- CapacityProviderConfig of a function -------------------------------- */

int api_capacity_check_function_config(json_t *body, const char *region, const char *account,
                                       struct api_error *err)
{
    struct vlist v;
    json_t *c = json_object_get(body, "CapacityProviderConfig");
    if (!present(c))
        return 0;
    vlist_init(&v);
    json_t *lmi = json_object_get(c, "LambdaManagedInstancesCapacityProviderConfig");
    if (!json_is_object(c)) {
        check_object(c, "capacityProviderConfig", &v);
    } else if (!present(lmi)) {
        vlist_add(&v, NULL, "capacityProviderConfig.lambdaManagedInstancesCapacityProviderConfig",
                  "Member must not be null");
    } else if (!json_is_object(lmi)) {
        check_object(lmi, "capacityProviderConfig.lambdaManagedInstancesCapacityProviderConfig", &v);
    } else {
        json_t *a = json_object_get(lmi, "CapacityProviderArn"), *j;
        if (!present(a))
            vlist_add(&v, NULL, "capacityProviderConfig.lambdaManagedInstancesCapacityProviderConfig."
                      "capacityProviderArn", "Member must not be null");
        else
            check_str(a, "capacityProviderConfig.lambdaManagedInstancesCapacityProviderConfig.capacityProviderArn",
                      1, CP_NAME_MAX, PAT_CP_ARN, &v);
        if (present(j = json_object_get(lmi, "PerExecutionEnvironmentMaxConcurrency")))
            check_number(j, "capacityProviderConfig.lambdaManagedInstancesCapacityProviderConfig."
                         "perExecutionEnvironmentMaxConcurrency", 1, 1600, true, &v);
        if (present(j = json_object_get(lmi, "ExecutionEnvironmentMemoryGiBPerVCpu")))
            check_number(j, "capacityProviderConfig.lambdaManagedInstancesCapacityProviderConfig."
                         "executionEnvironmentMemoryGiBPerVCpu", 2, 8, false, &v);
    }
    if (vlist_finish(&v, err))
        return -1;
    const char *arn = api_jstr(lmi, "CapacityProviderArn");
    char name[CP_NAME_MAX + 1], id[300];
    json_t *doc = parse_name(arn, region, account, name, id, sizeof(id), err) == 0 ? resstore_get(g_store, id)
                                                                                   : NULL;
    if (!doc)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "The capacity provider %s does not exist.", arn);
    json_decref(doc);
    return 0;
}

json_t *api_capacity_function_config(json_t *body)
{
    json_t *lmi = json_object_get(json_object_get(body, "CapacityProviderConfig"),
                                  "LambdaManagedInstancesCapacityProviderConfig");
    if (!json_is_object(lmi))
        return NULL;
    json_t *o = json_pack("{s:O}", "CapacityProviderArn", json_object_get(lmi, "CapacityProviderArn"));
    static const char *const opt[] = {"PerExecutionEnvironmentMaxConcurrency", "ExecutionEnvironmentMemoryGiBPerVCpu",
                                      NULL};
    for (size_t i = 0; opt[i]; i++)
        if (present(json_object_get(lmi, opt[i])))
            json_object_set(o, opt[i], json_object_get(lmi, opt[i]));
    return json_pack("{s:o}", "LambdaManagedInstancesCapacityProviderConfig", o);
}

/* --- function scaling configuration -------------------------------------- */

/* Resolves FunctionName (unqualified) + the required ?Qualifier= of a
 * published version. Fills n (qualifier included) and returns the record
 * with the version's configuration in *cfg, or NULL after answering. */
static struct fn_record *scaling_target(struct http_req *req, struct fn_name *n, json_t **cfg)
{
    char q[160];
    struct vlist v;
    struct api_error err;
    *cfg = NULL;
    vlist_init(&v);
    int ql = http_query(req, "Qualifier", q, sizeof(q));
    if (ql == -1) {
        vlist_add(&v, NULL, "qualifier", "Member must not be null");
    } else if (ql < 0 || ql > 128) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value at 'qualifier' failed to "
                        "satisfy constraint: Member must have length less than or equal to 128");
        return NULL;
    } else if (ql == 0) {
        vlist_add(&v, "", "qualifier", "Member must have length greater than or equal to 1");
    } else if (!validate_match(q, PAT_QUALIFIER)) {
        vlist_add(&v, q, "qualifier", "Member must satisfy regular expression pattern: " PAT_QUALIFIER);
    }
    if (vlist_finish(&v, &err)) {
        http_send_api_error(req, &err);
        return NULL;
    }
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, false, n);
    if (!r)
        return NULL;
    if (n->qualifier[0]) {
        vlist_add(&v, http_param(req, 0), "functionName", "Member must satisfy regular expression pattern: "
                  PAT_UNQUALIFIED);
        vlist_finish(&v, &err);
        http_send_api_error(req, &err);
        registry_record_unref(r);
        return NULL;
    }
    snprintf(n->qualifier, sizeof(n->qualifier), "%.128s", q);
    const struct fn_version *ver = registry_version(r, q);
    if (!ver) {
        char arn[700];
        snprintf(arn, sizeof(arn), "%s:%s", r->arn, q);
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_FUNCTION_NOT_FOUND, arn);
        registry_record_unref(r);
        return NULL;
    }
    *cfg = json_loadb(ver->config_json, ver->config_len, 0, NULL);
    return r;
}

static json_t *stored_scaling(const struct fn_record *r, const char *qualifier)
{
    json_t *extras = r->extras_json ? json_loads(r->extras_json, 0, NULL) : NULL;
    json_t *s = json_incref(json_object_get(json_object_get(extras, "scaling"), qualifier));
    json_decref(extras);
    return s;
}

void api_get_function_scaling_config(struct http_req *req)
{
    struct fn_name n;
    json_t *cfg;
    char arn[700];
    struct fn_record *r = scaling_target(req, &n, &cfg);
    if (!r)
        return;
    json_t *s = stored_scaling(r, n.qualifier);
    snprintf(arn, sizeof(arn), "%s:%s", r->arn, n.qualifier);
    json_t *resp = json_pack("{s:s}", "FunctionArn", arn);
    if (s) {
        json_object_set(resp, "AppliedFunctionScalingConfig", s);
        json_object_set(resp, "RequestedFunctionScalingConfig", s);
    }
    json_decref(s);
    json_decref(cfg);
    registry_record_unref(r);
    http_send_jsont(req, 200, resp);
}

static int mutate_scaling(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    (void)err;
    json_t **kv = ud; /* {qualifier, value} */
    json_t *extras = json_object_get(doc, "extras");
    if (!json_is_object(extras)) {
        extras = json_object();
        json_object_set_new(doc, "extras", extras);
    }
    json_t *slot = json_object_get(extras, "scaling");
    if (!json_is_object(slot)) {
        slot = json_object();
        json_object_set_new(extras, "scaling", slot);
    }
    json_object_set(slot, json_string_value(kv[0]), kv[1]);
    return 0;
}

void api_put_function_scaling_config(struct http_req *req)
{
    struct api_error err;
    struct vlist v;
    struct fn_name n;
    json_t *cfg = NULL;
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *r = scaling_target(req, &n, &cfg);
    if (!r)
        goto out;
    json_t *fsc = json_object_get(body, "FunctionScalingConfig"), *mn = NULL, *mx = NULL;
    vlist_init(&v);
    if (present(fsc) && !json_is_object(fsc)) {
        check_object(fsc, "functionScalingConfig", &v);
    } else if (present(fsc)) {
        if (present(mn = json_object_get(fsc, "MinExecutionEnvironments")))
            check_number(mn, "functionScalingConfig.minExecutionEnvironments", 0, 15000, true, &v);
        if (present(mx = json_object_get(fsc, "MaxExecutionEnvironments")))
            check_number(mx, "functionScalingConfig.maxExecutionEnvironments", 0, 15000, true, &v);
    }
    if (vlist_finish(&v, &err))
        goto fail;
    if (!provider_of(cfg)) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "Function scaling configuration is only supported for "
                 "functions that use a capacity provider: %s:%s", r->arn, n.qualifier);
        goto fail;
    }
    if (present(mn) && present(mx) && json_integer_value(mn) > json_integer_value(mx)) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "MinExecutionEnvironments (%lld) must be less than or "
                 "equal to MaxExecutionEnvironments (%lld).", (long long)json_integer_value(mn),
                 (long long)json_integer_value(mx));
        goto fail;
    }
    json_t *val = json_object();
    if (present(mn))
        json_object_set(val, "MinExecutionEnvironments", mn);
    if (present(mx))
        json_object_set(val, "MaxExecutionEnvironments", mx);
    json_t *kv[2] = {json_string(n.qualifier), val};
    struct fn_name un = n;
    un.qualifier[0] = 0;
    int rc = registry_update(&un, mutate_scaling, kv, NULL, 0, NULL, &err);
    json_decref(kv[0]);
    json_decref(val);
    if (rc)
        goto fail;
    http_send_jsont(req, 202, json_pack("{s:s}", "FunctionState", api_jstr(cfg, "State") ? api_jstr(cfg, "State")
                                                                                     : "Active"));
    goto out;
fail:
    http_send_api_error(req, &err);
out:
    json_decref(cfg);
    if (r)
        registry_record_unref(r);
    json_decref(body);
}
