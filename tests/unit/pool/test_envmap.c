/* Unit test: the warm map under concurrent readers. One writer thread
 * (as an executor) adds, replaces and removes (function, deploy ID)
 * entries while reader threads look them up inside RCU read-side sections
 * and check every node they see is intact (not freed: freed nodes are
 * poisoned). Also plain claim/release bookkeeping: lookups find exactly
 * what was added. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool/envmap.h"
#include "testing.h"

#define KEYS 64
#define ROUNDS 3000

struct entry {
    struct envmap_node n;
    char key[32];
    char deploy[16];
    atomic_int alive; /* 1 while mapped or within its grace period */
};

static atomic_int g_stop;
static atomic_long g_bad, g_seen;

static void free_entry(struct rcu_head *h)
{
    struct entry *e = caa_container_of(caa_container_of(h, struct envmap_node, rcu), struct entry, n);
    atomic_store(&e->alive, 0);
    memset(e->key, 'X', sizeof(e->key) - 1); /* poison before free */
    free(e);
}

static void *reader(void *arg)
{
    (void)arg;
    rcu_register_thread();
    char key[32];
    while (!atomic_load(&g_stop)) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof(key), "us-east-1/0/f%d", k);
            for (int d = 0; d < 2; d++) {
                char dep[16];
                snprintf(dep, sizeof(dep), "dep%d", d);
                rcu_read_lock();
                struct envmap_node *n = envmap_lookup(key, dep);
                if (n) {
                    struct entry *e = caa_container_of(n, struct entry, n);
                    if (strcmp(e->key, key) != 0 || strcmp(e->deploy, dep) != 0 ||
                        !atomic_load(&e->alive))
                        atomic_fetch_add(&g_bad, 1);
                    atomic_fetch_add(&g_seen, 1);
                }
                rcu_read_unlock();
            }
        }
    }
    rcu_unregister_thread();
    return NULL;
}

static struct entry *mk(int k, int d)
{
    struct entry *e = calloc(1, sizeof(*e));
    snprintf(e->key, sizeof(e->key), "us-east-1/0/f%d", k);
    snprintf(e->deploy, sizeof(e->deploy), "dep%d", d);
    e->n.key = e->key;
    e->n.deploy_id = e->deploy;
    e->n.hash = envmap_hash(e->key, e->deploy);
    atomic_store(&e->alive, 1);
    return e;
}

int main(void)
{
    rcu_register_thread();
    CHECK(envmap_init() == 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, reader, NULL);
    struct entry *cur[KEYS] = {0};
    /* Churn until the readers have raced with it a while (bounded: 10 s). */
    time_t start = time(NULL);
    for (int round = 0; round < ROUNDS || (atomic_load(&g_seen) < 20000 && time(NULL) - start < 10);
         round++) {
        int k = round % KEYS;
        struct entry *e = mk(k, round % 2);
        rcu_read_lock();
        envmap_add(&e->n);
        if (cur[k])
            envmap_del(&cur[k]->n);
        rcu_read_unlock();
        if (cur[k])
            call_rcu(&cur[k]->n.rcu, free_entry);
        cur[k] = e;
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&g_bad) == 0);
    CHECK(atomic_load(&g_seen) > 0);
    CHECK(envmap_count() == KEYS);
    /* Exactly the latest entry of each key is found. */
    rcu_read_lock();
    int found = 0;
    for (int k = 0; k < KEYS; k++) {
        struct envmap_node *n = envmap_lookup(cur[k]->key, cur[k]->deploy);
        found += n == &cur[k]->n;
        const char *other = strcmp(cur[k]->deploy, "dep0") == 0 ? "dep1" : "dep0";
        CHECK(envmap_lookup(cur[k]->key, other) == NULL);
    }
    rcu_read_unlock();
    CHECK(found == KEYS);
    for (int k = 0; k < KEYS; k++) {
        rcu_read_lock();
        envmap_del(&cur[k]->n);
        rcu_read_unlock();
        call_rcu(&cur[k]->n.rcu, free_entry);
    }
    rcu_barrier();
    CHECK(envmap_count() == 0);
    envmap_fini();
    printf("lookups that hit: %ld\n", atomic_load(&g_seen));
    rcu_unregister_thread();
    return TEST_DONE();
}
