/* routes.c — the route table, path matching, authentication and access checks, and HTTP metrics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apilimit.h"
#include "log.h"
#include "quota.h"
#include "routes.h"
#include "timeutil.h"

/* A row of TALLY_ROUTES (routes.h): its rule, and what the dispatcher needs
 * besides. The checked namespace is derived from rule.scope, never stored
 * beside it, so the table cannot say one thing and the dispatcher do another. */
typedef struct route {
    tally_route_rule_t rule;
    int method; /**< TALLY_HTTP_* */
    tally_route_fn fn;
} route_t;

#define ROUTE(m, pattern, fn, access, scope, name)                                                 \
    {{#m, pattern, TALLY_ACCESS_##access, TALLY_ROUTE_SCOPE_##scope, name}, TALLY_HTTP_##m, fn},

static const route_t routes[] = {TALLY_ROUTES(ROUTE)};
#undef ROUTE

/* What the compiler can check of each row: an open route (no token read) is
 * exactly one of access NONE, and the emitters' door exactly the one of
 * access INGEST. Whether a PATH_NS pattern has a namespace parameter is a
 * string question: route_ns_param() asserts it, the access test checks it. */
#define CHECK_ROW(m, pattern, fn, access, scope, name)                                             \
    _Static_assert((TALLY_ACCESS_##access == TALLY_ACCESS_NONE) ==                                 \
                       (TALLY_ROUTE_SCOPE_##scope == TALLY_ROUTE_SCOPE_NONE),                      \
                   "route " name ": scope NONE if and only if access NONE");                       \
    _Static_assert((TALLY_ACCESS_##access == TALLY_ACCESS_INGEST) ==                               \
                       (TALLY_ROUTE_SCOPE_##scope == TALLY_ROUTE_SCOPE_EVENT),                     \
                   "route " name ": scope EVENT if and only if access INGEST");
TALLY_ROUTES(CHECK_ROW)
#undef CHECK_ROW

#define NROUTES (sizeof routes / sizeof routes[0])

size_t
tally_routes_count(void)
{
    return NROUTES;
}

const tally_route_rule_t *
tally_routes_rule(size_t i)
{
    return i < NROUTES ? &routes[i].rule : NULL;
}

/* ---- metrics -------------------------------------------------------------- */

/* Each code's label tail and each bucket's, as literals, so a sample line of
 * /metrics is three memcpy and the digits (see prom.h for why it matters). */
#define LIT(s) "" s, sizeof(s) - 1
#define CODE(c) c, LIT("\",code=\"" #c "\"} ")
static const struct {
    int code;
    const char *tail;
    size_t tail_len;
} status_codes[] = {{CODE(200)},
                    {CODE(201)},
                    {CODE(204)},
                    {CODE(400)},
                    {CODE(401)},
                    {CODE(403)},
                    {CODE(404)},
                    {CODE(405)},
                    {CODE(409)},
                    {CODE(413)},
                    {CODE(414)},
                    {CODE(429)},
                    {CODE(431)},
                    {CODE(500)},
                    {CODE(501)},
                    {CODE(503)},
                    {0, LIT("\",code=\"other\"} ")}};
#undef CODE
#define NSTATUS (sizeof status_codes / sizeof status_codes[0])
/* durations are counted in integer nanoseconds (uv_hrtime's unit): observing
 * needs no floating point and the sum is shown exactly */
#define BUCKET(ns, le) ns, LIT("\",le=\"" le "\"} ")
static const struct {
    uint64_t ns;
    const char *tail;
    size_t tail_len;
} dur_buckets[] = {
    {BUCKET(100000, "0.0001")},  {BUCKET(250000, "0.00025")}, {BUCKET(500000, "0.0005")},
    {BUCKET(1000000, "0.001")},  {BUCKET(2500000, "0.0025")}, {BUCKET(5000000, "0.005")},
    {BUCKET(10000000, "0.01")},  {BUCKET(25000000, "0.025")}, {BUCKET(50000000, "0.05")},
    {BUCKET(100000000, "0.1")},  {BUCKET(250000000, "0.25")}, {BUCKET(1000000000, "1")},
    {BUCKET(UINT64_MAX, "+Inf")}};
#undef BUCKET
#undef LIT
/* the last bucket is +Inf: observe() always finds one */
#define NDUR (sizeof dur_buckets / sizeof dur_buckets[0])

/* index NROUTES counts requests that matched no route */
static uint64_t req_count[NROUTES + 1][NSTATUS];
static uint64_t req_dur[NROUTES + 1][NDUR];
static uint64_t req_dur_ns[NROUTES + 1];
static uint64_t req_total[NROUTES + 1]; /* lets a scrape skip the routes never asked for */

static void
observe(size_t route, int status, uint64_t ns)
{
    size_t si = NSTATUS - 1;
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (status_codes[i].code == status) {
            si = i;
            break;
        }
    req_count[route][si]++;
    size_t b = 0;
    while (ns > dur_buckets[b].ns)
        b++;
    req_dur[route][b]++;
    req_dur_ns[route] += ns;
    req_total[route]++;
}

void
tally_routes_observe(void *ctx, const char *route, int status, uint64_t ns)
{
    (void)ctx;
    /* route is what tally_routes_dispatch() put in res->route: a pointer into
     * the table, or NULL for a path that matched no route ("none"). Names are
     * unique, so comparing pointers finds it; the text is compared only for a
     * name from elsewhere, which is counted under its route or else "none". */
    size_t r = 0;
    while (r < NROUTES && routes[r].rule.name != route)
        r++;
    if (r == NROUTES && route)
        for (r = 0; r < NROUTES && strcmp(routes[r].rule.name, route) != 0; r++)
            ;
    observe(r, status, ns);
}

void
tally_routes_metrics(tally_prom_t *p)
{
    /* only (route, code) pairs and routes that were ever answered: the full
     * cross product would be some 600 lines of zeros */
    TALLY_PROM_RAW(p, "# HELP tally_http_requests_total HTTP requests answered, by route and "
                      "status code.\n# TYPE tally_http_requests_total counter\n");
    for (size_t r = 0; r <= NROUTES; r++) {
        if (!req_total[r])
            continue;
        const char *name = r < NROUTES ? routes[r].rule.name : "none";
        size_t nl = strlen(name);
        for (size_t s = 0; s < NSTATUS; s++) {
            if (!req_count[r][s])
                continue;
            TALLY_PROM_RAW(p, "tally_http_requests_total{route=\"");
            tally_prom_raw(p, name, nl);
            tally_prom_raw(p, status_codes[s].tail, status_codes[s].tail_len);
            tally_prom_end_u64(p, req_count[r][s]);
        }
    }
    TALLY_PROM_RAW(p, "# HELP tally_http_request_duration_seconds Time to handle a request, by "
                      "route.\n# TYPE tally_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= NROUTES; r++) {
        uint64_t cum = 0, total = req_total[r];
        if (!total)
            continue;
        const char *name = r < NROUTES ? routes[r].rule.name : "none";
        size_t nl = strlen(name);
        for (size_t b = 0; b < NDUR; b++) {
            cum += req_dur[r][b];
            TALLY_PROM_RAW(p, "tally_http_request_duration_seconds_bucket{route=\"");
            tally_prom_raw(p, name, nl);
            tally_prom_raw(p, dur_buckets[b].tail, dur_buckets[b].tail_len);
            tally_prom_end_u64(p, cum);
        }
        TALLY_PROM_RAW(p, "tally_http_request_duration_seconds_sum{route=\"");
        tally_prom_raw(p, name, nl);
        TALLY_PROM_RAW(p, "\"} ");
        tally_prom_end_fixed(p, req_dur_ns[r], 9);
        TALLY_PROM_RAW(p, "tally_http_request_duration_seconds_count{route=\"");
        tally_prom_raw(p, name, nl);
        TALLY_PROM_RAW(p, "\"} ");
        tally_prom_end_u64(p, total);
    }
}

/* ---- matching ------------------------------------------------------------- */

/* Match path against pattern; fill params. Segments: literal or {name}. */
static int
match(const char *pattern, const char *path, tally_http_req_t *req, char *scratch, size_t cap)
{
    const char *p = pattern, *s = path;
    size_t used = 0;
    req->nparams = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), sl = se ? (size_t)(se - s) : strlen(s);
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0 || req->nparams >= TALLY_HTTP_MAX_PARAMS || used + sl + pl + 2 > cap)
                return 0;
            char *val = scratch + used;
            memcpy(val, s, sl);
            val[sl] = '\0';
            used += sl + 1;
            char *nm = scratch + used;
            memcpy(nm, p + 1, pl - 2);
            nm[pl - 2] = '\0';
            used += pl - 1;
            req->params[req->nparams] = val;
            req->param_names[req->nparams] = nm;
            req->nparams++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return 0;
        }
        p += pl;
        s += sl;
    }
    return *p == '\0' && *s == '\0';
}

const char *
tally_route_param(const tally_http_req_t *req, const char *name)
{
    for (int i = 0; i < req->nparams; i++)
        if (strcmp(req->param_names[i], name) == 0)
            return req->params[i];
    return NULL;
}

const tally__token_t *
tally_route_token(const tally_http_req_t *req)
{
    return req->user;
}

json_t *
tally_route_body_json(const tally_http_req_t *req, tally_http_res_t *res)
{
    if (req->body_len == 0)
        return json_object();
    json_error_t e;
    json_t *v = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!v) {
        tally_http_error(res, 400, "EBADINPUT", "request body is not valid JSON: %s at line %d column %d",
                         e.text, e.line, e.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        tally_http_error(res, 400, "EBADINPUT", "request body must be a JSON object");
        return NULL;
    }
    return v;
}

void
tally_route_json(tally_http_res_t *res, int status, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!s) {
        tally_http_error(res, 500, "EINTERNAL", "could not render the response");
        return;
    }
    tally_http_take_body(res, status, "application/json", s, strlen(s));
}


/* ---- api_limits ----------------------------------------------------------
 * The quota's api_limits, enforced per (token, namespace, operation) after
 * the per-token rate check. One table per tally_ctx_t, handed to the fetch
 * callback as its context (the loop thread is the only caller), made at first
 * use and freed by tally_routes_release(). */

#define APILIMIT_BUCKETS 16384
#define APILIMIT_NAMESPACES 1024
#define APILIMIT_REFRESH_MS 1000 /* quota writes and plan changes apply within 1 s */

static int
fetch_api_limits(void *vctx, const char *ns, tally__quota_api_limit_t **out, size_t *n)
{
    tally_ctx_t *ctx = vctx;
    tally__quota_limits_t l = {0};
    *out = NULL;
    *n = 0;
    int rc = tally__quota_effective(ctx->store, ctx->plans, ctx->cfg->billing.default_plan, ns, &l);
    if (rc)
        return rc;
    if (l.napis) {
        *out = malloc(l.napis * sizeof **out);
        if (!*out) {
            tally__quota_limits_free(&l);
            return -ENOMEM;
        }
        memcpy(*out, l.apis, l.napis * sizeof **out);
        *n = l.napis;
    }
    tally__quota_limits_free(&l);
    return 0;
}

void
tally_routes_release(tally_ctx_t *ctx)
{
    tally__apilimit_destroy(ctx->apilimits);
    ctx->apilimits = NULL;
}

/* 1 when the route's api_limit (if any) lets this request through. */
static int
api_limit_allows(tally_ctx_t *ctx, const tally__token_t *tok, const char *ns, const char *op,
                 uint32_t *retry, tally__quota_api_limit_t *lim)
{
    if (!ctx->apilimits) {
        tally__apilimit_opts_t o = {.max_buckets = APILIMIT_BUCKETS,
                                    .max_namespaces = APILIMIT_NAMESPACES,
                                    .refresh_ms = APILIMIT_REFRESH_MS,
                                    .fetch = fetch_api_limits,
                                    .fetch_ctx = ctx};
        if (tally__apilimit_create(&o, &ctx->apilimits) != 0)
            return 1; /* out of memory: unlimited rather than unavailable */
    }
    return tally__apilimit_check(ctx->apilimits, tally__token_name(tok), ns, op, tally__time_mono_ms(),
                                 retry, lim);
}

static const char *
method_name(int m)
{
    switch (m) {
    case TALLY_HTTP_GET:
        return "GET";
    case TALLY_HTTP_POST:
        return "POST";
    case TALLY_HTTP_PUT:
        return "PUT";
    case TALLY_HTTP_DELETE:
        return "DELETE";
    default:
        return "this method";
    }
}

/* The parameter of rule's pattern that holds the path's namespace, or NULL
 * (a path that fixes `system`, or none). A PATH_NS rule without one would
 * check nothing: a broken table, caught here at the first request. */
static const char *
route_ns_param(const tally_route_rule_t *rule)
{
    const char *p = NULL;
    if (strstr(rule->pattern, "/{namespace}"))
        p = "namespace";
    else if (strstr(rule->pattern, "/{metadata.namespace}"))
        p = "metadata.namespace";
    TALLY_ASSERT(p || rule->scope != TALLY_ROUTE_SCOPE_PATH_NS);
    return p;
}

void
tally_routes_dispatch(void *vctx, tally_http_req_t *req, tally_http_res_t *res)
{
    tally_ctx_t *ctx = vctx;
    char scratch[1024];
    size_t found = NROUTES;
    int path_matched = 0;
    /* each pattern's literal head (up to its first {param}): a path that
     * does not start with it cannot match, and most routes are skipped by
     * that one comparison. Computed once; the table is static. */
    static size_t head_len[NROUTES];
    static const char *ns_params[NROUTES];
    static int heads_known;
    if (!heads_known) {
        for (size_t i = 0; i < NROUTES; i++) {
            head_len[i] = strcspn(routes[i].rule.pattern, "{");
            ns_params[i] = route_ns_param(&routes[i].rule);
        }
        heads_known = 1;
    }
    for (size_t i = 0; i < NROUTES; i++) {
        if (strncmp(req->path, routes[i].rule.pattern, head_len[i]) != 0 ||
            !match(routes[i].rule.pattern, req->path, req, scratch, sizeof scratch))
            continue;
        path_matched = 1;
        if (routes[i].method == req->method) {
            found = i;
            break;
        }
    }
    if (found == NROUTES) {
        if (path_matched)
            tally_http_error(res, 405, "EBADINPUT", "%s is not allowed on %s",
                             method_name(req->method), req->path);
        else
            tally_http_error(res, 404, "ENOTFOUND", "no such endpoint: %s", req->path);
        return;
    }
    const route_t *r = &routes[found];
    const tally_route_rule_t *rule = &r->rule;
    res->route = rule->name;
    if (rule->scope == TALLY_ROUTE_SCOPE_EVENT) {
        /* emitters: their own credential, no API token; every event's
         * namespace is checked by the handler; back-pressure, not a rate
         * limit, bounds them */
        const tally__token_t *tok =
            ctx->tokens ? tally__tokens_authenticate_emitter(ctx->tokens, req->authorization)
                        : NULL;
        if (!tok) {
            tally_http_error(res, 401, "EUNAUTHENTICATED",
                             req->authorization
                                 ? "invalid emitter credential"
                                 : "missing 'Authorization: Bearer NAME:SECRET' header (an "
                                   "emitter credential from tallyctl keygen)");
            return;
        }
        req->user = (void *)tok;
    } else if (rule->scope != TALLY_ROUTE_SCOPE_NONE) {
        const tally__token_t *tok =
            ctx->tokens ? tally__tokens_authenticate(ctx->tokens, req->authorization) : NULL;
        if (!tok) {
            tally_http_error(res, 401, "EUNAUTHENTICATED",
                             req->authorization ? "invalid API token"
                                                : "missing 'Authorization: APIToken <token>' header");
            return;
        }
        req->user = (void *)tok;
        /* the namespace the rule is checked in comes from the scope alone */
        const char *path_ns = ns_params[found] ? tally_route_param(req, ns_params[found]) : NULL;
        const char *ns = rule->scope == TALLY_ROUTE_SCOPE_TENANT ? "system" : path_ns;
        const char *verb = rule->access == TALLY_ACCESS_READ    ? "read"
                           : rule->access == TALLY_ACCESS_WRITE ? "write"
                                                                : "administer";
        /* TOKEN routes answer about the token itself; their handler filters */
        if (rule->scope != TALLY_ROUTE_SCOPE_TOKEN &&
            (!ns || !tally__token_allows(tok, ns, rule->access))) {
            if (rule->scope == TALLY_ROUTE_SCOPE_TENANT)
                tally_http_error(res, 403, "EPERMS",
                                 "%s is tenant-wide: token '%s' may not %s in namespace 'system'",
                                 rule->name, tally__token_name(tok), verb);
            else
                tally_http_error(res, 403, "EPERMS", "token '%s' may not %s in namespace '%s'",
                                 tally__token_name(tok), verb, ns ? ns : "?");
            return;
        }
        uint32_t retry;
        if (!tally__token_rate_take(ctx->tokens, tok, tally__time_mono_ms(),
                                    ctx->cfg->http.rate_per_token, ctx->cfg->http.rate_burst,
                                    &retry)) {
            res->retry_after = retry;
            tally_http_error(res, 429, "ETOOMANY",
                             "request rate of token '%s' exceeds http.rate_per_token",
                             tally__token_name(tok));
            return;
        }
        /* api_limits belong to a namespace's quota: the path's namespace
         * when it names one, else the tenant's (system) */
        const char *limit_ns = path_ns ? path_ns : ns ? ns : "system";
        tally__quota_api_limit_t lim;
        if (!api_limit_allows(ctx, tok, limit_ns, rule->name, &retry, &lim)) {
            res->retry_after = retry;
            tally_http_error(res, 429, "ETOOMANY",
                             "token '%s' exceeds the api_limits of '%s' in namespace '%s' "
                             "(%u per %d s, burst %u)",
                             tally__token_name(tok), rule->name, limit_ns, lim.rate, lim.unit_s,
                             lim.burst);
            return;
        }
    }
    r->fn(ctx, req, res);
    /* a deferring handler leaves res empty: its answer comes through
     * tally_http_complete(), and the server reports it to the observer then */
    if (!res->status && !tally_http_deferred(req))
        tally_http_error(res, 500, "EINTERNAL", "handler produced no response");
}

/* ---- helpers shared by the handlers ---------------------------------------- */

void
tally_route_respond(tally_http_res_t *res, tally__jw_t *w)
{
    size_t len;
    char *text = tally__jw_take(w, &len);
    if (!text) {
        tally_http_error(res, 500, "EINTERNAL", "out of memory rendering the response");
        return;
    }
    tally_http_take_body(res, 200, "application/json", text, len);
}

void
tally_route_put_time(tally__jw_t *w, int64_t unix_s)
{
    /* most timestamps of a response are a window's two ends; the loop
     * thread is the only caller */
    static int64_t memo_s[2] = {INT64_MIN, INT64_MIN};
    static char memo[2][TALLY_TIME_RFC3339_LEN];
    static int next;
    static size_t memo_len[2];
    for (int i = 0; i < 2; i++)
        if (memo_s[i] == unix_s) {
            tally__jw_str_plain(w, memo[i], memo_len[i]);
            return;
        }
    next ^= 1;
    memo_s[next] = unix_s;
    memo_len[next] = tally__time_format_rfc3339(unix_s, memo[next], sizeof memo[next]);
    tally__jw_str_plain(w, memo[next], memo_len[next]);
}

void
tally_route_fail(tally_http_res_t *res, int rc, const char *msg, const char *what)
{
    const char *m = msg && msg[0] ? msg : NULL;
    switch (rc) {
    case TALLY_EINVAL:
        tally_http_error(res, 400, "EBADINPUT", "%s", m ? m : "invalid request");
        break;
    case -EPERM:
        tally_http_error(res, 403, "EPERMS", "%s", m ? m : "not allowed");
        break;
    case TALLY_ENOTFOUND:
        tally_http_error(res, 404, "ENOTFOUND", "%s", m ? m : "not found");
        break;
    case TALLY_EEXISTS:
        tally_http_error(res, 409, "EEXISTS", "%s", m ? m : "already exists");
        break;
    case TALLY_EBUSY:
        tally_http_error(res, 409, "ECONFLICT", "%s", m ? m : "conflicts with the current state");
        break;
    case TALLY_EMAPFULL:
        tally_http_error(res, 503, "EUNAVAILABLE", "the store is full; retry later");
        break;
    default:
        tally__log_error("\"%s failed\" err=\"%s\"", what, tally_strerror(rc));
        tally_http_error(res, 500, "EINTERNAL", "%s failed: %s", what, tally_strerror(rc));
        break;
    }
}

int
tally_route_body_ns(json_t *body, const char *path_ns, tally_http_res_t *res)
{
    json_t *v = json_object_get(body, "namespace");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        tally_http_error(res, 400, "EBADINPUT", "namespace: must be a string");
        return -1;
    }
    const char *s = json_string_value(v);
    if (s[0] && strcmp(s, path_ns) != 0) {
        tally_http_error(res, 400, "EBADINPUT",
                         "namespace: '%.64s' differs from the namespace of the path '%s'", s,
                         path_ns);
        return -1;
    }
    return 0;
}

int
tally_route_body_time(json_t *body, const char *key, int syntax, int64_t *ms,
                      tally_http_res_t *res)
{
    const char *want = syntax == TALLY_ROUTE_TIME_RFC3339 ? "an RFC 3339 date-time"
                                                          : "unix seconds or an RFC 3339 date-time";
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        tally_http_error(res, 400, "EBADINPUT", "%s: must be a string (%s)", key, want);
        return -1;
    }
    const char *s = json_string_value(v);
    if (!s[0])
        return 0;
    int rc = syntax == TALLY_ROUTE_TIME_RFC3339 ? tally__time_parse_rfc3339(s, ms)
                                                : tally__time_parse_any(s, ms);
    if (rc != 0) {
        tally_http_error(res, 400, "EBADINPUT", "%s: not %s: '%.64s'", key, want, s);
        return -1;
    }
    return 1;
}
