/* api_policy: resource-based policies (see api_policy.h). */
#include "server/api_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>

#include "server/api_functions.h"
#include "server/api_layers.h"
#include "server/layers.h"
#include "server/registry.h"
#include "server/validate.h"

#define FN_NAMESPACED_MAX 256
#define POLICY_MAX 20480

static const struct aws_error AWS_POLICY_LENGTH = {"PolicyLengthExceededException", 400, true, false};

#define PAT_SID "([a-zA-Z0-9-_]+)"
#define PAT_NS_SID "([a-zA-Z0-9-_.]+)"
#define PAT_ACTION "(lambda:[*]|lambda:[a-zA-Z]+|[*])"
#define PAT_PRINCIPAL "[^\\s]+"
#define PAT_SOURCE_ARN "arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)"
#define PAT_ACCOUNT "\\d{12}"
#define PAT_TOKEN "[a-zA-Z0-9._\\-]+"
#define PAT_ORG "o-[a-z0-9]{10,32}"
#define PAT_QUALIFIER "\\$(LATEST(\\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"
#define PAT_LAYER_ACTION "lambda:GetLayerVersion"
/* The model's PolicyResourceArn (max 512). */
#define PAT_RESOURCE_ARN                                                                           \
    "arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:"     \
    "(function:[a-zA-Z0-9-_]+(:(\\$LATEST(\\.PUBLISHED)?|[a-zA-Z0-9-_])+)?|runtime/[a-zA-Z0-9-_./]+)"
#define RESOURCE_ARN_MAX 512
#define PAT_LAYER_PRINCIPAL "\\d{12}|\\*|arn:(aws[a-zA-Z-]*):iam::\\d{12}:root"

#define MSG_SID_EXISTS                                                                             \
    "The statement id (%s) provided already exists. Please choose a new statement id, or remove "  \
    "the existing statement."
#define MSG_POLICY_REVISION                                                                        \
    "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to "   \
    "retrieve the latest Revision Id"
#define MSG_RESOURCE_POLICY_REVISION                                                               \
    "The Revision Id provided does not match the latest Revision Id. Call the GetResourcePolicy "  \
    "API to retrieve the latest Revision Id"
#define MSG_LAYER_POLICY_REVISION                                                                  \
    "The Revision Id provided does not match the latest Revision Id. Call the "                    \
    "GetLayerVersionPolicy API to retrieve the latest Revision Id"

/* --- shapes ------------------------------------------------------------- */

/* Checks an optional (or required) string member against length bounds
 * and a pattern, adding violations to v. */
static void check_str(json_t *body, const char *key, const char *member, bool required, size_t min,
                      size_t max, const char *pattern, struct vlist *v)
{
    json_t *j = json_object_get(body, key);
    char what[600];
    if (!j || json_is_null(j)) {
        if (required)
            vlist_add(v, NULL, member, "Member must not be null");
        return;
    }
    if (!json_is_string(j)) {
        vlist_add(v, NULL, member, "Member must be a string");
        return;
    }
    const char *s = json_string_value(j);
    size_t len = strlen(s);
    if (min && len < min) {
        snprintf(what, sizeof(what), "Member must have length greater than or equal to %zu", min);
        vlist_add(v, s, member, what);
    } else if (max && len > max) {
        snprintf(what, sizeof(what), "Member must have length less than or equal to %zu", max);
        vlist_add(v, s, member, what);
    } else if (pattern && (len || min) && !validate_match(s, pattern)) {
        snprintf(what, sizeof(what), "Member must satisfy regular expression pattern: %s", pattern);
        vlist_add(v, s, member, what);
    }
}

/* The Principal element AWS writes for a principal string, or NULL when it
 * is not one AWS accepts. */
static json_t *principal_json(const char *p)
{
    if (!strcmp(p, "*"))
        return json_string("*");
    if (strlen(p) == 12 && strspn(p, "0123456789") == 12) {
        char arn[64];
        snprintf(arn, sizeof(arn), "arn:aws:iam::%s:root", p);
        return json_pack("{s:s}", "AWS", arn);
    }
    if (!strncmp(p, "arn:aws", 7) && strstr(p, ":iam::"))
        return json_pack("{s:s}", "AWS", p);
    if (strchr(p, '.') && !strchr(p, ':') && !strchr(p, '/'))
        return json_pack("{s:s}", "Service", p);
    return NULL;
}

