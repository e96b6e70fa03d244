/* test_time.c — Criterion tests of the UTC calendar, RFC 3339 and clock helpers in lib/timeutil. */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "tally/tally.h"
#include "timeutil.h"

/* Unix timestamps below were checked with `date -u -d <iso> +%s` (GNU date). */
#define T_2026_11_26_17 1795712400LL   /* 2026-11-26T17:00:00Z */
#define T_2024_02_29_LAST 1709251199LL /* 2024-02-29T23:59:59Z */
#define T_2024_02_01 1706745600LL      /* 2024-02-01T00:00:00Z */
#define T_2024_03_01 1709251200LL      /* 2024-03-01T00:00:00Z */
#define T_1969_12_01 (-2678400LL)      /* 1969-12-01T00:00:00Z */
#define T_YEAR0 (-62167219200LL)       /* 0000-01-01T00:00:00Z */
#define T_Y9999_LAST 253402300799LL    /* 9999-12-31T23:59:59Z */

/* ---- an independent reference: plain rules and a day counter ------------- */

static int
ref_leap(int y)
{
    if (y % 400 == 0)
        return 1;
    if (y % 100 == 0)
        return 0;
    return y % 4 == 0;
}

static int
ref_mdays(int y, int m)
{
    switch (m) {
    case 2:
        return ref_leap(y) ? 29 : 28;
    case 4:
    case 6:
    case 9:
    case 11:
        return 30;
    default:
        return 31;
    }
}

typedef struct civil {
    int y, mo, d, h, mi, s;
} civil_t;

static civil_t
split(int64_t t)
{
    civil_t c;
    tally__time_to_civil(t, &c.y, &c.mo, &c.d, &c.h, &c.mi, &c.s);
    return c;
}

static void
assert_civil(int64_t t, int y, int mo, int d, int h, int mi, int s)
{
    civil_t c = split(t);
    cr_assert(c.y == y && c.mo == mo && c.d == d && c.h == h && c.mi == mi && c.s == s,
              "to_civil(%lld) = %04d-%02d-%02dT%02d:%02d:%02d, want "
              "%04d-%02d-%02dT%02d:%02d:%02d",
              (long long)t, c.y, c.mo, c.d, c.h, c.mi, c.s, y, mo, d, h, mi, s);
}

static void
assert_parse(const char *s, int64_t want_ms)
{
    int64_t got = INT64_MIN;
    int rc = tally__time_parse_rfc3339(s, &got);
    cr_assert_eq(rc, 0, "parse_rfc3339(\"%s\") = %d, want 0", s, rc);
    cr_assert_eq(got, want_ms, "parse_rfc3339(\"%s\") = %lld ms, want %lld", s, (long long)got,
                 (long long)want_ms);
}

static void
assert_reject(const char *s)
{
    int64_t got = 12345;
    int rc = tally__time_parse_rfc3339(s, &got);
    cr_assert_eq(rc, TALLY_EINVAL, "parse_rfc3339(\"%s\") = %d, want TALLY_EINVAL", s, rc);
    cr_assert_eq(got, 12345, "parse_rfc3339(\"%s\") wrote its output on failure", s);
}

static void
assert_any(const char *s, int64_t want_ms)
{
    int64_t got = INT64_MIN;
    int rc = tally__time_parse_any(s, &got);
    cr_assert_eq(rc, 0, "parse_any(\"%s\") = %d, want 0", s, rc);
    cr_assert_eq(got, want_ms, "parse_any(\"%s\") = %lld ms, want %lld", s, (long long)got,
                 (long long)want_ms);
}

static void
assert_any_reject(const char *s)
{
    int64_t got = 12345;
    int rc = tally__time_parse_any(s, &got);
    cr_assert_eq(rc, TALLY_EINVAL, "parse_any(\"%s\") = %d, want TALLY_EINVAL", s, rc);
    cr_assert_eq(got, 12345, "parse_any(\"%s\") wrote its output on failure", s);
}

/* ---- hour / day / month boundaries --------------------------------------- */

