/* routes_dash.c — tally extensions for the capacity dashboard (/ui/): the namespaces a token can
 * see, usage series split by namespace, object or metric, recent quota alerts.
 *
 * These are documented tally extensions under /api/tally/ (docs/api.md,
 * "Dashboard extensions"); the reference API has no equivalent. Every
 * number comes from the same hourly rollups and quantity rule as
 * usage_details (lib/usage.h), so a series' total equals the sum of the
 * matching usage_details items over the same window.
 *
 * Memory of a usage_series request is bounded whatever the number of
 * series: at most MAX_GROUPS distinct group keys are tracked (the rest are
 * folded into "other"; up to MAX_GROUPS of them are counted, distinct, in
 * groups_dropped, and groups_dropped_capped says there were more), and the bucket table
 * holds (top + 1) x buckets quantities, top <= MAX_TOP, buckets <=
 * MAX_BUCKETS. The store is scanned twice (totals, then buckets of the top
 * groups), each scan in one read snapshot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "alerts.h"
#include "jsonw.h"
#include "rollup.h"
#include "routes.h"
#include "strtab.h"
#include "timeutil.h"
#include "usage.h"

#define MAX_GROUPS 65536    /* distinct group keys tracked per request (and dropped keys counted) */
#define MAX_TOP 50          /* largest `top` */
#define DEFAULT_TOP 8       /* `top` when absent */
#define MAX_BUCKETS 10000   /* buckets per request (hour: ~416 days) */
#define MAX_NAMESPACES 4096 /* namespaces listed by dash_namespaces */
#define DAY_S (24 * 3600)

enum { BY_NAMESPACE, BY_OBJECT, BY_METRIC };

/* ---- GET /api/tally/namespaces
 * ------------------------------------------------------------------- */

typedef struct ns_set {
    tally__strtab_t *tab;
    const tally__token_t *tok;
    int truncated;
} ns_set_t;

static int
ns_set_add(ns_set_t *s, const char *ns, size_t len)
{
    if (len == 0 || !tally__token_allows_ns(s->tok, ns, len, TALLY_ACCESS_READ))
        return 0;
    uint32_t id;
    if (tally__strtab_find(s->tab, ns, (uint32_t)len, &id))
        return 0;
    if (tally__strtab_count(s->tab) >= MAX_NAMESPACES) {
        s->truncated = 1;
        return 0;
    }
    int rc = tally__strtab_intern(s->tab, ns, (uint32_t)len, &id);
    return rc < 0 ? rc : 0;
}

static int
on_ns_rollup(void *ctx, const char *series, size_t len, int64_t period_s, const tally__rollup_t *r)
{
    (void)period_s;
    (void)r;
    tally__series_t s;
    if (tally__series_parse(series, len, &s) != 0)
        return 0;
    return ns_set_add(ctx, s.ns, s.ns_len);
}

static int
on_ns_quota(void *ctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)name;
    (void)value;
    (void)len;
    return ns_set_add(ctx, ns, strlen(ns));
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The namespaces with usage (any month kept) or quota objects, plus the ones
 * the token names, that the token may read; `system` is not one of them but
 * a flag (`tenant`): it is the view of all of them together.
 */
