/* pricing.h — pricing of usage in integer cents: billable quantities, included amounts, tiers, prorated flat fees, add-ons, coupons.
 *
 * INTERFACE AGREED BETWEEN ENGINEERS: lib/pricing.c implements these; the
 * invoices module and the priced-usage endpoints use them. Money is int64
 * cents everywhere, never floating point. Keep these signatures; add more.
 */
#ifndef TALLY_PRICING_H
#define TALLY_PRICING_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "plans.h"
#include "store.h"

/** Status of a priced line (the spec's schemausageStatusType). */
enum {
    TALLY_PRICE_STATUS_ACTIVE = 1,       /**< measured, with data */
    TALLY_PRICE_STATUS_NO_DATA = 2,      /**< priced by the plan, no usage in the period */
    TALLY_PRICE_STATUS_NOT_MEASURED = 3, /**< a fixed fee: nothing to measure */
};

/** One line of a priced period: a usage type, the plan's flat fee, or an add-on fee. */
typedef struct tally__price_line {
    char usage_type[128];     /**< display name ("HTTP Requests", "Plan fee: Team") */
    char metric[TALLY_MAX_METRIC_LEN + 1]; /**< metric label ("" for fixed fees) */
    char unit[128];           /**< raw unit */
    char billable_unit[128];  /**< billed unit */
    double quantity;          /**< raw quantity over the period */
    int64_t billable;         /**< whole billable units (rounding rule in pricing.c) */
    int64_t amount_cents;     /**< what this line costs */
    int fixed;                /**< 1 for flat and add-on fees */
    int status;               /**< TALLY_PRICE_STATUS_* */
    int64_t start_s, end_s;   /**< the part of the period this line covers */
} tally__price_line_t;

/** A priced period (a month to date, or a whole month for an invoice). */
typedef struct tally__priced {
    tally__price_line_t *lines;
    size_t n;
    int64_t subtotal_cents;
    int64_t discount_cents; /**< coupons, never more than the subtotal */
    int64_t total_cents;    /**< subtotal - discount */
    char currency[8];       /**< "USD" */
} tally__priced_t;

/**
 * @brief Price namespace ns (or the whole tenant, ns NULL) over
 *        [start_s, end_s) within one calendar month, with the plan(s) in
 *        force (the plan history of the tenant, prorated by the day), the
 *        add-on subscriptions and the tenant's coupons.
 * @param now_s the wall clock (for "month to date").
 * @param[out] out caller frees with tally__priced_free().
 * @return 0, -ENOMEM, TALLY_ESTORE, TALLY_EINVAL (bad period).
 */
int tally__pricing_period(tally__store_t *store, const tally__catalog_t *cat,
                          const tally__plans_t *plans, const char *default_plan, const char *ns,
                          int64_t start_s, int64_t end_s, int64_t now_s, tally__priced_t *out);

void tally__priced_free(tally__priced_t *p);

#endif
