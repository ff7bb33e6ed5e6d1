/* http: lambdad's HTTP front on civetweb: listener, routing table, and the
 * AWS request/response/error encoding every handler uses.
 *
 * DESIGN: civetweb's begin_request callback sees every request. The raw
 * path (civetweb's URL decoding is switched off) is split on '/' in place,
 * matched against one static routing table (method + segment pattern, with
 * "{}" capturing a segment), and only the captured segments are percent-
 * decoded, into a buffer inside the per-request context: routing allocates
 * nothing and parses no JSON. The region comes from the SigV4 credential
 * scope, the account from --account-id or a 12-digit access key id. Every
 * response carries x-amzn-RequestId; errors carry x-amzn-ErrorType and the
 * JSON body of lambda-reference.md §2.7. A response is written with a single
 * mg_write when it is small.
 *
 * Thread rules: a struct http_req belongs to the civetweb worker thread
 * running its handler and lives until the handler returns; handlers may
 * block (a synchronous Invoke waits for its result). Worker threads are
 * named "http-<n>" and registered with RCU (memb flavour) for their whole
 * life, so handlers may enter read-side sections directly. */
#ifndef LAMBDAD_SERVER_HTTP_H
#define LAMBDAD_SERVER_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/errors.h"

#define HTTP_MAX_PARAMS 4
#define HTTP_PATH_MAX 2048

/* Request body caps (bytes). */
#define HTTP_BODY_CAP_CODE 69905067u  /* CreateFunction / UpdateFunctionCode */
#define HTTP_BODY_CAP_INVOKE 6291456u /* Invoke / InvokeAsync */
#define HTTP_BODY_CAP_DEFAULT (1u << 20)

struct mg_connection;
struct mg_request_info;

struct http_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    const char *method;          /* "GET", "POST", ... */
    const char *op;              /* AWS operation name ("Invoke", "CreateFunction", ...) */
    size_t body_cap;             /* the operation's body limit */
    const char *params[HTTP_MAX_PARAMS]; /* decoded path parameters, in pattern order */
    int n_params;
    char region[32];             /* SigV4 scope region, default us-east-1 */
    char account[13];            /* 12 digits */
    char request_id[37];         /* uuid v4, also sent as x-amzn-RequestId */
    char *body;                  /* after http_read_body: NUL-terminated, owned by the request */
    size_t body_len;
    bool body_read;
    int status;                  /* status sent, 0 until a response was written */
    bool close_after;            /* the connection closes after this response */
    bool chunked;                /* http_begin_stream framed the body in chunks */
    char pbuf[HTTP_PATH_MAX];    /* storage behind params[] */
};

/* Handler signature: must send exactly one response (or none, in which case
 * the dispatcher answers 500 ServiceException). */
typedef void (*http_handler_fn)(struct http_req *req);

struct http_options {
    const char *host;
    int port;
    int threads;            /* civetweb threads: connections served at once */
    const char *account_id; /* default account, 12 digits */
    int keepalive_s;        /* idle keep-alive timeout; 0: close after each response */
};

/* Starts civetweb listening on host:port. Returns 0, or -1 with *err set to
 * a message for the operator (static or owned by http). Main thread. */
int http_start(const struct http_options *opts, const char **err);

/* Starts a graceful shutdown: requests arriving from now on are answered
 * 503 ServiceException; those already running go on. Any thread. */
void http_drain_begin(void);

/* Whether the graceful shutdown began (long-lived responses such as a
 * Logs live tail end themselves). Any thread. */
bool http_draining(void);

/* Number of requests currently being handled. Any thread. */
int http_inflight(void);

/* Stops accepting, waits for in-flight requests to finish, frees civetweb.
 * Main thread. */
void http_stop(void);

/* Decoded path parameter i (pattern order), or NULL. */
const char *http_param(const struct http_req *req, int i);

/* Copies the decoded value of the first query parameter called name into
 * buf. Returns its length, -1 when absent, -2 when it does not fit. */
int http_query(const struct http_req *req, const char *name, char *buf, size_t buflen);

/* Calls fn for each decoded value of a repeated query parameter (e.g.
 * tagKeys). Stops and returns fn's non-zero return value, -2 for a value
 * longer than 1023 bytes, else 0. */
int http_query_each(const struct http_req *req, const char *name,
                    int (*fn)(void *ud, const char *value), void *ud);

