/* api_esm: event source mappings (see api_esm.h). */
#include "server/api_esm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <urcu.h>

#include "server/api_functions.h"
#include "server/registry.h"
#include "server/resstore.h"
#include "server/validate.h"

#define FN_NAMESPACED_MAX 256
#define PAT_ARN "arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)"

static struct resstore *g_store;

int api_esm_init(const struct persist *parent)
{
    return resstore_open(&g_store, parent, "event-source-mappings");
}

void api_esm_shutdown(void)
{
    resstore_close(g_store);
    g_store = NULL;
}

static double now_epoch(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)(tv.tv_usec / 1000) / 1000.0;
}

enum source { SRC_SQS, SRC_KINESIS, SRC_DYNAMODB, SRC_KAFKA, SRC_MQ, SRC_DOCDB, SRC_SELF_KAFKA, SRC_UNKNOWN };

static enum source source_of(const char *arn)
{
    if (!arn)
        return SRC_SELF_KAFKA;
    const char *svc = strchr(arn, ':');
    svc = svc ? strchr(svc + 1, ':') : NULL;
    if (!svc)
        return SRC_UNKNOWN;
    svc++;
    if (!strncmp(svc, "sqs:", 4))
        return SRC_SQS;
    if (!strncmp(svc, "kinesis:", 8))
        return SRC_KINESIS;
    if (!strncmp(svc, "dynamodb:", 9))
        return strstr(arn, "/stream/") ? SRC_DYNAMODB : SRC_UNKNOWN;
    if (!strncmp(svc, "kafka:", 6))
        return SRC_KAFKA;
    if (!strncmp(svc, "mq:", 3))
        return SRC_MQ;
    if (!strncmp(svc, "rds:", 4))
        return SRC_DOCDB;
    return SRC_UNKNOWN;
}

static bool is_stream(enum source s)
{
    return s == SRC_KINESIS || s == SRC_DYNAMODB || s == SRC_KAFKA || s == SRC_SELF_KAFKA || s == SRC_DOCDB;
}

static void store_id(const char *region, const char *account, const char *uuid, char *out, size_t len)
{
    snprintf(out, len, "%s.%s.%s", region, account, uuid);
}

/* Range checks of the integer members (collected, AWS's texts). */
static void check_int(json_t *body, const char *key, const char *member, long long min, long long max,
                      struct vlist *v)
{
    json_t *j = json_object_get(body, key);
    char val[32], what[96];
    if (!j || json_is_null(j))
        return;
    if (!json_is_integer(j)) {
        vlist_add(v, NULL, member, "Member must be an integer");
        return;
    }
    long long x = (long long)json_integer_value(j);
    snprintf(val, sizeof(val), "%lld", x);
    if (x < min) {
        snprintf(what, sizeof(what), "Member must have value greater than or equal to %lld", min);
        vlist_add(v, val, member, what);
    } else if (x > max) {
        snprintf(what, sizeof(what), "Member must have value less than or equal to %lld", max);
        vlist_add(v, val, member, what);
    }
}

static int check_shape(json_t *body, bool create, struct api_error *err)
{
    struct vlist v;
    vlist_init(&v);
    if (create) {
        json_t *fn = json_object_get(body, "FunctionName");
        if (!json_is_string(fn))
            vlist_add(&v, NULL, "functionName", "Member must not be null");
        const char *arn = api_jstr(body, "EventSourceArn");
        if (arn && !validate_match(arn, PAT_ARN))
            vlist_add(&v, arn, "eventSourceArn", "Member must satisfy regular expression pattern: " PAT_ARN);
        const char *sp = api_jstr(body, "StartingPosition");
        if (sp && strcmp(sp, "TRIM_HORIZON") && strcmp(sp, "LATEST") && strcmp(sp, "AT_TIMESTAMP"))
            vlist_add(&v, sp, "startingPosition", "Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, "
                      "TRIM_HORIZON]");
    }
    check_int(body, "BatchSize", "batchSize", 1, 10000, &v);
    check_int(body, "MaximumBatchingWindowInSeconds", "maximumBatchingWindowInSeconds", 0, 300, &v);
    check_int(body, "ParallelizationFactor", "parallelizationFactor", 1, 10, &v);
    check_int(body, "MaximumRecordAgeInSeconds", "maximumRecordAgeInSeconds", -1, 604800, &v);
    check_int(body, "MaximumRetryAttempts", "maximumRetryAttempts", -1, 10000, &v);
    check_int(body, "TumblingWindowInSeconds", "tumblingWindowInSeconds", 0, 900, &v);
    json_t *en = json_object_get(body, "Enabled");
    if (en && !json_is_null(en) && !json_is_boolean(en))
        vlist_add(&v, NULL, "enabled", "Member must be a boolean");
    return vlist_finish(&v, err);
}

