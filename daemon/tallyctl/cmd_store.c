/* cmd_store.c — tallyctl's commands on the LMDB store itself: dump, backup (online), restore and
 * compact (offline). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "ctl.h"
#include "fmt.h"
#include "rollup.h"
#include "tally/tally.h"
#include "timeparse.h"
#include "timeutil.h"

/* ---- dump ------------------------------------------------------------------- */

static const ctl_opt_t dump_opts[] = {
    CTL_OPT_CONFIG,
    {"ns", 0, CTL_ARG, "NS", "only namespace NS", 0},
    {"period", 0, CTL_ARG, "hour|month", "hourly (default) or monthly rollups", 0},
    {"from", 0, CTL_ARG, "T", "rollups whose period starts at or after T", 0},
    {"to", 0, CTL_ARG, "T", "and before T", 0},
    {"json", 0, CTL_FLAG, NULL,
     "an array of {ns, metric, period, start, sum, count, max, last, labels}, "
     "one record a line, raw numbers",
     0},
    {NULL, 0, 0, NULL, NULL, 0},
};

typedef struct dump_ctx {
    const ctl_args_t *args;
    const tally__catalog_t *catalog; /* units for the table; may be NULL */
    int json;
    int monthly;
    int failed;
    size_t n;
} dump_ctx_t;

