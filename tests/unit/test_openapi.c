/* test_openapi.c — tally's OpenAPI document against the reference spec; the test validator. */
#define _GNU_SOURCE
#include "../support/openapi_validate.c"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#define REF_REL "shared/spec/billing_and_usage.openapi.json"
#define REF_FALLBACK "/work/shared/spec/billing_and_usage.openapi.json"

static json_t *ours; /* daemon/openapi.json */
static json_t *ref;  /* the reference spec, NULL when it is not on this machine */

/* The source tree: $TALLY_SOURCE_DIR (set by CTest), else three levels above this file. */
static char *
source_dir(void)
{
    const char *src = getenv("TALLY_SOURCE_DIR");
    if (src && src[0])
        return strdup(src);
    char *dir = strdup(__FILE__);
    for (int i = 0; i < 3 && dir; i++) {
        char *slash = strrchr(dir, '/');
        if (!slash) {
            free(dir);
            return strdup(".");
        }
        *slash = '\0';
    }
    return dir;
}

static json_t *
load(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    cr_assert_not_null(j, "%s:%d: %s", path, e.line, e.text);
    return j;
}

static void
setup(void)
{
    char *src = source_dir();
    cr_assert_not_null(src);
    char *path = NULL;
    cr_assert_neq(asprintf(&path, "%s/daemon/openapi.json", src), -1);
    ours = load(path);
    free(path);
    cr_assert_neq(asprintf(&path, "%s/../%s", src, REF_REL), -1);
    if (access(path, R_OK) == 0)
        ref = load(path);
    else if (access(REF_FALLBACK, R_OK) == 0)
        ref = load(REF_FALLBACK);
    free(path);
    free(src);
}

static void
teardown(void)
{
    json_decref(ours);
    json_decref(ref);
    ours = ref = NULL;
}

TestSuite(openapi, .init = setup, .fini = teardown);

static void
need_ref(void)
{
    if (!ref)
        cr_skip_test("reference spec not found (../" REF_REL
                     " beside the source tree, or " REF_FALLBACK ")");
}

/* ---- differences, collected so one run shows many ------------------------------ */

typedef struct diffs {
    char text[16384];
    size_t len;
    int n;
} diffs_t;

static void diff(diffs_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
diff(diffs_t *d, const char *fmt, ...)
{
    d->n++;
    if (d->len + 2 >= sizeof d->text)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(d->text + d->len, sizeof d->text - d->len, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    d->len += (size_t)w;
    if (d->len >= sizeof d->text - 1) {
        d->len = sizeof d->text - 1;
        return;
    }
    d->text[d->len++] = '\n';
    d->text[d->len] = '\0';
}

static const char *
str_or(json_t *j, const char *dflt)
{
    const char *s = json_string_value(j);
    return s ? s : dflt;
}

static int
same_str_key(json_t *a, json_t *b, const char *key)
{
    json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    if (!x || !y)
        return !x && !y;
    return json_equal(x, y);
}

/* Same values, any order, no duplicates hiding a difference. */
static int
same_set(json_t *a, json_t *b)
{
    if (!json_is_array(a) || !json_is_array(b) || json_array_size(a) != json_array_size(b))
        return 0;
    size_t i, k;
    json_t *x, *y;
    json_array_foreach(a, i, x)
    {
        int found = 0;
        json_array_foreach(b, k, y)
        {
            if (json_equal(x, y)) {
                found = 1;
                break;
            }
        }
        if (!found)
            return 0;
    }
    json_array_foreach(b, i, y)
    {
        int found = 0;
        json_array_foreach(a, k, x)
        {
            if (json_equal(x, y)) {
                found = 1;
                break;
            }
        }
        if (!found)
            return 0;
    }
    return 1;
}

/*
 * Structural comparison of a reference schema node r with ours o: $ref
 * targets, type, format, enum sets, default, required, and recursively
 * properties (same names), items, additionalProperties and allOf members.
 * A $ref is compared by name; every component schema is compared on its
 * own, so following it here would add nothing.
 */
static void
compare_schema(diffs_t *d, json_t *r, json_t *o, const char *where)
{
    if (!json_is_object(r) || !json_is_object(o)) {
        if (json_is_object(r) != json_is_object(o))
            diff(d, "%s: schema missing or not an object", where);
        return;
    }
    static const char *const scalar_keys[] = {"$ref", "type", "format", "default", "nullable"};
    for (size_t i = 0; i < sizeof scalar_keys / sizeof scalar_keys[0]; i++) {
        const char *k = scalar_keys[i];
        if (!same_str_key(r, o, k)) {
            char *a = json_dumps(json_object_get(r, k), JSON_ENCODE_ANY | JSON_COMPACT);
            char *b = json_dumps(json_object_get(o, k), JSON_ENCODE_ANY | JSON_COMPACT);
            diff(d, "%s: %s differs: reference %s, ours %s", where, k, a ? a : "(none)",
                 b ? b : "(none)");
            free(a);
            free(b);
        }
    }
    static const char *const set_keys[] = {"enum", "required"};
    for (size_t i = 0; i < sizeof set_keys / sizeof set_keys[0]; i++) {
        json_t *re = json_object_get(r, set_keys[i]), *oe = json_object_get(o, set_keys[i]);
        if ((re || oe) && !same_set(re, oe))
            diff(d, "%s: %s values differ", where, set_keys[i]);
    }

    json_t *rp = json_object_get(r, "properties"), *op = json_object_get(o, "properties");
    if (!rp != !op)
        diff(d, "%s: properties present on one side only", where);
    const char *name;
    json_t *sub;
    json_object_foreach(rp, name, sub)
    {
        char w[1024];
        snprintf(w, sizeof w, "%s.%s", where, name);
        if (!json_object_get(op, name))
            diff(d, "%s: property missing in ours", w);
        else
            compare_schema(d, sub, json_object_get(op, name), w);
    }
    json_object_foreach(op, name, sub)
    {
        /* documented tally extensions (tally_*) may add optional properties */
        if (strncmp(name, "tally_", 6) == 0 && json_is_string(json_object_get(sub, "description")))
            continue;
        if (!json_object_get(rp, name))
            diff(d, "%s.%s: property not in the reference", where, name);
    }

    static const char *const sub_keys[] = {"items", "additionalProperties"};
    for (size_t i = 0; i < sizeof sub_keys / sizeof sub_keys[0]; i++) {
        json_t *ri = json_object_get(r, sub_keys[i]), *oi = json_object_get(o, sub_keys[i]);
        char w[1024];
        snprintf(w, sizeof w, "%s.%s", where, sub_keys[i]);
        if (!ri != !oi)
            diff(d, "%s: present on one side only", w);
        else if (json_is_object(ri))
            compare_schema(d, ri, oi, w);
        else if (ri && !json_equal(ri, oi))
            diff(d, "%s: differs", w);
    }

    json_t *ra = json_object_get(r, "allOf"), *oa = json_object_get(o, "allOf");
    if (json_array_size(ra) != json_array_size(oa) || !ra != !oa) {
        diff(d, "%s: allOf has %zu members in the reference, %zu in ours", where,
             json_array_size(ra), json_array_size(oa));
    } else {
        size_t i;
        json_array_foreach(ra, i, sub)
        {
            char w[1024];
            snprintf(w, sizeof w, "%s.allOf[%zu]", where, i);
            compare_schema(d, sub, json_array_get(oa, i), w);
        }
    }
}

static const char *const http_methods[] = {"get",   "put",  "post",    "delete",
                                           "patch", "head", "options", "trace"};

static int
is_method(const char *k)
{
    for (size_t i = 0; i < sizeof http_methods / sizeof http_methods[0]; i++)
        if (strcmp(k, http_methods[i]) == 0)
            return 1;
    return 0;
}

static json_t *
body_schema(json_t *content_holder)
{
    return json_object_get(
        json_object_get(json_object_get(content_holder, "content"), "application/json"), "schema");
}

static const char *const own_paths[] = {"/metrics", "/healthz", "/openapi.json"};

static int
is_own_path(const char *p)
{
    for (size_t i = 0; i < 3; i++)
        if (strcmp(p, own_paths[i]) == 0)
            return 1;
    return 0;
}

static int
auth_free(const char *path)
{
    return strncmp(path, "/no_auth/", 9) == 0 || is_own_path(path);
}

/* ---- the document itself ------------------------------------------------------- */

/* Every "$ref" string anywhere in node resolves inside doc. */
static void
check_refs(diffs_t *d, json_t *doc, json_t *node)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_object(node)) {
        json_object_foreach(node, k, v)
        {
            if (strcmp(k, "$ref") == 0 && json_is_string(v)) {
                if (!resolve_pointer(doc, json_string_value(v)))
                    diff(d, "dangling $ref %s", json_string_value(v));
            } else {
                check_refs(d, doc, v);
            }
        }
    } else if (json_is_array(node)) {
        json_array_foreach(node, i, v) check_refs(d, doc, v);
    }
}

