/* invoices.c — the invoice lifecycle: running invoice, closing months into frozen invoices, the
 * status table, overdue derivation. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invoicedoc.h"
#include "invoices.h"
#include "log.h"
#include "plans.h"
#include "pricing.h"
#include "tally/tally.h"
#include "timeutil.h"

#define HISTORY_MAX 64 /* status changes remembered per invoice */

/* ---- names, months, statuses ------------------------------------------------ */

void
tally__invoices_name(int64_t month_s, char *out, size_t cap)
{
    int y, m;
    tally__time_to_civil(month_s, &y, &m, NULL, NULL, NULL, NULL);
    snprintf(out, cap, "inv-%04d-%02d", y, m);
}

int
tally__invoices_month_parse(const char *s, int64_t *month_s)
{
    if (!s || strlen(s) != 7 || s[4] != '-')
        return TALLY_EINVAL;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9'))
            return TALLY_EINVAL;
    int y = atoi(s), m = (s[5] - '0') * 10 + (s[6] - '0');
    if (m < 1 || m > 12)
        return TALLY_EINVAL;
    *month_s = tally__time_from_civil(y, m, 1, 0, 0, 0);
    return 0;
}

int
tally__invoices_name_parse(const char *name, int64_t *month_s)
{
    if (!name || strncmp(name, "inv-", 4) != 0)
        return TALLY_EINVAL;
    return tally__invoices_month_parse(name + 4, month_s);
}

static const char *const status_names[] = {
    [TALLY_INVOICE_STATUS_UNKNOWN] = "STATUS_UNKNOWN",
    [TALLY_INVOICE_STATUS_ISSUED] = "STATUS_ISSUED",
    [TALLY_INVOICE_STATUS_PENDING] = "STATUS_PENDING",
    [TALLY_INVOICE_STATUS_PAID] = "STATUS_PAID",
    [TALLY_INVOICE_STATUS_REFUNDED] = "STATUS_REFUNDED",
    [TALLY_INVOICE_STATUS_CANCELLED] = "STATUS_CANCELLED",
    [TALLY_INVOICE_STATUS_OVERDUE] = "OVERDUE",
};
#define NSTATUS (sizeof status_names / sizeof status_names[0])

const char *
tally__invoices_status_name(int status)
{
    if (status < 0 || (size_t)status >= NSTATUS)
        status = TALLY_INVOICE_STATUS_UNKNOWN;
    return status_names[status];
}

int
tally__invoices_status_parse(const char *s)
{
    for (size_t i = 0; s && i < NSTATUS; i++)
        if (strcmp(s, status_names[i]) == 0)
            return (int)i;
    return TALLY_INVOICE_STATUS_UNKNOWN;
}

/* The status table: (action, from) -> to. Everything absent is refused. */
static const struct {
    const char *action;
    int from, to;
} transitions[] = {
    {"pay", TALLY_INVOICE_STATUS_ISSUED, TALLY_INVOICE_STATUS_PAID},
    {"pay", TALLY_INVOICE_STATUS_OVERDUE, TALLY_INVOICE_STATUS_PAID},
    {"cancel", TALLY_INVOICE_STATUS_ISSUED, TALLY_INVOICE_STATUS_CANCELLED},
    {"cancel", TALLY_INVOICE_STATUS_OVERDUE, TALLY_INVOICE_STATUS_CANCELLED},
    {"refund", TALLY_INVOICE_STATUS_PAID, TALLY_INVOICE_STATUS_REFUNDED},
};

int
tally__invoices_next_status(int status, const char *action, int *next)
{
    int known = 0;
    for (size_t i = 0; action && i < sizeof transitions / sizeof transitions[0]; i++) {
        if (strcmp(transitions[i].action, action) != 0)
            continue;
        known = 1;
        if (transitions[i].from == status) {
            *next = transitions[i].to;
            return 0;
        }
    }
    return known ? TALLY_EBUSY : TALLY_EINVAL;
}

int
tally__invoices_effective_status(const tally__invoice_t *inv, int64_t now_s)
{
    if (inv->status == TALLY_INVOICE_STATUS_ISSUED && inv->due_s > 0 && now_s > inv->due_s)
        return TALLY_INVOICE_STATUS_OVERDUE;
    return inv->status;
}

void
tally__invoice_fini(tally__invoice_t *inv)
{
    if (!inv)
        return;
    free(inv->priced.lines);
    memset(inv, 0, sizeof *inv);
}

static void
copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* ---- pricing ------------------------------------------------------------------ */

