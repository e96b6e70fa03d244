/* routes_pricing.c — current_usage (the month to date, priced) and monthly_usage (one cost per
 * month) over lib/pricing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "pricing.h"
#include "routes.h"
#include "timeutil.h"
#include "usage.h"

/* monthly_usage lists at most this many months (100 years), newest first. */
#define MAX_MONTHS 1200

static void
put_time(tally__jw_t *w, int64_t unix_s)
{
    char buf[TALLY_TIME_RFC3339_LEN];
    tally__time_format_rfc3339(unix_s, buf, sizeof buf);
    tally__jw_str(w, buf);
}

/* An int64 the spec carries as a JSON string. */
static void
put_i64(tally__jw_t *w, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    tally__jw_str(w, buf);
}

static void
respond(tally_http_res_t *res, tally__jw_t *w)
{
    size_t len;
    char *text = tally__jw_take(w, &len);
    if (!text) {
        tally_http_error(res, 500, "EINTERNAL", "out of memory rendering the response");
        return;
    }
    tally_http_take_body(res, 200, "application/json", text, len);
}

static void
pricing_error(tally_http_res_t *res, int rc)
{
    if (rc == TALLY_EINVAL)
        tally_http_error(res, 400, "EBADINPUT", "the period must lie within one calendar month");
    else
        tally_http_error(res, 500, "EINTERNAL", "cannot price usage: %s", tally_strerror(rc));
}

static const char *
currency(const tally_ctx_t *ctx)
{
    return ctx->cfg && ctx->cfg->billing.currency ? ctx->cfg->billing.currency : "USD";
}

static const char *
default_plan(const tally_ctx_t *ctx)
{
    return ctx->cfg ? ctx->cfg->billing.default_plan : NULL;
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

/* Optional RFC 3339 field into *s (unix seconds): 0 absent, 1 read, -1 after a 400. */
static int
get_time(json_t *body, const char *key, int64_t *s, tally_http_res_t *res)
{
    json_t *v = json_object_get(body, key);
    int64_t ms;
    if (!v || json_is_null(v) || (json_is_string(v) && !json_string_value(v)[0]))
        return 0;
    if (!json_is_string(v) || tally__time_parse_rfc3339(json_string_value(v), &ms) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "%s: must be an RFC 3339 date-time", key);
        return -1;
    }
    *s = ms / 1000;
    return 1;
}

static void
put_line(tally__jw_t *w, const tally__price_line_t *l, const char *cur)
{
    tally__jw_obj_begin(w);
    tally__jw_key(w, "usage_type");
    tally__jw_str(w, l->usage_type);
    tally__jw_key(w, "metric_labels");
    tally__jw_arr_begin(w);
    if (l->metric[0])
        tally__jw_str(w, l->metric);
    tally__jw_arr_end(w);
    tally__jw_key(w, "unit_name");
    tally__jw_str(w, l->unit);
    tally__jw_key(w, "unit_name_billable");
    tally__jw_str(w, l->billable_unit);
    tally__jw_key(w, "quantity");
    tally__jw_double(w, l->quantity);
    tally__jw_key(w, "quantity_billable");
    put_i64(w, l->billable);
    tally__jw_key(w, "amount");
    put_i64(w, l->amount_cents);
    tally__jw_key(w, "currency_code");
    tally__jw_str(w, cur);
    tally__jw_key(w, "status");
    tally__jw_str(w, tally__pricing_status_name(l->status));
    tally__jw_key(w, "fixed");
    tally__jw_bool(w, l->fixed);
    tally__jw_key(w, "start_timestamp");
    put_time(w, l->start_s);
    tally__jw_key(w, "end_timestamp");
    put_time(w, l->end_s);
    tally__jw_obj_end(w);
}

/*
 * current_usage: [from, to), default the month to date [month start, now).
 * Both ends must lie in one calendar month (a priced period never spans
 * two: included quantities and proration are per month).
 */
