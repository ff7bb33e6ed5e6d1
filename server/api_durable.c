/* api_durable: durable-execution operations answered as for executions that
 * do not exist (see api_durable.h). */
#include "server/api_durable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_functions.h"
#include "server/registry.h"
#include "server/validate.h"

#define FN_NAMESPACED_MAX 256
#define EXEC_ARN_MAX 1024
#define CALLBACK_ID_MAX 1024
#define TOKEN_MAX 2048
/* The model's DurableExecutionArn pattern, as quoted in messages, and the
 * same without the Java-only "(?:" group for the POSIX matcher. */
#define PAT_EXEC_ARN_MODEL                                                                         \
    "arn:([a-zA-Z0-9-]+):lambda:([a-zA-Z0-9-]+):(\\d{12}):function:([a-zA-Z0-9_-]+):(\\$LATEST(?:\\.PUBLISHED)?|[0-9]+)" \
    "/durable-execution/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)"
#define PAT_EXEC_ARN                                                                               \
    "arn:([a-zA-Z0-9-]+):lambda:([a-zA-Z0-9-]+):(\\d{12}):function:([a-zA-Z0-9_-]+):(\\$LATEST(\\.PUBLISHED)?|[0-9]+)" \
    "/durable-execution/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)"
#define PAT_TOKEN "[A-Za-z0-9+/]+={0,2}"
#define PAT_QUALIFIER "\\$(LATEST(\\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"
#define PAT_EXEC_NAME "[a-zA-Z0-9-_]+"
#define PAT_TIMESTAMP "[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ].*)?|[0-9]+(\\.[0-9]+)?"
#define PAT_CLIENT_TOKEN "[!-~]+"

/* A string member: null/length/pattern, AWS's texts. */
static void check_str(const char *s, size_t len, const char *member, size_t min, size_t max, const char *pattern,
                      const char *quoted, struct vlist *v)
{
    char what[700];
    if (!s) {
        vlist_add(v, NULL, member, "Member must not be null");
    } else if (len < min) {
        snprintf(what, sizeof(what), "Member must have length greater than or equal to %zu", min);
        vlist_add(v, s, member, what);
    } else if (len > max) {
        snprintf(what, sizeof(what), "Member must have length less than or equal to %zu", max);
        vlist_add(v, s, member, what);
    } else if (pattern && (strlen(s) != len || !validate_match(s, pattern))) {
        snprintf(what, sizeof(what), "Member must satisfy regular expression pattern: %s", quoted ? quoted : pattern);
        vlist_add(v, s, member, what);
    }
}

/* A query parameter checked as a string member (absent: optional unless
 * required). */
static void check_query_str(struct http_req *req, const char *name, const char *member, bool required, size_t min,
                            size_t max, const char *pattern, struct vlist *v)
{
    char buf[2100];
    int len = http_query(req, name, buf, sizeof(buf));
    if (len == -1) {
        if (required)
            vlist_add(v, NULL, member, "Member must not be null");
        return;
    }
    if (len == -2) {
        char what[96];
        snprintf(what, sizeof(what), "Member must have length less than or equal to %zu", max);
        vlist_add(v, "(too long)", member, what);
        return;
    }
    check_str(buf, (size_t)len, member, min, max, pattern, NULL, v);
}

static void check_query_int(struct http_req *req, const char *name, const char *member, long min, long max,
                            struct vlist *v)
{
    char buf[32], what[96];
    int len = http_query(req, name, buf, sizeof(buf));
    if (len == -1)
        return;
    char *end = NULL;
    long x = len > 0 ? strtol(buf, &end, 10) : 0;
    if (len <= 0 || *end) {
        vlist_add(v, len > 0 ? buf : "", member, "Member must be an integer");
    } else if (x < min || x > max) {
        snprintf(what, sizeof(what), "Member must have value %s %ld", x < min ? "greater than or equal to"
                                                                      : "less than or equal to",
                 x < min ? min : max);
        vlist_add(v, buf, member, what);
    }
}

static void check_query_bool(struct http_req *req, const char *name, const char *member, struct vlist *v)
{
    char buf[16];
    int len = http_query(req, name, buf, sizeof(buf));
    if (len != -1 && (len < 0 || (strcmp(buf, "true") && strcmp(buf, "false"))))
        vlist_add(v, len >= 0 ? buf : "?", member, "Member must be a boolean");
}

/* Path parameter 0 as a DurableExecutionArn. */
static void check_exec_arn(struct http_req *req, struct vlist *v)
{
    const char *arn = http_param(req, 0);
    check_str(arn, arn ? strlen(arn) : 0, "durableExecutionArn", 1, EXEC_ARN_MAX, PAT_EXEC_ARN, PAT_EXEC_ARN_MODEL,
              v);
}

