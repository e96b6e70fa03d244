/* cmd_admin.c — tallyctl's admin actions over tallyd's HTTP API: plan approve|reject, invoice
 * close|pay|cancel|refund. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "http.h"

/* POST body to path with the command's URL and token; print the answer as
 * JSON or through show(). Returns the exit status. */
static int
post_and_show(const ctl_args_t *a, const char *path, json_t *req,
              void (*show)(const ctl_args_t *a, json_t *answer))
{
    ctl_target_t t;
    ctl_http_resp_t r;
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (body == NULL)
        return ctl_fail(a, "out of memory");
    int status = ctl_target_resolve(a, 1, &t);
    if (status != 0) {
        free(body);
        return status;
    }
    status = CTL_EXIT_FAIL;
    if (ctl_http_request(a->cmd->name, t.url, "POST", path, t.token, body, &r) != 0)
        goto out;
    if (r.status < 200 || r.status > 299) {
        ctl_http_report(a->cmd->name, &r);
    } else if (ctl_opt_flag(a, "json")) {
        status = printf("%s\n", r.body) < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
    } else {
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        show(a, j);
        json_decref(j);
        status = CTL_EXIT_OK;
    }
    ctl_http_resp_free(&r);
out:
    free(body);
    ctl_target_fini(&t);
    return status;
}

static const char *
str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

/* ---- plan approve|reject ------------------------------------------------------ */

static const ctl_opt_t plan_opts[] = {
    CTL_OPTS_HTTP,
    {"json", 0, CTL_FLAG, NULL, "print the transition record tallyd answers", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static void
show_plan(const ctl_args_t *a, json_t *j)
{
    const char *reason = str_or(j, "reason", NULL);
    printf("plan transition %s: %s%s%s\n", a->operands[1], str_or(j, "state", "?"),
           reason ? " - " : "", reason ? reason : "");
}

static int
run_plan(const ctl_args_t *a)
{
    const char *decision = a->operands[0], *id = a->operands[1];
    char path[320];
    if (strcmp(decision, "approve") != 0 && strcmp(decision, "reject") != 0)
        return ctl_usage_error(a, "approve or reject, not '%s'", decision);
    if (!id[0] || strlen(id) > 128 ||
        strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
            strlen(id))
        return ctl_usage_error(a, "'%s' is not a transition id", id);
    snprintf(path, sizeof path, "/api/tally/namespaces/system/billing/plan_transitions/%s/%s", id,
             decision);
    return post_and_show(a, path, json_object(), show_plan);
}

const ctl_cmd_t ctl_cmd_plan = {
    .name = "plan",
    .summary = "approve or reject a plan transition (admin, over HTTP)",
    .synopsis = "plan approve|reject ID [--url URL] [--token-file FILE] [--json]",
    .description =
        "  Decide a plan transition waiting for approval (STATE_WAITING_FOR_APPROVAL),\n"
        "  through POST /api/tally/namespaces/system/billing/plan_transitions/ID/DECISION\n"
        "  (an admin token). approve applies it; reject ends it in STATE_FAILED with\n"
        "  reason \"rejected by NAME\". Prints the transition's state (--json: the record).\n",
    .epilog = "Exit status 0 when tallyd accepted the decision, 1 otherwise, 2 for bad usage.\n",
    .opts = plan_opts,
    .min_operands = 2,
    .max_operands = 2,
    .run = run_plan,
};

/* ---- invoice close|pay|cancel|refund ------------------------------------------ */

static const ctl_opt_t invoice_opts[] = {
    CTL_OPTS_HTTP,
    {"month", 0, CTL_ARG, "YYYY-MM", "close: the month whose invoice to freeze", 0},
    {"json", 0, CTL_FLAG, NULL, "print tallyd's answer", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static void
show_invoice(const ctl_args_t *a, json_t *j)
{
    (void)a;
    json_t *inv = json_object_get(j, "invoice");
    printf("invoice %s: %s total_cents=%s %s%s\n", str_or(inv, "name", "?"),
           str_or(inv, "status", "?"), str_or(inv, "amount", "?"), str_or(inv, "currency", ""),
           json_is_false(json_object_get(j, "created")) ? " (already closed)" : "");
}

static int
run_invoice(const ctl_args_t *a)
{
    const char *action = a->operands[0], *month = ctl_opt_str(a, "month");
    char path[320];
    json_t *req;
    if (strcmp(action, "close") == 0) {
        if (!month)
            return ctl_usage_error(a, "close needs --month YYYY-MM");
        if (a->noperands != 1)
            return ctl_usage_error(a, "unexpected argument '%s'", a->operands[1]);
        req = json_pack("{s:s}", "month", month);
        snprintf(path, sizeof path, "/api/tally/namespaces/system/invoices/close");
    } else if (strcmp(action, "pay") == 0 || strcmp(action, "cancel") == 0 ||
               strcmp(action, "refund") == 0) {
        if (month)
            return ctl_usage_error(a, "--month belongs to close only");
        if (a->noperands != 2)
            return ctl_usage_error(a, "%s needs the invoice's NAME (inv-YYYY-MM)", action);
        const char *name = a->operands[1];
        if (!name[0] || strlen(name) > 64 ||
            strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(name))
            return ctl_usage_error(a, "'%s' is not an invoice name (inv-YYYY-MM)", name);
        snprintf(path, sizeof path, "/api/tally/namespaces/system/invoices/%s/%s", name, action);
        req = json_object();
    } else {
        return ctl_usage_error(a, "close, pay, cancel or refund, not '%s'", action);
    }
    return post_and_show(a, path, req, show_invoice);
}

const ctl_cmd_t ctl_cmd_invoice = {
    .name = "invoice",
    .summary = "close a month, or pay|cancel|refund an invoice (admin, over HTTP)",
    .synopsis = "invoice close --month YYYY-MM [--url URL] [--token-file FILE] [--json]\n"
                "invoice pay|cancel|refund NAME [--url URL] [--token-file FILE] [--json]",
    .description =
        "  close: freeze the invoice of a month that has ended (STATUS_ISSUED), through\n"
        "         POST /api/tally/namespaces/system/invoices/close; closing a month again\n"
        "         returns the invoice it already has.\n"
        "  pay|cancel|refund NAME (e.g. inv-2026-10): change an invoice's status through\n"
        "         POST /api/tally/namespaces/system/invoices/NAME/ACTION: pay and cancel\n"
        "         take STATUS_ISSUED or OVERDUE, refund takes STATUS_PAID.\n"
        "  Needs an admin token. Prints the invoice's name, status and amount\n"
        "  (--json: the response).\n",
    .epilog = "Exit status 0 when tallyd accepted the request, 1 otherwise, 2 for bad usage.\n",
    .opts = invoice_opts,
    .min_operands = 1,
    .max_operands = 2,
    .run = run_invoice,
};
