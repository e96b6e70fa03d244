/* usage.c — usage reports over the hourly rollups: items, breakdowns, summaries (usage.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"
#include "selector.h"
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

int
tally__usage_details(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                     const tally__usage_window_t *w, tally__usage_item_t **out, size_t *n)
{
    /* the streaming report, collected (callers that want every item at once) */
    tally__usage_query_t q = {.ns = ns, .w = *w};
    tally__usage_iter_t *it;
    vec_t items = {.size = sizeof(tally__usage_item_t)};
    const tally__usage_item_t *e = NULL;
    *out = NULL;
    *n = 0;
    int rc = tally__usage_iter_open(store, cat, &q, &it);
    if (rc)
        return rc;
    while ((rc = tally__usage_iter_next(it, &e)) == 1 && e) {
        tally__usage_item_t *d = vec_push(&items);
        if (!d) {
            rc = -ENOMEM;
            break;
        }
        *d = *e;
    }
    tally__usage_iter_close(it);
    if (rc) {
        free(items.v);
        return rc;
    }
    *out = items.v;
    *n = items.n;
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

/* A metric's total over every item, then ordered by (usage type, metric). */
typedef struct metric_total {
    tally__usage_item_t first; /* carries metric and definition */
    tally__usage_qty_t qty;
} metric_total_t;

static int
total_cmp(const void *a, const void *b)
{
    const metric_total_t *x = a, *y = b;
    int c = strcmp(x->first.def.usage_type, y->first.def.usage_type);
    return c ? c : strcmp(x->first.metric, y->first.metric);
}

int
tally__usage_summary(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                     const tally__usage_window_t *w, tally__usage_summary_t **out, size_t *n)
{
    /* Streamed: the items go by one at a time and only the per-metric
     * totals are kept (as many as there are metrics, not series). */
    tally__usage_query_t q = {.ns = ns, .w = *w};
    tally__usage_iter_t *it = NULL;
    const tally__usage_item_t *e = NULL;
    metric_total_t *tot = NULL;
    tally__usage_summary_t *sum = NULL;
    size_t nt = 0, cap = 0, ns_out = 0, last = 0;
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = tally__usage_iter_open(store, cat, &q, &it)) != 0)
        return rc;
    while ((rc = tally__usage_iter_next(it, &e)) == 1 && e) {
        /* items come by (namespace, metric): the last metric seen is the usual hit */
        size_t k = nt;
        if (nt && strcmp(tot[last].first.metric, e->metric) == 0) {
            k = last;
        } else {
            for (size_t i2 = 0; i2 < nt; i2++)
                if (strcmp(tot[i2].first.metric, e->metric) == 0) {
                    k = i2;
                    break;
                }
        }
        if (k == nt) {
            if (nt == cap) {
                size_t nc = cap ? cap * 2 : 16;
                metric_total_t *nv = realloc(tot, nc * sizeof *nv);
                if (!nv) {
                    rc = -ENOMEM;
                    break;
                }
                tot = nv;
                cap = nc;
            }
            memset(&tot[nt], 0, sizeof tot[nt]);
            tot[nt].first = *e;
            nt++;
        }
        last = k;
        tally__usage_qty_merge(&tot[k].qty, e->def.aggregation, &e->quantity);
    }
    tally__usage_iter_close(it);
    if (rc)
        goto fail;
    if (nt == 0) {
        free(tot);
        return 0;
    }
    rc = -ENOMEM;
    if (!(sum = calloc(nt, sizeof *sum)))
        goto fail;
    qsort(tot, nt, sizeof *tot, total_cmp);
    /* Per usage type: add the metric totals; track whether one factor covers them all. */
    uint64_t factor = 0;
    int same_factor = 1;
    for (size_t i = 0; i <= nt; i++) {
        int boundary = i == nt || ns_out == 0 ||
                       strcmp(sum[ns_out - 1].usage_type, tot[i].first.def.usage_type) != 0;
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
        const tally__metric_def_t *def = &tot[i].first.def;
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
    *out = sum;
    *n = ns_out;
    return 0;
fail:
    free(sum);
    free(tot);
    return rc;
}

void
tally__usage_summaries_free(tally__usage_summary_t *s)
{
    free(s);
}

