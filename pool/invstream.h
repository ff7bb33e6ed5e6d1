/* invstream: the bounded byte queue that carries one streamed invocation's
 * response from the executor that reads it off the Runtime API to the HTTP
 * worker that writes it to the client (InvokeWithResponseStream, function
 * URLs in RESPONSE_STREAM mode).
 *
 * DESIGN: single producer (the executor thread owning the environment),
 * single consumer (the civetweb worker that submitted the invocation). The
 * producer appends bytes under a mutex that is only ever held for a memcpy
 * or a pointer swap, never across I/O, so an executor never waits for a
 * client; the consumer takes everything queued in one swap and writes it
 * without the lock. The queue is bounded: once more than
 * INVSTREAM_HIGH_WATER bytes wait, push still takes the bytes it is given
 * (at most one socket read, 64 KiB) but answers INVSTREAM_FULL and the
 * producer stops reading the runtime's socket (runtime/rapi.h); when the
 * consumer empties the queue it calls the producer's resume hook (outside
 * the lock), which posts a message to the executor. So at most
 * 2 x INVSTREAM_HIGH_WATER + one read are buffered per invocation, however
 * slow the client. When the client goes away the consumer abandons the
 * stream: what is queued is dropped, later pushes are discarded (never
 * FULL) and a paused producer is resumed, so the function runs on to its
 * end and the environment is reused.
 *
 * The consumer learns about the end through invstream_close, which the
 * invocation's on_done calls; the invocation's result fields (outcome,
 * error, log) are complete by then and published by the mutex.
 *
 * Synchronization table (P = producer thread, C = consumer thread):
 *   invstream_new, invstream_free      C (free only after END was read)
 *   invstream_begin, invstream_push    P
 *   invstream_close                    P (from on_done), exactly once
 *   invstream_next, invstream_abandon  C
 * All of them may run concurrently with the other side's calls. */
#ifndef LAMBDAD_POOL_INVSTREAM_H
#define LAMBDAD_POOL_INVSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Queued bytes above which the producer is asked to pause. */
#define INVSTREAM_HIGH_WATER (1u << 20)

struct invstream;

/* Called by the consumer (outside the lock) to let a paused producer read
 * again. ctx and token are what the producer gave invstream_begin. */
typedef void (*invstream_resume_fn)(void *ctx, uint64_t token);

/* push results */
enum { INVSTREAM_OK = 0, INVSTREAM_FULL = 1, INVSTREAM_GONE = 2 };

/* next results */
enum {
    INVSTREAM_END = 0,   /* closed and drained: the invocation is finished */
    INVSTREAM_BEGUN = 1, /* the runtime started a streamed response (once, before any DATA) */
    INVSTREAM_DATA = 2,  /* *data (malloc'd, the caller frees) holds *len > 0 bytes */
};

/* Allocates an empty stream. NULL when out of memory. */
struct invstream *invstream_new(void);

/* Frees the stream and anything still queued. NULL-safe. */
void invstream_free(struct invstream *s);

/* Producer: the runtime started a streamed response with this content
 * type (NULL: application/octet-stream). resume(ctx, token) is how the
 * consumer wakes the producer after a pause. */
void invstream_begin(struct invstream *s, const char *content_type, invstream_resume_fn resume,
                     void *ctx, uint64_t token);

/* Producer: appends len bytes. Returns INVSTREAM_OK; INVSTREAM_FULL when
 * the bytes were taken but the queue is over its high water mark (stop
 * reading until resumed); INVSTREAM_GONE when the consumer left (bytes
 * dropped) or memory ran out. */
int invstream_push(struct invstream *s, const void *data, size_t len);

/* Producer: the invocation finished; the consumer sees END after the
 * queued bytes. The producer must not touch s afterwards (the consumer may
 * free it at once). */
void invstream_close(struct invstream *s);

/* Consumer: waits for the next thing to report (see the INVSTREAM_* next
 * results). ctype (ctlen bytes) receives the content type with BEGUN. */
int invstream_next(struct invstream *s, char **data, size_t *len, char *ctype, size_t ctlen);

/* Consumer: the client is gone. Drops queued bytes, discards later ones
 * and resumes a paused producer. next still reports END at the end. */
void invstream_abandon(struct invstream *s);

/* Whether the producer began a streamed response (BEGUN was or will be
 * reported). Consumer, after END. */
bool invstream_begun(struct invstream *s);

#endif
