/* api_versions: function versions and aliases (see api_versions.h). */
#include "server/api_versions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_functions.h"
#include "server/registry.h"
#include "server/validate.h"

#define FN_NAME_MAX 140
#define FN_NAMESPACED_MAX 256
#define PAGE_MAX 50
#define ALIAS_NAME_MAX 128
#define DESCRIPTION_MAX 256
#define ALIAS_PATTERN "(?!^[0-9]+$)([a-zA-Z0-9-_]+)"

/* Reads ?MaxItems= (1..10000) into *max (capped at PAGE_MAX). Answers and
 * returns -1 when invalid. */
static int query_max_items(struct http_req *req, size_t *max)
{
    char maxs[32];
    *max = PAGE_MAX;
    int ql = http_query(req, "MaxItems", maxs, sizeof(maxs));
    if (ql == -1)
        return 0;
    char *end;
    long m = ql >= 0 ? strtol(maxs, &end, 10) : 0;
    if (ql < 0 || !maxs[0] || *end || m < 1 || m > 10000) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value '%s' at 'maxItems' "
                        "failed to satisfy constraint: Member must have value %s", ql >= 0 ? maxs : "",
                        m < 1 ? "greater than or equal to 1" : "less than or equal to 10000");
        return -1;
    }
    if ((size_t)m < *max)
        *max = (size_t)m;
    return 0;
}

/* Checks an optional string member's type and maximum length. */
static int check_string(json_t *body, const char *member, const char *field, size_t max,
                        struct api_error *err)
{
    json_t *v = json_object_get(body, member);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value at '%s' failed to "
                        "satisfy constraint: Member must be a string", field);
    if (max && json_string_length(v) > max)
        return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value '%s' at '%s' failed to "
                        "satisfy constraint: Member must have length less than or equal to %zu",
                        json_string_value(v), field, max);
    return 0;
}

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

static void alias_arn(const struct fn_record *r, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s:%s", r->arn, name);
}

/* --- versions ---------------------------------------------------------- */

struct publish {
    json_t *body;
    char ver[24];
};

static int mutate_publish(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    struct publish *p = ud;
    const char *rev = json_string_value(json_object_get(p->body, "RevisionId"));
    const char *sha = json_string_value(json_object_get(p->body, "CodeSha256"));
    const char *have = json_string_value(json_object_get(json_object_get(doc, "configuration"), "CodeSha256"));
    if (rev && (!cur->revision_id || strcmp(rev, cur->revision_id)))
        return api_fail(err, &AWS_PRECONDITION_FAILED, MSG_REVISION_MISMATCH);
    if (sha && *sha && (!have || strcmp(sha, have)))
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "CodeSHA256 (%s) is different from current "
                        "CodeSHA256 in $LATEST (%s). Please try again with the CodeSHA256 in $LATEST.",
                        sha, have ? have : "");
    return api_publish_doc(doc, json_string_value(json_object_get(p->body, "Description")), p->ver);
}

void api_publish_version(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    struct fn_record *out = NULL;
    struct publish p = {.ver = ""};
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *cur = api_resolve_ref(req, FN_NAME_MAX, false, &n);
    if (!cur)
        goto done;
    registry_record_unref(cur);
    if (check_string(body, "Description", "description", DESCRIPTION_MAX, &err) ||
        check_string(body, "CodeSha256", "codeSha256", 0, &err) ||
        check_string(body, "RevisionId", "revisionId", 0, &err))
        goto fail;
    p.body = body;
    if (registry_update(&n, mutate_publish, &p, NULL, 0, &out, &err))
        goto fail;
    const struct fn_version *v = registry_version(out, p.ver);
    if (v)
        http_send_json(req, 201, v->config_json, v->config_len);
    else
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "published version vanished");
    registry_record_unref(out);
    goto done;
fail:
    http_send_api_error(req, &err);
done:
    json_decref(body);
}

