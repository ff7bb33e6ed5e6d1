/* queue: MPSC hand-off with wake-on-empty (see queue.h). */
#include "pool/queue.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int queue_init(struct queue *q)
{
    cds_wfcq_init(&q->head, &q->tail);
    atomic_init(&q->pushes, 0);
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return q->efd < 0 ? -errno : 0;
}

void queue_fini(struct queue *q)
{
    if (q->efd >= 0)
        close(q->efd);
    q->efd = -1;
    cds_wfcq_destroy(&q->head, &q->tail);
}

void queue_push(struct queue *q, struct cds_wfcq_node *node)
{
    cds_wfcq_node_init(node);
    atomic_fetch_add_explicit(&q->pushes, 1, memory_order_release);
    if (!cds_wfcq_enqueue(&q->head, &q->tail, node)) {
        uint64_t one = 1;
        ssize_t w = write(q->efd, &one, sizeof(one));
        (void)w; /* EAGAIN only when the counter is saturated: already awake */
    }
}

struct cds_wfcq_node *queue_pop(struct queue *q)
{
    /* Single consumer: the "blocking" dequeue only spins on a producer that
     * is between its two enqueue steps, which is bounded. */
    struct cds_wfcq_node *n = __cds_wfcq_dequeue_blocking(&q->head, &q->tail);
    if (n)
        (void)atomic_load_explicit(&q->pushes, memory_order_acquire);
    return n;
}

void queue_ack_wake(struct queue *q)
{
    uint64_t v;
    ssize_t r = read(q->efd, &v, sizeof(v));
    (void)r;
}
