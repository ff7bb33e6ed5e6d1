/* Unit tests for runtime/codestore: hostile archives are built here with
 * libzip's writing API (symlinks and modes through the external attributes)
 * or patched by hand, fed to codestore_put, and the store directory is
 * listed afterwards to prove that a refused archive leaves nothing behind. */
#include "runtime/codestore.h"
#include "testing.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

/* A stored zip made by Python's zipfile (fixed date): hello.txt = "hi\n".
 * Its digest was computed with `openssl dgst -sha256 -binary | base64`. */
static const unsigned char known_zip[] = {
    0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x50, 0x7a,
    0x7a, 0x6f, 0xed, 0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
    0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2e, 0x74, 0x78, 0x74, 0x68, 0x69, 0x0a, 0x50, 0x4b, 0x01,
    0x02, 0x14, 0x03, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x50, 0x7a, 0x7a,
    0x6f, 0xed, 0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa4, 0x81, 0x00, 0x00, 0x00, 0x00, 0x68, 0x65,
    0x6c, 0x6c, 0x6f, 0x2e, 0x74, 0x78, 0x74, 0x50, 0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x37, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00,
};
#define KNOWN_B64 "o5tRLRfR/b3Gq5QKrRTYpsjoaBgrUsGwoJn3LyVTnr0="
#define KNOWN_HEX "a39b512d17d1fdbdc6ab940aad14d8a6c8e868182b52c1b0a099f72f25539ebd"

enum kind { K_FILE, K_DIR, K_LINK };

struct zent {
    const char *name;
    enum kind kind;
    const char *data; /* file contents or link target */
    size_t len;       /* 0: strlen(data) */
    uint32_t mode;    /* unix permission bits; 0 = DOS attributes (no unix mode) */
};

static char base[64];   /* mkdtemp parent: an escape would land here */
static char root[128];  /* base/store */
static char codedir[160];

/* Builds an archive in memory with libzip; caller frees. */
static unsigned char *make_zip(const struct zent *e, size_t n, size_t *len)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *out = zip_source_buffer_create(NULL, 0, 0, &ze);
    zip_t *za = out ? zip_open_from_source(out, ZIP_TRUNCATE, &ze) : NULL;
    unsigned char *buf = NULL;
    if (!za)
        goto fail;
    zip_source_keep(out);
    for (size_t i = 0; i < n; i++) {
        zip_int64_t idx;
        if (e[i].kind == K_DIR) {
            idx = zip_dir_add(za, e[i].name, ZIP_FL_ENC_UTF_8);
        } else {
            size_t l = e[i].len ? e[i].len : strlen(e[i].data);
            zip_source_t *s = zip_source_buffer(za, e[i].data, l, 0);
            idx = s ? zip_file_add(za, e[i].name, s, ZIP_FL_ENC_UTF_8) : -1;
            if (idx < 0)
                zip_source_free(s);
        }
        if (idx < 0)
            goto fail;
        uint32_t mode = e[i].kind == K_DIR    ? S_IFDIR | e[i].mode
                        : e[i].kind == K_LINK ? S_IFLNK | 0777
                                              : S_IFREG | e[i].mode;
        int r = e[i].mode || e[i].kind == K_LINK
                    ? zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                                       mode << 16)
                    : zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_DOS, 0);
        if (r < 0)
            goto fail;
    }
    if (zip_close(za) < 0)
        goto fail;
    za = NULL;
    zip_stat_t st;
    if (zip_source_stat(out, &st) < 0 || zip_source_open(out) < 0)
        goto fail;
    buf = malloc(st.size);
    *len = (size_t)zip_source_read(out, buf, st.size);
    zip_source_close(out);
    zip_source_free(out);
    return buf;
fail:
    fprintf(stderr, "make_zip: %s\n", za ? zip_strerror(za) : zip_error_strerror(&ze));
    if (za)
        zip_discard(za);
    if (out)
        zip_source_free(out);
    abort();
}

static int rm_entry(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)st, (void)type, (void)f;
    return remove(p);
}

static void rm_rf(const char *p)
{
    nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Number of entries in dir (without . and ..); -1 if it cannot be read. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void check_file(const char *dir, const char *rel, const char *want, mode_t want_mode)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    char *got = slurp(p);
    CHECK_STR(got, want);
    free(got);
    /* want_mode 0: reached through a symlink, so follow it */
    CHECK((want_mode ? lstat(p, &st) : stat(p, &st)) == 0 && S_ISREG(st.st_mode));
    if (want_mode) {
        CHECK((st.st_mode & 07777) == want_mode);
        if ((st.st_mode & 07777) != want_mode)
            fprintf(stderr, "  %s mode %o, want %o\n", rel, st.st_mode & 07777, want_mode);
    }
}

