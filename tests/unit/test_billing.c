/* test_billing.c — Criterion tests of lib/billing: the plan-transition state machine, subscription
 * periods and add-on rules over a temp store. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "billing.h"
#include "catalog.h"
#include "plans.h"
#include "store.h"
#include "tally/tally.h"
#include "timeutil.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)

static const char metrics_ini[] = "[lb_count]\naggregation = last\nunit = objects\n"
                                  "[http_requests]\n";

static const char plans_ini[] =
    "[addon f5xc_waap_standard]\ndisplay_name = WAAP Standard\n"
    "[addon f5xc_waap_advanced]\ndisplay_name = WAAP Advanced\n"
    "[addon f5xc_site_management_standard]\ndisplay_name = Site Management\n"
    "[addon f5xc_synthetic_monitoring_standard]\ndisplay_name = Synthetic Monitoring\n"
    "[plan free]\ntitle = Free\nusage_plan_type = FREE\n"
    "allowed_addons = f5xc_synthetic_monitoring_standard\n"
    "quota.object.lb_count = 1\n"
    "[plan team]\ntitle = Team\nusage_plan_type = TEAM\n"
    "allowed_addons = f5xc_waap_standard, f5xc_waap_advanced, f5xc_synthetic_monitoring_standard\n"
    "included_addons = f5xc_site_management_standard\n"
    "transition.required_fields = TRANSITION_REQUIRED_FIELD_PAYMENT_TOKEN, "
    "TRANSITION_REQUIRED_FIELD_CONTACTS\n"
    "quota.object.lb_count = 25\n"
    "[plan organization]\ntitle = Organization\nusage_plan_type = ORGANIZATION\n"
    "allowed_addons = f5xc_waap_standard\n"
    "included_addons = f5xc_site_management_standard, f5xc_waap_advanced\n"
    "transition.required_fields = TRANSITION_REQUIRED_FIELD_DOMAIN\n"
    "transition.requires_manual_approval = true\n"
    "quota.object.lb_count = 100\n";

#define TEAM_PAYLOAD                                                                               \
    "\"payload\":{\"payment_provider_token\":\"tok_123\","                                         \
    "\"billing_address\":{\"city\":\"Seattle\",\"country\":\"US\"}"

/* 2024-01-15T12:00:00Z, 2024-03-10T08:00:00Z, 2024-04-05T00:00:00Z */
#define JAN15 1705320000LL
#define MAR10 1710057600LL
#define APR05 1712275200LL

static char dir[64];
static tally__catalog_t *metrics;
static tally__plans_t *plans;
static tally__store_t *store;
static tally__billing_env_t env;
static char msg[512];

static void
open_store(void)
{
    char sdir[128];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    int rc = tally__store_open(sdir, 64 * MiB, 0, &store);
    cr_assert_eq(rc, 0, "store open: %s", tally_strerror(rc));
    env.store = store;
}

static void
setup(void)
{
    testdir_make(dir, sizeof dir, "billing");
    char path[128], err[256] = "";
    snprintf(path, sizeof path, "%s/metrics.ini", dir);
    testdir_write(path, metrics_ini);
    int rc = tally__catalog_load(path, &metrics, err, sizeof err);
    cr_assert_eq(rc, 0, "metrics: %s", err);
    snprintf(path, sizeof path, "%s/plans.ini", dir);
    testdir_write(path, plans_ini);
    rc = tally__plans_load(path, metrics, &plans, err, sizeof err);
    cr_assert_eq(rc, 0, "plans: %s", err);
    open_store();
    env.plans = plans;
    env.default_plan = "free";
}

static void
teardown(void)
{
    tally__store_close(store);
    tally__plans_destroy(plans);
    tally__catalog_destroy(metrics);
    testdir_remove(dir);
}

