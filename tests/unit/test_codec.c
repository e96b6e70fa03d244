/* test_codec.c — Criterion tests of the wire codec: round trips, malformed input, validation.
 *
 * Most cases are rows of tables (one message, one expected outcome) run by
 * run_rows(); tests stay hand-written where a case is a loop over bytes or
 * sizes (truncations, corruption, declared lengths, decoder reuse) or
 * checks decoded values field by field (round trips, number encodings). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "codec.h"
#include "tally/tally.h"
#include "tally_proto.h"

#define R(name) TALLY_PROTO_REJECT_##name
/* A string literal as (bytes, length), embedded NULs included. Mind that a
 * hex escape swallows every hex digit after it: write "\xa1" "a", not "\xa1a". */
#define V(lit) (lit), (sizeof(lit) - 1)

#define TS 1700000000000LL /* 2023-11-14T22:13:20Z in unix milliseconds */

/* ---- building messages ------------------------------------------------ */

/* A msgpack buffer and its packer. Never copied: the packer points at sb. */
typedef struct buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} buf_t;

static void
buf_init(buf_t *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static void
buf_fini(buf_t *b)
{
    msgpack_sbuffer_destroy(&b->sb);
}

static void
raw(buf_t *b, const void *p, size_t n)
{
    cr_assert_eq(msgpack_sbuffer_write(&b->sb, p, n), 0);
}

static void
strn(msgpack_packer *pk, const char *s, size_t n)
{
    cr_assert_eq(msgpack_pack_str(pk, n), 0);
    cr_assert_eq(msgpack_pack_str_body(pk, s, n), 0);
}

static void
str(msgpack_packer *pk, const char *s)
{
    strn(pk, s, strlen(s));
}

/* A string of n copies of c. */
static void
rep(msgpack_packer *pk, char c, size_t n)
{
    char tmp[1024];
    cr_assert_leq(n, sizeof tmp);
    memset(tmp, c, n);
    strn(pk, tmp, n);
}

static void
good_event(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    str(pk, "n");
    str(pk, "billing");
    str(pk, "m");
    str(pk, "api.calls");
    str(pk, "x");
    msgpack_pack_int64(pk, 7);
    str(pk, "t");
    msgpack_pack_int64(pk, TS);
}

/* "k": batch_v1, "v": 1 — the opening of a batch map of nfields entries. */
static void
head(msgpack_packer *pk, uint32_t nfields)
{
    msgpack_pack_map(pk, nfields);
    str(pk, "k");
    msgpack_pack_uint8(pk, TALLY_PROTO_KIND_batch_v1);
    str(pk, "v");
    msgpack_pack_uint8(pk, TALLY_PROTO_VERSION_V1);
}

/* The four fields of a valid batch after "k" and "v". */
static void
tail(msgpack_packer *pk)
{
    str(pk, "p");
    str(pk, "prod-1");
    str(pk, "s");
    msgpack_pack_uint64(pk, 1);
    str(pk, "b");
    msgpack_pack_uint64(pk, 1);
    str(pk, "e");
    msgpack_pack_array(pk, 1);
    good_event(pk);
}

static void
good_batch(msgpack_packer *pk)
{
    head(pk, 6);
    tail(pk);
}

/*
 * A valid batch, except that field `which` ("kvpsbe") carries the raw
 * msgpack bytes v[0..n) as its value, and field `skip` is left out
 * (0: nothing replaced / nothing left out).
 */
static void
batch_custom(buf_t *b, char which, const void *v, size_t n, char skip)
{
    static const char order[] = "kvpsbe";
    msgpack_pack_map(&b->pk, skip ? 5 : 6);
    for (const char *f = order; *f; f++) {
        if (*f == skip)
            continue;
        char k[2] = {*f, 0};
        str(&b->pk, k);
        if (*f == which) {
            raw(b, v, n);
            continue;
        }
        switch (*f) {
        case 'k':
            msgpack_pack_uint8(&b->pk, TALLY_PROTO_KIND_batch_v1);
            break;
        case 'v':
            msgpack_pack_uint8(&b->pk, TALLY_PROTO_VERSION_V1);
            break;
        case 'p':
            str(&b->pk, "prod-1");
            break;
        case 's':
        case 'b':
            msgpack_pack_uint64(&b->pk, 1);
            break;
        case 'e':
            msgpack_pack_array(&b->pk, 1);
            good_event(&b->pk);
            break;
        }
    }
}

/* A valid event map, except for field `which` ("nmxt") and `skip`, as above. */
static void
event_custom(buf_t *e, char which, const void *v, size_t n, char skip)
{
    static const char order[] = "nmxt";
    msgpack_pack_map(&e->pk, skip ? 3 : 4);
    for (const char *f = order; *f; f++) {
        if (*f == skip)
            continue;
        char k[2] = {*f, 0};
        str(&e->pk, k);
        if (*f == which) {
            raw(e, v, n);
            continue;
        }
        switch (*f) {
        case 'n':
            str(&e->pk, "billing");
            break;
        case 'm':
            str(&e->pk, "api.calls");
            break;
        case 'x':
            msgpack_pack_int64(&e->pk, 7);
            break;
        case 't':
            msgpack_pack_int64(&e->pk, TS);
            break;
        }
    }
}

/* A valid event with nlabels labels to come: the caller packs the pairs. */
static void
event_labels(buf_t *e, uint32_t nlabels)
{
    msgpack_pack_map(&e->pk, 5);
    str(&e->pk, "n");
    str(&e->pk, "billing");
    str(&e->pk, "m");
    str(&e->pk, "api.calls");
    str(&e->pk, "x");
    msgpack_pack_int64(&e->pk, 7);
    str(&e->pk, "t");
    msgpack_pack_int64(&e->pk, TS);
    str(&e->pk, "l");
    msgpack_pack_map(&e->pk, nlabels);
}

/* A valid event with one label (key, value given as bytes, NULs allowed). */
static void
event_label(buf_t *e, const char *k, size_t klen, const char *v, size_t vlen)
{
    event_labels(e, 1);
    strn(&e->pk, k, klen);
    strn(&e->pk, v, vlen);
}

/* ---- decoding and expecting ------------------------------------------- */

/* Decode an exactly sized private copy of data[0..len), so that ASan sees
 * any read past the end (an sbuffer has slack after its data). */
static int
decode_copy(tally__decoder_t *d, const void *data, size_t len, tally__wire_batch_t *out,
            int *reason)
{
    void *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len)
        memcpy(copy, data, len);
    int rc = tally__decode_batch(d, copy, len, out, reason);
    free(copy);
    return rc;
}

static void
expect_reject_bytes(const void *data, size_t len, uint32_t max_events, int want_reason,
                    const char *what)
{
    int want_rc = want_reason == R(version) ? TALLY_EVERSION : TALLY_EPROTO;
    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, max_events), 0);
    tally__wire_batch_t out;
    int reason = -1;
    int rc = decode_copy(&d, data, len, &out, &reason);
    tally__decoder_fini(&d);
    cr_expect_eq(rc, want_rc, "%s: rc %d (%s), want %d (%s)", what, rc, tally_strerror(rc), want_rc,
                 tally_strerror(want_rc));
    cr_expect_eq(reason, want_reason, "%s: reason %s, want %s", what, tally__reject_name(reason),
                 tally__reject_name(want_reason));
    cr_expect_eq(out.nevents, 0, "%s: %u events reported by a rejected batch", what, out.nevents);
}

/* Expect b to be rejected for want_reason, then free it. */
static void
expect_reject(buf_t *b, int want_reason, const char *what)
{
    expect_reject_bytes(b->sb.data, b->sb.size, 16, want_reason, what);
    buf_fini(b);
}

/* Expect b to decode, then free it. */
static void
expect_accept(buf_t *b, const char *what)
{
    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, 16), 0);
    tally__wire_batch_t out;
    int reason = -1;
    int rc = decode_copy(&d, b->sb.data, b->sb.size, &out, &reason);
    tally__decoder_fini(&d);
    cr_expect_eq(rc, 0, "%s: rejected (%s)", what, rc ? tally__reject_name(reason) : "-");
    buf_fini(b);
}

/* Wrap one event in a valid batch with tally__encode_batch and free the event. */
static void
wrap_event(buf_t *b, buf_t *ev)
{
    buf_init(b);
    cr_assert_eq(tally__encode_batch(&b->sb, "prod-1", 1, 1, 1, ev->sb.data, ev->sb.size), 0);
    buf_fini(ev);
}

static void
expect_event_reject(buf_t *ev, int want_reason, const char *what)
{
    buf_t b;
    wrap_event(&b, ev);
    expect_reject(&b, want_reason, what);
}

static void
expect_event_accept(buf_t *ev, const char *what)
{
    buf_t b;
    wrap_event(&b, ev);
    expect_accept(&b, what);
}

static int
str_is(tally__str_t s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.p, c, s.len) == 0;
}

/* Whether the decoded event i of b is ev (stamped ts), labels in order. */
static void
expect_event_eq(const tally__wire_batch_t *b, uint32_t i, const tally_event_t *ev, int64_t ts)
{
    const tally__wire_event_t *w = &b->events[i];
    cr_expect(str_is(w->ns, ev->ns), "event %u: ns %.*s, want %s", i, (int)w->ns.len, w->ns.p,
              ev->ns);
    cr_expect(str_is(w->metric, ev->metric), "event %u: metric %.*s, want %s", i,
              (int)w->metric.len, w->metric.p, ev->metric);
    cr_expect_eq(w->is_float, ev->is_float, "event %u: is_float", i);
    if (ev->is_float)
        cr_expect(memcmp(&w->fval, &ev->fvalue, sizeof(double)) == 0, "event %u: fval %a, want %a",
                  i, w->fval, ev->fvalue);
    else
        cr_expect_eq(w->ival, ev->ivalue, "event %u: ival %lld, want %lld", i, (long long)w->ival,
                     (long long)ev->ivalue);
    cr_expect_eq(w->ts_ms, ts, "event %u: ts %lld, want %lld", i, (long long)w->ts_ms,
                 (long long)ts);
    cr_assert_eq(w->nlabels, ev->nlabels, "event %u: %u labels, want %zu", i, w->nlabels,
                 ev->nlabels);
    for (uint32_t j = 0; j < w->nlabels; j++) {
        const tally__wire_label_t *l = &b->labels[w->label_off + j];
        cr_expect(str_is(l->key, ev->labels[j].key), "event %u label %u: key %.*s, want %s", i, j,
                  (int)l->key.len, l->key.p, ev->labels[j].key);
        cr_expect(str_is(l->value, ev->labels[j].value), "event %u label %u: value %.*s, want %s",
                  i, j, (int)l->value.len, l->value.p, ev->labels[j].value);
    }
}

/* ---- round trips -------------------------------------------------------- */

