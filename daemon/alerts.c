/* alerts.c — the quota alerter on tallyd's main loop: finds namespaces with limits, compares live
 * usage, publishes one alert_v1 per upward crossing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>

#include "ids.h"
#include "alert.h"
#include "alerts.h"
#include "log.h"
#include "quota.h"
#include "rollup.h"
#include "stats.h"
#include "strtab.h"
#include "timeutil.h"

#define MAX_STATE 65536     /* (namespace, key) levels remembered */
#define MAX_NAMESPACES 4096 /* namespaces evaluated per pass, per source */
#define FORCE_EVAL_MS 5000  /* evaluate at least this often (quota writes) */
#define DATA_SCAN_MS 10000  /* rediscover namespaces with data at least this often */

typedef char ns_name_t[TALLY_MAX_NS_LEN + 1];

typedef struct ns_list {
    ns_name_t *v;
    size_t n, cap;
    int truncated;
    /* optional set over v (index + 1 by name hash, NS_SLOTS entries), for
     * sources that repeat names in any order */
    uint32_t *slots;
} ns_list_t;

#define NS_SLOTS (2 * MAX_NAMESPACES) /* a power of two: at most half full */

struct tally_alerts {
    uv_timer_t timer;
    tally_alerts_opts_t o;
    int pub; /* nanomsg socket, -1 when [quota] alerts is "" */
    tally__alert_state_t *st;
    uint64_t last_gen;
    int64_t last_eval_ms; /* monotonic; 0 = never */
    uint64_t pass;
    ns_list_t data_ns; /* namespaces with data this month (cached) */
    int64_t data_scan_ms;
    int64_t data_month;   /* the month data_ns is of */
    uint64_t data_series; /* the series count (stats) when data_ns was last refreshed */
    int data_rescans;     /* evaluations left that rescan (a new series is pending a flush) */
    int closing;
};

/* Counters outlive any one alerter so /metrics stays monotonic. */
static uint64_t alerts_total[TALLY_ALERT_NLEVELS];
static uint64_t alert_send_errors;
/* The last alerts published, a ring for the dashboard (tally_alerts_recent). */
static tally_alert_seen_t recent[TALLY_ALERTS_RECENT_MAX];
static uint64_t recent_n; /* published since start; the newest is recent[(n - 1) % MAX] */
/* The running alerter (one per process), for /metrics; loop thread only. */
static tally_alerts_t *current;

static int
ns_add(ns_list_t *l, const char *ns, size_t len)
{
    if (len == 0 || len > TALLY_MAX_NS_LEN)
        return 0;
    if (l->n && strlen(l->v[l->n - 1]) == len && memcmp(l->v[l->n - 1], ns, len) == 0)
        return 0; /* the common repeat, whatever the source's order */
    uint32_t slot = 0;
    if (l->slots) {
        slot = (uint32_t)tally__hash_bytes(ns, len) & (NS_SLOTS - 1);
        for (; l->slots[slot]; slot = (slot + 1) & (NS_SLOTS - 1)) {
            const char *have = l->v[l->slots[slot] - 1];
            if (strlen(have) == len && memcmp(have, ns, len) == 0)
                return 0;
        }
    }
    if (l->n >= MAX_NAMESPACES) {
        l->truncated = 1;
        return 0;
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        ns_name_t *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    memcpy(l->v[l->n], ns, len);
    l->v[l->n][len] = '\0';
    l->n++;
    if (l->slots)
        l->slots[slot] = (uint32_t)l->n;
    return 0;
}

static int
on_quota_obj(void *ctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)name;
    (void)value;
    (void)len;
    return ns_add(ctx, ns, strlen(ns));
}

static int
on_month_rollup(void *ctx, const char *series, size_t series_len, int64_t period_s,
                const tally__rollup_t *r)
{
    (void)period_s;
    (void)r;
    tally__series_t s;
    if (tally__series_parse(series, series_len, &s) != 0)
        return 0;
    return ns_add(ctx, s.ns, s.ns_len);
}

