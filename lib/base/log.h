/* log.h — journald-friendly logging: one line per event, `level=... msg=... key=value`.
 *
 * The logger writes whole lines to stderr with a single write(2), so lines
 * from different threads never interleave. The level is process-global and
 * may be changed at any time (relaxed atomic).
 */
#ifndef TALLY_LOG_H
#define TALLY_LOG_H

#include <stdint.h>

enum { TALLY_LOG_DEBUG = 0, TALLY_LOG_INFO = 1, TALLY_LOG_WARN = 2, TALLY_LOG_ERROR = 3 };

/** @brief Set the lowest level that is written. */
void tally__log_set_level(int level);

/** @brief Parse "debug|info|warn|error"; returns the level or -1. */
int tally__log_parse_level(const char *s);

/**
 * @brief Write one line: `level=L msg="FMT..."`. The formatted text should
 *        itself carry `key=value` pairs after the message where useful.
 */
void tally__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * A rate limiter for log lines of one kind: at most `burst` lines per
 * `period_ms`; the lines it suppressed are counted and reported with the
 * next line let through. Callers keep one per call site (static storage).
 */
typedef struct tally__ratelimit {
    int64_t window_start_ms;
    uint32_t in_window;
    uint32_t suppressed;
} tally__ratelimit_t;

/**
 * @brief Whether to log now. *suppressed receives how many lines were
 *        dropped since the last one let through. Not thread-safe per limiter.
 */
int tally__ratelimit_ok(tally__ratelimit_t *rl, uint32_t burst, int64_t period_ms,
                        uint32_t *suppressed);

#define tally__log_debug(...) tally__log(TALLY_LOG_DEBUG, __VA_ARGS__)
#define tally__log_info(...) tally__log(TALLY_LOG_INFO, __VA_ARGS__)
#define tally__log_warn(...) tally__log(TALLY_LOG_WARN, __VA_ARGS__)
#define tally__log_error(...) tally__log(TALLY_LOG_ERROR, __VA_ARGS__)

/** Broken invariant: log and abort. Never used for environmental failures. */
#define TALLY_ASSERT(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tally__log(TALLY_LOG_ERROR, "assertion failed: %s at %s:%d", #cond, __FILE__,          \
                       __LINE__);                                                                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
