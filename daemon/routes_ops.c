/* routes_ops.c — operations endpoints: /metrics (Prometheus text 0.0.4), /healthz, /openapi.json */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "auth.h"
#include "catalog.h"
#include "codec.h"
#include "prom.h"
#include "routes.h"
#include "stats.h"
#include "timeutil.h"

extern const char tally_openapi_json[];
extern const size_t tally_openapi_json_len;

#define G(name) TALLY_STAT_GET(name)

/* A family with one unlabelled sample. HELP, TYPE and the sample's name are
 * one string literal, so a family costs one memcpy and the digits of its
 * value; the exposition is rendered on every scrape, never cached, so it must
 * be this cheap (see "Performance → HTTP" in README.md). */
#define FAMILY(name, type, help) "# HELP " name " " help "\n# TYPE " name " " type "\n"
#define COUNTER(p, name, help, v)                                                                  \
    do {                                                                                           \
        TALLY_PROM_RAW(p, FAMILY(name, "counter", help) name " ");                                 \
        tally_prom_end_u64(p, v);                                                                  \
    } while (0)
#define GAUGE(p, name, help, v)                                                                    \
    do {                                                                                           \
        TALLY_PROM_RAW(p, FAMILY(name, "gauge", help) name " ");                                   \
        tally_prom_end_u64(p, v);                                                                  \
    } while (0)

/* Bucket bounds of tally_flush_duration_seconds as the tail of a sample's
 * labels; tally_stats_flush_observe() counts with the same bounds. */
#define LE(b) "tally_flush_duration_seconds_bucket{le=\"" b "\"} "
#define LIT(s) s, sizeof(s) - 1
static const struct {
    const char *s;
    size_t n;
} flush_le[12] = {{LIT(LE("0.001"))}, {LIT(LE("0.0025"))}, {LIT(LE("0.005"))}, {LIT(LE("0.01"))},
                  {LIT(LE("0.025"))}, {LIT(LE("0.05"))},   {LIT(LE("0.1"))},   {LIT(LE("0.25"))},
                  {LIT(LE("0.5"))},   {LIT(LE("1"))},      {LIT(LE("2.5"))},   {LIT(LE("+Inf"))}};
#undef LIT
#undef LE
_Static_assert(sizeof flush_le / sizeof flush_le[0] ==
                   sizeof tally_stats.flush_buckets / sizeof tally_stats.flush_buckets[0],
               "one label per flush bucket");

static void
rejected(tally_prom_t *p)
{
    TALLY_PROM_RAW(p, FAMILY("tally_ingest_rejected_total", "counter",
                             "Batches or events rejected, by reason. oversize counts messages "
                             "of up to twice ingest.max_message_bytes; nanomsg drops larger "
                             "ones, with their connection, before tallyd can see them."));
    /* every reason, even at 0: a counter that appears only at its first
     * increment hides that increment from rate() and increase() */
    for (int r = 0; r < TALLY_PROTO_REJECT_COUNT; r++) {
        const char *name = tally__reject_name(r);
        TALLY_PROM_RAW(p, "tally_ingest_rejected_total{reason=\"");
        tally_prom_raw(p, name, strlen(name));
        TALLY_PROM_RAW(p, "\"} ");
        tally_prom_end_u64(p, G(rejected[r]));
    }
}

static void
flush_histogram(tally_prom_t *p)
{
    TALLY_PROM_RAW(p, FAMILY("tally_flush_duration_seconds", "histogram",
                             "Time to prepare and commit one flush."));
    uint64_t cum = 0;
    for (int i = 0; i < 12; i++) {
        cum += G(flush_buckets[i]);
        tally_prom_raw(p, flush_le[i].s, flush_le[i].n);
        tally_prom_end_u64(p, cum);
    }
    TALLY_PROM_RAW(p, "tally_flush_duration_seconds_sum ");
    tally_prom_end_fixed(p, G(flush_sum_us), 6);
    TALLY_PROM_RAW(p, "tally_flush_duration_seconds_count ");
    tally_prom_end_u64(p, cum);
}

/* What usage_line() writes to, and whom for. */
typedef struct usage_scrape {
    tally_prom_t *p;
    const tally__token_t *viewer;
    const tally__catalog_t *catalog;
} usage_scrape_t;

/* One tally_usage_total sample, when the viewer may read its namespace and
 * its metric adds up (sum: the values; count: the events). */
