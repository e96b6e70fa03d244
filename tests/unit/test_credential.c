/* test_credential.c — Criterion tests of emitter credentials, the keyed-BLAKE2b MACs of protocol
 * v2 batches and acks, and the emitter scope of the tokens file. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>
#include <sodium.h>

#include "auth.h"
#include "codec.h"
#include "credential.h"
#include "dedup.h"
#include "tally/tally.h"
#include "tally_proto.h"

#define R(name) TALLY_PROTO_REJECT_##name
#define TS 1700000000000LL /* 2023-11-14T22:13:20Z in unix milliseconds */

/* The development credentials of config/tokens (documented in its comments)
 * and the mac: keys its emitter lines hold for them. */
#define DEV_NAME "dev-emitter"
#define DEV_SECRET "Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"
#define DEV_CRED DEV_NAME ":" DEV_SECRET
#define DEV_KEY_HEX "23d7df62c1aa87166c290b62a242f952e13279090ae369ddd7b0bf766bfcd862"
#define DEMO_CRED "demo-emitter:O7tNEPJEh9nQkqAoh_Vfk1IdSJSnySNKVB9RDoTiTOw"
#define DEMO_KEY_HEX "af43eab2fe2890a615797845e4067ea0cac4220fb1856b36693483aa8a83a2d0"

static void
hex_key(const char *hex, uint8_t key[TALLY__CRED_KEY_LEN])
{
    size_t n = 0;
    cr_assert_eq(sodium_hex2bin(key, TALLY__CRED_KEY_LEN, hex, strlen(hex), NULL, &n, NULL), 0);
    cr_assert_eq(n, TALLY__CRED_KEY_LEN);
}

static void
parse_ok(const char *s, tally__cred_t *c)
{
    int rc = tally__cred_parse(s, strlen(s), c);
    cr_assert_eq(rc, 0, "parse '%s' -> %d, want 0", s, rc);
}

/* A malformed string: TALLY_EINVAL, and *out wiped (no half-parsed name or key). */
static void
parse_bad(const char *s, const char *why)
{
    tally__cred_t c;
    memset(&c, 0xa5, sizeof c);
    int rc = tally__cred_parse(s, strlen(s), &c);
    cr_expect_eq(rc, TALLY_EINVAL, "%s: parse '%s' -> %d, want TALLY_EINVAL", why, s, rc);
    static const tally__cred_t zero;
    cr_expect(memcmp(&c, &zero, sizeof c) == 0, "%s: *out not wiped on failure", why);
}

/* ---- tally__cred_parse ------------------------------------------------- */

Test(credential, parse_gives_the_name_and_the_key_of_the_tokens_file)
{
    tally__cred_t c;
    uint8_t want[TALLY__CRED_KEY_LEN];
    parse_ok(DEV_CRED, &c);
    cr_expect_str_eq(c.name, DEV_NAME);
    cr_expect_eq(c.name_len, strlen(DEV_NAME));
    hex_key(DEV_KEY_HEX, want);
    cr_expect(memcmp(c.key, want, sizeof want) == 0,
              "the key derived from dev-emitter's secret is not the mac: of config/tokens");
    parse_ok(DEMO_CRED, &c);
    cr_expect_str_eq(c.name, "demo-emitter");
    hex_key(DEMO_KEY_HEX, want);
    cr_expect(memcmp(c.key, want, sizeof want) == 0,
              "the key derived from demo-emitter's secret is not the mac: of config/tokens");
}

Test(credential, parse_tolerates_surrounding_blanks_and_a_trailing_newline)
{
    static const char *const ok[] = {
        DEV_CRED "\n", DEV_CRED "\r\n", "  " DEV_CRED, "\t" DEV_CRED " \n", " " DEV_CRED "\t\r\n",
    };
    tally__cred_t ref, c;
    parse_ok(DEV_CRED, &ref);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        parse_ok(ok[i], &c);
        cr_expect_str_eq(c.name, DEV_NAME, "case %zu", i);
        cr_expect(memcmp(c.key, ref.key, sizeof c.key) == 0, "case %zu: another key", i);
    }
}

