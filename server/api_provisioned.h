/* api_provisioned: provisioned concurrency
 * (Put/Get/Delete/ListProvisionedConcurrencyConfigs) and the small
 * per-function settings AWS stores and returns (Get/PutFunctionRecursionConfig,
 * Get/PutRuntimeManagementConfig).
 *
 * DESIGN: a provisioned-concurrency configuration lives in the function's
 * document under extras.pc.<qualifier> (a version number or an alias;
 * $LATEST is refused as AWS refuses it) as {"Requested": N,
 * "LastModified": ...}. Put asks the pool to keep N initialised
 * environments of the version's spec (pool_provision: started now, never
 * reaped as idle), and every read asks again, so environments that died
 * come back and the answer carries how many are initialised: Status
 * IN_PROGRESS until N are READY, then READY (Allocated/Available = the
 * initialised count). An alias provisions the version it points at when the
 * configuration is written. api_provisioned_restore re-provisions every
 * stored configuration after a restart. Recursion and runtime management
 * settings are stored under extras.recursion / extras.runtime.<qualifier>
 * and only reported (lambdad detects no loops and has one runtime version).
 *
 * Thread rules: handlers on civetweb workers; api_provisioned_restore on the
 * main thread after registry_load and pool_start (RCU-registered). */
#ifndef LAMBDAD_SERVER_API_PROVISIONED_H
#define LAMBDAD_SERVER_API_PROVISIONED_H

#include "server/http.h"

void api_put_provisioned(struct http_req *req);
void api_get_provisioned(struct http_req *req);
void api_delete_provisioned(struct http_req *req);
/* GET .../provisioned-concurrency: ListProvisionedConcurrencyConfigs when
 * the query has List=ALL, else GetProvisionedConcurrencyConfig. */
void api_get_or_list_provisioned(struct http_req *req);

void api_get_recursion_config(struct http_req *req);
void api_put_recursion_config(struct http_req *req);
void api_get_runtime_management(struct http_req *req);
void api_put_runtime_management(struct http_req *req);

/* Re-provisions every stored provisioned-concurrency configuration. */
void api_provisioned_restore(void);

#endif
