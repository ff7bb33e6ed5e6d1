/* api_provisioned: provisioned concurrency and the stored per-function
 * settings (see api_provisioned.h). */
#include "server/api_provisioned.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "pool/pool.h"
#include "runtime/log.h"
#include "server/api_functions.h"
#include "server/registry.h"
#include "server/validate.h"

#define FN_NAME_MAX 140
#define FN_NAMESPACED_MAX 256
#define LIST_MAX 50

static const struct aws_error AWS_PC_NOT_FOUND = {"ProvisionedConcurrencyConfigNotFoundException", 404, true,
                                                  false};

#define MSG_PC_UNPUBLISHED "Provisioned Concurrency Configs cannot be applied to unpublished function versions."

static void now_ts(char out[40])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%S+0000", &tm);
}

/* extras.<kind> of a published record: a new reference (empty object when
 * absent). */
static json_t *record_extra(const struct fn_record *r, const char *kind)
{
    json_t *extras = r->extras_json ? json_loads(r->extras_json, 0, NULL) : NULL;
    json_t *o = json_incref(json_object_get(extras, kind));
    json_decref(extras);
    return o ? o : json_object();
}

/* extras.<kind> of a writer's document copy, created. */
static json_t *doc_extra(json_t *doc, const char *kind)
{
    json_t *extras = json_object_get(doc, "extras");
    if (!extras) {
        extras = json_object();
        json_object_set_new(doc, "extras", extras);
    }
    json_t *o = json_object_get(extras, kind);
    if (!o) {
        o = json_object();
        json_object_set_new(extras, kind, o);
    }
    return o;
}

/* --- provisioned concurrency ------------------------------------------ */

/* The published version's spec a qualifier provisions (a reference), or
 * NULL for $LATEST / an alias of $LATEST. */
static struct fn_spec *pc_spec(const struct fn_record *r, const char *q)
{
    const struct fn_version *v = registry_version(r, q);
    if (!v) {
        const struct fn_alias *a = registry_alias(r, q);
        v = a ? registry_version(r, a->version) : NULL;
    }
    return v ? fnspec_ref(v->spec) : NULL;
}

/* The version number a qualifier provisions ("" when none). */
static const char *pc_version(const struct fn_record *r, const char *q)
{
    const struct fn_version *v = registry_version(r, q);
    if (!v) {
        const struct fn_alias *a = registry_alias(r, q);
        v = a ? registry_version(r, a->version) : NULL;
    }
    return v ? v->version : "";
}

/* An alias moved since its configuration was written: the version it
 * provisioned then goes back to the idle reaper. */
static void release_moved(const struct fn_record *r, const char *q, json_t *stored)
{
    const char *was = json_string_value(json_object_get(stored, "Version"));
    const struct fn_version *old = was && strcmp(was, pc_version(r, q)) ? registry_version(r, was) : NULL;
    if (!old)
        return;
    /* unless another configuration of this function provisions it */
    json_t *pc = record_extra(r, "pc"), *c;
    const char *k;
    bool used = false;
    json_object_foreach(pc, k, c) used |= !strcmp(pc_version(r, k), was);
    json_decref(pc);
    if (!used)
        pool_provision(old->spec, 0);
}

/* Resolves FunctionName + the required ?Qualifier=. Answers the error and
 * returns NULL otherwise. */
static struct fn_record *pc_target(struct http_req *req, struct fn_name *n)
{
    char q[160];
    int ql = http_query(req, "Qualifier", q, sizeof(q));
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, true, n);
    if (!r)
        return NULL;
    if (!n->qualifier[0] && ql < 0) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value null at 'qualifier' failed "
                        "to satisfy constraint: Member must not be null");
        registry_record_unref(r);
        return NULL;
    }
    return r;
}