Test(codec, round_trip_preserves_every_field_and_label_order)
{
    char ns64[65], metric64[65], producer64[65], key32[33], value64[65];
    char key32s[3][33];
    memset(ns64, 'z', 64);
    memcpy(ns64, "a-0", 3);
    ns64[64] = '\0';
    memset(metric64, 'M', 64);
    memcpy(metric64, "a_b.c:d-9", 9);
    metric64[64] = '\0';
    for (int i = 0; i < 64; i++) /* the whole printable range but space */
        producer64[i] = (char)(0x21 + i * 3 % 94);
    producer64[64] = '\0';
    memset(key32, 'k', 32);
    memcpy(key32, "a/b.c-d_E", 9);
    key32[32] = '\0';
    memset(value64, 'v', 64);
    memcpy(value64, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e", 14);
    value64[64] = '\0';
    for (int i = 0; i < 3; i++) {
        memset(key32s[i], 'q', 32);
        key32s[i][0] = (char)('a' + i);
        key32s[i][32] = '\0';
    }

    /* Eight labels in an order that is not sorted, so a sort would show. */
    static const tally_label_t eight[8] = {
        {"zone", "eu-west-1"},        {"a", "1"},
        {"object", "bucket/key.txt"}, {"m", ""},
        {"deployment", "x"},          {"B", "upper key"},
        {"k.2", "~!@#$%^&*()"},       {"k-1", "\xc2\xa0nbsp"},
    };
    const tally_label_t maxed[1] = {{key32, value64}};
    /* 3 * (32 + 64 + 2) + (10 + 14 + 2) = 320 = TALLY_MAX_LABELS_BYTES exactly. */
    const tally_label_t exact[4] = {
        {key32s[0], value64},
        {key32s[1], value64},
        {key32s[2], value64},
        {"tenbyteskk", "fourteen-bytes"},
    };
    size_t total = 0;
    for (int i = 0; i < 4; i++)
        total += strlen(exact[i].key) + strlen(exact[i].value) + 2;
    cr_assert_eq(total, TALLY_MAX_LABELS_BYTES);

    const tally_event_t evs[] = {
        {.ns = "billing", .metric = "api.calls", .ivalue = 42},
        {.ns = "b", .metric = "m", .ivalue = -1},
        {.ns = "b", .metric = "m", .ivalue = -33},
        {.ns = "b", .metric = "m", .ivalue = -200},
        {.ns = "b", .metric = "m", .ivalue = -70000},
        {.ns = "b", .metric = "m", .ivalue = -5000000000LL},
        {.ns = "b", .metric = "m", .ivalue = INT64_MIN},
        {.ns = "b", .metric = "m", .ivalue = 0},
        {.ns = "b", .metric = "m", .ivalue = 200},
        {.ns = "b", .metric = "m", .ivalue = 70000},
        {.ns = "b", .metric = "m", .ivalue = 5000000000LL},
        {.ns = "b", .metric = "m", .ivalue = INT64_MAX},
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = 0.5},
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = 3.0},
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = -1e300},
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = -0.0},
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = DBL_MAX},
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = DBL_MIN / 4}, /* subnormal */
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = 0.1},
        {.ns = "b", .metric = "m", .ivalue = 1, .labels = eight, .nlabels = 8},
        {.ns = ns64, .metric = metric64, .ivalue = 1, .labels = maxed, .nlabels = 1},
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = 2.5, .labels = exact, .nlabels = 4},
        {.ns = "b", .metric = "m", .ivalue = 9, .labels = eight + 6, .nlabels = 2},
    };
    const uint32_t n = sizeof evs / sizeof evs[0];
    int64_t ts[sizeof evs / sizeof evs[0]];

    buf_t events, b;
    buf_init(&events);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(tally__event_validate(&evs[i], NULL), 0, "event %u is valid", i);
        ts[i] = i == 1 ? 1 : i == 2 ? INT64_MAX : TS + i;
        cr_assert_eq(tally__encode_event(&events.sb, &evs[i], ts[i]), 0);
    }
    buf_init(&b);
    cr_assert_eq(tally__encode_batch(&b.sb, producer64, 77, 70, n, events.sb.data, events.sb.size),
                 0);

    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, 64), 0);
    tally__wire_batch_t out;
    int reason = -1;
    int rc = tally__decode_batch(&d, b.sb.data, b.sb.size, &out, &reason);
    cr_assert_eq(rc, 0, "rejected: %s", tally__reject_name(reason));
    cr_expect_eq(out.version, TALLY_PROTO_VERSION_V1);
    cr_expect(str_is(out.producer, producer64));
    cr_expect_eq(out.seq, 77);
    cr_expect_eq(out.base, 70);
    cr_assert_eq(out.nevents, n);
    for (uint32_t i = 0; i < n; i++)
        expect_event_eq(&out, i, &evs[i], ts[i]);
    cr_expect(signbit(out.events[15].fval), "-0.0 keeps its sign");

    tally__decoder_fini(&d);
    buf_fini(&b);
    buf_fini(&events);
}

Test(codec, round_trip_keeps_extreme_sequence_numbers)
{
    static const struct {
        uint64_t seq, base;
    } cases[] = {
        {1, 1},
        {UINT64_MAX, 1},
        {UINT64_MAX, UINT64_MAX},
        {(1ull << 63) + 5, 1ull << 63},
        {1700000000000000ull, 1699999999999000ull},
        {255, 128},
        {65536, 65535},
    };
    buf_t ev;
    buf_init(&ev);
    good_event(&ev.pk);
    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, 1), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_t b;
        buf_init(&b);
        cr_assert_eq(
            tally__encode_batch(&b.sb, "p", cases[i].seq, cases[i].base, 1, ev.sb.data, ev.sb.size),
            0);
        tally__wire_batch_t out;
        int reason = -1;
        cr_expect_eq(tally__decode_batch(&d, b.sb.data, b.sb.size, &out, &reason), 0);
        cr_expect_eq(out.seq, cases[i].seq, "case %zu: seq", i);
        cr_expect_eq(out.base, cases[i].base, "case %zu: base", i);
        buf_fini(&b);
    }
    tally__decoder_fini(&d);
    buf_fini(&ev);
}

Test(codec, fields_after_kind_and_version_may_come_in_any_order)
{
    buf_t b;
    buf_init(&b);
    head(&b.pk, 6);
    str(&b.pk, "e");
    msgpack_pack_array(&b.pk, 1);
    /* event fields reversed, labels first */
    msgpack_pack_map(&b.pk, 5);
    str(&b.pk, "l");
    msgpack_pack_map(&b.pk, 1);
    str(&b.pk, "a");
    str(&b.pk, "b");
    str(&b.pk, "t");
    msgpack_pack_int64(&b.pk, TS);
    str(&b.pk, "x");
    msgpack_pack_double(&b.pk, 1.25);
    str(&b.pk, "m");
    str(&b.pk, "api.calls");
    str(&b.pk, "n");
    str(&b.pk, "billing");
    str(&b.pk, "b");
    msgpack_pack_uint64(&b.pk, 3);
    str(&b.pk, "s");
    msgpack_pack_uint64(&b.pk, 4);
    str(&b.pk, "p");
    str(&b.pk, "prod-1");

    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, 1), 0);
    tally__wire_batch_t out;
    int reason = -1;
    cr_assert_eq(tally__decode_batch(&d, b.sb.data, b.sb.size, &out, &reason), 0, "rejected: %s",
                 tally__reject_name(reason));
    cr_expect_eq(out.seq, 4);
    cr_expect_eq(out.base, 3);
    const tally_label_t l = {"a", "b"};
    const tally_event_t want = {.ns = "billing",
                                .metric = "api.calls",
                                .is_float = 1,
                                .fvalue = 1.25,
                                .labels = &l,
                                .nlabels = 1};
    expect_event_eq(&out, 0, &want, TS);
    tally__decoder_fini(&d);
    buf_fini(&b);
}

Test(codec, ack_round_trip_and_wrong_topic_rejected)
{
    static const struct {
        const char *producer;
        uint64_t hwm, max_seq;
    } cases[] = {
        {"prod-1", 41, 57},
        {"p", 0, 0},
        {"tallyctl-host-123", UINT64_MAX, UINT64_MAX},
        {"x", 1ull << 63, (1ull << 63) + 1023},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_t a;
        buf_init(&a);
        size_t plen = strlen(cases[i].producer);
        cr_assert_eq(
            tally__encode_ack(&a.sb, cases[i].producer, plen, cases[i].hwm, cases[i].max_seq), 0);
        cr_assert_gt(a.sb.size, plen + 1);
        cr_expect(memcmp(a.sb.data, cases[i].producer, plen) == 0 && a.sb.data[plen] == '\0',
                  "case %zu: topic prefix then NUL", i);
        tally__wire_ack_t out;
        cr_expect_eq(tally__decode_ack(a.sb.data, a.sb.size, &out), 0, "case %zu", i);
        cr_expect(str_is(out.producer, cases[i].producer), "case %zu: producer", i);
        cr_expect_eq(out.hwm, cases[i].hwm, "case %zu: hwm", i);
        cr_expect_eq(out.max_seq, cases[i].max_seq, "case %zu: max_seq", i);

        /* same length, another topic */
        a.sb.data[0] ^= 0x01;
        cr_expect_eq(tally__decode_ack(a.sb.data, a.sb.size, &out), TALLY_EPROTO,
                     "case %zu: topic differs from the producer field", i);
        a.sb.data[0] ^= 0x01;
        /* a topic that is a strict prefix of the producer, then a longer one */
        if (plen > 1) {
            cr_expect_eq(tally__decode_ack(a.sb.data + 1, a.sb.size - 1, &out), TALLY_EPROTO,
                         "case %zu: shorter topic", i);
        }
        buf_t longer;
        buf_init(&longer);
        raw(&longer, "zz", 2);
        raw(&longer, a.sb.data, a.sb.size);
        cr_expect_eq(tally__decode_ack(longer.sb.data, longer.sb.size, &out), TALLY_EPROTO,
                     "case %zu: longer topic", i);
        buf_fini(&longer);
        /* the producer's id plus a suffix: web-10 must not take web-1's ack */
        buf_init(&longer);
        raw(&longer, a.sb.data, plen);
        raw(&longer, "0", 1);
        raw(&longer, a.sb.data + plen, a.sb.size - plen);
        cr_expect_eq(tally__decode_ack(longer.sb.data, longer.sb.size, &out), TALLY_EPROTO,
                     "case %zu: topic = producer + \"0\"", i);
        buf_fini(&longer);
        buf_fini(&a);
    }
}

/* An ack from topic "p" whose map has the given keys in that order ("z" is
 * a key v1 does not define); h = 10, c = 12. */
static void
pack_ack(buf_t *t, const char *keys, uint8_t kind, uint8_t version)
{
    raw(t, "p", 2);
    msgpack_pack_map(&t->pk, (uint32_t)strlen(keys));
    for (const char *k = keys; *k; k++) {
        char key[2] = {*k, 0};
        str(&t->pk, key);
        switch (*k) {
        case 'k':
            msgpack_pack_uint8(&t->pk, kind);
            break;
        case 'v':
            msgpack_pack_uint8(&t->pk, version);
            break;
        case 'p':
            str(&t->pk, "p");
            break;
        case 'h':
            msgpack_pack_uint8(&t->pk, 10);
            break;
        case 'c':
            msgpack_pack_uint8(&t->pk, 12);
            break;
        default:
            msgpack_pack_uint8(&t->pk, 0);
            break;
        }
    }
}

