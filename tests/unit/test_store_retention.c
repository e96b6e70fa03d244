/* test_store_retention.c — Criterion tests: hourly retention, the store lock, restore, compact. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)
#define HOUR 3600LL
#define T0 1709247600LL /* 2024-02-29T23:00:00Z */

/* ---- temp directories ------------------------------------------------------ */

/* ---- filling a store ------------------------------------------------------- */

/* nseries series of namespace "ret", each with hourly records for hours
 * T0 + h*HOUR (h in [0, nhours)) and one monthly record per hour's month. */
static void
fill(tally__store_t *s, int nseries, int nhours)
{
    size_t n = (size_t)nseries * (size_t)nhours;
    char(*keys)[TALLY_SERIES_KEY_MAX] = calloc((size_t)nseries, sizeof *keys);
    uint32_t *klen = calloc((size_t)nseries, sizeof *klen);
    tally__store_put_t *h = calloc(n, sizeof *h), *m = calloc((size_t)nseries, sizeof *m);
    cr_assert(keys && klen && h && m);
    tally__rollup_t r;
    tally__rollup_init(&r);
    tally__rollup_add(&r, 0, 7, 0.0, T0 * 1000);
    for (int i = 0; i < nseries; i++) {
        char metric[32];
        snprintf(metric, sizeof metric, "m%04d", i);
        klen[i] = (uint32_t)tally__series_key(keys[i], "ret", 3, metric, strlen(metric), NULL, 0);
        for (int j = 0; j < nhours; j++) {
            tally__store_put_t *p = &h[(size_t)i * (size_t)nhours + (size_t)j];
            p->series = keys[i];
            p->series_len = klen[i];
            p->period_s = T0 + j * HOUR;
            p->delta = &r;
        }
        m[i].series = keys[i];
        m[i].series_len = klen[i];
        m[i].period_s = 1706745600LL; /* 2024-02-01 */
        m[i].delta = &r;
    }
    tally__store_producer_t prod = {.id = "p1", .id_len = 2};
    cr_assert_eq(tally__store_commit(s, h, n, m, (size_t)nseries, &prod, 1), 0);
    free(keys);
    free(klen);
    free(h);
    free(m);
}

typedef struct counts {
    size_t n;
    int64_t min_period;
} counts_t;

static int
count_cb(void *ctx, const char *series, size_t series_len, int64_t period_s,
         const tally__rollup_t *r)
{
    (void)series;
    (void)series_len;
    (void)r;
    counts_t *c = ctx;
    if (c->n == 0 || period_s < c->min_period)
        c->min_period = period_s;
    c->n++;
    return 0;
}

static counts_t
count(tally__store_t *s, int which)
{
    counts_t c = {0};
    cr_assert_eq(tally__store_scan(s, which, NULL, 0, INT64_MIN, INT64_MAX, count_cb, &c), 0);
    return c;
}

static int
count_producer(void *ctx, const char *id, size_t id_len, const tally__dedup_t *st)
{
    (void)id;
    (void)id_len;
    (void)st;
    (*(size_t *)ctx)++;
    return 0;
}

/* ---- retention --------------------------------------------------------------- */

