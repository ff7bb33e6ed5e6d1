/* s3parse: bucket names, XML bodies, aws-chunked, checksums (see s3parse.h). */
#include "server/s3parse.h"

#include <ctype.h>
#include <stdio.h>
#include <expat.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* --- bucket names ----------------------------------------------------------- */

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t l = strlen(suffix);
    return n >= l && !memcmp(s + n - l, suffix, l);
}

bool s3_bucket_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return false;
        if (c == '.' && i > 0 && name[i - 1] == '.')
            return false;
    }
    if (!isalnum((unsigned char)name[0]) || !isalnum((unsigned char)name[n - 1]))
        return false;
    if (!strncmp(name, "xn--", 4) || !strncmp(name, "sthree-", 7) || !strncmp(name, "amzn-s3-demo-", 13))
        return false;
    if (ends_with(name, n, "-s3alias") || ends_with(name, n, "--ol-s3") || ends_with(name, n, ".mrap") ||
        ends_with(name, n, "--x-s3") || ends_with(name, n, "--table-s3"))
        return false;
    /* Not formatted as an IPv4 address (four dot-separated numbers). */
    int dots = 0;
    bool digits_only = true;
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '.')
            dots++;
        else if (!isdigit((unsigned char)name[i]))
            digits_only = false;
    }
    return !(digits_only && dots == 3);
}

/* --- XML ---------------------------------------------------------------------- */

#define XML_TEXT_MAX 4096

struct xml_state {
    XML_Parser p;
    const char *root, *item_name;
    int max_items;
    int depth;      /* current element depth (root = 1) */
    int item;       /* index of the current item, -1 outside one */
    int n_items;
    bool in_item;   /* depth 2 element is an item */
    int leaf_depth; /* depth of the element whose text is collected, 0 = none */
    char name[128];
    char text[XML_TEXT_MAX + 1];
    size_t text_len;
    int rc;
    s3_xml_cb cb;
    void *ud;
};

static void xml_fail(struct xml_state *s, int rc)
{
    if (!s->rc)
        s->rc = rc;
    XML_StopParser(s->p, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xml_state *s = ud;
    (void)attrs;
    if (s->rc)
        return;
    s->depth++;
    if (s->depth == 1) {
        if (strcmp(name, s->root))
            xml_fail(s, -1);
        return;
    }
    if (s->depth == 2 && s->item_name && !strcmp(name, s->item_name)) {
        if (s->n_items == s->max_items) {
            xml_fail(s, -2);
            return;
        }
        s->in_item = true;
        s->item = s->n_items++;
        int r = s->cb(s->ud, s->item, NULL, NULL);
        if (r)
            xml_fail(s, r);
        return;
    }
    if (s->depth == 2 || (s->depth == 3 && s->in_item)) {
        snprintf(s->name, sizeof(s->name), "%s", name);
        s->leaf_depth = s->depth;
        s->text_len = 0;
    } else if (s->leaf_depth) {
        s->leaf_depth = 0; /* not a leaf after all: mixed content is ignored */
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct xml_state *s = ud;
    (void)name;
    if (s->rc)
        return;
    if (s->leaf_depth && s->depth == s->leaf_depth) {
        s->text[s->text_len] = 0;
        int r = s->cb(s->ud, s->leaf_depth == 3 ? s->item : -1, s->name, s->text);
        if (r)
            xml_fail(s, r);
        s->leaf_depth = 0;
    }
    if (s->depth == 2 && s->in_item) {
        s->in_item = false;
        s->item = -1;
    }
    s->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *t, int len)
{
    struct xml_state *s = ud;
    if (s->rc || !s->leaf_depth || s->depth != s->leaf_depth)
        return;
    if (s->text_len + (size_t)len > XML_TEXT_MAX) {
        xml_fail(s, -1);
        return;
    }
    memcpy(s->text + s->text_len, t, (size_t)len);
    s->text_len += (size_t)len;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    xml_fail(ud, -1); /* no DTDs: no entity expansion, no external fetches */
}

int s3_xml_parse(const char *buf, size_t len, const char *root, const char *item_name, int max_items,
                 s3_xml_cb cb, void *ud)
{
    struct xml_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->root = root;
    s->item_name = item_name;
    s->max_items = max_items;
    s->item = -1;
    s->cb = cb;
    s->ud = ud;
    s->p = XML_ParserCreate("UTF-8");
    if (!s->p) {
        free(s);
        return -1;
    }
    XML_SetUserData(s->p, s);
    XML_SetElementHandler(s->p, on_start, on_end);
    XML_SetCharacterDataHandler(s->p, on_text);
    XML_SetStartDoctypeDeclHandler(s->p, on_doctype);
    int rc = 0;
    if (len > INT32_MAX || XML_Parse(s->p, buf, (int)len, XML_TRUE) != XML_STATUS_OK || s->depth != 0)
        rc = s->rc ? s->rc : -1;
    else if (s->rc)
        rc = s->rc;
    XML_ParserFree(s->p);
    free(s);
    return rc;
}

/* --- aws-chunked ----------------------------------------------------------------- */

enum { AC_SIZE, AC_DATA, AC_DATA_CR, AC_DATA_LF, AC_TRAILER, AC_DONE, AC_ERROR };

void awschunk_init(struct awschunk *c)
{
    memset(c, 0, sizeof(*c));
    c->state = AC_SIZE;
}

bool awschunk_done(const struct awschunk *c)
{
    return c->state == AC_DONE;
}

static int ac_fail(struct awschunk *c, const char *why)
{
    c->state = AC_ERROR;
    c->error = why;
    return -1;
}

/* A complete line (without CRLF) in c->line: the chunk-size line. */
static int ac_size_line(struct awschunk *c)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < c->line_len && isxdigit((unsigned char)c->line[i]); i++) {
        if (i >= 12)
            return ac_fail(c, "chunk size too large");
        int d = isdigit((unsigned char)c->line[i]) ? c->line[i] - '0' : (tolower((unsigned char)c->line[i]) - 'a' + 10);
        v = v * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < c->line_len && c->line[i] != ';'))
        return ac_fail(c, "invalid chunk size line");
    c->remaining = v;
    c->state = v ? AC_DATA : AC_TRAILER;
    return 0;
}

