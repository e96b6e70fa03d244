/* prom.c — Prometheus text exposition builder (prom.h), and the standard process metrics. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "prom.h"

void
tally_prom_init(tally_prom_t *p)
{
    memset(p, 0, sizeof *p);
    /* 16 KiB holds a whole exposition of a busy daemon without per-namespace series (about 15 KiB), so a
     * scrape allocates once. */
    tally__buf_reserve(p, 16383);
}

static inline void
put(tally_prom_t *p, const char *s, size_t n)
{
    tally_prom_raw(p, s, n);
}

static inline void
puts_(tally_prom_t *p, const char *s)
{
    put(p, s, strlen(s));
}

void
tally_prom_family(tally_prom_t *p, const char *name, const char *type, const char *help)
{
    puts_(p, "# HELP ");
    puts_(p, name);
    put(p, " ", 1);
    puts_(p, help);
    puts_(p, "\n# TYPE ");
    puts_(p, name);
    put(p, " ", 1);
    puts_(p, type);
    put(p, "\n", 1);
}

static void
head(tally_prom_t *p, const char *name, const char *k1, const char *v1, const char *k2,
     const char *v2)
{
    puts_(p, name);
    if (k1) {
        put(p, "{", 1);
        puts_(p, k1);
        put(p, "=\"", 2);
        puts_(p, v1);
        put(p, "\"", 1);
        if (k2) {
            put(p, ",", 1);
            puts_(p, k2);
            put(p, "=\"", 2);
            puts_(p, v2);
            put(p, "\"", 1);
        }
        put(p, "}", 1);
    }
    put(p, " ", 1);
}

/* Decimal digits of v ending at end (exclusive); returns the start. Two
 * digits per division: a scrape formats a hundred values or so. */
static char *
u64_digits(char *end, uint64_t v)
{
    static const char pairs[201] = "00010203040506070809"
                                   "10111213141516171819"
                                   "20212223242526272829"
                                   "30313233343536373839"
                                   "40414243444546474849"
                                   "50515253545556575859"
                                   "60616263646566676869"
                                   "70717273747576777879"
                                   "80818283848586878889"
                                   "90919293949596979899";
    char *s = end;
    while (v >= 100) {
        unsigned i = (unsigned)(v % 100) * 2;
        v /= 100;
        *--s = pairs[i + 1];
        *--s = pairs[i];
    }
    if (v >= 10) {
        *--s = pairs[v * 2 + 1];
        *--s = pairs[v * 2];
    } else {
        *--s = (char)('0' + v);
    }
    return s;
}

void
tally_prom_end_u64(tally_prom_t *p, uint64_t v)
{
    char buf[24], *e = buf + sizeof buf;
    e[-1] = '\n';
    char *s = u64_digits(e - 1, v);
    put(p, s, (size_t)(e - s));
}

void
tally_prom_end_fixed(tally_prom_t *p, uint64_t units, unsigned decimals)
{
    /* 20 integer digits, a point, 19 decimals and the newline */
    char buf[48], *e = buf + sizeof buf, *s = e - 1;
    *s = '\n';
    if (decimals > 19)
        decimals = 19;
    /* written from the least significant digit up, so trailing zeros of the
     * fraction are simply not written */
    int any = 0;
    for (unsigned i = 0; i < decimals; i++) {
        char d = (char)('0' + units % 10);
        units /= 10;
        if (d != '0' || any) {
            *--s = d;
            any = 1;
        }
    }
    if (any)
        *--s = '.';
    s = u64_digits(s, units);
    put(p, s, (size_t)(e - s));
}

void
tally_prom_u64(tally_prom_t *p, const char *name, const char *k1, const char *v1, const char *k2,
               const char *v2, uint64_t v)
{
    head(p, name, k1, v1, k2, v2);
    tally_prom_end_u64(p, v);
}

/* 10^0 .. 10^27: exact in a long double of 64 or more mantissa bits (x86-64's
 * x87 format; 5^27 < 2^64), so scaling by one of them rounds once. */
static const long double p10[28] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,
                                    1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
                                    1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L,
                                    1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};

