/* tallyd.c — the tally daemon: configuration, wiring of store, ingest and aggregator, signals,
 * readiness. */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>
#include <uv.h>

#include "aggregator.h"
#include "alerts.h"
#include "invoicer.h"
#include "auth.h"
#include "http.h"
#include "plans.h"
#include "routes.h"
#include "timeutil.h"
#include "catalog.h"
#include "config.h"
#include "ingest.h"
#include "pipeline.h"
#include "log.h"
#include "ring.h"
#include "stats.h"
#include "store.h"
#include "strtab.h"

typedef struct daemon {
    uv_loop_t *loop;
    tally__config_t *cfg;
    tally__catalog_t *catalog;
    tally__store_t *store;
    tally__strtab_t *series;
    tally__ring_t *work, *free_ring, *http_done;
    tally_aggregator_t *aggregator;
    tally_ingest_t *ingest; /* atomic: read by the aggregator thread */
    tally__tokens_t *tokens;
    tally__plans_t *plans;
    tally_http_server_t *http;
    tally_alerts_t *alerts;
    tally_invoicer_t *invoicer;
    tally_ctx_t ctx;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t watchdog; /* initialised only when systemd asked for pings */
    int watchdog_on;
    uv_async_t done;
    int final_status;
    int stopping;
    const char *config_path;
} daemon_t;

static void
usage(FILE *fp)
{
    fprintf(fp,
            "usage: tallyd [--config FILE] [--check-config] [--accept-empty-store] [--version]\n"
            "  -c, --config FILE   configuration file (INI); without it, built-in defaults\n"
            "                      and TALLY_SECTION_KEY environment overrides apply\n"
            "  -t, --check-config  load and validate the configuration and catalogs, then exit\n"
            "      --accept-empty-store\n"
            "                      start a new, empty store although [storage] dir/tally.id\n"
            "                      says the store held data and data.mdb is missing or empty\n"
            "                      (without it tallyd refuses; see tallyd(8), STORE INTEGRITY)\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          this text\n");
}

/* ipc:// endpoints need their directory. */
static void
make_ipc_dirs(char **eps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strncmp(eps[i], "ipc://", 6) != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s", eps[i] + 6);
        char *slash = strrchr(path, '/');
        if (!slash || slash == path)
            continue;
        *slash = '\0';
        for (char *p = path + 1; *p; p++) {
            if (*p == '/') {
                *p = '\0';
                mkdir(path, 0755);
                *p = '/';
            }
        }
        mkdir(path, 0755);
    }
}

static void
on_space(void *ctx)
{
    daemon_t *d = ctx;
    tally_ingest_t *in = __atomic_load_n(&d->ingest, __ATOMIC_ACQUIRE);
    if (in)
        tally_ingest_wake(in);
}

/* The HTTP door's done ring holds every request waiting for its commit: a
 * connection has at most one (it reads no further request meanwhile), and
 * ingest refuses more than the ring holds. A power of two above both the
 * ring size and the connection limit. */
static uint32_t
http_done_size(const tally__config_t *cfg)
{
    uint32_t want = cfg->http.max_connections + 1, n = cfg->ingest.ring_size;
    while (n < want && n < (1u << 24))
        n *= 2;
    return n;
}

static void
on_http_done(void *ctx)
{
    daemon_t *d = ctx;
    tally_ingest_t *in = __atomic_load_n(&d->ingest, __ATOMIC_ACQUIRE);
    if (in)
        tally_ingest_http_wake(in);
}

static void
on_aggregator_done(void *ctx, int status)
{
    daemon_t *d = ctx;
    d->final_status = status;
    uv_async_send(&d->done);
}

static void
on_done(uv_async_t *h)
{
    daemon_t *d = h->data;
    tally_aggregator_join(d->aggregator);
    d->aggregator = NULL;
    tally_ingest_close(d->ingest);
    tally_alerts_close(d->alerts);
    d->alerts = NULL;
    tally_invoicer_close(d->invoicer);
    d->invoicer = NULL;
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    if (d->watchdog_on)
        uv_close((uv_handle_t *)&d->watchdog, NULL);
    uv_close((uv_handle_t *)&d->done, NULL);
}

/* WatchdogSec=: ping from the main loop, so a wedged loop gets restarted. */
static void
on_watchdog(uv_timer_t *h)
{
    (void)h;
    sd_notify(0, "WATCHDOG=1");
}

