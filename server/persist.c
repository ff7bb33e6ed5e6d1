/* persist: atomic, durable JSON documents in the data directory (see
 * persist.h). */
#include "server/persist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/log.h"

#define JOURNAL_NAME "journal"
#define JOURNAL_OLD "journal.old" /* rotated out, being checkpointed */
#define JOURNAL_CHECKPOINT (16u << 20) /* default bytes of journal before a checkpoint */
/* A journal starts as JOURNAL_ZERO_FIRST zero bytes, written and synced,
 * that the batches then overwrite in place: fdatasync of an overwrite
 * flushes the data alone, where an append also waits for a file-system
 * journal commit (the new size and blocks). When a batch would pass the
 * zeroed end, the zeros are extended by JOURNAL_ZERO_STEP (one append and
 * sync per step), up to the checkpoint size + JOURNAL_ZERO_SLACK; past that
 * the journal grows by appending. A handle written now and then keeps a
 * small journal; a busy one reaches the checkpoint size in steps. */
#define JOURNAL_ZERO_SLACK (256u << 10)
#define JOURNAL_ZERO_STEP (1u << 20)
#define JOURNAL_ZERO_FIRST (JOURNAL_ZERO_STEP + JOURNAL_ZERO_SLACK)
#define PREZERO_HEADROOM (64ull << 20) /* free space a pre-zeroing step leaves at least */