/* v as printf("%.9g") would write it, into buf (at least 32 bytes); returns
 * the length, or 0 when v is out of the range handled here (the caller then
 * uses snprintf). The nine significant digits come from one rounding
 * (rintl: to nearest, ties to even, as glibc's printf) of v scaled by an
 * exact power of ten in 64-bit precision, so they match printf's correctly
 * rounded digits unless v lies within about 1e-19 (relative) of a rounding
 * boundary. (Where long double is only a double, the last digit may rarely
 * differ from printf's; either is a valid sample value.) It costs a few hundred instructions
 * against printf's several thousand, and a scrape writes a ratio per quota limit. */
static size_t
format_g9(char *buf, double v)
{
    static const double lo = 1e-15, hi = 1e15;
    double a = v < 0 ? -v : v;
    if (!(a >= lo && a < hi))
        return 0; /* 0, NaN, infinities and extreme magnitudes */
    /* the decimal exponent: a first guess, corrected below if the rounded
     * digits come out one too many or too few */
    int e = 0;
    if (a >= 1)
        while (e < 14 && (long double)a >= p10[e + 1])
            e++;
    else
        while (e > -15 && (long double)a * p10[-e] < 1)
            e--;
    long double m = 0;
    for (int tries = 0; tries < 3; tries++) {
        int k = 8 - e;
        m = rintl(k >= 0 ? (long double)a * p10[k] : (long double)a / p10[-k]);
        if (m >= 1e9L)
            e++;
        else if (m < 1e8L)
            e--;
        else
            break;
    }
    if (!(m >= 1e8L && m < 1e9L))
        return 0;
    char d[9];
    uint64_t mi = (uint64_t)m;
    for (int i = 8; i >= 0; i--, mi /= 10)
        d[i] = (char)('0' + mi % 10);
    int nd = 9;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    char *p = buf;
    if (v < 0)
        *p++ = '-';
    if (e >= -4 && e < 9) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++)
                *p++ = i < nd ? d[i] : '0';
            if (nd > e + 1) {
                *p++ = '.';
                for (int i = e + 1; i < nd; i++)
                    *p++ = d[i];
            }
        } else {
            *p++ = '0';
            *p++ = '.';
            for (int i = 0; i < -e - 1; i++)
                *p++ = '0';
            for (int i = 0; i < nd; i++)
                *p++ = d[i];
        }
    } else {
        *p++ = d[0];
        if (nd > 1) {
            *p++ = '.';
            for (int i = 1; i < nd; i++)
                *p++ = d[i];
        }
        *p++ = 'e';
        *p++ = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        *p++ = (char)('0' + ae / 10);
        *p++ = (char)('0' + ae % 10);
    }
    return (size_t)(p - buf);
}

void
tally_prom_double(tally_prom_t *p, const char *name, const char *k1, const char *v1, const char *k2,
                  const char *v2, double v)
{
    head(p, name, k1, v1, k2, v2);
    tally_prom_end_double(p, v);
}

void
tally_prom_end_double(tally_prom_t *p, double v)
{
    char buf[48];
    /* the exposition format spells these so; printf would write "nan", "inf" */
    if (isnan(v)) {
        put(p, "NaN\n", 4);
        return;
    }
    if (isinf(v)) {
        put(p, v > 0 ? "+Inf\n" : "-Inf\n", 5);
        return;
    }
    /* range first: converting an out-of-range double to int64_t is undefined */
    if (v > -9.2e18 && v < 9.2e18 && v == (double)(int64_t)v) {
        /* whole numbers (most gauges) without printf's float machinery */
        int64_t iv = (int64_t)v;
        char *e = buf + sizeof buf;
        e[-1] = '\n';
        char *s = u64_digits(e - 1, iv < 0 ? (uint64_t)0 - (uint64_t)iv : (uint64_t)iv);
        if (iv < 0)
            *--s = '-';
        put(p, s, (size_t)(e - s));
        return;
    }
    size_t n = format_g9(buf, v);
    if (n) {
        buf[n++] = '\n';
        put(p, buf, n);
        return;
    }
    int w = snprintf(buf, sizeof buf, "%.9g\n", v);
    put(p, buf, (size_t)w);
}

char *
tally_prom_take(tally_prom_t *p, size_t *len)
{
    return tally__buf_take(p, len);
}

