/* fsutil: shared file-system helpers (see fsutil.h). */
#include "runtime/fsutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return FS_RETRY(remove(path)) < 0 && errno != ENOENT ? -1 : 0;
}

int fsutil_rm_rf(const char *path)
{
    struct stat st;
    if (FS_RETRY(lstat(path, &st)) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return FS_RETRY(unlink(path)) < 0 ? -errno : 0;
    int r;
    do
        r = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    while (r != 0 && errno == EINTR);
    return r != 0 ? -(errno ? errno : EIO) : 0;
}

char *fsutil_mkdtemp(char *tmpl)
{
    size_t len = strlen(tmpl);
    char *copy = malloc(len + 1), *r;
    if (!copy)
        return mkdtemp(tmpl);
    memcpy(copy, tmpl, len + 1);
    while (!(r = mkdtemp(tmpl)) && errno == EINTR)
        memcpy(tmpl, copy, len + 1);
    free(copy);
    return r;
}
