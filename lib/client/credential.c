/* credential.c — emitter credential strings, MAC keys and the keyed-BLAKE2b MACs of protocol v2. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "credential.h"
#include "tally/tally.h"

/* Domain separation: the key that signs batches is never the raw secret,
 * so the tokens file can hold the key without holding the secret. */
static const char derive_ctx[] = "tally emitter mac key v2";

int
tally__cred_init(void)
{
    return sodium_init() < 0 ? -EIO : 0;
}

int
tally__cred_valid_name(const char *s, size_t len)
{
    if (len == 0 || len > TALLY__CRED_MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

void
tally__cred_derive(const uint8_t secret[TALLY__CRED_SECRET_LEN], uint8_t key[TALLY__CRED_KEY_LEN])
{
    crypto_generichash(key, TALLY__CRED_KEY_LEN, (const unsigned char *)derive_ctx,
                       sizeof derive_ctx - 1, secret, TALLY__CRED_SECRET_LEN);
}

static int
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
tally__cred_parse(const char *s, size_t len, tally__cred_t *out)
{
    uint8_t secret[TALLY__CRED_SECRET_LEN];
    size_t bin_len = 0;
    const char *end = NULL;
    memset(out, 0, sizeof *out);
    if (s == NULL || tally__cred_init() != 0)
        return TALLY_EINVAL;
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    while (len > 0 && is_blank(*s)) {
        s++;
        len--;
    }
    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return TALLY_EINVAL;
    size_t nlen = (size_t)(colon - s), slen = len - nlen - 1;
    if (!tally__cred_valid_name(s, nlen) || slen != TALLY__CRED_SECRET_B64)
        return TALLY_EINVAL;
    if (sodium_base642bin(secret, sizeof secret, colon + 1, slen, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        bin_len != sizeof secret || end != colon + 1 + slen) {
        sodium_memzero(secret, sizeof secret);
        return TALLY_EINVAL;
    }
    memcpy(out->name, s, nlen);
    out->name[nlen] = '\0';
    out->name_len = nlen;
    tally__cred_derive(secret, out->key);
    sodium_memzero(secret, sizeof secret);
    return 0;
}

int
tally__cred_generate(const char *name, char *str, size_t cap, uint8_t key[TALLY__CRED_KEY_LEN])
{
    uint8_t secret[TALLY__CRED_SECRET_LEN];
    size_t nlen = name ? strlen(name) : 0;
    if (!tally__cred_valid_name(name, nlen) || cap < nlen + 1 + TALLY__CRED_SECRET_B64 + 1 ||
        tally__cred_init() != 0)
        return TALLY_EINVAL;
    randombytes_buf(secret, sizeof secret);
    snprintf(str, cap, "%s:", name);
    sodium_bin2base64(str + nlen + 1, cap - nlen - 1, secret, sizeof secret,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    tally__cred_derive(secret, key);
    sodium_memzero(secret, sizeof secret);
    return 0;
}

/* ---- keyed BLAKE2b-256 with the key block compressed once ----------------
 *
 * Keyed BLAKE2b pads the key to a 128-byte block and compresses it before
 * the message. libsodium does that on every call, and a one-event batch
 * (about 150 bytes) is one message block more, so half the work of its MAC
 * was the key. Here the state after the key block is kept per thread for
 * the last key used (a producer signs, and an ingest thread mostly checks,
 * under one key at a time), so a message costs only its own blocks. The
 * output is RFC 7693 BLAKE2b-256 keyed with the 32-byte key, the same bytes
 * crypto_generichash gives (tests/unit/test_mac.c compares them): the MAC
 * and the wire format are unchanged. */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define OWN_BLAKE2B 1

static const uint64_t b2_iv[8] = {0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL,
                                  0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
                                  0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
                                  0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};

static const uint8_t b2_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

static inline uint64_t
rotr64(uint64_t x, int n)
{
    return (x >> n) | (x << (64 - n));
}

#define B2_G(r, i, a, b, c, d)                                                                  \
    do {                                                                                        \
        (a) = (a) + (b) + m[b2_sigma[r][2 * (i)]];                                              \
        (d) = rotr64((d) ^ (a), 32);                                                            \
        (c) = (c) + (d);                                                                        \
        (b) = rotr64((b) ^ (c), 24);                                                            \
        (a) = (a) + (b) + m[b2_sigma[r][2 * (i) + 1]];                                          \
        (d) = rotr64((d) ^ (a), 16);                                                            \
        (c) = (c) + (d);                                                                        \
        (b) = rotr64((b) ^ (c), 63);                                                            \
    } while (0)

#define B2_ROUND(r)                                                                             \
    do {                                                                                        \
        B2_G(r, 0, v[0], v[4], v[8], v[12]);                                                    \
        B2_G(r, 1, v[1], v[5], v[9], v[13]);                                                    \
        B2_G(r, 2, v[2], v[6], v[10], v[14]);                                                   \
        B2_G(r, 3, v[3], v[7], v[11], v[15]);                                                   \
        B2_G(r, 4, v[0], v[5], v[10], v[15]);                                                   \
        B2_G(r, 5, v[1], v[6], v[11], v[12]);                                                   \
        B2_G(r, 6, v[2], v[7], v[8], v[13]);                                                    \
        B2_G(r, 7, v[3], v[4], v[9], v[14]);                                                    \
    } while (0)

/* One block; t is the byte count so far including it (messages stay far
 * below 2^64 bytes, so the counter's high word is 0). */
static void
b2_compress(uint64_t h[8], const uint8_t *blk, uint64_t t, int last)
{
    uint64_t m[16], v[16];
    memcpy(m, blk, sizeof m); /* little-endian words */
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = b2_iv[i];
    }
    v[12] ^= t;
    if (last)
        v[14] = ~v[14];
    B2_ROUND(0);
    B2_ROUND(1);
    B2_ROUND(2);
    B2_ROUND(3);
    B2_ROUND(4);
    B2_ROUND(5);
    B2_ROUND(6);
    B2_ROUND(7);
    B2_ROUND(8);
    B2_ROUND(9);
    B2_ROUND(10);
    B2_ROUND(11);
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

/* The state after the key block, for the last key this thread used. */
static _Thread_local struct {
    int ready;
    uint8_t key[TALLY__CRED_KEY_LEN];
    uint64_t h[8];
} mac_cache;

static const uint64_t *
keyed_state(const uint8_t key[TALLY__CRED_KEY_LEN])
{
    if (mac_cache.ready && sodium_memcmp(mac_cache.key, key, TALLY__CRED_KEY_LEN) == 0)
        return mac_cache.h;
    uint8_t blk[128] = {0};
    memcpy(blk, key, TALLY__CRED_KEY_LEN);
    memcpy(mac_cache.h, b2_iv, sizeof mac_cache.h);
    /* parameter block: digest length, key length, fanout 1, depth 1 */
    mac_cache.h[0] ^= 0x01010000ULL ^ ((uint64_t)TALLY__CRED_KEY_LEN << 8) ^ TALLY__MAC_LEN;
    b2_compress(mac_cache.h, blk, 128, 0);
    sodium_memzero(blk, sizeof blk);
    memcpy(mac_cache.key, key, TALLY__CRED_KEY_LEN);
    mac_cache.ready = 1;
    return mac_cache.h;
}
#endif

void
tally__mac(const uint8_t key[TALLY__CRED_KEY_LEN], const void *msg, size_t len,
           uint8_t tag[TALLY__MAC_LEN])
{
#ifdef OWN_BLAKE2B
    /* an empty message makes the key block the last one: libsodium's way */
    if (len > 0) {
        const uint8_t *m = msg;
        uint64_t h[8], t = 128;
        uint8_t blk[128];
        memcpy(h, keyed_state(key), sizeof h);
        for (; len > 128; m += 128, len -= 128) {
            t += 128;
            b2_compress(h, m, t, 0);
        }
        memcpy(blk, m, len);
        memset(blk + len, 0, sizeof blk - len);
        b2_compress(h, blk, t + len, 1);
        memcpy(tag, h, TALLY__MAC_LEN);
        return;
    }
#endif
    crypto_generichash(tag, TALLY__MAC_LEN, msg, len, key, TALLY__CRED_KEY_LEN);
}

int
tally__mac_check(const uint8_t key[TALLY__CRED_KEY_LEN], const void *msg, size_t len)
{
    uint8_t tag[TALLY__MAC_LEN];
    if (len < TALLY__MAC_LEN)
        return 0;
    const uint8_t *m = msg;
    tally__mac(key, m, len - TALLY__MAC_LEN, tag);
    return crypto_verify_32(tag, m + len - TALLY__MAC_LEN) == 0;
}

void
tally__ack_topic(const uint8_t key[TALLY__CRED_KEY_LEN], const char *producer, size_t producer_len,
                 char topic[TALLY__ACK_TOPIC_LEN + 1])
{
    crypto_generichash_state st;
    uint8_t h[TALLY__ACK_TOPIC_LEN / 2];
    crypto_generichash_init(&st, key, TALLY__CRED_KEY_LEN, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)"ack", 4); /* with its NUL */
    crypto_generichash_update(&st, (const unsigned char *)producer, producer_len);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(topic, TALLY__ACK_TOPIC_LEN + 1, h, sizeof h);
}
