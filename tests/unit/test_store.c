/* test_store.c — Criterion tests of the LMDB store in lib/store: commits, merges, scans with
 * bounds, producers, map-full atomicity, growth and backup. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <lmdb.h>

#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)
#define HOUR 3600LL
#define T0 1709247600LL /* 2024-02-29T23:00:00Z */

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* ---- temp directories -------------------------------------------------------- */

/* ---- building puts -------------------------------------------------------------- */

/* A series key built the real way into its own storage. */
typedef struct skey {
    char b[TALLY_SERIES_KEY_MAX];
    uint32_t n;
} skey_t;

static void
mk_series(skey_t *k, const char *ns, const char *metric, const tally_label_t *l, size_t nl)
{
    k->n = (uint32_t)tally__series_key(k->b, ns, strlen(ns), metric, strlen(metric), l, nl);
}

static tally__rollup_t
rollup_of(int64_t v, uint64_t count, int64_t ts_ms)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    for (uint64_t i = 0; i < count; i++)
        tally__rollup_add(&r, 0, v, 0.0, ts_ms);
    return r;
}

/* ---- collecting a scan ---------------------------------------------------------- */

typedef struct rec {
    char series[TALLY_SERIES_KEY_MAX];
    size_t series_len;
    int64_t period;
    tally__rollup_t r;
} rec_t;

typedef struct recs {
    rec_t *v;
    size_t n, cap;
    int stop_after; /* 0: never stop */
    int stop_value;
} recs_t;

static int
collect(void *ctx, const char *series, size_t series_len, int64_t period_s,
        const tally__rollup_t *r)
{
    recs_t *rs = ctx;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 64;
        rs->v = realloc(rs->v, rs->cap * sizeof *rs->v);
        cr_assert_not_null(rs->v);
    }
    cr_assert_leq(series_len, sizeof rs->v[0].series);
    rec_t *x = &rs->v[rs->n++];
    memcpy(x->series, series, series_len);
    x->series_len = series_len;
    x->period = period_s;
    x->r = *r;
    if (rs->stop_after && (int)rs->n == rs->stop_after)
        return rs->stop_value;
    return 0;
}

static void
recs_free(recs_t *rs)
{
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}

static int
rec_is(const rec_t *x, const skey_t *k, int64_t period)
{
    return x->series_len == k->n && memcmp(x->series, k->b, k->n) == 0 && x->period == period;
}

static int
series_cmp(const rec_t *a, const rec_t *b)
{
    int c =
        memcmp(a->series, b->series, a->series_len < b->series_len ? a->series_len : b->series_len);
    if (c == 0)
        c = a->series_len < b->series_len ? -1 : a->series_len > b->series_len;
    return c;
}

static int
rec_series_major_cmp(const void *pa, const void *pb)
{
    const rec_t *a = pa, *b = pb;
    int c = series_cmp(a, b);
    return c ? c : a->period < b->period ? -1 : a->period > b->period;
}

/* Scan, check the store's order (periods in order, each (series, period)
 * once), then sort series by series so tests can list what they expect. */
static int
scan(tally__store_t *s, int which, const char *ns, int64_t from, int64_t to, recs_t *out)
{
    memset(out, 0, sizeof *out);
    int rc = tally__store_scan(s, which, ns, ns ? strlen(ns) : 0, from, to, collect, out);
    for (size_t x = 1; x < out->n; x++) {
        cr_assert_leq(out->v[x - 1].period, out->v[x].period, "record %zu: periods out of order",
                      x);
        if (out->v[x - 1].period == out->v[x].period)
            cr_assert_neq(series_cmp(&out->v[x - 1], &out->v[x]), 0,
                          "record %zu: the same (series, period) twice", x);
    }
    if (out->n)
        qsort(out->v, out->n, sizeof *out->v, rec_series_major_cmp);
    return rc;
}

/* ---- producers ---------------------------------------------------------------- */

typedef struct prods {
    char id[8][TALLY_MAX_PRODUCER_LEN];
    size_t id_len[8];
    tally__dedup_t st[8];
    int n;
} prods_t;

static int
collect_producer(void *ctx, const char *id, size_t id_len, const tally__dedup_t *state)
{
    prods_t *p = ctx;
    cr_assert_lt(p->n, 8);
    cr_assert_leq(id_len, sizeof p->id[0]);
    memcpy(p->id[p->n], id, id_len);
    p->id_len[p->n] = id_len;
    p->st[p->n] = *state;
    p->n++;
    return 0;
}

/* ---- tests --------------------------------------------------------------------- */

/* Fixture data: three series in two namespaces, five hours each, two months. */
typedef struct fixture {
    skey_t a, b, c; /* acme/cpu, acme/cpu{zone=eu}, beta/mem */
    tally__rollup_t hr[3][5];
    tally__rollup_t mo[3][2];
    tally__store_put_t hourly[15], monthly[6];
    tally__store_producer_t prod[2];
} fixture_t;

static void
fixture_init(fixture_t *f)
{
    memset(f, 0, sizeof *f);
    const tally_label_t eu[] = {{"zone", "eu"}};
    mk_series(&f->a, "acme", "cpu", NULL, 0);
    mk_series(&f->b, "acme", "cpu", eu, 1);
    mk_series(&f->c, "beta", "mem", NULL, 0);
    const skey_t *sk[3] = {&f->a, &f->b, &f->c};
    /* hours T0 .. T0+4h: Feb 29 23:00 and four hours of March 1 */
    for (int s = 0; s < 3; s++) {
        tally__rollup_init(&f->mo[s][0]);
        tally__rollup_init(&f->mo[s][1]);
        for (int h = 0; h < 5; h++) {
            f->hr[s][h] = rollup_of((s + 1) * 100 + h, (uint64_t)h + 1, (T0 + h * HOUR) * 1000);
            f->hourly[s * 5 + h] =
                (tally__store_put_t){sk[s]->b, sk[s]->n, T0 + h * HOUR, &f->hr[s][h]};
            tally__rollup_merge(&f->mo[s][h == 0 ? 0 : 1], &f->hr[s][h]);
        }
        f->monthly[s * 2] = (tally__store_put_t){sk[s]->b, sk[s]->n, 1706745600LL, &f->mo[s][0]};
        f->monthly[s * 2 + 1] =
            (tally__store_put_t){sk[s]->b, sk[s]->n, 1709251200LL, &f->mo[s][1]};
    }
    f->prod[0].id = "producer-a";
    f->prod[0].id_len = 10;
    f->prod[0].state.floor = 41;
    f->prod[0].state.max_seq = 44;
    f->prod[0].state.bits[0] = 0x5;
    f->prod[1].id = "producer-b";
    f->prod[1].id_len = 10;
    f->prod[1].state.floor = 1000000;
    f->prod[1].state.max_seq = 1000000;
    f->prod[1].state.bits[TALLY__DEDUP_WORDS - 1] = 1ull << 63;
}

/* Compares every field but last_sum, which the store derives (see
 * gauge_month_totals_hourly_lasts). */
static void
assert_same_rollup(const tally__rollup_t *pa, const tally__rollup_t *pb)
{
    tally__rollup_t ca = *pa, cb = *pb;
    ca.last_sum = cb.last_sum = 0;
    const tally__rollup_t *a = &ca, *b = &cb;
    cr_assert(memcmp(a, b, sizeof *a) == 0, "rollups differ: sum_i %lld/%lld count %llu/%llu",
              (long long)a->sum_i, (long long)b->sum_i, (unsigned long long)a->count,
              (unsigned long long)b->count);
}