/* Adds Condition[op][key] = value. */
static void add_condition(json_t *stmt, const char *op, const char *key, json_t *value)
{
    json_t *cond = json_object_get(stmt, "Condition");
    if (!cond) {
        cond = json_object();
        json_object_set_new(stmt, "Condition", cond);
    }
    json_t *o = json_object_get(cond, op);
    if (!o) {
        o = json_object();
        json_object_set_new(cond, op, o);
    }
    json_object_set_new(o, key, value);
}

/* The policy document AWS returns around a statement array. */
static char *policy_text(json_t *stmts)
{
    json_t *doc = json_pack("{s:s,s:s,s:O}", "Version", "2012-10-17", "Id", "default", "Statement", stmts);
    char *t = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return t;
}

static int find_sid(json_t *stmts, const char *sid)
{
    size_t i;
    json_t *e;
    json_array_foreach(stmts, i, e) {
        const char *s = api_jstr(e, "Sid");
        if (s && !strcmp(s, sid))
            return (int)i;
    }
    return -1;
}

/* --- function policies ------------------------------------------------- */

/* "" for the unqualified function and $LATEST, else the qualifier. */
static const char *policy_key(const struct fn_name *n)
{
    return !strcmp(n->qualifier, "$LATEST") ? "" : n->qualifier;
}

/* The object of a writer's document copy whose RevisionId the policy of
 * qualifier key shares: $LATEST's configuration, a version's or an alias. */
static json_t *revision_holder(json_t *doc, const char *key)
{
    size_t i;
    json_t *e;
    if (!*key)
        return json_object_get(doc, "configuration");
    json_array_foreach(json_object_get(doc, "versions"), i, e) {
        const char *v = api_jstr(e, "version");
        if (v && !strcmp(v, key))
            return json_object_get(e, "configuration");
    }
    json_array_foreach(json_object_get(doc, "aliases"), i, e) {
        const char *a = api_jstr(e, "Name");
        if (a && !strcmp(a, key))
            return e;
    }
    return NULL;
}

/* extras.policy.<key> of a writer's document copy, created when asked. */
static json_t *doc_statements(json_t *doc, const char *key, bool create)
{
    json_t *extras = json_object_get(doc, "extras");
    if (!extras && create) {
        extras = json_object();
        json_object_set_new(doc, "extras", extras);
    }
    json_t *pol = json_object_get(extras, "policy");
    if (!pol && create) {
        pol = json_object();
        json_object_set_new(extras, "policy", pol);
    }
    json_t *stmts = json_object_get(pol, key);
    if (!stmts && create) {
        stmts = json_array();
        json_object_set_new(pol, key, stmts);
    }
    return stmts;
}

struct perm_edit {
    const char *key;       /* policy key */
    const char *revision;  /* RevisionId precondition, or NULL */
    json_t *stmt;          /* AddPermission: the statement to add */
    const char *sid;       /* RemovePermission: the statement to remove */
    char *stmt_text;       /* AddPermission: the added statement, as sent */
};

static int check_and_bump_revision(json_t *doc, const char *key, const char *want, struct api_error *err)
{
    json_t *holder = revision_holder(doc, key);
    const char *cur = api_jstr(holder, "RevisionId");
    if (want && (!cur || strcmp(want, cur)))
        return api_fail(err, &AWS_PRECONDITION_FAILED, MSG_POLICY_REVISION);
    if (holder) {
        char rev[37];
        http_uuid4(rev);
        json_object_set_new(holder, "RevisionId", json_string(rev));
    }
    return 0;
}

static int mutate_add(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    struct perm_edit *e = ud;
    json_t *stmts = doc_statements(doc, e->key, true);
    const char *sid = api_jstr(e->stmt, "Sid");
    if (check_and_bump_revision(doc, e->key, e->revision, err))
        return -1;
    if (find_sid(stmts, sid) >= 0)
        return api_fail(err, &AWS_RESOURCE_CONFLICT, MSG_SID_EXISTS, sid);
    json_array_append(stmts, e->stmt);
    char *text = policy_text(stmts);
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (len > POLICY_MAX)
        return api_fail(err, &AWS_POLICY_LENGTH, "The final policy size (%zu) is bigger than the limit (%d).",
                        len, POLICY_MAX);
    e->stmt_text = json_dumps(e->stmt, JSON_COMPACT);
    return e->stmt_text ? 0 : api_fail(err, &AWS_SERVICE, "out of memory");
}

