/* routes_plans.c — the plan catalog endpoints: usage_plans/custom_list and usage_plans/current. */
#include <string.h>

#include "log.h"
#include "routes.h"

/* The tenant's current plan name into buf, or write a 500 and return non-zero. */
static int
current_name(tally_ctx_t *ctx, char *buf, size_t len, tally_http_res_t *res)
{
    int rc = tally__plans_current_name(ctx->store, ctx->cfg->billing.default_plan, buf, len);
    if (rc != 0) {
        tally_http_error(res, 500, "EINTERNAL", "cannot read the tenant's current plan: %s",
                         tally_strerror(rc));
        return -1;
    }
    return 0;
}

/*
 * GET /api/web/namespaces/system/usage_plans/custom_list → ListUsagePlansRsp:
 * one LocalizedPlan (en-us) with every plan in catalog order, current = true
 * on the tenant's plan.
 */
void
tally_route_plans_list(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)req;
    char name[TALLY_PLANS_NAME_MAX + 1];
    if (current_name(ctx, name, sizeof name, res) != 0)
        return;
    if (!tally__plans_find(ctx->plans, name))
        tally__log(TALLY_LOG_WARN,
                   "current plan is not in the plan catalog: no plan is marked current plan=%s",
                   name);
    tally_route_json(res, 200, tally__plans_render_list(ctx->plans, name));
}

/*
 * GET /api/web/namespaces/system/usage_plans/current → LocalizedPlan (en-us)
 * holding the tenant's current plan (current = true).
 */
void
tally_route_plans_current(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)req;
    char name[TALLY_PLANS_NAME_MAX + 1];
    if (current_name(ctx, name, sizeof name, res) != 0)
        return;
    const tally__plan_t *plan = tally__plans_find(ctx->plans, name);
    if (plan == NULL) {
        tally_http_error(res, 500, "EINTERNAL", "the current plan '%s' is not in the plan catalog",
                         name);
        return;
    }
    tally_route_json(res, 200, tally__plan_render_localized(plan, true));
}