Test(credential, parse_refuses_bad_names)
{
    char long_name[TALLY__CRED_MAX_NAME + 2 + TALLY__CRED_SECRET_B64 + 1];
    memset(long_name, 'n', TALLY__CRED_MAX_NAME + 1);
    snprintf(long_name + TALLY__CRED_MAX_NAME + 1, sizeof long_name - TALLY__CRED_MAX_NAME - 1,
             ":%s", DEV_SECRET);
    parse_bad(long_name, "65-byte name");
    parse_bad(":" DEV_SECRET, "empty name");
    parse_bad("dev emitter:" DEV_SECRET, "blank in name");
    parse_bad("dev/emitter:" DEV_SECRET, "slash in name");
    parse_bad("dev\x1f" "emitter:" DEV_SECRET, "0x1f in name (the producer-key separator)");
    parse_bad("d\xc3\xa9v:" DEV_SECRET, "non-ASCII name");
    parse_bad("dev:emitter:" DEV_SECRET, "second colon");
    /* a 64-byte name is still a name */
    char max_name[TALLY__CRED_MAX_NAME + 1 + TALLY__CRED_SECRET_B64 + 1];
    memset(max_name, 'n', TALLY__CRED_MAX_NAME);
    snprintf(max_name + TALLY__CRED_MAX_NAME, sizeof max_name - TALLY__CRED_MAX_NAME, ":%s",
             DEV_SECRET);
    tally__cred_t c;
    parse_ok(max_name, &c);
    cr_expect_eq(c.name_len, TALLY__CRED_MAX_NAME);
}

Test(credential, parse_refuses_a_missing_colon_and_bad_secrets)
{
    parse_bad(DEV_NAME DEV_SECRET, "no colon");
    parse_bad(DEV_SECRET, "secret alone");
    parse_bad("", "empty");
    parse_bad("   \n", "blanks only");
    parse_bad(DEV_NAME ":", "empty secret");
    parse_bad(DEV_NAME ":Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCy", "42 characters");
    parse_bad(DEV_NAME ":" DEV_SECRET "o", "44 characters");
    parse_bad(DEV_NAME ":" DEV_SECRET "=", "padded");
    parse_bad(DEV_NAME ":Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCy=", "padded to 43");
    parse_bad(DEV_NAME ":Vo86vbdGmaM/u+JvU-WrRpSYWpG_T6UM3vGSL5uyCyo", "standard, not URL-safe");
    parse_bad(DEV_NAME ":Vo86vbdGmaM!u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo", "not base64");
    parse_bad(DEV_NAME ":Vo86vbdGmaM u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo", "blank inside");
    parse_bad(DEV_NAME ": " DEV_SECRET, "blank after the colon");
    /* the last character carries 2 bits that must be zero: 'p' (41) sets
     * one, so two strings would name one secret */
    parse_bad(DEV_NAME ":Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyp", "non-canonical last char");
    /* len is honoured: a prefix of a good string is not good */
    tally__cred_t c;
    cr_expect_eq(tally__cred_parse(DEV_CRED, strlen(DEV_CRED) - 1, &c), TALLY_EINVAL);
    cr_expect_eq(tally__cred_parse(NULL, 0, &c), TALLY_EINVAL);
    /* bytes after a NUL that len covers are not ignored */
    static const char nul[] = DEV_CRED "\0x";
    cr_expect_eq(tally__cred_parse(nul, sizeof nul - 1, &c), TALLY_EINVAL);
}

/* ---- tally__cred_generate / derive --------------------------------------- */

