/* Unit tests for runtime/httpparse: framing (Content-Length, chunked with
 * extensions and trailers), splits down to one byte, limits, pipelining,
 * keep-alive rules, malformed input, reuse; plus a parse-time figure for the
 * Runtime API hot path (printed, not asserted). */
#include "runtime/httpparse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testing.h"

#define MIB (1024 * 1024)

/* Splits: 0 = whole buffer, n > 0 = pieces of n bytes, SPLIT_RANDOM =
 * random piece sizes from a seeded generator. */
#define SPLIT_RANDOM (-1)

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

/* Feeds data in pieces until done, an error, or the data runs out. Returns
 * the bytes consumed or the negative error; *done as from the parser.
 * Checks the contract that every byte is consumed until done. */
static long feed_split(struct http_parser *p, const char *data, size_t len, int split, bool *done)
{
    size_t off = 0;
    *done = false;
    while (off < len && !*done) {
        size_t piece = len - off;
        if (split > 0 && (size_t)split < piece)
            piece = (size_t)split;
        else if (split == SPLIT_RANDOM)
            piece = 1 + rng() % piece;
        long n = httpparse_feed(p, data + off, piece, done);
        if (n < 0)
            return n;
        CHECK((size_t)n <= piece);
        if (!*done)
            CHECK((size_t)n == piece);
        off += (size_t)n;
    }
    return (long)off;
}

static long feed_str(struct http_parser *p, const char *s, int split, bool *done)
{
    return feed_split(p, s, strlen(s), split, done);
}

/* Parses s with a fresh parser and returns the error / consumed count. */
static long parse_once(const char *s, size_t max_hdr, size_t max_body, bool *done)
{
    struct http_parser *p = httpparse_new(max_hdr, max_body);
    long n = feed_str(p, s, 0, done);
    httpparse_free(p);
    return n;
}

static const char GET_NEXT[] = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
                               "Host: 127.0.0.1:9001\r\n"
                               "User-Agent: aws-lambda-python/3.12 awslambdaric/2.2\r\n"
                               "Accept: */*\r\n"
                               "\r\n";

static const char POST_RESPONSE[] =
    "POST /2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response HTTP/1.1\r\n"
    "Host: 127.0.0.1:9001\r\n"
    "User-Agent: aws-lambda-python/3.12 awslambdaric/2.2\r\n"
    "Accept: */*\r\n"
    "Content-Type: application/json\r\n"
    "Lambda-Runtime-Function-Response-Mode: buffered\r\n"
    "Content-Length: 20\r\n"
    "\r\n"
    "{\"statusCode\": 200}\n";

static void test_simple_get(void)
{
    struct http_parser *p = httpparse_new(64 * 1024, 1024);
    bool done;
    long n = httpparse_feed(p, GET_NEXT, strlen(GET_NEXT), &done);
    CHECK(n == (long)strlen(GET_NEXT));
    CHECK(done);
    const struct http_req *r = httpparse_request(p);
    CHECK_STR(r->method, "GET");
    CHECK_STR(r->path, "/2018-06-01/runtime/invocation/next");
    CHECK(r->n_hdrs == 3);
    CHECK_STR(r->hdrs[0].name, "Host");
    CHECK_STR(r->hdrs[0].value, "127.0.0.1:9001");
    CHECK_STR(r->hdrs[2].name, "Accept");
    CHECK_STR(r->hdrs[2].value, "*/*");
    CHECK(r->body != NULL && r->body[0] == '\0' && r->body_len == 0);
    CHECK(r->keep_alive);
    CHECK(!r->chunked && !r->body_too_large);

    /* Feeding after done consumes nothing and still reports done. */
    n = httpparse_feed(p, "GET", 3, &done);
    CHECK(n == 0 && done);
    httpparse_free(p);
}

static void check_post_response(struct http_parser *p)
{
    const struct http_req *r = httpparse_request(p);
    CHECK_STR(r->method, "POST");
    CHECK_STR(r->path, "/2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response");
    CHECK(r->body_len == 20);
    CHECK_STR(r->body, "{\"statusCode\": 200}\n");
    CHECK(r->body[r->body_len] == '\0');
    CHECK_STR(http_req_header(r, "content-type"), "application/json");
    CHECK_STR(http_req_header(r, "CONTENT-LENGTH"), "20");
    CHECK(r->n_hdrs == 6);
    CHECK(r->keep_alive && !r->chunked && !r->body_too_large);
}

