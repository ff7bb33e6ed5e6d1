/* httpparse: incremental HTTP/1.1 request parser (see httpparse.h).
 *
 * DESIGN: a small state machine fed arbitrary pieces of a byte stream.
 *
 * - Header block (and, for chunked bodies, the trailer block): bytes are
 *   copied into a growable buffer only up to the blank line that ends the
 *   block, so pipelined bytes are never swallowed. Finding that blank line
 *   is incremental: the scanner remembers whether the current line is so far
 *   empty, only "\r", or has content (p->ls), so every input byte is looked
 *   at once (memchr for '\n') however the stream is split. Once the block is
 *   complete it is parsed once, in place: names and values are NUL-terminated
 *   inside the buffer and the header array points into it. The buffer is
 *   never reallocated after that, and trailers go into a buffer of their own,
 *   so the pointers stay valid until reset.
 * - Body: Content-Length bodies are reserved once and memcpy'd; chunked
 *   bodies go through a byte-level state machine for the size lines (hex
 *   digits, extensions skipped with memchr) and memcpy for chunk data.
 *   Beyond max_body the bytes are still consumed but dropped
 *   (body_too_large), which keeps the connection in sync for a 413.
 * - Buffers (header block, trailers, body, header array) are kept across
 *   httpparse_reset so a keep-alive connection parses request after request
 *   without allocating; buffers that grew past a threshold (a 1 MiB header,
 *   a 6 MB body) are released on reset so idle connections stay small.
 *
 * Leniency, chosen for runtime clients rather than the open internet: bare
 * "\n" line endings, empty lines before the request line, and any header
 * value byte except NUL and CR (Python's http.client lets other control
 * bytes through; refusing them would make the runtime process die). Strict
 * where framing depends on it: Content-Length digits only (repeats must
 * agree), Transfer-Encoding must be exactly "chunked" and may not be combined
 * with Content-Length, chunk sizes are hex without sign, whitespace before a
 * header colon or an obs-fold line is an error.
 *
 * Allocation failure: the header block maps to HTTPPARSE_EHEADERS (close
 * the connection); the body maps to body_too_large (answer 413, stay in
 * sync). The public error set stays the documented two codes.
 *
 * Thread rules: a parser belongs to one connection and one thread. */
#include "runtime/httpparse.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    S_HEAD,           /* collecting the request line and headers */
    S_BODY_LENGTH,    /* Content-Length body, p->rem bytes left */
    S_CHUNK_SIZE,     /* hex digits of a chunk-size line */
    S_CHUNK_SIZE_LF,  /* after "\r" of a chunk-size line */
    S_CHUNK_EXT,      /* chunk extensions: skipped up to '\n' */
    S_CHUNK_DATA,     /* chunk data, p->rem bytes left */
    S_CHUNK_DATA_CR,  /* the CRLF after chunk data */
    S_CHUNK_DATA_LF,
    S_TRAILERS,       /* collecting the trailer block */
    S_DONE,
    S_ERROR,
};

/* Line state of the block scanner: what the current line holds so far. */
enum { LINE_EMPTY, LINE_CR, LINE_TEXT };

#define HTTPPARSE_CHUNK_SIZE_MAX (UINT64_C(1) << 60) /* no overflow, far beyond any max_body */
#define HTTPPARSE_CHUNK_DIGITS_MAX 32                /* leading zeros are legal but bounded */
#define HTTPPARSE_CHUNK_EXT_MAX 16384                /* bytes of extensions per chunk line */
#define HTTPPARSE_CONTENT_LENGTH_MAX (UINT64_C(1) << 60)
#define HTTPPARSE_KEEP_BYTES (64 * 1024) /* buffers above this are released on reset */
#define HTTPPARSE_KEEP_HDRS 256

struct pbuf {
    char *data;
    size_t len, cap;
};

struct http_parser {
    int state;
    int err;  /* sticky error once state == S_ERROR */
    int ls;   /* LINE_* for the block being collected */
    size_t max_header_bytes, max_body;
    uint64_t rem; /* body or chunk bytes still expected */
    unsigned chunk_digits;
    size_t ext_len;
    bool have_length, conn_close, conn_keep_alive;
    int minor; /* HTTP/1.<minor> */
    struct pbuf head, trailers, body;
    struct http_hdr *hdrs;
    size_t n_hdrs, cap_hdrs;
    struct http_req req;
    char empty[1]; /* body of body-less requests: always "" */
    httpparse_head_fn head_fn; /* hooks (httpparse_set_hooks) */
    httpparse_body_fn body_fn;
    void *hook_user;
};