/* The response for a stored configuration, after asking the pool. */
static json_t *pc_view(const struct fn_record *r, const char *q, json_t *stored, bool list_item)
{
    int want = (int)json_integer_value(json_object_get(stored, "Requested"));
    release_moved(r, q, stored);
    struct fn_spec *spec = pc_spec(r, q);
    int ready = spec ? pool_provision(spec, want) : 0;
    fnspec_unref(spec);
    if (ready > want)
        ready = want;
    json_t *o = json_object();
    if (list_item) {
        char arn[600];
        snprintf(arn, sizeof(arn), "%s:%s", r->arn, q);
        json_object_set_new(o, "FunctionArn", json_string(arn));
    }
    json_object_set_new(o, "RequestedProvisionedConcurrentExecutions", json_integer(want));
    json_object_set_new(o, "AvailableProvisionedConcurrentExecutions", json_integer(ready));
    json_object_set_new(o, "AllocatedProvisionedConcurrentExecutions", json_integer(ready));
    json_object_set_new(o, "Status", json_string(ready >= want ? "READY" : "IN_PROGRESS"));
    json_object_set(o, "LastModified", json_object_get(stored, "LastModified"));
    return o;
}

struct pc_edit {
    const char *key;
    int n;          /* Put: requested; -1: delete */
    const char *version; /* Put: the version provisioned */
};

static int mutate_pc(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    struct pc_edit *e = ud;
    json_t *pc = doc_extra(doc, "pc");
    if (e->n < 0) {
        if (!json_object_get(pc, e->key))
            return api_fail(err, &AWS_RESOURCE_NOT_FOUND, "No Provisioned Concurrency Config found for this "
                            "function");
        json_object_del(pc, e->key);
        return 0;
    }
    char ts[40];
    now_ts(ts);
    json_object_set_new(pc, e->key, json_pack("{s:i,s:s,s:s}", "Requested", e->n, "LastModified", ts, "Version",
                                              e->version ? e->version : ""));
    return 0;
}

void api_put_provisioned(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *r = pc_target(req, &n);
    if (!r)
        goto out;
    json_t *pce = json_object_get(body, "ProvisionedConcurrentExecutions");
    struct vlist v;
    vlist_init(&v);
    if (!pce || json_is_null(pce))
        vlist_add(&v, NULL, "provisionedConcurrentExecutions", "Member must not be null");
    else if (!json_is_integer(pce))
        vlist_add(&v, NULL, "provisionedConcurrentExecutions", "Member must be an integer");
    else if (json_integer_value(pce) < 1) {
        char val[32];
        snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(pce));
        vlist_add(&v, val, "provisionedConcurrentExecutions", "Member must have value greater than or equal to 1");
    }
    struct fn_spec *spec = NULL;
    if (vlist_finish(&v, &err))
        goto fail;
    spec = pc_spec(r, n.qualifier);
    if (!spec) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, MSG_PC_UNPUBLISHED);
        goto fail;
    }
    int want = json_integer_value(pce) > 100000 ? 100000 : (int)json_integer_value(pce);
    if (r->reserved_concurrency >= 0 && want > r->reserved_concurrency) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "Requested Provisioned Concurrency should not be greater "
                 "than the reservedConcurrentExecution for function");
        goto fail;
    }
    struct pc_edit e = {.key = n.qualifier, .n = want, .version = spec->version};
    if (registry_update(&n, mutate_pc, &e, NULL, 0, NULL, &err))
        goto fail;
    json_t *prev = record_extra(r, "pc"); /* r is the state before this Put */
    if (json_object_get(prev, n.qualifier))
        release_moved(r, n.qualifier, json_object_get(prev, n.qualifier));
    json_decref(prev);
    int ready = pool_provision(spec, want); /* starts them now */
    char ts[40];
    now_ts(ts);
    http_send_jsont(req, 202, json_pack("{s:i,s:i,s:i,s:s,s:s}", "RequestedProvisionedConcurrentExecutions", want,
                                        "AvailableProvisionedConcurrentExecutions", ready > want ? want : ready,
                                        "AllocatedProvisionedConcurrentExecutions", ready > want ? want : ready,
                                        "Status", ready >= want ? "READY" : "IN_PROGRESS", "LastModified", ts));
    goto done;
fail:
    http_send_api_error(req, &err);
done:
    fnspec_unref(spec);
    registry_record_unref(r);
out:
    json_decref(body);
}

void api_get_provisioned(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = pc_target(req, &n);
    if (!r)
        return;
    json_t *pc = record_extra(r, "pc");
    json_t *c = json_object_get(pc, n.qualifier);
    if (c)
        http_send_jsont(req, 200, pc_view(r, n.qualifier, c, false));
    else
        http_send_error(req, &AWS_PC_NOT_FOUND, "No Provisioned Concurrency Config found for this function");
    json_decref(pc);
    registry_record_unref(r);
}

