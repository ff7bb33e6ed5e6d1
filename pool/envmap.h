/* envmap: the warm-environment map.
 *
 * DESIGN: a liburcu lock-free resizable hash table (cds_lfht) from
 * (function identity, deploy ID) to the struct fnpool that holds that
 * function version's environments. Lookups run inside an RCU read-side
 * section from any registered thread; insertions and removals are done only
 * by the executor that owns the function (functions are sharded by
 * identity), and removed nodes are freed after a grace period (call_rcu).
 * Because an updated function gets a new deploy ID, it also gets a new
 * fnpool: environments of the old ID drain and are never handed an
 * invocation of the new code.
 *
 * Synchronization table:
 *   envmap_lookup   any registered RCU reader, inside rcu_read_lock
 *   envmap_add      owner executor, inside rcu_read_lock
 *   envmap_del      owner executor, inside rcu_read_lock; free via call_rcu
 *   envmap_count    any thread */
#ifndef LAMBDAD_POOL_ENVMAP_H
#define LAMBDAD_POOL_ENVMAP_H

#include <urcu.h>
#include <urcu/rculfhash.h>

struct fnpool;

struct envmap_node {
    struct cds_lfht_node node;
    struct rcu_head rcu;
    unsigned long hash;
    const char *key;       /* points into the owner's storage */
    const char *deploy_id; /* points into the owner's storage */
};

/* Creates the map. Returns 0 or -ENOMEM. */
int envmap_init(void);

/* Destroys the map (must be empty). */
void envmap_fini(void);

/* Hash of (key, deploy_id). */
unsigned long envmap_hash(const char *key, const char *deploy_id);

/* Finds the node for (key, deploy_id) or NULL. Caller holds rcu_read_lock. */
struct envmap_node *envmap_lookup(const char *key, const char *deploy_id);

/* Inserts n (hash, key and deploy_id set). Caller holds rcu_read_lock. */
void envmap_add(struct envmap_node *n);

/* Removes n. Caller holds rcu_read_lock, then frees n with call_rcu. */
void envmap_del(struct envmap_node *n);

/* Number of (function, deploy ID) entries. */
unsigned long envmap_count(void);

#endif