Test(openapi, document_is_openapi_3_0_with_resolvable_refs)
{
    const char *version = str_or(json_object_get(ours, "openapi"), "");
    cr_assert(strncmp(version, "3.0.", 4) == 0, "openapi is \"%s\", want 3.0.x", version);
    json_t *info = json_object_get(ours, "info");
    cr_assert(json_is_string(json_object_get(info, "title")), "info.title missing");
    cr_assert(json_is_string(json_object_get(info, "version")), "info.version missing");
    cr_assert(json_is_string(json_object_get(info, "description")), "info.description missing");
    cr_assert(json_is_object(json_object_get(ours, "paths")));
    cr_assert(json_is_object(json_object_get(json_object_get(ours, "components"), "schemas")));
    diffs_t d = {.len = 0};
    check_refs(&d, ours, ours);
    cr_assert_eq(d.n, 0, "%d problem(s):\n%s", d.n, d.text);
}

Test(openapi, every_reference_operation_exists_with_same_id_parameters_and_bodies)
{
    need_ref();
    json_t *rpaths = json_object_get(ref, "paths"), *opaths = json_object_get(ours, "paths");
    diffs_t d = {.len = 0};
    int ops = 0;
    const char *path;
    json_t *ritem;
    json_object_foreach(rpaths, path, ritem)
    {
        json_t *oitem = json_object_get(opaths, path);
        if (!oitem) {
            diff(&d, "%s: path missing", path);
            continue;
        }
        const char *m;
        json_t *oop;
        json_object_foreach(oitem, m, oop)
        {
            if (is_method(m) && !json_object_get(ritem, m))
                diff(&d, "%s %s: method not in the reference", m, path);
        }
        json_t *rop;
        json_object_foreach(ritem, m, rop)
        {
            if (!is_method(m))
                continue;
            ops++;
            char where[1024];
            snprintf(where, sizeof where, "%s %s", m, path);
            oop = json_object_get(oitem, m);
            if (!oop) {
                diff(&d, "%s: operation missing", where);
                continue;
            }
            const char *rid = str_or(json_object_get(rop, "operationId"), "(none)");
            const char *oid = str_or(json_object_get(oop, "operationId"), "(none)");
            if (strcmp(rid, oid) != 0)
                diff(&d, "%s: operationId %s, reference %s", where, oid, rid);

            json_t *rparams = json_object_get(rop, "parameters");
            json_t *oparams = json_object_get(oop, "parameters");
            if (json_array_size(rparams) != json_array_size(oparams))
                diff(&d, "%s: %zu parameters, reference %zu", where, json_array_size(oparams),
                     json_array_size(rparams));
            size_t i, k;
            json_t *rp, *opm;
            json_array_foreach(rparams, i, rp)
            {
                json_t *match = NULL;
                json_array_foreach(oparams, k, opm)
                {
                    if (same_str_key(rp, opm, "name") && same_str_key(rp, opm, "in"))
                        match = opm;
                }
                char pw[1200];
                snprintf(pw, sizeof pw, "%s param %s (%s)", where,
                         str_or(json_object_get(rp, "name"), "?"),
                         str_or(json_object_get(rp, "in"), "?"));
                if (!match) {
                    diff(&d, "%s: missing", pw);
                    continue;
                }
                if (json_is_true(json_object_get(rp, "required")) !=
                    json_is_true(json_object_get(match, "required")))
                    diff(&d, "%s: required differs", pw);
                compare_schema(&d, json_object_get(rp, "schema"), json_object_get(match, "schema"),
                               pw);
            }

            json_t *rbody = json_object_get(rop, "requestBody");
            json_t *obody = json_object_get(oop, "requestBody");
            char bw[1200];
            snprintf(bw, sizeof bw, "%s request body", where);
            if (!rbody != !obody)
                diff(&d, "%s: present on one side only", bw);
            else if (rbody)
                compare_schema(&d, body_schema(rbody), body_schema(obody), bw);

            json_t *r200 = json_object_get(json_object_get(rop, "responses"), "200");
            json_t *o200 = json_object_get(json_object_get(oop, "responses"), "200");
            snprintf(bw, sizeof bw, "%s 200 response", where);
            if (!o200)
                diff(&d, "%s: missing", bw);
            else if (!body_schema(r200) != !body_schema(o200))
                diff(&d, "%s: body schema present on one side only", bw);
            else if (body_schema(r200))
                compare_schema(&d, body_schema(r200), body_schema(o200), bw);
        }
    }
    cr_assert_eq(ops, 26, "the reference has %d operations, expected 26", ops);
    cr_assert_eq(d.n, 0, "%d difference(s):\n%s", d.n, d.text);
}

