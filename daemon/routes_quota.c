/* routes_quota.c — quota endpoints: object create/replace/get/list/delete, effective limits and
 * usage against them, over lib/quota. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "quota.h"
#include "routes.h"
#include "selector.h"
#include "timeutil.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* Answer a lib/quota or store failure; err is the lib's reason when it gave one. */
static void
fail(tally_http_res_t *res, int rc, const char *err, const char *what)
{
    char op[32];
    snprintf(op, sizeof op, "quota %s", what);
    tally_route_fail(res, rc, err, op);
}

/* Whether the raw query names parameter `name` at all (with or without a value). */
static int
query_has(const char *query, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', seg);
        size_t klen = eq ? (size_t)(eq - p) : seg;
        if (klen == nlen && memcmp(p, name, nlen) == 0)
            return 1;
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

static tally__quota_origin_t
origin_of(tally_ctx_t *ctx, tally_http_req_t *req)
{
    const tally__token_t *tok = tally_route_token(req);
    tally__quota_origin_t o = {
        .tenant = ctx->cfg->billing.tenant ? ctx->cfg->billing.tenant : "",
        .creator = tok ? tally__token_name(tok) : "",
        .now_s = tally__time_now_ms() / 1000,
    };
    return o;
}

/* A reference (borrowed) to member `key` of obj, or a fresh empty object. */
static json_t *
copy_or_empty(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v ? json_deep_copy(v) : json_object();
}

/* Create/replace metadata (ObjectCreateMetaType) and spec of a stored document. */
static json_t *
request_form(json_t *doc)
{
    json_t *m = json_object_get(doc, "metadata");
    return json_pack("{s{sO*sO*sO*sO*sO*sO*}so}", "metadata", "name", json_object_get(m, "name"),
                     "namespace", json_object_get(m, "namespace"), "labels",
                     json_object_get(m, "labels"), "annotations", json_object_get(m, "annotations"),
                     "description", json_object_get(m, "description"), "disable",
                     json_object_get(m, "disable"), "spec", copy_or_empty(doc, "spec"));
}

/* One quotaStatusObject: whether the object's limits apply. */
static json_t *
status_object(json_t *doc, const char *tenant)
{
    json_t *m = json_object_get(doc, "metadata"), *sys = json_object_get(doc, "system_metadata");
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *ns = json_string_value(json_object_get(m, "namespace"));
    const char *uid = json_string_value(json_object_get(sys, "uid"));
    const char *mod = json_string_value(json_object_get(sys, "modification_timestamp"));
    int disabled = json_is_true(json_object_get(m, "disable"));
    char reason[256];
    snprintf(reason, sizeof reason,
             disabled ? "disabled: its limits are not applied to namespace '%s'"
                      : "its limits overlay the plan's default quota of namespace '%s'",
             ns ? ns : "");
    json_t *meta = json_pack("{s:s*, s:s, s:s, s:s, s:s*}", "uid", uid, "creator_class",
                             TALLY_QUOTA_CREATOR_CLASS, "creator_id", "tallyd", "status_id",
                             "applied", "creation_timestamp", mod);
    json_t *cond = json_pack("{s:s, s:s, s:s, s:s*, s:s}", "type", "Applied", "status",
                             disabled ? "False" : "True", "reason", reason, "last_update_time", mod,
                             "service_name", "tallyd");
    json_t *ref =
        json_pack("{s:s, s:s, s:s, s:s*, s:s}", "kind", TALLY_QUOTA_KIND, "name", name ? name : "",
                  "namespace", ns ? ns : "", "uid", uid, "tenant", tenant ? tenant : "");
    /* "o" steals even when packing fails */
    return json_pack("{s:o, s:[o], s:[o]}", "metadata", meta, "conditions", cond, "object_refs",
                     ref);
}

/* ---- create / replace / delete -------------------------------------------------------- */

void
tally_route_quota_create(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "metadata.namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    tally__quota_origin_t o = origin_of(ctx, req);
    json_t *doc = NULL;
    char err[512] = "";
    int rc = tally__quota_create(ctx->store, body, ns, ctx->catalog, &o, &doc, err, sizeof err);
    json_decref(body);
    if (rc != 0) {
        fail(res, rc, err, "create");
        return;
    }
    /* CreateResponse: metadata, spec, system_metadata — the stored document */
    tally_route_json(res, 200, doc);
}

void
tally_route_quota_replace(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "metadata.namespace");
    const char *name = tally_route_param(req, "metadata.name");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    tally__quota_origin_t o = origin_of(ctx, req);
    char err[512] = "";
    int rc =
        tally__quota_replace(ctx->store, body, ns, name, ctx->catalog, &o, NULL, err, sizeof err);
    json_decref(body);
    if (rc != 0) {
        fail(res, rc, err, "replace");
        return;
    }
    tally_route_json(res, 200, json_object()); /* ReplaceResponse is empty */
}

