/* test_quota_alerts.c — end-to-end tests of quota alerts (one alert_v1 per crossing on the alerts
 * PUB socket, /metrics, tallyctl watch) and api_limits (429 with Retry-After per token) against a
 * real tallyd. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>

#include "alert.h"
#include "harness.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN
#define EDITOR HARNESS_DEMO_EDITOR_TOKEN

static harness_t *H;

static void
setup(void)
{
    H = harness_start(NULL);
}

static void
teardown(void)
{
    harness_t *h = H;
    H = NULL;
    harness_stop(h);
}

TestSuite(quota_alerts, .init = setup, .fini = teardown, .timeout = 300);

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* A SUB socket on the harness' alerts endpoint (TALLY_QUOTA_ALERTS =
 * ipc://DIR/alerts, set by the harness), subscribed to topic (NULL: all). */
static int
subscribe(const char *topic)
{
    char ep[256];
    snprintf(ep, sizeof ep, "ipc://%s/alerts", H->dir);
    int s = nn_socket(AF_SP, NN_SUB);
    cr_assert_geq(s, 0);
    cr_assert_geq(nn_setsockopt(s, NN_SUB, NN_SUB_SUBSCRIBE, topic ? topic : "",
                                topic ? strlen(topic) + 1 : 0),
                  0);
    cr_assert_geq(nn_connect(s, ep), 0, "%s: %s", ep, nn_strerror(nn_errno()));
    sleep_ms(200); /* let the ipc connection come up before anything is published */
    return s;
}

/* Receive one alert within timeout_ms: 1 and *out filled, or 0 on timeout. */
static int
recv_alert(int s, int timeout_ms, tally__wire_alert_t *out, char *ns, size_t nscap, char *key,
           size_t keycap)
{
    cr_assert_geq(nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms), 0);
    void *msg = NULL;
    int n = nn_recv(s, &msg, NN_MSG, 0);
    if (n < 0) {
        cr_assert(nn_errno() == ETIMEDOUT || nn_errno() == EAGAIN, "nn_recv: %s",
                  nn_strerror(nn_errno()));
        return 0;
    }
    cr_assert_eq(tally__decode_alert(msg, (size_t)n, out), 0, "a message that is not alert_v1");
    snprintf(ns, nscap, "%.*s", (int)out->ns.len, out->ns.p);
    snprintf(key, keycap, "%.*s", (int)out->key.len, out->key.p);
    out->ns.p = ns;
    out->key.p = key;
    nn_freemsg(msg);
    return 1;
}

static void
create_quota(const char *name, const char *spec)
{
    char body[1024], path[256];
    snprintf(body, sizeof body,
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"demo\"},\"spec\":%s}", name, spec);
    snprintf(path, sizeof path, "/api/web/namespaces/demo/quotas");
    int status;
    json_t *r = harness_post_json(H, path, ADMIN, body, &status);
    char *txt = r ? json_dumps(r, JSON_COMPACT) : NULL;
    cr_assert_eq(status, 200, "quota create: %d %s", status, txt ? txt : "(not JSON)");
    free(txt);
    json_decref(r);
}

static void
emit_n(int n)
{
    for (int i = 0; i < n; i++)
        harness_emit(H, "demo", "http_requests", 1, 0, NULL);
    harness_flush(H);
}

Test(quota_alerts, one_warning_then_one_exceeded_per_crossing)
{
    int sub = subscribe("demo");
    int all = subscribe(NULL);
    create_quota("alerting", "{\"resource_limits\":{\"http_requests\":{\"maximum\":100}}}");
    tally__wire_alert_t a;
    char ns[80], key[80];

    emit_n(79); /* 79 %: below the 80 % warning threshold */
    cr_assert_eq(recv_alert(sub, 1500, &a, ns, sizeof ns, key, sizeof key), 0,
                 "no alert below the threshold, got %s %s", ns, tally__alert_level_name(a.level));

    int64_t t0 = harness_now_ms();
    emit_n(2); /* 81 %: one warning */
    cr_assert_eq(recv_alert(sub, 10000, &a, ns, sizeof ns, key, sizeof key), 1, "warning alert");
    cr_assert_str_eq(ns, "demo");
    cr_assert_str_eq(key, "http_requests");
    cr_assert_eq(a.level, TALLY_ALERT_WARNING);
    cr_assert_eq(a.limit, 100.0);
    cr_assert_eq(a.usage, 81.0);
    cr_assert_geq(a.ts_ms, t0 - 1000);
    cr_assert_leq(a.ts_ms, harness_now_ms() + 1000);
    cr_assert_eq(recv_alert(sub, 1500, &a, ns, sizeof ns, key, sizeof key), 0,
                 "one alert per crossing, not per evaluation");

    emit_n(20); /* 101 %: one exceeded */
    cr_assert_eq(recv_alert(sub, 10000, &a, ns, sizeof ns, key, sizeof key), 1, "exceeded alert");
    cr_assert_eq(a.level, TALLY_ALERT_EXCEEDED);
    cr_assert_eq(a.usage, 101.0);
    cr_assert_eq(a.limit, 100.0);

    emit_n(5); /* still over: nothing more */
    cr_assert_eq(recv_alert(sub, 1500, &a, ns, sizeof ns, key, sizeof key), 0,
                 "no repeat while above the limit");

    /* the unfiltered subscriber saw the same two alerts */
    cr_assert_eq(recv_alert(all, 1000, &a, ns, sizeof ns, key, sizeof key), 1);
    cr_assert_eq(a.level, TALLY_ALERT_WARNING);
    cr_assert_eq(recv_alert(all, 1000, &a, ns, sizeof ns, key, sizeof key), 1);
    cr_assert_eq(a.level, TALLY_ALERT_EXCEEDED);
    nn_close(sub);
    nn_close(all);

    /* /metrics counts them and shows the utilization (per-namespace series
     * only to a token that may read the namespace: here the admin) */
    harness_resp_t r;
    harness_http(H, "GET", "/metrics", HARNESS_ADMIN_TOKEN, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "tally_quota_alerts_total{level=\"warning\"} 1\n"), "%s", r.body);
    cr_assert(strstr(r.body, "tally_quota_alerts_total{level=\"exceeded\"} 1\n"), "%s", r.body);
    cr_assert(
        strstr(r.body,
               "tally_quota_utilization_ratio{namespace=\"demo\",key=\"http_requests\"} 1.06\n"),
        "%s", r.body);
    harness_resp_free(&r);
}

