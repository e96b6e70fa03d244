/* test_store_events.c — Criterion tests of the HTTP door's exactly-once set: the in-memory set
 * (lib/evset) against a brute-force model, and the store's append-only log of identities
 * (lib/store, table "evlog"): reload across reopens, pruning by time and count, failed
 * commits, and the move of an older store's evseen/evtime tables into the log. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <lmdb.h>

#include "evset.h"
#include "store.h"
#include "tally/tally.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* Identity number i as a key (spread over all 16 bytes, like a hash). */
static void
mkkey(uint8_t key[16], uint64_t i)
{
    uint64_t a = i * 0x9E3779B97F4A7C15ull + 1, b = ~i;
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

static tally__store_evkey_t
ek(uint64_t i, int64_t t)
{
    tally__store_evkey_t e;
    mkkey(e.key, i);
    e.seen_ms = t;
    return e;
}

/* ---- the set in memory -------------------------------------------------------- */

/* The model: a log of (id, time), newest entry of an id wins. */
typedef struct model {
    uint64_t *id;
    int64_t *t;
    size_t head, n, cap;
} model_t;

static int
model_get(const model_t *m, uint64_t id, int64_t *t)
{
    for (size_t i = m->n; i-- > m->head;)
        if (m->id[i] == id) {
            *t = m->t[i];
            return 1;
        }
    return 0;
}

static size_t
model_live(const model_t *m)
{
    size_t live = 0;
    for (size_t i = m->head; i < m->n; i++) {
        int newest = 1;
        for (size_t j = i + 1; j < m->n && newest; j++)
            newest = m->id[j] != m->id[i];
        live += newest;
    }
    return live;
}

Test(evset, matches_a_brute_force_log_through_appends_renewals_and_pops)
{
    tally__evset_t s;
    tally__evset_init(&s);
    model_t m = {calloc(40000, 8), calloc(40000, 8), 0, 0, 40000};
    uint64_t seed = 42;
    for (int round = 0; round < 40000; round++) {
        uint64_t r = rnd(&seed);
        if (r % 10 < 7) {
            /* ids from a small range, so renewals happen */
            uint64_t id = rnd(&seed) % 3000;
            uint8_t key[16];
            mkkey(key, id);
            cr_assert_eq(tally__evset_append(&s, key, round), 0);
            m.id[m.n] = id;
            m.t[m.n++] = round;
        } else if (r % 10 < 9 && m.n > m.head) {
            size_t k = rnd(&seed) % 40;
            if (k > m.n - m.head)
                k = m.n - m.head;
            /* the oldest entry's liveness, as the store asks before it pops */
            if (k) {
                int64_t t;
                uint8_t key[16];
                mkkey(key, m.id[m.head]);
                int live = model_get(&m, m.id[m.head], &t) && t == m.t[m.head];
                cr_assert_eq(tally__evset_is_live(&s, 0), live, "round %d", round);
                cr_assert_eq(memcmp(tally__evset_at(&s, 0)->key, key, 16), 0);
            }
            tally__evset_pop(&s, k);
            m.head += k;
        } else {
            for (int q = 0; q < 20; q++) {
                uint64_t id = rnd(&seed) % 3500;
                uint8_t key[16];
                int64_t ta = -1, tb = -1;
                mkkey(key, id);
                int a = tally__evset_get(&s, key, &ta), b = model_get(&m, id, &tb);
                cr_assert_eq(a, b, "round %d id %llu: set %d, model %d", round,
                             (unsigned long long)id, a, b);
                if (a)
                    cr_assert_eq(ta, tb);
            }
        }
        cr_assert_eq(s.n, m.n - m.head);
        if (round % 997 == 0)
            cr_assert_eq(s.live, model_live(&m), "round %d", round);
    }
    /* popping everything frees it, and it is usable again */
    tally__evset_pop(&s, s.n);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(s.live, 0);
    cr_assert_null(s.ring);
    uint8_t key[16];
    int64_t t;
    mkkey(key, 7);
    cr_assert_eq(tally__evset_get(&s, key, &t), 0);
    cr_assert_eq(tally__evset_append(&s, key, 5), 0);
    cr_assert(tally__evset_get(&s, key, &t) && t == 5);
    tally__evset_fini(&s);
    free(m.id);
    free(m.t);
}

Test(evset, grows_and_shrinks_without_losing_an_identity)
{
    tally__evset_t s;
    tally__evset_init(&s);
    const size_t N = 200000;
    cr_assert_eq(tally__evset_reserve(&s, N), 0);
    size_t cap = s.cap;
    for (size_t i = 0; i < N; i++) {
        uint8_t key[16];
        mkkey(key, i);
        cr_assert_eq(tally__evset_append(&s, key, (int64_t)i), 0);
    }
    cr_assert_eq(s.cap, cap, "a reservation needs no growth");
    cr_assert_eq(s.live, N);
    cr_assert(s.icap >= 2 * s.live, "the index stays at most half full");
    tally__evset_pop(&s, N - 1000);
    cr_assert(s.cap < cap, "a set down to a quarter gives memory back");
    for (size_t i = 0; i < N; i++) {
        uint8_t key[16];
        int64_t t;
        mkkey(key, i);
        int got = tally__evset_get(&s, key, &t);
        cr_assert_eq(got, i >= N - 1000, "identity %zu", i);
        if (got)
            cr_assert_eq(t, (int64_t)i);
    }
    tally__evset_fini(&s);
}

/* ---- the store's log ------------------------------------------------------------ */

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

/* Whether identity i is seen at or after since. */
static int
seen(tally__store_t *s, uint64_t i, int64_t since)
{
    tally__store_evkey_t e = ek(i, 0);
    uint8_t r = 2;
    cr_assert_eq(tally__store_events_seen(s, &e, 1, since, &r, NULL), 0);
    return r;
}

static int
evlog_entries(const char *dir, size_t *records)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int entries = -1;
    if (mdb_dbi_open(txn, "evlog", 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0) {
        MDB_cursor *c;
        MDB_val k, v;
        entries = 0;
        *records = st.ms_entries;
        cr_assert_eq(mdb_cursor_open(txn, dbi, &c), 0);
        for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            cr_assert_eq(k.mv_size, 8);
            cr_assert_eq(v.mv_size % 24, 0);
            cr_assert(v.mv_size <= 2016, "records stay inline: %zu bytes", v.mv_size);
            entries += (int)(v.mv_size / 24);
        }
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return entries;
}

Test(store_events, identities_survive_a_reopen_in_few_small_records)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store-ev");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    /* three flushes: 1000, 1 and 500 identities */
    tally__store_evkey_t *ev = malloc(1000 * sizeof *ev);
    for (size_t i = 0; i < 1000; i++)
        ev[i] = ek(i, 1000);
    cr_assert_eq(commit_events(s, ev, 1000), 0);
    tally__store_evkey_t one = ek(5000, 2000);
    cr_assert_eq(commit_events(s, &one, 1), 0);
    for (size_t i = 0; i < 500; i++)
        ev[i] = ek(2000 + i, 3000);
    cr_assert_eq(commit_events(s, ev, 500), 0);
    cr_assert_eq(tally__store_events_count(s), 1501);
    tally__store_close(s);

    size_t recs = 0;
    cr_assert_eq(evlog_entries(dir, &recs), 1501);
    cr_assert_eq(recs, 12 + 1 + 6, "84 identities a record: %zu records", recs);

    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_events_count(s), 1501, "the set is rebuilt from the log");
    cr_assert(seen(s, 0, 0) && seen(s, 999, 1000) && !seen(s, 999, 1001));
    cr_assert(seen(s, 5000, 2000) && seen(s, 2499, 3000) && !seen(s, 2500, 0));
    /* a renewal after the reopen shadows the loaded entry, also after the next */
    tally__store_evkey_t renew = ek(7, 4000);
    cr_assert_eq(commit_events(s, &renew, 1), 0);
    cr_assert_eq(tally__store_events_count(s), 1501);
    tally__store_close(s);
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert(seen(s, 7, 4000), "the renewed identity keeps its new time across a reopen");
    cr_assert_eq(tally__store_events_count(s), 1501);
    tally__store_close(s);
    free(ev);
    testdir_remove(dir);
}

