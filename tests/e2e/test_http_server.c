/* test_http_server.c — end-to-end tests of tallyd's HTTP/1.1 server: keep-alive, pipelining, bodies, limits, timeouts and connection counts over real sockets; deferred answers against an in-process server. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <uv.h>

#include "harness.h"
#include "http.h"
#include "netutil.h"

/* The deferred-answer suite (http_deferred, at the end) runs the server
 * in-process against a test dispatch, through http.h alone, since tallyd
 * has no route that defers on demand: CMake builds this test with
 * daemon/http.c and daemon/httpreq.c and links http-parser. */

#define ADMIN HARNESS_ADMIN_TOKEN
#define DETAILS "/api/web/namespaces/demo/usage_details"
#define IO_MS 10000 /* generous: the daemon may run under ASan */

static harness_t *H;

static void
start(const char *const *env)
{
    H = harness_start(env);
}

/* Every test: the daemon still answers, logged no sanitizer report, and stops cleanly. */
static void
teardown(void)
{
    harness_t *h = H;
    H = NULL;
    if (!h)
        return;
    if (h->pid > 0) {
        int st = nu_healthz(h->port, IO_MS);
        cr_expect_eq(st, 200, "the daemon does not answer /healthz at the end of the test (%d)", st);
        const char *what = NULL;
        cr_expect(!nu_file_has_sanitizer_report(h->log_path, &what),
                  "tallyd's log holds a sanitizer report (%s)", what ? what : "");
        if (st != 200 || what)
            harness_print_log(h, 8192);
    }
    harness_stop(h);
}

TestSuite(http_server, .fini = teardown, .timeout = 60);

/* ---- helpers -------------------------------------------------------------------------------- */

static void
open_conn(nu_conn_t *c)
{
    int rc = nu_connect(c, H->port);
    cr_assert_eq(rc, 0, "connect to 127.0.0.1:%u: %s", H->port, strerror(-rc));
}

static void
send_or_fail(nu_conn_t *c, const char *data, size_t len)
{
    int rc = nu_send(c, data, len);
    cr_assert_eq(rc, 0, "send: %s", strerror(-rc));
}

static void
send_req(nu_conn_t *c, const char *method, const char *path, const char *token, const char *extra,
         const char *body)
{
    char *req = nu_request(method, path, token, extra, body);
    cr_assert_not_null(req);
    send_or_fail(c, req, strlen(req));
    free(req);
}

/* Read one response and check its status. */
static void
expect_resp(nu_conn_t *c, int head, int status, nu_resp_t *out)
{
    int rc = nu_read_response(c, head, IO_MS, out);
    cr_assert_eq(rc, 0, "no HTTP response (expected %d): %s", status, strerror(-rc));
    if (out->status != status)
        cr_log_error("status %d, expected %d; headers:\n%s\nbody: %.300s", out->status, status,
                     out->headers, out->body);
    cr_assert_eq(out->status, status, "status %d, expected %d", out->status, status);
}

/* A JSON error body with this code; returns its message. */
static const char *
expect_error(const nu_resp_t *r, const char *code)
{
    cr_assert(json_is_object(r->json), "error body is not a JSON object: %.200s", r->body);
    const char *got = json_string_value(json_object_get(r->json, "code"));
    const char *msg = json_string_value(json_object_get(r->json, "message"));
    cr_assert_not_null(got, "error body without a code: %s", r->body);
    cr_assert_not_null(msg, "error body without a message: %s", r->body);
    cr_assert_str_eq(got, code, "error code %s, expected %s (%s)", got, code, msg);
    return msg;
}

static void
expect_header(const nu_resp_t *r, const char *name, const char *value)
{
    char buf[256];
    cr_assert(nu_resp_header(r, name, buf, sizeof buf), "no %s header in:\n%s", name, r->headers);
    cr_assert(strcasecmp(buf, value) == 0, "%s: %s, expected %s", name, buf, value);
}

static void
expect_closed(nu_conn_t *c, int within_ms, const char *what)
{
    size_t extra = 0;
    int rc = nu_wait_closed(c, within_ms, &extra);
    cr_assert_eq(rc, 1, "%s: the connection is still open %d ms later (rc %d)", what, within_ms,
                 rc);
    cr_assert_eq(extra, 0, "%s: %zu unexpected bytes before the close", what, extra);
}

static void
expect_open(nu_conn_t *c, int for_ms, const char *what)
{
    size_t extra = 0;
    int rc = nu_wait_closed(c, for_ms, &extra);
    cr_assert_eq(rc, 0, "%s: the server closed the connection", what);
    cr_assert_eq(extra, 0, "%s: %zu unexpected bytes", what, extra);
}

static void
expect_healthz_ok(void)
{
    int st = nu_healthz(H->port, IO_MS);
    cr_assert_eq(st, 200, "GET /healthz: %d", st);
}

/* The value of an unlabelled sample in /metrics (e.g. tally_http_connections), or -1. */
static double
metric_value(const char *name)
{
    nu_resp_t r;
    int st = nu_roundtrip(H->port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          0, IO_MS, &r);
    cr_assert_eq(st, 200, "GET /metrics: %d", st);
    double v = -1;
    size_t nl = strlen(name);
    for (const char *p = r.body; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
            v = strtod(p + nl + 1, NULL);
            break;
        }
        p = eol ? eol + 1 : NULL;
    }
    nu_resp_free(&r);
    return v;
}

/* ---- framing ---------------------------------------------------------------------------------- */

Test(http_server, keep_alive_serves_three_requests_on_one_connection)
{
    start(NULL);
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    for (int i = 0; i < 3; i++) {
        if (i == 1)
            send_req(&c, "POST", DETAILS, ADMIN, NULL, "{}");
        else
            send_req(&c, "GET", "/healthz", NULL, NULL, NULL);
        expect_resp(&c, 0, 200, &r);
        cr_assert_eq(r.minor, 1, "HTTP/1.%d response", r.minor);
        expect_header(&r, "Connection", "keep-alive");
        cr_assert(json_is_object(r.json), "request %d: body is not JSON: %s", i + 1, r.body);
        if (i == 1)
            cr_assert(json_is_array(json_object_get(r.json, "usage_items")), "%s", r.body);
        else
            cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
        nu_resp_free(&r);
        expect_open(&c, 50, "after a keep-alive response");
    }
    nu_close(&c);
}

Test(http_server, pipelined_requests_are_answered_in_order)
{
    start(NULL);
    char *a = nu_request("GET", "/healthz", NULL, NULL, NULL);
    char *b = nu_request("POST", DETAILS, ADMIN, NULL, "{}");
    char *d = nu_request("GET", "/no/such/endpoint", NULL, NULL, NULL);
    char *all = NULL;
    cr_assert(asprintf(&all, "%s%s%s", a, b, d) > 0);
    free(a);
    free(b);
    free(d);
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    send_or_fail(&c, all, strlen(all)); /* one send: all three arrive together */
    free(all);
    expect_resp(&c, 0, 200, &r);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok",
                     "first response is not /healthz: %s", r.body);
    nu_resp_free(&r);
    expect_resp(&c, 0, 200, &r);
    cr_assert(json_is_array(json_object_get(r.json, "usage_items")),
              "second response is not usage_details: %s", r.body);
    nu_resp_free(&r);
    expect_resp(&c, 0, 404, &r);
    expect_error(&r, "ENOTFOUND");
    nu_resp_free(&r);
    expect_open(&c, 50, "after the pipelined responses");
    nu_close(&c);
}

