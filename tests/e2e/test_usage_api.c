/* test_usage_api.c — end-to-end tests of the usage endpoints against a real tallyd. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>

#include "harness.h"
#include "openapi_validate.h"

#define HOUR 3600LL
#define ADMIN HARNESS_ADMIN_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN
#define EDITOR HARNESS_DEMO_EDITOR_TOKEN
#define SUMMARY_PATH "/api/data/namespaces/system/billing/usage_summary"

static harness_t *H;

static void
setup(void)
{
    H = harness_start(NULL);
}

static void
teardown(void)
{
    harness_t *h = H;
    H = NULL;
    harness_stop(h);
}

TestSuite(usage_api, .init = setup, .fini = teardown, .timeout = 300);

/* ---- the data set ---------------------------------------------------------------------- */

/* 2^53 + 1: a double cannot hold it, so only exact integer arithmetic gets it right. */
#define BIG 9007199254740993LL

/*
 * Known events, all hours at or after B = the hour 30 h before now's hour
 * (well inside the 168 h late window):
 *   demo  http_requests  object=lb1 deployment=d1 container=c1: B 100+23, B+1 7, B+3 1000000
 *   demo  http_requests  object=lb1 deployment=d2:               B 5,     B+1 11
 *   demo  http_requests  object=lb2:                             B+2 42
 *   demo  http_requests  (no object):                            B 3
 *   demo  lb_count (gauge) object=lbs: B 2 then 3 (last 3), B+1 4, B+2 5 then 1 (last 1)
 *   demo  custom_widgets (not in the catalog) object=w1:         B 9, B+4 1
 *   demo  bytes_out object=big:                                   B+2 2^53+1
 *   other http_requests object=lb1:                               B 50, B+1 60
 *   other lb_count object=lbs:                                    B 7
 *   shop  bytes_out object=cdn:                                   B+1 2500000000
 */
static int64_t
load_dataset(void)
{
    int64_t now_s = harness_now_ms() / 1000;
    int64_t B = (now_s - now_s % HOUR) - 30 * HOUR;
#define AT(h, min) (((B + (h)*HOUR) + (min)*60) * 1000)
    harness_emit(H, "demo", "http_requests", 100, AT(0, 1),
                 "object=lb1,deployment=d1,container=c1");
    harness_emit(H, "demo", "http_requests", 23, AT(0, 59),
                 "object=lb1,deployment=d1,container=c1");
    harness_emit(H, "demo", "http_requests", 7, AT(1, 30), "object=lb1,deployment=d1,container=c1");
    harness_emit(H, "demo", "http_requests", 1000000, AT(3, 0),
                 "object=lb1,deployment=d1,container=c1");
    harness_emit(H, "demo", "http_requests", 5, AT(0, 10), "object=lb1,deployment=d2");
    harness_emit(H, "demo", "http_requests", 11, AT(1, 10), "deployment=d2,object=lb1");
    harness_emit(H, "demo", "http_requests", 42, AT(2, 20), "object=lb2");
    harness_emit(H, "demo", "http_requests", 3, AT(0, 5), NULL);
    harness_emit(H, "demo", "lb_count", 2, AT(0, 10), "object=lbs");
    harness_emit(H, "demo", "lb_count", 3, AT(0, 50), "object=lbs");
    harness_emit(H, "demo", "lb_count", 4, AT(1, 0), "object=lbs");
    harness_emit(H, "demo", "lb_count", 1, AT(2, 40), "object=lbs"); /* later: the hour's last */
    harness_emit(H, "demo", "lb_count", 5, AT(2, 20), "object=lbs");
    harness_emit(H, "demo", "custom_widgets", 9, AT(0, 0), "object=w1");
    harness_emit(H, "demo", "custom_widgets", 1, AT(4, 59), "object=w1");
    harness_emit(H, "demo", "bytes_out", BIG, AT(2, 0), "object=big");
    harness_emit(H, "other", "http_requests", 50, AT(0, 30), "object=lb1");
    harness_emit(H, "other", "http_requests", 60, AT(1, 30), "object=lb1");
    harness_emit(H, "other", "lb_count", 7, AT(0, 30), "object=lbs");
    harness_emit(H, "shop", "bytes_out", 2500000000LL, AT(1, 45), "object=cdn");
#undef AT
    harness_flush(H);
    return B;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static json_t *
post(const char *path, const char *token, const char *body, int expect_status)
{
    int status;
    json_t *j = harness_post_json(H, path, token, body, &status);
    if (status != expect_status) {
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        cr_log_error("POST %s %s -> %d: %s", path, body ? body : "", status,
                     txt ? txt : "(no JSON)");
        free(txt);
    }
    cr_assert_eq(status, expect_status, "POST %s: status %d, expected %d", path, status,
                 expect_status);
    cr_assert_not_null(j, "POST %s: the response is not JSON", path);
    return j;
}

/* usage_details of path namespace ns over [from_s, to_s) (0 = leave out). */
static json_t *
details(const char *ns, const char *token, int64_t from_s, int64_t to_s, int expect_status)
{
    char path[256], body[256], f[40], t[40];
    snprintf(path, sizeof path, "/api/web/namespaces/%s/usage_details", ns);
    if (from_s && to_s)
        snprintf(body, sizeof body, "{\"from\":\"%s\",\"to\":\"%s\"}",
                 harness_rfc3339(from_s, f, sizeof f), harness_rfc3339(to_s, t, sizeof t));
    else
        snprintf(body, sizeof body, "{}");
    return post(path, token, body, expect_status);
}

static json_t *
items_of(json_t *resp)
{
    json_t *items = json_object_get(resp, "usage_items");
    cr_assert(json_is_array(items), "no usage_items array");
    return items;
}

static const char *
str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    cr_assert_not_null(s, "field %s missing or not a string", k);
    return s;
}

