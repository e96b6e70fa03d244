/* test_tallyctl_time.c — tallyctl's human times (daemon/tallyctl/timeparse.c) and table units
 * (fmt.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "fmt.h"
#include "tally/tally.h"
#include "timeparse.h"

/* Checked with `date -u -d <date> +%s` (GNU date). */
#define NOW_MS (1796690377LL * 1000 + 250) /* 2026-12-08T00:39:37.250Z */
#define D_2026_12_08 1796688000LL
#define D_2026_11_01 1793491200LL
#define D_2026_12_01 1796083200LL
#define D_2026_11_05 1793836800LL
#define D_2024_02_29 1709164800LL
#define D_2024_03_01 1709251200LL
#define D_2027_01_01 1798761600LL
#define D_2026_12_31 1798675200LL

static int64_t
at(const char *s, int end)
{
    int64_t ms = -42;
    int rc = ctl_time_parse(s, NOW_MS, end, &ms);
    cr_assert_eq(rc, 0, "'%s' should parse (rc %d)", s, rc);
    return ms;
}

static void
refused(const char *s)
{
    int64_t ms = -42;
    cr_expect_eq(ctl_time_parse(s, NOW_MS, CTL_TIME_START, &ms), TALLY_EINVAL,
                 "'%s' should be refused", s);
    cr_expect_eq(ctl_time_parse(s, NOW_MS, CTL_TIME_END, &ms), TALLY_EINVAL,
                 "'%s' should be refused as an end too", s);
    cr_expect_eq(ms, -42, "'%s': the output is untouched on failure", s);
}

TestSuite(tallyctl_time);

Test(tallyctl_time, a_month_is_a_period_from_its_first_instant_to_the_next_month)
{
    cr_expect_eq(at("2026-11", CTL_TIME_START), D_2026_11_01 * 1000);
    cr_expect_eq(at("2026-11", CTL_TIME_END), D_2026_12_01 * 1000);
    /* December's end is the next year's first instant */
    cr_expect_eq(at("2026-12", CTL_TIME_END), D_2027_01_01 * 1000);
}

Test(tallyctl_time, a_day_is_a_period_and_must_exist_in_its_month)
{
    cr_expect_eq(at("2026-11-05", CTL_TIME_START), D_2026_11_05 * 1000);
    cr_expect_eq(at("2026-11-05", CTL_TIME_END), (D_2026_11_05 + 86400) * 1000);
    cr_expect_eq(at("2024-02-29", CTL_TIME_START), D_2024_02_29 * 1000);
    cr_expect_eq(at("2024-02-29", CTL_TIME_END), D_2024_03_01 * 1000);
    cr_expect_eq(at("2026-12-31", CTL_TIME_END), D_2027_01_01 * 1000);
    refused("2026-02-29"); /* not a leap year */
    refused("2026-02-30");
    refused("2026-04-31");
    refused("2026-11-00");
    refused("2026-11-32");
}

Test(tallyctl_time, today_and_yesterday_are_utc_days)
{
    cr_expect_eq(at("today", CTL_TIME_START), D_2026_12_08 * 1000);
    cr_expect_eq(at("today", CTL_TIME_END), (D_2026_12_08 + 86400) * 1000);
    cr_expect_eq(at("yesterday", CTL_TIME_START), (D_2026_12_08 - 86400) * 1000);
    cr_expect_eq(at("yesterday", CTL_TIME_END), D_2026_12_08 * 1000);
    cr_expect_eq(at("Yesterday", CTL_TIME_START), (D_2026_12_08 - 86400) * 1000, "any case");
    cr_expect_eq(at("TODAY", CTL_TIME_START), D_2026_12_08 * 1000);
}

Test(tallyctl_time, now_and_offsets_are_instants_either_way)
{
    cr_expect_eq(at("now", CTL_TIME_START), NOW_MS);
    cr_expect_eq(at("now", CTL_TIME_END), NOW_MS);
    cr_expect_eq(at("-24h", CTL_TIME_START), NOW_MS - 24LL * 3600 * 1000);
    cr_expect_eq(at("-24h", CTL_TIME_END), NOW_MS - 24LL * 3600 * 1000);
    cr_expect_eq(at("-7d", CTL_TIME_START), NOW_MS - 7LL * 86400 * 1000);
    cr_expect_eq(at("-30m", CTL_TIME_START), NOW_MS - 30LL * 60 * 1000);
    cr_expect_eq(at("-90s", CTL_TIME_START), NOW_MS - 90LL * 1000);
    cr_expect_eq(at("-2w", CTL_TIME_START), NOW_MS - 14LL * 86400 * 1000);
    cr_expect_eq(at("+1h", CTL_TIME_START), NOW_MS + 3600LL * 1000);
    cr_expect_eq(at("-0h", CTL_TIME_START), NOW_MS);
}

Test(tallyctl_time, rfc3339_and_unix_seconds_still_work)
{
    cr_expect_eq(at("2026-11-05T00:00:00Z", CTL_TIME_START), D_2026_11_05 * 1000);
    cr_expect_eq(at("2026-11-05T01:00:00+01:00", CTL_TIME_END), D_2026_11_05 * 1000,
                 "an instant is the same as start or end");
    cr_expect_eq(at("2026-11-05T00:00:00.5z", CTL_TIME_START), D_2026_11_05 * 1000 + 500);
    cr_expect_eq(at("1793836800", CTL_TIME_START), D_2026_11_05 * 1000);
    cr_expect_eq(at("1793836800", CTL_TIME_END), D_2026_11_05 * 1000);
    cr_expect_eq(at("1793836800.25", CTL_TIME_START), D_2026_11_05 * 1000 + 250);
    cr_expect_eq(at("0", CTL_TIME_START), 0);
}

