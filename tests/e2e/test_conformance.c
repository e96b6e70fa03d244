/* test_conformance.c — end-to-end conformance of tallyd's answers with the OpenAPI document it serves and with the Prometheus text format 0.0.4. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"
#include "netutil.h"
#include "openapi_validate.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN
#define HOUR 3600LL
#define IO_MS 10000

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
}

TestSuite(conformance, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------------------------------ */

/* One request on a new connection; the response in out. */
static void
roundtrip(const char *method, const char *path, const char *token, const char *body,
          nu_resp_t *out)
{
    char *req = nu_request(method, path, token, "Connection: close\r\n", body);
    cr_assert_not_null(req);
    int st = nu_roundtrip(H->port, req, 0, IO_MS, out);
    free(req);
    cr_assert(st > 0, "%s %s: no response (%s)", method, path, strerror(-st));
}

/* The served OpenAPI document, parsed (caller decrefs). */
static json_t *
served_doc(void)
{
    nu_resp_t r;
    roundtrip("GET", "/openapi.json", NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "GET /openapi.json: %d", r.status);
    cr_assert(json_is_object(r.json), "/openapi.json is not a JSON object");
    json_t *doc = json_incref(r.json);
    nu_resp_free(&r);
    return doc;
}

/* "#/paths/<path>/<method>/responses/<status>/content/application~1json/schema", checked to exist. */
static void
response_schema_ptr(json_t *doc, const char *path, const char *method, const char *status,
                    char *ptr, size_t cap)
{
    json_t *op = json_object_get(json_object_get(json_object_get(doc, "paths"), path), method);
    cr_assert(json_is_object(op), "the served document has no %s %s", method, path);
    json_t *schema = json_object_get(
        json_object_get(json_object_get(json_object_get(json_object_get(op, "responses"), status),
                                        "content"),
                        "application/json"),
        "schema");
    cr_assert(json_is_object(schema), "%s %s has no application/json schema for %s", method, path,
              status);
    size_t n = (size_t)snprintf(ptr, cap, "#/paths/");
    for (const char *p = path; *p && n + 3 < cap; p++) {
        if (*p == '/') {
            ptr[n++] = '~';
            ptr[n++] = '1';
        } else if (*p == '~') {
            ptr[n++] = '~';
            ptr[n++] = '0';
        } else {
            ptr[n++] = *p;
        }
    }
    ptr[n] = '\0';
    snprintf(ptr + n, cap - n, "/%s/responses/%s/content/application~1json/schema", method, status);
}