void
tally_route_dash_namespaces(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const tally__token_t *tok = tally_route_token(req);
    ns_set_t set = {.tok = tok};
    const char **names = NULL;
    if (tally__strtab_create(&set.tab) != 0) {
        tally_route_fail(res, -ENOMEM, NULL, "list namespaces");
        return;
    }
    size_t nt = 0;
    const char *const *mine = tally__token_namespaces(tok, &nt);
    int rc = 0;
    for (size_t i = 0; i < nt && rc == 0; i++)
        if (strcmp(mine[i], TALLY_USAGE_ALL_NS) != 0 && strcmp(mine[i], "*") != 0)
            rc = ns_set_add(&set, mine[i], strlen(mine[i]));
    if (rc == 0)
        rc = tally__store_scan(ctx->store, TALLY_STORE_MONTHLY, NULL, 0, 0, INT64_MAX / 2,
                               on_ns_rollup, &set);
    if (rc == 0)
        rc = tally__store_obj_list(ctx->store, "quota", NULL, on_ns_quota, &set);
    if (rc < 0 || rc > 0) {
        tally_route_fail(res, rc, NULL, "list namespaces");
        goto out;
    }
    uint32_t n = tally__strtab_count(set.tab);
    /* "system" is never a namespace of data; drop it if it came from data */
    names = calloc(n ? n : 1, sizeof *names);
    if (!names) {
        tally_route_fail(res, -ENOMEM, NULL, "list namespaces");
        goto out;
    }
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *s = tally__strtab_get(set.tab, i, NULL);
        if (strcmp(s, TALLY_USAGE_ALL_NS) != 0)
            names[k++] = s;
    }
    if (k > 1)
        qsort(names, k, sizeof *names, cmp_str);
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "token");
    tally__jw_str(&jw, tally__token_name(tok));
    tally__jw_key(&jw, "role");
    tally__jw_str(&jw, tally__role_name(tally__token_role(tok)));
    tally__jw_key(&jw, "tenant");
    tally__jw_bool(&jw, tally__token_allows(tok, TALLY_USAGE_ALL_NS, TALLY_ACCESS_READ));
    tally__jw_key(&jw, "namespaces");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < k; i++)
        tally__jw_str(&jw, names[i]);
    tally__jw_arr_end(&jw);
    tally__jw_key(&jw, "truncated");
    tally__jw_bool(&jw, set.truncated);
    /* the catalog, so a client can print units without a second call */
    tally__jw_key(&jw, "metrics");
    tally__jw_arr_begin(&jw);
    size_t nm = ctx->catalog ? tally__catalog_count(ctx->catalog) : 0;
    for (size_t i = 0; i < nm; i++) {
        const tally__metric_def_t *d = tally__catalog_at(ctx->catalog, i);
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "metric_label");
        tally__jw_str(&jw, d->metric);
        tally__jw_key(&jw, "usage_type");
        tally__jw_str(&jw, d->usage_type);
        tally__jw_key(&jw, "unit");
        tally__jw_str(&jw, d->unit);
        tally__jw_key(&jw, "aggregation");
        tally__jw_str(&jw, tally__agg_name(d->aggregation));
        tally__jw_key(&jw, "billable_unit");
        tally__jw_str(&jw, d->billable_unit);
        tally__jw_key(&jw, "division_factor");
        tally__jw_int(&jw, (int64_t)d->division_factor);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_key(&jw, "hourly_retention_days");
    tally__jw_int(&jw, ctx->cfg->storage.hourly_retention_days);
    tally__jw_obj_end(&jw);
    tally_route_respond(res, &jw);
out:
    free(names);
    tally__strtab_destroy(set.tab);
}

/* ---- POST /api/tally/namespaces/{namespace}/usage_series
 * ------------------------------------------ */

typedef struct series_req {
    tally_ctx_t *ctx;
    const char *metric; /* NULL with BY_METRIC */
    int by;
    int all_ns; /* path namespace system: object keys carry their namespace */
    int64_t from_s, to_s, step_s;
    size_t nbuckets;
    /* pass 1 */
    tally__strtab_t *keys;
    tally__usage_qty_t *totals; /* by key id */
    tally__agg_t *aggs;         /* by key id (BY_METRIC: each metric its own) */
    size_t cap;
    size_t dropped;     /* distinct keys past MAX_GROUPS (counted up to MAX_GROUPS) */
    int dropped_capped; /* more were dropped than counted */
    tally__strtab_t *dropped_keys;
    tally__usage_qty_t other_total; /* keys past MAX_GROUPS */
    /* pass 2 */
    int32_t *slot_of; /* key id -> row in buckets, -1 = other */
    size_t top;
    tally__usage_qty_t *buckets; /* (top + 1) x nbuckets; row top is "other" */
    int rc;
} series_req_t;

