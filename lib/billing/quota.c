/* quota.c — quota objects (validation, storage), effective limits (plan default overlaid by quota
 * objects) and live usage against them. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "ids.h"
#include "quota.h"
#include "rollup.h"
#include "timeutil.h"

#define HOUR_S 3600LL

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- rate units ------------------------------------------------------------------ */

/* The spec's rate unit names in seconds. A limit carries its unit as unit_s and
 * tally__quota_unit_name() renders it back, so every unit_s stored must be one of these. */
static const struct {
    const char *name;
    int seconds;
} units[] = {{"SECOND", 1}, {"MINUTE", 60}, {"HOUR", 3600}, {"DAY", 86400}};

int
tally__quota_unit_seconds(const char *unit)
{
    for (size_t i = 0; unit && i < sizeof units / sizeof units[0]; i++)
        if (strcmp(units[i].name, unit) == 0)
            return units[i].seconds;
    return 0;
}

const char *
tally__quota_unit_name(int unit_s)
{
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (units[i].seconds == unit_s)
            return units[i].name;
    return NULL;
}

/* The catalog's enum in seconds. An out-of-range value gets SECOND rather than 0: 0 is no
 * unit at all, and tally__quota_unit_name() could not render it. */
static int
plan_unit_seconds(tally__rate_unit_t u)
{
    switch (u) {
    case TALLY_RATE_SECOND:
        return 1;
    case TALLY_RATE_MINUTE:
        return 60;
    case TALLY_RATE_HOUR:
        return 3600;
    case TALLY_RATE_DAY:
        return 86400;
    }
    return 1;
}

/* ---- the limits being built ---------------------------------------------------- */

typedef struct builder {
    tally__quota_limits_t *l;
    size_t cap, capapis;
} builder_t;

/* Set (kind, key), replacing an earlier value together with its source: layers are laid on
 * lowest first, so the last one to set a key wins and source names it. Any negative maximum
 * means unlimited and is kept as -1. */
static int
set_limit(builder_t *b, int kind, const char *key, double maximum, const char *source)
{
    tally__quota_limits_t *l = b->l;
    tally__quota_limit_t *it = NULL;
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i].kind == kind && strcmp(l->items[i].key, key) == 0) {
            it = &l->items[i];
            break;
        }
    if (!it) {
        if (strlen(key) > TALLY_MAX_METRIC_LEN)
            return 0; /* cannot be a metric label; validated on the way in */
        if (l->n == b->cap) {
            size_t nc = b->cap ? b->cap * 2 : 8;
            tally__quota_limit_t *ni = realloc(l->items, nc * sizeof *ni);
            if (!ni)
                return -ENOMEM;
            l->items = ni;
            b->cap = nc;
        }
        it = &l->items[l->n++];
        memset(it, 0, sizeof *it);
        snprintf(it->key, sizeof it->key, "%s", key);
        it->kind = kind;
    }
    it->maximum = maximum < 0 ? -1 : maximum;
    snprintf(it->source, sizeof it->source, "%s", source);
    return 0;
}

/* The same last-wins rule for API limits; rate, unit and burst are replaced together, never
 * field by field, so a limit is never a mix of two layers. */
static int
set_api(builder_t *b, const char *key, uint32_t rate, int unit_s, uint32_t burst)
{
    tally__quota_limits_t *l = b->l;
    tally__quota_api_limit_t *a = NULL;
    for (size_t i = 0; i < l->napis; i++)
        if (strcmp(l->apis[i].key, key) == 0) {
            a = &l->apis[i];
            break;
        }
    if (!a) {
        if (strlen(key) >= sizeof a->key)
            return 0;
        if (l->napis == b->capapis) {
            size_t nc = b->capapis ? b->capapis * 2 : 4;
            tally__quota_api_limit_t *na = realloc(l->apis, nc * sizeof *na);
            if (!na)
                return -ENOMEM;
            l->apis = na;
            b->capapis = nc;
        }
        a = &l->apis[l->napis++];
        memset(a, 0, sizeof *a);
        snprintf(a->key, sizeof a->key, "%s", key);
    }
    a->rate = rate;
    a->unit_s = unit_s;
    a->burst = burst;
    return 0;
}

