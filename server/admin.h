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
void admin_code(struct http_req *req);      /* GET /_lambdad/code/{sha256hex}.zip?expires=&signature= */

/* Code blobs are reached only through the URL GetFunction / GetLayerVersion
 * hand out (as AWS hands out a presigned S3 URL valid for 10 minutes):
 * writes "http://<Host>/_lambdad/code/<hex>.zip?expires=<unix>&signature=<hmac>"
 * into out, where the signature is HMAC-SHA256 over the hex and the expiry
 * with a key drawn at start (so URLs die with the process too). Whoever
 * could read the function or layer may download its code; nobody else can
 * (the hex alone is not enough). */
void admin_code_location(const struct http_req *req, const char *code_hex, char *out, size_t outlen);

/* Validity of a code URL in seconds. */
#define ADMIN_CODE_URL_TTL_S 600

#endif