void
tally_route_quota_delete(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "namespace");
    const char *name = tally_route_param(req, "name");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    /* DeleteRequest repeats name and namespace; when given they must agree */
    static const char *const keys[] = {"namespace", "name"};
    const char *vals[] = {ns, name};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            tally_http_error(res, 400, "EBADINPUT", "%s: must be a string", keys[i]);
            json_decref(body);
            return;
        }
        const char *s = json_string_value(v);
        if (s[0] && strcmp(s, vals[i]) != 0) {
            tally_http_error(res, 400, "EBADINPUT",
                             "%s: '%.64s' differs from the %s of the path '%s'", keys[i], s,
                             keys[i], vals[i]);
            json_decref(body);
            return;
        }
    }
    json_t *fir = json_object_get(body, "fail_if_referred");
    if (fir && !json_is_null(fir) && !json_is_boolean(fir)) {
        tally_http_error(res, 400, "EBADINPUT", "fail_if_referred: must be a boolean");
        json_decref(body);
        return;
    }
    json_decref(body); /* nothing refers to quota objects: fail_if_referred never fails */
    int rc = tally__quota_delete(ctx->store, ns, name);
    if (rc != 0) {
        char err[256];
        snprintf(err, sizeof err, "no quota '%s' in namespace '%s'", name, ns);
        fail(res, rc, err, "delete");
        return;
    }
    tally_route_json(res, 200, json_object());
}

/* ---- get ---------------------------------------------------------------------------- */

enum {
    FMT_DEFAULT = 0,
    FMT_FOR_CREATE,
    FMT_FOR_REPLACE,
    FMT_STATUS,
    FMT_READ,
    FMT_REFERRING_OBJECTS,
    FMT_BROKEN_REFERENCES,
};

static const char *const formats[] = {"GET_RSP_FORMAT_DEFAULT",
                                      "GET_RSP_FORMAT_FOR_CREATE",
                                      "GET_RSP_FORMAT_FOR_REPLACE",
                                      "GET_RSP_FORMAT_STATUS",
                                      "GET_RSP_FORMAT_READ",
                                      "GET_RSP_FORMAT_REFERRING_OBJECTS",
                                      "GET_RSP_FORMAT_BROKEN_REFERENCES"};

#define NFORMATS ((int)(sizeof formats / sizeof formats[0]))

/* The enum by name or (as grpc-gateway also accepts) by number; -1 when neither. */
static int
parse_format(const char *s)
{
    if (!s[0])
        return FMT_DEFAULT;
    for (int i = 0; i < NFORMATS; i++)
        if (strcmp(formats[i], s) == 0)
            return i;
    if (s[0] >= '0' && s[0] <= '9' && s[1] == '\0' && s[0] - '0' < NFORMATS)
        return s[0] - '0';
    return -1;
}

