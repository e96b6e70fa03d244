/* test_usage.c — Criterion tests of lib/usage: windows, quantities, grouping, summaries. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "catalog.h"
#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "usage.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)
#define HOUR 3600LL
#define T0 1709247600LL /* 2024-02-29T23:00:00Z */

/* ---- fixture: a temp store and a small catalog -------------------------------------------- */

static char dir[64];
static tally__store_t *store;
static tally__catalog_t *cat;

static const char catalog_text[] = "[http_requests]\n"
                                   "usage_type = HTTP Requests\n"
                                   "unit = requests\n"
                                   "aggregation = sum\n"
                                   "billable_unit = million requests\n"
                                   "division_factor = 1000000\n"
                                   "[https_requests]\n"
                                   "usage_type = HTTP Requests\n"
                                   "unit = requests\n"
                                   "billable_unit = million requests\n"
                                   "division_factor = 1000000\n"
                                   "[lb_count]\n"
                                   "usage_type = Load Balancers\n"
                                   "unit = objects\n"
                                   "aggregation = last\n"
                                   "billable_unit = object-hours\n"
                                   "[waf_events]\n"
                                   "usage_type = WAF\n"
                                   "unit = events\n"
                                   "aggregation = count\n"
                                   "billable_unit = thousand events\n"
                                   "division_factor = 1000\n"
                                   "[active_sites]\n"
                                   "usage_type = Sites\n"
                                   "unit = sites\n"
                                   "aggregation = max\n"
                                   "[vcpu_seconds]\n"
                                   "usage_type = vCPU\n"
                                   "unit = seconds\n"
                                   "billable_unit = vCPU-hours\n"
                                   "division_factor = 3600\n"
                                   "[vcpu_ms]\n"
                                   "usage_type = vCPU\n"
                                   "unit = seconds\n"
                                   "billable_unit = vCPU-hours\n"
                                   "division_factor = 3600000\n";

static void
setup(void)
{
    testdir_make(dir, sizeof dir, "usage");
    char path[128], sdir[128], err[256];
    snprintf(path, sizeof path, "%s/metrics.ini", dir);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs(catalog_text, fp);
    fclose(fp);
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    cr_assert_eq(tally__store_open(sdir, 64 * MiB, 0, &store), 0);
}

static void
teardown(void)
{
    tally__store_close(store);
    store = NULL;
    tally__catalog_destroy(cat);
    cat = NULL;
    testdir_remove(dir);
}

TestSuite(usage, .init = setup, .fini = teardown);

/*
 * Commit one hourly record of (ns, metric, labels "k=v,k=v") at hour `hour`
 * (offset from T0 in hours) holding the integer values vals[0..n), the i-th
 * stamped i seconds into the hour.
 */
static void
put(const char *ns, const char *metric, const char *labels, int hour, const int64_t *vals, size_t n)
{
    tally_label_t lab[TALLY_MAX_LABELS];
    char buf[512];
    size_t nl = 0;
    if (labels) {
        snprintf(buf, sizeof buf, "%s", labels);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(t, '=');
            cr_assert_not_null(eq);
            *eq = '\0';
            lab[nl].key = t;
            lab[nl].value = eq + 1;
            nl++;
        }
    }
    char key[TALLY_SERIES_KEY_MAX];
    size_t klen = tally__series_key(key, ns, strlen(ns), metric, strlen(metric), lab, nl);
    int64_t period = T0 + hour * HOUR;
    tally__rollup_t r;
    tally__rollup_init(&r);
    for (size_t i = 0; i < n; i++)
        tally__rollup_add(&r, 0, vals[i], 0.0, (period + (int64_t)i) * 1000);
    tally__store_put_t p = {key, (uint32_t)klen, period, &r};
    cr_assert_eq(tally__store_commit(store, &p, 1, NULL, 0, NULL, 0), 0);
}

static void
put_float(const char *ns, const char *metric, const char *labels, int hour, double v)
{
    char key[TALLY_SERIES_KEY_MAX];
    tally_label_t lab[1];
    size_t nl = 0;
    char k[64], val[64];
    if (labels) {
        sscanf(labels, "%63[^=]=%63s", k, val);
        lab[0].key = k;
        lab[0].value = val;
        nl = 1;
    }
    size_t klen = tally__series_key(key, ns, strlen(ns), metric, strlen(metric), lab, nl);
    int64_t period = T0 + hour * HOUR;
    tally__rollup_t r;
    tally__rollup_init(&r);
    tally__rollup_add(&r, 1, 0, v, period * 1000);
    tally__store_put_t p = {key, (uint32_t)klen, period, &r};
    cr_assert_eq(tally__store_commit(store, &p, 1, NULL, 0, NULL, 0), 0);
}