/* Puts a hostile archive: must be refused with want_err and leave <root>/code
 * and the parent of the store exactly as empty as before. */
static void check_refused(struct codestore *cs, const unsigned char *zip, size_t len,
                          const char *want_err, const char *what)
{
    struct code_info info;
    const char *err = NULL;
    int r = codestore_put(cs, zip, len, &info, &err);
    CHECK(r == -EINVAL);
    CHECK(err == want_err);
    CHECK(count_entries(codedir) == 0);
    CHECK(count_entries(base) == 1); /* just "store" */
    if (r != -EINVAL || err != want_err || count_entries(codedir) != 0)
        fprintf(stderr, "  case %s: r=%d err=%s left=%d\n", what, r, err ? err : "(null)",
                count_entries(codedir));
}

static void refuse_entries(struct codestore *cs, const struct zent *e, size_t n,
                           const char *want_err, const char *what)
{
    size_t len;
    unsigned char *z = make_zip(e, n, &len);
    check_refused(cs, z, len, want_err, what);
    free(z);
}

/* Replaces every occurrence of from by to (same length) in buf. */
static int patch_all(unsigned char *buf, size_t len, const char *from, const char *to)
{
    size_t n = strlen(from);
    int hits = 0;
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, from, n) == 0) {
            memcpy(buf + i, to, n);
            hits++;
        }
    return hits;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = v & 0xff, p[1] = (v >> 8) & 0xff, p[2] = (v >> 16) & 0xff, p[3] = v >> 24;
}

static void test_known_bytes(struct codestore *cs)
{
    struct code_info info, again;
    const char *err = NULL;
    char hex[65];
    CHECK(codestore_put(cs, known_zip, sizeof(known_zip), &info, &err) == 0);
    CHECK(err == NULL);
    CHECK_STR(info.sha256_b64, KNOWN_B64);
    CHECK_STR(info.sha256_hex, KNOWN_HEX);
    CHECK(info.size == sizeof(known_zip));
    CHECK(info.unzipped == 3);
    CHECK(codestore_b64_to_hex(info.sha256_b64, hex) == 0);
    CHECK_STR(hex, KNOWN_HEX);

    char *dir = codestore_dir_path(cs, KNOWN_HEX), *zp = codestore_zip_path(cs, KNOWN_HEX);
    CHECK(dir && zp);
    if (dir)
        check_file(dir, "hello.txt", "hi\n", 0644);
    if (zp) {
        struct stat st;
        CHECK(stat(zp, &st) == 0 && st.st_size == (off_t)sizeof(known_zip));
        char *copy = slurp(zp);
        CHECK(copy && memcmp(copy, known_zip, sizeof(known_zip)) == 0);
        free(copy);
    }
    /* Idempotent: same answer, same single copy, no leftovers. */
    CHECK(codestore_put(cs, known_zip, sizeof(known_zip), &again, &err) == 0);
    CHECK(memcmp(&info, &again, sizeof(info)) == 0);
    CHECK(count_entries(codedir) == 2);
    CHECK(codestore_remove(cs, KNOWN_HEX) == 0);
    CHECK(codestore_remove(cs, KNOWN_HEX) == -ENOENT);
    CHECK(codestore_dir_path(cs, KNOWN_HEX) == NULL);
    CHECK(codestore_zip_path(cs, KNOWN_HEX) == NULL);
    CHECK(count_entries(codedir) == 0);
    free(dir);
    free(zp);
}

/* A pinned directory (a spec of a running environment) survives a removal
 * until the last unpin; storing the bytes again cancels the removal. */
