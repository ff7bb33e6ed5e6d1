/* services: companion-service routing and protocol error encoding (see
 * services.h for the design). */
#include "server/services.h"

#include "server/api_logs.h"
#include "server/svc_iam.h"
#include "server/svc_s3.h"

#include <civetweb.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The registration point of every companion service. To serve one, give it
 * a handler (void fn(struct http_req *)); the handler finds the operation
 * itself (Action= for query, X-Amz-Target after the '.' for JSON, method +
 * path for S3) and answers with the helpers in services.h. */
static const struct service g_services[] = {
    {"iam", NULL, SERVICE_QUERY, svc_iam, HTTP_BODY_CAP_DEFAULT},
    {"sts", NULL, SERVICE_QUERY, svc_sts, HTTP_BODY_CAP_DEFAULT},
    {"s3", NULL, SERVICE_REST_XML, svc_s3, 4u << 20},
    /* CloudWatch Logs: JSON 1.1, X-Amz-Target "Logs_20140328.<Operation>"
     * (api_logs.h). */
    {"logs", "Logs_20140328", SERVICE_JSON, api_logs, API_LOGS_BODY_CAP},
};
#define N_SERVICES (sizeof(g_services) / sizeof(g_services[0]))

/* --- text buffer -------------------------------------------------------- */

static bool sbuf_grow(struct sbuf *b, size_t need)
{
    if (b->oom)
        return false;
    if (b->len + need + 1 <= b->cap)
        return true;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + need + 1)
        ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = ncap;
    return true;
}

void sbuf_append(struct sbuf *b, const char *s, size_t n)
{
    if (!sbuf_grow(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void sbuf_puts(struct sbuf *b, const char *s)
{
    sbuf_append(b, s, strlen(s));
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sbuf_grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sbuf_xml(struct sbuf *b, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        char num[8];
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n') {
                /* \r would be normalised away by XML parsers; other control
                 * characters are not allowed in XML 1.0 at all, so S3-style
                 * character references are the best available. */
                snprintf(num, sizeof(num), "&#x%X;", c);
                rep = num;
            }
        }
        if (rep) {
            sbuf_append(b, s + start, i - start);
            sbuf_puts(b, rep);
            start = i + 1;
        }
    }
    sbuf_append(b, s + start, n - start);
}

void sbuf_xml_elem(struct sbuf *b, const char *tag, const char *s)
{
    sbuf_printf(b, "<%s>", tag);
    sbuf_xml(b, s ? s : "", s ? strlen(s) : 0);
    sbuf_printf(b, "</%s>", tag);
}

void sbuf_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

/* --- forms ----------------------------------------------------------------- */

#define FORM_MAX_PAIRS 10000

void form_free(struct form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->names[i]);
        free(f->values[i]);
    }
    free(f->names);
    free(f->values);
    memset(f, 0, sizeof(*f));
}

static char *form_decode(const char *s, size_t len, int *rc)
{
    char *out = malloc(len + 1);
    if (!out) {
        *rc = -ENOMEM;
        return NULL;
    }
    int n = http_pct_decode(s, len, out, len + 1, true);
    if (n < 0 || strlen(out) != (size_t)n) {
        free(out);
        *rc = -EINVAL;
        return NULL;
    }
    return out;
}

static int form_add(struct form *f, const char *s, size_t len, size_t *cap)
{
    int rc = 0;
    if (len == 0)
        return 0;
    if (f->n == FORM_MAX_PAIRS)
        return -E2BIG;
    if (f->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        char **nn = realloc(f->names, ncap * sizeof(*nn));
        if (!nn)
            return -ENOMEM;
        f->names = nn;
        char **nv = realloc(f->values, ncap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        f->values = nv;
        *cap = ncap;
    }
    const char *eq = memchr(s, '=', len);
    size_t klen = eq ? (size_t)(eq - s) : len;
    char *k = form_decode(s, klen, &rc);
    char *v = k ? form_decode(eq ? eq + 1 : s + len, eq ? len - klen - 1 : 0, &rc) : NULL;
    if (!v) {
        free(k);
        return rc;
    }
    f->names[f->n] = k;
    f->values[f->n] = v;
    f->n++;
    return 0;
}

int form_parse(const char *s, size_t len, struct form *f)
{
    size_t cap = f->n; /* appending keeps the pairs; the next add reallocates */
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t plen = amp ? (size_t)(amp - (s + i)) : len - i;
        int rc = form_add(f, s + i, plen, &cap);
        if (rc) {
            form_free(f);
            return rc;
        }
        i += plen + 1;
    }
    return 0;
}