#define V(...)                                                                                     \
    ((const int64_t[]){__VA_ARGS__}), (sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

static tally__usage_window_t
hours(int from_h, int to_h)
{
    tally__usage_window_t w;
    cr_assert_eq(tally__usage_window((T0 + from_h * HOUR) * 1000, (T0 + to_h * HOUR) * 1000, &w),
                 0);
    return w;
}

static const tally__usage_item_t *
find(const tally__usage_item_t *v, size_t n, const char *ns, const char *metric, const char *object)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].ns, ns) && !strcmp(v[i].metric, metric) && !strcmp(v[i].object, object))
            return &v[i];
    return NULL;
}

static int64_t
ival(const tally__usage_qty_t *q)
{
    int64_t x = 0;
    cr_assert(tally__usage_qty_as_int(q, &x), "quantity is not an exact integer");
    return x;
}

/* ---- window rule ------------------------------------------------------------------------- */

Test(usage, window_is_the_hours_overlapping_from_to)
{
    tally__usage_window_t w;
    /* Aligned bounds are their own window. */
    cr_assert_eq(tally__usage_window(T0 * 1000, (T0 + 2 * HOUR) * 1000, &w), 0);
    cr_expect_eq(w.from_s, T0);
    cr_expect_eq(w.to_s, T0 + 2 * HOUR);
    /* from inside an hour counts that hour; to inside an hour counts it too. */
    cr_assert_eq(tally__usage_window((T0 + 1799) * 1000 + 5, (T0 + HOUR + 1) * 1000, &w), 0);
    cr_expect_eq(w.from_s, T0);
    cr_expect_eq(w.to_s, T0 + 2 * HOUR);
    /* One millisecond past an hour's start still overlaps it. */
    cr_assert_eq(tally__usage_window(T0 * 1000, (T0 + HOUR) * 1000 + 1, &w), 0);
    cr_expect_eq(w.to_s, T0 + 2 * HOUR);
    /* A window within one hour is that hour. */
    cr_assert_eq(tally__usage_window((T0 + 60) * 1000, (T0 + 120) * 1000, &w), 0);
    cr_expect_eq(w.from_s, T0);
    cr_expect_eq(w.to_s, T0 + HOUR);
    /* Before 1970 floors downwards. */
    cr_assert_eq(tally__usage_window(-1, 1, &w), 0);
    cr_expect_eq(w.from_s, -HOUR);
    cr_expect_eq(w.to_s, HOUR);
    /* from >= to, and windows beyond year 9999, are invalid. */
    cr_expect_eq(tally__usage_window(5, 5, &w), TALLY_EINVAL);
    cr_expect_eq(tally__usage_window(6, 5, &w), TALLY_EINVAL);
    cr_expect_eq(tally__usage_window(0, 253402300799LL * 1000, &w), TALLY_EINVAL);
    cr_expect_eq(tally__usage_window(INT64_MIN, 0, &w), TALLY_EINVAL);
}

Test(usage, system_scope_spans_every_namespace)
{
    cr_expect_null(tally__usage_scope("system"));
    cr_expect_str_eq(tally__usage_scope("demo"), "demo");
    cr_expect(tally__usage_ns_allowed("system", "demo"));
    cr_expect(tally__usage_ns_allowed("system", "system"));
    cr_expect(tally__usage_ns_allowed("demo", "demo"));
    cr_expect_not(tally__usage_ns_allowed("demo", "other"));
    cr_expect_not(tally__usage_ns_allowed("demo", "system"));
    cr_expect_not(tally__usage_ns_allowed("demo", "demo2"));
}

/* ---- usage details ------------------------------------------------------------------------- */

