/* envmap: warm-environment map on cds_lfht (see envmap.h). */
#include "pool/envmap.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

static struct cds_lfht *g_map;
static atomic_ulong g_count;

int envmap_init(void)
{
    g_map = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    return g_map ? 0 : -ENOMEM;
}

void envmap_fini(void)
{
    if (g_map)
        cds_lfht_destroy(g_map, NULL);
    g_map = NULL;
}

unsigned long envmap_hash(const char *key, const char *deploy_id)
{
    /* FNV-1a over both strings with a separator. */
    unsigned long h = 1469598103934665603ul;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ul;
    h = (h ^ 0xff) * 1099511628211ul;
    for (const char *p = deploy_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ul;
    return h;
}

struct match_arg {
    const char *key, *deploy_id;
};

static int match(struct cds_lfht_node *node, const void *arg)
{
    const struct envmap_node *n = caa_container_of(node, struct envmap_node, node);
    const struct match_arg *m = arg;
    return strcmp(n->key, m->key) == 0 && strcmp(n->deploy_id, m->deploy_id) == 0;
}

struct envmap_node *envmap_lookup(const char *key, const char *deploy_id)
{
    struct cds_lfht_iter it;
    struct match_arg m = {key, deploy_id};
    cds_lfht_lookup(g_map, envmap_hash(key, deploy_id), match, &m, &it);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
    return node ? caa_container_of(node, struct envmap_node, node) : NULL;
}

void envmap_add(struct envmap_node *n)
{
    cds_lfht_node_init(&n->node);
    cds_lfht_add(g_map, n->hash, &n->node);
    atomic_fetch_add(&g_count, 1);
}

void envmap_del(struct envmap_node *n)
{
    if (cds_lfht_del(g_map, &n->node) == 0)
        atomic_fetch_sub(&g_count, 1);
}

unsigned long envmap_count(void)
{
    return atomic_load(&g_count);
}
