/* api_logs: the CloudWatch Logs operations (see api_logs.h). */
#include "server/api_logs.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>
#include <time.h>

#include "server/eventstream.h"
#include "server/logs_filter.h"
#include "server/logs_store.h"
#include "server/services.h"

#define TARGET_PREFIX "Logs_20140328."
#define MAX_RESPONSE_BYTES 1048576
#define BATCH_MAX_BYTES 1048576
#define DAY_MS 86400000LL

/* One request being served. */
struct lreq {
    struct http_req *req;
    json_t *in;
    json_t *out;
    const char *code;  /* error code, NULL on success */
    char msg[1024];
};

static int fail(struct lreq *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct lreq *r, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    r->code = code;
    return -1;
}

#define INVALID "InvalidParameterException"
#define NOT_FOUND "ResourceNotFoundException"
#define EXISTS "ResourceAlreadyExistsException"
#define MSG_GROUP_NOT_FOUND "The specified log group does not exist."
#define MSG_STREAM_NOT_FOUND "The specified log stream does not exist."
#define MSG_BAD_TOKEN "The specified nextToken is invalid."

/* ------------------------------------------------------------ parameters */

/* A string member: 0 absent (*out NULL), 1 present, -1 error answered. */
static int get_str(struct lreq *r, const char *key, bool required, size_t min, size_t max,
                   const char **out)
{
    json_t *v = json_object_get(r->in, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return fail(r, INVALID, "1 validation error detected: Value null at '%s' failed to "
                                    "satisfy constraint: Member must not be null", key);
        return 0;
    }
    if (!json_is_string(v))
        return fail(r, "SerializationException", "Unexpected value type for '%s': expected a string", key);
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n != json_string_length(v))
        return fail(r, INVALID, "Invalid character (NUL) in '%s'", key);
    if (n < min)
        return fail(r, INVALID, "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                                "constraint: Member must have length greater than or equal to %zu",
                    s, key, min);
    if (n > max)
        return fail(r, INVALID, "1 validation error detected: Value at '%s' failed to satisfy "
                                "constraint: Member must have length less than or equal to %zu",
                    key, max);
    *out = s;
    return 1;
}

/* An integer member: 0 absent, 1 present, -1 error. */
static int get_int(struct lreq *r, const char *key, long long *out)
{
    json_t *v = json_object_get(r->in, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return fail(r, "SerializationException", "Unexpected value type for '%s': expected an integer", key);
    *out = json_integer_value(v);
    return 1;
}

static int get_bool(struct lreq *r, const char *key, bool *out)
{
    json_t *v = json_object_get(r->in, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fail(r, "SerializationException", "Unexpected value type for '%s': expected a boolean", key);
    *out = json_is_true(v);
    return 1;
}

static int get_limit(struct lreq *r, const char *key, long long max, long long *out)
{
    int rc = get_int(r, key, out);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        *out = max;
        return 0;
    }
    if (*out < 1 || *out > max)
        return fail(r, INVALID, "1 validation error detected: Value '%lld' at '%s' failed to satisfy "
                                "constraint: Member must have value %s %lld",
                    *out, key, *out < 1 ? "greater than or equal to" : "less than or equal to",
                    *out < 1 ? 1 : max);
    return 1;
}

static bool group_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 512 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/#") == n;
}

static int check_group_name(struct lreq *r, const char *key, const char *s)
{
    if (!group_name_ok(s))
        return fail(r, INVALID, "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                                "constraint: Member must satisfy regular expression pattern: "
                                "[\\.\\-_/#A-Za-z0-9]+", s, key);
    return 0;
}

static int get_group_name(struct lreq *r, const char **out)
{
    if (get_str(r, "logGroupName", true, 1, 512, out) < 0)
        return -1;
    return check_group_name(r, "logGroupName", *out);
}

static int get_stream_name(struct lreq *r, const char *key, bool required, const char **out)
{
    int rc = get_str(r, key, required, 1, 512, out);
    if (rc <= 0)
        return rc;
    if (strpbrk(*out, ":*"))
        return fail(r, INVALID, "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                                "constraint: Member must satisfy regular expression pattern: [^:*]*",
                    *out, key);
    return 1;
}

/* The namespace of a group named by logGroupName or logGroupIdentifier (a
 * name or "arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]"). */
struct gref {
    char region[32];
    char account[13];
    char name[520];
};

static int parse_group_arn(const char *arn, struct gref *g)
{
    /* arn:PARTITION:logs:REGION:ACCOUNT:log-group:NAME[:*] */
    const char *f[6];
    const char *p = arn;
    for (int i = 0; i < 6; i++) {
        f[i] = p;
        p = strchr(p, ':');
        if (!p)
            return -1;
        p++;
    }
    (void)f;
    if (strncmp(arn, "arn:", 4) != 0 || strncmp(f[2], "logs:", 5) != 0 ||
        strncmp(f[5], "log-group:", 10) != 0)
        return -1;
    size_t rl = (size_t)(f[4] - f[3] - 1), al = (size_t)(f[5] - f[4] - 1);
    if (rl == 0 || rl >= sizeof(g->region) || al != 12)
        return -1;
    memcpy(g->region, f[3], rl);
    g->region[rl] = 0;
    memcpy(g->account, f[4], al);
    g->account[al] = 0;
    const char *name = f[5] + 10;
    size_t nl = strlen(name);
    if (nl >= 2 && !strcmp(name + nl - 2, ":*"))
        nl -= 2;
    if (nl == 0 || nl >= sizeof(g->name))
        return -1;
    memcpy(g->name, name, nl);
    g->name[nl] = 0;
    return group_name_ok(g->name) ? 0 : -1;
}

static int get_group_ref(struct lreq *r, bool allow_identifier, struct gref *g)
{
    const char *name = NULL, *ident = NULL;
    if (get_str(r, "logGroupName", false, 1, 512, &name) < 0)
        return -1;
    if (allow_identifier && get_str(r, "logGroupIdentifier", false, 1, 2048, &ident) < 0)
        return -1;
    if (name && ident)
        return fail(r, INVALID, "LogGroup name and LogGroup ARN are mutually exclusive parameters.");
    if (!name && !ident)
        return fail(r, INVALID, "Should provide either name or ARN of the log group.");
    snprintf(g->region, sizeof(g->region), "%s", r->req->region);
    snprintf(g->account, sizeof(g->account), "%s", r->req->account);
    if (ident && !strncmp(ident, "arn:", 4)) {
        if (parse_group_arn(ident, g) < 0)
            return fail(r, INVALID, "Invalid log group identifier: %s", ident);
        return 0;
    }
    const char *s = name ? name : ident;
    if (check_group_name(r, name ? "logGroupName" : "logGroupIdentifier", s) < 0)
        return -1;
    snprintf(g->name, sizeof(g->name), "%s", s);
    return 0;
}