Test(quota_alerts, other_namespaces_are_filtered_out)
{
    int other = subscribe("demo-2");
    int sub = subscribe("demo");
    create_quota("small", "{\"resource_limits\":{\"http_requests\":{\"maximum\":2}}}");
    emit_n(3);
    tally__wire_alert_t a;
    char ns[80], key[80];
    cr_assert_eq(recv_alert(sub, 10000, &a, ns, sizeof ns, key, sizeof key), 1);
    cr_assert_eq(a.level, TALLY_ALERT_WARNING, "ok -> exceeded reports each level crossed");
    cr_assert_eq(recv_alert(sub, 2000, &a, ns, sizeof ns, key, sizeof key), 1);
    cr_assert_eq(a.level, TALLY_ALERT_EXCEEDED);
    cr_assert_eq(recv_alert(sub, 1500, &a, ns, sizeof ns, key, sizeof key), 0);
    cr_assert_eq(recv_alert(other, 500, &a, ns, sizeof ns, key, sizeof key), 0,
                 "topic demo-2 must not receive demo's alerts");
    nn_close(sub);
    nn_close(other);
}

Test(quota_alerts, tallyctl_watch_prints_alerts)
{
    /* tallyctl watch runs in the background, exits after one alert */
    char ep[256], out[256], cmd[2048];
    snprintf(ep, sizeof ep, "ipc://%s/alerts", H->dir);
    snprintf(out, sizeof out, "%s/watch.out", H->dir);
    snprintf(cmd, sizeof cmd,
             "'%s/tallyctl' watch --endpoint '%s' --ns demo --json --count 1 "
             "--timeout 30 > '%s' 2>&1 &",
             H->bin_dir, ep, out);
    cr_assert_eq(system(cmd), 0);
    sleep_ms(500);
    create_quota("watched", "{\"resource_limits\":{\"http_requests\":{\"maximum\":10}}}");
    emit_n(9);
    json_t *j = NULL;
    for (int i = 0; i < 100 && !j; i++) {
        sleep_ms(200);
        j = json_load_file(out, 0, NULL);
    }
    cr_assert_not_null(j, "tallyctl watch printed no JSON line");
    cr_assert_str_eq(json_string_value(json_object_get(j, "namespace")), "demo");
    cr_assert_str_eq(json_string_value(json_object_get(j, "key")), "http_requests");
    cr_assert_str_eq(json_string_value(json_object_get(j, "level")), "warning");
    cr_assert_eq(json_number_value(json_object_get(j, "usage")), 9.0);
    cr_assert_eq(json_number_value(json_object_get(j, "limit")), 10.0);
    cr_assert_not_null(json_object_get(j, "timestamp"));
    json_decref(j);
    int st;
    const char *const help[] = {"watch", "--help", NULL};
    char *text = harness_tallyctl(H, help, &st);
    cr_assert_eq(st, 0);
    cr_assert(strstr(text, "--endpoint EP") != NULL, "%s", text);
    free(text);
}

