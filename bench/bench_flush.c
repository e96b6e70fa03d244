/* bench_flush.c — times one flush of N active series (prepare + LMDB commit), cold and steady
 * state.
 *
 * A flush merges one hourly and one monthly record per active series into
 * LMDB in a single durable transaction. The first flush inserts, later ones
 * update existing keys, which is the daemon's steady state.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cells.h"
#include "rollup.h"
#include "store.h"
#include "strtab.h"

/* RssAnon of this process in KiB, or -1. */
static long
rss_anon_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Intern series 0..n-1 into tab (ids[i] for series i), in a scrambled
 * order as producers would reveal them; `reverse` meets them in another
 * order, as a restarted daemon would. Series i is the same string either
 * way: its namespace comes from i. */
static void
intern_series(tally__strtab_t *tab, uint32_t *ids, int n, int reverse)
{
    for (int k = 0; k < n; k++) {
        int i = reverse ? n - 1 - k : k;
        char key[TALLY_SERIES_KEY_MAX], ns[32], obj[32];
        uint32_t h = (uint32_t)i * 2654435761u;
        snprintf(ns, sizeof ns, "ns-%u", (h >> 16) % 100);
        snprintf(obj, sizeof obj, "o-%d", i);
        tally_label_t l = {"object", obj};
        size_t len = tally__series_key(key, ns, strlen(ns), "http_requests", 13, &l, 1);
        tally__strtab_intern(tab, key, (uint32_t)len, &ids[i]);
    }
}

/* One flush: an event for every series at hour, then prepare and commit.
 * Returns 0 and the two phases' times, or 1 after saying why. */
static int
flush_once(tally__cells_t *cells, tally__store_t *store, const uint32_t *ids, int n, int64_t hour,
           int64_t ts_ms, double *prepare_ms, double *commit_ms)
{
    for (int i = 0; i < n; i++)
        tally__cells_add(cells, ids[i], hour, 0, 1 + i % 7, 0, ts_ms);
    tally__store_src_t src;
    double t0 = now_ms();
    int rc = tally__cells_prepare(cells, &src);
    double t1 = now_ms();
    if (rc == 0)
        rc = tally__store_commit_src(store, &src, NULL, 0);
    double t2 = now_ms();
    if (rc) {
        fprintf(stderr, "tally-bench-flush: flush failed: %s\n", tally_strerror(rc));
        return 1;
    }
    tally__cells_reset(cells);
    *prepare_ms = t1 - t0;
    *commit_ms = t2 - t1;
    return 0;
}

int
main(int argc, char **argv)
{
    int series = 100000, rounds = 5, history = 0, opt;
    unsigned oflags = TALLY_STORE_WRITEMAP; /* as tallyd opens it */
    static const struct option lo[] = {
        {"series", required_argument, NULL, 's'}, {"copy-mode", no_argument, NULL, 'c'},
        {"rounds", required_argument, NULL, 'r'}, {"history-hours", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (opt == 's')
            series = atoi(optarg);
        else if (opt == 'r')
            rounds = atoi(optarg);
        else if (opt == 'H')
            history = atoi(optarg);
        else if (opt == 'c')
            oflags = 0;
        else {
            fprintf(stderr,
                    "usage: tally-bench-flush [--series N] [--rounds N] [--history-hours N] "
                    "[--copy-mode]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    mallopt(M_MMAP_THRESHOLD, 256 * 1024); /* as tallyd does */
    long anon0 = rss_anon_kib();
    char dir[] = "/tmp/tally-bench-flush-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    tally__store_t *store;
    tally__strtab_t *tab;
    tally__cells_t *cells;
    if (tally__store_open_ex(dir, 1024ull << 20, oflags, &store) || tally__strtab_create(&tab) ||
        tally__cells_create(tab, &cells))
        return 1;
    uint32_t *ids = malloc(sizeof *ids * (size_t)series);
    if (!ids)
        return 1;
    intern_series(tab, ids, series, 0);
    int64_t hour = 1795712400; /* 2026-11-26T17:00:00Z */
    double p, c;
    /* earlier hours of every series, as a daemon that has run a while holds */
    for (int hh = history; hh > 0; hh--) {
        if (flush_once(cells, store, ids, series, hour - 3600 * hh, (hour - 3600 * hh) * 1000, &p,
                       &c))
            return 1;
        printf("history hour -%d: %.1f ms\n", hh, p + c);
    }
    double worst = 0;
    for (int round = 0; round < rounds; round++) {
        if (flush_once(cells, store, ids, series, hour, hour * 1000 + round, &p, &c))
            return 1;
        printf("flush %d (%s): %d series, prepare %.1f ms, commit %.1f ms, total %.1f ms\n",
               round + 1, round ? "update" : "insert", series, p, c, p + c);
        if (round && p + c > worst)
            worst = p + c;
    }
    uint64_t size, used;
    tally__store_map_info(store, &size, &used);
    printf("steady-state flush of %d active series: worst %.1f ms; store %.1f MiB; %s\n", series,
           worst, (double)used / 1048576.0,
           tally__store_writemap(store) ? "writes through the map" : "LMDB copy mode");
    long anon = rss_anon_kib();
    size_t sb = tally__strtab_bytes(tab), cb = tally__cells_bytes(cells);
    printf("anonymous memory: %.0f B/series (series keys %.0f; cell table %.0f allocated, of "
           "which the untouched part of its doubling is not resident)\n",
           (double)(anon - anon0) * 1024.0 / series, (double)sb / series, (double)cb / series);
    /* a restarted daemon: a fresh table meets the series in another order
     * and learns their ids from its first commit, which looks them up */
    tally__cells_destroy(cells);
    tally__strtab_destroy(tab);
    tally__store_close(store);
    if (tally__store_open_ex(dir, 1024ull << 20, oflags, &store) || tally__strtab_create(&tab) ||
        tally__cells_create(tab, &cells))
        return 1;
    intern_series(tab, ids, series, 1);
    for (int pass = 0; pass < 2; pass++) {
        if (flush_once(cells, store, ids, series, hour, hour * 1000 + rounds + pass, &p, &c))
            return 1;
        printf("%s flush after a restart: %.1f ms\n", pass ? "second" : "first", p + c);
    }
    tally__cells_destroy(cells);
    tally__strtab_destroy(tab);
    tally__store_close(store);
    free(ids);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
