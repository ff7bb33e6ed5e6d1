/* Unit tests for server/persist.c: round trip, replacement, removal, the
 * data-dir lock, torn temp files and corrupt documents. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "server/persist.h"
#include "testing.h"

struct seen {
    int n;
    char ids[8][128];
    char names[8][64];
};

static int collect(void *ud, const char *id, json_t *doc)
{
    struct seen *s = ud;
    if (s->n < 8) {
        snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", id);
        snprintf(s->names[s->n], sizeof(s->names[0]), "%s", json_string_value(json_object_get(doc, "name")));
    }
    s->n++;
    return 0;
}

static int find(const struct seen *s, const char *id)
{
    for (int i = 0; i < s->n && i < 8; i++)
        if (!strcmp(s->ids[i], id))
            return i;
    return -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Concurrent writers: the registry's pattern (stage under a writer mutex,
 * commit outside it) from 4 threads. */
struct writer_arg {
    struct persist *p;
    pthread_mutex_t *mu;
    int t;
    int failures;
};

static void *writer(void *arg)
{
    struct writer_arg *a = arg;
    /* 4 x 400 changes of ~1 KB: more than 1 MiB, so the journal rotates
     * and the checkpoint thread runs while the writers commit. */
    for (int i = 0; i < 400; i++) {
        char id[64], doc[1100];
        uint64_t ticket = 0;
        snprintf(id, sizeof(id), "r.a.t%d-%d", a->t, i % 5);
        snprintf(doc, sizeof(doc), "{\"name\":\"t%d-%d\",\"v\":%d,\"pad\":\"%01000d\"}", a->t,
                 i % 5, i, 0);
        pthread_mutex_lock(a->mu);
        int rc = persist_stage(a->p, id, doc, strlen(doc), &ticket);
        pthread_mutex_unlock(a->mu);
        if (rc || persist_commit(a->p, ticket))
            a->failures++;
    }
    return NULL;
}

static int check_last(void *ud, const char *id, json_t *doc)
{
    int *bad = ud, t, k;
    if (sscanf(id, "r.a.t%d-%d", &t, &k) == 2 && json_integer_value(json_object_get(doc, "v")) != 395 + k)
        (*bad)++;
    return 0;
}

/* The "v" of the document of id under dir/data/functions, or -1 when it
 * is missing or does not parse. */
static long long doc_v(const char *dir, const char *id)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/data/functions/%s.json", dir, id);
    json_t *doc = json_load_file(path, 0, NULL);
    long long v = doc ? json_integer_value(json_object_get(doc, "v")) : -1;
    json_decref(doc);
    return v;
}

/* Bytes of journal records in the file at path, i.e. up to its zero tail
 * (a journal is pre-zeroed and written in place); -1 if it cannot be read. */
static long journal_used(const char *path)
{
    FILE *f = fopen(path, "rb");
    long used = 0, off = 0;
    int c;
    if (!f)
        return -1;
    while ((c = getc(f)) != EOF) {
        off++;
        if (c)
            used = off;
    }
    fclose(f);
    return used;
}

/* Writes n documents "r.a.<prefix><4 digits>" of ~1.1 KB each ("v" = i),
 * each durably on its own. Returns 0, or -1 at the first failure. */
static int write_padded(struct persist *p, const char *prefix, int n)
{
    char big[1100], id[32];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "r.a.%s%04d", prefix, i);
        int h = snprintf(big, sizeof(big), "{\"name\":\"%s%04d\",\"v\":%d,\"pad\":\"", prefix, i, i);
        memset(big + h, 'x', 1000);
        snprintf(big + h + 1000, sizeof(big) - (size_t)h - 1000, "\"}");
        if (persist_write(p, id, big, strlen(big)))
            return -1;
    }
    return 0;
}

/* Mounts a tmpfs (opts) at <dir>/<name>, its path in mnt, and opens a
 * handle on <mnt>/data in *q. Returns false, the test marked skipped, when
 * the mount is refused (it needs root). */
