/* cloudevents.c — decode CloudEvents ingest requests (JSON, via jansson) into validated tally
 * events.
 *
 * Two passes over the parsed document: the first checks every event and
 * records borrowed pointers into the jansson tree; only when all events pass
 * does the second size one block and copy the strings, so a refused request
 * costs no copies and a decoded batch is one allocation that outlives the
 * tree. The wire rules are applied by tally__event_validate() itself, so the
 * HTTP door can never accept an event the nanomsg door would refuse.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "cloudevents.h"
#include "codec.h"
#include "tally_proto.h"
#include "timeutil.h"

/* Bytes of a quoted excerpt of input in a message: 64 + quotes + "..." + NUL. */
#define QUOTE_MAX 64
#define QBUF (QUOTE_MAX + 8)

/* One checked event, pointing into the jansson tree (borrowed). */
typedef struct parsed {
    const char *ns, *metric, *source, *id;
    int is_float;
    int64_t ival;
    double fval;
    int64_t ts_ms;
    size_t nlabels;
    tally_label_t labels[TALLY_MAX_LABELS];
} parsed_t;

/* ---- errors ------------------------------------------------------------ */

static const char *
code_of(int status)
{
    if (status == 413)
        return "ETOOLARGE";
    if (status >= 500)
        return "EINTERNAL";
    return "EBADINPUT";
}

/* Fill *err and return rc. The message is cut to fit and anything outside
 * printable ASCII becomes '?', whatever the format pulled in. */
__attribute__((format(printf, 5, 6))) static int
refuse(tally__ce_error_t *err, int rc, int status, long index, const char *fmt, ...)
{
    err->status = status;
    err->code = code_of(status);
    err->index = index;
    size_t off = 0;
    if (index >= 0) {
        int n = snprintf(err->message, sizeof err->message, "event %ld: ", index);
        off = n > 0 ? (size_t)n : 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + off, sizeof err->message - off, fmt, ap);
    va_end(ap);
    for (char *p = err->message; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    return rc;
}

/* "text" cut to QUOTE_MAX bytes (then "..." follows the closing quote), with
 * bytes outside printable ASCII shown as '?': messages never echo large or
 * binary input. */
static const char *
quote(char buf[QBUF], const char *s, size_t len)
{
    size_t n = len < QUOTE_MAX ? len : QUOTE_MAX, o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
    }
    buf[o++] = '"';
    if (len > n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static const char *
json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* ---- media types ------------------------------------------------------- */

static int
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The media type of a Content-Type value: [*start, *start + *len), blanks
 * trimmed, parameters dropped. */
static void
media_type(const char *s, const char **start, size_t *len)
{
    while (is_blank(*s))
        s++;
    size_t n = strcspn(s, ";");
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    *start = s;
    *len = n;
}

static int
media_is(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(s, want, len) == 0;
}

tally__ce_kind_t
tally__ce_media_kind(const char *content_type)
{
    if (content_type == NULL)
        return TALLY__CE_REFUSED;
    const char *m;
    size_t n;
    media_type(content_type, &m, &n);
    if (media_is(m, n, "application/cloudevents+json"))
        return TALLY__CE_ONE;
    if (media_is(m, n, "application/cloudevents-batch+json"))
        return TALLY__CE_BATCH;
    if (media_is(m, n, "application/json"))
        return TALLY__CE_EITHER;
    return TALLY__CE_REFUSED;
}

/* ---- bounds before parsing --------------------------------------------- */

/* Whether the body nests deeper than TALLY__CE_MAX_DEPTH. jansson's own
 * limit (JSON_PARSER_MAX_DEPTH, 2048) bounds its recursion, not the work; a
 * CloudEvent needs four levels. Exact for valid JSON (brackets inside
 * strings do not count); invalid JSON is jansson's to refuse. */
static int
too_deep(const char *s, size_t len)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > TALLY__CE_MAX_DEPTH)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

/* ---- values ------------------------------------------------------------ */

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A numeric string value (see the header for the grammar). 0 or -1. */
static int
parse_numstr(const char *s, size_t len, int *is_float, int64_t *ival, double *fval)
{
    if (len == 0 || len > TALLY__CE_MAX_NUMSTR_LEN)
        return -1;
    size_t i = 0, mant = 0;
    int integral = 1;
    if (s[i] == '+' || s[i] == '-')
        i++;
    while (i < len && is_digit(s[i]))
        i++, mant++;
    if (i < len && s[i] == '.') {
        integral = 0;
        i++;
        while (i < len && is_digit(s[i]))
            i++, mant++;
    }
    if (mant == 0)
        return -1;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp = 0;
        while (i < len && is_digit(s[i]))
            i++, exp++;
        if (exp == 0)
            return -1;
    }
    if (i != len)
        return -1;

    char buf[TALLY__CE_MAX_NUMSTR_LEN + 1];
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    if (integral) {
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0') {
            *is_float = 0;
            *ival = (int64_t)v;
            return 0;
        }
        /* beyond int64: read as a float below */
    }
    /* The grammar above is a subset of what strtod reads in the C locale;
     * tally never calls setlocale(LC_NUMERIC). */
    errno = 0;
    double d = strtod(buf, &end);
    if (*end != '\0' || !isfinite(d))
        return -1;
    *is_float = 1;
    *fval = d;
    return 0;
}

