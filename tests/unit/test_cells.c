/* test_cells.c — Criterion tests of the aggregator's cell table and its flush preparation (key
 * order by store series id, ids learnt from commits, hourly and monthly grouping) in lib/cells. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cells.h"
#include "rollup.h"
#include "store.h"
#include "strtab.h"
#include "testdir.h"
#include "timeutil.h"

/* Checked with `date -u -d <iso> +%s`. */
#define T_2023_12_01 1701388800LL    /* 2023-12-01T00:00:00Z */
#define T_2023_12_31_22 1704060000LL /* 2023-12-31T22:00:00Z */
#define T_2023_12_31_23 1704063600LL /* 2023-12-31T23:00:00Z */
#define T_2024_01_01_00 1704067200LL /* 2024-01-01T00:00:00Z */
#define T_2024_01_01_01 1704070800LL /* 2024-01-01T01:00:00Z */
#define T_2024_02_01 1706745600LL    /* 2024-02-01T00:00:00Z */
#define T_2024_02_29_23 1709247600LL /* 2024-02-29T23:00:00Z */
#define T_2024_03_01_00 1709251200LL /* 2024-03-01T00:00:00Z */

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static uint32_t series_of(const tally__strtab_t *t, const tally__store_put_t *p);

/* Puts come in store key order: by period; in a period, series the store
 * has named (sid1 != 0) by id, then the others by table id. */