/* The group key of a series, into buf; 0 when the series is not wanted. */
static size_t
group_key(const series_req_t *q, const tally__series_t *s, char *buf, size_t cap, tally__agg_t *agg)
{
    if (q->metric &&
        (s->metric_len != strlen(q->metric) || memcmp(s->metric, q->metric, s->metric_len) != 0))
        return 0;
    char metric[TALLY_MAX_METRIC_LEN + 1];
    size_t ml = s->metric_len < TALLY_MAX_METRIC_LEN ? s->metric_len : TALLY_MAX_METRIC_LEN;
    memcpy(metric, s->metric, ml);
    metric[ml] = '\0';
    const tally__metric_def_t *def =
        q->ctx->catalog ? tally__catalog_find(q->ctx->catalog, metric) : NULL;
    *agg = def ? def->aggregation : TALLY_AGG_SUM;
    size_t n = 0;
    if (q->by == BY_METRIC) {
        n = ml;
        memcpy(buf, metric, n);
    } else if (q->by == BY_NAMESPACE) {
        n = s->ns_len < cap ? s->ns_len : cap;
        memcpy(buf, s->ns, n);
    } else {
        if (q->all_ns) {
            n = s->ns_len;
            memcpy(buf, s->ns, n);
            buf[n++] = '/';
        }
        uint32_t pos = 0, kl, vl;
        const char *k, *v;
        while (tally__series_next_label(s->labels, s->labels_len, &pos, &k, &kl, &v, &vl)) {
            if (kl == 6 && memcmp(k, "object", 6) == 0) {
                if (vl > cap - n)
                    vl = (uint32_t)(cap - n);
                memcpy(buf + n, v, vl);
                n += vl;
                break;
            }
        }
        if (n == 0)
            buf[n++] = '/'; /* no object label: its own group; never a valid object name */
    }
    return n;
}

static int
on_series_total(void *ctx, const char *series, size_t len, int64_t period_s,
                const tally__rollup_t *r)
{
    (void)period_s;
    series_req_t *q = ctx;
    tally__series_t s;
    if (tally__series_parse(series, len, &s) != 0)
        return 0;
    char key[TALLY_SERIES_KEY_MAX];
    tally__agg_t agg;
    size_t kn = group_key(q, &s, key, sizeof key, &agg);
    if (!kn)
        return 0;
    uint32_t id;
    if (!tally__strtab_find(q->keys, key, (uint32_t)kn, &id)) {
        if (tally__strtab_count(q->keys) >= MAX_GROUPS) {
            tally__usage_qty_add_rollup(&q->other_total, agg, r);
            if (tally__strtab_count(q->dropped_keys) >= MAX_GROUPS) {
                if (!tally__strtab_find(q->dropped_keys, key, (uint32_t)kn, &id))
                    q->dropped_capped = 1;
            } else if (tally__strtab_intern(q->dropped_keys, key, (uint32_t)kn, &id) == 1) {
                q->dropped++;
            }
            return 0;
        }
        int rc = tally__strtab_intern(q->keys, key, (uint32_t)kn, &id);
        if (rc < 0)
            return rc;
        if (id >= q->cap) {
            size_t ncap = q->cap ? q->cap * 2 : 64;
            tally__usage_qty_t *nt = realloc(q->totals, ncap * sizeof *nt);
            if (!nt)
                return -ENOMEM;
            q->totals = nt;
            tally__agg_t *na = realloc(q->aggs, ncap * sizeof *na);
            if (!na)
                return -ENOMEM;
            q->aggs = na;
            q->cap = ncap;
        }
        memset(&q->totals[id], 0, sizeof q->totals[id]);
        q->aggs[id] = agg;
    }
    tally__usage_qty_add_rollup(&q->totals[id], agg, r);
    return 0;
}

static int
on_series_bucket(void *ctx, const char *series, size_t len, int64_t period_s,
                 const tally__rollup_t *r)
{
    series_req_t *q = ctx;
    tally__series_t s;
    if (period_s < q->from_s || period_s >= q->to_s || tally__series_parse(series, len, &s) != 0)
        return 0;
    char key[TALLY_SERIES_KEY_MAX];
    tally__agg_t agg;
    size_t kn = group_key(q, &s, key, sizeof key, &agg);
    if (!kn)
        return 0;
    uint32_t id;
    size_t row = q->top; /* other */
    if (tally__strtab_find(q->keys, key, (uint32_t)kn, &id) && q->slot_of[id] >= 0)
        row = (size_t)q->slot_of[id];
    size_t b = (size_t)((period_s - q->from_s) / q->step_s);
    tally__usage_qty_add_rollup(&q->buckets[row * q->nbuckets + b], agg, r);
    return 0;
}

/* Order of key ids by total, largest first (ties by key, for a stable answer). */
static series_req_t *sort_q;
static int
cmp_total(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    double vx = tally__usage_qty_value(&sort_q->totals[x]);
    double vy = tally__usage_qty_value(&sort_q->totals[y]);
    if (vx != vy)
        return vx > vy ? -1 : 1;
    return strcmp(tally__strtab_get(sort_q->keys, x, NULL),
                  tally__strtab_get(sort_q->keys, y, NULL));
}