static void test_pins(struct codestore *cs)
{
    struct code_info info;
    const char *err = NULL;
    CHECK(codestore_put(cs, known_zip, sizeof(known_zip), &info, &err) == 0);
    char *dir = codestore_dir_path(cs, KNOWN_HEX);
    CHECK(dir != NULL);
    if (!dir)
        return;
    codestore_pin(dir);
    codestore_pin(dir);
    CHECK(codestore_remove(cs, KNOWN_HEX) == 0);
    check_file(dir, "hello.txt", "hi\n", 0644); /* still there */
    codestore_unpin(dir);
    check_file(dir, "hello.txt", "hi\n", 0644); /* one pin left */
    codestore_unpin(dir);
    CHECK(codestore_dir_path(cs, KNOWN_HEX) == NULL); /* bio not running: inline */
    CHECK(codestore_zip_path(cs, KNOWN_HEX) == NULL);
    CHECK(count_entries(codedir) == 0);

    /* Removal requested, then the same bytes stored again: they stay. */
    CHECK(codestore_put(cs, known_zip, sizeof(known_zip), &info, &err) == 0);
    codestore_pin(dir);
    CHECK(codestore_remove(cs, KNOWN_HEX) == 0);
    CHECK(codestore_put(cs, known_zip, sizeof(known_zip), &info, &err) == 0);
    codestore_unpin(dir);
    check_file(dir, "hello.txt", "hi\n", 0644);
    CHECK(codestore_remove(cs, KNOWN_HEX) == 0); /* unpinned: at once */
    CHECK(codestore_dir_path(cs, KNOWN_HEX) == NULL);
    codestore_pin(NULL); /* ignored */
    codestore_unpin("");
    free(dir);
}

static void test_round_trip(struct codestore *cs)
{
    static const struct zent e[] = {
        {"bin/", K_DIR, NULL, 0, 0755},
        {"bin/run", K_FILE, "#!/bin/sh\necho hi\n", 0, 0755},
        {"lib/a/b/c.txt", K_FILE, "deep", 0, 0644},
        {"secret.txt", K_FILE, "mine", 0, 0400}, /* gets u+w so it can be managed */
        {"dos.txt", K_FILE, "no unix attrs", 0, 0},
        {"empty/", K_DIR, NULL, 0, 0},
        {"lib/link", K_LINK, "a/b/c.txt", 0, 0},
        {"node_modules/pkg/cli.js", K_FILE, "cli", 0, 0755},
        {"node_modules/.bin/cli", K_LINK, "../pkg/cli.js", 0, 0},
        {"./dot/./x.txt", K_FILE, "dotted", 0, 0644},
    };
    size_t len;
    unsigned char *z = make_zip(e, sizeof(e) / sizeof(e[0]), &len);
    struct code_info info;
    const char *err = NULL;
    mode_t old_umask = umask(077); /* modes come from the archive, not the umask */
    CHECK(codestore_put(cs, z, len, &info, &err) == 0);
    umask(old_umask);
    CHECK(err == NULL);
    CHECK(info.size == len);
    CHECK(info.unzipped == strlen("#!/bin/sh\necho hi\n") + 4 + 4 + 13 + 9 + 3 + 13 + 6);
    char *dir = codestore_dir_path(cs, info.sha256_hex);
    CHECK(dir != NULL);
    if (dir) {
        char p[512], t[64];
        struct stat st;
        check_file(dir, "bin/run", "#!/bin/sh\necho hi\n", 0755);
        check_file(dir, "lib/a/b/c.txt", "deep", 0644);
        check_file(dir, "secret.txt", "mine", 0600);
        check_file(dir, "dos.txt", "no unix attrs", 0644);
        check_file(dir, "dot/x.txt", "dotted", 0644);
        check_file(dir, "lib/link", "deep", 0); /* through the symlink */
        check_file(dir, "node_modules/.bin/cli", "cli", 0);
        snprintf(p, sizeof(p), "%s/lib/link", dir);
        CHECK(lstat(p, &st) == 0 && S_ISLNK(st.st_mode));
        ssize_t n = readlink(p, t, sizeof(t) - 1);
        CHECK(n == 9 && memcmp(t, "a/b/c.txt", 9) == 0);
        snprintf(p, sizeof(p), "%s/empty", dir);
        CHECK(lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0755);
        snprintf(p, sizeof(p), "%s/lib/a", dir); /* implicit directory */
        CHECK(lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0755);
        CHECK(lstat(dir, &st) == 0 && (st.st_mode & 0777) == 0755);
        snprintf(p, sizeof(p), "%s/bin/run", dir);
        CHECK(access(p, X_OK) == 0);
    }
    char hex[65];
    CHECK(codestore_b64_to_hex(info.sha256_b64, hex) == 0);
    CHECK_STR(hex, info.sha256_hex);
    CHECK(codestore_remove(cs, info.sha256_hex) == 0);
    CHECK(count_entries(codedir) == 0);
    free(dir);
    free(z);
}

