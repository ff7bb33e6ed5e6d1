/* libFuzzer target for the hostile-input pieces of server/api_urls (function
 * URLs): the query-string parser of the payload 2.0 event, the Cookie
 * header splitter, the awslambda.HttpResponseStream prelude splitter, the
 * header filter applied to function-chosen headers, the CORS header builder
 * and the text/binary body decision.
 *
 * Input: one control byte, then the data (NUL-terminated copies are made
 * where the code takes C strings). Control & 3 picks the piece:
 *   0  query_params: the result is an object whose values are strings.
 *   1  cookie_list: every element is a non-empty string without a leading
 *      space or ';'.
 *   2  integration_prelude: the body pointer lies inside the input (or is
 *      the empty string), body + length never pass its end, the prelude is
 *      NULL or an object with a statusCode.
 *   3  header_ok on "name\nvalue" (accepted ones hold no CR/LF/':' in the
 *      name, no CR/LF in the value), cors_headers with the data as Origin
 *      (the output holds no bare CR or LF outside "\r\n" line ends).
 * Violations trap.
 *
 * The source is compiled into this target so libFuzzer's coverage
 * instrumentation applies to it (the library's copy is never linked). */
#include "../../server/api_urls.c"

#include <stdint.h>
#include <string.h>

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_lines(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\r')
            CHECK(p[1] == '\n');
        if (*p == '\n')
            CHECK(p > s && p[-1] == '\r');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    switch (ctl & 3) {
    case 0: {
        json_t *q = query_params(s);
        const char *k;
        json_t *v;
        CHECK(json_is_object(q));
        json_object_foreach(q, k, v) CHECK(json_is_string(v));
        json_decref(q);
        break;
    }
    case 1: {
        json_t *arr = json_array();
        size_t i;
        json_t *v;
        cookie_list(arr, s);
        json_array_foreach(arr, i, v) {
            const char *c = json_string_value(v);
            CHECK(c && *c && *c != ' ' && !strchr(c, ';'));
        }
        json_decref(arr);
        break;
    }
    case 2: {
        const char *body = NULL;
        size_t blen = 0;
        json_t *res = integration_prelude((const char *)data, size, &body, &blen);
        CHECK(body);
        if (blen) {
            CHECK(body >= (const char *)data && body + blen <= (const char *)data + size);
        }
        CHECK(!res || !json_is_object(res) || json_object_get(res, "statusCode"));
        json_decref(res);
        break;
    }
    default: {
        char *nl = strchr(s, '\n');
        if (nl) {
            *nl = 0;
            if (header_ok(s, nl + 1)) {
                CHECK(!strpbrk(s, "\r\n:"));
                CHECK(!strpbrk(nl + 1, "\r\n"));
            }
            *nl = '\n';
        }
        json_t *cors = json_pack("{s:[s,s],s:[s],s:[s],s:[s],s:i,s:b}", "AllowOrigins", "*", s, "AllowMethods",
                                 "GET", "AllowHeaders", "x-a", "ExposeHeaders", "x-b", "MaxAge", 5,
                                 "AllowCredentials", ctl & 4);
        char out[6000];
        if (cors) {
            cors_headers(cors, s, ctl & 8, out, sizeof(out));
            check_lines(out);
        }
        json_decref(cors);
        (void)text_content_type(s);
        break;
    }
    }
    free(s);
    return 0;
}
