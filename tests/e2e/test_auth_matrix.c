/* test_auth_matrix.c — end-to-end tests of tallyd's authentication and authorization: the role × namespace × access matrix, open routes, the Authorization scheme, per-token rate limits and tokens-file reload on SIGHUP. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>

#include "harness.h"
#include "netutil.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define EDITOR HARNESS_DEMO_EDITOR_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN
#define SUMMARY "/api/data/namespaces/system/billing/usage_summary"
#define IO_MS 10000

static harness_t *H;
static char tmpdir[64]; /* our own files (tokens) */

static void
start(const char *const *env)
{
    H = harness_start(env);
}

static void
teardown(void)
{
    harness_t *h = H;
    H = NULL;
    if (h && h->pid > 0) {
        int st = nu_healthz(h->port, IO_MS);
        cr_expect_eq(st, 200, "the daemon does not answer /healthz at the end of the test (%d)", st);
        const char *what = NULL;
        cr_expect(!nu_file_has_sanitizer_report(h->log_path, &what),
                  "tallyd's log holds a sanitizer report (%s)", what ? what : "");
        if (st != 200 || what)
            harness_print_log(h, 8192);
    }
    harness_stop(h);
    if (tmpdir[0]) {
        char p[128];
        snprintf(p, sizeof p, "%s/tokens", tmpdir);
        unlink(p);
        snprintf(p, sizeof p, "%s/tokens.new", tmpdir);
        unlink(p);
        rmdir(tmpdir);
        tmpdir[0] = '\0';
    }
}

TestSuite(auth, .fini = teardown, .timeout = 60);

/* ---- helpers ----------------------------------------------------------------------------------- */

/* One request with a raw Authorization header value (NULL: none); returns the response. */
static int
request_auth(const char *method, const char *path, const char *authz, const char *body,
             nu_resp_t *out)
{
    char extra[512] = "Connection: close\r\n";
    if (authz)
        snprintf(extra, sizeof extra, "Connection: close\r\nAuthorization: %s\r\n", authz);
    char *req = nu_request(method, path, NULL, extra, body);
    cr_assert_not_null(req);
    nu_resp_t r;
    int st = nu_roundtrip(H->port, req, 0, IO_MS, &r);
    free(req);
    cr_assert(st > 0, "%s %s: no response (%s)", method, path, strerror(-st));
    if (out)
        *out = r;
    else
        nu_resp_free(&r);
    return st;
}

static const char *
err_code(const nu_resp_t *r)
{
    return json_string_value(json_object_get(r->json, "code"));
}

/* The error code a status implies in this suite. */
static const char *
code_for(int status)
{
    switch (status) {
    case 401: return "EUNAUTHENTICATED";
    case 403: return "EPERMS";
    case 429: return "ETOOMANY";
    case 501: return "ENOTIMPLEMENTED";
    default: return NULL;
    }
}

static int failures;

/* Expected "let through": the auth layer did not refuse (not 401, 403 or
 * 429). What the handler then answers (200, 400, 501 while a route is not
 * built...) is the business of the endpoint's own tests. */
#define ALLOWED (-2)

static void
check(const char *what, const char *method, const char *path, const char *authz, const char *body,
      int expect)
{
    nu_resp_t r;
    int st = request_auth(method, path, authz, body, &r);
    const char *want = expect == ALLOWED ? NULL : code_for(expect);
    const char *got = err_code(&r);
    int ok = expect == ALLOWED ? (st != 401 && st != 403 && st != 429 && (st < 500 || st == 501))
                               : st == expect;
    if (ok && want)
        ok = got && strcmp(got, want) == 0;
    if (ok && expect == 200)
        ok = json_is_object(r.json);
    if (!ok) {
        failures++;
        cr_log_error("%s: %s %s -> %d %s, expected %d %s (body %.200s)", what, method, path, st,
                     got ? got : "", expect, want ? want : "", r.body);
    }
    nu_resp_free(&r);
}

/* ---- the matrix -------------------------------------------------------------------------------- */

enum { R_ADMIN, R_EDITOR, R_VIEWER, R_NONE, R_BAD, NROLES };
enum { NS_OWN, NS_OTHER, NS_SYSTEM, NNS };

