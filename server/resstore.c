/* resstore: persisted account-level resources (see resstore.h). */
#include "server/resstore.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "server/persist.h"

struct resstore {
    pthread_mutex_t mu;
    struct persist *p; /* NULL: memory only */
    json_t *docs;      /* id -> document */
};

static int load_one(void *ud, const char *id, json_t *doc)
{
    struct resstore *rs = ud;
    json_object_set(rs->docs, id, doc);
    return 0;
}

int resstore_open(struct resstore **out, const struct persist *parent, const char *subdir)
{
    struct resstore *rs = calloc(1, sizeof(*rs));
    if (!rs || !(rs->docs = json_object())) {
        free(rs);
        return -ENOMEM;
    }
    pthread_mutex_init(&rs->mu, NULL);
    if (parent) {
        int rc = persist_open_sub(&rs->p, parent, subdir);
        if (rc == 0)
            rc = persist_load(rs->p, load_one, rs);
        if (rc < 0) {
            resstore_close(rs);
            return rc;
        }
    }
    *out = rs;
    return 0;
}

void resstore_close(struct resstore *rs)
{
    if (!rs)
        return;
    persist_close(rs->p);
    json_decref(rs->docs);
    pthread_mutex_destroy(&rs->mu);
    free(rs);
}

json_t *resstore_get(struct resstore *rs, const char *id)
{
    pthread_mutex_lock(&rs->mu);
    json_t *d = json_deep_copy(json_object_get(rs->docs, id));
    pthread_mutex_unlock(&rs->mu);
    return d;
}

int resstore_put(struct resstore *rs, const char *id, json_t *doc)
{
    json_t *copy = json_deep_copy(doc);
    char *text = copy ? json_dumps(copy, JSON_INDENT(1)) : NULL;
    int rc = text ? 0 : -ENOMEM;
    pthread_mutex_lock(&rs->mu);
    if (!rc && rs->p)
        rc = persist_write(rs->p, id, text, strlen(text));
    if (!rc)
        rc = json_object_set(rs->docs, id, copy) ? -ENOMEM : 0;
    pthread_mutex_unlock(&rs->mu);
    if (rc)
        LOG_ERROR("cannot store resource %s: %s", id, strerror(-rc));
    json_decref(copy);
    free(text);
    return rc;
}

int resstore_remove(struct resstore *rs, const char *id)
{
    int rc = 0;
    pthread_mutex_lock(&rs->mu);
    if (!json_object_get(rs->docs, id))
        rc = -ENOENT;
    else if (rs->p)
        rc = persist_remove(rs->p, id);
    if (!rc)
        json_object_del(rs->docs, id);
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *resstore_all(struct resstore *rs)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&rs->mu);
    size_t n = json_object_size(rs->docs), i = 0;
    const char **keys = calloc(n + 1, sizeof(*keys));
    const char *k;
    json_t *v;
    if (keys) {
        json_object_foreach(rs->docs, k, v) keys[i++] = k;
        qsort(keys, i, sizeof(*keys), cmp_str);
        for (size_t j = 0; j < i; j++)
            json_array_append_new(arr, json_deep_copy(json_object_get(rs->docs, keys[j])));
    }
    pthread_mutex_unlock(&rs->mu);
    free(keys);
    return arr;
}
