/* test_pdf.c — invoice PDFs (structure, pagination, text via pdftotext when installed, determinism,
 * bad input) and money formatting. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdf.h"
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