Test(store_retention, prune_deletes_only_hourly_records_older_than_the_cut)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "retention");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    fill(s, 3, 48);
    cr_assert_eq(count(s, TALLY_STORE_HOURLY).n, 3 * 48);
    cr_assert_eq(count(s, TALLY_STORE_MONTHLY).n, 3);

    size_t deleted = 99;
    int64_t cut = T0 + 24 * HOUR;
    cr_assert_eq(tally__store_prune_hourly(s, cut, SIZE_MAX, &deleted), 0);
    cr_expect_eq(deleted, 3 * 24);
    counts_t h = count(s, TALLY_STORE_HOURLY);
    cr_expect_eq(h.n, 3 * 24);
    cr_expect_eq(h.min_period, cut, "the hour at the cut stays");
    cr_expect_eq(count(s, TALLY_STORE_MONTHLY).n, 3, "monthly rollups are never pruned");
    size_t np = 0;
    cr_assert_eq(tally__store_producers(s, count_producer, &np), 0);
    cr_expect_eq(np, 1);

    /* nothing older is left: a second prune deletes nothing */
    cr_assert_eq(tally__store_prune_hourly(s, cut, SIZE_MAX, &deleted), 0);
    cr_expect_eq(deleted, 0);
    /* a cut before everything deletes nothing either */
    cr_assert_eq(tally__store_prune_hourly(s, T0 - HOUR, SIZE_MAX, &deleted), 0);
    cr_expect_eq(deleted, 0);
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store_retention, prune_works_in_bounded_batches)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "retention");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    /* 40 series x 40 hours: 40 x 30 = 1200 records before the cut, on many pages */
    fill(s, 40, 40);
    int64_t cut = T0 + 30 * HOUR;
    size_t deleted, total = 0;
    cr_assert_eq(tally__store_prune_hourly(s, cut, 500, &deleted), 0);
    cr_expect_eq(deleted, 500, "at most max_records per call");
    total += deleted;
    cr_expect_eq(count(s, TALLY_STORE_HOURLY).n, 1600 - 500);
    cr_assert_eq(tally__store_prune_hourly(s, cut, 500, &deleted), 0);
    cr_expect_eq(deleted, 500);
    total += deleted;
    cr_assert_eq(tally__store_prune_hourly(s, cut, 500, &deleted), 0);
    cr_expect_eq(deleted, 200, "fewer than max_records: done");
    total += deleted;
    cr_expect_eq(total, 1200);
    counts_t h = count(s, TALLY_STORE_HOURLY);
    cr_expect_eq(h.n, 400);
    cr_expect_eq(h.min_period, cut);
    cr_expect_eq(count(s, TALLY_STORE_MONTHLY).n, 40);
    cr_assert_eq(tally__store_prune_hourly(s, cut, 500, &deleted), 0);
    cr_expect_eq(deleted, 0);
    /* a batch of one still progresses */
    cr_assert_eq(tally__store_prune_hourly(s, cut + HOUR, 1, &deleted), 0);
    cr_expect_eq(deleted, 1);
    tally__store_close(s);
    testdir_remove(dir);
}

Test(store_retention, prune_refuses_a_read_only_store)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "retention");
    tally__store_t *s, *r;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    fill(s, 1, 4);
    tally__store_close(s);
    cr_assert_eq(tally__store_open(dir, 0, 1, &r), 0);
    size_t deleted = 5;
    cr_expect_eq(tally__store_prune_hourly(r, T0 + 10 * HOUR, 100, &deleted), TALLY_EINVAL);
    cr_expect_eq(deleted, 0);
    tally__store_close(r);
    testdir_remove(dir);
}

/* ---- the store lock ------------------------------------------------------------ */

Test(store_retention, locked_while_a_writable_store_is_open_and_not_after_close)
{
    char dir[64], missing[96];
    testdir_make(dir, sizeof dir, "retention");
    snprintf(missing, sizeof missing, "%s/nothing-here", dir);
    cr_expect_eq(tally__store_locked(missing), 0);
    cr_expect_eq(tally__store_locked(dir), 0, "no lock file yet");

    tally__store_t *s, *r, *again;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_expect_eq(tally__store_locked(dir), 1);
    int fd = 12345;
    cr_expect_eq(tally__store_lock(dir, &fd), TALLY_EBUSY);
    cr_expect_eq(fd, -1);
    cr_expect_eq(tally__store_open(dir, 16 * MiB, 0, &again), TALLY_EBUSY,
                 "a second writer is refused");
    cr_assert_eq(tally__store_open(dir, 0, 1, &r), 0, "readers take no lock");
    tally__store_close(r);
    cr_expect_eq(tally__store_locked(dir), 1, "probing does not release it");
    tally__store_close(s);
    cr_expect_eq(tally__store_locked(dir), 0);

    /* an offline command's lock keeps a daemon out */
    cr_assert_eq(tally__store_lock(dir, &fd), 0);
    cr_expect_eq(tally__store_locked(dir), 1);
    cr_expect_eq(tally__store_open(dir, 16 * MiB, 0, &again), TALLY_EBUSY);
    tally__store_unlock(fd);
    cr_expect_eq(tally__store_locked(dir), 0);
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    tally__store_close(s);
    testdir_remove(dir);
}

