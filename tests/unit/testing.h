/* Tiny assertion helpers for the C unit tests: each failed CHECK prints
 * file:line and the expression, and the test exits non-zero at the end.
 * TEST_DONE() prints the plain "N passed, N failed" closing line. */
#ifndef LAMBDAD_TESTING_H
#define LAMBDAD_TESTING_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int testing_passed, testing_failed;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            testing_passed++;                                                                      \
        } else {                                                                                   \
            testing_failed++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ && b_ && strcmp(a_, b_) == 0) {                                                     \
            testing_passed++;                                                                      \
        } else {                                                                                   \
            testing_failed++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s=\"%s\" %s=\"%s\"\n", __FILE__, __LINE__,  \
                    #a, a_ ? a_ : "(null)", #b, b_ ? b_ : "(null)");                               \
        }                                                                                          \
    } while (0)
/* Exit status of a test that cannot run here (no Docker engine, no test
 * image...): 77, which ctest reports as Skipped, or 1 under
 * LAMBDAD_TEST_STRICT=1 (tools/test.sh), where a missing prerequisite is
 * a failure. */
#define TEST_SKIP()                                                                                \
    (getenv("LAMBDAD_TEST_STRICT") && !strcmp(getenv("LAMBDAD_TEST_STRICT"), "1") ? 1 : 77)
#define TEST_DONE()                                                                                \
    (printf("%d passed, %d failed\n", testing_passed, testing_failed), testing_failed ? 1 : 0)
#endif