Test(store, commit_reopen_and_scan_back)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    fixture_t f;
    fixture_init(&f);
    tally__store_t *s = NULL;
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_commit(s, f.hourly, 15, f.monthly, 6, f.prod, 2), 0);
    tally__store_close(s);
    s = NULL;
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);

    /* one namespace, all time: acme/cpu hours, then acme/cpu{zone=eu} hours */
    recs_t rs;
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "acme", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 10);
    for (int i = 0; i < 10; i++) {
        int ser = i / 5, h = i % 5;
        cr_assert(rec_is(&rs.v[i], ser ? &f.b : &f.a, T0 + h * HOUR), "record %d", i);
        assert_same_rollup(&rs.v[i].r, &f.hr[ser][h]);
    }
    recs_free(&rs);

    /* every namespace */
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 15);
    cr_assert(rec_is(&rs.v[14], &f.c, T0 + 4 * HOUR));
    assert_same_rollup(&rs.v[14].r, &f.hr[2][4]);
    recs_free(&rs);

    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "beta", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 5);
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "gamma", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 0, "an unknown namespace has nothing");
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "zzz", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 0, "a namespace after every key has nothing");
    recs_free(&rs);

    /* [from, to): from is included, to excluded, across every series */
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, T0 + HOUR, T0 + 3 * HOUR, &rs), 0);
    cr_assert_eq(rs.n, 6);
    const skey_t *sk[3] = {&f.a, &f.b, &f.c};
    for (int i = 0; i < 6; i++)
        cr_assert(rec_is(&rs.v[i], sk[i / 2], T0 + (1 + i % 2) * HOUR), "bounded record %d", i);
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "acme", T0 + 4 * HOUR, T0 + 5 * HOUR, &rs), 0);
    cr_assert_eq(rs.n, 2);
    cr_assert(rec_is(&rs.v[0], &f.a, T0 + 4 * HOUR));
    cr_assert(rec_is(&rs.v[1], &f.b, T0 + 4 * HOUR));
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, T0 + 2 * HOUR, T0 + 2 * HOUR, &rs), 0);
    cr_assert_eq(rs.n, 0, "an empty range");
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, T0 + 5 * HOUR, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 0, "a range after every hour");
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, 0, T0, &rs), 0);
    cr_assert_eq(rs.n, 0, "a range before every hour");
    recs_free(&rs);

    /* monthly */
    cr_assert_eq(scan(s, TALLY_STORE_MONTHLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert(rec_is(&rs.v[i], sk[i / 2], i % 2 ? 1709251200LL : 1706745600LL));
        assert_same_rollup(&rs.v[i].r, &f.mo[i / 2][i % 2]);
    }
    cr_assert_eq(rs.v[1].r.count, 2 + 3 + 4 + 5);
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_MONTHLY, "beta", 1709251200LL, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 1);
    cr_assert(rec_is(&rs.v[0], &f.c, 1709251200LL));
    recs_free(&rs);

    /* producers, in id order */
    prods_t p = {0};
    cr_assert_eq(tally__store_producers(s, collect_producer, &p), 0);
    cr_assert_eq(p.n, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(p.id_len[i], f.prod[i].id_len);
        cr_assert(memcmp(p.id[i], f.prod[i].id, p.id_len[i]) == 0);
        cr_assert(memcmp(&p.st[i], &f.prod[i].state, sizeof p.st[i]) == 0, "producer %d state", i);
    }

    uint64_t map = 0, used = 0;
    tally__store_map_info(s, &map, &used);
    cr_assert_eq(map, 64 * MiB);
    cr_assert_gt(used, 0);
    cr_assert_lt(used, map);
    tally__store_close(s);
    tally__store_close(NULL);
    testdir_remove(dir);
}

