/* api_invoke: the data-plane handlers (Invoke, InvokeAsync).
 *
 * DESIGN: these run on the hot path. The routing table in http.c sends
 *   POST /2015-03-31/functions/{FunctionName}/invocations  -> api_invoke
 *   POST /2014-11-13/functions/{FunctionName}/invoke-async[/] -> api_invoke_async
 * with req->params[0] = the decoded FunctionName (any form: name,
 * name:qualifier, partial or full ARN), req->body_cap = 6291456,
 * req->region/account/request_id filled in. A handler reads the body with
 * http_read_body, resolves the function with registry_resolve inside an RCU
 * read-side section (the worker thread is already RCU-registered), takes a
 * fn_spec reference with registry_spec_ref, leaves the section, submits to
 * the pool and answers with the http_send* helpers (lambda-reference.md §2).
 *
 * Thread rules: called on civetweb worker threads; may block waiting for the
 * invocation result (request_timeout_ms is 960 s). */
#ifndef LAMBDAD_SERVER_API_INVOKE_H
#define LAMBDAD_SERVER_API_INVOKE_H

#include "server/http.h"

/* Sets the Event payload limit (bytes; default 1048576) and how long an
 * HTTP thread that is the only one waiting for a RequestResponse result
 * polls for it before it sleeps (--invoke-spin-us; 0: sleep at once).
 * Main thread, before http_start. */
void api_invoke_configure(size_t async_payload_limit, int spin_us);

/* POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q] (Invoke). */
void api_invoke(struct http_req *req);

/* POST /2014-11-13/functions/{FunctionName}/invoke-async[/] (InvokeAsync, 202). */
void api_invoke_async(struct http_req *req);

/* InvokeWithResponseStream: the invocation's response as an
 * application/vnd.amazon.eventstream (PayloadChunk events, then
 * InvokeComplete) in a chunked body. A response the runtime streams is
 * relayed piece by piece as the executor hands it over (pool/invstream.h);
 * a buffered one goes out when the invocation ends. */
void api_invoke_stream(struct http_req *req);

#endif
