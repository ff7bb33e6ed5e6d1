/* api_urls: function URLs - the configuration operations
 * (Create/Get/Update/Delete/ListFunctionUrlConfigs) and the HTTP endpoint
 * that really serves them.
 *
 * DESIGN: a function's URL configurations live in its document under
 * extras.urls.<qualifier> ("" for the unqualified function, else an alias
 * name; AWS allows no version numbers), as the FunctionUrlConfig AWS
 * returns plus "UrlId", the 32-character id of
 * https://<UrlId>.lambda-url.<region>.on.aws/. Writes are registry_update
 * callbacks, reads parse the record's extras text.
 *
 * Serving: a request whose Host contains ".lambda-url." (e.g.
 * <UrlId>.lambda-url.<region>.localhost:<port>) or whose path starts with
 * /_lambdad/url/<UrlId>/ (no DNS needed; the rest of the path is the
 * function's rawPath) is a function URL request. Its function is found by
 * scanning for the id (registry_find_extra), AuthType AWS_IAM requires a
 * SigV4 Authorization header (the signature is not verified: lambdad has no
 * secrets) else 403, CORS preflights are answered from the configuration,
 * and everything else invokes the function synchronously with the API
 * Gateway payload format 2.0 event. The result maps as AWS maps it: a JSON
 * object with statusCode gives statusCode/headers/cookies/body
 * (isBase64Encoded), anything else is a 200 application/json body; a
 * function error is 502. InvokeMode RESPONSE_STREAM: a response the
 * runtime streams (pool/invstream.h) is relayed as a chunked body as it
 * arrives (an http-integration-response prelude first becomes the status,
 * headers and cookies); a buffered one maps as above.
 *
 * Thread rules: civetweb worker threads (RCU-registered); serving blocks the
 * worker until the invocation completes, as Invoke does. */
#ifndef LAMBDAD_SERVER_API_URLS_H
#define LAMBDAD_SERVER_API_URLS_H

#include <stdbool.h>

#include "server/http.h"

void api_create_url_config(struct http_req *req);
void api_get_url_config(struct http_req *req);
void api_update_url_config(struct http_req *req);
void api_delete_url_config(struct http_req *req);
void api_list_url_configs(struct http_req *req);

/* Serves req when it is a function URL request (see DESIGN) and returns
 * true; returns false (nothing sent) otherwise. */
bool api_url_dispatch(struct http_req *req);

#endif
