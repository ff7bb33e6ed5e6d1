/* Unit test: the warm map under concurrent readers. One writer thread
 * (as an executor) replaces (function, deploy ID) entries a fixed number of
 * rounds while reader threads look them up inside RCU read-side sections
 * and check every node they see is intact (not freed: freed nodes are
 * poisoned). Also plain bookkeeping: lookups find exactly what was added.
 *
 * Deterministic shape: every key is mapped before the readers start, all
 * threads leave one start barrier together, the writer does exactly ROUNDS
 * replacements and each reader completes at least one full pass.
 *
 * Under ThreadSanitizer: liburcu is not instrumented, so the grace period
 * that orders a reader's last access before the call_rcu callback is
 * invisible to TSan, and every poisoning write or free() there would go
 * through TSan's (very slow) race-report path before the suppression drops
 * it; runs took tens of seconds and rcu_barrier() 11-13 s. With TSan the
 * callback therefore only marks the node dead and parks it; parked nodes
 * are freed after the readers have been joined. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/envmap.h"
#include "testing.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define KEYS 64
#define ROUNDS 3000
#define READERS 3

struct entry {
    struct envmap_node n;
    char key[32];
    char deploy[16];
    atomic_int alive; /* 1 while mapped or within its grace period */
    struct entry *_Atomic next_parked;
};

static atomic_int g_stop;
static atomic_long g_bad, g_seen;
static pthread_barrier_t g_start;
static struct entry *_Atomic g_parked; /* TSan: dead nodes, freed at the end */

static void free_entry(struct rcu_head *h)
{
    struct entry *e = caa_container_of(caa_container_of(h, struct envmap_node, rcu), struct entry, n);
    atomic_store(&e->alive, 0);
    if (UNDER_TSAN) {
        struct entry *head = atomic_load(&g_parked);
        do
            atomic_store(&e->next_parked, head);
        while (!atomic_compare_exchange_weak(&g_parked, &head, e));
        return;
    }
    memset(e->key, 'X', sizeof(e->key) - 1); /* poison before free */
    free(e);
}

static void *reader(void *arg)
{
    (void)arg;
    rcu_register_thread();
    pthread_barrier_wait(&g_start);
    char key[32];
    do {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof(key), "us-east-1/0/f%d", k);
            for (int d = 0; d < 2; d++) {
                char dep[16];
                snprintf(dep, sizeof(dep), "dep%d", d);
                rcu_read_lock();
                struct envmap_node *n = envmap_lookup(key, dep);
                if (n) {
                    struct entry *e = caa_container_of(n, struct entry, n);
                    /* alive first: its (seq_cst) store in mk() orders the
                     * strings for TSan too. */
                    if (!atomic_load(&e->alive) || strcmp(e->key, key) != 0 ||
                        strcmp(e->deploy, dep) != 0)
                        atomic_fetch_add(&g_bad, 1);
                    atomic_fetch_add(&g_seen, 1);
                }
                rcu_read_unlock();
            }
        }
    } while (!atomic_load(&g_stop));
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
    struct entry *cur[KEYS] = {0};
    /* Every key mapped before any reader looks: each pass hits KEYS times. */
    for (int k = 0; k < KEYS; k++) {
        cur[k] = mk(k, 1);
        rcu_read_lock();
        envmap_add(&cur[k]->n);
        rcu_read_unlock();
    }
    pthread_barrier_init(&g_start, NULL, READERS + 1);
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, reader, NULL);
    pthread_barrier_wait(&g_start);
    for (int round = 0; round < ROUNDS; round++) {
        int k = round % KEYS;
        struct entry *e = mk(k, round % 2);
        rcu_read_lock();
        envmap_add(&e->n);
        envmap_del(&cur[k]->n);
        rcu_read_unlock();
        call_rcu(&cur[k]->n.rcu, free_entry);
        cur[k] = e;
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&g_start);
    CHECK(atomic_load(&g_bad) == 0);
    CHECK(atomic_load(&g_seen) >= KEYS * READERS);
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
    int parked = 0;
    for (struct entry *e = atomic_load(&g_parked), *next; e; e = next) {
        next = atomic_load(&e->next_parked);
        free(e);
        parked++;
    }
    CHECK(parked == (UNDER_TSAN ? ROUNDS + KEYS : 0));
    printf("lookups that hit: %ld\n", atomic_load(&g_seen));
    rcu_unregister_thread();
    return TEST_DONE();
}
