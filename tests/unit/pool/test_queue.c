/* Unit test: pool/queue under many producers and one consumer.
 * Every pushed message must come out exactly once, in per-producer order,
 * and the consumer must never sleep through a push (wake-on-empty). */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool/queue.h"
#include "testing.h"

#define PRODUCERS 8
#define PER_PRODUCER 50000

struct msg {
    struct cds_wfcq_node node;
    int producer;
    int seq;
};

static struct queue g_q;

static void *producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        struct msg *m = malloc(sizeof(*m));
        m->producer = id;
        m->seq = i;
        queue_push(&g_q, &m->node);
    }
    return NULL;
}

int main(void)
{
    CHECK(queue_init(&g_q) == 0);
    CHECK(queue_pop(&g_q) == NULL);
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&th[i], NULL, producer, (void *)(intptr_t)i);
    int next[PRODUCERS] = {0};
    long got = 0, order_errors = 0, sleeps = 0, timeouts = 0;
    while (got < (long)PRODUCERS * PER_PRODUCER) {
        /* Sleep exactly like an executor: poll the eventfd, ack, drain. */
        struct pollfd pfd = {.fd = g_q.efd, .events = POLLIN};
        int r = poll(&pfd, 1, 5000);
        if (r == 0) {
            timeouts++; /* a lost wake-up would end here */
            break;
        }
        sleeps++;
        queue_ack_wake(&g_q);
        struct cds_wfcq_node *n;
        while ((n = queue_pop(&g_q))) {
            struct msg *m = caa_container_of(n, struct msg, node);
            if (m->seq != next[m->producer])
                order_errors++;
            next[m->producer] = m->seq + 1;
            got++;
            free(m);
        }
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    CHECK(timeouts == 0);
    CHECK(got == (long)PRODUCERS * PER_PRODUCER);
    CHECK(order_errors == 0);
    CHECK(queue_pop(&g_q) == NULL);
    /* Wake-ups are coalesced: far fewer sleeps than messages. */
    printf("messages %ld, consumer wake-ups %ld\n", got, sleeps);
    CHECK(sleeps <= got);
    /* A push onto an empty queue always signals. */
    queue_ack_wake(&g_q);
    struct msg one;
    queue_push(&g_q, &one.node);
    struct pollfd pfd = {.fd = g_q.efd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 0) == 1);
    CHECK(queue_pop(&g_q) == &one.node);
    queue_fini(&g_q);
    return TEST_DONE();
}
