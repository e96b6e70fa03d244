/* test_isolation.c — end-to-end namespace isolation: a matrix generated from daemon/openapi.json and the route table's rules (daemon/routes.h, plus tally's admin routes) proving demo-scoped tokens can neither read nor change namespace `other` or tenant-wide (`system`) objects, and that no response to them leaks another namespace's data. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define EDITOR HARNESS_DEMO_EDITOR_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN

/* Markers of the data seeded into namespace `other`: no response to a demo
 * token may contain one unless the request itself carried it. */
#define SECRET_QUOTA "isosecretq"
#define SECRET_LABEL "isosecretlabel"
#define SECRET_OBJECT "isosecretobj"
#define SECRET_PM_TOKEN "tok_isosecret"
#define SECRET_VALUE 987654321
#define SECRET_VALUE_S "987654321"

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

/* Valgrind (tests/valgrind.sh) makes every request far slower. */
TestSuite(isolation, .init = setup, .fini = teardown, .timeout = 900);

/* ---- the operations -------------------------------------------------------------------------- */

enum kind {
    K_NS,     /* the path holds the namespace */
    K_SYSTEM, /* the path fixes namespace system (tenant-wide) */
    K_ADMIN,  /* tally's own admin routes, fixed system, admin only */
    K_OPEN,   /* open by design: no token needed */
};

/* What the test knows about an operation beyond the spec, whether it
 * writes and whether it is tenant-wide even under a namespace path, comes
 * from the route table (daemon/routes.h): its rows are expanded here
 * without their handlers. */
#include "../../daemon/routes.h"

#define RULE(m, pattern, fn, access, scope, name)                                                  \
    {#m, pattern, TALLY_ACCESS_##access, TALLY_ROUTE_SCOPE_##scope, name},
static const tally_route_rule_t known[] = {TALLY_ROUTES(RULE)};
#undef RULE
#define NKNOWN (sizeof known / sizeof known[0])

typedef struct op {
    char method[8];
    char path[160];
    enum kind kind;
    int write;
    int tenant_wide;
} op_t;

static enum kind
kind_of(const char *path)
{
    if (strncmp(path, "/no_auth/", 9) == 0 || strncmp(path, "/api/", 5) != 0)
        return K_OPEN;
    if (strncmp(path, "/api/tally/", 11) == 0)
        return K_ADMIN;
    if (strstr(path, "{namespace}") || strstr(path, "{metadata.namespace}"))
        return K_NS;
    return K_SYSTEM;
}

/* Every operation of the spec (each must be in known[]), then extra[]. */
static size_t
load_ops(op_t *ops, size_t cap, size_t *napi_paths, size_t *napi_ops)
{
    json_t *spec = harness_openapi(H);
    json_t *paths = json_object_get(spec, "paths");
    cr_assert(json_is_object(paths));
    *napi_paths = *napi_ops = 0;
    size_t n = 0;
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item)
    {
        /* the product API, without tally's own admin and operations routes */
        int api = strncmp(path, "/api/tally/", 11) != 0 && kind_of(path) != K_OPEN;
        /* tally's extensions under /api/web (credit_note_pdf) are probed, not counted */
        json_t *any = json_object_get(item, "get") ? json_object_get(item, "get")
                                                   : json_object_get(item, "post");
        const char *opid = json_string_value(json_object_get(any, "operationId"));
        int extension = opid && strncmp(opid, "tally.", 6) == 0;
        if ((api && !extension) || strncmp(path, "/no_auth/", 9) == 0)
            ++*napi_paths;
        static const char *const methods[] = {"get", "post", "put", "delete", "patch"};
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            if (!json_object_get(item, methods[m]))
                continue;
            cr_assert(n < cap);
            op_t *o = &ops[n++];
            if ((api && !extension) || strncmp(path, "/no_auth/", 9) == 0)
                ++*napi_ops;
            for (size_t i = 0; methods[m][i]; i++)
                o->method[i] = (char)(methods[m][i] - 'a' + 'A');
            o->method[strlen(methods[m])] = '\0';
            snprintf(o->path, sizeof o->path, "%s", path);
            o->kind = kind_of(path);
            const tally_route_rule_t *k = NULL;
            for (size_t i = 0; i < NKNOWN; i++)
                if (strcmp(known[i].method, o->method) == 0 && strcmp(known[i].pattern, path) == 0)
                    k = &known[i];
            cr_assert_not_null(k,
                               "%s %s is in the spec but not in the route table (daemon/routes.h)",
                               o->method, path);
            o->write = k->access >= TALLY_ACCESS_WRITE;
            o->tenant_wide = k->scope == TALLY_ROUTE_SCOPE_TENANT;
        }
    }
    json_decref(spec);
    return n;
}

