/* admin: lambdad's own endpoints under /_lambdad/ (health, warm
 * environments, eviction, the benchmark no-op, code downloads).
 *
 * DESIGN: plain JSON over the same listener as the Lambda API; they bypass
 * AWS semantics but still answer with x-amzn-RequestId like every route.
 * /_lambdad/noop is the HTTP-ceiling endpoint for benchmarks and does no
 * work beyond writing its 7-byte body.
 *
 * Thread rules: admin_init on the main thread before http_start; handlers
 * on civetweb worker threads. */
#ifndef LAMBDAD_SERVER_ADMIN_H
#define LAMBDAD_SERVER_ADMIN_H

#include "server/http.h"

struct codestore;

/* Records what /_lambdad/health reports and where code is served from. */
void admin_init(struct codestore *cs, const char *executor_name);

void admin_health(struct http_req *req);    /* GET /_lambdad/health */
void admin_envs(struct http_req *req);      /* GET /_lambdad/environments */
void admin_evict(struct http_req *req);     /* DELETE /_lambdad/environments/{function name} */
void admin_noop(struct http_req *req);      /* POST /_lambdad/noop -> {"a":1} */
void admin_code(struct http_req *req);      /* GET /_lambdad/code/{sha256hex}.zip */

#endif