static void test_post_splits(void)
{
    struct http_parser *p = httpparse_new(64 * 1024, 1024);
    const int splits[] = {0, 1, 2, 3, 7, 64};
    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        bool done;
        long n = feed_str(p, POST_RESPONSE, splits[i], &done);
        CHECK(n == (long)strlen(POST_RESPONSE));
        CHECK(done);
        check_post_response(p);
        httpparse_reset(p);
    }
    int bad = 0;
    for (int i = 0; i < 500; i++) {
        bool done;
        long n = feed_str(p, POST_RESPONSE, SPLIT_RANDOM, &done);
        const struct http_req *r = httpparse_request(p);
        if (n != (long)strlen(POST_RESPONSE) || !done || r->body_len != 20 ||
            strcmp(r->body, "{\"statusCode\": 200}\n") != 0 || r->n_hdrs != 6)
            bad++;
        httpparse_reset(p);
    }
    CHECK(bad == 0);
    httpparse_free(p);
}

static const char CHUNKED_ONE_TRAILER_HDR[] =
    "POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
    "\r\n"
    "5;name=value\r\n"
    "hello\r\n"
    "6 ; a=b;c=\"d\"\r\n"
    " world\r\n"
    "A\r\n"
    "0123456789\r\n"
    "0\r\n"
    "Lambda-Runtime-Function-Error-Type: Error\r\n"
    "Lambda-Runtime-Function-Error-Body: eyJlcnJvclR5cGUiOiJFcnJvciJ9\r\n"
    "\r\n";

static const char CHUNKED_TWO_TRAILER_HDRS[] =
    "POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Trailer: Lambda-Runtime-Function-Error-Type\r\n"
    "Trailer: Lambda-Runtime-Function-Error-Body\r\n"
    "\r\n"
    "b;last\r\n"
    "hello world\r\n"
    "a\r\n"
    "0123456789\r\n"
    "000;ext\r\n"
    "Lambda-Runtime-Function-Error-Type: Error\r\n"
    "Lambda-Runtime-Function-Error-Body: eyJlcnJvclR5cGUiOiJFcnJvciJ9\r\n"
    "\r\n";

static void check_chunked(struct http_parser *p, size_t n_headers)
{
    const struct http_req *r = httpparse_request(p);
    CHECK(r->chunked);
    CHECK(r->body_len == 21);
    CHECK_STR(r->body, "hello world0123456789");
    CHECK(r->n_hdrs == n_headers + 2);
    if (r->n_hdrs == n_headers + 2) {
        CHECK_STR(r->hdrs[n_headers].name, "Lambda-Runtime-Function-Error-Type");
        CHECK_STR(r->hdrs[n_headers].value, "Error");
        CHECK_STR(r->hdrs[n_headers + 1].name, "Lambda-Runtime-Function-Error-Body");
    }
    CHECK_STR(http_req_header(r, "lambda-runtime-function-error-body"),
              "eyJlcnJvclR5cGUiOiJFcnJvciJ9");
    CHECK_STR(http_req_header(r, "Host"), "localhost");
    CHECK(r->keep_alive);
}

static void test_chunked_trailers(void)
{
    struct http_parser *p = httpparse_new(64 * 1024, 1024);
    const struct {
        const char *text;
        size_t n_headers;
    } cases[] = {{CHUNKED_ONE_TRAILER_HDR, 4}, {CHUNKED_TWO_TRAILER_HDRS, 4}};
    const int splits[] = {0, 1, 2, 5, 13};
    for (size_t c = 0; c < 2; c++) {
        for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
            bool done;
            long n = feed_str(p, cases[c].text, splits[i], &done);
            CHECK(n == (long)strlen(cases[c].text));
            CHECK(done);
            check_chunked(p, cases[c].n_headers);
            httpparse_reset(p);
        }
        int bad = 0;
        for (int i = 0; i < 300; i++) {
            bool done;
            long n = feed_str(p, cases[c].text, SPLIT_RANDOM, &done);
            const struct http_req *r = httpparse_request(p);
            if (n != (long)strlen(cases[c].text) || !done || r->body_len != 21 ||
                r->n_hdrs != cases[c].n_headers + 2)
                bad++;
            httpparse_reset(p);
        }
        CHECK(bad == 0);
    }

    /* No trailers, bare LF line endings everywhere, then a pipelined GET. */
    const char *bare = "POST /x HTTP/1.1\nTransfer-Encoding: CHUNKED\n\n3\nabc\n0\n\nGET /n HTTP/1.1\n\n";
    bool done;
    long n = feed_str(p, bare, 0, &done);
    CHECK(done);
    CHECK(n == (long)(strstr(bare, "GET") - bare));
    CHECK_STR(httpparse_request(p)->body, "abc");
    CHECK(httpparse_request(p)->n_hdrs == 1);
    httpparse_reset(p);
    n = feed_str(p, bare + n, 0, &done);
    CHECK(done && n == (long)strlen("GET /n HTTP/1.1\n\n"));
    CHECK_STR(httpparse_request(p)->path, "/n");

    /* An empty chunked body is an empty string, not NULL. */
    httpparse_reset(p);
    n = feed_str(p, "POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1, &done);
    CHECK(done && httpparse_request(p)->body && httpparse_request(p)->body_len == 0);
    httpparse_free(p);
}

