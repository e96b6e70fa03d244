/* routes_pricing.c — current_usage (the month to date, priced) and monthly_usage (one cost per
 * month) over lib/pricing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invoicer.h"
#include "invoices.h"
#include "jsonw.h"
#include "pricing.h"
#include "routes.h"
#include "timeutil.h"
#include "usage.h"

/* monthly_usage lists at most this many months (100 years), newest first. */
#define MAX_MONTHS 1200

/* An int64 the spec carries as a JSON string. */
static void
put_i64(tally__jw_t *w, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    tally__jw_str(w, buf);
}

static void
pricing_error(tally_http_res_t *res, int rc)
{
    tally_route_fail(res, rc,
                     rc == TALLY_EINVAL ? "the period must lie within one calendar month" : NULL,
                     "pricing usage");
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
    tally_route_put_time(w, l->start_s);
    tally__jw_key(w, "end_timestamp");
    tally_route_put_time(w, l->end_s);
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
    /* no period given: the month to date, the one rule of every surface (pricing.h) */
    int64_t from = tally__time_month_start(now), to = tally__pricing_month_end(from, now);
    int64_t from_ms, to_ms;
    int hf, ht, rc;
    tally__priced_t p;
    if (tally_route_body_ns(body, path_ns, res) != 0 ||
        (hf = tally_route_body_time(body, "from", TALLY_ROUTE_TIME_RFC3339, &from_ms, res)) < 0 ||
        (ht = tally_route_body_time(body, "to", TALLY_ROUTE_TIME_RFC3339, &to_ms, res)) < 0)
        goto out;
    if (hf)
        from = from_ms / 1000;
    if (ht)
        to = to_ms / 1000;
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
    tally_route_respond(res, &jw);
out:
    json_decref(body);
}

/*
 * monthly_usage: every month from the first with data (or, tenant-wide, the
 * first plan subscription) to the current one, newest first, each priced
 * over the whole month (the current one to date); amount = its total as
 * priced now. Tenant-wide, a closed month adds tally_invoiced_amount (its
 * invoice's total) and tally_late_amount (usage charges that came after the
 * close, billed on later invoices as "Late usage for YYYY-MM" lines).
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
    if (tally_route_body_ns(body, path_ns, res) != 0)
        goto out;
    if ((rc = tally__pricing_first_month(ctx->store, ns, now, &first)) != 0) {
        pricing_error(res, rc);
        goto out;
    }
    const char *cur = currency(ctx);
    tally__invoices_env_t ienv;
    if (ctx->cfg)
        tally_invoicer_env(ctx->cfg, ctx->catalog, ctx->plans, ctx->store, &ienv);
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "monthly_usage_items");
    tally__jw_arr_begin(&jw);
    int64_t m = tally__time_month_start(now);
    for (int k = 0; k < MAX_MONTHS && m >= first; k++) {
        int64_t end = tally__pricing_month_end(m, now);
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
        tally_route_put_time(&jw, m);
        tally__jw_key(&jw, "end_timestamp");
        tally_route_put_time(&jw, end);
        /* tenant-wide, a closed month also says what its invoice billed and
         * what came late (billed on later invoices as adjustment lines) */
        int64_t invoiced, late;
        if (!ns && ctx->cfg && end < now &&
            tally__invoices_late(&ienv, m, now, &invoiced, &late) == 0) {
            tally__jw_key(&jw, "tally_invoiced_amount");
            put_i64(&jw, invoiced);
            tally__jw_key(&jw, "tally_late_amount");
            put_i64(&jw, late);
        }
        tally__jw_obj_end(&jw);
        tally__priced_free(&p);
        m = tally__time_month_start(m - 1);
    }
    tally__jw_arr_end(&jw);
    tally__jw_obj_end(&jw);
    tally_route_respond(res, &jw);
out:
    json_decref(body);
}
