/* svc_iam: IAM and STS over the query protocol (see svc_iam.h). */
#include "server/svc_iam.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "runtime/log.h"
#include "server/services.h"

#define IAM_NS "https://iam.amazonaws.com/doc/2010-05-08/"
#define STS_NS "https://sts.amazonaws.com/doc/2011-06-15/"
#define SESSIONS_ID "sts-sessions"
#define MAX_POLICY_VERSIONS 5

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct persist *g_persist;
static json_t *g_accounts; /* account id -> {"roles": {name: role}, "policies": {arn: policy}} */
static json_t *g_sessions; /* access key id -> {"account","arn","user_id","expiration"} */

/* --- small helpers -------------------------------------------------------- */

static void random_id(char *out, size_t n, const char *prefix)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char rnd[64];
    size_t pl = strlen(prefix);
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (unsigned char)(rand() & 0xff);
    memcpy(out, prefix, pl);
    for (size_t i = pl; i < n && i - pl < sizeof(rnd); i++)
        out[i] = alnum[rnd[i - pl] & 31];
    out[n] = 0;
}

static void random_secret(char *out, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char rnd[512];
    if (n > sizeof(rnd))
        n = sizeof(rnd);
    if (getrandom(rnd, n, 0) != (ssize_t)n)
        for (size_t i = 0; i < n; i++)
            rnd[i] = (unsigned char)(rand() & 0xff);
    for (size_t i = 0; i < n; i++)
        out[i] = b64[rnd[i] & 63];
    out[n] = 0;
}

static void iso_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Percent-encodes s as AWS returns policy documents (RFC 3986 unreserved
 * characters kept). */
static void sbuf_urlenc(struct sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            sbuf_append(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sbuf_append(b, e, 3);
        }
    }
}

static void elem_urlenc(struct sbuf *b, const char *tag, const char *doc)
{
    sbuf_printf(b, "<%s>", tag);
    sbuf_urlenc(b, doc ? doc : "");
    sbuf_printf(b, "</%s>", tag);
}

static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n < 1 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_+=,.@-", s[i]))
            return false;
    return true;
}

/* "/" or "/x/y/" with printable ASCII, at most 512 characters. */
static bool path_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 512 || s[0] != '/' || s[n - 1] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

/* --- the response envelope ------------------------------------------------- */

struct resp {
    struct sbuf b;
    const char *action;
};

static void resp_begin(struct resp *r, const char *action, const char *ns, bool result)
{
    memset(r, 0, sizeof(*r));
    r->action = action;
    sbuf_printf(&r->b, "<%sResponse xmlns=\"%s\">", action, ns);
    if (result)
        sbuf_printf(&r->b, "<%sResult>", action);
}

static void resp_end(struct http_req *req, struct resp *r, bool result)
{
    if (result)
        sbuf_printf(&r->b, "</%sResult>", r->action);
    sbuf_printf(&r->b, "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>",
                req->request_id, r->action);
    services_send_xml(req, 200, &r->b, NULL);
    sbuf_free(&r->b);
}

#define QERR(req, st, code, ...) services_send_query_error(req, st, code, __VA_ARGS__)

