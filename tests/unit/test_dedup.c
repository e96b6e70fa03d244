/* test_dedup.c — Criterion tests of the exactly-once dedup window, with a randomized model. */
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
    cr_expect_eq(got, want, "seq %llu base %llu: %s, want %s (floor %llu)", (unsigned long long)seq,
                 (unsigned long long)base, verdict_name(got), verdict_name(want),
                 (unsigned long long)d->floor);
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

    const uint64_t ahead[] = {10 + TALLY_DEDUP_WINDOW + 1, 10 + 2 * TALLY_DEDUP_WINDOW, 1ull << 40,
                              UINT64_MAX};
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

    /* A slide past everything counted so far lifts max_seq to the floor. */
    fresh(&d);
    expect_accept(&d, 1, 1, NEW);
    expect_accept(&d, 5000 + TALLY_DEDUP_WINDOW, 5000, AHEAD);
    cr_expect_eq(d.floor, 4999);
    cr_expect_eq(d.max_seq, 4999);
    for (size_t i = 0; i < TALLY__DEDUP_WORDS; i++)
        cr_expect_eq(d.bits[i], 0);
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

/* How a simulated run behaves. */
typedef struct model_opts {
    uint64_t seed;
    uint64_t first;        /**< the producer's first seq */
    uint32_t n;            /**< batches it creates */
    uint32_t window;       /**< at most this many unacked */
    unsigned ack_loss_pct; /**< acks lost on the way back */
    int hwm_acks;          /**< 1: an ack releases every seq <= floor, as
                                tallyd's "h" does; 0: it releases its seq */
    unsigned give_up_pct;  /**< per mille of steps where the producer gives up
                                an unacked batch (as a restart would) */
} model_opts_t;

/* The simulation: the producer, the network and the reference. */
typedef struct model {
    model_opts_t o;
    uint64_t rng;
    uint8_t *counted;  /**< reference: counted by the daemon */
    uint8_t *released; /**< producer: acked or given up */
    uint8_t *given_up;
    uint32_t *news; /**< NEW verdicts per batch */
    msg_t *net;
    size_t net_len, net_cap;
    uint32_t next, oldest; /**< next batch to create; oldest not released */
    uint64_t ref_floor, ref_max;
    tally__dedup_t d;
} model_t;

/* The reference's idea of whether first + i is settled. */
static int
ref_seen(const model_t *m, uint32_t i)
{
    return m->counted[i] || m->o.first + i <= m->ref_floor;
}

static void
release_up_to_oldest(model_t *m)
{
    while (m->oldest < m->next && m->released[m->oldest])
        m->oldest++;
}