static struct logs_group *find_group(struct lreq *r, const struct gref *g)
{
    struct logs_group *lg = logs_group_find(g->region, g->account, g->name);
    if (!lg)
        fail(r, NOT_FOUND, MSG_GROUP_NOT_FOUND);
    return lg;
}

/* Tags map: 1..50 entries, keys 1..128, values 0..256 characters. */
static int check_tags(struct lreq *r, json_t *tags, const char *key)
{
    if (!json_is_object(tags))
        return fail(r, "SerializationException", "Unexpected value type for '%s': expected a map", key);
    size_t n = json_object_size(tags);
    if (n < 1 || n > 50)
        return fail(r, INVALID, "1 validation error detected: Value at '%s' failed to satisfy "
                                "constraint: Member must have %s", key,
                    n < 1 ? "length greater than or equal to 1" : "length less than or equal to 50");
    const char *k;
    json_t *v;
    json_object_foreach(tags, k, v) {
        if (!json_is_string(v))
            return fail(r, "SerializationException", "Unexpected value type in '%s'", key);
        if (!*k || strlen(k) > 128 || strlen(json_string_value(v)) > 256 || !strncasecmp(k, "aws:", 4))
            return fail(r, INVALID, "Invalid tag: key '%s'", k);
    }
    return 0;
}

/* ------------------------------------------------------------- tokens */

static void make_token(char *out, size_t len, char kind, int64_t ts, uint64_t seq)
{
    snprintf(out, len, "%c/%020" PRId64 "%020" PRIu64, kind, ts < 0 ? 0 : ts, seq);
}

/* Parses "<kind>/<20 digits><20 digits>"; *kind receives the letter. */
static int parse_token(const char *tok, const char *kinds, char *kind, int64_t *ts, uint64_t *seq)
{
    if (!tok || strlen(tok) != 42 || !strchr(kinds, tok[0]) || tok[1] != '/')
        return -1;
    for (int i = 2; i < 42; i++)
        if (!isdigit((unsigned char)tok[i]))
            return -1;
    char a[21], b[21];
    memcpy(a, tok + 2, 20);
    a[20] = 0;
    memcpy(b, tok + 22, 20);
    b[20] = 0;
    *kind = tok[0];
    *ts = strtoll(a, NULL, 10);
    *seq = strtoull(b, NULL, 10);
    return 0;
}

/* "n/<offset>" for the Describe operations. */
static int parse_offset_token(struct lreq *r, size_t *off)
{
    const char *tok;
    if (get_str(r, "nextToken", false, 1, 64, &tok) < 0)
        return -1;
    *off = 0;
    if (!tok)
        return 0;
    char *end;
    if (strncmp(tok, "n/", 2) != 0 || !isdigit((unsigned char)tok[2]))
        return fail(r, INVALID, MSG_BAD_TOKEN);
    unsigned long long v = strtoull(tok + 2, &end, 10);
    if (*end)
        return fail(r, INVALID, MSG_BAD_TOKEN);
    *off = (size_t)v;
    return 0;
}

/* ------------------------------------------------------------- shapes */

static json_t *group_json(const struct logs_group *g)
{
    char arn[700];
    snprintf(arn, sizeof(arn), "arn:aws:logs:%s:%s:log-group:%s", g->region, g->account, g->name);
    json_t *o = json_pack("{s:s,s:I,s:i,s:I,s:s,s:b}", "logGroupName", g->name, "creationTime",
                          (json_int_t)g->creation, "metricFilterCount", 0, "storedBytes",
                          (json_int_t)g->bytes, "logGroupClass", "STANDARD",
                          "deletionProtectionEnabled", 0);
    if (g->retention_days > 0)
        json_object_set_new(o, "retentionInDays", json_integer(g->retention_days));
    json_object_set_new(o, "logGroupArn", json_string(arn));
    strcat(arn, ":*");
    json_object_set_new(o, "arn", json_string(arn));
    return o;
}

static json_t *stream_json(const struct logs_stream *s)
{
    char arn[1300];
    snprintf(arn, sizeof(arn), "arn:aws:logs:%s:%s:log-group:%s:log-stream:%s", s->g->region,
             s->g->account, s->g->name, s->name);
    json_t *o = json_pack("{s:s,s:I,s:s,s:I}", "logStreamName", s->name, "creationTime",
                          (json_int_t)s->creation, "arn", arn, "storedBytes", (json_int_t)0);
    if (s->n) {
        int64_t first = s->ev[0].ts, last = s->ev[s->n - 1].ts;
        json_object_set_new(o, "firstEventTimestamp", json_integer(first));
        json_object_set_new(o, "lastEventTimestamp", json_integer(last));
        json_object_set_new(o, "lastIngestionTime", json_integer(s->last_ingest));
        char tok[32];
        snprintf(tok, sizeof(tok), "%020" PRIu64, s->ev[s->n - 1].seq);
        json_object_set_new(o, "uploadSequenceToken", json_string(tok));
    }
    return o;
}

/* ------------------------------------------------------------ operations */

static int op_create_log_group(struct lreq *r)
{
    const char *name;
    if (get_group_name(r, &name) < 0)
        return -1;
    json_t *tags = json_object_get(r->in, "tags");
    if (tags && !json_is_null(tags) && check_tags(r, tags, "tags") < 0)
        return -1;
    const char *cls;
    if (get_str(r, "logGroupClass", false, 0, 64, &cls) < 0)
        return -1;
    if (cls && strcmp(cls, "STANDARD") && strcmp(cls, "INFREQUENT_ACCESS") && strcmp(cls, "DELIVERY"))
        return fail(r, INVALID, "1 validation error detected: Value '%s' at 'logGroupClass' failed to "
                                "satisfy constraint: Member must satisfy enum value set: [STANDARD, "
                                "INFREQUENT_ACCESS, DELIVERY]", cls);
    if (logs_group_find(r->req->region, r->req->account, name))
        return fail(r, EXISTS, "The specified log group already exists");
    struct logs_group *g = logs_group_create(r->req->region, r->req->account, name, logs_now_ms());
    if (!g)
        return fail(r, "ServiceUnavailableException", "out of memory");
    if (json_is_object(tags))
        json_object_update(g->tags, tags);
    return 0;
}

