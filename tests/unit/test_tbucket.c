/* test_tbucket.c — Criterion tests of the shared token bucket (lib/tbucket): burst, exact slow
 * refills, caps that shrink, clocks that go back, and Retry-After. */
#include <stdint.h>

#include <criterion/criterion.h>

#include "tbucket.h"

Test(tbucket, a_fresh_bucket_allows_the_burst_then_limits)
{
    tally__tbucket_t b = {0};
    uint32_t retry = 0;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(tally__tbucket_take(&b, 1000, 2, 1000, 5, &retry), 1, "request %d", i);
    cr_assert_eq(tally__tbucket_take(&b, 1000, 2, 1000, 5, &retry), 0);
    cr_assert_eq(retry, 1, "half a second to the next request rounds up to 1 s");
    /* 2 per second: after 500 ms exactly one more */
    cr_assert_eq(tally__tbucket_take(&b, 1499, 2, 1000, 5, NULL), 0);
    cr_assert_eq(tally__tbucket_take(&b, 1500, 2, 1000, 5, NULL), 1);
    cr_assert_eq(tally__tbucket_take(&b, 1500, 2, 1000, 5, NULL), 0);
}

Test(tbucket, unlimited_rate_never_touches_the_bucket)
{
    tally__tbucket_t b = {0};
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(tally__tbucket_take(&b, i, 0, 1000, 1, NULL), 1);
    cr_assert_eq(b.started, 0);
}

Test(tbucket, one_request_an_hour_refills_exactly_under_constant_polling)
{
    /* polled every millisecond, a rate of 1/hour must still refill: no
     * refill may be lost to rounding */
    tally__tbucket_t b = {0};
    const uint64_t hour_ms = 3600000;
    cr_assert_eq(tally__tbucket_take(&b, 0, 1, hour_ms, 1, NULL), 1);
    int64_t allowed_at = -1;
    for (int64_t t = 1; t <= (int64_t)hour_ms + 5; t++)
        if (tally__tbucket_take(&b, t, 1, hour_ms, 1, NULL)) {
            allowed_at = t;
            break;
        }
    cr_assert_eq(allowed_at, (int64_t)hour_ms, "the next request is allowed after exactly 1 h");
    uint32_t retry = 0;
    cr_assert_eq(tally__tbucket_take(&b, hour_ms, 1, hour_ms, 1, &retry), 0);
    cr_assert_eq(retry, 3600);
}

Test(tbucket, a_lowered_cap_trims_the_level_and_a_clock_going_back_refills_nothing)
{
    tally__tbucket_t b = {0};
    cr_assert_eq(tally__tbucket_take(&b, 10000, 1, 1000, 10, NULL), 1); /* 9 left */
    cr_assert_eq(tally__tbucket_take(&b, 10000, 1, 1000, 2, NULL), 1);  /* trimmed to 2, 1 left */
    cr_assert_eq(tally__tbucket_take(&b, 10000, 1, 1000, 2, NULL), 1);
    cr_assert_eq(tally__tbucket_take(&b, 10000, 1, 1000, 2, NULL), 0, "not the 9 of the old cap");
    cr_assert_eq(tally__tbucket_take(&b, 5000, 1, 1000, 2, NULL), 0, "time went back: no refill");
    cr_assert_eq(tally__tbucket_take(&b, 10999, 1, 1000, 2, NULL), 0);
    cr_assert_eq(tally__tbucket_take(&b, 11000, 1, 1000, 2, NULL), 1);
}

Test(tbucket, huge_caps_and_gaps_do_not_overflow)
{
    tally__tbucket_t b = {0};
    uint64_t year_ms = 365ull * 24 * 3600 * 1000;
    cr_assert_eq(tally__tbucket_take(&b, 0, UINT32_MAX, year_ms, UINT32_MAX, NULL), 1);
    cr_assert_eq(tally__tbucket_take(&b, INT64_MAX, UINT32_MAX, year_ms, UINT32_MAX, NULL), 1);
    tally__tbucket_t c = {0};
    cr_assert_eq(tally__tbucket_take(&c, 0, 1, 1000, 1, NULL), 1);
    cr_assert_eq(tally__tbucket_take(&c, INT64_MAX, 1, 1000, 1, NULL), 1, "a long gap refills");
    cr_assert_eq(tally__tbucket_take(&c, INT64_MAX, 1, 1000, 1, NULL), 0);
}