Test(time, hour_start_floors_within_the_hour_and_before_the_epoch)
{
    cr_assert_eq(tally__time_hour_start(0), 0);
    cr_assert_eq(tally__time_hour_start(3599), 0);
    cr_assert_eq(tally__time_hour_start(3600), 3600);
    cr_assert_eq(tally__time_hour_start(1721051130), 1721048400); /* 13:45:30 -> 13:00 */
    cr_assert_eq(tally__time_hour_start(-1), -3600);
    cr_assert_eq(tally__time_hour_start(-3600), -3600);
    cr_assert_eq(tally__time_hour_start(-3601), -7200);
}

Test(time, day_start_floors_to_midnight_utc)
{
    cr_assert_eq(tally__time_day_start(0), 0);
    cr_assert_eq(tally__time_day_start(86399), 0);
    cr_assert_eq(tally__time_day_start(86400), 86400);
    cr_assert_eq(tally__time_day_start(1721051130), 1721001600); /* 2024-07-15 */
    cr_assert_eq(tally__time_day_start(T_2024_02_29_LAST), T_2024_03_01 - 86400);
    cr_assert_eq(tally__time_day_start(-1), -86400);
    cr_assert_eq(tally__time_day_start(-86400), -86400);
    cr_assert_eq(tally__time_day_start(-86401), -172800);
}

Test(time, month_start_and_next_month_around_a_leap_day)
{
    cr_assert_eq(tally__time_month_start(T_2024_02_29_LAST), T_2024_02_01);
    cr_assert_eq(tally__time_next_month(T_2024_02_01), T_2024_03_01);
    cr_assert_eq(tally__time_next_month(T_2024_02_29_LAST), T_2024_03_01);
    cr_assert_eq(tally__time_month_start(T_2024_03_01), T_2024_03_01);
    cr_assert_eq(tally__time_month_start(T_2024_03_01 - 1), T_2024_02_01);
    cr_assert_eq(tally__time_month_start(1721051130), 1719792000); /* 2024-07-01 */
    cr_assert_eq(tally__time_next_month(1719792000), 1722470400);  /* 2024-08-01 */
    cr_assert_eq(tally__time_month_start(T_2026_11_26_17),
                 tally__time_from_civil(2026, 11, 1, 0, 0, 0));
}

Test(time, month_start_before_the_epoch_floors_into_december_1969)
{
    cr_assert_eq(tally__time_month_start(-1), T_1969_12_01);
    cr_assert_eq(tally__time_month_start(T_1969_12_01), T_1969_12_01);
    cr_assert_eq(tally__time_next_month(T_1969_12_01), 0);
    cr_assert_eq(tally__time_month_start(-2203891200LL), -2203891200LL); /* 1900-03-01 */
    cr_assert_eq(tally__time_month_start(-2203891201LL), -2203977600LL - 27 * 86400LL);
}

Test(time, next_month_crosses_december_into_the_next_year)
{
    cr_assert_eq(tally__time_next_month(1733011200), 1735689600); /* 2024-12 -> 2025-01 */
    cr_assert_eq(tally__time_next_month(1735689599), 1735689600); /* 2024-12-31T23:59:59 */
    cr_assert_eq(tally__time_month_start(1735689599), 1733011200);
    cr_assert_eq(tally__time_next_month(T_1969_12_01 - 1), T_1969_12_01); /* Nov -> Dec 1969 */
    cr_assert_eq(tally__time_next_month(253399622400LL),
                 T_Y9999_LAST + 1); /* 9999-12 -> 10000-01 */
}

Test(time, next_month_walks_every_month_from_1970_to_2100)
{
    int64_t m = 0, want = 0;
    for (int y = 1970; y <= 2100; y++) {
        for (int mo = 1; mo <= 12; mo++) {
            cr_assert_eq(m, want, "month %04d-%02d starts at %lld, want %lld", y, mo, (long long)m,
                         (long long)want);
            cr_assert_eq(tally__time_month_start(m + ref_mdays(y, mo) * 86400LL - 1), m);
            want += ref_mdays(y, mo) * 86400LL;
            m = tally__time_next_month(m);
        }
    }
    cr_assert_eq(m, 4133980800LL); /* 2101-01-01T00:00:00Z */
}

/* ---- leap years and month lengths ---------------------------------------- */