static int op_delete_log_group(struct lreq *r)
{
    const char *name;
    if (get_group_name(r, &name) < 0)
        return -1;
    struct logs_group *g = logs_group_find(r->req->region, r->req->account, name);
    if (!g)
        return fail(r, NOT_FOUND, MSG_GROUP_NOT_FOUND);
    logs_group_delete(g);
    return 0;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return true;
    return !n;
}

static int op_describe_log_groups(struct lreq *r)
{
    const char *prefix, *pattern;
    long long limit = 0;
    size_t off;
    if (get_str(r, "logGroupNamePrefix", false, 1, 512, &prefix) < 0 ||
        get_str(r, "logGroupNamePattern", false, 0, 512, &pattern) < 0 ||
        get_limit(r, "limit", 50, &limit) < 0 || parse_offset_token(r, &off) < 0)
        return -1;
    if (prefix && check_group_name(r, "logGroupNamePrefix", prefix) < 0)
        return -1;
    if (prefix && pattern)
        return fail(r, INVALID, "LogGroup name prefix and LogGroup name pattern are mutually "
                                "exclusive parameters.");
    json_t *idents = json_object_get(r->in, "logGroupIdentifiers");
    if (idents && !json_is_null(idents) && (!json_is_array(idents) || json_array_size(idents) > 50))
        return fail(r, INVALID, "logGroupIdentifiers must be a list of at most 50 names or ARNs");
    size_t n;
    struct logs_group **all = logs_groups(&n);
    json_t *arr = json_array();
    size_t seen = 0;
    bool more = false;
    for (size_t i = 0; i < n; i++) {
        struct logs_group *g = all[i];
        if (strcmp(g->region, r->req->region) || strcmp(g->account, r->req->account))
            continue;
        if (prefix && strncmp(g->name, prefix, strlen(prefix)))
            continue;
        if (pattern && !contains_ci(g->name, pattern))
            continue;
        if (json_is_array(idents) && json_array_size(idents)) {
            bool hit = false;
            size_t k;
            json_t *v;
            json_array_foreach(idents, k, v) {
                struct gref gr;
                const char *s = json_string_value(v);
                if (!s)
                    continue;
                if (!strncmp(s, "arn:", 4) ? parse_group_arn(s, &gr) == 0 && !strcmp(gr.name, g->name)
                                          : !strcmp(s, g->name))
                    hit = true;
            }
            if (!hit)
                continue;
        }
        if (seen++ < off)
            continue;
        if (json_array_size(arr) == (size_t)limit) {
            more = true;
            break;
        }
        json_array_append_new(arr, group_json(g));
    }
    json_object_set_new(r->out, "logGroups", arr);
    if (more) {
        char tok[32];
        snprintf(tok, sizeof(tok), "n/%zu", off + (size_t)limit);
        json_object_set_new(r->out, "nextToken", json_string(tok));
    }
    return 0;
}

static int op_create_log_stream(struct lreq *r)
{
    const char *gname, *sname;
    if (get_group_name(r, &gname) < 0 || get_stream_name(r, "logStreamName", true, &sname) < 0)
        return -1;
    struct logs_group *g = logs_group_find(r->req->region, r->req->account, gname);
    if (!g)
        return fail(r, NOT_FOUND, MSG_GROUP_NOT_FOUND);
    if (logs_stream_find(g, sname))
        return fail(r, EXISTS, "The specified log stream already exists");
    if (!logs_stream_create(g, sname, logs_now_ms()))
        return fail(r, "ServiceUnavailableException", "out of memory");
    return 0;
}

static int op_delete_log_stream(struct lreq *r)
{
    const char *gname, *sname;
    if (get_group_name(r, &gname) < 0 || get_stream_name(r, "logStreamName", true, &sname) < 0)
        return -1;
    struct logs_group *g = logs_group_find(r->req->region, r->req->account, gname);
    if (!g)
        return fail(r, NOT_FOUND, MSG_GROUP_NOT_FOUND);
    struct logs_stream *s = logs_stream_find(g, sname);
    if (!s)
        return fail(r, NOT_FOUND, MSG_STREAM_NOT_FOUND);
    logs_stream_delete(s);
    return 0;
}

static int64_t last_event_time(const struct logs_stream *s)
{
    return s->n ? s->ev[s->n - 1].ts : 0;
}

