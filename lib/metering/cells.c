/* cells.c — open-addressing cell table, and the flush it yields to the store in key order. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cells.h"
#include "timeutil.h"

/* A (series, hour) rollup between two flushes: the rollup record less
 * last_sum (always 0 in a delta), with the record's flags in the top bits
 * of the series word. 56 bytes, and with 100k active series they are most
 * of the table. */
typedef struct cell {
    uint32_t series; /* table id | CELL_FLOAT | CELL_OVERFLOW */
    uint32_t hour;   /* hours since the epoch */
    int64_t sum_i;
    double sum_f;
    uint64_t count;
    double max;
    double last;
    int64_t last_ts_ms;
} cell_t;

/* strtab ids stay below 2^28, so the top bits are free */
#define CELL_FLOAT 0x80000000u    /* TALLY_ROLLUP_FLOAT */
#define CELL_OVERFLOW 0x40000000u /* TALLY_ROLLUP_INT_OVERFLOW */
#define CELL_FLAGS (CELL_FLOAT | CELL_OVERFLOW)
#define CELL_SERIES(c) ((c)->series & ~CELL_FLAGS)

typedef struct sortent {
    uint64_t key;
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
    uint32_t *count;          /* counting sort by store id: cap_count entries */
    uint32_t cap_count;
    /* the prepared flush: cells in hourly key order; one hour (the steady
     * state) is also the monthly order, one put per cell. A flush that
     * spans hours has its own monthly order and each cell's monthly put
     * (mput), freed by the reset. */
    uint32_t *order;
    uint32_t cap_order;
    uint32_t *morder, *mput;
    uint32_t pos[2]; /* fill() cursors: hourly, monthly */
    /* int64 overflows (rollup.h's rule) since the last take: of cell
     * additions at once, of the monthly folds of fill() once their commit
     * succeeded (the reset), since a retried commit folds again. */
    uint64_t overflows;
    uint64_t fold_overflows;  /* of the prepared flush's current monthly pass */
    uint32_t overflow_series; /* table id of the latest, UINT32_MAX for none */
    uint32_t fold_series;
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
    a->overflow_series = a->fold_series = UINT32_MAX;
    a->index_mask = 1023;
    a->index = calloc(a->index_mask + 1, sizeof *a->index);
    if (!a->index) {
        free(a);
        return -ENOMEM;
    }
    *out = a;
    return 0;
}

static void
free_spans(tally__cells_t *a)
{
    free(a->morder);
    free(a->mput);
    a->morder = a->mput = NULL;
}

void
tally__cells_destroy(tally__cells_t *a)
{
    if (!a)
        return;
    free(a->cells);
    free(a->index);
    free(a->sid1);
    free(a->count);
    free(a->order);
    free_spans(a);
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
        uint32_t pos = cell_hash(CELL_SERIES(&a->cells[i]), a->cells[i].hour) & nmask;
        while (ni[pos])
            pos = (pos + 1) & nmask;
        ni[pos] = i + 1;
    }
    free(a->index);
    a->index = ni;
    a->index_mask = nmask;
    return 0;
}

/* tally__rollup_add() on a cell, returning 1 likewise on an int64 overflow. */
static int
cell_add(cell_t *c, int is_float, int64_t ival, double fval, int64_t ts_ms)
{
    double v;
    int overflow = 0;
    if (is_float) {
        c->sum_f += fval;
        c->series |= CELL_FLOAT;
        v = fval;
    } else {
        int64_t sum;
        if (__builtin_add_overflow(c->sum_i, ival, &sum)) {
            c->sum_f += (double)ival; /* past int64: as the record does */
            c->series |= CELL_FLOAT | CELL_OVERFLOW;
            overflow = 1;
        } else {
            c->sum_i = sum;
        }
        v = (double)ival;
    }
    if (c->count == 0 || v > c->max)
        c->max = v;
    if (c->count == 0 || ts_ms >= c->last_ts_ms) {
        c->last = v;
        c->last_ts_ms = ts_ms;
    }
    c->count++;
    return overflow;
}

static void
cell_rollup(const cell_t *c, tally__rollup_t *r)
{
    *r = (tally__rollup_t){.sum_i = c->sum_i,
                           .sum_f = c->sum_f,
                           .count = c->count,
                           .max = c->max,
                           .last = c->last,
                           .last_ts_ms = c->last_ts_ms,
                           .flags = ((c->series & CELL_FLOAT) ? TALLY_ROLLUP_FLOAT : 0) |
                                    ((c->series & CELL_OVERFLOW) ? TALLY_ROLLUP_INT_OVERFLOW : 0)};
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
        if (CELL_SERIES(c) == series && c->hour == hour) {
            if (cell_add(c, is_float, ival, fval, ts_ms)) {
                a->overflows++;
                a->overflow_series = series;
            }
            return 0;
        }
        pos = (pos + 1) & a->index_mask;
    }
    if (series & CELL_FLAGS)
        return -EINVAL; /* not a strtab id */
    if (tally__grow32((void **)&a->cells, &a->cap_cells, a->ncells + 1, sizeof *a->cells, 1024))
        return -ENOMEM;
    cell_t *c = &a->cells[a->ncells];
    *c = (cell_t){.series = series, .hour = hour};
    (void)cell_add(c, is_float, ival, fval, ts_ms); /* one value into an empty cell fits */
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
    free_spans(a);
    /* the flush committed: its monthly folds happened once */
    if (a->fold_overflows) {
        a->overflows += a->fold_overflows;
        a->overflow_series = a->fold_series;
    }
    a->fold_overflows = 0;
    a->fold_series = UINT32_MAX;
}