Test(store, producer_state_is_replaced_not_merged)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    tally__store_producer_t p = {"p1", 2, {0}};
    p.state.floor = 10;
    p.state.max_seq = 12;
    p.state.bits[0] = 2;
    cr_assert_eq(tally__store_commit(s, NULL, 0, NULL, 0, &p, 1), 0);
    p.state.floor = 20;
    p.state.max_seq = 20;
    p.state.bits[0] = 0;
    cr_assert_eq(tally__store_commit(s, NULL, 0, NULL, 0, &p, 1), 0);
    prods_t got = {0};
    cr_assert_eq(tally__store_producers(s, collect_producer, &got), 0);
    cr_assert_eq(got.n, 1);
    cr_assert(memcmp(&got.st[0], &p.state, sizeof p.state) == 0);
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store, commits_to_the_same_key_merge)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    skey_t k;
    mk_series(&k, "acme", "req", NULL, 0);
    tally__rollup_t d1, d2, d3;
    tally__rollup_init(&d1);
    tally__rollup_add(&d1, 0, 5, 0, 2000);
    tally__rollup_add(&d1, 0, -7, 0, 1000);
    tally__rollup_init(&d2);
    tally__rollup_add(&d2, 0, 40, 0, 3000);
    tally__rollup_init(&d3);
    tally__rollup_add(&d3, 1, 0, 0.25, 500);
    tally__store_put_t p = {k.b, k.n, T0, &d1};
    cr_assert_eq(tally__store_commit(s, &p, 1, &p, 1, NULL, 0), 0);
    p.delta = &d2;
    cr_assert_eq(tally__store_commit(s, &p, 1, &p, 1, NULL, 0), 0);
    p.delta = &d3;
    cr_assert_eq(tally__store_commit(s, &p, 1, NULL, 0, NULL, 0), 0);

    recs_t rs;
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "acme", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 1);
    const tally__rollup_t *r = &rs.v[0].r;
    cr_assert_eq(r->sum_i, 38);
    cr_assert_eq(r->sum_f, 0.25);
    cr_assert(r->flags & TALLY_ROLLUP_FLOAT);
    cr_assert_eq(r->count, 4);
    cr_assert_eq(r->max, 40.0);
    cr_assert_eq(r->last, 40.0, "last is by event time, not by commit");
    cr_assert_eq(r->last_ts_ms, 3000);
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_MONTHLY, "acme", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 1);
    cr_assert_eq(rs.v[0].r.sum_i, 38);
    cr_assert_eq(rs.v[0].r.count, 3);
    cr_assert_eq(rs.v[0].r.flags, 0);
    recs_free(&rs);

    /* a commit may hold the same key twice (unsorted input): both merge */
    tally__store_put_t twice[2] = {{k.b, k.n, T0, &d2}, {k.b, k.n, T0, &d2}};
    cr_assert_eq(tally__store_commit(s, twice, 2, NULL, 0, NULL, 0), 0);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 1);
    cr_assert_eq(rs.v[0].r.sum_i, 118);
    cr_assert_eq(rs.v[0].r.count, 6);
    recs_free(&rs);
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store, a_namespace_prefix_does_not_leak)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    const tally_label_t l[] = {{"k", "v"}};
    skey_t k[5];
    mk_series(&k[0], "a", "m", NULL, 0);
    mk_series(&k[1], "a", "m", l, 1);
    mk_series(&k[2], "a-b", "m", NULL, 0);
    mk_series(&k[3], "ab", "m", NULL, 0);
    mk_series(&k[4], "b", "a", NULL, 0);
    tally__rollup_t r = rollup_of(1, 1, 0);
    tally__store_put_t p[10];
    for (int i = 0; i < 5; i++) {
        p[2 * i] = (tally__store_put_t){k[i].b, k[i].n, T0, &r};
        p[2 * i + 1] = (tally__store_put_t){k[i].b, k[i].n, T0 + HOUR, &r};
    }
    cr_assert_eq(tally__store_commit(s, p, 10, p, 10, NULL, 0), 0);

    static const struct {
        const char *ns;
        int first, count;
    } want[] = {{"a", 0, 2}, {"a-b", 2, 1}, {"ab", 3, 1}, {"b", 4, 1},
                {"", 0, 0},  {"a-", 0, 0},  {"-", 0, 0}};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        for (int which = 0; which < 2; which++) {
            recs_t rs;
            cr_assert_eq(scan(s, which, want[w].ns, INT64_MIN, INT64_MAX, &rs), 0);
            cr_assert_eq(rs.n, (size_t)want[w].count * 2, "ns \"%s\": %zu records", want[w].ns,
                         rs.n);
            for (size_t i = 0; i < rs.n; i++)
                cr_assert(
                    rec_is(&rs.v[i], &k[want[w].first + (int)i / 2], T0 + (int)(i % 2) * HOUR),
                    "ns \"%s\" record %zu", want[w].ns, i);
            recs_free(&rs);
        }
    }
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store, bounded_scans_match_a_brute_force_filter)
{
    /* random series and hours (before and after 1970), random [from, to):
     * the scan must return exactly the records a filter would keep */
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    enum { NSER = 24, NHR = 40 };
    static skey_t k[NSER];
    static const char *const nss[] = {"a", "a-b", "ab", "b"};
    uint64_t seed = 2024;
    for (int i = 0; i < NSER; i++) {
        char val[8];
        snprintf(val, sizeof val, "%d", i);
        const tally_label_t l[] = {{"i", val}};
        mk_series(&k[i], nss[i % 4], i % 3 ? "m" : "mm", l, (size_t)(i % 5 != 0));
    }
    /* each series gets a random subset of hours -20h .. +20h around 1970 */
    static int present[NSER][NHR];
    static tally__store_put_t puts[NSER * NHR];
    tally__rollup_t r = rollup_of(3, 1, 0);
    size_t np = 0;
    for (int i = 0; i < NSER; i++)
        for (int h = 0; h < NHR; h++)
            if ((present[i][h] = rnd(&seed) % 3 != 0))
                puts[np++] = (tally__store_put_t){k[i].b, k[i].n, (h - 20) * HOUR, &r};
    cr_assert_eq(tally__store_commit(s, puts, np, NULL, 0, NULL, 0), 0);

    for (int trial = 0; trial < 300; trial++) {
        int64_t from = ((int64_t)(rnd(&seed) % 46) - 23) * HOUR;
        int64_t to = ((int64_t)(rnd(&seed) % 46) - 23) * HOUR;
        if (trial % 7 == 0)
            from += 1; /* not on an hour boundary */
        const char *ns = trial % 5 == 0 ? NULL : nss[rnd(&seed) % 4];
        recs_t rs;
        cr_assert_eq(scan(s, TALLY_STORE_HOURLY, ns, from, to, &rs), 0);
        size_t want = 0;
        for (int i = 0; i < NSER; i++) {
            if (ns && strcmp(nss[i % 4], ns) != 0)
                continue;
            for (int h = 0; h < NHR; h++) {
                int64_t p = (h - 20) * HOUR;
                if (present[i][h] && p >= from && p < to) {
                    int found = 0;
                    for (size_t x = 0; x < rs.n; x++)
                        found |= rec_is(&rs.v[x], &k[i], p);
                    cr_assert(found, "trial %d: series %d hour %lld missing", trial, i,
                              (long long)p);
                    want++;
                }
            }
        }
        cr_assert_eq(rs.n, want, "trial %d ns %s [%lld, %lld): %zu records, want %zu", trial,
                     ns ? ns : "(all)", (long long)from, (long long)to, rs.n, want);
        recs_free(&rs);
    }
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store, scan_callback_stops_the_scan_with_its_value)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    fixture_t f;
    fixture_init(&f);
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_commit(s, f.hourly, 15, f.monthly, 6, NULL, 0), 0);
    recs_t rs = {0};
    rs.stop_after = 3;
    rs.stop_value = 42;
    cr_assert_eq(tally__store_scan(s, TALLY_STORE_HOURLY, NULL, 0, 0, INT64_MAX, collect, &rs), 42);
    cr_assert_eq(rs.n, 3, "no record after the stop");
    recs_free(&rs);
    rs.stop_after = 1;
    rs.stop_value = -7;
    cr_assert_eq(tally__store_scan(s, TALLY_STORE_MONTHLY, "beta", 4, 0, 0, collect, &rs), 0,
                 "an empty range never calls back");
    cr_assert_eq(rs.n, 0);
    cr_assert_eq(tally__store_scan(s, TALLY_STORE_MONTHLY, "beta", 4, 0, INT64_MAX, collect, &rs),
                 -7);
    cr_assert_eq(rs.n, 1);
    recs_free(&rs);
    /* the store still works after a stopped scan (its snapshot was released) */
    cr_assert_eq(tally__store_commit(s, f.hourly, 1, NULL, 0, NULL, 0), 0);
    cr_assert_eq(tally__store_grow(s, 32 * MiB), 0, "no read transaction left open");
    tally__store_close(s);
    testdir_remove(dir);
}

/* Puts with long series keys (about 400 bytes each) into their own storage. */
typedef struct bulk {
    skey_t *k;
    tally__store_put_t *p;
    tally__rollup_t r;
    size_t n;
} bulk_t;

static void
bulk_init(bulk_t *b, size_t n)
{
    b->n = n;
    b->k = calloc(n, sizeof *b->k);
    b->p = calloc(n, sizeof *b->p);
    cr_assert(b->k && b->p);
    b->r = rollup_of(1, 1, 0);
    char val[TALLY_MAX_LABEL_VALUE_LEN + 1];
    memset(val, 'v', TALLY_MAX_LABEL_VALUE_LEN);
    val[TALLY_MAX_LABEL_VALUE_LEN] = '\0';
    for (size_t i = 0; i < n; i++) {
        char id[24];
        snprintf(id, sizeof id, "%08zu", i);
        const tally_label_t l[] = {{"a", val}, {"b", val}, {"c", val}, {"d", val}, {"id", id}};
        mk_series(&b->k[i], "bulk", "metric-with-a-long-name", l, 5);
        b->p[i] = (tally__store_put_t){b->k[i].b, b->k[i].n, T0, &b->r};
    }
}

static void
bulk_fini(bulk_t *b)
{
    free(b->k);
    free(b->p);
}

