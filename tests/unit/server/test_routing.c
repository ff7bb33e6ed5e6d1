/* Unit tests for server/http.c routing: table matching, percent-decoding
 * after splitting, trailing slashes, identity parsing. */
#include <string.h>

#include "server/http.h"
#include "testing.h"

static const char *match(struct http_req *req, const char *method, const char *path, bool *bad)
{
    bool b = false;
    const struct http_route *r = http_route_match(req, method, path, &b);
    if (bad)
        *bad = b;
    return r ? r->op : NULL;
}

static void test_routes(void)
{
    struct http_req req;
    bool bad;
    memset(&req, 0, sizeof(req));

    CHECK_STR(match(&req, "POST", "/2015-03-31/functions/my-fn/invocations", NULL), "Invoke");
    CHECK(req.n_params == 1);
    CHECK_STR(http_param(&req, 0), "my-fn");
    CHECK(http_param(&req, 1) == NULL);
    CHECK(req.body_cap == HTTP_BODY_CAP_INVOKE);

    /* botocore percent-encodes ':' and '$'; decoding happens per segment. */
    CHECK_STR(match(&req, "POST",
                    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn%3A%24LATEST/invocations",
                    NULL),
              "Invoke");
    CHECK_STR(http_param(&req, 0), "arn:aws:lambda:us-east-1:123456789012:function:my-fn:$LATEST");
    /* An encoded '/' stays inside its segment. */
    CHECK_STR(match(&req, "GET", "/2015-03-31/functions/a%2Fb/configuration", NULL), "GetFunctionConfiguration");
    CHECK_STR(http_param(&req, 0), "a/b");

    CHECK_STR(match(&req, "POST", "/2014-11-13/functions/f/invoke-async", NULL), "InvokeAsync");
    CHECK_STR(match(&req, "POST", "/2014-11-13/functions/f/invoke-async/", NULL), "InvokeAsync");
    CHECK_STR(http_param(&req, 0), "f");

    CHECK_STR(match(&req, "GET", "/2015-03-31/functions", NULL), "ListFunctions");
    CHECK_STR(match(&req, "GET", "/2015-03-31/functions/", NULL), "ListFunctions");
    CHECK_STR(match(&req, "POST", "/2015-03-31/functions", NULL), "CreateFunction");
    CHECK(req.body_cap == HTTP_BODY_CAP_CODE);
    CHECK_STR(match(&req, "GET", "/2015-03-31/functions/f", NULL), "GetFunction");
    CHECK_STR(match(&req, "DELETE", "/2015-03-31/functions/f", NULL), "DeleteFunction");
    CHECK_STR(match(&req, "PUT", "/2015-03-31/functions/f/code", NULL), "UpdateFunctionCode");
    CHECK(req.body_cap == HTTP_BODY_CAP_CODE);
    CHECK_STR(match(&req, "PUT", "/2015-03-31/functions/f/configuration", NULL), "UpdateFunctionConfiguration");
    /* Concurrency: different API versions per method. */
    CHECK_STR(match(&req, "PUT", "/2017-10-31/functions/f/concurrency", NULL), "PutFunctionConcurrency");
    CHECK_STR(match(&req, "GET", "/2019-09-30/functions/f/concurrency", NULL), "GetFunctionConcurrency");
    CHECK(match(&req, "GET", "/2017-10-31/functions/f/concurrency", NULL) == NULL);
    CHECK_STR(match(&req, "DELETE", "/2017-10-31/functions/f/concurrency", NULL), "DeleteFunctionConcurrency");
    CHECK_STR(match(&req, "POST", "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af", NULL),
              "TagResource");
    CHECK_STR(http_param(&req, 0), "arn:aws:lambda:us-east-1:000000000000:function:f");
    CHECK_STR(match(&req, "GET", "/2016-08-19/account-settings", NULL), "GetAccountSettings");
    /* botocore 1.44's resource-policy and durable-execution paths. */
    CHECK_STR(match(&req, "PUT", "/2026-07-09/resource-policy/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Aruntime%2Fpy",
                    NULL), "PutResourcePolicy");
    CHECK_STR(http_param(&req, 0), "arn:aws:lambda:us-east-1:000000000000:runtime/py");
    CHECK_STR(match(&req, "GET", "/2026-07-09/resource-policy/x", NULL), "GetResourcePolicy");
    CHECK_STR(match(&req, "DELETE", "/2026-07-09/resource-policy/x", NULL), "DeleteResourcePolicy");
    CHECK(match(&req, "POST", "/2026-07-09/resource-policy/x", NULL) == NULL);
    CHECK_STR(match(&req, "DELETE", "/2025-12-01/durable-executions/x", NULL), "DeleteDurableExecution");
    CHECK_STR(match(&req, "POST", "/2025-12-01/durable-executions/x/pause", NULL), "PauseDurableExecution");
    CHECK_STR(match(&req, "POST", "/2025-12-01/durable-executions/x/resume", NULL), "ResumeDurableExecution");
    CHECK_STR(match(&req, "GET", "/2015-03-31/functions/f/aliases/live", NULL), "GetAlias");
    CHECK(req.n_params == 2);
    CHECK_STR(http_param(&req, 1), "live");
    CHECK_STR(match(&req, "POST", "/_lambdad/noop", NULL), "Noop");
    CHECK_STR(match(&req, "GET", "/_lambdad/health", NULL), "Health");
    CHECK_STR(match(&req, "DELETE", "/_lambdad/environments/f", NULL), "EvictEnvironments");

    /* Unknown routes, wrong methods, malformed paths. */
    CHECK(match(&req, "GET", "/2015-03-31/functions/f/invocations", &bad) == NULL && !bad);
    CHECK(match(&req, "PATCH", "/2015-03-31/functions/f", NULL) == NULL);
    CHECK(match(&req, "GET", "/nope", NULL) == NULL);
    CHECK(match(&req, "GET", "/", NULL) == NULL);
    CHECK(match(&req, "GET", "", NULL) == NULL);
    CHECK(match(&req, "GET", "/2015-03-31//functions", NULL) == NULL);
    CHECK(match(&req, "GET", "/2015-03-31/functions/f//", NULL) == NULL);
    CHECK(match(&req, "GET", "/2015-03-31/functions/f/configuration/extra", NULL) == NULL);
    CHECK(match(&req, "GET", "/2015-03-31/functions/f%ZZ/configuration", &bad) == NULL && bad);
    CHECK(match(&req, "GET", "/2015-03-31/functions/f%2/configuration", &bad) == NULL && bad);
    CHECK(match(&req, "GET", "/a/b/c/d/e/f/g/h/i/j", NULL) == NULL);
}

