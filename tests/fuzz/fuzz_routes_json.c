/* fuzz_routes_json.c — libFuzzer harness: every JSON request body decoder; byte 0 picks the route, the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct jroute {
    tally_route_fn fn;
    const char *path;
    const char *names[3];
    const char *values[3];
} jroute_t;

/* Every route that reads a request body, with plausible path parameters. */
static const jroute_t jroutes[] = {
    {tally_route_usage_details, "/api/web/namespaces/demo/usage_details", {"namespace"}, {"demo"}},
    {tally_route_hourly_usage_details, "/api/web/namespaces/demo/hourly_usage_details",
     {"namespace"}, {"demo"}},
    {tally_route_usage_summary, "/api/data/namespaces/system/billing/usage_summary", {0}, {0}},
    {tally_route_current_usage, "/api/web/namespaces/demo/current_usage", {"namespace"}, {"demo"}},
    {tally_route_monthly_usage, "/api/web/namespaces/demo/monthly_usage", {"namespace"}, {"demo"}},
    {tally_route_pm_create, "/api/web/namespaces/demo/billing/payment_methods", {"namespace"},
     {"demo"}},
    {tally_route_pm_primary, "/api/web/namespaces/demo/billing/payment_method/pm1/primary",
     {"namespace", "name"}, {"demo", "pm1"}},
    {tally_route_pm_secondary, "/api/web/namespaces/demo/billing/payment_method/pm1/secondary",
     {"namespace", "name"}, {"demo", "pm1"}},
    {tally_route_pm_swap, "/api/web/namespaces/demo/billing/payment_method/pm1/swap-primary",
     {"namespace", "name"}, {"demo", "pm1"}},
    {tally_route_invoice_close, "/api/tally/namespaces/system/invoices/close", {0}, {0}},
    {tally_route_invoice_action, "/api/tally/namespaces/system/invoices/inv-2024-01/pay",
     {"name", "action"}, {"inv-2024-01", "pay"}},
    {tally_route_transition_create, "/api/web/namespaces/system/billing/plan_transition",
     {"namespace"}, {"system"}},
    {tally_route_transition_decide,
     "/api/tally/namespaces/system/billing/plan_transitions/t1/approve", {"id", "decision"},
     {"t1", "approve"}},
    {tally_route_addon_subscribe, "/api/web/namespaces/system/addon/subscribe", {0}, {0}},
    {tally_route_addon_unsubscribe, "/api/web/namespaces/system/addon/unsubscribe", {0}, {0}},
    {tally_route_quota_create, "/api/web/namespaces/demo/quotas", {"metadata.namespace"}, {"demo"}},
    {tally_route_quota_replace, "/api/web/namespaces/demo/quotas/q1",
     {"metadata.namespace", "metadata.name"}, {"demo", "q1"}},
    {tally_route_quota_delete, "/api/web/namespaces/demo/quotas/q1", {"namespace", "name"},
     {"demo", "q1"}},
};
#define NJROUTES (sizeof jroutes / sizeof jroutes[0])

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tally_ctx_t *ctx = fuzz_ctx();
    const jroute_t *r = &jroutes[data[0] % NJROUTES];
    /* the body as the server hands it over: a NUL-terminated heap copy */
    size_t blen = size - 1;
    char *body = malloc(blen + 1);
    if (!body)
        return 0;
    memcpy(body, data + 1, blen);
    body[blen] = '\0';
    tally_http_req_t req = {0};
    tally_http_res_t res = {0};
    req.method = r->fn == tally_route_quota_replace   ? TALLY_HTTP_PUT
                 : r->fn == tally_route_quota_delete ? TALLY_HTTP_DELETE
                                                     : TALLY_HTTP_POST;
    req.path = r->path;
    req.query = "";
    req.authorization = FUZZ_ADMIN_AUTH;
    req.content_type = "application/json";
    req.body = body;
    req.body_len = blen;
    req.remote = "fuzz";
    for (int i = 0; i < 3 && r->names[i]; i++) {
        req.param_names[i] = r->names[i];
        req.params[i] = r->values[i];
        req.nparams = i + 1;
    }
    req.user = (void *)tally__tokens_find(ctx->tokens, "fuzz-admin");
    r->fn(ctx, &req, &res);
    fuzz_trace(req.path, &res);
    if (res.status < 100 || res.status > 599 || (res.body_len && !res.body))
        abort();
    free(res.body);
    free(body);
    return 0;
}
