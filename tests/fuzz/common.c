/* common.c — shared helpers of the libFuzzer harnesses: temp files, a daemon context, raw HTTP
 * through the daemon's own request parser. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "httpreq.h"
#include "log.h"
#include "rollup.h"
#include "timeutil.h"

#ifndef TALLY_FUZZ_SOURCE_DIR
#define TALLY_FUZZ_SOURCE_DIR "."
#endif

static char tmpdir[256];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void fuzz_ctx_free(void);

static void
cleanup(void)
{
    fuzz_ctx_free();
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
fuzz_tmpdir(void)
{
    if (tmpdir[0])
        return tmpdir;
    /* tests/fuzz.sh hands one base to all runs and removes it after them,
     * crashed runs included (their atexit() never runs) */
    const char *base = getenv("TALLY_FUZZ_TMPDIR");
    if (!base || !base[0])
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/tally-fuzz-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(cleanup);
    return tmpdir;
}

const char *
fuzz_write_file(const char *name, const uint8_t *data, size_t size)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ & 7];
    snprintf(path, 512, "%s/%s", fuzz_tmpdir(), name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) {
        perror("fuzz: write temp file");
        abort();
    }
    return path;
}

const char *
fuzz_src(const char *rel, char *buf, size_t cap)
{
    const char *root = getenv("TALLY_SOURCE_DIR");
    snprintf(buf, cap, "%s/%s", root && root[0] ? root : TALLY_FUZZ_SOURCE_DIR, rel);
    return buf;
}

int
fuzz_ini_known_bug(const uint8_t *data, size_t size)
{
    /* both INI bugs the fuzzer found are fixed (lib/config.c); inputs that
     * hit them are replayed from tests/fuzz/regressions/ */
    (void)data;
    (void)size;
    return 0;
}

/* ---- context ---------------------------------------------------------------- */

static tally_ctx_t ctx;
static tally__config_t *cfg;
static tally__catalog_t *catalog;
static tally__plans_t *plans;
static tally__store_t *store;
static tally__tokens_t *tokens;
static int ctx_ready;

static void
fuzz_ctx_free(void)
{
    if (!ctx_ready)
        return;
    tally__store_close(store);
    tally__plans_destroy(plans);
    tally__catalog_destroy(catalog);
    tally__tokens_destroy(tokens);
    tally__config_destroy(cfg);
    ctx_ready = 0;
}

static void
die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, err);
    abort();
}

/* A little usage, so the usage, pricing and hourly routes render items:
 * demo/http_requests (object x) and shop/vcpu_seconds in January 2024 and now. */
static void
seed_store(tally__store_t *s)
{
    static const struct {
        const char *ns, *metric, *object;
        int is_float;
    } series[] = {{"demo", "http_requests", "x", 0}, {"shop", "vcpu_seconds", NULL, 1}};
    int64_t now_h = (int64_t)time(NULL) / 3600 * 3600;
    const int64_t hours[] = {1704067200, 1704067200 + 3600, 1704067200 + 7200, now_h - 3600};
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++) {
        for (size_t h = 0; h < sizeof hours / sizeof hours[0]; h++) {
            tally_label_t lab[3] = {{"object", series[i].object},
                                    {"deployment", "web"},
                                    {"container", "nginx"}};
            char key[TALLY_SERIES_KEY_MAX];
            size_t klen = series[i].object
                              ? tally__series_key(key, series[i].ns, strlen(series[i].ns),
                                                  series[i].metric, strlen(series[i].metric), lab, 3)
                              : tally__series_key(key, series[i].ns, strlen(series[i].ns),
                                                  series[i].metric, strlen(series[i].metric),
                                                  lab + 1, 2);
            tally__rollup_t r;
            tally__rollup_init(&r);
            tally__rollup_add(&r, series[i].is_float, 7, 2.5, (hours[h] + 1) * 1000);
            tally__rollup_add(&r, series[i].is_float, 5, 0.25, (hours[h] + 2) * 1000);
            tally__store_put_t hp = {key, (uint32_t)klen, hours[h], &r, 1};
            tally__store_put_t mp = {key, (uint32_t)klen, tally__time_month_start(hours[h]), &r, 0};
            if (tally__store_commit(s, &hp, 1, &mp, 1, NULL, 0) != 0)
                die("store", "cannot seed usage");
        }
    }
}