/* ---- one event --------------------------------------------------------- */

typedef struct ctx {
    const tally__catalog_t *catalog;
    int64_t now_ms;
    tally__ce_error_t *err;
} ctx_t;

/* A string attribute. required: missing/null/non-string/empty are 400.
 * Optional: missing or null leave *out NULL; non-string is 400. */
static int
get_str(const ctx_t *c, json_t *o, long idx, const char *name, int required, const char **out,
        size_t *len)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    *len = 0;
    if (v == NULL || json_is_null(v)) {
        if (!required)
            return 0;
        /* explicit returns: the analyzer then knows *out is set on 0 */
        (void)refuse(c->err, TALLY_EINVAL, 400, idx, "required attribute %s is %s", name,
                     v ? "null" : "missing");
        return TALLY_EINVAL;
    }
    const char *str = json_string_value(v); /* NULL unless a string */
    if (str == NULL) {
        (void)refuse(c->err, TALLY_EINVAL, 400, idx, "attribute %s must be a string, not %s", name,
                     json_kind(v));
        return TALLY_EINVAL;
    }
    size_t n = json_string_length(v);
    if (n == 0) {
        (void)refuse(c->err, TALLY_EINVAL, 400, idx, "attribute %s must not be empty", name);
        return TALLY_EINVAL;
    }
    *out = str;
    *len = n;
    return 0;
}

/* Check the labels p->labels[0..n) one by one, then together, with the
 * wire rules; a single-label event tells which label and which half fails. */
static int
check_labels(const ctx_t *c, long idx, parsed_t *p)
{
    char q1[QBUF], q2[QBUF];
    tally_event_t ev = {.ns = p->ns, .metric = p->metric, .ts_ms = p->ts_ms};
    for (size_t i = 0; i < p->nlabels; i++) {
        tally_label_t one = {.key = p->labels[i].key, .value = ""};
        ev.labels = &one;
        ev.nlabels = 1;
        const char *k = one.key;
        if (tally__event_validate(&ev, NULL) != 0)
            return refuse(c->err, TALLY_EINVAL, 422, idx,
                          "data member %s is a string but not a label key ([A-Za-z0-9_.-/], 1 to "
                          "%d bytes)",
                          quote(q1, k, strlen(k)), TALLY_MAX_LABEL_KEY_LEN);
        one.value = p->labels[i].value;
        if (tally__event_validate(&ev, NULL) != 0)
            return refuse(c->err, TALLY_EINVAL, 422, idx,
                          "label %s: value %s is longer than %d bytes or holds control characters",
                          quote(q1, k, strlen(k)), quote(q2, one.value, strlen(one.value)),
                          TALLY_MAX_LABEL_VALUE_LEN);
    }
    ev.labels = p->labels;
    ev.nlabels = p->nlabels;
    int reason = 0;
    if (tally__event_validate(&ev, &reason) != 0) {
        if (reason == TALLY_PROTO_REJECT_too_long)
            return refuse(c->err, TALLY_EINVAL, 422, idx,
                          "labels take more than %d bytes (key + value + 2 each)",
                          TALLY_MAX_LABELS_BYTES);
        return refuse(c->err, TALLY_EINVAL, 422, idx, "labels refused: %s",
                      tally__reject_text(reason));
    }
    return 0;
}