/* A trailer line; an empty one ends the body. */
static int ac_trailer_line(struct awschunk *c)
{
    if (c->line_len == 0) {
        c->state = AC_DONE;
        return 0;
    }
    char *colon = memchr(c->line, ':', c->line_len);
    if (!colon || colon == c->line)
        return ac_fail(c, "invalid trailer line");
    size_t nlen = (size_t)(colon - c->line);
    const char *v = colon + 1;
    size_t vlen = c->line_len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (nlen > 15 && nlen < sizeof(c->checksum_name) && !strncasecmp(c->line, "x-amz-checksum-", 15)) {
        if (vlen >= sizeof(c->checksum_value))
            return ac_fail(c, "checksum trailer too long");
        for (size_t i = 0; i < nlen; i++)
            c->checksum_name[i] = (char)tolower((unsigned char)c->line[i]);
        c->checksum_name[nlen] = 0;
        memcpy(c->checksum_value, v, vlen);
        c->checksum_value[vlen] = 0;
    }
    return 0;
}

int awschunk_feed(struct awschunk *c, const char *in, size_t n, int (*out)(void *ud, const char *data, size_t len),
                  void *ud)
{
    size_t i = 0;
    while (i < n) {
        switch (c->state) {
        case AC_ERROR:
            return -1;
        case AC_DONE:
            return ac_fail(c, "data after the final chunk");
        case AC_SIZE:
        case AC_TRAILER: {
            char ch = in[i++];
            if (ch == '\n') {
                if (c->line_len == 0 || c->line[c->line_len - 1] != '\r')
                    return ac_fail(c, "line not terminated by CRLF");
                c->line_len--;
                int r = c->state == AC_SIZE ? ac_size_line(c) : ac_trailer_line(c);
                c->line_len = 0;
                if (r)
                    return r;
            } else {
                if (c->line_len == sizeof(c->line))
                    return ac_fail(c, "line too long");
                c->line[c->line_len++] = ch;
            }
            break;
        }
        case AC_DATA: {
            size_t take = n - i < c->remaining ? n - i : (size_t)c->remaining;
            int r = out(ud, in + i, take);
            if (r)
                return r;
            i += take;
            c->remaining -= take;
            c->decoded += take;
            if (!c->remaining)
                c->state = AC_DATA_CR;
            break;
        }
        case AC_DATA_CR:
            if (in[i++] != '\r')
                return ac_fail(c, "chunk data not followed by CRLF");
            c->state = AC_DATA_LF;
            break;
        case AC_DATA_LF:
            if (in[i++] != '\n')
                return ac_fail(c, "chunk data not followed by CRLF");
            c->state = AC_SIZE;
            break;
        }
    }
    return c->state == AC_ERROR ? -1 : 0;
}

