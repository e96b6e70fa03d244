/* timeutil.c — UTC civil-date arithmetic, strict RFC 3339 parsing and formatting, clocks. */
#include <time.h>

#include "tally/tally.h"
#include "timeutil.h"

#define SECS_PER_DAY 86400
#define SECS_PER_HOUR 3600

/* C division truncates toward zero; times before 1970 need floor semantics
 * so that -1 s lies in the hour/day that started before the epoch. */
static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t
floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

/* Clamping keeps every later multiplication and the int year far from
 * overflow, whatever int64 a caller passes. */
static int64_t
clamp_s(int64_t s)
{
    if (s < TALLY_TIME_MIN_S)
        return TALLY_TIME_MIN_S;
    if (s > TALLY_TIME_MAX_S)
        return TALLY_TIME_MAX_S;
    return s;
}

/* Days since 1970-01-01 of y-m-d, m in 1..12, d in 1..31 (d may exceed the
 * month: the result is linear in d). Howard Hinnant's algorithm: years are
 * shifted to start in March so the leap day is the last day of the year,
 * then counted in 400-year eras of 146097 days. */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* Inverse of days_from_civil. */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int64_t
tally__time_hour_start(int64_t unix_s)
{
    unix_s = clamp_s(unix_s);
    return unix_s - floor_mod(unix_s, SECS_PER_HOUR);
}

int64_t
tally__time_day_start(int64_t unix_s)
{
    unix_s = clamp_s(unix_s);
    return unix_s - floor_mod(unix_s, SECS_PER_DAY);
}

int64_t
tally__time_month_start(int64_t unix_s)
{
    int64_t y;
    int m, d;
    civil_from_days(floor_div(clamp_s(unix_s), SECS_PER_DAY), &y, &m, &d);
    return days_from_civil(y, m, 1) * SECS_PER_DAY;
}

int64_t
tally__time_next_month(int64_t month_start_s)
{
    int64_t y;
    int m, d;
    civil_from_days(floor_div(clamp_s(month_start_s), SECS_PER_DAY), &y, &m, &d);
    if (m == 12) {
        y++;
        m = 1;
    } else {
        m++;
    }
    return days_from_civil(y, m, 1) * SECS_PER_DAY;
}

int
tally__time_is_leap_year(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int
tally__time_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    if (month == 2 && tally__time_is_leap_year(year))
        return 29;
    return days[month - 1];
}

int64_t
tally__time_from_civil(int year, int mon, int day, int hour, int min, int sec)
{
    /* Normalize the month into 1..12 first; days_from_civil is linear in the
     * day, and hours/minutes/seconds simply add. All in int64, so even
     * INT_MAX/INT_MIN fields cannot overflow (|result| < 2^57). */
    int64_t m0 = (int64_t)mon - 1;
    int64_t y = (int64_t)year + floor_div(m0, 12);
    int64_t days = days_from_civil(y, floor_mod(m0, 12) + 1, 1) + ((int64_t)day - 1);
    return days * SECS_PER_DAY + (int64_t)hour * SECS_PER_HOUR + (int64_t)min * 60 + sec;
}

void
tally__time_to_civil(int64_t unix_s, int *year, int *mon, int *day, int *hour, int *min, int *sec)
{
    unix_s = clamp_s(unix_s);
    int64_t days = floor_div(unix_s, SECS_PER_DAY);
    int64_t rem = unix_s - days * SECS_PER_DAY; /* [0, 86399] */
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (year)
        *year = (int)y; /* fits: |y| < 32 million after clamping */
    if (mon)
        *mon = m;
    if (day)
        *day = d;
    if (hour)
        *hour = (int)(rem / SECS_PER_HOUR);
    if (min)
        *min = (int)(rem % SECS_PER_HOUR / 60);
    if (sec)
        *sec = (int)(rem % 60);
}

/* ---- text ---------------------------------------------------------------- */

/* ASCII only: isdigit() depends on the locale. */
static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Read exactly n digits at p into *out. Stops at the first non-digit, so it
 * never reads past a NUL terminator. Returns 1 on success. */
static int
fixed_digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* Read ".D+" at *pp (the caller saw the dot) into milliseconds, truncating
 * digits past the third. Advances *pp past the digits. Returns 1 on success,
 * 0 when no digit follows the dot. */
static int
fraction_ms(const char **pp, int *ms)
{
    const char *p = *pp + 1;
    int v = 0, n = 0;
    if (!is_digit(*p))
        return 0;
    for (; is_digit(*p); p++, n++)
        if (n < 3)
            v = v * 10 + (*p - '0');
    for (; n < 3; n++)
        v *= 10;
    *ms = v;
    *pp = p;
    return 1;
}

