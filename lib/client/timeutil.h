/* timeutil.h — UTC calendar arithmetic, RFC 3339 parsing/formatting and clocks.
 *
 * Every time here is UTC in the proleptic Gregorian calendar, without leap
 * seconds (unix time). Nothing reads the process timezone: the civil-date
 * conversions are computed directly (days_from_civil / civil_from_days), so
 * the results never depend on TZ, mktime or localtime.
 *
 * Range. Functions taking unix seconds first clamp them into
 * [TALLY_TIME_MIN_S, TALLY_TIME_MAX_S] (about +-31.7 million years); inside
 * that range they are exact, and no input — INT64_MIN included — overflows.
 * Text (RFC 3339 and parse_any) covers the years 0000..9999 only, i.e.
 * [TALLY_TIME_RFC3339_MIN_S, TALLY_TIME_RFC3339_MAX_S].
 *
 * All functions are pure or read only a clock: safe from any thread.
 */
#ifndef TALLY_TIMEUTIL_H
#define TALLY_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/** Lower clamp bound of unix-seconds arguments (about year -31,687,000). */
#define TALLY_TIME_MIN_S (-1000000000000000LL)
/** Upper clamp bound of unix-seconds arguments (about year 31,690,000). */
#define TALLY_TIME_MAX_S (1000000000000000LL)
/** 0000-01-01T00:00:00Z, the first second RFC 3339 text can express. */
#define TALLY_TIME_RFC3339_MIN_S (-62167219200LL)
/** 9999-12-31T23:59:59Z, the last second RFC 3339 text can express. */
#define TALLY_TIME_RFC3339_MAX_S (253402300799LL)
/** A buffer size that always fits tally__time_format_rfc3339() output. */
#define TALLY_TIME_RFC3339_LEN 32

/**
 * @brief Floor a time to the start of its hour.
 * @param unix_s unix seconds; negative values floor downwards (-1 -> -3600).
 * @return the hour's first second, unix seconds.
 */
int64_t tally__time_hour_start(int64_t unix_s);

/**
 * @brief Floor a time to 00:00:00 UTC of its day.
 * @param unix_s unix seconds; negative values floor downwards (-1 -> -86400).
 * @return the day's first second, unix seconds.
 */
int64_t tally__time_day_start(int64_t unix_s);

/**
 * @brief Floor a time to 00:00:00 UTC of the 1st of its month.
 * @param unix_s unix seconds.
 * @return the month's first second, unix seconds.
 */
int64_t tally__time_month_start(int64_t unix_s);

/**
 * @brief The start of the month following the one containing a time.
 * @param month_start_s normally a tally__time_month_start() result; any
 *        second of a month gives the same answer.
 * @return 00:00:00 UTC of the 1st of the next month (December -> January of
 *         the next year), unix seconds.
 * @note Loops `for (m = month_start(a); m < b; m = next_month(m))` terminate
 *       only for b <= TALLY_TIME_MAX_S; bound b first.
 */
int64_t tally__time_next_month(int64_t month_start_s);

/**
 * @brief Whether a year is a leap year in the proleptic Gregorian calendar.
 * @param year any year (0 and negative years follow the same 4/100/400 rule).
 * @return 1 for a leap year, 0 otherwise.
 */
int tally__time_is_leap_year(int year);

/**
 * @brief The number of days in a month.
 * @param year any year.
 * @param month 1..12.
 * @return 28..31, or 0 when month is outside 1..12.
 */
int tally__time_days_in_month(int year, int month);

/**
 * @brief Convert a UTC civil time to unix seconds.
 *
 * Fields are not validated but normalized, like arithmetic: month 13 is
 * January of the next year, day 0 the last day of the previous month, hour
 * -1 the last hour of the previous day. Use tally__time_parse_rfc3339() to
 * validate text. Any int arguments are safe (computed in 64 bits).
 *
 * @param year proleptic Gregorian year (1 BC is year 0).
 * @param mon month, 1..12 when normalized.
 * @param day day of month, 1-based when normalized.
 * @param hour hour, 0..23 when normalized.
 * @param min minute, 0..59 when normalized.
 * @param sec second, 0..59 when normalized.
 * @return unix seconds.
 */
