/* test_pricing_api.c — end-to-end tests of current_usage and monthly_usage against a real tallyd.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"
#include "openapi_validate.h"

#define DAY 86400LL
#define ADMIN HARNESS_ADMIN_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN

static harness_t *H;

/* The shipped plan "individual": $20 a month; 60 c per million requests past
 * 10 million; 100 GB out included then 9 c/GB; 5 c per vCPU-hour past 100. */
static void
setup(void)
{
    static const char *const env[] = {"TALLY_BILLING_DEFAULT_PLAN=individual", NULL};
    H = harness_start(env);
}

static void
teardown(void)
{
    harness_t *h = H;
    H = NULL;
    harness_stop(h);
}

TestSuite(pricing_api, .init = setup, .fini = teardown, .timeout = 300);

static json_t *
spec(void)
{
    char path[2048];
    const char *src = getenv("TALLY_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/daemon/openapi.json", src ? src : ".");
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    cr_assert_not_null(doc, "cannot load %s: %s", path, e.text);
    return doc;
}

static void
expect_schema(const char *schema, json_t *v)
{
    char err[512];
    json_t *doc = spec();
    int rc = openapi_validate_strict(doc, schema, v, err, sizeof err);
    json_decref(doc);
    cr_assert_eq(rc, 0, "response does not match %s: %s", schema, err);
}

static json_t *
post(const char *ns, const char *what, const char *token, const char *body, int expect)
{
    char path[256];
    int status;
    snprintf(path, sizeof path, "/api/web/namespaces/%s/%s", ns, what);
    json_t *j = harness_post_json(H, path, token, body, &status);
    if (status != expect) {
        char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
        cr_log_error("POST %s -> %d: %s", path, status, t ? t : "(no JSON)");
        free(t);
    }
    cr_assert_eq(status, expect, "POST %s: %d, expected %d", path, status, expect);
    cr_assert_not_null(j);
    return j;
}

/* Days of the month of t and t's day of the month (UTC). */
static void
month_days(int64_t t, int *dim, int *mday)
{
    static const int len[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    char buf[40];
    harness_rfc3339(t, buf, sizeof buf);
    int y, m, d;
    cr_assert_eq(sscanf(buf, "%d-%d-%d", &y, &m, &d), 3);
    *dim = len[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    *mday = d;
}

/* Start of t's month, unix seconds. */
static int64_t
month_start(int64_t t)
{
    int dim, mday;
    month_days(t, &dim, &mday);
    return t - t % DAY - (int64_t)(mday - 1) * DAY;
}

static json_t *
item(json_t *items, const char *usage_type)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (strcmp(json_string_value(json_object_get(it, "usage_type")), usage_type) == 0)
            return it;
    }
    return NULL;
}

static long long
i64(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "%s: int64 fields are JSON strings", key);
    return strtoll(json_string_value(v), NULL, 10);
}

/* Emits known events this month; returns the time they were emitted. */
static int64_t
load(void)
{
    int64_t now = harness_now_ms() / 1000;
    int64_t t = now - 120 > month_start(now) ? now - 120 : month_start(now);
    harness_emit(H, "demo", "http_requests", 15000000, t * 1000, "object=lb1");
    harness_emit(H, "demo", "http_requests", 1, t * 1000, "object=lb2");
    harness_emit(H, "demo", "bytes_out", 150000000001LL, t * 1000, "object=cdn");
    harness_emit(H, "other", "vcpu_seconds", 360001, t * 1000, NULL);
    harness_flush(H);
    return t;
}

