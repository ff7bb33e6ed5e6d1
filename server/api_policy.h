/* api_policy: resource-based policies of functions (AddPermission,
 * RemovePermission, GetPolicy) and of layer versions
 * (AddLayerVersionPermission, RemoveLayerVersionPermission,
 * GetLayerVersionPolicy).
 *
 * DESIGN: a function's statements live in its document, under
 * extras.policy.<qualifier> ("" for the unqualified function and $LATEST, a
 * version number, or an alias name), as the statement objects AWS returns
 * (Sid, Effect, Principal, Action, Resource, Condition), so GetPolicy only
 * wraps them in {"Version":"2012-10-17","Id":"default","Statement":[...]}.
 * Every write is one registry_update, where the RevisionId precondition is
 * checked against the current state; a policy change gives the target
 * ($LATEST, the version or the alias) a new RevisionId, which GetPolicy
 * reports. Layer-version statements live in the layer version record
 * (layers_update_policy). Nothing here enforces the policies: lambdad
 * trusts every caller, as documented.
 *
 * Thread rules: civetweb worker threads (RCU-registered). */
#ifndef LAMBDAD_SERVER_API_POLICY_H
#define LAMBDAD_SERVER_API_POLICY_H

#include "server/http.h"

void api_add_permission(struct http_req *req);
void api_remove_permission(struct http_req *req);
void api_get_policy(struct http_req *req);
void api_add_layer_permission(struct http_req *req);
void api_remove_layer_permission(struct http_req *req);
void api_get_layer_policy(struct http_req *req);

#endif