Test(http_server, content_length_and_chunked_bodies)
{
    start(NULL);
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    static const char cl[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                             "Authorization: APIToken " ADMIN "\r\n"
                             "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    send_or_fail(&c, cl, sizeof cl - 1);
    expect_resp(&c, 0, 200, &r);
    cr_assert(json_is_array(json_object_get(r.json, "usage_items")), "%s", r.body);
    nu_resp_free(&r);
    /* the same body as one chunk, then as three chunks with an extension and a trailer */
    static const char ch1[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: APIToken " ADMIN "\r\n"
                              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "2\r\n{}\r\n0\r\n\r\n";
    send_or_fail(&c, ch1, sizeof ch1 - 1);
    expect_resp(&c, 0, 200, &r);
    cr_assert(json_is_array(json_object_get(r.json, "usage_items")), "%s", r.body);
    nu_resp_free(&r);
    static const char ch3[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: APIToken " ADMIN "\r\n"
                              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "1\r\n{\r\n"
                              "3;ext=1\r\n   \r\n"
                              "1\r\n}\r\n"
                              "0\r\nX-Trailer: t\r\n\r\n";
    /* sent in pieces, so the server sees the body arrive over several reads */
    for (size_t off = 0; off < sizeof ch3 - 1; off += 40) {
        size_t n = sizeof ch3 - 1 - off < 40 ? sizeof ch3 - 1 - off : 40;
        send_or_fail(&c, ch3 + off, n);
        nu_sleep_ms(5);
    }
    expect_resp(&c, 0, 200, &r);
    cr_assert(json_is_array(json_object_get(r.json, "usage_items")), "%s", r.body);
    nu_resp_free(&r);
    /* a chunked body is parsed like any other: a bad one is a 400 naming the field */
    static const char bad[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: APIToken " ADMIN "\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "c\r\n{\"from\":123}\r\n0\r\n\r\n";
    send_or_fail(&c, bad, sizeof bad - 1);
    expect_resp(&c, 0, 400, &r);
    const char *msg = expect_error(&r, "EBADINPUT");
    cr_assert(strstr(msg, "from") != NULL, "message does not name 'from': %s", msg);
    nu_resp_free(&r);
    nu_close(&c);
}

Test(http_server, connection_close_is_honoured)
{
    start(NULL);
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    send_req(&c, "GET", "/healthz", NULL, "Connection: close\r\n", NULL);
    expect_resp(&c, 0, 200, &r);
    expect_header(&r, "Connection", "close");
    nu_resp_free(&r);
    expect_closed(&c, 2000, "after Connection: close");
    nu_close(&c);

    /* a request pipelined after the Connection: close one is not answered */
    open_conn(&c);
    static const char two[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                              "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    send_or_fail(&c, two, sizeof two - 1);
    expect_resp(&c, 0, 200, &r);
    expect_header(&r, "Connection", "close");
    nu_resp_free(&r);
    expect_closed(&c, 2000, "after Connection: close with a second request behind it");
    nu_close(&c);
}

Test(http_server, http_1_0_closes_unless_keep_alive)
{
    start(NULL);
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    send_or_fail(&c, "GET /healthz HTTP/1.0\r\n\r\n", 25);
    expect_resp(&c, 0, 200, &r);
    expect_header(&r, "Connection", "close");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
    nu_resp_free(&r);
    expect_closed(&c, 2000, "after an HTTP/1.0 request");
    nu_close(&c);

    /* HTTP/1.0 with Connection: keep-alive stays open */
    open_conn(&c);
    static const char ka[] = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    for (int i = 0; i < 2; i++) {
        send_or_fail(&c, ka, sizeof ka - 1);
        expect_resp(&c, 0, 200, &r);
        expect_header(&r, "Connection", "keep-alive");
        nu_resp_free(&r);
    }
    expect_open(&c, 50, "HTTP/1.0 keep-alive");
    nu_close(&c);
}

/* HEAD path: the GET's headers, Content-Length included, and no body bytes. */
static void
check_head(const char *path, size_t slack)
{
    char greq[256], hreq[256];
    snprintf(greq, sizeof greq, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    snprintf(hreq, sizeof hreq, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    nu_conn_t c;
    nu_resp_t g, h, g2;
    open_conn(&c);
    send_or_fail(&c, greq, strlen(greq));
    expect_resp(&c, 0, 200, &g);
    send_or_fail(&c, hreq, strlen(hreq));
    expect_resp(&c, 1, 200, &h);
    cr_assert_eq(c.len, 0, "HEAD %s: %zu body bytes follow the headers", path, c.len);
    expect_open(&c, 150, "after HEAD"); /* and none arrive later */
    send_or_fail(&c, greq, strlen(greq));
    expect_resp(&c, 0, 200, &g2); /* parses: no stray bytes between the two */

    const char *names[] = {"Content-Type", "Connection", "Server", NULL};
    for (int i = 0; names[i]; i++) {
        char gv[256] = "", hv[256] = "";
        int gh = nu_resp_header(&g, names[i], gv, sizeof gv);
        int hh = nu_resp_header(&h, names[i], hv, sizeof hv);
        cr_assert_eq(gh, hh, "HEAD %s: header %s %s", path, names[i], hh ? "added" : "missing");
        cr_assert_str_eq(hv, gv, "HEAD %s: %s differs from GET", path, names[i]);
    }
    char cl[32];
    cr_assert(nu_resp_header(&h, "Content-Length", cl, sizeof cl), "HEAD %s: no Content-Length",
              path);
    size_t hl = (size_t)strtoull(cl, NULL, 10);
    size_t lo = g.body_len < g2.body_len ? g.body_len : g2.body_len;
    size_t hi = g.body_len > g2.body_len ? g.body_len : g2.body_len;
    cr_assert(hl > 0, "HEAD %s: Content-Length 0", path);
    cr_assert(hl + slack >= lo && hl <= hi + slack,
              "HEAD %s: Content-Length %zu, the GETs around it sent %zu and %zu bytes", path, hl,
              g.body_len, g2.body_len);
    nu_resp_free(&g);
    nu_resp_free(&h);
    nu_resp_free(&g2);
    nu_close(&c);
}

Test(http_server, head_has_get_headers_and_no_body)
{
    start(NULL);
    check_head("/healthz", 0);
    check_head("/openapi.json", 0);
    /* /metrics changes between requests (uptime, the request counters), so its
     * length may differ by a few bytes from one GET to the next; warm it up so
     * the metrics route's own lines exist already */
    for (int i = 0; i < 2; i++)
        cr_assert_eq(nu_roundtrip(H->port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                  0, IO_MS, NULL),
                     200);
    check_head("/metrics", 64);
}

/* ---- limits ------------------------------------------------------------------------------------ */

static const char *const limit_env[] = {"TALLY_HTTP_MAX_HEADER_BYTES=4096",
                                        "TALLY_HTTP_MAX_HEADERS=16",
                                        "TALLY_HTTP_MAX_BODY_BYTES=1024", NULL};

/* Send req, expect status with ETOOLARGE, Connection: close, and the connection closed. */
static void
expect_refused(const char *req, size_t len, int status, const char *what)
{
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    nu_send(&c, req, len); /* the server may answer before reading it all */
    expect_resp(&c, 0, status, &r);
    expect_error(&r, "ETOOLARGE");
    expect_header(&r, "Connection", "close");
    nu_resp_free(&r);
    expect_closed(&c, 2000, what);
    nu_close(&c);
}

Test(http_server, oversized_headers_get_431_and_close)
{
    start(limit_env);
    char *big = malloc(8192);
    cr_assert_not_null(big);
    int n = snprintf(big, 8192, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', 5000);
    memcpy(big + n + 5000, "\r\n\r\n", 4);
    expect_refused(big, (size_t)n + 5004, 431, "headers over http.max_header_bytes");
    /* many small headers adding up past the limit */
    size_t off = (size_t)snprintf(big, 8192, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 12; i++)
        off += (size_t)snprintf(big + off, 8192 - off, "X-Pad-%d: %0400d\r\n", i, 0);
    off += (size_t)snprintf(big + off, 8192 - off, "\r\n");
    expect_refused(big, off, 431, "12 headers of 400 bytes");
    /* a request target over the limit: 414 or 431 (both ETOOLARGE), then closed */
    n = snprintf(big, 8192, "GET /");
    memset(big + n, 'u', 5000);
    n += 5000;
    n += snprintf(big + n, 8192 - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    nu_send(&c, big, (size_t)n);
    int rc = nu_read_response(&c, 0, IO_MS, &r);
    cr_assert_eq(rc, 0, "long request target: no response (%s)", strerror(-rc));
    cr_assert(r.status == 414 || r.status == 431, "long request target: %d", r.status);
    expect_error(&r, "ETOOLARGE");
    nu_resp_free(&r);
    expect_closed(&c, 2000, "a request target over http.max_header_bytes");
    nu_close(&c);
    free(big);
    /* just under the limit is fine */
    char ok[4096];
    n = snprintf(ok, sizeof ok, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ");
    memset(ok + n, 'b', 3000);
    memcpy(ok + n + 3000, "\r\n\r\n", 5);
    cr_assert_eq(nu_roundtrip(H->port, ok, 0, IO_MS, NULL), 200);
}

Test(http_server, too_many_headers_get_431)
{
    start(limit_env);
    char req[2048];
    size_t off = (size_t)snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 20; i++)
        off += (size_t)snprintf(req + off, sizeof req - off, "X-H%d: v\r\n", i);
    off += (size_t)snprintf(req + off, sizeof req - off, "\r\n");
    expect_refused(req, off, 431, "20 headers over http.max_headers=16");
    /* 15 headers (with Host: 16) pass */
    off = (size_t)snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (int i = 0; i < 14; i++)
        off += (size_t)snprintf(req + off, sizeof req - off, "X-H%d: v\r\n", i);
    snprintf(req + off, sizeof req - off, "\r\n");
    cr_assert_eq(nu_roundtrip(H->port, req, 0, IO_MS, NULL), 200, "16 headers are allowed");
}

Test(http_server, body_over_limit_gets_413)
{
    start(limit_env);
    /* by Content-Length: refused before the body is sent */
    static const char cl[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                             "Authorization: APIToken " ADMIN "\r\n"
                             "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n";
    expect_refused(cl, sizeof cl - 1, 413, "Content-Length over http.max_body_bytes");

    /* by a chunked stream: 256-byte chunks until the server answers */
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    static const char hdr[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: APIToken " ADMIN "\r\n"
                              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_or_fail(&c, hdr, sizeof hdr - 1);
    char chunk[300];
    int n = snprintf(chunk, sizeof chunk, "100\r\n");
    memset(chunk + n, ' ', 256);
    memcpy(chunk + n + 256, "\r\n", 2);
    int sent = 0, answered = 0;
    for (; sent < 64 && !answered; sent++) {
        if (nu_send(&c, chunk, (size_t)n + 258) != 0)
            break;
        struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
        answered = poll(&pfd, 1, 20) > 0;
    }
    cr_assert(sent * 256 >= 1024, "the server answered after %d bytes, within the limit",
              sent * 256);
    expect_resp(&c, 0, 413, &r);
    expect_error(&r, "ETOOLARGE");
    expect_header(&r, "Connection", "close");
    nu_resp_free(&r);
    expect_closed(&c, 2000, "chunked body over http.max_body_bytes");
    nu_close(&c);
}

/*
 * DISABLED: daemon bug. A body of exactly http.max_body_bytes is refused
 * with 413: cb_body() in daemon/http.c calls sbuf_add(&c->body, at, n,
 * max_body_bytes), which fails when len + n + 1 > cap, i.e. it counts the
 * NUL terminator against the limit, so the largest body accepted is
 * max_body_bytes - 1 (cb_headers_complete() lets Content-Length ==
 * max_body_bytes through, then cb_body() refuses it). With
 * TALLY_HTTP_MAX_BODY_BYTES=1024, POST usage_details with Content-Length:
 * 1024 and the body `{` + 1022 blanks + `}` answers 413 ETOOLARGE; expected
 * 200. Enable once fixed.
 */
Test(http_server, body_of_exactly_max_body_bytes_is_accepted)
{
    start(limit_env);
    /* exactly at the limit is accepted (a body of 1024 bytes: {} and blanks) */
    char body[1025];
    memset(body, ' ', 1024);
    body[0] = '{';
    body[1023] = '}';
    body[1024] = '\0';
    char *req = nu_request("POST", DETAILS, ADMIN, "Connection: close\r\n", body);
    cr_assert_eq(nu_roundtrip(H->port, req, 0, IO_MS, NULL), 200, "a body of max_body_bytes");
    free(req);
}


Test(http_server, truncated_requests_do_not_crash)
{
    start(NULL);
    static const char *const parts[] = {
        "GET /healthz HTTP/1.1\r\nHost: x\r\n", /* headers, no blank line */
        "GET /heal",                             /* half a request line */
        "POST " DETAILS " HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"fr", /* short body */
        "POST " DETAILS " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"f",
        NULL};
    for (int i = 0; parts[i]; i++) {
        for (int mode = 0; mode < 3; mode++) {
            nu_conn_t c;
            open_conn(&c);
            send_or_fail(&c, parts[i], strlen(parts[i]));
            if (mode == 0) {
                /* half-close: the server sees EOF and closes without answering */
                shutdown(c.fd, SHUT_WR);
                expect_closed(&c, 3000, "a truncated request then EOF");
                nu_close(&c);
            } else if (mode == 1) {
                nu_close(&c);
            } else {
                nu_abort(&c); /* RST */
            }
            expect_healthz_ok();
        }
    }
}

Test(http_server, bad_chunk_size_gets_400)
{
    start(NULL);
    static const char req[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: APIToken " ADMIN "\r\n"
                              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "zz\r\n";
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    send_or_fail(&c, req, sizeof req - 1);
    expect_resp(&c, 0, 400, &r);
    expect_error(&r, "EBADINPUT");
    expect_header(&r, "Connection", "close");
    nu_resp_free(&r);
    expect_closed(&c, 2000, "after a bad chunk size");
    nu_close(&c);
    /* and garbage instead of a request line */
    open_conn(&c);
    send_or_fail(&c, "\x01\x02 nonsense\r\n\r\n", 15);
    expect_resp(&c, 0, 400, &r);
    expect_error(&r, "EBADINPUT");
    nu_resp_free(&r);
    expect_closed(&c, 2000, "after a malformed request line");
    nu_close(&c);
}

/* POST usage_details with body (len bytes): 400 EBADINPUT whose message contains needle. */
static void
expect_json_400(const char *body, size_t len, const char *needle)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "POST " DETAILS " HTTP/1.1\r\nHost: x\r\nAuthorization: APIToken " ADMIN
                     "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     len);
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    send_or_fail(&c, hdr, (size_t)n);
    send_or_fail(&c, body, len);
    expect_resp(&c, 0, 400, &r);
    const char *msg = expect_error(&r, "EBADINPUT");
    cr_assert(strstr(msg, needle) != NULL, "400 message '%s' does not say '%s'", msg, needle);
    expect_header(&r, "Connection", "keep-alive"); /* a bad body is not a bad stream */
    nu_resp_free(&r);
    /* the connection still works */
    send_req(&c, "GET", "/healthz", NULL, NULL, NULL);
    expect_resp(&c, 0, 200, &r);
    nu_resp_free(&r);
    nu_close(&c);
}

#define JSON_400(lit, needle) expect_json_400(lit, sizeof lit - 1, needle)

Test(http_server, invalid_json_gets_400_naming_the_problem)
{
    start(NULL);
    JSON_400("{\"from\": ", "JSON");
    JSON_400("{\"a\":1,\"a\":2}", "JSON"); /* duplicate key */
    JSON_400("[1,2]", "object");
    JSON_400("{} trailing", "JSON");
}

Test(http_server, invalid_utf8_gets_400)
{
    start(NULL);
    JSON_400("{\"namespace\":\"\xff\xfe\"}", "JSON");
    JSON_400("{\"namespace\":\"\xc3\x28\"}", "JSON");     /* bad continuation byte */
    JSON_400("{\"namespace\":\"\xed\xa0\x80\"}", "JSON"); /* an encoded UTF-16 surrogate */
}

Test(http_server, unknown_path_404_and_wrong_method_405)
{
    start(NULL);
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    send_req(&c, "GET", "/no/such/path", NULL, NULL, NULL);
    expect_resp(&c, 0, 404, &r);
    expect_error(&r, "ENOTFOUND");
    nu_resp_free(&r);
    send_req(&c, "POST", "/api/web/namespaces/demo/nothing_here", ADMIN, NULL, "{}");
    expect_resp(&c, 0, 404, &r);
    expect_error(&r, "ENOTFOUND");
    nu_resp_free(&r);

    send_req(&c, "GET", DETAILS, ADMIN, NULL, NULL);
    expect_resp(&c, 0, 405, &r);
    expect_error(&r, "EBADINPUT");
    nu_resp_free(&r);
    send_req(&c, "DELETE", "/healthz", NULL, NULL, NULL);
    expect_resp(&c, 0, 405, &r);
    expect_error(&r, "EBADINPUT");
    nu_resp_free(&r);

    /* every route is built now: nothing answers 501 ENOTIMPLEMENTED */
    /* still one healthy keep-alive connection */
    send_req(&c, "GET", "/healthz", NULL, NULL, NULL);
    expect_resp(&c, 0, 200, &r);
    nu_resp_free(&r);
    nu_close(&c);
}

/* ---- connections and timeouts ------------------------------------------------------------------ */

enum { LIMIT_N = 50, RESERVE_N = TALLY_HTTP_RESERVED_CONNECTIONS };
static nu_conn_t limit_conns[LIMIT_N], reserve_conns[RESERVE_N];

static void
close_limit_conns(void)
{
    for (int i = 0; i < LIMIT_N; i++)
        if (limit_conns[i].fd > 0)
            nu_close(&limit_conns[i]);
    for (int i = 0; i < RESERVE_N; i++)
        if (reserve_conns[i].fd > 0)
            nu_close(&reserve_conns[i]);
}

/* GET /openapi.json on a new connection: its status, or -errno. Unlike
 * /healthz it is not served on the reserve past http.max_connections. */
static int
openapi_status(void)
{
    nu_resp_t r;
    int st = nu_roundtrip(H->port,
                          "GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0,
                          IO_MS, &r);
    if (st > 0)
        nu_resp_free(&r);
    return st;
}

/* Start tallyd with http.max_connections = 50 and hold 50 idle connections. */
static void
fill_to_the_limit(void)
{
    static const char *const env[] = {"TALLY_HTTP_MAX_CONNECTIONS=50", NULL};
    start(env);
    for (int i = 0; i < LIMIT_N; i++)
        open_conn(&limit_conns[i]);
}

/* Release what fill_to_the_limit() holds, then the usual teardown. */
static void
limit_teardown(void)
{
    close_limit_conns();
    teardown();
}

Test(http_server, connection_limit_gives_503_and_recovers, .fini = limit_teardown)
{
    fill_to_the_limit();
    nu_resp_t r;
    /* the 51st, on the reserve: /healthz answers, anything else is 503, then closed */
    expect_healthz_ok();
    nu_conn_t extra;
    open_conn(&extra);
    send_req(&extra, "GET", "/openapi.json", NULL, NULL, NULL);
    expect_resp(&extra, 0, 503, &r);
    /* the body's framing is checked by over_limit_503_body_is_complete_json */
    cr_assert(strstr(r.body, "\"EUNAVAILABLE\"") != NULL, "503 body: %s", r.body);
    expect_header(&r, "Connection", "close");
    char ra[32];
    cr_assert(nu_resp_header(&r, "Retry-After", ra, sizeof ra), "503 without Retry-After");
    nu_resp_free(&r);
    cr_assert_eq(nu_wait_closed(&extra, 2000, NULL), 1,
                 "the connection over http.max_connections stays open");
    nu_close(&extra);
    /* the 50 still work */
    for (int i = 0; i < LIMIT_N; i++) {
        send_req(&limit_conns[i], "GET", "/healthz", NULL, NULL, NULL);
        expect_resp(&limit_conns[i], 0, 200, &r);
        nu_resp_free(&r);
    }
    /* close ten: a new connection is accepted once the server noticed */
    for (int i = 0; i < 10; i++)
        nu_close(&limit_conns[i]);
    int st = -1;
    int64_t t0 = nu_mono_ms();
    while (nu_mono_ms() - t0 < 5000) {
        st = openapi_status();
        if (st == 200)
            break;
        nu_sleep_ms(50);
    }
    cr_assert_eq(st, 200, "no new connection accepted after closing 10 of 50 (last status %d)", st);
    /* the other forty still work */
    for (int i = 10; i < LIMIT_N; i++) {
        send_req(&limit_conns[i], "GET", "/healthz", NULL, NULL, NULL);
        expect_resp(&limit_conns[i], 0, 200, &r);
        nu_resp_free(&r);
    }
    close_limit_conns();
}

/* The 503 sent as a connection past http.max_connections and the reserve is
 * accepted: a body of exactly Content-Length bytes that parses as a
 * tallyError, and nothing after it before the close (its static reply once
 * said 78 bytes for a body of 79). */
Test(http_server, over_limit_503_body_is_complete_json, .fini = limit_teardown)
{
    fill_to_the_limit();
    /* the reserve too, with requests under way (a silent reserved connection
     * would make room for a new one), so that the next one is refused as it
     * is accepted */
    for (int i = 0; i < RESERVE_N; i++) {
        open_conn(&reserve_conns[i]);
        send_or_fail(&reserve_conns[i], "GET /healthz HTTP/1.1\r\n", 23);
        nu_sleep_ms(20); /* read before the next one is accepted */
    }
    nu_conn_t extra;
    nu_resp_t r;
    open_conn(&extra);
    send_req(&extra, "GET", "/healthz", NULL, NULL, NULL);
    expect_resp(&extra, 0, 503, &r);
    size_t after = 0;
    int closed = nu_wait_closed(&extra, 2000, &after);
    nu_close(&extra);
    close_limit_conns();
    cr_assert_eq(closed, 1, "the connection over http.max_connections stays open");
    cr_assert_eq(after, 0, "%zu bytes follow the 503's Content-Length", after);
    expect_error(&r, "EUNAVAILABLE");
    nu_resp_free(&r);
}

static nu_conn_t *many;
static int nmany;

static void
many_teardown(void)
{
    for (int i = 0; many && i < nmany; i++)
        nu_close(&many[i]);
    free(many);
    many = NULL;
    nmany = 0;
    teardown();
}

Test(http_server, ten_thousand_idle_connections, .fini = many_teardown, .timeout = 120)
{
    uint64_t lim = nu_raise_nofile();
    int want = 10000;
    if (lim < 10200) {
        want = lim > 400 ? (int)(lim - 300) : 100;
        cr_log_info("RLIMIT_NOFILE hard limit is %llu: opening %d idle connections, not 10000",
                    (unsigned long long)lim, want);
    }
    /* each connection takes an ephemeral port of 127.0.0.1 */
    FILE *fp = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int lo = 0, hi = 0;
    if (fp) {
        if (fscanf(fp, "%d %d", &lo, &hi) != 2)
            lo = hi = 0;
        fclose(fp);
    }
    if (hi > lo && hi - lo - 500 < want) {
        want = hi - lo > 1000 ? hi - lo - 500 : 100;
        cr_log_info("ip_local_port_range is %d..%d: opening %d idle connections, not 10000", lo,
                    hi, want);
    }
    static const char *const env[] = {"TALLY_HTTP_MAX_CONNECTIONS=12000",
                                      "TALLY_HTTP_MAX_CONNECTIONS_PER_ADDRESS=0",
                                      "TALLY_HTTP_REQUEST_TIMEOUT_MS=120000",
                                      "TALLY_HTTP_IDLE_TIMEOUT_MS=120000", NULL};
    start(env);
    many = calloc((size_t)want, sizeof *many);
    cr_assert_not_null(many);
    int64_t t0 = nu_mono_ms();
    for (; nmany < want; nmany++) {
        int rc = nu_connect(&many[nmany], H->port);
        cr_assert_eq(rc, 0, "connection %d of %d: %s", nmany + 1, want, strerror(-rc));
        /* pace: a round trip every 500 connections lets tallyd drain its
         * accept queue (backlog 1024), so the kernel never drops a
         * handshake and no connection waits for a retransmission */
        if (nmany % 500 == 499) {
            int st = nu_healthz(H->port, IO_MS);
            cr_assert_eq(st, 200, "GET /healthz after %d connections: %d", nmany + 1, st);
        }
    }
    int64_t t_open = nu_mono_ms() - t0;
    /* a fresh client is answered promptly; it queues behind every idle
     * connection in the accept queue, so they were all accepted by then */
    int64_t t1 = nu_mono_ms();
    int st = nu_healthz(H->port, IO_MS);
    int64_t t_health = nu_mono_ms() - t1;
    cr_log_info("opened %d idle connections in %lld ms; /healthz answered in %lld ms", want,
                (long long)t_open, (long long)t_health);
    cr_assert_eq(st, 200, "GET /healthz with %d idle connections: %d", want, st);
    cr_assert(t_health < 2000, "GET /healthz took %lld ms with %d idle connections",
              (long long)t_health, want);
    double open_now = -1;
    int64_t t3 = nu_mono_ms();
    while (nu_mono_ms() - t3 < 15000) {
        open_now = metric_value("tally_http_connections");
        if (open_now >= want)
            break;
        nu_sleep_ms(50);
    }
    cr_assert(open_now >= want, "tally_http_connections is %g with %d idle connections", open_now,
              want);
    /* some of them still work */
    for (int i = 0; i < want; i += want / 10) {
        nu_resp_t r;
        send_req(&many[i], "GET", "/healthz", NULL, NULL, NULL);
        expect_resp(&many[i], 0, 200, &r);
        nu_resp_free(&r);
    }
    for (int i = 0; i < nmany; i++)
        nu_close(&many[i]);
    /* and the server lets go of them */
    int64_t t2 = nu_mono_ms();
    double left = -1;
    while (nu_mono_ms() - t2 < 10000) {
        left = metric_value("tally_http_connections");
        if (left >= 0 && left <= 5)
            break;
        nu_sleep_ms(50);
    }
    cr_log_info("the server counted %g connections %lld ms after they closed", left,
                (long long)(nu_mono_ms() - t2));
    cr_assert(left >= 0 && left <= 5, "tally_http_connections is still %g after closing them all",
              left);
}

Test(http_server, slowloris_is_cut_off_by_the_request_timeout)
{
    static const char *const env[] = {"TALLY_HTTP_REQUEST_TIMEOUT_MS=500", NULL};
    start(env);
    nu_conn_t slow;
    open_conn(&slow);
    int64_t t0 = nu_mono_ms();
    send_or_fail(&slow, "GET /healthz HTTP/1.1\r\n", 23);
    static const char drip[] = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int closed = 0, good_status = 0;
    int64_t good_ms = -1, closed_at;
    for (size_t i = 0; nu_mono_ms() - t0 < 4000; i++) {
        if (nu_is_closed(&slow)) {
            closed = 1;
            break;
        }
        if (nu_send(&slow, drip + (i % (sizeof drip - 1)), 1) != 0) {
            closed = 1;
            break;
        }
        if (i == 2) {
            /* meanwhile a well-behaved client is answered */
            int64_t g0 = nu_mono_ms();
            good_status = nu_healthz(H->port, IO_MS);
            good_ms = nu_mono_ms() - g0;
        }
        nu_sleep_ms(100);
    }
    closed_at = nu_mono_ms() - t0;
    nu_close(&slow);
    cr_log_info("slow request cut off after %lld ms; good client answered in %lld ms",
                (long long)closed_at, (long long)good_ms);
    cr_assert(closed, "a request dripping one byte per 100 ms is still open after %lld ms",
              (long long)closed_at);
    cr_assert(closed_at >= 400 && closed_at <= 2000,
              "closed after %lld ms, expected about http.request_timeout_ms=500",
              (long long)closed_at);
    cr_assert_eq(good_status, 200, "the good client got %d", good_status);
    cr_assert(good_ms >= 0 && good_ms < 1000, "the good client waited %lld ms", (long long)good_ms);
}

Test(http_server, idle_keep_alive_connection_is_closed)
{
    /* a connection that never sends a request goes at the request timeout */
    static const char *const env[] = {"TALLY_HTTP_IDLE_TIMEOUT_MS=300",
                                      "TALLY_HTTP_REQUEST_TIMEOUT_MS=600", NULL};
    start(env);
    nu_conn_t c, quiet;
    nu_resp_t r;
    open_conn(&c);
    open_conn(&quiet); /* never sends anything */
    int64_t tq = nu_mono_ms();
    send_req(&c, "GET", "/healthz", NULL, NULL, NULL);
    expect_resp(&c, 0, 200, &r);
    expect_header(&r, "Connection", "keep-alive");
    nu_resp_free(&r);
    int64_t t0 = nu_mono_ms();
    expect_closed(&c, 3000, "an idle keep-alive connection");
    int64_t idle = nu_mono_ms() - t0;
    expect_closed(&quiet, 3000, "a connection that never sent a request");
    int64_t quiet_ms = nu_mono_ms() - tq;
    cr_log_info("idle keep-alive closed after %lld ms; silent connection after %lld ms",
                (long long)idle, (long long)quiet_ms);
    cr_assert(idle >= 200 && idle <= 1500, "idle connection closed after %lld ms, expected ~300",
              (long long)idle);
    cr_assert(quiet_ms >= 450 && quiet_ms <= 1500,
              "silent connection closed after %lld ms, expected ~600 (the request timeout)",
              (long long)quiet_ms);
    nu_close(&c);
    nu_close(&quiet);
    /* a connection that keeps talking is not cut off by the idle timeout */
    open_conn(&c);
    for (int i = 0; i < 6; i++) {
        send_req(&c, "GET", "/healthz", NULL, NULL, NULL);
        expect_resp(&c, 0, 200, &r);
        nu_resp_free(&r);
        nu_sleep_ms(150);
    }
    nu_close(&c);
}

/* Two credentials are ambiguous (a proxy may have added one): refused. */
Test(http_server, two_authorization_headers_get_400)
{
    start(NULL);
    static const char req[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: APIToken dev-demo-viewer-token\r\n"
                              "Authorization: APIToken " ADMIN "\r\n"
                              "Content-Length: 2\r\n\r\n{}";
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    send_or_fail(&c, req, sizeof req - 1);
    expect_resp(&c, 0, 400, &r);
    expect_error(&r, "EBADINPUT");
    nu_resp_free(&r);
    nu_close(&c);
}

/* http-parser decodes only chunked: any other coding is refused, not misread. */
Test(http_server, transfer_codings_other_than_chunked_get_501)
{
    start(NULL);
    static const char req[] = "POST " DETAILS " HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: APIToken " ADMIN "\r\n"
                              "Transfer-Encoding: gzip, chunked\r\n\r\n"
                              "2\r\n{}\r\n0\r\n\r\n";
    nu_conn_t c;
    nu_resp_t r;
    open_conn(&c);
    send_or_fail(&c, req, sizeof req - 1);
    expect_resp(&c, 0, 501, &r);
    expect_error(&r, "ENOTIMPLEMENTED");
    nu_resp_free(&r);
    nu_close(&c);
}

/* ---- deferred answers (in-process server) ------------------------------------------------------ */

/* A server on its own loop thread. The test thread is the client; it
 * touches loop state only through on_loop(), which runs a function on the
 * loop thread and waits for it. */
typedef struct dsrv {
    uv_loop_t loop;
    uv_async_t wake;
    pthread_t thread;
    int thread_started;
    tally_http_server_t *s;
    uint16_t port;
    int closed; /* tally_http_close() was called */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(struct dsrv *, void *);
    void *arg;
    int done;
    /* loop thread only */
    tally_http_pending_t *held; /* the /hold request's handle, until completed */
    int observed;               /* answers the observer saw */
    int observed_status;
    char observed_route[32];
    uint64_t observed_ns;
} dsrv_t;

static dsrv_t *D;

static void
on_wake(uv_async_t *a)
{
    dsrv_t *d = a->data;
    pthread_mutex_lock(&d->mu);
    if (d->fn && !d->done) {
        d->fn(d, d->arg);
        d->done = 1;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
}

static void
on_loop(void (*fn)(dsrv_t *, void *), void *arg)
{
    pthread_mutex_lock(&D->mu);
    D->fn = fn;
    D->arg = arg;
    D->done = 0;
    uv_async_send(&D->wake);
    while (!D->done)
        pthread_cond_wait(&D->cv, &D->mu);
    D->fn = NULL;
    pthread_mutex_unlock(&D->mu);
}

static void *
loop_main(void *arg)
{
    dsrv_t *d = arg;
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* A deferred answer completed by a timer. */
typedef struct later {
    uv_timer_t t;
    tally_http_pending_t *p;
    char tag[32];
    char *body; /* the request body, copied: req's strings die with the dispatch */
} later_t;

static void
on_later_closed(uv_handle_t *h)
{
    later_t *l = h->data;
    free(l->body);
    free(l);
}

static void
on_later(uv_timer_t *t)
{
    later_t *l = t->data;
    tally_http_res_t res = {0};
    char *body = NULL;
    int n = asprintf(&body, "{\"answer\":\"later\",\"tag\":\"%s\",\"got\":%s}", l->tag,
                     l->body[0] ? l->body : "null");
    if (n < 0)
        abort();
    tally_http_take_body(&res, 201, "application/json", body, (size_t)n);
    tally_http_complete(l->p, &res);
    cr_assert_null(res.body, "tally_http_complete() did not take the body");
    uv_close((uv_handle_t *)&l->t, on_later_closed);
}

static void
answer_json(tally_http_res_t *res, int status, const char *what, const char *tag)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "{\"answer\":\"%s\",\"tag\":\"%s\"}", what, tag);
    tally_http_set_body(res, status, "application/json", buf, (size_t)n);
}

/* /sync answers now; /later?ms=N answers 201 from a timer N ms on; /hold
 * defers until the test completes it (complete_held); /now defers and
 * completes inside the dispatch. ?tag= is echoed. */
static void
test_dispatch(void *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    dsrv_t *d = ctx;
    char tag[32] = "", ms[16] = "0";
    tally_http_query_get(req->query, "tag", tag, sizeof tag);
    tally_http_query_get(req->query, "ms", ms, sizeof ms);
    if (strcmp(req->path, "/sync") == 0) {
        res->route = "sync";
        answer_json(res, 200, "sync", tag);
        return;
    }
    if (strcmp(req->path, "/later") == 0 || strcmp(req->path, "/hold") == 0 ||
        strcmp(req->path, "/now") == 0) {
        /* static: the route outlives the request */
        res->route = req->path[1] == 'h' ? "hold" : req->path[1] == 'n' ? "now" : "later";
        tally_http_pending_t *p = tally_http_defer(req);
        if (!p) {
            tally_http_error(res, 503, "EUNAVAILABLE", "cannot defer");
            return;
        }
        cr_assert(tally_http_deferred(req), "tally_http_deferred() is 0 after tally_http_defer()");
        if (req->path[1] == 'h') {
            cr_assert_null(d->held, "a second /hold while one is held");
            d->held = p;
        } else if (req->path[1] == 'n') {
            tally_http_res_t now = {0};
            answer_json(&now, 200, "now", tag);
            tally_http_complete(p, &now);
            cr_assert(!tally_http_deferred(req), "still deferred after tally_http_complete()");
        } else {
            later_t *l = calloc(1, sizeof *l);
            cr_assert_not_null(l);
            l->p = p;
            snprintf(l->tag, sizeof l->tag, "%s", tag);
            l->body = strndup(req->body, req->body_len);
            cr_assert_not_null(l->body);
            uv_timer_init(&d->loop, &l->t);
            l->t.data = l;
            uv_update_time(&d->loop); /* count from now, not from the loop's cached time */
            uv_timer_start(&l->t, on_later, strtoull(ms, NULL, 10), 0);
        }
        return;
    }
    tally_http_error(res, 404, "ENOTFOUND", "no such endpoint: %s", req->path);
}

static void
test_observe(void *ctx, const char *route, int status, uint64_t ns)
{
    dsrv_t *d = ctx;
    d->observed++;
    d->observed_status = status;
    snprintf(d->observed_route, sizeof d->observed_route, "%s", route ? route : "-");
    d->observed_ns = ns;
}

static void
dsrv_start(uint32_t idle_ms, uint32_t request_ms, uint32_t pending_ms)
{
    D = calloc(1, sizeof *D);
    cr_assert_not_null(D);
    cr_assert_eq(uv_loop_init(&D->loop), 0);
    pthread_mutex_init(&D->mu, NULL);
    pthread_cond_init(&D->cv, NULL);
    uv_async_init(&D->loop, &D->wake, on_wake);
    D->wake.data = D;
    tally_http_limits_t lim = {.max_header_bytes = 8192,
                               .max_headers = 64,
                               .max_body_bytes = 65536,
                               .max_connections = 64,
                               .idle_timeout_ms = idle_ms,
                               .request_timeout_ms = request_ms,
                               .pending_timeout_ms = pending_ms};
    int rc = tally_http_start(&D->loop, "127.0.0.1", 0, &lim, test_dispatch, D, 1, &D->s);
    cr_assert_eq(rc, 0, "tally_http_start: %s", uv_strerror(rc));
    tally_http_set_observer(D->s, test_observe);
    D->port = tally_http_port(D->s);
    cr_assert_eq(pthread_create(&D->thread, NULL, loop_main, D), 0);
    D->thread_started = 1;
}

static void
do_close_server(dsrv_t *d, void *arg)
{
    (void)arg;
    if (!d->closed) {
        tally_http_close(d->s);
        d->closed = 1;
    }
}

static void
do_shutdown(dsrv_t *d, void *arg)
{
    do_close_server(d, arg);
    uv_close((uv_handle_t *)&d->wake, NULL);
}

/* Close the server and the loop; every handle must be gone (no connection,
 * server or timer left behind). The .fini of the suite. */
static void
dsrv_stop(void)
{
    dsrv_t *d = D;
    D = NULL;
    if (!d)
        return;
    if (d->thread_started) {
        D = d;
        on_loop(do_shutdown, NULL);
        D = NULL;
        pthread_join(d->thread, NULL);
    }
    int rc = uv_loop_close(&d->loop);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
    cr_expect_eq(rc, 0, "handles are left on the loop after the server closed");
}

TestSuite(http_deferred, .fini = dsrv_stop, .timeout = 60);

static void
get_held(dsrv_t *d, void *arg)
{
    *(int *)arg = d->held != NULL;
}

static void
get_stats(dsrv_t *d, void *arg)
{
    tally_http_stats_t *st = arg;
    if (d->closed)
        memset(st, 0, sizeof *st); /* the server may be freed */
    else
        tally_http_stats(d->s, st);
}

static void
complete_held(dsrv_t *d, void *arg)
{
    tally_http_res_t res = {0};
    answer_json(&res, 200, "held", arg ? arg : "");
    tally_http_complete(d->held, &res);
    d->held = NULL;
}

static void
get_observed(dsrv_t *d, void *arg)
{
    dsrv_t *out = arg;
    out->observed = d->observed;
    out->observed_status = d->observed_status;
    memcpy(out->observed_route, d->observed_route, sizeof out->observed_route);
    out->observed_ns = d->observed_ns;
}

static void
wait_held(void)
{
    int64_t end = nu_mono_ms() + IO_MS;
    int held = 0;
    while (!held && nu_mono_ms() < end) {
        on_loop(get_held, &held);
        if (!held)
            nu_sleep_ms(5);
    }
    cr_assert(held, "the /hold request did not reach the dispatch");
}

static void
dopen(nu_conn_t *c)
{
    int rc = nu_connect(c, D->port);
    cr_assert_eq(rc, 0, "connect to 127.0.0.1:%u: %s", D->port, strerror(-rc));
}

static void
expect_body_field(const nu_resp_t *r, const char *key, const char *value)
{
    const char *got = json_string_value(json_object_get(r->json, key));
    cr_assert(got && strcmp(got, value) == 0, "%s: %s, expected %s (body %.200s)", key,
              got ? got : "(none)", value, r->body);
}

Test(http_deferred, answer_completed_later_from_a_timer_arrives)
{
    dsrv_start(5000, 5000, 0);
    nu_conn_t c;
    nu_resp_t r;
    dopen(&c);
    int64_t t0 = nu_mono_ms();
    send_req(&c, "POST", "/later?ms=80&tag=one", NULL, NULL, "{\"x\":1}");
    expect_resp(&c, 0, 201, &r);
    cr_expect_geq(nu_mono_ms() - t0, 70, "answered before the timer fired");
    expect_header(&r, "Connection", "keep-alive");
    expect_body_field(&r, "answer", "later");
    expect_body_field(&r, "tag", "one");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "got"), "x")), 1,
                 "the copied body did not survive the dispatch: %s", r.body);
    size_t get_len = r.body_len;
    nu_resp_free(&r);
    dsrv_t o;
    on_loop(get_observed, &o);
    cr_expect_eq(o.observed, 1, "the observer saw %d answers", o.observed);
    cr_expect_eq(o.observed_status, 201);
    cr_expect_str_eq(o.observed_route, "later");
    cr_expect_geq(o.observed_ns, 70 * 1000000ull, "observed %llu ns",
                  (unsigned long long)o.observed_ns);

    /* HEAD: the GET's headers and no body, deferred or not */
    send_req(&c, "HEAD", "/later?ms=20&tag=one", NULL, NULL, NULL);
    expect_resp(&c, 1, 201, &r);
    char len[32];
    cr_assert(nu_resp_header(&r, "Content-Length", len, sizeof len));
    cr_expect_eq(strtoull(len, NULL, 10), get_len - strlen("{\"x\":1}") + strlen("null"),
                 "HEAD Content-Length %s", len);
    nu_resp_free(&r);
    expect_open(&c, 50, "after a deferred HEAD answer (no stray body bytes)");

    /* completed inside its own dispatch: an ordinary synchronous answer */
    send_req(&c, "GET", "/now?tag=n", NULL, NULL, NULL);
    expect_resp(&c, 0, 200, &r);
    expect_body_field(&r, "answer", "now");
    nu_resp_free(&r);

    /* Connection: close is honoured by a deferred answer */
    send_req(&c, "GET", "/later?ms=20&tag=last", NULL, "Connection: close\r\n", NULL);
    expect_resp(&c, 0, 201, &r);
    expect_header(&r, "Connection", "close");
    nu_resp_free(&r);
    expect_closed(&c, IO_MS, "after a deferred answer to Connection: close");
    nu_close(&c);
}

Test(http_deferred, pipelined_requests_wait_for_the_deferred_answer_in_order)
{
    dsrv_start(5000, 5000, 0);
    const char *paths[] = {"/later?ms=150&tag=a", "/sync?tag=b", "/later?ms=10&tag=c",
                           "/sync?tag=d", "/nowhere?tag=e"};
    const char *tags[] = {"a", "b", "c", "d", NULL};
    const int status[] = {201, 200, 201, 200, 404};
    char all[2048] = "";
    for (size_t i = 0; i < 5; i++) {
        char *one = nu_request("GET", paths[i], NULL, NULL, NULL);
        cr_assert_not_null(one);
        strcat(all, one);
        free(one);
    }
    nu_conn_t c;
    nu_resp_t r;
    dopen(&c);
    send_or_fail(&c, all, strlen(all)); /* one send: all five arrive together */
    for (size_t i = 0; i < 5; i++) {
        expect_resp(&c, 0, status[i], &r);
        if (tags[i])
            expect_body_field(&r, "tag", tags[i]);
        else
            expect_error(&r, "ENOTFOUND");
        nu_resp_free(&r);
    }
    expect_open(&c, 50, "after the pipelined answers");

    /* the same, with the second part sent while the first answer is pending */
    send_req(&c, "GET", "/later?ms=150&tag=x", NULL, NULL, NULL);
    nu_sleep_ms(40);
    send_req(&c, "GET", "/sync?tag=y", NULL, NULL, NULL);
    expect_resp(&c, 0, 201, &r);
    expect_body_field(&r, "tag", "x");
    nu_resp_free(&r);
    expect_resp(&c, 0, 200, &r);
    expect_body_field(&r, "tag", "y");
    nu_resp_free(&r);
    nu_close(&c);
}

Test(http_deferred, idle_and_request_timeouts_spare_a_pending_answer)
{
    /* both timeouts 100 ms, the pending limit explicitly 3 s */
    dsrv_start(100, 100, 3000);
    nu_conn_t c;
    nu_resp_t r;
    dopen(&c);
    send_req(&c, "GET", "/later?ms=400&tag=slow", NULL, NULL, NULL);
    expect_resp(&c, 0, 201, &r);
    expect_body_field(&r, "tag", "slow");
    nu_resp_free(&r);
    /* and the idle timeout applies again once it is out */
    expect_closed(&c, IO_MS, "idle after the deferred answer");
    nu_close(&c);
}

Test(http_deferred, peer_closing_while_pending_then_complete_just_frees)
{
    dsrv_start(5000, 5000, 0);
    nu_conn_t c;
    dopen(&c);
    send_req(&c, "GET", "/hold", NULL, NULL, NULL);
    wait_held();
    tally_http_stats_t st;
    on_loop(get_stats, &st);
    cr_assert_eq(st.pending, 1, "pending %u", st.pending);
    nu_close(&c);
    int64_t end = nu_mono_ms() + IO_MS;
    do {
        nu_sleep_ms(5);
        on_loop(get_stats, &st);
    } while (st.connections > 0 && nu_mono_ms() < end);
    cr_assert_eq(st.connections, 0, "the server did not notice the peer closing");
    cr_assert_eq(st.pending, 0);
    cr_assert_eq(st.pending_dropped, 1, "pending_dropped %llu",
                 (unsigned long long)st.pending_dropped);
    on_loop(complete_held, NULL); /* the connection is freed: this only frees the handle */
    dsrv_t o;
    on_loop(get_observed, &o);
    cr_expect_eq(o.observed, 0, "a dropped answer was reported to the observer");
    /* the server still serves */
    nu_resp_t r;
    dopen(&c);
    send_req(&c, "GET", "/sync?tag=after", NULL, NULL, NULL);
    expect_resp(&c, 0, 200, &r);
    nu_resp_free(&r);
    nu_close(&c);
}

Test(http_deferred, server_closed_while_pending_then_complete_just_frees)
{
    dsrv_start(5000, 5000, 0);
    nu_conn_t c;
    dopen(&c);
    send_req(&c, "GET", "/hold", NULL, NULL, NULL);
    wait_held();
    on_loop(do_close_server, NULL);
    expect_closed(&c, IO_MS, "tally_http_close() with an answer pending");
    nu_close(&c);
    nu_sleep_ms(20); /* the close callbacks run; the server is freed */
    on_loop(complete_held, NULL);
    /* dsrv_stop checks that nothing is left on the loop; LSan/valgrind that nothing leaked */
}

Test(http_deferred, pending_limit_answers_503_and_a_later_complete_only_frees)
{
    dsrv_start(5000, 100, 0); /* the limit: 3 × 100 ms */
    nu_conn_t c;
    nu_resp_t r;
    dopen(&c);
    int64_t t0 = nu_mono_ms();
    send_req(&c, "GET", "/hold", NULL, NULL, NULL);
    expect_resp(&c, 0, 503, &r);
    int64_t took = nu_mono_ms() - t0;
    cr_expect_geq(took, 290, "503 after %lld ms, before 3 × request_timeout_ms", (long long)took);
    expect_error(&r, "EUNAVAILABLE");
    expect_header(&r, "Connection", "keep-alive");
    expect_header(&r, "Retry-After", "1");
    nu_resp_free(&r);
    tally_http_stats_t st;
    on_loop(get_stats, &st);
    cr_expect_eq(st.pending_timeouts, 1);
    cr_expect_eq(st.pending, 0);
    dsrv_t o;
    on_loop(get_observed, &o);
    cr_expect_eq(o.observed, 1);
    cr_expect_eq(o.observed_status, 503);
    cr_expect_str_eq(o.observed_route, "hold");
    /* the owner answers late: nothing more goes out on the connection */
    on_loop(complete_held, "late");
    expect_open(&c, 100, "after the late tally_http_complete()");
    send_req(&c, "GET", "/sync?tag=next", NULL, NULL, NULL);
    expect_resp(&c, 0, 200, &r);
    expect_body_field(&r, "tag", "next");
    nu_resp_free(&r);
    nu_close(&c);
}

Test(http_deferred, a_refusal_behind_a_pending_answer_waits_its_turn)
{
    dsrv_start(5000, 5000, 0);
    char *ok = nu_request("GET", "/later?ms=100&tag=first", NULL, NULL, NULL);
    char *all = NULL;
    cr_assert(asprintf(&all, "%sGET /sync HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", ok) >
              0);
    free(ok);
    nu_conn_t c;
    nu_resp_t r;
    dopen(&c);
    send_or_fail(&c, all, strlen(all));
    free(all);
    expect_resp(&c, 0, 201, &r);
    expect_body_field(&r, "tag", "first");
    nu_resp_free(&r);
    expect_resp(&c, 0, 400, &r);
    expect_error(&r, "EBADINPUT");
    expect_header(&r, "Connection", "close");
    nu_resp_free(&r);
    expect_closed(&c, IO_MS, "after the refusal");
    nu_close(&c);
}