static int
cmp_ns(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Whether the tenant's plan gives every namespace object/resource limits. */
static int
plan_has_default_limits(tally_alerts_t *a)
{
    const tally__plan_t *plan;
    if (tally__plans_current(a->o.plans, a->o.store, a->o.cfg->billing.default_plan, &plan) != 0)
        return 0;
    for (size_t i = 0; i < plan->nlimits; i++)
        if (plan->limits[i].kind == TALLY_LIMIT_OBJECT ||
            plan->limits[i].kind == TALLY_LIMIT_RESOURCE)
            return 1;
    return 0;
}

static void
refresh_data_namespaces(tally_alerts_t *a, int64_t now_s, int64_t mono_ms)
{
    int64_t month = tally__time_month_start(now_s);
    /* A new series may be a new namespace: rescan now and at the next
     * evaluation too (the series is counted when aggregated, its record
     * lands with the next flush), so a namespace seen for the first time is
     * checked within one flush, not after DATA_SCAN_MS (its 80 % warning
     * could be skipped). */
    uint64_t series = TALLY_STAT_GET(series);
    if (series != a->data_series) {
        a->data_series = series;
        a->data_rescans = 2;
    }
    if (a->data_rescans > 0)
        a->data_rescans--;
    else if (a->data_scan_ms && mono_ms - a->data_scan_ms < DATA_SCAN_MS && a->data_month == month)
        return;
    a->data_scan_ms = mono_ms;
    a->data_month = month;
    a->data_ns.n = 0;
    a->data_ns.truncated = 0;
    /* the scan visits the month's records by series id, so namespaces
     * repeat in any order: a set keeps each once */
    a->data_ns.slots = calloc(NS_SLOTS, sizeof *a->data_ns.slots);
    int rc = a->data_ns.slots ? tally__store_scan(a->o.store, TALLY_STORE_MONTHLY, NULL, 0, month,
                                                  month + 1, on_month_rollup, &a->data_ns)
                              : -ENOMEM;
    free(a->data_ns.slots);
    a->data_ns.slots = NULL;
    if (rc < 0)
        tally__log_warn("alerts: cannot list namespaces with data err=\"%s\"", tally_strerror(rc));
    if (a->data_ns.truncated)
        tally__log_warn("alerts: more than %d namespaces with data; evaluating the first %d",
                        MAX_NAMESPACES, MAX_NAMESPACES);
}

static void
publish(tally_alerts_t *a, const char *ns, const tally__quota_limit_t *lim, double usage, int level,
        int prev)
{
    alerts_total[level]++;
    tally_alert_seen_t *seen = &recent[recent_n++ % TALLY_ALERTS_RECENT_MAX];
    snprintf(seen->ns, sizeof seen->ns, "%s", ns);
    snprintf(seen->key, sizeof seen->key, "%s", lim->key);
    seen->level = level;
    seen->prev = prev;
    seen->usage = usage;
    seen->limit = lim->maximum;
    seen->at_ms = tally__time_now_ms();
    tally__log_info("quota alert ns=%s key=%s level=%s from=%s usage=%.17g limit=%.17g source=%s",
                    ns, lim->key, tally__alert_level_name(level), tally__alert_level_name(prev),
                    usage, lim->maximum, lim->source);
    if (a->pub < 0)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = tally__encode_alert(&sb, ns, strlen(ns), lim->key, lim->maximum, usage, level,
                                 tally__time_now_ms());
    if (rc == 0 && nn_send(a->pub, sb.data, sb.size, NN_DONTWAIT) < 0)
        rc = -nn_errno();
    if (rc) {
        alert_send_errors++;
        tally__log_warn("alerts: cannot publish ns=%s key=%s err=\"%s\"", ns, lim->key,
                        rc < 0 && rc > -4096 ? nn_strerror(-rc) : tally_strerror(rc));
    }
    msgpack_sbuffer_destroy(&sb);
}

static void
evaluate_ns(tally_alerts_t *a, const char *ns, int64_t now_s)
{
    tally__quota_limits_t lims = {0};
    int rc =
        tally__quota_effective(a->o.store, a->o.plans, a->o.cfg->billing.default_plan, ns, &lims);
    if (rc) {
        tally__log_warn("alerts: cannot read the limits of ns=%s err=\"%s\"", ns,
                        tally_strerror(rc));
        /* keep the namespace's levels as they were: a read error is not a
         * reason to re-arm (and re-send) its alerts */
        tally__alert_state_keep(a->st, ns, a->pass);
        return;
    }
    for (size_t i = 0; i < lims.n; i++) {
        const tally__quota_limit_t *lim = &lims.items[i];
        if (lim->maximum < 0 || !lim->key[0])
            continue; /* unlimited */
        double usage = 0;
        if ((rc = tally__quota_usage(a->o.store, a->o.catalog, ns, lim->key, now_s, &usage)) != 0) {
            tally__log_warn("alerts: cannot read usage ns=%s key=%s err=\"%s\"", ns, lim->key,
                            tally_strerror(rc));
            tally__alert_state_keep(a->st, ns, a->pass);
            continue;
        }
        int level = tally__alert_level(usage, lim->maximum, a->o.cfg->quota.warn_percent);
        double ratio = lim->maximum > 0 ? usage / lim->maximum : -1; /* -1: no ratio */
        int prev;
        rc = tally__alert_state_update(a->st, ns, lim->key, level, ratio, a->pass, &prev);
        /* every level crossed, in order, even when one flush crossed several
         * (ok -> warning -> exceeded); no warning level when warn_percent is 0 */
        for (int l = prev + 1, from = prev; rc == 1 && l <= level; l++) {
            if (l == level || a->o.cfg->quota.warn_percent > 0) {
                publish(a, ns, lim, usage, l, from);
                from = l;
            }
        }
        if (rc == TALLY_EFULL)
            tally__log_warn("alerts: level table full (%d); ns=%s key=%s not tracked",
                            MAX_STATE, ns, lim->key);
    }
    tally__quota_limits_free(&lims);
}

static int
ns_append(ns_list_t *l, const char *ns)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        ns_name_t *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    memcpy(l->v[l->n++], ns, sizeof(ns_name_t));
    return 0;
}

