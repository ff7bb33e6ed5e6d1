/* api_urls: function URL configurations and the URL endpoint (see
 * api_urls.h). */
#include "server/api_urls.h"

#include <civetweb.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "pool/pool.h"
#include "server/api_functions.h"
#include "server/config.h"
#include "server/registry.h"
#include "server/validate.h"

#define FN_NAME_MAX 140
#define URL_ID_LEN 32
#define URL_PATH_PREFIX "/_lambdad/url/"
#define PAT_URL_QUALIFIER "((?!^\\d+$)^[0-9a-zA-Z-_]+$)"
#define LIST_MAX 50

/* --- configuration ----------------------------------------------------- */

/* Resolves the function and the URL qualifier ("" or an alias). Answers
 * the error and returns NULL otherwise. */
static struct fn_record *url_target(struct http_req *req, struct fn_name *n)
{
    char q[160];
    int ql = http_query(req, "Qualifier", q, sizeof(q));
    if (ql >= 0 || ql == -2) {
        bool digits = ql > 0 && strspn(q, "0123456789") == (size_t)ql;
        if (ql < 1 || ql > 128 || digits || strspn(q, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != (size_t)ql) {
            http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value '%s' at 'qualifier' "
                            "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                            PAT_URL_QUALIFIER, ql >= 0 ? q : "");
            return NULL;
        }
    }
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, true, n);
    if (!r)
        return NULL;
    if (n->qualifier[0] && (!strcmp(n->qualifier, "$LATEST") || registry_version(r, n->qualifier))) {
        http_send_error(req, &AWS_VALIDATION, "1 validation error detected: Value '%s' at 'qualifier' "
                        "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                        PAT_URL_QUALIFIER, n->qualifier);
        registry_record_unref(r);
        return NULL;
    }
    return r;
}

/* The stored configurations (extras.urls) of a published record: a new
 * object the caller owns (empty when none). */
static json_t *record_urls(const struct fn_record *r)
{
    json_t *extras = r->extras_json ? json_loads(r->extras_json, 0, NULL) : NULL;
    json_t *urls = json_incref(json_object_get(extras, "urls"));
    json_decref(extras);
    return urls ? urls : json_object();
}

/* The API shape of a stored configuration (without UrlId). */
static json_t *public_config(json_t *stored, bool with_modified)
{
    json_t *o = json_deep_copy(stored);
    json_object_del(o, "UrlId");
    if (!with_modified)
        json_object_del(o, "LastModifiedTime");
    return o;
}

static void check_str_list(json_t *cors, const char *key, const char *member, size_t max_items,
                           size_t max_len, struct vlist *v)
{
    json_t *a = json_object_get(cors, key), *e;
    size_t i;
    char what[256];
    if (!a || json_is_null(a))
        return;
    if (!json_is_array(a)) {
        vlist_add(v, NULL, member, "Member must be a list");
        return;
    }
    if (json_array_size(a) > max_items) {
        snprintf(what, sizeof(what), "Member must have length less than or equal to %zu", max_items);
        vlist_add(v, NULL, member, what);
    }
    json_array_foreach(a, i, e) {
        if (!json_is_string(e) || strlen(json_string_value(e)) > max_len || !*json_string_value(e)) {
            snprintf(what, sizeof(what), "Member must satisfy constraint: [Member must have length less "
                     "than or equal to %zu, Member must have length greater than or equal to 1]", max_len);
            vlist_add(v, json_is_string(e) ? json_string_value(e) : NULL, member, what);
            return;
        }
    }
}

/* Checks AuthType / Cors / InvokeMode of a Create or Update body. */
static int check_body(json_t *body, bool create, struct api_error *err)
{
    struct vlist v;
    vlist_init(&v);
    json_t *auth = json_object_get(body, "AuthType");
    if (!auth || json_is_null(auth)) {
        if (create)
            vlist_add(&v, NULL, "authType", "Member must not be null");
    } else if (!json_is_string(auth) ||
               (strcmp(json_string_value(auth), "NONE") && strcmp(json_string_value(auth), "AWS_IAM"))) {
        vlist_add(&v, json_is_string(auth) ? json_string_value(auth) : NULL, "authType",
                  "Member must satisfy enum value set: [AWS_IAM, NONE]");
    }
    json_t *mode = json_object_get(body, "InvokeMode");
    if (mode && !json_is_null(mode) &&
        (!json_is_string(mode) || (strcmp(json_string_value(mode), "BUFFERED") &&
                                   strcmp(json_string_value(mode), "RESPONSE_STREAM"))))
        vlist_add(&v, json_is_string(mode) ? json_string_value(mode) : NULL, "invokeMode",
                  "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]");
    json_t *cors = json_object_get(body, "Cors");
    if (cors && !json_is_null(cors)) {
        if (!json_is_object(cors)) {
            vlist_add(&v, NULL, "cors", "Member must be a structure");
        } else {
            check_str_list(cors, "AllowHeaders", "cors.allowHeaders", 100, 1024, &v);
            check_str_list(cors, "ExposeHeaders", "cors.exposeHeaders", 100, 1024, &v);
            check_str_list(cors, "AllowMethods", "cors.allowMethods", 6, 6, &v);
            check_str_list(cors, "AllowOrigins", "cors.allowOrigins", 100, 253, &v);
            json_t *age = json_object_get(cors, "MaxAge");
            if (age && !json_is_null(age) && (!json_is_integer(age) || json_integer_value(age) < 0 ||
                                              json_integer_value(age) > 86400)) {
                char val[32];
                snprintf(val, sizeof(val), "%lld", json_is_integer(age) ? (long long)json_integer_value(age) : 0LL);
                vlist_add(&v, val, "cors.maxAge", json_is_integer(age) && json_integer_value(age) < 0
                                                      ? "Member must have value greater than or equal to 0"
                                                      : "Member must have value less than or equal to 86400");
            }
            json_t *cred = json_object_get(cors, "AllowCredentials");
            if (cred && !json_is_null(cred) && !json_is_boolean(cred))
                vlist_add(&v, NULL, "cors.allowCredentials", "Member must be a boolean");
        }
    }
    if (vlist_finish(&v, err))
        return -1;
    /* AWS refuses '*' with credentials, and methods it does not know. */
    json_t *m, *methods = json_object_get(cors, "AllowMethods");
    size_t i;
    json_array_foreach(methods, i, m) {
        static const char *const ok[] = {"GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "*", NULL};
        bool known = false;
        for (size_t k = 0; ok[k]; k++)
            known |= !strcmp(json_string_value(m), ok[k]);
        if (!known)
            return api_fail(err, &AWS_INVALID_PARAMETER_VALUE, "Invalid Cors AllowMethods: %s",
                            json_string_value(m));
    }
    return 0;
}

/* Copies the set members of a Cors structure (AWS echoes only those). */
static json_t *cors_copy(json_t *cors)
{
    static const char *const keys[] = {"AllowCredentials", "AllowHeaders", "AllowMethods", "AllowOrigins",
                                       "ExposeHeaders", "MaxAge", NULL};
    json_t *o = json_object();
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(cors, keys[i]);
        if (v && !json_is_null(v))
            json_object_set(o, keys[i], v);
    }
    return o;
}

static json_t *doc_urls(json_t *doc)
{
    json_t *extras = json_object_get(doc, "extras");
    if (!extras) {
        extras = json_object();
        json_object_set_new(doc, "extras", extras);
    }
    json_t *urls = json_object_get(extras, "urls");
    if (!urls) {
        urls = json_object();
        json_object_set_new(extras, "urls", urls);
    }
    return urls;
}

struct url_edit {
    const char *key;
    const char *arn;
    const char *region;
    json_t *body;
    json_t *result; /* the stored configuration after the edit (a reference) */
};

static void random_id(char out[URL_ID_LEN + 1])
{
    char a[37], b[37];
    http_uuid4(a);
    http_uuid4(b);
    size_t o = 0;
    for (const char *p = a; *p && o < URL_ID_LEN; p++)
        if (*p != '-' && p != a + 14) /* skip the fixed version nibble */
            out[o++] = *p;
    for (const char *p = b; *p && o < URL_ID_LEN; p++)
        if (*p != '-' && p != b + 14)
            out[o++] = *p;
    out[o] = 0;
}

static int mutate_create(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    struct url_edit *e = ud;
    json_t *urls = doc_urls(doc);
    if (json_object_get(urls, e->key))
        return api_fail(err, &AWS_RESOURCE_CONFLICT, "Failed to create function url config for [functionArn = %s]. "
                        "Error message:  FunctionUrlConfig exists for this Lambda function", e->arn);
    char id[URL_ID_LEN + 1], url[200], ts[40];
    random_id(id);
    snprintf(url, sizeof(url), "https://%s.lambda-url.%s.on.aws/", id, e->region);
    api_now_iso(ts, 6, "Z");
    json_t *c = json_pack("{s:s,s:s,s:s,s:s}", "FunctionUrl", url, "FunctionArn", e->arn, "AuthType",
                          api_jstr(e->body, "AuthType"), "CreationTime", ts);
    json_t *cors = json_object_get(e->body, "Cors");
    if (json_is_object(cors))
        json_object_set_new(c, "Cors", cors_copy(cors));
    json_object_set_new(c, "LastModifiedTime", json_string(ts));
    json_object_set_new(c, "InvokeMode", json_string(api_jstr(e->body, "InvokeMode") ? api_jstr(e->body, "InvokeMode")
                                                                                  : "BUFFERED"));
    json_object_set_new(c, "UrlId", json_string(id));
    json_object_set_new(urls, e->key, c);
    e->result = json_incref(c);
    return 0;
}

static int mutate_update(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    struct url_edit *e = ud;
    json_t *c = json_object_get(doc_urls(doc), e->key);
    if (!c)
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
    char ts[40];
    api_now_iso(ts, 6, "Z");
    if (api_jstr(e->body, "AuthType"))
        json_object_set_new(c, "AuthType", json_string(api_jstr(e->body, "AuthType")));
    if (api_jstr(e->body, "InvokeMode"))
        json_object_set_new(c, "InvokeMode", json_string(api_jstr(e->body, "InvokeMode")));
    json_t *cors = json_object_get(e->body, "Cors");
    if (json_is_object(cors))
        json_object_set_new(c, "Cors", cors_copy(cors));
    json_object_set_new(c, "LastModifiedTime", json_string(ts));
    e->result = json_incref(c);
    return 0;
}

static int mutate_delete(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    struct url_edit *e = ud;
    json_t *urls = doc_urls(doc);
    if (!json_object_get(urls, e->key))
        return api_fail(err, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
    json_object_del(urls, e->key);
    return 0;
}

/* The local forms of a URL id, as one response header. */
static void local_url_header(struct http_req *req, json_t *stored, char *out, size_t len)
{
    const char *host = http_header(req, "Host");
    const char *colon = host ? strrchr(host, ':') : NULL;
    const struct lambdad_config *c = config_current();
    char port[16];
    snprintf(port, sizeof(port), "%s", colon ? colon + 1 : "");
    if (!port[0] && c)
        snprintf(port, sizeof(port), "%d", c->port);
    const char *id = api_jstr(stored, "UrlId"), *url = api_jstr(stored, "FunctionUrl");
    const char *region = url ? strstr(url, ".lambda-url.") : NULL;
    char reg[40] = "us-east-1";
    if (region) {
        region += 12;
        size_t n = strcspn(region, ".");
        snprintf(reg, sizeof(reg), "%.*s", (int)(n < sizeof(reg) ? n : sizeof(reg) - 1), region);
    }
    snprintf(out, len, "X-Lambdad-Local-Url: http://%s.lambda-url.%s.localhost:%s/\r\n"
             "X-Lambdad-Local-Path-Url: http://127.0.0.1:%s" URL_PATH_PREFIX "%s/\r\n",
             id ? id : "", reg, port, port, id ? id : "");
}

static void send_config(struct http_req *req, int status, json_t *stored, bool with_modified)
{
    char headers[512];
    local_url_header(req, stored, headers, sizeof(headers));
    json_t *o = public_config(stored, with_modified);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text)
        http_send(req, status, "application/json", headers, text, strlen(text));
    else
        http_send_error(req, &AWS_SERVICE, "out of memory");
    free(text);
}

static void edit(struct http_req *req, registry_mutate_fn fn, bool create)
{
    struct api_error err;
    struct fn_name n;
    char arn[600];
    json_t *body = NULL;
    if (fn != mutate_delete && !(body = api_read_json_body(req)))
        return;
    struct fn_record *r = url_target(req, &n);
    if (!r)
        goto out;
    registry_record_unref(r);
    if (body && check_body(body, create, &err)) {
        http_send_api_error(req, &err);
        goto out;
    }
    validate_function_arn(&n, n.qualifier[0] != 0, arn, sizeof(arn));
    struct url_edit e = {.key = n.qualifier, .arn = arn, .region = n.region, .body = body};
    if (registry_update(&n, fn, &e, NULL, 0, NULL, &err))
        http_send_api_error(req, &err);
    else if (fn == mutate_delete)
        http_send_empty(req, 204);
    else
        send_config(req, create ? 201 : 200, e.result, !create);
    json_decref(e.result);
out:
    json_decref(body);
}

void api_create_url_config(struct http_req *req)
{
    edit(req, mutate_create, true);
}

void api_update_url_config(struct http_req *req)
{
    edit(req, mutate_update, false);
}

void api_delete_url_config(struct http_req *req)
{
    edit(req, mutate_delete, false);
}

void api_get_url_config(struct http_req *req)
{
    struct fn_name n;
    struct fn_record *r = url_target(req, &n);
    if (!r)
        return;
    json_t *urls = record_urls(r);
    json_t *c = json_object_get(urls, n.qualifier);
    if (c)
        send_config(req, 200, c, true);
    else
        http_send_error(req, &AWS_RESOURCE_NOT_FOUND, MSG_RESOURCE_NOT_FOUND);
    json_decref(urls);
    registry_record_unref(r);
}

void api_list_url_configs(struct http_req *req)
{
    struct fn_name n;
    long max, start;
    if (!api_max_items(req, LIST_MAX, LIST_MAX, &max) || !api_offset_marker(req, &start))
        return;
    struct fn_record *r = api_resolve_ref(req, FN_NAME_MAX, false, &n);
    if (!r)
        return;
    json_t *urls = record_urls(r);
    registry_record_unref(r);
    /* "" (the unqualified function) sorts first, then aliases by name. */
    size_t total = json_object_size(urls), k = 0;
    const char **keys = calloc(total + 1, sizeof(*keys));
    const char *key;
    json_t *val;
    json_object_foreach(urls, key, val) keys[k++] = key;
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    json_t *list = json_array();
    long i;
    for (i = start; i < (long)k && i < start + max; i++)
        json_array_append_new(list, public_config(json_object_get(urls, keys[i]), true));
    json_t *resp = json_pack("{s:o}", "FunctionUrlConfigs", list);
    if (i < (long)k) {
        char next[32];
        snprintf(next, sizeof(next), "%ld", i);
        json_object_set_new(resp, "NextMarker", json_string(next));
    }
    free(keys);
    json_decref(urls);
    http_send_jsont(req, 200, resp);
}

/* --- serving ----------------------------------------------------------- */

static void send_plain(struct http_req *req, int status, const char *msg)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"Message\":\"%s\"}", msg);
    http_send(req, status, "application/json", NULL, body, (size_t)n);
}

