/* test_tallyctl_http.c — tallyctl usage and stats against a live tallyd: tables, --json, errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

static harness_t *H;

static void
setup(void)
{
    H = harness_start(NULL);
}

static void
teardown(void)
{
    harness_stop(H);
}

TestSuite(tallyctl_http, .init = setup, .fini = teardown, .timeout = 120);

static char *
ctl(const char *const *argv, int *status)
{
    return harness_tallyctl(H, argv, status);
}

Test(tallyctl_http, usage_prints_the_api_quantities_as_a_table_and_json)
{
    int64_t now = harness_now_ms();
    int64_t h = (now / 1000 / 3600) * 3600 - 3600;
    harness_emit(H, "demo", "http_requests", 40, h * 1000 + 5, "object=lb-7");
    harness_emit(H, "demo", "http_requests", 2, h * 1000 + 6, "object=lb-7");
    harness_emit(H, "other", "bytes_out", 9, h * 1000 + 7, NULL);
    harness_flush(H);
    char url[64], from[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", H->port);
    snprintf(from, sizeof from, "%lld", (long long)h);
    const char *json_args[] = {"usage", "--url", url,      "--token", "dev-demo-viewer-token",
                               "--ns",  "demo",  "--from", from,      "--json",
                               NULL};
    int st;
    char *out = ctl(json_args, &st);
    cr_assert_eq(st, 0, "tallyctl usage --json exit %d: %s", st, out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "not JSON: %s", out);
    json_t *items = json_object_get(j, "usage_items");
    cr_assert_eq(json_array_size(items), 1, "demo only: %s", out);
    json_t *it = json_array_get(items, 0);
    cr_assert_eq(json_integer_value(json_object_get(it, "quantity")), 42);
    cr_assert_str_eq(json_string_value(json_object_get(it, "object_name")), "lb-7");
    json_decref(j);
    free(out);

    const char *table_args[] = {"usage", "--url",  url,      "--token", "dev-admin-token",
                                "--ns",  "system", "--from", from,      NULL};
    out = ctl(table_args, &st);
    cr_assert_eq(st, 0);
    cr_assert(strstr(out, "NAMESPACE") && strstr(out, "QUANTITY"), "header: %s", out);
    /* one line per item, with its namespace, metric, object and quantity */
    int found_demo = 0, found_other = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char ns[32], metric[64], object[64];
        long long q;
        if (sscanf(line, "%31s %63s %63s %lld", ns, metric, object, &q) != 4)
            continue;
        if (!strcmp(ns, "demo") && !strcmp(metric, "http_requests") && !strcmp(object, "lb-7"))
            found_demo = q == 42;
        if (!strcmp(ns, "other") && !strcmp(metric, "bytes_out") && !strcmp(object, "-"))
            found_other = q == 9;
    }
    cr_assert(found_demo && found_other, "table rows wrong");
    free(out);
}

Test(tallyctl_http, usage_reports_http_errors_and_exits_non_zero)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", H->port);
    const char *forbidden[] = {"usage", "--url", url, "--token", "dev-demo-viewer-token",
                               "--ns",  "other", NULL};
    int st;
    char *out = ctl(forbidden, &st);
    cr_assert_neq(st, 0, "403 must fail");
    free(out);
    /* "yesterday" is a time since tallyctl reads what a person types */
    const char *bad_time[] = {"usage", "--url", url,      "--token",      "dev-admin-token",
                              "--ns",  "demo",  "--from", "next tuesday", NULL};
    out = ctl(bad_time, &st);
    cr_assert_eq(st, 2, "a bad --from is a usage error");
    free(out);
    const char *no_server[] = {"usage", "--url", "http://127.0.0.1:1", "--token", "x", "--ns",
                               "demo",  NULL};
    out = ctl(no_server, &st);
    cr_assert_eq(st, 1, "no daemon there");
    free(out);
}

Test(tallyctl_http, stats_reads_the_counters)
{
    harness_emit(H, "demo", "http_requests", 1, 0, NULL);
    harness_emit(H, "demo", "http_requests", 1, 0, NULL);
    harness_emit(H, "demo", "http_requests", 1, 0, NULL);
    harness_flush(H);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", H->port);
    const char *args[] = {"stats", "--url", url, "--json", NULL};
    int st;
    char *out = ctl(args, &st);
    cr_assert_eq(st, 0);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "not JSON: %s", out);
    cr_assert_eq(json_number_value(json_object_get(j, "events_committed")), 3, "%s", out);
    cr_assert_eq(json_number_value(json_object_get(j, "series")), 1, "%s", out);
    cr_assert(json_number_value(json_object_get(j, "flushes")) >= 1);
    cr_assert(json_number_value(json_object_get(j, "map_used_bytes")) > 0);
    json_decref(j);
    free(out);
    const char *table[] = {"stats", "--url", url, NULL};
    out = ctl(table, &st);
    cr_assert_eq(st, 0);
    cr_assert(strstr(out, "events committed") != NULL, "%s", out);
    free(out);
}
