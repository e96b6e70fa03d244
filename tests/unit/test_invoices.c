/* test_invoices.c — Criterion tests of lib/invoices: closing months, the status table, overdue
 * derivation, listing and persistence, over a temp store with a fake pricing. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "invoicedoc.h"
#include "invoices.h"
#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "timeutil.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)
#define DAY 86400LL

/* 2024-01-01, 2024-02-01, 2024-03-01, 2024-04-01 (00:00Z) and 2024-04-10T12:00:00Z */
#define JAN 1704067200LL
#define FEB 1706745600LL
#define MAR 1709251200LL
#define APR 1711929600LL
#define APR10 (APR + 9 * DAY + 12 * 3600)

static char dir[64];
static tally__store_t *store;
static tally__invoices_env_t env;
static int price_calls;
static char msg[256];

/* The fake pricing: a flat fee of 1000 cents plus one cent per day of the
 * period, so every month prices differently and the test can tell them apart. */
static int
fake_price(tally__store_t *s, const tally__catalog_t *cat, const tally__plans_t *plans,
           const char *default_plan, const char *ns, int64_t start_s, int64_t end_s, int64_t now_s,
           tally__priced_t *out)
{
    (void)s, (void)cat, (void)plans, (void)default_plan, (void)now_s;
    memset(out, 0, sizeof *out);
    price_calls++;
    cr_assert_null(ns, "invoices price the whole tenant");
    out->lines = calloc(2, sizeof *out->lines);
    cr_assert_not_null(out->lines);
    out->n = 2;
    snprintf(out->lines[0].usage_type, sizeof out->lines[0].usage_type, "Plan fee: Free");
    out->lines[0].fixed = 1;
    out->lines[0].amount_cents = 1000;
    out->lines[0].status = TALLY_PRICE_STATUS_NOT_MEASURED;
    snprintf(out->lines[1].usage_type, sizeof out->lines[1].usage_type, "HTTP Requests");
    snprintf(out->lines[1].metric, sizeof out->lines[1].metric, "http_requests");
    out->lines[1].quantity = 12.5;
    out->lines[1].billable = (end_s - start_s) / DAY;
    out->lines[1].amount_cents = (end_s - start_s) / DAY;
    out->lines[1].start_s = start_s;
    out->lines[1].end_s = end_s;
    out->subtotal_cents = 1000 + (end_s - start_s) / DAY;
    out->total_cents = out->subtotal_cents;
    snprintf(out->currency, sizeof out->currency, "USD");
    return 0;
}

static void
fake_free(tally__priced_t *p)
{
    free(p->lines);
    memset(p, 0, sizeof *p);
}

static void
open_store(void)
{
    char sdir[128];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    int rc = tally__store_open(sdir, 64 * MiB, 0, &store);
    cr_assert_eq(rc, 0, "store open: %s", tally_strerror(rc));
    env.store = store;
}

static void
setup(void)
{
    testdir_make(dir, sizeof dir, "invoices");
    open_store();
    env.default_plan = "free";
    env.tenant = "acme";
    env.currency = "EUR";
    env.due_days = 30;
    env.price = fake_price;
    env.price_free = fake_free;
    price_calls = 0;
}

static void
teardown(void)
{
    tally__store_close(store);
    testdir_remove(dir);
}

TestSuite(invoices, .init = setup, .fini = teardown, .timeout = 60);

static void
close_ok(int64_t month, int64_t now, int want_created)
{
    tally__invoice_t inv;
    int created = -1;
    int rc = tally__invoices_close(&env, month, now, &inv, &created);
    cr_assert_eq(rc, 0, "close: %s", tally_strerror(rc));
    cr_assert_eq(created, want_created);
    tally__invoice_fini(&inv);
}

static int
act(const char *name, const char *action, int64_t now, int *status)
{
    tally__invoice_t inv;
    int rc = tally__invoices_act(&env, name, action, "admin", now, &inv, msg, sizeof msg);
    if (rc == 0 && status)
        *status = inv.status;
    tally__invoice_fini(&inv);
    return rc;
}

