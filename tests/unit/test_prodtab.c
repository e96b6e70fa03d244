/* test_prodtab.c — Criterion tests of the producer table in lib/prodtab: slots, compact states,
 * bitmaps held only while a bit is set, drops and slot reuse, and a randomized model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dedup.h"
#include "prodtab.h"
#include "tally/tally.h"

#define BITMAP_BYTES (TALLY__DEDUP_WORDS * sizeof(uint64_t))

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static tally__prodtab_t *
mk(void)
{
    tally__prodtab_t *t = NULL;
    cr_assert_eq(tally__prodtab_create(&t), 0);
    cr_assert_not_null(t);
    return t;
}

static uint32_t
add(tally__prodtab_t *t, const char *name, const tally__dedup_t *st, int64_t now)
{
    uint32_t slot = UINT32_MAX;
    cr_assert_eq(tally__prodtab_add(t, name, (uint32_t)strlen(name), 7, st, now, &slot), 0,
                 "add %s", name);
    return slot;
}

static int64_t
find(const tally__prodtab_t *t, const char *name)
{
    return tally__prodtab_find(t, name, (uint32_t)strlen(name));
}

/* A producer's name, as the ingest builds a v2 identity: credential 0x1f producer id. */
static uint32_t
pname(char *buf, size_t cap, uint32_t i)
{
    int n =
        snprintf(buf, cap, "dev-emitter\x1fproducer-%u%.*s", i, (int)(i % 17), "abcdefghijklmnopq");
    return (uint32_t)n;
}

/* A state with a random bitmap: words zero, full, single bits or random, chosen by mode. */
static void
random_state(tally__dedup_t *st, uint64_t *seed, int mode)
{
    st->floor = rnd(seed);
    st->max_seq = rnd(seed);
    for (unsigned w = 0; w < TALLY__DEDUP_WORDS; w++) {
        switch (mode) {
        case 0:
            st->bits[w] = 0;
            break;
        case 1:
            st->bits[w] = rnd(seed);
            break;
        case 2: /* sparse: about one word in eight has something */
            st->bits[w] = rnd(seed) % 8 == 0 ? rnd(seed) : 0;
            break;
        default:
            st->bits[w] = 0;
        }
    }
    if (mode == 3) /* one bit, anywhere (the last word's top bit included) */
        st->bits[rnd(seed) % TALLY__DEDUP_WORDS] = 1ull << (rnd(seed) % 64);
    if (mode == 4)
        st->bits[TALLY__DEDUP_WORDS - 1] = 1ull << 63;
}

static void
assert_same_state(const tally__dedup_t *a, const tally__dedup_t *b, const char *what)
{
    cr_assert_eq(a->floor, b->floor, "%s: floor", what);
    cr_assert_eq(a->max_seq, b->max_seq, "%s: max_seq", what);
    cr_assert(memcmp(a->bits, b->bits, sizeof a->bits) == 0, "%s: bitmap differs", what);
}