tally_ctx_t *
fuzz_ctx(void)
{
    if (ctx_ready)
        return &ctx;
    char err[512], metrics[512], plansf[512];
    const char *dir = fuzz_tmpdir();
    static const char tok[] = "fuzz-admin  admin  *     plain:fuzz-admin-token\n"
                              "fuzz-editor editor demo  plain:fuzz-editor-token\n"
                              "fuzz-viewer viewer demo  plain:fuzz-viewer-token\n";
    const char *tokens_path = fuzz_write_file("ctx-tokens", (const uint8_t *)tok, sizeof tok - 1);
    char conf[2048];
    /* organization: the plan with the highest api_limits, so 429s stay rare;
     * rate_per_token 0: unlimited; log level error: quiet */
    int n = snprintf(conf, sizeof conf,
                     "[storage]\ndir = %s/store\nmap_size_mb = 64\n"
                     "[ingest]\nlisten = inproc://fuzz-in\nacks = inproc://fuzz-acks\n"
                     "[http]\nrate_per_token = 0\n"
                     "[auth]\ntokens_file = %s\n"
                     "[billing]\nplans_file = %s\nmetrics_file = %s\ndefault_plan = organization\n"
                     "[quota]\nalerts = inproc://fuzz-alerts\n"
                     "[log]\nlevel = error\n",
                     dir, tokens_path, fuzz_src("config/plans.ini", plansf, sizeof plansf),
                     fuzz_src("config/metrics.ini", metrics, sizeof metrics));
    const char *conf_path = fuzz_write_file("ctx-tallyd.conf", (const uint8_t *)conf, (size_t)n);
    if (tally__config_load(conf_path, &cfg, err, sizeof err) != 0)
        die("config", err);
    tally__log_set_level(cfg->log.level);
    if (tally__catalog_load(cfg->billing.metrics_file, &catalog, err, sizeof err) != 0)
        die("metrics catalog", err);
    if (tally__tokens_load(cfg->auth.tokens_file, &tokens, err, sizeof err) != 0)
        die("tokens", err);
    if (tally__plans_load(cfg->billing.plans_file, catalog, &plans, err, sizeof err) != 0)
        die("plans", err);
    int rc = tally__store_open(cfg->storage.dir, cfg->storage.map_size_mb << 20, 0, &store);
    if (rc != 0)
        die("store", "cannot open");
    seed_store(store);
    ctx.cfg = cfg;
    ctx.catalog = catalog;
    ctx.plans = plans;
    ctx.store = store;
    ctx.tokens = tokens;
    ctx.http = NULL;
    ctx.started_ms = 0;
    ctx_ready = 1;
    return &ctx;
}

void
fuzz_trace(const char *path, const tally_http_res_t *res)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("TALLY_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "fuzz: %d %s %.300s\n", res->status, path,
                res->body && res->body_len ? res->body : "");
}

/* ---- HTTP: the daemon's own request parser (daemon/httpreq.c) ------------ */

typedef struct feed {
    tally_ctx_t *ctx;
    int dispatched;
} feed_t;

static int
fuzz_request(void *owner, tally_http_req_t *req, tally_http_res_t *res, int keep_alive)
{
    feed_t *f = owner;
    req->remote = "fuzz";
    if (!res->status) {
        tally_routes_dispatch(f->ctx, req, res);
        f->dispatched++;
        fuzz_trace(req->path, res);
    }
    /* what send_response() relies on: a status and a body of body_len bytes */
    if (res->status < 100 || res->status > 599 || (res->body_len && !res->body))
        abort();
    if (res->body_len) {
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < res->body_len; i++)
            sink ^= (unsigned char)res->body[i];
        (void)sink;
    }
    return keep_alive;
}

int
fuzz_http_feed(tally_ctx_t *c, const uint8_t *data, size_t size)
{
    static const tally_http_limits_t lim = {.max_header_bytes = 8192,
                                            .max_headers = 64,
                                            .max_body_bytes = 1u << 20,
                                            .max_connections = 1,
                                            .idle_timeout_ms = 1000,
                                            .request_timeout_ms = 1000};
    static const tally__httpreq_hooks_t hooks = {NULL, NULL, fuzz_request};
    feed_t f = {.ctx = c};
    tally__httpreq_t r;
    tally__httpreq_init(&r, &lim, &hooks, &f);
    int rc = tally__httpreq_feed(&r, (const char *)data, size);
    /* a refusal names a status the server would answer with */
    if (rc == TALLY__HTTPREQ_REFUSE && (r.error_status < 400 || r.error_status > 599 ||
                                         !r.error_code || !r.error_msg))
        abort();
    tally__httpreq_free(&r);
    return f.dispatched;
}
