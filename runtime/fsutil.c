/* fsutil: shared file-system helpers (see fsutil.h). */
#include "runtime/fsutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

long fsutil_send_fds(int sock, const void *data, unsigned long len, const int *fds, int n_fds, int flags)
{
    if (n_fds < 1 || n_fds > 4) {
        errno = EINVAL;
        return -1;
    }
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = CMSG_SPACE((size_t)n_fds * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)n_fds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)n_fds * sizeof(int));
    return FS_RETRY(sendmsg(sock, &mh, flags));
}
