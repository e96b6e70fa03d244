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

void
tally__mac(const uint8_t key[TALLY__CRED_KEY_LEN], const void *msg, size_t len,
           uint8_t tag[TALLY__MAC_LEN])
{
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
