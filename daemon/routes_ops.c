/* routes_ops.c — operations endpoints: /metrics (Prometheus text 0.0.4), /healthz, /openapi.json */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
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

/*
 * /metrics is an open route (routes.h): the process and daemon figures are
 * public, like /healthz. Series labelled by namespace (today
 * tally_quota_utilization_ratio) tell one namespace's usage against its
 * limit, so they are shown only to a scrape that carries an API token
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
    GAUGE(&p, "tally_ingest_paused", "1 while ingest stops reading for back-pressure.",
          G(ingest_paused));
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
    int64_t now = tally__time_now_ms();
    TALLY_PROM_RAW(&p, FAMILY("tally_uptime_seconds", "gauge",
                              "Seconds since tallyd started.") "tally_uptime_seconds ");
    /* milliseconds shown as seconds, exactly; 0 if the wall clock stepped back */
    tally_prom_end_fixed(&p, now > ctx->started_ms ? (uint64_t)(now - ctx->started_ms) : 0, 3);
    tally_routes_metrics(&p);
    tally_alerts_metrics(&p, viewer);
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
    if (G(store_full)) {
        static const char body[] =
            "{\"status\":\"degraded\",\"reason\":\"store full: ingest paused\"}";
        tally_http_set_body(res, 200, "application/json", body, sizeof body - 1);
        return;
    }
    if (G(store_stalled)) {
        static const char body[] =
            "{\"status\":\"degraded\",\"reason\":\"commits failing: ingest paused\"}";
        tally_http_set_body(res, 200, "application/json", body, sizeof body - 1);
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