/* A 200 of method path validated strictly against the operation's 200 schema; returns the body. */
static json_t *
validated_200(json_t *doc, const char *spec_path, const char *method, const char *path,
              const char *token, const char *body)
{
    nu_resp_t r;
    char ptr[512], err[512];
    char upper[16];
    snprintf(upper, sizeof upper, "%s", method);
    for (char *p = upper; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    roundtrip(upper, path, token, body, &r);
    if (r.status != 200)
        cr_log_error("%s %s %s -> %d %s", upper, path, body ? body : "", r.status, r.body);
    cr_assert_eq(r.status, 200, "%s %s: %d", upper, path, r.status);
    cr_assert_not_null(r.json, "%s %s: the body is not JSON", upper, path);
    char ct[128];
    cr_assert(nu_resp_header(&r, "Content-Type", ct, sizeof ct));
    cr_assert(strncmp(ct, "application/json", 16) == 0, "%s %s: Content-Type %s", upper, path, ct);
    response_schema_ptr(doc, spec_path, method, "200", ptr, sizeof ptr);
    int rc = openapi_validate_strict(doc, ptr, r.json, err, sizeof err);
    if (rc != 0) {
        char *txt = json_dumps(r.json, JSON_COMPACT);
        cr_log_error("%s %s: %.2000s", upper, path, txt);
        free(txt);
    }
    cr_assert_eq(rc, 0, "%s %s: the 200 body does not match %s: %s", upper, path, ptr, err);
    json_t *j = json_incref(r.json);
    nu_resp_free(&r);
    return j;
}

/* Known events: three namespaces, three metrics, object/deployment/container labels, hours -1..-4. */
static void
load_events(void)
{
    int64_t now = harness_now_ms();
    for (int h = 1; h <= 4; h++) {
        int64_t ts = now - h * HOUR * 1000 - 60000;
        harness_emit(H, "demo", "http_requests", 100 * h, ts, "object=lb1,deployment=d1,container=c1");
        harness_emit(H, "demo", "http_requests", 7, ts, "object=lb1,deployment=d2,container=c2");
        harness_emit(H, "demo", "lb_count", h, ts, "object=lbs");
        harness_emit(H, "demo", "bytes_out", 1000000LL * h, ts, "object=cdn,deployment=web");
        harness_emit(H, "other", "http_requests", 50, ts, "object=lb9,deployment=d9");
        harness_emit(H, "shop", "bytes_out", 2500000000LL, ts, "object=cdn");
    }
    harness_emit_float(H, "shop", "lb_count", 2.5, now - 2 * HOUR * 1000, "object=lbs");
    harness_flush(H);
}

/* ---- the document ---------------------------------------------------------------------------------- */

Test(conformance, served_openapi_is_the_checked_in_document)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/daemon/openapi.json", H->src_dir);
    size_t flen = 0;
    char *file = nu_slurp(path, &flen);
    cr_assert_not_null(file, "cannot read %s", path);
    nu_resp_t r;
    roundtrip("GET", "/openapi.json", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    char ct[128];
    cr_assert(nu_resp_header(&r, "Content-Type", ct, sizeof ct));
    cr_assert(strncmp(ct, "application/json", 16) == 0, "Content-Type %s", ct);
    cr_assert_eq(r.body_len, flen, "served %zu bytes, %s has %zu", r.body_len, path, flen);
    size_t at = 0;
    while (at < flen && r.body[at] == file[at])
        at++;
    cr_assert_eq(at, flen, "the served document differs from %s at byte %zu", path, at);
    cr_assert(json_is_object(r.json), "the served document is not a JSON object");
    nu_resp_free(&r);
    free(file);
}

/* ---- 200 bodies ------------------------------------------------------------------------------------- */

Test(conformance, built_endpoints_match_their_200_schemas)
{
    load_events();
    json_t *doc = served_doc();
    int64_t now = harness_now_ms() / 1000;
    char from[40], to[40], body[256];
    snprintf(body, sizeof body, "{\"from\":\"%s\",\"to\":\"%s\"}",
             harness_rfc3339(now - 24 * HOUR, from, sizeof from),
             harness_rfc3339(now + 60, to, sizeof to));
    const char *details = "/api/web/namespaces/{namespace}/usage_details";

    json_t *demo = validated_200(doc, details, "post", "/api/web/namespaces/demo/usage_details",
                                 ADMIN, body);
    json_t *items = json_object_get(demo, "usage_items");
    cr_assert(json_array_size(items) >= 3, "demo usage_details lists %zu items",
              json_array_size(items));
    /* the default window too, and a viewer's view */
    json_decref(validated_200(doc, details, "post", "/api/web/namespaces/demo/usage_details",
                              VIEWER, "{}"));
    json_t *sys = validated_200(doc, details, "post", "/api/web/namespaces/system/usage_details",
                                ADMIN, body);
    cr_assert(json_array_size(json_object_get(sys, "usage_items")) >
                  json_array_size(items),
              "system usage_details lists no more than demo");
    json_decref(sys);
    /* an empty namespace: an empty list is still a valid body */
    json_decref(validated_200(doc, details, "post", "/api/web/namespaces/empty/usage_details",
                              ADMIN, body));

    /* hourly_usage_details with each item's own query (bounded) */
    size_t i;
    json_t *it;
    int hourly_rows = 0;
    json_array_foreach(items, i, it) {
        if (i >= 4)
            break;
        const char *q = json_string_value(json_object_get(it, "hourly_breakdown_query"));
        cr_assert_not_null(q, "item %zu has no hourly_breakdown_query", i);
        json_t *b = json_pack("{s:s}", "query", q);
        char *btxt = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        json_t *h = validated_200(doc, "/api/web/namespaces/{namespace}/hourly_usage_details",
                                  "post", "/api/web/namespaces/demo/hourly_usage_details", ADMIN,
                                  btxt);
        hourly_rows += (int)json_array_size(json_object_get(h, "hourly_usage_items"));
        json_decref(h);
        free(btxt);
    }
    cr_assert(hourly_rows > 0, "hourly_usage_details returned no rows for the emitted hours");
    json_decref(demo);

    /* usage_summary: explicit window, and the default one */
    char sbody[256];
    snprintf(sbody, sizeof sbody, "{\"start_time\":\"%lld\",\"end_time\":\"%lld\"}",
             (long long)(now - 6 * HOUR), (long long)(now + 60));
    json_t *sum = validated_200(doc, "/api/data/namespaces/system/billing/usage_summary", "post",
                                "/api/data/namespaces/system/billing/usage_summary", ADMIN, sbody);
    cr_assert(json_array_size(json_object_get(sum, "usage_summary_items")) >= 2,
              "usage_summary lists fewer than 2 usage types");
    json_decref(sum);
    json_decref(validated_200(doc, "/api/data/namespaces/system/billing/usage_summary", "post",
                              "/api/data/namespaces/system/billing/usage_summary", ADMIN, "{}"));

    json_t *hz = validated_200(doc, "/healthz", "get", "/healthz", NULL, NULL);
    json_decref(hz);
    json_decref(doc);
}

/* ---- error bodies ------------------------------------------------------------------------------------- */

static void
expect_error_body(json_t *doc, const char *what, const char *raw, int status, const char *code)
{
    nu_resp_t r;
    int st = nu_roundtrip(H->port, raw, 0, IO_MS, &r);
    cr_assert(st > 0, "%s: no response (%s)", what, strerror(-st));
    cr_assert_eq(r.status, status, "%s: %d, expected %d (%s)", what, r.status, status, r.body);
    cr_assert_not_null(r.json, "%s: the error body is not JSON: %.200s", what, r.body);
    char ct[128], err[512];
    cr_assert(nu_resp_header(&r, "Content-Type", ct, sizeof ct), "%s: no Content-Type", what);
    cr_assert(strncmp(ct, "application/json", 16) == 0, "%s: Content-Type %s", what, ct);
    int rc = openapi_validate_strict(doc, "#/components/schemas/tallyError", r.json, err,
                                     sizeof err);
    cr_assert_eq(rc, 0, "%s: %s does not match tallyError: %s", what, r.body, err);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "code")), code, "%s: %s", what,
                     r.body);
    cr_assert(json_string_length(json_object_get(r.json, "message")) > 0, "%s: empty message",
              what);
    nu_resp_free(&r);
}