Test(tallyctl_time, what_a_person_might_mistype_is_refused)
{
    refused("");
    refused("-24"); /* an offset without its unit, not 24 s before 1970 */
    refused("-1.5");
    refused("-h");
    refused("-24y");
    refused("-24hours");
    refused("--24h");
    refused("-1234567890h"); /* more than 9 digits */
    refused("-99999999w");   /* before the year 0000 */
    refused("+99999999w");   /* after 9999 */
    refused("2026-13");
    refused("2026-00");
    refused("2026-1");
    refused("2026-11-5");
    refused("2026/11/05");
    refused("26-11-05");
    refused("2026-11 ");
    refused(" 2026-11");
    refused("2026-11-05T12:00"); /* RFC 3339 wants seconds and a zone */
    refused("2026-11-05 12:00:00Z");
    refused("tomorrow");
    refused("yesterday ");
    refused("nowish");
    refused("next tuesday");
    refused("1700000000000"); /* milliseconds by mistake: year 55,000 */
    int64_t ms;
    /* December 9999 starts inside tally's years; its end is the year 10000 */
    cr_expect_eq(ctl_time_parse("9999-12", NOW_MS, CTL_TIME_START, &ms), 0);
    cr_expect_eq(ctl_time_parse("9999-12", NOW_MS, CTL_TIME_END, &ms), TALLY_EINVAL);
    cr_expect_eq(ctl_time_parse(NULL, NOW_MS, CTL_TIME_START, &ms), TALLY_EINVAL);
    cr_expect_eq(ctl_time_parse("now", NOW_MS, CTL_TIME_START, NULL), TALLY_EINVAL);
}

Test(tallyctl_time, before_1970_the_day_still_floors_downwards)
{
    int64_t ms;
    /* 1969-12-31T12:00:00Z: today is 1969-12-31, yesterday 1969-12-30 */
    cr_assert_eq(ctl_time_parse("today", -43200LL * 1000, CTL_TIME_START, &ms), 0);
    cr_expect_eq(ms, -86400LL * 1000);
    cr_assert_eq(ctl_time_parse("yesterday", -43200LL * 1000, CTL_TIME_START, &ms), 0);
    cr_expect_eq(ms, -2 * 86400LL * 1000);
}

/* ---- table units ------------------------------------------------------------ */

static void
expect_fmt(char *(*f)(double, char *, size_t), double v, const char *want)
{
    char buf[CTL_FMT_LEN];
    memset(buf, 'x', sizeof buf);
    cr_expect_str_eq(f(v, buf, sizeof buf), want, "%.17g", v);
}

Test(tallyctl_fmt, counts_get_thousands_separators)
{
    expect_fmt(ctl_fmt_count, 0, "0");
    expect_fmt(ctl_fmt_count, 7, "7");
    expect_fmt(ctl_fmt_count, 999, "999");
    expect_fmt(ctl_fmt_count, 1000, "1,000");
    expect_fmt(ctl_fmt_count, 1234567, "1,234,567");
    expect_fmt(ctl_fmt_count, -1234567, "-1,234,567");
    expect_fmt(ctl_fmt_count, 1234.5, "1,234.5");
    expect_fmt(ctl_fmt_count, 0.125, "0.125");
    expect_fmt(ctl_fmt_count, 2.0004, "2"); /* 3 decimals, zeros dropped */
    expect_fmt(ctl_fmt_count, -0.0001, "0");
    expect_fmt(ctl_fmt_count, 999999999999999999.0, "1e+18");
}

Test(tallyctl_fmt, bytes_get_binary_units)
{
    expect_fmt(ctl_fmt_bytes, 0, "0 B");
    expect_fmt(ctl_fmt_bytes, 1023, "1,023 B");
    expect_fmt(ctl_fmt_bytes, 1024, "1.00 KiB");
    expect_fmt(ctl_fmt_bytes, 1536, "1.50 KiB");
    expect_fmt(ctl_fmt_bytes, 12.34 * 1024 * 1024, "12.3 MiB");
    expect_fmt(ctl_fmt_bytes, 512.0 * 1024 * 1024 * 1024, "512 GiB");
    expect_fmt(ctl_fmt_bytes, 3.0 * 1024 * 1024 * 1024 * 1024, "3.00 TiB");
    expect_fmt(ctl_fmt_bytes, 2048.0 * 1024 * 1024 * 1024 * 1024 * 1024, "2,048 PiB");
}

Test(tallyctl_fmt, seconds_become_minutes_then_hours)
{
    expect_fmt(ctl_fmt_seconds, 45, "45 s");
    expect_fmt(ctl_fmt_seconds, 750, "12.5 min");
    expect_fmt(ctl_fmt_seconds, 7200, "2.0 h");
    expect_fmt(ctl_fmt_seconds, 4444200, "1,234.5 h");
}

Test(tallyctl_fmt, the_unit_name_picks_the_format)
{
    char buf[CTL_FMT_LEN];
    cr_expect_str_eq(ctl_fmt_unit("bytes", 2048, buf, sizeof buf), "2.00 KiB");
    cr_expect_str_eq(ctl_fmt_unit("seconds", 3600, buf, sizeof buf), "1.0 h");
    cr_expect_str_eq(ctl_fmt_unit("requests", 3000, buf, sizeof buf), "3,000");
    cr_expect_str_eq(ctl_fmt_unit(NULL, 3000, buf, sizeof buf), "3,000");
}

Test(tallyctl_fmt, a_small_buffer_truncates_and_stays_terminated)
{
    char buf[5];
    cr_expect_str_eq(ctl_fmt_count(1234567, buf, sizeof buf), "1,23");
    cr_expect_str_eq(ctl_fmt_bytes(1536, buf, sizeof buf), "1.50");
}