/* ==== streaming reports (tally__usage_iter_*, tally__usage_groups) ===============
 *
 * Items come out in (namespace, metric, object) order from bounded passes
 * over the series keys, never from a map of every series. A (namespace,
 * metric) "group" is the run of series keys with the prefix ns 0 metric 0;
 * its series sort by their labels, which are sorted by key. When no series
 * of the group has a label whose key sorts before "object" (the common
 * case), the group's keys are:
 *     ns 0 metric 0                      no labels          -> object ""
 *     ns 0 metric 0 object 1f v ...      object v, in v order (v "" first)
 *     ns 0 metric 0 k 1f ...  (k > "object")  no object     -> object ""
 * so a pass reads the next CHUNK_KEYS keys of the middle run and the items
 * come out in order ("fast" group); the object "" item (first and last
 * runs) is folded before the others. Otherwise ("slow" group) each pass
 * reads the whole group twice: once to pick the PASS_ITEMS smallest objects
 * after the last one emitted, once to fold their series. Both keep at most
 * PASS_ITEMS items and CHUNK_KEYS series ids in memory; every chunk of keys
 * and every join of records is its own short read snapshot. */

#define CHUNK_KEYS 4096
#define PASS_ITEMS 4096
#define OBJ_CAP (TALLY_MAX_LABEL_VALUE_LEN + 1)

/* A series waiting for its records: its id and the item it folds into. */
typedef struct pend {
    uint32_t sid;
    uint32_t item;
    tally__agg_t agg;
    tally__usage_qty_t q; /* this series' records, by the item's aggregation */
    int64_t first_hour_s, last_hour_s;
} pend_t;

struct tally__usage_iter {
    tally__store_t *store;
    const tally__catalog_t *cat;
    tally__usage_query_t q;
    /* the scope's key prefix: "", "ns 0" or "ns 0 metric 0" */
    char scope[TALLY_MAX_NS_LEN + TALLY_MAX_METRIC_LEN + 2];
    size_t scope_len;
    /* where the next group is looked for (strictly after); none at first */
    char gseek[TALLY_SERIES_KEY_MAX + 2];
    size_t gseek_len;
    int has_gseek;
    /* the current group */
    int in_group, fast;
    char gprefix[TALLY_MAX_NS_LEN + TALLY_MAX_METRIC_LEN + 2];
    size_t gprefix_len;
    char ns[TALLY_MAX_NS_LEN + 1], metric[TALLY_MAX_METRIC_LEN + 1];
    tally__metric_def_t def;
    int empty_done;  /* the object "" item of a fast group is done */
    int group_done;  /* no objects left in the group */
    int has_after;   /* objects <= after are done */
    char after[OBJ_CAP];
    /* fast groups: where the object run resumes (strictly after) */
    char fseek[TALLY_SERIES_KEY_MAX + 2];
    size_t fseek_len;
    /* the pass's items and the position of the next one out */
    tally__usage_item_t *items;
    size_t nitems, pos;
    /* series waiting for their records */
    pend_t *pend;
    uint32_t *sids;
    size_t npend;
    /* slow groups: candidate objects (OBJ_CAP bytes each) */
    char (*cand)[OBJ_CAP];
    size_t ncand;
    int done;
    int err;
};

/* Split a (namespace, metric, labels) key. */
static int
key_parse(const char *key, size_t len, tally__series_t *s)
{
    if (len > TALLY_SERIES_KEY_MAX)
        return TALLY_ECORRUPT;
    return tally__series_parse(key, len, s) != 0 ? TALLY_ECORRUPT : 0;
}

/* The selector's view of a series' labels. */
typedef struct sel_ctx {
    const tally__series_t *s;
    char buf[OBJ_CAP];
} sel_ctx_t;

static const char *
sel_get(void *vctx, const char *key)
{
    sel_ctx_t *c = vctx;
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    size_t keylen = strlen(key);
    while (tally__series_next_label(c->s->labels, c->s->labels_len, &pos, &k, &kl, &v, &vl)) {
        if (kl == keylen && memcmp(k, key, kl) == 0) {
            copy_str(c->buf, sizeof c->buf, v, vl);
            return c->buf;
        }
    }
    return NULL;
}

static int
series_selected(const tally__usage_iter_t *it, const tally__series_t *s)
{
    if (!it->q.selector)
        return 1;
    sel_ctx_t c = {.s = s};
    return tally__selector_match(it->q.selector, sel_get, &c);
}

/* ---- joining records ---- */

static int
pend_cmp(const void *a, const void *b)
{
    uint32_t x = ((const pend_t *)a)->sid, y = ((const pend_t *)b)->sid;
    return x < y ? -1 : x > y;
}

typedef struct join_ctx {
    tally__usage_iter_t *it;
    int monthly;
} join_ctx_t;