/* The per-source rules on the merged configuration. */
static int check_source_rules(json_t *c, enum source src, struct api_error *err)
{
    long long batch = (long long)json_integer_value(json_object_get(c, "BatchSize"));
    long long window = (long long)json_integer_value(json_object_get(c, "MaximumBatchingWindowInSeconds"));
    const char *arn = api_jstr(c, "EventSourceArn");
    if (src == SRC_SQS) {
        if (json_object_get(c, "StartingPosition"))
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "StartingPosition is not valid for SQS event sources.");
        if (arn && strlen(arn) > 5 && !strcmp(arn + strlen(arn) - 5, ".fifo") && batch > 10)
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Batch size for FIFO queues must be between 1 and 10.");
        if (batch > 10 && window < 1)
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Maximum batch window in seconds must be greater "
                            "than 0 if maximum batch size is greater than 10");
    } else if (is_stream(src) && src != SRC_DOCDB && !json_object_get(c, "StartingPosition")) {
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "1 validation error detected: Value null at "
                        "'startingPosition' failed to satisfy constraint: Member must not be null.");
    }
    if (src == SRC_DYNAMODB && batch > 10000)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "BatchSize must be between 1 and 10000.");
    return 0;
}

/* The FunctionArn a FunctionName names (qualified when it has one), or -1
 * with the error answered. */
static int function_arn_of(struct http_req *req, const char *fname, char *arn, size_t len, struct fn_name *n)
{
    struct fn_record *r = api_resolve_name(req, fname, NULL, FN_NAMESPACED_MAX, n);
    if (!r)
        return -1;
    registry_record_unref(r);
    validate_function_arn(n, n->qualifier[0] != 0, arn, len);
    return 0;
}

static const char *const COPY_KEYS[] = {
    "BatchSize", "MaximumBatchingWindowInSeconds", "ParallelizationFactor", "StartingPosition",
    "StartingPositionTimestamp", "FilterCriteria", "DestinationConfig", "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError", "MaximumRetryAttempts", "TumblingWindowInSeconds", "Topics", "Queues",
    "SourceAccessConfigurations", "SelfManagedEventSource", "FunctionResponseTypes",
    "AmazonManagedKafkaEventSourceConfig", "SelfManagedKafkaEventSourceConfig", "ScalingConfig",
    "DocumentDBEventSourceConfig", "KMSKeyArn", "MetricsConfig", "LoggingConfig", "ProvisionedPollerConfig", NULL};

static void copy_members(json_t *dst, json_t *body)
{
    for (size_t i = 0; COPY_KEYS[i]; i++) {
        json_t *v = json_object_get(body, COPY_KEYS[i]);
        if (v && !json_is_null(v))
            json_object_set(dst, COPY_KEYS[i], v);
    }
}

/* The response: the stored document with State replaced by the transient
 * state when given, without lambdad's private members. */
static void send_mapping(struct http_req *req, int status, json_t *doc, const char *transient)
{
    json_t *o = json_deep_copy(doc);
    json_object_del(o, "Enabled");
    if (transient)
        json_object_set_new(o, "State", json_string(transient));
    http_send_jsont(req, status, o);
}

