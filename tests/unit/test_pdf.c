/* test_pdf.c — invoice and credit-note PDFs (structure, pagination, text via pdftotext, PNG via
 * pdftoppm kept as CI artifacts, determinism, bad input), line explanations, tax, and money
 * formatting. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "invoicedoc.h"
#include "pdf.h"
#include "plans.h"
#include "pricing.h"
#include "tally/tally.h"
#include "timeutil.h"

/* An issued November 2026 invoice with n lines whose amounts sum to $1,234.56. */
static tally__invoice_t *
make_invoice(size_t n)
{
    tally__invoice_t *inv = calloc(1, sizeof *inv);
    cr_assert_not_null(inv);
    snprintf(inv->name, sizeof inv->name, "inv-2026-11");
    snprintf(inv->tenant, sizeof inv->tenant, "acme-corp");
    snprintf(inv->plan, sizeof inv->plan, "team");
    inv->period_start_s = tally__time_from_civil(2026, 11, 1, 0, 0, 0);
    inv->period_end_s = tally__time_from_civil(2026, 12, 1, 0, 0, 0);
    inv->issued_s = tally__time_from_civil(2026, 12, 1, 0, 5, 0);
    inv->due_s = inv->issued_s + 14 * 86400;
    inv->status = TALLY_INVOICE_STATUS_PENDING;
    tally__priced_t *p = &inv->priced;
    snprintf(p->currency, sizeof p->currency, "USD");
    p->n = n;
    p->lines = calloc(n ? n : 1, sizeof *p->lines);
    cr_assert_not_null(p->lines);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        tally__price_line_t *l = &p->lines[i];
        if (i == 0) {
            snprintf(l->usage_type, sizeof l->usage_type, "Plan fee: Team");
            l->fixed = 1;
            l->status = TALLY_PRICE_STATUS_NOT_MEASURED;
            l->amount_cents = 4900;
        } else {
            snprintf(l->usage_type, sizeof l->usage_type, "HTTP Requests %zu", i);
            snprintf(l->metric, sizeof l->metric, "http_requests");
            snprintf(l->unit, sizeof l->unit, "requests");
            snprintf(l->billable_unit, sizeof l->billable_unit, "1k requests");
            l->quantity = 1234567.5 + (double)i;
            l->billable = 1235;
            l->amount_cents = i == n - 1 ? 123456 + 1000 - sum : 1;
            l->status = TALLY_PRICE_STATUS_ACTIVE;
        }
        sum += l->amount_cents;
    }
    p->subtotal_cents = sum + (n ? 0 : 123456 + 1000);
    p->discount_cents = 1000;
    p->total_cents = p->subtotal_cents - p->discount_cents;
    return inv;
}

static void
free_invoice(tally__invoice_t *inv)
{
    free(inv->priced.lines);
    free(inv);
}

static int
count_pages(const char *pdf, size_t len)
{
    static const char key[] = "/Type /Page";
    int n = 0;
    for (size_t i = 0; i + sizeof key - 1 <= len; i++)
        if (memcmp(pdf + i, key, sizeof key - 1) == 0 &&
            (i + sizeof key - 1 == len || pdf[i + sizeof key - 1] != 's'))
            n++;
    return n;
}

static void
assert_pdf_frame(const char *pdf, size_t len)
{
    cr_assert_gt(len, 16);
    cr_assert_eq(memcmp(pdf, "%PDF-", 5), 0);
    size_t end = len;
    while (end > 0 && (pdf[end - 1] == '\n' || pdf[end - 1] == '\r'))
        end--;
    cr_assert_geq(end, 5);
    cr_assert_eq(memcmp(pdf + end - 5, "%%EOF", 5), 0, "no %%%%EOF at the end");
}

static char *
render(const tally__invoice_t *inv, size_t *len)
{
    char *pdf = NULL;
    int rc = tally__invoice_pdf(inv, &pdf, len);
    cr_assert_eq(rc, 0, "tally__invoice_pdf: %d", rc);
    cr_assert_not_null(pdf);
    assert_pdf_frame(pdf, *len);
    return pdf;
}

