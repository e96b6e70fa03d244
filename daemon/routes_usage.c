/* routes_usage.c — usage_details, hourly_usage_details and usage_summary over lib/usage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ids.h"
#include "codec.h"
#include "jsonw.h"
#include "routes.h"
#include "stats.h"
#include "timeutil.h"
#include "usage.h"

#define SIX_HOURS_MS (6LL * 3600 * 1000)

/* ---- parsing ------------------------------------------------------------------ */

/* Time syntaxes a field accepts. */

/* Turn a requested [from, to) into the effective window, or write a 400. */
static int
make_window(int64_t from_ms, int64_t to_ms, const char *from_key, const char *to_key,
            tally__usage_window_t *w, tally_http_res_t *res)
{
    if (from_ms >= to_ms) {
        tally_http_error(res, 400, "EBADINPUT", "%s: must be before %s", from_key, to_key);
        return -1;
    }
    if (tally__usage_window(from_ms, to_ms, w) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "%s: the window leaves the years 0000..9999",
                         to_key);
        return -1;
    }
    return 0;
}

/* ---- rendering ---------------------------------------------------------------- */

/* A quantity as a JSON number: an integer when exact, a real otherwise. */
static void
put_qty(tally__jw_t *w, const tally__usage_qty_t *q)
{
    int64_t x;
    if (tally__usage_qty_as_int(q, &x))
        tally__jw_int(w, x);
    else
        tally__jw_double(w, tally__usage_qty_value(q));
}

/* tally's extension field (docs/semantics-overflow.md, daemon/openapi.json):
 * "tally_inexact": true on a line whose quantity passed int64 somewhere in
 * its integer sums and went on in double precision; absent otherwise, so
 * lines of the reference schema are unchanged. */
static void
put_inexact(tally__jw_t *w, const tally__usage_qty_t *q)
{
    if (!q->int_overflow)
        return;
    tally__jw_key(w, "tally_inexact");
    tally__jw_bool(w, 1);
}

/* Standard base64 of the compact JSON {namespace, metric_label, object_name, from, to}. */
static void
put_breakdown_query(tally__jw_t *w, const tally__usage_item_t *it, const tally__usage_window_t *win)
{
    tally__jw_t q;
    tally__jw_init(&q);
    tally__jw_obj_begin(&q);
    tally__jw_key(&q, "namespace");
    tally__jw_str(&q, it->ns);
    tally__jw_key(&q, "metric_label");
    tally__jw_str(&q, it->metric);
    tally__jw_key(&q, "object_name");
    tally__jw_str(&q, it->object);
    tally__jw_key(&q, "from");
    tally_route_put_time(&q, win->from_s);
    tally__jw_key(&q, "to");
    tally_route_put_time(&q, win->to_s);
    tally__jw_obj_end(&q);
    size_t len;
    char *text = tally__jw_take(&q, &len);
    char b64[1024];
    size_t bl = text ? tally__base64_encode(b64, sizeof b64, text, len) : 0;
    if (bl)
        tally__jw_str_plain(w, b64, bl);
    else
        w->b.err = 1;
    free(text);
}

/* ---- response cache ------------------------------------------------------------
 * Usage answers change only when a flush commits, so a rendered answer is
 * kept per (route, path namespace, window) and served again until the next
 * commit (the flush counter is the store's generation). Dashboards polling
 * the same window hit it; correctness does not depend on it. Loop thread
 * only; bounded: CACHE_SLOTS entries of at most CACHE_MAX_BODY bytes. */
#define CACHE_SLOTS 64
#define CACHE_MAX_BODY (64u * 1024u)

typedef struct cache_ent {
    uint64_t gen;
    uint64_t used;
    char key[192];
    char *body;
    size_t len;
} cache_ent_t;

static cache_ent_t cache[CACHE_SLOTS];
static uint64_t cache_clock;

static uint64_t
store_generation(void)
{
    /* the rollups change with every commit and every retention prune */
    return TALLY_STAT_GET(flushes) + TALLY_STAT_GET(retention_pruned);
}