static void
assert_puts_in_key_order(const tally__strtab_t *t, const tally__store_put_t *p, size_t n,
                         const char *what)
{
    for (size_t i = 1; i < n; i++) {
        const tally__store_put_t *a = &p[i - 1], *b = &p[i];
        cr_assert_leq(a->period_s, b->period_s, "%s: put %zu (period %lld) is before put %zu", what,
                      i, (long long)b->period_s, i - 1);
        if (a->period_s < b->period_s)
            continue;
        int same =
            a->series_len == b->series_len && memcmp(a->series, b->series, a->series_len) == 0;
        cr_assert(!same, "%s: put %zu: the same (series, period) twice", what, i);
        if (a->sid1 && b->sid1) {
            cr_assert_lt(a->sid1, b->sid1, "%s: put %zu: id %u after id %u", what, i, b->sid1,
                         a->sid1);
        } else {
            cr_assert(a->sid1 || !b->sid1, "%s: put %zu: a series with an id after one without",
                      what, i);
            if (!a->sid1 && !b->sid1)
                cr_assert_lt(series_of(t, a), series_of(t, b),
                             "%s: put %zu: unnamed series out of table order", what, i);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (p[i].sid1)
            cr_assert_null(p[i].learn, "%s: put %zu: learns an id it was given", what, i);
}

/* A fresh store in a temporary directory, so that cells learn real ids. */
static tally__store_t *
temp_store(char *dir, size_t size)
{
    testdir_make(dir, size, "cells");
    tally__store_t *st;
    cr_assert_eq(tally__store_open(dir, 64ull << 20, 0, &st), 0);
    return st;
}

static void
temp_store_close(tally__store_t *st, const char *dir)
{
    tally__store_close(st);
    testdir_remove(dir);
}

static uint32_t
intern_series(tally__strtab_t *t, const char *ns, const char *metric, const tally_label_t *l,
              size_t nl)
{
    char key[TALLY_SERIES_KEY_MAX];
    size_t n = tally__series_key(key, ns, strlen(ns), metric, strlen(metric), l, nl);
    uint32_t id;
    cr_assert_geq(tally__strtab_intern(t, key, (uint32_t)n, &id), 0);
    return id;
}

static uint32_t
intern_str(tally__strtab_t *t, const char *s)
{
    uint32_t id;
    cr_assert_geq(tally__strtab_intern(t, s, (uint32_t)strlen(s), &id), 0);
    return id;
}

/* Find the strtab id of a put's series (the put points into the table). */
static uint32_t
series_of(const tally__strtab_t *t, const tally__store_put_t *p)
{
    uint32_t n = tally__strtab_count(t);
    for (uint32_t id = 0; id < n; id++) {
        uint32_t len;
        const char *s = tally__strtab_get(t, id, &len);
        if (len == p->series_len && memcmp(s, p->series, len) == 0)
            return id;
    }
    cr_assert_fail("a put names a series the table does not hold");
    return UINT32_MAX;
}

/* tally__cells_prepare(), read out whole into arrays the way the store
 * reads it (in chunks, which the small chunk size here exercises), so the
 * tests can look at every put. The arrays live until the next call; the
 * puts may be committed with tally__store_commit(). */
static tally__store_put_t *g_puts[2];
static tally__rollup_t *g_deltas[2];

static size_t
read_kind(const tally__store_src_t *src, int which, size_t n)
{
    free(g_puts[which]);
    free(g_deltas[which]);
    g_puts[which] = calloc(n + 1, sizeof **g_puts);
    g_deltas[which] = calloc(n + 1, sizeof **g_deltas);
    cr_assert(g_puts[which] && g_deltas[which]);
    size_t got = 0, k;
    for (int first = 1; (k = src->fill(src->ctx, which, first, g_puts[which] + got,
                                       g_deltas[which] + got, n - got < 7 ? n - got : 7)) > 0;
         first = 0)
        got += k;
    cr_assert_eq(got, n, "the source yields %zu puts of kind %d, and said %zu", got, which, n);
    /* a second read (a commit retried after the map grew) gives the same */
    tally__store_put_t again;
    tally__rollup_t d;
    if (n) {
        cr_assert_eq(src->fill(src->ctx, which, 1, &again, &d, 1), 1);
        cr_assert_eq(again.period_s, g_puts[which][0].period_s);
        cr_assert_eq(again.sid1, g_puts[which][0].sid1);
        cr_assert_eq(d.count, g_puts[which][0].delta->count);
    }
    return got;
}

static int
prepare(tally__cells_t *c, const tally__store_put_t **h, size_t *nh, const tally__store_put_t **m,
        size_t *nm)
{
    tally__store_src_t src;
    *h = *m = NULL;
    *nh = *nm = 0;
    int rc = tally__cells_prepare(c, &src);
    if (rc)
        return rc;
    *nh = read_kind(&src, TALLY_STORE_HOURLY, src.nh);
    *nm = read_kind(&src, TALLY_STORE_MONTHLY, src.nm);
    *h = g_puts[TALLY_STORE_HOURLY];
    *m = g_puts[TALLY_STORE_MONTHLY];
    return 0;
}

Test(cells, empty_table_prepares_nothing)
{
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    const tally__store_put_t *h = NULL, *m = NULL;
    size_t nh = 99, nm = 99;
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(nh, 0);
    cr_assert_eq(nm, 0);
    cr_assert_eq(tally__cells_cells(c), 0);
    cr_assert_gt(tally__cells_bytes(c), 0);
    tally__cells_destroy(c);
    tally__cells_destroy(NULL);
    tally__strtab_destroy(t);
}

/* Reference: per (series, hour) sums, counts and maxima, computed independently. */
typedef struct ref {
    uint32_t series;
    int64_t hour_s;
    int64_t sum;
    uint64_t count;
    int64_t max;
    int64_t last, last_ts;
} ref_t;

static ref_t *
ref_find(ref_t *refs, size_t n, uint32_t series, int64_t hour_s)
{
    for (size_t i = 0; i < n; i++)
        if (refs[i].series == series && refs[i].hour_s == hour_s)
            return &refs[i];
    return NULL;
}

Test(cells, hourly_and_monthly_puts_across_month_and_year_boundaries)
{
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);

    /* interned out of key order on purpose */
    const tally_label_t eu[] = {{"zone", "eu"}};
    const tally_label_t us[] = {{"zone", "us"}, {"app", "web"}};
    uint32_t sid[5];
    sid[0] = intern_series(t, "zeta", "cpu", NULL, 0);
    sid[1] = intern_series(t, "acme", "cpu", eu, 1);
    sid[2] = intern_series(t, "acme", "cpu", NULL, 0);
    sid[3] = intern_series(t, "acme", "cpu", us, 2);
    sid[4] = intern_series(t, "acme", "bytes", NULL, 0);
    static const int64_t hours[] = {T_2023_12_31_22, T_2023_12_31_23, T_2024_01_01_00,
                                    T_2024_01_01_01, T_2024_02_29_23, T_2024_03_01_00,
                                    T_2023_12_01,    T_2024_02_01};
    enum { NSER = 5, NHOUR = sizeof hours / sizeof hours[0] };

    ref_t refs[NSER * NHOUR];
    size_t nref = 0;
    uint64_t seed = 7;
    /* 4000 events in a scrambled order over (series, hour) */
    for (int i = 0; i < 4000; i++) {
        uint32_t s = sid[rnd(&seed) % NSER];
        int64_t h = hours[rnd(&seed) % NHOUR];
        if (s == sid[4] && h == T_2024_02_29_23)
            continue; /* leave a hole: one (series, hour) with no events */
        int64_t v = (int64_t)(rnd(&seed) % 2001) - 1000;
        int64_t ts = h * 1000 + (int64_t)(rnd(&seed) % 3600000);
        cr_assert_eq(tally__cells_add(c, s, h, 0, v, 0.0, ts), 0);
        ref_t *r = ref_find(refs, nref, s, h);
        if (!r) {
            r = &refs[nref++];
            *r = (ref_t){s, h, 0, 0, v, v, ts};
        }
        r->sum += v;
        r->count++;
        if (v > r->max)
            r->max = v;
        if (ts >= r->last_ts) {
            r->last = v;
            r->last_ts = ts;
        }
    }
    cr_assert_eq(nref, NSER * NHOUR - 1);
    cr_assert_eq(tally__cells_cells(c), nref);

    const tally__store_put_t *h, *m;
    size_t nh, nm;
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(nh, nref, "one hourly put per (series, hour)");
    assert_puts_in_key_order(t, h, nh, "hourly");
    for (size_t i = 0; i < nh; i++) {
        uint32_t s = series_of(t, &h[i]);
        ref_t *r = ref_find(refs, nref, s, h[i].period_s);
        cr_assert_not_null(r, "hourly put %zu: unknown (series, hour)", i);
        cr_assert_eq(h[i].delta->sum_i, r->sum, "hourly put %zu sum", i);
        cr_assert_eq(h[i].delta->count, r->count, "hourly put %zu count", i);
        cr_assert_eq(h[i].delta->max, (double)r->max);
        cr_assert_eq(h[i].delta->last, (double)r->last);
        cr_assert_eq(h[i].delta->last_ts_ms, r->last_ts);
        cr_assert_eq(h[i].delta->flags, 0);
    }

    /* monthly: one put per (series, month), each the sum of its hours */
    size_t want_nm = 0;
    assert_puts_in_key_order(t, m, nm, "monthly");
    for (size_t j = 0; j < nm; j++) {
        cr_assert_eq(m[j].period_s, tally__time_month_start(m[j].period_s),
                     "monthly put %zu: %lld is not a month start", j, (long long)m[j].period_s);
        uint32_t s = series_of(t, &m[j]);
        int64_t sum = 0;
        uint64_t count = 0;
        int64_t max = INT64_MIN;
        for (size_t i = 0; i < nref; i++)
            if (refs[i].series == s && tally__time_month_start(refs[i].hour_s) == m[j].period_s) {
                sum += refs[i].sum;
                count += refs[i].count;
                if (refs[i].max > max)
                    max = refs[i].max;
            }
        cr_assert_gt(count, 0, "monthly put %zu has no hours", j);
        cr_assert_eq(m[j].delta->sum_i, sum, "monthly put %zu sum", j);
        cr_assert_eq(m[j].delta->count, count, "monthly put %zu count", j);
        cr_assert_eq(m[j].delta->max, (double)max);
    }
    /* distinct (series, month) pairs in the reference */
    for (size_t i = 0; i < nref; i++) {
        int seen = 0;
        for (size_t k = 0; k < i; k++)
            if (refs[k].series == refs[i].series &&
                tally__time_month_start(refs[k].hour_s) == tally__time_month_start(refs[i].hour_s))
                seen = 1;
        want_nm += !seen;
    }
    cr_assert_eq(nm, want_nm);
    cr_assert_eq(nm, NSER * 4, "Dec, Jan, Feb and Mar for every series");
    /* each hourly put names the monthly put of its series and month (the
     * store moves gauge lasts along that link), after both were reordered */
    for (size_t i = 0; i < nh; i++) {
        cr_assert(h[i].month_plus1 >= 1 && h[i].month_plus1 <= nm, "hourly put %zu: no month", i);
        const tally__store_put_t *mp = &m[h[i].month_plus1 - 1];
        cr_assert_eq(mp->series, h[i].series, "hourly put %zu: another series' month", i);
        cr_assert_eq(mp->period_s, tally__time_month_start(h[i].period_s),
                     "hourly put %zu: the wrong month", i);
    }

    /* the hole stayed a hole: no hourly put for it */
    for (size_t i = 0; i < nh; i++)
        cr_assert(!(series_of(t, &h[i]) == sid[4] && h[i].period_s == T_2024_02_29_23));

    tally__cells_destroy(c);
    tally__strtab_destroy(t);
}

Test(cells, monthly_put_of_a_leap_day_and_march_first_are_separate)
{
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    uint32_t s = intern_series(t, "acme", "req", NULL, 0);
    cr_assert_eq(tally__cells_add(c, s, T_2024_02_29_23, 0, 5, 0, T_2024_02_29_23 * 1000), 0);
    cr_assert_eq(tally__cells_add(c, s, T_2024_02_29_23, 0, 6, 0, T_2024_02_29_23 * 1000 + 1), 0);
    cr_assert_eq(tally__cells_add(c, s, T_2024_03_01_00, 0, 100, 0, T_2024_03_01_00 * 1000), 0);
    cr_assert_eq(tally__cells_add(c, s, T_2024_02_01, 1, 0, 0.5, T_2024_02_01 * 1000), 0);
    const tally__store_put_t *h, *m;
    size_t nh, nm;
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(nh, 3);
    cr_assert_eq(h[0].period_s, T_2024_02_01);
    cr_assert_eq(h[1].period_s, T_2024_02_29_23);
    cr_assert_eq(h[1].delta->sum_i, 11);
    cr_assert_eq(h[1].delta->count, 2);
    cr_assert_eq(h[2].period_s, T_2024_03_01_00);
    cr_assert_eq(nm, 2);
    cr_assert_eq(m[0].period_s, T_2024_02_01);
    cr_assert_eq(m[0].delta->sum_i, 11);
    cr_assert_eq(m[0].delta->sum_f, 0.5);
    cr_assert(m[0].delta->flags & TALLY_ROLLUP_FLOAT, "the float hour's flag reaches the month");
    cr_assert_eq(m[0].delta->count, 3);
    cr_assert_eq(m[0].delta->last, 6.0);
    cr_assert_eq(m[1].period_s, T_2024_03_01_00);
    cr_assert_eq(m[1].delta->sum_i, 100);
    cr_assert_eq(m[1].delta->count, 1);
    cr_assert_eq(m[1].delta->flags, 0);
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
}

/* The series of hourly puts, in output order, as strings. */
static void
assert_series_order(const tally__store_put_t *h, size_t nh, const char *const *want, size_t nw)
{
    cr_assert_eq(nh, nw, "%zu puts, want %zu", nh, nw);
    for (size_t i = 0; i < nh; i++)
        cr_assert(h[i].series_len == strlen(want[i]) &&
                      memcmp(h[i].series, want[i], h[i].series_len) == 0,
                  "put %zu is \"%.*s\", want \"%s\"", i, (int)h[i].series_len, h[i].series,
                  want[i]);
}

Test(cells, unnamed_series_come_out_in_table_order_then_by_learnt_id)
{
    char dir[64];
    tally__store_t *st = temp_store(dir, sizeof dir);
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    uint32_t zz = intern_str(t, "zz"), aa = intern_str(t, "aa"), mm = intern_str(t, "mm");
    const int64_t hr = T_2024_01_01_00;
    cr_assert_eq(tally__cells_add(c, mm, hr, 0, 2, 0, 1), 0);
    cr_assert_eq(tally__cells_add(c, aa, hr, 0, 3, 0, 1), 0);
    cr_assert_eq(tally__cells_add(c, zz, hr, 0, 1, 0, 1), 0);
    const tally__store_put_t *h, *m;
    size_t nh, nm;
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    /* nothing is named yet: table order, every put asks to learn its id */
    static const char *const first[] = {"zz", "aa", "mm"};
    assert_series_order(h, nh, first, 3);
    assert_puts_in_key_order(t, h, nh, "first flush");
    for (size_t i = 0; i < nh; i++) {
        cr_assert_eq(h[i].sid1, 0);
        cr_assert_not_null(h[i].learn);
    }
    cr_assert_eq(h[0].delta->sum_i, 1);
    cr_assert_eq(h[1].delta->sum_i, 3);
    /* a prepare without a commit learns nothing */
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(h[0].sid1, 0);
    cr_assert_eq(tally__store_commit(st, h, nh, m, nm, NULL, 0), 0);
    tally__cells_reset(c);
    cr_assert_eq(tally__cells_cells(c), 0);

    /* new series interned between; the old ones now carry the ids the
     * commit gave them (0, 1, 2 in put order: zz, aa, mm) and come first */
    uint32_t b = intern_str(t, "b"), a = intern_str(t, "a");
    cr_assert_eq(tally__cells_add(c, a, hr, 0, 30, 0, 1), 0);
    cr_assert_eq(tally__cells_add(c, mm, hr, 0, 20, 0, 1), 0);
    cr_assert_eq(tally__cells_add(c, b, hr, 0, 50, 0, 1), 0);
    cr_assert_eq(tally__cells_add(c, aa, hr + 3600, 0, 70, 0, 1), 0);
    cr_assert_eq(tally__cells_add(c, aa, hr, 0, 80, 0, 1), 0);
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    static const char *const second[] = {"aa", "mm", "b", "a", "aa"};
    assert_series_order(h, nh, second, 5);
    assert_puts_in_key_order(t, h, nh, "second flush");
    cr_assert_eq(h[0].sid1, 2, "aa was the second series the store named");
    cr_assert_eq(h[1].sid1, 3);
    cr_assert_eq(h[2].sid1, 0);
    cr_assert_eq(h[4].sid1, 2);
    cr_assert_eq(h[0].delta->sum_i, 80, "aa's first hour holds only the new event");
    cr_assert_eq(h[0].delta->count, 1);
    cr_assert_eq(h[4].delta->sum_i, 70);
    cr_assert_eq(h[4].month_plus1, h[0].month_plus1, "both hours of aa feed one month");
    cr_assert_eq(m[h[4].month_plus1 - 1].series, h[4].series);
    cr_assert_eq(nm, 4, "aa's two hours share one month");
    cr_assert_eq(m[0].delta->sum_i, 150);
    assert_puts_in_key_order(t, m, nm, "second flush, monthly");

    /* a prepare without a reset (a failed commit) gives the same puts again */
    size_t nh2, nm2;
    cr_assert_eq(prepare(c, &h, &nh2, &m, &nm2), 0);
    cr_assert_eq(nh2, nh);
    cr_assert_eq(nm2, nm);
    assert_series_order(h, nh, second, 5);
    cr_assert_eq(m[0].delta->sum_i, 150, "the month is rebuilt, not merged twice");
    cr_assert_eq(tally__store_commit(st, h, nh, m, nm, NULL, 0), 0);
    tally__cells_reset(c);

    /* b and a were named 3 and 4: now all five sort by id */
    for (uint32_t id = 0; id < 5; id++)
        cr_assert_eq(tally__cells_add(c, id, hr, 0, 1, 0, 2), 0);
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    static const char *const third[] = {"zz", "aa", "mm", "b", "a"};
    assert_series_order(h, nh, third, 5);
    for (size_t i = 0; i < nh; i++)
        cr_assert_eq(h[i].sid1, i + 1);
    assert_puts_in_key_order(t, h, nh, "third flush");

    tally__cells_destroy(c);
    tally__strtab_destroy(t);
    temp_store_close(st, dir);
}

Test(cells, many_flushes_of_named_and_new_series_stay_in_key_order)
{
    /* several committed flushes, each interning new random series (past
     * 1024 and 2048 ids, so the id arrays grow) and touching a random
     * subset of all: named ones by id, new ones after them */
    char dir[64];
    tally__store_t *st = temp_store(dir, sizeof dir);
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    uint64_t seed = 99;
    uint32_t nseries = 0;
    static const int64_t hrs[] = {T_2023_12_31_23, T_2024_01_01_00, T_2024_02_29_23,
                                  T_2024_03_01_00};
    for (int round = 0; round < 8; round++) {
        uint32_t fresh = round == 0 ? 3 : 100 + (uint32_t)(rnd(&seed) % 700);
        for (uint32_t i = 0; i < fresh; i++) {
            char s[24];
            int len = 1 + (int)(rnd(&seed) % 8);
            for (int k = 0; k < len; k++)
                s[k] = (char)('a' + rnd(&seed) % 5); /* small alphabet: many prefixes */
            s[len] = '\0';
            uint32_t id;
            int rc = tally__strtab_intern(t, s, (uint32_t)len, &id);
            cr_assert_geq(rc, 0);
            if (rc == 1)
                nseries++;
        }
        cr_assert_eq(tally__strtab_count(t), nseries);
        int64_t want_total = 0;
        size_t adds = 2000 + (size_t)(rnd(&seed) % 2000);
        for (size_t i = 0; i < adds; i++) {
            uint32_t s = (uint32_t)(rnd(&seed) % nseries);
            int64_t v = (int64_t)(rnd(&seed) % 100);
            want_total += v;
            cr_assert_eq(tally__cells_add(c, s, hrs[rnd(&seed) % 4], 0, v, 0, (int64_t)i), 0);
        }
        const tally__store_put_t *h, *m;
        size_t nh, nm;
        cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
        cr_assert_eq(nh, tally__cells_cells(c));
        char what[32];
        snprintf(what, sizeof what, "round %d hourly", round);
        assert_puts_in_key_order(t, h, nh, what);
        snprintf(what, sizeof what, "round %d monthly", round);
        assert_puts_in_key_order(t, m, nm, what);
        int64_t got_h = 0, got_m = 0;
        for (size_t i = 0; i < nh; i++)
            got_h += h[i].delta->sum_i;
        for (size_t i = 0; i < nm; i++)
            got_m += m[i].delta->sum_i;
        cr_assert_eq(got_h, want_total, "round %d: hourly sums", round);
        cr_assert_eq(got_m, want_total, "round %d: monthly sums", round);
        cr_assert_eq(tally__store_commit(st, h, nh, m, nm, NULL, 0), 0);
        tally__cells_reset(c);
    }
    cr_assert_gt(nseries, 2048);
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
    temp_store_close(st, dir);
}

static const tally__strtab_t *g_t;
static tally__store_t *g_st;

/* Add hours of each listed series in descending order, check the flush and
 * commit it to g_st. */
static void
flush_descending_hours(tally__cells_t *c, const uint32_t *ids, size_t n, int nhours)
{
    for (size_t k = 0; k < n; k++)
        for (int hr = nhours - 1; hr >= 0; hr--)
            cr_assert_eq(tally__cells_add(c, ids[k], T_2023_12_31_22 + 3600 * hr, 0, hr + 1, 0, hr),
                         0);
    const tally__store_put_t *h, *m;
    size_t nh, nm;
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(nh, n * (size_t)nhours);
    assert_puts_in_key_order(g_t, h, nh, "descending hours");
    assert_puts_in_key_order(g_t, m, nm, "descending hours, monthly");
    int64_t total = 0, want = 0;
    for (size_t i = 0; i < nh; i++) {
        total += h[i].delta->sum_i;
        cr_assert_eq(h[i].delta->sum_i, (h[i].period_s - T_2023_12_31_22) / 3600 + 1);
    }
    for (size_t i = 0; i < nm; i++)
        want += m[i].delta->sum_i;
    cr_assert_eq(total, want, "monthly sums equal hourly sums");
    cr_assert_eq(nm, n * 2, "December and January for every series");
    cr_assert_eq(tally__store_commit(g_st, h, nh, m, nm, NULL, 0), 0);
    tally__cells_reset(c);
}

Test(cells, a_small_flush_after_many_series_stays_sorted)
{
    /* a flush touching few of many named series takes the comparison-sort
     * path; one touching most of them the counting-sort path: both sorted */
    char dir[64];
    g_st = temp_store(dir, sizeof dir);
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    g_t = t;
    cr_assert_eq(tally__cells_create(t, &c), 0);
    enum { N = 3000 };
    static uint32_t ids[N];
    uint64_t seed = 5;
    for (uint32_t i = 0; i < N; i++) {
        char s[32];
        snprintf(s, sizeof s, "ns\037s%08llx", (unsigned long long)(rnd(&seed) & 0xffffffffull));
        ids[i] = intern_str(t, s);
    }
    cr_assert_eq(tally__strtab_count(t), N, "the generated names are distinct");
    flush_descending_hours(c, ids, N, 4); /* every series, none named yet */
    flush_descending_hours(c, ids, N, 4); /* every series by id: counting sort */
    /* a handful of series (in id order, not key order), 30 hours each */
    static const uint32_t few[] = {2999, 17, 1500, 3, 2048, 999, 0};
    flush_descending_hours(c, few, sizeof few / sizeof few[0], 30);
    /* one series only */
    flush_descending_hours(c, &ids[1234], 1, 48);
    /* new series after that, with some named ones: new ones go last */
    uint32_t late[5];
    late[0] = intern_str(t, "ns\037s00000000-late");
    late[1] = ids[2000];
    late[2] = intern_str(t, "a-first");
    late[3] = intern_str(t, "zz-last");
    late[4] = ids[5];
    flush_descending_hours(c, late, 5, 5);
    flush_descending_hours(c, late, 5, 5); /* now all named */
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
    temp_store_close(g_st, dir);
    g_st = NULL;
}

Test(cells, reset_empties_the_table)
{
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    uint32_t s = intern_series(t, "acme", "req", NULL, 0);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(tally__cells_add(c, s, T_2024_01_01_00 + 3600 * i, 0, 5, 0, 1), 0);
    cr_assert_eq(tally__cells_cells(c), 50);
    tally__cells_reset(c);
    cr_assert_eq(tally__cells_cells(c), 0);
    const tally__store_put_t *h, *m;
    size_t nh, nm;
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(nh, 0);
    cr_assert_eq(nm, 0);
    /* the same (series, hour) starts from zero again */
    cr_assert_eq(tally__cells_add(c, s, T_2024_01_01_00, 0, 7, 0, 1), 0);
    cr_assert_eq(tally__cells_cells(c), 1);
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(nh, 1);
    cr_assert_eq(h[0].delta->sum_i, 7);
    cr_assert_eq(h[0].delta->count, 1);
    cr_assert_eq(nm, 1);
    cr_assert_eq(m[0].delta->sum_i, 7);
    tally__cells_reset(c);
    tally__cells_reset(c); /* twice is harmless */
    cr_assert_eq(tally__cells_cells(c), 0);
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
}

Test(cells, hundred_thousand_cells_grow_the_index_and_stay_correct)
{
    enum { NSER = 500, NHRS = 200 }; /* 100,000 cells */
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    size_t bytes0 = tally__cells_bytes(c);
    /* ids in reverse key order */
    for (int i = NSER - 1; i >= 0; i--) {
        char s[32];
        snprintf(s, sizeof s, "ns\037series-%05d", i);
        intern_str(t, s);
    }
    /* the hours straddle 2024-01-01 and every (series, hour) gets two events:
     * value (series * 1000 + hour) and 1 */
    int64_t h0 = T_2024_01_01_00 - 100 * 3600;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t s = 0; s < NSER; s++)
            for (int hr = 0; hr < NHRS; hr++) {
                int64_t v = pass ? 1 : (int64_t)s * 1000 + hr;
                cr_assert_eq(tally__cells_add(c, s, h0 + 3600 * hr, 0, v, 0, pass), 0);
            }
    cr_assert_eq(tally__cells_cells(c), (size_t)NSER * NHRS);
    cr_assert_gt(tally__cells_bytes(c), bytes0);
    const tally__store_put_t *h, *m;
    size_t nh, nm;
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(nh, (size_t)NSER * NHRS);
    assert_puts_in_key_order(t, h, nh, "hourly");
    assert_puts_in_key_order(t, m, nm, "monthly");
    cr_assert_eq(nm, (size_t)NSER * 2, "December and January for every series");
    for (size_t i = 0; i < nh; i++) {
        /* none named by a store: hour by hour, series in table order;
         * table id NSER-1-k holds name k */
        uint32_t sid = (uint32_t)(i % NSER), hr = (uint32_t)(i / NSER), k = NSER - 1 - sid;
        char want[32];
        snprintf(want, sizeof want, "ns\037series-%05u", k);
        cr_assert(h[i].series_len == strlen(want) && memcmp(h[i].series, want, strlen(want)) == 0,
                  "put %zu has the wrong series", i);
        cr_assert_eq(h[i].period_s, h0 + 3600 * (int64_t)hr);
        cr_assert_eq(h[i].delta->sum_i, (int64_t)sid * 1000 + hr + 1, "put %zu sum", i);
        cr_assert_eq(h[i].delta->count, 2);
        cr_assert_eq(h[i].delta->last, 1.0, "the later event time wins");
    }
    for (size_t j = 0; j < nm; j++) {
        uint32_t sid = (uint32_t)(j % NSER), jan = (uint32_t)(j / NSER);
        /* December holds hours 0..99, January hours 100..199 */
        int64_t lo = jan ? 100 : 0, want = 0;
        for (int64_t hr = lo; hr < lo + 100; hr++)
            want += (int64_t)sid * 1000 + hr + 1;
        cr_assert_eq(m[j].delta->sum_i, want, "monthly put %zu", j);
        cr_assert_eq(m[j].delta->count, 200);
        cr_assert_eq(m[j].period_s, jan ? T_2024_01_01_00 : T_2023_12_01);
    }
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
}

