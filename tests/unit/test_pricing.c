/* test_pricing.c — Criterion tests of lib/pricing: rounding, tiers, proration, coupons, and priced
 * periods over a temp store. */
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
#include "plans.h"
#include "pricing.h"
#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "timeutil.h"
#include "usage.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)
#define DAY 86400LL
#define HOUR 3600LL

/* ---- pure rules ------------------------------------------------------------------------ */

static tally__usage_qty_t
qi(int64_t v)
{
    tally__usage_qty_t q = {.i = v, .records = 1};
    return q;
}

static tally__usage_qty_t
qf(double v)
{
    tally__usage_qty_t q = {.f = v, .is_float = 1, .records = 1};
    return q;
}

Test(pricing, billable_rounds_up_to_whole_units)
{
    tally__usage_qty_t q;
    q = qi(0);
    cr_expect_eq(tally__pricing_billable(&q, 1000000), 0);
    q = qi(1);
    cr_expect_eq(tally__pricing_billable(&q, 1000000), 1);
    q = qi(999999);
    cr_expect_eq(tally__pricing_billable(&q, 1000000), 1);
    q = qi(1000000);
    cr_expect_eq(tally__pricing_billable(&q, 1000000), 1);
    q = qi(1000001);
    cr_expect_eq(tally__pricing_billable(&q, 1000000), 2);
    q = qi(3600);
    cr_expect_eq(tally__pricing_billable(&q, 3600), 1);
    q = qi(7201);
    cr_expect_eq(tally__pricing_billable(&q, 3600), 3);
    q = qi(-5);
    cr_expect_eq(tally__pricing_billable(&q, 1), 0);
    q = qi(5);
    cr_expect_eq(tally__pricing_billable(&q, 0), 5, "factor 0 counts as 1");
    q = qi(INT64_MAX);
    cr_expect_eq(tally__pricing_billable(&q, 1), INT64_MAX);
    q = qi(INT64_MAX);
    cr_expect_eq(tally__pricing_billable(&q, 2), INT64_MAX / 2 + 1);
    q = qi(INT64_MAX);
    cr_expect_eq(tally__pricing_billable(&q, UINT64_MAX), 1);
    cr_expect_eq(tally__pricing_billable(NULL, 1), 0);
}

Test(pricing, billable_of_floats)
{
    tally__usage_qty_t q;
    q = qf(0.5);
    cr_expect_eq(tally__pricing_billable(&q, 1), 1);
    q = qf(2.0);
    cr_expect_eq(tally__pricing_billable(&q, 1), 2, "an integral float is exact");
    q = qf(2.25);
    cr_expect_eq(tally__pricing_billable(&q, 1), 3);
    q = qf(1e-300);
    cr_expect_eq(tally__pricing_billable(&q, 1000), 1);
    q = qf(-0.5);
    cr_expect_eq(tally__pricing_billable(&q, 1), 0);
    q = qf(NAN);
    cr_expect_eq(tally__pricing_billable(&q, 1), 0);
    q = qf(1e300);
    cr_expect_eq(tally__pricing_billable(&q, 1), INT64_MAX);
    cr_expect_eq(tally__pricing_billable_double(INFINITY, 1), INT64_MAX);
    cr_expect_eq(tally__pricing_billable_double(1500.5, 1000), 2);
}

/* tiers 0-1000:9, 1000-10000:7, 10000-:5 */
static const tally__plan_tier_t egress_tiers[] = {{0, 1000, 9}, {1000, 10000, 7}, {10000, 0, 5}};

static tally__plan_price_t
egress(uint64_t included)
{
    tally__plan_price_t p = {.metric = "bytes_out",
                             .included = included,
                             .tiers = egress_tiers,
                             .ntiers = 3,
                             .tiered = true};
    return p;
}

Test(pricing, charge_at_every_tier_boundary)
{
    tally__plan_price_t p = egress(100);
    cr_expect_eq(tally__pricing_charge(&p, 0), 0);
    cr_expect_eq(tally__pricing_charge(&p, 99), 0);
    cr_expect_eq(tally__pricing_charge(&p, 100), 0, "exactly the included quantity");
    cr_expect_eq(tally__pricing_charge(&p, 101), 9);
    cr_expect_eq(tally__pricing_charge(&p, 999), 899 * 9);
    cr_expect_eq(tally__pricing_charge(&p, 1000), 900 * 9);
    cr_expect_eq(tally__pricing_charge(&p, 1001), 900 * 9 + 7);
    cr_expect_eq(tally__pricing_charge(&p, 9999), 900 * 9 + 8999 * 7);
    cr_expect_eq(tally__pricing_charge(&p, 10000), 900 * 9 + 9000 * 7);
    cr_expect_eq(tally__pricing_charge(&p, 10001), 900 * 9 + 9000 * 7 + 5);
    cr_expect_eq(tally__pricing_charge(&p, 20000), 900 * 9 + 9000 * 7 + 10000 * 5);
    cr_expect_eq(tally__pricing_charge(&p, -1), 0);
    cr_expect_eq(tally__pricing_charge(NULL, 5), 0);
}

Test(pricing, included_beyond_the_first_tier)
{
    tally__plan_price_t p = egress(5000);
    cr_expect_eq(tally__pricing_charge(&p, 5000), 0);
    cr_expect_eq(tally__pricing_charge(&p, 5001), 7);
    cr_expect_eq(tally__pricing_charge(&p, 10001), 5000 * 7 + 5);
    p = egress(10000);
    cr_expect_eq(tally__pricing_charge(&p, 10000), 0);
    cr_expect_eq(tally__pricing_charge(&p, 10002), 10);
    p = egress(UINT64_MAX);
    cr_expect_eq(tally__pricing_charge(&p, INT64_MAX), 0);
}

Test(pricing, flat_price_and_free_metrics)
{
    static const tally__plan_tier_t one[] = {{0, 0, 60}}, zero[] = {{0, 0, 0}};
    tally__plan_price_t p = {.metric = "http_requests", .included = 10, .tiers = one, .ntiers = 1};
    cr_expect_eq(tally__pricing_charge(&p, 10), 0);
    cr_expect_eq(tally__pricing_charge(&p, 11), 60);
    cr_expect_eq(tally__pricing_charge(&p, 26), 16 * 60);
    p.included = 0;
    cr_expect_eq(tally__pricing_charge(&p, 3), 180);
    p.tiers = zero;
    cr_expect_eq(tally__pricing_charge(&p, 1000000), 0);
}

