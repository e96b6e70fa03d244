/* routes_invoice.c — invoice endpoints (list, PDF, credit-note PDF, admin close and
 * pay|cancel|refund): parse, call lib/invoices, render.
 *
 * Namespaces. Invoices are tenant-wide. The spec's paths carry a namespace:
 * for "system" the dispatcher's check (the token may read system) is all;
 * for any other namespace the answer is still the tenant's invoices, so the
 * token must also be allowed to read "system", else 403 — a token scoped to
 * one namespace never sees the tenant's bill.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "invoicedoc.h"
#include "invoicer.h"
#include "invoices.h"
#include "pdf.h"
#include "routes.h"
#include "tally/tally.h"
#include "timeutil.h"

static int64_t
now_s(void)
{
    return tally__time_now_ms() / 1000;
}

static void
invoice_error(tally_http_res_t *res, int rc, const char *msg)
{
    tally_route_fail(res, rc, rc == TALLY_ENOTFOUND && !msg[0] ? "no such invoice" : msg,
                     "invoices");
}

/* The reference's invoice object plus tally's tally_* fields (invoicedoc.h). */
static json_t *
invoice_json(const tally__invoice_t *inv, const char *currency, int64_t now)
{
    json_t *o = tally__invoices_to_api(inv, currency, now);
    if (o && tally__invoice_api_extend(o, inv) != 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* 1 when the request may see the tenant's invoices (see the file comment). */
static int
tenant_scope(tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "namespace");
    const tally__token_t *tok = tally_route_token(req);
    if (ns && strcmp(ns, "system") == 0)
        return 1;
    if (tok && tally__token_allows(tok, "system", TALLY_ACCESS_READ))
        return 1;
    tally_http_error(res, 403, "EPERMS",
                     "invoices are tenant-wide: token '%s' must be allowed to read namespace "
                     "'system'",
                     tok ? tally__token_name(tok) : "?");
    return 0;
}

void
tally_route_invoices_list(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    if (!tenant_scope(req, res))
        return;
    char buf[32];
    long limit = 0;
    if (tally_http_query_get(req->query, "limit", buf, sizeof buf) && buf[0]) {
        char *end;
        errno = 0;
        limit = strtol(buf, &end, 10);
        if (*end || errno || limit < 0 || limit > INT32_MAX) {
            tally_http_error(res, 400, "EBADINPUT", "limit: not a non-negative int32 (%s)", buf);
            return;
        }
    }
    tally__invoices_env_t env;
    tally_invoicer_env(ctx->cfg, ctx->catalog, ctx->plans, ctx->store, &env);
    int64_t now = now_s();
    tally__invoice_t *v;
    size_t n;
    int rc = tally__invoices_list(&env, now, (int)limit, &v, &n);
    if (rc) {
        invoice_error(res, rc, "");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, invoice_json(&v[i], env.currency, now));
    tally__invoices_list_free(v, n);
    tally_route_json(res, 200, json_pack("{s:o}", "invoices", arr));
}

/* "Net 30 ..." when [billing] payment_terms is empty. */
static void
default_terms(const tally__config_t *cfg, char *buf, size_t cap)
{
    if (cfg->billing.payment_terms && cfg->billing.payment_terms[0])
        snprintf(buf, cap, "%s", cfg->billing.payment_terms);
    else
        snprintf(buf, cap, "Net %u: due %u days after the issue date.", cfg->billing.due_days,
                 cfg->billing.due_days);
}

/* Render inv (or its credit note) with the seller, buyer, line details and terms; answer
 * {"pdf": base64}. */
static void
send_pdf(tally_ctx_t *ctx, tally_http_res_t *res, const tally__invoices_env_t *env,
         tally__invoice_t *inv, int credit_note)
{
    const tally__config_t *cfg = ctx->cfg;
    if (!inv->priced.currency[0])
        snprintf(inv->priced.currency, sizeof inv->priced.currency, "%s", env->currency);
    tally__invoice_buyer_t buyer;
    int rc = tally__invoice_buyer(ctx->store, &buyer);
    if (rc) {
        tally_http_error(res, 500, "EINTERNAL", "reading the billing contact failed: %s",
                         tally_strerror(rc));
        return;
    }
    tally__invoice_detail_t *details = NULL;
    if ((rc = tally__invoice_details(ctx->plans, inv, &details)) != 0) {
        tally_http_error(res, 500, "EINTERNAL", "explaining the lines failed: %s",
                         tally_strerror(rc));
        return;
    }
    char terms[512];
    default_terms(cfg, terms, sizeof terms);
    tally__invoice_doc_t doc = {
        .inv = inv,
        .details = details,
        .seller = {cfg->seller.name, cfg->seller.address, cfg->seller.tax_id, cfg->seller.email},
        .buyer = {inv->tenant, buyer.address, NULL, NULL},
        .payment_terms = terms,
        .payment_instructions = cfg->billing.payment_instructions,
        .credit_note = credit_note,
    };
    char *pdf = NULL;
    size_t len = 0;
    rc = tally__invoice_pdf_doc(&doc, &pdf, &len);
    free(details);
    if (rc) {
        tally_http_error(res, 500, "EINTERNAL", "rendering the PDF failed: %s", tally_strerror(rc));
        return;
    }
    size_t b64len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64len);
    if (!b64) {
        free(pdf);
        tally_http_error(res, 500, "EINTERNAL", "out of memory");
        return;
    }
    sodium_bin2base64(b64, b64len, (const unsigned char *)pdf, len, sodium_base64_VARIANT_ORIGINAL);
    free(pdf);
    json_t *o = json_object();
    json_object_set_new(o, "pdf", json_string(b64));
    free(b64);
    tally_route_json(res, 200, o);
}