static bool tmpfs_persist(const char *dir, const char *name, const char *opts, char *mnt, size_t len,
                          struct persist **q)
{
    char path[600];
    snprintf(mnt, len, "%.200s/%s", dir, name);
    CHECK(mkdir(mnt, 0755) == 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, opts)) {
        fprintf(stderr, "cannot mount a tmpfs (%s): this case needs root\n", strerror(errno));
        CHECK(TEST_SKIP() == 77);
        return false;
    }
    snprintf(path, sizeof(path), "%s/data", mnt);
    CHECK(persist_open(q, path) == 0);
    return true;
}

/* Waits (up to 30 s) until path no longer exists: the background
 * checkpoint deletes journal.old when it is done. */
static bool gone_within(const char *path)
{
    for (int i = 0; i < 3000; i++) {
        if (access(path, F_OK) != 0)
            return true;
        usleep(10000);
    }
    return false;
}

/* Appends one journal record (data NULL: a removal) to buf. */
static void rec_w(char *buf, size_t cap, const char *id, const char *data)
{
    size_t idlen = strlen(id), len = data ? strlen(data) : 0;
    uLong c = crc32(crc32(0L, (const Bytef *)id, (uInt)idlen), (const Bytef *)(data ? data : ""), (uInt)len);
    snprintf(buf, cap, "%c %08lx %zu %zu\n%s%s\n", data ? 'W' : 'D', c, idlen, len, id, data ? data : "");
}

/* Leaves what a crash could: journal.old (if old) and journal with these
 * records under dir/data/functions, then opens dir/data (the start-up
 * replay). Returns persist_open's result. */
static int open_after_crash(const char *dir, const char *old, const char *cur, struct persist **p)
{
    char path[600];
    if (old) {
        snprintf(path, sizeof(path), "%s/data/functions/journal.old", dir);
        write_file(path, old);
    }
    snprintf(path, sizeof(path), "%s/data/functions/journal", dir);
    write_file(path, cur);
    snprintf(path, sizeof(path), "%s/data", dir);
    return persist_open(p, path);
}

