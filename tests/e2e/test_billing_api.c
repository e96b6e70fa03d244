/* test_billing_api.c — plan transitions, subscriptions and add-ons over HTTP and tallyctl plan
 * approve|reject, against a live tallyd. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "openapi_validate.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define EDITOR HARNESS_DEMO_EDITOR_TOKEN
#define CREATE "/api/web/namespaces/system/billing/plan_transition"
#define STATE "/no_auth/namespaces/system/billing/plan_transition"
#define SUBS "/api/web/namespaces/system/subscriptions/custom_list"
#define SUBSCRIBE "/api/web/namespaces/system/addon/subscribe"
#define UNSUBSCRIBE "/api/web/namespaces/system/addon/unsubscribe"
#define DECIDE "/api/tally/namespaces/system/billing/plan_transitions/"

/* The test's own catalog: the metric labels are those of config/metrics.ini. */
static const char plans_ini[] =
    "[addon f5xc_waap_standard]\ndisplay_name = WAAP Standard\n"
    "[addon f5xc_site_management_standard]\ndisplay_name = Site Management\n"
    "[addon f5xc_synthetic_monitoring_standard]\ndisplay_name = Synthetic Monitoring\n"
    "[plan free]\ntitle = Free\nusage_plan_type = FREE\n"
    "allowed_addons = f5xc_synthetic_monitoring_standard\nquota.object.lb_count = 1\n"
    "[plan team]\ntitle = Team\nusage_plan_type = TEAM\n"
    "allowed_addons = f5xc_waap_standard, f5xc_synthetic_monitoring_standard\n"
    "included_addons = f5xc_site_management_standard\n"
    "transition.required_fields = TRANSITION_REQUIRED_FIELD_PAYMENT_TOKEN\n"
    "quota.object.lb_count = 25\n"
    "[plan organization]\ntitle = Organization\nusage_plan_type = ORGANIZATION\n"
    "allowed_addons = f5xc_waap_standard\n"
    "transition.required_fields = TRANSITION_REQUIRED_FIELD_DOMAIN, "
    "TRANSITION_REQUIRED_FIELD_CONTACTS\n"
    "transition.requires_manual_approval = true\nquota.object.lb_count = 100\n";

#define TO_TEAM "{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"tok_1\"}}"
#define TO_ORG                                                                                     \
    "{\"new_plan\":\"organization\",\"payload\":{\"domain\":\"acme.example\","                     \
    "\"billing_address\":{\"city\":\"Paris\",\"country\":\"FR\"}}}"

static harness_t *H;
static char plans_dir[64], plans_path[128], plans_env[192];

static void
setup(void)
{
    snprintf(plans_dir, sizeof plans_dir, "/tmp/tally-e2e-plans-XXXXXX");
    cr_assert_not_null(mkdtemp(plans_dir));
    snprintf(plans_path, sizeof plans_path, "%s/plans.ini", plans_dir);
    FILE *f = fopen(plans_path, "w");
    cr_assert_not_null(f);
    fputs(plans_ini, f);
    fclose(f);
    snprintf(plans_env, sizeof plans_env, "TALLY_BILLING_PLANS_FILE=%s", plans_path);
    const char *env[] = {plans_env, "TALLY_BILLING_DEFAULT_PLAN=free", NULL};
    H = harness_start(env);
}

static void
teardown(void)
{
    harness_stop(H);
    unlink(plans_path);
    rmdir(plans_dir);
}