Test(store, map_full_commits_nothing_then_grow_lets_it_through)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 1 * MiB, 0, &s), 0);
    /* a small commit that fits */
    skey_t small;
    mk_series(&small, "small", "m", NULL, 0);
    tally__rollup_t one = rollup_of(1, 1, 0);
    tally__store_put_t sp = {small.b, small.n, T0, &one};
    cr_assert_eq(tally__store_commit(s, &sp, 1, &sp, 1, NULL, 0), 0);

    /* 5,000 keys of ~310 bytes, twice: several MiB of pages, far past the map */
    bulk_t b;
    bulk_init(&b, 5000);
    cr_assert_gt(b.k[0].n, 300);
    tally__store_producer_t p = {"bulk-producer", 13, {0}};
    p.state.floor = 77;
    cr_assert_eq(tally__store_commit(s, b.p, b.n, b.p, b.n, &p, 1), TALLY_EMAPFULL);

    /* all-or-nothing: no bulk record, no producer, the earlier commit intact */
    recs_t rs;
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 1);
    cr_assert(rec_is(&rs.v[0], &small, T0));
    cr_assert_eq(rs.v[0].r.count, 1);
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_MONTHLY, "bulk", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 0);
    recs_free(&rs);
    prods_t got = {0};
    cr_assert_eq(tally__store_producers(s, collect_producer, &got), 0);
    cr_assert_eq(got.n, 0);

    /* grow, then the same commit goes through whole */
    cr_assert_eq(tally__store_grow(s, 64 * MiB), 0);
    uint64_t map;
    tally__store_map_info(s, &map, NULL);
    cr_assert_eq(map, 64 * MiB);
    cr_assert_eq(tally__store_commit(s, b.p, b.n, b.p, b.n, &p, 1), 0);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "bulk", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, b.n);
    for (size_t i = 0; i < rs.n; i++) {
        cr_assert(rec_is(&rs.v[i], &b.k[i], T0), "bulk record %zu", i);
        cr_assert_eq(rs.v[i].r.count, 1, "bulk record %zu merged once", i);
    }
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_MONTHLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, b.n + 1);
    recs_free(&rs);
    cr_assert_eq(tally__store_producers(s, collect_producer, &got), 0);
    cr_assert_eq(got.n, 1);
    cr_assert_eq(got.st[0].floor, 77);

    bulk_fini(&b);
    tally__store_close(s);
    /* reopening with a smaller map than the data keeps the data (LMDB uses
     * the larger of the two) */
    cr_assert_eq(tally__store_open(dir, 1 * MiB, 0, &s), 0);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "small", INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 1);
    recs_free(&rs);
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store, readonly_open_of_a_fresh_dir_fails_cleanly)
{
    char dir[64], missing[96];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s = NULL;
    int rc = tally__store_open(dir, 0, 1, &s);
    cr_assert_lt(rc, 0, "read-only open of an empty directory: rc %d", rc);
    cr_assert_null(s, "out is untouched on failure");
    snprintf(missing, sizeof missing, "%s/does/not/exist", dir);
    rc = tally__store_open(missing, 0, 1, &s);
    cr_assert_lt(rc, 0);
    cr_assert_null(s);
    cr_assert_neq(access(missing, F_OK), 0, "a read-only open creates no directory");
    testdir_remove(dir);
}

Test(store, readonly_open_of_a_written_store_reads)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    fixture_t f;
    fixture_init(&f);
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_commit(s, f.hourly, 15, f.monthly, 6, f.prod, 2), 0);
    tally__store_close(s);
    cr_assert_eq(tally__store_open(dir, 0, 1, &s), 0);
    recs_t rs;
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 15);
    recs_free(&rs);
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store, open_creates_missing_parent_directories)
{
    char dir[64], nested[128];
    testdir_make(dir, sizeof dir, "store");
    snprintf(nested, sizeof nested, "%s/x/y/z", dir);
    tally__store_t *s;
    cr_assert_eq(tally__store_open(nested, 8 * MiB, 0, &s), 0);
    tally__store_close(s);
    cr_assert_eq(access(nested, F_OK), 0);
    testdir_remove(dir);
}

static void
assert_same_scan(const recs_t *a, const recs_t *b)
{
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_eq(a->v[i].series_len, b->v[i].series_len);
        cr_assert(memcmp(a->v[i].series, b->v[i].series, a->v[i].series_len) == 0);
        cr_assert_eq(a->v[i].period, b->v[i].period);
        assert_same_rollup(&a->v[i].r, &b->v[i].r);
    }
}

Test(store, backup_copy_scans_the_same)
{
    char dir[64], bdir[64];
    testdir_make(dir, sizeof dir, "store");
    testdir_make(bdir, sizeof bdir, "store");
    fixture_t f;
    fixture_init(&f);
    tally__store_t *s, *c;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_commit(s, f.hourly, 15, f.monthly, 6, f.prod, 2), 0);
    cr_assert_eq(tally__store_commit(s, f.hourly, 5, NULL, 0, NULL, 0), 0); /* merged records */
    cr_assert_eq(tally__store_backup(s, bdir), 0);
    cr_assert_eq(tally__store_open(bdir, 16 * MiB, 0, &c), 0);
    for (int which = 0; which < 2; which++) {
        recs_t ra, rb;
        cr_assert_eq(scan(s, which, NULL, INT64_MIN, INT64_MAX, &ra), 0);
        cr_assert_eq(scan(c, which, NULL, INT64_MIN, INT64_MAX, &rb), 0);
        cr_assert_gt(ra.n, 0);
        assert_same_scan(&ra, &rb);
        recs_free(&ra);
        recs_free(&rb);
    }
    prods_t pa = {0}, pb = {0};
    cr_assert_eq(tally__store_producers(s, collect_producer, &pa), 0);
    cr_assert_eq(tally__store_producers(c, collect_producer, &pb), 0);
    cr_assert_eq(pa.n, 2);
    cr_assert_eq(pb.n, 2);
    cr_assert(memcmp(pa.st, pb.st, sizeof pa.st) == 0);
    /* the copy is independent: writing the original leaves it alone */
    cr_assert_eq(tally__store_commit(s, f.hourly, 15, NULL, 0, NULL, 0), 0);
    recs_t rb;
    cr_assert_eq(scan(c, TALLY_STORE_HOURLY, "acme", T0, T0 + HOUR, &rb), 0);
    cr_assert_eq(rb.n, 2);
    cr_assert_eq(rb.v[0].r.count, 2 * f.hr[0][0].count);
    recs_free(&rb);
    tally__store_close(c);
    tally__store_close(s);
    testdir_remove(bdir);
    testdir_remove(dir);
}

/* A gauge's month total is the sum of each hour's last value: the store
 * keeps it in the monthly record's last_sum, also when a later flush
 * changes an hour's last. */
typedef struct ls_ctx {
    double month_last_sum;
    double hour_last_sum[4];
    int nh;
} ls_ctx_t;

static int
ls_cb(void *vctx, const char *series, size_t slen, int64_t period_s, const tally__rollup_t *r)
{
    ls_ctx_t *c = vctx;
    (void)series;
    (void)slen;
    (void)period_s;
    if (c->nh < 4)
        c->hour_last_sum[c->nh++] = r->last_sum;
    c->month_last_sum = r->last_sum;
    return 0;
}

