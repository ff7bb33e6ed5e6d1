/* api_eventinvoke: asynchronous invocation configuration and destinations
 * (see api_eventinvoke.h). */
#include "server/api_eventinvoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <urcu.h>

#include "pool/pool.h"
#include "runtime/log.h"
#include "server/api_functions.h"
#include "server/registry.h"
#include "server/validate.h"

#define FN_NAMESPACED_MAX 256
#define LIST_MAX 50
#define PAT_DESTINATION                                                                            \
    "$|kafka://([^.]([a-zA-Z0-9\\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)"
#define DEST_MAGIC 0x45494344u /* "EICD" */

/* "$LATEST" for "" */
static const char *eic_key(const char *qualifier)
{
    return qualifier[0] ? qualifier : "$LATEST";
}

/* --- configuration operations ------------------------------------------ */

static int check_body(json_t *body, struct api_error *err)
{
    struct vlist v;
    char val[32];
    vlist_init(&v);
    json_t *r = json_object_get(body, "MaximumRetryAttempts");
    if (r && !json_is_null(r)) {
        if (!json_is_integer(r)) {
            vlist_add(&v, NULL, "maximumRetryAttempts", "Member must be an integer");
        } else if (json_integer_value(r) < 0 || json_integer_value(r) > 2) {
            snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(r));
            vlist_add(&v, val, "maximumRetryAttempts", json_integer_value(r) < 0
                                                           ? "Member must have value greater than or equal to 0"
                                                           : "Member must have value less than or equal to 2");
        }
    }
    json_t *a = json_object_get(body, "MaximumEventAgeInSeconds");
    if (a && !json_is_null(a)) {
        if (!json_is_integer(a)) {
            vlist_add(&v, NULL, "maximumEventAgeInSeconds", "Member must be an integer");
        } else if (json_integer_value(a) < 60 || json_integer_value(a) > 21600) {
            snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(a));
            vlist_add(&v, val, "maximumEventAgeInSeconds", json_integer_value(a) < 60
                                                               ? "Member must have value greater than or equal to 60"
                                                               : "Member must have value less than or equal to 21600");
        }
    }
    json_t *dc = json_object_get(body, "DestinationConfig");
    static const char *const which[] = {"OnSuccess", "OnFailure"};
    static const char *const member[] = {"destinationConfig.onSuccess.destination",
                                         "destinationConfig.onFailure.destination"};
    for (int i = 0; i < 2 && json_is_object(dc); i++) {
        json_t *d = json_object_get(json_object_get(dc, which[i]), "Destination");
        if (!d || json_is_null(d))
            continue;
        const char *s = json_string_value(d);
        if (!s || strlen(s) > 350)
            vlist_add(&v, s, member[i], "Member must have length less than or equal to 350");
        else if (*s && !validate_match(s, PAT_DESTINATION))
            vlist_add(&v, s, member[i], "Member must satisfy regular expression pattern: " PAT_DESTINATION);
    }
    if (vlist_finish(&v, err))
        return -1;
    return 0;
}

/* The object holding the configurations in a writer's document copy. */
static json_t *doc_eic(json_t *doc)
{
    json_t *extras = json_object_get(doc, "extras");
    if (!extras) {
        extras = json_object();
        json_object_set_new(doc, "extras", extras);
    }
    json_t *eic = json_object_get(extras, "eic");
    if (!eic) {
        eic = json_object();
        json_object_set_new(extras, "eic", eic);
    }
    return eic;
}

struct eic_edit {
    const char *key;
    const char *arn;   /* the qualified FunctionArn */
    json_t *body;
    bool replace;      /* Put (replace) or Update (merge) */
    bool remove;
    json_t *result;
};

static double now_epoch(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)(tv.tv_usec / 1000) / 1000.0;
}

static json_t *dest_copy(json_t *dc, json_t *old)
{
    json_t *out = json_pack("{s:{},s:{}}", "OnSuccess", "OnFailure");
    static const char *const which[] = {"OnSuccess", "OnFailure"};
    for (int i = 0; i < 2; i++) {
        json_t *src = json_object_get(dc, which[i]);
        if (!src && old)
            src = json_object_get(old, which[i]);
        const char *d = api_jstr(src, "Destination");
        if (d && *d)
            json_object_set_new(json_object_get(out, which[i]), "Destination", json_string(d));
    }
    return out;
}

