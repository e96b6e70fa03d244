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
} tally__invoice_t;

#endif