static size_t
count_stored(void)
{
    tally__invoice_t *v;
    size_t n, stored = 0;
    cr_assert_eq(tally__invoices_list(&env, APR10, 0, &v, &n), 0);
    for (size_t i = 0; i < n; i++)
        stored += !v[i].active;
    tally__invoices_list_free(v, n);
    return stored;
}

/* ---- names ------------------------------------------------------------------------ */

Test(invoices, names_are_inv_year_month)
{
    char name[64];
    tally__invoices_name(FEB + 5 * DAY, name, sizeof name);
    cr_assert_str_eq(name, "inv-2024-02");
    int64_t m;
    cr_assert_eq(tally__invoices_name_parse("inv-2024-03", &m), 0);
    cr_assert_eq(m, MAR);
    cr_assert_eq(tally__invoices_month_parse("2024-01", &m), 0);
    cr_assert_eq(m, JAN);
    const char *bad[] = {"2024-13", "2024-00", "2024-1", "24-01", "2024/01", "2024-01x", "", NULL};
    for (int i = 0; bad[i]; i++)
        cr_assert_eq(tally__invoices_month_parse(bad[i], &m), TALLY_EINVAL, "%s", bad[i]);
    cr_assert_eq(tally__invoices_name_parse("invoice-2024-01", &m), TALLY_EINVAL);
}

/* ---- close ------------------------------------------------------------------------ */

Test(invoices, closing_twice_makes_one_invoice)
{
    tally__invoice_t inv;
    int created = 0;
    cr_assert_eq(tally__invoices_close(&env, FEB, APR10, &inv, &created), 0);
    cr_assert_eq(created, 1);
    cr_assert_str_eq(inv.name, "inv-2024-02");
    cr_assert_eq(inv.status, TALLY_INVOICE_STATUS_ISSUED);
    cr_assert_eq(inv.active, 0);
    cr_assert_eq(inv.issued_s, APR10);
    cr_assert_eq(inv.due_s, APR10 + 30 * DAY);
    cr_assert_eq(inv.period_start_s, FEB);
    cr_assert_eq(inv.period_end_s, MAR);
    cr_assert_eq(inv.priced.total_cents, 1000 + 29); /* 2024 is a leap year */
    cr_assert_str_eq(inv.priced.currency, "EUR", "the configured currency wins");
    cr_assert_str_eq(inv.tenant, "acme");
    cr_assert_str_eq(inv.plan, "free");
    tally__invoice_fini(&inv);
    int calls = price_calls;

    /* later, with other prices: still the first, frozen invoice */
    cr_assert_eq(tally__invoices_close(&env, FEB, APR10 + DAY, &inv, &created), 0);
    cr_assert_eq(created, 0);
    cr_assert_eq(inv.issued_s, APR10);
    cr_assert_eq(inv.priced.total_cents, 1029);
    cr_assert_eq(price_calls, calls, "an existing invoice is not priced again");
    tally__invoice_fini(&inv);
    cr_assert_eq(count_stored(), 1);
}

Test(invoices, only_ended_months_close)
{
    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_close(&env, APR, APR10, &inv, NULL), TALLY_EINVAL,
                 "the running month");
    cr_assert_eq(tally__invoices_close(&env, APR + 31 * DAY, APR10, &inv, NULL), TALLY_EINVAL,
                 "a future month");
    cr_assert_eq(tally__invoices_close(&env, FEB + DAY, APR10, &inv, NULL), TALLY_EINVAL,
                 "not a month start");
    /* a month ends at the first second of the next */
    close_ok(MAR, APR, 1);
    cr_assert_eq(count_stored(), 1);
}