const char *form_get(const struct form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name))
            return f->values[i];
    return NULL;
}

int services_read_form(struct http_req *req, struct form *f)
{
    memset(f, 0, sizeof(*f));
    const char *qs = req->ri ? req->ri->query_string : NULL;
    int rc = qs ? form_parse(qs, strlen(qs), f) : 0;
    if (!rc && strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        if (http_read_body(req))
            return -1;
        rc = form_parse(req->body, req->body_len, f);
    }
    if (rc == -ENOMEM) {
        services_send_query_error(req, 500, "ServiceFailure", "out of memory");
        return -1;
    }
    if (rc) {
        services_send_query_error(req, 400, "MalformedQueryString",
                                  rc == -E2BIG ? "Too many request parameters"
                                               : "Invalid percent-encoding in the request parameters");
        return -1;
    }
    return 0;
}

/* --- responses ----------------------------------------------------------- */

static bool expects_continue(const struct http_req *req)
{
    const char *e = http_header(req, "Expect");
    return e && !strcasecmp(e, "100-continue");
}

const char *services_body_unread(struct http_req *req)
{
    if (req->body_read || !expects_continue(req) || req->ri->content_length == 0)
        return "";
    req->body_read = true;
    mg_disable_keep_alive(req->conn);
    return "Connection: close\r\n";
}

