/* api_durable: the durable-execution operations
 * (ListDurableExecutionsByFunction, Get/StopDurableExecution,
 * Delete/Pause/ResumeDurableExecution,
 * GetDurableExecutionHistory, GetDurableExecutionState,
 * CheckpointDurableExecution, SendDurableExecutionCallbackSuccess/
 * Failure/Heartbeat).
 *
 * DESIGN: lambdad runs no durable executions (there is no DurableConfig
 * execution engine), so no execution, checkpoint token or callback id ever
 * exists here. Each operation checks its input as the model constrains it
 * (ValidationException, like every other operation) and then answers what
 * AWS answers for something that does not exist, using only the errors the
 * model lists for the operation: an existing function has an empty
 * execution list (ResourceNotFoundException for a missing function); an
 * execution ARN names nothing (ResourceNotFoundException, also for
 * Delete/Pause/Resume, whose ResourceConflictException for an execution
 * in the wrong state never arises); the operations
 * whose model lists no ResourceNotFoundException (GetDurableExecutionState,
 * CheckpointDurableExecution) refuse the checkpoint token
 * (InvalidParameterValueException), and a callback id is answered with
 * CallbackTimeoutException (the callback "has either expired or ... has
 * already been closed"). No state; nothing persisted.
 *
 * Thread rules: civetweb workers. */
#ifndef LAMBDAD_SERVER_API_DURABLE_H
#define LAMBDAD_SERVER_API_DURABLE_H

#include "server/http.h"

/* The most a SendDurableExecutionCallbackSuccess Result may carry (the
 * model's BinaryOperationPayload max). */
#define API_DURABLE_RESULT_MAX 262144u

void api_list_durable_executions(struct http_req *req);
void api_get_durable_execution(struct http_req *req);
void api_get_durable_execution_history(struct http_req *req);
void api_get_durable_execution_state(struct http_req *req);
void api_checkpoint_durable_execution(struct http_req *req);
void api_stop_durable_execution(struct http_req *req);
void api_delete_durable_execution(struct http_req *req);
void api_pause_durable_execution(struct http_req *req);
void api_resume_durable_execution(struct http_req *req);
void api_durable_callback_success(struct http_req *req);
void api_durable_callback_failure(struct http_req *req);
void api_durable_callback_heartbeat(struct http_req *req);

#endif
