/* libFuzzer target for server/logs_filter (CloudWatch Logs filter patterns,
 * hostile input straight from FilterLogEvents).
 *
 * Input: a pattern up to the first '\n' (NUL bytes cut it short, as a C
 * string from JSON would be), the rest is the log message (any bytes). The
 * pattern is compiled; a successful compile must be deterministic (a
 * second compile of the same text matches the message the same way), the
 * empty or blank pattern must compile to "match everything", a failed
 * compile must set a message and no filter. The message is matched as is
 * (terms, regex, or JSON parse + evaluation). Violations trap.
 *
 * The parser source is compiled into this target so that libFuzzer's
 * coverage instrumentation applies to it. */
#include "../../server/logs_filter.c"

#include <stdint.h>
#include <string.h>

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - data) : size;
    const char *msg = nl ? (const char *)nl + 1 : "";
    size_t mlen = nl ? size - plen - 1 : 0;
    if (plen > 1100)
        plen = 1100; /* also exercise the length limit */
    char *pattern = malloc(plen + 1);
    if (!pattern)
        return 0;
    memcpy(pattern, data, plen);
    pattern[plen] = 0;

    struct logs_filter *f = NULL, *g = NULL;
    const char *err = NULL, *err2 = NULL;
    int rc = logs_filter_compile(pattern, &f, &err);
    if (rc == 0) {
        if (err)
            __builtin_trap();
        bool blank = true;
        for (const char *p = pattern; *p; p++)
            blank &= isspace((unsigned char)*p) != 0;
        if (blank && f)
            __builtin_trap();
        bool a = logs_filter_match(f, msg, mlen);
        if (!f && !a)
            __builtin_trap();
        if (logs_filter_compile(pattern, &g, &err2) != 0)
            __builtin_trap();
        if (logs_filter_match(g, msg, mlen) != a)
            __builtin_trap();
    } else {
        if (!err || f)
            __builtin_trap();
    }
    logs_filter_free(f);
    logs_filter_free(g);
    free(pattern);
    return 0;
}
