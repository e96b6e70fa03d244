/* test_quota.c — Criterion tests of lib/quota: object validation and storage, effective limits
 * (plan default overlaid by quota objects) and usage. */
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
#include <jansson.h>

#include "catalog.h"
#include "plans.h"
#include "quota.h"
#include "rollup.h"
#include "selector.h"
#include "store.h"
#include "tally/tally.h"
#include "timeutil.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)
#define HOUR 3600LL
#define T0 1709247600LL /* 2024-02-29T23:00:00Z */

static const char metrics_ini[] = "[lb_count]\naggregation = last\nunit = objects\n"
                                  "[active_sites]\naggregation = max\n"
                                  "[http_requests]\n"
                                  "[waf_events]\naggregation = count\n"
                                  "[vcpu_seconds]\n";

static const char plans_ini[] = "[plan free]\ntitle = Free\nusage_plan_type = FREE\n"
                                "quota.object.lb_count = 2\n"
                                "quota.resource.http_requests = 1000\n"
                                "quota.api.usage_details = 60/MINUTE burst 10\n"
                                "[plan team]\ntitle = Team\nusage_plan_type = TEAM\n"
                                "quota.object.lb_count = 50\n"
                                "quota.resource.vcpu_seconds = 3600.5\n";

static char dir[64];
static tally__catalog_t *cat;
static tally__plans_t *plans;
static tally__store_t *store;
static char err[512];
static const tally__quota_origin_t origin = {"acme", "dev-admin", T0};

static void
open_store(void)
{
    char sdir[128];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    int rc = tally__store_open(sdir, 64 * MiB, 0, &store);
    cr_assert_eq(rc, 0, "store open: %s", tally_strerror(rc));
}

static void
setup(void)
{
    testdir_make(dir, sizeof dir, "quota");
    char path[128], e[256] = "";
    snprintf(path, sizeof path, "%s/metrics.ini", dir);
    testdir_write(path, metrics_ini);
    cr_assert_eq(tally__catalog_load(path, &cat, e, sizeof e), 0, "metrics: %s", e);
    snprintf(path, sizeof path, "%s/plans.ini", dir);
    testdir_write(path, plans_ini);
    cr_assert_eq(tally__plans_load(path, cat, &plans, e, sizeof e), 0, "plans: %s", e);
    open_store();
}

static void
teardown(void)
{
    tally__store_close(store);
    store = NULL;
    tally__plans_destroy(plans);
    tally__catalog_destroy(cat);
    testdir_remove(dir);
}

TestSuite(quota, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ---------------------------------------------------------------------- */

static json_t *
J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    cr_assert_not_null(v, "bad test JSON: %s: %s", e.text, text);
    return v;
}

static int
create(const char *ns, const char *body, json_t **out)
{
    json_t *b = J(body);
    err[0] = '\0';
    int rc = tally__quota_create(store, b, ns, cat, &origin, out, err, sizeof err);
    json_decref(b);
    return rc;
}

static int
replace(const char *ns, const char *name, const char *body)
{
    json_t *b = J(body);
    err[0] = '\0';
    tally__quota_origin_t o = origin;
    o.now_s = T0 + 60;
    o.creator = "someone-else";
    int rc = tally__quota_replace(store, b, ns, name, cat, &o, NULL, err, sizeof err);
    json_decref(b);
    return rc;
}

static const char *
str_at(json_t *doc, const char *obj, const char *key)
{
    return json_string_value(json_object_get(json_object_get(doc, obj), key));
}

static const tally__quota_limit_t *
find(const tally__quota_limits_t *l, int kind, const char *key)
{
    return tally__quota_limits_find(l, kind, key);
}

