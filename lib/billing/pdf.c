/* pdf.c — invoice PDFs with libharu (A4, Helvetica, WinAnsi text, paginated line table) and money
 * formatting. */
#include <errno.h>
#include <hpdf.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pdf.h"
#include "tally/tally.h"
#include "timeutil.h"

/* ---- money and numbers ---------------------------------------------------- */

/* Decimal digits of v with ',' every three digits; out needs 27 bytes. */
static void
group_u64(uint64_t v, char *out)
{
    char rev[32];
    size_t n = 0, d = 0;
    do {
        if (d > 0 && d % 3 == 0)
            rev[n++] = ',';
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
        d++;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
}

size_t
tally__money_format(int64_t cents, const char *currency, char *buf, size_t cap)
{
    int neg = cents < 0;
    uint64_t mag = neg ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    unsigned frac = (unsigned)(mag % 100);
    uint64_t whole = mag / 100;
    int n;

    if (!buf)
        cap = 0;
    if (!currency || !*currency || strcasecmp(currency, "USD") == 0) {
        char digits[32];
        group_u64(whole, digits);
        n = snprintf(buf, cap, "%s$%s.%02u", neg ? "-" : "", digits, frac);
    } else {
        n = snprintf(buf, cap, "%s%" PRIu64 ".%02u %s", neg ? "-" : "", whole, frac, currency);
    }
    return n < 0 ? 0 : (size_t)n;
}

/* A quantity with up to three decimals, grouped, trailing zeros dropped: "1,234.5". */
static void
format_qty(double q, char *out, size_t cap)
{
    char tmp[64];
    if (!isfinite(q)) {
        snprintf(out, cap, "-");
        return;
    }
    if (fabs(q) >= 1e15) {
        snprintf(out, cap, "%.6g", q);
        return;
    }
    snprintf(tmp, sizeof tmp, "%.3f", q);
    char *dot = strchr(tmp, '.');
    if (dot) {
        char *end = tmp + strlen(tmp);
        while (end > dot + 1 && end[-1] == '0')
            *--end = '\0';
        if (end == dot + 1)
            *dot = '\0';
    }
    int neg = tmp[0] == '-';
    if (neg && strcmp(tmp, "-0") == 0)
        neg = 0;
    const char *ip = tmp + (tmp[0] == '-');
    uint64_t whole = strtoull(ip, NULL, 10);
    char digits[32];
    group_u64(whole, digits);
    dot = strchr(tmp, '.');
    snprintf(out, cap, "%s%s%s", neg ? "-" : "", digits, dot ? dot : "");
}

/* ---- text ------------------------------------------------------------------- */

/* WinAnsiEncoding bytes 0x80..0x9F and the code points they show (0 = none). */
static const uint16_t winansi_80[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

/* The WinAnsi byte for code point cp, or '?' when the font cannot show it. */
static char
winansi_byte(uint32_t cp)
{
    if (cp >= 0x20 && cp <= 0x7E)
        return (char)cp;
    if (cp >= 0xA0 && cp <= 0xFF)
        return (char)(unsigned char)cp;
    if (cp == '\t')
        return ' ';
    for (int i = 0; i < 32; i++)
        if (winansi_80[i] && winansi_80[i] == cp)
            return (char)(unsigned char)(0x80 + i);
    return '?';
}

/*
 * UTF-8 text (at most max bytes of s, stopping at a NUL) to WinAnsi bytes in
 * out (always NUL-terminated, truncated to cap). Invalid sequences (overlong,
 * surrogates, out of range, cut short) become one '?' per bad byte.
 */
static void
to_winansi(const char *s, size_t max, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = s ? strnlen(s, max) : 0, i = 0, o = 0;
    if (cap == 0)
        return;
    while (i < len && o + 1 < cap) {
        unsigned c = p[i];
        uint32_t cp;
        size_t need;
        if (c < 0x80) {
            out[o++] = winansi_byte(c);
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            cp = c & 0x1F, need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            cp = c & 0x0F, need = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            cp = c & 0x07, need = 3;
        } else {
            out[o++] = '?';
            i++;
            continue;
        }
        size_t k;
        for (k = 1; k <= need; k++) {
            if (i + k >= len || (p[i + k] & 0xC0) != 0x80)
                break;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (k <= need || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            out[o++] = '?';
            i++;
            continue;
        }
        out[o++] = winansi_byte(cp);
        i += need + 1;
    }
    out[o] = '\0';
}

/* The document info dictionary is PDFDocEncoding, which differs from WinAnsi in 0x7F..0xA0. */
static void
pdfdoc_safe(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x7F && (unsigned char)*s <= 0xA0)
            *s = '?';
}

static void
format_date(int64_t s, char *out, size_t cap)
{
    int y, m, d;
    tally__time_to_civil(s, &y, &m, &d, NULL, NULL, NULL);
    snprintf(out, cap, "%04d-%02d-%02d", y, m, d);
}

static const char *
status_name(int status)
{
    switch (status) {
    case TALLY_INVOICE_STATUS_ISSUED:
        return "Issued";
    case TALLY_INVOICE_STATUS_PENDING:
        return "Pending";
    case TALLY_INVOICE_STATUS_PAID:
        return "Paid";
    case TALLY_INVOICE_STATUS_REFUNDED:
        return "Refunded";
    case TALLY_INVOICE_STATUS_CANCELLED:
        return "Cancelled";
    case TALLY_INVOICE_STATUS_OVERDUE:
        return "Overdue";
    default:
        return "Unknown";
    }
}

/* ---- layout ----------------------------------------------------------------- */

#define PAGE_W 595.276f
#define PAGE_H 841.89f
#define MARGIN_L 50.0f
#define MARGIN_R (PAGE_W - 50.0f)
#define TOP (PAGE_H - 50.0f)
#define BOTTOM 70.0f /* rows stay above this; the footer sits below */
#define ROW_H 15.0f
#define BODY_SIZE 9.0f
#define TOTALS_H (4 * ROW_H + 10.0f)

/* Table columns: the usage type is left-aligned, the others right-aligned at `right`. */
static const struct {
    const char *title;
    float left, right;
} cols[4] = {
    {"Usage type", MARGIN_L + 4, 228},
    {"Quantity", 232, 356},
    {"Billable", 360, 458},
    {"Amount", 462, MARGIN_R - 4},
};

typedef struct render {
    HPDF_Doc doc;
    HPDF_Font regular, bold, italic;
    HPDF_Page *pages;
    size_t npages, cap;
    HPDF_Page page; /* the current page */
    float y;        /* baseline of the next row on it */
    HPDF_STATUS error;
    int nomem;
} render_t;

/* libharu reports every error here (it never aborts with a handler set); keep the first. */
static void
on_hpdf_error(HPDF_STATUS error_no, HPDF_STATUS detail_no, void *user)
{
    render_t *r = user;
    (void)detail_no;
    if (error_no == HPDF_FAILD_TO_ALLOC_MEM)
        r->nomem = 1;
    if (!r->error)
        r->error = error_no;
}

static int
failed(const render_t *r)
{
    return r->nomem || r->error;
}

/* Draw s (WinAnsi bytes) in one cell: cut with "..." to fit [left, right]; align right if asked. */
static void
cell(render_t *r, HPDF_Font font, float size, float left, float right, float y, const char *s,
     int align_right)
{
    char buf[1024];
    float maxw = right - left;
    snprintf(buf, sizeof buf, "%s", s);
    HPDF_Page_SetFontAndSize(r->page, font, size);
    float w = HPDF_Page_TextWidth(r->page, buf);
    if (w > maxw) {
        size_t n = strlen(buf);
        while (n > 0) {
            n--;
            if (n + 4 > sizeof buf)
                continue;
            memcpy(buf + n, "...", 4);
            w = HPDF_Page_TextWidth(r->page, buf);
            if (w <= maxw)
                break;
        }
    }
    HPDF_Page_BeginText(r->page);
    HPDF_Page_TextOut(r->page, align_right ? right - w : left, y, buf);
    HPDF_Page_EndText(r->page);
}

static int
new_page(render_t *r)
{
    if (r->npages == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        HPDF_Page *p = realloc(r->pages, cap * sizeof *p);
        if (!p) {
            r->nomem = 1;
            return -1;
        }
        r->pages = p;
        r->cap = cap;
    }
    r->page = HPDF_AddPage(r->doc);
    if (!r->page)
        return -1;
    r->pages[r->npages++] = r->page;
    HPDF_Page_SetSize(r->page, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT);
    HPDF_Page_SetLineWidth(r->page, 0.5f);
    r->y = TOP;
    return failed(r) ? -1 : 0;
}

/* The table's header band at r->y; moves r->y to the first row. */
static void
table_header(render_t *r)
{
    float top = r->y;
    HPDF_Page_SetGrayFill(r->page, 0.88f);
    HPDF_Page_Rectangle(r->page, MARGIN_L, top - ROW_H - 4, MARGIN_R - MARGIN_L, ROW_H + 4);
    HPDF_Page_FillStroke(r->page);
    HPDF_Page_SetGrayFill(r->page, 0.0f);
    for (int c = 0; c < 4; c++)
        cell(r, r->bold, BODY_SIZE, cols[c].left, cols[c].right, top - ROW_H + 1, cols[c].title,
             c > 0);
    r->y = top - ROW_H - 4 - ROW_H + 2;
}

/* A continuation page: a one-line heading, then the table header again. */
static int
continue_page(render_t *r, const char *heading)
{
    if (new_page(r) < 0)
        return -1;
    cell(r, r->italic, BODY_SIZE, MARGIN_L, MARGIN_R, r->y - BODY_SIZE, heading, 0);
    r->y -= BODY_SIZE + 14;
    table_header(r);
    return failed(r) ? -1 : 0;
}

static void
header_field(render_t *r, float y, const char *label, const char *value)
{
    cell(r, r->bold, 10, MARGIN_L, MARGIN_L + 70, y, label, 0);
    cell(r, r->regular, 10, MARGIN_L + 72, MARGIN_R, y, value, 0);
}

static void
rule(render_t *r, float y)
{
    HPDF_Page_MoveTo(r->page, MARGIN_L, y);
    HPDF_Page_LineTo(r->page, MARGIN_R, y);
    HPDF_Page_Stroke(r->page);
}

static int
render(render_t *r, const tally__invoice_t *inv)
{
    const tally__priced_t *pr = &inv->priced;
    char name[256], tenant[256], plan[256], cur[16], text[1024], a[64], b[64];

    to_winansi(inv->name, sizeof inv->name, name, sizeof name);
    to_winansi(inv->tenant, sizeof inv->tenant, tenant, sizeof tenant);
    to_winansi(inv->plan, sizeof inv->plan, plan, sizeof plan);
    snprintf(cur, sizeof cur, "%.*s", (int)strnlen(pr->currency, sizeof pr->currency),
             pr->currency);

    /* Deterministic document info: nothing from the clock. */
    int64_t when = inv->issued_s ? inv->issued_s : inv->period_start_s;
    HPDF_Date date = {0};
    tally__time_to_civil(when, &date.year, &date.month, &date.day, &date.hour, &date.minutes,
                         &date.seconds);
    date.ind = 'Z';
    HPDF_SetInfoDateAttr(r->doc, HPDF_INFO_CREATION_DATE, date);
    HPDF_SetInfoDateAttr(r->doc, HPDF_INFO_MOD_DATE, date);
    snprintf(text, sizeof text, "Invoice %s", name);
    pdfdoc_safe(text);
    HPDF_SetInfoAttr(r->doc, HPDF_INFO_TITLE, text);
    snprintf(text, sizeof text, "%s", tenant);
    pdfdoc_safe(text);
    HPDF_SetInfoAttr(r->doc, HPDF_INFO_AUTHOR, text);
    HPDF_SetInfoAttr(r->doc, HPDF_INFO_CREATOR, "tally " TALLY_VERSION);
    if (failed(r))
        return -1;

    /* First page header. */
    if (new_page(r) < 0)
        return -1;
    cell(r, r->bold, 22, MARGIN_L, 300, r->y - 22, "INVOICE", 0);
    cell(r, r->bold, 12, 300, MARGIN_R, r->y - 20, name, 1);
    r->y -= 50;
    header_field(r, r->y, "Tenant", tenant);
    r->y -= 15;
    header_field(r, r->y, "Plan", plan[0] ? plan : "-");
    r->y -= 15;
    format_date(inv->period_start_s, a, sizeof a);
    /* period_end_s is exclusive (the next month's first day): show the last day. */
    format_date(inv->period_end_s > inv->period_start_s ? inv->period_end_s - 1
                                                        : inv->period_start_s,
                b, sizeof b);
    snprintf(text, sizeof text, "%s \x96 %s", a, b); /* 0x96: en dash in WinAnsi */
    header_field(r, r->y, "Period", text);
    r->y -= 15;
    if (inv->issued_s)
        format_date(inv->issued_s, a, sizeof a);
    else
        snprintf(a, sizeof a, "not yet issued");
    header_field(r, r->y, "Issued", a);
    r->y -= 15;
    if (inv->due_s)
        format_date(inv->due_s, a, sizeof a);
    else
        snprintf(a, sizeof a, "-");
    header_field(r, r->y, "Due", a);
    r->y -= 15;
    if (inv->active)
        snprintf(text, sizeof text, "Running (month to date)");
    else
        snprintf(text, sizeof text, "%s", status_name(inv->status));
    header_field(r, r->y, "Status", text);
    if (!inv->active && inv->grace_hours > 0) { /* the month-end rule it was closed under */
        r->y -= 15;
        snprintf(text, sizeof text,
                 "%lld h after month end; usage arriving after the close is billed on the "
                 "next invoice as late usage",
                 (long long)inv->grace_hours);
        header_field(r, r->y, "Grace", text);
    }
    r->y -= 30;
    table_header(r);
    if (failed(r))
        return -1;

    snprintf(text, sizeof text, "Invoice %s \x96 %s (continued)", name, tenant);
    char heading[sizeof text];
    memcpy(heading, text, sizeof heading);

    if (pr->n == 0) {
        cell(r, r->italic, BODY_SIZE, cols[0].left, MARGIN_R, r->y, "No usage in this period.", 0);
        r->y -= ROW_H;
    }
    for (size_t i = 0; i < pr->n; i++) {
        const tally__price_line_t *l = &pr->lines[i];
        char usage[256], unit[256], bunit[256], num[64], qty[384], bill[384];
        if (r->y < BOTTOM && continue_page(r, heading) < 0)
            return -1;
        to_winansi(l->usage_type, sizeof l->usage_type, usage, sizeof usage);
        to_winansi(l->unit, sizeof l->unit, unit, sizeof unit);
        to_winansi(l->billable_unit, sizeof l->billable_unit, bunit, sizeof bunit);
        if (l->fixed) {
            snprintf(qty, sizeof qty, "-");
        } else {
            format_qty(l->quantity, num, sizeof num);
            snprintf(qty, sizeof qty, "%s%s%s", num, unit[0] ? " " : "", unit);
        }
        if (l->fixed && !bunit[0]) {
            snprintf(bill, sizeof bill, "-");
        } else {
            int neg = l->billable < 0;
            group_u64(neg ? (uint64_t)0 - (uint64_t)l->billable : (uint64_t)l->billable, num);
            snprintf(bill, sizeof bill, "%s%s%s%s", neg ? "-" : "", num, bunit[0] ? " " : "",
                     bunit);
        }
        tally__money_format(l->amount_cents, cur, a, sizeof a);
        to_winansi(a, sizeof a, b, sizeof b);
        cell(r, r->regular, BODY_SIZE, cols[0].left, cols[0].right, r->y, usage, 0);
        cell(r, r->regular, BODY_SIZE, cols[1].left, cols[1].right, r->y, qty, 1);
        cell(r, r->regular, BODY_SIZE, cols[2].left, cols[2].right, r->y, bill, 1);
        cell(r, r->regular, BODY_SIZE, cols[3].left, cols[3].right, r->y, b, 1);
        r->y -= ROW_H;
        if (failed(r))
            return -1;
    }

    /* Totals, kept together on one page. */
    if (r->y - TOTALS_H < BOTTOM - ROW_H && continue_page(r, heading) < 0)
        return -1;
    rule(r, r->y + ROW_H - 4);
    static const char *const labels[3] = {"Subtotal", "Discount", "Total"};
    const int64_t amounts[3] = {pr->subtotal_cents, pr->discount_cents ? -pr->discount_cents : 0,
                                pr->total_cents};
    for (int k = 0; k < 3; k++) {
        HPDF_Font f = k == 2 ? r->bold : r->regular;
        float size = k == 2 ? 11.0f : 10.0f;
        r->y -= 4;
        tally__money_format(amounts[k], cur, a, sizeof a);
        to_winansi(a, sizeof a, b, sizeof b);
        cell(r, f, size, cols[2].left, cols[2].right, r->y, labels[k], 1);
        cell(r, f, size, cols[2].right + 4, cols[3].right, r->y, b, 1);
        r->y -= ROW_H;
    }

    /* Footers, now that the page count is known. */
    for (size_t p = 0; p < r->npages; p++) {
        r->page = r->pages[p];
        snprintf(text, sizeof text, "Page %zu of %zu", p + 1, r->npages);
        cell(r, r->regular, 8, MARGIN_L, MARGIN_R, 35, text, 1);
        snprintf(text, sizeof text, "%s \x96 %s", name, tenant);
        cell(r, r->regular, 8, MARGIN_L, 400, 35, text, 0);
    }
    return failed(r) ? -1 : 0;
}

int
tally__invoice_pdf(const tally__invoice_t *inv, char **pdf, size_t *len)
{
    if (!inv || !pdf || !len || (inv->priced.n > 0 && !inv->priced.lines))
        return TALLY_EINVAL;

    render_t r = {0};
    char *out = NULL;
    int rc = 0;

    r.doc = HPDF_New(on_hpdf_error, &r);
    if (!r.doc)
        return -ENOMEM;
    HPDF_SetCompressionMode(r.doc, HPDF_COMP_ALL);
    r.regular = HPDF_GetFont(r.doc, "Helvetica", "WinAnsiEncoding");
    r.bold = HPDF_GetFont(r.doc, "Helvetica-Bold", "WinAnsiEncoding");
    r.italic = HPDF_GetFont(r.doc, "Helvetica-Oblique", "WinAnsiEncoding");
    if (!r.regular || !r.bold || !r.italic || failed(&r) || render(&r, inv) < 0)
        goto fail;

    if (HPDF_SaveToStream(r.doc) != HPDF_OK || failed(&r))
        goto fail;
    HPDF_UINT32 size = HPDF_GetStreamSize(r.doc);
    if (size == 0 || failed(&r))
        goto fail;
    out = malloc(size);
    if (!out) {
        r.nomem = 1;
        goto fail;
    }
    HPDF_ResetStream(r.doc);
    HPDF_UINT32 got = size;
    HPDF_STATUS st = HPDF_ReadFromStream(r.doc, (HPDF_BYTE *)out, &got);
    /* Reading the stream to its very end may report HPDF_STREAM_EOF: not an error. */
    if (got != size || (st != HPDF_OK && st != HPDF_STREAM_EOF) || r.nomem ||
        (r.error && r.error != HPDF_STREAM_EOF))
        goto fail;
    HPDF_Free(r.doc);
    free(r.pages);
    *pdf = out;
    *len = size;
    return 0;

fail:
    rc = r.nomem ? -ENOMEM : TALLY_ESTORE;
    free(out);
    HPDF_Free(r.doc);
    free(r.pages);
    return rc;
}