/* A cell keeps the rollup record's arithmetic in its own, smaller layout:
 * random events, fed to a cell and to tally__rollup_add(), must come out
 * the same, including floats, int64 overflow, ties of event time and
 * events out of time order. */
Test(cells, a_cell_adds_exactly_as_the_rollup_record_does)
{
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    enum { NS = 64, NEV = 20000 };
    for (int i = 0; i < NS; i++) {
        char s[16];
        snprintf(s, sizeof s, "ns\037s%d", i);
        intern_str(t, s);
    }
    tally__rollup_t want[NS];
    for (int i = 0; i < NS; i++)
        tally__rollup_init(&want[i]);
    uint64_t seed = 0x5eed;
    const int64_t hour = T_2024_02_29_23;
    for (int e = 0; e < NEV; e++) {
        uint32_t s = (uint32_t)(rnd(&seed) % NS);
        uint64_t r = rnd(&seed);
        int is_float = s % 4 == 0 && r % 3 == 0; /* a quarter of series mix in floats */
        int64_t iv = s % 8 == 1 ? INT64_MAX / 3 : (int64_t)(r % 2001) - 1000; /* some overflow */
        double fv = (double)(int64_t)(r % 1000) / 8.0 - 60.0;
        int64_t ts = hour * 1000 + (int64_t)(rnd(&seed) % 50); /* many ties, out of order */
        cr_assert_eq(tally__cells_add(c, s, hour, is_float, iv, fv, ts), 0);
        tally__rollup_add(&want[s], is_float, iv, fv, ts);
    }
    const tally__store_put_t *h, *m;
    size_t nh, nm;
    cr_assert_eq(prepare(c, &h, &nh, &m, &nm), 0);
    cr_assert_eq(nh, (size_t)NS);
    int floats = 0;
    for (size_t i = 0; i < nh; i++) {
        uint32_t s = series_of(t, &h[i]);
        const tally__rollup_t *got = h[i].delta, *w = &want[s];
        cr_assert_eq(got->sum_i, w->sum_i, "series %u sum_i", s);
        cr_assert_eq(got->sum_f, w->sum_f, "series %u sum_f", s);
        cr_assert_eq(got->count, w->count, "series %u count", s);
        cr_assert_eq(got->max, w->max, "series %u max", s);
        cr_assert_eq(got->last, w->last, "series %u last", s);
        cr_assert_eq(got->last_ts_ms, w->last_ts_ms, "series %u last time", s);
        cr_assert_eq(got->flags, w->flags, "series %u flags", s);
        cr_assert_eq(got->last_sum, 0.0, "deltas carry no last_sum");
        floats += (w->flags & TALLY_ROLLUP_FLOAT) != 0;
    }
    cr_assert_geq(floats, NS / 4, "the float and overflow paths ran");
    cr_assert_lt(floats, NS, "so did the exact integer one");
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
}