static void validation_error(struct http_req *req, const char *value, const char *member, const char *what)
{
    QERR(req, 400, "ValidationError",
         "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, member, what);
}

/* A required parameter, or NULL after answering ValidationError. */
static const char *need(struct http_req *req, const struct form *f, const char *name, const char *member)
{
    const char *v = form_get(f, name);
    if (!v)
        QERR(req, 400, "ValidationError",
             "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
             member);
    return v;
}

/* MaxItems (1-1000, default 100) and Marker of a list call; -1 after an
 * error was answered. */
static int list_args(struct http_req *req, const struct form *f, long *max, const char **marker)
{
    const char *m = form_get(f, "MaxItems");
    *max = 100;
    *marker = form_get(f, "Marker");
    if (m) {
        char *end;
        long v = strtol(m, &end, 10);
        if (!*m || *end || v < 1 || v > 1000) {
            validation_error(req, m, "maxItems", "Member must have value between 1 and 1000");
            return -1;
        }
        *max = v;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj, sorted (caller frees the array, not the strings). */
static const char **sorted_keys(json_t *obj, size_t *n)
{
    const char *k;
    json_t *v;
    size_t i = 0;
    *n = json_object_size(obj);
    const char **keys = malloc((*n ? *n : 1) * sizeof(*keys));
    if (!keys) {
        *n = 0;
        return NULL;
    }
    json_object_foreach(obj, k, v) keys[i++] = k;
    qsort(keys, *n, sizeof(*keys), cmp_str);
    return keys;
}

/* --- state ------------------------------------------------------------------ */

static json_t *account_doc(const char *account)
{
    json_t *a = json_object_get(g_accounts, account);
    if (!a) {
        a = json_pack("{s:{},s:{}}", "roles", "policies");
        json_object_set_new(g_accounts, account, a);
    }
    return a;
}

static json_t *roles_of(const char *account)
{
    return json_object_get(account_doc(account), "roles");
}

static json_t *policies_of(const char *account)
{
    return json_object_get(account_doc(account), "policies");
}

/* Persists the account's document; answers ServiceFailure and returns -1
 * on failure. Under g_mu. */
static int save_account(struct http_req *req, const char *account)
{
    if (!g_persist)
        return 0;
    char id[32];
    snprintf(id, sizeof(id), "account-%s", account);
    char *text = json_dumps(account_doc(account), JSON_COMPACT);
    int rc = text ? persist_write(g_persist, id, text, strlen(text)) : -ENOMEM;
    free(text);
    if (rc) {
        LOG_ERROR("iam: cannot persist account %s: %s", account, strerror(-rc));
        QERR(req, 500, "ServiceFailure", "lambdad could not store the change: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

static int save_sessions(void)
{
    if (!g_persist)
        return 0;
    char *text = json_dumps(g_sessions, JSON_COMPACT);
    int rc = text ? persist_write(g_persist, SESSIONS_ID, text, strlen(text)) : -ENOMEM;
    free(text);
    return rc;
}

static int load_doc(void *ud, const char *id, json_t *doc)
{
    (void)ud;
    if (!strcmp(id, SESSIONS_ID)) {
        json_object_update(g_sessions, doc);
    } else if (!strncmp(id, "account-", 8) && strlen(id + 8) == 12 && json_is_object(doc)) {
        if (!json_is_object(json_object_get(doc, "roles")))
            json_object_set_new(doc, "roles", json_object());
        if (!json_is_object(json_object_get(doc, "policies")))
            json_object_set_new(doc, "policies", json_object());
        json_object_set(g_accounts, id + 8, doc);
    } else {
        LOG_WARN("iam: ignoring unknown document %s", id);
    }
    return 0;
}

int iam_init(struct persist *p)
{
    g_persist = p;
    g_accounts = json_object();
    g_sessions = json_object();
    if (!g_accounts || !g_sessions)
        return -ENOMEM;
    return p ? persist_load(p, load_doc, NULL) : 0;
}

void iam_shutdown(void)
{
    json_decref(g_accounts);
    json_decref(g_sessions);
    g_accounts = g_sessions = NULL;
    g_persist = NULL;
}

/* --- ARNs ---------------------------------------------------------------- */

/* Splits "arn:aws:iam::<account>:<kind>/<path...>/<name>" into account and
 * name; returns false when it is not such an ARN. */
static bool parse_iam_arn(const char *arn, const char *kind, char account[13], const char **name)
{
    size_t kl = strlen(kind);
    if (!arn || strncmp(arn, "arn:aws:iam::", 13))
        return false;
    const char *a = arn + 13;
    size_t al = strcspn(a, ":");
    if (a[al] != ':' || strncmp(a + al + 1, kind, kl) || a[al + 1 + kl] != '/')
        return false;
    if (al == 3 && !strncmp(a, "aws", 3))
        snprintf(account, 13, "aws");
    else if (al == 12 && strspn(a, "0123456789") >= 12)
        snprintf(account, 13, "%.12s", a);
    else
        return false;
    const char *slash = strrchr(a + al + 1, '/');
    *name = slash + 1;
    return **name != 0;
}

bool iam_role_exists(const char *role_arn)
{
    char account[13];
    const char *name;
    bool ok = false;
    if (!parse_iam_arn(role_arn, "role", account, &name))
        return false;
    pthread_mutex_lock(&g_mu);
    if (g_accounts) {
        json_t *role = json_object_get(json_object_get(json_object_get(g_accounts, account), "roles"), name);
        ok = role && !strcmp(json_string_value(json_object_get(role, "Arn")), role_arn);
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

bool sts_session_account(const char *akid, char account[13])
{
    bool ok = false;
    pthread_mutex_lock(&g_mu);
    json_t *s = g_sessions ? json_object_get(g_sessions, akid) : NULL;
    const char *a = json_string_value(json_object_get(s, "account"));
    if (a && strlen(a) == 12) {
        memcpy(account, a, 13);
        ok = true;
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

/* --- XML of the entities ------------------------------------------------- */

static void tags_xml(struct sbuf *b, json_t *tags)
{
    size_t i;
    json_t *t;
    sbuf_puts(b, "<Tags>");
    json_array_foreach(tags, i, t) {
        sbuf_puts(b, "<member>");
        sbuf_xml_elem(b, "Key", json_string_value(json_object_get(t, "Key")));
        sbuf_xml_elem(b, "Value", json_string_value(json_object_get(t, "Value")));
        sbuf_puts(b, "</member>");
    }
    sbuf_puts(b, "</Tags>");
}

static void role_xml(struct sbuf *b, const char *tag, json_t *role, bool get)
{
    sbuf_printf(b, "<%s>", tag);
    sbuf_xml_elem(b, "Path", json_string_value(json_object_get(role, "Path")));
    sbuf_xml_elem(b, "RoleName", json_string_value(json_object_get(role, "RoleName")));
    sbuf_xml_elem(b, "RoleId", json_string_value(json_object_get(role, "RoleId")));
    sbuf_xml_elem(b, "Arn", json_string_value(json_object_get(role, "Arn")));
    sbuf_xml_elem(b, "CreateDate", json_string_value(json_object_get(role, "CreateDate")));
    elem_urlenc(b, "AssumeRolePolicyDocument", json_string_value(json_object_get(role, "AssumeRolePolicyDocument")));
    const char *desc = json_string_value(json_object_get(role, "Description"));
    if (desc)
        sbuf_xml_elem(b, "Description", desc);
    sbuf_printf(b, "<MaxSessionDuration>%lld</MaxSessionDuration>",
                (long long)json_integer_value(json_object_get(role, "MaxSessionDuration")));
    json_t *tags = json_object_get(role, "Tags");
    if (json_array_size(tags))
        tags_xml(b, tags);
    if (get)
        sbuf_puts(b, "<RoleLastUsed/>");
    sbuf_printf(b, "</%s>", tag);
}

/* Managed-policy attachments across the account's roles. */
static long attachment_count(const char *account, const char *arn)
{
    const char *k;
    json_t *role, *a;
    size_t i;
    long n = 0;
    json_object_foreach(roles_of(account), k, role) {
        json_array_foreach(json_object_get(role, "attached"), i, a)
            if (!strcmp(json_string_value(a), arn))
                n++;
    }
    return n;
}

static void policy_xml(struct sbuf *b, const char *tag, const char *account, json_t *p)
{
    const char *arn = json_string_value(json_object_get(p, "Arn"));
    sbuf_printf(b, "<%s>", tag);
    sbuf_xml_elem(b, "PolicyName", json_string_value(json_object_get(p, "PolicyName")));
    sbuf_xml_elem(b, "PolicyId", json_string_value(json_object_get(p, "PolicyId")));
    sbuf_xml_elem(b, "Arn", arn);
    sbuf_xml_elem(b, "Path", json_string_value(json_object_get(p, "Path")));
    sbuf_xml_elem(b, "DefaultVersionId", json_string_value(json_object_get(p, "DefaultVersionId")));
    sbuf_printf(b, "<AttachmentCount>%ld</AttachmentCount>", attachment_count(account, arn));
    sbuf_puts(b, "<PermissionsBoundaryUsageCount>0</PermissionsBoundaryUsageCount><IsAttachable>true</IsAttachable>");
    const char *desc = json_string_value(json_object_get(p, "Description"));
    if (desc)
        sbuf_xml_elem(b, "Description", desc);
    sbuf_xml_elem(b, "CreateDate", json_string_value(json_object_get(p, "CreateDate")));
    sbuf_xml_elem(b, "UpdateDate", json_string_value(json_object_get(p, "UpdateDate")));
    json_t *tags = json_object_get(p, "Tags");
    if (json_array_size(tags))
        tags_xml(b, tags);
    sbuf_printf(b, "</%s>", tag);
}

static void version_xml(struct sbuf *b, const char *tag, json_t *p, json_t *v, bool with_doc)
{
    const char *id = json_string_value(json_object_get(v, "VersionId"));
    sbuf_printf(b, "<%s>", tag);
    if (with_doc)
        elem_urlenc(b, "Document", json_string_value(json_object_get(v, "Document")));
    sbuf_xml_elem(b, "VersionId", id);
    sbuf_printf(b, "<IsDefaultVersion>%s</IsDefaultVersion>",
                !strcmp(id, json_string_value(json_object_get(p, "DefaultVersionId"))) ? "true" : "false");
    sbuf_xml_elem(b, "CreateDate", json_string_value(json_object_get(v, "CreateDate")));
    sbuf_printf(b, "</%s>", tag);
}

/* --- request pieces -------------------------------------------------------- */

/* Tags.member.N.Key/Value into a JSON array; NULL after answering an error. */
static json_t *read_tags(struct http_req *req, const struct form *f)
{
    json_t *tags = json_array();
    for (int i = 1; i <= 50; i++) {
        char kn[48], vn[48];
        snprintf(kn, sizeof(kn), "Tags.member.%d.Key", i);
        snprintf(vn, sizeof(vn), "Tags.member.%d.Value", i);
        const char *k = form_get(f, kn), *v = form_get(f, vn);
        if (!k && !v)
            break;
        if (!k || !*k || strlen(k) > 128 || (v && strlen(v) > 256)) {
            validation_error(req, k ? k : "null", "tags.member.key",
                             "Member must have length between 1 and 128");
            json_decref(tags);
            return NULL;
        }
        json_array_append_new(tags, json_pack("{s:s,s:s}", "Key", k, "Value", v ? v : ""));
    }
    return tags;
}

/* A policy document must be a JSON object; answers MalformedPolicyDocument. */
static bool doc_ok(struct http_req *req, const char *doc, size_t max)
{
    json_error_t jerr;
    if (strlen(doc) > max) {
        validation_error(req, "(policy document)", "policyDocument",
                         max == 131072 ? "Member must have length less than or equal to 131072"
                                       : "Member must have length less than or equal to 6144");
        return false;
    }
    json_t *j = http_json_too_deep(doc, strlen(doc), 64) ? NULL : json_loads(doc, 0, &jerr);
    bool ok = json_is_object(j);
    json_decref(j);
    if (!ok)
        QERR(req, 400, "MalformedPolicyDocument", "This policy contains invalid Json");
    return ok;
}

static json_t *find_role(struct http_req *req, const char *account, const char *name)
{
    json_t *role = json_object_get(roles_of(account), name);
    if (!role)
        QERR(req, 404, "NoSuchEntity", "The role with name %s cannot be found.", name);
    return role;
}

static const char *role_name_arg(struct http_req *req, const struct form *f)
{
    const char *n = need(req, f, "RoleName", "roleName");
    if (n && !name_ok(n, 64)) {
        validation_error(req, n, "roleName", "Member must satisfy regular expression pattern: [\\w+=,.@-]+");
        return NULL;
    }
    return n;
}

/* --- IAM: roles ------------------------------------------------------------ */

static void create_role(struct http_req *req, const struct form *f)
{
    const char *name = role_name_arg(req, f);
    if (!name)
        return;
    const char *doc = need(req, f, "AssumeRolePolicyDocument", "assumeRolePolicyDocument");
    if (!doc)
        return;
    const char *path = form_get(f, "Path");
    if (!path)
        path = "/";
    if (!path_ok(path)) {
        validation_error(req, path, "path",
                         "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)");
        return;
    }
    const char *msd = form_get(f, "MaxSessionDuration");
    long max_session = 3600;
    if (msd) {
        char *end;
        max_session = strtol(msd, &end, 10);
        if (!*msd || *end || max_session < 3600 || max_session > 43200) {
            validation_error(req, msd, "maxSessionDuration", "Member must have value between 3600 and 43200");
            return;
        }
    }
    const char *desc = form_get(f, "Description");
    if (desc && strlen(desc) > 1000) {
        validation_error(req, desc, "description", "Member must have length less than or equal to 1000");
        return;
    }
    if (!doc_ok(req, doc, 131072))
        return;
    json_t *tags = read_tags(req, f);
    if (!tags)
        return;
    pthread_mutex_lock(&g_mu);
    json_t *roles = roles_of(req->account);
    /* Role names are unique case-insensitively. */
    const char *k;
    json_t *v;
    json_object_foreach(roles, k, v) {
        if (!strcasecmp(k, name)) {
            QERR(req, 409, "EntityAlreadyExists", "Role with name %s already exists.", name);
            goto out;
        }
    }
    char id[22], arn[1024], now[32];
    random_id(id, 21, "AROA");
    snprintf(arn, sizeof(arn), "arn:aws:iam::%s:role%s%s", req->account, path, name);
    iso_time(time(NULL), now);
    json_t *role = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:O,s:{},s:[]}", "RoleName", name, "RoleId", id,
                             "Arn", arn, "Path", path, "CreateDate", now, "AssumeRolePolicyDocument", doc,
                             "MaxSessionDuration", (json_int_t)max_session, "Tags", tags, "inline",
                             "attached");
    if (desc)
        json_object_set_new(role, "Description", json_string(desc));
    json_object_set_new(roles, name, role);
    if (save_account(req, req->account)) {
        json_object_del(roles, name);
        goto out;
    }
    struct resp r;
    resp_begin(&r, "CreateRole", IAM_NS, true);
    role_xml(&r.b, "Role", role, false);
    resp_end(req, &r, true);
out:
    pthread_mutex_unlock(&g_mu);
    json_decref(tags);
}

static void get_role(struct http_req *req, const struct form *f)
{
    const char *name = role_name_arg(req, f);
    if (!name)
        return;
    pthread_mutex_lock(&g_mu);
    json_t *role = find_role(req, req->account, name);
    if (role) {
        struct resp r;
        resp_begin(&r, "GetRole", IAM_NS, true);
        role_xml(&r.b, "Role", role, true);
        resp_end(req, &r, true);
    }
    pthread_mutex_unlock(&g_mu);
}

static void list_roles(struct http_req *req, const struct form *f)
{
    long max;
    const char *marker;
    if (list_args(req, f, &max, &marker))
        return;
    const char *prefix = form_get(f, "PathPrefix");
    pthread_mutex_lock(&g_mu);
    json_t *roles = roles_of(req->account);
    size_t n;
    const char **keys = sorted_keys(roles, &n);
    struct resp r;
    resp_begin(&r, "ListRoles", IAM_NS, true);
    sbuf_puts(&r.b, "<Roles>");
    long count = 0;
    const char *next = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *role = json_object_get(roles, keys[i]);
        if (marker && strcmp(keys[i], marker) <= 0)
            continue;
        if (prefix && strncmp(json_string_value(json_object_get(role, "Path")), prefix, strlen(prefix)))
            continue;
        if (count == max) {
            next = keys[i - 1];
            break;
        }
        role_xml(&r.b, "member", role, false);
        count++;
    }
    sbuf_puts(&r.b, "</Roles>");
    sbuf_printf(&r.b, "<IsTruncated>%s</IsTruncated>", next ? "true" : "false");
    if (next)
        sbuf_xml_elem(&r.b, "Marker", next);
    resp_end(req, &r, true);
    pthread_mutex_unlock(&g_mu);
    free(keys);
}

static void delete_role(struct http_req *req, const struct form *f)
{
    const char *name = role_name_arg(req, f);
    if (!name)
        return;
    pthread_mutex_lock(&g_mu);
    json_t *role = find_role(req, req->account, name);
    if (!role)
        goto out;
    if (json_array_size(json_object_get(role, "attached"))) {
        QERR(req, 409, "DeleteConflict", "Cannot delete entity, must detach all policies first.");
        goto out;
    }
    if (json_object_size(json_object_get(role, "inline"))) {
        QERR(req, 409, "DeleteConflict", "Cannot delete entity, must delete policies first.");
        goto out;
    }
    json_incref(role);
    json_object_del(roles_of(req->account), name);
    if (save_account(req, req->account)) {
        json_object_set(roles_of(req->account), name, role);
    } else {
        struct resp r;
        resp_begin(&r, "DeleteRole", IAM_NS, false);
        resp_end(req, &r, false);
    }
    json_decref(role);
out:
    pthread_mutex_unlock(&g_mu);
}

/* Applies a change to a role under g_mu and persists it; on a failed write
 * the role is restored. fn returns 0, or -1 after answering an error. */
static void mutate_role(struct http_req *req, const struct form *f, const char *action,
                        int (*fn)(struct http_req *, const struct form *, json_t *role))
{
    const char *name = role_name_arg(req, f);
    if (!name)
        return;
    pthread_mutex_lock(&g_mu);
    json_t *role = find_role(req, req->account, name);
    if (!role)
        goto out;
    json_t *backup = json_deep_copy(role);
    if (fn(req, f, role)) {
        json_decref(backup);
        goto out;
    }
    if (save_account(req, req->account)) {
        json_object_set_new(roles_of(req->account), name, backup);
        goto out;
    }
    json_decref(backup);
    /* UpdateRole has an empty result element; UpdateRoleDescription returns the role. */
    bool result = !strncmp(action, "UpdateRole", 10);
    struct resp r;
    resp_begin(&r, action, IAM_NS, result);
    if (!strcmp(action, "UpdateRoleDescription"))
        role_xml(&r.b, "Role", role, false);
    resp_end(req, &r, result);
out:
    pthread_mutex_unlock(&g_mu);
}

static int do_update_assume(struct http_req *req, const struct form *f, json_t *role)
{
    const char *doc = need(req, f, "PolicyDocument", "policyDocument");
    if (!doc || !doc_ok(req, doc, 131072))
        return -1;
    json_object_set_new(role, "AssumeRolePolicyDocument", json_string(doc));
    return 0;
}

static int do_update_role(struct http_req *req, const struct form *f, json_t *role)
{
    const char *desc = form_get(f, "Description"), *msd = form_get(f, "MaxSessionDuration");
    if (desc && strlen(desc) > 1000) {
        validation_error(req, desc, "description", "Member must have length less than or equal to 1000");
        return -1;
    }
    if (msd) {
        char *end;
        long v = strtol(msd, &end, 10);
        if (!*msd || *end || v < 3600 || v > 43200) {
            validation_error(req, msd, "maxSessionDuration", "Member must have value between 3600 and 43200");
            return -1;
        }
        json_object_set_new(role, "MaxSessionDuration", json_integer(v));
    }
    if (desc)
        json_object_set_new(role, "Description", json_string(desc));
    return 0;
}

static int do_put_role_policy(struct http_req *req, const struct form *f, json_t *role)
{
    const char *pname = need(req, f, "PolicyName", "policyName");
    if (!pname)
        return -1;
    if (!name_ok(pname, 128)) {
        validation_error(req, pname, "policyName", "Member must satisfy regular expression pattern: [\\w+=,.@-]+");
        return -1;
    }
    const char *doc = need(req, f, "PolicyDocument", "policyDocument");
    if (!doc || !doc_ok(req, doc, 131072))
        return -1;
    json_object_set_new(json_object_get(role, "inline"), pname, json_string(doc));
    return 0;
}

static int do_delete_role_policy(struct http_req *req, const struct form *f, json_t *role)
{
    const char *pname = need(req, f, "PolicyName", "policyName");
    if (!pname)
        return -1;
    if (json_object_del(json_object_get(role, "inline"), pname)) {
        QERR(req, 404, "NoSuchEntity", "The role policy with name %s cannot be found.", pname);
        return -1;
    }
    return 0;
}

/* A managed policy by ARN: the account's own, or an AWS managed one
 * (arn:aws:iam::aws:policy/...), which is synthesised (*synth set, caller
 * decrefs). NULL when neither. */
static json_t *lookup_policy(const char *account, const char *arn, bool *synth)
{
    char acct[13];
    const char *name;
    *synth = false;
    if (!parse_iam_arn(arn, "policy", acct, &name))
        return NULL;
    if (!strcmp(acct, "aws")) {
        *synth = true;
        const char *path_start = arn + strlen("arn:aws:iam::aws:policy");
        char path[600];
        snprintf(path, sizeof(path), "%.*s", (int)(name - path_start), path_start);
        return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[]}", "PolicyName", name, "PolicyId",
                         "ANPAAWSMANAGEDPOLICY0", "Arn", arn, "Path", path, "DefaultVersionId", "v1",
                         "CreateDate", "2015-02-06T18:40:00Z", "UpdateDate", "2015-02-06T18:40:00Z", "Tags");
    }
    if (strcmp(acct, account))
        return NULL;
    return json_object_get(policies_of(account), arn);
}

static int do_attach(struct http_req *req, const struct form *f, json_t *role)
{
    const char *arn = need(req, f, "PolicyArn", "policyArn");
    bool synth;
    if (!arn)
        return -1;
    json_t *p = lookup_policy(req->account, arn, &synth);
    if (synth)
        json_decref(p);
    if (!p) {
        QERR(req, 404, "NoSuchEntity", "Policy %s does not exist or is not attachable.", arn);
        return -1;
    }
    json_t *att = json_object_get(role, "attached"), *a;
    size_t i;
    json_array_foreach(att, i, a)
        if (!strcmp(json_string_value(a), arn))
            return 0; /* attaching twice is a no-op, as AWS */
    json_array_append_new(att, json_string(arn));
    return 0;
}

static int do_detach(struct http_req *req, const struct form *f, json_t *role)
{
    const char *arn = need(req, f, "PolicyArn", "policyArn");
    if (!arn)
        return -1;
    json_t *att = json_object_get(role, "attached"), *a;
    size_t i;
    json_array_foreach(att, i, a) {
        if (!strcmp(json_string_value(a), arn)) {
            json_array_remove(att, i);
            return 0;
        }
    }
    QERR(req, 404, "NoSuchEntity", "Policy %s was not found.", arn);
    return -1;
}

static int do_tag_role(struct http_req *req, const struct form *f, json_t *role)
{
    json_t *tags = read_tags(req, f), *t, *old;
    size_t i, j;
    if (!tags)
        return -1;
    json_t *cur = json_object_get(role, "Tags");
    json_array_foreach(tags, i, t) {
        const char *k = json_string_value(json_object_get(t, "Key"));
        bool found = false;
        json_array_foreach(cur, j, old) {
            if (!strcmp(json_string_value(json_object_get(old, "Key")), k)) {
                json_array_set(cur, j, t);
                found = true;
                break;
            }
        }
        if (!found)
            json_array_append(cur, t);
    }
    json_decref(tags);
    return 0;
}

static int do_untag_role(struct http_req *req, const struct form *f, json_t *role)
{
    (void)req;
    json_t *cur = json_object_get(role, "Tags");
    for (int n = 1; n <= 50; n++) {
        char kn[40];
        snprintf(kn, sizeof(kn), "TagKeys.member.%d", n);
        const char *k = form_get(f, kn);
        if (!k)
            break;
        for (size_t j = 0; j < json_array_size(cur); j++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(cur, j), "Key")), k))
                json_array_remove(cur, j--);
    }
    return 0;
}

static void get_role_policy(struct http_req *req, const struct form *f)
{
    const char *name = role_name_arg(req, f);
    const char *pname = name ? need(req, f, "PolicyName", "policyName") : NULL;
    if (!pname)
        return;
    pthread_mutex_lock(&g_mu);
    json_t *role = find_role(req, req->account, name);
    if (role) {
        const char *doc = json_string_value(json_object_get(json_object_get(role, "inline"), pname));
        if (!doc) {
            QERR(req, 404, "NoSuchEntity", "The role policy with name %s cannot be found.", pname);
        } else {
            struct resp r;
            resp_begin(&r, "GetRolePolicy", IAM_NS, true);
            sbuf_xml_elem(&r.b, "RoleName", name);
            sbuf_xml_elem(&r.b, "PolicyName", pname);
            elem_urlenc(&r.b, "PolicyDocument", doc);
            resp_end(req, &r, true);
        }
    }
    pthread_mutex_unlock(&g_mu);
}

/* ListRolePolicies / ListAttachedRolePolicies / ListRoleTags: a paged list
 * of one of the role's collections. */
enum role_list { RL_INLINE, RL_ATTACHED, RL_TAGS };

static void list_role_things(struct http_req *req, const struct form *f, enum role_list what)
{
    static const char *const actions[] = {"ListRolePolicies", "ListAttachedRolePolicies", "ListRoleTags"};
    long max;
    const char *marker;
    const char *name = role_name_arg(req, f);
    if (!name || list_args(req, f, &max, &marker))
        return;
    pthread_mutex_lock(&g_mu);
    json_t *role = find_role(req, req->account, name);
    if (!role)
        goto out;
    struct resp r;
    resp_begin(&r, actions[what], IAM_NS, true);
    sbuf_puts(&r.b, what == RL_INLINE ? "<PolicyNames>" : what == RL_ATTACHED ? "<AttachedPolicies>" : "<Tags>");
    json_t *items = json_array();
    if (what == RL_INLINE) {
        size_t n;
        const char **keys = sorted_keys(json_object_get(role, "inline"), &n);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(items, json_string(keys[i]));
        free(keys);
    } else {
        json_array_extend(items, json_object_get(role, what == RL_ATTACHED ? "attached" : "Tags"));
    }
    const char *prefix = what == RL_ATTACHED ? form_get(f, "PathPrefix") : NULL;
    long start = marker ? strtol(marker, NULL, 10) : 0, count = 0;
    size_t i = start > 0 ? (size_t)start : 0;
    for (; i < json_array_size(items) && count < max; i++) {
        json_t *it = json_array_get(items, i);
        if (what == RL_INLINE) {
            sbuf_xml_elem(&r.b, "member", json_string_value(it));
        } else if (what == RL_ATTACHED) {
            const char *arn = json_string_value(it);
            const char *pname = strrchr(arn, '/') + 1;
            if (prefix) {
                const char *p = strstr(arn, ":policy") + 7;
                if (strncmp(p, prefix, strlen(prefix)))
                    continue;
            }
            sbuf_puts(&r.b, "<member>");
            sbuf_xml_elem(&r.b, "PolicyName", pname);
            sbuf_xml_elem(&r.b, "PolicyArn", arn);
            sbuf_puts(&r.b, "</member>");
        } else {
            sbuf_puts(&r.b, "<member>");
            sbuf_xml_elem(&r.b, "Key", json_string_value(json_object_get(it, "Key")));
            sbuf_xml_elem(&r.b, "Value", json_string_value(json_object_get(it, "Value")));
            sbuf_puts(&r.b, "</member>");
        }
        count++;
    }
    bool more = i < json_array_size(items);
    sbuf_puts(&r.b, what == RL_INLINE ? "</PolicyNames>" : what == RL_ATTACHED ? "</AttachedPolicies>" : "</Tags>");
    sbuf_printf(&r.b, "<IsTruncated>%s</IsTruncated>", more ? "true" : "false");
    if (more)
        sbuf_printf(&r.b, "<Marker>%zu</Marker>", i);
    json_decref(items);
    resp_end(req, &r, true);
out:
    pthread_mutex_unlock(&g_mu);
}

/* --- IAM: managed policies -------------------------------------------------- */

static void create_policy(struct http_req *req, const struct form *f)
{
    const char *name = need(req, f, "PolicyName", "policyName");
    if (!name)
        return;
    if (!name_ok(name, 128)) {
        validation_error(req, name, "policyName", "Member must satisfy regular expression pattern: [\\w+=,.@-]+");
        return;
    }
    const char *doc = need(req, f, "PolicyDocument", "policyDocument");
    if (!doc || !doc_ok(req, doc, 6144))
        return;
    const char *path = form_get(f, "Path");
    if (!path)
        path = "/";
    if (!path_ok(path)) {
        validation_error(req, path, "path",
                         "Member must satisfy regular expression pattern: ((/[A-Za-z0-9\\.,\\+@=_-]+)*)/");
        return;
    }
    const char *desc = form_get(f, "Description");
    json_t *tags = read_tags(req, f);
    if (!tags)
        return;
    char arn[1024], id[22], now[32];
    snprintf(arn, sizeof(arn), "arn:aws:iam::%s:policy%s%s", req->account, path, name);
    pthread_mutex_lock(&g_mu);
    json_t *pols = policies_of(req->account);
    const char *k;
    json_t *v;
    json_object_foreach(pols, k, v) {
        if (!strcmp(json_string_value(json_object_get(v, "PolicyName")), name)) {
            QERR(req, 409, "EntityAlreadyExists",
                 "A policy called %s already exists. Duplicate names are not allowed.", name);
            goto out;
        }
    }
    random_id(id, 21, "ANPA");
    iso_time(time(NULL), now);
    json_t *p = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O,s:I,s:[{s:s,s:s,s:s}]}", "PolicyName", name,
                          "PolicyId", id, "Arn", arn, "Path", path, "DefaultVersionId", "v1", "CreateDate", now,
                          "UpdateDate", now, "Tags", tags, "next_version", (json_int_t)2, "versions",
                          "VersionId", "v1", "Document", doc, "CreateDate", now);
    if (desc)
        json_object_set_new(p, "Description", json_string(desc));
    json_object_set_new(pols, arn, p);
    if (save_account(req, req->account)) {
        json_object_del(pols, arn);
        goto out;
    }
    struct resp r;
    resp_begin(&r, "CreatePolicy", IAM_NS, true);
    policy_xml(&r.b, "Policy", req->account, p);
    resp_end(req, &r, true);
out:
    pthread_mutex_unlock(&g_mu);
    json_decref(tags);
}

