/* invoice.h — an invoice as tally stores and renders it (the lifecycle lives in invoices.c, the PDF in pdf.c).
 *
 * INTERFACE AGREED BETWEEN ENGINEERS: the invoices module produces these,
 * the PDF module renders them. Stored as JSON in the store's objects
 * (kind "invoice", ns "system", name = invoice name) by invoices.c.
 */
#ifndef TALLY_INVOICE_H
#define TALLY_INVOICE_H

#include <stddef.h>
#include <stdint.h>

#include "pricing.h"

/** The spec's invoiceInvoiceStatus, in its order. */
enum {
    TALLY_INVOICE_STATUS_UNKNOWN = 0,
    TALLY_INVOICE_STATUS_ISSUED,
    TALLY_INVOICE_STATUS_PENDING,
    TALLY_INVOICE_STATUS_PAID,
    TALLY_INVOICE_STATUS_REFUNDED,
    TALLY_INVOICE_STATUS_CANCELLED,
    TALLY_INVOICE_STATUS_OVERDUE,
};

typedef struct tally__invoice {
    char name[64];          /**< "inv-2026-11" */
    char tenant[65];
    char plan[65];          /**< plan at the end of the period */
    int64_t period_start_s; /**< first day of the month, 00:00 UTC */
    int64_t period_end_s;   /**< first day of the next month */
    int64_t issued_s;       /**< 0 while running (active) */
    int64_t due_s;          /**< issued + [billing] due_days */
    int status;             /**< TALLY_INVOICE_STATUS_* */
    int active;             /**< 1 for the running month */
    tally__priced_t priced; /**< lines and totals (frozen once issued) */
    /* added after the agreed interface (fields at the end): */
    int64_t grace_hours; /**< closed invoices: the close grace it was closed under; -1 unknown */
    /* Tax and credit notes (docs/api.md "Invoices"), frozen with the rest at close: */
    uint32_t tax_rate_bp;     /**< tax rate in basis points (1 = 0.01 %), 0 = no tax */
    char tax_label[64];       /**< "VAT", "Sales tax" ([billing] tax_label) */
    int64_t tax_cents;        /**< round half up of total_cents x tax_rate_bp / 10000 */
    int64_t amount_due_cents; /**< priced.total_cents + tax_cents: what the customer pays */
    char credit_note[32];     /**< "CN-2026-11" once refunded, else "" */
    int64_t credit_note_s;    /**< when the credit note was issued (the refund), else 0 */
} tally__invoice_t;

/** Most tiers one line's breakdown shows (a longer one is shown as the line's total only). */
#define TALLY_INVOICE_TIERS_MAX 16

/** The units of one line that fell in one tier of the plan's price. */
typedef struct tally__invoice_tier {
    uint64_t from, up_to;     /**< the tier's billable units [from, up_to); up_to 0 = open */
    uint64_t units;           /**< billed units in it (above the included ones) */
    int64_t unit_price_cents; /**< its price per billable unit */
    int64_t amount_cents;     /**< units x unit_price_cents */
} tally__invoice_tier_t;

/**
 * How one line's amount came about, for people (the PDF): derived from the
 * plan catalog by tally__invoice_details() and kept only when it adds up to
 * the line's frozen amount to the cent (explained = 1); otherwise the PDF
 * shows the amount alone.
 */
typedef struct tally__invoice_detail {
    int explained;            /**< 1: the fields below explain amount_cents exactly */
    uint64_t included;        /**< usage lines: free billable units of the period */
    int64_t unit_price_cents; /**< one-tier usage lines: the price per billable unit;
                                   fee lines: the flat fee per renewal period; else -1 */
    const char *per;          /**< fee lines: "month", "year", "week", "day" */
    size_t ntiers;            /**< tiers with billed units (usage lines of a tiered price) */
    tally__invoice_tier_t tiers[TALLY_INVOICE_TIERS_MAX];
    int64_t trial_days; /**< fee lines: days of the line inside the plan's free trial */
    int64_t paid_days;  /**< fee lines: the days charged */
} tally__invoice_detail_t;

/** A seller or buyer block: every field may be NULL or "" (not shown). */
typedef struct tally__invoice_party {
    const char *name;
    const char *address; /**< lines separated by "\n" (two characters) or a newline */
    const char *tax_id;
    const char *email;
} tally__invoice_party_t;

#endif