Test(credential, generate_round_trips_through_parse_to_the_same_key)
{
    char str[TALLY__CRED_MAX_NAME + 1 + TALLY__CRED_SECRET_B64 + 1];
    uint8_t key[TALLY__CRED_KEY_LEN];
    tally__cred_t c;
    cr_assert_eq(tally__cred_generate("gen.emitter_1", str, sizeof str, key), 0);
    cr_expect_eq(strlen(str), strlen("gen.emitter_1") + 1 + TALLY__CRED_SECRET_B64);
    cr_expect_eq(strncmp(str, "gen.emitter_1:", 14), 0, "got '%s'", str);
    parse_ok(str, &c);
    cr_expect_str_eq(c.name, "gen.emitter_1");
    cr_expect(memcmp(c.key, key, sizeof key) == 0, "parse(generate()) gives another key");
    /* the key is not the secret itself: the tokens file must not hold the secret */
    uint8_t secret[TALLY__CRED_SECRET_LEN];
    size_t n = 0;
    cr_assert_eq(sodium_base642bin(secret, sizeof secret, str + 14, TALLY__CRED_SECRET_B64, NULL,
                                   &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0);
    cr_assert_eq(n, sizeof secret);
    cr_expect(memcmp(secret, key, sizeof key) != 0, "the MAC key is the raw secret");
    uint8_t again[TALLY__CRED_KEY_LEN];
    tally__cred_derive(secret, again);
    cr_expect(memcmp(again, key, sizeof key) == 0, "derive() is not what generate() used");
}

Test(credential, the_derived_key_differs_per_secret)
{
    char a[128], b[128];
    uint8_t ka[TALLY__CRED_KEY_LEN], kb[TALLY__CRED_KEY_LEN];
    cr_assert_eq(tally__cred_generate("same", a, sizeof a, ka), 0);
    cr_assert_eq(tally__cred_generate("same", b, sizeof b, kb), 0);
    cr_expect_str_neq(a, b, "two generated secrets are equal");
    cr_expect(memcmp(ka, kb, sizeof ka) != 0, "two secrets give one key");
    uint8_t s1[TALLY__CRED_SECRET_LEN] = {0}, s2[TALLY__CRED_SECRET_LEN] = {0};
    s2[31] = 1; /* one bit apart */
    tally__cred_derive(s1, ka);
    tally__cred_derive(s2, kb);
    cr_expect(memcmp(ka, kb, sizeof ka) != 0, "secrets one bit apart give one key");
}

Test(credential, generate_refuses_bad_names_and_small_buffers)
{
    char str[128];
    uint8_t key[TALLY__CRED_KEY_LEN];
    cr_expect_eq(tally__cred_generate("bad name", str, sizeof str, key), TALLY_EINVAL);
    cr_expect_eq(tally__cred_generate("", str, sizeof str, key), TALLY_EINVAL);
    cr_expect_eq(tally__cred_generate(NULL, str, sizeof str, key), TALLY_EINVAL);
    /* "n:" + 43 + NUL = 46 */
    cr_expect_eq(tally__cred_generate("n", str, 45, key), TALLY_EINVAL);
    cr_expect_eq(tally__cred_generate("n", str, 46, key), 0);
    cr_expect_eq(strlen(str), 45);
}

/* ---- tally__mac / tally__mac_check ----------------------------------------- */

Test(credential, mac_check_takes_the_tag_and_nothing_else)
{
    uint8_t key[TALLY__CRED_KEY_LEN], other[TALLY__CRED_KEY_LEN];
    hex_key(DEV_KEY_HEX, key);
    hex_key(DEMO_KEY_HEX, other);
    uint8_t msg[100 + TALLY__MAC_LEN];
    for (size_t i = 0; i < 100; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    tally__mac(key, msg, 100, msg + 100);
    cr_assert_eq(tally__mac_check(key, msg, sizeof msg), 1, "a good tag does not verify");
    cr_expect_eq(tally__mac_check(other, msg, sizeof msg), 0, "verifies under another key");
    /* every single flipped bit, in the message and in the tag */
    int wrong = 0;
    for (size_t i = 0; i < sizeof msg; i++)
        for (int bit = 0; bit < 8; bit++) {
            msg[i] ^= (uint8_t)(1u << bit);
            if (tally__mac_check(key, msg, sizeof msg) != 0) {
                wrong++;
                cr_log_error("bit %d of byte %zu flipped: still verifies", bit, i);
            }
            msg[i] ^= (uint8_t)(1u << bit);
        }
    cr_expect_eq(wrong, 0, "%d flipped bits went unnoticed", wrong);
    cr_expect_eq(tally__mac_check(key, msg, sizeof msg), 1, "restored: verifies again");
    /* a truncated tag, a tag alone, and less than a tag */
    cr_expect_eq(tally__mac_check(key, msg, sizeof msg - 1), 0, "tag cut by one byte");
    cr_expect_eq(tally__mac_check(key, msg, sizeof msg - 16), 0, "tag cut to 16 bytes");
    cr_expect_eq(tally__mac_check(key, msg, 100), 0, "no tag at all");
    cr_expect_eq(tally__mac_check(key, msg + 100, TALLY__MAC_LEN), 0,
                 "a tag alone is not the tag of the empty message");
    cr_expect_eq(tally__mac_check(key, msg, TALLY__MAC_LEN - 1), 0, "len 31");
    cr_expect_eq(tally__mac_check(key, msg, 0), 0, "len 0");
    /* the empty message has a tag too, and exactly 32 bytes carry it */
    uint8_t empty[TALLY__MAC_LEN];
    tally__mac(key, "", 0, empty);
    cr_expect_eq(tally__mac_check(key, empty, sizeof empty), 1, "the tag of the empty message");
}

Test(credential, mac_is_keyed_blake2b_256)
{
    /* a known answer: BLAKE2b-256 keyed with dev-emitter's key over "abc",
     * as any other implementation (python3 hashlib.blake2b) computes it */
    uint8_t key[TALLY__CRED_KEY_LEN], tag[TALLY__MAC_LEN], want[TALLY__MAC_LEN];
    hex_key(DEV_KEY_HEX, key);
    tally__mac(key, "abc", 3, tag);
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof key, sizeof want);
    crypto_generichash_update(&st, (const unsigned char *)"abc", 3);
    crypto_generichash_final(&st, want, sizeof want);
    cr_expect(memcmp(tag, want, sizeof tag) == 0, "tally__mac is not keyed BLAKE2b-256");
}

/* ---- batches v2 --------------------------------------------------------------- */

/* Two events, one with labels, packed as libtally packs them. */
static void
two_events(msgpack_sbuffer *ev)
{
    msgpack_sbuffer_init(ev);
    tally_label_t lab[] = {{"region", "eu-west"}};
    tally_event_t a = {.ns = "demo", .metric = "http_requests", .ivalue = 42};
    tally_event_t b = {.ns = "shop", .metric = "cpu.seconds", .is_float = 1, .fvalue = 1.5,
                       .labels = lab, .nlabels = 1};
    cr_assert_eq(tally__encode_event(ev, &a, TS), 0);
    cr_assert_eq(tally__encode_event(ev, &b, TS + 1), 0);
}

static int
str_is(const tally__str_t *s, const char *want)
{
    return s->len == strlen(want) && memcmp(s->p, want, s->len) == 0;
}

Test(credential, a_v2_batch_peeks_verifies_and_decodes_without_its_tag)
{
    tally__cred_t cred;
    parse_ok(DEV_CRED, &cred);
    msgpack_sbuffer ev, sb;
    two_events(&ev);
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_batch_v2(&sb, &cred, "host-7", 1000, 990, 2, ev.data, ev.size), 0);

    uint32_t version = 0;
    tally__str_t name;
    int reason = -1;
    cr_assert_eq(tally__peek_batch(sb.data, sb.size, &version, &name, &reason), 0, "peek: %s",
                 tally__reject_name(reason));
    cr_expect_eq(version, 2);
    cr_expect(str_is(&name, DEV_NAME), "peek named '%.*s'", (int)name.len, name.p);

    /* the tokens file's key verifies it: the whole message, tag last */
    uint8_t key[TALLY__CRED_KEY_LEN];
    hex_key(DEV_KEY_HEX, key);
    cr_expect_eq(tally__mac_check(key, sb.data, sb.size), 1, "the tag does not verify");

    tally__decoder_t d;
    tally__wire_batch_t b;
    cr_assert_eq(tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS), 0);
    cr_assert_eq(tally__decode_batch(&d, sb.data, sb.size - TALLY__MAC_LEN, &b, &reason), 0,
                 "decode: %s", tally__reject_name(reason));
    cr_expect_eq(b.version, 2);
    cr_expect(str_is(&b.cred, DEV_NAME));
    cr_expect(str_is(&b.producer, "host-7"));
    cr_expect_eq(b.seq, 1000);
    cr_expect_eq(b.base, 990);
    cr_assert_eq(b.nevents, 2);
    cr_expect(str_is(&b.events[0].ns, "demo"));
    cr_expect(str_is(&b.events[0].metric, "http_requests"));
    cr_expect(!b.events[0].is_float && b.events[0].ival == 42);
    cr_expect_eq(b.events[0].ts_ms, TS);
    cr_expect(str_is(&b.events[1].ns, "shop"));
    cr_expect(b.events[1].is_float && b.events[1].fval == 1.5);
    cr_expect_eq(b.events[1].nlabels, 1);
    /* with its tag still on, the map is followed by 32 bytes that are not msgpack of it */
    cr_expect_neq(tally__decode_batch(&d, sb.data, sb.size, &b, &reason), 0);
    cr_expect_eq(reason, R(trailing), "got %s", tally__reject_name(reason));

    /* the same call without a credential builds v1: no "a", no tag */
    msgpack_sbuffer v1;
    msgpack_sbuffer_init(&v1);
    cr_assert_eq(tally__encode_batch_v2(&v1, NULL, "host-7", 1000, 990, 2, ev.data, ev.size), 0);
    cr_expect_eq(v1.size + TALLY__MAC_LEN + 2 + 1 + strlen(DEV_NAME), sb.size,
                 "v2 = v1 + \"a\" + name + tag");
    cr_assert_eq(tally__peek_batch(v1.data, v1.size, &version, &name, &reason), 0);
    cr_expect_eq(version, 1);
    cr_expect_eq(name.len, 0);
    cr_assert_eq(tally__decode_batch(&d, v1.data, v1.size, &b, &reason), 0);
    cr_expect_eq(b.version, 1);
    cr_expect_eq(b.cred.len, 0);

    tally__decoder_fini(&d);
    msgpack_sbuffer_destroy(&v1);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&ev);
}

