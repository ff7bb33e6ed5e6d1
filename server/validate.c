/* validate: Lambda input rules and AWS's messages (see validate.h). */
#include "server/validate.h"

#include <ctype.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char VALIDATE_PATTERN_FUNCTION_NAME[] =
    "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
    "(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";
const char VALIDATE_PATTERN_NAMESPACED_NAME[] =
    "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
    "(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST(\\.PUBLISHED)?|[a-zA-Z0-9-_]+))?";
const char VALIDATE_PATTERN_ROLE[] = "arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+";
const char VALIDATE_PATTERN_HANDLER[] = "[^\\s]+";

static const char NAME_CHARS[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

static const char *const g_runtimes[] = {
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x",
    "nodejs16.x", "java8", "java8.al2", "java11", "python2.7", "python3.6", "python3.7",
    "python3.8", "python3.9", "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1",
    "dotnet6", "dotnet8", "nodejs4.3-edge", "go1.x", "ruby2.5", "ruby2.7", "provided",
    "provided.al2", "nodejs18.x", "python3.10", "java17", "ruby3.2", "ruby3.3", "ruby3.4",
    "python3.11", "nodejs20.x", "provided.al2023", "python3.12", "java21", "python3.13",
    "nodejs22.x", "nodejs24.x", "python3.14", "java25", "dotnet10", "ruby4.0", NULL};

/* Runtimes whose creation AWS has blocked for a long time. */
static const char *const g_deprecated[] = {
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x",
    "java8", "python2.7", "python3.6", "python3.7", "dotnetcore1.0", "dotnetcore2.0",
    "dotnetcore2.1", "dotnetcore3.1", "nodejs4.3-edge", "go1.x", "ruby2.5", "ruby2.7", "provided",
    NULL};

/* §5.1: keys the service refuses in Environment.Variables. */
static const char *const g_reserved_env[] = {
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; s && list[i]; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

bool validate_runtime_known(const char *rt)
{
    return in_list(g_runtimes, rt);
}

bool validate_runtime_deprecated(const char *rt)
{
    return in_list(g_deprecated, rt);
}

/* --- patterns ----------------------------------------------------------- */

/* Appends the ERE form of the Java bracket expression at *pp (pointing at
 * '['); a '-' that ends a range or stands first/last is literal in Java and
 * is moved to the end, where ERE reads it literally too. */
static size_t bracket_to_ere(const char **pp, char *out, size_t o, size_t cap)
{
    const char *p = *pp + 1;
    bool dash = false, after_range = false;
    out[o++] = '[';
    if (*p == '^')
        out[o++] = *p++;
    for (; *p && *p != ']' && o < cap - 16; p++) {
        if (p[0] == '\\' && p[1] == 's') {
            memcpy(out + o, "[:space:]", 9);
            o += 9;
            p++;
            after_range = false;
        } else if (p[0] == '\\' && p[1] == 'd') {
            memcpy(out + o, "0-9", 3);
            o += 3;
            p++;
            after_range = true;
        } else if (p[0] == '\\' && p[1] == '-') {
            dash = true; /* an escaped '-' is literal: moved to the end */
            p++;
            after_range = false;
        } else if (p[0] == '\\' && p[1]) {
            out[o++] = *++p;
            after_range = false;
        } else if (*p == '-' && (after_range || p[1] == ']' || p == *pp + 1)) {
            dash = true;
            after_range = false;
        } else if (p[1] == '-' && p[2] && p[2] != ']') {
            out[o++] = p[0];
            out[o++] = '-';
            out[o++] = p[2];
            p += 2;
            after_range = true;
        } else {
            out[o++] = *p;
            after_range = false;
        }
    }
    if (dash)
        out[o++] = '-';
    out[o++] = ']';
    *pp = *p ? p : p - 1;
    return o;
}

bool validate_match(const char *s, const char *pattern)
{
    /* The model's patterns are Java regexes matched against the whole
     * value; translate what they use into POSIX ERE. */
    char ere[1024];
    size_t o = 0;
    ere[o++] = '^';
    ere[o++] = '(';
    for (const char *p = pattern; *p && o < sizeof(ere) - 32; p++) {
        if (p[0] == '\\' && p[1] == 'd') {
            memcpy(ere + o, "[0-9]", 5);
            o += 5;
            p++;
        } else if (p[0] == '\\' && p[1] == 's') {
            memcpy(ere + o, "[[:space:]]", 11);
            o += 11;
            p++;
        } else if (p[0] == '[') {
            o = bracket_to_ere(&p, ere, o, sizeof(ere));
        } else {
            ere[o++] = *p;
        }
    }
    ere[o++] = ')';
    ere[o++] = '$';
    ere[o] = 0;
    regex_t re;
    if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB))
        return false;
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* --- vlist ------------------------------------------------------------- */

void vlist_init(struct vlist *v)
{
    v->n = 0;
    v->len = 0;
    v->buf[0] = 0;
}

/* Value placeholder for sensitive members (rendered "Value at ..."). */
static const char SENSITIVE[] = "(sensitive)";

void vlist_add(struct vlist *v, const char *value, const char *member, const char *what)
{
    char item[700];
    if (value == SENSITIVE) {
        snprintf(item, sizeof(item), "Value at '%s' failed to satisfy constraint: %s", member, what);
    } else if (value) {
        /* AWS quotes long values in full; keep messages bounded. */
        snprintf(item, sizeof(item), "Value '%.300s' at '%s' failed to satisfy constraint: %s",
                 value, member, what);
    } else {
        snprintf(item, sizeof(item), "Value null at '%s' failed to satisfy constraint: %s", member,
                 what);
    }
    size_t il = strlen(item);
    if (v->len + il + 3 < sizeof(v->buf)) {
        if (v->n) {
            memcpy(v->buf + v->len, "; ", 2);
            v->len += 2;
        }
        memcpy(v->buf + v->len, item, il + 1);
        v->len += il;
    }
    v->n++;
}

int vlist_finish(const struct vlist *v, struct api_error *err)
{
    if (!v->n)
        return 0;
    return api_fail(err, &AWS_VALIDATION, "%d validation error%s detected: %s", v->n,
                    v->n == 1 ? "" : "s", v->buf);
}

/* --- function names ---------------------------------------------------- */

/* [a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d over s[0..len) */
static bool region_tail_ok(const char *s, size_t len)
{
    size_t i = 0;
    if (i >= len || s[i] != '-')
        return false;
    i++;
    size_t st = i;
    while (i < len && s[i] >= 'a' && s[i] <= 'z')
        i++;
    if (i == st || i + 2 != len || s[i] != '-' || !isdigit((unsigned char)s[i + 1]))
        return false;
    return true;
}

static bool region_ok(const char *s, size_t len)
{
    if (len < 2 || !islower((unsigned char)s[0]) || !islower((unsigned char)s[1]))
        return false;
    s += 2;
    len -= 2;
    if (region_tail_ok(s, len))
        return true;
    if (len > 4 && !memcmp(s, "-gov", 4) && region_tail_ok(s + 4, len - 4))
        return true;
    if (len > 4 && !memcmp(s, "-iso", 4)) {
        if (region_tail_ok(s + 4, len - 4))
            return true;
        if (len > 5 && islower((unsigned char)s[4]) && region_tail_ok(s + 5, len - 5))
            return true;
    }
    return false;
}

int validate_function_name(const char *s, size_t max_len, struct fn_name *out, struct vlist *v)
{
    char what[96];
    const char *pattern = max_len > 140 ? VALIDATE_PATTERN_NAMESPACED_NAME
                                        : VALIDATE_PATTERN_FUNCTION_NAME;
    memset(out, 0, sizeof(*out));
    if (!s) {
        vlist_add(v, NULL, "functionName", "Member must not be null");
        return -1;
    }
    size_t len = strlen(s);
    if (len < 1) {
        vlist_add(v, s, "functionName", "Member must have length greater than or equal to 1");
        return -1;
    }
    if (len > max_len) {
        snprintf(what, sizeof(what), "Member must have length less than or equal to %zu", max_len);
        vlist_add(v, s, "functionName", what);
        return -1;
    }
    const char *p = s;
    if (!strncmp(p, "arn:", 4)) {
        const char *q = p + 4;
        if (!strncmp(q, "aws", 3)) {
            q += 3;
            while (isalpha((unsigned char)*q) || *q == '-')
                q++;
        }
        if (strncmp(q, ":lambda:", 8))
            goto bad;
        p = q + 8;
    }
    size_t seg = strcspn(p, ":");
    if (p[seg] == ':' && seg < sizeof(out->region) && region_ok(p, seg)) {
        memcpy(out->region, p, seg);
        p += seg + 1;
    }
    if (strspn(p, "0123456789") == 12 && p[12] == ':') {
        memcpy(out->account, p, 12);
        p += 13;
    }
    if (!strncmp(p, "function:", 9))
        p += 9;
    size_t n = strspn(p, NAME_CHARS);
    if (n == 0)
        goto bad;
    if (n > VALIDATE_NAME_MAX) {
        snprintf(what, sizeof(what), "Member must have length less than or equal to %d",
                 VALIDATE_NAME_MAX);
        vlist_add(v, s, "functionName", what);
        return -1;
    }
    memcpy(out->name, p, n);
    p += n;
    if (*p == ':') {
        p++;
        size_t q = !strcmp(p, "$LATEST") ? 7 : strspn(p, NAME_CHARS);
        if (q == 0 || q >= sizeof(out->qualifier) || p[q])
            goto bad;
        memcpy(out->qualifier, p, q);
        p += q;
    }
    if (*p)
        goto bad;
    return 0;
bad:
    snprintf(out->name, sizeof(out->name), "%s", "");
    {
        char w[400];
        snprintf(w, sizeof(w), "Member must satisfy regular expression pattern: %s", pattern);
        vlist_add(v, s, "functionName", w);
    }
    return -1;
}

int validate_function_ref(const char *function_name, const char *qualifier_param,
                          size_t max_len, const char *region, const char *account,
                          struct fn_name *out, struct api_error *err)
{
    struct vlist v;
    vlist_init(&v);
    validate_function_name(function_name, max_len, out, &v);
    if (qualifier_param) {
        size_t ql = strlen(qualifier_param);
        if (ql < 1)
            vlist_add(&v, qualifier_param, "qualifier", "Member must have length greater than or equal to 1");
        else if (ql > 128)
            vlist_add(&v, qualifier_param, "qualifier", "Member must have length less than or equal to 128");
        else if (strspn(qualifier_param, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$_-") != ql)
            vlist_add(&v, qualifier_param, "qualifier",
                      "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)");
    }
    if (vlist_finish(&v, err))
        return -1;
    if (qualifier_param) {
        if (out->qualifier[0] && strcmp(out->qualifier, qualifier_param) != 0)
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_QUALIFIER_MISMATCH);
        snprintf(out->qualifier, sizeof(out->qualifier), "%s", qualifier_param);
    }
    if (!out->region[0])
        snprintf(out->region, sizeof(out->region), "%s", region);
    if (!out->account[0])
        snprintf(out->account, sizeof(out->account), "%s", account);
    return validate_same_namespace(out, region, account, err);
}

int validate_same_namespace(const struct fn_name *n, const char *region, const char *account,
                            struct api_error *err)
{
    /* A region's endpoint reaches only its own functions (AWS:
     * ResourceNotFoundException "Functions from 'us-east-1' are not
     * reachable in this region ('eu-west-1')"); another account's function
     * needs a resource policy lambdad does not evaluate: AccessDenied. */
    if (n->region[0] && strcmp(n->region, region) != 0)
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, MSG_REGION_UNREACHABLE, n->region, region);
    if (n->account[0] && strcmp(n->account, account) != 0) {
        char arn[400];
        validate_function_arn(n, true, arn, sizeof(arn));
        return api_access_denied(err, account, NULL, arn);
    }
    return 0;
}

void validate_function_arn(const struct fn_name *n, bool with_qualifier, char *out, size_t outlen)
{
    bool q = with_qualifier && n->qualifier[0];
    snprintf(out, outlen, "arn:aws:lambda:%s:%s:function:%s%s%s", n->region, n->account, n->name,
             q ? ":" : "", q ? n->qualifier : "");
}

bool validate_role(const char *role)
{
    if (!role || strncmp(role, "arn:", 4))
        return false;
    const char *p = role + 4;
    if (!strncmp(p, "aws", 3)) {
        p += 3;
        while (isalpha((unsigned char)*p) || *p == '-')
            p++;
    }
    if (strncmp(p, ":iam::", 6))
        return false;
    p += 6;
    if (strspn(p, "0123456789") != 12 || p[12] != ':')
        return false;
    p += 13;
    if (strncmp(p, "role", 4))
        return false;
    p += 4;
    /* role/?[a-zA-Z_0-9+=,.@\-_/]+ : at least one char after "role" */
    if (*p == '/' && !p[1])
        return true; /* "/" itself satisfies [..]+ */
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-/");
    return n > 0 && !p[n];
}

/* --- configuration ----------------------------------------------------- */

static void int_range(struct vlist *v, json_t *body, const char *key, const char *member,
                      json_int_t min, json_int_t max)
{
    json_t *j = json_object_get(body, key);
    char val[32], what[80];
    if (!j || json_is_null(j))
        return;
    if (!json_is_integer(j)) {
        vlist_add(v, json_is_string(j) ? json_string_value(j) : "?", member, "Member must be an integer");
        return;
    }
    json_int_t x = json_integer_value(j);
    snprintf(val, sizeof(val), "%" JSON_INTEGER_FORMAT, x);
    if (x < min) {
        snprintf(what, sizeof(what), "Member must have value greater than or equal to %" JSON_INTEGER_FORMAT, min);
        vlist_add(v, val, member, what);
    } else if (x > max) {
        snprintf(what, sizeof(what), "Member must have value less than or equal to %" JSON_INTEGER_FORMAT, max);
        vlist_add(v, val, member, what);
    }
}

/* Returns the string, NULL when absent/null; adds a violation for a
 * non-string. */
static const char *opt_string(struct vlist *v, json_t *obj, const char *key, const char *member)
{
    json_t *j = json_object_get(obj, key);
    if (!j || json_is_null(j))
        return NULL;
    if (!json_is_string(j)) {
        vlist_add(v, "?", member, "Member must be a string");
        return NULL;
    }
    return json_string_value(j);
}

static void max_len(struct vlist *v, const char *s, const char *member, size_t max)
{
    char what[80];
    if (s && strlen(s) > max) {
        snprintf(what, sizeof(what), "Member must have length less than or equal to %zu", max);
        vlist_add(v, s, member, what);
    }
}

static void enum_check(struct vlist *v, const char *s, const char *member, const char *const *set,
                       const char *set_text)
{
    char what[1024];
    if (s && !in_list(set, s)) {
        snprintf(what, sizeof(what), "Member must satisfy enum value set: [%s]", set_text);
        vlist_add(v, s, member, what);
    }
}

static void runtime_enum_text(char *out, size_t len)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; g_runtimes[i] && o + 20 < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ", " : "", g_runtimes[i]);
}