/* ---- the real flush path against a model ---------------------------------------- */

enum { MODEL_SERIES = 300, MODEL_HOURS = 6 };

typedef struct model {
    int64_t sum[MODEL_SERIES][MODEL_HOURS];
    uint64_t count[MODEL_SERIES][MODEL_HOURS];
    uint64_t seen[MODEL_SERIES][MODEL_HOURS]; /* records the scan visited */
    int64_t h0;
    const tally__strtab_t *t;
} model_t;

static int
model_check(void *ctx, const char *series, size_t len, int64_t period_s, const tally__rollup_t *r)
{
    model_t *m = ctx;
    uint32_t id = UINT32_MAX;
    for (uint32_t i = 0; i < MODEL_SERIES; i++) {
        uint32_t l;
        const char *s = tally__strtab_get(m->t, i, &l);
        if (l == len && memcmp(s, series, len) == 0)
            id = i;
    }
    cr_assert_neq(id, UINT32_MAX, "the store holds a series never added");
    int64_t hr = (period_s - m->h0) / 3600;
    cr_assert(hr >= 0 && hr < MODEL_HOURS && (period_s - m->h0) % 3600 == 0, "period %lld",
              (long long)period_s);
    cr_assert_eq(r->sum_i, m->sum[id][hr], "series %u hour %lld: sum", id, (long long)hr);
    cr_assert_eq(r->count, m->count[id][hr], "series %u hour %lld: count", id, (long long)hr);
    m->seen[id][hr]++;
    return 0;
}