Test(time, leap_years_follow_the_gregorian_rule)
{
    cr_assert_eq(tally__time_is_leap_year(2000), 1);
    cr_assert_eq(tally__time_is_leap_year(1900), 0);
    cr_assert_eq(tally__time_is_leap_year(2100), 0);
    cr_assert_eq(tally__time_is_leap_year(2024), 1);
    cr_assert_eq(tally__time_is_leap_year(2023), 0);
    cr_assert_eq(tally__time_is_leap_year(1600), 1);
    cr_assert_eq(tally__time_is_leap_year(0), 1);
    cr_assert_eq(tally__time_is_leap_year(-4), 1);
    cr_assert_eq(tally__time_is_leap_year(-100), 0);
    cr_assert_eq(tally__time_days_in_month(2000, 2), 29);
    cr_assert_eq(tally__time_days_in_month(1900, 2), 28);
    cr_assert_eq(tally__time_days_in_month(2100, 2), 28);
    cr_assert_eq(tally__time_days_in_month(2024, 2), 29);
    cr_assert_eq(tally__time_days_in_month(2023, 2), 28);
    /* The day after Feb 28 is Feb 29 only in leap years (checked with date -u). */
    cr_assert_eq(tally__time_from_civil(2000, 3, 1, 0, 0, 0) - 951782400, 86400);
    cr_assert_eq(tally__time_from_civil(1900, 3, 1, 0, 0, 0), -2203977600LL + 86400);
    cr_assert_eq(tally__time_from_civil(2100, 3, 1, 0, 0, 0), 4107456000LL + 86400);
    cr_assert_eq(tally__time_from_civil(2023, 3, 1, 0, 0, 0), 1677542400LL + 86400);
}

Test(time, days_in_month_for_every_month_and_bad_months)
{
    static const int common[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int mo = 1; mo <= 12; mo++) {
        cr_assert_eq(tally__time_days_in_month(2023, mo), common[mo - 1], "2023-%02d", mo);
        cr_assert_eq(tally__time_days_in_month(2024, mo), common[mo - 1] + (mo == 2), "2024-%02d",
                     mo);
    }
    cr_assert_eq(tally__time_days_in_month(2024, 0), 0);
    cr_assert_eq(tally__time_days_in_month(2024, 13), 0);
    cr_assert_eq(tally__time_days_in_month(2024, -1), 0);
}

Test(time, day_after_the_31st_is_the_1st_of_the_next_month)
{
    int64_t jan31 = tally__time_from_civil(2024, 1, 31, 0, 0, 0);
    cr_assert_eq(jan31, 1706659200LL);
    assert_civil(jan31 + 86400, 2024, 2, 1, 0, 0, 0);
    cr_assert_eq(jan31 + 86400, T_2024_02_01);
    assert_civil(1706704496LL, 2024, 1, 31, 12, 34, 56);

    int64_t dec31 = tally__time_from_civil(2023, 12, 31, 0, 0, 0);
    cr_assert_eq(dec31, 1703980800LL);
    assert_civil(dec31 + 86399, 2023, 12, 31, 23, 59, 59);
    assert_civil(dec31 + 86400, 2024, 1, 1, 0, 0, 0);
    cr_assert_eq(dec31 + 86400, 1704067200LL);
    assert_civil(-1, 1969, 12, 31, 23, 59, 59);
    assert_civil(0, 1970, 1, 1, 0, 0, 0);
}

/* ---- civil conversions ---------------------------------------------------- */

Test(time, known_timestamps_convert_both_ways)
{
    static const struct {
        int64_t t;
        int y, mo, d, h, mi, s;
    } cases[] = {
        {0, 1970, 1, 1, 0, 0, 0},
        {T_2026_11_26_17, 2026, 11, 26, 17, 0, 0},
        {1000000000, 2001, 9, 9, 1, 46, 40},
        {1700000000, 2023, 11, 14, 22, 13, 20},
        {2147483647, 2038, 1, 19, 3, 14, 7},
        {T_2024_02_29_LAST, 2024, 2, 29, 23, 59, 59},
        {-2208988800LL, 1900, 1, 1, 0, 0, 0},
        {-11670912000LL, 1600, 3, 1, 0, 0, 0},
        {T_YEAR0, 0, 1, 1, 0, 0, 0},
        {T_Y9999_LAST, 9999, 12, 31, 23, 59, 59},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(tally__time_from_civil(cases[i].y, cases[i].mo, cases[i].d, cases[i].h,
                                            cases[i].mi, cases[i].s),
                     cases[i].t, "case %zu", i);
        assert_civil(cases[i].t, cases[i].y, cases[i].mo, cases[i].d, cases[i].h, cases[i].mi,
                     cases[i].s);
    }
}

