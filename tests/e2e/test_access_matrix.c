/* test_access_matrix.c — end-to-end access matrix generated from the route table (daemon/routes.h TALLY_ROUTES): every route × token × path namespace, expected 401/403/allowed computed from the rule and the token's role and namespaces; and /metrics showing per-namespace series only to tokens that may read them. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"

/* The route table itself, not a copy of it: the rows of TALLY_ROUTES are
 * expanded here without their handlers (so nothing of tallyd is linked), and
 * every expectation below is computed from them. A route added to the table
 * is in this matrix with no edit here. */
#include "../../daemon/routes.h"

#define RULE(m, pattern, fn, access, scope, name)                                                  \
    {#m, pattern, TALLY_ACCESS_##access, TALLY_ROUTE_SCOPE_##scope, name},
static const tally_route_rule_t rules[] = {TALLY_ROUTES(RULE)};
#undef RULE
#define NRULES (sizeof rules / sizeof rules[0])

/* ---- the tokens: written by this test, so their data is known here ----------------------------- */

typedef struct tok {
    const char *name;
    int role;               /* TALLY_ROLE_* */
    const char *namespaces; /* as in the file: "*" or a comma-separated list */
    const char *secret;     /* what the client presents */
    const char *file_secret;
} tok_t;

static const tok_t toks[] = {
    {"acl-admin", TALLY_ROLE_ADMIN, "*", "acl-admin-token", "plain:acl-admin-token"},
    {"acl-editor-a", TALLY_ROLE_EDITOR, "ns-a", "acl-editor-a-token", "plain:acl-editor-a-token"},
    {"acl-viewer-a", TALLY_ROLE_VIEWER, "ns-a", "acl-viewer-a-token", "plain:acl-viewer-a-token"},
    {"acl-editor-sys", TALLY_ROLE_EDITOR, "system", "acl-editor-sys-token",
     "plain:acl-editor-sys-token"},
    {"acl-viewer-a-sys", TALLY_ROLE_VIEWER, "ns-a,system", "acl-viewer-a-sys-token",
     "plain:acl-viewer-a-sys-token"},
    /* config/tokens' development emitter (its mac: key is derived from
     * the public credential HARNESS_EMITTER_KEY); the harness emits with it */
    {"dev-emitter", TALLY_ROLE_EMITTER, "*", HARNESS_EMITTER_KEY,
     "mac:23d7df62c1aa87166c290b62a242f952e13279090ae369ddd7b0bf766bfcd862"},
};
#define NTOKS (sizeof toks / sizeof toks[0])
#define ADMIN (&toks[0])
#define VIEWER_A (&toks[2])

static const char *const path_namespaces[] = {"ns-a", "ns-b", "system"};

/* tally__token_allows() as lib/auth.h documents it, over the data above. */
static int
may(const tok_t *t, const char *ns, int access)
{
    if (!t)
        return 0;
    if (access == TALLY_ACCESS_NONE)
        return 1;
    int in_scope = strcmp(t->namespaces, "*") == 0;
    for (const char *p = t->namespaces; !in_scope && *p;) {
        size_t n = strcspn(p, ",");
        in_scope = n == strlen(ns) && strncmp(p, ns, n) == 0;
        p += n + (p[n] == ',');
    }
    if (!in_scope)
        return 0;
    switch (t->role) {
    case TALLY_ROLE_VIEWER: return access == TALLY_ACCESS_READ;
    case TALLY_ROLE_EDITOR: return access == TALLY_ACCESS_READ || access == TALLY_ACCESS_WRITE;
    case TALLY_ROLE_ADMIN: return access != TALLY_ACCESS_INGEST;
    case TALLY_ROLE_EMITTER: return access == TALLY_ACCESS_INGEST;
    }
    return 0;
}

/* ---- the daemon ---------------------------------------------------------------------------------- */

static harness_t *H;
static char tmpdir[64];
static char tokens_path[128];

static void
setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tally-acl.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
    snprintf(tokens_path, sizeof tokens_path, "%s/tokens", tmpdir);
    FILE *fp = fopen(tokens_path, "w");
    cr_assert_not_null(fp, "%s: %s", tokens_path, strerror(errno));
    fputs("# written by test_access_matrix.c\n", fp);
    for (size_t i = 0; i < NTOKS; i++)
        fprintf(fp, "%s %s %s %s\n", toks[i].name, tally__role_name(toks[i].role),
                toks[i].namespaces, toks[i].file_secret);
    cr_assert_eq(fclose(fp), 0);
    static char envv[200];
    snprintf(envv, sizeof envv, "TALLY_AUTH_TOKENS_FILE=%s", tokens_path);
    /* no rate limit: the matrix sends a few hundred requests per token */
    const char *env[] = {envv, "TALLY_HTTP_RATE_PER_TOKEN=0", NULL};
    H = harness_start(env);
}