static int cmp_last_event(const void *a, const void *b)
{
    const struct logs_stream *x = *(struct logs_stream *const *)a, *y = *(struct logs_stream *const *)b;
    int64_t tx = last_event_time(x), ty = last_event_time(y);
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int op_describe_log_streams(struct lreq *r)
{
    struct gref gr;
    const char *prefix, *order;
    bool desc = false;
    long long limit = 0;
    size_t off;
    if (get_group_ref(r, true, &gr) < 0 || get_stream_name(r, "logStreamNamePrefix", false, &prefix) < 0 ||
        get_str(r, "orderBy", false, 0, 32, &order) < 0 || get_bool(r, "descending", &desc) < 0 ||
        get_limit(r, "limit", 50, &limit) < 0 || parse_offset_token(r, &off) < 0)
        return -1;
    bool by_time = false;
    if (order) {
        if (!strcmp(order, "LastEventTime"))
            by_time = true;
        else if (strcmp(order, "LogStreamName"))
            return fail(r, INVALID, "1 validation error detected: Value '%s' at 'orderBy' failed to "
                                    "satisfy constraint: Member must satisfy enum value set: "
                                    "[LogStreamName, LastEventTime]", order);
    }
    if (by_time && prefix)
        return fail(r, INVALID, "Cannot order by LastEventTime with a logStreamNamePrefix.");
    struct logs_group *g = find_group(r, &gr);
    if (!g)
        return -1;
    struct logs_stream **v = malloc((g->n ? g->n : 1) * sizeof(*v));
    if (!v)
        return fail(r, "ServiceUnavailableException", "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        if (!prefix || !strncmp(g->st[i]->name, prefix, strlen(prefix)))
            v[n++] = g->st[i];
    if (by_time)
        qsort(v, n, sizeof(*v), cmp_last_event);
    json_t *arr = json_array();
    size_t i = off, k = 0;
    for (; i < n && k < (size_t)limit; i++, k++)
        json_array_append_new(arr, stream_json(v[desc ? n - 1 - i : i]));
    json_object_set_new(r->out, "logStreams", arr);
    if (i < n) {
        char tok[32];
        snprintf(tok, sizeof(tok), "n/%zu", i);
        json_object_set_new(r->out, "nextToken", json_string(tok));
    }
    free(v);
    return 0;
}

static json_t *event_json(const struct logs_event *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "timestamp", json_integer(e->ts));
    json_object_set_new(o, "message", json_stringn(e->msg, e->len));
    json_object_set_new(o, "ingestionTime", json_integer(e->ingest));
    return o;
}

static int get_time_range(struct lreq *r, int64_t *start, int64_t *end)
{
    long long v = 0;
    *start = INT64_MIN;
    *end = INT64_MAX;
    int rc = get_int(r, "startTime", &v);
    if (rc < 0)
        return -1;
    if (rc) {
        if (v < 0)
            return fail(r, INVALID, "1 validation error detected: Value '%lld' at 'startTime' failed "
                                    "to satisfy constraint: Member must have value greater than or "
                                    "equal to 0", v);
        *start = v;
    }
    rc = get_int(r, "endTime", &v);
    if (rc < 0)
        return -1;
    if (rc) {
        if (v < 0)
            return fail(r, INVALID, "1 validation error detected: Value '%lld' at 'endTime' failed "
                                    "to satisfy constraint: Member must have value greater than or "
                                    "equal to 0", v);
        *end = v;
    }
    return 0;
}

static int op_get_log_events(struct lreq *r)
{
    struct gref gr;
    const char *sname, *tok;
    int64_t start, end;
    long long limit = 0;
    bool head = false;
    if (get_group_ref(r, true, &gr) < 0 || get_stream_name(r, "logStreamName", true, &sname) < 0 ||
        get_time_range(r, &start, &end) < 0 || get_limit(r, "limit", 10000, &limit) < 0 ||
        get_bool(r, "startFromHead", &head) < 0 || get_str(r, "nextToken", false, 1, 128, &tok) < 0)
        return -1;
    char kind = 0;
    int64_t tts = 0;
    uint64_t tseq = 0;
    if (tok && parse_token(tok, "fb", &kind, &tts, &tseq) < 0)
        return fail(r, INVALID, MSG_BAD_TOKEN);
    struct logs_group *g = find_group(r, &gr);
    if (!g)
        return -1;
    struct logs_stream *s = logs_stream_find(g, sname);
    if (!s)
        return fail(r, NOT_FOUND, MSG_STREAM_NOT_FOUND);
    size_t lo = start == INT64_MIN ? 0 : logs_stream_lower_bound(s, start, 0);
    size_t hi = end == INT64_MAX ? s->n : logs_stream_lower_bound(s, end, 0);
    if (hi < lo)
        hi = lo;
    size_t a = 0, b = 0; /* [a, b) returned */
    bool forward = kind == 'f' || (!kind && head);
    if (kind == 'f') {
        a = tseq == UINT64_MAX ? s->n : logs_stream_lower_bound(s, tts, tseq + 1);
        if (a < lo)
            a = lo;
        if (a > hi)
            a = hi;
    } else if (kind == 'b') {
        b = logs_stream_lower_bound(s, tts, tseq);
        if (b > hi)
            b = hi;
        if (b < lo)
            b = lo;
    } else if (head) {
        a = lo;
    } else {
        b = hi;
    }
    size_t bytes = 0;
    if (forward) {
        b = a;
        while (b < hi && b - a < (size_t)limit && bytes + s->ev[b].len + 26 <= MAX_RESPONSE_BYTES)
            bytes += s->ev[b++].len + 26;
    } else {
        a = b;
        while (a > lo && b - a < (size_t)limit && bytes + s->ev[a - 1].len + 26 <= MAX_RESPONSE_BYTES)
            bytes += s->ev[--a].len + 26;
    }
    json_t *arr = json_array();
    for (size_t i = a; i < b; i++)
        json_array_append_new(arr, event_json(&s->ev[i]));
    json_object_set_new(r->out, "events", arr);
    char ftok[48], btok[48];
    if (a < b) {
        make_token(ftok, sizeof(ftok), 'f', s->ev[b - 1].ts, s->ev[b - 1].seq);
        make_token(btok, sizeof(btok), 'b', s->ev[a].ts, s->ev[a].seq);
    } else if (kind) {
        /* Nothing new: the same position again, as AWS answers at the end. */
        make_token(ftok, sizeof(ftok), 'f', tts, tseq);
        make_token(btok, sizeof(btok), 'b', tts, tseq);
    } else {
        /* Empty range: a position just before it (or at its end). */
        int64_t ts = a < s->n ? s->ev[a].ts : (s->n ? s->ev[s->n - 1].ts : (start > 0 ? start : 0));
        uint64_t seq = a < s->n ? (s->ev[a].seq ? s->ev[a].seq - 1 : 0) : (s->n ? s->ev[s->n - 1].seq : 0);
        make_token(ftok, sizeof(ftok), 'f', ts, seq);
        make_token(btok, sizeof(btok), 'b', ts, seq + 1);
    }
    json_object_set_new(r->out, "nextForwardToken", json_string(ftok));
    json_object_set_new(r->out, "nextBackwardToken", json_string(btok));
    return 0;
}

static int op_filter_log_events(struct lreq *r)
{
    struct gref gr;
    const char *prefix, *pattern, *tok;
    int64_t start, end;
    long long limit = 0;
    bool interleaved = false;
    if (get_group_ref(r, true, &gr) < 0 || get_stream_name(r, "logStreamNamePrefix", false, &prefix) < 0 ||
        get_time_range(r, &start, &end) < 0 || get_limit(r, "limit", 10000, &limit) < 0 ||
        get_str(r, "filterPattern", false, 0, 1024, &pattern) < 0 ||
        get_bool(r, "interleaved", &interleaved) < 0 || get_str(r, "nextToken", false, 1, 128, &tok) < 0)
        return -1;
    json_t *names = json_object_get(r->in, "logStreamNames");
    if (names && json_is_null(names))
        names = NULL;
    if (names) {
        if (!json_is_array(names))
            return fail(r, "SerializationException", "Unexpected value type for 'logStreamNames'");
        if (json_array_size(names) < 1 || json_array_size(names) > 100)
            return fail(r, INVALID, "1 validation error detected: Value at 'logStreamNames' failed to "
                                    "satisfy constraint: Member must have length %s",
                        json_array_size(names) < 1 ? "greater than or equal to 1"
                                                   : "less than or equal to 100");
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v) if (!json_is_string(v))
            return fail(r, "SerializationException", "Unexpected value type in 'logStreamNames'");
    }
    if (names && prefix)
        return fail(r, INVALID, "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.");
    char kind;
    int64_t tts = INT64_MIN;
    uint64_t tseq = 0;
    if (tok && parse_token(tok, "e", &kind, &tts, &tseq) < 0)
        return fail(r, INVALID, MSG_BAD_TOKEN);
    struct logs_filter *f = NULL;
    const char *ferr;
    if (pattern && logs_filter_compile(pattern, &f, &ferr) < 0)
        return fail(r, INVALID, "%s", ferr);
    struct logs_group *g = find_group(r, &gr);
    if (!g) {
        logs_filter_free(f);
        return -1;
    }
    /* Candidate streams and a cursor in each (k-way merge by (ts, seq)). */
    struct cur {
        struct logs_stream *s;
        size_t i, hi;
    } *c = calloc(g->n ? g->n : 1, sizeof(*c));
    size_t nc = 0;
    if (!c) {
        logs_filter_free(f);
        return fail(r, "ServiceUnavailableException", "out of memory");
    }
    for (size_t i = 0; i < g->n; i++) {
        struct logs_stream *s = g->st[i];
        if (prefix && strncmp(s->name, prefix, strlen(prefix)))
            continue;
        if (names) {
            bool hit = false;
            size_t k;
            json_t *v;
            json_array_foreach(names, k, v) hit |= !strcmp(json_string_value(v), s->name);
            if (!hit)
                continue;
        }
        size_t lo = start == INT64_MIN ? 0 : logs_stream_lower_bound(s, start, 0);
        if (tok) {
            size_t t = logs_stream_lower_bound(s, tts, tseq + 1);
            if (t > lo)
                lo = t;
        }
        size_t hi = end == INT64_MAX ? s->n : logs_stream_lower_bound(s, end, 0);
        c[nc++] = (struct cur){s, lo, hi};
    }
    json_t *arr = json_array();
    size_t bytes = 0, scanned = 0;
    bool more = false;
    const struct logs_event *last = NULL;
    for (;;) {
        struct cur *best = NULL;
        for (size_t i = 0; i < nc; i++) {
            if (c[i].i >= c[i].hi)
                continue;
            const struct logs_event *e = &c[i].s->ev[c[i].i];
            if (!best || e->ts < best->s->ev[best->i].ts ||
                (e->ts == best->s->ev[best->i].ts && e->seq < best->s->ev[best->i].seq))
                best = &c[i];
        }
        if (!best)
            break;
        const struct logs_event *e = &best->s->ev[best->i];
        bool hit = logs_filter_match(f, e->msg, e->len);
        if (hit && (json_array_size(arr) == (size_t)limit || bytes + e->len + 26 > MAX_RESPONSE_BYTES)) {
            more = true;
            break;
        }
        if (++scanned > 1000000 && last) {
            more = true; /* bound one call's work; the token resumes */
            break;
        }
        best->i++;
        last = e;
        if (!hit)
            continue;
        char id[64];
        snprintf(id, sizeof(id), "%036" PRId64 "%020" PRIu64, e->ts, e->seq);
        json_t *o = event_json(e);
        json_object_set_new(o, "logStreamName", json_string(best->s->name));
        json_object_set_new(o, "eventId", json_string(id));
        json_array_append_new(arr, o);
        bytes += e->len + 26;
    }
    json_object_set_new(r->out, "events", arr);
    json_t *searched = json_array();
    for (size_t i = 0; i < nc; i++)
        json_array_append_new(searched, json_pack("{s:s,s:b}", "logStreamName", c[i].s->name,
                                                  "searchedCompletely", !more));
    json_object_set_new(r->out, "searchedLogStreams", searched);
    if (more && last) {
        char t[48];
        make_token(t, sizeof(t), 'e', last->ts, last->seq);
        json_object_set_new(r->out, "nextToken", json_string(t));
    }
    free(c);
    logs_filter_free(f);
    return 0;
}