/* RFC 9110 tchar: the bytes allowed in a method and a header name. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,  ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,  ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,  ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,  ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1,  ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,  ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,  ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Makes room for extra more bytes (plus nothing else); doubling growth so a
 * byte-at-a-time feed costs amortised O(1). Returns 0 or -1. */
static int pbuf_reserve(struct pbuf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Empties a buffer, releasing it if it grew large. */
static void pbuf_clear(struct pbuf *b)
{
    b->len = 0;
    if (b->cap > HTTPPARSE_KEEP_BYTES) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

struct http_parser *httpparse_new(size_t max_header_bytes, size_t max_body)
{
    struct http_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->max_header_bytes = max_header_bytes;
    p->max_body = max_body;
    httpparse_reset(p);
    return p;
}

void httpparse_set_hooks(struct http_parser *p, httpparse_head_fn head, httpparse_body_fn body, void *user)
{
    p->head_fn = head;
    p->body_fn = body;
    p->hook_user = user;
}

void httpparse_free(struct http_parser *p)
{
    if (!p)
        return;
    free(p->head.data);
    free(p->trailers.data);
    free(p->body.data);
    free(p->hdrs);
    free(p);
}

void httpparse_reset(struct http_parser *p)
{
    p->state = S_HEAD;
    p->err = 0;
    p->ls = LINE_EMPTY;
    p->rem = 0;
    p->chunk_digits = 0;
    p->ext_len = 0;
    p->have_length = p->conn_close = p->conn_keep_alive = false;
    p->minor = 1;
    pbuf_clear(&p->head);
    pbuf_clear(&p->trailers);
    pbuf_clear(&p->body);
    p->n_hdrs = 0;
    if (p->cap_hdrs > HTTPPARSE_KEEP_HDRS) {
        free(p->hdrs);
        p->hdrs = NULL;
        p->cap_hdrs = 0;
    }
    memset(&p->req, 0, sizeof(p->req));
    p->empty[0] = '\0';
}

const struct http_req *httpparse_request(const struct http_parser *p)
{
    return &p->req;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->n_hdrs; i++) {
        if (strcasecmp(req->hdrs[i].name, name) == 0)
            return req->hdrs[i].value;
    }
    return NULL;
}

/* Collects one block of lines ending with an empty line into b, without
 * going past it. Returns the bytes consumed (*complete says whether the
 * block ended) or HTTPPARSE_EHEADERS when the header and trailer bytes
 * together would exceed max_header_bytes. Empty lines before a request line
 * are skipped (RFC 9112 2.2), not stored. */
static long collect_block(struct http_parser *p, struct pbuf *b, const char *buf, size_t len,
                          bool *complete)
{
    size_t start = 0;
    if (b == &p->head && b->len == 0 && p->ls == LINE_EMPTY) {
        while (start < len && (buf[start] == '\r' || buf[start] == '\n'))
            start++;
    }
    size_t pos = start, end = len;
    *complete = false;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t seg = (nl ? (size_t)(nl - buf) : len) - pos;
        int ls = p->ls;
        if (seg == 1 && ls == LINE_EMPTY && buf[pos] == '\r')
            ls = LINE_CR;
        else if (seg > 0)
            ls = LINE_TEXT;
        if (!nl) {
            p->ls = ls;
            break;
        }
        pos = (size_t)(nl - buf) + 1;
        p->ls = LINE_EMPTY;
        if (ls != LINE_TEXT) {
            *complete = true;
            end = pos;
            break;
        }
    }
    size_t take = end - start;
    size_t used = p->head.len + p->trailers.len;
    if (take > p->max_header_bytes || used > p->max_header_bytes - take)
        return HTTPPARSE_EHEADERS;
    if (take > 0) { /* data may still be NULL when only blank lines were skipped */
        if (pbuf_reserve(b, take) < 0)
            return HTTPPARSE_EHEADERS;
        memcpy(b->data + b->len, buf + start, take);
        b->len += take;
    }
    return (long)end;
}