/* Rounds of flushes through tally__cells_prepare and tally__store_commit_src,
 * as the aggregator does them: each round a random part of the series, in
 * one or two hours (late events land in earlier hours, among records that
 * exist), new series now and then; the store must hold exactly what was
 * added. Runs of consecutive records, gaps between them, records inserted
 * before others and records appended all occur. */
Test(cells, flushes_of_random_activity_commit_exactly_what_was_added)
{
    char dir[64];
    tally__store_t *st = temp_store(dir, sizeof dir);
    tally__strtab_t *t;
    tally__cells_t *c;
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    model_t *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    m->h0 = T_2024_02_29_23 - 3 * 3600; /* the hours cross into March */
    m->t = t;
    for (int i = 0; i < MODEL_SERIES; i++) {
        char s[32];
        snprintf(s, sizeof s, "ns-%d\037m", (i * 7919) % MODEL_SERIES);
        intern_str(t, s);
    }
    uint64_t seed = 42;
    uint32_t known = 20; /* series in play so far */
    for (int round = 0; round < 60; round++) {
        int hr = round * MODEL_HOURS / 60;                /* the current hour */
        int late = hr > 0 && rnd(&seed) % 3 == 0 ? 1 : 0; /* and an earlier one */
        uint32_t pct = 20 + (uint32_t)(rnd(&seed) % 81);
        if (known < MODEL_SERIES && rnd(&seed) % 2)
            known += 1 + (uint32_t)(rnd(&seed) % 30);
        if (known > MODEL_SERIES)
            known = MODEL_SERIES;
        for (uint32_t s = 0; s < known; s++) {
            for (int k = 0; k <= late; k++) {
                if (rnd(&seed) % 100 >= pct)
                    continue;
                int h = hr - k;
                int64_t v = (int64_t)(rnd(&seed) % 1000);
                int64_t hs = m->h0 + 3600 * h;
                cr_assert_eq(tally__cells_add(c, s, hs, 0, v, 0, hs * 1000 + round), 0);
                m->sum[s][h] += v;
                m->count[s][h]++;
            }
        }
        tally__store_src_t src;
        cr_assert_eq(tally__cells_prepare(c, &src), 0);
        cr_assert_eq(tally__store_commit_src(st, &src, NULL, 0), 0, "round %d", round);
        tally__cells_reset(c);
    }
    cr_assert_eq(
        tally__store_scan(st, TALLY_STORE_HOURLY, NULL, 0, INT64_MIN, INT64_MAX, model_check, m),
        0);
    for (int s = 0; s < MODEL_SERIES; s++)
        for (int h = 0; h < MODEL_HOURS; h++)
            cr_assert_eq(m->seen[s][h], m->count[s][h] ? 1u : 0u,
                         "series %d hour %d: %llu records for %llu events", s, h,
                         (unsigned long long)m->seen[s][h], (unsigned long long)m->count[s][h]);
    free(m);
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
    temp_store_close(st, dir);
}

