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
 * reports.
 *
 * The whole-document operations (2026-07-09, PolicyResourceArn path
 * parameter) act on the same statements: AWS documents that
 * PutResourcePolicy "replaces any existing policy on the Lambda resource"
 * including permissions added with AddPermission, so Put stores the
 * document's statements (a lone Statement object becomes a one-element
 * array) under the same extras.policy.<qualifier>, GetResourcePolicy and
 * GetPolicy return the same Policy and RevisionId, AddPermission /
 * RemovePermission edit a Put policy by Sid, and DeleteResourcePolicy drops
 * every statement. The document is normalised: its Version/Id are not kept
 * (returned as "2012-10-17"/"default"), key order within a statement is
 * kept. A document must parse as a JSON object whose statements each have
 * Effect Allow|Deny, a Principal (or NotPrincipal), an Action (or
 * NotAction) and a unique string Sid if any (else
 * InvalidParameterValueException); conditions and resources are stored
 * as given, not checked. A runtime/... ARN names nothing lambdad has
 * (ResourceNotFoundException). Layer-version statements live in the layer version record
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
void api_get_resource_policy(struct http_req *req);
void api_put_resource_policy(struct http_req *req);
void api_delete_resource_policy(struct http_req *req);

#endif