static void
expect_error_req(json_t *doc, const char *what, const char *method, const char *path,
                 const char *token, const char *body, int status, const char *code)
{
    char *req = nu_request(method, path, token, "Connection: close\r\n", body);
    cr_assert_not_null(req);
    expect_error_body(doc, what, req, status, code);
    free(req);
}

Test(conformance, error_bodies_match_tally_error)
{
    json_t *doc = served_doc();
    const char *details = "/api/web/namespaces/demo/usage_details";
    expect_error_req(doc, "400 invalid JSON", "POST", details, ADMIN, "{\"from\":", 400,
                     "EBADINPUT");
    expect_error_req(doc, "400 bad field", "POST", details, ADMIN, "{\"from\":\"yesterday\"}", 400,
                     "EBADINPUT");
    expect_error_body(doc, "400 malformed HTTP",
                      "POST /api/web/namespaces/demo/usage_details HTTP/1.1\r\nHost: x\r\n"
                      "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                      400, "EBADINPUT");
    expect_error_req(doc, "401 no token", "POST", details, NULL, "{}", 401, "EUNAUTHENTICATED");
    expect_error_req(doc, "401 bad token", "POST", details, "nope", "{}", 401, "EUNAUTHENTICATED");
    expect_error_req(doc, "403 other namespace", "POST", "/api/web/namespaces/other/usage_details",
                     VIEWER, "{}", 403, "EPERMS");
    expect_error_req(doc, "404 unknown path", "GET", "/no/such/thing", NULL, NULL, 404,
                     "ENOTFOUND");
    expect_error_req(doc, "405 wrong method", "GET", details, ADMIN, NULL, 405, "EBADINPUT");
    expect_error_body(doc, "413 body too large",
                      "POST /api/web/namespaces/demo/usage_details HTTP/1.1\r\nHost: x\r\n"
                      "Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n",
                      413, "ETOOLARGE");
    char *big = malloc(20000);
    cr_assert_not_null(big);
    int n = snprintf(big, 20000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', 16000);
    memcpy(big + n + 16000, "\r\n\r\n", 5);
    expect_error_body(doc, "431 headers too large", big, 431, "ETOOLARGE");
    free(big);
    json_decref(doc);
}

/* ---- /metrics: Prometheus text format 0.0.4 ------------------------------------------------------------- */

typedef struct sample {
    char name[128];
    char family[128];
    char labels[512]; /* the label set without le, as text, for grouping */
    char le[32];      /* "" when none */
    double value;
} sample_t;

typedef struct expo {
    json_t *types;   /* family -> type */
    json_t *helps;   /* family -> 1 */
    json_t *closed;  /* families whose group of lines ended */
    char current[128];
    sample_t *s;
    size_t n, cap;
} expo_t;

static int
name_start(int c)
{
    return isalpha(c) || c == '_' || c == ':';
}

static int
name_char(int c)
{
    return isalnum(c) || c == '_' || c == ':';
}

/* Read a metric name at *p into out; 0 or -1. */
static int
read_name(const char **p, char *out, size_t cap, int label)
{
    const char *s = *p;
    size_t n = 0;
    if (!(label ? (isalpha((unsigned char)*s) || *s == '_') : name_start((unsigned char)*s)))
        return -1;
    while (label ? (isalnum((unsigned char)*s) || *s == '_') : name_char((unsigned char)*s)) {
        if (n + 1 >= cap)
            return -1;
        out[n++] = *s++;
    }
    out[n] = '\0';
    *p = s;
    return 0;
}

static int
parse_value(const char *s, double *v)
{
    if (strcmp(s, "+Inf") == 0) {
        *v = INFINITY;
        return 0;
    }
    if (strcmp(s, "-Inf") == 0) {
        *v = -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0) {
        *v = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return (*s && !*end && errno == 0) ? 0 : -1;
}

/* The family a sample name belongs to, given the TYPE lines seen so far; NULL if none. */
static const char *
family_of(expo_t *e, const char *name, char *buf, size_t cap)
{
    if (json_object_get(e->types, name)) {
        snprintf(buf, cap, "%s", name);
        return buf;
    }
    static const char *const suffixes[] = {"_bucket", "_sum", "_count", NULL};
    size_t nl = strlen(name);
    for (int i = 0; suffixes[i]; i++) {
        size_t sl = strlen(suffixes[i]);
        if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0) {
            snprintf(buf, cap, "%.*s", (int)(nl - sl), name);
            const char *t = json_string_value(json_object_get(e->types, buf));
            if (t && (strcmp(t, "histogram") == 0 ||
                      (strcmp(t, "summary") == 0 && strcmp(suffixes[i], "_bucket") != 0)))
                return buf;
        }
    }
    return NULL;
}

/* A family's lines must form one group: entering a new family closes the current one. */
static void
enter_family(expo_t *e, const char *fam, int lineno)
{
    if (strcmp(e->current, fam) == 0)
        return;
    cr_assert_null(json_object_get(e->closed, fam),
                   "line %d: family %s appears again after other families", lineno, fam);
    if (e->current[0])
        json_object_set_new(e->closed, e->current, json_true());
    snprintf(e->current, sizeof e->current, "%s", fam);
}

static void
parse_line(expo_t *e, const char *line, int lineno)
{
    if (!*line)
        return; /* blank lines are ignored */
    if (line[0] == '#') {
        const char *p = line + 1;
        while (*p == ' ' || *p == '\t')
            p++;
        int help = strncmp(p, "HELP ", 5) == 0, type = strncmp(p, "TYPE ", 5) == 0;
        if (!help && !type)
            return; /* a plain comment */
        p += 5;
        while (*p == ' ')
            p++;
        char name[128];
        cr_assert_eq(read_name(&p, name, sizeof name, 0), 0, "line %d: bad metric name: %s",
                     lineno, line);
        cr_assert(*p == ' ' || *p == '\0', "line %d: junk after the name: %s", lineno, line);
        while (*p == ' ')
            p++;
        enter_family(e, name, lineno);
        if (help) {
            cr_assert_null(json_object_get(e->helps, name), "line %d: second HELP for %s", lineno,
                           name);
            json_object_set_new(e->helps, name, json_true());
            return;
        }
        static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped",
                                            NULL};
        int ok = 0;
        for (int i = 0; types[i]; i++)
            ok |= strcmp(p, types[i]) == 0;
        cr_assert(ok, "line %d: unknown type '%s'", lineno, p);
        cr_assert_null(json_object_get(e->types, name), "line %d: second TYPE for %s", lineno,
                       name);
        for (size_t i = 0; i < e->n; i++)
            cr_assert(strcmp(e->s[i].family, name) != 0,
                      "line %d: TYPE for %s after its samples", lineno, name);
        json_object_set_new(e->types, name, json_string(p));
        return;
    }
    /* a sample: name{labels} value [timestamp] */
    sample_t s;
    memset(&s, 0, sizeof s);
    const char *p = line;
    cr_assert_eq(read_name(&p, s.name, sizeof s.name, 0), 0, "line %d: bad sample name: %s",
                 lineno, line);
    size_t ll = 0;
    if (*p == '{') {
        p++;
        char seen[16][64];
        int nseen = 0;
        while (*p != '}') {
            char lname[64], lval[256];
            size_t vn = 0;
            cr_assert_eq(read_name(&p, lname, sizeof lname, 1), 0, "line %d: bad label name: %s",
                         lineno, line);
            cr_assert(strncmp(lname, "__", 2) != 0, "line %d: reserved label %s", lineno, lname);
            for (int i = 0; i < nseen; i++)
                cr_assert(strcmp(seen[i], lname) != 0, "line %d: label %s twice", lineno, lname);
            cr_assert(nseen < 16, "line %d: too many labels", lineno);
            snprintf(seen[nseen++], sizeof seen[0], "%s", lname);
            cr_assert(p[0] == '=' && p[1] == '"', "line %d: expected =\" after %s: %s", lineno,
                      lname, line);
            p += 2;
            while (*p && *p != '"') {
                char c = *p++;
                if (c == '\\') {
                    cr_assert(*p == '\\' || *p == '"' || *p == 'n', "line %d: bad escape \\%c",
                              lineno, *p);
                    c = *p == 'n' ? '\n' : *p;
                    p++;
                }
                cr_assert(vn + 1 < sizeof lval, "line %d: label value too long", lineno);
                lval[vn++] = c;
            }
            lval[vn] = '\0';
            cr_assert_eq(*p, '"', "line %d: unterminated label value", lineno);
            p++;
            if (strcmp(lname, "le") == 0) {
                cr_assert(vn < sizeof s.le, "line %d: le too long", lineno);
                memcpy(s.le, lval, vn + 1);
            } else {
                int w = snprintf(s.labels + ll, sizeof s.labels - ll, "%s=%s;", lname, lval);
                cr_assert(w > 0 && (size_t)w < sizeof s.labels - ll);
                ll += (size_t)w;
            }
            if (*p == ',')
                p++;
            else
                cr_assert_eq(*p, '}', "line %d: expected , or } in: %s", lineno, line);
        }
        p++;
    }
    cr_assert(*p == ' ' || *p == '\t', "line %d: no blank before the value: %s", lineno, line);
    while (*p == ' ' || *p == '\t')
        p++;
    char val[64];
    size_t vn = 0;
    while (*p && *p != ' ' && *p != '\t' && vn + 1 < sizeof val)
        val[vn++] = *p++;
    val[vn] = '\0';
    cr_assert_eq(parse_value(val, &s.value), 0, "line %d: bad value '%s'", lineno, val);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p) {
        char *end;
        strtoll(p, &end, 10);
        cr_assert(end != p && *end == '\0', "line %d: bad timestamp: %s", lineno, line);
    }
    char fam[128];
    const char *f = family_of(e, s.name, fam, sizeof fam);
    cr_assert_not_null(f, "line %d: sample %s has no TYPE line before it", lineno, s.name);
    snprintf(s.family, sizeof s.family, "%s", f);
    enter_family(e, s.family, lineno);
    const char *type = json_string_value(json_object_get(e->types, s.family));
    size_t nl = strlen(s.name);
    int is_bucket = nl > 7 && strcmp(s.name + nl - 7, "_bucket") == 0 &&
                    strcmp(type, "histogram") == 0 && strcmp(s.name, s.family) != 0;
    if (is_bucket)
        cr_assert(s.le[0], "line %d: a histogram bucket without le: %s", lineno, line);
    if (strcmp(type, "counter") == 0)
        cr_assert(s.value >= 0, "line %d: negative counter", lineno);
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 256;
        e->s = realloc(e->s, e->cap * sizeof *e->s);
        cr_assert_not_null(e->s);
    }
    e->s[e->n++] = s;
}

