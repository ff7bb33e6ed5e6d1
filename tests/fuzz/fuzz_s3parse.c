/* libFuzzer target for server/s3parse (XML request bodies, aws-chunked,
 * bucket names, checksums) and the query-protocol form parser
 * (services.c form_parse).
 *
 * Input: one control byte, then the data. Control & 3 picks the parser:
 *   0  s3_xml_parse with each of the roots S3 accepts; every reported leaf
 *      must be NUL-terminated, at most 4096 bytes, item indexes increasing
 *      by one from 0, at most max_items items.
 *   1  awschunk: the data is decoded whole and again in pieces of pseudo-
 *      random size (seeded by the control byte, down to one byte); both
 *      passes must give the same payload bytes, the same done/error state
 *      and the same checksum trailer, and an error must be sticky.
 *   2  form_parse: every pair decodes to C strings without embedded NULs
 *      (refused otherwise), and a parse followed by form_get finds the
 *      first name again.
 *   3  s3_bucket_name_valid and the five checksums over the data.
 * Violations trap.
 *
 * The parser source is compiled into this target so libFuzzer's coverage
 * instrumentation applies to it (form_parse comes from the library). */
#include "../../server/s3parse.c"

#include <stdint.h>
#include <string.h>

#include "server/services.h"

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

struct xml_check {
    int last_item;
    int items;
};

static int xml_cb(void *ud, int item, const char *name, const char *text)
{
    struct xml_check *c = ud;
    if (!name) {
        if (text || item != c->last_item + 1)
            __builtin_trap();
        c->last_item = item;
        c->items++;
        return 0;
    }
    if (!text || strlen(text) > 4096 || (item >= 0 && item != c->last_item))
        __builtin_trap();
    return 0;
}

static void fuzz_xml(const uint8_t *d, size_t n)
{
    static const char *const roots[][2] = {{"CompleteMultipartUpload", "Part"}, {"Delete", "Object"},
                                           {"CreateBucketConfiguration", NULL}, {"VersioningConfiguration", NULL}};
    for (size_t i = 0; i < 4; i++) {
        struct xml_check c = {-1, 0};
        int rc = s3_xml_parse((const char *)d, n, roots[i][0], roots[i][1], 100, xml_cb, &c);
        if (rc != 0 && rc != -1 && rc != -2)
            __builtin_trap();
        if (c.items > 100)
            __builtin_trap();
    }
}

struct sink {
    uint64_t hash;
    size_t len;
};

static int sink_out(void *ud, const char *data, size_t len)
{
    struct sink *s = ud;
    for (size_t i = 0; i < len; i++)
        s->hash = (s->hash ^ (uint8_t)data[i]) * 1099511628211ull;
    s->len += len;
    return 0;
}

static void fuzz_chunked(uint8_t ctl, const uint8_t *d, size_t n)
{
    static struct awschunk a, b;
    struct sink sa = {1469598103934665603ull, 0}, sb = sa;
    awschunk_init(&a);
    awschunk_init(&b);
    int ra = awschunk_feed(&a, (const char *)d, n, sink_out, &sa);
    uint32_t seed = ctl * 2654435761u + 1;
    int rb = 0;
    for (size_t i = 0; i < n;) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 97;
        if (piece > n - i)
            piece = n - i;
        rb = awschunk_feed(&b, (const char *)d + i, piece, sink_out, &sb);
        if (rb)
            break;
        i += piece;
    }
    if ((ra != 0) != (rb != 0) || sa.len != sb.len || sa.hash != sb.hash || a.decoded != sa.len)
        __builtin_trap();
    if (awschunk_done(&a) != awschunk_done(&b) || strcmp(a.checksum_name, b.checksum_name) ||
        strcmp(a.checksum_value, b.checksum_value))
        __builtin_trap();
    if (ra && (awschunk_feed(&a, "0\r\n\r\n", 5, sink_out, &sa) != -1 || !a.error))
        __builtin_trap();
}

static void fuzz_form(const uint8_t *d, size_t n)
{
    struct form f = {0};
    int rc = form_parse((const char *)d, n, &f);
    if (rc == 0) {
        for (size_t i = 0; i < f.n; i++) {
            if (!f.names[i] || !f.values[i])
                __builtin_trap();
            const char *v = form_get(&f, f.names[i]);
            if (!v)
                __builtin_trap();
        }
    } else if (f.n != 0) {
        __builtin_trap();
    }
    form_free(&f);
}

static void fuzz_misc(const uint8_t *d, size_t n)
{
    char name[80];
    size_t l = n < sizeof(name) - 1 ? n : sizeof(name) - 1;
    memcpy(name, d, l);
    name[l] = 0;
    if (s3_bucket_name_valid(name) && (strlen(name) < 3 || strlen(name) > 63))
        __builtin_trap();
    for (int a = S3_CK_CRC32; a <= S3_CK_SHA256; a++) {
        struct s3_cksum c;
        char out[64];
        if (s3_cksum_init(&c, (enum s3_cksum_alg)a))
            continue;
        s3_cksum_update(&c, d, n);
        s3_cksum_final(&c, out);
        if (strlen(out) >= 64)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    switch (ctl & 3) {
    case 0:
        fuzz_xml(data, size);
        break;
    case 1:
        fuzz_chunked(ctl, data, size);
        break;
    case 2:
        fuzz_form(data, size);
        break;
    default:
        fuzz_misc(data, size);
        break;
    }
    return 0;
}