/* Price [start, end) for the whole tenant into inv->priced, with lines in
 * our own allocation (the struct may outlive any pricing implementation's
 * ownership rules: we free with free()). */
static int load_invoice(const tally__invoices_env_t *env, const char *name, tally__invoice_t *inv);

/* An adjustment line (late usage) is one that covers an earlier month than its invoice's. */
static int
is_adjustment(const tally__invoice_t *inv, const tally__price_line_t *l)
{
    return l->start_s < inv->period_start_s;
}

/* Sum of the amount, quantity and billable of the lines of inv for metric
 * covering the month starting month_s: its own lines (month_s its period)
 * or adjustment lines for month_s. */
static void
billed_for(const tally__invoice_t *inv, int64_t month_s, const char *metric, int64_t *amount,
           double *qty, int64_t *billable)
{
    for (size_t i = 0; i < inv->priced.n; i++) {
        const tally__price_line_t *l = &inv->priced.lines[i];
        if (l->fixed || strcmp(l->metric, metric) != 0)
            continue;
        int own = inv->period_start_s == month_s && !is_adjustment(inv, l);
        if (!own && l->start_s != month_s)
            continue;
        *amount += l->amount_cents;
        *qty += l->quantity;
        *billable += l->billable;
    }
}

/* The closed invoices of the months [from_s, to_s) (absent ones zeroed, name ""). */
static int
load_months(const tally__invoices_env_t *env, int64_t from_s, int64_t to_s, tally__invoice_t *v,
            size_t cap, size_t *n)
{
    *n = 0;
    for (int64_t m = from_s; m < to_s && *n < cap; m = tally__time_next_month(m)) {
        char name[64];
        tally__invoices_name(m, name, sizeof name);
        int rc = load_invoice(env, name, &v[*n]);
        if (rc == TALLY_ENOTFOUND) {
            memset(&v[*n], 0, sizeof v[*n]);
            v[*n].period_start_s = m;
            rc = 0;
        }
        if (rc)
            return rc;
        (*n)++;
    }
    return 0;
}

/*
 * Append to inv (the invoice of the month starting month_s) one adjustment
 * line per earlier closed month and metric whose usage charge, priced now, is
 * above what that month's invoice and the adjustments on the invoices after
 * it billed. The months looked at are those whose late window reaches past
 * the start of month_s's previous month, at most TALLY_INVOICES_LATE_MONTHS.
 */
static int
late_lines(const tally__invoices_env_t *env, int64_t month_s, int64_t now_s, tally__invoice_t *inv,
           size_t *cap)
{
    tally__invoice_t months[TALLY_INVOICES_LATE_MONTHS];
    size_t nm = 0;
    int64_t back = (int64_t)env->late_window_hours * 3600 + 31 * 86400;
    int64_t from = tally__time_month_start(month_s - back);
    int64_t lim = month_s;
    for (int k = 0; k < TALLY_INVOICES_LATE_MONTHS; k++)
        lim = tally__time_month_start(lim - 1);
    if (from < lim)
        from = lim;
    if (from < TALLY_TIME_RFC3339_MIN_S)
        from = tally__time_month_start(TALLY_TIME_RFC3339_MIN_S + 31 * 86400);
    int rc = load_months(env, from, month_s, months, TALLY_INVOICES_LATE_MONTHS, &nm);
    for (size_t k = 0; rc == 0 && k < nm; k++) {
        if (!months[k].name[0])
            continue; /* not closed: its own close will bill all of it */
        int64_t m = months[k].period_start_s;
        tally__priced_t now;
        memset(&now, 0, sizeof now);
        if ((rc = env->price(env->store, env->catalog, env->plans, env->default_plan, NULL, m,
                             tally__time_next_month(m), now_s, &now)) != 0)
            break;
        for (size_t i = 0; rc == 0 && i < now.n; i++) {
            const tally__price_line_t *l = &now.lines[i];
            if (l->fixed || !l->metric[0])
                continue;
            int64_t amount = 0, billable = 0;
            double qty = 0;
            for (size_t j = k; j < nm; j++) /* the month itself and the invoices after it */
                billed_for(&months[j], m, l->metric, &amount, &qty, &billable);
            if (l->amount_cents <= amount)
                continue;
            tally__price_line_t *a = tally__priced_add_line(&inv->priced, cap);
            if (!a) {
                rc = -ENOMEM;
                break;
            }
            *a = *l;
            int y, mo;
            tally__time_to_civil(m, &y, &mo, NULL, NULL, NULL, NULL);
            snprintf(a->usage_type, sizeof a->usage_type, "Late usage for %04d-%02d: %.90s", y, mo,
                     l->usage_type);
            a->amount_cents = l->amount_cents - amount;
            a->quantity = l->quantity - qty > 0 ? l->quantity - qty : 0;
            a->billable = l->billable - billable > 0 ? l->billable - billable : 0;
            a->status = TALLY_PRICE_STATUS_ACTIVE;
            a->start_s = m;
            a->end_s = tally__time_next_month(m);
        }
        env->price_free(&now);
    }
    for (size_t k = 0; k < nm; k++)
        tally__invoice_fini(&months[k]);
    return rc;
}

