/* test_quota_api.c — end-to-end tests of the quota object API, quota/limits and quota/usage against
 * a real tallyd. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"
#include "openapi_validate.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN
#define EDITOR HARNESS_DEMO_EDITOR_TOKEN
#define QUOTAS "/api/web/namespaces/demo/quotas"

static harness_t *H;
static json_t *doc; /* daemon/openapi.json */

static void
setup(void)
{
    H = harness_start(NULL);
    doc = harness_openapi(H);
}

static void
teardown(void)
{
    json_decref(doc);
    doc = NULL;
    harness_t *h = H;
    H = NULL;
    harness_stop(h);
}

TestSuite(quota_api, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers ---------------------------------------------------------------------------- */

/* One request; asserts the status and validates the JSON body against schema (strict). */
static json_t *
call(const char *method, const char *path, const char *token, const char *body, int status,
     const char *schema)
{
    return harness_call(H, doc, method, path, token, body, status, schema);
}

/* An error answer: status, tallyError shape and code; returns the message (static copy). */
static const char *
call_err(const char *method, const char *path, const char *token, const char *body, int status,
         const char *code)
{
    return harness_call_err(H, doc, method, path, token, body, status, code);
}

static void
create_ok(const char *ns, const char *body)
{
    char path[256];
    snprintf(path, sizeof path, "/api/web/namespaces/%s/quotas", ns);
    json_decref(call("POST", path, ADMIN, body, 200, "quotaCreateResponse"));
}

/* Percent-encode a query value. */
static const char *
enc(const char *s)
{
    static char buf[1024];
    size_t n = 0;
    for (; *s && n + 4 < sizeof buf; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.')
            buf[n++] = (char)c;
        else
            n += (size_t)snprintf(buf + n, 4, "%%%02X", c);
    }
    buf[n] = '\0';
    return buf;
}

static json_t *
path_get(json_t *j, const char *a, const char *b, const char *c)
{
    json_t *v = json_object_get(j, a);
    if (b)
        v = json_object_get(v, b);
    if (c)
        v = json_object_get(v, c);
    return v;
}

static const char *
str(json_t *j, const char *a, const char *b, const char *c)
{
    return json_string_value(path_get(j, a, b, c));
}

/* ---- CRUD ------------------------------------------------------------------------------- */

Test(quota_api, create_get_replace_list_delete_round_trip)
{
    json_t *c =
        call("POST", QUOTAS, EDITOR,
             "{\"metadata\":{\"name\":\"lb-cap\",\"namespace\":\"demo\",\"labels\":{\"env\":"
             "\"prod\"},\"annotations\":{\"ticket\":\"OPS-1\"},\"description\":\"cap\","
             "\"disable\":false},\"spec\":{\"object_limits\":{\"lb_count\":{\"maximum\":5}},"
             "\"resource_limits\":{\"vcpu_seconds\":{\"maximum\":7200.5}},\"api_limits\":"
             "{\"usage_details\":{\"rate\":5,\"unit\":\"SECOND\",\"burst\":1}}}}",
             200, "quotaCreateResponse");
    cr_expect_str_eq(str(c, "metadata", "name", NULL), "lb-cap");
    cr_expect_str_eq(str(c, "system_metadata", "creator_id", NULL), "demo-editor");
    cr_expect_str_eq(str(c, "system_metadata", "tenant", NULL), "acme");
    char uid[64];
    snprintf(uid, sizeof uid, "%s", str(c, "system_metadata", "uid", NULL));
    cr_expect_eq(strlen(uid), 36);
    json_decref(c);

    json_t *g = call("GET", QUOTAS "/lb-cap", VIEWER, NULL, 200, "quotaGetResponse");
    cr_expect_str_eq(str(g, "system_metadata", "uid", NULL), uid);
    cr_expect_str_eq(str(g, "metadata", "labels", "env"), "prod");
    cr_expect_str_eq(str(g, "metadata", "annotations", "ticket"), "OPS-1");
    cr_expect_eq(json_integer_value(path_get(path_get(g, "spec", "object_limits", "lb_count"),
                                             "maximum", NULL, NULL)),
                 5);
    cr_expect_str_eq(str(path_get(g, "spec", "api_limits", "usage_details"), "unit", NULL, NULL),
                     "SECOND");
    json_decref(g);

    json_t *rp = call("PUT", QUOTAS "/lb-cap", EDITOR,
                      "{\"metadata\":{\"name\":\"lb-cap\",\"namespace\":\"demo\",\"labels\":"
                      "{\"env\":\"dev\"}},\"spec\":{\"object_limits\":{\"lb_count\":{\"maximum\":"
                      "9}}}}",
                      200, "quotaReplaceResponse");
    cr_expect_eq(json_object_size(rp), 0);
    json_decref(rp);
    g = call("GET", QUOTAS "/lb-cap", ADMIN, NULL, 200, "quotaGetResponse");
    cr_expect_str_eq(str(g, "system_metadata", "uid", NULL), uid, "replace keeps the identity");
    cr_expect_str_eq(str(g, "metadata", "labels", "env"), "dev");
    cr_expect_eq(json_object_size(path_get(g, "spec", "resource_limits", NULL)), 0,
                 "replace is whole");
    json_decref(g);

    json_t *l = call("GET", QUOTAS, VIEWER, NULL, 200, "quotaListResponse");
    json_t *items = json_object_get(l, "items");
    cr_assert_eq(json_array_size(items), 1);
    json_t *it = json_array_get(items, 0);
    cr_expect_str_eq(str(it, "name", NULL, NULL), "lb-cap");
    cr_expect_str_eq(str(it, "namespace", NULL, NULL), "demo");
    cr_expect_str_eq(str(it, "uid", NULL, NULL), uid);
    cr_expect_str_eq(str(it, "tenant", NULL, NULL), "acme");
    cr_expect(json_is_false(json_object_get(it, "disabled")));
    cr_expect_null(json_object_get(it, "get_spec"), "get_spec only with report_fields");
    json_decref(l);

    json_t *d = call("DELETE", QUOTAS "/lb-cap", EDITOR, NULL, 200, "schemaEmpty");
    json_decref(d);
    call_err("GET", QUOTAS "/lb-cap", ADMIN, NULL, 404, "ENOTFOUND");
    l = call("GET", QUOTAS, ADMIN, NULL, 200, "quotaListResponse");
    cr_expect_eq(json_array_size(json_object_get(l, "items")), 0);
    json_decref(l);
}

Test(quota_api, every_error_status)
{
    const char *body = "{\"metadata\":{\"name\":\"q1\"},\"spec\":{}}";
    create_ok("demo", body);
    const char *m = call_err("POST", QUOTAS, ADMIN, body, 409, "EEXISTS");
    cr_expect_str_eq(m, "quota 'q1' already exists in namespace 'demo'");
    m = call_err("PUT", QUOTAS "/nope", ADMIN, "{\"spec\":{}}", 404, "ENOTFOUND");
    cr_expect_str_eq(m, "no quota 'nope' in namespace 'demo'");
    call_err("DELETE", QUOTAS "/nope", ADMIN, NULL, 404, "ENOTFOUND");
    call_err("GET", QUOTAS "/nope", ADMIN, NULL, 404, "ENOTFOUND");
    m = call_err("POST", QUOTAS, ADMIN, "{\"metadata\":{\"name\":\"q2\",\"namespace\":\"shop\"}}",
                 400, "EBADINPUT");
    cr_expect_str_eq(m, "metadata.namespace: 'shop' differs from the namespace of the path 'demo'");
    m = call_err("PUT", QUOTAS "/q1", ADMIN, "{\"metadata\":{\"name\":\"q2\"}}", 400, "EBADINPUT");
    cr_expect_str_eq(m, "metadata.name: 'q2' differs from the name of the path 'q1'");
    m = call_err("PUT", QUOTAS "/q1", ADMIN, "{\"metadata\":{\"namespace\":\"x\"}}", 400,
                 "EBADINPUT");
    cr_expect(strstr(m, "metadata.namespace: 'x' differs") == m, "%s", m);
    m = call_err("DELETE", QUOTAS "/q1", ADMIN, "{\"name\":\"q2\"}", 400, "EBADINPUT");
    cr_expect_str_eq(m, "name: 'q2' differs from the name of the path 'q1'");
    m = call_err("POST", QUOTAS, ADMIN, "{\"metadata\":{\"name\":\"9lives\"}}", 400, "EBADINPUT");
    cr_expect_str_eq(m, "metadata.name: '9lives' must start with a lower-case letter (a DNS-1035 "
                        "label)");
    m = call_err("POST", QUOTAS, ADMIN,
                 "{\"metadata\":{\"name\":\"q3\"},\"spec\":{\"resource_limits\":{\"gpu_hours\":"
                 "{\"maximum\":1}}}}",
                 400, "EBADINPUT");
    cr_expect_str_eq(m, "spec.resource_limits.gpu_hours: not a metric label of the metric catalog");
    call_err("POST", QUOTAS, ADMIN, "not json", 400, "EBADINPUT");
    /* access */
    call_err("POST", QUOTAS, NULL, body, 401, "EUNAUTHENTICATED");
    call_err("POST", QUOTAS, VIEWER, "{\"metadata\":{\"name\":\"v\"}}", 403, "EPERMS");
    call_err("DELETE", QUOTAS "/q1", VIEWER, NULL, 403, "EPERMS");
    call_err("POST", "/api/web/namespaces/shop/quotas", EDITOR, "{\"metadata\":{\"name\":\"e\"}}",
             403, "EPERMS");
    call_err("GET", "/api/web/namespaces/shop/quotas", VIEWER, NULL, 403, "EPERMS");
    call_err("GET", "/api/web/namespaces/shop/quota/limits", VIEWER, NULL, 403, "EPERMS");
    /* the object is still as created */
    json_decref(call("GET", QUOTAS "/q1", VIEWER, NULL, 200, "quotaGetResponse"));
}

Test(quota_api, get_honours_response_format)
{
    create_ok("demo", "{\"metadata\":{\"name\":\"f\",\"labels\":{\"a\":\"b\"},\"disable\":true},"
                      "\"spec\":{\"object_limits\":{\"lb_count\":{\"maximum\":3}}}}");
    struct {
        const char *fmt, *member;
    } cases[] = {
        {"", "system_metadata"},
        {"?response_format=GET_RSP_FORMAT_DEFAULT", "system_metadata"},
        {"?response_format=GET_RSP_FORMAT_READ", "spec"},
        {"?response_format=GET_RSP_FORMAT_FOR_CREATE", "create_form"},
        {"?response_format=GET_RSP_FORMAT_FOR_REPLACE", "replace_form"},
        {"?response_format=GET_RSP_FORMAT_STATUS", "status"},
        {"?response_format=GET_RSP_FORMAT_REFERRING_OBJECTS", "referring_objects"},
        {"?response_format=GET_RSP_FORMAT_BROKEN_REFERENCES", "deleted_referred_objects"},
        {"?response_format=1", "create_form"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, QUOTAS "/f%s", cases[i].fmt);
        json_t *g = call("GET", path, VIEWER, NULL, 200, "quotaGetResponse");
        cr_expect_not_null(json_object_get(g, cases[i].member), "%s: no %s", cases[i].fmt,
                           cases[i].member);
        json_decref(g);
    }
    json_t *g = call("GET", QUOTAS "/f?response_format=GET_RSP_FORMAT_FOR_CREATE", ADMIN, NULL, 200,
                     "quotaGetResponse");
    cr_expect_str_eq(str(g, "create_form", "metadata", "name"), "f");
    cr_expect(json_is_true(path_get(g, "create_form", "metadata", "disable")));
    cr_expect_null(json_object_get(g, "system_metadata"));
    /* the create form creates a copy elsewhere */
    json_t *form = json_deep_copy(json_object_get(g, "create_form"));
    json_object_set_new(json_object_get(form, "metadata"), "namespace", json_string("shop"));
    char *text = json_dumps(form, JSON_COMPACT);
    create_ok("shop", text);
    free(text);
    json_decref(form);
    json_decref(g);

    g = call("GET", QUOTAS "/f?response_format=GET_RSP_FORMAT_STATUS", ADMIN, NULL, 200,
             "quotaGetResponse");
    json_t *st = json_array_get(json_object_get(g, "status"), 0);
    json_t *cond = json_array_get(json_object_get(st, "conditions"), 0);
    cr_expect_str_eq(str(cond, "status", NULL, NULL), "False", "disabled: not applied");
    cr_expect_str_eq(str(json_array_get(json_object_get(st, "object_refs"), 0), "kind", NULL, NULL),
                     "quota");
    json_decref(g);

    const char *m =
        call_err("GET", QUOTAS "/f?response_format=PRETTY", ADMIN, NULL, 400, "EBADINPUT");
    cr_expect(strstr(m, "response_format: 'PRETTY' is not one of") == m, "%s", m);
}

Test(quota_api, list_honours_label_filter_and_report_fields)
{
    create_ok("demo",
              "{\"metadata\":{\"name\":\"a\",\"labels\":{\"env\":\"prod\",\"team\":\"x\"}}}");
    create_ok("demo", "{\"metadata\":{\"name\":\"b\",\"labels\":{\"env\":\"dev\"}}}");
    create_ok("demo", "{\"metadata\":{\"name\":\"c\"}}");
    create_ok("shop", "{\"metadata\":{\"name\":\"d\",\"labels\":{\"env\":\"prod\"}}}");
    struct {
        const char *filter, *names;
    } cases[] = {
        {"env=prod", "a"},          {"env!=prod", "b,c"},   {"env in (dev, prod)", "a,b"},
        {"env notin (dev)", "a,c"}, {"env", "a,b"},         {"!env", "c"},
        {"env=prod,team", "a"},     {"env=prod,!team", ""}, {"", "a,b,c"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, QUOTAS "?label_filter=%s", enc(cases[i].filter));
        json_t *l = call("GET", path, VIEWER, NULL, 200, "quotaListResponse");
        char names[64] = "";
        size_t j;
        json_t *it;
        json_array_foreach(json_object_get(l, "items"), j, it)
        {
            if (j)
                strcat(names, ",");
            strcat(names, json_string_value(json_object_get(it, "name")));
        }
        cr_expect_str_eq(names, cases[i].names, "label_filter '%s'", cases[i].filter);
        json_decref(l);
    }
    char path[512];
    snprintf(path, sizeof path, QUOTAS "?label_filter=%s", enc("env in (prod"));
    const char *m = call_err("GET", path, VIEWER, NULL, 400, "EBADINPUT");
    cr_expect_str_eq(m, "label_filter: at 13: expected ',' or ')' in the value set, found the end "
                        "of the expression");
    snprintf(path, sizeof path, QUOTAS "?label_filter=%s", enc("env >= 3"));
    m = call_err("GET", path, VIEWER, NULL, 400, "EBADINPUT");
    cr_expect(strstr(m, "label_filter: at 5: operator '>' is not supported") == m, "%s", m);

    json_t *l = call("GET", QUOTAS "?report_fields=&report_status_fields=&label_filter=env%3Dprod",
                     VIEWER, NULL, 200, "quotaListResponse");
    json_t *it = json_array_get(json_object_get(l, "items"), 0);
    cr_assert_not_null(it);
    cr_expect_not_null(json_object_get(it, "get_spec"));
    cr_expect_str_eq(str(it, "metadata", "name", NULL), "a");
    cr_expect_not_null(str(it, "system_metadata", "uid", NULL));
    cr_expect_eq(json_array_size(json_object_get(it, "status_set")), 1);
    json_decref(l);
}

/* ---- limits and usage -------------------------------------------------------------------- */

static double
num(json_t *v)
{
    cr_assert(json_is_number(v), "not a number");
    return json_number_value(v);
}

Test(quota_api, limits_are_the_plan_default_overlaid_by_enabled_objects)
{
    /* config/plans.ini, plan free: lb_count 2, http_requests 1000000, bytes_out 1e10,
     * vcpu_seconds 36000, usage_details 60/MINUTE burst 10 */
    json_t *l = call("GET", "/api/web/namespaces/demo/quota/limits", VIEWER, NULL, 200,
                     "quotaGetQuotaLimitsResponse");
    cr_expect_eq(num(path_get(l, "objects", "lb_count", "maximum")), 2);
    cr_expect_eq(num(path_get(l, "resources", "http_requests", "maximum")), 1000000);
    cr_expect_eq(num(path_get(l, "resources", "vcpu_seconds", "maximum")), 36000);
    cr_expect_eq(num(path_get(l, "apis", "usage_details", "rate")), 60);
    cr_expect_str_eq(str(l, "apis", "usage_details", "unit"), "MINUTE");
    cr_expect_eq(num(path_get(l, "apis", "usage_details", "burst")), 10);
    cr_expect(json_equal(json_object_get(l, "objects"), json_object_get(l, "quota_usage")));
    cr_expect(json_equal(json_object_get(l, "resources"), json_object_get(l, "float_quota_usage")));
    cr_expect(json_equal(json_object_get(l, "apis"), json_object_get(l, "api_limits")));
    json_decref(l);

    create_ok("demo", "{\"metadata\":{\"name\":\"more\"},\"spec\":{\"object_limits\":{\"lb_count\":"
                      "{\"maximum\":20}},\"resource_limits\":{\"bytes_in\":{\"maximum\":5.5}},"
                      "\"api_limits\":{\"usage_details\":{\"rate\":1,\"unit\":\"SECOND\"}}}}");
    create_ok("demo", "{\"metadata\":{\"name\":\"off\",\"disable\":true},\"spec\":"
                      "{\"object_limits\":{\"lb_count\":{\"maximum\":999}}}}");
    l = call("GET", "/api/web/namespaces/demo/quota/limits", VIEWER, NULL, 200,
             "quotaGetQuotaLimitsResponse");
    cr_expect_eq(num(path_get(l, "objects", "lb_count", "maximum")), 20);
    cr_expect_eq(num(path_get(l, "resources", "bytes_in", "maximum")), 5.5);
    cr_expect_eq(num(path_get(l, "resources", "http_requests", "maximum")), 1000000);
    cr_expect_eq(num(path_get(l, "apis", "usage_details", "rate")), 1);
    cr_expect_str_eq(str(l, "apis", "usage_details", "unit"), "SECOND");
    json_decref(l);

    /* another namespace keeps the plan's */
    l = call("GET", "/api/web/namespaces/shop/quota/limits", ADMIN, NULL, 200,
             "quotaGetQuotaLimitsResponse");
    cr_expect_eq(num(path_get(l, "objects", "lb_count", "maximum")), 2);
    json_decref(l);

    /* deleting the object falls back to the plan */
    json_decref(call("DELETE", QUOTAS "/more", ADMIN, NULL, 200, "schemaEmpty"));
    l = call("GET", "/api/web/namespaces/demo/quota/limits", VIEWER, NULL, 200,
             "quotaGetQuotaLimitsResponse");
    cr_expect_eq(num(path_get(l, "objects", "lb_count", "maximum")), 2);
    cr_expect_null(path_get(l, "resources", "bytes_in", NULL));
    json_decref(l);
}

Test(quota_api, usage_pairs_limits_with_committed_events)
{
    create_ok("demo", "{\"metadata\":{\"name\":\"cap\"},\"spec\":{\"resource_limits\":"
                      "{\"bytes_in\":{\"maximum\":1000.5}}}}");
    for (int i = 0; i < 5; i++)
        harness_emit(H, "demo", "http_requests", 10, 0, "object=lb1");
    harness_emit(H, "demo", "lb_count", 4, 0, "object=lbs");
    harness_emit_float(H, "demo", "bytes_in", 0.25, 0, NULL);
    harness_emit(H, "shop", "http_requests", 1000, 0, "object=lb1");
    harness_flush(H);

    json_t *u = call("GET", "/api/web/namespaces/demo/quota/usage", VIEWER, NULL, 200,
                     "quotaGetResponseType");
    json_t *lb = path_get(u, "objects", "lb_count", NULL);
    cr_expect_eq(num(path_get(lb, "limit", "maximum", NULL)), 2);
    cr_expect(json_is_integer(path_get(lb, "usage", "current", NULL)));
    cr_expect_eq(num(path_get(lb, "usage", "current", NULL)), 4, "a gauge: the latest value");
    json_t *hr = path_get(u, "resources", "http_requests", NULL);
    cr_expect_eq(num(path_get(hr, "limit", "maximum", NULL)), 1000000);
    cr_expect_eq(num(path_get(hr, "usage", "current", NULL)), 50, "the month's total of demo only");
    json_t *bi = path_get(u, "resources", "bytes_in", NULL);
    cr_expect_eq(num(path_get(bi, "limit", "maximum", NULL)), 1000.5);
    cr_expect_eq(num(path_get(bi, "usage", "current", NULL)), 0.25);
    cr_expect_eq(
        num(path_get(u, "resources", "vcpu_seconds", "usage")
                ? path_get(path_get(u, "resources", "vcpu_seconds", "usage"), "current", NULL, NULL)
                : NULL),
        0, "no data: 0");
    cr_expect_eq(num(path_get(path_get(u, "apis", "usage_details", "limit"), "rate", NULL, NULL)),
                 60);
    cr_expect(json_equal(json_object_get(u, "objects"), json_object_get(u, "quota_usage")));
    cr_expect(json_equal(json_object_get(u, "resources"), json_object_get(u, "float_quota_usage")));
    cr_expect(json_equal(json_object_get(u, "apis"), json_object_get(u, "api_limits")));
    json_decref(u);

    /* system spans the tenant */
    u = call("GET", "/api/web/namespaces/system/quota/usage", ADMIN, NULL, 200,
             "quotaGetResponseType");
    cr_expect_eq(
        num(path_get(path_get(u, "resources", "http_requests", "usage"), "current", NULL, NULL)),
        1050);
    json_decref(u);

    /* more events: usage follows the next flush */
    harness_emit(H, "demo", "http_requests", 7, 0, "object=lb2");
    harness_emit(H, "demo", "lb_count", 1, 0, "object=lbs");
    harness_flush(H);
    u = call("GET", "/api/web/namespaces/demo/quota/usage", VIEWER, NULL, 200,
             "quotaGetResponseType");
    cr_expect_eq(
        num(path_get(path_get(u, "resources", "http_requests", "usage"), "current", NULL, NULL)),
        57);
    cr_expect_eq(num(path_get(path_get(u, "objects", "lb_count", "usage"), "current", NULL, NULL)),
                 1);
    json_decref(u);
}