/* A JSON number as a double, or NAN. */
static double
num(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A rate or burst: negative or NaN is 0 and anything above INT32_MAX is clamped to it, as
 * validation allows no more. */
static uint32_t
u32(const json_t *v)
{
    double d = num(v);
    if (!(d >= 0))
        return 0;
    return d > 2147483647.0 ? 2147483647u : (uint32_t)d;
}

/*
 * Lay the maps of a spec (GlobalSpecType or a quota object's spec) over b.
 * Entries that do not have the documented shape are skipped: stored specs
 * were validated on the way in, and the applied default quota is written by
 * the plan module from a validated catalog.
 */
static int
overlay_spec(builder_t *b, const json_t *spec, const char *source)
{
    int rc;
    const char *key;
    json_t *v;
    /* apigw_limits is not read: a gateway enforces those, not tally. */
    json_object_foreach((json_t *)json_object_get(spec, "object_limits"), key, v)
    {
        double m = num(json_object_get(v, "maximum"));
        if (!isnan(m) && (rc = set_limit(b, TALLY_QUOTA_OBJECT, key, m, source)) != 0)
            return rc;
    }
    json_object_foreach((json_t *)json_object_get(spec, "resource_limits"), key, v)
    {
        double m = num(json_object_get(v, "maximum"));
        if (!isnan(m) && (rc = set_limit(b, TALLY_QUOTA_RESOURCE, key, m, source)) != 0)
            return rc;
    }
    json_object_foreach((json_t *)json_object_get(spec, "api_limits"), key, v)
    {
        /* Without a known unit a rate means nothing: skip the entry rather than guess one. */
        int unit_s = tally__quota_unit_seconds(json_string_value(json_object_get(v, "unit")));
        if (!unit_s)
            continue;
        if ((rc = set_api(b, key, u32(json_object_get(v, "rate")), unit_s,
                          u32(json_object_get(v, "burst")))) != 0)
            return rc;
    }
    return 0;
}

/* The lowest layer. The applied default quota, written on a plan transition, records what the
 * transition gave the tenant, so it replaces the catalog's as a whole rather than merging with
 * it; the catalog is read only when none is stored or it cannot be parsed. */
/* The plan's default quota: the applied one in the store, else the catalog's. */
static int
plan_defaults(builder_t *b, tally__store_t *store, const tally__plans_t *plans,
              const char *default_plan)
{
    char name[TALLY_PLANS_NAME_MAX + 1];
    char source[128];
    int rc;
    /* Any failure reading the current plan name falls back to default_plan: the name only
     * labels the source and picks the catalog's fallback. */
    if (tally__plans_current_name(store, default_plan ? default_plan : "", name, sizeof name) != 0)
        snprintf(name, sizeof name, "%s", default_plan ? default_plan : "");
    snprintf(source, sizeof source, "plan:%s", name);

    char *text = NULL;
    size_t len = 0;
    rc = tally__store_obj_get(store, TALLY_QUOTA_DEFAULT_KIND, TALLY_QUOTA_DEFAULT_NS,
                              TALLY_QUOTA_DEFAULT_NAME, &text, &len);
    if (rc == 0) {
        json_t *spec = json_loadb(text, len, 0, NULL);
        free(text);
        if (json_is_object(spec)) {
            rc = overlay_spec(b, spec, source);
            json_decref(spec);
            return rc;
        }
        json_decref(spec);
        /* unreadable: fall back to the catalog's default quota */
    } else if (rc != TALLY_ENOTFOUND) {
        /* A failing store is not "no applied default": report it rather than enforce the
         * catalog's limits in its place. */
        return TALLY_ESTORE;
    }

    const tally__plan_t *plan = tally__plans_find(plans, name);
    if (!plan)
        return 0; /* no catalog, or a plan it no longer has: no plan limits */
    for (size_t i = 0; i < plan->nlimits; i++) {
        const tally__plan_limit_t *pl = &plan->limits[i];
        switch (pl->kind) {
        case TALLY_LIMIT_OBJECT:
            rc = set_limit(b, TALLY_QUOTA_OBJECT, pl->name, pl->maximum, source);
            break;
        case TALLY_LIMIT_RESOURCE:
            rc = set_limit(b, TALLY_QUOTA_RESOURCE, pl->name, pl->maximum, source);
            break;
        case TALLY_LIMIT_API:
            rc = set_api(b, pl->name, pl->rate, plan_unit_seconds(pl->unit), pl->burst);
            break;
        default: /* apigw limits are enforced by a gateway, not by tally */
            rc = 0;
            break;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

typedef struct overlay_ctx {
    builder_t *b;
    int rc;
} overlay_ctx_t;

/* One quota object of the namespace. A disabled one (metadata.disable) contributes nothing;
 * an unreadable one is skipped rather than failing every check of the namespace. An error
 * stops the listing through c->rc, as the callback's return value only says "stop". */
static int
overlay_object(void *vctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)ns;
    overlay_ctx_t *c = vctx;
    json_t *doc = json_loadb(value, len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0; /* unreadable: it cannot have limits */
    }
    if (!json_is_true(json_object_get(json_object_get(doc, "metadata"), "disable"))) {
        char source[128];
        snprintf(source, sizeof source, "quota:%s", name);
        c->rc = overlay_spec(c->b, json_object_get(doc, "spec"), source);
    }
    json_decref(doc);
    return c->rc ? 1 : 0;
}

/* Plan defaults first, then each enabled quota object of ns laid over them key by key. The
 * store lists objects in name order, so when two objects set the same key the one whose name
 * sorts last wins. Label selectors play no part here: they only filter tally__quota_list().
 * On failure out is freed and left empty, never half-built. */
int
tally__quota_effective(tally__store_t *store, const tally__plans_t *plans, const char *default_plan,
                       const char *ns, tally__quota_limits_t *out)
{
    memset(out, 0, sizeof *out);
    builder_t b = {.l = out};
    int rc = plan_defaults(&b, store, plans, default_plan);
    if (rc == 0) {
        overlay_ctx_t c = {&b, 0};
        rc = tally__store_obj_list(store, TALLY_QUOTA_KIND, ns, overlay_object, &c);
        /* 1 is overlay_object()'s "stop": the error is in c.rc. Anything else is the store's. */
        if (rc == 1)
            rc = c.rc;
        else if (rc != 0)
            rc = TALLY_ESTORE;
    }
    if (rc != 0)
        tally__quota_limits_free(out);
    return rc;
}

void
tally__quota_limits_free(tally__quota_limits_t *l)
{
    if (!l)
        return;
    free(l->items);
    free(l->apis);
    memset(l, 0, sizeof *l);
}

const tally__quota_limit_t *
tally__quota_limits_find(const tally__quota_limits_t *l, int kind, const char *key)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (l->items[i].kind == kind && strcmp(l->items[i].key, key) == 0)
            return &l->items[i];
    return NULL;
}

const tally__quota_api_limit_t *
tally__quota_limits_find_api(const tally__quota_limits_t *l, const char *key)
{
    for (size_t i = 0; l && i < l->napis; i++)
        if (strcmp(l->apis[i].key, key) == 0)
            return &l->apis[i];
    return NULL;
}

/* ---- usage ------------------------------------------------------------------------ */

typedef struct usage_ctx {
    const char *metric;
    size_t metric_len;
    tally__agg_t agg;
    /* monthly: the running total */
    double total;
    /* hourly: the newest hour with a record, and the sum of its records'
     * values: exactly the series whose latest hour is the newest */
    int64_t newest_hour;
    double newest_sum;
} usage_ctx_t;

/* A quota limits a metric over all its series (every label set and namespace in scope), so
 * only the metric part of the series key is compared. */
static int
metric_is(const usage_ctx_t *c, const char *series, size_t len)
{
    tally__series_t s;
    return tally__series_parse(series, len, &s) == 0 && s.metric_len == c->metric_len &&
           memcmp(s.metric, c->metric, c->metric_len) == 0;
}

/* Accumulating metrics: the month's total. COUNT counts events, ignoring their values, as the
 * catalog defines it; SUM adds the values. */
static int
monthly_cb(void *vctx, const char *series, size_t series_len, int64_t period_s,
           const tally__rollup_t *r)
{
    (void)period_s;
    usage_ctx_t *c = vctx;
    if (!metric_is(c, series, series_len))
        return 0;
    switch (c->agg) {
    case TALLY_AGG_COUNT:
        c->total += (double)r->count;
        break;
    default: /* accumulating: the month's sum */
        c->total += tally__rollup_sum(r);
        break;
    }
    return 0;
}

/* Gauges: a newer hour restarts the sum and records of the same hour add up across series, so
 * a series whose last record is older than the newest hour drops out: a gauge that stopped
 * reporting no longer counts. MAX gauges use the hour's peak, LAST gauges its closing value. */
static int
hourly_cb(void *vctx, const char *series, size_t series_len, int64_t period_s,
          const tally__rollup_t *r)
{
    usage_ctx_t *c = vctx;
    if (!metric_is(c, series, series_len))
        return 0;
    double value = c->agg == TALLY_AGG_MAX ? r->max : r->last;
    if (period_s > c->newest_hour) {
        c->newest_hour = period_s;
        c->newest_sum = value;
    } else if (period_s == c->newest_hour) {
        c->newest_sum += value;
    }
    return 0;
}

/* Usage as committed by the last flush. Gauges (LAST, MAX) read the newest hour within the
 * look-back, so a gauge reported less often than hourly still has a value; the window ends one
 * hour after now's hour, for clock skew. Everything else is the calendar month's total. A
 * metric missing from the catalog gets the default definition, as it did when metered. */
int
tally__quota_usage(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                   const char *key, int64_t now_s, double *usage)
{
    tally__metric_def_t tmp;
    const tally__metric_def_t *def = tally__catalog_lookup_or_default(cat, key, &tmp);
    /* on the stack: the agreed contract has no -ENOMEM */
    usage_ctx_t ctx;
    usage_ctx_t *c = &ctx;
    memset(c, 0, sizeof *c);
    c->metric = key;
    c->metric_len = strlen(key);
    c->agg = def->aggregation;
    c->newest_hour = INT64_MIN;
    /* "system" spans the tenant, as in the usage API */
    const char *scope = ns && strcmp(ns, "system") != 0 ? ns : NULL;
    size_t scope_len = scope ? strlen(scope) : 0;
    int rc;
    *usage = 0;
    if (c->agg == TALLY_AGG_LAST || c->agg == TALLY_AGG_MAX) {
        int64_t hour = tally__time_hour_start(now_s);
        rc = tally__store_scan(store, TALLY_STORE_HOURLY, scope, scope_len,
                               hour - TALLY_QUOTA_GAUGE_LOOKBACK_H * HOUR_S, hour + 2 * HOUR_S,
                               hourly_cb, c);
        if (rc == 0 && c->newest_hour != INT64_MIN)
            *usage = c->newest_sum;
    } else {
        int64_t month = tally__time_month_start(now_s);
        rc = tally__store_scan(store, TALLY_STORE_MONTHLY, scope, scope_len, month,
                               tally__time_next_month(month), monthly_cb, c);
        if (rc == 0)
            *usage = c->total;
    }
    return rc == 0 ? 0 : TALLY_ESTORE;
}

/* ---- validation ------------------------------------------------------------------- */

/* DNS-1035, as the object model requires: names travel in URL paths and store keys. Each rule
 * has its own message so a client learns which one it broke. */
int
tally__quota_check_name(const char *name, char *err, size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0) {
        seterr(err, errlen, "must not be empty");
        return TALLY_EINVAL;
    }
    if (n > TALLY_QUOTA_NAME_MAX) {
        seterr(err, errlen, "must be at most %d characters (a DNS-1035 label), has %zu",
               TALLY_QUOTA_NAME_MAX, n);
        return TALLY_EINVAL;
    }
    if (!(name[0] >= 'a' && name[0] <= 'z')) {
        seterr(err, errlen, "must start with a lower-case letter (a DNS-1035 label)");
        return TALLY_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) {
            seterr(err, errlen,
                   "may contain only lower-case letters, digits and '-' (a DNS-1035 label); "
                   "found '%c' at %zu",
                   /* never echo a control or non-ASCII byte into the error text */
                   (ch >= 0x20 && ch < 0x7f) ? ch : '?', i + 1);
            return TALLY_EINVAL;
        }
    }
    if (name[n - 1] == '-') {
        seterr(err, errlen, "must end with a lower-case letter or digit (a DNS-1035 label)");
        return TALLY_EINVAL;
    }
    return 0;
}