static int mutate_remove(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    struct perm_edit *e = ud;
    json_t *stmts = doc_statements(doc, e->key, false);
    int i = stmts ? find_sid(stmts, e->sid) : -1;
    if (check_and_bump_revision(doc, e->key, e->revision, err))
        return -1;
    if (i < 0)
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, "Statement %s is not found in resource policy.", e->sid);
    json_array_remove(stmts, (size_t)i);
    if (!json_array_size(stmts))
        json_object_del(json_object_get(json_object_get(doc, "extras"), "policy"), e->key);
    return 0;
}

/* Reads and checks ?Qualifier= (NULL when absent). Answers and returns -1
 * on a bad value. */
static int query_qualifier(struct http_req *req, char buf[160], const char **out)
{
    int ql = http_query(req, "Qualifier", buf, 160);
    *out = NULL;
    if (ql == -1)
        return 0;
    struct vlist v;
    struct api_error err;
    vlist_init(&v);
    if (ql < 1 || ql > 128)
        vlist_add(&v, ql >= 0 ? buf : NULL, "qualifier", ql < 1 ? "Member must have length greater than or equal to 1"
                                                                 : "Member must have length less than or equal to 128");
    else if (!validate_match(buf, PAT_QUALIFIER))
        vlist_add(&v, buf, "qualifier", "Member must satisfy regular expression pattern: " PAT_QUALIFIER);
    if (vlist_finish(&v, &err)) {
        http_send_api_error(req, &err);
        return -1;
    }
    *out = buf;
    return 0;
}

/* Builds the statement of an AddPermission body for resource arn. */
static json_t *build_statement(json_t *body, const char *arn, struct api_error *err)
{
    json_t *principal = principal_json(api_jstr(body, "Principal"));
    if (!principal) {
        api_fail(err, &AWS_INVALID_PARAMETER_VALUE,
                 "The provided principal was invalid. Please check the principal and try again.");
        return NULL;
    }
    json_t *st = json_pack("{s:s,s:s,s:o,s:s,s:s}", "Sid", api_jstr(body, "StatementId"), "Effect", "Allow",
                           "Principal", principal, "Action", api_jstr(body, "Action"), "Resource", arn);
    const char *v;
    if ((v = api_jstr(body, "SourceAccount")))
        add_condition(st, "StringEquals", "AWS:SourceAccount", json_string(v));
    if ((v = api_jstr(body, "EventSourceToken")))
        add_condition(st, "StringEquals", "lambda:EventSourceToken", json_string(v));
    if ((v = api_jstr(body, "PrincipalOrgID")))
        add_condition(st, "StringEquals", "aws:PrincipalOrgID", json_string(v));
    if ((v = api_jstr(body, "FunctionUrlAuthType")))
        add_condition(st, "StringEquals", "lambda:FunctionUrlAuthType", json_string(v));
    if ((v = api_jstr(body, "SourceArn")))
        add_condition(st, "ArnLike", "AWS:SourceArn", json_string(v));
    if (json_is_true(json_object_get(body, "InvokedViaFunctionUrl")))
        add_condition(st, "Bool", "lambda:InvokedViaFunctionUrl", json_string("true"));
    return st;
}

static int check_add_body(json_t *body, struct api_error *err)
{
    struct vlist v;
    vlist_init(&v);
    check_str(body, "StatementId", "statementId", true, 1, 100, PAT_SID, &v);
    check_str(body, "Action", "action", true, 0, 0, PAT_ACTION, &v);
    check_str(body, "Principal", "principal", true, 0, 0, PAT_PRINCIPAL, &v);
    check_str(body, "SourceArn", "sourceArn", false, 0, 0, PAT_SOURCE_ARN, &v);
    check_str(body, "SourceAccount", "sourceAccount", false, 0, 12, PAT_ACCOUNT, &v);
    check_str(body, "EventSourceToken", "eventSourceToken", false, 0, 256, PAT_TOKEN, &v);
    check_str(body, "PrincipalOrgID", "principalOrgID", false, 12, 34, PAT_ORG, &v);
    check_str(body, "RevisionId", "revisionId", false, 0, 0, NULL, &v);
    json_t *auth = json_object_get(body, "FunctionUrlAuthType");
    if (auth && !json_is_null(auth) &&
        (!json_is_string(auth) || (strcmp(json_string_value(auth), "NONE") && strcmp(json_string_value(auth), "AWS_IAM"))))
        vlist_add(&v, json_is_string(auth) ? json_string_value(auth) : NULL, "functionUrlAuthType",
                  "Member must satisfy enum value set: [NONE, AWS_IAM]");
    json_t *via = json_object_get(body, "InvokedViaFunctionUrl");
    if (via && !json_is_null(via) && !json_is_boolean(via))
        vlist_add(&v, NULL, "invokedViaFunctionUrl", "Member must be a boolean");
    return vlist_finish(&v, err);
}