static const char *const role_name[NROLES] = {"admin(*)", "editor(demo)", "viewer(demo)",
                                              "no token", "bad token"};
static const char *const role_authz[NROLES] = {"APIToken " ADMIN, "APIToken " EDITOR,
                                               "APIToken " VIEWER, NULL,
                                               "APIToken not-a-known-token"};
static const char *const ns_name[NNS] = {"demo", "other", "system"};

/* Expected status of (role, namespace, write?). */
static int
expected(int role, int ns, int write)
{
    switch (role) {
    case R_NONE:
    case R_BAD:
        return 401;
    case R_ADMIN:
        return write ? ALLOWED : 200;
    case R_EDITOR:
        if (ns != NS_OWN)
            return 403;
        return write ? ALLOWED : 200;
    case R_VIEWER:
        if (write || ns != NS_OWN)
            return 403;
        return 200;
    }
    return -1;
}

Test(auth, role_namespace_access_matrix)
{
    start(NULL);
    failures = 0;
    int cells = 0;
    for (int role = 0; role < NROLES; role++)
        for (int ns = 0; ns < NNS; ns++)
            for (int write = 0; write < 2; write++) {
                /* a write in the path's namespace: a quota (plan_transition,
                 * which this matrix used before, is tenant-wide whatever the
                 * path says: test_access_matrix.c covers such routes) */
                char path[256], what[128], body[256];
                snprintf(path, sizeof path,
                         write ? "/api/web/namespaces/%s/quotas"
                               : "/api/web/namespaces/%s/usage_details",
                         ns_name[ns]);
                snprintf(body, sizeof body,
                         write ? "{\"metadata\":{\"name\":\"auth-q\",\"namespace\":\"%s\"},"
                                 "\"spec\":{}}"
                               : "{}",
                         ns_name[ns]);
                snprintf(what, sizeof what, "%s %s %s", role_name[role],
                         write ? "write" : "read", ns_name[ns]);
                check(what, "POST", path, role_authz[role], body, expected(role, ns, write));
                cells++;
            }
    /* usage_summary: tenant-wide (namespace system), read access */
    static const int summary[NROLES] = {200, 403, 403, 401, 401};
    for (int role = 0; role < NROLES; role++) {
        char what[128];
        snprintf(what, sizeof what, "%s usage_summary", role_name[role]);
        check(what, "POST", SUMMARY, role_authz[role], "{}", summary[role]);
        cells++;
    }
    cr_log_info("auth matrix: %d cells, %d wrong", cells, failures);
    cr_assert_eq(failures, 0, "%d of %d matrix cells answered wrongly (see the log)", failures,
                 cells);
}

Test(auth, open_routes_need_no_token)
{
    start(NULL);
    failures = 0;
    check("open /healthz", "GET", "/healthz", NULL, NULL, 200);
    check("open /openapi.json", "GET", "/openapi.json", NULL, NULL, 200);
    check("open plan_transition", "GET", "/no_auth/namespaces/system/billing/plan_transition", NULL,
          NULL, ALLOWED);
    nu_resp_t r;
    cr_assert_eq(request_auth("GET", "/metrics", NULL, NULL, &r), 200);
    cr_assert(strstr(r.body, "# TYPE") != NULL, "/metrics body: %.200s", r.body);
    nu_resp_free(&r);
    cr_assert_eq(failures, 0, "%d open routes answered wrongly (see the log)", failures);
}

Test(auth, authorization_scheme_is_case_insensitive_but_only_apitoken)
{
    start(NULL);
    failures = 0;
    const char *path = "/api/web/namespaces/demo/usage_details";
    check("APIToken", "POST", path, "APIToken " VIEWER, "{}", 200);
    check("apitoken", "POST", path, "apitoken " VIEWER, "{}", 200);
    check("APITOKEN", "POST", path, "APITOKEN " VIEWER, "{}", 200);
    check("ApiToken, two spaces", "POST", path, "ApiToken  " VIEWER, "{}", 200);
    check("Bearer", "POST", path, "Bearer " VIEWER, "{}", 401);
    check("bare token", "POST", path, VIEWER, "{}", 401);
    check("scheme only", "POST", path, "APIToken", "{}", 401);
    check("token with trailing junk", "POST", path, "APIToken " VIEWER " x", "{}", 401);
    check("Basic", "POST", path, "Basic ZGV2OmRldg==", "{}", 401);
    cr_assert_eq(failures, 0, "%d Authorization variants answered wrongly (see the log)",
                 failures);
}

