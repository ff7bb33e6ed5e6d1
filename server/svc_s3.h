/* svc_s3: the S3 REST-XML protocol on lambdad's front (path-style and
 * virtual-host-style addressing) over s3store.
 *
 * DESIGN: the handler finds bucket and key (Host first, then the path),
 * picks the operation from the method, the query's subresources and a few
 * headers, and answers with S3's XML and headers. Object bodies never sit
 * in memory: they stream from the socket (decoding aws-chunked when the
 * client uses it, verifying Content-MD5 and x-amz-checksum-* values) into
 * s3store's temp file, and GETs stream back from the blob file with Range
 * support. XML request bodies are small and capped.
 *
 * Thread rules: runs on civetweb workers; blocking disk I/O, no RCU. */
#ifndef LAMBDAD_SERVER_SVC_S3_H
#define LAMBDAD_SERVER_SVC_S3_H

#include "server/http.h"

/* The services-table handler for "s3". */
void svc_s3(struct http_req *req);

/* The bucket a Host header names in virtual-host style ("b.s3.localhost",
 * "b.localhost", "b.s3.<region>.amazonaws.com"), copied into out; false for
 * path-style hosts. Pure. */
bool s3_host_bucket(const char *host, char *out, size_t outlen);

#endif