int validate_env(json_t *vars, struct vlist *v, struct api_error *err)
{
    const char *key;
    json_t *val;
    char reserved[600] = "";
    size_t rlen = 0;
    if (!vars || json_is_null(vars))
        return 0;
    if (!json_is_object(vars)) {
        vlist_add(v, NULL, "environment.variables", "Member must be a map");
        return 0;
    }
    json_object_foreach(vars, key, val) {
        size_t kl = strlen(key);
        if (kl < 2 || !isalpha((unsigned char)key[0]) ||
            strspn(key + 1, NAME_CHARS) != kl - 1 || strchr(key, '-')) {
            /* Keys are "sensitive" in the model: AWS does not echo them. */
            vlist_add(v, SENSITIVE, "environment.variables",
                      "Map keys must satisfy constraint: [Member must satisfy regular expression "
                      "pattern: [a-zA-Z]([a-zA-Z0-9_])+]");
        }
        if (!json_is_string(val))
            vlist_add(v, NULL, "environment.variables", "Map values must be strings");
        if (in_list(g_reserved_env, key) && rlen + strlen(key) + 3 < sizeof(reserved))
            rlen += (size_t)snprintf(reserved + rlen, sizeof(reserved) - rlen, "%s%s",
                                     rlen ? ", " : "", key);
    }
    if (v->n)
        return 0;
    if (rlen)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_ENV_RESERVED, reserved);
    char *text = json_dumps(vars, JSON_COMPACT | JSON_SORT_KEYS);
    if (text && strlen(text) > 4096) {
        api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_ENV_TOO_LARGE, "");
        /* Append as much of the measured string as the message holds. */
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof(err->msg) - used, "%s", text);
        free(text);
        return -1;
    }
    free(text);
    return 0;
}

