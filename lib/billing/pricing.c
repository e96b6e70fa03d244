/* pricing.c — prices usage in integer cents: billable rounding, tiers, prorated flat fees, add-ons,
 * coupons. */
#include "buf.h"
#include "pricing.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tally/tally.h"
#include "timeutil.h"
#include "usage.h"

#define DAY_S 86400

/* ---- saturating money arithmetic (operands are >= 0) ------------------------------ */

static int64_t
sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t
sat_mul(int64_t a, int64_t b)
{
    if (a <= 0 || b <= 0)
        return 0;
    return a > INT64_MAX / b ? INT64_MAX : a * b;
}

/* floor(num / den + 1/2) for num >= 0, 0 < den <= 2^62: the remainder doubles without overflow. */
static int64_t
div_half_up(int64_t num, int64_t den)
{
    return num / den + ((num % den) * 2 >= den);
}

/* ---- pure rules ------------------------------------------------------------------------ */

int64_t
tally__pricing_billable_double(double raw, uint64_t factor)
{
    if (factor == 0)
        factor = 1;
    if (!(raw > 0)) /* NaN too */
        return 0;
    double b = ceil(raw / (double)factor);
    if (b >= 9223372036854775807.0)
        return INT64_MAX;
    return (int64_t)b;
}

int64_t
tally__pricing_billable(const tally__usage_qty_t *raw, uint64_t factor)
{
    int64_t x;
    if (factor == 0)
        factor = 1;
    if (!raw)
        return 0;
    if (tally__usage_qty_as_int(raw, &x)) {
        if (x <= 0)
            return 0;
        uint64_t u = (uint64_t)x;
        return (int64_t)(u / factor + (u % factor != 0));
    }
    return tally__pricing_billable_double(tally__usage_qty_value(raw), factor);
}

int64_t
tally__pricing_charge(const tally__plan_price_t *price, int64_t billable)
{
    if (!price || billable <= 0)
        return 0;
    uint64_t b = (uint64_t)billable, inc = price->included;
    int64_t total = 0;
    for (size_t i = 0; i < price->ntiers; i++) {
        const tally__plan_tier_t *t = &price->tiers[i];
        uint64_t lo = t->from > inc ? t->from : inc;
        uint64_t hi = (t->up_to == 0 || t->up_to > b) ? b : t->up_to;
        if (hi <= lo || t->unit_price_cents <= 0)
            continue;
        /* hi - lo <= b <= INT64_MAX */
        total = sat_add(total, sat_mul((int64_t)(hi - lo), t->unit_price_cents));
    }
    return total;
}

int64_t
tally__pricing_prorate(int64_t flat_cents, tally__period_unit_t unit, int64_t days_in_force,
                       int days_in_month, int days_in_year)
{
    if (flat_cents <= 0 || days_in_force <= 0)
        return 0;
    int64_t den;
    switch (unit) {
    case TALLY_PERIOD_DAY:
        return sat_mul(flat_cents, days_in_force);
    case TALLY_PERIOD_WEEK:
        den = 7;
        break;
    case TALLY_PERIOD_YEAR:
        den = days_in_year > 0 ? days_in_year : 365;
        break;
    default: /* PERIOD_MONTH, and PERIOD_UNKNOWN taken as a month */
        den = days_in_month > 0 ? days_in_month : 30;
        break;
    }
    if (flat_cents > INT64_MAX / days_in_force)
        return INT64_MAX;
    return div_half_up(flat_cents * days_in_force, den);
}

int64_t
tally__pricing_coupon_discount(const tally__coupon_t *c, int64_t subtotal)
{
    if (!c || subtotal <= 0 || c->amount <= 0)
        return 0;
    switch (c->type) {
    case TALLY_DISCOUNT_FIXED_AMOUNT:
        return c->amount < subtotal ? c->amount : subtotal;
    case TALLY_DISCOUNT_PERCENTAGE: {
        if (c->amount >= 10000) /* 100 % or more */
            return subtotal;
        /* subtotal * amount / 10000 without overflow: the quotient part is exact */
        int64_t q = subtotal / 10000, r = subtotal % 10000;
        return q * c->amount + div_half_up(r * c->amount, 10000);
    }
    default:
        return 0;
    }
}

int64_t
tally__pricing_discount(const tally__coupon_t *c, size_t n, int64_t subtotal)
{
    if (subtotal <= 0)
        return 0;
    int64_t d = 0;
    for (size_t i = 0; i < n; i++)
        d = sat_add(d, tally__pricing_coupon_discount(&c[i], subtotal));
    return d < subtotal ? d : subtotal;
}

