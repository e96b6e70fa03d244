/* test_rollup.c — Criterion tests of rollup records (add, merge, overflow) and of series and rollup
 * key encoding in lib/rollup. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rollup.h"
#include "tally/tally.h"

#define P62 (INT64_C(1) << 62)

/* A small deterministic generator (xorshift64*), so every run sees the same data. */
static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static int64_t
rnd_range(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static void
add_i(tally__rollup_t *r, int64_t v, int64_t ts)
{
    tally__rollup_add(r, 0, v, 0.0, ts);
}

static void
add_f(tally__rollup_t *r, double v, int64_t ts)
{
    tally__rollup_add(r, 1, 0, v, ts);
}

static void
assert_rollup_eq(const tally__rollup_t *a, const tally__rollup_t *b, const char *what)
{
    cr_assert_eq(a->sum_i, b->sum_i, "%s: sum_i %lld != %lld", what, (long long)a->sum_i,
                 (long long)b->sum_i);
    cr_assert_eq(a->sum_f, b->sum_f, "%s: sum_f %.17g != %.17g", what, a->sum_f, b->sum_f);
    cr_assert_eq(a->count, b->count, "%s: count", what);
    cr_assert_eq(a->max, b->max, "%s: max %g != %g", what, a->max, b->max);
    cr_assert_eq(a->last, b->last, "%s: last %g != %g", what, a->last, b->last);
    cr_assert_eq(a->last_ts_ms, b->last_ts_ms, "%s: last_ts_ms", what);
    cr_assert_eq(a->flags, b->flags, "%s: flags", what);
}

/* ---- aggregates ------------------------------------------------------------ */

Test(rollup, init_is_all_zero)
{
    tally__rollup_t r;
    memset(&r, 0xab, sizeof r);
    tally__rollup_init(&r);
    cr_assert_eq(r.sum_i, 0);
    cr_assert_eq(r.sum_f, 0.0);
    cr_assert_eq(r.count, 0);
    cr_assert_eq(r.flags, 0);
    cr_assert_eq(tally__rollup_sum(&r), 0.0);
    cr_assert(tally__rollup_sum_is_int(&r));
}

Test(rollup, integer_sum_and_count_are_exact)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    int64_t want = 0;
    for (int64_t v = 1; v <= 1000; v++) {
        add_i(&r, v, 1000 + v);
        want += v;
    }
    add_i(&r, -500500, 5000);
    want -= 500500;
    cr_assert_eq(r.sum_i, want);
    cr_assert_eq(r.sum_i, 0);
    cr_assert_eq(r.count, 1001);
    cr_assert_eq(r.flags, 0);
    cr_assert(tally__rollup_sum_is_int(&r));
}

Test(rollup, integer_sum_is_exact_near_2_pow_62)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    /* 2^62 + (2^62 - 1) = INT64_MAX: exact, no overflow, far past 2^53 */
    add_i(&r, P62, 1);
    add_i(&r, P62 - 1, 2);
    cr_assert_eq(r.sum_i, INT64_MAX);
    cr_assert_eq(r.flags, 0, "no overflow happened, so no FLOAT flag");
    cr_assert(tally__rollup_sum_is_int(&r));
    cr_assert_eq(r.count, 2);

    /* units near 2^62 that a double would round away stay exact */
    tally__rollup_init(&r);
    add_i(&r, P62 + 1, 1);
    add_i(&r, 1, 2);
    add_i(&r, 1, 3);
    cr_assert_eq(r.sum_i, P62 + 3);
    add_i(&r, -P62, 4);
    cr_assert_eq(r.sum_i, 3);
    cr_assert_eq(tally__rollup_sum(&r), 3.0);

    /* and down to INT64_MIN */
    tally__rollup_init(&r);
    add_i(&r, -P62, 1);
    add_i(&r, -P62, 2);
    cr_assert_eq(r.sum_i, INT64_MIN);
    cr_assert_eq(r.flags, 0);
}

