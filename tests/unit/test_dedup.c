/* test_dedup.c — Criterion tests of the per-producer dedup window: order, gaps, base jumps, window bounds and a randomized model check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dedup.h"
#include "tally/tally.h"

#define NEW TALLY_DEDUP_NEW
#define DUP TALLY_DEDUP_DUP
#define AHEAD TALLY_DEDUP_AHEAD

static const char *
verdict_name(int v)
{
    return v == NEW ? "NEW" : v == DUP ? "DUP" : v == AHEAD ? "AHEAD" : "?";
}

/* accept(seq, base) must give want. */
static void
expect_accept(tally__dedup_t *d, uint64_t seq, uint64_t base, int want)
{
    int got = tally__dedup_accept(d, seq, base);
    cr_expect_eq(got, want, "seq %llu base %llu: %s, want %s (floor %llu)",
                 (unsigned long long)seq, (unsigned long long)base, verdict_name(got),
                 verdict_name(want), (unsigned long long)d->floor);
}

/* A fresh state has counted nothing. */
static void
fresh(tally__dedup_t *d)
{
    memset(d, 0, sizeof *d);
}

Test(dedup, in_order_batches_advance_the_floor)
{
    tally__dedup_t d;
    fresh(&d);
    /* base = seq: every earlier batch was acked */
    for (uint64_t s = 1; s <= 3000; s++) {
        expect_accept(&d, s, s, NEW);
        cr_assert_eq(d.floor, s, "floor after %llu", (unsigned long long)s);
        cr_assert_eq(d.max_seq, s);
    }
    /* base = 1: nothing acked yet, all within the window */
    fresh(&d);
    for (uint64_t s = 1; s <= TALLY_DEDUP_WINDOW; s++) {
        expect_accept(&d, s, 1, NEW);
        cr_assert_eq(d.floor, s);
    }
    for (size_t i = 0; i < TALLY__DEDUP_WORDS; i++)
        cr_expect_eq(d.bits[i], 0, "word %zu is clear once the floor has caught up", i);
}

Test(dedup, duplicate_of_a_committed_seq_is_dup)
{
    tally__dedup_t d, before;
    fresh(&d);
    for (uint64_t s = 1; s <= 3; s++)
        expect_accept(&d, s, s, NEW);
    memcpy(&before, &d, sizeof d);
    expect_accept(&d, 2, 2, DUP);
    expect_accept(&d, 3, 1, DUP);
    expect_accept(&d, 1, 1, DUP);
    expect_accept(&d, 3, 3, DUP);
    cr_expect(memcmp(&before, &d, sizeof d) == 0, "a duplicate changes nothing");
    cr_expect(tally__dedup_seen(&d, 3));
    cr_expect(!tally__dedup_seen(&d, 4));
}

Test(dedup, out_of_order_batches_count_once)
{
    tally__dedup_t d;
    fresh(&d);
    for (uint64_t s = 1; s <= 3; s++)
        expect_accept(&d, s, s, NEW);
    expect_accept(&d, 5, 4, NEW); /* 4 still unacked at the producer */
    cr_expect_eq(d.floor, 3);
    cr_expect_eq(d.max_seq, 5);
    cr_expect(tally__dedup_seen(&d, 5));
    cr_expect(!tally__dedup_seen(&d, 4));
    expect_accept(&d, 5, 4, DUP);
    expect_accept(&d, 4, 4, NEW);
    cr_expect_eq(d.floor, 5);
    cr_expect_eq(d.max_seq, 5);
    expect_accept(&d, 4, 4, DUP);
    expect_accept(&d, 5, 4, DUP);
    for (size_t i = 0; i < TALLY__DEDUP_WORDS; i++)
        cr_expect_eq(d.bits[i], 0);
}