static int
join_cb(void *vctx, size_t idx, int64_t period_s, const tally__rollup_t *r)
{
    join_ctx_t *j = vctx;
    pend_t *p = &j->it->pend[idx];
    int64_t last_hour = period_s;
    if (j->monthly) {
        /* a whole month: a gauge totals the month's hourly lasts (last_sum) */
        tally__rollup_t m = *r;
        m.last = r->last_sum;
        tally__usage_qty_add_rollup(&p->q, p->agg, &m);
        last_hour = tally__time_next_month(period_s) - HOUR_S;
    } else {
        tally__usage_qty_add_rollup(&p->q, p->agg, r);
    }
    if (p->q.records == 1 || period_s < p->first_hour_s)
        p->first_hour_s = period_s;
    if (p->q.records == 1 || last_hour > p->last_hour_s)
        p->last_hour_s = last_hour;
    return 0;
}

/* What a joined series is folded into: items[] of the pass, or a group. */
typedef void (*fold_fn)(tally__usage_iter_t *it, const pend_t *p);

static void
fold_item(tally__usage_iter_t *it, const pend_t *p)
{
    tally__usage_item_t *dst = &it->items[p->item];
    if (dst->quantity.records == 0 || p->first_hour_s < dst->first_hour_s)
        dst->first_hour_s = p->first_hour_s;
    if (dst->quantity.records == 0 || p->last_hour_s > dst->last_hour_s)
        dst->last_hour_s = p->last_hour_s;
    tally__usage_qty_merge(&dst->quantity, dst->def.aggregation, &p->q);
}

/* Read the records of the pending series over the window, in one snapshot,
 * and fold each series with records. Whole months come from the monthly
 * rollups (one record per series and month instead of up to 744 hours). */
static int
join_pending(tally__usage_iter_t *it, fold_fn fold)
{
    if (it->npend == 0)
        return 0;
    qsort(it->pend, it->npend, sizeof *it->pend, pend_cmp);
    size_t m = it->npend;
    for (size_t i = 0; i < m; i++)
        it->sids[i] = it->pend[i].sid;
    const tally__usage_window_t *w = &it->q.w;
    int64_t m1 = tally__time_month_start(w->from_s);
    if (m1 < w->from_s)
        m1 = tally__time_next_month(m1);
    int64_t m2 = tally__time_month_start(w->to_s);
    tally__store_rd_t *rd;
    int rc = tally__store_rd_begin(it->store, &rd);
    if (rc)
        return rc;
    join_ctx_t j = {.it = it};
    if (m1 < m2) {
        rc = tally__store_rd_records(rd, TALLY_STORE_HOURLY, it->sids, m, w->from_s, m1, join_cb,
                                     &j);
        j.monthly = 1;
        if (rc == 0)
            rc = tally__store_rd_records(rd, TALLY_STORE_MONTHLY, it->sids, m, m1, m2, join_cb, &j);
        j.monthly = 0;
        if (rc == 0)
            rc = tally__store_rd_records(rd, TALLY_STORE_HOURLY, it->sids, m, m2, w->to_s, join_cb,
                                         &j);
    } else {
        rc = tally__store_rd_records(rd, TALLY_STORE_HOURLY, it->sids, m, w->from_s, w->to_s,
                                     join_cb, &j);
    }
    tally__store_rd_end(rd);
    if (rc)
        return rc;
    for (size_t i = 0; i < m; i++)
        if (it->pend[i].q.records)
            fold(it, &it->pend[i]);
    it->npend = 0;
    return 0;
}

static void
pend_add(tally__usage_iter_t *it, uint32_t sid, uint32_t item)
{
    pend_t *p = &it->pend[it->npend++];
    memset(p, 0, sizeof *p);
    p->sid = sid;
    p->item = item;
    p->agg = it->def.aggregation;
}

/* ---- walking keys in chunks ---- */

/* A visitor of series keys: 0 goes on, 1 stops before this key (it is not
 * consumed: the walk resumes at it), <0 fails. */
typedef int (*visit_fn)(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
                        const tally__series_t *s);

typedef struct walk {
    tally__usage_iter_t *it;
    visit_fn visit;
    char *seek;
    size_t *seek_len;
    int stopped;
} walk_t;

static int
walk_cb(void *vctx, const char *key, size_t len, uint32_t sid)
{
    walk_t *w = vctx;
    tally__series_t s;
    int rc = key_parse(key, len, &s);
    if (rc)
        return rc;
    rc = w->visit(w->it, key, len, sid, &s);
    if (rc == 1) {
        w->stopped = 1;
        return 1;
    }
    if (rc)
        return rc;
    memcpy(w->seek, key, len);
    *w->seek_len = len;
    return 0;
}