Test(codec, ack_malformed_rejected)
{
    buf_t a;
    buf_init(&a);
    cr_assert_eq(tally__encode_ack(&a.sb, "prod-1", 6, 10, 12), 0);
    tally__wire_ack_t out;
    /* every truncation, on an exactly sized copy */
    for (size_t len = 0; len < a.sb.size; len++) {
        char *copy = malloc(len ? len : 1);
        cr_assert_not_null(copy);
        memcpy(copy, a.sb.data, len);
        cr_expect_eq(tally__decode_ack(copy, len, &out), TALLY_EPROTO, "prefix of %zu bytes", len);
        free(copy);
    }
    /* trailing byte */
    buf_t t;
    buf_init(&t);
    raw(&t, a.sb.data, a.sb.size);
    raw(&t, "\x00", 1);
    cr_expect_eq(tally__decode_ack(t.sb.data, t.sb.size, &out), TALLY_EPROTO, "trailing byte");
    buf_fini(&t);
    /* no NUL at all */
    cr_expect_eq(tally__decode_ack("prod-1", 6, &out), TALLY_EPROTO, "no topic separator");
    /* a batch behind a topic is not an ack */
    buf_init(&t);
    raw(&t, "prod-1", 7);
    good_batch(&t.pk);
    cr_expect_eq(tally__decode_ack(t.sb.data, t.sb.size, &out), TALLY_EPROTO, "batch as ack");
    buf_fini(&t);
    /* an ack of another version or kind */
    static const uint8_t kinds[][2] = {{1, 1}, {3, 1}, {2, 0}, {2, 2}};
    for (size_t i = 0; i < 4; i++) {
        buf_init(&t);
        pack_ack(&t, "kvphc", kinds[i][0], kinds[i][1]);
        cr_expect_eq(tally__decode_ack(t.sb.data, t.sb.size, &out), TALLY_EPROTO,
                     "kind %u version %u", kinds[i][0], kinds[i][1]);
        buf_fini(&t);
    }
    /* PROTOCOL.md §3.4: any order; all five keys, no others, no duplicates */
    static const struct {
        const char *keys;
        int ok;
    } shapes[] = {
        {"kvphc", 1}, {"chpvk", 1},  {"pkcvh", 1},  {"kvph", 0},   {"kvpc", 0},   {"vphc", 0},
        {"kvhc", 0},  {"kvphcz", 0}, {"zkvphc", 0}, {"kvphcc", 0}, {"kvpphc", 0}, {"", 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        buf_init(&t);
        pack_ack(&t, shapes[i].keys, 2, 1);
        int rc = tally__decode_ack(t.sb.data, t.sb.size, &out);
        cr_expect_eq(rc, shapes[i].ok ? 0 : TALLY_EPROTO, "ack with keys \"%s\": rc %d",
                     shapes[i].keys, rc);
        if (shapes[i].ok) {
            cr_expect_eq(out.hwm, 10);
            cr_expect_eq(out.max_seq, 12);
        }
        buf_fini(&t);
    }
    buf_fini(&a);
}

/* ---- malformed input, class by class -------------------------------------- */

Test(codec, rejects_every_truncation_of_a_valid_batch)
{
    const tally_label_t labels[3] = {{"object", "bucket/k\xc3\xa9y"}, {"a", ""}, {"zone", "eu"}};
    const tally_event_t evs[3] = {
        {.ns = "billing", .metric = "api.calls", .ivalue = -70000},
        {.ns = "billing",
         .metric = "bytes",
         .is_float = 1,
         .fvalue = 0.1,
         .labels = labels,
         .nlabels = 3},
        {.ns = "storage",
         .metric = "objects",
         .ivalue = 5000000000LL,
         .labels = labels + 1,
         .nlabels = 1},
    };
    buf_t events, b;
    buf_init(&events);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tally__encode_event(&events.sb, &evs[i], TS + i), 0);
    buf_init(&b);
    cr_assert_eq(tally__encode_batch(&b.sb, "producer-with-a-long-enough-id", 1ull << 40,
                                     (1ull << 40) - 3, 3, events.sb.data, events.sb.size),
                 0);

    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, 16), 0);
    tally__wire_batch_t out;
    int reason = -1;
    cr_assert_eq(decode_copy(&d, b.sb.data, b.sb.size, &out, &reason), 0, "the whole batch");
    for (size_t len = 0; len < b.sb.size; len++) {
        reason = -1;
        int rc = decode_copy(&d, b.sb.data, len, &out, &reason);
        cr_expect_eq(rc, TALLY_EPROTO, "prefix of %zu/%zu bytes: rc %d", len, b.sb.size, rc);
        cr_expect_eq(reason, R(msgpack), "prefix of %zu/%zu bytes: reason %s", len, b.sb.size,
                     tally__reject_name(reason));
    }
    tally__decoder_fini(&d);
    buf_fini(&b);
    buf_fini(&events);
}

/* A batch of n good events in b (caller frees). */
static void
batch_of(buf_t *b, uint32_t n)
{
    buf_t ev;
    buf_init(&ev);
    for (uint32_t i = 0; i < n; i++)
        good_event(&ev.pk);
    buf_init(b);
    cr_assert_eq(tally__encode_batch(&b->sb, "prod-1", 1, 1, n, ev.sb.data, ev.sb.size), 0);
    buf_fini(&ev);
}

/* ---- the case tables -----------------------------------------------------
 * Every row is one message and the one outcome it must have: accepted (OK),
 * or refused with exactly that reject reason (and EVERSION for a version,
 * EPROTO for the rest, and no events reported). A row says how its message
 * is built: a valid batch or event with one field's value replaced by raw
 * msgpack bytes, by a string, or by a run of one character, or left out; a
 * valid event with one label or with n labels; or the whole batch or event
 * as raw bytes. run_rows() builds each and expects its outcome. */

enum { OK = -1 };

enum shape {
    BATCH,     /* valid batch, field `field` replaced (see value), `skip` left out */
    EVENT,     /* the same for a valid event, wrapped in a valid batch */
    LABEL,     /* a valid event with the one label b[0..n) = b2[0..n2) */
    NLABELS,   /* a valid event with count labels k0..k<count-1> = "v" */
    RAW_BATCH, /* b[0..n) is the whole batch */
    RAW_EVENT, /* b[0..n) is the whole event, wrapped in a valid batch */
};

typedef struct row {
    const char *what;
    enum shape shape;
    char field, skip;
    const char *b; /* raw msgpack value, or (str) the text of a string value */
    size_t n;
    const char *b2; /* LABEL: the value's text */
    size_t n2;
    int str;        /* b is text to pack as a msgpack str */
    char rep_c;     /* value: a string of count copies of rep_c */
    uint32_t count; /* rep_c's count, or NLABELS' count */
    int want;       /* OK or a reject reason */
} row_t;

/* one row a line reads as a table: */
/* clang-format off */
#define BF(f, lit, want_, what_)                                                                   \
    {.what = (what_), .shape = BATCH, .field = (f), .b = (lit), .n = sizeof(lit) - 1, .want = (want_)}
#define EF(f, lit, want_, what_)                                                                   \
    {.what = (what_), .shape = EVENT, .field = (f), .b = (lit), .n = sizeof(lit) - 1, .want = (want_)}
#define BS(f, lit, want_, what_)                                                                   \
    {.what = (what_), .shape = BATCH, .field = (f), .b = (lit), .n = sizeof(lit) - 1, .str = 1,      \
     .want = (want_)}
#define ES(f, lit, want_, what_)                                                                   \
    {.what = (what_), .shape = EVENT, .field = (f), .b = (lit), .n = sizeof(lit) - 1, .str = 1,      \
     .want = (want_)}
#define BREP(f, c, len, want_, what_)                                                              \
    {.what = (what_), .shape = BATCH, .field = (f), .rep_c = (c), .count = (len), .want = (want_)}
#define EREP(f, c, len, want_, what_)                                                              \
    {.what = (what_), .shape = EVENT, .field = (f), .rep_c = (c), .count = (len), .want = (want_)}
#define BSKIP(f, want_, what_) {.what = (what_), .shape = BATCH, .skip = (f), .want = (want_)}
#define ESKIP(f, want_, what_) {.what = (what_), .shape = EVENT, .skip = (f), .want = (want_)}
#define LBL(k, v, want_, what_)                                                                    \
    {.what = (what_), .shape = LABEL, .b = (k), .n = sizeof(k) - 1, .b2 = (v), .n2 = sizeof(v) - 1, \
     .want = (want_)}
#define NLAB(cnt, want_, what_) {.what = (what_), .shape = NLABELS, .count = (cnt), .want = (want_)}
#define RB(lit, want_, what_)                                                                      \
    {.what = (what_), .shape = RAW_BATCH, .b = (lit), .n = sizeof(lit) - 1, .want = (want_)}
#define RE(lit, want_, what_)                                                                      \
    {.what = (what_), .shape = RAW_EVENT, .b = (lit), .n = sizeof(lit) - 1, .want = (want_)}

/* The pieces of good_event() and good_batch() as raw bytes, for RAW rows;
 * test raw_pieces_match_the_packer checks them against the packer. TS packs
 * as a uint 64 (0xcf). */
#define EV_N "\xa1" "n\xa7" "billing"
#define EV_M "\xa1" "m\xa9" "api.calls"
#define EV_X "\xa1" "x\x07"
#define TS_BYTES "\xcf\x00\x00\x01\x8b\xcf\xe5\x68\x00"
#define EV_T "\xa1" "t" TS_BYTES
#define GOOD_EVENT "\x84" EV_N EV_M EV_X EV_T
#define B_K "\xa1" "k\x01"
#define B_V "\xa1" "v\x01"
#define B_P "\xa1" "p\xa6" "prod-1"
#define B_S "\xa1" "s\x01"
#define B_B "\xa1" "b\x01"
#define B_E "\xa1" "e\x91" GOOD_EVENT
/* an event of five fields whose labels map (header included) follows */
#define EV_L5 "\x85" EV_N EV_M EV_X EV_T "\xa1" "l"

static void
run_row(const row_t *r)
{
    buf_t b, e, v;
    const void *val = r->b;
    size_t vn = r->n;
    char k[16];
    buf_init(&v);
    if (r->count && r->shape != NLABELS) {
        rep(&v.pk, r->rep_c, r->count);
        val = v.sb.data;
        vn = v.sb.size;
    } else if (r->str) {
        strn(&v.pk, r->b, r->n);
        val = v.sb.data;
        vn = v.sb.size;
    }
    switch (r->shape) {
    case BATCH:
        buf_init(&b);
        batch_custom(&b, r->field, val, vn, r->skip);
        break;
    case RAW_BATCH:
        buf_init(&b);
        if (r->n) /* an empty sbuffer has no data pointer to write to */
            raw(&b, r->b, r->n);
        break;
    case EVENT:
        buf_init(&e);
        event_custom(&e, r->field, val, vn, r->skip);
        wrap_event(&b, &e);
        break;
    case LABEL:
        buf_init(&e);
        event_label(&e, r->b, r->n, r->b2, r->n2);
        wrap_event(&b, &e);
        break;
    case NLABELS:
        buf_init(&e);
        event_labels(&e, r->count);
        for (uint32_t i = 0; i < r->count; i++) {
            snprintf(k, sizeof k, "k%u", i);
            str(&e.pk, k);
            str(&e.pk, "v");
        }
        wrap_event(&b, &e);
        break;
    case RAW_EVENT:
    default:
        buf_init(&e);
        raw(&e, r->b, r->n);
        wrap_event(&b, &e);
        break;
    }
    buf_fini(&v);
    if (r->want == OK)
        expect_accept(&b, r->what);
    else
        expect_reject(&b, r->want, r->what);
}

