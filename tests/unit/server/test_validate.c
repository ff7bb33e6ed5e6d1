/* Unit tests for server/validate.c: FunctionName forms and qualifiers,
 * every configuration rule and AWS's message texts. */
#include <stdlib.h>
#include <string.h>

#include "server/validate.h"
#include "testing.h"

static int parse(const char *s, struct fn_name *n)
{
    struct vlist v;
    vlist_init(&v);
    return validate_function_name(s, 256, n, &v);
}

static void test_names(void)
{
    struct fn_name n;
    CHECK(parse("my-fn_1", &n) == 0);
    CHECK_STR(n.name, "my-fn_1");
    CHECK_STR(n.qualifier, "");
    CHECK_STR(n.region, "");
    CHECK(parse("my-fn:$LATEST", &n) == 0);
    CHECK_STR(n.qualifier, "$LATEST");
    CHECK(parse("my-fn:prod", &n) == 0);
    CHECK_STR(n.qualifier, "prod");
    CHECK(parse("123456789012:function:my-fn", &n) == 0);
    CHECK_STR(n.account, "123456789012");
    CHECK_STR(n.name, "my-fn");
    CHECK(parse("123456789012:function:my-fn:7", &n) == 0);
    CHECK_STR(n.qualifier, "7");
    CHECK(parse("arn:aws:lambda:eu-west-1:123456789012:function:my-fn", &n) == 0);
    CHECK_STR(n.region, "eu-west-1");
    CHECK_STR(n.account, "123456789012");
    CHECK_STR(n.name, "my-fn");
    CHECK(parse("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:$LATEST", &n) == 0);
    CHECK_STR(n.region, "us-gov-west-1");
    CHECK_STR(n.qualifier, "$LATEST");
    /* A 12-digit name is a name, not an account. */
    CHECK(parse("123456789012", &n) == 0);
    CHECK_STR(n.name, "123456789012");
    CHECK_STR(n.account, "");

    CHECK(parse("bad name", &n) == -1);
    CHECK(parse("f:", &n) == -1);
    CHECK(parse("f:a:b", &n) == -1);
    CHECK(parse("arn:aws:s3:::bucket", &n) == -1);
    CHECK(parse("", &n) == -1);
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = 0;
    CHECK(parse(long_name, &n) == -1);
    long_name[64] = 0;
    CHECK(parse(long_name, &n) == 0);

    struct vlist v;
    struct api_error err;
    vlist_init(&v);
    validate_function_name("bad name!", 140, &n, &v);
    CHECK(vlist_finish(&v, &err) == -1);
    CHECK(err.type == &AWS_VALIDATION);
    CHECK(strncmp(err.msg, "1 validation error detected: Value 'bad name!' at 'functionName' failed to satisfy "
                           "constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?",
                  strlen("1 validation error detected: Value 'bad name!' at 'functionName' failed to satisfy "
                         "constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?")) == 0);
    char huge[200];
    memset(huge, 'a', 150);
    huge[150] = 0;
    vlist_init(&v);
    validate_function_name(huge, 140, &n, &v);
    vlist_finish(&v, &err);
    CHECK(strstr(err.msg, "Member must have length less than or equal to 140") != NULL);
}