/* The UTC day number of t (floor). */
static int64_t
day_of(int64_t t)
{
    return tally__time_day_start(t) / DAY_S;
}

int64_t
tally__pricing_days(int64_t from_s, int64_t to_s)
{
    int64_t d = day_of(to_s) - day_of(from_s);
    return d > 0 ? d : 0;
}

/* The weight of a namespace's quantity in an allocation: the integer itself,
 * or a float in millionths (rounded half up), saturating. */
static uint64_t
qty_weight(const tally__usage_qty_t *q)
{
    int64_t x;
    if (tally__usage_qty_as_int(q, &x))
        return x > 0 ? (uint64_t)x : 0;
    double v = tally__usage_qty_value(q);
    if (!(v > 0))
        return 0;
    v = floor(v * 1e6 + 0.5);
    return v >= 1.8e19 ? UINT64_MAX / 2 : (uint64_t)v;
}

typedef struct rank {
    unsigned __int128 rem;
    size_t i;
} rank_t;

static int
by_rank(const void *a, const void *b)
{
    const rank_t *x = a, *y = b;
    if (x->rem != y->rem)
        return x->rem > y->rem ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

int
tally__pricing_allocate(int64_t total, const uint64_t *weights, size_t n, int64_t *shares)
{
    if (n == 0)
        return total == 0 ? 0 : TALLY_EINVAL;
    if (total < 0)
        return TALLY_EINVAL;
    unsigned __int128 wsum = 0;
    for (size_t i = 0; i < n; i++)
        wsum += weights[i];
    unsigned __int128 *rem = calloc(n, sizeof *rem);
    if (!rem)
        return -ENOMEM;
    int64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        if (wsum == 0) { /* no weights: equal shares */
            shares[i] = total / (int64_t)n;
            rem[i] = (unsigned __int128)(total % (int64_t)n);
        } else {
            unsigned __int128 num = (unsigned __int128)(uint64_t)total * weights[i];
            shares[i] = (int64_t)(num / wsum);
            rem[i] = num % wsum;
        }
        given += shares[i];
    }
    /* the cents left (fewer than n) go one each to the largest remainders,
     * ties to the lower index: sort the indexes that way, O(n log n) */
    int64_t left = total - given;
    if (left > 0) {
        rank_t *rk = malloc(n * sizeof *rk);
        if (!rk) {
            free(rem);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
            rk[i] = (rank_t){rem[i], i};
        qsort(rk, n, sizeof *rk, by_rank);
        for (size_t k = 0; k < n && left > 0 && rk[k].rem > 0; k++, left--)
            shares[rk[k].i]++;
        free(rk);
    }
    free(rem);
    return 0;
}

const char *
tally__pricing_status_name(int status)
{
    switch (status) {
    case TALLY_PRICE_STATUS_ACTIVE:
        return "STATUS_ACTIVE";
    case TALLY_PRICE_STATUS_NO_DATA:
        return "STATUS_NO_DATA";
    case TALLY_PRICE_STATUS_NOT_MEASURED:
        return "STATUS_NOT_MEASURED";
    default:
        return "STATUS_UNKNOWN";
    }
}

const char *
tally__pricing_discount_name(tally__discount_type_t t)
{
    switch (t) {
    case TALLY_DISCOUNT_FIXED_AMOUNT:
        return "DISCOUNT_TYPE_FIXED_AMOUNT";
    case TALLY_DISCOUNT_PERCENTAGE:
        return "DISCOUNT_TYPE_PERCENTAGE";
    default:
        return "DISCOUNT_TYPE_UNKNOWN";
    }
}

tally__discount_type_t
tally__pricing_discount_parse(const char *s)
{
    if (s && strcmp(s, "DISCOUNT_TYPE_FIXED_AMOUNT") == 0)
        return TALLY_DISCOUNT_FIXED_AMOUNT;
    if (s && strcmp(s, "DISCOUNT_TYPE_PERCENTAGE") == 0)
        return TALLY_DISCOUNT_PERCENTAGE;
    return TALLY_DISCOUNT_UNKNOWN;
}

/* ---- stored objects ------------------------------------------------------------------- */

static void
copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

typedef struct coupons {
    tally__coupon_t *v;
    size_t n, cap;
} coupons_t;

static int
coupon_cb(void *ctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)ns;
    coupons_t *c = ctx;
    json_t *j = json_loadb(value, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return TALLY_ECORRUPT;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        tally__coupon_t *v = realloc(c->v, cap * sizeof *v);
        if (!v) {
            json_decref(j);
            return -ENOMEM;
        }
        c->v = v;
        c->cap = cap;
    }
    tally__coupon_t *cp = &c->v[c->n++];
    memset(cp, 0, sizeof *cp);
    copy_str(cp->name, sizeof cp->name, name);
    copy_str(cp->title, sizeof cp->title, json_string_value(json_object_get(j, "title")));
    cp->type =
        tally__pricing_discount_parse(json_string_value(json_object_get(j, "discount_type")));
    json_int_t a = json_integer_value(json_object_get(j, "discount_amount"));
    cp->amount = a < 0 ? 0 : a > INT32_MAX ? INT32_MAX : (int32_t)a;
    json_decref(j);
    return 0;
}