static int op_put_log_events(struct lreq *r)
{
    const char *gname, *sname, *seqtok;
    if (get_group_name(r, &gname) < 0 || get_stream_name(r, "logStreamName", true, &sname) < 0 ||
        get_str(r, "sequenceToken", false, 1, 256, &seqtok) < 0)
        return -1;
    json_t *evs = json_object_get(r->in, "logEvents");
    if (!evs || json_is_null(evs))
        return fail(r, INVALID, "1 validation error detected: Value null at 'logEvents' failed to "
                                "satisfy constraint: Member must not be null");
    if (!json_is_array(evs))
        return fail(r, "SerializationException", "Unexpected value type for 'logEvents': expected a list");
    size_t n = json_array_size(evs);
    if (n < 1 || n > 10000)
        return fail(r, INVALID, "1 validation error detected: Value at 'logEvents' failed to satisfy "
                                "constraint: Member must have length %s",
                    n < 1 ? "greater than or equal to 1" : "less than or equal to 10000");
    size_t total = 0;
    int64_t prev = INT64_MIN, first = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(evs, i);
        json_t *ts = json_object_get(e, "timestamp"), *m = json_object_get(e, "message");
        if (!json_is_object(e) || !json_is_integer(ts) || !json_is_string(m))
            return fail(r, json_is_object(e) && (!ts || !m) ? INVALID : "SerializationException",
                        "logEvents.%zu: timestamp (a number) and message (a string) are required", i + 1);
        size_t ml = json_string_length(m);
        if (ml < 1)
            return fail(r, INVALID, "1 validation error detected: Value '' at 'logEvents.%zu.member."
                                    "message' failed to satisfy constraint: Member must have length "
                                    "greater than or equal to 1", i + 1);
        total += ml + LOGS_EVENT_OVERHEAD;
        int64_t t = json_integer_value(ts);
        if (t < 0)
            return fail(r, INVALID, "1 validation error detected: Value '%" PRId64 "' at 'logEvents.%zu."
                                    "member.timestamp' failed to satisfy constraint: Member must have "
                                    "value greater than or equal to 0", t, i + 1);
        if (t < prev)
            return fail(r, INVALID, "Log events in a single PutLogEvents request must be in "
                                    "chronological order.");
        if (i == 0)
            first = t;
        prev = t;
    }
    if (total > BATCH_MAX_BYTES)
        return fail(r, INVALID, "Upload too large: %zu bytes exceeds limit of %d", total, BATCH_MAX_BYTES);
    if (prev - first > DAY_MS)
        return fail(r, INVALID, "The batch of log events in a single PutLogEvents request cannot "
                                "span more than 24 hours.");
    struct logs_group *g = logs_group_find(r->req->region, r->req->account, gname);
    if (!g)
        return fail(r, NOT_FOUND, MSG_GROUP_NOT_FOUND);
    struct logs_stream *s = logs_stream_find(g, sname);
    if (!s)
        return fail(r, NOT_FOUND, MSG_STREAM_NOT_FOUND);
    int64_t now = logs_now_ms();
    int64_t too_old = now - 14 * DAY_MS, too_new = now + 2 * 3600 * 1000;
    int64_t expired = g->retention_days > 0 ? now - (int64_t)g->retention_days * DAY_MS : INT64_MIN;
    long long old_end = -1, exp_end = -1, new_start = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(evs, i);
        int64_t t = json_integer_value(json_object_get(e, "timestamp"));
        if (t < too_old) {
            old_end = (long long)i;
            continue;
        }
        if (t < expired) {
            exp_end = (long long)i;
            continue;
        }
        if (t > too_new) {
            if (new_start < 0)
                new_start = (long long)i;
            continue;
        }
        json_t *m = json_object_get(e, "message");
        if (logs_stream_add(s, t, now, json_string_value(m), json_string_length(m)) < 0)
            return fail(r, "ServiceUnavailableException", "out of memory");
    }
    if (old_end >= 0 || exp_end >= 0 || new_start >= 0) {
        json_t *rej = json_object();
        if (old_end >= 0)
            json_object_set_new(rej, "tooOldLogEventEndIndex", json_integer(old_end));
        if (exp_end >= 0)
            json_object_set_new(rej, "expiredLogEventEndIndex", json_integer(exp_end));
        if (new_start >= 0)
            json_object_set_new(rej, "tooNewLogEventStartIndex", json_integer(new_start));
        json_object_set_new(r->out, "rejectedLogEventsInfo", rej);
    }
    char tok[32];
    snprintf(tok, sizeof(tok), "%020" PRIu64, s->n ? s->ev[s->n - 1].seq : 0);
    json_object_set_new(r->out, "nextSequenceToken", json_string(tok));
    return 0;
}