static void
run_rows(const row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        run_row(&rows[i]);
}

#define RUN(rows) run_rows((rows), sizeof(rows) / sizeof((rows)[0]))

Test(codec, raw_pieces_match_the_packer)
{
    buf_t b;
    buf_init(&b);
    good_event(&b.pk);
    cr_assert_eq(b.sb.size, sizeof(GOOD_EVENT) - 1);
    cr_assert(memcmp(b.sb.data, GOOD_EVENT, b.sb.size) == 0, "GOOD_EVENT differs");
    buf_fini(&b);
    buf_init(&b);
    good_batch(&b.pk);
    static const char want[] = "\x86" B_K B_V B_P B_S B_B B_E;
    cr_assert_eq(b.sb.size, sizeof want - 1);
    cr_assert(memcmp(b.sb.data, want, b.sb.size) == 0, "good_batch() differs");
    buf_fini(&b);
    buf_init(&b);
    event_labels(&b, 0);
    cr_assert_eq(b.sb.size, sizeof(EV_L5 "\x80") - 1);
    cr_assert(memcmp(b.sb.data, EV_L5 "\x80", b.sb.size) == 0, "event_labels() differs");
    buf_fini(&b);
}

/* Wrong msgpack types: PROTOCOL.md §3.1 names each field's type. */
static const row_t type_rows[] = {
    BF('k', "\xa1" "1", R(type), "string kind"),
    BF('k', "\xff", R(type), "negative kind"),
    BF('k', "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", R(type), "float kind"),
    BF('v', "\xa1" "1", R(type), "string version"),
    BF('v', "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", R(type), "float version 1.0"),
    BF('v', "\xc3", R(type), "boolean version"),
    BF('p', "\x05", R(type), "integer producer"),
    BF('p', "\xc0", R(type), "nil producer"),
    BF('p', "\xc4\x01" "p", R(type), "bin producer"),
    BF('p', "\x91\xa1" "p", R(type), "array producer"),
    BF('s', "\xa1" "1", R(type), "string seq"),
    BF('s', "\xff", R(type), "negative seq"),
    BF('s', "\xd3\xff\xff\xff\xff\xff\xff\xff\xff", R(type), "negative int64 seq"),
    BF('s', "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", R(type), "float seq 1.0"),
    BF('s', "\xca\x3f\x80\x00\x00", R(type), "float32 seq 1.0"),
    BF('s', "\xc2", R(type), "boolean seq"),
    BF('s', "\xc0", R(type), "nil seq"),
    BF('b', "\xa1" "1", R(type), "string base"),
    BF('b', "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", R(type), "float base"),
    BF('e', "\x80", R(type), "map instead of the event array"),
    BF('e', "\xa1" "e", R(type), "string events"),
    BF('e', "\x01", R(type), "integer events"),
    BF('e', "\xc0", R(type), "nil events"),
    BF('e', "\x91\x01", R(type), "an integer event"),
    BF('e', "\x91\xa1" "e", R(type), "a string event"),
    BF('e', "\x91\xc0", R(type), "a nil event"),
    BF('e', "\x91\x94\xa1" "n\xa1" "b\xa1" "m\xa1" "m", R(type), "an array event"),
    EF('n', "\x05", R(type), "integer namespace"),
    EF('n', "\xc0", R(type), "nil namespace"),
    EF('n', "\x90", R(type), "array namespace"),
    EF('n', "\xc4\x01" "b", R(type), "bin namespace"),
    EF('m', "\xc0", R(type), "nil metric"),
    EF('m', "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", R(type), "float metric"),
    EF('m', "\x80", R(type), "map metric"),
    EF('x', "\xa1" "7", R(type), "string value"),
    EF('x', "\xc0", R(type), "nil value"),
    EF('x', "\xc3", R(type), "boolean value"),
    EF('x', "\x91\x07", R(type), "array value"),
    EF('x', "\x81\xa1" "x\x07", R(type), "map value"),
    EF('x', "\xc4\x01\x07", R(type), "bin value"),
    EF('x', "\xd4\x01\x07", R(type), "ext value"),
    EF('t', "\xcb\x42\x78\xbc\xfe\x56\x80\x00\x00", R(type), "float64 timestamp"),
    EF('t', "\xca\x53\xc5\xe7\xf2", R(type), "float32 timestamp"),
    EF('t', "\xa1" "1", R(type), "string timestamp"),
    EF('t', "\xc0", R(type), "nil timestamp"),
    RE(EV_L5 "\x91\xa1" "a", R(type), "labels as an array"),
    RE(EV_L5 "\xa1" "a", R(type), "labels as a string"),
    RE(EV_L5 "\x81\x01\xa1" "v", R(type), "integer label key"),
    RE(EV_L5 "\x81\xa1" "k\x01", R(type), "integer label value"),
    RE(EV_L5 "\x81\xa1" "k\xc0", R(type), "nil label value"),
    RE("\x84\x01\xa7" "billing", R(type), "integer event key"),
    /* §3.1: a float in "k", "v", "s" or "b" is a wrong type, and "t" takes
     * integer encodings only; that holds for NaN and Inf too, which are a
     * bad_value only where floats belong ("x") */
    BF('k', "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", R(type), "NaN as \"k\""),
    BF('k', "\xca\x7f\x80\x00\x00", R(type), "inf as \"k\""),
    BF('v', "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", R(type), "NaN as \"v\""),
    BF('v', "\xca\x7f\x80\x00\x00", R(type), "inf as \"v\""),
    BF('s', "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", R(type), "NaN as \"s\""),
    BF('s', "\xca\x7f\x80\x00\x00", R(type), "inf as \"s\""),
    BF('b', "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", R(type), "NaN as \"b\""),
    BF('b', "\xca\x7f\x80\x00\x00", R(type), "inf as \"b\""),
    EF('t', "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", R(type), "NaN timestamp"),
};

Test(codec, rejects_wrong_types)
{
    RUN(type_rows);
}

/* Which fields there are: missing, unknown, twice, out of place. */
#define UNKNOWN_B(key, what_)                                                                      \
    RB("\x87" B_K B_V B_P B_S B_B B_E key "\x01", R(unknown_field), "batch field " what_),        \
        RB("\x87" B_K B_V key "\x01" B_P B_S B_B B_E, R(unknown_field), "batch field " what_        \
                                                                         " in the middle")
#define UNKNOWN_E(key, what_)                                                                      \
    RE("\x85" EV_N key "\x01" EV_M "\xa1" "x\x01" EV_T, R(unknown_field), "event field " what_)
/* an event with the label a=b and a sixth field */
#define EV_DUP "\x86" EV_N EV_M EV_X EV_T "\xa1" "l\x81\xa1" "a\xa1" "b"

static const row_t field_rows[] = {
    BSKIP('k', R(missing), "no \"k\""),
    BSKIP('v', R(missing), "no \"v\""),
    BSKIP('p', R(missing), "no \"p\""),
    BSKIP('s', R(missing), "no \"s\""),
    BSKIP('b', R(missing), "no \"b\""),
    BSKIP('e', R(missing), "no \"e\""),
    RB("\x80", R(missing), "empty map"),
    RB("\x81\xa1" "k\x01", R(missing), "only a kind"),
    RB("\x82\xa1" "k\x01\xa1" "v\x01", R(missing), "kind and version"),
    ESKIP('n', R(missing), "event without \"n\""),
    ESKIP('m', R(missing), "event without \"m\""),
    ESKIP('x', R(missing), "event without \"x\""),
    ESKIP('t', R(missing), "event without \"t\""),
    RE("\x80", R(missing), "empty event map"),
    RE("\x81\xa1" "l\x80", R(missing), "event with only labels"),
    /* kind and version come first, in that order */
    RB("\x86" B_V B_K B_P B_S B_B B_E, R(missing), "version before kind"),
    RB("\x86" B_P B_K B_V B_S B_B B_E, R(missing), "producer first"),
    RB("\x86" B_K B_P B_V B_S B_B B_E, R(missing), "producer between kind and version"),
    UNKNOWN_B("\xa1" "z", "\"z\""),
    UNKNOWN_B("\xa1" "h", "\"h\""),
    UNKNOWN_B("\xa1" "c", "\"c\""),
    UNKNOWN_B("\xa1" "n", "\"n\""),
    UNKNOWN_B("\xa2" "kk", "\"kk\""),
    UNKNOWN_B("\xa0", "\"\""),
    UNKNOWN_B("\xa6" "events", "\"events\""),
    UNKNOWN_B("\xa1" "K", "\"K\""),
    UNKNOWN_E("\xa1" "z", "\"z\""),
    UNKNOWN_E("\xa1" "k", "\"k\""),
    UNKNOWN_E("\xa1" "p", "\"p\""),
    UNKNOWN_E("\xa2" "ns", "\"ns\""),
    UNKNOWN_E("\xa0", "\"\""),
    UNKNOWN_E("\xa1" "N", "\"N\""),
    UNKNOWN_E("\xa6" "labels", "\"labels\""),
    RB("\x87" B_K B_V B_P B_S B_B B_E B_K, R(duplicate_field), "batch \"k\" twice"),
    RB("\x87" B_K B_V B_P B_S B_B B_E B_V, R(duplicate_field), "batch \"v\" twice"),
    RB("\x87" B_K B_V B_P B_S B_B B_E B_P, R(duplicate_field), "batch \"p\" twice"),
    RB("\x87" B_K B_V B_P B_S B_B B_E B_S, R(duplicate_field), "batch \"s\" twice"),
    RB("\x87" B_K B_V B_P B_S B_B B_E B_B, R(duplicate_field), "batch \"b\" twice"),
    RB("\x87" B_K B_V B_P B_S B_B B_E B_E, R(duplicate_field), "batch \"e\" twice"),
    RE(EV_DUP EV_N, R(duplicate_field), "event \"n\" twice"),
    RE(EV_DUP EV_M, R(duplicate_field), "event \"m\" twice"),
    RE(EV_DUP "\xa1" "x" TS_BYTES, R(duplicate_field), "event \"x\" twice"),
    RE(EV_DUP EV_T, R(duplicate_field), "event \"t\" twice"),
    RE(EV_DUP "\xa1" "l\x81\xa1" "c\xa1" "d", R(duplicate_field), "event \"l\" twice"),
    RE(EV_L5 "\x83\xa1" "a\xa1" "1\xa1" "b\xa1" "2\xa1" "a\xa1" "3", R(duplicate_field),
       "label key twice"),
    RE(EV_L5 "\x82\xa4" "same\xa0\xa4" "same\xa0", R(duplicate_field), "identical labels"),
    RE(EV_L5 "\x82\xa2" "ab\xa1" "1\xa1" "a\xa1" "1", OK, "keys sharing a prefix"),
};

Test(codec, rejects_missing_unknown_duplicate_and_misplaced_fields)
{
    RUN(field_rows);
}