Test(prodtab, add_find_get)
{
    tally__prodtab_t *t = mk();
    cr_assert_eq(tally__prodtab_count(t), 0);
    cr_assert_eq(tally__prodtab_slots(t), 0);
    cr_assert_eq(find(t, "nobody"), -1, "an empty table has nobody");
    cr_assert_null(tally__prodtab_get(t, 0), "no slot 0 yet");

    uint32_t a = add(t, "acme\x1fweb-1", NULL, 1000);
    uint32_t b = add(t, "acme\x1fweb-2", NULL, 2000);
    uint32_t c = add(t, "local-v1", NULL, 3000);
    cr_assert_neq(a, b);
    cr_assert_neq(b, c);
    cr_assert_neq(a, c);
    cr_assert_eq(find(t, "acme\x1fweb-1"), a);
    cr_assert_eq(find(t, "acme\x1fweb-2"), b);
    cr_assert_eq(find(t, "local-v1"), c);
    cr_assert_eq(find(t, "acme\x1fweb-"), -1, "a prefix is not the producer");
    cr_assert_eq(find(t, "acme\x1fweb-10"), -1, "nor is a longer name");
    cr_assert_eq(tally__prodtab_find(t, "local-v1x", 8), c, "find uses the length, not the NUL");
    cr_assert_eq(tally__prodtab_count(t), 3);
    cr_assert_eq(tally__prodtab_slots(t), 3);

    tally__prod_t *p = tally__prodtab_get(t, b);
    cr_assert_not_null(p);
    cr_assert_eq(p->name_len, 10);
    cr_assert(memcmp(p->name, "acme\x1fweb-2", 10) == 0);
    cr_assert_eq(p->name[10], '\0', "names are NUL-terminated");
    cr_assert_eq(p->cred, 7);
    cr_assert_eq(p->last_seen_s, 2000);
    cr_assert_eq(p->floor, 0, "a NULL state is empty");
    cr_assert_eq(p->max_seq, 0);
    cr_assert_null(p->bits, "an empty state holds no bitmap");
    cr_assert_null(tally__prodtab_get(t, 3), "a slot past the last is not live");
    cr_assert_null(tally__prodtab_get(t, UINT32_MAX));

    /* the name is the table's own copy */
    char name[] = "copied";
    uint32_t d = add(t, name, NULL, 0);
    name[0] = 'X';
    cr_assert_eq(find(t, "copied"), d);
    cr_assert_eq(find(t, "Xopied"), -1);

    /* names with a NUL inside are bytes like any other */
    uint32_t e;
    cr_assert_eq(tally__prodtab_add(t, "nul\0in", 6, UINT32_MAX, NULL, 5, &e), 0);
    cr_assert_eq(tally__prodtab_find(t, "nul\0in", 6), e);
    cr_assert_eq(tally__prodtab_find(t, "nul", 3), -1);
    cr_assert_eq(tally__prodtab_get(t, e)->cred, UINT32_MAX);
    tally__prodtab_destroy(t);
    tally__prodtab_destroy(NULL);
}

Test(prodtab, add_with_a_state_keeps_it)
{
    tally__prodtab_t *t = mk();
    tally__dedup_t st = {.floor = 41, .max_seq = 44};
    st.bits[0] = 0x5;
    uint32_t s = add(t, "with-bits", &st, 9);
    tally__prod_t *p = tally__prodtab_get(t, s);
    cr_assert_not_null(p->bits);
    tally__dedup_t out;
    memset(&out, 0xa5, sizeof out);
    tally__prodtab_state(p, &out);
    assert_same_state(&out, &st, "added with bits");

    tally__dedup_t st2 = {.floor = 1000000, .max_seq = 1000000};
    s = add(t, "without-bits", &st2, 9);
    p = tally__prodtab_get(t, s);
    cr_assert_null(p->bits);
    cr_assert_eq(p->floor, 1000000);
    memset(&out, 0xa5, sizeof out);
    tally__prodtab_state(p, &out);
    assert_same_state(&out, &st2, "added without bits");
    tally__prodtab_destroy(t);
}

Test(prodtab, states_round_trip_exactly)
{
    tally__prodtab_t *t = mk();
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    enum { N = 64 };
    uint32_t slot[N];
    tally__dedup_t want[N];
    char name[96];
    for (uint32_t i = 0; i < N; i++) {
        pname(name, sizeof name, i);
        slot[i] = add(t, name, NULL, 0);
        memset(&want[i], 0, sizeof want[i]);
    }
    /* many rounds: each producer's state replaced by one with a random
     * bitmap (or none), each read back exactly, the others untouched */
    for (int round = 0; round < 2000; round++) {
        uint32_t i = (uint32_t)(rnd(&seed) % N);
        random_state(&want[i], &seed, (int)(rnd(&seed) % 5));
        tally__prod_t *p = tally__prodtab_get(t, slot[i]);
        cr_assert_eq(tally__prodtab_set_state(t, p, &want[i]), 0);
        int any = 0;
        for (unsigned w = 0; w < TALLY__DEDUP_WORDS; w++)
            any |= want[i].bits[w] != 0;
        cr_assert_eq(p->bits != NULL, any, "round %d: a bitmap exactly while a bit is set", round);
        tally__dedup_t got;
        memset(&got, 0x5a, sizeof got);
        tally__prodtab_state(p, &got);
        assert_same_state(&got, &want[i], "after set_state");
    }
    for (uint32_t i = 0; i < N; i++) {
        tally__dedup_t got;
        memset(&got, 0x5a, sizeof got);
        tally__prodtab_state(tally__prodtab_get(t, slot[i]), &got);
        char what[32];
        snprintf(what, sizeof what, "producer %u at the end", i);
        assert_same_state(&got, &want[i], what);
    }
    tally__prodtab_destroy(t);
}

