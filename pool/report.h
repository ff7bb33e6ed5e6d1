/* report: what an invocation hands back: its result or error body, its
 * function log (the output of the handler between START and END) and the
 * platform's START/END/REPORT lines, and the final hand-off to the caller.
 *
 * DESIGN: each environment collects its runtime's output in two bounded
 * buffers (struct logbuf: init output, current invocation output; the
 * newest LOG_KEEP bytes are kept). When an invocation completes and the
 * caller asked for the log, report_build_log assembles init output (cold
 * starts), START, the invocation's output and END/REPORT into inv->log.
 *
 * Thread rules: the owning executor thread. */
#ifndef LAMBDAD_POOL_REPORT_H
#define LAMBDAD_POOL_REPORT_H

#include "pool/internal.h"

/* Appends output, keeping the newest bytes within the per-invocation cap. */
void logbuf_append(struct logbuf *b, const char *data, size_t len);
/* Empties the buffer (keeps its memory). */
void logbuf_reset(struct logbuf *b);
/* Frees the buffer's memory. */
void logbuf_free(struct logbuf *b);

/* Sets inv's outcome and a copy of body as its result (content type and
 * errorType recorded; NULL ctype = application/json). */
void report_set_result(struct invocation *inv, enum inv_outcome outcome, const char *body,
                       size_t len, const char *ctype, const char *etype);

/* Platform error body: {"errorType": T, "errorMessage": "RequestId: id Error: msg"}. */
void report_platform_error(struct invocation *inv, const char *etype, const char *msg);

/* Builds inv->log for an invocation served by e that took dur_ms; status
 * ("error", "timeout") goes into the REPORT line when not NULL. */
void report_build_log(struct env *e, struct invocation *inv, double dur_ms, const char *status);

/* --- the log sink (pool_set_log_sink): CloudWatch Logs --- */

/* Registers the sink (NULL: none); pool_set_log_sink. Main thread, before
 * the executors start. */
void report_set_sink(pool_log_sink_fn fn, void *user);

/* Function output read from e's pipe: kept for the log tail (init or
 * invocation buffer) and handed to the sink. */
void report_output(struct env *e, const char *data, size_t len);

/* Tells the sink that inv starts running in e (START). */
void report_sink_start(struct env *e, struct invocation *inv);

/* Tells the sink that inv finished in e after dur_ms (END/REPORT); status
 * as for report_build_log. Reads e->report_init/init_ms/peak_mb. */
void report_sink_report(struct env *e, const char *request_id, double dur_ms, const char *status);

/* Whether a sink is registered. */
bool report_sink_enabled(void);

/* Hands a finished invocation back to its caller (on_done), or schedules
 * an Event retry after a function error. */
void report_finish(struct executor *ex, struct invocation *inv);

/* Fails an invocation that never reached an environment (INV_SERVICE_ERROR). */
void report_fail_service(struct executor *ex, struct invocation *inv, const char *msg);

#endif