void
tally_route_current_usage(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *path_ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    int64_t now = tally__time_now_ms() / 1000;
    int64_t from = tally__time_month_start(now), to = now;
    int hf, ht, rc;
    tally__priced_t p;
    if (check_body_ns(body, path_ns, res) != 0 || (hf = get_time(body, "from", &from, res)) < 0 ||
        (ht = get_time(body, "to", &to, res)) < 0)
        goto out;
    if (hf && !ht) /* from given alone: to the end of its month, or now in the current one */
        to = tally__time_next_month(from) < now ? tally__time_next_month(from) : now;
    if (!hf && ht)
        from = tally__time_month_start(to - 1);
    if (to <= from) {
        if (hf || ht) {
            tally_http_error(res, 400, "EBADINPUT", "from: must be before to");
            goto out;
        }
        to = from + 1; /* the first second of a month */
    }
    if (tally__time_month_start(from) != tally__time_month_start(to - 1)) {
        tally_http_error(res, 400, "EBADINPUT", "from, to: must lie within one calendar month");
        goto out;
    }
    rc = tally__pricing_period(ctx->store, ctx->catalog, ctx->plans, default_plan(ctx),
                               tally__usage_scope(path_ns), from, to, now, &p);
    if (rc != 0) {
        pricing_error(res, rc);
        goto out;
    }
    const char *cur = currency(ctx);
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "usage_items");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < p.n; i++)
        put_line(&jw, &p.lines[i], cur);
    tally__jw_arr_end(&jw);
    tally__jw_key(&jw, "total_cost");
    put_i64(&jw, p.total_cents);
    tally__jw_key(&jw, "discount");
    put_i64(&jw, p.discount_cents);
    tally__jw_key(&jw, "coupons");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < p.ncoupons; i++) {
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "title");
        tally__jw_str(&jw, p.coupons[i].title[0] ? p.coupons[i].title : p.coupons[i].name);
        tally__jw_key(&jw, "discount_type");
        tally__jw_str(&jw, tally__pricing_discount_name(p.coupons[i].type));
        tally__jw_key(&jw, "discount_amount");
        tally__jw_int(&jw, p.coupons[i].amount);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_obj_end(&jw);
    tally__priced_free(&p);
    respond(res, &jw);
out:
    json_decref(body);
}

/*
 * monthly_usage: every month from the first with data (or, tenant-wide, the
 * first plan subscription) to the current one, newest first, each priced
 * over the whole month (the current one to date); amount = its total.
 */
void
tally_route_monthly_usage(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *path_ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    const char *ns = tally__usage_scope(path_ns);
    int64_t now = tally__time_now_ms() / 1000, first;
    int rc;
    if (check_body_ns(body, path_ns, res) != 0)
        goto out;
    if ((rc = tally__pricing_first_month(ctx->store, ns, now, &first)) != 0) {
        pricing_error(res, rc);
        goto out;
    }
    const char *cur = currency(ctx);
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "monthly_usage_items");
    tally__jw_arr_begin(&jw);
    int64_t m = tally__time_month_start(now);
    for (int k = 0; k < MAX_MONTHS && m >= first; k++) {
        int64_t next = tally__time_next_month(m);
        int64_t end = next < now ? next : (now > m ? now : m + 1);
        tally__priced_t p;
        rc = tally__pricing_period(ctx->store, ctx->catalog, ctx->plans, default_plan(ctx), ns, m,
                                   end, now, &p);
        if (rc != 0) {
            tally__jw_fini(&jw);
            pricing_error(res, rc);
            goto out;
        }
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "amount");
        put_i64(&jw, p.total_cents);
        tally__jw_key(&jw, "currency_code");
        tally__jw_str(&jw, cur);
        tally__jw_key(&jw, "start_timestamp");
        put_time(&jw, m);
        tally__jw_key(&jw, "end_timestamp");
        put_time(&jw, end);
        tally__jw_obj_end(&jw);
        tally__priced_free(&p);
        m = tally__time_month_start(m - 1);
    }
    tally__jw_arr_end(&jw);
    tally__jw_obj_end(&jw);
    respond(res, &jw);
out:
    json_decref(body);
}
