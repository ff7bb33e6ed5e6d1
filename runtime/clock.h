/* clock: the monotonic clock every layer reads (deadlines, timeouts, polls).
 *
 * DESIGN: header-only like evloop.h; CLOCK_MONOTONIC through the vDSO, in
 * nanoseconds. Callers that keep milliseconds divide. */
#ifndef LAMBDAD_RUNTIME_CLOCK_H
#define LAMBDAD_RUNTIME_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
