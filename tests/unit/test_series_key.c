/* test_series_key.c — the series-key format has one writer (rollup.c): golden bytes for the
 * wire-string writer tallyd's ingest path calls, agreement with the C-string writer, and
 * the reader taking every key back apart. */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "codec.h"
#include "rollup.h"

#define S(lit) ((tally__str_t){(lit), (uint32_t)(sizeof(lit) - 1)})

/* Bytes daemon/ingest.c wrote for this event before rollup.c owned the
 * writer (its former wire_series_key(), run by hand on the sample): the
 * format on disk must not move by a byte. Labels come unsorted, with keys
 * that share a prefix ("a" < "a.b" < "ab") and an empty value. */
static const char golden[] = "acme\0"
                             "cpu_seconds\0"
                             "a\x1f"
                             "1\x1e"
                             "a.b\x1f\x1e"
                             "ab\x1f"
                             "x y\x1e"
                             "zone\x1f"
                             "eu-1";

static const tally__wire_label_t sample[4] = {
    {S("zone"), S("eu-1")},
    {S("ab"), S("x y")},
    {S("a.b"), S("")},
    {S("a"), S("1")},
};

Test(series_key, wire_writer_matches_golden_bytes)
{
    static const int perms[4][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}};
    for (int p = 0; p < 4; p++) {
        tally__wire_label_t l[4];
        for (int i = 0; i < 4; i++)
            l[i] = sample[perms[p][i]];
        char buf[TALLY_SERIES_KEY_MAX];
        size_t n = tally__series_key_wire(buf, S("acme"), S("cpu_seconds"), l, 4);
        cr_assert_eq(n, sizeof golden - 1, "perm %d: length %zu", p, n);
        cr_assert(memcmp(buf, golden, n) == 0, "perm %d: bytes differ from the golden key", p);
    }
}

Test(series_key, c_string_writer_writes_the_same_bytes)
{
    const tally_label_t l[4] = {{"ab", "x y"}, {"zone", "eu-1"}, {"a", "1"}, {"a.b", ""}};
    char buf[TALLY_SERIES_KEY_MAX];
    size_t n = tally__series_key(buf, "acme", 4, "cpu_seconds", 11, l, 4);
    cr_assert_eq(n, sizeof golden - 1);
    cr_assert(memcmp(buf, golden, n) == 0);
}

Test(series_key, wire_writer_output_parses_back)
{
    char buf[TALLY_SERIES_KEY_MAX];
    size_t n = tally__series_key_wire(buf, S("acme"), S("cpu_seconds"), sample, 4);
    tally__series_t s;
    cr_assert_eq(tally__series_parse(buf, n, &s), 0);
    cr_assert_eq(s.ns_len, 4);
    cr_assert(memcmp(s.ns, "acme", 4) == 0);
    cr_assert_eq(s.metric_len, 11);
    cr_assert(memcmp(s.metric, "cpu_seconds", 11) == 0);
    static const char *const want[4][2] = {
        {"a", "1"}, {"a.b", ""}, {"ab", "x y"}, {"zone", "eu-1"}};
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl), 1,
                     "label %d", i);
        cr_assert(kl == strlen(want[i][0]) && memcmp(k, want[i][0], kl) == 0, "label %d key", i);
        cr_assert(vl == strlen(want[i][1]) && memcmp(v, want[i][1], vl) == 0, "label %d value", i);
    }
    cr_assert_eq(tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl), 0);
    char text[TALLY_SERIES_TEXT_MAX];
    cr_assert_str_eq(tally__series_text(buf, n, text, sizeof text),
                     "acme/cpu_seconds{a=1,a.b=,ab=x y,zone=eu-1}");
}

Test(series_key, longest_key_fits_and_parses_back)
{
    /* every part at its limit: the buffer bound TALLY_SERIES_KEY_MAX holds it */
    char ns[TALLY_MAX_NS_LEN], metric[TALLY_MAX_METRIC_LEN];
    char keys[4][TALLY_MAX_LABEL_KEY_LEN], vals[4][TALLY_MAX_LABEL_VALUE_LEN];
    memset(ns, 'n', sizeof ns);
    memset(metric, 'm', sizeof metric);
    tally__wire_label_t l[4];
    size_t label_bytes = 0;
    uint32_t nl = 0;
    for (uint32_t i = 0; i < 4 && label_bytes + 2 < TALLY_MAX_LABELS_BYTES; i++) {
        memset(keys[i], 'a' + (int)(3 - i), sizeof keys[i]);
        memset(vals[i], 'v', sizeof vals[i]);
        size_t room = TALLY_MAX_LABELS_BYTES - label_bytes - 2;
        uint32_t kl = room < TALLY_MAX_LABEL_KEY_LEN ? (uint32_t)room : TALLY_MAX_LABEL_KEY_LEN;
        room -= kl;
        uint32_t vl = room < TALLY_MAX_LABEL_VALUE_LEN ? (uint32_t)room : TALLY_MAX_LABEL_VALUE_LEN;
        l[i] = (tally__wire_label_t){{keys[i], kl}, {vals[i], vl}};
        label_bytes += kl + vl + 2;
        nl++;
    }
    cr_assert_eq(label_bytes, TALLY_MAX_LABELS_BYTES);
    char buf[TALLY_SERIES_KEY_MAX];
    size_t n = tally__series_key_wire(buf, (tally__str_t){ns, sizeof ns},
                                      (tally__str_t){metric, sizeof metric}, l, nl);
    cr_assert_leq(n, sizeof buf);
    tally__series_t s;
    cr_assert_eq(tally__series_parse(buf, n, &s), 0);
    cr_assert_eq(s.ns_len, TALLY_MAX_NS_LEN);
    cr_assert_eq(s.metric_len, TALLY_MAX_METRIC_LEN);
    uint32_t pos = 0, kl, vl, seen = 0;
    const char *k, *v, *prev = NULL;
    uint32_t prev_len = 0;
    while (tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl)) {
        if (prev)
            cr_assert(memcmp(prev, k, prev_len < kl ? prev_len : kl) < 0, "labels sorted");
        prev = k;
        prev_len = kl;
        seen++;
    }
    cr_assert_eq(seen, nl);
}

Test(series_key, no_labels_and_a_truncated_key)
{
    char buf[TALLY_SERIES_KEY_MAX];
    size_t n = tally__series_key_wire(buf, S("b"), S("m"), NULL, 0);
    cr_assert_eq(n, 4);
    cr_assert(memcmp(buf, "b\0m\0", 4) == 0);
    tally__series_t s;
    cr_assert_eq(tally__series_parse(buf, n, &s), 0);
    cr_assert_eq(s.labels_len, 0);
    /* the reader refuses a key cut before the metric's NUL */
    cr_assert_eq(tally__series_parse(buf, 3, &s), TALLY_ECORRUPT);
    cr_assert_eq(tally__series_parse(buf, 1, &s), TALLY_ECORRUPT);
}
