/* invoicedoc.c — tax, per-line explanations, the buyer block, credit notes and the invoice JSON's
 * tally_* fields (rules in invoicedoc.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invoicedoc.h"
#include "invoices.h"
#include "payment.h"
#include "pricing.h"
#include "tally/tally.h"
#include "timeutil.h"

/* ---- tax ------------------------------------------------------------------------ */

int64_t
tally__invoice_tax(int64_t total_cents, uint32_t rate_bp)
{
    if (total_cents <= 0 || rate_bp == 0)
        return 0;
    /* 128-bit product: exact for every int64 total and uint32 rate */
    __int128 t = ((__int128)total_cents * rate_bp + 5000) / 10000;
    return t > INT64_MAX ? INT64_MAX : (int64_t)t;
}

void
tally__invoice_tax_apply(tally__invoice_t *inv, uint32_t rate_bp, const char *label)
{
    inv->tax_rate_bp = rate_bp;
    snprintf(inv->tax_label, sizeof inv->tax_label, "%s", label && label[0] ? label : "Tax");
    inv->tax_cents = tally__invoice_tax(inv->priced.total_cents, rate_bp);
    int64_t t = inv->priced.total_cents;
    inv->amount_due_cents = t > INT64_MAX - inv->tax_cents ? INT64_MAX : t + inv->tax_cents;
}

/* ---- line explanations ------------------------------------------------------------ */

static const char *
per_name(tally__period_unit_t u)
{
    switch (u) {
    case TALLY_PERIOD_DAY:
        return "day";
    case TALLY_PERIOD_WEEK:
        return "week";
    case TALLY_PERIOD_YEAR:
        return "year";
    default:
        return "month";
    }
}

/* The same walk as tally__pricing_charge(), kept per tier. */
static void
explain_usage(const tally__plan_price_t *price, const tally__price_line_t *l,
              tally__invoice_detail_t *d)
{
    d->unit_price_cents = -1;
    if (!price) { /* not priced by the plan: free */
        d->explained = l->amount_cents == 0;
        d->unit_price_cents = 0;
        return;
    }
    d->included = price->included;
    uint64_t b = l->billable > 0 ? (uint64_t)l->billable : 0, inc = price->included;
    int64_t sum = 0;
    for (size_t i = 0; i < price->ntiers; i++) {
        const tally__plan_tier_t *t = &price->tiers[i];
        uint64_t lo = t->from > inc ? t->from : inc;
        uint64_t hi = (t->up_to == 0 || t->up_to > b) ? b : t->up_to;
        if (hi <= lo)
            continue;
        if (d->ntiers == TALLY_INVOICE_TIERS_MAX)
            return; /* too long to show: unexplained */
        tally__invoice_tier_t *x = &d->tiers[d->ntiers++];
        x->from = t->from;
        x->up_to = t->up_to;
        x->units = hi - lo;
        x->unit_price_cents = t->unit_price_cents > 0 ? t->unit_price_cents : 0;
        if (x->units >
            (uint64_t)INT64_MAX / (x->unit_price_cents ? (uint64_t)x->unit_price_cents : 1))
            return;
        x->amount_cents = (int64_t)x->units * x->unit_price_cents;
        if (sum > INT64_MAX - x->amount_cents)
            return;
        sum += x->amount_cents;
    }
    if (!price->tiered) { /* one price: a unit-price column, no breakdown */
        d->unit_price_cents = price->tiers[0].unit_price_cents;
        d->ntiers = 0;
    }
    d->explained = sum == l->amount_cents;
}

static void
explain_fee(const tally__plans_t *plans, const tally__price_line_t *l, tally__invoice_detail_t *d)
{
    const char *title = l->usage_type + strlen("Plan fee: ");
    const tally__plan_t *plan = NULL;
    for (size_t i = 0; !plan && i < tally__plans_count(plans); i++)
        if (strcmp(tally__plans_at(plans, i)->title, title) == 0)
            plan = tally__plans_at(plans, i);
    d->unit_price_cents = -1;
    if (!plan || l->billable < 0 || l->billable > 366) /* a fee line counts a month's days */
        return;
    int y, m;
    tally__time_to_civil(l->start_s, &y, &m, NULL, NULL, NULL, NULL);
    int dim = tally__time_days_in_month(y, m), diy = tally__time_is_leap_year(y) ? 366 : 365;
    d->unit_price_cents = plan->flat_price_cents;
    d->per = per_name(plan->renewal_period_unit);
    /* the trial's days are free (pricing.h): the charged days are those whose prorated fee is the
     * line's amount, counted down from all of them */
    for (int64_t paid = l->billable; paid >= 0; paid--) {
        int64_t fee = tally__pricing_prorate(plan->flat_price_cents, plan->renewal_period_unit,
                                             paid, dim, diy);
        if (fee == l->amount_cents) {
            if (paid < l->billable && plan->trial_period <= 0)
                return; /* fewer days than the line without a trial: not ours to explain */
            d->paid_days = paid;
            d->trial_days = l->billable - paid;
            d->explained = 1;
            return;
        }
        if (fee < l->amount_cents)
            return;
    }
}

