/* httpparse: incremental HTTP/1.1 request parser for the Runtime API host.
 *
 * DESIGN: the Runtime API is served from executor event loops (epoll), one
 * non-blocking connection per runtime, so requests arrive in arbitrary
 * pieces. The parser is fed whatever bytes were read and reports when one
 * complete request (request line, headers, body by Content-Length or
 * chunked encoding including trailers) is available. Trailers are appended
 * to the header list. Header lines up to max_header_bytes in total are
 * accepted (the Runtime API needs >= 1 MiB: Lambda-Runtime-Function-XRay-
 * Error-Cause). A body larger than max_body is consumed but not stored:
 * body_too_large is set and the body is truncated to nothing, so the
 * connection stays in sync and the host can answer 413.
 *
 * Streamed bodies: a head hook sees each request once its header block is
 * parsed (before any body byte) and may claim the body; the body bytes then
 * go to the body hook as they arrive (chunk data without the framing, in
 * pieces no larger than what was fed), are not stored and not limited by
 * max_body; trailers are still parsed into the header list.
 *
 * Thread rules: a parser belongs to one connection and one thread. */
#ifndef LAMBDAD_RUNTIME_HTTPPARSE_H
#define LAMBDAD_RUNTIME_HTTPPARSE_H

#include <stdbool.h>
#include <stddef.h>

struct http_hdr {
    char *name;  /* as received */
    char *value; /* leading/trailing whitespace stripped */
};

struct http_req {
    char method[16];
    char *path;            /* raw request target, NUL-terminated */
    struct http_hdr *hdrs; /* headers then trailers */
    size_t n_hdrs;
    char *body;            /* NUL-terminated copy (body[body_len] == 0); never NULL once done */
    size_t body_len;
    bool chunked;
    bool keep_alive;       /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
    bool body_too_large;   /* body exceeded max_body and was dropped */
    bool body_streamed;    /* the body went to the body hook (httpparse_set_hooks), not here */
};

enum {
    HTTPPARSE_EBAD = -1,      /* malformed request: answer 400 and close */
    HTTPPARSE_EHEADERS = -2,  /* headers exceed max_header_bytes: answer 431 and close */
};

struct http_parser;

/* Creates a parser. Returns NULL on allocation failure. */
struct http_parser *httpparse_new(size_t max_header_bytes, size_t max_body);

/* Head hook: a request's header block is parsed and a body follows
 * (req has method, path and headers; body not yet). Returns true to
 * receive the body through the body hook instead of req->body. */
typedef bool (*httpparse_head_fn)(void *user, const struct http_req *req);
/* Body hook: len > 0 bytes of a claimed body, in order. */
typedef void (*httpparse_body_fn)(void *user, const char *data, size_t len);

/* Installs the hooks for every request this parser parses (NULL: none). */
void httpparse_set_hooks(struct http_parser *p, httpparse_head_fn head, httpparse_body_fn body, void *user);

/* Frees the parser and the request it holds. NULL-safe. */
void httpparse_free(struct http_parser *p);

/* Feeds len bytes. Returns how many bytes were consumed (>= 0) or one of the
 * negative HTTPPARSE_E* codes. Sets *done when a full request is available
 * (bytes after it are not consumed: call httpparse_reset and feed the rest).
 * Feeding after done without a reset consumes nothing. */
long httpparse_feed(struct http_parser *p, const char *buf, size_t len, bool *done);

/* The request parsed so far; complete only after feed reported done. */
const struct http_req *httpparse_request(const struct http_parser *p);

/* Looks up a header (case-insensitive name); returns its value or NULL. */
const char *http_req_header(const struct http_req *req, const char *name);

/* Forgets the current request so the next one can be parsed. */
void httpparse_reset(struct http_parser *p);

#endif
