/* queue: multi-producer, single-consumer hand-off into an executor.
 *
 * DESIGN (memcached-style, on liburcu's wait-free concurrent queue): any
 * thread may push; exactly one thread (the owning executor) pops. A push
 * writes the queue's eventfd only when the queue was empty before it
 * (cds_wfcq_enqueue returns false then), so a busy executor is never
 * woken once per message. The consumer reads (resets) the eventfd BEFORE
 * draining the queue until empty; a producer that finds the queue empty
 * after that point writes the eventfd again, so no wake-up is lost.
 *
 * Synchronization table:
 *   queue_push      any thread, concurrently with everything
 *   queue_pop       the single consumer only
 *   queue_ack_wake  the single consumer only
 *   queue_init/fini before/after all other use */
#ifndef LAMBDAD_POOL_QUEUE_H
#define LAMBDAD_POOL_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <urcu/wfcqueue.h>

struct queue {
    struct cds_wfcq_head head;
    struct cds_wfcq_tail tail;
    int efd; /* eventfd, readable when the consumer must look */
    /* Pushes so far. Bumped (release) before each enqueue and read
     * (acquire) after each dequeue: liburcu's own barriers are inline
     * assembly ThreadSanitizer cannot see, this pair it can, so the
     * message contents a producer wrote are ordered for TSan too. */
    _Atomic unsigned long pushes;
};

/* Initializes q with a new non-blocking eventfd. Returns 0 or -errno. */
int queue_init(struct queue *q);

/* Releases the eventfd. The queue must be empty. */
void queue_fini(struct queue *q);

/* Appends node; wakes the consumer if the queue was empty. */
void queue_push(struct queue *q, struct cds_wfcq_node *node);

/* Removes the oldest node, or returns NULL when empty. Consumer only. */
struct cds_wfcq_node *queue_pop(struct queue *q);

/* Consumer: clears the eventfd before draining. */
void queue_ack_wake(struct queue *q);

#endif