/* Kind, version, the event array, labels: counts and values. */
static const row_t value_rows[] = {
    BF('k', "\x00", R(kind), "kind 0"),
    BF('k', "\x02", R(kind), "kind ack"),
    BF('k', "\x03", R(kind), "kind alert"),
    BF('k', "\x7f", R(kind), "kind 127"),
    BF('k', "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", R(kind), "kind 2^64-1"),
    BF('k', "\xcf\x00\x00\x00\x01\x00\x00\x00\x01", R(kind), "kind 2^32+1"),
    BF('v', "\x00", R(version), "version 0"),
    BF('v', "\x03", R(version), "version 3"),
    BF('v', "\xcc\xff", R(version), "version 255"),
    BF('v', "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", R(version), "version 2^64-1"),
    BF('v', "\xcf\x00\x00\x00\x01\x00\x00\x00\x01", R(version), "version 2^32+1"),
    /* a newer message is recognised before its fields are judged */
    RB("\x84\xa1" "k\x01\xa1" "v\x03"
       "\xa2" "zz\xbc" "a field only version 3 knows"
       "\xa1" "s\xd9\x20" "a string where v1 wants a number",
       R(version), "version 3 with fields v1 does not know"),
    RB("\x82\xa1" "k\x01\xa1" "v\x03", R(version), "version 3 with nothing else"),
    BF('e', "\x90", R(no_events), "fixarray of 0 events"),
    BF('e', "\xdc\x00\x00", R(no_events), "array16 of 0 events"),
    BF('e', "\xdd\x00\x00\x00\x00", R(no_events), "array32 of 0 events"),
    NLAB(0, OK, "an empty labels map"),
    NLAB(TALLY_MAX_LABELS, OK, "8 labels"),
    NLAB(TALLY_MAX_LABELS + 1, R(too_many_labels), "9 labels"),
    NLAB(15, R(too_many_labels), "15 labels"),
    /* non-finite values: a bad_value where floats belong */
    EF('x', "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", R(bad_value), "float64 NaN"),
    EF('x', "\xcb\xff\xf8\x00\x00\x00\x00\x00\x01", R(bad_value), "float64 negative NaN with payload"),
    EF('x', "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x01", R(bad_value), "float64 signalling NaN"),
    EF('x', "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", R(bad_value), "float64 +inf"),
    EF('x', "\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", R(bad_value), "float64 -inf"),
    EF('x', "\xca\x7f\xc0\x00\x00", R(bad_value), "float32 NaN"),
    EF('x', "\xca\xff\xc0\x00\x01", R(bad_value), "float32 negative NaN"),
    EF('x', "\xca\x7f\x80\x00\x00", R(bad_value), "float32 +inf"),
    EF('x', "\xca\xff\x80\x00\x00", R(bad_value), "float32 -inf"),
    EF('x', "\xca\x7f\x7f\xff\xff", OK, "float32 FLT_MAX"),
    EF('x', "\xcb\x7f\xef\xff\xff\xff\xff\xff\xff", OK, "float64 DBL_MAX"),
    /* uint64 above INT64_MAX: a bad value for "x" and "t" */
    EF('x', "\xcf\x80\x00\x00\x00\x00\x00\x00\x00", R(bad_value), "2^63"),
    EF('x', "\xcf\x80\x00\x00\x00\x00\x00\x00\x01", R(bad_value), "2^63 + 1"),
    EF('x', "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", R(bad_value), "2^64 - 1"),
    EF('t', "\xcf\x80\x00\x00\x00\x00\x00\x00\x00", R(bad_value), "timestamp 2^63"),
    EF('t', "\xcf\x80\x00\x00\x00\x00\x00\x00\x01", R(bad_value), "timestamp 2^63 + 1"),
    EF('t', "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", R(bad_value), "timestamp 2^64 - 1"),
    EF('x', "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", OK, "INT64_MAX as uint64"),
    EF('t', "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", OK, "timestamp INT64_MAX as uint64"),
    EF('x', "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", OK, "INT64_MIN"),
    /* timestamps start at 1 ms */
    EF('t', "\x00", R(bad_time), "timestamp 0"),
    EF('t', "\xcc\x00", R(bad_time), "timestamp 0 as uint8"),
    EF('t', "\xd3\x00\x00\x00\x00\x00\x00\x00\x00", R(bad_time), "timestamp 0 as int64"),
    EF('t', "\xff", R(bad_time), "timestamp -1"),
    EF('t', "\xd0\x80", R(bad_time), "timestamp -128"),
    EF('t', "\xd3\xff\xff\xff\xff\xff\xff\xff\xff", R(bad_time), "timestamp -1 as int64"),
    EF('t', "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", R(bad_time), "timestamp INT64_MIN"),
    EF('t', "\x01", OK, "timestamp 1"),
};

Test(codec, rejects_bad_kinds_versions_counts_and_values)
{
    RUN(value_rows);
}

/* Names and strings: lengths, alphabets, UTF-8. */
static const row_t name_rows[] = {
    /* namespace, metric, producer: 64 bytes fit, 65 do not */
    EREP('n', 'a', 64, OK, "\"n\" of 64 bytes"),
    EREP('n', 'a', 65, R(too_long), "\"n\" of 65 bytes"),
    EREP('n', 'a', 300, R(too_long), "\"n\" of 300 bytes (str16)"),
    EREP('m', 'M', 64, OK, "\"m\" of 64 bytes"),
    EREP('m', 'M', 65, R(too_long), "\"m\" of 65 bytes"),
    EREP('m', 'M', 1000, R(too_long), "\"m\" of 1000 bytes"),
    BREP('p', 'p', 64, OK, "producer of 64 bytes"),
    BREP('p', 'p', 65, R(too_long), "producer of 65 bytes"),
    LBL("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", "v", OK, "label key of 32 bytes"),
    LBL("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", "v", R(too_long), "label key of 33 bytes"),
    LBL("k", "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", OK,
        "label value of 64 bytes"),
    LBL("k", "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", R(too_long),
        "label value of 65 bytes"),
    LBL("k",
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
        R(too_long), "label value of 128 bytes"),
    ES('n', "Billing", R(bad_name), "namespace \"Billing\""),
    ES('n', "bill ing", R(bad_name), "namespace \"bill ing\""),
    ES('n', "bill_ing", R(bad_name), "namespace \"bill_ing\""),
    ES('n', "bill.ing", R(bad_name), "namespace \"bill.ing\""),
    ES('n', "bill/ing", R(bad_name), "namespace \"bill/ing\""),
    ES('n', "bill:ing", R(bad_name), "namespace \"bill:ing\""),
    ES('n', "", R(bad_name), "namespace \"\""),
    ES('n', "caf\xc3\xa9", R(bad_name), "namespace \"caf\xc3\xa9\""),
    ES('n', "a\x00" "b", R(bad_name), "NUL inside the namespace"),
    ES('n', "0-a-z-9-0", OK, "namespace of digits, letters and dashes"),
    ES('m', "api calls", R(bad_name), "metric \"api calls\""),
    ES('m', "api/calls", R(bad_name), "metric \"api/calls\""),
    ES('m', "api,calls", R(bad_name), "metric \"api,calls\""),
    ES('m', "", R(bad_name), "metric \"\""),
    ES('m', "api\tcalls", R(bad_name), "metric \"api\\tcalls\""),
    ES('m', "caf\xc3\xa9", R(bad_name), "metric \"caf\xc3\xa9\""),
    ES('m', "a+b", R(bad_name), "metric \"a+b\""),
    ES('m', "a\x7f", R(bad_name), "metric \"a\\x7f\""),
    ES('m', "Az09_.:-Bytes.x", OK, "metric of its whole alphabet"),
    BS('p', "prod 1", R(bad_name), "producer \"prod 1\""),
    BS('p', "", R(bad_name), "producer \"\""),
    BS('p', "prod\t1", R(bad_name), "producer \"prod\\t1\""),
    BS('p', "prod\x7f", R(bad_name), "producer \"prod\\x7f\""),
    BS('p', "pr\xc3\xb6" "d", R(bad_name), "producer \"pr\xc3\xb6" "d\""),
    BS('p', "\x01", R(bad_name), "producer \"\\x01\""),
    LBL("", "v", R(bad_name), "label key \"\""),
    LBL("a b", "v", R(bad_name), "label key \"a b\""),
    LBL("a:b", "v", R(bad_name), "label key \"a:b\""),
    LBL("a=b", "v", R(bad_name), "label key \"a=b\""),
    LBL("A\xc3\xa9", "v", R(bad_name), "label key \"A\xc3\xa9\""),
    LBL("a\x01", "v", R(bad_name), "label key \"a\\x01\""),
    LBL("aZ09_.-/", "v", OK, "label key of its whole alphabet"),
    /* label values: printable UTF-8, no controls, shortest forms only */
    LBL("k", "\x01", R(bad_name), "SOH"),
    LBL("k", "a\nb", R(bad_name), "newline"),
    LBL("k", "\t", R(bad_name), "tab"),
    LBL("k", "a\x1e", R(bad_name), "record separator"),
    LBL("k", "\x1f" "a", R(bad_name), "unit separator"),
    LBL("k", "a\x00" "b", R(bad_name), "NUL"),
    LBL("k", "\x7f", R(bad_name), "DEL"),
    LBL("k", "\xc2\x80", R(bad_name), "C1 control U+0080"),
    LBL("k", "\xc2\x9f", R(bad_name), "C1 control U+009F"),
    LBL("k", "\xff", R(bad_name), "byte 0xff"),
    LBL("k", "\xfe", R(bad_name), "byte 0xfe"),
    LBL("k", "\x80", R(bad_name), "lone continuation byte"),
    LBL("k", "a\xbf", R(bad_name), "lone continuation byte after ASCII"),
    LBL("k", "\xc3", R(bad_name), "two-byte sequence cut at the end"),
    LBL("k", "\xe2\x82", R(bad_name), "three-byte sequence cut at the end"),
    LBL("k", "\xf0\x9d\x84", R(bad_name), "four-byte sequence cut at the end"),
    LBL("k", "\xc3" "a", R(bad_name), "ASCII where a continuation belongs"),
    LBL("k", "\xe2\x28\xa1", R(bad_name), "bad second byte"),
    LBL("k", "\xe2\x82\x28", R(bad_name), "bad third byte"),
    LBL("k", "\xc0\x80", R(bad_name), "overlong NUL"),
    LBL("k", "\xc0\xaf", R(bad_name), "overlong '/'"),
    LBL("k", "\xc1\xbf", R(bad_name), "overlong U+007F"),
    LBL("k", "\xe0\x80\x80", R(bad_name), "overlong three-byte NUL"),
    LBL("k", "\xe0\x9f\xbf", R(bad_name), "overlong U+07FF"),
    LBL("k", "\xf0\x80\x80\x80", R(bad_name), "overlong four-byte NUL"),
    LBL("k", "\xf0\x8f\xbf\xbf", R(bad_name), "overlong U+FFFF"),
    LBL("k", "\xed\xa0\x80", R(bad_name), "surrogate U+D800"),
    LBL("k", "\xed\xbf\xbf", R(bad_name), "surrogate U+DFFF"),
    LBL("k", "\xf4\x90\x80\x80", R(bad_name), "U+110000"),
    LBL("k", "\xf5\x80\x80\x80", R(bad_name), "lead byte 0xf5"),
    LBL("k", "\xf7\xbf\xbf\xbf", R(bad_name), "lead byte 0xf7"),
    LBL("k", "\xf8\x88\x80\x80\x80", R(bad_name), "five-byte form"),
    LBL("k", "\xfc\x84\x80\x80\x80\x80", R(bad_name), "six-byte form"),
    LBL("k", "", OK, "empty"),
    LBL("k", " ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}", OK, "printable ASCII"),
    LBL("k", "\xc2\xa0", OK, "U+00A0"),
    LBL("k", "h\xc3\xa9llo", OK, "two-byte"),
    LBL("k", "\xdf\xbf", OK, "U+07FF"),
    LBL("k", "\xe0\xa0\x80", OK, "U+0800"),
    LBL("k", "\xe2\x82\xac", OK, "euro sign"),
    LBL("k", "\xed\x9f\xbf", OK, "U+D7FF"),
    LBL("k", "\xee\x80\x80", OK, "U+E000"),
    LBL("k", "\xef\xbf\xbf", OK, "U+FFFF"),
    LBL("k", "\xf0\x90\x80\x80", OK, "U+10000"),
    LBL("k", "\xf0\x9d\x84\x9e", OK, "musical G clef"),
    LBL("k", "\xf4\x8f\xbf\xbf", OK, "U+10FFFF"),
};

