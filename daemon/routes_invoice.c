/* routes_invoice.c — invoice endpoints (being built: answer 501 until then). */
#include "routes.h"

#define NOT_BUILT(fn, what)                                                     \
    void fn(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)     \
    {                                                                           \
        (void)ctx;                                                              \
        (void)req;                                                              \
        tally_http_error(res, 501, "ENOTIMPLEMENTED", what " is not built yet"); \
    }

NOT_BUILT(tally_route_invoices_list, "invoices_list")
NOT_BUILT(tally_route_invoice_pdf, "invoice_pdf")
NOT_BUILT(tally_route_invoice_close, "invoice_close")
NOT_BUILT(tally_route_invoice_action, "invoice_action")