Test(time, every_day_from_1970_to_9999_matches_an_independent_day_counter)
{
    int64_t idx = 0;
    for (int y = 1970; y <= 9999; y++) {
        for (int mo = 1; mo <= 12; mo++) {
            for (int d = 1; d <= ref_mdays(y, mo); d++, idx++) {
                int64_t t = tally__time_from_civil(y, mo, d, 0, 0, 0);
                if (t != idx * 86400)
                    cr_assert_fail("from_civil(%04d-%02d-%02d) = %lld, want %lld", y, mo, d,
                                   (long long)t, (long long)(idx * 86400));
                /* A time of day that varies from day to day. */
                int64_t tod = (idx * 7919) % 86400;
                civil_t c = split(t + tod);
                if (c.y != y || c.mo != mo || c.d != d || c.h != tod / 3600 ||
                    c.mi != tod % 3600 / 60 || c.s != tod % 60)
                    cr_assert_fail("to_civil(%lld) = %04d-%02d-%02dT%02d:%02d:%02d, want "
                                   "%04d-%02d-%02d + %llds",
                                   (long long)(t + tod), c.y, c.mo, c.d, c.h, c.mi, c.s, y, mo, d,
                                   (long long)tod);
                if (tally__time_day_start(t + tod) != t)
                    cr_assert_fail("day_start(%lld) != %lld", (long long)(t + tod), (long long)t);
            }
        }
    }
    /* 10000-01-01T00:00:00Z = 253402300800 = 2932897 days. */
    cr_assert_eq(idx, 2932897);
}

Test(time, every_day_before_1970_back_to_year_0_matches_an_independent_day_counter)
{
    int64_t idx = 0;
    for (int y = 1969; y >= 0; y--) {
        for (int mo = 12; mo >= 1; mo--) {
            for (int d = ref_mdays(y, mo); d >= 1; d--) {
                idx--;
                int64_t t = tally__time_from_civil(y, mo, d, 0, 0, 0);
                if (t != idx * 86400)
                    cr_assert_fail("from_civil(%04d-%02d-%02d) = %lld, want %lld", y, mo, d,
                                   (long long)t, (long long)(idx * 86400));
                int64_t tod = (-idx * 7919) % 86400;
                civil_t c = split(t + tod);
                if (c.y != y || c.mo != mo || c.d != d || c.h != tod / 3600 ||
                    c.mi != tod % 3600 / 60 || c.s != tod % 60)
                    cr_assert_fail("to_civil(%lld) = %04d-%02d-%02dT%02d:%02d:%02d, want "
                                   "%04d-%02d-%02d + %llds",
                                   (long long)(t + tod), c.y, c.mo, c.d, c.h, c.mi, c.s, y, mo, d,
                                   (long long)tod);
                if (tally__time_day_start(t + tod) != t)
                    cr_assert_fail("day_start(%lld) != %lld", (long long)(t + tod), (long long)t);
            }
        }
    }
    cr_assert_eq(idx * 86400, T_YEAR0);
}

Test(time, from_civil_normalizes_out_of_range_fields)
{
    cr_assert_eq(tally__time_from_civil(2024, 13, 1, 0, 0, 0), 1735689600LL); /* 2025-01-01 */
    cr_assert_eq(tally__time_from_civil(2025, 0, 1, 0, 0, 0), 1733011200LL);  /* 2024-12-01 */
    cr_assert_eq(tally__time_from_civil(2024, 2, 30, 0, 0, 0), T_2024_03_01);
    cr_assert_eq(tally__time_from_civil(2024, 3, 0, 0, 0, 0), T_2024_03_01 - 86400);
    cr_assert_eq(tally__time_from_civil(2024, 1, 1, -1, 0, 0), 1704067200LL - 3600);
    cr_assert_eq(tally__time_from_civil(2023, 12, 31, 23, 59, 60), 1704067200LL);
    cr_assert_eq(tally__time_from_civil(2024, -11, 1, 0, 0, 0), 1672531200LL); /* 2023-01-01 */
}

