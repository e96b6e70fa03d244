/* invoices.h — the invoice lifecycle: the running (month-to-date) invoice, closing a month into a
 * frozen invoice, status changes and overdue derivation.
 *
 * Names. The invoice of calendar month YYYY-MM is "inv-YYYY-MM".
 *
 * Running invoice. The current month's invoice is never stored: it is
 * priced on the fly over the month to date (the whole tenant), with
 * active = 1 and STATUS_PENDING.
 *
 * Closed invoices. Closing an ended month prices the whole month with the
 * plan(s) in force and stores the frozen result as JSON in the store's
 * objects (kind "invoice", ns "system", name "inv-YYYY-MM"):
 *
 *   {name, tenant, plan, period_start, period_end, issued, due (unix s),
 *    status ("STATUS_ISSUED", ...), currency, subtotal_cents,
 *    discount_cents, total_cents, lines: [{usage_type, metric, unit,
 *    billable_unit, quantity, billable, amount_cents, fixed, status, start,
 *    end}], history: [{status, time, by}]}
 *
 * The write carries a must_not_exist guard, so closing a month twice never
 * makes a second invoice: the second close returns the first one.
 *
 * Status rules (tally__invoices_next_status):
 *   pay:    ISSUED, OVERDUE        -> PAID
 *   cancel: ISSUED, OVERDUE        -> CANCELLED
 *   refund: PAID                   -> REFUNDED
 *   anything else is refused (TALLY_EBUSY -> 409), the running (PENDING)
 *   invoice included: it has no final amount yet.
 * OVERDUE is derived whenever an invoice is read (ISSUED and now > due);
 * tally__invoices_mark_overdue() also stores it.
 *
 * Month end. An ended month is closed automatically only once
 * env->close_grace_hours have passed after it (tally__invoices_close_ended),
 * so usage that arrives late but within the grace is on its own invoice; the
 * stored invoice records the grace ("grace_hours"). Usage of a closed month
 * that arrives later still (inside the late window) is never lost: the next
 * invoice priced (the running one, frozen when it closes) carries one
 * adjustment line per earlier month and metric, "Late usage for YYYY-MM:
 * <usage type>", for what the month's usage charge is now above what its
 * invoice and earlier adjustments billed. An adjustment line covers the
 * earlier month (its start and end are that month's), which is how it is
 * told apart from the invoice's own lines. A month priced lower than
 * invoiced (a gauge corrected down) is not credited automatically.
 *
 * Totals. The running invoice prices the month to date, exactly as
 * current_usage and monthly_usage do (tally__pricing_month_end()); its
 * total is that month-to-date total plus its adjustment lines.
 *
 * Pricing is reached through env->price / env->price_free (tallyd passes
 * tally__pricing_period / tally__priced_free), so this module does not
 * depend on which pricing implementation is linked (tests pass fakes).
 *
 * Errors (all functions): 0, TALLY_EINVAL (bad input → 400),
 * TALLY_ENOTFOUND (→ 404), TALLY_EBUSY (transition not allowed → 409),
 * TALLY_ECORRUPT (a stored invoice is not what this module writes → 500),
 * -ENOMEM, or a store error (TALLY_ESTORE, TALLY_EMAPFULL → 500).
 *
 * Threads: any thread, but the writers (close, act, mark_overdue) are meant
 * to be serialized — tallyd makes every call on its loop thread. A status
 * change reads the record then rewrites it (must_exist); two concurrent
 * writers could lose one change, a concurrent close cannot duplicate.
 * Times are unix seconds passed in by the caller (tests choose them).
 */
#ifndef TALLY_INVOICES_H
#define TALLY_INVOICES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog.h"
#include "invoice.h"
#include "plans.h"
#include "pricing.h"
#include "store.h"

/** Store location of closed invoices. */
#define TALLY_INVOICES_KIND "invoice"
#define TALLY_INVOICES_NS "system"

