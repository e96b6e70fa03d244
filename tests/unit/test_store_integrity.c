/* test_store_integrity.c — Criterion tests: the store marker (tally.id) refuses a deleted,
 * emptied, foreign or stale data.mdb; tally__store_check finds damaged pages and records. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <lmdb.h>

#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)
#define T0 1709247600LL /* 2024-02-29T23:00:00Z */

/* nseries series with one hourly and one monthly record each. */
static void
fill(tally__store_t *s, int nseries)
{
    char(*keys)[TALLY_SERIES_KEY_MAX] = calloc((size_t)nseries, sizeof *keys);
    tally__store_put_t *h = calloc((size_t)nseries, sizeof *h), *m = calloc((size_t)nseries, sizeof *m);
    cr_assert(keys && h && m);
    tally__rollup_t r;
    tally__rollup_init(&r);
    tally__rollup_add(&r, 0, 7, 0.0, T0 * 1000);
    for (int i = 0; i < nseries; i++) {
        char metric[32];
        snprintf(metric, sizeof metric, "metric-%06d", i);
        uint32_t n = (uint32_t)tally__series_key(keys[i], "integ", 5, metric, strlen(metric),
                                                 NULL, 0);
        h[i] = (tally__store_put_t){.series = keys[i], .series_len = n, .period_s = T0, .delta = &r};
        m[i] = (tally__store_put_t){
            .series = keys[i], .series_len = n, .period_s = 1706745600LL, .delta = &r};
    }
    tally__store_producer_t prod = {.id = "p1", .id_len = 2};
    cr_assert_eq(tally__store_commit(s, h, (size_t)nseries, m, (size_t)nseries, &prod, 1), 0);
    free(keys);
    free(h);
    free(m);
}

static void
path_of(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static int
exists(const char *dir, const char *name)
{
    char p[256];
    struct stat st;
    path_of(p, sizeof p, dir, name);
    return stat(p, &st) == 0;
}

/* The marker's value of key ("store_id", "data", ...), "" when absent. */
static void
marker_value(const char *dir, const char *key, char *out, size_t cap)
{
    char p[256], line[256];
    path_of(p, sizeof p, dir, "tally.id");
    out[0] = '\0';
    FILE *f = fopen(p, "r");
    cr_assert(f, "no %s", p);
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, cap, "%s", line + kl + 1);
        }
    fclose(f);
}

