/* routes.h — the HTTP route table of tallyd: (method, path pattern, handler, access rule), and the dispatcher.
 *
 * Every path of the reference Billing and Usage API has an entry; so do
 * tally's own /metrics, /healthz and /openapi.json. The dispatcher matches
 * the route, authenticates the token (unless the route is open), checks the
 * token's namespace scope and role against the route's access rule,
 * applies the per-token rate limit, then calls the handler. Handlers parse,
 * call lib/, and render; business rules live in lib/.
 *
 * All of it runs on the main loop thread.
 */
#ifndef TALLY_ROUTES_H
#define TALLY_ROUTES_H

#include <stdint.h>

#include <jansson.h>

#include "auth.h"
#include "catalog.h"
#include "config.h"
#include "http.h"
#include "jsonw.h"
#include "plans.h"
#include "prom.h"
#include "store.h"

/** What handlers may use; owned by tallyd, alive while the server runs. */
typedef struct tally_ctx {
    const tally__config_t *cfg;
    const tally__catalog_t *catalog;
    const tally__plans_t *plans; /**< the plan catalog */
    tally__store_t *store;
    tally__tokens_t *tokens; /**< swapped on SIGHUP (loop thread) */
    tally_http_server_t *http;
    struct tally_ingest *ingest; /**< the HTTP door hands its events here */
    int64_t started_ms;
} tally_ctx_t;

typedef void (*tally_route_fn)(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res);

/** The dispatcher, given to tally_http_start() with a tally_ctx_t. A handler
 *  may defer its answer (tally_http_defer()) and leave res empty. */
void tally_routes_dispatch(void *ctx, tally_http_req_t *req, tally_http_res_t *res);

/**
 * @brief The observer, given to tally_http_set_observer() on the server that
 *        dispatches with tally_routes_dispatch(): counts every answer,
 *        synchronous or deferred, in the per-route request counters and
 *        duration histograms of tally_routes_metrics().
 * @note Loop thread only. Without it those families stay empty.
 */
void tally_routes_observe(void *ctx, const char *route, int status, uint64_t ns);

/** @brief The value of route parameter `name`, or NULL. */
const char *tally_route_param(const tally_http_req_t *req, const char *name);

/** @brief The authenticated token of the request (NULL on open routes). */
const tally__token_t *tally_route_token(const tally_http_req_t *req);

/**
 * @brief Parse the request body as a JSON object.
 * @return the object (caller owns) or NULL after writing a 400 that names
 *         the problem (an empty body gives an empty object).
 */
json_t *tally_route_body_json(const tally_http_req_t *req, tally_http_res_t *res);

/** @brief Render a JSON value (reference stolen) as the 200 response. */
void tally_route_json(tally_http_res_t *res, int status, json_t *v);

/** @brief Hand a finished writer to res as the 200 JSON response (a 500 when
 *         memory ran out while writing). */
void tally_route_respond(tally_http_res_t *res, tally__jw_t *w);

/** @brief Write unix seconds as an RFC 3339 string value. */
void tally_route_put_time(tally__jw_t *w, int64_t unix_s);

/**
 * @brief Answer a failure of a lib call: rc picks the status (EINVAL 400,
 *        -EPERM 403, ENOTFOUND 404, EEXISTS 409, EBUSY 409 ECONFLICT,
 *        EMAPFULL 503, anything else 500, which is logged).
 * @param msg the library's reason, or NULL/"" for the status' default.
 * @param what the operation, named in a 500 and its log line.
 */
void tally_route_fail(tally_http_res_t *res, int rc, const char *msg, const char *what);

/** @brief The body's optional `namespace` must be a string naming path_ns.
 *  @return 0, or -1 after writing a 400. */
int tally_route_body_ns(json_t *body, const char *path_ns, tally_http_res_t *res);

enum { TALLY_ROUTE_TIME_RFC3339, TALLY_ROUTE_TIME_ANY };

/**
 * @brief An optional time field of the body, an RFC 3339 string (or, with
 *        TALLY_ROUTE_TIME_ANY, unix seconds in a string too), in unix ms.
 * @return 0 when absent (null or ""), 1 when read, -1 after writing a 400
 *         that names the field.
 */
int tally_route_body_time(json_t *body, const char *key, int syntax, int64_t *ms,
                          tally_http_res_t *res);

/** @brief Append the Prometheus counters of the HTTP layer (for /metrics). */
void tally_routes_metrics(tally_prom_t *p);

/* Handlers implemented in routes_*.c */
void tally_route_usage_details(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_hourly_usage_details(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_usage_summary(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_metrics(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
/* routes_events.c: the HTTP door for emitters (POST /api/v1/events) */
void tally_route_events(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
/** @brief tally_ingest_opts_t.http_answer: complete a deferred events request. */
void tally_route_events_answer(void *ctx, void *request, int status, uint32_t accepted,
                               uint32_t duplicates);
/* routes_plans.c: the plan catalog */
void tally_route_plans_list(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_plans_current(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
/* routes_quota.c: quota objects, effective limits, usage against limits */
void tally_route_quota_create(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_quota_replace(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_quota_list(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_quota_get(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_quota_delete(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_quota_limits(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_quota_usage(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
/* routes_pricing.c: priced usage */
void tally_route_current_usage(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_monthly_usage(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
/* routes_payment.c: payment methods */
void tally_route_pm_create(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_pm_delete(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_pm_primary(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_pm_secondary(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_pm_swap(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
/* routes_invoice.c: invoices */
void tally_route_invoices_list(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_invoice_pdf(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_invoice_close(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_invoice_action(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
/* routes_billing.c: transitions, subscriptions, add-ons */
void tally_route_transition_create(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_transition_get(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_transition_decide(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_subscriptions_list(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_addon_subscribe(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_addon_unsubscribe(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_healthz(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_openapi(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_ui(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *); /* routes_ui.c */

#endif
