/* invstream: one streamed invocation's response queue (see invstream.h).
 *
 * The queue is a single growable byte buffer: the producer appends to it,
 * the consumer takes the whole buffer (pointer swap) and leaves an empty
 * one behind, so a DATA report is everything that arrived since the last
 * one and the lock is held for a memcpy at most. The consumer sleeps on
 * the condition variable only when there is nothing to report; the
 * producer signals only when it sleeps. */
#include "pool/invstream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct invstream {
    pthread_mutex_t mu; /* guards every field below */
    pthread_cond_t cv;  /* consumer waits here */
    char *buf;          /* queued bytes */
    size_t len, cap;
    bool begun, begun_reported, closed, abandoned;
    bool paused;        /* the producer was told FULL and waits for resume */
    bool waiting;       /* the consumer sleeps on cv */
    char ctype[96];
    invstream_resume_fn resume;
    void *ctx;
    uint64_t token;
};

struct invstream *invstream_new(void)
{
    struct invstream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return s;
}

void invstream_free(struct invstream *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->buf);
    free(s);
}

/* Wakes the consumer if it sleeps. Under s->mu. */
/* Releases s->mu; a producer paused on FULL is told to go on (its hook is
 * called outside the lock: it posts to the producer's executor). */
static void unlock_and_resume(struct invstream *s)
{
    bool resume = s->paused;
    s->paused = false;
    invstream_resume_fn fn = s->resume;
    void *ctx = s->ctx;
    uint64_t token = s->token;
    pthread_mutex_unlock(&s->mu);
    if (resume && fn)
        fn(ctx, token);
}

static void wake_locked(struct invstream *s)
{
    if (s->waiting)
        pthread_cond_signal(&s->cv);
}

void invstream_begin(struct invstream *s, const char *content_type, invstream_resume_fn resume,
                     void *ctx, uint64_t token)
{
    pthread_mutex_lock(&s->mu);
    s->begun = true;
    snprintf(s->ctype, sizeof(s->ctype), "%s", content_type ? content_type : "application/octet-stream");
    s->resume = resume;
    s->ctx = ctx;
    s->token = token;
    wake_locked(s);
    pthread_mutex_unlock(&s->mu);
}

int invstream_push(struct invstream *s, const void *data, size_t len)
{
    int rc = INVSTREAM_OK;
    pthread_mutex_lock(&s->mu);
    if (s->abandoned || s->closed) {
        rc = INVSTREAM_GONE;
        goto out;
    }
    if (len > s->cap - s->len) {
        size_t cap = s->cap ? s->cap : 65536;
        while (cap < s->len + len)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) {
            rc = INVSTREAM_GONE;
            goto out;
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    if (s->len > INVSTREAM_HIGH_WATER) {
        s->paused = true;
        rc = INVSTREAM_FULL;
    }
    wake_locked(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void invstream_close(struct invstream *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    s->paused = false;
    /* Signal under the lock: once it is released the consumer may free s. */
    wake_locked(s);
    pthread_mutex_unlock(&s->mu);
}

int invstream_next(struct invstream *s, char **data, size_t *len, char *ctype, size_t ctlen)
{
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->begun && !s->begun_reported) {
            s->begun_reported = true;
            snprintf(ctype, ctlen, "%s", s->ctype);
            pthread_mutex_unlock(&s->mu);
            return INVSTREAM_BEGUN;
        }
        if (s->len) {
            *data = s->buf;
            *len = s->len;
            s->buf = NULL;
            s->len = s->cap = 0;
            unlock_and_resume(s);
            return INVSTREAM_DATA;
        }
        if (s->closed) {
            pthread_mutex_unlock(&s->mu);
            return INVSTREAM_END;
        }
        s->waiting = true;
        pthread_cond_wait(&s->cv, &s->mu);
        s->waiting = false;
    }
}

void invstream_abandon(struct invstream *s)
{
    pthread_mutex_lock(&s->mu);
    s->abandoned = true;
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
    unlock_and_resume(s);
}

bool invstream_begun(struct invstream *s)
{
    pthread_mutex_lock(&s->mu);
    bool b = s->begun;
    pthread_mutex_unlock(&s->mu);
    return b;
}
