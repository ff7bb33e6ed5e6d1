/* validate: the input rules of the Lambda control plane, with AWS's texts.
 *
 * DESIGN: shape-constraint problems (length, pattern, enum, range, null)
 * are collected into a struct vlist and reported together as one
 * ValidationException ("N validation errors detected: a; b"), like the
 * service. Semantic problems (reserved env keys, 4 KB env limit, deprecated
 * runtimes, Runtime/Handler rules) are InvalidParameterValueException and are
 * checked after the shape. The function-name parser implements the FunctionName
 * grammar of the model (bare name, name:qualifier, partial ARN, full ARN)
 * without regex machinery.
 *
 * Thread rules: pure functions, any thread. */
#ifndef LAMBDAD_SERVER_VALIDATE_H
#define LAMBDAD_SERVER_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/errors.h"

#define VALIDATE_NAME_MAX 64

/* Patterns quoted in messages (the model's). */
extern const char VALIDATE_PATTERN_FUNCTION_NAME[];
extern const char VALIDATE_PATTERN_NAMESPACED_NAME[];
extern const char VALIDATE_PATTERN_ROLE[];
extern const char VALIDATE_PATTERN_HANDLER[];

/* Collected shape violations. */
struct vlist {
    int n;
    size_t len;
    char buf[1400];
};

void vlist_init(struct vlist *v);

/* Whether s matches the model's pattern as a whole (the Java regex syntax
 * of the model's patterns, translated to POSIX ERE). */
bool validate_match(const char *s, const char *pattern);

/* Adds "Value '<value>' at '<member>' failed to satisfy constraint: <what>".
 * value NULL renders as "Value null at ...". */
void vlist_add(struct vlist *v, const char *value, const char *member, const char *what);

/* If v holds violations, fills err with the ValidationException and returns
 * -1; else returns 0. */
int vlist_finish(const struct vlist *v, struct api_error *err);

/* A parsed FunctionName. region/account are "" when the name did not carry
 * them; qualifier is "" when absent. */
struct fn_name {
    char region[32];
    char account[13];
    char name[VALIDATE_NAME_MAX + 1];
    char qualifier[129];
};

/* Parses a FunctionName in any form. max_len is the shape's length limit
 * (140 for FunctionName, 256 for NamespacedFunctionName). Violations are
 * added to v (member "functionName"); returns 0 or -1. */
int validate_function_name(const char *s, size_t max_len, struct fn_name *out, struct vlist *v);

/* Resolves the full identity of a FunctionName + optional ?Qualifier= in
 * the request's region/account: parses, checks the qualifier conflict
 * (InvalidParameterValueException), fills region/account defaults and
 * refuses another region or account (validate_same_namespace).
 * qualifier_param may be NULL. Returns 0 or -1 with err filled. */
int validate_function_ref(const char *function_name, const char *qualifier_param,
                          size_t max_len, const char *region, const char *account,
                          struct fn_name *out, struct api_error *err);

/* Checks that a parsed FunctionName that names a region or account names
 * the caller's (region, account): else ResourceNotFoundException "Functions
 * from 'R' are not reachable in this region ('R2')" or
 * AccessDeniedException. validate_function_ref does it already. Returns 0
 * or -1 with err filled. */
int validate_same_namespace(const struct fn_name *n, const char *region, const char *account,
                            struct api_error *err);

/* Writes "arn:aws:lambda:R:A:function:NAME[:QUALIFIER]" into out. */
void validate_function_arn(const struct fn_name *n, bool with_qualifier, char *out, size_t outlen);

/* Whether runtime is in the model's Runtime enum / refused as deprecated. */
bool validate_runtime_known(const char *runtime);
bool validate_runtime_deprecated(const char *runtime);

/* Whether role matches the model's RoleArn pattern. */
bool validate_role(const char *role);

/* Checks the configuration members common to CreateFunction and
 * UpdateFunctionConfiguration (Role, Handler, Runtime, Description, Timeout,
 * MemorySize, EphemeralStorage, Environment, TracingConfig, LoggingConfig,
 * Architectures, Layers, ImageConfig, PackageType) for shape problems (into
 * v) and, once the shape is fine, semantic ones (into err). body is the
 * request object. Returns 0 or -1 with err filled. */
int validate_function_config(json_t *body, bool create, struct api_error *err);

/* Checks Environment.Variables: key pattern (into v), reserved keys and the
 * 4 KB limit (InvalidParameterValueException into err). Returns 0 or -1;
 * a shape problem only lands in v (returns 0). */
int validate_env(json_t *variables, struct vlist *v, struct api_error *err);

#endif