/* One chunk of a walk: at most CHUNK_KEYS keys of prefix strictly after
 * seek (seek_len 0: from the prefix's first key), in one snapshot; seek
 * becomes the last key consumed.
 * @return 1 when keys may be left, 0 when the prefix is done or the visitor
 *         stopped, <0 error. */
static int
walk_chunk(tally__usage_iter_t *it, const char *prefix, size_t plen, char *seek, size_t *seek_len,
           visit_fn visit)
{
    tally__store_rd_t *rd;
    int more = 0, rc = tally__store_rd_begin(it->store, &rd);
    if (rc)
        return rc;
    walk_t w = {.it = it, .visit = visit, .seek = seek, .seek_len = seek_len};
    rc = tally__store_rd_series(rd, prefix, plen, *seek_len ? seek : NULL, *seek_len, CHUNK_KEYS,
                                walk_cb, &w, &more);
    tally__store_rd_end(rd);
    if (rc == 1 && w.stopped)
        return 0;
    if (rc)
        return rc;
    return more;
}

/* ---- groups ---- */

static void
item_init(tally__usage_iter_t *it, tally__usage_item_t *e, const char *object)
{
    /* per item: plain copies (snprintf cost more than the rest of an item) */
    memcpy(e->ns, it->ns, sizeof e->ns);
    memcpy(e->metric, it->metric, sizeof e->metric);
    copy_str(e->object, sizeof e->object, object, strlen(object));
    e->def = it->def;
    memset(&e->quantity, 0, sizeof e->quantity);
    e->first_hour_s = e->last_hour_s = 0;
}

static void
obj_of(const tally__series_t *s, char *out)
{
    label_value(s, "object", out, OBJ_CAP);
}

/* How a series' first label key compares with "object" (>0 without labels). */
static int
first_key_cmp_object(const tally__series_t *s)
{
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    if (!tally__series_next_label(s->labels, s->labels_len, &pos, &k, &kl, &v, &vl))
        return 1;
    size_t n = kl < 6 ? kl : 6;
    int c = memcmp(k, "object", n);
    if (c == 0)
        c = kl < 6 ? -1 : (kl > 6 ? 1 : 0);
    return c;
}

/* probe: the group's first series with labels decides fast or slow */
static int
v_probe(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
        const tally__series_t *s)
{
    (void)key;
    (void)len;
    (void)sid;
    if (s->labels_len == 0)
        return 0;
    it->fast = first_key_cmp_object(s) >= 0;
    return 1;
}

/* ---- fast groups ---- */

/* the exact key ns 0 metric 0: a series without labels */
static int
v_exact(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
        const tally__series_t *s)
{
    (void)key;
    if (len != it->gprefix_len)
        return 1;
    if (series_selected(it, s))
        pend_add(it, sid, 0);
    return 1; /* one key at most */
}

/* "object" 1f with an empty value: the start of the object run */
static int
v_empty_obj(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
            const tally__series_t *s)
{
    (void)key;
    (void)len;
    char obj[OBJ_CAP];
    obj_of(s, obj);
    if (obj[0])
        return 1; /* the non-empty objects begin */
    if (series_selected(it, s))
        pend_add(it, sid, 0);
    return 0;
}

/* keys after the object run: no object label */
static int
v_trailing(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
           const tally__series_t *s)
{
    (void)key;
    (void)len;
    if (series_selected(it, s))
        pend_add(it, sid, 0);
    return 0;
}

/* Walk one run of keys to its end, folding its series into items[0]. */
static int
fold_run(tally__usage_iter_t *it, const char *prefix, size_t plen, const char *start,
         size_t start_len, visit_fn visit)
{
    char seek[TALLY_SERIES_KEY_MAX + 2];
    size_t seek_len = start_len;
    memcpy(seek, start, start_len);
    for (;;) {
        int rc = walk_chunk(it, prefix, plen, seek, &seek_len, visit);
        if (rc < 0)
            return rc;
        int r2 = join_pending(it, fold_item);
        if (r2)
            return r2;
        if (rc == 0)
            return 0;
    }
}

/* The object "" item of a fast group (items[0]); see the layout above. */
static int
fast_empty_item(tally__usage_iter_t *it)
{
    char pfx[sizeof it->gprefix + 8], start[sizeof it->gprefix + 8];
    size_t g = it->gprefix_len;
    int rc;
    item_init(it, &it->items[0], "");
    it->nitems = 1;
    if ((rc = fold_run(it, it->gprefix, g, "", 0, v_exact)) != 0)
        return rc;
    memcpy(pfx, it->gprefix, g);
    /* a key prefix: bytes, not a string */
    memcpy(pfx + g, "object\x1f", 7); // NOLINT(bugprone-not-null-terminated-result)
    if ((rc = fold_run(it, pfx, g + 7, "", 0, v_empty_obj)) != 0)
        return rc;
    memcpy(start, it->gprefix, g);
    /* past every "object" 1f key; key bytes, not a string */
    memcpy(start + g, "object\x20", 7); // NOLINT(bugprone-not-null-terminated-result)
    return fold_run(it, it->gprefix, g, start, g + 7, v_trailing);
}

