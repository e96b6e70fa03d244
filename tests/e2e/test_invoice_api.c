/* test_invoice_api.c — invoices against a live tallyd: closing last month with tallyctl, the list,
 * pay / refund / illegal cancel, idempotent close, the PDF (seller, buyer, tax from the config and
 * the payment method, read back with pdftotext), the credit note of a refund and the namespace
 * rule. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "openapi_validate.h"
#include "timeutil.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN
#define LIST "/api/web/namespaces/system/usage/invoices/custom_list"
#define PDF "/api/web/namespaces/system/usage/invoice_pdf"
#define ACTION "/api/tally/namespaces/system/invoices/"
#define CN_PDF "/api/web/namespaces/system/usage/credit_note_pdf"

static harness_t *H;
static json_t *doc;
static char last_month[8], last_name[16], cur_name[16];

static void
setup(void)
{
    /* events a few days before this month began: inside a 100-day late window */
    const char *env[] = {"TALLY_INGEST_LATE_WINDOW_HOURS=2400",
                         "TALLY_BILLING_DEFAULT_PLAN=individual", /* $20.00 a month */
                         "TALLY_SELLER_NAME=Tally Metering GmbH",
                         "TALLY_SELLER_ADDRESS=Hauptstrasse 1\\n10115 Berlin",
                         "TALLY_SELLER_TAX_ID=DE123456789",
                         "TALLY_BILLING_TAX_RATE_BP=2000",
                         "TALLY_BILLING_TAX_LABEL=VAT",
                         "TALLY_BILLING_PAYMENT_INSTRUCTIONS=IBAN DE89 3704 0044 0532 0130 00",
                         NULL};
    H = harness_start(env);
    char path[2048];
    const char *src = getenv("TALLY_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/daemon/openapi.json", src ? src : ".");
    json_error_t e;
    doc = json_load_file(path, 0, &e);
    cr_assert_not_null(doc, "cannot load %s: %s", path, e.text);
    int64_t now = harness_now_ms() / 1000;
    int64_t cur = tally__time_month_start(now);
    int64_t prev = tally__time_month_start(cur - 1);
    int y, m;
    tally__time_to_civil(prev, &y, &m, NULL, NULL, NULL, NULL);
    snprintf(last_month, sizeof last_month, "%04d-%02d", y, m);
    snprintf(last_name, sizeof last_name, "inv-%s", last_month);
    tally__time_to_civil(cur, &y, &m, NULL, NULL, NULL, NULL);
    snprintf(cur_name, sizeof cur_name, "inv-%04d-%02d", y, m);
    /* one batch, one flush: the month's data is complete when it is closed */
    int64_t ts = (cur - 2 * 86400) * 1000;
    harness_emit(H, "demo", "http_requests", 1500, ts, NULL);
    harness_emit(H, "demo", "bytes_out", 3000000000LL, ts, NULL);
    harness_flush(H);
}

static void
teardown(void)
{
    json_decref(doc);
    harness_stop(H);
}

TestSuite(invoice_api, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ------------------------------------------------------------------------------ */

static void
expect_schema(const char *schema, json_t *v)
{
    char err[512];
    int rc = openapi_validate_strict(doc, schema, v, err, sizeof err);
    cr_assert_eq(rc, 0, "response does not match %s: %s", schema, err);
}

static json_t *
request(const char *method, const char *path, const char *token, const char *body, int want)
{
    harness_resp_t r;
    harness_http(H, method, path, token, body, &r);
    cr_assert_eq(r.status, want, "%s %s: %d, want %d: %s", method, path, r.status, want, r.body);
    json_t *j = json_incref(r.json);
    cr_assert_not_null(j, "%s %s: body is not JSON", method, path);
    harness_resp_free(&r);
    if (want >= 400) {
        expect_schema("#/components/schemas/tallyError", j);
    }
    return j;
}

static char *
ctl(const char *const *args, int *status)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", H->port);
    const char *argv[16];
    size_t n = 0;
    argv[n++] = "invoice";
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n++] = "--url";
    argv[n++] = url;
    argv[n++] = "--token";
    argv[n++] = ADMIN;
    argv[n] = NULL;
    return harness_tallyctl(H, argv, status);
}

static json_t *
list(const char *query)
{
    char path[256];
    snprintf(path, sizeof path, LIST "%s", query ? query : "");
    json_t *j = request("GET", path, ADMIN, NULL, 200);
    expect_schema("#/components/schemas/invoiceListInvoicesRsp", j);
    return j;
}