int
tally__pricing_coupons_load(tally__store_t *store, tally__coupon_t **out, size_t *n)
{
    coupons_t c = {0};
    *out = NULL;
    *n = 0;
    int rc = tally__store_obj_list(store, TALLY_PRICING_COUPON_KIND, TALLY_PRICING_COUPON_NS,
                                   coupon_cb, &c);
    if (rc) {
        free(c.v);
        return rc;
    }
    *out = c.v;
    *n = c.n;
    return 0;
}

/* A subscription (plan or add-on) as a time interval [start, end). */
typedef struct seg {
    char name[TALLY_PLANS_NAME_MAX + 1]; /* plan or add-on */
    int64_t start, end;                  /* INT64_MIN / INT64_MAX when open */
    int64_t seq;                         /* order of recording (0: recorded before seq existed) */
    int included;                        /* add-ons */
} seg_t;

typedef struct segs {
    seg_t *v;
    size_t n, cap;
    const char *key; /* "plan" or "addon" */
} segs_t;

static int64_t
rec_time(json_t *o, const char *key, int64_t dflt)
{
    int64_t ms;
    const char *s = json_string_value(json_object_get(o, key));
    if (!s || tally__time_parse_rfc3339(s, &ms) != 0)
        return dflt;
    return ms / 1000;
}

static int
seg_cb(void *ctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)ns;
    (void)name;
    segs_t *s = ctx;
    json_t *j = json_loadb(value, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return TALLY_ECORRUPT;
    }
    const char *what = json_string_value(json_object_get(j, s->key));
    if (!what) { /* not a record we can price: skip it */
        json_decref(j);
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        seg_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            json_decref(j);
            return -ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    seg_t *g = &s->v[s->n++];
    memset(g, 0, sizeof *g);
    copy_str(g->name, sizeof g->name, what);
    g->start = rec_time(j, "start", INT64_MIN);
    g->end = json_is_true(json_object_get(j, "cancelled")) ? rec_time(j, "cancellation", g->start)
                                                           : INT64_MAX;
    g->included = json_is_true(json_object_get(j, "included"));
    json_int_t seq = json_integer_value(json_object_get(j, "seq"));
    g->seq = seq > 0 ? (int64_t)seq : 0;
    json_decref(j);
    return 0;
}

/* Recording order: the sequence billing.c gives every subscription (strictly
 * increasing), so two changes in one second keep their order; records from
 * before the sequence (seq 0) come first, by start, then by end. */