Test(pricing, charge_saturates_instead_of_overflowing)
{
    static const tally__plan_tier_t big[] = {{0, 0, INT64_MAX}}, two[] = {{0, 0, 2}};
    tally__plan_price_t p = {.metric = "m", .tiers = two, .ntiers = 1};
    cr_expect_eq(tally__pricing_charge(&p, INT64_MAX), INT64_MAX);
    cr_expect_eq(tally__pricing_charge(&p, INT64_MAX / 2), INT64_MAX - 1);
    p.tiers = big;
    cr_expect_eq(tally__pricing_charge(&p, 1), INT64_MAX);
    cr_expect_eq(tally__pricing_charge(&p, 2), INT64_MAX);
    tally__plan_price_t e = egress(0);
    cr_expect_eq(tally__pricing_charge(&e, INT64_MAX), INT64_MAX);
}

Test(pricing, proration_by_the_day)
{
    /* every month length: whole month, none, one day */
    for (int dim = 28; dim <= 31; dim++) {
        cr_expect_eq(tally__pricing_prorate(9900, TALLY_PERIOD_MONTH, dim, dim, 365), 9900);
        cr_expect_eq(tally__pricing_prorate(9900, TALLY_PERIOD_MONTH, 0, dim, 365), 0);
        int64_t one = (9900 * 2 + dim) / (2 * dim);
        cr_expect_eq(tally__pricing_prorate(9900, TALLY_PERIOD_MONTH, 1, dim, 365), one);
        /* a change on the last day: dim-1 days of the old plan */
        cr_expect_eq(tally__pricing_prorate(3100, TALLY_PERIOD_MONTH, dim - 1, dim, 365),
                     (3100 * (dim - 1) * 2 + dim) / (2 * dim));
    }
    cr_expect_eq(tally__pricing_prorate(2000, TALLY_PERIOD_MONTH, 15, 31, 365), 968); /* 967.74 */
    cr_expect_eq(tally__pricing_prorate(2000, TALLY_PERIOD_MONTH, 16, 31, 365), 1032);
    cr_expect_eq(tally__pricing_prorate(9900, TALLY_PERIOD_MONTH, 14, 29, 366), 4779); /* 4779.31 */
    cr_expect_eq(tally__pricing_prorate(9900, TALLY_PERIOD_MONTH, 10, 30, 365), 3300);
    cr_expect_eq(tally__pricing_prorate(9900, TALLY_PERIOD_MONTH, 3, 28, 365), 1061); /* 1060.71 */
    /* half up */
    cr_expect_eq(tally__pricing_prorate(15, TALLY_PERIOD_MONTH, 1, 30, 365), 1); /* 0.5 */
    cr_expect_eq(tally__pricing_prorate(45, TALLY_PERIOD_MONTH, 1, 30, 365), 2); /* 1.5 */
    cr_expect_eq(tally__pricing_prorate(14, TALLY_PERIOD_MONTH, 1, 28, 365), 1); /* 0.5 */
    cr_expect_eq(tally__pricing_prorate(13, TALLY_PERIOD_MONTH, 1, 28, 365), 0); /* 0.46 */
    cr_expect_eq(tally__pricing_prorate(-5, TALLY_PERIOD_MONTH, 3, 28, 365), 0);
    /* other renewal units */
    cr_expect_eq(tally__pricing_prorate(100, TALLY_PERIOD_DAY, 31, 31, 365), 3100);
    cr_expect_eq(tally__pricing_prorate(700, TALLY_PERIOD_WEEK, 30, 30, 365), 3000);
    cr_expect_eq(tally__pricing_prorate(36500, TALLY_PERIOD_YEAR, 31, 31, 365), 3100);
    cr_expect_eq(tally__pricing_prorate(36600, TALLY_PERIOD_YEAR, 29, 29, 366), 2900);
    cr_expect_eq(tally__pricing_prorate(3000, TALLY_PERIOD_UNKNOWN, 15, 30, 365), 1500);
    /* overflow guards */
    cr_expect_eq(tally__pricing_prorate(INT64_MAX, TALLY_PERIOD_DAY, 2, 30, 365), INT64_MAX);
    cr_expect_eq(tally__pricing_prorate(INT64_MAX, TALLY_PERIOD_MONTH, 30, 30, 365), INT64_MAX);
    cr_expect_eq(tally__pricing_prorate(INT64_MAX, TALLY_PERIOD_MONTH, 1, 30, 365),
                 INT64_MAX / 30); /* remainder 7 of 30 rounds down */
    cr_expect_eq(tally__pricing_prorate(INT64_MAX, TALLY_PERIOD_WEEK, 1, 30, 365),
                 INT64_MAX / 7); /* exact */
    cr_expect_eq(tally__pricing_prorate(INT64_MAX, TALLY_PERIOD_YEAR, 1, 29, 365),
                 INT64_MAX / 365 + 1); /* remainder 292 of 365 rounds up */
}

Test(pricing, days_between_utc_days)
{
    int64_t feb1 = tally__time_from_civil(2024, 2, 1, 0, 0, 0);
    cr_expect_eq(tally__pricing_days(feb1, feb1 + 29 * DAY), 29);
    cr_expect_eq(tally__pricing_days(feb1 + 10 * HOUR, feb1 + 29 * DAY), 29,
                 "the day of a start counts");
    cr_expect_eq(tally__pricing_days(feb1, feb1 + 9 * DAY + 12 * HOUR), 9,
                 "the day of an end does not");
    cr_expect_eq(tally__pricing_days(feb1 + DAY, feb1), 0);
}

static tally__coupon_t
coupon(tally__discount_type_t t, int32_t amount)
{
    tally__coupon_t c = {.type = t, .amount = amount};
    return c;
}