/* Replace every "{key}" of pattern with its value. */
static void
expand(const char *pattern, const char *ns, const char *name, char *out, size_t cap)
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
        const char *v = "x";
        if ((kl == 9 && strncmp(p + 1, "namespace", 9) == 0) ||
            (kl == 18 && strncmp(p + 1, "metadata.namespace", 18) == 0))
            v = ns;
        else if ((kl == 4 && strncmp(p + 1, "name", 4) == 0) ||
                 (kl == 13 && strncmp(p + 1, "metadata.name", 13) == 0))
            v = name;
        else if (kl == 2 && strncmp(p + 1, "id", 2) == 0)
            v = "1";
        else if (kl == 8 && strncmp(p + 1, "decision", 8) == 0)
            v = "approve";
        else if (kl == 6 && strncmp(p + 1, "action", 6) == 0)
            v = "pay";
        o += (size_t)snprintf(out + o, cap - o, "%s", v);
        if (o >= cap)
            o = cap - 1;
        p = end + 1;
    }
    out[o] = '\0';
}

/* A plausible body for op in namespace ns (object name `name`): well-formed
 * enough that a missing access check would let it do something. */
static void
body_for(const op_t *op, const char *ns, const char *name, char *out, size_t cap)
{
    if (strcmp(op->method, "GET") == 0 || strcmp(op->method, "DELETE") == 0) {
        out[0] = '\0';
        return;
    }
    if (strstr(op->path, "/quotas"))
        snprintf(out, cap,
                 "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},\"spec\":{\"object_limits\":"
                 "{\"lb_count\":{\"maximum\":1}}}}",
                 name, ns);
    else if (strstr(op->path, "/payment_methods"))
        snprintf(out, cap, "{\"token\":\"tok_iso_%s\"}", ns);
    else if (strstr(op->path, "/invoices/close"))
        snprintf(out, cap, "{\"month\":\"2020-01\"}");
    else if (op->kind == K_NS)
        snprintf(out, cap, "{\"namespace\":\"%s\"}", ns);
    else
        snprintf(out, cap, "{}");
}

/* ---- seeding `other` --------------------------------------------------------------------------- */

static char pm_name[64]; /* the payment method created in `other` */

static void
seed_other(void)
{
    int st;
    json_t *j = harness_post_json(
        H, "/api/web/namespaces/other/quotas", ADMIN,
        "{\"metadata\":{\"name\":\"" SECRET_QUOTA "\",\"namespace\":\"other\",\"labels\":{\"owner\":"
        "\"" SECRET_LABEL "\"}},\"spec\":{\"object_limits\":{\"lb_count\":{\"maximum\":" SECRET_VALUE_S
        "}}}}",
        &st);
    cr_assert(st >= 200 && st < 300, "admin: create quota in other -> %d", st);
    json_decref(j);
    j = harness_post_json(H, "/api/web/namespaces/other/billing/payment_methods", ADMIN,
                          "{\"token\":\"" SECRET_PM_TOKEN "\"}", &st);
    cr_assert(st >= 200 && st < 300, "admin: create payment method in other -> %d", st);
    const char *n = json_string_value(json_object_get(j, "name"));
    cr_assert_not_null(n, "payment method create answered no name");
    snprintf(pm_name, sizeof pm_name, "%s", n);
    json_decref(j);
    harness_emit(H, "other", "http_requests", SECRET_VALUE, 0, "object=" SECRET_OBJECT);
    harness_emit(H, "other", "lb_count", SECRET_VALUE, 0, "object=" SECRET_OBJECT);
    harness_emit(H, "demo", "http_requests", 5, 0, "object=demolb");
    harness_flush(H);
}

/* ---- checks ------------------------------------------------------------------------------------ */

static int failures;

/* Whether text carries a marker of `other`'s data that the request did not. */
static const char *
leaked(const char *text, const char *path, const char *body)
{
    const char *markers[] = {SECRET_QUOTA, SECRET_LABEL, SECRET_OBJECT, SECRET_PM_TOKEN,
                             SECRET_VALUE_S, pm_name[0] ? pm_name : NULL};
    if (!text)
        return NULL;
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++) {
        const char *m = markers[i];
        if (!m || !strstr(text, m))
            continue;
        if (strstr(path, m) || (body && strstr(body, m)))
            continue;
        return m;
    }
    return NULL;
}