static int
by_seq(const void *a, const void *b)
{
    const seg_t *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* A subscription cancelled in the second it started (superseded or undone at
 * once) was never in force: it prices nothing. */
static int
seg_empty(const seg_t *g)
{
    return g->end <= g->start;
}

static int
load_segs(tally__store_t *store, const char *kind, const char *key, segs_t *out)
{
    memset(out, 0, sizeof *out);
    out->key = key;
    int rc = tally__store_obj_list(store, kind, "system", seg_cb, out);
    if (rc) {
        free(out->v);
        memset(out, 0, sizeof *out);
        return rc;
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, by_seq);
    return 0;
}

/* ---- building a priced period -------------------------------------------------------- */

tally__price_line_t *
tally__priced_add_line(tally__priced_t *p, size_t *cap)
{
    if (tally__grow((void **)&p->lines, cap, p->n + 1, sizeof *p->lines, 16) != 0)
        return NULL;
    tally__price_line_t *l = &p->lines[p->n++];
    memset(l, 0, sizeof *l);
    return l;
}

/* The end of a trial that began at start_s, or start_s when the plan has none. */
static int64_t
trial_end(const tally__plan_t *plan, int64_t start_s)
{
    if (!plan || plan->trial_period <= 0 || start_s == INT64_MIN)
        return start_s;
    int64_t n = plan->trial_period;
    switch (plan->trial_period_unit) {
    case TALLY_PERIOD_DAY:
        return start_s + n * DAY_S;
    case TALLY_PERIOD_WEEK:
        return start_s + n * 7 * DAY_S;
    case TALLY_PERIOD_MONTH:
    case TALLY_PERIOD_YEAR: {
        int y, m, d, hh, mm, ss;
        tally__time_to_civil(start_s, &y, &m, &d, &hh, &mm, &ss);
        int64_t months = plan->trial_period_unit == TALLY_PERIOD_YEAR ? n * 12 : n;
        int64_t total = (int64_t)y * 12 + (m - 1) + months;
        int ny = (int)(total / 12), nm = (int)(total % 12) + 1;
        int dim = tally__time_days_in_month(ny, nm);
        return tally__time_from_civil(ny, nm, d < dim ? d : dim, hh, mm, ss);
    }
    default:
        return start_s;
    }
}

/* Per-metric usage of the period. */
typedef struct mq {
    tally__metric_def_t def;
    tally__usage_qty_t q;
} mq_t;

static mq_t *
mq_find(mq_t *v, size_t n, const char *metric)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].def.metric, metric) == 0)
            return &v[i];
    return NULL;
}

static int
metric_line(tally__priced_t *p, size_t *cap, const tally__metric_def_t *def,
            const tally__usage_qty_t *q, const tally__plan_price_t *price, int64_t start_s,
            int64_t end_s)
{
    tally__price_line_t *l = tally__priced_add_line(p, cap);
    if (!l)
        return -ENOMEM;
    copy_str(l->usage_type, sizeof l->usage_type, def->usage_type);
    copy_str(l->metric, sizeof l->metric, def->metric);
    copy_str(l->unit, sizeof l->unit, def->unit);
    copy_str(l->billable_unit, sizeof l->billable_unit, def->billable_unit);
    l->quantity = q ? tally__usage_qty_value(q) : 0;
    l->billable = q ? tally__pricing_billable(q, def->division_factor) : 0;
    l->amount_cents = tally__pricing_charge(price, l->billable);
    l->status = (q && q->records) ? TALLY_PRICE_STATUS_ACTIVE : TALLY_PRICE_STATUS_NO_DATA;
    l->start_s = start_s;
    l->end_s = end_s;
    return 0;
}

/* Clip [a, b) to [lo, hi). */
static void
clip(int64_t a, int64_t b, int64_t lo, int64_t hi, int64_t *s, int64_t *e)
{
    *s = a > lo ? a : lo;
    *e = b < hi ? b : hi;
}

/* Days in force of [s, e) within a period ending at end_s: the period's end
 * counts its started day (month to date includes today). */
static int64_t
days_in_force(int64_t s, int64_t e, int64_t end_s)
{
    if (e >= end_s) {
        int64_t d = tally__pricing_days(s, end_s);
        return d + (tally__time_day_start(end_s) != end_s);
    }
    return tally__pricing_days(s, e);
}

