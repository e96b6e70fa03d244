/* tbucket.c — the token bucket shared by per-token rates and api_limits. */
#include "tbucket.h"

int
tally__tbucket_take(tally__tbucket_t *b, int64_t now_ms, uint64_t rate, uint64_t unit_ms,
                    uint64_t cap, uint32_t *retry_after_s)
{
    if (rate == 0)
        return 1;
    if (unit_ms == 0)
        unit_ms = 1;
    if (cap == 0)
        cap = 1;
    uint64_t full;
    if (__builtin_mul_overflow(cap, unit_ms, &full))
        full = UINT64_MAX; /* a cap beyond counting: as good as unlimited */
    if (!b->started) {
        b->started = 1;
        b->last_ms = now_ms;
        b->level = full;
    } else if (now_ms > b->last_ms) {
        uint64_t elapsed = (uint64_t)(now_ms - b->last_ms);
        uint64_t need = b->level < full ? full - b->level : 0;
        /* compare by division, so elapsed * rate cannot overflow */
        if (elapsed >= need / rate + 1)
            b->level = full;
        else
            b->level += elapsed * rate;
        b->last_ms = now_ms;
    }
    if (b->level > full)
        b->level = full;
    if (b->level >= unit_ms) {
        b->level -= unit_ms;
        return 1;
    }
    if (retry_after_s) {
        uint64_t wait_ms = (unit_ms - b->level + rate - 1) / rate;
        uint64_t secs = wait_ms / 1000 + (wait_ms % 1000 != 0);
        *retry_after_s = secs < 1 ? 1 : secs > UINT32_MAX ? UINT32_MAX : (uint32_t)secs;
    }
    return 0;
}
