/* routes_usage.c — usage endpoints (being written). */
#include "routes.h"

void
tally_route_usage_details(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)ctx;
    (void)req;
    tally_http_error(res, 501, "ENOTIMPLEMENTED", "usage_details is not built yet");
}

void
tally_route_hourly_usage_details(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)ctx;
    (void)req;
    tally_http_error(res, 501, "ENOTIMPLEMENTED", "hourly_usage_details is not built yet");
}

void
tally_route_usage_summary(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    (void)ctx;
    (void)req;
    tally_http_error(res, 501, "ENOTIMPLEMENTED", "usage_summary is not built yet");
}