/* The text of the PDF per pdftotext, or NULL when pdftotext is not installed. */
static char *
pdf_text(const char *pdf, size_t len)
{
    if (system("command -v pdftotext >/dev/null 2>&1") != 0)
        return NULL;
    char path[] = "/tmp/tally-test-pdf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, pdf, len), (ssize_t)len);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "pdftotext -enc UTF-8 %s -", path);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (;;) {
        if (n + 4096 > cap) {
            cap *= 2;
            text = realloc(text, cap);
            cr_assert_not_null(text);
        }
        size_t got = fread(text + n, 1, 4096, f);
        if (got == 0)
            break;
        n += got;
    }
    text[n] = '\0';
    cr_assert_eq(pclose(f), 0, "pdftotext failed");
    unlink(path);
    return text;
}

Test(pdf, five_lines_make_one_page)
{
    tally__invoice_t *inv = make_invoice(5);
    size_t len;
    char *pdf = render(inv, &len);
    cr_assert_eq(count_pages(pdf, len), 1);
    free(pdf);
    free_invoice(inv);
}

Test(pdf, two_hundred_lines_make_several_pages)
{
    tally__invoice_t *inv = make_invoice(200);
    size_t len;
    char *pdf = render(inv, &len);
    int pages = count_pages(pdf, len);
    cr_assert_gt(pages, 1);
    char *text = pdf_text(pdf, len);
    if (text) {
        char want[32];
        snprintf(want, sizeof want, "Page %d of %d", pages, pages);
        cr_assert_not_null(strstr(text, want), "%s missing", want);
        cr_assert_not_null(strstr(text, "HTTP Requests 199"));
        cr_assert_not_null(strstr(text, "(continued)"));
        /* The table header is repeated on every page. */
        int headers = 0;
        for (const char *p = text; (p = strstr(p, "Usage type")); p++)
            headers++;
        cr_assert_eq(headers, pages);
        cr_assert_not_null(strstr(text, "$1,234.56"));
        free(text);
    } else {
        cr_log_info("pdftotext not installed: text checks skipped");
    }
    free(pdf);
    free_invoice(inv);
}

Test(pdf, text_shows_name_tenant_lines_and_total)
{
    tally__invoice_t *inv = make_invoice(5);
    size_t len;
    char *pdf = render(inv, &len);
    char *text = pdf_text(pdf, len);
    if (!text) {
        cr_log_info("pdftotext not installed: text checks skipped");
    } else {
        cr_assert_not_null(strstr(text, "inv-2026-11"), "%s", text);
        cr_assert_not_null(strstr(text, "acme-corp"), "%s", text);
        cr_assert_not_null(strstr(text, "HTTP Requests 1"), "%s", text);
        cr_assert_not_null(strstr(text, "Plan fee: Team"), "%s", text);
        cr_assert_not_null(strstr(text, "$1,234.56"), "%s", text);
        cr_assert_not_null(strstr(text, "$1,244.56"), "subtotal: %s", text);
        cr_assert_not_null(strstr(text, "-$10.00"), "discount: %s", text);
        cr_assert_not_null(strstr(text, "2026-11-01 \xe2\x80\x93 2026-11-30"), "period: %s", text);
        cr_assert_not_null(strstr(text, "2026-12-15"), "due: %s", text);
        cr_assert_not_null(strstr(text, "Pending"), "%s", text);
        cr_assert_not_null(strstr(text, "1,234,568.5 requests"), "%s", text);
        cr_assert_not_null(strstr(text, "1,235 1k requests"), "%s", text);
        free(text);
    }
    free(pdf);
    free_invoice(inv);
}