static void test_not_zips(struct codestore *cs)
{
    static const struct zent ok[] = {{"a.txt", K_FILE, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 0644}};
    size_t len;
    unsigned char *z = make_zip(ok, 1, &len);
    const unsigned char text[] = "this is certainly not a zip archive, it is plain text";
    check_refused(cs, text, sizeof(text), CODESTORE_ERR_UNZIP, "text");
    check_refused(cs, (const unsigned char *)"", 0, CODESTORE_ERR_UNZIP, "empty");
    check_refused(cs, z, len / 2, CODESTORE_ERR_UNZIP, "truncated half");
    check_refused(cs, z, len - 1, CODESTORE_ERR_UNZIP, "truncated by one");
    /* A flipped byte in the compressed data (bad deflate stream or CRC). */
    size_t data_at = 30 + (size_t)(z[26] | z[27] << 8) + (size_t)(z[28] | z[29] << 8);
    CHECK(data_at + 1 < len);
    z[data_at + 1] ^= 0x55;
    check_refused(cs, z, len, CODESTORE_ERR_UNZIP, "corrupt data");
    free(z);
}

static void test_escaping_names(struct codestore *cs)
{
    static const struct zent up[] = {{"ok.txt", K_FILE, "x", 0, 0644},
                                      {"../x", K_FILE, "escaped", 0, 0644}};
    static const struct zent deep[] = {{"../../../x", K_FILE, "escaped", 0, 0644}};
    static const struct zent abs[] = {{"/abs", K_FILE, "escaped", 0, 0644}};
    static const struct zent mid[] = {{"a/../../x", K_FILE, "escaped", 0, 0644}};
    static const struct zent inside[] = {{"a/../b", K_FILE, "inside, still refused", 0, 0644}};
    refuse_entries(cs, up, 2, CODESTORE_ERR_UNZIP, "../x");
    refuse_entries(cs, deep, 1, CODESTORE_ERR_UNZIP, "../../../x");
    refuse_entries(cs, abs, 1, CODESTORE_ERR_UNZIP, "/abs");
    refuse_entries(cs, mid, 1, CODESTORE_ERR_UNZIP, "a/../../x");
    refuse_entries(cs, inside, 1, CODESTORE_ERR_UNZIP, "a/../b");
    CHECK(access("/abs", F_OK) != 0);
}

static void test_symlinks(struct codestore *cs)
{
    static const struct zent passwd[] = {{"pw", K_LINK, "/etc/passwd", 0, 0}};
    static const struct zent up[] = {{"sub/", K_DIR, NULL, 0, 0755},
                                     {"sub/up", K_LINK, "../../x", 0, 0}};
    /* Each harmless by its text; together s2 -> s1/.. -> <root>/.. */
    static const struct zent chain[] = {{"s2", K_LINK, "s1/..", 0, 0},
                                        {"s1", K_LINK, ".", 0, 0}};
    /* d -> sub is inside, but a later entry may not write through it. */
    static const struct zent through[] = {{"sub/", K_DIR, NULL, 0, 0755},
                                          {"d", K_LINK, "sub", 0, 0},
                                          {"d/evil", K_FILE, "through the link", 0, 0644}};
    static const struct zent through_dir[] = {{"d", K_LINK, "sub", 0, 0},
                                              {"d/", K_DIR, NULL, 0, 0755}};
    static const struct zent loop[] = {{"a", K_LINK, "b", 0, 0}, {"b", K_LINK, "a", 0, 0}};
    static const struct zent empty_target[] = {{"e", K_LINK, "", 0, 0}};
    refuse_entries(cs, passwd, 1, CODESTORE_ERR_UNZIP, "link /etc/passwd");
    refuse_entries(cs, up, 2, CODESTORE_ERR_UNZIP, "link ../../x");
    refuse_entries(cs, chain, 2, CODESTORE_ERR_UNZIP, "link chain");
    refuse_entries(cs, through, 3, CODESTORE_ERR_UNZIP, "write through link");
    refuse_entries(cs, through_dir, 2, CODESTORE_ERR_UNZIP, "dir through link");
    refuse_entries(cs, loop, 2, CODESTORE_ERR_UNZIP, "link loop");
    refuse_entries(cs, empty_target, 1, CODESTORE_ERR_UNZIP, "empty link");

    /* A file replaced by an outward link of the same name (last wins).
     * libzip refuses duplicate names when writing: rename one afterwards. */
    size_t len;
    unsigned char *z;
    static const struct zent pre2[] = {{"dupfile.txt", K_FILE, "plain", 0, 0644},
                                       {"dupfilx.txt", K_LINK, "../../../etc/passwd", 0, 0}};
    z = make_zip(pre2, 2, &len);
    CHECK(patch_all(z, len, "dupfilx.txt", "dupfile.txt") == 2);
    check_refused(cs, z, len, CODESTORE_ERR_UNZIP, "duplicate name, outward link last");
    free(z);
}