Test(usage, empty_store_gives_no_items)
{
    tally__usage_item_t *v = (void *)1;
    size_t n = 7;
    tally__usage_window_t w = hours(0, 24);
    cr_assert_eq(tally__usage_details(store, cat, NULL, &w, &v, &n), 0);
    cr_expect_null(v);
    cr_expect_eq(n, 0);
    tally__usage_hour_t *h = (void *)1;
    cr_assert_eq(tally__usage_hourly(store, cat, "demo", "http_requests", "", &w, &h, &n), 0);
    cr_expect_null(h);
    cr_expect_eq(n, 0);
    tally__usage_summary_t *s = (void *)1;
    cr_assert_eq(tally__usage_summary(store, cat, NULL, &w, &s, &n), 0);
    cr_expect_null(s);
    cr_expect_eq(n, 0);
}

Test(usage, each_aggregation_totals_by_its_rule)
{
    put("demo", "http_requests", "object=a", 0, V(100, 23));
    put("demo", "http_requests", "object=a", 1, V(7));
    put("demo", "lb_count", "object=lbs", 0, V(2, 3)); /* last: 3 */
    put("demo", "lb_count", "object=lbs", 1, V(4));
    put("demo", "lb_count", "object=lbs", 2, V(5, 1)); /* last: 1 */
    put("demo", "waf_events", "object=w", 0, V(10, 20, 30));
    put("demo", "waf_events", "object=w", 2, V(99));
    put("demo", "active_sites", "object=s", 0, V(3, 9, 4));
    put("demo", "active_sites", "object=s", 1, V(5));
    put("demo", "widgets", "object=x", 0, V(-4, 10)); /* not in the catalog: a sum */
    tally__usage_window_t w = hours(0, 3);
    tally__usage_item_t *v;
    size_t n;
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_assert_eq(n, 5);
    cr_expect_eq(ival(&find(v, n, "demo", "http_requests", "a")->quantity), 130);
    cr_expect_eq(ival(&find(v, n, "demo", "lb_count", "lbs")->quantity), 3 + 4 + 1);
    cr_expect_eq(ival(&find(v, n, "demo", "waf_events", "w")->quantity), 4);
    cr_expect_eq(ival(&find(v, n, "demo", "active_sites", "s")->quantity), 9);
    const tally__usage_item_t *x = find(v, n, "demo", "widgets", "x");
    cr_expect_eq(ival(&x->quantity), 6);
    cr_expect_str_eq(x->def.usage_type, "widgets");
    cr_expect_str_eq(x->def.unit, "count");
    cr_expect_eq(x->def.aggregation, TALLY_AGG_SUM);
    const tally__usage_item_t *lb = find(v, n, "demo", "lb_count", "lbs");
    cr_expect_str_eq(lb->def.usage_type, "Load Balancers");
    cr_expect_eq(lb->first_hour_s, T0);
    cr_expect_eq(lb->last_hour_s, T0 + 2 * HOUR);
    tally__usage_items_free(v);
}

Test(usage, items_group_by_namespace_metric_object_sorted)
{
    /* Series that differ in other labels fold into one item; no object label is "". */
    put("demo", "http_requests", "object=lb1,deployment=d1,container=c1", 0, V(1));
    put("demo", "http_requests", "object=lb1,deployment=d2", 0, V(10));
    put("demo", "http_requests", "object=lb1,region=eu", 1, V(100));
    put("demo", "http_requests", "container=a", 0, V(5));
    put("demo", "http_requests", NULL, 1, V(6));
    put("demo", "http_requests", "object=lb0", 0, V(7));
    put("other", "http_requests", "object=lb1", 0, V(1000));
    put("demo2", "http_requests", "object=lb1", 0, V(2000));
    tally__usage_window_t w = hours(0, 2);
    tally__usage_item_t *v;
    size_t n;
    cr_assert_eq(tally__usage_details(store, cat, NULL, &w, &v, &n), 0);
    cr_assert_eq(n, 5);
    const char *order[][2] = {
        {"demo", ""}, {"demo", "lb0"}, {"demo", "lb1"}, {"demo2", "lb1"}, {"other", "lb1"}};
    const int64_t q[] = {11, 7, 111, 2000, 1000};
    for (size_t i = 0; i < n; i++) {
        cr_expect_str_eq(v[i].ns, order[i][0], "item %zu", i);
        cr_expect_str_eq(v[i].object, order[i][1], "item %zu", i);
        cr_expect_eq(ival(&v[i].quantity), q[i], "item %zu", i);
    }
    tally__usage_items_free(v);
    /* One namespace: exactly its items (not demo2's, which shares the prefix). */
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_expect_eq(n, 3);
    for (size_t i = 0; i < n; i++)
        cr_expect_str_eq(v[i].ns, "demo");
    tally__usage_items_free(v);
}