Test(pdf, same_invoice_same_bytes)
{
    tally__invoice_t *inv = make_invoice(30);
    size_t la, lb;
    char *a = render(inv, &la);
    sleep(1); /* a clock-based creation date would now differ */
    char *b = render(inv, &lb);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(a, b, la), 0);
    free(a);
    free(b);
    free_invoice(inv);
}

Test(pdf, empty_running_invoice_other_currency)
{
    tally__invoice_t *inv = make_invoice(0);
    inv->active = 1;
    inv->issued_s = inv->due_s = 0;
    inv->status = TALLY_INVOICE_STATUS_UNKNOWN;
    snprintf(inv->priced.currency, sizeof inv->priced.currency, "EUR");
    size_t len;
    char *pdf = render(inv, &len);
    cr_assert_eq(count_pages(pdf, len), 1);
    char *text = pdf_text(pdf, len);
    if (text) {
        cr_assert_not_null(strstr(text, "No usage in this period."), "%s", text);
        cr_assert_not_null(strstr(text, "1234.56 EUR"), "%s", text);
        cr_assert_not_null(strstr(text, "Running"), "%s", text);
        free(text);
    } else {
        cr_log_info("pdftotext not installed: text checks skipped");
    }
    free(pdf);
    free_invoice(inv);
}

Test(pdf, unrepresentable_and_unterminated_text_is_safe)
{
    tally__invoice_t *inv = make_invoice(3);
    /* Non-Latin-1, invalid UTF-8, a control character, Latin-1, and no NUL at all. */
    snprintf(inv->tenant, sizeof inv->tenant,
             "Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xff\xfe\x01 \xe2\x82\xac");
    memset(inv->name, 'N', sizeof inv->name);
    memset(inv->plan, 'P', sizeof inv->plan);
    tally__price_line_t *l = &inv->priced.lines[1];
    memset(l->usage_type, 0, sizeof l->usage_type);
    for (size_t i = 0; i + 3 < sizeof l->usage_type; i += 3)
        memcpy(l->usage_type + i, "\xe2\x98\x83", 3); /* snowmen, one cut short at the end */
    l->usage_type[sizeof l->usage_type - 2] = '\xe2';
    l->usage_type[sizeof l->usage_type - 1] = '\x98';
    memset(l->unit, 'u', sizeof l->unit);
    memset(l->billable_unit, 'b', sizeof l->billable_unit);
    memset(inv->priced.currency, 'X', sizeof inv->priced.currency);
    l->quantity = -0.0001;
    inv->priced.lines[2].quantity = 1.0 / 0.0;
    snprintf(inv->priced.lines[2].usage_type, sizeof l->usage_type, "Storage (GB\\month) \\");
    size_t len;
    char *pdf = render(inv, &len);
    char *text = pdf_text(pdf, len);
    if (text) {
        cr_assert_not_null(strstr(text, "Caf\xc3\xa9 ?? ??? \xe2\x82\xac"), "%s", text);
        cr_assert_not_null(strstr(text, "???"), "%s", text);
        cr_assert_not_null(strstr(text, "Storage (GB\\month) \\"), "%s", text);
        free(text);
    } else {
        cr_log_info("pdftotext not installed: text checks skipped");
    }
    free(pdf);
    free_invoice(inv);
}

Test(pdf, invalid_arguments)
{
    tally__invoice_t *inv = make_invoice(2);
    char *pdf = (char *)0x1;
    size_t len = 7;
    cr_assert_eq(tally__invoice_pdf(NULL, &pdf, &len), TALLY_EINVAL);
    cr_assert_eq(tally__invoice_pdf(inv, NULL, &len), TALLY_EINVAL);
    cr_assert_eq(tally__invoice_pdf(inv, &pdf, NULL), TALLY_EINVAL);
    tally__price_line_t *lines = inv->priced.lines;
    inv->priced.lines = NULL;
    cr_assert_eq(tally__invoice_pdf(inv, &pdf, &len), TALLY_EINVAL);
    inv->priced.lines = lines;
    cr_assert_eq(pdf, (char *)0x1, "out parameters untouched on error");
    cr_assert_eq(len, 7);
    free_invoice(inv);
}