struct persist {
    char *root;    /* <data-dir> */
    char *dir;     /* <data-dir>/functions (or the subdir of persist_open_sub) */
    int dir_fd;
    int lock_fd;   /* -1 for a persist_open_sub handle: the parent holds the lock */
    int jfd;       /* <dir>/journal, written with pwrite at jsize */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_init;
    /* Under mu: */
    char *buf;     /* staged journal records not yet written */
    size_t buf_len, buf_cap;
    uint64_t staged, durable; /* tickets: last staged, last durable */
    bool committing;          /* a leader is writing a batch */
    bool checkpointing;       /* a thread is checkpointing journal.old (owns ofd) */
    int ofd;                  /* journal.old (rotated out, not yet checkpointed) or -1 */
    bool ckpt_pending;        /* journal.old waits for the checkpoint thread */
    bool ckpt_stop;           /* persist_close: the checkpoint thread ends */
    bool ckpt_started;        /* ckpt_thread runs (started at the first rotation) */
    bool ckpt_failed;         /* the last checkpoint failed: the leader delays the retry */
    pthread_t ckpt_thread;
    pthread_cond_t ckpt_cv;   /* wakes the checkpoint thread */
    unsigned long long flushes; /* journal flushes so far */
    int broken;               /* sticky -errno once the journal could not be written */
    /* Leader only (committing): */
    size_t jsize;             /* journal bytes since the last checkpoint: the write offset */
    size_t next_checkpoint;   /* jsize that triggers the next checkpoint */
    size_t zeroed;            /* journal bytes pre-zeroed (the file's size after the last
                               * step), or the limit after a failed one: no more tries.
                               * journal_prezero leaves it >= jsize + len or >= the limit */
    size_t ckpt_bytes;        /* journal bytes per checkpoint (JOURNAL_CHECKPOINT) */
    bool journal_only;        /* test hook: never update documents (see journal_open) */
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

/* Writes all of data at off (EINTR and short writes retried). Returns 0 or
 * -errno. */
static int pwrite_all(int fd, const char *data, size_t len, off_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, data, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        data += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Rewrites <dir>/<id>.json in place, not fsync'd: only a checkpoint or the
 * start-up replay writes documents, and the journal that holds the change
 * is deleted only after the documents are synced, so a document torn by a
 * crash is rewritten by the replay at the next start-up. */
static int doc_replace(struct persist *p, const char *id, const char *data, size_t len)
{
    char final[NAME_MAX + 1];
    struct stat st;
    int rc = 0;
    if (snprintf(final, sizeof(final), "%s.json", id) >= (int)sizeof(final))
        return -ENAMETOOLONG;
    int fd = openat(p->dir_fd, final, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    rc = pwrite_all(fd, data, len, 0);
    if (!rc && (fstat(fd, &st) || (st.st_size > (off_t)len && ftruncate(fd, (off_t)len))))
        rc = -errno;
    if (close(fd) && !rc)
        rc = -errno;
    return rc;
}

static int doc_unlink(struct persist *p, const char *id)
{
    char final[NAME_MAX + 1];
    if (snprintf(final, sizeof(final), "%s.json", id) >= (int)sizeof(final))
        return -ENAMETOOLONG;
    if (unlinkat(p->dir_fd, final, 0) && errno != ENOENT)
        return -errno;
    return 0;
}

/* Journal record: "<op> <crc32 hex8> <idlen> <datalen>\n" <id> <data> "\n",
 * op 'W' (write) or 'D' (remove); the CRC covers id and data. */
static uint32_t rec_crc(const char *id, size_t idlen, const char *data, size_t len)
{
    uLong c = crc32(0L, (const Bytef *)id, (uInt)idlen);
    while (len) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, (const Bytef *)data, n);
        data += n;
        len -= n;
    }
    return (uint32_t)c;
}

static const char zeros[65536];

static bool all_zero(const char *p, size_t n)
{
    while (n) {
        size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
        if (memcmp(p, zeros, k))
            return false;
        p += k;
        n -= k;
    }
    return true;
}

/* One valid record of a journal being replayed. */
struct jrec {
    const char *id, *data;
    size_t idlen, len, seq;
    char op;
};

/* Orders two records' ids (memcmp, then the shorter first). */
static int jrec_cmp_id(const struct jrec *x, const struct jrec *y)
{
    int c = memcmp(x->id, y->id, x->idlen < y->idlen ? x->idlen : y->idlen);
    if (c || x->idlen == y->idlen)
        return c;
    return x->idlen < y->idlen ? -1 : 1;
}

/* Orders records by id, then by position: the last of each id's run is
 * the one that counts. */
static int jrec_cmp(const void *a, const void *b)
{
    const struct jrec *x = a, *y = b;
    int c = jrec_cmp_id(x, y);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Replays the records of fd into the document files, up to the first torn
 * or corrupt record (that batch was never acknowledged): each document
 * once, from its last record (a checkpoint of a journal that updated one
 * function 1,000 times writes it once). */
static int journal_replay(struct persist *p, int fd, const char *name, bool startup)
{
    struct stat st;
    if (fstat(fd, &st))
        return -errno;
    if (st.st_size == 0)
        return 0;
    size_t size = (size_t)st.st_size;
    char *j = malloc(size + 1);
    if (!j)
        return -ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, j + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    j[got] = 0;
    size_t off = 0, n = 0, cap = 0;
    struct jrec *recs = NULL;
    int rc = 0;
    while (off < got) {
        char op;
        unsigned int crc;
        size_t idlen, len;
        int hl = 0;
        char *nl = memchr(j + off, '\n', got - off);
        if (!nl)
            break;
        /* sscanf measures its whole input string: end it at the header's
         * newline, or every record would scan the rest of the journal. */
        *nl = 0;
        int f = sscanf(j + off, "%c %8x %zu %zu%n", &op, &crc, &idlen, &len, &hl);
        *nl = '\n';
        if (f != 4 || j + off + hl != nl || (op != 'W' && op != 'D') || idlen == 0 ||
            idlen > NAME_MAX)
            break;
        size_t body = (size_t)(nl + 1 - j);
        if (body + idlen + len + 1 > got || j[body + idlen + len] != '\n')
            break;
        const char *id = j + body, *data = j + body + idlen;
        if (rec_crc(id, idlen, data, len) != crc)
            break;
        /* Only what persist_stage accepts: no '/', NUL or leading '.', and
         * room for ".json" in a file name. Anything else is corruption
         * (that ends the replay), not a reason to refuse the start-up. */
        if (memchr(id, '/', idlen) || memchr(id, 0, idlen) || id[0] == '.' ||
            idlen + 5 > NAME_MAX)
            break;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct jrec *nr = realloc(recs, ncap * sizeof(*recs));
            if (!nr) {
                rc = -ENOMEM;
                break;
            }
            recs = nr;
            cap = ncap;
        }
        recs[n] = (struct jrec){.id = id, .data = data, .idlen = idlen, .len = len, .seq = n, .op = op};
        n++;
        off = body + idlen + len + 1;
    }
    /* A pre-zeroed journal ends in zeros where no batch was written yet. */
    bool zero_tail = all_zero(j + off, got - off);
    size_t docs = 0;
    if (!rc && n) {
        qsort(recs, n, sizeof(*recs), jrec_cmp);
        for (size_t i = 0; i < n && !rc; i++) {
            if (i + 1 < n && !jrec_cmp_id(&recs[i], &recs[i + 1]))
                continue; /* a later record of the same id follows */
            char idz[NAME_MAX + 1];
            memcpy(idz, recs[i].id, recs[i].idlen);
            idz[recs[i].idlen] = 0;
            rc = recs[i].op == 'W' ? doc_replace(p, idz, recs[i].data, recs[i].len) : doc_unlink(p, idz);
            docs++;
        }
    }
    free(recs);
    free(j);
    if (rc) {
        LOG_ERROR("%s/%s: cannot replay: %s", p->dir, name, strerror(-rc));
        return rc;
    }
    if (!zero_tail)
        LOG_INFO("%s/%s: dropping a torn tail of %zu bytes (never acknowledged)", p->dir, name,
                 got - off);
    if (startup)
        LOG_INFO("%s/%s: replayed %zu change(s) into %zu document(s)", p->dir, name, n, docs);
    else
        LOG_DEBUG("%s/%s: checkpoint of %zu change(s) into %zu document(s)", p->dir, name, n, docs);
    return 0;
}

/* Makes the replayed document files and their directory entries durable. */
static int docs_sync(struct persist *p)
{
    return syncfs(p->dir_fd) || fsync(p->dir_fd) ? -errno : 0;
}

/* After docs_sync: deletes the rotated-out journal.old (ofd), whose changes
 * the documents now hold. */
static int old_journal_drop(struct persist *p)
{
    if (unlinkat(p->dir_fd, JOURNAL_OLD, 0) && errno != ENOENT)
        return -errno;
    if (fsync(p->dir_fd))
        return -errno;
    close(p->ofd);
    p->ofd = -1;
    return 0;
}

/* Full checkpoint with no writer and no background checkpoint running (at
 * start-up, before persist_load, at a clean close): replays journal.old (if
 * one is left) and then the journal into the document files, makes them
 * durable, drops journal.old and empties the journal. */
static int journal_recover(struct persist *p, bool startup)
{
    int rc;
    struct stat st;
    if (p->ofd < 0 && fstat(p->jfd, &st) == 0 && st.st_size == 0) {
        /* Nothing pending (a fresh data dir, or a clean stop): the
         * documents were made durable before the journal was emptied. */
        p->jsize = 0;
        return 0;
    }
    if (p->ofd >= 0 && (rc = journal_replay(p, p->ofd, JOURNAL_OLD, startup)))
        return rc;
    if ((rc = journal_replay(p, p->jfd, JOURNAL_NAME, startup)) || (rc = docs_sync(p)))
        return rc;
    if (p->ofd >= 0 && (rc = old_journal_drop(p)))
        return rc;
    if (ftruncate(p->jfd, 0))
        return -errno;
    /* Empty now, even if the sync below fails: the next batch must start
     * at offset 0 (a stale jsize would leave a hole of zeros in front of
     * it, where a replay stops). */
    p->jsize = 0;
    return fdatasync(p->jfd) ? -errno : 0;
}

/* Opens (creating) <dir>/journal; batches are written at jsize. */
static int journal_create(struct persist *p)
{
    return openat(p->dir_fd, JOURNAL_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
}

/* Fills fd with zeros from its end up to upto bytes and syncs them, so the
 * batches overwrite allocated blocks in place; *size gets the file's size
 * after. Best effort (see journal_prezero): a journal that is not (fully)
 * pre-zeroed still works, its batches then extend the file. Returns 0 or
 * -errno; -ENOSPC when the file system would be left with less than
 * PREZERO_HEADROOM free: on a nearly full disk the zeros would take the
 * room the checkpoint needs to write the documents (and a start-up replay
 * could then not finish). */
static int prezero_fd(int fd, size_t upto, size_t *size)
{
    struct stat st;
    struct statvfs vfs;
    if (fstat(fd, &st))
        return -errno;
    *size = (size_t)st.st_size;
    if (*size >= upto)
        return 0;
    if (fstatvfs(fd, &vfs))
        return -errno;
    if ((uint64_t)vfs.f_bavail * vfs.f_frsize < (uint64_t)(upto - *size) + PREZERO_HEADROOM)
        return -ENOSPC;
    for (size_t off = *size; off < upto;) {
        size_t n = upto - off;
        if (n > sizeof(zeros))
            n = sizeof(zeros);
        int rc = pwrite_all(fd, zeros, n, (off_t)off);
        if (rc)
            return rc;
        off += n;
        *size = off;
    }
    return fdatasync(fd) ? -errno : 0;
}

/* Leader: before a batch of len bytes at jsize, makes sure the zeroed part
 * of the journal covers it (see JOURNAL_ZERO_FIRST). A failure leaves the
 * batch to append (logged once per journal: zeroed is then taken as the
 * limit). */
static void journal_prezero(struct persist *p, size_t len)
{
    size_t limit = p->ckpt_bytes + JOURNAL_ZERO_SLACK;
    if (p->jsize == 0)
        p->zeroed = 0; /* a fresh or emptied journal */
    if (p->jsize + len <= p->zeroed || p->zeroed >= limit)
        return;
    size_t upto = p->zeroed ? p->zeroed + JOURNAL_ZERO_STEP : JOURNAL_ZERO_FIRST;
    while (upto < p->jsize + len + JOURNAL_ZERO_SLACK && upto < limit)
        upto += JOURNAL_ZERO_STEP;
    if (upto > limit)
        upto = limit;
    size_t size = 0;
    int rc = prezero_fd(p->jfd, upto, &size);
    p->zeroed = size;
    if (rc) {
        LOG_WARN("%s/" JOURNAL_NAME ": cannot pre-zero (%s); batches append instead", p->dir,
                 strerror(-rc));
        p->zeroed = limit > size ? limit : size;
    }
}

static int journal_open(struct persist *p)
{
    p->ofd = openat(p->dir_fd, JOURNAL_OLD, O_RDONLY | O_CLOEXEC);
    if (p->ofd < 0 && errno != ENOENT)
        return -errno;
    p->jfd = journal_create(p);
    if (p->jfd < 0)
        return -errno;
    if (fsync(p->dir_fd))
        return -errno;
    int rc = journal_recover(p, true);
    if (rc)
        return rc;
    p->ckpt_bytes = JOURNAL_CHECKPOINT;
    p->next_checkpoint = p->ckpt_bytes;
    if (pthread_mutex_init(&p->mu, NULL) || pthread_cond_init(&p->cv, NULL) ||
        pthread_cond_init(&p->ckpt_cv, NULL))
        return -ENOMEM;
    p->sync_init = true;
    /* Fault injection for the e2e crash tests: acknowledged changes then
     * live only in the journal, so a kill -9 must be repaired by replay. */
    const char *jo = getenv("LAMBDAD_TEST_JOURNAL_ONLY");
    p->journal_only = jo && !strcmp(jo, "1");
    /* For the tests of rotation and checkpoint (unit and kill -9): a
     * smaller journal per checkpoint, so a few thousand changes rotate it. */
    const char *cb = getenv("LAMBDAD_TEST_JOURNAL_CHECKPOINT");
    if (cb && *cb) {
        char *end = NULL;
        unsigned long long v = strtoull(cb, &end, 10);
        if (*end == 0 && v >= 4096 && v <= JOURNAL_CHECKPOINT)
            p->ckpt_bytes = p->next_checkpoint = (size_t)v;
    }
    return 0;
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
    return journal_open(p);
}

int persist_open(struct persist **out, const char *data_dir)
{
    char path[PATH_MAX];
    int rc;
    struct persist *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->dir_fd = p->lock_fd = p->jfd = p->ofd = -1;
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
    p->dir_fd = p->lock_fd = p->jfd = p->ofd = -1;
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
    if (p->ckpt_started) {
        /* The checkpoint thread finishes a pending checkpoint, then ends. */
        pthread_mutex_lock(&p->mu);
        p->ckpt_stop = true;
        pthread_cond_signal(&p->ckpt_cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->ckpt_thread, NULL);
    }
    if (p->jfd >= 0) {
        /* A clean stop leaves an empty journal. */
        if (p->sync_init && (p->jsize || p->ofd >= 0) && !p->journal_only && !p->broken)
            journal_recover(p, false);
        close(p->jfd);
    }
    if (p->ofd >= 0)
        close(p->ofd);
    if (p->sync_init) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        pthread_cond_destroy(&p->ckpt_cv);
    }
    free(p->buf);
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


/* Appends one record to the staged batch (mu held). */
static int stage_locked(struct persist *p, const char *id, const char *data, size_t len)
{
    size_t idlen = strlen(id);
    char head[96];
    int hl = snprintf(head, sizeof(head), "%c %08" PRIx32 " %zu %zu\n", data ? 'W' : 'D',
                      rec_crc(id, idlen, data ? data : "", data ? len : 0), idlen, data ? len : 0);
    size_t need = (size_t)hl + idlen + (data ? len : 0) + 1;
    if (p->buf_len + need > p->buf_cap) {
        size_t cap = p->buf_cap ? p->buf_cap : 16384;
        while (cap < p->buf_len + need)
            cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (!nb)
            return -ENOMEM;
        p->buf = nb;
        p->buf_cap = cap;
    }
    char *w = p->buf + p->buf_len;
    memcpy(w, head, (size_t)hl);
    memcpy(w + hl, id, idlen);
    if (data)
        memcpy(w + hl + idlen, data, len);
    w[need - 1] = '\n';
    p->buf_len += need;
    return 0;
}

int persist_stage(struct persist *p, const char *id, const char *data, size_t len, uint64_t *ticket)
{
    char final[NAME_MAX + 1];
    if (snprintf(final, sizeof(final), "%s.json", id) >= (int)sizeof(final))
        return -ENAMETOOLONG;
    pthread_mutex_lock(&p->mu);
    int rc = p->broken ? p->broken : stage_locked(p, id, data, len);
    if (!rc)
        *ticket = ++p->staged;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Leader: writes the batch at the journal's end (over its zeros) with one
 * pwrite + fdatasync. */
static int journal_append(struct persist *p, const char *buf, size_t len)
{
    /* Lazily, at a journal's first batch (an empty journal: after open,
     * rotation or checkpoint_now) and then in steps: a handle that is never
     * written (most of the seven at most start-ups) costs no write + sync,
     * and a rotation does not do it with mu held. */
    journal_prezero(p, len);
    int rc = pwrite_all(p->jfd, buf, len, (off_t)p->jsize);
    if (!rc && fdatasync(p->jfd))
        rc = -errno;
    if (!rc)
        p->jsize += len;
    return rc;
}

/* Leader (committing, mu held), after its batch is durable: every
 * ckpt_bytes (16 MiB) the journal is rotated out to journal.old and a
 * fresh journal (pre-zeroed at its first batch) takes the next batches, so
 * the checkpoint of journal.old (the start-up replay: each document
 * rewritten in place from its last record, then syncfs + directory fsync,
 * then unlink) runs while writers go on committing. Returns true when that
 * checkpoint must run (the caller hands it to the checkpoint thread).
 * Between checkpoints the documents lag; the journals are the durable copy. */
static bool rotate_locked(struct persist *p)
{
    if (p->ckpt_failed) {
        /* journal.old stays; the checkpoint is retried once another
         * ckpt_bytes of journal are written (jsize is the leader's: the
         * checkpoint thread cannot read it). */
        p->ckpt_failed = false;
        p->next_checkpoint = p->jsize + p->ckpt_bytes;
    }
    if (p->journal_only || p->jsize < p->next_checkpoint || p->checkpointing)
        return false;
    if (p->ofd < 0) {
        /* The new journal's directory entry is made durable before any
         * record in it is acknowledged; a crash in between leaves
         * journal.old (and maybe an empty journal), replayed at start-up. */
        int e = 0, nfd = -1;
        if (renameat(p->dir_fd, JOURNAL_NAME, p->dir_fd, JOURNAL_OLD)) {
            e = errno;
        } else if ((nfd = journal_create(p)) < 0 || fsync(p->dir_fd)) {
            e = errno;
            if (nfd >= 0)
                close(nfd);
            if (renameat(p->dir_fd, JOURNAL_OLD, p->dir_fd, JOURNAL_NAME) || fsync(p->dir_fd)) {
                LOG_ERROR("%s: cannot restore the journal after a failed rotation: %s", p->dir,
                          strerror(errno));
                p->broken = -e;
            }
        }
        if (e) {
            LOG_WARN("%s: cannot rotate the journal (%s); it keeps growing", p->dir, strerror(e));
            p->next_checkpoint = p->jsize + p->ckpt_bytes;
            return false;
        }
        p->ofd = p->jfd;
        p->jfd = nfd;
        p->jsize = 0;
    }
    p->next_checkpoint = p->ckpt_bytes;
    p->checkpointing = true;
    return true;
}

/* The checkpoint of journal.old, outside mu, on the checkpoint thread
 * (or, if that cannot start, on the thread whose commit rotated the
 * journal); commits of the new journal go on meanwhile. */
static void checkpoint_old(struct persist *p)
{
    int r = journal_replay(p, p->ofd, JOURNAL_OLD, false);
    if (!r)
        r = docs_sync(p);
    if (!r)
        r = old_journal_drop(p);
    pthread_mutex_lock(&p->mu);
    if (r) {
        /* journal.old stays: retried at the next checkpoint, replayed at
         * start-up. */
        LOG_WARN("%s: checkpoint failed (%s); the journal keeps growing", p->dir, strerror(-r));
        p->ckpt_failed = true;
    }
    p->checkpointing = false;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *checkpoint_main(void *arg)
{
    struct persist *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->ckpt_pending && !p->ckpt_stop)
            pthread_cond_wait(&p->ckpt_cv, &p->mu);
        if (!p->ckpt_pending)
            break;
        p->ckpt_pending = false;
        pthread_mutex_unlock(&p->mu);
        checkpoint_old(p);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* mu held, after rotate_locked chose a checkpoint: hands it to the
 * checkpoint thread (started on the first rotation). Returns false when
 * the thread cannot start: the caller checkpoints itself. */
static bool checkpoint_handoff(struct persist *p)
{
    if (!p->ckpt_started) {
        if (pthread_create(&p->ckpt_thread, NULL, checkpoint_main, p)) {
            LOG_WARN("%s: cannot start the checkpoint thread; the writer checkpoints", p->dir);
            return false;
        }
        pthread_setname_np(p->ckpt_thread, "checkpoint");
        p->ckpt_started = true;
    }
    p->ckpt_pending = true;
    pthread_cond_signal(&p->ckpt_cv);
    return true;
}

int persist_commit(struct persist *p, uint64_t ticket)
{
    bool checkpoint = false;
    pthread_mutex_lock(&p->mu);
    while (p->durable < ticket && !p->broken) {
        if (p->committing) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        /* Become the leader of everything staged so far. */
        p->committing = true;
        uint64_t upto = p->staged;
        char *buf = p->buf;
        size_t len = p->buf_len, cap = p->buf_cap;
        p->buf = NULL;
        p->buf_len = p->buf_cap = 0;
        pthread_mutex_unlock(&p->mu);
        int rc = journal_append(p, buf, len);
        pthread_mutex_lock(&p->mu);
        if (rc) {
            LOG_ERROR("%s/" JOURNAL_NAME ": cannot write: %s; every later change fails", p->dir,
                      strerror(-rc));
            p->broken = rc;
        } else {
            p->durable = upto;
            p->flushes++;
            if (rotate_locked(p) && !checkpoint_handoff(p))
                checkpoint = true;
        }
        /* Reuse the batch buffer when nothing was staged meanwhile. */
        if (!p->buf && cap <= (1u << 20)) {
            p->buf = buf;
            p->buf_cap = cap;
        } else {
            free(buf);
        }
        p->committing = false;
        pthread_cond_broadcast(&p->cv);
    }
    int rc = p->durable >= ticket ? 0 : p->broken;
    pthread_mutex_unlock(&p->mu);
    if (checkpoint)
        checkpoint_old(p);
    return rc;
}

unsigned long long persist_flushes(struct persist *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned long long n = p->flushes;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int persist_write(struct persist *p, const char *id, const char *data, size_t len)
{
    uint64_t t;
    int rc = persist_stage(p, id, data, len, &t);
    return rc ? rc : persist_commit(p, t);
}

int persist_remove(struct persist *p, const char *id)
{
    uint64_t t;
    int rc = persist_stage(p, id, NULL, 0, &t);
    return rc ? rc : persist_commit(p, t);
}

/* Brings the documents up to date before they are read back (a reload
 * with the handle open; at start-up the journal is already empty). */
static void checkpoint_now(struct persist *p)
{
    if (!p->sync_init)
        return;
    pthread_mutex_lock(&p->mu);
    while (p->committing || p->checkpointing)
        pthread_cond_wait(&p->cv, &p->mu);
    bool need = (p->jsize || p->ofd >= 0) && !p->journal_only && !p->broken;
    if (need)
        p->committing = true;
    pthread_mutex_unlock(&p->mu);
    if (!need)
        return;
    int r = journal_recover(p, false);
    if (r)
        LOG_WARN("%s: checkpoint failed (%s)", p->dir, strerror(-r));
    pthread_mutex_lock(&p->mu);
    p->committing = false;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int persist_load(struct persist *p, int (*fn)(void *ud, const char *id, json_t *doc), void *ud)
{
    checkpoint_now(p);
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