TestSuite(billing_api, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *
str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_t *
post(const char *path, const char *token, const char *body, int want)
{
    int st;
    json_t *j = harness_post_json(H, path, token, body, &st);
    cr_assert_eq(st, want, "POST %s %s: %d, want %d: %s", path, body, st, want,
                 j ? json_dumps(j, JSON_COMPACT) : "(not JSON)");
    cr_assert_not_null(j, "POST %s: body is not JSON", path);
    return j;
}

static json_t *
get(const char *path, const char *token, int want)
{
    harness_resp_t r;
    harness_http(H, "GET", path, token, NULL, &r);
    cr_assert_eq(r.status, want, "GET %s: %d, want %d: %s", path, r.status, want, r.body);
    json_t *j = json_incref(r.json);
    cr_assert_not_null(j, "GET %s: body is not JSON", path);
    harness_resp_free(&r);
    return j;
}

/* GET the no_auth state of id (no token). */
static char *
state_of(const char *id)
{
    char path[256];
    snprintf(path, sizeof path, STATE "?id=%s", id);
    json_t *j = get(path, NULL, 200);
    char *s = strdup(str(j, "state"));
    json_decref(j);
    return s;
}

static void
assert_state(const char *id, const char *want)
{
    char *s = state_of(id);
    cr_assert_str_eq(s, want, "transition %s", id);
    free(s);
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
expect_schema(const char *schema, json_t *v)
{
    json_t *doc = spec();
    char err[512];
    int rc = openapi_validate_strict(doc, schema, v, err, sizeof err);
    json_decref(doc);
    cr_assert_eq(rc, 0, "response does not match %s: %s", schema, err);
}

/* The current plan subscription's plan_object_name in a custom_list answer. */
static const char *
current_plan(json_t *list)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(list, "subscriptions"), i, s)
    {
        if (strncmp(str(s, "name"), "plan-", 5) == 0 && json_is_true(json_object_get(s, "current")))
            return str(s, "plan_object_name");
    }
    return "";
}

static char *
ctl_plan(const char *decision, const char *id, const char *token, int json, int *status)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", H->port);
    const char *argv[] = {
        "plan", decision, id, "--url", url, "--token", token, json ? "--json" : NULL, NULL};
    return harness_tallyctl(H, argv, status);
}

/* ---- transitions ------------------------------------------------------------------------ */

Test(billing_api, direct_transition_finishes_and_shows_in_subscriptions)
{
    json_t *before = get(SUBS, ADMIN, 200);
    cr_assert_str_eq(current_plan(before), "free");
    json_decref(before);

    json_t *r = post(CREATE, ADMIN, TO_TEAM, 200);
    expect_schema("plan_transitionInitiatePlanTransitionRsp", r);
    cr_assert(json_is_false(json_object_get(r, "requires_manual_approval")));
    char id[64];
    snprintf(id, sizeof id, "%s", str(r, "id"));
    cr_assert_eq(strlen(id), 36, "a UUID: %s", id);
    json_decref(r);

    char path[256];
    snprintf(path, sizeof path, STATE "?id=%s", id);
    json_t *st = get(path, NULL, 200);
    expect_schema("plan_transitionGetPlanTransitionRsp", st);
    cr_assert_str_eq(str(st, "state"), "STATE_FINISHED");
    json_decref(st);

    json_t *list = get(SUBS, ADMIN, 200);
    expect_schema("subscriptionListSubscriptionsRsp", list);
    cr_assert_str_eq(current_plan(list), "team");
    /* free (cancelled), team, and team's included add-on */
    cr_assert_eq(json_array_size(json_object_get(list, "subscriptions")), 3, "%s",
                 json_dumps(list, JSON_COMPACT));
    json_decref(list);
    list = get(SUBS "?current=true", ADMIN, 200);
    cr_assert_eq(json_array_size(json_object_get(list, "subscriptions")), 2);
    json_decref(list);
}

Test(billing_api, bad_requests_name_the_field)
{
    json_t *r = post(CREATE, ADMIN, "{\"new_plan\":\"team\"}", 400);
    cr_assert_str_eq(str(r, "code"), "EBADINPUT");
    cr_assert(strstr(str(r, "message"), "payment_provider_token"), "%s", str(r, "message"));
    json_decref(r);
    r = post(CREATE, ADMIN, "{\"new_plan\":\"platinum\"}", 400);
    cr_assert(strstr(str(r, "message"), "new_plan"), "%s", str(r, "message"));
    json_decref(r);
    r = get(STATE, NULL, 400);
    cr_assert(strstr(str(r, "message"), "id"), "%s", str(r, "message"));
    json_decref(r);
    r = get(STATE "?id=00000000-0000-4000-8000-000000000000", NULL, 404);
    cr_assert_str_eq(str(r, "code"), "ENOTFOUND");
    json_decref(r);
}