/* An integral JSON number in [lo, hi]. */
static int
int_in(const json_t *v, double lo, double hi)
{
    if (!json_is_number(v))
        return 0;
    double d = json_number_value(v);
    return d == floor(d) && d >= lo && d <= hi;
}

/* object_limits / resource_limits. Keys must be metric labels of the catalog: usage is looked
 * up by label, so a misspelled key would be a limit that never triggers. Unknown fields are
 * refused because an omitted maximum means 0 (protobuf JSON): a misspelled "maximum" would
 * store a limit of 0. Objects are int32 like the proto field; resources any finite number. */
static int
check_limit_map(const json_t *spec, const char *field, int integral, const tally__catalog_t *cat,
                char *err, size_t errlen)
{
    json_t *m = json_object_get(spec, field);
    if (!m || json_is_null(m))
        return 0;
    if (!json_is_object(m)) {
        seterr(err, errlen, "spec.%s: must be an object keyed by metric label", field);
        return TALLY_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v)
    {
        if (!tally__catalog_find(cat, key)) {
            seterr(err, errlen, "spec.%s.%.128s: not a metric label of the metric catalog", field,
                   key);
            return TALLY_EINVAL;
        }
        if (!json_is_object(v)) {
            seterr(err, errlen, "spec.%s.%s: must be an object {\"maximum\": %s}", field, key,
                   integral ? "integer" : "number");
            return TALLY_EINVAL;
        }
        const char *k2;
        json_t *v2;
        json_object_foreach(v, k2, v2)
        {
            if (strcmp(k2, "maximum") != 0) {
                seterr(err, errlen, "spec.%s.%s.%.64s: unknown field", field, key, k2);
                return TALLY_EINVAL;
            }
        }
        json_t *max = json_object_get(v, "maximum");
        if (!max || json_is_null(max))
            continue; /* protobuf JSON omits 0 */
        if (integral ? !int_in(max, -2147483648.0, 2147483647.0)
                     : !(json_is_number(max) && isfinite(json_number_value(max)))) {
            seterr(err, errlen, "spec.%s.%s.maximum: must be %s (negative = unlimited)", field, key,
                   integral ? "an integer in int32 range" : "a finite number");
            return TALLY_EINVAL;
        }
    }
    return 0;
}