Test(credential, a_v2_batch_under_key_a_fails_under_key_b)
{
    tally__cred_t a, b;
    parse_ok(DEV_CRED, &a);
    parse_ok(DEMO_CRED, &b);
    msgpack_sbuffer ev, sb;
    two_events(&ev);
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_batch_v2(&sb, &a, "p", 5, 5, 2, ev.data, ev.size), 0);
    cr_expect_eq(tally__mac_check(a.key, sb.data, sb.size), 1);
    cr_expect_eq(tally__mac_check(b.key, sb.data, sb.size), 0, "verifies under another key");
    /* a key whose name is borrowed: demo-emitter's key under dev-emitter's name */
    tally__cred_t forged = b;
    memcpy(forged.name, a.name, sizeof a.name);
    forged.name_len = a.name_len;
    msgpack_sbuffer f;
    msgpack_sbuffer_init(&f);
    cr_assert_eq(tally__encode_batch_v2(&f, &forged, "p", 5, 5, 2, ev.data, ev.size), 0);
    cr_expect_eq(tally__mac_check(a.key, f.data, f.size), 0,
                 "a batch naming dev-emitter, signed with demo-emitter's key, verifies");
    msgpack_sbuffer_destroy(&f);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&ev);
}

Test(credential, a_replayed_batch_cannot_change_its_credential_or_producer)
{
    /* A captured authentic batch, replayed under another credential name
     * (same length, so the msgpack stays well-formed) or another producer:
     * the name and the producer are under the tag. */
    tally__cred_t a, b;
    parse_ok(DEV_CRED, &a);
    parse_ok(DEMO_CRED, &b);
    msgpack_sbuffer ev, sb;
    two_events(&ev);
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_batch_v2(&sb, &b, "victim", 77, 77, 2, ev.data, ev.size), 0);
    cr_assert_eq(tally__mac_check(b.key, sb.data, sb.size), 1);
    char *copy = malloc(sb.size);
    cr_assert_not_null(copy);
    memcpy(copy, sb.data, sb.size);
    char *pos = memmem(copy, sb.size, "demo-emitter", 12);
    cr_assert_not_null(pos);
    memcpy(pos, "demo-emittes", 12);
    cr_expect_eq(tally__mac_check(b.key, copy, sb.size), 0, "renamed credential verifies");
    memcpy(copy, sb.data, sb.size);
    pos = memmem(copy, sb.size, "victim", 6);
    cr_assert_not_null(pos);
    memcpy(pos, "victin", 6);
    cr_expect_eq(tally__mac_check(b.key, copy, sb.size), 0, "renamed producer verifies");
    /* and replayed as it was, it still verifies: only the dedup state can
     * refuse it (test_ingest_auth.sh replays one end to end) */
    memcpy(copy, sb.data, sb.size);
    cr_expect_eq(tally__mac_check(b.key, copy, sb.size), 1);
    /* the dedup state sees a replay of (seq 77, base 77) as a duplicate */
    tally__dedup_t st;
    memset(&st, 0, sizeof st);
    cr_expect_eq(tally__dedup_accept(&st, 77, 77), TALLY_DEDUP_NEW);
    cr_expect_eq(tally__dedup_accept(&st, 77, 77), TALLY_DEDUP_DUP, "a replay counted twice");
    free(copy);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&ev);
}