Test(store, gauge_month_totals_hourly_lasts)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *st;
    cr_assert_eq(tally__store_open(dir, 16u << 20, 0, &st), 0);
    const char series[] = "demo\0lb_count\0";
    uint32_t sl = sizeof series - 1;
    int64_t h0 = 1795712400, month = 1793491200; /* 2026-11-26T17:00Z, 2026-11-01 */
    /* flush 1: hours 17 and 18 with lasts 3 and 5 */
    tally__rollup_t a, b, m;
    tally__rollup_init(&a);
    tally__rollup_init(&b);
    tally__rollup_add(&a, 0, 3, 0, h0 * 1000 + 1);
    tally__rollup_add(&b, 0, 5, 0, (h0 + 3600) * 1000 + 1);
    m = a;
    tally__rollup_merge(&m, &b);
    m.last_sum = 0;
    tally__store_put_t hp[2] = {{series, sl, h0, &a, 1}, {series, sl, h0 + 3600, &b, 1}};
    tally__store_put_t mp[1] = {{series, sl, month, &m, 0}};
    cr_assert_eq(tally__store_commit(st, hp, 2, mp, 1, NULL, 0), 0);
    ls_ctx_t c = {0};
    cr_assert_eq(tally__store_scan(st, TALLY_STORE_MONTHLY, "demo", 4, month, month + 1, ls_cb, &c),
                 0);
    cr_assert_float_eq(c.month_last_sum, 8.0, 1e-9, "3 + 5 object-hours, got %g", c.month_last_sum);
    /* flush 2: hour 18's last becomes 7 (a later event in the same hour) */
    tally__rollup_t b2, m2;
    tally__rollup_init(&b2);
    tally__rollup_add(&b2, 0, 7, 0, (h0 + 3600) * 1000 + 500);
    m2 = b2;
    m2.last_sum = 0;
    tally__store_put_t hp2[1] = {{series, sl, h0 + 3600, &b2, 1}};
    tally__store_put_t mp2[1] = {{series, sl, month, &m2, 0}};
    cr_assert_eq(tally__store_commit(st, hp2, 1, mp2, 1, NULL, 0), 0);
    c = (ls_ctx_t){0};
    cr_assert_eq(tally__store_scan(st, TALLY_STORE_MONTHLY, "demo", 4, month, month + 1, ls_cb, &c),
                 0);
    cr_assert_float_eq(c.month_last_sum, 10.0, 1e-9, "3 + 7, got %g", c.month_last_sum);
    c = (ls_ctx_t){0};
    cr_assert_eq(tally__store_scan(st, TALLY_STORE_HOURLY, "demo", 4, h0, h0 + 7200, ls_cb, &c), 0);
    cr_assert_eq(c.nh, 2);
    cr_assert_float_eq(c.hour_last_sum[0], 3.0, 1e-9);
    cr_assert_float_eq(c.hour_last_sum[1], 7.0, 1e-9, "an hour's last_sum is its last");
    /* a late event older than the hour's last does not change it */
    tally__rollup_t b3, m3;
    tally__rollup_init(&b3);
    tally__rollup_add(&b3, 0, 100, 0, (h0 + 3600) * 1000 + 2);
    m3 = b3;
    m3.last_sum = 0;
    tally__store_put_t hp3[1] = {{series, sl, h0 + 3600, &b3, 1}};
    tally__store_put_t mp3[1] = {{series, sl, month, &m3, 0}};
    cr_assert_eq(tally__store_commit(st, hp3, 1, mp3, 1, NULL, 0), 0);
    c = (ls_ctx_t){0};
    cr_assert_eq(tally__store_scan(st, TALLY_STORE_MONTHLY, "demo", 4, month, month + 1, ls_cb, &c),
                 0);
    cr_assert_float_eq(c.month_last_sum, 10.0, 1e-9, "unchanged, got %g", c.month_last_sum);
    tally__store_close(st);
    testdir_remove(dir);
}

typedef struct obj_seen {
    char names[8][64];
    char ns[8][64];
    int n;
} obj_seen_t;

static int
obj_cb(void *vctx, const char *ns, const char *name, const void *value, size_t len)
{
    obj_seen_t *o = vctx;
    (void)value;
    (void)len;
    if (o->n < 8) {
        snprintf(o->ns[o->n], sizeof o->ns[0], "%s", ns);
        snprintf(o->names[o->n], sizeof o->names[0], "%s", name);
    }
    o->n++;
    return 0;
}

/* API objects: batches are all-or-nothing, must_exist/must_not_exist guard
 * create and replace, listings are per kind and namespace in name order. */
Test(store, objects_write_atomically_and_list_in_order)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *st;
    cr_assert_eq(tally__store_open(dir, 16u << 20, 0, &st), 0);
    tally__obj_op_t create[3] = {
        {TALLY_OBJ_PUT, "quota", "demo", "b", "{\"x\":2}", 7, 0, 1},
        {TALLY_OBJ_PUT, "quota", "demo", "a", "{\"x\":1}", 7, 0, 1},
        {TALLY_OBJ_PUT, "quota", "demo-2", "a", "{}", 2, 0, 1},
    };
    cr_assert_eq(tally__store_obj_write(st, create, 3), 0);
    /* a batch whose second op fails writes nothing */
    tally__obj_op_t mixed[2] = {
        {TALLY_OBJ_PUT, "quota", "demo", "c", "{}", 2, 0, 1},
        {TALLY_OBJ_PUT, "quota", "demo", "a", "{}", 2, 0, 1}, /* exists */
    };
    cr_assert_eq(tally__store_obj_write(st, mixed, 2), TALLY_EEXISTS);
    char *v;
    size_t len;
    cr_assert_eq(tally__store_obj_get(st, "quota", "demo", "c", &v, &len), TALLY_ENOTFOUND);
    cr_assert_eq(tally__store_obj_get(st, "quota", "demo", "a", &v, &len), 0);
    cr_assert_str_eq(v, "{\"x\":1}");
    cr_assert_eq(len, 7);
    free(v);
    /* replace requires existence */
    tally__obj_op_t replace = {TALLY_OBJ_PUT, "quota", "demo", "zz", "{}", 2, 1, 0};
    cr_assert_eq(tally__store_obj_write(st, &replace, 1), TALLY_ENOTFOUND);
    /* listings: one namespace (not its prefix-sharing neighbour), then all */
    obj_seen_t seen = {0};
    cr_assert_eq(tally__store_obj_list(st, "quota", "demo", obj_cb, &seen), 0);
    cr_assert_eq(seen.n, 2);
    cr_assert_str_eq(seen.names[0], "a");
    cr_assert_str_eq(seen.names[1], "b");
    seen = (obj_seen_t){0};
    cr_assert_eq(tally__store_obj_list(st, "quota", NULL, obj_cb, &seen), 0);
    cr_assert_eq(seen.n, 3);
    cr_assert_str_eq(seen.ns[2], "demo-2");
    seen = (obj_seen_t){0};
    cr_assert_eq(tally__store_obj_list(st, "other", NULL, obj_cb, &seen), 0);
    cr_assert_eq(seen.n, 0);
    /* delete, and survive a reopen */
    tally__obj_op_t del = {TALLY_OBJ_DEL, "quota", "demo", "b", NULL, 0, 1, 0};
    cr_assert_eq(tally__store_obj_write(st, &del, 1), 0);
    cr_assert_eq(tally__store_obj_write(st, &del, 1), TALLY_ENOTFOUND);
    tally__store_close(st);
    cr_assert_eq(tally__store_open(dir, 16u << 20, 0, &st), 0);
    seen = (obj_seen_t){0};
    cr_assert_eq(tally__store_obj_list(st, "quota", "demo", obj_cb, &seen), 0);
    cr_assert_eq(seen.n, 1);
    tally__store_close(st);
    testdir_remove(dir);
}

/* ---- upgrading a format-5 store ------------------------------------------------ */

/* A format-5 rollup key: the series string, 0x00, the period (sign-flipped
 * big-endian), written here by hand as the older tallyd did. */
static size_t
v5_key(unsigned char *buf, const skey_t *k, int64_t period)
{
    memcpy(buf, k->b, k->n);
    buf[k->n] = 0;
    uint64_t u = (uint64_t)period ^ (1ull << 63);
    for (int i = 0; i < 8; i++)
        buf[k->n + 1 + (size_t)i] = (unsigned char)(u >> (56 - 8 * i));
    return k->n + 9;
}

/* Write, with raw LMDB, the store an older tallyd (format 5) would hold:
 * string-keyed hourly and monthly rollups of three series. */