/* Price the month starting month_s over [month_s, end_s) for the whole
 * tenant into inv->priced, then its late-usage adjustment lines, with lines
 * in our own allocation (the struct may outlive any pricing
 * implementation's ownership rules: we free with free()). */
static int
price_into(const tally__invoices_env_t *env, int64_t month_s, int64_t end_s, int64_t now_s,
           tally__invoice_t *inv)
{
    if (!env->price || !env->price_free)
        return TALLY_EINVAL;
    tally__priced_t p;
    memset(&p, 0, sizeof p);
    int rc = env->price(env->store, env->catalog, env->plans, env->default_plan, NULL, month_s,
                        end_s, now_s, &p);
    if (rc)
        return rc;
    /* keep the lines and totals; what else pricing owns (coupons) stays
     * with it and is freed below */
    inv->priced.subtotal_cents = p.subtotal_cents;
    inv->priced.discount_cents = p.discount_cents;
    inv->priced.total_cents = p.total_cents;
    copy_str(inv->priced.currency, sizeof inv->priced.currency,
             env->currency && env->currency[0] ? env->currency : p.currency);
    size_t cap = 0;
    if (p.n) {
        inv->priced.lines = malloc(p.n * sizeof *p.lines);
        if (!inv->priced.lines) {
            env->price_free(&p);
            return -ENOMEM;
        }
        memcpy(inv->priced.lines, p.lines, p.n * sizeof *p.lines);
        inv->priced.n = cap = p.n;
    }
    if (!inv->priced.currency[0])
        copy_str(inv->priced.currency, sizeof inv->priced.currency, "USD");
    size_t own = inv->priced.n;
    if ((rc = late_lines(env, month_s, now_s, inv, &cap)) == 0 && inv->priced.n > own) {
        /* the adjustments are part of this invoice's subtotal: coupons apply to it */
        for (size_t i = own; i < inv->priced.n; i++)
            inv->priced.subtotal_cents += inv->priced.lines[i].amount_cents;
        inv->priced.discount_cents =
            tally__pricing_discount(p.coupons, p.ncoupons, inv->priced.subtotal_cents);
        inv->priced.total_cents = inv->priced.subtotal_cents - inv->priced.discount_cents;
    }
    env->price_free(&p);
    return rc;
}

static void
fill_head(const tally__invoices_env_t *env, int64_t month_s, tally__invoice_t *inv)
{
    tally__invoices_name(month_s, inv->name, sizeof inv->name);
    copy_str(inv->tenant, sizeof inv->tenant, env->tenant);
    char plan[sizeof inv->plan];
    if (tally__plans_current_name(env->store, env->default_plan, plan, sizeof plan) != 0)
        copy_str(plan, sizeof plan, env->default_plan);
    copy_str(inv->plan, sizeof inv->plan, plan);
    inv->period_start_s = month_s;
    inv->period_end_s = tally__time_next_month(month_s);
}

int
tally__invoices_running(const tally__invoices_env_t *env, int64_t now_s, tally__invoice_t *inv)
{
    memset(inv, 0, sizeof *inv);
    int64_t m = tally__time_month_start(now_s);
    fill_head(env, m, inv);
    inv->status = TALLY_INVOICE_STATUS_PENDING;
    inv->active = 1;
    /* the month to date, the one rule of every surface (pricing.h) */
    int rc = price_into(env, m, tally__pricing_month_end(m, now_s), now_s, inv);
    if (rc)
        tally__invoice_fini(inv);
    else
        tally__invoice_tax_apply(inv, env->tax_rate_bp, env->tax_label);
    return rc;
}

/* ---- JSON record ------------------------------------------------------------- */