Test(time, extreme_inputs_are_clamped_without_overflow)
{
    /* Run under UBSan these would trap on any signed overflow. */
    cr_assert_eq(tally__time_hour_start(INT64_MIN), tally__time_hour_start(TALLY_TIME_MIN_S));
    cr_assert_eq(tally__time_day_start(INT64_MAX), tally__time_day_start(TALLY_TIME_MAX_S));
    cr_assert_leq(tally__time_month_start(INT64_MIN), TALLY_TIME_MIN_S);
    cr_assert_leq(tally__time_month_start(INT64_MAX), TALLY_TIME_MAX_S);
    cr_assert_gt(tally__time_next_month(INT64_MAX), TALLY_TIME_MAX_S);
    cr_assert_eq(tally__time_next_month(INT64_MIN), tally__time_next_month(TALLY_TIME_MIN_S));
    civil_t lo = split(INT64_MIN), hi = split(INT64_MAX);
    cr_assert_lt(lo.y, -31000000);
    cr_assert_gt(hi.y, 31000000);
    cr_assert(lo.mo >= 1 && lo.mo <= 12 && hi.mo >= 1 && hi.mo <= 12);
    /* Any int fields: computed in 64 bits. */
    cr_assert_gt(tally__time_from_civil(INT_MAX, INT_MAX, INT_MAX, INT_MAX, INT_MAX, INT_MAX), 0);
    cr_assert_lt(tally__time_from_civil(INT_MIN, INT_MIN, INT_MIN, INT_MIN, INT_MIN, INT_MIN), 0);
    int y;
    tally__time_to_civil(0, &y, NULL, NULL, NULL, NULL, NULL); /* NULL outs allowed */
    cr_assert_eq(y, 1970);
}

/* ---- RFC 3339 ------------------------------------------------------------- */

Test(time, rfc3339_parses_utc_in_either_case)
{
    assert_parse("2026-11-26T17:00:00Z", T_2026_11_26_17 * 1000);
    assert_parse("2026-11-26t17:00:00z", T_2026_11_26_17 * 1000);
    assert_parse("2026-11-26T17:00:00z", T_2026_11_26_17 * 1000);
    assert_parse("1970-01-01T00:00:00Z", 0);
    assert_parse("2024-02-29T23:59:59Z", T_2024_02_29_LAST * 1000);
    assert_parse("2038-01-19T03:14:07Z", 2147483647LL * 1000);
}

Test(time, rfc3339_fraction_is_kept_as_milliseconds)
{
    assert_parse("2026-11-26T17:00:00.123456Z", T_2026_11_26_17 * 1000 + 123);
    assert_parse("2026-11-26T17:00:00.5Z", T_2026_11_26_17 * 1000 + 500);
    assert_parse("2026-11-26T17:00:00.05Z", T_2026_11_26_17 * 1000 + 50);
    assert_parse("2026-11-26T17:00:00.123Z", T_2026_11_26_17 * 1000 + 123);
    assert_parse("2026-11-26T17:00:00.999999999Z", T_2026_11_26_17 * 1000 + 999);
    assert_parse("2026-11-26T17:00:00.0009Z", T_2026_11_26_17 * 1000);
    assert_parse("2026-11-26T17:00:00.000Z", T_2026_11_26_17 * 1000);
    assert_parse("2026-11-26T17:00:00.25+01:00", (T_2026_11_26_17 - 3600) * 1000 + 250);
    /* Before the epoch the fraction still counts forward from the second. */
    assert_parse("1969-12-31T23:59:59.500Z", -500);
}

