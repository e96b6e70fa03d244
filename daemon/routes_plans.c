/* routes_plans.c — the plan catalog endpoints (being built: answer 501 until then). */
#include "routes.h"

void
tally_route_plans_list(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)ctx;
    (void)req;
    tally_http_error(res, 501, "ENOTIMPLEMENTED", "usage_plans/custom_list is not built yet");
}

void
tally_route_plans_current(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)ctx;
    (void)req;
    tally_http_error(res, 501, "ENOTIMPLEMENTED", "usage_plans/current is not built yet");
}