static void test_refs(void)
{
    struct fn_name n;
    struct api_error err;
    char arn[300];
    CHECK(validate_function_ref("f", NULL, 256, "us-east-1", "000000000000", &n, &err) == 0);
    CHECK_STR(n.region, "us-east-1");
    CHECK_STR(n.account, "000000000000");
    validate_function_arn(&n, true, arn, sizeof(arn));
    CHECK_STR(arn, "arn:aws:lambda:us-east-1:000000000000:function:f");
    CHECK(validate_function_ref("f", "3", 256, "us-east-1", "000000000000", &n, &err) == 0);
    validate_function_arn(&n, true, arn, sizeof(arn));
    CHECK_STR(arn, "arn:aws:lambda:us-east-1:000000000000:function:f:3");
    validate_function_arn(&n, false, arn, sizeof(arn));
    CHECK_STR(arn, "arn:aws:lambda:us-east-1:000000000000:function:f");
    CHECK(validate_function_ref("f:3", "3", 256, "us-east-1", "000000000000", &n, &err) == 0);
    CHECK(validate_function_ref("f:3", "4", 256, "us-east-1", "000000000000", &n, &err) == -1);
    CHECK(err.type == &AWS_INVALID_PARAMETER_VALUE);
    CHECK_STR(err.msg, "The derived qualifier from the function name does not match the specified qualifier.");
    CHECK(validate_function_ref("f", "bad q", 256, "us-east-1", "000000000000", &n, &err) == -1);
    CHECK(err.type == &AWS_VALIDATION);
    /* Accounts and regions are walls: an ARN of another region is not
     * reachable, one of another account is denied. */
    CHECK(validate_function_ref("arn:aws:lambda:ap-south-1:000000000000:function:g", NULL, 256, "us-east-1",
                                "000000000000", &n, &err) == -1);
    CHECK(err.type == &AWS_RESOURCE_NOT_FOUND);
    CHECK_STR(err.msg, "Functions from 'ap-south-1' are not reachable in this region ('us-east-1')");
    CHECK(validate_function_ref("222222222222:function:g", NULL, 256, "eu-west-1", "000000000000", &n, &err) == -1);
    CHECK(err.type == &AWS_ACCESS_DENIED);
    CHECK(strstr(err.msg, "arn:aws:iam::000000000000:root is not authorized") != NULL);
    CHECK(strstr(err.msg, "resource: arn:aws:lambda:eu-west-1:222222222222:function:g") != NULL);
    CHECK(validate_function_ref("arn:aws:lambda:eu-west-1:000000000000:function:g:7", NULL, 256, "eu-west-1",
                                "000000000000", &n, &err) == 0);
    CHECK_STR(n.region, "eu-west-1");
    CHECK_STR(n.qualifier, "7");
}

static int check_config(const char *json, bool create, struct api_error *err)
{
    json_t *body = json_loads(json, 0, NULL);
    CHECK(body != NULL);
    int rc = validate_function_config(body, create, err);
    json_decref(body);
    return rc;
}

#define ROLE "\"Role\":\"arn:aws:iam::123456789012:role/service-role/x\""