/* Commit one event of value v at time t_s (hourly and monthly records). */
static void
emit(const char *ns, const char *metric, const char *object, double v, int64_t t_s)
{
    tally_label_t lab[1] = {{"object", object}};
    char key[TALLY_SERIES_KEY_MAX];
    size_t klen =
        tally__series_key(key, ns, strlen(ns), metric, strlen(metric), lab, object ? 1 : 0);
    tally__rollup_t r;
    tally__rollup_init(&r);
    if (v == floor(v))
        tally__rollup_add(&r, 0, (int64_t)v, 0, t_s * 1000);
    else
        tally__rollup_add(&r, 1, 0, v, t_s * 1000);
    tally__store_put_t m = {key, (uint32_t)klen, tally__time_month_start(t_s), &r, 0};
    tally__store_put_t h = {key, (uint32_t)klen, tally__time_hour_start(t_s), &r, 1};
    cr_assert_eq(tally__store_commit(store, &h, 1, &m, 1, NULL, 0), 0);
}

/* ---- names and specs ------------------------------------------------------------------ */

Test(quota, names_are_dns_1035_labels)
{
    char e[160];
    cr_expect_eq(tally__quota_check_name("lb-limits-2", e, sizeof e), 0);
    cr_expect_eq(tally__quota_check_name("a", e, sizeof e), 0);
    cr_expect_eq(tally__quota_check_name("", e, sizeof e), TALLY_EINVAL);
    cr_expect_str_eq(e, "must not be empty");
    cr_expect_eq(tally__quota_check_name("1abc", e, sizeof e), TALLY_EINVAL);
    cr_expect_str_eq(e, "must start with a lower-case letter (a DNS-1035 label)");
    cr_expect_eq(tally__quota_check_name("abc-", e, sizeof e), TALLY_EINVAL);
    cr_expect_str_eq(e, "must end with a lower-case letter or digit (a DNS-1035 label)");
    cr_expect_eq(tally__quota_check_name("aBc", e, sizeof e), TALLY_EINVAL);
    cr_expect_str_eq(e, "may contain only lower-case letters, digits and '-' (a DNS-1035 label); "
                        "found 'B' at 2");
    char longname[70];
    memset(longname, 'a', 64);
    longname[64] = '\0';
    cr_expect_eq(tally__quota_check_name(longname, e, sizeof e), TALLY_EINVAL);
    cr_expect_str_eq(e, "must be at most 63 characters (a DNS-1035 label), has 64");
}

