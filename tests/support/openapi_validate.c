/* openapi_validate.c — a validator for the OpenAPI 3.0 schema subset tally uses (see the header).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openapi_validate.h"

/* Deepest nesting of schema steps (refs, allOf, properties...) before we call it a cycle. */
#define OV_MAX_DEPTH 256
#define OV_PATH_MAX 1024

typedef struct ov {
    json_t *doc;
    int strict;
    int depth;
    char *err;
    size_t errlen;
    char path[OV_PATH_MAX];
    size_t pathlen;
} ov_t;

static int ov_check(ov_t *v, json_t *schema, json_t *inst);

static void ov_msg(ov_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
ov_msg(ov_t *v, const char *fmt, ...)
{
    if (!v->err || v->errlen == 0)
        return;
    int n = snprintf(v->err, v->errlen, "%s: ", v->path);
    if (n < 0 || (size_t)n >= v->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err + n, v->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A violation of the instance: 1. */
#define OV_BAD(v, ...) (ov_msg((v), __VA_ARGS__), 1)
/* The schema cannot be used: -1. */
#define OV_UNUSABLE(v, ...) (ov_msg((v), __VA_ARGS__), -1)

/* ---- instance path ---------------------------------------------------------- */

static size_t
path_push_key(ov_t *v, const char *key)
{
    size_t saved = v->pathlen;
    int plain = (isalpha((unsigned char)key[0]) || key[0] == '_');
    for (const char *p = key; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || *p == '_';
    char seg[OV_PATH_MAX];
    if (plain) {
        snprintf(seg, sizeof seg, ".%s", key);
    } else {
        size_t o = 0;
        seg[o++] = '[';
        seg[o++] = '"';
        for (const char *p = key; *p && o + 4 < sizeof seg; p++) {
            if (*p == '"' || *p == '\\')
                seg[o++] = '\\';
            seg[o++] = *p;
        }
        seg[o++] = '"';
        seg[o++] = ']';
        seg[o] = '\0';
    }
    size_t len = strlen(seg);
    if (v->pathlen + len < sizeof v->path) {
        memcpy(v->path + v->pathlen, seg, len + 1);
        v->pathlen += len;
    }
    return saved;
}

static size_t
path_push_index(ov_t *v, size_t i)
{
    size_t saved = v->pathlen;
    int n = snprintf(v->path + v->pathlen, sizeof v->path - v->pathlen, "[%zu]", i);
    if (n > 0 && v->pathlen + (size_t)n < sizeof v->path)
        v->pathlen += (size_t)n;
    else
        v->path[v->pathlen] = '\0';
    return saved;
}

static void
path_pop(ov_t *v, size_t saved)
{
    v->pathlen = saved;
    v->path[saved] = '\0';
}

/* ---- helpers ------------------------------------------------------------------ */

static const char *
json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Compact text of a value for messages, cut to fit buf. */
static const char *
json_brief(const json_t *j, char *buf, size_t cap)
{
    char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(buf, cap, "?");
        return buf;
    }
    if (strlen(s) >= cap && cap > 4)
        snprintf(buf, cap, "%.*s...", (int)(cap - 4), s);
    else
        snprintf(buf, cap, "%s", s);
    free(s);
    return buf;
}

/* Resolve a local JSON pointer ("#/a/b~1c") in doc; NULL if absent. */
static json_t *
resolve_pointer(json_t *doc, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    const char *p = ref + 1;
    json_t *cur = doc;
    while (*p) {
        if (*p != '/')
            return NULL;
        p++;
        char tok[512];
        size_t n = 0;
        while (*p && *p != '/') {
            char c = *p++;
            if (c == '~') {
                if (*p == '0')
                    c = '~';
                else if (*p == '1')
                    c = '/';
                else
                    return NULL;
                p++;
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = c;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            errno = 0;
            unsigned long i = strtoul(tok, &end, 10);
            if (n == 0 || *end || errno)
                return NULL;
            cur = json_array_get(cur, i);
        } else {
            return NULL;
        }
        if (!cur)
            return NULL;
    }
    return cur;
}

static int
is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int
digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int
is_date_time(const char *s)
{
    int y, mo, d, h, mi, se, oh, om;
    size_t len = strlen(s);
    if (len < 20)
        return 0;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return 0;
    (void)y;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return 0;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return 1;
    if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2, &oh) && p[3] == ':' &&
        digits(p + 4, 2, &om))
        return oh <= 23 && om <= 59;
    return 0;
}

static int
is_uuid(const char *s)
{
    return strlen(s) == 36 && is_hex(s, 8) && s[8] == '-' && is_hex(s + 9, 4) && s[13] == '-' &&
           is_hex(s + 14, 4) && s[18] == '-' && is_hex(s + 19, 4) && s[23] == '-' &&
           is_hex(s + 24, 12);
}

static int
is_base64(const char *s)
{
    size_t n = strlen(s);
    if (n % 4 != 0)
        return 0;
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad || !(isalnum(c) || c == '+' || c == '/'))
            return 0;
    }
    return pad <= 2;
}

