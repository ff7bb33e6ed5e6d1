/* svc_s3: S3 REST-XML handlers (see svc_s3.h). */
#include "server/svc_s3.h"

#include <civetweb.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "runtime/log.h"
#include "server/s3parse.h"
#include "server/s3store.h"
#include "server/services.h"

#define S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define KEY_MAX 1024
#define XML_BODY_CAP (4u << 20)

struct s3req {
    struct http_req *req;
    char bucket[256];
    char *key; /* decoded, malloc'd; NULL for bucket/service operations */
};

/* --- small helpers ------------------------------------------------------------- */

static void http_date(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void iso_date(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03dZ", (int)(ms % 1000));
}

static bool has_query(const struct http_req *req, const char *name)
{
    char buf[8];
    int n = http_query(req, name, buf, sizeof(buf));
    return n >= 0 || n == -2;
}

/* Error helpers: S3's XML error plus the element extra. */
#define S3ERR(r, st, code, extra, ...) services_send_s3_error((r)->req, st, code, extra, __VA_ARGS__)

static void err_no_bucket(struct s3req *r)
{
    struct sbuf x = {0};
    sbuf_xml_elem(&x, "BucketName", r->bucket);
    S3ERR(r, 404, "NoSuchBucket", x.p, "The specified bucket does not exist");
    sbuf_free(&x);
}

static void err_no_key(struct s3req *r)
{
    struct sbuf x = {0};
    sbuf_xml_elem(&x, "Key", r->key);
    S3ERR(r, 404, "NoSuchKey", x.p, "The specified key does not exist.");
    sbuf_free(&x);
}

static void err_internal(struct s3req *r, const char *what)
{
    S3ERR(r, 500, "InternalError", NULL, "We encountered an internal error. Please try again. (%s)", what);
}

static void err_status(struct s3req *r, int rc, const char *vid)
{
    struct sbuf x = {0};
    switch (rc) {
    case S3_ENOBUCKET:
        err_no_bucket(r);
        break;
    case S3_ENOKEY:
        err_no_key(r);
        break;
    case S3_ENOVERSION:
        sbuf_xml_elem(&x, "Key", r->key);
        sbuf_xml_elem(&x, "VersionId", vid);
        S3ERR(r, vid && !strcmp(vid, "null") ? 404 : 404, "NoSuchVersion", x.p, "The specified version does not exist.");
        break;
    case S3_ENOUPLOAD:
        S3ERR(r, 404, "NoSuchUpload", NULL,
              "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
              "aborted or completed.");
        break;
    case S3_ENOMEM:
        err_internal(r, "out of memory");
        break;
    default:
        err_internal(r, "storage failure");
        break;
    }
    sbuf_free(&x);
}

/* http_send with S3's request-id headers in front of extra. */
static void s3_send(struct s3req *r, int status, const char *ctype, const char *extra, const void *body, size_t len)
{
    struct sbuf h = {0};
    sbuf_printf(&h, "x-amz-request-id: %s\r\nx-amz-id-2: %s\r\n%s", r->req->request_id, r->req->request_id,
                services_body_unread(r->req));
    if (extra)
        sbuf_puts(&h, extra);
    http_send(r->req, status, ctype, h.p, body, len);
    sbuf_free(&h);
}

static void s3_send_xml(struct s3req *r, struct sbuf *b, const char *extra)
{
    if (b->oom) {
        err_internal(r, "out of memory");
        return;
    }
    s3_send(r, 200, "application/xml", extra, b->p, b->len);
}

/* Percent-encodes for encoding-type=url listings (botocore unquotes them). */
static void sbuf_urlenc_key(struct sbuf *b, const char *s)
{
    static const char hx[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            sbuf_append(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hx[c >> 4], hx[c & 15]};
            sbuf_append(b, e, 3);
        }
    }
}

static void elem_key(struct sbuf *b, const char *tag, const char *v, bool url)
{
    if (!url) {
        sbuf_xml_elem(b, tag, v);
        return;
    }
    struct sbuf t = {0};
    sbuf_urlenc_key(&t, v);
    sbuf_xml_elem(b, tag, t.p ? t.p : "");
    sbuf_free(&t);
}

/* --- addressing --------------------------------------------------------------- */

bool s3_host_bucket(const char *host, char *out, size_t outlen)
{
    char h[300];
    if (!host || host[0] == '[')
        return false;
    size_t n = strcspn(host, ":");
    if (n == 0 || n >= sizeof(h))
        return false;
    memcpy(h, host, n);
    h[n] = 0;
    for (size_t i = 0; i < n; i++)
        h[i] = (char)tolower((unsigned char)h[i]);
    char *end = NULL;
    if (n > 10 && !strcmp(h + n - 10, ".localhost")) {
        end = h + n - 10;
        if (end - h > 3 && !strncmp(end - 3, ".s3", 3))
            end -= 3;
        *end = 0;
        if (!strcmp(h, "s3"))
            return false;
    } else {
        /* the last ".s3." or ".s3-" label: bucket.s3.amazonaws.com,
         * bucket.s3.us-east-1.amazonaws.com, bucket.s3-website-... */
        for (char *p = h; (p = strstr(p, ".s3")) != NULL; p++)
            if (p[3] == '.' || p[3] == '-')
                end = p;
        if (!end)
            return false;
        *end = 0;
    }
    if (!h[0] || strlen(h) >= outlen)
        return false;
    snprintf(out, outlen, "%s", h);
    return true;
}

/* Fills r->bucket / r->key from Host and path. Returns 0 or answers. */
static int parse_target(struct s3req *r)
{
    const struct mg_request_info *ri = r->req->ri;
    const char *path = ri->local_uri_raw ? ri->local_uri_raw : ri->request_uri;
    if (!path || path[0] != '/')
        path = "/";
    size_t plen = strlen(path);
    char *dec = malloc(plen + 1);
    if (!dec) {
        err_internal(r, "out of memory");
        return -1;
    }
    const char *keyraw = NULL;
    if (s3_host_bucket(http_header(r->req, "Host"), r->bucket, sizeof(r->bucket))) {
        keyraw = path + 1;
    } else {
        const char *seg = path + 1;
        size_t sl = strcspn(seg, "/");
        if (sl && (http_pct_decode(seg, sl, r->bucket, sizeof(r->bucket), false) < 0)) {
            free(dec);
            S3ERR(r, 400, "InvalidBucketName", NULL, "The specified bucket is not valid.");
            return -1;
        }
        keyraw = seg[sl] == '/' ? seg + sl + 1 : seg + sl;
    }
    if (*keyraw) {
        int n = http_pct_decode(keyraw, strlen(keyraw), dec, plen + 1, false);
        if (n < 0 || (size_t)n != strlen(dec)) {
            free(dec);
            S3ERR(r, 400, "InvalidURI", NULL, "Couldn't parse the specified URI.");
            return -1;
        }
        if (n > KEY_MAX) {
            free(dec);
            S3ERR(r, 400, "KeyTooLongError", NULL, "Your key is too long");
            return -1;
        }
        r->key = dec;
    } else {
        free(dec);
    }
    return 0;
}

/* --- headers kept with an object -------------------------------------------------- */

static const char *const g_kept[] = {"Content-Type", "Content-Encoding", "Content-Disposition",
                                     "Content-Language", "Cache-Control", "Expires",
                                     "x-amz-website-redirect-location", "x-amz-storage-class",
                                     "x-amz-tagging", NULL};

/* The object's stored headers: the standard ones above plus x-amz-meta-*
 * (names lower-cased, as S3 returns them). */
static json_t *object_headers(struct http_req *req)
{
    json_t *h = json_object();
    const struct mg_request_info *ri = req->ri;
    for (int i = 0; g_kept[i]; i++) {
        const char *v = http_header(req, g_kept[i]);
        if (v && (strcmp(g_kept[i], "Content-Encoding") || strcasecmp(v, "aws-chunked"))) {
            if (!strcmp(g_kept[i], "Content-Encoding")) {
                /* "aws-chunked,gzip" keeps gzip */
                char buf[256];
                snprintf(buf, sizeof(buf), "%s", v);
                char *ac = strcasestr(buf, "aws-chunked");
                if (ac) {
                    memmove(ac, ac + 11, strlen(ac + 11) + 1);
                    char *s = buf;
                    while (*s == ',' || *s == ' ')
                        s++;
                    size_t l = strlen(s);
                    while (l && (s[l - 1] == ',' || s[l - 1] == ' '))
                        s[--l] = 0;
                    if (*s)
                        json_object_set_new(h, g_kept[i], json_string(s));
                    continue;
                }
            }
            json_object_set_new(h, g_kept[i], json_string(v));
        }
    }
    if (!json_object_get(h, "Content-Type"))
        json_object_set_new(h, "Content-Type", json_string("binary/octet-stream"));
    for (int i = 0; i < ri->num_headers; i++) {
        const char *n = ri->http_headers[i].name;
        if (!strncasecmp(n, "x-amz-meta-", 11)) {
            char lname[256];
            size_t l = strlen(n);
            if (l >= sizeof(lname))
                continue;
            for (size_t k = 0; k <= l; k++)
                lname[k] = (char)tolower((unsigned char)n[k]);
            json_t *s = json_string(ri->http_headers[i].value ? ri->http_headers[i].value : "");
            if (s)
                json_object_set_new(h, lname, s);
        }
    }
    return h;
}

/* Appends the stored headers as response header lines. Values never hold
 * CR/LF: civetweb splits header lines on them. */
