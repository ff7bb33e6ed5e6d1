/* svc_iam: the IAM and STS subsets Lambda users touch (roles, inline and
 * managed policies; GetCallerIdentity, AssumeRole and friends), served with
 * the query protocol on lambdad's front (see services.h).
 *
 * DESIGN: IAM is global per account: each account's roles and customer
 * managed policies live in one JSON document (jansson objects, kept in
 * memory) and are persisted whole as <data-dir>/iam/account-<id>.json with
 * persist.c's temp+fsync+rename discipline before a change is acknowledged.
 * STS sessions (temporary credentials "ASIA...") live in one more document,
 * sts-sessions.json, so credentials handed out survive a restart; requests
 * signed with them are attributed to the account of the role they were
 * issued for (services.c asks sts_session_account). One mutex guards all of
 * it: IAM traffic is control-plane traffic, rare and small. Responses
 * follow botocore's iam/sts models: member names, resultWrapper elements,
 * policy documents URL-encoded as AWS returns them, ResponseMetadata.
 *
 * Thread rules: every function may be called from any thread; the
 * handlers run on civetweb workers and do disk I/O under the mutex (never
 * inside an RCU read-side section). */
#ifndef LAMBDAD_SERVER_SVC_IAM_H
#define LAMBDAD_SERVER_SVC_IAM_H

#include <stdbool.h>

#include "server/http.h"
#include "server/persist.h"

/* Sets the store (NULL: --ephemeral, nothing written) and loads what it
 * holds. Returns the number of documents loaded or -errno. Main thread,
 * before http_start. */
int iam_init(struct persist *p);

/* Frees everything. Main thread, after http_stop. */
void iam_shutdown(void);

/* Query-protocol handlers (service table entries). */
void svc_iam(struct http_req *req);
void svc_sts(struct http_req *req);

/* Whether role_arn ("arn:aws:iam::<account>:role/<path><name>") names a role
 * that exists in its account. */
bool iam_role_exists(const char *role_arn);

/* When akid is a live STS temporary access key, copies the account it
 * belongs to into account and returns true. */
bool sts_session_account(const char *akid, char account[13]);

#endif