/* The object run: series in object order; stop before the object that
 * would be item PASS_ITEMS + 1. */
static int
v_fast(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
       const tally__series_t *s)
{
    (void)key;
    (void)len;
    char obj[OBJ_CAP];
    obj_of(s, obj);
    if (!obj[0])
        return 0; /* part of the object "" item */
    if (it->nitems == 0 || strcmp(it->items[it->nitems - 1].object, obj) != 0) {
        if (it->nitems == PASS_ITEMS)
            return 1;
        item_init(it, &it->items[it->nitems++], obj);
    }
    if (series_selected(it, s))
        pend_add(it, sid, (uint32_t)(it->nitems - 1));
    return 0;
}

static int
fast_pass(tally__usage_iter_t *it)
{
    char pfx[sizeof it->gprefix + 8];
    size_t g = it->gprefix_len;
    memcpy(pfx, it->gprefix, g);
    /* a key prefix: bytes, not a string */
    memcpy(pfx + g, "object\x1f", 7); // NOLINT(bugprone-not-null-terminated-result)
    it->nitems = 0;
    for (;;) {
        int rc = walk_chunk(it, pfx, g + 7, it->fseek, &it->fseek_len, v_fast);
        if (rc < 0)
            return rc;
        int r2 = join_pending(it, fold_item);
        if (r2)
            return r2;
        if (rc == 0 && it->nitems < PASS_ITEMS) {
            /* the walk ran out of keys (not stopped at the item cap) */
            it->group_done = 1;
            return 0;
        }
        if (it->nitems == PASS_ITEMS && rc == 0)
            return 0; /* stopped before the next object: resume there */
    }
}

/* ---- slow groups ---- */

static int
cand_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Keep the PASS_ITEMS smallest distinct candidates. */
static void
cand_compact(tally__usage_iter_t *it)
{
    qsort(it->cand, it->ncand, OBJ_CAP, cand_cmp);
    size_t m = 0;
    for (size_t i = 0; i < it->ncand; i++)
        if (m == 0 || strcmp(it->cand[m - 1], it->cand[i]) != 0)
            memmove(it->cand[m++], it->cand[i], OBJ_CAP);
    it->ncand = m < PASS_ITEMS ? m : PASS_ITEMS;
}

static int
v_select(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
         const tally__series_t *s)
{
    (void)key;
    (void)len;
    (void)sid;
    char obj[OBJ_CAP];
    if (!series_selected(it, s))
        return 0;
    obj_of(s, obj);
    if (it->has_after && strcmp(obj, it->after) <= 0)
        return 0;
    /* when full, candidates beyond the current PASS_ITEMS-th cannot make it */
    if (it->ncand >= PASS_ITEMS && strcmp(obj, it->cand[PASS_ITEMS - 1]) >= 0)
        return 0;
    if (it->ncand == 2 * PASS_ITEMS)
        cand_compact(it);
    if (it->ncand >= PASS_ITEMS && strcmp(obj, it->cand[PASS_ITEMS - 1]) >= 0)
        return 0;
    memcpy(it->cand[it->ncand++], obj, OBJ_CAP);
    return 0;
}

static int
v_collect(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
          const tally__series_t *s)
{
    (void)key;
    (void)len;
    char obj[OBJ_CAP];
    if (!series_selected(it, s))
        return 0;
    obj_of(s, obj);
    const char (*hit)[OBJ_CAP] = bsearch(obj, it->cand, it->ncand, OBJ_CAP, cand_cmp);
    if (hit)
        pend_add(it, sid, (uint32_t)(hit - it->cand));
    return 0;
}

