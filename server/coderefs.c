/* coderefs: reference counts of code store blobs (see coderefs.h). */
#include "server/coderefs.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/codestore.h"
#include "runtime/log.h"

/* Counts, chained hash on the hex key; everything under g_mu. An entry
 * exists while its count is above zero. */
#define REF_BUCKETS 1024
struct ref {
    char hex[65];
    int count;
    struct ref *next;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* the reference lock */
static struct codestore *g_cs;
static struct ref *g_refs[REF_BUCKETS];
static bool g_untrusted; /* a count was lost (out of memory): remove nothing */

static struct ref **ref_slot(const char *hex)
{
    unsigned long h = 1469598103934665603ul; /* FNV-1a */
    for (const char *p = hex; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ul;
    struct ref **pp = &g_refs[h % REF_BUCKETS];
    while (*pp && strcmp((*pp)->hex, hex) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void forget_all(void)
{
    for (size_t i = 0; i < REF_BUCKETS; i++) {
        while (g_refs[i]) {
            struct ref *r = g_refs[i];
            g_refs[i] = r->next;
            free(r);
        }
    }
    g_untrusted = false;
}

void coderefs_init(struct codestore *cs)
{
    pthread_mutex_lock(&g_mu);
    forget_all();
    g_cs = cs;
    pthread_mutex_unlock(&g_mu);
}

void coderefs_shutdown(void)
{
    pthread_mutex_lock(&g_mu);
    forget_all();
    g_cs = NULL;
    pthread_mutex_unlock(&g_mu);
}

void coderefs_lock(void)
{
    pthread_mutex_lock(&g_mu);
}

void coderefs_unlock(void)
{
    pthread_mutex_unlock(&g_mu);
}

void coderefs_acquire_locked(const char *hex)
{
    if (!hex || !*hex || strlen(hex) > 64)
        return;
    struct ref **pp = ref_slot(hex);
    if (!*pp && (*pp = calloc(1, sizeof(**pp))))
        memcpy((*pp)->hex, hex, strlen(hex) + 1);
    if (*pp) {
        (*pp)->count++;
    } else if (!g_untrusted) {
        g_untrusted = true;
        LOG_ERROR("out of memory counting the users of code %s: no code is removed from now on",
                  hex);
    }
}

void coderefs_release_locked(const char *hex)
{
    if (!hex || !*hex || strlen(hex) > 64)
        return;
    struct ref **pp = ref_slot(hex), *r = *pp;
    if (!r) {
        /* A drop without its take: a bug. Keeping the blob is the safe side. */
        LOG_ERROR("code %s released more often than acquired; kept", hex);
        return;
    }
    if (--r->count > 0)
        return;
    *pp = r->next;
    free(r);
    if (!g_cs || g_untrusted)
        return;
    int rc = codestore_remove(g_cs, hex);
    if (rc && rc != -ENOENT)
        LOG_WARN("cannot remove code %s: %s", hex, strerror(-rc));
}

void coderefs_acquire(const char *hex, const void *zip, size_t zip_len)
{
    if (!hex)
        return;
    pthread_mutex_lock(&g_mu);
    char *dir = zip && g_cs ? codestore_dir_path(g_cs, hex) : NULL;
    if (zip && g_cs && !dir) {
        struct code_info info;
        const char *cerr = NULL;
        int rc = codestore_put(g_cs, zip, zip_len, &info, &cerr);
        if (rc)
            LOG_ERROR("cannot store code %s again: %s", hex, cerr ? cerr : strerror(-rc));
    }
    free(dir);
    coderefs_acquire_locked(hex);
    pthread_mutex_unlock(&g_mu);
}

void coderefs_release(const char *hex)
{
    if (!hex)
        return;
    pthread_mutex_lock(&g_mu);
    coderefs_release_locked(hex);
    pthread_mutex_unlock(&g_mu);
}

int coderefs_count(const char *hex)
{
    if (!hex || !*hex || strlen(hex) > 64)
        return 0;
    pthread_mutex_lock(&g_mu);
    struct ref *r = *ref_slot(hex);
    int n = r ? r->count : 0;
    pthread_mutex_unlock(&g_mu);
    return n;
}