/* Sends the ValidationException of v; returns whether there was one. */
static bool refuse(struct http_req *req, struct vlist *v)
{
    struct api_error err;
    if (!vlist_finish(v, &err))
        return false;
    http_send_api_error(req, &err);
    return true;
}

/* An ErrorObject body (StopDurableExecution, callback failure): the JSON
 * must parse and its members have the model's types. Returns 0, or -1
 * after answering. */
static int check_error_object(struct http_req *req, struct vlist *v)
{
    json_t *body = api_read_json_body(req), *st, *e;
    size_t i;
    if (!body)
        return -1;
    static const char *const strs[] = {"ErrorMessage", "ErrorType", "ErrorData", NULL};
    static const char *const members[] = {"error.errorMessage", "error.errorType", "error.errorData", NULL};
    for (size_t k = 0; strs[k]; k++) {
        json_t *j = json_object_get(body, strs[k]);
        if (j && !json_is_null(j) && !json_is_string(j))
            vlist_add(v, NULL, members[k], "Member must be a string");
    }
    st = json_object_get(body, "StackTrace");
    if (st && !json_is_null(st)) {
        if (!json_is_array(st))
            vlist_add(v, NULL, "error.stackTrace", "Member must be a list");
        else
            json_array_foreach(st, i, e) if (!json_is_string(e)) {
                vlist_add(v, NULL, "error.stackTrace.member", "Member must be a string");
                break;
            }
    }
    json_decref(body);
    return 0;
}

static void send_no_execution(struct http_req *req)
{
    http_send_error(req, &AWS_RESOURCE_NOT_FOUND, "Durable execution not found: %s", http_param(req, 0));
}

static void send_bad_token(struct http_req *req)
{
    http_send_error(req, &AWS_INVALID_PARAMETER_VALUE, "Invalid checkpoint token for durable execution %s.",
                    http_param(req, 0));
}

/* --- operations ---------------------------------------------------------- */

static int check_status(void *ud, const char *value)
{
    struct vlist *v = ud;
    static const char *const ok[] = {"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", NULL};
    for (size_t i = 0; ok[i]; i++)
        if (!strcmp(value, ok[i]))
            return 0;
    vlist_add(v, value, "statuses.member", "Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, "
              "TIMED_OUT, STOPPED]");
    return 1;
}

static int count_value(void *ud, const char *value)
{
    (void)value;
    (*(int *)ud)++;
    return 0;
}

void api_list_durable_executions(struct http_req *req)
{
    struct vlist v;
    struct fn_name n;
    int statuses = 0;
    vlist_init(&v);
    check_query_str(req, "Qualifier", "qualifier", false, 1, 128, PAT_QUALIFIER, &v);
    check_query_str(req, "DurableExecutionName", "durableExecutionName", false, 1, 64, PAT_EXEC_NAME, &v);
    check_query_str(req, "StartedAfter", "startedAfter", false, 1, 64, PAT_TIMESTAMP, &v);
    check_query_str(req, "StartedBefore", "startedBefore", false, 1, 64, PAT_TIMESTAMP, &v);
    check_query_bool(req, "ReverseOrder", "reverseOrder", &v);
    check_query_int(req, "MaxItems", "maxItems", 0, 1000, &v);
    if (http_query_each(req, "Statuses", check_status, &v) == -2)
        vlist_add(&v, "(too long)", "statuses.member", "Member must satisfy enum value set: [RUNNING, SUCCEEDED, "
                  "FAILED, TIMED_OUT, STOPPED]");
    http_query_each(req, "Statuses", count_value, &statuses);
    if (statuses > 10)
        vlist_add(&v, NULL, "statuses", "Member must have length less than or equal to 10");
    if (refuse(req, &v))
        return;
    struct fn_record *r = api_resolve_ref(req, FN_NAMESPACED_MAX, true, &n);
    if (!r)
        return;
    registry_record_unref(r);
    /* lambdad starts no durable executions: the list is always empty. */
    http_send_jsont(req, 200, json_pack("{s:[]}", "DurableExecutions"));
}

void api_get_durable_execution(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    check_exec_arn(req, &v);
    if (!refuse(req, &v))
        send_no_execution(req);
}

void api_get_durable_execution_history(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    check_exec_arn(req, &v);
    check_query_bool(req, "IncludeExecutionData", "includeExecutionData", &v);
    check_query_bool(req, "ReverseOrder", "reverseOrder", &v);
    check_query_int(req, "MaxItems", "maxItems", 0, 1000, &v);
    if (!refuse(req, &v))
        send_no_execution(req);
}