static void
usage_line(void *vctx, const tally_stats_usage_t *u)
{
    usage_scrape_t *us = vctx;
    if (!tally__token_allows(us->viewer, u->ns, TALLY_ACCESS_READ))
        return;
    /* a metric the catalog does not know is counted as a sum (ingest's rule) */
    const tally__metric_def_t *def = tally__catalog_find(us->catalog, u->metric);
    tally__agg_t agg = def ? def->aggregation : TALLY_AGG_SUM;
    if (agg != TALLY_AGG_SUM && agg != TALLY_AGG_COUNT)
        return; /* max and last are gauges: no total */
    TALLY_PROM_RAW(us->p, "tally_usage_total{namespace=\"");
    tally_prom_label_value(us->p, u->ns);
    TALLY_PROM_RAW(us->p, "\",metric=\"");
    tally_prom_label_value(us->p, u->metric);
    TALLY_PROM_RAW(us->p, "\"} ");
    if (agg == TALLY_AGG_COUNT)
        tally_prom_end_u64(us->p, u->count);
    else if (!u->is_float && u->sum_i >= 0)
        tally_prom_end_u64(us->p, (uint64_t)u->sum_i); /* exact beyond 2^53 */
    else
        tally_prom_end_double(us->p, (double)u->sum_i + u->sum_f);
}

static void
usage_totals(tally_prom_t *p, const tally__token_t *viewer, const tally__catalog_t *catalog)
{
    TALLY_PROM_RAW(
        p, FAMILY("tally_usage_total", "counter",
                  "Usage committed since tallyd started, by namespace and metric: the sum of "
                  "the values of a sum metric, the events of a count metric (max and last "
                  "metrics have no total). Per-namespace: shown only to a scrape with an API "
                  "token (Authorization: APIToken ...) that may read the namespace. At most "
                  "http.metrics_max_series pairs, the first seen."));
    /* no token allows nothing: the walk is skipped, not filtered */
    usage_scrape_t us = {p, viewer, catalog};
    if (viewer)
        tally_stats_usage_each(usage_line, &us);
    GAUGE(p, "tally_usage_series",
          "(namespace, metric) pairs tracked for tally_usage_total (all of them, whatever the "
          "scrape may see).",
          G(usage_pairs));
    COUNTER(p, "tally_usage_dropped_events_total",
            "Committed events not in tally_usage_total: their (namespace, metric) pair came "
            "after http.metrics_max_series pairs.",
            G(usage_dropped_events));
}

/* The process_* families, rendered at most once a second and copied in
 * between: reading /proc costs several system calls (about 70 us here,
 * against a few us for the rest of a scrape), and Prometheus scrapes every
 * few seconds at most. Loop thread only. */
static void
process_metrics(tally_prom_t *p)
{
    static char *text;
    static size_t len;
    static int64_t at_ms;
    int64_t now = tally__time_mono_ms();
    if (!text || now - at_ms >= 1000) {
        tally_prom_t q;
        tally_prom_init(&q);
        tally_prom_process(&q, "/proc/self");
        size_t n;
        char *t = tally_prom_take(&q, &n);
        if (t) { /* out of memory: the previous text serves */
            free(text);
            text = t;
            len = n;
            at_ms = now;
        }
    }
    if (text)
        tally_prom_raw(p, text, len);
}

/*
 * /metrics is an open route (routes.h): the process and daemon figures are
 * public, like /healthz. Series labelled by namespace
 * (tally_quota_utilization_ratio, tally_usage_total) tell one namespace's
 * usage, so they are shown only to a scrape that carries an API token
 * allowed to read that namespace (`Authorization: APIToken ...`; `*` sees
 * all). No token, or one that is not a valid API token, is an anonymous
 * scrape: never a 401, so a scraper without credentials keeps working.
 */