int64_t tally__time_from_civil(int year, int mon, int day, int hour, int min, int sec);

/**
 * @brief Split unix seconds into UTC civil fields.
 * @param unix_s unix seconds, clamped into [TALLY_TIME_MIN_S, TALLY_TIME_MAX_S].
 * @param[out] year proleptic Gregorian year; each out pointer may be NULL.
 * @param[out] mon 1..12.
 * @param[out] day 1..31.
 * @param[out] hour 0..23.
 * @param[out] min 0..59.
 * @param[out] sec 0..59.
 */
void tally__time_to_civil(int64_t unix_s, int *year, int *mon, int *day, int *hour, int *min,
                          int *sec);

/**
 * @brief Parse an RFC 3339 date-time, strictly.
 *
 * Accepted: `YYYY-MM-DDTHH:MM:SS[.F...](Z|+HH:MM|-HH:MM)`, with `t` and `z`
 * also in lower case. The fraction has one or more digits; milliseconds are
 * kept and further digits truncated. "-00:00" is read as UTC. Rejected:
 * anything else — a space instead of T, missing zone, trailing or leading
 * bytes, fields of the wrong width, month 0 or 13, days the month does not
 * have (Feb 30, Feb 29 outside leap years), hour 24, minute 60, second 60
 * (unix time has no leap seconds), offsets beyond 23:59.
 *
 * @param s NUL-terminated text; borrowed for the call.
 * @param[out] out_ms unix milliseconds UTC; untouched on failure.
 * @return 0, or TALLY_EINVAL for malformed text or a NULL argument.
 */
int tally__time_parse_rfc3339(const char *s, int64_t *out_ms);

/**
 * @brief Parse a time given either as unix seconds or as RFC 3339 text.
 *
 * Unix seconds are `-?[0-9]+(\.[0-9]+)?` ("1700000000", "-1.5"); the sign
 * applies to the fraction too, milliseconds are kept and further digits
 * truncated. They must lie in the years 0000..9999 like RFC 3339 text, so a
 * millisecond timestamp passed by mistake is rejected rather than read as a
 * date 50,000 years away. Anything else is parsed by
 * tally__time_parse_rfc3339().
 *
 * @param s NUL-terminated text; borrowed for the call.
 * @param[out] out_ms unix milliseconds UTC; untouched on failure.
 * @return 0, or TALLY_EINVAL for malformed or out-of-range text or a NULL
 *         argument.
 */
int tally__time_parse_any(const char *s, int64_t *out_ms);

/**
 * @brief Format unix seconds as "YYYY-MM-DDTHH:MM:SSZ" (always 20 bytes).
 * @param unix_s unix seconds in [TALLY_TIME_RFC3339_MIN_S, TALLY_TIME_RFC3339_MAX_S].
 * @param[out] buf receives the text and a NUL; TALLY_TIME_RFC3339_LEN bytes
 *        always suffice.
 * @param cap size of buf; at least 21.
 * @return the length written (20, without the NUL), or 0 when buf is NULL,
 *         cap is below 21 or unix_s is outside the years 0000..9999; then
 *         buf holds "" if cap allows.
 */
size_t tally__time_format_rfc3339(int64_t unix_s, char *buf, size_t cap);

/**
 * @brief The wall clock (CLOCK_REALTIME) in unix milliseconds.
 * @return milliseconds since 1970-01-01T00:00:00Z; may jump when the clock is set.
 */
int64_t tally__time_now_ms(void);

/**
 * @brief The monotonic clock (CLOCK_MONOTONIC) in milliseconds.
 * @return milliseconds since an arbitrary start; never decreases. For timeouts
 *         and durations, never for timestamps.
 */
int64_t tally__time_mono_ms(void);

#endif
