/* libFuzzer target for runtime/codestore: arbitrary bytes as an uploaded
 * deployment package. Besides the sanitizers, it aborts when an invariant of
 * codestore_put breaks: an error that is not one of the CODESTORE_ERR_*
 * strings or an I/O error, a refused archive that left anything in <root>/code, an accepted
 * one whose directory is missing or cannot be removed, or anything written
 * next to the store (an escape). The store lives in one temp root (on
 * /dev/shm when present, so fsync/syncfs cost nothing) made on the first
 * input and removed at exit; the size limit is lowered to keep runs fast.
 * Seeds: tests/fuzz/corpus_zip/. */
#include "runtime/codestore.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct codestore *store;
static char base[64], root[96], codedir[128];

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int rm_entry(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)st, (void)type, (void)f;
    return remove(p);
}

static void cleanup(void)
{
    codestore_close(store);
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    struct stat st;
    const char *tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(base, sizeof(base), "%s/fuzz-zip-XXXXXX", tmp);
    if (!mkdtemp(base))
        abort();
    snprintf(root, sizeof(root), "%s/store", base);
    snprintf(codedir, sizeof(codedir), "%s/code", root);
    if (codestore_open(&store, root) != 0)
        abort();
    codestore_set_max_unzipped(4u << 20);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct code_info info;
    const char *err = NULL;
    if (!store)
        setup();
    int r = codestore_put(store, data, size, &info, &err);
    if (r == 0) {
        char *dir = codestore_dir_path(store, info.sha256_hex);
        char *zip = codestore_zip_path(store, info.sha256_hex);
        if (!dir || !zip || err || info.size != size)
            abort();
        free(dir);
        free(zip);
        if (codestore_remove(store, info.sha256_hex) != 0)
            abort();
    } else if (r == -EINVAL) {
        if (err != CODESTORE_ERR_UNZIP && err != CODESTORE_ERR_TOO_BIG)
            abort();
    } else {
        /* Storage never fails here (a private tmpfs): an I/O error means an
         * archive-made errno was not recognised as a refusal. */
        fprintf(stderr, "codestore_put: %s (%d)\n", strerror(-r), r);
        abort();
    }
    if (count_entries(codedir) != 0 || count_entries(base) != 1)
        abort();
    return 0;
}