static void test_config(void)
{
    struct api_error err;
    CHECK(check_config("{" ROLE ",\"Runtime\":\"python3.12\",\"Handler\":\"app.handler\",\"MemorySize\":10240,"
                       "\"Timeout\":900,\"EphemeralStorage\":{\"Size\":512}}", true, &err) == 0);
    CHECK(check_config("{}", false, &err) == 0);

    CHECK(check_config("{\"Runtime\":\"python3.12\"}", true, &err) == -1);
    CHECK_STR(err.msg, "1 validation error detected: Value null at 'role' failed to satisfy constraint: "
                       "Member must not be null");
    CHECK(check_config("{\"Role\":\"arn:aws:iam::12345:role/x\"}", false, &err) == -1);
    CHECK(strstr(err.msg, "Value 'arn:aws:iam::12345:role/x' at 'role' failed to satisfy constraint: Member must "
                          "satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?") != NULL);
    CHECK(validate_role("arn:aws:iam::123456789012:role/r"));
    CHECK(validate_role("arn:aws-cn:iam::123456789012:role/a/b+c=d,e.f@g-h_i"));
    CHECK(!validate_role("arn:aws:iam::123456789012:user/r"));
    CHECK(!validate_role("arn:aws:iam::123456789012:role"));
    CHECK(!validate_role("arn:aws:iam::123456789012:role/a b"));

    CHECK(check_config("{\"MemorySize\":70000}", false, &err) == -1);
    CHECK(err.type == &AWS_VALIDATION);
    CHECK_STR(err.msg, "1 validation error detected: Value '70000' at 'memorySize' failed to satisfy constraint: "
                       "Member must have value less than or equal to 10240");
    CHECK(check_config("{\"MemorySize\":127}", false, &err) == -1);
    CHECK(strstr(err.msg, "Member must have value greater than or equal to 128") != NULL);
    CHECK(check_config("{\"Timeout\":0}", false, &err) == -1);
    CHECK(strstr(err.msg, "Value '0' at 'timeout'") && strstr(err.msg, "greater than or equal to 1"));
    CHECK(check_config("{\"Timeout\":901,\"MemorySize\":64}", false, &err) == -1);
    CHECK(strncmp(err.msg, "2 validation errors detected: Value '901' at 'timeout'", 52) == 0);
    CHECK(strstr(err.msg, "; Value '64' at 'memorySize'") != NULL);
    CHECK(check_config("{\"EphemeralStorage\":{\"Size\":10241}}", false, &err) == -1);
    CHECK_STR(err.msg, "1 validation error detected: Value '10241' at 'ephemeralStorage.size' failed to satisfy "
                       "constraint: Member must have value less than or equal to 10240");
    CHECK(check_config("{\"EphemeralStorage\":{\"Size\":511}}", false, &err) == -1);
    CHECK(check_config("{\"Handler\":\"a b\"}", false, &err) == -1);
    CHECK(strstr(err.msg, "Value 'a b' at 'handler' failed to satisfy constraint: Member must satisfy regular "
                          "expression pattern: [^\\s]+") != NULL);
    char big[400];
    snprintf(big, sizeof(big), "{\"Handler\":\"%0129d\"}", 0);
    CHECK(check_config(big, false, &err) == -1);
    CHECK(strstr(err.msg, "Member must have length less than or equal to 128") != NULL);
    CHECK(check_config("{\"Runtime\":\"python9\"}", false, &err) == -1);
    CHECK(strstr(err.msg, "Value 'python9' at 'runtime' failed to satisfy constraint: Member must satisfy enum "
                          "value set: [nodejs, ") != NULL);
    CHECK(check_config("{\"Runtime\":\"python3.7\"}", false, &err) == -1);
    CHECK(err.type == &AWS_INVALID_PARAMETER_VALUE);
    CHECK(strncmp(err.msg, "The runtime parameter of python3.7 is no longer supported for creating or updating "
                           "AWS Lambda functions.", 98) == 0);
    CHECK(validate_runtime_known("provided.al2023") && !validate_runtime_deprecated("provided.al2023"));
    CHECK(validate_runtime_known("nodejs22.x") && validate_runtime_known("java8.al2"));
    CHECK(!validate_runtime_known("python3.99"));
    snprintf(big, sizeof(big), "{\"Description\":\"%0257d\"}", 0);
    CHECK(check_config(big, false, &err) == -1);
    CHECK(strstr(err.msg, "at 'description'") && strstr(err.msg, "less than or equal to 256"));
    CHECK(check_config("{\"TracingConfig\":{\"Mode\":\"On\"}}", false, &err) == -1);
    CHECK(strstr(err.msg, "at 'tracingConfig.mode'") != NULL);
    CHECK(check_config("{\"Architectures\":[\"x86_64\",\"arm64\"]}", false, &err) == -1);
    CHECK(check_config("{\"Architectures\":[\"arm64\"]}", false, &err) == 0);
    CHECK(check_config("{\"PackageType\":\"Jar\"}", true, &err) == -1);
    CHECK(check_config("{\"Layers\":[\"arn:aws:lambda:us-east-1:123456789012:layer:l:1\"]}", false, &err) == 0);
    CHECK(check_config("{\"Layers\":[\"arn:aws:lambda:us-east-1:123456789012:layer:l\"]}", false, &err) == -1);
    CHECK(check_config("{\"LoggingConfig\":{\"LogFormat\":\"XML\"}}", false, &err) == -1);
    CHECK(check_config("{\"Timeout\":\"3\"}", false, &err) == -1);
}

