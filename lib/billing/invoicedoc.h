/* invoicedoc.h — what makes an invoice sendable beyond its priced lines: tax, the per-line
 * explanation (unit prices, included units, tiers, trial days), the buyer block from the payment
 * methods, credit notes, and tally's extension fields of the invoice JSON.
 *
 * Tax rule (one rounding per document): tax_cents = total_cents x rate_bp /
 * 10000 rounded half up (half a cent goes up), computed in integers on the
 * total after discounts; amount_due_cents = total_cents + tax_cents. A rate
 * of 0 gives 0 tax. The rate and label are frozen into the invoice at close
 * ([billing] tax_rate_bp, tax_label); the running invoice uses the current
 * configuration.
 *
 * Credit notes. Refunding an invoice (PAID -> REFUNDED) issues one credit
 * note numbered "CN-YYYY-MM" after the invoice's month; it credits the
 * invoice's amount due in full and is stored in the invoice's own record
 * (same write as the status change, so there is never a refund without its
 * credit note). Its PDF comes from tally__invoice_pdf_doc() with
 * credit_note set.
 */
#ifndef TALLY_INVOICEDOC_H
#define TALLY_INVOICEDOC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "invoice.h"
#include "plans.h"
#include "store.h"

/** @brief total_cents x rate_bp / 10000, rounded half up; 0 for total <= 0 or rate 0; saturates. */
int64_t tally__invoice_tax(int64_t total_cents, uint32_t rate_bp);

/** @brief Set inv's tax fields and amount due from its total (label may be NULL: "Tax"). */
void tally__invoice_tax_apply(tally__invoice_t *inv, uint32_t rate_bp, const char *label);

/**
 * @brief Explain each line of inv (see tally__invoice_detail_t): usage lines
 *        from the price of inv->plan for the line's metric, plan-fee lines
 *        ("Plan fee: TITLE") from the plan of that title, its flat fee and
 *        trial. A detail that does not add up to the line's amount to the
 *        cent is left unexplained.
 * @param plans the plan catalog (NULL: nothing is explained).
 * @param[out] out calloc'd array of inv->priced.n entries (NULL when n is 0); the caller frees.
 * @return 0, TALLY_EINVAL, -ENOMEM.
 */
int tally__invoice_details(const tally__plans_t *plans, const tally__invoice_t *inv,
                           tally__invoice_detail_t **out);

/** The buyer block's text, filled by tally__invoice_buyer(). */
typedef struct tally__invoice_buyer {
    char address[1024]; /**< lines separated by '\n'; "" when no contact is on file */
    char source[160];   /**< "payment method NAME" the contact came from, or "" */
} tally__invoice_buyer_t;

/**
 * @brief The billing contact of the tenant: the contact of the PRIMARY
 *        payment method of namespace "system", else of the first method
 *        (name order) whose contact has an address.
 * @return 0 (address "" when none is on file), store errors.
 */
int tally__invoice_buyer(tally__store_t *store, tally__invoice_buyer_t *out);

/** @brief "CN-YYYY-MM" of invoice "inv-YYYY-MM" into out; "" for any other name. */
void tally__credit_note_name(const char *invoice_name, char *out, size_t cap);

/**
 * @brief The invoice a credit note number belongs to ("CN-2026-11" -> "inv-2026-11").
 * @return 0 or TALLY_EINVAL (not a credit note number).
 */
int tally__credit_note_invoice(const char *number, char *invoice_name, size_t cap);

/**
 * @brief Record the credit note of a refund in the stored JSON record r
 *        ("credit_note": {"number", "issued", "by", "amount_cents"}) and in inv.
 */
int tally__invoice_record_credit_note(json_t *r, tally__invoice_t *inv, int64_t now_s,
                                      const char *by);

/** @brief Write inv's tax fields into a stored record (invoices.c calls it at close). */
int tally__invoice_record_put_extras(json_t *r, const tally__invoice_t *inv);

/**
 * @brief Read the tax and credit-note fields of a stored record into inv.
 *        A record without them (closed before tax existed) reads as untaxed:
 *        rate 0, amount due = total.
 */
void tally__invoice_record_get_extras(json_t *r, tally__invoice_t *inv);

/**
 * @brief Add tally's extension fields to an invoiceInvoiceType object o:
 *        tally_subtotal, tally_discount, tally_total, tally_tax,
 *        tally_amount_due (int64 cents as strings, like `amount`),
 *        tally_tax_rate_bp (integer), tally_tax_label and, once refunded,
 *        tally_credit_note. Sets `amount` to the amount due.
 * @return 0 or -ENOMEM.
 */
int tally__invoice_api_extend(json_t *o, const tally__invoice_t *inv);

#endif