Test(rollup, max_handles_negative_values)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    add_i(&r, -5, 1);
    cr_assert_eq(r.max, -5.0, "the first value is the max even below zero");
    add_i(&r, -10, 2);
    add_i(&r, -3, 3);
    add_i(&r, -7, 4);
    cr_assert_eq(r.max, -3.0);
    add_f(&r, -2.5, 5);
    cr_assert_eq(r.max, -2.5);
    add_i(&r, 0, 6);
    cr_assert_eq(r.max, 0.0);
    add_i(&r, P62, 7);
    cr_assert_eq(r.max, (double)P62);
}

Test(rollup, last_follows_event_time_not_arrival)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    add_i(&r, 10, 1000);
    cr_assert_eq(r.last, 10.0);
    cr_assert_eq(r.last_ts_ms, 1000);
    add_i(&r, 30, 3000);
    cr_assert_eq(r.last, 30.0);
    cr_assert_eq(r.last_ts_ms, 3000);
    /* a late event (older event time) must not replace last */
    add_i(&r, 20, 2000);
    cr_assert_eq(r.last, 30.0);
    cr_assert_eq(r.last_ts_ms, 3000);
    add_f(&r, 99.5, 0);
    cr_assert_eq(r.last, 30.0);
    cr_assert_eq(r.count, 4);
}

Test(rollup, last_tie_on_event_time_goes_to_the_later_added)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    add_i(&r, 1, 5000);
    add_i(&r, 2, 5000);
    cr_assert_eq(r.last, 2.0);
    add_i(&r, 3, 5000);
    cr_assert_eq(r.last, 3.0);
    add_i(&r, 4, 4999);
    cr_assert_eq(r.last, 3.0);
    cr_assert_eq(r.last_ts_ms, 5000);
}

Test(rollup, last_works_before_1970)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    add_i(&r, 7, -5000);
    cr_assert_eq(r.last, 7.0, "the first event is last whatever its time");
    cr_assert_eq(r.last_ts_ms, -5000);
    add_i(&r, 8, -6000);
    cr_assert_eq(r.last, 7.0);
    add_i(&r, 9, -4000);
    cr_assert_eq(r.last, 9.0);
}

Test(rollup, float_values_set_the_flag_and_sum_approximately)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    for (int i = 0; i < 10; i++)
        add_f(&r, 0.1, i);
    cr_assert(r.flags & TALLY_ROLLUP_FLOAT);
    cr_assert_not(tally__rollup_sum_is_int(&r));
    cr_assert_eq(r.sum_i, 0, "floats go to sum_f only");
    cr_assert(fabs(tally__rollup_sum(&r) - 1.0) < 1e-12, "sum %.17g", tally__rollup_sum(&r));
    cr_assert_eq(r.count, 10);

    /* mixed: integers stay exact in sum_i, the total adds both parts */
    add_i(&r, 41, 100);
    cr_assert_eq(r.sum_i, 41);
    cr_assert(fabs(tally__rollup_sum(&r) - 42.0) < 1e-12);
    cr_assert_eq(r.max, 41.0);
    cr_assert_eq(r.last, 41.0);
    cr_assert_eq(r.count, 11);
}

Test(rollup, integers_only_never_set_the_flag)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    uint64_t seed = 0x1234;
    for (int i = 0; i < 10000; i++)
        add_i(&r, rnd_range(&seed, -1000000000, 1000000000), i);
    cr_assert_eq(r.flags, 0);
    cr_assert(tally__rollup_sum_is_int(&r));
}

Test(rollup, int64_overflow_sets_the_float_flag)
{
    /* the flags and the count; the sum itself is checked by the test below */
    tally__rollup_t r;
    tally__rollup_init(&r);
    add_i(&r, INT64_MAX, 1);
    add_i(&r, 1, 2);
    cr_assert(r.flags & TALLY_ROLLUP_FLOAT);
    cr_assert(r.flags & TALLY_ROLLUP_INT_OVERFLOW);
    cr_assert(tally__rollup_int_overflowed(&r));
    cr_assert_not(tally__rollup_sum_is_int(&r));
    cr_assert_eq(r.count, 2);
    cr_assert_eq(r.max, (double)INT64_MAX);
    cr_assert_eq(r.last, 1.0);
}

