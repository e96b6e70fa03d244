/* routes_pricing.c — pricing endpoints (being built: answer 501 until then). */
#include "routes.h"

#define NOT_BUILT(fn, what)                                                     \
    void fn(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)     \
    {                                                                           \
        (void)ctx;                                                              \
        (void)req;                                                              \
        tally_http_error(res, 501, "ENOTIMPLEMENTED", what " is not built yet"); \
    }

NOT_BUILT(tally_route_current_usage, "current_usage")
NOT_BUILT(tally_route_monthly_usage, "monthly_usage")