Test(quota, spec_keys_must_be_catalog_metrics_and_shapes_exact)
{
    struct {
        const char *spec, *msg;
    } bad[] = {
        {"{\"object_limits\":{\"nope\":{\"maximum\":1}}}",
         "spec.object_limits.nope: not a metric label of the metric catalog"},
        {"{\"resource_limits\":{\"gpu_hours\":{\"maximum\":1}}}",
         "spec.resource_limits.gpu_hours: not a metric label of the metric catalog"},
        {"{\"object_limits\":{\"lb_count\":{\"maximum\":1.5}}}",
         "spec.object_limits.lb_count.maximum: must be an integer in int32 range (negative = "
         "unlimited)"},
        {"{\"object_limits\":{\"lb_count\":{\"max\":1}}}",
         "spec.object_limits.lb_count.max: unknown field"},
        {"{\"resource_limits\":{\"vcpu_seconds\":{\"maximum\":\"1\"}}}",
         "spec.resource_limits.vcpu_seconds.maximum: must be a finite number (negative = "
         "unlimited)"},
        {"{\"api_limits\":{\"usage_details\":{\"rate\":5,\"unit\":\"WEEK\"}}}",
         "spec.api_limits.usage_details.unit: must be one of SECOND, MINUTE, HOUR, DAY"},
        {"{\"api_limits\":{\"usage_details\":{\"rate\":-1,\"unit\":\"SECOND\"}}}",
         "spec.api_limits.usage_details.rate: must be an integer in 0..2147483647"},
        {"{\"apigw_limits\":{}}",
         "spec.apigw_limits: unknown field (a quota spec has object_limits, resource_limits and "
         "api_limits)"},
        {"{\"object_limits\":[]}", "spec.object_limits: must be an object keyed by metric label"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *s = J(bad[i].spec);
        char e[256] = "";
        cr_expect_eq(tally__quota_check_spec(s, cat, e, sizeof e), TALLY_EINVAL, "%s", bad[i].spec);
        cr_expect_str_eq(e, bad[i].msg);
        json_decref(s);
    }
    json_t *ok =
        J("{\"object_limits\":{\"lb_count\":{\"maximum\":3}},"
          "\"resource_limits\":{\"vcpu_seconds\":{\"maximum\":2.5}},"
          "\"api_limits\":{\"usage_details\":{\"rate\":5,\"unit\":\"SECOND\",\"burst\":2}}}");
    cr_expect_eq(tally__quota_check_spec(ok, cat, err, sizeof err), 0, "%s", err);
    json_decref(ok);
}

/* ---- CRUD ------------------------------------------------------------------------------ */

Test(quota, create_get_replace_delete_round_trip)
{
    json_t *doc = NULL;
    int rc = create("demo",
                    "{\"metadata\":{\"name\":\"lbs\",\"namespace\":\"demo\",\"labels\":{\"env\":"
                    "\"prod\"},\"annotations\":{\"note\":\"any text, at all\"},\"description\":"
                    "\"LB cap\"},\"spec\":{\"object_limits\":{\"lb_count\":{\"maximum\":5}}}}",
                    &doc);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_str_eq(str_at(doc, "metadata", "name"), "lbs");
    cr_expect_str_eq(str_at(doc, "metadata", "namespace"), "demo");
    cr_expect_str_eq(str_at(doc, "metadata", "description"), "LB cap");
    cr_expect(json_is_false(json_object_get(json_object_get(doc, "metadata"), "disable")));
    cr_expect_str_eq(str_at(doc, "system_metadata", "tenant"), "acme");
    cr_expect_str_eq(str_at(doc, "system_metadata", "creator_id"), "dev-admin");
    cr_expect_str_eq(str_at(doc, "system_metadata", "creator_class"), "tallyd");
    cr_expect_str_eq(str_at(doc, "system_metadata", "creation_timestamp"), "2024-02-29T23:00:00Z");
    const char *uid = str_at(doc, "system_metadata", "uid");
    cr_assert_not_null(uid);
    cr_expect_eq(strlen(uid), 36);
    cr_expect_eq(uid[14], '4', "a v4 UUID: %s", uid);
    cr_expect(strchr("89ab", uid[19]) != NULL, "RFC 4122 variant: %s", uid);
    json_t *spec = json_object_get(doc, "spec");
    cr_expect(json_is_object(json_object_get(spec, "resource_limits")), "all maps present");
    cr_expect(json_is_object(json_object_get(spec, "api_limits")));
    char saved_uid[40];
    snprintf(saved_uid, sizeof saved_uid, "%s", uid);
    json_decref(doc);

    json_t *got = NULL;
    cr_assert_eq(tally__quota_get(store, "demo", "lbs", &got), 0);
    cr_expect_str_eq(str_at(got, "system_metadata", "uid"), saved_uid);
    cr_expect_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(json_object_get(got, "spec"), "object_limits"),
                                     "lb_count"),
                     "maximum")),
                 5);
    json_decref(got);

    cr_assert_eq(replace("demo", "lbs",
                         "{\"metadata\":{\"name\":\"lbs\",\"disable\":true},\"spec\":"
                         "{\"object_limits\":{\"lb_count\":{\"maximum\":7}}}}"),
                 0, "%s", err);
    cr_assert_eq(tally__quota_get(store, "demo", "lbs", &got), 0);
    cr_expect_str_eq(str_at(got, "system_metadata", "uid"), saved_uid, "identity kept");
    cr_expect_str_eq(str_at(got, "system_metadata", "creator_id"), "dev-admin");
    cr_expect_str_eq(str_at(got, "system_metadata", "creation_timestamp"), "2024-02-29T23:00:00Z");
    cr_expect_str_eq(str_at(got, "system_metadata", "modification_timestamp"),
                     "2024-02-29T23:01:00Z");
    cr_expect(json_is_true(json_object_get(json_object_get(got, "metadata"), "disable")));
    cr_expect_eq(json_object_size(json_object_get(json_object_get(got, "metadata"), "labels")), 0,
                 "replace is whole: labels not given are gone");
    json_decref(got);

    cr_expect_eq(tally__quota_delete(store, "demo", "lbs"), 0);
    cr_expect_eq(tally__quota_get(store, "demo", "lbs", &got), TALLY_ENOTFOUND);
    cr_expect_eq(tally__quota_delete(store, "demo", "lbs"), TALLY_ENOTFOUND);
}

