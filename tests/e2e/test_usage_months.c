/* test_usage_months.c — usage_details over windows holding whole months (read from monthly rollups)
 * equals the hour-by-hour truth. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "timeutil.h"

#define ADMIN "dev-admin-token"
#define HOUR 3600

static harness_t *H;

static void
setup(void)
{
    /* the previous whole month must be inside the late window */
    static const char *const env[] = {"TALLY_INGEST_LATE_WINDOW_HOURS=2400", NULL};
    H = harness_start(env);
}

static void
teardown(void)
{
    harness_stop(H);
}

TestSuite(usage_months, .init = setup, .fini = teardown, .timeout = 300);

/* Σ over hourly dump records in [from, to) of metric's sum (or last for the gauge). */
static double
truth(int64_t from, int64_t to, const char *metric, int gauge)
{
    char f[32], t[32];
    snprintf(f, sizeof f, "%lld", (long long)from);
    snprintf(t, sizeof t, "%lld", (long long)to);
    const char *args[] = {"--ns", "months", "--from", f, "--to", t, NULL};
    json_t *dump = harness_dump_json(H, args);
    double total = 0;
    size_t i;
    json_t *rec;
    json_array_foreach(dump, i, rec)
    {
        if (strcmp(json_string_value(json_object_get(rec, "metric")), metric) == 0)
            total += json_number_value(json_object_get(rec, gauge ? "last" : "sum"));
    }
    json_decref(dump);
    return total;
}

static double
api_quantity(int64_t from, int64_t to, const char *metric, json_t **item_out)
{
    char f[32], t[32], body[128];
    snprintf(body, sizeof body, "{\"from\":\"%s\",\"to\":\"%s\"}",
             harness_rfc3339(from, f, sizeof f), harness_rfc3339(to, t, sizeof t));
    int status;
    json_t *r =
        harness_post_json(H, "/api/web/namespaces/months/usage_details", ADMIN, body, &status);
    cr_assert_eq(status, 200, "usage_details: %d", status);
    json_t *items = json_object_get(r, "usage_items");
    size_t i;
    json_t *it;
    double q = -1;
    json_array_foreach(items, i, it)
    {
        if (strcmp(json_string_value(json_object_get(it, "metric_label")), metric) == 0) {
            q = json_number_value(json_object_get(it, "quantity"));
            if (item_out)
                *item_out = json_incref(it);
        }
    }
    json_decref(r);
    return q;
}

static double
breakdown_total(json_t *item)
{
    const char *query = json_string_value(json_object_get(item, "hourly_breakdown_query"));
    cr_assert_not_null(query);
    json_t *req = json_pack("{s:s, s:s}", "namespace", "months", "query", query);
    char *body = json_dumps(req, JSON_COMPACT);
    int status;
    json_t *r = harness_post_json(H, "/api/web/namespaces/months/hourly_usage_details", ADMIN, body,
                                  &status);
    cr_assert_eq(status, 200);
    double total = 0;
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(r, "hourly_usage_items"), i, h)
    {
        total += json_number_value(json_object_get(h, "quantity"));
    }
    json_decref(r);
    json_decref(req);
    free(body);
    return total;
}

Test(usage_months, whole_months_agree_with_the_hours)
{
    int64_t now = harness_now_ms() / 1000;
    int64_t this_month = tally__time_month_start(now);
    int64_t prev_month = tally__time_month_start(this_month - 1);
    int64_t start = prev_month;
    /* 30 hours spread over the previous month, a few in this one; the gauge
     * gets two samples in some hours (the later one must count) */
    for (int i = 0; i < 30; i++) {
        int64_t h = prev_month + (int64_t)(i * 23 + 5) * HOUR;
        harness_emit(H, "months", "http_requests", 10 + i, h * 1000 + 1000, "object=o1");
        harness_emit(H, "months", "lb_count", 2 + i % 3, h * 1000 + 1000, "object=o1");
        if (i % 4 == 0)
            harness_emit(H, "months", "lb_count", 9, h * 1000 + 2000, "object=o1");
    }
    for (int i = 0; i < 4; i++) {
        int64_t h = this_month + (int64_t)i * HOUR;
        if (h + HOUR > now)
            break;
        harness_emit(H, "months", "http_requests", 100, h * 1000 + 1000, "object=o1");
        harness_emit(H, "months", "lb_count", 4, h * 1000 + 1000, "object=o1");
    }
    harness_flush(H);
    /* a second flush touching hours already stored: a later gauge sample
     * replaces an hour's last, an earlier one does not */
    harness_emit(H, "months", "lb_count", 20, (prev_month + 5 * HOUR) * 1000 + 3000, "object=o1");
    harness_emit(H, "months", "lb_count", 50, (prev_month + 28 * HOUR) * 1000 + 1, "object=o1");
    harness_flush(H);

    int64_t windows[][2] = {
        {start, now + HOUR},                  /* one whole month + this month's hours */
        {start, this_month},                  /* exactly one month */
        {start + 2 * HOUR, now + HOUR},       /* no whole month: hour by hour */
        {start - 40 * 24 * HOUR, this_month}, /* an empty month before it, then the month */
    };
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        int64_t f = windows[w][0], t = windows[w][1];
        double want_sum = truth(f, t, "http_requests", 0);
        double want_gauge = truth(f, t, "lb_count", 1);
        json_t *item_sum = NULL, *item_gauge = NULL;
        double got_sum = api_quantity(f, t, "http_requests", &item_sum);
        double got_gauge = api_quantity(f, t, "lb_count", &item_gauge);
        cr_expect_eq(got_sum, want_sum, "window %zu: http_requests API %.0f, hours %.0f", w,
                     got_sum, want_sum);
        cr_expect_eq(got_gauge, want_gauge, "window %zu: lb_count API %.0f, hours %.0f", w,
                     got_gauge, want_gauge);
        cr_assert_not_null(item_sum);
        cr_assert_not_null(item_gauge);
        cr_expect_eq(breakdown_total(item_sum), got_sum, "window %zu: breakdown of http_requests",
                     w);
        cr_expect_eq(breakdown_total(item_gauge), got_gauge, "window %zu: breakdown of lb_count",
                     w);
        json_decref(item_sum);
        json_decref(item_gauge);
    }
}

/* The response cache never outlives a commit: new events show at once. */
Test(usage_months, answers_change_with_every_commit)
{
    int64_t now = harness_now_ms() / 1000;
    int64_t h = tally__time_hour_start(now) - HOUR;
    harness_emit(H, "months", "http_requests", 7, h * 1000, "object=c");
    harness_flush(H);
    double q1 = api_quantity(h, now + HOUR, "http_requests", NULL);
    double again = api_quantity(h, now + HOUR, "http_requests", NULL);
    cr_assert_eq(q1, 7, "first answer %g", q1);
    cr_assert_eq(again, 7);
    for (int i = 1; i <= 3; i++) {
        harness_emit(H, "months", "http_requests", 1, h * 1000 + i, "object=c");
        harness_flush(H);
        double q = api_quantity(h, now + HOUR, "http_requests", NULL);
        cr_assert_eq(q, 7 + i, "after commit %d the answer is %g", i, q);
    }
}