static json_t *
record_of(const tally__invoice_t *inv)
{
    json_t *lines = json_array();
    for (size_t i = 0; lines && i < inv->priced.n; i++) {
        const tally__price_line_t *l = &inv->priced.lines[i];
        json_array_append_new(
            lines,
            json_pack("{s:s, s:s, s:s, s:s, s:f, s:I, s:I, s:b, s:i, s:I, s:I}", "usage_type",
                      l->usage_type, "metric", l->metric, "unit", l->unit, "billable_unit",
                      l->billable_unit, "quantity", isfinite(l->quantity) ? l->quantity : 0.0,
                      "billable", (json_int_t)l->billable, "amount_cents",
                      (json_int_t)l->amount_cents, "fixed", l->fixed, "status", l->status, "start",
                      (json_int_t)l->start_s, "end", (json_int_t)l->end_s));
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:o, s:[]}",
                     "name", inv->name, "tenant", inv->tenant, "plan", inv->plan, "period_start",
                     (json_int_t)inv->period_start_s, "period_end", (json_int_t)inv->period_end_s,
                     "issued", (json_int_t)inv->issued_s, "due", (json_int_t)inv->due_s, "status",
                     tally__invoices_status_name(inv->status), "currency", inv->priced.currency,
                     "subtotal_cents", (json_int_t)inv->priced.subtotal_cents, "discount_cents",
                     (json_int_t)inv->priced.discount_cents, "total_cents",
                     (json_int_t)inv->priced.total_cents, "lines", lines, "history");
}

static int64_t
int_of(json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

static void
str_of(json_t *o, const char *k, char *dst, size_t cap)
{
    copy_str(dst, cap, json_string_value(json_object_get(o, k)));
}

static int
parse_record(json_t *r, tally__invoice_t *inv)
{
    memset(inv, 0, sizeof *inv);
    json_t *lines = json_object_get(r, "lines");
    if (!json_is_object(r) || !json_is_string(json_object_get(r, "name")) || !json_is_array(lines))
        return TALLY_ECORRUPT;
    str_of(r, "name", inv->name, sizeof inv->name);
    str_of(r, "tenant", inv->tenant, sizeof inv->tenant);
    str_of(r, "plan", inv->plan, sizeof inv->plan);
    inv->period_start_s = int_of(r, "period_start");
    inv->period_end_s = int_of(r, "period_end");
    inv->issued_s = int_of(r, "issued");
    inv->due_s = int_of(r, "due");
    inv->status = tally__invoices_status_parse(json_string_value(json_object_get(r, "status")));
    inv->active = 0;
    str_of(r, "currency", inv->priced.currency, sizeof inv->priced.currency);
    inv->priced.subtotal_cents = int_of(r, "subtotal_cents");
    inv->priced.discount_cents = int_of(r, "discount_cents");
    inv->priced.total_cents = int_of(r, "total_cents");
    json_t *g = json_object_get(r, "grace_hours");
    inv->grace_hours = json_is_integer(g) ? (int64_t)json_integer_value(g) : -1;
    size_t n = json_array_size(lines);
    if (n) {
        inv->priced.lines = calloc(n, sizeof *inv->priced.lines);
        if (!inv->priced.lines)
            return -ENOMEM;
    }
    inv->priced.n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(lines, i);
        tally__price_line_t *l = &inv->priced.lines[i];
        str_of(o, "usage_type", l->usage_type, sizeof l->usage_type);
        str_of(o, "metric", l->metric, sizeof l->metric);
        str_of(o, "unit", l->unit, sizeof l->unit);
        str_of(o, "billable_unit", l->billable_unit, sizeof l->billable_unit);
        l->quantity = json_number_value(json_object_get(o, "quantity"));
        l->billable = int_of(o, "billable");
        l->amount_cents = int_of(o, "amount_cents");
        l->fixed = json_is_true(json_object_get(o, "fixed"));
        l->status = (int)int_of(o, "status");
        l->start_s = int_of(o, "start");
        l->end_s = int_of(o, "end");
    }
    tally__invoice_record_get_extras(r, inv);
    return 0;
}

static int
load_record(const tally__invoices_env_t *env, const char *name, json_t **out)
{
    char *v = NULL;
    size_t len = 0;
    int rc =
        tally__store_obj_get(env->store, TALLY_INVOICES_KIND, TALLY_INVOICES_NS, name, &v, &len);
    if (rc)
        return rc;
    *out = json_loadb(v, len, 0, NULL);
    free(v);
    return *out ? 0 : TALLY_ECORRUPT;
}

static int
load_invoice(const tally__invoices_env_t *env, const char *name, tally__invoice_t *inv)
{
    json_t *r;
    int rc = load_record(env, name, &r);
    if (rc)
        return rc;
    rc = parse_record(r, inv);
    json_decref(r);
    if (rc)
        tally__invoice_fini(inv);
    return rc;
}

