/* routes_usage.c — usage_details, hourly_usage_details and usage_summary over lib/usage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "routes.h"
#include "timeutil.h"
#include "usage.h"

#define SIX_HOURS_MS (6LL * 3600 * 1000)

/* ---- parsing ------------------------------------------------------------------ */

/* Time syntaxes a field accepts. */
enum { TIME_RFC3339, TIME_ANY };

/*
 * Read optional time field `key` of body into *ms. Absent, null and ""
 * (what protobuf-JSON clients send for unset strings) leave *ms alone and
 * return 0. Returns 1 when a value was read, -1 after writing a 400.
 */
static int
get_time(json_t *body, const char *key, int syntax, int64_t *ms, tally_http_res_t *res)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        tally_http_error(res, 400, "EBADINPUT", "%s: must be a string (%s)", key,
                         syntax == TIME_RFC3339 ? "an RFC 3339 date-time"
                                                : "unix seconds or an RFC 3339 date-time");
        return -1;
    }
    const char *s = json_string_value(v);
    if (!s[0])
        return 0;
    int rc =
        syntax == TIME_RFC3339 ? tally__time_parse_rfc3339(s, ms) : tally__time_parse_any(s, ms);
    if (rc != 0) {
        tally_http_error(res, 400, "EBADINPUT", "%s: not %s: '%.64s'", key,
                         syntax == TIME_RFC3339 ? "an RFC 3339 date-time"
                                                : "unix seconds or an RFC 3339 date-time",
                         s);
        return -1;
    }
    return 1;
}

/* The body's optional `namespace` must be a string naming the path namespace. */
static int
check_body_ns(json_t *body, const char *path_ns, tally_http_res_t *res)
{
    json_t *v = json_object_get(body, "namespace");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        tally_http_error(res, 400, "EBADINPUT", "namespace: must be a string");
        return -1;
    }
    const char *s = json_string_value(v);
    if (s[0] && strcmp(s, path_ns) != 0) {
        tally_http_error(res, 400, "EBADINPUT",
                         "namespace: '%.64s' differs from the namespace of the path '%s'", s,
                         path_ns);
        return -1;
    }
    return 0;
}

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
static json_t *
qty_json(const tally__usage_qty_t *q)
{
    int64_t x;
    if (tally__usage_qty_as_int(q, &x))
        return json_integer((json_int_t)x);
    double v = tally__usage_qty_value(q);
    return json_real(isfinite(v) ? v : 0.0);
}

static json_t *
time_json(int64_t unix_s)
{
    char buf[TALLY_TIME_RFC3339_LEN];
    tally__time_format_rfc3339(unix_s, buf, sizeof buf);
    return json_string(buf);
}

/* Standard base64 of the compact JSON {namespace, metric_label, object_name, from, to}. */
static json_t *
breakdown_query(const tally__usage_item_t *it, const tally__usage_window_t *w)
{
    json_t *q = json_object();
    json_object_set_new(q, "namespace", json_string(it->ns));
    json_object_set_new(q, "metric_label", json_string(it->metric));
    json_object_set_new(q, "object_name", json_string(it->object));
    json_object_set_new(q, "from", time_json(w->from_s));
    json_object_set_new(q, "to", time_json(w->to_s));
    char *text = json_dumps(q, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(q);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(cap);
    json_t *out = NULL;
    if (b64) {
        sodium_bin2base64(b64, cap, (const unsigned char *)text, len,
                          sodium_base64_VARIANT_ORIGINAL);
        out = json_string(b64);
    }
    free(b64);
    free(text);
    return out;
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
    if (check_body_ns(body, path_ns, res) != 0 ||
        (has_from = get_time(body, "from", TIME_RFC3339, &from_ms, res)) < 0 ||
        (has_to = get_time(body, "to", TIME_RFC3339, &to_ms, res)) < 0)
        goto out;
    /* Default: month to date (the month of `to` when only `to` is given). */
    if (!has_from)
        from_ms = tally__time_month_start((has_to ? to_ms - 1 : now) / 1000) * 1000;
    if (make_window(from_ms, to_ms, "from", "to", &w, res) != 0)
        goto out;
    if ((rc = tally__usage_details(ctx->store, ctx->catalog, tally__usage_scope(path_ns), &w,
                                   &items, &n)) != 0) {
        store_error(res, rc);
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const tally__usage_item_t *it = &items[i];
        json_t *o = json_object();
        json_object_set_new(o, "namespace", json_string(it->ns));
        json_object_set_new(o, "metric_label", json_string(it->metric));
        json_object_set_new(o, "object_name", json_string(it->object));
        json_object_set_new(o, "usage_type", json_string(it->def.usage_type));
        json_object_set_new(o, "unit_name", json_string(it->def.unit));
        json_object_set_new(o, "quantity", qty_json(&it->quantity));
        json_object_set_new(o, "start_timestamp", time_json(w.from_s));
        json_object_set_new(o, "end_timestamp", time_json(w.to_s));
        json_object_set_new(o, "hourly_breakdown_query", breakdown_query(it, &w));
        json_object_set_new(o, "hourly_breakdown", json_array());
        json_array_append_new(arr, o);
    }
    tally__usage_items_free(items);
    json_t *resp = json_object();
    json_object_set_new(resp, "usage_items", arr);
    tally_route_json(res, 200, resp);
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
    if (check_body_ns(body, path_ns, res) != 0)
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
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "start_timestamp", time_json(hours[i].hour_s));
        json_object_set_new(o, "end_timestamp", time_json(hours[i].hour_s + 3600));
        json_object_set_new(o, "quantity", qty_json(&hours[i].quantity));
        json_object_set_new(o, "unit_name", json_string(def->unit));
        json_object_set_new(o, "deployment", json_string(hours[i].deployment));
        json_object_set_new(o, "container", json_string(hours[i].container));
        json_array_append_new(arr, o);
    }
    tally__usage_hours_free(hours);
    json_t *resp = json_object();
    json_object_set_new(resp, "hourly_usage_items", arr);
    tally_route_json(res, 200, resp);
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
    if ((has_start = get_time(body, "start_time", TIME_ANY, &start_ms, res)) < 0 ||
        (has_end = get_time(body, "end_time", TIME_ANY, &end_ms, res)) < 0)
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
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const tally__usage_summary_t *s = &sums[i];
        json_t *mv = json_object();
        /* The value holds at the end of the requested window. */
        json_object_set_new(mv, "timestamp", json_integer((json_int_t)(end_ms / 1000)));
        json_object_set_new(mv, "value", json_string(s->raw_text));
        json_t *umd = json_object();
        json_object_set_new(umd, "unit", json_string(s->unit));
        json_object_set_new(umd, "metric_value", mv);
        json_t *bmd = json_object();
        json_object_set_new(bmd, "unit", json_string(s->billable_unit));
        json_object_set_new(bmd, "value", json_string(s->billable_text));
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(s->usage_type));
        json_object_set_new(o, "service", json_string("tally"));
        json_object_set_new(o, "usage_metric_data", umd);
        json_object_set_new(o, "billing_metric_data", bmd);
        json_array_append_new(arr, o);
    }
    tally__usage_summaries_free(sums);
    json_t *resp = json_object();
    json_object_set_new(resp, "usage_summary_items", arr);
    tally_route_json(res, 200, resp);
out:
    json_decref(body);
}
