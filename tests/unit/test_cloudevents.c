/* test_cloudevents.c — Criterion tests of the CloudEvents ingest decoder: shapes, media types,
 * values, labels, errors, dedup keys. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "catalog.h"
#include "cloudevents.h"
#include "codec.h"
#include "tally/tally.h"

#define NOW 1700000000000LL /* 2023-11-14T22:13:20Z in unix milliseconds */

#define CT_ONE "application/cloudevents+json"
#define CT_BATCH "application/cloudevents-batch+json"
#define CT_JSON "application/json"

/* A CloudEvent with the attributes every test needs and the given data. */
#define CE_ID(id, subject, type, data)                                                             \
    "{\"specversion\":\"1.0\",\"id\":\"" id "\",\"source\":\"svc\",\"type\":\"" type               \
    "\",\"subject\":\"" subject "\",\"data\":" data "}"
#define CE(subject, type, data) CE_ID("e1", subject, type, data)
#define GOOD CE("acme", "http_requests", "{\"value\":1}")

static int
decode_full(const char *ct, const char *body, const tally__catalog_t *cat, uint32_t max,
            tally__ce_batch_t *b, tally__ce_error_t *e)
{
    return tally__ce_decode(ct, body, body ? strlen(body) : 0, NOW, cat, max, b, e);
}

static int
decode(const char *ct, const char *body, tally__ce_batch_t *b, tally__ce_error_t *e)
{
    return decode_full(ct, body, NULL, 0, b, e);
}

static int
printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

/* A refused request: rc, status, code, index and a fragment of the message;
 * the batch is left empty and the message is printable. */
typedef struct refusal {
    const char *ct;
    const char *body;
    int status;
    long index;
    const char *fragment;
} refusal_t;

static void
expect_refused(const refusal_t *t, const tally__catalog_t *cat)
{
    tally__ce_batch_t b;
    tally__ce_error_t e;
    int rc = decode_full(t->ct, t->body, cat, 0, &b, &e);
    int want_rc = t->status == 413 ? TALLY_ETOOBIG : TALLY_EINVAL;
    cr_expect_eq(rc, want_rc, "rc %d for %s", rc, t->body);
    cr_expect_eq(e.status, t->status, "status %d, want %d for %s (%s)", e.status, t->status,
                 t->body, e.message);
    cr_expect_eq(e.index, t->index, "index %ld, want %ld for %s (%s)", e.index, t->index, t->body,
                 e.message);
    cr_expect_str_eq(e.code, t->status == 413 ? "ETOOLARGE" : "EBADINPUT");
    cr_expect(strstr(e.message, t->fragment) != NULL, "message '%s' lacks '%s'", e.message,
              t->fragment);
    cr_expect(printable(e.message), "unprintable message for %s", t->body);
    if (t->index >= 0) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "event %ld: ", t->index);
        cr_expect(strncmp(e.message, prefix, strlen(prefix)) == 0, "'%s' lacks '%s'", e.message,
                  prefix);
    }
    cr_expect_eq(b.n, 0);
    cr_expect_null(b.events);
    cr_expect_null(b.mem);
    tally__ce_batch_fini(&b);
}

static void
expect_all_refused(const refusal_t *t, size_t n, const tally__catalog_t *cat)
{
    for (size_t i = 0; i < n; i++)
        expect_refused(&t[i], cat);
}

