/* test_http_fairness.c — end-to-end tests of HTTP fairness and /metrics: silent and slow
 * connections cut off at the request timeout, the per-address connection limit, /healthz on the
 * reserve when every slot is taken, and the /metrics exposition (promtool, process metrics,
 * tally_usage_total only for tokens that may read the namespace, its cardinality cap). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"
#include "netutil.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN
#define IO_MS 10000
#define RESERVE 8 /* TALLY_HTTP_RESERVED_CONNECTIONS */

static harness_t *H;

static void
teardown(void)
{
    harness_t *h = H;
    H = NULL;
    if (!h)
        return;
    if (h->pid > 0) {
        const char *what = NULL;
        cr_expect(!nu_file_has_sanitizer_report(h->log_path, &what),
                  "tallyd's log holds a sanitizer report (%s)", what ? what : "");
    }
    harness_stop(h);
}

TestSuite(http_fairness, .fini = teardown, .timeout = 120);

/* ---- helpers -------------------------------------------------------------------------------- */

/* A connection from a chosen loopback source address (127.0.0.x). */
static int
connect_from(nu_conn_t *c, const char *src, uint16_t port)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &me.sin_addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    return 0;
}

static void
open_conn(nu_conn_t *c)
{
    int rc = nu_connect(c, H->port);
    cr_assert_eq(rc, 0, "connect: %s", strerror(-rc));
}

/* GET path on a new connection (from src, or 127.0.0.1 when NULL). */
static int
get_from(const char *src, const char *path, const char *token, nu_resp_t *r)
{
    nu_conn_t c;
    int rc = src ? connect_from(&c, src, H->port) : nu_connect(&c, H->port);
    cr_assert_eq(rc, 0, "connect: %s", strerror(-rc));
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%sConnection: close\r\n\r\n", path,
             token ? "Authorization: APIToken " : "", token ? token : "", token ? "\r\n" : "");
    rc = nu_send_str(&c, req);
    if (rc == 0)
        rc = nu_read_response(&c, 0, IO_MS, r);
    nu_close(&c);
    return rc == 0 ? r->status : rc;
}

/* The value of the sample line that starts with `sample` (name and labels). */
static double
sample_in(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, sample, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1;
}

/* /metrics as token sees it (NULL: anonymous), from src; the body, caller frees. */
static char *
scrape_from(const char *src, const char *token)
{
    nu_resp_t r;
    int st = get_from(src, "/metrics", token, &r);
    cr_assert_eq(st, 200, "GET /metrics: %d", st);
    char *body = strdup(r.body);
    nu_resp_free(&r);
    return body;
}

static double
metric_from(const char *src, const char *sample)
{
    char *m = scrape_from(src, NULL);
    double v = sample_in(m, sample);
    free(m);
    return v;
}

/* Wait until the server counts at most `want` open connections. */
static void
wait_connections_at_most(double want)
{
    double v = -1;
    for (int64_t t0 = nu_mono_ms(); nu_mono_ms() - t0 < 5000; nu_sleep_ms(20))
        if ((v = metric_from(NULL, "tally_http_connections")) >= 0 && v <= want + 1)
            return; /* + 1: the scrape's own connection */
    cr_assert_fail("tally_http_connections is %g, expected at most %g", v, want);
}

/* ---- timeouts ------------------------------------------------------------------------------- */

/* The README's promise: a request must arrive within the request timeout. A
 * connection that sends nothing used to hold its slot for the idle timeout
 * (30 s) instead; one that sends a byte now and then must not restart it. */