static void headers_out(struct sbuf *b, json_t *h, struct http_req *req)
{
    static const char *const overrides[][2] = {{"response-content-type", "Content-Type"},
                                               {"response-content-language", "Content-Language"},
                                               {"response-expires", "Expires"},
                                               {"response-cache-control", "Cache-Control"},
                                               {"response-content-disposition", "Content-Disposition"},
                                               {"response-content-encoding", "Content-Encoding"}};
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v) {
        bool overridden = false;
        for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++)
            if (!strcmp(k, overrides[i][1]) && has_query(req, overrides[i][0]))
                overridden = true;
        if (!overridden && strcmp(k, "x-amz-tagging"))
            sbuf_printf(b, "%s: %s\r\n", k, json_string_value(v));
    }
    for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++) {
        char val[1024];
        int n = http_query(req, overrides[i][0], val, sizeof(val));
        if (n >= 0 && !strpbrk(val, "\r\n"))
            sbuf_printf(b, "%s: %s\r\n", overrides[i][1], val);
    }
}

/* --- receiving object data ---------------------------------------------------------- */

struct recv_ctx {
    struct s3_blob *blob;
    struct s3_cksum ck;
    uint64_t max;
    int err; /* -EFBIG, -EIO */
};

static int recv_out(void *ud, const char *data, size_t len)
{
    struct recv_ctx *c = ud;
    if (c->blob->size + len > c->max) {
        c->err = -EFBIG;
        return -3;
    }
    s3_cksum_update(&c->ck, data, len);
    if (s3store_blob_write(c->blob, data, len)) {
        c->err = -EIO;
        return -3;
    }
    return 0;
}

static void err_too_large(struct s3req *r, uint64_t proposed, uint64_t max)
{
    char x[160];
    snprintf(x, sizeof(x), "<ProposedSize>%" PRIu64 "</ProposedSize><MaxSizeAllowed>%" PRIu64 "</MaxSizeAllowed>",
             proposed, max);
    S3ERR(r, 400, "EntityTooLarge", x, "Your proposed upload exceeds the maximum allowed size");
    mg_disable_keep_alive(r->req->conn); /* the rest of the body is not read */
}

static bool expects_continue(const struct http_req *req)
{
    const char *e = http_header(req, "Expect");
    return e && !strcasecmp(e, "100-continue");
}

/* Streams the request body into a new blob and seals it. Handles
 * aws-chunked, Content-MD5 and x-amz-checksum-* (header or trailer).
 * cksum_hdr receives "x-amz-checksum-<alg>: <value>\r\n" to echo, or "".
 * Returns 0, or -1 after answering (blob freed). */
