/* fsutil: file-system helpers shared by the code store, the layer merger,
 * the executors' scratch directories and the server's ephemeral data dir.
 *
 * Thread rules: any thread; disk I/O (never inside an RCU read-side section
 * or while holding a lock a civetweb thread waits on). */
#ifndef LAMBDAD_RUNTIME_FSUTIL_H
#define LAMBDAD_RUNTIME_FSUTIL_H

/* rm -rf path, never following symlinks. Returns 0, -ENOENT when path does
 * not exist, or -errno for the first failure. */
int fsutil_rm_rf(const char *path);

#endif