static int
slow_pass(tally__usage_iter_t *it)
{
    char seek[TALLY_SERIES_KEY_MAX + 2];
    size_t seek_len = 0;
    int rc;
    it->ncand = 0;
    /* (1) the next PASS_ITEMS objects */
    do {
        if ((rc = walk_chunk(it, it->gprefix, it->gprefix_len, seek, &seek_len, v_select)) < 0)
            return rc;
    } while (rc);
    cand_compact(it);
    if (it->ncand == 0) {
        it->group_done = 1;
        it->nitems = 0;
        return 0;
    }
    for (size_t i = 0; i < it->ncand; i++)
        item_init(it, &it->items[i], it->cand[i]);
    it->nitems = it->ncand;
    /* (2) their series */
    seek_len = 0;
    do {
        if ((rc = walk_chunk(it, it->gprefix, it->gprefix_len, seek, &seek_len, v_collect)) < 0)
            return rc;
        int r2 = join_pending(it, fold_item);
        if (r2)
            return r2;
    } while (rc);
    if (it->ncand < PASS_ITEMS)
        it->group_done = 1;
    snprintf(it->after, sizeof it->after, "%s", it->cand[it->ncand - 1]);
    it->has_after = 1;
    return 0;
}

/* ---- the iterator ---- */

static int
v_group(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
        const tally__series_t *s)
{
    (void)key;
    (void)len;
    (void)sid;
    copy_str(it->ns, sizeof it->ns, s->ns, s->ns_len);
    copy_str(it->metric, sizeof it->metric, s->metric, s->metric_len);
    return 1;
}

/* Find the next group after gseek; 0 and it->in_group set, or done. */
static int
next_group(tally__usage_iter_t *it)
{
    char seek[TALLY_SERIES_KEY_MAX + 2];
    size_t seek_len = it->has_gseek ? it->gseek_len : 0;
    memcpy(seek, it->gseek, seek_len);
    it->ns[0] = '\0';
    /* v_group stops at the first key, so the walk says "done" either way */
    int rc;
    for (;;) {
        it->ns[0] = it->metric[0] = '\0';
        if ((rc = walk_chunk(it, it->scope, it->scope_len, seek, &seek_len, v_group)) < 0)
            return rc;
        if (!it->ns[0]) {
            it->done = 1;
            return 0;
        }
        if (!it->q.metric || it->q.ns)
            break; /* the scope prefix did the filtering */
        /* every namespace, one metric: jump to it in each namespace */
        int c = strcmp(it->metric, it->q.metric);
        if (c == 0)
            break;
        size_t nl = strlen(it->ns), ml = strlen(it->q.metric);
        memcpy(seek, it->ns, nl + 1);
        if (c < 0) {
            /* just before ns 0 metric 0 (strictly after "ns 0 metric") */
            memcpy(seek + nl + 1, it->q.metric, ml);
            seek_len = nl + 1 + ml;
        } else {
            seek[nl] = '\x01'; /* past the namespace */
            seek_len = nl + 1;
        }
    }
    size_t nl = strlen(it->ns), ml = strlen(it->metric);
    memcpy(it->gprefix, it->ns, nl + 1);
    memcpy(it->gprefix + nl + 1, it->metric, ml + 1);
    it->gprefix_len = nl + ml + 2;
    /* the next group is looked for past every key of this one */
    memcpy(it->gseek, it->gprefix, it->gprefix_len);
    it->gseek[it->gprefix_len - 1] = '\x01';
    it->gseek_len = it->gprefix_len;
    it->has_gseek = 1;
    const tally__metric_def_t *def = tally__catalog_lookup_or_default(it->cat, it->metric, &it->def);
    if (def != &it->def)
        it->def = *def;
    /* fast or slow: the first key with labels tells */
    it->fast = 1;
    seek_len = 0;
    if ((rc = walk_chunk(it, it->gprefix, it->gprefix_len, seek, &seek_len, v_probe)) < 0)
        return rc;
    it->in_group = 1;
    it->group_done = 0;
    it->empty_done = 0;
    it->has_after = 0;
    it->fseek_len = 0;
    /* resuming inside this group (a page token)? */
    if (it->q.has_after && strcmp(it->q.after_ns, it->ns) == 0 &&
        strcmp(it->q.after_metric, it->metric) == 0) {
        it->has_after = 1;
        snprintf(it->after, sizeof it->after, "%s", it->q.after_object);
        it->empty_done = 1; /* "" is the smallest object: done already */
        /* fast: resume past every key of object `after` (1f sorts above
         * the 1e after a value and below any value byte) */
        size_t al = strlen(it->after);
        memcpy(it->fseek, it->gprefix, it->gprefix_len);
        memcpy(it->fseek + it->gprefix_len, "object\x1f", 7);
        memcpy(it->fseek + it->gprefix_len + 7, it->after, al);
        it->fseek[it->gprefix_len + 7 + al] = '\x1f';
        it->fseek_len = it->gprefix_len + 7 + al + 1;
    }
    return 0;
}