static void
evaluate(tally_alerts_t *a)
{
    int64_t now_s = tally__time_now_ms() / 1000, mono = tally__time_mono_ms();
    ns_list_t all = {0};
    a->pass++;
    int rc = tally__store_obj_list(a->o.store, "quota", NULL, on_quota_obj, &all);
    if (rc < 0) {
        /* without the list, the sweep would forget every level: skip the pass */
        tally__log_warn("alerts: cannot list quota objects err=\"%s\"", tally_strerror(rc));
        free(all.v);
        return;
    }
    if (all.truncated)
        tally__log_warn("alerts: more than %d namespaces with quota objects; evaluating the "
                        "first %d",
                        MAX_NAMESPACES, MAX_NAMESPACES);
    if (plan_has_default_limits(a)) {
        refresh_data_namespaces(a, now_s, mono);
        for (size_t i = 0; i < a->data_ns.n; i++)
            if (ns_append(&all, a->data_ns.v[i]) != 0)
                break;
        if (all.n > 1) /* qsort's base must not be NULL, even for 0 items */
            qsort(all.v, all.n, sizeof *all.v, cmp_ns);
    }
    for (size_t i = 0; i < all.n; i++)
        if (i == 0 || strcmp(all.v[i], all.v[i - 1]) != 0)
            evaluate_ns(a, all.v[i], now_s);
    tally__alert_state_sweep(a->st, a->pass);
    free(all.v);
}

static void
on_timer(uv_timer_t *t)
{
    tally_alerts_t *a = t->data;
    if (a->closing)
        return;
    uint64_t gen = TALLY_STAT_GET(flushes);
    int64_t mono = tally__time_mono_ms();
    if (a->last_eval_ms && gen == a->last_gen && mono - a->last_eval_ms < FORCE_EVAL_MS)
        return;
    a->last_gen = gen;
    a->last_eval_ms = mono ? mono : 1;
    evaluate(a);
}