Test(invoices, close_ended_closes_every_missing_month_once)
{
    close_ok(FEB, APR10, 1); /* closed by hand first */
    size_t closed = 9;
    cr_assert_eq(tally__invoices_close_ended(&env, JAN + 3 * DAY, APR10, &closed), 0);
    cr_assert_eq(closed, 2, "January and March; February had its invoice");
    cr_assert_eq(tally__invoices_close_ended(&env, JAN, APR10, &closed), 0);
    cr_assert_eq(closed, 0);
    cr_assert_eq(count_stored(), 3);
}

Test(invoices, first_data_month_comes_from_monthly_rollups)
{
    int64_t m;
    cr_assert_eq(tally__invoices_first_data_month(store, TALLY_TIME_RFC3339_MIN_S, APR, &m),
                 TALLY_ENOTFOUND);
    char key[TALLY_SERIES_KEY_MAX];
    size_t kl = tally__series_key(key, "demo", 4, "http_requests", 13, NULL, 0);
    tally__rollup_t d;
    tally__rollup_init(&d);
    tally__rollup_add(&d, 0, 5, 0, (FEB + DAY) * 1000);
    tally__store_put_t p[2] = {{key, (uint32_t)kl, MAR, &d, 0}, {key, (uint32_t)kl, FEB, &d, 0}};
    cr_assert_eq(tally__store_commit(store, NULL, 0, p, 2, NULL, 0), 0);
    cr_assert_eq(tally__invoices_first_data_month(store, TALLY_TIME_RFC3339_MIN_S, APR, &m), 0);
    cr_assert_eq(m, FEB);
    cr_assert_eq(tally__invoices_first_data_month(store, MAR, APR, &m), 0);
    cr_assert_eq(m, MAR);
}

/* ---- status ----------------------------------------------------------------------- */