Test(dedup, gap_does_not_block_later_batches)
{
    tally__dedup_t d;
    fresh(&d);
    for (uint64_t s = 1; s <= 3; s++)
        expect_accept(&d, s, s, NEW);
    /* 4 is lost: 5..20 arrive, each carrying base 4 */
    for (uint64_t s = 5; s <= 20; s++) {
        expect_accept(&d, s, 4, NEW);
        cr_expect_eq(d.floor, 3, "floor after %llu", (unsigned long long)s);
        cr_expect_eq(d.max_seq, s);
    }
    cr_expect(!tally__dedup_seen(&d, 4));
    for (uint64_t s = 5; s <= 20; s++)
        expect_accept(&d, s, 4, DUP);
    expect_accept(&d, 4, 4, NEW);
    cr_expect_eq(d.floor, 20);
    cr_expect_eq(d.max_seq, 20);
    for (uint64_t s = 1; s <= 20; s++) {
        expect_accept(&d, s, s < 4 ? s : 4, DUP);
        expect_accept(&d, s, 1, DUP);
    }
    cr_expect_eq(d.floor, 20);
    expect_accept(&d, 21, 21, NEW);
    cr_expect_eq(d.floor, 21);
}

Test(dedup, base_jump_from_a_restarted_producer)
{
    tally__dedup_t d;
    fresh(&d);
    for (uint64_t s = 1; s <= 3; s++)
        expect_accept(&d, s, s, NEW);
    expect_accept(&d, 5, 4, NEW); /* a pending bit that the jump passes over */
    expect_accept(&d, 1000000, 1000000, NEW);
    cr_expect_eq(d.floor, 1000000);
    cr_expect_eq(d.max_seq, 1000000);
    for (size_t i = 0; i < TALLY__DEDUP_WORDS; i++)
        cr_expect_eq(d.bits[i], 0, "word %zu cleared by the jump", i);
    expect_accept(&d, 4, 4, DUP); /* below the new floor: the old instance is gone */
    expect_accept(&d, 999999, 999999, DUP);
    expect_accept(&d, 1000000, 1000000, DUP);
    expect_accept(&d, 1000001, 1000000, NEW);
    cr_expect_eq(d.floor, 1000001);

    /* A first contact from a producer that starts at the wall clock. */
    fresh(&d);
    const uint64_t us = 1700000000123456ull;
    expect_accept(&d, us, us, NEW);
    cr_expect_eq(d.floor, us);
    cr_expect_eq(d.max_seq, us);
}

Test(dedup, base_slide_merges_with_pending_batches)
{
    tally__dedup_t d;
    fresh(&d);
    for (uint64_t s = 1; s <= 3; s++)
        expect_accept(&d, s, s, NEW);
    expect_accept(&d, 5, 4, NEW);
    expect_accept(&d, 7, 4, NEW);
    expect_accept(&d, 8, 4, NEW);
    cr_expect_eq(d.floor, 3);
    /* The producer says it will never send anything below 6 again: the
     * floor slides to 5, over the pending 5, and stops at the hole at 6. */
    expect_accept(&d, 9, 6, NEW);
    cr_expect_eq(d.floor, 5);
    cr_expect(!tally__dedup_seen(&d, 6));
    cr_expect(tally__dedup_seen(&d, 7) && tally__dedup_seen(&d, 8) && tally__dedup_seen(&d, 9));
    expect_accept(&d, 6, 6, NEW);
    cr_expect_eq(d.floor, 9);
    cr_expect_eq(d.max_seq, 9);

    /* A slide that lands right before a run of pending bits settles over them. */
    fresh(&d);
    expect_accept(&d, 1, 1, NEW);
    for (uint64_t s = 3; s <= 200; s++)
        expect_accept(&d, s, 2, NEW);
    cr_expect_eq(d.floor, 1);
    expect_accept(&d, 201, 3, NEW); /* 2 acked: floor slides to 2, then to 201 */
    cr_expect_eq(d.floor, 201);
    cr_expect_eq(d.max_seq, 201);
}