void api_create_esm(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    char farn[600], id[200], uuid[37], esm_arn[300];
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    if (check_shape(body, true, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    if (function_arn_of(req, api_jstr(body, "FunctionName"), farn, sizeof(farn), &n))
        goto out;
    const char *src_arn = api_jstr(body, "EventSourceArn");
    enum source src = source_of(src_arn);
    if (src == SRC_UNKNOWN || (src == SRC_SELF_KAFKA && !json_object_get(body, "SelfManagedEventSource"))) {
        http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Unrecognized event source, must be kinesis, dynamodb "
                        "stream, sqs, msk, mq, documentdb or a self-managed Kafka cluster.");
        goto out;
    }
    /* One mapping per (source, function). */
    json_t *all = resstore_all(g_store), *e;
    size_t i;
    json_array_foreach(all, i, e) {
        if (src_arn && api_jstr(e, "EventSourceArn") && !strcmp(api_jstr(e, "EventSourceArn"), src_arn) &&
            api_jstr(e, "FunctionArn") && !strcmp(api_jstr(e, "FunctionArn"), farn)) {
            http_send_error(req, &AWS_RESOURCE_CONFLICT, "An event source mapping with %s arn (\" %s \") and "
                            "function (\" %s \") already exists. Please update or delete the existing mapping "
                            "with UUID %s", src == SRC_SQS ? "SQS" : "event source", src_arn, n.name,
                            api_jstr(e, "UUID"));
            json_decref(all);
            goto out;
        }
    }
    json_decref(all);
    http_uuid4(uuid);
    snprintf(esm_arn, sizeof(esm_arn), "arn:aws:lambda:%s:%s:event-source-mapping:%s", n.region, n.account, uuid);
    json_t *c = json_pack("{s:s}", "UUID", uuid);
    json_object_set_new(c, "BatchSize", json_integer(src == SRC_SQS ? 10 : 100));
    json_object_set_new(c, "MaximumBatchingWindowInSeconds", json_integer(0));
    if (is_stream(src) && src != SRC_DOCDB && src != SRC_KAFKA && src != SRC_SELF_KAFKA) {
        json_object_set_new(c, "ParallelizationFactor", json_integer(1));
        json_object_set_new(c, "MaximumRecordAgeInSeconds", json_integer(-1));
        json_object_set_new(c, "BisectBatchOnFunctionError", json_false());
        json_object_set_new(c, "MaximumRetryAttempts", json_integer(-1));
        json_object_set_new(c, "TumblingWindowInSeconds", json_integer(0));
        json_object_set_new(c, "DestinationConfig", json_pack("{s:{}}", "OnFailure"));
    }
    copy_members(c, body);
    if (src_arn)
        json_object_set_new(c, "EventSourceArn", json_string(src_arn));
    json_object_set_new(c, "FunctionArn", json_string(farn));
    json_object_set_new(c, "LastModified", json_real(now_epoch()));
    if (is_stream(src))
        json_object_set_new(c, "LastProcessingResult", json_string("No records processed"));
    bool enabled = !json_is_false(json_object_get(body, "Enabled"));
    json_object_set_new(c, "State", json_string(enabled ? "Enabled" : "Disabled"));
    json_object_set_new(c, "StateTransitionReason", json_string("USER_INITIATED"));
    if (!json_object_get(c, "FunctionResponseTypes"))
        json_object_set_new(c, "FunctionResponseTypes", json_array());
    json_object_set_new(c, "EventSourceMappingArn", json_string(esm_arn));
    if (check_source_rules(c, src, &err)) {
        http_send_api_error(req, &err);
        json_decref(c);
        goto out;
    }
    store_id(n.region, n.account, uuid, id, sizeof(id));
    if (resstore_put(g_store, id, c))
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "cannot store the event source mapping");
    else
        send_mapping(req, 202, c, "Creating");
    json_decref(c);
out:
    json_decref(body);
}

/* The stored mapping of the {UUID} path parameter, or NULL after answering. */
static json_t *lookup(struct http_req *req, char *id, size_t idlen)
{
    const char *uuid = http_param(req, 0);
    if (!uuid || strlen(uuid) != 36 || strspn(uuid, "0123456789abcdefABCDEF-") != 36) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
        return NULL;
    }
    store_id(req->region, req->account, uuid, id, idlen);
    json_t *c = resstore_get(g_store, id);
    if (!c)
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
    return c;
}