void api_get_durable_execution_state(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    check_exec_arn(req, &v);
    check_query_str(req, "CheckpointToken", "checkpointToken", true, 1, TOKEN_MAX, PAT_TOKEN, &v);
    check_query_int(req, "MaxItems", "maxItems", 0, 1000, &v);
    if (!refuse(req, &v))
        send_bad_token(req);
}

void api_checkpoint_durable_execution(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    check_exec_arn(req, &v);
    json_t *tok = json_object_get(body, "CheckpointToken");
    if (tok && !json_is_null(tok) && !json_is_string(tok))
        vlist_add(&v, NULL, "checkpointToken", "Member must be a string");
    else
        check_str(json_string_value(tok), json_string_length(tok), "checkpointToken", 1, TOKEN_MAX, PAT_TOKEN,
                  NULL, &v);
    json_t *ct = json_object_get(body, "ClientToken");
    if (ct && !json_is_null(ct)) {
        if (!json_is_string(ct))
            vlist_add(&v, NULL, "clientToken", "Member must be a string");
        else
            check_str(json_string_value(ct), json_string_length(ct), "clientToken", 1, 64, PAT_CLIENT_TOKEN, NULL,
                      &v);
    }
    json_t *up = json_object_get(body, "Updates");
    if (up && !json_is_null(up) && !json_is_array(up))
        vlist_add(&v, NULL, "updates", "Member must be a list");
    json_decref(body);
    if (!refuse(req, &v))
        send_bad_token(req);
}

void api_stop_durable_execution(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    check_exec_arn(req, &v);
    if (check_error_object(req, &v))
        return;
    if (!refuse(req, &v))
        send_no_execution(req);
}

/* The optional string members of a Pause/Resume body. */
static void check_opt_str(json_t *body, const char *key, const char *member, size_t min, size_t max,
                          const char *pattern, struct vlist *v)
{
    json_t *j = json_object_get(body, key);
    if (!j || json_is_null(j))
        return;
    if (!json_is_string(j))
        vlist_add(v, NULL, member, "Member must be a string");
    else
        check_str(json_string_value(j), json_string_length(j), member, min, max, pattern, NULL, v);
}

void api_delete_durable_execution(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    check_exec_arn(req, &v);
    if (!refuse(req, &v))
        send_no_execution(req);
}

/* Pause (with_timeout: ExecutionTimeoutPaused) and Resume. */
static void pause_or_resume(struct http_req *req, bool with_timeout)
{
    struct vlist v;
    vlist_init(&v);
    json_t *body = api_read_json_body(req);
    if (!body)
        return;
    check_exec_arn(req, &v);
    check_opt_str(body, "ClientToken", "clientToken", 1, 64, PAT_CLIENT_TOKEN, &v);
    check_opt_str(body, "Reason", "reason", 0, 1024, NULL, &v);
    json_t *t = json_object_get(body, "ExecutionTimeoutPaused");
    if (t && !json_is_null(t) && (!with_timeout || !json_is_boolean(t)))
        vlist_add(&v, NULL, "executionTimeoutPaused", "Member must be a boolean");
    json_decref(body);
    if (!refuse(req, &v))
        send_no_execution(req);
}

void api_pause_durable_execution(struct http_req *req)
{
    pause_or_resume(req, true);
}

void api_resume_durable_execution(struct http_req *req)
{
    pause_or_resume(req, false);
}

/* Path parameter 0 as a CallbackId, then the model's answer for a callback
 * that is not open. */
static void callback_closed(struct http_req *req, struct vlist *v)
{
    const char *id = http_param(req, 0);
    check_str(id, id ? strlen(id) : 0, "callbackId", 1, CALLBACK_ID_MAX, PAT_TOKEN, NULL, v);
    if (!refuse(req, v))
        http_send_error(req, &AWS_CALLBACK_TIMEOUT, "The callback ID token has either expired or the callback "
                        "associated with the token has already been closed.");
}

void api_durable_callback_success(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    /* The Result blob is the raw body, at most API_DURABLE_RESULT_MAX
     * bytes (the route's cap answers a bigger one with 413). */
    if (http_read_body(req))
        return;
    callback_closed(req, &v);
}

void api_durable_callback_failure(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    if (check_error_object(req, &v))
        return;
    callback_closed(req, &v);
}

void api_durable_callback_heartbeat(struct http_req *req)
{
    struct vlist v;
    vlist_init(&v);
    callback_closed(req, &v);
}