int
tally__invoice_details(const tally__plans_t *plans, const tally__invoice_t *inv,
                       tally__invoice_detail_t **out)
{
    if (!inv || !out || (inv->priced.n && !inv->priced.lines))
        return TALLY_EINVAL;
    *out = NULL;
    if (inv->priced.n == 0)
        return 0;
    tally__invoice_detail_t *v = calloc(inv->priced.n, sizeof *v);
    if (!v)
        return -ENOMEM;
    const tally__plan_t *plan = plans ? tally__plans_find(plans, inv->plan) : NULL;
    for (size_t i = 0; plans && i < inv->priced.n; i++) {
        const tally__price_line_t *l = &inv->priced.lines[i];
        if (l->fixed && strncmp(l->usage_type, "Plan fee: ", 10) == 0)
            explain_fee(plans, l, &v[i]);
        else if (!l->fixed && plan)
            explain_usage(tally__plan_price_find(plan, l->metric), l, &v[i]);
        else
            v[i].unit_price_cents = -1;
    }
    *out = v;
    return 0;
}

/* ---- the buyer ----------------------------------------------------------------------- */

static void
append_line(char *buf, size_t cap, const char *text)
{
    size_t n = strlen(buf);
    if (!text || !text[0] || n >= cap)
        return;
    snprintf(buf + n, cap - n, "%s%s", n ? "\n" : "", text);
}

static const char *
cfield(json_t *c, const char *k)
{
    const char *s = json_string_value(json_object_get(c, k));
    return s ? s : "";
}

/* The address lines of a contact.GlobalSpecType object; "" when it has none. */
static void
contact_address(json_t *c, char *buf, size_t cap)
{
    char line[600];
    buf[0] = '\0';
    append_line(buf, cap, cfield(c, "address1"));
    append_line(buf, cap, cfield(c, "address2"));
    const char *state = cfield(c, "state")[0] ? cfield(c, "state") : cfield(c, "state_code");
    snprintf(line, sizeof line, "%s%s%s%s%s", cfield(c, "city"),
             cfield(c, "city")[0] && state[0] ? ", " : "", state,
             (cfield(c, "city")[0] || state[0]) && cfield(c, "zip_code")[0] ? " " : "",
             cfield(c, "zip_code"));
    append_line(buf, cap, line);
    append_line(buf, cap, cfield(c, "county"));
    append_line(buf, cap, cfield(c, "country"));
    if (!buf[0])
        return; /* a phone number alone is no address */
    if (cfield(c, "phone_number")[0]) {
        snprintf(line, sizeof line, "Phone: %s", cfield(c, "phone_number"));
        append_line(buf, cap, line);
    }
}

int
tally__invoice_buyer(tally__store_t *store, tally__invoice_buyer_t *out)
{
    memset(out, 0, sizeof *out);
    tally__payment_list_t l = {0};
    int rc = tally__payment_load(store, "system", &l);
    if (rc) {
        tally__payment_list_fini(&l);
        return rc;
    }
    long pick = tally__payment_list_holder(&l, TALLY_PAYMENT_ROLE_PRIMARY);
    if (pick >= 0) {
        contact_address(json_object_get(l.v[pick].rec, "contact"), out->address,
                        sizeof out->address);
        if (!out->address[0])
            pick = -1;
    }
    for (size_t i = 0; pick < 0 && i < l.n; i++) {
        contact_address(json_object_get(l.v[i].rec, "contact"), out->address, sizeof out->address);
        if (out->address[0])
            pick = (long)i;
    }
    if (pick >= 0)
        snprintf(out->source, sizeof out->source, "payment method %.64s", l.v[pick].name);
    tally__payment_list_fini(&l);
    return 0;
}

