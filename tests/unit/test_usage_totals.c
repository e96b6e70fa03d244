/* test_usage_totals.c — the committed usage totals behind /metrics' tally_usage_total
 * (daemon/stats.c): pending until a commit, per (namespace, metric) over many series, exact
 * integers, floats, int64 overflow, and the cap on pairs with its dropped-events counter. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* stats.c is part of tallyd, not of libtally: compile it into the test */
#include "../../daemon/stats.c"

static tally__strtab_t *tab;

static void
setup(void)
{
    cr_assert_eq(tally__strtab_create(&tab), 0);
    tally_stats_usage_reset();
    memset(&tally_stats, 0, sizeof tally_stats);
}

static void
fini(void)
{
    tally_stats_usage_reset();
    tally__strtab_destroy(tab);
}

TestSuite(usage_totals, .init = setup, .fini = fini);

/* The series id of ns/metric with one label object=obj. */
static uint32_t
series(const char *ns, const char *metric, const char *obj)
{
    char key[TALLY_SERIES_KEY_MAX];
    tally_label_t l = {.key = "object", .value = obj};
    size_t n = tally__series_key(key, ns, strlen(ns), metric, strlen(metric), &l, obj ? 1 : 0);
    uint32_t id;
    cr_assert_geq(tally__strtab_intern(tab, key, (uint32_t)n, &id), 0);
    return id;
}

typedef struct seen {
    char ns[8][32], metric[8][32];
    tally_stats_usage_t u[8];
    int n;
} seen_t;

static void
collect(void *ctx, const tally_stats_usage_t *u)
{
    seen_t *s = ctx;
    cr_assert(s->n < 8);
    snprintf(s->ns[s->n], 32, "%s", u->ns);
    snprintf(s->metric[s->n], 32, "%s", u->metric);
    s->u[s->n++] = *u;
}

static const tally_stats_usage_t *
find(seen_t *s, const char *ns, const char *metric)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->ns[i], ns) && !strcmp(s->metric[i], metric))
            return &s->u[i];
    return NULL;
}

Test(usage_totals, pending_until_commit_and_summed_over_series)
{
    tally_stats_usage_limit(100);
    uint32_t a = series("demo", "http_requests", "a"), b = series("demo", "http_requests", "b");
    uint32_t c = series("acme", "http_requests", NULL), f = series("demo", "vcpu", NULL);
    tally_stats_usage_add(tab, a, 0, 7, 0);
    tally_stats_usage_add(tab, b, 0, 5, 0);
    tally_stats_usage_add(tab, c, 0, 3, 0);
    tally_stats_usage_add(tab, f, 1, 0, 1.25);
    seen_t s = {0};
    tally_stats_usage_each(collect, &s);
    cr_assert_eq(s.n, 3, "the pairs are known before the commit");
    cr_assert_eq(find(&s, "demo", "http_requests")->count, 0, "counted before the commit");
    tally_stats_usage_commit();
    memset(&s, 0, sizeof s);
    tally_stats_usage_each(collect, &s);
    const tally_stats_usage_t *u = find(&s, "demo", "http_requests");
    cr_assert_not_null(u);
    cr_assert_eq(u->sum_i, 12);
    cr_assert_eq(u->count, 2);
    cr_assert_eq(u->is_float, 0);
    cr_assert_eq(find(&s, "acme", "http_requests")->sum_i, 3);
    u = find(&s, "demo", "vcpu");
    cr_assert_eq(u->is_float, 1);
    cr_assert_float_eq(u->sum_f, 1.25, 1e-12);
    /* a second flush adds on */
    tally_stats_usage_add(tab, a, 0, 100, 0);
    tally_stats_usage_commit();
    memset(&s, 0, sizeof s);
    tally_stats_usage_each(collect, &s);
    cr_assert_eq(find(&s, "demo", "http_requests")->sum_i, 112);
    cr_assert_eq(TALLY_STAT_GET(usage_pairs), 3);
}

Test(usage_totals, int64_overflow_goes_on_in_double)
{
    tally_stats_usage_limit(100);
    uint32_t a = series("demo", "bytes", NULL);
    tally_stats_usage_add(tab, a, 0, INT64_MAX, 0);
    tally_stats_usage_commit();
    tally_stats_usage_add(tab, a, 0, INT64_MAX, 0);
    tally_stats_usage_commit();
    seen_t s = {0};
    tally_stats_usage_each(collect, &s);
    const tally_stats_usage_t *u = find(&s, "demo", "bytes");
    cr_assert_eq(u->is_float, 1);
    cr_assert_float_eq((double)u->sum_i + u->sum_f, 2.0 * (double)INT64_MAX, 1e4);
    cr_assert_eq(u->count, 2);
}

Test(usage_totals, pairs_past_the_cap_are_counted_as_dropped)
{
    tally_stats_usage_limit(2);
    uint32_t a = series("n1", "m", NULL), b = series("n2", "m", NULL), c = series("n3", "m", "x");
    uint32_t c2 = series("n3", "m", "y");
    tally_stats_usage_add(tab, a, 0, 1, 0);
    tally_stats_usage_add(tab, b, 0, 1, 0);
    tally_stats_usage_add(tab, c, 0, 1, 0);
    tally_stats_usage_add(tab, c2, 0, 1, 0);
    tally_stats_usage_add(tab, c, 0, 1, 0);
    cr_assert_eq(TALLY_STAT_GET(usage_dropped_events), 0, "dropped counted before the commit");
    tally_stats_usage_commit();
    cr_assert_eq(TALLY_STAT_GET(usage_dropped_events), 3);
    cr_assert_eq(TALLY_STAT_GET(usage_pairs), 2);
    seen_t s = {0};
    tally_stats_usage_each(collect, &s);
    cr_assert_eq(s.n, 2);
    cr_assert_null(find(&s, "n3", "m"));
    /* many series of the tracked pairs: no new pair, no drop */
    for (int i = 0; i < 5000; i++) {
        char obj[16];
        snprintf(obj, sizeof obj, "o%d", i);
        tally_stats_usage_add(tab, series("n1", "m", obj), 0, 2, 0);
    }
    tally_stats_usage_commit();
    memset(&s, 0, sizeof s);
    tally_stats_usage_each(collect, &s);
    cr_assert_eq(find(&s, "n1", "m")->sum_i, 10001);
    cr_assert_eq(TALLY_STAT_GET(usage_dropped_events), 3);
}