TestSuite(billing, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------------------ */

static int
create(const char *body, int64_t now, tally__billing_created_t *out)
{
    json_error_t e;
    json_t *req = json_loads(body, 0, &e);
    cr_assert_not_null(req, "bad test JSON: %s", e.text);
    msg[0] = '\0';
    int rc = tally__billing_transition_create(&env, "demo", req, now, out, msg, sizeof msg);
    json_decref(req);
    return rc;
}

static json_t *
record(const char *id)
{
    json_t *r = NULL;
    int rc = tally__billing_transition_get(store, id, &r);
    cr_assert_eq(rc, 0, "get %s: %s", id, tally_strerror(rc));
    return r;
}

static const char *
str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void
assert_plan(const char *want)
{
    char cur[TALLY_PLANS_NAME_MAX + 1];
    cr_assert_eq(tally__plans_current_name(store, "free", cur, sizeof cur), 0);
    cr_assert_str_eq(cur, want);
}

static int
count_cb(void *ctx, const char *ns, const char *name, const void *v, size_t len)
{
    (void)ns;
    (void)name;
    (void)v;
    (void)len;
    (*(int *)ctx)++;
    return 0;
}

static int
count(const char *kind)
{
    int n = 0;
    cr_assert_eq(tally__store_obj_list(store, kind, "system", count_cb, &n), 0);
    return n;
}

static int
exists(const char *kind, const char *name)
{
    char *v = NULL;
    size_t len;
    int rc = tally__store_obj_get(store, kind, "system", name, &v, &len);
    free(v);
    return rc == 0;
}

/* The listed subscription called name (plan-UID or addon-NAME), or NULL. */
static json_t *
find_sub(json_t *rsp, const char *prefix, const char *plan_object)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(rsp, "subscriptions"), i, s)
    {
        if (strncmp(str(s, "name"), prefix, strlen(prefix)) == 0 &&
            strcmp(str(s, "plan_object_name"), plan_object) == 0)
            return s;
    }
    return NULL;
}

static json_t *
list(int current_only, int64_t now)
{
    json_t *rsp = NULL;
    int rc = tally__billing_subscriptions_list(&env, current_only, now, &rsp);
    cr_assert_eq(rc, 0, "list: %s", tally_strerror(rc));
    return rsp;
}

/* ---- transitions ---------------------------------------------------------------------- */

Test(billing, direct_transition_switches_plan_quota_addons_in_one_step)
{
    tally__billing_created_t c;
    int rc = create("{\"new_plan\":\"team\"," TEAM_PAYLOAD
                    ",\"subscribe_addon_services\":[\"f5xc_waap_standard\"]}}",
                    JAN15, &c);
    cr_assert_eq(rc, 0, "%s: %s", tally_strerror(rc), msg);
    cr_assert_eq(c.requires_manual_approval, 0);
    cr_assert_str_eq(c.state, TALLY_BILLING_STATE_FINISHED);
    assert_plan("team");

    json_t *r = record(c.id);
    cr_assert_str_eq(str(r, "state"), "STATE_FINISHED");
    cr_assert_str_eq(str(r, "from_plan"), "free");
    cr_assert_str_eq(str(r, "new_plan"), "team");
    cr_assert_null(json_object_get(r, "payload"), "the payload is not shown");
    json_t *h = json_object_get(r, "history");
    cr_assert_eq(json_array_size(h), 2);
    cr_assert_str_eq(str(json_array_get(h, 0), "state"), "STATE_CREATING");
    cr_assert_str_eq(str(json_array_get(h, 1), "state"), "STATE_FINISHED");
    cr_assert_str_eq(str(json_array_get(h, 1), "time"), "2024-01-15T12:00:00Z");
    json_decref(r);

    /* default quota of the new plan, where the quotas module reads it */
    char *v = NULL;
    size_t len;
    cr_assert_eq(tally__store_obj_get(store, "tenant", "system", "default_quota", &v, &len), 0);
    json_t *q = json_loads(v, 0, NULL);
    free(v);
    json_t *lb = json_object_get(json_object_get(q, "object_limits"), "lb_count");
    cr_assert_eq(json_number_value(json_object_get(lb, "maximum")), 25.0, "%s", json_dumps(q, 0));
    json_decref(q);

    /* add-ons: the payload's and the new plan's included one */
    cr_assert(exists("addon", "f5xc_waap_standard"));
    cr_assert(exists("addon", "f5xc_site_management_standard"));
    cr_assert_not(exists("tenant", "transition_in_flight"));
}