/* --- checksums ----------------------------------------------------------------------- */

static uint32_t g_crc32c_table[256];
static uint64_t g_crc64_table[256];
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;

static void make_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        uint64_t d = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            d = d & 1 ? (d >> 1) ^ 0x9A6C9329AC4BC9B5ull : d >> 1;
        }
        g_crc32c_table[i] = c;
        g_crc64_table[i] = d;
    }
}

static const char *const g_ck_names[] = {"", "crc32", "crc32c", "crc64nvme", "sha1", "sha256"};

enum s3_cksum_alg s3_cksum_alg_of(const char *h)
{
    if (!h || strncasecmp(h, "x-amz-checksum-", 15))
        return S3_CK_NONE;
    for (int a = S3_CK_CRC32; a <= S3_CK_SHA256; a++)
        if (!strcasecmp(h + 15, g_ck_names[a]))
            return (enum s3_cksum_alg)a;
    return S3_CK_NONE;
}

const char *s3_cksum_name(enum s3_cksum_alg alg)
{
    return g_ck_names[alg];
}

int s3_cksum_init(struct s3_cksum *c, enum s3_cksum_alg alg)
{
    pthread_once(&g_tables_once, make_tables);
    memset(c, 0, sizeof(*c));
    c->alg = alg;
    switch (alg) {
    case S3_CK_CRC32:
        c->crc = crc32(0, NULL, 0);
        break;
    case S3_CK_CRC32C:
        c->crc = 0xFFFFFFFFu;
        break;
    case S3_CK_CRC64NVME:
        c->crc = ~0ull;
        break;
    case S3_CK_SHA1:
    case S3_CK_SHA256:
        c->md = EVP_MD_CTX_new();
        if (!c->md || !EVP_DigestInit_ex(c->md, alg == S3_CK_SHA1 ? EVP_sha1() : EVP_sha256(), NULL)) {
            EVP_MD_CTX_free(c->md);
            c->md = NULL;
            return -1;
        }
        break;
    case S3_CK_NONE:
        break;
    }
    return 0;
}

void s3_cksum_update(struct s3_cksum *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    switch (c->alg) {
    case S3_CK_CRC32:
        while (len) {
            uInt take = len > (1u << 30) ? (1u << 30) : (uInt)len;
            c->crc = crc32((uLong)c->crc, p, take);
            p += take;
            len -= take;
        }
        break;
    case S3_CK_CRC32C: {
        uint32_t crc = (uint32_t)c->crc;
        for (size_t i = 0; i < len; i++)
            crc = g_crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
        c->crc = crc;
        break;
    }
    case S3_CK_CRC64NVME: {
        uint64_t crc = c->crc;
        for (size_t i = 0; i < len; i++)
            crc = g_crc64_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
        c->crc = crc;
        break;
    }
    case S3_CK_SHA1:
    case S3_CK_SHA256:
        if (c->md)
            EVP_DigestUpdate(c->md, data, len);
        break;
    case S3_CK_NONE:
        break;
    }
}

void s3_cksum_final(struct s3_cksum *c, char out[64])
{
    unsigned char raw[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    switch (c->alg) {
    case S3_CK_CRC32:
    case S3_CK_CRC32C: {
        uint32_t v = c->alg == S3_CK_CRC32C ? ~(uint32_t)c->crc : (uint32_t)c->crc;
        for (int i = 0; i < 4; i++)
            raw[i] = (unsigned char)(v >> (24 - 8 * i));
        n = 4;
        break;
    }
    case S3_CK_CRC64NVME: {
        uint64_t v = ~c->crc;
        for (int i = 0; i < 8; i++)
            raw[i] = (unsigned char)(v >> (56 - 8 * i));
        n = 8;
        break;
    }
    case S3_CK_SHA1:
    case S3_CK_SHA256:
        if (!c->md || !EVP_DigestFinal_ex(c->md, raw, &n))
            n = 0;
        break;
    case S3_CK_NONE:
        break;
    }
    EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
    s3_cksum_free(c);
}

void s3_cksum_free(struct s3_cksum *c)
{
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}