static void
write_v5_store(const char *dir, skey_t k[3])
{
    const tally_label_t obj[] = {{"object", "vm-1"}};
    mk_series(&k[0], "zeta", "cpu", NULL, 0);
    mk_series(&k[1], "acme", "req", obj, 1);
    mk_series(&k[2], "acme", "bytes", NULL, 0);
    /* the older layout, with raw LMDB: string-keyed hourly and monthly */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dh, dm, dp, dmeta, dobj;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0640), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "hourly", MDB_CREATE, &dh), 0);
    cr_assert_eq(mdb_dbi_open(txn, "monthly", MDB_CREATE, &dm), 0);
    cr_assert_eq(mdb_dbi_open(txn, "producers", MDB_CREATE, &dp), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dmeta), 0);
    cr_assert_eq(mdb_dbi_open(txn, "objects", MDB_CREATE, &dobj), 0);
    uint32_t fmt = 5;
    MDB_val mk = {7, "format"}, mv = {sizeof fmt, &fmt};
    cr_assert_eq(mdb_put(txn, dmeta, &mk, &mv, 0), 0);
    unsigned char key[TALLY_SERIES_KEY_MAX + 9];
    for (int i = 0; i < 3; i++) {
        for (int h = 0; h < 5; h++) {
            tally__rollup_t r = rollup_of(100 * i + h + 1, (uint64_t)h + 1, (T0 + h * HOUR) * 1000);
            MDB_val kv = {v5_key(key, &k[i], T0 + h * HOUR), key};
            MDB_val vv = {TALLY_ROLLUP_HOURLY_SIZE, &r};
            cr_assert_eq(mdb_put(txn, dh, &kv, &vv, 0), 0);
        }
        tally__rollup_t m = rollup_of(1000 + i, 3, T0 * 1000);
        m.last_sum = 7.5 * (i + 1);
        MDB_val kv = {v5_key(key, &k[i], T0 - 28 * 24 * HOUR), key}, vv = {sizeof m, &m};
        cr_assert_eq(mdb_put(txn, dm, &kv, &vv, 0), 0);
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

Test(store, a_format_5_store_is_upgraded_in_place_and_reads_back_exactly)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    skey_t k[3];
    write_v5_store(dir, k);

    /* a read-only tool refuses it, saying what to do; tallyd's open upgrades */
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 0, 1, &s), TALLY_ECORRUPT);
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    recs_t rs = {0};
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, INT64_MIN / 2, INT64_MAX / 2, &rs), 0);
    cr_assert_eq(rs.n, 15);
    for (size_t x = 0; x < rs.n; x++) {
        /* string order: acme/bytes, acme/req, zeta/cpu */
        int i = x < 5 ? 2 : x < 10 ? 1 : 0, h = (int)(x % 5);
        cr_assert(rec_is(&rs.v[x], &k[i], T0 + h * HOUR), "record %zu", x);
        cr_assert_eq(rs.v[x].r.sum_i, (100 * i + h + 1) * (h + 1));
        cr_assert_eq(rs.v[x].r.count, (uint64_t)h + 1);
    }
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_MONTHLY, "acme", INT64_MIN / 2, INT64_MAX / 2, &rs), 0);
    cr_assert_eq(rs.n, 2);
    cr_assert(rec_is(&rs.v[0], &k[2], T0 - 28 * 24 * HOUR));
    cr_assert_eq(rs.v[0].r.sum_i, 3 * 1002);
    cr_assert_eq(rs.v[0].r.last_sum, 7.5 * 3);
    recs_free(&rs);
    /* and it takes new flushes: an old series merges, a new one is named */
    tally__rollup_t d = rollup_of(5, 1, (T0 + 1) * 1000);
    skey_t fresh;
    mk_series(&fresh, "acme", "new", NULL, 0);
    tally__store_put_t p[2] = {{k[1].b, k[1].n, T0, &d, 0, 0, NULL},
                               {fresh.b, fresh.n, T0, &d, 0, 0, NULL}};
    cr_assert_eq(tally__store_commit(s, p, 2, NULL, 0, NULL, 0), 0);
    tally__store_close(s);
    cr_assert_eq(tally__store_open(dir, 0, 1, &s), 0, "upgraded: read-only opens work");
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "acme", T0, T0 + 1, &rs), 0);
    cr_assert_eq(rs.n, 3);
    cr_assert(rec_is(&rs.v[1], &fresh, T0));
    cr_assert(rec_is(&rs.v[2], &k[1], T0));
    cr_assert_eq(rs.v[2].r.sum_i, 101 + 5);
    recs_free(&rs);
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store, a_format_5_backup_is_restored_upgraded)
{
    char from[64], dir[64];
    testdir_make(from, sizeof from, "store");
    testdir_make(dir, sizeof dir, "store");
    skey_t k[3];
    write_v5_store(from, k);
    cr_assert_eq(tally__store_restore(from, dir, 0), 0);
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 0, 1, &s), 0, "the restored store has this format");
    recs_t rs = {0};
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "zeta", INT64_MIN / 2, INT64_MAX / 2, &rs), 0);
    cr_assert_eq(rs.n, 5);
    for (size_t x = 0; x < rs.n; x++) {
        cr_assert(rec_is(&rs.v[x], &k[0], T0 + (int64_t)x * HOUR));
        cr_assert_eq(rs.v[x].r.sum_i, (int64_t)(x + 1) * (int64_t)(x + 1));
    }
    recs_free(&rs);
    tally__store_close(s);
    /* a foreign LMDB environment is still refused, not adopted */
    char foreign[64];
    testdir_make(foreign, sizeof foreign, "store");
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi d;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    cr_assert_eq(mdb_env_open(env, foreign, 0, 0640), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "other", MDB_CREATE, &d), 0);
    MDB_val kk = {1, "x"}, vv = {1, "y"};
    cr_assert_eq(mdb_put(txn, d, &kk, &vv, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    cr_assert_eq(tally__store_restore(foreign, dir, 1), TALLY_ECORRUPT);
    cr_assert_eq(tally__store_open(dir, 0, 1, &s), 0, "the store is untouched");
    tally__store_close(s);
    testdir_remove(foreign);
    testdir_remove(from);
    testdir_remove(dir);
}

Test(store, a_namespace_scan_stops_cleanly_after_its_last_series_in_a_period)
{
    /* 64 series of "a" (exactly the scan's first allocation), then one of
     * "b" with a higher id in the same hours: after a's last record of an
     * hour, the next record is b's. Under ASan this read past the end. */
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    enum { NA = 64 };
    static skey_t k[NA + 1];
    static tally__store_put_t p[(NA + 1) * 2];
    tally__rollup_t r = rollup_of(2, 1, 0);
    size_t np = 0;
    for (int i = 0; i <= NA; i++) {
        char val[8];
        snprintf(val, sizeof val, "%d", i);
        const tally_label_t l[] = {{"i", val}};
        mk_series(&k[i], i < NA ? "a" : "b", "m", l, 1);
    }
    for (int h = 0; h < 2; h++)
        for (int i = 0; i <= NA; i++)
            p[np++] = (tally__store_put_t){k[i].b, k[i].n, T0 + h * HOUR, &r};
    cr_assert_eq(tally__store_commit(s, p, np, NULL, 0, NULL, 0), 0);
    recs_t rs;
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "a", T0, T0 + 2 * HOUR, &rs), 0);
    cr_assert_eq(rs.n, (size_t)NA * 2);
    recs_free(&rs);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "b", T0, T0 + 2 * HOUR, &rs), 0);
    cr_assert_eq(rs.n, 2);
    cr_assert(rec_is(&rs.v[0], &k[NA], T0));
    recs_free(&rs);
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store, a_format_5_store_filling_its_map_is_upgraded_with_room_made_first)
{
    /* 20,000 records in a 4 MiB map, over half of it: the upgrade needs
     * about three times the data at once, so the open must grow the map */
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dh, dm, dmeta;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_set_mapsize(env, 4 * MiB), 0);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0640), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "hourly", MDB_CREATE, &dh), 0);
    cr_assert_eq(mdb_dbi_open(txn, "monthly", MDB_CREATE, &dm), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dmeta), 0);
    MDB_dbi other;
    cr_assert_eq(mdb_dbi_open(txn, "producers", MDB_CREATE, &other), 0);
    cr_assert_eq(mdb_dbi_open(txn, "objects", MDB_CREATE, &other), 0);
    uint32_t fmt = 5;
    MDB_val mk = {7, "format"}, mv = {sizeof fmt, &fmt};
    cr_assert_eq(mdb_put(txn, dmeta, &mk, &mv, 0), 0);
    unsigned char key[TALLY_SERIES_KEY_MAX + 9];
    tally__rollup_t r = rollup_of(1, 1, T0 * 1000);
    enum { NS = 400, NH = 50 };
    for (int i = 0; i < NS; i++) {
        char val[8];
        snprintf(val, sizeof val, "%d", i);
        const tally_label_t l[] = {{"i", val}};
        skey_t k;
        mk_series(&k, "bulk", "m", l, 1);
        for (int h = 0; h < NH; h++) {
            MDB_val kv = {v5_key(key, &k, T0 + h * HOUR), key};
            MDB_val vv = {TALLY_ROLLUP_HOURLY_SIZE, &r};
            cr_assert_eq(mdb_put(txn, dh, &kv, &vv, 0), 0);
        }
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    cr_assert_gt(((uint64_t)info.me_last_pgno + 1) * st.ms_psize, 2 * MiB,
                 "the old store fills over half of its map");
    mdb_env_close(env);

    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 4 * MiB, 0, &s), 0);
    recs_t rs = {0};
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, "bulk", T0, T0 + NH * HOUR, &rs), 0);
    cr_assert_eq(rs.n, (size_t)NS * NH);
    recs_free(&rs);
    tally__store_close(s);
    testdir_remove(dir);
}