static void test_duplicates(struct codestore *cs)
{
    static const struct zent e[] = {{"dup/one.txt", K_FILE, "first", 0, 0644},
                                    {"dup/two.txt", K_FILE, "second", 0, 0755},
                                    {"dup/lnk.txt", K_LINK, "one.txt", 0, 0},
                                    {"dup/lnx.txt", K_FILE, "plain now", 0, 0644}};
    size_t len;
    unsigned char *z = make_zip(e, 4, &len);
    CHECK(patch_all(z, len, "dup/two.txt", "dup/one.txt") == 2);
    CHECK(patch_all(z, len, "dup/lnx.txt", "dup/lnk.txt") == 2);
    struct code_info info;
    const char *err = NULL;
    CHECK(codestore_put(cs, z, len, &info, &err) == 0);
    char *dir = codestore_dir_path(cs, info.sha256_hex);
    CHECK(dir != NULL);
    if (dir) {
        check_file(dir, "dup/one.txt", "second", 0755); /* last wins */
        check_file(dir, "dup/lnk.txt", "plain now", 0644); /* the link was replaced */
    }
    CHECK(codestore_remove(cs, info.sha256_hex) == 0);
    free(dir);
    free(z);
}

static void test_bombs(struct codestore *cs)
{
    size_t big = 1 << 20, len;
    char *zeros = calloc(1, big);
    struct zent one[] = {{"zeros", K_FILE, zeros, big, 0644}};
    struct zent two[] = {{"z1", K_FILE, zeros, 200 * 1024, 0644},
                         {"z2", K_FILE, zeros, 200 * 1024, 0644}};
    codestore_set_max_unzipped(256 * 1024);

    unsigned char *z = make_zip(one, 1, &len);
    CHECK(len < 8 * 1024); /* it really is a bomb */
    check_refused(cs, z, len, CODESTORE_ERR_TOO_BIG, "honest bomb");
    /* The same bomb claiming 1000 bytes in both headers: the limit must
     * still stop it, from the bytes actually decompressed. */
    int patched = 0;
    for (size_t i = 0; i + 46 <= len; i++) {
        if (memcmp(z + i, "PK\x03\x04", 4) == 0)
            put_le32(z + i + 22, 1000), patched++;
        else if (memcmp(z + i, "PK\x01\x02", 4) == 0)
            put_le32(z + i + 24, 1000), patched++;
    }
    CHECK(patched == 2);
    check_refused(cs, z, len, CODESTORE_ERR_TOO_BIG, "lying bomb");
    /* Under the limit, the lie itself is refused: accepted archives have
     * true header sizes (the idempotent path relies on it). */
    codestore_set_max_unzipped(CODESTORE_MAX_UNZIPPED);
    check_refused(cs, z, len, CODESTORE_ERR_UNZIP, "lying entry under the limit");
    codestore_set_max_unzipped(256 * 1024);
    free(z);

    /* Each entry under the limit, the total over it. */
    z = make_zip(two, 2, &len);
    check_refused(cs, z, len, CODESTORE_ERR_TOO_BIG, "total over limit");
    codestore_set_max_unzipped(CODESTORE_MAX_UNZIPPED);
    struct code_info info;
    const char *err = NULL;
    CHECK(codestore_put(cs, z, len, &info, &err) == 0);
    CHECK(info.unzipped == 400 * 1024);
    CHECK(codestore_remove(cs, info.sha256_hex) == 0);
    free(z);
    free(zeros);
}

struct racer {
    struct codestore *cs;
    const unsigned char *zip;
    size_t len;
    struct code_info info;
    int r;
};

static void *race(void *arg)
{
    struct racer *t = arg;
    const char *err;
    t->r = codestore_put(t->cs, t->zip, t->len, &t->info, &err);
    return NULL;
}