static const char *
tok_name(const char *token)
{
    if (strcmp(token, ADMIN) == 0)
        return "admin";
    return strcmp(token, EDITOR) == 0 ? "demo-editor" : "demo-viewer";
}

/* One request; logs and counts a failure when `ok` says the status is wrong or a
 * demo token got `other`'s data. Returns the status. */
static int
probe(const char *method, const char *path, const char *token, const char *body,
      int (*ok)(int status, void *arg), void *arg, const char *expect_text)
{
    harness_resp_t r;
    harness_http(H, method, path, token, body && *body ? body : NULL, &r);
    int st = r.status;
    if (!ok(st, arg)) {
        failures++;
        cr_log_error("%s %s %s (body %s) -> %d, expected %s: %.300s", tok_name(token), method, path,
                     body && *body ? body : "-", st, expect_text, r.body ? r.body : "");
    }
    const char *m = token && strcmp(token, ADMIN) != 0 ? leaked(r.body, path, body) : NULL;
    if (m) {
        failures++;
        cr_log_error("%s %s %s -> %d leaks '%s' of namespace other: %.300s", tok_name(token),
                     method, path, st, m, r.body);
    }
    harness_resp_free(&r);
    return st;
}

static int
is_403(int st, void *arg)
{
    (void)arg;
    return st == 403;
}

/* Let through by the auth layer, and no server error. */
static int
is_allowed(int st, void *arg)
{
    (void)arg;
    return st != 401 && st != 403 && st < 500;
}

static int
is_2xx(int st, void *arg)
{
    (void)arg;
    return st >= 200 && st < 300;
}

static int
is_404(int st, void *arg)
{
    (void)arg;
    return st == 404;
}

static int
is_not_2xx(int st, void *arg)
{
    (void)arg;
    return st >= 400 && st < 500;
}

#define MAXOPS 64

/* ---- the matrix -------------------------------------------------------------------------------- */

Test(isolation, demo_tokens_get_403_on_other_and_system_for_every_operation)
{
    seed_other();
    op_t ops[MAXOPS];
    size_t npaths, nops;
    size_t n = load_ops(ops, MAXOPS, &npaths, &nops);
    cr_assert_eq(npaths, 25, "the spec has %zu API paths, this test was written for 25", npaths);
    cr_assert_eq(nops, 26, "the spec has %zu API operations, this test was written for 26", nops);
    static const char *const tokens[] = {EDITOR, VIEWER};
    static const char *const targets[] = {"other", "system"};
    failures = 0;
    int cells = 0;
    for (size_t i = 0; i < n; i++) {
        const op_t *op = &ops[i];
        for (size_t t = 0; t < 2; t++) {
            char path[512], body[512];
            if (op->kind == K_OPEN) {
                /* open by design: never 401, whoever asks (and no token at all) */
                probe(op->method, op->path, tokens[t], NULL, is_allowed,
                      NULL, "not 401/403/5xx (open route)");
                cells++;
                continue;
            }
            if (op->kind == K_NS) {
                for (size_t g = 0; g < 2; g++) {
                    const char *name = strstr(op->path, "payment_method") ? pm_name : SECRET_QUOTA;
                    expand(op->path, targets[g], name, path, sizeof path);
                    body_for(op, targets[g], name, body, sizeof body);
                    probe(op->method, path, tokens[t], body, is_403, NULL, "403");
                    cells++;
                }
            } else { /* fixed system, admin routes */
                expand(op->path, "system", "inv-2020-01", path, sizeof path);
                body_for(op, "system", "inv-2020-01", body, sizeof body);
                probe(op->method, path, tokens[t], body, is_403, NULL, "403");
                cells++;
            }
        }
    }
    /* the open route needs no token at all */
    harness_resp_t r;
    harness_http(H, "GET", "/no_auth/namespaces/system/billing/plan_transition", NULL, NULL, &r);
    cr_expect(r.status != 401 && r.status != 403 && r.status < 500, "no_auth -> %d", r.status);
    harness_resp_free(&r);

    /* nothing of `other` changed */
    harness_http(H, "GET", "/api/web/namespaces/other/quotas/" SECRET_QUOTA, ADMIN, NULL, &r);
    cr_expect(r.status == 200 && r.body && strstr(r.body, SECRET_LABEL) &&
                  strstr(r.body, SECRET_VALUE_S),
              "the quota of other changed: %d %s", r.status, r.body ? r.body : "(gone)");
    harness_resp_free(&r);
    char path[256];
    snprintf(path, sizeof path, "/api/web/namespaces/other/billing/payment_methods/%s", pm_name);
    probe("DELETE", path, ADMIN, NULL, is_2xx, NULL, "2xx (the method of other still exists)");
    cr_log_info("isolation matrix: %zu operations, %d cells, %d wrong", n, cells, failures);
    cr_assert_eq(failures, 0, "%d of %d cells answered wrongly or leaked (see the log)", failures,
                 cells);
}

