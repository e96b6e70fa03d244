/* test_prom.c — the Prometheus text builder of /metrics: integer, fixed-point and "%.9g" values
 * written without printf, checked against printf. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* prom.c is part of the engine (lib/base), linked like every other module */
#include "prom.h"

/* The value written after "x " by fn, without the newline (static buffer). */
static const char *
value_of(tally_prom_t *p)
{
    static char out[128];
    size_t len;
    char *s = tally_prom_take(p, &len);
    cr_assert_not_null(s);
    cr_assert_eq(strlen(s), len);
    cr_assert(len >= 3 && s[len - 1] == '\n', "line: %s", s);
    cr_assert(strncmp(s, "x ", 2) == 0, "line: %s", s);
    snprintf(out, sizeof out, "%.*s", (int)(len - 3), s + 2);
    free(s);
    return out;
}

static const char *
as_double(double v)
{
    tally_prom_t p;
    tally_prom_init(&p);
    tally_prom_double(&p, "x", NULL, NULL, NULL, NULL, v);
    return value_of(&p);
}

static const char *
as_fixed(uint64_t units, unsigned decimals)
{
    tally_prom_t p;
    tally_prom_init(&p);
    TALLY_PROM_RAW(&p, "x ");
    tally_prom_end_fixed(&p, units, decimals);
    return value_of(&p);
}

static const char *
as_u64(uint64_t v)
{
    tally_prom_t p;
    tally_prom_init(&p);
    TALLY_PROM_RAW(&p, "x ");
    tally_prom_end_u64(&p, v);
    return value_of(&p);
}

/* As printf("%.9g"), except that whole numbers keep every digit (a counter
 * shown as a gauge must not lose its last ones). */
static void
expect_printf(double v)
{
    char want[64];
    if (v == trunc(v) && fabs(v) < 9.2e18)
        snprintf(want, sizeof want, "%.0f", v);
    else
        snprintf(want, sizeof want, "%.9g", v);
    const char *got = as_double(v);
    cr_assert_str_eq(got, want, "%.17g: got %s, printf %s", v, got, want);
}

Test(prom, integers_have_every_digit)
{
    cr_assert_str_eq(as_u64(0), "0");
    cr_assert_str_eq(as_u64(7), "7");
    cr_assert_str_eq(as_u64(10), "10");
    cr_assert_str_eq(as_u64(99), "99");
    cr_assert_str_eq(as_u64(100), "100");
    cr_assert_str_eq(as_u64(1073741824), "1073741824");
    cr_assert_str_eq(as_u64(UINT64_MAX), "18446744073709551615");
    char want[32];
    for (uint64_t v = 1; v < UINT64_MAX / 3; v = v * 3 + 1) {
        snprintf(want, sizeof want, "%llu", (unsigned long long)v);
        cr_assert_str_eq(as_u64(v), want);
    }
}

Test(prom, fixed_point_is_exact_without_trailing_zeros)
{
    cr_assert_str_eq(as_fixed(0, 6), "0");
    cr_assert_str_eq(as_fixed(1500, 6), "0.0015");
    cr_assert_str_eq(as_fixed(2000, 3), "2");
    cr_assert_str_eq(as_fixed(1124, 3), "1.124");
    cr_assert_str_eq(as_fixed(228843, 9), "0.000228843");
    cr_assert_str_eq(as_fixed(788774458, 9), "0.788774458");
    cr_assert_str_eq(as_fixed(12345000000000ull, 9), "12345");
    cr_assert_str_eq(as_fixed(42, 0), "42");
    cr_assert_str_eq(as_fixed(UINT64_MAX, 19), "1.8446744073709551615");
}

