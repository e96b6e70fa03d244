/* invoicer.c — the invoice closer on tallyd's main loop: closes ended months and marks overdue
 * invoices. */
#include <errno.h>
#include <stdlib.h>

#include "invoicer.h"
#include "log.h"
#include "pricing.h"
#include "stats.h"
#include "tally/tally.h"
#include "timeutil.h"

#define TICK_MS 1000
#define FORCE_PASS_MS 60000 /* a pass at least this often, flushes or not */

struct tally_invoicer {
    uv_timer_t timer;
    tally_invoicer_opts_t o;
    uint64_t last_gen;
    int64_t last_pass_ms;    /* monotonic; 0 = never */
    int64_t last_overdue_ms; /* monotonic; 0 = never */
    int scanned_all;         /* the full first scan is done */
    int64_t first_month;     /* first month with data; INT64_MAX = none seen */
    int closing;
};

void
tally_invoicer_env(const tally__config_t *cfg, const tally__catalog_t *catalog,
                   const tally__plans_t *plans, tally__store_t *store, tally__invoices_env_t *env)
{
    *env = (tally__invoices_env_t){.store = store,
                                   .catalog = catalog,
                                   .plans = plans,
                                   .default_plan = cfg->billing.default_plan,
                                   .tenant = cfg->billing.tenant,
                                   .currency = cfg->billing.currency,
                                   .due_days = cfg->billing.due_days,
                                   .price = tally__pricing_period,
                                   .price_free = tally__priced_free,
                                   .close_grace_hours = cfg->billing.close_grace_hours,
                                   .late_window_hours = cfg->ingest.late_window_hours,
                                   .tax_rate_bp = cfg->billing.tax_rate_bp,
                                   .tax_label = cfg->billing.tax_label};
}

/* Update iv->first_month from the months data can still arrive in. */
static int
find_first_month(tally_invoicer_t *iv, int64_t now_s)
{
    int64_t late_from =
        tally__time_month_start(now_s - (int64_t)iv->o.cfg->ingest.late_window_hours * 3600);
    int64_t from = iv->scanned_all ? late_from : TALLY_TIME_RFC3339_MIN_S;
    if (iv->scanned_all && iv->first_month <= late_from)
        return 0; /* late data cannot land before a month already known to have data */
    int64_t m;
    int rc = tally__invoices_first_data_month(iv->o.store, from, tally__time_next_month(now_s), &m);
    if (rc == TALLY_ENOTFOUND)
        rc = 0;
    else if (rc == 0 && m < iv->first_month)
        iv->first_month = m;
    if (rc == 0)
        iv->scanned_all = 1;
    return rc;
}

static void
pass(tally_invoicer_t *iv, int64_t mono)
{
    int64_t now_s = tally__time_now_ms() / 1000;
    tally__invoices_env_t env;
    tally_invoicer_env(iv->o.cfg, iv->o.catalog, iv->o.plans, iv->o.store, &env);
    int rc = find_first_month(iv, now_s);
    if (rc) {
        tally__log_error("invoices: cannot scan for the first month with data err=\"%s\"",
                         tally_strerror(rc));
        return;
    }
    if (iv->first_month != INT64_MAX) {
        size_t closed = 0;
        if ((rc = tally__invoices_close_ended(&env, iv->first_month, now_s, &closed)) != 0)
            tally__log_error("invoices: closing ended months failed; retrying later err=\"%s\"",
                             tally_strerror(rc));
    }
    if (!iv->last_overdue_ms || mono - iv->last_overdue_ms >= FORCE_PASS_MS) {
        iv->last_overdue_ms = mono ? mono : 1;
        size_t changed = 0;
        if ((rc = tally__invoices_mark_overdue(&env, now_s, &changed)) != 0)
            tally__log_error("invoices: marking overdue invoices failed err=\"%s\"",
                             tally_strerror(rc));
        else if (changed)
            tally__log_info("invoices: marked overdue count=%zu", changed);
    }
}

static void
on_timer(uv_timer_t *t)
{
    tally_invoicer_t *iv = t->data;
    if (iv->closing)
        return;
    uint64_t gen = TALLY_STAT_GET(flushes);
    int64_t mono = tally__time_mono_ms();
    if (iv->last_pass_ms && gen == iv->last_gen && mono - iv->last_pass_ms < FORCE_PASS_MS)
        return;
    iv->last_gen = gen;
    iv->last_pass_ms = mono ? mono : 1;
    pass(iv, mono);
}

int
tally_invoicer_start(const tally_invoicer_opts_t *opts, tally_invoicer_t **out)
{
    tally_invoicer_t *iv = calloc(1, sizeof *iv);
    if (!iv)
        return -ENOMEM;
    iv->o = *opts;
    iv->first_month = INT64_MAX;
    int rc = uv_timer_init(opts->loop, &iv->timer);
    if (rc) {
        free(iv);
        return rc;
    }
    iv->timer.data = iv;
    uv_timer_start(&iv->timer, on_timer, TICK_MS, TICK_MS);
    *out = iv;
    return 0;
}

static void
on_close(uv_handle_t *h)
{
    free(h->data);
}

void
tally_invoicer_close(tally_invoicer_t *iv)
{
    if (!iv || iv->closing)
        return;
    iv->closing = 1;
    uv_timer_stop(&iv->timer);
    uv_close((uv_handle_t *)&iv->timer, on_close);
}
