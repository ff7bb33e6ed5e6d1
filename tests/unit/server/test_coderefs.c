/* Unit tests for server/coderefs.c: counts per blob, removal at the last
 * release (and only then), a pinned directory outliving that removal until
 * its last unpin, an acquire with the zip storing a removed blob again, a
 * stray release keeping the blob, init forgetting counts, and a store-less
 * mode that only counts. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "runtime/codestore.h"
#include "server/coderefs.h"
#include "one_file_zip.h"
#include "testing.h"

static bool blob_exists(struct codestore *cs, const char *hex)
{
    char *p = codestore_dir_path(cs, hex);
    bool ok = p != NULL;
    free(p);
    return ok;
}

int main(void)
{
    char dir[] = "/tmp/lambdad-test-coderefs-XXXXXX", cmd[600];
    struct codestore *cs = NULL;
    struct code_info a, b;
    const char *cerr = NULL;
    size_t alen, blen;
    void *za = make_zip("a.py", "A = 1\n", &alen), *zb = make_zip("b.py", "B = 1\n", &blen);
    CHECK(mkdtemp(dir) != NULL);
    CHECK(codestore_open(&cs, dir) == 0);
    CHECK(codestore_put(cs, za, alen, &a, &cerr) == 0);
    CHECK(codestore_put(cs, zb, blen, &b, &cerr) == 0);
    coderefs_init(cs);

    /* Counts: removal only at the last release. */
    coderefs_acquire(a.sha256_hex, NULL, 0);
    coderefs_lock();
    coderefs_acquire_locked(a.sha256_hex);
    coderefs_acquire_locked(b.sha256_hex);
    coderefs_acquire_locked(NULL); /* ignored */
    coderefs_unlock();
    CHECK(coderefs_count(a.sha256_hex) == 2 && coderefs_count(b.sha256_hex) == 1);
    coderefs_release(a.sha256_hex);
    CHECK(blob_exists(cs, a.sha256_hex) && coderefs_count(a.sha256_hex) == 1);
    coderefs_release(a.sha256_hex);
    CHECK(!blob_exists(cs, a.sha256_hex) && coderefs_count(a.sha256_hex) == 0);
    CHECK(blob_exists(cs, b.sha256_hex)); /* another blob is not touched */

    /* A release without an acquire is a bug: logged, the blob stays. */
    coderefs_release(a.sha256_hex);
    CHECK(codestore_put(cs, za, alen, &a, &cerr) == 0);
    coderefs_release(a.sha256_hex);
    CHECK(blob_exists(cs, a.sha256_hex) && coderefs_count(a.sha256_hex) == 0);

    /* An acquire with the zip stores a blob a removal took again. */
    coderefs_acquire(b.sha256_hex, NULL, 0);
    coderefs_release(b.sha256_hex);
    coderefs_release(b.sha256_hex);
    CHECK(!blob_exists(cs, b.sha256_hex));
    coderefs_acquire(b.sha256_hex, zb, blen);
    CHECK(blob_exists(cs, b.sha256_hex) && coderefs_count(b.sha256_hex) == 1);

    /* A pinned directory (a running environment's) outlives the last
     * release until its last unpin (bio not running: inline). */
    char *bdir = codestore_dir_path(cs, b.sha256_hex);
    codestore_pin(bdir);
    coderefs_release(b.sha256_hex);
    CHECK(blob_exists(cs, b.sha256_hex) && coderefs_count(b.sha256_hex) == 0);
    codestore_unpin(bdir);
    CHECK(!blob_exists(cs, b.sha256_hex));
    free(bdir);

    /* init forgets the counts (the loads rebuild them); without a store
     * nothing is removed. */
    coderefs_acquire(a.sha256_hex, NULL, 0);
    coderefs_init(cs);
    CHECK(coderefs_count(a.sha256_hex) == 0);
    coderefs_init(NULL);
    coderefs_acquire(a.sha256_hex, za, alen);
    CHECK(coderefs_count(a.sha256_hex) == 1);
    coderefs_release(a.sha256_hex);
    CHECK(blob_exists(cs, a.sha256_hex) && coderefs_count(a.sha256_hex) == 0);
    coderefs_shutdown();
    coderefs_shutdown(); /* idempotent */

    codestore_close(cs);
    free(za);
    free(zb);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return TEST_DONE();
}