static int
write_record(const tally__invoices_env_t *env, const char *name, json_t *r, int must_exist,
             int must_not_exist)
{
    char *text = json_dumps(r, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    tally__obj_op_t op = {.op = TALLY_OBJ_PUT,
                          .kind = TALLY_INVOICES_KIND,
                          .ns = TALLY_INVOICES_NS,
                          .name = name,
                          .value = text,
                          .len = strlen(text),
                          .must_exist = must_exist,
                          .must_not_exist = must_not_exist};
    int rc = tally__store_obj_write(env->store, &op, 1);
    free(text);
    return rc;
}

static void
history_add(json_t *r, int status, int64_t now_s, const char *by)
{
    json_t *h = json_object_get(r, "history");
    if (!json_is_array(h)) {
        h = json_array();
        json_object_set_new(r, "history", h);
    }
    while (json_array_size(h) >= HISTORY_MAX)
        json_array_remove(h, 0);
    json_array_append_new(h, json_pack("{s:s, s:I, s:s}", "status",
                                       tally__invoices_status_name(status), "time",
                                       (json_int_t)now_s, "by", by ? by : ""));
}

/* ---- close -------------------------------------------------------------------- */

int
tally__invoices_close(const tally__invoices_env_t *env, int64_t month_s, int64_t now_s,
                      tally__invoice_t *inv, int *created)
{
    memset(inv, 0, sizeof *inv);
    if (created)
        *created = 0;
    if (month_s != tally__time_month_start(month_s) || month_s < TALLY_TIME_RFC3339_MIN_S ||
        tally__time_next_month(month_s) > now_s ||
        tally__time_next_month(month_s) > TALLY_TIME_RFC3339_MAX_S)
        return TALLY_EINVAL;
    char name[sizeof inv->name];
    tally__invoices_name(month_s, name, sizeof name);
    /* already closed: the existing one (the common case of a second close) */
    int rc = load_invoice(env, name, inv);
    if (rc != TALLY_ENOTFOUND)
        return rc;
    fill_head(env, month_s, inv);
    inv->grace_hours = env->close_grace_hours;
    inv->issued_s = now_s;
    inv->due_s = now_s + (int64_t)env->due_days * 86400;
    inv->status = TALLY_INVOICE_STATUS_ISSUED;
    if ((rc = price_into(env, month_s, inv->period_end_s, now_s, inv)) != 0)
        goto fail;
    tally__invoice_tax_apply(inv, env->tax_rate_bp, env->tax_label);
    json_t *r = record_of(inv);
    if (!r || tally__invoice_record_put_extras(r, inv) != 0) {
        json_decref(r);
        rc = -ENOMEM;
        goto fail;
    }
    /* the rule it was closed under: usage later than this is billed as late usage */
    json_object_set_new(r, "grace_hours", json_integer(env->close_grace_hours));
    history_add(r, TALLY_INVOICE_STATUS_ISSUED, now_s, "close");
    rc = write_record(env, name, r, 0, 1);
    json_decref(r);
    if (rc == TALLY_EEXISTS) {
        /* closed by someone else between our read and write: theirs stands */
        tally__invoice_fini(inv);
        return load_invoice(env, name, inv);
    }
    if (rc)
        goto fail;
    if (created)
        *created = 1;
    return 0;
fail:
    tally__invoice_fini(inv);
    return rc;
}

int
tally__invoices_close_check(const tally__invoices_env_t *env, int64_t month_s, int64_t now_s,
                            char *msg, size_t msglen)
{
    int y, m;
    tally__time_to_civil(month_s, &y, &m, NULL, NULL, NULL, NULL);
    if (month_s != tally__time_month_start(month_s) || month_s < TALLY_TIME_RFC3339_MIN_S) {
        snprintf(msg, msglen, "month: not a month tally can bill");
        return TALLY_EINVAL;
    }
    if (tally__time_next_month(month_s) > now_s) {
        snprintf(msg, msglen, "month %04d-%02d has not ended yet: only ended months can be closed",
                 y, m);
        return TALLY_EBUSY;
    }
    int64_t first;
    int rc = tally__pricing_first_month(env->store, NULL, now_s, &first);
    if (rc)
        return rc;
    if (month_s < first) {
        int fy, fm;
        tally__time_to_civil(first, &fy, &fm, NULL, NULL, NULL, NULL);
        snprintf(msg, msglen,
                 "month %04d-%02d is before the tenant's first usage or plan (%04d-%02d): "
                 "there is nothing to bill",
                 y, m, fy, fm);
        return TALLY_EINVAL;
    }
    return 0;
}

int
tally__invoices_late(const tally__invoices_env_t *env, int64_t month_s, int64_t now_s,
                     int64_t *invoiced_cents, int64_t *late_cents)
{
    *invoiced_cents = *late_cents = 0;
    char name[64];
    tally__invoices_name(month_s, name, sizeof name);
    tally__invoice_t inv;
    int rc = load_invoice(env, name, &inv);
    if (rc)
        return rc;
    *invoiced_cents = inv.priced.total_cents;
    tally__priced_t now;
    memset(&now, 0, sizeof now);
    if (!env->price || !env->price_free) {
        tally__invoice_fini(&inv);
        return TALLY_EINVAL;
    }
    rc = env->price(env->store, env->catalog, env->plans, env->default_plan, NULL, month_s,
                    tally__time_next_month(month_s), now_s, &now);
    for (size_t i = 0; rc == 0 && i < now.n; i++) {
        const tally__price_line_t *l = &now.lines[i];
        if (l->fixed || !l->metric[0])
            continue;
        int64_t amount = 0, billable = 0;
        double qty = 0;
        billed_for(&inv, month_s, l->metric, &amount, &qty, &billable);
        if (l->amount_cents > amount)
            *late_cents += l->amount_cents - amount;
    }
    if (rc == 0)
        env->price_free(&now);
    tally__invoice_fini(&inv);
    return rc;
}

/* ---- get, act ------------------------------------------------------------------- */

int
tally__invoices_get(const tally__invoices_env_t *env, const char *name, int64_t now_s,
                    tally__invoice_t *inv)
{
    memset(inv, 0, sizeof *inv);
    int64_t m;
    if (tally__invoices_name_parse(name, &m) != 0)
        return TALLY_ENOTFOUND;
    int rc = load_invoice(env, name, inv);
    if (rc == TALLY_ENOTFOUND && m == tally__time_month_start(now_s))
        return tally__invoices_running(env, now_s, inv);
    return rc;
}

int
tally__invoices_act(const tally__invoices_env_t *env, const char *name, const char *action,
                    const char *by, int64_t now_s, tally__invoice_t *inv, char *msg, size_t msglen)
{
    memset(inv, 0, sizeof *inv);
    snprintf(msg, msglen, "%s", "");
    int next = 0;
    if (tally__invoices_next_status(TALLY_INVOICE_STATUS_ISSUED, action, &next) == TALLY_EINVAL) {
        snprintf(msg, msglen, "unknown invoice action '%s' (pay, cancel or refund)",
                 action ? action : "");
        return TALLY_EINVAL;
    }
    int64_t m;
    if (tally__invoices_name_parse(name, &m) != 0) {
        snprintf(msg, msglen, "no invoice named '%s' (names are inv-YYYY-MM)", name ? name : "");
        return TALLY_ENOTFOUND;
    }
    json_t *r = NULL;
    int rc = load_record(env, name, &r);
    if (rc == TALLY_ENOTFOUND) {
        if (m == tally__time_month_start(now_s))
            snprintf(msg, msglen,
                     "invoice %s is the running invoice (STATUS_PENDING); it cannot be %s "
                     "before its month is closed",
                     name,
                     strcmp(action, "pay") == 0      ? "paid"
                     : strcmp(action, "cancel") == 0 ? "cancelled"
                                                     : "refunded");
        else
            snprintf(msg, msglen, "no invoice named '%s'", name);
        return m == tally__time_month_start(now_s) ? TALLY_EBUSY : TALLY_ENOTFOUND;
    }
    if (rc)
        return rc;
    if ((rc = parse_record(r, inv)) != 0)
        goto out;
    int cur = tally__invoices_effective_status(inv, now_s);
    if ((rc = tally__invoices_next_status(cur, action, &next)) != 0) {
        snprintf(msg, msglen, "invoice %s is %s; '%s' is not allowed from that status", name,
                 tally__invoices_status_name(cur), action);
        goto out;
    }
    json_object_set_new(r, "status", json_string(tally__invoices_status_name(next)));
    history_add(r, next, now_s, by);
    /* a refund issues its credit note in the same write (invoicedoc.h) */
    if (next == TALLY_INVOICE_STATUS_REFUNDED &&
        (rc = tally__invoice_record_credit_note(r, inv, now_s, by)) != 0)
        goto out;
    if ((rc = write_record(env, name, r, 1, 0)) != 0)
        goto out;
    inv->status = next;
out:
    json_decref(r);
    if (rc)
        tally__invoice_fini(inv);
    return rc;
}

/* ---- list ---------------------------------------------------------------------- */

typedef struct list_ctx {
    tally__invoice_t *v;
    size_t n, cap;
    int rc;
} list_ctx_t;

static int
on_invoice(void *vctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)ns;
    list_ctx_t *c = vctx;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        tally__invoice_t *nv = realloc(c->v, ncap * sizeof *nv);
        if (!nv)
            return c->rc = -ENOMEM;
        c->v = nv;
        c->cap = ncap;
    }
    json_t *r = json_loadb(value, len, 0, NULL);
    int rc = r ? parse_record(r, &c->v[c->n]) : TALLY_ECORRUPT;
    json_decref(r);
    if (rc) {
        tally__invoice_fini(&c->v[c->n]);
        /* one bad record must not hide the others: skip it, say so */
        tally__log_error("invoices: skipping stored invoice name=%s err=\"%s\"", name,
                         tally_strerror(rc));
        return rc == -ENOMEM ? (c->rc = rc) : 0;
    }
    c->n++;
    return 0;
}

