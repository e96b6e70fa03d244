/* test_ring.c — Criterion tests of the SPSC ring in lib/ring: capacity rules, FIFO order, and a
 * two-thread hand-off checked under ThreadSanitizer. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "ring.h"
#include "tally/tally.h"

#define ITEMS 2000000u

static void *
enc(uintptr_t v)
{
    return (void *)v;
}

Test(ring, capacity_must_be_a_power_of_two_of_at_least_four)
{
    static const uint32_t bad[] = {0, 1, 2, 3, 5, 6, 7, 12, 100, 1000, 0x80000001u, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tally__ring_t *r = NULL;
        cr_assert_eq(tally__ring_create(bad[i], &r), TALLY_EINVAL, "capacity %u", bad[i]);
        cr_assert_null(r, "capacity %u: out is untouched", bad[i]);
    }
    static const uint32_t good[] = {4, 8, 64, 1024, 65536};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        tally__ring_t *r = NULL;
        cr_assert_eq(tally__ring_create(good[i], &r), 0, "capacity %u", good[i]);
        cr_assert_not_null(r);
        cr_assert_eq(tally__ring_size(r), 0);
        tally__ring_destroy(r);
    }
    tally__ring_destroy(NULL);
}

Test(ring, fills_to_capacity_minus_one_and_pops_in_fifo_order)
{
    tally__ring_t *r;
    cr_assert_eq(tally__ring_create(8, &r), 0);
    void *p = enc(0xdead);
    cr_assert_not(tally__ring_pop(r, &p), "pop on a new ring fails");
    cr_assert_eq(p, enc(0xdead), "a failed pop leaves the out-parameter alone");
    for (uintptr_t i = 1; i <= 7; i++) {
        cr_assert(tally__ring_push(r, enc(i)), "push %zu", (size_t)i);
        cr_assert_eq(tally__ring_size(r), (uint32_t)i);
    }
    cr_assert_not(tally__ring_push(r, enc(8)), "the ring holds capacity - 1 items");
    cr_assert_eq(tally__ring_size(r), 7);
    for (uintptr_t i = 1; i <= 7; i++) {
        cr_assert(tally__ring_pop(r, &p));
        cr_assert_eq(p, enc(i), "FIFO: popped %p, want %zu", p, (size_t)i);
    }
    cr_assert_not(tally__ring_pop(r, &p), "pop on an emptied ring fails");
    cr_assert_eq(tally__ring_size(r), 0);
    /* a full ring takes a push again after one pop */
    for (uintptr_t i = 1; i <= 7; i++)
        cr_assert(tally__ring_push(r, enc(i)));
    cr_assert(tally__ring_pop(r, &p));
    cr_assert(tally__ring_push(r, enc(100)));
    cr_assert_not(tally__ring_push(r, enc(101)));
    for (uintptr_t want = 2; want <= 7; want++) {
        cr_assert(tally__ring_pop(r, &p));
        cr_assert_eq(p, enc(want));
    }
    cr_assert(tally__ring_pop(r, &p));
    cr_assert_eq(p, enc(100));
    tally__ring_destroy(r);
}

Test(ring, wraps_around_many_times_in_order)
{
    tally__ring_t *r;
    cr_assert_eq(tally__ring_create(4, &r), 0);
    uintptr_t next_in = 1, next_out = 1;
    /* uneven bursts so head and tail wrap at every offset */
    for (int round = 0; round < 10000; round++) {
        int burst = 1 + round % 3;
        for (int i = 0; i < burst; i++)
            if (tally__ring_push(r, enc(next_in)))
                next_in++;
        int drain = 1 + (round * 7) % 3;
        void *p;
        for (int i = 0; i < drain && tally__ring_pop(r, &p); i++) {
            cr_assert_eq(p, enc(next_out), "round %d", round);
            next_out++;
        }
        cr_assert_eq(tally__ring_size(r), (uint32_t)(next_in - next_out));
    }
    cr_assert_gt(next_out, 10000);
    tally__ring_destroy(r);
}