Test(usage, window_excludes_hours_outside)
{
    for (int h = 0; h < 6; h++)
        put("demo", "http_requests", "object=a", h, V(1LL << h));
    tally__usage_item_t *v;
    size_t n;
    tally__usage_window_t w = hours(1, 4);
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect_eq(ival(&v[0].quantity), 2 + 4 + 8);
    tally__usage_items_free(v);
    /* from half-way through hour 1, to one second into hour 3: hours 1..3. */
    cr_assert_eq(tally__usage_window((T0 + HOUR + 1800) * 1000, (T0 + 3 * HOUR + 1) * 1000, &w), 0);
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_expect_eq(ival(&v[0].quantity), 2 + 4 + 8);
    tally__usage_items_free(v);
    w = hours(6, 10);
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_expect_eq(n, 0);
}

Test(usage, integer_sums_stay_exact_beyond_2_pow_53)
{
    const int64_t big = 9007199254740993LL; /* 2^53 + 1 */
    put("demo", "http_requests", "object=a", 0, V(big));
    put("demo", "http_requests", "object=a", 1, V(2));
    tally__usage_item_t *v;
    size_t n;
    tally__usage_window_t w = hours(0, 2);
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect_eq(v[0].quantity.is_float, 0);
    cr_expect_eq(v[0].quantity.i, big + 2);
    char buf[TALLY_USAGE_NUM_LEN];
    cr_expect_str_eq(tally__usage_qty_format(&v[0].quantity, buf, sizeof buf), "9007199254740995");
    tally__usage_items_free(v);
}

Test(usage, float_values_make_a_float_quantity)
{
    put_float("demo", "vcpu_seconds", "object=vm", 0, 1.5);
    put_float("demo", "vcpu_seconds", "object=vm", 1, 2.25);
    put("demo", "vcpu_seconds", "object=vm", 2, V(3));
    tally__usage_item_t *v;
    size_t n;
    tally__usage_window_t w = hours(0, 3);
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect(v[0].quantity.is_float);
    cr_expect_not(tally__usage_qty_as_int(&v[0].quantity, NULL));
    cr_expect_float_eq(tally__usage_qty_value(&v[0].quantity), 6.75, 1e-12);
    tally__usage_items_free(v);
}

/* ---- hourly breakdown ------------------------------------------------------------------------ */