static int
newest_first(const void *a, const void *b)
{
    const tally__invoice_t *x = a, *y = b;
    if (x->active != y->active)
        return x->active ? -1 : 1;
    if (x->issued_s != y->issued_s)
        return x->issued_s > y->issued_s ? -1 : 1;
    if (x->period_start_s != y->period_start_s)
        return x->period_start_s > y->period_start_s ? -1 : 1;
    return strcmp(x->name, y->name);
}

void
tally__invoices_list_free(tally__invoice_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        tally__invoice_fini(&v[i]);
    free(v);
}

int
tally__invoices_list(const tally__invoices_env_t *env, int64_t now_s, int limit,
                     tally__invoice_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    list_ctx_t c = {0};
    int rc =
        tally__store_obj_list(env->store, TALLY_INVOICES_KIND, TALLY_INVOICES_NS, on_invoice, &c);
    if (rc == 0)
        rc = c.rc;
    if (rc)
        goto fail;
    char running[sizeof c.v->name];
    tally__invoices_name(tally__time_month_start(now_s), running, sizeof running);
    int have_running = 0;
    for (size_t i = 0; i < c.n; i++)
        have_running |= strcmp(c.v[i].name, running) == 0;
    if (!have_running) {
        tally__invoice_t *nv = realloc(c.v, (c.n + 1) * sizeof *nv);
        if (!nv) {
            rc = -ENOMEM;
            goto fail;
        }
        c.v = nv;
        if ((rc = tally__invoices_running(env, now_s, &c.v[c.n])) != 0)
            goto fail;
        c.n++;
    }
    if (c.n > 1)
        qsort(c.v, c.n, sizeof *c.v, newest_first);
    if (limit > 0 && c.n > (size_t)limit) {
        for (size_t i = (size_t)limit; i < c.n; i++)
            tally__invoice_fini(&c.v[i]);
        c.n = (size_t)limit;
    }
    *out = c.v;
    *n = c.n;
    return 0;
fail:
    tally__invoices_list_free(c.v, c.n);
    return rc;
}