static void
copy(const char *from, const char *to)
{
    char buf[1 << 16];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    cr_assert(in >= 0 && out >= 0);
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        cr_assert_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

/* tally__store_check's report and result. */
static int
check(const char *dir, char **report)
{
    size_t len;
    FILE *f = open_memstream(report, &len);
    cr_assert(f);
    int rc = tally__store_check(dir, f);
    fclose(f);
    return rc;
}

Test(integrity, a_store_with_data_is_not_replaced_by_an_empty_one)
{
    char dir[64], p[256], id[64], id2[64], v[16];
    testdir_make(dir, sizeof dir, "integ");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    cr_assert(exists(dir, "tally.id"), "a writable open writes the marker");
    marker_value(dir, "data", v, sizeof v);
    cr_expect_str_eq(v, "0", "an empty store's marker says so");
    tally__store_close(s);

    /* an empty store may go: nothing is lost */
    path_of(p, sizeof p, dir, "data.mdb");
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    fill(s, 10);
    marker_value(dir, "data", v, sizeof v);
    cr_expect_str_eq(v, "1", "the first commit with data writes it down");
    marker_value(dir, "store_id", id, sizeof id);
    cr_expect_eq(strlen(id), 32);
    tally__store_close(s);

    /* deleted */
    char kept[256];
    path_of(kept, sizeof kept, dir, "kept.mdb");
    cr_assert_eq(rename(p, kept), 0);
    cr_expect_eq(tally__store_open(dir, 16 * MiB, 0, &s), TALLY_ECORRUPT);
    cr_expect(!exists(dir, "data.mdb"), "a refused open creates no data.mdb");
    /* emptied */
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    cr_assert(fd >= 0);
    close(fd);
    cr_expect_eq(tally__store_open(dir, 16 * MiB, 0, &s), TALLY_ECORRUPT);
    char *rep = NULL;
    cr_expect_eq(check(dir, &rep), TALLY_ECORRUPT);
    cr_expect(strstr(rep, "DAMAGE") && strstr(rep, "empty"), "report: %s", rep);
    free(rep);
    /* put back: it opens, with its data */
    cr_assert_eq(rename(kept, p), 0);
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    tally__store_close(s);
    /* emptied, and accepted on purpose */
    cr_assert_eq(truncate(p, 0), 0);
    cr_assert_eq(tally__store_open_ex(dir, 16 * MiB, TALLY_STORE_ACCEPT_EMPTY, &s), 0);
    tally__store_close(s);
    marker_value(dir, "store_id", id2, sizeof id2);
    cr_expect_str_neq(id, id2, "a new store gets a new id");
    testdir_remove(dir);
}

Test(integrity, a_foreign_or_stale_data_file_is_refused_and_restore_rewrites_the_marker)
{
    char a[64], b[64], bak[64], pa[256], pb[256], old[256], ida[64], idb[64];
    testdir_make(a, sizeof a, "integ");
    testdir_make(b, sizeof b, "integ");
    testdir_make(bak, sizeof bak, "integ");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(a, 16 * MiB, 0, &s), 0);
    fill(s, 5);
    cr_assert_eq(tally__store_backup(s, bak), 0);
    tally__store_close(s);
    cr_assert_eq(tally__store_open(b, 16 * MiB, 0, &s), 0);
    fill(s, 3);
    tally__store_close(s);
    path_of(pa, sizeof pa, a, "data.mdb");
    path_of(pb, sizeof pb, b, "data.mdb");
    path_of(old, sizeof old, a, "old.mdb");
    copy(pa, old);
    /* a later start: the copy is now older than the marker */
    cr_assert_eq(tally__store_open(a, 16 * MiB, 0, &s), 0);
    tally__store_close(s);
    copy(old, pa);
    cr_expect_eq(tally__store_open(a, 16 * MiB, 0, &s), TALLY_ECORRUPT, "a stale copy opened");
    char *rep = NULL;
    cr_expect_eq(check(a, &rep), TALLY_ECORRUPT);
    cr_expect(strstr(rep, "older"), "report: %s", rep);
    free(rep);
    /* another store's data.mdb */
    copy(pb, pa);
    cr_expect_eq(tally__store_open(a, 16 * MiB, 0, &s), TALLY_ECORRUPT, "a foreign store opened");
    /* tallyctl restore's way: the marker follows the restored store */
    marker_value(a, "store_id", ida, sizeof ida);
    cr_assert_eq(tally__store_restore(bak, a, 1), 0);
    cr_assert_eq(tally__store_open(a, 16 * MiB, 0, &s), 0);
    tally__store_close(s);
    cr_assert_eq(tally__store_restore(b, a, 1), 0);
    marker_value(a, "store_id", ida, sizeof ida);
    marker_value(b, "store_id", idb, sizeof idb);
    cr_expect_str_eq(ida, idb, "a restore of store b names store b");
    cr_assert_eq(tally__store_open(a, 16 * MiB, 0, &s), 0);
    tally__store_close(s);
    /* and compact keeps the store opening (LMDB's txn ids start over) */
    cr_assert_eq(tally__store_compact(a, NULL, NULL, NULL), 0);
    cr_assert_eq(tally__store_open(a, 16 * MiB, 0, &s), 0);
    tally__store_close(s);
    /* deleting the marker accepts what is there */
    copy(old, pa);
    char m[256];
    path_of(m, sizeof m, a, "tally.id");
    cr_assert_eq(unlink(m), 0);
    cr_expect_eq(tally__store_open(a, 16 * MiB, 0, &s), 0);
    tally__store_close(s);
    testdir_remove(a);
    testdir_remove(b);
    testdir_remove(bak);
}