Test(billing, missing_required_fields_are_named_and_nothing_is_stored)
{
    tally__billing_created_t c;
    int rc = create("{\"new_plan\":\"team\"}", JAN15, &c);
    cr_assert_eq(rc, TALLY_EINVAL);
    cr_assert(strstr(msg, "payment_provider_token") && strstr(msg, "billing_address"), "%s", msg);
    rc = create("{\"new_plan\":\"organization\",\"payload\":{\"domain\":\"\"}}", JAN15, &c);
    cr_assert_eq(rc, TALLY_EINVAL);
    cr_assert(strstr(msg, "payload.domain"), "%s", msg);
    rc = create("{\"new_plan\":\"gold\"}", JAN15, &c);
    cr_assert_eq(rc, TALLY_EINVAL);
    cr_assert(strstr(msg, "new_plan"), "%s", msg);
    rc = create("{\"new_plan\":\"free\"}", JAN15, &c);
    cr_assert_eq(rc, TALLY_EINVAL, "already on free");
    rc = create("{}", JAN15, &c);
    cr_assert_eq(rc, TALLY_EINVAL);
    rc = create("{\"new_plan\":\"team\"," TEAM_PAYLOAD ",\"subscribe_addon_services\":\"x\"}}",
                JAN15, &c);
    cr_assert_eq(rc, TALLY_EINVAL);
    cr_assert(strstr(msg, "subscribe_addon_services"), "%s", msg);
    rc = create("{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":"
                "\"4111111111111111\",\"billing_address\":{\"city\":\"Oslo\"}}}",
                JAN15, &c);
    cr_assert_eq(rc, TALLY_EINVAL, "a card number is refused");
    cr_assert(strstr(msg, "card"), "%s", msg);
    cr_assert_eq(count("transition"), 0);
    assert_plan("free");
}

Test(billing, manual_approval_waits_blocks_a_second_and_approve_finishes)
{
    tally__billing_created_t c, c2;
    int rc = create("{\"new_plan\":\"organization\",\"payload\":{\"domain\":\"acme.example\"}}",
                    JAN15, &c);
    cr_assert_eq(rc, 0, "%s", msg);
    cr_assert_eq(c.requires_manual_approval, 1);
    cr_assert_str_eq(c.state, TALLY_BILLING_STATE_WAITING);
    assert_plan("free");
    json_t *r = record(c.id);
    cr_assert_str_eq(str(r, "state"), "STATE_WAITING_FOR_APPROVAL");
    json_decref(r);

    /* one in flight per tenant */
    rc = create("{\"new_plan\":\"team\"," TEAM_PAYLOAD "}}", JAN15 + 1, &c2);
    cr_assert_eq(rc, TALLY_EEXISTS, "%s", tally_strerror(rc));
    cr_assert(strstr(msg, c.id), "names the transition in flight: %s", msg);
    cr_assert_eq(count("transition"), 1);

    rc = tally__billing_transition_decide(&env, c.id, 1, "admin", JAN15 + 60, &r, msg, sizeof msg);
    cr_assert_eq(rc, 0, "%s", msg);
    cr_assert_str_eq(str(r, "state"), "STATE_FINISHED");
    cr_assert_str_eq(str(r, "decided_by"), "admin");
    cr_assert_eq(json_array_size(json_object_get(r, "history")), 3);
    json_decref(r);
    assert_plan("organization");
    cr_assert(exists("addon", "f5xc_waap_advanced"), "included add-on subscribed");

    /* decided once only; the marker is gone so a new transition may start */
    rc = tally__billing_transition_decide(&env, c.id, 0, "admin", JAN15 + 61, &r, msg, sizeof msg);
    cr_assert_eq(rc, TALLY_EBUSY);
    rc = create("{\"new_plan\":\"free\"}", JAN15 + 120, &c2);
    cr_assert_eq(rc, 0, "%s", msg);
    cr_assert_str_eq(c2.state, TALLY_BILLING_STATE_FINISHED);
    assert_plan("free");
}