/* ---- the auto-close pass --------------------------------------------------------- */

typedef struct overdue_ctx {
    int64_t now_s;
    char (*names)[64];
    size_t n, cap;
    int rc;
} overdue_ctx_t;

static int
on_overdue_candidate(void *vctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)ns;
    overdue_ctx_t *c = vctx;
    json_t *r = json_loadb(value, len, 0, NULL);
    int due = r &&
              tally__invoices_status_parse(json_string_value(json_object_get(r, "status"))) ==
                  TALLY_INVOICE_STATUS_ISSUED &&
              int_of(r, "due") > 0 && c->now_s > int_of(r, "due");
    json_decref(r);
    if (!due || strlen(name) >= sizeof c->names[0])
        return 0;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 8;
        char(*nv)[64] = realloc(c->names, ncap * sizeof *nv);
        if (!nv)
            return c->rc = -ENOMEM;
        c->names = nv;
        c->cap = ncap;
    }
    memcpy(c->names[c->n++], name, strlen(name) + 1);
    return 0;
}

int
tally__invoices_mark_overdue(const tally__invoices_env_t *env, int64_t now_s, size_t *changed)
{
    if (changed)
        *changed = 0;
    /* collect first: writing inside the listing's read snapshot would be a
     * write transaction nested in a read one */
    overdue_ctx_t c = {.now_s = now_s};
    int rc = tally__store_obj_list(env->store, TALLY_INVOICES_KIND, TALLY_INVOICES_NS,
                                   on_overdue_candidate, &c);
    if (rc == 0)
        rc = c.rc;
    for (size_t i = 0; rc == 0 && i < c.n; i++) {
        json_t *r;
        if ((rc = load_record(env, c.names[i], &r)) != 0)
            break;
        if (tally__invoices_status_parse(json_string_value(json_object_get(r, "status"))) ==
            TALLY_INVOICE_STATUS_ISSUED) {
            json_object_set_new(
                r, "status",
                json_string(tally__invoices_status_name(TALLY_INVOICE_STATUS_OVERDUE)));
            history_add(r, TALLY_INVOICE_STATUS_OVERDUE, now_s, "due date passed");
            rc = write_record(env, c.names[i], r, 1, 0);
            if (rc == 0 && changed)
                (*changed)++;
        }
        json_decref(r);
    }
    free(c.names);
    return rc;
}

