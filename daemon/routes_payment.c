/* routes_payment.c — payment endpoints (being built: answer 501 until then). */
#include "routes.h"

#define NOT_BUILT(fn, what)                                                     \
    void fn(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)     \
    {                                                                           \
        (void)ctx;                                                              \
        (void)req;                                                              \
        tally_http_error(res, 501, "ENOTIMPLEMENTED", what " is not built yet"); \
    }

NOT_BUILT(tally_route_pm_create, "pm_create")
NOT_BUILT(tally_route_pm_delete, "pm_delete")
NOT_BUILT(tally_route_pm_primary, "pm_primary")
NOT_BUILT(tally_route_pm_secondary, "pm_secondary")
NOT_BUILT(tally_route_pm_swap, "pm_swap")