/* The invoices of j named name: how many, and the last one seen. */
static json_t *
find(json_t *j, const char *name, int *count)
{
    size_t i;
    json_t *inv, *found = NULL;
    *count = 0;
    json_array_foreach(json_object_get(j, "invoices"), i, inv)
    {
        if (strcmp(json_string_value(json_object_get(inv, "name")), name) == 0) {
            found = inv;
            (*count)++;
        }
    }
    return found;
}

static const char *
str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void
close_last_month(const char *want_status)
{
    int st;
    const char *args[] = {"close", "--month", last_month, NULL};
    char *out = ctl(args, &st);
    cr_assert_eq(st, 0, "tallyctl invoice close: %s", out);
    cr_assert(strstr(out, last_name) && strstr(out, want_status), "output: %s", out);
    free(out);
}

static json_t *
act(const char *name, const char *action, int want)
{
    char path[256];
    snprintf(path, sizeof path, ACTION "%s/%s", name, action);
    json_t *j = request("POST", path, ADMIN, "{}", want);
    if (want == 200)
        expect_schema("#/components/schemas/tallyInvoiceRsp", j);
    return j;
}

/* ---- tests -------------------------------------------------------------------------------- */

Test(invoice_api, close_list_pay_refund_and_conflicts)
{
    close_last_month("STATUS_ISSUED");

    json_t *j = list(NULL);
    json_t *first = json_array_get(json_object_get(j, "invoices"), 0);
    cr_assert_str_eq(str(first, "name"), cur_name, "the running invoice is listed first");
    cr_assert(json_is_true(json_object_get(first, "active")));
    cr_assert_str_eq(str(first, "status"), "STATUS_PENDING");
    int n;
    json_t *inv = find(j, last_name, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(str(inv, "status"), "STATUS_ISSUED");
    cr_assert(json_is_false(json_object_get(inv, "active")));
    const char *amount = str(inv, "amount");
    cr_assert(amount[0] && strspn(amount, "-0123456789") == strlen(amount),
              "amount is an int64 string: '%s'", amount);
    char *frozen = strdup(amount);
    json_decref(j);

    /* pay -> PAID (through tallyctl), cancel a paid one -> 409, refund -> REFUNDED */
    int st;
    const char *pay[] = {"pay", last_name, NULL};
    char *out = ctl(pay, &st);
    cr_assert_eq(st, 0, "tallyctl invoice pay: %s", out);
    cr_assert(strstr(out, "STATUS_PAID"), "%s", out);
    free(out);
    j = act(last_name, "cancel", 409);
    cr_assert_str_eq(str(j, "code"), "ECONFLICT");
    cr_assert(strstr(str(j, "message"), "STATUS_PAID"), "%s", str(j, "message"));
    json_decref(j);
    const char *cancel[] = {"cancel", last_name, NULL};
    out = ctl(cancel, &st);
    cr_assert_eq(st, 1, "tallyctl invoice cancel of a paid invoice must fail: %s", out);
    free(out);
    j = act(last_name, "refund", 200);
    inv = json_object_get(j, "invoice");
    cr_assert_str_eq(str(inv, "status"), "STATUS_REFUNDED");
    cr_assert_str_eq(str(inv, "amount"), frozen);
    json_decref(j);
    json_decref(act(last_name, "refund", 409));
    json_decref(act(last_name, "void", 400));
    json_decref(act("inv-1999-01", "pay", 404));
    json_decref(act(cur_name, "pay", 409));

    /* closing again: the same invoice, no second one */
    close_last_month("STATUS_REFUNDED");
    j = request("POST", ACTION "close", ADMIN, "{\"month\":\"0000-00\"}", 400);
    json_decref(j);
    char body[64];
    snprintf(body, sizeof body, "{\"month\":\"%s\"}", last_month);
    j = request("POST", ACTION "close", ADMIN, body, 200);
    expect_schema("#/components/schemas/tallyInvoiceRsp", j);
    cr_assert(json_is_false(json_object_get(j, "created")));
    cr_assert_str_eq(str(json_object_get(j, "invoice"), "status"), "STATUS_REFUNDED");
    json_decref(j);
    /* the running month cannot close (409: not yet), nor a month before the tenant (400) */
    snprintf(body, sizeof body, "{\"month\":\"%.7s\"}", cur_name + 4);
    json_decref(request("POST", ACTION "close", ADMIN, body, 409));
    json_decref(request("POST", ACTION "close", ADMIN, "{\"month\":\"1999-01\"}", 400));

    j = list(NULL);
    inv = find(j, last_name, &n);
    cr_assert_eq(n, 1, "closing twice never makes a second invoice");
    cr_assert_str_eq(str(inv, "status"), "STATUS_REFUNDED");
    cr_assert_str_eq(str(inv, "amount"), frozen, "closed amounts are frozen");
    json_decref(j);
    j = list("?limit=1");
    cr_assert_eq(json_array_size(json_object_get(j, "invoices")), 1);
    cr_assert_str_eq(str(json_array_get(json_object_get(j, "invoices"), 0), "name"), cur_name);
    json_decref(j);
    json_decref(request("GET", LIST "?limit=x", ADMIN, NULL, 400));
    free(frozen);
}

Test(invoice_api, ended_months_close_by_themselves)
{
    /* the invoicer closes last month at a flush after it ended (within 60 s at worst) */
    json_t *inv = NULL;
    int n = 0;
    for (int i = 0; i < 300 && !inv; i++) {
        json_t *j = list(NULL);
        inv = json_incref(find(j, last_name, &n));
        json_decref(j);
        if (!inv)
            usleep(200 * 1000);
    }
    cr_assert_not_null(inv, "%s was not closed by tallyd", last_name);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(str(inv, "status"), "STATUS_ISSUED");
    json_decref(inv);
    close_last_month("STATUS_ISSUED");
}

Test(invoice_api, pdf_is_base64_of_a_pdf)
{
    close_last_month("STATUS_ISSUED");
    char path[256];
    snprintf(path, sizeof path, PDF "?name=%s", last_name);
    json_t *j = request("GET", path, ADMIN, NULL, 200);
    expect_schema("#/components/schemas/invoiceDownloadInvoicePdfRsp", j);
    const char *b64 = str(j, "pdf");
    size_t cap = strlen(b64), len = 0;
    unsigned char *bin = malloc(cap + 1);
    cr_assert_not_null(bin);
    cr_assert_eq(sodium_base642bin(bin, cap, b64, strlen(b64), NULL, &len, NULL,
                                   sodium_base64_VARIANT_ORIGINAL),
                 0, "pdf is not base64");
    cr_assert(len > 5 && memcmp(bin, "%PDF-", 5) == 0, "not a PDF document");
    free(bin);
    json_decref(j);
    /* no name: the newest closed invoice */
    json_decref(request("GET", PDF, ADMIN, NULL, 200));
    json_decref(request("GET", PDF "?name=inv-1999-01", ADMIN, NULL, 404));
}

Test(invoice_api, invoices_are_tenant_wide)
{
    /* a token scoped to demo may not see the tenant's invoices, even under demo */
    json_decref(
        request("GET", "/api/web/namespaces/demo/usage/invoices/custom_list", VIEWER, NULL, 403));
    json_decref(request("GET", LIST, VIEWER, NULL, 403));
    json_decref(request("GET", "/api/web/namespaces/demo/usage/invoice_pdf", VIEWER, NULL, 403));
    /* a token that covers system sees them under any namespace */
    json_t *j =
        request("GET", "/api/web/namespaces/demo/usage/invoices/custom_list", ADMIN, NULL, 200);
    expect_schema("#/components/schemas/invoiceListInvoicesRsp", j);
    json_decref(j);
    /* the admin actions need an admin token */
    char body[64];
    snprintf(body, sizeof body, "{\"month\":\"%s\"}", last_month);
    json_decref(request("POST", ACTION "close", VIEWER, body, 403));
    json_decref(request("POST", ACTION "inv-2020-01/pay", HARNESS_DEMO_EDITOR_TOKEN, "{}", 403));
}

/* The PDF of a {"pdf": base64} answer, as text per pdftotext. */
static char *
pdf_text_of(json_t *j)
{
    const char *b64 = str(j, "pdf");
    size_t cap = strlen(b64), len = 0;
    unsigned char *bin = malloc(cap + 1);
    cr_assert_not_null(bin);
    cr_assert_eq(sodium_base642bin(bin, cap, b64, strlen(b64), NULL, &len, NULL,
                                   sodium_base64_VARIANT_ORIGINAL),
                 0, "pdf is not base64");
    char path[] = "/tmp/tally-e2e-pdf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, bin, len), (ssize_t)len);
    close(fd);
    free(bin);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "pdftotext -enc UTF-8 %s -", path);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char *text = calloc(1, 1 << 20);
    cr_assert_not_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    cr_assert_eq(pclose(f), 0, "pdftotext failed (poppler-utils, in dev.sh TEST_PKGS)");
    unlink(path);
    return text;
}