int main(void)
{
    char dir[] = "/tmp/lambdad-test-persist-XXXXXX", path[512], id[128];
    struct persist *p = NULL, *p2 = NULL;
    struct seen s;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/data", dir);

    CHECK(persist_open(&p, path) == 0);
    /* A second lambdad on the same directory is refused. */
    CHECK(persist_open(&p2, path) == -EBUSY);

    persist_id("us-east-1", "000000000000", "fn-a", id, sizeof(id));
    CHECK_STR(id, "us-east-1.000000000000.fn-a");
    CHECK(persist_write(p, id, "{\"name\":\"fn-a\",\"v\":1}", 21) == 0);
    CHECK(persist_write(p, id, "{\"name\":\"fn-a\",\"v\":2}", 21) == 0);
    persist_id("eu-west-1", "123456789012", "fn-b", id, sizeof(id));
    CHECK(persist_write(p, id, "{\"name\":\"fn-b\"}", 15) == 0);
    persist_id("us-east-1", "000000000000", "gone", id, sizeof(id));
    CHECK(persist_write(p, id, "{\"name\":\"gone\"}", 15) == 0);
    CHECK(persist_remove(p, id) == 0);
    CHECK(persist_remove(p, id) == 0); /* absent is fine */
    persist_close(p);

    /* Simulate a crash mid-write: a torn temp file, plus a corrupt document. */
    snprintf(path, sizeof(path), "%s/data/functions/.us-east-1.000000000000.fn-c.json.tmp.99.1", dir);
    write_file(path, "{\"name\":\"fn-");
    snprintf(path, sizeof(path), "%s/data/functions/us-east-1.000000000000.bad.json", dir);
    write_file(path, "{not json");

    snprintf(path, sizeof(path), "%s/data", dir);
    CHECK(persist_open(&p, path) == 0);
    snprintf(path, sizeof(path), "%s/data/functions/.us-east-1.000000000000.fn-c.json.tmp.99.1", dir);
    CHECK(access(path, F_OK) != 0); /* torn temp removed */
    memset(&s, 0, sizeof(s));
    CHECK(persist_load(p, collect, &s) == 2);
    CHECK(s.n == 2);
    int a = find(&s, "us-east-1.000000000000.fn-a"), b = find(&s, "eu-west-1.123456789012.fn-b");
    CHECK(a >= 0 && b >= 0);
    if (a >= 0)
        CHECK_STR(s.names[a], "fn-a");
    CHECK(find(&s, "us-east-1.000000000000.gone") < 0);
    snprintf(path, sizeof(path), "%s/data/functions/us-east-1.000000000000.bad.json.corrupt", dir);
    CHECK(access(path, F_OK) == 0); /* moved aside, not fatal */

    /* The replacement won: v is 2. */
    CHECK(doc_v(dir, "us-east-1.000000000000.fn-a") == 2);

    /* Group commit: three staged changes become durable with one journal
     * flush, led by whoever commits first; earlier tickets are then done. */
    uint64_t t1, t2, t3;
    unsigned long long f0 = persist_flushes(p);
    CHECK(persist_stage(p, "r.a.g1", "{\"name\":\"g1\"}", 13, &t1) == 0);
    CHECK(persist_stage(p, "r.a.g2", "{\"name\":\"g2\"}", 13, &t2) == 0);
    CHECK(persist_stage(p, "r.a.g1", NULL, 0, &t3) == 0); /* removed again */
    CHECK(t1 < t2 && t2 < t3);
    CHECK(persist_commit(p, t3) == 0);
    CHECK(persist_flushes(p) == f0 + 1);
    CHECK(persist_commit(p, t1) == 0 && persist_commit(p, t2) == 0);
    CHECK(persist_flushes(p) == f0 + 1);
    /* Until a checkpoint the journal is the only copy: no document yet. */
    snprintf(path, sizeof(path), "%s/data/functions/r.a.g2.json", dir);
    CHECK(access(path, F_OK) != 0);
    persist_close(p);
    /* A clean close checkpoints: the documents are written, in order. */
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof(path), "%s/data/functions/r.a.g1.json", dir);
    CHECK(access(path, F_OK) != 0);
    /* A clean close leaves an empty journal. */
    struct stat jst;
    snprintf(path, sizeof(path), "%s/data/functions/journal", dir);
    CHECK(stat(path, &jst) == 0 && jst.st_size == 0);

    /* A crash after the journal flush but before the documents were
     * written (or with a document torn): start-up replays the journal in
     * order, stops at a torn record (never acknowledged) and empties it. */
    {
        const char *torn = "{\"name\":\"torn\"}";
        char rec[1024];
        rec_w(rec, sizeof(rec), "r.a.j1", "{\"name\":\"j1\",\"v\":1}");
        rec_w(rec + strlen(rec), sizeof(rec) - strlen(rec), "r.a.j1", "{\"name\":\"j1\",\"v\":2}");
        rec_w(rec + strlen(rec), sizeof(rec) - strlen(rec), "r.a.g2", NULL);
        rec_w(rec + strlen(rec), sizeof(rec) - strlen(rec), "r.a.zz", torn);
        rec[strlen(rec) - 1 - (strlen(torn) - 5)] = 0; /* only 5 bytes of its data */
        write_file(path, rec);
        snprintf(path, sizeof(path), "%s/data/functions/r.a.j1.json", dir);
        write_file(path, "{\"name\":\"j1\",\"v"); /* torn document */
    }
    snprintf(path, sizeof(path), "%s/data", dir);
    CHECK(persist_open(&p, path) == 0);
    CHECK(doc_v(dir, "r.a.j1") == 2);
    snprintf(path, sizeof(path), "%s/data/functions/r.a.g2.json", dir);
    CHECK(access(path, F_OK) != 0); /* the removal was replayed */
    snprintf(path, sizeof(path), "%s/data/functions/r.a.zz.json", dir);
    CHECK(access(path, F_OK) != 0); /* the torn record was not */
    snprintf(path, sizeof(path), "%s/data/functions/journal", dir);
    CHECK(journal_used(path) == 0);
    persist_close(p);

    /* A crash during a background checkpoint leaves the rotated-out
     * journal.old next to the new journal: start-up replays journal.old,
     * then the journal (so a later change wins), and drops journal.old. */
    {
        char old[512], cur[512];
        rec_w(old, sizeof(old), "r.a.k1", "{\"name\":\"k1\",\"v\":1}");
        rec_w(old + strlen(old), sizeof(old) - strlen(old), "r.a.k2", "{\"name\":\"k2\"}");
        rec_w(cur, sizeof(cur), "r.a.k1", "{\"name\":\"k1\",\"v\":2}");
        rec_w(cur + strlen(cur), sizeof(cur) - strlen(cur), "r.a.k2", NULL);
        CHECK(open_after_crash(dir, old, cur, &p) == 0);
        CHECK(doc_v(dir, "r.a.k1") == 2);
        snprintf(path, sizeof(path), "%s/data/functions/r.a.k2.json", dir);
        CHECK(access(path, F_OK) != 0);
        snprintf(path, sizeof(path), "%s/data/functions/journal.old", dir);
        CHECK(access(path, F_OK) != 0);
        snprintf(path, sizeof(path), "%s/data/functions/journal", dir);
        CHECK(journal_used(path) == 0);
        persist_close(p);
    }

    /* The replay writes each document once, from its last record; ids
     * that are prefixes of each other stay apart, and a removal followed
     * by a write (or the reverse) ends as the later record says. */
    {
        char cur[2048];
        const char *seq[][2] = {
            {"r.a.x", "{\"name\":\"x\",\"v\":1}"}, {"r.a.xy", "{\"name\":\"xy\",\"v\":1}"},
            {"r.a.x", NULL}, {"r.a.xy", "{\"name\":\"xy\",\"v\":2}"},
            {"r.a.x", "{\"name\":\"x\",\"v\":3}"}, {"r.a.y", "{\"name\":\"y\",\"v\":1}"},
            {"r.a.y", NULL}, {"r.a.xy", "{\"name\":\"xy\",\"v\":4}"},
        };
        cur[0] = 0;
        for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
            rec_w(cur + strlen(cur), sizeof(cur) - strlen(cur), seq[i][0], seq[i][1]);
        snprintf(path, sizeof(path), "%s/data/functions/r.a.y.json", dir);
        write_file(path, "{\"name\":\"y\",\"v\":0}"); /* an older document */
        CHECK(open_after_crash(dir, NULL, cur, &p) == 0);
        CHECK(doc_v(dir, "r.a.x") == 3);
        CHECK(doc_v(dir, "r.a.xy") == 4);
        CHECK(access(path, F_OK) != 0); /* y: written, then removed */
        persist_close(p);
    }

    /* A record whose id could not be a document name (251 bytes: no room
     * for ".json"; persist_stage never writes one) is corruption: the
     * replay ends there, the start-up does not fail (it used to, with
     * ENAMETOOLONG, found by fuzz_journal's seed). */
    {
        char rec[1024], longid[260];
        memset(longid, 'n', 251);
        memcpy(longid, "r.a.", 4);
        longid[251] = 0;
        rec_w(rec, sizeof(rec), "r.a.l1", "{\"name\":\"l1\",\"v\":5}");
        rec_w(rec + strlen(rec), sizeof(rec) - strlen(rec), longid, "{\"v\":1}");
        rec_w(rec + strlen(rec), sizeof(rec) - strlen(rec), "r.a.l2", "{\"name\":\"l2\"}");
        CHECK(open_after_crash(dir, NULL, rec, &p) == 0);
        CHECK(doc_v(dir, "r.a.l1") == 5);
        snprintf(path, sizeof(path), "%s/data/functions/r.a.l2.json", dir);
        CHECK(access(path, F_OK) != 0); /* after the corrupt record: not replayed */
        persist_close(p);
    }

    /* A crash with a pre-zeroed journal: records, then the zeros no batch
     * reached. Every record is replayed; the zeros are the clean end. */
    {
        char cur[512 + 4096];
        rec_w(cur, sizeof(cur), "r.a.z1", "{\"name\":\"z1\",\"v\":1}");
        rec_w(cur + strlen(cur), sizeof(cur) - strlen(cur), "r.a.z1", "{\"name\":\"z1\",\"v\":7}");
        size_t used = strlen(cur);
        memset(cur + used, 0, 4096);
        snprintf(path, sizeof(path), "%s/data/functions/journal", dir);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(cur, 1, used + 4096, f) == used + 4096);
        if (f)
            fclose(f);
        snprintf(path, sizeof(path), "%s/data", dir);
        CHECK(persist_open(&p, path) == 0);
        CHECK(doc_v(dir, "r.a.z1") == 7);
        /* Open leaves an empty journal; its first batch pre-zeroes it and
         * is written in place, and so is the next one. */
        snprintf(path, sizeof(path), "%s/data/functions/journal", dir);
        CHECK(stat(path, &jst) == 0 && jst.st_size == 0);
        CHECK(persist_write(p, "r.a.z2", "{\"name\":\"z2\"}", 13) == 0);
        long w = journal_used(path);
        CHECK(w > 13 && w < 200 && stat(path, &jst) == 0 && jst.st_size >= (1 << 20));
        CHECK(persist_write(p, "r.a.z3", "{\"name\":\"z3\"}", 13) == 0);
        long w2 = journal_used(path);
        struct stat jst2;
        CHECK(w2 > w && w2 < 400 && stat(path, &jst2) == 0 && jst2.st_size == jst.st_size);
        /* A handle never written keeps an empty journal (no pre-zeroing). */
        struct persist *q = NULL;
        CHECK(persist_open_sub(&q, p, "layers") == 0);
        snprintf(path, sizeof(path), "%s/data/layers/journal", dir);
        CHECK(stat(path, &jst) == 0 && jst.st_size == 0);
        if (q)
            persist_close(q);
        CHECK(stat(path, &jst) == 0 && jst.st_size == 0);
        persist_close(p);
    }

    /* With the default checkpoint size (16 MiB) a journal past its first
     * 1.25 MiB of zeros is not rotated: its zeros grow by 1 MiB steps, the
     * batches are still written in place (a zero tail remains), no
     * document is written before the close, and a reopen sees every change. */
    {
        snprintf(path, sizeof(path), "%s/data", dir);
        CHECK(persist_open(&p, path) == 0);
        CHECK(write_padded(p, "grow", 1500) == 0);
        struct stat jst;
        snprintf(path, sizeof(path), "%s/data/functions/journal", dir);
        long used = journal_used(path);
        /* 1,500 records of ~1.07 KB: ~1.53 MiB, zeros to 2.25 MiB. */
        CHECK(used > (3 << 19) && used < (2 << 20));
        CHECK(stat(path, &jst) == 0 && jst.st_size == (9 << 18));
        snprintf(path, sizeof(path), "%s/data/functions/journal.old", dir);
        CHECK(access(path, F_OK) != 0);
        snprintf(path, sizeof(path), "%s/data/functions/r.a.grow0000.json", dir);
        CHECK(access(path, F_OK) != 0);
        persist_close(p);
        CHECK(access(path, F_OK) == 0);
        snprintf(path, sizeof(path), "%s/data", dir);
        CHECK(persist_open(&p, path) == 0);
        CHECK(doc_v(dir, "r.a.grow1499") == 1499);
        persist_close(p);
    }

    /* From here on a checkpoint every 1 MiB of journal (the test hook), so
     * a few thousand small changes rotate it. */
    CHECK(setenv("LAMBDAD_TEST_JOURNAL_CHECKPOINT", "1048576", 1) == 0);

    /* Past 1 MiB of journal the journal is rotated out and checkpointed
     * while writing goes on: the documents appear without a close, the
     * journal starts over, journal.old is gone once its checkpoint is done,
     * and a reopen sees every change. */
    {
        snprintf(path, sizeof(path), "%s/data", dir);
        CHECK(persist_open(&p, path) == 0);
        CHECK(write_padded(p, "rot", 1100) == 0);
        /* The checkpoint runs on its own thread: wait for it to finish. */
        snprintf(path, sizeof(path), "%s/data/functions/journal.old", dir);
        CHECK(gone_within(path));
        snprintf(path, sizeof(path), "%s/data/functions/r.a.rot0000.json", dir);
        CHECK(access(path, F_OK) == 0);
        snprintf(path, sizeof(path), "%s/data/functions/journal", dir);
        long used = journal_used(path);
        CHECK(used > 0 && used < (1 << 20));
        persist_close(p);
        snprintf(path, sizeof(path), "%s/data", dir);
        CHECK(persist_open(&p, path) == 0);
        struct seen s = {0};
        CHECK(persist_load(p, collect, &s) >= 1100 && s.n >= 1100);
        CHECK(doc_v(dir, "r.a.rot1099") == 1099);
        persist_close(p);
    }

    /* 4 concurrent writers: every change durable and in order; a reopen
     * sees each document's last version. */
    snprintf(path, sizeof(path), "%s/data", dir);
    CHECK(persist_open(&p, path) == 0);
    {
        pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_t th[4];
        struct writer_arg args[4];
        unsigned long long before = persist_flushes(p);
        for (int t = 0; t < 4; t++) {
            args[t] = (struct writer_arg){.p = p, .mu = &mu, .t = t};
            CHECK(pthread_create(&th[t], NULL, writer, &args[t]) == 0);
        }
        for (int t = 0; t < 4; t++) {
            pthread_join(th[t], NULL);
            CHECK(args[t].failures == 0);
        }
        CHECK(persist_flushes(p) - before <= 1600);
        /* A checkpoint ran beside the writers: documents exist before any
         * close. */
        snprintf(path, sizeof(path), "%s/data/functions/journal.old", dir);
        CHECK(gone_within(path));
        CHECK(doc_v(dir, "r.a.t0-0") >= 0);
        snprintf(path, sizeof(path), "%s/data", dir);
        persist_close(p);
        CHECK(persist_open(&p, path) == 0);
        int bad = 0;
        CHECK(persist_load(p, check_last, &bad) >= 20);
        CHECK(bad == 0);
        persist_close(p);
    }

    /* A nearly full disk (a 2 MiB tmpfs): no pre-zeroing there (it would
     * take the room the documents need), changes still durable, and the
     * checkpoint at close and the reopen work. Needs root for the mount. */
    {
        char mnt[256];
        struct persist *q = NULL;
        if (tmpfs_persist(dir, "small", "size=2m", mnt, sizeof(mnt), &q)) {
            snprintf(path, sizeof(path), "%s/data/functions/journal", mnt);
            struct stat jst2;
            CHECK(stat(path, &jst2) == 0 && jst2.st_size == 0);
            if (q) {
                CHECK(persist_write(q, "r.a.full", "{\"v\":3}", 7) == 0);
                CHECK(journal_used(path) > 7);
                persist_close(q);
            }
            snprintf(path, sizeof(path), "%s/data", mnt);
            q = NULL;
            CHECK(persist_open(&q, path) == 0);
            struct seen s = {0};
            CHECK(q && persist_load(q, collect, &s) == 1 && find(&s, "r.a.full") >= 0);
            persist_close(q);
            CHECK(umount(mnt) == 0);
        }
    }

    /* A checkpoint that fails (no inode left for the documents) leaves
     * journal.old and every change in the journals; writers go on, the
     * checkpoint is retried later and fails again, and once there is room
     * a reopen replays everything. */
    {
        char mnt[256];
        struct persist *q = NULL;
        if (tmpfs_persist(dir, "noinodes", "size=16m,nr_inodes=12", mnt, sizeof(mnt), &q)) {
            /* ~1.1 MB: past the 1 MiB checkpoint, whose documents cannot
             * all be created; then ~2.2 MB more, past the retry point. */
            CHECK(q && write_padded(q, "ni", 1000) == 0);
            snprintf(path, sizeof(path), "%s/data/functions/journal.old", mnt);
            CHECK(access(path, F_OK) == 0);
            CHECK(q && write_padded(q, "nj", 2000) == 0);
            CHECK(access(path, F_OK) == 0);
            persist_close(q); /* its full checkpoint fails the same way */
            CHECK(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=16m,nr_inodes=8192") == 0);
            snprintf(path, sizeof(path), "%s/data", mnt);
            q = NULL;
            CHECK(persist_open(&q, path) == 0);
            struct seen s = {0};
            CHECK(q && persist_load(q, collect, &s) == 3000);
            CHECK(doc_v(mnt, "r.a.ni0999") == 999 && doc_v(mnt, "r.a.nj1999") == 1999);
            snprintf(path, sizeof(path), "%s/data/functions/journal.old", mnt);
            CHECK(access(path, F_OK) != 0); /* the start-up replay dropped it */
            persist_close(q);
            CHECK(umount(mnt) == 0);
        }
    }

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return TEST_DONE();
}