Test(pricing, coupons_fixed_and_percentage)
{
    tally__coupon_t c;
    c = coupon(TALLY_DISCOUNT_FIXED_AMOUNT, 500);
    cr_expect_eq(tally__pricing_coupon_discount(&c, 10000), 500);
    cr_expect_eq(tally__pricing_coupon_discount(&c, 300), 300, "never below 0");
    cr_expect_eq(tally__pricing_coupon_discount(&c, 0), 0);
    cr_expect_eq(tally__pricing_coupon_discount(&c, -10), 0);
    c = coupon(TALLY_DISCOUNT_PERCENTAGE, 1000); /* 10 % */
    cr_expect_eq(tally__pricing_coupon_discount(&c, 10000), 1000);
    cr_expect_eq(tally__pricing_coupon_discount(&c, 15), 2, "1.5 rounds half up");
    cr_expect_eq(tally__pricing_coupon_discount(&c, 14), 1);
    c = coupon(TALLY_DISCOUNT_PERCENTAGE, 1235);                   /* 12.35 % */
    cr_expect_eq(tally__pricing_coupon_discount(&c, 15660), 1934); /* 1934.01 */
    c = coupon(TALLY_DISCOUNT_PERCENTAGE, 10000);
    cr_expect_eq(tally__pricing_coupon_discount(&c, 15660), 15660);
    c = coupon(TALLY_DISCOUNT_PERCENTAGE, 15000); /* over 100 % */
    cr_expect_eq(tally__pricing_coupon_discount(&c, 15660), 15660);
    c = coupon(TALLY_DISCOUNT_PERCENTAGE, INT32_MAX);
    cr_expect_eq(tally__pricing_coupon_discount(&c, 7), 7);
    c = coupon(TALLY_DISCOUNT_PERCENTAGE, -100);
    cr_expect_eq(tally__pricing_coupon_discount(&c, 7), 0);
    c = coupon(TALLY_DISCOUNT_UNKNOWN, 500);
    cr_expect_eq(tally__pricing_coupon_discount(&c, 10000), 0);
    cr_expect_eq(tally__pricing_coupon_discount(NULL, 10000), 0);
    /* no overflow on the largest subtotal: 50 % of INT64_MAX, half up */
    c = coupon(TALLY_DISCOUNT_PERCENTAGE, 5000);
    cr_expect_eq(tally__pricing_coupon_discount(&c, INT64_MAX), INT64_MAX / 2 + 1);
    c = coupon(TALLY_DISCOUNT_PERCENTAGE, 9999);
    cr_expect_lt(tally__pricing_coupon_discount(&c, INT64_MAX), INT64_MAX);
}

Test(pricing, coupons_add_up_and_are_capped_at_the_subtotal)
{
    tally__coupon_t v[3] = {coupon(TALLY_DISCOUNT_PERCENTAGE, 1000),
                            coupon(TALLY_DISCOUNT_FIXED_AMOUNT, 500),
                            coupon(TALLY_DISCOUNT_FIXED_AMOUNT, INT32_MAX)};
    cr_expect_eq(tally__pricing_discount(v, 2, 10000), 1500, "each on the subtotal");
    cr_expect_eq(tally__pricing_discount(v, 3, 10000), 10000);
    cr_expect_eq(tally__pricing_discount(v, 0, 10000), 0);
    cr_expect_eq(tally__pricing_discount(v, 2, 0), 0);
    cr_expect_eq(tally__pricing_discount(v, 2, 400), 400);
    tally__coupon_t full[2] = {coupon(TALLY_DISCOUNT_PERCENTAGE, 10000),
                               coupon(TALLY_DISCOUNT_PERCENTAGE, 10000)};
    cr_expect_eq(tally__pricing_discount(full, 2, INT64_MAX), INT64_MAX, "saturates");
}

Test(pricing, names)
{
    cr_expect_str_eq(tally__pricing_status_name(TALLY_PRICE_STATUS_ACTIVE), "STATUS_ACTIVE");
    cr_expect_str_eq(tally__pricing_status_name(TALLY_PRICE_STATUS_NO_DATA), "STATUS_NO_DATA");
    cr_expect_str_eq(tally__pricing_status_name(TALLY_PRICE_STATUS_NOT_MEASURED),
                     "STATUS_NOT_MEASURED");
    cr_expect_str_eq(tally__pricing_status_name(0), "STATUS_UNKNOWN");
    for (int t = 0; t < 3; t++)
        cr_expect_eq(tally__pricing_discount_parse(tally__pricing_discount_name(t)), t);
    cr_expect_eq(tally__pricing_discount_parse("percentage"), TALLY_DISCOUNT_UNKNOWN);
    cr_expect_eq(tally__pricing_discount_parse(NULL), TALLY_DISCOUNT_UNKNOWN);
}

/* ---- priced periods over a temp store ------------------------------------------------- */

static const char metrics_ini[] = "[http_requests]\nusage_type = HTTP Requests\nunit = requests\n"
                                  "billable_unit = million requests\ndivision_factor = 1000000\n"
                                  "[bytes_out]\nusage_type = Data Transfer Out\nunit = bytes\n"
                                  "billable_unit = GB\ndivision_factor = 1000000000\n"
                                  "[lb_count]\nusage_type = Load Balancers\nunit = objects\n"
                                  "aggregation = last\nbillable_unit = object-hours\n";

static const char plans_ini[] = "[addon f5xc_waap_standard]\ndisplay_name = WAAP Standard\n"
                                "[plan basic]\ntitle = Basic\nusage_plan_type = INDIVIDUAL\n"
                                "flat_price = 3100\nrenewal_period_unit = PERIOD_MONTH\n"
                                "price.http_requests = 60\nincluded.http_requests = 10\n"
                                "included.bytes_out = 100\n"
                                "tiers.bytes_out = 0-1000:9, 1000-10000:7, 10000-:5\n"
                                "[plan pro]\ntitle = Pro\nusage_plan_type = TEAM\n"
                                "flat_price = 9900\nrenewal_period_unit = PERIOD_MONTH\n"
                                "trial_period = 10\ntrial_period_unit = PERIOD_DAY\n"
                                "included_addons = f5xc_waap_standard\n"
                                "price.http_requests = 50\n";

static char dir[64];
static tally__store_t *store;
static tally__catalog_t *cat;
static tally__plans_t *plans;