/* Fill items[] with the next pass (possibly empty). */
static int
refill(tally__usage_iter_t *it)
{
    int rc;
    it->nitems = it->pos = 0;
    if (!it->in_group) {
        it->metric[0] = '\0';
        if ((rc = next_group(it)) != 0 || it->done)
            return rc;
    }
    if (it->fast) {
        if (!it->empty_done) {
            it->empty_done = 1;
            return fast_empty_item(it);
        }
        rc = fast_pass(it);
    } else {
        rc = slow_pass(it);
    }
    if (rc == 0 && it->group_done)
        it->in_group = 0;
    return rc;
}

int
tally__usage_iter_open(tally__store_t *store, const tally__catalog_t *cat,
                       const tally__usage_query_t *q, tally__usage_iter_t **out)
{
    *out = NULL;
    tally__usage_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return -ENOMEM;
    it->store = store;
    it->cat = cat;
    it->q = *q;
    if (q->ns) {
        size_t nl = strlen(q->ns);
        if (nl > TALLY_MAX_NS_LEN)
            nl = TALLY_MAX_NS_LEN;
        memcpy(it->scope, q->ns, nl);
        it->scope[nl] = '\0';
        it->scope_len = nl + 1;
        if (q->metric) {
            size_t ml = strlen(q->metric);
            if (ml > TALLY_MAX_METRIC_LEN)
                ml = TALLY_MAX_METRIC_LEN;
            memcpy(it->scope + nl + 1, q->metric, ml);
            it->scope[nl + 1 + ml] = '\0';
            it->scope_len += ml + 1;
        }
    }
    /* a page token: start at its group (the groups before it are done) */
    if (q->has_after) {
        size_t nl = strlen(q->after_ns), ml = strlen(q->after_metric);
        memcpy(it->gseek, q->after_ns, nl + 1);
        memcpy(it->gseek + nl + 1, q->after_metric, ml);
        it->gseek[nl + 1 + ml] = '\0';
        it->gseek_len = nl + ml + 2;
        /* strictly after that exact key would skip a label-less series of
         * the group: seek just before the group instead */
        it->gseek[it->gseek_len - 1] = '\0';
        it->gseek_len--; /* "ns 0 metric" < every key of the group */
        it->has_gseek = 1;
    }
    it->items = malloc(PASS_ITEMS * sizeof *it->items);
    it->pend = malloc(CHUNK_KEYS * sizeof *it->pend);
    it->sids = malloc(CHUNK_KEYS * sizeof *it->sids);
    it->cand = malloc(2 * PASS_ITEMS * sizeof *it->cand);
    if (!it->items || !it->pend || !it->sids || !it->cand) {
        tally__usage_iter_close(it);
        return -ENOMEM;
    }
    *out = it;
    return 0;
}

int
tally__usage_iter_next(tally__usage_iter_t *it, const tally__usage_item_t **item)
{
    for (;;) {
        if (it->err)
            return it->err;
        while (it->pos < it->nitems) {
            const tally__usage_item_t *e = &it->items[it->pos++];
            if (e->quantity.records) {
                *item = e;
                return 1;
            }
        }
        if (it->done)
            return 0;
        int rc = refill(it);
        if (rc) {
            it->err = rc;
            return rc;
        }
        if (it->done && it->nitems == 0)
            return 0;
    }
}

void
tally__usage_iter_close(tally__usage_iter_t *it)
{
    if (!it)
        return;
    free(it->items);
    free(it->pend);
    free(it->sids);
    free(it->cand);
    free(it);
}

/* ==== group_by ======================================================================= */

typedef struct group_acc {
    tally__usage_qty_t q;
    uint64_t series;
    tally__agg_t agg;
} group_acc_t;

typedef struct groups_ctx {
    const char *label;
    size_t max_groups;
    tally__strtab_t *keys; /* metric 0 value -> dense id */
    group_acc_t *acc;
    size_t cap;
    int over; /* more distinct values than max_groups */
} groups_ctx_t;

static _Thread_local groups_ctx_t *g_cur; /* visitor context: the iterator is not threaded through */

static void
fold_group(tally__usage_iter_t *it, const pend_t *p)
{
    (void)it;
    group_acc_t *a = &g_cur->acc[p->item];
    tally__usage_qty_merge(&a->q, a->agg, &p->q);
    a->series++;
}

