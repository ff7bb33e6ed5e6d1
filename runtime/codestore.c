/* codestore: content-addressed store of deployment packages (see codestore.h).
 *
 * DESIGN: a put hashes the bytes (EVP SHA-256), opens them from memory with
 * libzip and, unless <hex>.zip and <hex>/ already exist, extracts every entry
 * into a private mkdtemp directory "<root>/code/.tmp-<hex>-XXXXXX". Only when
 * the whole archive was accepted are the extracted files flushed (syncfs), the
 * zip written to a temp file (fsync) and renamed to <hex>.zip, and the temp
 * directory renamed to <hex>/. A refused archive only ever touched its temp
 * directory, which is removed. Concurrent puts of the same bytes each extract
 * privately; the first directory rename wins and the others delete theirs
 * (rename(2) refuses to replace a non-empty directory). Leftovers of a crash
 * (".tmp-*") are removed by codestore_open, so one process owns a root.
 *
 * Extraction never follows a symlink: each path component is opened with
 * O_NOFOLLOW|O_DIRECTORY relative to its parent's fd, files are created with
 * O_CREAT|O_EXCL|O_NOFOLLOW, so nothing is written outside the temp dir even
 * through an earlier symlink entry. Names are refused when absolute or holding
 * a ".." component. Symlink entries (unix S_IFLNK in the external attributes)
 * are refused when their target is absolute or climbs out lexically; after
 * the last entry every symlink is resolved once more against the real tree
 * (following the other links, as the kernel would) so a chain of individually
 * harmless links cannot point outside either. The size limit is applied to
 * the bytes libzip actually decompressed; each entry must also decompress to
 * exactly its declared size, so an accepted archive's header sizes are true
 * and the idempotent path can take the total from the central directory. */
#include "runtime/codestore.h"
#include "runtime/bio.h"
#include "runtime/fsutil.h"
#include "runtime/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zip.h>

const char CODESTORE_ERR_UNZIP[] =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";
const char CODESTORE_ERR_TOO_BIG[] = "Unzipped size must be smaller than 262144000 bytes";
const char CODESTORE_ERR_IO[] = "Internal error while storing the deployment package.";

#define TMP_PREFIX ".tmp-"
#define COPY_BUF (64 * 1024)
#define MAX_LINK_HOPS 40
#define MIN_ZIP_LEN 22 /* an end-of-central-directory record alone */

static _Atomic uint64_t max_unzipped = CODESTORE_MAX_UNZIPPED;
static atomic_uint tmp_counter;

struct codestore {
    char *root;
    char *code_dir; /* <root>/code */
};

/* Pinned directories (see codestore_pin), chained hash on the path; all
 * under g_pin_mu. Entries exist only while pinned or awaiting removal. */
#define PIN_BUCKETS 256
struct pin {
    char *dir;
    int refs;
    struct codestore *doomed; /* removal requested in this store, or NULL */
    char hex[65];
    struct pin *next;
};
static pthread_mutex_t g_pin_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pin *g_pins[PIN_BUCKETS];

