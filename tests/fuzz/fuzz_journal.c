/* libFuzzer target for the start-up replay of server/persist.c: the input
 * becomes <data-dir>/functions/journal (and, when the control byte's bit 0
 * is set, its first part becomes journal.old), as a crash, a torn write or
 * a damaged disk could leave them (bit 1: with the CRCs made right, see
 * fix_crcs). Then:
 *   - persist_open must succeed (a torn or corrupt record ends the replay,
 *     it never fails the start-up) and leave journal.old gone and a
 *     journal that holds no record (zeros only);
 *   - persist_load must hand out JSON objects only (others are moved
 *     aside);
 *   - a change written after that must survive a close and a reopen.
 * Violations trap. The data dir is on /dev/shm (tmpfs): fsync is free
 * there, so the fuzzer runs at a useful rate. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "server/persist.h"

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

/* lambdad's operator log, silenced: damaged journals are this target's
 * every input, and each would log (these replace runtime/log.c's, so the
 * library's log object is not linked in). */
#include "runtime/log.h"
void log_write(enum log_level level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}
int log_enabled(enum log_level level)
{
    (void)level;
    return 0;
}

static char g_root[128], g_fns[160];

static void empty_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d)
        return;
    int fd = dirfd(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(fd, e->d_name, 0);
    closedir(d);
}

static void put_file(const char *name, const uint8_t *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", g_fns, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        __builtin_trap();
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w <= 0)
            __builtin_trap();
        data += w;
        len -= (size_t)w;
    }
    close(fd);
}

/* True when the file holds only zero bytes (or is empty). */
static int only_zeros(const char *name)
{
    static const char zero[65536];
    char path[256], buf[65536];
    snprintf(path, sizeof(path), "%s/%s", g_fns, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n;
    int ok = 1;
    while (ok && (n = read(fd, buf, sizeof(buf))) > 0)
        ok = !memcmp(buf, zero, (size_t)n);
    close(fd);
    return ok;
}

struct seen {
    int fz;
};

static int check_doc(void *ud, const char *id, json_t *doc)
{
    struct seen *s = ud;
    if (!json_is_object(doc))
        __builtin_trap();
    if (!strcmp(id, "r.a.fz"))
        s->fz = (int)json_integer_value(json_object_get(doc, "v"));
    return 0;
}

/* At exit (libFuzzer exits through exit()): the data dir goes, so /dev/shm
 * keeps nothing. */
static void remove_root(void)
{
    empty_dir(g_fns);
    rmdir(g_fns);
    empty_dir(g_root);
    rmdir(g_root);
}

/* Control bit 1: rewrite the CRC of every well-formed record header in
 * place (over its id and data as the header's lengths take them), so the
 * fuzzer reaches what lies behind the CRC check: ids, removals, order. */
static void fix_crcs(uint8_t *j, size_t n)
{
    size_t off = 0;
    while (off < n) {
        uint8_t *nl = memchr(j + off, '\n', n - off);
        if (!nl || nl - (j + off) < 11 || nl - (j + off) > 80 || j[off + 1] != ' ' ||
            j[off + 10] != ' ')
            return;
        char head[96];
        memcpy(head, j + off, (size_t)(nl - (j + off)));
        head[nl - (j + off)] = 0;
        size_t idlen, len;
        if (sscanf(head + 11, "%zu %zu", &idlen, &len) != 2)
            return;
        size_t body = (size_t)(nl + 1 - j);
        if (idlen > n || len > n || body + idlen + len + 1 > n)
            return;
        uLong c = crc32(0L, j + body, (uInt)idlen);
        c = crc32(c, j + body + idlen, (uInt)len);
        char hex[9];
        snprintf(hex, sizeof(hex), "%08lx", (unsigned long)(c & 0xffffffffu));
        memcpy(j + off + 2, hex, 8);
        off = body + idlen + len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_root[0]) {
        snprintf(g_root, sizeof(g_root), "/dev/shm/lambdad-fuzz-journal-%ld", (long)getpid());
        snprintf(g_fns, sizeof(g_fns), "%s/functions", g_root);
        if ((mkdir(g_root, 0755) && errno != EEXIST) || (mkdir(g_fns, 0755) && errno != EEXIST))
            __builtin_trap();
        atexit(remove_root);
    }
    if (size < 3)
        return 0;
    empty_dir(g_fns);
    uint8_t ctl = data[0];
    size_t split = ((size_t)data[1] << 8 | data[2]) % (size - 2);
    data += 3;
    size -= 3;
    uint8_t *copy = NULL;
    if (ctl & 2) {
        copy = malloc(size + 1);
        if (!copy)
            return 0;
        memcpy(copy, data, size);
        if (ctl & 1) {
            fix_crcs(copy, split);
            fix_crcs(copy + split, size - split);
        } else {
            fix_crcs(copy, size);
        }
        data = copy;
    }
    if (ctl & 1) {
        put_file("journal.old", data, split);
        put_file("journal", data + split, size - split);
    } else {
        put_file("journal", data, size);
    }
    free(copy);

    struct persist *p = NULL;
    if (persist_open(&p, g_root) != 0)
        __builtin_trap(); /* a damaged journal must never stop the start-up */
    struct seen s = {0};
    if (persist_load(p, check_doc, &s) < 0)
        __builtin_trap();
    if (!only_zeros("journal"))
        __builtin_trap(); /* every record was replayed or dropped */
    char path[256];
    snprintf(path, sizeof(path), "%s/journal.old", g_fns);
    if (access(path, F_OK) == 0)
        __builtin_trap();
    if (persist_write(p, "r.a.fz", "{\"v\":42}", 8) != 0)
        __builtin_trap();
    persist_close(p);
    p = NULL;
    if (persist_open(&p, g_root) != 0)
        __builtin_trap();
    s.fz = 0;
    if (persist_load(p, check_doc, &s) < 0 || s.fz != 42)
        __builtin_trap();
    persist_close(p);
    return 0;
}
