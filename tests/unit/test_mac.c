/* test_mac.c — Criterion tests of tally__mac (lib/credential.c): its own keyed BLAKE2b-256, with
 * the key block compressed once per key and thread, gives exactly libsodium's crypto_generichash
 * bytes for every length, when keys alternate and on several threads; a tag checks only under
 * its own key and message. */
#include <pthread.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "credential.h"

static void
same_as_libsodium(unsigned seed_byte)
{
    uint8_t keys[3][TALLY__CRED_KEY_LEN], msg[1300], a[32], b[32];
    memset(msg, (int)seed_byte, sizeof msg);
    randombytes_buf(keys, sizeof keys);
    randombytes_buf(msg, sizeof msg);
    for (size_t len = 0; len <= sizeof msg; len++) {
        /* a new key every few lengths, and back to an older one */
        const uint8_t *key = keys[(len / 7) % 3];
        crypto_generichash(a, sizeof a, msg, len, key, TALLY__CRED_KEY_LEN);
        tally__mac(key, msg, len, b);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "length %zu differs from crypto_generichash",
                     len);
    }
}

Test(mac, is_keyed_blake2b_256_byte_for_byte_at_every_length)
{
    cr_assert_eq(tally__cred_init(), 0);
    same_as_libsodium(1);
}

static void *
thread_main(void *arg)
{
    same_as_libsodium((unsigned)(uintptr_t)arg);
    return NULL;
}

Test(mac, threads_with_their_own_keys_agree_with_libsodium)
{
    cr_assert_eq(tally__cred_init(), 0);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, thread_main, (void *)i), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

Test(mac, a_tag_checks_only_under_its_key_and_message)
{
    cr_assert_eq(tally__cred_init(), 0);
    uint8_t k1[TALLY__CRED_KEY_LEN], k2[TALLY__CRED_KEY_LEN], m[200 + TALLY__MAC_LEN];
    randombytes_buf(k1, sizeof k1);
    memcpy(k2, k1, sizeof k2);
    k2[31] ^= 1; /* one bit away: the cached state of k1 must not serve k2 */
    randombytes_buf(m, sizeof m);
    tally__mac(k1, m, 200, m + 200);
    cr_assert(tally__mac_check(k1, m, sizeof m));
    cr_assert(!tally__mac_check(k2, m, sizeof m), "another key");
    cr_assert(tally__mac_check(k1, m, sizeof m), "the first key again, after the cache moved");
    m[0] ^= 0x80;
    cr_assert(!tally__mac_check(k1, m, sizeof m), "a changed message");
    m[0] ^= 0x80;
    m[sizeof m - 1] ^= 1;
    cr_assert(!tally__mac_check(k1, m, sizeof m), "a changed tag");
    cr_assert(!tally__mac_check(k1, m, TALLY__MAC_LEN - 1), "shorter than a tag");
}