void api_add_permission(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    char qbuf[160], arn[700];
    const char *qualifier;
    struct perm_edit e = {0};
    if (query_qualifier(req, qbuf, &qualifier))
        return;
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        goto out;
    registry_record_unref(r);
    if (check_add_body(body, &err))
        goto fail;
    if (!strcmp(n.qualifier, "$LATEST")) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "We currently do not support adding policies for $LATEST.");
        goto fail;
    }
    validate_function_arn(&n, n.qualifier[0] != 0, arn, sizeof(arn));
    e.key = policy_key(&n);
    e.revision = api_jstr(body, "RevisionId");
    if (!(e.stmt = build_statement(body, arn, &err)) || registry_update(&n, mutate_add, &e, NULL, 0, NULL, &err))
        goto fail;
    json_t *resp = json_pack("{s:s}", "Statement", e.stmt_text);
    http_send_jsont(req, 201, resp);
    goto out;
fail:
    http_send_api_error(req, &err);
out:
    free(e.stmt_text);
    json_decref(e.stmt);
    json_decref(body);
}

void api_remove_permission(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    char qbuf[160], rev[160];
    const char *qualifier;
    if (query_qualifier(req, qbuf, &qualifier))
        return;
    const char *sid = http_param(req, 1);
    struct vlist v;
    vlist_init(&v);
    if (!sid || !*sid || strlen(sid) > 100)
        vlist_add(&v, sid, "statementId", sid && *sid ? "Member must have length less than or equal to 100"
                                                      : "Member must have length greater than or equal to 1");
    else if (!validate_match(sid, PAT_NS_SID))
        vlist_add(&v, sid, "statementId", "Member must satisfy regular expression pattern: " PAT_NS_SID);
    if (vlist_finish(&v, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        return;
    registry_record_unref(r);
    struct perm_edit e = {.key = policy_key(&n), .sid = sid};
    if (http_query(req, "RevisionId", rev, sizeof(rev)) >= 0)
        e.revision = rev;
    if (registry_update(&n, mutate_remove, &e, NULL, 0, NULL, &err))
        http_send_api_error(req, &err);
    else
        http_send_empty(req, 204);
}

/* The RevisionId of the qualifier's target in a published record. */
static char *target_revision(const struct fn_record *r, const char *key)
{
    const char *text = NULL;
    if (!*key)
        return r->revision_id ? strdup(r->revision_id) : strdup("");
    const struct fn_version *v = registry_version(r, key);
    const struct fn_alias *a = v ? NULL : registry_alias(r, key);
    text = v ? v->config_json : a ? a->json : NULL;
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    char *out = strdup(api_jstr(o, "RevisionId") ? api_jstr(o, "RevisionId") : "");
    json_decref(o);
    return out;
}

/* Answers GetPolicy / GetResourcePolicy for the resolved function r. */
static void send_function_policy(struct http_req *req, const struct fn_record *r, const struct fn_name *n)
{
    json_t *extras = r->extras_json ? json_loads(r->extras_json, 0, NULL) : NULL;
    json_t *stmts = json_object_get(json_object_get(extras, "policy"), policy_key(n));
    if (!json_array_size(stmts)) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
    } else {
        char *text = policy_text(stmts);
        char *rev = target_revision(r, policy_key(n));
        http_send_jsont(req, 200, json_pack("{s:s,s:s}", "Policy", text ? text : "", "RevisionId", rev ? rev : ""));
        free(text);
        free(rev);
    }
    json_decref(extras);
}

void api_get_policy(struct http_req *req)
{
    struct fn_name n;
    char qbuf[160];
    const char *qualifier;
    if (query_qualifier(req, qbuf, &qualifier))
        return;
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        return;
    send_function_policy(req, r, &n);
    registry_record_unref(r);
}

/* --- whole-document resource policies (2026-07-09) ---------------------- */

/* Resolves path parameter 0 (a PolicyResourceArn) to its function; answers
 * and returns NULL for a malformed ARN (InvalidParameterValueException) or
 * a resource that does not exist here (a runtime/... resource never does). */
static struct fn_record *resource_ref(struct http_req *req, struct fn_name *n)
{
    const char *arn = http_param(req, 0);
    size_t len = arn ? strlen(arn) : 0;
    if (!arn || len > RESOURCE_ARN_MAX || !validate_match(arn, PAT_RESOURCE_ARN)) {
        http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "The resource ARN provided (%.600s) is not a valid "
                        "Lambda function ARN.", arn ? arn : "");
        return NULL;
    }
    if (!strstr(arn, ":function:") || len > FN_NAMESPACED_MAX) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, "Resource not found: %.600s", arn);
        return NULL;
    }
    return api_resolve_name(req, arn, NULL, FN_NAMESPACED_MAX, n);
}