static void
setup(void)
{
    testdir_make(dir, sizeof dir, "pricing");
    char path[128], err[256] = "";
    snprintf(path, sizeof path, "%s/metrics.ini", dir);
    testdir_write(path, metrics_ini);
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/plans.ini", dir);
    testdir_write(path, plans_ini);
    cr_assert_eq(tally__plans_load(path, cat, &plans, err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/store", dir);
    cr_assert_eq(tally__store_open(path, 64 * MiB, 0, &store), 0);
}

static void
teardown(void)
{
    tally__store_close(store);
    tally__plans_destroy(plans);
    tally__catalog_destroy(cat);
    store = NULL;
    plans = NULL;
    cat = NULL;
    testdir_remove(dir);
}

TestSuite(pricing_period, .init = setup, .fini = teardown);

static int64_t
at(int y, int m, int d, int h)
{
    return tally__time_from_civil(y, m, d, h, 0, 0);
}

/* One hourly record and its month's record: value v of (ns, metric) at time t. */
static void
put(const char *ns, const char *metric, int64_t t, int64_t v)
{
    char key[TALLY_SERIES_KEY_MAX];
    size_t klen = tally__series_key(key, ns, strlen(ns), metric, strlen(metric), NULL, 0);
    tally__rollup_t r;
    tally__rollup_init(&r);
    tally__rollup_add(&r, 0, v, 0.0, t * 1000);
    tally__store_put_t mp = {key, (uint32_t)klen, tally__time_month_start(t), &r, 0};
    tally__store_put_t hp = {key, (uint32_t)klen, tally__time_hour_start(t), &r, 1};
    cr_assert_eq(tally__store_commit(store, &hp, 1, &mp, 1, NULL, 0), 0);
}

static void
put_obj(const char *kind, const char *name, const char *json)
{
    tally__obj_op_t op = {.op = TALLY_OBJ_PUT,
                          .kind = kind,
                          .ns = "system",
                          .name = name,
                          .value = json,
                          .len = strlen(json)};
    cr_assert_eq(tally__store_obj_write(store, &op, 1), 0);
}

/* A plan subscription the way lib/billing.c records it. */
static void
put_sub(const char *uid, const char *plan, int64_t start, int64_t cancellation)
{
    char s[TALLY_TIME_RFC3339_LEN], c[TALLY_TIME_RFC3339_LEN], json[512];
    tally__time_format_rfc3339(start, s, sizeof s);
    if (cancellation) {
        tally__time_format_rfc3339(cancellation, c, sizeof c);
        snprintf(json, sizeof json,
                 "{\"uid\":\"%s\",\"plan\":\"%s\",\"start\":\"%s\",\"cancelled\":true,"
                 "\"cancellation\":\"%s\"}",
                 uid, plan, s, c);
    } else
        snprintf(json, sizeof json,
                 "{\"uid\":\"%s\",\"plan\":\"%s\",\"start\":\"%s\",\"cancelled\":false}", uid, plan,
                 s);
    put_obj("subscription", uid, json);
}

static const tally__price_line_t *
line(const tally__priced_t *p, const char *usage_type)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->lines[i].usage_type, usage_type) == 0)
            return &p->lines[i];
    return NULL;
}

static void
price(const char *ns, int64_t from, int64_t to, tally__priced_t *p)
{
    int rc = tally__pricing_period(store, cat, plans, "basic", ns, from, to, to, p);
    cr_assert_eq(rc, 0, "%s", tally_strerror(rc));
    int64_t sum = 0;
    for (size_t i = 0; i < p->n; i++)
        sum += p->lines[i].amount_cents;
    cr_assert_eq(p->subtotal_cents, sum);
    cr_assert_eq(p->total_cents, p->subtotal_cents - p->discount_cents);
    cr_assert_str_eq(p->currency, "USD");
}

/* Feb 2024 (29 days): 25,000,001 requests in a, 1,500 GB out in b, a gauge in b. */
static void
feb_usage(void)
{
    put("a", "http_requests", at(2024, 2, 3, 10), 25000000);
    put("a", "http_requests", at(2024, 2, 20, 5), 1);
    put("b", "bytes_out", at(2024, 2, 10, 0), 1500000000000LL);
    put("b", "lb_count", at(2024, 2, 10, 0), 2);
    put("a", "http_requests", at(2024, 3, 1, 0), 7000000); /* next month: not counted */
}

Test(pricing_period, whole_month_on_the_default_plan)
{
    feb_usage();
    tally__priced_t p;
    price(NULL, at(2024, 2, 1, 0), at(2024, 3, 1, 0), &p);
    const tally__price_line_t *fee = line(&p, "Plan fee: Basic");
    cr_assert_not_null(fee);
    cr_expect_eq(fee->amount_cents, 3100);
    cr_expect_eq(fee->billable, 29);
    cr_expect(fee->fixed);
    cr_expect_eq(fee->status, TALLY_PRICE_STATUS_NOT_MEASURED);
    const tally__price_line_t *http = line(&p, "HTTP Requests");
    cr_assert_not_null(http);
    cr_expect_eq(http->billable, 26, "ceil(25000001 / 1e6)");
    cr_expect_eq(http->amount_cents, (26 - 10) * 60);
    cr_expect_eq(http->quantity, 25000001.0);
    cr_expect_eq(http->status, TALLY_PRICE_STATUS_ACTIVE);
    cr_expect_str_eq(http->metric, "http_requests");
    cr_expect_str_eq(http->billable_unit, "million requests");
    cr_expect(!http->fixed);
    const tally__price_line_t *out = line(&p, "Data Transfer Out");
    cr_assert_not_null(out);
    cr_expect_eq(out->billable, 1500);
    cr_expect_eq(out->amount_cents, 900 * 9 + 500 * 7);
    const tally__price_line_t *lb = line(&p, "Load Balancers");
    cr_assert_not_null(lb, "usage without a price still shows");
    cr_expect_eq(lb->amount_cents, 0);
    cr_expect_eq(lb->status, TALLY_PRICE_STATUS_ACTIVE);
    cr_expect_eq(p.n, 4);
    cr_expect_eq(p.subtotal_cents, 3100 + 960 + 11600);
    cr_expect_eq(p.discount_cents, 0);
    cr_expect_eq(p.total_cents, 15660);
    tally__priced_free(&p);
    cr_expect_null(p.lines);
}

