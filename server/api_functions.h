/* api_functions: the Lambda control-plane handlers (functions, tags,
 * concurrency, account settings, and the cheap read-only answers for
 * features lambdad does not model yet).
 *
 * DESIGN: each handler validates its input completely before touching state
 * (validate.h), does slow work that needs no lock (base64 decoding, zip
 * extraction into the code store) first, then hands a JSON document to the
 * registry, which persists it and publishes a new immutable record under its
 * writer mutex. Responses are the stored FunctionConfiguration text, so reads
 * serialise nothing.
 *
 * Thread rules: civetweb worker threads (RCU-registered). api_functions_init
 * once on the main thread before http_start. */
#ifndef LAMBDAD_SERVER_API_FUNCTIONS_H
#define LAMBDAD_SERVER_API_FUNCTIONS_H

#include "server/http.h"

struct codestore;

/* Sets the code store uploads go to. */
void api_functions_init(struct codestore *cs);

struct api_error;
struct code_info;

/* Decodes a base64 ZipFile member (what names it in messages, e.g.
 * "Code.ZipFile") and stores the zip in the code store: *zip and *len get the
 * bytes (caller frees *zip, also on failure), *info the hashes and size.
 * Errors: InvalidParameterValueException for bad base64 or a refused
 * archive (codestore.h texts), ServiceException for storage failures.
 * Slow (unzips): call with no lock held. Shared with api_layers. */
int api_store_zip(json_t *zipfile, const char *what, unsigned char **zip, size_t *len,
                  struct code_info *info, struct api_error *err);

/* Takes a deployment package from lambdad's S3 (S3Bucket, S3Key and
 * optional S3ObjectVersion members of obj: CreateFunction's Code, the
 * UpdateFunctionCode body, PublishLayerVersion's Content) and stores it in
 * the code store without reading it whole into memory. Errors as AWS:
 * InvalidParameterValueException "Error occurred while GetObject. S3 Error
 * Code: NoSuchKey. ..." (NoSuchBucket, NoSuchVersion, PermanentRedirect for
 * a bucket of another region), the codestore texts for a refused archive.
 * Slow: call with no lock held. */
int api_store_s3(json_t *obj, const char *region, struct code_info *info, struct api_error *err);

struct fn_name;
struct fn_record;

/* Reads and parses the JSON request body (empty -> {}). Answers the error
 * and returns NULL on failure; the caller owns the result. */
json_t *api_read_json_body(struct http_req *req);

/* Resolves path parameter 0 (plus ?Qualifier= when with_qualifier) to a
 * referenced record (release with registry_record_unref); n gets the
 * parsed identity. Answers the error and returns NULL otherwise. */
struct fn_record *api_resolve_ref(struct http_req *req, size_t max_len, bool with_qualifier,
                                  struct fn_name *n);

/* Resolves a FunctionName (name, partial or full ARN, optional qualifier)
 * in the caller's region and account; returns the record with a reference
 * (registry_record_unref) or NULL after answering the error. */
struct fn_record *api_resolve_name(struct http_req *req, const char *name, const char *qualifier,
                                   size_t max_len, struct fn_name *n);

/* Publishes $LATEST of a function document (a writer's copy, see
 * registry_update) as a new version entry: the configuration snapshot with
 * Version "N", FunctionArn ":N", a new RevisionId and LastModified, and
 * description as its Description when not NULL. When $LATEST is unchanged
 * since the newest version, nothing is added and ver gets that version.
 * ver receives the version number text. Returns 0. */
int api_publish_doc(json_t *doc, const char *description, char ver[24]);

/* Wall-clock milliseconds. */
long long api_now_ms(void);

/* Whether r is inside its Pending (create) / InProgress (update) window
 * (--state-transition-ms). */
bool api_function_busy(const struct fn_record *r);

/* ResourceConflictException (AWS's text) when r is busy; else 0. */
int api_check_not_busy(const struct fn_record *r, struct api_error *err);

/* CreateFunction without the HTTP exchange: validates body (a
 * CreateFunction request, borrowed) exactly as the API does, in
 * region/account unless the FunctionName is an ARN, and creates the
 * function. Returns 0 with *out (may be NULL) referencing the new record
 * and ver the version published ("" unless Publish), or -1 with err
 * filled. Any RCU-registered thread outside a read-side section (other
 * front ends, e.g. docker_api). */
int api_create_function_doc(json_t *body, const char *region, const char *account,
                            struct fn_record **out, char ver[24], struct api_error *err);

/* Drops what a deleted version or alias left in a writer's document copy
 * (its policy, URL, async config, provisioned concurrency and runtime
 * settings under extras), as AWS deletes them with it. */
void api_forget_qualifier(json_t *doc, const char *qualifier);

void api_create_function(struct http_req *req);
void api_get_function(struct http_req *req);
void api_get_function_configuration(struct http_req *req);
void api_list_functions(struct http_req *req);
void api_update_function_code(struct http_req *req);
void api_update_function_configuration(struct http_req *req);
void api_delete_function(struct http_req *req);
void api_tag_resource(struct http_req *req);
void api_untag_resource(struct http_req *req);
void api_list_tags(struct http_req *req);
void api_put_function_concurrency(struct http_req *req);
void api_get_function_concurrency(struct http_req *req);
void api_delete_function_concurrency(struct http_req *req);
void api_get_account_settings(struct http_req *req);

/* Checks TagResource-style tags (a JSON object): keys 1-128 characters
 * without the "aws:" prefix, string values of at most 256, at most 50.
 * Returns 0 or -1 with InvalidParameterValueException in err. */
int api_check_tags(json_t *tags, struct api_error *err);

/* The string member k of o, or NULL. */
const char *api_jstr(json_t *o, const char *k);

/* The current UTC time as AWS's API timestamps write it:
 * "2026-12-04T05:38:14" + "." + digits (3: milliseconds, 6: microseconds)
 * + zone ("Z" or "+0000"), as the operation's documentation shows. */
void api_now_iso(char out[40], int digits, const char *zone);

/* http_query_each callback appending each value to the JSON array ud. */
int api_collect_query_key(void *ud, const char *value);

/* The MaxItems query parameter of a List operation: *max = dflt when it is
 * absent, else 1..limit. Returns false after answering AWS's
 * ValidationException. */
bool api_max_items(struct http_req *req, long dflt, long limit, long *max);

/* The Marker of a List operation whose markers are offsets: *start = 0 when
 * absent. Returns false after answering InvalidParameterValueException
 * "Invalid marker: M". */
bool api_offset_marker(struct http_req *req, long *start);

#endif
