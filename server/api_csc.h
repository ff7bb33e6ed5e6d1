/* api_csc: code signing configurations (Create/Get/Update/Delete/
 * ListCodeSigningConfigs, Put/Get/DeleteFunctionCodeSigningConfig,
 * ListFunctionsByCodeSigningConfig).
 *
 * DESIGN: a configuration is an account-level resource in a resstore
 * (<data-dir>/code-signing-configs, id "<region>.<account>.<csc-id>"), kept
 * as the CodeSigningConfig AWS returns. A function's attachment is its
 * document's extras.csc (the configuration ARN). lambdad stores and returns
 * all of it but verifies no signatures: code is deployed as with no
 * configuration, whatever UntrustedArtifactOnDeployment says (documented).
 *
 * Thread rules: civetweb workers; api_csc_init on the main thread. */
#ifndef LAMBDAD_SERVER_API_CSC_H
#define LAMBDAD_SERVER_API_CSC_H

#include "server/http.h"

struct persist;

int api_csc_init(const struct persist *parent);
void api_csc_shutdown(void);

void api_create_csc(struct http_req *req);
void api_get_csc(struct http_req *req);
void api_update_csc(struct http_req *req);
void api_delete_csc(struct http_req *req);
void api_list_cscs(struct http_req *req);
void api_list_functions_by_csc(struct http_req *req);
void api_put_function_csc(struct http_req *req);
void api_get_function_csc(struct http_req *req);
void api_delete_function_csc(struct http_req *req);

#endif