/* Pack a batch header by hand: keys in the given order ("kvapsbe" letters). */
static void
hand_batch(msgpack_sbuffer *sb, const char *order, unsigned version, const msgpack_sbuffer *ev,
           uint32_t nev)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, strlen(order));
    for (const char *o = order; *o; o++) {
        msgpack_pack_str(&pk, 1);
        msgpack_pack_str_body(&pk, o, 1);
        switch (*o) {
        case 'k': msgpack_pack_uint32(&pk, TALLY_PROTO_KIND_batch_v1); break;
        case 'v': msgpack_pack_uint32(&pk, version); break;
        case 'a': msgpack_pack_str(&pk, 11); msgpack_pack_str_body(&pk, DEV_NAME, 11); break;
        case 'p': msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "p", 1); break;
        case 's': msgpack_pack_uint64(&pk, 9); break;
        case 'b': msgpack_pack_uint64(&pk, 9); break;
        case 'e':
            msgpack_pack_array(&pk, nev);
            msgpack_sbuffer_write(sb, ev->data, ev->size);
            break;
        default: cr_assert_fail("bad key letter %c", *o);
        }
    }
}

Test(credential, a_v2_batch_whose_third_key_is_not_a_is_missing_its_credential)
{
    msgpack_sbuffer ev, sb;
    two_events(&ev);
    tally__decoder_t d;
    tally__wire_batch_t b;
    cr_assert_eq(tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS), 0);
    static const char *const orders[] = {"kvpasbe", "kvpsbea", "kvpsbe", "kv"};
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        hand_batch(&sb, orders[i], 2, &ev, 2);
        uint32_t version;
        tally__str_t name;
        int reason = -1;
        cr_expect_eq(tally__peek_batch(sb.data, sb.size, &version, &name, &reason), TALLY_EPROTO,
                     "peek of v2 %s", orders[i]);
        cr_expect_eq(reason, R(missing), "peek of v2 %s: %s, want missing", orders[i],
                     tally__reject_name(reason));
        reason = -1;
        cr_expect_eq(tally__decode_batch(&d, sb.data, sb.size, &b, &reason), TALLY_EPROTO,
                     "decode of v2 %s", orders[i]);
        cr_expect_eq(reason, R(missing), "decode of v2 %s: %s, want missing", orders[i],
                     tally__reject_name(reason));
        msgpack_sbuffer_destroy(&sb);
    }
    /* the right order decodes (the hand-built header is right) */
    hand_batch(&sb, "kvapsbe", 2, &ev, 2);
    int reason = -1;
    cr_expect_eq(tally__decode_batch(&d, sb.data, sb.size, &b, &reason), 0, "%s",
                 tally__reject_name(reason));
    msgpack_sbuffer_destroy(&sb);
    tally__decoder_fini(&d);
    msgpack_sbuffer_destroy(&ev);
}