/* Builds "POST /error" with an X-Ray cause header value of vlen bytes. */
static char *big_header_request(size_t vlen, size_t *len)
{
    const char *pre = "POST /2018-06-01/runtime/invocation/abc/error HTTP/1.1\r\n"
                      "Host: localhost\r\n"
                      "Lambda-Runtime-Function-XRay-Error-Cause: ";
    const char *post = "\r\nContent-Length: 2\r\n\r\n{}";
    size_t a = strlen(pre), b = strlen(post);
    char *s = malloc(a + vlen + b + 1);
    memcpy(s, pre, a);
    for (size_t i = 0; i < vlen; i++)
        s[a + i] = (char)('a' + i % 26);
    memcpy(s + a + vlen, post, b + 1);
    *len = a + vlen + b;
    return s;
}

static void test_big_header(void)
{
    size_t len;
    char *s = big_header_request(MIB, &len);
    struct http_parser *p = httpparse_new(MIB + 4096, 1024);
    const int splits[] = {0, 65536, 4096, 1};
    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        bool done;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long n = feed_split(p, s, len, splits[i], &done);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK(n == (long)len && done);
        const struct http_req *r = httpparse_request(p);
        const char *v = http_req_header(r, "lambda-runtime-function-xray-error-cause");
        CHECK(v && strlen(v) == MIB && v[0] == 'a' && v[MIB - 1] == (char)('a' + (MIB - 1) % 26));
        CHECK_STR(r->body, "{}");
        printf("1 MiB header line, pieces of %d: %.2f ms\n", splits[i],
               ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e6);
        httpparse_reset(p);
    }
    /* After the big request the parser is reusable for small ones. */
    bool done;
    CHECK(feed_str(p, GET_NEXT, 0, &done) == (long)strlen(GET_NEXT) && done);
    CHECK(httpparse_request(p)->n_hdrs == 3);
    httpparse_free(p);
    free(s);
}