/* Buckets of each histogram series: le increasing, counts non-decreasing, +Inf last and == _count. */
static void
check_histograms(expo_t *e)
{
    const char *fam;
    json_t *t;
    json_object_foreach(e->types, fam, t) {
        if (strcmp(json_string_value(t), "histogram") != 0)
            continue;
        char bucket[160], count[160];
        snprintf(bucket, sizeof bucket, "%s_bucket", fam);
        snprintf(count, sizeof count, "%s_count", fam);
        for (size_t i = 0; i < e->n; i++) {
            if (strcmp(e->s[i].name, bucket) != 0)
                continue;
            /* first bucket of a series not seen before */
            int seen = 0;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(e->s[j].name, bucket) == 0 &&
                       strcmp(e->s[j].labels, e->s[i].labels) == 0;
            if (seen)
                continue;
            double prev_le = -INFINITY, prev_v = -1, last_v = -1;
            const char *last_le = NULL;
            int nb = 0;
            for (size_t j = i; j < e->n; j++) {
                if (strcmp(e->s[j].name, bucket) != 0 ||
                    strcmp(e->s[j].labels, e->s[i].labels) != 0)
                    continue;
                double le;
                cr_assert_eq(parse_value(e->s[j].le, &le), 0, "%s{%s}: bad le '%s'", bucket,
                             e->s[j].labels, e->s[j].le);
                cr_assert(le > prev_le, "%s{%s}: le %s not above the previous bucket", bucket,
                          e->s[j].labels, e->s[j].le);
                cr_assert(e->s[j].value >= prev_v, "%s{%s}: bucket le=%s (%g) below the previous (%g)",
                          bucket, e->s[j].labels, e->s[j].le, e->s[j].value, prev_v);
                prev_le = le;
                prev_v = last_v = e->s[j].value;
                last_le = e->s[j].le;
                nb++;
            }
            cr_assert(last_le && strcmp(last_le, "+Inf") == 0,
                      "%s{%s}: the last bucket is le=\"%s\", not +Inf", bucket, e->s[i].labels,
                      last_le ? last_le : "");
            int found = 0;
            for (size_t j = 0; j < e->n; j++)
                if (strcmp(e->s[j].name, count) == 0 &&
                    strcmp(e->s[j].labels, e->s[i].labels) == 0) {
                    found = 1;
                    cr_assert_eq(e->s[j].value, last_v, "%s{%s} = %g but the +Inf bucket is %g",
                                 count, e->s[i].labels, e->s[j].value, last_v);
                }
            cr_assert(found, "%s{%s}: no %s", bucket, e->s[i].labels, count);
            cr_assert(nb >= 2, "%s{%s}: only %d bucket(s)", bucket, e->s[i].labels, nb);
        }
    }
}