void api_list_versions(struct http_req *req)
{
    struct fn_name n;
    char marker[160];
    size_t max;
    if (query_max_items(req, &max))
        return;
    int ml = http_query(req, "Marker", marker, sizeof(marker));
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, false, &n);
    if (!r)
        return;
    /* Item 0 is $LATEST, item i > 0 is versions[i - 1]; the marker is the
     * Version of the last item sent. */
    size_t start = 0, total = r->n_versions + 1;
    if (ml > 0) {
        if (!strcmp(marker, "$LATEST")) {
            start = 1;
        } else if (all_digits(marker)) {
            long after = strtol(marker, NULL, 10);
            for (start = 1; start < total && r->versions[start - 1].number <= after; start++)
                ;
        }
    }
    size_t end = start + max < total ? start + max : total;
    size_t cap = 64 + r->latest_q_len;
    for (size_t i = 0; i < r->n_versions; i++)
        cap += r->versions[i].config_len + 1;
    char *out = malloc(cap);
    if (!out) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
        registry_record_unref(r);
        return;
    }
    size_t len = (size_t)snprintf(out, cap, "{\"Versions\":[");
    for (size_t i = start; i < end; i++) {
        const char *t = i ? r->versions[i - 1].config_json : r->latest_q_json;
        size_t tl = i ? r->versions[i - 1].config_len : r->latest_q_len;
        if (i > start)
            out[len++] = ',';
        memcpy(out + len, t, tl);
        len += tl;
    }
    len += (size_t)snprintf(out + len, cap - len, "]");
    if (end < total && end > start)
        len += (size_t)snprintf(out + len, cap - len, ",\"NextMarker\":\"%s\"",
                                end - 1 ? r->versions[end - 2].version : "$LATEST");
    len += (size_t)snprintf(out + len, cap - len, "}");
    http_send_json(req, 200, out, len);
    free(out);
    registry_record_unref(r);
}

/* --- aliases ----------------------------------------------------------- */

static int check_alias_name(const char *name, struct api_error *err)
{
    size_t len = strlen(name);
    if (len > ALIAS_NAME_MAX)
        return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value '%s' at 'name' failed "
                        "to satisfy constraint: Member must have length less than or equal to %d", name,
                        ALIAS_NAME_MAX);
    if (!len || all_digits(name) ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != len)
        return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value '%s' at 'name' failed "
                        "to satisfy constraint: Member must satisfy regular expression pattern: "
                        ALIAS_PATTERN, name);
    return 0;
}

static int check_version_shape(const char *v, struct api_error *err)
{
    if (strlen(v) > 1024)
        return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value '%.64s...' at "
                        "'functionVersion' failed to satisfy constraint: Member must have length less "
                        "than or equal to 1024", v);
    if (strcmp(v, "$LATEST") && !all_digits(v))
        return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value '%s' at "
                        "'functionVersion' failed to satisfy constraint: Member must satisfy regular "
                        "expression pattern: (\\$LATEST|[0-9]+)", v);
    return 0;
}

/* Shape checks of a CreateAlias / UpdateAlias body. */
static int check_alias_body(json_t *body, bool create, struct api_error *err)
{
    json_t *fv = json_object_get(body, "FunctionVersion");
    if (create && (!fv || json_is_null(fv)))
        return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value null at "
                        "'functionVersion' failed to satisfy constraint: Member must not be null");
    if (check_string(body, "FunctionVersion", "functionVersion", 0, err) ||
        check_string(body, "Description", "description", DESCRIPTION_MAX, err) ||
        check_string(body, "RevisionId", "revisionId", 0, err) ||
        (json_is_string(fv) && check_version_shape(json_string_value(fv), err)))
        return -1;
    json_t *rc = json_object_get(body, "RoutingConfig");
    if (!rc || json_is_null(rc))
        return 0;
    json_t *w = json_object_get(rc, "AdditionalVersionWeights");
    if (!json_is_object(rc) || (w && !json_is_null(w) && !json_is_object(w)))
        return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value at 'routingConfig' "
                        "failed to satisfy constraint: Member must be a structure");
    const char *k;
    json_t *x;
    json_object_foreach(w, k, x) {
        if (!all_digits(k) || strlen(k) > 1024)
            return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value '%s' at "
                            "'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys "
                            "must satisfy constraint: [Member must satisfy regular expression pattern: "
                            "[0-9]+]", k);
        if (!json_is_number(x) || json_number_value(x) < 0.0 || json_number_value(x) > 1.0)
            return api_fail(err, &AWS_VALIDATION, "1 validation error detected: Value at "
                            "'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map "
                            "value must satisfy constraint: [Member must have value less than or equal to "
                            "1.0, Member must have value greater than or equal to 0.0]");
    }
    if (json_object_size(w) > 1)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Number of items in AdditionalVersionWeights "
                        "cannot be greater than 1");
    return 0;
}