Test(prodtab, a_bitmap_is_held_only_while_a_bit_is_set)
{
    tally__prodtab_t *t = mk();
    uint32_t s = add(t, "in-order", NULL, 0);
    add(t, "other", NULL, 0);
    tally__prod_t *p = tally__prodtab_get(t, s);
    size_t b0 = tally__prodtab_bytes(t);
    cr_assert_gt(b0, 0);

    /* in order: floor and max_seq move, nothing is allocated */
    tally__dedup_t st = {0};
    for (uint64_t seq = 1; seq <= 100; seq++) {
        cr_assert_eq(tally__dedup_accept(&st, seq, 1), TALLY_DEDUP_NEW);
        cr_assert_eq(tally__prodtab_set_state(t, p, &st), 0);
    }
    cr_assert_eq(p->floor, 100);
    cr_assert_null(p->bits);
    cr_assert_eq(tally__prodtab_bytes(t), b0, "in-order batches cost no bitmap");

    /* a batch ahead of a missing one sets a bit: 512 bytes more, once */
    cr_assert_eq(tally__dedup_accept(&st, 102, 1), TALLY_DEDUP_NEW);
    cr_assert_eq(tally__prodtab_set_state(t, p, &st), 0);
    cr_assert_not_null(p->bits);
    cr_assert_eq(tally__prodtab_bytes(t), b0 + BITMAP_BYTES);
    cr_assert_eq(tally__dedup_accept(&st, 105, 1), TALLY_DEDUP_NEW);
    cr_assert_eq(tally__prodtab_set_state(t, p, &st), 0);
    cr_assert_eq(tally__prodtab_bytes(t), b0 + BITMAP_BYTES, "a second bit costs nothing more");

    /* a second producer with a gap: another 512 */
    tally__prod_t *q = tally__prodtab_get(t, (uint32_t)find(t, "other"));
    tally__dedup_t sq = {0};
    cr_assert_eq(tally__dedup_accept(&sq, 3, 1), TALLY_DEDUP_NEW);
    cr_assert_eq(tally__prodtab_set_state(t, q, &sq), 0);
    cr_assert_eq(tally__prodtab_bytes(t), b0 + 2 * BITMAP_BYTES);

    /* the gaps fill: the floor passes every set bit, the bitmap goes */
    cr_assert_eq(tally__dedup_accept(&st, 101, 1), TALLY_DEDUP_NEW);
    cr_assert_eq(tally__prodtab_set_state(t, p, &st), 0);
    cr_assert_not_null(p->bits, "105 still waits on 103 and 104");
    cr_assert_eq(tally__dedup_accept(&st, 103, 1), TALLY_DEDUP_NEW);
    cr_assert_eq(tally__prodtab_set_state(t, p, &st), 0);
    cr_assert_not_null(p->bits, "105 still waits on 104");
    cr_assert_eq(tally__dedup_accept(&st, 104, 1), TALLY_DEDUP_NEW);
    cr_assert_eq(st.floor, 105);
    cr_assert_eq(tally__prodtab_set_state(t, p, &st), 0);
    cr_assert_null(p->bits);
    cr_assert_eq(tally__prodtab_bytes(t), b0 + BITMAP_BYTES);
    memset(sq.bits, 0, sizeof sq.bits);
    cr_assert_eq(tally__prodtab_set_state(t, q, &sq), 0);
    cr_assert_null(q->bits);
    cr_assert_eq(tally__prodtab_bytes(t), b0, "back to where it started");

    /* a state read back from a bitmap-less producer is all zero bits */
    tally__dedup_t out;
    memset(&out, 0xff, sizeof out);
    tally__prodtab_state(p, &out);
    for (unsigned w = 0; w < TALLY__DEDUP_WORDS; w++)
        cr_assert_eq(out.bits[w], 0, "word %u", w);
    cr_assert_eq(out.floor, 105);
    cr_assert_eq(out.max_seq, 105);
    tally__prodtab_destroy(t);
}