Test(pricing_period, a_namespace_prices_its_own_usage_without_fees)
{
    feb_usage();
    put_obj("coupon", "tenpct",
            "{\"title\":\"Ten\",\"discount_type\":\"DISCOUNT_TYPE_PERCENTAGE\","
            "\"discount_amount\":1000}");
    tally__priced_t p;
    price("a", at(2024, 2, 1, 0), at(2024, 3, 1, 0), &p);
    cr_expect_null(line(&p, "Plan fee: Basic"));
    cr_expect_eq(line(&p, "HTTP Requests")->amount_cents, 960);
    const tally__price_line_t *out = line(&p, "Data Transfer Out");
    cr_assert_not_null(out, "a priced metric without usage");
    cr_expect_eq(out->status, TALLY_PRICE_STATUS_NO_DATA);
    cr_expect_eq(out->amount_cents, 0);
    cr_expect_null(line(&p, "Load Balancers"));
    cr_expect_eq(p.total_cents, 960);
    cr_expect_eq(p.discount_cents, 0, "coupons are tenant-wide");
    cr_expect_eq(p.ncoupons, 0);
    tally__priced_free(&p);
}

Test(pricing_period, month_to_date_counts_today)
{
    feb_usage();
    tally__priced_t p;
    price(NULL, at(2024, 2, 1, 0), at(2024, 2, 10, 12), &p);
    const tally__price_line_t *fee = line(&p, "Plan fee: Basic");
    cr_expect_eq(fee->billable, 10);
    cr_expect_eq(fee->amount_cents, (3100 * 10 * 2 + 29) / 58); /* 1068.97 -> 1069 */
    cr_expect_eq(line(&p, "HTTP Requests")->billable, 25);
    cr_expect_eq(line(&p, "Data Transfer Out")->billable, 1500);
    tally__priced_free(&p);
}

Test(pricing_period, mid_month_change_prorates_each_plan_and_prices_usage_on_the_new_one)
{
    feb_usage();
    int64_t change = at(2024, 2, 10, 12);
    put_sub("s1", "basic", at(2024, 2, 1, 0), change);
    put_sub("s2", "pro", change, 0);
    tally__priced_t p;
    price(NULL, at(2024, 2, 1, 0), at(2024, 3, 1, 0), &p);
    const tally__price_line_t *b = line(&p, "Plan fee: Basic"), *pro = line(&p, "Plan fee: Pro");
    cr_assert_not_null(b);
    cr_assert_not_null(pro);
    cr_expect_eq(b->billable, 9, "Feb 1..9");
    cr_expect_eq(b->amount_cents, 962); /* 3100 * 9 / 29 = 962.07 */
    cr_expect_eq(pro->quantity, 20.0, "Feb 10..29: the day of the change is the new plan's");
    cr_expect_eq(pro->billable, 10, "Feb 20..29 charged, after the trial");
    /* a 10-day trial from Feb 10 12:00 ends Feb 20 12:00: Feb 20..29 are paid */
    cr_expect_eq(pro->amount_cents, 3414); /* 9900 * 10 / 29 = 3413.79 */
    cr_expect_eq(pro->start_s, change);
    /* usage under pro: 50 c per million, nothing included; bytes_out is not priced */
    cr_expect_eq(line(&p, "HTTP Requests")->amount_cents, 26 * 50);
    cr_expect_eq(line(&p, "Data Transfer Out")->amount_cents, 0);
    cr_expect_eq(p.total_cents, 962 + 3414 + 1300);
    tally__priced_free(&p);

    /* the month before the first subscription is on its plan */
    price(NULL, at(2024, 1, 1, 0), at(2024, 2, 1, 0), &p);
    cr_expect_eq(line(&p, "Plan fee: Basic")->amount_cents, 3100);
    cr_expect_null(line(&p, "Plan fee: Pro"));
    tally__priced_free(&p);
    /* the month after: pro all month, trial over */
    price(NULL, at(2024, 3, 1, 0), at(2024, 4, 1, 0), &p);
    cr_expect_null(line(&p, "Plan fee: Basic"));
    cr_expect_eq(line(&p, "Plan fee: Pro")->amount_cents, 9900);
    cr_expect_eq(line(&p, "HTTP Requests")->amount_cents, 7 * 50);
    tally__priced_free(&p);
}

Test(pricing_period, change_on_the_first_at_midnight)
{
    int64_t mar1 = at(2024, 3, 1, 0);
    put_sub("s1", "basic", at(2024, 1, 1, 0), mar1);
    put_sub("s2", "pro", mar1 - 20 * DAY, 0); /* pretend the trial started earlier */
    /* fix the history: pro from Mar 1 exactly */
    put_sub("s2", "pro", mar1, 0);
    tally__priced_t p;
    price(NULL, mar1, at(2024, 4, 1, 0), &p);
    cr_expect_null(line(&p, "Plan fee: Basic"), "no day of March on basic");
    const tally__price_line_t *pro = line(&p, "Plan fee: Pro");
    cr_expect_eq(pro->quantity, 31.0, "days in force");
    cr_expect_eq(pro->billable, 21, "days charged: the trial's are not");
    cr_expect_eq(pro->amount_cents, (9900 * 21 * 2 + 31) / 62); /* trial Mar 1..10 */
    tally__priced_free(&p);
    price(NULL, at(2024, 2, 1, 0), mar1, &p);
    cr_expect_eq(line(&p, "Plan fee: Basic")->amount_cents, 3100);
    cr_expect_null(line(&p, "Plan fee: Pro"));
    tally__priced_free(&p);
}

Test(pricing_period, change_on_the_last_day)
{
    /* 2023-02 has 28 days */
    int64_t change = at(2023, 2, 28, 15);
    put_sub("s1", "basic", at(2023, 1, 1, 0), change);
    put_sub("s2", "pro", change, 0);
    tally__priced_t p;
    price(NULL, at(2023, 2, 1, 0), at(2023, 3, 1, 0), &p);
    cr_expect_eq(line(&p, "Plan fee: Basic")->billable, 27);
    cr_expect_eq(line(&p, "Plan fee: Basic")->amount_cents, 2989); /* 3100*27/28 = 2989.29 */
    cr_expect_eq(line(&p, "Plan fee: Pro")->quantity, 1.0);
    cr_expect_eq(line(&p, "Plan fee: Pro")->billable, 0, "in its trial: no day charged");
    cr_expect_eq(line(&p, "Plan fee: Pro")->amount_cents, 0, "in its trial");
    tally__priced_free(&p);
}

