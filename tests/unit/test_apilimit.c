/* test_apilimit.c — Criterion tests of api_limits enforcement: token buckets per (token, namespace,
 * operation), Retry-After, refill, bounded tables and the per-namespace limit cache. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "apilimit.h"
#include "tally/tally.h"

static tally__apilimit_t *
mk(size_t buckets, size_t namespaces)
{
    tally__apilimit_t *al;
    tally__apilimit_opts_t o = {
        .max_buckets = buckets, .max_namespaces = namespaces, .refresh_ms = 1000};
    cr_assert_eq(tally__apilimit_create(&o, &al), 0);
    return al;
}

static tally__quota_api_limit_t
lim(uint32_t rate, int unit_s, uint32_t burst)
{
    tally__quota_api_limit_t l = {.rate = rate, .unit_s = unit_s, .burst = burst};
    snprintf(l.key, sizeof l.key, "usage_details");
    return l;
}

Test(apilimit, burst_then_limited_with_retry_after)
{
    tally__apilimit_t *al = mk(16, 4);
    tally__quota_api_limit_t l = lim(1, 60, 2); /* 1 a minute, 3 at once */
    uint32_t retry = 0;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tally__apilimit_take(al, "t1", "demo", "usage_details", &l, 1000, &retry), 1,
                     "request %d", i);
    cr_assert_eq(tally__apilimit_take(al, "t1", "demo", "usage_details", &l, 1000, &retry), 0);
    cr_assert_eq(retry, 60, "one request refills in 60 s, got %u", retry);
    /* 30 s later half a request has refilled: still limited, 30 s to wait */
    cr_assert_eq(tally__apilimit_take(al, "t1", "demo", "usage_details", &l, 31000, &retry), 0);
    cr_assert_eq(retry, 30, "got %u", retry);
    tally__apilimit_destroy(al);
}

Test(apilimit, refills_at_the_rate_up_to_capacity)
{
    tally__apilimit_t *al = mk(16, 4);
    tally__quota_api_limit_t l = lim(10, 1, 0); /* 10 a second */
    int64_t t = 5000;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(tally__apilimit_take(al, "t", "n", "op", &l, t, NULL), 1);
    cr_assert_eq(tally__apilimit_take(al, "t", "n", "op", &l, t, NULL), 0);
    uint32_t retry;
    cr_assert_eq(tally__apilimit_take(al, "t", "n", "op", &l, t, &retry), 0);
    cr_assert_eq(retry, 1, "at least 1 s");
    /* 100 ms = one request */
    cr_assert_eq(tally__apilimit_take(al, "t", "n", "op", &l, t + 100, NULL), 1);
    cr_assert_eq(tally__apilimit_take(al, "t", "n", "op", &l, t + 100, NULL), 0);
    /* an hour later: full, but never above capacity */
    int ok = 0;
    while (tally__apilimit_take(al, "t", "n", "op", &l, t + 3600000, NULL))
        ok++;
    cr_assert_eq(ok, 10);
    /* a clock going backwards refills nothing */
    cr_assert_eq(tally__apilimit_take(al, "t", "n", "op", &l, t, NULL), 0);
    tally__apilimit_destroy(al);
}

Test(apilimit, tokens_namespaces_and_operations_are_independent)
{
    tally__apilimit_t *al = mk(16, 4);
    tally__quota_api_limit_t l = lim(1, 3600, 0);
    cr_assert_eq(tally__apilimit_take(al, "a", "demo", "usage_details", &l, 0, NULL), 1);
    cr_assert_eq(tally__apilimit_take(al, "a", "demo", "usage_details", &l, 0, NULL), 0);
    cr_assert_eq(tally__apilimit_take(al, "b", "demo", "usage_details", &l, 0, NULL), 1,
                 "another token");
    cr_assert_eq(tally__apilimit_take(al, "a", "demo", "quota_usage", &l, 0, NULL), 1,
                 "another operation");
    cr_assert_eq(tally__apilimit_take(al, "a", "prod", "usage_details", &l, 0, NULL), 1,
                 "another namespace");
    /* key parts cannot run into each other */
    cr_assert_eq(tally__apilimit_take(al, "ab", "c", "op", &l, 0, NULL), 1);
    cr_assert_eq(tally__apilimit_take(al, "a", "bc", "op", &l, 0, NULL), 1);
    cr_assert_eq(tally__apilimit_buckets(al), 6);
    tally__apilimit_destroy(al);
}

Test(apilimit, rate_zero_or_no_limit_is_unlimited)
{
    tally__apilimit_t *al = mk(4, 4);
    tally__quota_api_limit_t l = lim(0, 1, 0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(tally__apilimit_take(al, "t", "n", "op", &l, 0, NULL), 1);
        cr_assert_eq(tally__apilimit_take(al, "t", "n", "op", NULL, 0, NULL), 1);
    }
    cr_assert_eq(tally__apilimit_buckets(al), 0, "no bucket made");
    tally__apilimit_destroy(al);
}

