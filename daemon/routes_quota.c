/* routes_quota.c — quota endpoints (being built: answer 501 until then). */
#include "routes.h"

#define NOT_BUILT(fn, what)                                                     \
    void fn(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)     \
    {                                                                           \
        (void)ctx;                                                              \
        (void)req;                                                              \
        tally_http_error(res, 501, "ENOTIMPLEMENTED", what " is not built yet"); \
    }

NOT_BUILT(tally_route_quota_create, "quota create")
NOT_BUILT(tally_route_quota_replace, "quota replace")
NOT_BUILT(tally_route_quota_list, "quota list")
NOT_BUILT(tally_route_quota_get, "quota get")
NOT_BUILT(tally_route_quota_delete, "quota delete")
NOT_BUILT(tally_route_quota_limits, "quota/limits")
NOT_BUILT(tally_route_quota_usage, "quota/usage")