/*
 * Regression: __builtin_add_overflow stores the wrapped result even when it
 * reports overflow; add once kept it (sum_i = INT64_MIN, sum ~ -9.22e18
 * after INT64_MAX + 1). sum_i must keep its value from before the overflow.
 */
Test(rollup, int64_overflow_in_add_moves_to_float)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    add_i(&r, INT64_MAX, 1);
    cr_assert_eq(r.flags, 0);
    add_i(&r, 1, 2);
    cr_assert(r.flags & TALLY_ROLLUP_FLOAT, "overflow sets the FLOAT flag");
    cr_assert_not(tally__rollup_sum_is_int(&r));
    cr_assert_eq(r.count, 2);
    double want = 9223372036854775808.0; /* 2^63 */
    double got = tally__rollup_sum(&r);
    cr_assert(fabs(got - want) <= want * 1e-15, "sum %.17g, want %.17g (sum_i %lld, sum_f %g)", got,
              want, (long long)r.sum_i, r.sum_f);

    /* downwards too */
    tally__rollup_init(&r);
    add_i(&r, INT64_MIN, 1);
    add_i(&r, -1, 2);
    cr_assert(r.flags & TALLY_ROLLUP_FLOAT);
    got = tally__rollup_sum(&r);
    cr_assert(fabs(got + want) <= want * 1e-15, "sum %.17g, want %.17g", got, -want);
}

/*
 * Regression: merge once undid the wrap with `dst->sum_i -= src->sum_i`,
 * overflowing int64 a second time (UBSan: "signed integer overflow:
 * -9223372036854775808 - 1"). dst = {INT64_MAX}, src = {1} must give
 * sum_i INT64_MAX, sum_f 1, the flags, and no undefined behaviour.
 */
Test(rollup, int64_overflow_in_merge_moves_to_float)
{
    tally__rollup_t a, b;
    tally__rollup_init(&a);
    tally__rollup_init(&b);
    add_i(&a, INT64_MAX, 1);
    add_i(&b, 1, 2);
    cr_assert_eq(tally__rollup_merge(&a, &b), 1, "the merge reports its overflow");
    cr_assert(a.flags & TALLY_ROLLUP_FLOAT);
    cr_assert(a.flags & TALLY_ROLLUP_INT_OVERFLOW);
    cr_assert_eq(a.sum_i, INT64_MAX);
    cr_assert_eq(a.sum_f, 1.0);
    cr_assert_eq(a.count, 2);
    double want = 9223372036854775808.0;
    cr_assert(fabs(tally__rollup_sum(&a) - want) <= want * 1e-15);
}

Test(rollup, add_reports_each_overflowing_addition_once)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    int n = 0;
    n += tally__rollup_add(&r, 0, INT64_MAX - 1, 0.0, 1);
    cr_assert_eq(n, 0, "a value that fits is no overflow");
    n += tally__rollup_add(&r, 0, INT64_MAX - 1, 0.0, 2);
    cr_assert_eq(n, 1, "the second INT64_MAX - 1 overflows once");
    cr_assert_eq(r.sum_i, INT64_MAX - 1, "sum_i keeps its value from before");
    cr_assert_eq(r.sum_f, (double)(INT64_MAX - 1), "the value goes on in sum_f");
    /* every further addition that does not fit counts again */
    n += tally__rollup_add(&r, 0, 2, 0.0, 3);
    cr_assert_eq(n, 2);
    /* one that fits (downwards here) does not, and the flags stay */
    n += tally__rollup_add(&r, 0, -5, 0.0, 4);
    cr_assert_eq(n, 2);
    cr_assert_eq(r.sum_i, INT64_MAX - 6);
    n += tally__rollup_add(&r, 1, 0, 1e30, 5);
    cr_assert_eq(n, 2, "float values never count as int64 overflows");
    cr_assert(tally__rollup_int_overflowed(&r));
    cr_assert_eq(r.count, 5);
    double want = 2.0 * (double)INT64_MAX + 1e30;
    cr_assert(fabs(tally__rollup_sum(&r) - want) <= want * 1e-15, "sum %.17g, want %.17g",
              tally__rollup_sum(&r), want);
}