static int
cache_get(const char *key, tally_http_res_t *res)
{
    uint64_t gen = store_generation();
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_ent_t *e = &cache[i];
        if (e->body && e->gen == gen && strcmp(e->key, key) == 0) {
            e->used = ++cache_clock;
            tally_http_set_body(res, 200, "application/json", e->body, e->len);
            return 1;
        }
    }
    return 0;
}

static void
cache_put(const char *key, uint64_t gen, const char *body, size_t len)
{
    if (len > CACHE_MAX_BODY || strlen(key) >= sizeof cache[0].key)
        return;
    cache_ent_t *victim = &cache[0];
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_ent_t *e = &cache[i];
        if (!e->body || e->gen != store_generation()) {
            victim = e;
            break;
        }
        if (e->used < victim->used)
            victim = e;
    }
    char *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, body, len);
    free(victim->body);
    victim->body = copy;
    victim->len = len;
    victim->gen = gen;
    victim->used = ++cache_clock;
    snprintf(victim->key, sizeof victim->key, "%s", key);
}

static void
store_error(tally_http_res_t *res, int rc)
{
    tally_http_error(res, 500, "EINTERNAL", "cannot read usage from the store: %s",
                     tally_strerror(rc));
}

/* ---- usage_details ------------------------------------------------------------- */

void
tally_route_usage_details(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *path_ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    int64_t now = tally__time_now_ms(), from_ms = 0, to_ms = now;
    tally__usage_window_t w;
    tally__usage_item_t *items = NULL;
    size_t n = 0;
    int has_from = 0, has_to = 0, rc;
    if (tally_route_body_ns(body, path_ns, res) != 0 ||
        (has_from = tally_route_body_time(body, "from", TALLY_ROUTE_TIME_RFC3339, &from_ms, res)) < 0 ||
        (has_to = tally_route_body_time(body, "to", TALLY_ROUTE_TIME_RFC3339, &to_ms, res)) < 0)
        goto out;
    /* Default: month to date (the month of `to` when only `to` is given). */
    if (!has_from)
        from_ms = tally__time_month_start((has_to ? to_ms - 1 : now) / 1000) * 1000;
    if (make_window(from_ms, to_ms, "from", "to", &w, res) != 0)
        goto out;
    char key[192];
    snprintf(key, sizeof key, "details|%s|%lld|%lld", path_ns, (long long)w.from_s,
             (long long)w.to_s);
    if (cache_get(key, res))
        goto out;
    /* read the generation first: a commit during the scan makes the
     * entry stale at once rather than wrongly fresh */
    uint64_t gen = store_generation();
    if ((rc = tally__usage_details(ctx->store, ctx->catalog, tally__usage_scope(path_ns), &w,
                                   &items, &n)) != 0) {
        store_error(res, rc);
        goto out;
    }
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "usage_items");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < n; i++) {
        const tally__usage_item_t *it = &items[i];
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "namespace");
        tally__jw_str_plain(&jw, it->ns, strlen(it->ns)); /* [a-z0-9-] */
        tally__jw_key(&jw, "metric_label");
        tally__jw_str_plain(&jw, it->metric, strlen(it->metric)); /* [A-Za-z0-9_.:-] */
        tally__jw_key(&jw, "object_name");
        tally__jw_str(&jw, it->object);
        tally__jw_key(&jw, "usage_type");
        tally__jw_str(&jw, it->def.usage_type);
        tally__jw_key(&jw, "unit_name");
        tally__jw_str(&jw, it->def.unit);
        tally__jw_key(&jw, "quantity");
        put_qty(&jw, &it->quantity);
        put_inexact(&jw, &it->quantity);
        tally__jw_key(&jw, "start_timestamp");
        tally_route_put_time(&jw, w.from_s);
        tally__jw_key(&jw, "end_timestamp");
        tally_route_put_time(&jw, w.to_s);
        tally__jw_key(&jw, "hourly_breakdown_query");
        put_breakdown_query(&jw, it, &w);
        tally__jw_key(&jw, "hourly_breakdown");
        tally__jw_arr_begin(&jw);
        tally__jw_arr_end(&jw);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_obj_end(&jw);
    tally__usage_items_free(items);
    tally_route_respond(res, &jw);
    if (res->status == 200)
        cache_put(key, gen, res->body, res->body_len);