/* An exact integer quantity (a JSON integer, never a real). */
static long long
iqty(json_t *o)
{
    json_t *q = json_object_get(o, "quantity");
    cr_assert(json_is_integer(q), "quantity is not a JSON integer");
    return (long long)json_integer_value(q);
}

static json_t *
find_item(json_t *items, const char *ns, const char *metric, const char *object)
{
    size_t i;
    json_t *it;
    for (i = 0; i < json_array_size(items) && (it = json_array_get(items, i)); i++) {
        if (strcmp(str(it, "namespace"), ns) == 0 && strcmp(str(it, "metric_label"), metric) == 0 &&
            strcmp(str(it, "object_name"), object) == 0)
            return it;
    }
    return NULL;
}

static long long
item_qty(json_t *items, const char *ns, const char *metric, const char *object)
{
    json_t *it = find_item(items, ns, metric, object);
    cr_assert_not_null(it, "no item (%s, %s, '%s')", ns, metric, object);
    return iqty(it);
}

/* hourly_usage_details of path namespace ns for a query. */
static json_t *
hourly(const char *ns, const char *token, const char *query, int expect_status)
{
    char path[256];
    snprintf(path, sizeof path, "/api/web/namespaces/%s/hourly_usage_details", ns);
    json_t *b = json_pack("{s:s}", "query", query);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    json_t *r = post(path, token, body, expect_status);
    free(body);
    return r;
}

