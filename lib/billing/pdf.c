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
#define MID 330.0f /* left edge of the right-hand header column */
#define TOP (PAGE_H - 50.0f)
#define BOTTOM 70.0f /* rows stay above this; the footer sits below */
#define ROW_H 15.0f
#define SUB_H 12.0f /* an explanation row under a line */
#define BODY_SIZE 9.0f
#define SUB_SIZE 8.0f
#define INFO_H 11.5f /* one line of the seller, buyer and detail blocks */
#define NCOLS 5

/* Table columns: the usage type is left-aligned, the others right-aligned at `right`. */
static const struct {
    const char *title;
    float left, right;
} cols[NCOLS] = {
    {"Usage type", MARGIN_L + 4, 184}, {"Quantity", 188, 296},        {"Billable", 300, 392},
    {"Unit price", 396, 462},          {"Amount", 466, MARGIN_R - 4},
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
    char cur[16];       /* the currency code */
    char heading[1024]; /* the first line of a continuation page */
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

/* Money as WinAnsi text. */
static void
money(const render_t *r, int64_t cents, char *out, size_t cap)
{
    char a[64];
    tally__money_format(cents, r->cur, a, sizeof a);
    to_winansi(a, sizeof a, out, cap);
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
    for (int c = 0; c < NCOLS; c++)
        cell(r, r->bold, BODY_SIZE, cols[c].left, cols[c].right, top - ROW_H + 1, cols[c].title,
             c > 0);
    r->y = top - ROW_H - 4 - ROW_H + 2;
}

/* A continuation page: a one-line heading, then the table header again (when table). */
static int
continue_page(render_t *r, int table)
{
    if (new_page(r) < 0)
        return -1;
    cell(r, r->italic, BODY_SIZE, MARGIN_L, MARGIN_R, r->y - BODY_SIZE, r->heading, 0);
    r->y -= BODY_SIZE + 14;
    if (table)
        table_header(r);
    return failed(r) ? -1 : 0;
}

/* Room for h more points of table on this page, or a continuation page. */
static int
need(render_t *r, float h)
{
    if (r->y - h + ROW_H < BOTTOM)
        return continue_page(r, 1);
    return 0;
}

static void
rule(render_t *r, float y)
{
    HPDF_Page_MoveTo(r->page, MARGIN_L, y);
    HPDF_Page_LineTo(r->page, MARGIN_R, y);
    HPDF_Page_Stroke(r->page);
}

/* One "label  value" line of the right-hand detail column at y. */
static void
detail(render_t *r, float y, const char *label, const char *value)
{
    cell(r, r->bold, BODY_SIZE, MID, MID + 78, y, label, 0);
    cell(r, r->regular, BODY_SIZE, MID + 80, MARGIN_R, y, value, 0);
}

/* Lines of UTF-8 text s split at newlines and at the two characters "\n". Calls each line in
 * WinAnsi; returns how many lines (at most max). */
static size_t
split_lines(const char *s, char lines[][256], size_t max)
{
    size_t n = 0;
    while (s && *s && n < max) {
        const char *nl = strchr(s, '\n'), *esc = strstr(s, "\\n"), *end = s + strlen(s);
        size_t skip = 0;
        if (nl && nl < end)
            end = nl, skip = 1;
        if (esc && esc < end)
            end = esc, skip = 2;
        char tmp[256];
        size_t len = (size_t)(end - s) < sizeof tmp - 1 ? (size_t)(end - s) : sizeof tmp - 1;
        memcpy(tmp, s, len);
        tmp[len] = '\0';
        to_winansi(tmp, sizeof tmp, lines[n], 256);
        if (lines[n][0])
            n++;
        s = end + skip;
        if (!skip)
            break;
    }
    return n;
}

/* A party block at (left, right) from r->y down: heading, name, address lines, tax id, email.
 * Returns the y below it. */
static float
party(render_t *r, float left, float right, float y, const char *heading,
      const tally__invoice_party_t *p, const char *none)
{
    char lines[8][256], text[300];
    cell(r, r->bold, 7.5f, left, right, y, heading, 0);
    HPDF_Page_SetGrayFill(r->page, 0.0f);
    y -= INFO_H + 1;
    if (p->name && p->name[0]) {
        to_winansi(p->name, 256, lines[0], sizeof lines[0]);
        cell(r, r->bold, 10, left, right, y, lines[0], 0);
        y -= INFO_H + 1;
    }
    size_t n = split_lines(p->address, lines, 8);
    for (size_t i = 0; i < n; i++) {
        cell(r, r->regular, BODY_SIZE, left, right, y, lines[i], 0);
        y -= INFO_H;
    }
    if (p->tax_id && p->tax_id[0]) {
        to_winansi(p->tax_id, 256, lines[0], sizeof lines[0]);
        snprintf(text, sizeof text, "Tax ID: %s", lines[0]);
        cell(r, r->regular, BODY_SIZE, left, right, y, text, 0);
        y -= INFO_H;
    }
    if (p->email && p->email[0]) {
        to_winansi(p->email, 256, lines[0], sizeof lines[0]);
        cell(r, r->regular, BODY_SIZE, left, right, y, lines[0], 0);
        y -= INFO_H;
    }
    if (n == 0 && none) {
        cell(r, r->italic, SUB_SIZE, left, right, y, none, 0);
        y -= INFO_H;
    }
    return y;
}

/* "1,001 - 10,000" / "10,001 and up": a tier's billable units, counted from 1 for people. */
static void
tier_range(const tally__invoice_tier_t *t, char *out, size_t cap)
{
    char a[32], b[32];
    group_u64(t->from + 1, a);
    if (t->up_to == 0) {
        snprintf(out, cap, "%s and up", a);
    } else {
        group_u64(t->up_to, b);
        snprintf(out, cap, "%s \x96 %s", a, b);
    }
}

/* An explanation row under a line: text over the first two columns, then units, price, amount. */
static int
sub_row(render_t *r, const char *text, const char *units, const char *price, const char *amount)
{
    if (need(r, SUB_H) < 0)
        return -1;
    r->y += ROW_H - SUB_H; /* sub rows sit closer to their line */
    cell(r, r->italic, SUB_SIZE, cols[0].left + 10, cols[1].right, r->y, text, 0);
    if (units)
        cell(r, r->italic, SUB_SIZE, cols[2].left, cols[2].right, r->y, units, 1);
    if (price)
        cell(r, r->italic, SUB_SIZE, cols[3].left, cols[3].right, r->y, price, 1);
    if (amount)
        cell(r, r->italic, SUB_SIZE, cols[4].left, cols[4].right, r->y, amount, 1);
    r->y -= ROW_H;
    return failed(r) ? -1 : 0;
}

/* Explanation rows of line l (see tally__invoice_detail_t). */
static int
explain(render_t *r, const tally__price_line_t *l, const tally__invoice_detail_t *d,
        const char *bunit)
{
    char text[384], units[384], price[64], amount[64], num[32], range[96];
    if (!d || !d->explained)
        return 0;
    if (l->fixed) {
        if (d->trial_days > 0) {
            snprintf(text, sizeof text, "Free trial: %lld day%s", (long long)d->trial_days,
                     d->trial_days == 1 ? "" : "s");
            snprintf(units, sizeof units, "%lld days", (long long)d->trial_days);
            money(r, 0, amount, sizeof amount);
            if (sub_row(r, text, units, NULL, amount) < 0)
                return -1;
            snprintf(text, sizeof text, "Charged after the trial: %lld day%s",
                     (long long)d->paid_days, d->paid_days == 1 ? "" : "s");
            snprintf(units, sizeof units, "%lld days", (long long)d->paid_days);
            money(r, l->amount_cents, amount, sizeof amount);
            if (sub_row(r, text, units, NULL, amount) < 0)
                return -1;
        }
        return 0;
    }
    if (d->included > 0) {
        group_u64(d->included, num);
        snprintf(text, sizeof text, "Included in the plan: %s%s%s", num, bunit[0] ? " " : "",
                 bunit);
        money(r, 0, amount, sizeof amount);
        if (sub_row(r, text, NULL, NULL, amount) < 0)
            return -1;
    }
    for (size_t i = 0; i < d->ntiers; i++) {
        const tally__invoice_tier_t *t = &d->tiers[i];
        tier_range(t, range, sizeof range);
        snprintf(text, sizeof text, "Tier %s", range);
        group_u64(t->units, num);
        snprintf(units, sizeof units, "%s%s%s", num, bunit[0] ? " " : "", bunit);
        money(r, t->unit_price_cents, price, sizeof price);
        money(r, t->amount_cents, amount, sizeof amount);
        if (sub_row(r, text, units, price, amount) < 0)
            return -1;
    }
    return 0;
}

/* The header of page one: title, number, seller, details, buyer. */
static void
first_header(render_t *r, const tally__invoice_doc_t *doc, const char *name, const char *plan)
{
    const tally__invoice_t *inv = doc->inv;
    char text[512], a[64], b[64], cn[64];
    int is_cn = doc->credit_note;

    to_winansi(inv->credit_note, sizeof inv->credit_note, cn, sizeof cn);
    cell(r, r->bold, 22, MARGIN_L, MID, r->y - 22, is_cn ? "CREDIT NOTE" : "INVOICE", 0);
    cell(r, r->bold, 12, MID, MARGIN_R, r->y - 20, is_cn ? cn : name, 1);
    r->y -= 46;

    /* left: the seller; right: the document's details */
    float top = r->y, yl, yr = top;
    yl = party(r, MARGIN_L, MID - 10, top, "FROM", &doc->seller,
               "Seller details not configured ([seller] in tallyd.conf)");
    yr -= INFO_H + 1;
    if (is_cn) {
        format_date(inv->credit_note_s, a, sizeof a);
        detail(r, yr, "Issued", a);
        yr -= INFO_H;
        snprintf(text, sizeof text, "%s", name);
        detail(r, yr, "Credits invoice", text);
        yr -= INFO_H;
        if (inv->issued_s) {
            format_date(inv->issued_s, a, sizeof a);
            detail(r, yr, "Invoice issued", a);
            yr -= INFO_H;
        }
    } else {
        format_date(inv->issued_s, a, sizeof a);
        detail(r, yr, "Issued", inv->issued_s ? a : "not yet issued");
        yr -= INFO_H;
        format_date(inv->due_s, a, sizeof a);
        detail(r, yr, "Due", inv->due_s ? a : "-");
        yr -= INFO_H;
    }
    format_date(inv->period_start_s, a, sizeof a);
    /* period_end_s is exclusive (the next month's first day): show the last day. */
    format_date(inv->period_end_s > inv->period_start_s ? inv->period_end_s - 1
                                                        : inv->period_start_s,
                b, sizeof b);
    snprintf(text, sizeof text, "%s \x96 %s", a, b); /* 0x96: en dash in WinAnsi */
    detail(r, yr, "Period", text);
    yr -= INFO_H;
    detail(r, yr, "Plan", plan[0] ? plan : "-");
    yr -= INFO_H;
    to_winansi(r->cur, strlen(r->cur), a, sizeof a);
    detail(r, yr, "Currency", a);
    yr -= INFO_H;
    if (is_cn)
        snprintf(text, sizeof text, "Refund of invoice %s", name);
    else if (inv->active)
        snprintf(text, sizeof text, "Running (month to date)");
    else
        snprintf(text, sizeof text, "%s", status_name(inv->status));
    detail(r, yr, "Status", text);
    yr -= INFO_H;
    if (!is_cn && !inv->active && inv->grace_hours > 0) {
        /* the month-end rule it was closed under; later usage is on the next invoice */
        snprintf(text, sizeof text, "closed %lld h after month end", (long long)inv->grace_hours);
        detail(r, yr, "Grace", text);
        yr -= INFO_H;
    }
    r->y = (yl < yr ? yl : yr) - 8;

    /* the buyer */
    tally__invoice_party_t buyer = doc->buyer;
    char raw[sizeof inv->tenant + 1]; /* party() converts: hand it UTF-8, NUL-terminated */
    snprintf(raw, sizeof raw, "%.*s", (int)strnlen(inv->tenant, sizeof inv->tenant), inv->tenant);
    if (!buyer.name || !buyer.name[0])
        buyer.name = raw;
    r->y = party(r, MARGIN_L, MID - 10, r->y, is_cn ? "CREDITED TO" : "BILL TO", &buyer,
                 "No billing address on file (add a contact to the primary payment method)");
    r->y -= 14;
}

/* Totals, tax, then the terms (or the credit note's statement), kept together on one page. */
static int
totals(render_t *r, const tally__invoice_doc_t *doc, const char *name)
{
    const tally__invoice_t *inv = doc->inv;
    const tally__priced_t *pr = &inv->priced;
    char terms[8][256], instr[8][256], text[512], a[64], label[128];
    size_t nterms = split_lines(doc->payment_terms, terms, 8);
    size_t ninstr = split_lines(doc->payment_instructions, instr, 8);
    int64_t due =
        pr->total_cents > INT64_MAX - inv->tax_cents ? INT64_MAX : pr->total_cents + inv->tax_cents;
    float h = 6 * ROW_H + 10 + (doc->credit_note ? 2 : 3 + nterms + ninstr) * INFO_H;
    if (r->y - h < BOTTOM - ROW_H && continue_page(r, 0) < 0)
        return -1;
    rule(r, r->y + ROW_H - 4);

    to_winansi(inv->tax_label[0] ? inv->tax_label : "Tax", sizeof inv->tax_label, label,
               sizeof label);
    snprintf(text, sizeof text, "%s (%u.%02u%%)", label, inv->tax_rate_bp / 100,
             inv->tax_rate_bp % 100);
    const struct {
        const char *label;
        int64_t cents;
        int strong;
    } rows[] = {
        {"Subtotal", pr->subtotal_cents, 0},
        {"Discount", pr->discount_cents ? -pr->discount_cents : 0, 0},
        {"Total before tax", pr->total_cents, 0},
        {text, inv->tax_cents, 0},
        {doc->credit_note ? "Total credited" : "Amount due", due, 1},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        HPDF_Font f = rows[k].strong ? r->bold : r->regular;
        float size = rows[k].strong ? 11.0f : 10.0f;
        r->y -= 4;
        money(r, rows[k].cents, a, sizeof a);
        cell(r, f, size, cols[1].left, cols[3].right, r->y, rows[k].label, 1);
        cell(r, f, size, cols[3].right + 4, cols[4].right, r->y, a, 1);
        r->y -= ROW_H;
    }
    r->y -= 8;
    if (doc->credit_note) {
        money(r, due, a, sizeof a);
        snprintf(text, sizeof text, "This credit note credits invoice %s in full: %s refunded.",
                 name, a);
        cell(r, r->regular, BODY_SIZE, MARGIN_L, MARGIN_R, r->y, text, 0);
        r->y -= INFO_H;
        return failed(r) ? -1 : 0;
    }
    cell(r, r->bold, BODY_SIZE, MARGIN_L, MARGIN_R, r->y, "Payment terms", 0);
    r->y -= INFO_H;
    for (size_t i = 0; i < nterms; i++) {
        cell(r, r->regular, BODY_SIZE, MARGIN_L, MARGIN_R, r->y, terms[i], 0);
        r->y -= INFO_H;
    }
    if (inv->due_s) {
        format_date(inv->due_s, a, sizeof a);
        money(r, due, label, sizeof label);
        snprintf(text, sizeof text, "Please pay %s by %s, quoting %s.", label, a, name);
    } else {
        snprintf(text, sizeof text, "Running invoice: nothing is due before the month is closed.");
    }
    cell(r, r->regular, BODY_SIZE, MARGIN_L, MARGIN_R, r->y, text, 0);
    r->y -= INFO_H;
    if (ninstr) {
        cell(r, r->bold, BODY_SIZE, MARGIN_L, MARGIN_R, r->y, "How to pay", 0);
        r->y -= INFO_H;
        for (size_t i = 0; i < ninstr; i++) {
            cell(r, r->regular, BODY_SIZE, MARGIN_L, MARGIN_R, r->y, instr[i], 0);
            r->y -= INFO_H;
        }
    }
    return failed(r) ? -1 : 0;
}

static int
render(render_t *r, const tally__invoice_doc_t *doc)
{
    const tally__invoice_t *inv = doc->inv;
    const tally__priced_t *pr = &inv->priced;
    char name[256], tenant[256], plan[256], text[1024], cn[64];

    to_winansi(inv->name, sizeof inv->name, name, sizeof name);
    to_winansi(inv->tenant, sizeof inv->tenant, tenant, sizeof tenant);
    to_winansi(inv->plan, sizeof inv->plan, plan, sizeof plan);
    to_winansi(inv->credit_note, sizeof inv->credit_note, cn, sizeof cn);
    snprintf(r->cur, sizeof r->cur, "%.*s", (int)strnlen(pr->currency, sizeof pr->currency),
             pr->currency);

    /* Deterministic document info: nothing from the clock. */
    int64_t when = doc->credit_note ? inv->credit_note_s
                   : inv->issued_s  ? inv->issued_s
                                    : inv->period_start_s;
    HPDF_Date date = {0};
    tally__time_to_civil(when, &date.year, &date.month, &date.day, &date.hour, &date.minutes,
                         &date.seconds);
    date.ind = 'Z';
    HPDF_SetInfoDateAttr(r->doc, HPDF_INFO_CREATION_DATE, date);
    HPDF_SetInfoDateAttr(r->doc, HPDF_INFO_MOD_DATE, date);
    snprintf(text, sizeof text, "%s %s", doc->credit_note ? "Credit note" : "Invoice",
             doc->credit_note ? cn : name);
    pdfdoc_safe(text);
    HPDF_SetInfoAttr(r->doc, HPDF_INFO_TITLE, text);
    snprintf(text, sizeof text, "%s", tenant);
    pdfdoc_safe(text);
    HPDF_SetInfoAttr(r->doc, HPDF_INFO_AUTHOR, text);
    HPDF_SetInfoAttr(r->doc, HPDF_INFO_CREATOR, "tally " TALLY_VERSION);
    if (failed(r))
        return -1;

    if (new_page(r) < 0)
        return -1;
    first_header(r, doc, name, plan);
    table_header(r);
    if (failed(r))
        return -1;
    snprintf(r->heading, sizeof r->heading, "%s %s \x96 %s (continued)",
             doc->credit_note ? "Credit note" : "Invoice", doc->credit_note ? cn : name, tenant);

    if (pr->n == 0) {
        cell(r, r->italic, BODY_SIZE, cols[0].left, MARGIN_R, r->y, "No usage in this period.", 0);
        r->y -= ROW_H;
    }
    for (size_t i = 0; i < pr->n; i++) {
        const tally__price_line_t *l = &pr->lines[i];
        const tally__invoice_detail_t *d = doc->details ? &doc->details[i] : NULL;
        char usage[256], unit[256], bunit[256], num[64], qty[384], bill[384], price[128], b[64];
        if (need(r, ROW_H) < 0)
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
        price[0] = '\0';
        if (d && d->explained && d->ntiers > 0) {
            snprintf(price, sizeof price, "tiered");
        } else if (d && d->explained && d->unit_price_cents >= 0) {
            money(r, d->unit_price_cents, b, sizeof b);
            if (l->fixed && d->per)
                snprintf(price, sizeof price, "%s / %s", b, d->per);
            else
                snprintf(price, sizeof price, "%s", b);
        }
        if (l->fixed && d && d->explained && d->trial_days > 0 && d->paid_days == 0)
            snprintf(usage + strlen(usage), sizeof usage - strlen(usage), " (trial)");
        money(r, l->amount_cents, b, sizeof b);
        cell(r, r->regular, BODY_SIZE, cols[0].left, cols[0].right, r->y, usage, 0);
        cell(r, r->regular, BODY_SIZE, cols[1].left, cols[1].right, r->y, qty, 1);
        cell(r, r->regular, BODY_SIZE, cols[2].left, cols[2].right, r->y, bill, 1);
        cell(r, r->regular, BODY_SIZE, cols[3].left, cols[3].right, r->y, price, 1);
        cell(r, r->regular, BODY_SIZE, cols[4].left, cols[4].right, r->y, b, 1);
        r->y -= ROW_H;
        if (failed(r) || explain(r, l, d, bunit) < 0)
            return -1;
    }

    if (totals(r, doc, name) < 0)
        return -1;

    /* Footers, now that the page count is known. */
    for (size_t p = 0; p < r->npages; p++) {
        r->page = r->pages[p];
        snprintf(text, sizeof text, "Page %zu of %zu", p + 1, r->npages);
        cell(r, r->regular, 8, MARGIN_L, MARGIN_R, 35, text, 1);
        snprintf(text, sizeof text, "%s \x96 %s", doc->credit_note ? cn : name, tenant);
        cell(r, r->regular, 8, MARGIN_L, 400, 35, text, 0);
    }
    return failed(r) ? -1 : 0;
}

int
tally__invoice_pdf_doc(const tally__invoice_doc_t *doc, char **pdf, size_t *len)
{
    if (!doc || !doc->inv || !pdf || !len || (doc->inv->priced.n > 0 && !doc->inv->priced.lines) ||
        (doc->credit_note && !doc->inv->credit_note[0]))
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
    if (!r.regular || !r.bold || !r.italic || failed(&r) || render(&r, doc) < 0)
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

int
tally__invoice_pdf(const tally__invoice_t *inv, char **pdf, size_t *len)
{
    if (!inv)
        return TALLY_EINVAL;
    tally__invoice_doc_t doc = {.inv = inv};
    return tally__invoice_pdf_doc(&doc, pdf, len);
}
