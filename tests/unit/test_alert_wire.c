/* test_alert_wire.c — the alert_v1 format's one reader and writer (lib/billing/alert.c):
 * the documented golden frame, then a table of hand-built frames (accepted encodings and
 * hostile ones: truncated, wrong types, oversize strings, lying lengths) run by one driver
 * that decodes an exactly sized copy, so ASan sees any read past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "alert.h"
#include "tally/tally.h"
#include "tally_proto.h"

/* The 78 bytes of PROTOCOL.md §3.5's example. */
static const uint8_t golden[] = {
    0x64, 0x65, 0x6d, 0x6f, 0x00, 0x88, 0xa1, 0x6b, 0x03, 0xa1, 0x76, 0x01, 0xa1, 0x6e, 0xa4, 0x64,
    0x65, 0x6d, 0x6f, 0xa1, 0x6d, 0xad, 0x68, 0x74, 0x74, 0x70, 0x5f, 0x72, 0x65, 0x71, 0x75, 0x65,
    0x73, 0x74, 0x73, 0xa1, 0x71, 0xcb, 0x40, 0x59, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa1, 0x75,
    0xcb, 0x40, 0x54, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa1, 0x77, 0xa7, 0x77, 0x61, 0x72, 0x6e,
    0x69, 0x6e, 0x67, 0xa1, 0x74, 0xcf, 0x00, 0x00, 0x01, 0x9b, 0x76, 0xda, 0xa8, 0x7b,
};
#define GOLDEN_TS 1767225600123LL /* 2026-01-01T00:00:00.123Z */

/* Decode an exactly sized private copy of buf[0..len). */
static int
decode_copy(const void *buf, size_t len, tally__wire_alert_t *out)
{
    void *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len)
        memcpy(copy, buf, len);
    int rc = tally__decode_alert(copy, len, out);
    /* strings must point into the message, never past it */
    if (rc == 0) {
        cr_assert((const char *)out->ns.p >= (const char *)copy &&
                  out->ns.p + out->ns.len <= (const char *)copy + len);
        cr_assert((const char *)out->key.p >= (const char *)copy &&
                  out->key.p + out->key.len <= (const char *)copy + len);
    }
    free(copy);
    return rc;
}

Test(alert_wire, writer_writes_the_documented_golden_frame)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_alert(&sb, "demo", 4, "http_requests", 100, 81, TALLY_ALERT_WARNING,
                                     GOLDEN_TS),
                 0);
    cr_assert_eq(sb.size, sizeof golden);
    cr_assert(memcmp(sb.data, golden, sizeof golden) == 0, "bytes differ from PROTOCOL.md");
    msgpack_sbuffer_destroy(&sb);
    tally__wire_alert_t a;
    cr_assert_eq(decode_copy(golden, sizeof golden, &a), 0);
    cr_assert_eq(tally__decode_alert(golden, sizeof golden, &a), 0); /* strings into golden */
    cr_assert(a.key.len == 13 && memcmp(a.key.p, "http_requests", 13) == 0);
    cr_assert_eq(a.limit, 100.0);
    cr_assert_eq(a.usage, 81.0);
    cr_assert_eq(a.level, TALLY_ALERT_WARNING);
    cr_assert_eq(a.ts_ms, GOLDEN_TS);
}

Test(alert_wire, every_truncation_and_every_trailing_byte_is_refused)
{
    tally__wire_alert_t a;
    for (size_t cut = 0; cut < sizeof golden; cut++) {
        cr_assert_eq(decode_copy(golden, cut, &a), TALLY_EPROTO, "cut at %zu", cut);
        cr_assert_eq(a.ns.len + a.key.len, 0, "cut at %zu: a refused frame leaves nothing", cut);
    }
    uint8_t longer[sizeof golden + 1];
    memcpy(longer, golden, sizeof golden);
    for (int b = 0; b < 256; b += 51) {
        longer[sizeof golden] = (uint8_t)b;
        cr_assert_eq(decode_copy(longer, sizeof longer, &a), TALLY_EPROTO, "trailing %02x", b);
    }
}

