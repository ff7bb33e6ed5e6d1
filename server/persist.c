/* persist: atomic, durable JSON documents in the data directory (see
 * persist.h). */
#include "server/persist.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/log.h"

struct persist {
    char *root;    /* <data-dir> */
    char *dir;     /* <data-dir>/functions (or the subdir of persist_open_sub) */
    int dir_fd;
    int lock_fd;   /* -1 for a persist_open_sub handle: the parent holds the lock */
};

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST)
        return -errno;
    return 0;
}

static bool is_temp_name(const char *name)
{
    return name[0] == '.' && strstr(name, ".json.tmp.") != NULL;
}

static void remove_temp_files(struct persist *p)
{
    DIR *d = opendir(p->dir);
    struct dirent *e;
    bool removed = false;
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (is_temp_name(e->d_name)) {
            LOG_INFO("removing torn temp file %s/%s", p->dir, e->d_name);
            unlinkat(p->dir_fd, e->d_name, 0);
            removed = true;
        }
    }
    closedir(d);
    if (removed)
        fsync(p->dir_fd);
}

/* Creates and opens <root>/<subdir> as p's document directory, makes the
 * entry durable and removes torn temp files. */
static int open_docs_dir(struct persist *p, const char *subdir)
{
    char path[PATH_MAX];
    int rc;
    snprintf(path, sizeof(path), "%s/%s", p->root, subdir);
    if ((rc = mkdir_p(path)))
        return rc;
    p->dir = strdup(path);
    p->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!p->dir || p->dir_fd < 0)
        return p->dir ? -errno : -ENOMEM;
    /* Make the directory entries themselves durable. */
    int dfd = open(p->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    remove_temp_files(p);
    return 0;
}

int persist_open(struct persist **out, const char *data_dir)
{
    char path[PATH_MAX];
    int rc;
    struct persist *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->dir_fd = p->lock_fd = -1;
    if ((rc = mkdir_p(data_dir)))
        goto fail;
    snprintf(path, sizeof(path), "%s/lock", data_dir);
    p->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->lock_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (flock(p->lock_fd, LOCK_EX | LOCK_NB)) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto fail;
    }
    if (!(p->root = strdup(data_dir))) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = open_docs_dir(p, "functions")))
        goto fail;
    *out = p;
    return 0;
fail:
    persist_close(p);
    return rc;
}

int persist_open_sub(struct persist **out, const struct persist *parent, const char *subdir)
{
    int rc;
    struct persist *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->dir_fd = p->lock_fd = -1;
    if (!(p->root = strdup(parent->root))) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = open_docs_dir(p, subdir)))
        goto fail;
    *out = p;
    return 0;
fail:
    persist_close(p);
    return rc;
}

void persist_close(struct persist *p)
{
    if (!p)
        return;
    if (p->dir_fd >= 0)
        close(p->dir_fd);
    if (p->lock_fd >= 0)
        close(p->lock_fd); /* releases the flock */
    free(p->root);
    free(p->dir);
    free(p);
}

void persist_id(const char *region, const char *account, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s.%s.%s", region, account, name);
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int persist_write(struct persist *p, const char *id, const char *data, size_t len)
{
    char tmp[NAME_MAX + 1], final[NAME_MAX + 1];
    static atomic_ulong seq; /* several stores (functions, layers, iam) write concurrently */
    int rc = 0, fd = -1;
    if (snprintf(final, sizeof(final), "%s.json", id) >= (int)sizeof(final))
        return -ENAMETOOLONG;
    /* Writers of one id are serialised by their store's mutex; seq + pid keep names unique. */
    snprintf(tmp, sizeof(tmp), ".%s.json.tmp.%ld.%lu", id, (long)getpid(), atomic_fetch_add(&seq, 1) + 1);
    fd = openat(p->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if ((rc = write_all(fd, data, len)))
        goto out;
    if (fsync(fd)) {
        rc = -errno;
        goto out;
    }
    if (close(fd)) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    if (renameat(p->dir_fd, tmp, p->dir_fd, final)) {
        rc = -errno;
        goto out;
    }
    if (fsync(p->dir_fd))
        rc = -errno;
    return rc;
out:
    if (fd >= 0)
        close(fd);
    unlinkat(p->dir_fd, tmp, 0);
    return rc;
}

int persist_remove(struct persist *p, const char *id)
{
    char final[NAME_MAX + 1];
    if (snprintf(final, sizeof(final), "%s.json", id) >= (int)sizeof(final))
        return -ENAMETOOLONG;
    if (unlinkat(p->dir_fd, final, 0) && errno != ENOENT)
        return -errno;
    if (fsync(p->dir_fd))
        return -errno;
    return 0;
}

int persist_load(struct persist *p, int (*fn)(void *ud, const char *id, json_t *doc), void *ud)
{
    DIR *d = opendir(p->dir);
    struct dirent *e;
    int count = 0, rc = 0;
    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        size_t n = strlen(name);
        if (name[0] == '.' || n <= 5 || strcmp(name + n - 5, ".json") != 0)
            continue;
        char id[NAME_MAX + 1], path[PATH_MAX];
        memcpy(id, name, n - 5);
        id[n - 5] = 0;
        snprintf(path, sizeof(path), "%s/%s", p->dir, name);
        json_error_t jerr;
        json_t *doc = json_load_file(path, 0, &jerr);
        if (!doc || !json_is_object(doc)) {
            char aside[PATH_MAX + 16];
            snprintf(aside, sizeof(aside), "%s.corrupt", path);
            LOG_ERROR("%s is not a valid JSON document (%s); moved to %s", path, jerr.text, aside);
            rename(path, aside);
            json_decref(doc);
            continue;
        }
        rc = fn(ud, id, doc);
        json_decref(doc);
        if (rc)
            break;
        count++;
    }
    closedir(d);
    return rc ? rc : count;
}