/* The policy of PolicyArn, or NULL after answering NoSuchEntity. Local
 * policies only unless allow_aws (then *synth tells the caller to decref). */
static json_t *policy_arg(struct http_req *req, const struct form *f, bool allow_aws, bool *synth)
{
    const char *arn = need(req, f, "PolicyArn", "policyArn");
    if (!arn)
        return NULL;
    json_t *p = lookup_policy(req->account, arn, synth);
    if (p && *synth && !allow_aws) {
        json_decref(p);
        p = NULL;
        *synth = false;
    }
    if (!p)
        QERR(req, 404, "NoSuchEntity", "Policy %s does not exist or is not attachable.", arn);
    return p;
}

static void get_policy(struct http_req *req, const struct form *f)
{
    bool synth = false;
    pthread_mutex_lock(&g_mu);
    json_t *p = policy_arg(req, f, true, &synth);
    if (p) {
        struct resp r;
        resp_begin(&r, "GetPolicy", IAM_NS, true);
        policy_xml(&r.b, "Policy", req->account, p);
        resp_end(req, &r, true);
        if (synth)
            json_decref(p);
    }
    pthread_mutex_unlock(&g_mu);
}

static void delete_policy(struct http_req *req, const struct form *f)
{
    bool synth = false;
    pthread_mutex_lock(&g_mu);
    json_t *p = policy_arg(req, f, false, &synth);
    if (!p)
        goto out;
    const char *arn = form_get(f, "PolicyArn");
    if (attachment_count(req->account, arn) > 0) {
        QERR(req, 409, "DeleteConflict", "Cannot delete a policy attached to entities.");
        goto out;
    }
    json_t *pols = policies_of(req->account);
    json_incref(p);
    json_object_del(pols, arn);
    if (save_account(req, req->account)) {
        json_object_set(pols, arn, p);
    } else {
        struct resp r;
        resp_begin(&r, "DeletePolicy", IAM_NS, false);
        resp_end(req, &r, false);
    }
    json_decref(p);
out:
    pthread_mutex_unlock(&g_mu);
}