Test(billing, reject_fails_with_the_deciders_name_and_changes_nothing)
{
    tally__billing_created_t c;
    int rc = create("{\"new_plan\":\"organization\",\"payload\":{\"domain\":\"acme.example\"}}",
                    JAN15, &c);
    cr_assert_eq(rc, 0, "%s", msg);
    json_t *r;
    rc = tally__billing_transition_decide(&env, c.id, 0, "ops-admin", JAN15 + 5, &r, msg,
                                          sizeof msg);
    cr_assert_eq(rc, 0, "%s", msg);
    cr_assert_str_eq(str(r, "state"), "STATE_FAILED");
    cr_assert_str_eq(str(r, "reason"), "rejected by ops-admin");
    json_decref(r);
    assert_plan("free");
    cr_assert_eq(count("addon"), 0);
    cr_assert_not(exists("tenant", "transition_in_flight"));
    cr_assert_not(exists("tenant", "default_quota"));

    rc = tally__billing_transition_decide(&env, c.id, 1, "ops-admin", JAN15 + 6, &r, msg,
                                          sizeof msg);
    cr_assert_eq(rc, TALLY_EBUSY);
    rc = tally__billing_transition_decide(&env, "no-such-id", 1, "ops-admin", JAN15, &r, msg,
                                          sizeof msg);
    cr_assert_eq(rc, TALLY_ENOTFOUND);
    rc = tally__billing_transition_get(store, "no-such-id", &r);
    cr_assert_eq(rc, TALLY_ENOTFOUND);
}

Test(billing, unknown_addon_fails_the_transition_and_changes_nothing)
{
    tally__billing_created_t c;
    int rc = create("{\"new_plan\":\"team\"," TEAM_PAYLOAD
                    ",\"subscribe_addon_services\":[\"f5xc_no_such_addon\"]}}",
                    JAN15, &c);
    cr_assert_eq(rc, 0, "the transition exists, failed: %s", msg);
    cr_assert_str_eq(c.state, TALLY_BILLING_STATE_FAILED);
    json_t *r = record(c.id);
    cr_assert_str_eq(str(r, "state"), "STATE_FAILED");
    cr_assert(strstr(str(r, "reason"), "f5xc_no_such_addon"), "%s", str(r, "reason"));
    json_decref(r);
    assert_plan("free");
    cr_assert_not(exists("tenant", "plan"));
    cr_assert_not(exists("tenant", "default_quota"));
    cr_assert_eq(count("addon"), 0);
    cr_assert_eq(count("subscription"), 0);
    cr_assert_not(exists("tenant", "transition_in_flight"));

    /* an add-on of the catalog the target plan does not allow fails as well */
    rc = create("{\"new_plan\":\"team\"," TEAM_PAYLOAD
                ",\"unsubscribe_addon_services\":[\"f5xc_site_management_standard\"]}}",
                JAN15, &c);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(c.state, TALLY_BILLING_STATE_FAILED);
    assert_plan("free");
}

/* ---- subscriptions and periods ------------------------------------------------------- */

Test(billing, periods_close_and_open_at_a_transition)
{
    json_t *rsp = list(0, JAN15); /* records the first subscription: since 2024-01-01 */
    json_t *s = find_sub(rsp, "plan-", "free");
    cr_assert_not_null(s);
    cr_assert_str_eq(str(s, "start_date"), "2024-01-01T00:00:00Z");
    cr_assert(json_is_true(json_object_get(s, "current")));
    cr_assert_eq(json_array_size(json_object_get(s, "previous_billing_periods")), 0);
    cr_assert_str_eq(str(s, "last_billing_period_end_date"), "2024-02-01T00:00:00Z");
    json_decref(rsp);

    tally__billing_created_t c;
    int rc = create("{\"new_plan\":\"team\"," TEAM_PAYLOAD "}}", MAR10, &c);
    cr_assert_eq(rc, 0, "%s", msg);
    cr_assert_str_eq(c.state, TALLY_BILLING_STATE_FINISHED);

    rsp = list(0, APR05);
    s = find_sub(rsp, "plan-", "free");
    cr_assert_not_null(s);
    cr_assert(json_is_false(json_object_get(s, "current")));
    cr_assert(json_is_true(json_object_get(s, "cancelled")));
    cr_assert_str_eq(str(s, "cancellation_date"), "2024-03-10T08:00:00Z");
    json_t *prev = json_object_get(s, "previous_billing_periods");
    cr_assert_eq(json_array_size(prev), 3, "Jan, Feb, 1-10 Mar");
    json_t *mar = json_array_get(prev, 2);
    cr_assert_str_eq(str(mar, "start_date"), "2024-03-01T00:00:00Z");
    cr_assert_str_eq(str(mar, "end_date"), "2024-03-10T08:00:00Z");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(mar, "invoices"), 0)),
                     "inv-2024-03");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(mar, "closed_invoice"), 0)),
                     "inv-2024-03");
    cr_assert_str_eq(str(s, "plan_name"), "Free");

    json_t *t = find_sub(rsp, "plan-", "team");
    cr_assert_not_null(t);
    cr_assert(json_is_true(json_object_get(t, "current")));
    cr_assert_str_eq(str(t, "start_date"), "2024-03-10T08:00:00Z");
    prev = json_object_get(t, "previous_billing_periods");
    cr_assert_eq(json_array_size(prev), 1);
    cr_assert_str_eq(str(json_array_get(prev, 0), "start_date"), "2024-03-10T08:00:00Z");
    cr_assert_str_eq(str(json_array_get(prev, 0), "end_date"), "2024-04-01T00:00:00Z");
    cr_assert_str_eq(str(t, "last_billing_period_start_date"), "2024-04-01T00:00:00Z");
    cr_assert_str_eq(str(t, "last_billing_period_end_date"), "2024-05-01T00:00:00Z");
    json_t *a = find_sub(rsp, "addon-", "f5xc_site_management_standard");
    cr_assert_not_null(a, "the included add-on is listed");
    cr_assert_str_eq(str(a, "plan_name"), "Site Management");
    json_decref(rsp);

    rsp = list(1, APR05);
    cr_assert_null(find_sub(rsp, "plan-", "free"), "current=true leaves the old plan out");
    cr_assert_not_null(find_sub(rsp, "plan-", "team"));
    cr_assert_eq(json_array_size(json_object_get(rsp, "subscriptions")), 2);
    json_decref(rsp);
}

