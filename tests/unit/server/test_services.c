/* Unit tests for server/services.c: credential-scope parsing and the XML
 * text buffer. */
#include <errno.h>
#include <string.h>

#include "server/services.h"
#include "testing.h"

static void test_scope(void)
{
    char out[64];
    CHECK(services_scope_service("AKID/20260101/us-east-1/iam/aws4_request, SignedHeaders=x", out,
                                 sizeof(out)) == 3);
    CHECK_STR(out, "iam");
    CHECK(services_scope_service("AKID/20260101/eu-west-1/S3/aws4_request", out, sizeof(out)) == 2);
    CHECK_STR(out, "s3");
    CHECK(services_scope_service("AKID/20260101/us-east-1/logs", out, sizeof(out)) == -1);
    CHECK(services_scope_service("AKID/20260101", out, sizeof(out)) == -1);
    CHECK(services_scope_service("AKID/20260101/us-east-1//aws4_request", out, sizeof(out)) == -1);
    CHECK(services_scope_service("", out, sizeof(out)) == -1);
    CHECK(services_scope_service("A/B/C/averyveryverylongservicename/x", out, 8) == -1);
}

static void test_sbuf(void)
{
    struct sbuf b = {0};
    sbuf_xml_elem(&b, "Key", "a<b>&\"'\x01z");
    CHECK_STR(b.p, "<Key>a&lt;b&gt;&amp;&quot;&apos;&#x1;z</Key>");
    sbuf_free(&b);
    for (int i = 0; i < 10000; i++)
        sbuf_printf(&b, "%d,", i);
    CHECK(!b.oom && b.len > 40000 && !strncmp(b.p, "0,1,2,", 6));
    sbuf_free(&b);
}

static void test_form(void)
{
    struct form f = {0};
    CHECK(form_parse("Action=CreateRole&RoleName=a%2Fb+c&Empty=&Flag", 46, &f) == 0);
    CHECK(f.n == 4);
    CHECK_STR(form_get(&f, "Action"), "CreateRole");
    CHECK_STR(form_get(&f, "RoleName"), "a/b c");
    CHECK_STR(form_get(&f, "Empty"), "");
    CHECK_STR(form_get(&f, "Flag"), "");
    CHECK(form_get(&f, "Nope") == NULL);
    /* appending (query string, then body) keeps the earlier pairs */
    CHECK(form_parse("X=1", 3, &f) == 0);
    CHECK(f.n == 5);
    CHECK_STR(form_get(&f, "X"), "1");
    form_free(&f);
    CHECK(form_parse("a=%zz", 5, &f) == -EINVAL && f.n == 0);
    CHECK(form_parse("a=x%00y", 7, &f) == -EINVAL && f.n == 0);
    CHECK(form_parse("&&&", 3, &f) == 0 && f.n == 0);
    form_free(&f);
}

int main(void)
{
    test_form();
    test_scope();
    test_sbuf();
    return TEST_DONE();
}