Test(quota_alerts, api_limits_give_429_with_retry_after_per_token)
{
    create_quota("api", "{\"api_limits\":{\"usage_details\":{\"rate\":1,\"unit\":\"MINUTE\","
                        "\"burst\":2}}}");
    sleep_ms(1200); /* cached limits refresh within 1 s */
    const char *path = "/api/web/namespaces/demo/usage_details";
    harness_resp_t r;
    /* capacity = rate + burst = 3 */
    for (int i = 0; i < 3; i++) {
        harness_http(H, "POST", path, VIEWER, "{}", &r);
        cr_assert_eq(r.status, 200, "request %d: %d %s", i + 1, r.status, r.body);
        harness_resp_free(&r);
    }
    harness_http(H, "POST", path, VIEWER, "{}", &r);
    cr_assert_eq(r.status, 429, "past the burst: %d %s", r.status, r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "code")), "ETOOMANY");
    char ra[32];
    cr_assert(harness_resp_header(&r, "Retry-After", ra, sizeof ra), "no Retry-After");
    int secs = atoi(ra);
    cr_assert(secs >= 1 && secs <= 60, "Retry-After %s", ra);
    harness_resp_free(&r);
    /* another token is unaffected; so is another operation of the same token */
    harness_http(H, "POST", path, ADMIN, "{}", &r);
    cr_assert_eq(r.status, 200, "admin: %d %s", r.status, r.body);
    harness_resp_free(&r);
    harness_http(H, "GET", "/api/web/namespaces/demo/quota/limits", VIEWER, NULL, &r);
    cr_assert_eq(r.status, 200, "other operation: %d %s", r.status, r.body);
    harness_resp_free(&r);
}

Test(quota_alerts, plan_limits_reach_a_namespace_behind_thousands_of_interleaved_series)
{
    /* 5,000 series of two namespaces, written alternately, then one of a
     * third over the default plan's lb_count limit (2). The month's records
     * are scanned by series id, so the two namespaces repeat all the way:
     * the alerter must still list the third (it once stopped at 4,096
     * entries of repeats) and alert on it. */
    int sub = subscribe("far-ns");
    for (int i = 0; i < 5000; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "object=o-%d", i);
        harness_emit(H, i % 2 ? "near-a" : "near-b", "http_requests", 1, 0, labels);
    }
    harness_flush(H);
    harness_emit(H, "far-ns", "lb_count", 3, 0, NULL);
    harness_flush(H);
    tally__wire_alert_t a;
    char ns[80], key[80];
    /* a new namespace is checked within a flush; 3 of 2 crosses both levels */
    cr_assert_eq(recv_alert(sub, 25000, &a, ns, sizeof ns, key, sizeof key), 1,
                 "no alert for the namespace behind the interleaved ones");
    cr_assert_str_eq(ns, "far-ns");
    cr_assert_str_eq(key, "lb_count");
    cr_assert_eq(a.level, TALLY_ALERT_WARNING);
    cr_assert_eq(recv_alert(sub, 5000, &a, ns, sizeof ns, key, sizeof key), 1);
    cr_assert_eq(a.level, TALLY_ALERT_EXCEEDED);
    cr_assert_eq(a.usage, 3.0);
    cr_assert_eq(a.limit, 2.0);
    nn_close(sub);
}

/* Issue 15: one flush that crosses both levels reports both, in order, and
 * a namespace seen for the first time is checked within that flush (it was
 * not looked at for ~10 s, so its warning could be skipped). */
Test(quota_alerts, one_flush_crossing_two_levels_reports_both_in_order)
{
    int sub = subscribe("demo");
    create_quota("jump", "{\"resource_limits\":{\"http_requests\":{\"maximum\":100}}}");
    tally__wire_alert_t a;
    char ns[80], key[80];
    emit_n(101); /* 0 % -> 101 % in one flush */
    cr_assert_eq(recv_alert(sub, 5000, &a, ns, sizeof ns, key, sizeof key), 1, "warning first");
    cr_assert_eq(a.level, TALLY_ALERT_WARNING);
    cr_assert_eq(a.usage, 101.0);
    cr_assert_eq(recv_alert(sub, 2000, &a, ns, sizeof ns, key, sizeof key), 1, "then exceeded");
    cr_assert_eq(a.level, TALLY_ALERT_EXCEEDED);
    cr_assert_eq(recv_alert(sub, 1500, &a, ns, sizeof ns, key, sizeof key), 0, "nothing more");
    nn_close(sub);

    /* a brand-new namespace over the plan's lb_count (2): both levels within
     * about one flush (the alerter evaluates at most 1 s after it), well
     * before the 10 s rediscovery */
    int fresh = subscribe("brand-new");
    sleep_ms(300);
    int64_t t0 = harness_now_ms();
    harness_emit(H, "brand-new", "lb_count", 3, 0, NULL);
    harness_flush(H);
    cr_assert_eq(recv_alert(fresh, 4000, &a, ns, sizeof ns, key, sizeof key), 1,
                 "a first-seen namespace is checked at once");
    cr_assert_eq(a.level, TALLY_ALERT_WARNING);
    cr_assert_eq(recv_alert(fresh, 2000, &a, ns, sizeof ns, key, sizeof key), 1);
    cr_assert_eq(a.level, TALLY_ALERT_EXCEEDED);
    cr_assert_lt(harness_now_ms() - t0, 5000);
    nn_close(fresh);
}
