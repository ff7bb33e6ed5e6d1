/* errors: AWS exception table (see errors.h). */
#include "server/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct aws_error AWS_INVALID_PARAMETER_VALUE = {"InvalidParameterValueException", 400, true, false};
const struct aws_error AWS_INVALID_REQUEST_CONTENT = {"InvalidRequestContentException", 400, true, false};
const struct aws_error AWS_VALIDATION = {"ValidationException", 400, false, false};
const struct aws_error AWS_RESOURCE_NOT_FOUND = {"ResourceNotFoundException", 404, true, true};
const struct aws_error AWS_UNKNOWN_OPERATION = {"UnknownOperationException", 404, false, false};
const struct aws_error AWS_RESOURCE_CONFLICT = {"ResourceConflictException", 409, true, false};
const struct aws_error AWS_PRECONDITION_FAILED = {"PreconditionFailedException", 412, true, false};
const struct aws_error AWS_REQUEST_TOO_LARGE = {"RequestTooLargeException", 413, true, false};
const struct aws_error AWS_REQUEST_ENTITY_TOO_LARGE = {"RequestEntityTooLargeException", 413, false, false};
const struct aws_error AWS_UNSUPPORTED_MEDIA_TYPE = {"UnsupportedMediaTypeException", 415, true, false};
const struct aws_error AWS_TOO_MANY_REQUESTS = {"TooManyRequestsException", 429, true, false};
const struct aws_error AWS_SERVICE = {"ServiceException", 500, true, true};
const struct aws_error AWS_RESOURCE_NOT_READY = {"ResourceNotReadyException", 502, true, false};
const struct aws_error AWS_INVALID_RUNTIME = {"InvalidRuntimeException", 502, true, true};
const struct aws_error AWS_INVALID_ZIP_FILE = {"InvalidZipFileException", 502, true, true};
const struct aws_error AWS_ACCESS_DENIED = {"AccessDeniedException", 403, false, true};
const struct aws_error AWS_CALLBACK_TIMEOUT = {"CallbackTimeoutException", 400, true, true};

static _Thread_local const char *t_operation;

void errors_set_operation(const char *op)
{
    t_operation = op;
}

/* The IAM action an operation is authorised by (the service authorization
 * reference: Invoke and InvokeAsync need lambda:InvokeFunction,
 * GetLayerVersionByArn lambda:GetLayerVersion, the rest their own name). */
static const char *iam_action(const char *op)
{
    if (!op)
        return "GetFunction";
    if (!strcmp(op, "Invoke") || !strcmp(op, "InvokeAsync"))
        return "InvokeFunction";
    if (!strcmp(op, "GetLayerVersionByArn"))
        return "GetLayerVersion";
    return op;
}

int api_access_denied(struct api_error *err, const char *account, const char *action, const char *resource_arn)
{
    if (!action)
        action = iam_action(t_operation);
    return api_fail(err, &AWS_ACCESS_DENIED,
                    "User: arn:aws:iam::%s:root is not authorized to perform: lambda:%s on resource: %s "
                    "because no resource-based policy allows the lambda:%s action",
                    account, action, resource_arn, action);
}

int api_fail(struct api_error *err, const struct aws_error *type, const char *fmt, ...)
{
    va_list ap;
    err->type = type;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}