static int mutate_eic(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    struct eic_edit *e = ud;
    json_t *eic = doc_eic(doc);
    json_t *old = json_object_get(eic, e->key);
    if ((e->remove || !e->replace) && !old)
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, "The function %s doesn't have an EventInvokeConfig", e->arn);
    if (e->remove) {
        json_object_del(eic, e->key);
        return 0;
    }
    json_t *c = json_pack("{s:f,s:s}", "LastModified", now_epoch(), "FunctionArn", e->arn);
    static const char *const ints[] = {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(e->body, ints[i]);
        if (json_is_integer(v))
            json_object_set(c, ints[i], v);
        else if (!e->replace && json_object_get(old, ints[i]))
            json_object_set(c, ints[i], json_object_get(old, ints[i]));
    }
    json_object_set_new(c, "DestinationConfig",
                        dest_copy(json_object_get(e->body, "DestinationConfig"),
                                  e->replace ? NULL : json_object_get(old, "DestinationConfig")));
    json_object_set_new(eic, e->key, c);
    e->result = json_incref(c);
    return 0;
}

static void edit(struct http_req *req, bool replace, bool remove)
{
    struct api_error err;
    struct fn_name n;
    char arn[600];
    json_t *body = NULL;
    if (!remove && !(body = api_read_json_body(req)))
        return;
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        goto out;
    registry_record_unref(r);
    if (body && check_body(body, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    snprintf(arn, sizeof(arn), "arn:aws:lambda:%s:%s:function:%s:%s", n.region, n.account, n.name,
             eic_key(n.qualifier));
    struct eic_edit e = {.key = eic_key(n.qualifier), .arn = arn, .body = body, .replace = replace,
                         .remove = remove};
    if (registry_update(&n, mutate_eic, &e, NULL, 0, NULL, &err))
        http_send_api_error(req, &err);
    else if (remove)
        http_send_empty(req, 204);
    else
        http_send_jsont(req, 200, json_incref(e.result));
    json_decref(e.result);
out:
    json_decref(body);
}

void api_put_event_invoke_config(struct http_req *req)
{
    edit(req, true, false);
}

void api_update_event_invoke_config(struct http_req *req)
{
    edit(req, false, false);
}

void api_delete_event_invoke_config(struct http_req *req)
{
    edit(req, false, true);
}

static json_t *record_eic(const struct fn_record *r)
{
    json_t *extras = r->extras_json ? json_loads(r->extras_json, 0, NULL) : NULL;
    json_t *eic = json_incref(json_object_get(extras, "eic"));
    json_decref(extras);
    return eic ? eic : json_object();
}

void api_get_event_invoke_config(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        return;
    json_t *eic = record_eic(r);
    json_t *c = json_object_get(eic, eic_key(n.qualifier));
    if (c)
        http_send_jsont(req, 200, json_incref(c));
    else
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, "The function arn:aws:lambda:%s:%s:function:%s:%s doesn't "
                        "have an EventInvokeConfig", n.region, n.account, n.name, eic_key(n.qualifier));
    json_decref(eic);
    registry_record_unref(r);
}

void api_list_event_invoke_configs(struct http_req *req)
{
    struct fn_name n;
    long max, start;
    if (!api_max_items(req, LIST_MAX, LIST_MAX, &max) || !api_offset_marker(req, &start))
        return;
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, false, &n);
    if (!r)
        return;
    json_t *eic = record_eic(r);
    registry_record_unref(r);
    json_t *list = json_array(), *v;
    const char *k;
    long i = 0;
    bool more = false;
    json_object_foreach(eic, k, v) {
        if (i >= start && i < start + max)
            json_array_append(list, v);
        else if (i >= start + max)
            more = true;
        i++;
    }
    json_t *resp = json_pack("{s:o}", "FunctionEventInvokeConfigs", list);
    if (more) {
        char next[32];
        snprintf(next, sizeof(next), "%ld", start + max);
        json_object_set_new(resp, "NextMarker", json_string(next));
    }
    json_decref(eic);
    http_send_jsont(req, 200, resp);
}

/* --- applying it to Event invokes -------------------------------------- */

char *api_event_config_text(const struct fn_record *r, const char *qualifier)
{
    if (!r->extras_json || !strstr(r->extras_json, "\"eic\""))
        return NULL;
    json_t *eic = record_eic(r);
    json_t *c = json_object_get(eic, eic_key(!strcmp(qualifier, "$LATEST") ? "" : qualifier));
    char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(eic);
    return text;
}

struct event_dest {
    unsigned magic;
    char *on_success, *on_failure;
};

void api_event_configure(struct invocation *inv, char *text)
{
    json_t *c = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!c)
        return;
    json_t *r = json_object_get(c, "MaximumRetryAttempts"), *a = json_object_get(c, "MaximumEventAgeInSeconds");
    if (json_is_integer(r))
        inv->max_retries = (int)json_integer_value(r);
    if (json_is_integer(a))
        inv->max_event_age_s = (int)json_integer_value(a);
    json_t *dc = json_object_get(c, "DestinationConfig");
    const char *ok = api_jstr(json_object_get(dc, "OnSuccess"), "Destination");
    const char *fail = api_jstr(json_object_get(dc, "OnFailure"), "Destination");
    if ((ok && *ok) || (fail && *fail)) {
        struct event_dest *d = calloc(1, sizeof(*d));
        if (d) {
            d->magic = DEST_MAGIC;
            d->on_success = ok && *ok ? strdup(ok) : NULL;
            d->on_failure = fail && *fail ? strdup(fail) : NULL;
            inv->user = d;
        }
    }
    json_decref(c);
}