static void list_policies(struct http_req *req, const struct form *f)
{
    long max;
    const char *marker;
    if (list_args(req, f, &max, &marker))
        return;
    const char *scope = form_get(f, "Scope"), *prefix = form_get(f, "PathPrefix");
    const char *only = form_get(f, "OnlyAttached");
    if (scope && strcmp(scope, "All") && strcmp(scope, "AWS") && strcmp(scope, "Local")) {
        validation_error(req, scope, "scope", "Member must satisfy enum value set: [All, AWS, Local]");
        return;
    }
    bool only_attached = only && !strcasecmp(only, "true");
    pthread_mutex_lock(&g_mu);
    json_t *pols = policies_of(req->account);
    size_t n;
    const char **keys = sorted_keys(pols, &n);
    struct resp r;
    resp_begin(&r, "ListPolicies", IAM_NS, true);
    sbuf_puts(&r.b, "<Policies>");
    long count = 0;
    const char *next = NULL;
    bool local = !scope || strcmp(scope, "AWS");
    for (size_t i = 0; local && i < n; i++) {
        json_t *p = json_object_get(pols, keys[i]);
        if (marker && strcmp(keys[i], marker) <= 0)
            continue;
        if (prefix && strncmp(json_string_value(json_object_get(p, "Path")), prefix, strlen(prefix)))
            continue;
        if (only_attached && attachment_count(req->account, keys[i]) == 0)
            continue;
        if (count == max) {
            next = keys[i - 1];
            break;
        }
        policy_xml(&r.b, "member", req->account, p);
        count++;
    }
    sbuf_puts(&r.b, "</Policies>");
    sbuf_printf(&r.b, "<IsTruncated>%s</IsTruncated>", next ? "true" : "false");
    if (next)
        sbuf_xml_elem(&r.b, "Marker", next);
    resp_end(req, &r, true);
    pthread_mutex_unlock(&g_mu);
    free(keys);
}