/* Request header value (case-insensitive name), or NULL. */
const char *http_header(const struct http_req *req, const char *name);

/* Reads the whole request body (at most req->body_cap bytes) into req->body.
 * Returns 0; or -EFBIG after answering 413 RequestEntityTooLargeException
 * (Content-Length over the cap is refused before reading anything, the body
 * is drained without being stored); or -EIO after answering 400 when the
 * client went away. Idempotent. */
int http_read_body(struct http_req *req);

/* Writes a complete response. content_type may be NULL (no header);
 * extra_headers is NULL or "Name: value\r\n" lines. */
void http_send(struct http_req *req, int status, const char *content_type,
               const char *extra_headers, const void *body, size_t len);

/* Starts a response whose body follows piece by piece (Transfer-Encoding:
 * chunked; an HTTP/1.0 client gets the raw bytes and the connection
 * closes). content_type and extra_headers as for http_send. Returns 0, or
 * -1 when the client is gone. */
int http_begin_stream(struct http_req *req, int status, const char *content_type,
                      const char *extra_headers);

/* Writes the next piece of a response begun with http_begin_stream, at
 * once (one HTTP chunk). len 0 writes nothing. Returns 0, or -1 when the
 * client is gone. */
int http_stream_write(struct http_req *req, const void *data, size_t len);

/* Ends a response begun with http_begin_stream (the last chunk). Returns 0
 * or -1. */
int http_end_stream(struct http_req *req);

/* Writes a JSON response (Content-Type: application/json). */
void http_send_json(struct http_req *req, int status, const char *json, size_t len);

/* Serialises obj (compact), sends it, and drops the caller's reference. */
void http_send_jsont(struct http_req *req, int status, json_t *obj);

/* Writes an empty response with this status (e.g. 204). */
void http_send_empty(struct http_req *req, int status);

/* Writes an AWS error: x-amzn-ErrorType header and the §2.7 JSON body. */
void http_send_error(struct http_req *req, const struct aws_error *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same with extra header lines ("Name: value\r\n") and extra JSON members
 * (already-encoded text such as "\"Reason\":\"...\"", without braces), for
 * e.g. TooManyRequestsException's Reason and Retry-After. */
void http_send_error_ex(struct http_req *req, const struct aws_error *e, const char *extra_headers,
                        const char *extra_members, const char *msg);

/* Sends an api_error (see errors.h). */
void http_send_api_error(struct http_req *req, const struct api_error *err);

/* Whether JSON text nests objects/arrays deeper than max_depth, found by a
 * linear scan that skips strings. Call it before json_loadb on any request
 * body: civetweb worker stacks are small, and jansson's recursive parser
 * overflows them at roughly 1000 levels (a crash of the whole server). */
bool http_json_too_deep(const char *text, size_t len, int max_depth);

/* Writes a fresh uuid v4 (36 chars + NUL) into out. Any thread, lock-free. */
void http_uuid4(char out[37]);

/* Decodes standard base64 (the encoding of blobs in JSON bodies and of
 * X-Amz-Client-Context) into a malloc'd, NUL-terminated buffer the caller
 * frees. Returns 0, or -1 for invalid base64 or out of memory. */
int http_base64_decode(const char *in, size_t len, unsigned char **out, size_t *outlen);

/* Percent-decodes src[0..len) into dst (dstlen bytes incl. NUL); '+' is a
 * space only when form is true. Returns the decoded length, or -1 on a bad
 * escape or when dst is too small. */
int http_pct_decode(const char *src, size_t len, char *dst, size_t dstlen, bool form);

/* --- routing, exposed for the unit tests and the admin health page --- */

struct http_route {
    const char *method;
    const char *pattern; /* "/2015-03-31/functions/{}/invocations" */
    const char *op;
    http_handler_fn handler;
    size_t body_cap;
};

/* Matches method + raw path (not decoded, no query) against the routing
 * table. On a match fills req->params/op/body_cap and returns the route;
 * returns NULL for an unknown route, and sets *bad_escape when a captured
 * segment held an invalid percent escape. The path may end with one '/'. */
const struct http_route *http_route_match(struct http_req *req, const char *method,
                                          const char *path, bool *bad_escape);

/* Parses region and account from an Authorization header (may be NULL) into
 * req, falling back to us-east-1 and default_account. */
void http_parse_identity(struct http_req *req, const char *authorization,
                         const char *default_account);

#endif
