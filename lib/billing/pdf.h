/* pdf.h — render an invoice or credit note (lib/invoice.h) as an A4 PDF document with libharu,
 * and format money from integer cents. */
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

/** What one invoice or credit note PDF shows besides the invoice itself. */
typedef struct tally__invoice_doc {
    const tally__invoice_t *inv;            /**< the invoice (required) */
    const tally__invoice_detail_t *details; /**< inv->priced.n explanations, or NULL */
    tally__invoice_party_t seller;          /**< [seller] of the configuration */
    tally__invoice_party_t buyer;           /**< name NULL or "": the tenant's name */
    const char *payment_terms;              /**< lines ("\\n" breaks), may be NULL */
    const char *payment_instructions;       /**< lines ("\\n" breaks), may be NULL */
    int credit_note;                        /**< 1: the credit note of a refunded inv */
} tally__invoice_doc_t;

/**
 * @brief Render an invoice, or the credit note of a refunded one, as a PDF
 *        document (A4 portrait).
 *
 * Page one carries the title ("INVOICE" or "CREDIT NOTE") and number (the
 * invoice's name, or its credit note's "CN-YYYY-MM"), the seller block
 * ("FROM": name, address lines, tax id, e-mail), the document's details
 * (issue and due dates, or for a credit note its date and the invoice it
 * credits; the period as "YYYY-MM-DD – YYYY-MM-DD" with the last day
 * inclusive; plan; currency; status) and the buyer block ("BILL TO": the
 * tenant and its billing address). Then a table of the priced lines (usage
 * type, quantity with unit, billable with billable unit, unit price,
 * amount), each followed by its explanation rows where details explain it:
 * the included units, one row per tier with units x unit price = amount,
 * and for a plan fee with trial days a "Free trial: N days" row at 0 and
 * the charged days. The table continues on as many pages as needed, its
 * header repeated under a "(continued)" heading. At the end, kept together:
 * subtotal, discount, total before tax, tax (label and rate), and the
 * amount due (= total + tax) or, for a credit note, the total credited;
 * then the payment terms, the due date and amount, and how to pay. Every
 * page has a "Page N of M" footer.
 *
 * Text the standard Helvetica font cannot show (anything outside
 * WinAnsi/Latin-1, control characters, invalid UTF-8) is replaced by '?';
 * over-long cells are cut with "...". The output depends only on *doc (the
 * creation date is the issue date, the credit note's date, or the period
 * start while running), so the same document renders to the same bytes.
 *
 * @param[out] pdf malloc'd document bytes; the caller frees. Set only on success.
 * @param[out] len its length in bytes.
 * @return 0; TALLY_EINVAL for a NULL argument, lines == NULL with n > 0, or
 *         credit_note set on an invoice without one; -ENOMEM; TALLY_ESTORE
 *         when libharu reports any other error.
 */
int tally__invoice_pdf_doc(const tally__invoice_doc_t *doc, char **pdf, size_t *len);

/** @brief tally__invoice_pdf_doc() of the invoice alone (no seller, buyer, details or terms). */
int tally__invoice_pdf(const tally__invoice_t *inv, char **pdf, size_t *len);

#endif