Test(rollup, floats_alone_never_set_the_overflow_flag)
{
    tally__rollup_t r;
    tally__rollup_init(&r);
    cr_assert_eq(tally__rollup_add(&r, 1, 0, 1e300, 1), 0);
    cr_assert_eq(tally__rollup_add(&r, 1, 0, 1e300, 2), 0);
    cr_assert_eq(tally__rollup_add(&r, 0, INT64_MAX, 0.0, 3), 0);
    cr_assert_eq(r.flags, TALLY_ROLLUP_FLOAT);
    cr_assert_not(tally__rollup_int_overflowed(&r));
}

Test(rollup, the_overflow_flag_survives_merges_without_counting_again)
{
    tally__rollup_t a, b, c, e;
    tally__rollup_init(&a);
    tally__rollup_init(&b);
    tally__rollup_init(&c);
    tally__rollup_init(&e);
    add_i(&a, INT64_MIN, 1);
    cr_assert_eq(tally__rollup_add(&a, 0, -1, 0.0, 2), 1, "overflow downwards counts too");
    add_i(&a, 10, 3); /* back in range: sum_i INT64_MIN + 10 */
    /* a flagged record copied into an empty one: the flag comes along, no new overflow */
    cr_assert_eq(tally__rollup_merge(&e, &a), 0);
    cr_assert(tally__rollup_int_overflowed(&e));
    cr_assert_eq(e.sum_i, INT64_MIN + 10);
    /* merged into an exact record without overflowing: flag kept, not counted */
    add_i(&b, 7, 4);
    cr_assert_eq(tally__rollup_merge(&b, &a), 0);
    cr_assert(tally__rollup_int_overflowed(&b));
    cr_assert_not(tally__rollup_sum_is_int(&b));
    cr_assert_eq(b.sum_i, INT64_MIN + 17);
    cr_assert_eq(b.sum_f, -1.0);
    /* an exact record merged into a flagged one keeps the flag */
    add_i(&c, 3, 5);
    cr_assert_eq(tally__rollup_merge(&b, &c), 0);
    cr_assert(tally__rollup_int_overflowed(&b));
    cr_assert_eq(b.count, 5);
    /* and a merge that overflows counts once */
    tally__rollup_init(&c);
    add_i(&c, -100, 6);
    cr_assert_eq(tally__rollup_merge(&b, &c), 1);
    cr_assert_eq(b.sum_i, INT64_MIN + 20);
    cr_assert_eq(b.sum_f, -101.0);
    /* merging an empty delta reports nothing */
    tally__rollup_init(&c);
    cr_assert_eq(tally__rollup_merge(&b, &c), 0);
}

/* ---- merge ----------------------------------------------------------------- */

Test(rollup, merge_with_empty_sides)
{
    tally__rollup_t a, e, copy;
    tally__rollup_init(&a);
    tally__rollup_init(&e);
    add_i(&a, -4, 10);
    add_f(&a, 2.5, 20);
    copy = a;
    tally__rollup_merge(&a, &e);
    assert_rollup_eq(&a, &copy, "merge of an empty src");
    tally__rollup_merge(&e, &a);
    assert_rollup_eq(&e, &copy, "merge into an empty dst");
}

