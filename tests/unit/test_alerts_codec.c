/* test_alerts_codec.c — Criterion tests of quota alerts: alert_v1 round trip and topic framing,
 * strict decoding, the level rule, and one alert per crossing with re-arm. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "alert.h"
#include "tally/tally.h"
#include "tally_proto.h"

#define TS 1767225600123LL

/* ---- codec ------------------------------------------------------------- */

Test(alerts_codec, round_trip_keeps_every_field)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(
        tally__encode_alert(&sb, "demo", 4, "http_requests", 100, 81.5, TALLY_ALERT_WARNING, TS),
        0);
    tally__wire_alert_t a;
    cr_assert_eq(tally__decode_alert(sb.data, sb.size, &a), 0);
    cr_assert_eq(a.ns.len, 4);
    cr_assert_eq(memcmp(a.ns.p, "demo", 4), 0);
    cr_assert_eq(a.key.len, strlen("http_requests"));
    cr_assert_eq(memcmp(a.key.p, "http_requests", a.key.len), 0);
    cr_assert_eq(a.limit, 100.0);
    cr_assert_eq(a.usage, 81.5);
    cr_assert_eq(a.level, TALLY_ALERT_WARNING);
    cr_assert_eq(a.ts_ms, TS);
    msgpack_sbuffer_destroy(&sb);
}

Test(alerts_codec, frame_is_namespace_nul_then_map_starting_with_kind_and_version)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_alert(&sb, "acme", 4, "vcpu", 8, 9, TALLY_ALERT_EXCEEDED, TS), 0);
    /* topic "acme" + NUL, so a SUB subscribed to "acme\0" gets it and one
     * subscribed to "acm" would too but "acme-2\0" never matches */
    cr_assert_eq(memcmp(sb.data, "acme\0", 5), 0);
    const uint8_t *m = (const uint8_t *)sb.data + 5;
    cr_assert_eq(m[0], 0x88, "fixmap of 8 entries, got %02x", m[0]);
    cr_assert_eq(memcmp(m + 1, "\xa1k\x03\xa1v\x01", 6), 0, "k = 3 (alert_v1), v = 1 first");
    /* SUB filters by prefix: "acme\0" is a prefix of the frame, "acme-2\0" is not */
    cr_assert_neq(memcmp(sb.data, "acme-2\0", 7), 0);
    msgpack_sbuffer_destroy(&sb);
}

Test(alerts_codec, decode_levels_both_ways)
{
    for (int lvl = TALLY_ALERT_WARNING; lvl <= TALLY_ALERT_EXCEEDED; lvl++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        cr_assert_eq(tally__encode_alert(&sb, "n", 1, "k", 1, 2, lvl, 1), 0);
        tally__wire_alert_t a;
        cr_assert_eq(tally__decode_alert(sb.data, sb.size, &a), 0);
        cr_assert_eq(a.level, lvl);
        msgpack_sbuffer_destroy(&sb);
    }
    cr_assert_str_eq(tally__alert_level_name(TALLY_ALERT_OK), "ok");
    cr_assert_str_eq(tally__alert_level_name(TALLY_ALERT_WARNING), "warning");
    cr_assert_str_eq(tally__alert_level_name(TALLY_ALERT_EXCEEDED), "exceeded");
    cr_assert_str_eq(tally__alert_level_name(7), "?");
    cr_assert_eq(tally__alert_level_parse("exceeded", 8), TALLY_ALERT_EXCEEDED);
    cr_assert_eq(tally__alert_level_parse("exceed", 6), -1);
}

