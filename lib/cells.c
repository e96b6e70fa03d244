/* cells.c — open-addressing cell table and flush preparation in store key order. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cells.h"
#include "timeutil.h"

typedef struct cell {
    uint32_t series;
    uint32_t hour; /* hours since the epoch */
    tally__rollup_t r;
} cell_t;

typedef struct sortent {
    uint64_t key; /* sort_key() */
    uint32_t cell;
} sortent_t;

struct tally__cells {
    const tally__strtab_t *series_tab;
    cell_t *cells;
    uint32_t ncells, cap_cells;
    uint32_t *index; /* cell + 1, 0 = empty */
    uint32_t index_mask;
    /* sid1[id]: 1 + the store's id of series `id`, learnt from a commit;
     * 0 until then. Store ids give the key order, so sorting a flush is a
     * counting sort of integers. */
    uint32_t *sid1;
    uint32_t cap_sid;
    uint32_t max_series_seen; /* highest id added + 1 */
    /* flush scratch, reused */
    sortent_t *order;
    tally__store_put_t *hourly, *monthly;
    tally__rollup_t *month_r;
    uint32_t cap_scratch;
    uint32_t *count; /* counting sort by store id: cap_count entries */
    uint32_t cap_count;
    uint32_t *remap; /* monthly put moves, when a flush spans months */
    uint32_t cap_remap;
};

static uint32_t
cell_hash(uint32_t series, uint32_t hour)
{
    uint64_t x = ((uint64_t)series << 32 | hour) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32);
}

int
tally__cells_create(const tally__strtab_t *series, tally__cells_t **out)
{
    tally__cells_t *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->series_tab = series;
    a->index_mask = 1023;
    a->index = calloc(a->index_mask + 1, sizeof *a->index);
    if (!a->index) {
        free(a);
        return -ENOMEM;
    }
    *out = a;
    return 0;
}

void
tally__cells_destroy(tally__cells_t *a)
{
    if (!a)
        return;
    free(a->cells);
    free(a->index);
    free(a->sid1);
    free(a->remap);
    free(a->order);
    free(a->hourly);
    free(a->monthly);
    free(a->month_r);
    free(a->count);
    free(a);
}

static int
index_grow(tally__cells_t *a)
{
    uint32_t nmask = a->index_mask * 2 + 1;
    uint32_t *ni = calloc((size_t)nmask + 1, sizeof *ni);
    if (!ni)
        return -ENOMEM;
    for (uint32_t i = 0; i < a->ncells; i++) {
        uint32_t pos = cell_hash(a->cells[i].series, a->cells[i].hour) & nmask;
        while (ni[pos])
            pos = (pos + 1) & nmask;
        ni[pos] = i + 1;
    }
    free(a->index);
    a->index = ni;
    a->index_mask = nmask;
    return 0;
}

int
tally__cells_add(tally__cells_t *a, uint32_t series, int64_t hour_s, int is_float, int64_t ival,
                 double fval, int64_t ts_ms)
{
    uint32_t hour = (uint32_t)(hour_s / 3600);
    uint32_t pos = cell_hash(series, hour) & a->index_mask;
    for (;;) {
        uint32_t v = a->index[pos];
        if (!v)
            break;
        cell_t *c = &a->cells[v - 1];
        if (c->series == series && c->hour == hour) {
            tally__rollup_add(&c->r, is_float, ival, fval, ts_ms);
            return 0;
        }
        pos = (pos + 1) & a->index_mask;
    }
    if (a->ncells == a->cap_cells) {
        uint32_t ncap = a->cap_cells ? a->cap_cells * 2 : 1024;
        cell_t *nc = realloc(a->cells, (size_t)ncap * sizeof *nc);
        if (!nc)
            return -ENOMEM;
        a->cells = nc;
        a->cap_cells = ncap;
    }
    cell_t *c = &a->cells[a->ncells];
    c->series = series;
    c->hour = hour;
    tally__rollup_init(&c->r);
    tally__rollup_add(&c->r, is_float, ival, fval, ts_ms);
    a->index[pos] = ++a->ncells;
    if (series + 1 > a->max_series_seen)
        a->max_series_seen = series + 1;
    if ((uint64_t)a->ncells * 2 > a->index_mask)
        (void)index_grow(a); /* a full index only slows probes: ignore a failed growth */
    return 0;
}

size_t
tally__cells_cells(const tally__cells_t *a)
{
    return a->ncells;
}

