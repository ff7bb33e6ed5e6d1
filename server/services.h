/* services: the companion AWS services (IAM, STS, S3, CloudWatch Logs)
 * served on lambdad's HTTP front next to Lambda, and the routing that picks
 * which service a request is for.
 *
 * DESIGN: one static table of services, each with the name of its SigV4
 * credential scope ("iam", "s3", ...), its X-Amz-Target prefix when it
 * speaks JSON over POST / (e.g. "Logs_20140328"), its wire protocol and its
 * handler. handle_request (http.c) calls services_dispatch before the
 * Lambda route table. A request belongs to a service when
 *   1. its Authorization header's credential scope
 *      (Credential=AKID/DATE/REGION/SERVICE/aws4_request) or a presigned
 *      URL's X-Amz-Credential names it; or
 *   2. its X-Amz-Target prefix names it; or
 *   3. (S3 only, for unsigned requests) its Host is virtual-host style
 *      ("bucket.s3.localhost", "bucket.localhost", "s3.localhost", or any
 *      "*.s3.*" name), or it carries a SigV2 "AWS AKID:sig" header or
 *      AWSAccessKeyId query parameter.
 * Scope "lambda" and requests that match none of these go to Lambda. A
 * service whose handler is NULL, and a service name lambdad does not know,
 * are answered in that service's protocol with AWS's "not implemented"
 * error, so every SDK can parse the answer (a ClientError, never a parse
 * error): JSON protocols get {"__type": ...} plus x-amzn-ErrorType,
 * everything else an XML ErrorResponse plus x-amzn-ErrorType (botocore's
 * query, ec2, rest-xml and rest-json parsers all read one of the two).
 *
 * Temporary credentials from STS AssumeRole (access key ids "ASIA...") are
 * mapped to the account they were issued for before any routing, so Lambda
 * calls signed with them land in the role's account too.
 *
 * Thread rules: the table is read-only; services_dispatch runs on the
 * civetweb worker that owns req. */
#ifndef LAMBDAD_SERVER_SERVICES_H
#define LAMBDAD_SERVER_SERVICES_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/http.h"

enum service_protocol {
    SERVICE_QUERY,     /* form POST Action=...; XML responses (IAM, STS) */
    SERVICE_REST_XML,  /* S3 */
    SERVICE_JSON,      /* JSON 1.0/1.1 with X-Amz-Target (Logs) */
};

struct service {
    const char *name;            /* SigV4 credential scope service */
    const char *target;          /* X-Amz-Target prefix, or NULL */
    enum service_protocol proto;
    http_handler_fn handler;     /* NULL: every operation is "not implemented" */
    size_t body_cap;             /* req->body_cap for http_read_body */
};

/* Routes req to a companion service when it is for one (see DESIGN) and
 * answers it there. Returns true when the request was handled (a response
 * was sent), false when it is for Lambda. Also maps STS temporary access
 * keys to their account in req->account. */
bool services_dispatch(struct http_req *req);

/* Which service the request is for: the service's entry, or NULL for
 * Lambda. For a service lambdad does not serve, *unknown receives its name
 * (from the scope or the target) and NULL is returned with *unknown set. */
const struct service *services_match(const struct http_req *req, char *unknown, size_t unknown_len);

/* The service name (credential scope) of an Authorization header or a
 * presigned X-Amz-Credential value (already decoded) into out. Returns its
 * length, or -1 when there is none. Pure; exposed for the unit tests. */
int services_scope_service(const char *credential, char *out, size_t outlen);

/* The access key id of the request (Authorization Credential=, presigned
 * X-Amz-Credential, SigV2 "AWS AKID:"), or -1 when unsigned. */
int services_access_key(const struct http_req *req, char *out, size_t outlen);

/* --- query-protocol parameters ------------------------------------------- */

/* Decoded name=value pairs of a form body or query string. */
struct form {
    size_t n;
    char **names;
    char **values;
};

/* Parses "a=1&b=x%20y" (application/x-www-form-urlencoded) into f. Returns
 * 0, -EINVAL for an invalid percent escape or a decoded NUL, -E2BIG past
 * 10000 pairs, -ENOMEM. f is empty (and freeable) on failure. Pure. */
int form_parse(const char *s, size_t len, struct form *f);

/* Value of the first pair called name, or NULL. */
const char *form_get(const struct form *f, const char *name);

void form_free(struct form *f);

/* Reads the parameters of a query-protocol request: the query string plus a
 * form body (POST). Returns 0, or -1 after answering the error. */
int services_read_form(struct http_req *req, struct form *f);

/* --- response helpers for the service handlers ------------------------- */

/* A growable text buffer. All appends are no-ops after an allocation
 * failure (oom is set); the caller checks once at the end. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

void sbuf_append(struct sbuf *b, const char *s, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) escaped for XML text and attributes (&<>"' and control
 * characters as character references). */
void sbuf_xml(struct sbuf *b, const char *s, size_t n);
/* Appends <tag>escaped s</tag>. */
void sbuf_xml_elem(struct sbuf *b, const char *tag, const char *s);
void sbuf_free(struct sbuf *b);

/* Query protocol (IAM, STS, unknown form services): an ErrorResponse with
 * Type Sender (4xx) / Receiver (5xx), Code, Message and RequestId. */
void services_send_query_error(struct http_req *req, int status, const char *code,
                               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* JSON 1.0/1.1: {"__type": code, "message": msg} and x-amzn-ErrorType. */
void services_send_json_error(struct http_req *req, int status, const char *code,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* S3: <Error><Code/><Message/><RequestId/>extra</Error>; extra is already-
 * encoded XML (e.g. "<Key>k</Key>") or NULL. A HEAD request gets no body,
 * as S3 does. */
void services_send_s3_error(struct http_req *req, int status, const char *code,
                            const char *extra_xml, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* For an error answered before the body was read: when the client waits
 * for "100 Continue" (Expect: 100-continue) its body will never come, so
 * the connection must close rather than be drained into the next request.
 * Returns the header line to add ("Connection: close\r\n" or ""), marks the
 * body as handled and turns keep-alive off when needed. */
const char *services_body_unread(struct http_req *req);

/* Sends "100 Continue" when the client asked for it; call before reading
 * a body the handler accepts. */
void services_continue(struct http_req *req);

/* Sends an XML document (Content-Type text/xml) with status 200. */
void services_send_xml(struct http_req *req, int status, struct sbuf *body, const char *extra_headers);

#endif