Test(alerts_codec, encode_refuses_bad_input)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_alert(&sb, "", 0, "k", 1, 1, 1, 1), TALLY_EINVAL);
    cr_assert_eq(tally__encode_alert(&sb, "a\0b", 3, "k", 1, 1, 1, 1), TALLY_EINVAL);
    cr_assert_eq(tally__encode_alert(&sb, "a", 1, "", 1, 1, 1, 1), TALLY_EINVAL);
    cr_assert_eq(tally__encode_alert(&sb, "a", 1, "k", 1, 1, 3, 1), TALLY_EINVAL);
    cr_assert_eq(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Build "topic\0" + map of the given (key, packer step) parts by hand. */
static size_t
mk(char *out, size_t cap, const char *topic, void (*fill)(msgpack_packer *))
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, topic, strlen(topic) + 1);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    fill(&pk);
    size_t n = sb.size < cap ? sb.size : cap;
    memcpy(out, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static void
kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, 1);
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void
kv_u(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str_with_body(pk, k, 1);
    msgpack_pack_uint64(pk, v);
}

static void
fill_int_numbers(msgpack_packer *pk)
{
    /* integers for q/u are fine; keys in another order are fine */
    msgpack_pack_map(pk, 8);
    kv_u(pk, "k", 3);
    kv_u(pk, "v", 1);
    kv_u(pk, "t", 5);
    kv_u(pk, "q", 100);
    kv_u(pk, "u", 101);
    kv_str(pk, "w", "exceeded");
    kv_str(pk, "m", "vcpu");
    kv_str(pk, "n", "demo");
}

static void
fill_wrong_kind(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 8);
    kv_u(pk, "k", 2);
    kv_u(pk, "v", 1);
    kv_str(pk, "n", "demo");
    kv_str(pk, "m", "vcpu");
    kv_u(pk, "q", 1);
    kv_u(pk, "u", 1);
    kv_str(pk, "w", "warning");
    kv_u(pk, "t", 5);
}

static void
fill_missing_level(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 7);
    kv_u(pk, "k", 3);
    kv_u(pk, "v", 1);
    kv_str(pk, "n", "demo");
    kv_str(pk, "m", "vcpu");
    kv_u(pk, "q", 1);
    kv_u(pk, "u", 1);
    kv_u(pk, "t", 5);
}

static void
fill_bad_level(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 8);
    kv_u(pk, "k", 3);
    kv_u(pk, "v", 1);
    kv_str(pk, "n", "demo");
    kv_str(pk, "m", "vcpu");
    kv_u(pk, "q", 1);
    kv_u(pk, "u", 1);
    kv_str(pk, "w", "panic");
    kv_u(pk, "t", 5);
}

static void
fill_future_version(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 8);
    kv_u(pk, "k", 3);
    kv_u(pk, "v", TALLY_PROTO_VERSION + 1);
    kv_str(pk, "n", "demo");
    kv_str(pk, "m", "vcpu");
    kv_u(pk, "q", 1);
    kv_u(pk, "u", 1);
    kv_str(pk, "w", "warning");
    kv_u(pk, "t", 5);
}

Test(alerts_codec, decoder_is_strict)
{
    char buf[256];
    tally__wire_alert_t a;
    size_t n = mk(buf, sizeof buf, "demo", fill_int_numbers);
    cr_assert_eq(tally__decode_alert(buf, n, &a), 0);
    cr_assert_eq(a.limit, 100.0);
    cr_assert_eq(a.usage, 101.0);
    cr_assert_eq(a.level, TALLY_ALERT_EXCEEDED);
    /* topic must equal "n" */
    n = mk(buf, sizeof buf, "other", fill_int_numbers);
    cr_assert_eq(tally__decode_alert(buf, n, &a), TALLY_EPROTO);
    n = mk(buf, sizeof buf, "demo", fill_wrong_kind);
    cr_assert_eq(tally__decode_alert(buf, n, &a), TALLY_EPROTO);
    n = mk(buf, sizeof buf, "demo", fill_missing_level);
    cr_assert_eq(tally__decode_alert(buf, n, &a), TALLY_EPROTO);
    n = mk(buf, sizeof buf, "demo", fill_bad_level);
    cr_assert_eq(tally__decode_alert(buf, n, &a), TALLY_EPROTO);
    n = mk(buf, sizeof buf, "demo", fill_future_version);
    cr_assert_eq(tally__decode_alert(buf, n, &a), TALLY_EPROTO);
    /* trailing byte, truncation, no NUL */
    n = mk(buf, sizeof buf, "demo", fill_int_numbers);
    buf[n] = 0;
    cr_assert_eq(tally__decode_alert(buf, n + 1, &a), TALLY_EPROTO);
    for (size_t cut = 0; cut < n; cut++)
        cr_assert_eq(tally__decode_alert(buf, cut, &a), TALLY_EPROTO, "cut at %zu", cut);
    cr_assert_eq(tally__decode_alert("demo", 4, &a), TALLY_EPROTO);
}