static json_t *find_version(json_t *p, const char *id)
{
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(p, "versions"), i, v)
        if (!strcmp(json_string_value(json_object_get(v, "VersionId")), id))
            return v;
    return NULL;
}

static void get_policy_version(struct http_req *req, const struct form *f)
{
    bool synth = false;
    const char *vid = need(req, f, "VersionId", "versionId");
    if (!vid)
        return;
    pthread_mutex_lock(&g_mu);
    json_t *p = policy_arg(req, f, false, &synth);
    json_t *v = p ? find_version(p, vid) : NULL;
    if (p && !v)
        QERR(req, 404, "NoSuchEntity", "Policy %s version %s does not exist or is not attachable.",
             form_get(f, "PolicyArn"), vid);
    if (v) {
        struct resp r;
        resp_begin(&r, "GetPolicyVersion", IAM_NS, true);
        version_xml(&r.b, "PolicyVersion", p, v, true);
        resp_end(req, &r, true);
    }
    pthread_mutex_unlock(&g_mu);
}

static void list_policy_versions(struct http_req *req, const struct form *f)
{
    bool synth = false;
    pthread_mutex_lock(&g_mu);
    json_t *p = policy_arg(req, f, false, &synth);
    if (p) {
        json_t *v;
        size_t i;
        struct resp r;
        resp_begin(&r, "ListPolicyVersions", IAM_NS, true);
        sbuf_puts(&r.b, "<Versions>");
        json_t *vs = json_object_get(p, "versions");
        for (i = json_array_size(vs); i-- > 0;) { /* newest first, as AWS */
            v = json_array_get(vs, i);
            version_xml(&r.b, "member", p, v, false);
        }
        sbuf_puts(&r.b, "</Versions><IsTruncated>false</IsTruncated>");
        resp_end(req, &r, true);
    }
    pthread_mutex_unlock(&g_mu);
}

