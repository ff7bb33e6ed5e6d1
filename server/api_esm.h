/* api_esm: event source mappings (Create/Get/Update/Delete/
 * ListEventSourceMappings).
 *
 * DESIGN: a mapping is an account-level resource kept in a resstore
 * (<data-dir>/event-source-mappings, id "<region>.<account>.<UUID>") as the
 * EventSourceMappingConfiguration AWS returns, with State Enabled or
 * Disabled. The operations validate like AWS: the event source ARN's
 * service decides the defaults and limits (SQS: BatchSize 1-10000, default
 * 10, more than 10 needs a batching window, FIFO at most 10, no
 * StartingPosition; Kinesis / DynamoDB Streams / MSK / Kafka / MQ /
 * DocumentDB: default 100, StartingPosition required for the streams), one
 * mapping per (source, function). Create answers State "Creating", Update
 * "Updating", Delete "Deleting" (202), the next read the settled state, as
 * AWS reports the transitions.
 *
 * There is no SQS, Kinesis, DynamoDB, Kafka or MQ inside lambdad, so
 * nothing is polled: a mapping is stored and reported, never fed.
 *
 * Thread rules: civetweb workers; api_esm_init on the main thread. */
#ifndef LAMBDAD_SERVER_API_ESM_H
#define LAMBDAD_SERVER_API_ESM_H

#include "server/http.h"

struct persist;

/* Opens the mapping store (parent NULL: memory only). Returns 0 or -errno. */
int api_esm_init(const struct persist *parent);
void api_esm_shutdown(void);

void api_create_esm(struct http_req *req);
void api_get_esm(struct http_req *req);
void api_update_esm(struct http_req *req);
void api_delete_esm(struct http_req *req);
void api_list_esms(struct http_req *req);

#endif
