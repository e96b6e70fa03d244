/* ids.c — hashes, UUIDs and hex/base64 encodings (ids.h). */
#include <sodium.h>
#include <string.h>

#include "ids.h"
#include "log.h"

uint64_t
tally__hash_bytes(const void *s, size_t len)
{
    const unsigned char *p = s;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Every event's series key is interned through this, and FNV-1a's byte loop
 * was most of that cost; eight bytes a step with a splitmix64 finish mixes as
 * well for table indexes. */
uint64_t
tally__hash_fast(const void *s, size_t len)
{
    const unsigned char *p = s;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    if (len) {
        w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    }
    h ^= h >> 30;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static void
uuid_format(unsigned char u[16], char *out)
{
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, u, 16);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[2 * i];
        out[o++] = hex[2 * i + 1];
    }
    out[o] = '\0';
}

void
tally__uuid_random(char *out)
{
    unsigned char u[16];
    if (sodium_init() < 0) /* idempotent; fails only without an entropy source */
        TALLY_ASSERT(!"libsodium cannot initialise");
    randombytes_buf(u, sizeof u);
    uuid_format(u, out);
}

void
tally__uuid_derived(const void *seed, size_t n, char *out)
{
    unsigned char u[16];
    crypto_generichash(u, sizeof u, seed, n, NULL, 0);
    uuid_format(u, out);
}

int
tally__hex_decode(const char *hex, void *out, size_t n)
{
    size_t got = 0;
    if (strlen(hex) != 2 * n)
        return -1;
    if (sodium_hex2bin(out, n, hex, 2 * n, NULL, &got, NULL) != 0 || got != n)
        return -1;
    return 0;
}

void
tally__hex_encode(char *dst, size_t cap, const void *src, size_t n)
{
    if (cap < 2 * n + 1) {
        if (cap)
            dst[0] = '\0';
        return;
    }
    sodium_bin2hex(dst, cap, src, n);
}

size_t
tally__base64_encode(char *dst, size_t cap, const void *src, size_t n)
{
    size_t need = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    if (cap < need)
        return 0;
    sodium_bin2base64(dst, cap, src, n, sodium_base64_VARIANT_ORIGINAL);
    return need - 1;
}