/* Parses a Content-Length value: one number, or a list of equal numbers
 * ("5, 5", which RFC 9110 8.6 lets a recipient accept). */
static int parse_content_length(const char *v, uint64_t *out)
{
    bool any = false;
    uint64_t first = 0;
    for (;;) {
        while (is_ows(*v))
            v++;
        if (*v < '0' || *v > '9')
            return HTTPPARSE_EBAD;
        uint64_t n = 0;
        while (*v >= '0' && *v <= '9') {
            n = n * 10 + (uint64_t)(*v++ - '0');
            if (n > HTTPPARSE_CONTENT_LENGTH_MAX)
                return HTTPPARSE_EBAD;
        }
        if (any && n != first)
            return HTTPPARSE_EBAD;
        first = n;
        any = true;
        while (is_ows(*v))
            v++;
        if (*v == '\0')
            break;
        if (*v++ != ',')
            return HTTPPARSE_EBAD;
    }
    *out = first;
    return 0;
}

/* Records the "close" / "keep-alive" tokens of a Connection value. */
static void parse_connection(struct http_parser *p, const char *v)
{
    while (*v) {
        while (is_ows(*v) || *v == ',')
            v++;
        const char *t = v;
        while (*v && *v != ',')
            v++;
        const char *e = v;
        while (e > t && is_ows(e[-1]))
            e--;
        size_t n = (size_t)(e - t);
        if (n == 5 && strncasecmp(t, "close", 5) == 0)
            p->conn_close = true;
        else if (n == 10 && strncasecmp(t, "keep-alive", 10) == 0)
            p->conn_keep_alive = true;
    }
}

/* Applies the headers that decide framing and persistence. */
static int interpret_header(struct http_parser *p, const char *name, size_t name_len,
                            const char *value)
{
    if (name_len == 14 && strncasecmp(name, "content-length", 14) == 0) {
        uint64_t n;
        if (parse_content_length(value, &n) < 0 || (p->have_length && n != p->rem) ||
            p->req.chunked)
            return HTTPPARSE_EBAD;
        p->have_length = true;
        p->rem = n;
    } else if (name_len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
        /* Only "chunked" is supported; anything else cannot be framed. */
        if (strcasecmp(value, "chunked") != 0 || p->req.chunked || p->have_length)
            return HTTPPARSE_EBAD;
        p->req.chunked = true;
    } else if (name_len == 10 && strncasecmp(name, "connection", 10) == 0) {
        parse_connection(p, value);
    }
    return 0;
}

/* Parses one "name: value" line [line, le) in place and appends it. */
static int parse_field(struct http_parser *p, char *line, char *le, bool trailer)
{
    char *colon = memchr(line, ':', (size_t)(le - line));
    if (!colon || colon == line)
        return HTTPPARSE_EBAD;
    for (const char *c = line; c < colon; c++) {
        if (!tchar[(unsigned char)*c])
            return HTTPPARSE_EBAD;
    }
    char *v = colon + 1, *ve = le;
    while (v < ve && is_ows(*v))
        v++;
    while (ve > v && is_ows(ve[-1]))
        ve--;
    size_t vlen = (size_t)(ve - v);
    if (memchr(v, '\r', vlen) || memchr(v, '\0', vlen))
        return HTTPPARSE_EBAD;
    *colon = '\0';
    *ve = '\0';
    if (p->n_hdrs == p->cap_hdrs) {
        size_t cap = p->cap_hdrs ? p->cap_hdrs * 2 : 16;
        struct http_hdr *h = realloc(p->hdrs, cap * sizeof(*h));
        if (!h)
            return HTTPPARSE_EHEADERS;
        p->hdrs = h;
        p->cap_hdrs = cap;
    }
    p->hdrs[p->n_hdrs].name = line;
    p->hdrs[p->n_hdrs].value = v;
    p->n_hdrs++;
    return trailer ? 0 : interpret_header(p, line, (size_t)(colon - line), v);
}

/* Parses the fields of a complete block starting at line, up to its empty
 * line. Every line of the block ends with '\n'. */
static int parse_fields(struct http_parser *p, char *line, char *end, bool trailer)
{
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *le = nl;
        if (le > line && le[-1] == '\r')
            le--;
        if (le == line)
            break;
        int rc = parse_field(p, line, le, trailer);
        if (rc < 0)
            return rc;
        line = nl + 1;
    }
    return 0;
}

