/* Unit tests for server/s3parse.c: bucket names, XML bodies, aws-chunked
 * (split anywhere), checksums (published check values of "123456789"). */
#include <string.h>

#include "server/s3parse.h"
#include "server/svc_s3.h"
#include "testing.h"

static void test_bucket_names(void)
{
    const char *good[] = {"abc", "my-bucket", "my.bucket.name", "a1b", "123", "a-b.c-d", NULL};
    const char *bad[] = {"ab", "ABC", "-abc", "abc-", ".abc", "a..b", "a_b", "192.168.0.1", "xn--abc",
                         "sthree-x", "abc-s3alias", "abc--ol-s3", "x.mrap", "amzn-s3-demo-x", "a b", "", NULL};
    for (int i = 0; good[i]; i++)
        CHECK(s3_bucket_name_valid(good[i]));
    for (int i = 0; bad[i]; i++)
        CHECK(!s3_bucket_name_valid(bad[i]));
    char long64[65];
    memset(long64, 'a', 64);
    long64[64] = 0;
    CHECK(!s3_bucket_name_valid(long64));
    long64[63] = 0;
    CHECK(s3_bucket_name_valid(long64));
}

static void test_host_bucket(void)
{
    char b[64];
    CHECK(s3_host_bucket("bkt.s3.localhost:4566", b, sizeof(b)) && !strcmp(b, "bkt"));
    CHECK(s3_host_bucket("my.bkt.localhost", b, sizeof(b)) && !strcmp(b, "my.bkt"));
    CHECK(s3_host_bucket("bkt.s3.us-east-1.amazonaws.com", b, sizeof(b)) && !strcmp(b, "bkt"));
    CHECK(s3_host_bucket("BKT.s3.amazonaws.com", b, sizeof(b)) && !strcmp(b, "bkt"));
    CHECK(!s3_host_bucket("localhost:4566", b, sizeof(b)));
    CHECK(!s3_host_bucket("s3.localhost:4566", b, sizeof(b)));
    CHECK(!s3_host_bucket("127.0.0.1:4566", b, sizeof(b)));
    CHECK(!s3_host_bucket("[::1]:4566", b, sizeof(b)));
    CHECK(!s3_host_bucket(NULL, b, sizeof(b)));
}

struct parts {
    int items;
    char last[64];
    int numbers;
};

static int part_cb(void *ud, int item, const char *name, const char *text)
{
    struct parts *p = ud;
    if (!name) {
        p->items = item + 1;
        return 0;
    }
    if (!strcmp(name, "PartNumber"))
        p->numbers++;
    if (!strcmp(name, "ETag"))
        snprintf(p->last, sizeof(p->last), "%s", text);
    return 0;
}

static void test_xml(void)
{
    const char *ok = "<?xml version=\"1.0\"?><CompleteMultipartUpload xmlns=\"x\"><Part><PartNumber>1</PartNumber>"
                     "<ETag>&quot;a&amp;b&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>e2</ETag>"
                     "<ChecksumCRC32><Deep>x</Deep></ChecksumCRC32></Part></CompleteMultipartUpload>";
    struct parts p = {0};
    CHECK(s3_xml_parse(ok, strlen(ok), "CompleteMultipartUpload", "Part", 10, part_cb, &p) == 0);
    CHECK(p.items == 2 && p.numbers == 2 && !strcmp(p.last, "e2"));
    memset(&p, 0, sizeof(p));
    CHECK(s3_xml_parse(ok, strlen(ok), "CompleteMultipartUpload", "Part", 1, part_cb, &p) == -2);
    CHECK(s3_xml_parse(ok, strlen(ok), "Delete", "Object", 10, part_cb, &p) == -1);
    const char *bad[] = {"", "<a>", "<CompleteMultipartUpload><Part></CompleteMultipartUpload>", "text",
                         "<!DOCTYPE CompleteMultipartUpload [<!ENTITY x \"y\">]><CompleteMultipartUpload/>", NULL};
    for (int i = 0; bad[i]; i++)
        CHECK(s3_xml_parse(bad[i], strlen(bad[i]), "CompleteMultipartUpload", "Part", 10, part_cb, &p) == -1);
}

struct out {
    char buf[256];
    size_t len;
};

static int out_cb(void *ud, const char *d, size_t n)
{
    struct out *o = ud;
    if (o->len + n > sizeof(o->buf))
        return -9;
    memcpy(o->buf + o->len, d, n);
    o->len += n;
    return 0;
}

static void test_chunked(void)
{
    const char *body = "5;chunk-signature=abc\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:y/Q5Jg==\r\n\r\n";
    size_t n = strlen(body);
    for (size_t piece = 1; piece <= n; piece++) {
        struct awschunk c;
        struct out o = {.len = 0};
        awschunk_init(&c);
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i += piece)
            rc = awschunk_feed(&c, body + i, piece < n - i ? piece : n - i, out_cb, &o);
        CHECK(rc == 0 && awschunk_done(&c));
        CHECK(o.len == 11 && !memcmp(o.buf, "hello world", 11));
        CHECK(!strcmp(c.checksum_name, "x-amz-checksum-crc32") && !strcmp(c.checksum_value, "y/Q5Jg=="));
    }
    const char *broken[] = {"g\r\n", "5\nhello", "5\r\nhelloXX", "5\r\nhello\r\n0\r\n\r\nmore", "1234567890abcdef\r\n",
                            "0\r\nno-colon\r\n\r\n", NULL};
    for (int i = 0; broken[i]; i++) {
        struct awschunk c;
        struct out o = {.len = 0};
        awschunk_init(&c);
        CHECK(awschunk_feed(&c, broken[i], strlen(broken[i]), out_cb, &o) == -1 && c.error);
        CHECK(awschunk_feed(&c, "0\r\n\r\n", 5, out_cb, &o) == -1); /* sticky */
    }
    struct awschunk c;
    struct out o = {.len = 0};
    awschunk_init(&c);
    CHECK(awschunk_feed(&c, "3\r\nab", 5, out_cb, &o) == 0 && !awschunk_done(&c)); /* truncated: not done */
}

static void test_checksums(void)
{
    static const struct {
        enum s3_cksum_alg alg;
        const char *want;
    } v[] = {{S3_CK_CRC32, "y/Q5Jg=="},
             {S3_CK_CRC32C, "4waSgw=="},
             {S3_CK_CRC64NVME, "rosUhgp5mIg="},
             {S3_CK_SHA1, "98O8HYCOBHMq32eZZczDTKeuNEE="}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct s3_cksum c;
        char out[64];
        CHECK(s3_cksum_init(&c, v[i].alg) == 0);
        s3_cksum_update(&c, "1234", 4);
        s3_cksum_update(&c, "56789", 5);
        s3_cksum_final(&c, out);
        CHECK_STR(out, v[i].want);
    }
    CHECK(s3_cksum_alg_of("X-Amz-Checksum-CRC32C") == S3_CK_CRC32C);
    CHECK(s3_cksum_alg_of("x-amz-checksum-md5") == S3_CK_NONE);
    CHECK(s3_cksum_alg_of("content-type") == S3_CK_NONE);
}

int main(void)
{
    test_bucket_names();
    test_host_bucket();
    test_xml();
    test_chunked();
    test_checksums();
    return TEST_DONE();
}