Test(openapi, every_reference_schema_has_same_properties_types_and_enums)
{
    need_ref();
    json_t *rs = json_object_get(json_object_get(ref, "components"), "schemas");
    json_t *os = json_object_get(json_object_get(ours, "components"), "schemas");
    cr_assert_eq(json_object_size(rs), 101, "the reference has %zu schemas, expected 101",
                 json_object_size(rs));
    diffs_t d = {.len = 0};
    const char *name;
    json_t *r;
    json_object_foreach(rs, name, r)
    {
        json_t *o = json_object_get(os, name);
        if (!o)
            diff(&d, "%s: schema missing", name);
        else
            compare_schema(&d, r, o, name);
    }
    cr_assert_eq(d.n, 0, "%d difference(s):\n%s", d.n, d.text);
}

Test(openapi, extra_paths_are_exactly_tally_admin_credit_note_and_own_paths)
{
    /* tally's admin extensions: `tallyctl plan approve|reject` and
     * `tallyctl invoice close|pay|cancel|refund`, POST only */
    static const char *const admin_paths[] = {
        "/api/tally/namespaces/system/billing/plan_transitions/{id}/{decision}",
        "/api/tally/namespaces/system/invoices/close",
        "/api/tally/namespaces/system/invoices/{name}/{action}",
    };
    const size_t nadmin = sizeof admin_paths / sizeof admin_paths[0];
    /* tally's read extensions: the credit note of a refunded invoice, GET only */
    static const char *const read_paths[] = {
        "/api/web/namespaces/{namespace}/usage/credit_note_pdf",
    };
    const size_t nread = sizeof read_paths / sizeof read_paths[0];
    need_ref();
    json_t *rpaths = json_object_get(ref, "paths"), *opaths = json_object_get(ours, "paths");
    diffs_t d = {.len = 0};
    const char *path;
    json_t *item;
    json_object_foreach(opaths, path, item)
    {
        if (json_object_get(rpaths, path))
            continue;
        int admin = 0;
        for (size_t i = 0; i < nadmin; i++)
            admin |= strcmp(path, admin_paths[i]) == 0;
        for (size_t i = 0; i < nread; i++)
            admin |= strcmp(path, read_paths[i]) == 0;
        if (!is_own_path(path) && !admin)
            diff(&d, "%s: neither in the reference nor one of tally's own paths", path);
    }
    for (size_t i = 0; i < nadmin; i++) {
        item = json_object_get(opaths, admin_paths[i]);
        if (!item || !json_object_get(item, "post") || json_object_size(item) != 1)
            diff(&d, "%s: missing, or not exactly one POST operation", admin_paths[i]);
        else if (!json_object_get(json_object_get(json_object_get(item, "post"), "responses"),
                                  "200"))
            diff(&d, "%s: POST has no 200 response", admin_paths[i]);
    }
    for (size_t i = 0; i < nread; i++) {
        item = json_object_get(opaths, read_paths[i]);
        if (!item || !json_object_get(item, "get") || json_object_size(item) != 1)
            diff(&d, "%s: missing, or not exactly one GET operation", read_paths[i]);
        else if (!json_object_get(json_object_get(json_object_get(item, "get"), "responses"),
                                  "200"))
            diff(&d, "%s: GET has no 200 response", read_paths[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        item = json_object_get(opaths, own_paths[i]);
        if (!item) {
            diff(&d, "%s: missing", own_paths[i]);
            continue;
        }
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            if (is_method(m) && strcmp(m, "get") != 0)
                diff(&d, "%s: only GET is served, not %s", own_paths[i], m);
        }
        if (!json_object_get(json_object_get(json_object_get(item, "get"), "responses"), "200"))
            diff(&d, "%s: GET has no 200 response", own_paths[i]);
    }
    cr_assert_eq(d.n, 0, "%d problem(s):\n%s", d.n, d.text);

    json_t *metrics = json_object_get(
        json_object_get(json_object_get(json_object_get(opaths, "/metrics"), "get"), "responses"),
        "200");
    int prometheus = 0;
    const char *type;
    json_t *media;
    json_object_foreach(json_object_get(metrics, "content"), type, media)
    {
        prometheus |= strncmp(type, "text/plain; version=0.0.4", 25) == 0;
    }
    cr_assert(prometheus, "/metrics must answer Prometheus text format 0.0.4");
}

/* The error responses an operation must document: all of them where a token is
 * needed, less 401/403/429 (token failures and per-token rates) where none is. */
Test(openapi, every_operation_documents_tally_error_responses)
{
    static const char *const with_token[] = {"400", "401", "403", "404", "409",
                                             "413", "429", "500", "501", "503"};
    static const char *const without[] = {"400", "404", "409", "413", "500", "501", "503"};
    static const char *const own[] = {"400", "413", "500", "503"};
    diffs_t d = {.len = 0};
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(ours, "paths"), path, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            if (!is_method(m))
                continue;
            const char *const *want = with_token;
            size_t n = sizeof with_token / sizeof with_token[0];
            if (is_own_path(path)) {
                want = own;
                n = sizeof own / sizeof own[0];
            } else if (auth_free(path)) {
                want = without;
                n = sizeof without / sizeof without[0];
            }
            json_t *responses = json_object_get(op, "responses");
            for (size_t i = 0; i < n; i++) {
                json_t *r = json_object_get(responses, want[i]);
                if (!r) {
                    diff(&d, "%s %s: no %s response", m, path, want[i]);
                    continue;
                }
                json_t *target = r;
                if (json_object_get(r, "$ref"))
                    target = resolve_pointer(ours, str_or(json_object_get(r, "$ref"), ""));
                const char *sref = str_or(json_object_get(body_schema(target), "$ref"), "");
                if (strcmp(sref, "#/components/schemas/tallyError") != 0)
                    diff(&d, "%s %s: %s body is not tallyError", m, path, want[i]);
            }
        }
    }
    cr_assert_eq(d.n, 0, "%d problem(s):\n%s", d.n, d.text);
}

