/* Unit test: the code store retries EINTR on every file-system call (a FUSE
 * /tmp interrupts more than reads and writes; issue 8 answered one with a
 * 500 "cannot store the deployment package").
 *
 * The test binary is linked with -Wl,--wrap=<call> for each call the store
 * makes (CMakeLists.txt): while injection is on, every wrapped call fails
 * with EINTR on its first try, then runs for real. A store, a repeated
 * store and a removal must all succeed, with the same files as without
 * injection. */
#include "runtime/codestore.h"
#include "testing.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool g_inject;
static bool g_tick;   /* alternates: fail, run, fail, run... */
static int g_injected;

static bool interrupt(void)
{
    if (!g_inject)
        return false;
    g_tick = !g_tick;
    if (!g_tick)
        return false;
    g_injected++;
    errno = EINTR;
    return true;
}

#define WRAP(ret, name, params, args)                                                              \
    ret __real_##name params;                                                                      \
    ret __wrap_##name params;                                                                      \
    ret __wrap_##name params                                                                       \
    {                                                                                              \
        if (interrupt())                                                                           \
            return (ret)-1;                                                                        \
        return __real_##name args;                                                                 \
    }

WRAP(int, mkdir, (const char *p, mode_t m), (p, m))
WRAP(int, mkdirat, (int d, const char *p, mode_t m), (d, p, m))
WRAP(int, fsync, (int fd), (fd))
WRAP(int, rename, (const char *a, const char *b), (a, b))
WRAP(int, unlink, (const char *p), (p))
WRAP(int, unlinkat, (int d, const char *p, int f), (d, p, f))
WRAP(int, lstat, (const char *p, struct stat *st), (p, st))
WRAP(int, fstatat, (int d, const char *p, struct stat *st, int f), (d, p, st, f))
WRAP(int, fchmod, (int fd, mode_t m), (fd, m))
WRAP(int, chmod, (const char *p, mode_t m), (p, m))
WRAP(int, symlinkat, (const char *t, int d, const char *p), (t, d, p))
WRAP(ssize_t, readlinkat, (int d, const char *p, char *b, size_t n), (d, p, b, n))
WRAP(int, mkostemp, (char *t, int f), (t, f))
WRAP(int, remove, (const char *p), (p))

int __real_open(const char *p, int f, ...);
int __wrap_open(const char *p, int f, ...);
int __wrap_open(const char *p, int f, ...)
{
    va_list ap;
    va_start(ap, f);
    mode_t m = (f & O_CREAT) ? (mode_t)va_arg(ap, int) : 0;
    va_end(ap);
    if (interrupt())
        return -1;
    return __real_open(p, f, m);
}

int __real_openat(int d, const char *p, int f, ...);
int __wrap_openat(int d, const char *p, int f, ...);
int __wrap_openat(int d, const char *p, int f, ...)
{
    va_list ap;
    va_start(ap, f);
    mode_t m = (f & O_CREAT) ? (mode_t)va_arg(ap, int) : 0;
    va_end(ap);
    if (interrupt())
        return -1;
    return __real_openat(d, p, f, m);
}

char *__real_mkdtemp(char *t);
char *__wrap_mkdtemp(char *t);
char *__wrap_mkdtemp(char *t)
{
    if (interrupt()) {
        /* What a half-done call may leave: the template already filled. */
        char *x = strstr(t, "XXXXXX");
        if (x)
            memcpy(x, "abcdef", 6);
        return NULL;
    }
    return __real_mkdtemp(t);
}

/* The stored zip of test_codestore.c: hello.txt = "hi\n". */
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
#define KNOWN_HEX "a39b512d17d1fdbdc6ab940aad14d8a6c8e868182b52c1b0a099f72f25539ebd"

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return __real_remove(path);
}

int main(void)
{
    char root[64] = "/tmp/lambdad-eintr-XXXXXX";
    CHECK(__real_mkdtemp(root) != NULL);
    struct codestore *cs = NULL;
    struct code_info info;
    const char *err = NULL;

    g_inject = true;
    CHECK(codestore_open(&cs, root) == 0);
    CHECK(cs != NULL);
    int r = cs ? codestore_put(cs, known_zip, sizeof(known_zip), &info, &err) : -1;
    if (r)
        fprintf(stderr, "codestore_put: %d %s\n", r, err ? err : "");
    CHECK(r == 0);
    CHECK(cs && codestore_put(cs, known_zip, sizeof(known_zip), &info, &err) == 0);
    char *dir = cs ? codestore_dir_path(cs, KNOWN_HEX) : NULL;
    g_inject = false;
    CHECK(dir != NULL);
    if (dir) {
        char path[512], buf[8] = "";
        snprintf(path, sizeof(path), "%s/hello.txt", dir);
        FILE *f = fopen(path, "r");
        CHECK(f && fgets(buf, sizeof(buf), f) && !strcmp(buf, "hi\n"));
        if (f)
            fclose(f);
    }
    g_inject = true;
    CHECK(cs && codestore_remove(cs, KNOWN_HEX) == 0);
    g_inject = false;
    CHECK(cs && codestore_dir_path(cs, KNOWN_HEX) == NULL);
    fprintf(stderr, "%d calls interrupted\n", g_injected);
    CHECK(g_injected >= 10);
    free(dir);
    codestore_close(cs);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_DONE();
}