static int
fee_lines(tally__priced_t *p, size_t *cap, const tally__plans_t *plans, const segs_t *subs,
          const char *current, int64_t start_s, int64_t end_s, int dim, int diy)
{
    seg_t only;
    const seg_t *v = subs->v;
    size_t n = subs->n;
    if (n == 0) { /* no recorded history: the current plan all along */
        memset(&only, 0, sizeof only);
        copy_str(only.name, sizeof only.name, current);
        only.start = INT64_MIN;
        only.end = INT64_MAX;
        v = &only;
        n = 1;
    }
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (seg_empty(&v[i]))
            continue;
        const tally__plan_t *plan = tally__plans_find(plans, v[i].name);
        int64_t a = first ? INT64_MIN : v[i].start, s, e;
        first = 0;
        clip(a, v[i].end, start_s, end_s, &s, &e);
        if (!plan || e <= s)
            continue;
        int64_t days = days_in_force(s, e, end_s);
        if (days <= 0)
            continue;
        /* the trial's days are free: count from the trial's end */
        int64_t te = trial_end(plan, v[i].start);
        int64_t paid = days;
        if (te != v[i].start && te > s) {
            int64_t ps = te < e ? te : e;
            paid = ps >= e ? 0 : days_in_force(ps, e, end_s);
            if (paid > days)
                paid = days;
        }
        tally__price_line_t *l = tally__priced_add_line(p, cap);
        if (!l)
            return -ENOMEM;
        snprintf(l->usage_type, sizeof l->usage_type, "Plan fee: %s", plan->title);
        copy_str(l->unit, sizeof l->unit, "days");
        copy_str(l->billable_unit, sizeof l->billable_unit, "days");
        /* quantity: days in force; billable: the days charged (a trial's are not) */
        l->quantity = (double)days;
        l->billable = paid;
        l->amount_cents = tally__pricing_prorate(plan->flat_price_cents, plan->renewal_period_unit,
                                                 paid, dim, diy);
        l->fixed = 1;
        l->status = TALLY_PRICE_STATUS_NOT_MEASURED;
        l->start_s = s;
        l->end_s = e;
    }
    return 0;
}

static int
addon_lines(tally__priced_t *p, size_t *cap, const tally__plans_t *plans, const segs_t *addons,
            int64_t start_s, int64_t end_s)
{
    for (size_t i = 0; i < addons->n; i++) {
        const seg_t *g = &addons->v[i];
        int64_t s, e;
        clip(g->start, g->end, start_s, end_s, &s, &e);
        if (e <= s)
            continue;
        const tally__addon_t *a = tally__plans_addon_find(plans, g->name);
        tally__price_line_t *l = tally__priced_add_line(p, cap);
        if (!l)
            return -ENOMEM;
        snprintf(l->usage_type, sizeof l->usage_type, "Add-on: %s%s", a ? a->display_name : g->name,
                 g->included ? " (included)" : "");
        copy_str(l->unit, sizeof l->unit, "days");
        copy_str(l->billable_unit, sizeof l->billable_unit, "days");
        l->billable = days_in_force(s, e, end_s);
        l->quantity = (double)l->billable;
        l->amount_cents = 0; /* the add-on catalog has no prices (pricing.h) */
        l->fixed = 1;
        l->status = TALLY_PRICE_STATUS_NOT_MEASURED;
        l->start_s = s;
        l->end_s = e;
    }
    return 0;
}

/* The namespaces with usage of metric, sorted by name, with their merged
 * quantities (items come per namespace, metric and object). */
typedef struct nsq {
    const char *ns;
    tally__usage_qty_t q;
} nsq_t;

/*
 * Turn the tenant's usage lines (out) into namespace ns's lines: each line's
 * amount becomes ns's share of the tenant's amount, allocated over the
 * namespaces with usage of the metric in proportion to their quantities
 * (tally__pricing_allocate), so the namespaces' figures add up to the
 * tenant's to the cent. Quantity, billable and status become ns's own. Lines
 * of metrics the plan does not price stay only where ns has usage.
 */
static int
namespace_shares(tally__priced_t *out, const tally__usage_item_t *items, size_t nitems,
                 const char *ns, const tally__plan_t *uplan)
{
    nsq_t *v = calloc(nitems ? nitems : 1, sizeof *v);
    uint64_t *w = calloc(nitems ? nitems : 1, sizeof *w);
    int64_t *sh = calloc(nitems ? nitems : 1, sizeof *sh);
    int rc = 0;
    if (!v || !w || !sh) {
        rc = -ENOMEM;
        goto out;
    }
    size_t keep = 0;
    for (size_t li = 0; li < out->n; li++) {
        tally__price_line_t l = out->lines[li];
        size_t nv = 0, mine = SIZE_MAX;
        for (size_t i = 0; i < nitems; i++) {
            if (strcmp(items[i].metric, l.metric) != 0)
                continue;
            /* items come sorted by (namespace, metric, object): a namespace's
             * items of one metric are adjacent, so only the last entry can match */
            size_t k = nv && strcmp(v[nv - 1].ns, items[i].ns) == 0 ? nv - 1 : nv;
            if (k == nv) {
                v[nv].ns = items[i].ns;
                v[nv++].q = items[i].quantity;
            } else
                tally__usage_qty_merge(&v[k].q, items[i].def.aggregation, &items[i].quantity);
        }
        for (size_t k = 0; k < nv; k++) { /* already in namespace order */
            w[k] = qty_weight(&v[k].q);
            if (strcmp(v[k].ns, ns) == 0)
                mine = k;
        }
        if (mine == SIZE_MAX && !(uplan && tally__plan_price_find(uplan, l.metric)))
            continue; /* neither ns's usage nor a priced metric: not ns's line */
        int64_t share = 0;
        if (mine != SIZE_MAX) {
            if ((rc = tally__pricing_allocate(l.amount_cents, w, nv, sh)) != 0)
                goto out;
            share = sh[mine];
        }
        const tally__usage_qty_t *q = mine != SIZE_MAX ? &v[mine].q : NULL;
        tally__metric_def_t def = {0};
        for (size_t i = 0; i < nitems; i++)
            if (strcmp(items[i].metric, l.metric) == 0) {
                def = items[i].def;
                break;
            }
        l.quantity = q ? tally__usage_qty_value(q) : 0;
        l.billable = q ? tally__pricing_billable(q, def.division_factor) : 0;
        l.amount_cents = share;
        l.status = (q && q->records) ? TALLY_PRICE_STATUS_ACTIVE : TALLY_PRICE_STATUS_NO_DATA;
        out->lines[keep++] = l;
    }
    out->n = keep;
out:
    free(v);
    free(w);
    free(sh);
    return rc;
}