/* api_limits. The unit is required, as there is no default: an entry without one would be
 * skipped by overlay_spec(), accepted but never enforced. rate and burst may be omitted
 * (protobuf JSON omits 0). */
static int
check_api_map(const json_t *spec, char *err, size_t errlen)
{
    json_t *m = json_object_get(spec, "api_limits");
    if (!m || json_is_null(m))
        return 0;
    if (!json_is_object(m)) {
        seterr(err, errlen, "spec.api_limits: must be an object keyed by API name");
        return TALLY_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v)
    {
        size_t n = strlen(key);
        /* set_api() drops a key its buffer cannot hold: refuse it here instead. */
        if (n == 0 || n >= sizeof(((tally__quota_api_limit_t *)0)->key)) {
            seterr(err, errlen, "spec.api_limits: an API name must have 1..127 characters");
            return TALLY_EINVAL;
        }
        for (size_t i = 0; i < n; i++)
            if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= 'A' && key[i] <= 'Z') ||
                  (key[i] >= '0' && key[i] <= '9') || key[i] == '_' || key[i] == '.' ||
                  key[i] == '-' || key[i] == '/')) {
                seterr(err, errlen,
                       "spec.api_limits.%.128s: an API name may contain only letters, digits, "
                       "'_', '.', '-' and '/'",
                       key);
                return TALLY_EINVAL;
            }
        if (!json_is_object(v)) {
            seterr(err, errlen,
                   "spec.api_limits.%s: must be an object {\"rate\", \"unit\", \"burst\"}", key);
            return TALLY_EINVAL;
        }
        const char *k2;
        json_t *v2;
        json_object_foreach(v, k2, v2)
        {
            if (strcmp(k2, "rate") != 0 && strcmp(k2, "unit") != 0 && strcmp(k2, "burst") != 0) {
                seterr(err, errlen, "spec.api_limits.%s.%.64s: unknown field", key, k2);
                return TALLY_EINVAL;
            }
        }
        json_t *rate = json_object_get(v, "rate"), *burst = json_object_get(v, "burst");
        json_t *unit = json_object_get(v, "unit");
        if (rate && !json_is_null(rate) && !int_in(rate, 0, 2147483647.0)) {
            seterr(err, errlen, "spec.api_limits.%s.rate: must be an integer in 0..2147483647",
                   key);
            return TALLY_EINVAL;
        }
        if (burst && !json_is_null(burst) && !int_in(burst, 0, 2147483647.0)) {
            seterr(err, errlen, "spec.api_limits.%s.burst: must be an integer in 0..2147483647",
                   key);
            return TALLY_EINVAL;
        }
        if (!json_is_string(unit) || !tally__quota_unit_seconds(json_string_value(unit))) {
            seterr(err, errlen, "spec.api_limits.%s.unit: must be one of SECOND, MINUTE, HOUR, DAY",
                   key);
            return TALLY_EINVAL;
        }
    }
    return 0;
}