static struct pin **pin_slot(const char *dir)
{
    unsigned long h = 1469598103934665603ul;
    for (const char *p = dir; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ul;
    struct pin **pp = &g_pins[h % PIN_BUCKETS];
    while (*pp && strcmp((*pp)->dir, dir) != 0)
        pp = &(*pp)->next;
    return pp;
}

static int remove_now(struct codestore *cs, const char *sha256_hex);

struct pin_job {
    struct codestore *cs;
    char hex[65];
};

static void pin_remove_job(void *arg)
{
    struct pin_job *j = arg;
    int rc = remove_now(j->cs, j->hex);
    if (rc < 0 && rc != -ENOENT)
        LOG_WARN("cannot remove code %s: %s", j->hex, strerror(-rc));
    free(j);
}

void codestore_pin(const char *dir)
{
    if (!dir || !*dir)
        return;
    pthread_mutex_lock(&g_pin_mu);
    struct pin **pp = pin_slot(dir);
    if (!*pp && (*pp = calloc(1, sizeof(**pp))) && !((*pp)->dir = strdup(dir))) {
        free(*pp);
        *pp = NULL;
    }
    if (*pp)
        (*pp)->refs++;
    pthread_mutex_unlock(&g_pin_mu);
}

void codestore_unpin(const char *dir)
{
    if (!dir || !*dir)
        return;
    struct pin_job *job = NULL;
    pthread_mutex_lock(&g_pin_mu);
    struct pin **pp = pin_slot(dir), *p = *pp;
    if (p && --p->refs <= 0) {
        if (p->doomed && (job = malloc(sizeof(*job)))) {
            job->cs = p->doomed;
            memcpy(job->hex, p->hex, sizeof(job->hex));
        }
        *pp = p->next;
        free(p->dir);
        free(p);
    }
    pthread_mutex_unlock(&g_pin_mu);
    if (job)
        bio_submit(BIO_FS, pin_remove_job, job);
}

/* codestore_remove: defers when pinned (returns true). */
static bool pin_defer(struct codestore *cs, const char *dir, const char *hex)
{
    pthread_mutex_lock(&g_pin_mu);
    struct pin *p = *pin_slot(dir);
    if (p) {
        p->doomed = cs;
        snprintf(p->hex, sizeof(p->hex), "%s", hex);
    }
    pthread_mutex_unlock(&g_pin_mu);
    return p != NULL;
}

/* codestore_put of bytes whose removal is pending: keep them. */
static void pin_undoom(const char *dir)
{
    pthread_mutex_lock(&g_pin_mu);
    struct pin *p = *pin_slot(dir);
    if (p)
        p->doomed = NULL;
    pthread_mutex_unlock(&g_pin_mu);
}

/* State of one extraction. Functions taking it return 0, -EINVAL with err
 * set (archive refused) or another -errno (storage failure). */
struct extract {
    zip_t *za;
    int rootfd; /* the private temp directory */
    uint64_t total;
    uint64_t limit;
    const char *err;
    char **links; /* normalised paths of symlink entries, checked at the end */
    size_t n_links, cap_links;
    char *buf; /* COPY_BUF bytes */
};

void codestore_set_max_unzipped(uint64_t limit)
{
    atomic_store(&max_unzipped, limit);
}

/* ---- small helpers ---------------------------------------------------- */

static int is_hex_key(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static void to_hex(const unsigned char *md, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static char *key_path(const struct codestore *cs, const char *hex, const char *suffix)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s%s", cs->code_dir, hex, suffix) < 0)
        return NULL;
    return p;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len); /* EINTR: retried below */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = FS_RETRY(open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd < 0)
        return -errno;
    int r = FS_RETRY(fsync(fd)) < 0 ? -errno : 0;
    close(fd);
    return r;
}


static int mkdir_p(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    int r = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (FS_RETRY(mkdir(p, 0755)) < 0 && errno != EEXIST) {
            r = -errno;
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return r;
}

/* Removes ".tmp-*" leftovers of interrupted puts and removes. */
static void remove_leftovers(const char *code_dir)
{
    int fd = FS_RETRY(open(code_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
            continue;
        char *p = NULL;
        if (asprintf(&p, "%s/%s", code_dir, de->d_name) >= 0) {
            fsutil_rm_rf(p);
            free(p);
        }
    }
    closedir(d);
}

/* ---- extraction -------------------------------------------------------- */

static int refuse(struct extract *ex, const char *why)
{
    if (!ex->err)
        ex->err = why;
    return -EINVAL;
}

/* errno of a call whose argument came from the archive: names that cannot
 * exist or clash with each other are the archive's fault, the rest is ours. */
static int fs_error(struct extract *ex, int e)
{
    switch (e) {
    case ENAMETOOLONG:
    case ELOOP:
    case ENOTDIR:
    case EISDIR:
    case EEXIST:
    case ENOTEMPTY:
    case EINVAL:
        return refuse(ex, CODESTORE_ERR_UNZIP);
    default:
        return -e;
    }
}

/* Normalises an entry name into out ("a/./b//c/" -> "a/b/c"). Refuses
 * absolute and ".."-holding names; out is "" for the root itself ("./"). */
static int normalise_name(struct extract *ex, const char *name, char *out, size_t cap)
{
    size_t len = 0;
    if (name[0] == '/')
        return refuse(ex, CODESTORE_ERR_UNZIP);
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return refuse(ex, CODESTORE_ERR_UNZIP);
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (len + n + 2 > cap)
                return refuse(ex, CODESTORE_ERR_UNZIP);
            if (len)
                out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    out[len] = '\0';
    return 0;
}

/* Opens (creating when missing) the directory name below dirfd, refusing
 * anything that is not a real directory: a symlink there would redirect
 * every later write. Returns an fd or a negative error. */
static int enter_dir(struct extract *ex, int dirfd, const char *name)
{
    int created = 0;
    for (;;) {
        int fd = FS_RETRY(openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (fd >= 0) {
            /* 0755 whatever the umask: other users (containers) read it. */
            if (created && FS_RETRY(fchmod(fd, 0755)) < 0) {
                int e = errno;
                close(fd);
                return -e;
            }
            return fd;
        }
        if (errno != ENOENT || created)
            return fs_error(ex, errno);
        if (FS_RETRY(mkdirat(dirfd, name, 0755)) < 0)
            return fs_error(ex, errno);
        created = 1;
    }
}

/* Walks (creating) every directory of path but the last component. Returns
 * the parent's fd and points *leaf into path. */
static int open_parent(struct extract *ex, char *path, const char **leaf)
{
    int fd = fcntl(ex->rootfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    char *p = path, *slash;
    while ((slash = strchr(p, '/'))) {
        *slash = '\0';
        int sub = enter_dir(ex, fd, p);
        *slash = '/';
        close(fd);
        if (sub < 0)
            return sub;
        fd = sub;
        p = slash + 1;
    }
    *leaf = p;
    return fd;
}

/* Decompresses entry i into fd (fd >= 0) or into mem (at most cap bytes),
 * counting every byte against the limit as it comes out of libzip. */
static int read_entry(struct extract *ex, zip_uint64_t i, uint64_t declared, int fd, char *mem,
                      size_t cap, size_t *got_out)
{
    zip_file_t *zf = zip_fopen_index(ex->za, i, 0);
    if (!zf)
        return refuse(ex, CODESTORE_ERR_UNZIP);
    uint64_t got = 0;
    int r = 0;
    for (;;) {
        zip_int64_t n = zip_fread(zf, ex->buf, COPY_BUF);
        if (n < 0) {
            r = refuse(ex, CODESTORE_ERR_UNZIP);
            break;
        }
        if (n == 0)
            break;
        got += (uint64_t)n;
        ex->total += (uint64_t)n;
        if (ex->total > ex->limit) {
            r = refuse(ex, CODESTORE_ERR_TOO_BIG);
            break;
        }
        if (fd >= 0) {
            if ((r = write_all(fd, ex->buf, (size_t)n)) < 0)
                break;
        } else {
            if (got > cap) {
                r = refuse(ex, CODESTORE_ERR_UNZIP);
                break;
            }
            memcpy(mem + got - (uint64_t)n, ex->buf, (size_t)n);
        }
    }
    if (zip_fclose(zf) != 0 && r == 0)
        r = refuse(ex, CODESTORE_ERR_UNZIP);
    if (r == 0 && got != declared)
        r = refuse(ex, CODESTORE_ERR_UNZIP);
    if (got_out)
        *got_out = (size_t)got;
    return r;
}

/* Creates leaf in dirfd: a symlink to target, else a file (returns its fd).
 * An existing file or symlink of the same name (duplicate entry) is
 * replaced, last wins; a directory is not. */
static int create_leaf(struct extract *ex, int dirfd, const char *leaf, const char *target,
                       mode_t mode)
{
    for (int attempt = 0;; attempt++) {
        int fd;
        if (target)
            fd = FS_RETRY(symlinkat(target, dirfd, leaf));
        else
            fd = FS_RETRY(openat(dirfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
        if (fd >= 0)
            return fd;
        if (errno != EEXIST || attempt > 0)
            return fs_error(ex, errno);
        if (FS_RETRY(unlinkat(dirfd, leaf, 0)) < 0)
            return fs_error(ex, errno);
    }
}

/* Whether target, read from a link whose parent is depth levels below the
 * root, stays inside by its text alone. */
static int link_lexically_inside(const char *target, size_t depth)
{
    if (target[0] == '/')
        return 0;
    for (const char *p = target; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (depth == 0)
                return 0;
            depth--;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    return 1;
}

/* Resolves path below rootfd component by component as the kernel would,
 * following the symlinks found in the tree; missing components are taken
 * literally. Returns 1 when every step stays inside the root. */
static int resolves_inside(int rootfd, const char *path)
{
    char cur[PATH_MAX], rest[PATH_MAX], tmp[PATH_MAX], target[PATH_MAX];
    size_t curlen = 0;
    int hops = 0;
    cur[0] = '\0';
    if ((size_t)snprintf(rest, sizeof(rest), "%s", path) >= sizeof(rest))
        return 0;
    const char *p = rest;
    while (*p) {
        size_t n = strcspn(p, "/");
        const char *next = p[n] ? p + n + 1 : p + n;
        if (n == 0 || (n == 1 && p[0] == '.')) {
            p = next;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (curlen == 0)
                return 0;
            char *s = memrchr(cur, '/', curlen);
            curlen = s ? (size_t)(s - cur) : 0;
            cur[curlen] = '\0';
            p = next;
            continue;
        }
        size_t save = curlen;
        if (curlen + n + 2 > sizeof(cur))
            return 0;
        if (curlen)
            cur[curlen++] = '/';
        memcpy(cur + curlen, p, n);
        curlen += n;
        cur[curlen] = '\0';
        struct stat st;
        if (FS_RETRY(fstatat(rootfd, cur, &st, AT_SYMLINK_NOFOLLOW)) == 0 && S_ISLNK(st.st_mode)) {
            ssize_t t = FS_RETRY(readlinkat(rootfd, cur, target, sizeof(target) - 1));
            if (++hops > MAX_LINK_HOPS || t <= 0 || target[0] == '/')
                return 0;
            target[t] = '\0';
            curlen = save;
            cur[curlen] = '\0';
            if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", target, next) >= sizeof(tmp))
                return 0;
            memcpy(rest, tmp, strlen(tmp) + 1);
            p = rest;
            continue;
        }
        p = next;
    }
    return 1;
}

static int remember_link(struct extract *ex, const char *path)
{
    if (ex->n_links == ex->cap_links) {
        size_t cap = ex->cap_links ? 2 * ex->cap_links : 16;
        char **v = realloc(ex->links, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ex->links = v;
        ex->cap_links = cap;
    }
    if (!(ex->links[ex->n_links] = strdup(path)))
        return -ENOMEM;
    ex->n_links++;
    return 0;
}

static size_t path_depth(const char *path)
{
    size_t d = 0;
    for (const char *p = path; *p; p++)
        d += *p == '/';
    return d; /* components of the parent */
}

static int extract_symlink(struct extract *ex, zip_uint64_t i, uint64_t size, int dirfd,
                           const char *leaf, const char *path)
{
    char target[PATH_MAX];
    size_t len = 0;
    int r = read_entry(ex, i, size, -1, target, sizeof(target) - 1, &len);
    if (r < 0)
        return r;
    target[len] = '\0';
    if (len == 0 || strlen(target) != len || !link_lexically_inside(target, path_depth(path)))
        return refuse(ex, CODESTORE_ERR_UNZIP);
    if ((r = create_leaf(ex, dirfd, leaf, target, 0)) < 0)
        return r;
    return remember_link(ex, path);
}

static int extract_file(struct extract *ex, zip_uint64_t i, uint64_t size, int dirfd,
                        const char *leaf, mode_t mode)
{
    int fd = create_leaf(ex, dirfd, leaf, NULL, 0600);
    if (fd < 0)
        return fd;
    int r = read_entry(ex, i, size, fd, NULL, 0, NULL);
    if (r == 0 && FS_RETRY(fchmod(fd, mode)) < 0)
        r = -errno;
    close(fd);
    return r;
}

static int extract_entry(struct extract *ex, zip_uint64_t i)
{
    char path[PATH_MAX];
    zip_stat_t st;
    zip_uint8_t opsys = 0;
    zip_uint32_t attr = 0;
    const char *name = zip_get_name(ex->za, i, 0);
    if (!name || zip_stat_index(ex->za, i, 0, &st) < 0 || !(st.valid & ZIP_STAT_SIZE) ||
        zip_file_get_external_attributes(ex->za, i, 0, &opsys, &attr) < 0)
        return refuse(ex, CODESTORE_ERR_UNZIP);
    int r = normalise_name(ex, name, path, sizeof(path));
    if (r < 0)
        return r;

    size_t name_len = strlen(name);
    mode_t umode = opsys == ZIP_OPSYS_UNIX ? (mode_t)(attr >> 16) : 0;
    int is_dir = (name_len > 0 && name[name_len - 1] == '/') || (S_ISDIR(umode) && st.size == 0);
    if (path[0] == '\0')
        return is_dir ? 0 : refuse(ex, CODESTORE_ERR_UNZIP); /* "./" is the root */
    int is_link = !is_dir && S_ISLNK(umode);
    mode_t mode = umode ? (umode & 0777) | (is_dir ? 0700 : 0600) : (is_dir ? 0755 : 0644);

    const char *leaf = NULL;
    int dirfd = open_parent(ex, path, &leaf);
    if (dirfd < 0)
        return dirfd;
    if (is_dir) {
        int fd = enter_dir(ex, dirfd, leaf);
        r = fd;
        if (fd >= 0) {
            r = FS_RETRY(fchmod(fd, mode)) < 0 ? -errno : 0;
            close(fd);
        }
    } else if (is_link) {
        r = extract_symlink(ex, i, st.size, dirfd, leaf, path);
    } else {
        r = extract_file(ex, i, st.size, dirfd, leaf, mode);
    }
    close(dirfd);
    return r;
}

/* Extracts the whole archive into rootfd and checks the symlinks. */
static int extract_all(struct extract *ex)
{
    zip_int64_t n = zip_get_num_entries(ex->za, 0);
    if (n < 0)
        return refuse(ex, CODESTORE_ERR_UNZIP);
    for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
        int r = extract_entry(ex, i);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < ex->n_links; i++) {
        struct stat st;
        if (FS_RETRY(fstatat(ex->rootfd, ex->links[i], &st, AT_SYMLINK_NOFOLLOW)) < 0 ||
            !S_ISLNK(st.st_mode))
            continue; /* replaced by a later entry of the same name */
        if (!resolves_inside(ex->rootfd, ex->links[i]))
            return refuse(ex, CODESTORE_ERR_UNZIP);
    }
    return 0;
}

/* Sums the declared sizes (the central directory), refusing archives that
 * declare more than the limit without decompressing anything. */
static int declared_total(zip_t *za, uint64_t limit, uint64_t *out, const char **err)
{
    zip_int64_t n = zip_get_num_entries(za, 0);
    uint64_t total = 0;
    if (n < 0) {
        *err = CODESTORE_ERR_UNZIP;
        return -EINVAL;
    }
    for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
        zip_stat_t st;
        if (zip_stat_index(za, i, 0, &st) < 0 || !(st.valid & ZIP_STAT_SIZE)) {
            *err = CODESTORE_ERR_UNZIP;
            return -EINVAL;
        }
        total += st.size;
        if (st.size > limit || total > limit) {
            *err = CODESTORE_ERR_TOO_BIG;
            return -EINVAL;
        }
    }
    *out = total;
    return 0;
}

/* ---- storing ------------------------------------------------------------ */

static int is_stored(const char *zip_path, const char *dir_path)
{
    struct stat st;
    return FS_RETRY(lstat(zip_path, &st)) == 0 && S_ISREG(st.st_mode) && FS_RETRY(lstat(dir_path, &st)) == 0 &&
           S_ISDIR(st.st_mode);
}

/* Writes the zip next to its final name, fsyncs and renames it into place. */
/* Copies the file at src into fd in bounded chunks (a package taken from a
 * file, e.g. an S3 object, never sits whole in memory). */
static int copy_file_into(int fd, const char *src)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    char *buf = malloc(COPY_BUF);
    int r = buf ? 0 : -ENOMEM;
    while (!r) {
        ssize_t n = read(in, buf, COPY_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        if (n <= 0)
            break;
        r = write_all(fd, buf, (size_t)n);
    }
    free(buf);
    close(in);
    return r;
}

static int store_zip(const struct codestore *cs, const char *hex, const void *zip, size_t len,
                     const char *src_path, const char *zip_path)
{
    char *tmp = NULL;
    int fd = -1, r;
    if (asprintf(&tmp, "%s/" TMP_PREFIX "%s.zip-XXXXXX", cs->code_dir, hex) < 0)
        return -ENOMEM;
    if ((fd = FS_RETRY(mkostemp(tmp, O_CLOEXEC))) < 0) {
        r = -errno;
        goto out;
    }
    if ((r = src_path ? copy_file_into(fd, src_path) : write_all(fd, zip, len)) < 0)
        goto out;
    if (FS_RETRY(fchmod(fd, 0644)) < 0 || FS_RETRY(fsync(fd)) < 0) {
        r = -errno;
        goto out;
    }
    if (FS_RETRY(rename(tmp, zip_path)) < 0)
        r = -errno;
out:
    if (fd >= 0) {
        close(fd);
        if (r < 0)
            FS_RETRY(unlink(tmp));
    }
    free(tmp);
    return r;
}

/* Extracts into a fresh temp dir and moves zip and directory into place. */
static int store_new(struct codestore *cs, zip_t *za, const void *zip, size_t len, const char *src_path,
                     struct code_info *info, const char *zip_path, const char *dir_path,
                     const char **err)
{
    struct extract ex = {.za = za, .rootfd = -1, .limit = atomic_load(&max_unzipped)};
    char *tmp = NULL;
    int r, tmp_made = 0;
    if (asprintf(&tmp, "%s/" TMP_PREFIX "%s-XXXXXX", cs->code_dir, info->sha256_hex) < 0) {
        tmp = NULL;
        r = -ENOMEM;
        goto out;
    }
    if (!(ex.buf = malloc(COPY_BUF))) {
        r = -ENOMEM;
        goto out;
    }
    if (!fsutil_mkdtemp(tmp) || FS_RETRY(chmod(tmp, 0755)) < 0) {
        r = -errno;
        goto out;
    }
    tmp_made = 1;
    if ((ex.rootfd = FS_RETRY(open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC))) < 0) {
        r = -errno;
        goto out;
    }
    if ((r = extract_all(&ex)) < 0)
        goto out;
    info->unzipped = ex.total;
    /* One flush for every extracted file, so a crash after the rename
     * cannot leave a directory that looks stored but holds empty files. */
    if (syncfs(ex.rootfd) < 0) {
        r = -errno;
        goto out;
    }
    if ((r = store_zip(cs, info->sha256_hex, zip, len, src_path, zip_path)) < 0)
        goto out;
    if (FS_RETRY(rename(tmp, dir_path)) < 0) {
        struct stat st;
        r = -errno;
        if (FS_RETRY(lstat(dir_path, &st)) == 0 && S_ISDIR(st.st_mode))
            r = 0; /* lost the race to an identical put; ours is deleted below */
        else
            FS_RETRY(unlink(zip_path)); /* failed: leave no zip without its directory */
        goto out;
    }
    tmp_made = 0;
    r = fsync_dir(cs->code_dir);
out:
    if (ex.rootfd >= 0)
        close(ex.rootfd);
    if (tmp_made)
        fsutil_rm_rf(tmp);
    for (size_t i = 0; i < ex.n_links; i++)
        free(ex.links[i]);
    free(ex.links);
    free(ex.buf);
    free(tmp);
    if (r < 0)
        *err = r == -EINVAL && ex.err ? ex.err : CODESTORE_ERR_IO;
    return r == -EINVAL && !ex.err ? -EIO : r;
}

int codestore_put(struct codestore *cs, const void *zip, size_t len, struct code_info *info,
                  const char **err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *zip_path = NULL, *dir_path = NULL;
    zip_t *za = NULL;
    zip_error_t ze;
    int r;

    *err = NULL;
    memset(info, 0, sizeof(*info));
    zip_error_init(&ze);
    if (!EVP_Digest(zip, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        r = -EIO;
        *err = CODESTORE_ERR_IO;
        goto out;
    }
    to_hex(md, mdlen, info->sha256_hex);
    EVP_EncodeBlock((unsigned char *)info->sha256_b64, md, (int)mdlen);
    info->size = len;

    /* An empty buffer opens as an empty archive in libzip: not a zip file. */
    zip_source_t *src = len >= MIN_ZIP_LEN ? zip_source_buffer_create(zip, len, 0, &ze) : NULL;
    if (src && !(za = zip_open_from_source(src, ZIP_RDONLY, &ze)))
        zip_source_free(src);
    if (!za) {
        r = -EINVAL;
        *err = CODESTORE_ERR_UNZIP;
        goto out;
    }
    if ((r = declared_total(za, atomic_load(&max_unzipped), &info->unzipped, err)) < 0)
        goto out;

    zip_path = key_path(cs, info->sha256_hex, ".zip");
    dir_path = key_path(cs, info->sha256_hex, "");
    if (!zip_path || !dir_path) {
        r = -ENOMEM;
        *err = CODESTORE_ERR_IO;
        goto out;
    }
    pin_undoom(dir_path);
    if (is_stored(zip_path, dir_path))
        r = 0; /* accepted before: declared sizes were verified then */
    else
        r = store_new(cs, za, zip, len, NULL, info, zip_path, dir_path, err);
out:
    if (za)
        zip_discard(za);
    zip_error_fini(&ze);
    free(zip_path);
    free(dir_path);
    return r;
}

int codestore_put_file(struct codestore *cs, const char *path, struct code_info *info, const char **err)
{
    char *zip_path = NULL, *dir_path = NULL;
    zip_t *za = NULL;
    zip_error_t ze;
    int r, fd = -1;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *buf = NULL;
    EVP_MD_CTX *ctx = NULL;

    *err = NULL;
    memset(info, 0, sizeof(*info));
    zip_error_init(&ze);
    /* SHA-256 (the storage key and CodeSha256) streamed over the file. */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    buf = malloc(COPY_BUF);
    ctx = EVP_MD_CTX_new();
    if (fd < 0 || !buf || !ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        r = fd < 0 ? -errno : -ENOMEM;
        *err = CODESTORE_ERR_IO;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, COPY_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            *err = CODESTORE_ERR_IO;
            goto out;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        info->size += (uint64_t)n;
    }
    if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 32) {
        r = -EIO;
        *err = CODESTORE_ERR_IO;
        goto out;
    }
    to_hex(md, mdlen, info->sha256_hex);
    EVP_EncodeBlock((unsigned char *)info->sha256_b64, md, (int)mdlen);

    zip_source_t *src = info->size >= MIN_ZIP_LEN ? zip_source_file_create(path, 0, -1, &ze) : NULL;
    if (src && !(za = zip_open_from_source(src, ZIP_RDONLY, &ze)))
        zip_source_free(src);
    if (!za) {
        r = -EINVAL;
        *err = CODESTORE_ERR_UNZIP;
        goto out;
    }
    if ((r = declared_total(za, atomic_load(&max_unzipped), &info->unzipped, err)) < 0)
        goto out;
    zip_path = key_path(cs, info->sha256_hex, ".zip");
    dir_path = key_path(cs, info->sha256_hex, "");
    if (!zip_path || !dir_path) {
        r = -ENOMEM;
        *err = CODESTORE_ERR_IO;
        goto out;
    }
    if (is_stored(zip_path, dir_path))
        r = 0;
    else
        r = store_new(cs, za, NULL, 0, path, info, zip_path, dir_path, err);
out:
    if (za)
        zip_discard(za);
    zip_error_fini(&ze);
    EVP_MD_CTX_free(ctx);
    free(buf);
    if (fd >= 0)
        close(fd);
    free(zip_path);
    free(dir_path);
    return r;
}

/* ---- the rest of the interface ---------------------------------------- */

int codestore_open(struct codestore **out, const char *root)
{
    struct codestore *cs = calloc(1, sizeof(*cs));
    int r;
    *out = NULL;
    if (!cs)
        return -ENOMEM;
    if (!(cs->root = strdup(root)) || asprintf(&cs->code_dir, "%s/code", root) < 0) {
        cs->code_dir = NULL;
        r = -ENOMEM;
        goto out;
    }
    if ((r = mkdir_p(cs->code_dir)) < 0)
        goto out;
    remove_leftovers(cs->code_dir);
    *out = cs;
    cs = NULL;
out:
    codestore_close(cs);
    return r;
}

void codestore_close(struct codestore *cs)
{
    if (!cs)
        return;
    free(cs->root);
    free(cs->code_dir);
    free(cs);
}

static char *stored_path(struct codestore *cs, const char *hex, const char *suffix, int want_dir)
{
    struct stat st;
    if (!is_hex_key(hex))
        return NULL;
    char *p = key_path(cs, hex, suffix);
    if (p && (FS_RETRY(lstat(p, &st)) < 0 || (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)))) {
        free(p);
        p = NULL;
    }
    return p;
}

char *codestore_zip_path(struct codestore *cs, const char *sha256_hex)
{
    return stored_path(cs, sha256_hex, ".zip", 0);
}

char *codestore_dir_path(struct codestore *cs, const char *sha256_hex)
{
    return stored_path(cs, sha256_hex, "", 1);
}

int codestore_remove(struct codestore *cs, const char *sha256_hex)
{
    if (!is_hex_key(sha256_hex))
        return -EINVAL;
    char *dir_path = key_path(cs, sha256_hex, "");
    if (!dir_path)
        return -ENOMEM;
    bool deferred = pin_defer(cs, dir_path, sha256_hex);
    free(dir_path);
    return deferred ? 0 : remove_now(cs, sha256_hex);
}

static int remove_now(struct codestore *cs, const char *sha256_hex)
{
    char *zip_path = NULL, *dir_path = NULL, *tmp = NULL;
    int r = 0, found = 0;
    zip_path = key_path(cs, sha256_hex, ".zip");
    dir_path = key_path(cs, sha256_hex, "");
    if (!zip_path || !dir_path ||
        asprintf(&tmp, "%s/" TMP_PREFIX "rm-%s-%d-%u", cs->code_dir, sha256_hex, (int)getpid(),
                 atomic_fetch_add(&tmp_counter, 1)) < 0) {
        tmp = NULL;
        r = -ENOMEM;
        goto out;
    }
    /* The directory disappears atomically, then is deleted at leisure. */
    if (FS_RETRY(rename(dir_path, tmp)) == 0) {
        found = 1;
        if ((r = fsutil_rm_rf(tmp)) < 0)
            goto out;
    } else if (errno != ENOENT) {
        r = -errno;
        goto out;
    }
    if (FS_RETRY(unlink(zip_path)) == 0)
        found = 1;
    else if (errno != ENOENT) {
        r = -errno;
        goto out;
    }
    r = found ? fsync_dir(cs->code_dir) : -ENOENT;
out:
    free(zip_path);
    free(dir_path);
    free(tmp);
    return r;
}

int codestore_b64_to_hex(const char *b64, char out[65])
{
    unsigned char raw[33 + 3], check[45];
    if (!b64 || strlen(b64) != 44 || b64[43] != '=' || b64[42] == '=')
        return -EINVAL;
    if (EVP_DecodeBlock(raw, (const unsigned char *)b64, 44) != 33)
        return -EINVAL;
    /* Only the canonical spelling names a key (no stray low bits). */
    EVP_EncodeBlock(check, raw, 32);
    if (memcmp(check, b64, 44) != 0)
        return -EINVAL;
    to_hex(raw, 32, out);
    return 0;
}