int
tally__pricing_period(tally__store_t *store, const tally__catalog_t *cat,
                      const tally__plans_t *plans, const char *default_plan, const char *ns,
                      int64_t start_s, int64_t end_s, int64_t now_s, tally__priced_t *out)
{
    (void)now_s; /* every time the rules need comes from the records and the period */
    memset(out, 0, sizeof *out);
    copy_str(out->currency, sizeof out->currency, "USD");
    if (!store || start_s >= end_s || end_s > TALLY_TIME_MAX_S || start_s < -TALLY_TIME_MAX_S ||
        tally__time_month_start(start_s) != tally__time_month_start(end_s - 1))
        return TALLY_EINVAL;

    int rc;
    size_t cap = 0, nmq = 0;
    segs_t subs = {0}, addons = {0};
    tally__usage_item_t *items = NULL;
    size_t nitems = 0;
    mq_t *mq = NULL;
    char current[TALLY_PLANS_NAME_MAX + 1] = "";

    rc =
        tally__plans_current_name(store, default_plan ? default_plan : "", current, sizeof current);
    if (rc != 0 && rc != TALLY_ECORRUPT && rc != TALLY_ETOOBIG)
        goto fail;
    if (rc != 0)
        copy_str(current, sizeof current, default_plan);
    if ((rc = load_segs(store, "subscription", "plan", &subs)) != 0)
        goto fail;

    /* the plan that prices usage: in force at the end of the period */
    const tally__plan_t *uplan = NULL;
    int seen = 0;
    for (size_t i = 0; i < subs.n; i++) {
        if (seg_empty(&subs.v[i]))
            continue; /* never in force */
        if (!seen || subs.v[i].start < end_s)
            uplan = tally__plans_find(plans, subs.v[i].name);
        seen = 1;
    }
    if (!uplan)
        uplan = tally__plans_find(plans, current);
    if (!uplan && default_plan)
        uplan = tally__plans_find(plans, default_plan);

    int y, m, d, hh, mm, ss;
    tally__time_to_civil(start_s, &y, &m, &d, &hh, &mm, &ss);
    int dim = tally__time_days_in_month(y, m), diy = tally__time_is_leap_year(y) ? 366 : 365;

    if (!ns) {
        if ((rc = fee_lines(out, &cap, plans, &subs, current, start_s, end_s, dim, diy)) != 0)
            goto fail;
        if ((rc = load_segs(store, "addon", "addon", &addons)) != 0 ||
            (rc = addon_lines(out, &cap, plans, &addons, start_s, end_s)) != 0)
            goto fail;
    }

    /* usage per metric over the period's hours */
    tally__usage_window_t w;
    /* Usage is kept per hour: a running figure counts the hour under way
     * (events at 12:00:00.4 are in it when "now" is 12:00:00), as
     * usage_details does; a whole month ends at its own end. */
    int64_t uend = end_s, month_end = start_s + (int64_t)dim * 86400;
    if (uend < month_end && uend < INT64_MAX - 3600) {
        uend = uend - ((uend % 3600) + 3600) % 3600 + 3600;
        if (uend > month_end)
            uend = month_end;
    }
    int64_t to_ms = uend > INT64_MAX / 1000 ? INT64_MAX : uend * 1000;
    if (tally__usage_window(start_s * 1000, to_ms, &w) != 0) {
        rc = TALLY_EINVAL;
        goto fail;
    }
    /* always the whole tenant's usage: included quantities and tiers apply to
     * the tenant's total; a namespace gets its share of each charge below */
    if ((rc = tally__usage_details(store, cat, NULL, &w, &items, &nitems)) != 0)
        goto fail;
    size_t maxm = nitems + (uplan ? uplan->nprices : 0);
    if (!(mq = calloc(maxm ? maxm : 1, sizeof *mq))) { /* never NULL below, even when empty */
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nitems; i++) {
        mq_t *x = mq_find(mq, nmq, items[i].metric);
        if (!x) {
            x = &mq[nmq++];
            x->def = items[i].def;
            x->q = items[i].quantity;
        } else
            tally__usage_qty_merge(&x->q, x->def.aggregation, &items[i].quantity);
    }
    /* the plan's metrics in plan order, then the others with usage in label order */
    for (size_t i = 0; uplan && i < uplan->nprices; i++) {
        const tally__plan_price_t *pr = &uplan->prices[i];
        mq_t *x = mq_find(mq, nmq, pr->metric);
        tally__metric_def_t tmp;
        const tally__metric_def_t *def =
            x ? &x->def : tally__catalog_lookup_or_default(cat, pr->metric, &tmp);
        if ((rc = metric_line(out, &cap, def, x ? &x->q : NULL, pr, start_s, end_s)) != 0)
            goto fail;
    }
    for (size_t i = 0; i < nmq; i++) {
        if (uplan && tally__plan_price_find(uplan, mq[i].def.metric))
            continue;
        if ((rc = metric_line(out, &cap, &mq[i].def, &mq[i].q, NULL, start_s, end_s)) != 0)
            goto fail;
    }

    if (ns && (rc = namespace_shares(out, items, nitems, ns, uplan)) != 0)
        goto fail;
    for (size_t i = 0; i < out->n; i++)
        out->subtotal_cents = sat_add(out->subtotal_cents, out->lines[i].amount_cents);
    if (!ns) {
        if ((rc = tally__pricing_coupons_load(store, &out->coupons, &out->ncoupons)) != 0)
            goto fail;
        out->discount_cents =
            tally__pricing_discount(out->coupons, out->ncoupons, out->subtotal_cents);
    }
    out->total_cents = out->subtotal_cents - out->discount_cents;
    rc = 0;
    goto done;
fail:
    tally__priced_free(out);
done:
    free(mq);
    tally__usage_items_free(items);
    free(addons.v);
    free(subs.v);
    return rc;
}