int
tally_alerts_start(const tally_alerts_opts_t *opts, tally_alerts_t **out)
{
    tally_alerts_t *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->o = *opts;
    a->pub = -1;
    int rc = tally__alert_state_create(MAX_STATE, &a->st);
    if (rc)
        goto fail;
    const char *ep = opts->cfg->quota.alerts;
    if (ep && *ep) {
        if ((a->pub = nn_socket(AF_SP, NN_PUB)) < 0) {
            rc = -nn_errno();
            goto fail;
        }
        if (nn_bind(a->pub, ep) < 0) {
            rc = -nn_errno();
            tally__log_error("alerts: cannot bind endpoint=%s err=\"%s\"", ep, nn_strerror(-rc));
            goto fail;
        }
    }
    if ((rc = uv_timer_init(opts->loop, &a->timer)) != 0)
        goto fail;
    a->timer.data = a;
    uint64_t every = opts->cfg->flush.interval_ms;
    if (every < 100)
        every = 100; /* evaluation reads the store; a 1 ms flush need not mean 1 ms alerts */
    if (every > 1000)
        every = 1000;
    uv_timer_start(&a->timer, on_timer, every, every);
    current = a;
    *out = a;
    return 0;
fail:
    if (a->pub >= 0)
        nn_close(a->pub);
    tally__alert_state_destroy(a->st);
    free(a);
    return rc;
}

static void
on_close(uv_handle_t *h)
{
    tally_alerts_t *a = h->data;
    tally__alert_state_destroy(a->st);
    free(a->data_ns.v);
    free(a);
}

void
tally_alerts_close(tally_alerts_t *a)
{
    if (!a || a->closing)
        return;
    a->closing = 1;
    if (current == a)
        current = NULL;
    uv_timer_stop(&a->timer);
    if (a->pub >= 0) {
        nn_close(a->pub);
        a->pub = -1;
    }
    uv_close((uv_handle_t *)&a->timer, on_close);
}

/* What ratio_line() writes to, and whom for. */
typedef struct ratio_scrape {
    tally_prom_t *p;
    const tally__token_t *viewer;
} ratio_scrape_t;

static void
ratio_line(void *vctx, const char *ns, const char *key, int level, double ratio)
{
    ratio_scrape_t *rs = vctx;
    (void)level;
    if (ratio >= 0 && tally__token_allows(rs->viewer, ns, TALLY_ACCESS_READ))
        tally_prom_double(rs->p, "tally_quota_utilization_ratio", "namespace", ns, "key", key,
                          ratio);
}

void
tally_alerts_metrics(tally_prom_t *p, const tally__token_t *viewer)
{
    tally_prom_family(p, "tally_quota_alerts_total", "counter",
                      "Quota alerts raised (upward crossings), by level.");
    for (int l = TALLY_ALERT_WARNING; l < TALLY_ALERT_NLEVELS; l++)
        tally_prom_u64(p, "tally_quota_alerts_total", "level", tally__alert_level_name(l), NULL,
                       NULL, alerts_total[l]);
    tally_prom_family(p, "tally_quota_alert_send_errors_total", "counter",
                      "Quota alerts the PUB socket refused (still counted above).");
    tally_prom_u64(p, "tally_quota_alert_send_errors_total", NULL, NULL, NULL, NULL,
                   alert_send_errors);
    tally_prom_family(p, "tally_quota_utilization_ratio", "gauge",
                      "Usage / limit of each limit evaluated (by namespace and limit key). "
                      "Per-namespace: shown only to a scrape with an API token "
                      "(Authorization: APIToken ...) that may read the namespace; an "
                      "anonymous scrape gets no sample.");
    /* no token allows nothing: the walk is skipped, not filtered */
    ratio_scrape_t rs = {p, viewer};
    if (current && viewer)
        tally__alert_state_each(current->st, ratio_line, &rs);
}

size_t
tally_alerts_recent(const char *ns, tally_alert_seen_t *out, size_t cap)
{
    size_t n = 0;
    uint64_t have = recent_n < TALLY_ALERTS_RECENT_MAX ? recent_n : TALLY_ALERTS_RECENT_MAX;
    for (uint64_t i = 0; i < have && n < cap; i++) {
        const tally_alert_seen_t *a = &recent[(recent_n - 1 - i) % TALLY_ALERTS_RECENT_MAX];
        if (!ns || strcmp(a->ns, ns) == 0)
            out[n++] = *a;
    }
    return n;
}