int
tally__time_parse_rfc3339(const char *s, int64_t *out_ms)
{
    int year, mon, day, hour, min, sec, ms = 0;
    int64_t offset_s = 0;

    if (!s || !out_ms)
        return TALLY_EINVAL;
    /* Fixed positions: "YYYY-MM-DDTHH:MM:SS". Each check short-circuits
     * before the next index, so a short string stops at its NUL. */
    if (!fixed_digits(s, 4, &year) || s[4] != '-' || !fixed_digits(s + 5, 2, &mon) || s[7] != '-' ||
        !fixed_digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') ||
        !fixed_digits(s + 11, 2, &hour) || s[13] != ':' || !fixed_digits(s + 14, 2, &min) ||
        s[16] != ':' || !fixed_digits(s + 17, 2, &sec))
        return TALLY_EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > tally__time_days_in_month(year, mon) || hour > 23 ||
        min > 59 || sec > 59)
        return TALLY_EINVAL;

    const char *p = s + 19;
    if (*p == '.' && !fraction_ms(&p, &ms))
        return TALLY_EINVAL;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!fixed_digits(p + 1, 2, &oh) || p[3] != ':' || !fixed_digits(p + 4, 2, &om) ||
            oh > 23 || om > 59)
            return TALLY_EINVAL;
        offset_s = (int64_t)(oh * 60 + om) * 60;
        if (*p == '-')
            offset_s = -offset_s;
        p += 6;
    } else {
        return TALLY_EINVAL;
    }
    if (*p != '\0')
        return TALLY_EINVAL;

    /* Local time = UTC + offset, so UTC = local - offset. */
    int64_t utc_s = tally__time_from_civil(year, mon, day, hour, min, sec) - offset_s;
    *out_ms = utc_s * 1000 + ms;
    return 0;
}

/* Whether s looks like unix seconds: -?[0-9]+(\.[0-9]+)? and nothing else. */
static int
is_unix_form(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!is_digit(*p))
        return 0;
    while (is_digit(*p))
        p++;
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return 0;
        while (is_digit(*p))
            p++;
    }
    return *p == '\0';
}

int
tally__time_parse_any(const char *s, int64_t *out_ms)
{
    if (!s || !out_ms)
        return TALLY_EINVAL;
    if (!is_unix_form(s))
        return tally__time_parse_rfc3339(s, out_ms);

    const char *p = s;
    int neg = *p == '-';
    if (neg)
        p++;
    /* Stop accumulating once past the range: the value is rejected anyway,
     * and this keeps a 30-digit input from overflowing. */
    int64_t whole = 0;
    for (; is_digit(*p); p++) {
        whole = whole * 10 + (*p - '0');
        if (whole > TALLY_TIME_RFC3339_MAX_S + 1)
            return TALLY_EINVAL;
    }
    int ms = 0;
    if (*p == '.')
        (void)fraction_ms(&p, &ms); /* is_unix_form() saw a digit after the dot */
    int64_t v = whole * 1000 + ms;
    if (neg)
        v = -v;
    if (v < TALLY_TIME_RFC3339_MIN_S * 1000 || v > TALLY_TIME_RFC3339_MAX_S * 1000 + 999)
        return TALLY_EINVAL;
    *out_ms = v;
    return 0;
}

/* Write v as exactly n zero-padded digits; v is non-negative and fits. */
static char *
put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

size_t
tally__time_format_rfc3339(int64_t unix_s, char *buf, size_t cap)
{
    enum { LEN = 20 }; /* "YYYY-MM-DDTHH:MM:SSZ" */
    int year, mon, day, hour, min, sec;

    if (!buf)
        return 0;
    if (cap < LEN + 1 || unix_s < TALLY_TIME_RFC3339_MIN_S || unix_s > TALLY_TIME_RFC3339_MAX_S) {
        if (cap > 0)
            buf[0] = '\0';
        return 0;
    }
    tally__time_to_civil(unix_s, &year, &mon, &day, &hour, &min, &sec);
    char *p = buf;
    p = put_digits(p, year, 4);
    *p++ = '-';
    p = put_digits(p, mon, 2);
    *p++ = '-';
    p = put_digits(p, day, 2);
    *p++ = 'T';
    p = put_digits(p, hour, 2);
    *p++ = ':';
    p = put_digits(p, min, 2);
    *p++ = ':';
    p = put_digits(p, sec, 2);
    *p++ = 'Z';
    *p = '\0';
    return LEN;
}

/* ---- clocks -------------------------------------------------------------- */

static int64_t
clock_ms(clockid_t id)
{
    struct timespec ts = {0, 0};
    /* Fails only for an invalid clock id; both ids used here always exist. */
    (void)clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
tally__time_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t
tally__time_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}