/* Whether a sample named name exists whose label text contains each of the labels (NULL-terminated). */
static int
has_sample(expo_t *e, const char *name, const char *const *labels)
{
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->s[i].name, name) != 0)
            continue;
        int ok = 1;
        for (const char *const *l = labels; l && *l && ok; l++) {
            char key[64];
            snprintf(key, sizeof key, "%s=", *l);
            ok = strncmp(e->s[i].labels, key, strlen(key)) == 0 ||
                 strstr(e->s[i].labels, key) != NULL;
        }
        if (ok)
            return 1;
    }
    return 0;
}

Test(conformance, metrics_parse_as_prometheus_text_0_0_4)
{
    /* traffic first: events, and some requests of several routes and codes */
    load_events();
    nu_resp_t r;
    roundtrip("POST", "/api/web/namespaces/demo/usage_details", ADMIN, "{}", &r);
    nu_resp_free(&r);
    roundtrip("POST", "/api/web/namespaces/other/usage_details", VIEWER, "{}", &r);
    nu_resp_free(&r);
    roundtrip("GET", "/no/such/route", NULL, NULL, &r);
    nu_resp_free(&r);
    roundtrip("GET", "/healthz", NULL, NULL, &r);
    nu_resp_free(&r);

    roundtrip("GET", "/metrics", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    char ct[128];
    cr_assert(nu_resp_header(&r, "Content-Type", ct, sizeof ct));
    cr_assert(strncmp(ct, "text/plain", 10) == 0 && strstr(ct, "version=0.0.4") != NULL,
              "/metrics Content-Type %s", ct);
    cr_assert(r.body_len > 0 && r.body[r.body_len - 1] == '\n', "/metrics does not end with \\n");
    cr_assert_eq(strlen(r.body), r.body_len, "/metrics holds a NUL byte");

    expo_t e = {.types = json_object(), .helps = json_object(), .closed = json_object()};
    int lineno = 0;
    char *text = strdup(r.body);
    cr_assert_not_null(text);
    for (char *line = text, *eol; line && *line; line = eol ? eol + 1 : NULL) {
        eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        lineno++;
        cr_assert(!strchr(line, '\r'), "line %d: carriage return", lineno);
        parse_line(&e, line, lineno);
    }
    free(text);
    check_histograms(&e);
    cr_log_info("/metrics: %d lines, %zu samples, %zu families", lineno, e.n,
                json_object_size(e.types));

    static const char *const reason[] = {"reason", NULL};
    static const char *const route_code[] = {"route", "code", NULL};
    static const char *const route[] = {"route", NULL};
    struct {
        const char *name;
        const char *const *labels;
    } want[] = {
        {"tally_ingest_events_total", NULL},
        {"tally_ingest_rejected_total", reason},
        {"tally_flush_duration_seconds_bucket", NULL},
        {"tally_http_requests_total", route_code},
        {"tally_http_request_duration_seconds_bucket", route},
        {"tally_series_active", NULL},
        {"tally_store_map_used_bytes", NULL},
        {"tally_producer_lag", NULL},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(has_sample(&e, want[i].name, want[i].labels), "/metrics has no %s sample%s",
                  want[i].name, want[i].labels ? " with the expected labels" : "");
    /* the events we sent are counted */
    for (size_t i = 0; i < e.n; i++)
        if (strcmp(e.s[i].name, "tally_ingest_events_total") == 0)
            cr_assert(e.s[i].value >= 25, "tally_ingest_events_total = %g after 25 events",
                      e.s[i].value);
    cr_assert(strstr(r.body, "tally_http_requests_total{route=\"usage_details\",code=\"200\"}"),
              "no usage_details 200 counter");
    cr_assert(strstr(r.body, "tally_http_requests_total{route=\"usage_details\",code=\"403\"}"),
              "no usage_details 403 counter");
    free(e.s);
    json_decref(e.types);
    json_decref(e.helps);
    json_decref(e.closed);
    nu_resp_free(&r);
}