Test(openapi, tally_error_codes_reuse_reference_error_code_names)
{
    static const char *const codes[] = {"EBADINPUT",    "EPERMS",           "ENOTFOUND", "EEXISTS",
                                        "EINTERNAL",    "EUNAUTHENTICATED", "ETOOLARGE", "ETOOMANY",
                                        "EUNAVAILABLE", "ENOTIMPLEMENTED",  "ECONFLICT"};
    json_t *te = json_object_get(json_object_get(json_object_get(ours, "components"), "schemas"),
                                 "tallyError");
    cr_assert_not_null(te, "components.schemas.tallyError missing");
    json_t *en =
        json_object_get(json_object_get(json_object_get(te, "properties"), "code"), "enum");
    cr_assert_eq(json_array_size(en), sizeof codes / sizeof codes[0]);
    json_t *want = json_array();
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        json_array_append_new(want, json_string(codes[i]));
    int same = same_set(en, want);
    json_decref(want);
    cr_assert(same, "tallyError.code enum differs from the agreed codes");
    cr_assert(json_is_object(json_object_get(json_object_get(te, "properties"), "message")));

    need_ref();
    /* The codes that have a meaning in the reference use its spelling. */
    json_t *rcodes = json_object_get(
        json_object_get(json_object_get(json_object_get(ref, "components"), "schemas"),
                        "schemaErrorCode"),
        "enum");
    cr_assert(json_is_array(rcodes), "reference schemaErrorCode enum missing");
    static const char *const shared[] = {"EBADINPUT", "EPERMS", "ENOTFOUND", "EEXISTS",
                                         "EINTERNAL"};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
        int found = 0;
        size_t k;
        json_t *c;
        json_array_foreach(rcodes, k, c) found |= strcmp(json_string_value(c), shared[i]) == 0;
        cr_assert(found, "%s is not in the reference ErrorCode", shared[i]);
    }
}

Test(openapi, api_token_scheme_and_auth_free_paths)
{
    json_t *scheme = json_object_get(
        json_object_get(json_object_get(ours, "components"), "securitySchemes"), "ApiToken");
    cr_assert_str_eq(str_or(json_object_get(scheme, "type"), ""), "apiKey");
    cr_assert_str_eq(str_or(json_object_get(scheme, "in"), ""), "header");
    cr_assert_str_eq(str_or(json_object_get(scheme, "name"), ""), "Authorization");
    json_t *global = json_object_get(ours, "security");
    cr_assert(json_is_array(json_object_get(json_array_get(global, 0), "ApiToken")),
              "the document must require ApiToken by default");

    diffs_t d = {.len = 0};
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(ours, "paths"), path, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            if (!is_method(m))
                continue;
            json_t *sec = json_object_get(op, "security");
            if (auth_free(path) && !(json_is_array(sec) && json_array_size(sec) == 0))
                diff(&d, "%s %s: needs no token, so security must be []", m, path);
            if (!auth_free(path) && sec && json_array_size(sec) == 0)
                diff(&d, "%s %s: needs a token but says security []", m, path);
        }
    }
    cr_assert_eq(d.n, 0, "%d problem(s):\n%s", d.n, d.text);
}

