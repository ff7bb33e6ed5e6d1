/* log: lambdad's own operator log (stderr), leveled and thread-safe.
 *
 * DESIGN: one line per message, "<ISO8601 UTC> <LEVEL> [<thread>] msg", written
 * with a single write(2) so lines from different threads never interleave.
 * The level is a global atomic set once at start-up. Function logs (what a
 * handler prints) are not this log: they travel with each invocation. */
#ifndef LAMBDAD_RUNTIME_LOG_H
#define LAMBDAD_RUNTIME_LOG_H

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Sets the global level. Any thread. */
void log_set_level(enum log_level level);

/* Parses "error", "warn", "info", "debug" (also "warning", "trace" = debug).
 * Returns 0 and sets *out, or -1 for an unknown name. */
int log_parse_level(const char *name, enum log_level *out);

/* Whether messages of this level are written. */
int log_enabled(enum log_level level);

/* Writes one message (printf format) if its level is enabled. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_ERROR(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_WARN(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_INFO(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                                               \
    } while (0)

#endif