void
tally_route_quota_get(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "namespace");
    const char *name = tally_route_param(req, "name");
    char fbuf[64] = "";
    int fmt = FMT_DEFAULT;
    if (tally_http_query_get(req->query, "response_format", fbuf, sizeof fbuf))
        fmt = parse_format(fbuf);
    else if (query_has(req->query, "response_format"))
        fmt = -1;
    if (fmt < 0) {
        tally_http_error(res, 400, "EBADINPUT",
                         "response_format: '%.64s' is not one of GET_RSP_FORMAT_DEFAULT, "
                         "GET_RSP_FORMAT_FOR_CREATE, GET_RSP_FORMAT_FOR_REPLACE, "
                         "GET_RSP_FORMAT_STATUS, GET_RSP_FORMAT_READ, "
                         "GET_RSP_FORMAT_REFERRING_OBJECTS, GET_RSP_FORMAT_BROKEN_REFERENCES",
                         fbuf);
        return;
    }
    json_t *doc = NULL;
    int rc = tally__quota_get(ctx->store, ns, name, &doc);
    if (rc != 0) {
        char err[256];
        snprintf(err, sizeof err, "no quota '%s' in namespace '%s'", name, ns);
        fail(res, rc, err, "get");
        return;
    }
    json_t *out;
    switch (fmt) {
    case FMT_FOR_CREATE:
        out = json_pack("{so}", "create_form", request_form(doc));
        break;
    case FMT_FOR_REPLACE:
        out = json_pack("{so}", "replace_form", request_form(doc));
        break;
    case FMT_STATUS:
        out = json_pack("{s[o]}", "status", status_object(doc, ctx->cfg->billing.tenant));
        break;
    case FMT_REFERRING_OBJECTS:
        out = json_pack("{s[]}", "referring_objects");
        break;
    case FMT_BROKEN_REFERENCES:
        out = json_pack("{s[]s[]}", "deleted_referred_objects", "disabled_referred_objects");
        break;
    default: /* DEFAULT, READ: metadata, spec, system_metadata */
        out = json_incref(doc);
        break;
    }
    json_decref(doc);
    if (!out) {
        tally_http_error(res, 500, "EINTERNAL", "out of memory rendering the quota");
        return;
    }
    tally_route_json(res, 200, out);
}

/* ---- list --------------------------------------------------------------------------- */

/* One ListResponseItem; full adds get_spec, metadata, system_metadata; status adds status_set. */
static json_t *
list_item(json_t *doc, int full, int status, const char *tenant)
{
    json_t *m = json_object_get(doc, "metadata"), *sys = json_object_get(doc, "system_metadata");
    json_t *it = json_pack(
        "{sO*sO*sO*sO*sO*sbsO*sO*}", "name", json_object_get(m, "name"), "namespace",
        json_object_get(m, "namespace"), "labels", json_object_get(m, "labels"), "annotations",
        json_object_get(m, "annotations"), "description", json_object_get(m, "description"),
        "disabled", json_is_true(json_object_get(m, "disable")), "tenant",
        json_object_get(sys, "tenant"), "uid", json_object_get(sys, "uid"));
    if (!it)
        return NULL;
    int bad = 0;
    if (full) {
        bad |= json_object_set_new(it, "get_spec", copy_or_empty(doc, "spec"));
        bad |= json_object_set_new(it, "metadata", copy_or_empty(doc, "metadata"));
        bad |= json_object_set_new(it, "system_metadata", copy_or_empty(doc, "system_metadata"));
    }
    if (status)
        bad |= json_object_set_new(it, "status_set", json_pack("[o]", status_object(doc, tenant)));
    if (bad) {
        json_decref(it);
        return NULL;
    }
    return it;
}

void
tally_route_quota_list(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *ns = tally_route_param(req, "namespace");
    /* decoded into a static buffer: handlers run on the loop thread only */
    static char text[3 * TALLY_SELECTOR_MAX_TEXT + 4];
    tally__selector_t *sel = NULL;
    char err[256];
    if (tally_http_query_get(req->query, "label_filter", text, sizeof text)) {
        int rc = tally__selector_parse(text, &sel, err, sizeof err);
        if (rc == TALLY_EINVAL) {
            tally_http_error(res, 400, "EBADINPUT", "label_filter: %s", err);
            return;
        }
        if (rc != 0) {
            fail(res, rc, NULL, "list");
            return;
        }
    } else if (query_has(req->query, "label_filter")) {
        tally_http_error(res, 400, "EBADINPUT",
                         "label_filter: malformed percent-encoding or longer than %d bytes",
                         TALLY_SELECTOR_MAX_TEXT);
        return;
    }
    int full = query_has(req->query, "report_fields");
    int status = query_has(req->query, "report_status_fields");
    json_t *docs = NULL;
    int rc = tally__quota_list(ctx->store, ns, sel, &docs);
    tally__selector_destroy(sel);
    if (rc != 0) {
        fail(res, rc, NULL, "list");
        return;
    }
    json_t *items = json_array();
    size_t i;
    json_t *doc;
    int bad = !items;
    json_array_foreach(docs, i, doc)
    {
        if (!bad)
            bad |= json_array_append_new(items,
                                         list_item(doc, full, status, ctx->cfg->billing.tenant));
    }
    json_decref(docs);
    json_t *out = bad ? NULL : json_pack("{so}", "items", items);
    if (!out) {
        if (!bad)
            items = NULL; /* stolen by the failed pack */
        json_decref(items);
        tally_http_error(res, 500, "EINTERNAL", "out of memory rendering the list");
        return;
    }
    tally_route_json(res, 200, out);
}