void
tally_route_metrics(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const tally__token_t *viewer = ctx->tokens && req->authorization
                                       ? tally__tokens_authenticate(ctx->tokens, req->authorization)
                                       : NULL;
    tally_prom_t p;
    tally_prom_init(&p);
    COUNTER(&p, "tally_ingest_messages_total", "Ingest messages received.", G(messages));
    COUNTER(&p, "tally_ingest_batches_total", "Batches accepted for counting.", G(batches));
    COUNTER(&p, "tally_ingest_duplicate_batches_total",
            "Batches already counted, acknowledged again and not counted again.", G(duplicates));
    COUNTER(&p, "tally_ingest_duplicate_batches_far_below_floor_total",
            "Duplicate batches more than 4 windows below their producer's floor: not resends "
            "but a producer restarted with lower sequence numbers (or moved by a bad batch); "
            "their events are not counted. Each is logged.",
            G(duplicates_far_below));
    COUNTER(&p, "tally_ingest_events_total", "Events accepted for counting.", G(events));
    COUNTER(&p, "tally_ingest_events_committed_total", "Events committed to the store.",
            G(events_committed));
    COUNTER(&p, "tally_ingest_unknown_metric_events_total",
            "Events of metric labels missing from the catalog (counted as sums).",
            G(unknown_metric));
    COUNTER(&p, "tally_int_overflow_total",
            "Additions that took an integer sum past int64; the record goes on in double "
            "precision, flagged, and the usage API marks its lines tally_inexact.",
            G(int_overflows));
    COUNTER(&p, "tally_events_http_accepted_total",
            "HTTP door (POST /api/v1/events): new events sent on to be counted.",
            G(http_events));
    COUNTER(&p, "tally_events_http_duplicates_total",
            "HTTP door: events not counted again, their (credential, source, id) already "
            "committed within ingest.http_dedup_hours or in flight.",
            G(http_duplicates));
    COUNTER(&p, "tally_events_http_rejected_total",
            "HTTP door: requests refused whole (400, 403, 413, 415, 422); scope and time "
            "refusals also count in tally_ingest_rejected_total.",
            G(http_rejected));
    COUNTER(&p, "tally_events_http_dedup_full_total",
            "HTTP door: requests refused with 503 because the exactly-once set held twice "
            "ingest.http_dedup_max_events identities (eviction could not keep up).",
            G(http_dedup_full));
    COUNTER(&p, "tally_events_http_dedup_pruned_total",
            "HTTP door: event identities forgotten after ingest.http_dedup_hours.",
            G(http_dedup_pruned));
    COUNTER(&p, "tally_events_http_dedup_evicted_total",
            "HTTP door: event identities forgotten before ingest.http_dedup_hours because the "
            "set held ingest.http_dedup_max_events; a resend after that is counted again.",
            G(http_dedup_evicted));
    GAUGE(&p, "tally_events_http_dedup_window_seconds",
          "HTTP door: the exactly-once window actually kept at the last eviction (0: never "
          "evicted, the window is ingest.http_dedup_hours).",
          G(http_dedup_window_s));
    rejected(&p);
    /* failing commits hold ingest back as surely as a full ring: the
     * aggregator takes no block and nothing is acked until a flush succeeds */
    GAUGE(&p, "tally_ingest_paused",
          "1 while ingest is held back: its sockets are not read (back-pressure), or flushes "
          "fail (nothing is acknowledged until one succeeds; see tally_store_stalled).",
          G(ingest_paused) | G(store_stalled));
    COUNTER(&p, "tally_ingest_pauses_total", "Times ingest paused for back-pressure.", G(pauses));
    GAUGE(&p, "tally_series_active", "Distinct series seen since start.", G(series));
    GAUGE(&p, "tally_producers", "Producers known (committed marks).", G(producers));
    COUNTER(&p, "tally_producers_dropped_total",
            "Producers forgotten (memory and store) after idling longer than "
            "ingest.late_window_hours + 1 h + ingest.future_skew_s.",
            G(producers_dropped));
    uint64_t acc = G(blocks_accepted), com = G(blocks_committed);
    GAUGE(&p, "tally_producer_lag",
          "Batches accepted but not yet committed and acknowledged, over all producers.",
          acc > com ? acc - com : 0);
    GAUGE(&p, "tally_cells_pending", "(series, hour) cells waiting for the next flush.",
          G(cells_pending));
    COUNTER(&p, "tally_flushes_total", "Committed flushes.", G(flushes));
    COUNTER(&p, "tally_flush_errors_total", "Flush commits that failed (retried).",
            G(flush_errors));
    flush_histogram(&p);
    COUNTER(&p, "tally_acks_sent_total", "Acks published.", G(acks_sent));
    COUNTER(&p, "tally_ack_send_errors_total", "Acks the PUB socket refused (resent later).",
            G(ack_send_errors));
    GAUGE(&p, "tally_store_full", "1 while commits fail for lack of space.", G(store_full));
    GAUGE(&p, "tally_store_stalled", "1 while commits fail for any reason (ingest paused).",
          G(store_stalled));
    GAUGE(&p, "tally_store_map_size_bytes", "LMDB map size.", G(map_size));
    GAUGE(&p, "tally_store_map_used_bytes", "LMDB bytes in use.", G(map_used));
    COUNTER(&p, "tally_store_map_grows_total", "Times the map was grown.", G(map_grows));
    COUNTER(&p, "tally_retention_pruned_total",
            "Hourly rollups deleted by [storage] hourly_retention_days.", G(retention_pruned));
    GAUGE(&p, "tally_heavy_reads", "usage_details reads streaming now.", G(heavy_reads));
    COUNTER(&p, "tally_heavy_reads_refused_total",
            "usage_details reads refused 429 (http.max_heavy_reads_per_token).",
            G(heavy_reads_refused));
    tally_http_stats_t hs = {0};
    if (ctx->http)
        tally_http_stats(ctx->http, &hs);
    GAUGE(&p, "tally_http_connections", "Open HTTP connections.", hs.connections);
    GAUGE(&p, "tally_http_deferred_pending",
          "HTTP requests whose deferred answer is awaited by an open connection.", hs.pending);
    COUNTER(&p, "tally_http_deferred_timeouts_total",
            "Deferred HTTP requests answered 503 after http.pending_timeout_ms.",
            hs.pending_timeouts);
    COUNTER(&p, "tally_http_deferred_dropped_total",
            "Deferred HTTP requests whose connection closed before the answer.",
            hs.pending_dropped);
    GAUGE(&p, "tally_http_connections_reserved",
          "Open HTTP connections on the reserve kept for /healthz and /metrics past "
          "http.max_connections.",
          hs.reserved);
    TALLY_PROM_RAW(&p, FAMILY("tally_http_connections_refused_total", "counter",
                              "HTTP connections refused: max_connections (503: every slot and "
                              "the reserve taken by requests under way, or a reserved "
                              "connection asking for "
                              "something else than /healthz or /metrics), per_address (429: "
                              "http.max_connections_per_address)."));
    TALLY_PROM_RAW(&p, "tally_http_connections_refused_total{reason=\"max_connections\"} ");
    tally_prom_end_u64(&p, hs.refused_max);
    TALLY_PROM_RAW(&p, "tally_http_connections_refused_total{reason=\"per_address\"} ");
    tally_prom_end_u64(&p, hs.refused_per_address);
    COUNTER(&p, "tally_http_reserve_evictions_total",
            "Reserved HTTP connections (past http.max_connections) that had sent nothing, "
            "closed to make room for a new connection.",
            hs.reserve_evictions);
    COUNTER(&p, "tally_http_request_timeouts_total",
            "HTTP connections closed because a request did not arrive whole within "
            "http.request_timeout_ms (a new connection's first request: from the accept).",
            hs.request_timeouts);
    COUNTER(&p, "tally_http_idle_timeouts_total",
            "Keep-alive HTTP connections closed after http.idle_timeout_ms without a request.",
            hs.idle_timeouts);
    int64_t now = tally__time_now_ms();
    TALLY_PROM_RAW(&p, FAMILY("tally_uptime_seconds", "gauge",
                              "Seconds since tallyd started.") "tally_uptime_seconds ");
    /* milliseconds shown as seconds, exactly; 0 if the wall clock stepped back */
    tally_prom_end_fixed(&p, now > ctx->started_ms ? (uint64_t)(now - ctx->started_ms) : 0, 3);
    tally_routes_metrics(&p);
    tally_alerts_metrics(&p, viewer);
    usage_totals(&p, viewer, ctx->catalog);
    process_metrics(&p);
    size_t len;
    char *text = tally_prom_take(&p, &len);
    if (!text) {
        tally_http_error(res, 500, "EINTERNAL", "out of memory rendering metrics");
        return;
    }
    tally_http_take_body(res, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

void
tally_route_healthz(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)ctx;
    (void)req;
    if (G(store_full) || G(store_stalled)) {
        /* the error names what to look at: a full disk or map, a damaged
         * store (tallyctl check), another I/O error */
        char body[256];
        int n = snprintf(body, sizeof body,
                         "{\"status\":\"degraded\",\"reason\":\"%s: ingest paused\","
                         "\"error\":\"%s\"}",
                         G(store_full) ? "store full" : "commits failing",
                         tally_strerror((int)G(flush_last_err)));
        tally_http_set_body(res, 200, "application/json", body,
                            n > 0 && (size_t)n < sizeof body ? (size_t)n : 0);
        return;
    }
    static const char body[] = "{\"status\":\"ok\"}";
    tally_http_set_body(res, 200, "application/json", body, sizeof body - 1);
}

void
tally_route_openapi(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)ctx;
    (void)req;
    tally_http_set_body(res, 200, "application/json", tally_openapi_json, tally_openapi_json_len);
}