/* Decimal integer string within int64 (sign) or uint64 range. */
static int
is_int_string(const char *s, int is_signed)
{
    const char *p = s;
    if (*p == '-' && is_signed)
        p++;
    if (!isdigit((unsigned char)*p))
        return 0;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return 0;
    errno = 0;
    char *end;
    if (is_signed)
        (void)strtoll(s, &end, 10);
    else
        (void)strtoull(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static int
check_format(ov_t *v, const char *type, const char *format, json_t *inst)
{
    if (strcmp(type, "string") == 0) {
        const char *s = json_string_value(inst);
        if (strcmp(format, "int64") == 0 && !is_int_string(s, 1))
            return OV_BAD(v, "\"%s\" is not an int64 in decimal", s);
        if (strcmp(format, "uint64") == 0 && !is_int_string(s, 0))
            return OV_BAD(v, "\"%s\" is not a uint64 in decimal", s);
        if (strcmp(format, "date-time") == 0 && !is_date_time(s))
            return OV_BAD(v, "\"%s\" is not an RFC 3339 date-time", s);
        if (strcmp(format, "uuid") == 0 && !is_uuid(s))
            return OV_BAD(v, "\"%s\" is not a UUID", s);
        if (strcmp(format, "byte") == 0 && !is_base64(s))
            return OV_BAD(v, "value is not base64");
    } else if (strcmp(type, "integer") == 0 && strcmp(format, "int32") == 0) {
        json_int_t i = json_integer_value(inst);
        if (i < INT32_MIN || i > INT32_MAX)
            return OV_BAD(v, "%" JSON_INTEGER_FORMAT " is out of int32 range", i);
    }
    return 0;
}

static int
check_type(ov_t *v, const char *type, json_t *inst)
{
    int ok;
    if (strcmp(type, "object") == 0)
        ok = json_is_object(inst);
    else if (strcmp(type, "array") == 0)
        ok = json_is_array(inst);
    else if (strcmp(type, "string") == 0)
        ok = json_is_string(inst);
    else if (strcmp(type, "integer") == 0)
        ok = json_is_integer(inst);
    else if (strcmp(type, "number") == 0)
        ok = json_is_number(inst);
    else if (strcmp(type, "boolean") == 0)
        ok = json_is_boolean(inst);
    else
        return OV_UNUSABLE(v, "schema has unknown type \"%s\"", type);
    if (!ok)
        return OV_BAD(v, "expected %s, got %s", type, json_type_name(inst));
    return 0;
}

/* Does schema (or one of its allOf members, through $ref) declare property name? */
static int
declares(ov_t *v, json_t *schema, const char *name, int depth)
{
    if (!json_is_object(schema) || depth > 32)
        return 0;
    json_t *ref = json_object_get(schema, "$ref");
    if (json_is_string(ref))
        return declares(v, resolve_pointer(v->doc, json_string_value(ref)), name, depth + 1);
    if (json_object_get(json_object_get(schema, "properties"), name))
        return 1;
    size_t i;
    json_t *sub;
    json_array_foreach(json_object_get(schema, "allOf"), i, sub)
    {
        if (declares(v, sub, name, depth + 1))
            return 1;
    }
    return 0;
}

static int
declares_any(ov_t *v, json_t *schema, int depth)
{
    if (!json_is_object(schema) || depth > 32)
        return 0;
    json_t *ref = json_object_get(schema, "$ref");
    if (json_is_string(ref))
        return declares_any(v, resolve_pointer(v->doc, json_string_value(ref)), depth + 1);
    if (json_object_size(json_object_get(schema, "properties")) > 0)
        return 1;
    size_t i;
    json_t *sub;
    json_array_foreach(json_object_get(schema, "allOf"), i, sub)
    {
        if (declares_any(v, sub, depth + 1))
            return 1;
    }
    return 0;
}

static int
check_object(ov_t *v, json_t *schema, json_t *inst)
{
    json_t *props = json_object_get(schema, "properties");
    json_t *addl = json_object_get(schema, "additionalProperties");
    json_t *req = json_object_get(schema, "required");
    size_t i;
    json_t *name;
    json_array_foreach(req, i, name)
    {
        if (json_is_string(name) && !json_object_get(inst, json_string_value(name)))
            return OV_BAD(v, "missing required property \"%s\"", json_string_value(name));
    }
    int strict = v->strict && declares_any(v, schema, 0);
    const char *key;
    json_t *val;
    json_object_foreach(inst, key, val)
    {
        json_t *ps = props ? json_object_get(props, key) : NULL;
        int rc = 0;
        size_t saved = path_push_key(v, key);
        if (ps) {
            rc = ov_check(v, ps, val);
        } else if (json_is_false(addl)) {
            rc = OV_BAD(v, "property not allowed here");
        } else if (json_is_object(addl)) {
            rc = ov_check(v, addl, val);
        } else if (strict && !declares(v, schema, key, 0)) {
            rc = OV_BAD(v, "property not declared by the schema");
        }
        path_pop(v, saved);
        if (rc)
            return rc;
    }
    return 0;
}

/* anyOf / oneOf: count the members the instance satisfies, without leaving their messages. */
static int
count_matches(ov_t *v, json_t *list, json_t *inst, int *unusable)
{
    int n = 0;
    size_t i;
    json_t *sub;
    json_array_foreach(list, i, sub)
    {
        ov_t probe = *v;
        probe.err = NULL;
        probe.errlen = 0;
        int rc = ov_check(&probe, sub, inst);
        if (rc < 0)
            *unusable = 1;
        if (rc == 0)
            n++;
    }
    return n;
}

static int
ov_check(ov_t *v, json_t *schema, json_t *inst)
{
    int rc = 0;
    if (!json_is_object(schema))
        return OV_UNUSABLE(v, "schema is not an object");
    if (++v->depth > OV_MAX_DEPTH) {
        rc = OV_UNUSABLE(v, "schema nesting deeper than %d (a $ref cycle?)", OV_MAX_DEPTH);
        goto out;
    }

    json_t *ref = json_object_get(schema, "$ref");
    if (ref) {
        /* OpenAPI 3.0: siblings of $ref are ignored. */
        const char *r = json_string_value(ref);
        json_t *target = r ? resolve_pointer(v->doc, r) : NULL;
        if (!target)
            rc = OV_UNUSABLE(v, "cannot resolve $ref \"%s\"", r ? r : "?");
        else
            rc = ov_check(v, target, inst);
        goto out;
    }

    if (json_is_null(inst) && json_is_true(json_object_get(schema, "nullable")))
        goto out;

    const char *type = json_string_value(json_object_get(schema, "type"));
    if (type && (rc = check_type(v, type, inst)) != 0)
        goto out;

    json_t *en = json_object_get(schema, "enum");
    if (json_is_array(en)) {
        int found = 0;
        size_t i;
        json_t *e;
        json_array_foreach(en, i, e)
        {
            if (json_equal(e, inst)) {
                found = 1;
                break;
            }
        }
        if (!found) {
            char buf[96];
            rc = OV_BAD(v, "%s is not one of the %zu enum values",
                        json_brief(inst, buf, sizeof buf), json_array_size(en));
            goto out;
        }
    }

    const char *format = json_string_value(json_object_get(schema, "format"));
    if (type && format && (rc = check_format(v, type, format, inst)) != 0)
        goto out;

    if (json_is_object(inst) && (rc = check_object(v, schema, inst)) != 0)
        goto out;

    json_t *items = json_object_get(schema, "items");
    if (items && json_is_array(inst)) {
        size_t i;
        json_t *el;
        json_array_foreach(inst, i, el)
        {
            size_t saved = path_push_index(v, i);
            rc = ov_check(v, items, el);
            path_pop(v, saved);
            if (rc)
                goto out;
        }
    }

    size_t i;
    json_t *sub;
    json_array_foreach(json_object_get(schema, "allOf"), i, sub)
    {
        if ((rc = ov_check(v, sub, inst)) != 0)
            goto out;
    }

    json_t *any = json_object_get(schema, "anyOf");
    if (json_is_array(any)) {
        int unusable = 0;
        int n = count_matches(v, any, inst, &unusable);
        if (unusable)
            rc = OV_UNUSABLE(v, "an anyOf member cannot be used");
        else if (n == 0)
            rc = OV_BAD(v, "matches none of the anyOf schemas");
        if (rc)
            goto out;
    }
    json_t *one = json_object_get(schema, "oneOf");
    if (json_is_array(one)) {
        int unusable = 0;
        int n = count_matches(v, one, inst, &unusable);
        if (unusable)
            rc = OV_UNUSABLE(v, "a oneOf member cannot be used");
        else if (n != 1)
            rc = OV_BAD(v, "matches %d of the oneOf schemas instead of exactly one", n);
    }
out:
    v->depth--;
    return rc;
}

static int
validate(json_t *doc, const char *schema_ref, json_t *instance, char *err, size_t errlen,
         int strict)
{
    ov_t v = {.doc = doc, .strict = strict, .err = err, .errlen = errlen};
    snprintf(v.path, sizeof v.path, "$");
    v.pathlen = 1;
    if (err && errlen)
        err[0] = '\0';
    if (!doc || !schema_ref || !instance)
        return OV_UNUSABLE(&v, "no document, schema or instance");
    json_t *schema;
    if (schema_ref[0] == '#') {
        schema = resolve_pointer(doc, schema_ref);
    } else {
        schema = json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"),
                                 schema_ref);
    }
    if (!schema)
        return OV_UNUSABLE(&v, "no schema \"%s\" in the document", schema_ref);
    return ov_check(&v, schema, instance);
}

int
openapi_validate(json_t *doc, const char *schema_ref, json_t *instance, char *err, size_t errlen)
{
    return validate(doc, schema_ref, instance, err, errlen, 0);
}

int
openapi_validate_strict(json_t *doc, const char *schema_ref, json_t *instance, char *err,
                        size_t errlen)
{
    return validate(doc, schema_ref, instance, err, errlen, 1);
}
