/* routes_billing.c — plan transitions, subscriptions and add-ons: parse, call lib/billing, render.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "billing.h"
#include "routes.h"
#include "tally/tally.h"
#include "timeutil.h"

static tally__billing_env_t
env_of(tally_ctx_t *ctx)
{
    return (tally__billing_env_t){
        .store = ctx->store, .plans = ctx->plans, .default_plan = ctx->cfg->billing.default_plan};
}

static int64_t
now_s(void)
{
    return tally__time_now_ms() / 1000;
}

/* Map a billing error to its HTTP answer; msg (may be empty) explains it. */
static void
billing_error(tally_http_res_t *res, int rc, const char *msg)
{
    tally_route_fail(res, rc, msg, "billing objects in the store");
}

void
tally_route_transition_create(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    tally__billing_env_t env = env_of(ctx);
    tally__billing_created_t out;
    char msg[512] = "";
    int rc = tally__billing_transition_create(&env, tally_route_param(req, "namespace"), body,
                                              now_s(), &out, msg, sizeof msg);
    json_decref(body);
    if (rc) {
        billing_error(res, rc, msg);
        return;
    }
    tally_route_json(res, 200,
                     json_pack("{s:s, s:b}", "id", out.id, "requires_manual_approval",
                               out.requires_manual_approval));
}

void
tally_route_transition_get(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    char id[128];
    if (!tally_http_query_get(req->query, "id", id, sizeof id) || !id[0]) {
        tally_http_error(res, 400, "EBADINPUT",
                         "id: required (the id InitiatePlanTransition returned)");
        return;
    }
    json_t *rec;
    int rc = tally__billing_transition_get(ctx->store, id, &rec);
    if (rc) {
        char msg[192];
        snprintf(msg, sizeof msg, "id: no plan transition '%.64s'", id);
        billing_error(res, rc, msg);
        return;
    }
    tally_route_json(res, 200, json_pack("{s:O}", "state", json_object_get(rec, "state")));
    json_decref(rec);
}

void
tally_route_transition_decide(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *id = tally_route_param(req, "id"), *decision = tally_route_param(req, "decision");
    int approve = decision && strcmp(decision, "approve") == 0;
    if (!approve && !(decision && strcmp(decision, "reject") == 0)) {
        tally_http_error(res, 400, "EBADINPUT", "decision: must be approve or reject, not '%.32s'",
                         decision ? decision : "");
        return;
    }
    const tally__token_t *tok = tally_route_token(req);
    tally__billing_env_t env = env_of(ctx);
    json_t *rec;
    char msg[512] = "";
    int rc = tally__billing_transition_decide(&env, id, approve, tok ? tally__token_name(tok) : "",
                                              now_s(), &rec, msg, sizeof msg);
    if (rc) {
        billing_error(res, rc, msg);
        return;
    }
    tally_route_json(res, 200, rec);
}

void
tally_route_subscriptions_list(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    char cur[16] = "";
    int current_only = 0;
    if (tally_http_query_get(req->query, "current", cur, sizeof cur)) {
        if (strcmp(cur, "true") == 0 || strcmp(cur, "1") == 0)
            current_only = 1;
        else if (strcmp(cur, "false") != 0 && strcmp(cur, "0") != 0 && cur[0]) {
            tally_http_error(res, 400, "EBADINPUT", "current: must be true or false");
            return;
        }
    }
    tally__billing_env_t env = env_of(ctx);
    json_t *rsp;
    int rc = tally__billing_subscriptions_list(&env, current_only, now_s(), &rsp);
    if (rc) {
        billing_error(res, rc, "");
        return;
    }
    tally_route_json(res, 200, rsp);
}

/* Subscribe (1) or unsubscribe (0) the add-on the body's one-of names. */
static void
addon_change(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res, int subscribe)
{
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    char msg[512] = "";
    const char *addon = tally__billing_addon_choice(body, msg, sizeof msg);
    json_decref(body);
    if (!addon) {
        tally_http_error(res, 400, "EBADINPUT", "%s", msg);
        return;
    }
    tally__billing_env_t env = env_of(ctx);
    int rc = subscribe ? tally__billing_addon_subscribe(&env, addon, now_s(), msg, sizeof msg)
                       : tally__billing_addon_unsubscribe(&env, addon, now_s(), msg, sizeof msg);
    if (rc) {
        billing_error(res, rc, msg);
        return;
    }
    tally_route_json(res, 200, json_object());
}

void
tally_route_addon_subscribe(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    addon_change(ctx, req, res, 1);
}

void
tally_route_addon_unsubscribe(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    addon_change(ctx, req, res, 0);
}
