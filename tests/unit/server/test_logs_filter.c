/* Unit tests for server/logs_filter.c: CloudWatch Logs filter patterns
 * (terms, phrases, exclusions, alternatives, regular expressions with the
 * automaton guard, JSON patterns) and their error messages. */
#include <stdlib.h>
#include <string.h>

#include "server/logs_filter.h"
#include "testing.h"

/* 1 match, 0 no match, -1 compile error. */
static int m(const char *pattern, const char *msg)
{
    struct logs_filter *f;
    const char *err;
    if (logs_filter_compile(pattern, &f, &err) < 0)
        return -1;
    int r = logs_filter_match(f, msg, strlen(msg));
    logs_filter_free(f);
    return r;
}

static void test_terms(void)
{
    CHECK(m("", "anything") == 1);
    CHECK(m("   ", "anything") == 1);
    CHECK(m("ERROR", "an ERROR here") == 1);
    CHECK(m("ERROR", "an error here") == 0); /* case-sensitive */
    CHECK(m("ERROR disk", "ERROR: disk full") == 1);
    CHECK(m("ERROR disk", "ERROR: memory") == 0);
    CHECK(m("\"disk full\"", "ERROR: disk full") == 1);
    CHECK(m("\"disk full\"", "disk is full") == 0);
    CHECK(m("\"say \\\"hi\\\"\"", "they say \"hi\"") == 1);
    CHECK(m("ERROR -Exiting", "ERROR Exiting") == 0);
    CHECK(m("ERROR -Exiting", "ERROR stays") == 1);
    CHECK(m("-\"not this\"", "but not this one") == 0);
    CHECK(m("?WARN ?ERROR", "a WARN") == 1);
    CHECK(m("?WARN ?ERROR", "an INFO") == 0);
    CHECK(m("disk ?WARN ?ERROR", "ERROR no space") == 0); /* AND term missing */
    CHECK(m("\"open", "x") == -1);
    CHECK(m("a\"b", "x") == -1);
    CHECK(m("-", "x") == -1);
    CHECK(m("[ip, user]", "x") == -1);
}

static void test_regex(void)
{
    CHECK(m("%disk (full|slow)%", "WARN disk slow") == 1);
    CHECK(m("%^ERROR [0-9]+$%", "ERROR 42") == 1);
    CHECK(m("%^ERROR [0-9]+$%", "ERROR x") == 0);
    CHECK(m("%a{2,3}b%", "aab") == 1);
    CHECK(m("%%", "x") == -1);
    CHECK(m("%(%", "x") == -1);
    CHECK(m("%a++%", "x") == -1);
    CHECK(m("%(a+)+%", "x") == -1);
    CHECK(m("%(a*)*%", "x") == -1);
    CHECK(m("%((ab)+c)*%", "x") == -1);
    CHECK(m("%(((a)))%", "x") == -1);
    CHECK(m("%a{101}%", "x") == -1);
    CHECK(m("%[+*]+%", "a+b") == 1); /* quantifier characters inside a bracket */
    CHECK(m("%\\++%", "a++") == 1);
}

static void test_json(void)
{
    const char *e = "{\"level\":\"ERROR\",\"latency\":250,\"ok\":true,\"n\":null,"
                    "\"user\":{\"id\":7,\"tags\":[\"a\",\"b\"]}}";
    CHECK(m("{ $.level = \"ERROR\" }", e) == 1);
    CHECK(m("{ $.level = ERROR }", e) == 1);
    CHECK(m("{ $.level = \"ERR*\" }", e) == 1);
    CHECK(m("{ $.level = \"*RO*\" }", e) == 1);
    CHECK(m("{ $.level != \"ERROR\" }", e) == 0);
    CHECK(m("{ $.latency > 100 }", e) == 1);
    CHECK(m("{ $.latency >= 250 && $.latency <= 250 }", e) == 1);
    CHECK(m("{ $.latency < 100 }", e) == 0);
    CHECK(m("{ $.latency = 250 }", e) == 1);
    CHECK(m("{ $.user.id = 7 }", e) == 1);
    CHECK(m("{ $.user.tags[1] = \"b\" }", e) == 1);
    CHECK(m("{ $.ok IS TRUE }", e) == 1);
    CHECK(m("{ $.ok IS FALSE }", e) == 0);
    CHECK(m("{ $.n IS NULL }", e) == 1);
    CHECK(m("{ $.missing NOT EXISTS }", e) == 1);
    CHECK(m("{ $.user EXISTS }", e) == 1);
    CHECK(m("{ ($.latency < 100 || $.user.id = 7) && $.level = \"E*\" }", e) == 1);
    CHECK(m("{ $.latency < 100 || $.user.id = 8 }", e) == 0);
    CHECK(m("{ $.level = \"ERROR\" }", "not json") == 0);
    CHECK(m("{ $.level = \"ERROR\" }", "[1,2]") == 0);
    CHECK(m("{ $.level = }", e) == -1);
    CHECK(m("{ level = 1 }", e) == -1);
    CHECK(m("{ $.latency > high }", e) == -1);
    CHECK(m("{ $.a = 1 ", e) == -1);
    CHECK(m("{ ($.a = 1 }", e) == -1);
    CHECK(m("{ $.a = 1 } trailing", e) == -1);
    CHECK(m("{ $.a IS MAYBE }", e) == -1);
    /* Deep parentheses are refused, not recursed into. */
    char deep[200] = "{ ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "(");
    strcat(deep, "$.a = 1");
    for (int i = 0; i < 40; i++)
        strcat(deep, ")");
    strcat(deep, " }");
    CHECK(m(deep, e) == -1);
    /* A deeply nested message is not parsed. */
    char *msg = malloc(20001);
    memset(msg, '[', 20000);
    msg[0] = '{';
    msg[20000] = 0;
    CHECK(m("{ $.a EXISTS }", msg) == 0);
    free(msg);
}

static void test_limits(void)
{
    char *p = malloc(1100);
    memset(p, 'a', 1099);
    p[1099] = 0;
    struct logs_filter *f;
    const char *err;
    CHECK(logs_filter_compile(p, &f, &err) == -1 && err && f == NULL);
    free(p);
    CHECK(logs_filter_compile("x", &f, &err) == 0 && f && !err);
    CHECK(logs_filter_match(f, "a\0x", 3)); /* messages may hold NULs */
    logs_filter_free(f);
    CHECK(logs_filter_compile("", &f, &err) == 0 && f == NULL);
    CHECK(logs_filter_match(NULL, "", 0));
}

int main(void)
{
    test_terms();
    test_regex();
    test_json();
    test_limits();
    return TEST_DONE();
}