/* ---- writing through the map ----------------------------------------------------- */

/* Bytes of disk the store's data file holds (allocated, not its size). */
static uint64_t
data_file_blocks(const char *dir)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_blocks * 512;
}

Test(store, writemap_reserves_its_map_on_disk_and_grows_the_reservation_first)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open_ex(dir, 1 * MiB, TALLY_STORE_WRITEMAP, &s), 0);
    cr_assert_eq(tally__store_writemap(s), 1);
    cr_assert_geq(data_file_blocks(dir), 1 * MiB, "the whole map is reserved");

    /* the map-full contract holds when writing through the map: nothing of
     * the failed commit is left, and it goes through once the map grows */
    bulk_t b;
    bulk_init(&b, 5000);
    cr_assert_eq(tally__store_commit(s, b.p, b.n, b.p, b.n, NULL, 0), TALLY_EMAPFULL);
    recs_t rs;
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 0);
    recs_free(&rs);
    cr_assert_eq(tally__store_grow(s, 64 * MiB), 0);
    cr_assert_geq(data_file_blocks(dir), 64 * MiB, "growing reserves the larger map");
    cr_assert_eq(tally__store_commit(s, b.p, b.n, b.p, b.n, NULL, 0), 0);
    tally__store_close(s);

    /* the file is an ordinary LMDB store: copy mode and readers see it all */
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 1, &s), 0);
    cr_assert_eq(tally__store_writemap(s), 0);
    cr_assert_eq(scan(s, TALLY_STORE_HOURLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, b.n);
    for (size_t i = 0; i < rs.n; i++) {
        cr_assert(rec_is(&rs.v[i], &b.k[i], T0), "record %zu", i);
        cr_assert_eq(rs.v[i].r.count, 1, "record %zu merged once", i);
    }
    recs_free(&rs);
    tally__store_close(s);
    bulk_fini(&b);
    testdir_remove(dir);
}

Test(store, writemap_falls_back_to_copy_mode_and_refuses_to_grow_past_the_disk)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    /* a file size limit stands in for a full disk: fallocate and ftruncate
     * past it fail with EFBIG (and SIGXFSZ, ignored here) */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {4 * MiB, 4 * MiB};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    tally__store_t *s;
    cr_assert_eq(tally__store_open_ex(dir, 8 * MiB, TALLY_STORE_WRITEMAP, &s), 0,
                 "a map the disk cannot hold still opens");
    cr_assert_eq(tally__store_writemap(s), 0, "in LMDB's copy mode");
    skey_t k;
    mk_series(&k, "fallback", "m", NULL, 0);
    tally__rollup_t one = rollup_of(5, 1, 0);
    tally__store_put_t p = {k.b, k.n, T0, &one};
    cr_assert_eq(tally__store_commit(s, &p, 1, &p, 1, NULL, 0), 0);
    tally__store_close(s);

    /* a map that fits is reserved; growing past the disk fails and leaves
     * the map as it was, still taking commits */
    cr_assert_eq(tally__store_open_ex(dir, 2 * MiB, TALLY_STORE_WRITEMAP, &s), 0);
    cr_assert_eq(tally__store_writemap(s), 1);
    cr_assert_eq(tally__store_grow(s, 16 * MiB), -EFBIG);
    uint64_t map;
    tally__store_map_info(s, &map, NULL);
    cr_assert_eq(map, 2 * MiB);
    cr_assert_eq(tally__store_commit(s, &p, 1, &p, 1, NULL, 0), 0);
    recs_t rs;
    cr_assert_eq(scan(s, TALLY_STORE_MONTHLY, NULL, INT64_MIN, INT64_MAX, &rs), 0);
    cr_assert_eq(rs.n, 1);
    cr_assert_eq(rs.v[0].r.count, 2);
    cr_assert_eq(rs.v[0].r.sum_i, 10);
    recs_free(&rs);
    tally__store_close(s);
    testdir_remove(dir);
}

/* ---- producers' last-seen times ------------------------------------------------------------- */

typedef struct prods_ex {
    char id[8][TALLY_MAX_PRODUCER_LEN + 80];
    size_t id_len[8];
    tally__dedup_t st[8];
    int64_t seen[8];
    int n;
} prods_ex_t;

static int
collect_producer_ex(void *ctx, const char *id, size_t id_len, const tally__dedup_t *state,
                    int64_t last_seen_s)
{
    prods_ex_t *p = ctx;
    cr_assert_lt(p->n, 8);
    cr_assert_leq(id_len, sizeof p->id[0]);
    memcpy(p->id[p->n], id, id_len);
    p->id_len[p->n] = id_len;
    p->st[p->n] = *state;
    p->seen[p->n] = last_seen_s;
    p->n++;
    return 0;
}

/* The index of id in what a scan collected, or -1. */
static int
prods_ex_find(const prods_ex_t *p, const char *id)
{
    for (int i = 0; i < p->n; i++)
        if (p->id_len[i] == strlen(id) && memcmp(p->id[i], id, p->id_len[i]) == 0)
            return i;
    return -1;
}

