/* timeparse.h — the times a person types to tallyctl: 2026-11, 2026-11-05, yesterday, -24h, RFC
 * 3339.
 *
 * Every time is UTC, like tally's hours, days and months. A calendar period
 * (a month, a day, today, yesterday) names an interval: given as the start
 * of a window (--from) it means the period's first instant, given as its end
 * (--to, which is exclusive) the first instant after it, so
 * `--from 2026-11 --to 2026-11` is the whole of November and
 * `--from yesterday --to yesterday` the whole of yesterday. An instant
 * (now, -24h, RFC 3339, unix seconds) means itself either way.
 *
 * Kept apart from the rest of tallyctl, with no global state and the clock
 * passed in, so tests/unit/test_tallyctl_time.c can compile it alone.
 */
#ifndef TALLYCTL_TIMEPARSE_H
#define TALLYCTL_TIMEPARSE_H

#include <stdint.h>

/** Which end of a calendar period a time stands for. */
#define CTL_TIME_START 0
#define CTL_TIME_END 1

/** The forms ctl_time_parse() accepts, for error messages and help. */
#define CTL_TIME_FORMS                                                                             \
    "RFC 3339 (2026-11-05T14:00:00Z), unix seconds, a month (2026-11), a day (2026-11-05), "       \
    "today, yesterday, now, or an offset from now (-30m, -24h, -7d; s m h d w)"

/**
 * @brief Parse a time as a person types it.
 *
 * Accepted (words in any case, nothing around them):
 *  - `now`;
 *  - `today`, `yesterday`: the UTC day, as a period;
 *  - `YYYY-MM`: a month, as a period (month 01..12);
 *  - `YYYY-MM-DD`: a day, as a period (a day the month has);
 *  - `-N` or `+N` followed by one unit `s`, `m`, `h`, `d` or `w`
 *    (seconds, minutes, hours, days, weeks): now minus / plus N units,
 *    N at most 9 digits;
 *  - anything tally__time_parse_any() accepts: RFC 3339 with a zone, unix
 *    seconds with an optional fraction — but not negative ones: a leading
 *    `-` always starts an offset, so `-24` (a forgotten unit) is refused
 *    instead of being read as 24 seconds before 1970.
 * The result lies in the years 0000..9999, like every tally time.
 *
 * @param s the text; borrowed for the call.
 * @param now_ms the current time in unix milliseconds (the caller's clock,
 *        so tests can fix it).
 * @param end CTL_TIME_START or CTL_TIME_END: which end of a period to give.
 * @param[out] out_ms unix milliseconds; untouched on failure.
 * @return 0, or TALLY_EINVAL for anything else (an empty string, a month
 *         13, February 30, "-24", "-5y", "2026-1", trailing bytes, an
 *         instant outside the years 0000..9999).
 */
int ctl_time_parse(const char *s, int64_t now_ms, int end, int64_t *out_ms);

#endif
