/* test_plans.c — unit tests of the plan catalog: the shipped catalog, validation errors, tiers,
 * current plan, rendering. */
#define _GNU_SOURCE
#include "../support/openapi_validate.c"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "catalog.h"
#include "plans.h"
#include "store.h"
#include "tally/tally.h"

static char *
write_temp(const char *text)
{
    char *path = strdup("/tmp/tally-test-plans-XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void
remove_temp(char *path)
{
    unlink(path);
    free(path);
}

/* A file of the source tree: $TALLY_SOURCE_DIR/rel (set by CTest), else
 * relative to this source file. */
static char *
source_path(const char *rel)
{
    char *path;
    const char *src = getenv("TALLY_SOURCE_DIR");
    if (src != NULL && src[0] != '\0') {
        cr_assert_neq(asprintf(&path, "%s/%s", src, rel), -1);
        return path;
    }
    cr_assert_neq(asprintf(&path, "%s/../../%s", __FILE__, rel), -1);
    /* __FILE__ is a file, not a directory: strip "test_plans.c/" */
    char *p = strstr(path, "/test_plans.c/");
    if (p)
        memmove(p, p + strlen("/test_plans.c"), strlen(p + strlen("/test_plans.c")) + 1);
    return path;
}

/* ---- fixtures ------------------------------------------------------------------ */

static tally__catalog_t *metrics; /* a small metric catalog for the validation tests */
static char *metrics_path;

static void
setup(void)
{
    metrics_path = write_temp("[http_requests]\nbillable_unit = million requests\n"
                              "division_factor = 1000000\n"
                              "[bytes_out]\nbillable_unit = GB\ndivision_factor = 1000000000\n"
                              "[lb_count]\naggregation = last\n");
    char err[512];
    cr_assert_eq(tally__catalog_load(metrics_path, &metrics, err, sizeof err), 0, "%s", err);
}

static void
teardown(void)
{
    tally__catalog_destroy(metrics);
    metrics = NULL;
    remove_temp(metrics_path);
    metrics_path = NULL;
}

TestSuite(plans, .init = setup, .fini = teardown);

#define ADDONS                                                                                     \
    "[addon f5xc_waap_standard]\ndisplay_name = WAAP\n"                                            \
    "[addon f5xc_synthetic_monitoring_standard]\ndisplay_name = Synthetic Monitoring\n"

/* Load text against the small metric catalog; returns rc, the catalog in *out. */
static int
load_text(const char *text, tally__plans_t **out, char *err, size_t errlen)
{
    char *path = write_temp(text);
    int rc = tally__plans_load(path, metrics, out, err, errlen);
    remove_temp(path);
    return rc;
}

/* text must fail with TALLY_ECONFIG, "FILE:LINE: " and fragment in the error. */
static void
expect_error(const char *text, int line, const char *fragment)
{
    char *path = write_temp(text);
    tally__plans_t *p = NULL;
    char err[512] = "";
    int rc = tally__plans_load(path, metrics, &p, err, sizeof err);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    cr_expect_eq(rc, TALLY_ECONFIG, "rc %d for:\n%s", rc, text);
    cr_expect_null(p);
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "error '%s' lacks '%s'", err, prefix);
    cr_expect(strstr(err, fragment) != NULL, "error '%s' lacks '%s'", err, fragment);
    tally__plans_destroy(p);
    remove_temp(path);
}

/* ---- the shipped catalog ---------------------------------------------------------- */

static tally__catalog_t *
load_shipped(tally__plans_t **plans)
{
    char *mpath = source_path("config/metrics.ini"), *ppath = source_path("config/plans.ini");
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    cr_assert_eq(tally__catalog_load(mpath, &cat, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tally__plans_load(ppath, cat, plans, err, sizeof err), 0, "%s", err);
    free(mpath);
    free(ppath);
    return cat;
}

Test(plans, shipped_catalog_loads_with_shipped_metrics)
{
    tally__plans_t *p = NULL;
    tally__catalog_t *cat = load_shipped(&p);
    cr_assert_geq(tally__plans_count(p), 4);
    static const char *const names[] = {"free", "individual", "team", "organization"};
    static const tally__plan_type_t types[] = {TALLY_PLAN_TYPE_FREE, TALLY_PLAN_TYPE_INDIVIDUAL,
                                               TALLY_PLAN_TYPE_TEAM, TALLY_PLAN_TYPE_ORGANIZATION};
    for (size_t i = 0; i < 4; i++) {
        const tally__plan_t *plan = tally__plans_find(p, names[i]);
        cr_assert_not_null(plan, "plan %s", names[i]);
        cr_expect_eq(plan->type, types[i], "plan %s", names[i]);
        cr_expect_eq(tally__plans_at(p, i), plan, "catalog order");
    }
    const tally__plan_t *free_ = tally__plans_find(p, "free");
    cr_expect(free_->billing_disabled);
    cr_expect_eq(free_->flat_price_cents, 0);
    cr_expect_not(free_->transition.requires_manual_approval);
    cr_expect_eq(free_->transition.nrequired_fields, 0);
    cr_expect_not_null(tally__plan_limit_find(free_, TALLY_LIMIT_OBJECT, "lb_count"));

    const tally__plan_t *ind = tally__plans_find(p, "individual");
    cr_expect_eq(ind->flat_price_cents, 2000);
    cr_expect_eq(ind->renewal_period_unit, TALLY_PERIOD_MONTH);
    cr_expect(tally__plan_requires_field(ind, TALLY_REQUIRED_FIELD_PAYMENT_TOKEN));
    cr_expect_not(ind->billing_disabled);

    const tally__plan_t *team = tally__plans_find(p, "team");
    cr_expect_eq(team->flat_price_cents, 9900);
    cr_expect_gt(team->nincluded_addons, 0);
    cr_expect(tally__plan_requires_field(team, TALLY_REQUIRED_FIELD_PAYMENT_TOKEN));
    cr_expect(tally__plan_requires_field(team, TALLY_REQUIRED_FIELD_CONTACTS));

    const tally__plan_t *org = tally__plans_find(p, "organization");
    cr_expect(org->transition.requires_manual_approval);
    cr_expect(tally__plan_requires_field(org, TALLY_REQUIRED_FIELD_PAYMENT_TOKEN));
    cr_expect(tally__plan_requires_field(org, TALLY_REQUIRED_FIELD_DOMAIN));
    cr_expect(tally__plan_requires_field(org, TALLY_REQUIRED_FIELD_CONTACTS));

    /* Every price and quota metric is a catalog metric; every add-on a spec add-on. */
    for (size_t i = 0; i < tally__plans_count(p); i++) {
        const tally__plan_t *plan = tally__plans_at(p, i);
        for (size_t j = 0; j < plan->nprices; j++)
            cr_expect_not_null(tally__catalog_find(cat, plan->prices[j].metric));
        cr_expect(plan->title[0]);
    }
    cr_expect_eq(tally__plans_addon_count(p), 13);
    cr_expect_not_null(tally__plans_addon_find(p, "f5xc_waap_standard"));
    cr_expect_null(tally__plans_addon_find(p, "nope"));
    cr_expect_null(tally__plans_find(p, "nope"));
    tally__plans_destroy(p);
    tally__catalog_destroy(cat);
}

Test(plans, count_of_null_is_zero)
{
    cr_expect_eq(tally__plans_count(NULL), 0);
    cr_expect_null(tally__plans_at(NULL, 0));
    cr_expect_null(tally__plans_find(NULL, "free"));
    tally__plans_destroy(NULL);
}

/* ---- parsing ------------------------------------------------------------------------ */

Test(plans, parses_every_key)
{
    tally__plans_t *p = NULL;
    char err[512] = "";
    int rc = load_text(
        "[plan pro]\n"
        "title = Pro\n"
        "subtitle = \"For pros\"\n"
        "description = first part\n"
        "  second part ; a comment\n"
        "usage_plan_type = TEAM\n"
        "tenant_type = ENTERPRISE\n"
        "flat_price = 4900\n"
        "renewal_period_unit = PERIOD_YEAR\n"
        "trial_period = 2\n"
        "trial_period_unit = PERIOD_WEEK\n"
        "billing_disabled = no\n"
        "state = STATE_TRANSITION_PENDING\n"
        "allowed_addons = f5xc_synthetic_monitoring_standard\n"
        "included_addons = f5xc_waap_standard\n"
        "transition.method = TRANSITION_METHOD_SUPPORT\n"
        "transition.required_fields = TRANSITION_REQUIRED_FIELD_DOMAIN,\n"
        "  TRANSITION_REQUIRED_FIELD_CONTACTS\n"
        "transition.requires_manual_approval = yes\n"
        "price.http_requests = 50\n"
        "included.http_requests = 3\n"
        "tiers.bytes_out = 0-100:10,\n"
        "  100-:5\n"
        "included.lb_count = 5\n"
        "quota.object.lb_count = 7\n"
        "quota.resource.bytes_out = 1.5e9\n"
        "quota.api.usage_details = 100/minute burst 20\n"
        "quota.apigw.ves.io.schema.usage.plan.CustomAPI.ListUsagePlans = 5/SECOND\n" ADDONS,
        &p, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    const tally__plan_t *pl = tally__plans_find(p, "pro");
    cr_assert_not_null(pl);
    cr_expect_str_eq(pl->title, "Pro");
    cr_expect_str_eq(pl->subtitle, "For pros");
    cr_expect_str_eq(pl->description, "first part second part");
    cr_expect_eq(pl->type, TALLY_PLAN_TYPE_TEAM);
    cr_expect_eq(pl->tenant_type, TALLY_TENANT_ENTERPRISE);
    cr_expect_eq(pl->flat_price_cents, 4900);
    cr_expect_eq(pl->renewal_period_unit, TALLY_PERIOD_YEAR);
    cr_expect_eq(pl->trial_period, 2);
    cr_expect_eq(pl->trial_period_unit, TALLY_PERIOD_WEEK);
    cr_expect_not(pl->billing_disabled);
    cr_expect_eq(pl->state, TALLY_PLAN_STATE_TRANSITION_PENDING);
    cr_expect(tally__plan_allows_addon(pl, "f5xc_synthetic_monitoring_standard"));
    cr_expect_not(tally__plan_allows_addon(pl, "f5xc_waap_standard"));
    cr_expect(tally__plan_includes_addon(pl, "f5xc_waap_standard"));
    cr_expect_str_eq(pl->included_addons[0]->display_name, "WAAP");
    cr_expect_eq(pl->transition.method, TALLY_TRANSITION_METHOD_SUPPORT);
    cr_expect_eq(pl->transition.nrequired_fields, 2);
    cr_expect_not(tally__plan_requires_field(pl, TALLY_REQUIRED_FIELD_PAYMENT_TOKEN));
    cr_expect(pl->transition.requires_manual_approval);

    const tally__plan_price_t *hr = tally__plan_price_find(pl, "http_requests");
    cr_assert_not_null(hr);
    cr_expect_eq(hr->included, 3);
    cr_expect_not(hr->tiered);
    cr_expect_eq(hr->ntiers, 1);
    cr_expect_eq(hr->tiers[0].unit_price_cents, 50);
    const tally__plan_price_t *lb = tally__plan_price_find(pl, "lb_count");
    cr_assert_not_null(lb);
    cr_expect_eq(lb->included, 5);
    cr_expect_eq(lb->tiers[0].unit_price_cents, 0);
    cr_expect_null(tally__plan_price_find(pl, "vcpu_seconds"));

    const tally__plan_limit_t *l = tally__plan_limit_find(pl, TALLY_LIMIT_OBJECT, "lb_count");
    cr_assert_not_null(l);
    cr_expect_float_eq(l->maximum, 7, 1e-9);
    l = tally__plan_limit_find(pl, TALLY_LIMIT_RESOURCE, "bytes_out");
    cr_assert_not_null(l);
    cr_expect_float_eq(l->maximum, 1.5e9, 1);
    l = tally__plan_limit_find(pl, TALLY_LIMIT_API, "usage_details");
    cr_assert_not_null(l);
    cr_expect_eq(l->rate, 100);
    cr_expect_eq(l->burst, 20);
    cr_expect_eq(l->unit, TALLY_RATE_MINUTE);
    l = tally__plan_limit_find(pl, TALLY_LIMIT_APIGW,
                               "ves.io.schema.usage.plan.CustomAPI.ListUsagePlans");
    cr_assert_not_null(l);
    cr_expect_eq(l->rate, 5);
    cr_expect_eq(l->burst, 0);
    cr_expect_eq(l->unit, TALLY_RATE_SECOND);
    tally__plans_destroy(p);
}

Test(plans, defaults_of_optional_keys)
{
    tally__plans_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(load_text("[plan x]\ntitle = X\nusage_plan_type = FREE\n", &p, err, sizeof err), 0,
                 "%s", err);
    const tally__plan_t *pl = tally__plans_at(p, 0);
    cr_expect_str_eq(pl->subtitle, "");
    cr_expect_str_eq(pl->description, "");
    cr_expect_eq(pl->tenant_type, TALLY_TENANT_UNKNOWN);
    cr_expect_eq(pl->flat_price_cents, 0);
    cr_expect_eq(pl->renewal_period_unit, TALLY_PERIOD_MONTH);
    cr_expect_eq(pl->trial_period, 0);
    cr_expect_eq(pl->state, TALLY_PLAN_STATE_READY);
    cr_expect_eq(pl->transition.method, TALLY_TRANSITION_METHOD_WIZARD);
    cr_expect_eq(pl->nallowed_addons, 0);
    cr_expect_eq(pl->nprices, 0);
    cr_expect_eq(pl->nlimits, 0);
    tally__plans_destroy(p);
}

/* ---- tiers and charges ---------------------------------------------------------------- */

Test(plans, tiers_parse_and_charge_graduated)
{
    tally__plans_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(load_text("[plan x]\ntitle = X\nusage_plan_type = TEAM\n"
                           "tiers.bytes_out = 0-100:10, 100 - 1000 : 7,1000-:5\n"
                           "included.bytes_out = 10\n",
                           &p, err, sizeof err),
                 0, "%s", err);
    const tally__plan_price_t *pr = tally__plan_price_find(tally__plans_at(p, 0), "bytes_out");
    cr_assert_not_null(pr);
    cr_expect(pr->tiered);
    cr_assert_eq(pr->ntiers, 3);
    cr_expect_eq(pr->tiers[0].from, 0);
    cr_expect_eq(pr->tiers[0].up_to, 100);
    cr_expect_eq(pr->tiers[0].unit_price_cents, 10);
    cr_expect_eq(pr->tiers[1].from, 100);
    cr_expect_eq(pr->tiers[1].up_to, 1000);
    cr_expect_eq(pr->tiers[1].unit_price_cents, 7);
    cr_expect_eq(pr->tiers[2].from, 1000);
    cr_expect_eq(pr->tiers[2].up_to, 0);
    cr_expect_eq(pr->tiers[2].unit_price_cents, 5);
    /* 10 included: free; 10..100 at 10; 100..1000 at 7; 1000..1500 at 5 */
    cr_expect_float_eq(tally__plan_price_charge(pr, 5), 0, 1e-9);
    cr_expect_float_eq(tally__plan_price_charge(pr, 10), 0, 1e-9);
    cr_expect_float_eq(tally__plan_price_charge(pr, 50), 400, 1e-9);
    cr_expect_float_eq(tally__plan_price_charge(pr, 100.5), 900 + 3.5, 1e-9);
    cr_expect_float_eq(tally__plan_price_charge(pr, 1500), 900 + 6300 + 2500, 1e-9);
    cr_expect_float_eq(tally__plan_price_charge(pr, -3), 0, 1e-9);
    cr_expect_float_eq(tally__plan_price_charge(pr, NAN), 0, 1e-9);
    cr_expect_float_eq(tally__plan_price_charge(NULL, 10), 0, 1e-9);
    tally__plans_destroy(p);
}

Test(plans, flat_price_charge_above_included)
{
    tally__plans_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(load_text("[plan x]\ntitle = X\nusage_plan_type = TEAM\n"
                           "price.http_requests = 60\nincluded.http_requests = 10\n",
                           &p, err, sizeof err),
                 0, "%s", err);
    const tally__plan_price_t *pr = tally__plan_price_find(tally__plans_at(p, 0), "http_requests");
    cr_expect_float_eq(tally__plan_price_charge(pr, 12.5), 150, 1e-9);
    tally__plans_destroy(p);
}

/* ---- validation: every class, with FILE:LINE ------------------------------------------- */

#define HEAD "[plan x]\ntitle = X\nusage_plan_type = TEAM\n" /* lines 1-3 */

Test(plans, error_unknown_metric_in_price)
{
    expect_error(HEAD "price.nope = 5\n", 4,
                 "[plan x] price.nope: unknown metric label 'nope' (not in the metric catalog)");
    expect_error(HEAD "included.nope = 5\n", 4, "unknown metric label 'nope'");
    expect_error(HEAD "tiers.nope = 0-:5\n", 4, "unknown metric label 'nope'");
}

Test(plans, error_unknown_metric_in_quota)
{
    expect_error(HEAD "quota.object.nope = 5\n", 4,
                 "[plan x] quota.object.nope: unknown metric label 'nope'");
    expect_error(HEAD "quota.resource.nope = 5\n", 4, "unknown metric label 'nope'");
    expect_error(HEAD "quota.other.lb_count = 5\n", 4, "unknown key: quota keys are");
}

Test(plans, error_negative_or_bad_price)
{
    expect_error(HEAD "price.http_requests = -1\n", 4,
                 "[plan x] price.http_requests: negative price -1");
    expect_error(HEAD "price.http_requests = 1.5\n", 4, "not a whole number of cents");
    expect_error(HEAD "tiers.bytes_out = 0-10:-3, 10-:1\n", 4, "negative price -3");
    expect_error(HEAD "flat_price = -100\n", 4, "[plan x] flat_price: -100 is negative");
    expect_error(HEAD "included.http_requests = -2\n", 4, "is negative");
}

Test(plans, error_bad_tiers)
{
    expect_error(HEAD "tiers.bytes_out = 0-100:10, 50-:5\n", 4,
                 "[plan x] tiers.bytes_out: tier '50-:5' overlaps or precedes tier '0-100'");
    expect_error(HEAD "tiers.bytes_out = 100-200:10, 0-100:5\n", 4,
                 "the first tier must start at 0");
    expect_error(HEAD "tiers.bytes_out = 0-:10, 100-:5\n", 4, "follows the open-ended tier '0-'");
    expect_error(HEAD "tiers.bytes_out = 0-100:10, 200-:5\n", 4, "leaves a gap");
    expect_error(HEAD "tiers.bytes_out = 0-100:10,\n  100-50:5\n", 5, "empty or reversed");
    expect_error(HEAD "tiers.bytes_out = 0-100:10\n", 4,
                 "[plan x] tiers.bytes_out: the last tier must be open-ended");
    expect_error(HEAD "tiers.bytes_out = 0-100\n", 4, "is not FROM-TO:PRICE");
    expect_error(HEAD "tiers.bytes_out = a-:1\n", 4, "bounds must be whole billable units");
    expect_error(HEAD "price.bytes_out = 1\ntiers.bytes_out = 0-:5\n", 5, "exclude each other");
}

Test(plans, error_unknown_addon)
{
    expect_error(HEAD "allowed_addons = f5xc_waap_standard, f5xc_waap_advanced\n" ADDONS, 4,
                 "[plan x] allowed_addons: unknown add-on 'f5xc_waap_advanced'");
    expect_error(HEAD "included_addons = f5xc_nope\n" ADDONS, 4,
                 "[plan x] included_addons: unknown add-on 'f5xc_nope'");
    expect_error(ADDONS "[addon f5xc_not_in_the_api]\ndisplay_name = N\n", 5,
                 "[addon f5xc_not_in_the_api]: 'f5xc_not_in_the_api' is not an add-on service");
    expect_error(
        HEAD "allowed_addons = f5xc_waap_standard\nincluded_addons = f5xc_waap_standard\n" ADDONS,
        5, "listed twice");
    expect_error("[addon f5xc_waap_standard]\n" HEAD, 1,
                 "[addon f5xc_waap_standard]: missing key display_name");
}

Test(plans, error_unknown_enum_values)
{
    expect_error("[plan x]\ntitle = X\nusage_plan_type = GOLD\n", 3,
                 "[plan x] usage_plan_type: 'GOLD' is not one of FREE, INDIVIDUAL, TEAM");
    expect_error(HEAD "usage_plan_type = free\n", 4, "duplicate key (first set on line 3)");
    expect_error("[plan x]\ntitle = X\nusage_plan_type = free\n", 3, "'free' is not one of");
    expect_error(HEAD "tenant_type = BIG\n", 4, "[plan x] tenant_type: 'BIG' is not one of");
    expect_error(HEAD "renewal_period_unit = MONTH\n", 4, "'MONTH' is not one of PERIOD_UNKNOWN");
    expect_error(HEAD "state = READY\n", 4, "'READY' is not one of");
    expect_error(HEAD "transition.method = WIZARD\n", 4, "'WIZARD' is not one of");
    expect_error(HEAD "transition.required_fields = TRANSITION_REQUIRED_FIELD_PHONE\n", 4,
                 "'TRANSITION_REQUIRED_FIELD_PHONE' is not one of");
    expect_error(HEAD "transition.required_fields = TRANSITION_REQUIRED_FIELD_UNSPECIFIED\n", 4,
                 "zero value");
    expect_error(HEAD "quota.api.x = 5/FORTNIGHT\n", 4, "is not RATE/UNIT");
    expect_error(HEAD "billing_disabled = maybe\n", 4, "not a boolean");
}

Test(plans, error_duplicates)
{
    expect_error(HEAD "[plan x]\ntitle = Y\n", 4,
                 "[plan x]: duplicate plan 'x' (first defined on line 1)");
    expect_error(ADDONS "[addon f5xc_waap_standard]\n", 5, "duplicate add-on 'f5xc_waap_standard'");
    expect_error(HEAD "title = Again\n", 4, "[plan x] title: duplicate key (first set on line 2)");
    expect_error(HEAD "price.http_requests = 1\nprice.http_requests = 2\n", 5, "duplicate key");
    expect_error(HEAD "quota.object.lb_count = 1\nquota.object.lb_count = 2\n", 5,
                 "duplicate key (first set on line 4)");
}

Test(plans, error_structure)
{
    expect_error("[plan x]\nusage_plan_type = FREE\n", 1, "[plan x]: missing key title");
    expect_error("[plan x]\ntitle = X\n", 1, "[plan x]: missing key usage_plan_type");
    expect_error("[metric x]\n", 1, "unknown section: expected [plan NAME] or [addon NAME]");
    expect_error("[plan Bad Name]\n", 1, "is not a valid name");
    expect_error(HEAD "colour = red\n", 4, "[plan x] colour: unknown key");
    expect_error(HEAD "trial_period = 3\n", 4, "needs trial_period_unit");
    expect_error(HEAD "billing_disabled = true\nflat_price = 100\n", 5, "billing_disabled");
    expect_error(HEAD "title2 = a\n  more\n", 4, "unknown key");
    expect_error(HEAD "flat_price = 1\n  2\n", 5, "flat_price is one line");

    /* no plan at all: "FILE: reason" */
    char *path = write_temp(ADDONS);
    tally__plans_t *p = NULL;
    char err[512] = "";
    cr_expect_eq(tally__plans_load(path, metrics, &p, err, sizeof err), TALLY_ECONFIG);
    cr_expect_null(p);
    cr_expect(strstr(err, "no [plan NAME] section") != NULL, "%s", err);
    remove_temp(path);

    cr_expect_eq(tally__plans_load("/nonexistent/plans.ini", metrics, &p, err, sizeof err),
                 -ENOENT);
}

Test(plans, error_long_line_reported)
{
    char text[512];
    snprintf(text, sizeof text, HEAD "description = %0250d\n", 0);
    expect_error(text, 4, "line longer than");
}

/* ---- enums ----------------------------------------------------------------------------- */

Test(plans, enum_names_are_the_spec_strings)
{
    cr_expect_str_eq(
        tally__plans_enum_name(TALLY_PLANS_ENUM_PLAN_TYPE, TALLY_PLAN_TYPE_UNSPECIFIED),
        "PLAN_TYPE_UNSPECIFIED");
    cr_expect_str_eq(
        tally__plans_enum_name(TALLY_PLANS_ENUM_REQUIRED_FIELD, TALLY_REQUIRED_FIELD_CONTACTS),
        "TRANSITION_REQUIRED_FIELD_CONTACTS");
    cr_expect_null(tally__plans_enum_name(TALLY_PLANS_ENUM_PLAN_STATE, 3));
    cr_expect_null(tally__plans_enum_name(TALLY_PLANS_ENUM_PLAN_STATE, -1));
    int v = -1;
    cr_expect_eq(tally__plans_enum_parse(TALLY_PLANS_ENUM_TENANT_TYPE, "ENTERPRISE", &v), 0);
    cr_expect_eq(v, TALLY_TENANT_ENTERPRISE);
    cr_expect_eq(tally__plans_enum_parse(TALLY_PLANS_ENUM_TENANT_TYPE, "enterprise", &v),
                 TALLY_EINVAL);
}

/* ---- the current plan -------------------------------------------------------------------- */

Test(plans, current_name_from_store_or_default)
{
    char name[TALLY_PLANS_NAME_MAX + 1];
    cr_expect_eq(tally__plans_current_name(NULL, "free", name, sizeof name), 0);
    cr_expect_str_eq(name, "free");

    char dir[] = "/tmp/tally-test-plans-store-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    tally__store_t *s = NULL;
    cr_assert_eq(tally__store_open(dir, 16u << 20, 0, &s), 0);
    cr_expect_eq(tally__plans_current_name(s, "free", name, sizeof name), 0);
    cr_expect_str_eq(name, "free");

    const char *v = "{\"plan\":\"team\",\"since\":\"2026-11-01T00:00:00Z\"}";
    tally__obj_op_t op = {.op = TALLY_OBJ_PUT,
                          .kind = TALLY_PLANS_CURRENT_KIND,
                          .ns = TALLY_PLANS_CURRENT_NS,
                          .name = TALLY_PLANS_CURRENT_NAME,
                          .value = v,
                          .len = strlen(v)};
    cr_assert_eq(tally__store_obj_write(s, &op, 1), 0);
    cr_expect_eq(tally__plans_current_name(s, "free", name, sizeof name), 0);
    cr_expect_str_eq(name, "team");
    char small[3];
    cr_expect_eq(tally__plans_current_name(s, "free", small, sizeof small), TALLY_ETOOBIG);

    tally__plans_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(load_text("[plan free]\ntitle = F\nusage_plan_type = FREE\n"
                           "[plan team]\ntitle = T\nusage_plan_type = TEAM\n",
                           &p, err, sizeof err),
                 0, "%s", err);
    const tally__plan_t *cur = NULL;
    cr_expect_eq(tally__plans_current(p, s, "free", &cur), 0);
    cr_expect_eq(cur, tally__plans_find(p, "team"));

    v = "{\"plan\":\"gone\"}";
    op.value = v;
    op.len = strlen(v);
    cr_assert_eq(tally__store_obj_write(s, &op, 1), 0);
    cr_expect_eq(tally__plans_current(p, s, "free", &cur), TALLY_ENOTFOUND);

    v = "not json";
    op.value = v;
    op.len = strlen(v);
    cr_assert_eq(tally__store_obj_write(s, &op, 1), 0);
    cr_expect_eq(tally__plans_current_name(s, "free", name, sizeof name), TALLY_ECORRUPT);

    tally__plans_destroy(p);
    tally__store_close(s);
    char *cmd = NULL;
    cr_assert_neq(asprintf(&cmd, "rm -rf '%s'", dir), -1);
    cr_expect_eq(system(cmd), 0);
    free(cmd);
}

/* ---- rendering ------------------------------------------------------------------------------ */

static json_t *
load_openapi(void)
{
    char *path = source_path("daemon/openapi.json");
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    cr_assert_not_null(doc, "%s:%d: %s", path, e.line, e.text);
    free(path);
    return doc;
}

Test(plans, rendering_validates_against_the_spec)
{
    tally__plans_t *p = NULL;
    tally__catalog_t *cat = load_shipped(&p);
    json_t *doc = load_openapi();
    char err[512] = "";
    for (size_t i = 0; i < tally__plans_count(p); i++) {
        const tally__plan_t *plan = tally__plans_at(p, i);
        json_t *j = tally__plan_render(plan, i == 0);
        cr_assert_not_null(j);
        cr_expect_eq(openapi_validate_strict(doc, "planPlanInternal", j, err, sizeof err), 0,
                     "plan %s: %s", plan->name, err);
        cr_expect_str_eq(json_string_value(json_object_get(j, "name")), plan->name);
        cr_expect_eq(json_is_true(json_object_get(j, "current")), i == 0);
        json_decref(j);
    }
    json_t *list = tally__plans_render_list(p, "team");
    cr_assert_not_null(list);
    cr_expect_eq(openapi_validate_strict(doc, "planListUsagePlansRsp", list, err, sizeof err), 0,
                 "%s", err);
    json_t *loc = json_array_get(json_object_get(list, "usage_plans"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(loc, "locale")), "en-us");
    json_t *plans = json_object_get(loc, "plans");
    cr_expect_eq(json_array_size(plans), tally__plans_count(p));
    int ncurrent = 0;
    for (size_t i = 0; i < json_array_size(plans); i++) {
        json_t *pl = json_array_get(plans, i);
        if (json_is_true(json_object_get(pl, "current"))) {
            ncurrent++;
            cr_expect_str_eq(json_string_value(json_object_get(pl, "name")), "team");
        }
    }
    cr_expect_eq(ncurrent, 1);
    json_decref(list);

    json_t *one = tally__plan_render_localized(tally__plans_find(p, "free"), true);
    cr_expect_eq(openapi_validate_strict(doc, "planLocalizedPlan", one, err, sizeof err), 0, "%s",
                 err);
    json_decref(one);
    json_decref(doc);
    tally__plans_destroy(p);
    tally__catalog_destroy(cat);
}

Test(plans, rendering_field_values)
{
    tally__plans_t *p = NULL;
    tally__catalog_t *cat = load_shipped(&p);
    json_t *j = tally__plan_render(tally__plans_find(p, "team"), false);
    cr_assert_not_null(j);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(json_string_value(json_object_get(j, "usage_plan_type")), "TEAM");
    cr_expect_str_eq(json_string_value(json_object_get(j, "tenant_type")), "ENTERPRISE");
    cr_expect_eq(json_integer_value(json_object_get(j, "flat_price")), 9900);
    cr_expect_str_eq(json_string_value(json_object_get(j, "renewal_period_unit")), "PERIOD_MONTH");
    cr_expect_str_eq(json_string_value(json_object_get(j, "trial_period_unit")), "PERIOD_DAY");
    cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "STATE_READY");
    cr_expect(json_is_false(json_object_get(j, "billing_disabled")));
    json_t *flow = json_object_get(j, "transition_flow");
    cr_expect_str_eq(json_string_value(json_object_get(flow, "method")),
                     "TRANSITION_METHOD_WIZARD");
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(flow, "required_fields"), 0)),
                     "TRANSITION_REQUIRED_FIELD_PAYMENT_TOKEN");
    json_t *inc = json_array_get(json_object_get(j, "included_addon_services"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(inc, "name")), "f5xc_waap_standard");
    cr_expect_str_eq(json_string_value(json_object_get(inc, "display_name")),
                     "Web App & API Protection");
    json_t *q = json_object_get(j, "default_quota");
    cr_expect_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(q, "object_limits"), "lb_count"), "maximum")),
                 50, "%s", s);
    json_t *api = json_object_get(json_object_get(q, "api_limits"), "usage_details");
    cr_expect_eq(json_integer_value(json_object_get(api, "rate")), 3000);
    cr_expect_eq(json_integer_value(json_object_get(api, "burst")), 500);
    cr_expect_str_eq(json_string_value(json_object_get(api, "unit")), "MINUTE");
    cr_expect(json_is_number(json_object_get(
        json_object_get(json_object_get(q, "resource_limits"), "vcpu_seconds"), "maximum")));
    free(s);
    json_decref(j);
    tally__plans_destroy(p);
    tally__catalog_destroy(cat);
}
