/* layers: merged /opt trees from extracted layers (see layers.h). */
#include "runtime/layers.h"
#include "runtime/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <unistd.h>

/* nftw has no user pointer: the walk is serialised by this lock. */
static pthread_mutex_t g_walk_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *g_src_root, *g_dst_root;
static size_t g_src_len;
static int g_err;

static int copy_file(const char *src, const char *dst, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777);
    if (out < 0) {
        int rc = -errno;
        close(in);
        return rc;
    }
    char buf[65536];
    ssize_t r;
    int rc = 0;
    while ((r = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)r) != r) {
            rc = -EIO;
            break;
        }
    if (r < 0)
        rc = -errno;
    close(in);
    close(out);
    return rc;
}

static int merge_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    char dst[PATH_MAX];
    if (snprintf(dst, sizeof(dst), "%s%s", g_dst_root, path + g_src_len) >= (int)sizeof(dst)) {
        g_err = -ENAMETOOLONG;
        return 1;
    }
    if (flag == FTW_D) {
        if (mkdir(dst, sb->st_mode & 07777) < 0 && errno != EEXIST) {
            g_err = -errno;
            return 1;
        }
        return 0;
    }
    /* Later layers win: replace what an earlier one put there. */
    struct stat old;
    if (lstat(dst, &old) == 0 && !S_ISDIR(old.st_mode))
        unlink(dst);
    if (flag == FTW_SL) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0 || (target[n] = 0, symlink(target, dst) < 0)) {
            g_err = -errno;
            return 1;
        }
        return 0;
    }
    if (link(path, dst) == 0)
        return 0;
    int rc = copy_file(path, dst, sb->st_mode);
    if (rc < 0) {
        g_err = rc;
        return 1;
    }
    return 0;
}

int layers_merge(char *const *dirs, size_t n, const char *out_dir)
{
    struct stat st;
    if (stat(out_dir, &st) == 0)
        return 0;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp-%d-%lx", out_dir, (int)getpid(), (unsigned long)pthread_self());
    if (mkdir(tmp, 0755) < 0)
        return -errno;
    pthread_mutex_lock(&g_walk_mu);
    g_err = 0;
    g_dst_root = tmp;
    for (size_t i = 0; i < n && !g_err; i++) {
        g_src_root = dirs[i];
        g_src_len = strlen(dirs[i]);
        if (nftw(dirs[i], merge_entry, 32, FTW_PHYS) < 0 && !g_err)
            g_err = -errno;
    }
    int rc = g_err;
    pthread_mutex_unlock(&g_walk_mu);
    if (rc == 0 && rename(tmp, out_dir) < 0)
        rc = errno == EEXIST || errno == ENOTEMPTY ? 0 : -errno;
    if (rc < 0 || stat(tmp, &st) == 0)
        fsutil_rm_rf(tmp);
    return rc;
}