Test(dedup, seq_beyond_the_window_is_ahead_and_changes_nothing)
{
    tally__dedup_t d, before;
    fresh(&d);
    for (uint64_t s = 1; s <= 10; s++)
        expect_accept(&d, s, s, NEW);
    expect_accept(&d, 12, 11, NEW);
    expect_accept(&d, 500, 11, NEW);
    expect_accept(&d, 10 + TALLY_DEDUP_WINDOW, 11, NEW); /* the last slot */
    memcpy(&before, &d, sizeof d);

    const uint64_t ahead[] = {10 + TALLY_DEDUP_WINDOW + 1, 10 + 2 * TALLY_DEDUP_WINDOW,
                              1ull << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof ahead / sizeof ahead[0]; i++) {
        expect_accept(&d, ahead[i], 11, AHEAD);
        cr_expect(memcmp(&before, &d, sizeof d) == 0, "AHEAD at %llu left the state as it was",
                  (unsigned long long)ahead[i]);
        expect_accept(&d, ahead[i], 1, AHEAD);
        cr_expect(memcmp(&before, &d, sizeof d) == 0);
        cr_expect(!tally__dedup_seen(&d, ahead[i]));
    }

    /* With a base that slides the floor, the slide happens (it only says
     * what the producer has been acked) and the rest stays unchanged. */
    expect_accept(&d, 50 + TALLY_DEDUP_WINDOW + 100, 50, AHEAD);
    cr_expect_eq(d.floor, 49);
    cr_expect_eq(d.max_seq, before.max_seq);
    for (uint64_t s = 1; s <= 49 + TALLY_DEDUP_WINDOW + 10; s++) {
        int want = s <= 49 || s == 500 || s == 10 + TALLY_DEDUP_WINDOW;
        cr_expect_eq(tally__dedup_seen(&d, s), want, "seen(%llu) after the slide",
                     (unsigned long long)s);
    }
}

Test(dedup, window_edge_is_inclusive)
{
    const uint64_t floors[] = {0, 1, 63, 64, 1000, (1ull << 62) + 17};
    for (size_t f = 0; f < sizeof floors / sizeof floors[0]; f++) {
        uint64_t F = floors[f];
        tally__dedup_t d;
        fresh(&d);
        if (F)
            expect_accept(&d, F, F, NEW);
        cr_assert_eq(d.floor, F);
        expect_accept(&d, F + TALLY_DEDUP_WINDOW + 1, F + 1, AHEAD);
        expect_accept(&d, F + TALLY_DEDUP_WINDOW, F + 1, NEW);
        cr_expect(tally__dedup_seen(&d, F + TALLY_DEDUP_WINDOW));
        expect_accept(&d, F + TALLY_DEDUP_WINDOW, F + 1, DUP);
        expect_accept(&d, F + TALLY_DEDUP_WINDOW + 1, F + 1, AHEAD);
        /* fill the window backwards: the floor moves only with the last one */
        for (uint64_t s = F + TALLY_DEDUP_WINDOW - 1; s >= F + 2; s--) {
            expect_accept(&d, s, F + 1, NEW);
            cr_assert_eq(d.floor, F);
        }
        expect_accept(&d, F + 1, F + 1, NEW);
        cr_expect_eq(d.floor, F + TALLY_DEDUP_WINDOW, "floor %llu, want %llu",
                     (unsigned long long)d.floor, (unsigned long long)(F + TALLY_DEDUP_WINDOW));
        cr_expect_eq(d.max_seq, F + TALLY_DEDUP_WINDOW);
        for (size_t i = 0; i < TALLY__DEDUP_WORDS; i++)
            cr_expect_eq(d.bits[i], 0);
        /* and the window is open again */
        expect_accept(&d, F + 2 * TALLY_DEDUP_WINDOW, F + TALLY_DEDUP_WINDOW + 1, NEW);
        expect_accept(&d, F + 2 * TALLY_DEDUP_WINDOW + 1, F + TALLY_DEDUP_WINDOW + 1, AHEAD);
    }
}