/** The signature of tally__pricing_period(). */
typedef int (*tally__invoices_price_fn)(tally__store_t *store, const tally__catalog_t *cat,
                                        const tally__plans_t *plans, const char *default_plan,
                                        const char *ns, int64_t start_s, int64_t end_s,
                                        int64_t now_s, tally__priced_t *out);

/** What the invoice functions work on; borrowed for the call. */
typedef struct tally__invoices_env {
    tally__store_t *store;
    const tally__catalog_t *catalog;
    const tally__plans_t *plans;
    const char *default_plan;               /**< [billing] default_plan */
    const char *tenant;                     /**< [billing] tenant (may be NULL: "") */
    const char *currency;                   /**< [billing] currency, used when pricing gives none */
    uint32_t due_days;                      /**< [billing] due_days */
    tally__invoices_price_fn price;         /**< tally__pricing_period */
    void (*price_free)(tally__priced_t *p); /**< tally__priced_free */
    /* added for month end (fields at the end: designated initializers elsewhere stay valid) */
    uint32_t close_grace_hours; /**< [billing] close_grace_hours: auto-close waits this long */
    uint32_t late_window_hours; /**< [ingest] late_window_hours: how late usage may arrive */
    uint32_t tax_rate_bp;                   /**< [billing] tax_rate_bp (invoicedoc.h) */
    const char *tax_label;                  /**< [billing] tax_label (NULL: "Tax") */
} tally__invoices_env_t;

/** How many earlier months an invoice looks back at for late usage, at most. */
#define TALLY_INVOICES_LATE_MONTHS 13

/** @brief "inv-YYYY-MM" of the month containing month_s, into out (>= 16 bytes). */
void tally__invoices_name(int64_t month_s, char *out, size_t cap);

/**
 * @brief Parse "YYYY-MM" (month_text) or "inv-YYYY-MM" (name).
 * @param[out] month_s 00:00 UTC of the 1st of that month.
 * @return 0 or TALLY_EINVAL.
 */
int tally__invoices_month_parse(const char *month_text, int64_t *month_s);
int tally__invoices_name_parse(const char *name, int64_t *month_s);

/** @brief The spec's invoiceInvoiceStatus name of a TALLY_INVOICE_STATUS_* (static). */
const char *tally__invoices_status_name(int status);

/** @brief The status of a name; TALLY_INVOICE_STATUS_UNKNOWN for anything else. */
int tally__invoices_status_parse(const char *s);

/**
 * @brief The status table.
 * @param status the current (effective) status.
 * @param action "pay", "cancel" or "refund".
 * @param[out] next the status after the action.
 * @return 0, TALLY_EINVAL (unknown action), TALLY_EBUSY (not allowed from status).
 */
int tally__invoices_next_status(int status, const char *action, int *next);

/** @brief The status as of now_s: ISSUED past its due date reads OVERDUE. */
int tally__invoices_effective_status(const tally__invoice_t *inv, int64_t now_s);

/** @brief Free what an invoice owns (its lines); the struct is zeroed. NULL is ignored. */
void tally__invoice_fini(tally__invoice_t *inv);

/**
 * @brief The running invoice of the month containing now_s (month to date,
 *        whole tenant), active, STATUS_PENDING.
 * @param[out] inv caller releases with tally__invoice_fini().
 */
int tally__invoices_running(const tally__invoices_env_t *env, int64_t now_s, tally__invoice_t *inv);

/**
 * @brief Close the month starting month_s: price it whole, store it
 *        ISSUED, issued now_s, due now_s + due_days. Idempotent.
 * @param[out] inv the stored invoice (the existing one when already
 *        closed), with its stored status (tally__invoices_effective_status()
 *        derives OVERDUE); tally__invoice_fini() it.
 * @param[out] created 1 when this call stored it, 0 when it existed (may be NULL).
 * @return 0, TALLY_EINVAL (month_s not a month start, or the month has not
 *         ended at now_s), pricing and store errors.
 */
int tally__invoices_close(const tally__invoices_env_t *env, int64_t month_s, int64_t now_s,
                          tally__invoice_t *inv, int *created);

