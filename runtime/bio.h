/* bio: background jobs for the work that must not run on an executor
 * thread (process spawn, layer merges, waitpid, rm -rf, cgroup removal).
 *
 * DESIGN (Redis bio.c): one FIFO per job kind, each served by its own
 * threads; bio_submit appends a job (function + argument) under the
 * queue's mutex and signals one worker. Kinds keep slow jobs from delaying
 * unrelated ones: BIO_FS (deletions, reaping) has one thread, BIO_SPAWN
 * (starting environments: may wait seconds for the zygote or a large layer
 * merge) has two. Jobs run in submission order per thread; a job that must
 * report back posts a message to whoever waits for it (an executor's
 * queue). Before bio_start, and after bio_stop, bio_submit runs the job
 * inline (unit tests, start-up and shut-down paths).
 *
 * Thread rules: bio_submit and bio_pending from any thread; bio_start and
 * bio_stop from the main thread, once each. */
#ifndef LAMBDAD_RUNTIME_BIO_H
#define LAMBDAD_RUNTIME_BIO_H

#include <stddef.h>

enum bio_kind { BIO_FS = 0, BIO_SPAWN = 1, BIO_NKINDS };

typedef void (*bio_fn)(void *arg);

/* Starts the worker threads. Returns 0 or -errno. */
int bio_start(void);

/* Runs fn(arg) on a worker of kind (inline when bio is not running). A job
 * that cannot be queued (out of memory) also runs inline. */
void bio_submit(enum bio_kind kind, bio_fn fn, void *arg);

/* Waits until every job queued so far has run, then stops and joins the
 * workers. Later submissions run inline. */
void bio_stop(void);

/* Jobs queued or running of kind (diagnostics, tests). */
size_t bio_pending(enum bio_kind kind);

#endif