Test(billing_api, approval_waits_conflicts_and_tallyctl_approves)
{
    json_t *r = post(CREATE, ADMIN, TO_ORG, 200);
    cr_assert(json_is_true(json_object_get(r, "requires_manual_approval")));
    char id[64];
    snprintf(id, sizeof id, "%s", str(r, "id"));
    json_decref(r);
    assert_state(id, "STATE_WAITING_FOR_APPROVAL");

    r = post(CREATE, ADMIN, TO_TEAM, 409);
    cr_assert_str_eq(str(r, "code"), "EEXISTS");
    json_decref(r);

    int status;
    char *out = ctl_plan("approve", id, EDITOR, 0, &status);
    cr_assert_eq(status, 1, "an editor may not decide: %s", out);
    free(out);
    assert_state(id, "STATE_WAITING_FOR_APPROVAL");

    out = ctl_plan("approve", id, ADMIN, 1, &status);
    cr_assert_eq(status, 0, "tallyctl plan approve: %s", out);
    json_t *rec = json_loads(out, 0, NULL);
    cr_assert_not_null(rec, "--json prints the record: %s", out);
    expect_schema("tallyPlanTransition", rec);
    cr_assert_str_eq(str(rec, "state"), "STATE_FINISHED");
    cr_assert_str_eq(str(rec, "decided_by"), "admin");
    json_decref(rec);
    free(out);
    assert_state(id, "STATE_FINISHED");

    json_t *list = get(SUBS, ADMIN, 200);
    cr_assert_str_eq(current_plan(list), "organization");
    json_decref(list);

    out = ctl_plan("reject", id, ADMIN, 0, &status);
    cr_assert_eq(status, 1, "a finished transition cannot be decided: %s", out);
    free(out);
}

Test(billing_api, tallyctl_reject_fails_the_transition)
{
    json_t *r = post(CREATE, ADMIN, TO_ORG, 200);
    char id[64];
    snprintf(id, sizeof id, "%s", str(r, "id"));
    json_decref(r);
    int status;
    char *out = ctl_plan("reject", id, ADMIN, 0, &status);
    cr_assert_eq(status, 0, "tallyctl plan reject: %s", out);
    cr_assert(strstr(out, "STATE_FAILED") && strstr(out, "rejected by admin"), "%s", out);
    free(out);
    assert_state(id, "STATE_FAILED");
    json_t *list = get(SUBS, ADMIN, 200);
    cr_assert_str_eq(current_plan(list), "free");
    json_decref(list);

    out = ctl_plan("approve", "no-such-transition", ADMIN, 0, &status);
    cr_assert_eq(status, 1, "unknown id: %s", out);
    free(out);

    /* a new transition may start once the first is decided */
    r = post(CREATE, ADMIN, TO_TEAM, 200);
    assert_state(str(r, "id"), "STATE_FINISHED");
    json_decref(r);
}

Test(billing_api, failed_transition_keeps_reason_and_changes_nothing)
{
    json_t *r = post(CREATE, ADMIN,
                     "{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"t\","
                     "\"subscribe_addon_services\":[\"f5xc_appstack_standard\"]}}",
                     200);
    assert_state(str(r, "id"), "STATE_FAILED");
    json_decref(r);
    json_t *list = get(SUBS, ADMIN, 200);
    cr_assert_str_eq(current_plan(list), "free");
    json_decref(list);
}

Test(billing_api, only_the_no_auth_get_works_without_a_token)
{
    harness_resp_t r;
    const struct {
        const char *method, *path, *body;
    } needs_token[] = {
        {"POST", CREATE, TO_TEAM},
        {"GET", SUBS, NULL},
        {"POST", SUBSCRIBE, "{\"f5xc_synthetic_monitoring_standard\":{}}"},
        {"POST", UNSUBSCRIBE, "{\"f5xc_synthetic_monitoring_standard\":{}}"},
        {"POST", DECIDE "x/approve", "{}"},
    };
    for (size_t i = 0; i < sizeof needs_token / sizeof needs_token[0]; i++) {
        harness_http(H, needs_token[i].method, needs_token[i].path, NULL, needs_token[i].body, &r);
        cr_assert_eq(r.status, 401, "%s %s without a token: %d", needs_token[i].method,
                     needs_token[i].path, r.status);
        harness_resp_free(&r);
    }
    harness_http(H, "POST", DECIDE "x/approve", EDITOR, "{}", &r);
    cr_assert_eq(r.status, 403, "the decision is for admins: %d", r.status);
    harness_resp_free(&r);
    harness_http(H, "POST", DECIDE "x/maybe", ADMIN, "{}", &r);
    cr_assert_eq(r.status, 400, "decision approve|reject: %d", r.status);
    harness_resp_free(&r);
    harness_http(H, "GET", STATE "?id=x", NULL, NULL, &r);
    cr_assert_eq(r.status, 404, "no_auth needs no token: %d", r.status);
    harness_resp_free(&r);
}