static void create_policy_version(struct http_req *req, const struct form *f)
{
    bool synth = false;
    const char *doc = need(req, f, "PolicyDocument", "policyDocument");
    if (!doc || !doc_ok(req, doc, 6144))
        return;
    const char *def = form_get(f, "SetAsDefault");
    pthread_mutex_lock(&g_mu);
    json_t *p = policy_arg(req, f, false, &synth);
    if (!p)
        goto out;
    json_t *vs = json_object_get(p, "versions");
    if (json_array_size(vs) >= MAX_POLICY_VERSIONS) {
        QERR(req, 409, "LimitExceeded", "A managed policy can have up to %d versions. Before you create a new "
             "version, you must delete an existing version.", MAX_POLICY_VERSIONS);
        goto out;
    }
    json_t *backup = json_deep_copy(p);
    char vid[24], now[32];
    snprintf(vid, sizeof(vid), "v%lld", (long long)json_integer_value(json_object_get(p, "next_version")));
    iso_time(time(NULL), now);
    json_t *v = json_pack("{s:s,s:s,s:s}", "VersionId", vid, "Document", doc, "CreateDate", now);
    json_array_append_new(vs, v);
    json_object_set_new(p, "next_version", json_integer(json_integer_value(json_object_get(p, "next_version")) + 1));
    json_object_set_new(p, "UpdateDate", json_string(now));
    if (def && !strcasecmp(def, "true"))
        json_object_set_new(p, "DefaultVersionId", json_string(vid));
    if (save_account(req, req->account)) {
        json_object_set_new(policies_of(req->account), form_get(f, "PolicyArn"), backup);
        goto out;
    }
    json_decref(backup);
    struct resp r;
    resp_begin(&r, "CreatePolicyVersion", IAM_NS, true);
    version_xml(&r.b, "PolicyVersion", p, v, false);
    resp_end(req, &r, true);
out:
    pthread_mutex_unlock(&g_mu);
}

static void change_policy_version(struct http_req *req, const struct form *f, bool set_default)
{
    bool synth = false;
    const char *vid = need(req, f, "VersionId", "versionId");
    if (!vid)
        return;
    pthread_mutex_lock(&g_mu);
    json_t *p = policy_arg(req, f, false, &synth);
    json_t *v = p ? find_version(p, vid) : NULL;
    if (p && !v) {
        QERR(req, 404, "NoSuchEntity", "Policy %s version %s does not exist or is not attachable.",
             form_get(f, "PolicyArn"), vid);
        goto out;
    }
    if (!v)
        goto out;
    bool is_default = !strcmp(vid, json_string_value(json_object_get(p, "DefaultVersionId")));
    if (!set_default && is_default) {
        QERR(req, 409, "DeleteConflict", "Cannot delete the default version of a policy.");
        goto out;
    }
    json_t *backup = json_deep_copy(p);
    if (set_default) {
        json_object_set_new(p, "DefaultVersionId", json_string(vid));
    } else {
        json_t *vs = json_object_get(p, "versions");
        for (size_t i = 0; i < json_array_size(vs); i++)
            if (json_array_get(vs, i) == v) {
                json_array_remove(vs, i);
                break;
            }
    }
    if (save_account(req, req->account)) {
        json_object_set_new(policies_of(req->account), form_get(f, "PolicyArn"), backup);
        goto out;
    }
    json_decref(backup);
    struct resp r;
    resp_begin(&r, set_default ? "SetDefaultPolicyVersion" : "DeletePolicyVersion", IAM_NS, false);
    resp_end(req, &r, false);
out:
    pthread_mutex_unlock(&g_mu);
}