Test(store_events, pruning_by_time_takes_whole_records_and_by_count_trims_the_first)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store-ev");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    tally__store_evkey_t ev[300];
    for (size_t i = 0; i < 300; i++)
        ev[i] = ek(i, 1000 + (int64_t)i); /* one flush: 4 records of 84, 84, 84, 48 */
    cr_assert_eq(commit_events(s, ev, 300), 0);
    for (size_t i = 0; i < 100; i++)
        ev[i] = ek(1000 + i, 5000);
    cr_assert_eq(commit_events(s, ev, 100), 0);
    size_t n = 0;
    int64_t oldest = 0;
    /* the cut falls inside the first record: it stays whole (its newest is
     * younger), so nothing goes */
    cr_assert_eq(tally__store_prune_events(s, 1050, 1000, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert(seen(s, 0, 0));
    /* a cut after the second record's newest entry (1167) takes two records */
    cr_assert_eq(tally__store_prune_events(s, 1200, 1000, &n), 0);
    cr_assert_eq(n, 168);
    cr_assert(!seen(s, 167, 0) && seen(s, 168, 0));
    cr_assert_eq(tally__store_events_count(s), 232);
    /* past the count, single identities go, from inside a record */
    cr_assert_eq(tally__store_prune_events_ex(s, INT64_MIN, 200, 1000, &n, &oldest), 0);
    cr_assert_eq(n, 32);
    cr_assert_eq(oldest, 1200, "the oldest kept is 200 (first seen at 1200): %lld",
                 (long long)oldest);
    cr_assert(!seen(s, 199, 0) && seen(s, 200, 0));
    cr_assert_eq(tally__store_events_count(s), 200);
    tally__store_close(s);
    size_t recs;
    cr_assert_eq(evlog_entries(dir, &recs), 200, "the log holds what the set holds");
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_events_count(s), 200);
    cr_assert(!seen(s, 199, 0) && seen(s, 200, 0) && seen(s, 1099, 5000));
    /* everything older than the second flush goes; the set is then empty */
    cr_assert_eq(tally__store_prune_events(s, 6000, 1000, &n), 0);
    cr_assert_eq(n, 200);
    cr_assert_eq(tally__store_events_count(s), 0);
    cr_assert(!seen(s, 1099, 0));
    tally__store_close(s);
    cr_assert_eq(evlog_entries(dir, &recs), 0);
    testdir_remove(dir);
}