Test(dedup, sequence_numbers_near_the_top_of_uint64)
{
    tally__dedup_t d;
    fresh(&d);
    const uint64_t top = UINT64_MAX;
    expect_accept(&d, top - 10, top - 10, NEW);
    for (uint64_t s = top; s > top - 10; s--)
        expect_accept(&d, s, top - 9, NEW);
    cr_expect_eq(d.floor, top);
    cr_expect_eq(d.max_seq, top);
    expect_accept(&d, top, top, DUP);
    expect_accept(&d, top - 5, top - 9, DUP);
}

/* ---- randomized model ---------------------------------------------------- */

/* xorshift64*: small, fast and deterministic for a fixed seed. */
static uint64_t
rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static uint64_t
rng_below(uint64_t *s, uint64_t n)
{
    return rng_next(s) % n;
}

typedef struct msg {
    uint64_t seq, base;
} msg_t;

/*
 * One simulated producer against one dedup state. The producer numbers its
 * batches first, first+1, ..., keeps at most `window` unacked, and stamps
 * each send with base = its oldest unacked seq. The network reorders,
 * duplicates (resends) and loses messages; acks are lost too. The reference
 * is a plain bitmap of what has been counted; it must agree with every
 * verdict, and in the end every batch is counted exactly once.
 */
static void
model_run(uint64_t seed, uint64_t first, uint32_t n, uint32_t window, unsigned ack_loss_pct)
{
    uint64_t rng = seed;
    uint8_t *counted = calloc(n, 1), *acked = calloc(n, 1);
    uint32_t *news = calloc(n, sizeof *news);
    size_t net_cap = 4 * (size_t)window + 64, net_len = 0;
    msg_t *net = calloc(net_cap, sizeof *net);
    cr_assert(counted && acked && news && net);
    tally__dedup_t d;
    fresh(&d);
    uint32_t next = 0;    /* index of the next batch to create */
    uint32_t oldest = 0;  /* index of the oldest unacked batch, or next */
    uint64_t steps = 0;
    /* The reference floor: the base slides it, then it runs over every
     * counted seq that touches it. The reference max_seq follows. */
    uint64_t ref_floor = 0, ref_max = 0;

    while (oldest < n) {
        cr_assert_lt(++steps, 100000000ull, "seed %llu: the model does not terminate",
                     (unsigned long long)seed);
        unsigned action = (unsigned)rng_below(&rng, 100);
        if (net_len == net_cap)
            action = 50; /* the network is full: deliver */
        if (action < 30) {
            /* a new batch, if the producer's window allows */
            if (next < n && next - oldest < window) {
                net[net_len++] = (msg_t){first + next, first + oldest};
                next++;
            }
        } else if (action < 45) {
            /* a resend of an unacked batch: the oldest (its ack timer
             * expires first) half of the time, any other otherwise */
            if (oldest < next) {
                uint32_t i = oldest;
                if (rng_below(&rng, 2))
                    i += (uint32_t)rng_below(&rng, next - oldest);
                if (!acked[i])
                    net[net_len++] = (msg_t){first + i, first + oldest};
            }
        } else if (action < 92) {
            /* delivery of any message in flight: reordering */
            if (net_len == 0)
                continue;
            size_t k = (size_t)rng_below(&rng, net_len);
            msg_t m = net[k];
            net[k] = net[--net_len];
            uint32_t i = (uint32_t)(m.seq - first);
            int want = counted[i] ? DUP : NEW;
            int got = tally__dedup_accept(&d, m.seq, m.base);
            cr_assert_eq(got, want,
                         "seed %llu first %llu window %u: seq %llu base %llu: %s, want %s "
                         "(floor %llu)",
                         (unsigned long long)seed, (unsigned long long)first, window,
                         (unsigned long long)m.seq, (unsigned long long)m.base,
                         verdict_name(got), verdict_name(want), (unsigned long long)d.floor);
            if (got == NEW)
                news[i]++;
            counted[i] = 1;
            if (m.base - 1 > ref_floor)
                ref_floor = m.base - 1;
            while (ref_floor - (first - 1) < n && counted[ref_floor - (first - 1)])
                ref_floor++; /* ref_floor >= first - 1: the first base was >= first */
            if (got == NEW && m.seq > ref_max)
                ref_max = m.seq;
            if (ref_floor > ref_max)
                ref_max = ref_floor;
            cr_assert_eq(d.floor, ref_floor, "seed %llu: floor %llu, want %llu",
                         (unsigned long long)seed, (unsigned long long)d.floor,
                         (unsigned long long)ref_floor);
            cr_assert_eq(d.max_seq, ref_max, "seed %llu: max_seq %llu, want %llu",
                         (unsigned long long)seed, (unsigned long long)d.max_seq,
                         (unsigned long long)ref_max);
            cr_assert(tally__dedup_seen(&d, m.seq));
            cr_assert_geq(d.floor, m.base - 1, "the floor covers what the producer released");
            /* spot checks against the reference */
            for (int c = 0; c < 3 && next > 0; c++) {
                uint32_t j = (uint32_t)rng_below(&rng, next);
                cr_assert_eq(tally__dedup_seen(&d, first + j), counted[j],
                             "seed %llu: seen(%llu)", (unsigned long long)seed,
                             (unsigned long long)(first + j));
            }
            /* the daemon acks NEW and DUP alike; the ack may be lost */
            if ((unsigned)rng_below(&rng, 100) >= ack_loss_pct) {
                acked[i] = 1;
                while (oldest < next && acked[oldest])
                    oldest++;
            }
        } else {
            /* loss */
            if (net_len > 0) {
                size_t k = (size_t)rng_below(&rng, net_len);
                net[k] = net[--net_len];
            }
        }
    }

    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(news[i], 1, "seed %llu: seq %llu counted %u times",
                     (unsigned long long)seed, (unsigned long long)(first + i), news[i]);
    for (uint32_t i = 0; i < n; i++)
        cr_assert(tally__dedup_seen(&d, first + i));
    /* Messages still in flight are all duplicates now. */
    while (net_len > 0) {
        msg_t m = net[--net_len];
        cr_assert_eq(tally__dedup_accept(&d, m.seq, m.base), DUP);
    }
    cr_assert_eq(d.floor, first + n - 1, "seed %llu: floor %llu, want %llu",
                 (unsigned long long)seed, (unsigned long long)d.floor,
                 (unsigned long long)(first + n - 1));
    cr_assert_eq(d.max_seq, first + n - 1);
    if (first + n - 1 < UINT64_MAX)
        cr_assert(!tally__dedup_seen(&d, first + n));
    free(net);
    free(news);
    free(acked);
    free(counted);
}