/* Unknown fields are refused, not ignored: a client that misspelled a map would otherwise
 * believe it had set limits that were dropped. */
int
tally__quota_check_spec(const json_t *spec, const tally__catalog_t *cat, char *err, size_t errlen)
{
    if (!spec || json_is_null(spec))
        return 0;
    if (!json_is_object(spec)) {
        seterr(err, errlen, "spec: must be an object");
        return TALLY_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        if (strcmp(key, "object_limits") != 0 && strcmp(key, "resource_limits") != 0 &&
            strcmp(key, "api_limits") != 0) {
            seterr(err, errlen,
                   "spec.%.64s: unknown field (a quota spec has object_limits, resource_limits "
                   "and api_limits)",
                   key);
            return TALLY_EINVAL;
        }
    }
    int rc;
    if ((rc = check_limit_map(spec, "object_limits", 1, cat, err, errlen)) != 0 ||
        (rc = check_limit_map(spec, "resource_limits", 0, cat, err, errlen)) != 0 ||
        (rc = check_api_map(spec, err, errlen)) != 0)
        return rc;
    return 0;
}

/* ---- building documents ------------------------------------------------------------ */

/* Stored documents are normalized once so readers need no defaults: an omitted maximum, rate or
 * burst (protobuf JSON omits zeros) becomes 0, a negative maximum -1, and a resource maximum
 * given as an integer stays one (5, not 5.0). Input is validated: nothing is checked here. */
/* The normalized spec: all three maps, every entry in its full shape. */
static json_t *
normalize_spec(const json_t *spec)
{
    json_t *out = json_object(), *om = json_object(), *rm = json_object(), *am = json_object();
    int bad = !out || !om || !rm || !am;
    bad |= json_object_set_new(out, "object_limits", om);
    bad |= json_object_set_new(out, "resource_limits", rm);
    bad |= json_object_set_new(out, "api_limits", am);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(spec, "object_limits"), key, v)
    {
        json_t *m = json_object_get(v, "maximum");
        json_int_t x = m ? (json_int_t)json_number_value(m) : 0;
        bad |= json_object_set_new(om, key, json_pack("{sI}", "maximum", x < 0 ? -1 : x));
    }
    json_object_foreach((json_t *)json_object_get(spec, "resource_limits"), key, v)
    {
        json_t *m = json_object_get(v, "maximum");
        double x = m ? json_number_value(m) : 0;
        json_t *mv;
        if (x < 0)
            mv = json_integer(-1);
        else if (json_is_integer(m))
            mv = json_integer(json_integer_value(m));
        else
            mv = json_real(x);
        bad |= json_object_set_new(rm, key, json_pack("{so}", "maximum", mv));
    }
    json_object_foreach((json_t *)json_object_get(spec, "api_limits"), key, v)
    {
        json_t *r = json_object_get(v, "rate"), *b = json_object_get(v, "burst");
        bad |= json_object_set_new(am, key,
                                   json_pack("{sIsssI}", "rate",
                                             r ? (json_int_t)json_number_value(r) : 0, "unit",
                                             json_string_value(json_object_get(v, "unit")), "burst",
                                             b ? (json_int_t)json_number_value(b) : 0));
    }
    if (bad) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Labels must be selectable: keys and values follow the selector syntax, so every stored label
 * can be matched by tally__quota_list(). Annotations are free text. */
