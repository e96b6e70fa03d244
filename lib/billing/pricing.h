/* pricing.h — pricing of usage in integer cents: billable quantities, included amounts, tiers,
 * prorated flat fees, add-ons, coupons.
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
#include "usage.h"
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
    char usage_type[128];                  /**< display name ("HTTP Requests", "Plan fee: Team") */
    char metric[TALLY_MAX_METRIC_LEN + 1]; /**< metric label ("" for fixed fees) */
    char unit[128];                        /**< raw unit */
    char billable_unit[128];               /**< billed unit */
    double quantity;                       /**< raw quantity over the period */
    int64_t billable;                      /**< whole billable units (rounding rule in pricing.c) */
    int64_t amount_cents;                  /**< what this line costs */
    int fixed;                             /**< 1 for flat and add-on fees */
    int status;                            /**< TALLY_PRICE_STATUS_* */
    int64_t start_s, end_s;                /**< the part of the period this line covers */
} tally__price_line_t;

/** A priced period (a month to date, or a whole month for an invoice). */
typedef struct tally__priced {
    tally__price_line_t *lines;
    size_t n;
    int64_t subtotal_cents;
    int64_t discount_cents; /**< coupons, never more than the subtotal */
    int64_t total_cents;    /**< subtotal - discount */
    char currency[8];       /**< "USD"; callers with a configured currency overwrite it */
    /* added after the agreed interface (fields at the end, so it stays source-compatible): */
    struct tally__coupon *coupons; /**< the coupons applied (system scope only) */
    size_t ncoupons;
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

/**
 * @brief The end of the priced part of the month starting month_s, as of
 *        now_s: the next month's start when the month has ended, else now_s
 *        (at least month_s + 1). THE month-to-date rule: current_usage,
 *        monthly_usage, the running invoice (and so its PDF) and the
 *        dashboard all price [month_s, this) — so the flat fee of the month
 *        to date is prorated by the days elapsed, today included, and on the
 *        month's last day it is the whole fee the closed invoice charges.
 */
int64_t tally__pricing_month_end(int64_t month_s, int64_t now_s);

/**
 * @brief Split total cents into n shares in proportion to weights, by the
 *        largest-remainder rule: each share is floor(total x w / sum(w)); the
 *        cents left over (fewer than n) go one each to the shares with the
 *        largest remainders, ties to the lower index (callers sort by
 *        namespace name). The shares add up to total exactly. All weights 0:
 *        equal shares, the same way.
 * @param shares n int64 out.
 * @return 0, TALLY_EINVAL (total < 0, or n 0 with total != 0), -ENOMEM.
 */
int tally__pricing_allocate(int64_t total, const uint64_t *weights, size_t n, int64_t *shares);

/** @brief Free what tally__pricing_period() filled in (and zero it). NULL is ignored. */
void tally__priced_free(tally__priced_t *p);

/** @brief Append a zeroed line to p (*cap lines allocated; grows it).
 *  @return the line, or NULL when memory ran out (p unchanged). */
tally__price_line_t *tally__priced_add_line(tally__priced_t *p, size_t *cap);

/* ---- the rules, as pure functions (unit-tested one by one) ------------------
 *
 * Billable quantity: ceil(raw / division_factor) over the priced period
 * (a month, or the month to date): any started billable unit is billed.
 * Negative, zero and NaN quantities bill 0. Exact integer arithmetic for
 * integer quantities; a float quantity rounds up its double quotient.
 *
 * Charge: units above `included`, each at the price of the tier it falls in
 * (plans.h), integer cents.
 *
 * Flat fee: per plan segment (a plan subscription clipped to the period),
 * flat_price x days_in_force / days_of_the_renewal_period, rounded half up
 * (PERIOD_MONTH: days of the calendar month; PERIOD_YEAR: days of the year;
 * PERIOD_WEEK: 7; PERIOD_DAY: 1 per day). Days are counted between the
 * UTC days of a segment's ends (tally__pricing_days()), so the day of a
 * change belongs to the NEW plan and the segments of a month add up to its
 * days; a month-to-date period counts today. The days of a plan's trial
 * (trial_period from its subscription's start) are free.
 *
 * Plan history: the plan subscriptions of billing.h (kind "subscription"),
 * in the order of their "seq" (strictly increasing as billing.c records
 * them; records without one come first, by start), never by start second
 * alone; a subscription cancelled in the second it started (cancelled or
 * superseded at once) never prices anything. The earliest one also covers
 * the time before it (the tenant was on that
 * plan before tally recorded it); a tenant with none is on its current plan
 * (tally__plans_current_name()). Usage of the period is priced under the
 * plan in force at its end (the last segment); included quantities are per
 * period, not prorated.
 *
 * Scope: ns NULL (path namespace "system") prices the whole tenant: usage
 * lines, one fixed line per plan segment, one line per add-on subscription
 * in force, and the coupons. A namespace's figures are SHARES of the
 * tenant's usage charges: included quantities and tiers apply to the
 * tenant's total per metric, and each metric's charge is allocated over the
 * namespaces with usage of it in proportion to their raw quantities
 * (integers as they are, floats in millionths), largest remainder
 * (tally__pricing_allocate), so the namespaces add up to the tenant's usage
 * lines to the cent. A namespace has no fixed fees and no coupons (both are
 * tenant-wide).
 *
 * Fee lines: quantity is the days the plan was in force in the period,
 * billable the days charged (a trial's days are not).
 *
 * Add-ons: the add-on catalog has no prices, so add-on lines cost 0 (the
 * included ones are free by definition; the others are 0 until priced).
 *
 * Coupons: DISCOUNT_TYPE_FIXED_AMOUNT takes discount_amount cents,
 * DISCOUNT_TYPE_PERCENTAGE takes discount_amount in 0.01 % units (1000 =
 * 10 %) of the subtotal, rounded half up; each coupon is computed on the
 * subtotal, and their sum never exceeds it (the total never goes below 0).
 *
 * Every function saturates at INT64_MAX instead of overflowing.
 */

/** The spec's usageDiscountType. */
typedef enum tally__discount_type {
    TALLY_DISCOUNT_UNKNOWN = 0,      /**< "DISCOUNT_TYPE_UNKNOWN": no discount */
    TALLY_DISCOUNT_FIXED_AMOUNT = 1, /**< "DISCOUNT_TYPE_FIXED_AMOUNT": cents */
    TALLY_DISCOUNT_PERCENTAGE = 2,   /**< "DISCOUNT_TYPE_PERCENTAGE": 0.01 % units */
} tally__discount_type_t;

/**
 * Store location of coupons: kind "coupon", namespace "system", name = the
 * coupon's name, value JSON {"title": "...", "discount_type":
 * "DISCOUNT_TYPE_PERCENTAGE", "discount_amount": 1000}. There is no API to
 * create them (operators write them; tests use tally__store_obj_write()).
 * Every stored coupon applies to every tenant-wide priced period.
 */
#define TALLY_PRICING_COUPON_KIND "coupon"
#define TALLY_PRICING_COUPON_NS "system"

/** One coupon (the spec's usageCoupon plus its name and title). */
typedef struct tally__coupon {
    char name[128];
    char title[128];
    tally__discount_type_t type;
    int32_t amount; /**< cents, or 0.01 % units */
} tally__coupon_t;

/** @brief ceil(raw / factor) as whole billable units (factor 0 counts as 1); see above. */
int64_t tally__pricing_billable(const tally__usage_qty_t *raw, uint64_t factor);

/** @brief ceil(raw / factor) of a double (NaN, <= 0 -> 0; saturates). */
int64_t tally__pricing_billable_double(double raw, uint64_t factor);

/**
 * @brief The charge of billable units under a price, in integer cents:
 *        units in [included, billable), each at its tier's price.
 * @return cents >= 0; 0 for a NULL price or billable <= 0; INT64_MAX on overflow.
 */
int64_t tally__pricing_charge(const tally__plan_price_t *price, int64_t billable);

/**
 * @brief A flat fee for days_in_force days: flat x days / period days,
 *        rounded half up (see above for the renewal units).
 * @param days_in_month days of the calendar month (28..31), for PERIOD_MONTH
 *        (and PERIOD_UNKNOWN, taken as a month).
 * @param days_in_year 365 or 366, for PERIOD_YEAR.
 * @return cents; 0 when flat or days <= 0; INT64_MAX on overflow.
 */
int64_t tally__pricing_prorate(int64_t flat_cents, tally__period_unit_t unit, int64_t days_in_force,
                               int days_in_month, int days_in_year);

/** @brief What one coupon takes off subtotal (0..subtotal). */
int64_t tally__pricing_coupon_discount(const tally__coupon_t *c, int64_t subtotal);

/** @brief What n coupons take off subtotal together: their sum, capped at subtotal. */
int64_t tally__pricing_discount(const tally__coupon_t *c, size_t n, int64_t subtotal);

/** @brief Days counted for a segment [from_s, to_s): day(to) - day(from), 0 when negative. */
int64_t tally__pricing_days(int64_t from_s, int64_t to_s);

/**
 * @brief The stored coupons, in name order.
 * @param[out] out malloc'd array (caller frees; NULL when none), n its length.
 * @return 0, TALLY_ECORRUPT (a coupon that is not a JSON object), TALLY_ESTORE, -ENOMEM.
 */
int tally__pricing_coupons_load(tally__store_t *store, tally__coupon_t **out, size_t *n);

/**
 * @brief The first month monthly_usage lists: the earliest month with a
 *        monthly rollup of ns (NULL = any namespace) or, tenant-wide, the
 *        month of the earliest plan subscription; the month of now_s when
 *        there is neither (or both are later).
 * @param[out] out a month start, unix seconds.
 * @return 0, TALLY_ECORRUPT, TALLY_ESTORE, -ENOMEM.
 */
int tally__pricing_first_month(tally__store_t *store, const char *ns, int64_t now_s, int64_t *out);

/** @brief "STATUS_ACTIVE", "STATUS_NO_DATA", "STATUS_NOT_MEASURED" or "STATUS_UNKNOWN". */
const char *tally__pricing_status_name(int status);

/** @brief The spec name of a discount type ("DISCOUNT_TYPE_..."). */
const char *tally__pricing_discount_name(tally__discount_type_t t);

/** @brief Parse a spec discount type name; anything else is TALLY_DISCOUNT_UNKNOWN. */
tally__discount_type_t tally__pricing_discount_parse(const char *s);

#endif