Test(credential, a_in_a_v1_batch_is_an_unknown_field)
{
    msgpack_sbuffer ev, sb;
    two_events(&ev);
    tally__decoder_t d;
    tally__wire_batch_t b;
    cr_assert_eq(tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS), 0);
    static const char *const orders[] = {"kvapsbe", "kvpsbea"};
    for (size_t i = 0; i < 2; i++) {
        hand_batch(&sb, orders[i], 1, &ev, 2);
        int reason = -1;
        cr_expect_eq(tally__decode_batch(&d, sb.data, sb.size, &b, &reason), TALLY_EPROTO);
        cr_expect_eq(reason, R(unknown_field), "v1 %s: %s, want unknown_field", orders[i],
                     tally__reject_name(reason));
        msgpack_sbuffer_destroy(&sb);
    }
    tally__decoder_fini(&d);
    msgpack_sbuffer_destroy(&ev);
}

/* ---- acks v2 ------------------------------------------------------------------ */

static void
ack(msgpack_sbuffer *sb, const uint8_t *key, const char *producer, uint64_t hwm, uint64_t c)
{
    msgpack_sbuffer_init(sb);
    cr_assert_eq(tally__encode_ack_v2(sb, key, producer, strlen(producer), hwm, c), 0);
}

Test(credential, a_v2_ack_decodes_under_its_key_and_topic_only)
{
    uint8_t ka[TALLY__CRED_KEY_LEN], kb[TALLY__CRED_KEY_LEN];
    hex_key(DEV_KEY_HEX, ka);
    hex_key(DEMO_KEY_HEX, kb);
    char topic[TALLY__ACK_TOPIC_LEN + 1], other[TALLY__ACK_TOPIC_LEN + 1];
    tally__ack_topic(ka, "victim", 6, topic);
    tally__ack_topic(ka, "victim2", 7, other);
    msgpack_sbuffer sb;
    ack(&sb, ka, "victim", 123456789012345ull, 123456789012999ull);
    cr_assert_gt(sb.size, TALLY__ACK_TOPIC_LEN + 1 + TALLY__MAC_LEN);
    cr_expect(memcmp(sb.data, topic, TALLY__ACK_TOPIC_LEN + 1) == 0,
              "the ack does not start with the topic and its NUL");
    tally__wire_ack_t a;
    cr_assert_eq(tally__decode_ack_v2(sb.data, sb.size, ka, topic, &a), 0, "a good ack refused");
    cr_expect_eq(a.hwm, 123456789012345ull);
    cr_expect_eq(a.max_seq, 123456789012999ull);
    cr_expect_eq(a.producer.len, 0);
    cr_expect_eq(tally__decode_ack_v2(sb.data, sb.size, kb, topic, &a), TALLY_EPROTO, "wrong key");
    cr_expect_eq(tally__decode_ack_v2(sb.data, sb.size, ka, other, &a), TALLY_EPROTO,
                 "another producer's topic");
    /* every truncation */
    int wrong = 0;
    for (size_t n = 0; n < sb.size; n++)
        if (tally__decode_ack_v2(sb.data, n, ka, topic, &a) != TALLY_EPROTO) {
            wrong++;
            cr_log_error("the ack cut to %zu of %zu bytes decodes", n, sb.size);
        }
    cr_expect_eq(wrong, 0);
    /* every flipped bit (h among them) */
    char *copy = malloc(sb.size);
    cr_assert_not_null(copy);
    memcpy(copy, sb.data, sb.size);
    wrong = 0;
    for (size_t i = 0; i < sb.size; i++)
        for (int bit = 0; bit < 8; bit++) {
            copy[i] ^= (char)(1u << bit);
            if (tally__decode_ack_v2(copy, sb.size, ka, topic, &a) == 0) {
                wrong++;
                cr_log_error("bit %d of byte %zu flipped: the ack still decodes", bit, i);
            }
            copy[i] ^= (char)(1u << bit);
        }
    cr_expect_eq(wrong, 0, "%d flipped bits went unnoticed", wrong);
    free(copy);
    /* a tampered h: the high-water mark raised, the rest intact */
    msgpack_sbuffer lo;
    ack(&lo, ka, "victim", 1, 1);
    char *h = memmem(lo.data + TALLY__ACK_TOPIC_LEN + 1, lo.size - TALLY__ACK_TOPIC_LEN - 1,
                     "\xa1h\x01", 3);
    cr_assert_not_null(h, "cannot find h = 1 in the ack");
    h[2] = 0x7f;
    cr_expect_eq(tally__decode_ack_v2(lo.data, lo.size, ka, topic, &a), TALLY_EPROTO,
                 "h raised from 1 to 127 by a third party is believed");
    msgpack_sbuffer_destroy(&lo);
    msgpack_sbuffer_destroy(&sb);
}