/* ---- our own words --------------------------------------------------------------- */

/* Lower-case, blanks squeezed: what "the same sentence" means here. */
static char *
normalize(const char *s)
{
    char *out = malloc(strlen(s) + 1);
    cr_assert_not_null(out);
    size_t n = 0;
    int blank = 1;
    for (const char *p = s; *p; p++) {
        if (isspace((unsigned char)*p)) {
            if (!blank)
                out[n++] = ' ';
            blank = 1;
        } else {
            out[n++] = (char)tolower((unsigned char)*p);
            blank = 0;
        }
    }
    while (n && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return out;
}

/* Gather the human strings (description, summary, title) of node into set. */
static void
collect_text(json_t *node, json_t *set)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_object(node)) {
        json_object_foreach(node, k, v)
        {
            if (json_is_string(v) && (strcmp(k, "description") == 0 || strcmp(k, "summary") == 0 ||
                                      strcmp(k, "title") == 0)) {
                char *n = normalize(json_string_value(v));
                if (strlen(n) > 30)
                    json_object_set_new(set, n, json_true());
                free(n);
            } else {
                collect_text(v, set);
            }
        }
    } else if (json_is_array(node)) {
        json_array_foreach(node, i, v) collect_text(v, set);
    }
}

Test(openapi, no_description_is_copied_from_the_reference)
{
    need_ref();
    json_t *theirs = json_object(), *mine = json_object();
    collect_text(ref, theirs);
    collect_text(ours, mine);
    cr_assert_gt(json_object_size(mine), 100, "our document has too little text");
    diffs_t d = {.len = 0};
    const char *s;
    json_t *v;
    json_object_foreach(mine, s, v)
    {
        if (json_object_get(theirs, s))
            diff(&d, "copied: \"%.120s\"", s);
    }
    json_decref(theirs);
    json_decref(mine);
    cr_assert_eq(d.n, 0, "%d string(s) identical to the reference:\n%s", d.n, d.text);
}

/* The node at the JSON pointer-like path "#/a/b" (no escapes: none of our keys need them). */
static json_t *
at_path(json_t *doc, const char *where)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", where);
    json_t *node = doc;
    for (char *save = NULL, *tok = strtok_r(buf + 1, "/", &save); tok && node;
         tok = strtok_r(NULL, "/", &save))
        node = json_object_get(node, tok);
    return node;
}

static void
find_vendor_keys(diffs_t *d, json_t *node, const char *where)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_object(node)) {
        json_object_foreach(node, k, v)
        {
            char w[1024];
            snprintf(w, sizeof w, "%s/%s", where, k);
            /* the reference's required-field markers are kept where it has them */
            if (strncmp(k, "x-ves-", 6) == 0 &&
                !(strcmp(k, "x-ves-required") == 0 && ref && at_path(ref, w) &&
                  json_equal(at_path(ref, w), v)))
                diff(d, "%s", w);
            find_vendor_keys(d, v, w);
        }
    } else if (json_is_array(node)) {
        json_array_foreach(node, i, v) find_vendor_keys(d, v, where);
    }
}

Test(openapi, no_vendor_extensions)
{
    diffs_t d = {.len = 0};
    find_vendor_keys(&d, ours, "#");
    cr_assert_eq(d.n, 0, "%d x-ves-* key(s) left:\n%s", d.n, d.text);
}

/* Every "required" (array or marker) and x-ves-required of the reference, found equal in ours
 * at the same place. */
static void
find_required(diffs_t *d, json_t *node, const char *where, int *n)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_object(node)) {
        json_object_foreach(node, k, v)
        {
            char w[1024];
            snprintf(w, sizeof w, "%s/%s", where, k);
            if (strcmp(k, "x-ves-required") == 0 ||
                (strcmp(k, "required") == 0 && json_is_array(v))) {
                (*n)++;
                json_t *mine = at_path(ours, w);
                if (!mine)
                    diff(d, "%s: missing in ours", w);
                else if (json_is_array(v) ? !same_set(v, mine) : !json_equal(v, mine))
                    diff(d, "%s: differs from the reference", w);
            }
            find_required(d, v, w, n);
        }
    } else if (json_is_array(node)) {
        json_array_foreach(node, i, v)
        {
            char w[1024];
            snprintf(w, sizeof w, "%s/%zu", where, i);
            find_required(d, v, w, n);
        }
    }
}

/* What clients of the reference rely on beyond the schemas: its version, its six required-field
 * markers, and every response code it lists, on every one of its operations. */
