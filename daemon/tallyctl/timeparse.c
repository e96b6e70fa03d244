/* timeparse.c — parse the times a person types to tallyctl (see timeparse.h). */
#include "timeparse.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "tally/tally.h"
#include "timeutil.h"

#define DAY_MS (86400LL * 1000)

/* n digits at s, as a number; -1 when one of them is not a digit */
static int
digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* YYYY-MM or YYYY-MM-DD: the period's start, or the start of the next one */
static int
parse_calendar(const char *s, int end, int64_t *out_ms)
{
    size_t len = strlen(s);
    if ((len != 7 && len != 10) || s[4] != '-')
        return TALLY_EINVAL;
    int year = digits(s, 4), mon = digits(s + 5, 2);
    if (year < 0 || mon < 1 || mon > 12)
        return TALLY_EINVAL;
    int64_t start_s, next_s;
    if (len == 7) {
        start_s = tally__time_from_civil(year, mon, 1, 0, 0, 0);
        next_s = tally__time_from_civil(year, mon + 1, 1, 0, 0, 0);
    } else {
        int day = s[7] == '-' ? digits(s + 8, 2) : -1;
        if (day < 1 || day > tally__time_days_in_month(year, mon))
            return TALLY_EINVAL;
        start_s = tally__time_from_civil(year, mon, day, 0, 0, 0);
        next_s = start_s + 86400;
    }
    *out_ms = (end ? next_s : start_s) * 1000;
    return 0;
}

/* -N[smhdw] or +N[smhdw] from now */
static int
parse_offset(const char *s, int64_t now_ms, int64_t *out_ms)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {
        {'s', 1000}, {'m', 60 * 1000}, {'h', 3600 * 1000}, {'d', DAY_MS}, {'w', 7 * DAY_MS}};
    size_t len = strlen(s);
    /* at most 9 digits: 999999999 weeks still fits int64 milliseconds */
    if (len < 3 || len > 11 || (s[0] != '-' && s[0] != '+'))
        return TALLY_EINVAL;
    int64_t n = 0;
    for (size_t i = 1; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TALLY_EINVAL;
        n = n * 10 + (s[i] - '0');
    }
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (s[len - 1] == units[u].unit) {
            *out_ms = s[0] == '-' ? now_ms - n * units[u].ms : now_ms + n * units[u].ms;
            return 0;
        }
    }
    return TALLY_EINVAL;
}

int
ctl_time_parse(const char *s, int64_t now_ms, int end, int64_t *out_ms)
{
    if (s == NULL || out_ms == NULL || *s == '\0')
        return TALLY_EINVAL;
    size_t len = strlen(s);
    int64_t ms, today_ms = (now_ms >= 0 ? now_ms : now_ms - DAY_MS + 1) / DAY_MS * DAY_MS;
    int rc;
    if (strcasecmp(s, "now") == 0) {
        ms = now_ms;
        rc = 0;
    } else if (strcasecmp(s, "today") == 0) {
        ms = end ? today_ms + DAY_MS : today_ms;
        rc = 0;
    } else if (strcasecmp(s, "yesterday") == 0) {
        ms = end ? today_ms : today_ms - DAY_MS;
        rc = 0;
    } else if (s[0] == '-' || s[0] == '+') {
        /* "-24" is refused rather than read as 24 s before 1970: whoever
         * types it meant an offset and forgot the unit */
        rc = parse_offset(s, now_ms, &ms);
    } else if ((len == 7 || len == 10) && s[4] == '-') {
        rc = parse_calendar(s, end, &ms);
    } else {
        rc = tally__time_parse_any(s, &ms);
    }
    if (rc != 0)
        return TALLY_EINVAL;
    /* the years 0000..9999: what RFC 3339 can write back */
    if (ms < tally__time_from_civil(0, 1, 1, 0, 0, 0) * 1000 ||
        ms >= tally__time_from_civil(10000, 1, 1, 0, 0, 0) * 1000)
        return TALLY_EINVAL;
    *out_ms = ms;
    return 0;
}