Test(credential, a_v1_ack_or_a_well_signed_wrong_shape_is_not_a_v2_ack)
{
    uint8_t key[TALLY__CRED_KEY_LEN];
    hex_key(DEV_KEY_HEX, key);
    char topic[TALLY__ACK_TOPIC_LEN + 1];
    tally__ack_topic(key, "victim", 6, topic);
    tally__wire_ack_t a;
    /* a v1 ack naming the producer */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_ack(&sb, "victim", 6, 1ull << 62, 1ull << 62), 0);
    cr_expect_eq(tally__decode_ack_v2(sb.data, sb.size, key, topic, &a), TALLY_EPROTO);
    msgpack_sbuffer_destroy(&sb);
    /* topic + a map with an extra "p", correctly signed: the shape is exact */
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_sbuffer_write(&sb, topic, sizeof topic);
    msgpack_pack_map(&pk, 5);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "k", 1), msgpack_pack_uint32(&pk, 2);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "v", 1), msgpack_pack_uint32(&pk, 2);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "p", 1);
    msgpack_pack_str(&pk, 6), msgpack_pack_str_body(&pk, "victim", 6);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "h", 1), msgpack_pack_uint64(&pk, 5);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "c", 1), msgpack_pack_uint64(&pk, 5);
    uint8_t tag[TALLY__MAC_LEN];
    tally__mac(key, sb.data, sb.size, tag);
    msgpack_sbuffer_write(&sb, (const char *)tag, sizeof tag);
    cr_expect_eq(tally__decode_ack_v2(sb.data, sb.size, key, topic, &a), TALLY_EPROTO,
                 "an ack map with an extra field");
    msgpack_sbuffer_destroy(&sb);
    /* the same, version 1 inside a signed v2 frame */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_sbuffer_write(&sb, topic, sizeof topic);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "k", 1), msgpack_pack_uint32(&pk, 2);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "v", 1), msgpack_pack_uint32(&pk, 1);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "h", 1), msgpack_pack_uint64(&pk, 5);
    msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "c", 1), msgpack_pack_uint64(&pk, 5);
    tally__mac(key, sb.data, sb.size, tag);
    msgpack_sbuffer_write(&sb, (const char *)tag, sizeof tag);
    cr_expect_eq(tally__decode_ack_v2(sb.data, sb.size, key, topic, &a), TALLY_EPROTO,
                 "v = 1 in a v2 ack");
    msgpack_sbuffer_destroy(&sb);
}