/* ---- rate limit -------------------------------------------------------------------------------- */

Test(auth, per_token_rate_limit_gives_429_with_retry_after)
{
    static const char *const env[] = {"TALLY_HTTP_RATE_PER_TOKEN=5", "TALLY_HTTP_RATE_BURST=5",
                                      NULL};
    start(env);
    const char *path = "/api/web/namespaces/demo/usage_details";
    /* seven requests of the viewer pipelined on one connection: no time to refill */
    char *one = nu_request("POST", path, VIEWER, NULL, "{}");
    size_t ol = strlen(one);
    char *all = malloc(ol * 7 + 1);
    cr_assert_not_null(all);
    for (int i = 0; i < 7; i++)
        memcpy(all + ol * i, one, ol);
    all[ol * 7] = '\0';
    free(one);
    nu_conn_t c;
    cr_assert_eq(nu_connect(&c, H->port), 0);
    cr_assert_eq(nu_send(&c, all, ol * 7), 0);
    free(all);
    for (int i = 0; i < 7; i++) {
        nu_resp_t r;
        int rc = nu_read_response(&c, 0, IO_MS, &r);
        cr_assert_eq(rc, 0, "response %d: %s", i + 1, strerror(-rc));
        if (i < 5) {
            cr_assert_eq(r.status, 200, "request %d of the burst: %d %s", i + 1, r.status, r.body);
        } else {
            cr_assert_eq(r.status, 429, "request %d past the burst: %d %s", i + 1, r.status,
                         r.body);
            cr_assert_str_eq(err_code(&r), "ETOOMANY");
            char ra[32];
            cr_assert(nu_resp_header(&r, "Retry-After", ra, sizeof ra),
                      "429 without Retry-After:\n%s", r.headers);
            char *end;
            long v = strtol(ra, &end, 10);
            cr_assert(*ra && !*end && v >= 1, "Retry-After: %s", ra);
        }
        nu_resp_free(&r);
    }
    nu_close(&c);
    int64_t limited_at = nu_mono_ms();
    /* another token has its own bucket */
    failures = 0;
    check("editor while the viewer is limited", "POST", path, "APIToken " EDITOR, "{}", 200);
    cr_assert_eq(failures, 0);
    /* after ~1.2 s the bucket has refilled */
    int64_t wait = 1200 - (nu_mono_ms() - limited_at);
    if (wait > 0)
        nu_sleep_ms((int)wait);
    check("viewer after 1.2 s", "POST", path, "APIToken " VIEWER, "{}", 200);
    cr_assert_eq(failures, 0, "the viewer is still limited 1.2 s later");
}

/* ---- reload ------------------------------------------------------------------------------------ */

static void
write_file(const char *path, const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *fp = fopen(tmp, "w");
    cr_assert_not_null(fp, "%s: %s", tmp, strerror(errno));
    fputs(text, fp);
    cr_assert_eq(fclose(fp), 0);
    cr_assert_eq(rename(tmp, path), 0, "rename %s: %s", tmp, strerror(errno));
}