static int
check_value(const ctx_t *c, long idx, json_t *data, parsed_t *p)
{
    char q1[QBUF], q2[QBUF];
    const char *field = tally__catalog_value_field(c->catalog, p->metric);
    json_t *v = data ? json_object_get(data, field) : NULL;
    if (v == NULL)
        return refuse(c->err, TALLY_EINVAL, 422, idx,
                      "data has no member %s: the value of metric %s",
                      quote(q1, field, strlen(field)), quote(q2, p->metric, strlen(p->metric)));
    if (json_is_integer(v)) {
        p->is_float = 0;
        p->ival = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        p->is_float = 1;
        p->fval = json_real_value(v);
        if (!isfinite(p->fval)) /* jansson refuses these; the wire rule, spelled out */
            return refuse(c->err, TALLY_EINVAL, 422, idx, "data.%s is not a finite number", field);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (parse_numstr(s, len, &p->is_float, &p->ival, &p->fval) != 0)
            return refuse(c->err, TALLY_EINVAL, 422, idx,
                          "data.%s: %s is not a number (an integer, or a finite decimal with "
                          "optional exponent, at most %d bytes)",
                          field, quote(q1, s, len), TALLY__CE_MAX_NUMSTR_LEN);
        return 0;
    }
    return refuse(c->err, TALLY_EINVAL, 422, idx,
                  "data.%s must be a number or a numeric string, not %s", field, json_kind(v));
}

/* Check one CloudEvent object: every 400 (shape) check first, then the
 * 422 (tally's rules) ones, so one event's answer does not depend on which
 * of two faults was looked at first. */