Test(rollup, merge_src_wins_ties_of_last)
{
    tally__rollup_t a, b;
    tally__rollup_init(&a);
    tally__rollup_init(&b);
    add_i(&a, 1, 100);
    add_i(&b, 2, 100);
    tally__rollup_merge(&a, &b);
    cr_assert_eq(a.last, 2.0);
    /* an older src does not replace last */
    tally__rollup_init(&b);
    add_i(&b, 3, 99);
    tally__rollup_merge(&a, &b);
    cr_assert_eq(a.last, 2.0);
    cr_assert_eq(a.last_ts_ms, 100);
    cr_assert_eq(a.count, 3);
    cr_assert_eq(a.sum_i, 6);
}

typedef struct ev {
    int is_float;
    int64_t ival;
    double fval;
    int64_t ts;
} ev_t;

static void
gen_events(uint64_t *seed, ev_t *evs, size_t n, int with_floats, int distinct_ts)
{
    for (size_t i = 0; i < n; i++) {
        /* floats are multiples of 1/4 well inside 2^53: every order of
         * addition gives the same double, so comparisons can be exact */
        evs[i].is_float = with_floats && rnd(seed) % 4 == 0;
        evs[i].ival = rnd_range(seed, -1000000, 1000000);
        if (rnd(seed) % 16 == 0)
            evs[i].ival = rnd_range(seed, -P62 / 64, P62 / 64); /* big, still no overflow */
        evs[i].fval = (double)rnd_range(seed, -4000, 4000) / 4.0;
        /* few distinct times: many ties of `last` */
        evs[i].ts = distinct_ts ? (int64_t)i * 7 - 500 : rnd_range(seed, -3, 5);
    }
    if (distinct_ts) /* shuffle so event time and arrival order differ */
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(rnd(seed) % i);
            int64_t t = evs[i - 1].ts;
            evs[i - 1].ts = evs[j].ts;
            evs[j].ts = t;
        }
}

static void
add_ev(tally__rollup_t *r, const ev_t *e)
{
    tally__rollup_add(r, e->is_float, e->ival, e->fval, e->ts);
}

Test(rollup, merge_of_a_prefix_split_equals_adding_everything)
{
    uint64_t seed = 0x5eedf00dull;
    ev_t evs[64];
    for (int trial = 0; trial < 3000; trial++) {
        size_t n = 1 + (size_t)(rnd(&seed) % 64);
        gen_events(&seed, evs, n, trial % 2, 0);
        size_t k = (size_t)(rnd(&seed) % (n + 1)); /* split point, 0..n */
        tally__rollup_t all, a, b;
        tally__rollup_init(&all);
        tally__rollup_init(&a);
        tally__rollup_init(&b);
        for (size_t i = 0; i < n; i++) {
            add_ev(&all, &evs[i]);
            add_ev(i < k ? &a : &b, &evs[i]);
        }
        /* b holds the later events: as the newer delta it wins ties */
        tally__rollup_merge(&a, &b);
        char what[64];
        snprintf(what, sizeof what, "trial %d n %zu k %zu", trial, n, k);
        assert_rollup_eq(&a, &all, what);
    }
}

Test(rollup, merge_of_a_random_partition_equals_adding_everything)
{
    /* with distinct event times, any partition of the events (not just a
     * prefix) and any number of parts must merge to the same record */
    uint64_t seed = 0xc0ffeeull;
    ev_t evs[80];
    for (int trial = 0; trial < 2000; trial++) {
        size_t n = 1 + (size_t)(rnd(&seed) % 80);
        gen_events(&seed, evs, n, trial % 3 != 0, 1);
        size_t parts = 1 + (size_t)(rnd(&seed) % 5);
        tally__rollup_t all, part[5], merged;
        tally__rollup_init(&all);
        tally__rollup_init(&merged);
        for (size_t p = 0; p < parts; p++)
            tally__rollup_init(&part[p]);
        for (size_t i = 0; i < n; i++) {
            add_ev(&all, &evs[i]);
            add_ev(&part[rnd(&seed) % parts], &evs[i]);
        }
        for (size_t p = 0; p < parts; p++)
            tally__rollup_merge(&merged, &part[parts - 1 - p]);
        char what[64];
        snprintf(what, sizeof what, "trial %d n %zu parts %zu", trial, n, parts);
        assert_rollup_eq(&merged, &all, what);
    }
}