static void
sha256_hex(const char *s, char hex[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    cr_assert(sodium_init() >= 0);
    crypto_hash_sha256(d, (const unsigned char *)s, strlen(s));
    sodium_bin2hex(hex, 65, d, sizeof d);
}

/* Occurrences of needle in tallyd's log. */
static int
log_count(const char *needle)
{
    char *log = nu_slurp(H->log_path, NULL);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

/* SIGHUP and wait until the log shows the reload finished. */
static void
sighup_and_wait(void)
{
    int before = log_count("reloaded config=");
    cr_assert_eq(kill(H->pid, SIGHUP), 0, "kill -HUP %d: %s", (int)H->pid, strerror(errno));
    int64_t t0 = nu_mono_ms();
    while (log_count("reloaded config=") <= before) {
        if (nu_mono_ms() - t0 > 10000) {
            harness_print_log(H, 4096);
            cr_assert_fail("no 'reloaded config=' in the log within 10 s of SIGHUP");
        }
        nu_sleep_ms(20);
    }
}

static int
status_on(nu_conn_t *c, const char *token)
{
    char *req = nu_request("POST", "/api/web/namespaces/demo/usage_details", token, NULL, "{}");
    cr_assert_eq(nu_send_str(c, req), 0, "the kept connection was dropped");
    free(req);
    nu_resp_t r;
    int rc = nu_read_response(c, 0, IO_MS, &r);
    cr_assert_eq(rc, 0, "the kept connection did not answer: %s", strerror(-rc));
    int st = r.status;
    nu_resp_free(&r);
    return st;
}

Test(auth, sighup_reloads_the_tokens_file_without_dropping_connections)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tally-auth.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
    char tokens[128], envv[200];
    snprintf(tokens, sizeof tokens, "%s/tokens", tmpdir);
    write_file(tokens, "# one token\nfirst viewer demo plain:first-token-1\n");
    snprintf(envv, sizeof envv, "TALLY_AUTH_TOKENS_FILE=%s", tokens);
    const char *env[] = {envv, NULL};
    start(env);
    failures = 0;
    const char *path = "/api/web/namespaces/demo/usage_details";
    nu_conn_t kept;
    cr_assert_eq(nu_connect(&kept, H->port), 0);
    cr_assert_eq(status_on(&kept, "first-token-1"), 200);
    check("second token before reload", "POST", path, "APIToken second-token-2", "{}", 401);
    check("dev admin token is not in this file", "POST", path, "APIToken " ADMIN, "{}", 401);

    /* add a hashed token and reload */
    char hex[65], text[512];
    sha256_hex("second-token-2", hex);
    snprintf(text, sizeof text,
             "# two tokens\nfirst viewer demo plain:first-token-1\n"
             "second editor demo,shop sha256:%s\n",
             hex);
    write_file(tokens, text);
    sighup_and_wait();
    cr_assert(log_count("tokens=2") >= 1, "the reload did not load 2 tokens");
    check("second token after reload", "POST", path, "APIToken second-token-2", "{}", 200);
    check("second token, its other namespace", "POST", "/api/web/namespaces/shop/usage_details",
          "APIToken second-token-2", "{}", 200);
    check("second token may write (editor)", "POST", "/api/web/namespaces/demo/quotas",
          "APIToken second-token-2",
          "{\"metadata\":{\"name\":\"auth-q\",\"namespace\":\"demo\"},\"spec\":{}}", ALLOWED);
    check("first token after reload", "POST", path, "APIToken first-token-1", "{}", 200);
    cr_assert_eq(failures, 0, "%d requests answered wrongly after the reload (see the log)",
                 failures);
    cr_assert_eq(status_on(&kept, "first-token-1"), 200, "the kept connection, first token");
    cr_assert_eq(status_on(&kept, "second-token-2"), 200, "the kept connection, second token");

    /* a broken file keeps the tokens loaded before */
    int errs = log_count("keeping the previous tokens");
    write_file(tokens, "first viewer demo plain:first-token-1\nthis line is broken\n");
    sighup_and_wait();
    cr_assert(log_count("keeping the previous tokens") > errs,
              "the log does not say the previous tokens are kept");
    check("second token after a broken reload", "POST", path, "APIToken second-token-2", "{}",
          200);
    check("first token after a broken reload", "POST", path, "APIToken first-token-1", "{}", 200);
    cr_assert_eq(failures, 0, "%d requests answered wrongly after a broken reload", failures);
    cr_assert_eq(status_on(&kept, "second-token-2"), 200, "the kept connection after a bad reload");
    /* a missing file too */
    unlink(tokens);
    errs = log_count("keeping the previous tokens");
    sighup_and_wait();
    cr_assert(log_count("keeping the previous tokens") > errs,
              "a missing tokens file: the log does not say the previous tokens are kept");
    check("first token after a reload with no file", "POST", path, "APIToken first-token-1", "{}",
          200);
    cr_assert_eq(failures, 0);
    nu_close(&kept);
}
