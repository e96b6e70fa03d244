/* pdf.h — render an invoice (lib/invoice.h) as an A4 PDF document with libharu, and format money
 * from integer cents. */
#ifndef TALLY_PDF_H
#define TALLY_PDF_H

#include <stddef.h>
#include <stdint.h>

#include "invoice.h"

/**
 * @brief Format an amount of integer cents as currency text.
 *
 * USD (and a NULL or empty currency, tally's default) comes out as
 * "$1,234.56"; any other currency as "1234.56 EUR" (no grouping, the code
 * as given). Negative amounts get a leading '-' ("-$0.05", "-0.05 EUR").
 * Exact over the whole int64 range, INT64_MIN included.
 *
 * @param cents the amount.
 * @param currency ISO 4217 code ("USD", "EUR"; compared case-insensitively).
 * @param buf where to write; always NUL-terminated when cap > 0 (truncated
 *        if too small). May be NULL when cap is 0.
 * @param cap size of buf in bytes.
 * @return the length of the full text (excluding the NUL), like snprintf:
 *         a return >= cap means the text was truncated.
 */
size_t tally__money_format(int64_t cents, const char *currency, char *buf, size_t cap);

/**
 * @brief Render an invoice as a PDF document (A4 portrait).
 *
 * The first page carries a header (invoice name, tenant, plan, period as
 * "YYYY-MM-DD – YYYY-MM-DD" with the last day inclusive, issue and due
 * dates, status); then a table of the priced lines (usage type, quantity
 * with unit, billable with billable unit, amount), continued on as many
 * pages as needed with the table header repeated, and the subtotal,
 * discount and total at the end. Every page has a "Page N of M" footer.
 * Text the standard Helvetica font cannot show (anything outside
 * WinAnsi/Latin-1, control characters, invalid UTF-8) is replaced by '?';
 * over-long cells are cut with "...". The output depends only on *inv (the
 * creation date is the issue date, or the period start while running), so
 * the same invoice renders to the same bytes.
 *
 * @param inv the invoice; its fixed-size strings need not be NUL-terminated.
 * @param[out] pdf malloc'd document bytes; the caller frees. Set only on success.
 * @param[out] len its length in bytes.
 * @return 0; TALLY_EINVAL for a NULL argument or lines == NULL with n > 0;
 *         -ENOMEM; TALLY_ESTORE when libharu reports any other error.
 */
int tally__invoice_pdf(const tally__invoice_t *inv, char **pdf, size_t *len);

#endif