static int receive_body(struct s3req *r, struct s3_blob *blob, uint64_t max, char cksum_hdr[160])
{
    struct http_req *req = r->req;
    const char *ce = http_header(req, "Content-Encoding");
    const char *sha_hdr = http_header(req, "x-amz-content-sha256");
    bool chunked = (ce && strcasestr(ce, "aws-chunked")) || (sha_hdr && !strncmp(sha_hdr, "STREAMING-", 10));
    long long cl = req->ri->content_length;
    long long declared = cl;
    cksum_hdr[0] = 0;
    /* From here the body is this function's: streamed, or refused with the
     * connection closed (never drained into the next request). */
    bool expect = expects_continue(req);
    req->body_read = true;
    if (chunked) {
        const char *d = http_header(req, "x-amz-decoded-content-length");
        char *end;
        declared = d ? strtoll(d, &end, 10) : -1;
        if (!d || !*d || *end || declared < 0) {
            S3ERR(r, 411, "MissingContentLength", NULL, "You must provide the Content-Length HTTP header.");
            mg_disable_keep_alive(req->conn);
            return -1;
        }
    }
    if (declared > (long long)max) {
        err_too_large(r, (uint64_t)declared, max);
        return -1;
    }
    /* The checksum the client announces: a header now, or (trailer) later. */
    enum s3_cksum_alg alg = S3_CK_NONE;
    const char *ck_value = NULL;
    const char *trailer = http_header(req, "x-amz-trailer");
    const struct mg_request_info *ri = req->ri;
    for (int i = 0; i < ri->num_headers && alg == S3_CK_NONE; i++) {
        enum s3_cksum_alg a = s3_cksum_alg_of(ri->http_headers[i].name);
        if (a != S3_CK_NONE) {
            alg = a;
            ck_value = ri->http_headers[i].value;
        }
    }
    if (alg == S3_CK_NONE && trailer)
        alg = s3_cksum_alg_of(trailer);
    const char *md5_b64 = http_header(req, "Content-MD5");
    unsigned char md5_want[16];
    if (md5_b64) {
        unsigned char *raw = NULL;
        size_t rl = 0;
        if (http_base64_decode(md5_b64, strlen(md5_b64), &raw, &rl) || rl != 16) {
            free(raw);
            S3ERR(r, 400, "InvalidDigest", NULL, "The Content-MD5 you specified is not valid.");
            mg_disable_keep_alive(req->conn);
            return -1;
        }
        memcpy(md5_want, raw, 16);
        free(raw);
    }
    struct recv_ctx c = {.blob = blob, .max = max};
    if (s3store_blob_begin(blob) || s3_cksum_init(&c.ck, alg)) {
        s3store_blob_free(blob);
        err_internal(r, "cannot create a temporary file");
        mg_disable_keep_alive(req->conn);
        return -1;
    }
    if (expect)
        mg_write(req->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    struct awschunk *ac = chunked ? malloc(sizeof(*ac)) : NULL;
    char *buf = malloc(1 << 16);
    int rc = 0;
    if (!buf || (chunked && !ac)) {
        rc = -ENOMEM;
        goto done;
    }
    if (ac)
        awschunk_init(ac);
    long long got = 0;
    for (;;) {
        if (cl >= 0 && got == cl)
            break;
        size_t want = 1 << 16;
        if (cl >= 0 && (unsigned long long)(cl - got) < want)
            want = (size_t)(cl - got);
        int n = mg_read(req->conn, buf, want);
        if (n < 0 || (n == 0 && cl >= 0)) {
            rc = -EPIPE;
            break;
        }
        if (n == 0)
            break;
        got += n;
        int fr = ac ? awschunk_feed(ac, buf, (size_t)n, recv_out, &c) : recv_out(&c, buf, (size_t)n);
        if (fr) {
            rc = c.err ? c.err : -EPROTO;
            break;
        }
    }
done:
    free(buf);
    char computed[64] = "";
    if (alg != S3_CK_NONE)
        s3_cksum_final(&c.ck, computed);
    else
        s3_cksum_free(&c.ck);
    if (!rc && ac && !awschunk_done(ac))
        rc = -EPROTO;
    char trailer_value[sizeof(ac->checksum_value)];
    if (!rc && ac && ac->checksum_name[0]) {
        /* copied: ac is freed before the comparison */
        snprintf(trailer_value, sizeof(trailer_value), "%s", ac->checksum_value);
        ck_value = trailer_value;
    }
    if (!rc && chunked && blob->size != (uint64_t)declared)
        rc = -ENODATA;
    if (!rc && !chunked && cl >= 0 && blob->size != (uint64_t)cl)
        rc = -ENODATA;
    if (!rc && s3store_blob_seal(blob))
        rc = -EIO;
    if (rc) {
        mg_disable_keep_alive(req->conn);
        if (rc == -EFBIG)
            err_too_large(r, blob->size, max);
        else if (rc == -EPROTO)
            S3ERR(r, 400, "IncompleteBody", NULL, "The request body's aws-chunked encoding is malformed (%s).",
                  ac && ac->error ? ac->error : "truncated");
        else if (rc == -ENODATA || rc == -EPIPE)
            S3ERR(r, 400, "IncompleteBody", NULL,
                  "You did not provide the number of bytes specified by the Content-Length HTTP header");
        else
            err_internal(r, rc == -ENOMEM ? "out of memory" : "cannot store the data");
        free(ac);
        s3store_blob_free(blob);
        return -1;
    }
    free(ac);
    if (md5_b64 && memcmp(md5_want, blob->md5_raw, 16)) {
        S3ERR(r, 400, "BadDigest", NULL, "The Content-MD5 you specified did not match what we received.");
        s3store_blob_free(blob);
        return -1;
    }
    if (alg != S3_CK_NONE && ck_value) {
        static const char *const upper[] = {"", "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"};
        if (strcmp(ck_value, computed)) {
            S3ERR(r, 400, "BadDigest", NULL, "The %s you specified did not match the calculated checksum.",
                  upper[alg]);
            s3store_blob_free(blob);
            return -1;
        }
        snprintf(cksum_hdr, 160, "x-amz-checksum-%s: %s\r\n", s3_cksum_name(alg), computed);
    }
    return 0;
}

/* A small XML body (capped), NUL-terminated in req->body; 0 or answered. */
static int read_xml_body(struct s3req *r)
{
    r->req->body_cap = XML_BODY_CAP;
    services_continue(r->req);
    return http_read_body(r->req) ? -1 : 0;
}

static void err_malformed_xml(struct s3req *r)
{
    S3ERR(r, 400, "MalformedXML", NULL,
          "The XML you provided was not well-formed or did not validate against our published schema");
}

/* --- buckets --------------------------------------------------------------------- */

static void list_buckets(struct s3req *r)
{
    struct s3_bucket_info *bs = NULL;
    size_t n = 0;
    if (s3store_list_buckets(r->req->account, &bs, &n)) {
        err_internal(r, "out of memory");
        return;
    }
    struct sbuf b = {0};
    sbuf_printf(&b, XML_DECL "<ListAllMyBucketsResult xmlns=\"" S3_NS "\"><Owner><ID>%s</ID>"
                "<DisplayName>lambdad</DisplayName></Owner><Buckets>", r->req->account);
    for (size_t i = 0; i < n; i++) {
        char d[40];
        iso_date(bs[i].created_ms, d);
        sbuf_puts(&b, "<Bucket>");
        sbuf_xml_elem(&b, "Name", bs[i].name);
        sbuf_xml_elem(&b, "CreationDate", d);
        sbuf_xml_elem(&b, "BucketRegion", bs[i].region);
        sbuf_puts(&b, "</Bucket>");
    }
    sbuf_puts(&b, "</Buckets></ListAllMyBucketsResult>");
    s3_send_xml(r, &b, NULL);
    sbuf_free(&b);
    free(bs);
}

struct loc_ctx {
    char constraint[64];
    bool seen;
};

static int loc_cb(void *ud, int item, const char *name, const char *text)
{
    struct loc_ctx *c = ud;
    if (item == -1 && name && !strcmp(name, "LocationConstraint")) {
        snprintf(c->constraint, sizeof(c->constraint), "%s", text);
        c->seen = true;
    }
    return 0;
}

static void create_bucket(struct s3req *r)
{
    struct loc_ctx lc = {"", false};
    if (!s3_bucket_name_valid(r->bucket)) {
        struct sbuf x = {0};
        sbuf_xml_elem(&x, "BucketName", r->bucket);
        S3ERR(r, 400, "InvalidBucketName", x.p, "The specified bucket is not valid.");
        sbuf_free(&x);
        return;
    }
    if (read_xml_body(r))
        return;
    if (r->req->body_len && s3_xml_parse(r->req->body, r->req->body_len, "CreateBucketConfiguration", NULL, 0,
                                         loc_cb, &lc)) {
        err_malformed_xml(r);
        return;
    }
    const char *region = r->req->region;
    if (lc.seen && lc.constraint[0]) {
        if (!strcmp(lc.constraint, "us-east-1") && !strcmp(region, "us-east-1")) {
            struct sbuf x = {0};
            sbuf_xml_elem(&x, "LocationConstraint", lc.constraint);
            S3ERR(r, 400, "InvalidLocationConstraint", x.p, "The specified location-constraint is not valid");
            sbuf_free(&x);
            return;
        }
        if (strcmp(lc.constraint, region)) {
            S3ERR(r, 400, "IllegalLocationConstraintException", NULL,
                  "The %s location constraint is incompatible for the region specific endpoint this request was "
                  "sent to.", lc.constraint);
            return;
        }
    } else if (strcmp(region, "us-east-1")) {
        S3ERR(r, 400, "IllegalLocationConstraintException", NULL,
              "The unspecified location constraint is incompatible for the region specific endpoint this request "
              "was sent to.");
        return;
    }
    int rc = s3store_create_bucket(r->bucket, r->req->account, region);
    if (rc == S3_EOWNED && !strcmp(region, "us-east-1"))
        rc = S3_OK; /* legacy us-east-1 behaviour: 200 for the owner */
    struct sbuf x = {0};
    sbuf_xml_elem(&x, "BucketName", r->bucket);
    if (rc == S3_EEXISTS)
        S3ERR(r, 409, "BucketAlreadyExists", x.p,
              "The requested bucket name is not available. The bucket namespace is shared by all users of the "
              "system. Please select a different name and try again.");
    else if (rc == S3_EOWNED)
        S3ERR(r, 409, "BucketAlreadyOwnedByYou", x.p,
              "Your previous request to create the named bucket succeeded and you already own it.");
    else if (rc)
        err_status(r, rc, NULL);
    else {
        char loc[300];
        snprintf(loc, sizeof(loc), "Location: /%s\r\n", r->bucket);
        s3_send(r, 200, NULL, loc, "", 0);
    }
    sbuf_free(&x);
}

static void head_bucket(struct s3req *r)
{
    struct s3_bucket_info bi;
    if (s3store_bucket(r->bucket, &bi)) {
        s3_send(r, 404, NULL, NULL, "", 0);
        return;
    }
    char h[128];
    snprintf(h, sizeof(h), "x-amz-bucket-region: %s\r\n", bi.region);
    s3_send(r, 200, NULL, h, "", 0);
}

static void delete_bucket(struct s3req *r)
{
    int rc = s3store_delete_bucket(r->bucket);
    if (rc == S3_ENOTEMPTY) {
        struct sbuf x = {0};
        sbuf_xml_elem(&x, "BucketName", r->bucket);
        S3ERR(r, 409, "BucketNotEmpty", x.p, "The bucket you tried to delete is not empty");
        sbuf_free(&x);
    } else if (rc) {
        err_status(r, rc, NULL);
    } else {
        s3_send(r, 204, NULL, NULL, "", 0);
    }
}

static void get_location(struct s3req *r)
{
    struct s3_bucket_info bi;
    if (s3store_bucket(r->bucket, &bi)) {
        err_no_bucket(r);
        return;
    }
    struct sbuf b = {0};
    sbuf_puts(&b, XML_DECL "<LocationConstraint xmlns=\"" S3_NS "\">");
    if (strcmp(bi.region, "us-east-1"))
        sbuf_xml(&b, bi.region, strlen(bi.region));
    sbuf_puts(&b, "</LocationConstraint>");
    s3_send_xml(r, &b, NULL);
    sbuf_free(&b);
}

struct vers_ctx {
    char status[32];
    bool seen;
};

static int vers_cb(void *ud, int item, const char *name, const char *text)
{
    struct vers_ctx *c = ud;
    if (item == -1 && name && !strcmp(name, "Status")) {
        snprintf(c->status, sizeof(c->status), "%s", text);
        c->seen = true;
    }
    return 0;
}

static void put_versioning(struct s3req *r)
{
    struct vers_ctx vc = {"", false};
    if (read_xml_body(r))
        return;
    if (s3_xml_parse(r->req->body, r->req->body_len, "VersioningConfiguration", NULL, 0, vers_cb, &vc) ||
        (vc.seen && strcmp(vc.status, "Enabled") && strcmp(vc.status, "Suspended"))) {
        err_malformed_xml(r);
        return;
    }
    struct s3_bucket_info bi;
    if (s3store_bucket(r->bucket, &bi)) {
        err_no_bucket(r);
        return;
    }
    if (!vc.seen) { /* no Status: nothing changes */
        s3_send(r, 200, NULL, NULL, "", 0);
        return;
    }
    int rc = s3store_set_versioning(r->bucket, !strcmp(vc.status, "Enabled") ? S3_VERSIONING_ENABLED
                                                                             : S3_VERSIONING_SUSPENDED);
    if (rc)
        err_status(r, rc, NULL);
    else
        s3_send(r, 200, NULL, NULL, "", 0);
}

static void get_versioning(struct s3req *r)
{
    struct s3_bucket_info bi;
    if (s3store_bucket(r->bucket, &bi)) {
        err_no_bucket(r);
        return;
    }
    struct sbuf b = {0};
    sbuf_puts(&b, XML_DECL "<VersioningConfiguration xmlns=\"" S3_NS "\">");
    if (bi.versioning != S3_VERSIONING_OFF)
        sbuf_printf(&b, "<Status>%s</Status>", bi.versioning == S3_VERSIONING_ENABLED ? "Enabled" : "Suspended");
    sbuf_puts(&b, "</VersioningConfiguration>");
    s3_send_xml(r, &b, NULL);
    sbuf_free(&b);
}

/* --- listing -------------------------------------------------------------------------- */

struct list_ctx {
    struct sbuf *b;
    const char *prefix, *delim;
    size_t plen, dlen;
    long max;
    long count;
    bool url, versions, v2, truncated, fetch_owner;
    const char *account;
    char *last;        /* last key or common prefix emitted (malloc'd) */
    char *last_cp;     /* last common prefix emitted, to skip its keys */
    char *next_vid;    /* versions: version-id marker of the next entry */
    const char *skip_vid; /* versions: resume after this version of the first key */
    const char *skip_key;
};

static void set_str(char **dst, const char *s, size_t n)
{
    free(*dst);
    *dst = strndup(s, n);
}

static int list_cb(void *ud, const char *key, const struct s3_version *v)
{
    struct list_ctx *c = ud;
    if (c->skip_key) {
        /* ListObjectVersions resume: skip versions up to and including the marker */
        if (!strcmp(key, c->skip_key)) {
            if (c->skip_vid && *c->skip_vid) {
                if (!strcmp(v->vid, c->skip_vid))
                    c->skip_vid = NULL, c->skip_key = NULL;
                return 0;
            }
            return 0;
        }
        c->skip_key = NULL;
    }
    if (c->last_cp && !strncmp(key, c->last_cp, strlen(c->last_cp)))
        return 0;
    const char *rest = key + c->plen;
    const char *d = c->dlen ? strstr(rest, c->delim) : NULL;
    if (c->count == c->max) {
        c->truncated = true;
        return 1;
    }
    if (d) {
        size_t cpl = (size_t)(d - key) + c->dlen;
        set_str(&c->last_cp, key, cpl);
        set_str(&c->last, key, cpl);
        sbuf_puts(c->b, "<CommonPrefixes>");
        elem_key(c->b, "Prefix", c->last_cp, c->url);
        sbuf_puts(c->b, "</CommonPrefixes>");
        c->count++;
        return 0;
    }
    char d8[40];
    iso_date(v->mtime_ms, d8);
    set_str(&c->last, key, strlen(key));
    if (c->versions) {
        set_str(&c->next_vid, v->vid, strlen(v->vid));
        sbuf_puts(c->b, v->delete_marker ? "<DeleteMarker>" : "<Version>");
        elem_key(c->b, "Key", key, c->url);
        sbuf_xml_elem(c->b, "VersionId", v->vid);
        sbuf_printf(c->b, "<IsLatest>%s</IsLatest>", v->latest ? "true" : "false");
        sbuf_xml_elem(c->b, "LastModified", d8);
        if (!v->delete_marker)
            sbuf_printf(c->b, "<ETag>&quot;%s&quot;</ETag><Size>%" PRIu64 "</Size><StorageClass>STANDARD</StorageClass>",
                        v->etag, v->size);
        sbuf_printf(c->b, "<Owner><ID>%s</ID><DisplayName>lambdad</DisplayName></Owner>", c->account);
        sbuf_puts(c->b, v->delete_marker ? "</DeleteMarker>" : "</Version>");
    } else {
        sbuf_puts(c->b, "<Contents>");
        elem_key(c->b, "Key", key, c->url);
        sbuf_xml_elem(c->b, "LastModified", d8);
        sbuf_printf(c->b, "<ETag>&quot;%s&quot;</ETag><Size>%" PRIu64 "</Size>", v->etag, v->size);
        if (c->fetch_owner)
            sbuf_printf(c->b, "<Owner><ID>%s</ID><DisplayName>lambdad</DisplayName></Owner>", c->account);
        sbuf_puts(c->b, "<StorageClass>STANDARD</StorageClass></Contents>");
    }
    c->count++;
    return 0;
}

static int get_param(struct s3req *r, const char *name, char *buf, size_t len, bool *present)
{
    int n = http_query(r->req, name, buf, len);
    *present = n >= 0;
    if (n == -2) {
        struct sbuf x = {0};
        sbuf_xml_elem(&x, "ArgumentName", name);
        S3ERR(r, 400, "InvalidArgument", x.p, "The %s parameter is too long or badly encoded.", name);
        sbuf_free(&x);
        return -1;
    }
    if (n < 0)
        buf[0] = 0;
    return 0;
}

/* ListObjects (v1), ListObjectsV2 and ListObjectVersions. */
static void list_objects(struct s3req *r, int kind /* 1, 2, or 3 = versions */)
{
    char prefix[KEY_MAX + 1], delim[64], maxk[32], token[4096], start[KEY_MAX + 1], enc[16], owner[8];
    char vid_marker[64];
    bool has_prefix, has_delim, has_max, has_token, has_start, has_enc, has_owner, has_vm;
    if (get_param(r, "prefix", prefix, sizeof(prefix), &has_prefix) ||
        get_param(r, "delimiter", delim, sizeof(delim), &has_delim) ||
        get_param(r, "max-keys", maxk, sizeof(maxk), &has_max) ||
        get_param(r, kind == 2 ? "continuation-token" : kind == 3 ? "key-marker" : "marker", token, sizeof(token),
                  &has_token) ||
        get_param(r, kind == 2 ? "start-after" : "x-lambdad-none", start, sizeof(start), &has_start) ||
        get_param(r, "encoding-type", enc, sizeof(enc), &has_enc) ||
        get_param(r, "fetch-owner", owner, sizeof(owner), &has_owner) ||
        get_param(r, "version-id-marker", vid_marker, sizeof(vid_marker), &has_vm))
        return;
    long max = 1000;
    if (has_max) {
        char *end;
        max = strtol(maxk, &end, 10);
        if (!*maxk || *end || max < 0) {
            struct sbuf x = {0};
            sbuf_xml_elem(&x, "ArgumentName", "max-keys");
            sbuf_xml_elem(&x, "ArgumentValue", maxk);
            S3ERR(r, 400, "InvalidArgument", x.p, "Provided max-keys not an integer or within integer range");
            sbuf_free(&x);
            return;
        }
        if (max > 1000)
            max = 1000;
    }
    if (has_enc && strcmp(enc, "url")) {
        struct sbuf x = {0};
        sbuf_xml_elem(&x, "ArgumentName", "encoding-type");
        sbuf_xml_elem(&x, "ArgumentValue", enc);
        S3ERR(r, 400, "InvalidArgument", x.p, "Invalid Encoding Method specified in Request");
        sbuf_free(&x);
        return;
    }
    /* V2's continuation token is the hex of the last key returned. */
    char from[KEY_MAX + 2] = "";
    if (kind == 2 && has_token) {
        size_t tl = strlen(token);
        bool ok = tl % 2 == 0 && tl / 2 <= KEY_MAX;
        for (size_t i = 0; ok && i < tl / 2; i++) {
            unsigned int byte = 0;
            ok = isxdigit((unsigned char)token[2 * i]) && isxdigit((unsigned char)token[2 * i + 1]) &&
                 sscanf(token + 2 * i, "%2x", &byte) == 1 && byte;
            from[i] = (char)byte;
            from[i + 1] = 0;
        }
        if (!ok) {
            struct sbuf x = {0};
            sbuf_xml_elem(&x, "ArgumentName", "continuation-token");
            S3ERR(r, 400, "InvalidArgument", x.p, "The continuation token provided is incorrect");
            sbuf_free(&x);
            return;
        }
    } else if (kind == 2 && has_start) {
        snprintf(from, sizeof(from), "%s", start);
    } else if (kind != 2 && has_token) {
        if (strlen(token) > KEY_MAX) {
            S3ERR(r, 400, "KeyTooLongError", NULL, "Your key is too long");
            return;
        }
        memcpy(from, token, strlen(token) + 1);
    }
    bool url = has_enc;
    struct sbuf b = {0};
    static const char *const roots[] = {"", "ListBucketResult", "ListBucketResult", "ListVersionsResult"};
    sbuf_printf(&b, XML_DECL "<%s xmlns=\"" S3_NS "\">", roots[kind]);
    sbuf_xml_elem(&b, "Name", r->bucket);
    elem_key(&b, "Prefix", prefix, url);
    if (kind == 1)
        elem_key(&b, "Marker", token, url);
    if (kind == 3) {
        elem_key(&b, "KeyMarker", token, url);
        sbuf_xml_elem(&b, "VersionIdMarker", vid_marker);
    }
    if (kind == 2 && has_token)
        sbuf_xml_elem(&b, "ContinuationToken", token);
    if (kind == 2 && has_start)
        elem_key(&b, "StartAfter", start, url);
    sbuf_printf(&b, "<MaxKeys>%ld</MaxKeys>", max);
    if (has_delim)
        elem_key(&b, "Delimiter", delim, url);
    if (url)
        sbuf_puts(&b, "<EncodingType>url</EncodingType>");
    struct sbuf items = {0};
    struct list_ctx c = {.b = &items, .prefix = prefix, .delim = delim, .plen = strlen(prefix),
                         .dlen = has_delim ? strlen(delim) : 0, .max = max, .url = url, .versions = kind == 3,
                         .v2 = kind == 2, .fetch_owner = kind == 1 || (has_owner && !strcmp(owner, "true")),
                         .account = r->req->account};
    /* Resume strictly after `from`: a key equal to it is skipped, and so
     * are the keys of a common prefix returned last. */
    const char *start_key = from[0] ? from : NULL;
    if (start_key && c.dlen && strlen(start_key) >= c.dlen &&
        !strcmp(start_key + strlen(start_key) - c.dlen, delim))
        c.last_cp = strdup(start_key);
    if (kind == 3 && start_key) {
        c.skip_key = start_key;
        c.skip_vid = has_vm && vid_marker[0] ? vid_marker : NULL;
        if (!c.skip_vid)
            c.skip_vid = ""; /* skip every version of the key marker */
    }
    int rc;
    if (kind != 3 && start_key) {
        /* the key equal to `from` is not repeated */
        char *after = malloc(strlen(start_key) + 2);
        if (!after) {
            err_internal(r, "out of memory");
            goto out;
        }
        strcpy(after, start_key);
        size_t l = strlen(after);
        after[l] = '\x01'; /* smallest byte above NUL: the first key > start_key */
        after[l + 1] = 0;
        rc = s3store_list(r->bucket, after, has_prefix ? prefix : NULL, false, list_cb, &c);
        free(after);
    } else {
        rc = s3store_list(r->bucket, start_key, has_prefix ? prefix : NULL, kind == 3, list_cb, &c);
    }
    if (rc) {
        err_status(r, rc, NULL);
        goto out;
    }
    if (kind == 2)
        sbuf_printf(&b, "<KeyCount>%ld</KeyCount>", c.count);
    sbuf_printf(&b, "<IsTruncated>%s</IsTruncated>", c.truncated ? "true" : "false");
    if (c.truncated && c.last) {
        if (kind == 2) {
            sbuf_puts(&b, "<NextContinuationToken>");
            for (const unsigned char *p = (const unsigned char *)c.last; *p; p++)
                sbuf_printf(&b, "%02x", *p);
            sbuf_puts(&b, "</NextContinuationToken>");
        } else if (kind == 1) {
            elem_key(&b, "NextMarker", c.last, url);
        } else {
            elem_key(&b, "NextKeyMarker", c.last, url);
            if (c.next_vid)
                sbuf_xml_elem(&b, "NextVersionIdMarker", c.next_vid);
        }
    }
    if (items.p)
        sbuf_append(&b, items.p, items.len);
    if (items.oom)
        b.oom = true;
    sbuf_printf(&b, "</%s>", roots[kind]);
    s3_send_xml(r, &b, NULL);
out:
    sbuf_free(&b);
    sbuf_free(&items);
    free(c.last);
    free(c.last_cp);
    free(c.next_vid);
}

/* --- objects ---------------------------------------------------------------------------- */

static bool versioned_bucket(const char *bucket)
{
    struct s3_bucket_info bi;
    return !s3store_bucket(bucket, &bi) && bi.versioning != S3_VERSIONING_OFF;
}

static void put_object(struct s3req *r)
{
    struct s3_blob blob;
    char ck[160], h[512];
    if (s3store_bucket(r->bucket, NULL)) {
        err_no_bucket(r);
        return; /* the body is drained by the dispatcher */
    }
    if (receive_body(r, &blob, S3_MAX_OBJECT_SIZE, ck))
        return;
    json_t *hdrs = object_headers(r->req);
    struct s3_version v;
    int rc = s3store_put(r->bucket, r->key, &blob, NULL, hdrs, &v);
    json_decref(hdrs);
    s3store_blob_free(&blob);
    if (rc) {
        err_status(r, rc, NULL);
        return;
    }
    snprintf(h, sizeof(h), "ETag: \"%s\"\r\n%s%s%s%s", v.etag, ck, strcmp(v.vid, "null") ? "x-amz-version-id: " : "",
             strcmp(v.vid, "null") ? v.vid : "", strcmp(v.vid, "null") ? "\r\n" : "");
    s3_version_release(&v);
    s3_send(r, 200, NULL, h, "", 0);
}

/* Conditional GET/HEAD headers: 0 to go on, else the status answered. */
static int preconditions(struct s3req *r, const struct s3_version *v)
{
    const char *im = http_header(r->req, "If-Match"), *inm = http_header(r->req, "If-None-Match");
    char quoted[100];
    snprintf(quoted, sizeof(quoted), "\"%s\"", v->etag);
    if (im && strcmp(im, "*") && !strstr(im, quoted) && strcmp(im, v->etag)) {
        S3ERR(r, 412, "PreconditionFailed", "<Condition>If-Match</Condition>",
              "At least one of the pre-conditions you specified did not hold");
        return 412;
    }
    if (inm && (!strcmp(inm, "*") || strstr(inm, quoted) || !strcmp(inm, v->etag))) {
        char h[200];
        snprintf(h, sizeof(h), "ETag: %s\r\n", quoted);
        s3_send(r, 304, NULL, h, "", 0);
        return 304;
    }
    return 0;
}

/* Parses "bytes=a-b" / "bytes=a-" / "bytes=-n" against size. Returns 1 and
 * the inclusive range, 0 to ignore the header (S3 serves the whole object
 * for syntax it does not take), -1 when unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *a, uint64_t *b)
{
    if (!h || strncmp(h, "bytes=", 6) || strchr(h, ','))
        return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        if (!isdigit((unsigned char)p[1]))
            return 0;
        unsigned long long n = strtoull(p + 1, &end, 10);
        if (*end)
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *a = n >= size ? 0 : size - n;
        *b = size - 1;
        return 1;
    }
    if (!isdigit((unsigned char)*p))
        return 0;
    unsigned long long s = strtoull(p, &end, 10);
    if (*end != '-')
        return 0;
    const char *q = end + 1;
    unsigned long long e = size ? size - 1 : 0;
    if (*q) {
        if (!isdigit((unsigned char)*q))
            return 0;
        e = strtoull(q, &end, 10);
        if (*end || e < s)
            return 0;
    }
    if (s >= size)
        return -1;
    if (e >= size)
        e = size - 1;
    *a = s;
    *b = e;
    return 1;
}

static void version_headers(struct sbuf *h, const struct s3_version *v, bool versioned)
{
    char d[40];
    http_date(v->mtime_ms, d);
    sbuf_printf(h, "ETag: \"%s\"\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n", v->etag, d);
    if (versioned || strcmp(v->vid, "null"))
        sbuf_printf(h, "x-amz-version-id: %s\r\n", v->vid);
    if (strchr(v->etag, '-'))
        sbuf_printf(h, "x-amz-mp-parts-count: %s\r\n", strchr(v->etag, '-') + 1);
}

static void get_object(struct s3req *r, bool head)
{
    char vid[64];
    bool has_vid;
    if (get_param(r, "versionId", vid, sizeof(vid), &has_vid))
        return;
    struct s3_version v;
    int fd = -1;
    int rc = s3store_get(r->bucket, r->key, has_vid ? vid : NULL, &v, head ? NULL : &fd);
    if (rc == S3_ENOKEY && v.delete_marker) {
        char h[200];
        snprintf(h, sizeof(h), "x-amz-delete-marker: true\r\nx-amz-version-id: %s\r\n", v.vid);
        s3_version_release(&v);
        struct sbuf x = {0};
        sbuf_xml_elem(&x, "Key", r->key);
        if (head) {
            s3_send(r, 404, NULL, h, "", 0);
        } else {
            struct sbuf b = {0};
            sbuf_printf(&b, XML_DECL "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist."
                        "</Message>%s<RequestId>%s</RequestId></Error>", x.p, r->req->request_id);
            char eh[300];
            snprintf(eh, sizeof(eh), "%sx-amzn-ErrorType: NoSuchKey\r\n", h);
            s3_send(r, 404, "application/xml", eh, b.p, b.len);
            sbuf_free(&b);
        }
        sbuf_free(&x);
        return;
    }
    if (rc == S3_EMARKER) {
        char h[300];
        snprintf(h, sizeof(h), "x-amz-delete-marker: true\r\nx-amz-version-id: %s\r\nAllow: DELETE\r\n", v.vid);
        s3_version_release(&v);
        struct sbuf b = {0};
        sbuf_printf(&b, XML_DECL "<Error><Code>MethodNotAllowed</Code><Message>The specified method is not allowed "
                    "against this resource.</Message><Method>%s</Method><ResourceType>DeleteMarker</ResourceType>"
                    "<RequestId>%s</RequestId></Error>", r->req->method, r->req->request_id);
        char eh[400];
        snprintf(eh, sizeof(eh), "%sx-amzn-ErrorType: MethodNotAllowed\r\n", h);
        s3_send(r, 405, head ? NULL : "application/xml", eh, b.p, head ? 0 : b.len);
        sbuf_free(&b);
        return;
    }
    if (rc) {
        s3_version_release(&v);
        if (head && rc != S3_EIO)
            s3_send(r, rc == S3_ENOVERSION && has_vid ? 404 : rc == S3_ENOBUCKET || rc == S3_ENOKEY ? 404 : 400, NULL,
                    NULL, "", 0);
        else
            err_status(r, rc, has_vid ? vid : NULL);
        return;
    }
    if (preconditions(r, &v)) {
        s3_version_release(&v);
        if (fd >= 0)
            close(fd);
        return;
    }
    uint64_t a = 0, b = v.size ? v.size - 1 : 0;
    int rr = parse_range(http_header(r->req, "Range"), v.size, &a, &b);
    if (rr < 0) {
        struct sbuf ex = {0};
        sbuf_puts(&ex, "<RangeRequested>");
        sbuf_xml(&ex, http_header(r->req, "Range"), strlen(http_header(r->req, "Range")));
        sbuf_printf(&ex, "</RangeRequested><ActualObjectSize>%" PRIu64 "</ActualObjectSize>", v.size);
        S3ERR(r, 416, "InvalidRange", ex.p, "The requested range is not satisfiable");
        sbuf_free(&ex);
        s3_version_release(&v);
        if (fd >= 0)
            close(fd);
        return;
    }
    uint64_t len = rr == 1 ? b - a + 1 : v.size;
    int status = rr == 1 ? 206 : 200;
    struct sbuf h = {0};
    sbuf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Length: %" PRIu64 "\r\nx-amzn-RequestId: %s\r\nx-amz-request-id: %s\r\n"
                "x-amz-id-2: %s\r\n", status, status == 206 ? "Partial Content" : "OK", len, r->req->request_id,
                r->req->request_id, r->req->request_id);
    if (rr == 1)
        sbuf_printf(&h, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", a, b, v.size);
    version_headers(&h, &v, versioned_bucket(r->bucket));
    headers_out(&h, v.headers, r->req);
    const char *conn = http_header(r->req, "Connection");
    if (conn && strcasestr(conn, "close"))
        sbuf_puts(&h, "Connection: close\r\n");
    sbuf_puts(&h, "\r\n");
    s3_version_release(&v);
    r->req->status = status;
    if (h.oom) {
        sbuf_free(&h);
        if (fd >= 0)
            close(fd);
        r->req->status = 0;
        err_internal(r, "out of memory");
        return;
    }
    mg_write(r->req->conn, h.p, h.len);
    sbuf_free(&h);
    if (head || fd < 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    char *buf = malloc(1 << 16);
    uint64_t off = a, left = len;
    while (buf && left) {
        ssize_t n = pread(fd, buf, left < (1u << 16) ? (size_t)left : (1u << 16), (off_t)off);
        if (n <= 0) {
            LOG_ERROR("s3: read of %s/%s failed: %s", r->bucket, r->key, n < 0 ? strerror(errno) : "short file");
            break;
        }
        if (mg_write(r->req->conn, buf, (size_t)n) <= 0)
            break;
        off += (uint64_t)n;
        left -= (uint64_t)n;
    }
    if (left)
        mg_disable_keep_alive(r->req->conn); /* the client must not wait for the rest */
    free(buf);
    close(fd);
}