static void
put_qty(tally__jw_t *w, const tally__usage_qty_t *q)
{
    char buf[TALLY_USAGE_NUM_LEN];
    int64_t iv;
    if (tally__usage_qty_as_int(q, &iv))
        tally__jw_int(w, iv);
    else {
        const char *t = tally__usage_qty_format(q, buf, sizeof buf);
        tally__jw_raw(w, t, strlen(t));
    }
}

/* One key's description: key, and its namespace / object / metric parts. */
static void
put_key(tally__jw_t *w, const series_req_t *q, const char *key)
{
    tally__jw_key(w, "key");
    tally__jw_str(w, key);
    if (q->by == BY_OBJECT) {
        const char *slash = q->all_ns ? strchr(key, '/') : NULL;
        const char *obj = slash ? slash + 1 : key;
        if (slash) {
            tally__jw_key(w, "namespace");
            tally__jw_str_n(w, key, (size_t)(slash - key));
        }
        tally__jw_key(w, "object_name");
        tally__jw_str(w, strcmp(obj, "/") == 0 ? "" : obj);
    }
    if (q->by == BY_METRIC) {
        const tally__metric_def_t *d =
            q->ctx->catalog ? tally__catalog_find(q->ctx->catalog, key) : NULL;
        tally__metric_def_t def;
        if (!d) {
            tally__metric_def_default(key, &def);
            d = &def;
        }
        tally__jw_key(w, "usage_type");
        tally__jw_str(w, d->usage_type);
        tally__jw_key(w, "unit");
        tally__jw_str(w, d->unit);
        tally__jw_key(w, "aggregation");
        tally__jw_str(w, tally__agg_name(d->aggregation));
    }
}

static void
put_buckets(tally__jw_t *w, const series_req_t *q, size_t row)
{
    tally__jw_key(w, "values");
    tally__jw_arr_begin(w);
    for (size_t b = 0; b < q->nbuckets; b++)
        put_qty(w, &q->buckets[row * q->nbuckets + b]);
    tally__jw_arr_end(w);
}