/* SIGHUP: re-read the configuration and apply what can change while
 * running: the log level and the store's map size limits (raising them is
 * how an operator lets a full store take data again). Everything else
 * needs a restart; the running configuration stays as it was. */
static void
reload(daemon_t *d)
{
    char err[1024];
    tally__config_t *ncfg;
    int rc = tally__config_load(d->config_path, &ncfg, err, sizeof err);
    if (rc) {
        tally__log_error("reload failed; keeping the running configuration err=\"%s\"", err);
        return;
    }
    tally__log_set_level(ncfg->log.level);
    uint64_t size, used, want = ncfg->storage.map_size_mb << 20;
    tally__store_map_info(d->store, &size, &used);
    if (want > size) {
        rc = tally__store_grow(d->store, want);
        tally__log_info("reload: map size map_size_bytes=%llu err=\"%s\"", (unsigned long long)want,
                        tally_strerror(rc));
        if (rc == 0)
            TALLY_STAT_SET(map_size, want);
    }
    if (d->aggregator)
        tally_aggregator_set_map_max(d->aggregator, ncfg->storage.map_max_mb << 20);
    /* tokens: a bad file keeps the old tokens; connections stay open */
    tally__tokens_t *nt;
    if (tally__tokens_load(d->cfg->auth.tokens_file, &nt, err, sizeof err) == 0) {
        tally__tokens_destroy(d->tokens);
        d->tokens = nt;
        d->ctx.tokens = nt;
        tally__log_info("reload: tokens file=%s tokens=%zu", d->cfg->auth.tokens_file,
                        tally__tokens_count(nt));
    } else {
        tally__log_error("reload: keeping the previous tokens err=\"%s\"", err);
    }
    tally__log_info("reloaded config=%s", d->config_path ? d->config_path : "(defaults)");
    tally__config_destroy(ncfg);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    daemon_t *d = h->data;
    if (signum == SIGHUP) {
        reload(d);
        return;
    }
    if (d->stopping)
        return;
    d->stopping = 1;
    tally__log_info("stopping signal=%s; draining and committing", strsignal(signum));
    sd_notify(0, "STOPPING=1");
    if (d->http) {
        tally_http_close(d->http);
        d->http = NULL;
        d->ctx.http = NULL;
    }
    tally_alerts_close(d->alerts);
    d->alerts = NULL;
    tally_invoicer_close(d->invoicer);
    d->invoicer = NULL;
    tally_ingest_stop(d->ingest);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"check-config", no_argument, NULL, 't'},
                                             {"accept-empty-store", no_argument, NULL, 'E'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    int check = 0, accept_empty = 0, opt, rc, status = 1;
    char err[1024];
    daemon_t d;
    memset(&d, 0, sizeof d);
    /* Large buffers that live for one flush or one request (a commit's
     * month diffs, scan maps) go back to the kernel when freed. glibc's
     * default raises this threshold to the size of each large block freed,
     * after which such buffers come from the heap and stay resident at
     * the size of the largest one: a fixed threshold stops that. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'E':
            accept_empty = 1;
            break;
        case 'V':
            printf("tallyd %s\n", TALLY_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    d.config_path = config_path;
    if (tally__config_load(config_path, &d.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return 1;
    }
    tally__log_set_level(d.cfg->log.level);
    if (tally__catalog_load(d.cfg->billing.metrics_file, &d.catalog, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        goto out;
    }
    if (tally__tokens_load(d.cfg->auth.tokens_file, &d.tokens, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        goto out;
    }
    if (tally__plans_load(d.cfg->billing.plans_file, d.catalog, &d.plans, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        goto out;
    }
    if (!tally__plans_find(d.plans, d.cfg->billing.default_plan)) {
        fprintf(stderr, "tallyd: [billing] default_plan: no plan '%s' in %s\n",
                d.cfg->billing.default_plan, d.cfg->billing.plans_file);
        goto out;
    }
    if (check) {
        printf("tallyd: configuration ok (%s; %zu metrics in %s; %zu plans in %s; %zu tokens in "
               "%s)\n",
               d.cfg->path ? d.cfg->path : "built-in defaults", tally__catalog_count(d.catalog),
               d.cfg->billing.metrics_file, tally__plans_count(d.plans), d.cfg->billing.plans_file,
               tally__tokens_count(d.tokens), d.cfg->auth.tokens_file);
        status = 0;
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    /* a store file reaching RLIMIT_FSIZE is an error to report (EFBIG),
     * not a reason to die */
    signal(SIGXFSZ, SIG_IGN);
    /* connections are bounded by http.max_connections, not by a low
     * default descriptor limit */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    make_ipc_dirs(d.cfg->ingest.listen, d.cfg->ingest.nlisten);
    make_ipc_dirs(d.cfg->ingest.acks, d.cfg->ingest.nacks);
    if ((rc = tally__store_open_ex(d.cfg->storage.dir, d.cfg->storage.map_size_mb << 20,
                                   (d.cfg->storage.writemap ? TALLY_STORE_WRITEMAP : 0u) |
                                       (accept_empty ? TALLY_STORE_ACCEPT_EMPTY : 0u),
                                   &d.store)) != 0) {
        tally__log_error("cannot open the store dir=%s err=\"%s\"", d.cfg->storage.dir,
                         tally_strerror(rc));
        goto out;
    }
    if (tally__strtab_create(&d.series) != 0)
        goto out;
    if ((rc = tally__ring_create(d.cfg->ingest.ring_size, &d.work)) != 0 ||
        (rc = tally__ring_create(d.cfg->ingest.ring_size, &d.free_ring)) != 0 ||
        (rc = tally__ring_create(http_done_size(d.cfg), &d.http_done)) != 0) {
        tally__log_error("cannot create rings ring_size=%u err=\"%s\"", d.cfg->ingest.ring_size,
                         tally_strerror(rc));
        goto out;
    }
    d.loop = uv_default_loop();
    uv_async_init(d.loop, &d.done, on_done);
    d.done.data = &d;
    uint64_t map_max = d.cfg->storage.map_max_mb << 20;
    tally_aggregator_opts_t ao = {
        .store = d.store,
        .series = d.series,
        .work = d.work,
        .free_ring = d.free_ring,
        .interval_ms = d.cfg->flush.interval_ms,
        .map_max_bytes = map_max,
        .hourly_retention_days = d.cfg->storage.hourly_retention_days,
        .acks = d.cfg->ingest.acks,
        .nacks = d.cfg->ingest.nacks,
        .on_space = on_space,
        .on_done = on_aggregator_done,
        .http_done = d.http_done,
        .on_http_done = on_http_done,
        .http_dedup_hours = d.cfg->ingest.http_dedup_hours,
        .http_dedup_max_events = d.cfg->ingest.http_dedup_max_events,
        .ctx = &d,
    };
    tally_stats_usage_limit(d.cfg->http.metrics_max_series);
    if ((rc = tally_aggregator_start(&ao, &d.aggregator)) != 0) {
        tally__log_error("cannot start the aggregator err=\"%s\"", tally_strerror(rc));
        uv_close((uv_handle_t *)&d.done, NULL);
        uv_run(d.loop, UV_RUN_DEFAULT);
        goto out;
    }
    tally_ingest_opts_t io = {
        .loop = d.loop,
        .cfg = d.cfg,
        .catalog = d.catalog,
        .series = d.series,
        .work = d.work,
        .free_ring = d.free_ring,
        .aggregator = d.aggregator,
        .tokens = &d.tokens,
        .store = d.store,
        .http_done = d.http_done,
        .http_answer = tally_route_events_answer,
        .http_ctx = &d.ctx,
    };
    tally_ingest_t *in;
    if ((rc = tally_ingest_start(&io, &in)) != 0) {
        tally__log_error("cannot start ingest err=\"%s\"", tally_strerror(rc));
        /* tell the aggregator to stop through a shutdown block of our own */
        static tally_block_t stop = {.kind = TALLY_BLOCK_SHUTDOWN};
        tally_block_t *b = calloc(1, sizeof *b);
        *b = stop;
        while (!tally__ring_push(d.work, b))
            ;
        tally_aggregator_notify(d.aggregator);
        tally_aggregator_join(d.aggregator);
        uv_close((uv_handle_t *)&d.done, NULL);
        uv_run(d.loop, UV_RUN_DEFAULT);
        goto out;
    }
    __atomic_store_n(&d.ingest, in, __ATOMIC_RELEASE);
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    uv_signal_init(d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sighup, on_signal, SIGHUP);
    d.ctx = (tally_ctx_t){.cfg = d.cfg,
                          .catalog = d.catalog,
                          .plans = d.plans,
                          .store = d.store,
                          .tokens = d.tokens,
                          .ingest = in,
                          .started_ms = tally__time_now_ms()};
    tally_http_limits_t lim = {
        .max_header_bytes = d.cfg->http.max_header_bytes,
        .max_headers = d.cfg->http.max_headers,
        .max_body_bytes = d.cfg->http.max_body_bytes,
        .max_connections = d.cfg->http.max_connections,
        .idle_timeout_ms = d.cfg->http.idle_timeout_ms,
        .request_timeout_ms = d.cfg->http.request_timeout_ms,
        .pending_timeout_ms = d.cfg->http.pending_timeout_ms,
        .max_connections_per_address = d.cfg->http.max_connections_per_address,
    };
    if (tally_http_start(d.loop, d.cfg->http.host, d.cfg->http.port, &lim, tally_routes_dispatch,
                         &d.ctx, d.cfg->log.requests, &d.http) != 0) {
        d.stopping = 1;
        tally_ingest_stop(in); /* the aggregator flushes and the loop ends */
        uv_run(d.loop, UV_RUN_DEFAULT);
        status = 1;
        goto out;
    }
    d.ctx.http = d.http;
    tally_http_set_observer(d.http, tally_routes_observe);
    make_ipc_dirs(&d.cfg->quota.alerts, 1);
    tally_alerts_opts_t alo = {
        .loop = d.loop, .cfg = d.cfg, .catalog = d.catalog, .plans = d.plans, .store = d.store};
    if ((rc = tally_alerts_start(&alo, &d.alerts)) != 0)
        tally__log_error("quota alerts disabled: cannot start the alerter endpoint=%s err=\"%s\"",
                         d.cfg->quota.alerts, tally_strerror(rc));
    tally_invoicer_opts_t ivo = {
        .loop = d.loop, .cfg = d.cfg, .catalog = d.catalog, .plans = d.plans, .store = d.store};
    if ((rc = tally_invoicer_start(&ivo, &d.invoicer)) != 0)
        tally__log_error("invoices will not close by themselves err=\"%s\"", tally_strerror(rc));
    {
        uint64_t size, used;
        tally__store_map_info(d.store, &size, &used);
        TALLY_STAT_SET(map_size, size);
        TALLY_STAT_SET(map_used, used);
        char eps[1024] = "";
        for (size_t i = 0; i < d.cfg->ingest.nlisten; i++)
            snprintf(eps + strlen(eps), sizeof eps - strlen(eps), "%s%s", i ? "," : "",
                     d.cfg->ingest.listen[i]);
        tally__log_info("ready version=%s ingest=%s http=%s:%u store=%s store_writes=%s "
                        "producers=%u flush_ms=%u tokens=%zu",
                        TALLY_VERSION, eps, d.cfg->http.host, tally_http_port(d.http),
                        d.cfg->storage.dir, tally__store_writemap(d.store) ? "map" : "copy",
                        (unsigned)TALLY_STAT_GET(producers), d.cfg->flush.interval_ms,
                        tally__tokens_count(d.tokens));
    }
    uint64_t wd_usec;
    if (sd_watchdog_enabled(0, &wd_usec) > 0) {
        uint64_t every_ms = wd_usec / 2000 ? wd_usec / 2000 : 1;
        uv_timer_init(d.loop, &d.watchdog);
        d.watchdog.data = &d;
        uv_timer_start(&d.watchdog, on_watchdog, every_ms, every_ms);
        d.watchdog_on = 1;
    }
    sd_notify(0, "READY=1");
    uv_run(d.loop, UV_RUN_DEFAULT);
    status = d.final_status == 0 ? 0 : 1;
    tally__log_info("stopped status=%d events_committed=%llu flushes=%llu flush_max_us=%llu "
                    "series=%llu duplicates=%llu",
                    status, (unsigned long long)TALLY_STAT_GET(events_committed),
                    (unsigned long long)TALLY_STAT_GET(flushes),
                    (unsigned long long)TALLY_STAT_GET(flush_max_us),
                    (unsigned long long)TALLY_STAT_GET(series),
                    (unsigned long long)TALLY_STAT_GET(duplicates));
out:
    if (d.loop)
        uv_loop_close(d.loop);
    tally__ring_destroy(d.work);
    tally__ring_destroy(d.free_ring);
    tally__ring_destroy(d.http_done);
    tally_routes_release(&d.ctx);
    tally_stats_usage_reset(); /* the aggregator is gone: free tally_usage_total's pairs */
    tally__strtab_destroy(d.series);
    tally__store_close(d.store);
    tally__catalog_destroy(d.catalog);
    tally__tokens_destroy(d.tokens);
    tally__plans_destroy(d.plans);
    tally__config_destroy(d.cfg);
    return status;
}
