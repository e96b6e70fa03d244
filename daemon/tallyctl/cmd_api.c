/* cmd_api.c — tallyctl's read commands on tallyd's HTTP API: usage (usage_details) and stats
 * (/metrics). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl.h"
#include "fmt.h"
#include "http.h"
#include "tally/tally.h"
#include "timeparse.h"
#include "timeutil.h"

/* ---- usage ------------------------------------------------------------------ */

static const ctl_opt_t usage_opts[] = {
    CTL_OPTS_HTTP,
    {"ns", 0, CTL_ARG, "NS", "namespace; 'system' = every namespace", 1},
    {"from", 0, CTL_ARG, "T", "start of the window (default: the start of this month)", 0},
    {"to", 0, CTL_ARG, "T", "end of the window, exclusive (default: now)", 0},
    {"json", 0, CTL_FLAG, NULL, "print tallyd's answer as it is (raw quantities)", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static const char *
str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int
usage_table(const ctl_args_t *a, const ctl_http_resp_t *r)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    json_t *items = json_object_get(j, "usage_items");
    if (!json_is_array(items)) {
        json_decref(j);
        return ctl_fail(a, "unexpected answer (no usage_items): %.200s", r->body);
    }
    printf("%-20s %-24s %-24s %16s  %-12s %-22s %-20s %-20s\n", "NAMESPACE", "METRIC", "OBJECT",
           "QUANTITY", "UNIT", "USAGE TYPE", "FROM", "TO");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        char q[CTL_FMT_LEN];
        const char *object = str_of(it, "object_name");
        ctl_fmt_unit(str_of(it, "unit_name"), json_number_value(json_object_get(it, "quantity")), q,
                     sizeof q);
        printf("%-20s %-24s %-24s %16s  %-12s %-22s %-20s %-20s\n", str_of(it, "namespace"),
               str_of(it, "metric_label"), object[0] ? object : "-", q, str_of(it, "unit_name"),
               str_of(it, "usage_type"), str_of(it, "start_timestamp"),
               str_of(it, "end_timestamp"));
    }
    json_decref(j);
    return CTL_EXIT_OK;
}

static int
run_usage(const ctl_args_t *a)
{
    const char *ns = ctl_opt_str(a, "ns");
    int64_t ms[2] = {0, 0};
    int given[2];
    static const char *const keys[2] = {"from", "to"};
    if (ctl_opt_time(a, "from", CTL_TIME_START, &ms[0], &given[0]) != 0 ||
        ctl_opt_time(a, "to", CTL_TIME_END, &ms[1], &given[1]) != 0)
        return CTL_EXIT_USAGE;
    if (!tally__valid_ns(ns, strlen(ns)))
        return ctl_usage_error(a, "--ns: '%s' is not a namespace ([a-z0-9-], 1..64 bytes)", ns);
    ctl_target_t t;
    int status = ctl_target_resolve(a, 1, &t);
    if (status != 0)
        return status;
    status = CTL_EXIT_FAIL;
    char *body = NULL, path[256];
    ctl_http_resp_t r;
    json_t *req = json_object();
    for (int i = 0; i < 2 && req; i++) {
        char when[TALLY_TIME_RFC3339_LEN];
        if (!given[i])
            continue;
        tally__time_format_rfc3339(ms[i] / 1000, when, sizeof when);
        if (json_object_set_new(req, keys[i], json_string(when)) != 0) {
            json_decref(req);
            req = NULL;
        }
    }
    if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL) {
        ctl_fail(a, "out of memory");
        goto out;
    }
    snprintf(path, sizeof path, "/api/web/namespaces/%s/usage_details", ns);
    if (ctl_http_request("usage", t.url, "POST", path, t.token, body, &r) != 0)
        goto out;
    if (r.status != 200)
        ctl_http_report("usage", &r);
    else if (ctl_opt_flag(a, "json"))
        status = printf("%s\n", r.body) < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
    else
        status = usage_table(a, &r);
    ctl_http_resp_free(&r);
out:
    free(body);
    json_decref(req);
    ctl_target_fini(&t);
    return status;
}

const ctl_cmd_t ctl_cmd_usage = {
    .name = "usage",
    .summary = "usage of a namespace over a window, from the HTTP API",
    .synopsis = "usage --ns NS [--from T] [--to T] [--url URL] [--token-file FILE] [--json]",
    .description = "  Usage per metric and object over [from, to) (default: month to date), from\n"
                   "  POST /api/web/namespaces/NS/usage_details. The table shows each quantity in\n"
                   "  its unit (bytes as KiB/MiB/GiB, seconds as min/h, counts with thousands\n"
                   "  separators); --json prints the answer with the exact numbers.\n",
    .epilog = "TIMES: RFC 3339, unix seconds, 2026-11 (a month), 2026-11-05 (a day), today,\n"
              "  yesterday, now, or an offset from now: -30m, -24h, -7d (UTC). A day or month\n"
              "  given to --to includes that whole day or month: --from 2026-10 --to 2026-11\n"
              "  is October and November.\n"
              "TOKEN: --token-file FILE, else TALLY_TOKEN, else [tallyctl] token_file of the\n"
              "  configuration.\n"
              "Exit status 0 when tallyd answered 200, 1 otherwise, 2 for bad usage.\n",
    .opts = usage_opts,
    .run = run_usage,
};