/* ---- add-ons ----------------------------------------------------------------------------- */

Test(billing, addon_rules_allowed_included_and_idempotent)
{
    int rc = tally__billing_addon_subscribe(&env, "f5xc_waap_standard", JAN15, msg, sizeof msg);
    cr_assert_eq(rc, -EPERM, "free does not allow WAAP");
    cr_assert(strstr(msg, "f5xc_waap_standard"), "%s", msg);
    rc = tally__billing_addon_subscribe(&env, "f5xc_synthetic_monitoring_standard", JAN15, msg,
                                        sizeof msg);
    cr_assert_eq(rc, 0, "%s", msg);
    rc = tally__billing_addon_subscribe(&env, "f5xc_synthetic_monitoring_standard", JAN15 + 99, msg,
                                        sizeof msg);
    cr_assert_eq(rc, 0, "twice is fine");
    json_t *rsp = list(1, JAN15 + 100);
    json_t *a = find_sub(rsp, "addon-", "f5xc_synthetic_monitoring_standard");
    cr_assert_not_null(a);
    cr_assert_str_eq(str(a, "start_date"), "2024-01-15T12:00:00Z", "the first subscription stays");
    json_decref(rsp);

    tally__billing_created_t c;
    rc = create("{\"new_plan\":\"team\"," TEAM_PAYLOAD "}}", JAN15 + 200, &c);
    cr_assert_eq(rc, 0, "%s", msg);
    rc = tally__billing_addon_unsubscribe(&env, "f5xc_site_management_standard", JAN15 + 300, msg,
                                          sizeof msg);
    cr_assert_eq(rc, TALLY_EEXISTS, "included add-ons stay");
    rc = tally__billing_addon_unsubscribe(&env, "f5xc_waap_advanced", JAN15 + 300, msg, sizeof msg);
    cr_assert_eq(rc, 0, "not subscribed: nothing to do");
    rc = tally__billing_addon_subscribe(&env, "f5xc_waap_advanced", JAN15 + 300, msg, sizeof msg);
    cr_assert_eq(rc, 0, "%s", msg);
    rc = tally__billing_addon_unsubscribe(&env, "f5xc_waap_advanced", JAN15 + 400, msg, sizeof msg);
    cr_assert_eq(rc, 0, "%s", msg);
    rsp = list(0, JAN15 + 500);
    a = find_sub(rsp, "addon-", "f5xc_waap_advanced");
    cr_assert_not_null(a);
    cr_assert(json_is_true(json_object_get(a, "cancelled")));
    cr_assert_str_eq(str(a, "cancellation_date"), "2024-01-15T12:06:40Z");
    json_decref(rsp);
}

