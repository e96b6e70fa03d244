/* fmt.c — human units for tallyctl's tables (see fmt.h). */
#include "fmt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Copy the number text in, with a ',' between groups of three digits of its
 * integer part; in is "-?[0-9]+(\.[0-9]+)?" */
static char *
group(const char *in, char *buf, size_t cap)
{
    char tmp[CTL_FMT_LEN * 2];
    size_t o = 0;
    const char *p = in;
    if (*p == '-')
        tmp[o++] = *p++;
    size_t ndig = strspn(p, "0123456789");
    for (size_t i = 0; i < ndig && o + 2 < sizeof tmp; i++) {
        if (i > 0 && (ndig - i) % 3 == 0)
            tmp[o++] = ',';
        tmp[o++] = p[i];
    }
    snprintf(tmp + o, sizeof tmp - o, "%s", p + ndig);
    snprintf(buf, cap, "%s", tmp);
    return buf;
}

char *
ctl_fmt_count(double v, char *buf, size_t cap)
{
    char raw[CTL_FMT_LEN];
    if (!isfinite(v) || fabs(v) >= 1e18) {
        snprintf(buf, cap, "%g", v);
        return buf;
    }
    if (v == floor(v)) {
        snprintf(raw, sizeof raw, "%.0f", v);
    } else {
        snprintf(raw, sizeof raw, "%.3f", v);
        size_t n = strlen(raw);
        while (n > 0 && raw[n - 1] == '0')
            raw[--n] = '\0';
        if (n > 0 && raw[n - 1] == '.')
            raw[--n] = '\0';
        if (strcmp(raw, "-0") == 0)
            snprintf(raw, sizeof raw, "0");
    }
    return group(raw, buf, cap);
}

char *
ctl_fmt_bytes(double v, char *buf, size_t cap)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (!isfinite(v)) {
        snprintf(buf, cap, "%g B", v);
        return buf;
    }
    if (fabs(v) < 1024) {
        char n[CTL_FMT_LEN];
        snprintf(buf, cap, "%s B", ctl_fmt_count(v, n, sizeof n));
        return buf;
    }
    double x = v / 1024;
    size_t u = 0;
    while (fabs(x) >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        x /= 1024;
        u++;
    }
    /* 3 significant digits; round first so 9.999 KiB does not print "10.00" */
    double ax = fabs(x);
    int decimals = ax < 9.995 ? 2 : ax < 99.95 ? 1 : 0;
    if (ax >= 1024) { /* beyond PiB: keep the unit, group the digits */
        char raw[CTL_FMT_LEN], n[CTL_FMT_LEN];
        snprintf(raw, sizeof raw, "%.0f", x);
        snprintf(buf, cap, "%s %s", group(raw, n, sizeof n), units[u]);
        return buf;
    }
    snprintf(buf, cap, "%.*f %s", decimals, x, units[u]);
    return buf;
}

char *
ctl_fmt_seconds(double v, char *buf, size_t cap)
{
    char raw[CTL_FMT_LEN], n[CTL_FMT_LEN];
    if (!isfinite(v)) {
        snprintf(buf, cap, "%g s", v);
    } else if (fabs(v) < 60) {
        snprintf(buf, cap, "%s s", ctl_fmt_count(v, n, sizeof n));
    } else if (fabs(v) < 3600) {
        snprintf(buf, cap, "%.1f min", v / 60);
    } else if (fabs(v) / 3600 >= 1e15) {
        snprintf(buf, cap, "%g h", v / 3600);
    } else {
        snprintf(raw, sizeof raw, "%.1f", v / 3600);
        snprintf(buf, cap, "%s h", group(raw, n, sizeof n));
    }
    return buf;
}

char *
ctl_fmt_unit(const char *unit, double v, char *buf, size_t cap)
{
    if (unit && (strcmp(unit, "bytes") == 0 || strcmp(unit, "byte") == 0 || strcmp(unit, "B") == 0))
        return ctl_fmt_bytes(v, buf, cap);
    if (unit &&
        (strcmp(unit, "seconds") == 0 || strcmp(unit, "second") == 0 || strcmp(unit, "s") == 0))
        return ctl_fmt_seconds(v, buf, cap);
    return ctl_fmt_count(v, buf, cap);
}
