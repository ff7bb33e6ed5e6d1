/* api_versions: PublishVersion, ListVersionsByFunction and the alias
 * operations (CreateAlias, GetAlias, ListAliases, UpdateAlias, DeleteAlias).
 *
 * DESIGN: versions and aliases are part of the function's record and
 * document (registry.h), so every write here is one registry_update whose
 * mutate callback edits the document copy under the writer mutex (where the
 * RevisionId preconditions and the existence checks see the current
 * state); reads send the record's pre-serialised texts.
 *
 * Thread rules: civetweb worker threads (RCU-registered). */
#ifndef LAMBDAD_SERVER_API_VERSIONS_H
#define LAMBDAD_SERVER_API_VERSIONS_H

#include "server/http.h"

void api_publish_version(struct http_req *req);
void api_list_versions(struct http_req *req);
void api_create_alias(struct http_req *req);
void api_get_alias(struct http_req *req);
void api_list_aliases(struct http_req *req);
void api_update_alias(struct http_req *req);
void api_delete_alias(struct http_req *req);

#endif