Test(dedup, randomized_model_agrees_with_a_reference_set)
{
    static const uint32_t windows[] = {1, 2, 3, 8, 63, 64, 65, 200, TALLY_DEDUP_WINDOW};
    uint64_t rng = 0x5eed5eed12345678ull;
    enum { RUNS = 3000 };
    for (uint32_t run = 0; run < RUNS; run++) {
        uint64_t seed = rng_next(&rng) | 1;
        uint32_t window = windows[rng_below(&rng, sizeof windows / sizeof windows[0])];
        uint32_t n = 1 + (uint32_t)rng_below(&rng, 400);
        unsigned ack_loss = (unsigned)rng_below(&rng, 60);
        uint64_t first;
        switch (rng_below(&rng, 4)) {
        case 0:
            first = 1;
            break;
        case 1:
            first = 1 + rng_below(&rng, 1ull << 20);
            break;
        case 2:
            first = (1ull << 63) + rng_below(&rng, 1ull << 40);
            break;
        default:
            first = UINT64_MAX - n + 1 - rng_below(&rng, 3); /* ends at or near the top */
            break;
        }
        model_run(seed, first, n, window, ack_loss);
    }
    /* A few long runs with the full window and many lost acks, so that the
     * window fills up and its bitmap shifts across every word boundary. */
    for (uint32_t run = 0; run < 8; run++) {
        uint64_t seed = rng_next(&rng) | 1;
        model_run(seed, 1 + rng_below(&rng, 1000), 6000, TALLY_DEDUP_WINDOW, 85);
    }
}