/* the labels of a series as one JSON object, in the series' order */
static json_t *
labels_json(const tally__series_t *s)
{
    json_t *o = json_object();
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    while (o && tally__series_next_label(s->labels, s->labels_len, &pos, &k, &kl, &v, &vl)) {
        char key[TALLY_SERIES_KEY_MAX];
        /* a key is [A-Za-z0-9_.:-]: it fits and needs no repair */
        snprintf(key, sizeof key, "%.*s", (int)kl, k);
        if (json_object_set_new(o, key, ctl_json_stringn(v, vl)) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

static int
dump_json_one(dump_ctx_t *d, const tally__series_t *s, const char *when, const tally__rollup_t *r)
{
    json_t *sum = tally__rollup_sum_is_int(r) ? json_integer((json_int_t)r->sum_i)
                                              : ctl_json_number(tally__rollup_sum(r));
    json_t *o = json_pack(
        "{s:o,s:o,s:s,s:s,s:o,s:I,s:o,s:o}", "ns", ctl_json_stringn(s->ns, s->ns_len), "metric",
        ctl_json_stringn(s->metric, s->metric_len), "period", d->monthly ? "month" : "hour",
        "start", when, "sum", sum, "count", (json_int_t)r->count, "max", ctl_json_number(r->max),
        "last", ctl_json_number(r->last));
    if (o && s->labels_len && json_object_set_new(o, "labels", labels_json(s)) != 0) {
        json_decref(o);
        o = NULL;
    }
    char *text =
        o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    if (text == NULL)
        return ctl_fail(d->args, "out of memory");
    /* one record a line: tests and scripts read the dump with sed */
    fputs(d->n ? ",\n " : "[", stdout);
    fputs(text, stdout);
    free(text);
    return 0;
}

static void
dump_table_one(dump_ctx_t *d, const tally__series_t *s, const char *when, const tally__rollup_t *r)
{
    char metric[TALLY_MAX_METRIC_LEN + 1], sum[CTL_FMT_LEN], cnt[CTL_FMT_LEN], max[CTL_FMT_LEN],
        last[CTL_FMT_LEN];
    tally__metric_def_t tmp;
    snprintf(metric, sizeof metric, "%.*s", (int)s->metric_len, s->metric);
    const char *unit = tally__catalog_lookup_or_default(d->catalog, metric, &tmp)->unit;
    if (d->n == 0)
        printf("%-20s %-24s %-6s %-20s %14s %12s %14s %14s  %s\n", "NS", "METRIC", "PERIOD",
               "START", "SUM", "COUNT", "MAX", "LAST", "LABELS");
    printf("%-20.*s %-24s %-6s %-20s %14s %12s %14s %14s  ", (int)s->ns_len, s->ns, metric,
           d->monthly ? "month" : "hour", when,
           ctl_fmt_unit(unit, tally__rollup_sum(r), sum, sizeof sum),
           ctl_fmt_count((double)r->count, cnt, sizeof cnt),
           ctl_fmt_unit(unit, r->max, max, sizeof max),
           ctl_fmt_unit(unit, r->last, last, sizeof last));
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    int first = 1;
    while (tally__series_next_label(s->labels, s->labels_len, &pos, &k, &kl, &v, &vl)) {
        printf("%s%.*s=%.*s", first ? "" : ",", (int)kl, k, (int)vl, v);
        first = 0;
    }
    fputs(first ? "-\n" : "\n", stdout);
}

static int
dump_one(void *ctx, const char *series, size_t series_len, int64_t period_s,
         const tally__rollup_t *r)
{
    dump_ctx_t *d = ctx;
    tally__series_t s;
    char when[TALLY_TIME_RFC3339_LEN];
    if (tally__series_parse(series, series_len, &s) != 0)
        return TALLY_ECORRUPT;
    tally__time_format_rfc3339(period_s, when, sizeof when);
    if (d->json) {
        if (dump_json_one(d, &s, when, r) != 0) {
            d->failed = 1;
            return -ENOMEM;
        }
    } else {
        dump_table_one(d, &s, when, r);
    }
    d->n++;
    return 0;
}

static int
run_dump(const ctl_args_t *a)
{
    dump_ctx_t d = {.args = a, .json = ctl_opt_flag(a, "json")};
    const char *ns = ctl_opt_str(a, "ns"), *period = ctl_opt_str(a, "period");
    int64_t from_ms = 0, to_ms = 0;
    int has_from, has_to;
    if (period && strcmp(period, "month") == 0)
        d.monthly = 1;
    else if (period && strcmp(period, "hour") != 0)
        return ctl_usage_error(a, "--period: hour or month, not %s", period);
    if (ctl_opt_time(a, "from", CTL_TIME_START, &from_ms, &has_from) != 0 ||
        ctl_opt_time(a, "to", CTL_TIME_END, &to_ms, &has_to) != 0)
        return CTL_EXIT_USAGE;
    int64_t from = has_from ? from_ms / 1000 : INT64_MIN, to = has_to ? to_ms / 1000 : INT64_MAX;
    tally__config_t *cfg;
    tally__store_t *store;
    tally__catalog_t *catalog = NULL;
    if (ctl_store_open(a, 1, &cfg, &store) != 0)
        return CTL_EXIT_FAIL;
    /* units for the table; without the catalog the numbers are plain counts */
    if (!d.json && tally__catalog_load(cfg->billing.metrics_file, &catalog, NULL, 0) != 0)
        catalog = NULL;
    d.catalog = catalog;
    int rc = tally__store_scan(store, d.monthly ? TALLY_STORE_MONTHLY : TALLY_STORE_HOURLY, ns,
                               ns ? strlen(ns) : 0, from, to, dump_one, &d);
    if (d.json && !d.failed)
        puts(d.n ? "]" : "[]");
    tally__catalog_destroy(catalog);
    tally__store_close(store);
    tally__config_destroy(cfg);
    if (d.failed)
        return CTL_EXIT_FAIL;
    if (rc)
        return ctl_fail(a, "%s", tally_strerror(rc));
    return CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_dump = {
    .name = "dump",
    .summary = "print rollups straight from the store (read-only)",
    .synopsis = "dump [--config FILE] [--ns NS] [--period hour|month] [--from T] [--to T] "
                "[--json]",
    .description = "  Print rollups straight from the store in one read-only transaction, while\n"
                   "  tallyd runs or not. The table shows sums, maxima and last values in the\n"
                   "  metric's unit of the metric catalog (bytes as KiB/MiB/GiB, seconds as\n"
                   "  min/h, counts with thousands separators); --json keeps the raw numbers.\n"
                   "  --from/--to bound the period start, [from, to); a day or month given to\n"
                   "  --to includes that whole day or month.\n",
    .epilog = "TIMES: RFC 3339, unix seconds, 2026-11, 2026-11-05, today, yesterday, now,\n"
              "  -30m, -24h, -7d (UTC).\n",
    .opts = dump_opts,
    .run = run_dump,
};

/* ---- backup, restore, compact ------------------------------------------------ */

/* 1 when dir exists and holds an entry, 0 when it is missing or empty, -1
 * when it cannot be read (errno set). */
static int
dir_nonempty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL)
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return found;
}

static double
mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t
data_size(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The progress line of a backup on a terminal: LMDB's copy gives no
 * callback, so a thread watches the copy grow on disk. */
typedef struct progress {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    const char *dir;
    uint64_t total; /* pages in use when the copy began: the copy is at most that */
    double t0;
} progress_t;

static void
progress_print(progress_t *p, int final)
{
    char done[CTL_FMT_LEN], total[CTL_FMT_LEN];
    uint64_t now = data_size(p->dir);
    ctl_fmt_bytes((double)now, done, sizeof done);
    ctl_fmt_bytes((double)p->total, total, sizeof total);
    if (final)
        fprintf(stderr, "\rtallyctl backup: copied %s in %.1f s%-30s\n", done, mono_s() - p->t0,
                "");
    else
        fprintf(stderr, "\rtallyctl backup: copying, %s of at most %s (%.0f%%), %.0f s ", done,
                total, p->total ? fmin(100.0, 100.0 * (double)now / (double)p->total) : 0.0,
                mono_s() - p->t0);
    fflush(stderr);
}

static void *
progress_main(void *arg)
{
    progress_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
        if (!p->stop)
            progress_print(p, 0);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int
progress_start(progress_t *p, const char *dir, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->dir = dir;
    p->total = total;
    p->t0 = mono_s();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, progress_main, p) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        return -1; /* no progress line; the backup itself goes on */
    }
    return 0;
}

static void
progress_stop(progress_t *p, int ok)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    if (ok)
        progress_print(p, 1);
    else
        fputc('\n', stderr);
}

static const ctl_opt_t backup_opts[] = {
    CTL_OPT_CONFIG,
    {"out", 'o', CTL_ARG, "DIR",
     "the backup directory (created if missing); refused when it exists "
     "and is not empty",
     1},
    {"force", 0, CTL_FLAG, NULL, "write into a non-empty DIR, replacing its data.mdb", 0},
    {"json", 0, CTL_FLAG, NULL, "print {\"out\", \"bytes\", \"seconds\"}", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static int
run_backup(const ctl_args_t *a)
{
    const char *outdir = ctl_opt_str(a, "out");
    int force = ctl_opt_flag(a, "force"), json = ctl_opt_flag(a, "json");
    int ne = dir_nonempty(outdir);
    if (ne < 0)
        return ctl_fail(a, "%s: %s", outdir, strerror(errno));
    if (ne && !force)
        return ctl_fail(a,
                        "%s exists and is not empty; choose a new directory or use --force to "
                        "replace its data.mdb",
                        outdir);
    tally__config_t *cfg;
    tally__store_t *store;
    if (ctl_store_open(a, 1, &cfg, &store) != 0)
        return CTL_EXIT_FAIL;
    if (force) {
        /* LMDB's copy creates data.mdb exclusively: make room */
        char path[4096];
        snprintf(path, sizeof path, "%s/data.mdb", outdir);
        unlink(path);
        snprintf(path, sizeof path, "%s/lock.mdb", outdir);
        unlink(path);
    }
    progress_t prog;
    int show = 0;
    if (ctl_stderr_is_tty()) {
        uint64_t used = 0;
        tally__store_map_info(store, NULL, &used);
        show = progress_start(&prog, outdir, used) == 0;
    }
    double t0 = mono_s();
    int rc = tally__store_backup(store, outdir);
    double secs = mono_s() - t0;
    if (show)
        progress_stop(&prog, rc == 0);
    tally__store_close(store);
    tally__config_destroy(cfg);
    if (rc)
        return ctl_fail(a, "%s: %s", outdir, tally_strerror(rc));
    uint64_t bytes = data_size(outdir);
    if (json)
        return ctl_json_print(a,
                              json_pack("{s:o,s:I,s:f}", "out",
                                        ctl_json_stringn(outdir, strlen(outdir)), "bytes",
                                        (json_int_t)bytes, "seconds", round(secs * 1000) / 1000),
                              JSON_COMPACT | JSON_REAL_PRECISION(12));
    char size[CTL_FMT_LEN];
    printf("backup written to %s (%s in %.1f s)\n", outdir,
           ctl_fmt_bytes((double)bytes, size, sizeof size), secs);
    return CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_backup = {
    .name = "backup",
    .summary = "consistent, compacted copy of the store while tallyd runs",
    .synopsis = "backup [--config FILE] --out DIR [--force] [--json]",
    .description = "  A consistent, compacted copy of the store (LMDB's copy with compaction) in\n"
                   "  DIR/data.mdb, taken from one read snapshot while tallyd keeps running: it\n"
                   "  holds every flush committed when the copy began and nothing after. When\n"
                   "  stderr is a terminal a progress line there shows how much is copied.\n",
    .epilog = "Restore it with 'tallyctl restore --from DIR' while tallyd is stopped.\n"
              "Exit status 0 when written, 1 when refused or failed, 2 for bad usage.\n",
    .opts = backup_opts,
    .run = run_backup,
};

static const ctl_opt_t restore_opts[] = {
    CTL_OPT_CONFIG,
    {"from", 0, CTL_ARG, "DIR", "the backup directory (from tallyctl backup)", 1},
    {"force", 0, CTL_FLAG, NULL, "replace a store that already holds records", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static int
run_restore(const ctl_args_t *a)
{
    const char *from = ctl_opt_str(a, "from");
    tally__config_t *cfg;
    if (ctl_config_load(a, &cfg) != 0)
        return CTL_EXIT_FAIL;
    const char *dir = cfg->storage.dir;
    char size[CTL_FMT_LEN];
    int rc = tally__store_restore(from, dir, ctl_opt_flag(a, "force"));
    if (rc == 0)
        printf("restored %s into %s (%s)\n", from, dir,
               ctl_fmt_bytes((double)data_size(dir), size, sizeof size));
    else if (rc == TALLY_EBUSY)
        ctl_fail(a, "refused: a running tallyd owns %s (%s/tally.lock is locked); stop it first",
                 dir, dir);
    else if (rc == TALLY_EEXISTS)
        ctl_fail(a, "refused: %s already holds a store with records; use --force to replace it",
                 dir);
    else if (rc == -ENOENT)
        ctl_fail(a, "no backup in %s (%s/data.mdb is missing)", from, from);
    else if (rc == TALLY_ECORRUPT)
        ctl_fail(a, "%s is not a tally store of this version; the store in %s is unchanged", from,
                 dir);
    else if (rc == TALLY_EINVAL)
        ctl_fail(a, "--from %s is the store directory itself", from);
    else
        ctl_fail(a, "%s -> %s: %s", from, dir, tally_strerror(rc));
    tally__config_destroy(cfg);
    return rc ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_restore = {
    .name = "restore",
    .summary = "replace the store with a backup (tallyd stopped)",
    .synopsis = "restore [--config FILE] --from DIR [--force]",
    .description =
        "  Replace the store in [storage] dir with the backup in DIR (its data.mdb), with\n"
        "  tallyd stopped. The backup is copied into a temporary directory inside the\n"
        "  store directory, checked to open as a tally store of this version, and renamed\n"
        "  over data.mdb in one step: a crash leaves the old store or the new one.\n"
        "  Refused while a tallyd runs on the store (it holds DIR/tally.lock), and when\n"
        "  the store already holds records, unless --force.\n",
    .epilog = "Exit status 0 when restored, 1 when refused or failed, 2 for bad usage.\n",
    .opts = restore_opts,
    .run = run_restore,
};

static const ctl_opt_t compact_opts[] = {
    CTL_OPT_CONFIG,
    {"out", 'o', CTL_ARG, "DIR",
     "write the compacted copy to DIR/data.mdb (DIR missing or empty) "
     "and leave the store alone",
     0},
    {"json", 0, CTL_FLAG, NULL, "print {\"dir\", \"out\", \"bytes_before\", \"bytes_after\"}", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static int
run_compact(const ctl_args_t *a)
{
    const char *outdir = ctl_opt_str(a, "out");
    if (outdir) {
        int ne = dir_nonempty(outdir);
        if (ne != 0)
            return ctl_fail(a, "%s: %s", outdir,
                            ne < 0 ? strerror(errno) : "exists and is not empty");
    }
    tally__config_t *cfg;
    if (ctl_config_load(a, &cfg) != 0)
        return CTL_EXIT_FAIL;
    const char *dir = cfg->storage.dir;
    uint64_t before = 0, after = 0;
    int status = CTL_EXIT_FAIL;
    int rc = tally__store_compact(dir, outdir, &before, &after);
    if (rc == 0 && ctl_opt_flag(a, "json")) {
        status = ctl_json_print(
            a,
            json_pack("{s:o,s:o,s:I,s:I}", "dir", ctl_json_stringn(dir, strlen(dir)), "out",
                      outdir ? ctl_json_stringn(outdir, strlen(outdir)) : json_null(),
                      "bytes_before", (json_int_t)before, "bytes_after", (json_int_t)after),
            JSON_COMPACT);
    } else if (rc == 0) {
        char b[CTL_FMT_LEN], f[CTL_FMT_LEN];
        printf("compacted %s%s%s: %s -> %s\n", dir, outdir ? " into " : "", outdir ? outdir : "",
               ctl_fmt_bytes((double)before, b, sizeof b),
               ctl_fmt_bytes((double)after, f, sizeof f));
        status = CTL_EXIT_OK;
    } else if (rc == TALLY_EBUSY) {
        ctl_fail(a,
                 "refused: a running tallyd owns %s (%s/tally.lock is locked); stop it first, or "
                 "use tallyctl backup, which works online",
                 dir, dir);
    } else if (rc == -ENOENT) {
        ctl_fail(a, "no store in %s", dir);
    } else {
        ctl_fail(a, "%s: %s", dir, tally_strerror(rc));
    }
    tally__config_destroy(cfg);
    return status;
}

const ctl_cmd_t ctl_cmd_compact = {
    .name = "compact",
    .summary = "compact the store offline (tallyd stopped)",
    .synopsis = "compact [--config FILE] [--out DIR] [--json]",
    .description = "  Offline compaction, with tallyd stopped (refused while it runs): writes a\n"
                   "  compacted copy of the store (free pages dropped) and renames it over\n"
                   "  [storage] dir/data.mdb in one step, or with --out writes it to DIR/data.mdb\n"
                   "  and leaves the store alone.\n",
    .epilog = "Exit status 0 when compacted, 1 when refused or failed, 2 for bad usage.\n",
    .opts = compact_opts,
    .run = run_compact,
};

/* ---- check ------------------------------------------------------------------- */

static const ctl_opt_t check_opts[] = {
    CTL_OPT_CONFIG,
    {"dir", 'd', CTL_ARG, "DIR", "the store in DIR instead of the configuration's [storage] dir",
     0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static int
run_check(const ctl_args_t *a)
{
    const char *dir = ctl_opt_str(a, "dir");
    if (dir && ctl_opt_str(a, "config"))
        return ctl_usage_error(a, "--dir and --config name two stores; give one");
    tally__config_t *cfg = NULL;
    if (!dir) {
        if (ctl_config_load(a, &cfg) != 0)
            return CTL_EXIT_FAIL;
        dir = cfg->storage.dir;
    }
    int rc = tally__store_check(dir, stdout);
    tally__config_destroy(cfg);
    return rc ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_check = {
    .name = "check",
    .summary = "verify a store's pages and records, read-only",
    .synopsis = "check [--config FILE | --dir DIR]",
    .description =
        "  Verify a store read-only: every page of data.mdb, every record's format,\n"
        "  and data.mdb against DIR/tally.id. Prints one line per finding (DAMAGE,\n"
        "  note, ok) and a result line. Safe while tallyd runs (one read snapshot).\n",
    .epilog = "Exit status 0 when sound, 1 when damaged or not checkable, 2 for bad usage.\n",
    .opts = check_opts,
    .run = run_check,
};