void
tally__priced_free(tally__priced_t *p)
{
    if (!p)
        return;
    free(p->lines);
    free(p->coupons);
    char cur[sizeof p->currency];
    memcpy(cur, p->currency, sizeof cur);
    memset(p, 0, sizeof *p);
    memcpy(p->currency, cur, sizeof cur);
}

int64_t
tally__pricing_month_end(int64_t month_s, int64_t now_s)
{
    int64_t next = tally__time_next_month(month_s);
    if (next <= now_s)
        return next;
    return now_s > month_s ? now_s : month_s + 1;
}

/* ---- the months of monthly_usage ----------------------------------------------------- */

static int
min_period_cb(void *ctx, const char *series, size_t series_len, int64_t period_s,
              const tally__rollup_t *r)
{
    (void)series;
    (void)series_len;
    (void)r;
    int64_t *min = ctx;
    if (period_s < *min)
        *min = period_s;
    return 0;
}

int
tally__pricing_first_month(tally__store_t *store, const char *ns, int64_t now_s, int64_t *out)
{
    int64_t cur = tally__time_month_start(now_s), first = cur;
    int rc = tally__store_scan(store, TALLY_STORE_MONTHLY, ns, ns ? strlen(ns) : 0, 0,
                               tally__time_next_month(cur), min_period_cb, &first);
    if (rc)
        return rc;
    if (!ns) {
        segs_t subs;
        if ((rc = load_segs(store, "subscription", "plan", &subs)) != 0)
            return rc;
        if (subs.n && subs.v[0].start != INT64_MIN && subs.v[0].start < first)
            first = subs.v[0].start;
        free(subs.v);
    }
    *out = tally__time_month_start(first);
    return 0;
}