Test(codec, rejects_bad_names_and_overlong_strings)
{
    RUN(name_rows);
}

/* Framing: what is not msgpack, not a map, or more than one message. */
#define GOOD_BATCH "\x86" B_K B_V B_P B_S B_B B_E
static const row_t framing_rows[] = {
    RB("", R(msgpack), "empty message"),
    RB("\xdf", R(msgpack), "map32 header cut short"),
    RB("\xde\x00", R(msgpack), "map16 header cut short"),
    RB("\x86", R(msgpack), "fixmap of 6 with nothing behind it"),
    RB("\x82\xa1" "k", R(msgpack), "key without value"),
    RB("\x81\xa5" "k", R(msgpack), "key string cut short"),
    /* well-formed msgpack that is not a map */
    RB("\x01", R(type), "an integer"),
    RB("\xa5" "hello", R(type), "a string"),
    RB("\xc0", R(type), "nil"),
    RB("\x91\x80", R(type), "an array instead of a map"),
    RB("\x81\x01\x01", R(type), "an integer key"),
    RB("{\"k\":1,\"v\":1}", R(type), "JSON"),
    /* 0xc1 is the one byte msgpack never uses; PROTOCOL.md §5 and §3.1
     * class it with every other unaccepted encoding as "type" */
    RB("\xc1", R(type), "0xc1 alone"),
    EF('x', "\xc1", R(type), "0xc1 as the value"),
    EF('n', "\xc1", R(type), "0xc1 as the namespace"),
    BF('s', "\xc1", R(type), "0xc1 as the sequence"),
    BF('e', "\x91\xc1", R(type), "0xc1 as an event"),
    /* one message, nothing after it */
    RB(GOOD_BATCH "\x00", R(trailing), "trailing 0x00"),
    RB(GOOD_BATCH "\xc0", R(trailing), "trailing nil"),
    RB(GOOD_BATCH "\xc1", R(trailing), "trailing 0xc1"),
    RB(GOOD_BATCH "\x80", R(trailing), "trailing empty map"),
    RB(GOOD_BATCH "\xff\xff", R(trailing), "trailing 0xff 0xff"),
    RB(GOOD_BATCH GOOD_BATCH, R(trailing), "two batches in one message"),
    /* arrays inside arrays: a type error at the first level too deep */
    BF('e', "\x91\x91\x91\x91\x80", R(type), "events nested four deep"),
    BF('e', "\x92\x91\x80\x80", R(type), "an array of events inside the events"),
    RB("\x91\x91\x91\x80", R(type), "nested arrays as the message"),
    EF('x', "\x91\x91\x91\x07", R(type), "nested arrays as the value"),
    EF('n', "\x91\x91\xa1" "a", R(type), "nested arrays as the namespace"),
};

/* clang-format on */

Test(codec, rejects_what_is_not_one_msgpack_map)
{
    RUN(framing_rows);
}

/* Hand-written: the counts depend on a decoder's max_events. */
Test(codec, rejects_oversized_event_arrays)
{
    buf_t b;
    tally__decoder_t d;
    tally__wire_batch_t out;
    int reason;
    const uint32_t limits[] = {1, 4, TALLY_MAX_BATCH_EVENTS};
    for (size_t i = 0; i < 3; i++) {
        uint32_t max = limits[i];
        cr_assert_eq(tally__decoder_init(&d, max), 0);
        batch_of(&b, max);
        reason = -1;
        cr_expect_eq(tally__decode_batch(&d, b.sb.data, b.sb.size, &out, &reason), 0,
                     "%u events with max_events %u: %s", max, max, tally__reject_name(reason));
        cr_expect_eq(out.nevents, max);
        buf_fini(&b);
        batch_of(&b, max + 1);
        reason = -1;
        cr_expect_eq(tally__decode_batch(&d, b.sb.data, b.sb.size, &out, &reason), TALLY_EPROTO);
        cr_expect_eq(reason, R(too_many_events), "%u events with max_events %u: %s", max + 1, max,
                     tally__reject_name(reason));
        buf_fini(&b);
        tally__decoder_fini(&d);
    }
}

/* Hand-written: label sets whose total size sits at the bound. */
Test(codec, rejects_label_sets_over_the_byte_bound)
{
    buf_t e;
    /* 3 * (32 + 64 + 2) + (10 + 14 + 2) = 320 fits ... */
    char key32[3][33];
    for (int i = 0; i < 3; i++) {
        memset(key32[i], 'k', 32);
        key32[i][0] = (char)('a' + i);
        key32[i][32] = '\0';
    }
    buf_init(&e);
    event_labels(&e, 4);
    for (int i = 0; i < 3; i++) {
        str(&e.pk, key32[i]);
        rep(&e.pk, 'v', 64);
    }
    rep(&e.pk, 'k', 10);
    rep(&e.pk, 'v', 14);
    expect_event_accept(&e, "labels of exactly TALLY_MAX_LABELS_BYTES");
    /* ... one byte more does not */
    buf_init(&e);
    event_labels(&e, 4);
    for (int i = 0; i < 3; i++) {
        str(&e.pk, key32[i]);
        rep(&e.pk, 'v', 64);
    }
    rep(&e.pk, 'k', 10);
    rep(&e.pk, 'v', 15);
    expect_event_reject(&e, R(too_long), "labels of TALLY_MAX_LABELS_BYTES + 1");
    /* eight full labels */
    buf_init(&e);
    event_labels(&e, 8);
    for (int i = 0; i < 8; i++) {
        char k[33];
        memset(k, 'k', 32);
        k[0] = (char)('a' + i);
        k[32] = '\0';
        str(&e.pk, k);
        rep(&e.pk, 'v', 64);
    }
    expect_event_reject(&e, R(too_long), "eight labels of 98 bytes");
}

Test(codec, decoder_init_rejects_bad_limits)
{
    tally__decoder_t d;
    cr_expect_eq(tally__decoder_init(&d, 0), TALLY_EINVAL);
    cr_expect_eq(tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS + 1), TALLY_EINVAL);
    cr_expect_eq(tally__decoder_init(&d, UINT32_MAX), TALLY_EINVAL);
    cr_assert_eq(tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS), 0);
    tally__decoder_fini(&d);
}

/* PROTOCOL.md §3.1: every integer encoding whose value fits, minimal or
 * not, and float32 as well as float64. */