/* ---- series keys ----------------------------------------------------------- */

Test(rollup, series_key_sorts_labels_canonically)
{
    const tally_label_t l[3] = {{"zone", "eu-1"}, {"app", "web"}, {"m", "x"}};
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    static const char want[] = "acme\0cpu_seconds\0app\x1fweb\x1em\x1fx\x1ezone\x1f"
                               "eu-1";
    size_t want_len = sizeof want - 1;
    for (int p = 0; p < 6; p++) {
        tally_label_t given[3] = {l[perms[p][0]], l[perms[p][1]], l[perms[p][2]]};
        char buf[TALLY_SERIES_KEY_MAX];
        size_t n = tally__series_key(buf, "acme", 4, "cpu_seconds", 11, given, 3);
        cr_assert_eq(n, want_len, "perm %d: length %zu", p, n);
        cr_assert(memcmp(buf, want, n) == 0, "perm %d: bytes differ", p);
    }
}

Test(rollup, series_key_parses_back)
{
    const tally_label_t l[3] = {{"region", "us-east"}, {"object", "bucket/a b"}, {"k", ""}};
    char buf[TALLY_SERIES_KEY_MAX];
    size_t n = tally__series_key(buf, "ns-1", 4, "bytes.out", 9, l, 3);
    tally__series_t s;
    cr_assert_eq(tally__series_parse(buf, n, &s), 0);
    cr_assert_eq(s.ns_len, 4);
    cr_assert(memcmp(s.ns, "ns-1", 4) == 0);
    cr_assert_eq(s.metric_len, 9);
    cr_assert(memcmp(s.metric, "bytes.out", 9) == 0);

    static const char *const want[3][2] = {
        {"k", ""}, {"object", "bucket/a b"}, {"region", "us-east"}};
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl), 1,
                     "label %d", i);
        cr_assert_eq(kl, strlen(want[i][0]));
        cr_assert(memcmp(k, want[i][0], kl) == 0, "label %d key", i);
        cr_assert_eq(vl, strlen(want[i][1]), "label %d value length %u", i, vl);
        cr_assert(memcmp(v, want[i][1], vl) == 0, "label %d value", i);
    }
    cr_assert_eq(tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl), 0);
    cr_assert_eq(tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl), 0,
                 "the end stays the end");
}

Test(rollup, series_key_with_no_labels)
{
    char buf[TALLY_SERIES_KEY_MAX];
    size_t n = tally__series_key(buf, "a", 1, "m", 1, NULL, 0);
    cr_assert_eq(n, 4);
    cr_assert(memcmp(buf, "a\0m\0", 4) == 0);
    tally__series_t s;
    cr_assert_eq(tally__series_parse(buf, n, &s), 0);
    cr_assert_eq(s.ns_len, 1);
    cr_assert_eq(s.metric_len, 1);
    cr_assert_eq(s.labels_len, 0);
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    cr_assert_eq(tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl), 0);
}