Test(alert_wire, writer_refuses_what_the_reader_would)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    static const char ns65[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    static const char key65[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    cr_assert_eq(tally__encode_alert(&sb, ns65, 65, "k", 1, 1, 1, 1), TALLY_EINVAL);
    cr_assert_eq(tally__encode_alert(&sb, "n", 1, key65, 1, 1, 1, 1), TALLY_EINVAL);
    cr_assert_eq(sb.size, 0, "nothing written for a refused alert");
    cr_assert_eq(tally__encode_alert(&sb, ns65, 64, key65 + 1, 1, 1, 1, 1), 0, "64 bytes fit");
    tally__wire_alert_t a;
    cr_assert_eq(decode_copy(sb.data, sb.size, &a), 0);
    cr_assert_eq(a.ns.len, 64);
    cr_assert_eq(a.key.len, 64);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the table ----------------------------------------------------------
 * Map entries as raw msgpack, so a row spells out exactly the bytes it
 * sends. Mind that a hex escape swallows every hex digit after it. */
/* one row a line reads as a table: */
/* clang-format off */
#define K "\xa1" "k\x03"
#define VV "\xa1" "v\x01"
#define N "\xa1" "n\xa4" "demo"
#define M "\xa1" "m\xa4" "vcpu"
#define Q "\xa1" "q\xcb\x40\x59\x00\x00\x00\x00\x00\x00" /* 100.0 */
#define U "\xa1" "u\xcb\x40\x54\x40\x00\x00\x00\x00\x00" /* 81.0 */
#define W "\xa1" "w\xa7" "warning"
#define T "\xa1" "t\x05"
#define B(lit) (lit), (sizeof(lit) - 1)

enum { OK = 0, BAD = TALLY_EPROTO };

typedef struct row {
    const char *what;
    const char *topic; /* NULL: "demo" */
    const char *body;  /* after topic and NUL */
    size_t body_len;
    int want;
    double limit; /* checked when want == OK */
    int64_t ts_ms;
} row_t;

static const row_t rows[] = {
    /* accepted: any order, any number encoding the protocol allows */
    {"all eight in the documented order", NULL, B("\x88" K VV N M Q U W T), OK, 100, 5},
    {"reverse order", NULL, B("\x88" T W U Q M N VV K), OK, 100, 5},
    {"map 16 header", NULL, B("\xde\x00\x08" K VV N M Q U W T), OK, 100, 5},
    {"map 32 header", NULL, B("\xdf\x00\x00\x00\x08" K VV N M Q U W T), OK, 100, 5},
    {"str 8 namespace", NULL, B("\x88" K VV "\xa1" "n\xd9\x04" "demo" M Q U W T), OK, 100, 5},
    {"str 16 key", NULL, B("\x88" K VV N "\xa1" "m\xda\x00\x04" "vcpu" Q U W T), OK, 100, 5},
    {"str 32 level", NULL, B("\x88" K VV N M Q U "\xa1" "w\xdb\x00\x00\x00\x07" "warning" T), OK,
     100, 5},
    {"integer limit (fixint)", NULL, B("\x88" K VV N M "\xa1" "q\x64" U W T), OK, 100, 5},
    {"negative limit (int 8)", NULL, B("\x88" K VV N M "\xa1" "q\xd0\x9c" U W T), OK, -100, 5},
    {"limit as uint 16", NULL, B("\x88" K VV N M "\xa1" "q\xcd\x01\x00" U W T), OK, 256, 5},
    {"limit as float 32", NULL, B("\x88" K VV N M "\xa1" "q\xca\x42\xc8\x00\x00" U W T), OK, 100,
     5},
    {"limit above INT64_MAX (uint 64)", NULL,
     B("\x88" K VV N M "\xa1" "q\xcf\xff\xff\xff\xff\xff\xff\xff\xff" U W T), OK,
     18446744073709551615.0, 5},
    {"limit as int 64", NULL,
     B("\x88" K VV N M "\xa1" "q\xd3\xff\xff\xff\xff\xff\xff\xff\xff" U W T), OK, -1, 5},
    {"time as negative fixint", NULL, B("\x88" K VV N M Q U W "\xa1" "t\xff"), OK, 100, -1},
    {"time as int 16", NULL, B("\x88" K VV N M Q U W "\xa1" "t\xd1\x80\x00"), OK, 100, -32768},
    {"time as uint 32", NULL, B("\x88" K VV N M Q U W "\xa1" "t\xce\xff\xff\xff\xff"), OK, 100,
     4294967295LL},
    {"time at INT64_MAX as uint 64", NULL,
     B("\x88" K VV N M Q U W "\xa1" "t\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"), OK, 100, INT64_MAX},
    {"time at INT64_MIN", NULL,
     B("\x88" K VV N M Q U W "\xa1" "t\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), OK, 100, INT64_MIN},
    {"kind as uint 8", NULL, B("\x88" "\xa1" "k\xcc\x03" VV N M Q U W T), OK, 100, 5},
    {"version 2 (the highest known)", NULL, B("\x88" K "\xa1" "v\x02" N M Q U W T), OK, 100, 5},
    {"64-byte namespace and key", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     B("\x88" K VV "\xa1" "n\xd9\x40" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "\xa1" "m\xd9\x40" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" Q U W T), OK, 100, 5},

    /* truncated or lying about lengths */
    {"no map", NULL, B(""), BAD},
    {"map of 8 with seven entries", NULL, B("\x88" K VV N M Q U W), BAD},
    {"map 32 claiming 4 billion entries", NULL,
     B("\xdf\xff\xff\xff\xff" K VV N M Q U W T), BAD},
    {"map 16 header cut", NULL, B("\xde\x00"), BAD},
    {"str 32 namespace claiming 4 GiB", NULL,
     B("\x88" K VV "\xa1" "n\xdb\xff\xff\xff\xff" "demo" M Q U W T), BAD},
    {"str 8 length past the end", NULL, B("\x88" K VV N M Q U W "\xa1" "t\x05\xa1" "w\xd9\x10"),
     BAD},
    {"float 64 cut", NULL, B("\x88" K VV N M Q U W T "\xa1" "q\xcb\x40\x59"), BAD},
    {"uint 64 time cut", NULL, B("\x88" K VV N M Q U W "\xa1" "t\xcf\x00\x00"), BAD},
    {"key string cut", NULL, B("\x88" K VV N M Q U W "\xa1"), BAD},

    /* wrong types */
    {"an array, not a map", NULL, B("\x98" K VV N M Q U W T), BAD},
    {"kind as a string", NULL, B("\x88" "\xa1" "k\xa1" "3" VV N M Q U W T), BAD},
    {"kind as a float", NULL, B("\x88" "\xa1" "k\xcb\x40\x08\x00\x00\x00\x00\x00\x00" VV N M Q U W T),
     BAD},
    {"kind negative", NULL, B("\x88" "\xa1" "k\xfd" VV N M Q U W T), BAD},
    {"version nil", NULL, B("\x88" K "\xa1" "v\xc0" N M Q U W T), BAD},
    {"namespace as an integer", NULL, B("\x88" K VV "\xa1" "n\x05" M Q U W T), BAD},
    {"namespace as bin", NULL, B("\x88" K VV "\xa1" "n\xc4\x04" "demo" M Q U W T), BAD},
    {"key as an array", NULL, B("\x88" K VV N "\xa1" "m\x91\xa1" "k" Q U W T), BAD},
    {"limit as a string", NULL, B("\x88" K VV N M "\xa1" "q\xa3" "100" U W T), BAD},
    {"limit nil", NULL, B("\x88" K VV N M "\xa1" "q\xc0" U W T), BAD},
    {"limit NaN", NULL, B("\x88" K VV N M "\xa1" "q\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00" U W T),
     BAD},
    {"limit +inf as float 32", NULL, B("\x88" K VV N M "\xa1" "q\xca\x7f\x80\x00\x00" U W T), BAD},

    {"usage boolean", NULL, B("\x88" K VV N M Q "\xa1" "u\xc3" W T), BAD},
    {"usage -inf", NULL, B("\x88" K VV N M Q "\xa1" "u\xcb\xff\xf0\x00\x00\x00\x00\x00\x00" W T),
     BAD},
    {"level as an integer", NULL, B("\x88" K VV N M Q U "\xa1" "w\x01" T), BAD},
    {"time as a float", NULL, B("\x88" K VV N M Q U W "\xa1" "t\xcb\x40\x14\x00\x00\x00\x00\x00\x00"),
     BAD},
    {"time above INT64_MAX", NULL,
     B("\x88" K VV N M Q U W "\xa1" "t\xcf\x80\x00\x00\x00\x00\x00\x00\x00"), BAD},
    {"time as a string", NULL, B("\x88" K VV N M Q U W "\xa1" "t\xa1" "5"), BAD},
    {"time as ext", NULL, B("\x88" K VV N M Q U W "\xa1" "t\xd4\x00\x05"), BAD},
    {"the reserved byte 0xc1 as limit", NULL, B("\x88" K VV N M "\xa1" "q\xc1" U W T), BAD},
    {"an integer key", NULL, B("\x88" "\x01\x03" VV N M Q U W T), BAD},

    /* oversize strings */
    {"65-byte namespace (topic too)", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     B("\x88" K VV "\xa1" "n\xd9\x41" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" M Q U W T), BAD},
    {"65-byte key", NULL, B("\x88" K VV N "\xa1" "m\xd9\x41" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" Q U W T), BAD},
    {"level longer than any level", NULL,
     B("\x88" K VV N M Q U "\xa1" "w\xb1" "warningwarningwar" T), BAD},
    {"two-letter field name", NULL, B("\x88" "\xa2" "kk\x03" VV N M Q U W T), BAD},

    /* the fields themselves */
    {"kind 2 (an ack)", NULL, B("\x88" "\xa1" "k\x02" VV N M Q U W T), BAD},
    {"version 0", NULL, B("\x88" K "\xa1" "v\x00" N M Q U W T), BAD},
    {"a version from the future", NULL, B("\x88" K "\xa1" "v\x03" N M Q U W T), BAD},
    {"empty namespace and topic", "", B("\x88" K VV "\xa1" "n\xa0" M Q U W T), BAD},
    {"empty key", NULL, B("\x88" K VV N "\xa1" "m\xa0" Q U W T), BAD},
    {"unknown level", NULL, B("\x88" K VV N M Q U "\xa1" "w\xa5" "panic" T), BAD},
    {"namespace other than the topic", "demo-2", B("\x88" K VV N M Q U W T), BAD},
    {"topic a prefix of the namespace", "dem", B("\x88" K VV N M Q U W T), BAD},
    {"level missing", NULL, B("\x87" K VV N M Q U T), BAD},
    {"kind missing", NULL, B("\x87" VV N M Q U W T), BAD},
    {"a ninth, unknown field", NULL, B("\x89" K VV N M Q U W T "\xa1" "x\x01"), BAD},
    {"kind twice", NULL, B("\x89" K VV N M Q U W T K), BAD},
    {"time twice in place of the level", NULL, B("\x88" K VV N M Q U T T), BAD},
};

/* clang-format on */

static void
run_row(const row_t *r)
{
    const char *topic = r->topic ? r->topic : "demo";
    size_t tl = strlen(topic), n = tl + 1 + r->body_len;
    char *msg = malloc(n);
    cr_assert_not_null(msg);
    memcpy(msg, topic, tl + 1);
    memcpy(msg + tl + 1, r->body, r->body_len);
    tally__wire_alert_t a; /* msg is exactly sized: decode it in place, free it after the checks */
    int rc = tally__decode_alert(msg, n, &a);
    cr_expect_eq(rc, r->want, "%s: rc %d, want %d", r->what, rc, r->want);
    if (rc == 0 && r->want == 0) {
        cr_expect(a.ns.len == tl && memcmp(a.ns.p, topic, tl) == 0, "%s: namespace", r->what);
        cr_expect_eq(a.limit, r->limit, "%s: limit %g, want %g", r->what, a.limit, r->limit);
        cr_expect_eq(a.ts_ms, r->ts_ms, "%s: time %lld", r->what, (long long)a.ts_ms);
        cr_expect_eq(a.level, TALLY_ALERT_WARNING, "%s: level", r->what);
    }
    if (rc != 0)
        cr_expect_eq(a.ns.len + a.key.len, 0, "%s: a refused frame leaves nothing", r->what);
    free(msg);
}

Test(alert_wire, table_of_frames)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        run_row(&rows[i]);
}
