/* api_layers: the Lambda layer operations (PublishLayerVersion,
 * GetLayerVersion, GetLayerVersionByArn, ListLayers, ListLayerVersions,
 * DeleteLayerVersion).
 *
 * DESIGN: like api_functions, each handler validates its input completely
 * (AWS's ValidationException texts for shape problems), does the slow work
 * (base64 decoding, unzipping into the code store) with no lock held, then
 * calls the layer store (layers.h), which persists before it publishes.
 * LayerName may be a bare name (the request's region/account) or a layer
 * ARN (its own region/account). Responses are built from the immutable
 * layer_version records; Content.Location points at lambdad's own
 * /_lambdad/code/<sha256-hex>.zip on the Host the client used.
 *
 * Thread rules: civetweb worker threads. The code store is the one set by
 * api_functions_init. */
#ifndef LAMBDAD_SERVER_API_LAYERS_H
#define LAMBDAD_SERVER_API_LAYERS_H

#include "server/http.h"

#include "server/layers.h"

/* Parses the {LayerName}/{VersionNumber} path parameters (name or layer
 * ARN; AWS's ValidationException / InvalidParameterValueException texts).
 * Returns 0 or -1 with err filled. */
int api_layer_version_ref(struct http_req *req, char region[32], char account[13],
                          char name[LAYERS_NAME_MAX + 1], long long *version, struct api_error *err);

void api_publish_layer_version(struct http_req *req);
void api_get_layer_version(struct http_req *req);
/* ListLayers, and GetLayerVersionByArn when the query has find=LayerVersion
 * (both are GET /2018-10-31/layers). */
void api_list_layers(struct http_req *req);
void api_list_layer_versions(struct http_req *req);
void api_delete_layer_version(struct http_req *req);

#endif