static int
check_string_map(const json_t *m, const char *field, int labels, char *err, size_t errlen)
{
    if (!m || json_is_null(m))
        return 0;
    if (!json_is_object(m)) {
        seterr(err, errlen, "metadata.%s: must be an object of strings", field);
        return TALLY_EINVAL;
    }
    const char *key;
    json_t *v;
    char why[160];
    json_object_foreach((json_t *)m, key, v)
    {
        if (!json_is_string(v)) {
            seterr(err, errlen, "metadata.%s.%.128s: must be a string", field, key);
            return TALLY_EINVAL;
        }
        if (!labels)
            continue;
        if (tally__selector_check_key(key, why, sizeof why) != 0) {
            seterr(err, errlen, "metadata.labels: invalid key '%.128s': %s", key, why);
            return TALLY_EINVAL;
        }
        if (tally__selector_check_value(json_string_value(v), why, sizeof why) != 0) {
            seterr(err, errlen, "metadata.labels.%.128s: invalid value: %s", key, why);
            return TALLY_EINVAL;
        }
    }
    return 0;
}


static const char *const meta_fields[] = {"name",        "namespace", "labels", "annotations",
                                          "description", "disable",   NULL};

int
tally__quota_build(const json_t *body, const char *path_ns, const char *path_name,
                   const json_t *prev, int64_t object_index, const tally__catalog_t *cat,
                   const tally__quota_origin_t *origin, json_t **out, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    if (!json_is_object(body)) {
        seterr(err, errlen, "request body must be a JSON object");
        return TALLY_EINVAL;
    }
    json_object_foreach((json_t *)body, key, v)
    {
        if (strcmp(key, "metadata") != 0 && strcmp(key, "spec") != 0) {
            seterr(err, errlen, "%.64s: unknown field (a request has metadata and spec)", key);
            return TALLY_EINVAL;
        }
    }
    json_t *meta = json_object_get(body, "metadata");
    if (meta && !json_is_null(meta) && !json_is_object(meta)) {
        seterr(err, errlen, "metadata: must be an object");
        return TALLY_EINVAL;
    }
    /* Replace names the object in its path, so metadata may be left out; Create may not. */
    if (!json_is_object(meta)) {
        if (!path_name) {
            seterr(err, errlen, "metadata: required (metadata.name names the object)");
            return TALLY_EINVAL;
        }
        meta = NULL;
    }
    json_object_foreach(meta, key, v)
    {
        int known = 0;
        for (size_t i = 0; meta_fields[i]; i++)
            known |= strcmp(meta_fields[i], key) == 0;
        if (!known) {
            seterr(err, errlen,
                   "metadata.%.64s: unknown field (metadata has name, namespace, labels, "
                   "annotations, description and disable)",
                   key);
            return TALLY_EINVAL;
        }
    }
    /* namespace */
    json_t *jns = json_object_get(meta, "namespace");
    if (jns && !json_is_null(jns)) {
        if (!json_is_string(jns)) {
            seterr(err, errlen, "metadata.namespace: must be a string");
            return TALLY_EINVAL;
        }
        const char *s = json_string_value(jns);
        /* "" is protobuf JSON's unset string. The path decides the namespace: a body naming
         * another one is refused rather than obeyed or ignored. */
        if (s[0] && strcmp(s, path_ns) != 0) {
            seterr(err, errlen,
                   "metadata.namespace: '%.64s' differs from the namespace of the path '%s'", s,
                   path_ns);
            return TALLY_EINVAL;
        }
    }
    /* name */
    json_t *jname = json_object_get(meta, "name");
    const char *name = path_name;
    if (jname && !json_is_null(jname) && !json_is_string(jname)) {
        seterr(err, errlen, "metadata.name: must be a string");
        return TALLY_EINVAL;
    }
    const char *bname = json_is_string(jname) ? json_string_value(jname) : "";
    /* Likewise on Replace the path decides the name and the body may only repeat it. */
    if (path_name) {
        if (bname[0] && strcmp(bname, path_name) != 0) {
            seterr(err, errlen, "metadata.name: '%.64s' differs from the name of the path '%s'",
                   bname, path_name);
            return TALLY_EINVAL;
        }
    } else {
        if (!bname[0]) {
            seterr(err, errlen, "metadata.name: required");
            return TALLY_EINVAL;
        }
        name = bname;
    }
    char why[160];
    if (tally__quota_check_name(name, why, sizeof why) != 0) {
        seterr(err, errlen, "metadata.name: '%.64s' %s", name, why);
        return TALLY_EINVAL;
    }
    int rc;
    if ((rc = check_string_map(json_object_get(meta, "labels"), "labels", 1, err, errlen)) != 0 ||
        (rc = check_string_map(json_object_get(meta, "annotations"), "annotations", 0, err,
                               errlen)) != 0)
        return rc;
    json_t *desc = json_object_get(meta, "description");
    if (desc && !json_is_null(desc) && !json_is_string(desc)) {
        seterr(err, errlen, "metadata.description: must be a string");
        return TALLY_EINVAL;
    }
    json_t *dis = json_object_get(meta, "disable");
    if (dis && !json_is_null(dis) && !json_is_boolean(dis)) {
        seterr(err, errlen, "metadata.disable: must be a boolean");
        return TALLY_EINVAL;
    }
    json_t *spec = json_object_get(body, "spec");
    if ((rc = tally__quota_check_spec(spec, cat, err, errlen)) != 0)
        return rc;

    /* the document */
    json_t *labels = json_object_get(meta, "labels"), *ann = json_object_get(meta, "annotations");
    /* jansson's "o" steals the reference even when packing fails */
    json_t *m = json_pack("{sssssosossso}", "name", name, "namespace", path_ns, "labels",
                          json_is_object(labels) ? json_deep_copy(labels) : json_object(),
                          "annotations", json_is_object(ann) ? json_deep_copy(ann) : json_object(),
                          "description", json_is_string(desc) ? json_string_value(desc) : "",
                          "disable", json_boolean(json_is_true(dis)));
    json_t *nspec = normalize_spec(spec);
    char now[TALLY_TIME_RFC3339_LEN];
    tally__time_format_rfc3339(origin->now_s, now, sizeof now);
    json_t *sys;
    /* Replace keeps the object's identity (uid, creation, creator, object_index) and refreshes
     * only the modification time and tenant; Create draws a new v4 uid. */
    const json_t *psys = prev ? json_object_get(prev, "system_metadata") : NULL;
    if (psys) {
        sys = json_deep_copy(psys);
        if (sys && (json_object_set_new(sys, "modification_timestamp", json_string(now)) ||
                    json_object_set_new(sys, "tenant",
                                        json_string(origin->tenant ? origin->tenant : "")))) {
            json_decref(sys);
            sys = NULL;
        }
    } else {
        char uid[37];
        tally__uuid_random(uid);
        sys = json_pack("{sssssssssssssI}", "uid", uid, "creation_timestamp", now,
                        "modification_timestamp", now, "creator_class", TALLY_QUOTA_CREATOR_CLASS,
                        "creator_id", origin->creator ? origin->creator : "", "tenant",
                        origin->tenant ? origin->tenant : "", "object_index",
                        (json_int_t)object_index);
    }
    /* "o*" omits a NULL member rather than failing, so a failed allocation above leaves doc
     * valid but incomplete: the explicit checks below catch it. */
    json_t *doc = json_pack("{so*so*so*}", "metadata", m, "spec", nspec, "system_metadata", sys);
    if (!doc || !m || !nspec || !sys) {
        json_decref(doc);
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    *out = doc;
    return 0;
}

/* ---- storage ---------------------------------------------------------------------- */

/* Error mapping at this module's edge: the codes our contracts name pass through; anything
 * else from the store becomes TALLY_ESTORE, one code for "the store failed". */
static int
store_rc(int rc)
{
    switch (rc) {
    case 0:
    case TALLY_ENOTFOUND:
    case TALLY_EEXISTS:
    case TALLY_EINVAL:
    case TALLY_EMAPFULL:
    case TALLY_ECORRUPT:
    case -ENOMEM:
        return rc;
    default:
        return TALLY_ESTORE;
    }
}

/* The next object_index (1 when the sequence object is missing or unreadable). */
static int
next_index(tally__store_t *store, int64_t *out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = tally__store_obj_get(store, TALLY_QUOTA_SEQ_KIND, TALLY_QUOTA_SEQ_NS,
                                  TALLY_QUOTA_SEQ_NAME, &text, &len);
    *out = 1;
    if (rc == TALLY_ENOTFOUND)
        return 0;
    if (rc != 0)
        return store_rc(rc);
    /* Corrupt content restarts the count rather than blocking every create; a store error
     * above is still an error. */
    json_t *j = json_loadb(text, len, 0, NULL);
    free(text);
    json_t *n = json_object_get(j, "next");
    if (json_is_integer(n) && json_integer_value(n) > 0)
        *out = json_integer_value(n);
    json_decref(j);
    return 0;
}

/* The index is read before validation but written in the same transaction as the object, and
 * the object with must_not_exist: a refused or failed create consumes no index, and an
 * existing name is TALLY_EEXISTS with nothing written. Reading and writing the sequence apart
 * is safe only because writers run on one thread (quota.h). */
int
tally__quota_create(tally__store_t *store, const json_t *body, const char *path_ns,
                    const tally__catalog_t *cat, const tally__quota_origin_t *origin, json_t **out,
                    char *err, size_t errlen)
{
    int64_t idx;
    int rc;
    if ((rc = next_index(store, &idx)) != 0)
        return rc;
    json_t *doc = NULL;
    if ((rc = tally__quota_build(body, path_ns, NULL, NULL, idx, cat, origin, &doc, err, errlen)) !=
        0)
        return rc;
    char *text = json_dumps(doc, JSON_COMPACT);
    char seq[64];
    snprintf(seq, sizeof seq, "{\"next\":%lld}", (long long)idx + 1);
    if (!text) {
        rc = -ENOMEM;
        goto fail;
    }
    const char *name = json_string_value(json_object_get(json_object_get(doc, "metadata"), "name"));
    tally__obj_op_t ops[2] = {
        {.op = TALLY_OBJ_PUT,
         .kind = TALLY_QUOTA_KIND,
         .ns = path_ns,
         .name = name,
         .value = text,
         .len = strlen(text),
         .must_not_exist = 1},
        {.op = TALLY_OBJ_PUT,
         .kind = TALLY_QUOTA_SEQ_KIND,
         .ns = TALLY_QUOTA_SEQ_NS,
         .name = TALLY_QUOTA_SEQ_NAME,
         .value = seq,
         .len = strlen(seq)},
    };
    rc = store_rc(tally__store_obj_write(store, ops, 2));
    free(text);
    if (rc == TALLY_EEXISTS)
        seterr(err, errlen, "quota '%s' already exists in namespace '%s'", name, path_ns);
    /* The name is validated (at most 63 bytes): a key too long for the store can only be
     * the namespace's fault. */
    else if (rc == TALLY_EINVAL)
        seterr(err, errlen, "metadata.namespace: '%.64s' is too long", path_ns);
    if (rc != 0)
        goto fail;
    if (out)
        *out = doc;
    else
        json_decref(doc);
    return 0;
fail:
    json_decref(doc);
    return rc;
}

/* The store's TALLY_EINVAL is a key too long to store: no such object can exist, so it is
 * TALLY_ENOTFOUND to the caller. tally__quota_delete() maps it the same way. */
int
tally__quota_get(tally__store_t *store, const char *ns, const char *name, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = tally__store_obj_get(store, TALLY_QUOTA_KIND, ns, name, &text, &len);
    if (rc != 0)
        return rc == TALLY_EINVAL ? TALLY_ENOTFOUND : store_rc(rc);
    json_t *doc = json_loadb(text, len, 0, NULL);
    free(text);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return TALLY_ECORRUPT;
    }
    *out = doc;
    return 0;
}