Test(quota, every_error_of_the_object_model)
{
    const char *body = "{\"metadata\":{\"name\":\"q1\"},\"spec\":{}}";
    cr_assert_eq(create("demo", body, NULL), 0, "%s", err);
    cr_expect_eq(create("demo", body, NULL), TALLY_EEXISTS);
    cr_expect_str_eq(err, "quota 'q1' already exists in namespace 'demo'");
    cr_expect_eq(create("other", body, NULL), 0, "same name, other namespace: %s", err);

    cr_expect_eq(replace("demo", "missing", "{\"spec\":{}}"), TALLY_ENOTFOUND);
    cr_expect_str_eq(err, "no quota 'missing' in namespace 'demo'");

    cr_expect_eq(create("demo", "{\"metadata\":{\"name\":\"q2\",\"namespace\":\"shop\"}}", NULL),
                 TALLY_EINVAL);
    cr_expect_str_eq(err,
                     "metadata.namespace: 'shop' differs from the namespace of the path 'demo'");
    cr_expect_eq(replace("demo", "q1", "{\"metadata\":{\"name\":\"q9\"}}"), TALLY_EINVAL);
    cr_expect_str_eq(err, "metadata.name: 'q9' differs from the name of the path 'q1'");
    cr_expect_eq(replace("demo", "q1", "{\"metadata\":{\"namespace\":\"shop\"}}"), TALLY_EINVAL);
    cr_expect_eq(create("demo", "{\"metadata\":{\"name\":\"bad_name\"}}", NULL), TALLY_EINVAL);
    cr_expect_str_eq(err, "metadata.name: 'bad_name' may contain only lower-case letters, digits "
                          "and '-' (a DNS-1035 label); found '_' at 4");
    cr_expect_eq(create("demo", "{\"metadata\":{}}", NULL), TALLY_EINVAL);
    cr_expect_str_eq(err, "metadata.name: required");
    cr_expect_eq(create("demo", "{\"spec\":{}}", NULL), TALLY_EINVAL);
    cr_expect_str_eq(err, "metadata: required (metadata.name names the object)");
    cr_expect_eq(create("demo", "{\"metadata\":{\"name\":\"q3\",\"uid\":\"x\"}}", NULL),
                 TALLY_EINVAL);
    cr_expect(strstr(err, "metadata.uid: unknown field") == err, "%s", err);
    cr_expect_eq(create("demo", "{\"metadata\":{\"name\":\"q3\",\"labels\":{\"a\":1}}}", NULL),
                 TALLY_EINVAL);
    cr_expect_str_eq(err, "metadata.labels.a: must be a string");
    cr_expect_eq(
        create("demo", "{\"metadata\":{\"name\":\"q3\",\"labels\":{\"a b\":\"x\"}}}", NULL),
        TALLY_EINVAL);
    cr_expect(strstr(err, "metadata.labels: invalid key 'a b'") == err, "%s", err);
    cr_expect_eq(create("demo", "{\"metadata\":{\"name\":\"q3\",\"disable\":\"yes\"}}", NULL),
                 TALLY_EINVAL);
    cr_expect_str_eq(err, "metadata.disable: must be a boolean");
    cr_expect_eq(create("demo",
                        "{\"metadata\":{\"name\":\"q3\"},\"spec\":{\"object_limits\":{\"widgets\":"
                        "{\"maximum\":1}}}}",
                        NULL),
                 TALLY_EINVAL);
    cr_expect_str_eq(err, "spec.object_limits.widgets: not a metric label of the metric catalog");
    cr_expect_eq(create("demo", "{\"metadata\":{\"name\":\"q3\"},\"extra\":1}", NULL),
                 TALLY_EINVAL);
    json_t *got = NULL;
    cr_expect_eq(tally__quota_get(store, "demo", "q3", &got), TALLY_ENOTFOUND,
                 "nothing stored by failed creates");
}