/**
 * @brief Whether month_s may be closed by hand at now_s.
 * @return 0; TALLY_EINVAL (not a month start, or before the tenant's first
 *         usage or plan subscription: there is nothing to bill) or
 *         TALLY_EBUSY (the month has not ended), with a sentence in msg.
 */
int tally__invoices_close_check(const tally__invoices_env_t *env, int64_t month_s, int64_t now_s,
                                char *msg, size_t msglen);

/**
 * @brief What was invoiced for the closed month month_s and what came late.
 * @param[out] invoiced_cents the stored invoice's total.
 * @param[out] late_cents how much the month's usage charges are now above
 *        what its invoice billed (billed on later invoices as adjustment lines).
 * @return 0, TALLY_ENOTFOUND (the month is not closed), pricing and store errors.
 */
int tally__invoices_late(const tally__invoices_env_t *env, int64_t month_s, int64_t now_s,
                         int64_t *invoiced_cents, int64_t *late_cents);

/**
 * @brief One invoice by name: a closed one, or the running one when name is
 *        the current month's and it is not closed.
 * @return 0, TALLY_ENOTFOUND, TALLY_ECORRUPT, store errors.
 */
int tally__invoices_get(const tally__invoices_env_t *env, const char *name, int64_t now_s,
                        tally__invoice_t *inv);

/**
 * @brief Apply action ("pay", "cancel", "refund") to a closed invoice and
 *        record it in its history (by: who asked, e.g. the token's name).
 * @param[out] inv the invoice after the change; tally__invoice_fini() it.
 * @param msg receives a sentence for TALLY_EINVAL / TALLY_EBUSY / TALLY_ENOTFOUND
 *        naming the current status.
 * @return 0, TALLY_EINVAL, TALLY_ENOTFOUND, TALLY_EBUSY, store errors.
 */
int tally__invoices_act(const tally__invoices_env_t *env, const char *name, const char *action,
                        const char *by, int64_t now_s, tally__invoice_t *inv, char *msg,
                        size_t msglen);

/**
 * @brief Every invoice: the running one (unless its month is closed) and
 *        the closed ones, newest first (the running invoice, then by issue
 *        date, then by period), at most limit (0 or negative: all).
 * @param[out] out array (caller frees with tally__invoices_list_free()), n its length.
 */
int tally__invoices_list(const tally__invoices_env_t *env, int64_t now_s, int limit,
                         tally__invoice_t **out, size_t *n);
void tally__invoices_list_free(tally__invoice_t *v, size_t n);

/**
 * @brief Store OVERDUE on every ISSUED invoice past its due date.
 * @param[out] changed how many were changed (may be NULL).
 */
int tally__invoices_mark_overdue(const tally__invoices_env_t *env, int64_t now_s, size_t *changed);

/**
 * @brief The first month (start) with monthly rollups among periods in
 *        [from_s, to_s), any namespace.
 * @return 0, TALLY_ENOTFOUND (no data there), store errors.
 */
int tally__invoices_first_data_month(tally__store_t *store, int64_t from_s, int64_t to_s,
                                     int64_t *month_s);

/**
 * @brief Close every ended month from first_month_s up to the month of
 *        now_s (exclusive) that has no invoice yet and whose
 *        env->close_grace_hours have passed.
 * @param[out] closed how many invoices this call created (may be NULL).
 * @return 0 or the first failure (months before it are closed).
 */
int tally__invoices_close_ended(const tally__invoices_env_t *env, int64_t first_month_s,
                                int64_t now_s, size_t *closed);

/**
 * @brief The spec's invoiceInvoiceType of an invoice: name, active, amount
 *        (total cents as a JSON string), currency, period_start,
 *        period_end (RFC 3339), status (effective as of now_s).
 * @return a new object (caller decrefs), NULL on allocation failure.
 */
json_t *tally__invoices_to_api(const tally__invoice_t *inv, const char *currency, int64_t now_s);

#endif