void
tally__cells_reset(tally__cells_t *a)
{
    if (a->ncells)
        memset(a->index, 0, ((size_t)a->index_mask + 1) * sizeof *a->index);
    a->ncells = 0;
}

static int
cmp_sortent(const void *pa, const void *pb)
{
    uint64_t a = ((const sortent_t *)pa)->key, b = ((const sortent_t *)pb)->key;
    return a < b ? -1 : a > b;
}

static int
grow_u32(uint32_t **v, uint32_t *cap, uint32_t need, int zero)
{
    if (need <= *cap)
        return 0;
    uint32_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    uint32_t *nv = realloc(*v, (size_t)ncap * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    if (zero)
        memset(nv + *cap, 0, (size_t)(ncap - *cap) * sizeof *nv);
    *v = nv;
    *cap = ncap;
    return 0;
}

/* Sort key of a cell: (1 + store id, hour) for series the store has
 * named; series not yet named follow all of them, by table id. */
static uint64_t
sort_key(const tally__cells_t *a, const cell_t *c)
{
    uint32_t s1 = a->sid1[c->series];
    uint64_t hi = s1 ? s1 : 0x80000000u | c->series;
    return hi << 32 | c->hour;
}

/* order[] = the cells in sort_key order. Steady state (every series named,
 * ids not much sparser than the cells): a counting sort by id, then the few
 * hours of one series by insertion. */
static int
sort_cells(tally__cells_t *a)
{
    uint32_t max1 = 0, nknown = 0;
    for (uint32_t i = 0; i < a->ncells; i++) {
        uint32_t s1 = a->sid1[a->cells[i].series];
        if (s1) {
            nknown++;
            if (s1 > max1)
                max1 = s1;
        }
    }
    if (nknown == a->ncells && max1 <= 8u * a->ncells + 1024) {
        if (grow_u32(&a->count, &a->cap_count, max1 + 1, 0) != 0)
            return -ENOMEM;
        uint32_t *cnt = a->count;
        memset(cnt, 0, ((size_t)max1 + 1) * sizeof *cnt);
        for (uint32_t i = 0; i < a->ncells; i++)
            cnt[a->sid1[a->cells[i].series]]++;
        uint32_t sum = 0;
        for (uint32_t r = 0; r <= max1; r++) {
            uint32_t c = cnt[r];
            cnt[r] = sum;
            sum += c;
        }
        for (uint32_t i = 0; i < a->ncells; i++) {
            sortent_t *e = &a->order[cnt[a->sid1[a->cells[i].series]]++];
            e->key = sort_key(a, &a->cells[i]);
            e->cell = i;
        }
        for (uint32_t i = 1; i < a->ncells; i++) {
            sortent_t e = a->order[i];
            uint32_t j = i;
            while (j > 0 && a->order[j - 1].key > e.key) {
                a->order[j] = a->order[j - 1];
                j--;
            }
            a->order[j] = e;
        }
        return 0;
    }
    for (uint32_t i = 0; i < a->ncells; i++) {
        a->order[i].key = sort_key(a, &a->cells[i]);
        a->order[i].cell = i;
    }
    qsort(a->order, a->ncells, sizeof *a->order, cmp_sortent);
    return 0;
}

/* Put p in time-major order (period, then the order they are in), the
 * store's key order: o[] is scratch. Steady state, one hour and one month,
 * finds them in order already. With moved non-NULL, moved[old] = new. */
static void
order_by_period(tally__store_put_t *p, size_t n, sortent_t *o, uint32_t *moved)
{
    int64_t lo = INT64_MAX;
    int sorted = 1;
    for (size_t i = 0; i < n; i++) {
        if (i && p[i].period_s < p[i - 1].period_s)
            sorted = 0;
        if (p[i].period_s < lo)
            lo = p[i].period_s;
    }
    if (sorted) {
        for (size_t i = 0; moved && i < n; i++)
            moved[i] = (uint32_t)i;
        return;
    }
    /* periods are whole hours, at most a late window apart: (hours since
     * the earliest, index) fits 64 bits and keeps the sort stable */
    for (size_t i = 0; i < n; i++) {
        o[i].key = (uint64_t)((p[i].period_s - lo) / 3600) << 32 | i;
        o[i].cell = (uint32_t)i;
    }
    qsort(o, n, sizeof *o, cmp_sortent);
    for (size_t i = 0; moved && i < n; i++)
        moved[o[i].cell] = (uint32_t)i;
    /* p_new[i] = p_old[o[i].cell], cycle by cycle; key UINT64_MAX = placed */
    for (size_t i = 0; i < n; i++) {
        if (o[i].key == UINT64_MAX)
            continue;
        tally__store_put_t t = p[i];
        size_t j = i;
        for (;;) {
            size_t k = o[j].cell;
            o[j].key = UINT64_MAX;
            if (k == i) {
                p[j] = t;
                break;
            }
            p[j] = p[k];
            j = k;
        }
    }
}

int
tally__cells_prepare(tally__cells_t *a, const tally__store_put_t **hourly, size_t *nh,
                     const tally__store_put_t **monthly, size_t *nm)
{
    *nh = *nm = 0;
    if (a->ncells == 0)
        return 0;
    if (grow_u32(&a->sid1, &a->cap_sid, a->max_series_seen, 1) != 0)
        return -ENOMEM;
    if (a->ncells > a->cap_scratch) {
        uint32_t ncap = a->ncells;
        sortent_t *o = realloc(a->order, (size_t)ncap * sizeof *o);
        if (!o)
            return -ENOMEM;
        a->order = o;
        tally__store_put_t *h = realloc(a->hourly, (size_t)ncap * sizeof *h);
        if (!h)
            return -ENOMEM;
        a->hourly = h;
        tally__store_put_t *m = realloc(a->monthly, (size_t)ncap * sizeof *m);
        if (!m)
            return -ENOMEM;
        a->monthly = m;
        tally__rollup_t *mr = realloc(a->month_r, (size_t)ncap * sizeof *mr);
        if (!mr)
            return -ENOMEM;
        a->month_r = mr;
        a->cap_scratch = ncap;
    }
    if (sort_cells(a) != 0)
        return -ENOMEM;
    size_t m = 0;
    uint32_t prev_series = UINT32_MAX;
    int64_t prev_month = 0, memo_hour = INT64_MIN, memo_month = 0;
    for (uint32_t i = 0; i < a->ncells; i++) {
        const cell_t *c = &a->cells[a->order[i].cell];
        uint32_t len;
        const char *s = tally__strtab_get(a->series_tab, c->series, &len);
        uint32_t s1 = a->sid1[c->series];
        uint32_t *learn = s1 ? NULL : &a->sid1[c->series];
        int64_t hour_s = (int64_t)c->hour * 3600;
        a->hourly[i] = (tally__store_put_t){s, len, hour_s, &c->r, 0, s1, learn};
        if (hour_s != memo_hour) { /* most cells share the current hour */
            memo_hour = hour_s;
            memo_month = tally__time_month_start(hour_s);
        }
        int64_t month = memo_month;
        if (m > 0 && c->series == prev_series && month == prev_month) {
            /* a second hour of the month: merge into a copy */
            tally__rollup_t *mr = &a->month_r[m - 1];
            if (a->monthly[m - 1].delta != mr) {
                *mr = *a->monthly[m - 1].delta;
                a->monthly[m - 1].delta = mr;
            }
            tally__rollup_merge(mr, &c->r);
        } else {
            /* one hour of the month (the steady state): its cell is the
             * month's delta, no copy. Cells' last_sum is 0: the store turns
             * changes of the hour's last into the month's last_sum. */
            a->monthly[m] = (tally__store_put_t){s, len, month, &c->r, 0, s1, NULL};
            m++;
            prev_series = c->series;
            prev_month = month;
        }
        a->hourly[i].month_plus1 = (uint32_t)m;
    }
    /* built series by series (which groups months); the store wants time
     * first (rollup.h) */
    if (grow_u32(&a->remap, &a->cap_remap, (uint32_t)m, 0) != 0)
        return -ENOMEM;
    order_by_period(a->monthly, m, a->order, a->remap);
    for (uint32_t i = 0; i < a->ncells; i++)
        a->hourly[i].month_plus1 = a->remap[a->hourly[i].month_plus1 - 1] + 1;
    order_by_period(a->hourly, a->ncells, a->order, NULL);
    *hourly = a->hourly;
    *nh = a->ncells;
    *monthly = a->monthly;
    *nm = m;
    return 0;
}

size_t
tally__cells_bytes(const tally__cells_t *a)
{
    return sizeof *a + (size_t)a->cap_cells * sizeof(cell_t) +
           ((size_t)a->index_mask + 1) * sizeof(uint32_t) +
           ((size_t)a->cap_sid + a->cap_count + a->cap_remap) * sizeof(uint32_t) +
           (size_t)a->cap_scratch *
               (sizeof(sortent_t) + 2 * sizeof(tally__store_put_t) + sizeof(tally__rollup_t));
}
