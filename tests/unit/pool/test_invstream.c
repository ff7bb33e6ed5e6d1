/* Unit test: pool/invstream, the bounded queue between an executor
 * (producer) and an HTTP worker (consumer) of one streamed response.
 * Bytes arrive whole and in order; a producer told FULL that waits for its
 * resume hook is always resumed (no lost wake-up, no deadlock) and the
 * queue never holds much more than its high water mark; an abandoned
 * stream discards, resumes its paused producer and still ends. Run under
 * TSan by tools/test.sh (ctest -L pool). */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool/invstream.h"
#include "testing.h"

#define PIECES 3000
#define PIECE_MAX 65536

struct side {
    struct invstream *s;
    sem_t resumed;          /* posted by the resume hook */
    atomic_int resumes;
    atomic_int fulls;
    int stop_after_gone;    /* producer: keep pushing until GONE */
    long pushed;
};

static void on_resume(void *ctx, uint64_t token)
{
    struct side *sd = ctx;
    if (token == 42) {
        atomic_fetch_add(&sd->resumes, 1);
        sem_post(&sd->resumed);
    }
}

static unsigned char byte_at(long i)
{
    return (unsigned char)(i * 7 + (i >> 9));
}

static void *producer(void *arg)
{
    struct side *sd = arg;
    unsigned char *buf = malloc(PIECE_MAX);
    unsigned seed = 1;
    long pos = 0;
    invstream_begin(sd->s, "text/plain", on_resume, sd, 42);
    for (int i = 0; sd->stop_after_gone || i < PIECES; i++) {
        seed = seed * 1103515245 + 12345;
        size_t n = 1 + (seed >> 8) % PIECE_MAX;
        for (size_t k = 0; k < n; k++)
            buf[k] = byte_at(pos + (long)k);
        int rc = invstream_push(sd->s, buf, n);
        if (rc == INVSTREAM_GONE)
            break;
        pos += (long)n;
        if (rc == INVSTREAM_FULL) {
            atomic_fetch_add(&sd->fulls, 1);
            sem_wait(&sd->resumed); /* an executor stops reading until resumed */
        }
    }
    sd->pushed = pos;
    free(buf);
    invstream_close(sd->s);
    return NULL;
}

static void test_in_order_with_backpressure(void)
{
    struct side sd = {.s = invstream_new()};
    sem_init(&sd.resumed, 0, 0);
    pthread_t th;
    pthread_create(&th, NULL, producer, &sd);
    char ct[96] = "", *data;
    size_t len, max_len = 0;
    long pos = 0, bad = 0;
    int begun = 0, ev;
    while ((ev = invstream_next(sd.s, &data, &len, ct, sizeof(ct))) != INVSTREAM_END) {
        if (ev == INVSTREAM_BEGUN) {
            begun++;
            CHECK(pos == 0);
            continue;
        }
        CHECK(ev == INVSTREAM_DATA && len > 0);
        for (size_t k = 0; k < len; k++)
            bad += (unsigned char)data[k] != byte_at(pos + (long)k);
        pos += (long)len;
        if (len > max_len)
            max_len = len;
        free(data);
    }
    pthread_join(th, NULL);
    CHECK(begun == 1);
    CHECK_STR(ct, "text/plain");
    CHECK(bad == 0);
    CHECK(pos == sd.pushed);
    /* bounded: the high water mark plus the piece that crossed it */
    CHECK(max_len <= INVSTREAM_HIGH_WATER + PIECE_MAX);
    CHECK(atomic_load(&sd.fulls) == atomic_load(&sd.resumes));
    printf("in order: %ld bytes, %d pauses, largest take %zu\n", pos, atomic_load(&sd.fulls), max_len);
    sem_destroy(&sd.resumed);
    invstream_free(sd.s);
}

static void test_abandon_resumes_and_ends(void)
{
    struct side sd = {.s = invstream_new(), .stop_after_gone = 1};
    sem_init(&sd.resumed, 0, 0);
    pthread_t th;
    pthread_create(&th, NULL, producer, &sd);
    char ct[96], *data;
    size_t len;
    int datas = 0, ev;
    /* A client that takes a few pieces, then goes away. */
    while (datas < 3 && (ev = invstream_next(sd.s, &data, &len, ct, sizeof(ct))) != INVSTREAM_END) {
        if (ev == INVSTREAM_DATA) {
            datas++;
            free(data);
        }
    }
    invstream_abandon(sd.s);
    invstream_abandon(sd.s); /* idempotent */
    int after = 0;
    while ((ev = invstream_next(sd.s, &data, &len, ct, sizeof(ct))) != INVSTREAM_END) {
        if (ev == INVSTREAM_DATA) {
            after++;
            free(data);
        }
    }
    pthread_join(th, NULL); /* the producer saw GONE and closed: not stuck in FULL */
    CHECK(datas == 3);
    CHECK(after == 0);
    CHECK(atomic_load(&sd.fulls) == atomic_load(&sd.resumes));
    sem_destroy(&sd.resumed);
    invstream_free(sd.s);
}

static void test_close_without_begin(void)
{
    struct invstream *s = invstream_new();
    char ct[8], *data;
    size_t len;
    invstream_close(s);
    CHECK(invstream_next(s, &data, &len, ct, sizeof(ct)) == INVSTREAM_END);
    CHECK(!invstream_begun(s));
    CHECK(invstream_push(s, "x", 1) == INVSTREAM_GONE);
    invstream_free(s);
    invstream_free(NULL);
}

int main(void)
{
    test_close_without_begin();
    test_in_order_with_backpressure();
    test_abandon_resumes_and_ends();
    return TEST_DONE();
}
