/* routes_events.c — POST /api/v1/events: the HTTP door for emitters in any language.
 *
 * CloudEvents as OpenMeter's ingest takes them (lib/cloudevents.h), from an
 * emitter credential (`Authorization: Bearer NAME:SECRET`). The request is
 * refused whole when one event is malformed, outside the credential's
 * namespaces, older than the late window or too far in the future; the
 * error names the event's index. An accepted request is answered 204 only
 * once its events are committed to the store (the answer is deferred,
 * daemon/http.h), so a 2xx means counted, exactly once: an event whose
 * (source, id) the store already holds from this credential within
 * ingest.http_dedup_hours is not counted again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cloudevents.h"
#include "ingest.h"
#include "log.h"
#include "routes.h"
#include "stats.h"
#include "timeutil.h"

void
tally_route_events(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const tally__token_t *tok = tally_route_token(req);
    const tally__config_t *cfg = ctx->cfg;
    tally__ce_batch_t batch = {0};
    tally__ce_error_t err;
    tally_ingest_event_t *evs = NULL;
    int64_t now_ms = tally__time_now_ms();
    if (!ctx->ingest) {
        tally_http_error(res, 503, "EUNAVAILABLE", "ingest is not running");
        return;
    }
    int rc = tally__ce_decode(req->content_type, req->body, req->body_len, now_ms, ctx->catalog,
                              cfg->ingest.max_batch_events, &batch, &err);
    if (rc != 0) {
        TALLY_STAT_ADD(http_rejected, 1);
        tally_http_error(res, err.status, err.code, "%s", err.message);
        return;
    }
    evs = calloc(batch.n, sizeof *evs);
    if (!evs) {
        tally_http_error(res, 500, "EINTERNAL", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < batch.n; i++) {
        const tally_event_t *ev = &batch.events[i].ev;
        if (!tally__token_allows(tok, ev->ns, TALLY_ACCESS_INGEST)) {
            TALLY_STAT_ADD(rejected[TALLY_PROTO_REJECT_scope], 1);
            TALLY_STAT_ADD(http_rejected, 1);
            tally_http_error(res, 403, "EPERMS",
                             "event %zu: credential '%s' may not send events into namespace '%s'",
                             i, tally__token_name(tok), ev->ns);
            goto out;
        }
        /* the nanomsg door's rule; over HTTP a client hears of every event */
        int reason = tally_ingest_check_time(ctx->ingest, now_ms, ev->ts_ms);
        if (reason >= 0) {
            TALLY_STAT_ADD(rejected[reason], 1);
            TALLY_STAT_ADD(http_rejected, 1);
            tally_http_error(res, 422, "EBADINPUT", "event %zu: %s", i,
                             reason == TALLY_PROTO_REJECT_future
                                 ? "its time is further in the future than ingest.future_skew_s"
                                 : "its time is older than ingest.late_window_hours");
            goto out;
        }
        evs[i].ev = ev;
        tally__ce_dedup_key(tally__token_name(tok), batch.events[i].source, batch.events[i].id,
                            evs[i].key);
    }
    tally_http_pending_t *p = tally_http_defer(req);
    if (!p) {
        tally_http_error(res, 503, "EUNAVAILABLE", "out of memory for a deferred answer");
        goto out;
    }
    rc = tally_ingest_submit_events(ctx->ingest, evs, batch.n, p);
    if (rc != 0) {
        tally_http_res_t now = {0};
        if (rc == TALLY_EBUSY || rc == TALLY_EFULL) {
            now.retry_after = 1;
            tally_http_error(&now, 503, "EUNAVAILABLE",
                             rc == TALLY_EBUSY
                                 ? "ingest is behind (the store is slow or full); retry"
                                 : "the exactly-once set is full (twice "
                                   "ingest.http_dedup_max_events) and not yet pruned; retry");
        } else {
            tally_http_error(&now, rc == TALLY_ECLOSED ? 503 : 500,
                             rc == TALLY_ECLOSED ? "EUNAVAILABLE" : "EINTERNAL",
                             "cannot take events: %s", tally_strerror(rc));
        }
        now.route = res->route;
        tally_http_complete(p, &now);
    }
out:
    free(evs);
    tally__ce_batch_fini(&batch);
}

void
tally_route_events_answer(void *vctx, void *request, int status, uint32_t accepted,
                          uint32_t duplicates)
{
    (void)vctx;
    tally_http_res_t res = {0};
    (void)accepted;
    (void)duplicates;
    if (status == 0) {
        /* OpenMeter answers an accepted ingest with 204 and no body */
        res.status = 204;
    } else {
        res.retry_after = 1;
        tally_http_error(&res, 503, "EUNAVAILABLE",
                         "the events were not committed (%s); send them again",
                         tally_strerror(status));
    }
    res.route = "events";
    tally_http_complete(request, &res);
}