Test(quota, object_index_counts_up_per_create)
{
    json_t *a = NULL, *b = NULL;
    cr_assert_eq(create("demo", "{\"metadata\":{\"name\":\"a\"}}", &a), 0);
    cr_assert_eq(create("shop", "{\"metadata\":{\"name\":\"b\"}}", &b), 0);
    json_int_t ia =
        json_integer_value(json_object_get(json_object_get(a, "system_metadata"), "object_index"));
    json_int_t ib =
        json_integer_value(json_object_get(json_object_get(b, "system_metadata"), "object_index"));
    cr_expect_eq(ia, 1);
    cr_expect_eq(ib, 2);
    cr_expect_str_neq(str_at(a, "system_metadata", "uid"), str_at(b, "system_metadata", "uid"));
    json_decref(a);
    json_decref(b);
}

Test(quota, objects_survive_reopening_the_store)
{
    cr_assert_eq(create("demo",
                        "{\"metadata\":{\"name\":\"keep\",\"labels\":{\"env\":\"prod\"}},\"spec\":"
                        "{\"resource_limits\":{\"vcpu_seconds\":{\"maximum\":12.5}}}}",
                        NULL),
                 0, "%s", err);
    tally__store_close(store);
    store = NULL;
    open_store();
    json_t *got = NULL;
    cr_assert_eq(tally__quota_get(store, "demo", "keep", &got), 0);
    cr_expect_str_eq(str_at(got, "metadata", "name"), "keep");
    json_decref(got);
    tally__quota_limits_t l;
    cr_assert_eq(tally__quota_effective(store, NULL, NULL, "demo", &l), 0);
    const tally__quota_limit_t *v = find(&l, TALLY_QUOTA_RESOURCE, "vcpu_seconds");
    cr_assert_not_null(v);
    cr_expect_float_eq(v->maximum, 12.5, 1e-9);
    cr_expect_str_eq(v->source, "quota:keep");
    tally__quota_limits_free(&l);
}