void api_delete_provisioned(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    struct fn_record *r = pc_target(req, &n);
    if (!r)
        return;
    struct fn_spec *spec = pc_spec(r, n.qualifier);
    json_t *prev = record_extra(r, "pc");
    if (json_object_get(prev, n.qualifier))
        release_moved(r, n.qualifier, json_object_get(prev, n.qualifier));
    json_decref(prev);
    struct pc_edit e = {.key = n.qualifier, .n = -1};
    if (registry_update(&n, mutate_pc, &e, NULL, 0, NULL, &err)) {
        http_send_api_error(req, &err);
    } else {
        if (spec)
            pool_provision(spec, 0); /* back to the idle reaper */
        http_send_empty(req, 204);
    }
    fnspec_unref(spec);
    registry_record_unref(r);
}

static void list_provisioned(struct http_req *req)
{
    struct fn_name n;
    long max, start;
    if (!api_max_items(req, LIST_MAX, LIST_MAX, &max) || !api_offset_marker(req, &start))
        return;
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, false, &n);
    if (!r)
        return;
    json_t *pc = record_extra(r, "pc"), *v;
    json_t *list = json_array();
    const char *k;
    long i = 0;
    bool more = false;
    json_object_foreach(pc, k, v) {
        if (i >= start && i < start + max)
            json_array_append_new(list, pc_view(r, k, v, true));
        else if (i >= start + max)
            more = true;
        i++;
    }
    json_t *resp = json_pack("{s:o}", "ProvisionedConcurrencyConfigs", list);
    if (more) {
        char next[32];
        snprintf(next, sizeof(next), "%ld", start + max);
        json_object_set_new(resp, "NextMarker", json_string(next));
    }
    json_decref(pc);
    registry_record_unref(r);
    http_send_jsont(req, 200, resp);
}

void api_get_or_list_provisioned(struct http_req *req)
{
    char list[16];
    if (http_query(req, "List", list, sizeof(list)) >= 0) {
        req->op = "ListProvisionedConcurrencyConfigs";
        list_provisioned(req);
    } else {
        api_get_provisioned(req);
    }
}

void api_provisioned_restore(void)
{
    struct fn_record **v;
    size_t n;
    if (registry_all(&v, &n))
        return;
    for (size_t i = 0; i < n; i++) {
        if (v[i]->extras_json && strstr(v[i]->extras_json, "\"pc\"")) {
            json_t *pc = record_extra(v[i], "pc"), *c;
            const char *k;
            json_object_foreach(pc, k, c) {
                struct fn_spec *spec = pc_spec(v[i], k);
                int want = (int)json_integer_value(json_object_get(c, "Requested"));
                if (spec) {
                    pool_provision(spec, want);
                    LOG_INFO("provisioned concurrency: %d environments of %s:%s", want, v[i]->name, k);
                }
                fnspec_unref(spec);
            }
            json_decref(pc);
        }
        registry_record_unref(v[i]);
    }
    free(v);
}

/* --- recursion and runtime management ---------------------------------- */

static int mutate_set(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    (void)err;
    json_t **kv = ud; /* {kind, key (string or NULL), value} */
    const char *kind = json_string_value(kv[0]);
    json_t *slot = doc_extra(doc, kind); /* creates extras too */
    if (json_is_string(kv[1]))
        json_object_set(slot, json_string_value(kv[1]), kv[2]);
    else
        json_object_set(json_object_get(doc, "extras"), kind, kv[2]);
    return 0;
}

static int store(struct fn_name *n, const char *kind, const char *key, json_t *value, struct api_error *err)
{
    json_t *kv[3] = {json_string(kind), key ? json_string(key) : NULL, value};
    int rc = registry_update(n, mutate_set, kv, NULL, 0, NULL, err);
    json_decref(kv[0]);
    json_decref(kv[1]);
    return rc;
}

/* Unqualified-only operations: a qualifier is a ValidationException. */
static struct fn_record *unqualified(struct http_req *req, struct fn_name *n)
{
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, false, n);
    if (r && n->qualifier[0]) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value '%s' at 'functionName' "
                        "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                        "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?"
                        "(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)", http_param(req, 0));
        registry_record_unref(r);
        return NULL;
    }
    return r;
}