Test(store_events, a_commit_that_fails_adds_no_identity)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store-ev");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 1 * MiB, 0, &s), 0);
    tally__store_evkey_t *ev = malloc(4000 * sizeof *ev);
    uint64_t next = 0, committed = 0;
    int rc = 0;
    for (int f = 0; f < 100 && rc == 0; f++) {
        for (size_t i = 0; i < 4000; i++)
            ev[i] = ek(next + i, 1000 + f);
        rc = commit_events(s, ev, 4000);
        if (rc == 0)
            committed += 4000;
        next += 4000;
    }
    cr_assert_eq(rc, TALLY_EMAPFULL, "a 1 MiB map fills up: %d", rc);
    cr_assert_eq(tally__store_events_count(s), committed);
    cr_assert(seen(s, committed - 1, 0));
    cr_assert(!seen(s, committed, 0), "an identity of the failed commit is not held");
    tally__store_close(s);
    cr_assert_eq(tally__store_open(dir, 4 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_events_count(s), committed);
    cr_assert(!seen(s, committed, 0));
    tally__store_close(s);
    free(ev);
    testdir_remove(dir);
}

/* ---- the move from an older store ------------------------------------------------ */

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Make dir a store of the tallyd before the log: its set in evseen
 * (identity -> ms) and evtime ((ms, identity) -> ""), and no evlog. */
static void
write_old_set(const char *dir, size_t n)
{
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    tally__store_close(s);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi seen, tm, log;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "evlog", 0, &log), 0);
    cr_assert_eq(mdb_drop(txn, log, 1), 0);
    cr_assert_eq(mdb_dbi_open(txn, "evseen", MDB_CREATE, &seen), 0);
    cr_assert_eq(mdb_dbi_open(txn, "evtime", MDB_CREATE, &tm), 0);
    for (size_t i = 0; i < n; i++) {
        /* identity i first seen at 1000 + i; identity 3 renewed at 1000 + n,
         * which left its old evtime entry behind */
        int64_t t = i == 3 ? 1000 + (int64_t)n : 1000 + (int64_t)i;
        uint8_t key[16], tk[24], tv[8];
        mkkey(key, i);
        put_be64(tv, (uint64_t)t);
        MDB_val k = {16, key}, v = {8, tv}, empty = {0, ""};
        cr_assert_eq(mdb_put(txn, seen, &k, &v, 0), 0);
        memcpy(tk, tv, 8);
        memcpy(tk + 8, key, 16);
        MDB_val tkv = {24, tk};
        cr_assert_eq(mdb_put(txn, tm, &tkv, &empty, 0), 0);
        if (i == 3) {
            put_be64(tk, 1003);
            cr_assert_eq(mdb_put(txn, tm, &tkv, &empty, 0), 0);
        }
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int
has_table(const char *dir, const char *name)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int has = mdb_dbi_open(txn, name, 0, &dbi) == 0;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return has;
}

