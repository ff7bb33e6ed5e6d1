/* bio: background job threads (see bio.h). */
#include "runtime/bio.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct job {
    bio_fn fn;
    void *arg;
    struct job *next;
};

/* One per kind; everything under mu. */
struct bioq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    size_t pending; /* queued + running */
    bool stopping;
    int nthreads;
    pthread_t threads[4];
};

static struct bioq g_q[BIO_NKINDS] = {
    [BIO_FS] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, false, 0, {0}},
    [BIO_SPAWN] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, false, 0, {0}},
};
static const int g_threads_of[BIO_NKINDS] = {[BIO_FS] = 1, [BIO_SPAWN] = 2};
static const char *const g_name_of[BIO_NKINDS] = {[BIO_FS] = "bio-fs", [BIO_SPAWN] = "bio-spawn"};
static atomic_bool g_running;

struct worker_arg {
    struct bioq *q;
    char name[16];
};

static void *worker(void *p)
{
    struct worker_arg *wa = p;
    struct bioq *q = wa->q;
    pthread_setname_np(pthread_self(), wa->name);
    free(wa);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        struct job *j = q->head;
        if (!j)
            break; /* stopping and drained */
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        pthread_mutex_unlock(&q->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&q->mu);
        q->pending--;
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int bio_start(void)
{
    for (int k = 0; k < BIO_NKINDS; k++) {
        struct bioq *q = &g_q[k];
        pthread_mutex_lock(&q->mu);
        q->stopping = false;
        pthread_mutex_unlock(&q->mu);
        for (int i = 0; i < g_threads_of[k]; i++) {
            struct worker_arg *wa = malloc(sizeof(*wa));
            if (!wa)
                return -ENOMEM;
            wa->q = q;
            snprintf(wa->name, sizeof(wa->name), "%s-%d", g_name_of[k], i);
            int rc = pthread_create(&q->threads[q->nthreads], NULL, worker, wa);
            if (rc) {
                free(wa);
                return -rc;
            }
            q->nthreads++;
        }
    }
    atomic_store(&g_running, true);
    return 0;
}

void bio_submit(enum bio_kind kind, bio_fn fn, void *arg)
{
    struct bioq *q = &g_q[kind];
    struct job *j = atomic_load(&g_running) ? malloc(sizeof(*j)) : NULL;
    if (j) {
        j->fn = fn;
        j->arg = arg;
        j->next = NULL;
        pthread_mutex_lock(&q->mu);
        if (q->nthreads && !q->stopping) {
            if (q->tail)
                q->tail->next = j;
            else
                q->head = j;
            q->tail = j;
            q->pending++;
            pthread_cond_signal(&q->cv);
            pthread_mutex_unlock(&q->mu);
            return;
        }
        pthread_mutex_unlock(&q->mu);
        free(j);
    }
    fn(arg);
}

void bio_stop(void)
{
    atomic_store(&g_running, false);
    for (int k = 0; k < BIO_NKINDS; k++) {
        struct bioq *q = &g_q[k];
        pthread_mutex_lock(&q->mu);
        q->stopping = true;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        for (int i = 0; i < q->nthreads; i++)
            pthread_join(q->threads[i], NULL);
        q->nthreads = 0;
    }
}

size_t bio_pending(enum bio_kind kind)
{
    struct bioq *q = &g_q[kind];
    pthread_mutex_lock(&q->mu);
    size_t n = q->pending;
    pthread_mutex_unlock(&q->mu);
    return n;
}