void api_get_recursion_config(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = unqualified(req, &n);
    if (!r)
        return;
    json_t *extras = r->extras_json ? json_loads(r->extras_json, 0, NULL) : NULL;
    const char *loop = api_jstr(extras, "recursion");
    http_send_jsont(req, 200, json_pack("{s:s}", "RecursiveLoop", loop ? loop : "Terminate"));
    json_decref(extras);
    registry_record_unref(r);
}

void api_put_recursion_config(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *r = unqualified(req, &n);
    if (!r)
        goto out;
    registry_record_unref(r);
    const char *loop = api_jstr(body, "RecursiveLoop");
    if (!loop || (strcmp(loop, "Allow") && strcmp(loop, "Terminate"))) {
        struct vlist v;
        vlist_init(&v);
        vlist_add(&v, loop, "recursiveLoop", loop ? "Member must satisfy enum value set: [Terminate, Allow]"
                                                  : "Member must not be null");
        vlist_finish(&v, &err);
        http_send_api_error(req, &err);
        goto out;
    }
    json_t *val = json_string(loop);
    if (store(&n, "recursion", NULL, val, &err))
        http_send_api_error(req, &err);
    else
        http_send_jsont(req, 200, json_pack("{s:s}", "RecursiveLoop", loop));
    json_decref(val);
out:
    json_decref(body);
}

static const char *rm_key(const struct fn_name *n)
{
    return n->qualifier[0] ? n->qualifier : "$LATEST";
}

void api_get_runtime_management(struct http_req *req)
{
    struct fn_name n;
    char arn[600];
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        return;
    json_t *rt = record_extra(r, "runtime");
    json_t *c = json_object_get(rt, rm_key(&n));
    validate_function_arn(&n, n.qualifier[0] != 0, arn, sizeof(arn));
    json_t *resp = json_pack("{s:s}", "UpdateRuntimeOn", api_jstr(c, "UpdateRuntimeOn") ? api_jstr(c, "UpdateRuntimeOn")
                                                                                  : "Auto");
    if (api_jstr(c, "RuntimeVersionArn"))
        json_object_set_new(resp, "RuntimeVersionArn", json_string(api_jstr(c, "RuntimeVersionArn")));
    json_object_set_new(resp, "FunctionArn", json_string(arn));
    json_decref(rt);
    registry_record_unref(r);
    http_send_jsont(req, 200, resp);
}

void api_put_runtime_management(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    char arn[600];
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        goto out;
    registry_record_unref(r);
    const char *on = api_jstr(body, "UpdateRuntimeOn"), *ver = api_jstr(body, "RuntimeVersionArn");
    struct vlist v;
    vlist_init(&v);
    if (!on || (strcmp(on, "Auto") && strcmp(on, "Manual") && strcmp(on, "FunctionUpdate")))
        vlist_add(&v, on, "updateRuntimeOn", on ? "Member must satisfy enum value set: [Auto, Manual, FunctionUpdate]"
                                                : "Member must not be null");
    if (ver && !validate_match(ver, "arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\\d{1}::runtime:.+"))
        vlist_add(&v, ver, "runtimeVersionArn", "Member must satisfy regular expression pattern: "
                  "arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\\d{1}::runtime:.+");
    if (vlist_finish(&v, &err))
        goto fail;
    if (!strcmp(on, "Manual") && !ver) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "RuntimeVersionArn is required when UpdateRuntimeOn is Manual.");
        goto fail;
    }
    if (strcmp(on, "Manual") && ver) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "RuntimeVersionArn can only be specified when "
                 "UpdateRuntimeOn is Manual.");
        goto fail;
    }
    json_t *val = json_pack("{s:s}", "UpdateRuntimeOn", on);
    if (ver)
        json_object_set_new(val, "RuntimeVersionArn", json_string(ver));
    int rc = store(&n, "runtime", rm_key(&n), val, &err);
    if (!rc) {
        validate_function_arn(&n, n.qualifier[0] != 0, arn, sizeof(arn));
        json_object_set_new(val, "FunctionArn", json_string(arn));
        http_send_jsont(req, 200, val);
        goto out;
    }
    json_decref(val);
fail:
    http_send_api_error(req, &err);
out:
    json_decref(body);
}