/* ---- the level rule ---------------------------------------------------- */

Test(alerts_level, thresholds_at_warn_percent_and_above_the_limit)
{
    cr_assert_eq(tally__alert_level(79, 100, 80), TALLY_ALERT_OK);
    cr_assert_eq(tally__alert_level(80, 100, 80), TALLY_ALERT_WARNING);
    cr_assert_eq(tally__alert_level(81, 100, 80), TALLY_ALERT_WARNING);
    cr_assert_eq(tally__alert_level(100, 100, 80), TALLY_ALERT_WARNING, "at the limit, not over");
    cr_assert_eq(tally__alert_level(101, 100, 80), TALLY_ALERT_EXCEEDED);
    cr_assert_eq(tally__alert_level(99, 100, 0), TALLY_ALERT_OK, "warn_percent 0: no warnings");
    cr_assert_eq(tally__alert_level(101, 100, 0), TALLY_ALERT_EXCEEDED);
    cr_assert_eq(tally__alert_level(1e12, -1, 80), TALLY_ALERT_OK, "negative = unlimited");
    cr_assert_eq(tally__alert_level(0, 0, 80), TALLY_ALERT_OK);
    cr_assert_eq(tally__alert_level(0.5, 0, 80), TALLY_ALERT_EXCEEDED);
    cr_assert_eq(tally__alert_level(NAN, 10, 80), TALLY_ALERT_OK);
}

/* ---- one alert per crossing, re-arm ------------------------------------- */

Test(alerts_state, one_alert_per_crossing_and_going_down_rearms)
{
    tally__alert_state_t *st;
    cr_assert_eq(tally__alert_state_create(16, &st), 0);
    uint64_t pass = 0;
    int prev;
    /* 79 %: nothing */
    cr_assert_eq(tally__alert_state_update(st, "demo", "req", TALLY_ALERT_OK, 0.79, ++pass, &prev),
                 0);
    /* 81 %: warning, once */
    cr_assert_eq(
        tally__alert_state_update(st, "demo", "req", TALLY_ALERT_WARNING, 0.81, ++pass, &prev), 1);
    cr_assert_eq(prev, TALLY_ALERT_OK);
    cr_assert_eq(
        tally__alert_state_update(st, "demo", "req", TALLY_ALERT_WARNING, 0.85, ++pass, &prev), 0);
    /* 101 %: exceeded, once */
    cr_assert_eq(
        tally__alert_state_update(st, "demo", "req", TALLY_ALERT_EXCEEDED, 1.01, ++pass, &prev), 1);
    cr_assert_eq(prev, TALLY_ALERT_WARNING);
    cr_assert_eq(
        tally__alert_state_update(st, "demo", "req", TALLY_ALERT_EXCEEDED, 1.5, ++pass, &prev), 0);
    /* the limit is raised: back to warning, silently; exceeded re-armed */
    cr_assert_eq(
        tally__alert_state_update(st, "demo", "req", TALLY_ALERT_WARNING, 0.9, ++pass, &prev), 0);
    cr_assert_eq(
        tally__alert_state_update(st, "demo", "req", TALLY_ALERT_EXCEEDED, 1.1, ++pass, &prev), 1);
    /* all the way down (new month), then straight over: one alert, from ok */
    cr_assert_eq(tally__alert_state_update(st, "demo", "req", TALLY_ALERT_OK, 0, ++pass, &prev), 0);
    cr_assert_eq(
        tally__alert_state_update(st, "demo", "req", TALLY_ALERT_EXCEEDED, 2, ++pass, &prev), 1);
    cr_assert_eq(prev, TALLY_ALERT_OK);
    /* a new key that starts above the limit alerts at once */
    cr_assert_eq(
        tally__alert_state_update(st, "demo", "vcpu", TALLY_ALERT_EXCEEDED, 3, pass, &prev), 1);
    cr_assert_eq(tally__alert_state_count(st), 2);
    tally__alert_state_destroy(st);
}