Test(codec, decodes_every_number_encoding)
{
    static const struct {
        const char *v;
        size_t n;
        int is_float;
        int64_t ival;
        double fval;
    } cases[] = {
        {V("\x00"), 0, 0, 0},
        {V("\x7f"), 0, 127, 0},
        {V("\xe0"), 0, -32, 0},
        {V("\xff"), 0, -1, 0},
        {V("\xcc\xff"), 0, 255, 0},
        {V("\xcc\x01"), 0, 1, 0},
        {V("\xcd\xff\xff"), 0, 65535, 0},
        {V("\xce\xff\xff\xff\xff"), 0, 4294967295LL, 0},
        {V("\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), 0, 4294967296LL, 0},
        {V("\xd0\x80"), 0, -128, 0},
        {V("\xd0\x05"), 0, 5, 0},
        {V("\xd1\x80\x00"), 0, -32768, 0},
        {V("\xd1\x7f\xff"), 0, 32767, 0},
        {V("\xd2\x80\x00\x00\x00"), 0, INT32_MIN, 0},
        {V("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), 0, INT64_MIN, 0},
        {V("\xd3\x7f\xff\xff\xff\xff\xff\xff\xff"), 0, INT64_MAX, 0},
        {V("\xca\x3f\xc0\x00\x00"), 1, 0, 1.5},
        {V("\xca\xc1\x48\x00\x00"), 1, 0, -12.5},
        {V("\xca\x00\x00\x00\x01"), 1, 0, 0x1p-149}, /* smallest float32 subnormal */
        {V("\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a"), 1, 0, 0.1},
    };
    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, 1), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_t e, b;
        buf_init(&e);
        event_custom(&e, 'x', cases[i].v, cases[i].n, 0);
        wrap_event(&b, &e);
        tally__wire_batch_t out;
        int reason = -1;
        cr_assert_eq(tally__decode_batch(&d, b.sb.data, b.sb.size, &out, &reason), 0,
                     "case %zu: %s", i, tally__reject_name(reason));
        cr_expect_eq(out.events[0].is_float, cases[i].is_float, "case %zu: is_float", i);
        if (cases[i].is_float)
            cr_expect(out.events[0].fval == cases[i].fval, "case %zu: %a, want %a", i,
                      out.events[0].fval, cases[i].fval);
        else
            cr_expect_eq(out.events[0].ival, cases[i].ival, "case %zu: %lld, want %lld", i,
                         (long long)out.events[0].ival, (long long)cases[i].ival);
        buf_fini(&b);
        /* and the same encodings as the timestamp, when positive integers */
        if (!cases[i].is_float && cases[i].ival > 0) {
            buf_init(&e);
            event_custom(&e, 't', cases[i].v, cases[i].n, 0);
            wrap_event(&b, &e);
            cr_assert_eq(tally__decode_batch(&d, b.sb.data, b.sb.size, &out, &reason), 0);
            cr_expect_eq(out.events[0].ts_ms, cases[i].ival, "case %zu as t", i);
            buf_fini(&b);
        }
    }
    /* non-minimal unsigned forms for the batch's integers */
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 6);
    str(&b.pk, "k");
    raw(&b, V("\xd3\x00\x00\x00\x00\x00\x00\x00\x01"));
    str(&b.pk, "v");
    raw(&b, V("\xcd\x00\x01"));
    str(&b.pk, "p");
    raw(&b, V("\xdb\x00\x00\x00\x01"
              "p")); /* str32 */
    str(&b.pk, "s");
    raw(&b, V("\xd2\x00\x00\x01\x00"));
    str(&b.pk, "b");
    raw(&b, V("\xd0\x7f"));
    str(&b.pk, "e");
    raw(&b, V("\xdd\x00\x00\x00\x01"));
    good_event(&b.pk);
    tally__wire_batch_t out;
    int reason = -1;
    cr_expect_eq(tally__decode_batch(&d, b.sb.data, b.sb.size, &out, &reason), 0, "%s",
                 tally__reject_name(reason));
    cr_expect_eq(out.seq, 256);
    cr_expect_eq(out.base, 127);
    cr_expect(str_is(out.producer, "p"));
    buf_fini(&b);
    tally__decoder_fini(&d);
}

Test(codec, rejects_bad_sequence_numbers)
{
    static const struct {
        uint64_t seq, base;
        int ok;
    } cases[] = {
        {0, 0, 0},          {0, 1, 0},
        {1, 0, 0},          {5, 6, 0},
        {1, UINT64_MAX, 0}, {UINT64_MAX - 1, UINT64_MAX, 0},
        {5, 5, 1},          {5, 1, 1},
        {UINT64_MAX, 1, 1}, {UINT64_MAX, UINT64_MAX, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_t b;
        char what[80];
        snprintf(what, sizeof what, "seq %llu base %llu", (unsigned long long)cases[i].seq,
                 (unsigned long long)cases[i].base);
        buf_init(&b);
        head(&b.pk, 6);
        str(&b.pk, "p");
        str(&b.pk, "prod-1");
        str(&b.pk, "s");
        msgpack_pack_uint64(&b.pk, cases[i].seq);
        str(&b.pk, "b");
        msgpack_pack_uint64(&b.pk, cases[i].base);
        str(&b.pk, "e");
        msgpack_pack_array(&b.pk, 1);
        good_event(&b.pk);
        if (cases[i].ok)
            expect_accept(&b, what);
        else
            expect_reject(&b, R(bad_seq), what);
    }
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(codec, rejects_huge_declared_lengths_without_allocating)
{
    static const struct {
        const char *v;
        size_t n;
        const char *what;
    } whole[] = {
        {V("\xdf\xff\xff\xff\xff\xa1"
           "k\x01\xa1"
           "v"),
         "map32 of 2^32-1 entries in 10 bytes"},
        {V("\xde\xff\xff\xa1"
           "k\x01"),
         "map16 of 65535 entries in 6 bytes"},
        {V("\x8f\xa1"
           "k\x01"),
         "fixmap of 15 entries in 4 bytes"},
    };
    cr_assert_eq(whole[0].n, 10);
    double t0 = now_s();
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        expect_reject_bytes(whole[i].v, whole[i].n, TALLY_MAX_BATCH_EVENTS, R(msgpack),
                            whole[i].what);

    static const struct {
        char field;
        const char *v;
        size_t n;
        const char *what;
    } fields[] = {
        {'e', V("\xdd\xff\xff\xff\xff\x80"), "array32 of 2^32-1 events"},
        {'e', V("\xdc\xff\xff\x80"), "array16 of 65535 events"},
        {'e', V("\x91\xdf\xff\xff\xff\xff"), "event map32 of 2^32-1 entries"},
        {'p',
         V("\xdb\xff\xff\xff\xff"
           "ab"),
         "str32 producer of 2^32-1 bytes"},
        {'p',
         V("\xda\xff\xff"
           "ab"),
         "str16 producer of 65535 bytes"},
        {'p',
         V("\xd9\xff"
           "ab"),
         "str8 producer of 255 bytes"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        buf_t b;
        buf_init(&b);
        /* the field last, so that what it declares runs past the end */
        batch_custom(&b, 0, NULL, 0, fields[i].field);
        b.sb.data[0]++; /* fixmap 5 -> 6 */
        char k[2] = {fields[i].field, 0};
        str(&b.pk, k);
        raw(&b, fields[i].v, fields[i].n);

        tally__decoder_t d;
        cr_assert_eq(tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS), 0);
        tally__wire_batch_t out;
        int reason = -1;
        cr_expect_eq(decode_copy(&d, b.sb.data, b.sb.size, &out, &reason), TALLY_EPROTO);
        cr_expect_eq(reason, R(msgpack), "%s: reason %s", fields[i].what,
                     tally__reject_name(reason));
        cr_expect_leq(d.cap_events, 64, "%s: %u event slots allocated", fields[i].what,
                      d.cap_events);
        cr_expect_eq(d.cap_labels, 0, "%s", fields[i].what);
        tally__decoder_fini(&d);
        buf_fini(&b);
    }

    /* a labels map and a label string that claim more than is there */
    static const struct {
        const char *v;
        size_t n;
        const char *what;
    } labels[] = {
        {V("\xdf\xff\xff\xff\xff\xa1"
           "a\xa1"
           "b"),
         "labels map32 of 2^32-1 entries"},
        {V("\x81\xa1"
           "a\xdb\xff\xff\xff\xff"
           "b"),
         "label value str32 of 2^32-1 bytes"},
    };
    for (size_t i = 0; i < 2; i++) {
        buf_t b, e;
        buf_init(&e);
        event_labels(&e, 0);
        e.sb.size--; /* drop the empty labels map */
        raw(&e, labels[i].v, labels[i].n);
        buf_init(&b);
        head(&b.pk, 6);
        str(&b.pk, "p");
        str(&b.pk, "prod-1");
        str(&b.pk, "s");
        msgpack_pack_uint8(&b.pk, 1);
        str(&b.pk, "b");
        msgpack_pack_uint8(&b.pk, 1);
        str(&b.pk, "e");
        msgpack_pack_array(&b.pk, 1);
        raw(&b, e.sb.data, e.sb.size);
        buf_fini(&e);

        tally__decoder_t d;
        cr_assert_eq(tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS), 0);
        tally__wire_batch_t out;
        int reason = -1;
        cr_expect_eq(decode_copy(&d, b.sb.data, b.sb.size, &out, &reason), TALLY_EPROTO);
        cr_expect_eq(reason, R(msgpack), "%s: reason %s", labels[i].what,
                     tally__reject_name(reason));
        cr_expect_leq(d.cap_labels, 64, "%s: %u label slots allocated", labels[i].what,
                      d.cap_labels);
        tally__decoder_fini(&d);
        buf_fini(&b);
    }
    double dt = now_s() - t0;
    cr_expect_lt(dt, 1.0, "huge declared lengths took %.3f s to reject", dt);
}

/* Hand-written: a message too large for a table row. */
Test(codec, rejects_deeply_nested_arrays_without_recursion)
{
    buf_t b;
    /* a hundred thousand levels: no recursion, no stack overflow */
    enum { DEPTH = 100000 };
    char *deep = malloc(DEPTH + 1);
    cr_assert_not_null(deep);
    memset(deep, 0x91, DEPTH);
    deep[DEPTH] = (char)0x80;
    expect_reject_bytes(deep, DEPTH + 1, 16, R(type), "100000 nested arrays");
    buf_init(&b);
    batch_custom(&b, 'e', deep, DEPTH + 1, 0);
    expect_reject(&b, R(type), "100000 nested arrays as the events");
    free(deep);
}

/* Flip every byte of a valid batch to a set of interesting values: each
 * result is either accepted whole or rejected with a known reason, and
 * never read past its end (ASan). */
Test(codec, survives_every_single_byte_corruption)
{
    static const uint8_t subst[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                    0xc0, 0xc1, 0xc4, 0xca, 0xcb, 0xcc, 0xcf, 0xd3, 0xd9,
                                    0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
    const tally_label_t labels[2] = {{"object", "bucket/k\xc3\xa9y"}, {"zone", "eu"}};
    const tally_event_t evs[2] = {
        {.ns = "billing",
         .metric = "bytes",
         .is_float = 1,
         .fvalue = 0.1,
         .labels = labels,
         .nlabels = 2},
        {.ns = "storage", .metric = "objects", .ivalue = -70000},
    };
    buf_t events, b;
    buf_init(&events);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(tally__encode_event(&events.sb, &evs[i], TS + i), 0);
    buf_init(&b);
    cr_assert_eq(tally__encode_batch(&b.sb, "prod-1", 9, 7, 2, events.sb.data, events.sb.size), 0);

    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, 8), 0);
    uint8_t *copy = malloc(b.sb.size);
    cr_assert_not_null(copy);
    for (size_t pos = 0; pos < b.sb.size; pos++) {
        for (size_t s = 0; s < sizeof subst; s++) {
            memcpy(copy, b.sb.data, b.sb.size);
            copy[pos] = subst[s];
            tally__wire_batch_t out;
            int reason = -1;
            int rc = tally__decode_batch(&d, copy, b.sb.size, &out, &reason);
            if (rc == 0) {
                cr_expect(out.nevents >= 1 && out.nevents <= 8);
                cr_expect(out.seq >= out.base && out.base >= 1);
                for (uint32_t i = 0; i < out.nevents; i++) {
                    const tally__wire_event_t *w = &out.events[i];
                    cr_expect((const uint8_t *)w->ns.p >= copy &&
                              (const uint8_t *)w->ns.p + w->ns.len <= copy + b.sb.size);
                    cr_expect(tally__valid_ns(w->ns.p, w->ns.len));
                    cr_expect(tally__valid_metric(w->metric.p, w->metric.len));
                    cr_expect(w->ts_ms > 0);
                    cr_expect(w->nlabels <= TALLY_MAX_LABELS);
                }
            } else {
                cr_expect(rc == TALLY_EPROTO || rc == TALLY_EVERSION, "byte %zu = 0x%02x: rc %d",
                          pos, subst[s], rc);
                cr_expect(reason >= 0 && reason < TALLY_PROTO_REJECT_COUNT,
                          "byte %zu = 0x%02x: reason %d", pos, subst[s], reason);
                cr_expect_eq(rc == TALLY_EVERSION, reason == R(version));
            }
        }
    }
    free(copy);
    tally__decoder_fini(&d);
    buf_fini(&b);
    buf_fini(&events);
}

Test(codec, reject_names_follow_the_table)
{
    cr_expect_str_eq(tally__reject_name(R(msgpack)), "msgpack");
    cr_expect_str_eq(tally__reject_name(R(too_old)), "too_old");
    cr_expect_str_eq(tally__reject_name(R(future)), "future");
    cr_expect_str_eq(tally__reject_text(R(version)), "unsupported protocol version");
    cr_expect_str_eq(tally__reject_name(-1), "unknown");
    cr_expect_str_eq(tally__reject_name(TALLY_PROTO_REJECT_COUNT), "unknown");
    cr_expect_str_eq(tally__reject_text(TALLY_PROTO_REJECT_COUNT), "unknown");
}

/* ---- tally__event_validate ---------------------------------------------- */

Test(codec, event_validate_accepts_valid_events)
{
    char ns64[65], metric64[65];
    memset(ns64, 'a', 64);
    ns64[64] = '\0';
    memset(metric64, 'B', 64);
    metric64[64] = '\0';
    static const tally_label_t eight[8] = {{"a", "1"}, {"b", ""},  {"c", "\xe2\x82\xac"},
                                           {"d", "4"}, {"e", "5"}, {"f", "6"},
                                           {"g", "7"}, {"h", "8"}};
    const tally_event_t ok[] = {
        {.ns = "billing", .metric = "api.calls", .ivalue = 1},
        {.ns = "billing", .metric = "api.calls", .ivalue = INT64_MIN, .ts_ms = TS},
        {.ns = "b", .metric = "m", .is_float = 1, .fvalue = -0.0},
        {.ns = "b", .metric = "m", .is_float = 0, .fvalue = NAN}, /* fvalue unused */
        {.ns = ns64, .metric = metric64, .ivalue = 1, .ts_ms = 0},
        {.ns = "b", .metric = "m", .labels = eight, .nlabels = 8},
        {.ns = "b", .metric = "m", .labels = NULL, .nlabels = 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int reason = -1;
        cr_expect_eq(tally__event_validate(&ok[i], &reason), 0, "event %zu: %s", i,
                     tally__reject_name(reason));
    }
}

Test(codec, event_validate_rejects_malformed_events)
{
    char ns65[66], key32[3][33], value64[65];
    memset(ns65, 'a', 65);
    ns65[65] = '\0';
    for (int i = 0; i < 3; i++) {
        memset(key32[i], 'k', 32);
        key32[i][0] = (char)('a' + i);
        key32[i][32] = '\0';
    }
    memset(value64, 'v', 64);
    value64[64] = '\0';
    static const tally_label_t nine[9] = {{"a", "1"}, {"b", "2"}, {"c", "3"},
                                          {"d", "4"}, {"e", "5"}, {"f", "6"},
                                          {"g", "7"}, {"h", "8"}, {"i", "9"}};
    static const tally_label_t dup[3] = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
    static const tally_label_t ctrl[1] = {{"a", "line\nbreak"}};
    static const tally_label_t overlong[1] = {{"a", "\xc0\x80"}};
    static const tally_label_t badkey[1] = {{"a b", "1"}};
    static const tally_label_t nullkey[1] = {{NULL, "1"}};
    static const tally_label_t nullvalue[1] = {{"a", NULL}};
    /* 3 * 98 + (10 + 15 + 2) = 321 */
    const tally_label_t over[4] = {{key32[0], value64},
                                   {key32[1], value64},
                                   {key32[2], value64},
                                   {"kkkkkkkkkk", "vvvvvvvvvvvvvvv"}};
    const tally_label_t exact[4] = {{key32[0], value64},
                                    {key32[1], value64},
                                    {key32[2], value64},
                                    {"kkkkkkkkkk", "vvvvvvvvvvvvvv"}};
    static const struct {
        tally_event_t ev;
        int reason;
        const char *what;
    } cases[] = {
        {{.ns = NULL, .metric = "m"}, R(missing), "NULL namespace"},
        {{.ns = "b", .metric = NULL}, R(missing), "NULL metric"},
        {{.ns = "Billing", .metric = "m"}, R(bad_name), "upper-case namespace"},
        {{.ns = "", .metric = "m"}, R(bad_name), "empty namespace"},
        {{.ns = "bill_ing", .metric = "m"}, R(bad_name), "underscore in namespace"},
        {{.ns = "b", .metric = "api calls"}, R(bad_name), "space in metric"},
        {{.ns = "b", .metric = ""}, R(bad_name), "empty metric"},
        {{.ns = "b", .metric = "m", .is_float = 1, .fvalue = NAN}, R(bad_value), "NaN"},
        {{.ns = "b", .metric = "m", .is_float = 1, .fvalue = INFINITY}, R(bad_value), "+inf"},
        {{.ns = "b", .metric = "m", .is_float = 1, .fvalue = -INFINITY}, R(bad_value), "-inf"},
        {{.ns = "b", .metric = "m", .ts_ms = -1}, R(bad_time), "negative timestamp"},
        {{.ns = "b", .metric = "m", .labels = nine, .nlabels = 9}, R(too_many_labels), "9 labels"},
        {{.ns = "b", .metric = "m", .labels = NULL, .nlabels = 1},
         R(too_many_labels),
         "NULL labels"},
        {{.ns = "b", .metric = "m", .labels = dup, .nlabels = 3},
         R(duplicate_field),
         "duplicate label key"},
        {{.ns = "b", .metric = "m", .labels = ctrl, .nlabels = 1},
         R(bad_name),
         "control character in a label value"},
        {{.ns = "b", .metric = "m", .labels = overlong, .nlabels = 1},
         R(bad_name),
         "overlong UTF-8 in a label value"},
        {{.ns = "b", .metric = "m", .labels = badkey, .nlabels = 1},
         R(bad_name),
         "space in a label key"},
        {{.ns = "b", .metric = "m", .labels = nullkey, .nlabels = 1},
         R(bad_name),
         "NULL label key"},
        {{.ns = "b", .metric = "m", .labels = nullvalue, .nlabels = 1},
         R(bad_name),
         "NULL label value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int reason = -1;
        cr_expect_eq(tally__event_validate(&cases[i].ev, &reason), TALLY_EINVAL, "%s",
                     cases[i].what);
        cr_expect_eq(reason, cases[i].reason, "%s: reason %s, want %s", cases[i].what,
                     tally__reject_name(reason), tally__reject_name(cases[i].reason));
        cr_expect_eq(tally__event_validate(&cases[i].ev, NULL), TALLY_EINVAL,
                     "%s, without a reason pointer", cases[i].what);
    }
    int reason = -1;
    cr_expect_eq(tally__event_validate(NULL, &reason), TALLY_EINVAL);
    cr_expect_eq(reason, R(missing));

    tally_event_t ev = {.ns = "b", .metric = "m", .labels = over, .nlabels = 4};
    reason = -1;
    cr_expect_eq(tally__event_validate(&ev, &reason), TALLY_EINVAL);
    cr_expect_eq(reason, R(too_long), "labels of 321 bytes: %s", tally__reject_name(reason));
    ev.labels = exact;
    cr_expect_eq(tally__event_validate(&ev, &reason), 0, "labels of exactly 320 bytes");

    /* Over-long names are refused; the reason is checked by the decoder tests
     * (the validator says bad_name where the decoder says too_long). */
    char key33[34];
    memset(key33, 'k', 33);
    key33[33] = '\0';
    const tally_label_t longkey[1] = {{key33, "v"}};
    const tally_label_t longvalue[1] = {{"k", ns65}};
    const tally_event_t longs[] = {
        {.ns = ns65, .metric = "m"},
        {.ns = "b", .metric = ns65},
        {.ns = "b", .metric = "m", .labels = longkey, .nlabels = 1},
        {.ns = "b", .metric = "m", .labels = longvalue, .nlabels = 1},
    };
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++)
        cr_expect_eq(tally__event_validate(&longs[i], NULL), TALLY_EINVAL, "over-long case %zu", i);
}

/* ---- decoder reuse ------------------------------------------------------- */

/* A deterministic event i of a batch, with its own storage. */
typedef struct gen_event {
    char ns[24], metric[32];
    char keys[TALLY_MAX_LABELS][24], values[TALLY_MAX_LABELS][48];
    tally_label_t labels[TALLY_MAX_LABELS];
    tally_event_t ev;
    int64_t ts;
} gen_event_t;

static void
gen_event(gen_event_t *g, uint32_t i, uint32_t salt)
{
    memset(g, 0, sizeof *g);
    snprintf(g->ns, sizeof g->ns, "ns-%u", (i + salt) % 7);
    snprintf(g->metric, sizeof g->metric, "m.%u.%u", i, salt);
    size_t nl = (i * 5 + salt) % (TALLY_MAX_LABELS + 1);
    for (size_t j = 0; j < nl; j++) {
        /* keys in descending order, so that sorting would show */
        snprintf(g->keys[j], sizeof g->keys[j], "k%zu", nl - j);
        snprintf(g->values[j], sizeof g->values[j], "v%u-%u-%zu", i, salt, j);
        g->labels[j].key = g->keys[j];
        g->labels[j].value = g->values[j];
    }
    g->ev.ns = g->ns;
    g->ev.metric = g->metric;
    g->ev.is_float = i % 3 == 0;
    g->ev.fvalue = i * 0.25 + salt;
    g->ev.ivalue = (int64_t)i * 1000 - 500 + salt;
    g->ev.labels = nl ? g->labels : NULL;
    g->ev.nlabels = nl;
    g->ts = TS + i + salt;
}

/* Encode n generated events into b (caller frees); gens gets them. */
static void
gen_batch(buf_t *b, gen_event_t *gens, uint32_t n, uint32_t salt, uint64_t seq)
{
    buf_t ev;
    buf_init(&ev);
    for (uint32_t i = 0; i < n; i++) {
        gen_event(&gens[i], i, salt);
        cr_assert_eq(tally__encode_event(&ev.sb, &gens[i].ev, gens[i].ts), 0);
    }
    buf_init(b);
    cr_assert_eq(
        tally__encode_batch(&b->sb, salt % 2 ? "odd" : "even", seq, seq, n, ev.sb.data, ev.sb.size),
        0);
    buf_fini(&ev);
}

static void
decode_and_check(tally__decoder_t *d, buf_t *b, const gen_event_t *gens, uint32_t n, uint32_t salt,
                 uint64_t seq, const char *what)
{
    tally__wire_batch_t out;
    int reason = -1;
    cr_assert_eq(tally__decode_batch(d, b->sb.data, b->sb.size, &out, &reason), 0, "%s: %s", what,
                 tally__reject_name(reason));
    cr_expect(str_is(out.producer, salt % 2 ? "odd" : "even"), "%s: producer", what);
    cr_expect_eq(out.seq, seq, "%s: seq", what);
    cr_assert_eq(out.nevents, n, "%s: %u events, want %u", what, out.nevents, n);
    uint32_t next_label = 0;
    for (uint32_t i = 0; i < n; i++) {
        expect_event_eq(&out, i, &gens[i].ev, gens[i].ts);
        if (out.events[i].nlabels) {
            cr_expect_eq(out.events[i].label_off, next_label, "%s: event %u label_off", what, i);
            next_label += out.events[i].nlabels;
        }
    }
}

Test(codec, decoder_reuse_keeps_no_stale_state)
{
    enum { BIG = 1500, SMALL = 3 };
    gen_event_t *big = calloc(BIG, sizeof *big), *small = calloc(SMALL, sizeof *small);
    cr_assert(big && small);
    buf_t bb, sb, bad;
    gen_batch(&bb, big, BIG, 0, 1000);
    gen_batch(&sb, small, SMALL, 1, 7);

    tally__decoder_t d;
    cr_assert_eq(tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS), 0);
    decode_and_check(&d, &bb, big, BIG, 0, 1000, "big");
    decode_and_check(&d, &sb, small, SMALL, 1, 7, "small after big");
    decode_and_check(&d, &bb, big, BIG, 0, 1000, "big again");

    /* A reject half way through leaves nothing behind either. */
    buf_init(&bad);
    raw(&bad, bb.sb.data, bb.sb.size - 1);
    tally__wire_batch_t out;
    int reason = -1;
    cr_expect_eq(tally__decode_batch(&d, bad.sb.data, bad.sb.size, &out, &reason), TALLY_EPROTO);
    cr_expect_eq(out.nevents, 0);
    buf_fini(&bad);
    decode_and_check(&d, &sb, small, SMALL, 1, 7, "small after a rejected big");
    buf_init(&bad);
    raw(&bad, sb.sb.data, sb.sb.size);
    raw(&bad, "\x00", 1);
    cr_expect_eq(tally__decode_batch(&d, bad.sb.data, bad.sb.size, &out, &reason), TALLY_EPROTO);
    cr_expect_eq(reason, R(trailing));
    buf_fini(&bad);
    decode_and_check(&d, &bb, big, BIG, 0, 1000, "big after a rejected small");

    /* The small batch again, but in a fresh decoder: same result. */
    tally__decoder_t fresh;
    cr_assert_eq(tally__decoder_init(&fresh, TALLY_MAX_BATCH_EVENTS), 0);
    decode_and_check(&fresh, &sb, small, SMALL, 1, 7, "small in a fresh decoder");
    tally__decoder_fini(&fresh);

    tally__decoder_fini(&d);
    buf_fini(&sb);
    buf_fini(&bb);
    free(small);
    free(big);
}