/* Deliver in-flight message k to the daemon and check its verdict. */
static void
deliver(model_t *m, size_t k)
{
    const model_opts_t *o = &m->o;
    msg_t msg = m->net[k];
    m->net[k] = m->net[--m->net_len];
    uint32_t i = (uint32_t)(msg.seq - o->first);

    /* reference: the base slides the floor, then the set decides */
    if (msg.base - 1 > m->ref_floor)
        m->ref_floor = msg.base - 1;
    int want = ref_seen(m, i) ? DUP : NEW;
    int got = tally__dedup_accept(&m->d, msg.seq, msg.base);
    cr_assert_eq(got, want,
                 "seed %llu first %llu window %u: seq %llu base %llu: %s, want %s (floor %llu)",
                 (unsigned long long)o->seed, (unsigned long long)o->first, o->window,
                 (unsigned long long)msg.seq, (unsigned long long)msg.base, verdict_name(got),
                 verdict_name(want), (unsigned long long)m->d.floor);
    if (got == NEW) {
        m->news[i]++;
        m->counted[i] = 1;
        if (msg.seq > m->ref_max)
            m->ref_max = msg.seq;
    }
    /* ref_floor >= first - 1 here: every base is >= first */
    while (m->ref_floor - (o->first - 1) < o->n && m->counted[m->ref_floor - (o->first - 1)])
        m->ref_floor++;
    if (m->ref_floor > m->ref_max)
        m->ref_max = m->ref_floor;
    cr_assert_eq(m->d.floor, m->ref_floor, "seed %llu: floor %llu, want %llu",
                 (unsigned long long)o->seed, (unsigned long long)m->d.floor,
                 (unsigned long long)m->ref_floor);
    cr_assert_eq(m->d.max_seq, m->ref_max, "seed %llu: max_seq %llu, want %llu",
                 (unsigned long long)o->seed, (unsigned long long)m->d.max_seq,
                 (unsigned long long)m->ref_max);
    for (int c = 0; c < 3; c++) { /* spot checks of seen() */
        uint32_t j = (uint32_t)rng_below(&m->rng, m->next);
        cr_assert_eq(tally__dedup_seen(&m->d, o->first + j), ref_seen(m, j),
                     "seed %llu: seen(%llu)", (unsigned long long)o->seed,
                     (unsigned long long)(o->first + j));
    }

    /* the daemon acks NEW and DUP alike; the ack may be lost */
    if ((unsigned)rng_below(&m->rng, 100) < o->ack_loss_pct)
        return;
    if (o->hwm_acks) {
        for (uint32_t j = m->oldest; j < m->next && o->first + j <= m->ref_floor; j++)
            m->released[j] = 1;
    } else {
        m->released[i] = 1;
    }
    release_up_to_oldest(m);
}

/*
 * One simulated producer against one dedup state. The producer numbers its
 * batches first, first+1, ..., keeps at most `window` unreleased, and stamps
 * each send with base = its oldest unreleased seq. The network reorders,
 * duplicates (resends) and loses messages; acks are lost too; the producer
 * may give a batch up. The reference is a plain bitmap of what has been
 * counted plus the floor the bases imply; it must agree with every verdict,
 * floor and max_seq, and in the end every batch not given up is counted
 * exactly once.
 */
static void
model_run(const model_opts_t *opts)
{
    model_t m = {.o = *opts, .rng = opts->seed};
    const model_opts_t *o = &m.o;
    m.counted = calloc(o->n, 1);
    m.released = calloc(o->n, 1);
    m.given_up = calloc(o->n, 1);
    m.news = calloc(o->n, sizeof *m.news);
    m.net_cap = 4 * (size_t)o->window + 64;
    m.net = calloc(m.net_cap, sizeof *m.net);
    cr_assert(m.counted && m.released && m.given_up && m.news && m.net);
    fresh(&m.d);

    uint64_t steps = 0;
    while (m.oldest < o->n) {
        cr_assert_lt(++steps, 100000000ull, "seed %llu: the model does not terminate",
                     (unsigned long long)o->seed);
        unsigned action = (unsigned)rng_below(&m.rng, 1000);
        if (m.net_len == m.net_cap)
            action = 500; /* the network is full: deliver */
        if (action < o->give_up_pct) {
            /* give up an unreleased batch; copies in flight may still arrive */
            if (m.oldest < m.next) {
                uint32_t i = m.oldest + (uint32_t)rng_below(&m.rng, m.next - m.oldest);
                if (!m.released[i]) {
                    m.released[i] = m.given_up[i] = 1;
                    release_up_to_oldest(&m);
                }
            }
        } else if (action < 300) {
            /* a new batch, if the producer's window allows */
            if (m.next < o->n && m.next - m.oldest < o->window) {
                m.net[m.net_len++] = (msg_t){o->first + m.next, o->first + m.oldest};
                m.next++;
            }
        } else if (action < 450) {
            /* a resend: the oldest (its ack timer expires first) half of the time */
            if (m.oldest < m.next) {
                uint32_t i = m.oldest;
                if (rng_below(&m.rng, 2))
                    i += (uint32_t)rng_below(&m.rng, m.next - m.oldest);
                if (!m.released[i])
                    m.net[m.net_len++] = (msg_t){o->first + i, o->first + m.oldest};
            }
        } else if (action < 920) {
            /* delivery of any message in flight: reordering */
            if (m.net_len > 0)
                deliver(&m, (size_t)rng_below(&m.rng, m.net_len));
        } else if (m.net_len > 0) {
            /* loss */
            size_t k = (size_t)rng_below(&m.rng, m.net_len);
            m.net[k] = m.net[--m.net_len];
        }
    }
    /* Stale copies still in flight arrive too, in random order. */
    while (m.net_len > 0)
        deliver(&m, (size_t)rng_below(&m.rng, m.net_len));

    for (uint32_t i = 0; i < o->n; i++) {
        if (m.given_up[i])
            cr_assert_leq(m.news[i], 1, "seed %llu: given-up seq %llu counted %u times",
                          (unsigned long long)o->seed, (unsigned long long)(o->first + i),
                          m.news[i]);
        else
            cr_assert_eq(m.news[i], 1, "seed %llu: seq %llu counted %u times",
                         (unsigned long long)o->seed, (unsigned long long)(o->first + i),
                         m.news[i]);
    }
    for (uint32_t i = 0; i < o->n; i++)
        cr_assert_eq(tally__dedup_seen(&m.d, o->first + i), ref_seen(&m, i));
    if (o->first + o->n - 1 < UINT64_MAX)
        cr_assert(!tally__dedup_seen(&m.d, o->first + o->n));
    if (o->give_up_pct == 0) {
        cr_assert_eq(m.d.floor, o->first + o->n - 1, "seed %llu: floor %llu, want %llu",
                     (unsigned long long)o->seed, (unsigned long long)m.d.floor,
                     (unsigned long long)(o->first + o->n - 1));
        cr_assert_eq(m.d.max_seq, o->first + o->n - 1);
    }
    free(m.net);
    free(m.news);
    free(m.given_up);
    free(m.released);
    free(m.counted);
}