static void test_header_overflow(void)
{
    size_t len;
    char *s = big_header_request(2000, &len);
    bool done;
    CHECK(parse_once(s, 1024, 1024, &done) == HTTPPARSE_EHEADERS);
    CHECK(parse_once(s, 4096, 1024, &done) == (long)len && done);

    /* Detected before the end of headers arrives, and sticky. */
    struct http_parser *p = httpparse_new(1024, 1024);
    CHECK(feed_split(p, s, 1500, 100, &done) == HTTPPARSE_EHEADERS);
    CHECK(httpparse_feed(p, "\r\n\r\n", 4, &done) == HTTPPARSE_EHEADERS && !done);
    httpparse_reset(p);
    CHECK(feed_str(p, GET_NEXT, 0, &done) == (long)strlen(GET_NEXT) && done);

    /* Trailers count toward the same budget. */
    httpparse_reset(p);
    size_t tl = 1200;
    char *t = malloc(tl + 128);
    int k = snprintf(t, tl + 128, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ");
    memset(t + k, 'v', tl);
    strcpy(t + k + tl, "\r\n\r\n");
    CHECK(feed_str(p, t, 7, &done) == HTTPPARSE_EHEADERS);
    httpparse_free(p);
    free(t);
    free(s);
}

static void test_body_too_large(void)
{
    struct http_parser *p = httpparse_new(4096, 10);
    char buf[512];
    int k = snprintf(buf, sizeof(buf), "POST /r HTTP/1.1\r\nContent-Length: 50\r\n\r\n%s%s",
                     "0123456789012345678901234567890123456789012345678X",
                     "GET /next HTTP/1.1\r\n\r\n");
    size_t first = (size_t)(strstr(buf, "GET") - buf);
    const int splits[] = {0, 1, 9};
    for (size_t i = 0; i < 3; i++) {
        bool done;
        long n = feed_split(p, buf, (size_t)k, splits[i], &done);
        CHECK(n == (long)first && done);
        const struct http_req *r = httpparse_request(p);
        CHECK(r->body_too_large);
        CHECK(r->body && r->body_len == 0 && r->body[0] == '\0');
        httpparse_reset(p);
        n = feed_split(p, buf + first, (size_t)k - first, splits[i], &done);
        CHECK(done && n == (long)((size_t)k - first));
        CHECK_STR(httpparse_request(p)->path, "/next");
        CHECK(!httpparse_request(p)->body_too_large);
        httpparse_reset(p);
    }

    /* Chunked: crosses the limit mid-body; the trailer still arrives. */
    const char *ch = "POST /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "6\r\n012345\r\n6\r\n678901\r\n0\r\nX-T: 1\r\n\r\nGET /n HTTP/1.1\r\n\r\n";
    bool done;
    long n = feed_str(p, ch, 1, &done);
    CHECK(done && n == (long)(strstr(ch, "GET") - ch));
    CHECK(httpparse_request(p)->body_too_large && httpparse_request(p)->body_len == 0);
    CHECK_STR(http_req_header(httpparse_request(p), "x-t"), "1");
    httpparse_reset(p);

    /* Exactly max_body is accepted. */
    n = feed_str(p, "POST /r HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 0, &done);
    CHECK(done && !httpparse_request(p)->body_too_large);
    CHECK_STR(httpparse_request(p)->body, "0123456789");
    httpparse_free(p);
}

static void test_pipelining(void)
{
    char buf[2048];
    int k = snprintf(buf, sizeof(buf), "%s%s%s", POST_RESPONSE, GET_NEXT, POST_RESPONSE);
    struct http_parser *p = httpparse_new(4096, 1024);
    const int splits[] = {0, 1, 50, SPLIT_RANDOM};
    for (size_t s = 0; s < 4; s++) {
        size_t off = 0;
        int got = 0;
        while (off < (size_t)k) {
            bool done;
            long n = feed_split(p, buf + off, (size_t)k - off, splits[s], &done);
            CHECK(n > 0 && done);
            if (n <= 0 || !done)
                break;
            const struct http_req *r = httpparse_request(p);
            if (got == 1) {
                CHECK(n == (long)strlen(GET_NEXT));
                CHECK_STR(r->method, "GET");
            } else {
                CHECK(n == (long)strlen(POST_RESPONSE));
                check_post_response(p);
            }
            got++;
            off += (size_t)n;
            httpparse_reset(p);
        }
        CHECK(got == 3);
    }
    httpparse_free(p);
}

static bool keep_alive_of(const char *s)
{
    struct http_parser *p = httpparse_new(4096, 1024);
    bool done;
    long n = feed_str(p, s, 0, &done);
    CHECK(n == (long)strlen(s) && done);
    bool ka = httpparse_request(p)->keep_alive;
    httpparse_free(p);
    return ka;
}

static void test_keep_alive(void)
{
    CHECK(keep_alive_of("GET / HTTP/1.1\r\n\r\n"));
    CHECK(!keep_alive_of("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    CHECK(!keep_alive_of("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n"));
    CHECK(!keep_alive_of("GET / HTTP/1.1\r\nConnection: te\r\nConnection: close\r\n\r\n"));
    CHECK(keep_alive_of("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n"));
    CHECK(!keep_alive_of("GET / HTTP/1.0\r\n\r\n"));
    CHECK(keep_alive_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    CHECK(keep_alive_of("GET / HTTP/1.0\r\nConnection: foo ,keep-alive\r\n\r\n"));
    CHECK(!keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.1 x\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "G@T / HTTP/1.1\r\n\r\n",
        "ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n", /* 16-char method */
        " GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost localhost\r\n\r\n",      /* missing colon */
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n",    /* space before colon */
        "GET / HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n",    /* obs-fold */
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",             /* bare CR in value */
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
        "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhi\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2x\r\nhi\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\rX\nhi\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\rX0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nNoColon\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int split = 0; split <= 1; split++) {
            struct http_parser *p = httpparse_new(4096, 1024);
            bool done;
            long n = feed_str(p, bad[i], split, &done);
            if (n != HTTPPARSE_EBAD)
                fprintf(stderr, "case %zu split %d: got %ld\n", i, split, n);
            CHECK(n == HTTPPARSE_EBAD);
            httpparse_free(p);
        }
    }
    /* NUL inside a header value (strlen-based helpers cannot carry it). */
    static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    struct http_parser *p = httpparse_new(4096, 1024);
    bool done;
    CHECK(feed_split(p, nul, sizeof(nul) - 1, 0, &done) == HTTPPARSE_EBAD);
    httpparse_free(p);

    /* Near misses that are valid. */
    static const char *const good[] = {
        "ABCDEFGHIJKLMNO / HTTP/1.1\r\n\r\n", /* 15-char method */
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nContent-Length: 005\r\n\r\nhello",
        "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n002\r\nhi\r\n0\r\n\r\n",
        "\r\n\r\nGET / HTTP/1.1\r\n\r\n", /* empty lines before the request line */
        "GET / HTTP/1.1\r\nA:\r\nB:  \t\r\nC:\tx y \t\r\n\r\n",
        "OPTIONS * HTTP/1.0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        long n = parse_once(good[i], 4096, 1024, &done);
        if (n != (long)strlen(good[i]) || !done)
            fprintf(stderr, "good case %zu: got %ld\n", i, n);
        CHECK(n == (long)strlen(good[i]) && done);
    }
}

static void test_lookup_and_values(void)
{
    struct http_parser *p = httpparse_new(4096, 1024);
    bool done;
    feed_str(p, "GET /q?a=b HTTP/1.1\r\nX-Amz-Thing:   spaced value \t\r\nEmpty:\r\n"
                "Lambda-Runtime-Aws-Request-Id: abc\r\n\r\n",
             0, &done);
    CHECK(done);
    const struct http_req *r = httpparse_request(p);
    CHECK_STR(r->path, "/q?a=b");
    CHECK_STR(http_req_header(r, "x-amz-thing"), "spaced value");
    CHECK_STR(http_req_header(r, "X-AMZ-THING"), "spaced value");
    CHECK_STR(http_req_header(r, "empty"), "");
    CHECK_STR(http_req_header(r, "lambda-RUNTIME-aws-request-ID"), "abc");
    CHECK(http_req_header(r, "x-amz") == NULL);
    CHECK(http_req_header(r, "missing") == NULL);
    CHECK(http_req_header(NULL, "x") == NULL);
    httpparse_free(p);
}

static void test_reset_reuse(void)
{
    struct http_parser *p = httpparse_new(4096, 1024);
    bool done;
    feed_str(p, POST_RESPONSE, 3, &done);
    CHECK(done);
    check_post_response(p);
    httpparse_reset(p);
    CHECK(httpparse_request(p)->n_hdrs == 0);
    /* Reset mid-request discards the partial state. */
    CHECK(httpparse_feed(p, "POST /half HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", 45, &done) == 45);
    CHECK(!done);
    httpparse_reset(p);
    feed_str(p, "GET /other HTTP/1.0\r\nX-A: 1\r\n\r\n", 0, &done);
    CHECK(done);
    const struct http_req *r = httpparse_request(p);
    CHECK_STR(r->path, "/other");
    CHECK(r->n_hdrs == 1);
    CHECK(http_req_header(r, "content-type") == NULL);
    CHECK(r->body_len == 0 && r->body[0] == '\0');
    CHECK(!r->keep_alive);
    /* Reset after an error makes the parser usable again. */
    httpparse_reset(p);
    CHECK(feed_str(p, "BAD\r\n\r\n", 0, &done) == HTTPPARSE_EBAD);
    httpparse_reset(p);
    CHECK(feed_str(p, POST_RESPONSE, 0, &done) == (long)strlen(POST_RESPONSE) && done);
    check_post_response(p);
    httpparse_free(p);
    httpparse_free(NULL);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Parses s repeatedly for about `seconds`, in batches; reports the mean and
 * the best batch (the machine is shared, so the best batch is the figure
 * least disturbed by other processes). */
static void ns_per_parse(struct http_parser *p, const char *s, double seconds, double *mean,
                         double *best)
{
    enum { BATCH = 10000 };
    size_t len = strlen(s);
    long iters = 0;
    bool ok = true;
    double start = now_s(), t = start;
    *best = 1e9;
    do {
        double t0 = t;
        for (int i = 0; i < BATCH; i++) {
            bool done;
            long n = httpparse_feed(p, s, len, &done);
            ok &= n == (long)len && done;
            httpparse_reset(p);
        }
        iters += BATCH;
        t = now_s();
        if ((t - t0) * 1e9 / BATCH < *best)
            *best = (t - t0) * 1e9 / BATCH;
    } while (t - start < seconds);
    CHECK(ok);
    *mean = (t - start) * 1e9 / (double)iters;
}

static void test_speed(void)
{
    struct http_parser *p = httpparse_new(MIB + 4096, 6 * MIB);
    double get_mean, get_best, post_mean, post_best;
    ns_per_parse(p, GET_NEXT, 0.3, &get_mean, &get_best);
    ns_per_parse(p, POST_RESPONSE, 0.3, &post_mean, &post_best);
    printf("parse+reset, whole request: GET /next (%zu bytes) %.0f ns mean, %.0f ns best batch; "
           "POST /response (%zu bytes, 20-byte body) %.0f ns mean, %.0f ns best batch\n",
           strlen(GET_NEXT), get_mean, get_best, strlen(POST_RESPONSE), post_mean, post_best);
    httpparse_free(p);
}

/* Hooks: a claimed body goes to the body hook whatever the splits, is not
 * stored nor limited by max_body; trailers still parse; an unclaimed body
 * and body-less requests are untouched. */
struct hookrec {
    int heads;
    bool claim;
    char method[16], mode[32];
    char body[4096];
    size_t len;
    bool overflow;
};

static bool head_hook(void *user, const struct http_req *req)
{
    struct hookrec *h = user;
    h->heads++;
    snprintf(h->method, sizeof(h->method), "%s", req->method);
    const char *m = http_req_header(req, "Lambda-Runtime-Function-Response-Mode");
    snprintf(h->mode, sizeof(h->mode), "%s", m ? m : "");
    return h->claim;
}

static void body_hook(void *user, const char *data, size_t len)
{
    struct hookrec *h = user;
    CHECK(len > 0);
    if (h->len + len > sizeof(h->body)) {
        h->overflow = true;
        return;
    }
    memcpy(h->body + h->len, data, len);
    h->len += len;
}

static void test_body_hooks(void)
{
    const int splits[] = {0, 1, 3, 7, SPLIT_RANDOM};
    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        struct hookrec h = {.claim = true};
        /* max_body 4: far below the body, which is not stored */
        struct http_parser *p = httpparse_new(64 * 1024, 4);
        httpparse_set_hooks(p, head_hook, body_hook, &h);
        bool done;
        long n = feed_str(p, CHUNKED_ONE_TRAILER_HDR, splits[i], &done);
        const struct http_req *r = httpparse_request(p);
        CHECK(done && n == (long)strlen(CHUNKED_ONE_TRAILER_HDR));
        CHECK(h.heads == 1 && !h.overflow);
        CHECK_STR(h.method, "POST");
        CHECK_STR(h.mode, "streaming");
        CHECK(h.len == 21 && memcmp(h.body, "hello world0123456789", 21) == 0);
        CHECK(r->body_streamed && !r->body_too_large && r->body_len == 0 && r->body && !r->body[0]);
        CHECK_STR(http_req_header(r, "Lambda-Runtime-Function-Error-Type"), "Error");
        /* Next request on the same parser: a Content-Length body, claimed. */
        httpparse_reset(p);
        h.len = 0;
        n = feed_str(p, POST_RESPONSE, splits[i], &done);
        CHECK(done && n == (long)strlen(POST_RESPONSE));
        CHECK(h.heads == 2 && h.len == 20 && memcmp(h.body, "{\"statusCode\": 200}\n", 20) == 0);
        CHECK(httpparse_request(p)->body_streamed);
        /* Not claimed: stored as usual (max_body still applies). */
        httpparse_reset(p);
        h.claim = false;
        h.len = 0;
        n = feed_str(p, POST_RESPONSE, splits[i], &done);
        CHECK(done && h.heads == 3 && h.len == 0);
        CHECK(!httpparse_request(p)->body_streamed && httpparse_request(p)->body_too_large);
        /* No body: the head hook is not asked. */
        httpparse_reset(p);
        n = feed_str(p, GET_NEXT, splits[i], &done);
        CHECK(done && h.heads == 3 && !httpparse_request(p)->body_streamed);
        httpparse_free(p);
    }
}

int main(void)
{
    test_simple_get();
    test_post_splits();
    test_chunked_trailers();
    test_big_header();
    test_header_overflow();
    test_body_too_large();
    test_pipelining();
    test_keep_alive();
    test_malformed();
    test_lookup_and_values();
    test_reset_reuse();
    test_body_hooks();
    test_speed();
    return TEST_DONE();
}