Test(time, rfc3339_offsets_are_subtracted_to_get_utc)
{
    assert_parse("2026-11-26T17:00:00+01:00", 1795708800LL * 1000); /* 16:00Z */
    assert_parse("2026-11-26T17:00:00-05:30", 1795732200LL * 1000); /* 22:30Z */
    assert_parse("2026-11-26T17:00:00+00:00", T_2026_11_26_17 * 1000);
    assert_parse("2026-11-26T17:00:00-00:00", T_2026_11_26_17 * 1000);
    assert_parse("2026-11-26T17:00:00+23:59", (T_2026_11_26_17 - 23 * 3600 - 59 * 60) * 1000);
    assert_parse("2026-11-26T17:00:00-23:59", (T_2026_11_26_17 + 23 * 3600 + 59 * 60) * 1000);
    /* Offsets move the instant across day, month and year boundaries. */
    assert_parse("2024-01-01T00:30:00+01:00", 1704065400LL * 1000); /* 2023-12-31T23:30Z */
    assert_parse("2024-02-29T22:00:00-02:00", T_2024_03_01 * 1000);
    assert_parse("1970-01-01T00:00:00+00:01", -60 * 1000);
}

Test(time, rfc3339_accepts_calendar_edges)
{
    assert_parse("2000-02-29T00:00:00Z", 951782400LL * 1000);
    assert_parse("2024-02-29T00:00:00Z", (T_2024_03_01 - 86400) * 1000);
    assert_parse("2024-01-31T12:34:56Z", 1706704496LL * 1000);
    assert_parse("2023-12-31T23:59:59Z", (1704067200LL - 1) * 1000);
    assert_parse("0000-01-01T00:00:00Z", T_YEAR0 * 1000);
    assert_parse("9999-12-31T23:59:59.999Z", T_Y9999_LAST * 1000 + 999);
    assert_parse("1900-01-01T00:00:00Z", -2208988800LL * 1000);
}

Test(time, rfc3339_rejects_impossible_calendar_values)
{
    assert_reject("2026-00-26T17:00:00Z"); /* month 0 */
    assert_reject("2026-13-26T17:00:00Z"); /* month 13 */
    assert_reject("2026-11-00T17:00:00Z"); /* day 0 */
    assert_reject("2026-01-32T17:00:00Z"); /* day 32 */
    assert_reject("2026-04-31T17:00:00Z"); /* April has 30 */
    assert_reject("2024-02-30T00:00:00Z"); /* Feb 30 */
    assert_reject("2023-02-29T00:00:00Z"); /* not a leap year */
    assert_reject("1900-02-29T00:00:00Z"); /* century, not leap */
    assert_reject("2100-02-29T00:00:00Z");
    assert_reject("2026-11-26T24:00:00Z"); /* hour 24 */
    assert_reject("2026-11-26T17:60:00Z"); /* minute 60 */
    assert_reject("2026-11-26T17:00:60Z"); /* leap second: unix time has none */
    assert_reject("2026-11-26T99:99:99Z");
}

Test(time, rfc3339_rejects_malformed_syntax)
{
    assert_reject("");
    assert_reject("2026-11-26");           /* date only */
    assert_reject("2026-11-26T17:00:00");  /* no zone */
    assert_reject("2026-11-26T17:00Z");    /* no seconds */
    assert_reject("2026-11-26 17:00:00Z"); /* space separator */
    assert_reject("2026-11-26X17:00:00Z");
    assert_reject("2026/11/26T17:00:00Z");   /* wrong date separators */
    assert_reject("2026-11-26T17-00-00Z");   /* wrong time separators */
    assert_reject("26-11-26T17:00:00Z");     /* two-digit year */
    assert_reject("02026-11-26T17:00:00Z");  /* five-digit year */
    assert_reject("+2026-11-26T17:00:00Z");  /* signed year */
    assert_reject("2026-1-26T17:00:00Z");    /* one-digit month */
    assert_reject("2026-11-6T17:00:00Z");    /* one-digit day */
    assert_reject("2026-11-26T7:00:00Z");    /* one-digit hour */
    assert_reject("2026-11-2aT17:00:00Z");   /* non-digit */
    assert_reject("2026-11-26T17:00:00.Z");  /* fraction without digits */
    assert_reject("2026-11-26T17:00:00,5Z"); /* comma fraction */
    assert_reject("2026-11-26T17:00:00.5");  /* fraction, no zone */
    assert_reject("2026-11-26T17:00:00.5.5Z");
    assert_reject("2026-11-26T17:00:00UTC");
    assert_reject("1700000000"); /* unix seconds are parse_any's job */
}