Test(pricing_api, current_usage_prices_the_month_to_date)
{
    load();
    for (int attempt = 0; attempt < 3; attempt++) {
        int dim, mday, dim2, mday2;
        month_days(harness_now_ms() / 1000, &dim, &mday);
        json_t *r = post("system", "current_usage", ADMIN, "{}", 200);
        month_days(harness_now_ms() / 1000, &dim2, &mday2);
        if (mday != mday2) { /* midnight passed during the request */
            json_decref(r);
            continue;
        }
        expect_schema("usageListCurrentUsageResp", r);
        json_t *items = json_object_get(r, "usage_items");
        long long fee = (2000LL * mday * 2 + dim) / (2 * dim); /* prorated, half up */
        json_t *f = item(items, "Plan fee: Individual");
        cr_assert_not_null(f);
        cr_expect_eq(i64(f, "amount"), fee);
        cr_expect(json_is_true(json_object_get(f, "fixed")));
        cr_expect_str_eq(json_string_value(json_object_get(f, "status")), "STATUS_NOT_MEASURED");
        json_t *http = item(items, "HTTP Requests");
        cr_assert_not_null(http);
        cr_expect_eq(i64(http, "quantity_billable"), 16);
        cr_expect_eq(i64(http, "amount"), (16 - 10) * 60);
        cr_expect_eq(json_real_value(json_object_get(http, "quantity")) +
                         (double)json_integer_value(json_object_get(http, "quantity")),
                     15000001.0);
        cr_expect_str_eq(json_string_value(json_object_get(http, "status")), "STATUS_ACTIVE");
        cr_expect_str_eq(json_string_value(json_object_get(http, "currency_code")), "USD");
        cr_expect_str_eq(json_string_value(json_object_get(http, "unit_name_billable")),
                         "million requests");
        json_t *out = item(items, "Data Transfer Out");
        cr_expect_eq(i64(out, "quantity_billable"), 151);
        cr_expect_eq(i64(out, "amount"), 51 * 9);
        json_t *cpu = item(items, "vCPU");
        cr_expect_eq(i64(cpu, "quantity_billable"), 101);
        cr_expect_eq(i64(cpu, "amount"), 5);
        json_t *lb = item(items, "Load Balancers");
        cr_assert_not_null(lb, "priced without usage");
        cr_expect_str_eq(json_string_value(json_object_get(lb, "status")), "STATUS_NO_DATA");
        cr_expect_eq(i64(lb, "amount"), 0);
        cr_expect_eq(i64(r, "total_cost"), fee + 360 + 459 + 5);
        cr_expect_eq(i64(r, "discount"), 0);
        cr_expect_eq(json_array_size(json_object_get(r, "coupons")), 0);
        json_decref(r);

        /* demo: its own usage, no flat fee */
        r = post("demo", "current_usage", VIEWER, "{\"namespace\":\"demo\"}", 200);
        expect_schema("usageListCurrentUsageResp", r);
        items = json_object_get(r, "usage_items");
        cr_expect_null(item(items, "Plan fee: Individual"));
        cr_expect_eq(i64(item(items, "HTTP Requests"), "amount"), 360);
        cr_expect_eq(i64(item(items, "Data Transfer Out"), "amount"), 459);
        cr_expect_str_eq(json_string_value(json_object_get(item(items, "vCPU"), "status")),
                         "STATUS_NO_DATA");
        cr_expect_eq(i64(r, "total_cost"), 360 + 459);
        json_decref(r);
        return;
    }
    cr_assert_fail("midnight kept passing");
}

Test(pricing_api, current_usage_rejects_bad_input)
{
    json_decref(post("demo", "current_usage", VIEWER, "{\"namespace\":\"other\"}", 400));
    json_decref(post("demo", "current_usage", VIEWER, "{\"from\":\"yesterday\"}", 400));
    json_decref(post("system", "current_usage", ADMIN,
                     "{\"from\":\"2024-01-20T00:00:00Z\",\"to\":\"2024-02-02T00:00:00Z\"}", 400));
    json_decref(post("other", "current_usage", VIEWER, "{}", 403));
    /* a past window of one month: usage none, the fee of the days covered */
    json_t *r = post("system", "current_usage", ADMIN,
                     "{\"from\":\"2024-02-01T00:00:00Z\",\"to\":\"2024-03-01T00:00:00Z\"}", 200);
    expect_schema("usageListCurrentUsageResp", r);
    cr_expect_eq(i64(item(json_object_get(r, "usage_items"), "Plan fee: Individual"), "amount"),
                 2000);
    cr_expect_eq(i64(r, "total_cost"), 2000);
    json_decref(r);
}

Test(pricing_api, monthly_usage_lists_the_current_month)
{
    load();
    int64_t now = harness_now_ms() / 1000;
    json_t *cur = post("system", "current_usage", ADMIN, "{}", 200);
    json_t *r = post("system", "monthly_usage", ADMIN, "{}", 200);
    expect_schema("usageListMonthlyUsageResp", r);
    json_t *items = json_object_get(r, "monthly_usage_items");
    cr_assert_geq(json_array_size(items), 1);
    json_t *m = json_array_get(items, 0);
    char want[40];
    harness_rfc3339(month_start(now), want, sizeof want);
    cr_expect_str_eq(json_string_value(json_object_get(m, "start_timestamp")), want);
    cr_expect_str_eq(json_string_value(json_object_get(m, "currency_code")), "USD");
    cr_expect_eq(i64(m, "amount"), i64(cur, "total_cost"));
    json_decref(r);
    json_decref(cur);
    r = post("demo", "monthly_usage", VIEWER, "{}", 200);
    expect_schema("usageListMonthlyUsageResp", r);
    m = json_array_get(json_object_get(r, "monthly_usage_items"), 0);
    cr_expect_eq(i64(m, "amount"), 360 + 459);
    json_decref(r);
}
