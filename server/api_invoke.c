/* api_invoke: STUB answering 501 until the real Invoke handler lands (the
 * lead replaces this file). */
#include "server/api_invoke.h"

void api_invoke(struct http_req *req)
{
    http_send_error(req, &AWS_NOT_IMPLEMENTED, "not implemented yet");
}

void api_invoke_async(struct http_req *req)
{
    http_send_error(req, &AWS_NOT_IMPLEMENTED, "not implemented yet");
}