uint64_t
tally__cells_take_overflows(tally__cells_t *a, char *series, size_t cap)
{
    uint64_t n = a->overflows;
    if (series && cap) {
        uint32_t len = 0;
        const char *key = n && a->overflow_series != UINT32_MAX
                              ? tally__strtab_get(a->series_tab, a->overflow_series, &len)
                              : NULL;
        if (key)
            tally__series_text(key, len, series, cap);
        else
            series[0] = '\0';
    }
    a->overflows = 0;
    a->overflow_series = UINT32_MAX;
    return n;
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
    uint32_t old = *cap;
    if (tally__grow32((void **)v, cap, need, sizeof **v, 1024) != 0)
        return -ENOMEM;
    if (zero && *cap > old)
        memset(*v + old, 0, (size_t)(*cap - old) * sizeof **v);
    return 0;
}

/* A series' place in a period: named series by store id, then the ones
 * the store has not named yet, by table id. */
static uint32_t
rank(const tally__cells_t *a, const cell_t *c)
{
    uint32_t s1 = a->sid1[CELL_SERIES(c)];
    return s1 ? s1 : 0x80000000u | CELL_SERIES(c);
}

/* out[] = the cells in the order of key(), by a sort of (key, cell)
 * pairs; the pairs are freed before returning. */
static int
sort_by(tally__cells_t *a, uint32_t *out, int monthly, uint32_t min_hour)
{
    if (a->ncells == 0)
        return 0;
    sortent_t *e = malloc((size_t)a->ncells * sizeof *e);
    if (!e)
        return -ENOMEM;
    int64_t memo_hour = -1, memo_month = 0;
    for (uint32_t i = 0; i < a->ncells; i++) {
        const cell_t *c = &a->cells[i];
        uint64_t key;
        if (!monthly) {
            key = (uint64_t)(c->hour - min_hour) << 32 | rank(a, c);
        } else {
            /* (month, series, hour): month as hours from min_hour (22
             * bits: centuries), hour within the month (10 bits) */
            if (c->hour != memo_hour) {
                memo_hour = c->hour;
                memo_month = tally__time_month_start((int64_t)c->hour * 3600) / 3600;
            }
            uint64_t mrel = (uint64_t)(memo_month - (int64_t)min_hour + 744);
            key = mrel << 42 | (uint64_t)rank(a, c) << 10 | (uint64_t)(c->hour - memo_month);
        }
        e[i] = (sortent_t){key, i};
    }
    qsort(e, a->ncells, sizeof *e, cmp_sortent);
    for (uint32_t i = 0; i < a->ncells; i++)
        out[i] = e[i].cell;
    free(e);
    return 0;
}

/* order[] = the cells by store id when every one is named, in one hour,
 * and ids are not much sparser than the cells: a counting sort. Returns 1
 * when it sorted, 0 when the general sort is needed, -ENOMEM. */
static int
counting_sort(tally__cells_t *a)
{
    uint32_t max1 = 0;
    for (uint32_t i = 0; i < a->ncells; i++) {
        uint32_t s1 = a->sid1[CELL_SERIES(&a->cells[i])];
        if (!s1)
            return 0;
        if (s1 > max1)
            max1 = s1;
    }
    if (max1 > 8u * a->ncells + 1024)
        return 0;
    if (grow_u32(&a->count, &a->cap_count, max1 + 1, 0) != 0)
        return -ENOMEM;
    uint32_t *cnt = a->count;
    memset(cnt, 0, ((size_t)max1 + 1) * sizeof *cnt);
    for (uint32_t i = 0; i < a->ncells; i++)
        cnt[a->sid1[CELL_SERIES(&a->cells[i])]]++;
    uint32_t sum = 0;
    for (uint32_t r = 0; r <= max1; r++) {
        uint32_t c = cnt[r];
        cnt[r] = sum;
        sum += c;
    }
    for (uint32_t i = 0; i < a->ncells; i++)
        a->order[cnt[a->sid1[CELL_SERIES(&a->cells[i])]]++] = i;
    return 1;
}

static size_t fill(void *ctx, int which, int first, tally__store_put_t *puts,
                   tally__rollup_t *deltas, size_t cap);