Test(rollup, series_key_with_the_maximum_labels_fits)
{
    /* 8 labels of a 32-byte key and a 64-byte value would exceed the byte
     * budget; fill exactly TALLY_MAX_LABELS_BYTES with 8 labels */
    char keys[TALLY_MAX_LABELS][8], vals[TALLY_MAX_LABELS][64];
    tally_label_t l[TALLY_MAX_LABELS];
    size_t budget = TALLY_MAX_LABELS_BYTES / TALLY_MAX_LABELS; /* 40 per label */
    for (int i = 0; i < TALLY_MAX_LABELS; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", TALLY_MAX_LABELS - i); /* reverse order */
        size_t vl = budget - 2 - strlen(keys[i]);
        memset(vals[i], 'v', vl);
        vals[i][vl] = '\0';
        l[i] = (tally_label_t){keys[i], vals[i]};
    }
    char ns[TALLY_MAX_NS_LEN], metric[TALLY_MAX_METRIC_LEN];
    memset(ns, 'n', sizeof ns);
    memset(metric, 'm', sizeof metric);
    char buf[TALLY_SERIES_KEY_MAX];
    size_t n = tally__series_key(buf, ns, sizeof ns, metric, sizeof metric, l, TALLY_MAX_LABELS);
    cr_assert_leq(n, (size_t)TALLY_SERIES_KEY_MAX);
    tally__series_t s;
    cr_assert_eq(tally__series_parse(buf, n, &s), 0);
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    for (int i = 1; i <= TALLY_MAX_LABELS; i++) {
        cr_assert_eq(tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl), 1);
        char want[8];
        snprintf(want, sizeof want, "k%d", i);
        cr_assert(kl == strlen(want) && memcmp(k, want, kl) == 0, "label %d out of order", i);
    }
    cr_assert_eq(tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl), 0);
}

Test(rollup, series_text_is_one_quoted_log_value)
{
    char key[TALLY_SERIES_KEY_MAX], buf[TALLY_SERIES_TEXT_MAX];
    tally_label_t l[2] = {{"object", "lb\"1"}, {"deployment", "d\\x"}};
    size_t n = tally__series_key(key, "acme", 4, "http_requests", 13, l, 2);
    cr_assert_str_eq(tally__series_text(key, n, buf, sizeof buf),
                     "acme/http_requests{deployment=d\\\\x,object=lb\\\"1}");
    n = tally__series_key(key, "acme", 4, "req", 3, NULL, 0);
    cr_assert_str_eq(tally__series_text(key, n, buf, sizeof buf), "acme/req");
    /* truncated to fit, never a dangling escape */
    cr_assert_str_eq(tally__series_text(key, n, buf, 6), "acme/");
    n = tally__series_key(key, "a", 1, "m", 1, l, 2);
    char small[20];
    tally__series_text(key, n, small, sizeof small);
    cr_assert_str_eq(small, "a/m{deployment=d\\\\x");
    tally__series_text(key, n, small, 18);
    cr_assert_str_eq(small, "a/m{deployment=d",
                     "an escape that does not fit is left out whole, and so is all after it");
    cr_assert_str_eq(tally__series_text("bad", 3, buf, sizeof buf), "?");
}

Test(rollup, series_parse_rejects_keys_without_separators)
{
    tally__series_t s;
    cr_assert_eq(tally__series_parse("nometric", 8, &s), TALLY_ECORRUPT);
    cr_assert_eq(tally__series_parse("ns\0metric", 9, &s), TALLY_ECORRUPT);
    cr_assert_eq(tally__series_parse("", 0, &s), TALLY_ECORRUPT);
}

/* ---- rollup keys ----------------------------------------------------------- */

Test(rollup, rollup_key_round_trips_ids_and_periods)
{
    static const int64_t periods[] = {0,
                                      1,
                                      -1,
                                      3600,
                                      -3600,
                                      1709251200,
                                      -2678400,
                                      INT64_MAX,
                                      INT64_MIN,
                                      INT64_MIN + 1,
                                      INT64_MAX - 1,
                                      253402300799LL,
                                      -62167219200LL};
    static const uint32_t ids[] = {0, 1, 255, 256, 0x01020304u, 0x7ffffffeu, UINT32_MAX};
    for (size_t j = 0; j < sizeof ids / sizeof ids[0]; j++)
        for (size_t i = 0; i < sizeof periods / sizeof periods[0]; i++) {
            unsigned char key[TALLY_ROLLUP_KEY_LEN];
            tally__rollup_key(key, ids[j], periods[i]);
            uint32_t sid;
            int64_t p;
            cr_assert_eq(tally__rollup_key_parse(key, sizeof key, &sid, &p), 0);
            cr_assert_eq(p, periods[i], "period %lld came back as %lld", (long long)periods[i],
                         (long long)p);
            cr_assert_eq(sid, ids[j], "id %u came back as %u", ids[j], sid);
        }
}

