/* usage.c — usage reports over the hourly rollups: items, breakdowns, summaries (usage.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"
#include "strtab.h"
#include "timeutil.h"
#include "usage.h"

#define HOUR_S 3600
#define TWO53 9007199254740992.0

/* ==== windows and scope ===================================================== */

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b < 0) ? q - 1 : q;
}

int
tally__usage_window(int64_t from_ms, int64_t to_ms, tally__usage_window_t *out)
{
    if (!out || from_ms >= to_ms)
        return TALLY_EINVAL;
    /* Bound the inputs first so the arithmetic below cannot overflow. */
    if (from_ms < TALLY_TIME_RFC3339_MIN_S * 1000 || to_ms > (TALLY_TIME_RFC3339_MAX_S + 1) * 1000)
        return TALLY_EINVAL;
    int64_t from_s = floor_div(from_ms, 1000);
    int64_t to_s = -floor_div(-to_ms, 1000); /* ceil: a partial second still overlaps */
    int64_t wf = tally__time_hour_start(from_s);
    int64_t wt = tally__time_hour_start(to_s + HOUR_S - 1); /* hour_ceil */
    /* Both ends must be expressible as RFC 3339 text (years 0000..9999). */
    if (wf < TALLY_TIME_RFC3339_MIN_S || wt > TALLY_TIME_RFC3339_MAX_S || wf >= wt)
        return TALLY_EINVAL;
    out->from_s = wf;
    out->to_s = wt;
    return 0;
}

const char *
tally__usage_scope(const char *path_ns)
{
    if (!path_ns || strcmp(path_ns, TALLY_USAGE_ALL_NS) == 0)
        return NULL;
    return path_ns;
}

int
tally__usage_ns_allowed(const char *path_ns, const char *ns)
{
    if (!path_ns || !ns)
        return 0;
    return strcmp(path_ns, TALLY_USAGE_ALL_NS) == 0 || strcmp(path_ns, ns) == 0;
}

/* ==== quantities ============================================================= */

static void
qty_add_int(tally__usage_qty_t *q, int64_t x)
{
    /* Past int64 the total keeps counting in the double part, like rollups
     * do, and is marked inexact. */
    int64_t sum;
    if (__builtin_add_overflow(q->i, x, &sum)) {
        q->f += (double)x;
        q->is_float = 1;
        q->int_overflow = 1;
    } else {
        q->i = sum;
    }
}

static int
exact_int(double v, int64_t *out)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < TWO53) {
        *out = (int64_t)v;
        return 1;
    }
    return 0;
}

static void
qty_add_double(tally__usage_qty_t *q, double v)
{
    int64_t x;
    if (exact_int(v, &x)) {
        qty_add_int(q, x);
    } else {
        q->f += v;
        q->is_float = 1;
    }
}

/* Set q to v, exactly when v is an integer. */
static void
qty_set_double(tally__usage_qty_t *q, double v)
{
    int64_t x;
    if (exact_int(v, &x)) {
        q->i = x;
        q->f = 0;
        q->is_float = 0;
    } else {
        q->i = 0;
        q->f = v;
        q->is_float = 1;
    }
    q->int_overflow = 0; /* one event's value: no sum behind it */
}

double
tally__usage_qty_value(const tally__usage_qty_t *q)
{
    return q->is_float ? (double)q->i + q->f : (double)q->i;
}

int
tally__usage_qty_as_int(const tally__usage_qty_t *q, int64_t *out)
{
    int64_t x;
    if (!q->is_float)
        x = q->i;
    else if (!exact_int((double)q->i + q->f, &x))
        return 0;
    if (out)
        *out = x;
    return 1;
}

void
tally__usage_qty_add_rollup(tally__usage_qty_t *q, tally__agg_t agg, const tally__rollup_t *r)
{
    switch (agg) {
    case TALLY_AGG_COUNT:
        if (r->count > (uint64_t)INT64_MAX) {
            q->f += (double)r->count;
            q->is_float = 1;
            q->int_overflow = 1;
        } else {
            qty_add_int(q, (int64_t)r->count);
        }
        break;
    case TALLY_AGG_MAX:
        if (q->records == 0 || r->max > tally__usage_qty_value(q))
            qty_set_double(q, r->max);
        break;
    case TALLY_AGG_LAST:
        /* Each hour's last value added up: a gauge of objects gives object-hours. */
        qty_add_double(q, r->last);
        break;
    case TALLY_AGG_SUM:
    default:
        qty_add_int(q, r->sum_i);
        if (!tally__rollup_sum_is_int(r)) {
            q->f += r->sum_f;
            q->is_float = 1;
        }
        if (tally__rollup_int_overflowed(r))
            q->int_overflow = 1;
        break;
    }
    q->records++;
}