/* lambdad has no instance profiles: the role must exist, the list is empty
 * (infrastructure tools call this before DeleteRole). */
static void list_instance_profiles_for_role(struct http_req *req, const struct form *f)
{
    const char *name = role_name_arg(req, f);
    if (!name)
        return;
    pthread_mutex_lock(&g_mu);
    if (find_role(req, req->account, name)) {
        struct resp r;
        resp_begin(&r, "ListInstanceProfilesForRole", IAM_NS, true);
        sbuf_puts(&r.b, "<InstanceProfiles/><IsTruncated>false</IsTruncated>");
        resp_end(req, &r, true);
    }
    pthread_mutex_unlock(&g_mu);
}

/* The roles a managed policy is attached to (lambdad has no users or
 * groups, so those lists are empty). */
static void list_entities_for_policy(struct http_req *req, const struct form *f)
{
    bool synth = false;
    const char *filter = form_get(f, "EntityFilter"), *prefix = form_get(f, "PathPrefix");
    pthread_mutex_lock(&g_mu);
    json_t *p = policy_arg(req, f, true, &synth);
    if (!p)
        goto out;
    const char *arn = form_get(f, "PolicyArn");
    size_t n;
    json_t *roles = roles_of(req->account);
    const char **keys = sorted_keys(roles, &n);
    struct resp r;
    resp_begin(&r, "ListEntitiesForPolicy", IAM_NS, true);
    sbuf_puts(&r.b, "<PolicyGroups/><PolicyUsers/><PolicyRoles>");
    for (size_t i = 0; keys && i < n && (!filter || !strcmp(filter, "Role")); i++) {
        json_t *role = json_object_get(roles, keys[i]), *a;
        size_t j;
        if (prefix && strncmp(json_string_value(json_object_get(role, "Path")), prefix, strlen(prefix)))
            continue;
        json_array_foreach(json_object_get(role, "attached"), j, a) {
            if (!strcmp(json_string_value(a), arn)) {
                sbuf_puts(&r.b, "<member>");
                sbuf_xml_elem(&r.b, "RoleName", keys[i]);
                sbuf_xml_elem(&r.b, "RoleId", json_string_value(json_object_get(role, "RoleId")));
                sbuf_puts(&r.b, "</member>");
                break;
            }
        }
    }
    sbuf_puts(&r.b, "</PolicyRoles><IsTruncated>false</IsTruncated>");
    resp_end(req, &r, true);
    free(keys);
    if (synth)
        json_decref(p);
out:
    pthread_mutex_unlock(&g_mu);
}

/* --- IAM dispatch ----------------------------------------------------------- */

void svc_iam(struct http_req *req)
{
    struct form f;
    if (services_read_form(req, &f))
        return;
    const char *a = form_get(&f, "Action");
    if (!a)
        a = "";
    if (!strcmp(a, "CreateRole"))
        create_role(req, &f);
    else if (!strcmp(a, "GetRole"))
        get_role(req, &f);
    else if (!strcmp(a, "ListRoles"))
        list_roles(req, &f);
    else if (!strcmp(a, "DeleteRole"))
        delete_role(req, &f);
    else if (!strcmp(a, "UpdateAssumeRolePolicy"))
        mutate_role(req, &f, a, do_update_assume);
    else if (!strcmp(a, "UpdateRole"))
        mutate_role(req, &f, a, do_update_role);
    else if (!strcmp(a, "UpdateRoleDescription"))
        mutate_role(req, &f, a, do_update_role); /* answers with the empty shape */
    else if (!strcmp(a, "TagRole"))
        mutate_role(req, &f, a, do_tag_role);
    else if (!strcmp(a, "UntagRole"))
        mutate_role(req, &f, a, do_untag_role);
    else if (!strcmp(a, "ListRoleTags"))
        list_role_things(req, &f, RL_TAGS);
    else if (!strcmp(a, "PutRolePolicy"))
        mutate_role(req, &f, a, do_put_role_policy);
    else if (!strcmp(a, "GetRolePolicy"))
        get_role_policy(req, &f);
    else if (!strcmp(a, "DeleteRolePolicy"))
        mutate_role(req, &f, a, do_delete_role_policy);
    else if (!strcmp(a, "ListRolePolicies"))
        list_role_things(req, &f, RL_INLINE);
    else if (!strcmp(a, "AttachRolePolicy"))
        mutate_role(req, &f, a, do_attach);
    else if (!strcmp(a, "DetachRolePolicy"))
        mutate_role(req, &f, a, do_detach);
    else if (!strcmp(a, "ListAttachedRolePolicies"))
        list_role_things(req, &f, RL_ATTACHED);
    else if (!strcmp(a, "CreatePolicy"))
        create_policy(req, &f);
    else if (!strcmp(a, "GetPolicy"))
        get_policy(req, &f);
    else if (!strcmp(a, "DeletePolicy"))
        delete_policy(req, &f);
    else if (!strcmp(a, "ListPolicies"))
        list_policies(req, &f);
    else if (!strcmp(a, "GetPolicyVersion"))
        get_policy_version(req, &f);
    else if (!strcmp(a, "ListPolicyVersions"))
        list_policy_versions(req, &f);
    else if (!strcmp(a, "CreatePolicyVersion"))
        create_policy_version(req, &f);
    else if (!strcmp(a, "DeletePolicyVersion"))
        change_policy_version(req, &f, false);
    else if (!strcmp(a, "SetDefaultPolicyVersion"))
        change_policy_version(req, &f, true);
    else if (!strcmp(a, "ListInstanceProfilesForRole"))
        list_instance_profiles_for_role(req, &f);
    else if (!strcmp(a, "ListEntitiesForPolicy"))
        list_entities_for_policy(req, &f);
    else
        QERR(req, 400, "InvalidAction", "The action %s is not valid for this web service.", *a ? a : "(none)");
    form_free(&f);
}

/* --- STS ------------------------------------------------------------------------ */

static void caller_identity(struct http_req *req, char *arn, size_t arnlen, char *user, size_t userlen)
{
    char akid[128];
    json_t *s = NULL;
    if (services_access_key(req, akid, sizeof(akid)) > 0) {
        pthread_mutex_lock(&g_mu);
        s = json_object_get(g_sessions, akid);
        if (s) {
            snprintf(arn, arnlen, "%s", json_string_value(json_object_get(s, "arn")));
            snprintf(user, userlen, "%s", json_string_value(json_object_get(s, "user_id")));
        }
        pthread_mutex_unlock(&g_mu);
    }
    if (!s) {
        snprintf(arn, arnlen, "arn:aws:iam::%s:root", req->account);
        snprintf(user, userlen, "%s", req->account);
    }
}

static void get_caller_identity(struct http_req *req)
{
    char arn[1200], user[200];
    caller_identity(req, arn, sizeof(arn), user, sizeof(user));
    struct resp r;
    resp_begin(&r, "GetCallerIdentity", STS_NS, true);
    sbuf_xml_elem(&r.b, "Arn", arn);
    sbuf_xml_elem(&r.b, "UserId", user);
    sbuf_xml_elem(&r.b, "Account", req->account);
    resp_end(req, &r, true);
}