Test(usage, hourly_groups_per_hour_deployment_container)
{
    put("demo", "http_requests", "object=lb1,deployment=d1,container=c1", 0, V(100, 23));
    put("demo", "http_requests", "object=lb1,deployment=d1,container=c1,region=eu", 0, V(1));
    put("demo", "http_requests", "object=lb1,deployment=d2", 0, V(5));
    put("demo", "http_requests", "object=lb1,deployment=d1,container=c1", 1, V(7));
    put("demo", "http_requests", "object=lb1,container=c9", 3, V(9));
    put("demo", "http_requests", "object=lb2,deployment=d1", 0, V(1000)); /* another object */
    put("demo", "lb_count", "object=lb1", 0, V(50));                      /* another metric */
    put("other", "http_requests", "object=lb1", 0, V(2000));              /* another ns */
    tally__usage_window_t w = hours(0, 6);
    tally__usage_hour_t *h;
    size_t n;
    cr_assert_eq(tally__usage_hourly(store, cat, "demo", "http_requests", "lb1", &w, &h, &n), 0);
    cr_assert_eq(n, 4);
    struct {
        int hour;
        const char *dep, *cont;
        int64_t q;
    } want[] = {{0, "d1", "c1", 124}, {0, "d2", "", 5}, {1, "d1", "c1", 7}, {3, "", "c9", 9}};
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(h[i].hour_s, T0 + want[i].hour * HOUR, "line %zu", i);
        cr_expect_str_eq(h[i].deployment, want[i].dep, "line %zu", i);
        cr_expect_str_eq(h[i].container, want[i].cont, "line %zu", i);
        cr_expect_eq(ival(&h[i].quantity), want[i].q, "line %zu", i);
        total += ival(&h[i].quantity);
    }
    tally__usage_hours_free(h);
    /* The lines add up to the item. */
    tally__usage_item_t *v;
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_expect_eq(ival(&find(v, n, "demo", "http_requests", "lb1")->quantity), total);
    tally__usage_items_free(v);
    /* A narrower window. */
    w = hours(1, 2);
    cr_assert_eq(tally__usage_hourly(store, cat, "demo", "http_requests", "lb1", &w, &h, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect_eq(ival(&h[0].quantity), 7);
    tally__usage_hours_free(h);
}

Test(usage, hourly_of_gauge_and_max_and_no_object)
{
    put("demo", "lb_count", "deployment=a", 0, V(2, 3));
    put("demo", "lb_count", "deployment=a", 1, V(4));
    put("demo", "lb_count", "object=x", 1, V(40)); /* has an object: not "" */
    put("demo", "active_sites", "object=s,deployment=a", 0, V(3, 9));
    put("demo", "active_sites", "object=s,deployment=a,region=eu", 0, V(12));
    tally__usage_window_t w = hours(0, 3);
    tally__usage_hour_t *h;
    size_t n;
    cr_assert_eq(tally__usage_hourly(store, cat, "demo", "lb_count", "", &w, &h, &n), 0);
    cr_assert_eq(n, 2);
    cr_expect_eq(ival(&h[0].quantity), 3);
    cr_expect_eq(ival(&h[1].quantity), 4);
    cr_expect_str_eq(h[0].deployment, "a");
    tally__usage_hours_free(h);
    /* max folds series of one (hour, deployment, container) by taking the largest. */
    cr_assert_eq(tally__usage_hourly(store, cat, "demo", "active_sites", "s", &w, &h, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect_eq(ival(&h[0].quantity), 12);
    tally__usage_hours_free(h);
}

/* ---- summary ------------------------------------------------------------------------------ */

static const tally__usage_summary_t *
sfind(const tally__usage_summary_t *s, size_t n, const char *type)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s[i].usage_type, type))
            return &s[i];
    return NULL;
}

Test(usage, summary_per_usage_type_with_billable_text)
{
    put("demo", "http_requests", "object=a", 0, V(1000000, 234567));
    put("other", "http_requests", "object=b", 1, V(1));
    put("demo", "https_requests", "object=a", 1, V(99)); /* same usage type, same factor */
    put("demo", "lb_count", "object=lbs", 0, V(3));
    put("demo", "lb_count", "object=lbs", 1, V(4));
    put("other", "lb_count", "object=lbs", 1, V(2));
    put("demo", "waf_events", NULL, 0, V(1, 1, 1));
    put("demo", "vcpu_seconds", NULL, 0, V(1800));
    put("demo", "vcpu_ms", NULL, 0, V(900000)); /* same type, other factor: 0.25 h */
    put("demo", "custom_thing", NULL, 0, V(5));
    put("demo", "http_requests", "object=a", 9, V(777)); /* outside the window */
    tally__usage_window_t w = hours(0, 2);
    tally__usage_summary_t *s;
    size_t n;
    cr_assert_eq(tally__usage_summary(store, cat, NULL, &w, &s, &n), 0);
    cr_assert_eq(n, 5);
    /* sorted by usage type (byte order) */
    cr_expect_str_eq(s[0].usage_type, "HTTP Requests");
    cr_expect_str_eq(s[1].usage_type, "Load Balancers");
    cr_expect_str_eq(s[2].usage_type, "WAF");
    cr_expect_str_eq(s[3].usage_type, "custom_thing");
    cr_expect_str_eq(s[4].usage_type, "vCPU");
    const tally__usage_summary_t *x = sfind(s, n, "HTTP Requests");
    cr_expect_str_eq(x->raw_text, "1234667");
    cr_expect_str_eq(x->billable_text, "1.234667");
    cr_expect_str_eq(x->unit, "requests");
    cr_expect_str_eq(x->billable_unit, "million requests");
    x = sfind(s, n, "Load Balancers");
    cr_expect_str_eq(x->raw_text, "9");
    cr_expect_str_eq(x->billable_text, "9");
    cr_expect_str_eq(x->billable_unit, "object-hours");
    x = sfind(s, n, "WAF");
    cr_expect_str_eq(x->raw_text, "3");
    cr_expect_str_eq(x->billable_text, "0.003");
    x = sfind(s, n, "custom_thing");
    cr_expect_str_eq(x->raw_text, "5");
    cr_expect_str_eq(x->billable_text, "5");
    cr_expect_str_eq(x->unit, "count");
    x = sfind(s, n, "vCPU");
    cr_expect_str_eq(x->billable_text, "0.75"); /* 1800/3600 + 900000/3600000 */
    tally__usage_summaries_free(s);
    /* One namespace only. */
    cr_assert_eq(tally__usage_summary(store, cat, "other", &w, &s, &n), 0);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(sfind(s, n, "HTTP Requests")->raw_text, "1");
    cr_expect_str_eq(sfind(s, n, "HTTP Requests")->billable_text, "0.000001");
    cr_expect_str_eq(sfind(s, n, "Load Balancers")->raw_text, "2");
    tally__usage_summaries_free(s);
}

