/* routes.h — the HTTP route table of tallyd: (method, path pattern, handler, access rule), and the dispatcher.
 *
 * Every path of the reference Billing and Usage API has an entry; so do
 * tally's own /metrics, /healthz and /openapi.json. The dispatcher matches
 * the route, authenticates the token (unless the route is open), checks the
 * token's role and scope against the route's access rule, applies the
 * per-token rate limit, then calls the handler. Handlers parse, call lib/,
 * and render; business rules live in lib/.
 *
 * Who may do what is data: TALLY_ROUTES below is the one table of every
 * route × method with the access it needs and the scope that access is
 * checked in. routes.c expands it into the dispatcher's table; the access
 * test (tests/e2e/test_access_matrix.c) expands the same rows, without the
 * handlers, and derives every expected 401/403 from them (test_isolation.c
 * takes its tenant-wide and write flags from them too); the README's access
 * table shows it. A row has a fixed arity, so a route cannot be added without an access
 * and a scope: leaving one out does not compile.
 *
 * All of it runs on the main loop thread.
 */
#ifndef TALLY_ROUTES_H
#define TALLY_ROUTES_H

#include <stddef.h>
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

/**
 * Where a route's access is checked. Values start at 1 so that a zeroed
 * rule is no rule (the access test fails on it).
 *
 * - NONE: an open route; no token is read (access must be TALLY_ACCESS_NONE).
 * - TENANT: the route reads or changes tenant-wide objects or tenant-wide
 *   usage (plans, transitions, subscriptions, add-ons, payment methods,
 *   invoices), whatever namespace its path names: the token must be allowed
 *   `access` in namespace `system` (tally__token_allows(tok, "system", access)).
 * - PATH_NS: the namespace of the path ({namespace} or {metadata.namespace});
 *   a path namespace of `system` is tenant-wide usage and needs `system` too.
 * - EVENT: the HTTP door for emitters (access TALLY_ACCESS_INGEST): an
 *   emitter credential, each event's namespace checked by the handler.
 * - TOKEN: any valid API token; the route answers about the token itself
 *   and shows only what tally__token_allows(tok, ns, access) permits (the
 *   dashboard's list of namespaces a token can see).
 */
enum {
    TALLY_ROUTE_SCOPE_NONE = 1,
    TALLY_ROUTE_SCOPE_TENANT,
    TALLY_ROUTE_SCOPE_PATH_NS,
    TALLY_ROUTE_SCOPE_EVENT,
    TALLY_ROUTE_SCOPE_TOKEN,
};

/** One access rule: a row of TALLY_ROUTES without its handler. */
typedef struct tally_route_rule {
    const char *method;  /**< "GET", "POST", "PUT" or "DELETE" */
    const char *pattern; /**< path with {param} segments */
    int access;          /**< TALLY_ACCESS_* */
    int scope;           /**< TALLY_ROUTE_SCOPE_* */
    const char *name;    /**< the route's label in metrics and api_limits */
} tally_route_rule_t;

/*
 * THE ROUTE TABLE. R(METHOD, pattern, handler, ACCESS, SCOPE, name):
 * METHOD is GET|POST|PUT|DELETE, ACCESS the tail of a TALLY_ACCESS_*, SCOPE
 * the tail of a TALLY_ROUTE_SCOPE_*. Order matters only between patterns
 * that match the same path (the first wins). Why each rule is what it is:
 *
 * - usage_details, hourly_usage_details, current_usage, monthly_usage:
 *   PATH_NS. They show (and price, at the tenant's plan) the path
 *   namespace's own usage only (tally__usage_scope(); a body namespace must
 *   equal the path's); `system` is the tenant's total and needs `system`.
 * - quotas, quota/limits, quota/usage: PATH_NS, the namespace's own objects.
 * - payment methods (create, delete, primary, secondary, swap-primary):
 *   TENANT WRITE: they pay the tenant's bill, whichever path they sit under.
 * - plan_transition (POST): TENANT WRITE: it changes the whole tenant's plan.
 *   WRITE, not ADMIN: `system` editors are the tenant's billing editors (as
 *   for add-ons), and a transition that needs approval still waits for an
 *   admin's decision (plan_transitions/{id}/{decision}, ADMIN).
 * - subscriptions/custom_list, invoices/custom_list, invoice_pdf, credit_note_pdf,
 *   usage_summary, usage_plans: TENANT READ: the tenant's subscriptions, bill
 *   and total usage, under any path namespace.
 * - tally's admin routes (/api/tally/...): TENANT ADMIN.
 * - the dashboard's extensions (routes_dash.c): /api/tally/namespaces is
 *   TOKEN READ (it lists the namespaces the token may read, nothing else);
 *   usage_series and alerts are PATH_NS READ like usage_details (`system`:
 *   every namespace, and needs `system`).
 * - /api/v1/events: INGEST, EVENT (emitter credentials, scope per event).
 * - /no_auth/..., /metrics, /healthz, /openapi.json, /ui: open (NONE). /metrics
 *   shows per-namespace series only to a token that may read them
 *   (routes_ops.c).
 */