Test(pricing_period, addons_are_listed_at_no_charge)
{
    put_sub("s1", "pro", at(2024, 1, 1, 0), 0);
    put_obj("addon", "f5xc_waap_standard",
            "{\"uid\":\"x\",\"addon\":\"f5xc_waap_standard\",\"start\":\"2024-01-01T00:00:00Z\","
            "\"cancelled\":false,\"included\":true}");
    put_obj("addon", "f5xc_gone",
            "{\"uid\":\"y\",\"addon\":\"f5xc_gone\",\"start\":\"2023-01-01T00:00:00Z\","
            "\"cancelled\":true,\"cancellation\":\"2023-06-01T00:00:00Z\"}");
    tally__priced_t p;
    price(NULL, at(2024, 4, 1, 0), at(2024, 5, 1, 0), &p);
    const tally__price_line_t *a = line(&p, "Add-on: WAAP Standard (included)");
    cr_assert_not_null(a);
    cr_expect_eq(a->amount_cents, 0);
    cr_expect(a->fixed);
    cr_expect_eq(a->billable, 30);
    cr_expect_eq(a->status, TALLY_PRICE_STATUS_NOT_MEASURED);
    cr_expect_null(line(&p, "Add-on: f5xc_gone"), "cancelled before the period");
    cr_expect_eq(line(&p, "HTTP Requests")->status, TALLY_PRICE_STATUS_NO_DATA);
    cr_expect_eq(p.total_cents, 9900);
    tally__priced_free(&p);
}

Test(pricing_period, coupons_apply_to_the_tenant)
{
    feb_usage();
    put_obj("coupon", "a-tenpct",
            "{\"title\":\"Ten\",\"discount_type\":\"DISCOUNT_TYPE_PERCENTAGE\","
            "\"discount_amount\":1000}");
    put_obj("coupon", "b-five",
            "{\"title\":\"Five dollars\",\"discount_type\":\"DISCOUNT_TYPE_FIXED_AMOUNT\","
            "\"discount_amount\":500}");
    tally__priced_t p;
    price(NULL, at(2024, 2, 1, 0), at(2024, 3, 1, 0), &p);
    cr_expect_eq(p.subtotal_cents, 15660);
    cr_expect_eq(p.discount_cents, 1566 + 500);
    cr_expect_eq(p.total_cents, 15660 - 2066);
    cr_assert_eq(p.ncoupons, 2);
    cr_expect_str_eq(p.coupons[0].title, "Ten");
    cr_expect_eq(p.coupons[0].type, TALLY_DISCOUNT_PERCENTAGE);
    cr_expect_eq(p.coupons[1].amount, 500);
    tally__priced_free(&p);
    put_obj("coupon", "c-all",
            "{\"title\":\"All\",\"discount_type\":\"DISCOUNT_TYPE_PERCENTAGE\","
            "\"discount_amount\":15000}");
    price(NULL, at(2024, 2, 1, 0), at(2024, 3, 1, 0), &p);
    cr_expect_eq(p.discount_cents, 15660, "over 100 %: the total is 0, not negative");
    cr_expect_eq(p.total_cents, 0);
    tally__priced_free(&p);
}

Test(pricing_period, bad_periods)
{
    tally__priced_t p;
    int64_t feb1 = at(2024, 2, 1, 0);
    cr_expect_eq(tally__pricing_period(store, cat, plans, "basic", NULL, feb1, feb1, feb1, &p),
                 TALLY_EINVAL);
    cr_expect_eq(tally__pricing_period(store, cat, plans, "basic", NULL, feb1, feb1 - 1, feb1, &p),
                 TALLY_EINVAL);
    cr_expect_eq(
        tally__pricing_period(store, cat, plans, "basic", NULL, feb1, at(2024, 3, 1, 1), feb1, &p),
        TALLY_EINVAL, "spans two months");
    cr_expect_eq(tally__pricing_period(store, cat, plans, "basic", NULL, feb1, INT64_MAX, feb1, &p),
                 TALLY_EINVAL);
    cr_expect_eq(p.n, 0);
    tally__priced_free(&p);
}

Test(pricing_period, first_month_of_monthly_usage)
{
    int64_t now = at(2024, 5, 15, 0), first;
    cr_assert_eq(tally__pricing_first_month(store, NULL, now, &first), 0);
    cr_expect_eq(first, at(2024, 5, 1, 0), "nothing yet: the current month");
    feb_usage();
    cr_assert_eq(tally__pricing_first_month(store, NULL, now, &first), 0);
    cr_expect_eq(first, at(2024, 2, 1, 0));
    cr_assert_eq(tally__pricing_first_month(store, "zzz", now, &first), 0);
    cr_expect_eq(first, at(2024, 5, 1, 0));
    put_sub("s1", "basic", at(2023, 11, 1, 0), 0);
    cr_assert_eq(tally__pricing_first_month(store, NULL, now, &first), 0);
    cr_expect_eq(first, at(2023, 11, 1, 0));
    cr_assert_eq(tally__pricing_first_month(store, "b", now, &first), 0);
    cr_expect_eq(first, at(2024, 2, 1, 0), "a namespace: its data only");
}

/* ---- issue 15: namespace shares, plan history order, month end ------------------------ */

#include "billing.h"
#include "invoices.h"

