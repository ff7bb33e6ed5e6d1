/* fsutil: file-system helpers shared by the code store, the layer merger,
 * the executors' scratch directories and the server's ephemeral data dir;
 * and descriptor passing (the zygote, the Runtime API's pipes).
 *
 * Thread rules: any thread; disk I/O (never inside an RCU read-side section
 * or while holding a lock a civetweb thread waits on). */
#ifndef LAMBDAD_RUNTIME_FSUTIL_H
#define LAMBDAD_RUNTIME_FSUTIL_H

/* Runs a file-system call again while it fails with EINTR and evaluates to
 * its last result (for calls that return -1 on failure). A FUSE or network
 * file system may interrupt any call, not only reads and writes; the code
 * store wraps every call it makes. Never for close(2), which must not be
 * retried on Linux. */
#define FS_RETRY(call)                                                                             \
    __extension__({                                                                                \
        __typeof__(call) fs_retry_r_;                                                              \
        do                                                                                         \
            fs_retry_r_ = (call);                                                                  \
        while (fs_retry_r_ == -1 && errno == EINTR);                                               \
        fs_retry_r_;                                                                               \
    })

/* mkdtemp(3), again while it fails with EINTR (the template restored
 * between tries). */
char *fsutil_mkdtemp(char *tmpl);

/* rm -rf path, never following symlinks. Returns 0, -ENOENT when path does
 * not exist, or -errno for the first failure. */
int fsutil_rm_rf(const char *path);

/* sendmsg(2) of len bytes of data on the AF_UNIX socket sock with n_fds
 * (1 to 4) descriptors attached (SCM_RIGHTS), again on EINTR; flags as for
 * sendmsg. Returns what sendmsg returned (-1 with errno set). */
long fsutil_send_fds(int sock, const void *data, unsigned long len, const int *fds, int n_fds, int flags);

#endif