Test(prodtab, bytes_count_names_and_grow_with_the_table)
{
    tally__prodtab_t *t = mk();
    size_t b0 = tally__prodtab_bytes(t);
    char name[96];
    size_t names = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t n = pname(name, sizeof name, i);
        names += n + 1;
        add(t, name, NULL, 0);
    }
    size_t b1 = tally__prodtab_bytes(t);
    cr_assert_geq(b1, b0 + names + 1000 * sizeof(tally__prod_t),
                  "names and slots are counted: %zu -> %zu", b0, b1);
    /* a compact slot, its index entries and its name: far below a full state */
    cr_assert_lt(b1 / 1000, sizeof(tally__dedup_t) / 2, "%zu bytes per producer", b1 / 1000);
    tally__prodtab_destroy(t);
}

Test(prodtab, drop_hands_over_the_name_and_frees_the_slot_for_reuse)
{
    tally__prodtab_t *t = mk();
    uint32_t a = add(t, "cred\037alpha", NULL, 1);
    uint32_t b = add(t, "cred\037beta", NULL, 2);
    uint32_t c = add(t, "cred\037gamma", NULL, 3);
    tally__dedup_t st = {.floor = 10, .max_seq = 12};
    st.bits[0] = 2;
    cr_assert_eq(tally__prodtab_set_state(t, tally__prodtab_get(t, b), &st), 0);
    size_t with_bits = tally__prodtab_bytes(t);

    char *name = NULL;
    uint32_t len = 0;
    tally__prodtab_drop(t, b, &name, &len);
    cr_assert_not_null(name);
    cr_assert_eq(len, 9);
    cr_assert(memcmp(name, "cred\037beta", 9) == 0);
    cr_assert_eq(name[9], '\0');
    cr_assert_eq(tally__prodtab_count(t), 2);
    cr_assert_eq(tally__prodtab_slots(t), 3, "slots count every slot ever used");
    cr_assert_null(tally__prodtab_get(t, b), "a dropped slot is not live");
    cr_assert_eq(find(t, "cred\037beta"), -1, "find after drop fails");
    cr_assert_eq(find(t, "cred\037alpha"), a, "the others stay");
    cr_assert_eq(find(t, "cred\037gamma"), c);
    /* the bitmap and the name are no longer the table's (the free-slot
     * stack may have grown: at most that much more) */
    size_t after = tally__prodtab_bytes(t);
    cr_assert_leq(after + BITMAP_BYTES + 10, with_bits + 64 * sizeof(uint32_t), "%zu -> %zu",
                  with_bits, after);
    free(name); /* the caller's, and still valid after the table moved on */

    /* the next add takes the freed slot, empty, with no trace of the old state */
    uint32_t d = add(t, "cred\037delta", NULL, 4);
    cr_assert_eq(d, b, "the freed slot is reused");
    cr_assert_eq(tally__prodtab_slots(t), 3);
    tally__prod_t *p = tally__prodtab_get(t, d);
    cr_assert_eq(p->floor, 0);
    cr_assert_eq(p->max_seq, 0);
    cr_assert_null(p->bits);
    cr_assert_eq(p->last_seen_s, 4);
    cr_assert_eq(find(t, "cred\037delta"), d);
    cr_assert_eq(find(t, "cred\037beta"), -1);

    /* the same name again after a drop is a new producer */
    tally__prodtab_drop(t, a, &name, &len);
    free(name);
    uint32_t a2 = add(t, "cred\037alpha", NULL, 5);
    cr_assert_eq(a2, a);
    cr_assert_eq(find(t, "cred\037alpha"), a2);
    cr_assert_eq(tally__prodtab_get(t, a2)->last_seen_s, 5);

    /* no free slot left: a new one */
    uint32_t e = add(t, "cred\037epsilon", NULL, 6);
    cr_assert_eq(e, 3);
    cr_assert_eq(tally__prodtab_slots(t), 4);
    cr_assert_eq(tally__prodtab_count(t), 4);

    /* drop everything: empty, every find fails, every slot reused after */
    const char *names[] = {"cred\037alpha", "cred\037delta", "cred\037gamma", "cred\037epsilon"};
    for (int i = 0; i < 4; i++) {
        tally__prodtab_drop(t, (uint32_t)find(t, names[i]), &name, &len);
        cr_assert_str_eq(name, names[i]);
        free(name);
    }
    cr_assert_eq(tally__prodtab_count(t), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(find(t, names[i]), -1);
    int used[4] = {0};
    for (int i = 0; i < 4; i++) {
        uint32_t s = add(t, names[i], NULL, 7);
        cr_assert_lt(s, 4, "slot %u is a reused one", s);
        cr_assert_eq(used[s], 0, "slot %u handed out twice", s);
        used[s] = 1;
    }
    cr_assert_eq(tally__prodtab_slots(t), 4);
    tally__prodtab_destroy(t);
}

/* ---- the randomized model ------------------------------------------------------------------- */

typedef struct model {
    int64_t *slot_of;  /* per name index: its slot, or -1 */
    int64_t *owner_of; /* per slot: the name index in it, or -1 */
    uint32_t live, max_live;
    uint32_t nnames, cap_slots;
} model_t;

static void
model_check_all(const tally__prodtab_t *t, const model_t *m, int op)
{
    char name[96];
    cr_assert_eq(tally__prodtab_count(t), m->live, "op %d: count", op);
    for (uint32_t i = 0; i < m->nnames; i++) {
        uint32_t n = pname(name, sizeof name, i);
        cr_assert_eq(tally__prodtab_find(t, name, n), m->slot_of[i],
                     "op %d: name %u found at %lld, the model says %lld", op, i,
                     (long long)tally__prodtab_find(t, name, n), (long long)m->slot_of[i]);
    }
}

/* Adds and drops in random order over a pool of names, checked against a
 * model after every operation (the name it touched) and in full every so
 * often. A pool of pool names keeps about half of them live, so probe runs
 * cluster and deletions shift entries back across them, wrapping around
 * the end of the index too. */
static void
run_model(uint64_t seed, uint32_t pool, int ops, int full_every)
{
    tally__prodtab_t *t = mk();
    model_t m = {.nnames = pool};
    m.slot_of = malloc(pool * sizeof *m.slot_of);
    m.cap_slots = pool + 1;
    m.owner_of = malloc(m.cap_slots * sizeof *m.owner_of);
    cr_assert(m.slot_of && m.owner_of);
    for (uint32_t i = 0; i < pool; i++)
        m.slot_of[i] = -1;
    for (uint32_t i = 0; i < m.cap_slots; i++)
        m.owner_of[i] = -1;
    char name[96];
    for (int op = 0; op < ops; op++) {
        uint32_t i = (uint32_t)(rnd(&seed) % pool);
        uint32_t n = pname(name, sizeof name, i);
        /* drift the live share between a quarter and three quarters */
        int phase = (op / 2000) % 2;
        int want_add = (int)(rnd(&seed) % 100) < (phase ? 70 : 30);
        if (m.slot_of[i] < 0 && want_add) {
            uint32_t s;
            uint32_t slots_before = tally__prodtab_slots(t);
            cr_assert_eq(tally__prodtab_add(t, name, n, i, NULL, op, &s), 0);
            cr_assert_lt(s, m.cap_slots);
            cr_assert_eq(m.owner_of[s], -1, "op %d: slot %u given while in use", op, s);
            if (m.live < slots_before)
                cr_assert_lt(s, slots_before, "op %d: a free slot existed, yet a new one", op);
            m.slot_of[i] = s;
            m.owner_of[s] = i;
            m.live++;
            if (m.live > m.max_live)
                m.max_live = m.live;
        } else if (m.slot_of[i] >= 0 && !want_add) {
            char *got;
            uint32_t len;
            uint32_t s = (uint32_t)m.slot_of[i];
            tally__prodtab_drop(t, s, &got, &len);
            cr_assert_eq(len, n);
            cr_assert(memcmp(got, name, n) == 0, "op %d: drop handed back another name", op);
            free(got);
            m.slot_of[i] = -1;
            m.owner_of[s] = -1;
            m.live--;
        }
        cr_assert_eq(tally__prodtab_find(t, name, n), m.slot_of[i], "op %d: name %u", op, i);
        if (m.slot_of[i] >= 0) {
            tally__prod_t *p = tally__prodtab_get(t, (uint32_t)m.slot_of[i]);
            cr_assert_not_null(p);
            cr_assert_eq(p->cred, i, "op %d: slot %lld holds another producer", op,
                         (long long)m.slot_of[i]);
        }
        cr_assert_leq(tally__prodtab_slots(t), m.max_live,
                      "op %d: slots grew past the most ever live: a freed slot was lost", op);
        if (op % full_every == 0)
            model_check_all(t, &m, op);
    }
    model_check_all(t, &m, ops);
    /* drop what is left in random order, checking as it empties */
    while (m.live) {
        uint32_t i = (uint32_t)(rnd(&seed) % pool);
        if (m.slot_of[i] < 0)
            continue;
        char *got;
        uint32_t len;
        tally__prodtab_drop(t, (uint32_t)m.slot_of[i], &got, &len);
        free(got);
        m.owner_of[m.slot_of[i]] = -1;
        m.slot_of[i] = -1;
        m.live--;
        if (m.live % 64 == 0)
            model_check_all(t, &m, -1);
    }
    cr_assert_eq(tally__prodtab_count(t), 0);
    free(m.slot_of);
    free(m.owner_of);
    tally__prodtab_destroy(t);
}

Test(prodtab, random_adds_and_drops_keep_find_consistent_small)
{
    /* a few hundred names: a small index, long clusters, frequent wrap-around */
    run_model(0x1234567887654321ull, 300, 20000, 50);
}

Test(prodtab, random_adds_and_drops_keep_find_consistent_large)
{
    /* thousands of names: the index grows while entries come and go */
    run_model(0xdeadbeefcafef00dull, 6000, 40000, 2000);
}

Test(prodtab, count_and_slots)
{
    tally__prodtab_t *t = mk();
    char name[96];
    uint32_t s[100];
    for (uint32_t i = 0; i < 100; i++) {
        pname(name, sizeof name, i);
        s[i] = add(t, name, NULL, 0);
        cr_assert_eq(s[i], i, "fresh slots are dense");
        cr_assert_eq(tally__prodtab_count(t), i + 1);
        cr_assert_eq(tally__prodtab_slots(t), i + 1);
    }
    for (uint32_t i = 0; i < 100; i += 2) {
        char *got;
        uint32_t len;
        tally__prodtab_drop(t, s[i], &got, &len);
        free(got);
    }
    cr_assert_eq(tally__prodtab_count(t), 50);
    cr_assert_eq(tally__prodtab_slots(t), 100, "slots do not shrink");
    uint32_t live = 0;
    for (uint32_t k = 0; k < tally__prodtab_slots(t); k++)
        live += tally__prodtab_get(t, k) != NULL;
    cr_assert_eq(live, 50, "a scan over slots sees exactly the live ones");
    for (uint32_t i = 0; i < 50; i++) {
        pname(name, sizeof name, 1000 + i);
        cr_assert_lt(add(t, name, NULL, 0), 100);
    }
    cr_assert_eq(tally__prodtab_count(t), 100);
    cr_assert_eq(tally__prodtab_slots(t), 100, "every add reused a slot");
    pname(name, sizeof name, 5000);
    cr_assert_eq(add(t, name, NULL, 0), 100);
    cr_assert_eq(tally__prodtab_slots(t), 101);
    tally__prodtab_destroy(t);
}
