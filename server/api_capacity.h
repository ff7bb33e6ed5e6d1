/* api_capacity: Lambda Managed Instances control plane — capacity
 * providers (Create/Get/Update/Delete/ListCapacityProviders,
 * ListFunctionVersionsByCapacityProvider), the CapacityProviderConfig
 * member of CreateFunction/UpdateFunctionConfiguration, and function
 * scaling configurations (Get/PutFunctionScalingConfig).
 *
 * DESIGN: a capacity provider is an account-level resource in a resstore
 * (<data-dir>/capacity-providers, id "<region>.<account>.<name>") kept as
 * {"CapacityProvider": <what AWS returns>, "busy_until": ms, "Tags": {...}}.
 * Creation is asynchronous on AWS (202): the create answer and reads during
 * --state-transition-ms say State "Pending", later reads "Active"; the
 * delete answer says "Deleting" and the provider is gone at once. A
 * function references a provider through its FunctionConfiguration's
 * CapacityProviderConfig (validated here: the provider must exist), which
 * PublishVersion copies into the version, so ListFunctionVersionsByCapacity
 * Provider is a scan of $LATEST and version configurations, and a provider
 * any of them references cannot be deleted (ResourceConflictException).
 * A scaling configuration is stored per published version ("N" or
 * "$LATEST.PUBLISHED", the model's PublishedFunctionQualifier) under the
 * function document's extras.scaling.<qualifier>; it is only accepted for
 * versions that run on a capacity provider. lambdad launches no EC2
 * instances: functions with a CapacityProviderConfig run on lambdad's
 * executor like any other, and the scaling bounds are stored and reported,
 * not enforced (README).
 *
 * Thread rules: handlers on civetweb workers; init/shutdown on the main
 * thread. */
#ifndef LAMBDAD_SERVER_API_CAPACITY_H
#define LAMBDAD_SERVER_API_CAPACITY_H

#include <jansson.h>
#include <stdbool.h>

#include "server/http.h"

struct persist;

/* Opens <data-dir>/capacity-providers (parent NULL: memory only). Returns
 * 0 or -errno. */
int api_capacity_init(const struct persist *parent);
void api_capacity_shutdown(void);

void api_create_capacity_provider(struct http_req *req);
void api_get_capacity_provider(struct http_req *req);
void api_update_capacity_provider(struct http_req *req);
void api_delete_capacity_provider(struct http_req *req);
void api_list_capacity_providers(struct http_req *req);
void api_list_versions_by_capacity_provider(struct http_req *req);
void api_get_function_scaling_config(struct http_req *req);
void api_put_function_scaling_config(struct http_req *req);

/* Whether a TaggableResource ARN names a capacity provider (then
 * TagResource/UntagResource/ListTags are answered by the functions below,
 * with the provider's tags, persisted with it). */
bool api_capacity_owns_arn(const char *arn);
void api_capacity_tag_resource(struct http_req *req);
void api_capacity_untag_resource(struct http_req *req);
void api_capacity_list_tags(struct http_req *req);

/* Checks the CapacityProviderConfig member of a CreateFunction or
 * UpdateFunctionConfiguration body (absent or null: nothing to check):
 * shape problems as ValidationException, a provider that does not exist in
 * (region, account) as InvalidParameterValueException. Returns 0 or -1
 * with err filled. Any thread, outside RCU read-side sections. */
int api_capacity_check_function_config(json_t *body, const char *region, const char *account,
                                       struct api_error *err);

/* The CapacityProviderConfig to store in a FunctionConfiguration, built
 * from a body member already checked by api_capacity_check_function_config
 * (new reference), or NULL when the body has none. */
json_t *api_capacity_function_config(json_t *body);

#endif