int
tally__cells_prepare(tally__cells_t *a, tally__store_src_t *src)
{
    *src = (tally__store_src_t){fill, a, 0, 0};
    free_spans(a);
    a->fold_overflows = 0;
    a->fold_series = UINT32_MAX;
    const size_t n = a->ncells;
    if (n == 0)
        return 0;
    if (grow_u32(&a->sid1, &a->cap_sid, a->max_series_seen, 1) != 0 ||
        grow_u32(&a->order, &a->cap_order, a->ncells, 0) != 0)
        return -ENOMEM;
    uint32_t min_hour = UINT32_MAX, max_hour = 0;
    for (uint32_t i = 0; i < a->ncells; i++) {
        uint32_t h = a->cells[i].hour;
        min_hour = h < min_hour ? h : min_hour;
        max_hour = h > max_hour ? h : max_hour;
    }
    if (min_hour == max_hour) {
        /* one hour: one cell per series, the same order for both kinds */
        int rc = counting_sort(a);
        if (rc < 0 || (rc == 0 && sort_by(a, a->order, 0, min_hour) != 0))
            return -ENOMEM;
        src->nm = n;
    } else {
        a->morder = malloc(n * sizeof *a->morder);
        a->mput = malloc(n * sizeof *a->mput);
        if (!a->morder || !a->mput || sort_by(a, a->order, 0, min_hour) != 0 ||
            sort_by(a, a->morder, 1, min_hour) != 0) {
            free_spans(a);
            return -ENOMEM;
        }
        /* a series' hours of one month are adjacent in morder: one put */
        uint32_t m = 0;
        int64_t memo_hour = -1, memo_month = 0, prev_month = 0;
        uint32_t prev_series = UINT32_MAX;
        for (uint32_t i = 0; i < a->ncells; i++) {
            const cell_t *c = &a->cells[a->morder[i]];
            if (c->hour != memo_hour) {
                memo_hour = c->hour;
                memo_month = tally__time_month_start((int64_t)c->hour * 3600);
            }
            if (i == 0 || CELL_SERIES(c) != prev_series || memo_month != prev_month)
                m++;
            prev_series = CELL_SERIES(c);
            prev_month = memo_month;
            a->mput[a->morder[i]] = m - 1;
        }
        src->nm = m;
    }
    src->nh = n;
    return 0;
}

/* The store's put of cell i in period_s, with its delta in *r. */
static tally__store_put_t
put_of(tally__cells_t *a, uint32_t i, int64_t period_s, tally__rollup_t *r)
{
    const cell_t *c = &a->cells[i];
    uint32_t series = CELL_SERIES(c);
    uint32_t s1 = a->sid1[series];
    tally__store_put_t p = {.period_s = period_s, .delta = r, .sid1 = s1};
    p.series = tally__strtab_get(a->series_tab, series, &p.series_len);
    if (!s1)
        p.learn = &a->sid1[series];
    cell_rollup(c, r);
    return p;
}

/* tally__store_src_t.fill over the prepared cells. Cells' last_sum is 0:
 * the store turns changes of an hour's last into its month's last_sum. */
static size_t
fill(void *ctx, int which, int first, tally__store_put_t *puts, tally__rollup_t *deltas, size_t cap)
{
    tally__cells_t *a = ctx;
    uint32_t *pos = &a->pos[which == TALLY_STORE_MONTHLY];
    if (first)
        *pos = 0;
    size_t k = 0;
    if (which == TALLY_STORE_HOURLY) {
        for (; k < cap && *pos < a->ncells; k++, (*pos)++) {
            uint32_t i = a->order[*pos];
            puts[k] = put_of(a, i, (int64_t)a->cells[i].hour * 3600, &deltas[k]);
            puts[k].month_plus1 = 1 + (a->mput ? a->mput[i] : *pos);
        }
        return k;
    }
    const uint32_t *mo = a->morder ? a->morder : a->order;
    int64_t memo_hour = -1, memo_month = 0;
    if (first) {
        /* a commit (re)starts the monthly pass: count its folds afresh */
        a->fold_overflows = 0;
        a->fold_series = UINT32_MAX;
    }
    while (k < cap && *pos < a->ncells) {
        uint32_t i = mo[*pos];
        const cell_t *c = &a->cells[i];
        if (c->hour != memo_hour) {
            memo_hour = c->hour;
            memo_month = tally__time_month_start((int64_t)c->hour * 3600);
        }
        puts[k] = put_of(a, i, memo_month, &deltas[k]);
        puts[k].learn = NULL; /* its hourly put learns the id */
        (*pos)++;
        /* more hours of the same series and month: fold them in */
        while (a->mput && *pos < a->ncells && a->mput[mo[*pos]] == a->mput[i]) {
            tally__rollup_t r;
            cell_rollup(&a->cells[mo[*pos]], &r);
            if (tally__rollup_merge(&deltas[k], &r)) {
                /* the month's sum passes int64 though no hour's does */
                a->fold_overflows++;
                a->fold_series = CELL_SERIES(c);
            }
            (*pos)++;
        }
        k++;
    }
    return k;
}

size_t
tally__cells_bytes(const tally__cells_t *a)
{
    return sizeof *a + (size_t)a->cap_cells * sizeof(cell_t) +
           ((size_t)a->index_mask + 1) * sizeof(uint32_t) +
           ((size_t)a->cap_sid + a->cap_count + a->cap_order) * sizeof(uint32_t) +
           (a->mput ? 2 * (size_t)a->ncells * sizeof(uint32_t) : 0);
}