Test(http_fairness, silent_and_dribbling_connections_close_at_the_request_timeout)
{
    static const char *const env[] = {"TALLY_HTTP_REQUEST_TIMEOUT_MS=800",
                                      "TALLY_HTTP_IDLE_TIMEOUT_MS=30000", NULL};
    H = harness_start(env);
    double before = metric_from(NULL, "tally_http_request_timeouts_total");
    cr_assert(before >= 0, "no tally_http_request_timeouts_total in /metrics");
    nu_conn_t silent, drip, kept;
    open_conn(&silent);
    int64_t t0 = nu_mono_ms();
    open_conn(&drip);
    open_conn(&kept);
    /* kept: one whole request, then idle: the idle timeout (30 s) applies */
    cr_assert_eq(nu_send_str(&kept, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    nu_resp_t r;
    cr_assert_eq(nu_read_response(&kept, 0, IO_MS, &r), 0);
    cr_assert_eq(r.status, 200);
    nu_resp_free(&r);
    /* drip: the start of a request line at 500 ms, more at 700 ms: the
     * timer runs from the accept (closed at 800 ms), not from the first
     * byte (it would close at 1300 ms) */
    nu_sleep_ms(500);
    cr_assert_eq(nu_send_str(&drip, "GET /heal"), 0);
    nu_sleep_ms(200);
    nu_send_str(&drip, "thz HTTP/1.1\r\n");
    size_t extra = 0;
    int rc = nu_wait_closed(&silent, 3000, &extra);
    int64_t silent_ms = nu_mono_ms() - t0;
    cr_assert_eq(rc, 1, "a connection that sent nothing is open %lld ms later",
                 (long long)silent_ms);
    cr_assert_eq(extra, 0, "%zu bytes sent to a silent connection before its close", extra);
    rc = nu_wait_closed(&drip, 3000, NULL);
    int64_t drip_ms = nu_mono_ms() - t0;
    cr_log_info("silent connection closed after %lld ms, dribbling one after %lld ms "
                "(request_timeout_ms 800)",
                (long long)silent_ms, (long long)drip_ms);
    cr_assert_eq(rc, 1, "a request dribbled in is still open after %lld ms", (long long)drip_ms);
    cr_assert(silent_ms >= 700 && silent_ms <= 2000, "silent connection closed after %lld ms",
              (long long)silent_ms);
    cr_assert(drip_ms >= 700 && drip_ms <= 1200,
              "dribbling connection closed after %lld ms: its timer restarted at its first byte",
              (long long)drip_ms);
    /* the keep-alive connection is idle, not in a request: still open */
    cr_assert_eq(nu_wait_closed(&kept, 300, NULL), 0,
                 "an idle keep-alive connection was closed at the request timeout");
    cr_assert_eq(nu_send_str(&kept, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    cr_assert_eq(nu_read_response(&kept, 0, IO_MS, &r), 0);
    cr_assert_eq(r.status, 200);
    nu_resp_free(&r);
    nu_close(&silent);
    nu_close(&drip);
    nu_close(&kept);
    double after = metric_from(NULL, "tally_http_request_timeouts_total");
    cr_assert(after >= before + 2, "tally_http_request_timeouts_total went from %g to %g", before,
              after);
}

/* ---- the reserve ---------------------------------------------------------------------------- */

enum { FILL = 40 };

/* The attack, scaled down: every ordinary slot held by connections
 * that send nothing. /healthz and /metrics still answer on the reserve,
 * nothing else does, and the slots come back at the request timeout. */
Test(http_fairness, healthz_answers_while_idle_connections_hold_every_slot)
{
    static const char *const env[] = {"TALLY_HTTP_MAX_CONNECTIONS=40",
                                      "TALLY_HTTP_MAX_CONNECTIONS_PER_ADDRESS=0",
                                      "TALLY_HTTP_REQUEST_TIMEOUT_MS=2500", NULL};
    H = harness_start(env);
    static nu_conn_t idle[FILL + RESERVE];
    int64_t t0 = nu_mono_ms();
    for (int i = 0; i < FILL; i++)
        open_conn(&idle[i]);
    /* the server has accepted them all once a request behind them is answered */
    nu_resp_t r;
    int st = get_from(NULL, "/healthz", NULL, &r);
    cr_assert_eq(st, 200, "GET /healthz with every slot taken: %d (%s)", st,
                 st > 0 ? r.body : "no answer");
    nu_resp_free(&r);
    char *m = scrape_from(NULL, NULL);
    cr_assert_eq(sample_in(m, "tally_http_connections_reserved"), 1,
                 "the scrape is not on the reserve:\n%.400s", strstr(m, "tally_http_conn"));
    double refused0 = sample_in(m, "tally_http_connections_refused_total{reason=\"max_connections\"}");
    free(m);
    /* the reserve serves health checks and scrapes only */
    st = get_from(NULL, "/openapi.json", NULL, &r);
    cr_assert_eq(st, 503, "GET /openapi.json on the reserve: %d", st);
    cr_assert(strstr(r.body, "EUNAVAILABLE") != NULL, "503 body: %s", r.body);
    char ra[16];
    cr_assert(nu_resp_header(&r, "Retry-After", ra, sizeof ra), "503 without Retry-After");
    nu_resp_free(&r);
    /* HEAD /healthz is a GET */
    nu_conn_t c;
    open_conn(&c);
    cr_assert_eq(nu_send_str(&c, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    cr_assert_eq(nu_read_response(&c, 1, IO_MS, &r), 0);
    cr_assert_eq(r.status, 200, "HEAD /healthz on the reserve: %d", r.status);
    char conn_hdr[32];
    cr_assert(nu_resp_header(&r, "Connection", conn_hdr, sizeof conn_hdr));
    cr_assert_str_eq(conn_hdr, "close", "a reserved connection is kept alive");
    nu_resp_free(&r);
    nu_close(&c);
    /* the reserve filled with silent connections too: a new connection takes
     * the place of the oldest of them, so /healthz still answers */
    for (int i = FILL; i < FILL + RESERVE; i++)
        open_conn(&idle[i]);
    st = get_from(NULL, "/healthz", NULL, &r);
    cr_assert_eq(st, 200, "GET /healthz with the reserve full of silent connections: %d", st);
    nu_resp_free(&r);
    cr_assert_eq(nu_wait_closed(&idle[FILL], 3000, NULL), 1,
                 "the oldest silent reserved connection was not closed for the new one");
    cr_assert(metric_from(NULL, "tally_http_reserve_evictions_total") >= 1);
    /* reserved connections with a request under way stay: past them, 503 at once */
    static nu_conn_t busy[RESERVE];
    for (int i = 0; i < RESERVE; i++) {
        open_conn(&busy[i]);
        cr_assert_eq(nu_send_str(&busy[i], "GET /healthz HTTP/1.1\r\n"), 0);
        nu_sleep_ms(20); /* read before the next one is accepted */
    }
    int refused = 0;
    for (int64_t t = nu_mono_ms(); nu_mono_ms() - t < 1500 && !refused; nu_sleep_ms(20)) {
        st = get_from(NULL, "/healthz", NULL, &r);
        refused = st == 503;
        if (st > 0)
            nu_resp_free(&r);
    }
    cr_assert(refused, "a connection past a reserve of requests under way was not refused");
    /* the slots come back when the silent ones time out: 2.5 s after they opened */
    int back = 0;
    int64_t back_ms = 0;
    while (nu_mono_ms() - t0 < 8000 && !back) {
        nu_sleep_ms(100);
        back = nu_is_closed(&idle[0]) == 1;
        back_ms = nu_mono_ms() - t0;
    }
    cr_assert(back, "a silent connection is still open %lld ms after it opened",
              (long long)back_ms);
    cr_assert(back_ms >= 2000, "a silent connection closed after %lld ms, before the timeout",
              (long long)back_ms);
    /* the server closes every one of them itself */
    for (int i = 0; i < RESERVE; i++) {
        cr_assert_eq(nu_wait_closed(&busy[i], 8000, NULL), 1, "dribbled request %d is open", i);
        nu_close(&busy[i]);
    }
    for (int i = 0; i < FILL + RESERVE; i++) {
        size_t extra = 0;
        cr_assert_eq(nu_wait_closed(&idle[i], 8000, &extra), 1,
                     "silent connection %d is still open", i);
        cr_assert_eq(extra, 0, "%zu bytes sent to silent connection %d", extra, i);
        nu_close(&idle[i]);
    }
    wait_connections_at_most(0);
    m = scrape_from(NULL, NULL);
    double refused1 = sample_in(m, "tally_http_connections_refused_total{reason=\"max_connections\"}");
    double timeouts = sample_in(m, "tally_http_request_timeouts_total");
    free(m);
    cr_log_info("refused at max_connections: %g -> %g; request timeouts %g", refused0, refused1,
                timeouts);
    cr_assert(refused1 >= refused0 + 2, "refused{max_connections} went from %g to %g", refused0,
              refused1);
    cr_assert(timeouts >= FILL + RESERVE,
              "tally_http_request_timeouts_total is %g after %d silent or dribbling ones",
              timeouts, FILL + RESERVE);
    st = get_from(NULL, "/openapi.json", NULL, &r);
    cr_assert_eq(st, 200, "GET /openapi.json once the slots are back: %d", st);
    nu_resp_free(&r);
}

/* ---- the per-address limit ------------------------------------------------------------------ */

Test(http_fairness, per_address_limit_refuses_counts_and_logs)
{
    static const char *const env[] = {"TALLY_HTTP_MAX_CONNECTIONS_PER_ADDRESS=5", NULL};
    H = harness_start(env);
    double before =
        metric_from(NULL, "tally_http_connections_refused_total{reason=\"per_address\"}");
    cr_assert_eq(before, 0, "refused{per_address} starts at %g", before);
    wait_connections_at_most(0);
    nu_conn_t held[5];
    for (int i = 0; i < 5; i++)
        open_conn(&held[i]);
    /* the sixth from 127.0.0.1: 429, Retry-After, closed */
    for (int i = 0; i < 3; i++) {
        nu_resp_t r;
        int st = get_from(NULL, "/healthz", NULL, &r);
        cr_assert_eq(st, 429, "connection 6 from one address: %d", st);
        cr_assert(strstr(r.body, "ETOOMANY") && strstr(r.body, "max_connections_per_address"),
                  "429 body: %s", r.body);
        char ra[16];
        cr_assert(nu_resp_header(&r, "Retry-After", ra, sizeof ra), "429 without Retry-After");
        nu_resp_free(&r);
    }
    /* another address is not held back by it */
    nu_resp_t r;
    int st = get_from("127.0.0.2", "/healthz", NULL, &r);
    cr_assert_eq(st, 200, "GET /healthz from 127.0.0.2 while 127.0.0.1 is at its limit: %d", st);
    nu_resp_free(&r);
    double other = metric_from("127.0.0.2", "tally_http_connections_refused_total{reason=\"per_address\"}");
    cr_assert_eq(other, 3, "refused{per_address} is %g after 3 refusals", other);
    /* the held ones still work, and a slot freed is a slot for the address again */
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(nu_send_str(&held[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        cr_assert_eq(nu_read_response(&held[i], 0, IO_MS, &r), 0);
        cr_assert_eq(r.status, 200);
        nu_resp_free(&r);
    }
    nu_close(&held[0]);
    int ok = 0;
    for (int64_t t0 = nu_mono_ms(); nu_mono_ms() - t0 < 3000 && !ok; nu_sleep_ms(20)) {
        st = get_from(NULL, "/healthz", NULL, &r);
        ok = st == 200;
        if (st > 0)
            nu_resp_free(&r);
    }
    cr_assert(ok, "no connection accepted from 127.0.0.1 after one of its five closed");
    for (int i = 1; i < 5; i++)
        nu_close(&held[i]);
    /* logged, with the reason and the address */
    FILE *f = fopen(H->log_path, "r");
    cr_assert_not_null(f);
    char line[1024];
    int logged = 0;
    while (fgets(line, sizeof line, f))
        logged += strstr(line, "http connection refused") && strstr(line, "reason=per_address") &&
                  strstr(line, "remote=127.0.0.1");
    fclose(f);
    cr_assert(logged >= 1, "no log line for the refusals");
}

/* ---- /metrics ------------------------------------------------------------------------------- */

/* promtool check metrics on text; returns its exit status, its output in out. */
static int
promtool_check(const char *text, char *out, size_t cap)
{
    char path[] = "/tmp/tally-metrics-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
expect_promtool_clean(const char *text, const char *who)
{
    cr_assert_eq(system("command -v promtool >/dev/null 2>&1"), 0,
                 "promtool is not installed (Debian package prometheus, in dev.sh's TEST_PKGS)");
    char out[8192];
    int st = promtool_check(text, out, sizeof out);
    /* promtool exits 1 on lint findings too; only an unparsable exposition
     * ("error while linting") or a finding fails this test */
    cr_assert_eq(st, 0, "promtool check metrics (%s) exited %d:\n%s", who, st, out);
}

Test(http_fairness, metrics_pass_promtool_with_process_metrics_and_scoped_usage)
{
    static const char *const env[] = {"TALLY_HTTP_METRICS_MAX_SERIES=5", NULL};
    H = harness_start(env);
    /* demo: two sum metrics, a count one and a last one; acme: one; then a
     * sixth pair past the cap */
    harness_emit(H, "demo", "http_requests", 7, 0, "object=a");
    harness_emit(H, "demo", "http_requests", 5, 0, "object=b");
    harness_emit_float(H, "demo", "vcpu_seconds", 1.5, 0, NULL);
    harness_emit(H, "demo", "waf_events", 40, 0, NULL);
    harness_emit(H, "demo", "waf_events", 40, 0, NULL);
    harness_emit(H, "demo", "storage_bytes", 1000, 0, NULL);
    harness_emit(H, "acme", "http_requests", 3, 0, NULL);
    harness_flush(H);
    harness_emit(H, "zeta", "http_requests", 9, 0, NULL);
    harness_emit(H, "zeta", "http_requests", 9, 0, NULL);
    harness_flush(H);

    char *anon = scrape_from(NULL, NULL);
    char *admin = scrape_from(NULL, ADMIN);
    char *viewer = scrape_from(NULL, VIEWER);
    expect_promtool_clean(anon, "anonymous");
    expect_promtool_clean(admin, "admin");
    expect_promtool_clean(viewer, "demo viewer");

    /* the standard process metrics, with sane values */
    double rss = sample_in(anon, "process_resident_memory_bytes");
    double vsz = sample_in(anon, "process_virtual_memory_bytes");
    double fds = sample_in(anon, "process_open_fds");
    double maxfds = sample_in(anon, "process_max_fds");
    double start = sample_in(anon, "process_start_time_seconds");
    double cpu = sample_in(anon, "process_cpu_seconds_total");
    cr_log_info("rss %g vsz %g fds %g/%g start %.3f cpu %g", rss, vsz, fds, maxfds, start, cpu);
    cr_assert(rss > 1e6 && rss < 4e9, "process_resident_memory_bytes %g", rss);
    cr_assert(vsz >= rss, "process_virtual_memory_bytes %g < rss %g", vsz, rss);
    cr_assert(fds >= 5 && fds <= maxfds, "process_open_fds %g (max %g)", fds, maxfds);
    double now = (double)time(NULL);
    cr_assert(start > now - 300 && start <= now + 1, "process_start_time_seconds %.3f, now %.0f",
              start, now);
    cr_assert(cpu >= 0 && cpu < 300, "process_cpu_seconds_total %g", cpu);

    /* per-namespace totals: none for an anonymous scrape */
    cr_assert(strstr(anon, "\ntally_usage_total{") == NULL,
              "an anonymous scrape sees tally_usage_total");
    cr_assert(strstr(anon, "# TYPE tally_usage_total counter") != NULL);
    /* the admin (*) sees every tracked pair; the sums and counts are exact */
    cr_assert_eq(sample_in(admin, "tally_usage_total{namespace=\"demo\",metric=\"http_requests\"}"),
                 12);
    cr_assert_eq(sample_in(admin, "tally_usage_total{namespace=\"demo\",metric=\"vcpu_seconds\"}"),
                 1.5);
    cr_assert_eq(sample_in(admin, "tally_usage_total{namespace=\"demo\",metric=\"waf_events\"}"),
                 2, "a count metric's total is its events");
    cr_assert_eq(sample_in(admin, "tally_usage_total{namespace=\"acme\",metric=\"http_requests\"}"),
                 3);
    /* a gauge (last) has no total; it still takes one of the cap's pairs */
    cr_assert(strstr(admin, "metric=\"storage_bytes\"") == NULL, "a last metric has a total");
    /* the demo viewer sees demo only */
    cr_assert_eq(sample_in(viewer, "tally_usage_total{namespace=\"demo\",metric=\"http_requests\"}"),
                 12);
    cr_assert(strstr(viewer, "namespace=\"acme\"") == NULL, "the demo viewer sees acme's usage");
    /* a bad token is anonymous */
    char *bad = scrape_from(NULL, "not-a-token");
    cr_assert(strstr(bad, "\ntally_usage_total{") == NULL, "a bad token sees tally_usage_total");
    free(bad);
    /* the sixth pair is over the cap of 5: not shown, its events counted as dropped */
    cr_assert(strstr(admin, "namespace=\"zeta\"") == NULL, "a pair past the cap is shown");
    cr_assert_eq(sample_in(admin, "tally_usage_series"), 5);
    cr_assert_eq(sample_in(admin, "tally_usage_dropped_events_total"), 2,
                 "tally_usage_dropped_events_total: %g",
                 sample_in(admin, "tally_usage_dropped_events_total"));
    /* the fairness counters are there from the start */
    cr_assert_eq(sample_in(anon, "tally_http_connections_refused_total{reason=\"per_address\"}"), 0);
    cr_assert(sample_in(anon, "tally_http_idle_timeouts_total") >= 0);
    free(anon);
    free(admin);
    free(viewer);
}

/* The per-address table under many addresses: it grows past its first size
 * and its entries are removed in any order (a removal shifts the entries
 * after it back), and every address is still counted right afterwards. */
enum { NADDR = 150 };

Test(http_fairness, per_address_counts_stay_right_over_many_addresses)
{
    static const char *const env[] = {"TALLY_HTTP_MAX_CONNECTIONS_PER_ADDRESS=2", NULL};
    H = harness_start(env);
    static nu_conn_t held[NADDR][2];
    char addr[NADDR][32];
    for (int a = 0; a < NADDR; a++) {
        snprintf(addr[a], sizeof addr[a], "127.0.%d.%d", 1 + a / 100, 1 + a % 100);
        for (int k = 0; k < 2; k++) {
            int rc = connect_from(&held[a][k], addr[a], H->port);
            cr_assert_eq(rc, 0, "connect from %s: %s", addr[a], strerror(-rc));
        }
    }
    nu_resp_t r;
    /* every address is at its limit */
    for (int a = 0; a < NADDR; a += 7) {
        int st = get_from(addr[a], "/healthz", NULL, &r);
        cr_assert_eq(st, 429, "a third connection from %s: %d", addr[a], st);
        nu_resp_free(&r);
    }
    /* one of each address goes, in a scattered order */
    for (int i = 0; i < NADDR; i++)
        nu_close(&held[(i * 37) % NADDR][0]);
    wait_connections_at_most(NADDR);
    for (int a = 0; a < NADDR; a++) {
        /* one slot free for each: one more is accepted, the next refused */
        nu_conn_t c;
        int rc = connect_from(&c, addr[a], H->port);
        cr_assert_eq(rc, 0);
        cr_assert_eq(nu_send_str(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        cr_assert_eq(nu_read_response(&c, 0, IO_MS, &r), 0, "no answer from %s", addr[a]);
        cr_assert_eq(r.status, 200, "the second connection from %s: %d", addr[a], r.status);
        nu_resp_free(&r);
        int st = get_from(addr[a], "/healthz", NULL, &r);
        cr_assert_eq(st, 429, "a third connection from %s: %d", addr[a], st);
        nu_resp_free(&r);
        nu_close(&c);
        nu_close(&held[a][1]);
    }
    wait_connections_at_most(0);
    double refused = metric_from(NULL, "tally_http_connections_refused_total{reason=\"per_address\"}");
    cr_assert_eq(refused, (NADDR + 6) / 7 + NADDR, "refused{per_address} is %g", refused);
}