Test(openapi, reference_version_required_markers_and_responses_are_kept)
{
    need_ref();
    diffs_t d = {.len = 0};
    const char *rv = str_or(json_object_get(json_object_get(ref, "info"), "version"), "?");
    const char *ov = str_or(json_object_get(json_object_get(ours, "info"), "version"), "?");
    if (strcmp(rv, ov) != 0)
        diff(&d, "info.version is %s, the reference's %s", ov, rv);

    int markers = 0;
    find_required(&d, json_object_get(ref, "components"), "#/components", &markers);
    cr_assert_geq(markers, 6, "the reference has %d required markers, expected at least 6",
                  markers);

    int ops = 0, codes = 0;
    const char *path;
    json_t *ritem;
    json_object_foreach(json_object_get(ref, "paths"), path, ritem)
    {
        json_t *oitem = json_object_get(json_object_get(ours, "paths"), path);
        const char *m;
        json_t *rop;
        json_object_foreach(ritem, m, rop)
        {
            if (!is_method(m))
                continue;
            ops++;
            json_t *oop = json_object_get(oitem, m);
            if (!oop) {
                diff(&d, "%s %s: missing", m, path);
                continue;
            }
            json_t *rp, *op;
            size_t i, k;
            json_array_foreach(json_object_get(rop, "parameters"), i, rp)
            {
                json_array_foreach(json_object_get(oop, "parameters"), k, op)
                {
                    if (same_str_key(rp, op, "name") && same_str_key(rp, op, "in") &&
                        !same_str_key(rp, op, "required"))
                        diff(&d, "%s %s param %s: required differs", m, path,
                             str_or(json_object_get(rp, "name"), "?"));
                }
            }
            const char *code;
            json_t *rr;
            json_t *oresp = json_object_get(oop, "responses");
            json_object_foreach(json_object_get(rop, "responses"), code, rr)
            {
                codes++;
                json_t *orr = json_object_get(oresp, code);
                if (!orr)
                    diff(&d, "%s %s: no %s response", m, path, code);
                else if (json_object_get(orr, "$ref") &&
                         !resolve_pointer(ours, str_or(json_object_get(orr, "$ref"), "")))
                    diff(&d, "%s %s: %s response is a dangling $ref", m, path, code);
            }
        }
    }
    cr_assert_eq(ops, 26, "the reference has %d operations, expected 26", ops);
    cr_assert_gt(codes, 26 * 8);
    cr_assert_eq(d.n, 0, "%d difference(s):\n%s", d.n, d.text);
}

/* ---- the validator, on a hand-made document --------------------------------------- */

static const char mini_doc[] =
    "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"t\",\"version\":\"1\"},\"paths\":{},"
    "\"components\":{\"schemas\":{"
    "\"Color\":{\"type\":\"string\",\"enum\":[\"RED\",\"GREEN\"]},"
    "\"Line\":{\"type\":\"object\",\"properties\":{"
    "  \"name\":{\"type\":\"string\"},"
    "  \"count\":{\"type\":\"integer\",\"format\":\"int32\"},"
    "  \"amount\":{\"type\":\"string\",\"format\":\"int64\"},"
    "  \"big\":{\"type\":\"integer\",\"format\":\"int64\"},"
    "  \"ratio\":{\"type\":\"number\",\"format\":\"double\"},"
    "  \"on\":{\"type\":\"boolean\",\"format\":\"boolean\"},"
    "  \"when\":{\"type\":\"string\",\"format\":\"date-time\"},"
    "  \"uid\":{\"type\":\"string\",\"format\":\"uuid\"},"
    "  \"blob\":{\"type\":\"string\",\"format\":\"byte\"},"
    "  \"color\":{\"allOf\":[{\"$ref\":\"#/components/schemas/Color\"}]},"
    "  \"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "  \"labels\":{\"type\":\"object\"},"
    "  \"note\":{\"type\":\"string\",\"nullable\":true}}},"
    "\"Report\":{\"type\":\"object\",\"properties\":{"
    "  \"lines\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Line\"}},"
    "  \"total\":{\"type\":\"string\",\"format\":\"int64\"}}},"
    "\"Closed\":{\"type\":\"object\",\"required\":[\"a\"],\"additionalProperties\":false,"
    "  \"properties\":{\"a\":{\"type\":\"string\"}}},"
    "\"Map\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}},"
    "\"Either\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]},"
    "\"Loop\":{\"allOf\":[{\"$ref\":\"#/components/schemas/Loop\"}]},"
    "\"Broken\":{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/components/schemas/"
    "Nope\"}}}"
    "}}}";

/* Validate text against schema of the mini document; err receives the message. */
static int
check_mini(const char *schema, const char *text, int strict, char *err, size_t errlen)
{
    json_error_t e;
    json_t *doc = json_loads(mini_doc, 0, &e);
    cr_assert_not_null(doc, "mini doc: %d: %s", e.line, e.text);
    json_t *inst = json_loads(text, JSON_DECODE_ANY, &e);
    cr_assert_not_null(inst, "instance %s: %s", text, e.text);
    int rc = strict ? openapi_validate_strict(doc, schema, inst, err, errlen)
                    : openapi_validate(doc, schema, inst, err, errlen);
    json_decref(inst);
    json_decref(doc);
    return rc;
}

/* Assert a violation whose message starts with the instance path want. */
#define cr_assert_violation(schema, text, strict, want)                                            \
    do {                                                                                           \
        char err_[512];                                                                            \
        int rc_ = check_mini((schema), (text), (strict), err_, sizeof err_);                       \
        cr_assert_eq(rc_, 1, "%s against %s: rc %d (%s)", (text), (schema), rc_, err_);            \
        cr_assert(strncmp(err_, want ": ", strlen(want) + 2) == 0,                                 \
                  "%s against %s: message \"%s\" should start with \"%s: \"", (text), (schema),    \
                  err_, want);                                                                     \
    } while (0)

#define cr_assert_valid(schema, text, strict)                                                      \
    do {                                                                                           \
        char err_[512];                                                                            \
        int rc_ = check_mini((schema), (text), (strict), err_, sizeof err_);                       \
        cr_assert_eq(rc_, 0, "%s against %s: %s", (text), (schema), err_);                         \
        cr_assert_str_empty(err_);                                                                 \
    } while (0)