Test(prom, doubles_match_printf_g9)
{
    static const double known[] = {
        1.06,          0.00621,    6.21e-07,  2.5,         0.1725,      12345678.25, 9.9999999995,
        0.99999999995, 1e-4,       1e-5,      0.0001234,   123456789.5, 1e15 - 0.5,  1e-15,
        3.0e-15,       0.1,        0.2,       0.3,         1.0 / 3,     2.0 / 3,     M_PI,
        -M_PI,         -0.5,       1e9 + 0.5, 99999999.95, 999999999.5, 4.35,        0.000999999999,
        1.5e-10,       7.0 / 1024,
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        expect_printf(known[i]);
    /* random mantissas over every decade the fast path takes, and past both
     * ends (where it hands over to snprintf) */
    srand(12345);
    for (int i = 0; i < 200000; i++) {
        double m = (double)rand() / RAND_MAX + (double)rand() / RAND_MAX / RAND_MAX;
        int e = rand() % 44 - 22;
        double v = m * pow(10, e);
        if (rand() % 4 == 0)
            v = -v;
        expect_printf(v);
    }
    /* short decimals, as ratios of small integers produce */
    for (int n = 1; n < 2000; n++)
        for (int d = 1; d < 200; d += 7)
            expect_printf((double)n / d);
}

Test(prom, whole_and_special_doubles)
{
    cr_assert_str_eq(as_double(0), "0");
    cr_assert_str_eq(as_double(-3), "-3");
    cr_assert_str_eq(as_double(1e15), "1000000000000000");
    cr_assert_str_eq(as_double(NAN), "NaN");
    cr_assert_str_eq(as_double(INFINITY), "+Inf");
    cr_assert_str_eq(as_double(-INFINITY), "-Inf");
    expect_printf(DBL_MAX);
    expect_printf(DBL_MIN);
    expect_printf(1e300 / 7);
}

Test(prom, labels_and_family_lines)
{
    tally_prom_t p;
    tally_prom_init(&p);
    tally_prom_family(&p, "m_total", "counter", "Things.");
    tally_prom_u64(&p, "m_total", "route", "a", "code", "200", 3);
    tally_prom_double(&p, "r", "ns", "x", NULL, NULL, 0.5);
    size_t len;
    char *s = tally_prom_take(&p, &len);
    cr_assert_str_eq(s, "# HELP m_total Things.\n# TYPE m_total counter\n"
                        "m_total{route=\"a\",code=\"200\"} 3\nr{ns=\"x\"} 0.5\n");
    free(s);
}

Test(prom, grows_past_the_first_buffer)
{
    tally_prom_t p;
    tally_prom_init(&p);
    for (int i = 0; i < 5000; i++) {
        TALLY_PROM_RAW(&p, "tally_some_metric_with_a_long_name_total ");
        tally_prom_end_u64(&p, (uint64_t)i);
    }
    size_t len;
    char *s = tally_prom_take(&p, &len);
    cr_assert_not_null(s);
    cr_assert_gt(len, 16384u * 4);
    cr_assert_eq(strlen(s), len);
    cr_assert(strstr(s, "tally_some_metric_with_a_long_name_total 4999\n") != NULL);
    free(s);
}

/* ---- label values and the process metrics ------------------------------------------------- */

Test(prom, label_values_are_escaped)
{
    tally_prom_t p;
    tally_prom_init(&p);
    tally_prom_label_value(&p, "a\\b\"c\nd");
    tally_prom_label_value(&p, "");
    tally_prom_label_value(&p, "plain");
    char *s = tally_prom_take(&p, NULL);
    cr_assert_str_eq(s, "a\\\\b\\\"c\\ndplain");
    free(s);
}

/* A copy of /proc/<pid>/stat with a command name holding ") " and known figures. */
static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(prom, process_metrics_from_a_proc_copy)
{
    char root[] = "/tmp/tally-proc-XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    char dir[128], path[256];
    snprintf(dir, sizeof dir, "%s/self", root);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/stat", root);
    write_file(path, "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n");
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    /* utime 250 ticks, stime 50, starttime 12345 ticks, vsize 1 GiB, rss 1000 pages */
    snprintf(path, sizeof path, "%s/stat", dir);
    write_file(path, "4242 (tal) ly d) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 "
                     "12345 1073741824 1000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 "
                     "0 0 0\n");
    snprintf(path, sizeof path, "%s/fd", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    for (int i = 0; i < 3; i++) {
        char fd[300];
        snprintf(fd, sizeof fd, "%s/%d", path, i);
        write_file(fd, "");
    }
    tally_prom_t p;
    tally_prom_init(&p);
    tally_prom_process(&p, dir);
    char *s = tally_prom_take(&p, NULL);
    cr_assert_not_null(s);
    char want[256];
    snprintf(want, sizeof want, "\nprocess_cpu_seconds_total %g\n", 300.0 / (double)ticks);
    cr_assert(strstr(s, want), "no %s in:\n%s", want + 1, s);
    cr_assert(strstr(s, "\nprocess_virtual_memory_bytes 1073741824\n"), "%s", s);
    snprintf(want, sizeof want, "\nprocess_resident_memory_bytes %ld\n", 1000 * page);
    cr_assert(strstr(s, want), "no %s in:\n%s", want + 1, s);
    snprintf(want, sizeof want, "\nprocess_start_time_seconds %.2f", 1700000000 + 12345.0 / ticks);
    cr_assert(strstr(s, want), "no %s in:\n%s", want + 1, s);
    /* a copied directory has a size that is not a count: the entries are counted */
    cr_assert(strstr(s, "\nprocess_open_fds 3\n"), "%s", s);
    cr_assert(strstr(s, "# TYPE process_cpu_seconds_total counter\n"), "%s", s);
    cr_assert(strstr(s, "\nprocess_max_fds "), "%s", s);
    free(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
}

Test(prom, process_metrics_without_proc_are_left_out)
{
    tally_prom_t p;
    tally_prom_init(&p);
    tally_prom_process(&p, "/nonexistent/self");
    char *s = tally_prom_take(&p, NULL);
    cr_assert_not_null(s);
    /* what /proc would give is absent, not 0; the descriptor limit stays */
    cr_assert(!strstr(s, "process_cpu_seconds_total"), "%s", s);
    cr_assert(!strstr(s, "process_open_fds"), "%s", s);
    cr_assert(strstr(s, "process_max_fds "), "%s", s);
    free(s);
}

Test(prom, process_metrics_of_this_process)
{
    tally_prom_t p;
    tally_prom_init(&p);
    tally_prom_process(&p, "/proc/self");
    char *s = tally_prom_take(&p, NULL);
    cr_assert_not_null(s);
    const char *names[] = {"process_cpu_seconds_total",     "process_virtual_memory_bytes",
                           "process_resident_memory_bytes", "process_start_time_seconds",
                           "process_open_fds",              "process_max_fds"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[80];
        snprintf(want, sizeof want, "\n%s ", names[i]);
        cr_assert(strstr(s, want), "no %s in:\n%s", names[i], s);
    }
    free(s);
}