/* Parses a PutResourcePolicy document into the statement array kept under
 * extras.policy (a single Statement object becomes a one-element array).
 * Returns NULL with err filled (InvalidParameterValueException). */
static json_t *parse_policy_document(const char *text, size_t len, struct api_error *err)
{
    json_error_t jerr;
    if (http_json_too_deep(text, len, 32)) {
        api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "The policy is not valid JSON: nesting too deep.");
        return NULL;
    }
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "The policy is not valid JSON: %s",
                 doc ? "the policy must be a JSON object" : jerr.text);
        json_decref(doc);
        return NULL;
    }
    json_t *ver = json_object_get(doc, "Version"), *st = json_object_get(doc, "Statement"), *stmts = NULL, *e;
    size_t i;
    if (ver && (!json_is_string(ver) || (strcmp(json_string_value(ver), "2012-10-17") &&
                                          strcmp(json_string_value(ver), "2008-10-17")))) {
        api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "The policy Version must be \"2012-10-17\" or \"2008-10-17\".");
        goto out;
    }
    if (json_is_object(st))
        stmts = json_pack("[O]", st);
    else if (json_is_array(st) && json_array_size(st))
        stmts = json_copy(st);
    if (!stmts) {
        api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "The policy must have a Statement: a statement object or a "
                 "non-empty array of them.");
        goto out;
    }
    json_array_foreach(stmts, i, e) {
        const char *effect = api_jstr(e, "Effect");
        json_t *sid = json_object_get(e, "Sid");
        if (!json_is_object(e)) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Statement %zu of the policy is not an object.", i);
        } else if (!effect || (strcmp(effect, "Allow") && strcmp(effect, "Deny"))) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Statement %zu of the policy needs an Effect of \"Allow\" "
                     "or \"Deny\".", i);
        } else if (sid && !json_is_string(sid)) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Statement %zu of the policy has a Sid that is not a "
                     "string.", i);
        } else if (!json_object_get(e, "Principal") && !json_object_get(e, "NotPrincipal")) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Statement %zu of the policy has no Principal: a "
                     "resource-based policy must name one.", i);
        } else if (!json_object_get(e, "Action") && !json_object_get(e, "NotAction")) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Statement %zu of the policy has no Action.", i);
        } else if (sid && find_sid(stmts, json_string_value(sid)) != (int)i) {
            api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "The statement id (%.100s) is used twice in the policy.",
                     json_string_value(sid));
        } else {
            continue;
        }
        json_decref(stmts);
        stmts = NULL;
        break;
    }
out:
    json_decref(doc);
    return stmts;
}

struct doc_edit {
    const char *key;       /* policy key */
    const char *revision;  /* RevisionId precondition, or NULL */
    json_t *stmts;         /* Put: the new statements; NULL: delete */
    char newrev[37];       /* the target's RevisionId after the edit */
};

static int mutate_doc(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    struct doc_edit *e = ud;
    bool had = json_array_size(doc_statements(doc, e->key, false)) > 0;
    if (check_and_bump_revision(doc, e->key, e->revision, err))
        return -1;
    if (e->stmts) {
        doc_statements(doc, e->key, true); /* creates extras.policy */
        json_object_set(json_object_get(json_object_get(doc, "extras"), "policy"), e->key, e->stmts);
    } else {
        if (!had)
            return api_fail(err, &AWS_RESOURCE_NOT_FOUND, "No policy is associated with the given resource.");
        json_object_del(json_object_get(json_object_get(doc, "extras"), "policy"), e->key);
    }
    const char *rev = api_jstr(revision_holder(doc, e->key), "RevisionId");
    snprintf(e->newrev, sizeof(e->newrev), "%s", rev ? rev : "");
    return 0;
}