static void test_decode(void)
{
    char buf[16];
    CHECK(http_pct_decode("a%20b+c", 7, buf, sizeof(buf), false) == 5);
    CHECK_STR(buf, "a b+c");
    CHECK(http_pct_decode("a%20b+c", 7, buf, sizeof(buf), true) == 5);
    CHECK_STR(buf, "a b c");
    CHECK(http_pct_decode("%24LATEST", 9, buf, sizeof(buf), false) == 7);
    CHECK_STR(buf, "$LATEST");
    CHECK(http_pct_decode("%4", 2, buf, sizeof(buf), false) == -1);
    CHECK(http_pct_decode("%g0", 3, buf, sizeof(buf), false) == -1);
    CHECK(http_pct_decode("0123456789abcdefXYZ", 19, buf, sizeof(buf), false) == -1); /* too long */
    CHECK(http_pct_decode("", 0, buf, sizeof(buf), false) == 0);
    CHECK_STR(buf, "");
}

static void test_identity(void)
{
    struct http_req req;
    memset(&req, 0, sizeof(req));
    http_parse_identity(&req,
                        "AWS4-HMAC-SHA256 Credential=test/20250101/eu-west-2/lambda/aws4_request, "
                        "SignedHeaders=host;x-amz-date, Signature=abc",
                        "000000000000");
    CHECK_STR(req.region, "eu-west-2");
    CHECK_STR(req.account, "000000000000");
    http_parse_identity(&req, "AWS4-HMAC-SHA256 Credential=123456789012/20250101/us-west-1/lambda/aws4_request",
                        "000000000000");
    CHECK_STR(req.region, "us-west-1");
    CHECK_STR(req.account, "123456789012");
    /* 13 digits is not an account. */
    http_parse_identity(&req, "AWS4-HMAC-SHA256 Credential=1234567890123/20250101/us-west-1/lambda/aws4_request",
                        "111111111111");
    CHECK_STR(req.account, "111111111111");
    http_parse_identity(&req, NULL, "000000000000");
    CHECK_STR(req.region, "us-east-1");
    http_parse_identity(&req, "Credential=x/20250101/BAD REGION/lambda/aws4_request", "000000000000");
    CHECK_STR(req.region, "us-east-1");
    http_parse_identity(&req, "Credential=x", "000000000000");
    CHECK_STR(req.region, "us-east-1");
}

static void test_uuid(void)
{
    char a[37], b[37];
    http_uuid4(a);
    http_uuid4(b);
    CHECK(strlen(a) == 36 && a[8] == '-' && a[13] == '-' && a[14] == '4' && a[18] == '-' && a[23] == '-');
    CHECK(strchr("89ab", a[19]) != NULL);
    CHECK(strcmp(a, b) != 0);
}

static void test_json_depth(void)
{
    const char *ok = "{\"a\":[1,{\"b\":2}]}";
    CHECK(!http_json_too_deep(ok, strlen(ok), 3));
    CHECK(http_json_too_deep(ok, strlen(ok), 2));
    /* Brackets inside strings (and escaped quotes) do not count. */
    const char *str = "{\"a\":\"[[[[\\\"[[[[\"}";
    CHECK(!http_json_too_deep(str, strlen(str), 1));
    char deep[2001];
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    deep[2000] = 0;
    CHECK(http_json_too_deep(deep, 2000, 999));
    CHECK(!http_json_too_deep(deep, 2000, 1000));
}

int main(void)
{
    test_json_depth();
    test_routes();
    test_decode();
    test_identity();
    test_uuid();
    return TEST_DONE();
}