/* ---- add-ons -------------------------------------------------------------------------------- */

Test(billing_api, addon_subscribe_unsubscribe_rules)
{
    json_t *r = post(SUBSCRIBE, ADMIN, "{}", 400);
    cr_assert_str_eq(str(r, "code"), "EBADINPUT");
    json_decref(r);
    r = post(SUBSCRIBE, ADMIN, "{\"f5xc_waap_standard\":{},\"f5xc_site_management_standard\":{}}",
             400);
    json_decref(r);
    r = post(SUBSCRIBE, ADMIN, "{\"f5xc_waap_standard\":{}}", 403);
    cr_assert_str_eq(str(r, "code"), "EPERMS");
    json_decref(r);
    r = post(SUBSCRIBE, ADMIN, "{\"f5xc_synthetic_monitoring_standard\":{}}", 200);
    expect_schema("subscriptionSubscribeResponse", r);
    json_decref(r);
    r = post(SUBSCRIBE, ADMIN, "{\"f5xc_synthetic_monitoring_standard\":{}}", 200);
    json_decref(r);

    r = post(CREATE, ADMIN, TO_TEAM, 200);
    json_decref(r);
    r = post(UNSUBSCRIBE, ADMIN, "{\"f5xc_site_management_standard\":{}}", 409);
    cr_assert_str_eq(str(r, "code"), "EEXISTS");
    json_decref(r);
    r = post(UNSUBSCRIBE, ADMIN, "{\"f5xc_synthetic_monitoring_standard\":{}}", 200);
    expect_schema("subscriptionUnsubscribeResponse", r);
    json_decref(r);

    json_t *list = get(SUBS "?current=true", ADMIN, 200);
    size_t i;
    json_t *s;
    int site = 0, synth = 0;
    json_array_foreach(json_object_get(list, "subscriptions"), i, s)
    {
        site |= !strcmp(str(s, "plan_object_name"), "f5xc_site_management_standard");
        synth |= !strcmp(str(s, "plan_object_name"), "f5xc_synthetic_monitoring_standard");
    }
    cr_assert(site && !synth, "%s", json_dumps(list, JSON_COMPACT));
    json_decref(list);
}

/* Issue 15: the payload is validated like a payment method (types, enums,
 * host name, contact types): 400 naming the field, and the plan stays. */
Test(billing_api, malformed_payloads_are_refused_and_the_plan_does_not_switch)
{
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"tok_1\",\"domain\":42}}",
         "payload.domain"},
        {"{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"tok_1\","
         "\"billing_address\":{\"contact_type\":\"FAX\"}}}",
         "payload.billing_address.contact_type"},
        {"{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"tok_1\","
         "\"deletion_reason\":\"REASON_WHATEVER\"}}",
         "payload.deletion_reason"},
        {"{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"tok_1\","
         "\"create_support_ticket\":\"yes\"}}",
         "payload.create_support_ticket"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *r = post(CREATE, ADMIN, bad[i].body, 400);
        cr_assert_str_eq(str(r, "code"), "EBADINPUT");
        cr_assert(strstr(str(r, "message"), bad[i].field), "%s: %s", bad[i].field,
                  str(r, "message"));
        json_decref(r);
    }
    json_t *list = get(SUBS, ADMIN, 200);
    cr_assert_str_eq(current_plan(list), "free", "no malformed payload switched the plan");
    json_decref(list);
}