static void delete_object(struct s3req *r)
{
    char vid[64];
    bool has_vid, found;
    if (get_param(r, "versionId", vid, sizeof(vid), &has_vid))
        return;
    struct s3_version v;
    int rc = s3store_delete(r->bucket, r->key, has_vid ? vid : NULL, &v, &found);
    if (rc) {
        err_status(r, rc, NULL);
        return;
    }
    struct sbuf h = {0};
    if (found && v.delete_marker)
        sbuf_puts(&h, "x-amz-delete-marker: true\r\n");
    if (found && (has_vid || strcmp(v.vid, "null") || versioned_bucket(r->bucket)))
        sbuf_printf(&h, "x-amz-version-id: %s\r\n", v.vid);
    s3_version_release(&v);
    s3_send(r, 204, NULL, h.p, "", 0);
    sbuf_free(&h);
}

static void copy_object(struct s3req *r, const char *src_hdr)
{
    /* x-amz-copy-source: [/]bucket/key[?versionId=v], URL-encoded */
    char *src = strdup(src_hdr[0] == '/' ? src_hdr + 1 : src_hdr);
    char sbucket[256], svid[64] = "";
    char *qm = src ? strstr(src, "?versionId=") : NULL;
    if (!src) {
        err_internal(r, "out of memory");
        return;
    }
    if (qm) {
        snprintf(svid, sizeof(svid), "%s", qm + 11);
        *qm = 0;
    }
    char *slash = strchr(src, '/');
    char *skey = slash ? malloc(strlen(slash) + 1) : NULL;
    if (!slash || slash == src || (size_t)(slash - src) >= sizeof(sbucket) || !skey ||
        http_pct_decode(src, (size_t)(slash - src), sbucket, sizeof(sbucket), false) < 0 ||
        http_pct_decode(slash + 1, strlen(slash + 1), skey, strlen(slash) + 1, false) <= 0) {
        S3ERR(r, 400, "InvalidArgument", "<ArgumentName>x-amz-copy-source</ArgumentName>",
              "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
        free(src);
        free(skey);
        return;
    }
    free(src);
    struct s3_version sv;
    int rc = s3store_get(sbucket, skey, svid[0] ? svid : NULL, &sv, NULL);
    if (rc) {
        char *dkey = r->key;
        char dbucket[256];
        memcpy(dbucket, r->bucket, sizeof(dbucket));
        snprintf(r->bucket, sizeof(r->bucket), "%s", sbucket);
        r->key = skey;
        if (rc == S3_EMARKER)
            S3ERR(r, 400, "InvalidRequest", NULL, "The source of a copy request may not specifically refer to a delete marker by version id.");
        else
            err_status(r, rc, svid[0] ? svid : NULL);
        r->key = dkey;
        memcpy(r->bucket, dbucket, sizeof(dbucket));
        s3_version_release(&sv);
        free(skey);
        return;
    }
    const char *directive = http_header(r->req, "x-amz-metadata-directive");
    bool replace = directive && !strcasecmp(directive, "REPLACE");
    if (!replace && !strcmp(sbucket, r->bucket) && !strcmp(skey, r->key) && !svid[0] &&
        !versioned_bucket(r->bucket)) {
        S3ERR(r, 400, "InvalidRequest", NULL,
              "This copy request is illegal because it is trying to copy an object to itself without changing the "
              "object's metadata, storage class, website redirect location or encryption attributes.");
        s3_version_release(&sv);
        free(skey);
        return;
    }
    json_t *hdrs = replace ? object_headers(r->req) : json_incref(sv.headers);
    struct s3_version v;
    rc = s3store_put(r->bucket, r->key, NULL, &sv, hdrs, &v);
    json_decref(hdrs);
    if (rc) {
        err_status(r, rc, NULL);
    } else {
        char d[40];
        iso_date(v.mtime_ms, d);
        struct sbuf b = {0}, h = {0};
        sbuf_printf(&b, XML_DECL "<CopyObjectResult xmlns=\"" S3_NS "\"><LastModified>%s</LastModified>"
                    "<ETag>&quot;%s&quot;</ETag></CopyObjectResult>", d, v.etag);
        if (strcmp(sv.vid, "null"))
            sbuf_printf(&h, "x-amz-copy-source-version-id: %s\r\n", sv.vid);
        if (strcmp(v.vid, "null"))
            sbuf_printf(&h, "x-amz-version-id: %s\r\n", v.vid);
        s3_send_xml(r, &b, h.p);
        sbuf_free(&b);
        sbuf_free(&h);
        s3_version_release(&v);
    }
    s3_version_release(&sv);
    free(skey);
}

/* DeleteObjects */
struct del_item {
    char *key;
    char vid[64];
};

struct del_ctx {
    struct del_item *items;
    int n;
    bool quiet;
    bool bad;
};

static int del_cb(void *ud, int item, const char *name, const char *text)
{
    struct del_ctx *c = ud;
    if (item < 0) {
        if (name && !strcmp(name, "Quiet"))
            c->quiet = !strcmp(text, "true");
        return 0;
    }
    if (!name) {
        struct del_item *ni = realloc(c->items, (size_t)(item + 1) * sizeof(*ni));
        if (!ni)
            return -3;
        c->items = ni;
        memset(&ni[item], 0, sizeof(*ni));
        c->n = item + 1;
        return 0;
    }
    if (!strcmp(name, "Key")) {
        free(c->items[item].key);
        c->items[item].key = strdup(text);
        if (strlen(text) > KEY_MAX)
            c->bad = true;
    } else if (!strcmp(name, "VersionId")) {
        if (strlen(text) >= sizeof(c->items[item].vid))
            c->bad = true;
        snprintf(c->items[item].vid, sizeof(c->items[item].vid), "%s", text);
    }
    return 0;
}

static void delete_objects(struct s3req *r)
{
    struct del_ctx c = {0};
    if (read_xml_body(r))
        return;
    if (s3store_bucket(r->bucket, NULL)) {
        err_no_bucket(r);
        return;
    }
    int prc = s3_xml_parse(r->req->body, r->req->body_len, "Delete", "Object", 1000, del_cb, &c);
    for (int i = 0; !prc && i < c.n; i++)
        if (!c.items[i].key || !c.items[i].key[0])
            c.bad = true;
    if (prc || c.bad || c.n == 0) {
        err_malformed_xml(r);
        goto out;
    }
    struct sbuf b = {0};
    sbuf_puts(&b, XML_DECL "<DeleteResult xmlns=\"" S3_NS "\">");
    for (int i = 0; i < c.n; i++) {
        struct s3_version v;
        bool found;
        const char *vid = c.items[i].vid[0] ? c.items[i].vid : NULL;
        int rc = s3store_delete(r->bucket, c.items[i].key, vid, &v, &found);
        if (rc) {
            sbuf_puts(&b, "<Error>");
            sbuf_xml_elem(&b, "Key", c.items[i].key);
            if (vid)
                sbuf_xml_elem(&b, "VersionId", vid);
            sbuf_puts(&b, "<Code>InternalError</Code><Message>We encountered an internal error. Please try again."
                      "</Message></Error>");
            continue;
        }
        if (!c.quiet) {
            sbuf_puts(&b, "<Deleted>");
            sbuf_xml_elem(&b, "Key", c.items[i].key);
            if (vid)
                sbuf_xml_elem(&b, "VersionId", vid);
            if (found && v.delete_marker) {
                sbuf_puts(&b, "<DeleteMarker>true</DeleteMarker>");
                if (!vid)
                    sbuf_xml_elem(&b, "DeleteMarkerVersionId", v.vid);
            }
            sbuf_puts(&b, "</Deleted>");
        }
        s3_version_release(&v);
    }
    sbuf_puts(&b, "</DeleteResult>");
    s3_send_xml(r, &b, NULL);
    sbuf_free(&b);
out:
    for (int i = 0; i < c.n; i++)
        free(c.items[i].key);
    free(c.items);
}

/* --- multipart ---------------------------------------------------------------------------- */

static void mpu_create(struct s3req *r)
{
    char id[65];
    json_t *hdrs = object_headers(r->req);
    int rc = s3store_mpu_create(r->bucket, r->key, hdrs, id);
    json_decref(hdrs);
    if (rc) {
        err_status(r, rc, NULL);
        return;
    }
    struct sbuf b = {0};
    sbuf_puts(&b, XML_DECL "<InitiateMultipartUploadResult xmlns=\"" S3_NS "\">");
    sbuf_xml_elem(&b, "Bucket", r->bucket);
    sbuf_xml_elem(&b, "Key", r->key);
    sbuf_xml_elem(&b, "UploadId", id);
    sbuf_puts(&b, "</InitiateMultipartUploadResult>");
    s3_send_xml(r, &b, NULL);
    sbuf_free(&b);
}

static int part_number(struct s3req *r, int *out)
{
    char pn[32];
    bool has;
    if (get_param(r, "partNumber", pn, sizeof(pn), &has))
        return -1;
    char *end;
    long v = strtol(pn, &end, 10);
    if (!has || !*pn || *end || v < 1 || v > S3_MAX_PARTS) {
        struct sbuf x = {0};
        sbuf_puts(&x, "<ArgumentName>partNumber</ArgumentName>");
        sbuf_xml_elem(&x, "ArgumentValue", pn);
        S3ERR(r, 400, "InvalidArgument", x.p, "Part number must be an integer between 1 and 10000, inclusive");
        sbuf_free(&x);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static void mpu_upload_part(struct s3req *r, const char *upload_id)
{
    int number;
    if (part_number(r, &number))
        return;
    struct s3_part *parts = NULL;
    size_t n = 0;
    int rc = s3store_mpu_parts(r->bucket, r->key, upload_id, &parts, &n, NULL);
    free(parts);
    if (rc) {
        err_status(r, rc, NULL);
        return;
    }
    struct s3_blob blob;
    char ck[160];
    if (receive_body(r, &blob, S3_MAX_OBJECT_SIZE, ck))
        return;
    rc = s3store_mpu_put_part(r->bucket, r->key, upload_id, number, &blob);
    if (rc) {
        err_status(r, rc, NULL);
    } else {
        char h[300];
        snprintf(h, sizeof(h), "ETag: \"%s\"\r\n%s", blob.md5_hex, ck);
        s3_send(r, 200, NULL, h, "", 0);
    }
    s3store_blob_free(&blob);
}

static void mpu_list_parts(struct s3req *r, const char *upload_id)
{
    struct s3_part *parts = NULL;
    size_t n = 0;
    char maxp[32], marker[32];
    bool has_max, has_marker;
    if (get_param(r, "max-parts", maxp, sizeof(maxp), &has_max) ||
        get_param(r, "part-number-marker", marker, sizeof(marker), &has_marker))
        return;
    long max = has_max ? strtol(maxp, NULL, 10) : 1000;
    long after = has_marker ? strtol(marker, NULL, 10) : 0;
    if (max < 1 || max > 1000)
        max = 1000;
    int rc = s3store_mpu_parts(r->bucket, r->key, upload_id, &parts, &n, NULL);
    if (rc) {
        err_status(r, rc, NULL);
        return;
    }
    struct sbuf b = {0};
    sbuf_puts(&b, XML_DECL "<ListPartsResult xmlns=\"" S3_NS "\">");
    sbuf_xml_elem(&b, "Bucket", r->bucket);
    sbuf_xml_elem(&b, "Key", r->key);
    sbuf_xml_elem(&b, "UploadId", upload_id);
    sbuf_printf(&b, "<PartNumberMarker>%ld</PartNumberMarker>", after);
    struct sbuf items = {0};
    long count = 0, last = 0;
    bool truncated = false;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].number <= after)
            continue;
        if (count == max) {
            truncated = true;
            break;
        }
        char d[40];
        iso_date(parts[i].mtime_ms, d);
        sbuf_printf(&items, "<Part><PartNumber>%d</PartNumber><LastModified>%s</LastModified><ETag>&quot;%s&quot;</ETag>"
                    "<Size>%" PRIu64 "</Size></Part>", parts[i].number, d, parts[i].md5_hex, parts[i].size);
        last = parts[i].number;
        count++;
    }
    sbuf_printf(&b, "<NextPartNumberMarker>%ld</NextPartNumberMarker><MaxParts>%ld</MaxParts>"
                "<IsTruncated>%s</IsTruncated><StorageClass>STANDARD</StorageClass>", last, max,
                truncated ? "true" : "false");
    if (items.p)
        sbuf_append(&b, items.p, items.len);
    sbuf_puts(&b, "</ListPartsResult>");
    s3_send_xml(r, &b, NULL);
    sbuf_free(&b);
    sbuf_free(&items);
    free(parts);
}