void
tally_route_invoice_pdf(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    if (!tenant_scope(req, res))
        return;
    tally__invoices_env_t env;
    tally_invoicer_env(ctx->cfg, ctx->catalog, ctx->plans, ctx->store, &env);
    int64_t now = now_s();
    char name[128] = "";
    tally__invoice_t inv;
    int rc;
    char msg[256] = "";
    if (tally_http_query_get(req->query, "name", name, sizeof name) && name[0]) {
        rc = tally__invoices_get(&env, name, now, &inv);
        if (rc == TALLY_ENOTFOUND)
            snprintf(msg, sizeof msg, "no invoice named '%s'", name);
    } else {
        /* no name: the newest closed invoice */
        tally__invoice_t *v;
        size_t n;
        rc = tally__invoices_list(&env, now, 0, &v, &n);
        if (rc == 0) {
            size_t i = 0;
            while (i < n && v[i].active)
                i++;
            if (i < n) {
                inv = v[i];
                memset(&v[i], 0, sizeof v[i]);
            } else {
                rc = TALLY_ENOTFOUND;
                snprintf(msg, sizeof msg, "no closed invoice yet; name the running one to see it");
            }
            tally__invoices_list_free(v, n);
        }
    }
    if (rc) {
        invoice_error(res, rc, msg);
        return;
    }
    inv.status = tally__invoices_effective_status(&inv, now);
    send_pdf(ctx, res, &env, &inv, 0);
    tally__invoice_fini(&inv);
}

void
tally_route_credit_note_pdf(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    if (!tenant_scope(req, res))
        return;
    char number[64] = "", name[64];
    if (!tally_http_query_get(req->query, "name", number, sizeof number) || !number[0]) {
        tally_http_error(res, 400, "EBADINPUT", "name: required, a credit note number CN-YYYY-MM");
        return;
    }
    if (tally__credit_note_invoice(number, name, sizeof name) != 0) {
        tally_http_error(res, 400, "EBADINPUT",
                         "name: '%s' is not a credit note number (CN-YYYY-MM)", number);
        return;
    }
    tally__invoices_env_t env;
    tally_invoicer_env(ctx->cfg, ctx->catalog, ctx->plans, ctx->store, &env);
    int64_t now = now_s();
    tally__invoice_t inv;
    char msg[256] = "";
    int rc = tally__invoices_get(&env, name, now, &inv);
    if (rc == 0 && strcmp(inv.credit_note, number) != 0) {
        tally__invoice_fini(&inv);
        rc = TALLY_ENOTFOUND;
    }
    if (rc == TALLY_ENOTFOUND)
        snprintf(msg, sizeof msg,
                 "no credit note %s: invoice %s has none (a refund issues it; this one is not "
                 "refunded, or was refunded before credit notes existed)",
                 number, name);
    if (rc) {
        invoice_error(res, rc, msg);
        return;
    }
    send_pdf(ctx, res, &env, &inv, 1);
    tally__invoice_fini(&inv);
}

void
tally_route_invoice_close(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    const char *month = json_string_value(json_object_get(body, "month"));
    int64_t m;
    if (!month || tally__invoices_month_parse(month, &m) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "month: required, as \"YYYY-MM\"");
        json_decref(body);
        return;
    }
    tally__invoices_env_t env;
    tally_invoicer_env(ctx->cfg, ctx->catalog, ctx->plans, ctx->store, &env);
    int64_t now = now_s();
    tally__invoice_t inv;
    int created = 0;
    char msg[256];
    json_decref(body);
    int rc = tally__invoices_close_check(&env, m, now, msg, sizeof msg);
    if (rc == 0)
        rc = tally__invoices_close(&env, m, now, &inv, &created);
    if (rc) {
        invoice_error(res, rc, msg);
        return;
    }
    json_t *o = json_pack("{s:o, s:b}", "invoice", invoice_json(&inv, env.currency, now), "created",
                          created);
    tally__invoice_fini(&inv);
    tally_route_json(res, 200, o);
}

void
tally_route_invoice_action(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *name = tally_route_param(req, "name");
    const char *action = tally_route_param(req, "action");
    const tally__token_t *tok = tally_route_token(req);
    tally__invoices_env_t env;
    tally_invoicer_env(ctx->cfg, ctx->catalog, ctx->plans, ctx->store, &env);
    int64_t now = now_s();
    tally__invoice_t inv;
    char msg[256];
    int rc = tally__invoices_act(&env, name, action, tok ? tally__token_name(tok) : "", now, &inv,
                                 msg, sizeof msg);
    if (rc) {
        invoice_error(res, rc, msg);
        return;
    }
    json_t *o = json_pack("{s:o}", "invoice", invoice_json(&inv, env.currency, now));
    tally__invoice_fini(&inv);
    tally_route_json(res, 200, o);
}