/* Issues temporary credentials for account and records the session.
 * Appends the <Credentials> element to b. Under g_mu. */
static int issue_credentials(struct sbuf *b, const char *account, const char *arn, const char *user_id,
                             long duration)
{
    char akid[21], secret[41], token[257], exp[32];
    random_id(akid, 20, "ASIA");
    random_secret(secret, 40);
    random_secret(token, 256);
    time_t now = time(NULL), until = now + duration;
    iso_time(until, exp);
    /* Forget sessions that expired a day ago; the map stays small. */
    const char *k;
    json_t *v, *tmp;
    json_object_foreach_safe(g_sessions, tmp, k, v) {
        if (json_integer_value(json_object_get(v, "expiration")) + 86400 < (json_int_t)now)
            json_object_del(g_sessions, k);
    }
    json_object_set_new(g_sessions, akid,
                        json_pack("{s:s,s:s,s:s,s:I}", "account", account, "arn", arn, "user_id", user_id,
                                  "expiration", (json_int_t)until));
    int rc = save_sessions();
    if (rc) {
        json_object_del(g_sessions, akid);
        return rc;
    }
    sbuf_puts(b, "<Credentials>");
    sbuf_xml_elem(b, "AccessKeyId", akid);
    sbuf_xml_elem(b, "SecretAccessKey", secret);
    sbuf_xml_elem(b, "SessionToken", token);
    sbuf_xml_elem(b, "Expiration", exp);
    sbuf_puts(b, "</Credentials>");
    return 0;
}

static bool duration_arg(struct http_req *req, const struct form *f, long min, long max, long *out)
{
    const char *d = form_get(f, "DurationSeconds");
    *out = 3600;
    if (!d)
        return true;
    char *end;
    long v = strtol(d, &end, 10);
    if (!*d || *end || v < min || v > max) {
        char what[96];
        snprintf(what, sizeof(what), "Member must have value %s %ld",
                 v < min ? "greater than or equal to" : "less than or equal to", v < min ? min : max);
        validation_error(req, d, "durationSeconds", what);
        return false;
    }
    *out = v;
    return true;
}

static void assume_role(struct http_req *req, const struct form *f, const char *action)
{
    const char *role_arn = need(req, f, "RoleArn", "roleArn");
    const char *session = role_arn ? need(req, f, "RoleSessionName", "roleSessionName") : NULL;
    long duration;
    if (!session)
        return;
    size_t sl = strlen(session);
    bool ok = sl >= 2 && sl <= 64;
    for (size_t i = 0; ok && i < sl; i++)
        ok = isalnum((unsigned char)session[i]) || strchr("_+=,.@-", session[i]);
    if (!ok) {
        validation_error(req, session, "roleSessionName",
                         "Member must satisfy regular expression pattern: [\\w+=,.@-]*");
        return;
    }
    if (!duration_arg(req, f, 900, 43200, &duration))
        return;
    char account[13];
    const char *role_name;
    if (!parse_iam_arn(role_arn, "role", account, &role_name) || !strcmp(account, "aws")) {
        validation_error(req, role_arn, "roleArn", "Member must be a valid IAM role ARN");
        return;
    }
    const char *policy = form_get(f, "Policy");
    if (policy && !doc_ok(req, policy, 2048))
        return;
    if (!strcmp(action, "AssumeRoleWithWebIdentity") && !need(req, f, "WebIdentityToken", "webIdentityToken"))
        return;
    pthread_mutex_lock(&g_mu);
    json_t *role = json_object_get(json_object_get(json_object_get(g_accounts, account), "roles"), role_name);
    char role_id[32];
    if (role)
        snprintf(role_id, sizeof(role_id), "%s", json_string_value(json_object_get(role, "RoleId")));
    else /* no enforcement by default: any role ARN may be assumed, as LocalStack */
        random_id(role_id, 21, "AROA");
    char user_id[128], arn[1200];
    snprintf(user_id, sizeof(user_id), "%s:%s", role_id, session);
    snprintf(arn, sizeof(arn), "arn:aws:sts::%s:assumed-role/%s/%s", account, role_name, session);
    struct resp r;
    resp_begin(&r, action, STS_NS, true);
    int rc = issue_credentials(&r.b, account, arn, user_id, duration);
    pthread_mutex_unlock(&g_mu);
    if (rc) {
        sbuf_free(&r.b);
        QERR(req, 500, "ServiceFailure", "lambdad could not store the session: %s", strerror(-rc));
        return;
    }
    sbuf_puts(&r.b, "<AssumedRoleUser>");
    sbuf_xml_elem(&r.b, "AssumedRoleId", user_id);
    sbuf_xml_elem(&r.b, "Arn", arn);
    sbuf_puts(&r.b, "</AssumedRoleUser><PackedPolicySize>0</PackedPolicySize>");
    if (!strcmp(action, "AssumeRoleWithWebIdentity"))
        sbuf_puts(&r.b, "<SubjectFromWebIdentityToken>lambdad</SubjectFromWebIdentityToken>");
    resp_end(req, &r, true);
}

static void get_session_token(struct http_req *req, const struct form *f)
{
    long duration;
    if (!duration_arg(req, f, 900, 129600, &duration))
        return;
    char arn[1200], user[200];
    caller_identity(req, arn, sizeof(arn), user, sizeof(user));
    struct resp r;
    resp_begin(&r, "GetSessionToken", STS_NS, true);
    pthread_mutex_lock(&g_mu);
    int rc = issue_credentials(&r.b, req->account, arn, user, duration);
    pthread_mutex_unlock(&g_mu);
    if (rc) {
        sbuf_free(&r.b);
        QERR(req, 500, "ServiceFailure", "lambdad could not store the session: %s", strerror(-rc));
        return;
    }
    resp_end(req, &r, true);
}

static void get_access_key_info(struct http_req *req, const struct form *f)
{
    const char *akid = need(req, f, "AccessKeyId", "accessKeyId");
    if (!akid)
        return;
    char account[13];
    if (!sts_session_account(akid, account)) {
        if (strlen(akid) == 12 && strspn(akid, "0123456789") == 12)
            snprintf(account, sizeof(account), "%s", akid);
        else
            snprintf(account, sizeof(account), "%s", req->account);
    }
    struct resp r;
    resp_begin(&r, "GetAccessKeyInfo", STS_NS, true);
    sbuf_xml_elem(&r.b, "Account", account);
    resp_end(req, &r, true);
}

void svc_sts(struct http_req *req)
{
    struct form f;
    if (services_read_form(req, &f))
        return;
    const char *a = form_get(&f, "Action");
    if (!a)
        a = "";
    if (!strcmp(a, "GetCallerIdentity"))
        get_caller_identity(req);
    else if (!strcmp(a, "AssumeRole") || !strcmp(a, "AssumeRoleWithWebIdentity"))
        assume_role(req, &f, a);
    else if (!strcmp(a, "GetSessionToken"))
        get_session_token(req, &f);
    else if (!strcmp(a, "GetAccessKeyInfo"))
        get_access_key_info(req, &f);
    else
        QERR(req, 400, "InvalidAction", "Could not find operation %s for version 2011-06-15", *a ? a : "(none)");
    form_free(&f);
}