void
tally_prom_label_value(tally_prom_t *p, const char *v)
{
    const char *run = v;
    for (; *v; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        put(p, run, (size_t)(v - run));
        put(p, esc, 2);
        run = v + 1;
    }
    put(p, run, (size_t)(v - run));
}

/* Read a small file whole into buf (NUL-terminated); its length or -1. */
static ssize_t
slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* Seconds since the epoch at boot (btime of <proc>/../stat); -1 unknown. */
static int64_t
boot_time(const char *proc)
{
    char path[PATH_MAX], buf[8192];
    snprintf(path, sizeof path, "%s/../stat", proc);
    if (slurp(path, buf, sizeof buf) < 0)
        return -1;
    const char *b = strstr(buf, "\nbtime ");
    return b ? strtoll(b + 7, NULL, 10) : -1;
}

/* Open descriptors: Linux 6.2 and later give the count as the size of
 * <proc>/fd (no directory walk, whatever the count); older kernels and
 * copies are walked, not counting the walk's own descriptor. */
static int64_t
open_fds(const char *proc)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fd", proc);
    struct stat st;
    struct statfs fs;
    if (stat(path, &st) != 0)
        return -1;
    if (st.st_size > 0 && statfs(path, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC)
        return st.st_size;
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int64_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return strcmp(proc, "/proc/self") == 0 && n > 0 ? n - 1 : n;
}

void
tally_prom_process(tally_prom_t *p, const char *proc)
{
    char path[PATH_MAX], buf[1024];
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    snprintf(path, sizeof path, "%s/stat", proc);
    /* fields after the command name, which is in parentheses and may hold
     * blanks and parentheses itself: hence the last ')' */
    const char *rp = slurp(path, buf, sizeof buf) > 0 ? strrchr(buf, ')') : NULL;
    unsigned long long utime, stime, start, vsize;
    long long rss;
    if (rp && ticks > 0 && page > 0 &&
        sscanf(rp + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &utime, &stime, &start, &vsize, &rss) == 5) {
        TALLY_PROM_RAW(p, "# HELP process_cpu_seconds_total Total user and system CPU time spent "
                          "in seconds.\n# TYPE process_cpu_seconds_total counter\n"
                          "process_cpu_seconds_total ");
        tally_prom_end_fixed(p, (utime + stime) * 1000ull / (unsigned long long)ticks, 3);
        TALLY_PROM_RAW(p, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                          "# TYPE process_virtual_memory_bytes gauge\n"
                          "process_virtual_memory_bytes ");
        tally_prom_end_u64(p, vsize);
        TALLY_PROM_RAW(p, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                          "# TYPE process_resident_memory_bytes gauge\n"
                          "process_resident_memory_bytes ");
        tally_prom_end_u64(p, rss > 0 ? (uint64_t)rss * (uint64_t)page : 0);
        /* the boot time does not change: /proc/stat (costly to render, a
         * line per CPU) is read once per proc directory */
        static char boot_of[PATH_MAX];
        static int64_t boot_cached = -1;
        if (strcmp(boot_of, proc) != 0) {
            boot_cached = boot_time(proc);
            snprintf(boot_of, sizeof boot_of, "%s", proc);
        }
        int64_t boot = boot_cached;
        if (boot >= 0) {
            TALLY_PROM_RAW(p, "# HELP process_start_time_seconds Start time of the process "
                              "since unix epoch in seconds.\n"
                              "# TYPE process_start_time_seconds gauge\n"
                              "process_start_time_seconds ");
            tally_prom_end_fixed(p,
                                 (uint64_t)boot * 1000u + start * 1000ull /
                                                              (unsigned long long)ticks,
                                 3);
        }
    }
    int64_t fds = open_fds(proc);
    if (fds >= 0) {
        TALLY_PROM_RAW(p, "# HELP process_open_fds Number of open file descriptors.\n"
                          "# TYPE process_open_fds gauge\nprocess_open_fds ");
        tally_prom_end_u64(p, (uint64_t)fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        TALLY_PROM_RAW(p, "# HELP process_max_fds Maximum number of open file descriptors.\n"
                          "# TYPE process_max_fds gauge\nprocess_max_fds ");
        tally_prom_end_u64(p, rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur);
    }
}