out:
    json_decref(body);
}

/* ---- hourly_usage_details --------------------------------------------------------- */

/* A decoded hourly breakdown query; strings point into `doc`. */
typedef struct hourly_query {
    json_t *doc;
    const char *ns, *metric, *object;
    int64_t from_ms, to_ms;
} hourly_query_t;

/* Decode and check the base64 JSON query, or write a 400 naming `query`. */
static int
parse_query(const char *b64, hourly_query_t *q, tally_http_res_t *res)
{
    size_t len = strlen(b64), blen = 0;
    const char *end = NULL;
    unsigned char *bin = malloc(len + 1);
    json_error_t e;
    if (!bin) {
        tally_http_error(res, 500, "EINTERNAL", "out of memory");
        return -1;
    }
    if (len == 0 ||
        sodium_base642bin(bin, len + 1, b64, len, NULL, &blen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != b64 + len) {
        free(bin);
        tally_http_error(res, 400, "EBADINPUT",
                         "query: not standard base64 (pass hourly_breakdown_query as is)");
        return -1;
    }
    q->doc = json_loadb((const char *)bin, blen, JSON_REJECT_DUPLICATES, &e);
    free(bin);
    if (!q->doc || !json_is_object(q->doc)) {
        tally_http_error(res, 400, "EBADINPUT",
                         "query: does not decode to a JSON object (pass hourly_breakdown_query "
                         "as is)");
        return -1;
    }
    const char *keys[] = {"namespace", "metric_label", "object_name", "from", "to"};
    const char *vals[5];
    for (int i = 0; i < 5; i++) {
        json_t *v = json_object_get(q->doc, keys[i]);
        if (!json_is_string(v)) {
            tally_http_error(res, 400, "EBADINPUT", "query: field %s missing or not a string",
                             keys[i]);
            return -1;
        }
        vals[i] = json_string_value(v);
    }
    q->ns = vals[0];
    q->metric = vals[1];
    q->object = vals[2];
    if (!tally__valid_ns(q->ns, strlen(q->ns)) ||
        !tally__valid_metric(q->metric, strlen(q->metric)) ||
        strlen(q->object) > TALLY_MAX_LABEL_VALUE_LEN) {
        tally_http_error(res, 400, "EBADINPUT",
                         "query: namespace, metric_label or object_name is malformed");
        return -1;
    }
    if (tally__time_parse_rfc3339(vals[3], &q->from_ms) != 0 ||
        tally__time_parse_rfc3339(vals[4], &q->to_ms) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "query: from and to must be RFC 3339 date-times");
        return -1;
    }
    return 0;
}