void
tally__usage_qty_merge(tally__usage_qty_t *dst, tally__agg_t agg, const tally__usage_qty_t *src)
{
    if (src->records == 0)
        return;
    if (agg == TALLY_AGG_MAX) {
        if (dst->records == 0 || tally__usage_qty_value(src) > tally__usage_qty_value(dst)) {
            dst->i = src->i;
            dst->f = src->f;
            dst->is_float = src->is_float;
            dst->int_overflow = src->int_overflow;
        }
    } else {
        qty_add_int(dst, src->i);
        if (src->is_float) {
            dst->f += src->f;
            dst->is_float = 1;
        }
        dst->int_overflow |= src->int_overflow;
    }
    dst->records += src->records;
}

/* Shortest %.Ng (15..17 digits) that reads back as v. */
static void
format_double(double v, char *buf, size_t cap)
{
    if (!isfinite(v)) {
        snprintf(buf, cap, "0");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

char *
tally__usage_qty_format(const tally__usage_qty_t *q, char *buf, size_t cap)
{
    int64_t x;
    if (tally__usage_qty_as_int(q, &x))
        snprintf(buf, cap, "%lld", (long long)x);
    else
        format_double(tally__usage_qty_value(q), buf, cap);
    return buf;
}

/* Remove trailing fractional zeros (and a bare '.'); "-0" becomes "0". */
static void
trim_decimal(char *buf)
{
    char *dot = strchr(buf, '.');
    if (dot && !strpbrk(buf, "eE")) {
        char *e = buf + strlen(buf);
        while (e > dot + 1 && e[-1] == '0')
            *--e = '\0';
        if (e == dot + 1)
            *dot = '\0';
    }
    if (strcmp(buf, "-0") == 0)
        strcpy(buf, "0");
}

#define BILL_DIGITS 12
#define BILL_SCALE 1000000000000ULL /* 10^BILL_DIGITS */

char *
tally__usage_billable_format(const tally__usage_qty_t *raw, uint64_t factor, char *buf, size_t cap)
{
    int64_t x;
    if (factor == 0)
        factor = 1;
    if (cap == 0)
        return buf;
    if (tally__usage_qty_as_int(raw, &x)) {
        /* Exact: |x| * 10^12 < 2^63 * 2^40 fits in 128 bits; round half away from zero. */
        unsigned __int128 a = x < 0 ? (unsigned __int128)(-(x + 1)) + 1 : (unsigned __int128)x;
        unsigned __int128 q = (a * BILL_SCALE + factor / 2) / factor;
        unsigned long long ip = (unsigned long long)(q / BILL_SCALE);
        unsigned long long fp = (unsigned long long)(q % BILL_SCALE);
        snprintf(buf, cap, "%s%llu.%0*llu", x < 0 ? "-" : "", ip, BILL_DIGITS, fp);
    } else {
        double v = tally__usage_qty_value(raw) / (double)factor;
        if (!isfinite(v))
            snprintf(buf, cap, "0");
        else if (fabs(v) < 1e15)
            snprintf(buf, cap, "%.*f", BILL_DIGITS, v);
        else
            format_double(v, buf, cap);
    }
    trim_decimal(buf);
    return buf;
}

/* ==== scanning helpers ========================================================= */

/* The value of label `key` in an encoded label part; "" when absent. */
static void
label_value(const tally__series_t *s, const char *key, char *out, size_t cap)
{
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    size_t keylen = strlen(key);
    out[0] = '\0';
    while (tally__series_next_label(s->labels, s->labels_len, &pos, &k, &kl, &v, &vl)) {
        if (kl == keylen && memcmp(k, key, kl) == 0) {
            size_t n = vl < cap - 1 ? vl : cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return;
        }
    }
}

static void
copy_str(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A growable array of fixed-size elements. */
typedef struct vec {
    void *v;
    size_t n, cap, size;
} vec_t;

static void *
vec_push(vec_t *a)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        void *nv = realloc(a->v, nc * a->size);
        if (!nv)
            return NULL;
        a->v = nv;
        a->cap = nc;
    }
    void *e = (char *)a->v + a->n * a->size;
    memset(e, 0, a->size);
    a->n++;
    return e;
}

/* ==== usage details ============================================================ */

typedef struct details_ctx {
    const tally__catalog_t *cat;
    int monthly; /* the records being visited are monthly rollups */
    vec_t items; /* tally__usage_item_t, one per series (before merging) */
    /* series key -> item: the scan visits periods in order, so one
     * series' records are not adjacent */
    tally__strtab_t *seen;
    uint32_t *item_of; /* by strtab id */
    size_t cap_item_of;
} details_ctx_t;

static int
details_cb(void *vctx, const char *series, size_t slen, int64_t period_s, const tally__rollup_t *r)
{
    details_ctx_t *d = vctx;
    tally__usage_item_t *it;
    uint32_t id;
    if (slen > TALLY_SERIES_KEY_MAX)
        return TALLY_ECORRUPT;
    int added = tally__strtab_intern(d->seen, series, (uint32_t)slen, &id);
    if (added < 0)
        return added;
    if (!added) {
        it = (tally__usage_item_t *)d->items.v + d->item_of[id];
    } else {
        tally__series_t s;
        if (tally__series_parse(series, slen, &s) != 0)
            return TALLY_ECORRUPT;
        if (id >= d->cap_item_of) {
            size_t ncap = d->cap_item_of ? d->cap_item_of * 2 : 64;
            uint32_t *ni = realloc(d->item_of, ncap * sizeof *ni);
            if (!ni)
                return -ENOMEM;
            d->item_of = ni;
            d->cap_item_of = ncap;
        }
        d->item_of[id] = (uint32_t)d->items.n;
        if (!(it = vec_push(&d->items)))
            return -ENOMEM;
        copy_str(it->ns, sizeof it->ns, s.ns, s.ns_len);
        copy_str(it->metric, sizeof it->metric, s.metric, s.metric_len);
        label_value(&s, "object", it->object, sizeof it->object);
        const tally__metric_def_t *def =
            tally__catalog_lookup_or_default(d->cat, it->metric, &it->def);
        if (def != &it->def)
            it->def = *def;
        it->first_hour_s = period_s;
    }
    int64_t last_hour = period_s;
    if (d->monthly) {
        /* a whole month: a gauge totals the month's hourly lasts (last_sum) */
        tally__rollup_t m = *r;
        m.last = r->last_sum;
        tally__usage_qty_add_rollup(&it->quantity, it->def.aggregation, &m);
        last_hour = tally__time_next_month(period_s) - HOUR_S;
    } else {
        tally__usage_qty_add_rollup(&it->quantity, it->def.aggregation, r);
    }
    if (period_s < it->first_hour_s)
        it->first_hour_s = period_s;
    if (last_hour > it->last_hour_s || it->quantity.records == 1)
        it->last_hour_s = last_hour;
    return 0;
}

static int
item_cmp(const void *a, const void *b)
{
    const tally__usage_item_t *x = a, *y = b;
    int c = strcmp(x->ns, y->ns);
    if (!c)
        c = strcmp(x->metric, y->metric);
    if (!c)
        c = strcmp(x->object, y->object);
    return c;
}

int
tally__usage_details(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                     const tally__usage_window_t *w, tally__usage_item_t **out, size_t *n)
{
    details_ctx_t d = {.cat = cat, .items = {.size = sizeof(tally__usage_item_t)}};
    *out = NULL;
    *n = 0;
    if (tally__strtab_create(&d.seen) != 0)
        return -ENOMEM;
    /* Whole calendar months inside the window come from the monthly rollups
     * (one record per series and month instead of up to 744 hours); only the
     * partial months at either end are read hour by hour. */
    int64_t m1 = tally__time_month_start(w->from_s);
    if (m1 < w->from_s)
        m1 = tally__time_next_month(m1);
    int64_t m2 = tally__time_month_start(w->to_s);
    size_t nsl = ns ? strlen(ns) : 0;
    int rc;
    if (m1 < m2) {
        rc = tally__store_scan(store, TALLY_STORE_HOURLY, ns, nsl, w->from_s, m1, details_cb, &d);
        d.monthly = 1;
        if (rc == 0)
            rc = tally__store_scan(store, TALLY_STORE_MONTHLY, ns, nsl, m1, m2, details_cb, &d);
        d.monthly = 0;
        if (rc == 0)
            rc = tally__store_scan(store, TALLY_STORE_HOURLY, ns, nsl, m2, w->to_s, details_cb, &d);
    } else {
        rc = tally__store_scan(store, TALLY_STORE_HOURLY, ns, nsl, w->from_s, w->to_s, details_cb,
                               &d);
    }
    tally__strtab_destroy(d.seen);
    free(d.item_of);
    if (rc) {
        free(d.items.v);
        return rc;
    }
    tally__usage_item_t *v = d.items.v;
    size_t m = 0;
    if (d.items.n)
        qsort(v, d.items.n, sizeof *v, item_cmp);
    /* Fold the series of one (namespace, metric, object) into its first entry. */
    for (size_t i = 0; i < d.items.n; i++) {
        if (m > 0 && item_cmp(&v[m - 1], &v[i]) == 0) {
            tally__usage_item_t *dst = &v[m - 1];
            tally__usage_qty_merge(&dst->quantity, dst->def.aggregation, &v[i].quantity);
            if (v[i].first_hour_s < dst->first_hour_s)
                dst->first_hour_s = v[i].first_hour_s;
            if (v[i].last_hour_s > dst->last_hour_s)
                dst->last_hour_s = v[i].last_hour_s;
        } else {
            if (m != i)
                v[m] = v[i];
            m++;
        }
    }
    if (m == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = m;
    return 0;
}

void
tally__usage_items_free(tally__usage_item_t *items)
{
    free(items);
}

/* ==== hourly breakdown ============================================================ */

typedef struct hourly_ctx {
    const char *metric;
    size_t metric_len;
    const char *object;
    tally__agg_t agg;
    vec_t hours; /* tally__usage_hour_t, one per record (before merging) */
} hourly_ctx_t;

static int
hourly_cb(void *vctx, const char *series, size_t slen, int64_t period_s, const tally__rollup_t *r)
{
    hourly_ctx_t *h = vctx;
    tally__series_t s;
    char object[TALLY_MAX_LABEL_VALUE_LEN + 1];
    if (tally__series_parse(series, slen, &s) != 0)
        return TALLY_ECORRUPT;
    if (s.metric_len != h->metric_len || memcmp(s.metric, h->metric, s.metric_len) != 0)
        return 0;
    label_value(&s, "object", object, sizeof object);
    if (strcmp(object, h->object) != 0)
        return 0;
    tally__usage_hour_t *e = vec_push(&h->hours);
    if (!e)
        return -ENOMEM;
    e->hour_s = period_s;
    label_value(&s, "deployment", e->deployment, sizeof e->deployment);
    label_value(&s, "container", e->container, sizeof e->container);
    tally__usage_qty_add_rollup(&e->quantity, h->agg, r);
    return 0;
}

static int
hour_cmp(const void *a, const void *b)
{
    const tally__usage_hour_t *x = a, *y = b;
    if (x->hour_s != y->hour_s)
        return x->hour_s < y->hour_s ? -1 : 1;
    int c = strcmp(x->deployment, y->deployment);
    return c ? c : strcmp(x->container, y->container);
}

int
tally__usage_hourly(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                    const char *metric, const char *object, const tally__usage_window_t *w,
                    tally__usage_hour_t **out, size_t *n)
{
    tally__metric_def_t tmp;
    hourly_ctx_t h = {.metric = metric,
                      .metric_len = strlen(metric),
                      .object = object,
                      .agg = tally__catalog_lookup_or_default(cat, metric, &tmp)->aggregation,
                      .hours = {.size = sizeof(tally__usage_hour_t)}};
    *out = NULL;
    *n = 0;
    int rc = tally__store_scan(store, TALLY_STORE_HOURLY, ns, strlen(ns), w->from_s, w->to_s,
                               hourly_cb, &h);
    if (rc) {
        free(h.hours.v);
        return rc;
    }
    tally__usage_hour_t *v = h.hours.v;
    size_t m = 0;
    if (h.hours.n)
        qsort(v, h.hours.n, sizeof *v, hour_cmp);
    for (size_t i = 0; i < h.hours.n; i++) {
        if (m > 0 && hour_cmp(&v[m - 1], &v[i]) == 0) {
            tally__usage_qty_merge(&v[m - 1].quantity, h.agg, &v[i].quantity);
        } else {
            if (m != i)
                v[m] = v[i];
            m++;
        }
    }
    if (m == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = m;
    return 0;
}

void
tally__usage_hours_free(tally__usage_hour_t *hours)
{
    free(hours);
}

/* ==== summary per usage type ======================================================= */

static int
item_ptr_metric_cmp(const void *a, const void *b)
{
    const tally__usage_item_t *x = *(const tally__usage_item_t *const *)a;
    const tally__usage_item_t *y = *(const tally__usage_item_t *const *)b;
    return strcmp(x->metric, y->metric);
}

/* A metric's total over every item, then ordered by (usage type, metric). */
typedef struct metric_total {
    const tally__usage_item_t *first; /* carries metric and definition */
    tally__usage_qty_t qty;
} metric_total_t;

static int
total_cmp(const void *a, const void *b)
{
    const metric_total_t *x = a, *y = b;
    int c = strcmp(x->first->def.usage_type, y->first->def.usage_type);
    return c ? c : strcmp(x->first->metric, y->first->metric);
}

int
tally__usage_summary(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                     const tally__usage_window_t *w, tally__usage_summary_t **out, size_t *n)
{
    tally__usage_item_t *items = NULL;
    const tally__usage_item_t **byp = NULL;
    metric_total_t *tot = NULL;
    tally__usage_summary_t *sum = NULL;
    size_t ni = 0, nt = 0, ns_out = 0;
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = tally__usage_details(store, cat, ns, w, &items, &ni)) != 0)
        goto fail;
    if (ni == 0)
        return 0;
    rc = -ENOMEM;
    if (!(byp = malloc(ni * sizeof *byp)) || !(tot = calloc(ni, sizeof *tot)) ||
        !(sum = calloc(ni, sizeof *sum)))
        goto fail;
    for (size_t i = 0; i < ni; i++)
        byp[i] = &items[i];
    qsort(byp, ni, sizeof *byp, item_ptr_metric_cmp);
    /* Per metric: fold its items (of every namespace and object) by its aggregation. */
    for (size_t i = 0; i < ni; i++) {
        if (nt == 0 || strcmp(tot[nt - 1].first->metric, byp[i]->metric) != 0)
            tot[nt++].first = byp[i];
        tally__usage_qty_merge(&tot[nt - 1].qty, byp[i]->def.aggregation, &byp[i]->quantity);
    }
    qsort(tot, nt, sizeof *tot, total_cmp);
    /* Per usage type: add the metric totals; track whether one factor covers them all. */
    uint64_t factor = 0;
    int same_factor = 1;
    for (size_t i = 0; i <= nt; i++) {
        int boundary = i == nt || ns_out == 0 ||
                       strcmp(sum[ns_out - 1].usage_type, tot[i].first->def.usage_type) != 0;
        if (boundary && ns_out > 0) {
            tally__usage_summary_t *s = &sum[ns_out - 1];
            tally__usage_qty_format(&s->raw, s->raw_text, sizeof s->raw_text);
            if (same_factor) {
                tally__usage_billable_format(&s->raw, factor, s->billable_text,
                                             sizeof s->billable_text);
            } else {
                tally__usage_qty_t b = {.f = s->billable, .is_float = 1, .records = 1};
                tally__usage_billable_format(&b, 1, s->billable_text, sizeof s->billable_text);
            }
        }
        if (i == nt)
            break;
        const tally__metric_def_t *def = &tot[i].first->def;
        uint64_t f = def->division_factor ? def->division_factor : 1;
        if (boundary) {
            tally__usage_summary_t *s = &sum[ns_out++];
            snprintf(s->usage_type, sizeof s->usage_type, "%s", def->usage_type);
            snprintf(s->unit, sizeof s->unit, "%s", def->unit);
            snprintf(s->billable_unit, sizeof s->billable_unit, "%s", def->billable_unit);
            factor = f;
            same_factor = 1;
        } else if (f != factor) {
            same_factor = 0;
        }
        tally__usage_summary_t *s = &sum[ns_out - 1];
        /* Adding different metrics' totals: plain addition whatever their aggregation. */
        tally__usage_qty_merge(&s->raw, TALLY_AGG_SUM, &tot[i].qty);
        s->billable += tally__usage_qty_value(&tot[i].qty) / (double)f;
    }
    free(tot);
    free(byp);
    tally__usage_items_free(items);
    *out = sum;
    *n = ns_out;
    return 0;
fail:
    free(sum);
    free(tot);
    free(byp);
    tally__usage_items_free(items);
    return rc;
}

void
tally__usage_summaries_free(tally__usage_summary_t *s)
{
    free(s);
}