static char *
write_temp(const char *text)
{
    char *path = strdup("/tmp/tally-test-ce-XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static const char *
label(const tally_event_t *ev, const char *key)
{
    for (size_t i = 0; i < ev->nlabels; i++)
        if (strcmp(ev->labels[i].key, key) == 0)
            return ev->labels[i].value;
    return NULL;
}

/* ---- shapes ------------------------------------------------------------ */

Test(cloudevents, one_event_decodes_with_every_attribute)
{
    const char *body =
        "{\"specversion\":\"1.0\",\"id\":\"5c10fade\",\"source\":\"lb-7\","
        "\"type\":\"http_requests\",\"subject\":\"acme-prod\","
        "\"time\":\"2023-01-01T01:01:01.001Z\",\"datacontenttype\":\"application/json\","
        "\"dataschema\":\"https://example.com/s\",\"myext\":42,"
        "\"data\":{\"value\":17,\"site\":\"pa2\",\"object\":\"vh-1\"}}";
    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_assert_eq(decode(CT_ONE, body, &b, &e), 0, "%s", e.message);
    cr_expect_eq(e.status, 0);
    cr_assert_eq(b.n, 1);
    const tally__ce_event_t *ce = &b.events[0];
    cr_expect_str_eq(ce->ev.ns, "acme-prod");
    cr_expect_str_eq(ce->ev.metric, "http_requests");
    cr_expect_eq(ce->ev.is_float, 0);
    cr_expect_eq(ce->ev.ivalue, 17);
    cr_expect_eq(ce->ev.ts_ms, 1672534861001LL);
    cr_expect_str_eq(ce->source, "lb-7");
    cr_expect_str_eq(ce->id, "5c10fade");
    cr_assert_eq(ce->ev.nlabels, 2);
    /* in body order */
    cr_expect_str_eq(ce->ev.labels[0].key, "site");
    cr_expect_str_eq(ce->ev.labels[0].value, "pa2");
    cr_expect_str_eq(ce->ev.labels[1].key, "object");
    cr_expect_str_eq(ce->ev.labels[1].value, "vh-1");
    cr_expect_eq(tally__event_validate(&ce->ev, NULL), 0);
    tally__ce_batch_fini(&b);
    cr_expect_eq(b.n, 0);
    tally__ce_batch_fini(&b); /* twice is fine */
}

Test(cloudevents, batch_keeps_body_order_and_owns_its_strings)
{
    char *body = strdup("[" CE_ID("a", "ns-a", "m1", "{\"value\":1,\"k\":\"v1\"}") "," CE_ID(
        "b", "ns-b", "m2", "{\"value\":2.5}") "," CE_ID("c", "ns-c", "m3",
                                                        "{\"value\":\"3\"}") "]");
    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_assert_eq(decode(CT_BATCH, body, &b, &e), 0, "%s", e.message);
    memset(body, 'x', strlen(body)); /* nothing may point into the body */
    free(body);
    cr_assert_eq(b.n, 3);
    cr_expect_str_eq(b.events[0].id, "a");
    cr_expect_str_eq(b.events[0].ev.ns, "ns-a");
    cr_expect_str_eq(label(&b.events[0].ev, "k"), "v1");
    cr_expect_str_eq(b.events[1].id, "b");
    cr_expect_str_eq(b.events[1].ev.metric, "m2");
    cr_expect_eq(b.events[1].ev.is_float, 1);
    cr_expect_float_eq(b.events[1].ev.fvalue, 2.5, 1e-12);
    cr_expect_eq(b.events[1].ev.nlabels, 0);
    cr_expect_null(b.events[1].ev.labels);
    cr_expect_str_eq(b.events[2].ev.ns, "ns-c");
    cr_expect_eq(b.events[2].ev.ivalue, 3);
    for (size_t i = 0; i < b.n; i++) {
        cr_expect_eq(b.events[i].ev.ts_ms, NOW); /* no time: now */
        cr_expect_eq(tally__event_validate(&b.events[i].ev, NULL), 0);
    }
    tally__ce_batch_fini(&b);
}

Test(cloudevents, application_json_takes_an_object_or_an_array)
{
    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_assert_eq(decode(CT_JSON, GOOD, &b, &e), 0, "%s", e.message);
    cr_expect_eq(b.n, 1);
    tally__ce_batch_fini(&b);
    cr_assert_eq(decode(CT_JSON, "[" GOOD "," GOOD "]", &b, &e), 0, "%s", e.message);
    cr_expect_eq(b.n, 2);
    tally__ce_batch_fini(&b);
    /* one event in a batch array is a batch of one */
    cr_assert_eq(decode(CT_BATCH, "[" GOOD "]", &b, &e), 0, "%s", e.message);
    cr_expect_eq(b.n, 1);
    tally__ce_batch_fini(&b);
}

Test(cloudevents, media_types_match_without_case_and_parameters)
{
    static const struct {
        const char *ct;
        tally__ce_kind_t kind;
    } t[] = {
        {"application/cloudevents+json", TALLY__CE_ONE},
        {"Application/CloudEvents+JSON", TALLY__CE_ONE},
        {"application/cloudevents+json; charset=utf-8", TALLY__CE_ONE},
        {"  application/cloudevents-batch+json ;charset=UTF-8", TALLY__CE_BATCH},
        {"application/cloudevents-batch+json", TALLY__CE_BATCH},
        {"application/json", TALLY__CE_EITHER},
        {"APPLICATION/JSON\t; charset=utf-8", TALLY__CE_EITHER},
        {NULL, TALLY__CE_REFUSED},
        {"", TALLY__CE_REFUSED},
        {"text/plain", TALLY__CE_REFUSED},
        {"application/jsonx", TALLY__CE_REFUSED},
        {"application/cloudevents", TALLY__CE_REFUSED},
        {"application/x-www-form-urlencoded", TALLY__CE_REFUSED},
        {"application/ json", TALLY__CE_REFUSED},
        {"multipart/form-data; boundary=application/json", TALLY__CE_REFUSED},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_expect_eq(tally__ce_media_kind(t[i].ct), t[i].kind, "%s", t[i].ct ? t[i].ct : "NULL");

    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_assert_eq(decode("application/cloudevents+json; charset=utf-8", GOOD, &b, &e), 0, "%s",
                 e.message);
    tally__ce_batch_fini(&b);
}

Test(cloudevents, other_media_types_are_415)
{
    const refusal_t t[] = {
        {NULL, GOOD, 415, -1, "(none) is not accepted"},
        {"text/plain", GOOD, 415, -1, "Content-Type \"text/plain\" is not accepted"},
        {"application/xml", "<a/>", 415, -1, "not accepted"},
        {"", GOOD, 415, -1, "not accepted"},
    };
    expect_all_refused(t, sizeof t / sizeof t[0], NULL);
}

Test(cloudevents, malformed_requests_are_400)
{
    char deep[256] = "";
    for (int i = 0; i < TALLY__CE_MAX_DEPTH + 1; i++)
        strcat(deep, "[");
    const refusal_t t[] = {
        {CT_JSON, "", 400, -1, "the body is empty"},
        {CT_JSON, "not json", 400, -1, "not valid JSON"},
        {CT_JSON, GOOD "x", 400, -1, "not valid JSON"},
        {CT_JSON, "{\"specversion\":\"1.0\"", 400, -1, "not valid JSON"},
        {CT_JSON, "{\"a\":1,\"a\":2}", 400, -1, "not valid JSON"}, /* duplicate key */
        {CT_JSON, deep, 400, -1, "deeper than 32 levels"},
        {CT_JSON, "[]", 400, -1, "the batch is empty"},
        {CT_BATCH, "[]", 400, -1, "the batch is empty"},
        {CT_JSON, "42", 400, -1, "not valid JSON"}, /* jansson takes only containers */
        {CT_JSON, "\"x\"", 400, -1, "not valid JSON"},
        {CT_ONE, "[" GOOD "]", 400, -1, "takes one CloudEvent object, not an array"},
        {CT_BATCH, GOOD, 400, -1, "takes a JSON array of CloudEvents, not an object"},
        {CT_BATCH, "[" GOOD ",1]", 400, 1, "must be a JSON object, not a number"},
        {CT_BATCH, "[" GOOD ",null]", 400, 1, "not null"},
    };
    expect_all_refused(t, sizeof t / sizeof t[0], NULL);
}

Test(cloudevents, missing_or_malformed_attributes_are_400)
{
#define HEAD "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"svc\",\"type\":\"m\","
    const refusal_t t[] = {
        /* required attributes: missing, null, wrong type, empty */
        {CT_JSON, "{\"id\":\"e1\",\"source\":\"s\",\"type\":\"m\",\"subject\":\"a\"}", 400, 0,
         "required attribute specversion is missing"},
        {CT_JSON, "{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"m\",\"subject\":\"a\"}",
         400, 0, "required attribute id is missing"},
        {CT_JSON, "{\"specversion\":\"1.0\",\"id\":\"e\",\"type\":\"m\",\"subject\":\"a\"}", 400, 0,
         "required attribute source is missing"},
        {CT_JSON, "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"subject\":\"a\"}", 400,
         0, "required attribute type is missing"},
        {CT_JSON, HEAD "\"data\":{\"value\":1}}", 400, 0, "required attribute subject is missing"},
        {CT_JSON, HEAD "\"subject\":null,\"data\":{\"value\":1}}", 400, 0,
         "required attribute subject is null"},
        {CT_JSON, HEAD "\"subject\":7,\"data\":{\"value\":1}}", 400, 0,
         "attribute subject must be a string, not a number"},
        {CT_JSON, HEAD "\"subject\":\"\",\"data\":{\"value\":1}}", 400, 0,
         "attribute subject must not be empty"},
        {CT_JSON,
         "{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"s\",\"type\":\"m\",\"subject\":\"a\"}",
         400, 0, "attribute id must not be empty"},
        {CT_JSON,
         "{\"specversion\":\"1.0\",\"id\":1,\"source\":\"s\",\"type\":\"m\",\"subject\":\"a\"}",
         400, 0, "attribute id must be a string, not a number"},
        /* specversion */
        {CT_JSON,
         "{\"specversion\":\"0.3\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\",\"subject\":\"a\"}",
         400, 0, "specversion \"0.3\" is not supported"},
        {CT_JSON,
         "{\"specversion\":1.0,\"id\":\"e\",\"source\":\"s\",\"type\":\"m\",\"subject\":\"a\"}",
         400, 0, "specversion must be a string"},
        /* optional attributes of the wrong type or form */
        {CT_JSON, HEAD "\"subject\":\"a\",\"time\":\"yesterday\",\"data\":{\"value\":1}}", 400, 0,
         "time \"yesterday\" is not an RFC 3339 date-time"},
        {CT_JSON,
         HEAD "\"subject\":\"a\",\"time\":\"2023-01-01 01:01:01Z\",\"data\":{\"value\":1}}", 400, 0,
         "is not an RFC 3339"},
        {CT_JSON, HEAD "\"subject\":\"a\",\"time\":1700000000,\"data\":{\"value\":1}}", 400, 0,
         "attribute time must be a string, not a number"},
        {CT_JSON,
         HEAD "\"subject\":\"a\",\"datacontenttype\":\"text/plain\",\"data\":{\"value\":1}}", 400,
         0, "datacontenttype \"text/plain\" is not supported"},
        {CT_JSON, HEAD "\"subject\":\"a\",\"dataschema\":3,\"data\":{\"value\":1}}", 400, 0,
         "attribute dataschema must be a string"},
        {CT_JSON, HEAD "\"subject\":\"a\",\"data\":[1]}", 400, 0,
         "data must be a JSON object, not an array"},
        {CT_JSON, HEAD "\"subject\":\"a\",\"data\":\"1\"}", 400, 0, "data must be a JSON object"},
        /* a shape fault wins over a semantic one in the same event */
        {CT_JSON, HEAD "\"subject\":\"BAD NS\",\"data\":5}", 400, 0, "data must be a JSON object"},
    };
#undef HEAD
    expect_all_refused(t, sizeof t / sizeof t[0], NULL);
}

Test(cloudevents, optional_attributes_may_be_null)
{
    const char *body = "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"svc\",\"type\":\"m\","
                       "\"subject\":\"a\",\"time\":null,\"datacontenttype\":null,"
                       "\"dataschema\":null,\"data\":{\"value\":1}}";
    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_assert_eq(decode(CT_JSON, body, &b, &e), 0, "%s", e.message);
    cr_expect_eq(b.events[0].ev.ts_ms, NOW);
    tally__ce_batch_fini(&b);
    /* datacontenttype may carry parameters too */
    body = "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"svc\",\"type\":\"m\","
           "\"subject\":\"a\",\"datacontenttype\":\"Application/JSON; charset=utf-8\","
           "\"data\":{\"value\":1}}";
    cr_assert_eq(decode(CT_JSON, body, &b, &e), 0, "%s", e.message);
    tally__ce_batch_fini(&b);
}

Test(cloudevents, time_is_parsed_to_milliseconds)
{
    static const struct {
        const char *time;
        int64_t ms;
    } t[] = {
        {"2023-01-01T01:01:01Z", 1672534861000LL},
        {"2023-01-01T01:01:01.5Z", 1672534861500LL},
        {"2023-01-01T01:01:01.123456789Z", 1672534861123LL}, /* truncated to ms */
        {"2023-01-01T02:01:01+01:00", 1672534861000LL},
        {"2023-01-01t01:01:01z", 1672534861000LL},
        {"1970-01-01T00:00:00.001Z", 1LL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\","
                 "\"subject\":\"a\",\"time\":\"%s\",\"data\":{\"value\":1}}",
                 t[i].time);
        tally__ce_batch_t b;
        tally__ce_error_t e;
        cr_assert_eq(decode(CT_ONE, body, &b, &e), 0, "%s: %s", t[i].time, e.message);
        cr_expect_eq(b.events[0].ev.ts_ms, t[i].ms, "%s", t[i].time);
        tally__ce_batch_fini(&b);
    }
}

/* ---- tally's rules (422) ----------------------------------------------- */

Test(cloudevents, names_and_bounds_tally_cannot_meter_are_422)
{
    char longid[600], longsrc[600], body1[1536], body2[1536];
    memset(longid, 'i', 257);
    longid[257] = '\0';
    memset(longsrc, 's', 257);
    longsrc[257] = '\0';
    snprintf(body1, sizeof body1,
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"s\",\"type\":\"m\","
             "\"subject\":\"a\",\"data\":{\"value\":1}}",
             longid);
    snprintf(body2, sizeof body2,
             "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"%s\",\"type\":\"m\","
             "\"subject\":\"a\",\"data\":{\"value\":1}}",
             longsrc);
    const refusal_t t[] = {
        {CT_JSON, CE("Acme", "m", "{\"value\":1}"), 422, 0,
         "subject \"Acme\" is not a valid namespace"},
        {CT_JSON, CE("a_b", "m", "{\"value\":1}"), 422, 0, "is not a valid namespace"},
        {CT_JSON,
         CE("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "m",
            "{\"value\":1}"),
         422, 0, "is not a valid namespace"},
        {CT_JSON, CE("system", "m", "{\"value\":1}"), 422, 0, "subject \"system\" is reserved"},
        {CT_JSON, CE("a", "com.example/x", "{\"value\":1}"), 422, 0,
         "type \"com.example/x\" is not a valid metric label"},
        {CT_JSON, CE("a", "has space", "{\"value\":1}"), 422, 0, "not a valid metric label"},
        {CT_JSON, body1, 422, 0, "id is longer than 256 bytes"},
        {CT_JSON, body2, 422, 0, "source is longer than 256 bytes"},
        {CT_JSON,
         "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\",\"subject\":\"a\","
         "\"time\":\"1969-12-31T23:59:59Z\",\"data\":{\"value\":1}}",
         422, 0, "is not after 1970-01-01T00:00:00Z"},
        {CT_JSON,
         "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\",\"subject\":\"a\","
         "\"time\":\"1970-01-01T00:00:00Z\",\"data\":{\"value\":1}}",
         422, 0, "is not after"},
    };
    expect_all_refused(t, sizeof t / sizeof t[0], NULL);

    /* exactly 256 bytes of id and source pass */
    longid[256] = '\0';
    longsrc[256] = '\0';
    snprintf(body1, sizeof body1,
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"%s\",\"type\":\"m\","
             "\"subject\":\"a\",\"data\":{\"value\":1}}",
             longid, longsrc);
    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_assert_eq(decode(CT_JSON, body1, &b, &e), 0, "%s", e.message);
    cr_expect_eq(strlen(b.events[0].id), 256);
    cr_expect_eq(strlen(b.events[0].source), 256);
    tally__ce_batch_fini(&b);
}

Test(cloudevents, the_failing_event_is_named_by_index)
{
    const refusal_t t[] = {
        {CT_BATCH, "[" GOOD "," GOOD "," GOOD "," CE("Acme", "m", "{\"value\":1}") "," GOOD "]",
         422, 3, "event 3: subject \"Acme\" is not a valid namespace"},
        /* the first offending event decides, whatever its status */
        {CT_BATCH, "[" GOOD "," CE("system", "m", "{\"value\":1}") ",7]", 422, 1, "reserved"},
        {CT_JSON, "[" GOOD ",{\"specversion\":\"2.0\"}," CE("Acme", "m", "{}") "]", 400, 1,
         "required attribute id is missing"},
    };
    expect_all_refused(t, sizeof t / sizeof t[0], NULL);
}

Test(cloudevents, more_than_max_events_is_413)
{
    tally__ce_batch_t b;
    tally__ce_error_t e;
    const char *three = "[" GOOD "," GOOD "," GOOD "]";
    cr_expect_eq(decode_full(CT_BATCH, three, NULL, 2, &b, &e), TALLY_ETOOBIG);
    cr_expect_eq(e.status, 413);
    cr_expect_str_eq(e.code, "ETOOLARGE");
    cr_expect_eq(e.index, -1);
    cr_expect(strstr(e.message, "3 events; at most 2") != NULL, "%s", e.message);
    cr_expect_eq(b.n, 0);
    cr_expect_eq(decode_full(CT_BATCH, three, NULL, 3, &b, &e), 0, "%s", e.message);
    cr_expect_eq(b.n, 3);
    tally__ce_batch_fini(&b);
    /* 0 = TALLY_MAX_BATCH_EVENTS */
    size_t cap = (TALLY_MAX_BATCH_EVENTS + 1) * (sizeof(GOOD) + 1) + 8;
    char *big = malloc(cap);
    cr_assert_not_null(big);
    char *p = big;
    *p++ = '[';
    for (int i = 0; i <= TALLY_MAX_BATCH_EVENTS; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, GOOD, sizeof(GOOD) - 1);
        p += sizeof(GOOD) - 1;
    }
    *p++ = ']';
    *p = '\0';
    cr_expect_eq(decode_full(CT_BATCH, big, NULL, 0, &b, &e), TALLY_ETOOBIG);
    cr_expect_eq(e.status, 413);
    free(big);
}

/* ---- values ------------------------------------------------------------ */

Test(cloudevents, values_are_integers_reals_or_numeric_strings)
{
    static const struct {
        const char *json; /* the value as it appears in data */
        int is_float;
        int64_t ival;
        double fval;
    } ok[] = {
        {"0", 0, 0, 0},
        {"-12", 0, -12, 0},
        {"9223372036854775807", 0, INT64_MAX, 0},
        {"-9223372036854775808", 0, INT64_MIN, 0},
        {"1.25", 1, 0, 1.25},
        {"-0.5e2", 1, 0, -50.0},
        {"1.0", 1, 0, 1.0},
        {"\"123\"", 0, 123, 0},
        {"\"-4\"", 0, -4, 0},
        {"\"+7\"", 0, 7, 0},
        {"\"007\"", 0, 7, 0},
        {"\"1.5\"", 1, 0, 1.5},
        {"\"1e3\"", 1, 0, 1000.0},
        {"\"1E-2\"", 1, 0, 0.01},
        {"\".5\"", 1, 0, 0.5},
        {"\"5.\"", 1, 0, 5.0},
        {"\"9223372036854775807\"", 0, INT64_MAX, 0},
        {"\"9223372036854775808\"", 1, 0, 9223372036854775808.0}, /* beyond int64: a float */
        {"\"-99999999999999999999\"", 1, 0, -1e20},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\","
                 "\"subject\":\"a\",\"data\":{\"value\":%s}}",
                 ok[i].json);
        tally__ce_batch_t b;
        tally__ce_error_t e;
        cr_assert_eq(decode(CT_ONE, body, &b, &e), 0, "%s: %s", ok[i].json, e.message);
        const tally_event_t *ev = &b.events[0].ev;
        cr_expect_eq(ev->is_float, ok[i].is_float, "%s", ok[i].json);
        if (ok[i].is_float)
            cr_expect_float_eq(ev->fvalue, ok[i].fval, fabs(ok[i].fval) * 1e-12 + 1e-12, "%s",
                               ok[i].json);
        else
            cr_expect_eq(ev->ivalue, ok[i].ival, "%s", ok[i].json);
        cr_expect_eq(ev->nlabels, 0, "a numeric string value is not a label: %s", ok[i].json);
        tally__ce_batch_fini(&b);
    }
}

Test(cloudevents, bad_values_are_422)
{
#define WITH(v) CE("a", "m", "{\"value\":" v "}")
    const refusal_t t[] = {
        {CT_JSON, CE("a", "m", "{\"other\":1}"), 422, 0,
         "data has no member \"value\": the value of metric \"m\""},
        {CT_JSON,
         "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\","
         "\"subject\":\"a\"}",
         422, 0, "data has no member \"value\""},
        {CT_JSON, WITH("null"), 422, 0, "must be a number or a numeric string, not null"},
        {CT_JSON, CE("a", "m", "null"), 422, 0, "data has no member"},
        {CT_JSON, WITH("true"), 422, 0, "must be a number or a numeric string, not a boolean"},
        {CT_JSON, WITH("{}"), 422, 0, "not an object"},
        {CT_JSON, WITH("[1]"), 422, 0, "not an array"},
        {CT_JSON, WITH("\"abc\""), 422, 0, "data.value: \"abc\" is not a number"},
        {CT_JSON, WITH("\"\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\" 1\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"1 \""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"0x10\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"Inf\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"NaN\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"1e\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"-\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\".\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"1e999\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"1,5\""), 422, 0, "is not a number"},
        {CT_JSON, WITH("\"00000000000000000000000000000000000000000000000000000000000000001\""),
         422, 0, "at most 64 bytes"},
        /* JSON numbers beyond int64 / double anywhere in the body */
        {CT_JSON, WITH("9223372036854775808"), 422, -1, "a number is out of range"},
        {CT_JSON, WITH("-9223372036854775809"), 422, -1, "out of range"},
        {CT_JSON, WITH("1e999"), 422, -1, "out of range"},
    };
#undef WITH
    expect_all_refused(t, sizeof t / sizeof t[0], NULL);
}

Test(cloudevents, value_field_comes_from_the_catalog)
{
    char *path = write_temp("[llm_tokens]\nvalue_field = tokens\n[http_requests]\nunit = r\n");
    tally__catalog_t *cat = NULL;
    char cerr[256] = "";
    cr_assert_eq(tally__catalog_load(path, &cat, cerr, sizeof cerr), 0, "%s", cerr);

    tally__ce_batch_t b;
    tally__ce_error_t e;
    const char *body =
        "[" CE("a", "llm_tokens", "{\"tokens\":\"42\",\"value\":\"x\",\"model\":\"gpt\"}") "," CE(
            "a", "http_requests", "{\"value\":3,\"tokens\":\"t\"}") "," CE("a", "uncatalogued",
                                                                           "{\"value\":4}") "]";
    cr_assert_eq(decode_full(CT_JSON, body, cat, 0, &b, &e), 0, "%s", e.message);
    cr_assert_eq(b.n, 3);
    cr_expect_eq(b.events[0].ev.ivalue, 42);
    /* "value" is just another string member for llm_tokens: a label */
    cr_expect_eq(b.events[0].ev.nlabels, 2);
    cr_expect_str_eq(label(&b.events[0].ev, "value"), "x");
    cr_expect_str_eq(label(&b.events[0].ev, "model"), "gpt");
    cr_expect_null(label(&b.events[0].ev, "tokens"));
    cr_expect_eq(b.events[1].ev.ivalue, 3);
    cr_expect_str_eq(label(&b.events[1].ev, "tokens"), "t");
    cr_expect_eq(b.events[2].ev.ivalue, 4);
    tally__ce_batch_fini(&b);

    const refusal_t t[] = {
        {CT_JSON, CE("a", "llm_tokens", "{\"value\":5}"), 422, 0,
         "data has no member \"tokens\": the value of metric \"llm_tokens\""},
    };
    expect_all_refused(t, 1, cat);
    tally__catalog_destroy(cat);
    unlink(path);
    free(path);
}

/* ---- labels ------------------------------------------------------------ */

Test(cloudevents, string_members_of_data_are_labels_others_are_ignored)
{
    const char *body = CE("a", "m",
                          "{\"value\":1,\"site\":\"pa2\",\"n\":5,\"b\":true,\"z\":null,"
                          "\"o\":{\"x\":\"y\"},\"arr\":[\"q\"],\"empty\":\"\","
                          "\"app.kubernetes.io/name\":\"web\",\"utf\":\"\\u00e9t\\u00e9\"}");
    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_assert_eq(decode(CT_JSON, body, &b, &e), 0, "%s", e.message);
    const tally_event_t *ev = &b.events[0].ev;
    cr_expect_eq(ev->nlabels, 4);
    cr_expect_str_eq(label(ev, "site"), "pa2");
    cr_expect_str_eq(label(ev, "empty"), "");
    cr_expect_str_eq(label(ev, "app.kubernetes.io/name"), "web");
    cr_expect_str_eq(label(ev, "utf"), "\xc3\xa9t\xc3\xa9");
    cr_expect_null(label(ev, "n"));
    cr_expect_null(label(ev, "o"));
    tally__ce_batch_fini(&b);
}

Test(cloudevents, labels_follow_the_wire_bounds)
{
    char v64[65], v65[66], k32[33], k33[34];
    memset(v64, 'v', 64);
    v64[64] = '\0';
    memset(v65, 'v', 65);
    v65[65] = '\0';
    memset(k32, 'k', 32);
    k32[32] = '\0';
    memset(k33, 'k', 33);
    k33[33] = '\0';

    /* bodies built at run time: the bounds come from the header */
    char ok8[1024], nine[1024], big[2048], b_k32[512], b_k33[512], b_v64[512], b_v65[512];
    strcpy(ok8, "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\","
                "\"subject\":\"a\",\"data\":{\"value\":1");
    strcpy(nine, ok8);
    strcpy(big, ok8);
    for (int i = 0; i < 8; i++) {
        char m[64];
        snprintf(m, sizeof m, ",\"l%d\":\"x\"", i);
        strcat(ok8, m);
        strcat(nine, m);
        /* 8 labels of 2 + 38 + 2 = 42 bytes: 336 > 320 */
        snprintf(m, sizeof m, ",\"l%d\":\"%.38s\"", i, v64);
        strcat(big, m);
    }
    strcat(ok8, "}}");
    strcat(nine, ",\"l8\":\"x\"}}");
    strcat(big, "}}");
#define ONE(buf, k, v)                                                                             \
    snprintf(buf, sizeof buf,                                                                      \
             "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\","              \
             "\"subject\":\"a\",\"data\":{\"value\":1,\"%s\":\"%s\"}}",                            \
             k, v)
    ONE(b_k32, k32, "x");
    ONE(b_k33, k33, "x");
    ONE(b_v64, "k", v64);
    ONE(b_v65, "k", v65);
#undef ONE

    const char *pass[] = {ok8, b_k32, b_v64};
    for (size_t i = 0; i < 3; i++) {
        tally__ce_batch_t b;
        tally__ce_error_t e;
        cr_expect_eq(decode(CT_JSON, pass[i], &b, &e), 0, "%s", e.message);
        tally__ce_batch_fini(&b);
    }
    const refusal_t t[] = {
        {CT_JSON, nine, 422, 0, "more than 8 labels"},
        {CT_JSON, big, 422, 0, "labels take more than 320 bytes"},
        {CT_JSON, b_k33, 422, 0, "is a string but not a label key"},
        {CT_JSON, b_v65, 422, 0, "longer than 64 bytes or holds control characters"},
        {CT_JSON, CE("a", "m", "{\"value\":1,\"bad key\":\"x\"}"), 422, 0,
         "data member \"bad key\" is a string but not a label key"},
        {CT_JSON, CE("a", "m", "{\"value\":1,\"k\":\"line\\nbreak\"}"), 422, 0,
         "label \"k\": value \"line?break\""},
        {CT_JSON, CE("a", "m", "{\"value\":1,\"k\":\"\\u0085\"}"), 422, 0, "control characters"},
    };
    expect_all_refused(t, sizeof t / sizeof t[0], NULL);
}

/* ---- messages ---------------------------------------------------------- */

Test(cloudevents, messages_never_echo_long_or_binary_input)
{
    size_t n = 100000;
    char *body = malloc(n + 256);
    cr_assert_not_null(body);
    int off = snprintf(body, 256,
                       "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"m\","
                       "\"subject\":\"");
    memset(body + off, 'A', n);
    strcpy(body + off + n, "\",\"data\":{\"value\":1}}");
    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_expect_eq(decode(CT_JSON, body, &b, &e), TALLY_EINVAL);
    cr_expect_eq(e.status, 422);
    char want[128];
    snprintf(want, sizeof want, "subject \"%.64s\"... is not a valid namespace", body + off);
    cr_expect(strstr(e.message, want) != NULL, "%s", e.message);
    cr_expect_lt(strlen(e.message), sizeof e.message);
    free(body);

    /* UTF-8 and control characters come out as '?' */
    const refusal_t t[] = {
        {CT_JSON, CE("\\u00e9\\u0001x", "m", "{\"value\":1}"), 422, 0, "subject \"???x\""},
        {"text/\x01plain", GOOD, 415, -1, "\"text/?plain\""},
    };
    expect_all_refused(t, sizeof t / sizeof t[0], NULL);

    /* a JSON syntax error's text is printable too */
    cr_expect_eq(decode(CT_JSON, "{\"a\":\"\x01\"}", &b, &e), TALLY_EINVAL);
    cr_expect_eq(e.status, 400);
    cr_expect(printable(e.message), "%s", e.message);
}

Test(cloudevents, arguments_are_checked)
{
    tally__ce_batch_t b;
    tally__ce_error_t e;
    cr_expect_eq(tally__ce_decode(CT_JSON, GOOD, strlen(GOOD), 0, NULL, 0, &b, &e), TALLY_EINVAL);
    cr_expect_eq(e.status, 500);
    cr_expect_eq(tally__ce_decode(CT_JSON, NULL, 5, NOW, NULL, 0, &b, &e), TALLY_EINVAL);
    cr_expect_eq(e.status, 400);
    cr_expect_eq(tally__ce_decode(CT_JSON, GOOD, strlen(GOOD), NOW, NULL, 0, NULL, &e),
                 TALLY_EINVAL);
    /* err may be NULL */
    cr_expect_eq(tally__ce_decode(CT_JSON, "[]", 2, NOW, NULL, 0, &b, NULL), TALLY_EINVAL);
    cr_expect_eq(tally__ce_decode(CT_JSON, GOOD, strlen(GOOD), NOW, NULL, 0, &b, NULL), 0);
    tally__ce_batch_fini(&b);
    tally__ce_batch_fini(NULL);
    /* the body need not be NUL-terminated: only len bytes are read */
    char buf[sizeof(GOOD) + 4];
    memcpy(buf, GOOD, sizeof(GOOD) - 1);
    memcpy(buf + sizeof(GOOD) - 1, "xxxx", 4);
    cr_expect_eq(tally__ce_decode(CT_JSON, buf, sizeof(GOOD) - 1, NOW, NULL, 0, &b, &e), 0, "%s",
                 e.message);
    tally__ce_batch_fini(&b);
}

Test(cloudevents, every_prefix_of_a_valid_batch_is_handled)
{
    const char *body = "[" CE("a", "m", "{\"value\":\"1.5\",\"k\":\"v\"}") "," GOOD "]";
    size_t len = strlen(body);
    for (size_t i = 0; i <= len; i++) {
        char *p = malloc(i ? i : 1); /* exactly i bytes: valgrind/ASan see overreads */
        cr_assert_not_null(p);
        memcpy(p, body, i);
        tally__ce_batch_t b;
        tally__ce_error_t e;
        int rc = tally__ce_decode(CT_JSON, p, i, NOW, NULL, 0, &b, &e);
        cr_expect_eq(rc, i == len ? 0 : TALLY_EINVAL, "prefix %zu: %s", i, e.message);
        if (rc != 0)
            cr_expect(e.status == 400 || e.status == 422, "prefix %zu: %d", i, e.status);
        tally__ce_batch_fini(&b);
        free(p);
    }
}

/* ---- dedup keys -------------------------------------------------------- */

Test(cloudevents, dedup_key_depends_on_credential_source_and_id_unambiguously)
{
    uint8_t k[8][TALLY__CE_DEDUP_KEY_LEN];
    cr_assert_eq(tally__ce_dedup_key("cred", "src", "id", k[0]), 0);
    cr_assert_eq(tally__ce_dedup_key("cred", "src", "id", k[1]), 0);
    cr_expect_eq(memcmp(k[0], k[1], sizeof k[0]), 0, "deterministic");
    cr_assert_eq(tally__ce_dedup_key("cred2", "src", "id", k[1]), 0);
    cr_assert_eq(tally__ce_dedup_key("cred", "src2", "id", k[2]), 0);
    cr_assert_eq(tally__ce_dedup_key("cred", "src", "id2", k[3]), 0);
    /* moving bytes across a boundary changes the key */
    cr_assert_eq(tally__ce_dedup_key("cred", "ab", "c", k[4]), 0);
    cr_assert_eq(tally__ce_dedup_key("cred", "a", "bc", k[5]), 0);
    cr_assert_eq(tally__ce_dedup_key("x", "ab", "c", k[6]), 0);
    cr_assert_eq(tally__ce_dedup_key("xa", "b", "c", k[7]), 0);
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++)
            cr_expect_neq(memcmp(k[i], k[j], sizeof k[0]), 0, "keys %d and %d collide", i, j);
    /* empty strings are values too */
    uint8_t e1[TALLY__CE_DEDUP_KEY_LEN], e2[TALLY__CE_DEDUP_KEY_LEN];
    cr_assert_eq(tally__ce_dedup_key("", "", "ab", e1), 0);
    cr_assert_eq(tally__ce_dedup_key("", "ab", "", e2), 0);
    cr_expect_neq(memcmp(e1, e2, sizeof e1), 0);
    cr_expect_eq(tally__ce_dedup_key(NULL, "a", "b", e1), TALLY_EINVAL);
    cr_expect_eq(tally__ce_dedup_key("c", NULL, "b", e1), TALLY_EINVAL);
    cr_expect_eq(tally__ce_dedup_key("c", "a", NULL, e1), TALLY_EINVAL);
}