Test(billing, addon_choice_is_exactly_one_spec_field)
{
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"f5xc_waap_standard\":{}}", "f5xc_waap_standard"},
        {"{\"f5xc_waap_standard\":{},\"f5xc_waap_advanced\":null}", "f5xc_waap_standard"},
        {"{}", NULL},
        {"{\"f5xc_waap_standard\":{},\"f5xc_waap_advanced\":{}}", NULL},
        {"{\"f5xc_waap_standard\":true}", NULL},
        {"{\"f5xc_bogus\":{}}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *req = json_loads(cases[i].body, 0, NULL);
        msg[0] = '\0';
        const char *got = tally__billing_addon_choice(req, msg, sizeof msg);
        json_decref(req);
        if (cases[i].want)
            cr_assert(got && !strcmp(got, cases[i].want), "%s: %s", cases[i].body, msg);
        else
            cr_assert(!got && msg[0], "%s must be refused with a reason", cases[i].body);
    }
}

/* ---- persistence ---------------------------------------------------------------------- */

Test(billing, transitions_and_plan_survive_a_store_reopen)
{
    tally__billing_created_t c, w;
    int rc = create("{\"new_plan\":\"team\"," TEAM_PAYLOAD "}}", JAN15, &c);
    cr_assert_eq(rc, 0, "%s", msg);
    rc = create("{\"new_plan\":\"organization\",\"payload\":{\"domain\":\"acme.example\"}}",
                JAN15 + 10, &w);
    cr_assert_eq(rc, 0, "%s", msg);

    tally__store_close(store);
    store = NULL;
    open_store();

    assert_plan("team");
    json_t *r = record(c.id);
    cr_assert_str_eq(str(r, "state"), "STATE_FINISHED");
    json_decref(r);
    r = record(w.id);
    cr_assert_str_eq(str(r, "state"), "STATE_WAITING_FOR_APPROVAL");
    json_decref(r);
    tally__billing_created_t x;
    rc = create("{\"new_plan\":\"free\"}", JAN15 + 20, &x);
    cr_assert_eq(rc, TALLY_EEXISTS, "still in flight after reopen");
    rc = tally__billing_transition_decide(&env, w.id, 1, "admin", JAN15 + 30, &r, msg, sizeof msg);
    cr_assert_eq(rc, 0, "%s", msg);
    json_decref(r);
    assert_plan("organization");
}

/* Issue 15: the payload is validated like a payment method's body — types,
 * enums, host name, contact types — 400 naming the field, plan unchanged. */
Test(billing, malformed_payload_fields_are_named_and_the_plan_does_not_switch)
{
    static const struct {
        const char *payload, *field;
    } bad[] = {
        {"\"domain\":42", "payload.domain"},
        {"\"domain\":\"not a host!\"", "payload.domain"},
        {"\"domain\":\"-x.example.com\"", "payload.domain"},
        {"\"billing_address\":{\"contact_type\":\"FAX\"}", "payload.billing_address.contact_type"},
        {"\"billing_address\":{\"city\":7}", "payload.billing_address.city"},
        {"\"payment_address\":\"Main St\"", "payload.payment_address"},
        {"\"deletion_reason\":\"REASON_BORED\"", "payload.deletion_reason"},
        {"\"create_support_ticket\":\"yes\"", "payload.create_support_ticket"},
        {"\"support_ticket_info\":[1]", "payload.support_ticket_info"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        /* team needs a token and a contact: give them, so only the bad field is wrong */
        snprintf(body, sizeof body,
                 "{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"tok_1\","
                 "%s%s}}",
                 strstr(bad[i].payload, "billing_address")
                     ? ""
                     : "\"billing_address\":{\"city\":\"Oslo\"},",
                 bad[i].payload);
        tally__billing_created_t c;
        cr_expect_eq(create(body, JAN15, &c), TALLY_EINVAL, "%s", body);
        cr_expect(strstr(msg, bad[i].field) != NULL, "%s -> %s", body, msg);
    }
    cr_expect_eq(count("transition"), 0);
    assert_plan("free");
    /* the same fields well-formed switch the plan */
    tally__billing_created_t c;
    cr_assert_eq(create("{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"tok_1\","
                        "\"billing_address\":{\"city\":\"Oslo\",\"contact_type\":\"BILLING\"},"
                        "\"domain\":\"acme.example.com\",\"deletion_reason\":\"REASON_UNKNOWN\","
                        "\"create_support_ticket\":false}}",
                        JAN15, &c),
                 0, "%s", msg);
    assert_plan("team");
}
