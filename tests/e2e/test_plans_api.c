/* test_plans_api.c — end-to-end tests of usage_plans/custom_list and usage_plans/current against a
 * real tallyd. */
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
#define LIST_PATH "/api/web/namespaces/system/usage_plans/custom_list"
#define CURRENT_PATH "/api/web/namespaces/system/usage_plans/current"

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

TestSuite(plans_api, .init = setup, .fini = teardown, .timeout = 300);

static json_t *
get_ok(harness_t *h, const char *path, const char *schema)
{
    harness_resp_t r;
    harness_http(h, "GET", path, ADMIN, NULL, &r);
    cr_assert_eq(r.status, 200, "GET %s: %d %s", path, r.status, r.body);
    cr_assert_not_null(r.json, "GET %s: not JSON: %s", path, r.body);
    char err[512];
    cr_assert_eq(openapi_validate_strict(doc, schema, r.json, err, sizeof err), 0,
                 "GET %s does not match %s: %s", path, schema, err);
    json_t *j = json_incref(r.json);
    harness_resp_free(&r);
    return j;
}

/* The plans of a ListUsagePlansRsp, checking it holds one en-us LocalizedPlan. */
static json_t *
plans_of_list(json_t *rsp)
{
    json_t *locs = json_object_get(rsp, "usage_plans");
    cr_assert_eq(json_array_size(locs), 1);
    json_t *loc = json_array_get(locs, 0);
    cr_expect_str_eq(json_string_value(json_object_get(loc, "locale")), "en-us");
    json_t *plans = json_object_get(loc, "plans");
    cr_assert(json_is_array(plans));
    return plans;
}

static const char *
current_of(json_t *plans, int *ncurrent)
{
    const char *name = NULL;
    *ncurrent = 0;
    for (size_t i = 0; i < json_array_size(plans); i++) {
        json_t *p = json_array_get(plans, i);
        cr_assert(json_is_boolean(json_object_get(p, "current")), "plan %zu lacks current", i);
        if (json_is_true(json_object_get(p, "current"))) {
            (*ncurrent)++;
            name = json_string_value(json_object_get(p, "name"));
        }
    }
    return name;
}

Test(plans_api, list_has_every_plan_and_one_current_default)
{
    json_t *rsp = get_ok(H, LIST_PATH, "planListUsagePlansRsp");
    json_t *plans = plans_of_list(rsp);
    cr_expect_geq(json_array_size(plans), 4);
    static const char *const names[] = {"free", "individual", "team", "organization"};
    for (size_t i = 0; i < 4; i++) {
        int found = 0;
        for (size_t j = 0; j < json_array_size(plans); j++)
            found |= strcmp(json_string_value(json_object_get(json_array_get(plans, j), "name")),
                            names[i]) == 0;
        cr_expect(found, "plan %s missing", names[i]);
    }
    int n;
    const char *cur = current_of(plans, &n);
    cr_expect_eq(n, 1, "%d plans marked current", n);
    cr_expect_str_eq(cur ? cur : "(none)", "free");
    json_decref(rsp);
}

Test(plans_api, current_is_the_default_plan)
{
    json_t *rsp = get_ok(H, CURRENT_PATH, "planLocalizedPlan");
    cr_expect_str_eq(json_string_value(json_object_get(rsp, "locale")), "en-us");
    json_t *plans = json_object_get(rsp, "plans");
    cr_assert_eq(json_array_size(plans), 1);
    json_t *p = json_array_get(plans, 0);
    cr_expect_str_eq(json_string_value(json_object_get(p, "name")), "free");
    cr_expect(json_is_true(json_object_get(p, "current")));
    cr_expect_str_eq(json_string_value(json_object_get(p, "usage_plan_type")), "FREE");
    cr_expect(json_is_true(json_object_get(p, "billing_disabled")));
    json_decref(rsp);
}

Test(plans_api, system_scope_is_enforced)
{
    static const char *const paths[] = {LIST_PATH, CURRENT_PATH};
    for (size_t i = 0; i < 2; i++) {
        harness_resp_t r;
        harness_http(H, "GET", paths[i], VIEWER, NULL, &r);
        cr_expect_eq(r.status, 403, "viewer of demo on %s: %d %s", paths[i], r.status, r.body);
        cr_expect_str_eq(json_string_value(json_object_get(r.json, "code")), "EPERMS");
        harness_resp_free(&r);
        harness_http(H, "GET", paths[i], EDITOR, NULL, &r);
        cr_expect_eq(r.status, 403, "editor of demo on %s: %d", paths[i], r.status);
        harness_resp_free(&r);
        harness_http(H, "GET", paths[i], NULL, NULL, &r);
        cr_expect_eq(r.status, 401, "no token on %s: %d", paths[i], r.status);
        harness_resp_free(&r);
        harness_http(H, "GET", paths[i], ADMIN, NULL, &r);
        cr_expect_eq(r.status, 200, "admin on %s: %d", paths[i], r.status);
        harness_resp_free(&r);
    }
}

Test(plans_api, current_follows_default_plan_setting)
{
    const char *const env[] = {"TALLY_BILLING_DEFAULT_PLAN=team", NULL};
    harness_t *h = harness_start(env);
    json_t *rsp = get_ok(h, CURRENT_PATH, "planLocalizedPlan");
    cr_expect_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(rsp, "plans"), 0), "name")),
                     "team");
    json_decref(rsp);
    rsp = get_ok(h, LIST_PATH, "planListUsagePlansRsp");
    int n;
    const char *cur = current_of(plans_of_list(rsp), &n);
    cr_expect_eq(n, 1);
    cr_expect_str_eq(cur ? cur : "(none)", "team");
    json_decref(rsp);
    harness_stop(h);
}