struct cmp_ctx {
    struct s3_part *parts;
    int n;
    bool bad;
};

static int cmp_cb(void *ud, int item, const char *name, const char *text)
{
    struct cmp_ctx *c = ud;
    if (item < 0)
        return 0;
    if (!name) {
        struct s3_part *np = realloc(c->parts, (size_t)(item + 1) * sizeof(*np));
        if (!np)
            return -3;
        c->parts = np;
        memset(&np[item], 0, sizeof(*np));
        c->n = item + 1;
        return 0;
    }
    if (!strcmp(name, "PartNumber")) {
        char *end;
        long v = strtol(text, &end, 10);
        if (!*text || *end || v < 1 || v > S3_MAX_PARTS)
            c->bad = true;
        c->parts[item].number = (int)v;
    } else if (!strcmp(name, "ETag")) {
        const char *e = text;
        size_t l = strlen(e);
        if (l >= 2 && e[0] == '"' && e[l - 1] == '"')
            e++, l -= 2;
        if (l != 32)
            c->bad = true; /* cannot match any part: InvalidPart below */
        else
            memcpy(c->parts[item].md5_hex, e, 32);
        c->parts[item].md5_hex[l == 32 ? 32 : 0] = 0;
    }
    return 0;
}

static void mpu_complete(struct s3req *r, const char *upload_id)
{
    struct cmp_ctx c = {0};
    if (read_xml_body(r))
        return;
    int prc = s3_xml_parse(r->req->body, r->req->body_len, "CompleteMultipartUpload", "Part", S3_MAX_PARTS,
                           cmp_cb, &c);
    for (int i = 0; !prc && i < c.n; i++)
        if (!c.parts[i].number)
            c.bad = true;
    if (prc || c.n == 0 || (c.bad && prc)) {
        err_malformed_xml(r);
        free(c.parts);
        return;
    }
    struct s3_version v;
    size_t bad = 0;
    int rc = c.bad ? S3_EPART : s3store_mpu_complete(r->bucket, r->key, upload_id, c.parts, (size_t)c.n, &v, &bad);
    if (rc == S3_EPART || rc == S3_ETOOSMALL || rc == S3_EPARTORDER) {
        struct sbuf x = {0};
        sbuf_xml_elem(&x, "UploadId", upload_id);
        if (rc != S3_EPARTORDER && (int)bad < c.n) {
            sbuf_printf(&x, "<PartNumber>%d</PartNumber>", c.parts[bad].number);
            sbuf_xml_elem(&x, "ETag", c.parts[bad].md5_hex);
        }
        if (rc == S3_EPART)
            S3ERR(r, 400, "InvalidPart", x.p,
                  "One or more of the specified parts could not be found.  The part may not have been uploaded, or "
                  "the specified entity tag may not match the part's entity tag.");
        else if (rc == S3_EPARTORDER)
            S3ERR(r, 400, "InvalidPartOrder", x.p,
                  "The list of parts was not in ascending order. Parts must be ordered by part number.");
        else
            S3ERR(r, 400, "EntityTooSmall", x.p, "Your proposed upload is smaller than the minimum allowed size");
        sbuf_free(&x);
    } else if (rc) {
        err_status(r, rc, NULL);
    } else {
        struct sbuf b = {0};
        char h[200] = "";
        sbuf_puts(&b, XML_DECL "<CompleteMultipartUploadResult xmlns=\"" S3_NS "\">");
        sbuf_printf(&b, "<Location>/%s/", r->bucket);
        sbuf_xml(&b, r->key, strlen(r->key));
        sbuf_puts(&b, "</Location>");
        sbuf_xml_elem(&b, "Bucket", r->bucket);
        sbuf_xml_elem(&b, "Key", r->key);
        sbuf_printf(&b, "<ETag>&quot;%s&quot;</ETag></CompleteMultipartUploadResult>", v.etag);
        if (strcmp(v.vid, "null"))
            snprintf(h, sizeof(h), "x-amz-version-id: %s\r\n", v.vid);
        s3_send_xml(r, &b, h);
        sbuf_free(&b);
        s3_version_release(&v);
    }
    free(c.parts);
}