void services_continue(struct http_req *req)
{
    if (!req->body_read && expects_continue(req) && req->ri->content_length != 0)
        mg_write(req->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

void services_send_xml(struct http_req *req, int status, struct sbuf *body, const char *extra_headers)
{
    if (body->oom) {
        services_send_query_error(req, 500, "InternalFailure", "out of memory");
        return;
    }
    http_send(req, status, "text/xml", extra_headers, body->p ? body->p : "", body->len);
}

static void send_query_error_v(struct http_req *req, int status, const char *code, const char *fmt,
                               va_list ap)
{
    char msg[2048], hdr[160];
    struct sbuf b = {0};
    vsnprintf(msg, sizeof(msg), fmt, ap);
    sbuf_printf(&b, "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
                    "<Error><Type>%s</Type>",
                status >= 500 ? "Receiver" : "Sender");
    sbuf_xml_elem(&b, "Code", code);
    sbuf_xml_elem(&b, "Message", msg);
    sbuf_puts(&b, "</Error>");
    sbuf_xml_elem(&b, "RequestId", req->request_id);
    sbuf_puts(&b, "</ErrorResponse>");
    snprintf(hdr, sizeof(hdr), "x-amzn-ErrorType: %s\r\n", code);
    if (b.oom)
        http_send(req, 500, "text/xml", hdr, "", 0);
    else
        http_send(req, status, "text/xml", hdr, b.p, b.len);
    sbuf_free(&b);
}

void services_send_query_error(struct http_req *req, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_query_error_v(req, status, code, fmt, ap);
    va_end(ap);
}

void services_send_json_error(struct http_req *req, int status, const char *code, const char *fmt, ...)
{
    char msg[2048], hdr[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s?}", "__type", code, "message", msg);
    if (o && !json_object_get(o, "message"))
        json_object_set_new(o, "message", json_string("(message was not valid UTF-8)"));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    snprintf(hdr, sizeof(hdr), "x-amzn-ErrorType: %s\r\n", code);
    http_send(req, status, "application/x-amz-json-1.1", hdr, text ? text : "{}", text ? strlen(text) : 2);
    free(text);
}

void services_send_s3_error(struct http_req *req, int status, const char *code, const char *extra_xml,
                            const char *fmt, ...)
{
    char msg[2048], hdr[256];
    struct sbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sbuf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
    sbuf_xml_elem(&b, "Code", code);
    sbuf_xml_elem(&b, "Message", msg);
    if (extra_xml)
        sbuf_puts(&b, extra_xml);
    sbuf_xml_elem(&b, "RequestId", req->request_id);
    sbuf_puts(&b, "</Error>");
    snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\nx-amzn-ErrorType: %s\r\n%s", req->request_id, code,
             services_body_unread(req));
    bool head = !strcmp(req->method, "HEAD");
    if (b.oom || head)
        http_send(req, status, b.oom ? NULL : "application/xml", hdr, "", 0);
    else
        http_send(req, status, "application/xml", hdr, b.p, b.len);
    sbuf_free(&b);
}

/* --- routing -------------------------------------------------------------- */

int services_scope_service(const char *cred, char *out, size_t outlen)
{
    /* AKID/DATE/REGION/SERVICE/aws4_request: the fourth '/'-separated field. */
    const char *p = cred;
    for (int i = 0; i < 3; i++) {
        p = strchr(p, '/');
        if (!p)
            return -1;
        p++;
    }
    size_t n = strcspn(p, "/,; ");
    if (n == 0 || n >= outlen || p[n] != '/')
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
    out[n] = 0;
    return (int)n;
}

/* The decoded X-Amz-Credential of a presigned URL into buf, or NULL. */
static const char *presigned_credential(const struct http_req *req, char *buf, size_t len)
{
    return http_query(req, "X-Amz-Credential", buf, len) > 0 ? buf : NULL;
}

int services_access_key(const struct http_req *req, char *out, size_t outlen)
{
    char qbuf[512];
    const char *auth = http_header(req, "Authorization");
    const char *akid = NULL;
    size_t n = 0;
    if (auth && (akid = strstr(auth, "Credential=")) != NULL) {
        akid += 11;
        n = strcspn(akid, "/, ");
    } else if (auth && !strncmp(auth, "AWS ", 4)) {
        akid = auth + 4;
        n = strcspn(akid, ":");
    } else if ((akid = presigned_credential(req, qbuf, sizeof(qbuf))) != NULL) {
        n = strcspn(akid, "/");
    } else if (http_query(req, "AWSAccessKeyId", qbuf, sizeof(qbuf)) > 0) {
        akid = qbuf;
        n = strlen(qbuf);
    }
    if (!akid || n == 0 || n >= outlen)
        return -1;
    memcpy(out, akid, n);
    out[n] = 0;
    return (int)n;
}

static const struct service *by_name(const char *name)
{
    for (size_t i = 0; i < N_SERVICES; i++)
        if (!strcmp(g_services[i].name, name))
            return &g_services[i];
    return NULL;
}

/* Whether Host names S3: virtual-host style (svc_s3.h) or an "s3." host. */
static bool host_is_s3(const char *host)
{
    char bucket[256];
    return host && (!strncasecmp(host, "s3.", 3) || s3_host_bucket(host, bucket, sizeof(bucket)));
}

const struct service *services_match(const struct http_req *req, char *unknown, size_t unknown_len)
{
    char svc[64], qbuf[512];
    unknown[0] = 0;
    const char *auth = http_header(req, "Authorization");
    const char *cred = auth ? strstr(auth, "Credential=") : NULL;
    if (!cred)
        cred = presigned_credential(req, qbuf, sizeof(qbuf));
    else
        cred += 11;
    if (cred && services_scope_service(cred, svc, sizeof(svc)) > 0) {
        if (!strcmp(svc, "lambda"))
            return NULL;
        const struct service *s = by_name(svc);
        if (!s)
            snprintf(unknown, unknown_len, "%s", svc);
        return s;
    }
    const char *target = http_header(req, "X-Amz-Target");
    if (target && *target) {
        size_t n = strcspn(target, ".");
        for (size_t i = 0; i < N_SERVICES; i++)
            if (g_services[i].target && strlen(g_services[i].target) == n &&
                !strncmp(g_services[i].target, target, n))
                return &g_services[i];
        snprintf(unknown, unknown_len, "%.*s", (int)(n < 60 ? n : 60), target);
        return NULL;
    }
    if ((auth && !strncmp(auth, "AWS ", 4)) || http_query(req, "AWSAccessKeyId", qbuf, sizeof(qbuf)) > 0 ||
        host_is_s3(http_header(req, "Host")))
        return by_name("s3");
    return NULL;
}

/* The operation name for messages: Action= of a query request (query string
 * or form body), the X-Amz-Target suffix, else method + path. */
static void op_name(struct http_req *req, char *out, size_t len)
{
    const char *target = http_header(req, "X-Amz-Target");
    const char *dot = target ? strchr(target, '.') : NULL;
    if (dot) {
        snprintf(out, len, "%s", dot + 1);
        return;
    }
    if (http_query(req, "Action", out, len) > 0)
        return;
    const char *ct = http_header(req, "Content-Type");
    if (ct && strcasestr(ct, "x-www-form-urlencoded") && http_read_body(req) == 0) {
        const char *p = req->body;
        while (p && *p) {
            size_t plen = strcspn(p, "&");
            if (plen > 7 && !memcmp(p, "Action=", 7) &&
                http_pct_decode(p + 7, plen - 7, out, len, true) >= 0)
                return;
            p += plen + (p[plen] == '&');
        }
    }
    snprintf(out, len, "%s %s", req->method, req->ri && req->ri->local_uri_raw ? req->ri->local_uri_raw : "/");
}

static bool is_json_request(const struct http_req *req)
{
    const char *ct = http_header(req, "Content-Type");
    return http_header(req, "X-Amz-Target") || (ct && strcasestr(ct, "application/x-amz-json"));
}

/* The answer for a service (or operation) lambdad does not serve. */
static void not_implemented(struct http_req *req, const struct service *s, const char *name)
{
    char op[256];
    op_name(req, op, sizeof(op));
    if (req->status)
        return; /* reading the body failed and was answered */
    enum service_protocol p = s ? s->proto : is_json_request(req) ? SERVICE_JSON : SERVICE_QUERY;
    switch (p) {
    case SERVICE_JSON:
        services_send_json_error(req, 400, "UnknownOperationException",
                                 "Operation %s is not supported by lambdad's %s service", op, name);
        break;
    case SERVICE_REST_XML:
        services_send_s3_error(req, 501, "NotImplemented", NULL,
                               "A header you provided implies functionality that is not implemented "
                               "(lambdad's S3 does not serve %s)", op);
        break;
    case SERVICE_QUERY:
        if (s)
            services_send_query_error(req, 400, "InvalidAction",
                                      "The action %s is not valid for this web service.", op);
        else
            services_send_query_error(req, 501, "NotImplemented",
                                      "lambdad does not implement the %s service (operation %s)", name, op);
        break;
    }
}

bool services_dispatch(struct http_req *req)
{
    char unknown[64], akid[128];
    /* Temporary credentials from STS belong to the account they were issued for. */
    if (services_access_key(req, akid, sizeof(akid)) == 20 && !strncmp(akid, "ASIA", 4))
        sts_session_account(akid, req->account);
    const struct service *s = services_match(req, unknown, sizeof(unknown));
    if (!s && !unknown[0])
        return false;
    if (s) {
        req->op = s->name;
        req->body_cap = s->body_cap;
    }
    if (s && s->handler)
        s->handler(req);
    else
        not_implemented(req, s, s ? s->name : unknown);
    if (!req->status)
        services_send_query_error(req, 500, "InternalFailure", "the %s handler sent no response",
                                  s ? s->name : unknown);
    return true;
}