struct alias_op {
    json_t *body;
    const char *name;
    bool create;
};

static json_t *find_alias(json_t *aliases, const char *name, size_t *idx)
{
    size_t i;
    json_t *e;
    json_array_foreach(aliases, i, e) {
        const char *nm = json_string_value(json_object_get(e, "Name"));
        if (nm && !strcmp(nm, name)) {
            *idx = i;
            return e;
        }
    }
    return NULL;
}

static int version_exists(const struct fn_record *cur, const char *ver, struct api_error *err)
{
    if (!strcmp(ver, "$LATEST") || registry_version(cur, ver))
        return 0;
    char arn[600];
    snprintf(arn, sizeof(arn), "%s:%s", cur->arn, ver);
    return api_fail(err, &AWS_RESOURCE_NOT_FOUND, MSG_FUNCTION_NOT_FOUND, arn);
}

static int mutate_alias(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    struct alias_op *op = ud;
    char arn[600], rev[37];
    size_t idx = 0;
    alias_arn(cur, op->name, arn, sizeof(arn));
    json_t *aliases = json_object_get(doc, "aliases");
    if (!json_is_array(aliases)) {
        aliases = json_array();
        json_object_set_new(doc, "aliases", aliases);
    }
    json_t *old = find_alias(aliases, op->name, &idx);
    if (op->create && old)
        return api_fail(err, &AWS_RESOURCE_CONFLICT, "Alias already exists: %s", arn);
    if (!op->create && !old)
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, "Cannot find alias arn: %s", arn);
    const char *want_rev = json_string_value(json_object_get(op->body, "RevisionId"));
    if (old && want_rev && strcmp(want_rev, json_string_value(json_object_get(old, "RevisionId")) ?
                                                json_string_value(json_object_get(old, "RevisionId")) : ""))
        return api_fail(err, &AWS_PRECONDITION_FAILED, MSG_REVISION_MISMATCH);
    const char *ver = json_string_value(json_object_get(op->body, "FunctionVersion"));
    if (!ver)
        ver = json_string_value(json_object_get(old, "FunctionVersion"));
    if (!ver || version_exists(cur, ver, err))
        return ver ? -1 : api_fail(err, &AWS_SERVICE, "alias without a version");
    json_t *desc = json_object_get(op->body, "Description");
    if (!json_is_string(desc))
        desc = old ? json_object_get(old, "Description") : NULL;
    json_t *rc = json_object_get(op->body, "RoutingConfig");
    if (!json_is_object(rc))
        rc = old ? json_object_get(old, "RoutingConfig") : NULL;
    json_t *weights = json_object_get(rc, "AdditionalVersionWeights");
    const char *k;
    json_t *w;
    json_object_foreach(weights, k, w) {
        if (!strcmp(ver, "$LATEST"))
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "$LATEST is not supported for an alias "
                            "pointing to more than 1 version");
        if (!strcmp(k, ver))
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Invalid function version %s. Function "
                            "version %s is already included in routing configuration.", k, k);
        if (version_exists(cur, k, err))
            return -1;
    }
    http_uuid4(rev);
    json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s}", "AliasArn", arn, "Name", op->name, "FunctionVersion", ver,
                          "Description", json_is_string(desc) ? json_string_value(desc) : "", "RevisionId", rev);
    if (json_object_size(weights))
        json_object_set_new(e, "RoutingConfig", json_pack("{s:O}", "AdditionalVersionWeights", weights));
    if (old)
        json_array_set_new(aliases, idx, e);
    else
        json_array_append_new(aliases, e);
    return 0;
}

static void send_alias(struct http_req *req, int status, const struct fn_record *r, const char *name)
{
    const struct fn_alias *a = registry_alias(r, name);
    if (a)
        http_send_json(req, status, a->json, a->json_len);
    else
        http_send_error(req, &AWS_SERVICE, MSG_INTERNAL, "alias vanished");
}