/* ---- int64 overflow: counted once, value goes on as float ------------------------ */

/* Every hourly (or monthly) record of the store as read back. */
typedef struct one_record {
    tally__rollup_t r;
    int n;
} one_record_t;

static int
grab_record(void *ctx, const char *series, size_t len, int64_t period_s, const tally__rollup_t *r)
{
    (void)series;
    (void)len;
    (void)period_s;
    one_record_t *o = ctx;
    o->r = *r;
    o->n++;
    return 0;
}

Test(cells, an_overflowing_add_is_counted_once_and_goes_on_as_float)
{
    tally__strtab_t *t;
    tally__cells_t *c;
    char text[TALLY_SERIES_TEXT_MAX];
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    tally_label_t l[1] = {{"object", "lb1"}};
    uint32_t s = intern_series(t, "acme", "req", l, 1);
    uint32_t other = intern_series(t, "acme", "req", NULL, 0);
    const int64_t h = T_2024_01_01_00, big = INT64_MAX - 1;
    cr_assert_eq(tally__cells_take_overflows(c, text, sizeof text), 0);
    cr_assert_str_eq(text, "");
    cr_assert_eq(tally__cells_add(c, s, h, 0, big, 0, h * 1000 + 1), 0);
    cr_assert_eq(tally__cells_add(c, other, h, 0, big, 0, h * 1000 + 1), 0);
    cr_assert_eq(tally__cells_take_overflows(c, NULL, 0), 0, "one value per cell fits");
    cr_assert_eq(tally__cells_add(c, s, h, 0, big, 0, h * 1000 + 2), 0);
    cr_assert_eq(tally__cells_take_overflows(c, text, sizeof text), 1);
    cr_assert_str_eq(text, "acme/req{object=lb1}");
    cr_assert_eq(tally__cells_take_overflows(c, text, sizeof text), 0, "a take resets");
    cr_assert_str_eq(text, "");
    /* each addition that does not fit counts; one that fits, or a float, does not */
    cr_assert_eq(tally__cells_add(c, s, h, 0, 5, 0, h * 1000 + 3), 0);
    cr_assert_eq(tally__cells_add(c, s, h, 0, -10, 0, h * 1000 + 4), 0);
    cr_assert_eq(tally__cells_add(c, s, h, 1, 0, 0.5, h * 1000 + 5), 0);
    cr_assert_eq(tally__cells_add(c, other, h, 0, -3, 0, h * 1000 + 6), 0);
    cr_assert_eq(tally__cells_take_overflows(c, NULL, 0), 1, "only the +5 overflowed");
    /* the delta carries the value and both flags, hourly and monthly */
    const tally__store_put_t *hp, *mp;
    size_t nh, nm;
    cr_assert_eq(prepare(c, &hp, &nh, &mp, &nm), 0);
    cr_assert_eq(nh, 2);
    cr_assert_eq(nm, 2);
    for (size_t i = 0; i < nh; i++) {
        int flagged = series_of(t, &hp[i]) == s;
        const tally__rollup_t *d[2] = {hp[i].delta, mp[i].delta};
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(tally__rollup_int_overflowed(d[k]), flagged, "put %zu kind %d", i, k);
            if (!flagged) {
                cr_assert_eq(d[k]->sum_i, big - 3);
                cr_assert(tally__rollup_sum_is_int(d[k]));
                continue;
            }
            cr_assert(d[k]->flags & TALLY_ROLLUP_FLOAT);
            cr_assert_eq(d[k]->count, 5);
            cr_assert_eq(d[k]->sum_i, big - 10);
            cr_assert_eq(d[k]->sum_f, (double)big + 5.0 + 0.5);
            double want = 2.0 * (double)big - 4.5;
            cr_assert(fabs(tally__rollup_sum(d[k]) - want) <= want * 1e-15);
        }
    }
    cr_assert_eq(tally__cells_take_overflows(c, NULL, 0), 0, "preparing counts nothing more");
    /* a new cell of the same series starts exact again */
    tally__cells_reset(c);
    cr_assert_eq(tally__cells_take_overflows(c, NULL, 0), 0);
    cr_assert_eq(tally__cells_add(c, s, h, 0, 1, 0, h * 1000 + 7), 0);
    cr_assert_eq(prepare(c, &hp, &nh, &mp, &nm), 0);
    cr_assert_eq(hp[0].delta->flags, 0);
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
}