static int
check_event(const ctx_t *c, json_t *o, long idx, parsed_t *p)
{
    char q1[QBUF];
    const char *specversion, *type, *subject, *time_s, *dct, *schema;
    size_t sv_len, id_len, src_len, type_len, subj_len, time_len, dct_len, schema_len;
    int rc;

    memset(p, 0, sizeof *p);
    if (!json_is_object(o))
        return refuse(c->err, TALLY_EINVAL, 400, idx, "a CloudEvent must be a JSON object, not %s",
                      json_kind(o));

    /* ---- 400: CloudEvents shape ---- */
    if ((rc = get_str(c, o, idx, "specversion", 1, &specversion, &sv_len)) != 0 ||
        (rc = get_str(c, o, idx, "id", 1, &p->id, &id_len)) != 0 ||
        (rc = get_str(c, o, idx, "source", 1, &p->source, &src_len)) != 0 ||
        (rc = get_str(c, o, idx, "type", 1, &type, &type_len)) != 0 ||
        (rc = get_str(c, o, idx, "subject", 1, &subject, &subj_len)) != 0 ||
        (rc = get_str(c, o, idx, "time", 0, &time_s, &time_len)) != 0 ||
        (rc = get_str(c, o, idx, "datacontenttype", 0, &dct, &dct_len)) != 0 ||
        (rc = get_str(c, o, idx, "dataschema", 0, &schema, &schema_len)) != 0)
        return rc;
    if (strcmp(specversion, "1.0") != 0)
        return refuse(c->err, TALLY_EINVAL, 400, idx,
                      "specversion %s is not supported (only \"1.0\")",
                      quote(q1, specversion, sv_len));
    int64_t ts_ms = c->now_ms;
    if (time_s != NULL && tally__time_parse_rfc3339(time_s, &ts_ms) != 0)
        return refuse(c->err, TALLY_EINVAL, 400, idx,
                      "time %s is not an RFC 3339 date-time (2024-01-31T12:00:00.123Z)",
                      quote(q1, time_s, time_len));
    if (dct != NULL) {
        const char *m;
        size_t mlen;
        media_type(dct, &m, &mlen);
        if (!media_is(m, mlen, "application/json"))
            return refuse(c->err, TALLY_EINVAL, 400, idx,
                          "datacontenttype %s is not supported (only application/json)",
                          quote(q1, dct, dct_len));
    }
    json_t *data = json_object_get(o, "data");
    if (data != NULL && json_is_null(data))
        data = NULL;
    if (data != NULL && !json_is_object(data))
        return refuse(c->err, TALLY_EINVAL, 400, idx, "data must be a JSON object, not %s",
                      json_kind(data));

    /* ---- 422: what tally can meter ---- */
    if (id_len > TALLY__CE_MAX_ID_LEN)
        return refuse(c->err, TALLY_EINVAL, 422, idx, "id is longer than %d bytes",
                      TALLY__CE_MAX_ID_LEN);
    if (src_len > TALLY__CE_MAX_SOURCE_LEN)
        return refuse(c->err, TALLY_EINVAL, 422, idx, "source is longer than %d bytes",
                      TALLY__CE_MAX_SOURCE_LEN);
    if (!tally__valid_ns(subject, subj_len))
        return refuse(c->err, TALLY_EINVAL, 422, idx,
                      "subject %s is not a valid namespace ([a-z0-9-], 1 to %d bytes)",
                      quote(q1, subject, subj_len), TALLY_MAX_NS_LEN);
    if (strcmp(subject, "system") == 0)
        return refuse(c->err, TALLY_EINVAL, 422, idx,
                      "subject \"system\" is reserved (it names the whole tenant)");
    if (!tally__valid_metric(type, type_len))
        return refuse(c->err, TALLY_EINVAL, 422, idx,
                      "type %s is not a valid metric label ([A-Za-z0-9_.:-], 1 to %d bytes)",
                      quote(q1, type, type_len), TALLY_MAX_METRIC_LEN);
    if (ts_ms <= 0)
        return refuse(c->err, TALLY_EINVAL, 422, idx, "time %s is not after 1970-01-01T00:00:00Z",
                      quote(q1, time_s ? time_s : "", time_len));
    p->ns = subject;
    p->metric = type;
    p->ts_ms = ts_ms;
    if ((rc = check_value(c, idx, data, p)) != 0)
        return rc;

    if (data != NULL) {
        const char *field = tally__catalog_value_field(c->catalog, p->metric);
        const char *k;
        json_t *v;
        json_object_foreach(data, k, v)
        {
            if (!json_is_string(v) || strcmp(k, field) == 0)
                continue; /* non-strings are not labels; the value is not one */
            if (p->nlabels == TALLY_MAX_LABELS)
                return refuse(c->err, TALLY_EINVAL, 422, idx,
                              "more than %d labels (string members of data other than %s)",
                              TALLY_MAX_LABELS, quote(q1, field, strlen(field)));
            p->labels[p->nlabels].key = k;
            p->labels[p->nlabels].value = json_string_value(v);
            p->nlabels++;
        }
    }
    if ((rc = check_labels(c, idx, p)) != 0)
        return rc;

    /* The whole event, by the wire rules: a net under the checks above. */
    tally_event_t ev = {.ns = p->ns,
                        .metric = p->metric,
                        .is_float = p->is_float,
                        .ivalue = p->ival,
                        .fvalue = p->fval,
                        .ts_ms = p->ts_ms,
                        .labels = p->labels,
                        .nlabels = p->nlabels};
    int reason = 0;
    if (tally__event_validate(&ev, &reason) != 0)
        return refuse(c->err, TALLY_EINVAL, 422, idx, "event refused: %s",
                      tally__reject_text(reason));
    return 0;
}