/* ---- quantities and number text ----------------------------------------------------------------
 */

static tally__usage_qty_t
qi(int64_t x)
{
    return (tally__usage_qty_t){.i = x, .records = 1};
}

static tally__usage_qty_t
qf(double x)
{
    return (tally__usage_qty_t){.f = x, .is_float = 1, .records = 1};
}

Test(usage, billable_text_is_exact_for_integers)
{
    char b[TALLY_USAGE_NUM_LEN];
    tally__usage_qty_t q;
#define BILL(val, factor) (q = qi(val), tally__usage_billable_format(&q, (factor), b, sizeof b))
    cr_expect_str_eq(BILL(1234567, 1000000), "1.234567");
    cr_expect_str_eq(BILL(1, 3600), "0.000277777778");
    cr_expect_str_eq(BILL(0, 1000), "0");
    cr_expect_str_eq(BILL(10, 1), "10");
    cr_expect_str_eq(BILL(10, 0), "10");
    cr_expect_str_eq(BILL(-5, 2), "-2.5");
    cr_expect_str_eq(BILL(2500000000LL, 1000000000), "2.5");
    cr_expect_str_eq(BILL(INT64_MAX, 1), "9223372036854775807");
    cr_expect_str_eq(BILL(INT64_MIN, 1), "-9223372036854775808");
    cr_expect_str_eq(BILL(INT64_MAX, 1000000000000ULL), "9223372.036854775807");
    cr_expect_str_eq(BILL(1, 2000000000000ULL), "0.000000000001"); /* half rounds away from 0 */
    cr_expect_str_eq(BILL(-1, 2000000000000ULL), "-0.000000000001");
    cr_expect_str_eq(BILL(1, 3000000000000ULL), "0");
    cr_expect_str_eq(BILL(-1, 3000000000000ULL), "0");
    cr_expect_str_eq(BILL(20, 24), "0.833333333333");
    cr_expect_str_eq(BILL(2, 3), "0.666666666667");
    cr_expect_str_eq(BILL(1, UINT64_MAX), "0");
#undef BILL
    q = qf(6.75);
    cr_expect_str_eq(tally__usage_billable_format(&q, 3600, b, sizeof b), "0.001875");
    q = qf(0.5);
    cr_expect_str_eq(tally__usage_billable_format(&q, 1, b, sizeof b), "0.5");
    q = qf(1e300);
    tally__usage_billable_format(&q, 1, b, sizeof b);
    cr_expect_float_eq(strtod(b, NULL), 1e300, 1e288);
}

Test(usage, quantity_text_and_exactness)
{
    char b[TALLY_USAGE_NUM_LEN];
    tally__usage_qty_t q = qi(-42);
    cr_expect_str_eq(tally__usage_qty_format(&q, b, sizeof b), "-42");
    q = qf(0.1 + 0.2);
    cr_expect_str_eq(tally__usage_qty_format(&q, b, sizeof b), "0.30000000000000004");
    q = qf(0.5);
    cr_expect_str_eq(tally__usage_qty_format(&q, b, sizeof b), "0.5");
    /* A float quantity that happens to be integral is an integer. */
    q = qf(3.0);
    int64_t x = 0;
    cr_expect(tally__usage_qty_as_int(&q, &x));
    cr_expect_eq(x, 3);
    cr_expect_str_eq(tally__usage_qty_format(&q, b, sizeof b), "3");
}