Test(credential, the_ack_topic_hides_the_producer_and_differs_per_key_and_producer)
{
    uint8_t ka[TALLY__CRED_KEY_LEN], kb[TALLY__CRED_KEY_LEN];
    hex_key(DEV_KEY_HEX, ka);
    hex_key(DEMO_KEY_HEX, kb);
    char t1[TALLY__ACK_TOPIC_LEN + 1], t2[TALLY__ACK_TOPIC_LEN + 1], t3[TALLY__ACK_TOPIC_LEN + 1],
        t4[TALLY__ACK_TOPIC_LEN + 1];
    tally__ack_topic(ka, "victim", 6, t1);
    tally__ack_topic(ka, "victim", 6, t4);
    tally__ack_topic(kb, "victim", 6, t2);
    tally__ack_topic(ka, "victin", 6, t3);
    cr_expect_eq(strlen(t1), TALLY__ACK_TOPIC_LEN);
    cr_expect_eq(strspn(t1, "0123456789abcdef"), TALLY__ACK_TOPIC_LEN, "not lower-case hex: %s",
                 t1);
    cr_expect_str_eq(t1, t4, "the topic is not a function of (key, producer)");
    cr_expect_str_neq(t1, t2, "same topic under two keys");
    cr_expect_str_neq(t1, t3, "same topic for two producers");
    /* and the whole ack never carries the producer id in the clear */
    msgpack_sbuffer sb;
    ack(&sb, ka, "victim", 9, 9);
    cr_expect_null(memmem(sb.data, sb.size, "victim", 6), "the v2 ack names its producer");
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the emitter scope of the tokens file ------------------------------------------ */

static tally__tokens_t *
load_tokens(void)
{
    char path[1024];
    const char *src = getenv("TALLY_SOURCE_DIR");
    if (src && *src) {
        snprintf(path, sizeof path, "%s/config/tokens", src);
    } else {
        snprintf(path, sizeof path, "%s", __FILE__);
        char *p = strstr(path, "/tests/unit/");
        cr_assert_not_null(p, "set TALLY_SOURCE_DIR");
        snprintf(p, sizeof path - (size_t)(p - path), "/config/tokens");
    }
    tally__tokens_t *t = NULL;
    char err[256];
    cr_assert_eq(tally__tokens_load(path, &t, err, sizeof err), 0, "%s", err);
    return t;
}

Test(credential, the_tokens_file_keys_verify_the_documented_credentials)
{
    tally__tokens_t *t = load_tokens();
    static const char *const creds[] = {DEV_CRED, DEMO_CRED};
    for (size_t i = 0; i < 2; i++) {
        tally__cred_t c;
        parse_ok(creds[i], &c);
        const tally__token_t *tok = tally__tokens_find_emitter(t, c.name, c.name_len);
        cr_assert_not_null(tok, "no emitter %s in config/tokens", c.name);
        cr_expect_eq(tally__token_role(tok), TALLY_ROLE_EMITTER);
        const uint8_t *k = tally__token_mac_key(tok);
        cr_assert_not_null(k);
        cr_expect(memcmp(k, c.key, TALLY__CRED_KEY_LEN) == 0, "%s: file key != derived key",
                  c.name);
    }
    /* API tokens are not emitters, whatever their name */
    cr_expect_null(tally__tokens_find_emitter(t, "admin", 5));
    cr_expect_null(tally__tokens_find_emitter(t, "dev-emitte", 10), "a prefix matched");
    cr_expect_null(tally__tokens_find_emitter(t, "dev-emitter2", 12));
    tally__tokens_destroy(t);
}

Test(credential, emitter_scope_is_the_listed_namespaces_and_ingest_only)
{
    tally__tokens_t *t = load_tokens();
    const tally__token_t *dev = tally__tokens_find_emitter(t, DEV_NAME, strlen(DEV_NAME));
    const tally__token_t *demo = tally__tokens_find_emitter(t, "demo-emitter", 12);
    const tally__token_t *admin = tally__tokens_find(t, "admin");
    cr_assert(dev && demo && admin);
    cr_expect_eq(tally__token_allows_ns(demo, "demo", 4, TALLY_ACCESS_INGEST), 1);
    cr_expect_eq(tally__token_allows_ns(demo, "other", 5, TALLY_ACCESS_INGEST), 0,
                 "out-of-scope namespace allowed");
    cr_expect_eq(tally__token_allows_ns(demo, "demox", 4, TALLY_ACCESS_INGEST), 1,
                 "ns_len is honoured (\"demo\" of \"demox\")");
    cr_expect_eq(tally__token_allows_ns(demo, "demox", 5, TALLY_ACCESS_INGEST), 0,
                 "a longer name sharing the prefix allowed");
    cr_expect_eq(tally__token_allows_ns(demo, "dem", 3, TALLY_ACCESS_INGEST), 0,
                 "a prefix of the listed name allowed");
    cr_expect_eq(tally__token_allows_ns(demo, "system", 6, TALLY_ACCESS_INGEST), 0);
    cr_expect_eq(tally__token_allows_ns(dev, "other", 5, TALLY_ACCESS_INGEST), 1);
    cr_expect_eq(tally__token_allows_ns(dev, "demo", 4, TALLY_ACCESS_INGEST), 1);
    /* an emitter may do nothing else; nothing else may ingest */
    cr_expect_eq(tally__token_allows(demo, "demo", TALLY_ACCESS_READ), 0);
    cr_expect_eq(tally__token_allows(dev, "demo", TALLY_ACCESS_WRITE), 0);
    cr_expect_eq(tally__token_allows(admin, "demo", TALLY_ACCESS_INGEST), 0);
    tally__tokens_destroy(t);
}
