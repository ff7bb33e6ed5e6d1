/* s3parse: the parsers S3 needs for hostile input, free of I/O so they can
 * be unit-tested and fuzzed: bucket-name rules, the small XML request
 * bodies (CompleteMultipartUpload, Delete, CreateBucketConfiguration,
 * VersioningConfiguration), the aws-chunked content encoding the AWS CLI
 * v2 and newer SDKs upload with, and the checksums (CRC32, CRC32C,
 * CRC64NVME, SHA-1, SHA-256) its trailers carry.
 *
 * DESIGN: XML goes through expat (no recursion, DTDs refused so no entity
 * expansion) into a flat callback per leaf element, at most three levels
 * deep (Root/Leaf or Root/Item/Leaf); anything else is ignored. The
 * aws-chunked decoder is an incremental state machine fed with whatever
 * the socket delivered, so a body of any size streams through a fixed
 * amount of memory; its result does not depend on how the input is split.
 *
 * Thread rules: pure functions and caller-owned state; any thread. */
#ifndef LAMBDAD_SERVER_S3PARSE_H
#define LAMBDAD_SERVER_S3PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* AWS's general-purpose bucket naming rules: 3-63 characters of a-z, 0-9,
 * '.', '-'; starting and ending with a letter or digit; no "..", no IPv4
 * address form; none of the reserved prefixes/suffixes. */
bool s3_bucket_name_valid(const char *name);

/* Called for each leaf element: item is -1 for Root/Leaf, else the index
 * of the enclosing Root/<item> element (0, 1, ...); name NULL and text NULL
 * announce the start of item number `item`. Returns 0 to go on, non-zero
 * to stop (s3_xml_parse then returns that value). */
typedef int (*s3_xml_cb)(void *ud, int item, const char *name, const char *text);

/* Parses an XML body whose root element must be root, reporting the
 * children of root and of its item_name children. Text longer than 4096
 * bytes, a DTD, a wrong root or XML that does not parse give -1
 * (MalformedXML); more than max_items items give -2. */
int s3_xml_parse(const char *buf, size_t len, const char *root, const char *item_name, int max_items,
                 s3_xml_cb cb, void *ud);

/* --- aws-chunked --------------------------------------------------------- */

#define AWSCHUNK_LINE_MAX 4096

struct awschunk {
    int state;
    uint64_t remaining;      /* bytes left in the current chunk */
    uint64_t decoded;        /* payload bytes produced so far */
    size_t line_len;
    char line[AWSCHUNK_LINE_MAX];
    char checksum_name[40];  /* trailer "x-amz-checksum-<alg>" seen, or "" */
    char checksum_value[96];
    const char *error;       /* sticky: what was wrong with the framing */
};

void awschunk_init(struct awschunk *c);

/* Decodes n more raw bytes, handing payload bytes to out (which returns 0,
 * or non-zero to stop: that value is returned). Returns 0, or -1 on a
 * framing error (c->error says which; sticky). */
int awschunk_feed(struct awschunk *c, const char *in, size_t n,
                  int (*out)(void *ud, const char *data, size_t len), void *ud);

/* Whether the final chunk and the trailers were read completely. */
bool awschunk_done(const struct awschunk *c);

/* --- checksums -------------------------------------------------------------- */

enum s3_cksum_alg { S3_CK_NONE, S3_CK_CRC32, S3_CK_CRC32C, S3_CK_CRC64NVME, S3_CK_SHA1, S3_CK_SHA256 };

struct s3_cksum {
    enum s3_cksum_alg alg;
    uint64_t crc;
    void *md; /* EVP_MD_CTX for SHA-1/SHA-256 */
};

/* The algorithm of a header/trailer name such as "x-amz-checksum-crc32"
 * (case-insensitive), or S3_CK_NONE. */
enum s3_cksum_alg s3_cksum_alg_of(const char *header_name);

/* Lower-case header suffix of an algorithm ("crc32", ...). */
const char *s3_cksum_name(enum s3_cksum_alg alg);

int s3_cksum_init(struct s3_cksum *c, enum s3_cksum_alg alg);
void s3_cksum_update(struct s3_cksum *c, const void *data, size_t len);
/* Writes the base64 of the digest (as the x-amz-checksum-* headers carry
 * it) into out and frees the state. */
void s3_cksum_final(struct s3_cksum *c, char out[64]);
void s3_cksum_free(struct s3_cksum *c);

#endif