Test(usage, int64_overflow_carries_into_the_float_part)
{
    tally__usage_qty_t a = qi(INT64_MAX), c = qi(INT64_MAX);
    tally__usage_qty_merge(&a, TALLY_AGG_SUM, &c);
    cr_expect(a.is_float);
    cr_expect(a.int_overflow, "a total past int64 is marked");
    cr_expect_float_eq(tally__usage_qty_value(&a), 2.0 * (double)INT64_MAX, 1e6);
    cr_expect_eq(a.records, 2);
    /* max keeps the larger, whole */
    tally__usage_qty_t m = qi(5), big = qf(7.5), empty = {0};
    tally__usage_qty_merge(&m, TALLY_AGG_MAX, &big);
    cr_expect_float_eq(tally__usage_qty_value(&m), 7.5, 0);
    tally__usage_qty_merge(&m, TALLY_AGG_MAX, &empty);
    cr_expect_float_eq(tally__usage_qty_value(&m), 7.5, 0);
    tally__usage_qty_t m2 = {0}, neg = qi(-3);
    tally__usage_qty_merge(&m2, TALLY_AGG_MAX, &neg);
    cr_expect_eq(ival(&m2), -3, "the first value of a max is taken even when negative");
}

Test(usage, rollup_folding_follows_the_aggregation)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    tally__rollup_add(&r, 0, 10, 0, 1000);
    tally__rollup_add(&r, 0, 30, 0, 3000);
    tally__rollup_add(&r, 0, 20, 0, 2000); /* earlier than 3000: not the last */
    tally__usage_qty_t q[TALLY__AGG_N] = {{0}};
    for (int a = 0; a < TALLY__AGG_N; a++) {
        tally__usage_qty_add_rollup(&q[a], (tally__agg_t)a, &r);
        tally__usage_qty_add_rollup(&q[a], (tally__agg_t)a, &r);
    }
    cr_expect_eq(ival(&q[TALLY_AGG_SUM]), 120);
    cr_expect_eq(ival(&q[TALLY_AGG_COUNT]), 6);
    cr_expect_eq(ival(&q[TALLY_AGG_MAX]), 30);
    cr_expect_eq(ival(&q[TALLY_AGG_LAST]), 60);
    for (int a = 0; a < TALLY__AGG_N; a++)
        cr_expect_eq(q[a].records, 2);
}

/* ---- int64 overflow marker ------------------------------------------------------------------ */

Test(usage, an_overflowed_record_marks_its_item_hour_and_summary)
{
    const int64_t big = INT64_MAX - 1;
    put("demo", "http_requests", "object=lb1,deployment=d1", 0, V(big, big)); /* overflows */
    put("demo", "http_requests", "object=lb1,deployment=d1", 1, V(3));
    put("demo", "http_requests", "object=lb2", 0, V(5));
    put_float("demo", "vcpu_seconds", "object=vm", 0, 0.25); /* float, no overflow */
    /* the same record under aggregations that do not read its sum */
    put("demo", "lb_count", "object=lbs", 0, V(big, big));
    put("demo", "waf_events", "object=w", 0, V(big, big));
    put("demo", "active_sites", "object=s", 0, V(big, big));
    tally__usage_window_t w = hours(0, 2);
    tally__usage_item_t *v;
    size_t n;
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_assert_eq(n, 6);
    const tally__usage_item_t *lb1 = find(v, n, "demo", "http_requests", "lb1");
    cr_assert_not_null(lb1);
    cr_expect(lb1->quantity.int_overflow, "the overflowed sum marks its item");
    cr_expect(lb1->quantity.is_float);
    double want = 2.0 * (double)big + 3.0;
    cr_expect(fabs(tally__usage_qty_value(&lb1->quantity) - want) <= want * 1e-15,
              "the value goes on: %.17g, want %.17g", tally__usage_qty_value(&lb1->quantity), want);
    cr_expect_not(find(v, n, "demo", "http_requests", "lb2")->quantity.int_overflow);
    const tally__usage_item_t *vm = find(v, n, "demo", "vcpu_seconds", "vm");
    cr_expect(vm->quantity.is_float);
    cr_expect_not(vm->quantity.int_overflow, "float values alone are not an overflow");
    cr_expect_not(find(v, n, "demo", "lb_count", "lbs")->quantity.int_overflow, "last");
    cr_expect_eq(ival(&find(v, n, "demo", "waf_events", "w")->quantity), 2, "count");
    cr_expect_not(find(v, n, "demo", "waf_events", "w")->quantity.int_overflow, "count");
    cr_expect_not(find(v, n, "demo", "active_sites", "s")->quantity.int_overflow, "max");
    tally__usage_items_free(v);

    /* the hourly breakdown marks the overflowed hour only */
    tally__usage_hour_t *hv;
    cr_assert_eq(tally__usage_hourly(store, cat, "demo", "http_requests", "lb1", &w, &hv, &n), 0);
    cr_assert_eq(n, 2);
    cr_expect(hv[0].quantity.int_overflow);
    cr_expect_not(hv[1].quantity.int_overflow);
    cr_expect_eq(ival(&hv[1].quantity), 3);
    tally__usage_hours_free(hv);

    /* the summary's usage type too, whatever else it adds */
    tally__usage_summary_t *sv;
    cr_assert_eq(tally__usage_summary(store, cat, NULL, &w, &sv, &n), 0);
    cr_expect(sfind(sv, n, "HTTP Requests")->raw.int_overflow);
    cr_expect_not(sfind(sv, n, "vCPU")->raw.int_overflow);
    cr_expect_not(sfind(sv, n, "WAF")->raw.int_overflow);
    tally__usage_summaries_free(sv);
}