#define TALLY_ROUTES(R)                                                                            \
    /* usage */                                                                                    \
    R(POST, "/api/web/namespaces/{namespace}/usage_details", tally_route_usage_details, READ,      \
      PATH_NS, "usage_details")                                                                    \
    R(POST, "/api/web/namespaces/{namespace}/hourly_usage_details",                                \
      tally_route_hourly_usage_details, READ, PATH_NS, "hourly_usage_details")                     \
    R(POST, "/api/data/namespaces/system/billing/usage_summary", tally_route_usage_summary, READ,  \
      TENANT, "usage_summary")                                                                     \
    /* priced usage of the path's namespace */                                                     \
    R(POST, "/api/web/namespaces/{namespace}/current_usage", tally_route_current_usage, READ,      \
      PATH_NS, "current_usage")                                                                    \
    R(POST, "/api/web/namespaces/{namespace}/monthly_usage", tally_route_monthly_usage, READ,      \
      PATH_NS, "monthly_usage")                                                                    \
    /* payment methods: the tenant's */                                                            \
    R(POST, "/api/web/namespaces/{namespace}/billing/payment_methods", tally_route_pm_create,      \
      WRITE, TENANT, "payment_method_create")                                                      \
    R(DELETE, "/api/web/namespaces/{namespace}/billing/payment_methods/{name}",                    \
      tally_route_pm_delete, WRITE, TENANT, "payment_method_delete")                               \
    R(POST, "/api/web/namespaces/{namespace}/billing/payment_method/{name}/primary",               \
      tally_route_pm_primary, WRITE, TENANT, "payment_method_primary")                             \
    R(POST, "/api/web/namespaces/{namespace}/billing/payment_method/{name}/secondary",             \
      tally_route_pm_secondary, WRITE, TENANT, "payment_method_secondary")                         \
    R(POST, "/api/web/namespaces/{namespace}/billing/payment_method/{name}/swap-primary",          \
      tally_route_pm_swap, WRITE, TENANT, "payment_method_swap")                                   \
    /* invoices: the tenant's */                                                                   \
    R(GET, "/api/web/namespaces/{namespace}/usage/invoices/custom_list",                           \
      tally_route_invoices_list, READ, TENANT, "invoices_list")                                    \
    R(GET, "/api/web/namespaces/{namespace}/usage/invoice_pdf", tally_route_invoice_pdf, READ,     \
      TENANT, "invoice_pdf")                                                                       \
    R(GET, "/api/web/namespaces/{namespace}/usage/credit_note_pdf", tally_route_credit_note_pdf,   \
      READ, TENANT, "credit_note_pdf")                                                             \
    /* tally's own admin actions behind `tallyctl invoice close|pay|cancel|refund` */              \
    R(POST, "/api/tally/namespaces/system/invoices/close", tally_route_invoice_close, ADMIN,       \
      TENANT, "invoice_close")                                                                     \
    R(POST, "/api/tally/namespaces/system/invoices/{name}/{action}", tally_route_invoice_action,   \
      ADMIN, TENANT, "invoice_action")                                                             \
    /* plans, transitions, subscriptions, add-ons: the tenant's */                                 \
    R(GET, "/api/web/namespaces/system/usage_plans/custom_list", tally_route_plans_list, READ,     \
      TENANT, "usage_plans_list")                                                                  \
    R(GET, "/api/web/namespaces/system/usage_plans/current", tally_route_plans_current, READ,      \
      TENANT, "usage_plans_current")                                                               \
    R(POST, "/api/web/namespaces/{namespace}/billing/plan_transition",                             \
      tally_route_transition_create, WRITE, TENANT, "plan_transition_create")                      \
    R(GET, "/no_auth/namespaces/system/billing/plan_transition", tally_route_transition_get, NONE, \
      NONE, "plan_transition_get")                                                                 \
    /* tally's own admin action behind `tallyctl plan approve|reject` */                           \
    R(POST, "/api/tally/namespaces/system/billing/plan_transitions/{id}/{decision}",               \
      tally_route_transition_decide, ADMIN, TENANT, "plan_transition_decide")                      \
    R(GET, "/api/web/namespaces/{namespace}/subscriptions/custom_list",                            \
      tally_route_subscriptions_list, READ, TENANT, "subscriptions_list")                          \
    R(POST, "/api/web/namespaces/system/addon/subscribe", tally_route_addon_subscribe, WRITE,      \
      TENANT, "addon_subscribe")                                                                   \
    R(POST, "/api/web/namespaces/system/addon/unsubscribe", tally_route_addon_unsubscribe, WRITE,  \
      TENANT, "addon_unsubscribe")                                                                 \
    /* quotas: the path namespace's */                                                             \
    R(POST, "/api/web/namespaces/{metadata.namespace}/quotas", tally_route_quota_create, WRITE,    \
      PATH_NS, "quota_create")                                                                     \
    R(PUT, "/api/web/namespaces/{metadata.namespace}/quotas/{metadata.name}",                      \
      tally_route_quota_replace, WRITE, PATH_NS, "quota_replace")                                  \
    R(GET, "/api/web/namespaces/{namespace}/quotas", tally_route_quota_list, READ, PATH_NS,        \
      "quota_list")                                                                                \
    R(GET, "/api/web/namespaces/{namespace}/quotas/{name}", tally_route_quota_get, READ, PATH_NS,  \
      "quota_get")                                                                                 \
    R(DELETE, "/api/web/namespaces/{namespace}/quotas/{name}", tally_route_quota_delete, WRITE,    \
      PATH_NS, "quota_delete")                                                                     \
    R(GET, "/api/web/namespaces/{namespace}/quota/limits", tally_route_quota_limits, READ,         \
      PATH_NS, "quota_limits")                                                                     \
    R(GET, "/api/web/namespaces/{namespace}/quota/usage", tally_route_quota_usage, READ, PATH_NS,  \
      "quota_usage")                                                                               \
    /* the dashboard's tally extensions (routes_dash.c) */                                         \
    R(GET, "/api/tally/namespaces", tally_route_dash_namespaces, READ, TOKEN, "dash_namespaces")   \
    R(POST, "/api/tally/namespaces/{namespace}/usage_series", tally_route_dash_series, READ,       \
      PATH_NS, "usage_series")                                                                     \
    R(GET, "/api/tally/namespaces/{namespace}/alerts", tally_route_dash_alerts, READ, PATH_NS,     \
      "alerts_recent")                                                                             \
    /* the HTTP door for emitters: an emitter credential, scope checked per event */               \
    R(POST, "/api/v1/events", tally_route_events, INGEST, EVENT, "events")                         \
    /* operations; /metrics filters its per-namespace series by the token, if any */               \
    R(GET, "/metrics", tally_route_metrics, NONE, NONE, "metrics")                                 \
    R(GET, "/healthz", tally_route_healthz, NONE, NONE, "healthz")                                 \
    R(GET, "/openapi.json", tally_route_openapi, NONE, NONE, "openapi")                            \
    /* the usage dashboard: a static page; its data comes from authenticated API calls */          \
    R(GET, "/ui/", tally_route_ui, NONE, NONE, "ui")                                               \
    R(GET, "/ui", tally_route_ui, NONE, NONE, "ui_noslash")

/** @brief How many routes the table holds. */
size_t tally_routes_count(void);

/**
 * @brief Rule i of the route table, in table order.
 * @return a pointer to static, read-only data (valid for the process), or
 *         NULL when i >= tally_routes_count().
 */
const tally_route_rule_t *tally_routes_rule(size_t i);

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
    /** Per-token api_limits buckets, made at the first limited request
     *  (loop thread only); freed by tally_routes_release(). */
    struct tally__apilimit *apilimits;
} tally_ctx_t;

/** @brief Free what the routes made for ctx at run time (the api_limits
 *         table). Call once the HTTP server that used ctx is closed. */
void tally_routes_release(tally_ctx_t *ctx);

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
void tally_route_credit_note_pdf(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
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
/* routes_dash.c: the dashboard's extensions */
void tally_route_dash_namespaces(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_dash_series(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);
void tally_route_dash_alerts(tally_ctx_t *, tally_http_req_t *, tally_http_res_t *);

#endif