typedef struct first_ctx {
    int64_t from_s, first;
} first_ctx_t;

static int
on_rollup(void *vctx, const char *series, size_t series_len, int64_t period_s,
          const tally__rollup_t *r)
{
    (void)series;
    (void)series_len;
    (void)r;
    first_ctx_t *c = vctx;
    if (c->first == INT64_MAX || period_s < c->first)
        c->first = period_s;
    return c->first <= c->from_s ? 1 : 0; /* nothing can be earlier: stop */
}

int
tally__invoices_first_data_month(tally__store_t *store, int64_t from_s, int64_t to_s,
                                 int64_t *month_s)
{
    first_ctx_t c = {.from_s = from_s, .first = INT64_MAX};
    int rc = tally__store_scan(store, TALLY_STORE_MONTHLY, NULL, 0, from_s, to_s, on_rollup, &c);
    if (rc < 0)
        return rc;
    if (c.first == INT64_MAX)
        return TALLY_ENOTFOUND;
    *month_s = tally__time_month_start(c.first);
    return 0;
}

int
tally__invoices_close_ended(const tally__invoices_env_t *env, int64_t first_month_s, int64_t now_s,
                            size_t *closed)
{
    if (closed)
        *closed = 0;
    int64_t cur = tally__time_month_start(now_s);
    int64_t m = tally__time_month_start(first_month_s);
    if (m < TALLY_TIME_RFC3339_MIN_S)
        m = TALLY_TIME_RFC3339_MIN_S;
    for (; m < cur; m = tally__time_next_month(m)) {
        /* the grace: usage still arriving for the month lands on its own invoice */
        if (tally__time_next_month(m) + (int64_t)env->close_grace_hours * 3600 > now_s)
            break;
        char name[64];
        tally__invoices_name(m, name, sizeof name);
        char *v = NULL;
        size_t len;
        int rc = tally__store_obj_get(env->store, TALLY_INVOICES_KIND, TALLY_INVOICES_NS, name, &v,
                                      &len);
        free(v);
        if (rc == 0)
            continue;
        if (rc != TALLY_ENOTFOUND)
            return rc;
        tally__invoice_t inv;
        int created = 0;
        if ((rc = tally__invoices_close(env, m, now_s, &inv, &created)) != 0)
            return rc;
        tally__log_info("invoices: closed name=%s total_cents=%lld currency=%s", inv.name,
                        (long long)inv.priced.total_cents, inv.priced.currency);
        tally__invoice_fini(&inv);
        if (closed && created)
            (*closed)++;
    }
    return 0;
}

/* ---- rendering ---------------------------------------------------------------------- */

json_t *
tally__invoices_to_api(const tally__invoice_t *inv, const char *currency, int64_t now_s)
{
    char start[TALLY_TIME_RFC3339_LEN], end[TALLY_TIME_RFC3339_LEN], amount[32];
    tally__time_format_rfc3339(inv->period_start_s, start, sizeof start);
    tally__time_format_rfc3339(inv->period_end_s, end, sizeof end);
    snprintf(amount, sizeof amount, "%lld", (long long)inv->priced.total_cents);
    const char *cur = inv->priced.currency[0] ? inv->priced.currency : currency;
    return json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:s}", "name", inv->name, "active",
                     inv->active, "amount", amount, "currency", cur ? cur : "USD", "period_start",
                     start, "period_end", end, "status",
                     tally__invoices_status_name(tally__invoices_effective_status(inv, now_s)));
}