/* ---- limits and usage --------------------------------------------------------------- */

static json_t *
limit_json(const tally__quota_limit_t *l)
{
    if (l->maximum < 0)
        return json_pack("{si}", "maximum", -1);
    if (l->kind == TALLY_QUOTA_OBJECT) {
        double m = l->maximum > 2147483647.0 ? 2147483647.0 : floor(l->maximum);
        return json_pack("{sI}", "maximum", (json_int_t)m);
    }
    if (l->maximum == floor(l->maximum) && l->maximum < 9007199254740992.0)
        return json_pack("{sI}", "maximum", (json_int_t)l->maximum);
    return json_pack("{sf}", "maximum", l->maximum);
}

static json_t *
api_json(const tally__quota_api_limit_t *a)
{
    const char *unit = tally__quota_unit_name(a->unit_s);
    return json_pack("{sIsssI}", "rate", (json_int_t)a->rate, "unit", unit ? unit : "SECOND",
                     "burst", (json_int_t)a->burst);
}

static json_t *
usage_json(const tally__quota_limit_t *l, double used)
{
    if (l->kind == TALLY_QUOTA_OBJECT) {
        double u = used > 2147483647.0 ? 2147483647.0 : used < 0 ? 0 : llround(used);
        return json_pack("{sI}", "current", (json_int_t)u);
    }
    if (used == floor(used) && fabs(used) < 9007199254740992.0)
        return json_pack("{sI}", "current", (json_int_t)used);
    return json_pack("{sf}", "current", used);
}

/* Effective limits of the path namespace, or a 500 written. */
static int
effective(tally_ctx_t *ctx, const char *ns, tally__quota_limits_t *l, tally_http_res_t *res)
{
    int rc = tally__quota_effective(ctx->store, ctx->plans, ctx->cfg->billing.default_plan, ns, l);
    if (rc != 0) {
        fail(res, rc, NULL, "limits");
        return -1;
    }
    return 0;
}

/* Fill objects/resources/apis and their deprecated mirrors; with_usage pairs usage. */
static void
render_limits(tally_ctx_t *ctx, const char *ns, int with_usage, tally_http_res_t *res)
{
    tally__quota_limits_t l;
    if (effective(ctx, ns, &l, res) != 0)
        return;
    json_t *objects = json_object(), *resources = json_object(), *apis = json_object();
    int bad = !objects || !resources || !apis;
    int64_t now_s = tally__time_now_ms() / 1000;
    for (size_t i = 0; !bad && i < l.n; i++) {
        const tally__quota_limit_t *it = &l.items[i];
        json_t *v = limit_json(it);
        if (with_usage) {
            double used = 0;
            int rc = tally__quota_usage(ctx->store, ctx->catalog, ns, it->key, now_s, &used);
            if (rc != 0) {
                json_decref(v);
                json_decref(objects);
                json_decref(resources);
                json_decref(apis);
                tally__quota_limits_free(&l);
                fail(res, rc, NULL, "usage");
                return;
            }
            v = json_pack("{soso}", "limit", v, "usage", usage_json(it, used));
        }
        bad |=
            json_object_set_new(it->kind == TALLY_QUOTA_OBJECT ? objects : resources, it->key, v);
    }
    for (size_t i = 0; !bad && i < l.napis; i++) {
        json_t *v = api_json(&l.apis[i]);
        if (with_usage)
            v = json_pack("{so}", "limit", v);
        bad |= json_object_set_new(apis, l.apis[i].key, v);
    }
    tally__quota_limits_free(&l);
    json_t *out = bad ? NULL
                      : json_pack("{sOsOsOsoso so}", "quota_usage", objects, "float_quota_usage",
                                  resources, "api_limits", apis, "objects", objects, "resources",
                                  resources, "apis", apis);
    if (!out) {
        if (bad) {
            json_decref(objects);
            json_decref(resources);
            json_decref(apis);
        }
        tally_http_error(res, 500, "EINTERNAL", "out of memory rendering the limits");
        return;
    }
    tally_route_json(res, 200, out);
}

void
tally_route_quota_limits(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    render_limits(ctx, tally_route_param(req, "namespace"), 0, res);
}

void
tally_route_quota_usage(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    render_limits(ctx, tally_route_param(req, "namespace"), 1, res);
}