Test(rollup, rollup_key_parse_rejects_keys_of_another_length)
{
    unsigned char key[TALLY_ROLLUP_KEY_LEN + 1] = {0};
    tally__rollup_key(key, 7, 3600);
    uint32_t sid;
    int64_t p;
    cr_assert_eq(tally__rollup_key_parse(key, TALLY_ROLLUP_KEY_LEN, &sid, &p), 0);
    cr_assert_eq(tally__rollup_key_parse(key, TALLY_ROLLUP_KEY_LEN - 1, &sid, &p), TALLY_ECORRUPT);
    cr_assert_eq(tally__rollup_key_parse(key, TALLY_ROLLUP_KEY_LEN + 1, &sid, &p), TALLY_ECORRUPT);
    cr_assert_eq(tally__rollup_key_parse(key, 0, &sid, &p), TALLY_ECORRUPT);
}

/* memcmp with the shorter string first on a tie: LMDB's default key order */
static int
bytecmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c < 0 ? -1 : 1;
    return al < bl ? -1 : al > bl;
}

static int
sign(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

Test(rollup, rollup_key_byte_order_is_period_then_id_order)
{
    static const uint32_t ids[] = {0, 1, 2, 255, 256, 65535, 65536, 0x00ffffffu, 0x01000000u,
                                   0x7ffffffeu, 0x80000000u, UINT32_MAX};
    static const int64_t periods[] = {
        INT64_MIN, -86400 * 365LL, -7200, -3600,      -1,           0,
        1,         3600,           7200,  1709251200, 4102444800LL, INT64_MAX};
    enum { NI = sizeof ids / sizeof ids[0], NP = sizeof periods / sizeof periods[0] };
    static unsigned char rkey[NI * NP][TALLY_ROLLUP_KEY_LEN];
    for (size_t i = 0; i < NI; i++)
        for (size_t p = 0; p < NP; p++)
            tally__rollup_key(rkey[i * NP + p], ids[i], periods[p]);
    for (size_t a = 0; a < NI * NP; a++)
        for (size_t b = 0; b < NI * NP; b++) {
            size_t ia = a / NP, ib = b / NP, pa = a % NP, pb = b % NP;
            int want = sign(periods[pa], periods[pb]);
            if (want == 0)
                want = sign(ids[ia], ids[ib]);
            int got = bytecmp((const char *)rkey[a], TALLY_ROLLUP_KEY_LEN,
                              (const char *)rkey[b], TALLY_ROLLUP_KEY_LEN);
            cr_assert_eq(got, want, "id %u period %lld vs id %u period %lld: key order %d, want %d",
                         ids[ia], (long long)periods[pa], ids[ib], (long long)periods[pb], got,
                         want);
        }
}

Test(rollup, rollup_key_order_of_random_periods_matches_numeric_order)
{
    uint64_t seed = 42;
    unsigned char ka[TALLY_ROLLUP_KEY_LEN], kb[TALLY_ROLLUP_KEY_LEN];
    for (int i = 0; i < 100000; i++) {
        int64_t a = (int64_t)rnd(&seed), b = (int64_t)rnd(&seed);
        if (i % 3 == 0) { /* near 1970 as well */
            a = rnd_range(&seed, -100000, 100000);
            b = rnd_range(&seed, -100000, 100000);
        }
        uint32_t id = (uint32_t)rnd(&seed);
        tally__rollup_key(ka, id, a);
        tally__rollup_key(kb, id, b);
        cr_assert_eq(bytecmp((const char *)ka, sizeof ka, (const char *)kb, sizeof kb), sign(a, b),
                     "%lld vs %lld", (long long)a, (long long)b);
    }
}