static void
teardown(void)
{
    harness_t *h = H;
    H = NULL;
    harness_stop(h);
    if (tmpdir[0]) {
        unlink(tokens_path);
        rmdir(tmpdir);
        tmpdir[0] = '\0';
    }
}

TestSuite(access, .init = setup, .fini = teardown, .timeout = 600);

/* ---- the table is complete ------------------------------------------------------------------------ */

static const char *
ns_param_of(const char *pattern)
{
    if (strstr(pattern, "/{namespace}"))
        return "{namespace}";
    if (strstr(pattern, "/{metadata.namespace}"))
        return "{metadata.namespace}";
    return NULL;
}

Test(access, every_route_has_a_rule)
{
    cr_assert_gt(NRULES, 0);
    for (size_t i = 0; i < NRULES; i++) {
        const tally_route_rule_t *r = &rules[i];
        cr_expect(r->scope >= TALLY_ROUTE_SCOPE_NONE && r->scope <= TALLY_ROUTE_SCOPE_TOKEN,
                  "%s %s: no scope (%d)", r->method, r->pattern, r->scope);
        cr_expect(r->access >= TALLY_ACCESS_NONE && r->access <= TALLY_ACCESS_INGEST,
                  "%s %s: bad access %d", r->method, r->pattern, r->access);
        cr_expect((r->scope == TALLY_ROUTE_SCOPE_NONE) == (r->access == TALLY_ACCESS_NONE),
                  "%s %s: an open route has scope NONE and access NONE", r->method, r->pattern);
        if (r->scope == TALLY_ROUTE_SCOPE_PATH_NS)
            cr_expect_not_null(ns_param_of(r->pattern),
                               "%s %s: scope PATH_NS but the path names no namespace", r->method,
                               r->pattern);
        /* a path fixing `system` is tenant-wide: no other scope makes sense */
        if (strstr(r->pattern, "/namespaces/system/") && r->scope != TALLY_ROUTE_SCOPE_NONE)
            cr_expect_eq(r->scope, TALLY_ROUTE_SCOPE_TENANT, "%s %s: fixes system, not TENANT",
                         r->method, r->pattern);
        for (size_t k = 0; k < i; k++) {
            cr_expect(strcmp(rules[k].name, r->name) != 0, "two routes are called %s", r->name);
            cr_expect(strcmp(rules[k].method, r->method) != 0 ||
                          strcmp(rules[k].pattern, r->pattern) != 0,
                      "%s %s is in the table twice", r->method, r->pattern);
        }
    }
    /* every operation of the published API has a row (the converse need not
     * hold: /ui has none in the spec) */
    json_t *spec = harness_openapi(H);
    json_t *paths = json_object_get(spec, "paths");
    cr_assert(json_is_object(paths));
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item)
    {
        static const char *const methods[] = {"get", "post", "put", "delete", "patch"};
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            if (!json_object_get(item, methods[m]))
                continue;
            char up[8];
            size_t l = strlen(methods[m]);
            for (size_t c = 0; c <= l; c++)
                up[c] = (char)(c < l ? methods[m][c] - 'a' + 'A' : '\0');
            int found = 0;
            for (size_t i = 0; i < NRULES && !found; i++)
                found = strcmp(rules[i].method, up) == 0 && strcmp(rules[i].pattern, path) == 0;
            cr_expect(found, "%s %s is in daemon/openapi.json but has no access rule", up, path);
        }
    }
    json_decref(spec);
}