Test(time, rfc3339_rejects_bad_offsets)
{
    assert_reject("2026-11-26T17:00:00+1:00");
    assert_reject("2026-11-26T17:00:00+01");
    assert_reject("2026-11-26T17:00:00+0100");
    assert_reject("2026-11-26T17:00:00+01:0");
    assert_reject("2026-11-26T17:00:00+24:00");
    assert_reject("2026-11-26T17:00:00+01:60");
    assert_reject("2026-11-26T17:00:00Z+01:00");
    assert_reject("2026-11-26T17:00:00+01:00Z");
    assert_reject("2026-11-26T17:00:00 +01:00");
    assert_reject("2026-11-26T17:00:00*01:00");
    assert_reject("2026-11-26T17:00:00+");
}

Test(time, rfc3339_rejects_leading_and_trailing_bytes)
{
    assert_reject(" 2026-11-26T17:00:00Z");
    assert_reject("2026-11-26T17:00:00Z ");
    assert_reject("2026-11-26T17:00:00Zx");
    assert_reject("2026-11-26T17:00:00ZZ");
    assert_reject("2026-11-26T17:00:00Z\n");
    assert_reject("2026-11-26T17:00:00+01:00:00");
    assert_reject("2026-11-26T17:00:00+01:000");
}

Test(time, rfc3339_rejects_null_arguments)
{
    int64_t out = 7;
    cr_assert_eq(tally__time_parse_rfc3339(NULL, &out), TALLY_EINVAL);
    cr_assert_eq(out, 7);
    cr_assert_eq(tally__time_parse_rfc3339("2026-11-26T17:00:00Z", NULL), TALLY_EINVAL);
    cr_assert_eq(tally__time_parse_any(NULL, &out), TALLY_EINVAL);
    cr_assert_eq(tally__time_parse_any("1", NULL), TALLY_EINVAL);
    cr_assert_eq(out, 7);
}

/* ---- parse_any ------------------------------------------------------------ */

Test(time, parse_any_reads_unix_seconds_with_sign_and_fraction)
{
    assert_any("1700000000", 1700000000LL * 1000);
    assert_any("0", 0);
    assert_any("-0", 0);
    assert_any("-1", -1000);
    assert_any("1.5", 1500);
    assert_any("-1.5", -1500);
    assert_any("-0.25", -250);
    assert_any("1795712400.123456", T_2026_11_26_17 * 1000 + 123);
    assert_any("00042", 42000);
    assert_any("253402300799", T_Y9999_LAST * 1000);
    assert_any("253402300799.999", T_Y9999_LAST * 1000 + 999);
    assert_any("-62167219200", T_YEAR0 * 1000);
}

Test(time, parse_any_reads_rfc3339_text)
{
    assert_any("2026-11-26T17:00:00Z", T_2026_11_26_17 * 1000);
    assert_any("2026-11-26T17:00:00.5-05:30", 1795732200LL * 1000 + 500);
    assert_any("1969-12-31T23:59:59z", -1000);
}

Test(time, parse_any_rejects_malformed_and_out_of_range_values)
{
    assert_any_reject("");
    assert_any_reject("-");
    assert_any_reject("1.");
    assert_any_reject(".5");
    assert_any_reject("-.5");
    assert_any_reject("+1");
    assert_any_reject(" 1");
    assert_any_reject("1 ");
    assert_any_reject("1e9");
    assert_any_reject("0x10");
    assert_any_reject("1,5");
    assert_any_reject("--1");
    assert_any_reject("1.5.5");
    assert_any_reject("253402300800"); /* past 9999-12-31T23:59:59Z */
    assert_any_reject("-62167219201"); /* before 0000-01-01 */
    assert_any_reject("-62167219200.001");
    assert_any_reject("1700000000000");                    /* milliseconds by mistake */
    assert_any_reject("99999999999999999999999999999999"); /* no overflow */
    assert_any_reject("-9223372036854775808");
    assert_any_reject("2026-11-26T17:00:00"); /* falls through to RFC 3339: no zone */
    assert_any_reject("2026-02-30T17:00:00Z");
}

/* ---- formatting ----------------------------------------------------------- */