Test(store, producers_keep_last_seen_times_and_a_delete_removes_both)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    tally__store_producer_t p[3];
    memset(p, 0, sizeof p);
    p[0] =
        (tally__store_producer_t){.id = "dev-emitter\x1fp1", .id_len = 14, .last_seen_s = T0 + 5};
    p[0].state.floor = 41;
    p[0].state.max_seq = 44;
    p[0].state.bits[0] = 0x5;
    p[1] = (tally__store_producer_t){
        .id = "dev-emitter\x1fp2", .id_len = 14, .last_seen_s = T0 + 3 * HOUR};
    p[1].state.floor = 7;
    p[1].state.max_seq = 7;
    /* no last-seen time: as an older tallyd wrote it */
    p[2] = (tally__store_producer_t){.id = "v1-producer", .id_len = 11};
    p[2].state.floor = 1000000;
    p[2].state.max_seq = 1000000;
    p[2].state.bits[TALLY__DEDUP_WORDS - 1] = 1ull << 63;
    cr_assert_eq(tally__store_commit(s, NULL, 0, NULL, 0, p, 3), 0);
    tally__store_close(s);
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);

    prods_ex_t got = {0};
    cr_assert_eq(tally__store_producers_ex(s, collect_producer_ex, &got), 0);
    cr_assert_eq(got.n, 3);
    for (int i = 0; i < 3; i++) {
        int k = prods_ex_find(&got, p[i].id);
        cr_assert_geq(k, 0, "producer %d is back", i);
        cr_assert(memcmp(&got.st[k], &p[i].state, sizeof got.st[k]) == 0, "producer %d state", i);
        cr_assert_eq(got.seen[k], p[i].last_seen_s, "producer %d: last seen %lld, want %lld", i,
                     (long long)got.seen[k], (long long)p[i].last_seen_s);
    }
    cr_assert_eq(got.seen[prods_ex_find(&got, "v1-producer")], 0, "not recorded: 0");

    /* the plain scan still sees the same producers */
    prods_t plain = {0};
    cr_assert_eq(tally__store_producers(s, collect_producer, &plain), 0);
    cr_assert_eq(plain.n, 3);

    /* one commit: p1 deleted, p2 moves on (a later time), a new one added
     * without a time; a delete of a producer the store never had is no error */
    tally__store_producer_t q[4];
    memset(q, 0, sizeof q);
    q[0] = (tally__store_producer_t){.id = "dev-emitter\x1fp1", .id_len = 14, .del = 1};
    q[0].state.floor = 99; /* unused by a delete */
    q[1] = (tally__store_producer_t){
        .id = "dev-emitter\x1fp2", .id_len = 14, .last_seen_s = T0 + 4 * HOUR};
    q[1].state.floor = 9;
    q[1].state.max_seq = 9;
    q[2] = (tally__store_producer_t){.id = "dev-emitter\x1fp9", .id_len = 14};
    q[2].state.floor = 3;
    q[2].state.max_seq = 3;
    q[3] = (tally__store_producer_t){.id = "never-stored", .id_len = 12, .del = 1};
    cr_assert_eq(tally__store_commit(s, NULL, 0, NULL, 0, q, 4), 0);

    memset(&got, 0, sizeof got);
    cr_assert_eq(tally__store_producers_ex(s, collect_producer_ex, &got), 0);
    cr_assert_eq(got.n, 3, "p2, p9 and v1-producer");
    cr_assert_eq(prods_ex_find(&got, "dev-emitter\x1fp1"), -1, "a deleted producer is gone");
    cr_assert_eq(prods_ex_find(&got, "never-stored"), -1);
    int k = prods_ex_find(&got, "dev-emitter\x1fp2");
    cr_assert_geq(k, 0);
    cr_assert_eq(got.seen[k], T0 + 4 * HOUR, "the later time replaces the earlier");
    cr_assert_eq(got.st[k].floor, 9);
    k = prods_ex_find(&got, "dev-emitter\x1fp9");
    cr_assert_geq(k, 0);
    cr_assert_eq(got.seen[k], 0, "written without a time: 0");
    cr_assert_eq(got.st[k].floor, 3);
    k = prods_ex_find(&got, "v1-producer");
    cr_assert_geq(k, 0, "untouched producers stay");
    cr_assert_eq(got.seen[k], 0);

    /* p1 back under the same name, without a time: its old last-seen time
     * went with the delete, so it is not resurrected */
    tally__store_producer_t again = {.id = "dev-emitter\x1fp1", .id_len = 14};
    again.state.floor = 1;
    again.state.max_seq = 1;
    cr_assert_eq(tally__store_commit(s, NULL, 0, NULL, 0, &again, 1), 0);
    tally__store_close(s);
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    memset(&got, 0, sizeof got);
    cr_assert_eq(tally__store_producers_ex(s, collect_producer_ex, &got), 0);
    cr_assert_eq(got.n, 4);
    k = prods_ex_find(&got, "dev-emitter\x1fp1");
    cr_assert_geq(k, 0);
    cr_assert_eq(got.st[k].floor, 1);
    cr_assert_eq(got.seen[k], 0, "the deleted producer's last-seen time is gone too (got %lld)",
                 (long long)got.seen[k]);

    /* a delete and a re-add of the same name in one commit (the aggregator
     * puts deletes first): the new state and time stay */
    tally__store_producer_t both[2];
    memset(both, 0, sizeof both);
    both[0] = (tally__store_producer_t){.id = "dev-emitter\x1fp2", .id_len = 14, .del = 1};
    both[1] = (tally__store_producer_t){
        .id = "dev-emitter\x1fp2", .id_len = 14, .last_seen_s = T0 + 9 * HOUR};
    both[1].state.floor = 2;
    both[1].state.max_seq = 2;
    cr_assert_eq(tally__store_commit(s, NULL, 0, NULL, 0, both, 2), 0);
    memset(&got, 0, sizeof got);
    cr_assert_eq(tally__store_producers_ex(s, collect_producer_ex, &got), 0);
    k = prods_ex_find(&got, "dev-emitter\x1fp2");
    cr_assert_geq(k, 0);
    cr_assert_eq(got.st[k].floor, 2);
    cr_assert_eq(got.seen[k], T0 + 9 * HOUR);
    tally__store_close(s);
    testdir_remove(dir);
}

/* The HTTP door's exactly-once set: a commit of an identity past its window
 * starts a new window, and pruning the old window's entry keeps the new. */
static size_t
no_puts(void *ctx, int which, int first, tally__store_put_t *puts, tally__rollup_t *deltas,
        size_t cap)
{
    (void)ctx, (void)which, (void)first, (void)puts, (void)deltas, (void)cap;
    return 0;
}

static int
commit_events(tally__store_t *s, const tally__store_evkey_t *ev, size_t n)
{
    tally__store_src_t src = {0};
    src.fill = no_puts;
    src.ev = ev;
    src.nev = n;
    return tally__store_commit_src(s, &src, NULL, 0);
}

Test(store, event_identities_are_seen_pruned_and_renewed)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    tally__store_evkey_t a = {{1}, 1000}, b = {{2}, 2000};
    uint8_t seen[2];
    cr_assert_eq(commit_events(s, (tally__store_evkey_t[]){a, b}, 2), 0);
    cr_assert_eq(tally__store_events_count(s), 2);
    tally__store_evkey_t both[2] = {a, b};
    cr_assert_eq(tally__store_events_seen(s, both, 2, 0, seen, NULL), 0);
    cr_expect(seen[0] && seen[1], "both committed identities are seen");
    cr_assert_eq(tally__store_events_seen(s, both, 2, 1500, seen, NULL), 0);
    cr_expect(!seen[0] && seen[1], "an identity older than the window is not seen");
    /* a is counted again after its window: a new window from 3000 */
    tally__store_evkey_t a2 = {{1}, 3000};
    cr_assert_eq(commit_events(s, &a2, 1), 0);
    cr_assert_eq(tally__store_events_count(s), 2);
    size_t n = 0;
    cr_assert_eq(tally__store_prune_events(s, 2500, 100, &n), 0);
    cr_expect_eq(n, 2, "a's stale entry (of its old window) and b's go: %zu", n);
    cr_assert_eq(tally__store_events_seen(s, both, 2, 0, seen, NULL), 0);
    cr_expect(seen[0], "the renewed identity survives the pruning of its old window");
    cr_expect(!seen[1], "b, older than the cut, is gone");
    cr_expect_eq(tally__store_events_count(s), 1);
    /* past the cap, the oldest go first whatever their time */
    tally__store_evkey_t more[3] = {{{3}, 4000}, {{4}, 5000}, {{5}, 6000}};
    cr_assert_eq(commit_events(s, more, 3), 0);
    int64_t oldest = 0;
    cr_assert_eq(tally__store_prune_events_ex(s, INT64_MIN, 2, 100, &n, &oldest), 0);
    cr_expect_eq(tally__store_events_count(s), 2);
    cr_expect_eq(oldest, 5000, "the oldest kept was first seen at %lld", (long long)oldest);
    tally__store_close(s);
    testdir_remove(dir);
}