static int op_put_retention_policy(struct lreq *r)
{
    static const int days[] = {1,   3,   5,   7,    14,   30,   60,   90,   120,  150,  180,
                               365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653};
    const char *name;
    long long d = 0;
    if (get_group_name(r, &name) < 0)
        return -1;
    int rc = get_int(r, "retentionInDays", &d);
    if (rc < 0)
        return -1;
    if (!rc)
        return fail(r, INVALID, "1 validation error detected: Value null at 'retentionInDays' failed "
                                "to satisfy constraint: Member must not be null");
    bool ok = false;
    for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++)
        ok |= days[i] == d;
    if (!ok)
        return fail(r, INVALID, "1 validation error detected: Value '%lld' at 'retentionInDays' failed "
                                "to satisfy constraint: Member must satisfy enum value set: [1, 3, 5, 7, "
                                "14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, "
                                "2557, 2922, 3288, 3653]", d);
    struct logs_group *g = logs_group_find(r->req->region, r->req->account, name);
    if (!g)
        return fail(r, NOT_FOUND, MSG_GROUP_NOT_FOUND);
    g->retention_days = (int)d;
    logs_group_mark_dirty(g);
    logs_store_expire(g, logs_now_ms());
    return 0;
}

static int op_delete_retention_policy(struct lreq *r)
{
    const char *name;
    if (get_group_name(r, &name) < 0)
        return -1;
    struct logs_group *g = logs_group_find(r->req->region, r->req->account, name);
    if (!g)
        return fail(r, NOT_FOUND, MSG_GROUP_NOT_FOUND);
    g->retention_days = 0;
    logs_group_mark_dirty(g);
    return 0;
}

/* The group a tagging call names (logGroupName, or resourceArn). */
static struct logs_group *tag_target(struct lreq *r, bool by_arn)
{
    struct gref gr;
    if (by_arn) {
        const char *arn;
        if (get_str(r, "resourceArn", true, 1, 1011, &arn) < 0)
            return NULL;
        if (parse_group_arn(arn, &gr) < 0) {
            fail(r, INVALID, "Invalid resource ARN: %s (lambdad tags log groups only)", arn);
            return NULL;
        }
    } else {
        const char *name;
        if (get_group_name(r, &name) < 0)
            return NULL;
        snprintf(gr.region, sizeof(gr.region), "%s", r->req->region);
        snprintf(gr.account, sizeof(gr.account), "%s", r->req->account);
        snprintf(gr.name, sizeof(gr.name), "%s", name);
    }
    return find_group(r, &gr);
}

static int op_tag(struct lreq *r, bool by_arn)
{
    struct logs_group *g = tag_target(r, by_arn);
    if (!g)
        return -1;
    json_t *tags = json_object_get(r->in, "tags");
    if (!tags || json_is_null(tags))
        return fail(r, INVALID, "1 validation error detected: Value null at 'tags' failed to satisfy "
                                "constraint: Member must not be null");
    if (check_tags(r, tags, "tags") < 0)
        return -1;
    json_t *merged = json_deep_copy(g->tags);
    json_object_update(merged, tags);
    if (json_object_size(merged) > 50) {
        json_decref(merged);
        return fail(r, by_arn ? "TooManyTagsException" : INVALID, "A resource can have no more than 50 tags.");
    }
    json_decref(g->tags);
    g->tags = merged;
    logs_group_mark_dirty(g);
    return 0;
}

static int op_untag(struct lreq *r, bool by_arn)
{
    struct logs_group *g = tag_target(r, by_arn);
    if (!g)
        return -1;
    const char *key = by_arn ? "tagKeys" : "tags";
    json_t *keys = json_object_get(r->in, key);
    if (!json_is_array(keys))
        return fail(r, INVALID, "1 validation error detected: Value null at '%s' failed to satisfy "
                                "constraint: Member must not be null", key);
    size_t i;
    json_t *v;
    json_array_foreach(keys, i, v) if (json_is_string(v)) json_object_del(g->tags, json_string_value(v));
    logs_group_mark_dirty(g);
    return 0;
}

static int op_list_tags(struct lreq *r, bool by_arn)
{
    struct logs_group *g = tag_target(r, by_arn);
    if (!g)
        return -1;
    json_object_set(r->out, "tags", g->tags);
    return 0;
}