/* AWS's invocation record for a finished event. */
static char *invocation_record(const struct invocation *inv, const char *condition)
{
    char ts[40], arn[600];
    api_now_iso(ts, 3, "Z");
    const char *iarn = inv->invoked_arn ? inv->invoked_arn : inv->fn->arn;
    /* requestContext.functionArn is always qualified ($LATEST when the
     * invoke named none). */
    int colons = 0;
    for (const char *p = iarn; p && *p; p++)
        colons += *p == ':';
    snprintf(arn, sizeof(arn), "%s%s", iarn ? iarn : "", colons >= 7 ? "" : ":$LATEST");
    /* Bounded nesting before jansson's recursive parser (see http.h). */
    json_t *req_payload = inv->payload && !http_json_too_deep(inv->payload, inv->payload_len, 256)
                              ? json_loadb(inv->payload, inv->payload_len, JSON_DECODE_ANY, NULL)
                              : NULL;
    json_t *resp_payload = inv->result && !http_json_too_deep(inv->result, inv->result_len, 256)
                               ? json_loadb(inv->result, inv->result_len, JSON_DECODE_ANY, NULL)
                               : NULL;
    if (!resp_payload && inv->outcome != INV_OK)
        resp_payload = json_pack("{s:s,s:s}", "errorMessage",
                                 inv->error_message ? inv->error_message : "invocation failed", "errorType",
                                 "ServiceException");
    json_t *rc = json_pack("{s:i,s:s}", "statusCode", 200, "executedVersion",
                           inv->fn->version ? inv->fn->version : "$LATEST");
    if (inv->outcome != INV_OK)
        json_object_set_new(rc, "functionError", json_string("Unhandled"));
    json_t *rec = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:i},s:o,s:o,s:o}", "version", "1.0", "timestamp", ts,
                            "requestContext", "requestId", inv->request_id, "functionArn", arn, "condition",
                            condition, "approximateInvokeCount", inv->attempt + 1, "requestPayload",
                            req_payload ? req_payload : json_null(), "responseContext", rc, "responsePayload",
                            resp_payload ? resp_payload : json_null());
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return text;
}

static void on_dest_done(struct invocation *inv)
{
    LOG_INFO("destination invocation %s of %s finished: %s", inv->request_id, inv->fn->name,
             inv->outcome == INV_OK ? "success" : "error");
    invocation_free(inv);
}

static void send_to(const struct invocation *inv, const char *dest, const char *condition)
{
    if (!strstr(dest, ":lambda:") || !strstr(dest, ":function:")) {
        LOG_WARN("async invocation %s of %s: destination %s not delivered (lambdad delivers to Lambda "
                 "functions only)", inv->request_id, inv->fn->name, dest);
        return;
    }
    struct fn_name n;
    struct api_error err;
    rcu_read_lock();
    struct fn_record *r = registry_resolve(dest, NULL, FN_NAMESPACED_MAX, inv->fn->region, inv->fn->account, &n,
                                           &err);
    struct fn_spec *spec = r ? registry_spec_for(r, n.qualifier) : NULL;
    rcu_read_unlock();
    if (!spec) {
        LOG_WARN("async invocation %s of %s: destination %s does not exist; record dropped", inv->request_id,
                 inv->fn->name, dest);
        return;
    }
    struct invocation *d = invocation_new(spec);
    fnspec_unref(spec);
    char *payload = d ? invocation_record(inv, condition) : NULL;
    if (!payload) {
        invocation_free(d);
        return;
    }
    d->payload = payload;
    d->payload_len = strlen(payload);
    d->invoked_arn = strdup(dest);
    d->is_event = true;
    d->on_done = on_dest_done;
    pool_submit(d);
}

void api_event_deliver(struct invocation *inv)
{
    struct event_dest *d = inv->user;
    if (!d || d->magic != DEST_MAGIC)
        return;
    bool ok = inv->outcome == INV_OK;
    const char *dest = ok ? d->on_success : d->on_failure;
    if (dest)
        send_to(inv, dest, ok ? "Success" : inv->age_exceeded ? "EventAgeExceeded" : "RetriesExhausted");
    free(d->on_success);
    free(d->on_failure);
    free(d);
    inv->user = NULL;
}