void
tally_route_hourly_usage_details(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *path_ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    hourly_query_t q = {0};
    tally__usage_window_t w;
    tally__usage_hour_t *hours = NULL;
    size_t n = 0;
    int rc;
    if (tally_route_body_ns(body, path_ns, res) != 0)
        goto out;
    json_t *qv = json_object_get(body, "query");
    if (!json_is_string(qv)) {
        tally_http_error(res, 400, "EBADINPUT",
                         qv ? "query: must be a string (an hourly_breakdown_query)"
                            : "query: required (an hourly_breakdown_query of usage_details)");
        goto out;
    }
    if (parse_query(json_string_value(qv), &q, res) != 0)
        goto out;
    if (!tally__usage_ns_allowed(path_ns, q.ns)) {
        tally_http_error(res, 403, "EPERMS",
                         "query: namespace '%s' is outside the namespace of the path '%s'", q.ns,
                         path_ns);
        goto out;
    }
    if (q.from_ms >= q.to_ms || tally__usage_window(q.from_ms, q.to_ms, &w) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "query: from must be before to");
        goto out;
    }
    if ((rc = tally__usage_hourly(ctx->store, ctx->catalog, q.ns, q.metric, q.object, &w, &hours,
                                  &n)) != 0) {
        store_error(res, rc);
        goto out;
    }
    tally__metric_def_t tmp;
    const tally__metric_def_t *def = tally__catalog_lookup_or_default(ctx->catalog, q.metric, &tmp);
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "hourly_usage_items");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < n; i++) {
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "start_timestamp");
        tally_route_put_time(&jw, hours[i].hour_s);
        tally__jw_key(&jw, "end_timestamp");
        tally_route_put_time(&jw, hours[i].hour_s + 3600);
        tally__jw_key(&jw, "quantity");
        put_qty(&jw, &hours[i].quantity);
        put_inexact(&jw, &hours[i].quantity);
        tally__jw_key(&jw, "unit_name");
        tally__jw_str(&jw, def->unit);
        tally__jw_key(&jw, "deployment");
        tally__jw_str(&jw, hours[i].deployment);
        tally__jw_key(&jw, "container");
        tally__jw_str(&jw, hours[i].container);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_obj_end(&jw);
    tally__usage_hours_free(hours);
    tally_route_respond(res, &jw);
out:
    json_decref(q.doc);
    json_decref(body);
}

/* ---- usage_summary ------------------------------------------------------------------ */

void
tally_route_usage_summary(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    int64_t now = tally__time_now_ms(), start_ms = 0, end_ms = 0;
    tally__usage_window_t w;
    tally__usage_summary_t *sums = NULL;
    size_t n = 0;
    int has_start = 0, has_end = 0, rc;
    if ((has_start = tally_route_body_time(body, "start_time", TALLY_ROUTE_TIME_ANY, &start_ms, res)) < 0 ||
        (has_end = tally_route_body_time(body, "end_time", TALLY_ROUTE_TIME_ANY, &end_ms, res)) < 0)
        goto out;
    /* The spec's defaults: a 6-hour window ending now, or 6 hours from/to the given end. */
    if (!has_start && !has_end) {
        end_ms = now;
        start_ms = now - SIX_HOURS_MS;
    } else if (!has_end) {
        end_ms = start_ms + SIX_HOURS_MS;
    } else if (!has_start) {
        start_ms = end_ms - SIX_HOURS_MS;
    }
    if (make_window(start_ms, end_ms, "start_time", "end_time", &w, res) != 0)
        goto out;
    if ((rc = tally__usage_summary(ctx->store, ctx->catalog, NULL, &w, &sums, &n)) != 0) {
        store_error(res, rc);
        goto out;
    }
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "usage_summary_items");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < n; i++) {
        const tally__usage_summary_t *s = &sums[i];
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "name");
        tally__jw_str(&jw, s->usage_type);
        tally__jw_key(&jw, "service");
        tally__jw_str(&jw, "tally");
        put_inexact(&jw, &s->raw);
        tally__jw_key(&jw, "usage_metric_data");
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "unit");
        tally__jw_str(&jw, s->unit);
        tally__jw_key(&jw, "metric_value");
        tally__jw_obj_begin(&jw);
        /* the value holds at the end of the requested window */
        tally__jw_key(&jw, "timestamp");
        tally__jw_int(&jw, end_ms / 1000);
        tally__jw_key(&jw, "value");
        tally__jw_str(&jw, s->raw_text);
        tally__jw_obj_end(&jw);
        tally__jw_obj_end(&jw);
        tally__jw_key(&jw, "billing_metric_data");
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "unit");
        tally__jw_str(&jw, s->billable_unit);
        tally__jw_key(&jw, "value");
        tally__jw_str(&jw, s->billable_text);
        tally__jw_obj_end(&jw);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_obj_end(&jw);
    tally__usage_summaries_free(sums);
    tally_route_respond(res, &jw);
out:
    json_decref(body);
}