static int op_tag_log_group(struct lreq *r) { return op_tag(r, false); }
static int op_tag_resource(struct lreq *r) { return op_tag(r, true); }
static int op_untag_log_group(struct lreq *r) { return op_untag(r, false); }
static int op_untag_resource(struct lreq *r) { return op_untag(r, true); }
static int op_list_tags_log_group(struct lreq *r) { return op_list_tags(r, false); }
static int op_list_tags_for_resource(struct lreq *r) { return op_list_tags(r, true); }

/* ------------------------------------------------------------ live tail */

#define LIVE_GROUPS_MAX 10
#define LIVE_RESULTS_MAX 500      /* per update, as AWS samples beyond it */
#define LIVE_TICK_MS 1000
#define LIVE_MAX_MS (3LL * 3600 * 1000) /* AWS ends a session after 3 hours */

struct live {
    struct gref groups[LIVE_GROUPS_MAX];
    char idents[LIVE_GROUPS_MAX][600]; /* as the caller named them */
    size_t ngroups;
    json_t *names, *prefixes;          /* borrowed from the request body */
    struct logs_filter *filter;
    uint64_t since;                    /* events with a larger seq are new */
};

static bool live_stream_wanted(const struct live *lv, const char *name)
{
    size_t i;
    json_t *v;
    if (json_array_size(lv->names)) {
        json_array_foreach(lv->names, i, v) if (!strcmp(json_string_value(v), name)) return true;
        return false;
    }
    if (json_array_size(lv->prefixes)) {
        json_array_foreach(lv->prefixes, i, v) {
            const char *p = json_string_value(v);
            if (!strncmp(name, p, strlen(p)))
                return true;
        }
        return false;
    }
    return true;
}

/* The new matching events since lv->since as a sessionUpdate payload.
 * Store lock held. Events are taken from each stream's end backwards (new
 * events are appended there; one ingested with an older timestamp than
 * its stream's newest is not shown). */