Test(invoices, status_table)
{
    static const struct {
        int from;
        const char *action;
        int rc, to;
    } cases[] = {
        {TALLY_INVOICE_STATUS_ISSUED, "pay", 0, TALLY_INVOICE_STATUS_PAID},
        {TALLY_INVOICE_STATUS_OVERDUE, "pay", 0, TALLY_INVOICE_STATUS_PAID},
        {TALLY_INVOICE_STATUS_ISSUED, "cancel", 0, TALLY_INVOICE_STATUS_CANCELLED},
        {TALLY_INVOICE_STATUS_OVERDUE, "cancel", 0, TALLY_INVOICE_STATUS_CANCELLED},
        {TALLY_INVOICE_STATUS_PAID, "refund", 0, TALLY_INVOICE_STATUS_REFUNDED},
        {TALLY_INVOICE_STATUS_PAID, "pay", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_PAID, "cancel", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_ISSUED, "refund", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_OVERDUE, "refund", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_PENDING, "pay", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_PENDING, "cancel", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_CANCELLED, "pay", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_CANCELLED, "refund", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_REFUNDED, "refund", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_REFUNDED, "pay", TALLY_EBUSY, 0},
        {TALLY_INVOICE_STATUS_ISSUED, "delete", TALLY_EINVAL, 0},
        {TALLY_INVOICE_STATUS_ISSUED, "PAY", TALLY_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int to = -1;
        int rc = tally__invoices_next_status(cases[i].from, cases[i].action, &to);
        cr_assert_eq(rc, cases[i].rc, "%s from %s", cases[i].action,
                     tally__invoices_status_name(cases[i].from));
        if (rc == 0)
            cr_assert_eq(to, cases[i].to, "%s from %s", cases[i].action,
                         tally__invoices_status_name(cases[i].from));
    }
    for (int s = TALLY_INVOICE_STATUS_UNKNOWN; s <= TALLY_INVOICE_STATUS_OVERDUE; s++)
        cr_assert_eq(tally__invoices_status_parse(tally__invoices_status_name(s)), s);
    cr_assert_str_eq(tally__invoices_status_name(TALLY_INVOICE_STATUS_OVERDUE), "OVERDUE");
}

Test(invoices, pay_refund_and_illegal_changes_are_stored_or_refused)
{
    close_ok(MAR, APR10, 1);
    int st = 0;
    cr_assert_eq(act("inv-2024-03", "pay", APR10 + 60, &st), 0, "%s", msg);
    cr_assert_eq(st, TALLY_INVOICE_STATUS_PAID);
    cr_assert_eq(act("inv-2024-03", "cancel", APR10 + 120, NULL), TALLY_EBUSY);
    cr_assert(strstr(msg, "STATUS_PAID") != NULL, "message names the status: %s", msg);
    cr_assert_eq(act("inv-2024-03", "pay", APR10 + 120, NULL), TALLY_EBUSY);
    cr_assert_eq(act("inv-2024-03", "refund", APR10 + 180, &st), 0, "%s", msg);
    cr_assert_eq(st, TALLY_INVOICE_STATUS_REFUNDED);
    cr_assert_eq(act("inv-2024-03", "refund", APR10 + 240, NULL), TALLY_EBUSY);
    cr_assert(strstr(msg, "STATUS_REFUNDED") != NULL, "%s", msg);

    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-03", APR10 + 300, &inv), 0);
    cr_assert_eq(inv.status, TALLY_INVOICE_STATUS_REFUNDED);
    cr_assert_eq(inv.priced.total_cents, 1031, "amounts stay frozen through status changes");
    tally__invoice_fini(&inv);

    cr_assert_eq(act("inv-2024-02", "pay", APR10, NULL), TALLY_ENOTFOUND, "never closed");
    cr_assert_eq(act("bogus", "pay", APR10, NULL), TALLY_ENOTFOUND);
    cr_assert_eq(act("inv-2024-04", "cancel", APR10, NULL), TALLY_EBUSY, "the running invoice");
    cr_assert(strstr(msg, "running") != NULL, "%s", msg);
    cr_assert_eq(act("inv-2024-03", "void", APR10, NULL), TALLY_EINVAL);
}

Test(invoices, cancel_issued)
{
    close_ok(MAR, APR10, 1);
    int st;
    cr_assert_eq(act("inv-2024-03", "cancel", APR10, &st), 0, "%s", msg);
    cr_assert_eq(st, TALLY_INVOICE_STATUS_CANCELLED);
    cr_assert_eq(act("inv-2024-03", "pay", APR10, NULL), TALLY_EBUSY);
}

/* ---- overdue ---------------------------------------------------------------------- */

Test(invoices, overdue_is_derived_from_the_due_date_and_cleared_by_payment)
{
    close_ok(MAR, APR10, 1);
    int64_t due = APR10 + 30 * DAY;
    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-03", due, &inv), 0);
    cr_assert_eq(tally__invoices_effective_status(&inv, due), TALLY_INVOICE_STATUS_ISSUED,
                 "due day itself is not overdue");
    cr_assert_eq(tally__invoices_effective_status(&inv, due + 1), TALLY_INVOICE_STATUS_OVERDUE);
    json_t *api = tally__invoices_to_api(&inv, "EUR", due + 1);
    cr_assert_str_eq(json_string_value(json_object_get(api, "status")), "OVERDUE");
    json_decref(api);
    tally__invoice_fini(&inv);

    size_t changed = 9;
    cr_assert_eq(tally__invoices_mark_overdue(&env, due, &changed), 0);
    cr_assert_eq(changed, 0);
    cr_assert_eq(tally__invoices_mark_overdue(&env, due + 1, &changed), 0);
    cr_assert_eq(changed, 1);
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-03", due + 1, &inv), 0);
    cr_assert_eq(inv.status, TALLY_INVOICE_STATUS_OVERDUE, "stored");
    tally__invoice_fini(&inv);
    cr_assert_eq(tally__invoices_mark_overdue(&env, due + 2, &changed), 0);
    cr_assert_eq(changed, 0, "once");

    int st;
    cr_assert_eq(act("inv-2024-03", "pay", due + 3, &st), 0, "%s", msg);
    cr_assert_eq(st, TALLY_INVOICE_STATUS_PAID);
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-03", due + 100 * DAY, &inv), 0);
    cr_assert_eq(tally__invoices_effective_status(&inv, due + 100 * DAY), TALLY_INVOICE_STATUS_PAID,
                 "paid is never overdue");
    tally__invoice_fini(&inv);
}

Test(invoices, overdue_derivation_also_applies_to_pay_and_cancel)
{
    env.due_days = 0;
    close_ok(MAR, APR10, 1);
    int st;
    /* due == issued: one second later it is overdue, and pay still takes it */
    cr_assert_eq(act("inv-2024-03", "refund", APR10 + 1, NULL), TALLY_EBUSY);
    cr_assert(strstr(msg, "OVERDUE") != NULL, "%s", msg);
    cr_assert_eq(act("inv-2024-03", "pay", APR10 + 1, &st), 0, "%s", msg);
    cr_assert_eq(st, TALLY_INVOICE_STATUS_PAID);
}

/* ---- list ------------------------------------------------------------------------- */

Test(invoices, list_is_newest_first_with_the_running_invoice_on_top_and_honours_limit)
{
    /* closed out of order: March first, then January, then February */
    close_ok(MAR, APR + DAY, 1);
    close_ok(JAN, APR + 2 * DAY, 1);
    close_ok(FEB, APR + 3 * DAY, 1);
    tally__invoice_t *v;
    size_t n;
    cr_assert_eq(tally__invoices_list(&env, APR10, 0, &v, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(v[0].name, "inv-2024-04");
    cr_assert_eq(v[0].active, 1);
    cr_assert_eq(v[0].status, TALLY_INVOICE_STATUS_PENDING);
    cr_assert_eq(v[0].issued_s, 0);
    cr_assert_str_eq(v[1].name, "inv-2024-02", "issued last");
    cr_assert_str_eq(v[2].name, "inv-2024-01");
    cr_assert_str_eq(v[3].name, "inv-2024-03", "issued first");
    json_t *api = tally__invoices_to_api(&v[0], "EUR", APR10);
    cr_assert_str_eq(json_string_value(json_object_get(api, "period_start")),
                     "2024-04-01T00:00:00Z");
    cr_assert_str_eq(json_string_value(json_object_get(api, "period_end")), "2024-05-01T00:00:00Z");
    cr_assert(json_is_true(json_object_get(api, "active")));
    cr_assert_str_eq(json_string_value(json_object_get(api, "status")), "STATUS_PENDING");
    /* the running invoice prices the month to date (pricing.h's one rule):
     * the fake charges a cent per whole day of [Apr 1, Apr 10 12:00) */
    cr_assert_str_eq(json_string_value(json_object_get(api, "amount")), "1009",
                     "int64 amounts are strings");
    json_decref(api);
    tally__invoices_list_free(v, n);

    cr_assert_eq(tally__invoices_list(&env, APR10, 2, &v, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].name, "inv-2024-04");
    cr_assert_str_eq(v[1].name, "inv-2024-02");
    tally__invoices_list_free(v, n);
}

Test(invoices, running_invoice_alone_and_readable_by_name)
{
    tally__invoice_t *v;
    size_t n;
    cr_assert_eq(tally__invoices_list(&env, APR10, 0, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0].active, 1);
    tally__invoices_list_free(v, n);
    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-04", APR10, &inv), 0);
    cr_assert_eq(inv.active, 1);
    cr_assert_eq(inv.priced.n, 2);
    tally__invoice_fini(&inv);
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-03", APR10, &inv), TALLY_ENOTFOUND);
}

/* ---- persistence ------------------------------------------------------------------ */

Test(invoices, closed_invoices_survive_a_store_reopen)
{
    close_ok(FEB, APR10, 1);
    cr_assert_eq(act("inv-2024-02", "pay", APR10 + 5, NULL), 0, "%s", msg);
    tally__store_close(store);
    open_store();
    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-02", APR10 + 10, &inv), 0);
    cr_assert_eq(inv.status, TALLY_INVOICE_STATUS_PAID);
    cr_assert_eq(inv.issued_s, APR10);
    cr_assert_eq(inv.due_s, APR10 + 30 * DAY);
    cr_assert_eq(inv.period_start_s, FEB);
    cr_assert_eq(inv.priced.n, 2);
    cr_assert_str_eq(inv.priced.lines[0].usage_type, "Plan fee: Free");
    cr_assert_eq(inv.priced.lines[0].fixed, 1);
    cr_assert_eq(inv.priced.lines[0].amount_cents, 1000);
    cr_assert_str_eq(inv.priced.lines[1].metric, "http_requests");
    cr_assert_float_eq(inv.priced.lines[1].quantity, 12.5, 1e-9);
    cr_assert_eq(inv.priced.lines[1].billable, 29);
    cr_assert_eq(inv.priced.lines[1].start_s, FEB);
    cr_assert_eq(inv.priced.lines[1].end_s, MAR);
    cr_assert_eq(inv.priced.total_cents, 1029);
    cr_assert_str_eq(inv.priced.currency, "EUR");
    tally__invoice_fini(&inv);
    close_ok(FEB, APR10 + DAY, 0);
}

/* ---- tax and credit notes ---------------------------------------------------------------- */

Test(invoices, tax_is_frozen_at_close_and_shown_in_the_json)
{
    env.tax_rate_bp = 1950; /* 19.5 % */
    env.tax_label = "VAT";
    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_close(&env, MAR, APR10, &inv, NULL), 0);
    /* March: 1000 + 31 = 1031; 1031 x 0.195 = 201.045 -> 201 */
    cr_assert_eq(inv.priced.total_cents, 1031);
    cr_assert_eq(inv.tax_cents, 201);
    cr_assert_eq(inv.amount_due_cents, 1232);
    tally__invoice_fini(&inv);

    /* a later rate change does not touch an issued invoice, only the running one */
    env.tax_rate_bp = 0;
    env.tax_label = NULL;
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-03", APR10, &inv), 0);
    cr_assert_eq(inv.tax_rate_bp, 1950);
    cr_assert_str_eq(inv.tax_label, "VAT");
    cr_assert_eq(inv.tax_cents, 201);
    cr_assert_eq(inv.amount_due_cents, 1232);
    json_t *api = tally__invoices_to_api(&inv, "EUR", APR10);
    cr_assert_eq(tally__invoice_api_extend(api, &inv), 0);
    cr_assert_str_eq(json_string_value(json_object_get(api, "amount")), "1232", "amount is due");
    cr_assert_str_eq(json_string_value(json_object_get(api, "tally_subtotal")), "1031");
    cr_assert_str_eq(json_string_value(json_object_get(api, "tally_total")), "1031");
    cr_assert_str_eq(json_string_value(json_object_get(api, "tally_tax")), "201");
    cr_assert_str_eq(json_string_value(json_object_get(api, "tally_amount_due")), "1232");
    cr_assert_eq(json_integer_value(json_object_get(api, "tally_tax_rate_bp")), 1950);
    cr_assert_str_eq(json_string_value(json_object_get(api, "tally_tax_label")), "VAT");
    cr_assert_null(json_object_get(api, "tally_credit_note"), "not refunded");
    json_decref(api);
    tally__invoice_fini(&inv);

    cr_assert_eq(tally__invoices_running(&env, APR10, &inv), 0);
    cr_assert_eq(inv.tax_rate_bp, 0);
    cr_assert_eq(inv.tax_cents, 0);
    cr_assert_eq(inv.amount_due_cents, inv.priced.total_cents);
    tally__invoice_fini(&inv);
}

Test(invoices, a_record_from_before_tax_reads_untaxed)
{
    const char *old = "{\"name\":\"inv-2024-02\",\"tenant\":\"acme\",\"plan\":\"free\","
                      "\"period_start\":1706745600,\"period_end\":1709251200,\"issued\":1709251300,"
                      "\"due\":1711843300,\"status\":\"STATUS_PAID\",\"currency\":\"EUR\","
                      "\"subtotal_cents\":1029,\"discount_cents\":0,\"total_cents\":1029,"
                      "\"lines\":[],\"history\":[]}";
    tally__obj_op_t op = {.op = TALLY_OBJ_PUT,
                          .kind = TALLY_INVOICES_KIND,
                          .ns = TALLY_INVOICES_NS,
                          .name = "inv-2024-02",
                          .value = old,
                          .len = strlen(old)};
    cr_assert_eq(tally__store_obj_write(store, &op, 1), 0);
    tally__invoice_t inv;
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-02", APR10, &inv), 0);
    cr_assert_eq(inv.tax_cents, 0);
    cr_assert_eq(inv.amount_due_cents, 1029);
    tally__invoice_fini(&inv);
}

Test(invoices, a_refund_issues_one_credit_note_in_the_same_write)
{
    env.tax_rate_bp = 2000;
    close_ok(MAR, APR10, 1);
    tally__invoice_t inv;
    cr_assert_eq(
        tally__invoices_act(&env, "inv-2024-03", "pay", "admin", APR10 + 60, &inv, msg, sizeof msg),
        0, "%s", msg);
    cr_assert_str_empty(inv.credit_note, "paying issues no credit note");
    tally__invoice_fini(&inv);
    cr_assert_eq(tally__invoices_act(&env, "inv-2024-03", "refund", "ops", APR10 + 120, &inv, msg,
                                     sizeof msg),
                 0, "%s", msg);
    cr_assert_str_eq(inv.credit_note, "CN-2024-03");
    cr_assert_eq(inv.credit_note_s, APR10 + 120);
    tally__invoice_fini(&inv);

    /* stored with the status: read back after reopening the store */
    tally__store_close(store);
    open_store();
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-03", APR10 + 200, &inv), 0);
    cr_assert_eq(inv.status, TALLY_INVOICE_STATUS_REFUNDED);
    cr_assert_str_eq(inv.credit_note, "CN-2024-03");
    cr_assert_eq(inv.credit_note_s, APR10 + 120);
    cr_assert_eq(inv.amount_due_cents, 1031 + 206, "the credit note credits the amount due");
    json_t *api = tally__invoices_to_api(&inv, "EUR", APR10 + 200);
    cr_assert_eq(tally__invoice_api_extend(api, &inv), 0);
    cr_assert_str_eq(json_string_value(json_object_get(api, "tally_credit_note")), "CN-2024-03");
    json_decref(api);
    tally__invoice_fini(&inv);

    /* a second refund is refused and issues nothing */
    cr_assert_eq(act("inv-2024-03", "refund", APR10 + 300, NULL), TALLY_EBUSY);
    cr_assert_eq(tally__invoices_get(&env, "inv-2024-03", APR10 + 400, &inv), 0);
    cr_assert_eq(inv.credit_note_s, APR10 + 120);
    tally__invoice_fini(&inv);

    char name[64];
    cr_assert_eq(tally__credit_note_invoice("CN-2024-03", name, sizeof name), 0);
    cr_assert_str_eq(name, "inv-2024-03");
    cr_assert_eq(tally__credit_note_invoice("inv-2024-03", name, sizeof name), TALLY_EINVAL);
    cr_assert_eq(tally__credit_note_invoice("CN-2024-13", name, sizeof name), TALLY_EINVAL);
    cr_assert_eq(tally__credit_note_invoice("CN-../x", name, sizeof name), TALLY_EINVAL);
    cr_assert_eq(tally__credit_note_invoice(NULL, name, sizeof name), TALLY_EINVAL);
}