/* The stored object is read first for the identity a Replace keeps. must_exist on the write
 * makes a delete in between TALLY_ENOTFOUND, not a re-creation under the old identity. */
int
tally__quota_replace(tally__store_t *store, const json_t *body, const char *path_ns,
                     const char *path_name, const tally__catalog_t *cat,
                     const tally__quota_origin_t *origin, json_t **out, char *err, size_t errlen)
{
    json_t *prev = NULL, *doc = NULL;
    int rc = tally__quota_get(store, path_ns, path_name, &prev);
    if (rc == TALLY_ENOTFOUND)
        seterr(err, errlen, "no quota '%s' in namespace '%s'", path_name, path_ns);
    if (rc != 0)
        return rc;
    rc = tally__quota_build(body, path_ns, path_name, prev, 0, cat, origin, &doc, err, errlen);
    json_decref(prev);
    if (rc != 0)
        return rc;
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        json_decref(doc);
        return -ENOMEM;
    }
    tally__obj_op_t op = {.op = TALLY_OBJ_PUT,
                          .kind = TALLY_QUOTA_KIND,
                          .ns = path_ns,
                          .name = path_name,
                          .value = text,
                          .len = strlen(text),
                          .must_exist = 1};
    rc = store_rc(tally__store_obj_write(store, &op, 1));
    free(text);
    if (rc == TALLY_ENOTFOUND)
        seterr(err, errlen, "no quota '%s' in namespace '%s'", path_name, path_ns);
    if (rc != 0) {
        json_decref(doc);
        return rc;
    }
    if (out)
        *out = doc;
    else
        json_decref(doc);
    return 0;
}