static char *live_update(struct live *lv)
{
    json_t *res = json_array();
    uint64_t newest = lv->since;
    for (size_t k = 0; k < lv->ngroups; k++) {
        struct logs_group *g = logs_group_find(lv->groups[k].region, lv->groups[k].account,
                                               lv->groups[k].name);
        for (size_t j = 0; g && j < g->n; j++) {
            struct logs_stream *s = g->st[j];
            if (!live_stream_wanted(lv, s->name))
                continue;
            size_t i = s->n;
            while (i > 0 && s->ev[i - 1].seq > lv->since)
                i--;
            for (; i < s->n; i++) {
                const struct logs_event *e = &s->ev[i];
                if (e->seq > newest)
                    newest = e->seq;
                if (json_array_size(res) >= LIVE_RESULTS_MAX || !logs_filter_match(lv->filter, e->msg, e->len))
                    continue;
                json_t *o = event_json(e);
                json_object_set_new(o, "logStreamName", json_string(s->name));
                json_object_set_new(o, "logGroupIdentifier", json_string(lv->idents[k]));
                json_array_append_new(res, o);
            }
        }
    }
    lv->since = newest;
    bool sampled = json_array_size(res) >= LIVE_RESULTS_MAX;
    json_t *o = json_pack("{s:{s:b},s:o}", "sessionMetadata", "sampled", sampled, "sessionResults", res);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* Writes one event-stream message as an HTTP chunk; false when the client
 * is gone. */
static bool live_send(struct http_req *req, const char *type, const char *json)
{
    unsigned char *m;
    size_t mlen;
    if (!json || eventstream_encode(type, "application/json", json, strlen(json), &m, &mlen))
        return false;
    bool ok = mg_send_chunk(req->conn, (const char *)m, (unsigned)mlen) > 0;
    free(m);
    return ok;
}

/* StartLiveTail: an application/vnd.amazon.eventstream response (chunked)
 * with sessionStart, then a sessionUpdate every second with the events
 * ingested since, until the client goes away, the session reaches 3 hours
 * or lambdad shuts down. SDKs put a "streaming-" host prefix before the
 * endpoint; clients of lambdad turn that off (botocore:
 * Config(inject_host_prefix=False) or AWS_DISABLE_HOST_PREFIX_INJECTION=true). */
static void start_live_tail(struct http_req *req, json_t *in)
{
    struct lreq r = {.req = req, .in = in};
    struct live lv = {0};
    json_t *groups = json_object_get(in, "logGroupIdentifiers");
    const char *pattern = NULL;
    if (!json_is_array(groups) || json_array_size(groups) < 1 || json_array_size(groups) > LIVE_GROUPS_MAX) {
        fail(&r, INVALID, "logGroupIdentifiers must list 1 to %d log group ARNs", LIVE_GROUPS_MAX);
        goto fail;
    }
    lv.names = json_object_get(in, "logStreamNames");
    lv.prefixes = json_object_get(in, "logStreamNamePrefixes");
    if ((lv.names && !json_is_array(lv.names) && !json_is_null(lv.names)) ||
        (lv.prefixes && !json_is_array(lv.prefixes) && !json_is_null(lv.prefixes))) {
        fail(&r, "SerializationException", "logStreamNames and logStreamNamePrefixes are lists");
        goto fail;
    }
    if (json_array_size(lv.names) && json_array_size(lv.prefixes)) {
        fail(&r, INVALID, "logStreamNames and logStreamNamePrefixes are mutually exclusive parameters.");
        goto fail;
    }
    if (json_array_size(lv.names) + json_array_size(lv.prefixes) > 0 && json_array_size(groups) != 1) {
        fail(&r, INVALID, "Stream names or prefixes need exactly one log group.");
        goto fail;
    }
    size_t i;
    json_t *v;
    json_array_foreach(lv.names, i, v) if (!json_is_string(v)) {
        fail(&r, "SerializationException", "logStreamNames holds a non-string");
        goto fail;
    }
    json_array_foreach(lv.prefixes, i, v) if (!json_is_string(v)) {
        fail(&r, "SerializationException", "logStreamNamePrefixes holds a non-string");
        goto fail;
    }
    if (get_str(&r, "logEventFilterPattern", false, 0, 1024, &pattern) < 0)
        goto fail;
    const char *ferr;
    if (pattern && logs_filter_compile(pattern, &lv.filter, &ferr) < 0) {
        fail(&r, INVALID, "%s", ferr);
        goto fail;
    }
    logs_store_lock();
    json_array_foreach(groups, i, v) {
        const char *s = json_string_value(v);
        struct gref *g = &lv.groups[lv.ngroups];
        snprintf(g->region, sizeof(g->region), "%s", req->region);
        snprintf(g->account, sizeof(g->account), "%s", req->account);
        if (!s || (!strncmp(s, "arn:", 4) ? parse_group_arn(s, g) < 0
                                          : (!group_name_ok(s) || snprintf(g->name, sizeof(g->name), "%s", s) < 0))) {
            fail(&r, INVALID, "Invalid log group identifier: %s", s ? s : "(not a string)");
            break;
        }
        if (!logs_group_find(g->region, g->account, g->name)) {
            fail(&r, NOT_FOUND, MSG_GROUP_NOT_FOUND);
            break;
        }
        snprintf(lv.idents[lv.ngroups], sizeof(lv.idents[0]), "%s", s);
        lv.ngroups++;
    }
    lv.since = logs_store_last_seq();
    logs_store_unlock();
    if (r.code)
        goto fail;

    char sid[37], hdr[160];
    http_uuid4(sid);
    json_t *start = json_pack("{s:s,s:s,s:O,s:O,s:O,s:s}", "requestId", req->request_id, "sessionId", sid,
                              "logGroupIdentifiers", groups, "logStreamNames",
                              lv.names ? lv.names : json_null(), "logStreamNamePrefixes",
                              lv.prefixes ? lv.prefixes : json_null(), "logEventFilterPattern",
                              pattern ? pattern : "");
    char *text = json_dumps(start, JSON_COMPACT);
    json_decref(start);
    snprintf(hdr, sizeof(hdr), "x-amzn-RequestId: %s\r\n", req->request_id);
    mg_printf(req->conn,
              "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n%s"
              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", hdr);
    req->status = 200;
    /* JSON-protocol event streams open with an initial-response event. */
    bool ok = live_send(req, "initial-response", "{}") && live_send(req, "sessionStart", text);
    free(text);
    int64_t t0 = logs_now_ms();
    while (ok && !http_draining() && logs_now_ms() - t0 < LIVE_MAX_MS) {
        struct timespec d = {LIVE_TICK_MS / 1000, (LIVE_TICK_MS % 1000) * 1000000L};
        nanosleep(&d, NULL);
        logs_store_lock();
        text = live_update(&lv);
        logs_store_unlock();
        ok = live_send(req, "sessionUpdate", text);
        free(text);
    }
    if (ok)
        mg_send_chunk(req->conn, "", 0); /* the final chunk */
    logs_filter_free(lv.filter);
    return;
fail:
    logs_filter_free(lv.filter);
    services_send_json_error(req, 400, r.code, "%s", r.msg);
}

/* -------------------------------------------------------------- dispatch */

static const struct {
    const char *name;
    int (*fn)(struct lreq *r);
    bool write; /* changes state: I/O lock, on disk before the answer */
} g_ops[] = {
    {"CreateLogGroup", op_create_log_group, true},
    {"DescribeLogGroups", op_describe_log_groups, false},
    {"DeleteLogGroup", op_delete_log_group, true},
    {"CreateLogStream", op_create_log_stream, true},
    {"DescribeLogStreams", op_describe_log_streams, false},
    {"DeleteLogStream", op_delete_log_stream, true},
    {"GetLogEvents", op_get_log_events, false},
    {"FilterLogEvents", op_filter_log_events, false},
    {"PutLogEvents", op_put_log_events, true},
    {"PutRetentionPolicy", op_put_retention_policy, true},
    {"DeleteRetentionPolicy", op_delete_retention_policy, true},
    {"TagLogGroup", op_tag_log_group, true},
    {"UntagLogGroup", op_untag_log_group, true},
    {"ListTagsLogGroup", op_list_tags_log_group, false},
    {"TagResource", op_tag_resource, true},
    {"UntagResource", op_untag_resource, true},
    {"ListTagsForResource", op_list_tags_for_resource, false},
    {"StartLiveTail", NULL, false}, /* streams: start_live_tail; keep last */
};

void api_logs(struct http_req *req)
{
    const char *target = http_header(req, "X-Amz-Target");
    if (!target || strncmp(target, TARGET_PREFIX, strlen(TARGET_PREFIX)) != 0) {
        services_send_json_error(req, 400, "UnknownOperationException",
                                 "Missing or unknown X-Amz-Target for CloudWatch Logs: %s",
                                 target ? target : "(none)");
        return;
    }
    const char *opname = target + strlen(TARGET_PREFIX);
    size_t k = 0, nops = sizeof(g_ops) / sizeof(g_ops[0]);
    while (k < nops && strcmp(g_ops[k].name, opname) != 0)
        k++;
    if (k == nops) {
        services_send_json_error(req, 400, "UnknownOperationException",
                                 "Operation %.200s is not supported by lambdad's logs service", opname);
        return;
    }
    req->op = g_ops[k].name;
    req->body_cap = API_LOGS_BODY_CAP;
    if (http_read_body(req) < 0)
        return; /* answered */
    struct lreq r = {.req = req};
    json_error_t jerr;
    if (http_json_too_deep(req->body, req->body_len, 32)) {
        services_send_json_error(req, 400, "SerializationException", "the request body nests too deeply");
        return;
    }
    r.in = req->body_len ? json_loadb(req->body, req->body_len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr) : json_object();
    if (!json_is_object(r.in)) {
        json_decref(r.in);
        services_send_json_error(req, 400, "SerializationException",
                                 "Could not parse the request body as a JSON object");
        return;
    }
    if (k == nops - 1) {
        start_live_tail(req, r.in);
        json_decref(r.in);
        return;
    }
    r.out = json_object();
    if (g_ops[k].write)
        logs_store_lock_write();
    else
        logs_store_lock();
    int rc = g_ops[k].fn(&r);
    /* Serialise under the lock: the output borrows nothing, but building it
     * read the store. */
    char *text = rc == 0 ? json_dumps(r.out, JSON_COMPACT) : NULL;
    if (g_ops[k].write)
        logs_store_unlock_write();
    else
        logs_store_unlock();
    if (rc < 0) {
        services_send_json_error(req, 400, r.code, "%s", r.msg);
    } else if (!text) {
        services_send_json_error(req, 500, "ServiceUnavailableException", "out of memory");
    } else {
        http_send(req, 200, "application/x-amz-json-1.1", NULL, text, strlen(text));
    }
    free(text);
    json_decref(r.in);
    json_decref(r.out);
}