Test(isolation, demo_tokens_may_use_demo)
{
    seed_other();
    op_t ops[MAXOPS];
    size_t npaths, nops;
    size_t n = load_ops(ops, MAXOPS, &npaths, &nops);
    failures = 0;
    int cells = 0;
    for (int t = 0; t < 2; t++) {
        const char *token = t ? VIEWER : EDITOR;
        for (size_t i = 0; i < n; i++) {
            const op_t *op = &ops[i];
            if (op->kind != K_NS)
                continue;
            char path[512], body[512];
            expand(op->path, "demo", "isoq-demo", path, sizeof path);
            body_for(op, "demo", "isoq-demo", body, sizeof body);
            /* tenant-wide objects under a namespace path (invoices) need system */
            int (*ok)(int, void *) = is_allowed;
            const char *what = "not 401/403/5xx";
            if (op->tenant_wide || (op->write && strcmp(token, VIEWER) == 0)) {
                ok = is_403;
                what = "403";
            }
            probe(op->method, path, token, body, ok, NULL, what);
            cells++;
        }
    }
    cr_log_info("demo access: %d cells, %d wrong", cells, failures);
    cr_assert_eq(failures, 0, "%d of %d cells answered wrongly (see the log)", failures, cells);
}

Test(isolation, admin_token_works_everywhere)
{
    op_t ops[MAXOPS];
    size_t npaths, nops;
    size_t n = load_ops(ops, MAXOPS, &npaths, &nops);
    static const char *const targets[] = {"demo", "other", "system"};
    failures = 0;
    int cells = 0;
    for (size_t i = 0; i < n; i++) {
        const op_t *op = &ops[i];
        size_t ntargets = op->kind == K_NS ? 3 : 1;
        for (size_t g = 0; g < ntargets; g++) {
            char path[512], body[512];
            const char *ns = op->kind == K_NS ? targets[g] : "system";
            expand(op->path, ns, "isoq-admin", path, sizeof path);
            body_for(op, ns, "isoq-admin", body, sizeof body);
            probe(op->method, path, ADMIN, body, is_allowed, NULL, "not 401/403/5xx");
            cells++;
        }
    }
    cr_log_info("admin access: %d cells, %d wrong", cells, failures);
    cr_assert_eq(failures, 0, "%d of %d cells answered wrongly (see the log)", failures, cells);
}

/* ---- data isolation ---------------------------------------------------------------------------- */

/* The first string value under key `key` anywhere in j. */
static const char *
find_string(json_t *j, const char *key)
{
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (strcmp(k, key) == 0 && json_is_string(v))
                return json_string_value(v);
            const char *s = find_string(v, key);
            if (s)
                return s;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            const char *s = find_string(v, key);
            if (s)
                return s;
        }
    }
    return NULL;
}