static void test_concurrent(struct codestore *cs)
{
    enum { FILES = 64, THREADS = 4 };
    struct zent e[FILES];
    static char names[FILES][32], bodies[FILES][32];
    for (int i = 0; i < FILES; i++) {
        snprintf(names[i], sizeof(names[i]), "d%d/f%d.txt", i % 5, i);
        snprintf(bodies[i], sizeof(bodies[i]), "body %d", i);
        e[i] = (struct zent){names[i], K_FILE, bodies[i], 0, 0644};
    }
    size_t len;
    unsigned char *z = make_zip(e, FILES, &len);
    for (int round = 0; round < 5; round++) {
        struct racer t[THREADS];
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++) {
            t[i] = (struct racer){.cs = cs, .zip = z, .len = len};
            CHECK(pthread_create(&th[i], NULL, race, &t[i]) == 0);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < THREADS; i++) {
            CHECK(t[i].r == 0);
            CHECK_STR(t[i].info.sha256_hex, t[0].info.sha256_hex);
        }
        CHECK(count_entries(codedir) == 2); /* <hex>.zip and <hex>/, no temp */
        char *dir = codestore_dir_path(cs, t[0].info.sha256_hex);
        CHECK(dir != NULL);
        if (dir) {
            char p[512];
            for (int i = 0; i < FILES; i++)
                check_file(dir, names[i], bodies[i], 0644);
            snprintf(p, sizeof(p), "%s/d0", dir);
            CHECK(count_entries(p) == (FILES + 4) / 5);
        }
        free(dir);
        CHECK(codestore_remove(cs, t[0].info.sha256_hex) == 0);
    }
    free(z);
}

static void test_keys(struct codestore *cs)
{
    char hex[65];
    CHECK(codestore_b64_to_hex("", hex) == -EINVAL);
    CHECK(codestore_b64_to_hex("o5tRLRfR/b3Gq5QKrRTYpsjoaBgrUsGwoJn3LyVTnr0", hex) == -EINVAL);
    CHECK(codestore_b64_to_hex("o5tRLRfR/b3Gq5QKrRTYpsjoaBgrUsGwoJn3LyVTnr1=", hex) == -EINVAL);
    CHECK(codestore_b64_to_hex("o5tRLRfR/b3Gq5QKrRTYpsjoaBgrUsGwoJn3LyVTn*0=", hex) == -EINVAL);
    CHECK(codestore_b64_to_hex("o5tRLRfR/b3Gq5QKrRTYpsjoaBgrUsGwoJn3LyVTnr0==", hex) == -EINVAL);
    CHECK(codestore_b64_to_hex(KNOWN_B64, hex) == 0);
    CHECK_STR(hex, KNOWN_HEX);
    CHECK(codestore_dir_path(cs, "../../etc") == NULL);
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)toupper((unsigned char)KNOWN_HEX[i]);
    CHECK(codestore_put(cs, known_zip, sizeof(known_zip), &(struct code_info){0},
                        &(const char *){NULL}) == 0);
    char *zp = codestore_zip_path(cs, KNOWN_HEX);
    CHECK(zp != NULL);
    free(zp);
    CHECK(codestore_zip_path(cs, upper) == NULL); /* keys are lower-case hex only */
    CHECK(codestore_remove(cs, KNOWN_HEX) == 0);
    CHECK(codestore_remove(cs, "nope") == -EINVAL);
    CHECK_STR(CODESTORE_ERR_TOO_BIG, "Unzipped size must be smaller than 262144000 bytes");
    CHECK_STR(CODESTORE_ERR_UNZIP, "Could not unzip uploaded file. Please check your file, then "
                                   "try to upload again.");
}

static void test_leftovers_cleaned(void)
{
    char p[256];
    struct codestore *cs = NULL;
    snprintf(p, sizeof(p), "%s/.tmp-crashed-put", codedir);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof(p), "%s/.tmp-crashed-put/file", codedir);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    CHECK(codestore_open(&cs, root) == 0);
    CHECK(count_entries(codedir) == 0);
    codestore_close(cs);
}

int main(void)
{
    struct codestore *cs = NULL;
    snprintf(base, sizeof(base), "/tmp/codestore-test-XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(root, sizeof(root), "%s/store", base);
    snprintf(codedir, sizeof(codedir), "%s/code", root);
    CHECK(codestore_open(&cs, root) == 0);
    if (!cs)
        return TEST_DONE();
    CHECK(count_entries(codedir) == 0);

    test_known_bytes(cs);
    test_pins(cs);
    test_round_trip(cs);
    test_not_zips(cs);
    test_escaping_names(cs);
    test_symlinks(cs);
    test_duplicates(cs);
    test_bombs(cs);
    test_concurrent(cs);
    test_keys(cs);
    codestore_close(cs);
    test_leftovers_cleaned();

    rm_rf(base);
    return TEST_DONE();
}