Test(openapi, validator_accepts_a_valid_instance)
{
    const char *report =
        "{\"total\":\"-9223372036854775808\",\"lines\":["
        "{\"name\":\"a\",\"count\":2147483647,\"amount\":\"9223372036854775807\",\"big\":5,"
        " \"ratio\":1,\"on\":false,\"when\":\"2026-11-26T17:00:00Z\","
        " \"uid\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"blob\":\"JVBERi0=\","
        " \"color\":\"GREEN\",\"tags\":[\"x\",\"y\"],\"labels\":{\"k\":\"v\",\"n\":1},\"note\":"
        "null},"
        "{\"when\":\"2026-11-26T17:00:00.250+02:00\",\"ratio\":0.5},{}]}";
    cr_assert_valid("Report", report, 0);
    cr_assert_valid("Report", report, 1);
    cr_assert_valid("#/components/schemas/Report", report, 0);
    cr_assert_valid("Map", "{\"a\":1,\"b-c\":2}", 0);
    cr_assert_valid("Closed", "{\"a\":\"x\"}", 0);
    cr_assert_valid("Either", "\"s\"", 0);
    cr_assert_valid("Either", "3", 0);
}

Test(openapi, validator_rejects_a_wrong_type_at_its_path)
{
    cr_assert_violation("Line", "{\"count\":\"3\"}", 0, "$.count");
    cr_assert_violation("Line", "{\"count\":3.0}", 0, "$.count");
    cr_assert_violation("Line", "{\"ratio\":\"0.5\"}", 0, "$.ratio");
    cr_assert_violation("Line", "{\"on\":1}", 0, "$.on");
    cr_assert_violation("Line", "{\"labels\":[]}", 0, "$.labels");
    cr_assert_violation("Line", "{\"note\":1}", 0, "$.note");
    cr_assert_violation("Line", "{\"name\":null}", 0, "$.name");
    cr_assert_violation("Report", "[]", 0, "$");
    cr_assert_violation("Either", "true", 0, "$");
    char err[256];
    check_mini("Line", "{\"count\":\"3\"}", 0, err, sizeof err);
    cr_assert_str_eq(err, "$.count: expected integer, got string");
}

Test(openapi, validator_rejects_a_value_outside_the_enum)
{
    cr_assert_violation("Line", "{\"color\":\"BLUE\"}", 0, "$.color");
    cr_assert_violation("Line", "{\"color\":\"red\"}", 0, "$.color");
    cr_assert_violation("Color", "\"\"", 0, "$");
}

Test(openapi, validator_names_the_nested_array_element)
{
    cr_assert_violation("Report", "{\"lines\":[{\"name\":\"a\"},{\"tags\":[\"x\",5]}]}", 0,
                        "$.lines[1].tags[1]");
    cr_assert_violation("Report", "{\"lines\":[{},{},{\"color\":\"BLUE\"}]}", 0,
                        "$.lines[2].color");
    cr_assert_violation("Map", "{\"ok\":1,\"b-c\":\"x\"}", 0, "$[\"b-c\"]");
}

Test(openapi, validator_int64_strings_and_integer_ranges)
{
    /* type string, format int64: a decimal string, never a JSON number */
    cr_assert_valid("Report", "{\"total\":\"0\"}", 0);
    cr_assert_violation("Report", "{\"total\":1250}", 0, "$.total");
    cr_assert_violation("Report", "{\"total\":\"12x\"}", 0, "$.total");
    cr_assert_violation("Report", "{\"total\":\"\"}", 0, "$.total");
    cr_assert_violation("Report", "{\"total\":\"+1\"}", 0, "$.total");
    cr_assert_violation("Report", "{\"total\":\"1.5\"}", 0, "$.total");
    cr_assert_violation("Report", "{\"total\":\"9223372036854775808\"}", 0, "$.total");
    /* type integer, format int64: a JSON integer, never a string */
    cr_assert_valid("Line", "{\"big\":-9223372036854775807}", 0);
    cr_assert_violation("Line", "{\"big\":\"5\"}", 0, "$.big");
    /* int32 range */
    cr_assert_valid("Line", "{\"count\":-2147483648}", 0);
    cr_assert_violation("Line", "{\"count\":2147483648}", 0, "$.count");
}

Test(openapi, validator_string_formats)
{
    cr_assert_valid("Line", "{\"when\":\"2026-01-31T23:59:60z\"}", 0);
    cr_assert_violation("Line", "{\"when\":\"2026-11-26 17:00:00Z\"}", 0, "$.when");
    cr_assert_violation("Line", "{\"when\":\"2026-13-01T00:00:00Z\"}", 0, "$.when");
    cr_assert_violation("Line", "{\"when\":\"2026-11-26T17:00:00\"}", 0, "$.when");
    cr_assert_violation("Line", "{\"when\":\"1764176400\"}", 0, "$.when");
    cr_assert_violation("Line", "{\"uid\":\"0f8fad5b-d9cb-469f-a165-70867728950\"}", 0, "$.uid");
    cr_assert_violation("Line", "{\"blob\":\"JVBERi0\"}", 0, "$.blob");
    cr_assert_violation("Line", "{\"blob\":\"JV=Ri0==\"}", 0, "$.blob");
}

Test(openapi, validator_additional_properties_required_and_strict_mode)
{
    cr_assert_violation("Closed", "{\"a\":\"x\",\"b\":1}", 0, "$.b");
    cr_assert_violation("Closed", "{}", 0, "$");
    /* lenient: unknown names pass; strict: they are reported */
    cr_assert_valid("Line", "{\"nmae\":\"x\"}", 0);
    cr_assert_violation("Line", "{\"nmae\":\"x\"}", 1, "$.nmae");
    cr_assert_violation("Report", "{\"lines\":[{\"colour\":\"RED\"}]}", 1, "$.lines[0].colour");
    /* strict leaves maps (schemas without properties) alone */
    cr_assert_valid("Line", "{\"labels\":{\"anything\":[1]}}", 1);
}