Test(isolation, demo_tokens_never_see_data_of_other)
{
    seed_other();
    failures = 0;
    static const char *const tokens[] = {EDITOR, VIEWER};
    /* the admin sees other's usage: a positive control, and the query to replay */
    int st;
    json_t *adm = harness_post_json(H, "/api/web/namespaces/other/usage_details", ADMIN, "{}", &st);
    cr_assert_eq(st, 200);
    char *atxt = json_dumps(adm, JSON_COMPACT);
    cr_assert(atxt && strstr(atxt, SECRET_OBJECT), "admin usage of other lacks the event: %s",
              atxt ? atxt : "");
    free(atxt);
    const char *q = find_string(adm, "hourly_breakdown_query");
    cr_assert_not_null(q, "no hourly_breakdown_query in other's usage");
    char hq[1024];
    snprintf(hq, sizeof hq, "{\"query\":\"%s\"}", q);
    json_decref(adm);

    for (int t = 0; t < 2; t++) {
        const char *tok = tokens[t];
        /* every read of demo answers, without other's data */
        static const char *const reads[][3] = {
            {"POST", "/api/web/namespaces/demo/usage_details", "{}"},
            {"POST", "/api/web/namespaces/demo/usage_details", "{\"namespace\":\"demo\"}"},
            {"POST", "/api/web/namespaces/demo/current_usage", "{}"},
            {"POST", "/api/web/namespaces/demo/monthly_usage", "{}"},
            {"GET", "/api/web/namespaces/demo/quotas", NULL},
            {"GET", "/api/web/namespaces/demo/quotas?report_fields=&report_status=true", NULL},
            {"GET", "/api/web/namespaces/demo/quota/limits", NULL},
            {"GET", "/api/web/namespaces/demo/quota/usage", NULL},
            {"GET", "/no_auth/namespaces/system/billing/plan_transition", NULL},
        };
        for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++)
            probe(reads[i][0], reads[i][1], tok, reads[i][2], is_allowed, NULL,
                  "not 401/403/5xx");
        /* demo's own usage is there (the filter is not just "empty") */
        json_t *mine =
            harness_post_json(H, "/api/web/namespaces/demo/usage_details", tok, "{}", &st);
        char *mtxt = mine ? json_dumps(mine, JSON_COMPACT) : NULL;
        cr_expect(st == 200 && mtxt && strstr(mtxt, "demolb"), "demo usage: %d %s", st,
                  mtxt ? mtxt : "");
        free(mtxt);
        json_decref(mine);
        /* other's objects under demo's path: not found, never served */
        probe("GET", "/api/web/namespaces/demo/quotas/" SECRET_QUOTA, tok, NULL, is_404, NULL,
              "404");
        /* a body naming other under demo's path, and other's hourly query replayed */
        probe("POST", "/api/web/namespaces/demo/usage_details", tok, "{\"namespace\":\"other\"}",
              is_not_2xx, NULL, "4xx");
        probe("POST", "/api/web/namespaces/demo/current_usage", tok, "{\"namespace\":\"other\"}",
              is_not_2xx, NULL, "4xx");
        probe("POST", "/api/web/namespaces/demo/monthly_usage", tok, "{\"namespace\":\"other\"}",
              is_not_2xx, NULL, "4xx");
        probe("POST", "/api/web/namespaces/demo/hourly_usage_details", tok, hq, is_not_2xx, NULL,
              "4xx");
        /* other's data through its own paths: 403 */
        probe("POST", "/api/web/namespaces/other/hourly_usage_details", tok, hq, is_403, NULL,
              "403");
        probe("GET", "/api/web/namespaces/other/quotas", tok, NULL, is_403, NULL, "403");
    }
    /* the editor's writes under demo cannot reach other's objects */
    char path[256];
    probe("DELETE", "/api/web/namespaces/demo/quotas/" SECRET_QUOTA, EDITOR, NULL, is_404, NULL,
          "404");
    probe("PUT", "/api/web/namespaces/demo/quotas/" SECRET_QUOTA, EDITOR,
          "{\"metadata\":{\"name\":\"" SECRET_QUOTA "\",\"namespace\":\"demo\"},\"spec\":{}}",
          is_404, NULL, "404");
    probe("POST", "/api/web/namespaces/demo/quotas", EDITOR,
          "{\"metadata\":{\"name\":\"x1\",\"namespace\":\"other\"},\"spec\":{}}", is_not_2xx, NULL,
          "4xx (body namespace other under demo)");
    static const char *const pm_ops[] = {"primary", "secondary", "swap-primary"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "/api/web/namespaces/demo/billing/payment_method/%s/%s",
                 pm_name, pm_ops[i]);
        probe("POST", path, EDITOR, "{}", is_not_2xx, NULL, "4xx");
    }
    snprintf(path, sizeof path, "/api/web/namespaces/demo/billing/payment_methods/%s", pm_name);
    probe("DELETE", path, EDITOR, NULL, is_not_2xx, NULL, "4xx");
    /* and other still has them */
    probe("GET", "/api/web/namespaces/other/quotas/" SECRET_QUOTA, ADMIN, NULL, is_2xx, NULL,
          "2xx");
    snprintf(path, sizeof path, "/api/web/namespaces/other/billing/payment_methods/%s", pm_name);
    probe("DELETE", path, ADMIN, NULL, is_2xx, NULL, "2xx (the method of other still exists)");
    cr_assert_eq(failures, 0, "%d requests answered wrongly or leaked (see the log)", failures);
}
