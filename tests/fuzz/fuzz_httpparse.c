/* libFuzzer target for runtime/httpparse.
 *
 * Input: 4 control bytes, then a byte stream of (possibly pipelined)
 * requests. Control bytes pick max_header_bytes, max_body and the seed of
 * the piece sizes. The stream is parsed twice: fed whole, and fed in
 * pieces of pseudo-random size (down to one byte). Both passes must yield
 * the same sequence of requests (end offset + a hash of every field) up to
 * the first error, and the same error, so the state machine is checked to
 * be independent of how the socket happened to split the bytes. Every
 * finished request is checked for the documented invariants (consumed <=
 * len, NUL-terminated body of body_len bytes, body_len <= max_body, empty
 * body when body_too_large, trimmed header values without CR/LF). Errors
 * must be sticky until reset. Violations trap.
 *
 * When the low bit of the seed byte is set, both parsers get the body
 * hooks (httpparse_set_hooks) and claim the bodies of requests whose path
 * has an odd length: the claimed bytes (hashed in order, counted) must be
 * the same in both passes, and such a request must have an empty stored
 * body.
 *
 * The parser source is compiled into this target (not taken from the
 * lambdad_runtime library) so that libFuzzer's coverage instrumentation
 * applies to it; the library copy is then never linked in. */
#include "../../runtime/httpparse.c"

#include <stdint.h>
#include <string.h>

#define MAX_REQS 64

/* The fuzz build compiles UBSan checks as recoverable: make them fatal. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

struct outcome {
    size_t n;
    size_t end[MAX_REQS];
    uint64_t hash[MAX_REQS];
    long err; /* 0, or the error that stopped parsing */
};

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *s = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s, strlen(s) + 1);
}

/* What the body hook of one parser saw for the current request. */
struct sink {
    uint64_t h;
    size_t n;
    int heads;
};

static bool head_hook(void *user, const struct http_req *req)
{
    struct sink *k = user;
    k->h = 1469598103934665603ull;
    k->n = 0;
    k->heads++;
    if (!req->path || !req->method[0])
        __builtin_trap();
    return strlen(req->path) % 2 == 1;
}

static void body_hook(void *user, const char *data, size_t len)
{
    struct sink *k = user;
    if (len == 0)
        __builtin_trap();
    k->h = fnv(k->h, data, len);
    k->n += len;
}

/* Checks a finished request and returns its hash (sink: the hook state,
 * NULL without hooks). */
static uint64_t check_request(const struct http_parser *p, size_t max_body, const struct sink *sink)
{
    const struct http_req *r = httpparse_request(p);
    size_t mlen = strnlen(r->method, sizeof(r->method));
    if (mlen == 0 || mlen >= sizeof(r->method) || !r->path || !r->body)
        __builtin_trap();
    if (r->body[r->body_len] != '\0' || r->body_len > max_body)
        __builtin_trap();
    if (r->body_too_large && r->body_len != 0)
        __builtin_trap();
    if (r->n_hdrs && !r->hdrs)
        __builtin_trap();
    uint64_t h = 1469598103934665603ull;
    h = fnv_str(h, r->method);
    h = fnv_str(h, r->path);
    for (size_t i = 0; i < r->n_hdrs; i++) {
        const char *name = r->hdrs[i].name, *value = r->hdrs[i].value;
        size_t vlen = strlen(value);
        if (!name[0] || strpbrk(name, " \t\r\n:") || strpbrk(value, "\r\n"))
            __builtin_trap();
        if (vlen && (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' ||
                     value[vlen - 1] == '\t'))
            __builtin_trap();
        if (http_req_header(r, name) == NULL)
            __builtin_trap();
        h = fnv_str(h, name);
        h = fnv_str(h, value);
    }
    h = fnv(h, r->body, r->body_len + 1);
    if (r->body_streamed) {
        if (!sink || r->body_len != 0 || r->body_too_large)
            __builtin_trap();
        h = fnv(h, &sink->h, sizeof(sink->h));
        h = fnv(h, &sink->n, sizeof(sink->n));
    }
    unsigned flags = (unsigned)r->chunked | (unsigned)r->keep_alive << 1 |
                     (unsigned)r->body_too_large << 2 | (unsigned)r->body_streamed << 3;
    return fnv(h, &flags, sizeof(flags));
}