int validate_function_config(json_t *body, bool create, struct api_error *err)
{
    static const char *const tracing[] = {"Active", "PassThrough", NULL};
    static const char *const formats[] = {"JSON", "Text", NULL};
    static const char *const app_levels[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", NULL};
    static const char *const sys_levels[] = {"DEBUG", "INFO", "WARN", NULL};
    static const char *const archs[] = {"x86_64", "arm64", NULL};
    static const char *const packages[] = {"Zip", "Image", NULL};
    struct vlist v;
    char buf[1024];
    vlist_init(&v);

    json_t *role_j = json_object_get(body, "Role");
    const char *role = opt_string(&v, body, "Role", "role");
    if (role) {
        if (!validate_role(role)) {
            snprintf(buf, sizeof(buf), "Member must satisfy regular expression pattern: %s", VALIDATE_PATTERN_ROLE);
            vlist_add(&v, role, "role", buf);
        }
    } else if (create && (!role_j || json_is_null(role_j))) {
        vlist_add(&v, NULL, "role", "Member must not be null");
    }

    const char *handler = opt_string(&v, body, "Handler", "handler");
    if (handler) {
        size_t hl = strlen(handler);
        if (hl > 128) {
            max_len(&v, handler, "handler", 128);
        } else {
            bool ws = hl == 0;
            for (size_t i = 0; i < hl && !ws; i++)
                ws = isspace((unsigned char)handler[i]);
            if (ws) {
                snprintf(buf, sizeof(buf), "Member must satisfy regular expression pattern: %s", VALIDATE_PATTERN_HANDLER);
                vlist_add(&v, handler, "handler", buf);
            }
        }
    }

    const char *runtime = opt_string(&v, body, "Runtime", "runtime");
    if (runtime && !validate_runtime_known(runtime)) {
        runtime_enum_text(buf, sizeof(buf));
        enum_check(&v, runtime, "runtime", g_runtimes, buf);
    }
    max_len(&v, opt_string(&v, body, "Description", "description"), "description", 256);
    int_range(&v, body, "Timeout", "timeout", 1, 900);
    int_range(&v, body, "MemorySize", "memorySize", 128, 10240);

    json_t *eph = json_object_get(body, "EphemeralStorage");
    if (eph && !json_is_null(eph)) {
        json_t *size = json_object_get(eph, "Size");
        if (!json_is_object(eph) || !size || json_is_null(size))
            vlist_add(&v, NULL, "ephemeralStorage.size", "Member must not be null");
        else
            int_range(&v, eph, "Size", "ephemeralStorage.size", 512, 10240);
    }
    json_t *tc = json_object_get(body, "TracingConfig");
    if (json_is_object(tc))
        enum_check(&v, opt_string(&v, tc, "Mode", "tracingConfig.mode"), "tracingConfig.mode",
                   tracing, "Active, PassThrough");
    json_t *lc = json_object_get(body, "LoggingConfig");
    if (json_is_object(lc)) {
        enum_check(&v, opt_string(&v, lc, "LogFormat", "loggingConfig.logFormat"),
                   "loggingConfig.logFormat", formats, "JSON, Text");
        enum_check(&v, opt_string(&v, lc, "ApplicationLogLevel", "loggingConfig.applicationLogLevel"),
                   "loggingConfig.applicationLogLevel", app_levels, "TRACE, DEBUG, INFO, WARN, ERROR, FATAL");
        enum_check(&v, opt_string(&v, lc, "SystemLogLevel", "loggingConfig.systemLogLevel"),
                   "loggingConfig.systemLogLevel", sys_levels, "DEBUG, INFO, WARN");
        const char *lg = opt_string(&v, lc, "LogGroup", "loggingConfig.logGroup");
        if (lg) {
            size_t n = strlen(lg);
            if (n < 1 || n > 512 ||
                strspn(lg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/#") != n)
                vlist_add(&v, lg, "loggingConfig.logGroup",
                          "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+");
        }
    }
    json_t *ar = json_object_get(body, "Architectures");
    if (ar && !json_is_null(ar)) {
        if (!json_is_array(ar) || json_array_size(ar) != 1) {
            vlist_add(&v, NULL, "architectures", json_is_array(ar) && json_array_size(ar) == 0
                                                     ? "Member must have length greater than or equal to 1"
                                                     : "Member must have length less than or equal to 1");
        } else {
            json_t *a = json_array_get(ar, 0);
            if (!json_is_string(a) || !in_list(archs, json_string_value(a))) {
                snprintf(buf, sizeof(buf), "[%s]", json_is_string(a) ? json_string_value(a) : "?");
                vlist_add(&v, buf, "architectures",
                          "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]");
            }
        }
    }
    if (create)
        enum_check(&v, opt_string(&v, body, "PackageType", "packageType"), "packageType", packages,
                   "Zip, Image");
    json_t *layers = json_object_get(body, "Layers");
    if (layers && !json_is_null(layers)) {
        size_t i;
        json_t *l;
        if (!json_is_array(layers))
            vlist_add(&v, NULL, "layers", "Member must be a list");
        json_array_foreach(layers, i, l) {
            const char *s = json_string_value(l);
            const char *colon = s ? strrchr(s, ':') : NULL;
            if (!s || strncmp(s, "arn:", 4) || !strstr(s, ":layer:") || strlen(s) > 140 || !colon ||
                !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
                vlist_add(&v, s ? s : "?", "layers",
                          "Member must satisfy constraint: [Member must satisfy regular expression pattern: "
                          "arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+]");
                break;
            }
        }
    }
    json_t *ic = json_object_get(body, "ImageConfig");
    if (ic && !json_is_null(ic)) {
        if (!json_is_object(ic))
            vlist_add(&v, NULL, "imageConfig", "Member must be a structure");
        else
            max_len(&v, opt_string(&v, ic, "WorkingDirectory", "imageConfig.workingDirectory"),
                    "imageConfig.workingDirectory", 1000);
    }
    json_t *env = json_object_get(body, "Environment");
    json_t *vars = json_is_object(env) ? json_object_get(env, "Variables") : NULL;
    struct api_error env_err = {0};
    int env_rc = validate_env(vars, &v, &env_err);

    if (vlist_finish(&v, err))
        return -1;
    /* Semantic checks, once the shape is right. */
    if (runtime && validate_runtime_deprecated(runtime))
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, MSG_RUNTIME_DEPRECATED, runtime);
    if (env_rc) {
        *err = env_err;
        return -1;
    }
    if (layers && json_array_size(layers) > 5)
        return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Cannot reference more than 5 layers.");
    return 0;
}
