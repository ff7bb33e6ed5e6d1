/* logs_store: CloudWatch Logs log groups, log streams and events, in memory
 * and under <data-dir>/logs, fed by the executors' log sink and by
 * PutLogEvents.
 *
 * DESIGN: every group, stream and event lives in memory (bounded by the
 * size cap, --logs-max-bytes); streams keep their events in an array sorted
 * by (timestamp, sequence), the sequence being a store-wide counter that
 * also makes the eventId. Persistence:
 *   - a group is one JSON document (persist.h discipline: temp file,
 *     fsync, rename) in <data-dir>/logs/<group-id>.json, written before
 *     CreateLogGroup/PutRetentionPolicy/TagLogGroup answer;
 *   - a stream is one append-only file <data-dir>/logs/<group-id>/
 *     <sha256(stream)>.log of CRC-checked records (a header record with the
 *     name and creation time, then one record per event). Appends are
 *     written by a background thread ("logs-flush") about every 200 ms and
 *     are not fsync'd: invocation logs are not acknowledged changes.
 *     PutLogEvents writes its batch to the file before answering (no
 *     fsync: survives a crash of lambdad, not a power loss). At start-up a
 *     torn tail (bad length or CRC) is cut off.
 *   - retention: a sweep (every 10 s, and at once on PutRetentionPolicy)
 *     drops events older than the group's retention; a stream that lost
 *     events is rewritten (temp file + rename) by the flusher.
 *   - the size cap drops the oldest events of the store first.
 * A container's END/REPORT lines are held for 30 ms (or until its next
 * START) so output that the Engine's log stream delivers after the result
 * still lands before them (pool_log_rec.output_lags).
 * The invoke path only pushes a copy of each record onto a wait-free queue
 * (pool/queue.h) and never takes a lock; whoever takes the store lock next
 * (an API call or the flusher) moves the queue into the store, so a
 * GetLogEvents after an Invoke's answer sees that invocation's lines.
 *
 * Thread rules: logs_store_sink from any thread (never blocks). Everything
 * that reads or changes groups/streams holds the store lock
 * (logs_store_lock). Operations that write to disk hold the I/O lock first
 * (logs_store_lock_write), which is never held by the invoke path; the
 * store lock itself is never held across disk I/O. Lock order: I/O lock,
 * then store lock. */
#ifndef LAMBDAD_SERVER_LOGS_STORE_H
#define LAMBDAD_SERVER_LOGS_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool/pool.h"

struct persist;

#define LOGS_MAX_EVENT_BYTES (256 * 1024) /* longer lines are split */
#define LOGS_EVENT_OVERHEAD 26            /* bytes AWS counts per event */

struct logs_event {
    int64_t ts;      /* event timestamp, ms since the epoch */
    int64_t ingest;  /* ingestion time, ms */
    uint64_t seq;    /* store-wide, unique, increasing in ingestion order */
    uint32_t len;
    char *msg;       /* NUL-terminated, owned */
};

struct logs_group;

struct logs_stream {
    char *name;
    int64_t creation;
    int64_t last_ingest;
    struct logs_event *ev; /* sorted by (ts, seq) */
    size_t n, cap;
    uint64_t bytes;        /* sum of message lengths */
    struct logs_group *g;
    char file[80];         /* "<sha256 hex>.log" */
    char *wbuf;            /* records not yet written to the file */
    size_t wlen, wcap;
    bool dirty;            /* wbuf holds data */
    bool rewrite;          /* events were dropped: rewrite the whole file */
};

struct logs_group {
    char *region, *account, *name;
    char id[96];           /* document id and directory name */
    int64_t creation;
    int retention_days;    /* 0: never expire */
    json_t *tags;          /* object, owned */
    struct logs_stream **st; /* sorted by name */
    size_t n, cap;
    uint64_t bytes;
    bool doc_dirty;        /* the flusher writes the group document */
};

/* Opens the store: memory only when parent is NULL (--ephemeral), else
 * loads <data-dir>/logs (parent: the data dir's persist handle) and starts
 * the flusher thread. max_bytes caps the stored message bytes (0: no cap).
 * Returns 0 or -errno. Main thread. */
int logs_store_init(struct persist *parent, const char *data_dir, uint64_t max_bytes);

/* Flushes pending writes, stops the flusher, frees everything. Main thread,
 * after the pool stopped. */
void logs_store_shutdown(void);

/* The executors' log sink (pool_set_log_sink): copies the record onto the
 * ingest queue. Any thread; never blocks. */
void logs_store_sink(const struct pool_log_rec *rec, void *user);

/* Takes the store lock (and moves queued invocation output into the store).
 * For reads. */
void logs_store_lock(void);
void logs_store_unlock(void);

/* Takes the I/O lock then the store lock: for operations that change
 * groups or streams. logs_store_unlock_write releases both after writing
 * what the operation changed to disk (see logs_store_mark_*). */
void logs_store_lock_write(void);
void logs_store_unlock_write(void);

/* Current wall clock in ms. */
int64_t logs_now_ms(void);

/* --- under the store lock --- */

/* All groups, sorted by (region, account, name); *n their count. */
struct logs_group **logs_groups(size_t *n);

struct logs_group *logs_group_find(const char *region, const char *account, const char *name);

/* Creates a group (the caller checked it does not exist). NULL on OOM. */
struct logs_group *logs_group_create(const char *region, const char *account, const char *name,
                                     int64_t now);

/* Deletes a group with its streams (write lock: files removed on unlock). */
void logs_group_delete(struct logs_group *g);

/* The group document must be rewritten (write lock: on unlock). */
void logs_group_mark_dirty(struct logs_group *g);

struct logs_stream *logs_stream_find(struct logs_group *g, const char *name);

/* Creates a stream (the caller checked it does not exist). NULL on OOM. */
struct logs_stream *logs_stream_create(struct logs_group *g, const char *name, int64_t now);

/* Deletes a stream (write lock: its file is removed on unlock). */
void logs_stream_delete(struct logs_stream *s);

/* Adds an event (message copied; longer than LOGS_MAX_EVENT_BYTES is the
 * caller's check). Returns 0 or -ENOMEM. */
int logs_stream_add(struct logs_stream *s, int64_t ts, int64_t ingest, const char *msg, size_t len);

/* Drops events older than each group's retention (or only g's when g is
 * non-NULL). Returns the number of events dropped. */
size_t logs_store_expire(struct logs_group *g, int64_t now);

/* The newest event sequence number handed out so far. */
uint64_t logs_store_last_seq(void);

/* Index of the first event of s at or after (ts, seq). */
size_t logs_stream_lower_bound(const struct logs_stream *s, int64_t ts, uint64_t seq);

#endif
