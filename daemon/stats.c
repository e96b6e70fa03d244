/* stats.c — tallyd's process-wide counters. */
#include "stats.h"

tally_stats_t tally_stats;

void
tally_stats_flush_observe(uint64_t us)
{
    static const uint64_t bounds_us[11] = {1000,   2500,   5000,   10000,   25000,  50000,
                                           100000, 250000, 500000, 1000000, 2500000};
    int b = 11;
    for (int i = 0; i < 11; i++)
        if (us <= bounds_us[i]) {
            b = i;
            break;
        }
    TALLY_STAT_ADD(flush_buckets[b], 1);
    TALLY_STAT_ADD(flush_sum_us, us);
    TALLY_STAT_SET(flush_last_us, us);
    uint64_t prev = TALLY_STAT_GET(flush_max_us);
    if (us > prev)
        TALLY_STAT_SET(flush_max_us, us);
}