/* Records a finished request and checks that feeding more does nothing. */
static struct sink *sink_of(struct http_parser *p)
{
    return p->body_fn ? p->hook_user : NULL;
}

static void record(struct http_parser *p, struct outcome *o, size_t end, size_t max_body)
{
    if (o->n < MAX_REQS) {
        o->end[o->n] = end;
        o->hash[o->n] = check_request(p, max_body, sink_of(p));
    }
    o->n++;
    bool done;
    if (httpparse_feed(p, "X", 1, &done) != 0 || !done)
        __builtin_trap();
    httpparse_reset(p);
}

static void on_error(struct http_parser *p, struct outcome *o, long n)
{
    if (n != HTTPPARSE_EBAD && n != HTTPPARSE_EHEADERS)
        __builtin_trap();
    bool done;
    if (httpparse_feed(p, "\r\n\r\n", 4, &done) != n || done)
        __builtin_trap();
    o->err = n;
}

static void parse_whole(struct http_parser *p, const char *s, size_t len, size_t max_body,
                        struct outcome *o)
{
    size_t off = 0;
    while (off < len) {
        bool done;
        long n = httpparse_feed(p, s + off, len - off, &done);
        if (n < 0) {
            on_error(p, o, n);
            return;
        }
        if ((size_t)n > len - off || (!done && (size_t)n != len - off))
            __builtin_trap();
        off += (size_t)n;
        if (!done)
            return;
        record(p, o, off, max_body);
    }
}

static void parse_split(struct http_parser *p, const char *s, size_t len, size_t max_body,
                        uint32_t seed, size_t max_piece, struct outcome *o)
{
    size_t off = 0;
    while (off < len) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 8) % max_piece;
        if (piece > len - off)
            piece = len - off;
        size_t end = off + piece;
        /* One read from the socket may hold the end of one request and the
         * start of the next: keep feeding the rest after each reset. */
        while (off < end) {
            bool done;
            long n = httpparse_feed(p, s + off, end - off, &done);
            if (n < 0) {
                on_error(p, o, n);
                return;
            }
            if ((size_t)n > end - off || (!done && (size_t)n != end - off))
                __builtin_trap();
            off += (size_t)n;
            if (done)
                record(p, o, off, max_body);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t max_header = 16 + (size_t)data[0] * 8;        /* 16 .. 2056 */
    size_t max_body = data[1] == 255 ? 1 << 20 : data[1]; /* small limits hit the 413 path */
    uint32_t seed = data[2];
    size_t max_piece = data[3] % 4 == 0 ? 1 : 1 + data[3];
    const char *s = (const char *)data + 4;
    size_t len = size - 4;

    struct http_parser *a = httpparse_new(max_header, max_body);
    struct http_parser *b = httpparse_new(max_header, max_body);
    if (!a || !b)
        __builtin_trap();
    struct sink ka = {0}, kb = {0};
    if (seed & 1) {
        httpparse_set_hooks(a, head_hook, body_hook, &ka);
        httpparse_set_hooks(b, head_hook, body_hook, &kb);
    }
    static struct outcome whole, split;
    memset(&whole, 0, sizeof(whole));
    memset(&split, 0, sizeof(split));
    parse_whole(a, s, len, max_body, &whole);
    parse_split(b, s, len, max_body, seed, max_piece, &split);
    if (whole.n != split.n || whole.err != split.err || ka.heads != kb.heads)
        __builtin_trap();
    for (size_t i = 0; i < whole.n && i < MAX_REQS; i++) {
        if (whole.end[i] != split.end[i] || whole.hash[i] != split.hash[i])
            __builtin_trap();
    }
    httpparse_free(a);
    httpparse_free(b);
    return 0;
}
