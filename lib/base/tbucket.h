/* tbucket.h — one token bucket, in exact integer arithmetic: the rate limit behind per-token
 * request rates (auth) and per-namespace api_limits (apilimit).
 *
 * A bucket holds up to `cap` requests and refills at `rate` requests per
 * `unit_ms` milliseconds. Levels are counted in ticks, unit_ms ticks to a
 * request, and each millisecond adds `rate` ticks, so no refill is lost to
 * rounding however slow the rate (one request an hour) or frequent the
 * calls. A clock that goes backwards refills nothing.
 */
#ifndef TALLY_TBUCKET_H
#define TALLY_TBUCKET_H

#include <stdint.h>

typedef struct tally__tbucket {
    int64_t last_ms; /**< when the level was last brought up to date */
    uint64_t level;  /**< ticks available; unit_ms ticks make one request */
    int started;     /**< 0: a fresh bucket, full at its first take */
} tally__tbucket_t;

/**
 * @brief Take one request from b.
 * @param rate requests per unit_ms; 0 = unlimited (always 1, b untouched).
 * @param unit_ms the rate's period in milliseconds; 0 counts as 1.
 * @param cap most requests held (the burst); 0 counts as 1. A cap lowered
 *        since the last call trims the level.
 * @param[out] retry_after_s when limited: whole seconds (at least 1) until
 *        a request would be allowed, for Retry-After. May be NULL.
 * @return 1 when allowed (one request taken), 0 when limited.
 */
int tally__tbucket_take(tally__tbucket_t *b, int64_t now_ms, uint64_t rate, uint64_t unit_ms,
                        uint64_t cap, uint32_t *retry_after_s);

#endif
