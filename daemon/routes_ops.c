/* routes_ops.c — operations endpoints: /metrics (Prometheus text 0.0.4), /healthz, /openapi.json. */
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

static void
counter(tally_prom_t *p, const char *name, const char *help, uint64_t v)
{
    tally_prom_family(p, name, "counter", help);
    tally_prom_u64(p, name, NULL, NULL, NULL, NULL, v);
}

static void
gauge(tally_prom_t *p, const char *name, const char *help, double v)
{
    tally_prom_family(p, name, "gauge", help);
    tally_prom_double(p, name, NULL, NULL, NULL, NULL, v);
}

void
tally_route_metrics(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)req;
    tally_prom_t p;
    tally_prom_init(&p);
    counter(&p, "tally_ingest_messages_total", "Ingest messages received.", G(messages));
    counter(&p, "tally_ingest_batches_total", "Batches accepted for counting.", G(batches));
    counter(&p, "tally_ingest_duplicate_batches_total",
            "Batches already counted, acknowledged again and not counted again.", G(duplicates));
    counter(&p, "tally_ingest_events_total", "Events accepted for counting.", G(events));
    counter(&p, "tally_ingest_events_committed_total", "Events committed to the store.",
            G(events_committed));
    counter(&p, "tally_ingest_unknown_metric_events_total",
            "Events of metric labels missing from the catalog (counted as sums).",
            G(unknown_metric));
    tally_prom_family(&p, "tally_ingest_rejected_total", "counter",
                      "Batches or events rejected, by reason.");
    for (int r = 0; r < TALLY_PROTO_REJECT_COUNT; r++)
        tally_prom_u64(&p, "tally_ingest_rejected_total", "reason", tally__reject_name(r), NULL,
                       NULL, G(rejected[r]));
    gauge(&p, "tally_ingest_paused", "1 while ingest stops reading for back-pressure.",
          (double)G(ingest_paused));
    counter(&p, "tally_ingest_pauses_total", "Times ingest paused for back-pressure.", G(pauses));
    gauge(&p, "tally_series_active", "Distinct series seen since start.", (double)G(series));
    gauge(&p, "tally_producers", "Producers known (committed marks).", (double)G(producers));
    uint64_t acc = G(blocks_accepted), com = G(blocks_committed);
    gauge(&p, "tally_producer_lag",
          "Batches accepted but not yet committed and acknowledged, over all producers.",
          (double)(acc > com ? acc - com : 0));
    gauge(&p, "tally_cells_pending", "(series, hour) cells waiting for the next flush.",
          (double)G(cells_pending));
    counter(&p, "tally_flushes_total", "Committed flushes.", G(flushes));
    counter(&p, "tally_flush_errors_total", "Flush commits that failed (retried).",
            G(flush_errors));
    static const char *const les[] = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                      "0.1",   "0.25",   "0.5",   "1",    "2.5"};
    tally_prom_family(&p, "tally_flush_duration_seconds", "histogram",
                      "Time to prepare and commit one flush.");
    uint64_t cum = 0;
    for (int i = 0; i < 11; i++) {
        cum += G(flush_buckets[i]);
        tally_prom_u64(&p, "tally_flush_duration_seconds_bucket", "le", les[i], NULL, NULL, cum);
    }
    cum += G(flush_buckets[11]);
    tally_prom_u64(&p, "tally_flush_duration_seconds_bucket", "le", "+Inf", NULL, NULL, cum);
    tally_prom_double(&p, "tally_flush_duration_seconds_sum", NULL, NULL, NULL, NULL,
                      (double)G(flush_sum_us) / 1e6);
    tally_prom_u64(&p, "tally_flush_duration_seconds_count", NULL, NULL, NULL, NULL, cum);
    counter(&p, "tally_acks_sent_total", "Acks published.", G(acks_sent));
    counter(&p, "tally_ack_send_errors_total", "Acks the PUB socket refused (resent later).",
            G(ack_send_errors));
    gauge(&p, "tally_store_full", "1 while commits fail for lack of space.",
          (double)G(store_full));
    gauge(&p, "tally_store_stalled", "1 while commits fail for any reason (ingest paused).",
          (double)G(store_stalled));
    gauge(&p, "tally_store_map_size_bytes", "LMDB map size.", (double)G(map_size));
    gauge(&p, "tally_store_map_used_bytes", "LMDB bytes in use.", (double)G(map_used));
    counter(&p, "tally_store_map_grows_total", "Times the map was grown.", G(map_grows));
    counter(&p, "tally_retention_pruned_total",
            "Hourly rollups deleted by [storage] hourly_retention_days.", G(retention_pruned));
    gauge(&p, "tally_http_connections", "Open HTTP connections.",
          ctx->http ? (double)tally_http_connections(ctx->http) : 0);
    gauge(&p, "tally_uptime_seconds", "Seconds since tallyd started.",
          (double)(tally__time_now_ms() - ctx->started_ms) / 1000.0);
    tally_routes_metrics(&p);
    tally_alerts_metrics(&p);
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
        static const char body[] = "{\"status\":\"degraded\",\"reason\":\"store full: ingest paused\"}";
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