void api_get_resource_policy(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = resource_ref(req, &n);
    if (!r)
        return;
    send_function_policy(req, r, &n);
    registry_record_unref(r);
}

void api_put_resource_policy(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    struct doc_edit e = {0};
    char *text = NULL;
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct fn_record *r = resource_ref(req, &n);
    if (!r)
        goto out;
    registry_record_unref(r);
    struct vlist v;
    vlist_init(&v);
    check_str(body, "Policy", "policy", true, 1, 0, NULL, &v);
    check_str(body, "RevisionId", "revisionId", false, 0, 0, NULL, &v);
    if (vlist_finish(&v, &err))
        goto fail;
    json_t *pol = json_object_get(body, "Policy");
    size_t plen = json_string_length(pol);
    if (plen > POLICY_MAX) {
        api_fail(&err, &AWS_POLICY_LENGTH, "The final policy size (%zu) is bigger than the limit (%d).", plen,
                 POLICY_MAX);
        goto fail;
    }
    if (!strcmp(n.qualifier, "$LATEST")) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE, "We currently do not support adding policies for $LATEST.");
        goto fail;
    }
    if (!(e.stmts = parse_policy_document(json_string_value(pol), plen, &err)))
        goto fail;
    text = policy_text(e.stmts);
    if (text && strlen(text) > POLICY_MAX) {
        api_fail(&err, &AWS_POLICY_LENGTH, "The final policy size (%zu) is bigger than the limit (%d).",
                 strlen(text), POLICY_MAX);
        goto fail;
    }
    e.key = policy_key(&n);
    e.revision = api_jstr(body, "RevisionId");
    if (registry_update(&n, mutate_doc, &e, NULL, 0, NULL, &err))
        goto fail;
    http_send_jsont(req, 200, json_pack("{s:s,s:s}", "Policy", text ? text : "", "RevisionId", e.newrev));
    goto out;
fail:
    http_send_api_error(req, &err);
out:
    free(text);
    json_decref(e.stmts);
    json_decref(body);
}

void api_delete_resource_policy(struct http_req *req)
{
    struct api_error err;
    struct fn_name n;
    char rev[160];
    struct doc_edit e = {0};
    struct fn_record *r = resource_ref(req, &n);
    if (!r)
        return;
    registry_record_unref(r);
    int rl = http_query(req, "RevisionId", rev, sizeof(rev));
    if (rl >= 0)
        e.revision = rev;
    else if (rl == -2) {
        http_send_error(req, &AWS_PRECONDITION_FAILED, MSG_RESOURCE_POLICY_REVISION);
        return;
    }
    e.key = policy_key(&n);
    if (registry_update(&n, mutate_doc, &e, NULL, 0, NULL, &err))
        http_send_api_error(req, &err);
    else
        http_send_empty(req, 204);
}

/* --- layer version policies -------------------------------------------- */

struct layer_edit {
    const char *revision;
    json_t *stmt;     /* add */
    const char *sid;  /* remove */
};

static int layer_add(json_t *stmts, const char *rev, void *ud, struct api_error *err)
{
    struct layer_edit *e = ud;
    const char *sid = api_jstr(e->stmt, "Sid");
    if (e->revision && strcmp(e->revision, rev))
        return api_fail(err, &AWS_PRECONDITION_FAILED, MSG_LAYER_POLICY_REVISION);
    if (find_sid(stmts, sid) >= 0)
        return api_fail(err, &AWS_RESOURCE_CONFLICT, MSG_SID_EXISTS, sid);
    json_array_append(stmts, e->stmt);
    char *text = policy_text(stmts);
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (len > POLICY_MAX)
        return api_fail(err, &AWS_POLICY_LENGTH, "The final policy size (%zu) is bigger than the limit (%d).",
                        len, POLICY_MAX);
    return 0;
}

static int layer_remove(json_t *stmts, const char *rev, void *ud, struct api_error *err)
{
    struct layer_edit *e = ud;
    if (e->revision && strcmp(e->revision, rev))
        return api_fail(err, &AWS_PRECONDITION_FAILED, MSG_LAYER_POLICY_REVISION);
    int i = find_sid(stmts, e->sid);
    if (i < 0)
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, "Statement %s is not found in resource policy.", e->sid);
    json_array_remove(stmts, (size_t)i);
    return 0;
}