/* Hours that each fit, of one series and month, whose month does not:
 * the monthly fold of the flush overflows. It counts once, after the
 * commit, however many times the commit read the flush. */
Test(cells, a_month_past_int64_counts_its_fold_once_after_the_commit)
{
    char dir[64];
    tally__store_t *st = temp_store(dir, sizeof dir);
    tally__strtab_t *t;
    tally__cells_t *c;
    char text[TALLY_SERIES_TEXT_MAX];
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    uint32_t s = intern_series(t, "acme", "bytes", NULL, 0);
    const int64_t h0 = T_2024_01_01_00, h1 = T_2024_01_01_01;
    cr_assert_eq(tally__cells_add(c, s, h0, 0, INT64_MAX - 10, 0, h0 * 1000), 0);
    cr_assert_eq(tally__cells_add(c, s, h1, 0, 100, 0, h1 * 1000), 0);
    cr_assert_eq(tally__cells_take_overflows(c, NULL, 0), 0, "each hour fits");
    tally__store_src_t src;
    cr_assert_eq(tally__cells_prepare(c, &src), 0);
    cr_assert_eq(src.nh, 2);
    cr_assert_eq(src.nm, 1);
    /* a first, abandoned read of the monthly puts (a commit that failed) */
    tally__store_put_t p[4];
    tally__rollup_t d[4];
    cr_assert_eq(src.fill(src.ctx, TALLY_STORE_MONTHLY, 1, p, d, 4), 1);
    cr_assert(tally__rollup_int_overflowed(&d[0]));
    cr_assert_eq(tally__store_commit_src(st, &src, NULL, 0), 0);
    cr_assert_eq(tally__cells_take_overflows(c, NULL, 0), 0, "counted only at the reset");
    tally__cells_reset(c);
    cr_assert_eq(tally__cells_take_overflows(c, text, sizeof text), 1, "once, not per read");
    cr_assert_str_eq(text, "acme/bytes");
    cr_assert_eq(tally__store_take_overflows(st, NULL, 0), 0, "new records: no merge overflowed");
    one_record_t o = {0};
    cr_assert_eq(
        tally__store_scan(st, TALLY_STORE_MONTHLY, NULL, 0, INT64_MIN, INT64_MAX, grab_record, &o),
        0);
    cr_assert_eq(o.n, 1);
    cr_assert(tally__rollup_int_overflowed(&o.r), "the stored month carries the flag");
    cr_assert_eq(o.r.sum_i, INT64_MAX - 10);
    cr_assert_eq(o.r.sum_f, 100.0);
    /* a reset without a commit in between counts no fold */
    cr_assert_eq(tally__cells_add(c, s, h0, 0, 1, 0, h0 * 1000), 0);
    tally__cells_reset(c);
    cr_assert_eq(tally__cells_take_overflows(c, NULL, 0), 0);
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
    temp_store_close(st, dir);
}

