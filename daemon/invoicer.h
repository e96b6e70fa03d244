/* invoicer.h — tallyd's invoice closer: a main-loop timer that closes every ended month into an
 * issued invoice and marks unpaid ones OVERDUE.
 *
 * A uv_timer ticks every second. A pass runs when the store generation
 * (tally_stats.flushes) moved since the last pass, or at least every 60 s
 * (the wall clock crosses month ends and due dates without flushes). A pass:
 *   - finds the tenant's first month with data: one full scan of the
 *     monthly rollups at the first pass, then only the months the late
 *     window (ingest.late_window_hours) still lets data into, until a first
 *     month older than that window is known (it cannot move any more);
 *   - closes every ended month from there on that has no invoice yet
 *     (tally__invoices_close_ended(); a month already closed by
 *     `tallyctl invoice close` is left alone);
 *   - every 60 s, stores OVERDUE on issued invoices past their due date.
 * Failures are logged and retried at the next pass.
 *
 * Threads: everything runs on the loop thread given at start, the one that
 * serves HTTP, so invoice writes from HTTP handlers and from the timer are
 * serialized.
 */
#ifndef TALLY_INVOICER_H
#define TALLY_INVOICER_H

#include <uv.h>

#include "catalog.h"
#include "config.h"
#include "invoices.h"
#include "plans.h"
#include "store.h"

typedef struct tally_invoicer tally_invoicer_t;

typedef struct tally_invoicer_opts {
    uv_loop_t *loop;
    const tally__config_t *cfg; /**< [billing], [ingest] late_window_hours */
    const tally__catalog_t *catalog;
    const tally__plans_t *plans;
    tally__store_t *store;
} tally_invoicer_opts_t;

/**
 * @brief The invoices environment of a running tallyd: its store, catalogs,
 *        [billing] settings and the real pricing (tally__pricing_period).
 *        Everything is borrowed from the arguments.
 */
void tally_invoicer_env(const tally__config_t *cfg, const tally__catalog_t *catalog,
                        const tally__plans_t *plans, tally__store_t *store,
                        tally__invoices_env_t *env);

/**
 * @brief Start the timer (the first pass runs within a second). Everything
 *        borrowed in opts must outlive the invoicer (until its close completes).
 * @param[out] out owned by the caller until tally_invoicer_close().
 * @return 0, -ENOMEM, or a libuv error.
 */
int tally_invoicer_start(const tally_invoicer_opts_t *opts, tally_invoicer_t **out);

/**
 * @brief Stop the timer; the memory is freed from its close callback (the
 *        loop must run afterwards). NULL is ignored. No pass runs after this.
 */
void tally_invoicer_close(tally_invoicer_t *iv);

#endif