/* Parses the complete header block in p->head: "METHOD SP target SP
 * HTTP/1.x", then the header fields. */
static int parse_head(struct http_parser *p)
{
    char *s = p->head.data, *end = s + p->head.len;
    char *nl = memchr(s, '\n', p->head.len);
    char *le = nl;
    if (le > s && le[-1] == '\r')
        le--;
    char *sp = s;
    while (sp < le && tchar[(unsigned char)*sp])
        sp++;
    size_t mlen = (size_t)(sp - s);
    if (mlen == 0 || mlen >= sizeof(p->req.method) || sp == le || *sp != ' ')
        return HTTPPARSE_EBAD;
    char *t = sp + 1, *te = t;
    while (te < le && (unsigned char)*te > 0x20 && *te != 0x7f)
        te++;
    if (te == t || te == le || *te != ' ')
        return HTTPPARSE_EBAD;
    const char *v = te + 1;
    if (le - v != 8 || memcmp(v, "HTTP/1.", 7) != 0 || (v[7] != '0' && v[7] != '1'))
        return HTTPPARSE_EBAD;
    memcpy(p->req.method, s, mlen);
    p->req.method[mlen] = '\0';
    *te = '\0';
    p->req.path = t;
    p->minor = v[7] - '0';
    int rc = parse_fields(p, nl + 1, end, false);
    if (rc < 0)
        return rc;
    p->req.keep_alive = p->minor == 1 ? !p->conn_close : p->conn_keep_alive && !p->conn_close;
    return 0;
}

/* Appends body bytes, or drops them once the body is over max_body. */
static void body_append(struct http_parser *p, const char *data, size_t n)
{
    if (p->req.body_streamed) {
        if (n)
            p->body_fn(p->hook_user, data, n);
        return;
    }
    if (p->req.body_too_large || n == 0)
        return;
    if (n > p->max_body - p->body.len || pbuf_reserve(&p->body, n + 1) < 0) {
        p->req.body_too_large = true;
        p->body.len = 0;
        return;
    }
    memcpy(p->body.data + p->body.len, data, n);
    p->body.len += n;
}

/* Publishes the finished request: NUL-terminated body, header array. */
static void finish(struct http_parser *p)
{
    if (p->req.body_too_large)
        p->body.len = 0;
    if (p->body.data) {
        p->body.data[p->body.len] = '\0'; /* reserve always keeps one spare byte */
        p->req.body = p->body.data;
    } else {
        p->req.body = p->empty;
    }
    p->req.body_len = p->body.len;
    p->req.hdrs = p->hdrs;
    p->req.n_hdrs = p->n_hdrs;
    p->state = S_DONE;
}

/* Feeds the header block; on completion parses it and picks the body mode. */
static long feed_head(struct http_parser *p, const char *buf, size_t len)
{
    bool complete;
    long n = collect_block(p, &p->head, buf, len, &complete);
    if (n < 0 || !complete)
        return n;
    int rc = parse_head(p);
    if (rc < 0)
        return rc;
    bool has_body = p->req.chunked || (p->have_length && p->rem > 0);
    if (has_body && p->head_fn && p->body_fn) {
        p->req.hdrs = p->hdrs; /* finish() publishes them again with the trailers */
        p->req.n_hdrs = p->n_hdrs;
        p->req.body_streamed = p->head_fn(p->hook_user, &p->req);
    }
    if (p->req.chunked) {
        p->state = S_CHUNK_SIZE;
    } else if (p->have_length && p->rem > 0) {
        if (!p->req.body_streamed &&
            (p->rem > p->max_body || pbuf_reserve(&p->body, (size_t)p->rem + 1) < 0))
            p->req.body_too_large = true;
        p->state = S_BODY_LENGTH;
    } else {
        finish(p);
    }
    return n;
}

static long feed_body_length(struct http_parser *p, const char *buf, size_t len)
{
    size_t n = p->rem < len ? (size_t)p->rem : len;
    if (p->req.body_streamed) {
        p->body_fn(p->hook_user, buf, n);
    } else if (!p->req.body_too_large) {
        memcpy(p->body.data + p->body.len, buf, n); /* reserved in feed_head */
        p->body.len += n;
    }
    p->rem -= n;
    if (p->rem == 0)
        finish(p);
    return (long)n;
}

