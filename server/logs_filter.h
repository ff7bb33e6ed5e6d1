/* logs_filter: CloudWatch Logs filter patterns (FilterLogEvents,
 * StartLiveTail-style follow) compiled once and matched against messages.
 *
 * DESIGN: a pattern is parsed into a small tree once per request, then
 * matched against every candidate event. Supported, as AWS documents them:
 *   - ""                    every event
 *   - term "quoted phrase"  all must occur (case-sensitive substring)
 *   - -term -"phrase"       must not occur
 *   - ?term ?"phrase"       at least one of the ?-terms must occur
 *   - %regex%               POSIX extended regular expression
 *   - { $.sel OP value }    JSON events: =, != (strings, * wildcards;
 *                           numbers), <, <=, >, >= (numbers), IS TRUE,
 *                           IS FALSE, IS NULL, EXISTS, NOT EXISTS, joined
 *                           with && and || and parentheses; selectors
 *                           $.a.b, $.a[0].b, $.* not supported.
 * Space-delimited patterns ("[ip, user, ...]") are refused with a message.
 *
 * Thread rules: a compiled filter is immutable; match from any thread. */
#ifndef LAMBDAD_SERVER_LOGS_FILTER_H
#define LAMBDAD_SERVER_LOGS_FILTER_H

#include <stdbool.h>
#include <stddef.h>

struct logs_filter;

/* Compiles pattern (NUL-terminated, at most 1024 bytes). Returns 0 and
 * *out (NULL for the empty pattern, which matches everything), or -1 with
 * *err pointing at a static message. */
int logs_filter_compile(const char *pattern, struct logs_filter **out, const char **err);

/* Whether the message msg[0..len) matches. f NULL matches everything. */
bool logs_filter_match(const struct logs_filter *f, const char *msg, size_t len);

/* Frees a compiled filter. NULL-safe. */
void logs_filter_free(struct logs_filter *f);

#endif