/* ---- the batch --------------------------------------------------------- */

static size_t
str_size(const char *s)
{
    return strlen(s) + 1;
}

static const char *
put(char **cursor, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = *cursor;
    memcpy(d, s, n);
    *cursor += n;
    return d;
}

/* Copy the checked events into one block owned by out. */
static int
build(const parsed_t *ps, size_t n, tally__ce_batch_t *out)
{
    size_t nlabels = 0, strings = 0;
    for (size_t i = 0; i < n; i++) {
        const parsed_t *p = &ps[i];
        strings += str_size(p->ns) + str_size(p->metric) + str_size(p->source) + str_size(p->id);
        for (size_t j = 0; j < p->nlabels; j++)
            strings += str_size(p->labels[j].key) + str_size(p->labels[j].value);
        nlabels += p->nlabels;
    }
    /* n <= max_events (uint32) and strings <= the body's bytes: no overflow */
    size_t ev_bytes = n * sizeof(tally__ce_event_t);
    size_t lab_bytes = nlabels * sizeof(tally_label_t);
    char *mem = malloc(ev_bytes + lab_bytes + strings);
    if (mem == NULL)
        return -ENOMEM;
    tally__ce_event_t *evs = (tally__ce_event_t *)mem;
    tally_label_t *labs = (tally_label_t *)(mem + ev_bytes); /* ev_bytes keeps 8-byte alignment */
    char *cur = mem + ev_bytes + lab_bytes;
    for (size_t i = 0; i < n; i++) {
        const parsed_t *p = &ps[i];
        tally__ce_event_t *e = &evs[i];
        memset(e, 0, sizeof *e);
        e->ev.ns = put(&cur, p->ns);
        e->ev.metric = put(&cur, p->metric);
        e->ev.is_float = p->is_float;
        e->ev.ivalue = p->is_float ? 0 : p->ival;
        e->ev.fvalue = p->is_float ? p->fval : 0.0;
        e->ev.ts_ms = p->ts_ms;
        e->ev.labels = p->nlabels ? labs : NULL;
        e->ev.nlabels = p->nlabels;
        for (size_t j = 0; j < p->nlabels; j++) {
            labs->key = put(&cur, p->labels[j].key);
            labs->value = put(&cur, p->labels[j].value);
            labs++;
        }
        e->source = put(&cur, p->source);
        e->id = put(&cur, p->id);
    }
    out->events = evs;
    out->n = n;
    out->mem = mem;
    return 0;
}

