/* api_logs: the CloudWatch Logs API (JSON 1.1, X-Amz-Target
 * "Logs_20140328.<Operation>") on top of the log store (logs_store.h).
 *
 * DESIGN: one handler registered in the services table (services.c); it
 * reads the target's operation, parses the body once (depth-checked) and
 * runs the operation under the store lock (the write lock for operations
 * that change groups, streams or events, which are on disk when the answer
 * is sent). Errors are AWS's: {"__type": code, "message": ...} with status
 * 400 (InvalidParameterException, ResourceNotFoundException,
 * ResourceAlreadyExistsException, SerializationException,
 * UnknownOperationException).
 *
 * Tokens: GetLogEvents returns "f/<40 digits>" and "b/<40 digits>" (the
 * timestamp and sequence of the boundary event; the same token again when
 * there is nothing newer), FilterLogEvents "e/<40 digits>" (the last event
 * examined), the Describe operations "n/<offset>".
 *
 * Thread rules: civetweb worker threads. */
#ifndef LAMBDAD_SERVER_API_LOGS_H
#define LAMBDAD_SERVER_API_LOGS_H

#include "server/http.h"

/* Largest Logs request body (a 1 MB PutLogEvents batch, JSON-escaped). */
#define API_LOGS_BODY_CAP (8u << 20)

/* The services-table handler for "logs". */
void api_logs(struct http_req *req);

#endif