void
tally_route_dash_series(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *path_ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    series_req_t q = {.ctx = ctx, .all_ns = tally__usage_scope(path_ns) == NULL};
    uint32_t *order = NULL;
    int64_t now = tally__time_now_ms(), from_ms = 0, to_ms = now;
    int has_from, rc;
    if (tally_route_body_ns(body, path_ns, res) != 0 ||
        (has_from = tally_route_body_time(body, "from", TALLY_ROUTE_TIME_RFC3339, &from_ms, res)) <
            0 ||
        tally_route_body_time(body, "to", TALLY_ROUTE_TIME_RFC3339, &to_ms, res) < 0)
        goto out;
    if (!has_from)
        from_ms = to_ms - 24LL * 3600 * 1000; /* the last 24 hours */
    json_t *v = json_object_get(body, "group_by");
    const char *by = json_is_string(v) ? json_string_value(v) : v && !json_is_null(v) ? "?" : NULL;
    if (!by)
        by = q.all_ns ? "namespace" : "object";
    if (strcmp(by, "namespace") == 0)
        q.by = BY_NAMESPACE;
    else if (strcmp(by, "object") == 0)
        q.by = BY_OBJECT;
    else if (strcmp(by, "metric") == 0)
        q.by = BY_METRIC;
    else {
        tally_http_error(res, 400, "EBADINPUT",
                         "group_by: must be \"namespace\", \"object\" or \"metric\"");
        goto out;
    }
    v = json_object_get(body, "metric");
    if (v && !json_is_null(v) &&
        (!json_is_string(v) || !tally__catalog_valid_label(json_string_value(v)))) {
        tally_http_error(res, 400, "EBADINPUT",
                         "metric: must be a metric label ([A-Za-z0-9_.:-], 1 to 64 bytes)");
        goto out;
    }
    q.metric = json_is_string(v) ? json_string_value(v) : NULL;
    if (!q.metric && q.by != BY_METRIC) {
        tally_http_error(res, 400, "EBADINPUT",
                         "metric: required unless group_by is \"metric\" (a chart has one unit)");
        goto out;
    }
    v = json_object_get(body, "step");
    const char *step = json_is_string(v)       ? json_string_value(v)
                       : v && !json_is_null(v) ? "?"
                                               : "hour";
    if (strcmp(step, "hour") == 0)
        q.step_s = 3600;
    else if (strcmp(step, "day") == 0)
        q.step_s = DAY_S;
    else {
        tally_http_error(res, 400, "EBADINPUT", "step: must be \"hour\" or \"day\"");
        goto out;
    }
    q.top = DEFAULT_TOP;
    v = json_object_get(body, "top");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MAX_TOP) {
            tally_http_error(res, 400, "EBADINPUT", "top: must be an integer from 1 to %d",
                             MAX_TOP);
            goto out;
        }
        q.top = (size_t)json_integer_value(v);
    }
    tally__usage_window_t w;
    if (from_ms >= to_ms) {
        tally_http_error(res, 400, "EBADINPUT", "from: must be before to");
        goto out;
    }
    if (tally__usage_window(from_ms, to_ms, &w) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "to: the window leaves the years 0000..9999");
        goto out;
    }
    q.from_s = w.from_s;
    q.to_s = w.to_s;
    if (q.step_s == DAY_S) { /* whole UTC days */
        q.from_s = tally__time_day_start(q.from_s);
        q.to_s = tally__time_day_start(q.to_s - 1) + DAY_S;
    }
    if ((q.to_s - q.from_s) / q.step_s > MAX_BUCKETS) {
        tally_http_error(res, 400, "EBADINPUT",
                         "step: %s buckets over this window exceed %d; use \"day\" or a shorter "
                         "window",
                         step, MAX_BUCKETS);
        goto out;
    }
    q.nbuckets = (size_t)((q.to_s - q.from_s) / q.step_s);
    if (tally__strtab_create(&q.keys) != 0 || tally__strtab_create(&q.dropped_keys) != 0) {
        tally_route_fail(res, -ENOMEM, NULL, "usage_series");
        goto out;
    }
    const char *scope = tally__usage_scope(path_ns);
    rc = tally__store_scan(ctx->store, TALLY_STORE_HOURLY, scope, scope ? strlen(scope) : 0,
                           q.from_s, q.to_s, on_series_total, &q);
    if (rc != 0) {
        tally_route_fail(res, rc, NULL, "usage_series");
        goto out;
    }
    uint32_t nkeys = tally__strtab_count(q.keys);
    if (q.by == BY_METRIC)
        q.top = MAX_TOP; /* every metric (up to MAX_TOP): each is its own chart */
    order = calloc(nkeys ? nkeys : 1, sizeof *order);
    q.slot_of = malloc((nkeys ? nkeys : 1) * sizeof *q.slot_of);
    if (q.top > nkeys)
        q.top = nkeys;
    q.buckets = calloc((q.top + 1) * q.nbuckets + 1, sizeof *q.buckets);
    if (!order || !q.slot_of || !q.buckets) {
        tally_route_fail(res, -ENOMEM, NULL, "usage_series");
        goto out;
    }
    for (uint32_t i = 0; i < nkeys; i++) {
        order[i] = i;
        q.slot_of[i] = -1;
    }
    sort_q = &q;
    if (nkeys > 1)
        qsort(order, nkeys, sizeof *order, cmp_total);
    for (size_t i = 0; i < q.top; i++)
        q.slot_of[order[i]] = (int32_t)i;
    rc = tally__store_scan(ctx->store, TALLY_STORE_HOURLY, scope, scope ? strlen(scope) : 0,
                           q.from_s, q.to_s, on_series_bucket, &q);
    if (rc != 0) {
        tally_route_fail(res, rc, NULL, "usage_series");
        goto out;
    }
    /* other = every key below the top, plus the ones past MAX_GROUPS */
    tally__usage_qty_t other = q.other_total;
    tally__agg_t oagg = TALLY_AGG_SUM;
    for (uint32_t i = (uint32_t)q.top; i < nkeys; i++) {
        oagg = q.aggs[order[i]];
        tally__usage_qty_merge(&other, oagg, &q.totals[order[i]]);
    }
    tally__usage_qty_t total = other;
    for (size_t i = 0; i < q.top; i++)
        tally__usage_qty_merge(&total, q.aggs[order[i]], &q.totals[order[i]]);

    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "namespace");
    tally__jw_str(&jw, path_ns);
    tally__jw_key(&jw, "group_by");
    tally__jw_str(&jw, by);
    tally__jw_key(&jw, "step");
    tally__jw_str(&jw, step);
    tally__jw_key(&jw, "start_timestamp");
    tally_route_put_time(&jw, q.from_s);
    tally__jw_key(&jw, "end_timestamp");
    tally_route_put_time(&jw, q.to_s);
    tally__jw_key(&jw, "buckets");
    tally__jw_int(&jw, (int64_t)q.nbuckets);
    if (q.metric) {
        const tally__metric_def_t *d =
            ctx->catalog ? tally__catalog_find(ctx->catalog, q.metric) : NULL;
        tally__metric_def_t def;
        if (!d) {
            tally__metric_def_default(q.metric, &def);
            d = &def;
        }
        tally__jw_key(&jw, "metric_label");
        tally__jw_str(&jw, q.metric);
        tally__jw_key(&jw, "usage_type");
        tally__jw_str(&jw, d->usage_type);
        tally__jw_key(&jw, "unit");
        tally__jw_str(&jw, d->unit);
        tally__jw_key(&jw, "aggregation");
        tally__jw_str(&jw, tally__agg_name(d->aggregation));
        tally__jw_key(&jw, "total");
        put_qty(&jw, &total);
    }
    tally__jw_key(&jw, "series");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < q.top; i++) {
        tally__jw_obj_begin(&jw);
        put_key(&jw, &q, tally__strtab_get(q.keys, order[i], NULL));
        tally__jw_key(&jw, "total");
        put_qty(&jw, &q.totals[order[i]]);
        put_buckets(&jw, &q, i);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_key(&jw, "other");
    if (q.by != BY_METRIC && (nkeys > q.top || q.dropped)) {
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "groups");
        tally__jw_int(&jw, (int64_t)(nkeys - q.top + q.dropped));
        tally__jw_key(&jw, "total");
        put_qty(&jw, &other);
        put_buckets(&jw, &q, q.top);
        tally__jw_obj_end(&jw);
    } else {
        tally__jw_null(&jw);
    }
    tally__jw_key(&jw, "groups");
    tally__jw_int(&jw, (int64_t)(nkeys + q.dropped));
    tally__jw_key(&jw, "groups_dropped");
    tally__jw_int(&jw, (int64_t)q.dropped);
    tally__jw_key(&jw, "groups_dropped_capped");
    tally__jw_bool(&jw, q.dropped_capped);
    tally__jw_obj_end(&jw);
    tally_route_respond(res, &jw);
