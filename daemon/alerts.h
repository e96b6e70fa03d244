/* alerts.h — tallyd's quota alerter: evaluates usage against effective limits on the main loop and
 * publishes alert_v1 on the [quota] alerts PUB socket.
 *
 * A uv_timer fires every flush interval. When the store generation
 * (tally_stats.flushes: committed flushes) moved since the last evaluation,
 * or at least every 5 s anyway (a quota write changes limits without a
 * flush), the alerter evaluates:
 *   - every namespace holding quota objects (store objects of kind "quota"),
 *   - plus, when the tenant's current plan has default object or resource
 *     limits, every namespace with data this month (rediscovered at most
 *     every 10 s, at most 4096 namespaces);
 * for each effective object/resource limit it reads the live usage
 * (tally__quota_usage), computes the level (lib/alert.h) and publishes one
 * alert per upward crossing. Going down re-arms silently. The level table is
 * bounded (65536 (namespace, key) pairs) and forgets limits that are gone.
 *
 * After a restart the table starts empty, so a limit already above a
 * threshold alerts once more: subscribers may see a crossing twice across
 * restarts, never miss one that happened while tallyd ran.
 *
 * Alerts are counted in /metrics even when `[quota] alerts` is "" (no
 * socket) or the PUB send fails (nanomsg drops for slow subscribers).
 *
 * Threads: everything runs on the loop thread given at create, the same one
 * that serves HTTP (/metrics reads the table without locks).
 */
#ifndef TALLY_ALERTS_H
#define TALLY_ALERTS_H

#include <stdint.h>

#include <uv.h>

#include "auth.h"
#include "catalog.h"
#include "config.h"
#include "plans.h"
#include "prom.h"
#include "store.h"

typedef struct tally_alerts tally_alerts_t;

typedef struct tally_alerts_opts {
    uv_loop_t *loop;
    const tally__config_t
        *cfg; /**< [quota] alerts, warn_percent; [flush]; [billing] default_plan */
    const tally__catalog_t *catalog;
    const tally__plans_t *plans;
    tally__store_t *store;
} tally_alerts_opts_t;

/**
 * @brief Bind the alerts PUB socket (unless cfg->quota.alerts is "") and
 *        start the evaluation timer. Everything borrowed in opts must
 *        outlive the alerter (until its close completes).
 * @param[out] out owned by the caller until tally_alerts_close().
 * @return 0, -ENOMEM, -errno from nanomsg (socket or bind) or libuv.
 */
int tally_alerts_start(const tally_alerts_opts_t *opts, tally_alerts_t **out);

/**
 * @brief Stop the timer, close the socket; the memory is freed from the
 *        timer's close callback (so the loop must run afterwards). NULL is
 *        ignored. No evaluation runs after this call.
 */
void tally_alerts_close(tally_alerts_t *a);

/**
 * @brief Append tally_quota_alerts_total{level} (counts since start, of
 *        every alerter) and tally_quota_utilization_ratio{namespace,key}
 *        (the limits of the running alerter's last evaluation) for /metrics.
 * @param viewer the API token of the scrape, or NULL for an anonymous one:
 *        a namespace's ratios are shown only when tally__token_allows(viewer,
 *        ns, TALLY_ACCESS_READ) (an admin of `*` sees every namespace); an
 *        anonymous scrape gets the family's HELP and TYPE and no sample, since
 *        a ratio is another namespace's usage over its limit.
 * @note Loop thread only.
 */
void tally_alerts_metrics(tally_prom_t *p, const tally__token_t *viewer);

/** Bound of the recent-alerts memory (tally_alerts_recent()). */
#define TALLY_ALERTS_RECENT_MAX 256

/** One alert as published (what tally_alerts_recent() returns). */
typedef struct tally_alert_seen {
    char ns[TALLY_MAX_NS_LEN + 1];
    char key[TALLY_MAX_METRIC_LEN + 1]; /**< the limit's metric label */
    int level;                          /**< TALLY_ALERT_WARNING or _EXCEEDED */
    int prev;                           /**< the level it rose from */
    double usage, limit;
    int64_t at_ms; /**< unix ms of the crossing */
} tally_alert_seen_t;

/**
 * @brief The last TALLY_ALERTS_RECENT_MAX alerts published since tallyd
 *        started (every alerter), newest first, for the dashboard. They are
 *        kept in memory only: a restart forgets them (the PUB socket and the
 *        log are the durable record).
 * @param ns a namespace to keep only its alerts, or NULL for all.
 * @return how many were written to out (at most cap).
 * @note Loop thread only.
 */
size_t tally_alerts_recent(const char *ns, tally_alert_seen_t *out, size_t cap);

#endif
