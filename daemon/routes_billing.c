/* routes_billing.c — plan transitions, subscriptions and add-ons (being built: answer 501 until then). */
#include "routes.h"

#define NOT_BUILT(fn, what)                                                     \
    void fn(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)     \
    {                                                                           \
        (void)ctx;                                                              \
        (void)req;                                                              \
        tally_http_error(res, 501, "ENOTIMPLEMENTED", what " is not built yet"); \
    }

NOT_BUILT(tally_route_transition_create, "plan_transition")
NOT_BUILT(tally_route_transition_get, "plan_transition")
NOT_BUILT(tally_route_transition_decide, "plan transition approval")
NOT_BUILT(tally_route_subscriptions_list, "subscriptions/custom_list")
NOT_BUILT(tally_route_addon_subscribe, "addon/subscribe")
NOT_BUILT(tally_route_addon_unsubscribe, "addon/unsubscribe")