/* Whether origin is allowed by the Cors configuration; *star when by "*". */
static bool origin_allowed(json_t *cors, const char *origin, bool *star)
{
    json_t *e;
    size_t i;
    *star = false;
    json_array_foreach(json_object_get(cors, "AllowOrigins"), i, e) {
        const char *o = json_string_value(e);
        if (o && !strcmp(o, "*"))
            *star = true;
        else if (o && origin && !strcasecmp(o, origin))
            return true;
    }
    return *star;
}

static void join_list(json_t *arr, char *out, size_t len)
{
    json_t *e;
    size_t i, o = 0;
    out[0] = 0;
    json_array_foreach(arr, i, e) {
        const char *s = json_string_value(e);
        if (!s || strpbrk(s, "\r\n"))
            continue;
        int n = snprintf(out + o, len - o, "%s%s", o ? "," : "", s);
        if (n < 0 || (size_t)n >= len - o) {
            out[o] = 0; /* no half entry */
            break;
        }
        o += (size_t)n;
    }
}

/* snprintf at out + *o that never moves *o past len (a line that does not
 * fit is dropped whole). */
static void appendf(char *out, size_t len, size_t *o, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void appendf(char *out, size_t len, size_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = *o < len ? vsnprintf(out + *o, len - *o, fmt, ap) : -1;
    va_end(ap);
    if (n >= 0 && (size_t)n < len - *o)
        *o += (size_t)n;
    else if (*o < len)
        out[*o] = 0;
}

/* Writes the CORS response headers for a request from origin into out. */
static void cors_headers(json_t *cors, const char *origin, bool preflight, char *out, size_t len)
{
    bool star;
    out[0] = 0;
    if (!json_is_object(cors) || !origin || strpbrk(origin, "\r\n") || !origin_allowed(cors, origin, &star))
        return;
    char list[2048];
    size_t o = 0;
    bool cred = json_is_true(json_object_get(cors, "AllowCredentials"));
    appendf(out, len, &o, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", star && !cred ? "*" : origin);
    if (cred)
        appendf(out, len, &o, "Access-Control-Allow-Credentials: true\r\n");
    if (preflight) {
        join_list(json_object_get(cors, "AllowMethods"), list, sizeof(list));
        if (list[0])
            appendf(out, len, &o, "Access-Control-Allow-Methods: %s\r\n", list);
        join_list(json_object_get(cors, "AllowHeaders"), list, sizeof(list));
        if (list[0])
            appendf(out, len, &o, "Access-Control-Allow-Headers: %s\r\n", list);
        json_t *age = json_object_get(cors, "MaxAge");
        if (json_is_integer(age))
            appendf(out, len, &o, "Access-Control-Max-Age: %lld\r\n", (long long)json_integer_value(age));
    } else {
        join_list(json_object_get(cors, "ExposeHeaders"), list, sizeof(list));
        if (list[0])
            appendf(out, len, &o, "Access-Control-Expose-Headers: %s\r\n", list);
    }
}

static bool text_content_type(const char *ct)
{
    if (!ct)
        return true; /* no body type: AWS passes text */
    static const char *const text[] = {"text/", "application/json", "application/javascript",
                                       "application/xml", "application/x-www-form-urlencoded", NULL};
    for (size_t i = 0; text[i]; i++)
        if (!strncasecmp(ct, text[i], strlen(text[i])))
            return true;
    return strstr(ct, "+json") || strstr(ct, "+xml");
}

static char *b64(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* Adds a header (lower-cased name) or query parameter to the event;
 * repeated names get their values joined with ','. */
static void event_header(json_t *headers, const char *name, const char *value, bool lower)
{
    char lname[1024];
    size_t i;
    for (i = 0; name[i] && i < sizeof(lname) - 1; i++)
        lname[i] = lower ? (char)tolower((unsigned char)name[i]) : name[i];
    lname[i] = 0;
    json_t *old = json_object_get(headers, lname);
    if (old) {
        size_t n = strlen(json_string_value(old)) + strlen(value) + 2;
        char *j = malloc(n);
        if (j) {
            snprintf(j, n, "%s,%s", json_string_value(old), value);
            json_object_set_new(headers, lname, json_string(j));
            free(j);
        }
    } else {
        json_t *v = json_string(value);
        if (v)
            json_object_set_new(headers, lname, v);
    }
}

static json_t *query_params(const char *qs)
{
    json_t *params = json_object();
    char key[1024], val[4096];
    for (const char *p = qs; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        if (kl && http_pct_decode(p, kl, key, sizeof(key), true) >= 0 &&
            http_pct_decode(eq ? eq + 1 : p + len, eq ? len - kl - 1 : 0, val, sizeof(val), true) >= 0)
            event_header(params, key, val, false); /* repeated values joined with ',' */
        p += len + (p[len] == '&');
    }
    return params;
}

/* Appends the cookies of a Cookie header ("a=1; b=2") to arr (values that
 * are not UTF-8 are skipped). */
static void cookie_list(json_t *arr, const char *value)
{
    char *copy = strdup(value), *save = NULL;
    for (char *c = copy ? strtok_r(copy, ";", &save) : NULL; c; c = strtok_r(NULL, ";", &save)) {
        while (*c == ' ')
            c++;
        json_t *v = *c ? json_string(c) : NULL;
        if (v)
            json_array_append_new(arr, v);
    }
    free(copy);
}

/* Builds the payload format 2.0 event. */
static char *build_event(struct http_req *req, const char *id, const char *region, const char *account,
                         const char *raw_path, bool iam)
{
    const struct mg_request_info *ri = req->ri;
    json_t *headers = json_object(), *cookies = json_array();
    for (int i = 0; i < ri->num_headers; i++) {
        const char *name = ri->http_headers[i].name, *value = ri->http_headers[i].value;
        if (!name || !value)
            continue;
        if (!strcasecmp(name, "Cookie")) {
            cookie_list(cookies, value);
            continue;
        }
        event_header(headers, name, value, true);
    }
    struct timeval tv;
    struct tm tm;
    char tbuf[64], domain[160], proto[32], path[HTTP_PATH_MAX];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    snprintf(domain, sizeof(domain), "%s.lambda-url.%s.on.aws", id, region);
    snprintf(proto, sizeof(proto), "HTTP/%s", ri->http_version ? ri->http_version : "1.1");
    if (http_pct_decode(raw_path, strlen(raw_path), path, sizeof(path), false) < 0)
        snprintf(path, sizeof(path), "%s", raw_path);
    const char *ua = http_header(req, "User-Agent");
    json_t *http = json_pack("{s:s,s:s,s:s,s:s,s:s}", "method", req->method, "path", path, "protocol", proto,
                             "sourceIp", ri->remote_addr, "userAgent", ua ? ua : "");
    json_t *ctx = json_pack("{s:s,s:s,s:n,s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:I}", "accountId", iam ? account : "anonymous",
                            "apiId", id, "authentication", "domainName", domain, "domainPrefix", id, "http", http,
                            "requestId", req->request_id, "routeKey", "$default", "stage", "$default", "time", tbuf,
                            "timeEpoch", (json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    if (iam)
        json_object_set_new(ctx, "authorizer",
                            json_pack("{s:{s:s,s:s,s:n,s:s,s:n,s:s}}", "iam", "accessKey", "", "accountId", account,
                                      "callerId", "cognitoIdentity", "principalOrgId", "userArn", "", "userId"));
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s}", "version", "2.0", "routeKey", "$default", "rawPath", path,
                           "rawQueryString", ri->query_string ? ri->query_string : "");
    if (json_array_size(cookies))
        json_object_set(ev, "cookies", cookies);
    json_object_set(ev, "headers", headers);
    if (ri->query_string && *ri->query_string)
        json_object_set_new(ev, "queryStringParameters", query_params(ri->query_string));
    json_object_set_new(ev, "requestContext", ctx);
    if (req->body_len) {
        const char *ct = http_header(req, "Content-Type");
        json_t *text = text_content_type(ct) ? json_stringn(req->body, req->body_len) : NULL; /* NULL: not UTF-8 */
        if (text) {
            json_object_set_new(ev, "body", text);
            json_object_set_new(ev, "isBase64Encoded", json_false());
        } else {
            char *enc = b64(req->body, req->body_len);
            json_object_set_new(ev, "body", json_string(enc ? enc : ""));
            json_object_set_new(ev, "isBase64Encoded", json_true());
            free(enc);
        }
    } else {
        json_object_set_new(ev, "isBase64Encoded", json_false());
    }
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    json_decref(headers);
    json_decref(cookies);
    return text;
}

struct url_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void on_url_done(struct invocation *inv)
{
    struct url_waiter *w = inv->user;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Whether a function-chosen header may be passed on (no CR/LF, not one the
 * server owns). */
static bool header_ok(const char *name, const char *value)
{
    static const char *const owned[] = {"content-length", "transfer-encoding", "connection",
                                        "x-amzn-requestid", NULL};
    if (!*name || strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n"))
        return false;
    for (size_t i = 0; owned[i]; i++)
        if (!strcasecmp(name, owned[i]))
            return false;
    return true;
}

struct hbuf {
    char *s;
    size_t len, cap;
};

static void hb_add(struct hbuf *h, const char *name, const char *value)
{
    size_t need = strlen(name) + strlen(value) + 5;
    if (h->len + need + 1 > h->cap) {
        size_t cap = (h->cap + need) * 2 + 256;
        char *n = realloc(h->s, cap);
        if (!n)
            return;
        h->s = n;
        h->cap = cap;
    }
    h->len += (size_t)snprintf(h->s + h->len, h->cap - h->len, "%s: %s\r\n", name, value);
}

/* Splits an awslambda.HttpResponseStream response (JSON prelude, 8 NUL
 * bytes, body): returns the prelude (statusCode 200 when it has none; NULL
 * when it is not a JSON object) and points *body into data. */
static json_t *integration_prelude(const char *data, size_t len, const char **body, size_t *blen)
{
    static const char delim[8] = {0};
    const char *d = memmem(data, len, delim, sizeof(delim));
    size_t plen = d ? (size_t)(d - data) : len;
    /* jansson recurses per level: deep nesting is not a prelude (http.h). */
    json_t *res = http_json_too_deep(data, plen, 256) ? NULL : json_loadb(data, plen, 0, NULL);
    *body = d ? d + sizeof(delim) : "";
    *blen = d ? len - plen - sizeof(delim) : 0;
    if (json_is_object(res) && !json_object_get(res, "statusCode"))
        json_object_set_new(res, "statusCode", json_integer(200));
    return res;
}

/* The first header lines of every URL response: trace id, then the CORS
 * lines (complete "Name: value\r\n" lines). */
static void base_headers(struct hbuf *h, const char *cors)
{
    hb_add(h, "X-Amzn-Trace-Id", "Root=1-00000000-000000000000000000000000");
    if (cors[0]) {
        size_t cl = strlen(cors);
        char *n = realloc(h->s, h->len + cl + 1);
        if (n) {
            h->s = n;
            memcpy(h->s + h->len, cors, cl + 1);
            h->len += cl;
            h->cap = h->len + 1;
        }
    }
}

/* The status of an HTTP response object (statusCode as a number or a
 * string) and its headers and cookies appended to h. Returns the status,
 * or 0 when it is not a valid one (AWS answers 502). */
static int result_head(json_t *res, struct hbuf *h, bool *has_ct)
{
    json_t *sc = json_object_get(res, "statusCode");
    int status = json_is_integer(sc) ? (int)json_integer_value(sc)
                 : json_is_string(sc) ? atoi(json_string_value(sc)) : 0;
    if (status < 100 || status > 599)
        return 0;
    const char *k;
    json_t *v;
    char num[64];
    *has_ct = false;
    json_object_foreach(json_object_get(res, "headers"), k, v) {
        const char *val = json_string_value(v);
        if (json_is_integer(v) || json_is_real(v) || json_is_boolean(v)) {
            if (json_is_integer(v))
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            else if (json_is_real(v))
                snprintf(num, sizeof(num), "%g", json_real_value(v));
            else
                snprintf(num, sizeof(num), "%s", json_is_true(v) ? "true" : "false");
            val = num;
        }
        if (!val || !header_ok(k, val))
            continue;
        *has_ct |= !strcasecmp(k, "Content-Type");
        hb_add(h, k, val);
    }
    size_t i;
    json_array_foreach(json_object_get(res, "cookies"), i, v) {
        if (json_is_string(v) && header_ok("Set-Cookie", json_string_value(v)))
            hb_add(h, "Set-Cookie", json_string_value(v));
    }
    return status;
}

/* Maps the function's result to the HTTP response, as AWS does. */
static void send_result(struct http_req *req, struct invocation *inv, const char *cors)
{
    struct hbuf h = {0};
    base_headers(&h, cors);
    json_t *res = NULL;
    const char *raw = NULL; /* streamed HTTP integration response: the body after the prelude */
    size_t raw_len = 0;
    static const char integ[] = "application/vnd.awslambda.http-integration-response";
    if (!strncasecmp(inv->content_type, integ, sizeof(integ) - 1) && inv->result) {
        res = integration_prelude(inv->result, inv->result_len, &raw, &raw_len);
    } else if (inv->result && !http_json_too_deep(inv->result, inv->result_len, 256)) {
        res = json_loadb(inv->result, inv->result_len, JSON_DECODE_ANY, NULL); /* deep: sent as is */
    }
    if (!json_is_object(res) || !json_object_get(res, "statusCode")) {
        /* Not an HTTP response object: 200 with the JSON as the body. */
        http_send(req, 200, "application/json", h.s, inv->result ? inv->result : "", inv->result_len);
        goto out;
    }
    bool has_ct;
    int status = result_head(res, &h, &has_ct);
    if (!status) {
        send_plain(req, 502, "Internal Server Error");
        goto out;
    }
    json_t *body = json_object_get(res, "body");
    const char *btext = "";
    size_t blen = 0;
    unsigned char *decoded = NULL;
    char *dumped = NULL;
    if (raw) {
        btext = raw;
        blen = raw_len;
    } else if (json_is_string(body)) {
        btext = json_string_value(body);
        blen = json_string_length(body);
    } else if (body && !json_is_null(body)) {
        dumped = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        btext = dumped ? dumped : "";
        blen = strlen(btext);
    }
    if (!raw && json_is_true(json_object_get(res, "isBase64Encoded")) && blen) {
        size_t dl;
        if (http_base64_decode(btext, blen, &decoded, &dl) == 0) {
            btext = (const char *)decoded;
            blen = dl;
        } else {
            send_plain(req, 502, "Internal Server Error");
            free(dumped);
            goto out;
        }
    }
    http_send(req, status, has_ct ? NULL : "application/json", h.s, btext, blen);
    free(decoded);
    free(dumped);
out:
    json_decref(res);
    free(h.s);
}

/* The answer of a finished invocation whose response was not streamed
 * (or whose streamed prelude never completed). */
static void send_outcome(struct http_req *req, struct invocation *inv, const char *cors)
{
    switch (inv->outcome) {
    case INV_OK:
        send_result(req, inv, cors);
        break;
    case INV_THROTTLED:
        send_plain(req, 429, "Rate Exceeded.");
        break;
    default:
        send_plain(req, 502, "Internal Server Error");
        break;
    }
}

/* A streamed response on its way to the client (RESPONSE_STREAM). */
struct url_stream {
    struct http_req *req;
    const char *cors;
    bool integration;  /* application/vnd.awslambda.http-integration-response */
    bool head_sent;    /* status and headers are out: bytes go straight through */
    bool gone;         /* the client went away (or the answer was a 502) */
    char ctype[96];
    char *pre;         /* integration: bytes until the 8 NULs after the prelude */
    size_t pre_len;
};

#define URL_PRELUDE_MAX (1u << 20)

/* Starts the HTTP response of a streamed result: the runtime's content
 * type and 200, or for an integration response the prelude's status,
 * headers and cookies. body/blen: bytes after the prelude. */
static void url_stream_head(struct url_stream *u, json_t *res, const char *body, size_t blen)
{
    struct hbuf h = {0};
    base_headers(&h, u->cors);
    int status = 200;
    bool has_ct = false;
    const char *ct = u->ctype;
    if (res) {
        status = result_head(res, &h, &has_ct);
        ct = has_ct ? NULL : "application/json";
    }
    u->head_sent = true;
    if (!status) {
        send_plain(u->req, 502, "Internal Server Error");
        u->gone = true;
    } else {
        u->gone = http_begin_stream(u->req, status, ct, h.s) < 0 ||
                  http_stream_write(u->req, body, blen) < 0;
    }
    free(h.s);
}

/* The next streamed bytes (ownership of data passes here). */
static void url_stream_data(struct url_stream *u, char *data, size_t len)
{
    static const char delim[8] = {0};
    if (u->gone || u->head_sent) {
        u->gone = u->gone || http_stream_write(u->req, data, len) < 0;
        free(data);
        return;
    }
    if (!u->integration) {
        url_stream_head(u, NULL, data, len);
        free(data);
        return;
    }
    /* Integration response: wait for the whole prelude. */
    size_t old = u->pre_len;
    if (!u->pre) {
        u->pre = data;
        u->pre_len = len;
    } else {
        char *n = realloc(u->pre, u->pre_len + len);
        if (!n) {
            free(data);
            u->gone = true;
            send_plain(u->req, 502, "Internal Server Error");
            return;
        }
        memcpy(n + u->pre_len, data, len);
        u->pre = n;
        u->pre_len += len;
        free(data);
    }
    size_t from = old > 7 ? old - 7 : 0; /* the delimiter may straddle pieces */
    const char *d = memmem(u->pre + from, u->pre_len - from, delim, sizeof(delim));
    if (!d && u->pre_len <= URL_PRELUDE_MAX)
        return;
    const char *body;
    size_t blen;
    json_t *res = integration_prelude(u->pre, u->pre_len, &body, &blen);
    if (json_is_object(res)) {
        url_stream_head(u, res, body, blen);
    } else {
        /* Not a prelude: what came is the body, as send_result does. */
        snprintf(u->ctype, sizeof(u->ctype), "application/json");
        url_stream_head(u, NULL, u->pre, u->pre_len);
    }
    json_decref(res);
    free(u->pre);
    u->pre = NULL;
    u->pre_len = 0;
}

/* Relays a RESPONSE_STREAM invocation: a response the runtime streams
 * reaches the client as it is written (an integration prelude first
 * becomes the status and headers); a buffered one is mapped at the end as
 * in BUFFERED mode. A failure after the head went out just ends the body;
 * a client that goes away abandons the stream (the function runs on, its
 * output discarded) and this worker waits for the end before freeing inv. */
static void relay_url_stream(struct http_req *req, struct invocation *inv, const char *cors)
{
    static const char integ[] = "application/vnd.awslambda.http-integration-response";
    struct url_stream u = {.req = req, .cors = cors};
    bool begun = false;
    char *data;
    size_t len;
    int ev;
    while ((ev = invstream_next(inv->stream, &data, &len, u.ctype, sizeof(u.ctype))) != INVSTREAM_END) {
        if (ev == INVSTREAM_BEGUN) {
            begun = true;
            u.integration = !strncasecmp(u.ctype, integ, sizeof(integ) - 1);
        } else {
            url_stream_data(&u, data, len);
        }
        if (u.gone)
            invstream_abandon(inv->stream);
    }
    if (!begun || (!u.head_sent && !u.gone)) {
        if (begun) { /* the prelude never completed: map what came, whole */
            free(inv->result);
            inv->result = u.pre ? u.pre : strdup("");
            inv->result_len = u.pre ? u.pre_len : 0;
            u.pre = NULL;
            snprintf(inv->content_type, sizeof(inv->content_type), "%s", u.ctype);
        }
        send_outcome(req, inv, cors);
    } else if (!u.gone) {
        http_end_stream(req);
    }
    free(u.pre);
}

static void on_url_stream_done(struct invocation *inv)
{
    invstream_close(inv->stream); /* the last touch: the worker may free inv now */
}

static void serve(struct http_req *req, const char *id, const char *raw_path)
{
    struct fn_record *r = NULL;
    json_t *urls = NULL, *cfg = NULL;
    char key[160] = "";
    bool ok_id = strlen(id) == URL_ID_LEN && strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789") == URL_ID_LEN;
    if (ok_id)
        r = registry_find_extra(id);
    if (r) {
        urls = record_urls(r);
        const char *k;
        json_t *v;
        json_object_foreach(urls, k, v) {
            const char *uid = api_jstr(v, "UrlId");
            if (uid && !strcmp(uid, id)) {
                cfg = v;
                snprintf(key, sizeof(key), "%s", k);
                break;
            }
        }
    }
    if (!cfg) {
        send_plain(req, 404, "Not Found");
        goto out;
    }
    const char *auth = http_header(req, "Authorization");
    bool iam = !strcmp(api_jstr(cfg, "AuthType") ? api_jstr(cfg, "AuthType") : "", "AWS_IAM");
    json_t *cors = json_object_get(cfg, "Cors");
    const char *origin = http_header(req, "Origin");
    char corsbuf[6000];
    if (!strcmp(req->method, "OPTIONS") && json_is_object(cors) && origin &&
        http_header(req, "Access-Control-Request-Method")) {
        cors_headers(cors, origin, true, corsbuf, sizeof(corsbuf));
        http_send(req, 200, NULL, corsbuf, "", 0);
        goto out;
    }
    if (iam && (!auth || strncmp(auth, "AWS4-HMAC-SHA256 ", 17))) {
        send_plain(req, 403, "Forbidden");
        goto out;
    }
    cors_headers(cors, origin, false, corsbuf, sizeof(corsbuf));
    req->body_cap = HTTP_BODY_CAP_INVOKE;
    if (http_read_body(req) < 0)
        goto out;
    struct fn_spec *spec = registry_spec_for(r, key);
    if (!spec) {
        send_plain(req, 404, "Not Found");
        goto out;
    }
    char *event = build_event(req, id, r->region, r->account, raw_path, iam);
    struct invocation *inv = event ? invocation_new(spec) : NULL;
    fnspec_unref(spec);
    if (!inv) {
        free(event);
        send_plain(req, 500, "Internal Server Error");
        goto out;
    }
    snprintf(inv->request_id, sizeof(inv->request_id), "%s", req->request_id);
    inv->invoked_arn = strdup(api_jstr(cfg, "FunctionArn") ? api_jstr(cfg, "FunctionArn") : r->arn);
    inv->payload = event;
    inv->payload_len = strlen(event);
    bool streamed = !strcmp(api_jstr(cfg, "InvokeMode") ? api_jstr(cfg, "InvokeMode") : "", "RESPONSE_STREAM");
    if (streamed && (inv->stream = invstream_new())) {
        inv->on_done = on_url_stream_done;
        pool_submit(inv);
        relay_url_stream(req, inv, corsbuf);
        invocation_free(inv);
        goto out;
    }
    struct url_waiter w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    inv->user = &w;
    inv->on_done = on_url_done;
    pool_submit(inv);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    send_outcome(req, inv, corsbuf);
    invocation_free(inv);
out:
    json_decref(urls);
    registry_record_unref(r);
}

bool api_url_dispatch(struct http_req *req)
{
    const char *host = http_header(req, "Host");
    const char *path = req->ri->local_uri_raw ? req->ri->local_uri_raw : req->ri->request_uri;
    char id[64];
    if (!path)
        return false;
    const char *dot = host ? strstr(host, ".lambda-url.") : NULL;
    if (dot) {
        size_t n = (size_t)(dot - host);
        snprintf(id, sizeof(id), "%.*s", (int)(n < sizeof(id) ? n : sizeof(id) - 1), host);
        req->op = "FunctionUrl";
        serve(req, id, path);
        return true;
    }
    if (!strncmp(path, URL_PATH_PREFIX, sizeof(URL_PATH_PREFIX) - 1)) {
        const char *p = path + sizeof(URL_PATH_PREFIX) - 1;
        size_t n = strcspn(p, "/");
        snprintf(id, sizeof(id), "%.*s", (int)(n < sizeof(id) ? n : sizeof(id) - 1), p);
        req->op = "FunctionUrl";
        serve(req, id, p[n] ? p + n : "/");
        return true;
    }
    return false;
}