Test(apilimit, bucket_table_is_bounded_lru)
{
    tally__apilimit_t *al = mk(8, 4);
    tally__quota_api_limit_t l = lim(1, 3600, 0);
    char tok[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(tok, sizeof tok, "tok%d", i);
        cr_assert_eq(tally__apilimit_take(al, tok, "n", "op", &l, 0, NULL), 1);
        cr_assert_leq(tally__apilimit_buckets(al), 8);
    }
    cr_assert_eq(tally__apilimit_buckets(al), 8);
    /* the 8 most recent are still tracked (and empty); keep tok999 hot */
    cr_assert_eq(tally__apilimit_take(al, "tok999", "n", "op", &l, 0, NULL), 0);
    cr_assert_eq(tally__apilimit_take(al, "tok992", "n", "op", &l, 0, NULL), 0);
    /* one new token evicts the least recent (tok993), not the hot ones */
    cr_assert_eq(tally__apilimit_take(al, "fresh", "n", "op", &l, 0, NULL), 1);
    cr_assert_eq(tally__apilimit_take(al, "tok999", "n", "op", &l, 0, NULL), 0);
    cr_assert_eq(tally__apilimit_take(al, "tok992", "n", "op", &l, 0, NULL), 0);
    cr_assert_eq(tally__apilimit_take(al, "tok993", "n", "op", &l, 0, NULL), 1,
                 "evicted: comes back full");
    tally__apilimit_destroy(al);
}

/* ---- the namespace cache ------------------------------------------------ */

typedef struct fake {
    int calls;
    int fail;
    uint32_t rate;
} fake_t;

static int
fake_fetch(void *ctx, const char *ns, tally__quota_api_limit_t **out, size_t *n)
{
    fake_t *f = ctx;
    f->calls++;
    if (f->fail)
        return TALLY_ESTORE;
    if (strcmp(ns, "demo") != 0) {
        *out = NULL;
        *n = 0;
        return 0;
    }
    *out = calloc(2, sizeof **out);
    cr_assert_not_null(*out);
    snprintf((*out)[0].key, sizeof(*out)[0].key, "usage_details");
    (*out)[0].rate = f->rate;
    (*out)[0].unit_s = 60;
    (*out)[0].burst = 1;
    snprintf((*out)[1].key, sizeof(*out)[1].key, "quota_usage");
    (*out)[1].rate = 1000;
    (*out)[1].unit_s = 1;
    *n = 2;
    return 0;
}

Test(apilimit, check_uses_the_namespace_limits_and_caches_them)
{
    fake_t f = {.rate = 1};
    tally__apilimit_t *al;
    tally__apilimit_opts_t o = {.max_buckets = 64,
                                .max_namespaces = 2,
                                .refresh_ms = 1000,
                                .fetch = fake_fetch,
                                .fetch_ctx = &f};
    cr_assert_eq(tally__apilimit_create(&o, &al), 0);
    uint32_t retry;
    tally__quota_api_limit_t used;
    cr_assert_eq(tally__apilimit_check(al, "t", "demo", "usage_details", 0, &retry, &used), 1);
    cr_assert_eq(tally__apilimit_check(al, "t", "demo", "usage_details", 10, &retry, &used), 1);
    cr_assert_eq(tally__apilimit_check(al, "t", "demo", "usage_details", 20, &retry, &used), 0);
    cr_assert_eq(retry, 60);
    cr_assert_eq(used.rate, 1);
    cr_assert_eq(used.burst, 1);
    cr_assert_eq(f.calls, 1, "cached for refresh_ms");
    /* operations without a limit and namespaces without limits pass */
    cr_assert_eq(tally__apilimit_check(al, "t", "demo", "quota_list", 20, &retry, NULL), 1);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(tally__apilimit_check(al, "t", "prod", "usage_details", 20, NULL, NULL), 1);
    cr_assert_eq(f.calls, 2);
    /* after refresh_ms the limits are fetched again (a raised rate applies) */
    f.rate = 100000;
    cr_assert_eq(tally__apilimit_check(al, "t", "demo", "usage_details", 1020, &retry, NULL), 1);
    cr_assert_eq(f.calls, 3);
    /* invalidate forces a fetch */
    tally__apilimit_invalidate(al, "demo");
    cr_assert_eq(tally__apilimit_check(al, "t", "demo", "usage_details", 1021, &retry, NULL), 1);
    cr_assert_eq(f.calls, 4);
    /* bounded: 2 namespaces cached at most */
    cr_assert_eq(tally__apilimit_check(al, "t", "x1", "op", 1022, NULL, NULL), 1);
    cr_assert_eq(tally__apilimit_check(al, "t", "x2", "op", 1022, NULL, NULL), 1);
    cr_assert_eq(tally__apilimit_namespaces(al), 2);
    tally__apilimit_invalidate(al, NULL);
    cr_assert_eq(tally__apilimit_namespaces(al), 0);
    /* a failing fetch lets requests through and is retried */
    f.fail = 1;
    int before = f.calls;
    cr_assert_eq(tally__apilimit_check(al, "t", "demo", "usage_details", 2000, NULL, NULL), 1);
    cr_assert_eq(tally__apilimit_check(al, "t", "demo", "usage_details", 2000, NULL, NULL), 1);
    cr_assert_eq(f.calls, before + 2);
    tally__apilimit_destroy(al);
}

Test(apilimit, create_validates)
{
    tally__apilimit_t *al;
    tally__apilimit_opts_t o = {.max_buckets = 0, .max_namespaces = 1};
    cr_assert_eq(tally__apilimit_create(&o, &al), TALLY_EINVAL);
    o = (tally__apilimit_opts_t){.max_buckets = 1, .max_namespaces = 0};
    cr_assert_eq(tally__apilimit_create(&o, &al), TALLY_EINVAL);
    o = (tally__apilimit_opts_t){.max_buckets = 1, .max_namespaces = 1, .refresh_ms = -1};
    cr_assert_eq(tally__apilimit_create(&o, &al), TALLY_EINVAL);
    tally__apilimit_destroy(NULL);
}