Test(pricing, allocate_by_largest_remainder_sums_exactly)
{
    uint64_t w[3] = {1, 1, 1};
    int64_t sh[3];
    cr_assert_eq(tally__pricing_allocate(100, w, 3, sh), 0);
    cr_expect_eq(sh[0], 34, "the cent left goes to the first of equal remainders");
    cr_expect_eq(sh[1], 33);
    cr_expect_eq(sh[2], 33);
    uint64_t w2[4] = {5, 0, 3, 2}; /* 7 cents: 3.5, 0, 2.1, 1.4 */
    int64_t sh2[4];
    cr_assert_eq(tally__pricing_allocate(7, w2, 4, sh2), 0);
    cr_expect_eq(sh2[0], 4);
    cr_expect_eq(sh2[1], 0, "no usage, no share");
    cr_expect_eq(sh2[2], 2);
    cr_expect_eq(sh2[3], 1);
    uint64_t big[2] = {UINT64_MAX / 2, UINT64_MAX / 2};
    cr_assert_eq(tally__pricing_allocate(INT64_MAX, big, 2, sh), 0);
    cr_expect_eq(sh[0] + (sh[1] - INT64_MAX), 0, "no overflow: the shares add up");
    cr_expect_eq(tally__pricing_allocate(-1, w, 3, sh), TALLY_EINVAL);
}

Test(pricing_period, five_namespaces_add_up_to_the_tenant_to_the_cent)
{
    /* 5 namespaces x 3,000,001 requests: the tenant's 15,000,005 bill 16 M, 10 included,
     * 6 x 60 c = 360 c; each namespace alone is under the allowance (3 of 10 M) */
    const char *nss[5] = {"ns-a", "ns-b", "ns-c", "ns-d", "ns-e"};
    int64_t feb = at(2024, 2, 1, 0);
    for (int i = 0; i < 5; i++) {
        put(nss[i], "http_requests", feb + (i + 1) * DAY, 3000001);
        put(nss[i], "bytes_out", feb + (i + 1) * DAY, (int64_t)(i + 1) * 333333333333LL);
    }
    tally__priced_t t;
    price(NULL, feb, at(2024, 3, 1, 0), &t);
    int64_t tenant_usage = 0;
    for (size_t i = 0; i < t.n; i++)
        if (!t.lines[i].fixed)
            tenant_usage += t.lines[i].amount_cents;
    cr_expect_eq(line(&t, "HTTP Requests")->amount_cents, 360);
    /* 5,000 GB: 900 x 9 + 4000 x 7 = 36,100 c */
    cr_expect_eq(line(&t, "Data Transfer Out")->amount_cents, 900 * 9 + 4000 * 7);
    int64_t sum = 0, http = 0, out = 0;
    for (int i = 0; i < 5; i++) {
        tally__priced_t p;
        price(nss[i], feb, at(2024, 3, 1, 0), &p);
        sum += p.total_cents;
        http += line(&p, "HTTP Requests")->amount_cents;
        out += line(&p, "Data Transfer Out")->amount_cents;
        cr_expect_eq(line(&p, "HTTP Requests")->amount_cents, 72, "equal usage, equal share");
        cr_expect_eq(line(&p, "HTTP Requests")->quantity, 3000001.0, "its own quantity");
        tally__priced_free(&p);
    }
    cr_expect_eq(http, 360);
    cr_expect_eq(out, 900 * 9 + 4000 * 7);
    cr_expect_eq(sum, tenant_usage, "namespace costs are shares of the tenant's usage charges");
    tally__priced_free(&t);
}

/* Two plan changes in one second, through lib/billing as tallyd makes them,
 * price the usage on the plan that is current, every time (the records'
 * order is not their store order: uids are random). */
Test(pricing_period, two_plan_changes_in_one_second_price_on_the_current_plan)
{
    for (int k = 0; k < 12; k++) {
        char sub[160];
        snprintf(sub, sizeof sub, "%s/store%d", dir, k);
        tally__store_t *st;
        cr_assert_eq(tally__store_open(sub, 16 * MiB, 0, &st), 0);
        tally__billing_env_t env = {.store = st, .plans = plans, .default_plan = "basic"};
        int64_t t = at(2024, 2, 10, 12) + k;
        char msg[256] = "";
        tally__billing_created_t c;
        json_t *r1 = json_pack("{s:s}", "new_plan", "pro");
        json_t *r2 = json_pack("{s:s}", "new_plan", "basic");
        cr_assert_eq(tally__billing_transition_create(&env, "system", r1, t, &c, msg, sizeof msg),
                     0, "%s", msg);
        cr_assert_str_eq(c.state, TALLY_BILLING_STATE_FINISHED);
        cr_assert_eq(tally__billing_transition_create(&env, "system", r2, t, &c, msg, sizeof msg),
                     0, "%s", msg);
        cr_assert_str_eq(c.state, TALLY_BILLING_STATE_FINISHED);
        json_decref(r1);
        json_decref(r2);
        char key[TALLY_SERIES_KEY_MAX];
        size_t klen = tally__series_key(key, "a", 1, "http_requests", 13, NULL, 0);
        tally__rollup_t r;
        tally__rollup_init(&r);
        tally__rollup_add(&r, 0, 20000000, 0.0, (t + 60) * 1000);
        tally__store_put_t mp = {key, (uint32_t)klen, tally__time_month_start(t), &r, 0};
        tally__store_put_t hp = {key, (uint32_t)klen, tally__time_hour_start(t + 60), &r, 1};
        cr_assert_eq(tally__store_commit(st, &hp, 1, &mp, 1, NULL, 0), 0);
        tally__priced_t p;
        cr_assert_eq(tally__pricing_period(st, cat, plans, "basic", NULL, at(2024, 2, 1, 0),
                                           at(2024, 3, 1, 0), t, &p),
                     0);
        /* basic: 20 M, 10 included, 60 c -> 600; pro would be 20 x 50 = 1000 */
        cr_expect_eq(line(&p, "HTTP Requests")->amount_cents, 600, "try %d", k);
        cr_expect_null(line(&p, "Plan fee: Pro"), "try %d: a plan in force for 0 s", k);
        int64_t fees = 0;
        for (size_t i = 0; i < p.n; i++)
            fees += p.lines[i].fixed ? p.lines[i].amount_cents : 0;
        cr_expect_eq(fees, 3100, "try %d: basic on both sides of the change, all month", k);
        tally__priced_free(&p);
        tally__store_close(st);
    }
}

/* ---- month end over the real pricing ---------------------------------------------- */