static void
assert_format(int64_t t, const char *want)
{
    char buf[TALLY_TIME_RFC3339_LEN];
    memset(buf, 'x', sizeof buf);
    size_t n = tally__time_format_rfc3339(t, buf, sizeof buf);
    cr_assert_eq(n, strlen(want), "format(%lld) returned %zu", (long long)t, n);
    cr_assert_str_eq(buf, want, "format(%lld)", (long long)t);
}

Test(time, format_writes_known_timestamps)
{
    assert_format(0, "1970-01-01T00:00:00Z");
    assert_format(T_2026_11_26_17, "2026-11-26T17:00:00Z");
    assert_format(T_2024_02_29_LAST, "2024-02-29T23:59:59Z");
    assert_format(1000000000, "2001-09-09T01:46:40Z");
    assert_format(-1, "1969-12-31T23:59:59Z");
    assert_format(-2208988800LL, "1900-01-01T00:00:00Z");
    assert_format(T_YEAR0, "0000-01-01T00:00:00Z");
    assert_format(T_Y9999_LAST, "9999-12-31T23:59:59Z");
}

Test(time, format_needs_21_bytes_and_a_four_digit_year)
{
    char buf[TALLY_TIME_RFC3339_LEN];
    memset(buf, 'x', sizeof buf);
    cr_assert_eq(tally__time_format_rfc3339(0, buf, 21), 20);
    cr_assert_str_eq(buf, "1970-01-01T00:00:00Z");
    memset(buf, 'x', sizeof buf);
    cr_assert_eq(tally__time_format_rfc3339(0, buf, 20), 0);
    cr_assert_eq(buf[0], '\0');
    cr_assert_eq(buf[1], 'x', "wrote past the first byte of a short buffer");
    memset(buf, 'x', sizeof buf);
    cr_assert_eq(tally__time_format_rfc3339(0, buf, 0), 0);
    cr_assert_eq(buf[0], 'x', "wrote into a zero-size buffer");
    cr_assert_eq(tally__time_format_rfc3339(0, NULL, 32), 0);
    cr_assert_eq(tally__time_format_rfc3339(T_Y9999_LAST + 1, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(tally__time_format_rfc3339(T_YEAR0 - 1, buf, sizeof buf), 0);
    cr_assert_eq(tally__time_format_rfc3339(INT64_MIN, buf, sizeof buf), 0);
    cr_assert_eq(tally__time_format_rfc3339(INT64_MAX, buf, sizeof buf), 0);
}

Test(time, format_then_parse_round_trips_across_years_0_to_9999)
{
    char buf[TALLY_TIME_RFC3339_LEN];
    int n = 0;
    for (int64_t t = T_YEAR0; t <= T_Y9999_LAST; t += 9999991, n++) {
        if (tally__time_format_rfc3339(t, buf, sizeof buf) != 20)
            cr_assert_fail("format(%lld) failed", (long long)t);
        int64_t ms = 0;
        if (tally__time_parse_rfc3339(buf, &ms) != 0 || ms != t * 1000)
            cr_assert_fail("parse(format(%lld) = \"%s\") = %lld ms", (long long)t, buf,
                           (long long)ms);
        if (tally__time_parse_any(buf, &ms) != 0 || ms != t * 1000)
            cr_assert_fail("parse_any(\"%s\") = %lld ms", buf, (long long)ms);
    }
    cr_assert_gt(n, 30000);
}

/* ---- clocks --------------------------------------------------------------- */

Test(time, now_ms_tracks_the_wall_clock)
{
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t now = tally__time_now_ms();
    int64_t after = ((int64_t)time(NULL) + 1) * 1000;
    cr_assert(now >= before && now <= after, "now_ms %lld not in [%lld, %lld]", (long long)now,
              (long long)before, (long long)after);
}

Test(time, mono_ms_never_goes_backwards_and_measures_a_sleep)
{
    int64_t a = tally__time_mono_ms();
    for (int i = 0; i < 1000; i++) {
        int64_t b = tally__time_mono_ms();
        cr_assert_geq(b, a);
        a = b;
    }
    struct timespec req = {0, 20 * 1000000L}, rem;
    while (nanosleep(&req, &rem) != 0)
        req = rem;
    /* A 20 ms sleep spans at least 20 whole-ms ticks (floor(b) - floor(a) > 19). */
    cr_assert_geq(tally__time_mono_ms() - a, 20);
}