Test(alerts_state, keys_are_independent_per_namespace)
{
    tally__alert_state_t *st;
    cr_assert_eq(tally__alert_state_create(16, &st), 0);
    cr_assert_eq(tally__alert_state_update(st, "a", "k", TALLY_ALERT_WARNING, .8, 1, NULL), 1);
    cr_assert_eq(tally__alert_state_update(st, "b", "k", TALLY_ALERT_WARNING, .8, 1, NULL), 1);
    cr_assert_eq(tally__alert_state_update(st, "a", "j", TALLY_ALERT_WARNING, .8, 1, NULL), 1);
    cr_assert_eq(tally__alert_state_update(st, "a", "k", TALLY_ALERT_WARNING, .8, 2, NULL), 0);
    tally__alert_state_destroy(st);
}

static void
count_cb(void *ctx, const char *ns, const char *key, int level, double ratio)
{
    (void)ns;
    (void)key;
    (void)level;
    (void)ratio;
    (*(int *)ctx)++;
}

Test(alerts_state, bounded_and_swept)
{
    tally__alert_state_t *st;
    cr_assert_eq(tally__alert_state_create(4, &st), 0);
    char key[16];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(tally__alert_state_update(st, "ns", key, TALLY_ALERT_OK, 0, 1, NULL), 0);
    }
    cr_assert_eq(tally__alert_state_update(st, "ns", "k9", TALLY_ALERT_OK, 0, 1, NULL),
                 TALLY_EFULL);
    /* pass 2 sees only k0 and k1; sweeping forgets k2, k3 */
    cr_assert_eq(tally__alert_state_update(st, "ns", "k0", TALLY_ALERT_EXCEEDED, 2, 2, NULL), 1);
    cr_assert_eq(tally__alert_state_update(st, "ns", "k1", TALLY_ALERT_OK, 0, 2, NULL), 0);
    tally__alert_state_sweep(st, 2);
    cr_assert_eq(tally__alert_state_count(st), 2);
    int n = 0;
    tally__alert_state_each(st, count_cb, &n);
    cr_assert_eq(n, 2);
    /* room again; k0 kept its level (no second alert) */
    cr_assert_eq(tally__alert_state_update(st, "ns", "k9", TALLY_ALERT_OK, 0, 3, NULL), 0);
    cr_assert_eq(tally__alert_state_update(st, "ns", "k0", TALLY_ALERT_EXCEEDED, 2, 3, NULL), 0);
    /* keep: an unreadable namespace survives the sweep unchanged */
    tally__alert_state_keep(st, "ns", 4);
    tally__alert_state_sweep(st, 4);
    cr_assert_eq(tally__alert_state_count(st), 3);
    cr_assert_eq(tally__alert_state_update(st, "ns", "k0", TALLY_ALERT_EXCEEDED, 2, 5, NULL), 0);
    /* bad input */
    cr_assert_eq(tally__alert_state_update(st, "", "k", 0, 0, 5, NULL), TALLY_EINVAL);
    cr_assert_eq(tally__alert_state_create(0, &(tally__alert_state_t *){NULL}), TALLY_EINVAL);
    tally__alert_state_destroy(st);
}