static tally__invoices_env_t
inv_env(void)
{
    tally__invoices_env_t e = {.store = store,
                               .catalog = cat,
                               .plans = plans,
                               .default_plan = "basic",
                               .tenant = "acme",
                               .currency = "USD",
                               .due_days = 30,
                               .price = tally__pricing_period,
                               .price_free = tally__priced_free,
                               .close_grace_hours = 48,
                               .late_window_hours = 168};
    return e;
}

static const tally__price_line_t *
inv_line(const tally__invoice_t *inv, const char *usage_type)
{
    return line(&inv->priced, usage_type);
}

Test(pricing_period, month_end_waits_the_grace_and_late_usage_is_billed_on_the_next_invoice)
{
    tally__invoices_env_t e = inv_env();
    int64_t nov = at(2026, 11, 1, 0), dec = at(2026, 12, 1, 0);
    put("a", "http_requests", at(2026, 11, 20, 0), 20000000); /* 20 M: (20-10) x 60 = 600 */
    size_t closed = 9;
    cr_assert_eq(tally__invoices_close_ended(&e, nov, dec + 47 * HOUR, &closed), 0);
    cr_expect_eq(closed, 0, "inside the 48 h grace: November stays open");
    put("b", "http_requests", at(2026, 11, 30, 23), 1000000); /* late, inside the grace */
    cr_assert_eq(tally__invoices_close_ended(&e, nov, dec + 48 * HOUR, &closed), 0);
    cr_expect_eq(closed, 1);
    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_get(&e, "inv-2026-11", dec + 49 * HOUR, &inv), 0);
    cr_expect_eq(inv_line(&inv, "HTTP Requests")->amount_cents, 660, "the grace's usage is on it");
    tally__invoice_fini(&inv);

    /* after the close, still inside the late window: 2,000,001 more November requests */
    put("c", "http_requests", at(2026, 11, 15, 0), 2000001);
    int64_t now = dec + 72 * HOUR;
    int64_t invoiced, late;
    cr_assert_eq(tally__invoices_late(&e, nov, now, &invoiced, &late), 0);
    cr_expect_eq(invoiced, 3100 + 660);
    cr_expect_eq(late, 3 * 60, "21 M billed, 24 M now (23,000,001 rounds up)");
    cr_assert_eq(tally__invoices_running(&e, now, &inv), 0);
    const tally__price_line_t *adj = inv_line(&inv, "Late usage for 2026-11: HTTP Requests");
    cr_assert_not_null(adj, "the late usage is an adjustment line of December");
    cr_expect_eq(adj->amount_cents, 180);
    cr_expect_eq(adj->billable, 3);
    cr_expect_eq(adj->start_s, nov);
    cr_expect_eq(adj->end_s, dec);
    int64_t sum = 0;
    for (size_t i = 0; i < inv.priced.n; i++)
        sum += inv.priced.lines[i].amount_cents;
    cr_expect_eq(inv.priced.subtotal_cents, sum);
    cr_expect_eq(inv.priced.total_cents, sum);
    tally__invoice_fini(&inv);

    /* December closes with it; January does not bill it again */
    int64_t jan = at(2027, 1, 1, 0);
    cr_assert_eq(tally__invoices_close_ended(&e, nov, jan + 49 * HOUR, &closed), 0);
    cr_expect_eq(closed, 1);
    cr_assert_eq(tally__invoices_get(&e, "inv-2026-12", jan + 50 * HOUR, &inv), 0);
    cr_assert_not_null(inv_line(&inv, "Late usage for 2026-11: HTTP Requests"));
    cr_expect_eq(inv_line(&inv, "Late usage for 2026-11: HTTP Requests")->amount_cents, 180,
                 "frozen with December");
    tally__invoice_fini(&inv);
    cr_assert_eq(tally__invoices_running(&e, jan + 50 * HOUR, &inv), 0);
    cr_expect_null(inv_line(&inv, "Late usage for 2026-11: HTTP Requests"), "billed once");
    tally__invoice_fini(&inv);
}

Test(pricing_period, close_refuses_months_before_the_tenant_and_months_not_ended)
{
    tally__invoices_env_t e = inv_env();
    put("a", "http_requests", at(2026, 11, 20, 0), 1);
    char msg[256] = "";
    int64_t now = at(2026, 12, 10, 0);
    cr_expect_eq(tally__invoices_close_check(&e, at(1999, 1, 1, 0), now, msg, sizeof msg),
                 TALLY_EINVAL);
    cr_expect(strstr(msg, "before the tenant's first usage or plan") != NULL, "%s", msg);
    cr_expect_eq(tally__invoices_close_check(&e, at(2026, 10, 1, 0), now, msg, sizeof msg),
                 TALLY_EINVAL);
    cr_expect_eq(tally__invoices_close_check(&e, at(2026, 12, 1, 0), now, msg, sizeof msg),
                 TALLY_EBUSY);
    cr_expect(strstr(msg, "has not ended") != NULL, "%s", msg);
    cr_expect_eq(tally__invoices_close_check(&e, at(2026, 11, 1, 0), now, msg, sizeof msg), 0);
}

/* The running invoice and current_usage's default period are one rule: the
 * month to date, fee prorated by the days elapsed. */
Test(pricing_period, running_invoice_prices_the_month_to_date_like_current_usage)
{
    tally__invoices_env_t e = inv_env();
    feb_usage();
    int64_t now = at(2024, 2, 11, 9);
    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_running(&e, now, &inv), 0);
    tally__priced_t p;
    int64_t m = tally__time_month_start(now);
    cr_assert_eq(tally__pricing_period(store, cat, plans, "basic", NULL, m,
                                       tally__pricing_month_end(m, now), now, &p),
                 0);
    cr_expect_eq(inv.priced.total_cents, p.total_cents);
    cr_expect_eq(inv_line(&inv, "Plan fee: Basic")->amount_cents, (3100 * 11 * 2 + 29) / 58,
                 "11 of 29 days");
    cr_expect_eq(inv_line(&inv, "Plan fee: Basic")->billable, 11);
    tally__priced_free(&p);
    tally__invoice_fini(&inv);
    cr_expect_eq(tally__pricing_month_end(m, now), now);
    cr_expect_eq(tally__pricing_month_end(m, m), m + 1);
    cr_expect_eq(tally__pricing_month_end(at(2024, 1, 1, 0), now), m);
}