static void mpu_list_uploads(struct s3req *r)
{
    char prefix[KEY_MAX + 1], kmarker[KEY_MAX + 1], umarker[128], maxu[32];
    bool has_prefix, has_km, has_um, has_max;
    if (get_param(r, "prefix", prefix, sizeof(prefix), &has_prefix) ||
        get_param(r, "key-marker", kmarker, sizeof(kmarker), &has_km) ||
        get_param(r, "upload-id-marker", umarker, sizeof(umarker), &has_um) ||
        get_param(r, "max-uploads", maxu, sizeof(maxu), &has_max))
        return;
    long max = has_max ? strtol(maxu, NULL, 10) : 1000;
    if (max < 0 || max > 1000)
        max = 1000;
    struct s3_upload_info *ups = NULL;
    size_t n = 0;
    int rc = s3store_mpu_list(r->bucket, has_prefix ? prefix : NULL, &ups, &n);
    if (rc) {
        err_status(r, rc, NULL);
        return;
    }
    bool url = has_query(r->req, "encoding-type");
    struct sbuf b = {0}, items = {0};
    sbuf_puts(&b, XML_DECL "<ListMultipartUploadsResult xmlns=\"" S3_NS "\">");
    sbuf_xml_elem(&b, "Bucket", r->bucket);
    elem_key(&b, "KeyMarker", kmarker, url);
    sbuf_xml_elem(&b, "UploadIdMarker", umarker);
    long count = 0;
    const struct s3_upload_info *last = NULL;
    bool truncated = false;
    for (size_t i = 0; i < n; i++) {
        const struct s3_upload_info *u = &ups[i];
        if (has_km && kmarker[0]) {
            int c = strcmp(u->key, kmarker);
            /* after the key marker; with an upload-id marker, later uploads of that key too */
            if (c < 0 || (c == 0 && (!has_um || !umarker[0])))
                continue;
            if (c == 0 && strcmp(u->id, umarker) <= 0)
                continue;
        }
        if (count == max) {
            truncated = true;
            break;
        }
        char d[40];
        iso_date(u->initiated_ms, d);
        sbuf_puts(&items, "<Upload>");
        elem_key(&items, "Key", u->key, url);
        sbuf_xml_elem(&items, "UploadId", u->id);
        sbuf_printf(&items, "<Initiator><ID>%s</ID><DisplayName>lambdad</DisplayName></Initiator><Owner><ID>%s</ID>"
                    "<DisplayName>lambdad</DisplayName></Owner><StorageClass>STANDARD</StorageClass>"
                    "<Initiated>%s</Initiated></Upload>", r->req->account, r->req->account, d);
        last = u;
        count++;
    }
    if (truncated && last) {
        elem_key(&b, "NextKeyMarker", last->key, url);
        sbuf_xml_elem(&b, "NextUploadIdMarker", last->id);
    }
    sbuf_printf(&b, "<MaxUploads>%ld</MaxUploads><IsTruncated>%s</IsTruncated>", max, truncated ? "true" : "false");
    if (items.p)
        sbuf_append(&b, items.p, items.len);
    if (items.oom)
        b.oom = true;
    elem_key(&b, "Prefix", prefix, url);
    if (url)
        sbuf_puts(&b, "<EncodingType>url</EncodingType>");
    sbuf_puts(&b, "</ListMultipartUploadsResult>");
    s3_send_xml(r, &b, NULL);
    sbuf_free(&b);
    sbuf_free(&items);
    s3store_mpu_list_free(ups, n);
}

