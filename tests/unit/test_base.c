/* test_base.c — Criterion tests of the shared base: the growable buffer and the
 * growth rule (buf.h), and hashes, UUIDs and encodings (ids.h). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ids.h"

Test(buf, appends_and_takes)
{
    tally__buf_t b = {0};
    for (int i = 0; i < 1000; i++)
        tally__buf_puts(&b, "abc");
    tally__buf_printf(&b, "%d-%s", 42, "x");
    size_t len;
    char *s = tally__buf_take(&b, &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, 3004);
    cr_assert_eq(strlen(s), len, "NUL-terminated at its length");
    cr_assert_str_eq(s + 2997, "abc42-x");
    cr_assert_null(b.p, "take leaves the buffer empty");
    free(s);
}

Test(buf, printf_grows_past_room)
{
    tally__buf_t b = {0};
    tally__buf_puts(&b, "x");
    char big[5000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tally__buf_printf(&b, "%s", big);
    cr_assert_eq(b.len, 5000);
    cr_assert_eq(b.p[4999], 'y');
    tally__buf_free(&b);
}

Test(buf, failure_is_sticky)
{
    tally__buf_t b = {0};
    tally__buf_puts(&b, "ok");
    cr_assert_eq(tally__buf_reserve(&b, SIZE_MAX - 1), -1, "a wrapping size is refused");
    cr_assert_eq(b.err, 1);
    tally__buf_puts(&b, "more");
    cr_assert_null(tally__buf_take(&b, NULL), "a failed buffer yields nothing");
    cr_assert_eq(b.err, 0, "and is reusable afterwards");
}

Test(buf, empty_take_is_an_empty_string)
{
    tally__buf_t b = {0};
    size_t len = 9;
    char *s = tally__buf_take(&b, &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(s, "");
    free(s);
}

Test(grow, doubles_and_refuses_overflow)
{
    int *a = NULL;
    size_t cap = 0;
    cr_assert_eq(tally__grow((void **)&a, &cap, 5, sizeof *a, 4), 0);
    cr_assert_eq(cap, 8, "first 4, doubled to hold 5");
    cr_assert_eq(tally__grow((void **)&a, &cap, 8, sizeof *a, 4), 0);
    cr_assert_eq(cap, 8, "enough room: unchanged");
    cr_assert_eq(tally__grow((void **)&a, &cap, SIZE_MAX / 2, sizeof *a, 4), -1,
                 "need * elem overflows");
    cr_assert_eq(cap, 8, "a failure leaves the array as it was");
    uint32_t c32 = 0;
    cr_assert_eq(tally__grow32((void **)&a, &c32, 100, sizeof *a, 64), 0);
    cr_assert_eq(c32, 128);
    free(a);
}

Test(ids, fnv1a_vectors)
{
    cr_assert_eq(tally__hash_bytes("", 0), 0xcbf29ce484222325ull);
    cr_assert_eq(tally__hash_bytes("foobar", 6), 0x85944171f73967e8ull);
    cr_assert_neq(tally__hash_fast("abcdefgh1", 9), tally__hash_fast("abcdefgh2", 9),
                  "the tail after the last 8 bytes counts");
    cr_assert_neq(tally__hash_fast("a", 1), tally__hash_fast("a\0", 2), "length counts");
}

static int
is_uuid_v4(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return 0;
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

Test(ids, uuids)
{
    char a[TALLY_UUID_LEN], b[TALLY_UUID_LEN], c[TALLY_UUID_LEN];
    tally__uuid_random(a);
    tally__uuid_random(b);
    cr_assert(is_uuid_v4(a), "%s", a);
    cr_assert_str_neq(a, b);
    tally__uuid_derived("sub|1", 5, a);
    tally__uuid_derived("sub|1", 5, b);
    tally__uuid_derived("sub|2", 5, c);
    cr_assert(is_uuid_v4(a), "%s", a);
    cr_assert_str_eq(a, b, "the same seed gives the same id");
    cr_assert_str_neq(a, c);
}

Test(ids, hex)
{
    unsigned char out[4];
    cr_assert_eq(tally__hex_decode("00fFa1B2", out, 4), 0);
    cr_assert(out[0] == 0 && out[1] == 0xff && out[2] == 0xa1 && out[3] == 0xb2);
    cr_assert_eq(tally__hex_decode("00ff", out, 4), -1, "too short");
    cr_assert_eq(tally__hex_decode("00ffa1b2c3", out, 4), -1, "too long");
    cr_assert_eq(tally__hex_decode("00fga1b2", out, 4), -1, "not a hex digit");
    cr_assert_eq(tally__hex_decode("00 fa1b2", out, 4), -1, "no separators");
    char txt[9];
    tally__hex_encode(txt, sizeof txt, out, 4);
    cr_assert_str_eq(txt, "00ffa1b2");
}

Test(ids, base64_rfc4648_vectors)
{
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char buf[16];
    for (size_t i = 0; i < 7; i++) {
        size_t n = tally__base64_encode(buf, sizeof buf, in[i], strlen(in[i]));
        cr_assert_eq(n, strlen(want[i]));
        cr_assert_str_eq(buf, want[i]);
    }
    cr_assert_eq(tally__base64_encode(buf, 4, "foo", 3), 0, "no room for the NUL");
}