out:
    sort_q = NULL;
    free(order);
    free(q.slot_of);
    free(q.buckets);
    free(q.totals);
    free(q.aggs);
    tally__strtab_destroy(q.keys);
    tally__strtab_destroy(q.dropped_keys);
    json_decref(body);
}

/* ---- GET /api/tally/namespaces/{namespace}/alerts ----------------------------------------------
 */

void
tally_route_dash_alerts(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)ctx;
    static tally_alert_seen_t seen[TALLY_ALERTS_RECENT_MAX]; /* loop thread only */
    const char *path_ns = tally_route_param(req, "namespace");
    size_t n = tally_alerts_recent(tally__usage_scope(path_ns), seen, TALLY_ALERTS_RECENT_MAX);
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "alerts");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < n; i++) {
        const tally_alert_seen_t *a = &seen[i];
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "namespace");
        tally__jw_str(&jw, a->ns);
        tally__jw_key(&jw, "key");
        tally__jw_str(&jw, a->key);
        tally__jw_key(&jw, "level");
        tally__jw_str(&jw, tally__alert_level_name(a->level));
        tally__jw_key(&jw, "previous_level");
        tally__jw_str(&jw, tally__alert_level_name(a->prev));
        tally__jw_key(&jw, "usage");
        tally__jw_double(&jw, a->usage);
        tally__jw_key(&jw, "limit");
        tally__jw_double(&jw, a->limit);
        tally__jw_key(&jw, "time");
        tally_route_put_time(&jw, a->at_ms / 1000);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_key(&jw, "kept");
    tally__jw_int(&jw, TALLY_ALERTS_RECENT_MAX);
    tally__jw_obj_end(&jw);
    tally_route_respond(res, &jw);
}