/* ---- the matrix ---------------------------------------------------------------------------------- */

/* The path of rule with every {param} filled; ns for the namespace. */
static void
expand(const char *pattern, const char *ns, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < cap;) {
        if (*p != '{') {
            out[o++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        cr_assert_not_null(end, "bad pattern %s", pattern);
        size_t kl = (size_t)(end - p - 1);
        const char *key = p + 1, *v = "acl-x";
#define IS(k) (kl == sizeof(k) - 1 && strncmp(key, k, kl) == 0)
        if (IS("namespace") || IS("metadata.namespace"))
            v = ns;
        else if (IS("metadata.name"))
            v = "acl-q";
        else if (IS("id"))
            v = "acl-1";
        else if (IS("decision"))
            v = "approve";
        else if (IS("action"))
            v = "pay";
#undef IS
        o += (size_t)snprintf(out + o, cap - o, "%s", v);
        if (o >= cap)
            o = cap - 1;
        p = end + 1;
    }
    out[o] = '\0';
}

/* A minimal body: enough to get past the parser, not to succeed. */
static const char *
body_for(const tally_route_rule_t *r, const char *ns, char *buf, size_t cap)
{
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "DELETE") == 0)
        return NULL;
    if (r->scope == TALLY_ROUTE_SCOPE_EVENT)
        return "[]";
    if (strstr(r->pattern, "{metadata.namespace}")) {
        snprintf(buf, cap, "{\"metadata\":{\"name\":\"acl-q\",\"namespace\":\"%s\"},\"spec\":{}}",
                 ns);
        return buf;
    }
    return "{}";
}

enum { E_401, E_403, E_ALLOWED };

/* The expected outcome of token t (NULL: none) on rule r with path namespace ns. */
static int
expect_of(const tally_route_rule_t *r, const tok_t *t, const char *ns)
{
    switch (r->scope) {
    case TALLY_ROUTE_SCOPE_NONE:
        return E_ALLOWED;
    case TALLY_ROUTE_SCOPE_EVENT:
        /* the door takes emitter credentials only; the scope is per event */
        return t && t->role == TALLY_ROLE_EMITTER ? E_ALLOWED : E_401;
    }
    /* API token routes: emitters hold no API token */
    if (!t || t->role == TALLY_ROLE_EMITTER)
        return E_401;
    /* TOKEN routes answer any API token about itself */
    if (r->scope == TALLY_ROUTE_SCOPE_TOKEN)
        return E_ALLOWED;
    const char *checked = r->scope == TALLY_ROUTE_SCOPE_TENANT ? "system" : ns;
    return may(t, checked, r->access) ? E_ALLOWED : E_403;
}

static const char *const expect_text[] = {"401", "403", "not 401/403/5xx"};

Test(access, matrix_from_the_route_table)
{
    int failures = 0, cells = 0;
    /* column 0 is "no token" */
    for (size_t i = 0; i < NRULES; i++) {
        const tally_route_rule_t *r = &rules[i];
        size_t nns = ns_param_of(r->pattern) ? 3 : 1;
        for (size_t g = 0; g < nns; g++) {
            /* a path without a namespace parameter: the namespace it fixes, if any */
            const char *ns = nns == 3 ? path_namespaces[g]
                             : strstr(r->pattern, "/namespaces/system/") ? "system"
                                                                          : NULL;
            char path[512], buf[256];
            expand(r->pattern, ns ? ns : "", path, sizeof path);
            const char *body = body_for(r, ns ? ns : "", buf, sizeof buf);
            for (size_t k = 0; k <= NTOKS; k++) {
                const tok_t *t = k ? &toks[k - 1] : NULL;
                int want = expect_of(r, t, ns ? ns : "");
                harness_resp_t res;
                harness_http(H, r->method, path, t ? t->secret : NULL, body, &res);
                int st = res.status;
                int ok = want == E_401   ? st == 401
                         : want == E_403 ? st == 403
                                         : st != 401 && st != 403 && st < 500;
                if (!ok) {
                    failures++;
                    cr_log_error("%s %s as %s (%s, %s): %d, expected %s (rule %s: access %d, "
                                 "scope %d): %.200s",
                                 r->method, path, t ? t->name : "no token",
                                 t ? tally__role_name(t->role) : "-", t ? t->namespaces : "-", st,
                                 expect_text[want], r->name, r->access, r->scope,
                                 res.body ? res.body : "");
                }
                harness_resp_free(&res);
                cells++;
            }
        }
    }
    cr_log_info("access matrix: %zu routes, %d cells, %d wrong", NRULES, cells, failures);
    cr_assert_eq(failures, 0, "%d of %d cells answered against the route table (see the log)",
                 failures, cells);
}