int
tally__quota_delete(tally__store_t *store, const char *ns, const char *name)
{
    tally__obj_op_t op = {
        .op = TALLY_OBJ_DEL, .kind = TALLY_QUOTA_KIND, .ns = ns, .name = name, .must_exist = 1};
    int rc = tally__store_obj_write(store, &op, 1);
    return rc == TALLY_EINVAL ? TALLY_ENOTFOUND : store_rc(rc);
}

typedef struct list_ctx {
    const tally__selector_t *sel;
    json_t *arr;
} list_ctx_t;

/* An unreadable document is skipped, so one corrupt object does not hide the others. */
static int
list_cb(void *vctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)ns;
    (void)name;
    list_ctx_t *c = vctx;
    json_t *doc = json_loadb(value, len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0;
    }
    if (!tally__selector_match_json(c->sel,
                                    json_object_get(json_object_get(doc, "metadata"), "labels"))) {
        json_decref(doc);
        return 0;
    }
    return json_array_append_new(c->arr, doc) ? -ENOMEM : 0;
}

int
tally__quota_list(tally__store_t *store, const char *ns, const tally__selector_t *sel, json_t **out)
{
    list_ctx_t c = {sel, json_array()};
    if (!c.arr)
        return -ENOMEM;
    int rc = tally__store_obj_list(store, TALLY_QUOTA_KIND, ns, list_cb, &c);
    /* -ENOMEM is list_cb()'s only failure and passes through; any other is the store's. */
    if (rc != 0) {
        json_decref(c.arr);
        return rc == -ENOMEM ? rc : TALLY_ESTORE;
    }
    *out = c.arr;
    return 0;
}