/* CreateAlias and UpdateAlias. */
static void alias_write(struct http_req *req, bool create)
{
    struct api_error err;
    struct fn_name n;
    struct fn_record *out = NULL;
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *cur = api_resolve_ref(req, FN_NAME_MAX, false, &n);
    if (!cur)
        goto done;
    registry_record_unref(cur);
    const char *name = create ? json_string_value(json_object_get(body, "Name")) : http_param(req, 1);
    if (create && !json_is_string(json_object_get(body, "Name"))) {
        api_fail(&err, &AWS_VALIDATION, "1 validation error detected: Value null at 'name' failed to "
                 "satisfy constraint: Member must not be null");
        goto fail;
    }
    if (check_alias_name(name ? name : "", &err) || check_alias_body(body, create, &err))
        goto fail;
    struct alias_op op = {body, name, create};
    if (registry_update(&n, mutate_alias, &op, NULL, 0, &out, &err))
        goto fail;
    send_alias(req, create ? 201 : 200, out, name);
    registry_record_unref(out);
    goto done;
fail:
    http_send_api_error(req, &err);
done:
    json_decref(body);
}

void api_create_alias(struct http_req *req)
{
    alias_write(req, true);
}

void api_update_alias(struct http_req *req)
{
    alias_write(req, false);
}

void api_get_alias(struct http_req *req)
{
    struct fn_name n;
    struct api_error err;
    const char *name = http_param(req, 1) ? http_param(req, 1) : "";
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, false, &n);
    if (!r)
        return;
    const struct fn_alias *a = registry_alias(r, name);
    if (a) {
        http_send_json(req, 200, a->json, a->json_len);
    } else if (check_alias_name(name, &err)) {
        http_send_api_error(req, &err);
    } else {
        char arn[600];
        alias_arn(r, name, arn, sizeof(arn));
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, "Cannot find alias arn: %s", arn);
    }
    registry_record_unref(r);
}

void api_list_aliases(struct http_req *req)
{
    struct fn_name n;
    char marker[160], fv[1100];
    size_t max;
    if (query_max_items(req, &max))
        return;
    int ml = http_query(req, "Marker", marker, sizeof(marker));
    int fl = http_query(req, "FunctionVersion", fv, sizeof(fv));
    struct api_error err;
    if (fl == -2 || (fl >= 0 && check_version_shape(fv, &err))) {
        if (fl == -2)
            api_fail(&err, &AWS_VALIDATION, "1 validation error detected: Value at 'functionVersion' failed "
                     "to satisfy constraint: Member must have length less than or equal to 1024");
        http_send_api_error(req, &err);
        return;
    }
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, false, &n);
    if (!r)
        return;
    size_t cap = 64, len, sent = 0;
    for (size_t i = 0; i < r->n_aliases; i++)
        cap += r->aliases[i].json_len + 1;
    cap += ALIAS_NAME_MAX + 32;
    char *out = malloc(cap);
    if (!out) {
        http_send_error(req, &AWS_SERVICE, "out of memory");
        registry_record_unref(r);
        return;
    }
    len = (size_t)snprintf(out, cap, "{\"Aliases\":[");
    const char *last = NULL;
    bool more = false;
    for (size_t i = 0; i < r->n_aliases; i++) {
        const struct fn_alias *a = &r->aliases[i];
        if ((ml > 0 && strcmp(a->name, marker) <= 0) || (fl >= 0 && strcmp(a->version, fv)))
            continue;
        if (sent == max) {
            more = true;
            break;
        }
        if (sent++)
            out[len++] = ',';
        memcpy(out + len, a->json, a->json_len);
        len += a->json_len;
        last = a->name;
    }
    len += (size_t)snprintf(out + len, cap - len, "]");
    if (more && last)
        len += (size_t)snprintf(out + len, cap - len, ",\"NextMarker\":\"%s\"", last);
    len += (size_t)snprintf(out + len, cap - len, "}");
    http_send_json(req, 200, out, len);
    free(out);
    registry_record_unref(r);
}

static int mutate_alias_delete(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    (void)err;
    size_t idx;
    json_t *aliases = json_object_get(doc, "aliases");
    if (find_alias(aliases, ud, &idx)) {
        json_array_remove(aliases, idx);
        api_forget_qualifier(doc, ud);
    }
    return 0;
}

void api_delete_alias(struct http_req *req)
{
    struct fn_name n;
    struct api_error err;
    const char *name = http_param(req, 1) ? http_param(req, 1) : "";
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, false, &n);
    if (!r)
        return;
    bool exists = registry_alias(r, name) != NULL;
    registry_record_unref(r);
    if (check_alias_name(name, &err) ||
        (exists && registry_update(&n, mutate_alias_delete, (void *)name, NULL, 0, NULL, &err))) {
        http_send_api_error(req, &err);
        return;
    }
    http_send_empty(req, 204); /* idempotent, like the service */
}