Test(quota, list_filters_by_label_selector_in_name_order)
{
    cr_assert_eq(
        create("demo",
               "{\"metadata\":{\"name\":\"c\",\"labels\":{\"env\":\"prod\",\"tier\":\"web\"}}}",
               NULL),
        0);
    cr_assert_eq(
        create("demo", "{\"metadata\":{\"name\":\"a\",\"labels\":{\"env\":\"dev\"}}}", NULL), 0);
    cr_assert_eq(create("demo", "{\"metadata\":{\"name\":\"b\"}}", NULL), 0);
    cr_assert_eq(
        create("shop", "{\"metadata\":{\"name\":\"d\",\"labels\":{\"env\":\"prod\"}}}", NULL), 0);
    struct {
        const char *sel, *names;
    } cases[] = {
        {"", "a,b,c"},
        {"env=prod", "c"},
        {"env!=prod", "a,b"},
        {"env in (dev,prod)", "a,c"},
        {"env notin (dev)", "b,c"},
        {"env", "a,c"},
        {"!env", "b"},
        {"env=prod,tier=web", "c"},
        {"env=prod,tier=db", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tally__selector_t *sel = NULL;
        cr_assert_eq(tally__selector_parse(cases[i].sel, &sel, err, sizeof err), 0);
        json_t *arr = NULL;
        cr_assert_eq(tally__quota_list(store, "demo", sel, &arr), 0);
        char names[64] = "";
        size_t j;
        json_t *d;
        json_array_foreach(arr, j, d)
        {
            if (j)
                strcat(names, ",");
            strcat(names, str_at(d, "metadata", "name"));
        }
        cr_expect_str_eq(names, cases[i].names, "selector '%s'", cases[i].sel);
        json_decref(arr);
        tally__selector_destroy(sel);
    }
}

/* ---- effective limits ---------------------------------------------------------------- */

Test(quota, plan_default_applies_without_objects)
{
    tally__quota_limits_t l;
    cr_assert_eq(tally__quota_effective(store, plans, "free", "demo", &l), 0);
    cr_expect_eq(l.n, 2);
    const tally__quota_limit_t *lb = find(&l, TALLY_QUOTA_OBJECT, "lb_count");
    cr_assert_not_null(lb);
    cr_expect_float_eq(lb->maximum, 2, 1e-9);
    cr_expect_str_eq(lb->source, "plan:free");
    const tally__quota_limit_t *hr = find(&l, TALLY_QUOTA_RESOURCE, "http_requests");
    cr_assert_not_null(hr);
    cr_expect_float_eq(hr->maximum, 1000, 1e-9);
    cr_assert_eq(l.napis, 1);
    cr_expect_str_eq(l.apis[0].key, "usage_details");
    cr_expect_eq(l.apis[0].rate, 60);
    cr_expect_eq(l.apis[0].unit_s, 60);
    cr_expect_eq(l.apis[0].burst, 10);
    tally__quota_limits_free(&l);

    /* no catalog and no applied quota: no plan limits at all */
    cr_assert_eq(tally__quota_effective(store, NULL, "free", "demo", &l), 0);
    cr_expect_eq(l.n, 0);
    cr_expect_eq(l.napis, 0);
    tally__quota_limits_free(&l);
    /* a plan the catalog does not have: likewise */
    cr_assert_eq(tally__quota_effective(store, plans, "gone", "demo", &l), 0);
    cr_expect_eq(l.n, 0);
    tally__quota_limits_free(&l);
}

Test(quota, namespace_objects_overlay_the_plan_and_disabled_ones_do_not)
{
    cr_assert_eq(create("demo",
                        "{\"metadata\":{\"name\":\"a-more-lbs\"},\"spec\":{\"object_limits\":"
                        "{\"lb_count\":{\"maximum\":5}},\"api_limits\":{\"usage_details\":"
                        "{\"rate\":2,\"unit\":\"SECOND\"}}}}",
                        NULL),
                 0, "%s", err);
    cr_assert_eq(create("demo",
                        "{\"metadata\":{\"name\":\"b-sites\"},\"spec\":{\"object_limits\":"
                        "{\"active_sites\":{\"maximum\":-5}},\"resource_limits\":{\"vcpu_seconds\":"
                        "{\"maximum\":99.5}}}}",
                        NULL),
                 0, "%s", err);
    cr_assert_eq(create("demo",
                        "{\"metadata\":{\"name\":\"c-off\",\"disable\":true},\"spec\":"
                        "{\"object_limits\":{\"lb_count\":{\"maximum\":1000}}}}",
                        NULL),
                 0, "%s", err);
    cr_assert_eq(create("shop",
                        "{\"metadata\":{\"name\":\"elsewhere\"},\"spec\":{\"object_limits\":"
                        "{\"lb_count\":{\"maximum\":77}}}}",
                        NULL),
                 0, "%s", err);
    tally__quota_limits_t l;
    cr_assert_eq(tally__quota_effective(store, plans, "free", "demo", &l), 0);
    const tally__quota_limit_t *lb = find(&l, TALLY_QUOTA_OBJECT, "lb_count");
    cr_assert_not_null(lb);
    cr_expect_float_eq(lb->maximum, 5, 1e-9, "the object wins; the disabled one is ignored");
    cr_expect_str_eq(lb->source, "quota:a-more-lbs");
    const tally__quota_limit_t *s = find(&l, TALLY_QUOTA_OBJECT, "active_sites");
    cr_assert_not_null(s);
    cr_expect_float_eq(s->maximum, -1, 1e-9, "negative = unlimited");
    const tally__quota_limit_t *hr = find(&l, TALLY_QUOTA_RESOURCE, "http_requests");
    cr_assert_not_null(hr, "plan limits the objects do not name stay");
    cr_expect_str_eq(hr->source, "plan:free");
    cr_expect_float_eq(find(&l, TALLY_QUOTA_RESOURCE, "vcpu_seconds")->maximum, 99.5, 1e-9);
    const tally__quota_api_limit_t *a = tally__quota_limits_find_api(&l, "usage_details");
    cr_assert_not_null(a);
    cr_expect_eq(a->rate, 2);
    cr_expect_eq(a->unit_s, 1);
    cr_expect_eq(a->burst, 0);
    tally__quota_limits_free(&l);

    /* enabling the disabled object: later names win */
    cr_assert_eq(replace("demo", "c-off",
                         "{\"spec\":{\"object_limits\":{\"lb_count\":{\"maximum\":1000}}}}"),
                 0, "%s", err);
    cr_assert_eq(tally__quota_effective(store, plans, "free", "demo", &l), 0);
    cr_expect_float_eq(find(&l, TALLY_QUOTA_OBJECT, "lb_count")->maximum, 1000, 1e-9);
    tally__quota_limits_free(&l);

    /* other namespaces only see their own objects */
    cr_assert_eq(tally__quota_effective(store, plans, "free", "shop", &l), 0);
    cr_expect_float_eq(find(&l, TALLY_QUOTA_OBJECT, "lb_count")->maximum, 77, 1e-9);
    tally__quota_limits_free(&l);
    cr_assert_eq(tally__quota_effective(store, plans, "free", "empty", &l), 0);
    cr_expect_float_eq(find(&l, TALLY_QUOTA_OBJECT, "lb_count")->maximum, 2, 1e-9);
    tally__quota_limits_free(&l);
}

Test(quota, current_plan_and_applied_default_quota_come_from_the_store)
{
    const char *plan = "{\"plan\":\"team\"}";
    tally__obj_op_t op = {.op = TALLY_OBJ_PUT,
                          .kind = "tenant",
                          .ns = "system",
                          .name = "plan",
                          .value = plan,
                          .len = strlen(plan)};
    cr_assert_eq(tally__store_obj_write(store, &op, 1), 0);
    tally__quota_limits_t l;
    cr_assert_eq(tally__quota_effective(store, plans, "free", "demo", &l), 0);
    cr_expect_float_eq(find(&l, TALLY_QUOTA_OBJECT, "lb_count")->maximum, 50, 1e-9);
    cr_expect_str_eq(find(&l, TALLY_QUOTA_OBJECT, "lb_count")->source, "plan:team");
    cr_expect_float_eq(find(&l, TALLY_QUOTA_RESOURCE, "vcpu_seconds")->maximum, 3600.5, 1e-9);
    cr_expect_null(find(&l, TALLY_QUOTA_RESOURCE, "http_requests"));
    tally__quota_limits_free(&l);

    /* the applied default quota (GlobalSpecType) is preferred to the catalog's */
    const char *applied = "{\"object_limits\":{\"lb_count\":{\"maximum\":40}},"
                          "\"resource_limits\":{},\"api_limits\":{\"usage_details\":"
                          "{\"rate\":100,\"burst\":5,\"unit\":\"HOUR\"}},\"apigw_limits\":{}}";
    tally__obj_op_t op2 = {.op = TALLY_OBJ_PUT,
                           .kind = TALLY_QUOTA_DEFAULT_KIND,
                           .ns = TALLY_QUOTA_DEFAULT_NS,
                           .name = TALLY_QUOTA_DEFAULT_NAME,
                           .value = applied,
                           .len = strlen(applied)};
    cr_assert_eq(tally__store_obj_write(store, &op2, 1), 0);
    cr_assert_eq(tally__quota_effective(store, plans, "free", "demo", &l), 0);
    cr_expect_eq(l.n, 1);
    cr_expect_float_eq(find(&l, TALLY_QUOTA_OBJECT, "lb_count")->maximum, 40, 1e-9);
    cr_expect_str_eq(find(&l, TALLY_QUOTA_OBJECT, "lb_count")->source, "plan:team");
    cr_assert_eq(l.napis, 1);
    cr_expect_eq(l.apis[0].unit_s, 3600);
    cr_expect_eq(l.apis[0].burst, 5);
    tally__quota_limits_free(&l);
}

/* ---- usage ------------------------------------------------------------------------------ */

Test(quota, usage_of_gauges_is_the_latest_hour_and_of_sums_the_month)
{
    int64_t now = T0 + 5 * HOUR + 600; /* 2024-03-01T04:10:00Z */
    int64_t feb = T0 - 10 * HOUR;      /* February: not this month */
    /* lb_count (last): two objects; lb1 reports in the latest hour, lb2 stopped earlier */
    emit("demo", "lb_count", "lb1", 3, now - 3 * HOUR);
    emit("demo", "lb_count", "lb1", 4, now - 600);
    emit("demo", "lb_count", "lb1", 2, now - 300); /* later: the hour's last */
    emit("demo", "lb_count", "lb2", 9, now - 2 * HOUR);
    emit("demo", "lb_count", "lb3", 5, now - 60);
    /* active_sites (max) */
    emit("demo", "active_sites", "s", 7, now - 900);
    emit("demo", "active_sites", "s", 3, now - 800);
    /* http_requests (sum): this month only */
    emit("demo", "http_requests", "lb1", 100, now - 2 * HOUR);
    emit("demo", "http_requests", "lb2", 23, now - 60);
    emit("demo", "http_requests", NULL, 1000, feb);
    /* waf_events (count): events, not values */
    emit("demo", "waf_events", "w", 50, now - 60);
    emit("demo", "waf_events", "w", 50, now - 50);
    /* another namespace */
    emit("shop", "http_requests", "lb1", 7, now - 60);
    emit("shop", "lb_count", "x", 10, now - 60);

    double u = -1;
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "lb_count", now, &u), 0);
    cr_expect_float_eq(u, 7, 1e-9, "lb1's 2 + lb3's 5; lb2 is older than the latest hour");
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "active_sites", now, &u), 0);
    cr_expect_float_eq(u, 7, 1e-9);
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "http_requests", now, &u), 0);
    cr_expect_float_eq(u, 123, 1e-9, "February's 1000 is not this month's");
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "waf_events", now, &u), 0);
    cr_expect_float_eq(u, 2, 1e-9);
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "vcpu_seconds", now, &u), 0);
    cr_expect_float_eq(u, 0, 1e-9, "no data: 0");
    cr_assert_eq(tally__quota_usage(store, cat, "system", "http_requests", now, &u), 0);
    cr_expect_float_eq(u, 130, 1e-9, "system spans the tenant");
    cr_assert_eq(tally__quota_usage(store, cat, "system", "lb_count", now, &u), 0);
    cr_expect_float_eq(u, 17, 1e-9);
    cr_assert_eq(tally__quota_usage(store, cat, "shop", "lb_count", now, &u), 0);
    cr_expect_float_eq(u, 10, 1e-9);
    /* a month later nothing of this month counts, and gauges are out of the lookback */
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "http_requests", now + 31 * 24 * HOUR, &u),
                 0);
    cr_expect_float_eq(u, 0, 1e-9);
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "lb_count", now + 31 * 24 * HOUR, &u), 0);
    cr_expect_float_eq(u, 0, 1e-9);
}

Test(quota, float_usage_and_unknown_metrics)
{
    int64_t now = T0 + 2 * HOUR;
    emit("demo", "vcpu_seconds", "vm", 1.25, now - 60);
    emit("demo", "vcpu_seconds", "vm", 2, now - 30);
    emit("demo", "mystery", NULL, 4, now - 30);
    double u = 0;
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "vcpu_seconds", now, &u), 0);
    cr_expect_float_eq(u, 3.25, 1e-9);
    cr_assert_eq(tally__quota_usage(store, cat, "demo", "mystery", now, &u), 0);
    cr_expect_float_eq(u, 4, 1e-9, "a metric the catalog does not know sums");
}

Test(quota, rate_units_round_trip)
{
    cr_expect_eq(tally__quota_unit_seconds("MINUTE"), 60);
    cr_expect_eq(tally__quota_unit_seconds("minute"), 0);
    cr_expect_eq(tally__quota_unit_seconds(NULL), 0);
    cr_expect_str_eq(tally__quota_unit_name(86400), "DAY");
    cr_expect_null(tally__quota_unit_name(7));
}