Test(dedup, randomized_model_agrees_with_a_reference_set)
{
    static const uint32_t windows[] = {1, 2, 3, 8, 63, 64, 65, 200, TALLY_DEDUP_WINDOW};
    static const unsigned give_up[] = {0, 0, 2, 10, 40};
    uint64_t rng = 0x5eed5eed12345678ull;
    enum { RUNS = 3000 };
    for (uint32_t run = 0; run < RUNS; run++) {
        model_opts_t o = {
            .seed = rng_next(&rng) | 1,
            .n = 1 + (uint32_t)rng_below(&rng, 400),
            .window = windows[rng_below(&rng, sizeof windows / sizeof windows[0])],
            .ack_loss_pct = (unsigned)rng_below(&rng, 60),
            .hwm_acks = (int)rng_below(&rng, 2),
            .give_up_pct = give_up[rng_below(&rng, sizeof give_up / sizeof give_up[0])],
        };
        switch (rng_below(&rng, 4)) {
        case 0:
            o.first = 1;
            break;
        case 1:
            o.first = 1 + rng_below(&rng, 1ull << 20);
            break;
        case 2:
            o.first = (1ull << 63) + rng_below(&rng, 1ull << 40);
            break;
        default: /* ends at or just below UINT64_MAX */
            o.first = UINT64_MAX - o.n + 1 - rng_below(&rng, 3);
            break;
        }
        model_run(&o);
    }
    /* A few long runs with the full window and many lost acks, so that the
     * window fills up and its bitmap shifts across every word boundary. */
    for (uint32_t run = 0; run < 8; run++) {
        model_opts_t o = {
            .seed = rng_next(&rng) | 1,
            .first = 1 + rng_below(&rng, 1000),
            .n = 6000,
            .window = TALLY_DEDUP_WINDOW,
            .ack_loss_pct = 85,
            .hwm_acks = (int)(run % 2),
            .give_up_pct = run < 4 ? 0 : 3,
        };
        model_run(&o);
    }
}