Test(money, formats_cents)
{
    static const struct {
        int64_t cents;
        const char *cur, *want;
    } cases[] = {
        {0, "USD", "$0.00"},
        {1, "USD", "$0.01"},
        {99, "USD", "$0.99"},
        {100, "USD", "$1.00"},
        {123456, "USD", "$1,234.56"},
        {100000000, "USD", "$1,000,000.00"},
        {-5, "USD", "-$0.05"},
        {-123456, "usd", "-$1,234.56"},
        {123456, NULL, "$1,234.56"},
        {123456, "", "$1,234.56"},
        {INT64_MAX, "USD", "$92,233,720,368,547,758.07"},
        {INT64_MIN, "USD", "-$92,233,720,368,547,758.08"},
        {0, "EUR", "0.00 EUR"},
        {123456, "EUR", "1234.56 EUR"},
        {-5, "EUR", "-0.05 EUR"},
        {INT64_MAX, "EUR", "92233720368547758.07 EUR"},
        {INT64_MIN, "EUR", "-92233720368547758.08 EUR"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        size_t n = tally__money_format(cases[i].cents, cases[i].cur, buf, sizeof buf);
        cr_assert_str_eq(buf, cases[i].want, "case %zu", i);
        cr_assert_eq(n, strlen(cases[i].want));
    }
}

Test(money, truncates_like_snprintf)
{
    char buf[6];
    cr_assert_eq(tally__money_format(123456, "USD", buf, sizeof buf), 9);
    cr_assert_str_eq(buf, "$1,23");
    cr_assert_eq(tally__money_format(123456, "USD", NULL, 0), 9);
}

/* ---- a sendable invoice: seller, buyer, unit prices, tiers, trial, tax, terms --------------- */

/* The shipped catalogs (config/metrics.ini, config/plans.ini). */
static void
load_catalogs(tally__catalog_t **cat, tally__plans_t **plans)
{
    const char *src = getenv("TALLY_SOURCE_DIR");
    char path[1024], err[512];
    if (!src || !src[0])
        src = "..";
    snprintf(path, sizeof path, "%s/config/metrics.ini", src);
    cr_assert_eq(tally__catalog_load(path, cat, err, sizeof err), 0, "%s: %s", path, err);
    snprintf(path, sizeof path, "%s/config/plans.ini", src);
    cr_assert_eq(tally__plans_load(path, *cat, plans, err, sizeof err), 0, "%s: %s", path, err);
}

static tally__price_line_t *
usage_line(tally__invoice_t *inv, const tally__plans_t *plans, const char *usage_type,
           const char *metric, const char *unit, const char *bunit, double qty, int64_t billable)
{
    tally__price_line_t *l = &inv->priced.lines[inv->priced.n++];
    snprintf(l->usage_type, sizeof l->usage_type, "%s", usage_type);
    snprintf(l->metric, sizeof l->metric, "%s", metric);
    snprintf(l->unit, sizeof l->unit, "%s", unit);
    snprintf(l->billable_unit, sizeof l->billable_unit, "%s", bunit);
    l->quantity = qty;
    l->billable = billable;
    /* the real charge rule of pricing.c, so the explanation has to match it */
    l->amount_cents = tally__pricing_charge(
        tally__plan_price_find(tally__plans_find(plans, inv->plan), metric), billable);
    l->status = TALLY_PRICE_STATUS_ACTIVE;
    l->start_s = inv->period_start_s;
    l->end_s = inv->period_end_s;
    return l;
}

/*
 * November 2026 on plan "individual" ($20.00 a month, 14-day trial from Nov 1, so 16 of 30 days
 * are charged; bytes_out tiered 0-1000:9, 1000-10000:7, 10000-:5 cents per GB above 100 GB
 * included), with extra_lines more usage lines to make it long.
 */
static tally__invoice_t *
sendable_invoice(const tally__plans_t *plans, size_t extra_lines)
{
    tally__invoice_t *inv = calloc(1, sizeof *inv);
    cr_assert_not_null(inv);
    snprintf(inv->name, sizeof inv->name, "inv-2026-11");
    snprintf(inv->tenant, sizeof inv->tenant, "acme-corp");
    snprintf(inv->plan, sizeof inv->plan, "individual");
    inv->period_start_s = tally__time_from_civil(2026, 11, 1, 0, 0, 0);
    inv->period_end_s = tally__time_from_civil(2026, 12, 1, 0, 0, 0);
    inv->issued_s = tally__time_from_civil(2026, 12, 3, 9, 0, 0);
    inv->due_s = inv->issued_s + 14 * 86400;
    inv->status = TALLY_INVOICE_STATUS_ISSUED;
    tally__priced_t *p = &inv->priced;
    snprintf(p->currency, sizeof p->currency, "USD");
    p->lines = calloc(8 + extra_lines, sizeof *p->lines);
    cr_assert_not_null(p->lines);

    tally__price_line_t *fee = &p->lines[p->n++];
    snprintf(fee->usage_type, sizeof fee->usage_type, "Plan fee: Individual");
    snprintf(fee->unit, sizeof fee->unit, "days");
    snprintf(fee->billable_unit, sizeof fee->billable_unit, "days");
    fee->fixed = 1;
    fee->quantity = 30;
    fee->billable = 30;
    fee->amount_cents = tally__pricing_prorate(2000, TALLY_PERIOD_MONTH, 16, 30, 365);
    cr_assert_eq(fee->amount_cents, 1067, "2000 x 16 / 30 = 1066.67, half up");
    fee->status = TALLY_PRICE_STATUS_NOT_MEASURED;
    fee->start_s = inv->period_start_s;
    fee->end_s = inv->period_end_s;

    usage_line(inv, plans, "HTTP Requests", "http_requests", "requests", "million requests",
               24500000, 25); /* 15 above 10 included at 60 = 900 */
    usage_line(inv, plans, "Data Transfer Out", "bytes_out", "bytes", "GB", 1.2e13,
               12000); /* 900 x 9 + 9000 x 7 + 2000 x 5 = 81100 */
    usage_line(inv, plans, "vCPU", "vcpu_seconds", "vCPU-seconds", "vCPU-hours", 360000,
               100); /* all included: 0 */
    usage_line(inv, plans, "Load Balancers", "lb_count", "objects", "object-hours", 2, 1440);
    for (size_t i = 0; i < extra_lines; i++) {
        char name[64];
        snprintf(name, sizeof name, "API Calls %zu", i + 1);
        usage_line(inv, plans, name, "api_calls", "calls", "thousand calls", 150000, 150);
    }
    for (size_t i = 0; i < p->n; i++)
        p->subtotal_cents += p->lines[i].amount_cents;
    p->total_cents = p->subtotal_cents;
    tally__invoice_tax_apply(inv, 2000, "VAT");
    return inv;
}

/* Render inv as the daemon does: explanations from the catalog, seller, buyer, terms. */
static char *
render_doc(const tally__plans_t *plans, const tally__invoice_t *inv, int credit_note, size_t *len)
{
    tally__invoice_detail_t *details = NULL;
    cr_assert_eq(tally__invoice_details(plans, inv, &details), 0);
    tally__invoice_doc_t doc = {
        .inv = inv,
        .details = details,
        .seller = {"Tally Metering GmbH",
                   "Hauptstra\xc3\x9f"
                   "e 1\\n10115 Berlin\\nGermany",
                   "DE123456789", "billing@tally.example"},
        .buyer = {"Acme Corp", "1 Road Runner Way\nTucson, AZ 85701\nUSA", NULL, NULL},
        .payment_terms = "Net 14",
        .payment_instructions = "Bank transfer to IBAN DE89 3704 0044 0532 0130 00\\nBIC "
                                "COBADEFFXXX",
        .credit_note = credit_note,
    };
    char *pdf = NULL;
    int rc = tally__invoice_pdf_doc(&doc, &pdf, len);
    free(details);
    cr_assert_eq(rc, 0, "tally__invoice_pdf_doc: %s", tally_strerror(rc));
    assert_pdf_frame(pdf, *len);
    return pdf;
}

/* Keep page one as a PNG under the build dir's artifacts/ (CI keeps it; docs/reliability.md). */
static void
keep_png(const char *pdf, size_t len, const char *stem)
{
    const char *bin = getenv("TALLY_BIN_DIR");
    char dir[1024], pdfpath[1100], cmd[4096], png[1100];
    snprintf(dir, sizeof dir, "%s/../artifacts", bin && bin[0] ? bin : ".");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(pdfpath, sizeof pdfpath, "%s/%s.pdf", dir, stem);
    FILE *f = fopen(pdfpath, "wb");
    cr_assert_not_null(f, "%s", pdfpath);
    cr_assert_eq(fwrite(pdf, 1, len, f), len);
    fclose(f);
    snprintf(cmd, sizeof cmd, "pdftoppm -png -r 72 -f 1 -l 1 -singlefile '%s' '%s/%s'", pdfpath,
             dir, stem);
    cr_assert_eq(system(cmd), 0, "pdftoppm failed (poppler-utils, in dev.sh TEST_PKGS)");
    snprintf(png, sizeof png, "%s/%s.png", dir, stem);
    f = fopen(png, "rb");
    cr_assert_not_null(f, "%s not written", png);
    unsigned char head[8] = {0};
    cr_assert_eq(fread(head, 1, 8, f), 8);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    cr_assert_eq(memcmp(head, "\x89PNG\r\n\x1a\n", 8), 0, "%s is not a PNG", png);
    cr_assert_gt(size, 5000, "%s: %ld bytes, an empty page?", png, size);
    cr_log_info("kept %s", png);
}

static void
want(const char *text, const char *s)
{
    cr_assert_not_null(strstr(text, s), "\"%s\" missing from:\n%s", s, text);
}

Test(pdf, sendable_invoice_shows_seller_buyer_unit_prices_tiers_trial_tax_and_terms)
{
    cr_assert_eq(system("command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null"), 0,
                 "pdftotext and pdftoppm are needed (poppler-utils, in dev.sh TEST_PKGS)");
    tally__catalog_t *cat;
    tally__plans_t *plans;
    load_catalogs(&cat, &plans);
    tally__invoice_t *inv = sendable_invoice(plans, 0);
    /* 1067 + 900 + 81100 + 0 + 720; one rounding on the total: 20 % = 16757.4 -> 16757 */
    cr_assert_eq(inv->priced.total_cents, 83787);
    cr_assert_eq(inv->tax_cents, 16757);
    cr_assert_eq(inv->amount_due_cents, 100544);

    size_t len;
    char *pdf = render_doc(plans, inv, 0, &len);
    cr_assert_eq(count_pages(pdf, len), 1, "a normal month fits one page");
    char *text = pdf_text(pdf, len);
    cr_assert_not_null(text);
    /* seller and buyer */
    want(text, "INVOICE");
    want(text, "Tally Metering GmbH");
    want(text, "Hauptstra\xc3\x9f"
               "e 1");
    want(text, "10115 Berlin");
    want(text, "Tax ID: DE123456789");
    want(text, "billing@tally.example");
    want(text, "BILL TO");
    want(text, "Acme Corp");
    want(text, "Tucson, AZ 85701");
    /* details */
    want(text, "Currency");
    want(text, "USD");
    want(text, "2026-12-17"); /* due */
    /* unit prices, included units, tiers */
    want(text, "Unit price");
    want(text, "$0.60"); /* per million requests */
    want(text, "Included in the plan: 10 million requests");
    want(text, "$9.00"); /* 15 x $0.60 */
    want(text, "Included in the plan: 100 GB");
    want(text, "tiered");
    want(text, "Tier 1 \xe2\x80\x93 1,000");
    want(text, "900 GB");
    want(text, "$81.00");
    want(text, "Tier 1,001 \xe2\x80\x93 10,000");
    want(text, "9,000 GB");
    want(text, "$630.00");
    want(text, "Tier 10,001 and up");
    want(text, "2,000 GB");
    want(text, "$100.00");
    want(text, "$811.00");
    /* the trial, as a trial */
    want(text, "$20.00 / month");
    want(text, "Free trial: 14 days");
    want(text, "Charged after the trial: 16 days");
    want(text, "$10.67");
    /* subtotal + tax = amount due */
    want(text, "Subtotal");
    want(text, "$837.87");
    want(text, "VAT (20.00%)");
    want(text, "$167.57");
    want(text, "$7.20"); /* 720 object-hours above the 720 included, at $0.01 */
    want(text, "Amount due");
    want(text, "$1,005.44");
    /* terms and instructions */
    want(text, "Payment terms");
    want(text, "Net 14");
    want(text, "Please pay $1,005.44 by 2026-12-17, quoting inv-2026-11.");
    want(text, "IBAN DE89 3704 0044 0532 0130 00");
    want(text, "BIC COBADEFFXXX");
    want(text, "Page 1 of 1");
    keep_png(pdf, len, "invoice-2026-11");
    free(text);
    free(pdf);
    free_invoice(inv);
    tally__plans_destroy(plans);
    tally__catalog_destroy(cat);
}

Test(pdf, long_sendable_invoice_paginates_with_header_and_page_numbers)
{
    tally__catalog_t *cat;
    tally__plans_t *plans;
    load_catalogs(&cat, &plans);
    tally__invoice_t *inv = sendable_invoice(plans, 90);
    size_t len;
    char *pdf = render_doc(plans, inv, 0, &len);
    int pages = count_pages(pdf, len);
    cr_assert_geq(pages, 3, "%d pages", pages);
    char *text = pdf_text(pdf, len);
    cr_assert_not_null(text, "pdftotext is needed (poppler-utils)");
    for (int p = 1; p <= pages; p++) {
        char w[32];
        snprintf(w, sizeof w, "Page %d of %d", p, pages);
        want(text, w);
    }
    int headers = 0, continued = 0;
    for (const char *q = text; (q = strstr(q, "Usage type")); q++)
        headers++;
    for (const char *q = text;
         (q = strstr(q, "Invoice inv-2026-11 \xe2\x80\x93 acme-corp (continued)")); q++)
        continued++;
    cr_assert_eq(headers, pages, "the table header on every page");
    cr_assert_eq(continued, pages - 1, "a heading on every page after the first");
    want(text, "API Calls 90");
    want(text, "Amount due");
    keep_png(pdf, len, "invoice-long-page1");
    free(text);
    free(pdf);
    free_invoice(inv);
    tally__plans_destroy(plans);
    tally__catalog_destroy(cat);
}

Test(pdf, credit_note_has_its_number_the_invoice_and_the_amount_credited)
{
    tally__catalog_t *cat;
    tally__plans_t *plans;
    load_catalogs(&cat, &plans);
    tally__invoice_t *inv = sendable_invoice(plans, 0);
    size_t len;
    char *pdf = NULL;
    tally__invoice_doc_t bad = {.inv = inv, .credit_note = 1};
    cr_assert_eq(tally__invoice_pdf_doc(&bad, &pdf, &len), TALLY_EINVAL,
                 "no credit note before the refund");
    inv->status = TALLY_INVOICE_STATUS_REFUNDED;
    tally__credit_note_name(inv->name, inv->credit_note, sizeof inv->credit_note);
    cr_assert_str_eq(inv->credit_note, "CN-2026-11");
    inv->credit_note_s = tally__time_from_civil(2026, 12, 20, 12, 0, 0);
    pdf = render_doc(plans, inv, 1, &len);
    char *text = pdf_text(pdf, len);
    cr_assert_not_null(text, "pdftotext is needed (poppler-utils)");
    want(text, "CREDIT NOTE");
    want(text, "CN-2026-11");
    want(text, "Credits invoice");
    want(text, "inv-2026-11");
    want(text, "2026-12-20");
    want(text, "CREDITED TO");
    want(text, "Total credited");
    want(text, "$1,005.44");
    want(text, "This credit note credits invoice inv-2026-11 in full: $1,005.44 refunded.");
    cr_assert_null(strstr(text, "Amount due"), "a credit note asks for no payment:\n%s", text);
    cr_assert_null(strstr(text, "INVOICE\n"), "%s", text);
    keep_png(pdf, len, "credit-note-2026-11");
    free(text);
    free(pdf);
    free_invoice(inv);
    tally__plans_destroy(plans);
    tally__catalog_destroy(cat);
}

Test(pdf, explanations_that_do_not_add_up_are_left_out)
{
    tally__catalog_t *cat;
    tally__plans_t *plans;
    load_catalogs(&cat, &plans);
    tally__invoice_t *inv = sendable_invoice(plans, 0);
    inv->priced.lines[2].amount_cents += 1;  /* frozen under another catalog: no longer matches */
    inv->priced.lines[0].amount_cents = 999; /* no day count of $20.00 a month gives 999 */
    tally__invoice_detail_t *d = NULL;
    cr_assert_eq(tally__invoice_details(plans, inv, &d), 0);
    cr_assert_eq(d[0].explained, 0);
    cr_assert_eq(d[1].explained, 1);
    cr_assert_eq(d[1].unit_price_cents, 60);
    cr_assert_eq(d[1].included, 10);
    cr_assert_eq(d[2].explained, 0);
    cr_assert_eq(d[3].explained, 1, "all included: explained at 0");
    free(d);
    size_t len;
    char *pdf = render_doc(plans, inv, 0, &len);
    char *text = pdf_text(pdf, len);
    cr_assert_not_null(text);
    cr_assert_null(strstr(text, "Tier 1,001"), "no tier rows for an unexplained line:\n%s", text);
    cr_assert_null(strstr(text, "Free trial"), "%s", text);
    free(text);
    free(pdf);
    free_invoice(inv);
    tally__plans_destroy(plans);
    tally__catalog_destroy(cat);
}

Test(tax, one_half_up_rounding_on_the_total)
{
    cr_assert_eq(tally__invoice_tax(0, 2000), 0);
    cr_assert_eq(tally__invoice_tax(12345, 0), 0, "rate 0: no tax");
    cr_assert_eq(tally__invoice_tax(-500, 2000), 0, "nothing to tax");
    cr_assert_eq(tally__invoice_tax(5, 1000), 1, "0.5 cent goes up");
    cr_assert_eq(tally__invoice_tax(15, 1000), 2, "1.5 -> 2");
    cr_assert_eq(tally__invoice_tax(14, 1000), 1, "1.4 -> 1");
    cr_assert_eq(tally__invoice_tax(83067, 2000), 16613);
    cr_assert_eq(tally__invoice_tax(1, 10000), 1, "100 %");
    cr_assert_eq(tally__invoice_tax(INT64_MAX, 10000), INT64_MAX, "no overflow");
    cr_assert_eq(tally__invoice_tax(INT64_MAX, 1), 922337203685478, "exact beyond 2^63 / 10000");
    tally__invoice_t inv = {0};
    inv.priced.total_cents = INT64_MAX - 1;
    tally__invoice_tax_apply(&inv, 2000, NULL);
    cr_assert_str_eq(inv.tax_label, "Tax");
    cr_assert_eq(inv.amount_due_cents, INT64_MAX, "saturates");
}