static char *
b64(const char *text)
{
    size_t len = strlen(text);
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    cr_assert_not_null(out);
    sodium_bin2base64(out, cap, (const unsigned char *)text, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

static void
expect_400_naming(const char *path, const char *body, const char *field)
{
    json_t *j = post(path, ADMIN, body, 400);
    cr_assert_str_eq(str(j, "code"), "EBADINPUT");
    const char *msg = str(j, "message");
    cr_assert(strstr(msg, field) != NULL, "400 for %s: message '%s' does not name '%s'", body, msg,
              field);
    json_decref(j);
}

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
expect_schema(json_t *doc, const char *schema, json_t *v)
{
    char err[512];
    int rc = openapi_validate_strict(doc, schema, v, err, sizeof err);
    cr_assert_eq(rc, 0, "response does not match %s: %s", schema, err);
}

/* ---- usage_details ------------------------------------------------------------------------ */

Test(usage_api, system_lists_every_namespace_with_exact_quantities)
{
    int64_t B = load_dataset();
    json_t *r = details("system", ADMIN, B, B + 6 * HOUR, 200);
    json_t *items = items_of(r);
    cr_assert_eq(json_array_size(items), 9, "items: %zu", json_array_size(items));
    cr_expect_eq(item_qty(items, "demo", "http_requests", "lb1"), 123 + 7 + 1000000 + 5 + 11);
    cr_expect_eq(item_qty(items, "demo", "http_requests", "lb2"), 42);
    cr_expect_eq(item_qty(items, "demo", "http_requests", ""), 3);
    cr_expect_eq(item_qty(items, "demo", "lb_count", "lbs"), 3 + 4 + 1, "gauge: Σ hourly last");
    cr_expect_eq(item_qty(items, "demo", "custom_widgets", "w1"), 10);
    cr_expect_eq(item_qty(items, "demo", "bytes_out", "big"), BIG, "exact beyond 2^53");
    cr_expect_eq(item_qty(items, "other", "http_requests", "lb1"), 110);
    cr_expect_eq(item_qty(items, "other", "lb_count", "lbs"), 7);
    cr_expect_eq(item_qty(items, "shop", "bytes_out", "cdn"), 2500000000LL);

    /* Sorted by (namespace, metric_label, object_name). */
    const char *order[][3] = {{"demo", "bytes_out", "big"},      {"demo", "custom_widgets", "w1"},
                              {"demo", "http_requests", ""},     {"demo", "http_requests", "lb1"},
                              {"demo", "http_requests", "lb2"},  {"demo", "lb_count", "lbs"},
                              {"other", "http_requests", "lb1"}, {"other", "lb_count", "lbs"},
                              {"shop", "bytes_out", "cdn"}};
    for (size_t i = 0; i < 9; i++) {
        json_t *it = json_array_get(items, i);
        cr_expect_str_eq(str(it, "namespace"), order[i][0], "item %zu", i);
        cr_expect_str_eq(str(it, "metric_label"), order[i][1], "item %zu", i);
        cr_expect_str_eq(str(it, "object_name"), order[i][2], "item %zu", i);
    }

    /* Catalog names and units; an unknown metric is its own usage type, unit "count". */
    json_t *it = find_item(items, "demo", "http_requests", "lb1");
    cr_expect_str_eq(str(it, "usage_type"), "HTTP Requests");
    cr_expect_str_eq(str(it, "unit_name"), "requests");
    it = find_item(items, "demo", "lb_count", "lbs");
    cr_expect_str_eq(str(it, "usage_type"), "Load Balancers");
    cr_expect_str_eq(str(it, "unit_name"), "objects");
    it = find_item(items, "demo", "custom_widgets", "w1");
    cr_expect_str_eq(str(it, "usage_type"), "custom_widgets");
    cr_expect_str_eq(str(it, "unit_name"), "count");

    /* Timestamps: the effective (hour-aligned) window; hourly_breakdown left empty. */
    char f[40], t[40];
    harness_rfc3339(B, f, sizeof f);
    harness_rfc3339(B + 6 * HOUR, t, sizeof t);
    size_t i;
    for (i = 0; i < json_array_size(items) && (it = json_array_get(items, i)); i++) {
        cr_expect_str_eq(str(it, "start_timestamp"), f);
        cr_expect_str_eq(str(it, "end_timestamp"), t);
        cr_expect(json_is_array(json_object_get(it, "hourly_breakdown")));
        cr_expect_eq(json_array_size(json_object_get(it, "hourly_breakdown")), 0);
        cr_expect(strlen(str(it, "hourly_breakdown_query")) > 0);
    }
    json_decref(r);
}

Test(usage_api, single_namespace_lists_only_itself)
{
    int64_t B = load_dataset();
    const char *tokens[] = {ADMIN, VIEWER, EDITOR};
    for (size_t k = 0; k < 3; k++) {
        json_t *r = details("demo", tokens[k], B, B + 6 * HOUR, 200);
        json_t *items = items_of(r);
        cr_assert_eq(json_array_size(items), 6, "demo items: %zu", json_array_size(items));
        size_t i;
        json_t *it;
        for (i = 0; i < json_array_size(items) && (it = json_array_get(items, i)); i++)
            cr_expect_str_eq(str(it, "namespace"), "demo");
        cr_expect_eq(item_qty(items, "demo", "http_requests", "lb1"), 1000146);
        json_decref(r);
    }
    json_t *r = details("other", ADMIN, B, B + 6 * HOUR, 200);
    json_t *items = items_of(r);
    cr_assert_eq(json_array_size(items), 2);
    cr_expect_eq(item_qty(items, "other", "http_requests", "lb1"), 110);
    cr_expect_eq(item_qty(items, "other", "lb_count", "lbs"), 7);
    json_decref(r);
    /* A namespace without data: an empty list, not an error. */
    r = details("nobody", ADMIN, B, B + 6 * HOUR, 200);
    cr_expect_eq(json_array_size(items_of(r)), 0);
    json_decref(r);
}

Test(usage_api, window_counts_only_hours_overlapping_from_to)
{
    int64_t B = load_dataset();
    /* [B+1h, B+3h): hours B+1 and B+2 only. */
    json_t *r = details("demo", ADMIN, B + HOUR, B + 3 * HOUR, 200);
    json_t *items = items_of(r);
    cr_expect_eq(item_qty(items, "demo", "http_requests", "lb1"), 7 + 11);
    cr_expect_eq(item_qty(items, "demo", "http_requests", "lb2"), 42);
    cr_expect_eq(item_qty(items, "demo", "lb_count", "lbs"), 4 + 1);
    cr_expect_eq(item_qty(items, "demo", "bytes_out", "big"), BIG);
    cr_expect_null(find_item(items, "demo", "http_requests", ""), "hour B is outside");
    cr_expect_null(find_item(items, "demo", "custom_widgets", "w1"), "hours B and B+4 are outside");
    cr_expect_eq(json_array_size(items), 4);
    json_decref(r);

    /* from inside an hour counts that whole hour; to just past an hour's start counts it too. */
    r = details("demo", ADMIN, B + HOUR + 1800, B + 2 * HOUR + 1, 200);
    items = items_of(r);
    cr_expect_eq(item_qty(items, "demo", "http_requests", "lb1"), 18);
    cr_expect_eq(item_qty(items, "demo", "http_requests", "lb2"), 42);
    char f[40], t[40];
    cr_expect_str_eq(str(json_array_get(items, 0), "start_timestamp"),
                     harness_rfc3339(B + HOUR, f, sizeof f));
    cr_expect_str_eq(str(json_array_get(items, 0), "end_timestamp"),
                     harness_rfc3339(B + 3 * HOUR, t, sizeof t));
    json_decref(r);

    /* to exactly at an hour's start leaves that hour out. */
    r = details("demo", ADMIN, B + HOUR, B + 2 * HOUR, 200);
    items = items_of(r);
    cr_expect_eq(item_qty(items, "demo", "http_requests", "lb1"), 18);
    cr_expect_null(find_item(items, "demo", "http_requests", "lb2"));
    json_decref(r);

    /* A window after every event: nothing. */
    r = details("system", ADMIN, B + 5 * HOUR, B + 20 * HOUR, 200);
    cr_expect_eq(json_array_size(items_of(r)), 0);
    json_decref(r);
}

/* ---- hourly_usage_details ----------------------------------------------------------------- */

Test(usage_api, hourly_breakdown_hour_by_hour)
{
    int64_t B = load_dataset();
    json_t *r = details("demo", VIEWER, B, B + 6 * HOUR, 200);
    json_t *it = find_item(items_of(r), "demo", "http_requests", "lb1");
    cr_assert_not_null(it);
    json_t *h = hourly("demo", VIEWER, str(it, "hourly_breakdown_query"), 200);
    json_t *hours = json_object_get(h, "hourly_usage_items");
    cr_assert(json_is_array(hours));
    struct {
        int64_t hour;
        const char *dep, *cont;
        long long q;
    } want[] = {{0, "d1", "c1", 123},
                {0, "d2", "", 5},
                {1, "d1", "c1", 7},
                {1, "d2", "", 11},
                {3, "d1", "c1", 1000000}};
    cr_assert_eq(json_array_size(hours), 5, "hourly items: %zu", json_array_size(hours));
    for (size_t i = 0; i < 5; i++) {
        json_t *x = json_array_get(hours, i);
        char s[40], e[40];
        cr_expect_str_eq(str(x, "start_timestamp"),
                         harness_rfc3339(B + want[i].hour * HOUR, s, sizeof s), "line %zu", i);
        cr_expect_str_eq(str(x, "end_timestamp"),
                         harness_rfc3339(B + (want[i].hour + 1) * HOUR, e, sizeof e), "line %zu",
                         i);
        cr_expect_str_eq(str(x, "deployment"), want[i].dep, "line %zu", i);
        cr_expect_str_eq(str(x, "container"), want[i].cont, "line %zu", i);
        cr_expect_str_eq(str(x, "unit_name"), "requests");
        cr_expect_eq(iqty(x), want[i].q, "line %zu", i);
    }
    json_decref(h);

    /* The gauge: each hour's last value. */
    it = find_item(items_of(r), "demo", "lb_count", "lbs");
    h = hourly("demo", VIEWER, str(it, "hourly_breakdown_query"), 200);
    hours = json_object_get(h, "hourly_usage_items");
    cr_assert_eq(json_array_size(hours), 3);
    cr_expect_eq(iqty(json_array_get(hours, 0)), 3);
    cr_expect_eq(iqty(json_array_get(hours, 1)), 4);
    cr_expect_eq(iqty(json_array_get(hours, 2)), 1);
    cr_expect_str_eq(str(json_array_get(hours, 0), "unit_name"), "objects");
    json_decref(h);
    json_decref(r);
}

Test(usage_api, breakdown_query_round_trip_sums_to_the_quantity)
{
    int64_t B = load_dataset();
    const int64_t windows[][2] = {
        {B, B + 6 * HOUR}, {B + HOUR, B + 3 * HOUR}, {B + 2 * HOUR, B + 5 * HOUR}};
    for (size_t w = 0; w < 3; w++) {
        json_t *r = details("system", ADMIN, windows[w][0], windows[w][1], 200);
        json_t *items = items_of(r);
        cr_assert(json_array_size(items) > 0);
        size_t i;
        json_t *it;
        for (i = 0; i < json_array_size(items) && (it = json_array_get(items, i)); i++) {
            const char *q = str(it, "hourly_breakdown_query");
            /* The query is standard base64 of
             * {"namespace","metric_label","object_name","from","to"}. */
            size_t len = strlen(q), blen;
            char *bin = calloc(1, len + 1);
            cr_assert_eq(sodium_base642bin((unsigned char *)bin, len, q, len, NULL, &blen, NULL,
                                           sodium_base64_VARIANT_ORIGINAL),
                         0, "not standard base64: %s", q);
            json_t *dq = json_loadb(bin, blen, 0, NULL);
            free(bin);
            cr_assert(json_is_object(dq));
            cr_expect_str_eq(str(dq, "namespace"), str(it, "namespace"));
            cr_expect_str_eq(str(dq, "metric_label"), str(it, "metric_label"));
            cr_expect_str_eq(str(dq, "object_name"), str(it, "object_name"));
            cr_expect_str_eq(str(dq, "from"), str(it, "start_timestamp"));
            cr_expect_str_eq(str(dq, "to"), str(it, "end_timestamp"));
            json_decref(dq);

            /* Through the system path, and through the item's own namespace. */
            const char *paths[] = {"system", str(it, "namespace")};
            for (size_t p = 0; p < 2; p++) {
                json_t *h = hourly(paths[p], ADMIN, q, 200);
                json_t *hours = json_object_get(h, "hourly_usage_items");
                cr_assert(json_array_size(hours) > 0);
                long long sum = 0;
                size_t k;
                json_t *x;
                const char *prev = "";
                for (k = 0; k < json_array_size(hours) && (x = json_array_get(hours, k)); k++) {
                    sum += iqty(x);
                    cr_expect(strcmp(prev, str(x, "start_timestamp")) <= 0, "hours ascending");
                    prev = str(x, "start_timestamp");
                }
                cr_expect_eq(sum, iqty(it), "(%s, %s, '%s'): Σ hours %lld != quantity %lld",
                             str(it, "namespace"), str(it, "metric_label"), str(it, "object_name"),
                             sum, iqty(it));
                json_decref(h);
            }
        }
        json_decref(r);
    }
}

/* ---- usage_summary ------------------------------------------------------------------------- */

static json_t *
summary_item(json_t *resp, const char *name)
{
    json_t *items = json_object_get(resp, "usage_summary_items");
    cr_assert(json_is_array(items), "no usage_summary_items array");
    size_t i;
    json_t *it;
    for (i = 0; i < json_array_size(items) && (it = json_array_get(items, i)); i++)
        if (strcmp(str(it, "name"), name) == 0)
            return it;
    return NULL;
}

static void
expect_summary(json_t *resp, const char *name, const char *unit, const char *raw,
               const char *billable_unit, const char *billable, long long ts)
{
    json_t *it = summary_item(resp, name);
    cr_assert_not_null(it, "no summary item %s", name);
    cr_expect_str_eq(str(it, "service"), "tally");
    json_t *umd = json_object_get(it, "usage_metric_data");
    json_t *bmd = json_object_get(it, "billing_metric_data");
    cr_assert(json_is_object(umd) && json_is_object(bmd));
    cr_expect_str_eq(str(umd, "unit"), unit, "%s", name);
    json_t *mv = json_object_get(umd, "metric_value");
    cr_expect_str_eq(str(mv, "value"), raw, "%s raw", name);
    cr_expect(json_is_number(json_object_get(mv, "timestamp")));
    if (ts)
        cr_expect_eq((long long)json_number_value(json_object_get(mv, "timestamp")), ts);
    cr_expect_str_eq(str(bmd, "unit"), billable_unit, "%s", name);
    cr_expect_str_eq(str(bmd, "value"), billable, "%s billable", name);
}

Test(usage_api, summary_per_usage_type_with_billable_after_division)
{
    int64_t B = load_dataset();
    char body[256], t[40];
    /* start as unix seconds, end as RFC 3339: both syntaxes of the spec. */
    snprintf(body, sizeof body, "{\"start_time\":\"%lld\",\"end_time\":\"%s\"}", (long long)B,
             harness_rfc3339(B + 6 * HOUR, t, sizeof t));
    json_t *r = post(SUMMARY_PATH, ADMIN, body, 200);
    json_t *items = json_object_get(r, "usage_summary_items");
    cr_assert_eq(json_array_size(items), 4, "usage types: %zu", json_array_size(items));
    long long ts = B + 6 * HOUR;
    /* 2500000000 + 2^53+1 bytes = 9007201754740993 bytes = 9007201.754740993 GB, exactly. */
    expect_summary(r, "Data Transfer Out", "bytes", "9007201754740993", "GB", "9007201.754740993",
                   ts);
    /* 1000146 + 42 + 3 (demo) + 110 (other) requests. */
    expect_summary(r, "HTTP Requests", "requests", "1000301", "million requests", "1.000301", ts);
    /* 8 object-hours in demo, 7 in other. */
    expect_summary(r, "Load Balancers", "objects", "15", "object-hours", "15", ts);
    expect_summary(r, "custom_widgets", "count", "10", "count", "10", ts);
    /* Sorted by usage type. */
    cr_expect_str_eq(str(json_array_get(items, 0), "name"), "Data Transfer Out");
    cr_expect_str_eq(str(json_array_get(items, 3), "name"), "custom_widgets");
    json_decref(r);

    /* Only start_time: the 6 hours after it. */
    snprintf(body, sizeof body, "{\"start_time\":\"%lld\"}", (long long)(B + 2 * HOUR));
    r = post(SUMMARY_PATH, ADMIN, body, 200);
    expect_summary(r, "HTTP Requests", "requests", "1000042", "million requests", "1.000042",
                   B + 8 * HOUR);
    expect_summary(r, "Load Balancers", "objects", "1", "object-hours", "1", 0);
    json_decref(r);

    /* Only end_time: the 6 hours before it ([B-4h, B+2h): hours B and B+1). */
    snprintf(body, sizeof body, "{\"end_time\":\"%s\"}",
             harness_rfc3339(B + 2 * HOUR, t, sizeof t));
    r = post(SUMMARY_PATH, ADMIN, body, 200);
    /* hour B: 123 + 5 + 3 (demo) + 50 (other); hour B+1: 7 + 11 (demo) + 60 (other) */
    expect_summary(r, "HTTP Requests", "requests", "259", "million requests", "0.000259", 0);
    expect_summary(r, "Load Balancers", "objects", "14", "object-hours", "14", 0);
    expect_summary(r, "Data Transfer Out", "bytes", "2500000000", "GB", "2.5", 0);
    json_decref(r);
}

Test(usage_api, float_values_render_as_json_reals)
{
    int64_t now_s = harness_now_ms() / 1000;
    int64_t B = (now_s - now_s % HOUR) - 10 * HOUR;
    harness_emit_float(H, "demo", "vcpu_seconds", 1.5, (B + 60) * 1000, "object=vm1");
    harness_emit_float(H, "demo", "vcpu_seconds", 2.25, (B + 120) * 1000, "object=vm1");
    harness_emit(H, "demo", "vcpu_seconds", 3, (B + HOUR) * 1000, "object=vm1");
    harness_flush(H);
    json_t *r = details("demo", ADMIN, B, B + 2 * HOUR, 200);
    json_t *it = find_item(items_of(r), "demo", "vcpu_seconds", "vm1");
    cr_assert_not_null(it);
    json_t *q = json_object_get(it, "quantity");
    cr_expect(json_is_real(q), "a non-integer quantity is a JSON real");
    cr_expect_float_eq(json_real_value(q), 6.75, 1e-12);
    json_t *h = hourly("demo", ADMIN, str(it, "hourly_breakdown_query"), 200);
    json_t *hours = json_object_get(h, "hourly_usage_items");
    cr_assert_eq(json_array_size(hours), 2);
    cr_expect_float_eq(json_number_value(json_object_get(json_array_get(hours, 0), "quantity")),
                       3.75, 1e-12);
    cr_expect(json_is_integer(json_object_get(json_array_get(hours, 1), "quantity")));
    json_decref(h);
    json_decref(r);

    char body[128];
    snprintf(body, sizeof body, "{\"start_time\":\"%lld\",\"end_time\":\"%lld\"}", (long long)B,
             (long long)(B + 2 * HOUR));
    r = post(SUMMARY_PATH, ADMIN, body, 200);
    /* 6.75 vCPU seconds / 3600 = 0.001875 vCPU-hours. */
    expect_summary(r, "vCPU", "seconds", "6.75", "vCPU-hours", "0.001875", 0);
    json_decref(r);
}

Test(usage_api, defaults_are_month_to_date_and_the_last_six_hours)
{
    int64_t now = harness_now_ms();
    harness_emit(H, "demo", "http_requests", 17, now - 1000, "object=recent");
    harness_emit(H, "demo", "http_requests", 1000, now - 8 * HOUR * 1000, "object=old");
    harness_flush(H);
    json_t *r = details("demo", ADMIN, 0, 0, 200);
    json_t *items = items_of(r);
    cr_expect_eq(item_qty(items, "demo", "http_requests", "recent"), 17);
    /* start_timestamp: 00:00 UTC of the 1st of this month. */
    char want[40];
    harness_rfc3339(now / 1000, want, sizeof want);
    memcpy(want + 8, "01T00:00:00Z", 13);
    cr_expect_str_eq(str(find_item(items, "demo", "http_requests", "recent"), "start_timestamp"),
                     want);
    json_decref(r);

    r = post(SUMMARY_PATH, ADMIN, "{}", 200);
    json_t *sitems = json_object_get(r, "usage_summary_items");
    cr_assert_eq(json_array_size(sitems), 1, "only the recent event is in the last 6 hours");
    expect_summary(r, "HTTP Requests", "requests", "17", "million requests", "0.000017", 0);
    json_decref(r);
    /* Empty strings are unset fields (as protobuf JSON clients send them). */
    r = post(SUMMARY_PATH, ADMIN, "{\"start_time\":\"\",\"end_time\":\"\"}", 200);
    expect_summary(r, "HTTP Requests", "requests", "17", "million requests", "0.000017", 0);
    json_decref(r);
}

/* ---- equal to tallyctl dump -------------------------------------------------------------------
 */

/* The label `key` of a dump record, "" when absent. */
static const char *
dump_label(json_t *rec, const char *key)
{
    const char *v = json_string_value(json_object_get(json_object_get(rec, "labels"), key));
    return v ? v : "";
}

Test(usage_api, quantities_equal_tallyctl_dump_for_the_same_window)
{
    int64_t B = load_dataset();
    const int64_t windows[][2] = {{B, B + 6 * HOUR}, {B + HOUR, B + 3 * HOUR}};
    for (size_t w = 0; w < 2; w++) {
        char from[32], to[32];
        snprintf(from, sizeof from, "%lld", (long long)windows[w][0]);
        snprintf(to, sizeof to, "%lld", (long long)windows[w][1]);
        const char *args[] = {"--from", from, "--to", to, NULL};
        json_t *dump = harness_dump_json(H, args);
        cr_assert(json_array_size(dump) > 0);
        json_t *r = details("system", ADMIN, windows[w][0], windows[w][1], 200);
        json_t *items = items_of(r);
        /* Per item: Σ of the dump's sums (or, for the lb_count gauge, of its hourly lasts). */
        json_t *totals = json_object();
        size_t i;
        json_t *rec;
        for (i = 0; i < json_array_size(dump) && (rec = json_array_get(dump, i)); i++) {
            const char *metric = json_string_value(json_object_get(rec, "metric"));
            json_t *v = json_object_get(rec, strcmp(metric, "lb_count") == 0 ? "last" : "sum");
            cr_assert(json_is_integer(v), "dump value is not an integer");
            char key[256];
            snprintf(key, sizeof key, "%s|%s|%s", json_string_value(json_object_get(rec, "ns")),
                     metric, dump_label(rec, "object"));
            json_t *cur = json_object_get(totals, key);
            long long sum = (cur ? json_integer_value(cur) : 0) + json_integer_value(v);
            json_object_set_new(totals, key, json_integer(sum));
        }
        cr_assert_eq(json_object_size(totals), json_array_size(items),
                     "dump has %zu items, the API %zu", json_object_size(totals),
                     json_array_size(items));
        json_t *it;
        for (i = 0; i < json_array_size(items) && (it = json_array_get(items, i)); i++) {
            char key[256];
            snprintf(key, sizeof key, "%s|%s|%s", str(it, "namespace"), str(it, "metric_label"),
                     str(it, "object_name"));
            json_t *want = json_object_get(totals, key);
            cr_assert_not_null(want, "the API has %s, the dump does not", key);
            cr_expect_eq(iqty(it), (long long)json_integer_value(want), "%s: API %lld, dump %lld",
                         key, iqty(it), (long long)json_integer_value(want));
        }
        json_decref(totals);
        json_decref(r);
        json_decref(dump);
    }
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(usage_api, bad_input_gets_400_naming_the_field)
{
    const char *ud = "/api/web/namespaces/demo/usage_details";
    const char *hd = "/api/web/namespaces/demo/hourly_usage_details";
    json_t *j = post(ud, ADMIN, "{\"from\":", 400);
    cr_expect_str_eq(str(j, "code"), "EBADINPUT");
    cr_expect(strstr(str(j, "message"), "JSON") != NULL, "%s", str(j, "message"));
    json_decref(j);
    j = post(ud, ADMIN, "[1,2]", 400);
    json_decref(j);
    expect_400_naming(ud, "{\"from\":1700000000}", "from");
    expect_400_naming(ud, "{\"to\":true}", "to");
    expect_400_naming(ud, "{\"from\":\"yesterday\"}", "from");
    expect_400_naming(ud, "{\"from\":\"2024-02-30T00:00:00Z\",\"to\":\"2024-03-02T00:00:00Z\"}",
                      "from");
    expect_400_naming(ud, "{\"to\":\"2024-03-01 00:00:00\"}", "to");
    expect_400_naming(ud, "{\"from\":\"2024-03-02T00:00:00Z\",\"to\":\"2024-03-01T00:00:00Z\"}",
                      "from");
    expect_400_naming(ud, "{\"from\":\"2024-03-01T00:00:00Z\",\"to\":\"2024-03-01T00:00:00Z\"}",
                      "from");
    expect_400_naming(ud, "{\"namespace\":\"other\"}", "namespace");
    expect_400_naming(ud, "{\"namespace\":7}", "namespace");
    /* Unknown fields are ignored; a body namespace equal to the path's is fine. */
    j = post(ud, ADMIN, "{\"namespace\":\"demo\",\"colour\":\"blue\"}", 200);
    json_decref(j);

    expect_400_naming(hd, "{}", "query");
    expect_400_naming(hd, "{\"query\":42}", "query");
    expect_400_naming(hd, "{\"query\":\"%%% not base64 %%%\"}", "query");
    expect_400_naming(hd, "{\"query\":\"eyJh\"}", "query"); /* base64 of '{"a' */
    char *q = b64("not json at all");
    char body[512];
    snprintf(body, sizeof body, "{\"query\":\"%s\"}", q);
    free(q);
    expect_400_naming(hd, body, "query");
    q = b64("{\"namespace\":\"demo\",\"metric_label\":\"http_requests\",\"object_name\":\"x\","
            "\"from\":\"soon\",\"to\":\"2024-03-01T00:00:00Z\"}");
    snprintf(body, sizeof body, "{\"query\":\"%s\"}", q);
    free(q);
    expect_400_naming(hd, body, "query");
    q = b64("{\"namespace\":\"demo\",\"metric_label\":\"http_requests\",\"object_name\":\"x\"}");
    snprintf(body, sizeof body, "{\"namespace\":\"demo\",\"query\":\"%s\"}", q);
    free(q);
    expect_400_naming(hd, body, "query");

    expect_400_naming(SUMMARY_PATH, "{\"start_time\":\"abc\"}", "start_time");
    expect_400_naming(SUMMARY_PATH, "{\"start_time\":1700000000}", "start_time");
    expect_400_naming(SUMMARY_PATH, "{\"end_time\":\"2024-13-01T00:00:00Z\"}", "end_time");
    expect_400_naming(SUMMARY_PATH, "{\"start_time\":\"1700003600\",\"end_time\":\"1700000000\"}",
                      "start_time");
    j = post(SUMMARY_PATH, ADMIN, "not json", 400);
    json_decref(j);
}

Test(usage_api, tokens_401_without_and_403_outside_scope)
{
    int64_t B = load_dataset();
    const char *paths[] = {"/api/web/namespaces/demo/usage_details",
                           "/api/web/namespaces/demo/hourly_usage_details", SUMMARY_PATH};
    for (size_t i = 0; i < 3; i++) {
        json_t *j = post(paths[i], NULL, "{}", 401);
        json_decref(j);
        j = post(paths[i], "not-a-token", "{}", 401);
        json_decref(j);
    }
    /* The viewer of demo may read demo, not other, not system (tenant-wide). */
    json_t *j = details("other", VIEWER, B, B + 6 * HOUR, 403);
    cr_expect_str_eq(str(j, "code"), "EPERMS");
    json_decref(j);
    j = details("system", VIEWER, B, B + 6 * HOUR, 403);
    json_decref(j);
    j = post(SUMMARY_PATH, VIEWER, "{}", 403);
    json_decref(j);
    j = post(SUMMARY_PATH, EDITOR, "{}", 403);
    json_decref(j);

    /* A query of namespace other under path demo: 403, whoever asks. */
    json_t *r = details("system", ADMIN, B, B + 6 * HOUR, 200);
    json_t *it = find_item(items_of(r), "other", "http_requests", "lb1");
    cr_assert_not_null(it);
    const char *q = str(it, "hourly_breakdown_query");
    j = hourly("demo", VIEWER, q, 403);
    cr_expect_str_eq(str(j, "code"), "EPERMS");
    cr_expect(strstr(str(j, "message"), "other") != NULL);
    json_decref(j);
    j = hourly("demo", ADMIN, q, 403);
    json_decref(j);
    j = hourly("system", VIEWER, q, 403);
    json_decref(j);
    j = hourly("other", ADMIN, q, 200);
    cr_expect_eq(json_array_size(json_object_get(j, "hourly_usage_items")), 2);
    json_decref(j);
    json_decref(r);
}

/* ---- the spec's schemas --------------------------------------------------------------------- */

Test(usage_api, responses_match_the_spec_schemas)
{
    int64_t B = load_dataset();
    json_t *doc = spec();
    json_t *r = details("system", ADMIN, B, B + 6 * HOUR, 200);
    expect_schema(doc, "usageListUsageDetailsResp", r);
    json_t *it = json_array_get(items_of(r), 0);
    json_t *h = hourly("system", ADMIN, str(it, "hourly_breakdown_query"), 200);
    expect_schema(doc, "usageListHourlyUsageDetailsResp", h);
    json_decref(h);
    json_decref(r);
    char body[128];
    snprintf(body, sizeof body, "{\"start_time\":\"%lld\",\"end_time\":\"%lld\"}", (long long)B,
             (long long)(B + 6 * HOUR));
    r = post(SUMMARY_PATH, ADMIN, body, 200);
    expect_schema(doc, "billingBillingUsageSummaryResponse", r);
    json_decref(r);
    r = post("/api/web/namespaces/demo/usage_details", ADMIN, "{\"from\":1}", 400);
    cr_expect(json_is_string(json_object_get(r, "code")));
    cr_expect(json_is_string(json_object_get(r, "message")));
    json_decref(r);
    json_decref(doc);
}
