/* routes_payment.c — payment method endpoints (create, delete, primary, secondary, swap-primary)
 * over lib/payment. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "payment.h"
#include "routes.h"
#include "tally/tally.h"

/*
 * Answer a lib/payment failure. Messages name the method and namespace, never
 * a token; a 500 logs only the error and the operation.
 */
static void
fail(tally_http_res_t *res, int rc, const char *ns, const char *name, const char *msg,
     const char *what)
{
    char buf[256], op[48];
    if (rc == TALLY_ENOTFOUND) {
        snprintf(buf, sizeof buf, "no payment method '%.128s' in namespace '%s'", name ? name : "",
                 ns);
        msg = buf;
    } else if (rc == TALLY_EBUSY && !(msg && msg[0])) {
        msg = "conflicts with the current payment method roles";
    } else if (rc == TALLY_EEXISTS) { /* a generated name collided: practically never */
        msg = "payment method name collision; retry";
    }
    snprintf(op, sizeof op, "payment method %s", what);
    tally_route_fail(res, rc, msg, op);
}

/*
 * Check the optional string fields of a role request body: namespace must
 * be the path's; name, when must_match, the path's. *body_name receives the
 * body's name ("" when absent). Returns 0, or -1 after writing a 400.
 */
static int
check_role_body(json_t *body, const char *ns, const char *path_name, int must_match,
                const char **body_name, tally_http_res_t *res)
{
    static const char *const keys[] = {"namespace", "name"};
    const char *vals[] = {ns, path_name};
    *body_name = "";
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            tally_http_error(res, 400, "EBADINPUT", "%s: must be a string", keys[i]);
            return -1;
        }
        const char *s = json_string_value(v);
        if (i == 1)
            *body_name = s;
        if (s[0] && (i == 0 || must_match) && strcmp(s, vals[i]) != 0) {
            tally_http_error(res, 400, "EBADINPUT",
                             "%s: '%.64s' differs from the %s of the path '%.128s'", keys[i], s,
                             keys[i], vals[i]);
            return -1;
        }
    }
    return 0;
}

static void
ok_empty(tally_http_res_t *res)
{
    tally_route_json(res, 200, json_object());
}

void
tally_route_pm_create(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    char name[TALLY_PAYMENT_NAME_LEN], msg[256] = "";
    int rc =
        tally__payment_create(ctx->store, ns, body, (int64_t)time(NULL), name, msg, sizeof msg);
    json_decref(body);
    if (rc != 0) {
        fail(res, rc, ns, NULL, msg, "create");
        return;
    }
    tally__log_info("\"payment method created\" ns=%s name=%s", ns, name);
    tally_route_json(res, 200, json_pack("{s:s}", "name", name));
}

void
tally_route_pm_delete(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "namespace");
    const char *name = tally_route_param(req, "name");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    const char *bn;
    int bad = check_role_body(body, ns, name, 1, &bn, res);
    json_decref(body);
    if (bad)
        return;
    int rc = tally__payment_delete(ctx->store, ns, name);
    if (rc != 0) {
        fail(res, rc, ns, name,
             "the primary payment method cannot be deleted while others exist; "
             "make another one primary first",
             "delete");
        return;
    }
    tally__log_info("\"payment method deleted\" ns=%s name=%.128s", ns, name);
    ok_empty(res);
}

/* primary and secondary: the path names the method; a body name must agree. */
static void
make(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res, int role)
{
    const char *ns = tally_route_param(req, "namespace");
    const char *name = tally_route_param(req, "name");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    const char *bn;
    int bad = check_role_body(body, ns, name, 1, &bn, res);
    json_decref(body);
    if (bad)
        return;
    int rc = tally__payment_make(ctx->store, ns, name, role);
    if (rc != 0) {
        fail(res, rc, ns, name, NULL, role == TALLY_PAYMENT_ROLE_PRIMARY ? "primary" : "secondary");
        return;
    }
    tally__log_info("\"payment method role set\" ns=%s name=%.128s role=%s", ns, name,
                    tally__payment_role_name(role));
    ok_empty(res);
}

void
tally_route_pm_primary(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    make(ctx, req, res, TALLY_PAYMENT_ROLE_PRIMARY);
}

void
tally_route_pm_secondary(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    make(ctx, req, res, TALLY_PAYMENT_ROLE_SECONDARY);
}

/*
 * swap-primary: per the reference the body's name is promoted and the path's
 * {name} is not used. Without a body name, primary and secondary exchange.
 */
void
tally_route_pm_swap(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    const char *bn;
    if (check_role_body(body, ns, NULL, 0, &bn, res) != 0) {
        json_decref(body);
        return;
    }
    char name[TALLY_OBJ_KEY_MAX + 1];
    snprintf(name, sizeof name, "%s", bn);
    json_decref(body);
    int rc = tally__payment_swap_roles(ctx->store, ns, name);
    if (rc != 0) {
        fail(res, rc, ns, name, "there is no secondary payment method to swap with the primary",
             "swap");
        return;
    }
    tally__log_info("\"payment method roles swapped\" ns=%s", ns);
    ok_empty(res);
}