static void mpu_abort(struct s3req *r, const char *upload_id)
{
    int rc = s3store_mpu_abort(r->bucket, r->key, upload_id);
    if (rc)
        err_status(r, rc, NULL);
    else
        s3_send(r, 204, NULL, NULL, "", 0);
}

/* --- unconfigured subresources ------------------------------------------------------------ */

/* GET of a bucket subresource lambdad never configures: what S3 answers for
 * a bucket where it was never set (tools such as Terraform read them all on
 * refresh). Returns false when sub is not one of them. */
static bool get_default_subresource(struct s3req *r, const char *sub)
{
    static const struct {
        const char *sub;
        int status;
        const char *code; /* error code, or NULL for a 200 document */
        const char *text; /* error message, or the document's body */
    } defaults[] = {
        {"cors", 404, "NoSuchCORSConfiguration", "The CORS configuration does not exist"},
        {"website", 404, "NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration"},
        {"lifecycle", 404, "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"},
        {"replication", 404, "ReplicationConfigurationNotFoundError", "The replication configuration was not found"},
        {"object-lock", 404, "ObjectLockConfigurationNotFoundError",
         "Object Lock configuration does not exist for this bucket"},
        {"tagging", 404, "NoSuchTagSet", "The TagSet does not exist"},
        {"policy", 404, "NoSuchBucketPolicy", "The bucket policy does not exist"},
        {"ownershipControls", 404, "OwnershipControlsNotFoundError", "The bucket ownership controls were not found"},
        {"publicAccessBlock", 404, "NoSuchPublicAccessBlockConfiguration",
         "The public access block configuration was not found"},
        {"encryption", 200, NULL,
         "<ServerSideEncryptionConfiguration xmlns=\"" S3_NS "\"><Rule><ApplyServerSideEncryptionByDefault>"
         "<SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false"
         "</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>"},
        {"accelerate", 200, NULL, "<AccelerateConfiguration xmlns=\"" S3_NS "\"/>"},
        {"requestPayment", 200, NULL,
         "<RequestPaymentConfiguration xmlns=\"" S3_NS "\"><Payer>BucketOwner</Payer></RequestPaymentConfiguration>"},
        {"logging", 200, NULL, "<BucketLoggingStatus xmlns=\"" S3_NS "\"/>"},
        {"notification", 200, NULL, "<NotificationConfiguration xmlns=\"" S3_NS "\"/>"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (strcmp(defaults[i].sub, sub))
            continue;
        struct sbuf x = {0};
        sbuf_xml_elem(&x, "BucketName", r->bucket);
        if (defaults[i].code) {
            S3ERR(r, defaults[i].status, defaults[i].code, x.p, "%s", defaults[i].text);
        } else {
            struct sbuf b = {0};
            sbuf_puts(&b, XML_DECL);
            sbuf_puts(&b, defaults[i].text);
            s3_send_xml(r, &b, NULL);
            sbuf_free(&b);
        }
        sbuf_free(&x);
        return true;
    }
    return false;
}

/* GET ?acl (bucket or object) and GET ?tagging of an object: the owner's
 * full control; no tags. */
static void get_acl_or_tags(struct s3req *r, bool acl)
{
    struct sbuf b = {0};
    if (acl)
        sbuf_printf(&b, XML_DECL "<AccessControlPolicy xmlns=\"" S3_NS "\"><Owner><ID>%s</ID><DisplayName>lambdad"
                    "</DisplayName></Owner><AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/"
                    "XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>%s</ID><DisplayName>lambdad</DisplayName>"
                    "</Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
                    "</AccessControlPolicy>", r->req->account, r->req->account);
    else
        sbuf_puts(&b, XML_DECL "<Tagging xmlns=\"" S3_NS "\"><TagSet/></Tagging>");
    s3_send_xml(r, &b, NULL);
    sbuf_free(&b);
}

/* Answers a GET of a subresource lambdad keeps no configuration for, when
 * S3 has a well-defined "not configured" answer. True when answered. */
static bool get_unconfigured(struct s3req *r, const char *sub)
{
    if (strcmp(r->req->method, "GET"))
        return false;
    if (!r->key) {
        if (s3store_bucket(r->bucket, NULL)) {
            err_no_bucket(r);
            return true;
        }
        if (!strcmp(sub, "acl")) {
            get_acl_or_tags(r, true);
            return true;
        }
        return get_default_subresource(r, sub);
    }
    if (strcmp(sub, "acl") && strcmp(sub, "tagging"))
        return false;
    struct s3_version v;
    int rc = s3store_get(r->bucket, r->key, NULL, &v, NULL);
    s3_version_release(&v);
    if (rc)
        err_status(r, rc, NULL);
    else
        get_acl_or_tags(r, !strcmp(sub, "acl"));
    return true;
}

/* --- dispatch ----------------------------------------------------------------------------- */

static const char *const g_unsupported[] = {
    "acl", "tagging", "policy", "cors", "lifecycle", "encryption", "website", "logging", "notification",
    "replication", "requestPayment", "object-lock", "ownershipControls", "publicAccessBlock", "accelerate",
    "analytics", "inventory", "metrics", "intelligent-tiering", "legal-hold", "retention", "torrent", "restore",
    "select", "attributes", "policyStatus", "uploads-list", NULL};

static const char *unsupported_subresource(const struct http_req *req)
{
    for (int i = 0; g_unsupported[i]; i++)
        if (has_query(req, g_unsupported[i]))
            return g_unsupported[i];
    return NULL;
}

static void not_implemented(struct s3req *r, const char *what)
{
    S3ERR(r, 501, "NotImplemented", NULL,
          "A header you provided implies functionality that is not implemented (lambdad's S3 does not serve %s)",
          what);
}

void svc_s3(struct http_req *req)
{
    struct s3req r = {.req = req};
    const char *m = req->method;
    char upload_id[128];
    bool has_upload;
    if (parse_target(&r))
        return;
    const char *unsup = unsupported_subresource(req);
    if (get_param(&r, "uploadId", upload_id, sizeof(upload_id), &has_upload))
        goto out;
    if (!r.bucket[0]) {
        if (!strcmp(m, "GET"))
            list_buckets(&r);
        else
            not_implemented(&r, "this operation on the service");
        goto out;
    }
    if (!r.key && !s3_bucket_name_valid(r.bucket) && strcmp(m, "PUT")) {
        /* an invalid name cannot name an existing bucket */
        if (!strcmp(m, "HEAD"))
            s3_send(&r, 404, NULL, NULL, "", 0);
        else
            err_no_bucket(&r);
        goto out;
    }
    if (unsup) {
        if (!get_unconfigured(&r, unsup))
            not_implemented(&r, unsup);
        goto out;
    }
    if (!r.key) {
        if (!strcmp(m, "PUT"))
            has_query(req, "versioning") ? put_versioning(&r) : create_bucket(&r);
        else if (!strcmp(m, "HEAD"))
            head_bucket(&r);
        else if (!strcmp(m, "DELETE"))
            delete_bucket(&r);
        else if (!strcmp(m, "POST") && has_query(req, "delete"))
            delete_objects(&r);
        else if (!strcmp(m, "GET")) {
            char lt[8];
            if (has_query(req, "versioning"))
                get_versioning(&r);
            else if (has_query(req, "location"))
                get_location(&r);
            else if (has_query(req, "versions"))
                list_objects(&r, 3);
            else if (has_query(req, "uploads"))
                mpu_list_uploads(&r);
            else if (http_query(req, "list-type", lt, sizeof(lt)) >= 0 && !strcmp(lt, "2"))
                list_objects(&r, 2);
            else
                list_objects(&r, 1);
        } else
            not_implemented(&r, m);
        goto out;
    }
    if (!strcmp(m, "PUT")) {
        const char *copy = http_header(req, "x-amz-copy-source");
        if (has_upload && copy)
            not_implemented(&r, "UploadPartCopy");
        else if (has_upload)
            mpu_upload_part(&r, upload_id);
        else if (copy)
            copy_object(&r, copy);
        else
            put_object(&r);
    } else if (!strcmp(m, "GET")) {
        if (has_upload)
            mpu_list_parts(&r, upload_id);
        else
            get_object(&r, false);
    } else if (!strcmp(m, "HEAD")) {
        get_object(&r, true);
    } else if (!strcmp(m, "DELETE")) {
        if (has_upload)
            mpu_abort(&r, upload_id);
        else
            delete_object(&r);
    } else if (!strcmp(m, "POST")) {
        if (has_query(req, "uploads"))
            mpu_create(&r);
        else if (has_upload)
            mpu_complete(&r, upload_id);
        else
            not_implemented(&r, "POST object");
    } else {
        not_implemented(&r, m);
    }
out:
    free(r.key);
}