/* ---- /metrics ------------------------------------------------------------------------------------- */

static char *
scrape(const tok_t *t)
{
    harness_resp_t r;
    harness_http(H, "GET", "/metrics", t ? t->secret : NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "/metrics as %s: %d", t ? t->name : "no token", r.status);
    char *body = strdup(r.body ? r.body : "");
    harness_resp_free(&r);
    return body;
}

#define RATIO_A "tally_quota_utilization_ratio{namespace=\"ns-a\",key=\"http_requests\"}"
#define RATIO_B "tally_quota_utilization_ratio{namespace=\"ns-b\",key=\"http_requests\"}"

Test(access, metrics_show_namespace_series_only_to_tokens_that_may_read_them)
{
    static const char *const nss[] = {"ns-a", "ns-b"};
    for (size_t i = 0; i < 2; i++) {
        char path[128], body[256];
        snprintf(path, sizeof path, "/api/web/namespaces/%s/quotas", nss[i]);
        snprintf(body, sizeof body,
                 "{\"metadata\":{\"name\":\"acl-util\",\"namespace\":\"%s\"},\"spec\":"
                 "{\"resource_limits\":{\"http_requests\":{\"maximum\":100}}}}",
                 nss[i]);
        int st;
        json_decref(harness_post_json(H, path, ADMIN->secret, body, &st));
        cr_assert(st >= 200 && st < 300, "create quota in %s: %d", nss[i], st);
        harness_emit(H, nss[i], "http_requests", 10, 0, NULL);
    }
    harness_flush(H);
    /* the admin sees both once the alerter has evaluated them */
    char *adm = NULL;
    int64_t t0 = harness_now_ms();
    for (;;) {
        free(adm);
        adm = scrape(ADMIN);
        if (strstr(adm, RATIO_A) && strstr(adm, RATIO_B))
            break;
        cr_assert(harness_now_ms() - t0 < 20000,
                  "no utilization of ns-a and ns-b for the admin within 20 s:\n%s", adm);
        usleep(200 * 1000);
    }
    free(adm);
    /* anonymous: the daemon's figures, no namespace */
    char *anon = scrape(NULL);
    cr_expect(strstr(anon, "tally_uptime_seconds ") != NULL, "anonymous scrape lacks uptime");
    cr_expect(strstr(anon, "# TYPE tally_quota_utilization_ratio gauge") != NULL,
              "the family is described even when empty");
    cr_expect(strstr(anon, "namespace=") == NULL, "an anonymous scrape shows a namespace:\n%s",
              anon);
    free(anon);
    /* a viewer of ns-a: ns-a only */
    char *va = scrape(VIEWER_A);
    cr_expect(strstr(va, RATIO_A) != NULL, "the ns-a viewer does not see ns-a:\n%s", va);
    cr_expect(strstr(va, "namespace=\"ns-b\"") == NULL, "the ns-a viewer sees ns-b:\n%s", va);
    free(va);
    /* an invalid token is an anonymous scrape, not a 401 (the route is open) */
    harness_resp_t r;
    harness_http(H, "GET", "/metrics", "not-a-token", NULL, &r);
    cr_expect_eq(r.status, 200);
    cr_expect(r.body && strstr(r.body, "namespace=") == NULL,
              "an invalid token sees a namespace");
    harness_resp_free(&r);
}