Test(invoice_api, tax_seller_buyer_and_the_credit_note_of_a_refund)
{
    /* the buyer: the billing contact of the tenant's primary payment method */
    json_decref(request("POST", "/api/web/namespaces/system/billing/payment_methods", ADMIN,
                        "{\"token\":\"tok_buyer\",\"role\":\"PAYMENT_METHOD_ROLE_PRIMARY\","
                        "\"contact\":{\"address1\":\"1 Road Runner Way\",\"city\":\"Tucson\","
                        "\"state\":\"AZ\",\"zip_code\":\"85701\",\"country\":\"USA\","
                        "\"contact_type\":\"BILLING\"}}",
                        200));
    close_last_month("STATUS_ISSUED");
    json_t *j = list(NULL);
    int n;
    json_t *inv = find(j, last_name, &n);
    cr_assert_eq(n, 1);
    expect_schema("#/components/schemas/invoiceInvoiceType", inv);
    long long total = atoll(str(inv, "tally_total")), tax = atoll(str(inv, "tally_tax"));
    long long due = atoll(str(inv, "tally_amount_due"));
    cr_assert_eq(total, 2000, "the individual plan's $20.00 fee; the usage is all included");
    cr_assert_eq(tax, (total * 2000 + 5000) / 10000, "20 %% of %lld, half up", total);
    cr_assert_eq(due, total + tax);
    cr_assert_eq(atoll(str(inv, "amount")), due, "amount is what the customer pays");
    cr_assert_str_eq(str(inv, "tally_tax_label"), "VAT");
    cr_assert_null(json_object_get(inv, "tally_credit_note"));
    char due_text[64];
    snprintf(due_text, sizeof due_text, "$%lld.%02lld", due / 100, due % 100);
    if (due >= 100000)
        snprintf(due_text, sizeof due_text, "$%lld,%03lld.%02lld", due / 100000, (due / 100) % 1000,
                 due % 100);
    json_decref(j);

    char path[256];
    snprintf(path, sizeof path, PDF "?name=%s", last_name);
    j = request("GET", path, ADMIN, NULL, 200);
    char *text = pdf_text_of(j);
    json_decref(j);
    static const char *const invoice_says[] = {"INVOICE",
                                               "Tally Metering GmbH",
                                               "Hauptstrasse 1",
                                               "10115 Berlin",
                                               "Tax ID: DE123456789",
                                               "BILL TO",
                                               "1 Road Runner Way",
                                               "Tucson, AZ 85701",
                                               "VAT (20.00%)",
                                               "Amount due",
                                               "Payment terms",
                                               "Net 30",
                                               "IBAN DE89 3704 0044 0532 0130 00",
                                               "Page 1 of 1",
                                               "Currency",
                                               "Plan fee: Individual",
                                               "$20.00 / month",
                                               "$4.00",
                                               "$24.00"};
    for (size_t i = 0; i < sizeof invoice_says / sizeof invoice_says[0]; i++)
        cr_assert_not_null(strstr(text, invoice_says[i]), "\"%s\" missing:\n%s", invoice_says[i],
                           text);
    cr_assert_not_null(strstr(text, due_text), "%s missing:\n%s", due_text, text);
    free(text);

    /* no credit note before the refund */
    char cn[32];
    snprintf(cn, sizeof cn, "CN-%s", last_month);
    snprintf(path, sizeof path, CN_PDF "?name=%s", cn);
    json_decref(request("GET", path, ADMIN, NULL, 404));
    json_decref(request("GET", CN_PDF, ADMIN, NULL, 400));
    json_decref(request("GET", CN_PDF "?name=inv-2020-01", ADMIN, NULL, 400));
    json_decref(request("GET", CN_PDF "?name=CN-2020-13", ADMIN, NULL, 400));

    json_decref(act(last_name, "pay", 200));
    j = act(last_name, "refund", 200);
    inv = json_object_get(j, "invoice");
    cr_assert_str_eq(str(inv, "status"), "STATUS_REFUNDED");
    cr_assert_str_eq(str(inv, "tally_credit_note"), cn);
    json_decref(j);

    j = request("GET", path, ADMIN, NULL, 200);
    expect_schema("#/components/schemas/invoiceDownloadInvoicePdfRsp", j);
    text = pdf_text_of(j);
    json_decref(j);
    static const char *const note_says[] = {"CREDIT NOTE", "Credits invoice", "Total credited",
                                            "CREDITED TO", "Tally Metering GmbH"};
    for (size_t i = 0; i < sizeof note_says / sizeof note_says[0]; i++)
        cr_assert_not_null(strstr(text, note_says[i]), "\"%s\" missing:\n%s", note_says[i], text);
    cr_assert_not_null(strstr(text, cn), "%s", text);
    cr_assert_not_null(strstr(text, last_name), "%s", text);
    cr_assert_not_null(strstr(text, due_text), "the amount credited %s:\n%s", due_text, text);
    free(text);

    /* tenant-wide like invoices: a token scoped to demo may not read it */
    snprintf(path, sizeof path, "/api/web/namespaces/demo/usage/credit_note_pdf?name=%s", cn);
    json_decref(request("GET", path, VIEWER, NULL, 403));
    json_decref(request("GET", path, ADMIN, NULL, 200));
}