Test(openapi, validator_reports_unusable_schemas)
{
    char err[256];
    cr_assert_eq(check_mini("Nope", "{}", 0, err, sizeof err), -1);
    cr_assert(strstr(err, "Nope") != NULL, "%s", err);
    cr_assert_eq(check_mini("Broken", "{\"x\":1}", 0, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot resolve") != NULL, "%s", err);
    cr_assert_eq(strncmp(err, "$.x: ", 5), 0, "%s", err);
    cr_assert_eq(check_mini("Loop", "{}", 0, err, sizeof err), -1);
    /* no error buffer is fine */
    cr_assert_eq(check_mini("Line", "{\"count\":\"x\"}", 0, NULL, 0), 1);
    /* a truncated buffer still holds a terminated prefix */
    char tiny[8];
    cr_assert_eq(check_mini("Line", "{\"count\":\"x\"}", 0, tiny, sizeof tiny), 1);
    cr_assert_eq(strlen(tiny), sizeof tiny - 1);
    json_t *inst = json_object();
    cr_assert_eq(openapi_validate(NULL, "Line", inst, err, sizeof err), -1);
    json_decref(inst);
}

/* ---- the validator, on the real documents ------------------------------------------ */

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    cr_assert_not_null(j, "%s", e.text);
    return j;
}

/* Validate text against schema in ours and, when present, in the reference. */
static void
expect_both(const char *schema, const char *text, int want_rc, const char *want_prefix)
{
    json_t *docs[2] = {ours, ref};
    json_t *inst = parse(text);
    for (int i = 0; i < 2; i++) {
        if (!docs[i])
            continue;
        char err[512];
        int rc = openapi_validate_strict(docs[i], schema, inst, err, sizeof err);
        cr_assert_eq(rc, want_rc, "%s (%s doc): rc %d: %s", schema, i ? "reference" : "our", rc,
                     err);
        if (want_prefix)
            cr_assert(strncmp(err, want_prefix, strlen(want_prefix)) == 0,
                      "%s (%s doc): \"%s\" should start with \"%s\"", schema,
                      i ? "reference" : "our", err, want_prefix);
    }
    json_decref(inst);
}

Test(openapi, validator_checks_usage_responses_against_both_documents)
{
    const char *ok =
        "{\"usage_items\":[{\"namespace\":\"demo\",\"metric_label\":\"http_requests\","
        "\"usage_type\":\"HTTP Requests\",\"object_name\":\"lb-1\",\"quantity\":3000,"
        "\"unit_name\":\"requests\",\"start_timestamp\":\"2026-11-01T00:00:00Z\","
        "\"end_timestamp\":\"2026-11-26T17:00:00Z\",\"hourly_breakdown_query\":\"eyJ9\"}]}";
    expect_both("usageListUsageDetailsResp", ok, 0, NULL);
    expect_both("usageListUsageDetailsResp", "{\"usage_items\":[{\"quantity\":\"3000\"}]}", 1,
                "$.usage_items[0].quantity: ");
    expect_both("usageListUsageDetailsResp", "{\"usage_items\":[{\"quantty\":1}]}", 1,
                "$.usage_items[0].quantty: ");
    expect_both("usageListCurrentUsageResp",
                "{\"total_cost\":\"1250\",\"discount\":\"0\",\"usage_items\":[{\"amount\":\"1250\","
                "\"quantity_billable\":\"2\",\"status\":\"STATUS_ACTIVE\",\"fixed\":false}]}",
                0, NULL);
    expect_both("usageListCurrentUsageResp", "{\"total_cost\":1250}", 1, "$.total_cost: ");
    expect_both("usageListCurrentUsageResp", "{\"usage_items\":[{},{\"status\":\"ACTIVE\"}]}", 1,
                "$.usage_items[1].status: ");
    expect_both(
        "quotaCreateRequest",
        "{\"metadata\":{\"name\":\"q1\",\"namespace\":\"demo\",\"labels\":{\"env\":\"prod\"}},"
        "\"spec\":{\"object_limits\":{\"lb_count\":{\"maximum\":5}}}}",
        0, NULL);
    expect_both("plan_transitionGetPlanTransitionRsp", "{\"state\":\"STATE_DONE\"}", 1,
                "$.state: ");
}

Test(openapi, tally_own_bodies_validate)
{
    json_t *inst = parse("{\"status\":\"ok\"}");
    char err[256];
    cr_assert_eq(openapi_validate_strict(ours, "tallyHealth", inst, err, sizeof err), 0, "%s", err);
    json_decref(inst);
    inst = parse("{\"status\":\"degraded\",\"reason\":\"store full: ingest paused\"}");
    cr_assert_eq(openapi_validate_strict(ours, "tallyHealth", inst, err, sizeof err), 0, "%s", err);
    json_decref(inst);
    inst = parse("{\"status\":\"fine\"}");
    cr_assert_eq(openapi_validate(ours, "tallyHealth", inst, err, sizeof err), 1);
    json_decref(inst);
    inst = parse("{\"code\":\"EBADINPUT\",\"message\":\"from must be RFC 3339\"}");
    cr_assert_eq(openapi_validate_strict(ours, "tallyError", inst, err, sizeof err), 0, "%s", err);
    json_decref(inst);
    inst = parse("{\"code\":\"EOK\",\"message\":\"\"}");
    cr_assert_eq(openapi_validate(ours, "tallyError", inst, err, sizeof err), 1);
    cr_assert_eq(strncmp(err, "$.code: ", 8), 0, "%s", err);
    json_decref(inst);
    inst = parse("{\"code\":\"EPERMS\"}");
    cr_assert_eq(openapi_validate(ours, "tallyError", inst, err, sizeof err), 1);
    json_decref(inst);
}