/* ---- restore and compact -------------------------------------------------------- */

Test(store_retention, restore_refuses_live_and_nonempty_stores_and_checks_the_backup)
{
    char src[64], bak[64], dst[64], junk[64];
    testdir_make(src, sizeof src, "retention");
    testdir_make(bak, sizeof bak, "retention");
    testdir_make(dst, sizeof dst, "retention");
    testdir_make(junk, sizeof junk, "retention");
    tally__store_t *s, *d;
    cr_assert_eq(tally__store_open(src, 16 * MiB, 0, &s), 0);
    fill(s, 5, 10);
    cr_assert_eq(tally__store_backup(s, bak), 0);
    /* the live source refuses a restore */
    cr_expect_eq(tally__store_restore(bak, src, 1), TALLY_EBUSY);
    tally__store_close(s);

    /* no backup there */
    cr_expect_eq(tally__store_restore(junk, dst, 0), -ENOENT);
    /* not a store */
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", junk);
    int fd = open(path, O_WRONLY | O_CREAT, 0640);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "not lmdb at all, not lmdb at all", 32), 32);
    close(fd);
    cr_expect_eq(tally__store_restore(junk, dst, 0), TALLY_ECORRUPT);

    /* a fresh directory takes it */
    cr_assert_eq(tally__store_restore(bak, dst, 0), 0);
    cr_assert_eq(tally__store_open(dst, 16 * MiB, 0, &d), 0);
    cr_expect_eq(count(d, TALLY_STORE_HOURLY).n, 50);
    cr_expect_eq(count(d, TALLY_STORE_MONTHLY).n, 5);
    /* ...and refuses again while open, and without --force once it has data */
    cr_expect_eq(tally__store_restore(bak, dst, 1), TALLY_EBUSY);
    tally__store_close(d);
    cr_expect_eq(tally__store_restore(bak, dst, 0), TALLY_EEXISTS);
    cr_expect_eq(tally__store_restore(junk, dst, 1), TALLY_ECORRUPT);
    cr_assert_eq(tally__store_open(dst, 16 * MiB, 0, &d), 0);
    cr_expect_eq(count(d, TALLY_STORE_HOURLY).n, 50, "a refused restore changes nothing");
    tally__store_close(d);
    cr_expect_eq(tally__store_restore(bak, dst, 1), 0);
    cr_expect_eq(tally__store_restore(dst, dst, 1), TALLY_EINVAL);
    testdir_remove(src);
    testdir_remove(bak);
    testdir_remove(dst);
    testdir_remove(junk);
}

Test(store_retention, compact_refuses_a_live_store_and_keeps_every_record)
{
    char dir[64], out[64];
    testdir_make(dir, sizeof dir, "retention");
    testdir_make(out, sizeof out, "retention");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    fill(s, 50, 48);
    size_t deleted;
    cr_assert_eq(tally__store_prune_hourly(s, T0 + 40 * HOUR, SIZE_MAX, &deleted), 0);
    cr_assert_eq(deleted, 50 * 40);
    uint64_t before = 0, after = 0;
    cr_expect_eq(tally__store_compact(dir, NULL, &before, &after), TALLY_EBUSY);
    tally__store_close(s);

    cr_assert_eq(tally__store_compact(dir, out, &before, &after), 0);
    cr_expect_gt(before, 0);
    cr_expect_gt(after, 0);
    cr_expect_eq(tally__store_compact(dir, out, NULL, NULL), -EEXIST);
    cr_assert_eq(tally__store_compact(dir, NULL, &before, &after), 0);
    cr_expect_leq(after, before);
    cr_assert_eq(tally__store_open(dir, 64 * MiB, 0, &s), 0);
    cr_expect_eq(count(s, TALLY_STORE_HOURLY).n, 50 * 8);
    cr_expect_eq(count(s, TALLY_STORE_MONTHLY).n, 50);
    tally__store_close(s);
    cr_assert_eq(tally__store_open(out, 64 * MiB, 0, &s), 0);
    cr_expect_eq(count(s, TALLY_STORE_HOURLY).n, 50 * 8);
    tally__store_close(s);
    testdir_remove(dir);
    testdir_remove(out);
}
