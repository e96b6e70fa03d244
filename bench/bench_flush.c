/* bench_flush.c — times one flush of N active series (prepare + LMDB commit), cold and steady
 * state.
 *
 * A flush merges one hourly and one monthly record per active series into
 * LMDB in a single durable transaction. The first flush inserts, later ones
 * update existing keys, which is the daemon's steady state.
 */
#define _GNU_SOURCE
#include <getopt.h>
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

int
main(int argc, char **argv)
{
    int series = 100000, rounds = 5, history = 0, opt;
    static const struct option lo[] = {{"series", required_argument, NULL, 's'},
                                       {"rounds", required_argument, NULL, 'r'},
                                       {"history-hours", required_argument, NULL, 'H'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (opt == 's')
            series = atoi(optarg);
        else if (opt == 'r')
            rounds = atoi(optarg);
        else if (opt == 'H')
            history = atoi(optarg);
        else {
            fprintf(stderr, "usage: tally-bench-flush [--series N] [--rounds N] [--history-hours N]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    long anon0 = rss_anon_kib();
    char dir[] = "/tmp/tally-bench-flush-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    tally__store_t *store;
    tally__strtab_t *tab;
    tally__cells_t *cells;
    if (tally__store_open(dir, 4096ull << 20, 0, &store) || tally__strtab_create(&tab) ||
        tally__cells_create(tab, &cells))
        return 1;
    /* series in random order, as producers would reveal them */
    uint32_t *ids = malloc(sizeof *ids * (size_t)series);
    srand(42);
    for (int i = 0; i < series; i++) {
        char key[TALLY_SERIES_KEY_MAX], ns[32], obj[32];
        int r = rand();
        snprintf(ns, sizeof ns, "ns-%d", r % 100);
        snprintf(obj, sizeof obj, "o-%d", i);
        tally_label_t l = {"object", obj};
        size_t n = tally__series_key(key, ns, strlen(ns), "http_requests", 13, &l, 1);
        tally__strtab_intern(tab, key, (uint32_t)n, &ids[i]);
    }
    int64_t hour = 1795712400; /* 2026-11-26T17:00:00Z */
    /* earlier hours of every series, as a daemon that has run a while holds */
    for (int hh = history; hh > 0; hh--) {
        for (int i = 0; i < series; i++)
            tally__cells_add(cells, ids[i], hour - 3600 * hh, 0, 1, 0, (hour - 3600 * hh) * 1000);
        const tally__store_put_t *h, *m;
        size_t nh, nm;
        double t0 = now_ms();
        if (tally__cells_prepare(cells, &h, &nh, &m, &nm) ||
            tally__store_commit(store, h, nh, m, nm, NULL, 0)) {
            fprintf(stderr, "history commit failed\n");
            return 1;
        }
        tally__cells_reset(cells);
        printf("history hour -%d: %.1f ms\n", hh, now_ms() - t0);
    }
    double worst = 0;
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < series; i++)
            tally__cells_add(cells, ids[i], hour, 0, 1 + i % 7, 0, hour * 1000 + round);
        const tally__store_put_t *h, *m;
        size_t nh, nm;
        double t0 = now_ms();
        tally__cells_prepare(cells, &h, &nh, &m, &nm);
        double t1 = now_ms();
        int rc = tally__store_commit(store, h, nh, m, nm, NULL, 0);
        double t2 = now_ms();
        if (rc) {
            fprintf(stderr, "commit: %s\n", tally_strerror(rc));
            return 1;
        }
        tally__cells_reset(cells);
        printf("flush %d (%s): %d series, prepare %.1f ms, commit %.1f ms, total %.1f ms\n",
               round + 1, round ? "update" : "insert", series, t1 - t0, t2 - t1, t2 - t0);
        if (round && t2 - t0 > worst)
            worst = t2 - t0;
    }
    uint64_t size, used;
    tally__store_map_info(store, &size, &used);
    printf("steady-state flush of %d active series: worst %.1f ms; store %.1f MiB\n", series, worst,
           (double)used / 1048576.0);
    long anon = rss_anon_kib();
    size_t sb = tally__strtab_bytes(tab), cb = tally__cells_bytes(cells);
    printf("anonymous memory: %.0f B/series (series keys %.0f, cells and flush scratch %.0f, "
           "the rest mostly LMDB's dirty-page buffers)\n",
           (double)(anon - anon0) * 1024.0 / series, (double)sb / series, (double)cb / series);
    /* a restarted daemon: a fresh table meets the series in another order
     * and learns their ids from its first commit, which looks them up */
    tally__cells_destroy(cells);
    tally__strtab_destroy(tab);
    tally__store_close(store);
    if (tally__store_open(dir, 4096ull << 20, 0, &store) || tally__strtab_create(&tab) ||
        tally__cells_create(tab, &cells))
        return 1;
    srand(42);
    for (int i = series - 1; i >= 0; i--) {
        char key[TALLY_SERIES_KEY_MAX], ns[32], obj[32];
        snprintf(ns, sizeof ns, "ns-%d", rand() % 100);
        snprintf(obj, sizeof obj, "o-%d", i);
        tally_label_t l = {"object", obj};
        size_t n = tally__series_key(key, ns, strlen(ns), "http_requests", 13, &l, 1);
        tally__strtab_intern(tab, key, (uint32_t)n, &ids[i]);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < series; i++)
            tally__cells_add(cells, ids[i], hour, 0, 1, 0, hour * 1000 + rounds + pass);
        const tally__store_put_t *h, *m;
        size_t nh, nm;
        double t0 = now_ms();
        if (tally__cells_prepare(cells, &h, &nh, &m, &nm) ||
            tally__store_commit(store, h, nh, m, nm, NULL, 0)) {
            fprintf(stderr, "commit after restart failed\n");
            return 1;
        }
        tally__cells_reset(cells);
        printf("%s flush after a restart: %.1f ms\n", pass ? "second" : "first", now_ms() - t0);
    }
    tally__cells_destroy(cells);
    tally__strtab_destroy(tab);
    tally__store_close(store);
    free(ids);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