/* A flush whose delta fits, merged into a stored record it takes past
 * int64: the store counts the hourly and the monthly merge, for committed
 * transactions only, and the stored records carry the flag. */
Test(cells, the_store_counts_merges_past_int64_of_committed_flushes)
{
    char dir[64];
    tally__store_t *st = temp_store(dir, sizeof dir);
    tally__strtab_t *t;
    tally__cells_t *c;
    char text[TALLY_SERIES_TEXT_MAX];
    cr_assert_eq(tally__strtab_create(&t), 0);
    cr_assert_eq(tally__cells_create(t, &c), 0);
    tally_label_t l[1] = {{"object", "cdn"}};
    uint32_t s = intern_series(t, "shop", "bytes_out", l, 1);
    const int64_t h = T_2024_01_01_00, big = INT64_MAX - 1;
    tally__store_src_t src;
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(tally__cells_add(c, s, h, 0, big, 0, h * 1000 + round), 0);
        cr_assert_eq(tally__cells_prepare(c, &src), 0);
        cr_assert_eq(tally__store_commit_src(st, &src, NULL, 0), 0);
        tally__cells_reset(c);
        cr_assert_eq(tally__cells_take_overflows(c, NULL, 0), 0, "round %d: no cell overflowed",
                     round);
    }
    cr_assert_eq(tally__store_take_overflows(st, text, sizeof text), 2, "the hour and the month");
    cr_assert_str_eq(text, "shop/bytes_out{object=cdn}");
    cr_assert_eq(tally__store_take_overflows(st, text, sizeof text), 0, "a take resets");
    cr_assert_str_eq(text, "");
    for (int which = 0; which < 2; which++) {
        one_record_t o = {0};
        cr_assert_eq(tally__store_scan(st, which, NULL, 0, INT64_MIN, INT64_MAX, grab_record, &o),
                     0);
        cr_assert_eq(o.n, 1);
        cr_assert(tally__rollup_int_overflowed(&o.r), "kind %d", which);
        cr_assert_eq(o.r.sum_i, big);
        cr_assert_eq(o.r.sum_f, (double)big);
        cr_assert_eq(o.r.count, 2);
    }
    /* a commit that fails after an overflowing merge counts nothing: the
     * second put names an id the store never gave out */
    tally__rollup_t d;
    tally__rollup_init(&d);
    tally__rollup_add(&d, 0, big, 0, h * 1000 + 9);
    uint32_t len;
    const char *key = tally__strtab_get(t, s, &len);
    tally__store_put_t puts[2] = {
        {.series = key, .series_len = len, .period_s = h, .delta = &d},
        {.series = key, .series_len = len, .period_s = h + 3600, .delta = &d, .sid1 = 1000}};
    cr_assert_neq(tally__store_commit(st, puts, 2, NULL, 0, NULL, 0), 0);
    cr_assert_eq(tally__store_take_overflows(st, NULL, 0), 0, "an aborted merge is not counted");
    /* the same merge committed is */
    cr_assert_eq(tally__store_commit(st, puts, 1, NULL, 0, NULL, 0), 0);
    cr_assert_eq(tally__store_take_overflows(st, text, sizeof text), 1);
    cr_assert_str_eq(text, "shop/bytes_out{object=cdn}");
    tally__cells_destroy(c);
    tally__strtab_destroy(t);
    temp_store_close(st, dir);
}