/*
 * CONTRACT MISMATCH (lib/ring.h): tally__ring_create() says "the ring holds
 * capacity - 1 items" and tally__ring_capacity() is documented as "How many
 * items the ring can hold", but it returns ck_ring_capacity(), the slot
 * count. Input: create(8). Expected (per the doc): 7. Got: 8.
 * Either the doc or the function should change; re-enable then.
 */
Test(ring, capacity_reports_how_many_items_fit)
{
    tally__ring_t *r;
    cr_assert_eq(tally__ring_create(8, &r), 0);
    uint32_t fit = 0;
    while (tally__ring_push(r, enc(fit + 1)))
        fit++;
    cr_assert_eq(tally__ring_capacity(r), fit, "capacity() %u, items that fit %u",
                 tally__ring_capacity(r), fit);
    tally__ring_destroy(r);
}

/* ---- two threads ---------------------------------------------------------------- */

/* A heap item: the producer writes it, the consumer reads and frees it. */
typedef struct item {
    uint64_t seq;
    uint64_t check;
    char text[16];
} item_t;

typedef struct xfer {
    tally__ring_t *ring;
    int heap; /* 1: malloc'd item_t, 0: the sequence number encoded in the pointer */
    uint64_t full_spins, empty_spins;
    /* consumer results, read by the main thread after join */
    uint64_t received;
    uint64_t first_bad; /* 0 = none; else seq + 1 of the first wrong item */
} xfer_t;

static uint64_t
mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static void *
producer(void *arg)
{
    xfer_t *x = arg;
    for (uint64_t i = 0; i < ITEMS; i++) {
        void *p;
        if (x->heap) {
            item_t *it = malloc(sizeof *it);
            if (!it)
                abort();
            it->seq = i;
            it->check = mix(i);
            for (int k = 0; k < 15; k++)
                it->text[k] = (char)('a' + (i + (uint64_t)k) % 26);
            it->text[15] = '\0';
            p = it;
        } else {
            p = enc((uintptr_t)i + 1); /* never NULL */
        }
        while (!tally__ring_push(x->ring, p)) {
            x->full_spins++;
            sched_yield();
        }
    }
    return NULL;
}

static void *
consumer(void *arg)
{
    xfer_t *x = arg;
    uint64_t want = 0;
    while (want < ITEMS) {
        void *p;
        if (!tally__ring_pop(x->ring, &p)) {
            x->empty_spins++;
            sched_yield();
            continue;
        }
        int ok;
        if (x->heap) {
            item_t *it = p;
            ok = it->seq == want && it->check == mix(want) && it->text[15] == '\0';
            for (int k = 0; ok && k < 15; k++)
                ok = it->text[k] == (char)('a' + (want + (uint64_t)k) % 26);
            free(it);
        } else {
            ok = (uintptr_t)p == (uintptr_t)want + 1;
        }
        if (!ok && !x->first_bad)
            x->first_bad = want + 1;
        want++;
    }
    x->received = want;
    return NULL;
}

static void
run_transfer(int heap)
{
    xfer_t x = {0};
    x.heap = heap;
    cr_assert_eq(tally__ring_create(64, &x.ring), 0);
    pthread_t pt, ct;
    cr_assert_eq(pthread_create(&ct, NULL, consumer, &x), 0);
    cr_assert_eq(pthread_create(&pt, NULL, producer, &x), 0);
    cr_assert_eq(pthread_join(pt, NULL), 0);
    cr_assert_eq(pthread_join(ct, NULL), 0);
    cr_assert_eq(x.received, ITEMS);
    cr_assert_eq(x.first_bad, 0, "item %llu arrived wrong or out of order",
                 (unsigned long long)(x.first_bad - 1));
    void *p;
    cr_assert_not(tally__ring_pop(x.ring, &p), "nothing left over");
    cr_assert_eq(tally__ring_size(x.ring), 0);
    tally__ring_destroy(x.ring);
}

Test(ring, two_threads_pass_heap_items_in_order, .timeout = 60)
{
    run_transfer(1);
}

Test(ring, two_threads_pass_encoded_pointers_in_order, .timeout = 60)
{
    run_transfer(0);
}
