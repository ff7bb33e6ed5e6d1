/* errors: the AWS Lambda exceptions lambdad answers with, defined once.
 *
 * DESIGN: each exception is a constant struct naming its error code (sent in
 * the x-amzn-ErrorType header), its HTTP status and how its JSON body is
 * shaped (lambda-reference.md §2.7: whether it carries "Type" and whether the
 * message key is "message" or "Message"). Handlers pass a pointer to one of
 * these constants plus a message; compare them by pointer. The frequently
 * used message texts live here too, as printf formats, so every handler says
 * exactly what AWS says.
 *
 * Thread rules: read-only data, any thread. */
#ifndef LAMBDAD_SERVER_ERRORS_H
#define LAMBDAD_SERVER_ERRORS_H

#include <stdbool.h>

struct aws_error {
    const char *code;    /* x-amzn-ErrorType value */
    int status;          /* HTTP status */
    bool typed;          /* body carries "Type": "User" (4xx) / "Service" (5xx) */
    bool capital_msg;    /* message key is "Message" rather than "message" */
};

extern const struct aws_error AWS_INVALID_PARAMETER_VALUE;  /* 400 */
extern const struct aws_error AWS_INVALID_REQUEST_CONTENT;  /* 400 */
extern const struct aws_error AWS_VALIDATION;               /* 400, unmodeled */
extern const struct aws_error AWS_RESOURCE_NOT_FOUND;       /* 404 */
extern const struct aws_error AWS_UNKNOWN_OPERATION;        /* 404, unknown route */
extern const struct aws_error AWS_RESOURCE_CONFLICT;        /* 409 */
extern const struct aws_error AWS_PRECONDITION_FAILED;      /* 412 */
extern const struct aws_error AWS_REQUEST_TOO_LARGE;        /* 413 RequestTooLargeException */
extern const struct aws_error AWS_REQUEST_ENTITY_TOO_LARGE; /* 413, unmodeled (what AWS sends) */
extern const struct aws_error AWS_UNSUPPORTED_MEDIA_TYPE;   /* 415 */
extern const struct aws_error AWS_TOO_MANY_REQUESTS;        /* 429 */
extern const struct aws_error AWS_SERVICE;                  /* 500 ServiceException */
extern const struct aws_error AWS_RESOURCE_NOT_READY;       /* 502 */
extern const struct aws_error AWS_INVALID_RUNTIME;          /* 502 */
extern const struct aws_error AWS_INVALID_ZIP_FILE;         /* 502 */
extern const struct aws_error AWS_ACCESS_DENIED;            /* 403, unmodeled (IAM's answer) */
extern const struct aws_error AWS_CALLBACK_TIMEOUT;         /* 400, durable execution callbacks */

/* An error a handler or a lower layer wants answered: the exception and
 * its message. Stack-allocated by callers; no ownership. */
struct api_error {
    const struct aws_error *type;
    char msg[1536];
};

/* Fills err (printf format). Returns -1 so callers can `return api_fail(...)`. */
int api_fail(struct api_error *err, const struct aws_error *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The operation of the request the calling thread is handling ("Invoke",
 * "GetFunction", ...; set by the HTTP dispatcher, NULL outside a request),
 * so lower layers can name the IAM action in AccessDeniedException. */
void errors_set_operation(const char *op);

/* Fills err with AWS's AccessDeniedException for a caller of account
 * acting on resource_arn owned by another account (action: the IAM action
 * without "lambda:", NULL for the current operation's): "User:
 * arn:aws:iam::<account>:root is not authorized to perform:
 * lambda:<Action> on resource: <arn> because no resource-based policy
 * allows the lambda:<Action> action" (lambdad evaluates no resource
 * policies, so another account's resource is never reachable). Returns -1. */
int api_access_denied(struct api_error *err, const char *account, const char *action, const char *resource_arn);

/* Message formats (printf). */
#define MSG_REGION_UNREACHABLE "Functions from '%s' are not reachable in this region ('%s')"
#define MSG_CROSS_ACCOUNT_PASS_ROLE "Cross-account pass role is not allowed."
#define MSG_FUNCTION_NOT_FOUND "Function not found: %s"
#define MSG_FUNCTION_EXISTS "Function already exist: %s"
#define MSG_RESOURCE_NOT_FOUND "The resource you requested does not exist."
#define MSG_QUALIFIER_MISMATCH                                                                     \
    "The derived qualifier from the function name does not match the specified qualifier."
#define MSG_RUNTIME_HANDLER_MANDATORY                                                              \
    "Runtime and Handler are mandatory parameters for functions created with deployment packages."
#define MSG_REVISION_MISMATCH                                                                      \
    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias " \
    "API to retrieve the latest Revision Id"
#define MSG_BODY_TOO_LARGE "Request must be smaller than %zu bytes for the %s operation"
#define MSG_ENV_TOO_LARGE                                                                          \
    "Lambda was unable to configure your environment variables because the environment variables " \
    "you have provided exceeded the 4KB limit. String measured: %s"
#define MSG_ENV_RESERVED                                                                           \
    "Lambda was unable to configure your environment variables because the environment variables " \
    "you have provided contains reserved keys that are currently not supported for modification. " \
    "Reserved keys used in this request: %s"
#define MSG_RUNTIME_DEPRECATED                                                                     \
    "The runtime parameter of %s is no longer supported for creating or updating AWS Lambda "      \
    "functions. We recommend you use a supported runtime while creating or updating functions."
#define MSG_BAD_JSON "Could not parse request body into json: %s"
#define MSG_INTERNAL "An internal error occurred in lambdad: %s"

#endif