int
tally__ce_decode(const char *content_type, const char *body, size_t len, int64_t now_ms,
                 const tally__catalog_t *catalog, uint32_t max_events, tally__ce_batch_t *out,
                 tally__ce_error_t *err)
{
    tally__ce_error_t scratch;
    json_t *doc = NULL;
    parsed_t *ps = NULL;
    int rc;

    if (err == NULL)
        err = &scratch;
    memset(err, 0, sizeof *err);
    err->index = -1;
    if (out == NULL)
        return refuse(err, TALLY_EINVAL, 500, -1, "no batch to decode into");
    memset(out, 0, sizeof *out);
    if (now_ms <= 0)
        return refuse(err, TALLY_EINVAL, 500, -1, "now_ms must be positive");
    if (max_events == 0)
        max_events = TALLY_MAX_BATCH_EVENTS;
    ctx_t c = {.catalog = catalog, .now_ms = now_ms, .err = err};

    tally__ce_kind_t kind = tally__ce_media_kind(content_type);
    if (kind == TALLY__CE_REFUSED) {
        char q[QBUF];
        return refuse(err, TALLY_EINVAL, 415, -1,
                      "Content-Type %s is not accepted (application/cloudevents+json, "
                      "application/cloudevents-batch+json or application/json)",
                      content_type ? quote(q, content_type, strlen(content_type)) : "(none)");
    }
    if (len == 0 || body == NULL)
        return refuse(err, TALLY_EINVAL, 400, -1, "the body is empty");
    if (too_deep(body, len))
        return refuse(err, TALLY_EINVAL, 400, -1, "the body nests JSON deeper than %d levels",
                      TALLY__CE_MAX_DEPTH);

    json_error_t je;
    doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return refuse(err, -ENOMEM, 500, -1, "out of memory");
        if (json_error_code(&je) == json_error_numeric_overflow)
            return refuse(err, TALLY_EINVAL, 422, -1,
                          "a number is out of range (integers are 64-bit, reals finite): line %d "
                          "column %d",
                          je.line, je.column);
        return refuse(err, TALLY_EINVAL, 400, -1,
                      "the body is not valid JSON: %s (line %d column %d)", je.text, je.line,
                      je.column);
    }

    int is_array = json_is_array(doc);
    if (kind == TALLY__CE_ONE && !json_is_object(doc)) {
        rc = refuse(err, TALLY_EINVAL, 400, -1,
                    "application/cloudevents+json takes one CloudEvent object, not %s (send a "
                    "batch as application/cloudevents-batch+json)",
                    json_kind(doc));
        goto fail;
    }
    if (kind == TALLY__CE_BATCH && !is_array) {
        rc = refuse(err, TALLY_EINVAL, 400, -1,
                    "application/cloudevents-batch+json takes a JSON array of CloudEvents, not %s",
                    json_kind(doc));
        goto fail;
    }
    if (!is_array && !json_is_object(doc)) {
        rc = refuse(err, TALLY_EINVAL, 400, -1,
                    "the body must be a CloudEvent object or an array of them, not %s",
                    json_kind(doc));
        goto fail;
    }
    size_t n = is_array ? json_array_size(doc) : 1;
    if (n == 0) {
        rc = refuse(err, TALLY_EINVAL, 400, -1, "the batch is empty");
        goto fail;
    }
    if (n > max_events) {
        rc = refuse(err, TALLY_ETOOBIG, 413, -1, "%zu events; at most %u in one request", n,
                    (unsigned)max_events);
        goto fail;
    }
    ps = malloc(n * sizeof *ps);
    if (ps == NULL) {
        rc = refuse(err, -ENOMEM, 500, -1, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = is_array ? json_array_get(doc, i) : doc;
        if ((rc = check_event(&c, o, (long)i, &ps[i])) != 0)
            goto fail;
    }
    if ((rc = build(ps, n, out)) != 0) {
        refuse(err, rc, 500, -1, "out of memory");
        goto fail;
    }
    free(ps);
    json_decref(doc);
    return 0;

fail:
    free(ps);
    json_decref(doc);
    memset(out, 0, sizeof *out);
    return rc;
}

void
tally__ce_batch_fini(tally__ce_batch_t *b)
{
    if (b == NULL)
        return;
    free(b->mem);
    memset(b, 0, sizeof *b);
}

/* ---- dedup ------------------------------------------------------------- */

static void
absorb(crypto_generichash_state *st, const char *s)
{
    size_t len = strlen(s);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)((uint64_t)len >> (8 * i));
    crypto_generichash_update(st, le, sizeof le);
    crypto_generichash_update(st, (const unsigned char *)s, len);
}

int
tally__ce_dedup_key(const char *cred, const char *source, const char *id,
                    uint8_t out[TALLY__CE_DEDUP_KEY_LEN])
{
    if (cred == NULL || source == NULL || id == NULL || out == NULL)
        return TALLY_EINVAL;
    /* The tag separates these keys from any other BLAKE2b use and lets a
     * later encoding change say so. */
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, TALLY__CE_DEDUP_KEY_LEN);
    absorb(&st, "tally.cloudevents.dedup.v1");
    absorb(&st, cred);
    absorb(&st, source);
    absorb(&st, id);
    crypto_generichash_final(&st, out, TALLY__CE_DEDUP_KEY_LEN);
    return 0;
}