void api_add_layer_permission(struct http_req *req)
{
    struct api_error err;
    char region[32], account[13], name[LAYERS_NAME_MAX + 1], rev[160], newrev[37];
    long long version;
    struct layer_edit e = {0};
    if (api_layer_version_ref(req, region, account, name, &version, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    struct vlist v;
    vlist_init(&v);
    check_str(body, "StatementId", "statementId", true, 1, 100, PAT_SID, &v);
    check_str(body, "Action", "action", true, 0, 22, PAT_LAYER_ACTION, &v);
    check_str(body, "Principal", "principal", true, 0, 0, PAT_LAYER_PRINCIPAL, &v);
    check_str(body, "OrganizationId", "organizationId", false, 0, 34, PAT_ORG, &v);
    if (vlist_finish(&v, &err))
        goto fail;
    const char *org = api_jstr(body, "OrganizationId"), *principal = api_jstr(body, "Principal");
    if (org && strcmp(principal, "*")) {
        api_fail(&err, &AWS_INVALID_PARAMETER_VALUE,
                 "OrganizationId can only be specified with a wildcard Principal (\"*\").");
        goto fail;
    }
    char arn[400];
    snprintf(arn, sizeof(arn), "arn:aws:lambda:%s:%s:layer:%s:%lld", region, account, name, version);
    json_t *p = strlen(principal) == 12 ? principal_json(principal) : json_string(principal);
    if (strncmp(principal, "arn:", 4) == 0) {
        json_decref(p);
        p = json_pack("{s:s}", "AWS", principal);
    }
    e.stmt = json_pack("{s:s,s:s,s:o,s:s,s:s}", "Sid", api_jstr(body, "StatementId"), "Effect", "Allow",
                       "Principal", p, "Action", api_jstr(body, "Action"), "Resource", arn);
    if (org)
        add_condition(e.stmt, "StringEquals", "aws:PrincipalOrgID", json_string(org));
    if (http_query(req, "RevisionId", rev, sizeof(rev)) >= 0)
        e.revision = rev;
    http_uuid4(newrev);
    if (layers_update_policy(region, account, name, version, layer_add, &e, newrev, &err))
        goto fail;
    char *st = json_dumps(e.stmt, JSON_COMPACT);
    http_send_jsont(req, 201, json_pack("{s:s,s:s}", "Statement", st ? st : "", "RevisionId", newrev));
    free(st);
    goto out;
fail:
    http_send_api_error(req, &err);
out:
    json_decref(e.stmt);
    json_decref(body);
}

void api_remove_layer_permission(struct http_req *req)
{
    struct api_error err;
    char region[32], account[13], name[LAYERS_NAME_MAX + 1], rev[160], newrev[37];
    long long version;
    struct layer_edit e = {0};
    if (api_layer_version_ref(req, region, account, name, &version, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    e.sid = http_param(req, 2);
    struct vlist v;
    vlist_init(&v);
    if (!e.sid || !*e.sid || strlen(e.sid) > 100 || !validate_match(e.sid, PAT_SID))
        vlist_add(&v, e.sid, "statementId", "Member must satisfy regular expression pattern: " PAT_SID);
    if (vlist_finish(&v, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    if (http_query(req, "RevisionId", rev, sizeof(rev)) >= 0)
        e.revision = rev;
    http_uuid4(newrev);
    if (layers_update_policy(region, account, name, version, layer_remove, &e, newrev, &err))
        http_send_api_error(req, &err);
    else
        http_send_empty(req, 204);
}

void api_get_layer_policy(struct http_req *req)
{
    struct api_error err;
    char region[32], account[13], name[LAYERS_NAME_MAX + 1];
    long long version;
    if (api_layer_version_ref(req, region, account, name, &version, &err)) {
        http_send_api_error(req, &err);
        return;
    }
    struct layer_version *lv = layers_get(region, account, name, version);
    if (!lv) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
        return;
    }
    json_t *stmts = lv->policy ? json_loads(lv->policy, 0, NULL) : NULL;
    if (!json_array_size(stmts)) {
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, "No policy is associated with the given resource.");
    } else {
        char *text = policy_text(stmts);
        http_send_jsont(req, 200, json_pack("{s:s,s:s}", "Policy", text ? text : "", "RevisionId",
                                            lv->revision_id ? lv->revision_id : ""));
        free(text);
    }
    json_decref(stmts);
    layers_unref(lv);
}