void api_get_esm(struct http_req *req)
{
    char id[200];
    json_t *c = lookup(req, id, sizeof(id));
    if (c)
        send_mapping(req, 200, c, NULL);
    json_decref(c);
}

void api_update_esm(struct http_req *req)
{
    struct api_error err;
    char id[200], farn[600];
    struct fn_name n;
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    json_t *c = lookup(req, id, sizeof(id));
    if (!c)
        goto out;
    if (check_shape(body, false, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    const char *fname = api_jstr(body, "FunctionName");
    if (fname) {
        if (function_arn_of(req, fname, farn, sizeof(farn), &n))
            goto out;
        json_object_set_new(c, "FunctionArn", json_string(farn));
    }
    copy_members(c, body);
    json_object_del(c, "StartingPosition"); /* not updatable: keep the stored one */
    json_t *orig = resstore_get(g_store, id);
    if (json_object_get(orig, "StartingPosition"))
        json_object_set(c, "StartingPosition", json_object_get(orig, "StartingPosition"));
    json_decref(orig);
    json_t *en = json_object_get(body, "Enabled");
    if (json_is_boolean(en))
        json_object_set_new(c, "State", json_string(json_is_true(en) ? "Enabled" : "Disabled"));
    json_object_set_new(c, "LastModified", json_real(now_epoch()));
    if (check_source_rules(c, source_of(api_jstr(c, "EventSourceArn")), &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    if (resstore_put(g_store, id, c))
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "cannot store the event source mapping");
    else
        send_mapping(req, 202, c, "Updating");
out:
    json_decref(c);
    json_decref(body);
}

void api_delete_esm(struct http_req *req)
{
    char id[200];
    json_t *c = lookup(req, id, sizeof(id));
    if (!c)
        return;
    int rc = resstore_remove(g_store, id);
    if (rc == -ENOENT)
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
    else if (rc)
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "cannot remove the event source mapping");
    else
        send_mapping(req, 202, c, "Deleting");
    json_decref(c);
}

void api_list_esms(struct http_req *req)
{
    char fname[300], src[2100], farn[600], prefix[64];
    struct fn_name n;
    long max, start;
    int fl = http_query(req, "FunctionName", fname, sizeof(fname));
    int sl = http_query(req, "EventSourceArn", src, sizeof(src));
    if (!api_max_items(req, 100, 10000, &max) || !api_offset_marker(req, &start))
        return;
    if (fl > 0 && function_arn_of(req, fname, farn, sizeof(farn), &n))
        return;
    snprintf(prefix, sizeof(prefix), "arn:aws:lambda:%s:%s:", req->region, req->account);
    json_t *all = resstore_all(g_store), *e, *list = json_array();
    size_t i;
    long k = 0;
    bool more = false;
    json_array_foreach(all, i, e) {
        const char *ea = api_jstr(e, "EventSourceMappingArn"), *fa = api_jstr(e, "FunctionArn");
        if (!ea || strncmp(ea, prefix, strlen(prefix)))
            continue;
        if (fl > 0 && (!fa || strcmp(fa, farn)))
            continue;
        if (sl > 0 && (!api_jstr(e, "EventSourceArn") || strcmp(api_jstr(e, "EventSourceArn"), src)))
            continue;
        if (k >= start && k < start + max) {
            json_t *o = json_deep_copy(e);
            json_object_del(o, "Enabled");
            json_array_append_new(list, o);
        } else if (k >= start + max) {
            more = true;
        }
        k++;
    }
    json_decref(all);
    json_t *resp = json_pack("{s:o}", "EventSourceMappings", list);
    if (more) {
        char next[32];
        snprintf(next, sizeof(next), "%ld", start + max);
        json_object_set_new(resp, "NextMarker", json_string(next));
    }
    http_send_jsont(req, 200, resp);
}