static void test_env(void)
{
    struct api_error err;
    CHECK(check_config("{\"Environment\":{\"Variables\":{\"AB\":\"1\",\"c_9\":\"2\"}}}", false, &err) == 0);
    CHECK(check_config("{\"Environment\":{\"Variables\":{\"AWS_REGION\":\"x\",\"OK1\":\"y\"}}}", false, &err) == -1);
    CHECK(err.type == &AWS_INVALID_PARAMETER_VALUE);
    CHECK_STR(err.msg, "Lambda was unable to configure your environment variables because the environment "
                       "variables you have provided contains reserved keys that are currently not supported for "
                       "modification. Reserved keys used in this request: AWS_REGION");
    CHECK(check_config("{\"Environment\":{\"Variables\":{\"1AB\":\"x\"}}}", false, &err) == -1);
    CHECK(err.type == &AWS_VALIDATION);
    CHECK(strstr(err.msg, "Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy "
                          "constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]") != NULL);
    CHECK(check_config("{\"Environment\":{\"Variables\":{\"A-B\":\"x\"}}}", false, &err) == -1);
    char *big = malloc(5000);
    int n = snprintf(big, 5000, "{\"Environment\":{\"Variables\":{\"BIG\":\"");
    memset(big + n, 'x', 4100);
    strcpy(big + n + 4100, "\"}}}");
    CHECK(check_config(big, false, &err) == -1);
    CHECK(err.type == &AWS_INVALID_PARAMETER_VALUE);
    static const char prefix[] = "Lambda was unable to configure your environment variables because the "
                                 "environment variables you have provided exceeded the 4KB limit. String "
                                 "measured: {\"BIG\":\"xxx";
    CHECK(strncmp(err.msg, prefix, sizeof(prefix) - 1) == 0);
    /* Exactly at the limit is fine: {"BIG":"..."} is 10 bytes + value. */
    memset(big + n, 'x', 4086);
    strcpy(big + n + 4086, "\"}}}");
    CHECK(check_config(big, false, &err) == 0);
    free(big);
}

/* The model's Java patterns, matched through the POSIX ERE translation. */
static void test_patterns(void)
{
    static const char sid[] = "([a-zA-Z0-9-_]+)";
    CHECK(validate_match("my-sid_1", sid));
    CHECK(!validate_match("bad sid", sid));
    CHECK(!validate_match("a.b", sid));  /* "9-_" is not a range */
    CHECK(!validate_match("a=b", sid));
    CHECK(validate_match("a.b", "([a-zA-Z0-9-_.]+)"));
    static const char action[] = "(lambda:[*]|lambda:[a-zA-Z]+|[*])";
    CHECK(validate_match("lambda:InvokeFunction", action));
    CHECK(validate_match("*", action));
    CHECK(!validate_match("s3:GetObject", action));
    CHECK(!validate_match("lambda:Invoke Function", action));
    CHECK(validate_match("s3.amazonaws.com", "[^\\s]+"));
    CHECK(!validate_match("a b", "[^\\s]+"));
    CHECK(validate_match("123456789012", "\\d{12}"));
    CHECK(!validate_match("12345678901", "\\d{12}"));
    static const char arn[] = "arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)";
    CHECK(validate_match("arn:aws:s3:::bucket", arn));
    CHECK(validate_match("arn:aws:events:us-east-1:123456789012:rule/x", arn));
    CHECK(!validate_match("arn:aws:s3:bucket", arn));
    CHECK(validate_match("$LATEST", "\\$(LATEST(\\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"));
    CHECK(!validate_match("a b", "\\$(LATEST(\\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"));
    static const char dest[] = "$|kafka://([^.]([a-zA-Z0-9\\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:"
                               "([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)";
    CHECK(validate_match("arn:aws:lambda:us-east-1:000000000000:function:dest-1", dest));
    CHECK(validate_match("", dest));
    CHECK(validate_match("kafka://broker-1.example", dest));
    CHECK(!validate_match("not an arn", dest));
    CHECK(!validate_match("kafka://a=b", dest));
}

int main(void)
{
    test_names();
    test_patterns();
    test_refs();
    test_config();
    test_env();
    return TEST_DONE();
}