/* A chunk-size line ended: data follows, or the last chunk's trailers. */
static void chunk_line_done(struct http_parser *p)
{
    if (p->rem == 0) {
        p->state = S_TRAILERS;
        p->ls = LINE_EMPTY;
    } else {
        p->state = S_CHUNK_DATA;
    }
}

/* Runs the chunk state machine over buf until the input ends or the
 * trailers start. Returns bytes consumed or HTTPPARSE_EBAD. */
static long feed_chunked(struct http_parser *p, const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        switch (p->state) {
        case S_CHUNK_SIZE: {
            int h = hex_value(buf[i]);
            if (h >= 0) {
                if (p->rem >= HTTPPARSE_CHUNK_SIZE_MAX >> 4 ||
                    ++p->chunk_digits > HTTPPARSE_CHUNK_DIGITS_MAX)
                    return HTTPPARSE_EBAD;
                p->rem = p->rem * 16 + (uint64_t)h;
                i++;
                break;
            }
            if (p->chunk_digits == 0)
                return HTTPPARSE_EBAD;
            char c = buf[i++];
            if (c == ';' || is_ows(c)) {
                p->state = S_CHUNK_EXT;
                p->ext_len = 0;
            } else if (c == '\r') {
                p->state = S_CHUNK_SIZE_LF;
            } else if (c == '\n') {
                chunk_line_done(p);
            } else {
                return HTTPPARSE_EBAD;
            }
            break;
        }
        case S_CHUNK_EXT: {
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t n = nl ? (size_t)(nl - (buf + i)) + 1 : len - i;
            p->ext_len += n;
            if (p->ext_len > HTTPPARSE_CHUNK_EXT_MAX)
                return HTTPPARSE_EBAD;
            i += n;
            if (nl)
                chunk_line_done(p);
            break;
        }
        case S_CHUNK_SIZE_LF:
            if (buf[i++] != '\n')
                return HTTPPARSE_EBAD;
            chunk_line_done(p);
            break;
        case S_CHUNK_DATA: {
            size_t n = p->rem < len - i ? (size_t)p->rem : len - i;
            body_append(p, buf + i, n);
            p->rem -= n;
            i += n;
            if (p->rem == 0)
                p->state = S_CHUNK_DATA_CR;
            break;
        }
        case S_CHUNK_DATA_CR:
        case S_CHUNK_DATA_LF: {
            char c = buf[i++];
            if (c == '\r' && p->state == S_CHUNK_DATA_CR) {
                p->state = S_CHUNK_DATA_LF;
            } else if (c == '\n') {
                p->state = S_CHUNK_SIZE;
                p->chunk_digits = 0;
            } else {
                return HTTPPARSE_EBAD;
            }
            break;
        }
        default: /* S_TRAILERS */
            return (long)i;
        }
    }
    return (long)i;
}

/* Feeds the trailer block; on completion appends the trailers and finishes. */
static long feed_trailers(struct http_parser *p, const char *buf, size_t len)
{
    bool complete;
    long n = collect_block(p, &p->trailers, buf, len, &complete);
    if (n < 0 || !complete)
        return n;
    int rc = parse_fields(p, p->trailers.data, p->trailers.data + p->trailers.len, true);
    if (rc < 0)
        return rc;
    finish(p);
    return n;
}

long httpparse_feed(struct http_parser *p, const char *buf, size_t len, bool *done)
{
    *done = false;
    if (p->state == S_ERROR)
        return p->err;
    if (len > LONG_MAX)
        len = LONG_MAX;
    size_t off = 0;
    while (off < len && p->state != S_DONE) {
        long n;
        switch (p->state) {
        case S_HEAD:
            n = feed_head(p, buf + off, len - off);
            break;
        case S_BODY_LENGTH:
            n = feed_body_length(p, buf + off, len - off);
            break;
        case S_TRAILERS:
            n = feed_trailers(p, buf + off, len - off);
            break;
        default:
            n = feed_chunked(p, buf + off, len - off);
            break;
        }
        if (n < 0) {
            p->state = S_ERROR;
            p->err = (int)n;
            return n;
        }
        off += (size_t)n;
    }
    *done = p->state == S_DONE;
    return (long)off;
}