/* ---- stats ------------------------------------------------------------------ */

static const ctl_opt_t stats_opts[] = {
    CTL_OPT_URL,
    CTL_OPT_CONFIG,
    {"json", 0, CTL_FLAG, NULL, "print {key: value} with the raw numbers", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

/* The value of an unlabelled series, or -1 when /metrics has none. */
static double
metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

/* The sum over every labelled series of a metric. */
static double
metric_sum(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    double sum = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0 && p[n] == '{') {
            const char *sp = strchr(p, '}');
            if (sp)
                sum += strtod(sp + 1, NULL);
        }
    }
    return sum;
}

enum stat_kind { K_COUNT, K_BYTES, K_SECONDS, K_FLAG };

static int
run_stats(const ctl_args_t *a)
{
    static const struct {
        const char *key, *metric, *label;
        int sum;
        enum stat_kind kind;
    } rows[] = {
        {"events", "tally_ingest_events_total", "events accepted", 0, K_COUNT},
        {"events_committed", "tally_ingest_events_committed_total", "events committed", 0, K_COUNT},
        {"batches", "tally_ingest_batches_total", "batches accepted", 0, K_COUNT},
        {"duplicate_batches", "tally_ingest_duplicate_batches_total", "duplicate batches", 0,
         K_COUNT},
        {"rejected", "tally_ingest_rejected_total", "rejected (all reasons)", 1, K_COUNT},
        {"series", "tally_series_active", "series", 0, K_COUNT},
        {"producers", "tally_producers", "producers", 0, K_COUNT},
        {"producer_lag", "tally_producer_lag", "batches awaiting commit", 0, K_COUNT},
        {"flushes", "tally_flushes_total", "flushes", 0, K_COUNT},
        {"flush_errors", "tally_flush_errors_total", "flush errors", 0, K_COUNT},
        {"ingest_paused", "tally_ingest_paused", "ingest paused", 0, K_FLAG},
        {"store_full", "tally_store_full", "store full", 0, K_FLAG},
        {"map_used_bytes", "tally_store_map_used_bytes", "store bytes used", 0, K_BYTES},
        {"map_size_bytes", "tally_store_map_size_bytes", "store map size", 0, K_BYTES},
        {"http_connections", "tally_http_connections", "HTTP connections", 0, K_COUNT},
        {"http_requests", "tally_http_requests_total", "HTTP requests", 1, K_COUNT},
        {"uptime_seconds", "tally_uptime_seconds", "uptime", 0, K_SECONDS},
    };
    ctl_target_t t;
    int status = ctl_target_resolve(a, 0, &t);
    if (status != 0)
        return status;
    ctl_http_resp_t r;
    if (ctl_http_request("stats", t.url, "GET", "/metrics", NULL, NULL, &r) != 0)
        return CTL_EXIT_FAIL;
    if (r.status != 200) {
        ctl_http_report("stats", &r);
        ctl_http_resp_free(&r);
        return CTL_EXIT_FAIL;
    }
    int json = ctl_opt_flag(a, "json");
    json_t *o = json ? json_object() : NULL;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double v =
            rows[i].sum ? metric_sum(r.body, rows[i].metric) : metric_value(r.body, rows[i].metric);
        char buf[CTL_FMT_LEN];
        if (json) {
            if (o && json_object_set_new(o, rows[i].key, ctl_json_number(v)) != 0) {
                json_decref(o);
                o = NULL;
            }
            continue;
        }
        if (v < 0)
            snprintf(buf, sizeof buf, "-"); /* not in this tallyd's /metrics */
        else if (rows[i].kind == K_BYTES)
            ctl_fmt_bytes(v, buf, sizeof buf);
        else if (rows[i].kind == K_SECONDS)
            ctl_fmt_seconds(v, buf, sizeof buf);
        else if (rows[i].kind == K_FLAG)
            snprintf(buf, sizeof buf, "%s", v != 0 ? "yes" : "no");
        else
            ctl_fmt_count(v, buf, sizeof buf);
        printf("%-26s %18s\n", rows[i].label, buf);
    }
    ctl_http_resp_free(&r);
    if (json)
        return ctl_json_print(a, o, JSON_COMPACT);
    return CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_stats = {
    .name = "stats",
    .summary = "the daemon's key counters, from /metrics",
    .synopsis = "stats [--url URL] [--config FILE] [--json]",
    .description = "  The daemon's key counters, read from GET /metrics (no token needed). The\n"
                   "  table shows bytes as KiB/MiB/GiB, the uptime in s/min/h and counts with\n"
                   "  thousands separators; --json the raw numbers (-1: not reported).\n",
    .opts = stats_opts,
    .run = run_stats,
};
