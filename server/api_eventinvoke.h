/* api_eventinvoke: asynchronous invocation configuration
 * (Put/Get/Update/Delete/ListFunctionEventInvokeConfigs) and what it does
 * to Event invocations: MaximumRetryAttempts, MaximumEventAgeInSeconds and
 * OnSuccess/OnFailure destinations.
 *
 * DESIGN: configurations live in the function's document under
 * extras.eic.<qualifier> ("$LATEST" for the unqualified function, a
 * version number or an alias name) as the FunctionEventInvokeConfig AWS
 * returns. An Event invoke copies the configuration of the qualifier it
 * names into its invocation (max_retries, max_event_age_s, which the pool
 * applies to its retries) and, when destinations are set, a small struct in
 * inv->user. When the pool is done with the event (success, or retries
 * exhausted / event too old), api_event_deliver sends AWS's invocation
 * record (version 1.0, requestContext, requestPayload, responseContext,
 * responsePayload) as an Event invoke of the destination function.
 * Destinations that are not Lambda functions (SQS, SNS, EventBridge, S3)
 * are stored and returned but not delivered: lambdad has none of those
 * services' queues (logged).
 *
 * Thread rules: the handlers run on civetweb workers; api_event_config_text
 * inside the caller's RCU read-side section; api_event_deliver on the
 * executor thread that completes the event (RCU-registered). */
#ifndef LAMBDAD_SERVER_API_EVENTINVOKE_H
#define LAMBDAD_SERVER_API_EVENTINVOKE_H

#include "server/http.h"

struct fn_record;
struct invocation;

void api_put_event_invoke_config(struct http_req *req);
void api_update_event_invoke_config(struct http_req *req);
void api_get_event_invoke_config(struct http_req *req);
void api_delete_event_invoke_config(struct http_req *req);
void api_list_event_invoke_configs(struct http_req *req);

/* The stored configuration for an invoke of r with qualifier ("" means
 * $LATEST), as malloc'd JSON text, or NULL when there is none. Inside the
 * read-side section that found r. */
char *api_event_config_text(const struct fn_record *r, const char *qualifier);

/* Applies a configuration text (may be NULL; consumed) to a new Event
 * invocation: retry and age limits, and the destinations in inv->user. */
void api_event_configure(struct invocation *inv, char *config_text);

/* Called once per finished Event invocation before it is freed: delivers
 * the invocation record to the configured destination and frees inv->user
 * when api_event_configure set it. */
void api_event_deliver(struct invocation *inv);

#endif