/* ---- credit notes ---------------------------------------------------------------------- */

void
tally__credit_note_name(const char *invoice_name, char *out, size_t cap)
{
    int64_t m;
    if (cap == 0)
        return;
    out[0] = '\0';
    if (tally__invoices_name_parse(invoice_name, &m) == 0)
        snprintf(out, cap, "CN-%s", invoice_name + 4);
}

int
tally__credit_note_invoice(const char *number, char *invoice_name, size_t cap)
{
    int64_t m;
    if (!number || strncmp(number, "CN-", 3) != 0 ||
        tally__invoices_month_parse(number + 3, &m) != 0)
        return TALLY_EINVAL;
    snprintf(invoice_name, cap, "inv-%s", number + 3);
    return 0;
}

int
tally__invoice_record_credit_note(json_t *r, tally__invoice_t *inv, int64_t now_s, const char *by)
{
    tally__credit_note_name(inv->name, inv->credit_note, sizeof inv->credit_note);
    inv->credit_note_s = now_s;
    json_t *cn =
        json_pack("{s:s, s:I, s:s, s:I}", "number", inv->credit_note, "issued", (json_int_t)now_s,
                  "by", by ? by : "", "amount_cents", (json_int_t)inv->amount_due_cents);
    if (!cn || json_object_set_new(r, "credit_note", cn) != 0)
        return -ENOMEM;
    return 0;
}

int
tally__invoice_record_put_extras(json_t *r, const tally__invoice_t *inv)
{
    json_t *tax = json_pack("{s:I, s:s, s:I, s:I}", "rate_bp", (json_int_t)inv->tax_rate_bp,
                            "label", inv->tax_label, "tax_cents", (json_int_t)inv->tax_cents,
                            "amount_due_cents", (json_int_t)inv->amount_due_cents);
    if (!tax || json_object_set_new(r, "tax", tax) != 0)
        return -ENOMEM;
    return 0;
}

void
tally__invoice_record_get_extras(json_t *r, tally__invoice_t *inv)
{
    json_t *tax = json_object_get(r, "tax");
    if (json_is_object(tax)) {
        json_int_t bp = json_integer_value(json_object_get(tax, "rate_bp"));
        inv->tax_rate_bp = bp > 0 && bp <= 10000 ? (uint32_t)bp : 0;
        snprintf(inv->tax_label, sizeof inv->tax_label, "%s",
                 json_string_value(json_object_get(tax, "label"))
                     ? json_string_value(json_object_get(tax, "label"))
                     : "Tax");
        inv->tax_cents = json_integer_value(json_object_get(tax, "tax_cents"));
        inv->amount_due_cents = json_integer_value(json_object_get(tax, "amount_due_cents"));
    } else {
        tally__invoice_tax_apply(inv, 0, NULL);
    }
    json_t *cn = json_object_get(r, "credit_note");
    if (json_is_object(cn)) {
        snprintf(inv->credit_note, sizeof inv->credit_note, "%s",
                 json_string_value(json_object_get(cn, "number"))
                     ? json_string_value(json_object_get(cn, "number"))
                     : "");
        inv->credit_note_s = json_integer_value(json_object_get(cn, "issued"));
    }
}

/* ---- the JSON extension fields ---------------------------------------------------------- */

static int
set_cents(json_t *o, const char *k, int64_t cents)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)cents);
    return json_object_set_new(o, k, json_string(buf));
}

int
tally__invoice_api_extend(json_t *o, const tally__invoice_t *inv)
{
    const tally__priced_t *p = &inv->priced;
    int rc = set_cents(o, "amount", inv->amount_due_cents);
    rc |= set_cents(o, "tally_subtotal", p->subtotal_cents);
    rc |= set_cents(o, "tally_discount", p->discount_cents);
    rc |= set_cents(o, "tally_total", p->total_cents);
    rc |= set_cents(o, "tally_tax", inv->tax_cents);
    rc |= set_cents(o, "tally_amount_due", inv->amount_due_cents);
    rc |= json_object_set_new(o, "tally_tax_rate_bp", json_integer(inv->tax_rate_bp));
    rc |= json_object_set_new(o, "tally_tax_label",
                              json_string(inv->tax_label[0] ? inv->tax_label : "Tax"));
    if (inv->credit_note[0])
        rc |= json_object_set_new(o, "tally_credit_note", json_string(inv->credit_note));
    return rc ? -ENOMEM : 0;
}