Test(usage, a_total_past_int64_is_marked_though_no_record_overflowed)
{
    put("demo", "http_requests", "object=a", 0, V(INT64_MAX - 5));
    put("demo", "http_requests", "object=a", 1, V(10));
    tally__usage_window_t w = hours(0, 2);
    tally__usage_item_t *v;
    size_t n;
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect(v[0].quantity.int_overflow);
    tally__usage_items_free(v);
    tally__usage_hour_t *hv;
    cr_assert_eq(tally__usage_hourly(store, cat, "demo", "http_requests", "a", &w, &hv, &n), 0);
    cr_assert_eq(n, 2);
    cr_expect_not(hv[0].quantity.int_overflow, "each hour is exact");
    cr_expect_not(hv[1].quantity.int_overflow);
    cr_expect_eq(ival(&hv[0].quantity), INT64_MAX - 5);
    tally__usage_hours_free(hv);
    /* one hour alone stays exact */
    w = hours(0, 1);
    cr_assert_eq(tally__usage_details(store, cat, "demo", &w, &v, &n), 0);
    cr_expect_not(v[0].quantity.int_overflow);
    cr_expect_eq(ival(&v[0].quantity), INT64_MAX - 5);
    tally__usage_items_free(v);
}

Test(usage, the_overflow_marker_follows_merges)
{
    tally__usage_qty_t a = qi(1), m = qi(2), e = {0};
    m.int_overflow = 1;
    tally__usage_qty_merge(&a, TALLY_AGG_SUM, &m);
    cr_expect(a.int_overflow, "a sum with a marked part is marked");
    tally__usage_qty_merge(&e, TALLY_AGG_COUNT, &a);
    cr_expect(e.int_overflow, "into an empty one too");
    /* max: the marker goes with the value kept */
    tally__usage_qty_t mx = qi(5), small = qi(1), larger = qi(9);
    small.int_overflow = 1;
    tally__usage_qty_merge(&mx, TALLY_AGG_MAX, &small);
    cr_expect_not(mx.int_overflow);
    larger.int_overflow = 1;
    tally__usage_qty_merge(&mx, TALLY_AGG_MAX, &larger);
    cr_expect(mx.int_overflow);
    /* a record flagged by the store */
    tally__rollup_t r;
    tally__rollup_init(&r);
    tally__rollup_add(&r, 0, INT64_MIN, 0, 1000);
    tally__rollup_add(&r, 0, -1, 0, 2000);
    tally__usage_qty_t q = {0};
    tally__usage_qty_add_rollup(&q, TALLY_AGG_SUM, &r);
    cr_expect(q.int_overflow);
    cr_expect_float_eq(tally__usage_qty_value(&q), -9223372036854775809.0, 1e4);
}