static int
v_groupby(tally__usage_iter_t *it, const char *key, size_t len, uint32_t sid,
          const tally__series_t *s)
{
    (void)key;
    (void)len;
    groups_ctx_t *g = g_cur;
    if (it->q.metric && (s->metric_len != strlen(it->q.metric) ||
                         memcmp(s->metric, it->q.metric, s->metric_len) != 0))
        return 0;
    if (!series_selected(it, s))
        return 0;
    char k[TALLY_MAX_METRIC_LEN + 1 + OBJ_CAP];
    size_t ml = s->metric_len > TALLY_MAX_METRIC_LEN ? TALLY_MAX_METRIC_LEN : s->metric_len;
    memcpy(k, s->metric, ml);
    k[ml] = '\0';
    label_value(s, g->label, k + ml + 1, OBJ_CAP);
    size_t kl = ml + 1 + strlen(k + ml + 1);
    uint32_t id;
    if (tally__strtab_count(g->keys) >= g->max_groups) {
        /* only known groups from here on */
        int added = tally__strtab_intern(g->keys, k, (uint32_t)kl, &id);
        if (added < 0)
            return added;
        if (added) {
            g->over = 1;
            return TALLY_EINVAL;
        }
    } else {
        int added = tally__strtab_intern(g->keys, k, (uint32_t)kl, &id);
        if (added < 0)
            return added;
        if (id >= g->cap) {
            size_t nc = g->cap ? g->cap * 2 : 256;
            group_acc_t *na = realloc(g->acc, nc * sizeof *na);
            if (!na)
                return -ENOMEM;
            memset(na + g->cap, 0, (nc - g->cap) * sizeof *na);
            g->acc = na;
            g->cap = nc;
        }
        if (added) {
            tally__metric_def_t tmp;
            g->acc[id].agg = tally__catalog_lookup_or_default(it->cat, k, &tmp)->aggregation;
        }
    }
    pend_add(it, sid, id);
    it->pend[it->npend - 1].agg = g->acc[id].agg;
    return 0;
}

static int
group_cmp(const void *a, const void *b)
{
    const tally__usage_group_t *x = a, *y = b;
    double vx = tally__usage_qty_value(&x->quantity), vy = tally__usage_qty_value(&y->quantity);
    if (vx != vy)
        return vx > vy ? -1 : 1;
    int c = strcmp(x->metric, y->metric);
    return c ? c : strcmp(x->value, y->value);
}

int
tally__usage_groups(tally__store_t *store, const tally__catalog_t *cat,
                    const tally__usage_query_t *q, const char *label, size_t max_groups,
                    size_t top, tally__usage_group_t **out, size_t *n, size_t *total)
{
    tally__usage_iter_t *it;
    groups_ctx_t g = {.label = label, .max_groups = max_groups};
    tally__usage_group_t *res = NULL;
    char seek[TALLY_SERIES_KEY_MAX + 2];
    size_t seek_len = 0, m = 0;
    *out = NULL;
    *n = 0;
    *total = 0;
    tally__usage_query_t qq = *q;
    qq.has_after = 0;
    int rc = tally__usage_iter_open(store, cat, &qq, &it);
    if (rc)
        return rc;
    if (tally__strtab_create(&g.keys) != 0) {
        tally__usage_iter_close(it);
        return -ENOMEM;
    }
    g_cur = &g;
    do {
        rc = walk_chunk(it, it->scope, it->scope_len, seek, &seek_len, v_groupby);
        if (rc < 0)
            break;
        int r2 = join_pending(it, fold_group);
        if (r2) {
            rc = r2;
            break;
        }
    } while (rc);
    g_cur = NULL;
    if (rc < 0 || rc > 1) {
        if (g.over)
            rc = TALLY_ETOOBIG;
        goto out;
    }
    rc = 0;
    size_t ng = tally__strtab_count(g.keys);
    if (ng && !(res = calloc(ng, sizeof *res))) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < ng; i++) {
        if (g.acc[i].q.records == 0)
            continue;
        uint32_t kl;
        const char *k = tally__strtab_get(g.keys, i, &kl);
        tally__usage_group_t *e = &res[m++];
        snprintf(e->metric, sizeof e->metric, "%s", k);
        snprintf(e->value, sizeof e->value, "%s", k + strlen(k) + 1);
        const tally__metric_def_t *def = tally__catalog_lookup_or_default(cat, e->metric, &e->def);
        if (def != &e->def)
            e->def = *def;
        e->quantity = g.acc[i].q;
        e->series = g.acc[i].series;
    }
    if (m)
        qsort(res, m, sizeof *res, group_cmp);
    *total = m;
    if (top && m > top)
        m = top;
    if (m == 0) {
        free(res);
        res = NULL;
    }
    *out = res;
    *n = m;
out:
    if (rc)
        free(res);
    free(g.acc);
    tally__strtab_destroy(g.keys);
    tally__usage_iter_close(it);
    return rc;
}

void
tally__usage_groups_free(tally__usage_group_t *g)
{
    free(g);
}