Test(integrity, check_passes_a_sound_store_and_finds_an_overwritten_page)
{
    char dir[64], p[256];
    testdir_make(dir, sizeof dir, "integ");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    fill(s, 3000);
    /* a sound store, checked while it is open for writing */
    char *rep = NULL;
    cr_expect_eq(check(dir, &rep), 0, "report: %s", rep);
    cr_expect(strstr(rep, "result: ok"), "report: %s", rep);
    cr_expect(strstr(rep, "ok      hourly: 3000 records"), "report: %s", rep);
    free(rep);
    tally__store_close(s);
    cr_expect_eq(check(dir, &rep), 0, "report: %s", rep);
    free(rep);

    /* random bytes over every page from the middle on, one at a time */
    path_of(p, sizeof p, dir, "data.mdb");
    MDB_env *env;
    MDB_envinfo info;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
    mdb_env_info(env, &info);
    mdb_env_close(env);
    size_t last = info.me_last_pgno;
    cr_assert_gt(last, 40);
    unsigned char page[4096], junk[4096];
    int fd = open(p, O_RDWR);
    cr_assert(fd >= 0);
    srand(7);
    for (size_t pg = 2; pg <= last; pg += last / 10) {
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (unsigned char)rand();
        cr_assert_eq(pread(fd, page, sizeof page, (off_t)(pg * 4096)), 4096);
        cr_assert_eq(pwrite(fd, junk, sizeof junk, (off_t)(pg * 4096)), 4096);
        int rc = check(dir, &rep);
        /* a free page's bytes are nobody's: damage only where a tree reaches */
        if (rc != 0)
            cr_expect(rc == TALLY_ECORRUPT && strstr(rep, "DAMAGE"), "page %zu: %s", pg, rep);
        else
            cr_expect(strstr(rep, "result: ok"), "page %zu: %s", pg, rep);
        free(rep);
        cr_assert_eq(pwrite(fd, page, sizeof page, (off_t)(pg * 4096)), 4096);
    }
    /* the page half-way through the hourly database: always in use */
    cr_assert_eq(pwrite(fd, junk, sizeof junk, (off_t)(last / 2 * 4096)), 4096);
    close(fd);
    int rc = check(dir, &rep);
    cr_expect_eq(rc, TALLY_ECORRUPT, "report: %s", rep);
    cr_expect(strstr(rep, "result: DAMAGED"), "report: %s", rep);
    free(rep);
    testdir_remove(dir);
}

Test(integrity, check_finds_records_of_the_wrong_format)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "integ");
    tally__store_t *s;
    cr_assert_eq(tally__store_open(dir, 16 * MiB, 0, &s), 0);
    fill(s, 4);
    tally__store_close(s);
    /* an hourly value of the wrong size and a series key that does not
     * decode, written behind the store's back */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi hourly, series;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0640), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "hourly", 0, &hourly), 0);
    cr_assert_eq(mdb_dbi_open(txn, "series", 0, &series), 0);
    MDB_cursor *cur;
    MDB_val k, v;
    cr_assert_eq(mdb_cursor_open(txn, hourly, &cur), 0);
    cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
    MDB_val shortv = {3, "abc"};
    cr_assert_eq(mdb_cursor_put(cur, &k, &shortv, MDB_CURRENT), 0);
    mdb_cursor_close(cur);
    uint32_t sid = 3;
    MDB_val bk = {5, "bogus"}, bv = {sizeof sid, &sid};
    cr_assert_eq(mdb_put(txn, series, &bk, &bv, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    char *rep = NULL;
    cr_expect_eq(check(dir, &rep), TALLY_ECORRUPT, "report: %s", rep);
    cr_expect(strstr(rep, "hourly") && strstr(rep, "wrong size"), "report: %s", rep);
    cr_expect(strstr(rep, "series") && strstr(rep, "does not decode"), "report: %s", rep);
    free(rep);
    testdir_remove(dir);
}

Test(integrity, check_of_a_directory_without_a_store)
{
    char dir[64];
    testdir_make(dir, sizeof dir, "integ");
    char *rep = NULL;
    cr_expect_eq(check(dir, &rep), -ENOENT);
    cr_expect(strstr(rep, "no store"), "report: %s", rep);
    free(rep);
    testdir_remove(dir);
}