Test(store_events, an_older_stores_evseen_and_evtime_move_into_the_log)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store-ev");
    const size_t N = 1000;
    write_old_set(dir, N);
    tally__store_t *s;
    /* a read-only tool leaves the store as it is, and sees no set */
    cr_assert_eq(tally__store_open(dir, 0, 1, &s), 0);
    tally__store_close(s);
    cr_assert(has_table(dir, "evseen") && !has_table(dir, "evlog"));

    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_events_count(s), N, "every identity moved, the stale entry not");
    for (size_t i = 0; i < N; i++) {
        int64_t t = i == 3 ? 1000 + (int64_t)N : 1000 + (int64_t)i;
        cr_assert(seen(s, i, t) && !seen(s, i, t + 1), "identity %zu keeps its time", i);
    }
    cr_assert(!seen(s, N, 0));
    /* pruning by time goes by the moved times (whole records of 84) */
    size_t n = 0;
    /* the log holds 0-2, 4-999, then 3 (renewed): the first two records
     * end with identity 168, first seen at 1168 */
    cr_assert_eq(tally__store_prune_events(s, 1000 + 169, 10000, &n), 0);
    cr_assert_eq(n, 168);
    cr_assert(!seen(s, 168, 0) && seen(s, 169, 0));
    cr_assert(seen(s, 3, 1000 + N), "the renewed identity is kept: its entry is the newest");
    tally__store_close(s);
    cr_assert(!has_table(dir, "evseen") && !has_table(dir, "evtime"),
              "the old tables are dropped once moved");
    size_t recs;
    cr_assert_eq(evlog_entries(dir, &recs), (int)(N - 168));

    /* opening again moves nothing twice */
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert_eq(tally__store_events_count(s), N - 168);
    tally__store_close(s);
    testdir_remove(dir);
}

/* ---- readers on another thread ---------------------------------------------------- */

#define KEEP 10000

typedef struct reader {
    tally__store_t *s;
    volatile int stop;
    uint64_t committed; /* identities 0..committed-1 are committed (atomic) */
    uint64_t checks, misses;
} reader_t;

static void *
reader_main(void *arg)
{
    reader_t *r = arg;
    uint64_t seed = 7;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        uint64_t c = __atomic_load_n(&r->committed, __ATOMIC_ACQUIRE);
        if (!c)
            continue;
        uint64_t i = c - 1 - rnd(&seed) % (c < 2000 ? c : 2000);
        tally__store_evkey_t e = ek(i, 0);
        uint8_t got;
        uint64_t count;
        cr_assert_eq(tally__store_events_seen(r->s, &e, 1, 0, &got, &count), 0);
        /* the writer prunes after it publishes a count, down to the newest
         * KEEP: a miss is one only if i is among those of the count now */
        uint64_t c2 = __atomic_load_n(&r->committed, __ATOMIC_ACQUIRE);
        r->checks++;
        r->misses += !got && i + KEEP >= c2;
    }
    return NULL;
}

Test(store_events, a_reader_on_another_thread_sees_every_committed_identity)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "store-ev");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    reader_t r = {.s = s};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reader_main, &r), 0);
    tally__store_evkey_t ev[500];
    uint64_t next = 0;
    for (int f = 0; f < 60; f++) {
        for (size_t i = 0; i < 500; i++)
            ev[i] = ek(next + i, 1000 + f);
        cr_assert_eq(commit_events(s, ev, 500), 0);
        next += 500;
        __atomic_store_n(&r.committed, next, __ATOMIC_RELEASE);
        /* the set grows, then is trimmed to the newest KEEP while the
         * reader reads */
        size_t n;
        cr_assert_eq(tally__store_prune_events_ex(s, INT64_MIN, KEEP, 100000, &n, NULL), 0);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    cr_assert(r.checks > 0);
    cr_assert_eq(r.misses, 0, "%llu of %llu committed identities not seen",
                 (unsigned long long)r.misses, (unsigned long long)r.checks);
    tally__store_close(s);
    testdir_remove(dir);
}
